//! sluice's HTTP/1.1 request-head parse (the simple loop's `h1server::parse` and the
//! request it builds) against `httparse` on its own.
//!
//! Invariants, for every head the simple loop serves:
//! - `httparse` alone accepts it with the same length, method, target, version 1.1 and
//!   header fields (names and values, in order), and the request built holds exactly those
//!   (its URI being what the `http` crate reads from the target);
//! - it is one the loop may serve: one `Host`, at most one valid `Content-Length` (the one
//!   reported), no `Transfer-Encoding`/`Expect`/`Upgrade`/`HTTP2-Settings`, `Connection`
//!   only `close`/`keep-alive` (and `close` reported iff present), an origin-form target,
//!   no `CONNECT`, at most 64 KiB;
//! - it does not depend on the bytes after it (pipelining), and every strict prefix of it
//!   is reported incomplete (a head split across reads is never refused);
//! - when the `http` types refuse to build the request, one of its parts really is invalid.
//! And a head reported incomplete is incomplete for `httparse` too.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::fuzzing::{RequestHead, parse_request_head};
use sluice_fuzz::{Fields, assert_same_fields, fields, prefixes, values};

fuzz_target!(|data: &[u8]| {
    let ours = parse_request_head(data);
    let mut slots = vec![httparse::EMPTY_HEADER; 256];
    let mut reference = httparse::Request::new(&mut slots);
    let parsed = reference.parse(data);
    let head = match ours {
        RequestHead::Partial => {
            assert!(matches!(parsed, Ok(httparse::Status::Partial)), "{parsed:?}");
            return;
        }
        RequestHead::Other => return,
        RequestHead::Simple(head) => head,
    };
    let Ok(httparse::Status::Complete(len)) = parsed else {
        panic!("served a head httparse refuses: {parsed:?}");
    };
    assert_eq!(head.len, len);
    assert!(len <= 64 * 1024);
    assert_eq!(reference.version, Some(1));
    assert_eq!(reference.method, Some(head.method.as_str()));
    assert_eq!(reference.path.map(str::as_bytes), Some(&head.target[..]));
    assert!(head.target.starts_with(b"/"));
    assert_ne!(head.method, http::Method::CONNECT);
    let fields: Fields = fields(reference.headers);

    assert_eq!(values(&fields, "host").count(), 1);
    let lengths: Vec<&[u8]> = values(&fields, "content-length").collect();
    match lengths[..] {
        [] => assert_eq!(head.content_length, 0),
        [digits] => {
            assert!(!digits.is_empty() && digits.iter().all(u8::is_ascii_digit));
            let n: u64 = std::str::from_utf8(digits).unwrap().parse().unwrap();
            assert_eq!(n, head.content_length);
        }
        _ => panic!("served a head with {} Content-Length fields", lengths.len()),
    }
    for refused in ["transfer-encoding", "expect", "upgrade", "http2-settings"] {
        assert_eq!(values(&fields, refused).count(), 0, "served a head with {refused}");
    }
    let mut close = false;
    for token in values(&fields, "connection").flat_map(|v| v.split(|&b| b == b',')) {
        let token = token.trim_ascii();
        close |= token.eq_ignore_ascii_case(b"close");
        assert!(
            token.is_empty()
                || token.eq_ignore_ascii_case(b"close")
                || token.eq_ignore_ascii_case(b"keep-alive"),
            "served a head with Connection: {:?}",
            String::from_utf8_lossy(token)
        );
    }
    assert_eq!(head.close, close);

    match &head.request {
        Some(req) => {
            assert_eq!(req.method(), head.method);
            assert_eq!(req.version(), http::Version::HTTP_11);
            // The `http` type's reading of the target (it drops a `#fragment`, as hyper
            // does), not the bytes themselves.
            assert_eq!(Some(req.uri()), http::Uri::try_from(&head.target[..]).ok().as_ref());
            assert_same_fields(req.headers(), &fields);
        }
        None => {
            let bad_part = http::Uri::try_from(&head.target[..]).is_err()
                || fields.iter().any(|(n, v)| {
                    http::HeaderName::from_bytes(n.as_bytes()).is_err()
                        || http::HeaderValue::from_bytes(v).is_err()
                });
            assert!(bad_part, "request not built, yet every part is valid");
        }
    }

    // The same head alone, and every read that stops short of it.
    match parse_request_head(&data[..len]) {
        RequestHead::Simple(alone) => {
            assert_eq!(alone.len, len);
            assert_eq!(alone.content_length, head.content_length);
            assert_eq!(alone.close, head.close);
        }
        other => panic!("the head alone is {other:?}"),
    }
    for k in prefixes(len) {
        let prefix = parse_request_head(&data[..k]);
        assert!(
            matches!(prefix, RequestHead::Partial),
            "prefix of {k} bytes is {prefix:?}"
        );
    }
});
