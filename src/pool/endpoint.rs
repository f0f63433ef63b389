//! One backend address and its live state.
//!
//! An `Endpoint` is shared (`Arc`) by every snapshot that contains it, so its counters,
//! health history and pooled upstream connections survive configuration reloads that keep
//! it. Everything mutable is an atomic: the request path never takes a lock here.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use tokio::time::Instant;

use super::stats::EndpointStats;
use super::upstream::{ClientConns, UpstreamPool};

/// Decay time constant of the latency estimate (linkerd's peak-EWMA uses 10 s).
const DECAY_NS: f64 = 10e9;
/// Latency assumed before the first measurement: cheap enough to be tried early.
const INITIAL_RTT_NS: u64 = 1_000_000;

/// Why an endpoint is not receiving new work (bit flags, all clear = available).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Unavailable {
    /// Failed active health checks.
    Unhealthy = 1,
    /// Ejected by outlier detection.
    Ejected = 2,
    /// Removed from the pool (or terminating); in-flight work drains.
    Draining = 4,
}

/// A backend address with its weight and live counters.
#[derive(Debug)]
pub struct Endpoint {
    address: SocketAddr,
    label: Box<str>,
    weight: AtomicU32,
    flags: AtomicU8,
    active: AtomicU32,
    rtt_ns: AtomicU64,
    rtt_stamp_ns: AtomicU64,
    /// Counters exported as metrics.
    pub stats: EndpointStats,
    /// Passive-health state (consecutive live failures, times ejected).
    pub outlier: OutlierState,
    /// Cancelled when a removed endpoint's `drainTimeout` has passed: open upstream
    /// connections and tunnels to it close.
    pub cut: tokio_util::sync::CancellationToken,
    /// Idle keep-alive HTTP/1 connections to this endpoint.
    pub upstream: UpstreamPool,
    /// Connections of the client for TLS and HTTP/2 backends (`spec.upstream`).
    pub client: ClientConns,
}

impl Endpoint {
    /// A new endpoint: available, no load, no latency history.
    pub fn new(address: SocketAddr, weight: u32) -> Self {
        Endpoint {
            address,
            label: address.to_string().into_boxed_str(),
            weight: AtomicU32::new(weight.max(1)),
            flags: AtomicU8::new(0),
            active: AtomicU32::new(0),
            rtt_ns: AtomicU64::new(INITIAL_RTT_NS),
            rtt_stamp_ns: AtomicU64::new(0),
            stats: EndpointStats::default(),
            outlier: OutlierState::default(),
            cut: tokio_util::sync::CancellationToken::new(),
            upstream: UpstreamPool::default(),
            client: ClientConns::default(),
        }
    }

    /// Where to connect.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `ip:port`, precomputed for logs and metric labels.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Relative share, 1..=1000.
    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    /// Changes the weight (a reload that keeps the endpoint but edits its weight).
    pub fn set_weight(&self, weight: u32) {
        self.weight.store(weight.max(1), Ordering::Relaxed);
    }

    /// In-flight requests (HTTP) or open connections (TCP).
    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Relaxed)
    }

    /// Marks one unit of work started; the guard ends it when dropped.
    pub fn begin(self: &std::sync::Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(self.clone())
    }

    /// Takes a slot only if fewer than `limit` are in use (`maxConnectionsPerEndpoint`).
    pub fn try_begin(self: &std::sync::Arc<Self>, limit: Option<u32>) -> Option<ActiveGuard> {
        let Some(limit) = limit else {
            return Some(self.begin());
        };
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| ActiveGuard(self.clone()))
    }

    /// True when no flag keeps it from new work.
    pub fn is_available(&self) -> bool {
        self.flags.load(Ordering::Acquire) == 0
    }

    /// Whether `flag` is set.
    pub fn has(&self, flag: Unavailable) -> bool {
        self.flags.load(Ordering::Acquire) & flag as u8 != 0
    }

    /// Sets or clears `flag`: `None` when the flag already had that value, else whether
    /// availability changed.
    pub fn toggle(&self, flag: Unavailable, on: bool) -> Option<bool> {
        let before = if on {
            self.flags.fetch_or(flag as u8, Ordering::AcqRel)
        } else {
            self.flags.fetch_and(!(flag as u8), Ordering::AcqRel)
        };
        if (before & flag as u8 != 0) == on {
            return None;
        }
        let after = if on {
            before | flag as u8
        } else {
            before & !(flag as u8)
        };
        Some((before == 0) != (after == 0))
    }

    /// Sets or clears `flag`; returns true when availability changed.
    pub fn set(&self, flag: Unavailable, on: bool) -> bool {
        let before = if on {
            self.flags.fetch_or(flag as u8, Ordering::AcqRel)
        } else {
            self.flags.fetch_and(!(flag as u8), Ordering::AcqRel)
        };
        let after = if on {
            before | flag as u8
        } else {
            before & !(flag as u8)
        };
        (before == 0) != (after == 0)
    }

    /// Load-balancing cost for PowerOfTwoChoices: decayed peak-EWMA latency x (active + 1).
    pub fn cost(&self, now_ns: u64) -> f64 {
        let rtt = self.rtt_ns.load(Ordering::Relaxed) as f64;
        let stamp = self.rtt_stamp_ns.load(Ordering::Relaxed);
        let elapsed = now_ns.saturating_sub(stamp) as f64;
        let decayed = rtt * (-elapsed / DECAY_NS).exp();
        decayed * (self.active() as f64 + 1.0)
    }

    /// Folds a response latency into the estimate: a slower sample is taken at once
    /// (peak), a faster one is blended in with a weight that grows with the time since the
    /// last sample.
    pub fn observe_latency(&self, sample_ns: u64, now_ns: u64) {
        let prev = self.rtt_ns.load(Ordering::Relaxed);
        let stamp = self.rtt_stamp_ns.swap(now_ns, Ordering::Relaxed);
        let next = if sample_ns >= prev {
            sample_ns
        } else {
            let elapsed = now_ns.saturating_sub(stamp) as f64;
            let w = (-elapsed / DECAY_NS).exp();
            (prev as f64 * w + sample_ns as f64 * (1.0 - w)) as u64
        };
        self.rtt_ns.store(next, Ordering::Relaxed);
    }

    /// Current latency estimate in nanoseconds (without decay).
    pub fn rtt_ns(&self) -> u64 {
        self.rtt_ns.load(Ordering::Relaxed)
    }
}

/// Live-traffic failure accounting used by outlier detection.
#[derive(Debug, Default)]
pub struct OutlierState {
    /// Failures in a row (any success resets it).
    pub consecutive_failures: AtomicU32,
    /// Times ejected so far (multiplies the ejection time).
    pub ejections: AtomicU32,
}

/// Monotonic nanoseconds since process start, from tokio's clock (pausable in tests).
pub fn now_ns() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    Instant::now().saturating_duration_since(start).as_nanos() as u64
}

/// Holds one unit of an endpoint's `active` count until dropped.
#[derive(Debug)]
pub struct ActiveGuard(std::sync::Arc<Endpoint>);

impl ActiveGuard {
    /// The endpoint this guard counts against.
    pub fn endpoint(&self) -> &std::sync::Arc<Endpoint> {
        &self.0
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}
