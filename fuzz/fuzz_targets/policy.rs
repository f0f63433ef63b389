//! The access policies' readers of client-controlled headers: `X-Forwarded-For` (the client
//! address behind trusted proxies), `Authorization: Basic` (basic auth) and `Origin` (CORS).
//!
//! Input: parts separated by 0xFF: the `X-Forwarded-For` lines, then the last two parts are
//! the `Authorization` and `Origin` values.
//!
//! Invariants:
//! - from an untrusted peer the client address is the peer, whatever the header says (no
//!   spoofing); from a trusted one it is the peer or an address written in the header;
//! - basic auth admits only the listed user's password (`bob:password`), remembered or not;
//! - CORS allows only the listed origins, answered with the request's own `Origin`.

#![no_main]

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use sluice::fuzzing::{
    AllowedOrigins, BasicAuthConfig, Cidr, CorsConfig, CredentialSource, Htpasswd, IpSet,
    OriginPattern, Quick, TrustedProxies, allowed_origin, basic_auth_check, basic_auth_quick,
};

fn written_addresses(lines: &[&[u8]]) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for line in lines {
        for entry in line.split(|&b| b == b',') {
            let Ok(text) = std::str::from_utf8(entry.trim_ascii()) else { continue };
            let host = text
                .strip_prefix('[')
                .and_then(|r| r.split_once(']').map(|(a, _)| a))
                .or_else(|| text.rsplit_once(':').filter(|(a, _)| !a.contains(':')).map(|(a, _)| a))
                .unwrap_or(text);
            if let Ok(a) = host.parse::<IpAddr>().or_else(|_| text.parse()) {
                out.push(a.to_canonical());
            }
        }
    }
    out
}

fn client_address(lines: &[&[u8]]) {
    let mut headers = HeaderMap::new();
    for line in lines {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append("x-forwarded-for", v);
        }
    }
    let kept: Vec<&[u8]> = headers.get_all("x-forwarded-for").iter().map(HeaderValue::as_bytes).collect();
    let trusted = TrustedProxies(IpSet::new(["127.0.0.0/8", "10.0.0.0/8"].map(|c| Cidr::parse(c).unwrap())));
    let outsider: IpAddr = "192.0.2.7".parse().unwrap();
    assert_eq!(trusted.client(outsider, &headers), outsider, "spoofed from an untrusted peer");
    let proxy: IpAddr = "127.0.0.1".parse().unwrap();
    let client = trusted.client(proxy, &headers);
    assert!(
        client == proxy || written_addresses(&kept).contains(&client),
        "{client} is neither the peer nor written in {kept:?}"
    );
}

fn basic_auth(value: &[u8]) {
    let Ok(v) = HeaderValue::from_bytes(value) else { return };
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, v);
    let auth = BasicAuthConfig {
        challenge: HeaderValue::from_static("Basic realm=\"fuzz\""),
        users: Arc::new(Htpasswd::parse(b"bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n").unwrap()),
        source: CredentialSource::File("users".into()),
        forward_authorization: false,
    };
    let good = {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic Ym9iOnBhc3N3b3Jk"));
        h
    };
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    let runtime =
        RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().unwrap());
    let admitted = runtime.block_on(basic_auth_check(&auth, &headers)).is_ok();
    let decoded = std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.get(..6).filter(|s| s.eq_ignore_ascii_case("basic ")).map(|_| v[6..].trim()))
        .and_then(|b64| base64_decode(b64));
    assert_eq!(admitted, decoded.as_deref() == Some(b"bob:password".as_slice()), "{value:?}");
    // Once the right password was remembered, only it is admitted without a hash.
    assert!(runtime.block_on(basic_auth_check(&auth, &good)).is_ok());
    if matches!(basic_auth_quick(&auth, &headers), Quick::Admitted) {
        assert_eq!(decoded.as_deref(), Some(b"bob:password".as_slice()));
    }
}

/// Standard base64 with padding, as the `Authorization: Basic` grammar has it.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if text.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    for (i, quad) in bytes.chunks(4).enumerate() {
        let last = i == bytes.len() / 4 - 1;
        let pad = quad.iter().rev().take_while(|&&b| b == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &b in &quad[..4 - pad] {
            n = n << 6 | ALPHABET.iter().position(|&a| a == b)? as u32;
        }
        n <<= 6 * pad as u32;
        let all = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        // Non-canonical trailing bits are refused by strict decoders.
        if pad == 1 && all[2] != 0 || pad == 2 && (all[1] != 0 || all[2] != 0) {
            return None;
        }
        out.extend_from_slice(&all[..3 - pad]);
    }
    Some(out)
}

fn cors(origin: &[u8]) {
    let Ok(v) = HeaderValue::from_bytes(origin) else { return };
    let mut headers = HeaderMap::new();
    headers.insert(header::ORIGIN, v.clone());
    let config = CorsConfig {
        origins: AllowedOrigins::Listed(vec![
            OriginPattern::Exact("https://app.example".into()),
            OriginPattern::Subdomain {
                scheme: "https://",
                suffix: ".example.com".into(),
                port: String::new(),
            },
        ]),
        allow_methods: HeaderValue::from_static("GET"),
        allow_headers: None,
        expose_headers: None,
        allow_credentials: false,
        max_age: HeaderValue::from_static("60"),
    };
    let Some(allowed) = allowed_origin(&config, &headers) else { return };
    assert_eq!(allowed, v, "the answer names the request's own origin");
    let lower = String::from_utf8_lossy(origin).to_ascii_lowercase();
    let host = lower.strip_prefix("https://");
    assert!(
        lower == "https://app.example"
            || host.is_some_and(|h| {
                h.strip_suffix(".example.com").is_some_and(|label| {
                    !label.is_empty() && !label.contains([':', '/', '@', '?', '#'])
                })
            }),
        "{lower:?} allowed"
    );
}

fuzz_target!(|input: &[u8]| {
    let parts: Vec<&[u8]> = input.split(|&b| b == 0xFF).collect();
    let (xff, rest) = parts.split_at(parts.len().saturating_sub(2));
    client_address(xff);
    if let [authorization, origin] = rest {
        basic_auth(authorization);
        cors(origin);
    }
});
