//! HTTPRoute and GRPCRoute rules -> the model's route pieces (path and extra conditions,
//! filters, weighted backends), independent of where the route attaches.
//!
//! Anything a rule asks for that sluice cannot do exactly (a regular-expression header,
//! a mirror, per-backend filters, rule timeouts, a prefix replacement after a regular
//! expression) makes the whole route not accepted (`UnsupportedValue`, naming the field), as
//! the specification requires for unknown values — never served differently.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, StatusCode};
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;

use super::grants::Grants;
use super::types::{
    BackendRef, GrpcRouteMatch, HeaderModifier, HttpRouteMatch, PathModifier, RouteFilter,
    ValueMatch,
};
use super::{RouteKind, condition::Problem};
use crate::config::{
    HeaderChanges, PathMatch, PathRegex, PathReplace, RedirectConfig, RequestMatch, RewriteConfig,
    RouteFilters, WeightedBackend,
};

/// One translated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Each match: a path condition and extra conditions (any one selects the rule).
    pub matches: Vec<(PathMatch, RequestMatch)>,
    /// Header changes, redirect, rewrite.
    pub filters: Arc<RouteFilters>,
    /// Where matched requests go.
    pub action: RuleAction,
}

/// What a rule does with a matched request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleAction {
    /// Weighted backends; an invalid backendRef keeps its share under a name no pool has,
    /// which the data plane answers with 500.
    Forward(Vec<WeightedBackend>),
    /// A fixed answer: the redirect's status, or 500 when no backend is valid.
    Respond(StatusCode),
}

/// A Service port some rule forwards to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// Service namespace.
    pub ns: String,
    /// Service name.
    pub service: String,
    /// Service port number.
    pub port: i32,
    /// Spoken to as h2c (GRPCRoute, or `appProtocol: kubernetes.io/h2c`).
    pub h2c: bool,
    /// The rule's `timeouts`: until the answer's head arrives, instead of the default.
    pub timeout: Option<Duration>,
}

impl Backend {
    /// The pool name: `gateway:NS/SERVICE:PORT` (`gateway-h2c:` for h2c). The prefix keeps it
    /// apart from BackendPools (`ns/name`) and Ingress backends (`ns/service:port`).
    pub fn pool_name(&self) -> String {
        let scheme = if self.h2c { "gateway-h2c" } else { "gateway" };
        let name = format!("{scheme}:{}/{}:{}", self.ns, self.service, self.port);
        match self.timeout {
            Some(t) => format!("{name}@timeout={}", crate::config::format_duration(t)),
            None => name,
        }
    }
}

/// A rule's `timeouts` (`request`, `backendRequest`; Gateway API durations, `0s` = none):
/// the shorter of the two bounds the time until the answer's head arrives (sluice sends
/// each request to one backend at a time, and retries only connection failures, so the two
/// coincide but when a connect fails).
fn rule_timeout(
    timeouts: Option<&serde_json::Value>,
    field: &str,
) -> Result<Option<Duration>, String> {
    let Some(serde_json::Value::Object(map)) = timeouts else {
        return Ok(None);
    };
    let mut shortest: Option<Duration> = None;
    for (key, value) in map {
        let key_field = format!("{field}.timeouts.{key}");
        if key != "request" && key != "backendRequest" {
            return Err(format!("{key_field}: not a timeout sluice knows"));
        }
        let text = value
            .as_str()
            .ok_or_else(|| format!("{key_field}: a duration string, e.g. 10s"))?;
        let d = crate::config::parse_duration(text).map_err(|e| format!("{key_field}: {e}"))?;
        if !d.is_zero() {
            shortest = Some(shortest.map_or(d, |s| s.min(d)));
        }
    }
    Ok(shortest)
}

/// What the rules of one route need from the cluster.
pub struct Lookup<'a> {
    /// Services by (namespace, name).
    pub services: &'a BTreeMap<(String, String), Arc<Service>>,
    /// ReferenceGrants.
    pub grants: &'a Grants,
}

/// A route's translated rules, or why it cannot be accepted.
#[derive(Debug, Default)]
pub struct Translated {
    /// The rules, in order.
    pub rules: Vec<Rule>,
    /// The backends they forward to, by pool name.
    pub backends: BTreeMap<String, Backend>,
    /// `Accepted=False` (`UnsupportedValue`, `IncompatibleFilters`), if any.
    pub refused: Option<Problem>,
    /// `ResolvedRefs=False` (the first unresolved backendRef), if any.
    pub unresolved: Option<Problem>,
}

impl Translated {
    /// Refuses the route (the first reason stays).
    pub fn refuse(&mut self, reason: &'static str, message: String) {
        if self.refused.is_none() {
            self.refused = Some(Problem { reason, message });
        }
    }

    /// Refuses the route for fields sluice does not know (another channel's or version's).
    pub fn refuse_unknown(&mut self, other: &BTreeMap<String, serde_json::Value>, field: &str) {
        if let Some(why) = unknown_fields(other, field) {
            self.refuse("UnsupportedValue", why);
        }
    }
}

/// The message for fields of another channel or version, if there are any: sluice
/// implements the standard channel of v1.6.3 and ignores nothing.
pub fn unknown_fields(other: &BTreeMap<String, serde_json::Value>, field: &str) -> Option<String> {
    if other.is_empty() {
        return None;
    }
    let names: Vec<String> = other.keys().map(|k| format!("{field}.{k}")).collect();
    Some(format!(
        "{}: not implemented by sluice (it serves the standard channel of Gateway API v1.6.3)",
        names.join(", ")
    ))
}

/// Converts one HTTPRoute's rules.
pub fn http_rules(
    ns: &str,
    rules: &[super::types::HttpRouteRule],
    lookup: &Lookup<'_>,
) -> Translated {
    let mut out = Translated::default();
    for (r, rule) in rules.iter().enumerate() {
        let field = format!("spec.rules[{r}]");
        out.refuse_unknown(&rule.other, &field);
        let timeout = match rule_timeout(rule.timeouts.as_ref(), &field) {
            Ok(t) => t,
            Err(why) => {
                out.refuse("UnsupportedValue", why);
                None
            }
        };
        let default_match = [HttpRouteMatch::default()];
        let matches = match rule.matches.as_deref() {
            Some(m) if !m.is_empty() => m,
            _ => &default_match[..],
        };
        let mut converted = Vec::new();
        for (m, one) in matches.iter().enumerate() {
            match http_match(one) {
                Ok(pair) => converted.push(pair),
                Err(why) => out.refuse("UnsupportedValue", format!("{field}.matches[{m}]{why}")),
            }
        }
        let filters = rule.filters.as_deref().unwrap_or_default();
        let (filters, redirect) =
            match convert_filters(filters, &converted, &field, RouteKind::Http) {
                Ok(f) => f,
                Err(p) => {
                    out.refuse(p.reason, p.message);
                    continue;
                }
            };
        let refs = rule.backend_refs.as_deref().unwrap_or_default();
        let to = Target {
            kind: RouteKind::Http,
            timeout,
        };
        let action = forward(&mut out, ns, refs, &field, &to, lookup);
        let action = redirect.map(RuleAction::Respond).unwrap_or(action);
        out.rules.push(Rule {
            matches: converted,
            filters: Arc::new(filters),
            action,
        });
    }
    out
}

/// Converts one GRPCRoute's rules: a method match becomes a path (`/service/method`),
/// backends are spoken to as h2c.
pub fn grpc_rules(
    ns: &str,
    rules: &[super::types::GrpcRouteRule],
    lookup: &Lookup<'_>,
) -> Translated {
    let mut out = Translated::default();
    for (r, rule) in rules.iter().enumerate() {
        let field = format!("spec.rules[{r}]");
        out.refuse_unknown(&rule.other, &field);
        let default_match = [GrpcRouteMatch::default()];
        let matches = match rule.matches.as_deref() {
            Some(m) if !m.is_empty() => m,
            _ => &default_match[..],
        };
        let mut converted = Vec::new();
        for (m, one) in matches.iter().enumerate() {
            match grpc_match(one) {
                Ok(pair) => converted.push(pair),
                Err(why) => out.refuse("UnsupportedValue", format!("{field}.matches[{m}]{why}")),
            }
        }
        let filters = rule.filters.as_deref().unwrap_or_default();
        let (filters, _) = match convert_filters(filters, &converted, &field, RouteKind::Grpc) {
            Ok(f) => f,
            Err(p) => {
                out.refuse(p.reason, p.message);
                continue;
            }
        };
        let refs = rule.backend_refs.as_deref().unwrap_or_default();
        let to = Target {
            kind: RouteKind::Grpc,
            timeout: None,
        };
        let action = forward(&mut out, ns, refs, &field, &to, lookup);
        out.rules.push(Rule {
            matches: converted,
            filters: Arc::new(filters),
            action,
        });
    }
    out
}

fn http_match(m: &HttpRouteMatch) -> Result<(PathMatch, RequestMatch), String> {
    let (kind, value) = match &m.path {
        Some(p) => (
            p.type_.as_deref().unwrap_or("PathPrefix"),
            p.value.as_deref().unwrap_or("/"),
        ),
        None => ("PathPrefix", "/"),
    };
    let path = match kind {
        "Exact" => PathMatch::Exact(value.to_owned()),
        "PathPrefix" => {
            let trimmed = value.trim_end_matches('/');
            PathMatch::Prefix(if trimmed.is_empty() { "/" } else { trimmed }.to_owned())
        }
        "RegularExpression" => PathMatch::Regex(PathRegex::new(value).map_err(|e| {
            format!(".path.value: {value:?} is not a valid regular expression: {e}")
        })?),
        other => return Err(format!(".path.type: {other:?} is not supported")),
    };
    let mut conditions = RequestMatch {
        headers: headers(m.headers.as_deref().unwrap_or_default(), ".headers")?,
        ..RequestMatch::default()
    };
    for (i, q) in m.query_params.iter().flatten().enumerate() {
        exact(q, &format!(".queryParams[{i}]"))?;
        if conditions.query.iter().all(|(n, _)| *n != q.name) {
            conditions.query.push((q.name.clone(), q.value.clone()));
        }
    }
    if let Some(method) = &m.method {
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| format!(".method: {method:?} is not an HTTP method"))?;
        conditions.methods.push(method);
    }
    Ok((path, conditions))
}

fn grpc_match(m: &GrpcRouteMatch) -> Result<(PathMatch, RequestMatch), String> {
    let conditions = RequestMatch {
        headers: headers(m.headers.as_deref().unwrap_or_default(), ".headers")?,
        ..RequestMatch::default()
    };
    let Some(method) = &m.method else {
        return Ok((PathMatch::Prefix("/".to_owned()), conditions));
    };
    let service = method.service.as_deref().filter(|s| !s.is_empty());
    let name = method.method.as_deref().filter(|s| !s.is_empty());
    let path = match (method.type_.as_deref().unwrap_or("Exact"), service, name) {
        ("Exact", Some(s), Some(n)) => PathMatch::Exact(format!("/{s}/{n}")),
        ("Exact", Some(s), None) => PathMatch::Prefix(format!("/{s}")),
        ("Exact", None, Some(n)) => PathMatch::Regex(
            PathRegex::new(&format!("/[^/]+/{}", regex::escape(n)))
                .map_err(|e| format!(".method: {e}"))?,
        ),
        ("RegularExpression", s, n) => PathMatch::Regex(
            PathRegex::new(&format!(
                "/(?:{})/(?:{})",
                s.unwrap_or("[^/]+"),
                n.unwrap_or("[^/]+")
            ))
            .map_err(|e| format!(".method: not a valid regular expression: {e}"))?,
        ),
        (_, None, None) => PathMatch::Prefix("/".to_owned()),
        (other, ..) => return Err(format!(".method.type: {other:?} is not supported")),
    };
    Ok((path, conditions))
}

fn exact(v: &ValueMatch, field: &str) -> Result<(), String> {
    match v.type_.as_deref().unwrap_or("Exact") {
        "Exact" => Ok(()),
        other => Err(format!(
            "{field}.type: {other:?} matching is not implemented by sluice (only Exact)"
        )),
    }
}

fn headers(list: &[ValueMatch], field: &str) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut out: Vec<(HeaderName, HeaderValue)> = Vec::new();
    for (i, h) in list.iter().enumerate() {
        let field = format!("{field}[{i}]");
        exact(h, &field)?;
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| format!("{field}.name: {:?} is not a header name", h.name))?;
        let value = HeaderValue::from_str(&h.value)
            .map_err(|_| format!("{field}.value: not a header value"))?;
        // Names are case-insensitive: the first condition on a name counts (the spec's rule).
        if out.iter().all(|(n, _)| *n != name) {
            out.push((name, value));
        }
    }
    Ok(out)
}

fn header_changes(m: &HeaderModifier, field: &str) -> Result<HeaderChanges, Problem> {
    let bad = unsupported;
    let pairs = |list: &Option<Vec<super::types::HttpHeader>>, part: &str| {
        list.iter()
            .flatten()
            .enumerate()
            .map(|(i, h)| {
                let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| {
                    bad(format!(
                        "{field}.{part}[{i}].name: {:?} is not a header name",
                        h.name
                    ))
                })?;
                let value = HeaderValue::from_str(&h.value)
                    .map_err(|_| bad(format!("{field}.{part}[{i}].value: not a header value")))?;
                Ok((name, value))
            })
            .collect::<Result<Vec<_>, Problem>>()
    };
    let remove = m
        .remove
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, n)| {
            HeaderName::from_bytes(n.as_bytes())
                .map_err(|_| bad(format!("{field}.remove[{i}]: {n:?} is not a header name")))
        })
        .collect::<Result<Vec<_>, Problem>>()?;
    Ok(HeaderChanges {
        remove,
        set: pairs(&m.set, "set")?,
        add: pairs(&m.add, "add")?,
    })
}

/// `UnsupportedValue`, naming the field.
fn unsupported(message: String) -> Problem {
    Problem {
        reason: "UnsupportedValue",
        message,
    }
}

/// The rule's filters, and the redirect status when it answers with a redirect.
fn convert_filters(
    list: &[RouteFilter],
    matches: &[(PathMatch, RequestMatch)],
    field: &str,
    kind: RouteKind,
) -> Result<(RouteFilters, Option<StatusCode>), Problem> {
    let mut out = RouteFilters::default();
    let regex_match = matches
        .iter()
        .any(|(p, _)| matches!(p, PathMatch::Regex(_)));
    for (i, f) in list.iter().enumerate() {
        let field = format!("{field}.filters[{i}]");
        let part = |name: &str| format!("{field}.{name}");
        let missing = |name: &str| unsupported(format!("{field}.{name}: missing"));
        match (f.type_.as_str(), kind) {
            ("RequestHeaderModifier", _) => {
                let m = f.request_header_modifier.as_ref();
                let m = m.ok_or_else(|| missing("requestHeaderModifier"))?;
                out.request_headers = header_changes(m, &part("requestHeaderModifier"))?;
            }
            ("ResponseHeaderModifier", _) => {
                let m = f.response_header_modifier.as_ref();
                let m = m.ok_or_else(|| missing("responseHeaderModifier"))?;
                out.response_headers = header_changes(m, &part("responseHeaderModifier"))?;
            }
            ("RequestRedirect", RouteKind::Http) => {
                let r = f.request_redirect.as_ref();
                let r = r.ok_or_else(|| missing("requestRedirect"))?;
                out.redirect = Some(redirect(r, regex_match, &part("requestRedirect"))?);
            }
            ("URLRewrite", RouteKind::Http) => {
                let r = f
                    .url_rewrite
                    .as_ref()
                    .ok_or_else(|| missing("urlRewrite"))?;
                out.rewrite = Some(url_rewrite(r, regex_match, &part("urlRewrite"))?);
            }
            (t @ ("RequestRedirect" | "URLRewrite"), _) => {
                return Err(unsupported(format!(
                    "{field}.type: {t} is not a {} filter",
                    kind.as_str()
                )));
            }
            (other, _) => {
                return Err(unsupported(format!(
                    "{field}.type: {other} is not implemented by sluice"
                )));
            }
        }
    }
    if out.redirect.is_some() && out.rewrite.is_some() {
        return Err(Problem {
            reason: "IncompatibleFilters",
            message: format!("{field}.filters: RequestRedirect and URLRewrite cannot be combined"),
        });
    }
    let status = out.redirect.as_ref().map(|r| r.status);
    Ok((out, status))
}

/// `RequestRedirect` (status 302 by default).
fn redirect(
    r: &super::types::RequestRedirect,
    regex_match: bool,
    field: &str,
) -> Result<RedirectConfig, Problem> {
    let status = StatusCode::from_u16(r.status_code.unwrap_or(302) as u16)
        .ok()
        .filter(|s| matches!(s.as_u16(), 301 | 302 | 303 | 307 | 308))
        .ok_or_else(|| unsupported(format!("{field}.statusCode: not 301, 302, 303, 307 or 308")))?;
    let scheme = match r.scheme.as_deref() {
        None => None,
        Some("http") => Some("http"),
        Some("https") => Some("https"),
        Some(other) => {
            return Err(unsupported(format!(
                "{field}.scheme: {other:?} is not http or https"
            )));
        }
    };
    let port = match r.port {
        None => None,
        Some(p) => Some(
            u16::try_from(p)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| unsupported(format!("{field}.port: {p} is not a port")))?,
        ),
    };
    let path = match &r.path {
        None => None,
        Some(p) => Some(path_replace(p, regex_match, &format!("{field}.path"))?),
    };
    Ok(RedirectConfig {
        scheme,
        host: r.hostname.as_ref().map(|h| h.to_ascii_lowercase()),
        port,
        path,
        status,
    })
}

/// `URLRewrite`: the `Host` and the whole path or the matched prefix sent upstream.
fn url_rewrite(
    r: &super::types::UrlRewrite,
    regex_match: bool,
    field: &str,
) -> Result<RewriteConfig, Problem> {
    let host = match &r.hostname {
        None => None,
        Some(h) => Some(
            HeaderValue::from_str(h)
                .map_err(|_| unsupported(format!("{field}.hostname: not a header value")))?,
        ),
    };
    let (path_prefix, full_path) = match &r.path {
        None => (None, None),
        Some(p) => match path_replace(p, regex_match, &format!("{field}.path"))? {
            PathReplace::Prefix(prefix) => (Some(prefix), None),
            PathReplace::Full(full) => (None, Some(full)),
        },
    };
    Ok(RewriteConfig {
        path_prefix,
        full_path,
        host,
    })
}

fn path_replace(p: &PathModifier, regex_match: bool, field: &str) -> Result<PathReplace, Problem> {
    match p.type_.as_str() {
        "ReplaceFullPath" => Ok(PathReplace::Full(
            p.replace_full_path
                .clone()
                .unwrap_or_else(|| "/".to_owned()),
        )),
        "ReplacePrefixMatch" if regex_match => Err(unsupported(format!(
            "{field}: ReplacePrefixMatch needs a PathPrefix or Exact match, not a regular expression"
        ))),
        "ReplacePrefixMatch" => Ok(PathReplace::Prefix(
            p.replace_prefix_match
                .clone()
                .unwrap_or_else(|| "/".to_owned()),
        )),
        other => Err(unsupported(format!(
            "{field}.type: {other:?} is not supported"
        ))),
    }
}

/// The weighted backends of a rule. Every invalid backendRef keeps its weight under a
/// name no pool has (500s, as the specification requires) and the first one decides the
/// route's `ResolvedRefs` reason; no valid weight at all answers 500.
/// What a rule's backends are for: the route kind and the rule's timeout.
struct Target {
    kind: RouteKind,
    timeout: Option<Duration>,
}

fn forward(
    out: &mut Translated,
    ns: &str,
    refs: &[BackendRef],
    field: &str,
    to: &Target,
    lookup: &Lookup<'_>,
) -> RuleAction {
    let mut backends = Vec::new();
    for (i, b) in refs.iter().enumerate() {
        let field = format!("{field}.backendRefs[{i}]");
        let weight = u32::try_from(b.weight.unwrap_or(1)).unwrap_or(0);
        if b.filters.as_ref().is_some_and(|f| !f.is_empty()) {
            out.refuse(
                "UnsupportedValue",
                format!("{field}.filters: per-backend filters are not implemented by sluice"),
            );
        }
        match resolve(ns, b, &field, to.kind, lookup) {
            Ok(mut backend) => {
                backend.timeout = to.timeout;
                let name = backend.pool_name();
                out.backends.insert(name.clone(), backend);
                backends.push(WeightedBackend { name, weight });
            }
            Err(problem) => {
                if out.unresolved.is_none() {
                    out.unresolved = Some(problem);
                }
                backends.push(WeightedBackend {
                    name: format!("!unresolved:{ns}/{}", b.name),
                    weight,
                });
            }
        }
    }
    if backends.iter().all(|b| b.weight == 0) {
        return RuleAction::Respond(StatusCode::INTERNAL_SERVER_ERROR);
    }
    RuleAction::Forward(backends)
}

/// A backendRef's Service port, checked: kind, ReferenceGrant, existence, port.
fn resolve(
    ns: &str,
    b: &BackendRef,
    field: &str,
    kind: RouteKind,
    lookup: &Lookup<'_>,
) -> Result<Backend, Problem> {
    let group = b.group.as_deref().unwrap_or("");
    let target_kind = b.kind.as_deref().unwrap_or("Service");
    if !(group.is_empty() || group == "core") || target_kind != "Service" {
        return Err(Problem {
            reason: "InvalidKind",
            message: format!(
                "{field}: {target_kind} (group {group:?}) is not a Service; only Services are supported"
            ),
        });
    }
    let target_ns = b.namespace.as_deref().unwrap_or(ns);
    if target_ns != ns
        && !lookup
            .grants
            .permits(kind.as_str(), ns, "", "Service", target_ns, &b.name)
    {
        return Err(Problem {
            reason: "RefNotPermitted",
            message: format!(
                "{field}: Service {target_ns}/{} is in another namespace and no ReferenceGrant there allows it",
                b.name
            ),
        });
    }
    let key = (target_ns.to_owned(), b.name.clone());
    let Some(service) = lookup.services.get(&key) else {
        return Err(Problem {
            reason: "BackendNotFound",
            message: format!("{field}: Service {target_ns}/{} not found", b.name),
        });
    };
    let Some(port) = b.port else {
        return Err(Problem {
            reason: "UnsupportedValue",
            message: format!("{field}.port: required for a Service"),
        });
    };
    let svc_port = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|ports| ports.iter().find(|p| p.port == port));
    let Some(svc_port) = svc_port else {
        return Err(Problem {
            reason: "BackendNotFound",
            message: format!(
                "{field}.port: Service {target_ns}/{} has no port {port}",
                service.name_any()
            ),
        });
    };
    let h2c =
        kind == RouteKind::Grpc || svc_port.app_protocol.as_deref() == Some("kubernetes.io/h2c");
    Ok(Backend {
        ns: target_ns.to_owned(),
        service: b.name.clone(),
        port,
        h2c,
        timeout: None,
    })
}
