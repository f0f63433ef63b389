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
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::config::{
    ConfigSet, ListenerConfig, PoolConfig, Protocol, ProxyProtocolVersion, RouteFilters, Timeouts,
    UpstreamConfig, UpstreamProtocol,
};

mod attach;
pub mod condition;
mod grants;
pub mod hostnames;
pub mod listeners;
mod merge;
pub mod rules;
pub mod services;
pub mod status;
pub mod types;

pub use attach::selects;
use condition::Cond;
use grants::Grants;
use listeners::GatewayView;
pub use merge::{Conflict, merge};
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
    /// Per-Gateway Services, when sluice makes them (`--gateway-service-type`).
    pub service_mode: Option<Arc<services::ServiceMode>>,
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
    let cx = listeners::Context {
        held,
        secrets: &objects.secrets,
        grants: &grants,
        own: objects
            .service_mode
            .as_deref()
            .map(|m| (m, objects.services.as_slice())),
    };
    let views = listeners::evaluate(&gateways, &cx, &mut out.set.listeners);
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
        attach::attach(&mut out, &route, &labels);
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
        let mut translated = rules::http_rules(&ns, list, lookup);
        translated.refuse_unknown(&r.spec.other, "spec");
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
        let mut translated =
            rules::grpc_rules(&ns, r.spec.rules.as_deref().unwrap_or_default(), lookup);
        translated.refuse_unknown(&r.spec.other, "spec");
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

/// Builds the backends with their Service endpoints.
fn finish(
    out: &mut Translation,
    backends: BTreeMap<String, rules::Backend>,
    objects: &GatewayObjects,
) {
    let lookup = super::index::ServiceLookup::new(&objects.services, &objects.slices);
    for (name, b) in backends {
        let endpoints = lookup
            .endpoints(&b.ns, &b.service, &IntOrString::Int(b.port))
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
            timeouts: Timeouts {
                request: b.timeout.unwrap_or(Timeouts::default().request),
                ..Timeouts::default()
            },
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

#[cfg(test)]
mod tests;
