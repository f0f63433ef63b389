//! sluice's `/metrics` as Prometheus's own tools see it, on the real binary under load:
//! `promtool check metrics` accepts every scrape, the chart's alert rules pass
//! `promtool test rules`, and a real Prometheus (loopback only, temporary storage, 1 s
//! scrapes) answers every query of the chart's Grafana dashboard with data and fires the
//! reload alert after a refused change.
//!
//! The tools come from the Debian package `prometheus`. Without them each test says so and
//! passes, unless `SLUICE_REQUIRE_PROMETHEUS=1` (what `.ci/run` sets after installing them).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;

const DASHBOARD: &str = "charts/sluice/dashboards/sluice-backendpool.json";
const RULES: &str = "charts/sluice/alerts/sluice.rules.yaml";
const RULE_TESTS: &str = "tests/prometheus/alerts.test.yaml";
/// The pool the dashboard is checked for (the `pool` template variable).
const POOL: &str = "default/web";
/// What `$__rate_interval` becomes: several 1 s scrapes, and the whole load phase.
const RATE_INTERVAL: &str = "15s";
/// What Prometheus sends (2.x), so the test scrapes what Prometheus gets.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `name` on `PATH`, or `None` (the test is skipped) unless `SLUICE_REQUIRE_PROMETHEUS=1`.
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("SLUICE_REQUIRE_PROMETHEUS").as_deref() != Ok("1"),
            "SLUICE_REQUIRE_PROMETHEUS=1 but {name} is not on PATH (apt-get install prometheus)"
        );
        eprintln!("skipping: {name} is not on PATH (apt-get install prometheus)");
    }
    found
}

/// The pools every test serves: `default/web` (HTTP, two echo backends and one dead address,
/// active health checks, retries on 5xx) and `default/db` (TCP to the first backend).
struct Setup {
    sluice: Sluice,
    backends: [EchoServer; 2],
    dead: SocketAddr,
    http: u16,
    tcp: u16,
}

impl Setup {
    fn start() -> Setup {
        Setup::start_with(&[])
    }

    /// Like [`Setup::start`], with extra `sluice serve` arguments.
    fn start_with(args: &[&str]) -> Setup {
        let backends = [echo("a"), echo("b")];
        let dead: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let (http, tcp) = (free_port(), free_port());
        let yaml = config(&backends, dead, http, tcp, true, 1);
        Setup {
            sluice: Sluice::start_with(&yaml, args),
            backends,
            dead,
            http,
            tcp,
        }
    }

    /// The configuration; `with_b` lists backend b, with weight `weight_b`.
    fn config(&self, with_b: bool, weight_b: u32) -> String {
        config(
            &self.backends,
            self.dead,
            self.http,
            self.tcp,
            with_b,
            weight_b,
        )
    }
}

fn config(
    backends: &[EchoServer; 2],
    dead: SocketAddr,
    http: u16,
    tcp: u16,
    with_b: bool,
    weight_b: u32,
) -> String {
    let mut endpoints = vec![(backends[0].addr(), 1), (dead, 1)];
    if with_b {
        endpoints.push((backends[1].addr(), weight_b));
    }
    let extra = "  healthCheck: {protocol: HTTP, path: /healthz, interval: 250ms, timeout: 200ms, \
                 healthyThreshold: 1, unhealthyThreshold: 1}\n  \
                 retry: {attempts: 1, retryOn: [\"5xx\"], backoff: {base: 1ms, max: 5ms}}\n";
    let mut yaml = pool("web", http, "RoundRobin", &endpoints, extra);
    yaml.push_str(&format!(
        "\n---\napiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {{name: db, namespace: default}}\n\
         spec:\n  protocol: TCP\n  listener: {{port: {tcp}}}\n  endpoints:\n    - {{address: \"{}\"}}\n",
        backends[0].addr()
    ));
    yaml
}

/// Bounded load on `port` until `stop` or `limit`: keep-alive GETs of ok, slow, 503 (retried)
/// and 404 answers from two clients, at most 3,000 requests each. Returns requests answered.
fn load(port: u16, stop: Arc<AtomicBool>, limit: Duration) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let answered = Arc::new(AtomicU64::new(0));
        let deadline = tokio::time::Instant::now() + limit;
        let mut clients = Vec::new();
        for _ in 0..2 {
            let (stop, answered) = (stop.clone(), answered.clone());
            clients.push(tokio::spawn(async move {
                let paths = ["/", "/delay/3", "/", "/status/503", "/", "/status/404"];
                let mut conn = None;
                for i in 0..3_000 {
                    if stop.load(Ordering::Relaxed) || tokio::time::Instant::now() >= deadline {
                        break;
                    }
                    if conn.is_none() {
                        conn = KeepAlive::connect(port).await.ok();
                    }
                    let Some(c) = conn.as_mut() else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    match c.get(paths[i % paths.len()]).await {
                        Ok(_) => {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => conn = None,
                    }
                }
            }));
        }
        for c in clients {
            let _ = c.await;
        }
        answered.load(Ordering::Relaxed)
    })
}

/// One TCP connection through the TCP pool, so its counter family has a sample.
async fn tcp_round_trip(port: u16) {
    let out = raw(
        port,
        b"GET /tcp HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

/// `promtool check metrics` on `text`; panics with its complaints.
fn promtool_check(promtool: &Path, text: &str) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- exposition ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A sample line: (name, labels without `le`, `le`, value).
fn sample(line: &str) -> (String, String, Option<String>, f64) {
    let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
    let (name, labels) = match series.split_once('{') {
        Some((n, l)) => (n, l.trim_end_matches('}')),
        None => (series, ""),
    };
    let mut le = None;
    let rest: Vec<&str> = labels
        .split(',')
        .filter(|l| !l.is_empty())
        .filter(|l| match l.strip_prefix("le=") {
            Some(v) => {
                le = Some(v.trim_matches('"').to_owned());
                false
            }
            None => true,
        })
        .collect();
    let value = value.parse().unwrap_or_else(|_| panic!("a number: {line}"));
    (name.to_owned(), rest.join(","), le, value)
}

/// What promtool does not check: no series twice, every sample under a `# TYPE`, and every
/// histogram cumulative with `le="+Inf"` equal to `_count`.
fn check_exposition(text: &str) {
    let mut seen = BTreeSet::new();
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut buckets: BTreeMap<(String, String), Vec<(String, f64)>> = BTreeMap::new();
    let mut counts: BTreeMap<(String, String), f64> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            typed.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        assert!(
            seen.insert(line.rsplit_once(' ').unwrap().0.to_owned()),
            "series twice: {line}"
        );
        let (name, labels, le, value) = sample(line);
        let family = [
            ("_bucket", "histogram"),
            ("_count", "histogram"),
            ("_sum", "histogram"),
        ]
        .iter()
        .find_map(|(suffix, kind)| {
            let base = name.strip_suffix(suffix)?;
            (typed.get(base).map(String::as_str) == Some(kind)).then(|| base.to_owned())
        });
        match family {
            Some(base) if name.ends_with("_bucket") => buckets
                .entry((base, labels))
                .or_default()
                .push((le.expect("a bucket has le"), value)),
            Some(base) if name.ends_with("_count") => {
                counts.insert((base, labels), value);
            }
            Some(_) => {}
            None => assert!(typed.contains_key(&name), "no # TYPE for {line}"),
        }
    }
    assert!(!buckets.is_empty(), "no histogram in\n{text}");
    for ((name, labels), b) in &buckets {
        assert!(
            b.windows(2).all(|w| w[0].1 <= w[1].1),
            "{name}{{{labels}}} buckets decrease: {b:?}"
        );
        let last = b.last().unwrap();
        assert_eq!(
            last.0, "+Inf",
            "{name}{{{labels}}} does not end with +Inf: {b:?}"
        );
        assert_eq!(
            Some(&last.1),
            counts.get(&(name.clone(), labels.clone())),
            "{name}{{{labels}}}: +Inf is not _count"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_check_metrics_passes_on_every_scrape_under_load() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let s = Setup::start();
    tcp_round_trip(s.tcp).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = load(s.http, stop.clone(), Duration::from_secs(15));
    for i in 0..8 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if i == 3 {
            s.sluice.write_config(&s.config(true, 2), true);
        }
        let text = s.sluice.admin("/metrics").await;
        check_exposition(&text);
        promtool_check(&promtool, &text);
    }
    stop.store(true, Ordering::Relaxed);
    let answered = load.await.unwrap();
    assert!(answered > 20, "only {answered} requests answered");

    let text = s.sluice.admin("/metrics").await;
    promtool_check(&promtool, &text);
    for family in [
        "sluice_requests_total",
        "sluice_request_duration_seconds",
        "sluice_tcp_connections_total",
        "sluice_active_connections",
        "sluice_in_flight_requests",
        "sluice_backend_healthy",
        "sluice_retries_total",
        "sluice_health_checks_total",
        "sluice_config_reloads_total",
        "sluice_config_apply_seconds",
        "sluice_build_info",
        "sluice_request_bytes_total",
        "sluice_response_bytes_total",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(family) && !l.starts_with('#')),
            "no {family} sample in\n{text}"
        );
    }
    // The contract's family covers both pools (as `/pools` activeConnections does); the
    // in-flight family only the HTTP pool.
    let active = |pool: &str| {
        text.lines()
            .any(|l| l.starts_with("sluice_active_connections{") && l.contains(pool))
    };
    assert!(
        active("pool=\"default/db\"") && active(&format!("pool=\"{POOL}\"")),
        "{text}"
    );
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if line.starts_with("sluice_in_flight_requests{") {
            assert!(line.contains(&format!("pool=\"{POOL}\"")), "{line}");
        }
    }
    let om = admin_accepting(s.sluice.admin, PROMETHEUS_ACCEPT).await;
    assert!(
        om.ends_with("# EOF\n"),
        "Prometheus is not answered in OpenMetrics:\n{om}"
    );
    assert!(om.contains("# TYPE sluice_requests counter"), "{om}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_removed_and_added_back_while_draining_is_one_series() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let s = Setup::start();
    let b = s.backends[1].addr().to_string();
    // Slow requests on both backends; b's stay in flight while b leaves and comes back.
    let slow: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(try_request(
                s.http,
                "GET",
                "/delay/1500",
                b"",
                Duration::from_secs(5),
            ))
        })
        .collect();
    let active = format!("sluice_in_flight_requests{{pool=\"{POOL}\",backend=\"{b}\"}}");
    assert!(
        eventually(Duration::from_secs(3), || async {
            s.sluice.metric(&active).await.unwrap_or(0.0) > 0.0
        })
        .await
        .is_some(),
        "no request in flight on b"
    );
    s.sluice.write_config(&s.config(false, 1), true);
    let pools = || async { s.sluice.pools().await.to_string() };
    assert!(
        eventually(Duration::from_secs(3), || async {
            pools().await.contains("\"draining\":true")
        })
        .await
        .is_some()
    );
    s.sluice.write_config(&s.config(true, 1), true);
    let healthy = format!("sluice_backend_healthy{{pool=\"{POOL}\",backend=\"{b}\"}}");
    assert!(
        eventually(Duration::from_secs(3), || async {
            s.sluice.metric(&healthy).await.is_some()
        })
        .await
        .is_some()
    );
    let text = s.sluice.admin("/metrics").await;
    assert!(
        pools()
            .await
            .matches(&format!("\"address\":\"{b}\""))
            .count()
            == 2,
        "b is not both draining and a member: {}",
        pools().await
    );
    check_exposition(&text);
    promtool_check(&promtool, &text);
    assert!(
        s.sluice.metric(&active).await.unwrap_or(0.0) > 0.0,
        "{text}"
    );
    for r in slow {
        let _ = r.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_backend_labels_every_family_but_backend_healthy_has_one_series_per_pool() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let s = Setup::start_with(&["--metrics-backend-labels=false"]);
    tcp_round_trip(s.tcp).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = load(s.http, stop.clone(), Duration::from_secs(10));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    assert!(load.await.unwrap() > 20);

    let text = s.sluice.admin("/metrics").await;
    check_exposition(&text);
    promtool_check(&promtool, &text);
    let samples: Vec<_> = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("backend=\""))
        .collect();
    for line in &samples {
        assert!(
            line.contains("backend=\"\"") || line.starts_with("sluice_backend_healthy{"),
            "a per-backend series: {line}\n{text}"
        );
    }
    let healthy = samples
        .iter()
        .filter(|l| l.starts_with(&format!("sluice_backend_healthy{{pool=\"{POOL}\"")))
        .count();
    assert_eq!(
        healthy, 3,
        "one health series per endpoint of {POOL}:\n{text}"
    );
    // The endpoints' answers (200) and sluice's own (503 after the dead endpoint) in one
    // family, labelled backend="".
    let ok = format!("sluice_requests_total{{pool=\"{POOL}\",backend=\"\",code=\"200\"}}");
    assert!(s.sluice.metric(&ok).await.unwrap_or(0.0) > 0.0, "{text}");
    for (family, series) in [
        ("sluice_active_connections{", 1),
        ("sluice_in_flight_requests{", 1),
        ("sluice_upstream_attempts_total{", 2),
        ("sluice_health_checks_total{", 2),
    ] {
        let n = samples
            .iter()
            .filter(|l| l.starts_with(family) && l.contains(&format!("pool=\"{POOL}\"")))
            .count();
        assert_eq!(n, series, "{family} series for {POOL}:\n{text}");
    }
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    for args in [["check", "rules", RULES], ["test", "rules", RULE_TESTS]] {
        let out = Command::new(&promtool)
            .args(args)
            .current_dir(repo())
            .output()
            .expect("promtool runs");
        assert!(
            out.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `/metrics` with an `Accept` header.
async fn admin_accepting(admin: SocketAddr, accept: &str) -> String {
    http_get(admin, "/metrics", &[("Accept", accept)]).await.1
}

/// A GET over HTTP/1.0 (no chunking, the server closes): status and body, bounded to 5 s.
async fn http_get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let work = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let mut req = format!("GET {target} HTTP/1.0\r\nHost: {addr}\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).await.ok()?;
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.ok()?;
        Some(out)
    };
    let Ok(Some(out)) = tokio::time::timeout(Duration::from_secs(5), work).await else {
        return (0, String::new());
    };
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

/// Percent-encodes a query parameter value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Prometheus on loopback with its storage in a temporary directory; killed when dropped.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(binary: &Path, target: SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s}}\n\
                 rule_files: [\"{}\"]\n\
                 scrape_configs:\n  - job_name: sluice\n    static_configs: [{{targets: [\"{target}\"]}}]\n",
                repo().join(RULES).display()
            ),
        )
        .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("prometheus starts");
        Prometheus {
            child,
            addr,
            _dir: dir,
        }
    }

    /// `/api/v1/...` as JSON (`null` when Prometheus does not answer).
    async fn api(&self, path_and_query: &str) -> serde_json::Value {
        let (_, body) = http_get(self.addr, &format!("/api/v1/{path_and_query}"), &[]).await;
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
    }

    /// An instant query's result vector.
    async fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        let answer = self.api(&format!("query?query={}", encode(expr))).await;
        assert_ne!(answer["status"], "error", "{expr}: {answer}");
        answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a query result has a sample with a finite value.
fn has_finite_value(result: &[serde_json::Value]) -> bool {
    result.iter().any(|r| {
        r["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(f64::is_finite)
    })
}

/// Every `expr` of the dashboard (rows' nested panels included) with `$pool` and
/// `$__rate_interval` substituted.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join(DASHBOARD)).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut panels: Vec<serde_json::Value> = dashboard["panels"].as_array().cloned().unwrap();
    let mut out = Vec::new();
    while let Some(panel) = panels.pop() {
        panels.extend(panel["panels"].as_array().cloned().unwrap_or_default());
        for t in panel["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("a target has an expr");
            let expr = expr
                .replace("$__rate_interval", RATE_INTERVAL)
                .replace("${pool}", POOL)
                .replace("$pool", POOL);
            assert!(!expr.contains("$pool") && !expr.contains("$__"), "{expr}");
            let title = panel["title"].as_str().unwrap_or("").to_owned();
            out.push((format!("{title} / {}", t["legendFormat"]), expr));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_answers_every_dashboard_query_and_fires_the_reload_alert() {
    let (Some(_), Some(binary)) = (tool("promtool"), tool("prometheus")) else {
        return;
    };
    let queries = dashboard_queries();
    assert!(
        queries.len() >= 12,
        "only {} dashboard queries",
        queries.len()
    );
    let s = Setup::start();
    let prom = Prometheus::start(&binary, s.sluice.admin);
    let up = || async { has_finite_value(&prom.query("up{job=\"sluice\"} == 1").await) };
    assert!(
        eventually(Duration::from_secs(20), up).await.is_some(),
        "Prometheus is not up, or never scraped sluice: {}",
        prom.api("targets").await
    );

    // Traffic, an applied change and a refused one, all inside the rate interval.
    let stop = Arc::new(AtomicBool::new(false));
    let load = load(s.http, stop.clone(), Duration::from_secs(40));
    tokio::time::sleep(Duration::from_secs(2)).await;
    s.sluice.write_config(&s.config(true, 2), true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.sluice.write_config("apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {name: bad}\nspec: {protocol: HTTP}\n", true);
    let refused = "sluice_config_reloads_total{result=\"failure\"}";
    assert!(
        eventually(Duration::from_secs(5), || async {
            s.sluice.metric(refused).await == Some(1.0)
        })
        .await
        .is_some(),
        "the bad configuration was not refused"
    );
    s.sluice.write_config(&s.config(true, 1), true);
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut missing = Vec::new();
    for (what, expr) in &queries {
        let answered = eventually(Duration::from_secs(8), || async {
            has_finite_value(&prom.query(expr).await)
        })
        .await;
        if answered.is_none() {
            missing.push(format!("{what}: {expr} -> {:?}", prom.query(expr).await));
        }
    }
    let pools = prom
        .api(&format!(
            "label/pool/values?match[]={}",
            encode("sluice_request_duration_seconds_count")
        ))
        .await;
    let firing = eventually(Duration::from_secs(8), || async {
        prom.api("alerts").await["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| {
                a["labels"]["alertname"] == "SluiceConfigReloadFailed" && a["state"] == "firing"
            })
    })
    .await;
    let rules = prom.api("rules").await;
    let targets = prom.api("targets").await;
    stop.store(true, Ordering::Relaxed);
    let answered = load.await.unwrap();

    assert!(
        missing.is_empty(),
        "dashboard queries without data:\n{}",
        missing.join("\n")
    );
    assert!(
        pools["data"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p == POOL)),
        "the pool variable's query does not list {POOL}: {pools}"
    );
    assert!(
        firing.is_some(),
        "SluiceConfigReloadFailed is not firing: {}",
        prom.api("alerts").await
    );
    let rule_list: Vec<&serde_json::Value> = rules["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .collect();
    assert_eq!(rule_list.len(), 8, "{rules}");
    for r in rule_list {
        assert_eq!(
            r["health"], "ok",
            "rule {} does not evaluate: {r}",
            r["name"]
        );
    }
    let target = &targets["data"]["activeTargets"][0];
    assert_eq!(target["health"], "up", "{targets}");
    assert_eq!(target["lastError"], "", "{targets}");
    assert!(answered > 20, "only {answered} requests answered");
}
