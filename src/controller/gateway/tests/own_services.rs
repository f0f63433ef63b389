//! A Service per Gateway: Gateways sharing a port get separate ports behind their own
//! Services, which the leader writes and every replica reads back.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Service;
use serde_json::json;

use super::*;
use crate::controller::gateway::services::{self, ServiceMode};

fn mode() -> Arc<ServiceMode> {
    Arc::new(ServiceMode {
        namespace: "sluice-system".into(),
        owner: "sluice".into(),
        type_: "LoadBalancer".into(),
        selector: BTreeMap::from([("app".into(), "sluice".into())]),
        ports: 20000..=20002,
    })
}

/// Two Gateways (`shop/a` older than `shop/b`) with a catch-all listener on port 80, each
/// with a route to a Service of its own.
fn two_gateways(existing: Vec<Arc<Service>>) -> GatewayObjects {
    let gw = |name: &str, created: &str| -> Arc<Gateway> {
        typed(json!({
            "metadata": meta(name, "shop", created),
            "spec": {"gatewayClassName": "sluice", "listeners": [http_listener("http", 80)]},
        }))
    };
    let to = |gateway: &str, backend: &str| json!({"parentRefs": [{"name": gateway}], "rules": [{"backendRefs": [{"name": backend, "port": 80}]}]});
    let mut o = objects(
        vec![
            gw("b", "2026-01-02T00:00:00Z"),
            gw("a", "2026-01-01T00:00:00Z"),
        ],
        vec![
            route("to-a", "shop", "2026-01-03T00:00:00Z", to("a", "web")),
            route("to-b", "shop", "2026-01-03T00:00:00Z", to("b", "web")),
        ],
    );
    o.services.extend(existing);
    o.service_mode = Some(mode());
    o
}

/// The leader's Services for the translation `t`, given what exists.
fn services_for(t: &Translation, existing: &[Arc<Service>], taken: &[u16]) -> Vec<Service> {
    let taken: BTreeSet<u16> = taken.iter().copied().collect();
    let mode = mode();
    let owned = services::Owned::new(existing, &mode);
    services::desired(&t.reports.gateways, &owned, &mode, &taken)
}

fn ports(s: &Service) -> Vec<(i32, i32)> {
    s.spec
        .as_ref()
        .unwrap()
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| match p.target_port {
            Some(IntOrString::Int(t)) => (p.port, t),
            ref other => panic!("target {other:?}"),
        })
        .collect()
}

#[test]
fn the_newer_gateway_on_a_shared_port_waits_for_its_service_then_listens_on_its_own_port() {
    let t = translate(&two_gateways(Vec::new()), &ConfigSet::default());
    let b = &t.reports.gateways["shop/b"].listeners[0];
    assert!(b.own_port && !b.served);
    assert_eq!(cond(&b.conditions, "Programmed").reason, "Pending");
    let ports_claimed: Vec<u16> = t.set.listeners.iter().map(|l| l.port).collect();
    assert_eq!(ports_claimed, [80], "only the older Gateway listens on 80");
    assert!(
        t.set
            .routes
            .iter()
            .all(|r| r.owner == "httproute:shop/to-a")
    );

    let made = services_for(&t, &[], &[]);
    assert_eq!(made.len(), 2);
    let of = |gw: &str| {
        made.iter()
            .find(|s| s.metadata.name.as_deref() == Some(services::service_name(gw).as_str()))
            .unwrap_or_else(|| panic!("no Service for {gw}"))
    };
    assert_eq!(
        ports(of("shop/a")),
        [(80, 80)],
        "the older Gateway keeps its port"
    );
    assert_eq!(
        ports(of("shop/b")),
        [(80, 20000)],
        "the newer gets the range's first"
    );
    let svc_b = of("shop/b");
    assert_eq!(svc_b.metadata.namespace.as_deref(), Some("sluice-system"));
    assert_eq!(
        svc_b.spec.as_ref().unwrap().type_.as_deref(),
        Some("LoadBalancer")
    );

    // Once the Services exist, the newer Gateway's routes are served on its own port.
    let existing: Vec<Arc<Service>> = made.into_iter().map(Arc::new).collect();
    let t = translate(&two_gateways(existing.clone()), &ConfigSet::default());
    let b = &t.reports.gateways["shop/b"].listeners[0];
    assert!(b.served);
    assert_eq!((b.port, b.bind), (80, 20000));
    assert_eq!(cond(&b.conditions, "Programmed").reason, "Programmed");
    let placed: BTreeSet<(u16, &str)> = t
        .set
        .routes
        .iter()
        .map(|r| (r.port, r.owner.as_str()))
        .collect();
    assert_eq!(
        placed,
        BTreeSet::from([(80, "httproute:shop/to-a"), (20000, "httproute:shop/to-b")])
    );
    // And the leader leaves them as they are.
    let again = services_for(&t, &existing, &[]);
    assert!(
        again
            .iter()
            .zip(&existing)
            .all(|(w, h)| services::up_to_date(h, w))
    );
}

#[test]
fn an_own_port_skips_ports_others_serve_and_moves_off_one_a_pool_took_later() {
    let t = translate(&two_gateways(Vec::new()), &ConfigSet::default());
    let made = services_for(&t, &[], &[20000]);
    let b = made
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(services::service_name("shop/b").as_str()))
        .unwrap();
    assert_eq!(ports(b), [(80, 20001)]);
    let existing = vec![Arc::new(b.clone())];
    let kept = services_for(&t, &existing, &[20000]);
    assert!(
        kept.iter().any(|s| ports(s) == [(80, 20001)]),
        "kept while free"
    );
    let moved = services_for(&t, &existing, &[20000, 20001]);
    assert!(
        moved.iter().any(|s| ports(s) == [(80, 20002)]),
        "moved once taken"
    );
}

#[test]
fn a_gateway_alone_on_its_port_gets_a_service_mapping_the_port_to_itself() {
    let mut o = two_gateways(Vec::new());
    o.gateways.retain(|g| g.name_any() == "b");
    let t = translate(&o, &ConfigSet::default());
    let made = services_for(&t, &[], &[]);
    assert_eq!(made.len(), 1);
    assert_eq!(
        ports(&made[0]),
        [(80, 80)],
        "alone on 80, b listens on 80 itself"
    );
}

#[test]
fn service_names_are_dns_labels_unique_per_gateway() {
    let long = format!("ns/{}", "x.y".repeat(60));
    let name = services::service_name(&long);
    assert!(name.len() <= 63, "{name}");
    assert!(
        name.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    );
    assert_ne!(
        services::service_name("a/b-c"),
        services::service_name("a-b/c")
    );
    assert!(name.starts_with("gw-ns-x-y"));
}

#[test]
fn a_gateway_service_gives_its_load_balancer_address_else_its_cluster_ip() {
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "s"},
        "spec": {"clusterIP": "198.18.200.7", "clusterIPs": ["198.18.200.7"]},
    }))
    .unwrap();
    assert_eq!(
        crate::controller::index::service_addresses(&svc),
        ["198.18.200.7"]
    );
    let lb: Service = serde_json::from_value(json!({
        "metadata": {"name": "s"},
        "spec": {"clusterIP": "198.18.200.7"},
        "status": {"loadBalancer": {"ingress": [{"ip": "198.18.9.9"}, {"hostname": "lb.example"}]}},
    }))
    .unwrap();
    assert_eq!(
        crate::controller::index::service_addresses(&lb),
        ["198.18.9.9", "lb.example"]
    );
}

#[test]
fn flags_parse_and_bad_values_are_refused_with_the_value() {
    assert_eq!(services::parse_range("20000-20999"), Ok(20000..=20999));
    assert!(
        services::parse_range("9-1")
            .unwrap_err()
            .contains("\"9-1\"")
    );
    assert!(services::parse_range("0-5").is_err());
    assert!(
        services::parse_type("External")
            .unwrap_err()
            .contains("ClusterIP")
    );
    assert_eq!(
        services::parse_selector("app=sluice, release=r").unwrap(),
        BTreeMap::from([
            ("app".into(), "sluice".into()),
            ("release".into(), "r".into())
        ])
    );
    assert!(services::parse_selector("app").is_err());
}

#[test]
fn infrastructure_labels_and_annotations_go_on_the_gateways_service() {
    let mut o = two_gateways(Vec::new());
    o.gateways = vec![typed(json!({
        "metadata": meta("a", "shop", "2026-01-01T00:00:00Z"),
        "spec": {"gatewayClassName": "sluice", "listeners": [http_listener("http", 80)],
                 "infrastructure": {"labels": {"team": "web"}, "annotations": {"lb.example/internal": "true"}}},
    }))];
    let t = translate(&o, &ConfigSet::default());
    let made = services_for(&t, &[], &[]);
    let written = &made[0].metadata;
    assert_eq!(written.labels.as_ref().unwrap()["team"], "web");
    assert_eq!(written.labels.as_ref().unwrap()[services::LABEL], "sluice");
    assert_eq!(
        written.annotations.as_ref().unwrap()["lb.example/internal"],
        "true"
    );
    // A changed annotation makes the Service out of date even though caches drop annotations.
    let mut cached = made[0].clone();
    cached.metadata.annotations = None;
    assert!(services::up_to_date(&cached, &made[0]));
    o.gateways = vec![typed(json!({
        "metadata": meta("a", "shop", "2026-01-01T00:00:00Z"),
        "spec": {"gatewayClassName": "sluice", "listeners": [http_listener("http", 80)],
                 "infrastructure": {"annotations": {"lb.example/internal": "false"}}},
    }))];
    let t = translate(&o, &ConfigSet::default());
    assert!(!services::up_to_date(
        &cached,
        &services_for(&t, &[], &[])[0]
    ));
}
