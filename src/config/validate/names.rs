//! Name grammars: DNS names and host patterns, Kubernetes object names, cookie names.

use crate::config::HostMatch;

/// A lower-case RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub(super) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A lower-case RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub(super) fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Parses a `listener.hosts` entry: an exact DNS name or `*.suffix`, lower-cased.
pub(super) fn parse_host(raw: &str) -> Result<HostMatch, String> {
    let host = raw.to_ascii_lowercase();
    if host.contains(':') {
        return Err(format!(
            "invalid host {raw:?}: a host must not include a port"
        ));
    }
    if let Some(suffix) = host.strip_prefix("*.") {
        if is_dns_subdomain(suffix) {
            return Ok(HostMatch::Wildcard(format!(".{suffix}")));
        }
    } else if !host.contains('*') && is_dns_subdomain(&host) {
        return Ok(HostMatch::Exact(host));
    }
    Err(format!(
        "invalid host {raw:?} (expected a DNS name like shop.example or a wildcard like *.example.com)"
    ))
}

/// An RFC 6265 cookie name: a non-empty HTTP token.
pub(super) fn is_cookie_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
