//! The validated access policies of an HTTP route (contract 4b): address lists, rate limit
//! and request body limit. They are route filters, checked before anything else a route
//! does, in the contract's order: address lists, rate limit, (auth, CORS), redirect, ...
//!
//! Only the settings live here; the per-key state they need at run time (rate-limit
//! buckets) lives in the pool (`crate::policy::RateLimiter`), so a reload that keeps the
//! settings keeps the state.

use std::sync::Arc;

use http::HeaderName;

use crate::policy::IpSet;

/// Address lists, rate limit and body limit of a route; the default is "no policy".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    /// `ipAllowList`: only client addresses in these networks are served (others: 403).
    pub allow: Option<Arc<IpSet>>,
    /// `ipDenyList`: client addresses in these networks get 403.
    pub deny: Option<Arc<IpSet>>,
    /// `rateLimit`, when set.
    pub rate_limit: Option<RateLimitConfig>,
    /// `maxRequestBodyBytes`: larger request bodies get 413; `None` = no limit.
    pub max_request_body_bytes: Option<u64>,
    /// Most requests in flight per client address, per replica (ingress-nginx's
    /// `limit-connections`; Ingress only); more get 429. `None` = no limit.
    pub max_connections_per_client: Option<u32>,
}

impl AccessPolicy {
    /// Whether no policy is set (the request path then skips every check).
    pub fn is_empty(&self) -> bool {
        self.allow.is_none()
            && self.deny.is_none()
            && self.rate_limit.is_none()
            && self.max_request_body_bytes.is_none()
            && self.max_connections_per_client.is_none()
    }
}

/// A token bucket (GCRA) per key, per replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Sustained rate, requests per second, at least 1.
    pub requests_per_second: u32,
    /// Requests allowed at once from a full bucket, at least 1 (default `requests_per_second`).
    pub burst: u32,
    /// What a bucket belongs to.
    pub key: RateLimitKey,
}

/// What a rate-limit bucket belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateLimitKey {
    /// The client address (see `--trusted-proxies`).
    ClientIp,
    /// The value of this request header; requests without it are keyed by client address.
    Header(HeaderName),
    /// One bucket for the whole pool.
    Pool,
}
