//! Active health checks: one small task per (pool, endpoint), probing over HTTP, TCP or
//! gRPC (see [`grpc`](super::grpc)).
//!
//! Probes are deliberately minimal (one request line, `Connection: close`, read the status
//! line) so a single core can check thousands of endpoints per second. Intervals are
//! jittered by +-10% so endpoints added together do not probe in lockstep.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::grpc::GrpcProbe;
use super::thresholds::Thresholds;
use crate::config::{HealthCheckConfig, HealthCheckKind, HostMatch};
use crate::pool::{Endpoint, Pool, Unavailable};

/// A health change of one endpoint, for logs, Kubernetes Events and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// `namespace/name` of the pool.
    pub pool: String,
    /// The endpoint.
    pub endpoint: SocketAddr,
    /// Its new health.
    pub healthy: bool,
    /// What the last check saw.
    pub reason: String,
}

type Key = (String, SocketAddr);

struct Checker {
    config: HealthCheckConfig,
    endpoint: Arc<Endpoint>,
    /// The pool's upstream TLS configuration the probe was built with (gRPC checks).
    tls: Option<Arc<rustls::ClientConfig>>,
    stop: CancellationToken,
}

/// Runs and reconciles the checker tasks of every pool.
pub struct HealthChecker {
    checkers: Mutex<HashMap<Key, Checker>>,
    events: broadcast::Sender<Transition>,
}

impl std::fmt::Debug for HealthChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthChecker")
            .field("checkers", &self.checkers.lock().len())
            .finish()
    }
}

impl Default for HealthChecker {
    fn default() -> Self {
        HealthChecker {
            checkers: Mutex::new(HashMap::new()),
            events: broadcast::channel(1024).0,
        }
    }
}

impl HealthChecker {
    /// Health transitions as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<Transition> {
        self.events.subscribe()
    }

    /// Number of running checkers.
    pub fn len(&self) -> usize {
        self.checkers.lock().len()
    }

    /// True when no checker runs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts, keeps or stops checkers so that exactly the members of pools with a
    /// `healthCheck` are probed. Must run inside a tokio runtime (it spawns the probes).
    pub fn sync(&self, pools: &[Arc<Pool>]) {
        let mut checkers = self.checkers.lock();
        let mut wanted: HashMap<Key, ()> = HashMap::new();
        for pool in pools {
            let snapshot = pool.snapshot();
            let Some(hc) = &snapshot.config.health_check else {
                // Checks turned off: nothing keeps an endpoint out any more.
                let mut changed = false;
                for ep in &snapshot.members {
                    changed |= ep.set(Unavailable::Unhealthy, false);
                }
                if changed {
                    pool.refresh();
                }
                continue;
            };
            let host = snapshot.config.listener.hosts.iter().find_map(|h| match h {
                HostMatch::Exact(h) => Some(h.clone()),
                HostMatch::Wildcard(_) => None,
            });
            for ep in &snapshot.members {
                let key = (pool.name().to_owned(), ep.address());
                wanted.insert(key.clone(), ());
                let tls = snapshot.upstream_tls.clone();
                if let Some(existing) = checkers.get(&key) {
                    let same_tls = match (&existing.tls, &tls) {
                        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                        (a, b) => a.is_none() && b.is_none(),
                    };
                    if existing.config == *hc && Arc::ptr_eq(&existing.endpoint, ep) && same_tls {
                        continue;
                    }
                    existing.stop.cancel();
                }
                let stop = CancellationToken::new();
                let server_name = snapshot
                    .config
                    .upstream
                    .tls
                    .as_ref()
                    .and_then(|t| t.server_name.clone());
                let probe = Probe::new(
                    hc,
                    ep.address(),
                    host.as_deref(),
                    tls.clone().map(|t| (t, server_name)),
                );
                let span = tracing::info_span!("health", pool = pool.name(), backend = ep.label());
                tokio::spawn(
                    run(
                        probe,
                        hc.clone(),
                        pool.clone(),
                        ep.clone(),
                        self.events.clone(),
                        stop.clone(),
                    )
                    .instrument(span),
                );
                checkers.insert(
                    key,
                    Checker {
                        config: hc.clone(),
                        endpoint: ep.clone(),
                        tls,
                        stop,
                    },
                );
            }
        }
        checkers.retain(|key, checker| {
            let keep = wanted.contains_key(key);
            if !keep {
                checker.stop.cancel();
            }
            keep
        });
    }

    /// Stops every checker.
    pub fn stop(&self) {
        for (_, c) in self.checkers.lock().drain() {
            c.stop.cancel();
        }
    }
}

/// One endpoint's probe, prepared once.
struct Probe {
    addr: SocketAddr,
    timeout: Duration,
    http: Option<HttpProbe>,
    grpc: Option<GrpcProbe>,
}

/// The request bytes of an HTTP probe and the status ranges that pass.
struct HttpProbe {
    request: Box<[u8]>,
    expected: Vec<(u16, u16)>,
}

impl Probe {
    /// `tls` (the pool's upstream TLS configuration and server name) only matters to gRPC
    /// checks, which speak HTTP/2 over it.
    fn new(
        hc: &HealthCheckConfig,
        endpoint: SocketAddr,
        host: Option<&str>,
        tls: Option<(Arc<rustls::ClientConfig>, Option<String>)>,
    ) -> Self {
        let addr = SocketAddr::new(endpoint.ip(), hc.port.unwrap_or(endpoint.port()));
        let grpc = matches!(hc.kind, HealthCheckKind::Grpc).then(|| {
            let authority = host.map_or_else(|| addr.to_string(), str::to_owned);
            GrpcProbe::new(addr, &authority, tls)
        });
        let http = match &hc.kind {
            HealthCheckKind::Http { path, expected } => {
                let host = host.map_or_else(|| addr.to_string(), str::to_owned);
                let request = format!(
                    "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: sluice-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
                );
                Some(HttpProbe {
                    request: request.into_bytes().into_boxed_slice(),
                    expected: expected.clone(),
                })
            }
            HealthCheckKind::Tcp | HealthCheckKind::Grpc => None,
        };
        Probe {
            addr,
            timeout: hc.timeout,
            http,
            grpc,
        }
    }

    /// `Ok` when the endpoint passes; `Err` says what failed.
    async fn check(&self) -> Result<(), String> {
        match tokio::time::timeout(self.timeout, self.attempt()).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }

    async fn attempt(&self) -> Result<(), String> {
        if let Some(grpc) = &self.grpc {
            return grpc.check(self.addr).await;
        }
        let mut stream = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let Some(HttpProbe { request, expected }) = &self.http else {
            return Ok(());
        };
        stream
            .write_all(request)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut buf = [0u8; 256];
        let mut len = 0;
        loop {
            let n = stream
                .read(&mut buf[len..])
                .await
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                break;
            }
            len += n;
            if buf[..len].contains(&b'\n') || len == buf.len() {
                break;
            }
        }
        let status = parse_status(&buf[..len]).ok_or_else(|| "not an HTTP response".to_owned())?;
        if expected.iter().any(|&(lo, hi)| (lo..=hi).contains(&status)) {
            Ok(())
        } else {
            Err(format!("status {status}"))
        }
    }
}

/// The status code of an HTTP/1.x status line.
fn parse_status(line: &[u8]) -> Option<u16> {
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let code = rest.get(2..5)?;
    if rest.get(1) != Some(&b' ') || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

async fn run(
    probe: Probe,
    config: HealthCheckConfig,
    pool: Arc<Pool>,
    endpoint: Arc<Endpoint>,
    events: broadcast::Sender<Transition>,
    stop: CancellationToken,
) {
    use std::sync::atomic::Ordering;
    // Health history survives a checker restart (config edit): start from the flag.
    let mut state = Thresholds::default();
    let resumed = endpoint.stats.checks_ok.load(Ordering::Relaxed)
        + endpoint.stats.checks_failed.load(Ordering::Relaxed)
        > 0;
    if resumed {
        state.resume(!endpoint.has(Unavailable::Unhealthy));
    }
    loop {
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            r = probe.check() => r,
        };
        let pass = result.is_ok();
        let counter = if pass {
            &endpoint.stats.checks_ok
        } else {
            &endpoint.stats.checks_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(healthy) =
            state.record(pass, config.healthy_threshold, config.unhealthy_threshold)
        {
            let reason = result.err().unwrap_or_else(|| "check passed".to_owned());
            if healthy {
                tracing::info!(reason, "endpoint healthy");
            } else {
                tracing::warn!(reason, "endpoint unhealthy");
            }
            if endpoint.set(Unavailable::Unhealthy, !healthy) {
                pool.refresh();
            }
            let _ = events.send(Transition {
                pool: pool.name().to_owned(),
                endpoint: endpoint.address(),
                healthy,
                reason,
            });
        }
        let jitter = 0.9 + fastrand::f64() * 0.2;
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(config.interval.mul_f64(jitter)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_is_parsed_strictly() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.0 503 Unavailable\r\n"), Some(503));
        assert_eq!(parse_status(b"HTTP/1.1 20"), None);
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH"), None);
    }
}
