//! Gateways of sluice's classes -> listener claims and each listener's conditions.
//!
//! A listener's port is the port sluice listens on; listeners of every Gateway sharing a
//! port share it (their routes merge, as Ingresses for one host merge) — unless each
//! Gateway has a Service of its own ([`super::services`]): then a later Gateway's listener
//! on a port an older Gateway holds is served on the port its Service maps it to. A port
//! keeps the kind (plain HTTP or HTTPS) of whoever claims it first — BackendPools and
//! Ingresses, then Gateways oldest first — and a later listener wanting the other kind is
//! `Conflicted` (`ProtocolConflict`) and not served.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;

use super::RouteKind;
use super::condition::{Cond, Problem, set};
use super::grants::Grants;
use super::hostnames::host_matches;
use super::services::{self, ServiceMode};
use super::types::{GROUP, Gateway, Listener, ObjectReference, RouteGroupKind};
use crate::config::{ConfigSet, ListenerClaim, Protocol, TlsConfig};

/// How long a Gateway port's connections may finish when it goes away.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Which namespaces' routes a listener admits.
#[derive(Debug, Clone, PartialEq)]
pub enum From {
    /// The Gateway's own.
    Same,
    /// Every namespace.
    All,
    /// Namespaces whose labels match.
    Selector(LabelSelector),
}

/// One evaluated listener.
#[derive(Debug, Clone)]
pub struct ListenerView {
    /// `spec.listeners[].name`.
    pub name: String,
    /// The port.
    pub port: u16,
    /// The port sluice listens on for it: `port`, or its own port from its Gateway's
    /// Service when an older Gateway holds `port` (0 while that Service has none yet).
    pub bind: u16,
    /// An older Gateway holds `port`: this one needs a port of its own.
    pub own_port: bool,
    /// `hostname`, lower-cased.
    pub hostname: Option<String>,
    /// Namespaces admitted.
    pub from: From,
    /// Route kinds admitted.
    pub kinds: Vec<RouteKind>,
    /// Routes may attach (and count in `attachedRoutes`).
    pub attachable: bool,
    /// Its port is served: attachable, and (HTTPS) a certificate is loaded.
    pub served: bool,
    /// Routes attached (for `attachedRoutes`).
    pub attached: i32,
    /// Conditions.
    pub conditions: Vec<Cond>,
    /// `supportedKinds`.
    pub supported_kinds: Vec<RouteGroupKind>,
}

/// One evaluated Gateway.
#[derive(Debug, Clone)]
pub struct GatewayView {
    /// `namespace/name`.
    pub name: String,
    /// Namespace.
    pub ns: String,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// Its listeners, in spec order.
    pub listeners: Vec<ListenerView>,
    /// Why the Gateway as a whole is not accepted, if it is not.
    pub refused: Option<Cond>,
    /// `spec.infrastructure`: labels and annotations for its Service.
    pub infrastructure: services::Infrastructure,
}

/// The owner string of a Gateway's listener claims.
pub fn owner(gateway: &str) -> String {
    format!("gateway:{gateway}")
}

/// What [`evaluate`] reads besides the Gateways.
pub struct Context<'a> {
    /// What BackendPools and Ingresses already claim.
    pub held: &'a ConfigSet,
    /// TLS Secrets.
    pub secrets: &'a [Arc<Secret>],
    /// ReferenceGrants.
    pub grants: &'a Grants,
    /// Per-Gateway Services, when sluice makes them, and the Services that exist.
    pub own: Option<(&'a ServiceMode, &'a [Arc<Service>])>,
}

/// Evaluates the Gateways (oldest first) and claims the ports of their served listeners.
pub fn evaluate(
    gateways: &[&Gateway],
    cx: &Context<'_>,
    claims: &mut Vec<Arc<ListenerClaim>>,
) -> Vec<GatewayView> {
    let mut ports = Ports::held(cx.held);
    // Port -> the oldest Gateway with a listener on it (per-Gateway Services only).
    let mut holders: BTreeMap<u16, String> = BTreeMap::new();
    let owned = cx
        .own
        .map(|(mode, existing)| services::Owned::new(existing, mode));
    let mut out = Vec::with_capacity(gateways.len());
    for gw in gateways {
        let ns = gw.namespace().unwrap_or_else(|| "default".to_owned());
        let name = format!("{ns}/{}", gw.name_any());
        let refused = gateway_refusal(gw);
        let own_targets = owned
            .as_ref()
            .map(|o| services::targets(o.gateway(&name).map(Arc::as_ref)));
        let mut views = Vec::new();
        for (i, l) in gw.spec.listeners.iter().enumerate() {
            let (mut view, cert) = listener(l, i, &ns, cx.secrets, cx.grants);
            let duplicate = gw.spec.listeners[..i].iter().any(|o| {
                o.port == l.port
                    && o.hostname.as_deref().unwrap_or("") == l.hostname.as_deref().unwrap_or("")
                    && o.protocol == l.protocol
            });
            if duplicate {
                let why = format!(
                    "another listener of this Gateway has port {} and the same hostname",
                    l.port
                );
                conflict(&mut view, "HostnameConflict", why);
            }
            if let Some(targets) = &own_targets
                && view.attachable
                && refused.is_none()
            {
                own_port(&mut view, targets, &mut holders, &name);
            }
            if view.attachable
                && view.served
                && let Err(why) = ports.claim(view.bind, l.protocol == "HTTPS", &owner(&name))
            {
                conflict(&mut view, "ProtocolConflict", why);
            }
            if refused.is_some() {
                view.attachable = false;
            }
            view.served &= view.attachable;
            if view.served {
                claims.push(Arc::new(ListenerClaim {
                    owner: owner(&name),
                    port: view.bind,
                    protocol: Protocol::Http,
                    hosts: match (&cert, &view.hostname) {
                        (Some(_), Some(h)) => host_matches(std::slice::from_ref(h)),
                        _ => Vec::new(),
                    },
                    tls: cert,
                    proxy_protocol: false,
                    drain_timeout: DRAIN_TIMEOUT,
                    tcp_pool: None,
                }));
            }
            let programmed = if view.served {
                Cond::yes("Programmed", "Programmed", "the listener is served")
            } else if view.attachable && view.bind == 0 {
                let why = format!(
                    "waiting for Service {} to give port {} a port of its own",
                    services::service_name(&name),
                    view.port
                );
                Cond::no("Programmed", "Pending", why)
            } else {
                Cond::no("Programmed", "Invalid", "the listener is not served")
            };
            set(&mut view.conditions, programmed);
            views.push(view);
        }
        out.push(GatewayView {
            name,
            ns,
            generation: gw.metadata.generation,
            listeners: views,
            refused,
            infrastructure: services::infrastructure(gw.spec.infrastructure.as_ref())
                .unwrap_or_default(),
        });
    }
    out
}

/// With per-Gateway Services: the first (oldest) Gateway on a port listens on it; a later
/// one listens on the port its Service maps the listener port to, and is not served
/// until the Service has one.
fn own_port(
    view: &mut ListenerView,
    targets: &BTreeMap<u16, u16>,
    holders: &mut BTreeMap<u16, String>,
    gateway: &str,
) {
    let holder = holders
        .entry(view.port)
        .or_insert_with(|| gateway.to_owned());
    if holder == gateway {
        return;
    }
    view.own_port = true;
    view.bind = targets.get(&view.port).copied().unwrap_or(0);
    if view.bind == 0 {
        view.served = false;
    }
}

/// The kind of each port claimed so far and who decided it: `Some(true)` HTTPS,
/// `Some(false)` plain HTTP, `None` TCP (which no listener can share).
struct Ports(BTreeMap<u16, (Option<bool>, String)>);

impl Ports {
    /// The ports BackendPools and Ingresses hold (a TCP claim decides its port).
    fn held(held: &ConfigSet) -> Ports {
        let mut ports = BTreeMap::new();
        for l in &held.listeners {
            let kind = (l.protocol == Protocol::Http).then_some(l.tls.is_some());
            let slot = ports.entry(l.port).or_insert((kind, l.owner.clone()));
            if kind.is_none() {
                *slot = (None, l.owner.clone());
            }
        }
        Ports(ports)
    }

    /// Claims `port` as HTTPS or plain HTTP for `owner`, or says who holds it as what else.
    fn claim(&mut self, port: u16, https: bool, owner: &str) -> Result<(), String> {
        match self.0.get(&port) {
            Some((kind, _)) if *kind == Some(https) => Ok(()),
            Some((kind, holder)) => {
                let served = match kind {
                    Some(true) => "HTTPS",
                    Some(false) => "plain HTTP",
                    None => "TCP",
                };
                Err(format!("port {port} is served as {served} for {holder}"))
            }
            None => {
                self.0.insert(port, (Some(https), owner.to_owned()));
                Ok(())
            }
        }
    }
}

fn conflict(view: &mut ListenerView, reason: &'static str, message: String) {
    set(
        &mut view.conditions,
        Cond::yes("Conflicted", reason, message),
    );
    view.attachable = false;
}

/// What makes a whole Gateway unacceptable: fields sluice does not implement.
fn gateway_refusal(gw: &Gateway) -> Option<Cond> {
    if gw.spec.addresses.as_ref().is_some_and(|a| !a.is_empty()) {
        return Some(Cond::no(
            "Accepted",
            "UnsupportedAddress",
            "spec.addresses: sluice serves on its own addresses (--publish-address, --publish-service or the pod IP); requested addresses are not supported",
        ));
    }
    if let Some(why) = super::rules::unknown_fields(&gw.spec.other, "spec") {
        return Some(Cond::no("Accepted", "Invalid", why));
    }
    if let Some(why) = allowed_listeners(gw.spec.allowed_listeners.as_ref()) {
        return Some(Cond::no("Accepted", "Invalid", why));
    }
    if let Err(why) = services::infrastructure(gw.spec.infrastructure.as_ref()) {
        return Some(Cond::no("Accepted", "InvalidParameters", why));
    }
    if gw.spec.tls.is_some() {
        return Some(Cond::no(
            "Accepted",
            "Invalid",
            "spec.tls: client certificate validation and backend client certificates are not implemented by sluice",
        ));
    }
    None
}

/// `spec.allowedListeners`: ListenerSets are not served, so only `from: None` (the
/// default) is accepted.
fn allowed_listeners(allowed: Option<&serde_json::Value>) -> Option<String> {
    let from = allowed?
        .pointer("/namespaces/from")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("None");
    (from != "None").then(|| {
        format!(
            "spec.allowedListeners.namespaces.from: {from}: ListenerSets are not served by sluice"
        )
    })
}

/// One listener's view and its certificate (HTTPS).
fn listener(
    l: &Listener,
    index: usize,
    ns: &str,
    secrets: &[Arc<Secret>],
    grants: &Grants,
) -> (ListenerView, Option<TlsConfig>) {
    let field = format!("spec.listeners[{index}]");
    let port = u16::try_from(l.port).unwrap_or(0);
    let mut view = ListenerView {
        name: l.name.clone(),
        port,
        bind: port,
        own_port: false,
        hostname: l.hostname.as_ref().map(|h| h.to_ascii_lowercase()),
        from: From::Same,
        kinds: Vec::new(),
        attachable: true,
        served: true,
        attached: 0,
        conditions: vec![
            Cond::yes("Accepted", "Accepted", "the listener is valid"),
            Cond::yes(
                "ResolvedRefs",
                "ResolvedRefs",
                "every reference is resolved",
            ),
            Cond::no("Conflicted", "NoConflicts", "no conflict"),
        ],
        supported_kinds: Vec::new(),
    };
    if let Some(why) = super::rules::unknown_fields(&l.other, &field) {
        refuse(&mut view, "UnsupportedValue", why);
        return (view, None);
    }
    if !matches!(l.protocol.as_str(), "HTTP" | "HTTPS") || view.port == 0 {
        let why = format!(
            "{field}.protocol: {} is not served by sluice (HTTP and HTTPS are)",
            l.protocol
        );
        refuse(&mut view, "UnsupportedProtocol", why);
        return (view, None);
    }
    allowed_routes(&mut view, l, &field);
    if l.protocol != "HTTPS" {
        return (view, None);
    }
    let tls = l.tls.as_ref();
    if tls.and_then(|t| t.mode.as_deref()).unwrap_or("Terminate") != "Terminate" {
        let why = format!("{field}.tls.mode: only Terminate is supported on HTTPS");
        refuse(&mut view, "UnsupportedValue", why);
        return (view, None);
    }
    if tls
        .and_then(|t| t.options.as_ref())
        .is_some_and(|o| !o.is_empty())
    {
        let why = format!("{field}.tls.options: sluice has no TLS options");
        refuse(&mut view, "UnsupportedValue", why);
        return (view, None);
    }
    let refs = tls
        .and_then(|t| t.certificate_refs.as_deref())
        .unwrap_or_default();
    let (cert, problem) = certificate(refs, &field, ns, secrets, grants);
    if let Some(p) = problem {
        set(
            &mut view.conditions,
            Cond::no("ResolvedRefs", p.reason, p.message),
        );
    }
    if cert.is_none() {
        // Routes still attach (and are counted); nothing is served until a certificate is.
        view.served = false;
    }
    (view, cert)
}

/// `Accepted=False` for `reason`: nothing attaches, nothing is served.
fn refuse(view: &mut ListenerView, reason: &'static str, message: String) {
    set(&mut view.conditions, Cond::no("Accepted", reason, message));
    view.attachable = false;
}

/// `allowedRoutes`: the namespaces and the route kinds (`supportedKinds`); a kind sluice
/// does not serve makes `ResolvedRefs=False` (`InvalidRouteKinds`), and none left makes the
/// listener take no routes.
fn allowed_routes(view: &mut ListenerView, l: &Listener, field: &str) {
    let allowed = l.allowed_routes.as_ref();
    view.from = match allowed.and_then(|a| a.namespaces.as_ref()) {
        None => From::Same,
        Some(n) => match n.from.as_deref().unwrap_or("Same") {
            "All" => From::All,
            "Selector" => From::Selector(n.selector.clone().unwrap_or_default()),
            _ => From::Same,
        },
    };
    match allowed.and_then(|a| a.kinds.as_ref()) {
        None => view.kinds = vec![RouteKind::Http, RouteKind::Grpc],
        Some(kinds) => {
            let mut invalid = Vec::new();
            for k in kinds {
                let group = k.group.as_deref().unwrap_or(GROUP);
                match RouteKind::parse(&k.kind).filter(|_| group == GROUP) {
                    Some(kind) if !view.kinds.contains(&kind) => view.kinds.push(kind),
                    Some(_) => {}
                    None => invalid.push(format!("{group}/{}", k.kind)),
                }
            }
            if !invalid.is_empty() {
                let why = format!(
                    "{field}.allowedRoutes.kinds: {} not supported (HTTPRoute and GRPCRoute are)",
                    invalid.join(", ")
                );
                set(
                    &mut view.conditions,
                    Cond::no("ResolvedRefs", "InvalidRouteKinds", why),
                );
            }
        }
    }
    view.supported_kinds = view
        .kinds
        .iter()
        .map(|k| RouteGroupKind {
            group: Some(GROUP.to_owned()),
            kind: k.as_str().to_owned(),
        })
        .collect();
    if view.kinds.is_empty() {
        view.attachable = false;
    }
}

/// The first usable certificate of `certificateRefs`, and the first problem with them:
/// not a Secret (`InvalidCertificateRef`), in another namespace without a ReferenceGrant
/// (`RefNotPermitted`), missing or not a valid certificate and key (`InvalidCertificateRef`).
fn certificate(
    refs: &[ObjectReference],
    field: &str,
    ns: &str,
    secrets: &[Arc<Secret>],
    grants: &Grants,
) -> (Option<TlsConfig>, Option<Problem>) {
    let mut cert = None;
    let mut problem = None;
    if refs.is_empty() {
        problem = Some(Problem {
            reason: "InvalidCertificateRef",
            message: format!("{field}.tls.certificateRefs: HTTPS needs a certificate"),
        });
    }
    for (i, r) in refs.iter().enumerate() {
        let rfield = format!("{field}.tls.certificateRefs[{i}]");
        let group = r.group.as_deref().unwrap_or("");
        let kind = r.kind.as_deref().unwrap_or("Secret");
        let secret_ns = r.namespace.as_deref().unwrap_or(ns);
        let bad = |reason, message| Problem { reason, message };
        let result = if !(group.is_empty() || group == "core") || kind != "Secret" {
            Err(bad(
                "InvalidCertificateRef",
                format!("{rfield}: {kind} (group {group:?}) is not a Secret"),
            ))
        } else if secret_ns != ns
            && !grants.permits("Gateway", ns, "", "Secret", secret_ns, &r.name)
        {
            Err(bad(
                "RefNotPermitted",
                format!(
                    "{rfield}: Secret {secret_ns}/{} is in another namespace and no ReferenceGrant there allows it",
                    r.name
                ),
            ))
        } else {
            let found = secrets
                .iter()
                .find(|s| s.namespace().as_deref() == Some(secret_ns) && s.name_any() == r.name);
            crate::controller::index::tls_from_secret(found.map(Arc::as_ref), secret_ns, &r.name)
                .map_err(|why| bad("InvalidCertificateRef", format!("{rfield}: {why}")))
        };
        match result {
            Ok(c) => {
                cert.get_or_insert(c);
            }
            Err(p) => {
                problem.get_or_insert(p);
            }
        }
    }
    (cert, problem)
}
