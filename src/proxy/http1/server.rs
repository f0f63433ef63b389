//! sluice's own HTTP/1.1 server loop for plain requests, with hyper behind it for the rest.
//!
//! Most requests a load balancer sees are simple: HTTP/1.1, an origin-form target, one
//! `Host`, no body or a small one with `Content-Length`. For those this loop reads the head
//! into the connection's buffer, parses it in place with `httparse`, runs the same request
//! path as every other request ([`http::serve`](crate::proxy::http::serve)) and writes the answer
//! itself: no dispatcher, no per-request timer allocation, no second parse by the smuggling
//! guard, response head and small body in one write.
//!
//! Anything else — a chunked or large body, `Expect`, `Upgrade`, HTTP/1.0, an absolute-form
//! target, a missing, repeated or invalid `Host`, a head `httparse` or the `http` types
//! refuse, a head over the [`strict`] limits — is not judged here at all: the connection, with every byte read so far,
//! is handed to hyper and the smuggling guard, exactly as if this loop did not exist, so
//! refusals (400, 431, 501) and their framing rules stay in one place.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri, Version};
use http_body::Body as _;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::proxy::body::ProxyBody;
use crate::proxy::buffers;
use crate::proxy::http::{ClientBody, Connection, serve};
use crate::proxy::http1::client::parse_length;
use crate::proxy::http1::strict;
use crate::proxy::idle::{self, Ticket, Wait};
use crate::proxy::lent::Lent;
use crate::proxy::server::{Drain, HEADER_READ_TIMEOUT, MAX_HEADER_BYTES};
use crate::proxy::upstream::MAX_REPLAY_BODY;

/// Most header fields in a request head this loop parses (hyper's limit is the same).
const MAX_HEADERS: usize = 256;
/// Bodies (and chunks) up to this size are copied into the head's write.
const COALESCE: usize = 16 * 1024;

/// How the loop ended.
pub enum Outcome<S> {
    /// The connection is finished (closed by either side, drained or timed out).
    Done,
    /// The next request is not a simple one: serve the rest of the connection with hyper.
    /// The stream replays the bytes already read.
    Fallback(Replay<S>),
}

/// What the loop needs from a client stream besides reading and writing.
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin {
    /// Whether ending the connection is said in-band (TLS `close_notify`), so it is shut
    /// down rather than just closed.
    const CLOSES_IN_BAND: bool;
    /// Turns Nagle's algorithm off (if it is not already).
    fn set_nodelay(&self);
}

impl ClientStream for tokio::net::TcpStream {
    const CLOSES_IN_BAND: bool = false;
    fn set_nodelay(&self) {
        let _ = tokio::net::TcpStream::set_nodelay(self, true);
    }
}

impl ClientStream for Box<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    const CLOSES_IN_BAND: bool = true;
    /// Already off: TLS ports set it before the handshake, whose flights it would delay.
    fn set_nodelay(&self) {}
}

/// Serves simple requests on `io` (whose first bytes, already read, are in `rbuf`) until
/// the connection ends or a request needs hyper.
///
/// A keep-alive connection spends most of its life waiting for its next request, so this
/// future is only its idle state: the stream, the (then empty and handed back) read buffer
/// and its entry in the worker's [`idle`] list (which times it out and tells it about
/// drains). Everything a request needs — the request path's future, the answer writer, the
/// header deadline, the drain cut — lives in a [`burst`] future, in a block lent by the
/// worker from the first byte of a request until the connection is idle again.
///
/// Nagle's algorithm stays on (one system call saved) while every answer is the
/// connection's last and of known length: closing pushes out whatever Nagle held back,
/// so it never delays such an answer. It is turned off before any other answer.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep a second copy of its arguments"
)]
pub fn serve_simple<'a, S: ClientStream + 'a>(
    mut io: S,
    mut rbuf: BytesMut,
    conn: &'a Arc<Connection>,
    drain: &'a Drain,
) -> impl Future<Output = Outcome<S>> + 'a {
    // An async block rather than an async fn, which would keep a second copy of its
    // arguments for the connection's whole life.
    async move {
        // The first head is due within the header deadline of the connection's start.
        let mut due = Instant::now() + HEADER_READ_TIMEOUT;
        let mut nodelay = false;
        loop {
            // Idle until `due`; while nothing arrives the buffer is back in the worker's
            // free list.
            if rbuf.is_empty() && !wait(&mut io, &mut rbuf, due, drain).await {
                return Outcome::Done;
            }
            let step = Lent::new(burst(&mut io, &mut rbuf, conn, drain, due, &mut nodelay)).await;
            match step {
                Step::Idle(next) => due = next,
                Step::Done => return Outcome::Done,
                Step::Fallback(rbuf) => return fallback(io, rbuf),
            }
        }
    }
}

/// Waits for bytes on an idle connection, in the worker's idle list: `false` when the
/// connection is to close (the client closed it or failed, its idle time passed at `due`,
/// or its listener is draining).
fn wait<'a, S: ClientStream>(
    io: &'a mut S,
    rbuf: &'a mut BytesMut,
    due: Instant,
    drain: &'a Drain,
) -> impl Future<Output = bool> + 'a {
    // A `poll_fn`: its state is what an idle connection holds, and only its arguments and
    // the ticket are in it this way.
    let mut ticket: Option<Ticket> = None;
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(read) = buffers::poll_read(io, rbuf, cx) {
            return Poll::Ready(matches!(read, Ok(n) if n > 0));
        }
        let ticket = match &mut ticket {
            Some(ticket) => ticket,
            None => {
                // A drain that began while this connection was busy was not announced to it.
                if idle::any_drained() && drain.stop.is_cancelled() {
                    return Poll::Ready(false);
                }
                ticket.insert(Ticket::wait_until(due))
            }
        };
        match ticket.check(cx.waker()) {
            Wait::Expired => Poll::Ready(false),
            Wait::Drain if drain.stop.is_cancelled() => Poll::Ready(false),
            // Waiting, or another listener's drain.
            Wait::Waiting | Wait::Drain => Poll::Pending,
        }
    })
}

/// How a burst ended.
enum Step {
    /// Every answer is written and nothing more is buffered: the connection waits, idle
    /// until the given time.
    Idle(Instant),
    /// The connection is finished.
    Done,
    /// The next request is hyper's: these are the bytes read so far.
    Fallback(BytesMut),
}

/// Serves the requests in `rbuf` (not empty), and those pipelined behind them, until an
/// answer is written with nothing more buffered. `idle_due` is when the connection's idle
/// time (which the first bytes interrupted) would have ended.
async fn burst<S: ClientStream>(
    io: &mut S,
    rbuf: &mut BytesMut,
    conn: &Arc<Connection>,
    drain: &Drain,
    mut idle_due: Instant,
    nodelay: &mut bool,
) -> Step {
    let cut = drain.cut.cancelled();
    tokio::pin!(cut);
    // Created only when a head or body has to be waited for.
    let mut timer = std::pin::pin!(None::<Sleep>);
    loop {
        // Read a complete head (the next one may already be buffered: pipelining). Once
        // part of a head is here, the rest must follow within the header deadline.
        let mut due = idle_due;
        let head = loop {
            match OFFSETS.with_borrow_mut(|offsets| parse(rbuf, offsets)) {
                Parsed::Simple(head) => break head,
                Parsed::Partial if rbuf.len() <= MAX_HEADER_BYTES => {
                    due = due.min(Instant::now() + HEADER_READ_TIMEOUT);
                }
                Parsed::Partial | Parsed::Other => return Step::Fallback(std::mem::take(rbuf)),
            }
            tokio::select! {
                biased;
                read = buffers::read(io, rbuf) => match read {
                    Ok(0) | Err(_) => return Step::Done,
                    Ok(_) => {}
                },
                _ = expired(&mut timer, due) => return Step::Done,
            }
        };
        // The head leaves the buffer without a copy: header values are slices of it.
        let block = rbuf.split_to(head.len).freeze();
        // The `http` types are stricter than httparse in places (e.g. characters in the
        // target): what they refuse, hyper answers.
        // No await since the parse: the offsets are this head's.
        let Some(mut req) = OFFSETS.with_borrow(|offsets| head.request(&block, offsets)) else {
            let mut all = BytesMut::from(&block[..]);
            all.extend_from_slice(rbuf);
            return Step::Fallback(all);
        };
        let length = head.content_length as usize;
        while rbuf.len() < length {
            tokio::select! {
                biased;
                read = buffers::read(io, rbuf) => match read {
                    Ok(0) | Err(_) => return Step::Done,
                    Ok(_) => {}
                },
                _ = expired(&mut timer, due) => return Step::Done,
            }
        }
        if length > 0 {
            *req.body_mut() = ClientBody::Kept(Some(rbuf.split_to(length).freeze()));
        }
        let is_head = req.method() == Method::HEAD;
        let mut close = head.close;
        let response = tokio::select! {
            biased;
            response = serve(req, conn.clone(), Ok(())) => response,
            _ = &mut cut => return Step::Done,
        };
        // Draining: this answer is the connection's last, and says so. (Until a listener
        // on this worker drains, the signal, behind a lock, need not be looked at.)
        close |= idle::any_drained() && drain.stop.is_cancelled();
        let last_of_known_length = close && response.body().size_hint().exact().is_some();
        if !(*nodelay || last_of_known_length) {
            io.set_nodelay();
            *nodelay = true;
        }
        // The write buffer is lent for this answer only.
        let mut wbuf = buffers::take_write();
        let written = tokio::select! {
            biased;
            written = respond(io, &mut wbuf, response, is_head, &mut close) => written,
            _ = &mut cut => return Step::Done,
        };
        buffers::give_write(wbuf);
        if written.is_err() || close {
            // A plain connection just closes (the FIN follows the answer); bytes the
            // client sent past this request make the kernel reset it either way.
            if S::CLOSES_IN_BAND {
                let _ = io.shutdown().await;
            }
            return Step::Done;
        }
        idle_due = Instant::now() + conn.keep_idle();
        if rbuf.is_empty() {
            return Step::Idle(idle_due);
        }
    }
}

/// Waits until `due` on `timer` (created on first use, re-armed when `due` moved).
fn expired<'a>(
    timer: &'a mut Pin<&mut Option<Sleep>>,
    due: Instant,
) -> impl Future<Output = ()> + 'a {
    std::future::poll_fn(move |cx| {
        if timer.is_none() {
            timer.set(Some(tokio::time::sleep_until(due)));
        }
        let mut sleep = timer.as_mut().as_pin_mut().expect("set above");
        if sleep.deadline() != due {
            sleep.as_mut().reset(due);
        }
        sleep.poll(cx)
    })
}

fn fallback<S: ClientStream>(io: S, rbuf: BytesMut) -> Outcome<S> {
    io.set_nodelay();
    Outcome::Fallback(Replay {
        prefix: rbuf.freeze(),
        inner: io,
    })
}

/// Where a header's name and value lie in the head: name start, name end, value start,
/// value end.
type Offsets = [usize; 4];

thread_local! {
    /// The worker's header offsets of the head just parsed: filled by [`parse`] and read by
    /// [`Head::request`] with no await in between, so no connection needs its own list.
    static OFFSETS: std::cell::RefCell<Vec<Offsets>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// A simple request head, as offsets into the buffer it was parsed from (the header
/// offsets are in the worker's list, [`OFFSETS`]).
struct Head {
    len: usize,
    method: Method,
    target: (usize, usize),
    content_length: u64,
    close: bool,
}

impl Head {
    /// The request (without its body), its header values sharing `block` (the head, split
    /// off the read buffer); `None` when the `http` types refuse a part.
    fn request(&self, block: &Bytes, offsets: &[Offsets]) -> Option<Request<ClientBody>> {
        let uri = Uri::from_maybe_shared(block.slice(self.target.0..self.target.1)).ok()?;
        let mut headers = HeaderMap::with_capacity(offsets.len() + 4);
        for &[ns, ne, vs, ve] in offsets {
            let name = HeaderName::from_bytes(&block[ns..ne]).ok()?;
            let value = HeaderValue::from_maybe_shared(block.slice(vs..ve)).ok()?;
            headers.append(name, value);
        }
        let mut req = Request::new(ClientBody::Kept(None));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;
        *req.headers_mut() = headers;
        Some(req)
    }
}

enum Parsed {
    Simple(Head),
    Partial,
    Other,
}

/// Parses the head at the start of `buf` and decides whether this loop serves it; the
/// header offsets go to `offsets`.
fn parse(buf: &[u8], offsets: &mut Vec<Offsets>) -> Parsed {
    let mut slots =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    if len > MAX_HEADER_BYTES
        || req.version != Some(1)
        || req.headers.len() > strict::MAX_HEADER_FIELDS
        || strict::request_line_len(buf) > strict::MAX_REQUEST_LINE
    {
        return Parsed::Other;
    }
    let (Some(method), Some(path)) = (req.method, req.path) else {
        return Parsed::Other;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::Other;
    };
    if method == Method::CONNECT || !path.starts_with('/') || !strict::valid_target(path.as_bytes())
    {
        return Parsed::Other;
    }
    let offset = |s: &[u8]| s.as_ptr() as usize - buf.as_ptr() as usize;
    let start = offset(path.as_bytes());
    let mut head = Head {
        len,
        method,
        target: (start, start + path.len()),
        content_length: 0,
        close: false,
    };
    offsets.clear();
    let mut hosts = 0;
    let mut lengths = 0;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"host") {
            if h.value.is_empty() || !strict::valid_host(h.value) {
                return Parsed::Other;
            }
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            lengths += 1;
            match parse_length(h.value) {
                Some(n) if n <= MAX_REPLAY_BODY => head.content_length = n,
                _ => return Parsed::Other,
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    head.close = true;
                } else if !token.eq_ignore_ascii_case(b"keep-alive") && !token.is_empty() {
                    // It names other headers to drop, or asks for an upgrade.
                    return Parsed::Other;
                }
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"expect")
            || name.eq_ignore_ascii_case(b"upgrade")
            || name.eq_ignore_ascii_case(b"http2-settings")
        {
            return Parsed::Other;
        }
        let ns = offset(name);
        let vs = offset(h.value);
        offsets.push([ns, ns + name.len(), vs, vs + h.value.len()]);
    }
    if hosts != 1 || lengths > 1 {
        return Parsed::Other;
    }
    Parsed::Simple(head)
}

/// Writes `response` (head, then its body as it arrives). Sets `close` when the answer
/// asks for the connection to end.
async fn respond<S>(
    io: &mut S,
    wbuf: &mut Vec<u8>,
    response: http::Response<ProxyBody>,
    is_head: bool,
    close: &mut bool,
) -> std::io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    let (parts, mut body) = response.into_parts();
    wbuf.clear();
    wbuf.extend_from_slice(b"HTTP/1.1 ");
    wbuf.extend_from_slice(parts.status.as_str().as_bytes());
    wbuf.push(b' ');
    wbuf.extend_from_slice(
        parts
            .status
            .canonical_reason()
            .unwrap_or("Unknown")
            .as_bytes(),
    );
    wbuf.extend_from_slice(b"\r\n");
    let mut has_length = false;
    let mut has_date = false;
    for (name, value) in &parts.headers {
        if name == header::CONNECTION {
            if value.as_bytes().eq_ignore_ascii_case(b"close") {
                *close = true;
            }
            continue;
        }
        if name == header::TRANSFER_ENCODING || name.as_str() == "keep-alive" {
            continue;
        }
        has_length |= name == header::CONTENT_LENGTH;
        has_date |= name == header::DATE;
        wbuf.extend_from_slice(name.as_str().as_bytes());
        wbuf.extend_from_slice(b": ");
        wbuf.extend_from_slice(value.as_bytes());
        wbuf.extend_from_slice(b"\r\n");
    }
    if !has_date {
        wbuf.extend_from_slice(b"date: ");
        date(wbuf);
        wbuf.extend_from_slice(b"\r\n");
    }
    let bodiless = is_head
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED;
    let framed_here = !has_length && !bodiless;
    let length = body.size_hint().exact();
    let chunked = framed_here && length.is_none();
    if let (true, Some(n)) = (framed_here, length) {
        wbuf.extend_from_slice(b"content-length: ");
        wbuf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        wbuf.extend_from_slice(b"\r\n");
    }
    if chunked {
        wbuf.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if *close {
        wbuf.extend_from_slice(b"connection: close\r\n");
    }
    wbuf.extend_from_slice(b"\r\n");
    if bodiless {
        io.write_all(wbuf).await?;
        return io.flush().await;
    }
    // Body frames: small ones ride in the buffer with what is pending.
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        let data = match frame {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue,
            },
            Some(Err(e)) => {
                // The backend broke off: the client must not take a truncated body for a
                // whole one, so the connection ends here.
                let _ = io.write_all(wbuf).await;
                *close = true;
                return Err(e);
            }
        };
        if data.is_empty() {
            continue;
        }
        if chunked {
            use std::io::Write as _;
            let _ = write!(wbuf, "{:x}\r\n", data.len());
        }
        if data.len() <= COALESCE {
            wbuf.extend_from_slice(&data);
        } else {
            io.write_all(wbuf).await?;
            wbuf.clear();
            io.write_all(&data).await?;
        }
        if chunked {
            wbuf.extend_from_slice(b"\r\n");
        }
        if wbuf.len() > COALESCE || !body.is_end_stream() {
            io.write_all(wbuf).await?;
            wbuf.clear();
        }
    }
    if chunked {
        wbuf.extend_from_slice(b"0\r\n\r\n");
    }
    io.write_all(wbuf).await?;
    io.flush().await
}

/// Appends the current time as an IMF-fixdate, formatted once per second per thread.
fn date(out: &mut Vec<u8>) {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local! {
        static CACHE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.0 != second {
            *cache = (second, httpdate::fmt_http_date(now));
        }
        out.extend_from_slice(cache.1.as_bytes());
    });
}

pin_project_lite::pin_project! {
    /// A stream whose first bytes were already read: they are read again first.
    pub struct Replay<S> {
        prefix: Bytes,
        #[pin]
        inner: S,
    }
}

impl<S> Replay<S> {
    /// `inner`, with `prefix` read before anything else.
    pub fn new(prefix: Bytes, inner: S) -> Self {
        Replay { prefix, inner }
    }
}

impl<S: AsyncRead> AsyncRead for Replay<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.project();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        this.inner.poll_read(cx, buf)
    }
}

impl<S: AsyncWrite> AsyncWrite for Replay<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

/// [`parse`] and, for a head this loop serves, [`Head::request`]: the fuzz targets' view
/// ([`crate::fuzzing::parse_request_head`]).
pub(crate) fn parse_for_fuzzing(buf: &[u8]) -> crate::fuzzing::RequestHead {
    use crate::fuzzing::{RequestHead, SimpleHead};
    let mut offsets = Vec::new();
    match parse(buf, &mut offsets) {
        Parsed::Partial => RequestHead::Partial,
        Parsed::Other => RequestHead::Other,
        Parsed::Simple(head) => {
            // As the loop does: the head is split off the buffer, offsets still hold.
            let block = Bytes::copy_from_slice(&buf[..head.len]);
            let request = head.request(&block, &offsets).map(|r| r.map(|_| ()));
            RequestHead::Simple(Box::new(SimpleHead {
                len: head.len,
                target: buf[head.target.0..head.target.1].to_vec(),
                method: head.method,
                content_length: head.content_length,
                close: head.close,
                request,
            }))
        }
    }
}
