//! `sluice.dev/` annotations: sluice's own backend knobs on an Ingress, so that an Ingress
//! backend can be tuned as a BackendPool is. Each name is the BackendPool field path in
//! kebab case (`healthCheck.interval` -> `sluice.dev/health-check-interval`), each value is
//! written as in a BackendPool (durations `5s`, lists comma-separated), and the values are
//! checked by the BackendPool validation itself (a throwaway pool carrying them), so the two
//! front ends cannot drift apart. An unknown `sluice.dev/` key is reported, not ignored.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::api::{
    self, AlgorithmName, BackendPool, BackendPoolSpec, HashKeySpec, HealthCheckProtocol,
    HealthCheckSpec, OutlierDetectionSpec, RetryBudgetSpec, RetrySpec,
};
use crate::config::{Algorithm, HealthCheckConfig, OutlierConfig, Source, validate};

/// The annotation prefix of sluice's own knobs.
pub const PREFIX: &str = "sluice.dev/";

/// Annotation (without the prefix) -> the BackendPool field it sets.
const FIELDS: &[(&str, &str)] = &[
    ("algorithm", "spec.algorithm"),
    ("hash-key-header", "spec.hashKey.header"),
    ("hash-key-cookie", "spec.hashKey.cookie"),
    ("hash-key-client-ip", "spec.hashKey.clientIP"),
    ("health-check-protocol", "spec.healthCheck.protocol"),
    ("health-check-path", "spec.healthCheck.path"),
    ("health-check-port", "spec.healthCheck.port"),
    ("health-check-interval", "spec.healthCheck.interval"),
    ("health-check-timeout", "spec.healthCheck.timeout"),
    (
        "health-check-healthy-threshold",
        "spec.healthCheck.healthyThreshold",
    ),
    (
        "health-check-unhealthy-threshold",
        "spec.healthCheck.unhealthyThreshold",
    ),
    (
        "health-check-expected-statuses",
        "spec.healthCheck.expectedStatuses",
    ),
    ("health-check-fail-open", "spec.healthCheck.failOpen"),
    (
        "outlier-detection-consecutive-failures",
        "spec.outlierDetection.consecutiveFailures",
    ),
    (
        "outlier-detection-base-ejection-time",
        "spec.outlierDetection.baseEjectionTime",
    ),
    (
        "outlier-detection-max-ejection-percent",
        "spec.outlierDetection.maxEjectionPercent",
    ),
    ("retry-budget-ratio", "spec.retry.budget.ratio"),
    (
        "retry-budget-min-per-second",
        "spec.retry.budget.minPerSecond",
    ),
    ("drain-timeout", "spec.drainTimeout"),
    (
        "max-connections-per-endpoint",
        "spec.maxConnectionsPerEndpoint",
    ),
];

/// What the `sluice.dev/` annotations of an Ingress set; `None` = the annotation is absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Knobs {
    /// `algorithm` (+ `hash-key-*`).
    pub algorithm: Option<Algorithm>,
    /// `health-check-*`: active checks, when any is set.
    pub health_check: Option<HealthCheckConfig>,
    /// `outlier-detection-*`, when any is set.
    pub outlier_detection: Option<OutlierConfig>,
    /// `retry-budget-ratio` and `retry-budget-min-per-second`.
    pub retry_budget: Option<(f64, u32)>,
    /// `drain-timeout`.
    pub drain_timeout: Option<Duration>,
    /// `max-connections-per-endpoint` (0 = unlimited).
    pub max_connections_per_endpoint: Option<Option<u32>>,
}

/// Reads the `sluice.dev/` annotations of `all`. `bad(annotation, why)` hears of each value
/// the BackendPool validation refuses; `unknown` of each key sluice does not know.
pub fn parse(
    all: &BTreeMap<String, String>,
    bad: &mut dyn FnMut(String, String),
    unknown: &mut dyn FnMut(String),
) -> Knobs {
    let mut get = BTreeMap::new();
    for (key, value) in all {
        let Some(name) = key.strip_prefix(PREFIX) else {
            continue;
        };
        match FIELDS.iter().find(|(n, _)| *n == name) {
            Some((n, _)) => {
                get.insert(*n, value.trim());
            }
            None => unknown(key.clone()),
        }
    }
    if get.is_empty() {
        return Knobs::default();
    }
    let mut spec = BackendPoolSpec {
        listener: api::ListenerSpec {
            port: 1,
            ..Default::default()
        },
        endpoints: Some(Vec::new()),
        ..Default::default()
    };
    let mut typed_ok = true;
    let mut fail = |name: &str, why: String| {
        typed_ok = false;
        bad(format!("{PREFIX}{name}"), why);
    };
    fill(&mut spec, &get, &mut fail);
    if !typed_ok {
        return Knobs::default();
    }
    let has = |prefix: &str| get.keys().any(|k| k.starts_with(prefix));
    let pool = BackendPool::new("ingress-knobs", spec);
    let config = match validate(&Source::Kubernetes, &[pool]) {
        Ok(set) => set.pools.into_iter().next(),
        Err(errors) => {
            for e in errors.0 {
                let field = e.field.unwrap_or_default();
                // A rule on a block (`spec.hashKey`) names every annotation of the block.
                let named: Vec<String> = FIELDS
                    .iter()
                    .filter(|(_, f)| field.starts_with(f) || f.starts_with(&field))
                    .map(|(n, _)| format!("{PREFIX}{n}"))
                    .collect();
                let annotation = match named.len() {
                    0 => format!("{PREFIX}*"),
                    1 => named[0].clone(),
                    _ => format!("{} (one of them)", named.join(", ")),
                };
                let why = e
                    .message
                    .split_once(&format!("{field}: "))
                    .map_or(e.message.clone(), |(_, w)| w.to_owned());
                bad(annotation, why);
            }
            return Knobs::default();
        }
    };
    let Some(config) = config else {
        return Knobs::default();
    };
    Knobs {
        algorithm: has("algorithm").then(|| config.algorithm.clone()),
        health_check: config.health_check.clone(),
        outlier_detection: config.outlier_detection,
        retry_budget: config
            .retry
            .as_ref()
            .map(|r| (r.budget_ratio, r.budget_min_per_second)),
        drain_timeout: has("drain-timeout").then_some(config.drain_timeout),
        max_connections_per_endpoint: has("max-connections-per-endpoint")
            .then_some(config.max_connections_per_endpoint),
    }
}

/// Writes the annotation values into the throwaway pool's spec; a value of the wrong type
/// (not a number, not a bool, an unknown name) is reported through `fail`.
fn fill(
    spec: &mut BackendPoolSpec,
    get: &BTreeMap<&str, &str>,
    fail: &mut dyn FnMut(&str, String),
) {
    let mut number = |name: &str| -> Option<u32> {
        let v = get.get(name)?;
        v.parse::<u32>()
            .map_err(|_| fail(name, format!("{v:?} is not a whole number")))
            .ok()
    };
    let hc_port = number("health-check-port");
    let healthy = number("health-check-healthy-threshold");
    let unhealthy = number("health-check-unhealthy-threshold");
    let failures = number("outlier-detection-consecutive-failures");
    let percent = number("outlier-detection-max-ejection-percent");
    let min_per_second = number("retry-budget-min-per-second");
    let max_conns = number("max-connections-per-endpoint");
    let mut flag = |name: &str| -> Option<bool> {
        let v = get.get(name)?;
        match *v {
            "true" => Some(true),
            "false" => Some(false),
            _ => {
                fail(name, format!("{v:?} is not \"true\" or \"false\""));
                None
            }
        }
    };
    let fail_open = flag("health-check-fail-open");
    let client_ip = flag("hash-key-client-ip");
    let text = |name: &str| get.get(name).map(|v| (*v).to_owned());
    if let Some(v) = get.get("algorithm") {
        spec.algorithm = match *v {
            "RoundRobin" => AlgorithmName::RoundRobin,
            "WeightedRoundRobin" => AlgorithmName::WeightedRoundRobin,
            "LeastConnections" => AlgorithmName::LeastConnections,
            "PowerOfTwoChoices" => AlgorithmName::PowerOfTwoChoices,
            "ConsistentHash" => AlgorithmName::ConsistentHash,
            "Random" => AlgorithmName::Random,
            _ => {
                fail(
                    "algorithm",
                    format!(
                        "{v:?} is not RoundRobin, WeightedRoundRobin, LeastConnections, PowerOfTwoChoices, ConsistentHash or Random"
                    ),
                );
                AlgorithmName::RoundRobin
            }
        };
    }
    if ["hash-key-header", "hash-key-cookie", "hash-key-client-ip"]
        .iter()
        .any(|k| get.contains_key(k))
    {
        spec.hash_key = Some(HashKeySpec {
            header: text("hash-key-header"),
            cookie: text("hash-key-cookie"),
            client_ip,
        });
    }
    if get.keys().any(|k| k.starts_with("health-check-")) {
        let protocol = get.get("health-check-protocol").and_then(|v| match *v {
            "HTTP" => Some(HealthCheckProtocol::Http),
            "TCP" => Some(HealthCheckProtocol::Tcp),
            "GRPC" => Some(HealthCheckProtocol::Grpc),
            _ => {
                fail(
                    "health-check-protocol",
                    format!("{v:?} is not HTTP, TCP or GRPC"),
                );
                None
            }
        });
        spec.health_check = Some(HealthCheckSpec {
            protocol,
            path: text("health-check-path"),
            port: hc_port,
            interval: text("health-check-interval"),
            timeout: text("health-check-timeout"),
            healthy_threshold: healthy,
            unhealthy_threshold: unhealthy,
            expected_statuses: get.get("health-check-expected-statuses").map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            }),
            fail_open,
        });
    }
    if get.keys().any(|k| k.starts_with("outlier-detection-")) {
        spec.outlier_detection = Some(OutlierDetectionSpec {
            consecutive_failures: failures,
            base_ejection_time: text("outlier-detection-base-ejection-time"),
            max_ejection_percent: percent,
        });
    }
    if get.keys().any(|k| k.starts_with("retry-budget-")) {
        let ratio = get.get("retry-budget-ratio").and_then(|v| {
            v.parse::<f64>()
                .map_err(|_| fail("retry-budget-ratio", format!("{v:?} is not a number")))
                .ok()
        });
        spec.retry = Some(RetrySpec {
            budget: Some(RetryBudgetSpec {
                ratio,
                min_per_second,
            }),
            ..Default::default()
        });
    }
    spec.drain_timeout = text("drain-timeout");
    spec.max_connections_per_endpoint = max_conns;
}
