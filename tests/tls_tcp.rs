//! TCP pools, TLS termination with SNI, session affinity and PROXY protocol, through the
//! real binary on loopback.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use http::StatusCode;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn tcp_pool(name: &str, port: u16, endpoints: &[SocketAddr]) -> PoolDoc {
    PoolDoc::tcp(name, port).endpoints(endpoints)
}

/// Sends `payload` to `port`, shuts down the write side and reads the reply until EOF
/// (bounded); returns the reply and the client's local address.
async fn send_then_half_close(port: u16, payload: &[u8]) -> (String, SocketAddr) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let local = s.local_addr().unwrap();
    s.write_all(payload).await.unwrap();
    s.shutdown().await.unwrap();
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut reply))
        .await
        .unwrap()
        .unwrap();
    (reply, local)
}

/// A TCP backend that echoes everything until the client half-closes, then closes.
async fn echo_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A TCP backend that reads until EOF, then answers with what it read (half-close test)
/// and records the first bytes of each connection (PROXY header test).
async fn recording_backend(name: &'static str) -> (SocketAddr, Arc<Mutex<Vec<Vec<u8>>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
                let reply = format!("{name} read {}", buf.len());
                record.lock().unwrap().push(buf);
                let _ = s.write_all(reply.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_megabytes_round_trip_through_a_tcp_pool_intact() {
    let backend = echo_backend().await;
    let port = free_port();
    let _s = Sluice::start(&file(&[tcp_pool("bulk", port, &[backend])]));
    let mut data = vec![0u8; 10 * 1024 * 1024];
    for chunk in data.chunks_mut(8) {
        chunk.copy_from_slice(&fastrand::u64(..).to_le_bytes()[..chunk.len()]);
    }
    let sent = Sha256::digest(&data);
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut r, mut w) = stream.into_split();
    let writer = tokio::spawn(async move {
        w.write_all(&data).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), r.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    writer.await.unwrap();
    assert_eq!(back.len(), 10 * 1024 * 1024);
    assert_eq!(Sha256::digest(&back), sent);
}

#[tokio::test]
async fn half_close_keeps_the_reply_direction_open() {
    let (backend, _) = recording_backend("b").await;
    let port = free_port();
    let _s = Sluice::start(&file(&[tcp_pool("half", port, &[backend])]));
    let (reply, _) = send_then_half_close(port, b"hello world").await;
    assert_eq!(reply, "b read 11");
}

#[tokio::test]
async fn thirty_tcp_connections_spread_round_robin() {
    let mut backends = Vec::new();
    for name in ["a", "b", "c"] {
        backends.push(recording_backend(name).await);
    }
    let addrs: Vec<_> = backends.iter().map(|(a, _)| *a).collect();
    let port = free_port();
    let _s = Sluice::start(&file(&[tcp_pool("spread", port, &addrs)]));
    for _ in 0..30 {
        send_then_half_close(port, b"").await;
    }
    for (_, seen) in &backends {
        assert_eq!(seen.lock().unwrap().len(), 10);
    }
}

#[tokio::test]
async fn tcp_pool_without_reachable_endpoint_closes_at_once() {
    let dead: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let port = free_port();
    let _s = Sluice::start(&file(&[tcp_pool("dead", port, &[dead])]));
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .unwrap();
    assert!(n.is_ok_and(|n| n == 0) || buf.is_empty());
}

/// The (source, destination) a PROXY header at the start of `bytes` announces.
fn announced(bytes: &[u8]) -> (SocketAddr, SocketAddr) {
    let a = match ppp::HeaderResult::parse(bytes) {
        ppp::HeaderResult::V1(Ok(h)) => {
            sluice::proxy::l4::proxy_protocol::v1_addresses(&h.addresses)
        }
        ppp::HeaderResult::V2(Ok(h)) => sluice::proxy::l4::proxy_protocol::v2_addresses(&h),
        other => panic!("no valid header: {other:?}"),
    }
    .expect("a PROXY header with addresses");
    (a.source, a.destination)
}

#[tokio::test]
async fn tcp_backend_receives_the_proxy_header_it_asked_for() {
    for (version, prefix) in [
        ("V1", b"PROXY TCP4 127.0.0.1 127.0.0.1 ".as_slice()),
        ("V2", b"\r\n\r\n\0\r\nQUIT\n".as_slice()),
    ] {
        let (backend, seen) = recording_backend("b").await;
        let port = free_port();
        let sent: sluice::api::ProxyProtocolVersion = PoolDoc::block(version);
        let pool = tcp_pool("pp", port, &[backend]).spec(|s| s.send_proxy_protocol = Some(sent));
        let _s = Sluice::start(&file(&[pool]));
        let (_, sender) = send_then_half_close(port, b"payload").await;
        let first = seen.lock().unwrap()[0].clone();
        assert!(
            first.starts_with(prefix),
            "{version}: {:?}",
            String::from_utf8_lossy(&first)
        );
        assert!(first.ends_with(b"payload"));
        let listener: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        assert_eq!(
            announced(&first),
            (sender, listener),
            "{version}: the header names the client and the address it connected to"
        );
    }
}

#[tokio::test]
async fn proxy_header_sent_upstream_repeats_the_addresses_a_received_one_announced() {
    for version in ["V1", "V2"] {
        let (backend, seen) = recording_backend("b").await;
        let port = free_port();
        let send = match version {
            "V1" => sluice::api::ProxyProtocolVersion::V1,
            _ => sluice::api::ProxyProtocolVersion::V2,
        };
        let yaml = PoolDoc::tcp("chain", port)
            .endpoints(&[backend])
            .spec(|s| {
                s.listener.proxy_protocol = Some(true);
                s.send_proxy_protocol = Some(send);
            })
            .yaml();
        let _s = Sluice::start(&yaml);
        let mut payload = b"PROXY TCP4 203.0.113.9 198.51.100.1 40000 443\r\n".to_vec();
        payload.extend_from_slice(b"payload");
        send_then_half_close(port, &payload).await;
        let first = seen.lock().unwrap()[0].clone();
        assert_eq!(
            announced(&first),
            (
                "203.0.113.9:40000".parse().unwrap(),
                "198.51.100.1:443".parse().unwrap()
            ),
            "{version}: {:?}",
            String::from_utf8_lossy(&first)
        );
        assert!(first.ends_with(b"payload"));
    }
}

#[tokio::test]
async fn proxy_protocol_client_address_feeds_x_forwarded_for() {
    let b = echo("a");
    let port = free_port();
    let yaml = file(&[PoolDoc::http("pp", port)
        .proxy_protocol()
        .endpoints(&[b.addr()])]);
    let _s = Sluice::start(&yaml);
    let v1 = raw(
        port,
        b"PROXY TCP4 203.0.113.9 10.0.0.1 40000 80\r\nGET /headers HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(v1.contains("x-forwarded-for: 203.0.113.9\n"), "{v1}");
    let mut v2 = sluice::proxy::l4::proxy_protocol::build_header(
        sluice::config::ProxyProtocolVersion::V2,
        "198.51.100.4:4000".parse().unwrap(),
        "10.0.0.1:80".parse().unwrap(),
    );
    v2.extend_from_slice(b"GET /headers HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let out = raw(port, &v2).await;
    assert!(out.contains("x-forwarded-for: 198.51.100.4\n"), "{out}");
    let missing = raw(port, b"GET /headers HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert!(
        missing.is_empty(),
        "a connection without a PROXY header must be closed: {missing}"
    );
}

#[tokio::test]
async fn cookie_affinity_pins_a_client_and_round_robin_holds_without_it() {
    let b = [echo("a"), echo("b"), echo("c")];
    let port = free_port();
    let eps: Vec<_> = b.iter().map(|e| (e.addr(), 1)).collect();
    let _s = Sluice::start(&pool(
        "sticky",
        port,
        "RoundRobin",
        &eps,
        "  sessionAffinity: {type: Cookie, ttl: 10m}\n",
    ));
    let first = get(port, "/", &[]).await;
    let set_cookie = first
        .headers
        .get("set-cookie")
        .expect("affinity cookie set")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(set_cookie.starts_with("sluice-affinity="), "{set_cookie}");
    assert!(
        set_cookie.contains("Max-Age=600") && set_cookie.contains("HttpOnly"),
        "{set_cookie}"
    );
    for e in &b {
        assert!(
            !set_cookie.contains(&e.addr().ip().to_string()),
            "cookie leaks the address: {set_cookie}"
        );
    }
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let pinned = spread(port, 50, &[("cookie", &cookie)]).await;
    assert_eq!(pinned.len(), 1, "{pinned:?}");
    assert_eq!(pinned.keys().next().unwrap(), &first.backend());
    let free = spread(port, 30, &[]).await;
    assert_eq!(
        free.values().copied().collect::<Vec<_>>(),
        vec![10, 10, 10],
        "{free:?}"
    );
}

mod tls {
    use super::*;
    use rustls::pki_types::{CertificateDer, ServerName};
    use tokio_rustls::TlsConnector;

    pub struct Cert {
        pub cert_pem: String,
        pub key_pem: String,
        pub der: CertificateDer<'static>,
    }

    pub fn cert(names: &[&str]) -> Cert {
        cert_until(names, None)
    }

    /// A self-signed certificate for `names`, valid until `not_after` (year, month, day;
    /// rcgen's default without).
    pub fn cert_until(names: &[&str], not_after: Option<(i32, u8, u8)>) -> Cert {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        if let Some((y, m, d)) = not_after {
            params.not_after = rcgen::date_time_ymd(y, m, d);
        }
        let cert = params.self_signed(&key).unwrap();
        Cert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    pub fn write(dir: &std::path::Path, name: &str, c: &Cert) {
        std::fs::write(dir.join(format!("{name}.crt")), &c.cert_pem).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), &c.key_pem).unwrap();
    }

    /// Connects with SNI `name`, trusting `roots`; returns the presented leaf and ALPN.
    pub async fn handshake(
        port: u16,
        name: &str,
        roots: &[&Cert],
        alpn: &[&[u8]],
    ) -> Result<
        (
            CertificateDer<'static>,
            Option<Vec<u8>>,
            tokio_rustls::client::TlsStream<TcpStream>,
        ),
        std::io::Error,
    > {
        let mut store = rustls::RootCertStore::empty();
        for r in roots {
            store.add(r.der.clone()).unwrap();
        }
        let mut config =
            rustls::ClientConfig::builder_with_provider(sluice::config::tls::provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(store)
                .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let connector = TlsConnector::from(Arc::new(config));
        let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        let stream = connector
            .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
            .await?;
        let (_, conn) = stream.get_ref();
        let leaf = conn.peer_certificates().unwrap()[0].clone().into_owned();
        let alpn = conn.alpn_protocol().map(|p| p.to_vec());
        Ok((leaf, alpn, stream))
    }

    /// A minimal ClientHello offering only `version` (no supported_versions extension).
    pub fn client_hello(version: [u8; 2]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&version);
        body.extend_from_slice(&[7u8; 32]);
        body.push(0);
        let suites: &[u8] = &[0xc0, 0x2b, 0xc0, 0x2f, 0xc0, 0x09, 0xc0, 0x13, 0x00, 0x2f];
        body.extend_from_slice(&(suites.len() as u16).to_be_bytes());
        body.extend_from_slice(suites);
        body.extend_from_slice(&[1, 0]);
        // extensions: supported_groups (x25519, secp256r1), ec_point_formats, signature_algorithms
        let ext: &[u8] = &[
            0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x0b, 0x00, 0x02,
            0x01, 0x00, 0x00, 0x0d, 0x00, 0x06, 0x00, 0x04, 0x04, 0x03, 0x08, 0x04,
        ];
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(ext);
        let mut hs = vec![1, 0, (body.len() >> 8) as u8, body.len() as u8];
        hs.extend_from_slice(&body);
        let mut rec = vec![0x16, 0x03, 0x01, (hs.len() >> 8) as u8, hs.len() as u8];
        rec.extend_from_slice(&hs);
        rec
    }
}

fn tls_pool(name: &str, port: u16, host: &str, backend: SocketAddr) -> String {
    PoolDoc::http(name, port)
        .hosts(&[host])
        .tls_files(&format!("{name}.crt"), &format!("{name}.key"))
        .endpoints(&[backend])
        .yaml()
}

#[tokio::test]
async fn certificate_expiry_is_exposed_per_pool_and_server_name_and_follows_a_renewed_file() {
    let (a, b) = (echo("shop"), echo("blog"));
    let shop = tls::cert_until(&["shop.test"], Some((2030, 1, 15)));
    let blog = tls::cert_until(&["blog.test"], Some((2051, 12, 31)));
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    tls::write(dir.path(), "shop", &shop);
    tls::write(dir.path(), "blog", &blog);
    let yaml = [
        tls_pool("shop", port, "shop.test", a.addr()),
        tls_pool("blog", port, "blog.test", b.addr()),
    ]
    .concat();
    let s = Sluice::start_in(dir, &yaml, &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as f64;
    for (pool, name, not_after) in [
        ("default/shop", "shop.test", 1_894_665_600.0),
        ("default/blog", "blog.test", 2_587_593_600.0),
    ] {
        let series = format!(
            "sluice_tls_certificate_expiry_seconds{{pool=\"{pool}\",server_name=\"{name}\"}}"
        );
        let left = s
            .metric(&series)
            .await
            .unwrap_or_else(|| panic!("no {series}"));
        assert!(
            (left - (not_after - now)).abs() < 30.0,
            "{series} = {left}, want about {}",
            not_after - now
        );
    }
    // A renewed certificate file (cert-manager, certbot) is what the metric then shows.
    let renewed = tls::cert_until(&["shop.test"], Some((2040, 6, 1)));
    tls::write(s.dir.path(), "shop", &renewed);
    s.signal("HUP");
    let series =
        "sluice_tls_certificate_expiry_seconds{pool=\"default/shop\",server_name=\"shop.test\"}";
    let want = 2_222_121_600.0 - now;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left = s.metric(series).await.unwrap_or_default();
        if (left - want).abs() < 30.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} = {left} after the renewal, want about {want}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn each_sni_name_gets_its_own_certificate_and_h2_is_negotiated() {
    let (a, b) = (echo("shop"), echo("blog"));
    let (shop, blog) = (tls::cert(&["shop.test"]), tls::cert(&["blog.test"]));
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    tls::write(dir.path(), "shop", &shop);
    tls::write(dir.path(), "blog", &blog);
    let yaml = [
        tls_pool("shop", port, "shop.test", a.addr()),
        tls_pool("blog", port, "blog.test", b.addr()),
    ]
    .concat();
    let s = Sluice::start_in(dir, &yaml, &[]);

    let (leaf, _, _) = tls::handshake(port, "shop.test", &[&shop, &blog], &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(leaf, shop.der);
    let (leaf, alpn, stream) =
        tls::handshake(port, "blog.test", &[&shop, &blog], &[b"h2", b"http/1.1"])
            .await
            .unwrap();
    assert_eq!(leaf, blog.der);
    assert_eq!(alpn.as_deref(), Some(b"h2".as_slice()));

    // HTTP/2 over TLS end to end to the client, with X-Forwarded-Proto: https.
    use http_body_util::{BodyExt, Empty};
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("https://blog.test/headers")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let body = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(body.contains("x-forwarded-proto: https\n"), "{body}");
    drop(s);
}

#[tokio::test]
async fn tls_1_1_only_clients_are_refused() {
    let a = echo("a");
    let c = tls::cert(&["a.test"]);
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    tls::write(dir.path(), "a", &c);
    let _s = Sluice::start_in(dir, &tls_pool("a", port, "a.test", a.addr()), &[]);
    let answer = |version: [u8; 2]| async move {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(&tls::client_hello(version)).await.unwrap();
        let mut buf = [0u8; 8];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        buf[..n].to_vec()
    };
    let tls12 = answer([3, 3]).await;
    assert_eq!(
        tls12.first(),
        Some(&0x16),
        "TLS 1.2 hello should get a ServerHello: {tls12:?}"
    );
    let tls11 = answer([3, 2]).await;
    assert_ne!(
        tls11.first(),
        Some(&0x16),
        "TLS 1.1 hello must not get a ServerHello: {tls11:?}"
    );
}

#[tokio::test]
async fn certificate_replaced_on_disk_is_served_without_restart() {
    let a = echo("a");
    let (old, new) = (tls::cert(&["a.test"]), tls::cert(&["a.test"]));
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    tls::write(&path, "a", &old);
    let _s = Sluice::start_in(dir, &tls_pool("a", port, "a.test", a.addr()), &[]);
    let (leaf, _, _) = tls::handshake(port, "a.test", &[&old, &new], &[])
        .await
        .unwrap();
    assert_eq!(leaf, old.der);
    tls::write(&path, "a", &new);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (leaf, _, _) = tls::handshake(port, "a.test", &[&old, &new], &[])
            .await
            .unwrap();
        if leaf == new.der {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "new certificate not served within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn tls_on_a_tcp_pool_terminates_and_forwards_plain_bytes() {
    let backend = echo_backend().await;
    let c = tls::cert(&["db.test"]);
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    tls::write(dir.path(), "db", &c);
    let yaml = file(&[tcp_pool("db", port, &[backend]).tls_files("db.crt", "db.key")]);
    let _s = Sluice::start_in(dir, &yaml, &[]);
    let (_, _, mut stream) = tls::handshake(port, "db.test", &[&c], &[]).await.unwrap();
    stream.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"ping");
}

#[test]
fn mismatched_certificate_and_key_fail_check_naming_pool_and_file() {
    let (a, b) = (tls::cert(&["a.test"]), tls::cert(&["b.test"]));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.crt"), &a.cert_pem).unwrap();
    std::fs::write(dir.path().join("a.key"), &b.key_pem).unwrap();
    let file = dir.path().join("pools.yaml");
    std::fs::write(
        &file,
        tls_pool("a", 8443, "a.test", "127.0.0.1:9".parse().unwrap()),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pool default/a")
            && err.contains("a.crt")
            && err.contains("spec.listener.tls"),
        "{err}"
    );
}
