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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass, IngressServiceBackend};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::config::{
    BasicAuthConfig, CanaryRule, ConfigSet, CredentialSource, ForwardTo, HostMatch, Htpasswd,
    ListenerClaim, ListenerConfig, PathMatch, PathReplace, PoolConfig, Protocol,
    ProxyProtocolVersion, RedirectConfig, RewriteConfig, RouteAction, RouteConfig, RouteFilters,
    Timeouts, TlsConfig, WeightedBackend,
};

pub mod annotations;
mod paths;

use annotations::{Annotations, BackendSettings};

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
    /// Event reason: `Refused`, `UnsupportedAnnotation`, `Conflict`, `ServiceNotFound`,
    /// `SecretNotFound`, `CanaryWithoutMain`.
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
    let accepted = accept(objects, settings, &mut out);
    if accepted.is_empty() {
        // The common case without Ingresses: no index of Services is built per rebuild.
        return out;
    }
    let mut t = Translator {
        settings,
        out,
        backends: BTreeMap::new(),
        taken: HashMap::new(),
        tls_hosts: BTreeSet::new(),
        regex_hosts: BTreeSet::new(),
        routes: Vec::new(),
    };
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

/// Ingresses of ours, oldest first, with their annotations read; the refused ones are
/// recorded in `out`.
fn accept<'a>(
    objects: &'a IngressObjects,
    settings: &IngressSettings,
    out: &mut Translation,
) -> Vec<Accepted<'a>> {
    let mut mine: Vec<&Ingress> = objects
        .ingresses
        .iter()
        .map(Arc::as_ref)
        .filter(|i| is_ours(i, &objects.classes, settings))
        .collect();
    mine.sort_by_key(|i| (i.creation_timestamp().map(|t| t.0), ingress_name(i)));
    let mut accepted = Vec::new();
    for ingress in mine {
        let name = ingress_name(ingress);
        out.ours.insert(name.clone());
        let parsed = annotations::parse(ingress.annotations());
        for key in parsed.unsupported {
            out.problem(
                &name,
                "UnsupportedAnnotation",
                format!("annotation {key}: not implemented by sluice; ignored"),
            );
        }
        let Some(annotations) = parsed.annotations else {
            for why in parsed.refusals {
                out.problem(&name, "Refused", why);
            }
            out.refused.insert(name);
            continue;
        };
        let ns = ingress.namespace().unwrap_or_else(|| "default".to_owned());
        let basic_auth = match &annotations.basic_auth {
            None => None,
            Some(req) => match basic_auth(req, &ns, &objects.secrets) {
                Ok(auth) => Some(Arc::new(auth)),
                Err(why) => {
                    out.problem(
                        &name,
                        "Refused",
                        format!("annotation {}auth-secret: {why}", annotations::PREFIX),
                    );
                    out.refused.insert(name);
                    continue;
                }
            },
        };
        accepted.push(Accepted {
            ingress,
            ns,
            name,
            annotations,
            basic_auth,
        });
    }
    accepted
}

/// The users of `auth-secret` (key `auth`, htpasswd), as a route filter.
fn basic_auth(
    req: &annotations::BasicAuth,
    ns: &str,
    secrets: &[Arc<Secret>],
) -> Result<BasicAuthConfig, String> {
    let (secret_ns, secret) = req.secret.split_once('/').unwrap_or((ns, &req.secret));
    let found = secrets
        .iter()
        .find(|s| s.namespace().as_deref() == Some(secret_ns) && s.name_any() == secret);
    let bytes = super::index::htpasswd_from_secret(found.map(Arc::as_ref), secret_ns, secret)?;
    let users = Htpasswd::parse(&bytes)?;
    let challenge = http::HeaderValue::from_str(&format!("Basic realm=\"{}\"", req.realm))
        .map_err(|_| "the realm is not a header value".to_owned())?;
    Ok(BasicAuthConfig {
        challenge,
        users: Arc::new(users),
        source: CredentialSource::Secret(format!("{secret_ns}/{secret}")),
    })
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

/// Route identity for the oldest-wins rule: port, host, path kind and text, and whether it
/// is a canary-free main route.
type RouteKey = (u16, String, u8, String);

fn route_key(port: u16, host: &str, path: &PathMatch) -> RouteKey {
    let (kind, text) = match path {
        PathMatch::Exact(p) => (0, p.clone()),
        PathMatch::Prefix(p) => (1, p.clone()),
        PathMatch::Regex(r) => (2, r.as_str().to_owned()),
    };
    (port, host.to_owned(), kind, text)
}

struct Translator<'s> {
    settings: &'s IngressSettings,
    out: Translation,
    backends: BTreeMap<String, Backend>,
    /// Which Ingress holds each route, by key, with the route's index in `routes`.
    taken: HashMap<RouteKey, (String, usize)>,
    /// Hosts with a certificate on the HTTPS port.
    tls_hosts: BTreeSet<String>,
    /// Hosts whose non-Exact paths are regular expressions (ingress-nginx's `use-regex`
    /// applies to every path of the host).
    regex_hosts: BTreeSet<String>,
    routes: Vec<RouteConfig>,
}

impl Translator<'_> {
    /// The HTTP port claim of every accepted Ingress, and the HTTPS claims of their
    /// `spec.tls` entries whose Secret holds a usable certificate.
    fn claim_ports(&mut self, accepted: &[Accepted<'_>], objects: &IngressObjects) {
        let secrets: HashMap<(String, String), &Secret> = objects
            .secrets
            .iter()
            .map(|s| {
                (
                    (s.namespace().unwrap_or_default(), s.name_any()),
                    s.as_ref(),
                )
            })
            .collect();
        for a in accepted {
            let owner = owner(&a.name);
            self.out.set.listeners.push(Arc::new(ListenerClaim {
                owner: owner.clone(),
                port: self.settings.http_port,
                protocol: Protocol::Http,
                hosts: Vec::new(),
                tls: None,
                proxy_protocol: false,
                drain_timeout: DRAIN_TIMEOUT,
                tcp_pool: None,
            }));
            let tls = a.ingress.spec.as_ref().and_then(|s| s.tls.as_ref());
            for (i, entry) in tls.into_iter().flatten().enumerate() {
                let Some(secret) = entry.secret_name.as_deref() else {
                    continue;
                };
                let found = secrets.get(&(a.ns.clone(), secret.to_owned())).copied();
                let cert: TlsConfig = match super::index::tls_from_secret(found, &a.ns, secret) {
                    Ok(c) => c,
                    Err(why) => {
                        self.out.problem(
                            &a.name,
                            "SecretNotFound",
                            format!("spec.tls[{i}].secretName: {why}; its hosts are not served over HTTPS"),
                        );
                        continue;
                    }
                };
                let hosts: Vec<String> = entry
                    .hosts
                    .iter()
                    .flatten()
                    .map(|h| h.to_ascii_lowercase())
                    .collect();
                self.tls_hosts.extend(hosts.iter().cloned());
                self.out.set.listeners.push(Arc::new(ListenerClaim {
                    owner: owner.clone(),
                    port: self.settings.https_port,
                    protocol: Protocol::Http,
                    hosts: hosts.iter().flat_map(|h| host_match(h)).collect(),
                    tls: Some(cert),
                    proxy_protocol: false,
                    drain_timeout: DRAIN_TIMEOUT,
                    tcp_pool: None,
                }));
            }
        }
    }

    /// Records the backend `svc` names for Ingress `a`, returning its pool name.
    fn backend(
        &mut self,
        a: &Accepted<'_>,
        svc: &IngressServiceBackend,
        field: &str,
    ) -> Option<String> {
        let port = match svc.port.as_ref() {
            Some(p) => match (&p.name, p.number) {
                (Some(n), _) if !n.is_empty() => IntOrString::String(n.clone()),
                (_, Some(n)) => IntOrString::Int(n),
                _ => None?,
            },
            None => None?,
        };
        let name = backend_name(&a.ns, &svc.name, &port);
        match self.backends.get(&name) {
            Some(b) if b.settings != a.annotations.backend && b.first != a.name => {
                let first = b.first.clone();
                self.out.problem(
                    &a.name,
                    "Conflict",
                    format!("{field}: Service {}:{} is already served with the backend annotations (timeouts, backend-protocol, load-balance, upstream-hash-by, affinity) of Ingress {first}, the oldest naming it; this Ingress's differ and are not applied", svc.name, port_text(&port)),
                );
            }
            Some(_) => {}
            None => {
                self.backends.insert(
                    name.clone(),
                    Backend {
                        ns: a.ns.clone(),
                        service: svc.name.clone(),
                        port,
                        settings: a.annotations.backend.clone(),
                        first: a.name.clone(),
                    },
                );
            }
        }
        Some(name)
    }

    /// Places the routes of Ingress `a`'s rules.
    fn place(&mut self, a: &Accepted<'_>) {
        let Some(spec) = a.ingress.spec.as_ref() else {
            return;
        };
        for (r, rule) in spec.rules.iter().flatten().enumerate() {
            let host = rule.host.as_deref().unwrap_or("").to_ascii_lowercase();
            for (p, path) in rule.http.iter().flat_map(|h| &h.paths).enumerate() {
                let field = format!("spec.rules[{r}].http.paths[{p}]");
                let translated = match paths::translate(
                    path.path.as_deref().unwrap_or("/"),
                    &path.path_type,
                    self.regex_hosts.contains(&host),
                    a.annotations.rewrite_target.as_deref(),
                ) {
                    Ok(t) => t,
                    Err(why) => {
                        self.out.problem(
                            &a.name,
                            "Refused",
                            format!("{field}: {why}; path not served"),
                        );
                        continue;
                    }
                };
                let Some(svc) = path.backend.service.as_ref() else {
                    self.out.problem(
                        &a.name,
                        "Refused",
                        format!(
                            "{field}.backend: only Service backends are supported; path not served"
                        ),
                    );
                    continue;
                };
                let Some(backend) = self.backend(a, svc, &format!("{field}.backend.service"))
                else {
                    self.out.problem(
                        &a.name,
                        "Refused",
                        format!(
                            "{field}.backend.service.port: neither name nor number; path not served"
                        ),
                    );
                    continue;
                };
                let mut filters = RouteFilters {
                    rewrite: (translated.rewrite.is_some()
                        || a.annotations.upstream_vhost.is_some())
                    .then(|| RewriteConfig {
                        path_prefix: translated.rewrite.clone(),
                        host: a.annotations.upstream_vhost.clone(),
                    }),
                    ..RouteFilters::default()
                };
                if let Some((url, status)) = &a.annotations.redirect {
                    match redirect_to(url, *status) {
                        Ok(r) => filters.redirect = Some(r),
                        Err(why) => {
                            self.out.problem(&a.name, "Refused", why);
                            continue;
                        }
                    }
                }
                let action = RouteAction::Forward(ForwardTo {
                    backends: vec![WeightedBackend {
                        name: backend,
                        weight: 1,
                    }],
                    canary: None,
                });
                let tls = self.tls_hosts.contains(&host);
                if tls {
                    self.push(
                        a,
                        &field,
                        self.settings.https_port,
                        &host,
                        &translated.path,
                        filters.clone(),
                        action.clone(),
                    );
                }
                let mut plain = filters;
                if (tls && a.annotations.ssl_redirect) || a.annotations.force_ssl_redirect {
                    plain.redirect.get_or_insert(RedirectConfig {
                        scheme: Some("https"),
                        host: None,
                        port: None,
                        path: None,
                        status: http::StatusCode::PERMANENT_REDIRECT,
                    });
                }
                self.push(
                    a,
                    &field,
                    self.settings.http_port,
                    &host,
                    &translated.path,
                    plain,
                    action,
                );
            }
            if let Some(root) = &a.annotations.app_root {
                self.app_root(a, &host, root);
            }
        }
    }

    /// `app-root`: `/` answers 302 to the application's root.
    fn app_root(&mut self, a: &Accepted<'_>, host: &str, root: &str) {
        let filters = RouteFilters {
            redirect: Some(RedirectConfig {
                scheme: None,
                host: None,
                port: None,
                path: Some(PathReplace::Full(root.to_owned())),
                status: http::StatusCode::FOUND,
            }),
            ..RouteFilters::default()
        };
        let action = RouteAction::Respond(http::StatusCode::FOUND);
        let field = format!("annotation {}app-root", annotations::PREFIX);
        let mut ports = vec![self.settings.http_port];
        if self.tls_hosts.contains(host) {
            ports.push(self.settings.https_port);
        }
        for port in ports {
            self.push(
                a,
                &field,
                port,
                host,
                &PathMatch::Exact("/".to_owned()),
                filters.clone(),
                action.clone(),
            );
        }
    }

    /// `from-to-www-redirect`: `www.HOST` answers 308 to `HOST` (and `HOST` to `www.HOST`)
    /// unless some Ingress serves that other host itself.
    fn www_redirects(&mut self, a: &Accepted<'_>) {
        let field = format!("annotation {}from-to-www-redirect", annotations::PREFIX);
        for host in rule_hosts(a.ingress) {
            if host.is_empty() || host.starts_with('*') {
                continue;
            }
            let other = match host.strip_prefix("www.") {
                Some(bare) => bare.to_owned(),
                None => format!("www.{host}"),
            };
            let other_hosts = host_match(&other);
            if self
                .routes
                .iter()
                .any(|r| r.hosts == other_hosts && r.owner != owner(&a.name))
            {
                continue;
            }
            let filters = RouteFilters {
                redirect: Some(RedirectConfig {
                    scheme: None,
                    host: Some(host.clone()),
                    port: None,
                    path: None,
                    status: http::StatusCode::PERMANENT_REDIRECT,
                }),
                ..RouteFilters::default()
            };
            let action = RouteAction::Respond(http::StatusCode::PERMANENT_REDIRECT);
            let root = PathMatch::Prefix("/".to_owned());
            let mut ports = vec![self.settings.http_port];
            if self.tls_hosts.contains(&other) {
                ports.push(self.settings.https_port);
            }
            for port in ports {
                self.push(
                    a,
                    &field,
                    port,
                    &other,
                    &root,
                    filters.clone(),
                    action.clone(),
                );
            }
        }
    }

    /// `spec.defaultBackend`: every request no host-less route takes, oldest Ingress first.
    fn default_backend(&mut self, a: &Accepted<'_>) {
        let Some(svc) = a
            .ingress
            .spec
            .as_ref()
            .and_then(|s| s.default_backend.as_ref())
            .and_then(|b| b.service.as_ref())
        else {
            return;
        };
        let field = "spec.defaultBackend.service";
        let Some(backend) = self.backend(a, svc, field) else {
            self.out.problem(
                &a.name,
                "Refused",
                format!("{field}.port: neither name nor number; not served"),
            );
            return;
        };
        let action = RouteAction::Forward(ForwardTo {
            backends: vec![WeightedBackend {
                name: backend,
                weight: 1,
            }],
            canary: None,
        });
        let root = PathMatch::Prefix("/".to_owned());
        self.push(
            a,
            field,
            self.settings.http_port,
            "",
            &root,
            RouteFilters::default(),
            action,
        );
    }

    /// A canary Ingress: its paths add a canary split to the routes of the same host and
    /// path that a main Ingress placed.
    fn canary(&mut self, a: &Accepted<'_>) {
        let canary = a
            .annotations
            .canary
            .clone()
            .expect("only canary Ingresses come here");
        let Some(spec) = a.ingress.spec.as_ref() else {
            return;
        };
        for (r, rule) in spec.rules.iter().flatten().enumerate() {
            let host = rule.host.as_deref().unwrap_or("").to_ascii_lowercase();
            for (p, path) in rule.http.iter().flat_map(|h| &h.paths).enumerate() {
                let field = format!("spec.rules[{r}].http.paths[{p}]");
                // The canary's own rewrite-target (ingress-nginx users copy the main
                // Ingress's annotations) gives the same path condition as the main route.
                let Ok(translated) = paths::translate(
                    path.path.as_deref().unwrap_or("/"),
                    &path.path_type,
                    self.regex_hosts.contains(&host),
                    a.annotations.rewrite_target.as_deref(),
                ) else {
                    self.out.problem(
                        &a.name,
                        "Refused",
                        format!("{field}: path not understood; canary not served"),
                    );
                    continue;
                };
                let Some(backend) = path
                    .backend
                    .service
                    .as_ref()
                    .and_then(|svc| self.backend(a, svc, &format!("{field}.backend.service")))
                else {
                    self.out.problem(
                        &a.name,
                        "Refused",
                        format!("{field}.backend: needs a Service with a port; canary not served"),
                    );
                    continue;
                };
                let mut found = false;
                for port in [self.settings.http_port, self.settings.https_port] {
                    let key = route_key(port, &host, &translated.path);
                    let Some((_, i)) = self.taken.get(&key) else {
                        continue;
                    };
                    if let RouteAction::Forward(f) = &mut self.routes[*i].action {
                        f.canary = Some(CanaryRule {
                            backend: backend.clone(),
                            weight: canary.weight,
                            header: canary.header.clone(),
                        });
                        found = true;
                    }
                }
                if !found {
                    self.out.problem(
                        &a.name,
                        "CanaryWithoutMain",
                        format!("{field}: no Ingress without the canary annotation serves host {host:?} path {:?}; canary not served", path.path.as_deref().unwrap_or("/")),
                    );
                }
            }
        }
    }

    /// Adds a route unless an older Ingress holds the same port, host and path.
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        a: &Accepted<'_>,
        field: &str,
        port: u16,
        host: &str,
        path: &PathMatch,
        filters: RouteFilters,
        action: RouteAction,
    ) {
        let key = route_key(port, host, path);
        if let Some((holder, _)) = self.taken.get(&key) {
            if *holder != a.name {
                let shown = if host.is_empty() { "(any host)" } else { host };
                self.out.problem(
                    &a.name,
                    "Conflict",
                    format!("{field}: host {shown} path {:?} on port {port} is already served by Ingress {holder} (the oldest keeps it)", key.3),
                );
            }
            return;
        }
        self.taken.insert(key, (a.name.clone(), self.routes.len()));
        let filters = RouteFilters {
            access: a.annotations.access.clone(),
            basic_auth: a.basic_auth.clone(),
            ..filters
        };
        self.routes.push(RouteConfig {
            owner: owner(&a.name),
            port,
            hosts: host_match(host),
            path: path.clone(),
            matches: Default::default(),
            filters: Arc::new(filters),
            action,
        });
    }

    /// Builds the backends with their Service endpoints, and the finished translation.
    fn finish(mut self, objects: &IngressObjects) -> Translation {
        let services: HashMap<(String, String), &Service> = objects
            .services
            .iter()
            .map(|s| {
                (
                    (s.namespace().unwrap_or_default(), s.name_any()),
                    s.as_ref(),
                )
            })
            .collect();
        let mut slices: HashMap<(String, String), Vec<&EndpointSlice>> = HashMap::new();
        for s in &objects.slices {
            if let Some(svc) = s.labels().get(super::index::SERVICE_NAME_LABEL) {
                slices
                    .entry((s.namespace().unwrap_or_default(), svc.clone()))
                    .or_default()
                    .push(s.as_ref());
            }
        }
        let backends = std::mem::take(&mut self.backends);
        for (name, b) in backends {
            let key = (b.ns.clone(), b.service.clone());
            let endpoints = match services.get(&key) {
                Some(svc) => super::index::service_endpoints(
                    svc,
                    &b.port,
                    slices.get(&key).map(Vec::as_slice).unwrap_or_default(),
                ),
                None => Err(format!("Service {}/{} not found", b.ns, b.service)),
            };
            let endpoints = endpoints.unwrap_or_else(|why| {
                // Served with no endpoints (503), as ingress-nginx does.
                self.out.problem(
                    &b.first,
                    "ServiceNotFound",
                    format!("backend {name}: {why}; its routes answer 503"),
                );
                Vec::new()
            });
            self.out.set.pools.push(Arc::new(PoolConfig {
                name,
                protocol: Protocol::Http,
                listener: ListenerConfig {
                    port: self.settings.http_port,
                    hosts: Vec::new(),
                    path_prefix: "/".to_owned(),
                    tls: None,
                    proxy_protocol: false,
                    matches: Default::default(),
                },
                endpoints,
                algorithm: b.settings.algorithm.clone(),
                health_check: None,
                outlier_detection: None,
                retry: None,
                affinity: b.settings.affinity.clone(),
                timeouts: Timeouts {
                    connect: b.settings.connect_timeout,
                    request: b.settings.read_timeout,
                    ..Timeouts::default()
                },
                drain_timeout: DRAIN_TIMEOUT,
                max_connections_per_endpoint: None,
                send_proxy_protocol: ProxyProtocolVersion::None,
                filters: RouteFilters::default(),
                canary: None,
                upstream: b.settings.upstream.clone(),
                dns: None,
            }));
        }
        self.out.set.routes = self.routes.into_iter().map(Arc::new).collect();
        self.out
    }
}

fn port_text(port: &IntOrString) -> String {
    match port {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// `permanent-redirect` / `temporal-redirect`: an absolute URL without a query (sluice
/// keeps the request's query on a redirect, which ingress-nginx drops).
fn redirect_to(url: &str, status: http::StatusCode) -> Result<RedirectConfig, String> {
    let bad = |why: &str| {
        format!(
            "annotation {}permanent-redirect/temporal-redirect: {url:?} {why}",
            annotations::PREFIX
        )
    };
    let uri: http::Uri = url.parse().map_err(|_| bad("is not a URL"))?;
    let scheme = match uri.scheme_str() {
        Some("http") => "http",
        Some("https") => "https",
        _ => return Err(bad("is not an absolute http(s) URL")),
    };
    let host = uri.host().ok_or_else(|| bad("has no host"))?;
    if uri.query().is_some() {
        return Err(bad("has a query, which sluice cannot put in a redirect"));
    }
    let path = match uri.path() {
        "" => "/",
        p => p,
    };
    Ok(RedirectConfig {
        scheme: Some(scheme),
        host: Some(host.to_ascii_lowercase()),
        port: uri.port_u16(),
        path: Some(PathReplace::Full(path.to_owned())),
        status,
    })
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
