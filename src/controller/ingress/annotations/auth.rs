//! The authentication annotations: `auth-type: basic` (+ `auth-secret`, `auth-realm`,
//! `auth-secret-type`) and `auth-url` (+ `auth-signin`, `auth-response-headers`,
//! `auth-method`), parsed as ingress-nginx parses them. Any other combination is refused:
//! an auth annotation never goes unenforced.

use std::collections::BTreeMap;
use std::time::Duration;

use http::{HeaderName, Method, Uri};

use crate::config::ExternalAuthConfig;

/// What `auth-type: basic` asks for; the controller reads the Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicAuth {
    /// `auth-secret`: `name` (the Ingress's namespace) or `namespace/name`.
    pub secret: String,
    /// `auth-realm` (printable ASCII without `"` or `\`).
    pub realm: String,
}

/// The realm of `auth-type: basic` without `auth-realm`.
const DEFAULT_REALM: &str = "Authentication Required";

/// The variables sluice expands in `auth-signin` (ingress-nginx expands any nginx variable).
const SIGNIN_VARIABLES: &[&str] = &[
    "$escaped_request_uri",
    "$pass_access_scheme",
    "$request_uri",
    "$http_host",
    "$scheme",
    "$host",
];

/// Headers an auth answer may not hand to the upstream request (sluice frames them).
const FRAMED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
];

/// `auth-type: basic` + `auth-secret` (+ `auth-realm`, `auth-secret-type: auth-file`).
pub(super) fn basic_auth(
    get: &BTreeMap<&str, &str>,
    bad: &mut dyn FnMut(&str, String),
) -> Option<BasicAuth> {
    let present = ["auth-type", "auth-secret", "auth-secret-type", "auth-realm"]
        .iter()
        .any(|n| get.contains_key(n));
    if !present {
        return None;
    }
    match get.get("auth-type") {
        Some(&"basic") => {}
        Some(other) => {
            bad(
                "auth-type",
                format!("{other:?}: sluice implements basic only"),
            );
            return None;
        }
        None => {
            bad("auth-secret", "needs auth-type: basic".to_owned());
            return None;
        }
    }
    if let Some(kind) = get.get("auth-secret-type")
        && *kind != "auth-file"
    {
        bad(
            "auth-secret-type",
            format!("{kind:?}: sluice reads auth-file (key auth) only"),
        );
        return None;
    }
    let Some(secret) = get.get("auth-secret").filter(|s| !s.is_empty()) else {
        bad("auth-type", "basic needs auth-secret".to_owned());
        return None;
    };
    let realm = get.get("auth-realm").copied().unwrap_or(DEFAULT_REALM);
    let quotable = realm.len() <= 256
        && realm
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
    if !quotable {
        bad(
            "auth-realm",
            "must be printable ASCII without '\"' or '\\'".to_owned(),
        );
        return None;
    }
    Some(BasicAuth {
        secret: secret.to_string(),
        realm: realm.to_owned(),
    })
}

/// `auth-url` with `auth-signin`, `auth-response-headers` and `auth-method`: every client
/// header goes to the auth service (as nginx's `auth_request` sends them), the auth answer
/// is awaited up to `timeout` (the Ingress's `proxy-read-timeout`, which ingress-nginx's
/// auth location inherits).
pub(super) fn external_auth(
    get: &BTreeMap<&str, &str>,
    timeout: Duration,
    bad: &mut dyn FnMut(&str, String),
) -> Option<ExternalAuthConfig> {
    let Some(raw) = get.get("auth-url") else {
        for dependent in ["auth-signin", "auth-response-headers", "auth-method"] {
            if get.contains_key(dependent) {
                bad(dependent, "needs auth-url".to_owned());
            }
        }
        return None;
    };
    let url = auth_url(raw).map_err(|why| bad("auth-url", why)).ok();
    let method = match get.get("auth-method") {
        None => Some(Method::GET),
        Some(m) => match *m {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" | "TRACE" => {
                Method::from_bytes(m.as_bytes()).ok()
            }
            _ => {
                bad(
                    "auth-method",
                    format!(
                        "{m:?} is not an HTTP method (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE)"
                    ),
                );
                None
            }
        },
    };
    let response_headers = match get.get("auth-response-headers") {
        None => Some(Vec::new()),
        Some(list) => response_headers(list)
            .map_err(|why| bad("auth-response-headers", why))
            .ok(),
    };
    let signin_url = match get.get("auth-signin") {
        None => Some(None),
        Some(s) => signin(s)
            .map(Some)
            .map_err(|why| bad("auth-signin", why))
            .ok(),
    };
    Some(ExternalAuthConfig {
        url: url?,
        request_headers: Vec::new(),
        response_headers: response_headers?,
        signin_url: signin_url?,
        timeout,
        method: method?,
        all_request_headers: true,
        signin_template: true,
    })
}

/// An absolute `http://` URL without nginx variables, user info or fragment.
fn auth_url(raw: &str) -> Result<Uri, String> {
    if raw.contains('$') {
        return Err(format!(
            "{raw:?}: nginx variables are not supported in auth-url; give the auth Service's own URL (e.g. http://oauth2-proxy.auth.svc.cluster.local:4180/oauth2/auth)"
        ));
    }
    let uri: Uri = raw.parse().map_err(|_| format!("{raw:?} is not a URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "{raw:?}: sluice reaches the auth service over plain HTTP; give its in-cluster http:// URL"
            ));
        }
        _ => return Err(format!("{raw:?} is not an absolute http:// URL")),
    }
    match uri.authority() {
        Some(a) if !a.as_str().contains('@') && !a.host().is_empty() && !raw.contains('#') => {
            Ok(uri)
        }
        _ => Err(format!(
            "{raw:?} needs a host (and no user info or fragment)"
        )),
    }
}

/// `X-Auth-Request-User, X-Auth-Request-Email`: header names, none sluice frames.
fn response_headers(list: &str) -> Result<Vec<HeaderName>, String> {
    let mut out = Vec::new();
    for raw in list.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        let name = HeaderName::from_bytes(raw.as_bytes())
            .map_err(|_| format!("{raw:?} is not a header name"))?;
        if FRAMED.contains(&name.as_str()) {
            return Err(format!("{raw} is framed by sluice and cannot be copied"));
        }
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// An absolute http(s) URL, possibly with the variables sluice expands.
fn signin(raw: &str) -> Result<String, String> {
    let mut sample = raw.to_owned();
    for var in SIGNIN_VARIABLES {
        let value = match *var {
            "$scheme" | "$pass_access_scheme" => "https",
            "$host" | "$http_host" => "app.example",
            _ => "%2F",
        };
        sample = sample.replace(var, value);
    }
    if let Some(at) = sample.find('$') {
        let name: String = sample[at..]
            .chars()
            .take_while(|c| *c == '$' || c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        return Err(format!(
            "{raw:?}: variable {name} is not supported (sluice expands $host, $http_host, $scheme, $pass_access_scheme, $request_uri, $escaped_request_uri)"
        ));
    }
    let uri: Uri = sample
        .parse()
        .map_err(|_| format!("{raw:?} is not a URL"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(h)) if !h.is_empty() && !raw.contains('#') => {
            Ok(raw.to_owned())
        }
        _ => Err(format!("{raw:?} is not an absolute http(s) URL")),
    }
}
