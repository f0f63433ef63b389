//! Validation tests: one per rule, plus a proptest that arbitrary specs never panic.

use std::path::PathBuf;

use super::*;
use crate::config::{
    AffinityConfig, Algorithm, EndpointConfig, HashKey, HealthCheckConfig, HealthCheckKind,
    HostMatch, RetryConfig, Timeouts,
};

mod auth;
mod cross_pool;
mod props;
mod traffic;
mod upstream;

const EP: &str = r#"endpoints: [{address: "127.0.0.1:9001"}]"#;

/// A BackendPool document named `name` whose spec is the given YAML lines.
fn doc(name: &str, spec: &[&str]) -> BackendPool {
    let mut text = format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {{name: {name}}}\nspec:\n"
    );
    for line in spec {
        text.push_str("  ");
        text.push_str(line);
        text.push('\n');
    }
    match crate::config::parse_documents("test.yaml", &text) {
        Ok(mut pools) if pools.len() == 1 => pools.remove(0),
        other => panic!("test document does not parse: {other:?}\n{text}"),
    }
}

fn file() -> Source {
    Source::File("conf/pools.yaml".into())
}

fn ok(source: &Source, pools: &[BackendPool]) -> ConfigSet {
    match validate(source, pools) {
        Ok(set) => set,
        Err(e) => panic!("expected valid, got:\n{e}"),
    }
}

fn one(spec: &[&str]) -> PoolConfig {
    let set = ok(&file(), &[doc("web", spec)]);
    (*set.pools[0]).clone()
}

fn errors(source: &Source, pools: &[BackendPool]) -> Vec<String> {
    match validate(source, pools) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.0.into_iter().map(|e| e.message).collect(),
    }
}

/// Validates one pool `default/web` from `conf/pools.yaml` and returns its error messages
/// with the `conf/pools.yaml: pool default/web: ` prefix removed.
fn problems(spec: &[&str]) -> Vec<String> {
    errors(&file(), &[doc("web", spec)])
        .into_iter()
        .map(|m| {
            m.strip_prefix("conf/pools.yaml: pool default/web: ")
                .unwrap_or_else(|| panic!("unexpected prefix: {m}"))
                .to_owned()
        })
        .collect()
}

fn assert_one_problem(spec: &[&str], expected: &str) {
    assert_eq!(problems(spec), [expected]);
}

// --- defaults -------------------------------------------------------------------------

#[test]
fn minimal_pool_takes_every_contract_default() {
    let p = one(&["listener: {port: 8080}", EP]);
    assert_eq!(p.name, "default/web");
    assert_eq!(p.protocol, Protocol::Http);
    assert_eq!(p.listener.port, 8080);
    assert_eq!(p.listener.hosts, []);
    assert_eq!(p.listener.path_prefix, "/");
    assert_eq!(p.listener.tls, None);
    assert!(!p.listener.proxy_protocol);
    assert_eq!(
        p.endpoints,
        [EndpointConfig {
            address: "127.0.0.1:9001".parse().unwrap(),
            weight: 1,
            ready: true,
        }]
    );
    assert_eq!(p.algorithm, Algorithm::RoundRobin);
    assert_eq!(p.health_check, None);
    assert_eq!(p.outlier_detection, None);
    assert_eq!(p.retry, None);
    assert_eq!(p.affinity, None);
    assert_eq!(
        p.timeouts,
        Timeouts {
            connect: Duration::from_secs(2),
            request: Duration::from_secs(30),
            idle: Duration::from_secs(60),
        }
    );
    assert_eq!(p.drain_timeout, Duration::from_secs(30));
    assert_eq!(p.max_connections_per_endpoint, None);
    assert_eq!(p.send_proxy_protocol, ProxyProtocolVersion::None);
}

#[test]
fn empty_health_check_block_takes_contract_defaults() {
    let p = one(&["listener: {port: 8080}", EP, "healthCheck: {}"]);
    assert_eq!(
        p.health_check,
        Some(HealthCheckConfig {
            kind: HealthCheckKind::Http {
                path: "/healthz".into(),
                expected: vec![(200, 399)],
            },
            port: None,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            fail_open: false,
        })
    );
}

#[test]
fn empty_outlier_detection_block_takes_contract_defaults() {
    let p = one(&["listener: {port: 8080}", EP, "outlierDetection: {}"]);
    assert_eq!(
        p.outlier_detection,
        Some(OutlierConfig {
            consecutive_failures: 5,
            base_ejection_time: Duration::from_secs(30),
            max_ejection_percent: 50,
        })
    );
}

#[test]
fn empty_retry_block_takes_contract_defaults() {
    let p = one(&["listener: {port: 8080}", EP, "retry: {}"]);
    assert_eq!(
        p.retry,
        Some(RetryConfig {
            attempts: 2,
            backoff_base: Duration::from_millis(25),
            backoff_max: Duration::from_secs(1),
            on_connect_failure: true,
            on_reset: true,
            on_5xx: true,
            on_timeout: false,
            on_statuses: Vec::new(),
            non_idempotent: false,
            within: None,
            budget_ratio: 0.2,
            budget_min_per_second: 10,
        })
    );
}

#[test]
fn retry_on_lists_only_the_named_failures() {
    let p = one(&[
        "listener: {port: 8080}",
        EP,
        "retry: {retryOn: [ConnectFailure], attempts: 0}",
    ]);
    let r = p.retry.unwrap();
    assert_eq!(
        (r.attempts, r.on_connect_failure, r.on_reset, r.on_5xx),
        (0, true, false, false)
    );
}

#[test]
fn cookie_affinity_takes_contract_defaults() {
    let p = one(&[
        "listener: {port: 8080}",
        EP,
        "sessionAffinity: {type: Cookie}",
    ]);
    assert_eq!(
        p.affinity,
        Some(AffinityConfig::Cookie {
            name: "sluice-affinity".into(),
            ttl: Duration::from_secs(3600),
        })
    );
}

#[test]
fn affinity_type_none_or_left_out_means_no_affinity() {
    let none = one(&[
        "listener: {port: 8080}",
        EP,
        "sessionAffinity: {type: None}",
    ]);
    let left_out = one(&["listener: {port: 8080}", EP, "sessionAffinity: {ttl: 5m}"]);
    assert_eq!((none.affinity, left_out.affinity), (None, None));
}

#[test]
fn max_connections_zero_means_unlimited() {
    let zero = one(&["listener: {port: 8080}", EP, "maxConnectionsPerEndpoint: 0"]);
    let ten = one(&[
        "listener: {port: 8080}",
        EP,
        "maxConnectionsPerEndpoint: 10",
    ]);
    assert_eq!(
        (
            zero.max_connections_per_endpoint,
            ten.max_connections_per_endpoint
        ),
        (None, Some(10))
    );
}

#[test]
fn given_values_replace_defaults() {
    let p = one(&[
        "protocol: TCP",
        "listener: {port: 5432, proxyProtocol: true}",
        r#"endpoints: [{address: "[::1]:5432", weight: 7}]"#,
        "algorithm: LeastConnections",
        "healthCheck: {protocol: TCP, port: 9000, interval: 1m30s, timeout: 250ms, healthyThreshold: 1, unhealthyThreshold: 1, failOpen: true}",
        "timeouts: {connect: 1s}",
        "drainTimeout: 0s",
        "sendProxyProtocol: V2",
    ]);
    assert_eq!(p.protocol, Protocol::Tcp);
    assert!(p.listener.proxy_protocol);
    assert_eq!(p.endpoints[0].weight, 7);
    assert_eq!(p.algorithm, Algorithm::LeastConnections);
    let hc = p.health_check.unwrap();
    assert_eq!(hc.kind, HealthCheckKind::Tcp);
    assert_eq!(hc.port, Some(9000));
    assert_eq!(hc.interval, Duration::from_secs(90));
    assert_eq!(hc.timeout, Duration::from_millis(250));
    assert!(hc.fail_open);
    assert_eq!(p.timeouts.connect, Duration::from_secs(1));
    assert_eq!(p.timeouts.request, Duration::from_secs(30));
    assert_eq!(p.drain_timeout, Duration::ZERO);
    assert_eq!(p.send_proxy_protocol, ProxyProtocolVersion::V2);
}

// --- error reporting ------------------------------------------------------------------

#[test]
fn error_names_file_pool_and_field_path() {
    let errs = errors(
        &file(),
        &[doc(
            "web",
            &["listener: {port: 8080}", EP, "healthCheck: {interval: 5x}"],
        )],
    );
    assert_eq!(
        errs,
        [
            r#"conf/pools.yaml: pool default/web: spec.healthCheck.interval: invalid duration "5x" (expected 250ms, 5s, 1m, 1h)"#
        ]
    );
}

#[test]
fn kubernetes_errors_have_no_file_part() {
    let errs = errors(
        &Source::Kubernetes,
        &[doc("web", &["listener: {port: 0}", EP])],
    );
    assert_eq!(
        errs,
        ["pool default/web: spec.listener.port: must be 1..=65535, got 0"]
    );
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let errs = problems(&[
        "listener: {port: 70000, pathPrefix: api}",
        r#"endpoints: [{address: "nowhere"}, {address: "127.0.0.1:1", weight: 0}]"#,
        "timeouts: {idle: forever}",
    ]);
    assert_eq!(
        errs,
        [
            "spec.listener.port: must be 1..=65535, got 70000",
            r#"spec.listener.pathPrefix: "api" must start with "/""#,
            r#"spec.endpoints[0].address: invalid address "nowhere" (expected ip:port (IPv6 as [::1]:80) or host:port)"#,
            "spec.endpoints[1].weight: must be 1..=1000, got 0",
            r#"spec.timeouts.idle: invalid duration "forever" (expected 250ms, 5s, 1m, 1h)"#,
        ]
    );
}

#[test]
fn errors_carry_the_pool_and_field_for_the_controller() {
    let Err(e) = validate(
        &Source::Kubernetes,
        &[doc("web", &["listener: {port: 0}", EP])],
    ) else {
        panic!("expected errors");
    };
    assert_eq!(e.0[0].pool.as_deref(), Some("default/web"));
    assert_eq!(e.0[0].field.as_deref(), Some("spec.listener.port"));
}

// --- per-pool rules -------------------------------------------------------------------

#[test]
fn port_must_be_1_to_65535() {
    assert_one_problem(
        &["listener: {port: 0}", EP],
        "spec.listener.port: must be 1..=65535, got 0",
    );
    assert_one_problem(
        &["listener: {port: 65536}", EP],
        "spec.listener.port: must be 1..=65535, got 65536",
    );
    assert_eq!(one(&["listener: {port: 65535}", EP]).listener.port, 65535);
}

#[test]
fn endpoint_address_must_be_ip_and_port_or_host_and_port() {
    assert_one_problem(
        &[
            "listener: {port: 8080}",
            r#"endpoints: [{address: "local_host:80"}]"#,
        ],
        r#"spec.endpoints[0].address: invalid address "local_host:80" (expected ip:port (IPv6 as [::1]:80) or host:port)"#,
    );
    assert_one_problem(
        &[
            "listener: {port: 8080}",
            r#"endpoints: [{address: "api.internal"}]"#,
        ],
        r#"spec.endpoints[0].address: invalid address "api.internal" (expected ip:port (IPv6 as [::1]:80) or host:port)"#,
    );
    assert_one_problem(
        &[
            "listener: {port: 8080}",
            r#"endpoints: [{address: "api.internal:0"}]"#,
        ],
        r#"spec.endpoints[0].address: "api.internal:0" needs a port 1..=65535 (expected ip:port (IPv6 as [::1]:80) or host:port)"#,
    );
    assert_one_problem(
        &[
            "listener: {port: 8080}",
            r#"endpoints: [{address: "10.0.0.1:0"}]"#,
        ],
        r#"spec.endpoints[0].address: "10.0.0.1:0" has port 0"#,
    );
}

#[test]
fn duplicate_endpoint_is_rejected() {
    assert_one_problem(
        &[
            "listener: {port: 8080}",
            r#"endpoints: [{address: "127.0.0.1:9001"}, {address: "127.0.0.1:9001", weight: 2}]"#,
        ],
        "spec.endpoints[1].address: 127.0.0.1:9001 is already listed as spec.endpoints[0]",
    );
}

#[test]
fn weight_must_be_1_to_1000() {
    assert_one_problem(
        &[
            "listener: {port: 8080}",
            r#"endpoints: [{address: "127.0.0.1:1", weight: 1001}]"#,
        ],
        "spec.endpoints[0].weight: must be 1..=1000, got 1001",
    );
    let p = one(&[
        "listener: {port: 8080}",
        r#"endpoints: [{address: "127.0.0.1:1", weight: 1000}]"#,
    ]);
    assert_eq!(p.endpoints[0].weight, 1000);
}

#[test]
fn pool_without_service_or_endpoints_is_rejected() {
    assert_one_problem(
        &["listener: {port: 8080}"],
        "spec.endpoints: required (an empty list is allowed: the pool then answers 503)",
    );
    let errs = errors(
        &Source::Kubernetes,
        &[doc("web", &["listener: {port: 8080}"])],
    );
    assert_eq!(
        errs,
        ["pool default/web: spec.endpoints: either spec.service or spec.endpoints is required"]
    );
}

#[test]
fn standalone_cannot_resolve_a_service_alone() {
    assert_one_problem(
        &["listener: {port: 8080}", "service: {name: web, port: 80}"],
        "spec.service: standalone mode cannot resolve Services; list static spec.endpoints",
    );
}

#[test]
fn kubernetes_accepts_a_service_alone() {
    let set = ok(
        &Source::Kubernetes,
        &[doc(
            "web",
            &["listener: {port: 8080}", "service: {name: web, port: http}"],
        )],
    );
    assert_eq!(set.pools[0].endpoints, []);
}

#[test]
fn service_reference_is_checked() {
    let errs = errors(
        &Source::Kubernetes,
        &[doc(
            "web",
            &["listener: {port: 8080}", "service: {name: Web_1, port: 0}"],
        )],
    );
    assert_eq!(
        errs,
        [
            r#"pool default/web: spec.service.name: "Web_1" is not a valid Service name"#,
            "pool default/web: spec.service.port: must be 1..=65535, got 0",
        ]
    );
}

#[test]
fn hosts_and_path_prefix_are_http_only_but_tls_is_allowed_on_tcp() {
    assert_eq!(
        problems(&[
            "protocol: TCP",
            "listener: {port: 5432, hosts: [db.example], pathPrefix: /, tls: {certFile: c, keyFile: k}}",
            EP,
        ]),
        [
            "spec.listener.hosts: only for protocol HTTP",
            "spec.listener.pathPrefix: only for protocol HTTP",
        ]
    );
}

#[test]
fn path_prefix_must_start_with_a_slash() {
    assert_one_problem(
        &["listener: {port: 8080, pathPrefix: api}", EP],
        r#"spec.listener.pathPrefix: "api" must start with "/""#,
    );
    assert_one_problem(
        &["listener: {port: 8080, pathPrefix: \"/a?b\"}", EP],
        r#"spec.listener.pathPrefix: "/a?b" must be a path (no query, fragment or whitespace)"#,
    );
}

#[test]
fn path_prefix_trailing_slash_is_stripped_except_for_root() {
    let prefix = |p: &str| {
        one(&[
            &format!("listener: {{port: 8080, pathPrefix: \"{p}\"}}"),
            EP,
        ])
        .listener
        .path_prefix
    };
    assert_eq!(prefix("/api/"), "/api");
    assert_eq!(prefix("/api"), "/api");
    assert_eq!(prefix("/"), "/");
    assert_eq!(prefix("//"), "/");
}

#[test]
fn hosts_are_lower_cased_and_wildcards_hold_the_dotted_suffix() {
    let p = one(&[
        "listener: {port: 8080, hosts: [Shop.Example, \"*.Example.COM\", shop.example]}",
        EP,
    ]);
    assert_eq!(
        p.listener.hosts,
        [
            HostMatch::Exact("shop.example".into()),
            HostMatch::Wildcard(".example.com".into()),
        ]
    );
}

#[test]
fn invalid_hosts_are_rejected() {
    assert_eq!(
        problems(&[
            r#"listener: {port: 8080, hosts: ["shop.example:8080", "a.*.example", "*", "-bad.example", "under_score.example"]}"#,
            EP,
        ]),
        [
            r#"spec.listener.hosts[0]: invalid host "shop.example:8080": a host must not include a port"#,
            r#"spec.listener.hosts[1]: invalid host "a.*.example" (expected a DNS name like shop.example or a wildcard like *.example.com)"#,
            r#"spec.listener.hosts[2]: invalid host "*" (expected a DNS name like shop.example or a wildcard like *.example.com)"#,
            r#"spec.listener.hosts[3]: invalid host "-bad.example" (expected a DNS name like shop.example or a wildcard like *.example.com)"#,
            r#"spec.listener.hosts[4]: invalid host "under_score.example" (expected a DNS name like shop.example or a wildcard like *.example.com)"#,
        ]
    );
}

#[test]
fn standalone_tls_needs_cert_and_key_files() {
    assert_one_problem(
        &["listener: {port: 8443, tls: {certFile: cert.pem}}", EP],
        "spec.listener.tls.keyFile: required with certFile",
    );
    assert_one_problem(
        &["listener: {port: 8443, tls: {keyFile: key.pem}}", EP],
        "spec.listener.tls.certFile: required with keyFile",
    );
    assert_one_problem(
        &["listener: {port: 8443, tls: {}}", EP],
        "spec.listener.tls: certFile and keyFile are required",
    );
}

#[test]
fn standalone_tls_with_only_a_secret_name_is_rejected() {
    assert_one_problem(
        &["listener: {port: 8443, tls: {secretName: web-tls}}", EP],
        "spec.listener.tls: secretName needs Kubernetes mode; standalone mode needs certFile and keyFile",
    );
}

#[test]
fn standalone_tls_paths_resolve_against_the_config_directory() {
    let p = one(&[
        "listener: {port: 8443, tls: {certFile: tls/cert.pem, keyFile: /etc/key.pem, secretName: ignored}}",
        EP,
    ]);
    assert_eq!(
        p.listener.tls,
        Some(TlsConfig::Files {
            cert: PathBuf::from("conf/tls/cert.pem"),
            key: PathBuf::from("/etc/key.pem"),
        })
    );
}

#[test]
fn kubernetes_tls_needs_a_secret_name() {
    let errs = errors(
        &Source::Kubernetes,
        &[doc(
            "web",
            &["listener: {port: 8443, tls: {certFile: c, keyFile: k}}", EP],
        )],
    );
    assert_eq!(
        errs,
        [
            "pool default/web: spec.listener.tls.secretName: required in Kubernetes mode (certFile and keyFile are for standalone mode)"
        ]
    );
}

#[test]
fn kubernetes_tls_secret_becomes_an_empty_pem_placeholder() {
    let set = ok(
        &Source::Kubernetes,
        &[doc(
            "web",
            &["listener: {port: 8443, tls: {secretName: web-tls}}", EP],
        )],
    );
    assert_eq!(
        set.pools[0].listener.tls,
        Some(TlsConfig::Pem {
            cert: Arc::from(Vec::new()),
            key: Arc::from(Vec::new()),
        })
    );
}

#[test]
fn secret_lookup_supplies_material_or_reports_on_secret_name() {
    let pools = [
        doc(
            "a",
            &["listener: {port: 8443, tls: {secretName: good}}", EP],
        ),
        doc(
            "b",
            &["listener: {port: 9443, tls: {secretName: missing}}", EP],
        ),
    ];
    let lookup = |ns: &str, name: &str| {
        if name == "good" {
            Ok(TlsConfig::Pem {
                cert: Arc::from(b"cert".to_vec()),
                key: Arc::from(b"key".to_vec()),
            })
        } else {
            Err(format!("Secret {ns}/{name} not found"))
        }
    };
    let Err(e) = validate_with_secrets(&Source::Kubernetes, &pools, &lookup) else {
        panic!("expected an error for the missing Secret");
    };
    assert_eq!(
        e.to_string(),
        "pool default/b: spec.listener.tls.secretName: Secret default/missing not found"
    );
    let set = validate_with_secrets(&Source::Kubernetes, &pools[..1], &lookup).unwrap();
    assert!(
        matches!(&set.pools[0].listener.tls, Some(TlsConfig::Pem { cert, .. }) if &cert[..] == b"cert")
    );
}

#[test]
fn missing_or_invalid_name_is_rejected() {
    let mut unnamed = doc("web", &["listener: {port: 8080}", EP]);
    unnamed.metadata.name = None;
    assert_eq!(
        errors(&file(), &[unnamed]),
        ["conf/pools.yaml: pool default/#1 (no metadata.name): metadata.name: required"]
    );
    let mut bad = doc("web", &["listener: {port: 8080}", EP]);
    bad.metadata.name = Some("Web/1".into());
    bad.metadata.namespace = Some("Shop".into());
    assert_eq!(
        errors(&file(), &[bad]),
        [
            r#"conf/pools.yaml: pool Shop/Web/1: metadata.name: "Web/1" is not a valid name (lower-case DNS subdomain)"#,
            r#"conf/pools.yaml: pool Shop/Web/1: metadata.namespace: "Shop" is not a valid namespace (lower-case DNS label)"#,
        ]
    );
}

#[test]
fn namespace_defaults_to_default() {
    let mut p = doc("web", &["listener: {port: 8080}", EP]);
    p.metadata.namespace = None;
    assert_eq!(ok(&file(), &[p]).pools[0].name, "default/web");
}

// --- DNS-name endpoints ---------------------------------------------------------------

#[test]
fn a_dns_name_endpoint_is_kept_for_the_file_front_end_to_resolve() {
    let pool = one(&[
        "listener: {port: 8080}",
        "resolveEvery: 5s",
        r#"endpoints: [{address: "127.0.0.1:81"}, {address: "API.Internal.:8080", weight: 3}]"#,
    ]);
    assert_eq!(
        pool.endpoints.len(),
        1,
        "the address is an endpoint at once"
    );
    let dns = pool.dns.expect("names kept");
    assert_eq!(dns.every, Duration::from_secs(5));
    assert_eq!(
        dns.names,
        [crate::config::NamedEndpoint {
            host: "api.internal".into(),
            port: 8080,
            weight: 3
        }]
    );
    let plain = one(&["listener: {port: 8080}", EP]);
    assert_eq!(plain.dns, None);
}

#[test]
fn a_dns_name_endpoint_is_refused_in_kubernetes_mode_and_in_the_canary() {
    let errs = errors(
        &Source::Kubernetes,
        &[doc(
            "web",
            &[
                "listener: {port: 8080}",
                r#"endpoints: [{address: "api.internal:80"}]"#,
            ],
        )],
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("names are resolved only by `sluice serve`"),
        "{errs:?}"
    );
    assert_one_problem(
        &[
            "listener: {port: 8080}",
            EP,
            r#"canary: {weight: 10, endpoints: [{address: "api.internal:80"}]}"#,
        ],
        "spec.canary.endpoints: DNS names are supported in spec.endpoints only; list ip:port addresses here",
    );
}

#[test]
fn resolve_every_without_a_dns_name_is_an_error_not_ignored() {
    assert_one_problem(
        &["listener: {port: 8080}", EP, "resolveEvery: 10s"],
        "spec.resolveEvery: applies only to endpoints given as host:port DNS names; none is listed",
    );
}
