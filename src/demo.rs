//! Built-in echo backends for `sluice demo`, the benchmarks and the tests.
//!
//! Each server runs on its own thread and runtime, independent of the caller's. It answers
//! every request with its name in `x-backend` and a body naming the request. Paths that
//! shape the answer: `/status/NNN` answers that status, `/delay/MS` waits first, `/headers`
//! echoes the request headers, `/healthz` answers 200. `Upgrade` requests get 101 and then
//! the raw bytes echoed back.
//!
//! Test knobs, all off by default: [`EchoServer::set_health`] changes the `/healthz` answer,
//! [`EchoServer::set_status`] forces the status of every other answer, and
//! [`EchoServer::record`] keeps every request head received. Dropping the server closes its
//! port and cuts its open connections (a backend that dies).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_util::sync::CancellationToken;

/// A running echo backend; stops when dropped.
#[derive(Debug)]
pub struct EchoServer {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    knobs: Arc<Knobs>,
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EchoServer {
    /// Starts an echo backend named `name` on `addr` (port 0 picks a free port).
    pub fn start(name: &str, addr: SocketAddr) -> std::io::Result<EchoServer> {
        Self::start_with_delay(name, addr, Duration::ZERO)
    }

    /// Like [`EchoServer::start`], but every answer is delayed by `delay`.
    pub fn start_with_delay(
        name: &str,
        addr: SocketAddr,
        delay: Duration,
    ) -> std::io::Result<EchoServer> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let requests = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let name: Arc<str> = name.into();
        let knobs = Arc::new(Knobs::default());
        let (count, token, shared) = (requests.clone(), stop.clone(), knobs.clone());
        let thread = std::thread::Builder::new()
            .name(format!("echo-{name}"))
            .spawn(move || {
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                        return;
                    };
                    loop {
                        let (stream, _) = tokio::select! {
                            _ = token.cancelled() => return,
                            accepted = listener.accept() => match accepted {
                                Ok(a) => a,
                                Err(_) => continue,
                            },
                        };
                        let _ = stream.set_nodelay(true);
                        let (name, count, knobs) = (name.clone(), count.clone(), shared.clone());
                        tokio::spawn(async move {
                            let service = service_fn(move |req| {
                                count.fetch_add(1, Ordering::Relaxed);
                                knobs.see(&req);
                                answer(req, name.clone(), delay, knobs.clone())
                            });
                            let _ =
                                hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                    .await;
                        });
                    }
                });
            })?;
        Ok(EchoServer {
            addr,
            requests,
            knobs,
            stop,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Status answered on `/healthz` from now on (200 until set).
    pub fn set_health(&self, status: StatusCode) {
        self.knobs.health.store(status.as_u16(), Ordering::Relaxed);
    }

    /// Status of every answer other than `/healthz` from now on; `None` goes back to normal.
    pub fn set_status(&self, status: Option<StatusCode>) {
        let code = status.map_or(0, |s| s.as_u16());
        self.knobs.status.store(code, Ordering::Relaxed);
    }

    /// Starts keeping every request head received (see [`EchoServer::seen`]).
    pub fn record(&self) {
        self.knobs.record.store(true, Ordering::Relaxed);
    }

    /// The request heads received since [`EchoServer::record`], in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.knobs.seen.lock().clone()
    }

    /// Forgets the request heads recorded so far (recording goes on).
    pub fn clear_seen(&self) {
        self.knobs.seen.lock().clear();
    }

    /// The request heads recorded so far, forgetting them (recording goes on).
    pub fn take_seen(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.knobs.seen.lock())
    }
}

/// A request head as an echo backend received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The method as sent.
    pub method: String,
    /// The request target (path and query).
    pub target: String,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
}

/// Test knobs shared with the serving thread.
#[derive(Debug, Default)]
struct Knobs {
    /// `/healthz` status; 0 means 200.
    health: AtomicU16,
    /// Forced status of other answers; 0 means none.
    status: AtomicU16,
    record: AtomicBool,
    seen: parking_lot::Mutex<Vec<Seen>>,
}

impl Knobs {
    fn see(&self, req: &Request<Incoming>) {
        if !self.record.load(Ordering::Relaxed) {
            return;
        }
        let headers = req
            .headers()
            .iter()
            .map(|(k, v)| {
                let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (k.as_str().to_owned(), v)
            })
            .collect();
        self.seen.lock().push(Seen {
            method: req.method().to_string(),
            target: req.uri().to_string(),
            headers,
        });
    }

    fn forced(code: &AtomicU16) -> Option<StatusCode> {
        StatusCode::from_u16(code.load(Ordering::Relaxed)).ok()
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn answer(
    mut req: Request<Incoming>,
    name: Arc<str>,
    delay: Duration,
    knobs: Arc<Knobs>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let path = req.uri().path().to_owned();
    if let Some(ms) = path
        .strip_prefix("/delay/")
        .and_then(|s| s.parse::<u64>().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if req.headers().contains_key(header::UPGRADE) {
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = on_upgrade.await {
                let (mut r, mut w) = tokio::io::split(TokioIo::new(upgraded));
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }
        });
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let proto = req
            .headers()
            .get(header::UPGRADE)
            .cloned()
            .unwrap_or(HeaderValue::from_static("echo"));
        resp.headers_mut().insert(header::UPGRADE, proto);
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        return Ok(resp);
    }
    let status = if path == "/healthz" {
        Knobs::forced(&knobs.health)
    } else {
        Knobs::forced(&knobs.status)
    };
    let status = status
        .or_else(|| {
            path.strip_prefix("/status/")
                .and_then(|s| s.parse::<u16>().ok())
                .and_then(|s| StatusCode::from_u16(s).ok())
        })
        .unwrap_or(StatusCode::OK);
    let body = if path == "/headers" {
        let mut text = String::new();
        for (k, v) in req.headers() {
            text.push_str(k.as_str());
            text.push_str(": ");
            text.push_str(&String::from_utf8_lossy(v.as_bytes()));
            text.push('\n');
        }
        text
    } else {
        let method = req.method().to_string();
        let received = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().len())
            .unwrap_or(0);
        format!("{name} {method} {path} {received}\n")
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(&name) {
        resp.headers_mut().insert("x-backend", v);
    }
    Ok(resp)
}
