//! Cross-origin resource sharing: the preflight answer sluice gives itself and the
//! `Access-Control-*` headers added to actual answers for an allowed origin.
//!
//! An origin that is not allowed gets no CORS header at all (the browser then refuses the
//! script the answer); its request is otherwise served as usual, since CORS protects the
//! reader, not the server. Origins match exactly (ASCII case-insensitively) or by a
//! `scheme://*.suffix[:port]` pattern: same scheme and port, at least one label before the
//! suffix, nothing but host characters in it.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};

use crate::config::{AllowedOrigins, CorsConfig, OriginPattern};
use crate::proxy::body::ProxyBody;

/// The `Access-Control-Allow-Origin` value for this request, or `None` when it carries no
/// single `Origin` or the origin is not allowed.
pub fn allowed_origin(cors: &CorsConfig, headers: &HeaderMap) -> Option<HeaderValue> {
    let mut all = headers.get_all(header::ORIGIN).iter();
    let (origin, None) = (all.next()?, all.next()) else {
        return None;
    };
    match &cors.origins {
        AllowedOrigins::Any => Some(HeaderValue::from_static("*")),
        AllowedOrigins::Listed(patterns) => {
            let text = origin.to_str().ok()?;
            patterns
                .iter()
                .any(|p| matches(p, text))
                .then(|| origin.clone())
        }
    }
}

/// Whether `origin` (as the browser sent it) matches `pattern`.
pub fn matches(pattern: &OriginPattern, origin: &str) -> bool {
    match pattern {
        OriginPattern::Exact(o) => origin.eq_ignore_ascii_case(o),
        OriginPattern::Subdomain {
            scheme,
            suffix,
            port,
        } => {
            let Some(rest) = strip_prefix_ci(origin, scheme) else {
                return false;
            };
            let Some(host) = strip_suffix_ci(rest, port) else {
                return false;
            };
            let Some(label) = strip_suffix_ci(host, suffix) else {
                return false;
            };
            !label.is_empty()
                && !label.starts_with('.')
                && !label.ends_with('.')
                && !label.contains("..")
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        }
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn strip_suffix_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let at = s.len().checked_sub(suffix.len())?;
    let tail = s.get(at..)?;
    tail.eq_ignore_ascii_case(suffix).then(|| &s[..at])
}

/// Whether the request is a CORS preflight: `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`. (A plain `OPTIONS` goes to the backend.)
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(header::ORIGIN)
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The answer to a preflight: 204, with the allowed methods, headers and max-age when
/// `origin` (from [`allowed_origin`]) is allowed, with no CORS header when it is not.
pub fn preflight(cors: &CorsConfig, origin: Option<&HeaderValue>) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let Some(origin) = origin else {
        return resp;
    };
    let h = resp.headers_mut();
    allow_origin(cors, origin, h);
    if !cors.allow_methods.is_empty() {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            cors.allow_methods.clone(),
        );
    }
    if let Some(v) = &cors.allow_headers {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
    }
    h.insert(header::ACCESS_CONTROL_MAX_AGE, cors.max_age.clone());
    resp
}

/// Adds the CORS headers of an actual answer for an allowed `origin`, replacing any the
/// backend sent (two `Access-Control-Allow-Origin` values make browsers refuse both).
pub fn decorate(cors: &CorsConfig, origin: &HeaderValue, headers: &mut HeaderMap) {
    allow_origin(cors, origin, headers);
    if let Some(v) = &cors.expose_headers {
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
    }
}

fn allow_origin(cors: &CorsConfig, origin: &HeaderValue, headers: &mut HeaderMap) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    if matches!(cors.origins, AllowedOrigins::Listed(_)) {
        // The answer depends on the origin: caches must keep one per origin.
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    if cors.allow_credentials {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

#[cfg(test)]
mod tests;
