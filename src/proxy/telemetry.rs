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
    /// `ip:port` of the connection, or the address a trusted proxy forwarded for.
    client: String,
}

impl RequestInfo {
    /// Captures method, host, path, declared body length and the client: `client` (the
    /// request's client address) when a trusted proxy named it, else the connection's `peer`.
    pub fn from_request<B>(req: &Request<B>, client: std::net::IpAddr, peer: SocketAddr) -> Self {
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
            client: if client == peer.ip().to_canonical() {
                peer.to_string()
            } else {
                client.to_string()
            },
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HttpLine<'a> {
    ts: String,
    pool: &'a str,
    client: &'a str,
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
        backend: Option<&str>,
        status: u16,
        bytes_out: u64,
        elapsed: Duration,
    ) {
        write_line(&HttpLine {
            ts: timestamp(),
            pool,
            client: &info.client,
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

/// The trace context of one forwarded request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceIds {
    /// Trace id (the client's, or new).
    pub trace: u128,
    /// sluice's span for this request: the parent the backend sees.
    pub span: u64,
    /// The client's span, when it sent a valid `traceparent`.
    pub parent: Option<u64>,
    /// The client's trace flags (sampled = 1), or sampled for a new trace.
    pub flags: u8,
}

/// Propagates W3C trace context: a valid `traceparent` keeps its trace id and gets
/// sluice's span as parent; a missing or invalid one is replaced by a new sampled trace.
pub fn propagate_trace(headers: &mut HeaderMap) -> TraceIds {
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-01";
    let incoming = headers
        .get(&TRACEPARENT)
        .map(|v| v.as_bytes())
        .filter(|v| valid_traceparent(v));
    let ids = match incoming {
        Some(v) => TraceIds {
            trace: parse_hex(&v[3..35]) as u128 | (parse_hex(&v[3..19]) as u128) << 64,
            span: fastrand::u64(1..),
            parent: Some(parse_hex(&v[36..52])),
            flags: parse_hex(&v[53..55]) as u8,
        },
        None => TraceIds {
            trace: fastrand::u128(1..),
            span: fastrand::u64(1..),
            parent: None,
            flags: 1,
        },
    };
    hex_into(&mut out[3..35], ids.trace);
    hex_into(&mut out[36..52], ids.span as u128);
    hex_into(&mut out[53..55], ids.flags as u128);
    if let Ok(v) = HeaderValue::from_bytes(&out) {
        headers.insert(&TRACEPARENT, v);
    }
    ids
}

/// The low 64 bits of a lower-case hex string (validated by `valid_traceparent`).
fn parse_hex(hex: &[u8]) -> u64 {
    hex.iter().fold(0u64, |acc, &b| {
        let d = if b.is_ascii_digit() {
            b - b'0'
        } else {
            b - b'a' + 10
        };
        acc.wrapping_shl(4) | u64::from(d)
    })
}

/// Exports one span per request over OTLP/HTTP (`--otlp-endpoint`).
#[derive(Debug, Clone)]
pub struct SpanExport {
    tracer: opentelemetry_sdk::trace::SdkTracer,
}

thread_local! {
    static NEXT_IDS: std::cell::Cell<Option<TraceIds>> = const { std::cell::Cell::new(None) };
}

/// Id generator that returns the ids of the request whose span is being built on this
/// thread (set around `build_with_context`), random ids otherwise.
#[derive(Debug)]
struct PropagatedIds;

impl opentelemetry_sdk::trace::IdGenerator for PropagatedIds {
    fn new_trace_id(&self) -> opentelemetry::trace::TraceId {
        let id = NEXT_IDS
            .with(|n| n.get())
            .map_or_else(|| fastrand::u128(1..), |ids| ids.trace);
        opentelemetry::trace::TraceId::from_bytes(id.to_be_bytes())
    }

    fn new_span_id(&self) -> opentelemetry::trace::SpanId {
        let id = NEXT_IDS
            .with(|n| n.get())
            .map_or_else(|| fastrand::u64(1..), |ids| ids.span);
        opentelemetry::trace::SpanId::from_bytes(id.to_be_bytes())
    }
}

/// A request's span, ended with its outcome. Boxed: the span is large, and the request's
/// state (which every request's future carries, traced or not) only holds the pointer.
pub struct RequestSpan(Box<opentelemetry_sdk::trace::Span>);

impl std::fmt::Debug for RequestSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestSpan")
    }
}

impl SpanExport {
    /// Starts the exporter pipeline (batching on its own thread). `endpoint` is the
    /// collector's base URL (`http://collector:4318`, `/v1/traces` is added) or the full
    /// traces URL. Returns the provider to flush at exit and the exporter handle.
    pub fn start(
        endpoint: &str,
    ) -> Result<(opentelemetry_sdk::trace::SdkTracerProvider, SpanExport), String> {
        use opentelemetry::trace::TracerProvider as _;
        use opentelemetry_otlp::{WithExportConfig, WithHttpConfig as _};
        let url: http::Uri = endpoint
            .parse()
            .map_err(|e| format!("--otlp-endpoint {endpoint}: {e}"))?;
        match url.scheme_str() {
            Some("http" | "https") => {}
            _ => {
                return Err(format!(
                    "--otlp-endpoint {endpoint}: expected an http:// or https:// URL"
                ));
            }
        }
        // An https collector is reached with rustls on the process-wide provider (ring, as
        // everywhere in sluice) and the system's trust store (`SSL_CERT_FILE` honoured).
        crate::config::tls::provider();
        let url = if url.path() == "/" || url.path().is_empty() {
            format!("{}/v1/traces", endpoint.trim_end_matches('/'))
        } else {
            endpoint.to_owned()
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .with_headers(Default::default())
            .build()
            .map_err(|e| format!("--otlp-endpoint {endpoint}: {e}"))?;
        let batch = opentelemetry_sdk::trace::BatchConfigBuilder::default()
            .with_scheduled_delay(std::time::Duration::from_secs(1))
            .build();
        let processor = opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch)
            .build();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name("sluice")
                    .build(),
            )
            .with_id_generator(PropagatedIds)
            .build();
        let tracer = provider.tracer("sluice");
        Ok((provider, SpanExport { tracer }))
    }

    /// Starts the server span of a request with the ids sent upstream.
    pub fn begin(&self, ids: &TraceIds, method: &http::Method, path: &str) -> RequestSpan {
        use opentelemetry::trace::{
            SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
        };
        use opentelemetry::{Context, KeyValue};
        let trace_id = TraceId::from_bytes(ids.trace.to_be_bytes());
        let parent = match ids.parent {
            Some(p) => Context::new().with_remote_span_context(SpanContext::new(
                trace_id,
                SpanId::from_bytes(p.to_be_bytes()),
                TraceFlags::new(ids.flags),
                true,
                TraceState::default(),
            )),
            None => Context::new(),
        };
        let builder = self
            .tracer
            .span_builder(method.as_str().to_owned())
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", method.as_str().to_owned()),
                KeyValue::new("url.path", path.to_owned()),
            ]);
        // The SDK takes span (and root trace) ids from its id generator: hand it the ids
        // already sent upstream, so the exported span is the backend's parent.
        NEXT_IDS.with(|next| next.set(Some(*ids)));
        let span = self.tracer.build_with_context(builder, &parent);
        NEXT_IDS.with(|next| next.set(None));
        RequestSpan(Box::new(span))
    }
}

impl RequestSpan {
    /// Ends the span with the request's outcome.
    pub fn end(mut self, pool: &str, backend: Option<&str>, status: u16) {
        use opentelemetry::KeyValue;
        use opentelemetry::trace::{Span as _, Status};
        self.0.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
        self.0
            .set_attribute(KeyValue::new("sluice.pool", pool.to_owned()));
        if let Some(b) = backend {
            self.0
                .set_attribute(KeyValue::new("server.address", b.to_owned()));
        }
        if status >= 500 {
            self.0.set_status(Status::error(format!("status {status}")));
        }
        self.0.end();
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
        let ids = propagate_trace(&mut h);
        assert_eq!(ids.trace, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(ids.parent, Some(0x00f067aa0ba902b7));
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
