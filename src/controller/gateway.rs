//! Gateway API (gateway.networking.k8s.io, standard channel) -> listener claims, routes and
//! backends of the model, plus the status every object should carry: pure code, no API
//! calls, no data-plane types.
//!
//! - GatewayClasses whose `spec.controllerName` is [`CONTROLLER`] are ours; every Gateway of
//!   them is served by this one deployment ([`listeners`]).
//! - HTTPRoutes and GRPCRoutes attach to listeners through `parentRefs` (`sectionName`,
//!   `port`), the listeners' `allowedRoutes` and hostname intersection; each match of each
//!   rule becomes one route on the listener's port, owner `httproute:NS/NAME` or
//!   `grpcroute:NS/NAME`, routes visited oldest first so Gateway API's tie-break (oldest
//!   route, then `namespace/name`, then rule order) is the router's insertion order.
//! - Each Service port a rule names is one backend, `gateway:NS/SERVICE:PORT`
//!   (`gateway-h2c:` for GRPCRoute backends and `appProtocol: kubernetes.io/h2c`); the
//!   prefix keeps it apart from BackendPools and Ingress backends ([`rules::Backend`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::config::{
    ConfigSet, ForwardTo, ListenerConfig, PoolConfig, Protocol, ProxyProtocolVersion, RouteAction,
    RouteConfig, RouteFilters, Timeouts, UpstreamConfig, UpstreamProtocol,
};
use crate::config::{PathMatch, RequestMatch};

pub mod condition;
mod grants;
pub mod hostnames;
pub mod listeners;
pub mod rules;
pub mod status;
pub mod types;

use condition::{Cond, Problem};
use grants::Grants;
use listeners::{From, GatewayView};
use types::{GRPCRoute, Gateway, GatewayClass, HTTPRoute, ParentReference, ReferenceGrant};

/// `spec.controllerName` of the GatewayClasses sluice serves.
pub const CONTROLLER: &str = "sluice.dev/gateway-controller";

/// The route kinds sluice serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteKind {
    /// HTTPRoute.
    Http,
    /// GRPCRoute.
    Grpc,
}

impl RouteKind {
    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Http => "HTTPRoute",
            RouteKind::Grpc => "GRPCRoute",
        }
    }

    /// `HTTPRoute` / `GRPCRoute`.
    pub fn parse(kind: &str) -> Option<RouteKind> {
        match kind {
            "HTTPRoute" => Some(RouteKind::Http),
            "GRPCRoute" => Some(RouteKind::Grpc),
            _ => None,
        }
    }

    /// The owner prefix of its routes.
    fn owner_prefix(self) -> &'static str {
        match self {
            RouteKind::Http => "httproute",
            RouteKind::Grpc => "grpcroute",
        }
    }
}

/// The objects the translation reads.
#[derive(Debug, Default, Clone)]
pub struct GatewayObjects {
    /// Every GatewayClass.
    pub classes: Vec<Arc<GatewayClass>>,
    /// Every Gateway (those of other classes are skipped).
    pub gateways: Vec<Arc<Gateway>>,
    /// HTTPRoutes.
    pub http_routes: Vec<Arc<HTTPRoute>>,
    /// GRPCRoutes.
    pub grpc_routes: Vec<Arc<GRPCRoute>>,
    /// ReferenceGrants.
    pub grants: Vec<Arc<ReferenceGrant>>,
    /// Namespaces (their labels, for `allowedRoutes.namespaces.selector`).
    pub namespaces: Vec<Arc<Namespace>>,
    /// Services.
    pub services: Vec<Arc<Service>>,
    /// EndpointSlices with a service-name label.
    pub slices: Vec<Arc<EndpointSlice>>,
    /// TLS Secrets.
    pub secrets: Vec<Arc<Secret>>,
}

/// The status of one route toward one parent.
#[derive(Debug, Clone, PartialEq)]
pub struct ParentReport {
    /// The parentRef as written.
    pub parent_ref: ParentReference,
    /// `Accepted`, `ResolvedRefs`.
    pub conditions: Vec<Cond>,
}

/// What the translation decided about one route.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteReport {
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// One entry per parentRef to a Gateway of ours.
    pub parents: Vec<ParentReport>,
}

/// What the translation decided about a GatewayClass of ours.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassReport {
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `Accepted`: false (`InvalidParameters`) when it names parameters, which sluice has
    /// none of; its Gateways are then not served.
    pub accepted: Cond,
}

/// What the translation decided, for status.
#[derive(Debug, Clone, Default)]
pub struct Reports {
    /// GatewayClasses of ours by name, with their generation.
    pub classes: BTreeMap<String, ClassReport>,
    /// Gateways of ours by `namespace/name`.
    pub gateways: BTreeMap<String, GatewayView>,
    /// Routes with a parent of ours by kind and `namespace/name`.
    pub routes: BTreeMap<(RouteKind, String), RouteReport>,
}

/// The Gateway API part of the desired configuration.
#[derive(Debug, Clone, Default)]
pub struct Translation {
    /// Listener claims, routes and backends.
    pub set: ConfigSet,
    /// What each object's status should say.
    pub reports: Reports,
    /// Each route owner's seniority (creation time, `namespace/name`), for conflicts
    /// with BackendPools and Ingresses.
    pub ages: BTreeMap<String, (Option<Time>, String)>,
}

/// Creation time then `namespace/name`: the order in which conflicts are decided.
fn seniority<K: ResourceExt>(o: &K) -> (Option<Time>, String) {
    (
        o.creation_timestamp(),
        format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any()),
    )
}

/// One route of either kind, with its rules translated.
struct RouteView {
    /// Seniority (creation time, `namespace/name`), then kind: the placement order.
    order: (Option<Time>, String, RouteKind),
    kind: RouteKind,
    name: String,
    ns: String,
    generation: Option<i64>,
    hostnames: Vec<String>,
    parent_refs: Vec<ParentReference>,
    translated: rules::Translated,
}

/// Translates the Gateway API objects. `held` is what BackendPools and Ingresses claim:
/// a port they hold keeps its kind.
pub fn translate(objects: &GatewayObjects, held: &ConfigSet) -> Translation {
    let mut out = Translation::default();
    let mut ours: BTreeSet<String> = BTreeSet::new();
    for c in objects
        .classes
        .iter()
        .filter(|c| c.spec.controller_name == CONTROLLER)
    {
        let accepted = if c.spec.parameters_ref.is_some() {
            Cond::no(
                "Accepted",
                "InvalidParameters",
                "spec.parametersRef: sluice takes no parameters; the class's Gateways are not served",
            )
        } else {
            ours.insert(c.name_any());
            Cond::yes("Accepted", "Accepted", format!("served by {CONTROLLER}"))
        };
        let generation = c.metadata.generation;
        out.reports.classes.insert(
            c.name_any(),
            ClassReport {
                generation,
                accepted,
            },
        );
    }
    if ours.is_empty() {
        return out;
    }
    let mut gateways: Vec<&Gateway> = objects
        .gateways
        .iter()
        .map(Arc::as_ref)
        .filter(|g| ours.contains(&g.spec.gateway_class_name))
        .collect();
    gateways.sort_by_key(|g| seniority(*g));
    let grants = Grants::new(objects.grants.clone());
    let views = listeners::evaluate(
        &gateways,
        held,
        &objects.secrets,
        &grants,
        &mut out.set.listeners,
    );
    for v in views {
        out.reports.gateways.insert(v.name.clone(), v);
    }

    let services: BTreeMap<(String, String), Arc<Service>> = objects
        .services
        .iter()
        .map(|s| ((s.namespace().unwrap_or_default(), s.name_any()), s.clone()))
        .collect();
    let lookup = rules::Lookup {
        services: &services,
        grants: &grants,
    };
    let mut routes = route_views(objects, &lookup);
    routes.sort_by(|a, b| a.order.cmp(&b.order));
    let labels: BTreeMap<String, BTreeMap<String, String>> = objects
        .namespaces
        .iter()
        .map(|n| (n.name_any(), n.labels().clone()))
        .collect();
    let mut backends = BTreeMap::new();
    for route in routes {
        let owner = format!("{}:{}/{}", route.kind.owner_prefix(), route.ns, route.name);
        out.ages
            .insert(owner, (route.order.0.clone(), route.order.1.clone()));
        attach(&mut out, &route, &labels);
        if out
            .reports
            .routes
            .get(&(route.kind, format!("{}/{}", route.ns, route.name)))
            .is_some_and(|r| {
                r.parents.iter().any(|p| {
                    p.conditions
                        .iter()
                        .any(|c| c.type_ == "Accepted" && c.status)
                })
            })
        {
            backends.extend(route.translated.backends.clone());
        }
    }
    finish(&mut out, backends, objects);
    out
}

fn route_views(objects: &GatewayObjects, lookup: &rules::Lookup<'_>) -> Vec<RouteView> {
    let mut out = Vec::new();
    for r in &objects.http_routes {
        let ns = r.namespace().unwrap_or_else(|| "default".to_owned());
        // The CRD's default for absent rules: one rule matching `PathPrefix /`.
        let default_rules = [types::HttpRouteRule::default()];
        let list = r.spec.rules.as_deref().unwrap_or(&default_rules);
        let translated = rules::http_rules(&ns, list, lookup);
        let (t, n) = seniority(r.as_ref());
        out.push(RouteView {
            order: (t, n, RouteKind::Http),
            kind: RouteKind::Http,
            name: r.name_any(),
            ns,
            generation: r.metadata.generation,
            hostnames: r.spec.hostnames.clone().unwrap_or_default(),
            parent_refs: r.spec.parent_refs.clone().unwrap_or_default(),
            translated,
        });
    }
    for r in &objects.grpc_routes {
        let ns = r.namespace().unwrap_or_else(|| "default".to_owned());
        let translated =
            rules::grpc_rules(&ns, r.spec.rules.as_deref().unwrap_or_default(), lookup);
        let (t, n) = seniority(r.as_ref());
        out.push(RouteView {
            order: (t, n, RouteKind::Grpc),
            kind: RouteKind::Grpc,
            name: r.name_any(),
            ns,
            generation: r.metadata.generation,
            hostnames: r.spec.hostnames.clone().unwrap_or_default(),
            parent_refs: r.spec.parent_refs.clone().unwrap_or_default(),
            translated,
        });
    }
    out
}

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
fn attach(
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
        let l = &mut gw.listeners[i];
        let Some(hosts) = hostnames::intersect(l.hostname.as_deref(), &route.hostnames) else {
            continue;
        };
        attached = true;
        if counted {
            // `attachedRoutes` counts accepted routes only.
            l.attached += 1;
        }
        if l.served && !placements.iter().any(|(p, h)| *p == l.port && *h == hosts) {
            placements.push((l.port, hosts));
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

/// Builds the backends with their Service endpoints.
fn finish(
    out: &mut Translation,
    backends: BTreeMap<String, rules::Backend>,
    objects: &GatewayObjects,
) {
    let services: BTreeMap<(String, String), &Service> = objects
        .services
        .iter()
        .map(|s| {
            (
                (s.namespace().unwrap_or_default(), s.name_any()),
                s.as_ref(),
            )
        })
        .collect();
    let mut slices: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
    for s in &objects.slices {
        if let Some(svc) = s.labels().get(super::index::SERVICE_NAME_LABEL) {
            slices
                .entry((s.namespace().unwrap_or_default(), svc.clone()))
                .or_default()
                .push(s.as_ref());
        }
    }
    for (name, b) in backends {
        let key = (b.ns.clone(), b.service.clone());
        let endpoints = services
            .get(&key)
            .and_then(|svc| {
                super::index::service_endpoints(
                    svc,
                    &IntOrString::Int(b.port),
                    slices.get(&key).map(Vec::as_slice).unwrap_or_default(),
                )
                .ok()
            })
            .unwrap_or_default();
        let port = out.set.listeners.first().map(|l| l.port).unwrap_or(0);
        out.set.pools.push(Arc::new(PoolConfig {
            name,
            protocol: Protocol::Http,
            listener: ListenerConfig {
                port,
                hosts: Vec::new(),
                path_prefix: "/".to_owned(),
                tls: None,
                proxy_protocol: false,
                matches: Default::default(),
            },
            endpoints,
            algorithm: crate::config::Algorithm::RoundRobin,
            health_check: None,
            outlier_detection: None,
            retry: None,
            affinity: None,
            timeouts: Timeouts::default(),
            drain_timeout: listeners::DRAIN_TIMEOUT,
            max_connections_per_endpoint: None,
            send_proxy_protocol: ProxyProtocolVersion::None,
            filters: RouteFilters::default(),
            canary: None,
            dns: None,
            upstream: UpstreamConfig {
                protocol: if b.h2c {
                    UpstreamProtocol::Http2
                } else {
                    UpstreamProtocol::Http1
                },
                tls: None,
            },
        }));
    }
}

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
type RouteIdentity = (u16, Vec<crate::config::HostMatch>, u8, String, RequestMatch);

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
            crate::config::HostMatch::Exact(h) => h.clone(),
            crate::config::HostMatch::Wildcard(s) => format!("*{s}"),
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

#[cfg(test)]
mod tests;
