//! Which watch events can change what the data plane serves.
//!
//! Every watch event used to trigger a full rebuild of the desired state. The leader's own
//! status writes come back as BackendPool events, so at thousands of pools the controller
//! rebuilt everything for each status it wrote and never settled. Here each object keeps
//! a fingerprint of the parts the data plane reads (a BackendPool's spec, name and age, an
//! EndpointSlice's endpoints and ports, a Service's ports, a Secret's data); an event whose
//! object keeps its fingerprint (status, annotations, `managedFields`, `resourceVersion`)
//! changes nothing and triggers nothing.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::ResourceExt;
use kube::runtime::watcher::Event;
use serde::Serialize;

use crate::api::BackendPool;
use crate::controller::gateway::types::{
    GRPCRoute, Gateway, GatewayClass, HTTPRoute, ReferenceGrant,
};

/// The parts of an object the desired state is built from.
pub trait Relevant: ResourceExt {
    /// Feeds those parts to `h`.
    fn fingerprint(&self, h: &mut DefaultHasher);

    /// Whether the controller reads the object's annotations (Ingress annotations, the
    /// default-class mark): the reflector keeps them (but kubectl's last-applied copy).
    const READS_ANNOTATIONS: bool = false;
}

/// Hashes a serializable part (its JSON form: stable for equal values).
fn feed<T: Serialize>(h: &mut DefaultHasher, part: &T) {
    serde_json::to_vec(part).unwrap_or_default().hash(h);
}

impl Relevant for BackendPool {
    fn fingerprint(&self, h: &mut DefaultHasher) {
        feed(h, &self.spec);
        feed(h, &self.metadata.creation_timestamp);
        // Status reports the generation it observed: a new one must be written.
        self.metadata.generation.hash(h);
    }
}

impl Relevant for EndpointSlice {
    fn fingerprint(&self, h: &mut DefaultHasher) {
        feed(h, &self.endpoints);
        feed(h, &self.ports);
        feed(h, &self.address_type);
        feed(h, &self.metadata.labels);
    }
}

impl Relevant for Service {
    fn fingerprint(&self, h: &mut DefaultHasher) {
        feed(h, &self.spec.as_ref().map(|s| &s.ports));
    }
}

impl Relevant for Secret {
    fn fingerprint(&self, h: &mut DefaultHasher) {
        feed(h, &self.data);
        feed(h, &self.type_);
    }
}

impl Relevant for Ingress {
    const READS_ANNOTATIONS: bool = true;

    fn fingerprint(&self, h: &mut DefaultHasher) {
        feed(h, &self.spec);
        feed(h, &self.metadata.annotations);
        feed(h, &self.metadata.creation_timestamp);
    }
}

impl Relevant for IngressClass {
    const READS_ANNOTATIONS: bool = true;

    fn fingerprint(&self, h: &mut DefaultHasher) {
        feed(h, &self.spec);
        feed(h, &self.metadata.annotations);
    }
}

/// Gateway API objects: their spec, age (oldest wins) and generation (status reports
/// the generation it observed).
macro_rules! relevant_spec {
    ($($kind:ty),*) => {$(
        impl Relevant for $kind {
            fn fingerprint(&self, h: &mut DefaultHasher) {
                feed(h, &self.spec);
                feed(h, &self.metadata.creation_timestamp);
                self.metadata.generation.hash(h);
            }
        }
    )*};
}

relevant_spec!(GatewayClass, Gateway, HTTPRoute, GRPCRoute, ReferenceGrant);

impl Relevant for k8s_openapi::api::core::v1::Namespace {
    fn fingerprint(&self, h: &mut DefaultHasher) {
        feed(h, &self.metadata.labels);
    }
}

/// Fingerprints of the objects one watch has seen, by namespace/name.
#[derive(Debug, Default)]
pub struct Fingerprints {
    known: HashMap<(String, String), u64>,
    /// Objects listed since the watch (re)started, before `InitDone`.
    relisted: Option<HashMap<(String, String), u64>>,
}

impl Fingerprints {
    /// Records `event`; true when the desired state may have changed.
    pub fn changed<K: Relevant>(&mut self, event: &Event<K>) -> bool {
        match event {
            Event::Apply(obj) => self.known.insert(key(obj), print(obj)) != Some(print(obj)),
            Event::Delete(obj) => {
                self.known.remove(&key(obj));
                true
            }
            Event::Init => {
                self.relisted = Some(HashMap::new());
                false
            }
            Event::InitApply(obj) => {
                self.relisted
                    .get_or_insert_with(HashMap::new)
                    .insert(key(obj), print(obj));
                false
            }
            Event::InitDone => {
                let listed = self.relisted.take().unwrap_or_default();
                let same = listed == self.known;
                self.known = listed;
                // The first list always counts: the desired state starts from it.
                !same || self.known.is_empty()
            }
        }
    }
}

fn key<K: ResourceExt>(obj: &K) -> (String, String) {
    (obj.namespace().unwrap_or_default(), obj.name_any())
}

fn print<K: Relevant>(obj: &K) -> u64 {
    let mut h = DefaultHasher::new();
    obj.fingerprint(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BackendPoolStatus, ListenerSpec};

    fn pool(port: u32) -> BackendPool {
        let mut p = BackendPool::new(
            "web",
            crate::api::BackendPoolSpec {
                listener: ListenerSpec {
                    port,
                    ..Default::default()
                },
                ..Default::default()
            },
        );
        p.metadata.namespace = Some("shop".into());
        p.metadata.generation = Some(1);
        p
    }

    #[test]
    fn a_status_or_metadata_only_change_triggers_nothing() {
        let mut f = Fingerprints::default();
        assert!(f.changed(&Event::Apply(pool(8080))));
        let mut written = pool(8080);
        written.status = Some(BackendPoolStatus::default());
        written.metadata.resource_version = Some("42".into());
        written.metadata.annotations = Some([("a".to_owned(), "b".to_owned())].into());
        assert!(!f.changed(&Event::Apply(written)));
    }

    #[test]
    fn a_spec_change_a_new_generation_and_a_delete_trigger_a_rebuild() {
        let mut f = Fingerprints::default();
        assert!(f.changed(&Event::Apply(pool(8080))));
        assert!(f.changed(&Event::Apply(pool(9090))));
        let mut next = pool(9090);
        next.metadata.generation = Some(2);
        assert!(f.changed(&Event::Apply(next.clone())));
        assert!(f.changed(&Event::Delete(next)));
    }

    #[test]
    fn a_relist_triggers_only_when_it_differs_from_what_was_known() {
        let mut f = Fingerprints::default();
        let mut relist = |pools: Vec<BackendPool>| {
            assert!(!f.changed(&Event::<BackendPool>::Init));
            for p in pools {
                assert!(!f.changed(&Event::InitApply(p)));
            }
            f.changed(&Event::<BackendPool>::InitDone)
        };
        assert!(relist(vec![pool(8080)]), "the first list");
        assert!(!relist(vec![pool(8080)]), "the same objects again");
        assert!(
            relist(vec![pool(8081)]),
            "a spec changed while the watch was down"
        );
        assert!(relist(vec![]), "an object deleted while the watch was down");
    }
}
