use super::*;
use crate::controller::test_objects::service;
use k8s_openapi::ByteString;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn ingress(name: &str, created: &str, annotations: &[(&str, &str)], spec: &str) -> Arc<Ingress> {
    let mut notes = String::new();
    for (k, v) in annotations {
        let key = if k.contains('/') {
            (*k).to_owned()
        } else {
            format!("{}{k}", annotations::PREFIX)
        };
        notes.push_str(&format!("{key:?}: {v:?}, "));
    }
    let doc = format!(
        "metadata: {{name: {name}, namespace: shop, creationTimestamp: \"{created}\", annotations: {{{notes}}}}}\nspec: {spec}\n"
    );
    Arc::new(serde_norway::from_str(&doc).unwrap_or_else(|e| panic!("{doc}: {e}")))
}

fn class(name: &str, controller: &str, default: bool) -> Arc<IngressClass> {
    let doc = format!(
        "metadata: {{name: {name}, annotations: {{{DEFAULT_CLASS_ANNOTATION:?}: \"{default}\"}}}}\nspec: {{controller: {controller}}}\n"
    );
    Arc::new(serde_norway::from_str(&doc).unwrap())
}

fn slice(svc: &str, port: (Option<&str>, i32), addresses: &[&str]) -> Arc<EndpointSlice> {
    let mut labels = BTreeMap::new();
    labels.insert(
        super::super::index::SERVICE_NAME_LABEL.to_owned(),
        svc.to_owned(),
    );
    Arc::new(EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("{svc}-abc")),
            namespace: Some("shop".into()),
            labels: Some(labels),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        ports: Some(vec![EndpointPort {
            name: port.0.map(Into::into),
            port: Some(port.1),
            ..Default::default()
        }]),
        endpoints: Some(
            addresses
                .iter()
                .map(|a| Endpoint {
                    addresses: vec![(*a).into()],
                    ..Default::default()
                })
                .collect(),
        ),
    })
}

fn tls_secret(name: &str, host: &str) -> Arc<Secret> {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![host.to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let mut data = BTreeMap::new();
    data.insert("tls.crt".to_owned(), ByteString(cert.pem().into_bytes()));
    data.insert(
        "tls.key".to_owned(),
        ByteString(key.serialize_pem().into_bytes()),
    );
    Arc::new(Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("shop".into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Default::default()
    })
}

fn objects(ingresses: Vec<Arc<Ingress>>) -> IngressObjects {
    IngressObjects {
        ingresses,
        classes: vec![class("sluice", CONTROLLER, false)],
        services: vec![
            service("web", &[(Some("http"), 80)]),
            service("api", &[(None, 8080)]),
            service("web-v2", &[(Some("http"), 80)]),
        ],
        slices: vec![
            slice("web", (Some("http"), 8000), &["198.18.0.10"]),
            slice("api", (None, 9000), &["198.18.0.20", "198.18.0.21"]),
        ],
        secrets: Vec::new(),
    }
}

const T0: &str = "2026-01-01T00:00:00Z";
const T1: &str = "2026-01-02T00:00:00Z";

fn web(host: &str, path: &str, path_type: &str) -> String {
    format!(
        "{{ingressClassName: sluice, rules: [{{host: {host:?}, http: {{paths: [{{path: {path:?}, pathType: {path_type}, backend: {{service: {{name: web, port: {{name: http}}}}}}}}]}}}}]}}"
    )
}

fn run(o: &IngressObjects) -> Translation {
    translate(o, &IngressSettings::default())
}

fn routes_on(t: &Translation, port: u16) -> Vec<&RouteConfig> {
    t.set
        .routes
        .iter()
        .filter(|r| r.port == port)
        .map(|r| r.as_ref())
        .collect()
}

fn backend_of(r: &RouteConfig) -> &str {
    match &r.action {
        RouteAction::Forward(f) => &f.backends[0].name,
        RouteAction::Respond(_) => "",
    }
}

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
fn an_access_restricting_annotation_sluice_lacks_refuses_the_whole_ingress() {
    for name in [
        "auth-url",
        "whitelist-source-range",
        "limit-rps",
        "configuration-snippet",
        "server-snippet",
        "denylist-source-range",
    ] {
        let t = run(&objects(vec![ingress(
            "shop",
            T0,
            &[(name, "x")],
            &web("shop.example", "/", "Prefix"),
        )]));
        assert!(t.set.routes.is_empty(), "{name}");
        assert!(t.refused.contains("shop/shop"));
        let p = &t.problems["shop/shop"][0];
        assert_eq!(p.reason, "Refused");
        assert!(
            p.message
                .contains(&format!("{}{name}", annotations::PREFIX)),
            "{p:?}"
        );
    }
}

#[test]
fn other_unknown_annotations_are_warned_and_the_ingress_is_served() {
    let t = run(&objects(vec![ingress(
        "shop",
        T0,
        &[("proxy-buffering", "on"), ("example.com/unrelated", "x")],
        &web("shop.example", "/", "Prefix"),
    )]));
    assert_eq!(t.set.routes.len(), 1);
    let p = &t.problems["shop/shop"];
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].reason, "UnsupportedAnnotation");
    assert!(
        p[0].message
            .contains("nginx.ingress.kubernetes.io/proxy-buffering")
    );
}

#[test]
fn a_bad_annotation_value_refuses_the_ingress_naming_the_annotation() {
    let t = run(&objects(vec![ingress(
        "shop",
        T0,
        &[("proxy-read-timeout", "5s")],
        &web("shop.example", "/", "Prefix"),
    )]));
    assert!(t.set.routes.is_empty());
    assert!(
        t.problems["shop/shop"][0]
            .message
            .contains("proxy-read-timeout")
    );
}

#[test]
fn rewrite_target_with_the_documented_capture_strips_the_prefix_upstream() {
    let t = run(&objects(vec![ingress(
        "shop",
        T0,
        &[("rewrite-target", "/$2"), ("use-regex", "true")],
        &web(
            "shop.example",
            "/something(/|$)(.*)",
            "ImplementationSpecific",
        ),
    )]));
    let r = routes_on(&t, 8080)[0];
    assert_eq!(r.path, PathMatch::Prefix("/something".into()));
    let rw = r.filters.rewrite.as_ref().expect("rewrite");
    assert_eq!(rw.path_prefix.as_deref(), Some("/"));
}

#[test]
fn use_regex_makes_every_path_of_the_host_a_regex_even_from_another_ingress() {
    let t = run(&objects(vec![
        ingress(
            "a",
            T0,
            &[("use-regex", "true")],
            &web("shop.example", "/u/[0-9]+", "ImplementationSpecific"),
        ),
        ingress("b", T1, &[], &web("shop.example", "/API", "Prefix")),
    ]));
    let r = routes_on(&t, 8080);
    assert!(matches!(r[0].path, PathMatch::Regex(_)));
    assert!(r[1].path.matches("/api/x"), "case-insensitive prefix regex");
}

#[test]
fn app_root_redirects_the_root_with_302() {
    let t = run(&objects(vec![ingress(
        "shop",
        T0,
        &[("app-root", "/app1")],
        &web("shop.example", "/", "Prefix"),
    )]));
    let root = routes_on(&t, 8080)
        .into_iter()
        .find(|r| r.path == PathMatch::Exact("/".into()))
        .expect("app-root route");
    let redirect = root.filters.redirect.as_ref().unwrap();
    assert_eq!(redirect.status, http::StatusCode::FOUND);
    assert_eq!(redirect.path, Some(PathReplace::Full("/app1".into())));
}

#[test]
fn permanent_and_temporal_redirects_answer_with_the_url() {
    let t = run(&objects(vec![ingress(
        "shop",
        T0,
        &[("permanent-redirect", "https://www.example.com/new")],
        &web("shop.example", "/", "Prefix"),
    )]));
    let r = routes_on(&t, 8080)[0].filters.redirect.clone().unwrap();
    assert_eq!(r.status, http::StatusCode::MOVED_PERMANENTLY);
    assert_eq!(r.host.as_deref(), Some("www.example.com"));
    assert_eq!(r.path, Some(PathReplace::Full("/new".into())));
    let t = run(&objects(vec![ingress(
        "shop",
        T0,
        &[("temporal-redirect", "http://b.example")],
        &web("shop.example", "/", "Prefix"),
    )]));
    let r = routes_on(&t, 8080)[0].filters.redirect.clone().unwrap();
    assert_eq!(r.status, http::StatusCode::FOUND);
    assert_eq!(r.scheme, Some("http"));
}

#[test]
fn backend_annotations_set_the_backend_timeouts_protocol_and_algorithm() {
    let t = run(&objects(vec![ingress(
        "shop",
        T0,
        &[
            ("proxy-connect-timeout", "3"),
            ("proxy-read-timeout", "120"),
            ("backend-protocol", "GRPC"),
            ("load-balance", "ewma"),
            ("upstream-vhost", "internal.example"),
        ],
        &web("shop.example", "/", "Prefix"),
    )]));
    let pool = &t.set.pools[0];
    assert_eq!(pool.timeouts.connect, Duration::from_secs(3));
    assert_eq!(pool.timeouts.request, Duration::from_secs(120));
    assert_eq!(
        pool.upstream.protocol,
        crate::config::UpstreamProtocol::Http2
    );
    assert_eq!(pool.algorithm, crate::config::Algorithm::PowerOfTwoChoices);
    let rw = t.set.routes[0].filters.rewrite.clone().unwrap();
    assert_eq!(rw.host.unwrap(), "internal.example");
}

#[test]
fn a_newer_ingress_with_other_backend_settings_for_a_shared_service_is_warned() {
    let t = run(&objects(vec![
        ingress("a", T0, &[], &web("a.example", "/", "Prefix")),
        ingress(
            "b",
            T1,
            &[("proxy-read-timeout", "5")],
            &web("b.example", "/", "Prefix"),
        ),
    ]));
    assert_eq!(t.set.pools[0].timeouts.request, Duration::from_secs(60));
    assert_eq!(t.problems["shop/b"][0].reason, "Conflict");
    assert_eq!(t.set.routes.len(), 2, "still served");
}

#[test]
fn a_canary_ingress_splits_the_main_ingress_route_by_weight_and_header() {
    let canary = "{ingressClassName: sluice, rules: [{host: shop.example, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web-v2, port: {name: http}}}}]}}]}";
    let t = run(&objects(vec![
        ingress("web", T0, &[], &web("shop.example", "/", "Prefix")),
        ingress(
            "web-canary",
            T1,
            &[
                ("canary", "true"),
                ("canary-weight", "20"),
                ("canary-by-header", "X-Canary"),
            ],
            canary,
        ),
    ]));
    let r = routes_on(&t, 8080);
    assert_eq!(r.len(), 1, "the canary places no route of its own");
    let RouteAction::Forward(f) = &r[0].action else {
        panic!()
    };
    let c = f.canary.as_ref().expect("canary");
    assert_eq!(c.backend, "shop/web-v2:http");
    assert_eq!(c.weight, 20);
    let (name, value) = c.header.clone().unwrap();
    assert_eq!(
        (name.as_str(), value.to_str().unwrap()),
        ("x-canary", "always")
    );
    assert_eq!(t.set.pools.len(), 2);
    assert!(t.problems.is_empty(), "{:?}", t.problems);
}

#[test]
fn a_canary_without_a_main_ingress_is_reported() {
    let t = run(&objects(vec![ingress(
        "c",
        T0,
        &[("canary", "true"), ("canary-weight", "10")],
        &web("shop.example", "/", "Prefix"),
    )]));
    assert!(t.set.routes.is_empty());
    assert_eq!(t.problems["shop/c"][0].reason, "CanaryWithoutMain");
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

#[test]
fn source_ranges_rate_limits_and_body_size_become_the_routes_access_policy() {
    let t = run(&objects(vec![ingress(
        "shop",
        T0,
        &[
            ("whitelist-source-range", "10.0.0.0/8, 192.0.2.7"),
            ("denylist-source-range", "10.1.0.0/16"),
            ("limit-rps", "10"),
            ("limit-rpm", "300"),
            ("limit-burst-multiplier", "3"),
            ("proxy-body-size", "8m"),
        ],
        &web("shop.example", "/", "Prefix"),
    )]));
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    let access = &t.set.routes[0].filters.access;
    let allow = access.allow.as_ref().expect("allow list");
    assert!(allow.contains("10.2.3.4".parse().unwrap()));
    assert!(allow.contains("192.0.2.7".parse().unwrap()));
    assert!(!allow.contains("192.0.2.8".parse().unwrap()));
    assert!(
        access
            .deny
            .as_ref()
            .unwrap()
            .contains("10.1.2.3".parse().unwrap())
    );
    let rate = access.rate_limit.as_ref().expect("rate limit");
    assert_eq!(rate.requests_per_second, 5, "300 rpm binds before 10 rps");
    assert_eq!(rate.burst, 15);
    assert_eq!(access.max_request_body_bytes, Some(8 << 20));
}

#[test]
fn the_body_limit_is_ingress_nginxs_1m_by_default_and_0_lifts_it() {
    let t = run(&objects(vec![ingress(
        "a",
        T0,
        &[],
        &web("a.example", "/", "Prefix"),
    )]));
    assert_eq!(
        t.set.routes[0].filters.access.max_request_body_bytes,
        Some(1 << 20)
    );
    let t = run(&objects(vec![ingress(
        "a",
        T0,
        &[("proxy-body-size", "0")],
        &web("a.example", "/", "Prefix"),
    )]));
    assert_eq!(t.set.routes[0].filters.access.max_request_body_bytes, None);
}

#[test]
fn nginx_sizes_parse_as_nginx_reads_them() {
    use annotations::nginx_size;
    assert_eq!(nginx_size("1024"), Some(1024));
    assert_eq!(nginx_size("8k"), Some(8 << 10));
    assert_eq!(nginx_size("8K"), Some(8 << 10));
    assert_eq!(nginx_size("1m"), Some(1 << 20));
    assert_eq!(nginx_size("2G"), Some(2 << 30));
    assert_eq!(nginx_size("0"), Some(0));
    for bad in ["", "m", "1.5m", "8mb", "-1", "1t"] {
        assert_eq!(nginx_size(bad), None, "{bad}");
    }
}

#[test]
fn access_annotations_sluice_cannot_honour_exactly_refuse_the_ingress() {
    for (name, value) in [
        ("whitelist-source-range", "10.0.0.1/8"),
        ("allowlist-source-range", " , "),
        ("denylist-source-range", "nope"),
        ("limit-rpm", "90"),
        ("limit-rps", "0"),
        ("proxy-body-size", "8mb"),
    ] {
        let t = run(&objects(vec![ingress(
            "shop",
            T0,
            &[(name, value)],
            &web("shop.example", "/", "Prefix"),
        )]));
        assert!(t.set.routes.is_empty(), "{name}: {value}");
        let p = &t.problems["shop/shop"][0];
        assert_eq!(p.reason, "Refused");
        assert!(p.message.contains(name), "{p:?}");
    }
}

#[test]
fn upstream_hash_by_and_cookie_affinity_set_the_backends_balancing() {
    let backend = |notes: &[(&str, &str)]| {
        let t = run(&objects(vec![ingress(
            "a",
            T0,
            notes,
            &web("a.example", "/", "Prefix"),
        )]));
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        t.set.pools[0].clone()
    };
    let p = backend(&[
        ("upstream-hash-by", "$remote_addr"),
        ("load-balance", "ewma"),
    ]);
    assert_eq!(
        p.algorithm,
        crate::config::Algorithm::ConsistentHash(crate::config::HashKey::ClientIp)
    );
    let p = backend(&[("upstream-hash-by", "$http_x_user_id")]);
    assert_eq!(
        p.algorithm,
        crate::config::Algorithm::ConsistentHash(crate::config::HashKey::Header(
            http::HeaderName::from_static("x-user-id")
        ))
    );
    let p = backend(&[("upstream-hash-by", "$cookie_sid")]);
    assert_eq!(
        p.algorithm,
        crate::config::Algorithm::ConsistentHash(crate::config::HashKey::Cookie("sid".into()))
    );
    let p = backend(&[("affinity", "cookie")]);
    assert_eq!(
        p.affinity,
        Some(crate::config::AffinityConfig::Cookie {
            name: "INGRESSCOOKIE".into(),
            ttl: Duration::from_secs(3600)
        })
    );
    let p = backend(&[
        ("affinity", "cookie"),
        ("session-cookie-name", "route"),
        ("session-cookie-max-age", "172800"),
    ]);
    assert_eq!(
        p.affinity,
        Some(crate::config::AffinityConfig::Cookie {
            name: "route".into(),
            ttl: Duration::from_secs(172800)
        })
    );
}

#[test]
fn hash_keys_and_affinities_sluice_lacks_refuse_the_ingress() {
    for notes in [
        &[("upstream-hash-by", "$request_uri")][..],
        &[("affinity", "ip")][..],
        &[("affinity", "cookie"), ("session-cookie-name", "a b")][..],
    ] {
        let t = run(&objects(vec![ingress(
            "a",
            T0,
            notes,
            &web("a.example", "/", "Prefix"),
        )]));
        assert!(t.refused.contains("shop/a"), "{notes:?}");
    }
}

#[test]
fn from_to_www_redirect_sends_the_other_host_to_the_rule_host_unless_it_is_served() {
    let t = run(&objects(vec![ingress(
        "a",
        T0,
        &[("from-to-www-redirect", "true")],
        &web("shop.example", "/", "Prefix"),
    )]));
    let www = t
        .set
        .routes
        .iter()
        .find(|r| r.hosts == vec![HostMatch::Exact("www.shop.example".into())])
        .expect("www route");
    let r = www.filters.redirect.as_ref().unwrap();
    assert_eq!(r.host.as_deref(), Some("shop.example"));
    assert_eq!(r.status, http::StatusCode::PERMANENT_REDIRECT);

    let t = run(&objects(vec![
        ingress(
            "a",
            T0,
            &[("from-to-www-redirect", "true")],
            &web("shop.example", "/", "Prefix"),
        ),
        ingress("b", T1, &[], &web("www.shop.example", "/", "Prefix")),
    ]));
    let www: Vec<_> = t
        .set
        .routes
        .iter()
        .filter(|r| r.hosts == vec![HostMatch::Exact("www.shop.example".into())])
        .collect();
    assert_eq!(www.len(), 1);
    assert!(
        www[0].filters.redirect.is_none(),
        "served by its own Ingress"
    );
    assert!(t.problems.is_empty(), "{:?}", t.problems);
}

fn htpasswd_secret(name: &str, list: &str) -> Arc<Secret> {
    let mut data = BTreeMap::new();
    data.insert("auth".to_owned(), ByteString(list.as_bytes().to_vec()));
    Arc::new(Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("shop".into()),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Default::default()
    })
}

#[test]
fn basic_auth_reads_the_htpasswd_secret_and_guards_every_route_of_the_ingress() {
    let mut o = objects(vec![ingress(
        "shop",
        T0,
        &[
            ("auth-type", "basic"),
            ("auth-secret", "users"),
            ("auth-realm", "Shop staff"),
        ],
        &web("shop.example", "/", "Prefix"),
    )]);
    o.secrets.push(htpasswd_secret(
        "users",
        "alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n",
    ));
    let t = run(&o);
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    let auth = t.set.routes[0]
        .filters
        .basic_auth
        .as_ref()
        .expect("basic auth");
    assert_eq!(auth.challenge, "Basic realm=\"Shop staff\"");
    assert_eq!(auth.users.users.len(), 1);
}

#[test]
fn basic_auth_without_a_usable_secret_or_of_another_type_refuses_the_ingress() {
    for notes in [
        &[("auth-type", "basic"), ("auth-secret", "missing")][..],
        &[("auth-type", "digest"), ("auth-secret", "users")][..],
        &[("auth-secret", "users")][..],
        &[
            ("auth-type", "basic"),
            ("auth-secret", "users"),
            ("auth-secret-type", "auth-map"),
        ][..],
        &[
            ("auth-type", "basic"),
            ("auth-secret", "users"),
            ("auth-url", "http://a.test/"),
        ][..],
    ] {
        let mut o = objects(vec![ingress(
            "shop",
            T0,
            notes,
            &web("shop.example", "/", "Prefix"),
        )]);
        o.secrets.push(htpasswd_secret(
            "users",
            "alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n",
        ));
        let t = run(&o);
        assert!(t.set.routes.is_empty(), "{notes:?}");
        assert_eq!(t.problems["shop/shop"][0].reason, "Refused", "{notes:?}");
    }
}
