//! Cross-pool rules: duplicate names, port ownership, route and TLS conflicts, order.

use super::*;

#[test]
fn duplicate_pool_names_are_rejected() {
    let pools = [
        doc("web", &["listener: {port: 8080}", EP]),
        doc("web", &["listener: {port: 8080}", EP]),
    ];
    assert_eq!(
        errors(&file(), &pools),
        [
            "conf/pools.yaml: pool default/web: metadata.name: pool default/web is defined more than once"
        ]
    );
}

#[test]
fn two_tcp_pools_on_one_port_conflict_and_the_earlier_document_keeps_it() {
    let pools = [
        doc("b", &["protocol: TCP", "listener: {port: 5432}", EP]),
        doc("a", &["protocol: TCP", "listener: {port: 5432}", EP]),
    ];
    assert_eq!(
        errors(&file(), &pools),
        [
            "conf/pools.yaml: pool default/a: spec.listener.port: port 5432 is already owned by TCP pool default/b; a TCP pool owns its port"
        ]
    );
}

/// `pool` as the API server returns it: created at `secs` after the epoch.
fn created(mut pool: BackendPool, secs: i64) -> BackendPool {
    let at = k8s_openapi::jiff::Timestamp::from_second(secs).expect("a valid time");
    pool.metadata.creation_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at));
    pool
}

#[test]
fn older_object_keeps_its_tcp_port_from_a_newer_one_that_sorts_first() {
    let pools = [
        created(
            doc("web-new", &["protocol: TCP", "listener: {port: 5432}", EP]),
            200,
        ),
        created(
            doc("web-old", &["protocol: TCP", "listener: {port: 5432}", EP]),
            100,
        ),
    ];
    assert_eq!(
        errors(&Source::Kubernetes, &pools),
        [
            "pool default/web-new: spec.listener.port: port 5432 is already owned by TCP pool default/web-old; a TCP pool owns its port"
        ]
    );
}

#[test]
fn objects_created_in_the_same_second_fall_back_to_namespace_and_name() {
    let pools = [
        created(
            doc("web-old", &["protocol: TCP", "listener: {port: 5432}", EP]),
            100,
        ),
        created(
            doc("web-new", &["protocol: TCP", "listener: {port: 5432}", EP]),
            100,
        ),
    ];
    let refused: Vec<_> = match validate(&Source::Kubernetes, &pools) {
        Ok(_) => panic!("expected a conflict"),
        Err(e) => e.0.into_iter().filter_map(|e| e.pool).collect(),
    };
    assert_eq!(refused, ["default/web-old"]);
}

#[test]
fn a_file_ignores_creation_times_and_keeps_document_order() {
    let pools = [
        created(
            doc("z-db", &["protocol: TCP", "listener: {port: 5432}", EP]),
            200,
        ),
        created(
            doc("a-db", &["protocol: TCP", "listener: {port: 5432}", EP]),
            100,
        ),
    ];
    let refused: Vec<_> = match validate(&file(), &pools) {
        Ok(_) => panic!("expected a conflict"),
        Err(e) => e.0.into_iter().filter_map(|e| e.pool).collect(),
    };
    assert_eq!(refused, ["default/a-db"]);
}

#[test]
fn older_http_pool_keeps_its_port_from_a_newer_tcp_pool() {
    let pools = [
        created(
            doc("a-db", &["protocol: TCP", "listener: {port: 8080}", EP]),
            200,
        ),
        created(doc("z-web", &["listener: {port: 8080}", EP]), 100),
    ];
    assert_eq!(
        errors(&Source::Kubernetes, &pools),
        [
            "pool default/a-db: spec.listener.port: port 8080 is used by HTTP pool default/z-web; HTTP and TCP pools cannot share a port"
        ]
    );
}

#[test]
fn older_object_keeps_its_route_from_a_newer_one_that_sorts_first() {
    let pools = [
        created(
            doc(
                "a-new",
                &["listener: {port: 8080, hosts: [shop.example]}", EP],
            ),
            200,
        ),
        created(
            doc(
                "z-old",
                &["listener: {port: 8080, hosts: [shop.example]}", EP],
            ),
            100,
        ),
    ];
    assert_eq!(
        errors(&Source::Kubernetes, &pools),
        [
            "pool default/a-new: spec.listener.hosts: pool default/z-old already routes host shop.example with pathPrefix / on port 8080"
        ]
    );
}

#[test]
fn older_plain_text_pool_keeps_its_port_from_a_newer_tls_one() {
    let pools = [
        created(
            doc(
                "a-new",
                &[
                    "listener: {port: 8443, hosts: [a.example], tls: {secretName: a-tls}}",
                    EP,
                ],
            ),
            200,
        ),
        created(
            doc("z-old", &["listener: {port: 8443, hosts: [b.example]}", EP]),
            100,
        ),
    ];
    assert_eq!(
        errors(&Source::Kubernetes, &pools),
        [
            "pool default/a-new: spec.listener.tls: this pool terminates TLS but pool default/z-old on port 8443 is plain text; TLS and plain-text pools cannot share a port"
        ]
    );
}

#[test]
fn http_and_tcp_on_one_port_conflict() {
    let pools = [
        doc("a", &["listener: {port: 8080}", EP]),
        doc("b", &["protocol: TCP", "listener: {port: 8080}", EP]),
    ];
    assert_eq!(
        errors(&Source::Kubernetes, &pools),
        [
            "pool default/b: spec.listener.port: port 8080 is used by HTTP pool default/a; HTTP and TCP pools cannot share a port"
        ]
    );
}

#[test]
fn identical_host_and_prefix_on_one_port_conflict() {
    let pools = [
        doc(
            "a",
            &[
                "listener: {port: 8080, hosts: [shop.example, \"*.shop.example\"], pathPrefix: /api}",
                EP,
            ],
        ),
        doc(
            "b",
            &[
                "listener: {port: 8080, hosts: [\"*.SHOP.example\", shop.example], pathPrefix: /api/}",
                EP,
            ],
        ),
    ];
    assert_eq!(
        errors(&file(), &pools),
        [
            "conf/pools.yaml: pool default/b: spec.listener.hosts: pool default/a already routes host *.shop.example, shop.example with pathPrefix /api on port 8080"
        ]
    );
}

#[test]
fn host_less_pools_with_the_same_prefix_conflict() {
    let pools = [
        doc("a", &["listener: {port: 8080}", EP]),
        doc("b", &["listener: {port: 8080, pathPrefix: /}", EP]),
    ];
    assert_eq!(
        errors(&file(), &pools),
        [
            "conf/pools.yaml: pool default/b: spec.listener.pathPrefix: pool default/a already routes any host with pathPrefix / on port 8080"
        ]
    );
}

#[test]
fn http_pools_with_different_routes_share_a_port() {
    let pools = [
        doc("a", &["listener: {port: 8080}", EP]),
        doc("b", &["listener: {port: 8080, pathPrefix: /api}", EP]),
        doc("c", &["listener: {port: 8080, hosts: [shop.example]}", EP]),
        doc("d", &["listener: {port: 8080, hosts: [\"*.example\"]}", EP]),
        doc(
            "e",
            &[
                "listener: {port: 8080, hosts: [shop.example], pathPrefix: /api}",
                EP,
            ],
        ),
        doc("f", &["listener: {port: 9090}", EP]),
    ];
    assert_eq!(ok(&file(), &pools).pools.len(), 6);
}

#[test]
fn mixed_tls_and_plain_text_on_one_port_conflict() {
    let pools = [
        doc(
            "a",
            &[
                "listener: {port: 8443, hosts: [a.example], tls: {certFile: c, keyFile: k}}",
                EP,
            ],
        ),
        doc("b", &["listener: {port: 8443, hosts: [b.example]}", EP]),
    ];
    assert_eq!(
        errors(&file(), &pools),
        [
            "conf/pools.yaml: pool default/b: spec.listener.tls: this pool is plain text but pool default/a on port 8443 terminates TLS; TLS and plain-text pools cannot share a port"
        ]
    );
}

#[test]
fn pools_are_sorted_by_name() {
    let pools = [
        doc("c", &["listener: {port: 3}", EP]),
        doc("a", &["listener: {port: 1}", EP]),
        doc("b", &["listener: {port: 2}", EP]),
    ];
    let names: Vec<_> = ok(&file(), &pools)
        .pools
        .iter()
        .map(|p| p.name.clone())
        .collect();
    assert_eq!(names, ["default/a", "default/b", "default/c"]);
}
