//! Access policies through the real binary (contract 4b): address allow/deny lists, rate
//! limits, request body limits, and the client address they all read (`--trusted-proxies`).
//! Every refused request is shown not to reach the backend (a recording backend).

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{KeepAlive, PoolDoc, Sluice, check_file, echo, file, free_port, get, raw_exchange};
use http::StatusCode;
use sluice::api::RateLimitSpec;

fn rate_limit(yaml: &str) -> Option<RateLimitSpec> {
    Some(PoolDoc::block(yaml))
}

fn cidrs(list: &[&str]) -> Option<Vec<String>> {
    Some(list.iter().map(|c| (*c).to_owned()).collect())
}

async fn metric(s: &Sluice, series: &str) -> f64 {
    s.metric(series).await.unwrap_or(0.0)
}

#[tokio::test]
async fn clients_outside_the_allow_list_or_inside_the_deny_list_get_403_and_reach_no_backend() {
    let b = echo("b");
    let (allowed, outside, denied) = (free_port(), free_port(), free_port());
    let yaml = file(&[
        PoolDoc::http("allowed", allowed)
            .endpoints(&[b.addr()])
            .spec(|s| s.ip_allow_list = cidrs(&["127.0.0.0/8", "::1"])),
        PoolDoc::http("outside", outside)
            .endpoints(&[b.addr()])
            .spec(|s| s.ip_allow_list = cidrs(&["10.0.0.0/8", "2001:db8::/32"])),
        PoolDoc::http("denied", denied)
            .endpoints(&[b.addr()])
            .spec(|s| {
                s.ip_allow_list = cidrs(&["127.0.0.0/8"]);
                s.ip_deny_list = cidrs(&["127.0.0.1"]);
            }),
    ]);
    let s = Sluice::start(&yaml);
    assert_eq!(get(allowed, "/", &[]).await.status, StatusCode::OK);
    assert_eq!(b.requests(), 1);
    for port in [outside, denied] {
        for _ in 0..3 {
            let r = get(port, "/", &[]).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        }
    }
    assert_eq!(b.requests(), 1, "a refused request reached the backend");
    for pool in ["outside", "denied"] {
        let series = format!("sluice_denied_total{{pool=\"default/{pool}\",reason=\"address\"}}");
        assert_eq!(metric(&s, &series).await, 3.0, "{series}");
    }
}

#[tokio::test]
async fn a_forwarded_client_is_believed_only_from_a_trusted_proxy() {
    let b = echo("b");
    let yaml = |port: u16| {
        file(&[PoolDoc::http("web", port)
            .endpoints(&[b.addr()])
            .spec(|s| s.ip_deny_list = cidrs(&["198.51.100.0/24"]))])
    };
    // The test client connects from 127.0.0.1: first as a trusted proxy, then as anyone.
    let port = free_port();
    let _trusting = Sluice::start_with(&yaml(port), &["--trusted-proxies", "10.0.0.0/8,127.0.0.1"]);
    let xff = |v: &'static str| [("x-forwarded-for", v)];
    assert_eq!(
        get(port, "/", &xff("198.51.100.7")).await.status,
        StatusCode::FORBIDDEN
    );
    // The rightmost untrusted entry is the client; what a client prepends is ignored.
    assert_eq!(
        get(port, "/", &xff("198.51.100.7, 203.0.113.5, 10.1.1.1"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        get(port, "/", &xff("203.0.113.5, 198.51.100.7"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let port = free_port();
    let _untrusting = Sluice::start(&yaml(port));
    // A spoofed header from an untrusted peer changes nothing: the client is 127.0.0.1.
    b.record();
    let r = get(port, "/", &xff("198.51.100.7")).await;
    assert_eq!(r.status, StatusCode::OK);
    // X-Forwarded-For still carries what the client sent, with the peer appended.
    let seen = b.take_seen();
    let forwarded: Vec<&str> = seen[0]
        .headers
        .iter()
        .filter(|(k, _)| k == "x-forwarded-for")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(forwarded, ["198.51.100.7, 127.0.0.1"]);
}

#[tokio::test]
async fn the_access_log_and_client_ip_affinity_use_the_forwarded_client() {
    use std::io::BufRead;
    let (a, b) = (echo("a"), echo("b"));
    let port = free_port();
    let yaml = file(&[PoolDoc::http("sticky", port)
        .endpoints(&[a.addr(), b.addr()])
        .spec(|s| s.session_affinity = Some(PoolDoc::block("{type: ClientIP}")))]);
    let mut s = Sluice::start_with(&yaml, &["--trusted-proxies", "127.0.0.1", "--access-log"]);
    let mut by_client =
        std::collections::BTreeMap::<String, std::collections::BTreeSet<String>>::new();
    for i in 0..40 {
        let client = format!("203.0.113.{}", i % 20);
        let r = get(port, "/", &[("x-forwarded-for", &client)]).await;
        by_client.entry(client).or_default().insert(r.backend());
    }
    // One backend per forwarded client, and the clients spread over both backends.
    assert!(by_client.values().all(|b| b.len() == 1), "{by_client:?}");
    let used: std::collections::BTreeSet<_> = by_client.values().flatten().collect();
    assert_eq!(used.len(), 2, "{by_client:?}");
    let stdout = s.child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        line
    });
    let line = tokio::time::timeout(Duration::from_secs(5), line)
        .await
        .unwrap()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["client"], "203.0.113.0", "{line}");
}

#[tokio::test]
async fn requests_over_the_rate_limit_get_429_with_retry_after_and_reach_no_backend() {
    let b = echo("b");
    let port = free_port();
    let yaml = file(&[PoolDoc::http("limited", port)
        .endpoints(&[b.addr()])
        .spec(|s| s.rate_limit = rate_limit("{requestsPerSecond: 1, burst: 2}"))]);
    let s = Sluice::start(&yaml);
    let mut statuses = Vec::new();
    let mut retry_after = Vec::new();
    for _ in 0..5 {
        let r = get(port, "/", &[]).await;
        statuses.push(r.status.as_u16());
        if let Some(v) = r.headers.get("retry-after") {
            retry_after.push(v.to_str().unwrap().to_owned());
        }
    }
    assert_eq!(statuses, [200, 200, 429, 429, 429]);
    assert_eq!(retry_after, ["1", "1", "1"]);
    assert_eq!(
        b.requests(),
        2,
        "a rate-limited request reached the backend"
    );
    assert_eq!(
        metric(&s, "sluice_rate_limited_total{pool=\"default/limited\"}").await,
        3.0
    );
}

#[tokio::test]
async fn a_header_keyed_limit_gives_each_value_its_own_bucket() {
    let b = echo("b");
    let port = free_port();
    let yaml = file(&[PoolDoc::http("keyed", port)
        .endpoints(&[b.addr()])
        .spec(|s| {
            s.rate_limit =
                rate_limit("{requestsPerSecond: 1, burst: 1, key: Header, header: X-Api-Key}")
        })]);
    let _s = Sluice::start(&yaml);
    let key = |k: &'static str| [("x-api-key", k)];
    assert_eq!(get(port, "/", &key("alice")).await.status, StatusCode::OK);
    assert_eq!(
        get(port, "/", &key("alice")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(get(port, "/", &key("bob")).await.status, StatusCode::OK);
    // Without the header the client address names the bucket.
    assert_eq!(get(port, "/", &[]).await.status, StatusCode::OK);
    assert_eq!(
        get(port, "/", &[]).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// The real binary at twice the limit for a short window: accepted requests within 5% of
/// `requestsPerSecond x seconds + burst` (the ten-second run is the paused-clock unit test).
#[tokio::test]
async fn at_twice_the_rate_limit_the_binary_accepts_rate_x_time_plus_burst() {
    let b = echo("b");
    let port = free_port();
    let (rps, burst, window) = (40u32, 10u32, Duration::from_secs(3));
    let yaml = file(&[PoolDoc::http("paced", port)
        .endpoints(&[b.addr()])
        .spec(|s| {
            s.rate_limit = Some(RateLimitSpec {
                requests_per_second: rps,
                burst: Some(burst),
                ..Default::default()
            })
        })]);
    let _s = Sluice::start(&yaml);
    let mut client = KeepAlive::connect(port).await.unwrap();
    let gap = Duration::from_secs(1) / (2 * rps);
    let start = tokio::time::Instant::now();
    let mut next = start;
    let mut accepted = 0u32;
    while next < start + window {
        tokio::time::sleep_until(next).await;
        let r = client.get("/").await.unwrap();
        if r.status == StatusCode::OK {
            accepted += 1;
        } else {
            assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        }
        next += gap;
    }
    let expected = f64::from(rps) * window.as_secs_f64() + f64::from(burst);
    let error = (f64::from(accepted) - expected).abs() / expected;
    println!(
        "accepted {accepted} of {expected} expected ({:.1}% off)",
        error * 100.0
    );
    assert!(error <= 0.05, "accepted {accepted}, expected {expected}");
}

#[tokio::test]
async fn a_declared_body_over_the_limit_gets_413_at_once_and_reaches_no_backend() {
    let b = echo("b");
    let port = free_port();
    let yaml = file(&[PoolDoc::http("small", port)
        .endpoints(&[b.addr()])
        .spec(|s| s.max_request_body_bytes = Some(10))]);
    let s = Sluice::start(&yaml);
    let (ok, _) = raw_exchange(
        port,
        b"POST /up HTTP/1.1\r\nHost: app.test\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789",
        Duration::from_secs(5),
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.ends_with("b POST /up 10\n"), "{ok}");
    // 11 bytes (read whole by the HTTP/1 loop) and 1 GB (never sent): both refused at once.
    for head in [
        "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world",
        "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1000000000\r\n\r\nhello",
    ] {
        let (out, _) = raw_exchange(port, head.as_bytes(), Duration::from_secs(5)).await;
        assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    }
    assert_eq!(b.requests(), 1, "a refused body reached the backend");
    assert_eq!(
        metric(
            &s,
            "sluice_denied_total{pool=\"default/small\",reason=\"body\"}"
        )
        .await,
        2.0
    );
}

/// A backend that answers nothing and keeps every byte it receives.
struct Recorder {
    addr: std::net::SocketAddr,
    bytes: std::sync::Arc<parking_lot::Mutex<Vec<u8>>>,
}

impl Recorder {
    async fn start() -> Recorder {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let bytes = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let kept = bytes.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        kept.lock().extend_from_slice(&buf[..n]);
                    }
                });
            }
        });
        Recorder { addr, bytes }
    }

    fn received(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock()).into_owned()
    }
}

#[tokio::test]
async fn a_chunked_body_growing_past_the_limit_is_cut_and_never_reaches_a_backend_whole() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = Recorder::start().await;
    let port = free_port();
    let yaml = file(&[PoolDoc::http("cut", port)
        .endpoints(&[backend.addr])
        .spec(|s| s.max_request_body_bytes = Some(100))]);
    let s = Sluice::start(&yaml);
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream
        .write_all(b"POST /up HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunk = format!("28\r\n{}\r\n", "x".repeat(40));
    // 40, 80, then 120 bytes: the third chunk crosses the limit. The client pauses between
    // chunks so the first ones are streamed upstream before the limit is reached.
    for _ in 0..3 {
        let _ = stream.write_all(chunk.as_bytes()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let received = backend.received();
    assert!(received.starts_with("POST /up HTTP/1.1"), "{received}");
    // The upstream request was aborted: at most the 80 bytes before the limit, and never
    // the last chunk that would have completed the body.
    let body = received.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    assert!(body.matches('x').count() <= 80, "{received}");
    assert!(!received.ends_with("0\r\n\r\n"), "{received}");
    assert_eq!(
        metric(
            &s,
            "sluice_denied_total{pool=\"default/cut\",reason=\"body\"}"
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn an_h2_body_of_unknown_length_past_the_limit_gets_413() {
    use http_body_util::BodyExt;
    let b = echo("b");
    let port = free_port();
    let yaml = file(&[PoolDoc::http("h2", port)
        .endpoints(&[b.addr()])
        .spec(|s| s.max_request_body_bytes = Some(1000))]);
    let _s = Sluice::start(&yaml);
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let send = |size: usize| {
        let frames = futures_util::stream::iter((0..size / 100).map(|_| {
            Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(vec![b'y'; 100])))
        }));
        http::Request::post("http://app.test/up")
            .body(http_body_util::StreamBody::new(frames).boxed_unsync())
            .unwrap()
    };
    let small = sender.send_request(send(500)).await.unwrap();
    assert_eq!(small.status(), StatusCode::OK);
    let body = small.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"b POST /up 500\n");
    sender.ready().await.unwrap();
    let large = sender.send_request(send(5000)).await.unwrap();
    assert_eq!(large.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[test]
fn bad_policies_are_refused_with_file_line_column_pool_and_field() {
    let b = "127.0.0.1:9";
    let yaml = format!(
        "---\napiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {{name: web, namespace: default}}\nspec:\n  listener: {{port: 8080}}\n  endpoints: [{{address: \"{b}\"}}]\n  ipAllowList: [10.0.0.0/8, 10.0.0.1/8]\n  ipDenyList: [\"2001:db8::/129\"]\n  rateLimit: {{requestsPerSecond: 0, key: Header}}\n  maxRequestBodyBytes: 0\n"
    );
    let (code, err, path) = check_file(&yaml);
    assert_eq!(code, Some(1), "{err}");
    for line in [
        format!(
            "{path}:8:29: pool default/web: spec.ipAllowList[1]: \"10.0.0.1/8\" has host bits set (the network is 10.0.0.0/8)"
        ),
        format!(
            "{path}:9:16: pool default/web: spec.ipDenyList[0]: \"2001:db8::/129\": prefix length must be 0..=128"
        ),
        format!(
            "{path}:10:15: pool default/web: spec.rateLimit.requestsPerSecond: must be 1..=1000000, got 0"
        ),
        format!("{path}:10:3: pool default/web: spec.rateLimit.header: required with key Header"),
        format!("{path}:11:3: pool default/web: spec.maxRequestBodyBytes: must be greater than 0"),
    ] {
        assert!(err.contains(&line), "missing\n  {line}\nin\n{err}");
    }
    let tcp = "---\napiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {name: db, namespace: default}\nspec:\n  protocol: TCP\n  listener: {port: 5432}\n  endpoints: []\n  ipAllowList: [10.0.0.0/8]\n";
    let (code, err, path) = check_file(tcp);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{path}:9:3: pool default/db: spec.ipAllowList: only for protocol HTTP"
        )),
        "{err}"
    );
}
