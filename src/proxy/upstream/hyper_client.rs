//! The upstream client for backends reached over TLS or HTTP/2 (`spec.upstream`), built on
//! hyper's client connections: HTTPS with rustls, h2c (prior knowledge) and ALPN h2 with
//! one multiplexed connection per endpoint on each worker (its task runs on the worker that
//! opened it), HTTP/1.1 over TLS with pooled keep-alive connections. Bodies and trailers
//! stream through in both directions.
//!
//! Plain-text HTTP/1.1 backends never come here: sluice's own client
//! ([`h1client`](crate::proxy::http1::client)) stays the hot path. Upgrades (WebSocket) are not passed
//! through this client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Request, Response, Uri, Version};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::config::UpstreamProtocol;
use crate::pool::{BoxError, ClientBody, Endpoint, Snapshot};
use crate::proxy::error::{ClientBodyFailed, ProxyError};
use crate::proxy::http1::client::RequestBody;
use crate::proxy::upstream::Outbound;

/// A connection ready to carry a request.
enum Conn {
    H1(hyper::client::conn::http1::SendRequest<ClientBody>),
    H2(hyper::client::conn::http2::SendRequest<ClientBody>),
}

/// Sends the next attempt of `out` to `endpoint` on a pooled connection or a new one, and
/// waits (at most `timeout`) for the response head. The request (and its body) is taken
/// from `out` only once a connection is there, so a failed connect leaves it sendable to
/// another endpoint. A pooled connection that closed before taking the request is replaced
/// by a new one, invisibly.
pub(super) async fn exchange(
    endpoint: &Arc<Endpoint>,
    snapshot: &Snapshot,
    out: &mut Outbound,
    timeout: Duration,
) -> Result<Response<Incoming>, ProxyError> {
    let config = &snapshot.config;
    let tls = config.upstream.tls.is_some();
    let (conn, fresh) = match pooled(endpoint, config.upstream.protocol, config.timeouts.idle) {
        Some(conn) => (conn, false),
        None => (connect(endpoint, snapshot).await?, true),
    };
    let (parts, body) = out.next().ok_or(ProxyError::NoEndpoint)?;
    let request = build_request(parts, body);
    let back = match send(conn, endpoint, request, tls, timeout).await {
        Ok(response) => return Ok(response),
        Err(SendFailure::Failed(e)) => return Err(e),
        Err(SendFailure::Unsent(back)) if !fresh => back,
        Err(SendFailure::Unsent(_)) => return Err(closed_unsent(endpoint)),
    };
    tracing::debug!(
        backend = endpoint.label(),
        "pooled connection was closed; sending on a new one"
    );
    let conn = connect(endpoint, snapshot).await?;
    match send(conn, endpoint, *back, tls, timeout).await {
        Ok(response) => Ok(response),
        Err(SendFailure::Failed(e)) => Err(e),
        Err(SendFailure::Unsent(_)) => Err(closed_unsent(endpoint)),
    }
}

/// A new connection closed before it took the request: nothing was sent.
fn closed_unsent(endpoint: &Endpoint) -> ProxyError {
    ProxyError::Connect(
        endpoint.address(),
        std::io::Error::other("connection closed before the request was sent"),
    )
}

/// Why a send did not give a response.
enum SendFailure {
    /// The connection closed before taking the request, handed back whole.
    Unsent(Box<Request<ClientBody>>),
    /// The exchange failed after the request (or part of it) left.
    Failed(ProxyError),
}

/// Sends `req` on `conn`; on success an HTTP/1.1 connection is listed for reuse (it is
/// taken again once this exchange's body has ended).
async fn send(
    conn: Conn,
    endpoint: &Arc<Endpoint>,
    req: Request<ClientBody>,
    tls: bool,
    timeout: Duration,
) -> Result<Response<Incoming>, SendFailure> {
    let sent = match conn {
        Conn::H2(mut sender) => {
            let req = for_h2(req, endpoint.address(), tls);
            tokio::time::timeout(timeout, async {
                if sender.ready().await.is_err() {
                    return Err(SendFailure::Unsent(Box::new(req)));
                }
                sender.try_send_request(req).await.map_err(failure)
            })
            .await
        }
        Conn::H1(mut sender) => {
            let mut req = req;
            *req.version_mut() = Version::HTTP_11;
            let sent = tokio::time::timeout(timeout, async {
                if sender.ready().await.is_err() {
                    return Err(SendFailure::Unsent(Box::new(req)));
                }
                sender.try_send_request(req).await.map_err(failure)
            })
            .await;
            if matches!(sent, Ok(Ok(_))) {
                endpoint.client.put_h1(sender);
            }
            sent
        }
    };
    sent.unwrap_or(Err(SendFailure::Failed(ProxyError::Timeout)))
}

fn failure(mut e: hyper::client::conn::TrySendError<Request<ClientBody>>) -> SendFailure {
    match e.take_message() {
        Some(req) => SendFailure::Unsent(Box::new(req)),
        None => SendFailure::Failed(upstream_error(e.into_error())),
    }
}

/// A hyper client error as the proxy's error: the client's own body failing is told apart
/// by type (its error is wrapped in [`ClientBodyFailed`]).
fn upstream_error(e: hyper::Error) -> ProxyError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if let Some(failed) = err.downcast_ref::<ClientBodyFailed>() {
            if matches!(failed.0, crate::policy::BodyError::TooLarge(_)) {
                return ProxyError::BodyTooLarge;
            }
            return ProxyError::ClientBody(std::io::Error::other(e));
        }
        source = err.source();
    }
    ProxyError::Reset(std::io::Error::other(e))
}

/// A reusable connection of the kind `protocol` allows.
fn pooled(endpoint: &Endpoint, protocol: UpstreamProtocol, max_idle: Duration) -> Option<Conn> {
    match protocol {
        UpstreamProtocol::Http2 => endpoint.client.h2().map(Conn::H2),
        UpstreamProtocol::Http1 => endpoint.client.take_h1(max_idle).map(Conn::H1),
        UpstreamProtocol::Auto => endpoint
            .client
            .h2()
            .map(Conn::H2)
            .or_else(|| endpoint.client.take_h1(max_idle).map(Conn::H1)),
    }
}

/// The request for hyper, its body boxed; a client body error is marked as the client's.
fn build_request(parts: &Parts, body: RequestBody<'_>) -> Request<ClientBody> {
    let body: ClientBody = match body {
        RequestBody::Empty => Empty::new().map_err(|e| match e {}).boxed_unsync(),
        RequestBody::Bytes(b) => Full::new(b.clone()).map_err(|e| match e {}).boxed_unsync(),
        RequestBody::Stream(body) => body
            .map_err(|e| Box::new(ClientBodyFailed(e)) as BoxError)
            .boxed_unsync(),
    };
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.headers_mut() = parts.headers.clone();
    // Upgrades are not passed through this client: the backend answers the plain request.
    req.headers_mut().remove(header::UPGRADE);
    req.headers_mut().remove(header::CONNECTION);
    req
}

/// An HTTP/2 request: absolute URI whose authority is the `Host` sluice would send (else
/// the endpoint's address), no `Host` header, and `te: trailers` for gRPC, which needs it.
fn for_h2(mut req: Request<ClientBody>, addr: SocketAddr, tls: bool) -> Request<ClientBody> {
    let authority = req
        .headers_mut()
        .remove(header::HOST)
        .and_then(|h| http::uri::Authority::try_from(h.as_bytes()).ok())
        .or_else(|| http::uri::Authority::try_from(addr.to_string()).ok());
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(if tls {
        http::uri::Scheme::HTTPS
    } else {
        http::uri::Scheme::HTTP
    });
    uri.authority = authority;
    uri.path_and_query = req.uri().path_and_query().cloned();
    if let Ok(absolute) = Uri::from_parts(uri) {
        *req.uri_mut() = absolute;
    }
    *req.version_mut() = Version::HTTP_2;
    if is_grpc(req.headers()) {
        req.headers_mut()
            .insert(header::TE, HeaderValue::from_static("trailers"));
    }
    req
}

/// Whether a request is a gRPC call (`content-type: application/grpc[+proto|...]`).
pub fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// Opens a connection to `endpoint` (TCP, TLS when configured, then the HTTP handshake),
/// all within `timeouts.connect`. Nothing of the request is sent before it succeeds.
async fn connect(endpoint: &Arc<Endpoint>, snapshot: &Snapshot) -> Result<Conn, ProxyError> {
    let addr = endpoint.address();
    let config = &snapshot.config;
    let connecting = async {
        let tcp = TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        let cut = endpoint.cut.clone();
        if config.upstream.tls.is_none() {
            let h2 = config.upstream.protocol != UpstreamProtocol::Http1;
            return handshake(tcp, h2, cut).await;
        }
        // Never plain text to a backend configured for TLS, whatever happened to its config.
        let tls = snapshot
            .upstream_tls
            .as_ref()
            .ok_or_else(|| std::io::Error::other("no TLS client configuration"))?;
        let name = match config
            .upstream
            .tls
            .as_ref()
            .and_then(|t| t.server_name.clone())
        {
            Some(name) => ServerName::try_from(name).map_err(std::io::Error::other)?,
            None => ServerName::IpAddress(addr.ip().into()),
        };
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await?;
        let h2 = match config.upstream.protocol {
            UpstreamProtocol::Http1 => false,
            UpstreamProtocol::Http2 => true,
            UpstreamProtocol::Auto => stream.get_ref().1.alpn_protocol() == Some(b"h2"),
        };
        handshake(stream, h2, cut).await
    };
    let conn = match tokio::time::timeout(config.timeouts.connect, connecting).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return Err(ProxyError::Connect(addr, e)),
        Err(_) => {
            let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
            return Err(ProxyError::Connect(addr, e));
        }
    };
    if let Conn::H2(sender) = &conn {
        endpoint.client.set_h2(sender.clone());
    }
    Ok(conn)
}

/// The HTTP handshake on `io`; the connection then runs in its own task until it closes
/// or the endpoint's drain cut.
async fn handshake<T>(io: T, h2: bool, cut: CancellationToken) -> std::io::Result<Conn>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    if h2 {
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await
            .map_err(std::io::Error::other)?;
        drive(conn, cut);
        Ok(Conn::H2(sender))
    } else {
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(io)
            .await
            .map_err(std::io::Error::other)?;
        drive(conn, cut);
        Ok(Conn::H1(sender))
    }
}

/// Runs a connection's driver in its own task until it ends or the endpoint's drain cut.
fn drive<F: Future + Send + 'static>(conn: F, cut: CancellationToken) {
    tokio::spawn(async move {
        tokio::select! {
            _ = conn => {}
            _ = cut.cancelled() => {}
        }
    });
}

/// Reads the `grpc-timeout` header (`<digits><H|M|S|m|u|n>`, at most 8 digits): the
/// deadline a gRPC client gave its call.
pub fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.as_bytes();
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b"H" => Duration::from_secs(n * 3600),
        b"M" => Duration::from_secs(n * 60),
        b"S" => Duration::from_secs(n),
        b"m" => Duration::from_millis(n),
        b"u" => Duration::from_micros(n),
        b"n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// sluice's own answer to a gRPC call it could not forward: a trailers-only gRPC response
/// (HTTP 200, `grpc-status`, `grpc-message`), which gRPC clients read as the call's status;
/// an HTTP error status would reach the application as a vaguer `UNAVAILABLE`/`UNKNOWN`.
pub fn grpc_error(
    status: http::StatusCode,
    message: &'static str,
) -> Response<crate::proxy::body::ProxyBody> {
    let code = match status.as_u16() {
        404 => "12",
        504 => "4",
        400 => "13",
        _ => "14",
    };
    let mut resp = Response::new(crate::proxy::body::ProxyBody::empty());
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert("grpc-status", HeaderValue::from_static(code));
    if let Ok(text) = HeaderValue::from_str(message.trim_end()) {
        h.insert("grpc-message", text);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout(v: &'static str) -> Option<Duration> {
        let mut h = http::HeaderMap::new();
        h.insert("grpc-timeout", HeaderValue::from_static(v));
        grpc_timeout(&h)
    }

    #[test]
    fn grpc_timeout_units_follow_the_grpc_spec() {
        assert_eq!(timeout("200m"), Some(Duration::from_millis(200)));
        assert_eq!(timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(timeout("5u"), Some(Duration::from_micros(5)));
        assert_eq!(timeout("7n"), Some(Duration::from_nanos(7)));
    }

    #[test]
    fn malformed_grpc_timeouts_are_ignored() {
        for v in ["", "m", "123456789m", "10x", "-1S", "1.5S", "S1"] {
            assert_eq!(timeout(v), None, "{v:?}");
        }
    }
}
