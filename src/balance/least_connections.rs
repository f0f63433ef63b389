//! LeastConnections: the endpoint with the fewest in-flight requests per unit of weight.
//!
//! Minimizes `active / weight`, compared exactly by cross-multiplication
//! (`active_i * weight_j < active_j * weight_i` in `u64`), as nginx's `least_conn` does.
//! Both counters are read live from the endpoints (atomics), so the balancer keeps no
//! state and a weight edited by a reload is honoured as soon as the snapshot is rebuilt.
//!
//! Ties are common (an idle pool is all zeros) and must not favour the first endpoint,
//! nor whichever follows a random start offset (that favours endpoints after long gaps of
//! loaded ones). Reservoir sampling keeps each tied endpoint with equal probability in
//! one pass. A pick is O(n): the price of looking at every load.

use std::sync::Arc;

use super::{Balancer, PickContext};
use crate::pool::Endpoint;

/// Least-connections balancer, weight-aware, with unbiased tie-breaking.
#[derive(Debug)]
pub struct LeastConnections;

impl LeastConnections {
    /// Builds the balancer over `endpoints` (it keeps no state of its own).
    pub fn new(_endpoints: &[Arc<Endpoint>]) -> Self {
        LeastConnections
    }
}

impl Balancer for LeastConnections {
    fn pick(&self, endpoints: &[Arc<Endpoint>], ctx: &PickContext<'_>) -> Option<usize> {
        // (index, active, weight) of the current choice, and how many tie with it.
        let mut best: Option<(usize, u64, u64)> = None;
        let mut ties = 0usize;
        for (i, e) in endpoints.iter().enumerate() {
            if !(ctx.usable)(e) {
                continue;
            }
            let (active, weight) = (u64::from(e.active()), u64::from(e.weight().max(1)));
            match best {
                Some((_, best_active, best_weight)) => {
                    let (lhs, rhs) = (active * best_weight, best_active * weight);
                    if lhs < rhs {
                        best = Some((i, active, weight));
                        ties = 1;
                    } else if lhs == rhs {
                        ties += 1;
                        if fastrand::usize(..ties) == 0 {
                            best = Some((i, active, weight));
                        }
                    }
                }
                None => {
                    best = Some((i, active, weight));
                    ties = 1;
                }
            }
        }
        best.map(|(i, _, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::weighted as endpoints;
    use crate::pool::ActiveGuard;

    /// Gives each endpoint `load[i]` in-flight requests, held by the returned guards.
    fn load(eps: &[Arc<Endpoint>], load: &[u32]) -> Vec<ActiveGuard> {
        eps.iter()
            .zip(load)
            .flat_map(|(e, &n)| (0..n).map(|_| e.begin()))
            .collect()
    }

    #[test]
    fn picks_the_least_loaded_endpoint() {
        let eps = endpoints(&[1, 1, 1]);
        let _guards = load(&eps, &[3, 1, 2]);
        let lc = LeastConnections::new(&eps);
        for _ in 0..10 {
            assert_eq!(lc.pick(&eps, &PickContext::any()), Some(1));
        }
    }

    #[test]
    fn load_is_measured_relative_to_weight() {
        // 4 of weight 5 (0.8 each) is lighter than 1 of weight 1.
        let eps = endpoints(&[1, 5]);
        let _guards = load(&eps, &[1, 4]);
        let lc = LeastConnections::new(&eps);
        assert_eq!(lc.pick(&eps, &PickContext::any()), Some(1));
        let _more = load(&eps, &[0, 2]);
        assert_eq!(lc.pick(&eps, &PickContext::any()), Some(0));
    }

    #[test]
    fn picks_keep_an_idle_pool_balanced() {
        let eps = endpoints(&[1, 1, 1]);
        let lc = LeastConnections::new(&eps);
        let mut guards = Vec::new();
        for _ in 0..30 {
            let i = lc.pick(&eps, &PickContext::any()).unwrap();
            guards.push(eps[i].begin());
        }
        assert!(eps.iter().all(|e| e.active() == 10));
    }

    #[test]
    fn ties_are_spread_evenly_across_tied_endpoints() {
        // Tied endpoints 0 and 1 sit next to each other among loaded ones: a random
        // start offset would favour 0 nine times to one; each must get about half.
        let eps = endpoints(&[1; 10]);
        let _guards = load(&eps, &[0, 0, 5, 5, 5, 5, 5, 5, 5, 5]);
        let lc = LeastConnections::new(&eps);
        let mut counts = [0; 2];
        for _ in 0..4000 {
            counts[lc.pick(&eps, &PickContext::any()).unwrap()] += 1;
        }
        assert!(
            counts.iter().all(|&c| (1700..=2300).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn unusable_least_loaded_endpoint_is_passed_over() {
        let eps = endpoints(&[1, 1, 1]);
        let _guards = load(&eps, &[3, 0, 2]);
        let skipped = Arc::as_ptr(&eps[1]);
        let usable = |e: &Endpoint| !std::ptr::eq(e, skipped);
        let ctx = PickContext {
            hash: None,
            usable: &usable,
        };
        assert_eq!(LeastConnections::new(&eps).pick(&eps, &ctx), Some(2));
    }
}
