//! RoundRobin: each endpoint in turn.
//!
//! One shared atomic counter, advanced once per pick; the endpoint is the counter modulo
//! the endpoint count. No lock, no allocation, O(1) when the chosen endpoint is usable.
//! An unusable endpoint hands its turn to the next usable one in order (so only a full
//! scan, when most endpoints are unusable, costs O(n)).
//!
//! The counter starts at a random offset: a pool whose snapshot is rebuilt often (health
//! flaps, endpoint churn) would otherwise send the first request after every rebuild to
//! the first endpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Balancer, PickContext};
use crate::pool::Endpoint;

/// Round-robin balancer: a shared counter modulo the endpoint count.
#[derive(Debug)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    /// Builds the balancer over `endpoints`, starting at a random position.
    pub fn new(endpoints: &[Arc<Endpoint>]) -> Self {
        let start = if endpoints.is_empty() {
            0
        } else {
            fastrand::usize(..endpoints.len())
        };
        RoundRobin {
            next: AtomicUsize::new(start),
        }
    }
}

impl Balancer for RoundRobin {
    fn pick(&self, endpoints: &[Arc<Endpoint>], ctx: &PickContext<'_>) -> Option<usize> {
        let n = endpoints.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        scan_from(endpoints, start, ctx)
    }
}

/// First usable endpoint at or after `start`, wrapping around; `None` when none is.
pub(super) fn scan_from(
    endpoints: &[Arc<Endpoint>],
    start: usize,
    ctx: &PickContext<'_>,
) -> Option<usize> {
    let n = endpoints.len();
    (0..n)
        .map(|k| {
            let i = start + k;
            if i >= n { i - n } else { i }
        })
        .find(|&i| (ctx.usable)(&endpoints[i]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::endpoints;

    #[test]
    fn three_hundred_picks_over_three_give_one_hundred_each() {
        let eps = endpoints(3);
        let rr = RoundRobin::new(&eps);
        let mut counts = [0; 3];
        for _ in 0..300 {
            counts[rr.pick(&eps, &PickContext::any()).unwrap()] += 1;
        }
        assert_eq!(counts, [100, 100, 100]);
    }

    #[test]
    fn consecutive_picks_visit_endpoints_in_order() {
        let eps = endpoints(4);
        let rr = RoundRobin::new(&eps);
        let first = rr.pick(&eps, &PickContext::any()).unwrap();
        for k in 1..8 {
            assert_eq!(rr.pick(&eps, &PickContext::any()), Some((first + k) % 4));
        }
    }

    #[test]
    fn unusable_endpoint_hands_its_turn_to_the_next() {
        let eps = endpoints(3);
        let rr = RoundRobin::new(&eps);
        let skipped = Arc::as_ptr(&eps[1]);
        let usable = |e: &Endpoint| !std::ptr::eq(e, skipped);
        let ctx = PickContext {
            hash: None,
            usable: &usable,
        };
        let mut counts = [0; 3];
        for _ in 0..300 {
            counts[rr.pick(&eps, &ctx).unwrap()] += 1;
        }
        assert_eq!(counts[1], 0);
        assert_eq!(counts[0] + counts[2], 300);
    }

    #[test]
    fn no_endpoints_gives_none() {
        let rr = RoundRobin::new(&[]);
        assert_eq!(rr.pick(&[], &PickContext::any()), None);
    }
}
