//! A route's filters on the request path: the redirect a pool answers with instead of
//! forwarding, and the rewrite and header changes applied to what it forwards.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, Uri};

use crate::config::{PathReplace, RedirectConfig, RewriteConfig};
use crate::proxy::body::ProxyBody;

/// `path` with the matched `prefix` replaced by `replacement` (Gateway API
/// `ReplacePrefixMatch`): `/api` -> `/v2` sends `/api/x` as `/v2/x`, `/api` -> `/` sends
/// it as `/x`.
pub fn replace_prefix(path: &str, prefix: &str, replacement: &str) -> String {
    let rest = if prefix == "/" {
        // `/` matches no segment: all of the path is the rest (none for `/` itself).
        if path == "/" { "" } else { path }
    } else {
        path.get(prefix.len()..).unwrap_or("")
    };
    let base = replacement.trim_end_matches('/');
    match (base.is_empty(), rest.is_empty()) {
        (true, true) => "/".to_owned(),
        (_, true) => base.to_owned(),
        (_, false) if rest.starts_with('/') => format!("{base}{rest}"),
        (_, false) => format!("{base}/{rest}"),
    }
}

/// The redirect answer for a request to `host` (as sent, maybe with a port), `uri`, on a
/// listener reached over TLS (`https`), by a pool whose matched prefix is `prefix`.
pub fn redirect(
    r: &RedirectConfig,
    https: bool,
    host: Option<&str>,
    uri: &Uri,
    prefix: &str,
) -> Response<ProxyBody> {
    let request_scheme = if https { "https" } else { "http" };
    let scheme = r.scheme.unwrap_or(request_scheme);
    let (request_host, request_port) = split_host(host.unwrap_or(""));
    let host = r.host.as_deref().unwrap_or(request_host);
    // A scheme change without a port drops the port: the new scheme's default applies.
    let port = match (r.port, r.scheme) {
        (Some(p), _) => Some(p),
        (None, Some(s)) if s != request_scheme => None,
        (None, _) => request_port,
    };
    let port = port.filter(|&p| !matches!((scheme, p), ("http", 80) | ("https", 443)));
    let path = match &r.path {
        Some(PathReplace::Full(p)) => p.clone(),
        Some(PathReplace::Prefix(p)) => replace_prefix(uri.path(), prefix, p),
        None => uri.path().to_owned(),
    };
    let mut location = format!("{scheme}://{host}");
    if let Some(port) = port {
        location.push(':');
        location.push_str(itoa::Buffer::new().format(port));
    }
    location.push_str(&path);
    if let Some(query) = uri.query() {
        location.push('?');
        location.push_str(query);
    }
    let mut resp = Response::new(ProxyBody::empty());
    *resp.status_mut() = r.status;
    match HeaderValue::from_maybe_shared(Bytes::from(location)) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => *resp.status_mut() = http::StatusCode::BAD_REQUEST,
    }
    resp
}

/// `host:port` -> (`host`, port); a missing or unparsable port is `None`.
fn split_host(host: &str) -> (&str, Option<u16>) {
    let colon = if host.starts_with('[') {
        host.find(']')
            .and_then(|end| host[end..].find(':').map(|i| end + i))
    } else {
        host.rfind(':')
    };
    match colon {
        Some(i) => (&host[..i], host[i + 1..].parse().ok()),
        None => (host, None),
    }
}

/// Applies `rewrite` to the request sent upstream: the whole path or the matched `prefix`
/// of it (query kept) and the `Host` header. `false` when the new target is not a valid URI.
pub fn rewrite(r: &RewriteConfig, prefix: &str, parts: &mut http::request::Parts) -> bool {
    if let Some(host) = &r.host {
        parts.headers.insert(header::HOST, host.clone());
    }
    let mut target = match (&r.full_path, &r.path_prefix) {
        (Some(full), _) => full.clone(),
        (None, Some(replacement)) => replace_prefix(parts.uri.path(), prefix, replacement),
        (None, None) => return true,
    };
    if let Some(query) = parts.uri.query() {
        target.push('?');
        target.push_str(query);
    }
    match Uri::try_from(target) {
        Ok(uri) => {
            parts.uri = uri;
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[test]
    fn a_full_path_rewrite_replaces_the_whole_path_and_keeps_the_query() {
        let r = RewriteConfig {
            path_prefix: Some("/ignored".into()),
            full_path: Some("/one".into()),
            host: None,
        };
        let (mut parts, ()) = http::Request::get("/api/x/y?q=1")
            .body(())
            .unwrap()
            .into_parts();
        assert!(rewrite(&r, "/api", &mut parts));
        assert_eq!(parts.uri, "/one?q=1");
    }

    #[test]
    fn prefix_replacement_keeps_the_rest_of_the_path_on_a_segment_boundary() {
        assert_eq!(replace_prefix("/api/x", "/api", "/v2"), "/v2/x");
        assert_eq!(replace_prefix("/api/x", "/api", "/"), "/x");
        assert_eq!(replace_prefix("/api", "/api", "/"), "/");
        assert_eq!(replace_prefix("/api", "/api", "/v2/"), "/v2");
        assert_eq!(replace_prefix("/x/y", "/", "/app"), "/app/x/y");
        assert_eq!(replace_prefix("/", "/", "/app"), "/app");
    }

    fn location(r: &RedirectConfig, https: bool, host: &str, uri: &str) -> String {
        let resp = redirect(r, https, Some(host), &uri.parse().unwrap(), "/old");
        resp.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .to_owned()
    }

    fn to(scheme: Option<&'static str>, port: Option<u16>) -> RedirectConfig {
        RedirectConfig {
            scheme,
            host: None,
            port,
            path: None,
            status: StatusCode::PERMANENT_REDIRECT,
        }
    }

    #[test]
    fn https_redirect_drops_the_plain_port_and_keeps_path_and_query() {
        let r = to(Some("https"), None);
        assert_eq!(
            location(&r, false, "a.test:8080", "/x?y=1"),
            "https://a.test/x?y=1"
        );
        assert_eq!(location(&r, false, "a.test", "/"), "https://a.test/");
    }

    #[test]
    fn redirect_keeps_the_request_port_unless_the_scheme_changes_or_one_is_given() {
        assert_eq!(
            location(&to(None, None), false, "a.test:8080", "/x"),
            "http://a.test:8080/x"
        );
        assert_eq!(
            location(&to(None, Some(80)), false, "a.test:8080", "/x"),
            "http://a.test/x"
        );
        assert_eq!(
            location(&to(Some("https"), Some(8443)), false, "a.test:8080", "/x"),
            "https://a.test:8443/x"
        );
        assert_eq!(
            location(&to(None, None), false, "[::1]:8080", "/"),
            "http://[::1]:8080/"
        );
    }

    #[test]
    fn redirect_replaces_host_and_path_or_prefix() {
        let mut r = to(None, None);
        r.host = Some("www.example".into());
        r.path = Some(PathReplace::Prefix("/new".into()));
        assert_eq!(
            location(&r, true, "a.test", "/old/p?q"),
            "https://www.example/new/p?q"
        );
        r.path = Some(PathReplace::Full("/landing".into()));
        assert_eq!(
            location(&r, true, "a.test", "/old/p?q"),
            "https://www.example/landing?q"
        );
    }
}
