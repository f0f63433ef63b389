use super::*;
use crate::controller::test_objects::service;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// (address, ready, terminating)
type Ep<'a> = (&'a str, Option<bool>, Option<bool>);

fn slice(
    name: &str,
    svc: &str,
    family: &str,
    port: (Option<&str>, i32),
    eps: &[Ep],
) -> Arc<EndpointSlice> {
    let mut labels = std::collections::BTreeMap::new();
    labels.insert(SERVICE_NAME_LABEL.to_owned(), svc.to_owned());
    Arc::new(EndpointSlice {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("shop".into()),
            labels: Some(labels),
            ..Default::default()
        },
        address_type: family.into(),
        ports: Some(vec![EndpointPort {
            name: port.0.map(Into::into),
            port: Some(port.1),
            ..Default::default()
        }]),
        endpoints: Some(
            eps.iter()
                .map(|(a, ready, terminating)| Endpoint {
                    addresses: vec![(*a).into()],
                    conditions: Some(EndpointConditions {
                        ready: *ready,
                        terminating: *terminating,
                        serving: None,
                    }),
                    ..Default::default()
                })
                .collect(),
        ),
    })
}

fn bp(name: &str, spec_yaml: &str) -> Arc<BackendPool> {
    let doc = format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {{name: {name}, namespace: shop, generation: 1}}\nspec: {spec_yaml}\n"
    );
    Arc::new(serde_norway::from_str(&doc).unwrap())
}

fn addrs(eps: &[EndpointConfig]) -> Vec<(String, bool)> {
    eps.iter()
        .map(|e| (e.address.to_string(), e.ready))
        .collect()
}

#[test]
fn named_service_port_maps_to_the_slice_port_of_the_same_name() {
    let svc = service("web", &[(Some("http"), 80), (Some("metrics"), 9100)]);
    let s = slice(
        "web-1",
        "web",
        "IPv4",
        (Some("http"), 8080),
        &[("198.18.0.10", Some(true), None)],
    );
    let m = slice(
        "web-2",
        "web",
        "IPv4",
        (Some("metrics"), 9100),
        &[("198.18.0.10", Some(true), None)],
    );
    let eps = service_endpoints(&svc, &IntOrString::String("http".into()), &[&s, &m]).unwrap();
    assert_eq!(addrs(&eps), [("198.18.0.10:8080".to_owned(), true)]);
    let by_number = service_endpoints(&svc, &IntOrString::Int(80), &[&s, &m]).unwrap();
    assert_eq!(by_number, eps);
}

#[test]
fn terminating_and_not_ready_endpoints_drain_and_nil_ready_counts_as_ready() {
    let svc = service("web", &[(None, 80)]);
    let s = slice(
        "web-1",
        "web",
        "IPv4",
        (None, 8080),
        &[
            ("198.18.0.1", Some(true), Some(false)),
            ("198.18.0.2", Some(false), Some(true)),
            ("198.18.0.3", Some(true), Some(true)),
            ("198.18.0.4", None, None),
            ("198.18.0.5", Some(false), None),
        ],
    );
    let eps = service_endpoints(&svc, &IntOrString::Int(80), &[&s]).unwrap();
    assert_eq!(
        addrs(&eps),
        [
            ("198.18.0.1:8080".to_owned(), true),
            ("198.18.0.2:8080".to_owned(), false),
            ("198.18.0.3:8080".to_owned(), false),
            ("198.18.0.4:8080".to_owned(), true),
            ("198.18.0.5:8080".to_owned(), false),
        ]
    );
}

#[test]
fn dual_stack_slices_and_duplicates_across_slices_merge() {
    let svc = service("web", &[(None, 80)]);
    let v4a = slice(
        "a",
        "web",
        "IPv4",
        (None, 8080),
        &[("198.18.0.1", Some(false), Some(true))],
    );
    let v4b = slice(
        "b",
        "web",
        "IPv4",
        (None, 8080),
        &[("198.18.0.1", Some(true), None)],
    );
    let v6 = slice(
        "c",
        "web",
        "IPv6",
        (None, 8080),
        &[("2001:db8::1", Some(true), None)],
    );
    let fqdn = slice(
        "d",
        "web",
        "FQDN",
        (None, 8080),
        &[("db.example", Some(true), None)],
    );
    let eps = service_endpoints(&svc, &IntOrString::Int(80), &[&v4a, &v4b, &v6, &fqdn]).unwrap();
    assert_eq!(
        addrs(&eps),
        [
            ("198.18.0.1:8080".to_owned(), true),
            ("[2001:db8::1]:8080".to_owned(), true)
        ]
    );
}

#[test]
fn unknown_service_port_is_reported() {
    let svc = service("web", &[(Some("http"), 80)]);
    let err = service_endpoints(&svc, &IntOrString::Int(443), &[]).unwrap_err();
    assert!(err.contains("shop/web has no port 443"), "{err}");
}

#[test]
fn one_invalid_pool_is_refused_without_blocking_the_others() {
    let objects = Objects {
        pools: vec![
            bp(
                "good",
                "{listener: {port: 8080}, service: {name: web, port: 80}}",
            ),
            bp(
                "bad",
                "{listener: {port: 8081}, algorithm: Random, endpoints: [{address: \"198.18.0.9:80\", weight: 5000}]}",
            ),
        ],
        slices: vec![slice(
            "web-1",
            "web",
            "IPv4",
            (None, 8080),
            &[("198.18.0.1", Some(true), None)],
        )],
        services: vec![service("web", &[(None, 80)])],
        secrets: vec![],
    };
    let d = desired(&objects);
    assert_eq!(d.set.pools.len(), 1);
    assert_eq!(d.set.pools[0].name, "shop/good");
    assert_eq!(
        addrs(&d.set.pools[0].endpoints),
        [("198.18.0.1:8080".to_owned(), true)]
    );
    let why = &d.refused["shop/bad"];
    assert_eq!(why.reason, "InvalidSpec");
    assert!(
        why.message.contains("spec.endpoints[0].weight"),
        "{}",
        why.message
    );
}

/// A TCP pool on port 5432 created at `created` (seconds after the epoch).
fn tcp_pool(name: &str, created: &str) -> Arc<BackendPool> {
    let doc = format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {{name: {name}, namespace: shop, generation: 1, creationTimestamp: \"{created}\"}}\nspec: {{protocol: TCP, listener: {{port: 5432}}, endpoints: [{{address: \"198.18.0.1:5432\"}}]}}\n"
    );
    Arc::new(serde_norway::from_str(&doc).unwrap())
}

#[test]
fn a_port_conflict_refuses_the_newer_pool_with_reason_conflict_naming_the_owner() {
    // The newcomer sorts first by name and comes first from the store: neither decides.
    let objects = Objects {
        pools: vec![
            tcp_pool("a-db", "2026-01-01T10:00:05Z"),
            tcp_pool("b-db", "2026-01-01T10:00:00Z"),
        ],
        ..Default::default()
    };
    let d = desired(&objects);
    assert_eq!(
        d.set
            .pools
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["shop/b-db"]
    );
    assert_eq!(d.refused["shop/a-db"].reason, "Conflict");
    assert!(
        d.refused["shop/a-db"].message.contains("shop/b-db"),
        "{}",
        d.refused["shop/a-db"].message
    );
}

#[test]
fn missing_service_leaves_the_pool_accepted_without_endpoints() {
    let objects = Objects {
        pools: vec![bp(
            "web",
            "{listener: {port: 8080}, service: {name: nope, port: 80}}",
        )],
        ..Default::default()
    };
    let d = desired(&objects);
    assert_eq!(d.set.pools.len(), 1);
    assert!(d.set.pools[0].endpoints.is_empty());
    assert_eq!(d.unresolved["shop/web"], "Service shop/nope not found");
}

#[test]
fn missing_tls_secret_refuses_the_pool_naming_the_field() {
    let objects = Objects {
        pools: vec![bp(
            "web",
            "{listener: {port: 8443, tls: {secretName: web-tls}}, endpoints: [{address: \"198.18.0.1:80\"}]}",
        )],
        ..Default::default()
    };
    let d = desired(&objects);
    assert!(d.set.pools.is_empty());
    let why = &d.refused["shop/web"];
    assert!(
        why.message.contains("spec.listener.tls.secretName")
            && why.message.contains("Secret shop/web-tls not found"),
        "{}",
        why.message
    );
}

fn htpasswd_secret(auth: &str) -> Arc<Secret> {
    use k8s_openapi::ByteString;
    let mut data = std::collections::BTreeMap::new();
    data.insert("auth".to_owned(), ByteString(auth.as_bytes().to_vec()));
    Arc::new(Secret {
        metadata: ObjectMeta {
            name: Some("users".into()),
            namespace: Some("shop".into()),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Default::default()
    })
}

#[test]
fn basic_auth_reads_the_htpasswd_secret_and_a_changed_secret_changes_the_users() {
    let pool = bp(
        "web",
        "{listener: {port: 8080}, endpoints: [{address: \"198.18.0.1:80\"}], basicAuth: {secretName: users}}",
    );
    let users = |d: &Desired| {
        let auth = d.set.pools[0].filters.basic_auth.clone().unwrap();
        let mut names: Vec<String> = auth.users.users.keys().cloned().collect();
        names.sort();
        names
    };
    let mut index = Index::default();
    let mut objects = Objects {
        pools: vec![pool],
        secrets: vec![htpasswd_secret("alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")],
        ..Default::default()
    };
    let d = index.desired(&objects);
    assert!(d.refused.is_empty(), "{:?}", d.refused);
    assert_eq!(users(&d), ["alice"]);
    // The route the data plane serves carries the same list.
    assert_eq!(d.set.routes.len(), 1);
    let route_auth = d.set.routes[0].filters.basic_auth.as_ref().unwrap();
    assert!(route_auth.users.users.contains_key("alice"));

    objects.secrets = vec![htpasswd_secret(
        "alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\nbob:$apr1$r31....a$J66x6A3ONL4jNQPu3giBk/\n",
    )];
    assert_eq!(users(&index.desired(&objects)), ["alice", "bob"]);

    objects.secrets = vec![htpasswd_secret("alice:plaintext\n")];
    let d = index.desired(&objects);
    let why = &d.refused["shop/web"];
    assert!(
        why.message.contains("spec.basicAuth.secretName")
            && why
                .message
                .contains("Secret shop/users key auth: line 1 (alice): unsupported hash"),
        "{}",
        why.message
    );

    objects.secrets.clear();
    let why = &index.desired(&objects).refused["shop/web"];
    assert!(
        why.message.contains("Secret shop/users not found"),
        "{}",
        why.message
    );
}

#[test]
fn canary_service_endpoints_resolve_into_the_canary_backend_set() {
    let objects = Objects {
        pools: vec![bp(
            "web",
            "{listener: {port: 8080}, service: {name: web, port: 80}, canary: {service: {name: web-v2, port: http}, weight: 5}}",
        )],
        services: vec![
            service("web", &[(None, 80)]),
            service("web-v2", &[(Some("http"), 80)]),
        ],
        slices: vec![
            slice(
                "web-1",
                "web",
                "IPv4",
                (None, 8080),
                &[("198.18.0.10", Some(true), None)],
            ),
            slice(
                "web-v2-1",
                "web-v2",
                "IPv4",
                (Some("http"), 8080),
                &[("198.18.0.20", Some(true), None)],
            ),
        ],
        ..Default::default()
    };
    let d = desired(&objects);
    let cfg = &d.set.pools[0];
    assert_eq!(
        addrs(&cfg.endpoints),
        [("198.18.0.10:8080".to_owned(), true)]
    );
    let canary = cfg.canary.as_ref().expect("the canary is kept");
    assert_eq!(canary.weight, 5);
    assert_eq!(
        addrs(&canary.endpoints),
        [("198.18.0.20:8080".to_owned(), true)]
    );
}

#[test]
fn the_desired_set_keeps_each_pools_route_and_listener_claim() {
    let objects = Objects {
        pools: vec![
            bp(
                "web",
                "{listener: {port: 8080, hosts: [a.test]}, endpoints: []}",
            ),
            bp(
                "db",
                "{protocol: TCP, listener: {port: 5432}, endpoints: []}",
            ),
        ],
        ..Default::default()
    };
    let d = desired(&objects);
    let owners = |v: Vec<&str>| v.into_iter().map(str::to_owned).collect::<Vec<_>>();
    let claims: Vec<String> = d.set.listeners.iter().map(|l| l.owner.clone()).collect();
    assert_eq!(claims, owners(vec!["shop/db", "shop/web"]));
    let routes: Vec<String> = d.set.routes.iter().map(|r| r.owner.clone()).collect();
    assert_eq!(routes, owners(vec!["shop/web"]), "TCP pools have no route");
}

/// One watch event of the property test below.
#[derive(Debug, Clone)]
enum Event {
    /// BackendPool `p{0}` gets spec variant `{1}` (a new object, even if the same spec).
    Pool(usize, usize),
    DeletePool(usize),
    /// Service `s{0}` with a named (`true`) or unnamed port.
    Service(usize, bool),
    DeleteService(usize),
    /// Slice `s{0}-x` of Service `s{0}` with endpoints `198.18.0.{n}` for n in the mask.
    Slice(usize, u8),
    DeleteSlice(usize),
}

/// Spec variants: Services by name or port number, a canary, a host shared with another
/// pool (a route conflict), a TCP pool on a shared port (a port conflict), an invalid one.
fn pool_variant(i: usize, v: usize) -> Arc<BackendPool> {
    let created = format!("2026-01-01T10:00:0{i}Z");
    let spec = match v {
        0 => format!(
            "{{listener: {{port: 8080, hosts: [p{i}.test]}}, service: {{name: s{}, port: http}}}}",
            i % 3
        ),
        1 => "{listener: {port: 8080, hosts: [shared.test]}, service: {name: s0, port: 80}}"
            .to_owned(),
        2 => format!(
            "{{listener: {{port: 8080, hosts: [c{i}.test]}}, service: {{name: s1, port: http}}, canary: {{service: {{name: s2, port: http}}, weight: 10}}}}"
        ),
        3 => "{protocol: TCP, listener: {port: 5432}, service: {name: s2, port: 80}}".to_owned(),
        _ => "{listener: {port: 8080}, endpoints: [{address: \"198.18.0.1:80\", weight: 0}]}"
            .to_owned(),
    };
    let doc = format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {{name: p{i}, namespace: shop, generation: 1, creationTimestamp: \"{created}\"}}\nspec: {spec}\n"
    );
    Arc::new(serde_norway::from_str(&doc).unwrap())
}

fn upsert<T: kube::ResourceExt>(list: &mut Vec<Arc<T>>, obj: Arc<T>) {
    list.retain(|o| o.name_any() != obj.name_any());
    list.push(obj);
}

fn remove<T: kube::ResourceExt>(list: &mut Vec<Arc<T>>, name: &str) {
    list.retain(|o| o.name_any() != name);
}

fn apply_event(o: &mut Objects, e: &Event) {
    match *e {
        Event::Pool(i, v) => upsert(&mut o.pools, pool_variant(i, v)),
        Event::DeletePool(i) => remove(&mut o.pools, &format!("p{i}")),
        Event::Service(j, named) => {
            let name = if named { Some("http") } else { None };
            upsert(&mut o.services, service(&format!("s{j}"), &[(name, 80)]));
        }
        Event::DeleteService(j) => remove(&mut o.services, &format!("s{j}")),
        Event::Slice(j, mask) => {
            let addresses: Vec<String> = (1..=4)
                .filter(|n| mask & (1 << n) != 0)
                .map(|n| format!("198.18.0.{n}"))
                .collect();
            let eps: Vec<Ep> = addresses
                .iter()
                .map(|a| (a.as_str(), Some(mask & 1 == 0), None))
                .collect();
            let s = slice(
                &format!("s{j}-x"),
                &format!("s{j}"),
                "IPv4",
                (Some("http"), 8080),
                &eps,
            );
            upsert(&mut o.slices, s);
        }
        Event::DeleteSlice(j) => remove(&mut o.slices, &format!("s{j}-x")),
    }
}

fn event() -> impl proptest::strategy::Strategy<Value = Event> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (0..5usize, 0..5usize).prop_map(|(i, v)| Event::Pool(i, v)),
        1 => (0..5usize).prop_map(Event::DeletePool),
        2 => (0..3usize, any::<bool>()).prop_map(|(j, n)| Event::Service(j, n)),
        1 => (0..3usize).prop_map(Event::DeleteService),
        4 => (0..3usize, any::<u8>()).prop_map(|(j, m)| Event::Slice(j, m)),
        1 => (0..3usize).prop_map(Event::DeleteSlice),
    ]
}

proptest::proptest! {
    #[test]
    fn incremental_rebuilds_equal_a_full_rebuild_after_any_sequence_of_events(
        events in proptest::collection::vec(event(), 1..40)
    ) {
        let mut objects = Objects::default();
        let mut index = Index::default();
        for e in &events {
            apply_event(&mut objects, e);
            let incremental = index.desired(&objects);
            let full = desired(&objects);
            proptest::prop_assert_eq!(&incremental.set, &full.set, "after {:?}", e);
            proptest::prop_assert_eq!(&incremental.refused, &full.refused);
            proptest::prop_assert_eq!(&incremental.unresolved, &full.unresolved);
        }
    }
}

#[test]
fn an_unchanged_pool_keeps_its_config_allocation_across_rebuilds() {
    let mut objects = Objects::default();
    for e in [
        Event::Pool(0, 0),
        Event::Pool(1, 2),
        Event::Service(0, true),
        Event::Slice(0, 0b110),
    ] {
        apply_event(&mut objects, &e);
    }
    let mut index = Index::default();
    let first = index.desired(&objects);
    // Another pool's Service changes: p0 is not validated or resolved again.
    apply_event(&mut objects, &Event::Service(1, true));
    let second = index.desired(&objects);
    let p0 = |d: &Desired| {
        d.set
            .pools
            .iter()
            .find(|p| p.name == "shop/p0")
            .unwrap()
            .clone()
    };
    assert!(Arc::ptr_eq(&p0(&first), &p0(&second)));
    // Its own slice changes: a new config with the new endpoints.
    apply_event(&mut objects, &Event::Slice(0, 0b1000));
    let third = index.desired(&objects);
    assert!(!Arc::ptr_eq(&p0(&second), &p0(&third)));
    assert_eq!(
        addrs(&p0(&third).endpoints),
        [("198.18.0.3:8080".to_owned(), true)]
    );
}
