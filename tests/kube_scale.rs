//! The controller at scale, against a real kube-apiserver (issue 21's table): N BackendPools
//! on one listener port, one host each, each naming its own Service with a two-endpoint
//! EndpointSlice, no health checks. Measures and reports, as one Markdown table row:
//!
//! - `/readyz` after start (objects already stored, API server warm);
//! - time until every pool's status says `Ready=True`;
//! - controller RSS and CPU over 10 s of steady state, and the API requests per second it
//!   makes then (the API server's own `apiserver_request_total`, WATCH excluded, minus the
//!   same window measured before the controller started);
//! - EndpointSlice change -> traffic: 20 slices switched to a third backend while 100 other
//!   slices change per second, each timed until a request through sluice reaches it;
//! - failed requests during all of it (a client sends to pools whose slices churn).
//!
//! Targets asserted: `/readyz` < 5 s, all statuses within 60 s, change p99 < 1 s, RSS <
//! 300 MiB, steady CPU < 2 %, no failed request. `SLUICE_SCALE_POOLS` sets N (default 1000).
//!
//! Ignored by default; needs the control-plane binaries and the private network namespace:
//! `hack/scale.sh [N]`.

#![allow(clippy::disallowed_types)]

mod common;
mod support {
    #[path = "kube.rs"]
    pub mod kube;
}

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{EchoServer, free_port};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;
use sluice::api::BackendPool;
use support::kube::KubeCluster;

/// Slices switched to the third backend and timed.
const CHANGES: usize = 20;
/// Other slices changed per second while those are timed.
const CHURN_PER_SECOND: u64 = 100;
/// Concurrent API requests while creating the objects.
const CREATE_CONCURRENCY: usize = 32;

fn pools_wanted() -> usize {
    std::env::var("SLUICE_SCALE_POOLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

fn host(i: usize) -> String {
    format!("p{i}.scale.test")
}

/// Three echo backends on one port number (EndpointSlice ports are per slice).
fn backends() -> (Vec<EchoServer>, u16) {
    for _ in 0..20 {
        let a = EchoServer::start("pod-a", "198.18.0.2:0".parse().unwrap()).unwrap();
        let port = a.addr().port();
        let others: Vec<_> = [("pod-b", 3), ("pod-c", 4)]
            .iter()
            .filter_map(|(name, last)| {
                EchoServer::start(name, format!("198.18.0.{last}:{port}").parse().unwrap()).ok()
            })
            .collect();
        if others.len() == 2 {
            let mut all = vec![a];
            all.extend(others);
            return (all, port);
        }
    }
    panic!("no common free port on 198.18.0.2-4");
}

fn slice_endpoints(addresses: &[&str]) -> serde_json::Value {
    addresses
        .iter()
        .map(|a| json!({"addresses": [a], "conditions": {"ready": true}}))
        .collect()
}

async fn create_one(client: Client, ns: String, i: usize, port: u16, listen: u16) {
    let name = format!("s{i}");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80, "targetPort": port}]},
    }))
    .unwrap();
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": format!("{name}-x"), "namespace": ns,
            "labels": {"kubernetes.io/service-name": name,
                       "endpointslice.kubernetes.io/managed-by": "scale"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": slice_endpoints(&["198.18.0.2", "198.18.0.3"]),
    }))
    .unwrap();
    let pool: BackendPool = serde_json::from_value(json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "BackendPool",
        "metadata": {"name": format!("p{i}"), "namespace": ns},
        "spec": {"listener": {"port": listen, "hosts": [host(i)]},
                 "service": {"name": name, "port": "http"}},
    }))
    .unwrap();
    let pp = PostParams::default();
    Api::<Service>::namespaced(client.clone(), &ns)
        .create(&pp, &svc)
        .await
        .unwrap();
    Api::<EndpointSlice>::namespaced(client.clone(), &ns)
        .create(&pp, &slice)
        .await
        .unwrap();
    Api::<BackendPool>::namespaced(client, &ns)
        .create(&pp, &pool)
        .await
        .unwrap();
}

async fn create_all(client: &Client, ns: &str, n: usize, port: u16, listen: u16) {
    futures_util::stream::iter(0..n)
        .map(|i| create_one(client.clone(), ns.to_owned(), i, port, listen))
        .buffer_unordered(CREATE_CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
}

async fn set_slice(client: &Client, ns: &str, i: usize, addresses: &[&str]) {
    let patch = json!({"endpoints": slice_endpoints(addresses)});
    Api::<EndpointSlice>::namespaced(client.clone(), ns)
        .patch(
            &format!("s{i}-x"),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
}

async fn ready_statuses(client: &Client, ns: &str) -> usize {
    // From the API server's watch cache: a quorum read of every pool would load etcd and
    // slow the very writes being counted.
    let pools = Api::<BackendPool>::namespaced(client.clone(), ns)
        .list(&ListParams::default().match_any())
        .await
        .unwrap();
    pools
        .items
        .iter()
        .filter(|p| {
            p.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        })
        .count()
}

/// The backend that answered a GET for `host` through sluice on `port`, `None` on any
/// failure (refused, non-200, timeout).
fn backend_for(port: u16, host: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    if out.get(9..12) != Some("200") {
        return None;
    }
    out.lines()
        .find_map(|l| l.strip_prefix("x-backend: "))
        .map(str::to_owned)
}

/// Total non-WATCH requests the API server has served, from its own metrics.
fn api_requests(kube: &KubeCluster) -> f64 {
    let metrics = kube.kubectl_ok(&["get", "--raw=/metrics"]);
    metrics
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{") && !l.contains("verb=\"WATCH\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// User + system CPU seconds of `pid` so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / clock_ticks()
}

fn clock_ticks() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kib / 1024.0
}

struct Controller {
    child: Child,
    admin: u16,
    log: std::path::PathBuf,
}

impl Controller {
    fn start(kube: &KubeCluster, ns: &str) -> Controller {
        let admin = free_port();
        let log = kube.dir.path().join("sluice-scale.log");
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["controller", "--namespace", ns, "--leader-elect"])
            .args(["--leader-namespace", ns, "--bind", "127.0.0.1"])
            .args(["--workers", "1", "--log-level", "warn", "--admin-listen"])
            .arg(format!("127.0.0.1:{admin}"))
            .env("KUBECONFIG", &kube.kubeconfig)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Controller { child, admin, log }
    }

    fn ready(&self) -> bool {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.admin)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.starts_with("HTTP/1.1 200")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Sends GETs to pools `0..churned` (whose slices churn) until `stop`, counting failures.
fn steady_client(
    listen: u16,
    churned: usize,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(300);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            let i = fastrand::usize(..churned);
            sent.fetch_add(1, Ordering::Relaxed);
            if backend_for(listen, &host(i)).is_none() {
                failed.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    })
}

/// Changes `CHURN_PER_SECOND` random slices among `0..churned` per second until `stop`,
/// always leaving at least one ready endpoint (a or b, never c).
async fn churn(client: Client, ns: String, churned: usize, stop: Arc<AtomicBool>) -> u64 {
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / CHURN_PER_SECOND));
    let mut changed = 0;
    let sets: [&[&str]; 3] = [
        &["198.18.0.2"],
        &["198.18.0.3"],
        &["198.18.0.2", "198.18.0.3"],
    ];
    while !stop.load(Ordering::Relaxed) && changed < 60 * CHURN_PER_SECOND {
        tick.tick().await;
        let i = fastrand::usize(..churned);
        set_slice(&client, &ns, i, sets[fastrand::usize(..3)]).await;
        changed += 1;
    }
    changed
}

/// Switches each timed slice to backend c and waits until sluice sends its host there.
async fn timed_changes(client: &Client, ns: &str, listen: u16, first: usize) -> Vec<Duration> {
    let mut took = Vec::new();
    for i in first..first + CHANGES {
        let started = Instant::now();
        set_slice(client, ns, i, &["198.18.0.4"]).await;
        let h = host(i);
        let arrived = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if backend_for(listen, &h).as_deref() == Some("pod-c") {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            false
        })
        .await
        .unwrap();
        assert!(arrived, "change {i} never reached traffic");
        took.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    took.sort();
    took
}

async fn client_for(kube: &KubeCluster) -> Client {
    let kubeconfig = Kubeconfig::read_from(&kube.kubeconfig).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// CPU % of one core and API requests per second over `window`, API requests net of
/// `baseline_rps` (the API server's own background work).
fn steady_state(kube: &KubeCluster, pid: u32, window: Duration, baseline_rps: f64) -> (f64, f64) {
    let (cpu0, api0) = (cpu_seconds(pid), api_requests(kube));
    std::thread::sleep(window);
    let (cpu1, api1) = (cpu_seconds(pid), api_requests(kube));
    let secs = window.as_secs_f64();
    (
        100.0 * (cpu1 - cpu0) / secs,
        ((api1 - api0) / secs - baseline_rps).max(0.0),
    )
}

#[test]
#[ignore = "needs SLUICE_KUBE_BINS and hack/in-netns.sh; run with hack/scale.sh"]
fn controller_at_scale_meets_its_targets() {
    let Some(kube) = KubeCluster::start_or_skip("controller_at_scale_meets_its_targets") else {
        return;
    };
    kube.install_crd();
    let n = pools_wanted();
    assert!(
        n > CHANGES * 2,
        "SLUICE_SCALE_POOLS must be > {}",
        CHANGES * 2
    );
    let ns = kube.new_namespace("scale");
    let (_backends, port) = backends();
    let listen = free_port();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(client_for(&kube));

    let created = Instant::now();
    rt.block_on(create_all(&client, &ns, n, port, listen));
    eprintln!(
        "created {n} pools, services and slices in {:?}",
        created.elapsed()
    );
    let window = Duration::from_secs(10);
    let (_, baseline_rps) = steady_state(&kube, std::process::id(), window, 0.0);

    let c = Controller::start(&kube, &ns);
    let started = Instant::now();
    while !c.ready() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not ready within 120 s\n{}",
            c.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let readyz = started.elapsed();

    let mut ready = 0;
    while ready < n && started.elapsed() < Duration::from_secs(180) {
        std::thread::sleep(Duration::from_secs(if n > 2000 { 5 } else { 2 }));
        ready = rt.block_on(ready_statuses(&client, &ns));
    }
    let statuses = started.elapsed();

    std::thread::sleep(Duration::from_secs(5));
    let (cpu, api_rps) = steady_state(&kube, c.child.id(), window, baseline_rps);
    let rss = rss_mib(c.child.id());

    let churned = n - CHANGES;
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let steady = steady_client(listen, churned, stop.clone(), sent.clone(), failed.clone());
    let churn = rt.spawn(churn(client.clone(), ns.clone(), churned, stop.clone()));
    let took = rt.block_on(timed_changes(&client, &ns, listen, churned));
    stop.store(true, Ordering::Relaxed);
    let churned_slices = rt.block_on(churn).unwrap();
    steady.join().unwrap();
    let rss_after = rss_mib(c.child.id());

    let (p50, p99, max) = (
        percentile(&took, 0.5),
        percentile(&took, 0.99),
        took[took.len() - 1],
    );
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let row = format!(
        "| {n} | {readyz:.1?} | {ready}/{n} in {statuses:.1?} | {rss:.0} MiB ({rss_after:.0} MiB after churn) | {cpu:.1}% | {api_rps:.1}/s | p50 {p50:.0?}, p99 {p99:.0?}, max {max:.0?} ({churned_slices} other slices changed) | {failed}/{sent} |"
    );
    eprintln!(
        "| N pools | /readyz after start | statuses Ready | controller RSS | CPU steady | API req/s steady | slice change -> traffic (20) | failed requests |\n|---|---|---|---|---|---|---|---|\n{row}"
    );

    assert_eq!(failed, 0, "failed requests during churn\n{row}");
    assert!(readyz < Duration::from_secs(5), "{row}");
    assert_eq!(ready, n, "{row}\n{}", c.log());
    assert!(statuses < Duration::from_secs(60), "{row}");
    assert!(p99 < Duration::from_secs(1), "{row}");
    assert!(rss_after < 300.0, "{row}");
    assert!(cpu < 2.0, "{row}");
}
