//! The backends of the Ingress part: one pool per Service port named, with the endpoints
//! of its Service and the settings of the oldest Ingress naming it.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;

use super::translator::Translator;
use super::{IngressObjects, Translation};
use crate::config::{
    ListenerConfig, PoolConfig, Protocol, ProxyProtocolVersion, RouteFilters, Timeouts,
};

impl Translator<'_> {
    /// Builds the backends with their Service endpoints, and the finished translation.
    pub(super) fn finish(mut self, objects: &IngressObjects) -> Translation {
        let services: HashMap<(String, String), &Service> = objects
            .services
            .iter()
            .map(|s| {
                (
                    (s.namespace().unwrap_or_default(), s.name_any()),
                    s.as_ref(),
                )
            })
            .collect();
        let mut slices: HashMap<(String, String), Vec<&EndpointSlice>> = HashMap::new();
        for s in &objects.slices {
            if let Some(svc) = s.labels().get(crate::controller::index::SERVICE_NAME_LABEL) {
                slices
                    .entry((s.namespace().unwrap_or_default(), svc.clone()))
                    .or_default()
                    .push(s.as_ref());
            }
        }
        let backends = std::mem::take(&mut self.backends);
        for (name, b) in backends {
            let key = (b.ns.clone(), b.service.clone());
            let endpoints = match services.get(&key) {
                Some(svc) => crate::controller::index::service_endpoints(
                    svc,
                    &b.port,
                    slices.get(&key).map(Vec::as_slice).unwrap_or_default(),
                ),
                None => Err(format!("Service {}/{} not found", b.ns, b.service)),
            };
            let endpoints = endpoints.unwrap_or_else(|why| {
                // Served with no endpoints (503), as ingress-nginx does.
                self.out.problem(
                    &b.first,
                    "ServiceNotFound",
                    format!("backend {name}: {why}; its routes answer 503"),
                );
                Vec::new()
            });
            self.out.set.pools.push(Arc::new(PoolConfig {
                name,
                protocol: Protocol::Http,
                listener: ListenerConfig {
                    port: self.settings.http_port,
                    hosts: Vec::new(),
                    path_prefix: "/".to_owned(),
                    tls: None,
                    proxy_protocol: false,
                    matches: Default::default(),
                },
                endpoints,
                algorithm: b.settings.algorithm.clone(),
                health_check: b.settings.health_check.clone(),
                outlier_detection: b.settings.outlier_detection,
                retry: b.settings.retry.clone(),
                affinity: b.settings.affinity.clone(),
                timeouts: Timeouts {
                    connect: b.settings.connect_timeout,
                    request: b.settings.read_timeout,
                    ..Timeouts::default()
                },
                drain_timeout: b.settings.drain_timeout,
                max_connections_per_endpoint: b.settings.max_connections_per_endpoint,
                send_proxy_protocol: ProxyProtocolVersion::None,
                filters: RouteFilters::default(),
                canary: None,
                upstream: b.settings.upstream.clone(),
                dns: None,
            }));
        }
        self.out.set.routes = self.routes.into_iter().map(Arc::new).collect();
        self.out
    }
}
