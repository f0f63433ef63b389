//! HTTPS backends (`spec.upstream.tls`) through the real binary: certificate verification
//! against a CA file or skipped, kept-alive TLS connections, bodies both ways, HTTP/1.1
//! trailers, and what `sluice check` says about mistakes in `spec.upstream`.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use common::*;
use http::StatusCode;
use http_body_util::{BodyExt, Full};

/// A CA and a certificate for `backend.test` it signed (PEM).
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn pki() -> Pki {
    let ca = common::TestCa::new();
    let (cert_pem, key_pem) = ca.leaf("backend.test");
    Pki {
        ca_pem: ca.pem,
        cert_pem,
        key_pem,
    }
}

/// An HTTPS (HTTP/1.1) backend answering `name <method> <path> <body bytes>` with a
/// trailer `x-backend-trailer: done` when the request accepts trailers; counts TLS
/// connections.
async fn https_backend(name: &'static str, pki: &Pki) -> (SocketAddr, Arc<AtomicUsize>) {
    use rustls_pki_types::pem::PemObject;
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(pki.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(pki.key_pem.as_bytes()).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                let service = hyper::service::service_fn(
                    move |req: http::Request<hyper::body::Incoming>| async move {
                        let head = format!("{name} {} {}", req.method(), req.uri().path());
                        let trailers = req.headers().get("te").is_some_and(|v| v == "trailers");
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let text = Bytes::from(format!("{head} {}", body.len()));
                        let mut frames = vec![Ok::<_, Infallible>(http_body::Frame::data(text))];
                        if trailers {
                            let mut t = http::HeaderMap::new();
                            t.insert("x-backend-trailer", "done".parse().unwrap());
                            frames.push(Ok(http_body::Frame::trailers(t)));
                        }
                        let body =
                            http_body_util::StreamBody::new(futures_util::stream::iter(frames));
                        // hyper sends only the trailer fields its response announces.
                        let mut resp = http::Response::new(body);
                        resp.headers_mut()
                            .insert("trailer", "x-backend-trailer".parse().unwrap());
                        Ok::<_, Infallible>(resp)
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, connections)
}

/// Serves `docs` from a directory holding `ca_pem` as `ca.pem`.
fn start_with_ca(docs: &[PoolDoc], ca_pem: &str) -> Sluice {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca_pem).unwrap();
    Sluice::start_in(dir, &file(docs), &[])
}

fn upstream(yaml: &str) -> Option<sluice::api::UpstreamSpec> {
    Some(PoolDoc::block(yaml))
}

#[tokio::test]
async fn https_backend_serves_many_requests_on_one_kept_alive_connection() {
    let pki = pki();
    let (backend, connections) = https_backend("secure", &pki).await;
    let port = free_port();
    let _sluice = start_with_ca(
        &[PoolDoc::http("web", port)
            .endpoints(&[backend])
            .spec(|s| s.upstream = upstream("tls: {serverName: backend.test, caFile: ca.pem}"))],
        &pki.ca_pem,
    );
    for i in 0..5 {
        let resp = get(port, &format!("/item/{i}"), &[]).await;
        assert_eq!(resp.status, StatusCode::OK);
        assert_eq!(resp.body, format!("secure GET /item/{i} 0"));
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn large_uploads_and_trailers_cross_an_https_backend() {
    let pki = pki();
    let (backend, _) = https_backend("secure", &pki).await;
    let port = free_port();
    let _sluice = start_with_ca(
        &[PoolDoc::http("web", port)
            .endpoints(&[backend])
            .spec(|s| s.upstream = upstream("tls: {serverName: backend.test, caFile: ca.pem}"))],
        &pki.ca_pem,
    );
    // Over h2c from the client, so the response trailers have somewhere to go.
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let body = Bytes::from(vec![b'x'; 300_000]);
    let req = http::Request::post(format!("http://app.test:{port}/upload"))
        .header("te", "trailers")
        .body(Full::new(body))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    assert_eq!(collected.to_bytes(), "secure POST /upload 300000");
    assert_eq!(
        trailers.and_then(|t| t.get("x-backend-trailer").cloned()),
        Some("done".parse().unwrap())
    );
}

#[tokio::test]
async fn insecure_skip_verify_reaches_a_backend_whatever_its_certificate() {
    let pki = pki();
    let (backend, _) = https_backend("any", &pki).await;
    let port = free_port();
    let _sluice = Sluice::start(&file(&[PoolDoc::http("web", port)
        .endpoints(&[backend])
        .spec(|s| s.upstream = upstream("tls: {insecureSkipVerify: true}"))]));
    let resp = get(port, "/", &[]).await;
    assert_eq!(
        (resp.status, resp.body.as_str()),
        (StatusCode::OK, "any GET / 0")
    );
}

#[tokio::test]
async fn a_backend_certificate_for_another_name_is_refused_with_502() {
    let pki = pki();
    let (backend, _) = https_backend("secure", &pki).await;
    let port = free_port();
    let _sluice = start_with_ca(
        &[PoolDoc::http("web", port)
            .endpoints(&[backend])
            .spec(|s| s.upstream = upstream("tls: {serverName: other.test, caFile: ca.pem}"))],
        &pki.ca_pem,
    );
    assert_eq!(get(port, "/", &[]).await.status, StatusCode::BAD_GATEWAY);
}

#[test]
fn check_names_pool_and_field_for_each_upstream_mistake() {
    let port = free_port();
    let yaml = file(&[
        PoolDoc::http("auto", port)
            .endpoints(&[])
            .spec(|s| s.upstream = upstream("protocol: auto")),
        PoolDoc::http("secret", port)
            .path_prefix("/secret")
            .endpoints(&[])
            .spec(|s| s.upstream = upstream("tls: {caSecretName: web-ca}")),
        PoolDoc::http("both", port)
            .path_prefix("/both")
            .endpoints(&[])
            .spec(|s| {
                s.upstream = upstream(
                    "tls: {insecureSkipVerify: true, caFile: ca.pem, serverName: 'no such name'}",
                )
            }),
        PoolDoc::tcp("tcp", free_port())
            .endpoints(&[])
            .spec(|s| s.upstream = upstream("protocol: HTTP2")),
    ]);
    let (code, err, path) = check_file(&yaml);
    assert_eq!(code, Some(1), "{err}");
    for expected in [
        String::from(": pool default/auto: spec.upstream.protocol: auto is negotiated by ALPN"),
        String::from(
            ": pool default/secret: spec.upstream.tls.caSecretName: needs Kubernetes mode",
        ),
        String::from(": pool default/both: spec.upstream.tls.insecureSkipVerify: verifies nothing"),
        String::from(
            ": pool default/both: spec.upstream.tls.serverName: \"no such name\" is not a DNS name",
        ),
        String::from(": pool default/tcp: spec.upstream: only for protocol HTTP"),
    ] {
        assert!(err.contains(&expected), "{expected}\nmissing from:\n{err}");
    }
    assert!(
        err.lines().all(|l| l.starts_with(&format!("{path}:"))),
        "every error names the file (and its line): {err}"
    );
}

#[test]
fn check_reads_the_ca_file_and_names_it_when_unusable() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), "not a certificate").unwrap();
    let config = dir.path().join("pools.yaml");
    let yaml = file(&[
        PoolDoc::http("garbage", port)
            .endpoints(&[])
            .spec(|s| s.upstream = upstream("tls: {caFile: ca.pem}")),
        PoolDoc::http("missing", port)
            .path_prefix("/missing")
            .endpoints(&[])
            .spec(|s| s.upstream = upstream("tls: {caFile: nowhere.pem}")),
    ]);
    std::fs::write(&config, yaml).unwrap();
    let path = config.display().to_string();
    let (code, _, err) = sluice_check(&["--config", &path], "");
    assert_eq!(code, Some(1), "{err}");
    let ca = dir.path().join("ca.pem").display().to_string();
    let nowhere = dir.path().join("nowhere.pem").display().to_string();
    assert!(
        err.contains(&format!(
            ": pool default/garbage: spec.upstream.tls.caFile: {ca}: CA certificates: no PEM certificate found"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            ": pool default/missing: spec.upstream.tls.caFile: cannot read {nowhere}"
        )),
        "{err}"
    );
    assert!(
        err.lines().all(|l| l.starts_with(&format!("{path}:"))),
        "every error names the file and its line: {err}"
    );
}

#[tokio::test]
async fn a_streamed_upload_moves_to_another_https_endpoint_when_the_connect_fails() {
    let pki = pki();
    let (backend, _) = https_backend("secure", &pki).await;
    let dead: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let port = free_port();
    let _sluice = start_with_ca(
        &[PoolDoc::http("web", port)
            .endpoints(&[dead, backend])
            .spec(|s| s.upstream = upstream("tls: {serverName: backend.test, caFile: ca.pem}"))],
        &pki.ca_pem,
    );
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    // Round robin puts the dead endpoint first for some of these; each body (over 64 KiB,
    // so streamed, never kept for a replay) still reaches the live one, since nothing of it
    // was sent before the connect failed.
    for _ in 0..4 {
        let req = http::Request::post(format!("http://app.test:{port}/upload"))
            .body(Full::new(Bytes::from(vec![b'x'; 100_000])))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "secure POST /upload 100000");
    }
}
