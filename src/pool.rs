//! ServerPool: a pool's endpoint set, its health state and the snapshot the proxy reads.
//!
//! Writers (reload, health checker, outlier detector) serialize on a small writer mutex
//! and publish a new immutable [`Snapshot`] with one atomic swap. Readers (every request)
//! do a single `ArcSwap` load: no lock, no config clone. Endpoints are `Arc`s shared by
//! successive snapshots, so their live state survives reloads.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::balance::{self, Balancer, PickContext};
use crate::config::{
    AffinityConfig, Algorithm, HashKey, PoolConfig, UpstreamProtocol, client_config,
};

mod endpoint;
mod stats;
mod tried;
mod upstream;

pub use endpoint::{ActiveGuard, Endpoint, OutlierState, Unavailable, now_ns};
pub use stats::{DURATION_BUCKETS, EndpointStats, Histogram, PoolStats, StatusCounts, UNROUTED};
pub use tried::{MAX_TRIED, Tried};
pub use upstream::{
    BoxError, ClientBody, ClientConns, UpstreamConn, UpstreamPool, set_worker_slots,
};

/// What the proxy reads for one pool: immutable once published.
#[derive(Debug)]
pub struct Snapshot {
    /// The pool's validated configuration.
    pub config: Arc<PoolConfig>,
    /// Every member that is not draining, in configuration order.
    pub members: Vec<Arc<Endpoint>>,
    /// Members that take new work (healthy, not ejected), or all members when the pool
    /// fails open.
    pub available: Vec<Arc<Endpoint>>,
    /// The algorithm, built over `available`.
    pub balancer: Box<dyn Balancer>,
    /// Cookie affinity: endpoint token -> index in `available`.
    sticky: std::collections::HashMap<u64, usize>,
    /// The rustls client configuration for `upstream.tls`, built once per configuration.
    pub upstream_tls: Option<Arc<rustls::ClientConfig>>,
}

impl Snapshot {
    /// The opaque affinity token of `endpoint` in this pool: a hash of the pool name and
    /// the address, so every replica agrees on it and the cookie never shows the address.
    pub fn affinity_token(&self, endpoint: &Endpoint) -> u64 {
        affinity_token(&self.config.name, endpoint)
    }

    /// Takes a slot on the endpoint a cookie token names, when it is available and usable.
    pub fn pick_sticky(&self, token: u64, skip: &Tried) -> Option<ActiveGuard> {
        let &i = self.sticky.get(&token)?;
        let endpoint = &self.available[i];
        if skip.contains(endpoint) {
            return None;
        }
        endpoint.try_begin(self.config.max_connections_per_endpoint)
    }

    /// Picks an endpoint for new work and takes one of its connection slots.
    ///
    /// `skip` excludes endpoints (those a retry moves away from). `None` when every
    /// available endpoint is excluded or at `maxConnectionsPerEndpoint`.
    pub fn pick(&self, hash: Option<u64>, skip: &Tried) -> Option<ActiveGuard> {
        let limit = self.config.max_connections_per_endpoint;
        let usable = |e: &Endpoint| self.usable(e, skip);
        let ctx = PickContext {
            hash,
            usable: &usable,
        };
        // A slot can be taken between the check and the increment; retry a few times.
        for _ in 0..4 {
            let i = self.balancer.pick(&self.available, &ctx)?;
            if let Some(guard) = self.available[i].try_begin(limit) {
                return Some(guard);
            }
        }
        None
    }

    /// Whether a pick may choose `e`: not in `skip` (the endpoints this request already
    /// tried) and below the per-endpoint connection limit.
    pub fn usable(&self, e: &Endpoint, skip: &Tried) -> bool {
        !skip.contains(e)
            && self
                .config
                .max_connections_per_endpoint
                .is_none_or(|l| e.active() < l)
    }
}

/// A pool: its current snapshot plus the endpoints still draining after removal.
#[derive(Debug)]
pub struct Pool {
    name: String,
    snapshot: ArcSwap<Snapshot>,
    writer: Mutex<Draining>,
    /// Pool-level metrics.
    pub stats: PoolStats,
    /// `rateLimit` buckets, kept across configuration changes (allocated on first use).
    pub rate_limiter: crate::policy::RateLimiter,
    /// `limit-connections` slots per client address (Ingress annotation).
    pub conn_limiter: crate::policy::ConnLimiter,
}

/// Endpoints removed from the pool that may still have in-flight work.
#[derive(Debug, Default)]
struct Draining {
    endpoints: Vec<Arc<Endpoint>>,
}

impl Pool {
    /// A pool serving `config` with fresh endpoints.
    pub fn new(config: Arc<PoolConfig>) -> Self {
        let members: Vec<Arc<Endpoint>> = config
            .endpoints
            .iter()
            .filter(|e| e.ready)
            .map(|e| Arc::new(Endpoint::new(e.address, e.weight)))
            .collect();
        let tls = upstream_tls(&config);
        let snapshot = build_snapshot(config.clone(), members, tls);
        Pool {
            name: config.name.clone(),
            snapshot: ArcSwap::from_pointee(snapshot),
            writer: Mutex::new(Draining::default()),
            stats: PoolStats::default(),
            rate_limiter: crate::policy::RateLimiter::default(),
            conn_limiter: crate::policy::ConnLimiter::default(),
        }
    }

    /// `namespace/name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current snapshot (one atomic load; cheap enough for every request).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Applies a new configuration of the same pool: endpoints with an address already
    /// present keep their state; new ones start fresh; removed ones start draining.
    /// Returns the endpoints that were removed (to be cut at `drainTimeout`).
    pub fn update(&self, config: Arc<PoolConfig>) -> Vec<Arc<Endpoint>> {
        let mut draining = self.writer.lock();
        let old = self.snapshot.load_full();
        let mut previous: Vec<Arc<Endpoint>> = old.members.clone();
        let mut members = Vec::with_capacity(config.endpoints.len());
        for e in &config.endpoints {
            // A member keeps its state; an endpoint that was draining comes back fresh,
            // because its drain deadline is already running.
            let ep = match previous.iter().position(|p| p.address() == e.address) {
                Some(i) => previous.swap_remove(i),
                None => Arc::new(Endpoint::new(e.address, e.weight)),
            };
            ep.set_weight(e.weight);
            members.push((ep, e.ready));
        }
        // Endpoints that left, and members now marked not ready (terminating), drain.
        let mut removed = previous;
        for (ep, ready) in &members {
            if !ready {
                removed.push(ep.clone());
            }
        }
        let members: Vec<Arc<Endpoint>> = members
            .into_iter()
            .filter(|(_, ready)| *ready)
            .map(|(ep, _)| ep)
            .collect();
        for ep in &removed {
            ep.set(Unavailable::Draining, true);
            ep.upstream.clear();
            ep.client.clear();
            schedule_cut(ep.clone(), config.drain_timeout);
        }
        draining
            .endpoints
            .retain(|e| e.active() > 0 && !e.cut.is_cancelled());
        draining.endpoints.extend(removed.iter().cloned());
        let tls = if old.config.upstream == config.upstream {
            old.upstream_tls.clone()
        } else {
            upstream_tls(&config)
        };
        self.snapshot
            .store(Arc::new(build_snapshot(config, members, tls)));
        removed
    }

    /// Republishes the snapshot after a health or ejection change of a member.
    pub fn refresh(&self) {
        let _draining = self.writer.lock();
        let old = self.snapshot.load_full();
        self.snapshot.store(Arc::new(build_snapshot(
            old.config.clone(),
            old.members.clone(),
            old.upstream_tls.clone(),
        )));
    }

    /// Forgets draining endpoints whose work is done or was cut; returns how many remain.
    pub fn reap_drained(&self) -> usize {
        let mut draining = self.writer.lock();
        draining
            .endpoints
            .retain(|e| e.active() > 0 && !e.cut.is_cancelled());
        draining.endpoints.len()
    }

    /// Members plus draining endpoints, for `/pools` and status.
    pub fn all_endpoints(&self) -> Vec<Arc<Endpoint>> {
        let draining = self.writer.lock();
        let mut all = self.snapshot.load().members.clone();
        all.extend(draining.endpoints.iter().cloned());
        all
    }

    /// Looks a member up by address.
    pub fn member(&self, address: SocketAddr) -> Option<Arc<Endpoint>> {
        self.snapshot
            .load()
            .members
            .iter()
            .find(|e| e.address() == address)
            .cloned()
    }
}

/// Cuts a draining endpoint's remaining work once `timeout` has passed (when a runtime is
/// available; without one, as in plain unit tests, nothing is cut).
fn schedule_cut(endpoint: Arc<Endpoint>, timeout: std::time::Duration) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move {
            tokio::time::sleep(timeout).await;
            endpoint.cut.cancel();
        });
    }
}

fn affinity_token(pool: &str, endpoint: &Endpoint) -> u64 {
    let seed = balance::hash_key(pool.as_bytes());
    xxhash_rust::xxh3::xxh3_64_with_seed(endpoint.label().as_bytes(), seed)
}

/// The rustls client configuration of a pool with `upstream.tls`, offering by ALPN what
/// `upstream.protocol` allows. A CA that cannot be read (it was checked at load, so it
/// changed since) is logged and trusts nothing: handshakes then fail with 502, visibly.
fn upstream_tls(config: &PoolConfig) -> Option<Arc<rustls::ClientConfig>> {
    let tls = config.upstream.tls.as_ref()?;
    let alpn: &[&[u8]] = match config.upstream.protocol {
        UpstreamProtocol::Http1 => &[b"http/1.1"],
        UpstreamProtocol::Http2 => &[b"h2"],
        UpstreamProtocol::Auto => &[b"h2", b"http/1.1"],
    };
    let built = client_config(tls, alpn).or_else(|problem| {
        tracing::error!(
            pool = config.name,
            problem,
            "upstream TLS: CA unusable; trusting nothing"
        );
        let mut config =
            rustls::ClientConfig::builder_with_provider(crate::config::tls::provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok::<_, String>(config)
    });
    built.ok().map(Arc::new)
}

fn build_snapshot(
    config: Arc<PoolConfig>,
    members: Vec<Arc<Endpoint>>,
    upstream_tls: Option<Arc<rustls::ClientConfig>>,
) -> Snapshot {
    let mut available: Vec<Arc<Endpoint>> = members
        .iter()
        .filter(|e| e.is_available())
        .cloned()
        .collect();
    let fail_open = config.health_check.as_ref().is_some_and(|h| h.fail_open);
    if available.is_empty() && fail_open {
        available = members.clone();
    }
    // ClientIP affinity is consistent hashing on the client address, whatever the algorithm.
    let balancer = match config.affinity {
        Some(AffinityConfig::ClientIp) => {
            balance::build(&Algorithm::ConsistentHash(HashKey::ClientIp), &available)
        }
        _ => balance::build(&config.algorithm, &available),
    };
    let sticky = match config.affinity {
        Some(AffinityConfig::Cookie { .. }) => available
            .iter()
            .enumerate()
            .map(|(i, e)| (affinity_token(&config.name, e), i))
            .collect(),
        _ => std::collections::HashMap::new(),
    };
    Snapshot {
        config,
        members,
        available,
        balancer,
        sticky,
        upstream_tls,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_ca_still_gives_tls_that_trusts_nothing_never_plain_text() {
        let yaml = "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {name: web}\nspec:\n  listener: {port: 8080}\n  endpoints: []\n  upstream: {tls: {caFile: /nonexistent/ca.pem}}\n";
        let pools = crate::config::parse_documents("pools.yaml", yaml).expect("parses");
        let set =
            crate::config::validate(&crate::config::Source::File("pools.yaml".into()), &pools)
                .expect("valid: the file is read at load, not by validation");
        let tls = upstream_tls(&set.pools[0]).expect("a TLS configuration all the same");
        assert_eq!(tls.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    /// A pool from YAML with `extra` spec lines, through the file loader.
    fn pool_with(endpoints: &[u16], extra: &str) -> Pool {
        let list: Vec<String> = endpoints
            .iter()
            .map(|p| format!("{{address: \"198.18.0.1:{p}\"}}"))
            .collect();
        let yaml = format!(
            "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {{name: web, namespace: t}}\nspec:\n  listener: {{port: 8080}}\n  endpoints: [{}]\n  drainTimeout: 10s\n{extra}",
            list.join(", ")
        );
        let set = crate::config::load_text("pools.yaml", &yaml).expect("valid");
        Pool::new(set.pools[0].clone())
    }

    fn config_with(pool: &Pool, ports: &[u16]) -> Arc<PoolConfig> {
        let mut config = (*pool.snapshot().config).clone();
        config.endpoints = ports
            .iter()
            .map(|p| crate::config::EndpointConfig {
                address: SocketAddr::from(([198, 18, 0, 1], *p)),
                weight: 1,
                ready: true,
            })
            .collect();
        Arc::new(config)
    }

    #[tokio::test(start_paused = true)]
    async fn an_update_keeps_kept_endpoints_and_drains_removed_ones_until_the_drain_timeout() {
        let pool = pool_with(&[1, 2], "");
        let kept = pool
            .member(SocketAddr::from(([198, 18, 0, 1], 1)))
            .expect("member");
        kept.set(Unavailable::Ejected, true);
        let leaving = pool
            .member(SocketAddr::from(([198, 18, 0, 1], 2)))
            .expect("member");
        let in_flight = leaving.begin();

        let removed = pool.update(config_with(&pool, &[1, 3]));

        assert_eq!(removed.len(), 1);
        assert!(Arc::ptr_eq(&removed[0], &leaving));
        let still = pool.member(kept.address()).expect("kept");
        assert!(Arc::ptr_eq(&still, &kept), "same endpoint, same state");
        assert!(
            still.has(Unavailable::Ejected),
            "its ejection survives the update"
        );
        let new = pool
            .member(SocketAddr::from(([198, 18, 0, 1], 3)))
            .expect("new member");
        assert!(new.is_available(), "a new endpoint starts fresh");
        assert!(leaving.has(Unavailable::Draining));
        assert_eq!(
            pool.all_endpoints().len(),
            3,
            "a draining endpoint stays listed"
        );
        assert_eq!(pool.reap_drained(), 1, "in-flight work keeps it");

        tokio::time::sleep(std::time::Duration::from_millis(9_900)).await;
        assert!(!leaving.cut.is_cancelled(), "not cut before drainTimeout");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(leaving.cut.is_cancelled(), "cut at drainTimeout");
        drop(in_flight);
        assert_eq!(pool.reap_drained(), 0);
        assert_eq!(pool.all_endpoints().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_drained_endpoint_that_comes_back_starts_fresh() {
        let pool = pool_with(&[1, 2], "");
        let first = pool
            .member(SocketAddr::from(([198, 18, 0, 1], 2)))
            .expect("member");
        pool.update(config_with(&pool, &[1]));
        pool.update(config_with(&pool, &[1, 2]));
        let again = pool.member(first.address()).expect("member again");
        assert!(
            !Arc::ptr_eq(&first, &again),
            "its old drain deadline is still running"
        );
        assert!(again.is_available());
    }
}
