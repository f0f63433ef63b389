//! Routing table of one HTTP listener port: host, then the best path, then extra conditions.
//!
//! Built once per configuration change and read through an `ArcSwap` by every request.
//! Host matching is case-insensitive and ignores the port; an exact host beats the longest
//! matching `*.suffix` wildcard, which beats the routes with no hosts. Within the chosen host
//! group routes are tried in Gateway API precedence (exact path, then regular expressions,
//! then the longest segment prefix; then method, header and query conditions). There is no
//! fall-through to a less specific host group (nginx `server_name` and Envoy virtual hosts
//! behave alike). The table is generic over what a route leads to, so it can be tested and
//! benchmarked on its own.

use std::collections::HashMap;

use http::{HeaderMap, Method};

use crate::config::{HostMatch, PathMatch, RequestMatch, first_segment};

/// Longest hostname we lower-case on the stack; longer names cannot be valid DNS names.
const MAX_HOST: usize = 253;

/// One route of a host group: a path condition, optional extra conditions, the target.
#[derive(Debug, Clone)]
struct Entry<T> {
    path: PathMatch,
    /// `None` when the route has no extra conditions (the common case costs no check).
    matches: Option<Box<RequestMatch>>,
    target: T,
}

/// Sort key of an entry, higher first: the path's rank, then the conditions' precedence.
type Rank = ((u8, usize), (bool, usize, usize));

impl<T> Entry<T> {
    fn rank(&self) -> Rank {
        let conditions = self.matches.as_ref().map(|m| m.precedence());
        (self.path.rank(), conditions.unwrap_or_default())
    }
}

/// Routes of one host group in precedence order; equal routes keep insertion order (the
/// older owner's route is added first).
#[derive(Debug, Clone)]
struct PathTable<T> {
    /// In insertion order until [`PathTable::seal`] sorts them by precedence.
    routes: Vec<Entry<T>>,
    /// Whether `routes` is in precedence order.
    sorted: bool,
    /// Built by [`Router::seal`] for large tables; cleared by an insert.
    index: Option<SegmentIndex>,
}

/// Tables with at least this many routes get a [`SegmentIndex`]; smaller ones are scanned.
const INDEX_FROM: usize = 32;

/// Which routes of a table can match a path, by the path's first segment: most routes can
/// only match paths that start with their own first segment ([`PathMatch::first_segment`]);
/// the others (`/`, most regular expressions) are `generic`. Lists hold positions in the
/// table, ascending, so walking both in order keeps the precedence.
#[derive(Debug, Clone, Default)]
struct SegmentIndex {
    by_segment: HashMap<Box<str>, Vec<u32>>,
    generic: Vec<u32>,
}

impl<T> Default for PathTable<T> {
    fn default() -> Self {
        PathTable {
            routes: Vec::new(),
            sorted: true,
            index: None,
        }
    }
}

impl<T> PathTable<T> {
    /// Appends a route; building is linear, the order is settled by [`PathTable::seal`].
    fn insert(&mut self, path: &PathMatch, matches: &RequestMatch, target: T) {
        self.routes.push(Entry {
            path: path.clone(),
            matches: (!matches.is_empty()).then(|| Box::new(matches.clone())),
            target,
        });
        self.sorted = self.routes.len() <= 1;
        self.index = None;
    }

    /// Sorts by precedence (a stable sort: equal routes keep their insertion order) and
    /// indexes a large table.
    fn seal(&mut self) {
        if !self.sorted {
            self.routes.sort_by_key(|e| std::cmp::Reverse(e.rank()));
            self.sorted = true;
        }
        if self.routes.len() < INDEX_FROM {
            return;
        }
        let mut index = SegmentIndex::default();
        for (i, e) in self.routes.iter().enumerate() {
            let at = i as u32;
            match e.path.first_segment() {
                Some(segment) => index.by_segment.entry(segment.into()).or_default().push(at),
                None => index.generic.push(at),
            }
        }
        self.index = Some(index);
    }

    fn find(&self, req: &RouteInput<'_>) -> Option<&T> {
        if !self.sorted {
            return self.find_unsorted(req);
        }
        let Some(index) = &self.index else {
            return self
                .routes
                .iter()
                .find(|e| accepts(e, req))
                .map(|e| &e.target);
        };
        let specific = index
            .by_segment
            .get(first_segment(req.path))
            .map_or(&[][..], Vec::as_slice);
        let (mut a, mut b) = (specific.iter().peekable(), index.generic.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) if x < y => a.next(),
                (_, Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, None) => return None,
            };
            let entry = next.and_then(|&i| self.routes.get(i as usize))?;
            if accepts(entry, req) {
                return Some(&entry.target);
            }
        }
    }

    /// The same answer before sealing: the highest-ranked match, the earliest on a tie.
    fn find_unsorted(&self, req: &RouteInput<'_>) -> Option<&T> {
        let mut best: Option<&Entry<T>> = None;
        for e in self.routes.iter().filter(|e| accepts(e, req)) {
            if best.is_none_or(|b| e.rank() > b.rank()) {
                best = Some(e);
            }
        }
        best.map(|e| &e.target)
    }
}

/// Whether a route's path and extra conditions hold for `req`.
fn accepts<T>(e: &Entry<T>, req: &RouteInput<'_>) -> bool {
    e.path.matches(req.path) && e.matches.as_ref().is_none_or(|m| conditions_hold(m, req))
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

/// The routes of one HTTP port, each leading to a `T`.
#[derive(Debug, Clone)]
pub struct Router<T> {
    exact: HashMap<Box<str>, PathTable<T>>,
    /// `.suffix` patterns, longest first.
    wildcard: Vec<(Box<str>, PathTable<T>)>,
    any: PathTable<T>,
}

impl<T> Default for Router<T> {
    fn default() -> Self {
        Router {
            exact: HashMap::new(),
            wildcard: Vec::new(),
            any: PathTable::default(),
        }
    }
}

impl<T: Clone> Router<T> {
    /// Adds `target` for its hosts (or any host) and path prefix, without extra conditions.
    pub fn add(&mut self, hosts: &[HostMatch], prefix: &str, target: T) {
        let path = PathMatch::Prefix(prefix.to_owned());
        self.add_route(hosts, &path, &RequestMatch::default(), target);
    }

    /// Adds `target` for its hosts (or any host), path condition and extra conditions.
    pub fn add_route(
        &mut self,
        hosts: &[HostMatch],
        path: &PathMatch,
        matches: &RequestMatch,
        target: T,
    ) {
        if hosts.is_empty() {
            self.any.insert(path, matches, target);
            return;
        }
        for host in hosts {
            match host {
                HostMatch::Exact(h) => self.exact.entry(h.as_str().into()).or_default().insert(
                    path,
                    matches,
                    target.clone(),
                ),
                HostMatch::Wildcard(suffix) => {
                    match self.wildcard.iter_mut().find(|(s, _)| **s == **suffix) {
                        Some((_, table)) => table.insert(path, matches, target.clone()),
                        None => {
                            let mut table = PathTable::default();
                            table.insert(path, matches, target.clone());
                            self.wildcard.push((suffix.as_str().into(), table));
                            self.wildcard.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
                        }
                    }
                }
            }
        }
    }
}

impl<T> Router<T> {
    /// Puts every host group in precedence order and indexes the large ones by first path
    /// segment, so that a lookup among thousands of paths on one host checks only the
    /// routes that can match. Call after the last `add`: an unsealed table still answers
    /// correctly, by scanning all of its routes.
    pub fn seal(mut self) -> Self {
        for table in self.exact.values_mut() {
            table.seal();
        }
        for (_, table) in &mut self.wildcard {
            table.seal();
        }
        self.any.seal();
        self
    }

    /// The target for a GET of `path` on `host` without headers or query.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&T> {
        self.route(&RouteInput {
            host,
            path,
            query: None,
            method: &Method::GET,
            headers: &HeaderMap::new(),
        })
    }

    /// The target for a request: host group, then the first route of it that matches.
    pub fn route(&self, req: &RouteInput<'_>) -> Option<&T> {
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
    use crate::config::PathRegex;

    /// A router whose targets are names: what the table decides, without pools.
    type Names = Router<&'static str>;

    fn pool(name: &'static str) -> &'static str {
        name
    }

    fn routed<'a>(r: &'a Names, host: &str, path: &str) -> Option<&'a str> {
        r.find(Some(host), path).copied()
    }

    #[test]
    fn exact_host_beats_wildcard_beats_any() {
        let mut r = Names::default();
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
        let mut r = Names::default();
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
        let mut r = Names::default();
        r.add(&[HostMatch::Exact("a.test".into())], "/api", pool("a"));
        r.add(&[], "/", pool("any"));
        assert_eq!(routed(&r, "a.test", "/other"), None);
        assert_eq!(routed(&r, "b.test", "/other"), Some("any"));
    }

    #[test]
    fn longer_wildcard_suffix_is_more_specific() {
        let mut r = Names::default();
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
        let mut r = Names::default();
        r.add(&[], "/", pool("plain"));
        let one_header = RequestMatch {
            headers: vec![header("x-a")],
            ..RequestMatch::default()
        };
        let root = PathMatch::Prefix("/".into());
        r.add_route(&[], &root, &one_header, pool("one-header"));
        let two_headers = RequestMatch {
            headers: vec![header("x-a"), header("x-b")],
            ..RequestMatch::default()
        };
        r.add_route(&[], &root, &two_headers, pool("two-headers"));
        let post = RequestMatch {
            methods: vec![Method::POST],
            ..RequestMatch::default()
        };
        r.add_route(&[], &root, &post, pool("post"));
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
            .map(|p| p.to_string())
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

    #[test]
    fn exact_path_beats_regex_beats_prefix() {
        let mut r = Names::default();
        let none = RequestMatch::default();
        r.add(&[], "/", pool("root"));
        r.add(&[], "/users", pool("prefix"));
        let regex = PathMatch::Regex(PathRegex::new("/users/[0-9]+").expect("valid"));
        r.add_route(&[], &regex, &none, pool("regex"));
        r.add_route(
            &[],
            &PathMatch::Exact("/users/0".into()),
            &none,
            pool("exact"),
        );
        assert_eq!(routed(&r, "h", "/users/0"), Some("exact"));
        assert_eq!(routed(&r, "h", "/users/42"), Some("regex"));
        assert_eq!(routed(&r, "h", "/users/42/edit"), Some("prefix"));
        assert_eq!(routed(&r, "h", "/users/bob"), Some("prefix"));
        assert_eq!(routed(&r, "h", "/other"), Some("root"));
    }

    #[test]
    fn exact_path_does_not_match_below_itself() {
        let mut r = Names::default();
        let none = RequestMatch::default();
        r.add_route(
            &[],
            &PathMatch::Exact("/login".into()),
            &none,
            pool("login"),
        );
        assert_eq!(routed(&r, "h", "/login"), Some("login"));
        assert_eq!(routed(&r, "h", "/login/x"), None);
    }

    #[test]
    fn equal_routes_keep_the_order_they_were_added_in() {
        let mut r = Names::default();
        r.add(&[HostMatch::Exact("a.test".into())], "/x", pool("older"));
        r.add(&[HostMatch::Exact("a.test".into())], "/x", pool("newer"));
        assert_eq!(routed(&r, "a.test", "/x/y"), Some("older"));
    }

    #[test]
    fn a_sealed_table_finds_what_a_scan_finds() {
        let mut r = Names::default();
        let none = RequestMatch::default();
        let names: Vec<&'static str> = (0..200)
            .map(|i| &*Box::leak(format!("p{i}").into_boxed_str()))
            .collect();
        for (i, name) in names.iter().enumerate() {
            let path = match i % 4 {
                0 => PathMatch::Prefix(format!("/s{}", i / 4)),
                1 => PathMatch::Prefix(format!("/s{}/deep", i / 4)),
                2 => PathMatch::Exact(format!("/s{}/x", i / 4)),
                _ => PathMatch::Regex(PathRegex::new(&format!("/r{}/.*", i / 4)).expect("valid")),
            };
            r.add_route(&[], &path, &none, name);
        }
        r.add(&[], "/", pool("root"));
        let sealed = r.clone().seal();
        assert!(sealed.any.index.is_some() && r.any.index.is_none());
        let paths = [
            "/",
            "/s3",
            "/s3/",
            "/s3/deep",
            "/s3/deep/er",
            "/s3/x",
            "/s3/x/y",
            "/r5/a",
            "/r5",
            "/s49/x",
            "/nothing",
            "/s1?x=1",
        ];
        for path in paths {
            assert_eq!(routed(&sealed, "h", path), routed(&r, "h", path), "{path}");
        }
        assert_eq!(routed(&sealed, "h", "/s3/x"), Some("p14"));
        assert_eq!(routed(&sealed, "h", "/r5/a"), Some("p23"));
        assert_eq!(routed(&sealed, "h", "/nothing"), Some("root"));
    }
}
