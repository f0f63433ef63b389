//! Kubernetes mode: watch BackendPools and Ingresses (with the IngressClasses that say which
//! are ours), the Gateway API kinds when their CRDs are installed, the EndpointSlices and
//! Services they name and the TLS Secrets they reference; turn them into the same validated
//! model the file loader produces and hand it to the same apply path. The proxy cannot tell
//! the modes apart.
//!
//! Every replica watches and serves; only the elected leader writes status and Events.
//! RBAC follows what is watched: get/list/watch on backendpools, ingresses, ingressclasses
//! (cluster-wide), endpointslices, services and secrets (two watches filtered server-side,
//! `type=kubernetes.io/tls` and `type=Opaque` for htpasswd lists; RBAC cannot narrow
//! list/watch further), patch on backendpools/status and ingresses/status, create/patch on
//! events, and get/create/update on the leader Lease; with the Gateway API, get/list/watch on
//! gatewayclasses, gateways, httproutes, grpcroutes, referencegrants and namespaces and patch
//! on their status.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::admin::Admin;
use crate::api::BackendPool;
use crate::process::{self, Options};
use crate::proxy::ApplyError;

pub mod events;
pub mod gateway;
pub mod gateway_status;
mod gateway_watch;
pub mod index;
pub mod ingress;
pub mod ingress_status;
pub mod leader;
mod relevant;
pub mod status;
#[cfg(test)]
mod test_objects;
pub mod watch;

use index::{Desired, Objects, Refusal, SERVICE_NAME_LABEL};
use leader::Leadership;

/// kubectl's copy of the last applied object: large, and never read.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// How long bursts of watch events are coalesced before recomputing.
const COALESCE: Duration = Duration::from_millis(50);
/// How often the leader reconciles status.
pub(crate) const STATUS_PERIOD: Duration = Duration::from_secs(1);

/// Controller-only options.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// Watch one namespace instead of all.
    pub namespace: Option<String>,
    /// Elect a leader among replicas (else this replica writes status).
    pub leader_elect: bool,
    /// Namespace of the Lease (default: the pod's own namespace, else `default`).
    pub leader_namespace: Option<String>,
    /// Lease name, field manager and event source.
    pub name: String,
    /// The Ingress front end: class and ports.
    pub ingress: ingress::IngressSettings,
    /// Where `status.loadBalancer` of served Ingresses points, if anywhere.
    pub publish: Option<ingress_status::Publish>,
    /// A Service per Gateway (`--gateway-service-type`), if sluice makes them.
    pub gateway_services: Option<Arc<gateway::services::ServiceMode>>,
}

/// `sluice controller`.
pub fn run(controller: ControllerOptions, options: Options) -> ExitCode {
    process::init_logging(options.log_format, &options.log_level);
    process::run(options, None, move |admin, stop| {
        produce(admin, stop, controller)
    })
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Spawns a reflector for `K` and reports every change on `tx`. Watch errors are retried
/// within a second and `410 Gone` re-lists at once ([`watch`]), so changes made after an
/// API-server outage are served soon after it ends.
fn reflect<K>(api: Api<K>, config: watcher::Config, tx: mpsc::UnboundedSender<Instant>) -> Store<K>
where
    K: Resource
        + relevant::Relevant
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (store, writer) = reflector::store();
    // The stores keep only what is read: `managedFields` and annotations (kubectl's
    // last-applied copy among them) are most of an object's size and none is used.
    let trimmed = watcher(api, config).modify(|o| {
        o.managed_fields_mut().clear();
        if K::READS_ANNOTATIONS {
            o.annotations_mut().remove(LAST_APPLIED);
        } else {
            o.annotations_mut().clear();
        }
    });
    let stream = reflector::reflector(writer, trimmed);
    let kind = K::kind(&Default::default()).into_owned();
    tokio::task::spawn_local(async move {
        // Only events that can change the desired state wake the rebuild (not the status
        // this controller writes, nor metadata churn).
        let mut prints = relevant::Fingerprints::default();
        watch::drive(stream, &kind, |event| {
            if prints.changed(event) {
                let _ = tx.send(Instant::now());
            }
        })
        .await;
    });
    store
}

/// The namespace this pod runs in (`POD_NAMESPACE`, else the service account's), else `default`.
pub fn pod_namespace() -> String {
    std::env::var("POD_NAMESPACE")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace").ok()
        })
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

fn identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "sluice".to_owned());
    format!("{host}-{:08x}", fastrand::u32(..))
}

async fn produce(admin: Arc<Admin>, stop: CancellationToken, opts: ControllerOptions) {
    let client = loop {
        match Client::try_default().await {
            Ok(c) => break c,
            Err(e) => {
                tracing::error!(error = %e, "cannot reach the Kubernetes API (in-cluster config or KUBECONFIG); retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
        }
    };
    let ns = opts.namespace.as_deref();
    let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
    let pools = reflect(
        api::<BackendPool>(&client, ns),
        watcher::Config::default(),
        tx.clone(),
    );
    let slices = reflect(
        api::<EndpointSlice>(&client, ns),
        watcher::Config::default().labels(SERVICE_NAME_LABEL),
        tx.clone(),
    );
    let services = reflect(
        api::<Service>(&client, ns),
        watcher::Config::default(),
        tx.clone(),
    );
    let secrets = reflect(
        api::<Secret>(&client, ns),
        watcher::Config::default().fields("type=kubernetes.io/tls"),
        tx.clone(),
    );
    // basicAuth htpasswd lists (key `auth`), as `kubectl create secret generic` makes them.
    let opaque = reflect(
        api::<Secret>(&client, ns),
        watcher::Config::default().fields("type=Opaque"),
        tx.clone(),
    );
    let ingresses = reflect(
        api::<Ingress>(&client, ns),
        watcher::Config::default(),
        tx.clone(),
    );
    let classes = reflect(
        Api::<IngressClass>::all(client.clone()),
        watcher::Config::default(),
        tx.clone(),
    );
    let mut gateway_api = gateway_watch::start(&client, ns, &tx).await;
    // Without the CRDs, keep looking: installing them later needs no restart.
    let mut late_gateway_api = gateway_api.is_none().then(|| {
        Box::pin(gateway_watch::when_installed(
            client.clone(),
            ns.map(str::to_owned),
            tx.clone(),
        ))
    });
    drop(tx);

    let synced = async {
        let _ = tokio::join!(
            pools.wait_until_ready(),
            slices.wait_until_ready(),
            services.wait_until_ready(),
            secrets.wait_until_ready(),
            opaque.wait_until_ready(),
            ingresses.wait_until_ready(),
            classes.wait_until_ready()
        );
        if let Some(g) = &gateway_api {
            g.ready().await;
        }
    };
    tokio::select! {
        _ = stop.cancelled() => return,
        _ = synced => {}
    }
    tracing::info!(namespace = ns.unwrap_or("(all)"), "caches synced");

    let me = identity();
    let (leadership, elector) = if opts.leader_elect {
        let leadership = Leadership::default();
        let lease_ns = opts.leader_namespace.clone().unwrap_or_else(pod_namespace);
        let leases: Api<Lease> = Api::namespaced(client.clone(), &lease_ns);
        let elector = tokio::task::spawn_local(leader::run(
            leases,
            opts.name.clone(),
            me.clone(),
            leadership.clone(),
            stop.clone(),
        ));
        (leadership, Some(elector))
    } else {
        (Leadership::always(), None)
    };
    admin.metrics.track_leader(leadership.flag());
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: opts.name.clone(),
            instance: Some(me),
        },
    );
    let shared: Arc<Mutex<Arc<Desired>>> = Arc::default();
    tokio::task::spawn_local(write_status(
        client.clone(),
        opts.name.clone(),
        pools.clone(),
        shared.clone(),
        admin.clone(),
        leadership.clone(),
        stop.clone(),
    ));
    tokio::task::spawn_local(health_events(
        pools.clone(),
        admin.clone(),
        recorder.clone(),
        leadership.clone(),
        stop.clone(),
    ));

    let served: Arc<Mutex<Arc<BTreeSet<String>>>> = Arc::default();
    tokio::task::spawn_local(ingress_status::write_status(
        client.clone(),
        opts.name.clone(),
        ingresses.clone(),
        services.clone(),
        served.clone(),
        opts.publish.clone(),
        leadership.clone(),
        stop.clone(),
    ));

    let gateway_shared: Arc<Mutex<Arc<gateway_status::Shared>>> = Arc::default();
    let spawn_gateway_status = |g: &gateway_watch::GatewayStores| {
        tokio::task::spawn_local(gateway_status::write_status(
            client.clone(),
            opts.name.clone(),
            gateway_status::Stores {
                classes: g.classes.clone(),
                gateways: g.gateways.clone(),
                http_routes: g.http_routes.clone(),
                grpc_routes: g.grpc_routes.clone(),
                services: services.clone(),
            },
            gateway_shared.clone(),
            match &opts.gateway_services {
                Some(mode) => gateway_status::AddressSource::OwnService(mode.clone()),
                None => gateway_status::AddressSource::Shared(opts.publish.clone()),
            },
            leadership.clone(),
            stop.clone(),
        ));
    };
    if let Some(g) = &gateway_api {
        spawn_gateway_status(g);
    }

    let mut seen = Instant::now();
    let mut refused_before: BTreeMap<String, Refusal> = BTreeMap::new();
    let mut conflicts_before: BTreeMap<String, Refusal> = BTreeMap::new();
    let mut problems_before = BTreeMap::new();
    let mut reconciled = index::Index::default();
    loop {
        let objects = Objects {
            pools: pools.state(),
            slices: slices.state(),
            services: services.state(),
            secrets: [secrets.state(), opaque.state()].concat(),
        };
        let translated = ingress::translate(
            &ingress::IngressObjects {
                ingresses: ingresses.state(),
                classes: classes.state(),
                services: objects.services.clone(),
                slices: objects.slices.clone(),
                secrets: objects.secrets.clone(),
            },
            &opts.ingress,
        );
        let mut desired = reconciled.desired(&objects);
        let mut translated = ingress::merge(&mut desired.set, translated, &opts.ingress);
        let mut gateway_translation = gateway_api.as_ref().map(|g| {
            let objects = g.objects(&objects, opts.gateway_services.clone());
            gateway::translate(&objects, &desired.set)
        });
        let conflicts = match &mut gateway_translation {
            Some(t) => gateway::merge(&mut desired.set, t, |owner| {
                owner_age(owner, &pools, &ingresses)
            }),
            None => Vec::new(),
        };
        let mut desired = apply(&admin, desired, seen);
        ingress_refusals(&mut desired, &mut translated);
        let pool_conflicts = shadowed_by_gateway_routes(&conflicts, &mut translated);
        let gateway_refused = gateway_refusals(&mut desired);
        if let Some(t) = gateway_translation {
            *gateway_shared.lock() = Arc::new(gateway_status::Shared {
                reports: t.reports,
                refused: gateway_refused,
                translated: true,
                taken: desired
                    .set
                    .listeners
                    .iter()
                    .filter(|l| !l.owner.starts_with("gateway:"))
                    .map(|l| l.port)
                    .collect(),
            });
        }
        *served.lock() = Arc::new(
            translated
                .ours
                .difference(&translated.refused)
                .cloned()
                .collect(),
        );
        if leadership.is_leader() {
            for (name, refusal) in &desired.refused {
                if refused_before.get(name) != Some(refusal) {
                    invalid_spec_event(&recorder, &pools, name, refusal).await;
                }
            }
            for (name, refusal) in &pool_conflicts {
                if conflicts_before.get(name) != Some(refusal) {
                    invalid_spec_event(&recorder, &pools, name, refusal).await;
                }
            }
            ingress_status::problem_events(
                &recorder,
                &ingresses,
                &translated.problems,
                &problems_before,
            )
            .await;
        }
        refused_before = desired.refused.clone();
        conflicts_before = pool_conflicts;
        problems_before = translated.problems;
        *shared.lock() = Arc::new(desired);
        admin.set_ready();

        let late = async {
            match late_gateway_api.as_mut() {
                Some(found) => found.as_mut().await,
                None => std::future::pending().await,
            }
        };
        seen = tokio::select! {
            _ = stop.cancelled() => break,
            first = rx.recv() => match first { Some(t) => t, None => break },
            stores = late => {
                late_gateway_api = None;
                spawn_gateway_status(&stores);
                gateway_api = Some(stores);
                Instant::now()
            }
        };
        tokio::time::sleep(COALESCE).await;
        while rx.try_recv().is_ok() {}
    }
    // The process exits once this returns: let the elector release the Lease first (it
    // bounds that by `leader::RELEASE_TIMEOUT`), so another replica takes over at once.
    if let Some(elector) = elector {
        let _ = elector.await;
    }
}

/// Applies `desired`, refusing (and retrying without) any pool whose listener cannot bind
/// or whose certificates cannot be loaded, so one pool never blocks the rest.
fn apply(admin: &Admin, mut desired: Desired, seen: Instant) -> Desired {
    loop {
        match admin.dataplane.apply(&desired.set) {
            Ok(()) => {
                admin.metrics.reload(true);
                admin.metrics.apply_took(seen.elapsed().as_secs_f64());
                return desired;
            }
            Err(e) => {
                admin.metrics.reload(false);
                let (pool, reason, hint) = match &e {
                    ApplyError::Bind {
                        pool, addr, source, ..
                    } => {
                        let (reason, hint) = bind_refusal(source.kind(), addr.port());
                        (pool.clone(), reason, hint)
                    }
                    ApplyError::Tls { pool, .. } => (pool.clone(), "InvalidSpec", ""),
                    ApplyError::UnknownPool { owner, .. } => (owner.clone(), "InvalidSpec", ""),
                };
                tracing::error!(pool = %pool, error = %e, "pool refused");
                let removed = desired.set.remove_owner(&pool);
                desired.refused.insert(
                    pool,
                    Refusal {
                        reason,
                        message: format!("{e}{hint}"),
                    },
                );
                if !removed {
                    return desired;
                }
            }
        }
    }
}

/// Moves what `apply` refused of Ingresses (owners `ingress:ns/name`) from the pools'
/// refusals to the Ingresses' problems.
fn ingress_refusals(desired: &mut Desired, translated: &mut ingress::Translation) {
    let owners: Vec<String> = desired
        .refused
        .keys()
        .filter(|k| k.starts_with("ingress:"))
        .cloned()
        .collect();
    for owner in owners {
        let Some(refusal) = desired.refused.remove(&owner) else {
            continue;
        };
        let name = owner.trim_start_matches("ingress:").to_owned();
        translated.refused.insert(name.clone());
        translated
            .problems
            .entry(name)
            .or_default()
            .push(ingress::Problem {
                reason: refusal.reason,
                message: refusal.message,
            });
    }
}

/// The seniority (creation time, `namespace/name`) of a BackendPool or Ingress route owner.
fn owner_age(
    owner: &str,
    pools: &Store<BackendPool>,
    ingresses: &Store<Ingress>,
) -> Option<(
    Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    String,
)> {
    let (name, created) = match owner.strip_prefix("ingress:") {
        Some(name) => {
            let (ns, n) = name.split_once('/')?;
            let i = ingresses.get(&reflector::ObjectRef::new(n).within(ns))?;
            (name, i.metadata.creation_timestamp.clone())
        }
        None => (
            owner,
            find_pool(pools, owner)?.metadata.creation_timestamp.clone(),
        ),
    };
    Some((created, name.to_owned()))
}

/// Tells the BackendPools and Ingresses whose route an older Gateway API route shadows:
/// an Ingress gets a `Conflict` problem (a Warning Event); the BackendPools are returned,
/// for a `Conflict` Warning Event each.
fn shadowed_by_gateway_routes(
    conflicts: &[gateway::Conflict],
    translated: &mut ingress::Translation,
) -> BTreeMap<String, Refusal> {
    let mut pools = BTreeMap::new();
    for c in conflicts {
        let message = format!(
            "{} is served for the older {} (oldest wins)",
            c.what, c.winner
        );
        if c.loser.contains(':') && !c.loser.starts_with("ingress:") {
            continue;
        }
        match c.loser.strip_prefix("ingress:") {
            Some(name) => translated
                .problems
                .entry(name.to_owned())
                .or_default()
                .push(ingress::Problem {
                    reason: "Conflict",
                    message,
                }),
            None => {
                let entry = pools.entry(c.loser.clone()).or_insert(Refusal {
                    reason: "Conflict",
                    message: String::new(),
                });
                if !entry.message.is_empty() {
                    entry.message.push('\n');
                }
                entry.message.push_str(&message);
            }
        }
    }
    pools
}

/// Takes what `apply` refused of Gateways (owners `gateway:ns/name`: a port that cannot be
/// bound, a certificate that cannot be loaded) out of the pools' refusals, by Gateway.
fn gateway_refusals(desired: &mut Desired) -> BTreeMap<String, String> {
    let owners: Vec<String> = desired
        .refused
        .keys()
        .filter(|k| k.starts_with("gateway:"))
        .cloned()
        .collect();
    owners
        .into_iter()
        .filter_map(|owner| {
            let refusal = desired.refused.remove(&owner)?;
            let name = owner.trim_start_matches("gateway:").to_owned();
            Some((name, refusal.message))
        })
        .collect()
}

/// The refusal reason (and a hint for the message) when a pool's port cannot be bound:
/// `Conflict` only when something else holds it; a port the process may not open is
/// reported as what it is.
fn bind_refusal(kind: std::io::ErrorKind, port: u16) -> (&'static str, &'static str) {
    match kind {
        std::io::ErrorKind::AddrInUse => ("Conflict", " (another process holds the port)"),
        std::io::ErrorKind::PermissionDenied if port < 1024 => (
            "PortUnavailable",
            " (ports below 1024 need CAP_NET_BIND_SERVICE, which the chart drops: use a port >= 1024 and map it in the Service)",
        ),
        _ => ("PortUnavailable", ""),
    }
}

async fn write_status(
    client: Client,
    manager: String,
    pools: Store<BackendPool>,
    shared: Arc<Mutex<Arc<Desired>>>,
    admin: Arc<Admin>,
    leadership: Leadership,
    stop: CancellationToken,
) {
    let mut written = status::Written::default();
    let mut tick = tokio::time::interval(STATUS_PERIOD);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !leadership.is_leader() {
            written.clear();
            continue;
        }
        let desired = shared.lock().clone();
        let served = admin.dataplane.pools();
        written
            .sync(&client, &manager, pools.state(), desired, &served)
            .await;
    }
}

fn find_pool(pools: &Store<BackendPool>, name: &str) -> Option<Arc<BackendPool>> {
    let (ns, n) = name.split_once('/')?;
    pools.get(&reflector::ObjectRef::new(n).within(ns))
}

async fn health_events(
    pools: Store<BackendPool>,
    admin: Arc<Admin>,
    recorder: Recorder,
    leadership: Leadership,
    stop: CancellationToken,
) {
    let mut transitions = admin.dataplane.health().subscribe();
    loop {
        let t = tokio::select! {
            _ = stop.cancelled() => return,
            t = transitions.recv() => match t {
                Ok(t) => t,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "health events dropped");
                    continue;
                }
                Err(_) => return,
            },
        };
        if !leadership.is_leader() {
            continue;
        }
        let Some(pool) = find_pool(&pools, &t.pool) else {
            continue;
        };
        let event = events::health(t.endpoint, t.healthy, &t.reason);
        if let Err(e) = recorder.publish(&event, &pool.object_ref(&())).await {
            tracing::debug!(error = %e, "event not recorded");
        }
    }
}

async fn invalid_spec_event(
    recorder: &Recorder,
    pools: &Store<BackendPool>,
    name: &str,
    refusal: &Refusal,
) {
    let Some(pool) = find_pool(pools, name) else {
        return;
    };
    let event = events::refusal(refusal);
    if let Err(e) = recorder.publish(&event, &pool.object_ref(&())).await {
        tracing::debug!(error = %e, "event not recorded");
    }
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;

    use super::{bind_refusal, gateway, ingress, shadowed_by_gateway_routes};

    #[test]
    fn a_port_the_process_may_not_open_is_not_called_a_conflict() {
        assert_eq!(bind_refusal(ErrorKind::AddrInUse, 8080).0, "Conflict");
        let (reason, hint) = bind_refusal(ErrorKind::PermissionDenied, 80);
        assert_eq!(reason, "PortUnavailable");
        assert!(hint.contains("CAP_NET_BIND_SERVICE"), "{hint}");
        assert_eq!(
            bind_refusal(ErrorKind::AddrNotAvailable, 8080),
            ("PortUnavailable", "")
        );
    }

    #[test]
    fn the_shadowed_ingress_and_pool_are_told_and_a_shadowed_route_is_left_to_its_status() {
        let clash = |winner: &str, loser: &str| gateway::Conflict {
            winner: winner.into(),
            loser: loser.into(),
            what: "port 8080 host (any host) path PathPrefix /".into(),
        };
        let conflicts = [
            clash("httproute:shop/r", "ingress:shop/old"),
            clash("httproute:shop/r", "shop/pool"),
            clash("shop/pool", "httproute:shop/young"),
        ];
        let mut translated = ingress::Translation::default();
        let pools = shadowed_by_gateway_routes(&conflicts, &mut translated);
        let problem = &translated.problems["shop/old"][0];
        assert_eq!(problem.reason, "Conflict");
        assert!(
            problem.message.contains("older httproute:shop/r"),
            "{}",
            problem.message
        );
        assert_eq!(pools.keys().collect::<Vec<_>>(), ["shop/pool"]);
        assert_eq!(pools["shop/pool"].reason, "Conflict");
        assert_eq!(translated.problems.len(), 1);
    }
}
