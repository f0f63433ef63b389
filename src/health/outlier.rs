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
}
