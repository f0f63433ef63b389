//! Validation: `BackendPool` resources -> [`ConfigSet`], the only way into the model.
//!
//! Owns every rule the contract puts on a pool (ranges, durations, which fields go with
//! which protocol, cross-pool port and route conflicts) and every default. It collects all
//! errors rather than stopping at the first, each naming the source, the pool and the field
//! path. It does no I/O and never panics on input: the file loader and the controller both
//! call it, and the proxy trusts what it returns.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::duration::parse_duration;
use super::{
    ConfigSet, ListenerConfig, OutlierConfig, PoolConfig, Protocol, ProxyProtocolVersion, TlsConfig,
};
use crate::api;
use crate::api::BackendPool;

mod auth;
mod conflicts;
mod endpoints;
mod names;
mod policy;
mod routing;
#[cfg(test)]
mod tests;
mod traffic;
mod upstream;

pub use auth::parse_origin;

/// Where the documents came from: decides the error prefix and the mode-specific rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A standalone file, as the user named it. Errors start with this path, and relative
    /// `certFile`/`keyFile` paths are resolved against its directory. Standalone rules:
    /// static `endpoints` are required (Services cannot be resolved) and TLS needs
    /// `certFile` + `keyFile`.
    File(String),
    /// The Kubernetes API. Errors start with `pool ns/name`; `service` may stand alone and
    /// TLS needs `secretName`.
    Kubernetes,
}

/// One validation failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    /// Full message: `<file>: pool <ns/name>: <field path>: <problem>` (no file part for
    /// Kubernetes; `document N` instead of `pool` for documents that could not be read).
    pub message: String,
    /// The pool (`namespace/name`) the error belongs to, when known. A conflict between
    /// two pools belongs to the newcomer (see [`Seniority`]; its message names the owner), so
    /// refusing the pools named here always leaves a consistent rest and never the owner.
    pub pool: Option<String>,
    /// The field path (`spec.healthCheck.interval`), when the error is about one field.
    pub field: Option<String>,
    /// True when the pool is fine alone but collides with another pool (port, route,
    /// TLS mix): the Kubernetes status reason is then `Conflict`, not `InvalidSpec`.
    pub conflict: bool,
    /// Where the field is in the file (file mode; set by the loader).
    pub location: Option<super::Location>,
}

/// Every failure found, in document order (per-pool errors first, then cross-pool ones).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl std::fmt::Display for ValidationErrors {
    /// One error per line, no trailing newline.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(&e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// Validates `pools` as a whole and builds the model, applying every contract default.
///
/// In [`Source::Kubernetes`] mode a `listener.tls.secretName` becomes a
/// [`TlsConfig::Pem`] with **empty** material: the Secret has not been read yet and the
/// controller must replace it before the pool serves TLS. A controller that can read
/// Secrets should call [`validate_with_secrets`] instead, which fills the material in and
/// turns a missing Secret into an error on `spec.listener.tls.secretName`.
pub fn validate(source: &Source, pools: &[BackendPool]) -> Result<ConfigSet, ValidationErrors> {
    validate_with_secrets(source, pools, &|_, _| {
        Ok(TlsConfig::Pem {
            cert: Arc::from(Vec::new()),
            key: Arc::from(Vec::new()),
        })
    })
}

/// [`validate`] with a lookup for TLS Secrets (Kubernetes mode only).
///
/// `secrets(namespace, secret_name)` returns the certificate material, or the problem
/// (`Secret default/web-tls not found`) reported on `spec.listener.tls.secretName`.
/// It is never called for [`Source::File`]. Upstream CA Secrets are left empty, as
/// [`validate`] leaves them; [`validate_with_lookups`] reads those too.
pub fn validate_with_secrets(
    source: &Source,
    pools: &[BackendPool],
    secrets: &dyn Fn(&str, &str) -> Result<TlsConfig, String>,
) -> Result<ConfigSet, ValidationErrors> {
    validate_with_lookups(
        source,
        pools,
        &Lookups {
            tls: secrets,
            ca: &|_, _| Ok(Arc::from(Vec::new())),
            htpasswd: &|_, _| Ok(Arc::from(Vec::new())),
        },
    )
}

/// Reads a CA bundle: `(namespace, Secret name)` -> PEM, or the problem.
pub type CaLookup<'a> = &'a dyn Fn(&str, &str) -> Result<Arc<[u8]>, String>;

/// What validation may read from Kubernetes Secrets (never called for [`Source::File`]).
pub struct Lookups<'a> {
    /// `(namespace, name)` -> the listener certificate and key, or the problem.
    pub tls: &'a dyn Fn(&str, &str) -> Result<TlsConfig, String>,
    /// `(namespace, name)` -> the PEM CA bundle (`ca.crt`) for `upstream.tls.caSecretName`,
    /// or the problem.
    pub ca: CaLookup<'a>,
    /// `(namespace, name)` -> the htpasswd list (key `auth`) for `basicAuth.secretName`, or
    /// the problem. Empty bytes stand for "not read yet": the list then denies everyone.
    pub htpasswd: CaLookup<'a>,
}

/// [`validate`] reading listener certificates and upstream CA bundles through `lookups`.
pub fn validate_with_lookups(
    source: &Source,
    pools: &[BackendPool],
    lookups: &Lookups<'_>,
) -> Result<ConfigSet, ValidationErrors> {
    let mut errors = Vec::new();
    let mut checked = Vec::with_capacity(pools.len());
    let mut seen = HashSet::new();
    for (index, pool) in pools.iter().enumerate() {
        checked.push(check_one(
            source,
            pool,
            index,
            lookups,
            &mut seen,
            &mut errors,
        ));
    }
    finish(source, checked, errors)
}

/// Per-pool validation results kept between runs, so that a rebuild checks again only the
/// pools whose object changed; the cross-pool rules (ports, routes, oldest wins) still
/// run over all of them every time.
#[derive(Debug, Default)]
pub struct Memo {
    pools: HashMap<String, Remembered>,
}

#[derive(Debug)]
struct Remembered {
    /// Held, so the allocation cannot be reused by another object while remembered.
    object: Arc<BackendPool>,
    seniority: Seniority,
    checked: Checked,
    errors: Vec<ValidationError>,
}

impl Memo {
    /// Forgets every result (what the lookups read changed).
    pub fn clear(&mut self) {
        self.pools.clear();
    }
}

/// [`validate_with_lookups`] reusing `memo`'s result for every pool whose object is the
/// same allocation as last time. The lookups must answer as they did when `memo` was
/// filled: [`Memo::clear`] it when what they read changes.
pub fn validate_memo(
    source: &Source,
    pools: &[Arc<BackendPool>],
    lookups: &Lookups<'_>,
    memo: &mut Memo,
) -> Result<ConfigSet, ValidationErrors> {
    let mut errors = Vec::new();
    let mut checked = Vec::with_capacity(pools.len());
    let mut seen = HashSet::new();
    for (index, pool) in pools.iter().enumerate() {
        let key = memo_key(pool);
        if let Some(r) = memo.pools.get(&key)
            && Arc::ptr_eq(&r.object, pool)
            && seen.insert(key.clone())
        {
            errors.extend(r.errors.iter().cloned());
            checked.push((r.seniority.clone(), r.checked.clone()));
            continue;
        }
        let mut own = Vec::new();
        let (seniority, c) = check_one(source, pool, index, lookups, &mut seen, &mut own);
        if c.unique && !key.is_empty() {
            let remembered = Remembered {
                object: pool.clone(),
                seniority: seniority.clone(),
                checked: c.clone(),
                errors: own.clone(),
            };
            memo.pools.insert(key, remembered);
        }
        errors.extend(own);
        checked.push((seniority, c));
    }
    memo.pools.retain(|k, _| seen.contains(k));
    finish(source, checked, errors)
}

/// `namespace/name` as validation names a pool, or "" for one without a name.
fn memo_key(pool: &BackendPool) -> String {
    match pool.metadata.name.as_deref() {
        Some(name) if !name.is_empty() => {
            let ns = pool.metadata.namespace.as_deref().filter(|n| !n.is_empty());
            format!("{}/{name}", ns.unwrap_or("default"))
        }
        _ => String::new(),
    }
}

/// Checks one pool alone: its errors go to `errors`, its name to `seen`.
fn check_one(
    source: &Source,
    pool: &BackendPool,
    index: usize,
    lookups: &Lookups<'_>,
    seen: &mut HashSet<String>,
    errors: &mut Vec<ValidationError>,
) -> (Seniority, Checked) {
    let mut ctx = Ctx::new(source, pool, index, errors);
    let unique = if ctx.named && !seen.insert(ctx.name.clone()) {
        let problem = format!("pool {} is defined more than once", ctx.name);
        ctx.error("metadata.name", problem);
        false
    } else {
        true
    };
    let seniority = Seniority::of(source, pool, index, &ctx.name);
    let mut checked_pool = check_pool(&mut ctx, &pool.spec, lookups);
    checked_pool.unique = unique;
    (seniority, checked_pool)
}

/// The cross-pool rules over every checked pool, then the set (or every error).
fn finish(
    source: &Source,
    mut checked: Vec<(Seniority, Checked)>,
    mut errors: Vec<ValidationError>,
) -> Result<ConfigSet, ValidationErrors> {
    checked.sort_by(|a, b| a.0.cmp(&b.0));
    let mut checked: Vec<Checked> = checked.into_iter().map(|(_, c)| c).collect();
    conflicts::check(source, &checked, &mut errors);
    // Routes keep the owners' seniority: the older of two equal routes is found first.
    let routes = checked
        .iter()
        .filter_map(|c| c.config.route())
        .map(Arc::new)
        .collect();
    checked.sort_by(|a, b| a.config.name.cmp(&b.config.name));
    if errors.is_empty() {
        let pools: Vec<Arc<PoolConfig>> = checked.into_iter().map(|c| c.config).collect();
        Ok(ConfigSet {
            listeners: super::claims(&pools),
            routes,
            pools,
        })
    } else {
        Err(ValidationErrors(errors))
    }
}

/// Who keeps a contested port or route: the smaller value. Gateway API's rule, so that
/// creating an object never moves traffic away from one that is serving.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Seniority {
    /// Standalone: the document's position in the file; the earlier document wins,
    /// whatever the names (a file has no creation times, and any in it are ignored).
    Document(usize),
    /// Kubernetes: `metadata.creationTimestamp` in nanoseconds since the epoch (an object
    /// without one counts as the newest), then `namespace/name`. The API server stamps
    /// whole seconds, so objects created in the same second fall back to the name.
    Created(i128, String),
}

impl Seniority {
    fn of(source: &Source, pool: &BackendPool, index: usize, name: &str) -> Seniority {
        match source {
            Source::File(_) => Seniority::Document(index),
            Source::Kubernetes => Seniority::Created(
                pool.metadata
                    .creation_timestamp
                    .as_ref()
                    .map_or(i128::MAX, |t| t.0.as_nanosecond()),
                name.to_owned(),
            ),
        }
    }
}

/// A pool after its own checks, with what the cross-pool checks need to know.
#[derive(Debug, Clone)]
struct Checked {
    /// The model, with defaults in place of invalid values.
    config: Arc<PoolConfig>,
    /// The port was valid (cross-pool port rules apply).
    port_ok: bool,
    /// Hosts and path prefix were valid (route conflicts apply).
    route_ok: bool,
    /// Whether the listener terminates TLS.
    tls: bool,
    /// First pool of its name (a duplicate takes no part in cross-pool checks).
    unique: bool,
}

/// Collects errors for one pool under its prefix.
struct Ctx<'a> {
    /// `pools.yaml: pool default/web` or `pool default/web`.
    prefix: String,
    /// `namespace/name` (or a stand-in when `metadata.name` is missing).
    name: String,
    /// `metadata.name` and `metadata.namespace` were valid.
    named: bool,
    namespace: String,
    file_mode: bool,
    base_dir: Option<&'a Path>,
    errors: &'a mut Vec<ValidationError>,
}

impl<'a> Ctx<'a> {
    fn new(
        source: &'a Source,
        pool: &BackendPool,
        index: usize,
        errors: &'a mut Vec<ValidationError>,
    ) -> Self {
        let namespace = pool
            .metadata
            .namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| "default".to_owned());
        let raw_name = pool.metadata.name.clone().unwrap_or_default();
        let name_ok = names::is_dns_subdomain(&raw_name);
        let namespace_ok = names::is_dns_label(&namespace);
        let name = if raw_name.is_empty() {
            format!("{namespace}/#{} (no metadata.name)", index + 1)
        } else {
            format!("{namespace}/{raw_name}")
        };
        let (prefix, file_mode, base_dir) = match source {
            Source::File(file) => (
                format!("{file}: pool {name}"),
                true,
                Path::new(file).parent(),
            ),
            Source::Kubernetes => (format!("pool {name}"), false, None),
        };
        let mut ctx = Ctx {
            prefix,
            name,
            named: name_ok && namespace_ok,
            namespace,
            file_mode,
            base_dir,
            errors,
        };
        if raw_name.is_empty() {
            ctx.error("metadata.name", "required");
        } else if !name_ok {
            ctx.error(
                "metadata.name",
                format!("{raw_name:?} is not a valid name (lower-case DNS subdomain)"),
            );
        }
        if !namespace_ok {
            let problem = format!(
                "{:?} is not a valid namespace (lower-case DNS label)",
                ctx.namespace
            );
            ctx.error("metadata.namespace", problem);
        }
        ctx
    }

    fn error(&mut self, field: &str, problem: impl std::fmt::Display) {
        self.errors.push(ValidationError {
            message: format!("{}: {field}: {problem}", self.prefix),
            pool: Some(self.name.clone()),
            field: Some(field.to_owned()),
            conflict: false,
            location: None,
        });
    }

    /// Parses an optional duration; `nonzero` rejects `0s` where zero makes no sense.
    fn duration(
        &mut self,
        field: &str,
        value: Option<&String>,
        default: Duration,
        nonzero: bool,
    ) -> Duration {
        let Some(value) = value else {
            return default;
        };
        if value.chars().count() > api::MAX_DURATION_LEN {
            let max = api::MAX_DURATION_LEN;
            self.error(field, format!("must be at most {max} characters"));
            return default;
        }
        match parse_duration(value) {
            Ok(d) if nonzero && d.is_zero() => {
                self.error(field, "must be greater than 0");
                default
            }
            Ok(d) => d,
            Err(problem) => {
                self.error(field, problem);
                default
            }
        }
    }

    /// Checks a list has at most `max` entries (the CRD's `maxItems`).
    fn max_items(&mut self, field: &str, len: usize, max: usize) -> bool {
        if len > max {
            self.error(field, format!("must have at most {max} entries, got {len}"));
        }
        len <= max
    }

    /// Checks `value` (default `default`) lies in `lo..=hi`.
    fn range(&mut self, field: &str, value: Option<u32>, default: u32, lo: u32, hi: u32) -> u32 {
        let v = value.unwrap_or(default);
        if (lo..=hi).contains(&v) {
            v
        } else {
            self.error(field, format!("must be {lo}..={hi}, got {v}"));
            default
        }
    }
}

fn check_pool(ctx: &mut Ctx<'_>, spec: &api::BackendPoolSpec, lookups: &Lookups<'_>) -> Checked {
    let protocol = match spec.protocol {
        api::Protocol::Http => Protocol::Http,
        api::Protocol::Tcp => Protocol::Tcp,
    };
    let (listener, port_ok, route_ok) = check_listener(ctx, protocol, &spec.listener, lookups.tls);
    let (endpoints, dns) = endpoints::check_endpoints(ctx, spec);
    let algorithm = traffic::check_algorithm(ctx, protocol, spec);
    let health_check = spec
        .health_check
        .as_ref()
        .map(|hc| traffic::check_health(ctx, hc));
    let outlier_detection = spec.outlier_detection.as_ref().map(|od| OutlierConfig {
        consecutive_failures: ctx.range(
            "spec.outlierDetection.consecutiveFailures",
            od.consecutive_failures,
            5,
            1,
            u32::MAX,
        ),
        base_ejection_time: ctx.duration(
            "spec.outlierDetection.baseEjectionTime",
            od.base_ejection_time.as_ref(),
            Duration::from_secs(30),
            true,
        ),
        max_ejection_percent: ctx.range(
            "spec.outlierDetection.maxEjectionPercent",
            od.max_ejection_percent,
            50,
            0,
            100,
        ),
    });
    let retry = spec.retry.as_ref().map(|r| traffic::check_retry(ctx, r));
    let affinity = spec
        .session_affinity
        .as_ref()
        .and_then(|a| traffic::check_affinity(ctx, protocol, a));
    let timeouts = traffic::check_timeouts(ctx, spec.timeouts.as_ref());
    let drain_timeout = ctx.duration(
        "spec.drainTimeout",
        spec.drain_timeout.as_ref(),
        Duration::from_secs(30),
        false,
    );
    let max_connections_per_endpoint = spec.max_connections_per_endpoint.filter(|&n| n > 0);
    let send_proxy_protocol = match spec.send_proxy_protocol {
        None | Some(api::ProxyProtocolVersion::None) => ProxyProtocolVersion::None,
        Some(v) if protocol == Protocol::Http => {
            ctx.error(
                "spec.sendProxyProtocol",
                format!("{v:?} is only for protocol TCP"),
            );
            ProxyProtocolVersion::None
        }
        Some(api::ProxyProtocolVersion::V1) => ProxyProtocolVersion::V1,
        Some(api::ProxyProtocolVersion::V2) => ProxyProtocolVersion::V2,
    };
    let mut filters = routing::check_filters(ctx, protocol, spec);
    auth::check_policies(ctx, protocol, spec, lookups.htpasswd, &mut filters);
    let canary = routing::check_canary(ctx, protocol, spec);
    let upstream = upstream::check_upstream(ctx, protocol, spec.upstream.as_ref(), lookups.ca);
    let tls = spec.listener.tls.is_some();
    Checked {
        config: Arc::new(PoolConfig {
            name: ctx.name.clone(),
            protocol,
            listener,
            endpoints,
            algorithm,
            health_check,
            outlier_detection,
            retry,
            affinity,
            timeouts,
            drain_timeout,
            max_connections_per_endpoint,
            send_proxy_protocol,
            filters,
            canary,
            upstream,
            dns,
        }),
        port_ok,
        route_ok,
        tls,
        unique: true,
    }
}

/// Returns the listener, whether its port is valid and whether its routes are.
fn check_listener(
    ctx: &mut Ctx<'_>,
    protocol: Protocol,
    spec: &api::ListenerSpec,
    secrets: &dyn Fn(&str, &str) -> Result<TlsConfig, String>,
) -> (ListenerConfig, bool, bool) {
    let port = match u16::try_from(spec.port) {
        Ok(p) if p > 0 => Some(p),
        _ => {
            ctx.error(
                "spec.listener.port",
                format!("must be 1..=65535, got {}", spec.port),
            );
            None
        }
    };
    let mut route_ok = true;
    let mut hosts = Vec::new();
    let mut path_prefix = "/".to_owned();
    let mut tls = None;
    if protocol == Protocol::Tcp {
        if spec.hosts.as_ref().is_some_and(|h| !h.is_empty()) {
            ctx.error("spec.listener.hosts", "only for protocol HTTP");
        }
        if spec.path_prefix.is_some() {
            ctx.error("spec.listener.pathPrefix", "only for protocol HTTP");
        }
    } else {
        let listed = spec.hosts.as_deref().unwrap_or_default();
        route_ok &= ctx.max_items("spec.listener.hosts", listed.len(), api::MAX_HOSTS);
        for (i, raw) in listed.iter().enumerate() {
            match names::parse_host(raw) {
                Ok(h) if !hosts.contains(&h) => hosts.push(h),
                Ok(_) => {}
                Err(problem) => {
                    ctx.error(&format!("spec.listener.hosts[{i}]"), problem);
                    route_ok = false;
                }
            }
        }
        if let Some(raw) = &spec.path_prefix {
            match normalize_path_prefix(raw) {
                Ok(p) => path_prefix = p,
                Err(problem) => {
                    ctx.error("spec.listener.pathPrefix", problem);
                    route_ok = false;
                }
            }
        }
    }
    // TLS terminates on HTTP and TCP listeners alike (TCP pools forward the plain bytes).
    if let Some(t) = &spec.tls {
        tls = check_tls(ctx, t, secrets);
    }
    let matches = routing::check_match(ctx, protocol, spec.match_.as_ref());
    let listener = ListenerConfig {
        port: port.unwrap_or(0),
        hosts,
        path_prefix,
        tls,
        proxy_protocol: spec.proxy_protocol.unwrap_or(false),
        matches,
    };
    (listener, port.is_some(), route_ok)
}

/// `/api/` -> `/api`; `/` stays `/`.
fn normalize_path_prefix(raw: &str) -> Result<String, String> {
    if raw.chars().count() > api::MAX_PATH_PREFIX_LEN {
        let max = api::MAX_PATH_PREFIX_LEN;
        return Err(format!("must be at most {max} characters"));
    }
    if !raw.starts_with('/') {
        return Err(format!("{raw:?} must start with \"/\""));
    }
    if raw
        .chars()
        .any(|c| c == '?' || c == '#' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "{raw:?} must be a path (no query, fragment or whitespace)"
        ));
    }
    let trimmed = raw.trim_end_matches('/');
    Ok(if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    })
}

fn check_tls(
    ctx: &mut Ctx<'_>,
    spec: &api::TlsSpec,
    secrets: &dyn Fn(&str, &str) -> Result<TlsConfig, String>,
) -> Option<TlsConfig> {
    let given = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_owned);
    let (secret, cert, key) = (
        given(&spec.secret_name),
        given(&spec.cert_file),
        given(&spec.key_file),
    );
    if ctx.file_mode {
        match (cert, key) {
            (Some(cert), Some(key)) => {
                let resolve = |f: String| match ctx.base_dir {
                    Some(dir) => dir.join(f),
                    None => f.into(),
                };
                Some(TlsConfig::Files {
                    cert: resolve(cert),
                    key: resolve(key),
                })
            }
            (None, None) if secret.is_some() => {
                ctx.error(
                    "spec.listener.tls",
                    "secretName needs Kubernetes mode; standalone mode needs certFile and keyFile",
                );
                None
            }
            (None, None) => {
                ctx.error("spec.listener.tls", "certFile and keyFile are required");
                None
            }
            (Some(_), None) => {
                ctx.error("spec.listener.tls.keyFile", "required with certFile");
                None
            }
            (None, Some(_)) => {
                ctx.error("spec.listener.tls.certFile", "required with keyFile");
                None
            }
        }
    } else {
        let Some(secret) = secret else {
            ctx.error(
                "spec.listener.tls.secretName",
                "required in Kubernetes mode (certFile and keyFile are for standalone mode)",
            );
            return None;
        };
        if !names::is_dns_subdomain(&secret) {
            ctx.error(
                "spec.listener.tls.secretName",
                format!("{secret:?} is not a valid Secret name"),
            );
            return None;
        }
        let namespace = ctx.namespace.clone();
        match secrets(&namespace, &secret) {
            Ok(tls) => Some(tls),
            Err(problem) => {
                ctx.error("spec.listener.tls.secretName", problem);
                None
            }
        }
    }
}
