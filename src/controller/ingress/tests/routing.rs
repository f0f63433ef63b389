//! Classes, hosts, paths, TLS, merging and conflicts, default backends, shared ports.

use super::*;

#[test]
fn a_host_rule_becomes_a_route_to_a_backend_named_after_the_service_port() {
    let t = run(&objects(vec![ingress(
        "shop",
        T0,
        &[],
        &web("Shop.Example", "/", "Prefix"),
    )]));
    let routes = routes_on(&t, 8080);
    assert_eq!(routes.len(), 1);
    assert_eq!(
        routes[0].hosts,
        vec![HostMatch::Exact("shop.example".into())]
    );
    assert_eq!(routes[0].path, PathMatch::Prefix("/".into()));
    assert_eq!(routes[0].owner, "ingress:shop/shop");
    assert_eq!(backend_of(routes[0]), "shop/web:http");
    assert_eq!(t.set.pools.len(), 1);
    let pool = &t.set.pools[0];
    assert_eq!(pool.name, "shop/web:http");
    assert_eq!(pool.endpoints[0].address.to_string(), "198.18.0.10:8000");
    assert_eq!(
        pool.timeouts.connect,
        Duration::from_secs(5),
        "ingress-nginx default"
    );
    assert_eq!(
        pool.timeouts.request,
        Duration::from_secs(60),
        "ingress-nginx default"
    );
    assert_eq!(t.set.listeners.len(), 1);
    assert_eq!(t.set.listeners[0].port, 8080);
    assert!(t.problems.is_empty(), "{:?}", t.problems);
}

#[test]
fn numbered_service_ports_and_wildcard_hosts_translate() {
    let spec = "{ingressClassName: sluice, rules: [{host: '*.shop.example', http: {paths: [{path: /api, pathType: Exact, backend: {service: {name: api, port: {number: 8080}}}}]}}]}";
    let t = run(&objects(vec![ingress("api", T0, &[], spec)]));
    let r = routes_on(&t, 8080)[0];
    assert_eq!(r.hosts, vec![HostMatch::Wildcard(".shop.example".into())]);
    assert_eq!(r.path, PathMatch::Exact("/api".into()));
    assert_eq!(backend_of(r), "shop/api:8080");
    assert_eq!(t.set.pools[0].endpoints.len(), 2);
}

#[test]
fn ingresses_of_other_classes_or_without_class_are_not_served_unless_ours_is_default() {
    let other =
        "{ingressClassName: nginx, defaultBackend: {service: {name: web, port: {number: 80}}}}";
    let none = "{defaultBackend: {service: {name: web, port: {number: 80}}}}";
    let mut o = objects(vec![
        ingress("a", T0, &[], other),
        ingress("b", T0, &[], none),
    ]);
    o.classes.push(class("nginx", "k8s.io/ingress-nginx", true));
    let t = run(&o);
    assert!(t.set.routes.is_empty());
    assert!(t.ours.is_empty());
    o.classes[0] = class("sluice", CONTROLLER, true);
    let t = run(&o);
    assert_eq!(t.ours.iter().collect::<Vec<_>>(), vec!["shop/b"]);
    assert_eq!(t.set.routes.len(), 1);
}

#[test]
fn the_legacy_class_annotation_naming_our_class_is_served() {
    let none = "{defaultBackend: {service: {name: web, port: {number: 80}}}}";
    let o = objects(vec![ingress(
        "a",
        T0,
        &[(LEGACY_CLASS_ANNOTATION, "sluice")],
        none,
    )]);
    assert_eq!(run(&o).set.routes.len(), 1);
}

#[test]
fn two_ingresses_for_one_host_merge_and_the_oldest_keeps_a_path_both_claim() {
    let o = objects(vec![
        ingress("newer", T1, &[], &web("shop.example", "/", "Prefix")),
        ingress("api", T1, &[], &web("shop.example", "/api", "Prefix")),
        ingress("older", T0, &[], &web("shop.example", "/", "Prefix")),
    ]);
    let t = run(&o);
    let owners: Vec<_> = routes_on(&t, 8080)
        .iter()
        .map(|r| r.owner.as_str())
        .collect();
    assert_eq!(owners, vec!["ingress:shop/older", "ingress:shop/api"]);
    let p = &t.problems["shop/newer"];
    assert_eq!(p[0].reason, "Conflict");
    assert!(
        p[0].message.contains("shop/older") && p[0].message.contains("spec.rules[0].http.paths[0]"),
        "{p:?}"
    );
    assert!(!t.problems.contains_key("shop/older"));
}

#[test]
fn tls_hosts_are_served_on_the_https_port_and_plain_http_redirects_with_308() {
    let spec = "{ingressClassName: sluice, tls: [{hosts: [shop.example], secretName: shop-tls}], rules: [{host: shop.example, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]}";
    let mut o = objects(vec![ingress("shop", T0, &[], spec)]);
    o.secrets.push(tls_secret("shop-tls", "shop.example"));
    let t = run(&o);
    let https = routes_on(&t, 8443);
    assert_eq!(https.len(), 1);
    assert!(https[0].filters.redirect.is_none());
    let plain = routes_on(&t, 8080);
    let redirect = plain[0].filters.redirect.as_ref().expect("redirect");
    assert_eq!(redirect.scheme, Some("https"));
    assert_eq!(redirect.status, http::StatusCode::PERMANENT_REDIRECT);
    let claim = t
        .set
        .listeners
        .iter()
        .find(|l| l.port == 8443)
        .expect("https claim");
    assert_eq!(claim.hosts, vec![HostMatch::Exact("shop.example".into())]);
    assert!(claim.tls.is_some());

    let o2 = IngressObjects {
        ingresses: vec![ingress("shop", T0, &[("ssl-redirect", "false")], spec)],
        ..o
    };
    assert!(routes_on(&run(&o2), 8080)[0].filters.redirect.is_none());
}

#[test]
fn a_missing_tls_secret_is_a_problem_naming_the_field_and_the_host_stays_plain() {
    let spec = "{ingressClassName: sluice, tls: [{hosts: [shop.example], secretName: nope}], rules: [{host: shop.example, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]}";
    let t = run(&objects(vec![ingress("shop", T0, &[], spec)]));
    assert!(routes_on(&t, 8443).is_empty());
    assert!(routes_on(&t, 8080)[0].filters.redirect.is_none());
    let p = &t.problems["shop/shop"][0];
    assert_eq!(p.reason, "SecretNotFound");
    assert!(
        p.message.contains("spec.tls[0].secretName") && p.message.contains("shop/nope"),
        "{p:?}"
    );
}

#[test]
fn force_ssl_redirect_redirects_without_tls() {
    let t = run(&objects(vec![ingress(
        "shop",
        T0,
        &[("force-ssl-redirect", "true")],
        &web("shop.example", "/", "Prefix"),
    )]));
    assert!(routes_on(&t, 8080)[0].filters.redirect.is_some());
}

#[test]
fn a_missing_service_leaves_the_route_answering_503_and_is_reported() {
    let spec = "{ingressClassName: sluice, rules: [{http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: gone, port: {number: 80}}}}]}}]}";
    let t = run(&objects(vec![ingress("shop", T0, &[], spec)]));
    assert_eq!(t.set.pools[0].name, "shop/gone:80");
    assert!(t.set.pools[0].endpoints.is_empty());
    assert_eq!(t.problems["shop/shop"][0].reason, "ServiceNotFound");
    assert!(
        t.problems["shop/shop"][0]
            .message
            .contains("Service shop/gone not found")
    );
}

#[test]
fn routes_naming_the_same_service_port_share_one_backend() {
    let o = objects(vec![
        ingress("a", T0, &[], &web("a.example", "/", "Prefix")),
        ingress("b", T1, &[], &web("b.example", "/x", "Prefix")),
    ]);
    let t = run(&o);
    assert_eq!(t.set.routes.len(), 2);
    assert_eq!(t.set.pools.len(), 1);
}

#[test]
fn default_backend_serves_any_host_and_the_oldest_ingress_keeps_it() {
    let a =
        "{ingressClassName: sluice, defaultBackend: {service: {name: web, port: {number: 80}}}}";
    let b =
        "{ingressClassName: sluice, defaultBackend: {service: {name: api, port: {number: 8080}}}}";
    let t = run(&objects(vec![
        ingress("b", T1, &[], b),
        ingress("a", T0, &[], a),
    ]));
    let r = routes_on(&t, 8080);
    assert_eq!(r.len(), 1);
    assert!(r[0].hosts.is_empty());
    assert_eq!(backend_of(r[0]), "shop/web:80");
    assert_eq!(t.problems["shop/b"][0].reason, "Conflict");
}

#[test]
fn a_backend_pool_holding_the_http_port_as_tcp_keeps_it_and_the_ingresses_are_told() {
    let t = run(&objects(vec![ingress(
        "shop",
        T0,
        &[],
        &web("shop.example", "/", "Prefix"),
    )]));
    let mut set = ConfigSet {
        listeners: vec![Arc::new(ListenerClaim {
            owner: "shop/db".into(),
            port: 8080,
            protocol: Protocol::Tcp,
            hosts: Vec::new(),
            tls: None,
            proxy_protocol: false,
            drain_timeout: DRAIN_TIMEOUT,
            tcp_pool: Some("shop/db".into()),
        })],
        ..ConfigSet::default()
    };
    let t = merge(&mut set, t, &IngressSettings::default());
    assert_eq!(set.listeners.len(), 1, "only the BackendPool's claim");
    assert!(set.routes.is_empty());
    let p = &t.problems["shop/shop"][0];
    assert_eq!(p.reason, "PortConflict");
    assert!(
        p.message.contains("shop/db") && p.message.contains("8080"),
        "{p:?}"
    );
}

#[test]
fn a_shared_http_port_puts_ingress_routes_after_the_backend_pools() {
    let t = run(&objects(vec![ingress(
        "shop",
        T0,
        &[],
        &web("shop.example", "/", "Prefix"),
    )]));
    let pool_route = Arc::new(RouteConfig {
        owner: "shop/web".into(),
        port: 8080,
        hosts: Vec::new(),
        path: PathMatch::Prefix("/".into()),
        matches: Default::default(),
        filters: Arc::default(),
        action: RouteAction::Respond(http::StatusCode::OK),
    });
    let mut set = ConfigSet {
        routes: vec![pool_route],
        ..ConfigSet::default()
    };
    let t = merge(&mut set, t, &IngressSettings::default());
    assert_eq!(set.routes.len(), 2);
    assert_eq!(set.routes[0].owner, "shop/web");
    assert_eq!(set.routes[1].owner, "ingress:shop/shop");
    assert_eq!(set.pools.len(), 1);
    assert!(t.problems.is_empty());
}
