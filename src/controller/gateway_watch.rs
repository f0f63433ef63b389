//! Starting the Gateway API watches, only when the Gateway API CRDs are installed:
//! discovery at start says which kinds the API server serves (logged), so BackendPools and
//! Ingresses keep working on clusters without them.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::gateway::GatewayObjects;
use super::gateway::services::ServiceMode;
use super::gateway::types::{GRPCRoute, Gateway, GatewayClass, HTTPRoute, ReferenceGrant};
use super::index::Objects;
use super::{api, reflect};

/// The reflector stores of the Gateway API kinds served by the API server.
#[derive(Clone)]
pub struct GatewayStores {
    /// GatewayClasses.
    pub classes: Store<GatewayClass>,
    /// Gateways.
    pub gateways: Store<Gateway>,
    /// HTTPRoutes.
    pub http_routes: Store<HTTPRoute>,
    /// GRPCRoutes, when served.
    pub grpc_routes: Option<Store<GRPCRoute>>,
    /// ReferenceGrants, when served.
    pub grants: Option<Store<ReferenceGrant>>,
    /// Namespaces (labels for `allowedRoutes` selectors).
    pub namespaces: Store<Namespace>,
}

async fn served(client: &Client, version: &str) -> Vec<String> {
    match client.list_api_group_resources(version).await {
        Ok(list) => list.resources.into_iter().map(|r| r.name).collect(),
        Err(_) => Vec::new(),
    }
}

/// Starts the watches when gatewayclasses, gateways and httproutes are served (grpcroutes
/// and referencegrants join when served too); `None` otherwise.
pub async fn start(
    client: &Client,
    ns: Option<&str>,
    tx: &mpsc::UnboundedSender<Instant>,
) -> Option<GatewayStores> {
    let v1 = served(client, "gateway.networking.k8s.io/v1").await;
    let v1beta1 = served(client, "gateway.networking.k8s.io/v1beta1").await;
    let has = |list: &[String], name: &str| list.iter().any(|r| r == name);
    if !(has(&v1, "gatewayclasses") && has(&v1, "gateways") && has(&v1, "httproutes")) {
        tracing::info!(
            "Gateway API CRDs not installed (gateway.networking.k8s.io/v1 gatewayclasses, gateways, httproutes): Gateway API not served until they are (looked for every 10 s)"
        );
        return None;
    }
    let grpc = has(&v1, "grpcroutes");
    let grants = has(&v1beta1, "referencegrants");
    tracing::info!(
        grpcroutes = grpc,
        referencegrants = grants,
        "Gateway API CRDs found: serving GatewayClasses with controllerName {}",
        super::gateway::CONTROLLER
    );
    let cfg = watcher::Config::default;
    Some(GatewayStores {
        classes: reflect(Api::<GatewayClass>::all(client.clone()), cfg(), tx.clone()),
        gateways: reflect(api::<Gateway>(client, ns), cfg(), tx.clone()),
        http_routes: reflect(api::<HTTPRoute>(client, ns), cfg(), tx.clone()),
        grpc_routes: grpc.then(|| reflect(api::<GRPCRoute>(client, ns), cfg(), tx.clone())),
        grants: grants.then(|| reflect(api::<ReferenceGrant>(client, ns), cfg(), tx.clone())),
        namespaces: reflect(Api::<Namespace>::all(client.clone()), cfg(), tx.clone()),
    })
}

/// How often a controller started without the Gateway API CRDs looks for them again.
pub const LATE_CHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// Looks for the CRDs every [`LATE_CHECK`] until they are served, then starts the watches
/// and returns once their caches are synced: CRDs installed after sluice started are
/// served without a restart.
pub async fn when_installed(
    client: Client,
    ns: Option<String>,
    tx: mpsc::UnboundedSender<Instant>,
) -> GatewayStores {
    loop {
        tokio::time::sleep(LATE_CHECK).await;
        if let Some(stores) = start(&client, ns.as_deref(), &tx).await {
            stores.ready().await;
            return stores;
        }
    }
}

impl GatewayStores {
    /// Waits until every store has its first list.
    pub async fn ready(&self) {
        let _ = tokio::join!(
            self.classes.wait_until_ready(),
            self.gateways.wait_until_ready(),
            self.http_routes.wait_until_ready(),
            self.namespaces.wait_until_ready(),
        );
        if let Some(s) = &self.grpc_routes {
            let _ = s.wait_until_ready().await;
        }
        if let Some(s) = &self.grants {
            let _ = s.wait_until_ready().await;
        }
    }

    /// The objects of one rebuild, with the shared Services, slices and Secrets.
    pub fn objects(
        &self,
        shared: &Objects,
        service_mode: Option<Arc<ServiceMode>>,
    ) -> GatewayObjects {
        GatewayObjects {
            classes: self.classes.state(),
            gateways: self.gateways.state(),
            http_routes: self.http_routes.state(),
            grpc_routes: self
                .grpc_routes
                .as_ref()
                .map(Store::state)
                .unwrap_or_default(),
            grants: self.grants.as_ref().map(Store::state).unwrap_or_default(),
            namespaces: self.namespaces.state(),
            services: shared.services.clone(),
            slices: shared.slices.clone(),
            secrets: shared.secrets.clone(),
            service_mode,
        }
    }
}
