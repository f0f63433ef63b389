//! Traffic-policy rules: hash key, health checks, outlier detection, retry, affinity,
//! timeouts.

use super::*;

#[test]
fn consistent_hash_without_hash_key_is_rejected() {
    assert_one_problem(
        &["listener: {port: 8080}", EP, "algorithm: ConsistentHash"],
        "spec.hashKey: required with algorithm ConsistentHash",
    );
}

#[test]
fn hash_key_is_only_for_consistent_hash() {
    assert_one_problem(
        &[
            "listener: {port: 8080}",
            EP,
            "algorithm: Random",
            "hashKey: {clientIP: true}",
        ],
        "spec.hashKey: only with algorithm ConsistentHash (algorithm is Random)",
    );
}

#[test]
fn hash_key_needs_exactly_one_property() {
    assert_one_problem(
        &[
            "listener: {port: 8080}",
            EP,
            "algorithm: ConsistentHash",
            "hashKey: {header: x-user, clientIP: true}",
        ],
        "spec.hashKey: set exactly one of header, cookie, clientIP: true (found 2)",
    );
    assert_one_problem(
        &[
            "listener: {port: 8080}",
            EP,
            "algorithm: ConsistentHash",
            "hashKey: {clientIP: false}",
        ],
        "spec.hashKey: set exactly one of header, cookie, clientIP: true (found 0)",
    );
}

#[test]
fn hash_key_builds_the_algorithm_parameter() {
    let alg = |key: &str| {
        one(&[
            "listener: {port: 8080}",
            EP,
            "algorithm: ConsistentHash",
            key,
        ])
        .algorithm
    };
    assert_eq!(
        alg("hashKey: {header: X-User}"),
        Algorithm::ConsistentHash(HashKey::Header(http::HeaderName::from_static("x-user")))
    );
    assert_eq!(
        alg("hashKey: {cookie: session}"),
        Algorithm::ConsistentHash(HashKey::Cookie("session".into()))
    );
    assert_eq!(
        alg("hashKey: {clientIP: true}"),
        Algorithm::ConsistentHash(HashKey::ClientIp)
    );
}

#[test]
fn hash_key_names_must_be_valid() {
    assert_one_problem(
        &[
            "listener: {port: 8080}",
            EP,
            "algorithm: ConsistentHash",
            "hashKey: {header: \"x user\"}",
        ],
        r#"spec.hashKey.header: invalid header name "x user""#,
    );
    assert_one_problem(
        &[
            "listener: {port: 8080}",
            EP,
            "algorithm: ConsistentHash",
            "hashKey: {cookie: \"a;b\"}",
        ],
        r#"spec.hashKey.cookie: invalid cookie name "a;b""#,
    );
}

#[test]
fn tcp_pool_can_only_hash_on_client_ip() {
    assert_one_problem(
        &[
            "protocol: TCP",
            "listener: {port: 5432}",
            EP,
            "algorithm: ConsistentHash",
            "hashKey: {header: x-user}",
        ],
        "spec.hashKey.header: TCP pools can only hash on clientIP",
    );
}

#[test]
fn expected_statuses_accept_codes_and_ranges() {
    let p = one(&[
        "listener: {port: 8080}",
        EP,
        r#"healthCheck: {expectedStatuses: ["200", "300-399", "204"]}"#,
    ]);
    let Some(HealthCheckConfig {
        kind: HealthCheckKind::Http { expected, .. },
        ..
    }) = p.health_check
    else {
        panic!("expected an HTTP check");
    };
    assert_eq!(expected, [(200, 200), (300, 399), (204, 204)]);
}

#[test]
fn expected_statuses_outside_100_to_599_are_rejected() {
    assert_eq!(
        problems(&[
            "listener: {port: 8080}",
            EP,
            r#"healthCheck: {expectedStatuses: ["99", "200-600", "ok", "400-300"]}"#
        ]),
        [
            r#"spec.healthCheck.expectedStatuses[0]: invalid status "99" (expected a code like 200 or a range like 200-399, within 100..=599)"#,
            r#"spec.healthCheck.expectedStatuses[1]: invalid status "200-600" (expected a code like 200 or a range like 200-399, within 100..=599)"#,
            r#"spec.healthCheck.expectedStatuses[2]: invalid status "ok" (expected a code like 200 or a range like 200-399, within 100..=599)"#,
            r#"spec.healthCheck.expectedStatuses[3]: range "400-300" is empty (400 > 300)"#,
        ]
    );
    assert_one_problem(
        &[
            "listener: {port: 8080}",
            EP,
            "healthCheck: {expectedStatuses: []}",
        ],
        "spec.healthCheck.expectedStatuses: must not be empty",
    );
}

#[test]
fn health_check_path_must_start_with_a_slash() {
    assert_one_problem(
        &["listener: {port: 8080}", EP, "healthCheck: {path: healthz}"],
        r#"spec.healthCheck.path: "healthz" must start with "/""#,
    );
}

#[test]
fn tcp_health_check_rejects_http_fields() {
    assert_eq!(
        problems(&[
            "listener: {port: 8080}",
            EP,
            "healthCheck: {protocol: TCP, path: /, expectedStatuses: [\"200\"]}"
        ]),
        [
            "spec.healthCheck.path: only for HTTP health checks",
            "spec.healthCheck.expectedStatuses: only for HTTP health checks",
        ]
    );
}

#[test]
fn health_check_intervals_and_thresholds_must_be_positive() {
    assert_eq!(
        problems(&[
            "listener: {port: 8080}",
            EP,
            "healthCheck: {interval: 0s, timeout: 0ms, healthyThreshold: 0, port: 70000}"
        ]),
        [
            "spec.healthCheck.port: must be 0..=65535, got 70000",
            "spec.healthCheck.interval: must be greater than 0",
            "spec.healthCheck.timeout: must be greater than 0",
            "spec.healthCheck.healthyThreshold: must be 1..=4294967295, got 0",
        ]
    );
}

#[test]
fn outlier_detection_values_are_range_checked() {
    assert_eq!(
        problems(&[
            "listener: {port: 8080}",
            EP,
            "outlierDetection: {consecutiveFailures: 0, baseEjectionTime: \"30\", maxEjectionPercent: 101}"
        ]),
        [
            "spec.outlierDetection.consecutiveFailures: must be 1..=4294967295, got 0",
            r#"spec.outlierDetection.baseEjectionTime: invalid duration "30" (expected 250ms, 5s, 1m, 1h)"#,
            "spec.outlierDetection.maxEjectionPercent: must be 0..=100, got 101",
        ]
    );
}

#[test]
fn retry_budget_ratio_must_be_within_0_and_1() {
    assert_one_problem(
        &[
            "listener: {port: 8080}",
            EP,
            "retry: {budget: {ratio: 1.5}}",
        ],
        "spec.retry.budget.ratio: must be within 0..=1, got 1.5",
    );
    assert_one_problem(
        &[
            "listener: {port: 8080}",
            EP,
            "retry: {budget: {ratio: .nan}}",
        ],
        "spec.retry.budget.ratio: must be within 0..=1, got NaN",
    );
    let p = one(&[
        "listener: {port: 8080}",
        EP,
        "retry: {budget: {ratio: 1, minPerSecond: 0}}",
    ]);
    let r = p.retry.unwrap();
    assert_eq!((r.budget_ratio, r.budget_min_per_second), (1.0, 0));
}

#[test]
fn retry_attempts_are_at_most_10() {
    assert_one_problem(
        &["listener: {port: 8080}", EP, "retry: {attempts: 11}"],
        "spec.retry.attempts: must be 0..=10, got 11",
    );
}

#[test]
fn backoff_base_above_max_is_rejected() {
    assert_one_problem(
        &[
            "listener: {port: 8080}",
            EP,
            "retry: {backoff: {base: 2s, max: 1s}}",
        ],
        "spec.retry.backoff: base 2s is greater than max 1s",
    );
    assert_one_problem(
        &["listener: {port: 8080}", EP, "retry: {backoff: {base: 2s}}"],
        "spec.retry.backoff: base 2s is greater than max 1s",
    );
}

#[test]
fn send_proxy_protocol_is_tcp_only() {
    assert_one_problem(
        &["listener: {port: 8080}", EP, "sendProxyProtocol: V1"],
        "spec.sendProxyProtocol: V1 is only for protocol TCP",
    );
    let p = one(&["listener: {port: 8080}", EP, "sendProxyProtocol: None"]);
    assert_eq!(p.send_proxy_protocol, ProxyProtocolVersion::None);
}

#[test]
fn cookie_affinity_is_http_only_but_client_ip_works_for_tcp() {
    assert_one_problem(
        &[
            "protocol: TCP",
            "listener: {port: 5432}",
            EP,
            "sessionAffinity: {type: Cookie}",
        ],
        "spec.sessionAffinity.type: Cookie is only for protocol HTTP (TCP pools may use ClientIP)",
    );
    let p = one(&[
        "protocol: TCP",
        "listener: {port: 5432}",
        EP,
        "sessionAffinity: {type: ClientIP}",
    ]);
    assert_eq!(p.affinity, Some(AffinityConfig::ClientIp));
}

#[test]
fn affinity_cookie_name_and_ttl_are_checked() {
    assert_eq!(
        problems(&[
            "listener: {port: 8080}",
            EP,
            "sessionAffinity: {type: Cookie, cookieName: \"a b\", ttl: 0s}"
        ]),
        [
            r#"spec.sessionAffinity.cookieName: invalid cookie name "a b""#,
            "spec.sessionAffinity.ttl: must be greater than 0",
        ]
    );
}

#[test]
fn zero_timeouts_are_rejected() {
    assert_eq!(
        problems(&[
            "listener: {port: 8080}",
            EP,
            "timeouts: {connect: 0s, request: 0ms, idle: 0h}"
        ]),
        [
            "spec.timeouts.connect: must be greater than 0",
            "spec.timeouts.request: must be greater than 0",
            "spec.timeouts.idle: must be greater than 0",
        ]
    );
}
