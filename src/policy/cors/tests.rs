use http::header::{self, HeaderMap, HeaderValue};

use super::*;
use crate::config::{AllowedOrigins, CorsConfig, OriginPattern};

fn cors(origins: AllowedOrigins, credentials: bool) -> CorsConfig {
    CorsConfig {
        origins,
        allow_methods: HeaderValue::from_static("GET, POST"),
        allow_headers: Some(HeaderValue::from_static("Authorization")),
        expose_headers: Some(HeaderValue::from_static("X-Id")),
        allow_credentials: credentials,
        max_age: HeaderValue::from_static("600"),
    }
}

fn listed() -> AllowedOrigins {
    AllowedOrigins::Listed(vec![
        OriginPattern::Exact("https://app.example".into()),
        OriginPattern::Subdomain {
            scheme: "https://",
            suffix: ".example.com".into(),
            port: String::new(),
        },
        OriginPattern::Subdomain {
            scheme: "http://",
            suffix: ".dev.test".into(),
            port: ":8443".into(),
        },
    ])
}

fn origin(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::ORIGIN, HeaderValue::from_str(value).unwrap());
    h
}

#[test]
fn wildcard_origins_match_subdomains_with_the_same_scheme_and_port_only() {
    let c = cors(listed(), false);
    for ok in [
        "https://app.example",
        "HTTPS://APP.EXAMPLE",
        "https://a.example.com",
        "https://a.b.example.com",
        "http://x.dev.test:8443",
    ] {
        assert!(allowed_origin(&c, &origin(ok)).is_some(), "{ok}");
    }
    for refused in [
        "https://example.com",
        "http://a.example.com",
        "https://a.example.com:8443",
        "https://evil.com/.example.com",
        "https://a.example.com.evil.com",
        "https://evilexample.com",
        "https://.example.com",
        "https://a..example.com",
        "https://user@a.example.com",
        "http://x.dev.test",
        "http://x.dev.test:9443",
        "https://app.example.evil",
        "null",
    ] {
        assert!(allowed_origin(&c, &origin(refused)).is_none(), "{refused}");
    }
}

#[test]
fn two_origin_headers_are_no_origin() {
    let c = cors(AllowedOrigins::Any, false);
    let mut h = origin("https://app.example");
    h.append(
        header::ORIGIN,
        HeaderValue::from_static("https://b.example"),
    );
    assert!(allowed_origin(&c, &h).is_none());
}

#[test]
fn preflight_for_an_allowed_origin_lists_methods_headers_and_max_age() {
    let c = cors(listed(), true);
    let value = allowed_origin(&c, &origin("https://a.example.com"));
    let resp = preflight(&c, value.as_ref());
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let h = resp.headers();
    assert_eq!(
        h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://a.example.com"
    );
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_METHODS], "GET, POST");
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_HEADERS], "Authorization");
    assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], "600");
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    assert_eq!(h[header::VARY], "Origin");
}

#[test]
fn preflight_for_a_refused_origin_has_no_cors_header() {
    let c = cors(listed(), false);
    let value = allowed_origin(&c, &origin("https://evil.test"));
    let resp = preflight(&c, value.as_ref());
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(
        resp.headers()
            .keys()
            .all(|k| !k.as_str().starts_with("access-control-")),
        "{:?}",
        resp.headers()
    );
}

#[test]
fn any_origin_answers_star_without_vary_and_replaces_the_backends_value() {
    let c = cors(AllowedOrigins::Any, false);
    let value = allowed_origin(&c, &origin("https://whoever.test")).unwrap();
    let mut answer = HeaderMap::new();
    answer.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("https://backend.test"),
    );
    decorate(&c, &value, &mut answer);
    assert_eq!(
        answer
            .get_all(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .iter()
            .count(),
        1
    );
    assert_eq!(answer[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert_eq!(answer[header::ACCESS_CONTROL_EXPOSE_HEADERS], "X-Id");
    assert!(answer.get(header::VARY).is_none());
    assert!(
        answer
            .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
            .is_none()
    );
}

#[test]
fn only_options_with_origin_and_request_method_is_a_preflight() {
    let mut h = origin("https://app.example");
    assert!(!is_preflight(&Method::OPTIONS, &h));
    h.insert(
        header::ACCESS_CONTROL_REQUEST_METHOD,
        HeaderValue::from_static("POST"),
    );
    assert!(is_preflight(&Method::OPTIONS, &h));
    assert!(!is_preflight(&Method::GET, &h));
}

proptest::proptest! {
    /// A wildcard pattern only ever matches an origin of its scheme, suffix and port whose
    /// extra labels are host characters.
    #[test]
    fn a_subdomain_pattern_matches_only_hosts_under_it(origin in "[a-zA-Z0-9:/.@_-]{0,40}") {
        let pattern = OriginPattern::Subdomain {
            scheme: "https://",
            suffix: ".example.com".into(),
            port: String::new(),
        };
        if matches(&pattern, &origin) {
            let lower = origin.to_ascii_lowercase();
            let host = lower.strip_prefix("https://").unwrap();
            proptest::prop_assert!(host.ends_with(".example.com"));
            proptest::prop_assert!(!host.contains(['/', '@', ':', '_']));
        }
    }
}
