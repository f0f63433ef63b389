//! Access policies on the request path (contract 4b): who may be served, how often, with
//! how large a body. They run before a route does anything else, in the contract's order:
//! address lists, rate limit, then CORS preflight and authentication ([`auth::admit`], async:
//! external auth is a round trip), then the route's own filters.
//!
//! Data plane: reads the validated model (`crate::config::AccessPolicy`) and the pool's
//! run-time state, never Kubernetes types. A pool without policies pays one branch.

pub mod auth;
pub mod basic_auth;
pub mod body_limit;
pub mod client_addr;
pub mod conn_limit;
pub mod cors;
pub mod external_auth;
pub mod ip_list;
pub mod rate_limit;

use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

use http::{HeaderValue, Request, Response, StatusCode, Version, header};
use tokio::time::Instant;

pub use body_limit::{BodyError, LimitedBody};
pub use client_addr::TrustedProxies;
pub use conn_limit::{ClientSlot, ConnLimiter};
pub use ip_list::{Cidr, IpSet};
pub use rate_limit::RateLimiter;

use crate::config::{AccessPolicy, RateLimitKey};
use crate::pool::{Pool, UNROUTED};
use crate::proxy::body::ProxyBody;
use crate::proxy::http::{ClientBody, local};
use crate::route::target::Target;

/// Applies the route's access policies to a request from `client` (see
/// [`TrustedProxies::client`]): `Some(answer)` refuses it, and nothing of it has reached a
/// backend; `None` lets it on (its streamed body now cut at `maxRequestBodyBytes`).
///
/// State and counters are the route's owner pool's ([`Target::owner`]); a route without
/// one (a fixed answer, no pool) has no buckets to keep, so its `rateLimit` does not apply.
pub fn admit(
    target: &Target,
    client: IpAddr,
    req: &mut Request<ClientBody>,
) -> Option<Response<ProxyBody>> {
    let policy = &target.route.filters.access;
    if policy.is_empty() {
        return None;
    }
    let refused = check(target.owner.as_deref(), policy, client, req)?;
    match &target.owner {
        Some(pool) => pool.stats.local.record(refused.status().as_u16()),
        None => UNROUTED.record(refused.status().as_u16()),
    }
    Some(refused)
}

fn check(
    pool: Option<&Pool>,
    policy: &AccessPolicy,
    client: IpAddr,
    req: &mut Request<ClientBody>,
) -> Option<Response<ProxyBody>> {
    addresses(pool, policy, client)
        .or_else(|| rate(pool, policy, client, req))
        // CORS preflight and authentication follow in `auth::admit` (async).
        .or_else(|| body(pool, policy, req))
}

/// ingress-nginx's `limit-connections`: a slot among the client's requests in flight on the
/// route's owner pool (`Ok(None)` when the route sets no limit or has no pool), or the 429
/// refusal when the client already has that many.
pub fn client_slot(
    target: &Target,
    client: IpAddr,
) -> Result<Option<ClientSlot>, Box<Response<ProxyBody>>> {
    let (Some(max), Some(pool)) = (
        target.route.filters.access.max_connections_per_client,
        target.owner.as_deref(),
    ) else {
        return Ok(None);
    };
    match pool.conn_limiter.acquire(client, max) {
        Some(slot) => Ok(Some(slot)),
        None => {
            pool.stats.rate_limited.fetch_add(1, Relaxed);
            pool.stats
                .local
                .record(StatusCode::TOO_MANY_REQUESTS.as_u16());
            Err(Box::new(local(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests in flight\n",
            )))
        }
    }
}

/// `ipAllowList` / `ipDenyList`: 403 for an address outside the one or inside the other.
fn addresses(
    pool: Option<&Pool>,
    policy: &AccessPolicy,
    client: IpAddr,
) -> Option<Response<ProxyBody>> {
    let allowed = policy.allow.as_ref().is_none_or(|set| set.contains(client));
    let denied = policy.deny.as_ref().is_some_and(|set| set.contains(client));
    if allowed && !denied {
        return None;
    }
    if let Some(pool) = pool {
        pool.stats.denied_address.fetch_add(1, Relaxed);
    }
    Some(local(StatusCode::FORBIDDEN, "forbidden\n"))
}

/// `rateLimit`: 429 with `Retry-After` when the request's bucket is empty.
fn rate(
    pool: Option<&Pool>,
    policy: &AccessPolicy,
    client: IpAddr,
    req: &Request<ClientBody>,
) -> Option<Response<ProxyBody>> {
    let (limit, pool) = (policy.rate_limit.as_ref()?, pool?);
    let key = match &limit.key {
        RateLimitKey::ClientIp => rate_limit::Key::Addr(client),
        RateLimitKey::Header(name) => req
            .headers()
            .get(name)
            .map_or(rate_limit::Key::Addr(client), |v| {
                rate_limit::Key::Value(v.as_bytes())
            }),
        RateLimitKey::Pool => rate_limit::Key::Pool,
    };
    let wait = pool.rate_limiter.check(limit, key, Instant::now()).err()?;
    pool.stats.rate_limited.fetch_add(1, Relaxed);
    let mut resp = local(StatusCode::TOO_MANY_REQUESTS, "too many requests\n");
    // Whole seconds (RFC 9110 10.2.3), rounded up so a client that obeys is served.
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    Some(resp)
}

/// `maxRequestBodyBytes`: 413 for a body known to be larger; a streamed one is cut later.
fn body(
    pool: Option<&Pool>,
    policy: &AccessPolicy,
    req: &mut Request<ClientBody>,
) -> Option<Response<ProxyBody>> {
    let max = policy.max_request_body_bytes?;
    if body_fits(req, max) {
        return None;
    }
    if let Some(pool) = pool {
        pool.stats.denied_body.fetch_add(1, Relaxed);
    }
    let mut resp = local(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
    if req.version() <= Version::HTTP_11 && matches!(req.body(), ClientBody::Incoming(_)) {
        // The unread body is still on the connection: reading it to reuse the connection
        // is what the limit is there to avoid.
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Some(resp)
}

/// Whether the body may be at most `max` bytes: a declared or already read length is
/// compared now; a streamed body of unknown length is cut once it passes `max`.
fn body_fits(req: &mut Request<ClientBody>, max: u64) -> bool {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return false;
    }
    match req.body_mut() {
        ClientBody::Kept(bytes) => bytes.as_ref().is_none_or(|b| b.len() as u64 <= max),
        ClientBody::Incoming(body) => {
            if http_body::Body::size_hint(body).lower() > max {
                return false;
            }
            body.limit(max);
            true
        }
    }
}
