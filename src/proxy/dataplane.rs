//! The one apply path both producers (file loader, controller) use: a validated
//! [`ConfigSet`] in, listeners and pools updated with nothing dropped.
//!
//! Pools are matched by name and updated in place, so endpoints they keep keep their
//! state; per-port routers are rebuilt and swapped atomically; new ports bind before
//! anything else changes (a bind failure refuses the whole change); removed ports stop
//! accepting and their connections drain for the longest `drainTimeout` of their pools.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use tokio_util::task::TaskTracker;

use super::http::Listener;
use super::router::Router;
use super::server::{Drain, HttpAcceptor, Workers, accept_loop, bind_reuseport};
use super::tcp::TcpAcceptor;
use super::telemetry::AccessLog;
use crate::config::{ConfigSet, PoolConfig, Protocol};
use crate::health::HealthChecker;
use crate::pool::Pool;

/// Why a configuration could not be applied (the running one keeps serving).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A new listener could not bind.
    #[error("pool {pool}: spec.listener.port: cannot listen on {addr}: {source}")]
    Bind {
        /// The pool that asked for the port.
        pool: String,
        /// The address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// What a port serves.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PortKind {
    Http,
    Tcp(String),
}

struct Port {
    kind: PortKind,
    http: Option<Arc<Listener>>,
    drain: Drain,
    drain_timeout: Duration,
}

#[derive(Default)]
struct State {
    pools: HashMap<String, Arc<Pool>>,
    ports: BTreeMap<u16, Port>,
}

/// Options fixed for the life of the process.
#[derive(Debug, Clone)]
pub struct DataplaneOptions {
    /// Address pool listeners bind (`--bind`).
    pub bind: IpAddr,
    /// Access log, when `--access-log` is given.
    pub access_log: Option<AccessLog>,
}

/// Listeners, pools and routes currently served.
pub struct Dataplane {
    workers: Workers,
    options: DataplaneOptions,
    tracker: TaskTracker,
    state: Mutex<State>,
    pools: ArcSwap<Vec<Arc<Pool>>>,
    health: HealthChecker,
}

impl std::fmt::Debug for Dataplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataplane")
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

impl Dataplane {
    /// A data plane with no pools yet, running on `workers`.
    pub fn new(workers: Workers, options: DataplaneOptions) -> Self {
        Dataplane {
            workers,
            options,
            tracker: TaskTracker::new(),
            state: Mutex::new(State::default()),
            pools: ArcSwap::from_pointee(Vec::new()),
            health: HealthChecker::default(),
        }
    }

    /// The active health checker (subscribe to its transitions for events and status).
    pub fn health(&self) -> &HealthChecker {
        &self.health
    }

    /// Every pool served now, sorted by name (for `/pools`, metrics and health checks).
    pub fn pools(&self) -> Arc<Vec<Arc<Pool>>> {
        self.pools.load_full()
    }

    /// Ports currently listening.
    pub fn ports(&self) -> Vec<u16> {
        self.state.lock().ports.keys().copied().collect()
    }

    /// Applies `set` as a whole: all of it or, on error, none of it.
    pub fn apply(&self, set: &ConfigSet) -> Result<(), ApplyError> {
        let mut state = self.state.lock();

        // Decide the shape of every port first, then bind what is new before changing anything.
        let mut wanted: BTreeMap<u16, (PortKind, &Arc<PoolConfig>)> = BTreeMap::new();
        for cfg in &set.pools {
            let kind = match cfg.protocol {
                Protocol::Http => PortKind::Http,
                Protocol::Tcp => PortKind::Tcp(cfg.name.clone()),
            };
            wanted.entry(cfg.listener.port).or_insert((kind, cfg));
        }
        let mut bound: HashMap<u16, Vec<std::net::TcpListener>> = HashMap::new();
        for (&port, (kind, cfg)) in &wanted {
            if state.ports.get(&port).is_some_and(|p| &p.kind == kind) {
                continue;
            }
            let addr = SocketAddr::new(self.options.bind, port);
            let mut sockets = Vec::new();
            for _ in self.workers.handles() {
                let socket = bind_reuseport(addr).map_err(|source| ApplyError::Bind {
                    pool: cfg.name.clone(),
                    addr,
                    source,
                })?;
                sockets.push(socket);
            }
            bound.insert(port, sockets);
        }

        // Pools: update in place by name, create new ones, drain removed ones.
        let mut pools = HashMap::with_capacity(set.pools.len());
        for cfg in &set.pools {
            let pool = match state.pools.remove(&cfg.name) {
                Some(existing) => {
                    if *existing.snapshot().config != **cfg {
                        existing.update(cfg.clone());
                    }
                    existing
                }
                None => Arc::new(Pool::new(cfg.clone())),
            };
            pools.insert(cfg.name.clone(), pool);
        }
        for (_, removed) in state.pools.drain() {
            let mut cfg = (*removed.snapshot().config).clone();
            cfg.endpoints.clear();
            removed.update(Arc::new(cfg));
        }

        // Routers per HTTP port.
        let mut routers: HashMap<u16, Router> = HashMap::new();
        let mut drain_timeouts: HashMap<u16, Duration> = HashMap::new();
        for cfg in &set.pools {
            let dt = drain_timeouts.entry(cfg.listener.port).or_default();
            *dt = (*dt).max(cfg.drain_timeout);
            if cfg.protocol == Protocol::Http {
                let pool = pools[&cfg.name].clone();
                routers.entry(cfg.listener.port).or_default().add(
                    &cfg.listener.hosts,
                    &cfg.listener.path_prefix,
                    pool,
                );
            }
        }

        // Stop ports that go away or change kind.
        let stale: Vec<u16> = state
            .ports
            .iter()
            .filter(|(port, p)| wanted.get(port).is_none_or(|(kind, _)| kind != &p.kind))
            .map(|(&port, _)| port)
            .collect();
        for port in stale {
            if let Some(old) = state.ports.remove(&port) {
                tracing::info!(port, "listener removed, draining");
                stop_port(old);
            }
        }

        // Update kept ports, start new ones.
        for (port, (kind, cfg)) in wanted {
            let timeout = drain_timeouts.get(&port).copied().unwrap_or_default();
            if let Some(existing) = state.ports.get_mut(&port) {
                existing.drain_timeout = timeout;
                if let Some(listener) = &existing.http {
                    listener
                        .router
                        .store(Arc::new(routers.remove(&port).unwrap_or_default()));
                }
                continue;
            }
            let Some(sockets) = bound.remove(&port) else {
                continue;
            };
            let drain = Drain::default();
            let http = match &kind {
                PortKind::Http => {
                    let listener = Arc::new(Listener {
                        router: ArcSwap::from_pointee(routers.remove(&port).unwrap_or_default()),
                        https: false,
                        access_log: self.options.access_log,
                    });
                    let acceptor = Arc::new(HttpAcceptor::new(listener.clone()));
                    self.spawn_accept(sockets, acceptor, &drain);
                    Some(listener)
                }
                PortKind::Tcp(name) => {
                    let acceptor = Arc::new(TcpAcceptor {
                        pool: pools[name].clone(),
                        access_log: self.options.access_log,
                    });
                    self.spawn_accept(sockets, acceptor, &drain);
                    None
                }
            };
            tracing::info!(port, pool = %cfg.name, protocol = cfg.protocol.as_str(), "listening");
            state.ports.insert(
                port,
                Port {
                    kind,
                    http,
                    drain,
                    drain_timeout: timeout,
                },
            );
        }

        let mut list: Vec<Arc<Pool>> = pools.values().cloned().collect();
        list.sort_by(|a, b| a.name().cmp(b.name()));
        self.health.sync(&list);
        self.pools.store(Arc::new(list));
        state.pools = pools;
        Ok(())
    }

    fn spawn_accept<A: super::server::Acceptor>(
        &self,
        sockets: Vec<std::net::TcpListener>,
        acceptor: Arc<A>,
        drain: &Drain,
    ) {
        for (socket, handle) in sockets.into_iter().zip(self.workers.handles()) {
            let tracker = self.tracker.clone();
            let task = accept_loop(socket, acceptor.clone(), drain.clone(), tracker.clone());
            handle.spawn(tracker.track_future(task));
        }
    }

    /// Stops accepting everywhere, lets in-flight work finish for up to the longest
    /// `drainTimeout`, then cuts what is left and stops the workers.
    pub async fn shutdown(self) {
        let longest = {
            let mut state = self.state.lock();
            let longest = state
                .ports
                .values()
                .map(|p| p.drain_timeout)
                .max()
                .unwrap_or_default();
            for (_, port) in std::mem::take(&mut state.ports) {
                port.drain.stop.cancel();
                let cut = port.drain.cut.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(longest).await;
                    cut.cancel();
                });
            }
            longest
        };
        self.health.stop();
        self.tracker.close();
        if tokio::time::timeout(longest + Duration::from_secs(1), self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("drain timeout reached with work still open");
        }
        self.workers.stop();
    }
}

/// Stops accepting on a port and cuts its connections after its drain timeout.
fn stop_port(port: Port) {
    port.drain.stop.cancel();
    let cut = port.drain.cut;
    let timeout = port.drain_timeout;
    tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        cut.cancel();
    });
}
