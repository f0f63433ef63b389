//! The gRPC health check: one grpc.health.v1 `Health/Check` call for the whole server
//! (service `""`) over HTTP/2, h2c or h2 over TLS as the pool reaches its backends. The
//! request and the answer are encoded by hand (two tiny protobuf messages), so the data
//! plane needs no protobuf code generation.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The request: a gRPC frame (uncompressed, length 0) holding an empty
/// `HealthCheckRequest`, whose `service` `""` asks for the server as a whole.
const CHECK_REQUEST: &[u8] = &[0, 0, 0, 0, 0];
/// `HealthCheckResponse.ServingStatus.SERVING`.
const SERVING: u64 = 1;

/// How to reach one endpoint's gRPC health service.
pub(super) struct GrpcProbe {
    /// TLS client configuration (ALPN `h2`) and the name verified, when the pool uses TLS.
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    /// `https://host/grpc.health.v1.Health/Check` or `http://...`.
    uri: Uri,
}

impl GrpcProbe {
    /// A probe of `addr`; `authority` is sent as `:authority`; `tls` (the pool's upstream
    /// TLS configuration and server name) switches to h2 over TLS.
    pub(super) fn new(
        addr: SocketAddr,
        authority: &str,
        tls: Option<(Arc<rustls::ClientConfig>, Option<String>)>,
    ) -> Self {
        let tls = tls.map(|(config, name)| {
            let mut config = (*config).clone();
            config.alpn_protocols = vec![b"h2".to_vec()];
            let name = name
                .and_then(|n| ServerName::try_from(n).ok())
                .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()));
            (Arc::new(config), name)
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        let uri = format!("{scheme}://{authority}/grpc.health.v1.Health/Check")
            .parse()
            .or_else(|_| format!("{scheme}://{addr}/grpc.health.v1.Health/Check").parse())
            .unwrap_or_else(|_| Uri::from_static("/grpc.health.v1.Health/Check"));
        GrpcProbe { tls, uri }
    }

    /// `Ok` when the server answers `SERVING`.
    pub(super) async fn check(&self, addr: SocketAddr) -> Result<(), String> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => self.call(tcp).await,
            Some((config, name)) => {
                let stream = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                self.call(stream).await
            }
        }
    }

    async fn call<T>(&self, io: T) -> Result<(), String>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
        let task = tokio::spawn(conn);
        let result = async {
            let req = Request::post(self.uri.clone())
                .header(http::header::CONTENT_TYPE, "application/grpc")
                .header(http::header::TE, "trailers")
                .header(http::header::USER_AGENT, "sluice-health-check")
                .body(Full::new(Bytes::from_static(CHECK_REQUEST)))
                .map_err(|e| e.to_string())?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| format!("request: {e}"))?;
            if resp.status() != http::StatusCode::OK {
                return Err(format!("HTTP status {}", resp.status().as_u16()));
            }
            let head_status = resp.headers().get("grpc-status").cloned();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("response: {e}"))?;
            let status = body
                .trailers()
                .and_then(|t| t.get("grpc-status").cloned())
                .or(head_status)
                .ok_or_else(|| "no grpc-status".to_owned())?;
            if status != "0" {
                let code = String::from_utf8_lossy(status.as_bytes()).into_owned();
                return Err(format!("grpc-status {code}"));
            }
            match serving_status(body.to_bytes()) {
                Some(SERVING) => Ok(()),
                Some(other) => Err(format!("serving status {}", status_name(other))),
                None => Err("malformed HealthCheckResponse".to_owned()),
            }
        }
        .await;
        task.abort();
        result
    }
}

fn status_name(status: u64) -> String {
    match status {
        0 => "UNKNOWN".to_owned(),
        2 => "NOT_SERVING".to_owned(),
        3 => "SERVICE_UNKNOWN".to_owned(),
        n => n.to_string(),
    }
}

/// The `status` (field 1) of the one `HealthCheckResponse` in a gRPC response body;
/// `None` when the framing or the message is malformed (or compressed).
fn serving_status(mut body: Bytes) -> Option<u64> {
    if body.len() < 5 || body[0] != 0 {
        return None;
    }
    body.advance(1);
    let len = usize::try_from(body.get_u32()).ok()?;
    if body.len() != len {
        return None;
    }
    let mut status = 0;
    while body.has_remaining() {
        let key = varint(&mut body)?;
        match (key >> 3, key & 7) {
            (1, 0) => status = varint(&mut body)?,
            (_, 0) => {
                varint(&mut body)?;
            }
            (_, 2) => {
                let n = usize::try_from(varint(&mut body)?).ok()?;
                if body.len() < n {
                    return None;
                }
                body.advance(n);
            }
            _ => return None,
        }
    }
    Some(status)
}

/// A protobuf varint (at most 10 bytes).
fn varint(buf: &mut Bytes) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..10 {
        if !buf.has_remaining() {
            return None;
        }
        let byte = buf.get_u8();
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(message: &[u8]) -> Bytes {
        let mut out = vec![0];
        out.extend_from_slice(&(message.len() as u32).to_be_bytes());
        out.extend_from_slice(message);
        Bytes::from(out)
    }

    #[test]
    fn serving_status_is_read_from_the_health_response() {
        assert_eq!(serving_status(frame(&[0x08, 0x01])), Some(SERVING));
        assert_eq!(serving_status(frame(&[0x08, 0x02])), Some(2));
        // An empty message is the default status, UNKNOWN.
        assert_eq!(serving_status(frame(&[])), Some(0));
        // Unknown fields are skipped.
        assert_eq!(
            serving_status(frame(&[0x12, 0x01, b'x', 0x08, 0x01])),
            Some(1)
        );
    }

    #[test]
    fn malformed_health_responses_are_refused() {
        assert_eq!(serving_status(Bytes::from_static(&[0, 0, 0])), None);
        assert_eq!(serving_status(Bytes::from_static(&[1, 0, 0, 0, 0])), None);
        assert_eq!(serving_status(frame(&[0x08])), None);
        assert_eq!(
            serving_status(frame(&[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
            ])),
            None
        );
        assert_eq!(serving_status(frame(&[0x12, 0x05, b'x'])), None);
        let mut long = frame(&[0x08, 0x01]).to_vec();
        long.push(0);
        assert_eq!(serving_status(Bytes::from(long)), None);
    }
}
