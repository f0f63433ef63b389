//! The routing fields of an HTTP `BackendPool` (contract section 4b): extra match
//! conditions, a redirect instead of forwarding, a rewrite of what is sent upstream, and
//! request/response header changes. As users write them; `crate::config::validate` checks
//! them and builds the model.

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{EndpointSpec, MAX_ENDPOINTS, MAX_PATH_PREFIX_LEN, ServiceRef, TOKEN_PATTERN};

/// A host name without wildcard, any case.
const PLAIN_HOST_PATTERN: &str =
    r"^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*$";

/// Most entries in one match list or one header-change block.
pub const MAX_MATCH_ENTRIES: usize = 16;
/// Longest matched or set header / query value, in characters.
pub const MAX_VALUE_LEN: usize = 4096;

/// Extra conditions a request must meet, besides host and path; all must hold. On one
/// port, host and path, a pool with conditions is tried before one without (Gateway API
/// precedence: methods, then most headers, then most query parameters).
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchSpec {
    /// Headers that must be present with exactly these values (names any case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_MATCH_ENTRIES))]
    pub headers: Option<Vec<HeaderMatchSpec>>,
    /// Request methods, any of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_MATCH_ENTRIES))]
    pub methods: Option<Vec<HttpMethod>>,
    /// Query parameters that must be present with exactly these values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_MATCH_ENTRIES))]
    pub query_params: Option<Vec<QueryMatchSpec>>,
}

/// A header and its exact value.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderMatchSpec {
    /// Header name.
    #[schemars(regex(pattern = TOKEN_PATTERN), length(max = 256))]
    pub name: String,
    /// Exact value (case-sensitive).
    #[schemars(length(max = MAX_VALUE_LEN))]
    pub value: String,
}

/// A query parameter and its exact value.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueryMatchSpec {
    /// Parameter name, exactly as sent.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// Exact value, as sent (not percent-decoded).
    #[schemars(length(max = MAX_VALUE_LEN))]
    pub value: String,
}

/// Request methods a match may name.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, JsonSchema, PartialEq, Eq)]
#[allow(clippy::upper_case_acronyms)]
pub enum HttpMethod {
    /// GET.
    GET,
    /// HEAD.
    HEAD,
    /// POST.
    POST,
    /// PUT.
    PUT,
    /// DELETE.
    DELETE,
    /// OPTIONS.
    OPTIONS,
    /// TRACE.
    TRACE,
    /// PATCH.
    PATCH,
}

/// Answer with a redirect instead of forwarding. Each part left out keeps the request's.
#[derive(Deserialize, Serialize, Clone, Debug, Default, KubeSchema, PartialEq)]
#[x_kube(
    validation = Rule::new("!(has(self.path) && has(self.pathPrefix))")
        .message("set path or pathPrefix, not both")
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedirectSpec {
    /// `http` or `https`; default the request's. A scheme change without `port` drops the
    /// port (the scheme's default applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<Scheme>,
    /// Host; default the request's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = PLAIN_HOST_PATTERN), length(max = 253))]
    pub host: Option<String>,
    /// Port; default the request's (omitted when it is the scheme's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u32>,
    /// Replace the whole path (the query is kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_PATH_PREFIX_LEN))]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("must start with \"/\""))]
    pub path: Option<String>,
    /// Replace the matched `listener.pathPrefix` (the rest of the path and the query are kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_PATH_PREFIX_LEN))]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("must start with \"/\""))]
    pub path_prefix: Option<String>,
    /// 301, 302, 303, 307 or 308 (default 308).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(
        validation = Rule::new("self in [301, 302, 303, 307, 308]")
            .message("must be 301, 302, 303, 307 or 308")
    )]
    pub status_code: Option<u32>,
}

/// A URL scheme a redirect may name.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, JsonSchema, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    #[serde(rename = "http")]
    Http,
    /// HTTPS.
    #[serde(rename = "https")]
    Https,
}

/// What is changed in the request sent upstream.
#[derive(Deserialize, Serialize, Clone, Debug, Default, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RewriteSpec {
    /// Replaces the matched `listener.pathPrefix` (the rest of the path and the query are
    /// kept): `/api` -> `/` sends `/api/users` as `/users`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_PATH_PREFIX_LEN))]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("must start with \"/\""))]
    pub path_prefix: Option<String>,
    /// The `Host` sent upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = PLAIN_HOST_PATTERN), length(max = 253))]
    pub host: Option<String>,
}

/// Header changes: `set` replaces, `add` appends, `remove` deletes (names any case).
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderChangesSpec {
    /// Headers set, replacing any value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_MATCH_ENTRIES))]
    pub set: Option<BTreeMap<String, String>>,
    /// Headers added beside any value already there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_MATCH_ENTRIES))]
    pub add: Option<BTreeMap<String, String>>,
    /// Headers removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_MATCH_ENTRIES), inner(regex(pattern = TOKEN_PATTERN)))]
    pub remove: Option<Vec<String>>,
}

/// A second backend set that takes a share of the pool's requests, with the pool's health,
/// balancing and timeout settings.
#[derive(Deserialize, Serialize, Clone, Debug, Default, KubeSchema, PartialEq)]
#[x_kube(
    validation = Rule::new("has(self.service) || has(self.endpoints)")
        .message("either service or endpoints is required")
        .reason(Reason::FieldValueRequired)
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanarySpec {
    /// Endpoints from this Service's EndpointSlices (Kubernetes mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceRef>,
    /// Static endpoints (both modes), at most 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_ENDPOINTS))]
    pub endpoints: Option<Vec<EndpointSpec>>,
    /// Percent of requests sent to the canary, 0..=100 (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub weight: Option<u32>,
    /// Requests carrying this header with this value always go to the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderMatchSpec>,
}
