//! Admin endpoint: `/metrics`, `/healthz`, `/readyz`, `/pools`.
//!
//! Runs on the control runtime, never on a data-plane worker. Per-request counters live
//! in atomics inside pools and endpoints; this module only reads them at scrape time, so
//! the request path never touches the metrics registry.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use crate::proxy::Dataplane;
use crate::proxy::body::ProxyBody;
use crate::proxy::http::{full, local};

mod metrics;

pub use metrics::{Format, Metrics};

/// Shared state the admin endpoint reports.
#[derive(Debug)]
pub struct Admin {
    /// The data plane whose pools are reported.
    pub dataplane: Arc<Dataplane>,
    /// Process-level metrics (reloads, apply time) and the pool collector.
    pub metrics: Metrics,
    ready: AtomicBool,
}

impl Admin {
    /// Admin state over `dataplane`; not ready until [`Admin::set_ready`]. `backend_labels`
    /// false aggregates per-endpoint metric series per pool (`--metrics-backend-labels`).
    pub fn new(dataplane: Arc<Dataplane>, backend_labels: bool) -> Self {
        let metrics = Metrics::new(dataplane.clone(), backend_labels);
        Admin {
            dataplane,
            metrics,
            ready: AtomicBool::new(false),
        }
    }

    /// Marks the first configuration as loaded (`/readyz` answers 200 from now on).
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// The `/pools` document.
    pub fn pools_json(&self) -> serde_json::Value {
        let pools: Vec<serde_json::Value> = self
            .dataplane
            .pools()
            .iter()
            .map(|pool| {
                let snapshot = pool.snapshot();
                let config = &snapshot.config;
                let endpoints: Vec<serde_json::Value> = pool
                    .all_endpoints()
                    .iter()
                    .map(|e| {
                        serde_json::json!({
                            "address": e.label(),
                            "healthy": e.is_available(),
                            "weight": e.weight(),
                            "activeConnections": e.active(),
                            "draining": e.has(crate::pool::Unavailable::Draining),
                        })
                    })
                    .collect();
                serde_json::json!({
                    "name": pool.name(),
                    "protocol": config.protocol.as_str(),
                    "port": config.listener.port,
                    "algorithm": config.algorithm.name(),
                    "endpoints": endpoints,
                })
            })
            .collect();
        serde_json::json!({ "pools": pools })
    }

    /// `/metrics` in the negotiated exposition format.
    fn metrics_response(&self, format: Format) -> Response<ProxyBody> {
        match self.metrics.encode(format) {
            Ok(text) => {
                let mut resp = Response::new(full(Bytes::from(text)));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static(format.content_type()),
                );
                resp
            }
            Err(_) => local(
                StatusCode::INTERNAL_SERVER_ERROR,
                "metrics encoding failed\n",
            ),
        }
    }

    fn route(&self, req: &Request<Incoming>) -> Response<ProxyBody> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return local(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        }
        match req.uri().path() {
            "/healthz" => local(StatusCode::OK, "ok\n"),
            "/readyz" if self.ready.load(Ordering::Acquire) => local(StatusCode::OK, "ready\n"),
            "/readyz" => local(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
            "/metrics" => {
                let accept = req.headers().get(header::ACCEPT);
                let format = Format::negotiate(accept.and_then(|v| v.to_str().ok()));
                self.metrics_response(format)
            }
            "/pools" => {
                let body = serde_json::to_vec_pretty(&self.pools_json()).unwrap_or_default();
                let mut resp = Response::new(full(Bytes::from(body)));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/json"),
                );
                resp
            }
            _ => local(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}

/// Serves the admin endpoint on `listener` until `stop` is cancelled.
pub async fn serve(admin: Arc<Admin>, listener: tokio::net::TcpListener, stop: CancellationToken) {
    loop {
        let (stream, peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    continue;
                }
            },
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let resp = admin.route(&req);
                async move { Ok::<_, Infallible>(resp) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(client = %peer, error = %e, "admin connection ended");
            }
        });
    }
}
