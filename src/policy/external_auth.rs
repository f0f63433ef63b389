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
        StatusCode::UNAUTHORIZED if cfg.signin_url.is_some() => Err(signin(cfg, &url)),
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
    let h = req.headers_mut();
    for name in &cfg.request_headers {
        for value in o.headers.get_all(name) {
            h.append(name.clone(), value.clone());
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

/// A 302 to the sign-in URL with `rd=` the original URL.
fn signin(cfg: &ExternalAuthConfig, url: &str) -> Response<ProxyBody> {
    let base = cfg.signin_url.as_deref().unwrap_or("/");
    let sep = if base.contains('?') { '&' } else { '?' };
    let mut location = String::with_capacity(base.len() + url.len() * 3 + 4);
    location.push_str(base);
    location.push(sep);
    location.push_str("rd=");
    percent_encode(url, &mut location);
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

    #[test]
    fn signin_redirect_carries_the_original_url_percent_encoded() {
        let cfg = ExternalAuthConfig {
            url: "http://auth.test/check".parse().unwrap(),
            request_headers: vec![],
            response_headers: vec![],
            signin_url: Some("https://auth.test/oauth2/start".into()),
            timeout: Duration::from_secs(1),
        };
        let resp = signin(&cfg, "https://app.test/a b?x=1&y=2");
        assert_eq!(resp.status(), StatusCode::FOUND);
        assert_eq!(
            resp.headers()[header::LOCATION],
            "https://auth.test/oauth2/start?rd=https%3A%2F%2Fapp.test%2Fa%20b%3Fx%3D1%26y%3D2"
        );
        let cfg = ExternalAuthConfig {
            signin_url: Some("https://auth.test/start?p=1".into()),
            ..cfg
        };
        let resp = signin(&cfg, "http://a/");
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
