//! Measurement, run by hand: how many endpoints the health checker handles per core.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::common::*;
use super::cpu_seconds;

// ---------------------------------------------------------------------------------------
// Measurement (run by hand): health checks per core
// ---------------------------------------------------------------------------------------

/// Serves `n` loopback addresses (127.0.x.y, one port) that answer any connection with a
/// minimal HTTP 200 and close. Runs on its own thread until the process ends.
fn many_http_endpoints(n: usize) -> Vec<SocketAddr> {
    let port = free_port();
    let addrs: Vec<SocketAddr> = (0..n)
        .map(|i| SocketAddr::from(([127, 0, (i / 250) as u8 + 1, (i % 250) as u8 + 1], port)))
        .collect();
    let listeners: Vec<std::net::TcpListener> = addrs
        .iter()
        .map(|a| {
            let l = std::net::TcpListener::bind(a).unwrap();
            l.set_nonblocking(true).unwrap();
            l
        })
        .collect();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            for l in listeners {
                let l = tokio::net::TcpListener::from_std(l).unwrap();
                tokio::spawn(async move {
                    while let Ok((mut s, _)) = l.accept().await {
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                            .await;
                    }
                });
            }
            std::future::pending::<()>().await;
        });
    });
    addrs
}

#[tokio::test]
#[ignore = "measurement: cargo test --test resilience -- --ignored --nocapture health_checker \
            (SLUICE_BIN=target/release/sluice to measure a release build, \
            SLUICE_HC_ENDPOINTS=N for another count)"]
async fn health_checker_endpoints_per_core_at_1s_interval() {
    let n: usize = std::env::var("SLUICE_HC_ENDPOINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let endpoints: Vec<(SocketAddr, u32)> =
        many_http_endpoints(n).into_iter().map(|a| (a, 1)).collect();
    for (kind, check) in [
        (
            "HTTP",
            "  healthCheck: {protocol: HTTP, path: /healthz, interval: 1s, timeout: 1s}\n",
        ),
        (
            "TCP",
            "  healthCheck: {protocol: TCP, interval: 1s, timeout: 1s}\n",
        ),
    ] {
        let port = free_port();
        let s = Sluice::start(&pool("many", port, "RoundRobin", &endpoints, check));
        tokio::time::sleep(Duration::from_secs(3)).await;
        let checks = |m: &str| -> f64 {
            m.lines()
                .filter(|l| l.starts_with("sluice_health_checks_total{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        let c0 = checks(&s.admin("/metrics").await);
        let cpu0 = cpu_seconds(s.pid());
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(10)).await;
        let cpu1 = cpu_seconds(s.pid());
        let elapsed = t0.elapsed().as_secs_f64();
        let metrics = s.admin("/metrics").await;
        let c1 = checks(&metrics);
        let failures: f64 = metrics
            .lines()
            .filter(|l| l.starts_with("sluice_health_checks_total{") && l.contains("failure"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        let rate = (c1 - c0) / elapsed;
        let core = (cpu1 - cpu0) / elapsed;
        let healthy = s
            .health_of("default/many")
            .await
            .values()
            .filter(|h| **h)
            .count();
        eprintln!(
            "{kind} checks: {n} endpoints at 1 s: {rate:.0} checks/s using {:.1}% of one core \
             => ~{:.0} endpoints per core; {healthy}/{n} healthy, {} failed checks in total",
            core * 100.0,
            rate / core.max(1e-9),
            failures as u64
        );
    }
}
