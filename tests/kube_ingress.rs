//! End to end against a real kube-apiserver: Ingresses written as ingress-nginx users write
//! them (a rewrite with captures, a canary pair, TLS with the HTTP -> HTTPS redirect, an
//! allow list, a rate limit, a connection limit, basic auth, external auth with a sign-in
//! redirect, CORS, an access restriction sluice does not implement, another controller's
//! class) applied with
//! `ingressClassName: sluice`, and real traffic through the controller.
//!
//! Ignored by default; needs the control-plane binaries and a private network namespace:
//! `hack/e2e.sh` (or `hack/e2e.sh NAME` for one test).

#![allow(clippy::disallowed_types)]

mod common;
#[path = "support/harness.rs"]
mod support;

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use common::{TestCa, free_port};
use support::controller::ControllerProcess;
use support::fixtures::{echoes, indent, service};
use support::http::{exchange, raw, request};
use support::kube::KubeCluster;

/// The controller with the Ingress ports given and `status.loadBalancer` from
/// `--publish-address`.
fn start_controller(kube: &KubeCluster, ns: &str, http: u16, https: u16) -> ControllerProcess {
    ControllerProcess::builder(kube, ns)
        .args(["--http-port", &http.to_string()])
        .args(["--https-port", &https.to_string()])
        .args(["--publish-address", "198.18.0.99"])
        .start()
}

/// A GET over TLS with SNI `host`, trusting only `ca`.
fn tls_request(port: u16, host: &str, path: &str, ca: &str) -> Option<(u16, String, String)> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(sluice::config::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).ok()?;
    let tcp = TcpStream::connect(("127.0.0.1", port)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    exchange(&mut tls, host, path, &[]).map(|a| a.tagged())
}

/// A scripted auth service (the oauth2-proxy role) on 198.18.0.4: `Cookie: session=NAME`
/// answers 200 with `X-Auth-Request-User: NAME`, anything else 401. Serves until the test
/// process ends; returns its port and the number of questions asked.
fn auth_service() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("198.18.0.4:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = asked.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let count = count.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        match std::io::BufRead::read_line(&mut reader, &mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => head.push_str(&line),
                        }
                    }
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let user = head.lines().find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        let value = value.trim();
                        (name.eq_ignore_ascii_case("cookie"))
                            .then(|| value.strip_prefix("session="))
                            .flatten()
                            .map(str::to_owned)
                    });
                    let answer = match user {
                        Some(user) => format!(
                            "HTTP/1.1 200 OK\r\nX-Auth-Request-User: {user}\r\nContent-Length: 0\r\n\r\n"
                        ),
                        None => "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".to_owned(),
                    };
                    if stream.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, asked)
}

/// The ingress-nginx way: the documented rewrite with captures, a canary Ingress copying
/// the main one's rewrite, a TLS host, an Ingress with `auth-url` (oauth2-proxy's
/// documented annotations, the auth service named by its address), CORS, an Ingress with
/// ModSecurity (which sluice does not implement), another class.
fn manifests(ns: &str, ca: &TestCa, auth_port: u16) -> String {
    let (cert, key) = ca.leaf("secure.test");
    format!(
        r#"apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {{name: sluice}}
spec: {{controller: sluice.dev/ingress-controller}}
---
apiVersion: v1
kind: Secret
metadata: {{name: secure-tls, namespace: {ns}}}
type: kubernetes.io/tls
stringData:
  tls.crt: |
{cert_pem}  tls.key: |
{key_pem}---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
  namespace: {ns}
  annotations:
    nginx.ingress.kubernetes.io/use-regex: "true"
    nginx.ingress.kubernetes.io/rewrite-target: /$2
spec:
  ingressClassName: sluice
  rules:
    - host: shop.test
      http:
        paths:
          - path: /app(/|$)(.*)
            pathType: ImplementationSpecific
            backend: {{service: {{name: web, port: {{name: http}}}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop-canary
  namespace: {ns}
  annotations:
    nginx.ingress.kubernetes.io/use-regex: "true"
    nginx.ingress.kubernetes.io/rewrite-target: /$2
    nginx.ingress.kubernetes.io/canary: "true"
    nginx.ingress.kubernetes.io/canary-by-header: x-canary
    nginx.ingress.kubernetes.io/canary-by-header-value: "yes"
spec:
  ingressClassName: sluice
  rules:
    - host: shop.test
      http:
        paths:
          - path: /app(/|$)(.*)
            pathType: ImplementationSpecific
            backend: {{service: {{name: web-v2, port: {{number: 80}}}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: secure, namespace: {ns}}}
spec:
  ingressClassName: sluice
  tls: [{{hosts: [secure.test], secretName: secure-tls}}]
  rules:
    - host: secure.test
      http:
        paths:
          - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: locked
  namespace: {ns}
  annotations:
    nginx.ingress.kubernetes.io/auth-url: http://198.18.0.4:{auth_port}/oauth2/auth
    nginx.ingress.kubernetes.io/auth-signin: https://$host/oauth2/start?rd=$escaped_request_uri
    nginx.ingress.kubernetes.io/auth-response-headers: X-Auth-Request-User
spec:
  ingressClassName: sluice
  rules:
    - host: locked.test
      http:
        paths:
          - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: guarded
  namespace: {ns}
  annotations:
    nginx.ingress.kubernetes.io/enable-modsecurity: "true"
spec:
  ingressClassName: sluice
  rules:
    - host: guarded.test
      http:
        paths:
          - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: api
  namespace: {ns}
  annotations:
    nginx.ingress.kubernetes.io/enable-cors: "true"
    nginx.ingress.kubernetes.io/cors-allow-origin: https://app.test
spec:
  ingressClassName: sluice
  rules:
    - host: api.test
      http:
        paths:
          - {{path: /, pathType: Prefix, backend: {{service: {{name: web-v2, port: {{number: 80}}}}}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: conns
  namespace: {ns}
  annotations:
    nginx.ingress.kubernetes.io/limit-connections: "1"
spec:
  ingressClassName: sluice
  rules:
    - host: conns.test
      http:
        paths:
          - {{path: /, pathType: Prefix, backend: {{service: {{name: web-v2, port: {{number: 80}}}}}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: private
  namespace: {ns}
  annotations:
    nginx.ingress.kubernetes.io/whitelist-source-range: 198.51.100.0/24
spec:
  ingressClassName: sluice
  rules:
    - host: private.test
      http:
        paths:
          - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: limited
  namespace: {ns}
  annotations:
    nginx.ingress.kubernetes.io/limit-rps: "1"
    nginx.ingress.kubernetes.io/limit-burst-multiplier: "2"
spec:
  ingressClassName: sluice
  rules:
    - host: limited.test
      http:
        paths:
          - {{path: /, pathType: Prefix, backend: {{service: {{name: web-v2, port: {{number: 80}}}}}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: staff, namespace: {ns}}}
type: Opaque
stringData:
  auth: "alice:{{SHA}}5en6G6MezRroT3XKqkdPOmY/BfQ=\n"
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: staff
  namespace: {ns}
  annotations:
    nginx.ingress.kubernetes.io/auth-type: basic
    nginx.ingress.kubernetes.io/auth-secret: staff
    nginx.ingress.kubernetes.io/auth-realm: Staff only
spec:
  ingressClassName: sluice
  rules:
    - host: staff.test
      http:
        paths:
          - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: other, namespace: {ns}}}
spec:
  ingressClassName: nginx
  rules:
    - host: other.test
      http:
        paths:
          - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
"#,
        cert_pem = indent(&cert, "    "),
        key_pem = indent(&key, "    "),
    )
}

#[test]
#[ignore = "needs SLUICE_KUBE_BINS and hack/in-netns.sh"]
fn ingresses_of_the_sluice_class_serve_rewrites_canaries_and_tls_and_refuse_what_sluice_cannot_enforce()
 {
    let test = "ingresses_of_the_sluice_class_serve_rewrites_canaries_and_tls_and_refuse_what_sluice_cannot_enforce";
    let Some(kube) = KubeCluster::start_or_skip(test) else {
        return;
    };
    kube.install_crd();
    let ns = kube.new_namespace("e2e-ingress");
    let (_echoes, port) = echoes(["pod-a", "pod-c"]);
    kube.apply(&service(&ns, "web", "198.18.0.2", port));
    kube.apply(&service(&ns, "web-v2", "198.18.0.3", port));
    let ca = TestCa::new();
    let (auth_port, asked) = auth_service();
    kube.apply(&manifests(&ns, &ca, auth_port));
    let (http, https) = (free_port(), free_port());
    let c = start_controller(&kube, &ns, http, https);

    // rewrite-target /$2 with /app(/|$)(.*): the backend sees the path without /app.
    c.wait(Duration::from_secs(10), "serving shop.test", || {
        request(http, "shop.test", "/app/x/y?q=1", &[]).map(|r| r.0) == Some(200)
    });
    let (_, backend, body) = request(http, "shop.test", "/app/x/y?q=1", &[]).unwrap();
    assert_eq!(backend, "pod-a");
    assert!(body.contains("GET /x/y "), "{body}");
    let (_, _, body) = request(http, "shop.test", "/app", &[]).unwrap();
    assert!(body.contains("GET / "), "{body}");
    // The regex is case-insensitive, as in ingress-nginx... but sluice translates this
    // rewrite form to a segment-wise prefix: /APP is not /app (documented difference).

    // The canary Ingress: its header sends requests to web-v2, the rest stay on web.
    let (_, canary, body) = request(http, "shop.test", "/app/z", &["x-canary: yes"]).unwrap();
    assert_eq!(canary, "pod-c", "{body}");
    assert!(body.contains("GET /z"), "{body}");
    for _ in 0..10 {
        assert_eq!(
            request(http, "shop.test", "/app/z", &[]).unwrap().1,
            "pod-a"
        );
    }

    // TLS host: plain HTTP redirects with 308; HTTPS serves with the Secret's certificate.
    let (status, location, _) = request(http, "secure.test", "/p?q=1", &[]).unwrap();
    assert_eq!(
        (status, location.as_str()),
        (308, "https://secure.test/p?q=1")
    );
    c.wait(
        Duration::from_secs(10),
        "serving secure.test over TLS",
        || tls_request(https, "secure.test", "/p", &ca.pem).map(|r| r.0) == Some(200),
    );
    let (_, backend, body) = tls_request(https, "secure.test", "/p", &ca.pem).unwrap();
    assert_eq!(backend, "pod-a");
    assert!(body.contains("GET /p"), "{body}");

    // auth-url: without a session the auth service answers 401 and the browser is sent to
    // auth-signin (its $host and $escaped_request_uri expanded), the backend never asked;
    // with one, the request goes on carrying the user the auth service named, and a user
    // header the client made up is replaced.
    let (status, location, _) = request(http, "locked.test", "/p?q=1", &[]).unwrap();
    assert_eq!(
        (status, location.as_str()),
        (302, "https://locked.test/oauth2/start?rd=%2Fp%3Fq%3D1")
    );
    assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);
    let (status, backend, body) = request(
        http,
        "locked.test",
        "/headers",
        &["Cookie: session=alice", "X-Auth-Request-User: mallory"],
    )
    .unwrap();
    assert_eq!((status, backend.as_str()), (200, "pod-a"), "{body}");
    assert!(body.contains("x-auth-request-user: alice\n"), "{body}");
    assert!(!body.contains("mallory"), "{body}");

    // ModSecurity is not implemented: that Ingress is refused, not served open; another
    // controller's class is not served at all.
    assert_eq!(request(http, "guarded.test", "/", &[]).unwrap().0, 404);
    assert_eq!(request(http, "other.test", "/", &[]).unwrap().0, 404);

    // CORS: sluice answers the preflight of an allowed origin itself, with ingress-nginx's
    // default methods, headers and max-age; an actual answer names the origin.
    let preflight = raw(
        http,
        "OPTIONS /items HTTP/1.1\r\nHost: api.test\r\nOrigin: https://app.test\r\nAccess-Control-Request-Method: PUT\r\nConnection: close\r\n\r\n",
    )
    .to_ascii_lowercase();
    assert!(preflight.starts_with("http/1.1 204"), "{preflight}");
    for line in [
        "access-control-allow-origin: https://app.test\r\n",
        "access-control-allow-methods: get, put, post, delete, patch, options\r\n",
        "access-control-allow-credentials: true\r\n",
        "access-control-max-age: 1728000\r\n",
        "access-control-allow-headers: dnt,keep-alive,user-agent,x-requested-with,if-modified-since,cache-control,content-type,range,authorization\r\n",
    ] {
        assert!(preflight.contains(line), "{line}: {preflight}");
    }
    assert!(
        !preflight.contains("x-backend"),
        "answered by sluice: {preflight}"
    );
    let actual = raw(
        http,
        "GET /items HTTP/1.1\r\nHost: api.test\r\nOrigin: https://app.test\r\nConnection: close\r\n\r\n",
    )
    .to_ascii_lowercase();
    assert!(actual.starts_with("http/1.1 200"), "{actual}");
    assert!(actual.contains("x-backend: pod-c\r\n"), "{actual}");
    assert!(
        actual.contains("access-control-allow-origin: https://app.test\r\n"),
        "{actual}"
    );
    let other = raw(
        http,
        "GET /items HTTP/1.1\r\nHost: api.test\r\nOrigin: https://evil.test\r\nConnection: close\r\n\r\n",
    )
    .to_ascii_lowercase();
    assert!(!other.contains("access-control-allow-origin"), "{other}");

    // An allow list the client is not in: 403. limit-rps 1 with burst multiplier 2: two
    // requests at once pass, the third waits for its token (429).
    assert_eq!(request(http, "private.test", "/", &[]).unwrap().0, 403);
    let codes: Vec<u16> = (0..3)
        .map(|_| request(http, "limited.test", "/", &[]).unwrap().0)
        .collect();
    assert_eq!(codes, [200, 200, 429]);

    // limit-connections 1: while one request of this client is in flight, the next is
    // refused; once it has been answered, the client is served again.
    let slow = std::thread::spawn(move || request(http, "conns.test", "/delay/1500", &[]));
    let mut refused = None;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(50));
        let code = request(http, "conns.test", "/", &[]).unwrap().0;
        if code == 429 {
            refused = Some(code);
            break;
        }
    }
    assert_eq!(
        refused,
        Some(429),
        "a second request while the first is in flight"
    );
    assert_eq!(slow.join().unwrap().unwrap().0, 200);
    assert_eq!(request(http, "conns.test", "/", &[]).unwrap().0, 200);

    // auth-type basic with an htpasswd Secret: 401 without credentials, 200 with them.
    assert_eq!(request(http, "staff.test", "/", &[]).unwrap().0, 401);
    let wrong = request(
        http,
        "staff.test",
        "/",
        &["Authorization: Basic YWxpY2U6bm9wZQ=="],
    );
    assert_eq!(wrong.unwrap().0, 401, "alice:nope");
    let right = request(
        http,
        "staff.test",
        "/",
        &["Authorization: Basic YWxpY2U6c2VjcmV0"],
    );
    assert_eq!(right.unwrap().0, 200, "alice:secret");
    c.wait(
        Duration::from_secs(10),
        "a Refused Event on the guarded Ingress",
        || {
            let out = kube.kubectl(&[
                "get",
                "events",
                "-n",
                &ns,
                "--field-selector",
                "involvedObject.name=guarded",
                "-o",
                "jsonpath={range .items[*]}{.reason}: {.note}{.message}{\"\\n\"}{end}",
            ]);
            let text = String::from_utf8_lossy(&out.stdout);
            text.contains("Refused: ")
                && text.contains("nginx.ingress.kubernetes.io/enable-modsecurity")
        },
    );

    // status.loadBalancer from --publish-address, on served Ingresses only.
    let lb = |name: &str| {
        kube.jsonpath(
            &ns,
            &format!("ingress/{name}"),
            "{.status.loadBalancer.ingress[0].ip}",
        )
    };
    c.wait(
        Duration::from_secs(10),
        "status.loadBalancer written",
        || lb("shop") == "198.18.0.99" && lb("limited") == "198.18.0.99",
    );
    assert_eq!(lb("guarded"), "");
    assert_eq!(lb("other"), "");

    // An Ingress that stops being served (here: refused after an edit) loses the
    // status.loadBalancer sluice wrote.
    kube.apply(&format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: limited\n  namespace: {ns}\n  annotations:\n    nginx.ingress.kubernetes.io/enable-modsecurity: \"true\"\nspec:\n  ingressClassName: sluice\n  rules:\n    - host: limited.test\n      http:\n        paths:\n          - {{path: /, pathType: Prefix, backend: {{service: {{name: web-v2, port: {{number: 80}}}}}}}}\n"
    ));
    c.wait(
        Duration::from_secs(10),
        "status.loadBalancer cleared on the refused Ingress",
        || lb("limited").is_empty(),
    );
    assert_eq!(request(http, "limited.test", "/", &[]).unwrap().0, 404);

    // A change is served without a restart: the rule's path moves.
    kube.apply(&format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: secure, namespace: {ns}}}\nspec:\n  ingressClassName: sluice\n  rules:\n    - host: secure.test\n      http:\n        paths:\n          - {{path: /only, pathType: Exact, backend: {{service: {{name: web-v2, port: {{number: 80}}}}}}}}\n"
    ));
    c.wait(Duration::from_secs(10), "the edited Ingress served", || {
        request(http, "secure.test", "/only", &[]).map(|r| r.1) == Some("pod-c".into())
    });
    assert_eq!(request(http, "secure.test", "/p", &[]).unwrap().0, 404);
    assert!(!c.log().contains("forbidden"), "{}", c.log());
}
