//! End to end against a real kube-apiserver with the Gateway API standard CRDs (v1.6.3, from
//! the Go module `sigs.k8s.io/gateway-api`): a GatewayClass of sluice's controller, a
//! Gateway, HTTPRoutes and a GRPCRoute applied as users write them, real traffic (HTTP/1.1,
//! and gRPC over h2c) through the controller, and the status the specification requires
//! written back.
//!
//! Ignored by default; needs the control-plane binaries, a private network namespace and
//! the CRDs (`go mod download sigs.k8s.io/gateway-api@v1.6.3`, or SLUICE_GATEWAY_API_CRDS
//! naming the directory of the standard CRDs): `hack/e2e.sh kube_gateway`.

#![allow(clippy::disallowed_types)]

mod common;
#[path = "support/harness.rs"]
mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{EchoServer, free_port};
use support::controller::ControllerProcess;
use support::fixtures::{echoes, service};
use support::http::request;
use support::kube::KubeCluster;

/// The Gateway API kinds sluice serves, as the module's standard channel ships them.
const CRDS: [&str; 5] = [
    "gatewayclasses",
    "gateways",
    "httproutes",
    "grpcroutes",
    "referencegrants",
];

/// The directory of the standard CRDs: SLUICE_GATEWAY_API_CRDS, else the Go module cache.
fn crd_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SLUICE_GATEWAY_API_CRDS") {
        return Some(PathBuf::from(dir));
    }
    let out = Command::new("go")
        .args(["env", "GOMODCACHE"])
        .output()
        .ok()?;
    let cache = String::from_utf8(out.stdout).ok()?;
    let dir =
        PathBuf::from(cache.trim()).join("sigs.k8s.io/gateway-api@v1.6.3/config/crd/standard");
    dir.is_dir().then_some(dir)
}

/// Applies the CRDs (server-side: they are too large for kubectl's last-applied copy) and
/// waits until they are established.
fn install_gateway_api(kube: &KubeCluster, dir: &std::path::Path) {
    for kind in CRDS {
        let file = dir.join(format!("gateway.networking.k8s.io_{kind}.yaml"));
        kube.kubectl_ok(&["apply", "--server-side", "-f", file.to_str().unwrap()]);
    }
    for kind in CRDS {
        kube.wait_established(&format!("{kind}.gateway.networking.k8s.io"));
    }
}

/// The CRD directory, or `None` after a note naming `test` (a skip); with
/// `SLUICE_REQUIRE_KUBE` set, missing CRDs fail the test instead.
fn crd_dir_or_skip(test: &str) -> Option<PathBuf> {
    let dir = crd_dir();
    if dir.is_none() {
        assert!(
            std::env::var_os("SLUICE_REQUIRE_KUBE").is_none(),
            "{test}: no Gateway API CRDs (go mod download sigs.k8s.io/gateway-api@v1.6.3, or set SLUICE_GATEWAY_API_CRDS)"
        );
        eprintln!("{test}: skipped (no Gateway API CRDs)");
    }
    dir
}

/// The controller watching `ns`, with `status.addresses` from `--publish-address`.
fn start_controller(kube: &KubeCluster, ns: &str) -> ControllerProcess {
    start_controller_with(kube, ns, &["--publish-address", "198.18.0.99"])
}

/// The controller watching `ns` (also its own namespace, `POD_NAMESPACE`) with `extra`.
fn start_controller_with(kube: &KubeCluster, ns: &str, extra: &[&str]) -> ControllerProcess {
    ControllerProcess::builder(kube, ns)
        .args(extra)
        .env("POD_NAMESPACE", ns)
        .start()
}

/// A gRPC health server (h2c) on 198.18.0.4, serving, on `rt`; its port.
fn grpc_health(rt: &tokio::runtime::Runtime) -> u16 {
    let listener = std::net::TcpListener::bind("198.18.0.4:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let (_reporter, service) = tonic_health::server::health_reporter();
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    port
}

/// `grpc.health.v1.Health/Check` through sluice's `port` (h2c) for `authority`.
fn health_check(rt: &tokio::runtime::Runtime, port: u16, authority: &str) -> Result<i32, String> {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .map_err(|e| e.to_string())?
            .origin(format!("http://{authority}").parse().unwrap())
            .timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        let reply = HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
        Ok(reply.into_inner().status)
    })
}

fn manifests(ns: &str, port: u16) -> String {
    format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: sluice-{ns}}}
spec: {{controllerName: sluice.dev/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: other-{ns}}}
spec: {{controllerName: example.com/other}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: {ns}}}
spec:
  gatewayClassName: sluice-{ns}
  listeners:
    - {{name: http, port: {port}, protocol: HTTP}}
    - {{name: tcp, port: {port}, protocol: TCP}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: shop, namespace: {ns}}}
spec:
  parentRefs: [{{name: gw, sectionName: http}}]
  hostnames: [shop.test]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /app}}, headers: [{{name: x-v, value: "2"}}]}}]
      backendRefs: [{{name: web-v2, port: 80}}]
    - matches: [{{path: {{type: PathPrefix, value: /app}}}}]
      backendRefs: [{{name: web, port: 80}}]
    - matches: [{{path: {{type: Exact, value: /headers}}}}]
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier: {{set: [{{name: x-gateway, value: sluice}}]}}
      backendRefs: [{{name: web, port: 80}}]
    - matches: [{{path: {{type: Exact, value: /old}}}}]
      filters:
        - type: RequestRedirect
          requestRedirect: {{hostname: new.test, statusCode: 301}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: health, namespace: {ns}}}
spec:
  parentRefs: [{{name: gw, sectionName: http}}]
  hostnames: [grpc.test]
  rules:
    - matches: [{{method: {{service: grpc.health.v1.Health, method: Check}}}}]
      backendRefs: [{{name: grpc, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: broken, namespace: {ns}}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [broken.test]
  rules:
    - backendRefs: [{{name: missing, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: elsewhere, namespace: {ns}}}
spec:
  parentRefs: [{{name: gw, sectionName: nosuch}}]
  rules:
    - backendRefs: [{{name: web, port: 80}}]
"#
    )
}

/// A control plane with the Gateway API and sluice CRDs, a namespace named after `prefix`, and
/// the Services `web` (echo `pod-a` on 198.18.0.2) and `web-v2` (`pod-b` on 198.18.0.3) in it;
/// `None` (the test skips) without the control-plane binaries or the CRDs.
fn with_gateway_api(test: &str, prefix: &str) -> Option<(KubeCluster, String, [EchoServer; 2])> {
    let kube = KubeCluster::start_or_skip(test)?;
    let dir = crd_dir_or_skip(test)?;
    install_gateway_api(&kube, &dir);
    kube.install_crd();
    let ns = kube.new_namespace(prefix);
    let (servers, backend_port) = echoes(["pod-a", "pod-b"]);
    kube.apply(&service(&ns, "web", "198.18.0.2", backend_port));
    kube.apply(&service(&ns, "web-v2", "198.18.0.3", backend_port));
    Some((kube, ns, servers))
}

#[test]
#[ignore = "needs SLUICE_KUBE_BINS, hack/in-netns.sh and the Gateway API CRDs"]
fn a_gateway_and_its_routes_serve_traffic_and_report_the_status_the_spec_requires() {
    let test =
        "a_gateway_and_its_http_routes_serve_traffic_and_report_the_status_the_spec_requires";
    let Some((kube, ns, _echoes)) = with_gateway_api(test, "e2e-gateway") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    kube.apply(&service(&ns, "grpc", "198.18.0.4", grpc_health(&rt)));
    let port = free_port();
    kube.apply(&manifests(&ns, port));
    let c = start_controller(&kube, &ns);
    assert!(c.log().contains("Gateway API CRDs found"), "{}", c.log());

    // Traffic: the header match first, then the prefix, a header filter, a redirect.
    c.wait(Duration::from_secs(10), "serving shop.test", || {
        request(port, "shop.test", "/app/x", &[]).map(|r| r.0) == Some(200)
    });
    let (_, backend, body) = request(port, "shop.test", "/app/x", &[]).unwrap();
    assert_eq!(backend, "pod-a");
    assert!(body.starts_with("pod-a GET /app/x "), "{body}");
    let (_, _, body) = request(port, "shop.test", "/headers", &[]).unwrap();
    assert!(
        body.to_ascii_lowercase().contains("x-gateway: sluice"),
        "{body}"
    );
    let (_, backend, _) = request(port, "shop.test", "/app/x", &["x-v: 2"]).unwrap();
    assert_eq!(backend, "pod-b");
    // The Host as clients send it on a non-default port: the redirect keeps the port.
    let host = format!("shop.test:{port}");
    let (status, location, _) = request(port, &host, "/old?q=1", &[]).unwrap();
    assert_eq!(
        (status, location.as_str()),
        (301, format!("http://new.test:{port}/old?q=1").as_str())
    );
    // The GRPCRoute: its method reaches the gRPC backend over h2c.
    c.wait(Duration::from_secs(10), "serving the GRPCRoute", || {
        health_check(&rt, port, "grpc.test") == Ok(1)
    });
    let unrouted = health_check(&rt, port, "other.test").unwrap_err();
    assert!(unrouted.starts_with("Unimplemented"), "{unrouted}");
    // A backendRef to a missing Service: its share answers 500; other hosts 404.
    assert_eq!(request(port, "broken.test", "/", &[]).unwrap().0, 500);
    assert_eq!(request(port, "other.test", "/", &[]).unwrap().0, 404);

    let get = |kind: &str, name: &str, path: &str| {
        let mut args = vec!["get", kind, name, "-o"];
        let jsonpath = format!("jsonpath={path}");
        args.push(&jsonpath);
        if kind != "gatewayclass" {
            args.extend(["-n", ns.as_str()]);
        }
        String::from_utf8_lossy(&kube.kubectl(&args).stdout).into_owned()
    };
    let condition = |kind: &str, name: &str, prefix: &str, type_: &str| {
        get(
            kind,
            name,
            &format!(
                "{{{prefix}.conditions[?(@.type==\"{type_}\")].status}}/{{{prefix}.conditions[?(@.type==\"{type_}\")].reason}}/{{{prefix}.conditions[?(@.type==\"{type_}\")].observedGeneration}}"
            ),
        )
    };
    let class = format!("sluice-{ns}");
    c.wait(Duration::from_secs(15), "GatewayClass Accepted", || {
        condition("gatewayclass", &class, ".status", "Accepted") == "True/Accepted/1"
    });
    assert_eq!(
        get(
            "gatewayclass",
            &format!("other-{ns}"),
            "{.status.conditions[0].reason}"
        ),
        "Pending"
    );
    c.wait(Duration::from_secs(15), "Gateway status", || {
        condition("gateway", "gw", ".status", "Programmed") == "True/Programmed/1"
    });
    assert_eq!(
        condition("gateway", "gw", ".status", "Accepted"),
        "True/ListenersNotValid/1"
    );
    assert_eq!(
        get(
            "gateway",
            "gw",
            "{.status.addresses[0].type}/{.status.addresses[0].value}"
        ),
        "IPAddress/198.18.0.99"
    );
    let listener = |name: &str| format!(".status.listeners[?(@.name==\"{name}\")]");
    assert_eq!(
        get(
            "gateway",
            "gw",
            &format!("{{{}.attachedRoutes}}", listener("http"))
        ),
        "3"
    );
    assert_eq!(
        condition("gateway", "gw", &listener("http"), "Programmed"),
        "True/Programmed/1"
    );
    assert_eq!(
        condition("gateway", "gw", &listener("tcp"), "Accepted"),
        "False/UnsupportedProtocol/1"
    );
    assert_eq!(
        get(
            "gateway",
            "gw",
            &format!("{{{}.supportedKinds[*].kind}}", listener("http"))
        ),
        "HTTPRoute GRPCRoute"
    );

    let parent = ".status.parents[0]";
    c.wait(Duration::from_secs(15), "HTTPRoute status", || {
        condition("httproute", "broken", parent, "ResolvedRefs") == "False/BackendNotFound/1"
    });
    assert_eq!(
        condition("httproute", "broken", parent, "Accepted"),
        "True/Accepted/1"
    );
    assert_eq!(
        condition("httproute", "shop", parent, "Accepted"),
        "True/Accepted/1"
    );
    assert_eq!(
        condition("httproute", "shop", parent, "ResolvedRefs"),
        "True/ResolvedRefs/1"
    );
    assert_eq!(
        get("httproute", "shop", "{.status.parents[0].controllerName}"),
        "sluice.dev/gateway-controller"
    );
    assert_eq!(
        condition("httproute", "elsewhere", parent, "Accepted"),
        "False/NoMatchingParent/1"
    );
    assert_eq!(
        condition("grpcroute", "health", parent, "Accepted"),
        "True/Accepted/1"
    );

    // An edit is served without a restart, and status follows the new generation.
    kube.apply(&format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: broken, namespace: {ns}}}\nspec:\n  parentRefs: [{{name: gw}}]\n  hostnames: [broken.test]\n  rules:\n    - backendRefs: [{{name: web-v2, port: 80}}]\n"
    ));
    c.wait(Duration::from_secs(10), "the edited route served", || {
        request(port, "broken.test", "/", &[]).map(|r| r.1) == Some("pod-b".into())
    });
    c.wait(Duration::from_secs(15), "the edited route's status", || {
        condition("httproute", "broken", parent, "ResolvedRefs") == "True/ResolvedRefs/2"
    });
    // A route that no longer names a Gateway of ours loses our parent entry.
    kube.apply(&format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: elsewhere, namespace: {ns}}}\nspec:\n  parentRefs: [{{name: not-ours}}]\n"
    ));
    c.wait(Duration::from_secs(15), "our parent entry removed", || {
        get(
            "httproute",
            "elsewhere",
            "{.status.parents[*].controllerName}",
        )
        .is_empty()
    });
    assert!(!c.log().contains("forbidden"), "{}", c.log());
}

#[test]
fn gateway_api_crds_installed_after_the_controller_started_are_served_without_a_restart() {
    let test =
        "gateway_api_crds_installed_after_the_controller_started_are_served_without_a_restart";
    let Some(kube) = KubeCluster::start_or_skip(test) else {
        return;
    };
    let Some(dir) = crd_dir_or_skip(test) else {
        return;
    };
    kube.install_crd();
    let ns = kube.new_namespace("e2e-late-gateway");
    let (_echoes, backend_port) = echoes(["pod-a", "pod-b"]);
    kube.apply(&service(&ns, "web", "198.18.0.2", backend_port));
    kube.apply(&service(&ns, "web-v2", "198.18.0.3", backend_port));
    let c = start_controller(&kube, &ns);
    assert!(
        c.log().contains("Gateway API CRDs not installed"),
        "{}",
        c.log()
    );

    install_gateway_api(&kube, &dir);
    let port = free_port();
    kube.apply(&manifests(&ns, port));
    c.wait(
        Duration::from_secs(45),
        "serving shop.test once the CRDs are installed",
        || request(port, "shop.test", "/app/x", &[]).map(|r| r.0) == Some(200),
    );
    assert!(c.log().contains("Gateway API CRDs found"), "{}", c.log());
}

/// Two Gateways with a catch-all listener on one port, each with a route to its own backend.
fn two_gateways(ns: &str, port: u16) -> String {
    let gateway = |name: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  gatewayClassName: sluice-{ns}\n  listeners: [{{name: http, port: {port}, protocol: HTTP}}]\n"
        )
    };
    let route = |name: &str, backend: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  parentRefs: [{{name: {name}}}]\n  rules: [{{backendRefs: [{{name: {backend}, port: 80}}]}}]\n"
        )
    };
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: sluice-{ns}}}\nspec: {{controllerName: sluice.dev/gateway-controller}}\n---\n{}---\n{}---\n{}---\n{}",
        gateway("first"),
        route("first", "web"),
        gateway("second"),
        route("second", "web-v2")
    )
}

#[test]
#[ignore = "needs SLUICE_KUBE_BINS, hack/in-netns.sh and the Gateway API CRDs"]
fn gateways_sharing_a_port_each_get_a_service_and_their_own_traffic() {
    let test = "gateways_sharing_a_port_each_get_a_service_and_their_own_traffic";
    let Some((kube, ns, _echoes)) = with_gateway_api(test, "e2e-gateway-svc") else {
        return;
    };
    let (port, own) = (free_port(), free_port());
    let range = format!("{own}-{own}");
    let c = start_controller_with(
        &kube,
        &ns,
        &[
            "--gateway-service-type=ClusterIP",
            "--gateway-service-selector=app=sluice",
            "--gateway-port-range",
            &range,
        ],
    );
    kube.apply(&two_gateways(&ns, port));
    std::thread::sleep(Duration::from_millis(1100));

    // The older Gateway listens on its port; the newer one on the range's port, behind its
    // Service, which maps the listener's port to it.
    c.wait(Duration::from_secs(30), "serving both Gateways", || {
        request(port, "any.test", "/", &[]).map(|r| r.1) == Some("pod-a".into())
            && request(own, "any.test", "/", &[]).map(|r| r.1) == Some("pod-b".into())
    });
    let services = kube.kubectl_ok(&["-n", &ns, "get", "services", "-l", "sluice.dev/gateway-service=sluice", "-o",
        "jsonpath={range .items[*]}{.metadata.annotations.sluice\\.dev/gateway} {.spec.ports[0].port}->{.spec.ports[0].targetPort} {.spec.selector.app}{\"\\n\"}{end}"]);
    let mut lines: Vec<&str> = services.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            format!("{ns}/first {port}->{port} sluice"),
            format!("{ns}/second {port}->{own} sluice")
        ],
        "{}",
        c.log()
    );
    // Each Gateway's address is its own Service's ClusterIP.
    for gw in ["first", "second"] {
        let svc = kube
            .kubectl_ok(&["-n", &ns, "get", "services", "-o", &format!(
                "jsonpath={{.items[?(@.metadata.annotations.sluice\\.dev/gateway==\"{ns}/{gw}\")].spec.clusterIP}}")])
            .trim()
            .to_owned();
        assert!(!svc.is_empty());
        c.wait(Duration::from_secs(15), "the Gateway's address", || {
            kube.jsonpath(
                &ns,
                &format!("gateway/{gw}"),
                "{.status.addresses[0].value}",
            ) == svc
        });
        let programmed = kube.jsonpath(
            &ns,
            &format!("gateway/{gw}"),
            "{.status.conditions[?(@.type==\"Programmed\")].status}",
        );
        assert_eq!(programmed, "True", "{gw}");
    }
    // A Gateway deleted: its Service goes with it.
    kube.kubectl_ok(&["-n", &ns, "delete", "gateway", "second"]);
    c.wait(
        Duration::from_secs(15),
        "the second Service deleted",
        || {
            kube.kubectl_ok(&[
                "-n",
                &ns,
                "get",
                "services",
                "-l",
                "sluice.dev/gateway-service=sluice",
                "-o",
                "name",
            ])
            .lines()
            .count()
                == 1
        },
    );
}
