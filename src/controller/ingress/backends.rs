//! The backends of the Ingress part: one pool per Service port named, with the endpoints
//! of its Service and the settings of the oldest Ingress naming it.

use std::sync::Arc;

use super::translator::Translator;
use super::{IngressObjects, Translation};
use crate::config::{
    ListenerConfig, PoolConfig, Protocol, ProxyProtocolVersion, RouteFilters, Timeouts,
};

impl Translator<'_> {
    /// Builds the backends with their Service endpoints, and the finished translation.
    pub(super) fn finish(mut self, objects: &IngressObjects) -> Translation {
        let lookup =
            crate::controller::index::ServiceLookup::new(&objects.services, &objects.slices);
        let backends = std::mem::take(&mut self.backends);
        for (name, b) in backends {
            let endpoints = lookup.endpoints(&b.ns, &b.service, &b.port);
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
