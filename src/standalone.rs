//! Standalone mode: `serve`, `check` and `demo`, and the process plumbing they share
//! (logging, worker start-up, the admin endpoint, reload on file change and SIGHUP, drain
//! on SIGTERM/SIGINT).

use std::collections::HashSet;
use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, Admin};
use crate::config::{self, ConfigSet, LoadError};
use crate::demo::EchoServer;
use crate::proxy::server::Workers;
use crate::proxy::telemetry::{AccessLog, SpanExport};
use crate::proxy::{Dataplane, DataplaneOptions};

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
    pub max_connections: usize,
    /// `--trusted-proxies`: peers whose `X-Forwarded-For` names the client (default none).
    pub trusted_proxies: Vec<crate::policy::Cidr>,
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

/// `sluice check`: 0 when the file is valid, 1 with every error otherwise.
pub fn check(path: &Path, format: CheckFormat) -> ExitCode {
    let (file, loaded) = if path == Path::new("-") {
        let mut text = String::new();
        let read = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text);
        let file = "<stdin>".to_owned();
        let loaded = match read {
            Ok(_) => config::load_text(&file, &text),
            Err(source) => Err(LoadError::Io {
                path: file.clone(),
                source,
            }),
        };
        (file, loaded)
    } else {
        (path.display().to_string(), config::load_file(path))
    };
    let warnings: Vec<String> = match &loaded {
        Ok(set) if set.pools.is_empty() => vec![format!(
            "{file}: no BackendPool documents (an empty configuration serves nothing)"
        )],
        _ => Vec::new(),
    };
    match format {
        CheckFormat::Text => check_text(&file, &loaded, &warnings),
        CheckFormat::Json => check_json(&file, &loaded, &warnings),
    }
    if loaded.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// How `sluice check` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckFormat {
    /// `FILE: ok (N pools)` on stdout, or one error per line on stderr.
    Text,
    /// One JSON object on stdout: `{file, ok, pools, errors: [{message, pool, field}], warnings}`.
    Json,
}

fn check_text(file: &str, loaded: &Result<config::ConfigSet, LoadError>, warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
    match loaded {
        Ok(set) if !set.pools.is_empty() => println!("{file}: ok ({} pools)", set.pools.len()),
        Ok(_) => {}
        Err(e) => eprint!("{}", error_text(e)),
    }
}

fn check_json(file: &str, loaded: &Result<config::ConfigSet, LoadError>, warnings: &[String]) {
    let errors: Vec<serde_json::Value> = match loaded {
        Ok(_) => Vec::new(),
        Err(LoadError::Invalid(invalid)) => invalid
            .0
            .iter()
            .map(|e| serde_json::json!({"message": e.message, "pool": e.pool, "field": e.field}))
            .collect(),
        Err(e) => vec![serde_json::json!({"message": e.to_string(), "pool": null, "field": null})],
    };
    let report = serde_json::json!({
        "file": file,
        "ok": loaded.is_ok(),
        "pools": loaded.as_ref().map_or(0, |s| s.pools.len()),
        "errors": errors,
        "warnings": warnings,
    });
    println!("{report}");
}

fn error_text(e: &LoadError) -> String {
    let mut s = e.to_string();
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// `sluice serve`: load, serve, reload on change, drain on signal.
pub fn serve(path: PathBuf, options: Options) -> ExitCode {
    init_logging(options.log_format, &options.log_level);
    let initial = match config::load_file(&path) {
        Ok(set) => set,
        Err(e) => {
            eprint!("{}", error_text(&e));
            return ExitCode::from(1);
        }
    };
    run(options, Some(initial), move |admin, stop| {
        watch_file(path, admin, stop)
    })
}

/// `sluice demo`: three echo backends and a RoundRobin pool in front of them.
pub fn demo(port: u16, options: Options) -> ExitCode {
    init_logging(options.log_format, &options.log_level);
    let mut backends = Vec::new();
    for name in ["echo-1", "echo-2", "echo-3"] {
        match EchoServer::start(name, SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0)) {
            Ok(b) => backends.push(b),
            Err(e) => {
                eprintln!("cannot start demo backends: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let endpoints: String = backends
        .iter()
        .map(|b| format!("    - {{address: \"{}\"}}\n", b.addr()))
        .collect();
    let yaml = format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {{name: demo, namespace: default}}\nspec:\n  protocol: HTTP\n  listener: {{port: {port}}}\n  algorithm: RoundRobin\n  endpoints:\n{endpoints}"
    );
    let set = match config::parse_documents("demo", &yaml)
        .and_then(|docs| config::validate(&config::Source::File("demo".into()), &docs))
    {
        Ok(set) => set,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(1);
        }
    };
    let mut options = options;
    if options.bind.is_unspecified() {
        options.bind = Ipv4Addr::LOCALHOST.into();
    }
    eprintln!(
        "sluice demo: pool default/demo on http://{bind}:{port}/ -> {backends}\n\n  curl http://{bind}:{port}/hello        # repeat: answers rotate echo-1, echo-2, echo-3\n  curl --http2-prior-knowledge http://{bind}:{port}/\n  curl http://{admin}/pools\n  curl http://{admin}/metrics\n\nCtrl-C to stop.",
        bind = options.bind,
        admin = options.admin_listen,
        backends = backends
            .iter()
            .map(|b| b.addr().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    );
    // The echo servers run on their own threads; keep them alive while serving.
    let code = run(options, Some(set), |_, stop| async move {
        stop.cancelled().await
    });
    drop(backends);
    code
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
            max_connections: options.max_connections,
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
        let admin = Arc::new(Admin::new(dataplane.clone()));
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

/// Reloads `path` on file events (coalesced over 100 ms) and on SIGHUP. The htpasswd
/// files of `basicAuth` pools are watched too: a change to one reloads the whole
/// configuration, so a list that no longer parses is refused like a bad config edit.
async fn watch_file(path: PathBuf, admin: Arc<Admin>, stop: CancellationToken) {
    use notify::Watcher;
    let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
    let names: Arc<parking_lot::RwLock<HashSet<OsString>>> = Arc::default();
    if let Some(name) = path.file_name() {
        names.write().insert(name.to_owned());
    }
    let dir = parent_dir(&path);
    let watch_tx = tx.clone();
    let watched = names.clone();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            let names = watched.read();
            let ours = event
                .paths
                .iter()
                .any(|p| p.file_name().is_some_and(|n| names.contains(n)));
            if ours && !event.kind.is_access() {
                let _ = watch_tx.send(Instant::now());
            }
        }
    });
    // Watch the directory: editors replace the file (rename over it), which a watch on the
    // file itself would lose.
    let mut watcher = match watcher {
        Ok(mut w) => match w.watch(&dir, notify::RecursiveMode::NonRecursive) {
            Ok(()) => Some(w),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch config directory; SIGHUP still reloads");
                None
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch config file; SIGHUP still reloads");
            None
        }
    };
    let mut dirs = HashSet::from([dir]);
    watch_credential_files(&admin, &names, &mut dirs, watcher.as_mut());
    let hup_tx = tx;
    tokio::task::spawn_local(async move {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut hup) = signal(SignalKind::hangup()) {
            while hup.recv().await.is_some() {
                let _ = hup_tx.send(Instant::now());
            }
        }
    });
    loop {
        let first = tokio::select! {
            _ = stop.cancelled() => return,
            seen = rx.recv() => match seen { Some(t) => t, None => return },
        };
        // Coalesce bursts of writes (editors write, truncate, rename): short enough that a
        // change serves within ~100 ms even for large files.
        tokio::time::sleep(Duration::from_millis(20)).await;
        while rx.try_recv().is_ok() {}
        reload(&path, &admin, first);
        watch_credential_files(&admin, &names, &mut dirs, watcher.as_mut());
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Adds the htpasswd files the served pools read to what the watcher reloads on.
fn watch_credential_files(
    admin: &Admin,
    names: &parking_lot::RwLock<HashSet<OsString>>,
    dirs: &mut HashSet<PathBuf>,
    mut watcher: Option<&mut notify::RecommendedWatcher>,
) {
    use notify::Watcher;
    for pool in admin.dataplane.pools().iter() {
        let snapshot = pool.snapshot();
        let Some(auth) = &snapshot.config.filters.basic_auth else {
            continue;
        };
        let config::CredentialSource::File(file) = &auth.source else {
            continue;
        };
        if let Some(name) = file.file_name()
            && !names.read().contains(name)
        {
            names.write().insert(name.to_owned());
        }
        let dir = parent_dir(file);
        if !dirs.contains(&dir)
            && let Some(w) = watcher.as_deref_mut()
        {
            match w.watch(&dir, notify::RecursiveMode::NonRecursive) {
                Ok(()) => {
                    dirs.insert(dir);
                }
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot watch htpasswd directory; SIGHUP still reloads");
                }
            }
        }
    }
}

/// Loads, validates and applies `path`; a failure changes nothing.
fn reload(path: &Path, admin: &Admin, seen: Instant) {
    let result = config::load_file(path)
        .map_err(|e| error_text(&e))
        .and_then(|set| {
            admin
                .dataplane
                .apply(&set)
                .map(|()| set.pools.len())
                .map_err(|e| e.to_string())
        });
    match result {
        Ok(pools) => {
            admin.metrics.reload(true);
            admin.metrics.apply_took(seen.elapsed().as_secs_f64());
            tracing::info!(file = %path.display(), pools, "configuration reloaded");
        }
        Err(e) => {
            admin.metrics.reload(false);
            tracing::error!(file = %path.display(), "configuration refused, previous one keeps serving:\n{}", e.trim_end());
        }
    }
}
