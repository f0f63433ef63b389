//! `BackendPool.status` and Events: what `kubectl get bp` / `kubectl describe bp` show.
//!
//! Status is computed from the desired set and the live pools (pure), and written by the
//! leader only, with server-side apply, at most once per pool per second and only when it
//! changed — a flapping endpoint cannot flood the API server.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};

use super::events::{CONDITION_MESSAGE_MAX_BYTES, truncate_on_char_boundary};
use super::index::{Desired, Refusal, pool_name};
use crate::api::{
    BackendPool, BackendPoolStatus, BackendStatus, EndpointCounts, MAX_STATUS_BACKENDS,
};
use crate::pool::{Pool, Snapshot};

/// The status `pool` should have now. `live` is the served pool (absent when refused);
/// `previous` keeps the condition's transition time when its status did not change.
pub fn compute(
    pool: &BackendPool,
    desired: &Desired,
    live: Option<&Pool>,
    previous: Option<&BackendPoolStatus>,
    now: &Time,
) -> BackendPoolStatus {
    let name = pool_name(pool);
    let mut backends: Vec<BackendStatus> = live
        .map(|p| {
            p.snapshot()
                .members
                .iter()
                .map(|e| BackendStatus {
                    address: e.label().to_owned(),
                    healthy: e.is_available(),
                    weight: e.weight(),
                })
                .collect()
        })
        .unwrap_or_default();
    let total = backends.len() as u32;
    let healthy = backends.iter().filter(|b| b.healthy).count() as u32;
    backends.sort_by(|a, b| {
        a.healthy
            .cmp(&b.healthy)
            .then_with(|| a.address.cmp(&b.address))
    });
    backends.truncate(MAX_STATUS_BACKENDS);

    let (status, reason, message) = match desired.refused.get(&name) {
        Some(refusal) => ("False", refusal.reason.to_owned(), refusal.message.clone()),
        // A redirect answers by itself: it needs no endpoint to be ready.
        None if pool.spec.redirect.is_some() => (
            "True",
            "Redirects".to_owned(),
            "the pool answers with a redirect".to_owned(),
        ),
        None if total == 0 => (
            "False",
            "NoEndpoints".to_owned(),
            desired
                .unresolved
                .get(&name)
                .cloned()
                .unwrap_or_else(|| "the pool has no endpoints".to_owned()),
        ),
        None if healthy == 0 => (
            "False",
            "NoHealthyEndpoints".to_owned(),
            format!("0/{total} endpoints healthy"),
        ),
        None => (
            "True",
            "EndpointsHealthy".to_owned(),
            format!("{healthy}/{total} endpoints healthy"),
        ),
    };
    let previous_ready = previous.and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
    let last_transition_time = match previous_ready {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => now.clone(),
    };
    let message = match truncate_on_char_boundary(&message, CONDITION_MESSAGE_MAX_BYTES) {
        cut if cut.len() < message.len() => cut.to_owned(),
        _ => message,
    };
    let generation = pool.metadata.generation;
    BackendPoolStatus {
        observed_generation: generation,
        conditions: vec![Condition {
            type_: "Ready".to_owned(),
            status: status.to_owned(),
            reason,
            message,
            last_transition_time,
            observed_generation: generation,
        }],
        endpoints: Some(EndpointCounts { total, healthy }),
        healthy: Some(format!("{healthy}/{total}")),
        backends,
    }
}

/// Status writes in flight at once.
pub const STATUS_CONCURRENCY: usize = 16;
/// Client-side limit on status writes per second: 10,000 new pools are written in 40 s
/// while the API server keeps room for everything else (and for other controllers).
pub const STATUS_WRITES_PER_SECOND: u32 = 250;

/// What a pool's status is computed from: the same inputs give the same status, so a
/// pool whose object, served snapshot and refusal did not change costs a comparison.
#[derive(Debug, Clone)]
struct Inputs {
    object: Arc<BackendPool>,
    snapshot: Option<Arc<Snapshot>>,
    refusal: Option<Refusal>,
    unresolved: Option<String>,
}

impl Inputs {
    fn of(object: &Arc<BackendPool>, name: &str, desired: &Desired, live: Option<&Pool>) -> Self {
        Inputs {
            object: object.clone(),
            snapshot: live.map(Pool::snapshot),
            refusal: desired.refused.get(name).cloned(),
            unresolved: desired.unresolved.get(name).cloned(),
        }
    }

    fn same(&self, other: &Inputs) -> bool {
        Arc::ptr_eq(&self.object, &other.object)
            && match (&self.snapshot, &other.snapshot) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
            && self.refusal == other.refusal
            && self.unresolved == other.unresolved
    }
}

/// Statuses as last written (and what they were computed from), to write only changes.
#[derive(Debug, Default)]
pub struct Written {
    last: HashMap<String, (BackendPoolStatus, Inputs)>,
    /// Everything the last round read, when all its writes succeeded: a round that reads
    /// the very same objects has nothing to write and is skipped whole.
    settled: Option<Round>,
}

/// The inputs of one round, by identity.
#[derive(Debug)]
struct Round {
    desired: Arc<Desired>,
    objects: Vec<Arc<BackendPool>>,
    snapshots: Vec<Arc<Snapshot>>,
}

impl Round {
    fn same(&self, other: &Round) -> bool {
        fn all_same<T>(a: &[Arc<T>], b: &[Arc<T>]) -> bool {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Arc::ptr_eq(x, y))
        }
        Arc::ptr_eq(&self.desired, &other.desired)
            && all_same(&self.objects, &other.objects)
            && all_same(&self.snapshots, &other.snapshots)
    }
}

/// Two statuses that differ only in transition time are the same for writing purposes.
fn same(a: &BackendPoolStatus, b: &BackendPoolStatus) -> bool {
    let strip = |s: &BackendPoolStatus| {
        let mut s = s.clone();
        for c in &mut s.conditions {
            c.last_transition_time = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        }
        s
    };
    strip(a) == strip(b)
}

/// A status to write.
struct Pending {
    name: String,
    object: Arc<BackendPool>,
    status: BackendPoolStatus,
    inputs: Inputs,
}

impl Written {
    /// Writes every pool's status that changed since the last write: at most
    /// [`STATUS_CONCURRENCY`] at once and [`STATUS_WRITES_PER_SECOND`].
    pub async fn sync(
        &mut self,
        client: &kube::Client,
        manager: &str,
        pools: Vec<Arc<BackendPool>>,
        desired: Arc<Desired>,
        served: &[Arc<Pool>],
    ) {
        let round = Round {
            desired,
            objects: pools,
            snapshots: served.iter().map(|p| p.snapshot()).collect(),
        };
        if self.settled.as_ref().is_some_and(|r| r.same(&round)) {
            return;
        }
        let live: HashMap<&str, &Arc<Pool>> = served.iter().map(|p| (p.name(), p)).collect();
        let (pools, desired) = (&round.objects, &round.desired);
        let pending = self.changed(pools, desired, &live);
        let spacing = Duration::from_secs(1) / STATUS_WRITES_PER_SECOND;
        let start = tokio::time::Instant::now();
        let mut writes = futures_util::stream::iter(pending.into_iter().enumerate())
            .map(|(i, p)| {
                let at = start + spacing * u32::try_from(i).unwrap_or(u32::MAX);
                async move {
                    tokio::time::sleep_until(at).await;
                    let written = write(client, manager, &p.object, &p.status).await;
                    (p, written)
                }
            })
            .buffer_unordered(STATUS_CONCURRENCY);
        let mut all_written = true;
        while let Some((p, written)) = writes.next().await {
            match written {
                Ok(()) => {
                    self.last.insert(p.name, (p.status, p.inputs));
                }
                Err(e) => {
                    all_written = false;
                    tracing::warn!(pool = %p.name, error = %e, "status write failed");
                }
            }
        }
        drop(writes);
        self.settled = all_written.then_some(round);
    }

    /// The statuses that differ from what was last written; forgets deleted pools.
    fn changed(
        &mut self,
        pools: &[Arc<BackendPool>],
        desired: &Desired,
        live: &HashMap<&str, &Arc<Pool>>,
    ) -> Vec<Pending> {
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let mut seen = std::collections::HashSet::with_capacity(pools.len());
        let mut pending = Vec::new();
        for object in pools {
            let name = pool_name(object);
            let served = live.get(name.as_str()).map(|p| p.as_ref());
            let inputs = Inputs::of(object, &name, desired, served);
            seen.insert(name.clone());
            let last = self.last.get(&name);
            if last.is_some_and(|(_, was)| was.same(&inputs)) {
                continue;
            }
            // What we last wrote, else what the object shows (a new leader starts from it).
            let previous = last.map(|(s, _)| s).or(object.status.as_ref());
            let status = compute(object, desired, served, previous, &now);
            if previous.is_some_and(|p| same(p, &status)) {
                self.last.insert(name, (status, inputs));
                continue;
            }
            pending.push(Pending {
                name,
                object: object.clone(),
                status,
                inputs,
            });
        }
        self.last.retain(|k, _| seen.contains(k));
        pending
    }

    /// Forgets what was written (leadership lost: the next leader rewrites).
    pub fn clear(&mut self) {
        self.last.clear();
        self.settled = None;
    }
}

/// Server-side apply of `status` on `pool`'s status subresource.
async fn write(
    client: &kube::Client,
    manager: &str,
    pool: &BackendPool,
    status: &BackendPoolStatus,
) -> Result<(), kube::Error> {
    let ns = pool.namespace().unwrap_or_else(|| "default".to_owned());
    let api: Api<BackendPool> = Api::namespaced(client.clone(), &ns);
    let patch = serde_json::json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "BackendPool",
        "status": status,
    });
    api.patch_status(
        &pool.name_any(),
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> BackendPool {
        serde_norway::from_str(
            "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {name: web, namespace: shop, generation: 3}\nspec: {listener: {port: 8080}, endpoints: []}\n",
        )
        .unwrap()
    }

    fn at(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
    }

    /// Marks everything `changed` returned as written, as a successful sync does.
    fn written(w: &mut Written, pending: Vec<Pending>) -> usize {
        let n = pending.len();
        for p in pending {
            w.last.insert(p.name, (p.status, p.inputs));
        }
        n
    }

    #[test]
    fn a_status_is_recomputed_and_written_only_when_its_inputs_change() {
        let object = Arc::new(pool());
        let live = HashMap::new();
        let mut w = Written::default();
        let first = w.changed(std::slice::from_ref(&object), &Desired::default(), &live);
        assert_eq!(written(&mut w, first), 1, "a new pool gets its status");
        let again = w.changed(std::slice::from_ref(&object), &Desired::default(), &live);
        assert_eq!(again.len(), 0, "nothing changed, nothing to write");

        let mut desired = Desired::default();
        desired.refused.insert(
            "shop/web".into(),
            Refusal {
                reason: "Conflict",
                message: "taken".into(),
            },
        );
        let refused = w.changed(std::slice::from_ref(&object), &desired, &live);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].status.conditions[0].reason, "Conflict");
        written(&mut w, refused);

        // A new object version with the same status is checked, not written.
        let touched = Arc::new(pool());
        assert_eq!(w.changed(&[touched], &desired, &live).len(), 0);
        assert_eq!(w.changed(&[], &desired, &live).len(), 0);
        assert!(w.last.is_empty(), "a deleted pool is forgotten");
    }

    #[test]
    fn refused_pool_is_not_ready_with_the_reason_and_field() {
        let mut desired = Desired::default();
        desired.refused.insert(
            "shop/web".into(),
            Refusal {
                reason: "InvalidSpec",
                message: "shop/web: spec.algorithm: unknown".into(),
            },
        );
        let s = compute(&pool(), &desired, None, None, &at(10));
        let c = &s.conditions[0];
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
            ("Ready", "False", "InvalidSpec")
        );
        assert!(c.message.contains("spec.algorithm"));
        assert_eq!(s.observed_generation, Some(3));
    }

    #[test]
    fn long_non_ascii_refusal_message_is_cut_to_the_condition_limit() {
        let mut desired = Desired::default();
        // 32767 ASCII bytes, then a 3-byte character across the 32768-byte limit.
        let head = "x".repeat(CONDITION_MESSAGE_MAX_BYTES - 1);
        desired.refused.insert(
            "shop/web".into(),
            Refusal {
                reason: "InvalidSpec",
                message: format!("{head}€ more"),
            },
        );
        let s = compute(&pool(), &desired, None, None, &at(10));
        assert_eq!(s.conditions[0].message, head);
    }

    #[test]
    fn pool_without_endpoints_says_so_and_keeps_its_transition_time() {
        let desired = Desired::default();
        let first = compute(&pool(), &desired, None, None, &at(10));
        assert_eq!(first.conditions[0].reason, "NoEndpoints");
        assert_eq!(first.healthy.as_deref(), Some("0/0"));
        let again = compute(&pool(), &desired, None, Some(&first), &at(20));
        assert_eq!(again.conditions[0].last_transition_time, at(10));
        assert!(same(&first, &again));
    }

    #[test]
    fn unhealthy_backends_are_listed_first_and_capped() {
        use crate::config::{
            Algorithm, EndpointConfig, ListenerConfig, PoolConfig, Protocol, ProxyProtocolVersion,
            Timeouts,
        };
        let endpoints: Vec<EndpointConfig> = (0..150)
            .map(|i| EndpointConfig {
                address: format!("198.18.0.{}:{}", i % 250, 1000 + i)
                    .parse()
                    .unwrap(),
                weight: 1,
                ready: true,
            })
            .collect();
        let cfg = PoolConfig {
            name: "shop/web".into(),
            protocol: Protocol::Http,
            listener: ListenerConfig {
                port: 8080,
                hosts: vec![],
                path_prefix: "/".into(),
                tls: None,
                proxy_protocol: false,
                matches: Default::default(),
            },
            endpoints,
            algorithm: Algorithm::RoundRobin,
            health_check: None,
            outlier_detection: None,
            retry: None,
            affinity: None,
            timeouts: Timeouts::default(),
            drain_timeout: std::time::Duration::from_secs(30),
            max_connections_per_endpoint: None,
            send_proxy_protocol: ProxyProtocolVersion::None,
            filters: Default::default(),
            canary: None,
            upstream: Default::default(),
            dns: None,
        };
        let live = Pool::new(std::sync::Arc::new(cfg));
        let sick = live.snapshot().members[140].clone();
        sick.set(crate::pool::Unavailable::Unhealthy, true);
        live.refresh();
        let s = compute(&pool(), &Desired::default(), Some(&live), None, &at(1));
        assert_eq!(s.backends.len(), MAX_STATUS_BACKENDS);
        assert_eq!(s.backends[0].address, sick.label());
        assert!(!s.backends[0].healthy);
        assert_eq!(
            s.endpoints,
            Some(EndpointCounts {
                total: 150,
                healthy: 149
            })
        );
        assert_eq!(s.conditions[0].status, "True");
        assert_eq!(s.conditions[0].message, "149/150 endpoints healthy");
    }
}
