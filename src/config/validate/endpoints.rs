//! A backend set's endpoints: its Service reference and its static `endpoints`, each an
//! `ip:port` or (`sluice serve` only) a `host:port` DNS name the file front end resolves.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Ctx, names};
use crate::api;
use crate::config::{DnsEndpoints, EndpointConfig, NamedEndpoint};

/// How often DNS names are resolved again when `resolveEvery` is left out (nginx's
/// `resolver valid=` default is the record's TTL; 30 s is HAProxy's `hold valid` default).
pub const DEFAULT_RESOLVE_EVERY: Duration = Duration::from_secs(30);

/// The pool's own endpoints and, in file mode, its DNS-name endpoints.
pub(super) fn check_endpoints(
    ctx: &mut Ctx<'_>,
    spec: &api::BackendPoolSpec,
) -> (Vec<EndpointConfig>, Option<DnsEndpoints>) {
    let every = ctx.duration(
        "spec.resolveEvery",
        spec.resolve_every.as_ref(),
        DEFAULT_RESOLVE_EVERY,
        true,
    );
    let source = EndpointSource {
        field: "spec",
        service: spec.service.as_ref(),
        endpoints: spec.endpoints.as_deref(),
    };
    // A redirect answers by itself: it needs neither.
    let (endpoints, names) =
        if spec.redirect.is_some() && spec.service.is_none() && spec.endpoints.is_none() {
            (Vec::new(), Vec::new())
        } else {
            check_source(ctx, &source)
        };
    if names.is_empty() {
        if spec.resolve_every.is_some() {
            ctx.error(
                "spec.resolveEvery",
                "applies only to endpoints given as host:port DNS names; none is listed",
            );
        }
        return (endpoints, None);
    }
    (endpoints, Some(DnsEndpoints { names, every }))
}

/// Where a backend set's endpoints come from: `{field}.service` and/or `{field}.endpoints`.
pub(super) struct EndpointSource<'a> {
    /// The block holding them (`spec`, `spec.canary`).
    pub field: &'a str,
    /// Its Service.
    pub service: Option<&'a api::ServiceRef>,
    /// Its static endpoints.
    pub endpoints: Option<&'a [api::EndpointSpec]>,
}

/// Checks a backend set that takes addresses only (the canary): DNS names are refused.
pub(super) fn check_endpoint_source(
    ctx: &mut Ctx<'_>,
    source: &EndpointSource<'_>,
) -> Vec<EndpointConfig> {
    let (endpoints, names) = check_source(ctx, source);
    if !names.is_empty() {
        ctx.error(
            &format!("{}.endpoints", source.field),
            "DNS names are supported in spec.endpoints only; list ip:port addresses here",
        );
    }
    endpoints
}

/// Checks a backend set's Service reference and static endpoints; returns the addresses
/// and the names (file mode; in Kubernetes mode a name is an error).
fn check_source(
    ctx: &mut Ctx<'_>,
    source: &EndpointSource<'_>,
) -> (Vec<EndpointConfig>, Vec<NamedEndpoint>) {
    let at = source.field;
    if let Some(service) = source.service {
        check_service(ctx, at, service);
    }
    let listed = source.endpoints.unwrap_or_default();
    ctx.max_items(&format!("{at}.endpoints"), listed.len(), api::MAX_ENDPOINTS);
    // An explicit empty list is valid: the pool serves 503 until endpoints are added.
    match (source.service, source.endpoints, ctx.file_mode) {
        (Some(_), _, true) if listed.is_empty() => ctx.error(
            &format!("{at}.service"),
            format!("standalone mode cannot resolve Services; list static {at}.endpoints"),
        ),
        (None, None, true) => ctx.error(
            &format!("{at}.endpoints"),
            "required (an empty list is allowed: the pool then answers 503)",
        ),
        (None, None, false) => ctx.error(
            &format!("{at}.endpoints"),
            format!("either {at}.service or {at}.endpoints is required"),
        ),
        _ => {}
    }
    let mut endpoints: Vec<EndpointConfig> = Vec::with_capacity(listed.len());
    let mut names: Vec<NamedEndpoint> = Vec::new();
    let mut first_index: HashMap<String, usize> = HashMap::new();
    for (i, ep) in listed.iter().enumerate() {
        let weight = ctx.range(
            &format!("{at}.endpoints[{i}].weight"),
            ep.weight,
            1,
            1,
            1000,
        );
        let field = format!("{at}.endpoints[{i}].address");
        let Some(parsed) = parse_address(ctx, &field, &ep.address) else {
            continue;
        };
        let key = match &parsed {
            Address::Ip(a) => a.to_string(),
            Address::Name(host, port) => format!("{host}:{port}"),
        };
        if let Some(first) = first_index.get(&key) {
            ctx.error(
                &field,
                format!("{key} is already listed as {at}.endpoints[{first}]"),
            );
            continue;
        }
        first_index.insert(key, i);
        match parsed {
            Address::Ip(address) => endpoints.push(EndpointConfig {
                address,
                weight,
                ready: true,
            }),
            Address::Name(host, port) => names.push(NamedEndpoint { host, port, weight }),
        }
    }
    (endpoints, names)
}

fn check_service(ctx: &mut Ctx<'_>, at: &str, service: &api::ServiceRef) {
    if !names::is_dns_label(&service.name) {
        ctx.error(
            &format!("{at}.service.name"),
            format!("{:?} is not a valid Service name", service.name),
        );
    }
    match &service.port {
        IntOrString::Int(n) if !(1..=65535).contains(n) => {
            ctx.error(
                &format!("{at}.service.port"),
                format!("must be 1..=65535, got {n}"),
            );
        }
        IntOrString::String(n) if n.is_empty() => {
            ctx.error(&format!("{at}.service.port"), "port name must not be empty");
        }
        _ => {}
    }
}

/// An endpoint address as written.
enum Address {
    Ip(SocketAddr),
    /// Lower-cased DNS name and port.
    Name(String, u16),
}

/// `ip:port`, or `host:port` in file mode; `None` after reporting the problem on `field`.
fn parse_address(ctx: &mut Ctx<'_>, field: &str, raw: &str) -> Option<Address> {
    let raw = raw.trim();
    if let Ok(a) = raw.parse::<SocketAddr>() {
        if a.port() == 0 {
            ctx.error(field, format!("{raw:?} has port 0"));
            return None;
        }
        return Some(Address::Ip(a));
    }
    let expected = if ctx.file_mode {
        "expected ip:port (IPv6 as [::1]:80) or host:port"
    } else {
        "expected ip:port, IPv6 as [::1]:80"
    };
    let Some((host, port)) = raw.rsplit_once(':') else {
        ctx.error(field, format!("invalid address {raw:?} ({expected})"));
        return None;
    };
    let host = host.to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(&host);
    // A name must not look like an IP (a mistyped one would otherwise be "resolved").
    let name_like = names::is_dns_subdomain(host)
        && host.bytes().any(|b| b.is_ascii_lowercase())
        && host.parse::<std::net::IpAddr>().is_err();
    let port = port.parse::<u16>().ok().filter(|&p| p != 0);
    match (name_like, port) {
        (true, Some(port)) if ctx.file_mode => Some(Address::Name(host.to_owned(), port)),
        (true, Some(_)) => {
            ctx.error(
                field,
                format!(
                    "{raw:?} is a DNS name: names are resolved only by `sluice serve`; in Kubernetes use spec.service (an ExternalName Service is not followed either)"
                ),
            );
            None
        }
        (true, None) => {
            ctx.error(
                field,
                format!("{raw:?} needs a port 1..=65535 ({expected})"),
            );
            None
        }
        (false, _) => {
            ctx.error(field, format!("invalid address {raw:?} ({expected})"));
            None
        }
    }
}
