//! A Service per Gateway (`--gateway-service-type`): every Gateway of ours gets an address of
//! its own, as the specification expects of Gateways that cannot be merged (two Gateways
//! with a catch-all listener on one port).
//!
//! Each Service selects sluice's own pods and maps each listener port of its Gateway to the
//! port sluice listens on for it: the listener's own port for the oldest Gateway on that
//! port (so a listener's port is still the port sluice listens on), and a port from
//! `--gateway-port-range` for a later Gateway on the same port. The leader writes the
//! Services; every replica reads its ports back from them, so all replicas bind the same
//! ports, and a Gateway keeps its ports as long as it lives.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::RangeInclusive;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::listeners::GatewayView;

/// Label on every Service sluice makes for a Gateway; its value is the controller's name
/// (`--controller-name`), so two releases in one namespace leave each other's alone.
pub const LABEL: &str = "sluice.dev/gateway-service";
/// Annotation naming the Gateway (`namespace/name`) a Service is for.
pub const ANNOTATION: &str = "sluice.dev/gateway";

/// How per-Gateway Services are made.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceMode {
    /// The namespace of sluice's pods, where the Services live.
    pub namespace: String,
    /// The controller's name: the value of [`LABEL`] on its Services.
    pub owner: String,
    /// `spec.type`: `ClusterIP`, `LoadBalancer` or `NodePort`.
    pub type_: String,
    /// Labels selecting sluice's pods.
    pub selector: BTreeMap<String, String>,
    /// Ports for a later Gateway's listener on a port an older Gateway holds.
    pub ports: RangeInclusive<u16>,
}

/// `spec.infrastructure` of a Gateway: labels and annotations for its Service.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Infrastructure {
    /// Added to the Service's labels (sluice's own win).
    pub labels: BTreeMap<String, String>,
    /// Added to the Service's annotations (sluice's own win).
    pub annotations: BTreeMap<String, String>,
}

/// Reads `spec.infrastructure`; `parametersRef` (sluice takes no parameters) and anything
/// else it does not know are errors naming the field.
pub fn infrastructure(value: Option<&serde_json::Value>) -> Result<Infrastructure, String> {
    let mut out = Infrastructure::default();
    let Some(map) = value.and_then(serde_json::Value::as_object) else {
        return Ok(out);
    };
    for (key, v) in map {
        let field = format!("spec.infrastructure.{key}");
        let target = match key.as_str() {
            "labels" => &mut out.labels,
            "annotations" => &mut out.annotations,
            "parametersRef" => return Err(format!("{field}: sluice takes no parameters")),
            _ => return Err(format!("{field}: not implemented by sluice")),
        };
        for (k, v) in v.as_object().into_iter().flatten() {
            let text = v
                .as_str()
                .ok_or_else(|| format!("{field}.{k}: must be a string"))?;
            target.insert(k.clone(), text.to_owned());
        }
    }
    Ok(out)
}

/// Label holding a hash of the Service's labels and annotations as sluice wrote them: the
/// watch caches drop annotations, so a change to `spec.infrastructure` shows here.
const HASH_LABEL: &str = "sluice.dev/gateway-service-hash";

/// The Service name for Gateway `namespace/name`: `gw-NAMESPACE-NAME` shortened to fit a DNS
/// label, with a hash of the full name so two Gateways never share one.
pub fn service_name(gateway: &str) -> String {
    let mut base: String = gateway
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    base.truncate(44);
    let base = base.trim_end_matches('-');
    format!("gw-{base}-{:08x}", fnv32(gateway.as_bytes()))
}

/// FNV-1a: stable across builds and platforms (std's hasher is not).
fn fnv32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// This controller's Gateway Services by name, indexed once per translation or status round
/// (a lookup per Gateway would otherwise scan every Service of the cluster).
pub struct Owned<'a>(HashMap<&'a str, &'a Arc<Service>>);

impl<'a> Owned<'a> {
    /// The Services of `services` that `mode` owns (by [`LABEL`]: the watch caches drop
    /// annotations).
    pub fn new(services: &'a [Arc<Service>], mode: &ServiceMode) -> Owned<'a> {
        Owned(
            services
                .iter()
                .filter(|s| mode.owns(s))
                .filter_map(|s| Some((s.metadata.name.as_deref()?, s)))
                .collect(),
        )
    }

    /// The Service made for Gateway `namespace/name`, if it exists.
    pub fn gateway(&self, gateway: &str) -> Option<&'a Arc<Service>> {
        self.named(&service_name(gateway))
    }

    /// The owned Service called `name`.
    pub fn named(&self, name: &str) -> Option<&'a Arc<Service>> {
        self.0.get(name).copied()
    }

    /// Every owned Service.
    pub fn all(&self) -> impl Iterator<Item = &'a Arc<Service>> + '_ {
        self.0.values().copied()
    }
}

impl ServiceMode {
    /// Whether `service` is one of this controller's Gateway Services.
    pub fn owns(&self, service: &Service) -> bool {
        service.namespace().as_deref() == Some(self.namespace.as_str())
            && service.labels().get(LABEL) == Some(&self.owner)
    }
}

/// Listener port -> the port sluice listens on, as the Gateway's Service says.
pub fn targets(service: Option<&Service>) -> BTreeMap<u16, u16> {
    let ports = service
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default();
    ports
        .iter()
        .filter_map(|p| {
            let port = u16::try_from(p.port).ok()?;
            let target = match p.target_port.as_ref()? {
                IntOrString::Int(t) => u16::try_from(*t).ok()?,
                IntOrString::String(_) => return None,
            };
            Some((port, target))
        })
        .collect()
}

/// One Gateway's Service in the making: its name, view, and listener port -> target
/// (`None` until one is allocated).
type Plan<'a> = (&'a String, &'a GatewayView, BTreeMap<u16, Option<u16>>);

/// The Services the Gateways should have (one per Gateway with a listener that takes
/// routes), given the Services that exist: a listener port keeps the target its Service
/// already has when that is still valid, and a new own port is the lowest free one of the
/// range, never one sluice serves for anything else (`taken`).
pub fn desired(
    gateways: &BTreeMap<String, GatewayView>,
    existing: &Owned<'_>,
    mode: &ServiceMode,
    taken: &BTreeSet<u16>,
) -> Vec<Service> {
    let mut used: BTreeSet<u16> = taken.clone();
    let mut plans: Vec<Plan<'_>> = Vec::new();
    // First, every port that is the listener's own or kept from the existing Service.
    for (name, view) in gateways.iter().filter(|(_, v)| v.refused.is_none()) {
        let before = targets(existing.gateway(name).map(Arc::as_ref));
        let mut ports: BTreeMap<u16, Option<u16>> = BTreeMap::new();
        for l in view.listeners.iter().filter(|l| l.attachable) {
            let target = if !l.own_port {
                Some(l.port)
            } else {
                before
                    .get(&l.port)
                    .copied()
                    .filter(|t| mode.ports.contains(t) && !used.contains(t))
            };
            if let Some(t) = target {
                used.insert(t);
            }
            ports.entry(l.port).or_insert(target);
        }
        if !ports.is_empty() {
            plans.push((name, view, ports));
        }
    }
    // Then a new port for each own listener port still without one.
    let mut free = mode.ports.clone().filter(|p| !used.contains(p));
    plans
        .into_iter()
        .map(|(name, view, ports)| {
            let ports = ports
                .into_iter()
                .filter_map(|(port, target)| Some((port, target.or_else(|| free.next())?)))
                .collect();
            service(name, &ports, &view.infrastructure, mode)
        })
        .collect()
}

/// The Service for Gateway `name` with `ports` (listener port -> target).
fn service(
    name: &str,
    ports: &BTreeMap<u16, u16>,
    infra: &Infrastructure,
    mode: &ServiceMode,
) -> Service {
    let mut labels = infra.labels.clone();
    labels.insert(LABEL.to_owned(), mode.owner.clone());
    // The specification's label for what an implementation makes for a Gateway (a label
    // value holds at most 63 characters; longer names go without it).
    if let Some((_, gateway)) = name.split_once('/')
        && gateway.len() <= 63
    {
        labels.insert(
            "gateway.networking.k8s.io/gateway-name".to_owned(),
            gateway.to_owned(),
        );
    }
    labels.insert(
        "app.kubernetes.io/managed-by".to_owned(),
        "sluice".to_owned(),
    );
    let mut annotations = infra.annotations.clone();
    annotations.insert(ANNOTATION.to_owned(), name.to_owned());
    let digest = serde_json::to_vec(&(&labels, &annotations)).unwrap_or_default();
    labels.insert(HASH_LABEL.to_owned(), format!("{:08x}", fnv32(&digest)));
    Service {
        metadata: ObjectMeta {
            name: Some(service_name(name)),
            namespace: Some(mode.namespace.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some(mode.type_.clone()),
            selector: Some(mode.selector.clone()),
            ports: Some(
                ports
                    .iter()
                    .map(|(port, target)| ServicePort {
                        name: Some(format!("port-{port}")),
                        port: i32::from(*port),
                        target_port: Some(IntOrString::Int(i32::from(*target))),
                        protocol: Some("TCP".to_owned()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        status: None,
    }
}

/// Whether the existing Service already is what `want` describes (type, selector, ports;
/// the annotation is not compared, as the watch caches drop annotations).
pub fn up_to_date(have: &Service, want: &Service) -> bool {
    let (Some(h), Some(w)) = (have.spec.as_ref(), want.spec.as_ref()) else {
        return false;
    };
    let ports = |s: &ServiceSpec| -> Vec<(Option<String>, i32, Option<IntOrString>)> {
        s.ports
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|p| (p.name.clone(), p.port, p.target_port.clone()))
            .collect()
    };
    h.type_ == w.type_
        && h.selector == w.selector
        && ports(h) == ports(w)
        && have.labels().get(HASH_LABEL) == want.labels().get(HASH_LABEL)
}

/// `--gateway-service-type`.
pub fn parse_type(text: &str) -> Result<String, String> {
    match text {
        "ClusterIP" | "LoadBalancer" | "NodePort" => Ok(text.to_owned()),
        _ => Err(format!(
            "{text:?}: a Gateway's Service type is ClusterIP, LoadBalancer or NodePort"
        )),
    }
}

/// `--gateway-service-selector KEY=VALUE,...`: the labels of sluice's pods.
pub fn parse_selector(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for pair in text.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?}: a selector is KEY=VALUE,..."))?;
        out.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    if out.is_empty() {
        return Err("the selector names no label".to_owned());
    }
    Ok(out)
}

/// `--gateway-port-range FIRST-LAST`.
pub fn parse_range(text: &str) -> Result<RangeInclusive<u16>, String> {
    let bad = || format!("{text:?}: a port range is FIRST-LAST, 1 <= FIRST <= LAST <= 65535");
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let (a, b): (u16, u16) = (
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    );
    if a == 0 || a > b {
        return Err(bad());
    }
    Ok(a..=b)
}
