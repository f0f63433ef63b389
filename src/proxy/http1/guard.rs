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
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use http::StatusCode;

use crate::proxy::http1::chunked::{ChunkedReader, Progress, is_tchar};
use crate::proxy::http1::strict;
use crate::proxy::server::MAX_HEADER_BYTES;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";
/// Header slots for a strict reading: more than the limit, so a head over it is told
/// apart (431) from one `httparse` refuses (400).
const MAX_HEADERS: usize = 256;

/// Per-connection verdict shared between the guard (reader) and the service.
#[derive(Debug)]
pub struct Verdict {
    first_bad: AtomicU64,
    /// The status that refuses the first bad head (400, 414 or 431).
    status: AtomicU16,
    next_request: AtomicU64,
    /// A request body broke its chunked framing: the guard failed the read there.
    body_bad: AtomicBool,
}

impl Default for Verdict {
    fn default() -> Self {
        Verdict {
            first_bad: AtomicU64::new(u64::MAX),
            status: AtomicU16::new(400),
            next_request: AtomicU64::new(0),
            body_bad: AtomicBool::new(false),
        }
    }
}

impl Verdict {
    /// Called once per request by the service, in order: `Err(status)` when this request
    /// (or one before it) was refused by a strict reading and must be answered with that
    /// status and the connection closed.
    pub fn next_request(&self) -> Result<(), StatusCode> {
        let n = self.next_request.fetch_add(1, Ordering::Relaxed);
        if n < self.first_bad.load(Ordering::Acquire) {
            return Ok(());
        }
        let status = self.status.load(Ordering::Relaxed);
        Err(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
    }

    /// Whether a request body on this connection broke its framing (its read failed).
    pub fn body_bad(&self) -> bool {
        self.body_bad.load(Ordering::Acquire)
    }

    fn mark_bad(&self, head: u64, status: StatusCode) {
        // Heads are judged in order: the first bad one is marked first, and only once.
        if self.first_bad.load(Ordering::Relaxed) == u64::MAX {
            self.status.store(status.as_u16(), Ordering::Relaxed);
        }
        self.first_bad.fetch_min(head, Ordering::AcqRel);
    }
}

#[derive(Debug, Clone)]
enum State {
    Head,
    Body(u64),
    Chunked(Box<ChunkedReader>),
    /// A chunked body broke its framing: reads fail from here on.
    Poisoned,
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

    /// Follows `data`; returns the offset of the first byte of a chunked body that broke
    /// its framing, if any (nothing from there on may reach hyper).
    fn feed(&mut self, whole: &[u8]) -> Option<usize> {
        let mut data = whole;
        while !data.is_empty() {
            match &mut self.state {
                State::Off | State::Poisoned => return None,
                State::Head => data = self.feed_head(data),
                State::Body(left) => {
                    let left = *left;
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                    data = &data[n..];
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::Head
                    } else {
                        State::Body(left)
                    };
                }
                State::Chunked(reader) => match reader.feed(data, |_| {}) {
                    Ok(Progress::More) => data = &[],
                    Ok(Progress::Done(n)) => {
                        self.state = State::Head;
                        data = &data[n..];
                    }
                    Err(e) => {
                        self.state = State::Poisoned;
                        self.head = Vec::new();
                        self.verdict.body_bad.store(true, Ordering::Release);
                        // If the service has not seen this request yet (the violation came
                        // with its head), it refuses it before forwarding anything.
                        self.verdict
                            .mark_bad(self.heads.saturating_sub(1), StatusCode::BAD_REQUEST);
                        return Some(whole.len() - data.len() + e.at);
                    }
                },
            }
        }
        None
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
        if !matches!(self.state, State::Off) {
            // Keep the allocation for the next head.
            head.clear();
            self.head = head;
        }
        self.heads += 1;
        rest
    }

    /// Framing of the body that follows a complete head, or `Off` for a bad head.
    fn judge(&mut self, head: &[u8]) -> State {
        if strict::request_line_len(head) > strict::MAX_REQUEST_LINE {
            return self.bad_with(StatusCode::URI_TOO_LONG);
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            Err(httparse::Error::TooManyHeaders) => {
                return self.bad_with(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
            }
            _ => return self.bad(),
        }
        if req.headers.len() > strict::MAX_HEADER_FIELDS {
            return self.bad_with(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        }
        let (Some(method), Some(target)) = (req.method, req.path) else {
            return self.bad();
        };
        let Some(authority) = target_authority(method, target) else {
            return self.bad();
        };
        if !strict::valid_target(target.as_bytes()) {
            return self.bad();
        }
        let hosts = req
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("host"))
            .map(|h| h.value);
        if !strict::host_allowed(req.version == Some(1), authority.is_none(), hosts) {
            return self.bad();
        }
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
            State::Chunked(Box::default())
        } else {
            match content_length {
                Some(n) if n > 0 => State::Body(n),
                _ => State::Head,
            }
        }
    }

    fn bad(&mut self) -> State {
        self.bad_with(StatusCode::BAD_REQUEST)
    }

    fn bad_with(&mut self, status: StatusCode) -> State {
        self.verdict.mark_bad(self.heads, status);
        self.head = Vec::new();
        State::Off
    }

    /// Stops following the stream for good (and frees the head buffer).
    fn off(&mut self) {
        self.state = State::Off;
        self.head = Vec::new();
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

/// The read error hyper sees where a chunked body broke its framing.
fn broken_body() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "invalid chunked framing")
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
        if matches!(this.state, State::Poisoned) {
            return Poll::Ready(Err(broken_body()));
        }
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if !matches!(this.state, State::Off)
            && let Some(at) = this.feed(&buf.filled()[before..])
        {
            // hyper gets the bytes up to the violation now, and an error on its next read:
            // the request is dispatched (so it can be answered 400) but never completed.
            if at == 0 {
                return Poll::Ready(Err(broken_body()));
            }
            buf.set_filled(before + at);
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
        (0..requests)
            .map(|_| verdict.next_request().is_ok())
            .collect()
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
        assert!(matches!(g.state, State::Off));
        assert!(g.head.capacity() == 0);
        assert!(verdict.next_request().is_ok());
    }

    #[test]
    fn host_must_be_one_valid_authority_and_not_empty_for_origin_form() {
        for host in [
            &b""[..],
            b"Host: a b\r\n",
            b"Host: a,b\r\n",
            b"Host: u@a\r\n",
            b"Host: a:99999\r\n",
            b"Host: a:8o\r\n",
            b"Host:\r\n",
            b"Host: a\r\nHost: a\r\n",
        ] {
            let req = [&b"GET / HTTP/1.1\r\n"[..], host, b"\r\n"].concat();
            assert_eq!(
                verdicts(&[&req], 1),
                vec![false],
                "{}",
                String::from_utf8_lossy(host)
            );
        }
        let fine: &[u8] = b"GET / HTTP/1.0\r\n\r\nGET http://a/ HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n";
        assert_eq!(verdicts(&[fine], 3), vec![true, true, true]);
    }

    #[test]
    fn long_request_lines_get_414_and_many_fields_431() {
        let verdict = |head: Vec<u8>| {
            let v = Arc::new(Verdict::default());
            Guarded::new((), v.clone()).feed(&head);
            v.next_request()
        };
        let target = "a".repeat(strict::MAX_REQUEST_LINE);
        let long = format!("GET /{target} HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(verdict(long.into_bytes()), Err(StatusCode::URI_TOO_LONG));
        for (fields, expected) in [
            (99, Ok(())),
            (100, Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)),
            (300, Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)),
        ] {
            let mut head = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
            for i in 0..fields {
                head.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
            }
            head.extend_from_slice(b"\r\n");
            assert_eq!(verdict(head), expected, "{} fields", fields + 1);
        }
    }

    #[test]
    fn a_chunked_violation_stops_the_bytes_at_the_offending_one() {
        let verdict = Arc::new(Verdict::default());
        let mut g = Guarded::new((), verdict.clone());
        let head: &[u8] = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        let stream = [head, b"3\r\nabc\r\n3\nxyz"].concat();
        assert_eq!(g.feed(&stream), Some(head.len() + 9));
        assert!(verdict.body_bad());
        assert!(matches!(g.state, State::Poisoned));
        assert_eq!(g.feed(b"GET / HTTP/1.1\r\n"), None);
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
