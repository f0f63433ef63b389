//! The upstream side of the HTTP proxy against scripted raw backends: how each kind of
//! response framing reaches the client, which upstream connections are reused, and what a
//! malformed or vanishing backend turns into.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a scripted backend does with one request.
struct Answer {
    bytes: Vec<u8>,
    /// Close the connection right after the answer (without saying so in a header).
    close: bool,
}

fn answer(bytes: &[u8]) -> Answer {
    Answer {
        bytes: bytes.to_vec(),
        close: false,
    }
}

/// A raw HTTP/1.1 backend on loopback. Every request (head + `Content-Length` or chunked
/// body) is answered with `script(method, path, body)`. Counts accepted connections.
async fn backend(
    script: fn(&str, &str, &[u8]) -> Answer,
) -> (SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let counter = conns.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(stream, script));
        }
    });
    (addr, conns, task)
}

async fn serve(mut stream: TcpStream, script: fn(&str, &str, &[u8]) -> Answer) {
    let mut buf = Vec::new();
    loop {
        let Some((method, path, body)) = read_request(&mut stream, &mut buf).await else {
            return;
        };
        let a = script(&method, &path, &body);
        if stream.write_all(&a.bytes).await.is_err() || a.close {
            return;
        }
    }
}

/// Reads one request; `None` when the peer closed or sent garbage.
async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Option<(String, String, Vec<u8>)> {
    let (head_len, method, path, length, chunked) = loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(n)) = req.parse(buf) {
            let length = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map(|h| {
                    std::str::from_utf8(h.value)
                        .unwrap()
                        .parse::<usize>()
                        .unwrap()
                });
            let chunked = req
                .headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
            break (
                n,
                req.method.unwrap().to_owned(),
                req.path.unwrap().to_owned(),
                length,
                chunked,
            );
        }
        fill(stream, buf).await?;
    };
    buf.drain(..head_len);
    let mut body = Vec::new();
    if chunked {
        loop {
            let eol = loop {
                if let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                    break p;
                }
                fill(stream, buf).await?;
            };
            let line = std::str::from_utf8(&buf[..eol]).ok()?.to_owned();
            let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
            buf.drain(..eol + 2);
            while buf.len() < size + 2 {
                fill(stream, buf).await?;
            }
            body.extend_from_slice(&buf[..size]);
            buf.drain(..size + 2);
            if size == 0 {
                break;
            }
        }
    } else if let Some(n) = length {
        while buf.len() < n {
            fill(stream, buf).await?;
        }
        body.extend(buf.drain(..n));
    }
    Some((method, path, body))
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 16 * 1024];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

fn start(addr: SocketAddr) -> (Sluice, u16) {
    let port = free_port();
    let s = Sluice::start(&pool("raw", port, "RoundRobin", &[(addr, 1)], ""));
    (s, port)
}

#[tokio::test]
async fn chunked_response_reaches_the_client_whole_and_the_connection_is_reused() {
    let (addr, conns, _t) = backend(|_, _, _| {
        answer(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n",
        )
    })
    .await;
    let (_s, port) = start(addr);
    let mut client = KeepAlive::connect(port).await.unwrap();
    for _ in 0..5 {
        let resp = client.get("/").await.unwrap();
        assert_eq!(resp.status, StatusCode::OK);
        assert_eq!(resp.body, "hello world");
    }
    assert_eq!(
        conns.load(Ordering::SeqCst),
        1,
        "upstream connection not reused"
    );
}

#[tokio::test]
async fn close_delimited_response_is_forwarded_whole_and_its_connection_is_not_reused() {
    let (addr, conns, _t) = backend(|_, _, _| Answer {
        bytes: b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end".to_vec(),
        close: true,
    })
    .await;
    let (_s, port) = start(addr);
    for _ in 0..3 {
        let resp = try_get(port, "/").await.unwrap();
        assert_eq!(resp.status, StatusCode::OK);
        assert_eq!(resp.body, "until the end");
    }
    assert_eq!(conns.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn head_204_and_304_answers_carry_no_body_and_keep_the_connection() {
    let (addr, conns, _t) = backend(|method, path, _| match (method, path) {
        ("HEAD", _) => answer(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
        (_, "/204") => answer(b"HTTP/1.1 204 No Content\r\n\r\n"),
        (_, "/304") => answer(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"),
        _ => answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    })
    .await;
    let (_s, port) = start(addr);
    let head = try_request(port, "HEAD", "/", b"", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.body, "");
    assert_eq!(
        try_get(port, "/204").await.unwrap().status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        try_get(port, "/304").await.unwrap().status,
        StatusCode::NOT_MODIFIED
    );
    assert_eq!(try_get(port, "/").await.unwrap().body, "ok");
    // Upstream connections are pooled per worker (the harness runs 2), and each request
    // came on a new client connection, which may land on either worker.
    assert!(
        conns.load(Ordering::SeqCst) <= 2,
        "bodiless answers broke the connection"
    );
}

#[tokio::test]
async fn interim_100_continue_is_skipped() {
    let (addr, _, _t) = backend(|_, _, _| {
        answer(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    })
    .await;
    let (_s, port) = start(addr);
    let resp = try_get(port, "/").await.unwrap();
    assert_eq!((resp.status, resp.body.as_str()), (StatusCode::OK, "ok"));
}

#[tokio::test]
async fn malformed_or_ambiguous_backend_answers_become_502() {
    let (addr, _, _t) = backend(|_, path, _| match path {
        "/two-lengths" => answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!"),
        "/both" => answer(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        ),
        "/garbage" => answer(b"SMTP ready\r\n\r\n"),
        "/huge-head" => {
            let mut out = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
            out.extend(std::iter::repeat_n(b'a', 70 * 1024));
            out.extend_from_slice(b"\r\nContent-Length: 2\r\n\r\nok");
            answer(&out)
        }
        _ => Answer {
            bytes: b"HTTP/1.1 200 OK\r\nContent-Len".to_vec(),
            close: true,
        },
    })
    .await;
    let (_s, port) = start(addr);
    for path in [
        "/two-lengths",
        "/both",
        "/garbage",
        "/huge-head",
        "/cut-head",
    ] {
        let resp = try_get(port, path).await.unwrap();
        assert_eq!(resp.status, StatusCode::BAD_GATEWAY, "{path}");
    }
}

#[tokio::test]
async fn body_cut_short_by_the_backend_ends_the_client_response_with_an_error() {
    let (addr, _, _t) = backend(|_, _, _| Answer {
        bytes: b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this".to_vec(),
        close: true,
    })
    .await;
    let (_s, port) = start(addr);
    let (raw, closed) = raw_exchange(
        port,
        b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    // The head may or may not have gone out before the cut was seen; either way the client
    // must not get what looks like a complete answer, and the connection must close.
    assert!(closed, "client connection left open after a truncated body");
    assert!(
        raw.is_empty() || raw.starts_with("HTTP/1.1 200"),
        "unexpected answer: {raw}"
    );
    assert!(
        !raw.contains("HTTP/1.1 502"),
        "a second answer was written: {raw}"
    );
}

#[tokio::test]
async fn backend_closing_keep_alive_connections_after_each_answer_is_invisible_to_clients() {
    // The backend answers without `Connection: close` and then closes: every pooled
    // connection is dead by the time it is reused. Requests must still all succeed
    // (the closed connection is noticed, or the request goes again on a new one).
    let (addr, conns, _t) = backend(|_, _, _| Answer {
        bytes: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        close: true,
    })
    .await;
    let (_s, port) = start(addr);
    let mut client = KeepAlive::connect(port).await.unwrap();
    for i in 0..40 {
        let resp = client.get("/").await.unwrap();
        assert_eq!(resp.status, StatusCode::OK, "request {i}");
        if i % 2 == 0 {
            // Let the FIN arrive while the connection sits idle in the pool.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(conns.load(Ordering::SeqCst), 40);
}

#[tokio::test]
async fn bytes_a_backend_sends_on_an_idle_connection_are_never_taken_for_an_answer() {
    // After each answer this backend sends an unsolicited second response on the idle
    // connection. A pooled connection holding it must not be reused: the next request
    // would read that stray response as its own (a response desync).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let counter = conns.clone();
    let _t = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while read_request(&mut stream, &mut buf).await.is_some() {
                    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                    let stray = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray";
                    if stream.write_all(ok).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    if stream.write_all(stray).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let (_s, port) = start(addr);
    let mut client = KeepAlive::connect(port).await.unwrap();
    for i in 0..10 {
        let resp = client.get("/").await.unwrap();
        assert_eq!(resp.status, StatusCode::OK, "request {i}");
        assert_eq!(resp.body, "ok", "request {i} got another request's answer");
        // Let the stray answer arrive while the connection sits idle in the pool.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(conns.load(Ordering::SeqCst), 10, "a connection was reused");
}

#[tokio::test]
async fn large_and_chunked_uploads_stream_through_intact() {
    let (addr, _, _t) = backend(|_, _, body| {
        let sum: u64 = body.iter().map(|&b| u64::from(b)).sum();
        let text = format!("{} {}", body.len(), sum);
        answer(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}",
                text.len()
            )
            .as_bytes(),
        )
    })
    .await;
    let (_s, port) = start(addr);
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let expect = format!(
        "{} {}",
        data.len(),
        data.iter().map(|&b| u64::from(b)).sum::<u64>()
    );

    // Known length, larger than what is kept in memory: streamed with Content-Length.
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::post("/upload")
        .header("host", "app.test")
        .body(Full::new(Bytes::from(data.clone())))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(String::from_utf8_lossy(&body), expect);

    // Unknown length: the client sends chunks, sluice forwards them chunked.
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let chunks: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = data
        .chunks(70_000)
        .map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let req = Request::post("/upload")
        .header("host", "app.test")
        .body(StreamBody::new(futures_util::stream::iter(chunks)))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(String::from_utf8_lossy(&body), expect);
}

#[tokio::test]
async fn large_response_body_streams_through_intact() {
    let (addr, _, _t) = backend(|_, _, _| {
        let mut out = b"HTTP/1.1 200 OK\r\nContent-Length: 3000000\r\n\r\n".to_vec();
        out.extend((0..3_000_000u32).map(|i| b'a' + (i % 26) as u8));
        answer(&out)
    })
    .await;
    let (_s, port) = start(addr);
    let resp = try_get(port, "/big").await.unwrap();
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.body.len(), 3_000_000);
    assert!(
        resp.body
            .bytes()
            .enumerate()
            .all(|(i, b)| b == b'a' + (i % 26) as u8),
        "body corrupted"
    );
}
