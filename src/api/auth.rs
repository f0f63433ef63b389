//! The browser and authentication policies of an HTTP `BackendPool` (contract section 4b):
//! `cors`, `basicAuth` and `externalAuth`. As users write them; `crate::config::validate`
//! checks them (the same rules as the CEL below, for standalone mode) and builds the model.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::routing::HttpMethod;
use super::{DNS_SUBDOMAIN_PATTERN, DURATION_PATTERN, MAX_DURATION_LEN, TOKEN_PATTERN};

/// An allowed CORS origin: `*` alone, `scheme://host[:port]`, or `scheme://*.suffix[:port]`
/// (one leading wildcard label: any host under the suffix, not the suffix itself).
pub const ORIGIN_PATTERN: &str = r"^(\*|https?://(\*\.)?[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*(:[0-9]{1,5})?)$";
/// Most entries in one CORS list or one external-auth header list.
pub const MAX_POLICY_ENTRIES: usize = 64;
/// Longest origin, in characters.
pub const MAX_ORIGIN_LEN: usize = 256;
/// Longest external-auth or sign-in URL, in characters.
pub const MAX_URL_LEN: usize = 2048;
/// A realm: printable ASCII without `"` and `\` (it is sent inside a quoted string).
const REALM_PATTERN: &str = r#"^[ !#-\[\]-~]*$"#;
/// The external-auth service: plain `http://` (in-cluster), host and optional port and path.
const AUTH_URL_PATTERN: &str = r"^http://[^/?#@\s]+(/[^#\s]*)?$";
/// Where browsers sign in: any `http(s)://` URL without a fragment.
const SIGNIN_URL_PATTERN: &str = r"^https?://[^/?#@\s]+(/[^#\s]*)?$";

/// Cross-origin resource sharing: sluice answers preflights itself and adds the
/// `Access-Control-*` headers to answers for allowed origins.
#[derive(Deserialize, Serialize, Clone, Debug, Default, KubeSchema, PartialEq)]
#[x_kube(
    validation = Rule::new(
        "!has(self.allowCredentials) || !self.allowCredentials || (has(self.allowOrigins) && !self.allowOrigins.exists(o, o == '*'))"
    )
    .message("allowCredentials needs the origins listed: browsers refuse \"*\" with credentials")
    .field_path(".allowOrigins"),
    validation = Rule::new(
        "!has(self.allowOrigins) || !self.allowOrigins.exists(o, o == '*') || size(self.allowOrigins) == 1"
    )
    .message("\"*\" allows every origin and stands alone")
    .field_path(".allowOrigins")
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorsSpec {
    /// Origins allowed: `*` (default: any origin), `https://app.example`, or
    /// `https://*.example.com` (any subdomain; the port must match exactly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = MAX_POLICY_ENTRIES),
        inner(regex(pattern = ORIGIN_PATTERN), length(max = MAX_ORIGIN_LEN))
    )]
    pub allow_origins: Option<Vec<String>>,
    /// Methods a preflight allows (default GET, PUT, POST, DELETE, PATCH, OPTIONS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub allow_methods: Option<Vec<HttpMethod>>,
    /// Request headers a preflight allows (default DNT, Keep-Alive, User-Agent,
    /// X-Requested-With, If-Modified-Since, Cache-Control, Content-Type, Range, Authorization).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = MAX_POLICY_ENTRIES),
        inner(regex(pattern = TOKEN_PATTERN), length(max = 256))
    )]
    pub allow_headers: Option<Vec<String>>,
    /// Response headers scripts may read (`Access-Control-Expose-Headers`; default none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = MAX_POLICY_ENTRIES),
        inner(regex(pattern = TOKEN_PATTERN), length(max = 256))
    )]
    pub expose_headers: Option<Vec<String>>,
    /// Allow cookies and credentials (default false); needs the origins listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    /// How long browsers may cache a preflight answer (default 24h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN), length(max = MAX_DURATION_LEN))]
    pub max_age: Option<String>,
}

/// HTTP basic authentication against an htpasswd list (bcrypt, apr1 MD5, `$1$` MD5 crypt or
/// `{SHA}`), as `htpasswd` writes it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, KubeSchema, PartialEq)]
#[x_kube(
    validation = Rule::new("has(self.secretName) != has(self.file)")
        .message("set secretName (Kubernetes mode) or file (standalone mode), exactly one")
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BasicAuthSpec {
    /// Kubernetes mode: a Secret (type `Opaque`) in the pool's namespace whose key `auth`
    /// holds the htpasswd lines, as ingress-nginx reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DNS_SUBDOMAIN_PATTERN), length(max = 253))]
    pub secret_name: Option<String>,
    /// Standalone mode: the htpasswd file, relative to the config file; re-read when it
    /// changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub file: Option<String>,
    /// The realm browsers show (default `sluice`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = REALM_PATTERN), length(max = 256))]
    pub realm: Option<String>,
    /// Pass the client's `Authorization` header on to the backends (default false: the
    /// password stays at the proxy; set it when the backend reads the user from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_authorization: Option<bool>,
}

/// Ask an authentication service before forwarding (the oauth2-proxy / ingress-nginx
/// `auth-url` pattern): 2xx forwards, 401/403 are passed to the client, anything else fails
/// closed with 500.
#[derive(Deserialize, Serialize, Clone, Debug, Default, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExternalAuthSpec {
    /// The service asked, `http://host[:port]/path` (a GET per request).
    #[schemars(regex(pattern = AUTH_URL_PATTERN), length(max = MAX_URL_LEN))]
    pub url: String,
    /// Client request headers copied to the auth request (default Authorization, Cookie).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = MAX_POLICY_ENTRIES),
        inner(regex(pattern = TOKEN_PATTERN), length(max = 256))
    )]
    pub request_headers: Option<Vec<String>>,
    /// Headers of a 2xx auth answer copied into the upstream request (any value the client
    /// sent under these names is removed first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = MAX_POLICY_ENTRIES),
        inner(regex(pattern = TOKEN_PATTERN), length(max = 256))
    )]
    pub response_headers: Option<Vec<String>>,
    /// On a 401, redirect (302) here with `rd=<the original URL>` instead.
    #[serde(default, rename = "signinURL", skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SIGNIN_URL_PATTERN), length(max = MAX_URL_LEN))]
    pub signin_url: Option<String>,
    /// Longest wait for the auth answer, connect included (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN), length(max = MAX_DURATION_LEN))]
    #[x_kube(validation = super::positive_duration())]
    pub timeout: Option<String>,
}
