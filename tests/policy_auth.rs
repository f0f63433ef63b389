//! CORS, basic auth and external auth through the real binary (contract 4b): preflights
//! answered by sluice, `Access-Control-*` on actual answers, htpasswd users (reloaded when
//! the file changes), an oauth2-proxy-like flow against a scripted auth service, and an
//! auth service that hangs, answers garbage or too much. Every refused request is checked
//! against a recording backend: it never arrives there.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use common::{PoolDoc, Resp, Sluice, check_file, echo, eventually, file, free_port, send};
use http::StatusCode;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn header<'a>(resp: &'a Resp, name: &str) -> Option<&'a str> {
    resp.headers.get(name).map(|v| v.to_str().unwrap())
}

fn basic(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

// ---- CORS ----

#[tokio::test]
async fn preflights_are_answered_by_sluice_and_allowed_origins_get_cors_headers() {
    let backend = echo("web");
    let port = free_port();
    let yaml = file(&[PoolDoc::http("web", port)
        .endpoints(&[backend.addr()])
        .spec(|s| {
            s.cors = Some(PoolDoc::block(
                "{allowOrigins: [\"https://app.example\", \"https://*.example.com\"], allowMethods: [GET, POST], allowHeaders: [Authorization, X-Token], exposeHeaders: [X-Backend], allowCredentials: true, maxAge: 10m}",
            ))
        })]);
    let s = Sluice::start(&yaml);

    let preflight = |origin: &'static str| async move {
        send(
            port,
            "OPTIONS",
            "/api",
            &[
                ("origin", origin),
                ("access-control-request-method", "POST"),
            ],
        )
        .await
    };
    let r = preflight("https://a.example.com").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://a.example.com")
    );
    assert_eq!(
        header(&r, "access-control-allow-methods"),
        Some("GET, POST")
    );
    assert_eq!(
        header(&r, "access-control-allow-headers"),
        Some("Authorization, X-Token")
    );
    assert_eq!(header(&r, "access-control-max-age"), Some("600"));
    assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
    assert_eq!(header(&r, "vary"), Some("Origin"));

    let r = preflight("https://evil.test").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(
        r.headers
            .keys()
            .all(|k| !k.as_str().starts_with("access-control-")),
        "{:?}",
        r.headers
    );
    assert_eq!(backend.requests(), 0, "preflights never reach the backend");

    // A plain OPTIONS (no Access-Control-Request-Method) is the backend's to answer.
    let r = send(port, "OPTIONS", "/", &[("origin", "https://app.example")]).await;
    assert_eq!(r.backend(), "web");

    let r = send(port, "GET", "/", &[("origin", "https://app.example")]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
    assert_eq!(
        header(&r, "access-control-expose-headers"),
        Some("X-Backend")
    );
    assert_eq!(header(&r, "vary"), Some("Origin"));

    let r = send(port, "GET", "/", &[("origin", "https://example.com")]).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "CORS protects readers, not the server"
    );
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    drop(s);
}

#[tokio::test]
async fn sluices_own_502_carries_the_cors_headers_of_an_allowed_origin() {
    let port = free_port();
    let dead: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let yaml = file(&[PoolDoc::http("web", port).endpoints(&[dead]).spec(|s| {
        s.cors = Some(PoolDoc::block("{allowOrigins: [\"https://app.example\"]}"));
    })]);
    let _s = Sluice::start(&yaml);
    let r = send(port, "GET", "/", &[("origin", "https://app.example")]).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example"),
        "the page's script can read why its request failed"
    );
    let r = send(port, "GET", "/", &[("origin", "https://evil.example")]).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(header(&r, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn a_preflight_on_an_authenticated_pool_is_answered_only_after_authentication() {
    let backend = echo("web");
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users"),
        "alice:$apr1$r31....a$J66x6A3ONL4jNQPu3giBk/\n",
    )
    .unwrap();
    let yaml = file(&[PoolDoc::http("web", port)
        .endpoints(&[backend.addr()])
        .spec(|s| {
            s.cors = Some(PoolDoc::block("{allowOrigins: [\"https://app.example\"]}"));
            s.basic_auth = Some(PoolDoc::block("{file: users}"));
        })]);
    let _s = Sluice::start_in(dir, &yaml, &[]);
    let origin = ("origin", "https://app.example");
    let preflight = [origin, ("access-control-request-method", "GET")];
    // Contract 4b's order: auth comes before the CORS preflight.
    let r = send(port, "OPTIONS", "/", &preflight).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example"),
        "the refusal is readable by the allowed origin's script"
    );
    let credentials = basic("alice", "secret");
    let with = [
        preflight[0],
        preflight[1],
        ("authorization", credentials.as_str()),
    ];
    let r = send(port, "OPTIONS", "/", &with).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example")
    );
    let r = send(port, "GET", "/", &[origin]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(backend.requests(), 0);
}

// ---- basic auth ----

#[tokio::test]
async fn basic_auth_refuses_before_the_backend_and_never_forwards_the_credentials() {
    let backend = echo("web");
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let bcrypt = bcrypt::hash("b-pass", 4).unwrap();
    std::fs::write(
        dir.path().join("users.htpasswd"),
        format!(
            "# htpasswd -m, -s, -B\nalice:$apr1$r31....a$J66x6A3ONL4jNQPu3giBk/\nbob:{{SHA}}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\ncarol:{bcrypt}\n"
        ),
    )
    .unwrap();
    let yaml = file(&[PoolDoc::http("web", port)
        .endpoints(&[backend.addr()])
        .spec(|s| s.basic_auth = Some(PoolDoc::block("{file: users.htpasswd, realm: Staff}")))]);
    let s = Sluice::start_in(dir, &yaml, &[]);

    for refused in [
        vec![],
        vec![("authorization", basic("alice", "wrong"))],
        vec![("authorization", basic("mallory", "secret"))],
        vec![("authorization", "Bearer abc".to_owned())],
        vec![("authorization", format!("Basic {}", "A".repeat(6000)))],
    ] {
        let headers: Vec<(&str, &str)> = refused.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = send(port, "GET", "/headers", &headers).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{refused:?}");
        assert_eq!(
            header(&r, "www-authenticate"),
            Some("Basic realm=\"Staff\"")
        );
    }
    assert_eq!(
        backend.requests(),
        0,
        "a refused request never reaches the backend"
    );
    assert_eq!(
        s.metric("sluice_denied_total{pool=\"default/web\",reason=\"auth\"}")
            .await,
        Some(5.0)
    );

    for (user, password) in [
        ("alice", "secret"),
        ("bob", "password"),
        ("carol", "b-pass"),
    ] {
        let auth = basic(user, password);
        let r = send(port, "GET", "/headers", &[("authorization", &auth)]).await;
        assert_eq!(r.status, StatusCode::OK, "{user}");
        assert!(
            !r.body.to_ascii_lowercase().contains("authorization"),
            "the credentials reached the backend:\n{}",
            r.body
        );
    }
}

#[tokio::test]
async fn forward_authorization_passes_the_verified_credentials_on_to_the_backend() {
    let backend = echo("web");
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users"),
        "bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n",
    )
    .unwrap();
    let yaml = file(&[PoolDoc::http("web", port)
        .endpoints(&[backend.addr()])
        .spec(|s| {
            s.basic_auth = Some(PoolDoc::block("{file: users, forwardAuthorization: true}"))
        })]);
    let _s = Sluice::start_in(dir, &yaml, &[]);
    let auth = basic("bob", "password");
    let r = send(port, "GET", "/headers", &[("authorization", &auth)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body
            .to_ascii_lowercase()
            .contains(&format!("authorization: {}", auth.to_ascii_lowercase())),
        "the backend reads the user from the header:\n{}",
        r.body
    );
    let r = send(port, "GET", "/headers", &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "still checked");
}

#[tokio::test]
async fn a_changed_htpasswd_file_applies_without_restart_and_a_broken_one_is_refused() {
    let backend = echo("web");
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(&users, "alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n").unwrap();
    let yaml = file(&[PoolDoc::http("web", port)
        .endpoints(&[backend.addr()])
        .spec(|s| s.basic_auth = Some(PoolDoc::block("{file: users}")))]);
    let s = Sluice::start_in(dir, &yaml, &[]);
    let status = |password: &'static str| async move {
        let auth = basic("alice", password);
        send(port, "GET", "/", &[("authorization", &auth)])
            .await
            .status
    };
    assert_eq!(status("password").await, StatusCode::OK);

    // A new password, written as editors do (a new file renamed over the old one).
    let next = users.with_extension("tmp");
    std::fs::write(&next, "alice:$apr1$r31....a$J66x6A3ONL4jNQPu3giBk/\n").unwrap();
    std::fs::rename(&next, &users).unwrap();
    let took = eventually(Duration::from_secs(5), || async {
        status("secret").await == StatusCode::OK
    })
    .await;
    assert!(
        took.is_some(),
        "the new password was not accepted within 5 s"
    );
    assert_eq!(status("password").await, StatusCode::UNAUTHORIZED);

    // A list that no longer parses is refused as a whole: the previous one keeps serving.
    std::fs::write(&users, "alice:plaintext\n").unwrap();
    let refused = eventually(Duration::from_secs(5), || async {
        s.metric("sluice_config_reloads_total{result=\"failure\"}")
            .await
            .is_some_and(|n| n >= 1.0)
    })
    .await;
    assert!(refused.is_some(), "the broken list was not refused");
    assert_eq!(status("secret").await, StatusCode::OK);
}

// ---- validation ----

#[test]
fn sluice_check_names_file_pool_and_field_of_each_bad_policy() {
    let port = free_port();
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let yaml = file(&[
        PoolDoc::http("star", port)
            .endpoints(&[addr])
            .path_prefix("/a")
            .spec(|s| s.cors = Some(PoolDoc::block("{allowCredentials: true}"))),
        PoolDoc::http("secret", port)
            .endpoints(&[addr])
            .path_prefix("/b")
            .spec(|s| s.basic_auth = Some(PoolDoc::block("{secretName: users}"))),
        PoolDoc::http("missing", port)
            .endpoints(&[addr])
            .path_prefix("/c")
            .spec(|s| s.basic_auth = Some(PoolDoc::block("{file: no-such.htpasswd}"))),
        PoolDoc::http("tls-auth", port)
            .endpoints(&[addr])
            .path_prefix("/d")
            .spec(|s| {
                s.external_auth = Some(PoolDoc::block(
                    "{url: \"https://auth.test/check\", timeout: 0s}",
                ))
            }),
        PoolDoc::http("origin", port)
            .endpoints(&[addr])
            .path_prefix("/e")
            .spec(|s| {
                s.cors = Some(PoolDoc::block(
                    "{allowOrigins: [\"https://app.example/path\"]}",
                ))
            }),
    ]);
    let (code, err, _) = check_file(&yaml);
    assert_eq!(code, Some(1), "{err}");
    for want in [
        "pool default/star: spec.cors.allowOrigins: allowCredentials needs the origins listed",
        "pool default/secret: spec.basicAuth.secretName: is for Kubernetes mode",
        "pool default/tls-auth: spec.externalAuth.url: \"https://auth.test/check\" is https",
        "pool default/tls-auth: spec.externalAuth.timeout: must be greater than 0",
        "pool default/origin: spec.cors.allowOrigins[0]:",
    ] {
        assert!(err.contains(want), "missing {want:?} in\n{err}");
    }
    assert!(err.lines().all(|l| l.contains("pools.yaml:")), "{err}");

    // The file is read only once the rest is valid: alone, the missing list is reported.
    let yaml = file(&[PoolDoc::http("missing", port)
        .endpoints(&[addr])
        .spec(|s| s.basic_auth = Some(PoolDoc::block("{file: no-such.htpasswd}")))]);
    let (code, err, _) = check_file(&yaml);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("pool default/missing: spec.basicAuth.file: cannot read"),
        "{err}"
    );
}

// ---- external auth ----

/// What the scripted auth service does with one request.
#[derive(Clone, Copy)]
enum Script {
    /// oauth2-proxy: 202 with `X-Auth-Request-User` for a known session cookie, 403 for a
    /// banned one, 401 otherwise.
    OAuth2Proxy,
    /// Accepts and never answers.
    Hang,
    /// Answers bytes that are not HTTP.
    Garbage,
    /// A 401 with a body far past any sane bound.
    HugeBody,
}

/// A scripted auth service on loopback that records the requests it gets.
struct AuthService {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
}

impl AuthService {
    async fn start(script: Script) -> AuthService {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let connections = Arc::new(AtomicUsize::new(0));
        let (seen2, connections2) = (seen.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                connections2.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve_auth(stream, script, seen2.clone()));
            }
        });
        AuthService {
            addr,
            seen,
            connections,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/oauth2/auth", self.addr)
    }
}

async fn serve_auth(
    mut stream: tokio::net::TcpStream,
    script: Script,
    seen: Arc<Mutex<Vec<String>>>,
) {
    let mut buf = Vec::new();
    loop {
        // One request head at a time (GETs without bodies), keep-alive.
        let head = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                buf.drain(..end + 4);
                break head;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        seen.lock().push(head.clone());
        let lower = head.to_ascii_lowercase();
        let answer: Vec<u8> = match script {
            Script::Hang => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                return;
            }
            Script::Garbage => b"this is not http at all\r\n\r\n".to_vec(),
            Script::HugeBody => {
                let body = "x".repeat(1 << 20);
                format!(
                    "HTTP/1.1 401 Unauthorized\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            }
            Script::OAuth2Proxy if lower.contains("cookie: _oauth2_proxy=alice-session") => {
                b"HTTP/1.1 202 Accepted\r\nx-auth-request-user: alice\r\nx-auth-request-email: alice@example.test\r\ncontent-length: 0\r\n\r\n".to_vec()
            }
            Script::OAuth2Proxy if lower.contains("cookie: _oauth2_proxy=banned") => {
                b"HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 19\r\n\r\nforbidden by policy".to_vec()
            }
            Script::OAuth2Proxy => {
                b"HTTP/1.1 401 Unauthorized\r\ncontent-type: text/plain\r\ncontent-length: 12\r\n\r\nunauthorized".to_vec()
            }
        };
        if stream.write_all(&answer).await.is_err() {
            return;
        }
        if matches!(script, Script::Garbage | Script::HugeBody) {
            return;
        }
    }
}

fn external_auth_pool(port: u16, backend: SocketAddr, block: &str) -> String {
    file(&[PoolDoc::http("web", port)
        .endpoints(&[backend])
        .spec(|s| s.external_auth = Some(PoolDoc::block(block)))])
}

#[tokio::test]
async fn an_oauth2_proxy_flow_redirects_to_sign_in_then_passes_the_user_to_the_backend() {
    let auth = AuthService::start(Script::OAuth2Proxy).await;
    let backend = echo("web");
    let port = free_port();
    let yaml = external_auth_pool(
        port,
        backend.addr(),
        &format!(
            "{{url: \"{}\", requestHeaders: [Cookie], responseHeaders: [X-Auth-Request-User, X-Auth-Request-Email], signinURL: \"https://auth.test/oauth2/start\"}}",
            auth.url()
        ),
    );
    let s = Sluice::start(&yaml);

    // No session cookie: the browser is sent to sign in, with the way back.
    let r = send(port, "GET", "/headers?tab=1", &[]).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.body);
    assert_eq!(
        header(&r, "location"),
        Some("https://auth.test/oauth2/start?rd=http%3A%2F%2Fapp.test%2Fheaders%3Ftab%3D1")
    );
    assert_eq!(backend.requests(), 0);
    {
        let seen = auth.seen.lock();
        let asked = seen[0].to_ascii_lowercase();
        assert!(asked.starts_with("get /oauth2/auth http/1.1"), "{asked}");
        for want in [
            "x-original-url: http://app.test/headers?tab=1",
            "x-original-method: get",
            "x-forwarded-for: 127.0.0.1",
            "x-forwarded-host: app.test",
            "x-forwarded-uri: /headers?tab=1",
        ] {
            assert!(asked.contains(want), "missing {want:?} in\n{asked}");
        }
    }

    // Signed in: the user header reaches the backend, whatever the client claimed.
    let cookie = ("cookie", "_oauth2_proxy=alice-session");
    for _ in 0..5 {
        let r = send(
            port,
            "GET",
            "/headers",
            &[cookie, ("x-auth-request-user", "mallory")],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            r.body.contains("x-auth-request-user: alice\n"),
            "{}",
            r.body
        );
        assert!(!r.body.contains("mallory"), "{}", r.body);
        assert!(
            r.body
                .contains("x-auth-request-email: alice@example.test\n"),
            "{}",
            r.body
        );
    }
    // The auth requests share pooled connections (one per worker at most).
    assert!(
        auth.connections.load(Ordering::Relaxed) <= 2,
        "{} connections for 6 auth requests",
        auth.connections.load(Ordering::Relaxed)
    );

    // Banned: the auth service's own 403 and body.
    let before = backend.requests();
    let r = send(port, "GET", "/", &[("cookie", "_oauth2_proxy=banned")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body, "forbidden by policy");
    assert_eq!(backend.requests(), before);
    assert_eq!(
        s.metric("sluice_denied_total{pool=\"default/web\",reason=\"auth\"}")
            .await,
        Some(2.0)
    );
}

#[tokio::test]
async fn without_a_signin_url_a_401_from_the_auth_service_reaches_the_client() {
    let auth = AuthService::start(Script::OAuth2Proxy).await;
    let backend = echo("web");
    let port = free_port();
    let yaml = external_auth_pool(
        port,
        backend.addr(),
        &format!("{{url: \"{}\"}}", auth.url()),
    );
    let _s = Sluice::start(&yaml);
    let r = send(port, "GET", "/", &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body, "unauthorized");
    assert_eq!(backend.requests(), 0);
}

#[tokio::test]
async fn an_auth_service_that_hangs_answers_garbage_too_much_or_nothing_fails_closed() {
    let backend = echo("web");
    let hang = AuthService::start(Script::Hang).await;
    let garbage = AuthService::start(Script::Garbage).await;
    let huge = AuthService::start(Script::HugeBody).await;
    let closed = format!("http://127.0.0.1:{}/auth", free_port());
    for (what, url) in [
        ("hangs", hang.url()),
        ("garbage", garbage.url()),
        ("huge body", huge.url()),
        ("unreachable", closed),
    ] {
        let port = free_port();
        let yaml = external_auth_pool(
            port,
            backend.addr(),
            &format!("{{url: \"{url}\", timeout: 300ms}}"),
        );
        let _s = Sluice::start(&yaml);
        let started = tokio::time::Instant::now();
        let r = send(
            port,
            "GET",
            "/",
            &[("cookie", "_oauth2_proxy=alice-session")],
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{what}: {}",
            r.body
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{what}: took {:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        backend.requests(),
        0,
        "a failed auth never reaches the backend"
    );
}
