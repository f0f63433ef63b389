//! Routing fields of HTTP pools through the real binary (contract 4b): extra match
//! conditions in Gateway API precedence, redirects without backends, rewrites and header
//! changes.

mod common;

use common::{EchoServer, PoolDoc, Sluice, check_file, echo, file, free_port, get, raw};
use sluice::api::{CanarySpec, HeaderChangesSpec, MatchSpec, RedirectSpec, RewriteSpec};

fn matching(yaml: &str) -> Option<MatchSpec> {
    Some(PoolDoc::block(yaml))
}

async fn backend_of(port: u16, method: &str, target: &str, headers: &str) -> String {
    let req = format!(
        "{method} {target} HTTP/1.1\r\nHost: app.test\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let out = raw(port, req.as_bytes()).await;
    out.lines()
        .find_map(|l| l.strip_prefix("x-backend: "))
        .unwrap_or(&out)
        .trim()
        .to_owned()
}

#[tokio::test]
async fn extra_conditions_route_in_gateway_api_precedence() {
    let names = ["plain", "canary", "posts", "v2", "both"];
    let backends: Vec<EchoServer> = names.iter().map(|n| echo(n)).collect();
    let port = free_port();
    let with = |i: usize, m: Option<&str>| {
        PoolDoc::http(names[i], port)
            .endpoints(&[backends[i].addr()])
            .spec(|s| s.listener.match_ = m.and_then(matching))
    };
    let yaml = file(&[
        with(0, None),
        with(1, Some("{headers: [{name: X-Canary, value: \"true\"}]}")),
        with(2, Some("{methods: [POST, PUT]}")),
        with(3, Some("{queryParams: [{name: v, value: \"2\"}]}")),
        with(
            4,
            Some(
                "{headers: [{name: x-canary, value: \"true\"}], queryParams: [{name: v, value: \"2\"}]}",
            ),
        ),
    ]);
    let _s = Sluice::start(&yaml);
    let canary = "X-Canary: true\r\n";
    for (method, target, headers, want) in [
        ("GET", "/", "", "plain"),
        ("GET", "/x", "X-Canary: false\r\n", "plain"),
        ("GET", "/", canary, "canary"),
        ("POST", "/", "", "posts"),
        ("POST", "/", canary, "posts"),
        ("GET", "/?v=2", "", "v2"),
        ("GET", "/?a=1&v=2", "", "v2"),
        ("GET", "/?v=20", "", "plain"),
        ("GET", "/?v=2", canary, "both"),
    ] {
        let got = backend_of(port, method, target, headers).await;
        assert_eq!(got, want, "{method} {target} {headers:?}");
    }
}

#[tokio::test]
async fn same_conditions_on_the_same_route_are_a_conflict_the_earlier_pool_keeps() {
    let (a, b) = (echo("a"), echo("b"));
    let port = free_port();
    let get_only = || matching("{methods: [GET]}");
    let yaml = file(&[
        PoolDoc::http("first", port)
            .endpoints(&[a.addr()])
            .spec(|s| s.listener.match_ = get_only()),
        PoolDoc::http("second", port)
            .endpoints(&[b.addr()])
            .spec(|s| s.listener.match_ = get_only()),
    ]);
    let (code, err, _) = check_file(&yaml);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("pool default/second") && err.contains("default/first"),
        "{err}"
    );
}

#[tokio::test]
async fn a_redirect_pool_answers_without_backends_next_to_a_forwarding_pool() {
    let api = echo("api");
    let port = free_port();
    let redirect = |yaml: &str| Some(PoolDoc::block::<RedirectSpec>(yaml));
    let yaml = file(&[
        PoolDoc::http("to-https", port)
            .hosts(&["app.test"])
            .spec(|s| s.redirect = redirect("{scheme: https}")),
        PoolDoc::http("moved", port)
            .hosts(&["app.test"])
            .path_prefix("/old")
            .spec(|s| s.redirect = redirect("{pathPrefix: /new, statusCode: 302}")),
        PoolDoc::http("api", port)
            .hosts(&["app.test"])
            .path_prefix("/api")
            .endpoints(&[api.addr()]),
    ]);
    let _s = Sluice::start(&yaml);
    let r = get(port, "/shop?x=1", &[("host", &format!("app.test:{port}"))]).await;
    assert_eq!(r.status, 308);
    assert_eq!(r.headers["location"], "https://app.test/shop?x=1");
    let r = get(
        port,
        "/old/page?y",
        &[("host", &format!("app.test:{port}"))],
    )
    .await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.headers["location"],
        format!("http://app.test:{port}/new/page?y")
    );
    let r = get(port, "/api/v1", &[("host", "app.test")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(api.requests(), 1);
}

#[tokio::test]
async fn rewrite_and_header_changes_shape_what_the_backend_and_client_see() {
    let b = echo("b");
    b.record();
    let port = free_port();
    let yaml = PoolDoc::http("shaped", port)
        .path_prefix("/api")
        .endpoints(&[b.addr()])
        .spec(|s| {
            s.rewrite = Some(PoolDoc::block::<RewriteSpec>(
                "{pathPrefix: /, host: internal.example}",
            ));
            s.request_headers = Some(PoolDoc::block::<HeaderChangesSpec>(
                "{set: {X-Env: prod}, add: {X-Tag: a}, remove: [X-Debug]}",
            ));
            s.response_headers = Some(PoolDoc::block::<HeaderChangesSpec>(
                "{set: {Strict-Transport-Security: max-age=31536000}, remove: [X-Backend]}",
            ));
        })
        .yaml();
    let _s = Sluice::start(&yaml);
    let r = get(
        port,
        "/api/users?id=7",
        &[
            ("host", "app.test"),
            ("x-debug", "1"),
            ("x-tag", "client"),
            ("x-env", "dev"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.headers["strict-transport-security"], "max-age=31536000");
    assert!(!r.headers.contains_key("x-backend"), "{:?}", r.headers);
    let seen = b.take_seen();
    let req = &seen[0];
    assert_eq!(req.target, "/users?id=7");
    let values = |name: &str| -> Vec<&str> {
        req.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(values("host"), ["internal.example"]);
    assert_eq!(values("x-forwarded-host"), ["app.test"]);
    assert_eq!(values("x-env"), ["prod"]);
    assert_eq!(values("x-tag"), ["client", "a"]);
    assert!(values("x-debug").is_empty());
}

#[test]
fn check_explains_routing_mistakes_with_the_field() {
    let yaml = file(&[
        PoolDoc::http("bad", 8080).endpoints(&[]).spec(|s| {
            s.listener.match_ = matching("{headers: [{name: \"bad name\", value: x}]}");
            s.request_headers = Some(PoolDoc::block(
                "{set: {Host: evil.example}, remove: [Connection]}",
            ));
            s.redirect = Some(PoolDoc::block(
                "{path: /a, pathPrefix: /b, statusCode: 200}",
            ));
        }),
        PoolDoc::tcp("tcp", 9000)
            .endpoints(&[])
            .spec(|s| s.response_headers = Some(PoolDoc::block("{set: {X-A: b}}"))),
        PoolDoc::http("moved", 8081).spec(|s| {
            s.redirect = Some(PoolDoc::block("{scheme: https}"));
            s.canary = Some(PoolDoc::block("{endpoints: [], weight: 101}"));
        }),
    ]);
    let (code, err, _) = check_file(&yaml);
    assert_eq!(code, Some(1), "{err}");
    for field in [
        "spec.listener.match.headers[0].name",
        "spec.requestHeaders.set.Host",
        "spec.requestHeaders.remove[0]",
        "spec.redirect.pathPrefix",
        "spec.redirect.statusCode",
        "spec.responseHeaders",
        "pool default/moved: spec.canary",
    ] {
        assert!(err.contains(field), "{field} missing:\n{err}");
    }
    assert!(err.contains("use rewrite.host"), "{err}");
}

#[tokio::test]
async fn canary_takes_its_weight_and_every_request_with_its_header() {
    let (stable, canary) = (echo("stable"), echo("canary"));
    let port = free_port();
    let canary_spec = format!(
        "{{endpoints: [{{address: \"{}\"}}], weight: 30, header: {{name: X-Canary, value: always}}}}",
        canary.addr()
    );
    let yaml = PoolDoc::http("web", port)
        .endpoints(&[stable.addr()])
        .spec(|s| s.canary = Some(PoolDoc::block::<CanarySpec>(&canary_spec)))
        .yaml();
    let s = Sluice::start(&yaml);
    for _ in 0..20 {
        let r = get(port, "/", &[("x-canary", "always")]).await;
        assert_eq!(r.backend(), "canary");
    }
    let n = 600;
    let mut to_canary = 0;
    for _ in 0..n {
        if get(port, "/", &[]).await.backend() == "canary" {
            to_canary += 1;
        }
    }
    let share = f64::from(to_canary) / f64::from(n);
    assert!((0.24..=0.36).contains(&share), "canary share {share}");
    let metrics = s.admin_get("/metrics");
    let counted = common::metric_value(
        &metrics,
        "sluice_canary_requests_total{pool=\"default/web\"}",
    );
    assert_eq!(counted, Some(f64::from(20 + to_canary)), "{metrics}");
    let pools: serde_json::Value = serde_json::from_str(&s.admin_get("/pools")).unwrap();
    let names: Vec<&str> = pools["pools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["default/web", "default/web#canary"]);
}

#[tokio::test]
async fn a_canary_at_weight_zero_gets_only_the_header_and_removing_it_stops_it() {
    let (stable, canary) = (echo("stable"), echo("canary"));
    let port = free_port();
    let canary_spec = format!(
        "{{endpoints: [{{address: \"{}\"}}], weight: 0, header: {{name: x-canary, value: \"yes\"}}}}",
        canary.addr()
    );
    let plain = PoolDoc::http("web", port).endpoints(&[stable.addr()]);
    let with_canary = plain
        .clone()
        .spec(|s| s.canary = Some(PoolDoc::block::<CanarySpec>(&canary_spec)))
        .yaml();
    let s = Sluice::start(&with_canary);
    for _ in 0..50 {
        assert_eq!(get(port, "/", &[]).await.backend(), "stable");
    }
    assert_eq!(
        get(port, "/", &[("x-canary", "yes")]).await.backend(),
        "canary"
    );
    s.write_config(&plain.yaml(), true);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while s.pools().await["pools"].as_array().map(Vec::len) != Some(1) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the canary pool was not removed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        get(port, "/", &[("x-canary", "yes")]).await.backend(),
        "stable"
    );
}
