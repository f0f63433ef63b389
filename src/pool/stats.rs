//! Per-endpoint counters behind the Prometheus metrics, kept as plain atomics so the
//! request path never touches a metrics registry lock. `/metrics` reads them at scrape time.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Status codes counted without a lock; any other code goes to a small locked list.
const COMMON_CODES: [u16; 16] = [
    200, 201, 204, 206, 301, 302, 304, 400, 401, 403, 404, 429, 500, 502, 503, 504,
];

/// HTTP answers counted by status code: common codes without a lock, any other code in a
/// small locked list.
#[derive(Debug, Default)]
pub struct StatusCounts {
    common: [AtomicU64; COMMON_CODES.len()],
    rare: Mutex<Vec<(u16, u64)>>,
}

/// Answers sluice gave before any pool was chosen (`pool=""`): no route (404) and requests
/// refused by the strict reading (400, 414, 431, 501). Process-wide atomics, no lock.
pub static UNROUTED: StatusCounts = StatusCounts {
    common: [const { AtomicU64::new(0) }; COMMON_CODES.len()],
    rare: Mutex::new(Vec::new()),
};

/// Counters for one endpoint.
#[derive(Debug, Default)]
pub struct EndpointStats {
    /// `sluice_requests_total{backend}` by status code.
    pub codes: StatusCounts,
    /// TCP connections forwarded to this endpoint.
    pub tcp_connections: AtomicU64,
    /// Active health checks that passed.
    pub checks_ok: AtomicU64,
    /// Active health checks that failed.
    pub checks_failed: AtomicU64,
    /// Upstream attempts answered without an endpoint failure (any non-5xx answer).
    pub attempts_ok: AtomicU64,
    /// Upstream attempts that failed: connect failure, reset, timeout or a 5xx answer,
    /// including the ones a retry then hid from the client.
    pub attempts_failed: AtomicU64,
}

impl EndpointStats {
    /// Counts one HTTP response with `code`.
    pub fn record_status(&self, code: u16) {
        self.codes.record(code);
    }

    /// Every status code seen so far with its count, in code order.
    pub fn statuses(&self) -> Vec<(u16, u64)> {
        self.codes.all()
    }
}

impl StatusCounts {
    /// Counts one answer with `code`.
    pub fn record(&self, code: u16) {
        match COMMON_CODES.iter().position(|&c| c == code) {
            Some(i) => {
                self.common[i].fetch_add(1, Ordering::Relaxed);
            }
            None => {
                let mut rare = self.rare.lock();
                match rare.iter_mut().find(|(c, _)| *c == code) {
                    Some((_, n)) => *n += 1,
                    None => rare.push((code, 1)),
                }
            }
        }
    }

    /// Every status code seen so far with its count, in code order.
    pub fn all(&self) -> Vec<(u16, u64)> {
        let mut out: Vec<(u16, u64)> = COMMON_CODES
            .iter()
            .zip(&self.common)
            .map(|(&c, n)| (c, n.load(Ordering::Relaxed)))
            .filter(|&(_, n)| n > 0)
            .collect();
        out.extend(self.rare.lock().iter().copied());
        out.sort_unstable();
        out
    }
}

/// Upper bounds (seconds) of the request-duration histogram buckets; the last finite one
/// covers the default 30 s request timeout. `+Inf` is added on exposition.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A lock-free histogram: one atomic per bucket (the last one counts what is above every
/// bound), sum kept in nanoseconds.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        let i = DURATION_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(DURATION_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// (sum in seconds, count, per-bucket counts by upper bound ending with `+Inf`).
    ///
    /// Buckets are *not* cumulated here: the exposition encoder cumulates them. The count
    /// is the buckets' total, so `+Inf` equals `_count` even while observations race a scrape.
    pub fn read(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let buckets: Vec<(f64, u64)> = DURATION_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(&self.buckets)
            .map(|(b, n)| (b, n.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        (sum, count, buckets)
    }
}

/// Counters for one pool.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Answers sluice made itself for this pool, no endpoint picked (`backend=""`): 503
    /// without an available endpoint, 400 for a broken request body.
    pub local: StatusCounts,
    /// `sluice_request_duration_seconds{pool}`.
    pub duration: Histogram,
    /// `sluice_retries_total{pool}`.
    pub retries: AtomicU64,
    /// `sluice_canary_requests_total{pool}`: requests sent to the canary backend set.
    pub canary_requests: AtomicU64,
    /// The pool's retry budget.
    pub budget: RetryBudget,
    /// `sluice_rate_limited_total{pool}`: requests refused with 429 by `rateLimit`.
    pub rate_limited: AtomicU64,
    /// `sluice_denied_total{pool,reason="address"}`: 403 by `ipAllowList` / `ipDenyList`.
    pub denied_address: AtomicU64,
    /// `sluice_denied_total{pool,reason="body"}`: 413 by `maxRequestBodyBytes`.
    pub denied_body: AtomicU64,
    /// `sluice_denied_total{pool,reason="auth"}`: requests refused by `basicAuth` or
    /// `externalAuth` (failing closed included).
    pub denied_auth: AtomicU64,
    /// `sluice_request_bytes_total{pool}`: request body bytes read from clients.
    pub request_bytes: AtomicU64,
    /// `sluice_response_bytes_total{pool}`: response body bytes of forwarded answers sent
    /// to clients.
    pub response_bytes: AtomicU64,
}

/// Seconds in the retry-budget window.
const BUDGET_WINDOW: u64 = 10;

/// Requests and retries per second over the last 10 s, lock-free: a retry is allowed while
/// retries stay under `ratio` x requests plus `min_per_second` x 10 (Envoy/linkerd budgets).
#[derive(Debug, Default)]
pub struct RetryBudget {
    buckets: [BudgetBucket; BUDGET_WINDOW as usize],
}

#[derive(Debug, Default)]
struct BudgetBucket {
    second: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
}

impl RetryBudget {
    fn bucket(&self, second: u64) -> &BudgetBucket {
        let b = &self.buckets[(second % BUDGET_WINDOW) as usize];
        let seen = b.second.load(Ordering::Acquire);
        if seen != second
            && b.second
                .compare_exchange(seen, second, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            b.requests.store(0, Ordering::Relaxed);
            b.retries.store(0, Ordering::Relaxed);
        }
        b
    }

    /// Counts one request at `second` (monotonic seconds).
    pub fn record_request(&self, second: u64) {
        self.bucket(second).requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one retry from the budget if the window allows it.
    pub fn try_retry(&self, second: u64, ratio: f64, min_per_second: u32) -> bool {
        let (mut requests, mut retries) = (0u64, 0u64);
        for b in &self.buckets {
            let s = b.second.load(Ordering::Acquire);
            if s + BUDGET_WINDOW > second && s <= second {
                requests += b.requests.load(Ordering::Relaxed);
                retries += b.retries.load(Ordering::Relaxed);
            }
        }
        let allowed = ratio * requests as f64 + f64::from(min_per_second) * BUDGET_WINDOW as f64;
        if (retries as f64) < allowed {
            self.bucket(second).retries.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_budget_allows_ratio_plus_minimum() {
        let b = RetryBudget::default();
        for _ in 0..100 {
            b.record_request(5);
        }
        // 0.2 x 100 + 1/s x 10 s = 30 retries.
        let granted = (0..100).filter(|_| b.try_retry(5, 0.2, 1)).count();
        assert_eq!(granted, 30);
    }

    #[test]
    fn retry_budget_window_slides() {
        let b = RetryBudget::default();
        for _ in 0..100 {
            b.record_request(1);
        }
        assert_eq!((0..50).filter(|_| b.try_retry(1, 0.2, 0)).count(), 20);
        assert!(!b.try_retry(5, 0.2, 0));
        // Eleven seconds later the old requests and retries have left the window.
        for _ in 0..10 {
            b.record_request(12);
        }
        assert_eq!((0..50).filter(|_| b.try_retry(12, 0.2, 0)).count(), 2);
    }
}
