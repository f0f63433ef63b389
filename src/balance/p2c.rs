//! PowerOfTwoChoices: two endpoints at random, keep the cheaper.
//!
//! The cost is linkerd's peak-EWMA latency times load ([`Endpoint::cost`]), read live.
//! Comparing two random endpoints instead of all of them is O(1) and avoids the herd
//! effect of always choosing the global minimum (every balancer instance rushing to the
//! same endpoint on a stale view), while still steering almost all traffic away from a
//! slow or overloaded endpoint (Mitzenmacher's "power of two choices").
//!
//! If one of the two is unusable the other is taken; if both are, a scan from a random
//! offset finds any usable endpoint.

use std::sync::Arc;

use super::round_robin::scan_from;
use super::{Balancer, PickContext};
use crate::pool::{Endpoint, now_ns};

/// Power-of-two-choices balancer over peak-EWMA cost.
#[derive(Debug)]
pub struct PowerOfTwoChoices;

impl PowerOfTwoChoices {
    /// Builds the balancer over `endpoints` (it keeps no state of its own).
    pub fn new(_endpoints: &[Arc<Endpoint>]) -> Self {
        PowerOfTwoChoices
    }
}

impl Balancer for PowerOfTwoChoices {
    fn pick(&self, endpoints: &[Arc<Endpoint>], ctx: &PickContext<'_>) -> Option<usize> {
        let n = endpoints.len();
        match n {
            0 => return None,
            1 => return (ctx.usable)(&endpoints[0]).then_some(0),
            _ => {}
        }
        // Two distinct indices, uniformly.
        let a = fastrand::usize(..n);
        let mut b = fastrand::usize(..n - 1);
        if b >= a {
            b += 1;
        }
        match ((ctx.usable)(&endpoints[a]), (ctx.usable)(&endpoints[b])) {
            (true, true) => {
                let now = now_ns();
                if endpoints[b].cost(now) < endpoints[a].cost(now) {
                    Some(b)
                } else {
                    Some(a)
                }
            }
            (true, false) => Some(a),
            (false, true) => Some(b),
            (false, false) => scan_from(endpoints, fastrand::usize(..n), ctx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::endpoints;

    fn counts(eps: &[Arc<Endpoint>], ctx: &PickContext<'_>, picks: usize) -> Vec<usize> {
        let p2c = PowerOfTwoChoices::new(eps);
        let mut counts = vec![0; eps.len()];
        for _ in 0..picks {
            counts[p2c.pick(eps, ctx).unwrap()] += 1;
        }
        counts
    }

    #[test]
    fn slow_endpoint_gets_few_picks() {
        let eps = endpoints(4);
        eps[2].observe_latency(200_000_000, now_ns());
        let counts = counts(&eps, &PickContext::any(), 4000);
        assert!(counts[2] < 100, "{counts:?}");
        for i in [0, 1, 3] {
            assert!(counts[i] > 1000, "{counts:?}");
        }
    }

    #[test]
    fn loaded_endpoint_gets_few_picks() {
        let eps = endpoints(3);
        let _guards: Vec<_> = (0..20).map(|_| eps[0].begin()).collect();
        let counts = counts(&eps, &PickContext::any(), 3000);
        assert!(counts[0] < 60, "{counts:?}");
    }

    #[test]
    fn equal_endpoints_share_evenly() {
        let eps = endpoints(3);
        let counts = counts(&eps, &PickContext::any(), 30_000);
        assert!(
            counts.iter().all(|&c| (9000..=11000).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn single_endpoint_is_picked_when_usable() {
        let eps = endpoints(1);
        let p2c = PowerOfTwoChoices::new(&eps);
        assert_eq!(p2c.pick(&eps, &PickContext::any()), Some(0));
        let ctx = PickContext {
            hash: None,
            usable: &|_| false,
        };
        assert_eq!(p2c.pick(&eps, &ctx), None);
    }

    #[test]
    fn the_only_usable_endpoint_is_always_found() {
        let eps = endpoints(10);
        let only = Arc::as_ptr(&eps[7]);
        let usable = |e: &Endpoint| std::ptr::eq(e, only);
        let ctx = PickContext {
            hash: None,
            usable: &usable,
        };
        assert_eq!(counts(&eps, &ctx, 200)[7], 200);
    }
}
