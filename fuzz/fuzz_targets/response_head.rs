//! The upstream client's response-head parse (`h1client::parse_head`) against `httparse`
//! on its own and the framing rules of RFC 9112 6.3.
//!
//! Input: one byte (odd: the request was `HEAD`), then the response.
//!
//! Invariants, for every head it takes:
//! - `httparse` alone accepts it with the same length, status, version and header fields,
//!   and a 1xx other than 101 is skipped as interim;
//! - the framing is RFC 9112's: 101 -> upgrade; `HEAD`/204/304 -> no body; else
//!   `Transfer-Encoding` (never with `Content-Length`: refused) -> chunked when its final
//!   coding is `chunked`, else until close; else `Content-Length` (every value the same)
//!   -> that length; else until close;
//! - the connection is kept only for a length-delimited or chunked body (or none), without
//!   `Connection: close`, and for HTTP/1.0 only with `Connection: keep-alive`;
//! - it does not depend on the bytes after it, and every strict prefix of it is incomplete.
//! And a head reported incomplete is incomplete for `httparse` too.

#![no_main]

use http::{Method, StatusCode};
use libfuzzer_sys::fuzz_target;
use sluice::fuzzing::{BodyFraming, ResponseHead, parse_response_head};
use sluice_fuzz::{Fields, assert_same_fields, fields, prefixes, values};

/// The elements of a comma-separated list (RFC 9110 5.6.1: empty ones do not count).
fn list<'a>(fields: &'a Fields, name: &'a str) -> Vec<&'a [u8]> {
    values(fields, name)
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
        .collect()
}

fuzz_target!(|input: &[u8]| {
    let Some((&m, data)) = input.split_first() else {
        return;
    };
    let method = if m % 2 == 1 { Method::HEAD } else { Method::GET };
    let ours = parse_response_head(data, &method);
    let mut slots = vec![httparse::EMPTY_HEADER; 256];
    let mut reference = httparse::Response::new(&mut slots);
    let parsed = reference.parse(data);
    let len = match &ours {
        ResponseHead::Partial => {
            assert!(matches!(parsed, Ok(httparse::Status::Partial)), "{parsed:?}");
            return;
        }
        ResponseHead::Refused(_) => return,
        ResponseHead::Interim { len } | ResponseHead::Final { len, .. } => *len,
    };
    let Ok(httparse::Status::Complete(n)) = parsed else {
        panic!("took a head httparse refuses: {parsed:?}");
    };
    assert_eq!(len, n);
    let code = reference.code.unwrap();
    let status = StatusCode::from_u16(code).unwrap();
    let fields: Fields = fields(reference.headers);

    match &ours {
        ResponseHead::Interim { .. } => {
            assert!(status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS);
        }
        ResponseHead::Final {
            parts,
            framing,
            keep_alive,
            ..
        } => {
            assert_eq!(parts.status, status);
            let http10 = reference.version == Some(0);
            let version = if http10 { http::Version::HTTP_10 } else { http::Version::HTTP_11 };
            assert_eq!(parts.version, version);
            assert_same_fields(&parts.headers, &fields);

            let codings = list(&fields, "transfer-encoding");
            let has_te = values(&fields, "transfer-encoding").next().is_some();
            let lengths: Vec<u64> = list(&fields, "content-length")
                .iter()
                .map(|d| std::str::from_utf8(d).unwrap().parse().unwrap())
                .collect();
            let expected = if status == StatusCode::SWITCHING_PROTOCOLS {
                BodyFraming::Upgrade
            } else if method == Method::HEAD
                || status == StatusCode::NO_CONTENT
                || status == StatusCode::NOT_MODIFIED
            {
                BodyFraming::Empty
            } else if has_te {
                assert!(lengths.is_empty(), "Content-Length with Transfer-Encoding taken");
                if codings.last().is_some_and(|c| c.eq_ignore_ascii_case(b"chunked")) {
                    BodyFraming::Chunked
                } else {
                    BodyFraming::Close
                }
            } else if let Some(&n) = lengths.first() {
                assert!(lengths.iter().all(|&l| l == n), "conflicting lengths taken");
                BodyFraming::Length(n)
            } else {
                BodyFraming::Close
            };
            assert_eq!(*framing, expected, "framing");

            let connection = list(&fields, "connection");
            let has = |t: &[u8]| connection.iter().any(|c| c.eq_ignore_ascii_case(t));
            if *keep_alive {
                assert_ne!(*framing, BodyFraming::Close);
                assert!(!has(b"close"));
                assert!(!http10 || has(b"keep-alive"));
            } else {
                assert!(
                    *framing == BodyFraming::Close || has(b"close") || (http10 && !has(b"keep-alive")),
                    "connection not kept for no reason"
                );
            }
        }
        _ => unreachable!(),
    }

    // The same head alone, and every read that stops short of it.
    match (&ours, parse_response_head(&data[..len], &method)) {
        (ResponseHead::Interim { .. }, ResponseHead::Interim { len: l }) => assert_eq!(l, len),
        (ResponseHead::Final { framing: f, keep_alive: k, .. }, ResponseHead::Final { len: l, framing, keep_alive, .. }) => {
            assert_eq!((l, framing, keep_alive), (len, *f, *k));
        }
        (_, alone) => panic!("the head alone is {alone:?}"),
    }
    for k in prefixes(len) {
        let prefix = parse_response_head(&data[..k], &method);
        assert!(matches!(prefix, ResponseHead::Partial), "prefix of {k} bytes is {prefix:?}");
    }
});
