//! The validated configuration model: what the data plane reads.
//!
//! Nothing here is deserialized directly. [`validate`] (fed by the file loader or the
//! Kubernetes controller) is the only way in, and it reports every error at once with the
//! file, the pool and the field path. Durations are `std::time::Duration`, addresses are
//! `SocketAddr`, weights are non-zero: the proxy never re-checks any of it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod auth;
mod crd;
mod duration;
mod listener;
mod load;
mod locate;
mod policy;
mod route;
mod routing;
pub mod tls;
mod upstream;
mod validate;

pub use auth::{
    AllowedOrigins, BasicAuthConfig, CorsConfig, CredentialSource, ExternalAuthConfig, Htpasswd,
    MAX_HTPASSWD_BYTES, OriginPattern, PasswordHash,
};
pub use crd::crd_yaml;
pub use duration::{format_duration, parse_duration};
pub use listener::ListenerClaim;
pub use load::{LoadError, ManifestCheck, check_manifests, load_file, load_text, parse_documents};
pub use locate::{Location, Positions};
pub use policy::{AccessPolicy, RateLimitConfig, RateLimitKey};
pub use route::{
    CanaryRule, ForwardTo, PathMatch, PathRegex, RouteAction, RouteConfig, WeightedBackend,
    first_segment,
};
pub use routing::{
    CANARY_SUFFIX, CanaryConfig, HeaderChanges, PathReplace, RedirectConfig, RequestMatch,
    RewriteConfig, RouteFilters,
};
pub use upstream::{
    UpstreamConfig, UpstreamProtocol, UpstreamTls, UpstreamTrust, client_config, roots_from_pem,
};
pub use validate::{
    Lookups, Memo, Source, ValidationError, ValidationErrors, parse_origin, validate,
    validate_memo, validate_with_lookups, validate_with_secrets,
};

/// Every listener, route and backend the process should serve, validated as a whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigSet {
    /// What each front end needs of its listener ports (TLS by SNI, PROXY), in pool order.
    pub listeners: Vec<Arc<ListenerClaim>>,
    /// The routes of every HTTP port, oldest owner first (an earlier route wins a tie);
    /// each names its backends among `pools`.
    pub routes: Vec<Arc<RouteConfig>>,
    /// Pools sorted by name: the backends.
    pub pools: Vec<Arc<PoolConfig>>,
}

impl ConfigSet {
    /// A set of BackendPools, each with its listener claim and its own route, in the given
    /// order.
    pub fn of_pools(pools: Vec<Arc<PoolConfig>>) -> ConfigSet {
        let routes = pools
            .iter()
            .filter_map(|p| p.route())
            .map(Arc::new)
            .collect();
        ConfigSet {
            listeners: claims(&pools),
            routes,
            pools,
        }
    }
}

impl ConfigSet {
    /// Drops what `owner` placed: its pool, listener claims and routes (routes of others
    /// that name the pool as a backend keep their place and answer 500 for its share).
    /// Returns whether anything was dropped.
    pub fn remove_owner(&mut self, owner: &str) -> bool {
        let before = self.pools.len() + self.listeners.len() + self.routes.len();
        self.pools.retain(|p| p.name != owner);
        self.listeners.retain(|l| l.owner != owner);
        self.routes.retain(|r| r.owner != owner);
        before != self.pools.len() + self.listeners.len() + self.routes.len()
    }
}

/// The listener claims of BackendPools, in their order.
fn claims(pools: &[Arc<PoolConfig>]) -> Vec<Arc<ListenerClaim>> {
    pools.iter().map(|p| Arc::new(p.listener_claim())).collect()
}

/// One validated `BackendPool`.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// `namespace/name`: the pool's name in logs, metrics and `/pools`.
    pub name: String,
    /// HTTP or TCP.
    pub protocol: Protocol,
    /// Where the pool accepts traffic.
    pub listener: ListenerConfig,
    /// Static endpoints (file mode) or resolved EndpointSlice endpoints (controller).
    pub endpoints: Vec<EndpointConfig>,
    /// Balancing algorithm with its parameters.
    pub algorithm: Algorithm,
    /// Active health checks, when configured.
    pub health_check: Option<HealthCheckConfig>,
    /// Passive health, when configured.
    pub outlier_detection: Option<OutlierConfig>,
    /// Retries, when configured.
    pub retry: Option<RetryConfig>,
    /// Session affinity, when configured.
    pub affinity: Option<AffinityConfig>,
    /// Timeouts (always present, contract defaults).
    pub timeouts: Timeouts,
    /// How long removed endpoints keep in-flight work (default 30 s).
    pub drain_timeout: Duration,
    /// Concurrent requests/connections per endpoint; `None` = unlimited.
    pub max_connections_per_endpoint: Option<u32>,
    /// TCP only: PROXY protocol header sent to backends.
    pub send_proxy_protocol: ProxyProtocolVersion,
    /// HTTP only: redirect, rewrite and header changes.
    pub filters: RouteFilters,
    /// HTTP only: the canary backend set.
    pub canary: Option<CanaryConfig>,
    /// HTTP only: the HTTP version and TLS spoken to the backends.
    pub upstream: UpstreamConfig,
    /// Endpoints named by DNS (`sluice serve` only): the file front end resolves them into
    /// `endpoints`; the data plane never reads this.
    pub dns: Option<DnsEndpoints>,
}

/// The DNS-name endpoints of a pool and how often they are resolved again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsEndpoints {
    /// In the order listed.
    pub names: Vec<NamedEndpoint>,
    /// `spec.resolveEvery` (default 30 s).
    pub every: Duration,
}

/// One `host:port` endpoint: every address the name resolves to becomes an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedEndpoint {
    /// Lower-cased DNS name.
    pub host: String,
    /// Port of every address.
    pub port: u16,
    /// Weight of every address.
    pub weight: u32,
}

impl PoolConfig {
    /// The configuration the canary backend set is served with: this pool's settings
    /// (health, balancing, timeouts, filters) over the canary's endpoints.
    pub fn canary_pool(&self) -> Option<PoolConfig> {
        let canary = self.canary.as_ref()?;
        Some(PoolConfig {
            name: format!("{}{CANARY_SUFFIX}", self.name),
            endpoints: canary.endpoints.clone(),
            canary: None,
            dns: None,
            ..self.clone()
        })
    }
}

/// Layer the pool balances at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP/1.1 + HTTP/2.
    Http,
    /// Plain TCP.
    Tcp,
}

impl Protocol {
    /// Name as written in the resource (`HTTP`, `TCP`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Tcp => "TCP",
        }
    }
}

/// A pool's listener.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerConfig {
    /// TCP port, 1..=65535.
    pub port: u16,
    /// HTTP: hosts matched (lower-cased); empty = any.
    pub hosts: Vec<HostMatch>,
    /// HTTP: path prefix, always starting with `/`, without a trailing `/` unless it is `/`.
    pub path_prefix: String,
    /// TLS termination, when configured.
    pub tls: Option<TlsConfig>,
    /// Accept PROXY protocol headers.
    pub proxy_protocol: bool,
    /// HTTP: extra conditions (headers, methods, query); empty = none.
    pub matches: RequestMatch,
}

/// A host pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostMatch {
    /// Exact host, lower-case, no port.
    Exact(String),
    /// `*.suffix`: holds `.suffix` (with the leading dot), lower-case.
    Wildcard(String),
}

/// Certificate source.
#[derive(Debug, Clone, PartialEq)]
pub enum TlsConfig {
    /// PEM files (standalone), paths already resolved against the config file.
    Files {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// PEM material already loaded (Kubernetes Secret), shared by reference.
    Pem {
        /// Certificate chain.
        cert: Arc<[u8]>,
        /// Private key.
        key: Arc<[u8]>,
    },
}

/// One endpoint of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EndpointConfig {
    /// Where to connect.
    pub address: SocketAddr,
    /// Relative share, 1..=1000.
    pub weight: u32,
    /// `false` for an endpoint that must get no new work but may finish
    /// in-flight work (Kubernetes `terminating`).
    pub ready: bool,
}

/// Balancing algorithm with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Algorithm {
    /// Each endpoint in turn.
    RoundRobin,
    /// Smooth weighted round robin.
    WeightedRoundRobin,
    /// Fewest in-flight requests relative to weight.
    LeastConnections,
    /// Two random choices by EWMA latency x load.
    PowerOfTwoChoices,
    /// Maglev hashing on a request key.
    ConsistentHash(HashKey),
    /// Uniform random.
    Random,
}

impl Algorithm {
    /// Name as written in the resource.
    pub fn name(&self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "RoundRobin",
            Algorithm::WeightedRoundRobin => "WeightedRoundRobin",
            Algorithm::LeastConnections => "LeastConnections",
            Algorithm::PowerOfTwoChoices => "PowerOfTwoChoices",
            Algorithm::ConsistentHash(_) => "ConsistentHash",
            Algorithm::Random => "Random",
        }
    }
}

/// What ConsistentHash hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// A request header (lower-case name).
    Header(http::HeaderName),
    /// A cookie by name.
    Cookie(String),
    /// The client IP address.
    ClientIp,
}

/// Active health check settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheckConfig {
    /// HTTP GET or TCP connect.
    pub kind: HealthCheckKind,
    /// Port probed; `None` = the endpoint's own port.
    pub port: Option<u16>,
    /// Time between checks.
    pub interval: Duration,
    /// Time one check may take.
    pub timeout: Duration,
    /// Passes to turn healthy.
    pub healthy_threshold: u32,
    /// Failures to turn unhealthy.
    pub unhealthy_threshold: u32,
    /// Use every endpoint when all are unhealthy.
    pub fail_open: bool,
}

/// How an endpoint is probed.
#[derive(Debug, Clone, PartialEq)]
pub enum HealthCheckKind {
    /// GET `path`, passing when the status is in one of `expected` (inclusive ranges).
    Http {
        /// Request path.
        path: String,
        /// Inclusive status ranges.
        expected: Vec<(u16, u16)>,
    },
    /// A TCP connect.
    Tcp,
    /// grpc.health.v1 `Health/Check` (service `""`) over HTTP/2, passing on `SERVING`.
    Grpc,
}

/// Passive health settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutlierConfig {
    /// Failures in a row that eject.
    pub consecutive_failures: u32,
    /// Ejection time per time ejected.
    pub base_ejection_time: Duration,
    /// Most of the pool ejected at once, percent.
    pub max_ejection_percent: u32,
}

/// Retry settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// Extra tries after the first.
    pub attempts: u32,
    /// Backoff floor.
    pub backoff_base: Duration,
    /// Backoff ceiling.
    pub backoff_max: Duration,
    /// Retry after a failed connect.
    pub on_connect_failure: bool,
    /// Retry after a reset.
    pub on_reset: bool,
    /// Retry after a 5xx answer.
    pub on_5xx: bool,
    /// Retry after no response head came within `timeouts.request` (ingress-nginx's
    /// `proxy-next-upstream timeout`); the request may have reached the backend, so only a
    /// replayable one is retried.
    pub on_timeout: bool,
    /// Answers retried besides 5xx under `on_5xx` (ingress-nginx's `http_502`, `http_404`,
    /// ...); empty for BackendPools.
    pub on_statuses: Vec<http::StatusCode>,
    /// Non-idempotent methods (POST, PATCH) with a kept body may be retried after they were
    /// sent (ingress-nginx's `non_idempotent`); false for BackendPools.
    pub non_idempotent: bool,
    /// No retry starts once this long has passed since the first attempt began
    /// (ingress-nginx's `proxy-next-upstream-timeout`); `None` = no bound.
    pub within: Option<Duration>,
    /// Share of requests that may be retries over 10 s.
    pub budget_ratio: f64,
    /// Retries per second always allowed.
    pub budget_min_per_second: u32,
}

impl RetryConfig {
    /// Whether an answer with `status` is retried.
    pub fn retries_status(&self, status: http::StatusCode) -> bool {
        (self.on_5xx && status.is_server_error()) || self.on_statuses.contains(&status)
    }
}

/// Session affinity settings.
#[derive(Debug, Clone, PartialEq)]
pub enum AffinityConfig {
    /// Cookie naming the endpoint by an opaque token.
    Cookie {
        /// Cookie name.
        name: String,
        /// Max-Age.
        ttl: Duration,
    },
    /// Hash of the client address.
    ClientIp,
}

/// Timeouts, each always set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Upstream connect.
    pub connect: Duration,
    /// Until the response headers arrive.
    pub request: Duration,
    /// Idle keep-alive connection.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(2),
            request: Duration::from_secs(30),
            idle: Duration::from_secs(60),
        }
    }
}

/// PROXY protocol header sent to TCP backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocolVersion {
    /// None.
    None,
    /// Text v1.
    V1,
    /// Binary v2.
    V2,
}
