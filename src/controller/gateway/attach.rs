//! Route attachment: which listeners of which Gateways accept a route (`parentRefs`
//! with `sectionName` and `port`, `allowedRoutes` namespaces and kinds, hostname
//! intersection), the route's status toward each parent, and its routes on those ports.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::condition::{Cond, Problem};
use super::listeners::{From, GatewayView};
use super::types::{self, ParentReference};
use super::{ParentReport, RouteReport, RouteView, Translation, hostnames, rules};
use crate::config::{ForwardTo, RouteAction, RouteConfig};

/// Whether `selector` selects a namespace with `labels`.
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
}

/// Attaches `route` to its parents: its status toward each Gateway of ours, and its
/// routes on the ports of the listeners that accept it.
pub(super) fn attach(
    out: &mut Translation,
    route: &RouteView,
    labels: &BTreeMap<String, BTreeMap<String, String>>,
) {
    let key = format!("{}/{}", route.ns, route.name);
    let owner = format!("{}:{key}", route.kind.owner_prefix());
    let mut parents = Vec::new();
    // (port, hostnames) the route is served on, deduplicated.
    let mut placements: Vec<(u16, Vec<String>)> = Vec::new();
    let empty = BTreeMap::new();
    let route_labels = labels.get(&route.ns).unwrap_or(&empty);
    for pref in &route.parent_refs {
        let group = pref.group.as_deref().unwrap_or(types::GROUP);
        let kind = pref.kind.as_deref().unwrap_or("Gateway");
        if group != types::GROUP || kind != "Gateway" {
            continue;
        }
        let gw_ns = pref.namespace.as_deref().unwrap_or(&route.ns);
        let gw_name = format!("{gw_ns}/{}", pref.name);
        let Some(gw) = out.reports.gateways.get_mut(&gw_name) else {
            continue;
        };
        let mut conditions = Vec::new();
        let counted = route.translated.refused.is_none();
        let accepted = accept_on(gw, route, pref, route_labels, counted, &mut placements);
        match accepted {
            Ok(()) => match &route.translated.refused {
                Some(p) => conditions.push(Cond::no("Accepted", p.reason, p.message.clone())),
                None => conditions.push(Cond::yes("Accepted", "Accepted", "the route is attached")),
            },
            Err(p) => conditions.push(Cond::no("Accepted", p.reason, p.message)),
        }
        conditions.push(match &route.translated.unresolved {
            Some(p) => Cond::no("ResolvedRefs", p.reason, p.message.clone()),
            None => Cond::yes(
                "ResolvedRefs",
                "ResolvedRefs",
                "every backendRef is resolved",
            ),
        });
        parents.push(ParentReport {
            parent_ref: pref.clone(),
            conditions,
        });
    }
    if parents.is_empty() {
        return;
    }
    out.reports.routes.insert(
        (route.kind, key),
        RouteReport {
            generation: route.generation,
            parents,
        },
    );
    if route.translated.refused.is_some() {
        return;
    }
    for rule in &route.translated.rules {
        let action = match &rule.action {
            rules::RuleAction::Forward(backends) => RouteAction::Forward(ForwardTo {
                backends: backends.clone(),
                canary: None,
            }),
            rules::RuleAction::Respond(status) => RouteAction::Respond(*status),
        };
        for (port, hosts) in &placements {
            for (path, matches) in &rule.matches {
                out.set.routes.push(Arc::new(RouteConfig {
                    owner: owner.clone(),
                    port: *port,
                    hosts: hostnames::host_matches(hosts),
                    path: path.clone(),
                    matches: matches.clone(),
                    filters: rule.filters.clone(),
                    action: action.clone(),
                }));
            }
        }
    }
}

/// Whether `route` attaches to Gateway `gw` through `pref` (counting it on the listeners
/// it attaches to and recording where it is served), or why not.
fn accept_on(
    gw: &mut GatewayView,
    route: &RouteView,
    pref: &ParentReference,
    route_labels: &BTreeMap<String, String>,
    counted: bool,
    placements: &mut Vec<(u16, Vec<String>)>,
) -> Result<(), Problem> {
    let gw_ns = gw.ns.clone();
    let candidates: Vec<usize> = gw
        .listeners
        .iter()
        .enumerate()
        .filter(|(_, l)| pref.section_name.as_deref().is_none_or(|s| s == l.name))
        .filter(|(_, l)| pref.port.is_none_or(|p| i32::from(l.port) == p))
        .map(|(i, _)| i)
        .collect();
    if candidates.is_empty() {
        return Err(Problem {
            reason: "NoMatchingParent",
            message: format!(
                "Gateway {} has no listener{}{}",
                gw.name,
                pref.section_name
                    .as_deref()
                    .map(|s| format!(" named {s}"))
                    .unwrap_or_default(),
                pref.port
                    .map(|p| format!(" on port {p}"))
                    .unwrap_or_default()
            ),
        });
    }
    let allowed: Vec<usize> = candidates
        .into_iter()
        .filter(|&i| {
            let l = &gw.listeners[i];
            let ns_ok = match &l.from {
                From::Same => route.ns == gw_ns,
                From::All => true,
                From::Selector(s) => selects(s, route_labels),
            };
            l.attachable && ns_ok && l.kinds.contains(&route.kind)
        })
        .collect();
    if allowed.is_empty() {
        return Err(Problem {
            reason: "NotAllowedByListeners",
            message: format!(
                "no listener of Gateway {} admits {} from namespace {}",
                gw.name,
                route.kind.as_str(),
                route.ns
            ),
        });
    }
    let mut attached = false;
    for i in allowed {
        let others: Vec<Option<String>> = gw
            .listeners
            .iter()
            .filter(|o| o.bind == gw.listeners[i].bind && o.attachable)
            .map(|o| o.hostname.clone())
            .collect();
        let l = &mut gw.listeners[i];
        let Some(mut hosts) = hostnames::intersect(l.hostname.as_deref(), &route.hostnames) else {
            continue;
        };
        let before = hosts.len();
        hostnames::isolate(&mut hosts, l.hostname.as_deref(), &others);
        let isolated_away = before > 0 && hosts.is_empty();
        attached = true;
        if counted {
            // `attachedRoutes` counts accepted routes only.
            l.attached += 1;
        }
        if l.served
            && !isolated_away
            && !placements.iter().any(|(p, h)| *p == l.bind && *h == hosts)
        {
            placements.push((l.bind, hosts));
        }
    }
    if !attached {
        return Err(Problem {
            reason: "NoMatchingListenerHostname",
            message: format!(
                "no hostname of the route matches a listener of Gateway {}",
                gw.name
            ),
        });
    }
    Ok(())
}
