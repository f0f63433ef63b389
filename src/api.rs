//! The `BackendPool` resource exactly as users write it (`sluice.dev/v1alpha1`).
//!
//! These types are both the CustomResourceDefinition and the standalone file format.
//! They carry no behaviour: `crate::config::validate` turns them into the validated model
//! that the data plane reads. Optional blocks stay `Option` so that "left out" means "off".
//!
//! The contract's rules live here twice over: as OpenAPI constraints (`range`, `length`,
//! `regex`) and as CEL rules (`#[x_kube(validation = ...)]`, rendered as
//! `x-kubernetes-validations`), so the API server refuses a bad pool at `kubectl apply`.
//! `crate::config::validate` applies the same rules in Rust for standalone mode (and again
//! in the controller); `tests/crd.rs` holds one test per rule proving both sides carry it.
//! Every string or list a CEL rule reads has a length bound, because the API server
//! refuses a CRD whose rules' estimated cost is unbounded.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::Rule;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod access;
mod auth;
mod routing;
mod status;
mod upstream;

pub use access::{MAX_CIDR_LEN, MAX_CIDRS, RateLimitKeySpec, RateLimitSpec};
pub use auth::{
    BasicAuthSpec, CorsSpec, ExternalAuthSpec, MAX_ORIGIN_LEN, MAX_POLICY_ENTRIES, MAX_URL_LEN,
};
pub use routing::{
    CanarySpec, HeaderChangesSpec, HeaderMatchSpec, HttpMethod, MAX_MATCH_ENTRIES, MAX_VALUE_LEN,
    MatchSpec, QueryMatchSpec, RedirectSpec, RewriteSpec, Scheme,
};
pub use status::{BackendPoolStatus, BackendStatus, EndpointCounts, MAX_STATUS_BACKENDS};
pub use upstream::{UpstreamProtocol, UpstreamSpec, UpstreamTlsSpec};

/// The duration grammar (`250ms`, `5s`, `1m30s`), the one `config::parse_duration` reads.
const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h))+$";
/// Longest duration string, in characters.
pub const MAX_DURATION_LEN: usize = 32;
/// Most `listener.hosts` entries.
pub const MAX_HOSTS: usize = 100;
/// Longest `listener.pathPrefix`, in characters.
pub const MAX_PATH_PREFIX_LEN: usize = 1024;
/// Most static `endpoints`.
pub const MAX_ENDPOINTS: usize = 10_000;
/// Most `healthCheck.expectedStatuses` entries.
pub const MAX_EXPECTED_STATUSES: usize = 20;
/// An exact host (`shop.example`) or a wildcard (`*.example.com`), any case.
const HOST_PATTERN: &str =
    r"^(\*\.)?[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*$";
/// A lower-case RFC 1123 subdomain (a Secret name).
const DNS_SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A lower-case RFC 1123 label (a Service name).
const DNS_LABEL_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// An HTTP token (RFC 9110): a header or cookie name.
const TOKEN_PATTERN: &str = r"^[-!#$%&'*+.^_`|~0-9A-Za-z]+$";
/// An HTTP status code or range (`200`, `200-399`).
const STATUS_PATTERN: &str = r"^[1-5][0-9][0-9](-[1-5][0-9][0-9])?$";

/// CEL: a duration other than zero (`0s`, `0ms`, `0m0s`).
fn positive_duration() -> Rule {
    Rule::new("!self.matches('^(0+(ms|s|m|h))+$')").message("must be greater than 0")
}

/// Desired state of a pool: where it listens, where its endpoints come from, how it balances.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "BackendPool",
    namespaced,
    shortname = "bp",
    status = "BackendPoolStatus",
    printcolumn = r#"{"name":"Protocol","type":"string","jsonPath":".spec.protocol"}"#,
    printcolumn = r#"{"name":"Port","type":"integer","jsonPath":".spec.listener.port"}"#,
    printcolumn = r#"{"name":"Algorithm","type":"string","jsonPath":".spec.algorithm"}"#,
    printcolumn = r#"{"name":"Healthy","type":"string","jsonPath":".status.healthy"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
// `protocol` and `algorithm` carry schema defaults, so the API server has filled them in
// before these rules run.
#[x_kube(
    validation = Rule::new("has(self.service) || has(self.endpoints) || has(self.redirect)")
        .message("either service or endpoints is required (or a redirect)")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new(
        "self.protocol == 'HTTP' || (!has(self.listener.match) && !has(self.canary) && !has(self.redirect) && !has(self.rewrite) && !has(self.requestHeaders) && !has(self.responseHeaders))"
    )
    .message("listener.match, canary, redirect, rewrite, requestHeaders and responseHeaders are only for protocol HTTP")
    .reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(self.redirect) || (!has(self.rewrite) && !has(self.canary))")
        .message("a pool that redirects forwards nothing: rewrite and canary do not apply")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new(
        "self.protocol == 'HTTP' || !has(self.listener.hosts) || size(self.listener.hosts) == 0"
    )
    .message("listener.hosts is only for protocol HTTP")
    .field_path(".listener.hosts")
    .reason(Reason::FieldValueForbidden),
    validation = Rule::new("self.protocol == 'HTTP' || !has(self.listener.pathPrefix)")
        .message("listener.pathPrefix is only for protocol HTTP")
        .field_path(".listener.pathPrefix")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("self.algorithm != 'ConsistentHash' || has(self.hashKey)")
        .message("hashKey is required with algorithm ConsistentHash")
        .field_path(".hashKey")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("self.algorithm == 'ConsistentHash' || !has(self.hashKey)")
        .message("hashKey is only for algorithm ConsistentHash")
        .field_path(".hashKey")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new(
        "self.protocol == 'HTTP' || !has(self.hashKey) || (!has(self.hashKey.header) && !has(self.hashKey.cookie))"
    )
    .message("TCP pools can only hash on clientIP")
    .field_path(".hashKey")
    .reason(Reason::FieldValueForbidden),
    validation = Rule::new(
        "self.protocol == 'TCP' || !has(self.sendProxyProtocol) || self.sendProxyProtocol == 'None'"
    )
    .message("sendProxyProtocol is only for protocol TCP")
    .field_path(".sendProxyProtocol")
    .reason(Reason::FieldValueForbidden),
    validation = Rule::new(
        "self.protocol == 'HTTP' || !has(self.sessionAffinity) || !has(self.sessionAffinity.type) || self.sessionAffinity.type != 'Cookie'"
    )
    .message("sessionAffinity Cookie is only for protocol HTTP (TCP pools may use ClientIP)")
    .field_path(".sessionAffinity.type")
    .reason(Reason::FieldValueForbidden),
    validation = Rule::new(
        "self.protocol == 'HTTP' || (!has(self.cors) && !has(self.basicAuth) && !has(self.externalAuth))"
    )
    .message("cors, basicAuth and externalAuth are only for protocol HTTP")
    .reason(Reason::FieldValueForbidden),
    validation = Rule::new("self.protocol == 'HTTP' || !has(self.upstream)")
        .message("upstream is only for protocol HTTP")
        .field_path(".upstream")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new(
        "self.protocol == 'HTTP' || (!has(self.rateLimit) && !has(self.ipAllowList) && !has(self.ipDenyList) && !has(self.maxRequestBodyBytes))"
    )
    .message("rateLimit, ipAllowList, ipDenyList and maxRequestBodyBytes are only for protocol HTTP")
    .reason(Reason::FieldValueForbidden)
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendPoolSpec {
    /// `HTTP` (default) or `TCP`.
    #[serde(default)]
    pub protocol: Protocol,
    /// Where the pool accepts traffic.
    pub listener: ListenerSpec,
    /// Endpoints from a Service's EndpointSlices (Kubernetes mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceRef>,
    /// Static endpoints (both modes), at most 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_ENDPOINTS))]
    pub endpoints: Option<Vec<EndpointSpec>>,
    /// How often DNS-name endpoints are resolved again (default 30s; `sluice serve` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN), length(max = MAX_DURATION_LEN))]
    pub resolve_every: Option<String>,
    /// Balancing algorithm, default `RoundRobin`.
    #[serde(default)]
    pub algorithm: AlgorithmName,
    /// What ConsistentHash hashes; only with `algorithm: ConsistentHash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_key: Option<HashKeySpec>,
    /// Active health checks; left out = no active checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckSpec>,
    /// Passive health (ejection on live-traffic failures); left out = off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetectionSpec>,
    /// Retries on another endpoint; left out = no retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
    /// Sticky sessions; left out = none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<SessionAffinitySpec>,
    /// Connect / request / idle timeouts (defaults 2s / 30s / 60s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<TimeoutsSpec>,
    /// How long a removed endpoint keeps its in-flight work (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN), length(max = MAX_DURATION_LEN))]
    pub drain_timeout: Option<String>,
    /// Concurrent requests/connections per endpoint; 0 = unlimited (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_connections_per_endpoint: Option<u32>,
    /// TCP only: announce the client address to the backend with PROXY protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_proxy_protocol: Option<ProxyProtocolVersion>,
    /// HTTP only: a second backend set for a share of the traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanarySpec>,
    /// HTTP only: answer with a redirect instead of forwarding (no endpoints needed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<RedirectSpec>,
    /// HTTP only: what is changed in the request sent upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<RewriteSpec>,
    /// HTTP only: headers changed in the request sent upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers: Option<HeaderChangesSpec>,
    /// HTTP only: headers changed in the answer sent to the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_headers: Option<HeaderChangesSpec>,
    /// HTTP only: the HTTP version and TLS spoken to the backends (default plain HTTP/1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamSpec>,
    /// HTTP only: request bodies larger than this many bytes get 413 (at once when
    /// `Content-Length` says so; a streamed body is cut when it grows past it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_request_body_bytes: Option<u64>,
    /// HTTP only: a token bucket per key, per replica; requests over it get 429.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
    /// HTTP only: only client addresses in these networks are served (others get 403);
    /// IPv4 and IPv6 addresses or CIDRs, at most 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_CIDRS), inner(length(max = MAX_CIDR_LEN)))]
    #[x_kube(validation = access::cidr_list())]
    pub ip_allow_list: Option<Vec<String>>,
    /// HTTP only: client addresses in these networks get 403; checked with `ipAllowList`
    /// before anything else. IPv4 and IPv6 addresses or CIDRs, at most 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_CIDRS), inner(length(max = MAX_CIDR_LEN)))]
    #[x_kube(validation = access::cidr_list())]
    pub ip_deny_list: Option<Vec<String>>,
    /// HTTP only: cross-origin resource sharing (preflights answered by sluice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsSpec>,
    /// HTTP only: HTTP basic authentication against an htpasswd list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuthSpec>,
    /// HTTP only: ask an authentication service before forwarding (oauth2-proxy pattern).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_auth: Option<ExternalAuthSpec>,
}

/// Layer the pool balances at.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, JsonSchema, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 and HTTP/2, routed by host and path.
    #[default]
    #[serde(rename = "HTTP")]
    Http,
    /// Plain TCP, one pool per port.
    #[serde(rename = "TCP")]
    Tcp,
}

/// The listener a pool accepts traffic on.
#[derive(Deserialize, Serialize, Clone, Debug, Default, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerSpec {
    /// TCP port; HTTP pools may share one, a TCP pool owns its port.
    #[schemars(range(min = 1, max = 65535))]
    pub port: u32,
    /// HTTP only: exact hosts or `*.suffix` wildcards, at most 100; empty = any host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = MAX_HOSTS),
        inner(regex(pattern = HOST_PATTERN), length(max = 255))
    )]
    pub hosts: Option<Vec<String>>,
    /// HTTP only: path prefix, matched by segment; longest wins (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_PATH_PREFIX_LEN))]
    #[x_kube(
        validation = Rule::new("self.startsWith('/')").message("must start with \"/\""),
        validation = Rule::new("!self.matches('[?#[:space:][:cntrl:]]')")
            .message("must be a path (no query, fragment or whitespace)")
    )]
    pub path_prefix: Option<String>,
    /// Terminate TLS on this listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// Accept PROXY protocol v1/v2 headers from a fronting L4 balancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<bool>,
    /// HTTP only: extra conditions (headers, methods, query parameters); all must hold.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<MatchSpec>,
}

/// Certificate source for TLS termination.
///
/// The same type is the file format, so the schema asks for either source; which one a
/// mode needs (`secretName` in Kubernetes, `certFile` + `keyFile` standalone) is checked by
/// `crate::config::validate`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, KubeSchema, PartialEq)]
#[x_kube(
    validation = Rule::new("has(self.secretName) || (has(self.certFile) && has(self.keyFile))")
        .message("set secretName (Kubernetes mode) or certFile and keyFile (standalone mode)")
        .reason(Reason::FieldValueRequired)
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsSpec {
    /// Kubernetes mode: a `kubernetes.io/tls` Secret in the pool's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DNS_SUBDOMAIN_PATTERN), length(max = 253))]
    pub secret_name: Option<String>,
    /// Standalone mode: PEM certificate chain, relative to the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    /// Standalone mode: PEM private key, relative to the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
}

/// A Service whose EndpointSlices provide endpoints.
#[derive(Deserialize, Serialize, Clone, Debug, Default, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceRef {
    /// Service name in the pool's namespace.
    #[schemars(regex(pattern = DNS_LABEL_PATTERN), length(max = 63))]
    pub name: String,
    /// Service port: a number (1..=65535) or the port's name.
    #[x_kube(
        validation = Rule::new("type(self) == string ? self != '' : self >= 1 && self <= 65535")
            .message("must be a port number 1..=65535 or a port name")
    )]
    pub port: IntOrString,
}

/// A static endpoint.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointSpec {
    /// `ip:port` (IPv6 as `[::1]:80`), or `host:port` with a DNS name (`sluice serve` only:
    /// resolved at load and every `resolveEvery`, each address an endpoint of its own).
    pub address: String,
    /// Relative share, 1..=1000 (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub weight: Option<u32>,
}

/// Balancing algorithm names.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, JsonSchema, PartialEq, Eq)]
pub enum AlgorithmName {
    /// Each endpoint in turn.
    #[default]
    RoundRobin,
    /// Smooth weighted round robin (nginx).
    WeightedRoundRobin,
    /// Fewest in-flight requests relative to weight.
    LeastConnections,
    /// Two random picks, the cheaper by EWMA latency x load.
    PowerOfTwoChoices,
    /// Maglev hashing on a header, cookie or the client IP.
    ConsistentHash,
    /// Uniform random.
    Random,
}

/// The request property ConsistentHash hashes; exactly one must be set.
#[derive(Deserialize, Serialize, Clone, Debug, Default, KubeSchema, PartialEq)]
#[x_kube(
    validation = Rule::new(
        "(has(self.header) ? 1 : 0) + (has(self.cookie) ? 1 : 0) + (has(self.clientIP) && self.clientIP ? 1 : 0) == 1"
    )
    .message("set exactly one of header, cookie, clientIP: true")
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HashKeySpec {
    /// Request header name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = TOKEN_PATTERN))]
    pub header: Option<String>,
    /// Cookie name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = TOKEN_PATTERN))]
    pub cookie: Option<String>,
    /// Hash the client IP address.
    #[serde(default, rename = "clientIP", skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<bool>,
}

/// Active health checking.
#[derive(Deserialize, Serialize, Clone, Debug, Default, KubeSchema, PartialEq)]
#[x_kube(
    validation = Rule::new("!has(self.protocol) || self.protocol == 'HTTP' || !has(self.path)")
        .message("path is only for HTTP health checks")
        .field_path(".path")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new(
        "!has(self.protocol) || self.protocol == 'HTTP' || !has(self.expectedStatuses)"
    )
    .message("expectedStatuses is only for HTTP health checks")
    .field_path(".expectedStatuses")
    .reason(Reason::FieldValueForbidden)
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheckSpec {
    /// `HTTP` (default), `TCP` or `GRPC` (grpc.health.v1 `Check`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<HealthCheckProtocol>,
    /// HTTP only: path requested (default `/healthz`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("must start with \"/\""))]
    pub path: Option<String>,
    /// Port probed; 0 = the endpoint's own port (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 65535))]
    pub port: Option<u32>,
    /// Time between checks (default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN), length(max = MAX_DURATION_LEN))]
    #[x_kube(validation = positive_duration())]
    pub interval: Option<String>,
    /// Time a check may take (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN), length(max = MAX_DURATION_LEN))]
    #[x_kube(validation = positive_duration())]
    pub timeout: Option<String>,
    /// Passes needed to turn healthy (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub healthy_threshold: Option<u32>,
    /// Failures needed to turn unhealthy (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub unhealthy_threshold: Option<u32>,
    /// Status codes or ranges counted as a pass, 1 to 20 of them (default `["200-399"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = MAX_EXPECTED_STATUSES),
        inner(regex(pattern = STATUS_PATTERN), length(max = 7))
    )]
    #[x_kube(
        validation = Rule::new("self.all(s, size(s) != 7 || s.substring(0, 3) <= s.substring(4, 7))")
            .message("a status range must not be empty (low > high)")
    )]
    pub expected_statuses: Option<Vec<String>>,
    /// Use every endpoint when all are unhealthy, rather than answering 503 (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_open: Option<bool>,
}

/// How an endpoint is probed.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, JsonSchema, PartialEq, Eq)]
pub enum HealthCheckProtocol {
    /// `GET path`, passing on an expected status.
    #[default]
    #[serde(rename = "HTTP")]
    Http,
    /// A TCP connect.
    #[serde(rename = "TCP")]
    Tcp,
    /// grpc.health.v1 `Health/Check` for the whole server (service `""`) over HTTP/2
    /// (h2c, or h2 when `upstream.tls` is set), passing on `SERVING`.
    #[serde(rename = "GRPC")]
    Grpc,
}

/// Passive health: ejection on consecutive live-traffic failures.
#[derive(Deserialize, Serialize, Clone, Debug, Default, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutlierDetectionSpec {
    /// Failures in a row that eject (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub consecutive_failures: Option<u32>,
    /// Ejection time, multiplied by the times ejected, capped at 300s (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN), length(max = MAX_DURATION_LEN))]
    #[x_kube(validation = positive_duration())]
    pub base_ejection_time: Option<String>,
    /// Most of the pool that may be ejected at once, in percent (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_ejection_percent: Option<u32>,
}

/// Retries on another endpoint.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetrySpec {
    /// Extra tries after the first (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10))]
    pub attempts: Option<u32>,
    /// Exponential backoff with full jitter (default 25ms .. 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<BackoffSpec>,
    /// Failures that allow a retry (default `[ConnectFailure, Reset, "5xx"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<Vec<RetryOn>>,
    /// Bound on the extra load retries may add (default ratio 0.2, 10/s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<RetryBudgetSpec>,
}

/// Backoff bounds.
#[derive(Deserialize, Serialize, Clone, Debug, Default, KubeSchema, PartialEq)]
// The duration grammar is a subset of Go's, so CEL's `duration()` reads these values.
#[x_kube(
    validation = Rule::new(
        "(has(self.base) ? duration(self.base) : duration('25ms')) <= (has(self.max) ? duration(self.max) : duration('1s'))"
    )
    .message("base must not be greater than max")
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackoffSpec {
    /// First backoff ceiling (default 25ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN), length(max = MAX_DURATION_LEN))]
    pub base: Option<String>,
    /// Largest backoff (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN), length(max = MAX_DURATION_LEN))]
    pub max: Option<String>,
}

/// A failure class that permits a retry.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, JsonSchema, PartialEq, Eq)]
pub enum RetryOn {
    /// The connection to the endpoint could not be made (nothing was sent).
    ConnectFailure,
    /// The connection was reset or closed before a response.
    Reset,
    /// The endpoint answered 5xx.
    #[serde(rename = "5xx")]
    Status5xx,
}

/// Retry budget.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryBudgetSpec {
    /// Retries as a share of requests over 10 s, 0..=1 (default 0.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub ratio: Option<f64>,
    /// Retries always allowed per second (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_per_second: Option<u32>,
}

/// Sticky sessions.
#[derive(Deserialize, Serialize, Clone, Debug, Default, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionAffinitySpec {
    /// `None` (default), `Cookie` or `ClientIP`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<AffinityType>,
    /// Cookie name (default `sluice-affinity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = TOKEN_PATTERN))]
    pub cookie_name: Option<String>,
    /// Cookie lifetime, sent as Max-Age (default 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN), length(max = MAX_DURATION_LEN))]
    #[x_kube(validation = positive_duration())]
    pub ttl: Option<String>,
}

/// Affinity kinds.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, JsonSchema, PartialEq, Eq)]
pub enum AffinityType {
    /// No affinity.
    #[default]
    None,
    /// A cookie naming the endpoint by an opaque token.
    Cookie,
    /// Consistent hash on the client address.
    #[serde(rename = "ClientIP")]
    ClientIp,
}

/// Per-pool timeouts.
#[derive(Deserialize, Serialize, Clone, Debug, Default, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimeoutsSpec {
    /// Upstream connect (default 2s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN), length(max = MAX_DURATION_LEN))]
    #[x_kube(validation = positive_duration())]
    pub connect: Option<String>,
    /// Whole request until response headers (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN), length(max = MAX_DURATION_LEN))]
    #[x_kube(validation = positive_duration())]
    pub request: Option<String>,
    /// Idle connection, downstream and upstream (default 60s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN), length(max = MAX_DURATION_LEN))]
    #[x_kube(validation = positive_duration())]
    pub idle: Option<String>,
}

/// PROXY protocol versions sent to TCP backends.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, JsonSchema, PartialEq, Eq)]
pub enum ProxyProtocolVersion {
    /// Send nothing.
    #[default]
    None,
    /// Text header.
    V1,
    /// Binary header.
    V2,
}
