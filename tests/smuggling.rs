//! A corpus of request-smuggling vectors through the real binary: each one is either
//! forwarded exactly as a strict RFC 9112 reader reads it (method, target, Host, body), or
//! refused with the status a strict front proxy gives, the connection closed and nothing
//! of it reaching the backend.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Sluice, free_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the backend saw of one complete request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    method: String,
    target: String,
    host: String,
    body: Vec<u8>,
}

/// Everything a backend received: complete requests, and every byte on any connection.
#[derive(Default)]
struct Record {
    requests: Vec<Seen>,
    bytes: usize,
}

/// A backend that reads requests strictly (Content-Length or chunked, as sluice sends
/// them) and answers each with 200 `ok`.
async fn backend() -> (std::net::SocketAddr, Arc<Mutex<Record>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let record = Arc::new(Mutex::new(Record::default()));
    let shared = record.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_backend(stream, shared.clone()));
        }
    });
    (addr, record)
}

async fn serve_backend(mut stream: TcpStream, record: Arc<Mutex<Record>>) {
    let mut buf = Vec::new();
    loop {
        if let Some((seen, used)) = parse_request(&buf) {
            buf.drain(..used);
            record.lock().unwrap().requests.push(seen);
            let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            if stream.write_all(answer).await.is_err() {
                return;
            }
            continue;
        }
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => {
                record.lock().unwrap().bytes += n;
                buf.extend_from_slice(&chunk[..n]);
            }
            _ => return,
        }
    }
}

/// One complete request at the start of `buf` and the bytes it took.
fn parse_request(buf: &[u8]) -> Option<(Seen, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(head) = req.parse(buf).ok()? else {
        return None;
    };
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
    };
    let rest = &buf[head..];
    let (body, used) = if header("transfer-encoding").is_some() {
        sluice::proxy::http1::chunked::decode(rest).ok()??
    } else {
        let n: usize = header("content-length").map_or(0, |v| v.parse().unwrap());
        (rest.get(..n)?.to_vec(), n)
    };
    let seen = Seen {
        method: req.method?.to_owned(),
        target: req.path?.to_owned(),
        host: header("host").unwrap_or_default(),
        body,
    };
    Some((seen, head + used))
}

/// Sends `request` in one write; returns the status of the first answer (0 for none) and
/// whether the connection was closed after it.
async fn exchange(port: u16, request: &[u8]) -> (u16, bool) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => return (status(&out), true),
            Ok(Ok(n)) => out.extend_from_slice(&chunk[..n]),
            Err(_) => return (status(&out), false),
        }
        if let Some(complete) = response_len(&out)
            && out.len() >= complete
        {
            // One answer is here: the connection is closed if a read now says so at once.
            let after = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut chunk));
            let closed = matches!(after.await, Ok(Ok(0)) | Ok(Err(_)));
            return (status(&out), closed);
        }
    }
}

fn status(out: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(out);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Length of the response at the start of `out` (head + Content-Length body).
fn response_len(out: &[u8]) -> Option<usize> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head) = resp.parse(out).ok()? else {
        return None;
    };
    let length = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())?;
    Some(head + length)
}

/// A vector, and what a strict front proxy does with it.
enum Expect {
    /// Forwarded: the backend sees exactly this request, the client gets its 200.
    Forwarded {
        method: &'static str,
        target: &'static str,
        host: &'static str,
        body: &'static [u8],
    },
    /// Refused with this status and the connection closed; nothing reaches the backend.
    Refused(u16),
}

fn post(target: &'static str, body: &'static [u8]) -> Expect {
    Expect::Forwarded {
        method: "POST",
        target,
        host: "a",
        body,
    }
}

fn get_from(host: &'static str) -> Expect {
    Expect::Forwarded {
        method: "GET",
        target: "/",
        host,
        body: b"",
    }
}

const CHUNKED: &str = "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";

fn chunked(body: &str) -> Vec<u8> {
    format!("{CHUNKED}{body}").into_bytes()
}

fn corpus() -> Vec<(&'static str, Vec<u8>, Expect)> {
    let many = |n: usize| {
        let mut req = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 1..n {
            req.extend_from_slice(format!("X-F{i}: v\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        req
    };
    let cookie = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nCookie: c={}\r\n\r\n",
        "x".repeat(32 * 1024)
    );
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(9 * 1024));
    let line_at_limit = format!(
        "GET /{} HTTP/1.1\r\nHost: a\r\n\r\n",
        "a".repeat(8 * 1024 - 14)
    );
    vec![
        // Valid: forwarded as a strict reader reads them.
        ("plain GET", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(), get_from("a")),
        (
            "host with port",
            b"GET / HTTP/1.1\r\nHost: a:8080\r\n\r\n".to_vec(),
            get_from("a:8080"),
        ),
        (
            "IPv6 literal host",
            b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n".to_vec(),
            get_from("[::1]:80"),
        ),
        (
            "Content-Length body",
            b"POST /l HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            post("/l", b"hello"),
        ),
        (
            "chunked with extensions and trailers",
            chunked("5;a=b\r\nhello\r\n6 ; q=\"x;y \\\"z\"\r\n world\r\n0\r\nX-T: 1\r\n\r\n"),
            post("/c", b"hello world"),
        ),
        (
            "chunked with leading zeros",
            chunked("003\r\nabc\r\n000\r\n\r\n"),
            post("/c", b"abc"),
        ),
        ("32 KiB Cookie", cookie.into_bytes(), get_from("a")),
        ("100 header fields", many(100), get_from("a")),
        (
            "request line of 8 KiB",
            line_at_limit.into_bytes(),
            Expect::Forwarded {
                method: "GET",
                target: "",
                host: "a",
                body: b"",
            },
        ),
        // Host (RFC 9112 3.2).
        ("no Host", b"GET / HTTP/1.1\r\n\r\n".to_vec(), Expect::Refused(400)),
        ("empty Host", b"GET / HTTP/1.1\r\nHost:\r\n\r\n".to_vec(), Expect::Refused(400)),
        (
            "two Hosts",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n".to_vec(),
            Expect::Refused(400),
        ),
        (
            "Host with a space",
            b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n".to_vec(),
            Expect::Refused(400),
        ),
        (
            "Host list",
            b"GET / HTTP/1.1\r\nHost: a,b\r\n\r\n".to_vec(),
            Expect::Refused(400),
        ),
        (
            "Host with userinfo",
            b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n".to_vec(),
            Expect::Refused(400),
        ),
        (
            "Host port too large",
            b"GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n".to_vec(),
            Expect::Refused(400),
        ),
        (
            "Host port not digits",
            b"GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n".to_vec(),
            Expect::Refused(400),
        ),
        (
            "fragment in the target",
            b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            Expect::Refused(400),
        ),
        // Limits.
        ("request line over 8 KiB", long_line.into_bytes(), Expect::Refused(414)),
        ("101 header fields", many(101), Expect::Refused(431)),
        // Framing.
        (
            "Content-Length with Transfer-Encoding",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            Expect::Refused(400),
        ),
        (
            "two different Content-Lengths",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".to_vec(),
            Expect::Refused(400),
        ),
        // Chunked bodies ("funky chunks").
        ("space after chunk size", chunked("3 \r\nabc\r\n0\r\n\r\n"), Expect::Refused(400)),
        ("0x prefix", chunked("0x3\r\nabc\r\n0\r\n\r\n"), Expect::Refused(400)),
        ("negative size", chunked("-3\r\nabc\r\n0\r\n\r\n"), Expect::Refused(400)),
        ("size overflow", chunked("10000000000000003\r\nabc\r\n0\r\n\r\n"), Expect::Refused(400)),
        ("bare LF after size", chunked("3\nabc\r\n0\r\n\r\n"), Expect::Refused(400)),
        ("bare CR after size", chunked("3\rabc\r\n0\r\n\r\n"), Expect::Refused(400)),
        ("bare LF in extension line", chunked("3;a=b\nabc\r\n0\r\n\r\n"), Expect::Refused(400)),
        ("empty extension name", chunked("3;=b\r\nabc\r\n0\r\n\r\n"), Expect::Refused(400)),
        ("unquoted value with a space", chunked("3;a=b c\r\nabc\r\n0\r\n\r\n"), Expect::Refused(400)),
        ("unterminated quoted value", chunked("3;a=\"b\r\nabc\r\n0\r\n\r\n"), Expect::Refused(400)),
        ("data longer than its size", chunked("3\r\nabcd\r\n0\r\n\r\n"), Expect::Refused(400)),
        ("bare LF after data", chunked("3\r\nabc\n0\r\n\r\n"), Expect::Refused(400)),
        ("bare LF ends the body", chunked("3\r\nabc\r\n0\n\n"), Expect::Refused(400)),
        ("obs-fold in trailer", chunked("0\r\nX: a\r\n b\r\n\r\n"), Expect::Refused(400)),
        ("bare LF in trailer", chunked("0\r\nX: a\n\r\n"), Expect::Refused(400)),
        ("control byte in trailer", chunked("0\r\nX: a\x01b\r\n\r\n"), Expect::Refused(400)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vector_is_forwarded_as_a_strict_reader_reads_it_or_refused_whole() {
    let (addr, record) = backend().await;
    let port = free_port();
    let _s = Sluice::start(&common::pool(
        "strict",
        port,
        "RoundRobin",
        &[(addr, 1)],
        "",
    ));
    let mut failures = Vec::new();
    for (name, request, expect) in corpus() {
        let before = {
            let r = record.lock().unwrap();
            (r.requests.len(), r.bytes)
        };
        let (status, closed) = exchange(port, &request).await;
        // Give a forwarded request's bytes time to land before judging the backend.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let r = record.lock().unwrap();
        let new: Vec<Seen> = r.requests[before.0..].to_vec();
        let bytes = r.bytes - before.1;
        drop(r);
        let problem = match expect {
            Expect::Forwarded {
                method,
                target,
                host,
                body,
            } => {
                let target_ok = |t: &str| target.is_empty() || t == target;
                match new.as_slice() {
                    [seen]
                        if status == 200
                            && seen.method == method
                            && target_ok(&seen.target)
                            && seen.host == host
                            && seen.body == body =>
                    {
                        None
                    }
                    _ => Some(format!("status {status}, backend saw {new:?}")),
                }
            }
            Expect::Refused(code) => (status != code || !closed || bytes != 0).then(|| {
                format!("status {status} (want {code}), closed {closed}, backend got {bytes} bytes")
            }),
        };
        if let Some(problem) = problem {
            failures.push(format!("{name}: {problem}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_violation_mid_upload_aborts_the_upload_answers_400_and_spares_the_backend() {
    let (addr, record) = backend().await;
    let port = free_port();
    let s = Sluice::start(&common::pool(
        "upload",
        port,
        "RoundRobin",
        &[(addr, 1)],
        "  outlierDetection: {consecutiveFailures: 1, baseEjectionTime: 60s}\n",
    ));
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream
        .write_all(format!("{CHUNKED}5\r\nhello\r\n").as_bytes())
        .await
        .unwrap();
    // The request is forwarded and streaming before the bad chunk arrives.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while record.lock().unwrap().bytes == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stream.write_all(b"3\nabc\r\n0\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    assert_eq!(status(&out), 400, "{}", String::from_utf8_lossy(&out));
    assert!(
        record.lock().unwrap().requests.is_empty(),
        "the backend must never see the upload complete"
    );
    // The client's broken body did not count against the backend.
    let (status, _) = exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(status, 200);
    // Nor is the 400 counted as the backend's answer: it is sluice's own.
    let metrics = s.admin_get("/metrics");
    let own = "sluice_requests_total{pool=\"default/upload\",backend=\"\",code=\"400\"} 1";
    assert!(metrics.contains(own), "{metrics}");
    let backend_400 = metrics
        .lines()
        .filter(|l| l.starts_with("sluice_requests_total{pool=\"default/upload\""))
        .any(|l| l.contains("code=\"400\"") && !l.contains("backend=\"\""));
    assert!(!backend_400, "{metrics}");
}
