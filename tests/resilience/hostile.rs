//! Hostile input: a corpus of malformed and smuggling requests, h2c and absolute-form
//! targets, and a generator of mutated request streams checked against a strict reading.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::common::*;
use super::eps;

// ---------------------------------------------------------------------------------------
// Hostile input
// ---------------------------------------------------------------------------------------

/// Malformed or ambiguous requests, each for path `/bad`; none may reach a backend.
fn hostile_corpus() -> Vec<(&'static str, Vec<u8>)> {
    let mut big = b"GET /bad HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 70 * 1024));
    big.extend_from_slice(b"\r\n\r\n");
    let cases: Vec<(&'static str, &[u8])> = vec![
        ("CL then TE", b"POST /bad HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("TE then CL", b"POST /bad HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"),
        ("differing duplicate CL", b"POST /bad HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde"),
        ("CL list of differing values", b"POST /bad HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 5\r\n\r\nabcde"),
        ("CL with a sign", b"POST /bad HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc"),
        ("CL in hex", b"POST /bad HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\nabc"),
        ("negative CL", b"POST /bad HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"),
        ("TE gzip", b"POST /bad HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"),
        ("TE identity", b"POST /bad HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n"),
        ("TE chunked, gzip", b"POST /bad HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"),
        ("TE gzip, chunked", b"POST /bad HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
        ("TE chunked twice in one header", b"POST /bad HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"),
        ("TE header twice", b"POST /bad HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("TE xchunked", b"POST /bad HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
        ("TE in HTTP/1.0", b"POST /bad HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("space before colon (CL)", b"POST /bad HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\nabc"),
        ("space before colon (TE)", b"POST /bad HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
        ("tab before colon", b"GET /bad HTTP/1.1\r\nHost\t: a\r\n\r\n"),
        ("missing Host", b"GET /bad HTTP/1.1\r\nX-A: 1\r\n\r\n"),
        ("duplicate Host", b"GET /bad HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        ("obs-fold", b"GET /bad HTTP/1.1\r\nHost: a\r\nX-Fold: a\r\n b\r\n\r\n"),
        ("bare CR in a value", b"GET /bad HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n"),
        ("NUL in a value", b"GET /bad HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n"),
        ("space in a header name", b"GET /bad HTTP/1.1\r\nHost: a\r\nX A: 1\r\n\r\n"),
        ("empty header name", b"GET /bad HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n"),
        ("HTTP/1.2", b"GET /bad HTTP/1.2\r\nHost: a\r\n\r\n"),
        ("HTTP/2.0 request line", b"GET /bad HTTP/2.0\r\nHost: a\r\n\r\n"),
        ("lower-case version", b"GET /bad http/1.1\r\nHost: a\r\n\r\n"),
        ("double space in request line", b"GET  /bad HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("bad method character", b"G(T /bad HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("authority-form target on GET", b"GET bad.example:80 HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("CONNECT", b"CONNECT bad.example:443 HTTP/1.1\r\nHost: bad.example:443\r\n\r\n"),
    ];
    let mut out: Vec<(&'static str, Vec<u8>)> =
        cases.into_iter().map(|(n, b)| (n, b.to_vec())).collect();
    out.push(("header block over 64 KiB", big));
    out
}

/// Status codes of every response in a raw HTTP/1 byte stream, in order.
fn statuses(raw: &str) -> Vec<u16> {
    raw.match_indices("HTTP/1.1 ")
        .filter(|(i, _)| *i == 0 || raw[..*i].ends_with('\n'))
        .filter_map(|(i, _)| raw.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

#[tokio::test]
async fn malformed_and_smuggling_requests_are_refused_closed_and_never_forwarded() {
    let backend = echo("rec");
    backend.record();
    let port = free_port();
    let _s = Sluice::start(&pool("guard", port, "RoundRobin", &eps(&[&backend]), ""));
    let refused = [400, 431, 501, 505];
    let valid = b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n";
    let after = b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut problems = Vec::new();
    let mut pipelined_ok = 0;
    for (name, bad) in hostile_corpus() {
        let (out, closed) = raw_exchange(port, &bad, Duration::from_secs(3)).await;
        let codes = statuses(&out);
        if codes.len() != 1 || !refused.contains(&codes[0]) || !closed {
            problems.push(format!("{name} alone: answers {codes:?}, closed {closed}"));
        }
        let stream = [&valid[..], &bad, &after[..]].concat();
        let (out, closed) = raw_exchange(port, &stream, Duration::from_secs(3)).await;
        let codes = statuses(&out);
        if codes.len() != 2 || codes[0] != 200 || !refused.contains(&codes[1]) || !closed {
            problems.push(format!(
                "{name} pipelined: answers {codes:?}, closed {closed}"
            ));
        }
        if codes.first() == Some(&200) {
            pipelined_ok += 1;
        }
        let leaked: Vec<String> = backend
            .seen()
            .into_iter()
            .map(|r| format!("{} {}", r.method, r.target))
            .filter(|t| !t.ends_with(" /ok"))
            .collect();
        if !leaked.is_empty() {
            problems.push(format!("{name}: backend received {leaked:?}"));
        }
        backend.clear_seen();
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(pipelined_ok > 0);
    // Still serving.
    let r = try_get(port, "/still-serving").await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn h2c_upgrade_is_forwarded_as_a_plain_request_and_what_follows_is_still_guarded() {
    let backend = echo("rec");
    backend.record();
    let port = free_port();
    let _s = Sluice::start(&pool("h2c", port, "RoundRobin", &eps(&[&backend]), ""));
    let h2c = b"GET /h2c HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n";
    let after = b"GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let (out, closed) =
        raw_exchange(port, &[&h2c[..], after].concat(), Duration::from_secs(3)).await;
    assert_eq!(statuses(&out), vec![200, 200], "{out}");
    assert!(closed);
    let seen = backend.seen();
    let targets: Vec<&str> = seen.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(targets, ["/h2c", "/after"]);
    for name in ["upgrade", "http2-settings"] {
        assert!(
            seen[0].headers.iter().all(|(k, _)| k != name),
            "{name} forwarded: {:?}",
            seen[0].headers
        );
    }
    backend.clear_seen();

    // An Upgrade that is not carried out leaves the connection HTTP/1: a smuggled request
    // behind it must still be caught.
    let smuggled = b"POST /bad HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    let not_upgraded: [&[u8]; 2] = [
        h2c,
        b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
    ];
    for first in not_upgraded {
        let stream = [first, &smuggled[..], &after[..]].concat();
        let (out, closed) = raw_exchange(port, &stream, Duration::from_secs(3)).await;
        let codes = statuses(&out);
        let targets: Vec<String> = backend.seen().into_iter().map(|r| r.target).collect();
        assert_eq!(codes, vec![200, 400], "{out}");
        assert!(closed);
        assert_eq!(targets.len(), 1, "backend received {targets:?}");
        backend.clear_seen();
    }
}

#[tokio::test]
async fn absolute_form_target_reaches_the_backend_with_the_host_it_was_routed_by() {
    let (shop, other) = (echo("shop"), echo("other"));
    shop.record();
    other.record();
    let port = free_port();
    let yaml = [
        pool("shop", port, "RoundRobin", &eps(&[&shop]), "")
            .replace("port: ", "hosts: [shop.test], port: "),
        pool("other", port, "RoundRobin", &eps(&[&other]), "")
            .replace("port: ", "hosts: [other.test], port: "),
    ]
    .concat();
    let _s = Sluice::start(&yaml);
    let req = b"GET http://shop.test/x HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n";
    let (out, _) = raw_exchange(port, req, Duration::from_secs(3)).await;
    let codes = statuses(&out);
    // Either refused (Host differs from the target's authority, RFC 9112 3.2), or routed
    // by the target and forwarded with that same host: never routed by one host and
    // presented to the backend with another.
    if codes != [400] {
        assert_eq!(codes, [200], "{out}");
        let seen = shop.seen();
        assert_eq!(
            seen.len(),
            1,
            "routed to shop: {seen:?} / {:?}",
            other.seen()
        );
        let host = seen[0]
            .headers
            .iter()
            .find(|(k, _)| k == "host")
            .map(|(_, v)| v.as_str());
        assert_eq!(
            host,
            Some("shop.test"),
            "routed by shop.test, forwarded as {host:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Fuzzing request heads against a strict reading
// ---------------------------------------------------------------------------------------

/// Turns a request target into what a backend receives: origin-form stays, absolute-form
/// becomes its path and query; anything else a strict reader refuses (`None`).
fn strict_target(method: &str, target: &str) -> Option<(String, Option<String>)> {
    if target.starts_with('/') {
        return Some((target.to_owned(), None));
    }
    if target == "*" && method == "OPTIONS" {
        return Some((target.to_owned(), None));
    }
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return None;
    }
    let path = match path {
        "" => "/".to_owned(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_owned(),
    };
    Some((path, Some(authority.to_owned())))
}

/// Skips one strictly framed chunked body; `None` when it is malformed or incomplete.
fn strict_chunked(mut bytes: &[u8]) -> Option<&[u8]> {
    loop {
        let line_end = bytes.windows(2).position(|w| w == b"\r\n")?;
        let line = &bytes[..line_end];
        let size_part = line.split(|&b| b == b';').next()?;
        if size_part.is_empty()
            || size_part.len() > 15
            || !size_part.iter().all(u8::is_ascii_hexdigit)
        {
            return None;
        }
        let size = usize::from_str_radix(std::str::from_utf8(size_part).ok()?, 16).ok()?;
        if line[size_part.len()..]
            .iter()
            .any(|&b| b == b'\r' || b == b'\n')
        {
            return None;
        }
        bytes = &bytes[line_end + 2..];
        if size == 0 {
            // Trailer section: lines up to an empty one.
            loop {
                let end = bytes.windows(2).position(|w| w == b"\r\n")?;
                let empty = end == 0;
                if bytes[..end].contains(&b'\n') {
                    return None;
                }
                bytes = &bytes[end + 2..];
                if empty {
                    return Some(bytes);
                }
            }
        }
        if bytes.len() < size + 2 || &bytes[size..size + 2] != b"\r\n" {
            return None;
        }
        bytes = &bytes[size + 2..];
    }
}

/// A request as a backend sees it: method, target, Host.
type Reading = (String, String, String);

/// What a strict HTTP/1.1 reader (httparse plus RFC 9112's framing and Host rules) makes
/// of a byte stream: the requests it would pass on, in order, stopping at the first one it
/// would refuse or cannot frame.
fn strict_reading(mut bytes: &[u8]) -> Vec<Reading> {
    let mut out = Vec::new();
    loop {
        while let [b'\r' | b'\n', rest @ ..] = bytes {
            bytes = rest;
        }
        if bytes.is_empty() {
            return out;
        }
        let mut headers = [httparse::EMPTY_HEADER; 100];
        let mut req = httparse::Request::new(&mut headers);
        let Ok(httparse::Status::Complete(len)) = req.parse(bytes) else {
            return out;
        };
        let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version)
        else {
            return out;
        };
        if method == "CONNECT" {
            return out;
        }
        let Some((target, authority)) = strict_target(method, target) else {
            return out;
        };
        let (mut hosts, mut length, mut te, mut te_chunked) = (Vec::new(), None, 0, true);
        let (mut close, mut upgrade, mut conn_upgrade) = (version == 0, None, false);
        for h in req.headers.iter() {
            let value = String::from_utf8_lossy(h.value).into_owned();
            match h.name.to_ascii_lowercase().as_str() {
                "host" => hosts.push(value),
                "content-length" => {
                    let v = value.trim();
                    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                        return out;
                    }
                    let Ok(n) = v.parse::<usize>() else {
                        return out;
                    };
                    if length.is_some_and(|l| l != n) {
                        return out;
                    }
                    length = Some(n);
                }
                "transfer-encoding" => {
                    te += 1;
                    te_chunked &= value.trim().eq_ignore_ascii_case("chunked");
                }
                "connection" => {
                    for token in value.split(',').map(str::trim) {
                        if token.eq_ignore_ascii_case("close") {
                            close = true;
                        } else if token.eq_ignore_ascii_case("keep-alive") && version == 0 {
                            close = false;
                        } else if token.eq_ignore_ascii_case("upgrade") {
                            conn_upgrade = true;
                        }
                    }
                }
                "upgrade" => upgrade = Some(value),
                _ => {}
            }
        }
        if hosts.len() > 1 || (version == 1 && hosts.is_empty()) {
            return out;
        }
        if te > 0 && (te > 1 || !te_chunked || length.is_some() || version == 0) {
            return out;
        }
        let host = match (authority, hosts.first()) {
            (Some(a), Some(h)) if !a.eq_ignore_ascii_case(h) => return out,
            (Some(a), _) => a,
            (None, Some(h)) => h.clone(),
            (None, None) => String::new(),
        };
        out.push((method.to_owned(), target, host));
        bytes = &bytes[len..];
        let tunnel = conn_upgrade && upgrade.is_some_and(|u| !u.trim().eq_ignore_ascii_case("h2c"));
        if close || tunnel {
            return out;
        }
        if te > 0 {
            match strict_chunked(bytes) {
                Some(rest) => bytes = rest,
                None => return out,
            }
        } else if let Some(n) = length {
            if bytes.len() < n {
                return out;
            }
            bytes = &bytes[n..];
        }
    }
}

#[test]
fn strict_reading_oracle_reads_what_it_should() {
    let two = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;x\r\nabc\r\n0\r\n\r\nGET http://h/c?q HTTP/1.1\r\nHost: h\r\n\r\n";
    let read: Vec<String> = strict_reading(two)
        .into_iter()
        .map(|(m, t, h)| format!("{m} {t} {h}"))
        .collect();
    assert_eq!(read, ["GET /a h", "POST /b h", "GET /c?q h"]);
    let smuggle = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(strict_reading(smuggle).len(), 1);
    assert!(strict_reading(b"GET /a HTTP/1.1\r\n\r\n").is_empty());
    assert!(strict_reading(b"GET http://x/ HTTP/1.1\r\nHost: y\r\n\r\n").is_empty());
}

/// One edit of a request stream.
#[derive(Debug, Clone)]
enum Mutation {
    /// Insert a byte at a position.
    Insert(proptest::sample::Index, u8),
    /// Replace the byte at a position.
    Replace(proptest::sample::Index, u8),
    /// Delete the byte at a position.
    Delete(proptest::sample::Index),
    /// Insert a whole header line after the line at a position.
    Line(proptest::sample::Index, &'static str),
    /// Duplicate the line at a position.
    Duplicate(proptest::sample::Index),
}

/// Request streams to mutate.
const BASES: [&str; 4] = [
    "GET /a?x=1 HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    "POST /b HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\n\r\nabcGET /b2 HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    "POST /c HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /c2 HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    "GET /d HTTP/1.1\r\nHost: app.test\r\n\r\nGET http://app.test/e HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
];

const BYTES: [u8; 16] = [
    b' ', b'\t', b'\r', b'\n', b':', b',', b';', 0, b'0', b'5', b'a', b'/', b'?', 0x7f, 0xff,
    b'\x0b',
];

const LINES: [&str; 12] = [
    "Content-Length: 5\r\n",
    "Content-Length: 0\r\n",
    "Transfer-Encoding: chunked\r\n",
    "Transfer-Encoding: gzip, chunked\r\n",
    "Transfer-Encoding : chunked\r\n",
    "Host: other.test\r\n",
    " folded\r\n",
    "Connection: close\r\n",
    "Connection: keep-alive\r\n",
    "Upgrade: h2c\r\n",
    "Expect: 100-continue\r\n",
    "\r\n",
];

fn mutation() -> impl proptest::strategy::Strategy<Value = Mutation> {
    use proptest::prelude::*;
    let byte = proptest::sample::select(&BYTES[..]);
    prop_oneof![
        (any::<proptest::sample::Index>(), byte.clone()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<proptest::sample::Index>(), byte).prop_map(|(i, b)| Mutation::Replace(i, b)),
        any::<proptest::sample::Index>().prop_map(Mutation::Delete),
        (
            any::<proptest::sample::Index>(),
            proptest::sample::select(&LINES[..])
        )
            .prop_map(|(i, l)| Mutation::Line(i, l)),
        any::<proptest::sample::Index>().prop_map(Mutation::Duplicate),
    ]
}

fn apply(base: &str, mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = base.as_bytes().to_vec();
    let line_starts = |b: &[u8]| -> Vec<usize> {
        std::iter::once(0)
            .chain(
                b.iter()
                    .enumerate()
                    .filter(|(_, c)| **c == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .filter(|&i| i < b.len())
            .collect()
    };
    for m in mutations {
        if bytes.is_empty() {
            break;
        }
        match m {
            Mutation::Insert(i, b) => {
                let at = i.index(bytes.len() + 1);
                bytes.insert(at, *b);
            }
            Mutation::Replace(i, b) => {
                let at = i.index(bytes.len());
                bytes[at] = *b;
            }
            Mutation::Delete(i) => {
                let at = i.index(bytes.len());
                bytes.remove(at);
            }
            Mutation::Line(i, line) => {
                let starts = line_starts(&bytes);
                // After the request line at least.
                let at = starts[1.min(starts.len() - 1)..]
                    .get(i.index(starts.len().max(2) - 1))
                    .copied()
                    .unwrap_or(bytes.len());
                bytes.splice(at..at, line.bytes());
            }
            Mutation::Duplicate(i) => {
                let starts = line_starts(&bytes);
                let k = i.index(starts.len());
                let end = starts.get(k + 1).copied().unwrap_or(bytes.len());
                let line = bytes[starts[k]..end].to_vec();
                bytes.splice(end..end, line);
            }
        }
    }
    bytes
}

/// Sends `bytes` on a new connection from `source` (a loopback address) and reads until
/// the peer closes or stays silent for `quiet` (a keep-alive connection waiting for more).
async fn send_and_settle(port: u16, source: std::net::IpAddr, bytes: &[u8], quiet: Duration) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let mut stream = socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    let _ = stream.write_all(bytes).await;
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        match tokio::time::timeout(quiet, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(_)) => {}
        }
    }
}

#[test]
fn mutated_request_heads_reach_the_backend_only_as_a_strict_parser_reads_them() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    let backend = echo("rec");
    backend.record();
    let port = free_port();
    let _s = Sluice::start(&pool("fuzz", port, "RoundRobin", &eps(&[&backend]), ""));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // SLUICE_FUZZ_CASES raises the count for a longer hunt.
    let cases = std::env::var("SLUICE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        proptest::sample::select(&BASES[..]),
        proptest::collection::vec(mutation(), 1..4),
    );
    let forwarded = std::cell::Cell::new(0usize);
    let next_id = std::cell::Cell::new(0u32);
    // Per case: the bytes sent, the strict reading, what the backend received so far.
    // A request may reach the backend after its case ended (a body still being read when
    // the client left), so requests are matched with their case by the client address
    // (each case connects from its own 127.x.y.z), which sluice appends to
    // X-Forwarded-For and no mutation can change.
    type Case = (Vec<u8>, Vec<Reading>, Vec<Reading>);
    let cases_seen = std::cell::RefCell::new(std::collections::HashMap::<String, Case>::new());
    let result = runner.run(&strategy, |(base, mutations)| {
        let n = next_id.get();
        next_id.set(n + 1);
        let [_, b, c, d] = (n + 1 + (1 << 16)).to_be_bytes();
        let source = std::net::Ipv4Addr::new(127, b, c, d);
        let id = source.to_string();
        let bytes = apply(base, &mutations);
        let strict = strict_reading(&bytes);
        cases_seen
            .borrow_mut()
            .insert(id.clone(), (bytes.clone(), strict, Vec::new()));
        rt.block_on(send_and_settle(
            port,
            source.into(),
            &bytes,
            Duration::from_millis(150),
        ));
        let mut touched = BTreeSet::from([id.clone()]);
        let mut cases = cases_seen.borrow_mut();
        for r in backend.take_seen() {
            let header = |name: &str| {
                r.headers
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            };
            let owner = header("x-forwarded-for")
                .and_then(|v| Some(v.rsplit(',').next()?.trim().to_owned()))
                .unwrap_or_default();
            let Some(case) = cases.get_mut(&owner) else {
                return Err(TestCaseError::fail(format!("unknown client: {r:?}")));
            };
            let host = header("host").unwrap_or_default();
            case.2.push((r.method.clone(), r.target.clone(), host));
            touched.insert(owner);
            forwarded.set(forwarded.get() + 1);
        }
        for owner in touched {
            let (bytes, strict, received) = &cases[&owner];
            let agrees =
                received.len() <= strict.len() && received.iter().zip(strict).all(|(r, s)| r == s);
            prop_assert!(
                agrees,
                "bytes {:?}\nbackend received {received:?}\nstrict reading   {strict:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        Ok::<(), TestCaseError>(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!(
        "fuzz: {} requests reached the backend over {cases} cases",
        forwarded.get()
    );
    assert!(
        forwarded.get() > 0,
        "nothing ever reached the backend: the generator is broken"
    );
}
