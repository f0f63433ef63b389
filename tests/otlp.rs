//! `--otlp-endpoint`: one span per request reaches an OTLP/HTTP collector, in the trace the
//! client started, as the parent the backend was told about.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// Every POST a fake collector received: (path, body).
type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A fake collector recording every POST; over TLS with `tls` (a server configuration).
async fn collector(tls: Option<Arc<rustls::ServerConfig>>) -> (u16, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Seen::default();
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (record, tls) = (record.clone(), tls.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let record = record.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes().to_vec())
                            .unwrap_or_default();
                        record.lock().unwrap().push((path, body));
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::new(),
                        )))
                    }
                });
                let http1 = hyper::server::conn::http1::Builder::new();
                match tls {
                    None => {
                        let _ = http1.serve_connection(TokioIo::new(stream), service).await;
                    }
                    Some(config) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(config);
                        if let Ok(stream) = acceptor.accept(stream).await {
                            let _ = http1.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                }
            });
        }
    });
    (port, seen)
}

/// A CA (its PEM) and a server configuration for `127.0.0.1` with a certificate it signed.
fn collector_tls() -> (String, Arc<rustls::ServerConfig>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, &ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key_der)
    .unwrap();
    (ca.pem(), Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_exports_a_span_in_the_clients_trace() {
    let (otlp, seen) = collector(None).await;
    let b = echo("a");
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{otlp}");
    let _s = Sluice::start_with(
        &pool("traced", port, "RoundRobin", &[(b.addr(), 1)], ""),
        &["--otlp-endpoint", &endpoint],
    );
    assert_span_exported(port, &seen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_https_collector_the_system_trust_store_vouches_for() {
    let (ca_pem, config) = collector_tls();
    let (otlp, seen) = collector(Some(config)).await;
    let b = echo("a");
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let endpoint = format!("https://127.0.0.1:{otlp}");
    let _s = Sluice::start_in_env(
        dir,
        &pool("traced", port, "RoundRobin", &[(b.addr(), 1)], ""),
        &["--otlp-endpoint", &endpoint],
        &[("SSL_CERT_FILE", &ca)],
    );
    assert_span_exported(port, &seen).await;
}

/// Sends a request with a `traceparent` through sluice on `port` and waits for its span
/// at the collector that records into `seen`.
async fn assert_span_exported(port: u16, seen: &Seen) {
    let r = get(
        port,
        "/headers",
        &[(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )],
    )
    .await;
    let upstream = r
        .body
        .lines()
        .find_map(|l| l.strip_prefix("traceparent: "))
        .expect("traceparent forwarded")
        .to_owned();
    assert!(
        upstream.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{upstream}"
    );
    let our_span = hex(&upstream[36..52]);
    let trace = hex("4bf92f3577b34da6a3ce929d0e0e4736");
    let client_span = hex("00f067aa0ba902b7");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        {
            let seen = seen.lock().unwrap();
            if let Some((path, body)) = seen.iter().find(|(_, body)| contains(body, &trace)) {
                assert_eq!(path, "/v1/traces");
                assert!(
                    contains(body, &our_span),
                    "the exported span is not the parent the backend saw"
                );
                assert!(
                    contains(body, &client_span),
                    "the exported span does not name the client's span as parent"
                );
                assert!(contains(body, b"traced"), "pool attribute missing");
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no span exported within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn an_otlp_endpoint_that_is_not_http_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pools.yaml");
    let backend = "127.0.0.1:9".parse().unwrap();
    let yaml = pool("traced", free_port(), "RoundRobin", &[(backend, 1)], "");
    std::fs::write(&config, yaml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .args(["--admin-listen", "127.0.0.1:0"])
        .args(["--otlp-endpoint", "ftp://127.0.0.1:4318"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("--otlp-endpoint ftp://127.0.0.1:4318: expected an http:// or https:// URL"),
        "{stderr}"
    );
}
