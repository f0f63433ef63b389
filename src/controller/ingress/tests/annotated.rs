//! Annotation handling: refusals and warnings, rewrites and regex paths, redirects, backend settings, canaries.

use super::*;

#[test]
fn an_access_restricting_annotation_sluice_lacks_refuses_the_whole_ingress() {
    for name in [
        "auth-cache-key",
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

/// The backend (pool) of an Ingress with `notes`, or its problems when it is refused.
fn backend_with(notes: &[(&str, &str)]) -> Result<Arc<crate::config::PoolConfig>, Vec<Problem>> {
    let t = run(&objects(vec![ingress(
        "shop",
        T0,
        notes,
        &web("shop.example", "/", "Prefix"),
    )]));
    match t.set.pools.first() {
        Some(p) if t.refused.is_empty() => Ok(p.clone()),
        _ => Err(t.problems.get("shop/shop").cloned().unwrap_or_default()),
    }
}

#[test]
fn every_backend_retries_as_ingress_nginx_does_by_default_error_timeout_three_tries() {
    let pool = backend_with(&[]).unwrap();
    let r = pool
        .retry
        .clone()
        .expect("ingress-nginx retries by default");
    assert_eq!(r.attempts, 2, "3 tries = 2 extra");
    assert!(r.on_connect_failure && r.on_reset && r.on_timeout);
    assert!(!r.on_5xx && r.on_statuses.is_empty() && !r.non_idempotent);
    assert_eq!(
        (r.backoff_base, r.backoff_max),
        (Duration::ZERO, Duration::ZERO)
    );
    assert_eq!(r.within, None);
}

#[test]
fn proxy_next_upstream_maps_its_conditions_tries_and_timeout() {
    let pool = backend_with(&[
        (
            "proxy-next-upstream",
            "error http_502 http_503 http_429 non_idempotent",
        ),
        ("proxy-next-upstream-tries", "5"),
        ("proxy-next-upstream-timeout", "7"),
    ])
    .unwrap();
    let r = pool.retry.clone().unwrap();
    assert_eq!(r.attempts, 4);
    assert!(r.on_connect_failure && r.on_reset && !r.on_timeout && r.non_idempotent);
    assert_eq!(
        r.on_statuses,
        [
            http::StatusCode::BAD_GATEWAY,
            http::StatusCode::SERVICE_UNAVAILABLE,
            http::StatusCode::TOO_MANY_REQUESTS
        ]
    );
    assert!(r.retries_status(http::StatusCode::BAD_GATEWAY));
    assert!(!r.retries_status(http::StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(r.within, Some(Duration::from_secs(7)));
    // nginx: 0 tries = unlimited; sluice stops at a BackendPool's most, 10 extra.
    let r = backend_with(&[("proxy-next-upstream-tries", "0")])
        .unwrap()
        .retry
        .clone()
        .unwrap();
    assert_eq!(r.attempts, 10);
    let pool = backend_with(&[("proxy-next-upstream", "off")]).unwrap();
    assert_eq!(
        pool.retry, None,
        "off: only the connect-failure retry every pool has"
    );
}

#[test]
fn proxy_next_upstream_values_nginx_refuses_refuse_the_ingress() {
    for notes in [
        &[("proxy-next-upstream", "error http_418")][..],
        &[("proxy-next-upstream", "off error")][..],
        &[("proxy-next-upstream-tries", "three")][..],
        &[("proxy-next-upstream-timeout", "5s")][..],
    ] {
        let problems = backend_with(notes).unwrap_err();
        assert_eq!(problems[0].reason, "Refused", "{notes:?}");
        assert!(
            problems[0].message.contains("proxy-next-upstream"),
            "{problems:?}"
        );
    }
}

#[test]
fn sluice_annotations_set_the_backend_knobs_a_backend_pool_has() {
    let pool = backend_with(&[
        ("sluice.dev/algorithm", "LeastConnections"),
        ("sluice.dev/health-check-path", "/ready"),
        ("sluice.dev/health-check-interval", "2s"),
        ("sluice.dev/health-check-expected-statuses", "200, 204-299"),
        ("sluice.dev/outlier-detection-consecutive-failures", "3"),
        ("sluice.dev/retry-budget-ratio", "0.5"),
        ("sluice.dev/retry-budget-min-per-second", "2"),
        ("sluice.dev/drain-timeout", "5s"),
        ("sluice.dev/max-connections-per-endpoint", "100"),
    ])
    .unwrap();
    assert_eq!(pool.algorithm, crate::config::Algorithm::LeastConnections);
    let hc = pool.health_check.clone().expect("health check");
    assert_eq!(hc.interval, Duration::from_secs(2));
    assert_eq!(
        hc.timeout,
        Duration::from_secs(1),
        "the BackendPool default"
    );
    assert_eq!(
        hc.kind,
        crate::config::HealthCheckKind::Http {
            path: "/ready".into(),
            expected: vec![(200, 200), (204, 299)]
        }
    );
    let od = pool.outlier_detection.expect("outlier detection");
    assert_eq!(od.consecutive_failures, 3);
    assert_eq!(od.base_ejection_time, Duration::from_secs(30));
    let r = pool.retry.clone().unwrap();
    assert_eq!((r.budget_ratio, r.budget_min_per_second), (0.5, 2));
    assert_eq!(pool.drain_timeout, Duration::from_secs(5));
    assert_eq!(pool.max_connections_per_endpoint, Some(100));
    let pool = backend_with(&[
        ("sluice.dev/algorithm", "ConsistentHash"),
        ("sluice.dev/hash-key-header", "x-user"),
    ])
    .unwrap();
    assert_eq!(
        pool.algorithm,
        crate::config::Algorithm::ConsistentHash(crate::config::HashKey::Header(
            http::HeaderName::from_static("x-user")
        ))
    );
}

#[test]
fn sluice_annotation_values_the_backend_pool_validation_refuses_refuse_the_ingress() {
    for (notes, named) in [
        (
            &[("sluice.dev/health-check-interval", "5x")][..],
            "health-check-interval",
        ),
        (
            &[("sluice.dev/health-check-healthy-threshold", "0")][..],
            "health-check-healthy-threshold",
        ),
        (
            &[("sluice.dev/outlier-detection-max-ejection-percent", "150")][..],
            "outlier-detection-max-ejection-percent",
        ),
        (
            &[("sluice.dev/retry-budget-ratio", "2")][..],
            "retry-budget-ratio",
        ),
        (&[("sluice.dev/algorithm", "Fastest")][..], "algorithm"),
        (
            &[("sluice.dev/algorithm", "ConsistentHash")][..],
            "sluice.dev/hash-key-header, sluice.dev/hash-key-cookie, sluice.dev/hash-key-client-ip",
        ),
        (
            &[("sluice.dev/drain-timeout", "forever")][..],
            "drain-timeout",
        ),
        (
            &[("sluice.dev/algorithm", "Random"), ("load-balance", "ewma")][..],
            "load-balance",
        ),
    ] {
        let problems = backend_with(notes).unwrap_err();
        assert_eq!(problems[0].reason, "Refused", "{notes:?}");
        assert!(
            problems[0].message.contains(named),
            "{notes:?}: {problems:?}"
        );
    }
}

#[test]
fn an_unknown_sluice_annotation_is_warned_and_the_ingress_served() {
    let t = run(&objects(vec![ingress(
        "shop",
        T0,
        &[("sluice.dev/helth-check-path", "/x")],
        &web("shop.example", "/", "Prefix"),
    )]));
    assert!(t.refused.is_empty() && !t.set.routes.is_empty());
    let p = &t.problems["shop/shop"][0];
    assert_eq!(p.reason, "UnsupportedAnnotation");
    assert!(p.message.contains("sluice.dev/helth-check-path"), "{p:?}");
}
