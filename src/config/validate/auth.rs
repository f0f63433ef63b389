//! `cors`, `basicAuth` and `externalAuth` of an HTTP pool: the same rules as the CRD's CEL
//! and patterns, plus what CEL cannot say (origins and URLs parse, the htpasswd list reads).
//! Which credential source a mode takes (`file` standalone, `secretName` in Kubernetes) is
//! checked here; reading the file is the loader's job, reading the Secret the lookup's.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Uri};

use super::{CaLookup, Ctx, names};
use crate::api;
use crate::config::{
    AllowedOrigins, BasicAuthConfig, CorsConfig, CredentialSource, ExternalAuthConfig, Htpasswd,
    OriginPattern, Protocol, RouteFilters,
};

/// `allowMethods` when left out (ingress-nginx's `cors-allow-methods` default).
const DEFAULT_METHODS: &str = "GET, PUT, POST, DELETE, PATCH, OPTIONS";
/// `allowHeaders` when left out (ingress-nginx's `cors-allow-headers` default).
const DEFAULT_ALLOW_HEADERS: &str = "DNT, Keep-Alive, User-Agent, X-Requested-With, If-Modified-Since, Cache-Control, Content-Type, Range, Authorization";
/// `maxAge` when left out.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// `realm` when left out.
const DEFAULT_REALM: &str = "sluice";
/// `externalAuth.timeout` when left out.
const DEFAULT_AUTH_TIMEOUT: Duration = Duration::from_secs(1);

/// Fills `filters` with the checked `cors`, `basicAuth` and `externalAuth` (HTTP only).
pub(super) fn check_policies(
    ctx: &mut Ctx<'_>,
    protocol: Protocol,
    spec: &api::BackendPoolSpec,
    htpasswd: CaLookup<'_>,
    filters: &mut RouteFilters,
) {
    if protocol == Protocol::Tcp {
        for (field, set) in [
            ("spec.cors", spec.cors.is_some()),
            ("spec.basicAuth", spec.basic_auth.is_some()),
            ("spec.externalAuth", spec.external_auth.is_some()),
        ] {
            if set {
                ctx.error(field, "only for protocol HTTP");
            }
        }
        return;
    }
    filters.cors = spec
        .cors
        .as_ref()
        .and_then(|c| check_cors(ctx, c))
        .map(Arc::new);
    filters.basic_auth = spec
        .basic_auth
        .as_ref()
        .and_then(|b| check_basic_auth(ctx, b, htpasswd))
        .map(Arc::new);
    filters.external_auth = spec
        .external_auth
        .as_ref()
        .and_then(|e| check_external_auth(ctx, e))
        .map(Arc::new);
}

fn check_cors(ctx: &mut Ctx<'_>, spec: &api::CorsSpec) -> Option<CorsConfig> {
    let mut ok = true;
    let origins = match spec.allow_origins.as_deref() {
        None => AllowedOrigins::Any,
        Some(list) => {
            ok &= ctx.max_items(
                "spec.cors.allowOrigins",
                list.len(),
                api::MAX_POLICY_ENTRIES,
            );
            if list.iter().any(|o| o == "*") {
                if list.len() > 1 {
                    ctx.error(
                        "spec.cors.allowOrigins",
                        "\"*\" allows every origin and stands alone",
                    );
                    ok = false;
                }
                AllowedOrigins::Any
            } else {
                let mut patterns = Vec::with_capacity(list.len());
                for (i, raw) in list.iter().enumerate() {
                    match parse_origin(raw) {
                        Ok(p) => patterns.push(p),
                        Err(problem) => {
                            ctx.error(&format!("spec.cors.allowOrigins[{i}]"), problem);
                            ok = false;
                        }
                    }
                }
                AllowedOrigins::Listed(patterns)
            }
        }
    };
    let allow_credentials = spec.allow_credentials.unwrap_or(false);
    if allow_credentials && origins == AllowedOrigins::Any {
        ctx.error(
            "spec.cors.allowOrigins",
            "allowCredentials needs the origins listed: browsers refuse \"*\" with credentials",
        );
        ok = false;
    }
    let allow_methods = match spec.allow_methods.as_deref() {
        None => HeaderValue::from_static(DEFAULT_METHODS),
        Some(methods) => {
            let names: Vec<&str> = methods.iter().map(|m| method_name(*m)).collect();
            HeaderValue::from_str(&names.join(", ")).expect("method names are tokens")
        }
    };
    let allow_headers = match spec.allow_headers.as_deref() {
        None => Some(HeaderValue::from_static(DEFAULT_ALLOW_HEADERS)),
        Some(list) => header_list(ctx, "spec.cors.allowHeaders", list, &mut ok),
    };
    let expose_headers = match spec.expose_headers.as_deref() {
        None => None,
        Some(list) => header_list(ctx, "spec.cors.exposeHeaders", list, &mut ok),
    };
    let max_age = ctx.duration(
        "spec.cors.maxAge",
        spec.max_age.as_ref(),
        DEFAULT_MAX_AGE,
        false,
    );
    let max_age = HeaderValue::from(max_age.as_secs());
    ok.then_some(CorsConfig {
        origins,
        allow_methods,
        allow_headers,
        expose_headers,
        allow_credentials,
        max_age,
    })
}

fn method_name(m: api::HttpMethod) -> &'static str {
    match m {
        api::HttpMethod::GET => "GET",
        api::HttpMethod::HEAD => "HEAD",
        api::HttpMethod::POST => "POST",
        api::HttpMethod::PUT => "PUT",
        api::HttpMethod::DELETE => "DELETE",
        api::HttpMethod::OPTIONS => "OPTIONS",
        api::HttpMethod::TRACE => "TRACE",
        api::HttpMethod::PATCH => "PATCH",
    }
}

/// A comma-separated header list from validated names; `None` when empty.
fn header_list(
    ctx: &mut Ctx<'_>,
    field: &str,
    list: &[String],
    ok: &mut bool,
) -> Option<HeaderValue> {
    *ok &= ctx.max_items(field, list.len(), api::MAX_POLICY_ENTRIES);
    for (i, name) in list.iter().enumerate() {
        if name != "*" && HeaderName::from_bytes(name.as_bytes()).is_err() {
            ctx.error(
                &format!("{field}[{i}]"),
                format!("{name:?} is not a header name"),
            );
            *ok = false;
        }
    }
    if list.is_empty() || !*ok {
        return None;
    }
    HeaderValue::from_str(&list.join(", ")).ok()
}

/// `https://app.example[:port]` or `https://*.example[:port]`, lower-cased.
pub fn parse_origin(raw: &str) -> Result<OriginPattern, String> {
    let bad = || {
        format!(
            "{raw:?} is not an origin (\"*\", scheme://host[:port] or scheme://*.domain[:port], http or https, no path)"
        )
    };
    if raw.len() > api::MAX_ORIGIN_LEN {
        return Err(format!(
            "must be at most {} characters",
            api::MAX_ORIGIN_LEN
        ));
    }
    let lower = raw.to_ascii_lowercase();
    let (scheme, rest) = if let Some(rest) = lower.strip_prefix("https://") {
        ("https://", rest)
    } else if let Some(rest) = lower.strip_prefix("http://") {
        ("http://", rest)
    } else {
        return Err(bad());
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => match port.parse::<u16>() {
            Ok(p) if p > 0 && !port.starts_with('0') => (host, format!(":{p}")),
            _ => return Err(bad()),
        },
        None => (rest, String::new()),
    };
    match host.strip_prefix("*.") {
        Some(suffix) if names::is_dns_subdomain(suffix) => Ok(OriginPattern::Subdomain {
            scheme,
            suffix: format!(".{suffix}"),
            port,
        }),
        Some(_) => Err(bad()),
        None if names::is_dns_subdomain(host) => {
            Ok(OriginPattern::Exact(format!("{scheme}{host}{port}")))
        }
        None => Err(bad()),
    }
}

fn check_basic_auth(
    ctx: &mut Ctx<'_>,
    spec: &api::BasicAuthSpec,
    htpasswd: CaLookup<'_>,
) -> Option<BasicAuthConfig> {
    let given = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_owned);
    let realm = spec.realm.as_deref().unwrap_or(DEFAULT_REALM);
    let quotable = realm.len() <= 256
        && realm
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
    if !quotable {
        ctx.error(
            "spec.basicAuth.realm",
            "must be printable ASCII without '\"' or '\\', at most 256 characters",
        );
        return None;
    }
    let challenge = HeaderValue::from_str(&format!("Basic realm=\"{realm}\""))
        .expect("a printable ASCII realm is a header value");
    let (source, users) = match (given(&spec.secret_name), given(&spec.file)) {
        (Some(_), Some(_)) | (None, None) => {
            ctx.error(
                "spec.basicAuth",
                "set secretName (Kubernetes mode) or file (standalone mode), exactly one",
            );
            return None;
        }
        (Some(_), None) if ctx.file_mode => {
            ctx.error(
                "spec.basicAuth.secretName",
                "is for Kubernetes mode; standalone mode reads file",
            );
            return None;
        }
        (None, Some(_)) if !ctx.file_mode => {
            ctx.error(
                "spec.basicAuth.file",
                "is for standalone mode; Kubernetes mode reads secretName",
            );
            return None;
        }
        // The loader reads the file and fills the list in (validation does no I/O).
        (None, Some(file)) => (
            CredentialSource::File(match ctx.base_dir {
                Some(dir) => dir.join(file),
                None => file.into(),
            }),
            Htpasswd::default(),
        ),
        (Some(secret), None) => {
            if !names::is_dns_subdomain(&secret) {
                ctx.error(
                    "spec.basicAuth.secretName",
                    format!("{secret:?} is not a valid Secret name"),
                );
                return None;
            }
            let namespace = ctx.namespace.clone();
            let bytes = match htpasswd(&namespace, &secret) {
                Ok(bytes) => bytes,
                Err(problem) => {
                    ctx.error("spec.basicAuth.secretName", problem);
                    return None;
                }
            };
            // Empty: a caller without a Secret lookup (`validate`); the list denies everyone
            // until the controller fills it in.
            let users = if bytes.is_empty() {
                Htpasswd::default()
            } else {
                match Htpasswd::parse(&bytes) {
                    Ok(users) => users,
                    Err(problem) => {
                        let problem = format!("Secret {namespace}/{secret} key auth: {problem}");
                        ctx.error("spec.basicAuth.secretName", problem);
                        return None;
                    }
                }
            };
            (CredentialSource::Secret(secret), users)
        }
    };
    Some(BasicAuthConfig {
        challenge,
        users: Arc::new(users),
        source,
        forward_authorization: spec.forward_authorization.unwrap_or(false),
    })
}

fn check_external_auth(
    ctx: &mut Ctx<'_>,
    spec: &api::ExternalAuthSpec,
) -> Option<ExternalAuthConfig> {
    let mut ok = true;
    let url = match parse_url(&spec.url, false) {
        Ok(url) => Some(url),
        Err(problem) => {
            ctx.error("spec.externalAuth.url", problem);
            ok = false;
            None
        }
    };
    let default_request = ["authorization".to_owned(), "cookie".to_owned()];
    let request_headers = header_names(
        ctx,
        "spec.externalAuth.requestHeaders",
        spec.request_headers.as_deref().unwrap_or(&default_request),
        &mut ok,
    );
    let response_headers = header_names(
        ctx,
        "spec.externalAuth.responseHeaders",
        spec.response_headers.as_deref().unwrap_or_default(),
        &mut ok,
    );
    let signin_url = match &spec.signin_url {
        None => None,
        Some(raw) => match parse_url(raw, true) {
            Ok(_) => Some(raw.clone()),
            Err(problem) => {
                ctx.error("spec.externalAuth.signinURL", problem);
                ok = false;
                None
            }
        },
    };
    let timeout = ctx.duration(
        "spec.externalAuth.timeout",
        spec.timeout.as_ref(),
        DEFAULT_AUTH_TIMEOUT,
        true,
    );
    Some(ExternalAuthConfig {
        url: url?,
        request_headers,
        response_headers,
        signin_url,
        timeout,
        method: http::Method::GET,
        all_request_headers: false,
        signin_template: false,
    })
    .filter(|_| ok)
}

/// An absolute `http://` URL (`https://` too when `https_ok`), without user info or
/// fragment.
fn parse_url(raw: &str, https_ok: bool) -> Result<Uri, String> {
    let bad = |why: &str| format!("{raw:?} {why}");
    if raw.len() > api::MAX_URL_LEN {
        return Err(format!("must be at most {} characters", api::MAX_URL_LEN));
    }
    let uri: Uri = raw.parse().map_err(|_| bad("is not a URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") if https_ok => {}
        Some("https") => {
            return Err(bad(
                "is https: the auth service is reached over plain HTTP (its in-cluster port)",
            ));
        }
        _ if https_ok => return Err(bad("must start with http:// or https://")),
        _ => return Err(bad("must start with http://")),
    }
    match uri.authority() {
        Some(a) if !a.as_str().contains('@') && !a.host().is_empty() => {}
        _ => return Err(bad("needs a host (and no user info)")),
    }
    if raw.contains('#') {
        return Err(bad("must not have a fragment"));
    }
    Ok(uri)
}

fn header_names(ctx: &mut Ctx<'_>, field: &str, list: &[String], ok: &mut bool) -> Vec<HeaderName> {
    *ok &= ctx.max_items(field, list.len(), api::MAX_POLICY_ENTRIES);
    let mut out = Vec::with_capacity(list.len());
    for (i, raw) in list.iter().enumerate() {
        match HeaderName::from_bytes(raw.as_bytes()) {
            Ok(name) if super::routing::FRAMED_HEADERS.contains(&name.as_str()) => {
                ctx.error(
                    &format!("{field}[{i}]"),
                    format!("{raw} is framed by sluice and cannot be copied"),
                );
                *ok = false;
            }
            Ok(name) => {
                if !out.contains(&name) {
                    out.push(name);
                }
            }
            Err(_) => {
                ctx.error(
                    &format!("{field}[{i}]"),
                    format!("{raw:?} is not a header name"),
                );
                *ok = false;
            }
        }
    }
    out
}
