//! A real Kubernetes control plane for end-to-end tests: etcd and kube-apiserver as child
//! processes on loopback, a static admin token, and the matching `kubectl` and `helm`.
//!
//! It owns starting, probing and killing those processes and the files they need (certificates,
//! keys, token file, kubeconfig, logs), all inside one temporary directory. It must not send
//! traffic anywhere but loopback, and it runs no controller-manager: there is no EndpointSlice
//! controller, no garbage collection, no namespace finalization, no Pods from Deployments and
//! no `default` ServiceAccount. Tests create EndpointSlices themselves and use a fresh namespace
//! each ([`KubeCluster::new_namespace`]).
//!
//! # Requirements
//!
//! - `SLUICE_KUBE_BINS`: a directory with `etcd`, `kube-apiserver`, `kubectl` and `helm`, as
//!   printed by `hack/kube-bins.sh --print-dir` (built from Go modules and cached).
//! - `openssl` on `PATH` (certificates and keys).
//! - A private network namespace. Run the test binary under `hack/in-netns.sh`, which does
//!   `unshare --net --pid --fork` and then `ip link set lo up` and
//!   `ip addr add 198.18.0.N/32 dev lo` for N = 1..8, on the namespace's own loopback only:
//!
//!   `hack/e2e.sh` does all of it for every such test (and sets `SLUICE_REQUIRE_KUBE=1`, so a
//!   test that would skip for want of the binaries fails instead).
//!
//!   The API server advertises 198.18.0.1 (it needs an address, and there is no default route
//!   to pick one from); [`KubeCluster::start`] refuses to run where that address is not local,
//!   so these tests never run in the host's namespace by mistake. Backends for EndpointSlices
//!   bind other 198.18.0.0/15 addresses: the API server rejects loopback endpoint addresses.
//!
//! Ports are picked free on 127.0.0.1, so several clusters may run at once. Every wait is
//! bounded; the processes are killed when the [`KubeCluster`] drops (and, through the PID
//! namespace of `hack/in-netns.sh`, when the test binary exits).

#![allow(dead_code)]

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, SystemTime};

/// Environment variable naming the directory with the four binaries.
pub const BINS_ENV: &str = "SLUICE_KUBE_BINS";
/// Set to `1` (as `hack/e2e.sh` does) to make a missing control plane fail a test instead of
/// skipping it, so a run that was meant to reach the API server cannot pass by skipping.
pub const REQUIRE_ENV: &str = "SLUICE_REQUIRE_KUBE";
/// The address the API server advertises; `hack/in-netns.sh` puts it on the namespace's `lo`.
pub const ADVERTISE_ADDRESS: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// Name, user and group of the static admin token.
pub const ADMIN_USER: &str = "e2e-admin";

/// How long [`KubeCluster::start`] waits for etcd and then for `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Default bound for one `kubectl` or `helm` invocation.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// A running etcd + kube-apiserver pair. Killed on drop.
pub struct KubeCluster {
    /// Kubeconfig with the admin token (context `e2e`, namespace `default`).
    pub kubeconfig: PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub server: String,
    /// Bearer token of `e2e-admin`, member of `system:masters`.
    pub token: String,
    /// PEM file of the CA that signed the serving certificate.
    pub ca_file: PathBuf,
    /// The directory with `etcd`, `kube-apiserver`, `kubectl` and `helm`.
    pub bins: PathBuf,
    /// Wall time from spawning etcd to a ready `/readyz`.
    pub startup: Duration,
    etcd: Option<Child>,
    apiserver: Option<Child>,
    /// The API server's flags, to start it again on the same port and etcd after a stop.
    apiserver_args: Vec<String>,
    /// Everything on disk: certificates, keys, etcd data, logs, kubeconfig, kubectl cache.
    pub dir: tempfile::TempDir,
}

impl KubeCluster {
    /// The binaries directory from `SLUICE_KUBE_BINS`, or `None` when unset or empty, so a
    /// test can print a note and return instead of failing on a machine without them.
    pub fn bins_from_env() -> Option<PathBuf> {
        std::env::var_os(BINS_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    }

    /// The binaries from `SLUICE_KUBE_BINS`, or `None` after a note naming `test` (the test
    /// then returns: a skip). With `SLUICE_REQUIRE_KUBE=1` a skip panics instead.
    pub fn bins_or_skip(test: &str) -> Option<PathBuf> {
        let required = std::env::var_os(REQUIRE_ENV).is_some_and(|v| v == "1");
        bins_or_skip_with(test, Self::bins_from_env(), required)
    }

    /// A started cluster, or `None` when the binaries are not configured (see
    /// [`bins_or_skip`](Self::bins_or_skip)). Panics with the logs when it cannot start.
    pub fn start_or_skip(test: &str) -> Option<KubeCluster> {
        let bins = Self::bins_or_skip(test)?;
        let cluster = Self::start_with(&bins)
            .unwrap_or_else(|e| panic!("cannot start the Kubernetes control plane: {e}"));
        eprintln!(
            "{test}: control plane ready in {:?} at {}",
            cluster.startup, cluster.server
        );
        Some(cluster)
    }

    /// Start a cluster with the binaries from `SLUICE_KUBE_BINS`; panics with the reason and
    /// the tail of the logs when it cannot.
    pub fn start() -> KubeCluster {
        let bins = Self::bins_from_env().unwrap_or_else(|| {
            panic!("{BINS_ENV} is not set; run `hack/kube-bins.sh --print-dir`")
        });
        Self::start_with(&bins)
            .unwrap_or_else(|e| panic!("cannot start the Kubernetes control plane: {e}"))
    }

    /// Start a cluster with the binaries in `bins`.
    pub fn start_with(bins: &Path) -> Result<KubeCluster, String> {
        for tool in ["etcd", "kube-apiserver", "kubectl", "helm"] {
            if !bins.join(tool).is_file() {
                return Err(format!(
                    "{} is missing (run hack/kube-bins.sh)",
                    bins.join(tool).display()
                ));
            }
        }
        if TcpListener::bind((ADVERTISE_ADDRESS, 0)).is_err() {
            return Err(format!(
                "{ADVERTISE_ADDRESS} is not a local address: run the test binary inside the private \
                 network namespace of hack/in-netns.sh, never in the host's"
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("sluice-kube-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let [etcd_client, etcd_peer, secure] = free_ports::<3>()?;
        let server = format!("https://127.0.0.1:{secure}");
        let token = random_hex(16)?;
        let files = write_credentials(dir.path(), &token)?;
        let kubeconfig = dir.path().join("kubeconfig");
        fs::write(&kubeconfig, kubeconfig_yaml(&server, &files.ca_crt, &token))
            .map_err(|e| format!("kubeconfig: {e}"))?;

        let started = SystemTime::now();
        let mut cluster = KubeCluster {
            kubeconfig,
            server,
            token,
            ca_file: files.ca_crt.clone(),
            bins: bins.to_path_buf(),
            startup: Duration::ZERO,
            etcd: None,
            apiserver: None,
            apiserver_args: Vec::new(),
            dir,
        };

        let d = cluster.dir.path().to_path_buf();
        let etcd_url = format!("http://127.0.0.1:{etcd_client}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer}");
        let etcd = spawn_logged(
            Command::new(bins.join("etcd")).args([
                "--name=e2e",
                &format!("--data-dir={}", d.join("etcd").display()),
                &format!("--listen-client-urls={etcd_url}"),
                &format!("--advertise-client-urls={etcd_url}"),
                &format!("--listen-peer-urls={peer_url}"),
                &format!("--initial-advertise-peer-urls={peer_url}"),
                &format!("--initial-cluster=e2e={peer_url}"),
                "--unsafe-no-fsync",
                "--log-level=warn",
            ]),
            &d.join("etcd.log"),
        )?;
        cluster.etcd = Some(etcd);
        cluster.wait_for_etcd(etcd_client)?;

        let f = |p: &Path| p.display().to_string();
        cluster.apiserver_args = vec![
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={secure}"),
            // Required: with no default route the server cannot pick an address itself.
            format!("--advertise-address={ADVERTISE_ADDRESS}"),
            format!("--cert-dir={}", d.join("apiserver-certs").display()),
            format!("--tls-cert-file={}", f(&files.serving_crt)),
            format!("--tls-private-key-file={}", f(&files.serving_key)),
            format!("--client-ca-file={}", f(&files.ca_crt)),
            format!("--token-auth-file={}", f(&files.tokens)),
            "--authorization-mode=RBAC".into(),
            "--service-cluster-ip-range=198.18.200.0/24".into(),
            format!("--service-account-issuer=https://127.0.0.1:{secure}"),
            format!("--service-account-key-file={}", f(&files.sa_pub)),
            format!("--service-account-signing-key-file={}", f(&files.sa_key)),
            // No controller-manager creates `default` ServiceAccounts for Pods to mount.
            "--disable-admission-plugins=ServiceAccount".into(),
            "--allow-privileged=true".into(),
            "--profiling=false".into(),
        ];
        cluster.spawn_apiserver()?;
        cluster.wait_for_readyz()?;
        cluster.startup = started.elapsed().unwrap_or_default();
        Ok(cluster)
    }

    /// Applies sluice's BackendPool CRD (`crds/backendpool.yaml`) and waits until it is
    /// established.
    pub fn install_crd(&self) {
        let crd = fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/crds/backendpool.yaml"
        ))
        .unwrap();
        self.apply(&crd);
        self.wait_established("backendpools.sluice.dev");
    }

    /// Waits until the CRD `name` is established, 30 s at most. It polls the condition:
    /// `kubectl wait --for=condition=Established` fails at once ("<nil> is of the type <nil>")
    /// when it reads the CRD before the API server has written any status condition.
    pub fn wait_established(&self, name: &str) {
        let limit = Duration::from_secs(30);
        let deadline = Deadline::after(limit);
        let established = "jsonpath={.status.conditions[?(@.type==\"Established\")].status}";
        loop {
            let out = self.kubectl(&["get", "crd", name, "-o", established]);
            if out.status.success() && out.stdout == b"True" {
                return;
            }
            assert!(
                !deadline.expired(),
                "crd/{name} not established within {limit:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kill the API server as an outage would; etcd and everything stored stay.
    pub fn stop_apiserver(&mut self) {
        if let Some(mut child) = self.apiserver.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start the API server again after [`stop_apiserver`](Self::stop_apiserver), with the
    /// same flags, port and etcd, and wait for `/readyz`.
    pub fn restart_apiserver(&mut self) -> Result<(), String> {
        self.stop_apiserver();
        self.spawn_apiserver()?;
        self.wait_for_readyz()
    }

    fn spawn_apiserver(&mut self) -> Result<(), String> {
        let log = self.dir.path().join("kube-apiserver.log");
        let child = spawn_logged(
            Command::new(self.bins.join("kube-apiserver")).args(&self.apiserver_args),
            &log,
        )?;
        self.apiserver = Some(child);
        Ok(())
    }

    /// Run `kubectl --kubeconfig K ARGS`, bounded by 60 s (killed after).
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with_stdin(args, None)
    }

    /// [`kubectl`](Self::kubectl) with `stdin` piped in (for `apply -f -`).
    pub fn kubectl_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(self.bins.join("kubectl"));
        cmd.arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .arg(format!(
                "--cache-dir={}",
                self.dir.path().join("kubectl-cache").display()
            ))
            .args(args);
        run_bounded(&mut cmd, stdin, COMMAND_TIMEOUT)
            .unwrap_or_else(|e| panic!("kubectl {}: {e}", args.join(" ")))
    }

    /// Run kubectl and return its stdout; panics with stderr when it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        expect_success("kubectl", args, self.kubectl(args))
    }

    /// `kubectl -n NS get OBJECT -o jsonpath=PATH` (`object` as `kind/name`), trimmed; empty
    /// when the object does not exist.
    pub fn jsonpath(&self, ns: &str, object: &str, path: &str) -> String {
        let out = self.kubectl(&["-n", ns, "get", object, "-o", &format!("jsonpath={path}")]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `kubectl apply -f -` of `yaml`; returns stdout, panics with stderr when it fails.
    pub fn apply(&self, yaml: &str) -> String {
        let args = ["apply", "-f", "-"];
        expect_success("kubectl", &args, self.kubectl_with_stdin(&args, Some(yaml)))
    }

    /// Run `helm ARGS` against this cluster (its kubeconfig; helm's cache, config and data
    /// directories inside the cluster's temp dir), bounded by 60 s. Never pass `--wait`:
    /// nothing makes Deployments ready here.
    pub fn helm(&self, args: &[&str]) -> Output {
        let d = self.dir.path().join("helm");
        let mut cmd = Command::new(self.bins.join("helm"));
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CACHE_HOME", d.join("cache"))
            .env("HELM_CONFIG_HOME", d.join("config"))
            .env("HELM_DATA_HOME", d.join("data"))
            .args(args);
        run_bounded(&mut cmd, None, COMMAND_TIMEOUT)
            .unwrap_or_else(|e| panic!("helm {}: {e}", args.join(" ")))
    }

    /// Create a namespace `PREFIX-N` unique within this process and return its name. Nothing
    /// deletes namespaces here (no finalizer controller), so tests never reuse one.
    pub fn new_namespace(&self, prefix: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let name = format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.kubectl_ok(&["create", "namespace", &name]);
        name
    }

    /// The last `lines` lines of the etcd and kube-apiserver logs, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut out = String::new();
        for name in ["etcd.log", "kube-apiserver.log"] {
            let text = fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            let _ = writeln!(out, "--- {name} (last {lines} lines)");
            for line in &all[all.len().saturating_sub(lines)..] {
                let _ = writeln!(out, "{line}");
            }
        }
        out
    }

    /// Fail early, with the log, when a process died.
    fn check_alive(&mut self) -> Result<(), String> {
        let mut exited = None;
        for (name, child) in [
            ("etcd", &mut self.etcd),
            ("kube-apiserver", &mut self.apiserver),
        ] {
            if let Some(c) = child
                && let Ok(Some(status)) = c.try_wait()
            {
                exited = Some(format!("{name} exited ({status})"));
                break;
            }
        }
        match exited {
            Some(what) => Err(format!("{what}\n{}", self.log_tail(40))),
            None => Ok(()),
        }
    }

    fn wait_for_etcd(&mut self, port: u16) -> Result<(), String> {
        let deadline = Deadline::after(READY_TIMEOUT);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        loop {
            self.check_alive()?;
            if http_get(addr, "/health").is_some_and(|body| body.contains("\"health\":\"true\"")) {
                return Ok(());
            }
            if deadline.expired() {
                return Err(format!(
                    "etcd not healthy within {READY_TIMEOUT:?}\n{}",
                    self.log_tail(40)
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_for_readyz(&mut self) -> Result<(), String> {
        let deadline = Deadline::after(READY_TIMEOUT);
        loop {
            self.check_alive()?;
            let out = self.kubectl(&["get", "--raw=/readyz", "--request-timeout=5s"]);
            if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok" {
                return Ok(());
            }
            let last = String::from_utf8_lossy(if out.stderr.is_empty() {
                &out.stdout
            } else {
                &out.stderr
            })
            .into_owned();
            if deadline.expired() {
                return Err(format!(
                    "/readyz not ok within {READY_TIMEOUT:?}; last answer: {last}\n{}",
                    self.log_tail(40)
                ));
            }
            thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for KubeCluster {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("{}", self.log_tail(30));
        }
        // The API server first, so it does not log a storm of etcd errors.
        for mut child in [self.apiserver.take(), self.etcd.take()]
            .into_iter()
            .flatten()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// [`KubeCluster::bins_or_skip`] with its inputs given: `bins` when set, else a note and
/// `None`, or a panic when the control plane is `required`.
pub fn bins_or_skip_with(test: &str, bins: Option<PathBuf>, required: bool) -> Option<PathBuf> {
    if bins.is_none() {
        assert!(
            !required,
            "{test}: {REQUIRE_ENV}=1 but {BINS_ENV} is not set (run hack/e2e.sh, which sets both)"
        );
        eprintln!("skipping {test}: {BINS_ENV} is not set (see hack/kube-bins.sh, hack/e2e.sh)");
    }
    bins
}

/// A point in wall-clock time. Tests here are synchronous child-process plumbing with no
/// tokio clock to pause, and `std::time::Instant` is banned crate-wide (clippy.toml).
struct Deadline(SystemTime);

impl Deadline {
    fn after(d: Duration) -> Deadline {
        Deadline(SystemTime::now() + d)
    }

    fn expired(&self) -> bool {
        SystemTime::now() >= self.0
    }
}

struct Credentials {
    ca_crt: PathBuf,
    serving_crt: PathBuf,
    serving_key: PathBuf,
    sa_key: PathBuf,
    sa_pub: PathBuf,
    tokens: PathBuf,
}

/// CA, serving certificate for 127.0.0.1 and the advertised address, service-account key pair
/// (all P-256, valid one day) and the static token file.
fn write_credentials(d: &Path, token: &str) -> Result<Credentials, String> {
    let p = |name: &str| d.join(name);
    let s = |path: PathBuf| path.display().to_string();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    let (ca_key, ca_crt) = (s(p("ca.key")), s(p("ca.crt")));
    ca.extend([
        "-keyout",
        &ca_key,
        "-out",
        &ca_crt,
        "-days",
        "1",
        "-subj",
        "/CN=sluice-e2e-ca",
    ]);
    ca.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
    ca.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    openssl(d, &ca)?;
    let mut csr = vec!["req"];
    csr.extend(ec);
    let (key, csr_file) = (s(p("apiserver.key")), s(p("apiserver.csr")));
    csr.extend([
        "-keyout",
        &key,
        "-out",
        &csr_file,
        "-subj",
        "/CN=kube-apiserver",
    ]);
    openssl(d, &csr)?;
    let ext = format!(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n\
         subjectAltName=IP:127.0.0.1,IP:{ADVERTISE_ADDRESS},IP:198.18.200.1,DNS:localhost,DNS:kubernetes,\
         DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n"
    );
    fs::write(p("apiserver.ext"), ext).map_err(|e| format!("apiserver.ext: {e}"))?;
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            &s(p("apiserver.csr")),
            "-CA",
            &s(p("ca.crt")),
            "-CAkey",
            &s(p("ca.key")),
            "-set_serial",
            "2",
            "-days",
            "1",
            "-extfile",
            &s(p("apiserver.ext")),
            "-out",
            &s(p("apiserver.crt")),
        ],
    )?;
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &s(p("sa.key")),
        ],
    )?;
    openssl(
        d,
        &[
            "pkey",
            "-in",
            &s(p("sa.key")),
            "-pubout",
            "-out",
            &s(p("sa.pub")),
        ],
    )?;
    fs::write(
        p("tokens.csv"),
        format!("{token},{ADMIN_USER},{ADMIN_USER},system:masters\n"),
    )
    .map_err(|e| format!("tokens.csv: {e}"))?;
    Ok(Credentials {
        ca_crt: p("ca.crt"),
        serving_crt: p("apiserver.crt"),
        serving_key: p("apiserver.key"),
        sa_key: p("sa.key"),
        sa_pub: p("sa.pub"),
        tokens: p("tokens.csv"),
    })
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = run_bounded(
        Command::new("openssl").args(args).current_dir(dir),
        None,
        Duration::from_secs(30),
    )
    .map_err(|e| format!("openssl {}: {e} (is openssl installed?)", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn kubeconfig_yaml(server: &str, ca: &Path, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\n\
         clusters:\n- name: e2e\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\n\
         users:\n- name: {ADMIN_USER}\n  user:\n    token: {token}\n\
         contexts:\n- name: e2e\n  context:\n    cluster: e2e\n    user: {ADMIN_USER}\n    namespace: default\n\
         current-context: e2e\n",
        ca = ca.display()
    )
}

/// `N` distinct free ports on 127.0.0.1, held together so none repeats.
fn free_ports<const N: usize>() -> Result<[u16; N], String> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("free port: {e}"))?;
    let mut ports = [0u16; N];
    for (port, l) in ports.iter_mut().zip(&listeners) {
        *port = l
            .local_addr()
            .map_err(|e| format!("free port: {e}"))?
            .port();
    }
    Ok(ports)
}

fn random_hex(bytes: usize) -> Result<String, String> {
    let mut buf = vec![0u8; bytes];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(buf.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}

/// Spawn `cmd` with stdout and stderr appended to `log` (a restarted process keeps the
/// earlier lines).
fn spawn_logged(cmd: &mut Command, log: &Path) -> Result<Child, String> {
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("spawn {:?}: {e}", cmd.get_program()))
}

/// Plain HTTP/1.0 GET on loopback; the body, or `None` on any error. Bounded by 2 s.
fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
}

/// Run `cmd` to completion with piped output, killing it after `timeout`.
fn run_bounded(
    cmd: &mut Command,
    stdin: Option<&str>,
    timeout: Duration,
) -> Result<Output, String> {
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {:?}: {e}", cmd.get_program()))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let input = input.to_owned();
        // A writer thread, so a large input cannot deadlock against unread output.
        thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
    }
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = read(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = read(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Deadline::after(timeout);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if deadline.expired() => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out after {timeout:?}"));
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("wait: {e}")),
        }
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

fn expect_success(tool: &str, args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "{tool} {} failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
