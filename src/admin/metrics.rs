//! Prometheus exposition (prometheus-client) with the contract's metric names.
//!
//! Process-level metrics are ordinary registry metrics; per-pool and per-endpoint series
//! come from a collector that reads the data plane's atomics at scrape time.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::pool::UNROUTED;
use crate::proxy::Dataplane;

/// Metrics owned by the control side, plus the registry that exposes everything.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reloads: Family<Vec<(&'static str, &'static str)>, Counter>,
    apply_seconds: Histogram,
}

impl Metrics {
    /// Registers every sluice metric; pool series are read from `dataplane`.
    pub fn new(dataplane: Arc<Dataplane>) -> Self {
        let mut registry = Registry::default();
        let reloads = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
        registry.register(
            "sluice_config_reloads",
            "Configuration changes applied or refused",
            reloads.clone(),
        );
        let apply_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        registry.register(
            "sluice_config_apply_seconds",
            "Time from a change seen (file or watch event) to the data plane serving it",
            apply_seconds.clone(),
        );
        registry.register_collector(Box::new(PoolCollector { dataplane }));
        Metrics {
            registry,
            reloads,
            apply_seconds,
        }
    }

    /// Counts a configuration change: `ok` = applied, else refused.
    pub fn reload(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.reloads.get_or_create(&vec![("result", result)]).inc();
    }

    /// Records the time from change seen to serving.
    pub fn apply_took(&self, seconds: f64) {
        self.apply_seconds.observe(seconds);
    }

    /// The text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[derive(Debug)]
struct PoolCollector {
    dataplane: Arc<Dataplane>,
}

type Labels<'a> = [(&'static str, &'a str)];

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let pools = self.dataplane.pools();

        let mut e = encoder.encode_descriptor(
            "sluice_requests",
            "HTTP responses by pool, backend and status code",
            None,
            MetricType::Counter,
        )?;
        // Answers sluice made itself: no route or refused before routing (pool=""), and
        // per pool with no endpoint picked (backend="").
        for (code, n) in UNROUTED.all() {
            let code = code.to_string();
            let labels: &Labels = &[("pool", ""), ("backend", ""), ("code", &code)];
            ConstCounter::new(n).encode(e.encode_family(&labels)?)?;
        }
        for pool in pools.iter() {
            for (code, n) in pool.stats.local.all() {
                let code = code.to_string();
                let labels: &Labels = &[("pool", pool.name()), ("backend", ""), ("code", &code)];
                ConstCounter::new(n).encode(e.encode_family(&labels)?)?;
            }
            for ep in pool.all_endpoints() {
                for (code, n) in ep.stats.statuses() {
                    let code = code.to_string();
                    let labels: &Labels = &[
                        ("pool", pool.name()),
                        ("backend", ep.label()),
                        ("code", &code),
                    ];
                    ConstCounter::new(n).encode(e.encode_family(&labels)?)?;
                }
            }
        }

        let mut e = encoder.encode_descriptor(
            "sluice_request_duration_seconds",
            "HTTP request duration by pool",
            None,
            MetricType::Histogram,
        )?;
        for pool in pools.iter() {
            let (sum, count, buckets) = pool.stats.duration.read();
            let labels: &Labels = &[("pool", pool.name())];
            e.encode_family(&labels)?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    sum, count, &buckets, None,
                )?;
        }

        let mut e = encoder.encode_descriptor(
            "sluice_tcp_connections",
            "TCP connections forwarded by pool and backend",
            None,
            MetricType::Counter,
        )?;
        for pool in pools.iter() {
            for ep in pool.all_endpoints() {
                let n = ep.stats.tcp_connections.load(Ordering::Relaxed);
                if n > 0 {
                    let labels: &Labels = &[("pool", pool.name()), ("backend", ep.label())];
                    ConstCounter::new(n).encode(e.encode_family(&labels)?)?;
                }
            }
        }

        let mut e = encoder.encode_descriptor(
            "sluice_active_connections",
            "In-flight requests (HTTP) or open connections (TCP) by pool and backend",
            None,
            MetricType::Gauge,
        )?;
        for pool in pools.iter() {
            for ep in pool.all_endpoints() {
                let labels: &Labels = &[("pool", pool.name()), ("backend", ep.label())];
                ConstGauge::new(ep.active() as i64).encode(e.encode_family(&labels)?)?;
            }
        }

        let mut e = encoder.encode_descriptor(
            "sluice_backend_healthy",
            "1 when the backend receives new work, else 0",
            None,
            MetricType::Gauge,
        )?;
        for pool in pools.iter() {
            for ep in pool.snapshot().members.iter() {
                let labels: &Labels = &[("pool", pool.name()), ("backend", ep.label())];
                ConstGauge::new(i64::from(ep.is_available())).encode(e.encode_family(&labels)?)?;
            }
        }

        let mut e = encoder.encode_descriptor(
            "sluice_pool_ready",
            "1 when the pool is serving and at least one endpoint takes new work, else 0",
            None,
            MetricType::Gauge,
        )?;
        for pool in pools.iter() {
            let labels: &Labels = &[("pool", pool.name())];
            let ready = !pool.snapshot().available.is_empty();
            ConstGauge::new(i64::from(ready)).encode(e.encode_family(&labels)?)?;
        }

        let mut e = encoder.encode_descriptor(
            "sluice_retries",
            "Retries by pool",
            None,
            MetricType::Counter,
        )?;
        for pool in pools.iter() {
            let labels: &Labels = &[("pool", pool.name())];
            ConstCounter::new(pool.stats.retries.load(Ordering::Relaxed))
                .encode(e.encode_family(&labels)?)?;
        }

        let mut e = encoder.encode_descriptor(
            "sluice_health_checks",
            "Active health checks by pool, backend and result",
            None,
            MetricType::Counter,
        )?;
        for pool in pools.iter() {
            for ep in pool.snapshot().members.iter() {
                for (result, n) in [
                    ("success", ep.stats.checks_ok.load(Ordering::Relaxed)),
                    ("failure", ep.stats.checks_failed.load(Ordering::Relaxed)),
                ] {
                    if n > 0 {
                        let labels: &Labels = &[
                            ("pool", pool.name()),
                            ("backend", ep.label()),
                            ("result", result),
                        ];
                        ConstCounter::new(n).encode(e.encode_family(&labels)?)?;
                    }
                }
            }
        }
        Ok(())
    }
}
