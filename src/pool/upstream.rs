//! Idle upstream connections of one endpoint, one list per worker thread so that workers
//! never contend: each worker only touches its own slot's (uncontended) mutex.
//!
//! The pool holds plain sockets with their read buffers; the proxy's HTTP/1 client speaks
//! the protocol on them. Whether an idle socket is still open is read from the reactor's
//! readiness (a FIN or RST seen while idle marks it closed), without a system call.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Most idle connections kept per worker per endpoint.
const MAX_IDLE_PER_WORKER: usize = 256;

static SLOTS: OnceLock<usize> = OnceLock::new();

/// Sets how many worker threads use upstream pools (once, at start-up; default 1 slot per
/// available CPU). More workers than slots still work: they share slots.
pub fn set_worker_slots(n: usize) {
    let _ = SLOTS.set(n.max(1));
}

fn slots() -> usize {
    *SLOTS.get_or_init(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// An open connection to an endpoint and the bytes read from it but not yet consumed.
#[derive(Debug)]
pub struct UpstreamConn {
    /// The socket.
    pub stream: TcpStream,
    /// Read (and head-writing) buffer, kept with the connection so it is allocated once.
    pub buf: BytesMut,
    /// Whether this connection already carried a request (a failure before any response
    /// byte may then be a keep-alive race, and the request may be sent again).
    pub reused: bool,
}

impl UpstreamConn {
    /// A fresh connection.
    pub fn new(stream: TcpStream) -> Self {
        UpstreamConn {
            stream,
            buf: BytesMut::with_capacity(4096),
            reused: false,
        }
    }

    /// False when the idle connection is no longer fit for a request: the peer closed it
    /// (FIN or RST), it failed, or it sent bytes nobody asked for. The reactor's readiness
    /// answers without a system call or a lock while the socket is quiet, which is the
    /// usual case; only a socket the reactor saw readable is peeked at.
    pub fn looks_open(&self) -> bool {
        let mut open = true;
        let _ = self.stream.try_io(Interest::READABLE, || {
            let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
            match socket2::SockRef::from(&self.stream).peek(&mut byte) {
                // Readiness without data (a stale event): cleared, and the socket is open.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(e),
                // End of stream, an error, or unsolicited bytes.
                _ => {
                    open = false;
                    Ok(())
                }
            }
        });
        open
    }
}

/// A pooled connection and when it went idle.
struct Idle {
    conn: UpstreamConn,
    since: Instant,
}

/// One `T` per worker thread, each behind its own (uncontended) mutex: a worker touches only
/// its own slot, a periodic sweep all of them.
struct PerWorker<T> {
    slots: Box<[Mutex<T>]>,
}

impl<T: Default> PerWorker<T> {
    /// `n` slots (at least one).
    fn new(n: usize) -> Self {
        PerWorker {
            slots: (0..n.max(1)).map(|_| Mutex::default()).collect(),
        }
    }

    /// The calling worker's slot.
    fn mine(&self) -> &Mutex<T> {
        &self.slots[SLOT.with(|s| *s) % self.slots.len()]
    }

    /// Every worker's slot.
    fn all(&self) -> impl Iterator<Item = &Mutex<T>> {
        self.slots.iter()
    }
}

/// Per-worker lists of idle keep-alive connections.
pub struct UpstreamPool {
    slots: PerWorker<Vec<Idle>>,
}

impl Default for UpstreamPool {
    fn default() -> Self {
        UpstreamPool {
            slots: PerWorker::new(slots()),
        }
    }
}

impl std::fmt::Debug for UpstreamPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamPool").finish_non_exhaustive()
    }
}

thread_local! {
    static SLOT: usize = next_slot();
}

fn next_slot() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl UpstreamPool {
    /// The most recently used idle connection of this worker that still looks open and
    /// was idle for less than `max_idle`.
    pub fn take(&self, max_idle: Duration) -> Option<UpstreamConn> {
        let now = Instant::now();
        let mut idle = self.slots.mine().lock();
        while let Some(entry) = idle.pop() {
            if now.saturating_duration_since(entry.since) < max_idle && entry.conn.looks_open() {
                let mut conn = entry.conn;
                conn.reused = true;
                return Some(conn);
            }
        }
        None
    }

    /// Returns a connection after a complete, well-framed exchange (its buffer empty).
    /// Liveness is checked when it is taken again, not here (once per request is enough).
    pub fn put(&self, conn: UpstreamConn) {
        if !conn.buf.is_empty() {
            return;
        }
        let mut idle = self.slots.mine().lock();
        if idle.len() < MAX_IDLE_PER_WORKER {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// Closes connections idle for `max_idle` or longer, or closed by the peer (a periodic
    /// sweep calls this).
    pub fn expire(&self, max_idle: Duration) {
        let now = Instant::now();
        for slot in self.slots.all() {
            slot.lock().retain(|e| {
                now.saturating_duration_since(e.since) < max_idle && e.conn.looks_open()
            });
        }
    }

    /// Drops every idle connection (the endpoint left the pool).
    pub fn clear(&self) {
        for slot in self.slots.all() {
            slot.lock().clear();
        }
    }
}

/// The request body type of the hyper-based upstream client (TLS and HTTP/2 backends).
pub type ClientBody = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, BoxError>;
/// A boxed error, as hyper's client wants from request bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Most idle HTTP/1.1-over-TLS connections kept per endpoint.
const MAX_IDLE_CLIENT_CONNS: usize = 256;

/// Connections of the hyper-based client to one endpoint (backends reached over TLS or
/// HTTP/2): one multiplexed HTTP/2 connection per worker, and HTTP/1.1 connections that each
/// carry one exchange at a time. The plain HTTP/1.1 path never touches these.
///
/// An HTTP/2 connection's task runs on the worker that opened it, so each worker keeps its
/// own: a call and the connection carrying it then stay on one thread (no wake-ups of the
/// other worker, no memory freed on the other thread's allocator).
pub struct ClientConns {
    h2: PerWorker<Option<hyper::client::conn::http2::SendRequest<ClientBody>>>,
    h1: Mutex<Vec<(hyper::client::conn::http1::SendRequest<ClientBody>, Instant)>>,
}

impl Default for ClientConns {
    fn default() -> Self {
        Self::with_slots(slots())
    }
}

impl std::fmt::Debug for ClientConns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConns").finish_non_exhaustive()
    }
}

impl ClientConns {
    /// No connections yet, with `n` HTTP/2 slots (one per worker).
    fn with_slots(n: usize) -> Self {
        ClientConns {
            h2: PerWorker::new(n),
            h1: Mutex::default(),
        }
    }

    /// A handle on this worker's HTTP/2 connection to the endpoint, while it is open.
    pub fn h2(&self) -> Option<hyper::client::conn::http2::SendRequest<ClientBody>> {
        let mut h2 = self.h2.mine().lock();
        match &*h2 {
            Some(sender) if !sender.is_closed() => Some(sender.clone()),
            Some(_) => {
                *h2 = None;
                None
            }
            None => None,
        }
    }

    /// Makes `sender` this worker's HTTP/2 connection to the endpoint (a racing newer one
    /// replaces an older, which closes once its streams end).
    pub fn set_h2(&self, sender: hyper::client::conn::http2::SendRequest<ClientBody>) {
        *self.h2.mine().lock() = Some(sender);
    }

    /// An HTTP/1.1 connection ready for a request and idle for less than `max_idle`.
    /// Connections still carrying an exchange stay listed; closed or expired ones go.
    pub fn take_h1(
        &self,
        max_idle: Duration,
    ) -> Option<hyper::client::conn::http1::SendRequest<ClientBody>> {
        self.expire_h1(max_idle);
        let mut idle = self.h1.lock();
        let i = idle.iter().rposition(|(s, _)| s.is_ready())?;
        Some(idle.swap_remove(i).0)
    }

    /// Lists an HTTP/1.1 connection for reuse; it is taken again once its current exchange
    /// (if any) has ended.
    pub fn put_h1(&self, sender: hyper::client::conn::http1::SendRequest<ClientBody>) {
        let mut idle = self.h1.lock();
        if idle.len() < MAX_IDLE_CLIENT_CONNS {
            idle.push((sender, Instant::now()));
        }
    }

    /// Closes HTTP/1.1 connections idle for `max_idle` or longer, or closed by the peer, and
    /// forgets closed HTTP/2 connections (a periodic sweep calls this). An open HTTP/2
    /// connection stays: it is multiplexed, and the backend closes it when it wants to.
    pub fn expire(&self, max_idle: Duration) {
        self.expire_h1(max_idle);
        for slot in self.h2.all() {
            let mut h2 = slot.lock();
            if h2.as_ref().is_some_and(|s| s.is_closed()) {
                *h2 = None;
            }
        }
    }

    /// Drops HTTP/1.1 connections closed by the peer, or ready (no exchange on them) and listed
    /// for `max_idle` or longer (since their last response head): a connection still carrying
    /// an exchange is never dropped.
    fn expire_h1(&self, max_idle: Duration) {
        let now = Instant::now();
        self.h1.lock().retain(|(s, since)| {
            !s.is_closed() && (!s.is_ready() || now.saturating_duration_since(*since) < max_idle)
        });
    }

    /// Drops every connection handle (the endpoint left the pool); HTTP/2 streams in
    /// flight finish, then the connection closes.
    pub fn clear(&self) {
        for slot in self.h2.all() {
            *slot.lock() = None;
        }
        self.h1.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client connection over an in-memory pipe, and the pipe's server end (dropping it
    /// closes the connection).
    async fn h1() -> (
        hyper::client::conn::http1::SendRequest<ClientBody>,
        tokio::io::DuplexStream,
    ) {
        let (client, server) = tokio::io::duplex(1024);
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(client))
                .await
                .expect("an in-memory handshake");
        tokio::spawn(conn);
        (sender, server)
    }

    /// An HTTP/2 client connection over an in-memory pipe, driven on the current runtime,
    /// and the pipe's server end (the connection stays open while it lives).
    async fn h2() -> (
        hyper::client::conn::http2::SendRequest<ClientBody>,
        tokio::io::DuplexStream,
    ) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (sender, conn) =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .handshake(hyper_util::rt::TokioIo::new(client))
                .await
                .expect("an in-memory handshake");
        tokio::spawn(conn);
        (sender, server)
    }

    /// Runs `work` on a new thread with its own single-threaded runtime, as a worker does.
    fn on_worker<F: Future<Output = ()> + 'static>(
        work: impl FnOnce() -> F + Send + 'static,
    ) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(work())
        })
    }

    #[test]
    fn an_http2_connection_opened_on_one_worker_is_never_handed_to_another() {
        let wait = Duration::from_secs(10);
        let conns = std::sync::Arc::new(ClientConns::with_slots(64));
        let (opened_tx, opened) = std::sync::mpsc::channel();
        let (go, go_rx) = std::sync::mpsc::channel::<()>();
        let a = conns.clone();
        let worker_a = on_worker(move || async move {
            let (sender, _server) = h2().await;
            a.set_h2(sender);
            assert!(a.h2().is_some(), "worker A reuses its own connection");
            opened_tx.send(()).expect("the test waits");
            go_rx.recv_timeout(wait).expect("the test goes on");
            assert!(
                a.h2().is_some(),
                "worker B's connection did not replace A's"
            );
        });
        opened.recv_timeout(wait).expect("worker A opened");
        let b = conns.clone();
        on_worker(move || async move {
            assert!(
                b.h2().is_none(),
                "worker A's open connection is not handed to worker B"
            );
            let (sender, _server) = h2().await;
            b.set_h2(sender);
            assert!(b.h2().is_some(), "worker B reuses its own connection");
        })
        .join()
        .expect("worker B's checks");
        let held = || conns.h2.all().filter(|s| s.lock().is_some()).count();
        assert_eq!(held(), 2, "one connection per worker");
        conns.expire(Duration::from_secs(60));
        assert_eq!(
            held(),
            1,
            "worker B's connection closed with its runtime and is forgotten; A's stays"
        );
        go.send(()).expect("worker A waits");
        worker_a.join().expect("worker A's checks");
        conns.clear();
        assert_eq!(held(), 0, "clear drops every worker's connection");
    }

    #[tokio::test(start_paused = true)]
    async fn a_listed_tls_connection_is_reused_until_it_was_idle_too_long() {
        let conns = ClientConns::default();
        let idle = Duration::from_secs(60);
        let (sender, _server) = h1().await;
        conns.put_h1(sender);
        tokio::time::advance(Duration::from_secs(59)).await;
        let sender = conns.take_h1(idle).expect("idle for less than 60 s");
        assert!(
            conns.take_h1(idle).is_none(),
            "taken connections are not listed"
        );
        conns.put_h1(sender);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(conns.take_h1(idle).is_none(), "idle for 60 s: dropped");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_the_peer_closed_is_never_taken() {
        let conns = ClientConns::default();
        let (sender, server) = h1().await;
        conns.put_h1(sender);
        drop(server);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(conns.take_h1(Duration::from_secs(60)).is_none());
    }
}
