//! Traffic-policy fields of a pool: algorithm and hash key, health checks, retry,
//! session affinity, timeouts. Each check returns the model value, with the contract
//! default in place of anything invalid, and reports problems through [`Ctx`].

use std::time::Duration;

use super::Ctx;
use super::names;
use crate::api;
use crate::config::duration::format_duration;
use crate::config::{
    AffinityConfig, Algorithm, HashKey, HealthCheckConfig, HealthCheckKind, Protocol, RetryConfig,
    Timeouts,
};

pub(super) fn check_algorithm(
    ctx: &mut Ctx<'_>,
    protocol: Protocol,
    spec: &api::BackendPoolSpec,
) -> Algorithm {
    use api::AlgorithmName as A;
    let name = spec.algorithm;
    let key = match (&spec.hash_key, name) {
        (None, A::ConsistentHash) => {
            ctx.error("spec.hashKey", "required with algorithm ConsistentHash");
            None
        }
        (Some(_), other) if other != A::ConsistentHash => {
            ctx.error(
                "spec.hashKey",
                format!("only with algorithm ConsistentHash (algorithm is {other:?})"),
            );
            None
        }
        (Some(k), _) => check_hash_key(ctx, protocol, k),
        (None, _) => None,
    };
    match name {
        A::RoundRobin => Algorithm::RoundRobin,
        A::WeightedRoundRobin => Algorithm::WeightedRoundRobin,
        A::LeastConnections => Algorithm::LeastConnections,
        A::PowerOfTwoChoices => Algorithm::PowerOfTwoChoices,
        A::ConsistentHash => Algorithm::ConsistentHash(key.unwrap_or(HashKey::ClientIp)),
        A::Random => Algorithm::Random,
    }
}

fn check_hash_key(
    ctx: &mut Ctx<'_>,
    protocol: Protocol,
    spec: &api::HashKeySpec,
) -> Option<HashKey> {
    let client_ip = spec.client_ip == Some(true);
    let set = usize::from(spec.header.is_some())
        + usize::from(spec.cookie.is_some())
        + usize::from(client_ip);
    if set != 1 {
        ctx.error(
            "spec.hashKey",
            format!("set exactly one of header, cookie, clientIP: true (found {set})"),
        );
        return None;
    }
    if protocol == Protocol::Tcp && !client_ip {
        let field = if spec.header.is_some() {
            "spec.hashKey.header"
        } else {
            "spec.hashKey.cookie"
        };
        ctx.error(field, "TCP pools can only hash on clientIP");
        return None;
    }
    if let Some(h) = &spec.header {
        return match http::HeaderName::from_bytes(h.as_bytes()) {
            Ok(name) => Some(HashKey::Header(name)),
            Err(_) => {
                ctx.error("spec.hashKey.header", format!("invalid header name {h:?}"));
                None
            }
        };
    }
    if let Some(c) = &spec.cookie {
        if !names::is_cookie_name(c) {
            ctx.error("spec.hashKey.cookie", format!("invalid cookie name {c:?}"));
            return None;
        }
        return Some(HashKey::Cookie(c.clone()));
    }
    Some(HashKey::ClientIp)
}

pub(super) fn check_health(ctx: &mut Ctx<'_>, spec: &api::HealthCheckSpec) -> HealthCheckConfig {
    let protocol = spec.protocol.unwrap_or_default();
    let kind = if protocol == api::HealthCheckProtocol::Http {
        let path = spec.path.clone().unwrap_or_else(|| "/healthz".to_owned());
        if !path.starts_with('/') {
            ctx.error(
                "spec.healthCheck.path",
                format!("{path:?} must start with \"/\""),
            );
        }
        let mut expected = Vec::new();
        match &spec.expected_statuses {
            None => expected.push((200, 399)),
            Some(list) if list.is_empty() => {
                ctx.error("spec.healthCheck.expectedStatuses", "must not be empty");
            }
            Some(list) => {
                let field = "spec.healthCheck.expectedStatuses";
                let max = api::MAX_EXPECTED_STATUSES;
                let counted = if ctx.max_items(field, list.len(), max) {
                    list.as_slice()
                } else {
                    &[]
                };
                for (i, s) in counted.iter().enumerate() {
                    match parse_status_range(s) {
                        Ok(r) => expected.push(r),
                        Err(problem) => {
                            ctx.error(&format!("spec.healthCheck.expectedStatuses[{i}]"), problem)
                        }
                    }
                }
            }
        }
        HealthCheckKind::Http { path, expected }
    } else {
        if spec.path.is_some() {
            ctx.error("spec.healthCheck.path", "only for HTTP health checks");
        }
        if spec.expected_statuses.is_some() {
            ctx.error(
                "spec.healthCheck.expectedStatuses",
                "only for HTTP health checks",
            );
        }
        match protocol {
            api::HealthCheckProtocol::Grpc => HealthCheckKind::Grpc,
            _ => HealthCheckKind::Tcp,
        }
    };
    let port = ctx.range("spec.healthCheck.port", spec.port, 0, 0, 65535);
    HealthCheckConfig {
        kind,
        port: u16::try_from(port).ok().filter(|&p| p > 0),
        interval: ctx.duration(
            "spec.healthCheck.interval",
            spec.interval.as_ref(),
            Duration::from_secs(5),
            true,
        ),
        timeout: ctx.duration(
            "spec.healthCheck.timeout",
            spec.timeout.as_ref(),
            Duration::from_secs(1),
            true,
        ),
        healthy_threshold: ctx.range(
            "spec.healthCheck.healthyThreshold",
            spec.healthy_threshold,
            2,
            1,
            u32::MAX,
        ),
        unhealthy_threshold: ctx.range(
            "spec.healthCheck.unhealthyThreshold",
            spec.unhealthy_threshold,
            3,
            1,
            u32::MAX,
        ),
        fail_open: spec.fail_open.unwrap_or(false),
    }
}

/// `200` or `200-399`, each code within 100..=599 and written with three digits (the CRD
/// pattern `^[1-5][0-9][0-9](-[1-5][0-9][0-9])?$`: no spaces, no sign).
fn parse_status_range(s: &str) -> Result<(u16, u16), String> {
    let invalid = || {
        format!(
            "invalid status {s:?} (expected a code like 200 or a range like 200-399, within 100..=599)"
        )
    };
    let code = |t: &str| {
        Some(t)
            .filter(|t| t.len() == 3 && t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse::<u16>().ok())
            .filter(|c| (100..=599).contains(c))
    };
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (code(a), code(b)),
        None => (code(s), code(s)),
    };
    match (lo, hi) {
        (Some(lo), Some(hi)) if lo <= hi => Ok((lo, hi)),
        (Some(lo), Some(hi)) => Err(format!("range {s:?} is empty ({lo} > {hi})")),
        _ => Err(invalid()),
    }
}

pub(super) fn check_retry(ctx: &mut Ctx<'_>, spec: &api::RetrySpec) -> RetryConfig {
    let attempts = ctx.range("spec.retry.attempts", spec.attempts, 2, 0, 10);
    let backoff = spec.backoff.clone().unwrap_or_default();
    let base_default = Duration::from_millis(25);
    let max_default = Duration::from_secs(1);
    let backoff_base = ctx.duration(
        "spec.retry.backoff.base",
        backoff.base.as_ref(),
        base_default,
        false,
    );
    let backoff_max = ctx.duration(
        "spec.retry.backoff.max",
        backoff.max.as_ref(),
        max_default,
        false,
    );
    let (backoff_base, backoff_max) = if backoff_base > backoff_max {
        ctx.error(
            "spec.retry.backoff",
            format!(
                "base {} is greater than max {}",
                format_duration(backoff_base),
                format_duration(backoff_max)
            ),
        );
        (base_default, max_default)
    } else {
        (backoff_base, backoff_max)
    };
    let retry_on = spec.retry_on.as_deref().unwrap_or(&[
        api::RetryOn::ConnectFailure,
        api::RetryOn::Reset,
        api::RetryOn::Status5xx,
    ]);
    let budget = spec.budget.clone().unwrap_or_default();
    let ratio = budget.ratio.unwrap_or(0.2);
    let budget_ratio = if (0.0..=1.0).contains(&ratio) {
        ratio
    } else {
        ctx.error(
            "spec.retry.budget.ratio",
            format!("must be within 0..=1, got {ratio}"),
        );
        0.2
    };
    RetryConfig {
        attempts,
        backoff_base,
        backoff_max,
        on_connect_failure: retry_on.contains(&api::RetryOn::ConnectFailure),
        on_reset: retry_on.contains(&api::RetryOn::Reset),
        on_5xx: retry_on.contains(&api::RetryOn::Status5xx),
        on_timeout: false,
        on_statuses: Vec::new(),
        non_idempotent: false,
        within: None,
        budget_ratio,
        budget_min_per_second: budget.min_per_second.unwrap_or(10),
    }
}

pub(super) fn check_affinity(
    ctx: &mut Ctx<'_>,
    protocol: Protocol,
    spec: &api::SessionAffinitySpec,
) -> Option<AffinityConfig> {
    // The cookie fields are checked whatever the type, as the CRD checks them.
    let name = spec
        .cookie_name
        .clone()
        .unwrap_or_else(|| "sluice-affinity".to_owned());
    if !names::is_cookie_name(&name) {
        ctx.error(
            "spec.sessionAffinity.cookieName",
            format!("invalid cookie name {name:?}"),
        );
    }
    let ttl = ctx.duration(
        "spec.sessionAffinity.ttl",
        spec.ttl.as_ref(),
        Duration::from_secs(3600),
        true,
    );
    match spec.kind.unwrap_or_default() {
        api::AffinityType::None => None,
        api::AffinityType::ClientIp => Some(AffinityConfig::ClientIp),
        api::AffinityType::Cookie if protocol == Protocol::Tcp => {
            ctx.error(
                "spec.sessionAffinity.type",
                "Cookie is only for protocol HTTP (TCP pools may use ClientIP)",
            );
            None
        }
        api::AffinityType::Cookie => Some(AffinityConfig::Cookie { name, ttl }),
    }
}

pub(super) fn check_timeouts(ctx: &mut Ctx<'_>, spec: Option<&api::TimeoutsSpec>) -> Timeouts {
    let d = Timeouts::default();
    let Some(spec) = spec else {
        return d;
    };
    Timeouts {
        connect: ctx.duration(
            "spec.timeouts.connect",
            spec.connect.as_ref(),
            d.connect,
            true,
        ),
        request: ctx.duration(
            "spec.timeouts.request",
            spec.request.as_ref(),
            d.request,
            true,
        ),
        idle: ctx.duration("spec.timeouts.idle", spec.idle.as_ref(), d.idle, true),
    }
}
