//! `--otlp-endpoint`: one span per request reaches an OTLP/HTTP collector, in the trace the
//! client started, as the parent the backend was told about.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// A fake collector recording (path, body) of every POST.
async fn collector() -> (u16, Arc<Mutex<Vec<(String, Vec<u8>)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let record = record.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes().to_vec())
                            .unwrap_or_default();
                        record.lock().unwrap().push((path, body));
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::new(),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_exports_a_span_in_the_clients_trace() {
    let (otlp, seen) = collector().await;
    let b = echo("a");
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{otlp}");
    let _s = Sluice::start_with(
        &pool("traced", port, "RoundRobin", &[(b.addr(), 1)], ""),
        &["--otlp-endpoint", &endpoint],
    );
    let r = get(
        port,
        "/headers",
        &[(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )],
    )
    .await;
    let upstream = r
        .body
        .lines()
        .find_map(|l| l.strip_prefix("traceparent: "))
        .expect("traceparent forwarded")
        .to_owned();
    assert!(
        upstream.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{upstream}"
    );
    let our_span = hex(&upstream[36..52]);
    let trace = hex("4bf92f3577b34da6a3ce929d0e0e4736");
    let client_span = hex("00f067aa0ba902b7");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        {
            let seen = seen.lock().unwrap();
            if let Some((path, body)) = seen.iter().find(|(_, body)| contains(body, &trace)) {
                assert_eq!(path, "/v1/traces");
                assert!(
                    contains(body, &our_span),
                    "the exported span is not the parent the backend saw"
                );
                assert!(
                    contains(body, &client_span),
                    "the exported span does not name the client's span as parent"
                );
                assert!(contains(body, b"traced"), "pool attribute missing");
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no span exported within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
