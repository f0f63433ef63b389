//! Request-smuggling guard for HTTP/1 client connections.
//!
//! hyper accepts a request carrying both `Content-Length` and `Transfer-Encoding` (chunked
//! wins) and hides the `Content-Length` from the service, so the service cannot refuse it.
//! RFC 9112 6.1 lets a server reject such a message, and nginx does. This wrapper reads the
//! same bytes hyper reads, finds every request head with a strict `httparse` reading,
//! follows body framing (Content-Length or chunked) to the next head, and records the
//! index of the first head a strict reader finds ambiguous. The service compares its own
//! request index with it and answers 400 + close, so nothing ambiguous is forwarded.
//!
//! Ambiguous here: `Transfer-Encoding` with `Content-Length`, in HTTP/1.0, or other than a
//! single `chunked`; differing or non-numeric `Content-Length`s; a request target a reverse
//! proxy does not serve (`CONNECT`, authority-form, a scheme other than http/https) or an
//! absolute-form target whose authority differs from `Host` (the request would be routed
//! by one host and arrive at the backend with another); anything `httparse` refuses.
//!
//! An `Upgrade` request may or may not become a tunnel (only a 101 makes it one), so the
//! guard keeps reading what follows as requests and only switches itself off when those
//! bytes cannot start a request line. It also switches off for HTTP/2 and after the first
//! bad head (the connection is closing).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::server::MAX_HEADER_BYTES;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";
const MAX_HEADERS: usize = 256;

/// Per-connection verdict shared between the guard (reader) and the service.
#[derive(Debug)]
pub struct Verdict {
    first_bad: AtomicU64,
    next_request: AtomicU64,
}

impl Default for Verdict {
    fn default() -> Self {
        Verdict {
            first_bad: AtomicU64::new(u64::MAX),
            next_request: AtomicU64::new(0),
        }
    }
}

impl Verdict {
    /// Called once per request by the service, in order: false when this request (or one
    /// before it) was found ambiguous and must be answered 400 with the connection closed.
    pub fn next_request_ok(&self) -> bool {
        let n = self.next_request.fetch_add(1, Ordering::Relaxed);
        n < self.first_bad.load(Ordering::Acquire)
    }

    fn mark_bad(&self, head: u64) {
        self.first_bad.fetch_min(head, Ordering::AcqRel);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading the hex size; `digits` seen so far.
    Size { size: u64, digits: u8 },
    /// Skipping a chunk extension up to the line end.
    Extension { size: u64 },
    /// Chunk data left.
    Data(u64),
    /// The CRLF after chunk data.
    DataEnd,
    /// Trailer lines; `line` bytes seen on the current one (CR not counted).
    Trailer { line: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Body(u64),
    Chunked(Chunk),
    Off,
}

/// Wraps a client stream; reads pass through unchanged.
#[derive(Debug)]
pub struct Guarded<S> {
    inner: S,
    state: State,
    head: Vec<u8>,
    heads: u64,
    /// The last head asked for an `Upgrade`: what follows may be a tunnel.
    maybe_tunnel: bool,
    verdict: Arc<Verdict>,
}

impl<S> Guarded<S> {
    /// Guards `inner`, reporting to `verdict`.
    pub fn new(inner: S, verdict: Arc<Verdict>) -> Self {
        Guarded {
            inner,
            state: State::Head,
            head: Vec::new(),
            heads: 0,
            maybe_tunnel: false,
            verdict,
        }
    }

    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match self.state {
                State::Off => return,
                State::Head => data = self.feed_head(data),
                State::Body(left) => {
                    let n = (left as usize).min(data.len());
                    data = &data[n..];
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::Head
                    } else {
                        State::Body(left)
                    };
                }
                State::Chunked(chunk) => data = self.feed_chunked(chunk, data),
            }
        }
    }

    fn feed_head<'a>(&mut self, mut data: &'a [u8]) -> &'a [u8] {
        if self.head.is_empty() {
            if self.heads == 0 && data.starts_with(&H2_PREFACE[..data.len().min(H2_PREFACE.len())])
            {
                if data.len() >= H2_PREFACE.len() {
                    self.state = State::Off;
                    return &[];
                }
                self.head.extend_from_slice(data);
                return &[];
            }
            // Empty lines before a request line are ignored (RFC 9112 2.2).
            let skip = data
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            data = &data[skip..];
            if data.is_empty() {
                return data;
            }
            if self.maybe_tunnel && !may_start_request(data) {
                // The upgrade went through: these are tunnel bytes, not requests.
                self.off();
                return &[];
            }
            // Common case: the whole head arrived in one read; judge it in place.
            if let Some(end) = head_end(data) {
                self.state = self.judge(&data[..end]);
                self.heads += 1;
                return &data[end..];
            }
        }
        let searched_from = self.head.len().saturating_sub(3);
        self.head.extend_from_slice(data);
        if self.maybe_tunnel && !may_start_request(&self.head) {
            self.off();
            return &[];
        }
        let Some(end) = head_end(&self.head[searched_from..]).map(|e| e + searched_from) else {
            if self.head.starts_with(H2_PREFACE) {
                self.off();
            } else if self.head.len() > MAX_HEADER_BYTES + 1024 {
                // hyper answers 431 for this itself.
                self.off();
            }
            return &[];
        };
        let consumed_from_data = end - (self.head.len() - data.len());
        let rest = &data[consumed_from_data..];
        let mut head = std::mem::take(&mut self.head);
        self.state = self.judge(&head[..end]);
        if self.state != State::Off {
            // Keep the allocation for the next head.
            head.clear();
            self.head = head;
        }
        self.heads += 1;
        rest
    }

    /// Framing of the body that follows a complete head, or `Off` for a bad head.
    fn judge(&mut self, head: &[u8]) -> State {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return self.bad(),
        }
        let (Some(method), Some(target)) = (req.method, req.path) else {
            return self.bad();
        };
        let Some(authority) = target_authority(method, target) else {
            return self.bad();
        };
        if let Some(authority) = authority {
            // RFC 9112 3.2: Host must then be that same authority.
            let differs = req.headers.iter().any(|h| {
                h.name.eq_ignore_ascii_case("host")
                    && !h.value.trim_ascii().eq_ignore_ascii_case(authority)
            });
            if differs {
                return self.bad();
            }
        }
        let mut content_length: Option<u64> = None;
        let mut transfer_encodings = 0;
        let mut chunked_only = true;
        let mut upgrade = false;
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                let Some(n) = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                else {
                    return self.bad();
                };
                if content_length.is_some_and(|prev| prev != n) {
                    return self.bad();
                }
                content_length = Some(n);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                // Only a single `chunked` is unambiguous: `gzip, chunked` or `chunked`
                // twice are read differently by different servers.
                transfer_encodings += 1;
                chunked_only &= h.value.trim_ascii().eq_ignore_ascii_case(b"chunked");
            } else if h.name.eq_ignore_ascii_case("upgrade") {
                upgrade = true;
            }
        }
        if transfer_encodings > 0
            && (transfer_encodings > 1
                || !chunked_only
                || content_length.is_some()
                || req.version == Some(0))
        {
            return self.bad();
        }
        // Set for the bytes after this request (and its body); cleared by the next head.
        self.maybe_tunnel = upgrade;
        if transfer_encodings > 0 {
            State::Chunked(Chunk::Size { size: 0, digits: 0 })
        } else {
            match content_length {
                Some(n) if n > 0 => State::Body(n),
                _ => State::Head,
            }
        }
    }

    fn bad(&mut self) -> State {
        self.verdict.mark_bad(self.heads);
        self.head = Vec::new();
        State::Off
    }

    /// Stops following the stream for good (and frees the head buffer).
    fn off(&mut self) {
        self.state = State::Off;
        self.head = Vec::new();
    }

    fn feed_chunked<'a>(&mut self, mut chunk: Chunk, mut data: &'a [u8]) -> &'a [u8] {
        while let Some((&b, rest)) = data.split_first() {
            match chunk {
                Chunk::Size { size, digits } => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' if digits < 16 => {
                        let v = (b as char).to_digit(16).unwrap_or(0) as u64;
                        chunk = Chunk::Size {
                            size: size * 16 + v,
                            digits: digits + 1,
                        };
                    }
                    b';' | b' ' | b'\t' | b'\r' if digits > 0 => chunk = Chunk::Extension { size },
                    b'\n' if digits > 0 => chunk = after_size(size),
                    _ => {
                        // hyper rejects this body; stop following the stream.
                        self.state = State::Off;
                        return &[];
                    }
                },
                Chunk::Extension { size } => {
                    if b == b'\n' {
                        chunk = after_size(size);
                    }
                }
                Chunk::Data(left) => {
                    let n = (left as usize).min(data.len());
                    let left = left - n as u64;
                    chunk = if left == 0 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left)
                    };
                    data = &data[n..];
                    continue;
                }
                Chunk::DataEnd => {
                    if b == b'\n' {
                        chunk = Chunk::Size { size: 0, digits: 0 };
                    }
                }
                Chunk::Trailer { line } => match b {
                    b'\n' if line == 0 => {
                        self.state = State::Head;
                        return rest;
                    }
                    b'\n' => chunk = Chunk::Trailer { line: 0 },
                    b'\r' => {}
                    _ => chunk = Chunk::Trailer { line: line + 1 },
                },
            }
            data = rest;
        }
        self.state = State::Chunked(chunk);
        data
    }
}

/// The authority of an absolute-form target (`Some(Some(..))`), `Some(None)` for an
/// origin-form (or `OPTIONS *`) target, and `None` for a target a reverse proxy refuses:
/// `CONNECT`, authority-form, a scheme other than http/https, an empty authority.
fn target_authority<'a>(method: &str, target: &'a str) -> Option<Option<&'a [u8]>> {
    if method == "CONNECT" {
        return None;
    }
    if target.starts_with('/') || (target == "*" && method == "OPTIONS") {
        return Some(None);
    }
    let (scheme, rest) = target.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    (!authority.is_empty()).then_some(Some(authority.as_bytes()))
}

/// False when `bytes` cannot be the start of a request line (a method token and a space):
/// after an `Upgrade`, such bytes belong to a tunnel.
fn may_start_request(bytes: &[u8]) -> bool {
    const MAX_METHOD: usize = 32;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b' ' {
            return i > 0;
        }
        if i >= MAX_METHOD || !is_tchar(b) {
            return false;
        }
    }
    true
}

/// RFC 9110 5.6.2 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn after_size(size: u64) -> Chunk {
    if size == 0 {
        Chunk::Trailer { line: 0 }
    } else {
        Chunk::Data(size)
    }
}

/// Index just past the blank line ending a head (`\n\n` or `\n\r\n`).
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some(i + 2);
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if this.state != State::Off {
            this.feed(&buf.filled()[before..]);
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts(stream: &[&[u8]], requests: usize) -> Vec<bool> {
        let verdict = Arc::new(Verdict::default());
        let mut g = Guarded::new((), verdict.clone());
        for part in stream {
            g.feed(part);
        }
        (0..requests).map(|_| verdict.next_request_ok()).collect()
    }

    #[test]
    fn content_length_with_transfer_encoding_is_bad() {
        let req: &[u8] = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert_eq!(verdicts(&[req], 1), vec![false]);
    }

    #[test]
    fn smuggled_request_behind_a_valid_one_is_caught() {
        let stream: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n";
        assert_eq!(verdicts(&[stream], 2), vec![true, false]);
    }

    #[test]
    fn chunked_bodies_are_followed_to_the_next_head_across_reads() {
        let a: &[u8] =
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhel";
        let b: &[u8] = b"lo\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.1\r\nHo";
        let c: &[u8] = b"st: a\r\nContent-Length: 2\r\n\r\nokGET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(verdicts(&[a, b, c], 4), vec![true, true, false, false]);
    }

    #[test]
    fn transfer_encoding_other_than_chunked_or_in_http10_is_bad() {
        let gzip: &[u8] = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert_eq!(verdicts(&[gzip], 1), vec![false]);
        let old: &[u8] = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert_eq!(verdicts(&[old], 1), vec![false]);
    }

    #[test]
    fn space_before_colon_is_bad() {
        let req: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n";
        assert_eq!(verdicts(&[req], 1), vec![false]);
    }

    #[test]
    fn transfer_encoding_must_be_a_single_chunked() {
        for te in [
            &b"Transfer-Encoding: gzip, chunked\r\n"[..],
            b"Transfer-Encoding: chunked, chunked\r\n",
            b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        ] {
            let req = [&b"POST / HTTP/1.1\r\nHost: a\r\n"[..], te, b"\r\n0\r\n\r\n"].concat();
            assert_eq!(
                verdicts(&[&req], 1),
                vec![false],
                "{}",
                String::from_utf8_lossy(te)
            );
        }
        let fine: &[u8] =
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked \r\n\r\n0\r\n\r\n";
        assert_eq!(verdicts(&[fine], 1), vec![true]);
    }

    #[test]
    fn targets_a_reverse_proxy_does_not_serve_are_bad() {
        for line in [
            &b"CONNECT a:443 HTTP/1.1"[..],
            b"GET a:80 HTTP/1.1",
            b"GET 5http://a/ HTTP/1.1",
            b"GET ftp://a/ HTTP/1.1",
            b"GET http:/// HTTP/1.1",
            b"GET * HTTP/1.1",
        ] {
            let req = [line, b"\r\nHost: a\r\n\r\n"].concat();
            assert_eq!(
                verdicts(&[&req], 1),
                vec![false],
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        let fine: &[u8] =
            b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\nGET HTTP://A/x?y HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(verdicts(&[fine], 2), vec![true, true]);
    }

    #[test]
    fn absolute_form_authority_must_match_host() {
        let req: &[u8] = b"GET http://a/x HTTP/1.1\r\nHost: b\r\n\r\n";
        assert_eq!(verdicts(&[req], 1), vec![false]);
    }

    #[test]
    fn requests_behind_an_upgrade_that_was_not_carried_out_are_still_judged() {
        let stream: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert_eq!(verdicts(&[stream], 2), vec![true, false]);
    }

    #[test]
    fn tunnel_bytes_after_an_upgrade_turn_the_guard_off() {
        let verdict = Arc::new(Verdict::default());
        let mut g = Guarded::new((), verdict.clone());
        g.feed(b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
        g.feed(&[0x81, 0x85, 1, 2, 3, 4, b'\n', b'\n']);
        assert_eq!(g.state, State::Off);
        assert!(g.head.capacity() == 0);
        assert!(verdict.next_request_ok());
    }

    #[test]
    fn h2_preface_turns_the_guard_off() {
        let v = verdicts(
            &[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"\x00\x00\x12garbage"],
            3,
        );
        assert_eq!(v, vec![true, true, true]);
    }
}
