//! `spec.upstream`: defaults, the CA source each mode takes, and the mistakes refused.

use super::*;
use crate::config::{UpstreamConfig, UpstreamProtocol, UpstreamTls, UpstreamTrust};

#[test]
fn upstream_defaults_to_plain_http1() {
    let p = one(&["listener: {port: 8080}", EP]);
    assert_eq!(p.upstream, UpstreamConfig::default());
    assert!(p.upstream.is_plain_http1());
    let p = one(&["listener: {port: 8080}", EP, "upstream: {}"]);
    assert!(p.upstream.is_plain_http1());
}

#[test]
fn tls_without_a_ca_trusts_the_system_store_and_ca_file_is_relative_to_the_config() {
    let p = one(&[
        "listener: {port: 8080}",
        EP,
        "upstream: {protocol: HTTP2, tls: {}}",
    ]);
    assert_eq!(p.upstream.protocol, UpstreamProtocol::Http2);
    assert_eq!(
        p.upstream.tls,
        Some(UpstreamTls {
            server_name: None,
            trust: UpstreamTrust::System
        })
    );
    let p = one(&[
        "listener: {port: 8080}",
        EP,
        "upstream: {protocol: auto, tls: {serverName: web.internal, caFile: ca.pem}}",
    ]);
    assert_eq!(p.upstream.protocol, UpstreamProtocol::Auto);
    assert_eq!(
        p.upstream.tls,
        Some(UpstreamTls {
            server_name: Some("web.internal".into()),
            trust: UpstreamTrust::CaFile(PathBuf::from("conf/ca.pem"))
        })
    );
}

#[test]
fn insecure_skip_verify_trusts_anything() {
    let p = one(&[
        "listener: {port: 8080}",
        EP,
        "upstream: {tls: {insecureSkipVerify: true}}",
    ]);
    assert_eq!(
        p.upstream.tls.map(|t| t.trust),
        Some(UpstreamTrust::InsecureSkipVerify)
    );
}

#[test]
fn upstream_mistakes_are_refused_on_their_field() {
    assert_one_problem(
        &["listener: {port: 8080}", EP, "upstream: {protocol: auto}"],
        "spec.upstream.protocol: auto is negotiated by ALPN and needs upstream.tls (choose HTTP1 or HTTP2 for plain-text backends)",
    );
    assert_one_problem(
        &[
            "listener: {port: 8080}",
            EP,
            "upstream: {tls: {caSecretName: ca}}",
        ],
        "spec.upstream.tls.caSecretName: needs Kubernetes mode; standalone mode reads caFile",
    );
    assert_one_problem(
        &[
            "listener: {port: 8080}",
            EP,
            "upstream: {tls: {caSecretName: ca, caFile: ca.pem}}",
        ],
        "spec.upstream.tls: set caSecretName (Kubernetes mode) or caFile (standalone mode), not both",
    );
    assert_one_problem(
        &[
            "listener: {port: 8080}",
            EP,
            "upstream: {tls: {insecureSkipVerify: true, caFile: ca.pem}}",
        ],
        "spec.upstream.tls.insecureSkipVerify: verifies nothing: leave out caSecretName and caFile",
    );
    assert_one_problem(
        &[
            "listener: {port: 8080}",
            EP,
            "upstream: {tls: {serverName: 'a b'}}",
        ],
        r#"spec.upstream.tls.serverName: "a b" is not a DNS name or an IP address"#,
    );
    assert_one_problem(
        &[
            "protocol: TCP",
            "listener: {port: 8080}",
            EP,
            "upstream: {protocol: HTTP2}",
        ],
        "spec.upstream: only for protocol HTTP",
    );
}

#[test]
fn kubernetes_mode_reads_the_ca_secret_and_refuses_a_ca_file() {
    let pool = doc(
        "web",
        &[
            "listener: {port: 8080}",
            EP,
            "upstream: {tls: {caSecretName: web-ca}}",
        ],
    );
    let tls = |_: &str, _: &str| Err("unused".to_owned());
    let ca = |ns: &str, name: &str| match name {
        "web-ca" => Ok(Arc::from(b"PEM".to_vec())),
        _ => Err(format!("Secret {ns}/{name} not found")),
    };
    let lookups = Lookups {
        tls: &tls,
        ca: &ca,
        htpasswd: &|_, _| Ok(Arc::from(Vec::new())),
    };
    let set =
        validate_with_lookups(&Source::Kubernetes, std::slice::from_ref(&pool), &lookups).unwrap();
    assert!(matches!(
        &set.pools[0].upstream.tls,
        Some(UpstreamTls { trust: UpstreamTrust::CaPem(pem), .. }) if &pem[..] == b"PEM"
    ));
    let missing = doc(
        "web",
        &[
            "listener: {port: 8080}",
            EP,
            "upstream: {tls: {caSecretName: other}}",
        ],
    );
    let Err(e) = validate_with_lookups(&Source::Kubernetes, &[missing], &lookups) else {
        panic!("a missing CA Secret is an error");
    };
    assert_eq!(
        e.to_string(),
        "pool default/web: spec.upstream.tls.caSecretName: Secret default/other not found"
    );
    let file = doc(
        "web",
        &[
            "listener: {port: 8080}",
            EP,
            "upstream: {tls: {caFile: ca.pem}}",
        ],
    );
    let Err(e) = validate_with_lookups(&Source::Kubernetes, &[file], &lookups) else {
        panic!("caFile is for standalone mode");
    };
    assert_eq!(
        e.to_string(),
        "pool default/web: spec.upstream.tls.caFile: is for standalone mode; Kubernetes mode reads caSecretName"
    );
}

#[test]
fn grpc_health_checks_take_no_path() {
    let p = one(&[
        "listener: {port: 8080}",
        EP,
        "healthCheck: {protocol: GRPC}",
    ]);
    assert_eq!(p.health_check.map(|h| h.kind), Some(HealthCheckKind::Grpc));
    assert_one_problem(
        &[
            "listener: {port: 8080}",
            EP,
            "healthCheck: {protocol: GRPC, path: /healthz}",
        ],
        "spec.healthCheck.path: only for HTTP health checks",
    );
}
