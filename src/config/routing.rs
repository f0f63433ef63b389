//! The validated routing parts of an HTTP pool: extra match conditions and the filters
//! applied to what it forwards (or the redirect it answers with instead).

use http::{HeaderName, HeaderValue, Method, StatusCode};

use std::sync::Arc;

use super::{AccessPolicy, BasicAuthConfig, CorsConfig, EndpointConfig, ExternalAuthConfig};

/// Suffix of the name under which a pool's canary backend set is served (in `/pools`, the
/// metrics' `pool` label and logs): `#` cannot occur in a Kubernetes name, so it never
/// collides with a real pool.
pub const CANARY_SUFFIX: &str = "#canary";

/// A second backend set for a share of a pool's requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanaryConfig {
    /// Its endpoints (static, or resolved from its Service).
    pub endpoints: Vec<EndpointConfig>,
    /// Percent of requests, 0..=100.
    pub weight: u32,
    /// Requests with this header value always go to the canary.
    pub header: Option<(HeaderName, HeaderValue)>,
}

/// Extra request conditions (all must hold); empty = none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RequestMatch {
    /// Headers with their exact values.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Accepted methods (any); empty = every method.
    pub methods: Vec<Method>,
    /// Query parameters with their exact values, as sent.
    pub query: Vec<(String, String)>,
}

impl RequestMatch {
    /// Whether there is no condition at all.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty() && self.methods.is_empty() && self.query.is_empty()
    }

    /// Gateway API precedence among routes with the same host and path: a method match,
    /// then the most header matches, then the most query matches. Higher sorts first.
    pub fn precedence(&self) -> (bool, usize, usize) {
        (
            !self.methods.is_empty(),
            self.headers.len(),
            self.query.len(),
        )
    }
}

/// What a pool does to a request besides choosing an endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteFilters {
    /// Address lists, rate limit and body limit, checked before anything else.
    pub access: AccessPolicy,
    /// Answer with this redirect instead of forwarding.
    pub redirect: Option<RedirectConfig>,
    /// Path prefix and `Host` rewritten upstream.
    pub rewrite: Option<RewriteConfig>,
    /// Request header changes (applied before sluice sets `X-Forwarded-*`).
    pub request_headers: HeaderChanges,
    /// Response header changes.
    pub response_headers: HeaderChanges,
    /// Cross-origin resource sharing (`cors`), when configured.
    pub cors: Option<Arc<CorsConfig>>,
    /// HTTP basic authentication (`basicAuth`), when configured.
    pub basic_auth: Option<Arc<BasicAuthConfig>>,
    /// Authentication by an external service (`externalAuth`), when configured.
    pub external_auth: Option<Arc<ExternalAuthConfig>>,
}

/// A redirect; each part left `None` keeps the request's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectConfig {
    /// `http` or `https`.
    pub scheme: Option<&'static str>,
    /// Host (lower-case).
    pub host: Option<String>,
    /// Port.
    pub port: Option<u16>,
    /// New path.
    pub path: Option<PathReplace>,
    /// 301, 302, 303, 307 or 308.
    pub status: StatusCode,
}

/// How a path is replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathReplace {
    /// The whole path.
    Full(String),
    /// The matched `pathPrefix` only.
    Prefix(String),
}

/// What is rewritten in the request sent upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteConfig {
    /// Replaces the matched `pathPrefix`.
    pub path_prefix: Option<String>,
    /// Replaces the whole path (Gateway API `ReplaceFullPath`); wins over `path_prefix`.
    pub full_path: Option<String>,
    /// The `Host` sent upstream.
    pub host: Option<HeaderValue>,
}

/// Header changes, in the order applied: remove, set, add.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderChanges {
    /// Removed.
    pub remove: Vec<HeaderName>,
    /// Set, replacing any value.
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Appended.
    pub add: Vec<(HeaderName, HeaderValue)>,
}

impl HeaderChanges {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }

    /// Applies the changes to `headers`.
    pub fn apply(&self, headers: &mut http::HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }
}
