//! Access-policy fields of an HTTP pool: `ipAllowList`, `ipDenyList`, `rateLimit` and
//! `maxRequestBodyBytes` — the same rules as the CRD's (CIDRs parse without host bits,
//! rates and sizes above 0, `header` exactly with `key: Header`, HTTP only).

use std::sync::Arc;

use http::HeaderName;

use super::Ctx;
use crate::api;
use crate::config::{AccessPolicy, Protocol, RateLimitConfig, RateLimitKey};
use crate::policy::{Cidr, IpSet};

/// The pool's access policy (the default, no policy, for anything invalid or a TCP pool).
pub(super) fn check_access(
    ctx: &mut Ctx<'_>,
    protocol: Protocol,
    spec: &api::BackendPoolSpec,
) -> AccessPolicy {
    if protocol == Protocol::Tcp {
        for (field, set) in [
            ("spec.rateLimit", spec.rate_limit.is_some()),
            ("spec.ipAllowList", spec.ip_allow_list.is_some()),
            ("spec.ipDenyList", spec.ip_deny_list.is_some()),
            (
                "spec.maxRequestBodyBytes",
                spec.max_request_body_bytes.is_some(),
            ),
        ] {
            if set {
                ctx.error(field, "only for protocol HTTP");
            }
        }
        return AccessPolicy::default();
    }
    let max_request_body_bytes = match spec.max_request_body_bytes {
        Some(0) => {
            ctx.error("spec.maxRequestBodyBytes", "must be greater than 0");
            None
        }
        other => other,
    };
    AccessPolicy {
        allow: address_list(ctx, "spec.ipAllowList", spec.ip_allow_list.as_deref()),
        deny: address_list(ctx, "spec.ipDenyList", spec.ip_deny_list.as_deref()),
        rate_limit: spec.rate_limit.as_ref().and_then(|r| rate_limit(ctx, r)),
        max_request_body_bytes,
        max_connections_per_client: None,
    }
}

fn address_list(ctx: &mut Ctx<'_>, field: &str, list: Option<&[String]>) -> Option<Arc<IpSet>> {
    let list = list?;
    let mut ok = ctx.max_items(field, list.len(), api::MAX_CIDRS);
    let mut cidrs = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        if entry.len() > api::MAX_CIDR_LEN {
            let max = api::MAX_CIDR_LEN;
            ctx.error(
                &format!("{field}[{i}]"),
                format!("must be at most {max} characters"),
            );
            ok = false;
            continue;
        }
        match Cidr::parse(entry) {
            Ok(c) => cidrs.push(c),
            Err(problem) => {
                ctx.error(&format!("{field}[{i}]"), problem);
                ok = false;
            }
        }
    }
    // An empty allow list allows no one: written on purpose, it is kept as such.
    ok.then(|| Arc::new(IpSet::new(cidrs)))
}

fn rate_limit(ctx: &mut Ctx<'_>, spec: &api::RateLimitSpec) -> Option<RateLimitConfig> {
    let rps = ctx.range(
        "spec.rateLimit.requestsPerSecond",
        Some(spec.requests_per_second),
        1,
        1,
        1_000_000,
    );
    let burst = ctx.range("spec.rateLimit.burst", spec.burst, rps, 1, 1_000_000);
    let mut ok = (1..=1_000_000).contains(&spec.requests_per_second)
        && spec.burst.is_none_or(|b| (1..=1_000_000).contains(&b));
    let key = match (spec.key, &spec.header) {
        (Some(api::RateLimitKeySpec::Header), Some(name)) => {
            match HeaderName::from_bytes(name.as_bytes()) {
                Ok(h) => RateLimitKey::Header(h),
                Err(_) => {
                    ctx.error(
                        "spec.rateLimit.header",
                        format!("{name:?} is not a header name"),
                    );
                    ok = false;
                    RateLimitKey::ClientIp
                }
            }
        }
        (Some(api::RateLimitKeySpec::Header), None) => {
            ctx.error("spec.rateLimit.header", "required with key Header");
            ok = false;
            RateLimitKey::ClientIp
        }
        (_, Some(_)) => {
            ctx.error("spec.rateLimit.header", "only with key Header");
            ok = false;
            RateLimitKey::ClientIp
        }
        (None | Some(api::RateLimitKeySpec::ClientIp), None) => RateLimitKey::ClientIp,
        (Some(api::RateLimitKeySpec::Pool), None) => RateLimitKey::Pool,
    };
    ok.then_some(RateLimitConfig {
        requests_per_second: rps,
        burst,
        key,
    })
}
