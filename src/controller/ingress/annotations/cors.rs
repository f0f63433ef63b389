//! `enable-cors` and `cors-*`, parsed as ingress-nginx parses them: a value its grammar
//! refuses falls back to ingress-nginx's default (with a warning, where ingress-nginx only
//! logs), an origin it refuses is left out.
//!
//! One difference by design: `cors-allow-origin: "*"` (the default) with credentials
//! allowed (also the default). ingress-nginx then answers `Access-Control-Allow-Origin: *`
//! with `Access-Control-Allow-Credentials: true`, a pair browsers refuse for credentialed
//! requests and accept, ignoring the second header, for the others. sluice's model refuses
//! that pair, so it answers `*` without the credentials header: browsers behave the same.

use std::collections::BTreeMap;

use http::HeaderValue;

use crate::config::{AllowedOrigins, CorsConfig, parse_origin};

/// ingress-nginx's `cors-allow-methods` default.
const DEFAULT_METHODS: &str = "GET, PUT, POST, DELETE, PATCH, OPTIONS";
/// ingress-nginx's `cors-allow-headers` default.
const DEFAULT_HEADERS: &str = "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization";
/// ingress-nginx's `cors-max-age` default, seconds (20 days).
const DEFAULT_MAX_AGE: u64 = 1_728_000;

/// The `cors-*` annotations.
const KEYS: &[&str] = &[
    "cors-allow-origin",
    "cors-allow-methods",
    "cors-allow-headers",
    "cors-expose-headers",
    "cors-allow-credentials",
    "cors-max-age",
];

/// The route's CORS policy when `enable-cors` is `"true"`; `warn` hears of each value
/// replaced by the default and of `cors-*` set without `enable-cors`.
pub(super) fn cors(
    get: &BTreeMap<&str, &str>,
    enabled: bool,
    warn: &mut dyn FnMut(&str, String),
) -> Option<CorsConfig> {
    if !enabled {
        for key in KEYS.iter().filter(|k| get.contains_key(**k)) {
            warn(
                key,
                "has no effect without enable-cors: \"true\" (as in ingress-nginx)".to_owned(),
            );
        }
        return None;
    }
    let origins = origins(get.get("cors-allow-origin").copied(), warn);
    let mut list = |key: &str, extra: &[u8], default: Option<&str>| -> Option<HeaderValue> {
        match get.get(key) {
            None => default.map(HeaderValue::from_str).and_then(Result::ok),
            Some(v) if token_list(v, extra) => HeaderValue::from_str(v).ok(),
            Some(v) => {
                let shown = default.unwrap_or("none");
                warn(
                    key,
                    format!(
                        "{v:?} is not a comma-separated list of names; ingress-nginx's default ({shown}) applies"
                    ),
                );
                default.map(HeaderValue::from_str).and_then(Result::ok)
            }
        }
    };
    let allow_methods = list("cors-allow-methods", b"", Some(DEFAULT_METHODS))
        .unwrap_or_else(|| HeaderValue::from_static(DEFAULT_METHODS));
    let allow_headers = list("cors-allow-headers", b"-_", Some(DEFAULT_HEADERS));
    let expose_headers = list("cors-expose-headers", b"-_*", None);
    let allow_credentials = match get.get("cors-allow-credentials") {
        None => true,
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => {
                warn(
                    "cors-allow-credentials",
                    format!(
                        "{v:?} is not \"true\" or \"false\"; ingress-nginx's default (true) applies"
                    ),
                );
                true
            }
        },
    };
    let max_age = match get.get("cors-max-age") {
        None => DEFAULT_MAX_AGE,
        Some(v) => v.parse::<u64>().unwrap_or_else(|_| {
            warn(
                "cors-max-age",
                format!("{v:?} is not a whole number of seconds; ingress-nginx's default ({DEFAULT_MAX_AGE}) applies"),
            );
            DEFAULT_MAX_AGE
        }),
    };
    // `*` with credentials: see the module comment.
    let allow_credentials = allow_credentials && origins != AllowedOrigins::Any;
    Some(CorsConfig {
        origins,
        allow_methods,
        allow_headers,
        expose_headers,
        allow_credentials,
        max_age: HeaderValue::from(max_age),
    })
}

/// `cors-allow-origin`: `*` (the default, also when any entry is `*`) or a comma-separated
/// list of `scheme://host[:port]` and `scheme://*.domain[:port]`.
fn origins(value: Option<&str>, warn: &mut dyn FnMut(&str, String)) -> AllowedOrigins {
    let Some(value) = value else {
        return AllowedOrigins::Any;
    };
    let entries: Vec<&str> = value.split(',').map(str::trim).collect();
    if entries.contains(&"*") {
        return AllowedOrigins::Any;
    }
    let mut patterns = Vec::new();
    for entry in entries {
        match parse_origin(entry) {
            Ok(p) => patterns.push(p),
            Err(why) => warn("cors-allow-origin", format!("{entry:?} left out: {why}")),
        }
    }
    AllowedOrigins::Listed(patterns)
}

/// ingress-nginx's list grammar: names of letters and digits (plus `extra`), separated by
/// commas and optional single spaces.
fn token_list(v: &str, extra: &[u8]) -> bool {
    let names: Vec<&str> = v
        .split(',')
        .map(|n| n.strip_prefix(' ').unwrap_or(n))
        .collect();
    !v.is_empty()
        && names.iter().enumerate().all(|(i, n)| {
            (!n.is_empty() || i + 1 == names.len())
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
        })
}
