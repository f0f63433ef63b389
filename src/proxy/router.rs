//! Routing table of one HTTP listener port: host, then longest path prefix.
//!
//! Built once per configuration change and read through an `ArcSwap` by every request.
//! Host matching is case-insensitive and ignores the port; an exact host beats the longest
//! matching `*.suffix` wildcard, which beats the pools with no hosts. Within the chosen host
//! group the longest `pathPrefix` matching by whole segments wins. There is no fall-through
//! to a less specific host group (nginx `server_name` and Envoy virtual hosts behave alike).

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderMap, Method};

use crate::config::{HostMatch, RequestMatch};
use crate::pool::Pool;

/// Longest hostname we lower-case on the stack; longer names cannot be valid DNS names.
const MAX_HOST: usize = 253;

/// One route of a host group: a path prefix, optional extra conditions, the pool.
#[derive(Debug, Clone)]
struct Entry {
    prefix: Box<str>,
    /// `None` when the pool has no extra conditions (the common case costs no check).
    matches: Option<Box<RequestMatch>>,
    pool: Arc<Pool>,
}

impl Entry {
    /// Sort key, higher first: prefix length, then the conditions' precedence.
    fn rank(&self) -> (usize, (bool, usize, usize)) {
        let conditions = self.matches.as_ref().map(|m| m.precedence());
        (self.prefix.len(), conditions.unwrap_or_default())
    }
}

/// Routes of one host group in Gateway API precedence: longest path prefix first, then
/// the pool with a method match, then most header matches, then most query matches, then
/// insertion order (the owner of a route is added first).
#[derive(Debug, Default, Clone)]
struct PathTable {
    routes: Vec<Entry>,
}

impl PathTable {
    fn insert(&mut self, prefix: &str, matches: &RequestMatch, pool: Arc<Pool>) {
        let entry = Entry {
            prefix: prefix.into(),
            matches: (!matches.is_empty()).then(|| Box::new(matches.clone())),
            pool,
        };
        // After every route that ranks as high: equal routes keep their insertion order.
        let key = entry.rank();
        let at = self.routes.partition_point(|e| e.rank() >= key);
        self.routes.insert(at, entry);
    }

    fn find(&self, req: &RouteInput<'_>) -> Option<&Arc<Pool>> {
        self.routes
            .iter()
            .find(|e| {
                prefix_matches(&e.prefix, req.path)
                    && e.matches.as_ref().is_none_or(|m| conditions_hold(m, req))
            })
            .map(|e| &e.pool)
    }
}

/// The parts of a request that routing reads.
#[derive(Debug, Clone, Copy)]
pub struct RouteInput<'a> {
    /// `Host` / `:authority` (may carry a port, any case).
    pub host: Option<&'a str>,
    /// The path, without the query.
    pub path: &'a str,
    /// The query string, without `?`.
    pub query: Option<&'a str>,
    /// The method.
    pub method: &'a Method,
    /// The request headers.
    pub headers: &'a HeaderMap,
}

/// Whether every extra condition holds for `req`.
fn conditions_hold(m: &RequestMatch, req: &RouteInput<'_>) -> bool {
    (m.methods.is_empty() || m.methods.contains(req.method))
        && m.headers
            .iter()
            .all(|(name, value)| req.headers.get_all(name).iter().any(|v| v == value))
        && m.query.iter().all(|(name, value)| {
            req.query.is_some_and(|q| {
                q.split('&').any(|pair| match pair.split_once('=') {
                    Some((n, v)) => n == name && v == value,
                    None => pair == name && value.is_empty(),
                })
            })
        })
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

/// The routes of one HTTP port.
#[derive(Debug, Default, Clone)]
pub struct Router {
    exact: HashMap<Box<str>, PathTable>,
    /// `.suffix` patterns, longest first.
    wildcard: Vec<(Box<str>, PathTable)>,
    any: PathTable,
}

impl Router {
    /// Adds `pool` for its hosts (or any host) and path prefix, without extra conditions.
    pub fn add(&mut self, hosts: &[HostMatch], prefix: &str, pool: Arc<Pool>) {
        self.add_route(hosts, prefix, &RequestMatch::default(), pool);
    }

    /// Adds `pool` for its hosts (or any host), path prefix and extra conditions.
    pub fn add_route(
        &mut self,
        hosts: &[HostMatch],
        prefix: &str,
        matches: &RequestMatch,
        pool: Arc<Pool>,
    ) {
        if hosts.is_empty() {
            self.any.insert(prefix, matches, pool);
            return;
        }
        for host in hosts {
            match host {
                HostMatch::Exact(h) => self.exact.entry(h.as_str().into()).or_default().insert(
                    prefix,
                    matches,
                    pool.clone(),
                ),
                HostMatch::Wildcard(suffix) => {
                    match self.wildcard.iter_mut().find(|(s, _)| **s == **suffix) {
                        Some((_, table)) => table.insert(prefix, matches, pool.clone()),
                        None => {
                            let mut table = PathTable::default();
                            table.insert(prefix, matches, pool.clone());
                            self.wildcard.push((suffix.as_str().into(), table));
                            self.wildcard.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
                        }
                    }
                }
            }
        }
    }

    /// The pool for a GET of `path` on `host` without headers or query.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&Arc<Pool>> {
        self.route(&RouteInput {
            host,
            path,
            query: None,
            method: &Method::GET,
            headers: &HeaderMap::new(),
        })
    }

    /// The pool for a request: host group, then the first route of it that matches.
    pub fn route(&self, req: &RouteInput<'_>) -> Option<&Arc<Pool>> {
        let host = req.host.map(strip_port).unwrap_or("");
        let mut buf = [0u8; MAX_HOST];
        let lower = if host.len() <= MAX_HOST {
            let out = &mut buf[..host.len()];
            out.copy_from_slice(host.as_bytes());
            out.make_ascii_lowercase();
            // ASCII lower-casing keeps UTF-8 valid.
            std::str::from_utf8(out).unwrap_or("")
        } else {
            ""
        };
        if !lower.is_empty() {
            if let Some(table) = self.exact.get(lower) {
                return table.find(req);
            }
            for (suffix, table) in &self.wildcard {
                if lower.len() > suffix.len() && lower.ends_with(&**suffix) {
                    return table.find(req);
                }
            }
        }
        self.any.find(req)
    }

    /// Every pool reachable on this port.
    pub fn pools(&self) -> impl Iterator<Item = &Arc<Pool>> {
        self.exact
            .values()
            .chain(self.wildcard.iter().map(|(_, t)| t))
            .chain(std::iter::once(&self.any))
            .flat_map(|t| t.routes.iter().map(|e| &e.pool))
    }
}

/// `host:port` -> `host`; `[v6]:port` -> `[v6]`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rfind(':') {
        Some(i) if host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..i],
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        Algorithm, ListenerConfig, PoolConfig, Protocol, ProxyProtocolVersion, Timeouts,
    };
    use std::time::Duration;

    fn pool(name: &str) -> Arc<Pool> {
        Arc::new(Pool::new(Arc::new(PoolConfig {
            name: name.into(),
            protocol: Protocol::Http,
            listener: ListenerConfig {
                port: 80,
                hosts: vec![],
                path_prefix: "/".into(),
                tls: None,
                proxy_protocol: false,
                matches: Default::default(),
            },
            endpoints: vec![],
            algorithm: Algorithm::RoundRobin,
            health_check: None,
            outlier_detection: None,
            retry: None,
            affinity: None,
            timeouts: Timeouts::default(),
            drain_timeout: Duration::from_secs(30),
            max_connections_per_endpoint: None,
            send_proxy_protocol: ProxyProtocolVersion::None,
            filters: Default::default(),
            canary: None,
            upstream: Default::default(),
        })))
    }

    fn routed<'a>(r: &'a Router, host: &str, path: &str) -> Option<&'a str> {
        r.find(Some(host), path).map(|p| p.name())
    }

    #[test]
    fn exact_host_beats_wildcard_beats_any() {
        let mut r = Router::default();
        r.add(&[], "/", pool("any"));
        r.add(
            &[HostMatch::Wildcard(".example.com".into())],
            "/",
            pool("wild"),
        );
        r.add(
            &[HostMatch::Exact("shop.example.com".into())],
            "/",
            pool("exact"),
        );
        assert_eq!(routed(&r, "shop.example.com", "/"), Some("exact"));
        assert_eq!(routed(&r, "SHOP.Example.com:8080", "/x"), Some("exact"));
        assert_eq!(routed(&r, "a.example.com", "/"), Some("wild"));
        assert_eq!(routed(&r, "a.b.example.com", "/"), Some("wild"));
        assert_eq!(routed(&r, "example.com", "/"), Some("any"));
        assert_eq!(routed(&r, "other.test", "/"), Some("any"));
    }

    #[test]
    fn longest_segment_prefix_wins() {
        let mut r = Router::default();
        r.add(&[], "/", pool("root"));
        r.add(&[], "/api", pool("api"));
        r.add(&[], "/api/v2", pool("v2"));
        assert_eq!(routed(&r, "h", "/api"), Some("api"));
        assert_eq!(routed(&r, "h", "/api/x"), Some("api"));
        assert_eq!(routed(&r, "h", "/api/v2/y"), Some("v2"));
        assert_eq!(routed(&r, "h", "/apix"), Some("root"));
        assert_eq!(routed(&r, "h", "/api?q=1"), Some("api"));
    }

    #[test]
    fn no_match_in_chosen_host_group_is_none() {
        let mut r = Router::default();
        r.add(&[HostMatch::Exact("a.test".into())], "/api", pool("a"));
        r.add(&[], "/", pool("any"));
        assert_eq!(routed(&r, "a.test", "/other"), None);
        assert_eq!(routed(&r, "b.test", "/other"), Some("any"));
    }

    #[test]
    fn longer_wildcard_suffix_is_more_specific() {
        let mut r = Router::default();
        r.add(
            &[HostMatch::Wildcard(".example.com".into())],
            "/",
            pool("short"),
        );
        r.add(
            &[HostMatch::Wildcard(".eu.example.com".into())],
            "/",
            pool("long"),
        );
        assert_eq!(routed(&r, "x.eu.example.com", "/"), Some("long"));
        assert_eq!(routed(&r, "x.us.example.com", "/"), Some("short"));
    }

    #[test]
    fn conditions_order_routes_of_one_prefix_by_gateway_api_precedence() {
        let header = |n: &'static str| {
            (
                http::HeaderName::from_static(n),
                http::HeaderValue::from_static("1"),
            )
        };
        let mut r = Router::default();
        r.add(&[], "/", pool("plain"));
        let one_header = RequestMatch {
            headers: vec![header("x-a")],
            ..RequestMatch::default()
        };
        r.add_route(&[], "/", &one_header, pool("one-header"));
        let two_headers = RequestMatch {
            headers: vec![header("x-a"), header("x-b")],
            ..RequestMatch::default()
        };
        r.add_route(&[], "/", &two_headers, pool("two-headers"));
        let post = RequestMatch {
            methods: vec![Method::POST],
            ..RequestMatch::default()
        };
        r.add_route(&[], "/", &post, pool("post"));
        r.add(&[], "/api", pool("api"));
        let mut headers = HeaderMap::new();
        let find = |method: &Method, headers: &HeaderMap, path: &str| {
            r.route(&RouteInput {
                host: Some("h"),
                path,
                query: None,
                method,
                headers,
            })
            .map(|p| p.name().to_owned())
        };
        assert_eq!(find(&Method::GET, &headers, "/").as_deref(), Some("plain"));
        headers.insert("x-a", http::HeaderValue::from_static("1"));
        assert_eq!(
            find(&Method::GET, &headers, "/").as_deref(),
            Some("one-header")
        );
        headers.insert("x-b", http::HeaderValue::from_static("1"));
        assert_eq!(
            find(&Method::GET, &headers, "/").as_deref(),
            Some("two-headers")
        );
        assert_eq!(find(&Method::POST, &headers, "/").as_deref(), Some("post"));
        // A longer prefix beats any condition on a shorter one.
        assert_eq!(
            find(&Method::POST, &headers, "/api/x").as_deref(),
            Some("api")
        );
    }

    #[test]
    fn ipv6_host_port_is_stripped() {
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("a.test:80"), "a.test");
        assert_eq!(strip_port("a.test"), "a.test");
    }
}
