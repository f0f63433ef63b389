//! The real binary in front of real loopback backends: balancing, routing, headers,
//! upgrades, h2c and error answers, as a user would see them.

mod common;

use std::time::Duration;

use common::*;
use http::StatusCode;

#[tokio::test]
async fn round_robin_spreads_300_requests_evenly() {
    let b = [echo("a"), echo("b"), echo("c")];
    let port = free_port();
    let eps: Vec<_> = b.iter().map(|e| (e.addr(), 1)).collect();
    let _s = Sluice::start(&pool("rr", port, "RoundRobin", &eps, ""));
    let counts = spread(port, 300, &[]).await;
    assert_eq!(counts.len(), 3, "{counts:?}");
    for (name, n) in &counts {
        assert!((85..=115).contains(n), "{name} got {n}: {counts:?}");
    }
}

#[tokio::test]
async fn weighted_round_robin_follows_weights_1_2_3() {
    let b = [echo("a"), echo("b"), echo("c")];
    let port = free_port();
    let eps = vec![(b[0].addr(), 1), (b[1].addr(), 2), (b[2].addr(), 3)];
    let _s = Sluice::start(&pool("wrr", port, "WeightedRoundRobin", &eps, ""));
    let counts = spread(port, 600, &[]).await;
    for (name, expected) in [("a", 1.0 / 6.0), ("b", 2.0 / 6.0), ("c", 3.0 / 6.0)] {
        let share = counts.get(name).copied().unwrap_or(0) as f64 / 600.0;
        assert!(
            (share - expected).abs() <= 0.05,
            "{name}: {share:.3} vs {expected:.3}: {counts:?}"
        );
    }
}

/// Runs `clients` concurrent keep-alive loops for `per_client` requests each.
async fn concurrent_spread(
    port: u16,
    clients: usize,
    per_client: usize,
) -> std::collections::BTreeMap<String, usize> {
    let mut tasks = Vec::new();
    for _ in 0..clients {
        tasks.push(tokio::spawn(
            async move { spread(port, per_client, &[]).await },
        ));
    }
    let mut total = std::collections::BTreeMap::new();
    for t in tasks {
        for (k, v) in t.await.unwrap() {
            *total.entry(k).or_default() += v;
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_steers_away_from_a_slow_backend() {
    let b = [
        echo("fast1"),
        echo("fast2"),
        slow_echo("slow", Duration::from_millis(300)),
    ];
    let port = free_port();
    let eps: Vec<_> = b.iter().map(|e| (e.addr(), 1)).collect();
    let _s = Sluice::start(&pool("lc", port, "LeastConnections", &eps, ""));
    let counts = concurrent_spread(port, 6, 40).await;
    let slow = counts.get("slow").copied().unwrap_or(0);
    let total: usize = counts.values().sum();
    assert!(
        (slow as f64) < total as f64 * 0.15,
        "slow got {slow} of {total}: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_of_two_choices_sends_under_20_percent_to_a_slow_backend() {
    let b = [
        echo("fast1"),
        echo("fast2"),
        slow_echo("slow", Duration::from_millis(200)),
    ];
    let port = free_port();
    let eps: Vec<_> = b.iter().map(|e| (e.addr(), 1)).collect();
    let _s = Sluice::start(&pool("p2c", port, "PowerOfTwoChoices", &eps, ""));
    let counts = concurrent_spread(port, 4, 50).await;
    let slow = counts.get("slow").copied().unwrap_or(0);
    let total: usize = counts.values().sum();
    assert!(
        (slow as f64) < total as f64 * 0.20,
        "slow got {slow} of {total}: {counts:?}"
    );
}

#[tokio::test]
async fn consistent_hash_keeps_a_key_on_one_backend_and_spreads_keys() {
    let b = [echo("a"), echo("b"), echo("c")];
    let port = free_port();
    let eps: Vec<_> = b.iter().map(|e| (e.addr(), 1)).collect();
    let _s = Sluice::start(&pool(
        "ch",
        port,
        "ConsistentHash",
        &eps,
        "  hashKey: {header: x-user}\n",
    ));
    for user in ["alice", "bob", "carol"] {
        let counts = spread(port, 20, &[("x-user", user)]).await;
        assert_eq!(counts.len(), 1, "{user} moved: {counts:?}");
    }
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..60 {
        let user = format!("user-{i}");
        seen.insert(get(port, "/", &[("x-user", &user)]).await.backend());
    }
    assert_eq!(seen.len(), 3, "keys all landed on {seen:?}");
}

#[tokio::test]
async fn host_and_path_route_to_the_right_pool() {
    let (shop, api, wild, any) = (echo("shop"), echo("api"), echo("wild"), echo("any"));
    let port = free_port();
    let yaml = file(&[
        PoolDoc::http("shop", port)
            .hosts(&["shop.test"])
            .endpoints(&[shop.addr()]),
        PoolDoc::http("api", port)
            .hosts(&["shop.test"])
            .path_prefix("/api")
            .endpoints(&[api.addr()]),
        PoolDoc::http("wild", port)
            .hosts(&["*.example.test"])
            .endpoints(&[wild.addr()]),
        PoolDoc::http("any", port).endpoints(&[any.addr()]),
    ]);
    let _s = Sluice::start(&yaml);
    let route = |host: &'static str, path: &'static str| async move {
        get(port, path, &[("host", host)]).await.backend()
    };
    assert_eq!(route("shop.test", "/").await, "shop");
    assert_eq!(route("SHOP.test:8080", "/api/v1").await, "api");
    assert_eq!(route("shop.test", "/apix").await, "shop");
    assert_eq!(route("a.b.example.test", "/").await, "wild");
    assert_eq!(route("example.test", "/").await, "any");
}

#[tokio::test]
async fn unknown_host_without_a_catch_all_gets_404() {
    let b = echo("a");
    let port = free_port();
    let yaml = file(&[PoolDoc::http("only", port)
        .hosts(&["a.test"])
        .endpoints(&[b.addr()])]);
    let _s = Sluice::start(&yaml);
    assert_eq!(
        get(port, "/", &[("host", "b.test")]).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn forwarded_headers_are_set_and_host_preserved() {
    let b = echo("a");
    let port = free_port();
    let _s = Sluice::start(&pool("fwd", port, "RoundRobin", &[(b.addr(), 1)], ""));
    let r = get(
        port,
        "/headers",
        &[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "gopher"),
        ],
    )
    .await;
    assert!(r.body.contains("host: app.test\n"), "{}", r.body);
    assert!(
        r.body.contains("x-forwarded-for: 203.0.113.9, 127.0.0.1\n"),
        "{}",
        r.body
    );
    assert!(r.body.contains("x-forwarded-proto: http\n"), "{}", r.body);
    assert!(
        r.body.contains("x-forwarded-host: app.test\n"),
        "{}",
        r.body
    );
    assert!(r.body.contains("traceparent: 00-"), "{}", r.body);
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped() {
    let b = echo("a");
    let port = free_port();
    let _s = Sluice::start(&pool("hop", port, "RoundRobin", &[(b.addr(), 1)], ""));
    let r = get(
        port,
        "/headers",
        &[
            ("connection", "keep-alive, x-private"),
            ("x-private", "secret"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("x-kept", "1"),
        ],
    )
    .await;
    for gone in ["x-private", "keep-alive", "te:", "connection"] {
        assert!(
            !r.body.contains(gone),
            "{gone} reached the backend:\n{}",
            r.body
        );
    }
    assert!(r.body.contains("x-kept: 1"), "{}", r.body);
}

#[tokio::test]
async fn websocket_echo_passes_through() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    // A real WebSocket backend.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let port = free_port();
    let _s = Sluice::start(&pool("ws", port, "RoundRobin", &[(backend, 1)], ""));
    let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/chat"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    for i in 0..5 {
        ws.send(Message::text(format!("hello {i}"))).await.unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), format!("hello {i}"));
    }
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    let b = echo("a");
    let port = free_port();
    let _s = Sluice::start(&pool("h2", port, "RoundRobin", &[(b.addr(), 1)], ""));
    let (mut sender, _conn) = h2c(port).await;
    for _ in 0..3 {
        let req = http::Request::get(format!("http://app.test:{port}/h2"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"a GET /h2 0\n");
    }
}

#[tokio::test]
async fn pool_without_endpoints_answers_503() {
    let port = free_port();
    let yaml = file(&[PoolDoc::http("empty", port).endpoints(&[])]);
    let _s = Sluice::start(&yaml);
    let r = get(port, "/", &[]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!r.body.is_empty());
}

#[tokio::test]
async fn unreachable_backend_answers_502() {
    let dead = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let port = free_port();
    let _s = Sluice::start(&pool("dead", port, "RoundRobin", &[(dead, 1)], ""));
    assert_eq!(get(port, "/", &[]).await.status, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn slow_backend_past_request_timeout_answers_504() {
    let b = slow_echo("slow", Duration::from_secs(3));
    let port = free_port();
    let _s = Sluice::start(&pool(
        "slow",
        port,
        "RoundRobin",
        &[(b.addr(), 1)],
        "  timeouts: {request: 300ms}\n",
    ));
    let started = tokio::time::Instant::now();
    assert_eq!(
        get(port, "/", &[]).await.status,
        StatusCode::GATEWAY_TIMEOUT
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn content_length_with_transfer_encoding_gets_400_and_never_reaches_the_backend() {
    let b = echo("a");
    let port = free_port();
    let _s = Sluice::start(&pool("smuggle", port, "RoundRobin", &[(b.addr(), 1)], ""));
    let alone = raw(
        port,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert!(alone.starts_with("HTTP/1.1 400"), "{alone}");
    let pipelined = raw(
        port,
        b"GET /first HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\nGET /third HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await;
    assert!(pipelined.starts_with("HTTP/1.1 200"), "{pipelined}");
    assert!(pipelined.contains("HTTP/1.1 400"), "{pipelined}");
    assert!(
        !pipelined.contains("/third"),
        "request after the bad one was served: {pipelined}"
    );
    assert_eq!(
        b.requests(),
        1,
        "only the valid first request may reach the backend"
    );
}

#[tokio::test]
async fn oversized_header_block_gets_431() {
    let b = echo("a");
    let port = free_port();
    let _s = Sluice::start(&pool("big", port, "RoundRobin", &[(b.addr(), 1)], ""));
    let mut req = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    req.extend(std::iter::repeat_n(b'a', 70 * 1024));
    req.extend_from_slice(b"\r\n\r\n");
    let out = raw(port, &req).await;
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
    assert_eq!(b.requests(), 0);
}

#[tokio::test]
async fn metrics_and_pools_report_traffic() {
    let b = echo("a");
    let port = free_port();
    let s = Sluice::start(&pool("obs", port, "RoundRobin", &[(b.addr(), 1)], ""));
    for _ in 0..3 {
        get(port, "/", &[]).await;
    }
    let metrics = s.admin_get("/metrics");
    let line = format!(
        "sluice_requests_total{{pool=\"default/obs\",backend=\"{}\",code=\"200\"}} 3",
        b.addr()
    );
    assert!(metrics.contains(&line), "{metrics}");
    assert!(
        metrics.contains("sluice_request_duration_seconds_count{pool=\"default/obs\"} 3"),
        "{metrics}"
    );
    assert_eq!(
        metric_value(&metrics, "sluice_pool_ready{pool=\"default/obs\"}"),
        Some(1.0),
        "{metrics}"
    );
    let pools: serde_json::Value = serde_json::from_str(&s.admin_get("/pools")).unwrap();
    assert_eq!(pools["pools"][0]["name"], "default/obs");
    assert_eq!(
        pools["pools"][0]["endpoints"][0]["address"],
        b.addr().to_string()
    );
    assert_eq!(pools["pools"][0]["endpoints"][0]["healthy"], true);
}

#[tokio::test]
async fn request_duration_buckets_are_cumulative_once_and_end_with_inf_equal_to_count() {
    let b = echo("a");
    let port = free_port();
    let s = Sluice::start(&pool("hist", port, "RoundRobin", &[(b.addr(), 1)], ""));
    for _ in 0..3 {
        get(port, "/", &[]).await;
    }
    let metrics = s.admin_get("/metrics");
    let prefix = "sluice_request_duration_seconds_bucket{";
    let buckets: Vec<(String, f64)> = metrics
        .lines()
        .filter(|l| l.starts_with(prefix) && l.contains("pool=\"default/hist\""))
        .map(|l| {
            let le = l.split("le=\"").nth(1).unwrap().split('"').next().unwrap();
            let n = l.rsplit(' ').next().unwrap().parse().unwrap();
            (le.to_owned(), n)
        })
        .collect();
    assert!(buckets.len() > 2, "{metrics}");
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "buckets must not decrease: {buckets:?}"
    );
    assert!(
        buckets.iter().all(|(_, n)| *n <= 3.0),
        "no bucket may exceed the 3 requests made: {buckets:?}"
    );
    assert_eq!(
        buckets.last().unwrap(),
        &("+Inf".to_owned(), 3.0),
        "{buckets:?}"
    );
    assert!(
        buckets.iter().any(|(le, _)| le == "30.0"),
        "a bucket covers the 30 s default request timeout: {buckets:?}"
    );
}

#[tokio::test]
async fn answers_sluice_makes_itself_are_counted_with_an_empty_backend() {
    let port = free_port();
    let yaml = PoolDoc::http("empty", port)
        .hosts(&["a.test"])
        .endpoints(&[])
        .yaml();
    let s = Sluice::start(&yaml);
    let no_endpoint = raw(
        port,
        b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(no_endpoint.starts_with("HTTP/1.1 503"), "{no_endpoint}");
    let no_route = raw(
        port,
        b"GET / HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(no_route.starts_with("HTTP/1.1 404"), "{no_route}");
    let refused = raw(port, b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n").await;
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    let metrics = s.admin_get("/metrics");
    for series in [
        "sluice_requests_total{pool=\"default/empty\",backend=\"\",code=\"503\"}",
        "sluice_requests_total{pool=\"\",backend=\"\",code=\"404\"}",
        "sluice_requests_total{pool=\"\",backend=\"\",code=\"400\"}",
    ] {
        assert_eq!(
            metric_value(&metrics, series),
            Some(1.0),
            "{series}\n{metrics}"
        );
    }
    let ready = "sluice_pool_ready{pool=\"default/empty\"}";
    assert_eq!(metric_value(&metrics, ready), Some(0.0), "{metrics}");
}

#[tokio::test]
async fn a_connect_failure_is_retried_once_on_another_endpoint_without_a_retry_block() {
    let live = echo("live");
    let dead: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let port = free_port();
    let s = Sluice::start(&pool(
        "next",
        port,
        "RoundRobin",
        &[(live.addr(), 1), (dead, 1)],
        "",
    ));
    for i in 0..10 {
        let method = if i % 2 == 0 { "GET" } else { "POST" };
        let req = format!(
            "{method} / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
        );
        let out = raw(port, req.as_bytes()).await;
        assert!(
            out.starts_with("HTTP/1.1 200"),
            "request {i} ({method}): {out}"
        );
    }
    assert_eq!(live.requests(), 10);
    let metrics = s.admin_get("/metrics");
    let retries = metric_value(&metrics, "sluice_retries_total{pool=\"default/next\"}");
    assert!(retries.is_some_and(|n| n >= 1.0), "{metrics}");
    // The failures the retries hid from clients still show per backend.
    let attempts = |backend: String, result: &str| {
        let series = format!(
            "sluice_upstream_attempts_total{{pool=\"default/next\",backend=\"{backend}\",result=\"{result}\"}}"
        );
        metric_value(&metrics, &series)
    };
    assert_eq!(
        attempts(live.addr().to_string(), "success"),
        Some(10.0),
        "{metrics}"
    );
    assert_eq!(attempts(dead.to_string(), "failure"), retries, "{metrics}");
    assert_eq!(
        attempts(dead.to_string(), "success"),
        Some(0.0),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_stops_accepting_under_load_costs_no_request_without_a_retry_block() {
    let stays = echo("stays");
    let leaves = echo("leaves");
    let port = free_port();
    let _s = Sluice::start(&pool(
        "rolling",
        port,
        "RoundRobin",
        &[(stays.addr(), 1), (leaves.addr(), 1)],
        "",
    ));
    let mut leaves = Some(leaves);
    let mut failed = Vec::new();
    for i in 0..300 {
        if i == 100 {
            // The pod got SIGTERM and closed its listener; its endpoint is still configured.
            drop(leaves.take());
        }
        let r = get(port, "/", &[]).await;
        if r.status != StatusCode::OK {
            failed.push((i, r.status));
        }
    }
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    assert!(stays.requests() >= 200, "{}", stays.requests());
}

#[tokio::test]
async fn connections_past_the_process_limit_are_shed_with_503() {
    let b = echo("a");
    let port = free_port();
    let _s = Sluice::start_with(
        &pool("limit", port, "RoundRobin", &[(b.addr(), 1)], ""),
        &["--max-connections", "4"],
    );
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap(),
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let shed = raw(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert!(shed.starts_with("HTTP/1.1 503"), "{shed}");
    drop(held);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let out = raw(
            port,
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .await;
        if out.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "slots not released: {out}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_at_max_connections_is_skipped_and_all_full_gives_503() {
    let slow = slow_echo("slow", Duration::from_millis(800));
    let port = free_port();
    let _s = Sluice::start(&pool(
        "cap",
        port,
        "RoundRobin",
        &[(slow.addr(), 1)],
        "  maxConnectionsPerEndpoint: 1\n",
    ));
    let first = tokio::spawn(async move { get(port, "/", &[]).await.status });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        get(port, "/", &[]).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(first.await.unwrap(), StatusCode::OK);
    assert_eq!(get(port, "/", &[]).await.status, StatusCode::OK);
}

#[tokio::test]
async fn access_log_writes_one_json_line_per_request_to_stdout() {
    use std::io::BufRead;
    let b = echo("a");
    let port = free_port();
    let mut s = Sluice::start_with(
        &pool("logged", port, "RoundRobin", &[(b.addr(), 1)], ""),
        &["--access-log"],
    );
    get(port, "/hello?x=1", &[]).await;
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
    assert_eq!(v["pool"], "default/logged");
    assert_eq!(v["backend"], b.addr().to_string());
    assert_eq!(v["method"], "GET");
    assert_eq!(v["host"], "app.test");
    assert_eq!(v["path"], "/hello?x=1");
    assert_eq!(v["status"], 200);
    assert!(v["bytesOut"].as_u64().unwrap() > 0);
    for field in ["ts", "client", "bytesIn", "durationMs"] {
        assert!(!v[field].is_null(), "{field} missing: {line}");
    }
}

#[tokio::test]
async fn answers_sluice_gives_itself_are_in_the_access_log_without_a_backend() {
    use std::io::BufRead;
    let b = echo("a");
    let port = free_port();
    let yaml = file(&[PoolDoc::http("guarded", port)
        .hosts(&["app.test"])
        .endpoints(&[b.addr()])
        .spec(|s| s.ip_deny_list = Some(vec!["127.0.0.1".into()]))]);
    let mut s = Sluice::start_with(&yaml, &["--access-log"]);
    assert_eq!(get(port, "/x", &[]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        get(port, "/y", &[("host", "other.test")]).await.status,
        StatusCode::NOT_FOUND
    );
    let stdout = s.child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        let mut reader = std::io::BufReader::new(stdout);
        let mut lines = Vec::new();
        for _ in 0..2 {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            lines.push(line);
        }
        lines
    });
    let lines = tokio::time::timeout(Duration::from_secs(5), lines)
        .await
        .unwrap()
        .unwrap();
    let v: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        (&v[0]["pool"], &v[0]["status"], &v[0]["path"]),
        (&"default/guarded".into(), &403.into(), &"/x".into())
    );
    assert!(v[0]["backend"].is_null(), "{}", lines[0]);
    assert_eq!(
        (&v[1]["pool"], &v[1]["status"], &v[1]["host"]),
        (&"".into(), &404.into(), &"other.test".into())
    );
    assert_eq!(b.requests(), 0);
}

static SMALL_BODY: [u8; 1000] = [b'x'; 1000];
static LARGE_BODY: [u8; 100_000] = [b'y'; 100_000];

#[tokio::test]
async fn request_and_response_body_bytes_are_counted_per_pool() {
    let backend = echo("a");
    let port = free_port();
    let s = Sluice::start(&pool(
        "bytes",
        port,
        "RoundRobin",
        &[(backend.addr(), 1)],
        "",
    ));
    let mut answered = 0;
    // Read whole before forwarding (1,000 bytes) and streamed (100,000, past the 64 KiB that
    // are read first).
    for body in [&SMALL_BODY[..], &LARGE_BODY[..], &SMALL_BODY[..]] {
        let resp = try_request(port, "POST", "/", body, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(resp.status, StatusCode::OK);
        answered += resp.body.len();
    }
    let req = "sluice_request_bytes_total{pool=\"default/bytes\"}";
    let resp = "sluice_response_bytes_total{pool=\"default/bytes\"}";
    // The counters move when each exchange ends, just after the client has its answer.
    let counted = eventually(Duration::from_secs(3), || async {
        s.metric(req).await == Some(102_000.0) && s.metric(resp).await == Some(answered as f64)
    })
    .await;
    assert!(
        counted.is_some(),
        "{:?} request bytes and {:?} response bytes, want 102000 and {answered}",
        s.metric(req).await,
        s.metric(resp).await
    );
}
