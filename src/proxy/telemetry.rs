//! Per-request observability: the JSON access log and W3C trace-context propagation.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Request, header};
use serde::Serialize;

static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Writes access-log lines (one JSON object per line) to stdout.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessLog;

/// What the access log needs from the request, captured before it is forwarded.
#[derive(Debug)]
pub struct RequestInfo {
    method: http::Method,
    host: Option<HeaderValue>,
    path: http::uri::PathAndQuery,
    bytes_in: u64,
}

impl RequestInfo {
    /// Captures method, host, path and declared body length.
    pub fn from_request<B>(req: &Request<B>) -> Self {
        let host = req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            .or_else(|| req.headers().get(header::HOST).cloned());
        let bytes_in = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        RequestInfo {
            method: req.method().clone(),
            host,
            path: req
                .uri()
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
            bytes_in,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HttpLine<'a> {
    ts: String,
    pool: &'a str,
    client: String,
    backend: Option<&'a str>,
    method: &'a str,
    host: Option<&'a str>,
    path: &'a str,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    duration_ms: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TcpLine<'a> {
    ts: String,
    pool: &'a str,
    client: String,
    backend: Option<&'a str>,
    bytes_in: u64,
    bytes_out: u64,
    duration_ms: f64,
}

fn timestamp() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

fn write_line<T: Serialize>(line: &T) {
    if let Ok(mut buf) = serde_json::to_vec(line) {
        buf.push(b'\n');
        let _ = std::io::stdout().lock().write_all(&buf);
    }
}

impl AccessLog {
    /// Logs one HTTP exchange.
    #[allow(clippy::too_many_arguments)]
    pub fn http(
        &self,
        info: &RequestInfo,
        pool: &str,
        client: SocketAddr,
        backend: Option<&str>,
        status: u16,
        bytes_out: u64,
        elapsed: Duration,
    ) {
        write_line(&HttpLine {
            ts: timestamp(),
            pool,
            client: client.to_string(),
            backend,
            method: info.method.as_str(),
            host: info.host.as_ref().and_then(|h| h.to_str().ok()),
            path: info.path.as_str(),
            status,
            bytes_in: info.bytes_in,
            bytes_out,
            duration_ms: elapsed.as_secs_f64() * 1000.0,
        });
    }

    /// Logs one TCP connection.
    pub fn tcp(
        &self,
        pool: &str,
        client: SocketAddr,
        backend: Option<&str>,
        bytes_in: u64,
        bytes_out: u64,
        elapsed: Duration,
    ) {
        write_line(&TcpLine {
            ts: timestamp(),
            pool,
            client: client.to_string(),
            backend,
            bytes_in,
            bytes_out,
            duration_ms: elapsed.as_secs_f64() * 1000.0,
        });
    }
}

/// Propagates W3C trace context: a valid `traceparent` keeps its trace id and gets
/// sluice's span as parent; a missing or invalid one is replaced by a new sampled trace.
pub fn propagate_trace(headers: &mut HeaderMap) {
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-01";
    let incoming = headers
        .get(&TRACEPARENT)
        .map(|v| v.as_bytes())
        .filter(|v| valid_traceparent(v));
    match incoming {
        Some(v) => {
            out[3..35].copy_from_slice(&v[3..35]);
            out[53..55].copy_from_slice(&v[53..55]);
        }
        None => hex_into(&mut out[3..35], fastrand::u128(1..)),
    }
    hex_into(&mut out[36..52], fastrand::u64(1..) as u128);
    if let Ok(v) = HeaderValue::from_bytes(&out) {
        headers.insert(&TRACEPARENT, v);
    }
}

fn valid_traceparent(v: &[u8]) -> bool {
    v.len() == 55
        && v.starts_with(b"00-")
        && v[35] == b'-'
        && v[52] == b'-'
        && v[3..35]
            .iter()
            .chain(&v[36..52])
            .chain(&v[53..55])
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        && v[3..35].iter().any(|&b| b != b'0')
        && v[36..52].iter().any(|&b| b != b'0')
}

fn hex_into(dst: &mut [u8], mut n: u128) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in dst.iter_mut().rev() {
        *b = HEX[(n & 0xf) as usize];
        n >>= 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_keeps_trace_id_and_replaces_parent() {
        let mut h = HeaderMap::new();
        h.insert(
            "traceparent",
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        propagate_trace(&mut h);
        let v = h.get("traceparent").unwrap().to_str().unwrap();
        assert!(v.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(!v.contains("00f067aa0ba902b7"));
        assert!(valid_traceparent(v.as_bytes()));
    }

    #[test]
    fn missing_traceparent_starts_a_new_trace() {
        let mut h = HeaderMap::new();
        propagate_trace(&mut h);
        assert!(valid_traceparent(h.get("traceparent").unwrap().as_bytes()));
    }
}
