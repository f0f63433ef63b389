//! `nginx.ingress.kubernetes.io/*` annotations: parsed as ingress-nginx parses them, with
//! its defaults. Every annotation of that prefix is either implemented here, refused (it
//! would restrict access, and serving the Ingress without it would serve it open), or
//! reported as unsupported; none is silently ignored.

use std::collections::BTreeMap;
use std::time::Duration;

use http::{HeaderName, HeaderValue, StatusCode};

use std::sync::Arc;

use crate::config::{
    AccessPolicy, AffinityConfig, Algorithm, CorsConfig, ExternalAuthConfig, HashKey,
    HealthCheckConfig, OutlierConfig, RateLimitConfig, RateLimitKey, RetryConfig, UpstreamConfig,
    UpstreamProtocol, UpstreamTls, UpstreamTrust,
};
use crate::policy::{Cidr, IpSet};

mod auth;
mod cors;
mod retry;
pub mod sluice;

pub use auth::BasicAuth;

/// The annotation prefix ingress-nginx reads.
pub const PREFIX: &str = "nginx.ingress.kubernetes.io/";

/// What an Ingress's annotations ask for.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotations {
    /// `use-regex`: paths of the Ingress's hosts are case-insensitive regular expressions.
    pub use_regex: bool,
    /// `rewrite-target`.
    pub rewrite_target: Option<String>,
    /// `app-root`: `/` redirects (302) here.
    pub app_root: Option<String>,
    /// `ssl-redirect` (default true): plain HTTP on a TLS host redirects to HTTPS.
    pub ssl_redirect: bool,
    /// `force-ssl-redirect`: redirect to HTTPS even without TLS in the Ingress.
    pub force_ssl_redirect: bool,
    /// `from-to-www-redirect`: `www.HOST` redirects (308) to `HOST`, and the reverse.
    pub from_to_www: bool,
    /// `permanent-redirect` / `temporal-redirect`: every path answers with this redirect.
    pub redirect: Option<(String, StatusCode)>,
    /// Backend settings (shared by every route naming the same Service port).
    pub backend: BackendSettings,
    /// `upstream-vhost`: the `Host` sent upstream.
    pub upstream_vhost: Option<HeaderValue>,
    /// `canary: "true"` with its weight and header.
    pub canary: Option<Canary>,
    /// `auth-type: basic` with `auth-secret` and `auth-realm`.
    pub basic_auth: Option<BasicAuth>,
    /// Address lists, rate limit and body limit (`*-source-range`, `limit-rps`,
    /// `limit-rpm`, `limit-burst-multiplier`, `proxy-body-size`).
    pub access: AccessPolicy,
    /// `auth-url` with `auth-signin`, `auth-response-headers`, `auth-method`.
    pub external_auth: Option<Arc<ExternalAuthConfig>>,
    /// `enable-cors` with `cors-*`.
    pub cors: Option<Arc<CorsConfig>>,
}

/// ingress-nginx's `proxy-body-size` default (`client_max_body_size 1m`).
pub const DEFAULT_BODY_SIZE: u64 = 1 << 20;
/// ingress-nginx's `limit-burst-multiplier` default.
const DEFAULT_BURST_MULTIPLIER: u32 = 5;

/// Settings of the backend (pool) an Ingress names.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendSettings {
    /// `proxy-connect-timeout` (seconds; ingress-nginx default 5 s).
    pub connect_timeout: Duration,
    /// `proxy-read-timeout` (seconds; ingress-nginx default 60 s): sluice's request timeout.
    pub read_timeout: Duration,
    /// `backend-protocol`.
    pub upstream: UpstreamConfig,
    /// `load-balance` (default round_robin), or `upstream-hash-by`.
    pub algorithm: Algorithm,
    /// `affinity: cookie` with `session-cookie-name` and `session-cookie-max-age`.
    pub affinity: Option<AffinityConfig>,
    /// `proxy-next-upstream(-tries, -timeout)` (ingress-nginx's default: `error timeout`, 3
    /// tries), with `sluice.dev/retry-budget-*`; `None` for `off`.
    pub retry: Option<RetryConfig>,
    /// `sluice.dev/health-check-*`.
    pub health_check: Option<HealthCheckConfig>,
    /// `sluice.dev/outlier-detection-*`.
    pub outlier_detection: Option<OutlierConfig>,
    /// `sluice.dev/drain-timeout` (default 30 s).
    pub drain_timeout: Duration,
    /// `sluice.dev/max-connections-per-endpoint` (default unlimited).
    pub max_connections_per_endpoint: Option<u32>,
}

/// ingress-nginx's `session-cookie-name` default.
const DEFAULT_COOKIE: &str = "INGRESSCOOKIE";
/// Max-Age of the affinity cookie without `session-cookie-max-age` (sluice always sends one;
/// ingress-nginx then sends a browser-session cookie).
const DEFAULT_COOKIE_TTL: Duration = Duration::from_secs(3600);

impl Default for BackendSettings {
    fn default() -> Self {
        BackendSettings {
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            upstream: UpstreamConfig::default(),
            algorithm: Algorithm::RoundRobin,
            affinity: None,
            retry: retry::retry(&BTreeMap::new(), &mut |_, _| {}),
            health_check: None,
            outlier_detection: None,
            drain_timeout: Duration::from_secs(30),
            max_connections_per_endpoint: None,
        }
    }
}

/// A canary Ingress's split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canary {
    /// `canary-weight`, percent (default 0).
    pub weight: u32,
    /// `canary-by-header` with `canary-by-header-value` (default value `always`).
    pub header: Option<(HeaderName, HeaderValue)>,
}

/// The outcome of reading an Ingress's annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// What they ask for; `None` when the Ingress must be refused (see `refusals`).
    pub annotations: Option<Annotations>,
    /// Why the Ingress is refused: each names the annotation.
    pub refusals: Vec<String>,
    /// Unsupported annotations that are only warned about: full name and why.
    pub unsupported: Vec<(String, &'static str)>,
    /// Values that were replaced by ingress-nginx's default, or have no effect: each names
    /// the annotation.
    pub warnings: Vec<String>,
}

/// Implemented annotations (without the prefix).
const SUPPORTED: &[&str] = &[
    "use-regex",
    "rewrite-target",
    "app-root",
    "ssl-redirect",
    "force-ssl-redirect",
    "from-to-www-redirect",
    "permanent-redirect",
    "permanent-redirect-code",
    "temporal-redirect",
    "proxy-connect-timeout",
    "proxy-read-timeout",
    "backend-protocol",
    "upstream-vhost",
    "load-balance",
    "canary",
    "canary-weight",
    "canary-by-header",
    "canary-by-header-value",
    "whitelist-source-range",
    "allowlist-source-range",
    "denylist-source-range",
    "limit-rps",
    "limit-rpm",
    "limit-burst-multiplier",
    "limit-connections",
    "proxy-body-size",
    "upstream-hash-by",
    "affinity",
    "session-cookie-name",
    "session-cookie-max-age",
    "auth-type",
    "auth-secret",
    "auth-secret-type",
    "auth-realm",
    "auth-url",
    "auth-signin",
    "auth-response-headers",
    "auth-method",
    "enable-cors",
    "cors-allow-origin",
    "cors-allow-methods",
    "cors-allow-headers",
    "cors-expose-headers",
    "cors-allow-credentials",
    "cors-max-age",
    "proxy-next-upstream",
    "proxy-next-upstream-tries",
    "proxy-next-upstream-timeout",
];

/// Why an unimplemented annotation that does not restrict access is only warned about.
fn unsupported_why(name: &str) -> &'static str {
    match name {
        "proxy-send-timeout" => {
            "sluice has no separate send timeout: sending the request and waiting for the answer head are bounded together by proxy-read-timeout; ignored"
        }
        "custom-http-errors" => {
            "sluice does not fetch error pages from a default backend: the backends' own error answers reach the client; ignored"
        }
        _ => "not implemented by sluice; ignored",
    }
}

/// Whether an unimplemented annotation would restrict who or what gets through: serving the
/// Ingress without it would serve it open, so the Ingress is refused instead.
pub fn restricts_access(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "auth-",
        "limit-",
        "global-rate-limit",
        "whitelist-source-range",
        "allowlist-source-range",
        "denylist-source-range",
        "satisfy",
        "enable-modsecurity",
        "modsecurity-",
        "enable-owasp-core-rules",
        "ssl-passthrough",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) || name.ends_with("-snippet")
}

/// Reads the `nginx.ingress.kubernetes.io/` annotations of one Ingress.
pub fn parse(all: &BTreeMap<String, String>) -> Parsed {
    let mut refusals = Vec::new();
    let mut unsupported = Vec::new();
    let mut get = BTreeMap::new();
    for (key, value) in all {
        let Some(name) = key.strip_prefix(PREFIX) else {
            continue;
        };
        if SUPPORTED.contains(&name) {
            get.insert(name, value.trim());
        } else if restricts_access(name) {
            refusals.push(format!(
                "annotation {key}: not implemented by sluice and it restricts access; the Ingress is refused rather than served open"
            ));
        } else {
            unsupported.push((key.clone(), unsupported_why(name)));
        }
    }
    let mut warnings = Vec::new();
    let knobs = sluice::parse(
        all,
        &mut |key, why| refusals.push(format!("annotation {key}: {why}")),
        &mut |key| {
            unsupported.push((key, "not a sluice.dev/ annotation sluice knows; ignored"));
        },
    );
    let mut bad =
        |name: &str, why: String| refusals.push(format!("annotation {PREFIX}{name}: {why}"));
    let flag = |name: &str, default: bool, bad: &mut dyn FnMut(&str, String)| -> bool {
        match get.get(name) {
            None => default,
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    bad(name, format!("{v:?} is not \"true\" or \"false\""));
                    default
                }
            },
        }
    };
    let use_regex = flag("use-regex", false, &mut bad);
    let ssl_redirect = flag("ssl-redirect", true, &mut bad);
    let force_ssl_redirect = flag("force-ssl-redirect", false, &mut bad);
    let from_to_www = flag("from-to-www-redirect", false, &mut bad);
    let is_canary = flag("canary", false, &mut bad);

    let rewrite_target = get.get("rewrite-target").map(|s| s.to_string());
    let app_root = get.get("app-root").map(|s| s.to_string());
    if let Some(root) = &app_root
        && !root.starts_with('/')
    {
        bad("app-root", format!("{root:?} must start with /"));
    }

    let redirect = match (get.get("permanent-redirect"), get.get("temporal-redirect")) {
        (Some(url), _) => {
            // ingress-nginx: a code outside 300..=308 falls back to 301.
            let code = get
                .get("permanent-redirect-code")
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| (300..=308).contains(c))
                .unwrap_or(301);
            let status = StatusCode::from_u16(code).expect("300..=308 are valid status codes");
            Some((url.to_string(), status))
        }
        (None, Some(url)) => Some((url.to_string(), StatusCode::FOUND)),
        (None, None) => None,
    };

    let mut backend = BackendSettings::default();
    if let Some(t) = seconds(&get, "proxy-connect-timeout", &mut bad) {
        backend.connect_timeout = t;
    }
    if let Some(t) = seconds(&get, "proxy-read-timeout", &mut bad) {
        backend.read_timeout = t;
    }
    if let Some(p) = get.get("backend-protocol") {
        match upstream(p) {
            Some(u) => backend.upstream = u,
            None => bad(
                "backend-protocol",
                format!("{p:?} is not supported (HTTP, HTTPS, GRPC, GRPCS)"),
            ),
        }
    }
    if let Some(lb) = get.get("load-balance") {
        match lb.to_ascii_lowercase().as_str() {
            "round_robin" => backend.algorithm = Algorithm::RoundRobin,
            // Peak-EWMA in ingress-nginx; sluice's latency-aware choice is P2C over EWMA.
            "ewma" => backend.algorithm = Algorithm::PowerOfTwoChoices,
            _ => bad("load-balance", format!("{lb:?} is not round_robin or ewma")),
        }
    }

    if let Some(by) = get.get("upstream-hash-by") {
        // ingress-nginx: upstream-hash-by takes precedence over load-balance.
        match hash_key(by) {
            Some(key) => backend.algorithm = Algorithm::ConsistentHash(key),
            None => bad(
                "upstream-hash-by",
                format!("{by:?}: sluice hashes $remote_addr, $http_NAME or $cookie_NAME only"),
            ),
        }
    }
    if let Some(kind) = get.get("affinity") {
        if *kind == "cookie" {
            let name = get
                .get("session-cookie-name")
                .copied()
                .unwrap_or(DEFAULT_COOKIE);
            let ttl =
                seconds(&get, "session-cookie-max-age", &mut bad).unwrap_or(DEFAULT_COOKIE_TTL);
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                bad(
                    "session-cookie-name",
                    format!("{name:?} is not a cookie name"),
                );
            }
            backend.affinity = Some(AffinityConfig::Cookie {
                name: name.to_owned(),
                ttl,
            });
        } else {
            bad("affinity", format!("{kind:?} is not \"cookie\""));
        }
    }

    let upstream_vhost = match get.get("upstream-vhost") {
        None => None,
        Some(v) => match HeaderValue::from_str(v) {
            Ok(h) if !v.is_empty() => Some(h),
            _ => {
                bad("upstream-vhost", format!("{v:?} is not a valid Host value"));
                None
            }
        },
    };

    let canary = if is_canary {
        let weight = match get.get("canary-weight") {
            None => 0,
            Some(w) => match w.parse::<u32>() {
                Ok(w) if w <= 100 => w,
                _ => {
                    bad(
                        "canary-weight",
                        format!("{w:?} is not a whole number 0-100"),
                    );
                    0
                }
            },
        };
        let header = match get.get("canary-by-header") {
            None => None,
            Some(name) => {
                let value = get
                    .get("canary-by-header-value")
                    .copied()
                    .unwrap_or("always");
                match (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(value),
                ) {
                    (Ok(n), Ok(v)) => Some((n, v)),
                    _ => {
                        bad(
                            "canary-by-header",
                            format!("{name:?}: {value:?} is not a valid header"),
                        );
                        None
                    }
                }
            }
        };
        Some(Canary { weight, header })
    } else {
        None
    };

    let access = access(&get, &mut bad);
    let basic_auth = auth::basic_auth(&get, &mut bad);
    let external_auth = auth::external_auth(&get, backend.read_timeout, &mut bad).map(Arc::new);
    let enable_cors = flag("enable-cors", false, &mut bad);
    let cors = cors::cors(&get, enable_cors, &mut |name, why| {
        warnings.push(format!("annotation {PREFIX}{name}: {why}"))
    })
    .map(Arc::new);
    backend.retry = retry::retry(&get, &mut bad);
    apply_knobs(&mut backend, knobs, &get, &mut bad, &mut warnings);

    let annotations = refusals.is_empty().then_some(Annotations {
        use_regex,
        rewrite_target,
        app_root,
        ssl_redirect,
        force_ssl_redirect,
        from_to_www,
        redirect,
        backend,
        upstream_vhost,
        canary,
        access,
        basic_auth,
        external_auth,
        cors,
    });
    Parsed {
        annotations,
        refusals,
        unsupported,
        warnings,
    }
}

/// Puts the `sluice.dev/` knobs on the backend: `algorithm` replaces `load-balance` and
/// `upstream-hash-by` (both set is refused: which one was meant is unclear), the retry
/// budget goes on the `proxy-next-upstream` retries (none with `off`: warned).
fn apply_knobs(
    backend: &mut BackendSettings,
    knobs: sluice::Knobs,
    get: &BTreeMap<&str, &str>,
    bad: &mut dyn FnMut(&str, String),
    warnings: &mut Vec<String>,
) {
    if let Some(algorithm) = knobs.algorithm {
        for nginx in ["load-balance", "upstream-hash-by"] {
            if get.contains_key(nginx) {
                bad(
                    nginx,
                    format!("set together with {}algorithm; keep one", sluice::PREFIX),
                );
            }
        }
        backend.algorithm = algorithm;
    }
    if let Some((ratio, min_per_second)) = knobs.retry_budget {
        match &mut backend.retry {
            Some(r) => {
                r.budget_ratio = ratio;
                r.budget_min_per_second = min_per_second;
            }
            None => warnings.push(format!(
                "annotation {}retry-budget-*: has no effect with proxy-next-upstream: off",
                sluice::PREFIX
            )),
        }
    }
    backend.health_check = knobs.health_check;
    backend.outlier_detection = knobs.outlier_detection;
    if let Some(d) = knobs.drain_timeout {
        backend.drain_timeout = d;
    }
    if let Some(m) = knobs.max_connections_per_endpoint {
        backend.max_connections_per_endpoint = m;
    }
}

/// The access annotations, parsed as ingress-nginx parses them (and stricter where a loose
/// value would serve more than asked: a CIDR with host bits, an empty list, a rate per minute
/// that is not whole requests per second are refused).
fn access(get: &BTreeMap<&str, &str>, bad: &mut dyn FnMut(&str, String)) -> AccessPolicy {
    let mut list = |name: &str| -> Option<Arc<IpSet>> {
        let v = get.get(name)?;
        let mut cidrs = Vec::new();
        for entry in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match Cidr::parse(entry) {
                Ok(c) => cidrs.push(c),
                Err(why) => {
                    bad(name, why);
                    return None;
                }
            }
        }
        if cidrs.is_empty() {
            bad(name, "no address or CIDR".to_owned());
            return None;
        }
        Some(Arc::new(IpSet::new(cidrs)))
    };
    // `allowlist-source-range` is the newer name of `whitelist-source-range`.
    let allow = match get.contains_key("allowlist-source-range") {
        true => list("allowlist-source-range"),
        false => list("whitelist-source-range"),
    };
    let deny = list("denylist-source-range");
    let mut whole = |name: &str| -> Option<u32> {
        let v = get.get(name)?;
        match v.parse::<u32>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                bad(name, format!("{v:?} is not a whole number above 0"));
                None
            }
        }
    };
    let rps = whole("limit-rps");
    let rpm = whole("limit-rpm");
    let multiplier = whole("limit-burst-multiplier").unwrap_or(DEFAULT_BURST_MULTIPLIER);
    let per_minute = rpm.and_then(|rpm| {
        if rpm % 60 == 0 {
            Some(rpm / 60)
        } else {
            bad(
                "limit-rpm",
                format!("{rpm} is not a multiple of 60: sluice limits whole requests per second"),
            );
            None
        }
    });
    // Both set: ingress-nginx applies both, so the lower rate is the one that binds.
    let rate = match (rps, per_minute) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let rate_limit = rate.map(|rate| RateLimitConfig {
        requests_per_second: rate,
        burst: rate.saturating_mul(multiplier),
        key: RateLimitKey::ClientIp,
    });
    let max_request_body_bytes = match get.get("proxy-body-size") {
        None => Some(DEFAULT_BODY_SIZE),
        Some(v) => match nginx_size(v) {
            Some(0) => None,
            Some(n) => Some(n),
            None => {
                bad(
                    "proxy-body-size",
                    format!("{v:?} is not a size (e.g. 8m, 512k, 0)"),
                );
                Some(DEFAULT_BODY_SIZE)
            }
        },
    };
    // ingress-nginx: `limit-connections` per client address (0 or unset: none).
    let max_connections_per_client = match get.get("limit-connections") {
        None => None,
        Some(v) => match v.parse::<u32>() {
            Ok(0) => None,
            Ok(n) => Some(n),
            Err(_) => {
                bad("limit-connections", format!("{v:?} is not a whole number"));
                None
            }
        },
    };
    AccessPolicy {
        allow,
        deny,
        rate_limit,
        max_request_body_bytes,
        max_connections_per_client,
    }
}

/// nginx sizes: bytes, or a number with `k`, `m` or `g` (either case), powers of 1024.
pub fn nginx_size(v: &str) -> Option<u64> {
    let (digits, unit) = match v.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&v[..i], c.to_ascii_lowercase()),
        _ => (v, 'b'),
    };
    let n: u64 = digits.parse().ok()?;
    let scale: u64 = match unit {
        'b' => 1,
        'k' => 1 << 10,
        'm' => 1 << 20,
        'g' => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// `upstream-hash-by`: the nginx variables sluice can hash on.
fn hash_key(by: &str) -> Option<HashKey> {
    if by == "$remote_addr" || by == "$binary_remote_addr" {
        return Some(HashKey::ClientIp);
    }
    if let Some(h) = by.strip_prefix("$http_") {
        let name = h.replace('_', "-").to_ascii_lowercase();
        return http::HeaderName::from_bytes(name.as_bytes())
            .ok()
            .map(HashKey::Header);
    }
    let cookie = by.strip_prefix("$cookie_")?;
    (!cookie.is_empty()).then(|| HashKey::Cookie(cookie.to_owned()))
}

/// ingress-nginx timeouts: a whole number of seconds.
fn seconds(
    get: &BTreeMap<&str, &str>,
    name: &str,
    bad: &mut dyn FnMut(&str, String),
) -> Option<Duration> {
    let v = get.get(name)?;
    match v.parse::<u64>() {
        Ok(s) if s > 0 => Some(Duration::from_secs(s)),
        _ => {
            bad(
                name,
                format!("{v:?} is not a whole number of seconds above 0"),
            );
            None
        }
    }
}

/// `backend-protocol`: TLS to the backends is not verified, as ingress-nginx's default
/// `proxy-ssl-verify: off`.
fn upstream(value: &str) -> Option<UpstreamConfig> {
    let tls = || {
        Some(UpstreamTls {
            server_name: None,
            trust: UpstreamTrust::InsecureSkipVerify,
        })
    };
    Some(match value.to_ascii_uppercase().as_str() {
        "HTTP" => UpstreamConfig::default(),
        "HTTPS" => UpstreamConfig {
            protocol: UpstreamProtocol::Http1,
            tls: tls(),
        },
        "GRPC" => UpstreamConfig {
            protocol: UpstreamProtocol::Http2,
            tls: None,
        },
        "GRPCS" => UpstreamConfig {
            protocol: UpstreamProtocol::Http2,
            tls: tls(),
        },
        _ => return None,
    })
}
