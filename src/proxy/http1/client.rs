//! sluice's own HTTP/1.1 client for upstream requests.
//!
//! It runs inline on the client connection's task, with no dispatch task or channel in
//! between: the request head is encoded into the connection's buffer and written together
//! with a small buffered body in one system call; the response head is parsed in place with
//! `httparse` (one copy of the head, header values are slices of it); the response body is
//! read straight from the socket by the body the client is sent, and a connection goes back
//! to its endpoint's idle pool the moment its response is complete.
//!
//! Framing is strict (RFC 9112 6.3): conflicting `Content-Length` values, `Content-Length`
//! together with `Transfer-Encoding`, or a malformed chunk fail the exchange, and such a
//! connection is never reused. A response delimited by the connection closing, an HTTP/1.0
//! response or `Connection: close` is never reused either.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};

use crate::policy::LimitedBody;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::pool::UpstreamConn;

/// Largest response head accepted from a backend.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Most header fields in a response head.
const MAX_RESPONSE_HEADERS: usize = 256;
/// Read size: one socket read fills at most this much of the buffer.
const READ_CHUNK: usize = 16 * 1024;
/// A buffered request body up to this size goes out in the same write as the head.
const COALESCE_BODY: usize = 16 * 1024;
/// Body slices up to this size are copied out of the read buffer, so that the buffer's
/// allocation stays unshared and is reused by the next read.
const COPY_BELOW: usize = 4 * 1024;
/// Longest chunk-size line (size and extensions, without its CRLF) and largest trailer
/// section (field lines with their CRLFs, without the final empty line) accepted.
const MAX_CHUNK_LINE: usize = 4 * 1024;
const MAX_TRAILERS: usize = 16 * 1024;

/// The request body, as the caller holds it.
pub enum RequestBody<'a> {
    /// No body.
    Empty,
    /// A body kept in memory (sent with `Content-Length`).
    Bytes(&'a Bytes),
    /// The client's body, streamed (with `Content-Length` when known, else chunked).
    Stream(LimitedBody),
}

/// Why an exchange failed.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong.
    pub error: io::Error,
    /// The connection was reused and closed before any byte of a response arrived: most
    /// likely the backend closed it while it sat idle, so the request never reached it.
    pub stale: bool,
}

/// Sends the request on `conn` and reads the response head. The returned response's body
/// reads the rest from `conn`, which it owns from then on.
pub async fn exchange(
    mut conn: UpstreamConn,
    parts: &Parts,
    body: RequestBody<'_>,
) -> Result<Response<ResponseBody>, Failure> {
    let reused = conn.reused;
    let mut sent_all = true;
    let mut received = false;
    let result = async {
        sent_all = send(&mut conn, parts, body).await?;
        read_head(&mut conn, &parts.method, &mut received).await
    }
    .await;
    match result {
        Ok((head, framing, keep_alive)) => {
            let state = match framing {
                Framing::Empty => State::Done,
                Framing::Length(0) => State::Done,
                Framing::Length(n) => State::Length(n),
                Framing::Chunked => State::Chunked(Chunk::Size),
                Framing::Close => State::Close,
                Framing::Upgrade => State::Upgraded,
            };
            Ok(Response::from_parts(
                head,
                ResponseBody {
                    conn: Some(conn),
                    state,
                    keep_alive: keep_alive && sent_all,
                    trailer_bytes: 0,
                },
            ))
        }
        Err(error) => {
            let silent = matches!(
                error.kind(),
                io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionAborted
            );
            Err(Failure {
                stale: reused && silent && conn.buf.is_empty() && !received,
                error,
            })
        }
    }
}

/// How the request body is framed upstream.
enum RequestFraming {
    None,
    Length(u64),
    Chunked,
}

/// Writes the request. Returns false when the backend answered before the whole body was
/// sent (the answer is then in `conn.buf` and the connection cannot be reused).
async fn send(conn: &mut UpstreamConn, parts: &Parts, body: RequestBody<'_>) -> io::Result<bool> {
    use http_body::Body as _;
    let framing = match &body {
        RequestBody::Empty if sends_length_zero(&parts.method) => RequestFraming::Length(0),
        RequestBody::Empty => RequestFraming::None,
        RequestBody::Bytes(b) => RequestFraming::Length(b.len() as u64),
        RequestBody::Stream(s) => match s.size_hint().exact() {
            Some(n) => RequestFraming::Length(n),
            None => RequestFraming::Chunked,
        },
    };
    conn.buf.clear();
    encode_head(&mut conn.buf, parts, &framing);
    match body {
        RequestBody::Empty => conn.stream.write_all(&conn.buf).await?,
        RequestBody::Bytes(b) if b.len() <= COALESCE_BODY => {
            conn.buf.extend_from_slice(b);
            conn.stream.write_all(&conn.buf).await?;
        }
        RequestBody::Bytes(b) => {
            conn.stream.write_all(&conn.buf).await?;
            conn.stream.write_all(b).await?;
        }
        RequestBody::Stream(stream) => {
            conn.stream.write_all(&conn.buf).await?;
            conn.buf.clear();
            return upload(conn, stream, matches!(framing, RequestFraming::Chunked)).await;
        }
    }
    conn.buf.clear();
    Ok(true)
}

/// Streams the client's body upstream while watching for an early answer (a backend may
/// refuse an upload before reading it, or stream its answer while it reads).
async fn upload(conn: &mut UpstreamConn, mut body: LimitedBody, chunked: bool) -> io::Result<bool> {
    use http_body_util::BodyExt;
    let (mut rd, mut wr) = conn.stream.split();
    let buf = &mut conn.buf;
    loop {
        let frame = tokio::select! {
            biased;
            n = rd.read_buf(buf) => {
                if n? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                return Ok(false);
            }
            frame = body.frame() => frame,
        };
        let data = match frame {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue,
            },
            Some(Err(e)) => return Err(io::Error::other(crate::proxy::error::ClientBodyFailed(e))),
        };
        if data.is_empty() {
            continue;
        }
        let write = async {
            if chunked {
                // Size line, data and CRLF in one (vectored) write; the line is formatted
                // on the stack.
                use std::io::Write as _;
                let mut line = std::io::Cursor::new([0u8; 18]);
                let _ = write!(line, "{:x}\r\n", data.len());
                let len = line.position() as usize;
                let head = bytes::Buf::chain(&line.get_ref()[..len], &data[..]);
                let mut chunk = bytes::Buf::chain(head, &b"\r\n"[..]);
                wr.write_all_buf(&mut chunk).await
            } else {
                wr.write_all(&data).await
            }
        };
        tokio::select! {
            biased;
            n = rd.read_buf(buf) => {
                if n? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                return Ok(false);
            }
            written = write => written?,
        }
    }
    if chunked {
        wr.write_all(b"0\r\n\r\n").await?;
    }
    Ok(true)
}

/// Methods whose empty body is announced with `Content-Length: 0` (RFC 9110 8.6: a user
/// agent should send it when the method defines a meaning for content).
fn sends_length_zero(method: &Method) -> bool {
    *method == Method::POST || *method == Method::PUT || *method == Method::PATCH
}

/// Appends the request head. Framing headers from the client are replaced by `framing`.
fn encode_head(buf: &mut BytesMut, parts: &Parts, framing: &RequestFraming) {
    buf.extend_from_slice(parts.method.as_str().as_bytes());
    buf.extend_from_slice(b" ");
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    buf.extend_from_slice(if target.is_empty() {
        b"/"
    } else {
        target.as_bytes()
    });
    buf.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        buf.extend_from_slice(name.as_str().as_bytes());
        buf.extend_from_slice(b": ");
        buf.extend_from_slice(value.as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
    match framing {
        RequestFraming::None => {}
        RequestFraming::Length(n) => {
            buf.extend_from_slice(b"content-length: ");
            let mut digits = itoa::Buffer::new();
            buf.extend_from_slice(digits.format(*n).as_bytes());
            buf.extend_from_slice(b"\r\n");
        }
        RequestFraming::Chunked => buf.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    buf.extend_from_slice(b"\r\n");
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    Close,
    Upgrade,
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Reads until a final (or 101) response head is complete; 1xx heads are skipped.
async fn read_head(
    conn: &mut UpstreamConn,
    method: &Method,
    received: &mut bool,
) -> io::Result<ParsedHead> {
    loop {
        if !conn.buf.is_empty() {
            match parse_head(&mut conn.buf, method)? {
                Some(Some(head)) => return Ok(head),
                // An interim 1xx answer: skipped; read on.
                Some(None) => continue,
                None => {}
            }
            if conn.buf.len() >= MAX_RESPONSE_HEAD {
                return Err(invalid("response head too large"));
            }
        }
        conn.buf.reserve(READ_CHUNK);
        if conn.stream.read_buf(&mut conn.buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        *received = true;
    }
}

type ParsedHead = (http::response::Parts, Framing, bool);

/// Parses a complete head at the start of `buf` and takes it out of the buffer: the head,
/// or `None` for an interim (1xx other than 101) head. `Ok(None)` when the head is
/// incomplete.
fn parse_head(buf: &mut BytesMut, method: &Method) -> io::Result<Option<Option<ParsedHead>>> {
    // Left uninitialised: zeroing 256 slots would cost more than parsing a typical head.
    let mut headers =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut headers,
    ) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(invalid("too many response headers")),
        Err(_) => return Err(invalid("malformed response head")),
    };
    if len > MAX_RESPONSE_HEAD {
        return Err(invalid("response head too large"));
    }
    let code = resp.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| invalid("invalid response status"))?;
    if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
        buf.advance(len);
        return Ok(Some(None));
    }
    let version = match resp.version {
        Some(1) => Version::HTTP_11,
        _ => Version::HTTP_10,
    };
    // First pass, over the parsed slices: the framing, and where each field lies (the head
    // is at most 64 KiB, so offsets fit in u16).
    let base = buf.as_ptr() as usize;
    let mut at = [[0u16; 4]; MAX_RESPONSE_HEADERS];
    let count = resp.headers.len();
    let mut length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked_last = false;
    // `close` wins over `keep-alive`, whatever their order.
    let (mut close, mut keep_alive_asked) = (false, false);
    for (h, at) in resp.headers.iter().zip(at.iter_mut()) {
        let name = h.name.as_bytes();
        let (ns, vs) = (
            name.as_ptr() as usize - base,
            h.value.as_ptr() as usize - base,
        );
        *at = [ns, ns + name.len(), vs, vs + h.value.len()].map(|o| o as u16);
        if name.eq_ignore_ascii_case(b"content-length") {
            for part in h.value.split(|&b| b == b',') {
                let n = parse_length(part.trim_ascii())
                    .ok_or_else(|| invalid("invalid Content-Length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(invalid("conflicting Content-Length"));
                }
                length = Some(n);
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encoding = true;
            // The final coding: empty list elements do not count (RFC 9110 5.6.1).
            chunked_last = h
                .value
                .split(|&b| b == b',')
                .map(<[u8]>::trim_ascii)
                .rfind(|c| !c.is_empty())
                .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_asked |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    close |= version == Version::HTTP_10 && !keep_alive_asked;
    // The head leaves the buffer without a copy; names and values are slices of it.
    let block = buf.split_to(len).freeze();
    // Room for the headers sluice adds to an answer (CORS, `Vary`, an affinity cookie,
    // `responseHeaders`) without growing the map.
    let mut map = HeaderMap::with_capacity(count + 4);
    for &[ns, ne, vs, ve] in &at[..count] {
        let name = HeaderName::from_bytes(&block[usize::from(ns)..usize::from(ne)])
            .map_err(|_| invalid("invalid header name"))?;
        let value = HeaderValue::from_maybe_shared(block.slice(usize::from(vs)..usize::from(ve)))
            .map_err(|_| invalid("invalid header value"))?;
        map.append(name, value);
    }
    let framing = if status == StatusCode::SWITCHING_PROTOCOLS {
        Framing::Upgrade
    } else if *method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Framing::Empty
    } else if transfer_encoding {
        if length.is_some() {
            return Err(invalid("Content-Length with Transfer-Encoding"));
        }
        if chunked_last {
            Framing::Chunked
        } else {
            Framing::Close
        }
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    let keep_alive = !close && framing != Framing::Close;
    let mut parts = Response::new(()).into_parts().0;
    parts.status = status;
    parts.version = version;
    parts.headers = map;
    Ok(Some(Some((parts, framing, keep_alive))))
}

/// A `Content-Length` value: 1 to 19 ASCII digits.
pub(crate) fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Where the reader is in the response body.
#[derive(Debug)]
enum State {
    Length(u64),
    Chunked(Chunk),
    Close,
    Done,
    Upgraded,
    Failed,
}

#[derive(Debug, Clone, Copy)]
enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

/// The body of a backend's response, read from the connection as the client takes it.
#[derive(Debug)]
pub struct ResponseBody {
    conn: Option<UpstreamConn>,
    state: State,
    keep_alive: bool,
    trailer_bytes: usize,
}

impl ResponseBody {
    /// The connection, if the response ended cleanly and it may carry another request.
    pub fn take_reusable(&mut self) -> Option<UpstreamConn> {
        if matches!(self.state, State::Done) && self.keep_alive {
            return self.conn.take().filter(|c| c.buf.is_empty());
        }
        None
    }

    /// After a `101 Switching Protocols`: the connection (its buffer may hold the first
    /// bytes of the new protocol).
    pub fn into_upgraded(mut self) -> Option<UpstreamConn> {
        match self.state {
            State::Upgraded => self.conn.take(),
            _ => None,
        }
    }

    fn fail(&mut self, error: io::Error) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        self.state = State::Failed;
        self.conn = None;
        Poll::Ready(Some(Err(error)))
    }
}

/// Reads more bytes into the connection's buffer.
fn poll_fill(conn: &mut UpstreamConn, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
    conn.buf.reserve(READ_CHUNK);
    loop {
        ready!(conn.stream.poll_read_ready(cx))?;
        match conn.stream.try_read_buf(&mut conn.buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => return Poll::Ready(other),
        }
    }
}

/// Takes `n` bytes off the front of `buf` (copied when small, see [`COPY_BELOW`]).
fn take(buf: &mut BytesMut, n: usize) -> Bytes {
    if n <= COPY_BELOW {
        let out = Bytes::copy_from_slice(&buf[..n]);
        buf.advance(n);
        out
    } else {
        buf.split_to(n).freeze()
    }
}

/// One step of chunked decoding over the buffered bytes.
enum Step {
    Data(Bytes),
    NeedMore,
    End,
}

fn chunk_step(
    chunk: &mut Chunk,
    buf: &mut BytesMut,
    trailer_bytes: &mut usize,
) -> io::Result<Step> {
    loop {
        match chunk {
            Chunk::Size => {
                // `eol` counts the line's CR: the limit is on what precedes it, so a line
                // is refused at the same length however it arrives.
                let Some(eol) = buf.iter().position(|&b| b == b'\n') else {
                    if buf.len() > MAX_CHUNK_LINE + 1 {
                        return Err(invalid("chunk size line too long"));
                    }
                    return Ok(Step::NeedMore);
                };
                if eol > MAX_CHUNK_LINE + 1 {
                    return Err(invalid("chunk size line too long"));
                }
                let size = parse_chunk_size(&buf[..eol])?;
                buf.advance(eol + 1);
                *chunk = if size == 0 {
                    Chunk::Trailers
                } else {
                    Chunk::Data(size)
                };
            }
            Chunk::Data(remaining) => {
                if buf.is_empty() {
                    return Ok(Step::NeedMore);
                }
                let n = (*remaining).min(buf.len() as u64) as usize;
                let data = take(buf, n);
                *remaining -= n as u64;
                if *remaining == 0 {
                    *chunk = Chunk::DataEnd;
                }
                return Ok(Step::Data(data));
            }
            Chunk::DataEnd => {
                if buf.len() < 2 {
                    return Ok(Step::NeedMore);
                }
                if &buf[..2] != b"\r\n" {
                    return Err(invalid("chunk not followed by CRLF"));
                }
                buf.advance(2);
                *chunk = Chunk::Size;
            }
            Chunk::Trailers => {
                let Some(eol) = buf.iter().position(|&b| b == b'\n') else {
                    // A lone CR may begin the final empty line, which is not counted.
                    let maybe_end = buf[..] == b"\r"[..];
                    if !maybe_end && *trailer_bytes + buf.len() > MAX_TRAILERS {
                        return Err(invalid("trailers too large"));
                    }
                    return Ok(Step::NeedMore);
                };
                let empty = eol == 1 && buf[0] == b'\r';
                if eol == 0 || buf[eol - 1] != b'\r' {
                    return Err(invalid("bare LF in trailers"));
                }
                *trailer_bytes += eol + 1;
                buf.advance(eol + 1);
                if empty {
                    return Ok(Step::End);
                }
                if *trailer_bytes > MAX_TRAILERS {
                    return Err(invalid("trailers too large"));
                }
            }
        }
    }
}

/// Parses `HEXDIG+ [BWS ; ext] CR` (the LF is already cut off).
fn parse_chunk_size(line: &[u8]) -> io::Result<u64> {
    let Some((b'\r', line)) = line.split_last() else {
        return Err(invalid("chunk size line without CRLF"));
    };
    let digits = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    if digits == 0 || digits > 15 {
        return Err(invalid("invalid chunk size"));
    }
    let rest = &line[digits..];
    let ext = rest.trim_ascii_start();
    if !(rest.is_empty() || ext.first() == Some(&b';')) {
        return Err(invalid("invalid chunk size"));
    }
    if ext.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
        return Err(invalid("invalid chunk extension"));
    }
    let hex = std::str::from_utf8(&line[..digits]).map_err(|_| invalid("invalid chunk size"))?;
    u64::from_str_radix(hex, 16).map_err(|_| invalid("invalid chunk size"))
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match &mut this.state {
                State::Done | State::Upgraded | State::Failed => return Poll::Ready(None),
                State::Length(remaining) => {
                    if !conn.buf.is_empty() {
                        let n = (*remaining).min(conn.buf.len() as u64) as usize;
                        let data = take(&mut conn.buf, n);
                        *remaining -= n as u64;
                        if *remaining == 0 {
                            this.state = State::Done;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                State::Close => {
                    if !conn.buf.is_empty() {
                        let n = conn.buf.len();
                        return Poll::Ready(Some(Ok(Frame::data(take(&mut conn.buf, n)))));
                    }
                }
                State::Chunked(chunk) => {
                    match chunk_step(chunk, &mut conn.buf, &mut this.trailer_bytes) {
                        Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                        Ok(Step::End) => {
                            this.state = State::Done;
                            return Poll::Ready(None);
                        }
                        Ok(Step::NeedMore) => {}
                        Err(e) => return this.fail(e),
                    }
                }
            }
            match ready!(poll_fill(conn, cx)) {
                Ok(0) if matches!(this.state, State::Close) => {
                    this.state = State::Done;
                    this.keep_alive = false;
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => {}
                Err(e) => return this.fail(e),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(
            self.state,
            State::Done | State::Upgraded | State::Failed | State::Length(0)
        )
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) => SizeHint::with_exact(n),
            State::Done | State::Upgraded => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// [`parse_head`]: the fuzz targets' view ([`crate::fuzzing::parse_response_head`]).
pub(crate) fn parse_head_for_fuzzing(buf: &[u8], method: &Method) -> crate::fuzzing::ResponseHead {
    use crate::fuzzing::{BodyFraming, ResponseHead};
    let mut buf = BytesMut::from(buf);
    let before = buf.len();
    match parse_head(&mut buf, method) {
        Ok(None) => ResponseHead::Partial,
        Ok(Some(None)) => ResponseHead::Interim {
            len: before - buf.len(),
        },
        Ok(Some(Some((parts, framing, keep_alive)))) => ResponseHead::Final {
            len: before - buf.len(),
            parts,
            framing: match framing {
                Framing::Empty => BodyFraming::Empty,
                Framing::Length(n) => BodyFraming::Length(n),
                Framing::Chunked => BodyFraming::Chunked,
                Framing::Close => BodyFraming::Close,
                Framing::Upgrade => BodyFraming::Upgrade,
            },
            keep_alive,
        },
        Err(e) => ResponseHead::Refused(e),
    }
}

/// [`chunk_step`] over `reads` as [`ResponseBody::poll_frame`] runs it (each read appended
/// to the buffer when it needs more): the fuzz targets' view
/// ([`crate::fuzzing::decode_chunked`]).
pub(crate) fn decode_chunked_for_fuzzing(
    reads: &mut dyn Iterator<Item = &[u8]>,
) -> crate::fuzzing::Chunked {
    let mut buf = BytesMut::new();
    let mut chunk = Chunk::Size;
    let mut trailer_bytes = 0;
    let mut frames = Vec::new();
    let end = loop {
        match chunk_step(&mut chunk, &mut buf, &mut trailer_bytes) {
            Ok(Step::Data(data)) => frames.push(data.to_vec()),
            Ok(Step::End) => {
                let mut rest = buf.to_vec();
                reads.for_each(|r| rest.extend_from_slice(r));
                break Ok(Some(rest));
            }
            Ok(Step::NeedMore) => match reads.next() {
                Some(read) => buf.extend_from_slice(read),
                None => break Ok(None),
            },
            Err(e) => break Err(e),
        }
    };
    crate::fuzzing::Chunked { frames, end }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(input: &[u8]) -> io::Result<Vec<u8>> {
        let mut buf = BytesMut::from(input);
        let mut chunk = Chunk::Size;
        let mut trailers = 0;
        let mut out = Vec::new();
        loop {
            match chunk_step(&mut chunk, &mut buf, &mut trailers)? {
                Step::Data(d) => out.extend_from_slice(&d),
                Step::End => return Ok(out),
                Step::NeedMore => return Err(io::ErrorKind::UnexpectedEof.into()),
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_with_extensions_and_trailers() {
        assert_eq!(chunked(b"3\r\nabc\r\n0\r\n\r\n").unwrap(), b"abc");
        assert_eq!(
            chunked(b"A;name=v\r\n0123456789\r\n2 ;x\r\nab\r\n0\r\nT: 1\r\n\r\n").unwrap(),
            b"0123456789ab"
        );
    }

    #[test]
    fn malformed_chunks_are_refused() {
        for bad in [
            &b"3\r\nabcX\r\n0\r\n\r\n"[..],
            b"g\r\nabc\r\n0\r\n\r\n",
            b"3\nabc\r\n0\r\n\r\n",
            b"-3\r\nabc\r\n0\r\n\r\n",
            b"1000000000000000\r\n",
            b"3 x\r\nabc\r\n",
            b"0\r\nT: 1\n\r\n",
        ] {
            assert!(
                chunked(bad).is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(bad)
            );
        }
    }

    fn head(raw: &[u8], method: Method) -> io::Result<Option<(Framing, bool)>> {
        let mut buf = BytesMut::from(raw);
        Ok(parse_head(&mut buf, &method)?.and_then(|h| h.map(|(_, f, k)| (f, k))))
    }

    #[test]
    fn chunk_size_line_limit_holds_however_the_line_arrives() {
        // Found by fuzz/fuzz_targets/chunked.rs: a line past the limit was refused when it
        // came in two reads and taken when it came in one.
        let mut long = b"1;".to_vec();
        long.resize(MAX_CHUNK_LINE + 1, b'e');
        long.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
        assert!(chunked(&long).is_err());
        let mut longest = b"1;".to_vec();
        longest.resize(MAX_CHUNK_LINE, b'e');
        longest.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
        assert_eq!(chunked(&longest).unwrap(), b"x");
        for at in [MAX_CHUNK_LINE - 1, MAX_CHUNK_LINE, MAX_CHUNK_LINE + 1] {
            let (first, rest) = longest.split_at(at);
            let split = decode_chunked_for_fuzzing(&mut [first, rest].into_iter());
            assert_eq!(split.frames.concat(), b"x", "split at {at}");
            assert!(matches!(split.end, Ok(Some(_))), "split at {at}");
        }
    }

    #[test]
    fn trailers_at_the_limit_end_the_same_however_the_last_line_arrives() {
        // 16 KiB of trailer field lines exactly, then the empty line, its CR and LF in
        // separate reads: the empty line is not counted against the limit.
        let mut body = b"0\r\n".to_vec();
        let line = format!("t: {}\r\n", "v".repeat(1024 - 5));
        body.extend_from_slice(line.repeat(MAX_TRAILERS / 1024).as_bytes());
        let whole = [&body[..], b"\r\n"].concat();
        assert!(chunked(&whole).is_ok());
        let parts = [&body[..], b"\r", b"\n"];
        let split = decode_chunked_for_fuzzing(&mut parts.into_iter());
        assert!(matches!(split.end, Ok(Some(_))), "{:?}", split.end);
        let over = [&body[..], b"x: 1\r\n\r\n"].concat();
        assert!(chunked(&over).is_err());
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let get = || Method::GET;
        assert_eq!(
            head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", get()).unwrap(),
            Some((Framing::Length(5), true))
        );
        assert_eq!(
            head(b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", get()).unwrap(),
            Some((Framing::Length(5), true))
        );
        assert_eq!(
            head(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                get()
            )
            .unwrap(),
            Some((Framing::Chunked, true))
        );
        assert_eq!(
            head(b"HTTP/1.1 200 OK\r\n\r\n", get()).unwrap(),
            Some((Framing::Close, false))
        );
        assert_eq!(
            head(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
                get()
            )
            .unwrap(),
            Some((Framing::Length(5), false))
        );
        assert_eq!(
            head(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n", get()).unwrap(),
            Some((Framing::Length(5), false))
        );
        assert_eq!(
            head(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                Method::HEAD
            )
            .unwrap(),
            Some((Framing::Empty, true))
        );
        assert_eq!(
            head(
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
                get()
            )
            .unwrap(),
            Some((Framing::Empty, true))
        );
        // Found by fuzz/fuzz_targets/response_head.rs: `close` lost to a later
        // `keep-alive`, and an empty last list element hid `chunked`.
        assert_eq!(
            head(
                b"HTTP/1.0 200 OK\r\nConnection: close, keep-alive\r\nContent-Length: 5\r\n\r\n",
                get()
            )
            .unwrap(),
            Some((Framing::Length(5), false))
        );
        assert_eq!(
            head(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,\r\n\r\n",
                get()
            )
            .unwrap(),
            Some((Framing::Chunked, true))
        );
        assert_eq!(head(b"HTTP/1.1 100 Continue\r\n\r\n", get()).unwrap(), None);
        assert_eq!(head(b"HTTP/1.1 200 OK\r\nContent-Le", get()).unwrap(), None);
    }

    #[test]
    fn ambiguous_response_framing_is_refused() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
        ] {
            assert!(
                head(bad, Method::GET).is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn request_head_replaces_client_framing() {
        let mut req = http::Request::post("/p?q=1").body(()).unwrap();
        req.headers_mut()
            .insert(header::HOST, HeaderValue::from_static("h"));
        req.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("99"));
        let (parts, ()) = req.into_parts();
        let mut buf = BytesMut::new();
        encode_head(&mut buf, &parts, &RequestFraming::Length(3));
        assert_eq!(
            &buf[..],
            b"POST /p?q=1 HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\n\r\n"
        );
    }
}
