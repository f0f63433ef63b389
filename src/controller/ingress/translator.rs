//! Placing an accepted Ingress: its rules, redirects, default backend and canary split
//! become routes; the Service ports they name become backends (built in `backends.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::IngressServiceBackend;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use std::sync::Arc;

use super::{
    Accepted, Backend, DRAIN_TIMEOUT, IngressObjects, IngressSettings, Translation, annotations,
    backend_name, host_match, owner, paths, rule_hosts,
};
use crate::config::{
    CanaryRule, ForwardTo, ListenerClaim, PathMatch, PathReplace, Protocol, RedirectConfig,
    RewriteConfig, RouteAction, RouteConfig, RouteFilters, TlsConfig, WeightedBackend,
};

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

/// The translation under way.
pub(super) struct Translator<'s> {
    pub(super) settings: &'s IngressSettings,
    pub(super) out: Translation,
    pub(super) backends: BTreeMap<String, Backend>,
    /// Which Ingress holds each route, by key, with the route's index in `routes`.
    taken: HashMap<RouteKey, (String, usize)>,
    /// Hosts with a certificate on the HTTPS port.
    tls_hosts: BTreeSet<String>,
    /// Hosts whose non-Exact paths are regular expressions (ingress-nginx's `use-regex`
    /// applies to every path of the host).
    pub(super) regex_hosts: BTreeSet<String>,
    pub(super) routes: Vec<RouteConfig>,
}

impl<'s> Translator<'s> {
    /// An empty translation adding to `out`.
    pub(super) fn new(settings: &'s IngressSettings, out: Translation) -> Self {
        Translator {
            settings,
            out,
            backends: BTreeMap::new(),
            taken: HashMap::new(),
            tls_hosts: BTreeSet::new(),
            regex_hosts: BTreeSet::new(),
            routes: Vec::new(),
        }
    }

    /// The HTTP port claim of every accepted Ingress, and the HTTPS claims of their
    /// `spec.tls` entries whose Secret holds a usable certificate.
    pub(super) fn claim_ports(&mut self, accepted: &[Accepted<'_>], objects: &IngressObjects) {
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
                let cert: TlsConfig = match crate::controller::index::tls_from_secret(
                    found, &a.ns, secret,
                ) {
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
                    format!("{field}: Service {}:{} is already served with the backend annotations (timeouts, backend-protocol, load-balance, upstream-hash-by, affinity, proxy-next-upstream, sluice.dev/) of Ingress {first}, the oldest naming it; this Ingress's differ and are not applied", svc.name, port_text(&port)),
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
    pub(super) fn place(&mut self, a: &Accepted<'_>) {
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
                        full_path: None,
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
    pub(super) fn www_redirects(&mut self, a: &Accepted<'_>) {
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
    pub(super) fn default_backend(&mut self, a: &Accepted<'_>) {
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
    pub(super) fn canary(&mut self, a: &Accepted<'_>) {
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
            external_auth: a.annotations.external_auth.clone(),
            cors: a.annotations.cors.clone(),
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
