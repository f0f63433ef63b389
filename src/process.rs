//! The process around the data plane, shared by every serving command (`serve`, `demo`,
//! `controller`): options, logging, worker start-up, the admin endpoint, and the drain on
//! SIGTERM/SIGINT. What differs between the commands is the reloader they pass to [`run`].

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, Admin};
use crate::config::ConfigSet;
use crate::proxy::server::Workers;
use crate::proxy::telemetry::{AccessLog, SpanExport};
use crate::proxy::{Dataplane, DataplaneOptions};

mod limits;

/// Longest wait, after a stop signal, for the reloader to finish before draining: the
/// controller's leader Lease release takes up to 2 s (`controller::leader::RELEASE_TIMEOUT`),
/// plus its last API round trip.
const RELOADER_STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// Process options shared by every serving command.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address the pool listeners bind.
    pub bind: IpAddr,
    /// Admin endpoint address.
    pub admin_listen: SocketAddr,
    /// Log format (stderr).
    pub log_format: LogFormat,
    /// Tracing filter.
    pub log_level: String,
    /// Access log on stdout.
    pub access_log: bool,
    /// OTLP trace export endpoint.
    pub otlp_endpoint: Option<String>,
    /// Worker threads; `None` = one per CPU.
    pub workers: Option<usize>,
    /// Most client connections open at once; more are shed with 503 (HTTP) or closed.
    /// `None`: derived from the container's memory limit ([`limits::max_connections_for`]).
    pub max_connections: Option<usize>,
    /// `--trusted-proxies`: peers whose `X-Forwarded-For` names the client (default none).
    pub trusted_proxies: Vec<crate::policy::Cidr>,
    /// `--metrics-backend-labels`: per-endpoint metric series (default true); false keeps
    /// `sluice_backend_healthy` per endpoint and aggregates every other family per pool.
    pub metrics_backend_labels: bool,
}

/// Installs the tracing subscriber on stderr.
///
/// rustls warns once per handshake about client quirks an operator cannot act on (e.g. an
/// IP address sent as SNI, which `curl https://10.0.0.1/` and wrk do); under load that
/// floods the log, so rustls is held to errors unless the filter names it.
pub fn init_logging(format: LogFormat, level: &str) {
    let level = if level.contains("rustls") {
        level.to_owned()
    } else {
        format!("{level},rustls=error")
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rustls=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Starts workers, applies `initial`, serves the admin endpoint and runs `reloader` until
/// SIGINT/SIGTERM; then drains and returns the exit status.
///
/// With `initial` (standalone) the first configuration is applied before anything else and
/// `/readyz` turns ready at once; without it (Kubernetes) the producer applies and marks
/// readiness itself once its caches are synced.
pub fn run<F, Fut>(options: Options, initial: Option<ConfigSet>, reloader: F) -> ExitCode
where
    F: FnOnce(Arc<Admin>, CancellationToken) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let workers = options
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    crate::pool::set_worker_slots(workers);
    let max_connections = options.max_connections.unwrap_or_else(|| {
        let limit = limits::memory_limit();
        let n = limits::max_connections_for(limit);
        tracing::info!(max_connections = n, memory_limit = ?limit, "--max-connections not set: derived from the memory limit");
        n
    });
    let (tracer_provider, spans) = match options.otlp_endpoint.as_deref().map(SpanExport::start) {
        None => (None, None),
        Some(Ok((provider, spans))) => (Some(provider), Some(spans)),
        Some(Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let control = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let workers = match Workers::start(workers) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("cannot start workers: {e}");
            return ExitCode::from(1);
        }
    };
    let dataplane = Arc::new(Dataplane::new(
        workers,
        DataplaneOptions {
            bind: options.bind,
            access_log: options.access_log.then_some(AccessLog),
            spans,
            max_connections,
            trusted_proxies: Arc::new(crate::policy::TrustedProxies(crate::policy::IpSet::new(
                options.trusted_proxies.iter().copied(),
            ))),
        },
    ));
    let local = tokio::task::LocalSet::new();
    let served = local.block_on(&control, async move {
        let started = Instant::now();
        if let Some(initial) = &initial
            && let Err(e) = dataplane.apply(initial)
        {
            eprintln!("{e}");
            return Err(ExitCode::from(1));
        }
        let admin = Arc::new(Admin::new(
            dataplane.clone(),
            options.metrics_backend_labels,
        ));
        if initial.is_some() {
            admin.metrics.reload(true);
            admin.metrics.apply_took(started.elapsed().as_secs_f64());
        }
        let admin_listener = match tokio::net::TcpListener::bind(options.admin_listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("--admin-listen {}: {e}", options.admin_listen);
                return Err(ExitCode::from(1));
            }
        };
        if let Some(initial) = &initial {
            admin.set_ready();
            tracing::info!(admin = %options.admin_listen, pools = initial.pools.len(), "sluice serving");
        }
        let stop = CancellationToken::new();
        tokio::spawn(admin::serve(admin.clone(), admin_listener, stop.clone()));
        let reloading = tokio::task::spawn_local(reloader(admin.clone(), stop.clone()));
        wait_for_signal().await;
        tracing::info!("shutting down: draining");
        stop.cancel();
        drop(admin);
        // Let the reloader see `stop` and finish what it was doing (bounded): the controller
        // releases its leader Lease here, within `leader::RELEASE_TIMEOUT`.
        let _ = tokio::time::timeout(RELOADER_STOP_TIMEOUT, reloading).await;
        Ok(dataplane)
    });
    let code = match served {
        Ok(dataplane) => drain(dataplane, local, control),
        Err(code) => code,
    };
    if let Some(provider) = tracer_provider {
        // Export the spans still batched.
        let _ = provider.shutdown();
    }
    code
}

/// Drains after a stop signal. The draining needs the data plane alone, but tasks of the
/// control runtime hold it (through the admin state): connections a metrics scraper keeps
/// open, health checks, timers. So that runtime is shut down first, its tasks dropped, and
/// in-flight work then finishes (up to the longest `drainTimeout`) on a fresh runtime.
fn drain(
    dataplane: Arc<Dataplane>,
    local: tokio::task::LocalSet,
    control: tokio::runtime::Runtime,
) -> ExitCode {
    drop(local);
    control.shutdown_background();
    let Ok(dataplane) = Arc::try_unwrap(dataplane) else {
        tracing::error!("the data plane is still shared at shutdown: in-flight work is cut");
        return ExitCode::SUCCESS;
    };
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(dataplane.shutdown()),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the drain runtime: in-flight work is cut")
        }
    }
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
