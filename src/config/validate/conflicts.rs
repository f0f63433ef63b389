//! Cross-pool rules: who may share a port, and which routes collide.
//!
//! A conflict is reported on the newcomer and names the owner (the older object, or the
//! earlier document in a file: validate's `Seniority`), so the pools named in errors can
//! be refused while the rest, owners included, keeps serving unchanged.

use std::collections::{BTreeMap, HashMap};

use super::{Checked, Source, ValidationError};
use crate::config::{HostMatch, Protocol, RequestMatch};

/// Checks `pools` (oldest first) against each other.
pub(super) fn check(source: &Source, pools: &[Checked], errors: &mut Vec<ValidationError>) {
    let mut by_port: BTreeMap<u16, Vec<&Checked>> = BTreeMap::new();
    for p in pools.iter().filter(|p| p.unique && p.port_ok) {
        by_port.entry(p.config.listener.port).or_default().push(p);
    }
    for (port, group) in by_port {
        let mut report = |p: &Checked, field: &str, problem: String| {
            errors.push(error(source, &p.config.name, field, problem));
        };
        let Some((owner, rest)) = group.split_first() else {
            continue;
        };
        for p in rest {
            match (owner.config.protocol, p.config.protocol) {
                (Protocol::Tcp, Protocol::Tcp) => report(
                    p,
                    "spec.listener.port",
                    format!(
                        "port {port} is already owned by TCP pool {}; a TCP pool owns its port",
                        owner.config.name
                    ),
                ),
                (Protocol::Http, Protocol::Tcp) | (Protocol::Tcp, Protocol::Http) => report(
                    p,
                    "spec.listener.port",
                    format!(
                        "port {port} is used by {} pool {}; HTTP and TCP pools cannot share a port",
                        owner.config.protocol.as_str(),
                        owner.config.name
                    ),
                ),
                (Protocol::Http, Protocol::Http) => {}
            }
        }
        let http: Vec<&Checked> = group
            .iter()
            .copied()
            .filter(|p| p.config.protocol == Protocol::Http)
            .collect();
        let Some((first, others)) = http.split_first() else {
            continue;
        };
        for p in others {
            if p.tls != first.tls {
                let (this, that) = if p.tls {
                    ("terminates TLS", "is plain text")
                } else {
                    ("is plain text", "terminates TLS")
                };
                report(
                    p,
                    "spec.listener.tls",
                    format!(
                        "this pool {this} but pool {} on port {port} {that}; TLS and plain-text pools cannot share a port",
                        first.config.name
                    ),
                );
            }
        }
        // Each route key (path prefix + extra conditions) maps its hosts to their holder:
        // one lookup per host instead of a comparison with every older pool.
        let mut holders: HashMap<(&str, &RequestMatch), Holders> = HashMap::new();
        for (rank, p) in http.iter().enumerate().filter(|(_, p)| p.route_ok) {
            let l = &p.config.listener;
            let route = holders
                .entry((l.path_prefix.as_str(), &l.matches))
                .or_default();
            let found = route_conflicts(route, p, port);
            if found.is_empty() {
                route.hold(rank, p);
            }
            for (field, problem) in found {
                report(p, field, problem);
            }
        }
    }
}

/// Who already routes one path prefix with one set of extra conditions on a port: the
/// any-host route and each host, with the holder's seniority rank.
#[derive(Default)]
struct Holders<'a> {
    any_host: Option<&'a Checked>,
    hosts: HashMap<&'a HostMatch, (usize, &'a Checked)>,
}

impl<'a> Holders<'a> {
    fn hold(&mut self, rank: usize, p: &'a Checked) {
        if p.config.listener.hosts.is_empty() {
            self.any_host = Some(p);
        }
        for h in &p.config.listener.hosts {
            self.hosts.entry(h).or_insert((rank, p));
        }
    }
}

/// The collisions when `p` routes what `route` already holds: one per holder, oldest
/// first, naming the hosts they share.
fn route_conflicts(route: &Holders, p: &Checked, port: u16) -> Vec<(&'static str, String)> {
    let pl = &p.config.listener;
    let prefix = &pl.path_prefix;
    if pl.hosts.is_empty() {
        return route
            .any_host
            .map(|q| {
                (
                    "spec.listener.pathPrefix",
                    format!(
                        "pool {} already routes any host with pathPrefix {prefix} on port {port}",
                        q.config.name
                    ),
                )
            })
            .into_iter()
            .collect();
    }
    let mut shared: Vec<(usize, &Checked, Vec<String>)> = Vec::new();
    for h in &pl.hosts {
        let Some(&(rank, q)) = route.hosts.get(h) else {
            continue;
        };
        match shared.iter_mut().find(|(r, _, _)| *r == rank) {
            Some((_, _, hosts)) => hosts.push(host_pattern(h)),
            None => shared.push((rank, q, vec![host_pattern(h)])),
        }
    }
    shared.sort_by_key(|(rank, _, _)| *rank);
    shared
        .into_iter()
        .map(|(_, q, hosts)| {
            (
                "spec.listener.hosts",
                format!(
                    "pool {} already routes host {} with pathPrefix {prefix} on port {port}",
                    q.config.name,
                    hosts.join(", ")
                ),
            )
        })
        .collect()
}

/// The host as users write it (`*.example.com` for a wildcard).
fn host_pattern(h: &HostMatch) -> String {
    match h {
        HostMatch::Exact(h) => h.clone(),
        HostMatch::Wildcard(suffix) => format!("*{suffix}"),
    }
}

fn error(source: &Source, pool: &str, field: &str, problem: String) -> ValidationError {
    let message = match source {
        Source::File(file) => format!("{file}: pool {pool}: {field}: {problem}"),
        Source::Kubernetes => format!("pool {pool}: {field}: {problem}"),
    };
    ValidationError {
        message,
        pool: Some(pool.to_owned()),
        field: Some(field.to_owned()),
        conflict: true,
        location: None,
    }
}
