//! Access annotations: address lists, rate limits, body size, basic and external auth, CORS.

use super::*;

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
