//! Standalone mode: `serve` (reload on file change and SIGHUP), `check` and `demo`. The
//! process around them (options, logging, workers, admin endpoint, drain) is
//! [`crate::process`].

use std::collections::HashSet;
use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::admin::Admin;
use crate::config::{self, LoadError};
use crate::demo::EchoServer;
use crate::process::{Options, init_logging, run};

mod ingresses;
mod resolve;

use resolve::Names;

/// `sluice check`: 0 when the file is valid, 1 with every error otherwise. With
/// `kubernetes`, the file is Kubernetes manifests: its BackendPools are checked with the
/// controller's rules, its Ingresses' annotations as the controller reads them, and other
/// objects are passed over.
pub fn check(path: &Path, format: CheckFormat, kubernetes: bool) -> ExitCode {
    let file = if path == Path::new("-") {
        "<stdin>".to_owned()
    } else {
        path.display().to_string()
    };
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map(|_| text)
    } else {
        std::fs::read_to_string(path)
    };
    let mut report = Report {
        file: &file,
        loaded: Ok(config::ConfigSet::default()),
        ingresses: ingresses::Findings::default(),
        warnings: Vec::new(),
        others: 0,
    };
    match text {
        Err(source) => {
            let path = file.clone();
            report.loaded = Err(LoadError::Io { path, source });
        }
        Ok(text) if kubernetes => {
            match config::check_manifests(&file, &text) {
                Ok(checked) => {
                    report.loaded = Ok(checked.set);
                    report.others = checked.others;
                }
                Err(e) => report.loaded = Err(e),
            }
            report.ingresses = ingresses::check(&file, &text);
            report.others = report.others.saturating_sub(report.ingresses.ingresses);
            report.warnings = std::mem::take(&mut report.ingresses.warnings);
        }
        Ok(text) => {
            report.loaded = config::load_text(&file, &text);
            if matches!(&report.loaded, Ok(set) if set.pools.is_empty()) {
                report.warnings.push(format!(
                    "{file}: no BackendPool documents (an empty configuration serves nothing)"
                ));
            }
        }
    }
    match format {
        CheckFormat::Text => check_text(&report),
        CheckFormat::Json => check_json(&report),
    }
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// What `sluice check` found.
struct Report<'a> {
    file: &'a str,
    loaded: Result<config::ConfigSet, LoadError>,
    /// `--kubernetes`: the Ingresses' annotation findings.
    ingresses: ingresses::Findings,
    warnings: Vec<String>,
    /// Manifests of kinds not checked (`--kubernetes`).
    others: usize,
}

impl Report<'_> {
    fn ok(&self) -> bool {
        self.loaded.is_ok() && self.ingresses.errors.is_empty()
    }

    /// `2 pools, 1 Ingresses; 3 objects of other kinds not checked`.
    fn summary(&self, pools: usize) -> String {
        let mut out = format!("{pools} pools");
        if self.ingresses.ingresses > 0 {
            out.push_str(&format!(", {} Ingresses", self.ingresses.ingresses));
        }
        if self.others > 0 {
            out.push_str(&format!(
                "; {} objects of other kinds not checked",
                self.others
            ));
        }
        out
    }
}

/// How `sluice check` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckFormat {
    /// `FILE: ok (N pools)` on stdout, or one error per line on stderr.
    Text,
    /// One JSON object on stdout: `{file, ok, pools, ingresses, otherObjects, errors: [{message,
    /// pool, field, line, column}], warnings}`.
    Json,
}

fn check_text(r: &Report<'_>) {
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    for e in &r.ingresses.errors {
        eprintln!("{e}");
    }
    match &r.loaded {
        Ok(set) if set.pools.is_empty() && r.others == 0 && r.ingresses.ingresses == 0 => {}
        Ok(set) if r.ok() => println!("{}: ok ({})", r.file, r.summary(set.pools.len())),
        Ok(_) => {}
        Err(e) => eprint!("{}", error_text(e)),
    }
}

fn check_json(r: &Report<'_>) {
    let mut errors: Vec<serde_json::Value> = match &r.loaded {
        Ok(_) => Vec::new(),
        Err(LoadError::Invalid(invalid)) => invalid
            .0
            .iter()
            .map(|e| {
                serde_json::json!({
                    "message": e.message,
                    "pool": e.pool,
                    "field": e.field,
                    "line": e.location.map(|l| l.line),
                    "column": e.location.map(|l| l.column),
                })
            })
            .collect(),
        Err(e) => vec![
            serde_json::json!({"message": e.to_string(), "pool": null, "field": null, "line": null, "column": null}),
        ],
    };
    errors.extend(r.ingresses.errors.iter().map(|m| {
        serde_json::json!({"message": m, "pool": null, "field": null, "line": null, "column": null})
    }));
    let report = serde_json::json!({
        "file": r.file,
        "ok": r.ok(),
        "pools": r.loaded.as_ref().map_or(0, |s| s.pools.len()),
        "ingresses": r.ingresses.ingresses,
        "otherObjects": r.others,
        "errors": errors,
        "warnings": r.warnings,
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
    let (names, first_round) = Names::first(initial, resolve::system());
    let served = names.applied().clone();
    run(options, Some(served), move |admin, stop| {
        admin
            .metrics
            .dns_resolved(first_round.ok, first_round.failed);
        watch_file(path, names, admin, stop)
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

/// Reloads `path` on file events (coalesced over 100 ms) and on SIGHUP. The htpasswd
/// files of `basicAuth` pools are watched too: a change to one reloads the whole
/// configuration, so a list that no longer parses is refused like a bad config edit.
/// DNS-name endpoints are resolved again every `resolveEvery`.
async fn watch_file(path: PathBuf, mut dns: Names, admin: Arc<Admin>, stop: CancellationToken) {
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
    let mut next_resolve = dns.period().map(|p| Instant::now() + p);
    loop {
        let resolve_due = async {
            match next_resolve {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let first = tokio::select! {
            _ = stop.cancelled() => return,
            seen = rx.recv() => match seen { Some(t) => t, None => return },
            () = resolve_due => {
                resolve_again(&admin, &mut dns).await;
                next_resolve = dns.period().map(|p| Instant::now() + p);
                continue;
            }
        };
        // Coalesce bursts of writes (editors write, truncate, rename): short enough that a
        // change serves within ~100 ms even for large files.
        tokio::time::sleep(Duration::from_millis(20)).await;
        while rx.try_recv().is_ok() {}
        reload(&path, &admin, &mut dns, first).await;
        next_resolve = dns.period().map(|p| Instant::now() + p);
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

/// Loads, validates, resolves and applies `path`; a failure changes nothing.
async fn reload(path: &Path, admin: &Admin, names: &mut Names, seen: Instant) {
    let base = match config::load_file(path) {
        Ok(set) => set,
        Err(e) => return refused(path, admin, &error_text(&e)),
    };
    let (filled, round) = names.fill(&base).await;
    admin.metrics.dns_resolved(round.ok, round.failed);
    if let Err(e) = admin.dataplane.apply(&filled) {
        return refused(path, admin, &e.to_string());
    }
    admin.metrics.reload(true);
    admin.metrics.apply_took(seen.elapsed().as_secs_f64());
    tracing::info!(file = %path.display(), pools = filled.pools.len(), "configuration reloaded");
    names.served(base, filled);
}

fn refused(path: &Path, admin: &Admin, problem: &str) {
    admin.metrics.reload(false);
    tracing::error!(file = %path.display(), "configuration refused, previous one keeps serving:\n{}", problem.trim_end());
}

/// Resolves the served names again and applies the new addresses, if any changed.
async fn resolve_again(admin: &Admin, names: &mut Names) {
    let seen = Instant::now();
    let (changed, round) = names.again().await;
    admin.metrics.dns_resolved(round.ok, round.failed);
    let Some(set) = changed else { return };
    match admin.dataplane.apply(&set) {
        Ok(()) => {
            admin.metrics.apply_took(seen.elapsed().as_secs_f64());
            tracing::info!("DNS-name endpoints resolved to new addresses; applied");
            names.adopt(set);
        }
        Err(e) => tracing::error!(error = %e, "DNS-name endpoints changed but cannot be applied"),
    }
}
