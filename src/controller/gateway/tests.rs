use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::config::{HostMatch, PathMatch, RouteAction, RouteConfig, TlsConfig, WeightedBackend};
use crate::controller::test_objects::{service, slice, tls_secret};

fn typed<T: serde::de::DeserializeOwned>(v: Value) -> Arc<T> {
    Arc::new(serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{v}: {e}")))
}

fn meta(name: &str, ns: &str, created: &str) -> Value {
    json!({"name": name, "namespace": ns, "creationTimestamp": created, "generation": 3})
}

fn class(name: &str, controller: &str) -> Arc<GatewayClass> {
    typed(
        json!({"metadata": {"name": name, "generation": 1}, "spec": {"controllerName": controller}}),
    )
}

/// Gateway `shop/NAME` of class `sluice` with these listeners.
fn gateway(name: &str, listeners: Value) -> Arc<Gateway> {
    typed(json!({
        "metadata": meta(name, "shop", "2026-01-01T00:00:00Z"),
        "spec": {"gatewayClassName": "sluice", "listeners": listeners},
    }))
}

fn http_listener(name: &str, port: i32) -> Value {
    json!({"name": name, "port": port, "protocol": "HTTP"})
}

/// HTTPRoute `NS/NAME` created at `created` with this spec.
fn route(name: &str, ns: &str, created: &str, spec: Value) -> Arc<HTTPRoute> {
    typed(json!({"metadata": meta(name, ns, created), "spec": spec}))
}

fn to_web(path: &str) -> Value {
    json!({
        "parentRefs": [{"name": "gw"}],
        "rules": [{
            "matches": [{"path": {"type": "PathPrefix", "value": path}}],
            "backendRefs": [{"name": "web", "port": 80}],
        }],
    })
}

fn objects(gateways: Vec<Arc<Gateway>>, routes: Vec<Arc<HTTPRoute>>) -> GatewayObjects {
    GatewayObjects {
        classes: vec![
            class("sluice", CONTROLLER),
            class("other", "example.com/other"),
        ],
        gateways,
        http_routes: routes,
        services: vec![service("web", &[(Some("http"), 80)])],
        slices: vec![slice("web", (Some("http"), 8080), &["198.18.0.10"])],
        ..Default::default()
    }
}

fn cond<'a>(list: &'a [Cond], type_: &str) -> &'a Cond {
    list.iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} in {list:?}"))
}

fn parent<'a>(t: &'a Translation, name: &str) -> &'a ParentReport {
    &t.reports.routes[&(RouteKind::Http, name.to_owned())].parents[0]
}

fn accepted(t: &Translation, name: &str) -> (bool, &'static str) {
    let c = cond(&parent(t, name).conditions, "Accepted");
    (c.status, c.reason)
}

fn resolved(t: &Translation, name: &str) -> (bool, &'static str) {
    let c = cond(&parent(t, name).conditions, "ResolvedRefs");
    (c.status, c.reason)
}

fn forward(r: &RouteConfig) -> &[WeightedBackend] {
    match &r.action {
        RouteAction::Forward(f) => &f.backends,
        other => panic!("not forwarding: {other:?}"),
    }
}

#[test]
fn a_gateway_of_our_class_claims_its_port_and_its_route_forwards_to_the_service() {
    let t = translate(
        &objects(
            vec![gateway("gw", json!([http_listener("http", 8080)]))],
            vec![route(
                "api",
                "shop",
                "2026-01-02T00:00:00Z",
                to_web("/api/"),
            )],
        ),
        &ConfigSet::default(),
    );
    assert_eq!(t.set.listeners.len(), 1);
    assert_eq!(t.set.listeners[0].port, 8080);
    assert_eq!(t.set.listeners[0].owner, "gateway:shop/gw");
    assert_eq!(t.set.routes.len(), 1);
    let r = &t.set.routes[0];
    assert_eq!((r.port, r.owner.as_str()), (8080, "httproute:shop/api"));
    assert_eq!(r.path, PathMatch::Prefix("/api".into()));
    assert!(r.hosts.is_empty());
    assert_eq!(
        forward(r),
        [WeightedBackend {
            name: "gateway:shop/web:80".into(),
            weight: 1
        }]
    );
    assert_eq!(t.set.pools.len(), 1);
    assert_eq!(t.set.pools[0].name, "gateway:shop/web:80");
    assert_eq!(
        t.set.pools[0].endpoints[0].address,
        "198.18.0.10:8080".parse().unwrap()
    );
    assert_eq!(accepted(&t, "shop/api"), (true, "Accepted"));
    assert_eq!(resolved(&t, "shop/api"), (true, "ResolvedRefs"));
    assert_eq!(t.reports.gateways["shop/gw"].listeners[0].attached, 1);
    assert_eq!(t.reports.classes.keys().collect::<Vec<_>>(), ["sluice"]);
}

#[test]
fn gateways_of_other_classes_and_their_routes_are_left_alone() {
    let mut other = (*gateway("gw", json!([http_listener("http", 8080)]))).clone();
    other.spec.gateway_class_name = "other".into();
    let t = translate(
        &objects(
            vec![Arc::new(other)],
            vec![route("api", "shop", "2026-01-02T00:00:00Z", to_web("/"))],
        ),
        &ConfigSet::default(),
    );
    assert!(t.set.listeners.is_empty() && t.set.routes.is_empty());
    assert!(t.reports.gateways.is_empty() && t.reports.routes.is_empty());
}

#[test]
fn a_missing_service_keeps_its_weight_as_500s_and_reports_backend_not_found() {
    let spec = json!({
        "parentRefs": [{"name": "gw"}],
        "rules": [{"backendRefs": [
            {"name": "web", "port": 80, "weight": 3},
            {"name": "gone", "port": 80, "weight": 1},
        ]}],
    });
    let t = translate(
        &objects(
            vec![gateway("gw", json!([http_listener("http", 8080)]))],
            vec![route("r", "shop", "2026-01-02T00:00:00Z", spec)],
        ),
        &ConfigSet::default(),
    );
    let backends = forward(&t.set.routes[0]);
    assert_eq!(backends.len(), 2);
    assert_eq!(backends[1].weight, 1);
    assert!(
        t.set.pools.iter().all(|p| p.name != backends[1].name),
        "no pool answers the missing share"
    );
    assert_eq!(resolved(&t, "shop/r"), (false, "BackendNotFound"));
    assert_eq!(accepted(&t, "shop/r"), (true, "Accepted"));
}

#[test]
fn a_rule_without_backends_answers_500_and_one_with_a_redirect_answers_the_redirect() {
    let spec = json!({
        "parentRefs": [{"name": "gw"}],
        "rules": [
            {"matches": [{"path": {"type": "Exact", "value": "/none"}}]},
            {"matches": [{"path": {"type": "Exact", "value": "/old"}}],
             "filters": [{"type": "RequestRedirect", "requestRedirect": {"hostname": "new.example", "statusCode": 301}}]},
        ],
    });
    let t = translate(
        &objects(
            vec![gateway("gw", json!([http_listener("http", 8080)]))],
            vec![route("r", "shop", "2026-01-02T00:00:00Z", spec)],
        ),
        &ConfigSet::default(),
    );
    assert_eq!(
        t.set.routes[0].action,
        RouteAction::Respond(http::StatusCode::INTERNAL_SERVER_ERROR)
    );
    assert_eq!(
        t.set.routes[1].action,
        RouteAction::Respond(http::StatusCode::MOVED_PERMANENTLY)
    );
    let redirect = t.set.routes[1].filters.redirect.as_ref().expect("redirect");
    assert_eq!(redirect.host.as_deref(), Some("new.example"));
}

#[test]
fn a_rule_with_timeouts_forwards_to_a_pool_with_the_shorter_one_and_a_bad_one_is_refused() {
    let spec = json!({
        "parentRefs": [{"name": "gw"}],
        "rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/slow"}}],
             "timeouts": {"request": "2s", "backendRequest": "500ms"},
             "backendRefs": [{"name": "web", "port": 80}]},
            {"backendRefs": [{"name": "web", "port": 80}]},
        ],
    });
    let t = translate(
        &objects(
            vec![gateway("gw", json!([http_listener("http", 8080)]))],
            vec![route("r", "shop", "2026-01-02T00:00:00Z", spec)],
        ),
        &ConfigSet::default(),
    );
    assert_eq!(accepted(&t, "shop/r"), (true, "Accepted"));
    let names: Vec<&str> = t
        .set
        .routes
        .iter()
        .map(|r| forward(r)[0].name.as_str())
        .collect();
    assert_eq!(
        names,
        ["gateway:shop/web:80@timeout=500ms", "gateway:shop/web:80"]
    );
    let pool = |name: &str| t.set.pools.iter().find(|p| p.name == name).unwrap();
    assert_eq!(
        pool("gateway:shop/web:80@timeout=500ms").timeouts.request,
        std::time::Duration::from_millis(500)
    );
    assert_eq!(pool("gateway:shop/web:80").timeouts, Timeouts::default());

    let bad = json!({"parentRefs": [{"name": "gw"}],
        "rules": [{"timeouts": {"request": "soon"}, "backendRefs": [{"name": "web", "port": 80}]}]});
    let t = translate(
        &objects(
            vec![gateway("gw", json!([http_listener("http", 8080)]))],
            vec![route("r", "shop", "2026-01-02T00:00:00Z", bad)],
        ),
        &ConfigSet::default(),
    );
    assert_eq!(accepted(&t, "shop/r"), (false, "UnsupportedValue"));
    let message = &cond(&parent(&t, "shop/r").conditions, "Accepted").message;
    assert!(
        message.contains("spec.rules[0].timeouts.request"),
        "{message}"
    );
}

#[test]
fn fields_sluice_does_not_know_are_refused_by_name_never_ignored() {
    let rule_retry = json!({"parentRefs": [{"name": "gw"}],
        "rules": [{"retry": {"attempts": 3}, "backendRefs": [{"name": "web", "port": 80}]}]});
    let t = translate(
        &objects(
            vec![gateway("gw", json!([http_listener("http", 8080)]))],
            vec![route("r", "shop", "2026-01-02T00:00:00Z", rule_retry)],
        ),
        &ConfigSet::default(),
    );
    assert_eq!(accepted(&t, "shop/r"), (false, "UnsupportedValue"));
    let message = &cond(&parent(&t, "shop/r").conditions, "Accepted").message;
    assert!(message.contains("spec.rules[0].retry"), "{message}");

    let gw = |spec_extra: Value| -> Arc<Gateway> {
        let mut spec =
            json!({"gatewayClassName": "sluice", "listeners": [http_listener("http", 8080)]});
        spec.as_object_mut()
            .unwrap()
            .extend(spec_extra.as_object().unwrap().clone());
        typed(json!({"metadata": meta("gw", "shop", "2026-01-01T00:00:00Z"), "spec": spec}))
    };
    for (extra, reason, field) in [
        (
            json!({"frontendValidation": {}}),
            "Invalid",
            "spec.frontendValidation",
        ),
        (
            json!({"allowedListeners": {"namespaces": {"from": "All"}}}),
            "Invalid",
            "spec.allowedListeners",
        ),
        (
            json!({"infrastructure": {"parametersRef": {"group": "", "kind": "ConfigMap", "name": "x"}}}),
            "InvalidParameters",
            "spec.infrastructure.parametersRef",
        ),
    ] {
        let t = translate(&objects(vec![gw(extra)], vec![]), &ConfigSet::default());
        let refused = t.reports.gateways["shop/gw"]
            .refused
            .clone()
            .expect("refused");
        assert_eq!(refused.reason, reason);
        assert!(refused.message.contains(field), "{}", refused.message);
        assert!(t.set.listeners.is_empty());
    }
    let default_listeners = json!({"allowedListeners": {"namespaces": {"from": "None"}}});
    let t = translate(
        &objects(vec![gw(default_listeners)], vec![]),
        &ConfigSet::default(),
    );
    assert!(t.reports.gateways["shop/gw"].refused.is_none());

    let odd_listener =
        json!([{"name": "http", "port": 8080, "protocol": "HTTP", "defaultRoute": {}}]);
    let t = translate(
        &objects(vec![gateway("gw", odd_listener)], vec![]),
        &ConfigSet::default(),
    );
    let l = &t.reports.gateways["shop/gw"].listeners[0];
    let c = cond(&l.conditions, "Accepted");
    assert_eq!((c.status, c.reason), (false, "UnsupportedValue"));
    assert!(
        c.message.contains("spec.listeners[0].defaultRoute"),
        "{}",
        c.message
    );
}

#[test]
fn backend_refs_of_another_kind_or_namespace_need_a_service_and_a_reference_grant() {
    let spec = |backend: Value| json!({"parentRefs": [{"name": "gw", "namespace": "shop"}], "rules": [{"backendRefs": [backend]}]});
    let mut objs = objects(
        vec![gateway(
            "gw",
            json!([{"name": "http", "port": 8080, "protocol": "HTTP",
            "allowedRoutes": {"namespaces": {"from": "All"}}}]),
        )],
        vec![
            route(
                "kind",
                "shop",
                "2026-01-02T00:00:00Z",
                spec(json!({"group": "example.com", "kind": "Bucket", "name": "b"})),
            ),
            route(
                "cross",
                "web",
                "2026-01-02T00:00:00Z",
                spec(json!({"name": "web", "namespace": "shop", "port": 80})),
            ),
        ],
    );
    let t = translate(&objs, &ConfigSet::default());
    assert_eq!(resolved(&t, "shop/kind"), (false, "InvalidKind"));
    assert_eq!(resolved(&t, "web/cross"), (false, "RefNotPermitted"));
    objs.grants.push(typed(json!({
        "metadata": {"name": "from-web", "namespace": "shop"},
        "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "web"}],
                 "to": [{"group": "", "kind": "Service"}]},
    })));
    let t = translate(&objs, &ConfigSet::default());
    assert_eq!(resolved(&t, "web/cross"), (true, "ResolvedRefs"));
}

#[test]
fn parent_refs_attach_only_where_section_namespace_and_hostname_allow() {
    let listeners = json!([
        {"name": "same", "port": 8080, "protocol": "HTTP", "hostname": "*.example.com"},
        {"name": "labelled", "port": 8081, "protocol": "HTTP",
         "allowedRoutes": {"namespaces": {"from": "Selector", "selector": {"matchLabels": {"team": "a"}}}}},
    ]);
    let pref = |section: &str| json!([{"name": "gw", "namespace": "shop", "sectionName": section}]);
    let mut objs = objects(
        vec![gateway("gw", listeners)],
        vec![
            route(
                "nosuch",
                "shop",
                "2026-01-02T00:00:00Z",
                json!({"parentRefs": pref("nosuch")}),
            ),
            route(
                "otherhost",
                "shop",
                "2026-01-02T00:00:00Z",
                json!({"parentRefs": pref("same"), "hostnames": ["example.net"]}),
            ),
            route(
                "host",
                "shop",
                "2026-01-02T00:00:00Z",
                json!({"parentRefs": pref("same"), "hostnames": ["a.example.com", "example.net"]}),
            ),
            route(
                "foreign",
                "web",
                "2026-01-02T00:00:00Z",
                json!({"parentRefs": pref("same")}),
            ),
            route(
                "team",
                "web",
                "2026-01-02T00:00:00Z",
                json!({"parentRefs": pref("labelled")}),
            ),
        ],
    );
    objs.namespaces.push(typed(
        json!({"metadata": {"name": "web", "labels": {"team": "a"}}}),
    ));
    let t = translate(&objs, &ConfigSet::default());
    assert_eq!(accepted(&t, "shop/nosuch"), (false, "NoMatchingParent"));
    assert_eq!(
        accepted(&t, "shop/otherhost"),
        (false, "NoMatchingListenerHostname")
    );
    assert_eq!(accepted(&t, "shop/host"), (true, "Accepted"));
    assert_eq!(
        accepted(&t, "web/foreign"),
        (false, "NotAllowedByListeners")
    );
    assert_eq!(accepted(&t, "web/team"), (true, "Accepted"));
    let hosts: Vec<&Vec<HostMatch>> = t
        .set
        .routes
        .iter()
        .filter(|r| r.owner == "httproute:shop/host")
        .map(|r| &r.hosts)
        .collect();
    assert_eq!(hosts, [&vec![HostMatch::Exact("a.example.com".into())]]);
    let listeners = &t.reports.gateways["shop/gw"].listeners;
    assert_eq!((listeners[0].attached, listeners[1].attached), (1, 1));
}

#[test]
fn unsupported_listeners_and_route_kinds_are_reported_and_the_rest_served() {
    let listeners = json!([
        http_listener("http", 8080),
        {"name": "tcp", "port": 9000, "protocol": "TCP"},
        {"name": "kinds", "port": 8081, "protocol": "HTTP",
         "allowedRoutes": {"kinds": [{"kind": "HTTPRoute"}, {"kind": "FooRoute"}]}},
    ]);
    let t = translate(
        &objects(vec![gateway("gw", listeners)], vec![]),
        &ConfigSet::default(),
    );
    let gw = &t.reports.gateways["shop/gw"];
    let tcp = &gw.listeners[1];
    assert_eq!(
        cond(&tcp.conditions, "Accepted").reason,
        "UnsupportedProtocol"
    );
    assert!(tcp.supported_kinds.is_empty());
    let kinds = &gw.listeners[2];
    assert_eq!(
        cond(&kinds.conditions, "ResolvedRefs").reason,
        "InvalidRouteKinds"
    );
    assert_eq!(kinds.supported_kinds.len(), 1);
    assert_eq!(kinds.supported_kinds[0].kind, "HTTPRoute");
    let gw_conditions = status::gateway_conditions(gw, None, true);
    assert_eq!(cond(&gw_conditions, "Accepted").reason, "ListenersNotValid");
    assert!(cond(&gw_conditions, "Accepted").status);
    assert!(cond(&gw_conditions, "Programmed").status);
    let ports: Vec<u16> = t.set.listeners.iter().map(|l| l.port).collect();
    assert_eq!(ports, [8080, 8081]);
}

#[test]
fn https_listeners_serve_their_certificate_by_sni_and_report_bad_references() {
    let https = |name: &str, port: i32, secret: Value| {
        json!({"name": name, "port": port, "protocol": "HTTPS", "hostname": "secure.example",
               "tls": {"certificateRefs": [secret]}})
    };
    let mut objs = objects(
        vec![gateway(
            "gw",
            json!([
                https("good", 8443, json!({"name": "cert"})),
                https("missing", 8444, json!({"name": "nope"})),
                https(
                    "foreign",
                    8445,
                    json!({"name": "cert", "namespace": "vault"})
                ),
                https("kind", 8446, json!({"name": "cert", "kind": "ConfigMap"})),
            ]),
        )],
        vec![],
    );
    objs.secrets = vec![tls_secret("cert", "secure.example")];
    let t = translate(&objs, &ConfigSet::default());
    assert_eq!(t.set.listeners.len(), 1);
    let claim = &t.set.listeners[0];
    assert_eq!(claim.hosts, [HostMatch::Exact("secure.example".into())]);
    assert!(matches!(claim.tls, Some(TlsConfig::Pem { .. })));
    let reasons: Vec<&str> = t.reports.gateways["shop/gw"]
        .listeners
        .iter()
        .map(|l| cond(&l.conditions, "ResolvedRefs").reason)
        .collect();
    assert_eq!(
        reasons,
        [
            "ResolvedRefs",
            "InvalidCertificateRef",
            "RefNotPermitted",
            "InvalidCertificateRef"
        ]
    );
}

#[test]
fn a_port_held_by_a_backend_pool_with_another_protocol_is_a_conflict() {
    let held = ConfigSet {
        listeners: vec![Arc::new(crate::config::ListenerClaim {
            owner: "shop/tcp".into(),
            port: 8080,
            protocol: Protocol::Tcp,
            hosts: vec![],
            tls: None,
            proxy_protocol: false,
            drain_timeout: listeners::DRAIN_TIMEOUT,
            tcp_pool: Some("shop/tcp".into()),
        })],
        ..ConfigSet::default()
    };
    let t = translate(
        &objects(
            vec![gateway("gw", json!([http_listener("http", 8080)]))],
            vec![],
        ),
        &held,
    );
    assert!(t.set.listeners.is_empty());
    let l = &t.reports.gateways["shop/gw"].listeners[0];
    let c = cond(&l.conditions, "Conflicted");
    assert!(c.status);
    assert_eq!(c.reason, "ProtocolConflict");
    assert!(c.message.contains("shop/tcp"), "{}", c.message);
    assert!(!cond(&l.conditions, "Programmed").status);
}

#[test]
fn unsupported_matches_and_filter_combinations_refuse_the_route_by_name() {
    let spec = |rule: Value| json!({"parentRefs": [{"name": "gw"}], "rules": [rule]});
    let t = translate(
        &objects(
            vec![gateway("gw", json!([http_listener("http", 8080)]))],
            vec![
                route(
                    "regex",
                    "shop",
                    "2026-01-02T00:00:00Z",
                    spec(
                        json!({"matches": [{"headers": [{"type": "RegularExpression", "name": "x", "value": "a.*"}]}]}),
                    ),
                ),
                route(
                    "mirror",
                    "shop",
                    "2026-01-02T00:00:00Z",
                    spec(json!({"filters": [{"type": "RequestMirror"}]})),
                ),
                route(
                    "both",
                    "shop",
                    "2026-01-02T00:00:00Z",
                    spec(json!({"filters": [
                        {"type": "RequestRedirect", "requestRedirect": {"hostname": "a"}},
                        {"type": "URLRewrite", "urlRewrite": {"hostname": "b"}},
                    ]})),
                ),
            ],
        ),
        &ConfigSet::default(),
    );
    assert_eq!(accepted(&t, "shop/regex"), (false, "UnsupportedValue"));
    let message = &cond(&parent(&t, "shop/regex").conditions, "Accepted").message;
    assert!(
        message.contains("spec.rules[0].matches[0].headers[0].type"),
        "{message}"
    );
    assert_eq!(accepted(&t, "shop/mirror"), (false, "UnsupportedValue"));
    assert_eq!(accepted(&t, "shop/both"), (false, "IncompatibleFilters"));
    assert!(
        t.set.routes.is_empty(),
        "nothing of a refused route is served"
    );
}

#[test]
fn matches_and_header_filters_become_route_conditions_and_changes() {
    let spec = json!({
        "parentRefs": [{"name": "gw"}],
        "hostnames": ["shop.example"],
        "rules": [{
            "matches": [{"path": {"type": "RegularExpression", "value": "/u/[0-9]+"},
                         "headers": [{"name": "X-V", "value": "2"}],
                         "queryParams": [{"name": "q", "value": "1"}],
                         "method": "POST"}],
            "filters": [
                {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "X-A", "value": "1"}], "remove": ["X-B"]}},
                {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"add": [{"name": "X-C", "value": "3"}]}},
                {"type": "URLRewrite", "urlRewrite": {"hostname": "internal"}},
            ],
            "backendRefs": [{"name": "web", "port": 80}],
        }],
    });
    let t = translate(
        &objects(
            vec![gateway("gw", json!([http_listener("http", 8080)]))],
            vec![route("r", "shop", "2026-01-02T00:00:00Z", spec)],
        ),
        &ConfigSet::default(),
    );
    let r = &t.set.routes[0];
    assert!(matches!(&r.path, PathMatch::Regex(re) if re.as_str() == "/u/[0-9]+"));
    assert_eq!(r.hosts, [HostMatch::Exact("shop.example".into())]);
    assert_eq!(r.matches.headers[0].0.as_str(), "x-v");
    assert_eq!(r.matches.query, [("q".to_owned(), "1".to_owned())]);
    assert_eq!(r.matches.methods, [http::Method::POST]);
    assert_eq!(r.filters.request_headers.set[0].0.as_str(), "x-a");
    assert_eq!(r.filters.request_headers.remove[0].as_str(), "x-b");
    assert_eq!(r.filters.response_headers.add[0].0.as_str(), "x-c");
    assert_eq!(
        r.filters
            .rewrite
            .as_ref()
            .and_then(|w| w.host.clone())
            .unwrap(),
        "internal"
    );
}

#[test]
fn routes_are_placed_oldest_first_whatever_their_kind() {
    let grpc: Arc<GRPCRoute> = typed(json!({
        "metadata": meta("grpc", "shop", "2026-01-01T12:00:00Z"),
        "spec": {"parentRefs": [{"name": "gw"}],
                 "rules": [{"matches": [{"method": {"service": "echo.Echo", "method": "Say"}}],
                            "backendRefs": [{"name": "web", "port": 80}]}]},
    }));
    let mut objs = objects(
        vec![gateway("gw", json!([http_listener("http", 8080)]))],
        vec![
            route("young", "shop", "2026-01-03T00:00:00Z", to_web("/")),
            route("old", "shop", "2026-01-02T00:00:00Z", to_web("/")),
        ],
    );
    objs.grpc_routes.push(grpc);
    let t = translate(&objs, &ConfigSet::default());
    let owners: Vec<&str> = t.set.routes.iter().map(|r| r.owner.as_str()).collect();
    assert_eq!(
        owners,
        [
            "grpcroute:shop/grpc",
            "httproute:shop/old",
            "httproute:shop/young"
        ]
    );
    assert_eq!(
        t.set.routes[0].path,
        PathMatch::Exact("/echo.Echo/Say".into())
    );
    assert_eq!(forward(&t.set.routes[0])[0].name, "gateway-h2c:shop/web:80");
    let h2c = t
        .set
        .pools
        .iter()
        .find(|p| p.name == "gateway-h2c:shop/web:80")
        .expect("h2c pool");
    assert_eq!(h2c.upstream.protocol, UpstreamProtocol::Http2);
    assert_eq!(t.reports.gateways["shop/gw"].listeners[0].attached, 3);
}

#[test]
fn a_refused_route_is_not_counted_as_attached() {
    let spec =
        json!({"parentRefs": [{"name": "gw"}], "rules": [{"filters": [{"type": "ExtensionRef"}]}]});
    let t = translate(
        &objects(
            vec![gateway("gw", json!([http_listener("http", 8080)]))],
            vec![route("r", "shop", "2026-01-02T00:00:00Z", spec)],
        ),
        &ConfigSet::default(),
    );
    assert_eq!(accepted(&t, "shop/r"), (false, "UnsupportedValue"));
    assert_eq!(t.reports.gateways["shop/gw"].listeners[0].attached, 0);
}

#[test]
fn routes_attach_to_an_https_listener_without_a_certificate_but_nothing_is_served() {
    let listeners = json!([{"name": "tls", "port": 8443, "protocol": "HTTPS",
        "tls": {"certificateRefs": [{"name": "nope"}]}}]);
    let t = translate(
        &objects(
            vec![gateway("gw", listeners)],
            vec![route("r", "shop", "2026-01-02T00:00:00Z", to_web("/"))],
        ),
        &ConfigSet::default(),
    );
    assert_eq!(accepted(&t, "shop/r"), (true, "Accepted"));
    let l = &t.reports.gateways["shop/gw"].listeners[0];
    assert_eq!(l.attached, 1);
    assert!(!cond(&l.conditions, "Programmed").status);
    assert!(t.set.listeners.is_empty() && t.set.routes.is_empty());
    let gw = status::gateway_conditions(&t.reports.gateways["shop/gw"], None, true);
    assert_eq!(cond(&gw, "Programmed").reason, "Invalid");
}

#[test]
fn url_rewrites_replace_the_prefix_or_the_whole_path() {
    let rewrite = |path: Value| {
        json!({"parentRefs": [{"name": "gw"}], "rules": [{
            "matches": [{"path": {"type": "PathPrefix", "value": "/prefix"}}],
            "filters": [{"type": "URLRewrite", "urlRewrite": {"path": path}}],
            "backendRefs": [{"name": "web", "port": 80}],
        }]})
    };
    let t = translate(
        &objects(
            vec![gateway("gw", json!([http_listener("http", 8080)]))],
            vec![
                route(
                    "full",
                    "shop",
                    "2026-01-02T00:00:00Z",
                    rewrite(json!({"type": "ReplaceFullPath", "replaceFullPath": "/one"})),
                ),
                route(
                    "prefix",
                    "shop",
                    "2026-01-03T00:00:00Z",
                    rewrite(json!({"type": "ReplacePrefixMatch", "replacePrefixMatch": "/two"})),
                ),
            ],
        ),
        &ConfigSet::default(),
    );
    let full = t.set.routes[0].filters.rewrite.clone().unwrap();
    assert_eq!(
        (full.full_path.as_deref(), full.path_prefix.as_deref()),
        (Some("/one"), None)
    );
    let prefix = t.set.routes[1].filters.rewrite.clone().unwrap();
    assert_eq!(
        (prefix.full_path.as_deref(), prefix.path_prefix.as_deref()),
        (None, Some("/two"))
    );
}

#[test]
fn a_class_with_parameters_is_not_accepted_and_tls_options_refuse_the_listener() {
    let mut objs = objects(
        vec![gateway(
            "gw",
            json!([{"name": "tls", "port": 8443, "protocol": "HTTPS",
        "tls": {"certificateRefs": [{"name": "cert"}], "options": {"x": "y"}}}]),
        )],
        vec![],
    );
    objs.secrets = vec![tls_secret("cert", "secure.example")];
    let t = translate(&objs, &ConfigSet::default());
    let l = &t.reports.gateways["shop/gw"].listeners[0];
    assert_eq!(cond(&l.conditions, "Accepted").reason, "UnsupportedValue");
    assert!(t.set.listeners.is_empty());
    assert_eq!(t.reports.classes["sluice"].accepted.reason, "Accepted");

    objs.classes[0] = typed(json!({"metadata": {"name": "sluice", "generation": 1},
        "spec": {"controllerName": CONTROLLER, "parametersRef": {"group": "", "kind": "ConfigMap", "name": "p"}}}));
    let t = translate(&objs, &ConfigSet::default());
    let class = &t.reports.classes["sluice"].accepted;
    assert_eq!((class.status, class.reason), (false, "InvalidParameters"));
    assert!(t.reports.gateways.is_empty(), "its Gateways are not served");
}

mod own_services;
mod reporting;
