//! Random: a uniformly random endpoint.
//!
//! `fastrand`'s thread-local generator: no shared state at all, so no contention between
//! cores, and no pattern a client could synchronize with. An unusable endpoint hands its
//! pick to the next usable one in order.

use std::sync::Arc;

use super::round_robin::scan_from;
use super::{Balancer, PickContext};
use crate::pool::Endpoint;

/// Uniform random balancer.
#[derive(Debug)]
pub struct Random;

impl Random {
    /// Builds the balancer over `endpoints` (it keeps no state of its own).
    pub fn new(_endpoints: &[Arc<Endpoint>]) -> Self {
        Random
    }
}

impl Balancer for Random {
    fn pick(&self, endpoints: &[Arc<Endpoint>], ctx: &PickContext<'_>) -> Option<usize> {
        if endpoints.is_empty() {
            return None;
        }
        scan_from(endpoints, fastrand::usize(..endpoints.len()), ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::endpoints;

    #[test]
    fn picks_are_roughly_uniform() {
        let eps = endpoints(3);
        let random = Random::new(&eps);
        let mut counts = [0; 3];
        for _ in 0..30_000 {
            counts[random.pick(&eps, &PickContext::any()).unwrap()] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9000..=11000).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn unusable_endpoint_is_never_picked() {
        let eps = endpoints(3);
        let skipped = Arc::as_ptr(&eps[0]);
        let usable = |e: &Endpoint| !std::ptr::eq(e, skipped);
        let ctx = PickContext {
            hash: None,
            usable: &usable,
        };
        let random = Random::new(&eps);
        assert!((0..300).all(|_| random.pick(&eps, &ctx) != Some(0)));
    }

    #[test]
    fn no_endpoints_gives_none() {
        assert_eq!(Random::new(&[]).pick(&[], &PickContext::any()), None);
    }
}
