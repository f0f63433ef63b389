//! Passive health: eject endpoints that fail live traffic, as Envoy's outlier detection
//! does. `consecutiveFailures` failures in a row eject for `baseEjectionTime` x times
//! ejected (at most 300 s); never more than `maxEjectionPercent` of the pool at once
//! (rounded down, but one endpoint may always be ejected). The endpoint returns by itself.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::config::OutlierConfig;
use crate::pool::{Endpoint, Pool, Snapshot, Unavailable};

/// Longest single ejection.
const MAX_EJECTION: Duration = Duration::from_secs(300);

/// Records the outcome of one request or connection to `endpoint` (a member of
/// `snapshot`, the pool's current snapshot); may eject it.
pub fn report(pool: &Arc<Pool>, snapshot: &Snapshot, endpoint: &Arc<Endpoint>, success: bool) {
    let Some(config) = snapshot.config.outlier_detection else {
        return;
    };
    let state = &endpoint.outlier;
    if success {
        if state.consecutive_failures.load(Ordering::Relaxed) != 0 {
            state.consecutive_failures.store(0, Ordering::Relaxed);
        }
        return;
    }
    let failures = state.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
    if failures < config.consecutive_failures || endpoint.has(Unavailable::Ejected) {
        return;
    }
    let members = snapshot.members.len();
    let ejected = snapshot
        .members
        .iter()
        .filter(|e| e.has(Unavailable::Ejected))
        .count();
    if ejected >= max_ejected(members, config.max_ejection_percent) {
        return;
    }
    eject(pool, endpoint, config);
}

/// How many of `members` may be ejected at once.
pub fn max_ejected(members: usize, percent: u32) -> usize {
    (members * percent.min(100) as usize / 100).max(1)
}

fn eject(pool: &Arc<Pool>, endpoint: &Arc<Endpoint>, config: OutlierConfig) {
    let Some(availability_changed) = endpoint.toggle(Unavailable::Ejected, true) else {
        // Another worker ejected it concurrently.
        return;
    };
    let times = endpoint.outlier.ejections.fetch_add(1, Ordering::AcqRel) + 1;
    let duration = config
        .base_ejection_time
        .saturating_mul(times)
        .min(MAX_EJECTION);
    endpoint
        .outlier
        .consecutive_failures
        .store(0, Ordering::Relaxed);
    tracing::warn!(
        pool = pool.name(),
        backend = endpoint.label(),
        ?duration,
        times,
        "endpoint ejected"
    );
    if availability_changed {
        pool.refresh();
    }
    let (pool, endpoint) = (pool.clone(), endpoint.clone());
    tokio::spawn(async move {
        tokio::time::sleep(duration).await;
        if endpoint.set(Unavailable::Ejected, false) {
            pool.refresh();
        }
        tracing::info!(
            pool = pool.name(),
            backend = endpoint.label(),
            "ejection ended"
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_least_one_endpoint_may_always_be_ejected() {
        assert_eq!(max_ejected(1, 50), 1);
        assert_eq!(max_ejected(3, 10), 1);
        assert_eq!(max_ejected(3, 50), 1);
        assert_eq!(max_ejected(4, 50), 2);
        assert_eq!(max_ejected(10, 100), 10);
    }

    /// A pool of three endpoints ejecting after 2 failures for 10 s x times ejected.
    fn pool() -> Arc<Pool> {
        let yaml = "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {name: web, namespace: t}\nspec:\n  listener: {port: 8080}\n  endpoints: [{address: \"198.18.0.1:1\"}, {address: \"198.18.0.1:2\"}, {address: \"198.18.0.1:3\"}]\n  outlierDetection: {consecutiveFailures: 2, baseEjectionTime: 10s, maxEjectionPercent: 50}\n";
        let set = crate::config::load_text("pools.yaml", yaml).expect("valid");
        Arc::new(Pool::new(set.pools[0].clone()))
    }

    fn fail(pool: &Arc<Pool>, endpoint: &Arc<Endpoint>) {
        report(pool, &pool.snapshot(), endpoint, false);
    }

    async fn advance(ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_endpoint_is_ejected_at_its_nth_failure_for_base_time_times_ejections() {
        let pool = pool();
        let ep = pool.snapshot().members[0].clone();
        fail(&pool, &ep);
        assert!(!ep.has(Unavailable::Ejected), "one failure is not enough");
        report(&pool, &pool.snapshot(), &ep, true);
        fail(&pool, &ep);
        assert!(!ep.has(Unavailable::Ejected), "a success resets the count");
        fail(&pool, &ep);
        assert!(ep.has(Unavailable::Ejected));
        assert_eq!(
            pool.snapshot().available.len(),
            2,
            "the snapshot leaves it out"
        );

        advance(9_900).await;
        assert!(ep.has(Unavailable::Ejected));
        advance(200).await;
        assert!(!ep.has(Unavailable::Ejected), "back after 10 s");
        assert_eq!(pool.snapshot().available.len(), 3);

        fail(&pool, &ep);
        fail(&pool, &ep);
        advance(19_900).await;
        assert!(ep.has(Unavailable::Ejected), "second ejection lasts 20 s");
        advance(200).await;
        assert!(!ep.has(Unavailable::Ejected));
    }

    #[tokio::test(start_paused = true)]
    async fn ejection_stops_at_max_ejection_percent() {
        let pool = pool();
        let members = pool.snapshot().members.clone();
        for ep in &members {
            fail(&pool, ep);
            fail(&pool, ep);
        }
        let ejected = members
            .iter()
            .filter(|e| e.has(Unavailable::Ejected))
            .count();
        assert_eq!(ejected, 1, "50% of 3, rounded down, but at least one");
    }
}
