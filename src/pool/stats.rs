//! Per-endpoint counters behind the Prometheus metrics, kept as plain atomics so the
//! request path never touches a metrics registry lock. `/metrics` reads them at scrape time.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Status codes counted without a lock; any other code goes to a small locked list.
const COMMON_CODES: [u16; 16] = [
    200, 201, 204, 206, 301, 302, 304, 400, 401, 403, 404, 429, 500, 502, 503, 504,
];

/// Counters for one endpoint.
#[derive(Debug, Default)]
pub struct EndpointStats {
    common: [AtomicU64; COMMON_CODES.len()],
    rare: Mutex<Vec<(u16, u64)>>,
    /// TCP connections forwarded to this endpoint.
    pub tcp_connections: AtomicU64,
    /// Active health checks that passed.
    pub checks_ok: AtomicU64,
    /// Active health checks that failed.
    pub checks_failed: AtomicU64,
}

impl EndpointStats {
    /// Counts one HTTP response with `code`.
    pub fn record_status(&self, code: u16) {
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
    pub fn statuses(&self) -> Vec<(u16, u64)> {
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

/// Upper bounds (seconds) of the request-duration histogram buckets.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A lock-free histogram: one atomic per bucket, sum kept in nanoseconds.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; DURATION_BUCKETS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = DURATION_BUCKETS.iter().position(|&b| secs <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// (sum in seconds, count, cumulative bucket counts by upper bound).
    pub fn read(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut acc = 0;
        let buckets = DURATION_BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(&b, n)| {
                acc += n.load(Ordering::Relaxed);
                (b, acc)
            })
            .collect();
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        (sum, self.count.load(Ordering::Relaxed), buckets)
    }
}

/// Counters for one pool.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// `sluice_request_duration_seconds{pool}`.
    pub duration: Histogram,
    /// `sluice_retries_total{pool}`.
    pub retries: AtomicU64,
}
