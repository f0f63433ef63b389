//! Worker threads, listening sockets and per-connection serving.
//!
//! sluice runs like nginx: one single-threaded tokio runtime per worker thread, and for
//! every listener port one `SO_REUSEPORT` socket per worker, so the kernel spreads new
//! connections across workers and a connection lives its whole life on one thread (its
//! upstream connections too). No work stealing, no cross-thread wake-ups on the hot path.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use socket2::{Domain, Socket, Type};
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::proxy::buffers;
use crate::proxy::h2idle::{self, StreamGuard, Streams, TrackedBody};
use crate::proxy::http::{Connection, Listener, handle};
use crate::proxy::http1::guard::Guarded;
use crate::proxy::http1::server::{self as h1server, ClientStream, Outcome, Replay};
use crate::proxy::idle;
use crate::proxy::l4::proxy_protocol;
use crate::proxy::tls::TlsPort;

/// How long a client may take to send a complete request head (slowloris bound).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head accepted; larger gets 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Connection futures up to this size are spawned as they are, larger ones boxed first.
const INLINE_CONNECTION_FUTURE: usize = 1024;
/// HTTP/2 concurrent streams per connection.
pub const H2_MAX_STREAMS: u32 = 100;
/// HTTP/2 header list limit.
pub const H2_MAX_HEADER_LIST: u32 = 16 * 1024;

/// The worker threads and their runtimes.
pub struct Workers {
    handles: Vec<Handle>,
    threads: Vec<std::thread::JoinHandle<()>>,
    exit: CancellationToken,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("count", &self.handles.len())
            .finish()
    }
}

impl Workers {
    /// Starts `n` worker threads, each with its own single-threaded runtime.
    pub fn start(n: usize) -> io::Result<Self> {
        let exit = CancellationToken::new();
        let mut handles = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(rt.handle().clone());
            let exit = exit.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("sluice-worker-{i}"))
                    .spawn(move || {
                        rt.block_on(async {
                            tokio::select! {
                                _ = exit.cancelled() => {}
                                _ = heartbeat() => {}
                            }
                        })
                    })?,
            );
        }
        Ok(Workers {
            handles,
            threads,
            exit,
        })
    }

    /// Runtime handles, one per worker.
    pub fn handles(&self) -> &[Handle] {
        &self.handles
    }

    /// Stops every worker runtime (after draining) and joins the threads.
    pub fn stop(self) {
        self.exit.cancel();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Keeps a timer due within a second on the worker, for the timer driver's sake. When a
/// deadline is registered earlier than the driver's next planned wake-up (always, when no
/// timer was pending as the worker went to sleep), tokio interrupts the worker through its
/// eventfd: one `write` system call and one extra `epoll_wait` return. Short connections
/// often leave a worker with no pending timer, so each request's timeout cost that. With
/// this timer pending, the deadlines of requests and connections (seconds away) are never
/// earlier, and registering them costs no system call; the price is one wake-up a second.
///
/// The same tick sweeps the worker's [`idle`] list of waiting keep-alive connections.
async fn heartbeat() {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        idle::sweep();
    }
}

/// Binds one listening socket with `SO_REUSEPORT` (several may share the address).
pub fn bind_reuseport(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Stop signals of one listener: `stop` ends accepting and asks connections to finish
/// gracefully; `cut` closes whatever is still open (drain timeout).
#[derive(Debug, Clone, Default)]
pub struct Drain {
    /// Stop accepting; finish in-flight work.
    pub stop: CancellationToken,
    /// Close everything now.
    pub cut: CancellationToken,
}

/// What accepted connections are handed to.
pub trait Acceptor: Send + Sync + 'static {
    /// Serves one accepted connection until it ends or `drain` says stop.
    fn serve(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        drain: Drain,
    ) -> impl Future<Output = ()> + Send + 'static;

    /// Answers a connection refused because the process is at its connection limit
    /// (default: close it).
    fn overloaded(&self, stream: TcpStream) -> impl Future<Output = ()> + Send + 'static {
        async move { drop(stream) }
    }
}

/// The process-wide cap on open client connections (`--max-connections`): past it new
/// connections are shed at once instead of letting memory grow without bound.
#[derive(Debug)]
pub struct ConnectionLimit {
    open: std::sync::atomic::AtomicUsize,
    max: usize,
}

impl ConnectionLimit {
    /// A limit of `max` open connections.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(ConnectionLimit {
            open: std::sync::atomic::AtomicUsize::new(0),
            max,
        })
    }

    /// Takes a slot, or `None` when all `max` are in use.
    fn try_acquire(self: &Arc<Self>) -> Option<ConnectionSlot> {
        use std::sync::atomic::Ordering;
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| ConnectionSlot(self.clone()))
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// One open connection counted against the [`ConnectionLimit`].
struct ConnectionSlot(Arc<ConnectionLimit>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0
            .open
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Runs the accept loop of one socket on the current worker.
pub async fn accept_loop<A: Acceptor>(
    socket: std::net::TcpListener,
    acceptor: Arc<A>,
    drain: Drain,
    tracker: TaskTracker,
    limit: Arc<ConnectionLimit>,
) {
    // This worker's own tokens (cancelled with the listener's): a connection clones and
    // checks them, and a token's handle count sits behind a lock that the workers would
    // otherwise all share.
    let drain = Drain {
        stop: drain.stop.child_token(),
        cut: drain.cut.child_token(),
    };
    let listener = match tokio::net::TcpListener::from_std(socket) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot register listener");
            return;
        }
    };
    loop {
        tokio::select! {
            biased;
            _ = drain.stop.cancelled() => {
                // Idle connections wait in the worker's list, not on the signal.
                idle::drained();
                break;
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // TCP_NODELAY is the acceptor's to set: an HTTP connection that closes
                    // after one answer does not need it.
                    match limit.try_acquire() {
                        Some(slot) => {
                            let (acceptor, drain) = (acceptor.clone(), drain.clone());
                            spawn_connection(
                                &tracker,
                                move || acceptor.serve(stream, peer, drain),
                                slot,
                            );
                        }
                        None => {
                            tracing::warn!(client = %peer, max = limit.max, "connection limit reached, shedding");
                            tokio::spawn(acceptor.overloaded(stream));
                        }
                    }
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
    }
}

/// Spawns the future `serving` makes for one connection. A small one (an HTTP connection's
/// idle state) lives in the task itself: one allocation per connection. A large one (KiBs)
/// is written into its own box once the task runs, so the task stays small and spawning
/// moves only a few words (a large future is copied at every move).
fn spawn_connection<F>(
    tracker: &TaskTracker,
    serving: impl FnOnce() -> F + Send + 'static,
    slot: ConnectionSlot,
) where
    F: Future<Output = ()> + Send + 'static,
{
    if size_of::<F>() <= INLINE_CONNECTION_FUTURE {
        tracker.spawn(Holding {
            serving: serving(),
            _slot: slot,
        });
    } else {
        tracker.spawn(async move {
            Box::pin(serving()).await;
            drop(slot);
        });
    }
}

pin_project_lite::pin_project! {
    /// A connection's future with its slot, released when the future is dropped. Not an
    /// async block: one that awaits a captured future keeps the capture and the awaited
    /// copy side by side, which doubled every connection's task.
    struct Holding<F> {
        #[pin]
        serving: F,
        _slot: ConnectionSlot,
    }
}

impl<F: Future<Output = ()>> Future for Holding<F> {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        self.project().serving.poll(cx)
    }
}

/// HTTP/1 server settings, including hyper's known traps: the header-read timeout only
/// works with a timer, and the header size limit must be set explicitly to get 431.
fn http1_builder() -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES + 1024)
        .max_header_size(MAX_HEADER_BYTES)
        .max_headers(256)
        .keep_alive(true);
    builder
}

/// HTTP/2 server settings: bounded streams and header lists, rapid-reset limits. Stream
/// tasks are spawned as hyper hands them over: [`handle`] boxes the request path's future,
/// so what is moved into each task is small.
fn http2_builder() -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_header_list_size(H2_MAX_HEADER_LIST)
        .max_pending_accept_reset_streams(50)
        .max_local_error_reset_streams(64)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    builder
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Decides HTTP/1 or HTTP/2 (prior knowledge) from the first bytes, which are read (not
/// peeked: that would cost a system call per connection) into what becomes the
/// connection's read buffer. `None` when the client closed or stayed silent past the
/// header deadline.
async fn sniff_h2(stream: &mut TcpStream) -> Option<(bool, BytesMut)> {
    // A buffer is lent from the worker's free list only once bytes arrive.
    let mut buf = BytesMut::new();
    let deadline = tokio::time::Instant::now() + HEADER_READ_TIMEOUT;
    loop {
        let n = tokio::time::timeout_at(deadline, buffers::read(stream, &mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        let k = buf.len().min(H2_PREFACE.len());
        if buf[..k] != H2_PREFACE[..k] {
            return Some((false, buf));
        }
        if k == H2_PREFACE.len() {
            return Some((true, buf));
        }
        // A prefix of the preface: wait for more bytes.
    }
}

/// Drives a connection until it ends; on `stop`, asks it to finish gracefully, and on
/// `cut` drops it. The connection state (several KiB in hyper) is boxed, so the
/// per-connection future, allocated at the size of its largest branch, stays the size of
/// the simple HTTP/1 path. When `$idle` resolves first, the connection is asked to finish
/// the same way.
macro_rules! drive {
    ($serving:expr, $drain:expr, $peer:expr, $idle:expr) => {{
        let mut serving = Box::pin($serving);
        tokio::select! {
            biased;
            res = serving.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(client = %$peer, error = %e, "client connection ended");
                }
                return;
            }
            _ = $drain.stop.cancelled() => {}
            _ = $idle => {}
        }
        serving.as_mut().graceful_shutdown();
        tokio::select! {
            _ = serving.as_mut() => {}
            _ = $drain.cut.cancelled() => {}
        }
    }};
}

/// Serves HTTP/1.1 and HTTP/2 on accepted connections: h2c prior knowledge is detected
/// on plain ports, ALPN decides on TLS ports. With `proxy_protocol`, the PROXY header is
/// read first and its client address is the one every later step sees.
#[derive(Debug)]
pub struct HttpAcceptor {
    /// The port's shared state.
    pub listener: Arc<Listener>,
    /// TLS termination, when the port's pools have `tls`.
    pub tls: Option<Arc<TlsPort>>,
    /// Expect a PROXY protocol header on every connection.
    pub proxy_protocol: bool,
    http1: hyper::server::conn::http1::Builder,
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
}

impl HttpAcceptor {
    /// An acceptor for `listener`.
    pub fn new(listener: Arc<Listener>, tls: Option<Arc<TlsPort>>, proxy_protocol: bool) -> Self {
        HttpAcceptor {
            listener,
            tls,
            proxy_protocol,
            http1: http1_builder(),
            http2: http2_builder(),
        }
    }

    /// Serves HTTP on `io` (a TLS connection), whose first bytes (already read) are `first`.
    ///
    /// Only the simple HTTP/1.1 loop is inline: its idle state is what a keep-alive
    /// connection holds most of its life, and this future is allocated at the size of its
    /// largest branch. HTTP/2 and hyper's HTTP/1 are boxed where they start.
    async fn serve_io<S>(
        &self,
        io: S,
        first: BytesMut,
        h2: bool,
        conn: Arc<Connection>,
        drain: Drain,
    ) where
        S: ClientStream + Send + 'static,
    {
        if h2 {
            return Box::pin(self.serve_h2(io, first, conn, drain)).await;
        }
        // Simple requests are served by our own loop; the first one that is not hands
        // the connection (and the bytes read so far) to hyper.
        let io = match h1server::serve_simple(io, first, &conn, &drain).await {
            Outcome::Done => return,
            Outcome::Fallback(io) => io,
        };
        Box::pin(self.serve_hyper_h1(io, conn, drain)).await;
    }

    /// Serves HTTP/2 on `io`, whose first bytes (already read) are `first`.
    async fn serve_h2<S>(&self, io: S, first: BytesMut, conn: Arc<Connection>, drain: Drain)
    where
        S: ClientStream + Send + 'static,
    {
        let peer = conn.peer;
        io.set_nodelay();
        let io = Replay::new(first.freeze(), io);
        let streams = Arc::new(Streams::default());
        let service = {
            let (conn, streams) = (conn.clone(), streams.clone());
            service_fn(move |req| {
                let stream = StreamGuard::new(streams.clone());
                let response = handle(req, conn.clone());
                async move {
                    let response = response.await?;
                    Ok::<_, Infallible>(response.map(|body| TrackedBody::new(body, stream)))
                }
            })
        };
        drive!(
            self.http2.serve_connection(TokioIo::new(io), service),
            drain,
            peer,
            h2idle::idle(&conn, &streams)
        );
    }

    /// Serves the rest of an HTTP/1 connection with hyper (behind the smuggling guard).
    async fn serve_hyper_h1<S>(&self, io: Replay<S>, conn: Arc<Connection>, drain: Drain)
    where
        S: ClientStream + Send + 'static,
    {
        let peer = conn.peer;
        let io = TokioIo::new(Guarded::new(io, conn.guard_verdict()));
        let service = service_fn(move |req| handle(req, conn.clone()));
        drive!(
            self.http1.serve_connection(io, service).with_upgrades(),
            drain,
            peer,
            std::future::pending::<()>()
        );
    }
}

/// Reads the PROXY header when the port expects one; `None` closes the connection.
pub async fn client_address(
    stream: &mut TcpStream,
    peer: SocketAddr,
    expected: bool,
) -> Option<SocketAddr> {
    connection_addresses(stream, peer, expected)
        .await
        .map(|a| a.source)
}

/// Like [`client_address`], but also the address the client connected to when a PROXY
/// header announced it (`destination` is then that header's; otherwise `None`, and the
/// accepted socket's local address stands).
pub async fn connection_addresses(
    stream: &mut TcpStream,
    peer: SocketAddr,
    expected: bool,
) -> Option<PeerAddresses> {
    if !expected {
        return Some(PeerAddresses {
            source: peer,
            destination: None,
        });
    }
    match proxy_protocol::read_header(stream).await {
        Ok(announced) => Some(PeerAddresses {
            source: announced.map_or(peer, |a| a.source),
            destination: announced.map(|a| a.destination),
        }),
        Err(e) => {
            tracing::debug!(client = %peer, error = %e, "connection without a valid PROXY header closed");
            None
        }
    }
}

/// Who a connection comes from, and where it was going when a PROXY header said so.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddresses {
    /// The client: the PROXY header's source, else the TCP peer.
    pub source: SocketAddr,
    /// The address the client connected to, as announced by a PROXY header.
    pub destination: Option<SocketAddr>,
}

/// The answer to a client shed at the connection limit (plain-text ports).
const OVERLOADED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 23\r\nConnection: close\r\nRetry-After: 1\r\n\r\nserver overloaded, retry";

impl Acceptor for HttpAcceptor {
    fn overloaded(&self, stream: TcpStream) -> impl Future<Output = ()> + Send + 'static {
        let plain = self.tls.is_none() && !self.proxy_protocol;
        async move {
            if plain {
                use tokio::io::AsyncWriteExt;
                let mut stream = stream;
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(OVERLOADED))
                    .await;
                let _ = stream.shutdown().await;
            }
        }
    }

    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would keep a second copy of its arguments"
    )]
    fn serve(
        self: Arc<Self>,
        mut stream: TcpStream,
        peer: SocketAddr,
        drain: Drain,
    ) -> impl Future<Output = ()> + Send + 'static {
        // An async block rather than an async fn, which would keep a second copy of its
        // arguments for the connection's whole life.
        async move {
            // Boxed: the PROXY header is read through a 1 KiB buffer, which would otherwise be
            // part of every connection's future for its whole life.
            let peer = if self.proxy_protocol {
                match Box::pin(client_address(&mut stream, peer, true)).await {
                    Some(peer) => peer,
                    None => return,
                }
            } else {
                peer
            };
            let conn = Arc::new(Connection::new(self.listener.clone(), peer));
            if let Some(tls) = &self.tls {
                // Boxed, the handshake and the TLS connection (KiBs of rustls state): this
                // future is allocated at the size of its largest branch.
                return Box::pin(self.serve_tls(tls.clone(), stream, conn, drain)).await;
            }
            // The plain path is written out here rather than through `serve_io`: an async fn
            // keeps its arguments for its whole life, so each nested call would hold its own
            // copy of the stream and the first bytes.
            let Some((h2, first)) = sniff_h2(&mut stream).await else {
                return;
            };
            if h2 {
                return Box::pin(self.serve_h2(stream, first, conn, drain)).await;
            }
            let io = match h1server::serve_simple(stream, first, &conn, &drain).await {
                Outcome::Done => return,
                Outcome::Fallback(io) => io,
            };
            Box::pin(self.serve_hyper_h1(io, conn, drain)).await;
        }
    }
}

impl HttpAcceptor {
    /// Serves a connection to a TLS port: the handshake, then HTTP as ALPN chose.
    async fn serve_tls(
        &self,
        tls: Arc<TlsPort>,
        stream: TcpStream,
        conn: Arc<Connection>,
        drain: Drain,
    ) {
        // Nagle off before the handshake, whose flights it would delay.
        let _ = stream.set_nodelay(true);
        let Some(tls_stream) = tls.accept(stream).await else {
            return;
        };
        let h2 = tls_stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
        // Boxed: the TLS connection is a KiB, and each async fn it passes through keeps
        // its own copy of its arguments.
        self.serve_io(Box::new(tls_stream), BytesMut::new(), h2, conn, drain)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `make` returns, without making one.
    fn size_of_output<F, R>(_: F) -> usize
    where
        F: FnOnce(Arc<HttpAcceptor>, TcpStream, SocketAddr, Drain) -> R,
    {
        size_of::<R>()
    }

    #[test]
    fn an_http_connections_future_is_small_enough_to_live_in_its_task() {
        // Its idle state is what an idle keep-alive connection holds for its whole life:
        // anything request-sized belongs in the lent burst or a box.
        let size = size_of_output(|a: Arc<HttpAcceptor>, s, p, d| a.serve(s, p, d));
        assert!(
            size <= INLINE_CONNECTION_FUTURE,
            "an HTTP connection's future is {size} bytes"
        );
    }
}
