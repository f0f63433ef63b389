//! End to end against a real kube-apiserver: `kubectl apply` a BackendPool and traffic
//! flows to the ready endpoints of its Service; status, printer columns and Events tell
//! the truth; a terminating endpoint gets no new work; a bad pool is refused alone; a
//! leader stopped with SIGTERM hands its Lease over at once.
//!
//! Ignored by default; needs the control-plane binaries and a private network namespace:
//! `hack/e2e.sh` (or `hack/e2e.sh NAME` for one test).

#![allow(clippy::disallowed_types)]

mod common;
#[path = "support/harness.rs"]
mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{EchoServer, free_port};
use http::StatusCode;
use support::controller::ControllerProcess;
use support::fixtures::{echoes, indent, service, service_with_endpoints};
use support::http::{fetch, raw, request};
use support::kube::KubeCluster;

fn cluster_or_skip(test: &str) -> Option<KubeCluster> {
    let kube = KubeCluster::start_or_skip(test)?;
    kube.install_crd();
    Some(kube)
}

/// The controller watching `ns`, electing its leader with a Lease in `ns`.
fn start_controller(kube: &KubeCluster, ns: &str) -> ControllerProcess {
    ControllerProcess::builder(kube, ns)
        .args(["--leader-elect", "--leader-namespace", ns])
        .start()
}

/// `sluice_leader` as the replica `c`'s `/metrics` shows it.
fn leader(c: &ControllerProcess) -> Option<f64> {
    let (_, _, metrics) = get(c.admin_port(), "/metrics")?;
    common::metric_value(&metrics, "sluice_leader")
}

/// Status, `x-backend` header and body of a GET for `shop.test` on 127.0.0.1:`port`, or
/// `None` if nothing answered.
fn get(port: u16, path: &str) -> Option<(u16, String, String)> {
    request(port, "shop.test", path, &[])
}

fn http_status(port: u16, path: &str) -> Option<u16> {
    get(port, path).map(|(s, _, _)| s)
}

/// Echo backends `pod-a` on 198.18.0.2 and `pod-b` on .3, on one port.
fn echo_pair() -> (EchoServer, EchoServer, u16) {
    let ([a, b], port) = echoes(["pod-a", "pod-b"]);
    (a, b, port)
}

/// Service `web` with `pod-a` ready and `pod-b` as `b_ready` and `b_terminating` say.
fn service_and_slice(ns: &str, port: u16, b_ready: bool, b_terminating: bool) -> String {
    service_with_endpoints(
        ns,
        "web",
        port,
        &[
            ("198.18.0.2", "ready: true"),
            (
                "198.18.0.3",
                &format!("ready: {b_ready}, terminating: {b_terminating}"),
            ),
        ],
    )
}

fn backend_pool(ns: &str, name: &str, port: u16, extra: &str) -> String {
    format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  listener: {{port: {port}}}\n  service: {{name: web, port: http}}\n{extra}"
    )
}

fn jsonpath(kube: &KubeCluster, ns: &str, name: &str, path: &str) -> String {
    kube.jsonpath(ns, &format!("backendpool/{name}"), &format!("{{{path}}}"))
}

/// Backends answering `n` requests on `port`.
fn backends(port: u16, n: usize) -> std::collections::BTreeMap<String, usize> {
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..n {
        let (status, backend, body) = get(port, "/").expect("sluice answers");
        assert_eq!(status, 200, "{body}");
        *seen.entry(backend).or_default() += 1;
    }
    seen
}

#[test]
#[ignore = "needs SLUICE_KUBE_BINS and hack/in-netns.sh"]
fn applied_pool_serves_ready_endpoints_and_reports_status() {
    let Some(kube) = cluster_or_skip("applied_pool_serves_ready_endpoints_and_reports_status")
    else {
        return;
    };
    let ns = kube.new_namespace("e2e");
    let (a, b, port) = echo_pair();
    kube.apply(&service_and_slice(&ns, port, true, false));
    let listen = free_port();
    kube.apply(&backend_pool(
        &ns,
        "web",
        listen,
        "  healthCheck: {path: /healthz, interval: 300ms, unhealthyThreshold: 2}\n",
    ));
    let c = start_controller(&kube, &ns);

    // Traffic reaches both ready endpoints.
    c.wait(Duration::from_secs(10), "serving", || {
        http_status(listen, "/") == Some(200)
    });
    let seen = backends(listen, 20);
    assert_eq!(seen.get("pod-a"), Some(&10), "{seen:?}");
    assert_eq!(seen.get("pod-b"), Some(&10), "{seen:?}");

    // Status and printer columns tell the truth.
    c.wait(Duration::from_secs(10), "Ready=True in status", || {
        jsonpath(&kube, &ns, "web", ".status.conditions[0].status") == "True"
    });
    assert_eq!(jsonpath(&kube, &ns, "web", ".status.healthy"), "2/2");
    assert_eq!(
        jsonpath(&kube, &ns, "web", ".status.conditions[0].reason"),
        "EndpointsHealthy"
    );
    let table = kube.kubectl_ok(&["get", "bp", "-n", &ns]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "PROTOCOL",
            "PORT",
            "ALGORITHM",
            "HEALTHY",
            "READY",
            "AGE"
        ],
        "{table}"
    );
    assert!(table.lines().nth(1).unwrap().contains("2/2"), "{table}");
    assert!(
        kube.kubectl_ok(&["get", "lease", "sluice", "-n", &ns])
            .contains("sluice")
    );
    let (_, _, metrics) = get(c.admin_port(), "/metrics").expect("metrics answer");
    assert!(metrics.contains("\nsluice_leader 1\n"), "{metrics}");

    // A terminating endpoint gets no new work.
    kube.apply(&service_and_slice(&ns, port, false, true));
    c.wait(Duration::from_secs(5), "draining pod-b", || {
        backends(listen, 6).keys().all(|k| k == "pod-a")
    });
    let before = b.requests();
    assert_eq!(backends(listen, 20).get("pod-a"), Some(&20));
    assert_eq!(b.requests(), before);

    // A failing health check shows in status and as an Event on the pool.
    a.set_health(StatusCode::INTERNAL_SERVER_ERROR);
    c.wait(Duration::from_secs(10), "NoHealthyEndpoints", || {
        jsonpath(&kube, &ns, "web", ".status.conditions[0].reason") == "NoHealthyEndpoints"
    });
    c.wait(Duration::from_secs(10), "EndpointUnhealthy event", || {
        kube.kubectl_ok(&["describe", "bp", "web", "-n", &ns])
            .contains("EndpointUnhealthy")
    });
    assert_eq!(http_status(listen, "/"), Some(503));
    a.set_health(StatusCode::OK);
    c.wait(Duration::from_secs(10), "healthy again", || {
        http_status(listen, "/") == Some(200)
    });
    c.wait(Duration::from_secs(10), "EndpointsHealthy again", || {
        jsonpath(&kube, &ns, "web", ".status.conditions[0].reason") == "EndpointsHealthy"
    });

    // Status writes and metadata-only changes rebuild nothing; a spec change does.
    let applied = || {
        let (_, _, metrics) = get(c.admin_port(), "/metrics").expect("metrics answer");
        common::metric_value(&metrics, "sluice_config_reloads_total{result=\"success\"}")
            .expect("the reload counter")
    };
    let before = applied();
    kube.kubectl_ok(&["annotate", "bp", "web", "-n", &ns, "touched=yes"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(applied(), before, "an annotation caused a rebuild");
    kube.kubectl_ok(&[
        "patch",
        "bp",
        "web",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"spec":{"drainTimeout":"5s"}}"#,
    ]);
    c.wait(
        Duration::from_secs(5),
        "a rebuild for the spec change",
        || applied() > before,
    );
    assert!(!c.log().contains("forbidden"), "{}", c.log());
}

#[test]
#[ignore = "needs SLUICE_KUBE_BINS and hack/in-netns.sh"]
fn a_conflicting_pool_is_refused_while_the_other_keeps_serving() {
    let Some(kube) = cluster_or_skip("a_conflicting_pool_is_refused_while_the_other_keeps_serving")
    else {
        return;
    };
    let ns = kube.new_namespace("e2e");
    let (_a, _b, port) = echo_pair();
    kube.apply(&service_and_slice(&ns, port, true, false));
    let listen = free_port();
    kube.apply(&backend_pool(&ns, "a-web", listen, ""));
    let c = start_controller(&kube, &ns);
    c.wait(Duration::from_secs(10), "serving", || {
        http_status(listen, "/") == Some(200)
    });

    kube.apply(&backend_pool(&ns, "b-db", listen, "  protocol: TCP\n"));
    c.wait(Duration::from_secs(10), "Conflict on b-db", || {
        jsonpath(&kube, &ns, "b-db", ".status.conditions[0].reason") == "Conflict"
    });
    let message = jsonpath(&kube, &ns, "b-db", ".status.conditions[0].message");
    assert!(
        message.contains("a-web") && message.contains("spec.listener.port"),
        "{message}"
    );
    assert_eq!(
        jsonpath(&kube, &ns, "b-db", ".status.conditions[0].status"),
        "False"
    );
    assert_eq!(http_status(listen, "/"), Some(200));
    c.wait(Duration::from_secs(10), "Conflict event", || {
        kube.kubectl_ok(&["describe", "bp", "b-db", "-n", &ns])
            .contains("Conflict")
    });
    // Changing the pool to use its own port makes it Ready.
    let own = free_port();
    kube.apply(&backend_pool(&ns, "b-db", own, "  protocol: TCP\n"));
    c.wait(Duration::from_secs(10), "b-db ready", || {
        jsonpath(&kube, &ns, "b-db", ".status.conditions[0].status") == "True"
    });
}

#[test]
#[ignore = "needs SLUICE_KUBE_BINS and hack/in-netns.sh"]
fn a_newer_pool_never_takes_a_tcp_port_from_the_older_pool_serving_it() {
    let Some(kube) =
        cluster_or_skip("a_newer_pool_never_takes_a_tcp_port_from_the_older_pool_serving_it")
    else {
        return;
    };
    let ns = "default";
    let (_a, _b, port) = echo_pair();
    kube.apply(&service_and_slice(ns, port, true, false));
    let listen = free_port();
    kube.apply(&backend_pool(ns, "web-old", listen, "  protocol: TCP\n"));
    let c = start_controller(&kube, ns);
    c.wait(Duration::from_secs(10), "web-old serving", || {
        http_status(listen, "/") == Some(200)
    });
    // creationTimestamp has whole seconds: make web-new strictly newer. It sorts first by
    // name, and it has no endpoints, so had it taken the port every connection would close.
    std::thread::sleep(Duration::from_millis(1100));
    kube.apply(&format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {{name: web-new, namespace: {ns}}}\nspec:\n  protocol: TCP\n  listener: {{port: {listen}}}\n  endpoints: []\n"
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    while jsonpath(&kube, ns, "web-new", ".status.conditions[0].reason") != "Conflict" {
        assert!(
            Instant::now() < deadline,
            "web-new not refused\n{}",
            c.log()
        );
        assert_eq!(http_status(listen, "/"), Some(200), "web-old lost its port");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        jsonpath(&kube, ns, "web-new", ".status.conditions[0].status"),
        "False"
    );
    let message = jsonpath(&kube, ns, "web-new", ".status.conditions[0].message");
    assert!(
        message.contains("default/web-old") && message.contains("spec.listener.port"),
        "{message}"
    );
    assert_eq!(
        jsonpath(&kube, ns, "web-old", ".status.conditions[0].status"),
        "True"
    );
    let seen = backends(listen, 10);
    assert_eq!(seen.values().sum::<usize>(), 10, "{seen:?}");
}

#[test]
#[ignore = "needs SLUICE_KUBE_BINS and hack/in-netns.sh"]
fn a_change_made_after_an_api_server_outage_is_served_within_two_seconds() {
    let Some(mut kube) =
        cluster_or_skip("a_change_made_after_an_api_server_outage_is_served_within_two_seconds")
    else {
        return;
    };
    let ns = kube.new_namespace("e2e");
    let (_a, _b, port) = echo_pair();
    kube.apply(&service_and_slice(&ns, port, true, false));
    let listen = free_port();
    kube.apply(&backend_pool(&ns, "web", listen, ""));
    let c = start_controller(&kube, &ns);
    c.wait(Duration::from_secs(10), "serving both pods", || {
        backends(listen, 6).len() == 2
    });

    kube.stop_apiserver();
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(
        backends(listen, 6).len(),
        2,
        "traffic goes on during the outage"
    );
    kube.restart_apiserver()
        .unwrap_or_else(|e| panic!("API server did not come back: {e}"));
    let ready = Instant::now();
    kube.apply(&service_and_slice(&ns, port, false, true));
    let limit = Duration::from_secs(2);
    loop {
        if backends(listen, 6).keys().all(|k| k == "pod-a") {
            break;
        }
        assert!(
            ready.elapsed() < limit,
            "pod-b still gets traffic {:?} after the API server was ready again\n--- sluice log\n{}",
            ready.elapsed(),
            c.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "the change was served {:?} after the API server was ready again",
        ready.elapsed()
    );
}

/// The backend that answers a GET of `/` on `port` carrying `header` (`name: value`).
fn backend_with_header(port: u16, header: &str) -> Option<String> {
    let answer = fetch(port, "shop.test", "/", &[header])?;
    answer.header("x-backend").map(str::to_owned)
}

#[test]
#[ignore = "needs SLUICE_KUBE_BINS and hack/in-netns.sh"]
fn a_canary_service_and_a_redirect_pool_work_in_kubernetes_mode() {
    let Some(kube) =
        cluster_or_skip("a_canary_service_and_a_redirect_pool_work_in_kubernetes_mode")
    else {
        return;
    };
    let ns = kube.new_namespace("e2e-routing");
    let (_a, _b, port) = echo_pair();
    let _c = EchoServer::start("pod-c", format!("198.18.0.4:{port}").parse().unwrap())
        .expect("198.18.0.4 has the pair's port free");
    kube.apply(&service_and_slice(&ns, port, true, false));
    kube.apply(&service(&ns, "web-v2", "198.18.0.4", port));
    let listen = free_port();
    kube.apply(&backend_pool(
        &ns,
        "web",
        listen,
        "  canary: {service: {name: web-v2, port: http}, weight: 0, header: {name: x-canary, value: \"1\"}}\n",
    ));
    let plain = free_port();
    kube.apply(&format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {{name: to-https, namespace: {ns}}}\nspec:\n  listener: {{port: {plain}}}\n  redirect: {{scheme: https}}\n"
    ));
    let c = start_controller(&kube, &ns);
    c.wait(Duration::from_secs(10), "the canary serving", || {
        backend_with_header(listen, "x-canary: 1").as_deref() == Some("pod-c")
    });
    let seen = backends(listen, 20);
    assert!(!seen.contains_key("pod-c"), "weight 0: {seen:?}");
    c.wait(Duration::from_secs(10), "the redirect pool Ready", || {
        jsonpath(&kube, &ns, "to-https", ".status.conditions[0].reason") == "Redirects"
    });
    assert_eq!(
        jsonpath(&kube, &ns, "to-https", ".status.conditions[0].status"),
        "True"
    );
    assert_eq!(http_status(plain, "/x"), Some(308));
    assert!(!c.log().contains("forbidden"), "{}", c.log());
}

/// An HTTPS backend on 127.0.0.1 answering `tls-ok`, with a certificate for `backend.test`
/// signed by a fresh CA; returns its address and the CA, certificate and key (PEM). It runs
/// on its own runtime thread for the life of the test process.
fn https_backend() -> (SocketAddr, String, String, String) {
    use rustls_pki_types::pem::PemObject;
    let ca = common::TestCa::new();
    let (cert_pem, key_pem) = ca.leaf("backend.test");
    let chain = rustls_pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let private = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, private)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(|_req| async {
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from_static(b"tls-ok")),
                        ))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
    });
    (addr, ca.pem, cert_pem, key_pem)
}

#[test]
#[ignore = "needs SLUICE_KUBE_BINS and hack/in-netns.sh"]
fn an_https_backend_is_verified_with_the_ca_of_a_secret() {
    let Some(kube) = cluster_or_skip("an_https_backend_is_verified_with_the_ca_of_a_secret") else {
        return;
    };
    let ns = kube.new_namespace("e2e-upstream");
    let (backend, ca, cert, key) = https_backend();
    kube.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: backend-ca, namespace: {ns}}}\ntype: kubernetes.io/tls\nstringData:\n  ca.crt: |\n{}  tls.crt: |\n{}  tls.key: |\n{}",
        indent(&ca, "    "),
        indent(&cert, "    "),
        indent(&key, "    "),
    ));
    let listen = free_port();
    let pool = |name: &str, secret: &str, port: u16| {
        format!(
            "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  listener: {{port: {port}}}\n  endpoints: [{{address: \"{backend}\"}}]\n  upstream: {{tls: {{serverName: backend.test, caSecretName: {secret}}}}}\n"
        )
    };
    kube.apply(&pool("secure", "backend-ca", listen));
    let missing = free_port();
    kube.apply(&pool("no-ca", "nowhere", missing));
    let c = start_controller(&kube, &ns);
    c.wait(Duration::from_secs(10), "serving over TLS", || {
        get(listen, "/").is_some_and(|(status, _, body)| status == 200 && body == "tls-ok")
    });
    c.wait(Duration::from_secs(10), "no-ca refused", || {
        jsonpath(&kube, &ns, "no-ca", ".status.conditions[0].reason") == "InvalidSpec"
    });
    let message = jsonpath(&kube, &ns, "no-ca", ".status.conditions[0].message");
    assert!(
        message.contains("spec.upstream.tls.caSecretName") && message.contains("nowhere"),
        "{message}"
    );

    // The API server applies the CRD's rules to the new fields.
    let refused = kube.kubectl_with_stdin(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {{name: auto, namespace: {ns}}}\nspec:\n  listener: {{port: {listen}}}\n  endpoints: []\n  upstream: {{protocol: auto}}\n"
        )),
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("needs tls"),
        "{stderr}"
    );
}

/// Status and `access-control-allow-origin` of a GET on 127.0.0.1:`port` with an extra
/// header line (`Name: value`).
fn get_with(port: u16, header: &str) -> Option<(u16, String)> {
    let answer = fetch(port, "shop.test", "/", &[header])?;
    let origin = answer
        .header("access-control-allow-origin")
        .unwrap_or_default()
        .to_owned();
    Some((answer.status, origin))
}

#[test]
#[ignore = "needs SLUICE_KUBE_BINS and hack/in-netns.sh"]
fn basic_auth_reads_an_opaque_secret_and_a_changed_secret_applies_without_restart() {
    let Some(kube) = cluster_or_skip(
        "basic_auth_reads_an_opaque_secret_and_a_changed_secret_applies_without_restart",
    ) else {
        return;
    };
    let ns = kube.new_namespace("e2e-auth");
    let (_a, _b, port) = echo_pair();
    kube.apply(&service_and_slice(&ns, port, true, false));
    // `kubectl create secret generic users --from-file=auth=users.htpasswd`, as YAML.
    let users = |line: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: users, namespace: {ns}}}\ntype: Opaque\nstringData:\n  auth: |\n    {line}\n"
        )
    };
    kube.apply(&users("alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="));
    let listen = free_port();
    kube.apply(&backend_pool(
        &ns,
        "web",
        listen,
        "  basicAuth: {secretName: users, realm: Shop}\n  cors: {allowOrigins: [\"https://*.shop.test\"]}\n",
    ));
    let c = start_controller(&kube, &ns);
    let password = "Authorization: Basic YWxpY2U6cGFzc3dvcmQ=";
    let secret = "Authorization: Basic YWxpY2U6c2VjcmV0";
    c.wait(Duration::from_secs(10), "alice let in", || {
        get_with(listen, password).is_some_and(|(status, _)| status == 200)
    });
    assert_eq!(get_with(listen, "X-None: 1").map(|r| r.0), Some(401));
    assert_eq!(
        get_with(
            listen,
            &format!("{password}\r\nOrigin: https://app.shop.test")
        ),
        Some((200, "https://app.shop.test".to_owned()))
    );

    kube.apply(&users("alice:$apr1$r31....a$J66x6A3ONL4jNQPu3giBk/"));
    c.wait(Duration::from_secs(10), "the new password accepted", || {
        get_with(listen, secret).is_some_and(|(status, _)| status == 200)
    });
    assert_eq!(get_with(listen, password).map(|r| r.0), Some(401));

    // The API server applies the CRD's rules to the policy fields.
    let refused = kube.kubectl_with_stdin(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {{name: open, namespace: {ns}}}\nspec:\n  listener: {{port: {listen}}}\n  endpoints: []\n  cors: {{allowOrigins: [\"*\"], allowCredentials: true}}\n"
        )),
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("browsers refuse"),
        "{stderr}"
    );
}

#[test]
#[ignore = "needs SLUICE_KUBE_BINS and hack/in-netns.sh"]
fn a_second_controller_takes_the_lease_within_seconds_after_the_leader_gets_sigterm() {
    let Some(kube) = cluster_or_skip(
        "a_second_controller_takes_the_lease_within_seconds_after_the_leader_gets_sigterm",
    ) else {
        return;
    };
    let ns = kube.new_namespace("leader");
    let mut first = start_controller(&kube, &ns);
    first.wait(Duration::from_secs(10), "leader", || {
        leader(&first) == Some(1.0)
    });
    let second = start_controller(&kube, &ns);
    // One retry period at least, so the second has seen the Lease held.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(leader(&second), Some(0.0), "{}", second.log());
    let holder = |kube: &KubeCluster| {
        kube.kubectl_ok(&[
            "get",
            "lease",
            "sluice",
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
    };
    let first_holder = holder(&kube);

    let stopped = Instant::now();
    let pid = first.pid().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    // Without the release this takes the 15 s lease duration; with it, one retry period
    // (2 s) plus the API round trips.
    second.wait(
        Duration::from_secs(5),
        "leader after the first stopped",
        || leader(&second) == Some(1.0),
    );
    let took = stopped.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "took {took:?}\n--- first\n{}",
        first.log()
    );
    let new_holder = holder(&kube);
    assert!(
        !new_holder.is_empty() && new_holder != first_holder,
        "holder {new_holder:?} (was {first_holder:?})"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = first.try_wait().expect("waitable child") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the first controller did not exit"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    assert!(
        first.log().contains("released the leader lease"),
        "{}",
        first.log()
    );
}

#[test]
#[ignore = "needs SLUICE_KUBE_BINS and hack/in-netns.sh"]
fn access_policies_are_checked_by_the_api_server_and_enforced_in_kubernetes_mode() {
    let Some(kube) = cluster_or_skip(
        "access_policies_are_checked_by_the_api_server_and_enforced_in_kubernetes_mode",
    ) else {
        return;
    };
    let ns = kube.new_namespace("e2e-access");
    // The CRD's CEL rules refuse what standalone validation refuses.
    for (block, message) in [
        ("  ipAllowList: [10.0.0.1/8]\n", "CIDR without host bits"),
        ("  ipDenyList: [not-an-address]\n", "CIDR without host bits"),
        (
            "  rateLimit: {requestsPerSecond: 5, key: Header}\n",
            "header is required with key Header",
        ),
        ("  rateLimit: {requestsPerSecond: 0}\n", "requestsPerSecond"),
        ("  maxRequestBodyBytes: 0\n", "maxRequestBodyBytes"),
    ] {
        let refused = kube.kubectl_with_stdin(
            &["apply", "-f", "-"],
            Some(&backend_pool(&ns, "bad", free_port(), block)),
        );
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            !refused.status.success() && stderr.contains(message),
            "{block}: {stderr}"
        );
    }
    let (_a, _b, port) = echo_pair();
    kube.apply(&service_and_slice(&ns, port, true, false));
    let (outside, limited, small) = (free_port(), free_port(), free_port());
    kube.apply(&backend_pool(
        &ns,
        "outside",
        outside,
        "  ipAllowList: [10.0.0.0/8, \"2001:db8::/32\"]\n",
    ));
    kube.apply(&backend_pool(
        &ns,
        "limited",
        limited,
        "  rateLimit: {requestsPerSecond: 1, burst: 2, key: Pool}\n",
    ));
    kube.apply(&backend_pool(
        &ns,
        "small",
        small,
        "  maxRequestBodyBytes: 10\n",
    ));
    let c = start_controller(&kube, &ns);
    c.wait(Duration::from_secs(10), "the pools serving", || {
        http_status(small, "/").is_some_and(|s| s == 200)
    });
    assert_eq!(
        http_status(outside, "/"),
        Some(403),
        "127.0.0.1 is not listed"
    );
    let statuses: Vec<u16> = (0..4).filter_map(|_| http_status(limited, "/")).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 429).count(),
        2,
        "{statuses:?}"
    );
    let out = raw(
        small,
        "POST / HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world",
    );
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
}
