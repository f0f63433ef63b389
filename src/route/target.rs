//! What a route leads to at run time: its configuration and its backends resolved to the
//! live pools, with the weighted choice precomputed so that picking a backend costs one
//! random number at most and no allocation.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{HeaderMap, StatusCode};

use crate::config::{RouteAction, RouteConfig};
use crate::pool::Pool;

/// A route with its backends resolved.
#[derive(Debug)]
pub struct Target {
    /// The route as configured (filters, path).
    pub route: Arc<RouteConfig>,
    /// Backends with their cumulative weights; weight-0 backends are left out.
    backends: Box<[(Arc<Pool>, u32)]>,
    /// Sum of the weights.
    total: u32,
    /// The canary backend, when the route splits one off and it resolved.
    canary: Option<Arc<Pool>>,
    /// The pool whose `sluice_canary_requests_total` counts canary requests.
    counted: Option<Arc<Pool>>,
    /// The pool whose run-time state (rate-limit buckets) and counters the route's access
    /// policies use: the route's owner (a BackendPool's own route is named after it), else
    /// its first backend. It outlives router rebuilds, so buckets survive reloads.
    pub owner: Option<Arc<Pool>>,
}

/// Where a request goes.
pub enum Pick<'a> {
    /// To this backend.
    Backend(&'a Arc<Pool>),
    /// Nowhere: sluice answers with this status.
    Answer(StatusCode),
}

impl Target {
    /// The owner pool's name (`namespace/name`), or `""` for a route without one.
    pub fn owner_name(&self) -> &str {
        self.owner.as_deref().map_or("", |p| p.name())
    }

    /// Resolves the route's backends by name with `lookup`; a name that does not resolve
    /// loses its share (its requests get 500, as Gateway API asks for invalid backends).
    pub fn new(route: Arc<RouteConfig>, lookup: impl Fn(&str) -> Option<Arc<Pool>>) -> Target {
        let mut backends = Vec::new();
        let mut total = 0u32;
        let mut canary = None;
        let mut counted = None;
        let mut unresolved = 0u32;
        if let RouteAction::Forward(to) = &route.action {
            for b in &to.backends {
                match lookup(&b.name) {
                    Some(pool) if b.weight > 0 => {
                        if counted.is_none() {
                            counted = Some(pool.clone());
                        }
                        total = total.saturating_add(b.weight);
                        backends.push((pool, total));
                    }
                    Some(_) => {}
                    None => unresolved = unresolved.saturating_add(b.weight),
                }
            }
            canary = to.canary.as_ref().and_then(|c| lookup(&c.backend));
        }
        if unresolved > 0 && total > 0 {
            // Keep the unresolved share as an error share: the valid backends still get
            // only their part of the traffic.
            total = total.saturating_add(unresolved);
        }
        let owner = lookup(&route.owner).or_else(|| counted.clone());
        Target {
            route,
            backends: backends.into_boxed_slice(),
            total,
            canary,
            counted,
            owner,
        }
    }

    /// The pools this target may send to (for the router's change detection).
    pub fn pools(&self) -> impl Iterator<Item = &Arc<Pool>> {
        self.backends
            .iter()
            .map(|(p, _)| p)
            .chain(self.canary.as_ref())
    }

    /// Chooses where a request with `headers` goes: the canary by header or by its share,
    /// else a backend by weight.
    pub fn pick(&self, headers: &HeaderMap) -> Pick<'_> {
        let to = match &self.route.action {
            RouteAction::Respond(status) => return Pick::Answer(*status),
            RouteAction::Forward(to) => to,
        };
        if let (Some(rule), Some(canary)) = (&to.canary, &self.canary) {
            let by_header = rule
                .header
                .as_ref()
                .is_some_and(|(name, value)| headers.get_all(name).iter().any(|v| v == value));
            if by_header || (rule.weight > 0 && fastrand::u32(..100) < rule.weight) {
                if let Some(main) = &self.counted {
                    main.stats.canary_requests.fetch_add(1, Ordering::Relaxed);
                }
                return Pick::Backend(canary);
            }
        }
        match &*self.backends {
            [] => Pick::Answer(StatusCode::INTERNAL_SERVER_ERROR),
            [(only, weight)] if *weight == self.total => Pick::Backend(only),
            all => {
                let n = fastrand::u32(..self.total.max(1));
                all.iter()
                    .find(|(_, upto)| n < *upto)
                    .map_or(Pick::Answer(StatusCode::INTERNAL_SERVER_ERROR), |(p, _)| {
                        Pick::Backend(p)
                    })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigSet, load_text};
    use std::collections::HashMap;

    /// Pools `t/a`, `t/b` and `t/c` from YAML (the data plane does not see API types).
    fn pools() -> (ConfigSet, HashMap<String, Arc<Pool>>) {
        let doc = |name: &str, path: &str| {
            format!(
                "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {{name: {name}, namespace: t}}\nspec: {{listener: {{port: 8080, pathPrefix: {path}}}, endpoints: [{{address: \"198.18.0.1:80\"}}]}}\n"
            )
        };
        let text = [doc("a", "/a"), doc("b", "/b"), doc("c", "/c")].join("---\n");
        let set = load_text("pools.yaml", &text).expect("valid");
        let live = set
            .pools
            .iter()
            .map(|c| (c.name.clone(), Arc::new(Pool::new(c.clone()))))
            .collect();
        (set, live)
    }

    fn route_to(set: &ConfigSet, backends: &[(&str, u32)]) -> Arc<RouteConfig> {
        let mut route = (*set.routes[0]).clone();
        route.action = RouteAction::Forward(crate::config::ForwardTo {
            backends: backends
                .iter()
                .map(|(name, weight)| crate::config::WeightedBackend {
                    name: (*name).to_owned(),
                    weight: *weight,
                })
                .collect(),
            canary: None,
        });
        Arc::new(route)
    }

    fn shares(target: &Target, n: usize) -> HashMap<String, usize> {
        let mut seen = HashMap::new();
        for _ in 0..n {
            let name = match target.pick(&HeaderMap::new()) {
                Pick::Backend(p) => p.name().to_owned(),
                Pick::Answer(s) => s.as_u16().to_string(),
            };
            *seen.entry(name).or_default() += 1;
        }
        seen
    }

    #[test]
    fn weighted_backends_share_requests_by_weight() {
        let (set, live) = pools();
        let route = route_to(&set, &[("t/a", 3), ("t/b", 1), ("t/c", 0)]);
        let target = Target::new(route, |n| live.get(n).cloned());
        fastrand::seed(7);
        let seen = shares(&target, 4_000);
        let a = seen.get("t/a").copied().unwrap_or(0);
        let b = seen.get("t/b").copied().unwrap_or(0);
        assert!((2_800..3_200).contains(&a), "{seen:?}");
        assert!((800..1_200).contains(&b), "{seen:?}");
        assert!(!seen.contains_key("t/c"), "weight 0 gets nothing: {seen:?}");
    }

    #[test]
    fn an_unknown_backend_keeps_its_share_as_errors() {
        let (set, live) = pools();
        let route = route_to(&set, &[("t/a", 1), ("t/missing", 1)]);
        let target = Target::new(route, |n| live.get(n).cloned());
        fastrand::seed(11);
        let seen = shares(&target, 2_000);
        let errors = seen.get("500").copied().unwrap_or(0);
        assert!((850..1_150).contains(&errors), "{seen:?}");
    }

    #[test]
    fn a_route_with_no_valid_backend_answers_500() {
        let (set, live) = pools();
        let route = route_to(&set, &[("t/missing", 1)]);
        let target = Target::new(route, |n| live.get(n).cloned());
        assert!(matches!(
            target.pick(&HeaderMap::new()),
            Pick::Answer(StatusCode::INTERNAL_SERVER_ERROR)
        ));
    }

    #[test]
    fn a_fixed_answer_route_answers_its_status() {
        let (set, live) = pools();
        let mut route = (*set.routes[0]).clone();
        route.action = RouteAction::Respond(StatusCode::SERVICE_UNAVAILABLE);
        let target = Target::new(Arc::new(route), |n| live.get(n).cloned());
        assert!(matches!(
            target.pick(&HeaderMap::new()),
            Pick::Answer(StatusCode::SERVICE_UNAVAILABLE)
        ));
        assert_eq!(target.pools().count(), 0);
    }

    #[test]
    fn a_single_backend_is_picked_without_a_random_draw() {
        let (set, live) = pools();
        let target = Target::new(set.routes[0].clone(), |n| live.get(n).cloned());
        fastrand::seed(3);
        let before = fastrand::u64(..);
        fastrand::seed(3);
        assert!(matches!(target.pick(&HeaderMap::new()), Pick::Backend(p) if p.name() == "t/a"));
        assert_eq!(fastrand::u64(..), before, "no random number was drawn");
    }
}
