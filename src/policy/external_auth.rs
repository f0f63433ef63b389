//! Authentication by an external service (ingress-nginx's `auth-url`, the oauth2-proxy
//! pattern): before forwarding, sluice asks the service with a `GET` carrying the listed
//! request headers and where the request was going; a 2xx lets it through with the listed
//! answer headers copied into it, a 401 or 403 is passed to the client (a 401 becomes a
//! 302 to `signinURL` with `rd=` when one is set), and anything else fails closed.
//!
//! Failing closed is a 500 for every cause (unreachable, timed out, garbage, an answer body
//! past [`MAX_AUTH_BODY`], another status), as ingress-nginx answers: whatever the auth
//! service's trouble, the backend is never reached. The requests go over one process-wide
//! pooled HTTP/1.1 client (hyper's), so a busy pool keeps its connections to the service.

use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::ExternalAuthConfig;
use crate::proxy::body::ProxyBody;

/// Largest auth answer body read; a larger one fails closed.
pub const MAX_AUTH_BODY: usize = 64 * 1024;
/// How long an idle connection to an auth service is kept.
const IDLE: Duration = Duration::from_secs(30);

/// Where the client's request was going, as the auth service is told.
#[derive(Debug, Clone, Copy)]
pub struct Original<'a> {
    /// Method.
    pub method: &'a Method,
    /// Request target (origin-form, or absolute for HTTP/2 and absolute-form).
    pub uri: &'a Uri,
    /// The client's headers.
    pub headers: &'a HeaderMap,
    /// `Host` / `:authority`.
    pub host: Option<&'a str>,
    /// Whether the client came over TLS.
    pub https: bool,
    /// The client's address (`--trusted-proxies` applied), as sluice appends it to
    /// `X-Forwarded-For`.
    pub client_ip: IpAddr,
}

/// Headers of a 2xx auth answer to copy into the upstream request.
pub type Granted = Vec<(HeaderName, HeaderValue)>;

/// Asks the auth service about `original`: `Ok` with the headers to copy, or the answer
/// for the client.
pub async fn check(
    cfg: &ExternalAuthConfig,
    original: &Original<'_>,
) -> Result<Granted, Response<ProxyBody>> {
    let url = original_url(original);
    let request = auth_request(cfg, original, &url);
    let asked = async {
        let resp = client().request(request).await.map_err(|e| e.to_string())?;
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, MAX_AUTH_BODY)
            .collect()
            .await
            .map_err(|e| format!("answer body: {e}"))?
            .to_bytes();
        Ok::<_, String>((parts, body))
    };
    let (parts, body) = match tokio::time::timeout(cfg.timeout, asked).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(problem)) => return Err(fail_closed(cfg, &problem)),
        Err(_) => return Err(fail_closed(cfg, "timed out")),
    };
    match parts.status {
        s if s.is_success() => Ok(granted(cfg, &parts.headers)),
        StatusCode::UNAUTHORIZED if cfg.signin_url.is_some() => Err(signin(cfg, original, &url)),
        s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
            Err(denial(s, &parts.headers, body))
        }
        s => Err(fail_closed(cfg, &format!("answered {s}"))),
    }
}

/// Replaces, in the upstream request, every header the auth answer may grant: a client
/// cannot send `X-Auth-Request-User` itself and have it reach the backend.
pub fn apply(cfg: &ExternalAuthConfig, granted: Granted, headers: &mut HeaderMap) {
    for name in &cfg.response_headers {
        headers.remove(name);
    }
    for (name, value) in granted {
        headers.append(name, value);
    }
}

/// The process-wide pooled client (HTTP/1.1, plain text).
fn client() -> &'static Client<HttpConnector, Empty<Bytes>> {
    static CLIENT: OnceLock<Client<HttpConnector, Empty<Bytes>>> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.enforce_http(true);
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE)
            .pool_timer(TokioTimer::new())
            .build(connector)
    })
}

/// `scheme://host/path?query` of the client's request.
fn original_url(o: &Original<'_>) -> String {
    let scheme = if o.https { "https" } else { "http" };
    let host = o
        .uri
        .authority()
        .map(|a| a.as_str())
        .or(o.host)
        .unwrap_or("");
    let target = o.uri.path_and_query().map_or("/", |p| p.as_str());
    format!("{scheme}://{host}{target}")
}

fn auth_request(cfg: &ExternalAuthConfig, o: &Original<'_>, url: &str) -> Request<Empty<Bytes>> {
    let mut req = Request::new(Empty::new());
    *req.uri_mut() = cfg.url.clone();
    *req.method_mut() = cfg.method.clone();
    let h = req.headers_mut();
    if cfg.all_request_headers {
        for (name, value) in o.headers {
            if !NOT_COPIED.contains(&name.as_str()) {
                h.append(name.clone(), value.clone());
            }
        }
    } else {
        for name in &cfg.request_headers {
            for value in o.headers.get_all(name) {
                h.append(name.clone(), value.clone());
            }
        }
    }
    let target = o.uri.path_and_query().map_or("/", |p| p.as_str());
    let text = |s: &str| HeaderValue::from_str(s).ok();
    let client = text(&o.client_ip.to_string());
    let fields = [
        ("x-original-url", text(url)),
        ("x-original-method", text(o.method.as_str())),
        ("x-forwarded-for", client.clone()),
        ("x-real-ip", client),
        (
            "x-forwarded-proto",
            Some(HeaderValue::from_static(if o.https {
                "https"
            } else {
                "http"
            })),
        ),
        ("x-forwarded-host", o.host.and_then(text)),
        ("x-forwarded-uri", text(target)),
        ("x-auth-request-redirect", text(target)),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            h.insert(HeaderName::from_static(name), value);
        }
    }
    req
}

fn granted(cfg: &ExternalAuthConfig, answer: &HeaderMap) -> Granted {
    let mut out = Vec::new();
    for name in &cfg.response_headers {
        for value in answer.get_all(name) {
            out.push((name.clone(), value.clone()));
        }
    }
    out
}

/// The auth service's 401 or 403, with its (bounded) body and the headers that explain it.
fn denial(status: StatusCode, answer: &HeaderMap, body: Bytes) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::Full((!body.is_empty()).then_some(body)));
    *resp.status_mut() = status;
    for name in [header::CONTENT_TYPE, header::WWW_AUTHENTICATE] {
        for value in answer.get_all(&name) {
            resp.headers_mut().append(name.clone(), value.clone());
        }
    }
    resp
}

/// A 302 to the sign-in URL with `rd=` the original URL (for an `auth-signin` template:
/// its variables expanded, and `rd=` added only when it has no `rd` parameter).
fn signin(cfg: &ExternalAuthConfig, original: &Original<'_>, url: &str) -> Response<ProxyBody> {
    let base = cfg.signin_url.as_deref().unwrap_or("/");
    let mut location = String::with_capacity(base.len() + url.len() * 3 + 4);
    if cfg.signin_template {
        expand(base, original, &mut location);
    } else {
        location.push_str(base);
    }
    if !(cfg.signin_template && has_rd(base)) {
        location.push(if location.contains('?') { '&' } else { '?' });
        location.push_str("rd=");
        percent_encode(url, &mut location);
    }
    let mut resp = Response::new(ProxyBody::empty());
    *resp.status_mut() = StatusCode::FOUND;
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR,
    }
    resp
}

/// Client headers an `all_request_headers` auth request does not carry: framing and
/// hop-by-hop fields (the auth client frames its own request).
const NOT_COPIED: &[&str] = &[
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

/// Whether an `auth-signin` template's query has an `rd` parameter.
fn has_rd(template: &str) -> bool {
    template
        .split_once('?')
        .is_some_and(|(_, q)| q.split('&').any(|p| p == "rd" || p.starts_with("rd=")))
}

/// Writes `template` with ingress-nginx's variables expanded: `$host` (without port,
/// lower-case), `$http_host`, `$scheme` / `$pass_access_scheme`, `$request_uri` and
/// `$escaped_request_uri`. Other `$` text is kept as written.
fn expand(template: &str, o: &Original<'_>, out: &mut String) {
    const VARIABLES: &[&str] = &[
        "$escaped_request_uri",
        "$pass_access_scheme",
        "$request_uri",
        "$http_host",
        "$scheme",
        "$host",
    ];
    let http_host = o
        .uri
        .authority()
        .map(|a| a.as_str())
        .or(o.host)
        .unwrap_or("");
    let target = o.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(var) = VARIABLES.iter().find(|v| rest.starts_with(**v)) else {
            out.push('$');
            rest = &rest[1..];
            continue;
        };
        match *var {
            "$escaped_request_uri" => percent_encode(target, out),
            "$request_uri" => out.push_str(target),
            "$http_host" => out.push_str(http_host),
            "$host" => {
                let host = if http_host.starts_with('[') {
                    http_host
                        .find(']')
                        .map_or(http_host, |end| &http_host[..=end])
                } else {
                    http_host.split(':').next().unwrap_or(http_host)
                };
                out.push_str(&host.to_ascii_lowercase());
            }
            _ => out.push_str(if o.https { "https" } else { "http" }),
        }
        rest = &rest[var.len()..];
    }
    out.push_str(rest);
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

fn fail_closed(cfg: &ExternalAuthConfig, problem: &str) -> Response<ProxyBody> {
    tracing::warn!(url = %cfg.url, problem, "external auth failed; request refused (500)");
    let mut resp = Response::new(ProxyBody::text("authentication unavailable\n"));
    *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn original<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Original<'a> {
        Original {
            method: &Method::GET,
            uri,
            headers,
            host: Some("App.test:8443"),
            https: true,
            client_ip: IpAddr::from([198, 18, 0, 9]),
        }
    }

    #[test]
    fn a_signin_template_expands_nginx_variables_and_keeps_its_own_rd() {
        let cfg = ExternalAuthConfig {
            url: "http://auth.test/check".parse().unwrap(),
            request_headers: vec![],
            response_headers: vec![],
            signin_url: Some("https://$host/oauth2/start?rd=$escaped_request_uri".into()),
            timeout: Duration::from_secs(1),
            method: Method::GET,
            all_request_headers: false,
            signin_template: true,
        };
        let uri: Uri = "/a%20b?x=1".parse().unwrap();
        let headers = HeaderMap::new();
        let o = original(&uri, &headers);
        let resp = signin(&cfg, &o, "https://App.test:8443/a%20b?x=1");
        assert_eq!(
            resp.headers()[header::LOCATION],
            "https://app.test/oauth2/start?rd=%2Fa%2520b%3Fx%3D1"
        );
        let cfg = ExternalAuthConfig {
            signin_url: Some("$scheme://$http_host/start$x".into()),
            ..cfg
        };
        let resp = signin(&cfg, &o, "https://App.test:8443/");
        assert_eq!(
            resp.headers()[header::LOCATION],
            "https://App.test:8443/start$x?rd=https%3A%2F%2FApp.test%3A8443%2F"
        );
    }

    #[test]
    fn an_auth_request_carrying_every_header_leaves_out_the_framing_ones() {
        let cfg = ExternalAuthConfig {
            url: "http://auth.test/check".parse().unwrap(),
            request_headers: vec![],
            response_headers: vec![],
            signin_url: None,
            timeout: Duration::from_secs(1),
            method: Method::POST,
            all_request_headers: true,
            signin_template: false,
        };
        let uri: Uri = "/x".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", HeaderValue::from_static("k"));
        headers.insert("cookie", HeaderValue::from_static("s=1"));
        headers.insert("content-length", HeaderValue::from_static("5"));
        headers.insert("host", HeaderValue::from_static("app.test"));
        let o = original(&uri, &headers);
        let req = auth_request(&cfg, &o, "https://app.test/x");
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.headers()["x-api-key"], "k");
        assert_eq!(req.headers()["cookie"], "s=1");
        assert!(req.headers().get("content-length").is_none());
        assert!(req.headers().get("host").is_none());
        assert_eq!(req.headers()["x-original-method"], "GET");
    }

    #[test]
    fn signin_redirect_carries_the_original_url_percent_encoded() {
        let uri: Uri = "/".parse().unwrap();
        let headers = HeaderMap::new();
        let o = original(&uri, &headers);
        let cfg = ExternalAuthConfig {
            url: "http://auth.test/check".parse().unwrap(),
            request_headers: vec![],
            response_headers: vec![],
            signin_url: Some("https://auth.test/oauth2/start".into()),
            timeout: Duration::from_secs(1),
            method: Method::GET,
            all_request_headers: false,
            signin_template: false,
        };
        let resp = signin(&cfg, &o, "https://app.test/a b?x=1&y=2");
        assert_eq!(resp.status(), StatusCode::FOUND);
        assert_eq!(
            resp.headers()[header::LOCATION],
            "https://auth.test/oauth2/start?rd=https%3A%2F%2Fapp.test%2Fa%20b%3Fx%3D1%26y%3D2"
        );
        let cfg = ExternalAuthConfig {
            signin_url: Some("https://auth.test/start?p=1".into()),
            ..cfg
        };
        let resp = signin(&cfg, &o, "http://a/");
        assert_eq!(
            resp.headers()[header::LOCATION],
            "https://auth.test/start?p=1&rd=http%3A%2F%2Fa%2F"
        );
    }

    #[test]
    fn granted_headers_replace_what_the_client_sent_under_those_names() {
        let cfg = ExternalAuthConfig {
            url: "http://auth.test/check".parse().unwrap(),
            request_headers: vec![],
            response_headers: vec![HeaderName::from_static("x-auth-request-user")],
            signin_url: None,
            timeout: Duration::from_secs(1),
            method: Method::GET,
            all_request_headers: false,
            signin_template: false,
        };
        let mut upstream = HeaderMap::new();
        upstream.insert("x-auth-request-user", HeaderValue::from_static("mallory"));
        apply(&cfg, Vec::new(), &mut upstream);
        assert!(upstream.get("x-auth-request-user").is_none());
        let mut answer = HeaderMap::new();
        answer.insert("x-auth-request-user", HeaderValue::from_static("alice"));
        upstream.insert("x-auth-request-user", HeaderValue::from_static("mallory"));
        apply(&cfg, granted(&cfg, &answer), &mut upstream);
        assert_eq!(upstream["x-auth-request-user"], "alice");
    }
}
