//! The client side of HTTP/1.1 as raw bytes: what sluice's own request loop answers, and
//! how a connection moves to hyper (with nothing lost) when a request is not a simple one.

mod common;

use std::time::Duration;

use common::*;

fn start() -> (EchoServer, Sluice, u16) {
    let b = echo("a");
    let port = free_port();
    let s = Sluice::start(&pool("p", port, "RoundRobin", &[(b.addr(), 1)], ""));
    (b, s, port)
}

/// The answers in `raw` (status lines), in order.
fn statuses(raw: &str) -> Vec<&str> {
    raw.match_indices("HTTP/1.1 ")
        .map(|(i, _)| &raw[i + 9..i + 12])
        .collect()
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_with_bodies_intact() {
    let (b, _s, port) = start();
    let (raw, closed) = raw_exchange(
        port,
        b"GET /one HTTP/1.1\r\nHost: app.test\r\n\r\n\
          POST /two HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n\r\nhello\
          GET /three HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(closed, "Connection: close was not honoured");
    assert_eq!(statuses(&raw), ["200", "200", "200"], "{raw}");
    let one = raw.find("a GET /one 0").expect(&raw);
    let two = raw.find("a POST /two 5").expect(&raw);
    let three = raw.find("a GET /three 0").expect(&raw);
    assert!(one < two && two < three, "{raw}");
    assert!(raw.contains("connection: close"), "{raw}");
    assert!(raw.contains("date: "), "{raw}");
    assert_eq!(b.requests(), 3);
}

#[tokio::test]
async fn a_chunked_request_after_simple_ones_moves_the_connection_to_hyper_without_loss() {
    let (b, _s, port) = start();
    let (raw, _) = raw_exchange(
        port,
        b"GET /first HTTP/1.1\r\nHost: app.test\r\n\r\n\
          POST /chunked HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n\
          GET /after HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(statuses(&raw), ["200", "200", "200"], "{raw}");
    assert!(raw.contains("a GET /first 0"), "{raw}");
    assert!(raw.contains("a POST /chunked 7"), "{raw}");
    assert!(raw.contains("a GET /after 0"), "{raw}");
    assert_eq!(b.requests(), 3);
}

#[tokio::test]
async fn requests_the_loop_does_not_serve_get_the_same_answers_as_before() {
    let (b, _s, port) = start();
    for (req, status) in [
        // A head httparse refuses: hyper answers 400 (not a silent close).
        (
            &b"GET /a\x7fb HTTP/1.1\r\nHost: app.test\r\n\r\n"[..],
            "400",
        ),
        (b"GET / HTTP/1.1\r\nHost : app.test\r\n\r\n", "400"),
        // No Host in HTTP/1.1, and two of them.
        (b"GET / HTTP/1.1\r\n\r\n", "400"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400"),
        // Ambiguous framing never reaches a backend.
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            "400",
        ),
        // The guard refuses authority-form targets.
        (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", "400"),
    ] {
        let (raw, _) = raw_exchange(port, req, Duration::from_secs(5)).await;
        assert_eq!(
            statuses(&raw).first().copied(),
            Some(status),
            "{}: {raw}",
            String::from_utf8_lossy(req)
        );
    }
    assert_eq!(b.requests(), 0);
}

#[tokio::test]
async fn http_1_0_and_absolute_form_requests_are_still_proxied() {
    let (b, _s, port) = start();
    let (raw, closed) = raw_exchange(
        port,
        b"GET /old HTTP/1.0\r\nHost: app.test\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(
        raw.starts_with("HTTP/1.0 200") || raw.starts_with("HTTP/1.1 200"),
        "{raw}"
    );
    assert!(raw.contains("a GET /old 0"), "{raw}");
    assert!(closed, "HTTP/1.0 without keep-alive must close");
    let (raw, _) = raw_exchange(
        port,
        b"GET http://app.test/abs HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(raw.contains("a GET /abs 0"), "{raw}");
    assert_eq!(b.requests(), 2);
}

#[tokio::test]
async fn head_answers_keep_the_backend_length_and_send_no_body() {
    let (_b, _s, port) = start();
    let (raw, _) = raw_exchange(
        port,
        b"HEAD /h HTTP/1.1\r\nHost: app.test\r\n\r\nGET /g HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(statuses(&raw), ["200", "200"], "{raw}");
    let head_part = &raw[..raw.rfind("HTTP/1.1 200").unwrap()];
    assert!(head_part.contains("content-length: "), "{raw}");
    assert!(
        !head_part.contains("a HEAD"),
        "HEAD answer carried a body: {raw}"
    );
    assert!(raw.contains("a GET /g 0"), "{raw}");
}
