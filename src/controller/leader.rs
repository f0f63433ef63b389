//! Leader election on a `coordination.k8s.io` Lease, as client-go's leaderelection does it:
//! hold the Lease by renewing it every 2 s; take it over when its holder has not renewed for
//! the lease duration (15 s). Updates carry the `resourceVersion` read, so two replicas
//! racing for an expired Lease cannot both win. Only the leader writes status and Events;
//! every replica serves traffic. On shutdown the leader releases the Lease (client-go's
//! `ReleaseOnCancel`), so another replica takes over within one retry period instead of
//! waiting out the lease duration; the release is bounded by [`RELEASE_TIMEOUT`] and the
//! caller awaits [`run`] before the process exits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;

/// How long a Lease stays valid without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews (and others retry).
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);
/// Longest wait for the Lease release on shutdown (then the Lease is left to expire).
pub const RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether this replica currently leads.
#[derive(Debug, Clone, Default)]
pub struct Leadership(Arc<AtomicBool>);

impl Leadership {
    /// Always leader (leader election off: a single replica).
    pub fn always() -> Self {
        Leadership(Arc::new(AtomicBool::new(true)))
    }

    /// The flag itself, for `sluice_leader`.
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.0)
    }

    /// True while this replica holds the Lease.
    pub fn is_leader(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self, leader: bool) {
        if self.0.swap(leader, Ordering::AcqRel) != leader {
            if leader {
                tracing::info!("became leader");
            } else {
                tracing::warn!("lost leadership");
            }
        }
    }
}

/// Runs the election loop until `stop`; `leadership` follows the outcome. On `stop` a
/// leader releases the Lease (bounded by [`RELEASE_TIMEOUT`]) before this returns.
pub async fn run(
    api: Api<Lease>,
    name: String,
    identity: String,
    leadership: Leadership,
    stop: CancellationToken,
) {
    loop {
        let leader = match try_acquire_or_renew(&api, &name, &identity).await {
            Ok(leader) => leader,
            Err(e) => {
                tracing::warn!(lease = %name, error = %e, "leader election request failed");
                false
            }
        };
        leadership.set(leader);
        tokio::select! {
            _ = stop.cancelled() => {
                // Stop leading first: nothing may write status once the Lease is given up.
                let was_leader = leadership.is_leader();
                leadership.set(false);
                if was_leader {
                    match tokio::time::timeout(RELEASE_TIMEOUT, release(&api, &name, &identity)).await {
                        Ok(Ok(true)) => tracing::info!(lease = %name, "released the leader lease"),
                        Ok(Ok(false)) => {}
                        Ok(Err(e)) => tracing::warn!(lease = %name, error = %e, "cannot release the leader lease; it expires on its own"),
                        Err(_) => tracing::warn!(lease = %name, "releasing the leader lease timed out; it expires on its own"),
                    }
                }
                return;
            }
            _ = tokio::time::sleep(RETRY_PERIOD) => {}
        }
    }
}

fn spec_for(identity: &str, now: Timestamp, previous: Option<&LeaseSpec>) -> LeaseSpec {
    let same_holder = previous.and_then(|p| p.holder_identity.as_deref()) == Some(identity);
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(identity.to_owned()),
        lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
        acquire_time: if same_holder {
            previous.and_then(|p| p.acquire_time.clone())
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if same_holder || previous.is_none() {
            transitions
        } else {
            transitions + 1
        }),
        ..Default::default()
    }
}

/// True when the Lease `spec` has expired at `now`.
pub fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    let duration = i64::from(
        spec.lease_duration_seconds
            .unwrap_or(LEASE_DURATION.as_secs() as i32),
    );
    renewed.0 + SignedDuration::from_secs(duration) < now
}

async fn try_acquire_or_renew(
    api: &Api<Lease>,
    name: &str,
    identity: &str,
) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let Some(mut lease) = api.get_opt(name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..Default::default()
            },
            spec: Some(spec_for(identity, now, None)),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let current = lease.spec.clone().unwrap_or_default();
    if !may_take(&current, identity, now) {
        return Ok(false);
    }
    lease.spec = Some(spec_for(identity, now, Some(&current)));
    // `replace` sends the resourceVersion we read: a concurrent writer makes this a 409.
    match api.replace(name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether `identity` may write the Lease `spec` at `now`: it holds it, nobody does
/// (released: no holder, or client-go's empty holder), or the holder let it expire.
fn may_take(spec: &LeaseSpec, identity: &str, now: Timestamp) -> bool {
    match spec.holder_identity.as_deref() {
        None | Some("") => true,
        Some(holder) => holder == identity || expired(spec, now),
    }
}

/// The Lease `spec` given up by `identity` at `now`, as client-go's `ReleaseOnCancel`
/// writes it: no holder, a duration of 1 s from a fresh renewal (so even a client that
/// ignores the missing holder sees it expire at once), transitions kept. `None` when
/// `identity` does not hold it (another replica took over: nothing to give up).
fn released(spec: &LeaseSpec, identity: &str, now: Timestamp) -> Option<LeaseSpec> {
    if spec.holder_identity.as_deref() != Some(identity) {
        return None;
    }
    Some(LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: spec.lease_transitions,
        ..Default::default()
    })
}

/// Gives the Lease up on shutdown so another replica takes over at once. `Ok(true)` when
/// released; `Ok(false)` when this replica did not hold it or lost a write race (409).
async fn release(api: &Api<Lease>, name: &str, identity: &str) -> Result<bool, kube::Error> {
    let Some(mut lease) = api.get_opt(name).await? else {
        return Ok(false);
    };
    let current = lease.spec.clone().unwrap_or_default();
    let Some(spec) = released(&current, identity, Timestamp::now()) else {
        return Ok(false);
    };
    lease.spec = Some(spec);
    // `replace` sends the resourceVersion just read: a concurrent writer makes this a 409.
    match api.replace(name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_expires_after_its_duration() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let spec = spec_for("a", t0, None);
        assert!(!expired(&spec, t0 + SignedDuration::from_secs(14)));
        assert!(expired(&spec, t0 + SignedDuration::from_secs(16)));
    }

    #[test]
    fn takeover_counts_a_transition_and_renewal_does_not() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let a = spec_for("a", t0, None);
        let renewed = spec_for("a", t0 + SignedDuration::from_secs(2), Some(&a));
        assert_eq!(renewed.lease_transitions, Some(0));
        assert_eq!(renewed.acquire_time, a.acquire_time);
        let taken = spec_for("b", t0 + SignedDuration::from_secs(20), Some(&renewed));
        assert_eq!(taken.lease_transitions, Some(1));
        assert_eq!(taken.holder_identity.as_deref(), Some("b"));
    }

    #[test]
    fn a_released_lease_is_free_for_another_replica_at_once() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let held = spec_for("a", t0, None);
        let later = t0 + SignedDuration::from_secs(3);
        assert!(!may_take(&held, "b", later));
        let given_up = released(&held, "a", later).expect("a holds the lease");
        assert_eq!(given_up.holder_identity, None);
        assert_eq!(given_up.lease_duration_seconds, Some(1));
        assert_eq!(given_up.renew_time, Some(MicroTime(later)));
        assert!(may_take(&given_up, "b", later));
        let taken = spec_for("b", later, Some(&given_up));
        assert_eq!(taken.holder_identity.as_deref(), Some("b"));
        assert_eq!(taken.lease_duration_seconds, Some(15));
    }

    #[test]
    fn a_replica_never_releases_a_lease_another_one_holds() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let taken_over = spec_for("b", t0, None);
        assert_eq!(released(&taken_over, "a", t0), None);
    }

    #[test]
    fn a_lease_released_by_client_go_with_an_empty_holder_is_free() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let spec = LeaseSpec {
            holder_identity: Some(String::new()),
            lease_duration_seconds: Some(1),
            renew_time: Some(MicroTime(t0)),
            ..Default::default()
        };
        assert!(may_take(&spec, "b", t0));
    }
}
