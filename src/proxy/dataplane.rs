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

use crate::config::{ConfigSet, ListenerClaim, PoolConfig, Protocol, RouteConfig};
use crate::health::HealthChecker;
use crate::policy::TrustedProxies;
use crate::pool::Pool;
use crate::proxy::http::Listener;
use crate::proxy::l4::tcp::TcpAcceptor;
use crate::proxy::server::{
    ConnectionLimit, Drain, HttpAcceptor, Workers, accept_loop, bind_reuseport,
};
use crate::proxy::telemetry::{AccessLog, SpanExport};
use crate::proxy::tls::{StagedCerts, TlsPort};
use crate::route::router::Router;
use crate::route::target::Target;

/// Why a configuration could not be applied (the running one keeps serving).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A TLS port's certificates could not be loaded.
    #[error("{reason} (port {port})")]
    Tls {
        /// A pool on the port.
        pool: String,
        /// The port.
        port: u16,
        /// What failed, naming the pool and file.
        reason: String,
    },
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
    /// A TCP listener names a pool the configuration does not have (a translator bug).
    #[error("{owner}: port {port} forwards to pool {pool}, which is not configured")]
    UnknownPool {
        /// Who claimed the port.
        owner: String,
        /// The port.
        port: u16,
        /// The missing pool.
        pool: String,
    },
}

/// The pool named by `cfg` taken from `existing` and updated to `cfg`, or a new one.
fn upsert(existing: &mut HashMap<String, Arc<Pool>>, cfg: Arc<PoolConfig>) -> Arc<Pool> {
    match existing.remove(&cfg.name) {
        Some(pool) => {
            // The controller hands back the same allocation for an unchanged pool.
            let current = pool.snapshot().config.clone();
            if !Arc::ptr_eq(&current, &cfg) && *current != *cfg {
                pool.update(cfg);
            }
            pool
        }
        None => Arc::new(Pool::new(cfg)),
    }
}

/// What a port serves; a change of kind rebinds the port.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PortKind {
    Http {
        tls: bool,
        proxy_protocol: bool,
    },
    Tcp {
        pool: String,
        tls: bool,
        proxy_protocol: bool,
    },
}

impl PortKind {
    /// `HTTP`, `HTTPS`, `TCP` or `TCP+TLS`, with `+PROXY` when PROXY headers are expected.
    fn describe(&self) -> &'static str {
        match self {
            PortKind::Http {
                tls: false,
                proxy_protocol: false,
            } => "HTTP",
            PortKind::Http {
                tls: true,
                proxy_protocol: false,
            } => "HTTPS",
            PortKind::Http {
                tls: false,
                proxy_protocol: true,
            } => "HTTP+PROXY",
            PortKind::Http {
                tls: true,
                proxy_protocol: true,
            } => "HTTPS+PROXY",
            PortKind::Tcp {
                tls: false,
                proxy_protocol: false,
                ..
            } => "TCP",
            PortKind::Tcp {
                tls: true,
                proxy_protocol: false,
                ..
            } => "TCP+TLS",
            PortKind::Tcp {
                tls: false,
                proxy_protocol: true,
                ..
            } => "TCP+PROXY",
            PortKind::Tcp {
                tls: true,
                proxy_protocol: true,
                ..
            } => "TCP+TLS+PROXY",
        }
    }

    fn is_http(&self) -> bool {
        matches!(self, PortKind::Http { .. })
    }

    fn tls(&self) -> bool {
        match self {
            PortKind::Http { tls, .. } | PortKind::Tcp { tls, .. } => *tls,
        }
    }
}

/// What the new configuration wants on one port.
struct PortPlan {
    kind: PortKind,
    /// Claims on the port, in pool order.
    claims: Vec<Arc<ListenerClaim>>,
    drain_timeout: Duration,
}

struct Port {
    kind: PortKind,
    /// What the HTTP router was built from, to rebuild it only when a route changed.
    routes: Vec<RouteKey>,
    http: Option<Arc<Listener>>,
    tls: Option<Arc<TlsPort>>,
    drain: Drain,
    drain_timeout: Duration,
}

/// One route as the router holds it: its configuration and the pools it resolved to.
struct RouteKey {
    config: Arc<RouteConfig>,
    pools: Vec<Arc<Pool>>,
}

impl PartialEq for RouteKey {
    fn eq(&self, other: &Self) -> bool {
        (Arc::ptr_eq(&self.config, &other.config) || self.config == other.config)
            && self.pools.len() == other.pools.len()
            && self
                .pools
                .iter()
                .zip(&other.pools)
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

/// Work prepared for a port before anything changes.
enum Prepared {
    /// Bind these sockets and serve with this TLS state.
    New(Vec<std::net::TcpListener>, Option<Arc<TlsPort>>),
    /// Keep the port; swap in these certificates if any.
    Keep(Option<StagedCerts>),
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
    /// OTLP span export, when `--otlp-endpoint` is given.
    pub spans: Option<SpanExport>,
    /// Most client connections open at once (`--max-connections`).
    pub max_connections: usize,
    /// `--trusted-proxies`: peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<TrustedProxies>,
}

/// Listeners, pools and routes currently served.
pub struct Dataplane {
    workers: Workers,
    options: DataplaneOptions,
    tracker: TaskTracker,
    state: Mutex<State>,
    pools: Arc<ArcSwap<Vec<Arc<Pool>>>>,
    health: HealthChecker,
    tls_ports: Arc<ArcSwap<Vec<Arc<TlsPort>>>>,
    cert_watch: std::sync::atomic::AtomicBool,
    limit: Arc<ConnectionLimit>,
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
        let limit = ConnectionLimit::new(options.max_connections);
        Dataplane {
            workers,
            options,
            tracker: TaskTracker::new(),
            state: Mutex::new(State::default()),
            pools: Arc::new(ArcSwap::from_pointee(Vec::new())),
            health: HealthChecker::default(),
            tls_ports: Arc::new(ArcSwap::from_pointee(Vec::new())),
            cert_watch: std::sync::atomic::AtomicBool::new(false),
            limit,
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

    /// Every served certificate's pool, server names and notAfter (all TLS ports).
    pub fn certificate_expiries(&self) -> Vec<crate::proxy::tls::CertExpiry> {
        self.tls_ports
            .load()
            .iter()
            .flat_map(|port| port.expiries())
            .collect()
    }

    /// Ports currently listening.
    pub fn ports(&self) -> Vec<u16> {
        self.state.lock().ports.keys().copied().collect()
    }

    /// Applies `set` as a whole: all of it or, on error, none of it.
    pub fn apply(&self, set: &ConfigSet) -> Result<(), ApplyError> {
        let mut state = self.state.lock();
        let plans = plan_ports(set);

        // 1. Everything that can fail: bind new ports, load certificates.
        let mut prepared: HashMap<u16, Prepared> = HashMap::new();
        for (&port, plan) in &plans {
            let first = plan.claims[0].owner.clone();
            if let PortKind::Tcp { pool, .. } = &plan.kind
                && !set.pools.iter().any(|p| p.name == *pool)
            {
                return Err(ApplyError::UnknownPool {
                    owner: first,
                    port,
                    pool: pool.clone(),
                });
            }
            let tls_error = |reason: String| ApplyError::Tls {
                pool: first.clone(),
                port,
                reason,
            };
            match state.ports.get(&port) {
                Some(existing) if existing.kind == plan.kind => {
                    let staged = match &existing.tls {
                        Some(tls) => tls.stage(&plan.claims).map_err(tls_error)?,
                        None => None,
                    };
                    prepared.insert(port, Prepared::Keep(staged));
                }
                _ => {
                    let tls = if plan.kind.tls() {
                        let alpn: &[&[u8]] = match plan.kind {
                            PortKind::Http { .. } => &[b"h2", b"http/1.1"],
                            PortKind::Tcp { .. } => &[],
                        };
                        Some(Arc::new(
                            TlsPort::new(&plan.claims, alpn).map_err(tls_error)?,
                        ))
                    } else {
                        None
                    };
                    let addr = SocketAddr::new(self.options.bind, port);
                    let mut sockets = Vec::new();
                    for _ in self.workers.handles() {
                        let socket = bind_reuseport(addr).map_err(|source| ApplyError::Bind {
                            pool: first.clone(),
                            addr,
                            source,
                        })?;
                        sockets.push(socket);
                    }
                    prepared.insert(port, Prepared::New(sockets, tls));
                }
            }
        }

        // 2. Pools: update in place by name, create new ones, drain removed ones. A
        // pool's canary backend set is a pool of its own that its route names.
        let mut pools = HashMap::with_capacity(set.pools.len());
        for cfg in &set.pools {
            let pool = upsert(&mut state.pools, cfg.clone());
            if let Some(c) = cfg.canary_pool() {
                let canary = upsert(&mut state.pools, Arc::new(c));
                pools.insert(canary.name().to_owned(), canary);
            }
            pools.insert(cfg.name.clone(), pool);
        }
        for (_, removed) in state.pools.drain() {
            let mut cfg = (*removed.snapshot().config).clone();
            cfg.endpoints.clear();
            removed.update(Arc::new(cfg));
        }

        // 3. Ports that go away or change kind stop accepting and drain.
        let stale: Vec<u16> = state
            .ports
            .iter()
            .filter(|(port, p)| plans.get(port).is_none_or(|plan| plan.kind != p.kind))
            .map(|(&port, _)| port)
            .collect();
        for port in stale {
            if let Some(old) = state.ports.remove(&port) {
                tracing::info!(port, "listener removed, draining");
                stop_port(old);
            }
        }

        // 4. Kept ports get new routes and certificates; new ports start accepting.
        for (port, plan) in plans {
            let targets: Vec<Arc<Target>> = set
                .routes
                .iter()
                .filter(|r| r.port == port && plan.kind.is_http())
                .map(|r| Arc::new(Target::new(r.clone(), |name| pools.get(name).cloned())))
                .collect();
            let routes: Vec<RouteKey> = targets
                .iter()
                .map(|t| RouteKey {
                    config: t.route.clone(),
                    pools: t.pools().cloned().collect(),
                })
                .collect();
            let router = || {
                let mut router = Router::default();
                for t in &targets {
                    let r = &t.route;
                    router.add_route(&r.hosts, &r.path, &r.matches, t.clone());
                }
                router.seal()
            };
            match prepared.remove(&port) {
                Some(Prepared::Keep(staged)) => {
                    let Some(existing) = state.ports.get_mut(&port) else {
                        continue;
                    };
                    existing.drain_timeout = plan.drain_timeout;
                    // An endpoint change leaves the routes as they are: at 10,000 routes
                    // that saves a rebuild per event.
                    if let Some(listener) = &existing.http
                        && existing.routes != routes
                    {
                        listener.router.store(Arc::new(router()));
                        existing.routes = routes;
                    }
                    if let (Some(tls), Some(staged)) = (&existing.tls, staged) {
                        tls.commit(staged);
                    }
                }
                Some(Prepared::New(sockets, tls)) => {
                    let drain = Drain::default();
                    let http = match &plan.kind {
                        PortKind::Http { proxy_protocol, .. } => {
                            let listener = Arc::new(Listener {
                                router: ArcSwap::from_pointee(router()),
                                https: tls.is_some(),
                                access_log: self.options.access_log,
                                spans: self.options.spans.clone(),
                                trusted_proxies: self.options.trusted_proxies.clone(),
                            });
                            let acceptor =
                                HttpAcceptor::new(listener.clone(), tls.clone(), *proxy_protocol);
                            self.spawn_accept(sockets, Arc::new(acceptor), &drain);
                            Some(listener)
                        }
                        PortKind::Tcp {
                            pool,
                            proxy_protocol,
                            ..
                        } => {
                            // Checked in step 1.
                            let Some(pool) = pools.get(pool) else {
                                continue;
                            };
                            let acceptor = TcpAcceptor {
                                pool: pool.clone(),
                                access_log: self.options.access_log,
                                tls: tls.clone(),
                                proxy_protocol: *proxy_protocol,
                            };
                            self.spawn_accept(sockets, Arc::new(acceptor), &drain);
                            None
                        }
                    };
                    tracing::info!(
                        port,
                        claims = plan.claims.len(),
                        kind = plan.kind.describe(),
                        "listening"
                    );
                    state.ports.insert(
                        port,
                        Port {
                            kind: plan.kind,
                            http,
                            tls,
                            drain,
                            drain_timeout: plan.drain_timeout,
                            routes,
                        },
                    );
                }
                None => {}
            }
        }

        let mut list: Vec<Arc<Pool>> = pools.values().cloned().collect();
        list.sort_by(|a, b| a.name().cmp(b.name()));
        self.health.sync(&list);
        self.pools.store(Arc::new(list));
        state.pools = pools;
        let tls: Vec<Arc<TlsPort>> = state.ports.values().filter_map(|p| p.tls.clone()).collect();
        self.tls_ports.store(Arc::new(tls));
        self.start_cert_watch();
        Ok(())
    }

    /// Once a second: reloads certificate files that changed, closes upstream connections
    /// idle past their pool's `timeouts.idle`, and forgets drained endpoints (started once).
    fn start_cert_watch(&self) {
        if self
            .cert_watch
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return;
        }
        let ports = self.tls_ports.clone();
        let pools = self.pools.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let current = ports.load_full();
                for tls in current.iter() {
                    tls.reload_if_changed();
                }
                for pool in pools.load().iter() {
                    let snapshot = pool.snapshot();
                    for endpoint in &snapshot.members {
                        endpoint.upstream.expire(snapshot.config.timeouts.idle);
                        endpoint.client.expire(snapshot.config.timeouts.idle);
                    }
                    pool.reap_drained();
                }
            }
        });
    }

    fn spawn_accept<A: crate::proxy::server::Acceptor>(
        &self,
        sockets: Vec<std::net::TcpListener>,
        acceptor: Arc<A>,
        drain: &Drain,
    ) {
        for (socket, handle) in sockets.into_iter().zip(self.workers.handles()) {
            let tracker = self.tracker.clone();
            let task = accept_loop(
                socket,
                acceptor.clone(),
                drain.clone(),
                tracker.clone(),
                self.limit.clone(),
            );
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

/// Groups listener claims by port; the port's kind comes from its first claim (validation
/// guarantees the claims on a port agree on protocol and TLS).
fn plan_ports(set: &ConfigSet) -> BTreeMap<u16, PortPlan> {
    let mut plans: BTreeMap<u16, PortPlan> = BTreeMap::new();
    for claim in &set.listeners {
        let plan = plans.entry(claim.port).or_insert_with(|| PortPlan {
            kind: match (claim.protocol, &claim.tcp_pool) {
                (Protocol::Tcp, Some(pool)) => PortKind::Tcp {
                    pool: pool.clone(),
                    tls: claim.tls.is_some(),
                    proxy_protocol: false,
                },
                _ => PortKind::Http {
                    tls: claim.tls.is_some(),
                    proxy_protocol: false,
                },
            },
            claims: Vec::new(),
            drain_timeout: Duration::ZERO,
        });
        if claim.proxy_protocol {
            match &mut plan.kind {
                PortKind::Http { proxy_protocol, .. } | PortKind::Tcp { proxy_protocol, .. } => {
                    *proxy_protocol = true
                }
            }
        }
        plan.drain_timeout = plan.drain_timeout.max(claim.drain_timeout);
        plan.claims.push(claim.clone());
    }
    plans
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

#[cfg(test)]
mod tests;
