//! The `sluice controller` binary as a child process of an end-to-end test against the real
//! API server ([`KubeCluster`]): started with the flags and environment the test needs,
//! waited on with its log in every failure message, killed when dropped.
//!
//! Needs the test crate's `common` module (free ports) and [`super::http`] (the readiness
//! probe).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::http;
use super::kube::KubeCluster;
use crate::common::free_port;

/// How long [`ControllerBuilder::start`] waits for `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running controller, killed on drop; its log is kept for failure messages.
pub struct ControllerProcess {
    child: Child,
    admin: SocketAddr,
    log: PathBuf,
}

/// How to start a [`ControllerProcess`]: the flags and environment beyond the common ones.
pub struct ControllerBuilder<'a> {
    kube: &'a KubeCluster,
    ns: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl ControllerProcess {
    /// A controller for `kube` watching `ns`, on 127.0.0.1 with one worker, `info` logs and
    /// its admin server on a free port; add flags and environment before `start`.
    pub fn builder<'a>(kube: &'a KubeCluster, ns: &str) -> ControllerBuilder<'a> {
        ControllerBuilder {
            kube,
            ns: ns.to_owned(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Port of the admin server (`/metrics`, `/readyz`).
    pub fn admin_port(&self) -> u16 {
        self.admin.port()
    }

    /// The process id, for sending it signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status once the process has exited, without waiting.
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Everything the controller has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `ok` every 100 ms until it holds; panics naming `what`, with the log, after
    /// `limit`.
    pub fn wait(&self, limit: Duration, what: &str, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "controller: not {what} within {limit:?}\n--- sluice log\n{}",
            self.log()
        );
    }
}

impl ControllerBuilder<'_> {
    /// Adds command-line flags.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable (`POD_NAMESPACE`, ...).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Spawns the controller (stderr to a log file in the cluster's directory) and returns
    /// once its `/readyz` answers 200; panics with the log when it does not within 30 s.
    pub fn start(self) -> ControllerProcess {
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = self
            .kube
            .dir
            .path()
            .join(format!("sluice-{}-{}.log", self.ns, admin.port()));
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["controller", "--namespace", &self.ns, "--bind", "127.0.0.1"])
            .args(["--workers", "1", "--log-level", "info"])
            .args(&self.args)
            .arg("--admin-listen")
            .arg(admin.to_string())
            .envs(self.env)
            .env("KUBECONFIG", &self.kube.kubeconfig)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let c = ControllerProcess { child, admin, log };
        c.wait(READY_TIMEOUT, "ready", || {
            http::fetch(admin.port(), "admin", "/readyz", &[]).map(|a| a.status) == Some(200)
        });
        c
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
