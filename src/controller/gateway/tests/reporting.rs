//! Status computation and the merge with BackendPools and Ingresses.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::json;

use super::*;

#[test]
fn route_status_keeps_other_controllers_and_transition_times() {
    let t = translate(
        &objects(
            vec![gateway("gw", json!([http_listener("http", 8080)]))],
            vec![route("r", "shop", "2026-01-02T00:00:00Z", to_web("/"))],
        ),
        &ConfigSet::default(),
    );
    let report = &t.reports.routes[&(RouteKind::Http, "shop/r".to_owned())];
    let then = Time(k8s_openapi::jiff::Timestamp::from_second(1_000).unwrap());
    let now = Time(k8s_openapi::jiff::Timestamp::from_second(2_000).unwrap());
    let foreign = types::RouteParentStatus {
        parent_ref: ParentReference {
            name: "theirs".into(),
            ..Default::default()
        },
        controller_name: "example.com/other".into(),
        conditions: vec![],
    };
    let first = status::route(
        report,
        Some(&types::RouteStatus {
            parents: vec![foreign.clone()],
        }),
        &then,
    );
    assert_eq!(first.parents.len(), 2);
    assert_eq!(first.parents[0], foreign);
    let ours = &first.parents[1];
    assert_eq!(ours.controller_name, CONTROLLER);
    assert!(
        ours.conditions
            .iter()
            .all(|c| c.observed_generation == Some(3))
    );
    let again = status::route(report, Some(&first), &now);
    assert_eq!(
        again, first,
        "an unchanged status keeps its transition times"
    );
}

#[test]
fn gateway_status_lists_every_listener_with_addresses_and_the_apply_refusal() {
    let t = translate(
        &objects(
            vec![gateway("gw", json!([http_listener("http", 8080)]))],
            vec![],
        ),
        &ConfigSet::default(),
    );
    let view = &t.reports.gateways["shop/gw"];
    let now = Time(k8s_openapi::jiff::Timestamp::from_second(1_000).unwrap());
    let addr = [types::GatewayStatusAddress {
        type_: Some("IPAddress".into()),
        value: "198.18.0.1".into(),
    }];
    let s = status::gateway(view, &addr, None, None, &now);
    let listeners = s.listeners.as_ref().unwrap();
    assert_eq!(listeners[0].name, "http");
    let types: Vec<&str> = listeners[0]
        .conditions
        .iter()
        .map(|c| c.type_.as_str())
        .collect();
    assert_eq!(
        types,
        ["Accepted", "ResolvedRefs", "Conflicted", "Programmed"]
    );
    let gw = s.conditions.as_ref().unwrap();
    assert!(
        gw.iter()
            .all(|c| c.status == "True" && c.observed_generation == Some(3))
    );
    let refused = status::gateway(
        view,
        &addr,
        Some("cannot listen on 0.0.0.0:8080"),
        Some(&s),
        &now,
    );
    let programmed = refused
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Programmed")
        .unwrap();
    assert_eq!(
        (programmed.status.as_str(), programmed.reason.as_str()),
        ("False", "Invalid")
    );
    let none = status::gateway(view, &[], None, None, &now);
    let programmed = none
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Programmed")
        .unwrap();
    assert_eq!(programmed.reason, "AddressNotAssigned");
}

#[test]
fn a_route_no_longer_ours_loses_only_our_parent_entries() {
    let ours = types::RouteParentStatus {
        parent_ref: ParentReference {
            name: "gw".into(),
            ..Default::default()
        },
        controller_name: CONTROLLER.into(),
        conditions: vec![],
    };
    let theirs = types::RouteParentStatus {
        controller_name: "example.com/other".into(),
        ..ours.clone()
    };
    let both = types::RouteStatus {
        parents: vec![ours, theirs.clone()],
    };
    assert_eq!(
        status::forget(Some(&both)).unwrap().parents,
        std::slice::from_ref(&theirs)
    );
    let only_theirs = types::RouteStatus {
        parents: vec![theirs],
    };
    assert_eq!(
        status::forget(Some(&only_theirs)),
        None,
        "nothing to remove: no write"
    );
    assert_eq!(status::forget(None), None);
}

#[test]
fn the_same_route_from_an_ingress_goes_to_the_older_object() {
    let held = || ConfigSet {
        routes: vec![Arc::new(RouteConfig {
            owner: "ingress:shop/old-ingress".into(),
            port: 8080,
            hosts: vec![],
            path: PathMatch::Prefix("/api".into()),
            matches: Default::default(),
            filters: Default::default(),
            action: RouteAction::Respond(http::StatusCode::NOT_FOUND),
        })],
        ..ConfigSet::default()
    };
    let objs = objects(
        vec![gateway("gw", json!([http_listener("http", 8080)]))],
        vec![route("api", "shop", "2026-01-02T00:00:00Z", to_web("/api"))],
    );
    let created = |at: &str| -> Option<Time> { serde_json::from_value(json!(at)).ok() };

    // The Ingress is older: it keeps its place first; the route is told.
    let mut set = held();
    let mut t = translate(&objs, &set);
    let conflicts = merge(&mut set, &mut t, |_| {
        Some((created("2025-01-01T00:00:00Z"), "shop/old-ingress".into()))
    });
    let owners: Vec<&str> = set.routes.iter().map(|r| r.owner.as_str()).collect();
    assert_eq!(owners, ["ingress:shop/old-ingress", "httproute:shop/api"]);
    assert_eq!(conflicts[0].loser, "httproute:shop/api");
    let message = &cond(&parent(&t, "shop/api").conditions, "Accepted").message;
    assert!(
        message.contains("ingress:shop/old-ingress (oldest wins)"),
        "{message}"
    );

    // The HTTPRoute is older: it goes first; the Ingress is the loser.
    let mut set = held();
    let mut t = translate(&objs, &set);
    let conflicts = merge(&mut set, &mut t, |_| {
        Some((created("2027-01-01T00:00:00Z"), "shop/new-ingress".into()))
    });
    let owners: Vec<&str> = set.routes.iter().map(|r| r.owner.as_str()).collect();
    assert_eq!(owners, ["httproute:shop/api", "ingress:shop/old-ingress"]);
    assert_eq!(conflicts[0].loser, "ingress:shop/old-ingress");
    assert_eq!(
        conflicts[0].what,
        "port 8080 host (any host) path PathPrefix /api"
    );
}

#[test]
fn label_selectors_match_labels_and_expressions() {
    let labels: BTreeMap<String, String> = [("team".to_owned(), "a".to_owned())].into();
    let sel: LabelSelector = serde_json::from_value(
        json!({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}]}),
    )
    .unwrap();
    assert!(selects(&sel, &labels));
    let sel: LabelSelector =
        serde_json::from_value(json!({"matchExpressions": [{"key": "env", "operator": "Exists"}]}))
            .unwrap();
    assert!(!selects(&sel, &labels));
}
