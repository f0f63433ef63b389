//! Getting a request to a backend: connection reuse, connect, send, and retries on another
//! endpoint with backoff, under the pool's retry budget.
//!
//! A request that may already have reached a backend is retried only when its body can be
//! replayed (idempotent method, body of at most 64 KiB kept in memory); any request may be
//! retried after a connect failure, because then nothing was sent. A pooled connection that
//! turns out to be closed hands the unsent request back (`try_send_request`) and a fresh
//! connection is used: that is not a retry and is never visible to the client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::error::ProxyError;
use crate::config::{Algorithm, RetryConfig};
use crate::health;
use crate::pool::{ActiveGuard, Endpoint, Pool, Snapshot, UpstreamBody, now_ns};

/// Largest request body kept in memory so that it can be replayed on a retry.
pub const MAX_REPLAY_BODY: u64 = 64 * 1024;

/// The request as it will be sent upstream, ready for one or more attempts.
pub struct Outbound {
    parts: Option<Parts>,
    body: BodySource,
}

enum BodySource {
    /// The client's body, streamed once.
    Stream(Option<Incoming>),
    /// A body kept in memory (or none), sendable any number of times.
    Replay(Option<Bytes>),
}

impl Outbound {
    /// A request whose body is streamed (not replayable after it was sent).
    pub fn streamed(parts: Parts, body: Incoming) -> Self {
        Outbound {
            parts: Some(parts),
            body: BodySource::Stream(Some(body)),
        }
    }

    /// A request whose body (possibly empty) can be sent again.
    pub fn replayable(parts: Parts, body: Option<Bytes>) -> Self {
        Outbound {
            parts: Some(parts),
            body: BodySource::Replay(body),
        }
    }

    /// Whether a request that already reached a backend may be sent again.
    pub fn can_replay(&self) -> bool {
        matches!(self.body, BodySource::Replay(_)) && self.parts.is_some()
    }

    /// Whether another send is possible at all.
    fn can_send(&self) -> bool {
        self.parts.is_some() && !matches!(self.body, BodySource::Stream(None))
    }

    /// The request for the next attempt; `last` moves the parts instead of copying them.
    fn request(&mut self, last: bool) -> Option<Request<UpstreamBody>> {
        let body = match &mut self.body {
            BodySource::Stream(body) => UpstreamBody::Stream(body.take()?),
            BodySource::Replay(bytes) => UpstreamBody::Full(bytes.clone()),
        };
        let streamed = matches!(body, UpstreamBody::Stream(_));
        let parts = if last || streamed {
            self.parts.take()?
        } else {
            copy_parts(self.parts.as_ref()?)
        };
        Some(Request::from_parts(parts, body))
    }
}

fn copy_parts(p: &Parts) -> Parts {
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = p.method.clone();
    parts.uri = p.uri.clone();
    parts.version = p.version;
    parts.headers = p.headers.clone();
    parts
}

/// True for methods RFC 9110 calls idempotent.
pub fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// A response from a backend, with the connection that carried it and the endpoint slot.
pub struct Answered {
    /// The response head and streaming body.
    pub response: Response<Incoming>,
    /// The connection, to be pooled once the body ended cleanly.
    pub sender: SendRequest<UpstreamBody>,
    /// The endpoint's slot, held until the exchange ends.
    pub guard: ActiveGuard,
}

/// Sends `out` to an endpoint of `snapshot`, retrying as the pool's `retry` allows.
/// On failure, returns the error and the slot of the endpoint that failed last (if any).
pub async fn send(
    pool: &Arc<Pool>,
    snapshot: &Snapshot,
    hash: Option<u64>,
    sticky: Option<u64>,
    mut out: Outbound,
) -> Result<Answered, (ProxyError, Option<ActiveGuard>)> {
    let retry = snapshot.config.retry.as_ref();
    let attempts = 1 + retry.map_or(0, |r| r.attempts);
    if retry.is_some() {
        pool.stats.budget.record_request(now_ns() / 1_000_000_000);
    }
    let mut failed: Option<Arc<Endpoint>> = None;
    for attempt in 0..attempts {
        let last = attempt + 1 == attempts;
        // Prefer another endpoint than the one that failed; fall back to it if it is the only one.
        // The endpoint a session cookie names comes first while it can take work.
        let guard = sticky
            .and_then(|token| snapshot.pick_sticky(token, failed.as_deref()))
            .or_else(|| match &failed {
                None => snapshot.pick(hash, None),
                Some(failed) => pick_retry(snapshot, hash, failed),
            })
            .or_else(|| failed.as_ref().and_then(|_| snapshot.pick(hash, None)));
        let Some(guard) = guard else {
            return Err((ProxyError::NoEndpoint, None));
        };
        let endpoint = guard.endpoint().clone();
        let err = match attempt_once(&endpoint, snapshot, &mut out, last).await {
            Ok((response, sender)) => {
                let status = response.status();
                health::report_outcome(pool, snapshot, &endpoint, !status.is_server_error());
                let retry_5xx = status.is_server_error()
                    && !last
                    && retry.is_some_and(|r| {
                        ProxyError::Status(status).retryable(r, out.can_replay())
                            && take_budget(pool, r)
                    });
                if !retry_5xx {
                    return Ok(Answered {
                        response,
                        sender,
                        guard,
                    });
                }
                ProxyError::Status(status)
            }
            Err(err) => {
                health::report_outcome(pool, snapshot, &endpoint, !err.is_endpoint_failure());
                let again = !last
                    && out.can_send()
                    && retry.is_some_and(|r| {
                        err.retryable(r, out.can_replay()) && take_budget(pool, r)
                    });
                if !again {
                    return Err((err, Some(guard)));
                }
                err
            }
        };
        tracing::debug!(pool = pool.name(), backend = endpoint.label(), error = %err, attempt, "retrying on another endpoint");
        drop(guard);
        failed = Some(endpoint);
        if let Some(r) = retry {
            tokio::time::sleep(backoff(r, attempt)).await;
        }
    }
    Err((ProxyError::NoEndpoint, None))
}

/// The endpoint for a retry, other than `failed`.
///
/// RoundRobin and WeightedRoundRobin are not asked: a retry would advance their shared
/// position, so with one dead endpoint of two, every request's first attempt would land on
/// the dead one and every request would spend a retry (draining the budget). For them a
/// retry takes a weighted random pick among the other available endpoints; the other
/// algorithms keep their own choice with `failed` excluded.
fn pick_retry(
    snapshot: &Snapshot,
    hash: Option<u64>,
    failed: &Arc<Endpoint>,
) -> Option<ActiveGuard> {
    if !matches!(
        snapshot.config.algorithm,
        Algorithm::RoundRobin | Algorithm::WeightedRoundRobin
    ) {
        return snapshot.pick(hash, Some(failed));
    }
    let limit = snapshot.config.max_connections_per_endpoint;
    let usable =
        |e: &&Arc<Endpoint>| !Arc::ptr_eq(e, failed) && limit.is_none_or(|l| e.active() < l);
    let total: u64 = snapshot
        .available
        .iter()
        .filter(usable)
        .map(|e| u64::from(e.weight()))
        .sum();
    if total == 0 {
        return None;
    }
    let mut point = fastrand::u64(..total);
    let chosen = snapshot.available.iter().filter(usable).find(|e| {
        let w = u64::from(e.weight());
        if point < w {
            return true;
        }
        point -= w;
        false
    })?;
    // The slot may have been taken since the check: let the balancer choose then.
    chosen
        .try_begin(limit)
        .or_else(|| snapshot.pick(hash, Some(failed)))
}

fn take_budget(pool: &Pool, retry: &RetryConfig) -> bool {
    let second = now_ns() / 1_000_000_000;
    let ok = pool
        .stats
        .budget
        .try_retry(second, retry.budget_ratio, retry.budget_min_per_second);
    if ok {
        pool.stats
            .retries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    } else {
        tracing::debug!(pool = pool.name(), "retry budget exhausted");
    }
    ok
}

/// Exponential backoff with full jitter: uniform in `0..=min(max, base x 2^attempt)`.
pub fn backoff(retry: &RetryConfig, attempt: u32) -> Duration {
    let cap = retry
        .backoff_base
        .saturating_mul(1u32 << attempt.min(20))
        .min(retry.backoff_max);
    cap.mul_f64(fastrand::f64())
}

async fn attempt_once(
    endpoint: &Arc<Endpoint>,
    snapshot: &Snapshot,
    out: &mut Outbound,
    last: bool,
) -> Result<(Response<Incoming>, SendRequest<UpstreamBody>), ProxyError> {
    let timeouts = snapshot.config.timeouts;
    let mut unsent = None;
    if let Some(mut sender) = endpoint.upstream.take(timeouts.idle)
        && sender.ready().await.is_ok()
    {
        {
            let req = out.request(last).ok_or(ProxyError::NoEndpoint)?;
            match tokio::time::timeout(timeouts.request, sender.try_send_request(req)).await {
                Ok(Ok(resp)) => return Ok((resp, sender)),
                Ok(Err(mut e)) => match e.take_message() {
                    Some(req) => unsent = Some(req),
                    None => return Err(ProxyError::Reset(e.into_error())),
                },
                Err(_) => return Err(ProxyError::Timeout),
            }
        }
    }
    let mut sender = connect(endpoint, timeouts.connect).await?;
    let req = match unsent {
        Some(req) => req,
        None => out.request(last).ok_or(ProxyError::NoEndpoint)?,
    };
    match tokio::time::timeout(timeouts.request, sender.try_send_request(req)).await {
        Ok(Ok(resp)) => Ok((resp, sender)),
        Ok(Err(e)) => Err(ProxyError::Reset(e.into_error())),
        Err(_) => Err(ProxyError::Timeout),
    }
}

/// Opens a new HTTP/1 connection and spawns its driver on the current worker. The driver
/// stops when the endpoint's drain deadline passes.
async fn connect(
    endpoint: &Arc<Endpoint>,
    timeout: Duration,
) -> Result<SendRequest<UpstreamBody>, ProxyError> {
    let addr: SocketAddr = endpoint.address();
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(ProxyError::Connect(addr, e)),
        Err(_) => {
            let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
            return Err(ProxyError::Connect(addr, e));
        }
    };
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(ProxyError::Handshake)?;
    let cut = endpoint.cut.clone();
    tokio::spawn(async move {
        tokio::select! {
            biased;
            res = connection.with_upgrades() => {
                if let Err(e) = res {
                    tracing::debug!(backend = %addr, error = %e, "upstream connection ended");
                }
            }
            _ = cut.cancelled() => {
                tracing::debug!(backend = %addr, "drain timeout: upstream connection closed");
            }
        }
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(base_ms: u64, max_ms: u64) -> RetryConfig {
        RetryConfig {
            attempts: 2,
            backoff_base: Duration::from_millis(base_ms),
            backoff_max: Duration::from_millis(max_ms),
            on_connect_failure: true,
            on_reset: true,
            on_5xx: true,
            budget_ratio: 0.2,
            budget_min_per_second: 10,
        }
    }

    #[test]
    fn backoff_is_jittered_under_an_exponential_cap() {
        let r = retry(25, 1000);
        for attempt in 0..10 {
            let cap = Duration::from_millis((25u64 << attempt).min(1000));
            for _ in 0..50 {
                assert!(backoff(&r, attempt) <= cap);
            }
        }
        let spread: std::collections::HashSet<_> = (0..50).map(|_| backoff(&r, 3)).collect();
        assert!(spread.len() > 10, "backoff is not jittered");
    }

    #[test]
    fn only_rfc_idempotent_methods_are_replayable() {
        assert!(idempotent(&Method::GET));
        assert!(idempotent(&Method::PUT));
        assert!(!idempotent(&Method::POST));
        assert!(!idempotent(&Method::PATCH));
    }
}
