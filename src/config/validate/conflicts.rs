//! Cross-pool rules: who may share a port, and which routes collide.
//!
//! A conflict is reported on the newcomer and names the owner (the older object, or the
//! earlier document in a file: validate's `Seniority`), so the pools named in errors can
//! be refused while the rest, owners included, keeps serving unchanged.

use std::collections::BTreeMap;

use super::{Checked, Source, ValidationError};
use crate::config::{HostMatch, Protocol};

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
        for (j, p) in http.iter().enumerate().filter(|(_, p)| p.route_ok) {
            for q in http[..j].iter().filter(|q| q.route_ok) {
                if let Some((field, problem)) = route_conflict(q, p, port) {
                    report(p, field, problem);
                }
            }
        }
    }
}

/// The collision when `p` routes a host and prefix `q` (older) already routes.
fn route_conflict(q: &Checked, p: &Checked, port: u16) -> Option<(&'static str, String)> {
    let (ql, pl) = (&q.config.listener, &p.config.listener);
    // Different extra conditions are different routes (the router orders them).
    if ql.path_prefix != pl.path_prefix || ql.matches != pl.matches {
        return None;
    }
    let prefix = &pl.path_prefix;
    if ql.hosts.is_empty() && pl.hosts.is_empty() {
        return Some((
            "spec.listener.pathPrefix",
            format!(
                "pool {} already routes any host with pathPrefix {prefix} on port {port}",
                q.config.name
            ),
        ));
    }
    let shared: Vec<String> = pl
        .hosts
        .iter()
        .filter(|h| ql.hosts.contains(h))
        .map(host_pattern)
        .collect();
    if shared.is_empty() {
        return None;
    }
    Some((
        "spec.listener.hosts",
        format!(
            "pool {} already routes host {} with pathPrefix {prefix} on port {port}",
            q.config.name,
            shared.join(", ")
        ),
    ))
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
    }
}
