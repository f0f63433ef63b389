//! What a strict HTTP/1.1 reader (RFC 9112) refuses in a request head, shared by sluice's
//! own request loop and the smuggling guard in front of hyper, so both refuse the same.
//!
//! Limits follow the field's anchors: a request line over 8 KiB is 414 (nginx's
//! `large_client_header_buffers`), more than 100 header fields is 431 (Envoy's default);
//! one field may still be as large as the 64 KiB head allows.

use http::StatusCode;

/// Longest request line (method, target, version; without CRLF).
pub const MAX_REQUEST_LINE: usize = 8 * 1024;
/// Most header fields in a request head.
pub const MAX_HEADER_FIELDS: usize = 100;

/// Whether `value` is a valid `Host` field value: `uri-host [":" port]` (RFC 9112 3.2,
/// RFC 3986 3.2.2): no whitespace, no comma list, no userinfo, a port of digits that is
/// at most 65535. An empty value is valid here; whether it is allowed depends on the
/// request target ([`host_allowed`]).
pub fn valid_host(value: &[u8]) -> bool {
    let (host, port) = match value.first() {
        Some(b'[') => match value.iter().position(|&b| b == b']') {
            Some(end) => {
                let literal = &value[1..end];
                if literal.is_empty()
                    || !literal
                        .iter()
                        .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
                {
                    return false;
                }
                match &value[end + 1..] {
                    [] => (&value[..0], None),
                    [b':', port @ ..] => (&value[..0], Some(port)),
                    _ => return false,
                }
            }
            None => return false,
        },
        _ => match value.iter().rposition(|&b| b == b':') {
            Some(colon) => (&value[..colon], Some(&value[colon + 1..])),
            None => (value, None),
        },
    };
    host.iter().all(|&b| is_reg_name_char(b)) && port.is_none_or(valid_port)
}

/// RFC 3986 reg-name characters (unreserved, pct-encoded, sub-delims) except `,`, which
/// would make a list of hosts.
fn is_reg_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+;=".contains(&b)
}

/// `*DIGIT` naming a port: digits only, at most 65535 (empty is allowed by RFC 3986).
fn valid_port(port: &[u8]) -> bool {
    port.iter().all(u8::is_ascii_digit)
        && (port.is_empty()
            || std::str::from_utf8(port)
                .ok()
                .and_then(|p| p.parse::<u64>().ok())
                .is_some_and(|p| p <= 65535))
}

/// Whether the `Host` fields of a request are acceptable: HTTP/1.1 needs exactly one
/// (HTTP/1.0 at most one), valid, and non-empty for an origin-form target (absolute-form
/// targets name their authority themselves).
pub fn host_allowed<'a>(
    http11: bool,
    origin_form: bool,
    mut hosts: impl Iterator<Item = &'a [u8]>,
) -> bool {
    match (hosts.next(), hosts.next()) {
        (None, _) => !http11,
        (Some(_), Some(_)) => false,
        (Some(value), None) => valid_host(value) && !(origin_form && value.is_empty()),
    }
}

/// Whether a request target may be forwarded: no `#` (a fragment is not part of any
/// request-target form, RFC 9112 3.2; the `http` types would drop it silently, so the
/// backend would see another target than the one a strict reader in front saw).
pub fn valid_target(target: &[u8]) -> bool {
    !target.contains(&b'#')
}

/// Why a head is refused, and the status that says so.
pub fn limit_status(request_line: usize, fields: usize) -> Option<StatusCode> {
    if request_line > MAX_REQUEST_LINE {
        Some(StatusCode::URI_TOO_LONG)
    } else if fields > MAX_HEADER_FIELDS {
        Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
    } else {
        None
    }
}

/// Length of the request line at the start of `head` (without its line end).
pub fn request_line_len(head: &[u8]) -> usize {
    head.iter()
        .position(|&b| b == b'\n')
        .map_or(head.len(), |n| {
            n.saturating_sub(usize::from(n > 0 && head[n - 1] == b'\r'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_values_a_strict_reader_accepts() {
        for ok in [
            "a",
            "example.com",
            "example.com:8080",
            "EXAMPLE.com:0",
            "a:65535",
            "a:",
            "127.0.0.1:80",
            "[::1]",
            "[2001:db8::1]:443",
            "xn--bcher-kva.example",
            "a%20b",
            "",
        ] {
            assert!(valid_host(ok.as_bytes()), "{ok:?} must be valid");
        }
    }

    #[test]
    fn host_values_a_strict_reader_refuses() {
        for bad in [
            "a b",
            " a",
            "a ",
            "a\t",
            "a,b",
            "a, b",
            "user@a",
            "user:pw@a",
            "a:80x",
            "a:-1",
            "a:65536",
            "a:99999999999999999999",
            "a:80:80",
            "[::1",
            "[]",
            "[::1]x",
            "[::1]:x",
            "[g::1]",
            "a/b",
            "a?b",
            "a#b",
            "a\"b",
            "é",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad:?} must be refused");
        }
    }

    #[test]
    fn http11_needs_exactly_one_host_and_origin_form_a_non_empty_one() {
        let one = |v: &'static str| [v.as_bytes()].into_iter();
        assert!(host_allowed(true, true, one("a")));
        assert!(!host_allowed(true, true, one("")));
        assert!(host_allowed(true, false, one("")));
        assert!(!host_allowed(true, true, std::iter::empty()));
        assert!(host_allowed(false, true, std::iter::empty()));
        assert!(!host_allowed(
            true,
            true,
            [b"a".as_slice(), b"a"].into_iter()
        ));
        assert!(!host_allowed(
            false,
            true,
            [b"a".as_slice(), b"b"].into_iter()
        ));
    }

    #[test]
    fn a_target_with_a_fragment_is_refused() {
        assert!(valid_target(b"/a?b=c"));
        assert!(!valid_target(b"/a#frag"));
        assert!(!valid_target(b"http://h/#"));
    }

    #[test]
    fn limits_give_414_for_the_line_and_431_for_the_field_count() {
        assert_eq!(limit_status(MAX_REQUEST_LINE, MAX_HEADER_FIELDS), None);
        assert_eq!(
            limit_status(MAX_REQUEST_LINE + 1, 0),
            Some(StatusCode::URI_TOO_LONG)
        );
        assert_eq!(
            limit_status(10, MAX_HEADER_FIELDS + 1),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
    }

    #[test]
    fn request_line_length_excludes_its_line_end() {
        assert_eq!(request_line_len(b"GET / HTTP/1.1\r\nHost: a\r\n"), 14);
        assert_eq!(request_line_len(b"GET / HTTP/1.1\nHost: a\n"), 14);
        assert_eq!(request_line_len(b"GET /"), 5);
    }
}
