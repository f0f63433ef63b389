//! Gateway API hostname rules: a Route's `hostnames` intersected with a Listener's
//! `hostname`, wildcards included (`*.example.com` matches one or more labels before
//! `example.com`, never `example.com` itself). Pure string work, lower-cased input.

use crate::config::HostMatch;

/// Whether the wildcard `*.suffix` (given as `.suffix`) covers `host` (exact or wildcard).
fn covers(suffix: &str, host: &str) -> bool {
    match host.strip_prefix('*') {
        // A wildcard covers a narrower (or equal) wildcard.
        Some(other) => other.len() >= suffix.len() && other.ends_with(suffix),
        None => host.len() > suffix.len() && host.ends_with(suffix),
    }
}

/// The hostnames a Route serves on a Listener: `None` when they do not intersect (the
/// Route is not accepted there), `Some(vec![])` for any host.
pub fn intersect(listener: Option<&str>, route: &[String]) -> Option<Vec<String>> {
    let route: Vec<String> = route.iter().map(|h| h.to_ascii_lowercase()).collect();
    let Some(listener) = listener.filter(|l| !l.is_empty()) else {
        return Some(route);
    };
    let listener = listener.to_ascii_lowercase();
    if route.is_empty() {
        return Some(vec![listener]);
    }
    let mut out: Vec<String> = Vec::new();
    for host in route {
        let kept =
            if host == listener || listener.strip_prefix('*').is_some_and(|s| covers(s, &host)) {
                Some(host)
            } else if host.strip_prefix('*').is_some_and(|s| covers(s, &listener)) {
                Some(listener.clone())
            } else {
                None
            };
        if let Some(h) = kept
            && !out.contains(&h)
        {
            out.push(h);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Whether every host `host` names is one `pattern` names (`None`: any host).
fn within(host: &str, pattern: Option<&str>) -> bool {
    match pattern {
        None => true,
        Some(p) if p == host => true,
        Some(p) => p.strip_prefix('*').is_some_and(|s| covers(s, host)),
    }
}

/// Listener isolation: of the hostnames a Route serves on a Listener (`hosts`, from
/// [`intersect`]), drops those that belong to a more specific listener of the same Gateway
/// on the same port (`others`): a request is handled by the most specific listener that
/// matches its host, and only by the routes attached to it.
pub fn isolate(hosts: &mut Vec<String>, listener: Option<&str>, others: &[Option<String>]) {
    let narrower: Vec<&str> = others
        .iter()
        .flatten()
        .map(String::as_str)
        .filter(|o| Some(*o) != listener && within(o, listener))
        .collect();
    hosts.retain(|h| !narrower.iter().any(|o| within(h, Some(o))));
}

/// The router's form of hostnames (`*.x` -> a wildcard on `.x`).
pub fn host_matches(hosts: &[String]) -> Vec<HostMatch> {
    hosts
        .iter()
        .map(|h| match h.strip_prefix('*') {
            Some(suffix) => HostMatch::Wildcard(suffix.to_owned()),
            None => HostMatch::Exact(h.clone()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_listener_without_hostname_keeps_the_route_hostnames() {
        assert_eq!(
            intersect(None, &hosts(&["a.example"])),
            Some(hosts(&["a.example"]))
        );
        assert_eq!(intersect(None, &[]), Some(vec![]));
    }

    #[test]
    fn a_route_without_hostnames_takes_the_listener_hostname() {
        assert_eq!(
            intersect(Some("*.example.com"), &[]),
            Some(hosts(&["*.example.com"]))
        );
    }

    #[test]
    fn a_wildcard_listener_keeps_only_the_route_hostnames_it_covers() {
        let route = hosts(&[
            "test.example.com",
            "foo.test.example.com",
            "example.com",
            "test.example.net",
            "*.example.com",
        ]);
        assert_eq!(
            intersect(Some("*.example.com"), &route),
            Some(hosts(&[
                "test.example.com",
                "foo.test.example.com",
                "*.example.com"
            ]))
        );
    }

    #[test]
    fn a_route_wildcard_narrows_to_the_listener_hostname() {
        assert_eq!(
            intersect(Some("very.specific.com"), &hosts(&["*.specific.com"])),
            Some(hosts(&["very.specific.com"]))
        );
        assert_eq!(
            intersect(Some("*.example.com"), &hosts(&["*.foo.example.com"])),
            Some(hosts(&["*.foo.example.com"]))
        );
        assert_eq!(
            intersect(Some("*.foo.example.com"), &hosts(&["*.example.com"])),
            Some(hosts(&["*.foo.example.com"]))
        );
    }

    #[test]
    fn a_listener_leaves_the_hosts_of_more_specific_listeners_to_them() {
        let others = [
            None,
            Some("*.example.com".to_owned()),
            Some("*.foo.example.com".to_owned()),
            Some("abc.foo.example.com".to_owned()),
        ];
        let all = hosts(&[
            "bar.com",
            "*.example.com",
            "*.foo.example.com",
            "abc.foo.example.com",
        ]);
        let mut on_any = all.clone();
        isolate(&mut on_any, None, &others);
        assert_eq!(on_any, hosts(&["bar.com"]));
        let mut on_wildcard = intersect(Some("*.example.com"), &all).unwrap();
        isolate(&mut on_wildcard, Some("*.example.com"), &others);
        assert_eq!(on_wildcard, hosts(&["*.example.com"]));
        let mut on_foo = intersect(Some("*.foo.example.com"), &all).unwrap();
        isolate(&mut on_foo, Some("*.foo.example.com"), &others);
        assert_eq!(on_foo, hosts(&["*.foo.example.com"]));
        let mut on_abc = intersect(Some("abc.foo.example.com"), &all).unwrap();
        isolate(&mut on_abc, Some("abc.foo.example.com"), &others);
        assert_eq!(on_abc, hosts(&["abc.foo.example.com"]));
    }

    #[test]
    fn disjoint_hostnames_do_not_intersect() {
        assert_eq!(intersect(Some("a.example"), &hosts(&["b.example"])), None);
        assert_eq!(
            intersect(Some("*.example.com"), &hosts(&["example.com"])),
            None
        );
    }
}
