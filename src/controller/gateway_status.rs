//! The Gateway API front end's status writes, made by the leader only: GatewayClass,
//! Gateway and route status from the last translation, patched (merge patch on `/status`)
//! only when it differs from what the object shows, at most once per [`STATUS_PERIOD`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use parking_lot::Mutex;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::STATUS_PERIOD;
use super::gateway::listeners::GatewayView;
use super::gateway::services::{self, ServiceMode};
use super::gateway::types::{
    GRPCRoute, Gateway, GatewayClass, GatewayStatusAddress, HTTPRoute, RouteStatus,
};
use super::gateway::{Reports, RouteKind, status};
use super::ingress_status::{Publish, load_balancer};
use super::leader::Leadership;

/// What the writer reads from the last rebuild.
#[derive(Debug, Default, Clone)]
pub struct Shared {
    /// The translation's reports.
    pub reports: Reports,
    /// Gateways whose ports the data plane refused, with why.
    pub refused: BTreeMap<String, String>,
    /// Set once a translation is in: before it, nothing is written (nor removed).
    pub translated: bool,
    /// Ports BackendPools and Ingresses are served on (never given to a Gateway's own port).
    pub taken: BTreeSet<u16>,
}

/// The watched Gateway API objects whose status is written.
#[derive(Clone)]
pub struct Stores {
    /// GatewayClasses.
    pub classes: Store<GatewayClass>,
    /// Gateways.
    pub gateways: Store<Gateway>,
    /// HTTPRoutes.
    pub http_routes: Store<HTTPRoute>,
    /// GRPCRoutes (absent when the CRD is not installed).
    pub grpc_routes: Option<Store<GRPCRoute>>,
    /// Services (for `--publish-service` and the per-Gateway Services).
    pub services: Store<Service>,
}

/// Where Gateways' `status.addresses` come from.
#[derive(Clone)]
pub enum AddressSource {
    /// `--publish-address` / `--publish-service`, else the pod IP: the same for every Gateway.
    Shared(Option<Publish>),
    /// Each Gateway's own Service (`--gateway-service-type`).
    OwnService(Arc<ServiceMode>),
}

/// `status.addresses` of every Gateway: from `--publish-address` / `--publish-service` as
/// Ingress status does, else this pod's IP (`POD_IP`, set by the chart).
pub fn addresses(
    publish: Option<&Publish>,
    services: &[Arc<Service>],
    pod_ip: Option<&str>,
) -> Vec<GatewayStatusAddress> {
    match publish {
        Some(p) => load_balancer(p, services)
            .unwrap_or_default()
            .iter()
            .filter_map(|i| i.ip.as_deref().or(i.hostname.as_deref()))
            .map(address_entry)
            .collect(),
        None => pod_ip
            .filter(|ip| !ip.is_empty())
            .map(address_entry)
            .into_iter()
            .collect(),
    }
}

/// An `IPAddress` or `Hostname` entry of `status.addresses`.
fn address_entry(value: &str) -> GatewayStatusAddress {
    GatewayStatusAddress {
        type_: Some(
            if value.parse::<IpAddr>().is_ok() {
                "IPAddress"
            } else {
                "Hostname"
            }
            .to_owned(),
        ),
        value: value.to_owned(),
    }
}

fn split(name: &str) -> Option<(&str, &str)> {
    name.split_once('/')
}

/// Status patches, and what was last written per object, so a status the store has not
/// caught up with yet is not written again.
struct Writer {
    client: Client,
    manager: String,
    written: BTreeMap<String, serde_json::Value>,
}

impl Writer {
    /// Patches `status` onto the object `api` names unless it already shows it.
    async fn patch<K, S>(
        &mut self,
        key: String,
        api: Api<K>,
        name: &str,
        shown: Option<&S>,
        status: S,
    ) where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
        S: Serialize + PartialEq,
    {
        if shown == Some(&status) {
            self.written.remove(&key);
            return;
        }
        let value = serde_json::to_value(&status).unwrap_or_default();
        if self.written.get(&key) == Some(&value) {
            return;
        }
        let params = PatchParams {
            field_manager: Some(self.manager.clone()),
            ..Default::default()
        };
        let patch = serde_json::json!({ "status": value });
        match api.patch_status(name, &params, &Patch::Merge(&patch)).await {
            Ok(_) => {
                self.written.insert(key, value);
            }
            Err(e) => tracing::warn!(error = %e, object = key, "Gateway API status not written"),
        }
    }
}

/// The leader's loop writing the status of every GatewayClass, Gateway and route the
/// last translation reported on.
pub async fn write_status(
    client: Client,
    manager: String,
    stores: Stores,
    shared: Arc<Mutex<Arc<Shared>>>,
    source: AddressSource,
    leadership: Leadership,
    stop: CancellationToken,
) {
    let pod_ip = std::env::var("POD_IP").ok();
    let mut writer = Writer {
        client,
        manager,
        written: BTreeMap::new(),
    };
    let mut tick = tokio::time::interval(STATUS_PERIOD);
    let mut rounds = 0u32;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !leadership.is_leader() {
            writer.written.clear();
            continue;
        }
        rounds = rounds.wrapping_add(1);
        if rounds.is_multiple_of(60) {
            // Now and then, trust the stores alone (a status someone else changed is mended).
            writer.written.clear();
        }
        let shared = shared.lock().clone();
        if !shared.translated {
            continue;
        }
        let now = Time(jiff_now());
        let services = stores.services.state();
        let addresses = match &source {
            AddressSource::Shared(publish) => {
                Addressing::Shared(addresses(publish.as_ref(), &services, pod_ip.as_deref()))
            }
            AddressSource::OwnService(mode) => {
                let gateways = &shared.reports.gateways;
                let owned = services::Owned::new(&services, mode);
                sync_services(&mut writer, &owned, gateways, mode, &shared.taken).await;
                Addressing::Own(owned)
            }
        };
        sync_classes(&mut writer, &stores.classes, &shared.reports, &now).await;
        sync_gateways(&mut writer, &stores.gateways, &shared, &addresses, &now).await;
        let reports = &shared.reports;
        sync_routes(
            &mut writer,
            RouteKind::Http,
            &stores.http_routes,
            reports,
            &now,
        )
        .await;
        if let Some(store) = &stores.grpc_routes {
            sync_routes(&mut writer, RouteKind::Grpc, store, reports, &now).await;
        }
    }
}

/// The status of each GatewayClass of ours.
async fn sync_classes(
    writer: &mut Writer,
    store: &Store<GatewayClass>,
    reports: &Reports,
    now: &Time,
) {
    for (name, report) in &reports.classes {
        let Some(obj) = store.get(&ObjectRef::new(name)) else {
            continue;
        };
        if obj.metadata.generation != report.generation {
            // The translation predates this generation: the next rebuild reports on it.
            continue;
        }
        let status = status::class(report, obj.status.as_ref(), now);
        let api: Api<GatewayClass> = Api::all(writer.client.clone());
        let key = format!("gatewayclass:{name}");
        writer
            .patch(key, api, name, obj.status.as_ref(), status)
            .await;
    }
}

/// The addresses of one status round.
enum Addressing<'a> {
    /// The same for every Gateway.
    Shared(Vec<GatewayStatusAddress>),
    /// Each Gateway's own Service's.
    Own(services::Owned<'a>),
}

impl Addressing<'_> {
    fn of(&self, gateway: &str) -> Vec<GatewayStatusAddress> {
        match self {
            Addressing::Shared(all) => all.clone(),
            Addressing::Own(owned) => owned
                .gateway(gateway)
                .map(|s| super::index::service_addresses(s))
                .unwrap_or_default()
                .iter()
                .map(|a| address_entry(a))
                .collect(),
        }
    }
}

/// The leader makes each Gateway's Service what it should be and deletes the Services of
/// Gateways that are gone (server-side apply, only when one differs).
async fn sync_services(
    writer: &mut Writer,
    existing: &services::Owned<'_>,
    gateways: &BTreeMap<String, GatewayView>,
    mode: &ServiceMode,
    taken: &BTreeSet<u16>,
) {
    let want = services::desired(gateways, existing, mode, taken);
    let api: Api<Service> = Api::namespaced(writer.client.clone(), &mode.namespace);
    for svc in &want {
        let name = svc.metadata.name.clone().unwrap_or_default();
        let have = existing.named(&name);
        let key = format!("service:{name}");
        if have.is_some_and(|h| services::up_to_date(h, svc)) {
            writer.written.remove(&key);
            continue;
        }
        let value = serde_json::to_value(svc).unwrap_or_default();
        if writer.written.get(&key) == Some(&value) {
            continue;
        }
        let params = PatchParams::apply(&writer.manager).force();
        match api.patch(&name, &params, &Patch::Apply(&value)).await {
            Ok(_) => {
                tracing::info!(service = name, "Gateway Service written");
                writer.written.insert(key, value);
            }
            Err(e) => tracing::warn!(error = %e, service = name, "Gateway Service not written"),
        }
    }
    let wanted: BTreeSet<&str> = want
        .iter()
        .filter_map(|w| w.metadata.name.as_deref())
        .collect();
    for gone in existing.all().filter(|e| {
        !e.metadata
            .name
            .as_deref()
            .is_some_and(|n| wanted.contains(n))
    }) {
        let name = gone.metadata.name.clone().unwrap_or_default();
        match api.delete(&name, &Default::default()).await {
            Ok(_) => tracing::info!(service = name, "Gateway Service deleted"),
            Err(e) => tracing::warn!(error = %e, service = name, "Gateway Service not deleted"),
        }
    }
}

/// The status of each Gateway of ours.
async fn sync_gateways(
    writer: &mut Writer,
    store: &Store<Gateway>,
    shared: &Shared,
    addresses: &Addressing<'_>,
    now: &Time,
) {
    for (name, view) in &shared.reports.gateways {
        let Some((ns, n)) = split(name) else { continue };
        let Some(obj) = store.get(&ObjectRef::new(n).within(ns)) else {
            continue;
        };
        if obj.metadata.generation != view.generation {
            continue;
        }
        let refusal = shared.refused.get(name).map(String::as_str);
        let status = status::gateway(view, &addresses.of(name), refusal, obj.status.as_ref(), now);
        let api: Api<Gateway> = Api::namespaced(writer.client.clone(), ns);
        let key = format!("gateway:{name}");
        writer.patch(key, api, n, obj.status.as_ref(), status).await;
    }
}

/// The two route kinds' common status.
trait RouteObject:
    kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
{
    fn route_status(&self) -> Option<&RouteStatus>;
}

impl RouteObject for HTTPRoute {
    fn route_status(&self) -> Option<&RouteStatus> {
        self.status.as_ref()
    }
}

impl RouteObject for GRPCRoute {
    fn route_status(&self) -> Option<&RouteStatus> {
        self.status.as_ref()
    }
}

/// Writes the status of every route of `kind` the translation reported on, and removes this
/// controller's parent entries from routes it no longer reports on (their Gateway is gone,
/// or no longer named, or of another class).
async fn sync_routes<K: RouteObject>(
    writer: &mut Writer,
    kind: RouteKind,
    store: &Store<K>,
    reports: &Reports,
    now: &Time,
) {
    for obj in store.state() {
        let ns = obj.meta().namespace.clone().unwrap_or_default();
        let n = obj.meta().name.clone().unwrap_or_default();
        let name = format!("{ns}/{n}");
        let previous = obj.route_status();
        let status = match reports.routes.get(&(kind, name.clone())) {
            Some(report) if obj.meta().generation != report.generation => continue,
            Some(report) => status::route(report, previous, now),
            None => match status::forget(previous) {
                Some(rest) => rest,
                None => continue,
            },
        };
        let api: Api<K> = Api::namespaced(writer.client.clone(), &ns);
        let key = format!("{}:{name}", kind.as_str());
        writer.patch(key, api, &n, previous, status).await;
    }
}

fn jiff_now() -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::now()
}
