//! Routing fields of an HTTP pool: `listener.match`, `redirect`, `rewrite`,
//! `requestHeaders` and `responseHeaders`. Each check returns the model value (empty or
//! `None` for anything invalid) and reports problems through [`Ctx`].

use std::collections::BTreeMap;

use http::{HeaderName, HeaderValue, Method, StatusCode};

use super::endpoints::{EndpointSource, check_endpoint_source};
use super::{Ctx, names, normalize_path_prefix};
use crate::api;
use crate::config::{
    CanaryConfig, HeaderChanges, PathReplace, Protocol, RedirectConfig, RequestMatch,
    RewriteConfig, RouteFilters,
};

/// Headers sluice frames on every hop itself (hop-by-hop fields, length, `Host`): neither a
/// route's header changes nor an auth exchange may touch them.
pub(super) const FRAMED_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
];

/// Headers a route may not set, add or remove: the framed ones (for `Host` use
/// `rewrite.host`) and the `X-Forwarded-*` fields sluice sets.
fn reserved(name: &str) -> bool {
    FRAMED_HEADERS.contains(&name)
        || matches!(
            name,
            "x-forwarded-for" | "x-forwarded-proto" | "x-forwarded-host"
        )
}

/// `listener.match` (HTTP only).
pub(super) fn check_match(
    ctx: &mut Ctx<'_>,
    protocol: Protocol,
    spec: Option<&api::MatchSpec>,
) -> RequestMatch {
    let Some(spec) = spec else {
        return RequestMatch::default();
    };
    if protocol == Protocol::Tcp {
        ctx.error("spec.listener.match", "only for protocol HTTP");
        return RequestMatch::default();
    }
    let mut out = RequestMatch::default();
    let headers = spec.headers.as_deref().unwrap_or_default();
    ctx.max_items(
        "spec.listener.match.headers",
        headers.len(),
        api::MAX_MATCH_ENTRIES,
    );
    for (i, h) in headers.iter().enumerate() {
        let field = format!("spec.listener.match.headers[{i}]");
        let Some(name) = header_name(ctx, &format!("{field}.name"), &h.name) else {
            continue;
        };
        if let Some(value) = header_value(ctx, &format!("{field}.value"), &h.value) {
            out.headers.push((name, value));
        }
    }
    let methods = spec.methods.as_deref().unwrap_or_default();
    ctx.max_items(
        "spec.listener.match.methods",
        methods.len(),
        api::MAX_MATCH_ENTRIES,
    );
    for m in methods {
        let method = match m {
            api::HttpMethod::GET => Method::GET,
            api::HttpMethod::HEAD => Method::HEAD,
            api::HttpMethod::POST => Method::POST,
            api::HttpMethod::PUT => Method::PUT,
            api::HttpMethod::DELETE => Method::DELETE,
            api::HttpMethod::OPTIONS => Method::OPTIONS,
            api::HttpMethod::TRACE => Method::TRACE,
            api::HttpMethod::PATCH => Method::PATCH,
        };
        if !out.methods.contains(&method) {
            out.methods.push(method);
        }
    }
    let query = spec.query_params.as_deref().unwrap_or_default();
    ctx.max_items(
        "spec.listener.match.queryParams",
        query.len(),
        api::MAX_MATCH_ENTRIES,
    );
    for (i, q) in query.iter().enumerate() {
        let field = format!("spec.listener.match.queryParams[{i}]");
        let name_ok = !q.name.is_empty() && q.name.bytes().all(is_query_char);
        if !name_ok {
            ctx.error(
                &format!("{field}.name"),
                format!("{:?} is not a query parameter name", q.name),
            );
        }
        let value_ok = q.value.len() <= api::MAX_VALUE_LEN && q.value.bytes().all(is_query_char);
        if !value_ok {
            ctx.error(
                &format!("{field}.value"),
                format!(
                    "{:?} is not a query value as sent (percent-encode it)",
                    q.value
                ),
            );
        }
        if name_ok && value_ok {
            out.query.push((q.name.clone(), q.value.clone()));
        }
    }
    // Sorted, so two pools with the same conditions in another order are seen as one route.
    out.headers
        .sort_by(|a, b| (a.0.as_str(), a.1.as_bytes()).cmp(&(b.0.as_str(), b.1.as_bytes())));
    out.methods.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    out.query.sort();
    out.query.dedup();
    out.headers.dedup();
    out
}

/// Characters of a query name or value as they travel (RFC 3986 query, without the `&`
/// and `=` that delimit pairs).
fn is_query_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$'()*+,;:@/?".contains(&b)
}

/// `redirect`, `rewrite`, `requestHeaders`, `responseHeaders` (HTTP only).
pub(super) fn check_filters(
    ctx: &mut Ctx<'_>,
    protocol: Protocol,
    spec: &api::BackendPoolSpec,
) -> RouteFilters {
    let access = super::policy::check_access(ctx, protocol, spec);
    if protocol == Protocol::Tcp {
        for (field, set) in [
            ("spec.redirect", spec.redirect.is_some()),
            ("spec.rewrite", spec.rewrite.is_some()),
            ("spec.requestHeaders", spec.request_headers.is_some()),
            ("spec.responseHeaders", spec.response_headers.is_some()),
        ] {
            if set {
                ctx.error(field, "only for protocol HTTP");
            }
        }
        return RouteFilters::default();
    }
    if spec.redirect.is_some() && spec.rewrite.is_some() {
        ctx.error(
            "spec.rewrite",
            "a pool that redirects forwards nothing: rewrite does not apply",
        );
    }
    RouteFilters {
        access,
        redirect: spec.redirect.as_ref().and_then(|r| check_redirect(ctx, r)),
        rewrite: spec.rewrite.as_ref().and_then(|r| check_rewrite(ctx, r)),
        request_headers: check_changes(ctx, "spec.requestHeaders", spec.request_headers.as_ref()),
        response_headers: check_changes(
            ctx,
            "spec.responseHeaders",
            spec.response_headers.as_ref(),
        ),
        ..RouteFilters::default()
    }
}

fn check_redirect(ctx: &mut Ctx<'_>, spec: &api::RedirectSpec) -> Option<RedirectConfig> {
    let mut ok = true;
    let host = match &spec.host {
        Some(h) => match names::parse_host(h) {
            Ok(crate::config::HostMatch::Exact(h)) => Some(h),
            _ => {
                ctx.error("spec.redirect.host", format!("{h:?} is not a host name"));
                ok = false;
                None
            }
        },
        None => None,
    };
    let port = match spec.port.map(u16::try_from) {
        Some(Ok(p)) if p > 0 => Some(p),
        Some(_) => {
            ctx.error("spec.redirect.port", "must be 1..=65535");
            ok = false;
            None
        }
        None => None,
    };
    let path = match (&spec.path, &spec.path_prefix) {
        (Some(_), Some(_)) => {
            ctx.error(
                "spec.redirect.pathPrefix",
                "set path or pathPrefix, not both",
            );
            ok = false;
            None
        }
        (Some(p), None) => path(ctx, "spec.redirect.path", p).map(PathReplace::Full),
        (None, Some(p)) => path(ctx, "spec.redirect.pathPrefix", p).map(PathReplace::Prefix),
        (None, None) => None,
    };
    let status = match spec.status_code.unwrap_or(308) {
        code @ (301 | 302 | 303 | 307 | 308) => {
            StatusCode::from_u16(code as u16).unwrap_or(StatusCode::PERMANENT_REDIRECT)
        }
        other => {
            ctx.error(
                "spec.redirect.statusCode",
                format!("must be 301, 302, 303, 307 or 308, got {other}"),
            );
            ok = false;
            StatusCode::PERMANENT_REDIRECT
        }
    };
    let scheme = spec.scheme.map(|s| match s {
        api::Scheme::Http => "http",
        api::Scheme::Https => "https",
    });
    ok.then_some(RedirectConfig {
        scheme,
        host,
        port,
        path,
        status,
    })
}

fn check_rewrite(ctx: &mut Ctx<'_>, spec: &api::RewriteSpec) -> Option<RewriteConfig> {
    let path_prefix = spec
        .path_prefix
        .as_ref()
        .and_then(|p| path(ctx, "spec.rewrite.pathPrefix", p));
    let host = match &spec.host {
        Some(h) => match names::parse_host(h) {
            Ok(crate::config::HostMatch::Exact(h)) => HeaderValue::from_str(&h).ok(),
            _ => {
                ctx.error("spec.rewrite.host", format!("{h:?} is not a host name"));
                return None;
            }
        },
        None => None,
    };
    Some(RewriteConfig {
        path_prefix,
        full_path: None,
        host,
    })
}

/// A replacement path: starts with `/`, no query, fragment or whitespace.
fn path(ctx: &mut Ctx<'_>, field: &str, raw: &str) -> Option<String> {
    match normalize_path_prefix(raw) {
        Ok(_) => Some(raw.to_owned()),
        Err(problem) => {
            ctx.error(field, problem);
            None
        }
    }
}

fn check_changes(
    ctx: &mut Ctx<'_>,
    field: &str,
    spec: Option<&api::HeaderChangesSpec>,
) -> HeaderChanges {
    let mut out = HeaderChanges::default();
    let Some(spec) = spec else {
        return out;
    };
    let mut pairs = |kind: &str, map: Option<&BTreeMap<String, String>>| {
        let map = map
            .map(|m| m.iter().collect::<Vec<_>>())
            .unwrap_or_default();
        ctx.max_items(
            &format!("{field}.{kind}"),
            map.len(),
            api::MAX_MATCH_ENTRIES,
        );
        let mut list = Vec::new();
        for (name, value) in map {
            let at = format!("{field}.{kind}.{name}");
            let Some(name) = changeable(ctx, &at, name) else {
                continue;
            };
            if let Some(value) = header_value(ctx, &at, value) {
                list.push((name, value));
            }
        }
        list
    };
    out.set = pairs("set", spec.set.as_ref());
    out.add = pairs("add", spec.add.as_ref());
    let remove = spec.remove.as_deref().unwrap_or_default();
    ctx.max_items(
        &format!("{field}.remove"),
        remove.len(),
        api::MAX_MATCH_ENTRIES,
    );
    for (i, name) in remove.iter().enumerate() {
        if let Some(name) = changeable(ctx, &format!("{field}.remove[{i}]"), name) {
            out.remove.push(name);
        }
    }
    out
}

/// A header name a route may change.
fn changeable(ctx: &mut Ctx<'_>, field: &str, raw: &str) -> Option<HeaderName> {
    let name = header_name(ctx, field, raw)?;
    if reserved(name.as_str()) {
        let hint = if name == http::header::HOST {
            " (use rewrite.host)"
        } else {
            ""
        };
        ctx.error(
            field,
            format!("{raw:?} is set by sluice and cannot be changed{hint}"),
        );
        return None;
    }
    Some(name)
}

fn header_name(ctx: &mut Ctx<'_>, field: &str, raw: &str) -> Option<HeaderName> {
    match HeaderName::from_bytes(raw.as_bytes()) {
        Ok(name) => Some(name),
        Err(_) => {
            ctx.error(field, format!("{raw:?} is not a header name"));
            None
        }
    }
}

fn header_value(ctx: &mut Ctx<'_>, field: &str, raw: &str) -> Option<HeaderValue> {
    let visible = raw.len() <= api::MAX_VALUE_LEN
        && raw
            .bytes()
            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b));
    match HeaderValue::from_str(raw) {
        Ok(value) if visible => Some(value),
        _ => {
            ctx.error(
                field,
                format!("{raw:?} is not a header value (visible ASCII, at most 4096 characters)"),
            );
            None
        }
    }
}

/// `canary` (HTTP only, not with `redirect`).
pub(super) fn check_canary(
    ctx: &mut Ctx<'_>,
    protocol: Protocol,
    spec: &api::BackendPoolSpec,
) -> Option<CanaryConfig> {
    let canary = spec.canary.as_ref()?;
    if protocol == Protocol::Tcp {
        ctx.error("spec.canary", "only for protocol HTTP");
        return None;
    }
    if spec.redirect.is_some() {
        ctx.error(
            "spec.canary",
            "a pool that redirects forwards nothing: canary does not apply",
        );
        return None;
    }
    let endpoints = check_endpoint_source(
        ctx,
        &EndpointSource {
            field: "spec.canary",
            service: canary.service.as_ref(),
            endpoints: canary.endpoints.as_deref(),
        },
    );
    let weight = ctx.range("spec.canary.weight", canary.weight, 10, 0, 100);
    let header = match &canary.header {
        Some(h) => {
            let name = header_name(ctx, "spec.canary.header.name", &h.name);
            let value = header_value(ctx, "spec.canary.header.value", &h.value);
            name.zip(value)
        }
        None => None,
    };
    Some(CanaryConfig {
        endpoints,
        weight,
        header,
    })
}
