//! Routes: the middle of the model every front end translates into.
//!
//! ```text
//! listener port (PoolConfig.listener: port, TLS by SNI, PROXY)
//!   └─ routes (RouteConfig: hosts, path Exact | Prefix | RegularExpression, extra matches,
//!        │      filters, action)
//!        └─ backends (PoolConfig by name: endpoints, balancing, health, retry, upstream)
//! ```
//!
//! A BackendPool is one listener entry, one route ([`PoolConfig::route`]) and one backend
//! (plus its canary). Routes name backends, so routes to the same backend share one endpoint
//! set, one health checker and one connection pool.

use std::sync::Arc;

use http::{HeaderName, HeaderValue, StatusCode};

use super::{CANARY_SUFFIX, HostMatch, PoolConfig, Protocol, RequestMatch, RouteFilters};

/// One route on an HTTP listener port.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    /// Who placed the route (a BackendPool's own route carries the pool's name); logs.
    pub owner: String,
    /// The listener port the route is served on.
    pub port: u16,
    /// Hosts matched (lower-cased); empty = any.
    pub hosts: Vec<HostMatch>,
    /// The path condition.
    pub path: PathMatch,
    /// Extra conditions (headers, methods, query); empty = none.
    pub matches: RequestMatch,
    /// Redirect, rewrite and header changes.
    pub filters: Arc<RouteFilters>,
    /// What a matched request gets.
    pub action: RouteAction,
}

/// How a route matches the request path (the query is never part of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// Segment-wise prefix: `/api` matches `/api`, `/api/` and `/api/x`, not `/apix`.
    Prefix(String),
    /// The whole path, byte for byte.
    Exact(String),
    /// A regular expression that must match the whole path.
    Regex(PathRegex),
}

impl PathMatch {
    /// Whether `path` (without the query) matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Prefix(prefix) => prefix_matches(prefix, path),
            PathMatch::Exact(exact) => path == exact,
            PathMatch::Regex(re) => re.0.is_match(path),
        }
    }

    /// The part of the path a `pathPrefix` rewrite or redirect replaces: the prefix, or
    /// the whole exact path; nothing for a regular expression.
    pub fn replaced_prefix(&self) -> &str {
        match self {
            PathMatch::Prefix(p) | PathMatch::Exact(p) => p,
            PathMatch::Regex(_) => "",
        }
    }

    /// The first path segment every path this matches starts with (`/api/v1` -> `api`),
    /// when there is one: lets a router skip routes that cannot match. `None` for `/`,
    /// and for an expression that does not begin with a plain literal segment.
    pub fn first_segment(&self) -> Option<&str> {
        match self {
            PathMatch::Prefix(p) if p == "/" => None,
            PathMatch::Prefix(p) | PathMatch::Exact(p) => Some(first_segment(p)),
            PathMatch::Regex(re) => literal_first_segment(re.as_str()),
        }
    }

    /// Precedence among paths of one host, higher first: exact paths, then regular
    /// expressions (longer pattern first), then prefixes (longer first) — Gateway API's
    /// order, with regular expressions placed as Envoy Gateway places them.
    pub fn rank(&self) -> (u8, usize) {
        match self {
            PathMatch::Exact(p) => (3, p.len()),
            PathMatch::Regex(re) => (2, re.as_str().len()),
            PathMatch::Prefix(p) => (1, p.len()),
        }
    }
}

/// `/api/v1` -> `api`; `/` -> `` (a query, if any, is not part of it).
pub fn first_segment(path: &str) -> &str {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    &rest[..end]
}

/// `/api/.*` -> `api`: a pattern that starts with `/`, a run of plain characters and then
/// its end or a `/` that no quantifier makes optional, and has no alternation anywhere.
fn literal_first_segment(pattern: &str) -> Option<&str> {
    let rest = pattern.strip_prefix('/')?;
    if pattern.contains('|') {
        return None;
    }
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(rest.len());
    let (segment, after) = rest.split_at(end);
    let mut after = after.chars();
    let ends_segment = match after.next() {
        None => true,
        Some('/') => !matches!(after.next(), Some('*' | '?' | '+' | '{')),
        Some(_) => false,
    };
    (ends_segment && !segment.is_empty()).then_some(segment)
}

/// `/api` matches `/api`, `/api/`, `/api/x` and `/api?q`, not `/apix`; `/` matches all.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'),
        None => false,
    }
}

/// A compiled path expression, anchored at both ends; equal when the patterns are.
#[derive(Debug, Clone)]
pub struct PathRegex(regex::Regex);

impl PathRegex {
    /// Compiles `pattern` so that it must match the whole path (RE2 syntax, no
    /// backtracking: a hostile path cannot make matching slow).
    pub fn new(pattern: &str) -> Result<PathRegex, regex::Error> {
        regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
            .size_limit(1 << 20)
            .build()
            .map(PathRegex)
    }

    /// The pattern as written (inside the added anchors).
    pub fn as_str(&self) -> &str {
        let full = self.0.as_str();
        full.get(4..full.len() - 2).unwrap_or(full)
    }
}

impl PartialEq for PathRegex {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for PathRegex {}

/// What a matched request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteAction {
    /// Forwarded to one of the backends (or redirected when the filters say so).
    Forward(ForwardTo),
    /// A fixed answer from sluice (e.g. 500 for a route whose backends are all invalid).
    Respond(StatusCode),
}

/// The backends of a forwarding route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardTo {
    /// Backends chosen by weight; a weight of 0 receives nothing.
    pub backends: Vec<WeightedBackend>,
    /// Taken before the weighted choice: requests with its header, and its share of the
    /// rest, go to its backend.
    pub canary: Option<CanaryRule>,
}

/// A backend of a route and its share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedBackend {
    /// The backend's (pool's) name.
    pub name: String,
    /// Relative weight.
    pub weight: u32,
}

/// A canary split: ingress-nginx's `canary-weight` / `canary-by-header` and a
/// BackendPool's `canary`. Its requests are counted in `sluice_canary_requests_total` of
/// the route's first backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanaryRule {
    /// The canary backend's name.
    pub backend: String,
    /// Percent of requests, 0..=100.
    pub weight: u32,
    /// Requests with this header value always go to the canary.
    pub header: Option<(HeaderName, HeaderValue)>,
}

impl PoolConfig {
    /// The BackendPool's own route: its listener's hosts, path prefix and matches, its
    /// filters, forwarding to itself (and its canary). `None` for TCP pools.
    pub fn route(&self) -> Option<RouteConfig> {
        if self.protocol != Protocol::Http {
            return None;
        }
        let canary = self.canary.as_ref().map(|c| CanaryRule {
            backend: format!("{}{CANARY_SUFFIX}", self.name),
            weight: c.weight,
            header: c.header.clone(),
        });
        Some(RouteConfig {
            owner: self.name.clone(),
            port: self.listener.port,
            hosts: self.listener.hosts.clone(),
            path: PathMatch::Prefix(self.listener.path_prefix.clone()),
            matches: self.listener.matches.clone(),
            filters: Arc::new(self.filters.clone()),
            action: RouteAction::Forward(ForwardTo {
                backends: vec![WeightedBackend {
                    name: self.name.clone(),
                    weight: 1,
                }],
                canary,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_path_matches_only_itself() {
        let p = PathMatch::Exact("/login".into());
        assert!(p.matches("/login"));
        assert!(!p.matches("/login/"));
        assert!(!p.matches("/login/x"));
        assert!(!p.matches("/log"));
    }

    #[test]
    fn prefix_matches_whole_segments() {
        let p = PathMatch::Prefix("/api".into());
        assert!(p.matches("/api"));
        assert!(p.matches("/api/"));
        assert!(p.matches("/api/v1"));
        assert!(!p.matches("/apiv1"));
        assert!(PathMatch::Prefix("/".into()).matches("/anything"));
    }

    #[test]
    fn regex_must_match_the_whole_path() {
        let p = PathMatch::Regex(PathRegex::new(r"/user/[0-9]+").expect("valid"));
        assert!(p.matches("/user/42"));
        assert!(!p.matches("/user/42/edit"));
        assert!(!p.matches("/x/user/42"));
        let PathMatch::Regex(re) = &p else {
            unreachable!()
        };
        assert_eq!(re.as_str(), "/user/[0-9]+");
    }

    #[test]
    fn regex_alternation_stays_inside_the_anchors() {
        let p = PathMatch::Regex(PathRegex::new("/a|/b").expect("valid"));
        assert!(p.matches("/a"));
        assert!(p.matches("/b"));
        assert!(!p.matches("/a/x"));
        assert!(!p.matches("/x/b"));
    }

    #[test]
    fn exact_ranks_above_regex_above_prefix() {
        let exact = PathMatch::Exact("/a".into()).rank();
        let regex = PathMatch::Regex(PathRegex::new("/a.*").expect("valid")).rank();
        let long_prefix = PathMatch::Prefix("/a/very/long/prefix".into()).rank();
        assert!(exact > regex);
        assert!(regex > long_prefix);
        assert!(long_prefix > PathMatch::Prefix("/a".into()).rank());
    }

    #[test]
    fn a_regex_names_its_first_segment_only_when_it_is_a_plain_literal() {
        let seg = |p: &str| {
            PathMatch::Regex(PathRegex::new(p).expect("valid"))
                .first_segment()
                .map(str::to_owned)
        };
        assert_eq!(seg("/api/.*").as_deref(), Some("api"));
        assert_eq!(seg("/user-1/[0-9]+").as_deref(), Some("user-1"));
        assert_eq!(seg("/api").as_deref(), Some("api"));
        assert_eq!(seg("/api/?x"), None, "the slash is optional: /apix matches");
        assert_eq!(seg("/api/*x"), None, "the slash may be absent");
        assert_eq!(seg("/a/x|/b/y"), None, "alternation");
        assert_eq!(seg("/ap.*"), None);
        assert_eq!(seg("(?i)/api/.*"), None);
        assert_eq!(seg("/(api|web)/x"), None);
        assert_eq!(PathMatch::Prefix("/".into()).first_segment(), None);
        assert_eq!(PathMatch::Exact("/".into()).first_segment(), Some(""));
    }
}
