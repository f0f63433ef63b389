//! Health and resilience, black box: the real binary against loopback backends that fail,
//! die, reset, stall or send hostile bytes; reloads and signals while traffic flows.
//! Every wait is bounded; ports come from `free_port()`. Hostile input is in
//! `resilience/hostile.rs`, the health-checker measurement in `resilience/capacity.rs`.

#[path = "resilience/capacity.rs"]
mod capacity;
mod common;
#[path = "resilience/hostile.rs"]
mod hostile;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

const HTTP_CHECK: &str = "  healthCheck: {protocol: HTTP, path: /healthz, interval: 200ms, timeout: 150ms, healthyThreshold: 2, unhealthyThreshold: 3}\n";

/// Endpoint addresses of `pool` in `/pools` that are members (not draining).
async fn members(s: &Sluice, pool: &str) -> BTreeSet<String> {
    let doc = s.pools().await;
    let mut out = BTreeSet::new();
    for p in doc["pools"].as_array().into_iter().flatten() {
        if p["name"] != pool {
            continue;
        }
        for e in p["endpoints"].as_array().into_iter().flatten() {
            if e["draining"] != true {
                out.insert(e["address"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    out
}

/// Waits until `/pools` shows `addr` of `pool` with the given health; returns how long it took.
async fn wait_health(s: &Sluice, pool: &str, addr: SocketAddr, healthy: bool) -> Option<Duration> {
    let addr = addr.to_string();
    let addr = &addr;
    eventually(Duration::from_secs(6), move || async move {
        s.health_of(pool).await.get(addr) == Some(&healthy)
    })
    .await
}

fn addrs(servers: &[&EchoServer]) -> BTreeSet<String> {
    servers.iter().map(|e| e.addr().to_string()).collect()
}

fn eps(servers: &[&EchoServer]) -> Vec<(SocketAddr, u32)> {
    servers.iter().map(|e| (e.addr(), 1)).collect()
}

// ---------------------------------------------------------------------------------------
// Active health checks
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn endpoint_whose_healthz_turns_500_leaves_rotation_and_returns_after_healthy_threshold() {
    let (a, b) = (echo("a"), echo("b"));
    let port = free_port();
    let s = Sluice::start(&pool("hc", port, "RoundRobin", &eps(&[&a, &b]), HTTP_CHECK));
    assert_eq!(spread(port, 10, &[]).await.len(), 2, "both serve at first");

    b.set_health(StatusCode::INTERNAL_SERVER_ERROR);
    // interval x unhealthyThreshold (+10% jitter) + 1 s.
    let budget = Duration::from_millis(200 * 3 * 11 / 10) + Duration::from_secs(1);
    let took = wait_health(&s, "default/hc", b.addr(), false)
        .await
        .expect("b never turned unhealthy");
    assert!(
        took <= budget,
        "unhealthy after {took:?}, budget {budget:?}"
    );
    let counts = spread(port, 20, &[]).await;
    assert_eq!(counts.get("b"), None, "b still gets traffic: {counts:?}");

    let metrics = s.admin("/metrics").await;
    let healthy_b = format!(
        "sluice_backend_healthy{{pool=\"default/hc\",backend=\"{}\"}}",
        b.addr()
    );
    assert_eq!(metric_value(&metrics, &healthy_b), Some(0.0), "{metrics}");
    let failures_b = format!(
        "sluice_health_checks_total{{pool=\"default/hc\",backend=\"{}\",result=\"failure\"}}",
        b.addr()
    );
    assert!(
        metric_value(&metrics, &failures_b).is_some_and(|n| n >= 3.0),
        "{metrics}"
    );

    b.set_health(StatusCode::OK);
    let budget = Duration::from_millis(200 * 2 * 11 / 10) + Duration::from_secs(1);
    let took = wait_health(&s, "default/hc", b.addr(), true)
        .await
        .expect("b never returned");
    assert!(took <= budget, "healthy after {took:?}, budget {budget:?}");
    let counts = spread(port, 10, &[]).await;
    assert_eq!(
        counts.get("b"),
        Some(&5),
        "b is back in rotation: {counts:?}"
    );
    let metrics = s.admin("/metrics").await;
    assert_eq!(metric_value(&metrics, &healthy_b), Some(1.0), "{metrics}");
    let successes_a = format!(
        "sluice_health_checks_total{{pool=\"default/hc\",backend=\"{}\",result=\"success\"}}",
        a.addr()
    );
    assert!(
        metric_value(&metrics, &successes_a).is_some_and(|n| n > 0.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn tcp_checked_endpoint_whose_port_closes_leaves_rotation() {
    let (a, b) = (echo("a"), echo("b"));
    let b_addr = b.addr();
    let port = free_port();
    let check =
        "  healthCheck: {protocol: TCP, interval: 200ms, timeout: 150ms, unhealthyThreshold: 2}\n";
    let s = Sluice::start(&pool("tcp", port, "RoundRobin", &eps(&[&a, &b]), check));
    assert_eq!(spread(port, 10, &[]).await.len(), 2);

    drop(b);
    let budget = Duration::from_millis(200 * 2 * 11 / 10) + Duration::from_secs(1);
    let took = wait_health(&s, "default/tcp", b_addr, false)
        .await
        .expect("closed port never turned unhealthy");
    assert!(
        took <= budget,
        "unhealthy after {took:?}, budget {budget:?}"
    );
    for _ in 0..20 {
        let r = try_get(port, "/").await.expect("request failed");
        assert_eq!((r.status, r.backend().as_str()), (StatusCode::OK, "a"));
    }
}

// ---------------------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn retries_hide_a_dead_endpoint_that_health_checks_have_not_caught_yet() {
    let (a, b) = (echo("a"), echo("b"));
    let b_addr = b.addr();
    let port = free_port();
    let extra = "  healthCheck: {protocol: TCP, interval: 60s}\n  retry: {attempts: 2}\n";
    let s = Sluice::start(&pool("retry", port, "RoundRobin", &eps(&[&a, &b]), extra));
    // Pooled upstream connections to b exist when it dies.
    assert_eq!(spread(port, 10, &[]).await.len(), 2);
    drop(b);

    let mut errors = Vec::new();
    let mut backends = BTreeMap::<String, usize>::new();
    for i in 0..200 {
        match try_get(port, &format!("/r{i}")).await {
            Ok(r) if r.status == StatusCode::OK => *backends.entry(r.backend()).or_default() += 1,
            Ok(r) => errors.push(format!("{i}: {} {}", r.status, r.body.trim())),
            Err(e) => errors.push(format!("{i}: {e}")),
        }
    }
    assert!(
        errors.is_empty(),
        "{} errors: {:?}\n{}",
        errors.len(),
        &errors[..errors.len().min(10)],
        s.admin("/metrics").await
    );
    assert_eq!(backends.get("a"), Some(&200), "{backends:?}");
    let retries = s
        .metric("sluice_retries_total{pool=\"default/retry\"}")
        .await;
    assert!(retries.is_some_and(|n| n > 0.0), "retries: {retries:?}");
    // The 60 s health interval has not noticed: the retries did the work.
    assert_eq!(
        s.health_of("default/retry").await.get(&b_addr.to_string()),
        Some(&true)
    );
}

#[tokio::test]
async fn with_two_of_three_endpoints_refusing_connections_two_retries_always_find_the_live_one() {
    let live = echo("live");
    // Nothing listens on these: every connect is refused, as by a terminated pod.
    let dead = [free_port(), free_port()];
    let mut endpoints = vec![(live.addr(), 1)];
    endpoints.extend(dead.map(|p| (SocketAddr::from(([127, 0, 0, 1], p)), 1)));
    let port = free_port();
    // No health check or outlier detection to take the dead ones out, and a budget that
    // never runs out: only the choice of endpoint on each retry decides.
    let extra = "  retry: {attempts: 2, retryOn: [ConnectFailure], backoff: {base: 1ms, max: 1ms}, budget: {ratio: 1, minPerSecond: 100000}}\n";
    let s = Sluice::start(&pool("scaledown", port, "RoundRobin", &endpoints, extra));

    let mut errors = Vec::new();
    for i in 0..150 {
        match try_get(port, &format!("/r{i}")).await {
            Ok(r) if r.status == StatusCode::OK => assert_eq!(r.backend(), "live"),
            Ok(r) => errors.push(format!("{i}: {} {}", r.status, r.body.trim())),
            Err(e) => errors.push(format!("{i}: {e}")),
        }
    }
    assert!(
        errors.is_empty(),
        "{} of 150 failed: {:?}\n{}",
        errors.len(),
        &errors[..errors.len().min(10)],
        s.admin("/metrics").await
    );
}

/// A backend that reads one request (head and `Content-Length` body), counts it in
/// `seen`, then resets the connection without answering.
async fn resetting_backend(seen: Arc<AtomicUsize>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let mut wanted = None;
                while wanted.is_none_or(|w| buf.len() < w) {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    if wanted.is_none()
                        && let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n")
                    {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        wanted = Some(end + 4 + length);
                    }
                }
                seen.fetch_add(1, Ordering::SeqCst);
                let _ = stream.set_zero_linger();
                drop(stream);
            });
        }
    });
    addr
}

#[tokio::test]
async fn post_whose_body_the_backend_read_before_resetting_is_not_replayed() {
    let seen = Arc::new(AtomicUsize::new(0));
    let r1 = resetting_backend(seen.clone()).await;
    let r2 = resetting_backend(seen.clone()).await;
    let port = free_port();
    let _s = Sluice::start(&pool(
        "noreplay",
        port,
        "RoundRobin",
        &[(r1, 1), (r2, 1)],
        "  retry: {attempts: 2}\n",
    ));
    let r = try_request(port, "POST", "/order", b"hello", Duration::from_secs(5))
        .await
        .expect("an answer");
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seen.load(Ordering::SeqCst), 1, "the POST was replayed");
}

#[tokio::test]
async fn idempotent_requests_with_small_bodies_are_replayed_after_a_reset() {
    let seen = Arc::new(AtomicUsize::new(0));
    let r1 = resetting_backend(seen.clone()).await;
    let r2 = resetting_backend(seen.clone()).await;
    let port = free_port();
    let s = Sluice::start(&pool(
        "replay",
        port,
        "RoundRobin",
        &[(r1, 1), (r2, 1)],
        "  retry: {attempts: 2}\n",
    ));
    for (method, body) in [("GET", &b""[..]), ("PUT", &b"hello"[..])] {
        let before = seen.load(Ordering::SeqCst);
        let r = try_request(port, method, "/item", body, Duration::from_secs(5))
            .await
            .expect("an answer");
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{method}");
        assert_eq!(
            seen.load(Ordering::SeqCst) - before,
            3,
            "{method}: 1 + 2 attempts"
        );
    }
    let retries = s
        .metric("sluice_retries_total{pool=\"default/replay\"}")
        .await;
    assert_eq!(retries, Some(4.0));
}

// ---------------------------------------------------------------------------------------
// Outlier detection
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn backend_answering_502_is_ejected_for_base_ejection_time_then_returns() {
    let (a, b) = (echo("a"), echo("b"));
    b.set_status(Some(StatusCode::BAD_GATEWAY));
    let port = free_port();
    let extra = "  outlierDetection: {consecutiveFailures: 3, baseEjectionTime: 2s, maxEjectionPercent: 50}\n";
    let s = Sluice::start(&pool("outlier", port, "RoundRobin", &eps(&[&a, &b]), extra));

    // Until b's third 502 it is in rotation.
    let mut failures = 0;
    for _ in 0..20 {
        let r = try_get(port, "/").await.unwrap();
        if r.backend() == "b" {
            assert_eq!(r.status, StatusCode::BAD_GATEWAY);
            failures += 1;
            if failures == 3 {
                break;
            }
        }
    }
    assert_eq!(failures, 3);
    let ejected_at = Instant::now();
    assert_eq!(
        s.health_of("default/outlier")
            .await
            .get(&b.addr().to_string()),
        Some(&false),
        "ejected b shows unhealthy in /pools"
    );
    b.set_status(None);

    // For baseEjectionTime (minus a margin for the request in flight) b gets nothing.
    let mut during = 0;
    while ejected_at.elapsed() < Duration::from_millis(1800) {
        let r = try_get(port, "/").await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.backend(),
            "a",
            "ejected b got traffic after {:?}",
            ejected_at.elapsed()
        );
        during += 1;
    }
    assert!(during > 10, "only {during} requests while ejected");

    // Then it returns by itself.
    let mut returned = None;
    while ejected_at.elapsed() < Duration::from_secs(5) {
        if try_get(port, "/").await.unwrap().backend() == "b" {
            returned = Some(ejected_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let returned = returned.expect("b never returned");
    assert!(
        returned >= Duration::from_millis(1900),
        "back too early: {returned:?}"
    );
    assert!(
        returned <= Duration::from_secs(3),
        "back too late: {returned:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Live reload
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct LoopStats {
    ok: AtomicUsize,
    failures: parking_lot::Mutex<Vec<String>>,
}

/// Requests until `stop`: on one keep-alive connection (`keep_alive`) or a new connection
/// each time. A keep-alive connection that is lost counts as a failure.
async fn client_loop(port: u16, keep_alive: bool, stop: Arc<AtomicBool>, stats: Arc<LoopStats>) {
    let mut conn: Option<KeepAlive> = None;
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let path = format!("/loop/{i}");
        let result = if keep_alive {
            if conn.is_none() {
                conn = Some(KeepAlive::connect(port).await.unwrap());
            }
            let r = conn.as_mut().unwrap().get(&path).await;
            if r.is_err() {
                conn = None;
            }
            r
        } else {
            try_get(port, &path).await
        };
        match result {
            Ok(r) if r.status == StatusCode::OK => {
                stats.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) => stats
                .failures
                .lock()
                .push(format!("{path} keep_alive={keep_alive}: {}", r.status)),
            Err(e) => stats
                .failures
                .lock()
                .push(format!("{path} keep_alive={keep_alive}: {e}")),
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn five_reloads_under_traffic_drop_nothing_and_an_invalid_one_changes_nothing() {
    let (a, b, c, d) = (echo("a"), echo("b"), echo("c"), echo("d"));
    let port = free_port();
    let yaml = |set: &[&EchoServer]| pool("live", port, "RoundRobin", &eps(set), "");
    let s = Sluice::start(&yaml(&[&a, &b]));

    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(LoopStats::default());
    let clients: Vec<_> = [true, true, false, false]
        .into_iter()
        .map(|keep_alive| tokio::spawn(client_loop(port, keep_alive, stop.clone(), stats.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let steps: [(&[&EchoServer], bool); 5] = [
        (&[&a, &b, &c], true),
        (&[&b, &c], false),
        (&[&c, &d], true),
        (&[&a, &d], false),
        (&[&a, &b, &c, &d], true),
    ];
    for (n, (set, atomic)) in steps.into_iter().enumerate() {
        let want = addrs(set);
        s.write_config(&yaml(set), atomic);
        let want_ref = &want;
        let s_ref = &s;
        let took = eventually(Duration::from_secs(3), move || async move {
            members(s_ref, "default/live").await == *want_ref
        })
        .await
        .unwrap_or_else(|| panic!("reload {n} (atomic={atomic}) not applied"));
        assert!(took < Duration::from_secs(2), "reload {n} took {took:?}");
        // New requests only reach the new set (and all of it; other clients interleave).
        let names: BTreeSet<String> = spread(port, 40, &[]).await.into_keys().collect();
        let expected: BTreeSet<String> = ["a", "b", "c", "d"]
            .into_iter()
            .zip([&a, &b, &c, &d])
            .filter(|(_, e)| want.contains(&e.addr().to_string()))
            .map(|(n, _)| n.to_owned())
            .collect();
        assert_eq!(names, expected, "after reload {n}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // An invalid file: refused as a whole, the running configuration keeps serving.
    let failures = "sluice_config_reloads_total{result=\"failure\"}";
    let before = s.metric(failures).await.unwrap_or(0.0);
    let bad = yaml(&[&a]) + "  healthCheck: {interval: 5x}\n";
    s.write_config(&bad, true);
    let s_ref = &s;
    eventually(Duration::from_secs(3), move || async move {
        s_ref.metric(failures).await.unwrap_or(0.0) > before
    })
    .await
    .expect("the invalid reload was not counted as a failure");
    // SIGHUP reloads too (and refuses the same file again).
    s.signal("HUP");
    eventually(Duration::from_secs(3), move || async move {
        s_ref.metric(failures).await.unwrap_or(0.0) > before + 1.0
    })
    .await
    .expect("SIGHUP did not reload");
    assert_eq!(members(&s, "default/live").await, addrs(&[&a, &b, &c, &d]));
    let names = spread(port, 40, &[]).await;
    assert_eq!(names.len(), 4, "{names:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;

    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let failures = stats.failures.lock().clone();
    let ok = stats.ok.load(Ordering::Relaxed);
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        ok + failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(ok > 200, "only {ok} requests went through");
}

// ---------------------------------------------------------------------------------------
// Draining and shutdown
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn request_in_flight_to_an_endpoint_removed_by_reload_completes() {
    let (a, b) = (echo("a"), echo("b"));
    let port = free_port();
    let s = Sluice::start(&pool("drain", port, "RoundRobin", &eps(&[&b]), ""));
    let started = Instant::now();
    let slow = tokio::spawn(try_request(
        port,
        "GET",
        "/delay/2000",
        b"",
        Duration::from_secs(6),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.write_config(&pool("drain", port, "RoundRobin", &eps(&[&a]), ""), true);
    let want = addrs(&[&a]);
    let (s_ref, want_ref) = (&s, &want);
    eventually(Duration::from_secs(3), move || async move {
        members(s_ref, "default/drain").await == *want_ref
    })
    .await
    .expect("reload not applied");
    assert_eq!(try_get(port, "/").await.unwrap().backend(), "a");

    let r = slow.await.unwrap().expect("in-flight request failed");
    assert_eq!((r.status, r.backend().as_str()), (StatusCode::OK, "b"));
    assert!(started.elapsed() >= Duration::from_secs(2));
}

#[tokio::test]
async fn request_still_waiting_when_the_drain_timeout_passes_is_cut_with_502() {
    let (a, b) = (echo("a"), echo("b"));
    let port = free_port();
    let drain = "  drainTimeout: 500ms\n";
    let s = Sluice::start(&pool("cut", port, "RoundRobin", &eps(&[&b]), drain));
    let started = Instant::now();
    let slow = tokio::spawn(try_request(
        port,
        "GET",
        "/delay/5000",
        b"",
        Duration::from_secs(8),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.write_config(&pool("cut", port, "RoundRobin", &eps(&[&a]), drain), true);
    let r = slow.await.unwrap();
    let waited = started.elapsed();
    // Cut at the drain timeout (0.3 s + 0.5 s + reload), long before the backend's 5 s.
    assert!(waited < Duration::from_secs(3), "cut only after {waited:?}");
    match r {
        Ok(resp) => assert_eq!(resp.status, StatusCode::BAD_GATEWAY),
        Err(e) => panic!("the client should get an answer, got {e}"),
    }
    assert_eq!(try_get(port, "/").await.unwrap().backend(), "a");
}

#[tokio::test]
async fn sigterm_lets_a_request_in_flight_finish_marks_it_last_and_exits_0() {
    let a = echo("a");
    let port = free_port();
    let mut s = Sluice::start(&pool("term", port, "RoundRobin", &eps(&[&a]), ""));
    // A keep-alive connection (no `Connection: close`): its answer must say it is the last.
    let exchange = tokio::spawn(raw_exchange(
        port,
        b"GET /delay/1000 HTTP/1.1\r\nHost: app.test\r\n\r\n",
        Duration::from_secs(5),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.signal("TERM");
    let (raw, closed) = exchange.await.unwrap();
    assert!(
        raw.starts_with("HTTP/1.1 200"),
        "in-flight request was cut: {raw}"
    );
    assert!(raw.contains("a GET /delay/1000"), "{raw}");
    assert!(
        raw.contains("connection: close"),
        "last answer not marked: {raw}"
    );
    assert!(closed, "connection left open while draining");
    let status = s.wait_exit(Duration::from_secs(5)).expect("still running");
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn sigterm_drains_even_while_a_metrics_scraper_keeps_its_connection_open() {
    let a = echo("a");
    let port = free_port();
    let mut s = Sluice::start(&pool("scraped", port, "RoundRobin", &eps(&[&a]), ""));
    // A Prometheus-style scraper: one keep-alive connection to the admin port.
    let mut scraper = tokio::net::TcpStream::connect(s.admin).await.unwrap();
    scraper
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = scraper.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    let slow = tokio::spawn(try_request(
        port,
        "GET",
        "/delay/1000",
        b"",
        Duration::from_secs(5),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.signal("TERM");
    let r = slow.await.unwrap().expect("in-flight request was cut");
    assert_eq!(r.status, StatusCode::OK);
    let status = s.wait_exit(Duration::from_secs(5)).expect("still running");
    assert!(status.success(), "exit status {status}");
    drop(scraper);
}

// ---------------------------------------------------------------------------------------
// Slow and idle clients
// ---------------------------------------------------------------------------------------

/// Opens a connection that sends `start` and then one byte of `drip` every `every`,
/// never finishing the head. Returns when the peer closes or `limit` passes: the time it
/// stayed open, or `None` if it was still open.
async fn drip(
    port: u16,
    start: &'static [u8],
    every: Duration,
    limit: Duration,
) -> Option<Duration> {
    let began = Instant::now();
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        if wr.write_all(start).await.is_err() {
            return;
        }
        loop {
            tokio::time::sleep(every).await;
            if wr.write_all(b"a").await.is_err() {
                return;
            }
        }
    });
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(limit, async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok();
    writer.abort();
    closed.then(|| began.elapsed())
}

/// CPU seconds (user + system) the process has used so far, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the full line: 12 and 13 after the name.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / clock_ticks()
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

#[tokio::test]
async fn slowloris_connections_do_not_stop_normal_requests() {
    let a = echo("a");
    let port = free_port();
    let s = Sluice::start(&pool("loris", port, "RoundRobin", &eps(&[&a]), ""));
    let cpu_before = cpu_seconds(s.pid());
    let wall = Instant::now();
    let mut lorises = Vec::new();
    for i in 0..150 {
        // Half send an HTTP/1 head a byte at a time, half stall inside the h2 preface.
        let (start, every): (&'static [u8], _) = if i % 2 == 0 {
            (
                b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Slow: ",
                Duration::from_millis(500),
            )
        } else {
            (b"PRI * HTTP/2", Duration::from_secs(100))
        };
        lorises.push(tokio::spawn(drip(
            port,
            start,
            every,
            Duration::from_secs(30),
        )));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    for i in 0..50 {
        let t = Instant::now();
        let r = try_get(port, &format!("/normal/{i}"))
            .await
            .expect("normal request failed");
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "request {i} took {:?}",
            t.elapsed()
        );
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "50 requests took {took:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu = cpu_seconds(s.pid()) - cpu_before;
    eprintln!(
        "slowloris: 50 requests in {took:?} beside 150 slow connections; sluice used {cpu:.2} CPU s over {:?} wall",
        wall.elapsed()
    );
    for l in lorises {
        l.abort();
    }
}

#[tokio::test]
async fn connections_that_never_finish_a_head_are_closed_at_the_header_deadline() {
    let a = echo("a");
    let port = free_port();
    let _s = Sluice::start(&pool("idle", port, "RoundRobin", &eps(&[&a]), ""));
    let limit = Duration::from_secs(15);
    let silent = tokio::spawn(drip(port, b"", Duration::from_secs(100), limit));
    let slow_h1 = tokio::spawn(drip(
        port,
        b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Slow: ",
        Duration::from_millis(300),
        limit,
    ));
    for (name, task) in [("silent", silent), ("slow head", slow_h1)] {
        let open = task
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{name}: still open after {limit:?}"));
        assert!(
            open >= Duration::from_secs(9) && open <= Duration::from_secs(12),
            "{name}: closed after {open:?}, expected the 10 s header deadline"
        );
    }
}

/// Sends `GET /` after each pause on one keep-alive connection to `port`, then returns how
/// long after the last answer sluice closed it (`None`: still open after `limit`).
async fn idle_close_after(port: u16, pauses: &[Duration], limit: Duration) -> Option<Duration> {
    let mut client = KeepAlive::connect(port).await.unwrap();
    for (i, pause) in pauses.iter().enumerate() {
        tokio::time::sleep(*pause).await;
        let resp = client.get("/").await.unwrap_or_else(|e| {
            panic!("port {port}: request {i} after a {pause:?} pause failed: {e}")
        });
        assert_eq!(resp.status, StatusCode::OK);
    }
    client.closed_within(limit).await
}

#[tokio::test]
async fn idle_keep_alive_connection_closes_at_its_pools_idle_timeout_after_its_last_answer() {
    let a = echo("a");
    let (short, long) = (free_port(), free_port());
    let _s = Sluice::start(&format!(
        "{}  timeouts: {{idle: 3s}}\n{}  timeouts: {{idle: 13s}}\n",
        pool("short", short, "RoundRobin", &eps(&[&a]), ""),
        pool("long", long, "RoundRobin", &eps(&[&a]), "")
    ));
    // Short: answers 2 s apart keep the connection past 3 s from its start; it closes 3 s
    // after the last one. Long: a client idle for 11 s, past the 10 s header deadline,
    // still finds its connection open; but one that sent part of its next head must
    // finish it within the header deadline (here pipelined behind a whole request).
    let short_pauses = [
        Duration::ZERO,
        Duration::from_secs(2),
        Duration::from_secs(2),
    ];
    let long_pauses = [Duration::ZERO, Duration::from_secs(11)];
    // A connection hyper serves (here after a chunked upload) keeps hyper's 10 s.
    let (short, long_idle, partial, handed_over) = tokio::join!(
        idle_close_after(short, &short_pauses, Duration::from_secs(10)),
        idle_close_after(long, &long_pauses, Duration::from_secs(20)),
        drip(
            long,
            b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\nGET / HTTP/1.1\r\nHost: app",
            Duration::from_secs(100),
            Duration::from_secs(20),
        ),
        drip(
            long,
            b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
            Duration::from_secs(100),
            Duration::from_secs(20),
        ),
    );
    for (name, closed) in [
        ("a partial head after an answer", partial),
        ("a connection handed to hyper", handed_over),
    ] {
        let closed = closed.unwrap_or_else(|| panic!("{name}: still open after 20 s"));
        assert!(
            closed >= Duration::from_millis(9500) && closed <= Duration::from_millis(11500),
            "{name}: closed after {closed:?}, expected 10 s"
        );
    }
    for (name, closed, idle) in [("short", short, 3), ("long", long_idle, 13)] {
        let closed = closed.unwrap_or_else(|| panic!("{name}: still open long after {idle} s"));
        let idle = Duration::from_secs(idle);
        assert!(
            closed >= idle - Duration::from_millis(500) && closed <= idle + Duration::from_secs(2),
            "{name}: closed {closed:?} after the last answer, expected its pool's idle timeout {idle:?}"
        );
    }
}

#[tokio::test]
async fn idle_h2_connection_closes_at_its_pools_idle_timeout_but_not_while_a_stream_is_open() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    let (fast, slow) = (echo("f"), slow_echo("s", Duration::from_secs(3)));
    let port = free_port();
    let idle = |doc: PoolDoc| doc.spec(|s| s.timeouts = Some(PoolDoc::block("{idle: 2s}")));
    let _s = Sluice::start(&file(&[
        idle(PoolDoc::http("fast", port).endpoints(&[fast.addr()])),
        idle(
            PoolDoc::http("slow", port)
                .path_prefix("/slow")
                .endpoints(&[slow.addr()]),
        ),
    ]));
    let (mut sender, conn) = h2c(port).await;
    // A quick answer, then one that takes 3 s, longer than the idle timeout: an open
    // stream is not idleness, and the timeout counts from the end of the last one.
    for path in ["/fast", "/slow"] {
        let req = http::Request::get(format!("http://app.test:{port}{path}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        resp.into_body().collect().await.unwrap();
    }
    let answered = tokio::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("h2 connection still open 10 s after its last answer")
        .unwrap()
        .expect("h2 connection ended with an error instead of a GOAWAY");
    let idle = answered.elapsed();
    assert!(
        idle >= Duration::from_millis(1500) && idle <= Duration::from_secs(4),
        "h2 connection closed {idle:?} after its last answer, expected the 2 s idle timeout"
    );
}

#[tokio::test]
async fn connection_that_stalls_inside_the_h2_preface_is_closed_at_the_header_deadline() {
    let a = echo("a");
    let port = free_port();
    let s = Sluice::start(&pool("preface", port, "RoundRobin", &eps(&[&a]), ""));
    let cpu_before = cpu_seconds(s.pid());
    let open = drip(
        port,
        b"PRI * HTTP/2",
        Duration::from_secs(100),
        Duration::from_secs(15),
    )
    .await;
    let cpu = cpu_seconds(s.pid()) - cpu_before;
    eprintln!("stalled h2 preface: open {open:?}, sluice used {cpu:.2} CPU s meanwhile");
    let open = open.expect("still open after 15 s");
    assert!(
        open >= Duration::from_secs(9) && open <= Duration::from_secs(12),
        "closed after {open:?}, expected the 10 s header deadline"
    );
}
