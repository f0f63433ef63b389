//! The access-policy fields of an HTTP `BackendPool` (contract 4b) that limit who is
//! served and how much: `rateLimit` (here), `ipAllowList`, `ipDenyList` and
//! `maxRequestBodyBytes` (plain fields of the spec, with the CEL rules below). As users
//! write them; `crate::config::validate` checks them and builds the model.

use kube::KubeSchema;
use kube::core::Rule;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::TOKEN_PATTERN;

/// Most entries in `ipAllowList` or `ipDenyList`.
pub const MAX_CIDRS: usize = 10_000;
/// Longest entry of an address list: an IPv6 address with an embedded IPv4 and `/128`.
pub const MAX_CIDR_LEN: usize = 49;

/// CEL: every entry of an address list is an address or a network with zero host bits.
pub(super) fn cidr_list() -> Rule {
    Rule::new("self.all(c, isIP(c) || (isCIDR(c) && cidr(c) == cidr(c).masked()))")
        .message("each entry must be an IPv4/IPv6 address or a CIDR without host bits (10.0.0.0/8, 2001:db8::/32)")
}

/// A token bucket per key, per replica: `requestsPerSecond` sustained, `burst` at once.
/// Requests over it get 429 with `Retry-After`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, KubeSchema, PartialEq)]
#[x_kube(
    validation = Rule::new("has(self.key) && self.key == 'Header' ? has(self.header) : !has(self.header)")
        .message("header is required with key Header, and only for it")
        .field_path(".header")
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitSpec {
    /// Sustained requests per second, at least 1.
    #[schemars(range(min = 1, max = 1_000_000))]
    pub requests_per_second: u32,
    /// Requests allowed at once from a full bucket, at least 1 (default `requestsPerSecond`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub burst: Option<u32>,
    /// What a bucket belongs to (default `ClientIP`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<RateLimitKeySpec>,
    /// With `key: Header`: the header whose value names the bucket (requests without it
    /// are keyed by client address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = TOKEN_PATTERN), length(max = 256))]
    pub header: Option<String>,
}

/// What a rate-limit bucket belongs to.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, JsonSchema, PartialEq, Eq)]
pub enum RateLimitKeySpec {
    /// The client address (see `--trusted-proxies`).
    #[serde(rename = "ClientIP")]
    ClientIp,
    /// The value of the request header named by `header`.
    Header,
    /// One bucket for the whole pool.
    Pool,
}
