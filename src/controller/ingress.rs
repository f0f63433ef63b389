//! Ingresses (networking.k8s.io/v1) -> listener claims, routes and backends of the model:
//! pure code, no API calls, no data-plane types.
//!
//! - Every Ingress of ours (its class is an IngressClass with controller
//!   [`CONTROLLER`], or it has no class and one of ours is the default) places routes on
//!   `--http-port` and, for hosts with a loaded `spec.tls` certificate, on `--https-port`.
//! - Each Service port an Ingress names is one backend, named `ns/service:port` (the port's
//!   number or name as written). `:` cannot occur in a Kubernetes name, so the name never
//!   collides with a BackendPool's `ns/name`; every route naming that Service port shares
//!   it. Its settings (timeouts, protocol, balancing) come from the oldest Ingress naming it.
//! - Ingresses are visited oldest first (creationTimestamp, then `namespace/name`): routes
//!   of equal rank keep that order, and the same port + host + path claimed twice stays with
//!   the oldest (the newer one gets a `Conflict` problem).
//! - An Ingress whose annotations cannot be honoured (an access restriction sluice does not
//!   implement, a bad value, a rewrite it cannot express) is refused whole: nothing of it is
//!   served, rather than something served differently or open.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::config::{BasicAuthConfig, ConfigSet, HostMatch, Protocol};

mod accept;
pub mod annotations;
mod backends;
mod paths;
mod translator;

use annotations::{Annotations, BackendSettings};
use translator::Translator;

/// `spec.controller` of the IngressClasses sluice serves.
pub const CONTROLLER: &str = "sluice.dev/ingress-controller";
/// The annotation marking the cluster's default IngressClass.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The pre-IngressClass annotation some Ingresses still carry instead of a class name.
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
/// How long an Ingress port's connections may finish when it goes away.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Process settings of the Ingress front end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressSettings {
    /// `--ingress-class`: also accepted in the legacy `kubernetes.io/ingress.class`
    /// annotation.
    pub class: String,
    /// `--http-port`.
    pub http_port: u16,
    /// `--https-port`.
    pub https_port: u16,
}

impl Default for IngressSettings {
    fn default() -> Self {
        IngressSettings {
            class: "sluice".to_owned(),
            http_port: 8080,
            https_port: 8443,
        }
    }
}

/// The objects the translation reads.
#[derive(Debug, Default, Clone)]
pub struct IngressObjects {
    /// Every Ingress watched (those of other classes are skipped).
    pub ingresses: Vec<Arc<Ingress>>,
    /// Every IngressClass.
    pub classes: Vec<Arc<IngressClass>>,
    /// Services.
    pub services: Vec<Arc<Service>>,
    /// EndpointSlices with a service-name label.
    pub slices: Vec<Arc<EndpointSlice>>,
    /// TLS Secrets.
    pub secrets: Vec<Arc<Secret>>,
}

/// Something an Ingress's owner should hear about (a Warning Event on the Ingress).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// Event reason: `Refused`, `UnsupportedAnnotation`, `AnnotationIgnored`, `Conflict`,
    /// `ServiceNotFound`, `SecretNotFound`, `CanaryWithoutMain`.
    pub reason: &'static str,
    /// Names the field or annotation.
    pub message: String,
}

/// The Ingress part of the desired configuration.
#[derive(Debug, Clone, Default)]
pub struct Translation {
    /// Listener claims, routes and backends of the served Ingresses.
    pub set: ConfigSet,
    /// Ingresses of ours by `namespace/name`, served (at least in part) or not.
    pub ours: BTreeSet<String>,
    /// Refused Ingresses by `namespace/name` (nothing of them is served).
    pub refused: BTreeSet<String>,
    /// Problems by Ingress `namespace/name`.
    pub problems: BTreeMap<String, Vec<Problem>>,
}

impl Translation {
    fn problem(&mut self, ingress: &str, reason: &'static str, message: String) {
        self.problems
            .entry(ingress.to_owned())
            .or_default()
            .push(Problem { reason, message });
    }
}

/// The owner string of an Ingress's claims and routes (`:` keeps it apart from pool names).
pub fn owner(ingress: &str) -> String {
    format!("ingress:{ingress}")
}

/// `namespace/name` of an Ingress.
pub fn ingress_name(i: &Ingress) -> String {
    format!(
        "{}/{}",
        i.namespace().unwrap_or_else(|| "default".to_owned()),
        i.name_any()
    )
}

/// Whether sluice serves `ingress`: its class is one of ours, or it has none and one of
/// ours is the default (or its legacy class annotation names `--ingress-class`).
pub fn is_ours(
    ingress: &Ingress,
    classes: &[Arc<IngressClass>],
    settings: &IngressSettings,
) -> bool {
    let ours = |c: &IngressClass| {
        c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(CONTROLLER)
    };
    let class_name = ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref());
    match class_name {
        Some(name) => classes.iter().any(|c| c.name_any() == name && ours(c)),
        None => match ingress.annotations().get(LEGACY_CLASS_ANNOTATION) {
            Some(legacy) => *legacy == settings.class,
            None => classes.iter().any(|c| {
                ours(c)
                    && c.annotations()
                        .get(DEFAULT_CLASS_ANNOTATION)
                        .map(String::as_str)
                        == Some("true")
            }),
        },
    }
}

/// One accepted Ingress, with what its annotations ask for.
struct Accepted<'a> {
    ingress: &'a Ingress,
    name: String,
    ns: String,
    annotations: Annotations,
    /// `auth-type: basic` with its Secret's users.
    basic_auth: Option<Arc<BasicAuthConfig>>,
}

/// A backend some route names, and who named it first.
struct Backend {
    ns: String,
    service: String,
    port: IntOrString,
    settings: BackendSettings,
    first: String,
}

/// Translates the Ingresses of ours into claims, routes and backends.
pub fn translate(objects: &IngressObjects, settings: &IngressSettings) -> Translation {
    let mut out = Translation::default();
    let accepted = accept::accept(objects, settings, &mut out);
    if accepted.is_empty() {
        // The common case without Ingresses: no index of Services is built per rebuild.
        return out;
    }
    let mut t = Translator::new(settings, out);
    t.claim_ports(&accepted, objects);
    for a in &accepted {
        if a.annotations.use_regex || a.annotations.rewrite_target.is_some() {
            for host in rule_hosts(a.ingress) {
                t.regex_hosts.insert(host);
            }
        }
    }
    for a in accepted.iter().filter(|a| a.annotations.canary.is_none()) {
        t.place(a);
    }
    for a in accepted.iter().filter(|a| a.annotations.from_to_www) {
        t.www_redirects(a);
    }
    for a in accepted.iter().filter(|a| a.annotations.canary.is_none()) {
        t.default_backend(a);
    }
    for a in accepted.iter().filter(|a| a.annotations.canary.is_some()) {
        t.canary(a);
    }
    t.finish(objects)
}

/// The hosts of an Ingress's rules, lower-cased (`""` for a rule without host).
fn rule_hosts(ingress: &Ingress) -> Vec<String> {
    ingress
        .spec
        .as_ref()
        .and_then(|s| s.rules.as_ref())
        .into_iter()
        .flatten()
        .map(|r| r.host.as_deref().unwrap_or("").to_ascii_lowercase())
        .collect()
}

fn host_match(host: &str) -> Vec<HostMatch> {
    if host.is_empty() {
        Vec::new()
    } else if let Some(suffix) = host.strip_prefix('*') {
        vec![HostMatch::Wildcard(suffix.to_owned())]
    } else {
        vec![HostMatch::Exact(host.to_owned())]
    }
}

/// The pool name of a Service port: `ns/service:port`.
pub fn backend_name(ns: &str, service: &str, port: &IntOrString) -> String {
    match port {
        IntOrString::Int(n) => format!("{ns}/{service}:{n}"),
        IntOrString::String(s) => format!("{ns}/{service}:{s}"),
    }
}

/// Adds the Ingress part `t` to the BackendPools' `set`. BackendPools keep what they hold:
/// when one claims `--http-port` as TCP or TLS (or `--https-port` as TCP or plain text),
/// the Ingresses are not served on that port (a `PortConflict` problem on each); on a
/// shared port their routes come after the BackendPools' (a BackendPool wins a tie) and a
/// BackendPool's certificate wins an SNI name both claim.
pub fn merge(set: &mut ConfigSet, mut t: Translation, settings: &IngressSettings) -> Translation {
    for (port, tls) in [(settings.http_port, false), (settings.https_port, true)] {
        let holder = set
            .listeners
            .iter()
            .find(|l| l.port == port && (l.protocol != Protocol::Http || l.tls.is_some() != tls));
        let Some(holder) = holder else { continue };
        let ingress_uses = t.set.listeners.iter().any(|l| l.port == port);
        if !ingress_uses {
            continue;
        }
        let kind = if tls { "HTTPS" } else { "HTTP" };
        let holder = holder.owner.clone();
        t.set.listeners.retain(|l| l.port != port);
        t.set.routes.retain(|r| r.port != port);
        let served: Vec<String> = t.ours.difference(&t.refused).cloned().collect();
        for name in served {
            t.problem(
                &name,
                "PortConflict",
                format!("port {port} (the Ingress {kind} port) is held by BackendPool {holder} with another protocol or TLS setting; this Ingress is not served on it"),
            );
        }
    }
    set.listeners.extend(t.set.listeners.iter().cloned());
    set.routes.extend(t.set.routes.iter().cloned());
    if !t.set.pools.is_empty() {
        set.pools.extend(t.set.pools.iter().cloned());
        set.pools.sort_by(|a, b| a.name.cmp(&b.name));
    }
    t
}

#[cfg(test)]
mod tests;
