//! Access annotations: address lists, rate limits, body size, basic and external auth, CORS.

use super::*;
use crate::config::{AllowedOrigins, RouteFilters};
use std::time::Duration;

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

/// The route filters of the one route an Ingress with `notes` places.
fn filters_with(notes: &[(&str, &str)]) -> Arc<RouteFilters> {
    let t = run(&objects(vec![ingress(
        "shop",
        T0,
        notes,
        &web("shop.example", "/", "Prefix"),
    )]));
    assert!(t.refused.is_empty(), "{:?}", t.problems);
    t.set.routes[0].filters.clone()
}

/// The problems an Ingress with `notes` gets (and whether it was refused).
fn problems_with(notes: &[(&str, &str)]) -> (bool, Vec<Problem>) {
    let t = run(&objects(vec![ingress(
        "shop",
        T0,
        notes,
        &web("shop.example", "/", "Prefix"),
    )]));
    let problems = t.problems.get("shop/shop").cloned().unwrap_or_default();
    (t.refused.contains("shop/shop"), problems)
}

#[test]
fn auth_url_asks_the_service_with_every_header_and_copies_the_response_headers() {
    let f = filters_with(&[
        ("auth-url", "http://oauth2-proxy.auth.svc:4180/oauth2/auth"),
        (
            "auth-signin",
            "https://$host/oauth2/start?rd=$escaped_request_uri",
        ),
        (
            "auth-response-headers",
            "X-Auth-Request-User, X-Auth-Request-Email",
        ),
    ]);
    let ext = f.external_auth.as_ref().expect("external auth");
    assert_eq!(ext.url, "http://oauth2-proxy.auth.svc:4180/oauth2/auth");
    assert_eq!(ext.method, http::Method::GET);
    assert!(ext.all_request_headers && ext.signin_template);
    assert_eq!(
        ext.signin_url.as_deref(),
        Some("https://$host/oauth2/start?rd=$escaped_request_uri")
    );
    assert_eq!(
        ext.response_headers,
        ["x-auth-request-user", "x-auth-request-email"]
    );
    // ingress-nginx's auth location inherits proxy-read-timeout (60 s by default).
    assert_eq!(ext.timeout, Duration::from_secs(60));
    let f = filters_with(&[
        ("auth-url", "http://auth.test/check"),
        ("auth-method", "POST"),
        ("proxy-read-timeout", "5"),
    ]);
    let ext = f.external_auth.as_ref().expect("external auth");
    assert_eq!(ext.method, http::Method::POST);
    assert_eq!(ext.timeout, Duration::from_secs(5));
    assert!(ext.signin_url.is_none() && ext.response_headers.is_empty());
}

#[test]
fn auth_url_forms_sluice_cannot_honour_refuse_the_ingress_naming_the_annotation() {
    for notes in [
        &[("auth-url", "https://$host/oauth2/auth")][..],
        &[("auth-url", "https://auth.test/check")][..],
        &[("auth-url", "not a url")][..],
        &[("auth-url", "http://auth.test/"), ("auth-method", "FETCH")][..],
        &[
            ("auth-url", "http://auth.test/"),
            ("auth-signin", "https://$server_name/start"),
        ][..],
        &[
            ("auth-url", "http://auth.test/"),
            ("auth-signin", "/relative"),
        ][..],
        &[
            ("auth-url", "http://auth.test/"),
            ("auth-response-headers", "Content-Length"),
        ][..],
        &[("auth-signin", "https://auth.test/start")][..],
        &[
            ("auth-url", "http://auth.test/"),
            ("auth-cache-key", "$cookie_s"),
        ][..],
    ] {
        let (refused, problems) = problems_with(notes);
        assert!(refused, "{notes:?}");
        assert!(
            problems.iter().all(|p| p.reason == "Refused"
                && p.message
                    .contains("annotation nginx.ingress.kubernetes.io/auth-")),
            "{notes:?}: {problems:?}"
        );
    }
}

#[test]
fn enable_cors_alone_takes_ingress_nginxs_defaults() {
    let f = filters_with(&[("enable-cors", "true")]);
    let cors = f.cors.as_ref().expect("cors");
    assert_eq!(cors.origins, AllowedOrigins::Any);
    assert_eq!(cors.allow_methods, "GET, PUT, POST, DELETE, PATCH, OPTIONS");
    assert_eq!(
        cors.allow_headers.as_ref().unwrap(),
        "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization"
    );
    assert_eq!(cors.max_age, "1728000");
    assert!(cors.expose_headers.is_none());
    // "*" with credentials: browsers refuse the pair for credentialed requests either way.
    assert!(!cors.allow_credentials);
}

#[test]
fn cors_annotations_set_origins_methods_headers_credentials_and_max_age() {
    let f = filters_with(&[
        ("enable-cors", "true"),
        (
            "cors-allow-origin",
            "https://app.example, https://*.example.com:8443",
        ),
        ("cors-allow-methods", "GET, POST"),
        ("cors-allow-headers", "X-Token,Content-Type"),
        ("cors-expose-headers", "X-Id, *"),
        ("cors-allow-credentials", "true"),
        ("cors-max-age", "600"),
    ]);
    let cors = f.cors.as_ref().expect("cors");
    let AllowedOrigins::Listed(list) = &cors.origins else {
        panic!("listed origins expected");
    };
    assert_eq!(list.len(), 2);
    assert_eq!(cors.allow_methods, "GET, POST");
    assert_eq!(cors.allow_headers.as_ref().unwrap(), "X-Token,Content-Type");
    assert_eq!(cors.expose_headers.as_ref().unwrap(), "X-Id, *");
    assert!(cors.allow_credentials);
    assert_eq!(cors.max_age, "600");
}

#[test]
fn cors_values_ingress_nginx_would_not_take_fall_back_to_its_defaults_with_a_warning() {
    let t = run(&objects(vec![ingress(
        "shop",
        T0,
        &[
            ("enable-cors", "true"),
            ("cors-allow-origin", "https://ok.example, ftp://bad.example"),
            ("cors-allow-methods", "GET;DROP"),
            ("cors-max-age", "ten"),
        ],
        &web("shop.example", "/", "Prefix"),
    )]));
    let cors = t.set.routes[0]
        .filters
        .cors
        .clone()
        .expect("served with CORS");
    assert_eq!(cors.allow_methods, "GET, PUT, POST, DELETE, PATCH, OPTIONS");
    assert_eq!(cors.max_age, "1728000");
    let AllowedOrigins::Listed(list) = &cors.origins else {
        panic!("listed origins expected");
    };
    assert_eq!(list.len(), 1);
    let warned: Vec<&Problem> = t.problems["shop/shop"]
        .iter()
        .filter(|p| p.reason == "AnnotationIgnored")
        .collect();
    assert_eq!(warned.len(), 3, "{warned:?}");
    assert!(warned.iter().any(
        |p| p.message.contains("cors-allow-origin") && p.message.contains("ftp://bad.example")
    ));
}

#[test]
fn cors_annotations_without_enable_cors_are_warned_and_add_nothing() {
    let t = run(&objects(vec![ingress(
        "shop",
        T0,
        &[("cors-allow-origin", "https://app.example")],
        &web("shop.example", "/", "Prefix"),
    )]));
    assert!(t.set.routes[0].filters.cors.is_none());
    assert_eq!(t.problems["shop/shop"][0].reason, "AnnotationIgnored");
}

#[test]
fn limit_connections_bounds_each_clients_requests_in_flight_and_0_means_none() {
    let f = filters_with(&[("limit-connections", "3")]);
    assert_eq!(f.access.max_connections_per_client, Some(3));
    let f = filters_with(&[("limit-connections", "0")]);
    assert_eq!(f.access.max_connections_per_client, None);
    let (refused, problems) = problems_with(&[("limit-connections", "many")]);
    assert!(refused);
    assert!(
        problems[0].message.contains("limit-connections"),
        "{problems:?}"
    );
}
