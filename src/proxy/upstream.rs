//! Getting a request to a backend: connection reuse, connect, send, and retries on another
//! endpoint with backoff, under the pool's retry budget.
//!
//! A request that may already have reached a backend is retried only when its body can be
//! replayed (idempotent method, body of at most 64 KiB kept in memory); any request may be
//! retried after a connect failure, because then nothing was sent. A pooled connection that
//! turns out to be closed hands the unsent request back (`try_send_request`) and a fresh
//! connection is used: that is not a retry and is never visible to the client.

pub mod hyper_client;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Response};
use hyper::body::Incoming;
use tokio::net::TcpStream;

use crate::config::{Algorithm, RetryConfig};
use crate::health;
use crate::policy::LimitedBody;
use crate::pool::{ActiveGuard, Endpoint, Pool, Snapshot, Tried, UpstreamConn, now_ns};
use crate::proxy::error::ProxyError;
use crate::proxy::http1::client::{self as h1client, RequestBody, ResponseBody};

/// Largest request body kept in memory (so that it can be replayed on a retry, or sent
/// again when a pooled connection turns out to be closed).
pub const MAX_REPLAY_BODY: u64 = 64 * 1024;

/// The request as it will be sent upstream, ready for one or more attempts.
pub struct Outbound {
    parts: Parts,
    body: BodySource,
    idempotent: bool,
    /// Overrides `timeouts.request` when shorter (a gRPC call's `grpc-timeout`).
    deadline: Option<Duration>,
}

enum BodySource {
    /// The client's body, streamed once.
    Stream(Option<LimitedBody>),
    /// A body kept in memory (or none), sendable any number of times.
    Kept(Option<Bytes>),
}

impl Outbound {
    /// A request whose body is streamed (not sendable again once started).
    pub fn streamed(parts: Parts, body: LimitedBody) -> Self {
        let idempotent = idempotent(&parts.method);
        Outbound {
            parts,
            body: BodySource::Stream(Some(body)),
            idempotent,
            deadline: None,
        }
    }

    /// A request whose body (possibly empty) is kept in memory.
    pub fn kept(parts: Parts, body: Option<Bytes>) -> Self {
        let idempotent = idempotent(&parts.method);
        Outbound {
            parts,
            body: BodySource::Kept(body),
            idempotent,
            deadline: None,
        }
    }

    /// Bounds the wait for the response head by `deadline` too (when shorter than the
    /// pool's `timeouts.request`).
    pub fn with_deadline(mut self, deadline: Option<Duration>) -> Self {
        self.deadline = deadline;
        self
    }

    /// Whether a request that already reached a backend may be sent again: an idempotent
    /// method and a body kept in memory.
    pub fn can_replay(&self) -> bool {
        self.idempotent && matches!(self.body, BodySource::Kept(_))
    }

    /// Whether `retry` may send this request again after it may have reached a backend:
    /// [`Self::can_replay`], or any kept body when `retry` allows non-idempotent methods.
    fn replayable_under(&self, retry: &RetryConfig) -> bool {
        (self.idempotent || retry.non_idempotent) && matches!(self.body, BodySource::Kept(_))
    }

    /// Whether another send is possible at all.
    fn can_send(&self) -> bool {
        match &self.body {
            BodySource::Stream(body) => body.is_some(),
            BodySource::Kept(_) => true,
        }
    }

    /// The head and body for the next attempt.
    pub(super) fn next(&mut self) -> Option<(&Parts, RequestBody<'_>)> {
        let body = match &mut self.body {
            BodySource::Stream(body) => RequestBody::Stream(body.take()?),
            BodySource::Kept(None) => RequestBody::Empty,
            BodySource::Kept(Some(bytes)) => RequestBody::Bytes(bytes),
        };
        Some((&self.parts, body))
    }
}

/// True for methods RFC 9110 calls idempotent.
pub fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// A backend's response body: from sluice's HTTP/1.1 client (which owns the connection
/// until the body ends) or from the hyper client of TLS and HTTP/2 backends.
pub enum BackendBody {
    /// Plain HTTP/1.1.
    H1(ResponseBody),
    /// TLS or HTTP/2 (trailers included).
    Client(Incoming),
}

impl BackendBody {
    /// The HTTP/1.1 connection, when the body ended cleanly and it may carry another
    /// request (the hyper client pools its own connections).
    pub fn take_reusable(&mut self) -> Option<UpstreamConn> {
        match self {
            BackendBody::H1(b) => b.take_reusable(),
            BackendBody::Client(_) => None,
        }
    }

    /// The connection after a `101 Switching Protocols` (plain HTTP/1.1 only).
    pub fn into_upgraded(self) -> Option<UpstreamConn> {
        match self {
            BackendBody::H1(b) => b.into_upgraded(),
            BackendBody::Client(_) => None,
        }
    }
}

impl http_body::Body for BackendBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            BackendBody::H1(b) => std::pin::Pin::new(b).poll_frame(cx),
            BackendBody::Client(b) => std::pin::Pin::new(b)
                .poll_frame(cx)
                .map_err(std::io::Error::other),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            BackendBody::H1(b) => b.is_end_stream(),
            BackendBody::Client(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            BackendBody::H1(b) => b.size_hint(),
            BackendBody::Client(b) => b.size_hint(),
        }
    }
}

/// A response from a backend and the endpoint slot.
pub struct Answered {
    /// The response head; its body owns the connection until the body ends.
    pub response: Response<BackendBody>,
    /// The endpoint's slot, held until the exchange ends.
    pub guard: ActiveGuard,
}

/// Whether a failed attempt (number `attempt`, from 0) is tried again: as the pool's
/// `retry` allows while it has attempts left, and otherwise once, only when the connect
/// failed (nothing was sent), for every method, as nginx's default `proxy_next_upstream
/// error` does: a backend that stopped accepting (a rolling update racing the endpoint
/// watch) costs no client a 502. That default retry takes no budget.
fn again_after(
    pool: &Pool,
    retry: Option<&RetryConfig>,
    attempt: u32,
    err: &ProxyError,
    out: &Outbound,
) -> bool {
    match retry {
        Some(r) if attempt < r.attempts => {
            err.retryable(r, out.replayable_under(r)) && take_budget(pool, r)
        }
        _ => {
            let again = attempt == 0 && err.nothing_sent();
            if again {
                pool.stats
                    .retries
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            again
        }
    }
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
    // One more try is always allowed for a connect failure (see `again_after`).
    let attempts = 1 + retry.map_or(1, |r| r.attempts.max(1));
    if retry.is_some() {
        pool.stats.budget.record_request(now_ns() / 1_000_000_000);
    }
    // Every endpoint tried so far: a retry goes to another one while any is left.
    let mut tried = Tried::default();
    // `retry.within`: no retry starts once it has passed since the first attempt began.
    let within = retry.and_then(|r| r.within);
    let begun = within.map(|_| tokio::time::Instant::now());
    let in_time = || begun.zip(within).is_none_or(|(b, w)| b.elapsed() < w);
    for attempt in 0..attempts {
        let last = attempt + 1 == attempts;
        let guard = pick_attempt(snapshot, hash, sticky, &tried);
        let Some(guard) = guard else {
            return Err((ProxyError::NoEndpoint, None));
        };
        let endpoint = guard.endpoint().clone();
        let err = match attempt_once(&endpoint, snapshot, &mut out).await {
            Ok(response) => {
                let status = response.status();
                count_attempt(&endpoint, !status.is_server_error());
                health::report_outcome(pool, snapshot, &endpoint, !status.is_server_error());
                let retry_status = !last
                    && in_time()
                    && retry.is_some_and(|r| {
                        r.retries_status(status)
                            && attempt < r.attempts
                            && ProxyError::Status(status).retryable(r, out.replayable_under(r))
                            && take_budget(pool, r)
                    });
                if !retry_status {
                    return Ok(Answered { response, guard });
                }
                ProxyError::Status(status)
            }
            Err(err) => {
                count_attempt(&endpoint, !err.is_endpoint_failure());
                health::report_outcome(pool, snapshot, &endpoint, !err.is_endpoint_failure());
                let again = !last
                    && out.can_send()
                    && in_time()
                    && again_after(pool, retry, attempt, &err, &out);
                if !again {
                    return Err((err, Some(guard)));
                }
                err
            }
        };
        tracing::debug!(pool = pool.name(), backend = endpoint.label(), error = %err, attempt, "retrying on another endpoint");
        drop(guard);
        tried.insert(endpoint);
        if let Some(r) = retry {
            tokio::time::sleep(backoff(r, attempt)).await;
        }
    }
    Err((ProxyError::NoEndpoint, None))
}

/// The endpoint for the next attempt. The endpoint a session cookie names comes first
/// while it can take work and was not tried. A retry prefers an endpoint not tried yet;
/// once every one was, it falls back to any but the one that failed last, then to any.
fn pick_attempt(
    snapshot: &Snapshot,
    hash: Option<u64>,
    sticky: Option<u64>,
    tried: &Tried,
) -> Option<ActiveGuard> {
    if let Some(guard) = sticky.and_then(|token| snapshot.pick_sticky(token, tried)) {
        return Some(guard);
    }
    if tried.is_empty() {
        return snapshot.pick(hash, tried);
    }
    pick_retry(snapshot, hash, tried)
        .or_else(|| snapshot.pick(hash, &tried.last_only()))
        .or_else(|| snapshot.pick(hash, &Tried::default()))
}

/// The endpoint for a retry, other than those in `tried`.
///
/// RoundRobin and WeightedRoundRobin are not asked: a retry would advance their shared
/// position, so with one dead endpoint of two, every request's first attempt would land on
/// the dead one and every request would spend a retry (draining the budget). For them a
/// retry takes a weighted random pick among the available endpoints not tried yet; the
/// other algorithms keep their own choice with `tried` excluded.
fn pick_retry(snapshot: &Snapshot, hash: Option<u64>, tried: &Tried) -> Option<ActiveGuard> {
    if !matches!(
        snapshot.config.algorithm,
        Algorithm::RoundRobin | Algorithm::WeightedRoundRobin
    ) {
        return snapshot.pick(hash, tried);
    }
    let limit = snapshot.config.max_connections_per_endpoint;
    let usable = |e: &&Arc<Endpoint>| snapshot.usable(e, tried);
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
        .or_else(|| snapshot.pick(hash, tried))
}

/// `sluice_upstream_attempts_total{result}` of `endpoint`.
fn count_attempt(endpoint: &Endpoint, ok: bool) {
    let counter = if ok {
        &endpoint.stats.attempts_ok
    } else {
        &endpoint.stats.attempts_failed
    };
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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

/// One attempt on `endpoint`: a pooled connection if this worker has one (a pooled
/// connection found closed before it answered is replaced by a fresh one, invisibly), else
/// a new connection. The endpoint's drain cut ends the attempt.
async fn attempt_once(
    endpoint: &Arc<Endpoint>,
    snapshot: &Snapshot,
    out: &mut Outbound,
) -> Result<Response<BackendBody>, ProxyError> {
    let mut timeouts = snapshot.config.timeouts;
    if let Some(deadline) = out.deadline {
        timeouts.request = timeouts.request.min(deadline);
    }
    if !snapshot.config.upstream.is_plain_http1() {
        let attempt = hyper_client::exchange(endpoint, snapshot, out, timeouts.request);
        return tokio::select! {
            biased;
            result = attempt => result.map(|r| r.map(BackendBody::Client)),
            _ = endpoint.cut.cancelled() => Err(ProxyError::Reset(std::io::Error::other(
                "endpoint removed and its drain timeout passed",
            ))),
        };
    }
    let attempt = async {
        if let Some(conn) = endpoint.upstream.take(timeouts.idle) {
            let (parts, body) = out.next().ok_or(ProxyError::NoEndpoint)?;
            match tokio::time::timeout(timeouts.request, h1client::exchange(conn, parts, body))
                .await
            {
                Ok(Ok(response)) => return Ok(response),
                Ok(Err(failure)) if failure.stale && out.can_send() => {
                    tracing::debug!(backend = endpoint.label(), error = %failure.error, "pooled connection was closed; sending on a new one");
                }
                Ok(Err(failure)) => return Err(ProxyError::from_exchange(failure.error)),
                Err(_) => return Err(ProxyError::Timeout),
            }
        }
        let conn = connect(endpoint, timeouts.connect).await?;
        let (parts, body) = out.next().ok_or(ProxyError::NoEndpoint)?;
        match tokio::time::timeout(timeouts.request, h1client::exchange(conn, parts, body)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(failure)) => Err(ProxyError::from_exchange(failure.error)),
            Err(_) => Err(ProxyError::Timeout),
        }
    };
    tokio::select! {
        biased;
        result = attempt => result.map(|r| r.map(BackendBody::H1)),
        _ = endpoint.cut.cancelled() => Err(ProxyError::Reset(std::io::Error::other(
            "endpoint removed and its drain timeout passed",
        ))),
    }
}

/// Opens a new connection to `endpoint`.
async fn connect(endpoint: &Arc<Endpoint>, timeout: Duration) -> Result<UpstreamConn, ProxyError> {
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
    Ok(UpstreamConn::new(stream))
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
            on_timeout: false,
            on_statuses: Vec::new(),
            non_idempotent: false,
            within: None,
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

    /// A pool of three endpoints balanced by `algorithm`.
    fn three_endpoints(algorithm: &str) -> Pool {
        let text = format!(
            "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {{name: web, namespace: default}}\nspec:\n  listener: {{port: 8080}}\n  algorithm: {algorithm}\n  endpoints: [{{address: \"127.0.0.1:9001\"}}, {{address: \"127.0.0.1:9002\"}}, {{address: \"127.0.0.1:9003\"}}]\n  retry: {{attempts: 2}}\n"
        );
        match crate::config::load_text("pools.yaml", &text) {
            Ok(set) => Pool::new(set.pools[0].clone()),
            Err(e) => panic!("test pool does not validate: {e}"),
        }
    }

    #[test]
    fn retries_go_to_every_untried_endpoint_before_any_tried_one() {
        for algorithm in [
            "RoundRobin",
            "WeightedRoundRobin",
            "LeastConnections",
            "PowerOfTwoChoices",
            "Random",
        ] {
            let pool = three_endpoints(algorithm);
            let snapshot = pool.snapshot();
            for _ in 0..200 {
                let mut tried = Tried::default();
                for attempt in 0..3 {
                    let guard = pick_attempt(&snapshot, None, None, &tried)
                        .expect("an endpoint is available");
                    let endpoint = guard.endpoint().clone();
                    assert!(
                        !tried.contains(&endpoint),
                        "{algorithm}: attempt {attempt} went back to {}",
                        endpoint.label()
                    );
                    tried.insert(endpoint);
                }
            }
        }
    }

    #[test]
    fn once_every_endpoint_was_tried_a_retry_avoids_the_one_that_failed_last() {
        let pool = three_endpoints("RoundRobin");
        let snapshot = pool.snapshot();
        let mut tried = Tried::default();
        for e in &snapshot.available {
            tried.insert(e.clone());
        }
        let last = snapshot.available[2].clone();
        for _ in 0..100 {
            let guard = pick_attempt(&snapshot, None, None, &tried).expect("a fallback endpoint");
            assert!(!Arc::ptr_eq(guard.endpoint(), &last));
        }
    }

    #[test]
    fn only_rfc_idempotent_methods_are_replayable() {
        assert!(idempotent(&Method::GET));
        assert!(idempotent(&Method::PUT));
        assert!(!idempotent(&Method::POST));
        assert!(!idempotent(&Method::PATCH));
    }
}
