//! Prometheus exposition (prometheus-client) with the contract's metric names.
//!
//! Process-level metrics are ordinary registry metrics; per-pool and per-endpoint series
//! come from a collector that reads the data plane's atomics at scrape time. The encoder
//! writes OpenMetrics; scrapers that do not ask for it (curl, `promtool check metrics`) get
//! the classic text format, derived from the same encoding, so the two never disagree.
//! Every scrape must be valid on its own: no series twice, label values known in advance
//! (reload results, health-check results) present from the start at 0, so `increase()` sees
//! the first failure.

use std::collections::BTreeMap;
use std::fmt::Write as _;
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

use crate::config::Protocol;
use crate::pool::{Endpoint, Pool, UNROUTED};
use crate::proxy::Dataplane;

/// The two exposition formats `/metrics` answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 (what Prometheus asks for first).
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4 (the default, as in client_golang).
    Text,
}

impl Format {
    /// The format an `Accept` header prefers: OpenMetrics only when it is listed with the
    /// highest quality among the two, else the classic text format (`*/*`, no header).
    pub fn negotiate(accept: Option<&str>) -> Format {
        let mut best = (0.0_f32, Format::Text);
        for item in accept.unwrap_or("").split(',') {
            let mut parts = item.split(';').map(str::trim);
            let format = match parts.next().map(str::to_ascii_lowercase).as_deref() {
                Some("application/openmetrics-text") => Format::OpenMetrics,
                Some("text/plain") => Format::Text,
                _ => continue,
            };
            let q = parts
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            if q > best.0 {
                best = (q, format);
            }
        }
        best.1
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Metrics owned by the control side, plus the registry that exposes everything.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reloads: Family<Vec<(&'static str, &'static str)>, Counter>,
    apply_seconds: Histogram,
    dns: Family<Vec<(&'static str, &'static str)>, Counter>,
    leader: Arc<std::sync::OnceLock<Arc<std::sync::atomic::AtomicBool>>>,
}

impl Metrics {
    /// Registers every sluice metric; pool series are read from `dataplane`. With
    /// `backend_labels` false, per-endpoint series are summed into one `backend=""` series
    /// per pool, except `sluice_backend_healthy` (the alerts and dashboard count endpoints).
    pub fn new(dataplane: Arc<Dataplane>, backend_labels: bool) -> Self {
        let mut registry = Registry::default();
        let reloads = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
        for result in ["success", "failure"] {
            drop(reloads.get_or_create(&vec![("result", result)]));
        }
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
        let dns = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
        for result in ["success", "failure"] {
            drop(dns.get_or_create(&vec![("result", result)]));
        }
        registry.register(
            "sluice_dns_resolutions",
            "DNS-name endpoint lookups (sluice serve); a failure keeps the last good addresses",
            dns.clone(),
        );
        let leader = Arc::default();
        registry.register_collector(Box::new(PoolCollector {
            dataplane,
            leader: Arc::clone(&leader),
            backend_labels,
        }));
        Metrics {
            registry,
            reloads,
            apply_seconds,
            dns,
            leader,
        }
    }

    /// Exposes `sluice_leader` (0/1) from `flag` (Kubernetes mode; standalone has none).
    pub fn track_leader(&self, flag: Arc<std::sync::atomic::AtomicBool>) {
        let _ = self.leader.set(flag);
    }

    /// Counts a configuration change: `ok` = applied, else refused.
    pub fn reload(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.reloads.get_or_create(&vec![("result", result)]).inc();
    }

    /// Counts one round of DNS-name lookups: names that resolved and names that failed.
    pub fn dns_resolved(&self, ok: u64, failed: u64) {
        self.dns
            .get_or_create(&vec![("result", "success")])
            .inc_by(ok);
        self.dns
            .get_or_create(&vec![("result", "failure")])
            .inc_by(failed);
    }

    /// Records the time from change seen to serving.
    pub fn apply_took(&self, seconds: f64) {
        self.apply_seconds.observe(seconds);
    }

    /// The exposition in `format`.
    pub fn encode(&self, format: Format) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(match format {
            Format::OpenMetrics => out,
            Format::Text => classic_text(&out),
        })
    }
}

/// Rewrites an OpenMetrics exposition as the classic text format: counter families are
/// named with their `_total` suffix in `# HELP`/`# TYPE`, `# UNIT` and `# EOF` go, `info`
/// becomes `gauge`. Samples are the same lines in both formats.
fn classic_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len() + 256);
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some(previous) = help.replace(rest) {
                let _ = writeln!(out, "# HELP {previous}");
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (suffix, kind) = match kind {
                "counter" => ("_total", "counter"),
                "info" => ("_info", "gauge"),
                "gauge" | "histogram" | "summary" => ("", kind),
                _ => ("", "untyped"),
            };
            if let Some(h) = help.take() {
                let text = h.strip_prefix(name).unwrap_or(h).trim_start();
                let _ = writeln!(out, "# HELP {name}{suffix} {text}");
            }
            let _ = writeln!(out, "# TYPE {name}{suffix} {kind}");
            continue;
        }
        if let Some(previous) = help.take() {
            let _ = writeln!(out, "# HELP {previous}");
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[derive(Debug)]
struct PoolCollector {
    dataplane: Arc<Dataplane>,
    leader: Arc<std::sync::OnceLock<Arc<std::sync::atomic::AtomicBool>>>,
    /// `--metrics-backend-labels`: false sums per-endpoint series per pool.
    backend_labels: bool,
}

type Labels<'a> = [(&'static str, &'a str)];

/// Endpoints sharing one `backend` label.
type Backend<'a> = (&'a str, Vec<&'a Endpoint>);

/// A pool's endpoints (members and draining) grouped by `backend` label: an address removed
/// and added back while its old endpoint drains is two endpoints but one series. Without
/// `backend_labels`, every endpoint is in one group labelled `""`.
fn by_backend(endpoints: &[Arc<Endpoint>], backend_labels: bool) -> Vec<Backend<'_>> {
    if !backend_labels {
        return vec![("", endpoints.iter().map(Arc::as_ref).collect())];
    }
    let mut groups: Vec<Backend<'_>> = Vec::with_capacity(endpoints.len());
    for ep in endpoints {
        match groups.iter_mut().find(|(label, _)| *label == ep.label()) {
            Some((_, group)) => group.push(ep),
            None => groups.push((ep.label(), vec![ep])),
        }
    }
    groups
}

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let pools = self.dataplane.pools();
        let endpoints: Vec<Vec<Arc<Endpoint>>> = pools.iter().map(|p| p.all_endpoints()).collect();
        let grouped: Vec<(&Pool, Vec<Backend<'_>>)> = pools
            .iter()
            .zip(&endpoints)
            .map(|(pool, eps)| (pool.as_ref(), by_backend(eps, self.backend_labels)))
            .collect();

        let mut e = encoder.encode_descriptor(
            "sluice_build_info",
            "The running sluice version (always 1).",
            None,
            MetricType::Gauge,
        )?;
        let labels: &Labels = &[("version", env!("CARGO_PKG_VERSION"))];
        ConstGauge::new(1).encode(e.encode_family(&labels)?)?;

        if let Some(flag) = self.leader.get() {
            let e = encoder.encode_descriptor(
                "sluice_leader",
                "1 while this replica holds the leader Lease (writes status and Events), else 0.",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(i64::from(flag.load(Ordering::Acquire))).encode(e)?;
        }

        let mut e = encoder.encode_descriptor(
            "sluice_requests",
            "HTTP responses by pool, backend and status code.",
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
        for (pool, backends) in &grouped {
            // Without backend labels the endpoints' answers share the `backend=""` series
            // with sluice's own, so they are summed into one map.
            let mut local: BTreeMap<u16, u64> = pool.stats.local.all().into_iter().collect();
            if self.backend_labels {
                for (code, n) in std::mem::take(&mut local) {
                    let code = code.to_string();
                    let labels: &Labels =
                        &[("pool", pool.name()), ("backend", ""), ("code", &code)];
                    ConstCounter::new(n).encode(e.encode_family(&labels)?)?;
                }
            }
            for (backend, eps) in backends {
                let mut codes: BTreeMap<u16, u64> = std::mem::take(&mut local);
                for (code, n) in eps.iter().flat_map(|ep| ep.stats.statuses()) {
                    *codes.entry(code).or_default() += n;
                }
                for (code, n) in codes {
                    let code = code.to_string();
                    let labels: &Labels =
                        &[("pool", pool.name()), ("backend", backend), ("code", &code)];
                    ConstCounter::new(n).encode(e.encode_family(&labels)?)?;
                }
            }
        }

        let mut e = encoder.encode_descriptor(
            "sluice_request_duration_seconds",
            "HTTP request duration by pool.",
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
            "TCP connections forwarded by pool and backend.",
            None,
            MetricType::Counter,
        )?;
        for (pool, backends) in &grouped {
            let tcp = pool.snapshot().config.protocol == Protocol::Tcp;
            for (backend, eps) in backends {
                let n: u64 = eps
                    .iter()
                    .map(|ep| ep.stats.tcp_connections.load(Ordering::Relaxed))
                    .sum();
                if tcp || n > 0 {
                    let labels: &Labels = &[("pool", pool.name()), ("backend", backend)];
                    ConstCounter::new(n).encode(e.encode_family(&labels)?)?;
                }
            }
        }

        // The contract's family keeps the contract's meaning (as `/pools` activeConnections:
        // requests in flight for HTTP pools, open connections for TCP pools); HTTP pools'
        // in-flight requests are also a family of their own, which measures one thing.
        for (name, help, only_http) in [
            (
                "sluice_active_connections",
                "Work open on the backend by pool and backend: requests in flight (HTTP pools) or relayed connections (TCP pools).",
                false,
            ),
            (
                "sluice_in_flight_requests",
                "Requests sent to the backend and not yet answered in full (HTTP pools; an upgraded connection counts while open) by pool and backend.",
                true,
            ),
        ] {
            let mut e = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (pool, backends) in &grouped {
                if only_http && pool.snapshot().config.protocol == Protocol::Tcp {
                    continue;
                }
                for (backend, eps) in backends {
                    let n: i64 = eps.iter().map(|ep| i64::from(ep.active())).sum();
                    let labels: &Labels = &[("pool", pool.name()), ("backend", backend)];
                    ConstGauge::new(n).encode(e.encode_family(&labels)?)?;
                }
            }
        }

        let mut e = encoder.encode_descriptor(
            "sluice_backend_healthy",
            "1 when the backend receives new work, else 0.",
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
            "1 when the pool is serving and at least one endpoint takes new work, else 0.",
            None,
            MetricType::Gauge,
        )?;
        for pool in pools.iter() {
            let labels: &Labels = &[("pool", pool.name())];
            let snapshot = pool.snapshot();
            let ready =
                snapshot.config.filters.redirect.is_some() || !snapshot.available.is_empty();
            ConstGauge::new(i64::from(ready)).encode(e.encode_family(&labels)?)?;
        }

        let mut e = encoder.encode_descriptor(
            "sluice_retries",
            "Retries by pool.",
            None,
            MetricType::Counter,
        )?;
        for pool in pools.iter() {
            let labels: &Labels = &[("pool", pool.name())];
            ConstCounter::new(pool.stats.retries.load(Ordering::Relaxed))
                .encode(e.encode_family(&labels)?)?;
        }

        for (name, help, read) in [
            (
                "sluice_request_bytes",
                "Request body bytes read from clients, by pool (headers not included).",
                (|p: &Pool| p.stats.request_bytes.load(Ordering::Relaxed)) as fn(&Pool) -> u64,
            ),
            (
                "sluice_response_bytes",
                "Response body bytes of forwarded answers sent to clients, by pool (headers and sluice's own answers not included).",
                |p: &Pool| p.stats.response_bytes.load(Ordering::Relaxed),
            ),
        ] {
            let mut e = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            let http = pools
                .iter()
                .filter(|p| p.snapshot().config.protocol != Protocol::Tcp);
            for pool in http {
                let labels: &Labels = &[("pool", pool.name())];
                ConstCounter::new(read(pool)).encode(e.encode_family(&labels)?)?;
            }
        }

        let mut e = encoder.encode_descriptor(
            "sluice_canary_requests",
            "Requests sent to the canary backend set of a pool (served as pool NAME#canary).",
            None,
            MetricType::Counter,
        )?;
        for pool in pools
            .iter()
            .filter(|p| p.snapshot().config.canary.is_some())
        {
            let labels: &Labels = &[("pool", pool.name())];
            ConstCounter::new(pool.stats.canary_requests.load(Ordering::Relaxed))
                .encode(e.encode_family(&labels)?)?;
        }

        let mut e = encoder.encode_descriptor(
            "sluice_rate_limited",
            "Requests refused with 429 by the pool's rateLimit (or an Ingress's limit-connections).",
            None,
            MetricType::Counter,
        )?;
        for pool in pools.iter() {
            let n = pool.stats.rate_limited.load(Ordering::Relaxed);
            if n > 0 || pool.snapshot().config.filters.access.rate_limit.is_some() {
                let labels: &Labels = &[("pool", pool.name())];
                ConstCounter::new(n).encode(e.encode_family(&labels)?)?;
            }
        }

        let mut e = encoder.encode_descriptor(
            "sluice_denied",
            "Requests refused by an access policy, by pool and reason (address: 403 by ipAllowList/ipDenyList; body: 413 by maxRequestBodyBytes; auth: basicAuth or externalAuth refusals, failing closed included).",
            None,
            MetricType::Counter,
        )?;
        for pool in pools.iter() {
            let snapshot = pool.snapshot();
            let access = &snapshot.config.filters.access;
            for (reason, n, configured) in [
                (
                    "address",
                    pool.stats.denied_address.load(Ordering::Relaxed),
                    access.allow.is_some() || access.deny.is_some(),
                ),
                (
                    "body",
                    pool.stats.denied_body.load(Ordering::Relaxed),
                    access.max_request_body_bytes.is_some(),
                ),
                (
                    "auth",
                    pool.stats.denied_auth.load(Ordering::Relaxed),
                    snapshot.config.filters.basic_auth.is_some()
                        || snapshot.config.filters.external_auth.is_some(),
                ),
            ] {
                if n > 0 || configured {
                    let labels: &Labels = &[("pool", pool.name()), ("reason", reason)];
                    ConstCounter::new(n).encode(e.encode_family(&labels)?)?;
                }
            }
        }

        let mut e = encoder.encode_descriptor(
            "sluice_tls_certificate_expiry_seconds",
            "Seconds until the notAfter of each certificate a pool's listener serves, by pool and server name (\"\" for a port's default certificate); negative once expired.",
            None,
            MetricType::Gauge,
        )?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        // A pool's names are its own: one series per (pool, server name), the earliest
        // expiry if two ports of the pool served different certificates for one name.
        let mut expiries: BTreeMap<(String, String), i64> = BTreeMap::new();
        for cert in self.dataplane.certificate_expiries() {
            let Some(not_after) = cert.not_after else {
                continue;
            };
            let names = if cert.server_names.is_empty() {
                vec![String::new()]
            } else {
                cert.server_names
            };
            for name in names {
                let at = expiries
                    .entry((cert.pool.clone(), name))
                    .or_insert(not_after);
                *at = (*at).min(not_after);
            }
        }
        for ((pool, name), not_after) in &expiries {
            let labels: &Labels = &[("pool", pool), ("server_name", name)];
            ConstGauge::new(not_after - now).encode(e.encode_family(&labels)?)?;
        }

        let mut e = encoder.encode_descriptor(
            "sluice_upstream_attempts",
            "Upstream attempts by pool, backend and result (failure: connect failure, reset, timeout or 5xx), retried ones included.",
            None,
            MetricType::Counter,
        )?;
        for (pool, backends) in &grouped {
            for (backend, eps) in backends {
                let sum = |f: fn(&Endpoint) -> u64| eps.iter().map(|ep| f(ep)).sum::<u64>();
                let ok = sum(|ep| ep.stats.attempts_ok.load(Ordering::Relaxed));
                let failed = sum(|ep| ep.stats.attempts_failed.load(Ordering::Relaxed));
                if ok + failed == 0 {
                    continue;
                }
                for (result, n) in [("success", ok), ("failure", failed)] {
                    let labels: &Labels = &[
                        ("pool", pool.name()),
                        ("backend", backend),
                        ("result", result),
                    ];
                    ConstCounter::new(n).encode(e.encode_family(&labels)?)?;
                }
            }
        }

        let mut e = encoder.encode_descriptor(
            "sluice_health_checks",
            "Active health checks by pool, backend and result.",
            None,
            MetricType::Counter,
        )?;
        for pool in pools.iter() {
            let snapshot = pool.snapshot();
            let checked = snapshot.config.health_check.is_some();
            for (backend, eps) in by_backend(&snapshot.members, self.backend_labels) {
                let sum = |f: fn(&Endpoint) -> u64| eps.iter().map(|ep| f(ep)).sum::<u64>();
                for (result, n) in [
                    (
                        "success",
                        sum(|ep| ep.stats.checks_ok.load(Ordering::Relaxed)),
                    ),
                    (
                        "failure",
                        sum(|ep| ep.stats.checks_failed.load(Ordering::Relaxed)),
                    ),
                ] {
                    if checked || n > 0 {
                        let labels: &Labels = &[
                            ("pool", pool.name()),
                            ("backend", backend),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_gets_openmetrics_and_everyone_else_the_text_format() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(
            Format::negotiate(Some("text/plain;q=0.9, application/openmetrics-text;q=0.5")),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some("Application/OpenMetrics-Text; version=1.0.0")),
            Format::OpenMetrics
        );
    }

    #[test]
    fn classic_text_names_counters_with_total_and_drops_openmetrics_only_lines() {
        let om = "# HELP a_requests Requests.\n# TYPE a_requests counter\na_requests_total{x=\"1\"} 3\n\
                  # HELP a_up Up.\n# TYPE a_up gauge\n# UNIT a_up seconds\na_up 1\n\
                  # HELP a_build Build.\n# TYPE a_build info\na_build_info{version=\"1\"} 1\n# EOF\n";
        assert_eq!(
            classic_text(om),
            "# HELP a_requests_total Requests.\n# TYPE a_requests_total counter\na_requests_total{x=\"1\"} 3\n\
             # HELP a_up Up.\n# TYPE a_up gauge\na_up 1\n\
             # HELP a_build_info Build.\n# TYPE a_build_info gauge\na_build_info{version=\"1\"} 1\n"
        );
    }
}
