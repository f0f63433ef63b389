//! Joining the Gateway API part to the BackendPools' and Ingresses' configuration, with
//! the oldest-wins rule for a route both place.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{Reports, RouteKind, Translation};
use crate::config::{ConfigSet, HostMatch, PathMatch, RequestMatch, RouteConfig};

/// The same route (port, hosts, path and conditions) placed by a Gateway API route and by
/// a BackendPool or an Ingress: the older object keeps it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Conflict {
    /// The owner served (`ns/name`, `ingress:ns/name`, `httproute:ns/name`, ...).
    pub winner: String,
    /// The owner shadowed.
    pub loser: String,
    /// What both place, for messages.
    pub what: String,
}

/// Identity of a route for conflicts: port, hosts, path (kind and text), conditions.
type RouteIdentity = (u16, Vec<HostMatch>, u8, String, RequestMatch);

fn identity(r: &RouteConfig) -> RouteIdentity {
    let (kind, text) = match &r.path {
        PathMatch::Exact(p) => (0, p.clone()),
        PathMatch::Prefix(p) => (1, p.clone()),
        PathMatch::Regex(re) => (2, re.as_str().to_owned()),
    };
    (r.port, r.hosts.clone(), kind, text, r.matches.clone())
}

/// Adds the Gateway API part `t` to `set` (BackendPools' and Ingresses'): claims, then
/// routes after theirs, except that a Gateway API route placing exactly what an existing
/// route places goes before it when its object is older (`age` gives the seniority of a
/// BackendPool or Ingress owner) — the oldest wins, as between any two objects. Each such
/// clash is returned; a shadowed Gateway API route is told in its `Accepted` message.
pub fn merge(
    set: &mut ConfigSet,
    t: &mut Translation,
    age: impl Fn(&str) -> Option<(Option<Time>, String)>,
) -> Vec<Conflict> {
    set.listeners.extend(t.set.listeners.iter().cloned());
    if !t.set.pools.is_empty() {
        set.pools.extend(t.set.pools.iter().cloned());
        set.pools.sort_by(|a, b| a.name.cmp(&b.name));
    }
    if t.set.routes.is_empty() {
        return Vec::new();
    }
    let existing: std::collections::HashMap<RouteIdentity, usize> = set
        .routes
        .iter()
        .enumerate()
        .rev()
        .map(|(i, r)| (identity(r), i))
        .collect();
    let mut before: BTreeMap<usize, Vec<Arc<RouteConfig>>> = BTreeMap::new();
    let mut after = Vec::new();
    let mut conflicts = Vec::new();
    for r in &t.set.routes {
        let Some(&i) = existing.get(&identity(r)) else {
            after.push(r.clone());
            continue;
        };
        let theirs = &set.routes[i].owner;
        let older = match (t.ages.get(&r.owner), age(theirs)) {
            (Some(ours), Some(other)) => *ours < other,
            _ => false,
        };
        let (winner, loser) = if older {
            before.entry(i).or_default().push(r.clone());
            (r.owner.clone(), theirs.clone())
        } else {
            after.push(r.clone());
            (theirs.clone(), r.owner.clone())
        };
        let c = Conflict {
            winner,
            loser,
            what: describe(r),
        };
        if !conflicts.contains(&c) {
            conflicts.push(c);
        }
    }
    if !before.is_empty() {
        let old = std::mem::take(&mut set.routes);
        for (i, r) in old.into_iter().enumerate() {
            if let Some(first) = before.remove(&i) {
                set.routes.extend(first);
            }
            set.routes.push(r);
        }
    }
    set.routes.extend(after);
    for c in &conflicts {
        tell_shadowed(&mut t.reports, c);
    }
    conflicts
}

/// `port 8080 host shop.example path Prefix /api` for messages.
fn describe(r: &RouteConfig) -> String {
    let hosts: Vec<String> = r
        .hosts
        .iter()
        .map(|h| match h {
            HostMatch::Exact(h) => h.clone(),
            HostMatch::Wildcard(s) => format!("*{s}"),
        })
        .collect();
    let host = if hosts.is_empty() {
        "(any host)".to_owned()
    } else {
        hosts.join(",")
    };
    let (kind, text) = match &r.path {
        PathMatch::Exact(p) => ("Exact", p.as_str()),
        PathMatch::Prefix(p) => ("PathPrefix", p.as_str()),
        PathMatch::Regex(re) => ("RegularExpression", re.as_str()),
    };
    format!("port {} host {host} path {kind} {text}", r.port)
}

/// Appends "shadowed by ..." to the `Accepted` message of a Gateway API route that lost.
fn tell_shadowed(reports: &mut Reports, c: &Conflict) {
    let (kind, name) = match c.loser.split_once(':') {
        Some(("httproute", n)) => (RouteKind::Http, n),
        Some(("grpcroute", n)) => (RouteKind::Grpc, n),
        _ => return,
    };
    let Some(report) = reports.routes.get_mut(&(kind, name.to_owned())) else {
        return;
    };
    for p in &mut report.parents {
        for cond in &mut p.conditions {
            if cond.type_ == "Accepted" && cond.status {
                cond.message.push_str(&format!(
                    "; {} is served for the older {} (oldest wins)",
                    c.what, c.winner
                ));
            }
        }
    }
}
