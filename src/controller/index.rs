//! Kubernetes objects -> the desired [`ConfigSet`]: pure code, no API calls.
//!
//! Every pool is validated with the same rules as standalone files. A pool that fails is
//! refused alone (its status says why) and the rest are re-validated without it, so one
//! bad pool never blocks the others. Service endpoints come from EndpointSlices:
//! `ready` endpoints take new work; `terminating` (serving or not) and not-ready ones are
//! kept as draining so their in-flight work finishes; duplicates across slices merge.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::api::BackendPool;
use crate::config::{self, ConfigSet, EndpointConfig, PoolConfig, Source, TlsConfig};

/// Label EndpointSlices carry naming their Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Why a pool is not served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `InvalidSpec`, `Conflict`, or `PortUnavailable` (its port cannot be opened).
    pub reason: &'static str,
    /// Every problem, one per line, naming the field.
    pub message: String,
}

/// What the cluster asks for.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    /// The accepted pools, ready to apply.
    pub set: ConfigSet,
    /// Refused pools by `namespace/name`.
    pub refused: BTreeMap<String, Refusal>,
    /// Accepted pools whose Service could not be resolved, with the reason.
    pub unresolved: BTreeMap<String, String>,
}

/// The watched objects, as the reflectors hold them.
#[derive(Debug, Default, Clone)]
pub struct Objects {
    /// BackendPools.
    pub pools: Vec<Arc<BackendPool>>,
    /// EndpointSlices with a service-name label.
    pub slices: Vec<Arc<EndpointSlice>>,
    /// Services.
    pub services: Vec<Arc<Service>>,
    /// TLS Secrets and `Opaque` ones (htpasswd lists).
    pub secrets: Vec<Arc<Secret>>,
}

/// Computes the desired configuration from the watched objects, from scratch.
pub fn desired(objects: &Objects) -> Desired {
    Index::default().desired(objects)
}

/// The controller's memory between rebuilds. A rebuild still visits every pool, but a pool
/// whose BackendPool, Service and EndpointSlices are the very objects of the last rebuild
/// (the reflectors replace an object only when it changes) costs a few pointer
/// comparisons: it is neither validated nor resolved again, and keeps its `PoolConfig`
/// allocation, which the data plane then recognises as unchanged. The cross-pool rules
/// (ports, routes, oldest wins) run over all pools every time.
#[derive(Debug, Default)]
pub struct Index {
    validation: config::Memo,
    /// The Secrets the validation results were computed with, by address.
    secrets: Vec<Arc<Secret>>,
    resolved: HashMap<String, Resolved>,
}

/// One pool's Service resolution and what it was computed from.
#[derive(Debug)]
struct Resolved {
    validated: Arc<PoolConfig>,
    services: [Option<Arc<Service>>; 2],
    slices: [Vec<Arc<EndpointSlice>>; 2],
    config: Arc<PoolConfig>,
    unresolved: Option<String>,
}

impl Index {
    /// The desired configuration; the same as [`desired`] computes from scratch.
    pub fn desired(&mut self, objects: &Objects) -> Desired {
        let mut secrets = objects.secrets.clone();
        secrets.sort_by_key(Arc::as_ptr);
        let same_secrets = secrets.len() == self.secrets.len()
            && secrets
                .iter()
                .zip(&self.secrets)
                .all(|(a, b)| Arc::ptr_eq(a, b));
        if !same_secrets {
            // Certificates and CA bundles are read while validating.
            self.validation.clear();
            self.secrets = secrets;
        }
        let (set, refused) = self.validate(objects);
        let by_name: HashMap<String, &Arc<BackendPool>> =
            objects.pools.iter().map(|p| (pool_name(p), p)).collect();
        let services = Services::index(objects);
        let mut unresolved = BTreeMap::new();
        // Resolving fills in endpoints only: listener claims and routes stay as validated.
        let ConfigSet {
            listeners,
            routes,
            pools,
        } = set;
        let mut out = ConfigSet {
            listeners,
            routes,
            pools: Vec::with_capacity(pools.len()),
        };
        let mut kept = HashMap::with_capacity(self.resolved.len());
        for cfg in pools {
            let Some(pool) = by_name.get(&cfg.name) else {
                out.pools.push(cfg);
                continue;
            };
            let canary_ref = pool.spec.canary.as_ref().and_then(|c| c.service.as_ref());
            if pool.spec.service.is_none() && canary_ref.is_none() {
                out.pools.push(cfg);
                continue;
            }
            let ns = pool.namespace().unwrap_or_else(|| "default".to_owned());
            let refs = [pool.spec.service.as_ref(), canary_ref];
            let inputs = refs.map(|r| r.map(|r| services.inputs(&ns, &r.name)));
            let previous = self.resolved.remove(&cfg.name);
            let r = match previous {
                Some(r) if r.same(&cfg, &inputs) => r,
                _ => resolve_pool(cfg, &ns, refs, inputs, &services),
            };
            if let Some(why) = &r.unresolved {
                unresolved.insert(r.config.name.clone(), why.clone());
            }
            out.pools.push(r.config.clone());
            kept.insert(r.config.name.clone(), r);
        }
        self.resolved = kept;
        Desired {
            set: out,
            refused,
            unresolved,
        }
    }

    /// Validates every pool, refusing (and re-validating without) those with errors, so one
    /// bad pool never blocks the others.
    fn validate(&mut self, objects: &Objects) -> (ConfigSet, BTreeMap<String, Refusal>) {
        let secrets: HashMap<(String, String), &Secret> = objects
            .secrets
            .iter()
            .map(|s| {
                (
                    (s.namespace().unwrap_or_default(), s.name_any()),
                    s.as_ref(),
                )
            })
            .collect();
        let find = |ns: &str, name: &str| secrets.get(&(ns.to_owned(), name.to_owned())).copied();
        let tls = |ns: &str, name: &str| tls_from_secret(find(ns, name), ns, name);
        let ca = |ns: &str, name: &str| ca_from_secret(find(ns, name), ns, name);
        let htpasswd = |ns: &str, name: &str| htpasswd_from_secret(find(ns, name), ns, name);
        let lookups = config::Lookups {
            tls: &tls,
            ca: &ca,
            htpasswd: &htpasswd,
        };
        let mut pools = objects.pools.clone();
        let mut refused: BTreeMap<String, Refusal> = BTreeMap::new();
        loop {
            let errors = match config::validate_memo(
                &Source::Kubernetes,
                &pools,
                &lookups,
                &mut self.validation,
            ) {
                Ok(set) => return (set, refused),
                Err(errors) => errors,
            };
            let before = refused.len();
            for e in errors.0 {
                let Some(pool) = e.pool.clone() else { continue };
                let entry = refused.entry(pool).or_insert_with(|| Refusal {
                    reason: if e.conflict {
                        "Conflict"
                    } else {
                        "InvalidSpec"
                    },
                    message: String::new(),
                });
                if !e.conflict {
                    entry.reason = "InvalidSpec";
                }
                if !entry.message.is_empty() {
                    entry.message.push('\n');
                }
                entry
                    .message
                    .push_str(e.message.strip_prefix("pool ").unwrap_or(&e.message));
            }
            if refused.len() == before {
                // Errors that name no pool cannot be isolated: serve nothing new.
                return (ConfigSet::default(), refused);
            }
            pools.retain(|p| !refused.contains_key(&pool_name(p)));
        }
    }
}

/// A Service and its EndpointSlices (sorted by address), as one pool reads them.
type ServiceInputs = (Option<Arc<Service>>, Vec<Arc<EndpointSlice>>);

impl Resolved {
    /// Whether this was computed from `cfg` and these very objects.
    fn same(&self, cfg: &Arc<PoolConfig>, inputs: &[Option<ServiceInputs>; 2]) -> bool {
        let same_arc = |a: &Option<Arc<Service>>, b: &Option<Arc<Service>>| match (a, b) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        Arc::ptr_eq(&self.validated, cfg)
            && inputs.iter().enumerate().all(|(i, input)| {
                let (service, slices) = match input {
                    Some((s, sl)) => (s.clone(), sl.as_slice()),
                    None => (None, &[][..]),
                };
                same_arc(&self.services[i], &service)
                    && self.slices[i].len() == slices.len()
                    && self.slices[i]
                        .iter()
                        .zip(slices)
                        .all(|(a, b)| Arc::ptr_eq(a, b))
            })
    }
}

/// Adds the endpoints of a pool's Service (and its canary's) to its validated config.
fn resolve_pool(
    validated: Arc<PoolConfig>,
    ns: &str,
    refs: [Option<&crate::api::ServiceRef>; 2],
    inputs: [Option<ServiceInputs>; 2],
    services: &Services<'_>,
) -> Resolved {
    let mut cfg = (*validated).clone();
    let mut unresolved = None;
    if let Some(svc_ref) = refs[0] {
        match services.resolve(ns, svc_ref) {
            Ok(eps) => merge(&mut cfg.endpoints, eps),
            Err(why) => unresolved = Some(why),
        }
    }
    if let (Some(svc_ref), Some(canary)) = (refs[1], cfg.canary.as_mut()) {
        match services.resolve(ns, svc_ref) {
            Ok(eps) => merge(&mut canary.endpoints, eps),
            Err(why) => {
                // The pool still serves; the canary share then finds no endpoint (503).
                tracing::debug!(pool = cfg.name, reason = why, "canary Service unresolved");
            }
        }
    }
    let [main, canary] = inputs.map(Option::unwrap_or_default);
    Resolved {
        validated,
        services: [main.0, canary.0],
        slices: [main.1, canary.1],
        config: Arc::new(cfg),
        unresolved,
    }
}

/// Services and their EndpointSlices by namespace and Service name, indexed once per
/// rebuild so resolving a pool's Service costs a lookup, not a scan of every object.
struct Services<'a> {
    services: HashMap<(&'a str, &'a str), &'a Arc<Service>>,
    slices: HashMap<(&'a str, &'a str), Vec<&'a Arc<EndpointSlice>>>,
}

impl<'a> Services<'a> {
    fn index(objects: &'a Objects) -> Services<'a> {
        let key = |meta: &'a kube::api::ObjectMeta| {
            (
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref().unwrap_or_default(),
            )
        };
        let services = objects
            .services
            .iter()
            .map(|s| (key(&s.metadata), s))
            .collect();
        let mut slices: HashMap<_, Vec<&Arc<EndpointSlice>>> = HashMap::new();
        for s in &objects.slices {
            if let Some(svc) = s
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
            {
                let ns = s.metadata.namespace.as_deref().unwrap_or_default();
                slices.entry((ns, svc.as_str())).or_default().push(s);
            }
        }
        for group in slices.values_mut() {
            group.sort_by_key(|s| Arc::as_ptr(s));
        }
        Services { services, slices }
    }

    /// The objects resolving Service `name` in `ns` reads.
    fn inputs(&self, ns: &str, name: &str) -> ServiceInputs {
        let key = (ns, name);
        let slices = self
            .slices
            .get(&key)
            .map(|g| g.iter().map(|s| (*s).clone()).collect());
        (
            self.services.get(&key).map(|s| (*s).clone()),
            slices.unwrap_or_default(),
        )
    }

    /// The endpoints of the Service `svc_ref` in namespace `ns`, from its EndpointSlices.
    fn resolve(
        &self,
        ns: &str,
        svc_ref: &crate::api::ServiceRef,
    ) -> Result<Vec<EndpointConfig>, String> {
        let key = (ns, svc_ref.name.as_str());
        let slices: Vec<&EndpointSlice> = self
            .slices
            .get(&key)
            .map(|g| g.iter().map(|s| s.as_ref()).collect())
            .unwrap_or_default();
        match self.services.get(&key) {
            Some(service) => service_endpoints(service, &svc_ref.port, &slices),
            None => Err(format!("Service {ns}/{} not found", svc_ref.name)),
        }
    }
}

/// Adds `resolved` to `endpoints`, keeping static ones on the same address.
fn merge(endpoints: &mut Vec<EndpointConfig>, resolved: Vec<EndpointConfig>) {
    for ep in resolved {
        if !endpoints.iter().any(|e| e.address == ep.address) {
            endpoints.push(ep);
        }
    }
}

/// Where a Service is reached: its load balancer's addresses (IP, else hostname), else its
/// cluster IPs (none for a headless Service). Ingress and Gateway status publish these.
pub fn service_addresses(service: &Service) -> Vec<String> {
    let balanced: Vec<String> = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_deref())
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
        .collect();
    if !balanced.is_empty() {
        return balanced;
    }
    let Some(spec) = service.spec.as_ref() else {
        return Vec::new();
    };
    let ips = match &spec.cluster_ips {
        Some(ips) if !ips.is_empty() => ips.clone(),
        _ => spec.cluster_ip.iter().cloned().collect(),
    };
    ips.into_iter()
        .filter(|ip| !ip.is_empty() && ip != "None")
        .collect()
}

/// `namespace/name` of a pool.
pub fn pool_name(p: &BackendPool) -> String {
    format!(
        "{}/{}",
        p.namespace().unwrap_or_else(|| "default".to_owned()),
        p.name_any()
    )
}

/// The certificate material of a `kubernetes.io/tls` Secret, checked.
pub(crate) fn tls_from_secret(
    secret: Option<&Secret>,
    ns: &str,
    name: &str,
) -> Result<TlsConfig, String> {
    let secret = secret.ok_or_else(|| format!("Secret {ns}/{name} not found"))?;
    let data = secret
        .data
        .as_ref()
        .ok_or_else(|| format!("Secret {ns}/{name} has no data"))?;
    let cert = data
        .get("tls.crt")
        .ok_or_else(|| format!("Secret {ns}/{name} has no tls.crt"))?;
    let key = data
        .get("tls.key")
        .ok_or_else(|| format!("Secret {ns}/{name} has no tls.key"))?;
    config::tls::certified_key(&cert.0, &key.0).map_err(|e| format!("Secret {ns}/{name}: {e}"))?;
    Ok(TlsConfig::Pem {
        cert: cert.0.clone().into(),
        key: key.0.clone().into(),
    })
}

/// The CA bundle (`ca.crt`) of a Secret named by `upstream.tls.caSecretName`, checked.
/// Only `kubernetes.io/tls` Secrets are watched (as cert-manager writes them, with
/// `ca.crt` next to `tls.crt`), so another type reads as not found.
fn ca_from_secret(secret: Option<&Secret>, ns: &str, name: &str) -> Result<Arc<[u8]>, String> {
    let secret = secret.ok_or_else(|| {
        format!("Secret {ns}/{name} not found (it must be of type kubernetes.io/tls)")
    })?;
    let ca = secret
        .data
        .as_ref()
        .and_then(|d| d.get("ca.crt"))
        .ok_or_else(|| format!("Secret {ns}/{name} has no ca.crt"))?;
    config::roots_from_pem(&ca.0).map_err(|e| format!("Secret {ns}/{name}: {e}"))?;
    Ok(ca.0.clone().into())
}

/// The htpasswd list (key `auth`, as ingress-nginx reads it) of a Secret named by
/// `basicAuth.secretName`, checked. `Opaque` Secrets are watched for it (as
/// `kubectl create secret generic NAME --from-file=auth` makes them).
pub(crate) fn htpasswd_from_secret(
    secret: Option<&Secret>,
    ns: &str,
    name: &str,
) -> Result<Arc<[u8]>, String> {
    let secret = secret.ok_or_else(|| {
        format!("Secret {ns}/{name} not found (it must be of type Opaque, key auth)")
    })?;
    let list = secret
        .data
        .as_ref()
        .and_then(|d| d.get("auth"))
        .ok_or_else(|| format!("Secret {ns}/{name} has no key auth"))?;
    config::Htpasswd::parse(&list.0).map_err(|e| format!("Secret {ns}/{name} key auth: {e}"))?;
    Ok(list.0.clone().into())
}

/// Services and their EndpointSlices by `(namespace, name)`: what the Ingress and Gateway
/// API front ends resolve their Service ports with, built once per translation.
pub struct ServiceLookup<'a> {
    services: HashMap<(String, String), &'a Service>,
    slices: HashMap<(String, String), Vec<&'a EndpointSlice>>,
}

impl<'a> ServiceLookup<'a> {
    /// Indexes `services` and the `slices` labelled with their names.
    pub fn new(services: &'a [Arc<Service>], slices: &'a [Arc<EndpointSlice>]) -> Self {
        let services = services
            .iter()
            .map(|s| {
                (
                    (s.namespace().unwrap_or_default(), s.name_any()),
                    s.as_ref(),
                )
            })
            .collect();
        let mut by_service: HashMap<(String, String), Vec<&EndpointSlice>> = HashMap::new();
        for s in slices {
            if let Some(svc) = s.labels().get(SERVICE_NAME_LABEL) {
                by_service
                    .entry((s.namespace().unwrap_or_default(), svc.clone()))
                    .or_default()
                    .push(s.as_ref());
            }
        }
        ServiceLookup {
            services,
            slices: by_service,
        }
    }

    /// The endpoints of port `port` of Service `namespace/name`, or why there are none.
    pub fn endpoints(
        &self,
        namespace: &str,
        name: &str,
        port: &IntOrString,
    ) -> Result<Vec<EndpointConfig>, String> {
        let key = (namespace.to_owned(), name.to_owned());
        let Some(service) = self.services.get(&key) else {
            return Err(format!("Service {namespace}/{name} not found"));
        };
        let slices = self.slices.get(&key).map(Vec::as_slice).unwrap_or_default();
        service_endpoints(service, port, slices)
    }
}

/// The endpoints of `service`'s port `port` found in its EndpointSlices.
pub fn service_endpoints(
    service: &Service,
    port: &IntOrString,
    slices: &[&EndpointSlice],
) -> Result<Vec<EndpointConfig>, String> {
    let ports = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let svc_port = ports
        .iter()
        .find(|p| match port {
            IntOrString::Int(n) => p.port == *n,
            IntOrString::String(name) => p.name.as_deref() == Some(name.as_str()),
        })
        .ok_or_else(|| {
            let wanted = match port {
                IntOrString::Int(n) => n.to_string(),
                IntOrString::String(s) => s.clone(),
            };
            format!(
                "Service {}/{} has no port {wanted}",
                service.namespace().unwrap_or_default(),
                service.name_any()
            )
        })?;
    // EndpointSlice ports carry the Service port's name ("" when unnamed).
    let port_name = svc_port.name.as_deref().unwrap_or("");
    let mut merged: BTreeMap<SocketAddr, bool> = BTreeMap::new();
    for slice in slices {
        if slice.address_type == "FQDN" {
            continue;
        }
        let Some(number) = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref().unwrap_or("") == port_name)
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for ep in slice.endpoints.iter().flatten() {
            let cond = ep.conditions.as_ref();
            // A nil `ready` means unknown, which consumers treat as ready (API docs).
            let ready = cond.and_then(|c| c.ready).unwrap_or(true);
            let terminating = cond.and_then(|c| c.terminating).unwrap_or(false);
            let takes_work = ready && !terminating;
            for address in &ep.addresses {
                let Ok(ip) = address.parse::<IpAddr>() else {
                    continue;
                };
                let entry = merged.entry(SocketAddr::new(ip, number)).or_insert(false);
                *entry |= takes_work;
            }
        }
    }
    Ok(merged
        .into_iter()
        .map(|(address, ready)| EndpointConfig {
            address,
            weight: 1,
            ready,
        })
        .collect())
}

#[cfg(test)]
mod tests;
