//! The Ingress front end's API conversations, made by the leader only: a Warning Event for
//! each problem of an Ingress (when its problems change) and `status.loadBalancer` on the
//! Ingresses served, from `--publish-service` or `--publish-address`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{Ingress, IngressLoadBalancerIngress};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::STATUS_PERIOD;
use super::events::{EVENT_NOTE_MAX_BYTES, truncate_on_char_boundary};
use super::ingress::Problem;
use super::leader::Leadership;

/// Where Ingress clients reach sluice, for `status.loadBalancer.ingress`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publish {
    /// `--publish-service NS/NAME`: its LoadBalancer IPs/hostnames, else its ClusterIPs.
    Service {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// `--publish-address ADDR`: an IP address or a hostname.
    Address(String),
}

impl std::str::FromStr for Publish {
    type Err = String;

    /// `NS/NAME` (for `--publish-service`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(Publish::Service {
                    namespace: ns.to_owned(),
                    name: name.to_owned(),
                })
            }
            _ => Err(format!("{s:?} is not NAMESPACE/NAME")),
        }
    }
}

/// The `status.loadBalancer.ingress` entries `publish` gives; `None` while the published
/// Service is not known.
pub fn load_balancer(
    publish: &Publish,
    services: &[Arc<Service>],
) -> Option<Vec<IngressLoadBalancerIngress>> {
    let entry = |addr: &str| match addr.parse::<IpAddr>() {
        Ok(_) => IngressLoadBalancerIngress {
            ip: Some(addr.to_owned()),
            ..Default::default()
        },
        Err(_) => IngressLoadBalancerIngress {
            hostname: Some(addr.to_owned()),
            ..Default::default()
        },
    };
    match publish {
        Publish::Address(a) => Some(vec![entry(a)]),
        Publish::Service { namespace, name } => {
            let svc = services.iter().find(|s| {
                s.namespace().as_deref() == Some(namespace.as_str()) && s.name_any() == *name
            })?;
            Some(
                super::index::service_addresses(svc)
                    .iter()
                    .map(|a| entry(a))
                    .collect(),
            )
        }
    }
}

/// Publishes a Warning Event for every problem of each Ingress whose problems differ from
/// `before`.
pub async fn problem_events(
    recorder: &Recorder,
    ingresses: &Store<Ingress>,
    now: &BTreeMap<String, Vec<Problem>>,
    before: &BTreeMap<String, Vec<Problem>>,
) {
    for (name, problems) in now {
        if before.get(name) == Some(problems) {
            continue;
        }
        let Some(ingress) = find(ingresses, name) else {
            continue;
        };
        for p in problems {
            let event = Event {
                type_: EventType::Warning,
                reason: p.reason.to_owned(),
                note: Some(truncate_on_char_boundary(&p.message, EVENT_NOTE_MAX_BYTES).to_owned()),
                action: "Translate".to_owned(),
                secondary: None,
            };
            if let Err(e) = recorder.publish(&event, &ingress.object_ref(&())).await {
                tracing::debug!(error = %e, ingress = name, "event not recorded");
            }
        }
    }
}

fn find(ingresses: &Store<Ingress>, name: &str) -> Option<Arc<Ingress>> {
    let (ns, n) = name.split_once('/')?;
    ingresses.get(&ObjectRef::new(n).within(ns))
}

/// Whether `ingress`, which sluice does not serve (now), still shows the
/// `status.loadBalancer` sluice writes: exactly our addresses `lb`. (The watch caches drop
/// managed fields to save memory, so the writer is known by what was written.) Another
/// controller's addresses are never taken away.
pub fn shows_our_stale_status(ingress: &Ingress, lb: &[IngressLoadBalancerIngress]) -> bool {
    let shown = ingress
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_deref())
        .unwrap_or_default();
    !shown.is_empty() && shown == lb
}

/// The leader's loop writing `status.loadBalancer` of the served Ingresses (`served`, by
/// `namespace/name`) whenever it differs from what the Ingress shows, and clearing it on
/// the Ingresses no longer served (refused, or moved to another class) that still show it.
#[allow(clippy::too_many_arguments)]
pub async fn write_status(
    client: Client,
    manager: String,
    ingresses: Store<Ingress>,
    services: Store<Service>,
    served: Arc<Mutex<Arc<BTreeSet<String>>>>,
    publish: Option<Publish>,
    leadership: Leadership,
    stop: CancellationToken,
) {
    let Some(publish) = publish else { return };
    let mut tick = tokio::time::interval(STATUS_PERIOD);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !leadership.is_leader() {
            continue;
        }
        let Some(lb) = load_balancer(&publish, &services.state()) else {
            continue;
        };
        let served = served.lock().clone();
        clear_unserved(&client, &manager, &ingresses, &served, &lb).await;
        for name in served.iter() {
            let Some(ingress) = find(&ingresses, name) else {
                continue;
            };
            let shown = ingress
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|l| l.ingress.clone())
                .unwrap_or_default();
            if shown == lb {
                continue;
            }
            let api: Api<Ingress> =
                Api::namespaced(client.clone(), &ingress.namespace().unwrap_or_default());
            let patch = serde_json::json!({"status": {"loadBalancer": {"ingress": lb}}});
            let params = PatchParams {
                field_manager: Some(manager.clone()),
                ..Default::default()
            };
            if let Err(e) = api
                .patch_status(&ingress.name_any(), &params, &Patch::Merge(&patch))
                .await
            {
                tracing::warn!(error = %e, ingress = name, "status.loadBalancer not written");
            }
        }
    }
}

/// Clears `status.loadBalancer` on every Ingress not in `served` that shows ours.
async fn clear_unserved(
    client: &Client,
    manager: &str,
    ingresses: &Store<Ingress>,
    served: &BTreeSet<String>,
    lb: &[IngressLoadBalancerIngress],
) {
    for ingress in ingresses.state() {
        let name = super::ingress::ingress_name(&ingress);
        if served.contains(&name) || !shows_our_stale_status(&ingress, lb) {
            continue;
        }
        let api: Api<Ingress> =
            Api::namespaced(client.clone(), &ingress.namespace().unwrap_or_default());
        let patch = serde_json::json!({"status": {"loadBalancer": {"ingress": null}}});
        let params = PatchParams {
            field_manager: Some(manager.to_owned()),
            ..Default::default()
        };
        match api
            .patch_status(&ingress.name_any(), &params, &Patch::Merge(&patch))
            .await
        {
            Ok(_) => tracing::info!(ingress = name, "not served: status.loadBalancer cleared"),
            Err(e) => {
                tracing::warn!(error = %e, ingress = name, "status.loadBalancer not cleared")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_own_addresses_count_as_our_stale_status() {
        let lb = load_balancer(&Publish::Address("198.18.0.5".into()), &[]).unwrap();
        let with = |addr: &str| -> Ingress {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "web", "namespace": "shop"},
                "status": {"loadBalancer": {"ingress": [{"ip": addr}]}},
            }))
            .unwrap()
        };
        assert!(shows_our_stale_status(&with("198.18.0.5"), &lb));
        assert!(!shows_our_stale_status(&with("198.18.0.9"), &lb));
        let empty: Ingress = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop"}
        }))
        .unwrap();
        assert!(!shows_our_stale_status(&empty, &lb));
    }

    #[test]
    fn a_publish_address_is_an_ip_or_a_hostname() {
        let ip = load_balancer(&Publish::Address("198.18.0.5".into()), &[]).unwrap();
        assert_eq!(ip[0].ip.as_deref(), Some("198.18.0.5"));
        let host = load_balancer(&Publish::Address("lb.example".into()), &[]).unwrap();
        assert_eq!(host[0].hostname.as_deref(), Some("lb.example"));
    }

    #[test]
    fn a_published_service_gives_its_load_balancer_addresses_else_its_cluster_ip() {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "sluice", "namespace": "sys"},
            "spec": {"clusterIP": "198.18.1.1", "clusterIPs": ["198.18.1.1"]},
        }))
        .unwrap();
        let publish: Publish = "sys/sluice".parse().unwrap();
        let mut services = vec![Arc::new(svc.clone())];
        assert_eq!(
            load_balancer(&publish, &services).unwrap()[0].ip.as_deref(),
            Some("198.18.1.1")
        );
        let mut lb = svc;
        lb.status = serde_json::from_value(serde_json::json!(
            {"loadBalancer": {"ingress": [{"hostname": "elb.example"}]}}
        ))
        .unwrap();
        services[0] = Arc::new(lb);
        assert_eq!(
            load_balancer(&publish, &services).unwrap()[0]
                .hostname
                .as_deref(),
            Some("elb.example")
        );
        assert!(load_balancer(&"sys/other".parse().unwrap(), &services).is_none());
        assert!("nope".parse::<Publish>().is_err());
    }
}
