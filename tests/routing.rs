//! Routing fields of HTTP pools through the real binary (contract 4b): extra match
//! conditions in Gateway API precedence, redirects without backends, rewrites and header
//! changes.

mod common;

use std::net::SocketAddr;

use common::{EchoServer, Sluice, echo, free_port, get, raw};

/// One HTTP BackendPool document: `listener` and `extra` are YAML flow-mapping bodies
/// (`extra` may be empty), endpoints are the given backends.
fn doc(name: &str, listener: &str, backends: &[SocketAddr], extra: &str) -> String {
    let endpoints: Vec<String> = backends
        .iter()
        .map(|a| format!("{{address: \"{a}\"}}"))
        .collect();
    let endpoints = if backends.is_empty() && !extra.contains("redirect") {
        "endpoints: [], ".to_owned()
    } else if backends.is_empty() {
        String::new()
    } else {
        format!("endpoints: [{}], ", endpoints.join(", "))
    };
    format!(
        "---\napiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {{name: {name}, namespace: default}}\nspec: {{listener: {{{listener}}}, {endpoints}{extra}}}\n"
    )
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
    let listener = |m: &str| format!("port: {port}{m}");
    let yaml = [
        doc("plain", &listener(""), &[backends[0].addr()], ""),
        doc(
            "canary",
            &listener(", match: {headers: [{name: X-Canary, value: \"true\"}]}"),
            &[backends[1].addr()],
            "",
        ),
        doc(
            "posts",
            &listener(", match: {methods: [POST, PUT]}"),
            &[backends[2].addr()],
            "",
        ),
        doc(
            "v2",
            &listener(", match: {queryParams: [{name: v, value: \"2\"}]}"),
            &[backends[3].addr()],
            "",
        ),
        doc(
            "both",
            &listener(
                ", match: {headers: [{name: x-canary, value: \"true\"}], queryParams: [{name: v, value: \"2\"}]}",
            ),
            &[backends[4].addr()],
            "",
        ),
    ]
    .concat();
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
    let m = format!("port: {port}, match: {{methods: [GET]}}");
    let yaml = [
        doc("first", &m, &[a.addr()], ""),
        doc("second", &m, &[b.addr()], ""),
    ]
    .concat();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pools.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("pool default/second") && err.contains("default/first"),
        "{err}"
    );
}

#[tokio::test]
async fn a_redirect_pool_answers_without_backends_next_to_a_forwarding_pool() {
    let api = echo("api");
    let port = free_port();
    let yaml = [
        doc(
            "to-https",
            &format!("port: {port}, hosts: [app.test]"),
            &[],
            "redirect: {scheme: https}",
        ),
        doc(
            "moved",
            &format!("port: {port}, hosts: [app.test], pathPrefix: /old"),
            &[],
            "redirect: {pathPrefix: /new, statusCode: 302}",
        ),
        doc(
            "api",
            &format!("port: {port}, hosts: [app.test], pathPrefix: /api"),
            &[api.addr()],
            "",
        ),
    ]
    .concat();
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
    let yaml = doc(
        "shaped",
        &format!("port: {port}, pathPrefix: /api"),
        &[b.addr()],
        "rewrite: {pathPrefix: /, host: internal.example}, \
         requestHeaders: {set: {X-Env: prod}, add: {X-Tag: a}, remove: [X-Debug]}, \
         responseHeaders: {set: {Strict-Transport-Security: max-age=31536000}, remove: [X-Backend]}",
    );
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
    let yaml = [
        doc(
            "bad",
            "port: 8080, match: {headers: [{name: \"bad name\", value: x}]}",
            &[],
            "requestHeaders: {set: {Host: evil.example}, remove: [Connection]}, \
             redirect: {path: /a, pathPrefix: /b, statusCode: 200}",
        ),
        doc(
            "tcp",
            "port: 9000",
            &[],
            "protocol: TCP, responseHeaders: {set: {X-A: b}}",
        ),
        doc(
            "moved",
            "port: 8081",
            &[],
            "redirect: {scheme: https}, canary: {endpoints: [], weight: 101}",
        ),
    ]
    .concat();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pools.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
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
    let yaml = doc(
        "web",
        &format!("port: {port}"),
        &[stable.addr()],
        &format!(
            "canary: {{endpoints: [{{address: \"{}\"}}], weight: 30, header: {{name: X-Canary, value: always}}}}",
            canary.addr()
        ),
    );
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
    let with_canary = doc(
        "web",
        &format!("port: {port}"),
        &[stable.addr()],
        &format!(
            "canary: {{endpoints: [{{address: \"{}\"}}], weight: 0, header: {{name: x-canary, value: \"yes\"}}}}",
            canary.addr()
        ),
    );
    let s = Sluice::start(&with_canary);
    for _ in 0..50 {
        assert_eq!(get(port, "/", &[]).await.backend(), "stable");
    }
    assert_eq!(
        get(port, "/", &[("x-canary", "yes")]).await.backend(),
        "canary"
    );
    s.write_config(
        &doc("web", &format!("port: {port}"), &[stable.addr()], ""),
        true,
    );
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
