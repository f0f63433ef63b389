//! Shared harness for black-box tests: the real `sluice` binary on loopback, echo
//! backends, and a small HTTP client. Every wait is bounded.

#![allow(dead_code)]
// Blocking waits in the harness run outside any runtime: std's clock is the right one.
#![allow(clippy::disallowed_types)]

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

pub use sluice::demo::EchoServer;

/// A free loopback port for a test server to bind.
///
/// Taken below Linux's ephemeral range (32768 and up), so no outgoing connection can take it
/// between this check and the server binding it (that race once failed a CI run), from a
/// per-process sequence starting at a random point, so parallel tests and test binaries do
/// not pick the same one.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const FIRST: u16 = 20_000;
    const END: u16 = 32_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        FIRST + fastrand::u16(..(END - FIRST)),
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::Relaxed);
        if !(FIRST..END).contains(&port) {
            let _ = NEXT.compare_exchange(
                port.wrapping_add(1),
                FIRST,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub fn echo(name: &str) -> EchoServer {
    EchoServer::start(name, "127.0.0.1:0".parse().unwrap()).unwrap()
}

pub fn slow_echo(name: &str, delay: Duration) -> EchoServer {
    EchoServer::start_with_delay(name, "127.0.0.1:0".parse().unwrap(), delay).unwrap()
}

/// YAML for one BackendPool.
pub fn pool(
    name: &str,
    port: u16,
    algorithm: &str,
    endpoints: &[(SocketAddr, u32)],
    extra: &str,
) -> String {
    let mut eps = String::new();
    for (addr, w) in endpoints {
        eps.push_str(&format!("    - {{address: \"{addr}\", weight: {w}}}\n"));
    }
    format!(
        "---\napiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  protocol: HTTP\n  listener: {{port: {port}}}\n  algorithm: {algorithm}\n  endpoints:\n{eps}{extra}"
    )
}

/// The real binary serving a config file.
pub struct Sluice {
    pub child: Child,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Sluice {
    pub fn start(yaml: &str) -> Sluice {
        Self::start_with(yaml, &[])
    }

    pub fn start_with(yaml: &str, args: &[&str]) -> Sluice {
        Self::start_in(tempfile::tempdir().unwrap(), yaml, args)
    }

    /// Serves `yaml` written as `pools.yaml` into `dir` (where tests put certificates).
    pub fn start_in(dir: tempfile::TempDir, yaml: &str, args: &[&str]) -> Sluice {
        Self::start_in_env(dir, yaml, args, &[])
    }

    /// As [`Sluice::start_in`], with extra environment variables for the process.
    pub fn start_in_env(
        dir: tempfile::TempDir,
        yaml: &str,
        args: &[&str],
        envs: &[(&str, &std::path::Path)],
    ) -> Sluice {
        Self::start_via(&[], dir, yaml, args, envs)
    }

    /// As [`Sluice::start_in_env`], run through `wrapper` (a command that ends by running
    /// the binary it is given as its last argument, with the arguments after it).
    pub fn start_via(
        wrapper: &[&std::ffi::OsStr],
        dir: tempfile::TempDir,
        yaml: &str,
        args: &[&str],
        envs: &[(&str, &std::path::Path)],
    ) -> Sluice {
        let config = dir.path().join("pools.yaml");
        std::fs::write(&config, yaml).unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        // SLUICE_BIN runs another build (e.g. target/release/sluice for measurements).
        let bin =
            std::env::var_os("SLUICE_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_sluice").into());
        let mut command = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = command
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .args([
                "--bind",
                "127.0.0.1",
                "--workers",
                "2",
                "--log-level",
                "warn",
            ])
            .arg("--admin-listen")
            .arg(admin.to_string())
            .args(args)
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let s = Sluice {
            child,
            admin,
            dir,
            config,
        };
        s.wait_ready();
        s
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(mut stream) = std::net::TcpStream::connect(self.admin) {
                use std::io::{Read, Write};
                let _ = stream
                    .write_all(b"GET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
                let mut out = String::new();
                let _ = stream.read_to_string(&mut out);
                if out.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("sluice did not become ready");
    }

    pub fn admin_get(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.admin).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).unwrap();
        out.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn backend(&self) -> String {
        self.headers
            .get("x-backend")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }
}

/// One HTTP/1.1 GET on a new connection.
pub async fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Resp {
    send(port, "GET", path, headers).await
}

/// One HTTP/1.1 request with `method` on a new connection (Host `app.test` unless given),
/// answered within 10 s.
pub async fn send(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let work = async {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut req = Request::builder().method(method).uri(path);
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            req = req.header("host", "app.test");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = sender
            .send_request(req.body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Resp {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .expect("sluice answers within 10 s")
}

/// Sends raw bytes and reads until the peer closes (bounded).
pub async fn raw(port: u16, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Counts backends over `n` sequential requests.
pub async fn spread(
    port: u16,
    n: usize,
    headers: &[(&str, &str)],
) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..n {
        let r = get(port, "/", headers).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        *counts.entry(r.backend()).or_default() += 1;
    }
    counts
}

// ---- Resilience helpers: signals, config rewrites, fallible clients, admin reads. ----

impl Sluice {
    /// The process id, for signals and /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. "TERM", "HUP") with the `kill` command.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Rewrites the config file: `atomic` writes a sibling file and renames it over the
    /// config (what editors and Kubernetes ConfigMaps do); otherwise truncates and writes
    /// in place.
    pub fn write_config(&self, yaml: &str, atomic: bool) {
        if atomic {
            let tmp = self.dir.path().join(".pools.yaml.tmp");
            std::fs::write(&tmp, yaml).unwrap();
            std::fs::rename(&tmp, &self.config).unwrap();
        } else {
            std::fs::write(&self.config, yaml).unwrap();
        }
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// An admin path's body, without blocking the calling runtime.
    pub async fn admin(&self, path: &str) -> String {
        admin_fetch(self.admin, path).await
    }

    /// The `/pools` document.
    pub async fn pools(&self) -> serde_json::Value {
        serde_json::from_str(&self.admin("/pools").await).unwrap()
    }

    /// `address -> healthy` for every endpoint of the pool named `pool` in `/pools`.
    pub async fn health_of(&self, pool: &str) -> std::collections::BTreeMap<String, bool> {
        let doc = self.pools().await;
        let mut out = std::collections::BTreeMap::new();
        for p in doc["pools"].as_array().into_iter().flatten() {
            if p["name"] != pool {
                continue;
            }
            for e in p["endpoints"].as_array().into_iter().flatten() {
                out.insert(
                    e["address"].as_str().unwrap_or_default().to_owned(),
                    e["healthy"].as_bool().unwrap_or(false),
                );
            }
        }
        out
    }

    /// The value of the sample `series` (name and labels exactly as exported), if present.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        metric_value(&self.admin("/metrics").await, series)
    }
}

/// GETs an admin path over a fresh connection; returns the body (bounded to 5 s).
pub async fn admin_fetch(admin: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let work = async {
        let mut stream = tokio::net::TcpStream::connect(admin).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.unwrap();
        out
    };
    let out = tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .expect("admin endpoint answers within 5 s");
    let text = String::from_utf8_lossy(&out).into_owned();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// The value of `series` (e.g. `sluice_retries_total{pool="default/a"}`) in a Prometheus
/// text document.
pub fn metric_value(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes; returns how long it took.
pub async fn eventually<F, Fut>(timeout: Duration, mut cond: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = tokio::time::Instant::now();
    loop {
        if cond().await {
            return Some(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Builds one HTTP/1.1 request for `path` with `Host: app.test`.
fn request(path: &str, method: &str, body: &'static [u8]) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "app.test")
        .body(Full::new(Bytes::from_static(body)))
        .unwrap()
}

async fn read_resp(resp: http::Response<hyper::body::Incoming>) -> Result<Resp, String> {
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok(Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// One request on a new connection; every failure (connect, reset, timeout) is an `Err`.
pub async fn try_request(
    port: u16,
    method: &str,
    path: &str,
    body: &'static [u8],
    timeout: Duration,
) -> Result<Resp, String> {
    let work = async {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(conn);
        let resp = sender
            .send_request(request(path, method, body))
            .await
            .map_err(|e| format!("send: {e}"))?;
        read_resp(resp).await
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
}

/// `GET path` on a new connection, fallible, bounded to 5 s.
pub async fn try_get(port: u16, path: &str) -> Result<Resp, String> {
    try_request(port, "GET", path, b"", Duration::from_secs(5)).await
}

/// A client keeping one HTTP/1.1 connection open across requests.
pub struct KeepAlive {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl KeepAlive {
    /// Opens the connection.
    pub async fn connect(port: u16) -> Result<KeepAlive, String> {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(conn);
        Ok(KeepAlive { sender })
    }

    /// `GET path` on the open connection (bounded to 5 s).
    pub async fn get(&mut self, path: &str) -> Result<Resp, String> {
        let work = async {
            self.sender
                .ready()
                .await
                .map_err(|e| format!("connection lost: {e}"))?;
            let resp = self
                .sender
                .send_request(request(path, "GET", b""))
                .await
                .map_err(|e| format!("send: {e}"))?;
            read_resp(resp).await
        };
        tokio::time::timeout(Duration::from_secs(5), work)
            .await
            .map_err(|_| "no answer within 5s".to_owned())?
    }

    /// How long until the server closes the (idle) connection; `None` if it is still open
    /// after `limit`.
    pub async fn closed_within(&self, limit: Duration) -> Option<Duration> {
        eventually(limit, || {
            let closed = self.sender.is_closed();
            async move { closed }
        })
        .await
    }
}

/// Sends raw bytes, reads until the peer closes or `timeout`; returns what was read and
/// whether the peer closed the connection.
pub async fn raw_exchange(port: u16, bytes: &[u8], timeout: Duration) -> (String, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    // The peer may close before everything is written (it answered 400 early): not an error.
    let _ = stream.write_all(bytes).await;
    let mut out = Vec::new();
    let closed = tokio::time::timeout(timeout, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

/// An h2c (prior knowledge) client connection to sluice on `port`, and the task driving it
/// (it ends when the connection closes).
pub async fn h2c(
    port: u16,
) -> (
    hyper::client::conn::http2::SendRequest<http_body_util::Empty<Bytes>>,
    tokio::task::JoinHandle<hyper::Result<()>>,
) {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    (sender, tokio::spawn(conn))
}

/// A BackendPool document built from the typed resource (`sluice::api`), so tests set
/// fields by name instead of editing YAML text.
#[derive(Clone, Debug)]
pub struct PoolDoc(pub sluice::api::BackendPool);

impl PoolDoc {
    /// An HTTP pool `default/NAME` on `port` with no endpoints list yet.
    pub fn http(name: &str, port: u16) -> Self {
        let spec = sluice::api::BackendPoolSpec {
            listener: sluice::api::ListenerSpec {
                port: u32::from(port),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut pool = sluice::api::BackendPool::new(name, spec);
        pool.metadata.namespace = Some("default".into());
        PoolDoc(pool)
    }

    /// A TCP pool `default/NAME` on `port`.
    pub fn tcp(name: &str, port: u16) -> Self {
        Self::http(name, port).spec(|s| s.protocol = sluice::api::Protocol::Tcp)
    }

    /// Static endpoints, weight 1 (an empty slice gives `endpoints: []`).
    pub fn endpoints(self, addrs: &[SocketAddr]) -> Self {
        let eps = addrs
            .iter()
            .map(|a| sluice::api::EndpointSpec {
                address: a.to_string(),
                weight: None,
            })
            .collect();
        self.spec(|s| s.endpoints = Some(eps))
    }

    /// `listener.hosts`.
    pub fn hosts(self, hosts: &[&str]) -> Self {
        let hosts = hosts.iter().map(|h| (*h).to_owned()).collect();
        self.spec(|s| s.listener.hosts = Some(hosts))
    }

    /// `listener.pathPrefix`.
    pub fn path_prefix(self, prefix: &str) -> Self {
        self.spec(|s| s.listener.path_prefix = Some(prefix.to_owned()))
    }

    /// `listener.tls` from certificate and key files next to the config file.
    pub fn tls_files(self, cert: &str, key: &str) -> Self {
        let tls = sluice::api::TlsSpec {
            cert_file: Some(cert.to_owned()),
            key_file: Some(key.to_owned()),
            ..Default::default()
        };
        self.spec(|s| s.listener.tls = Some(tls))
    }

    /// `listener.proxyProtocol: true`.
    pub fn proxy_protocol(self) -> Self {
        self.spec(|s| s.listener.proxy_protocol = Some(true))
    }

    /// Any other change to the spec.
    pub fn spec(mut self, change: impl FnOnce(&mut sluice::api::BackendPoolSpec)) -> Self {
        change(&mut self.0.spec);
        self
    }

    /// A block of the spec given as YAML (`redirect`, `canary`, ...), parsed into its type.
    pub fn block<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
        serde_norway::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
    }

    /// The document, with its `---` separator.
    pub fn yaml(&self) -> String {
        format!(
            "---\n{}",
            serde_norway::to_string(&self.0).expect("a pool serializes")
        )
    }
}

/// The documents of a standalone file.
pub fn file(docs: &[PoolDoc]) -> String {
    docs.iter().map(PoolDoc::yaml).collect()
}

/// Runs `sluice check` with `args`, `stdin` piped in; returns (exit code, stdout, stderr).
pub fn sluice_check(args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("check")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice check runs");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.as_bytes())
        .expect("stdin takes the input");
    let out = child.wait_with_output().expect("sluice check ends");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes `yaml` as `pools.yaml` in a fresh directory and runs `sluice check --config` on
/// it; returns (exit code, stderr, the file's path as printed in errors).
pub fn check_file(yaml: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("pools.yaml");
    std::fs::write(&file, yaml).expect("the config is written");
    let path = file.display().to_string();
    let (code, _, err) = sluice_check(&["--config", &path], "");
    (code, err, path)
}

/// A fresh certificate authority for test servers (P-256, from rcgen).
pub struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    /// The CA certificate, PEM: what a client trusts.
    pub pem: String,
}

impl TestCa {
    pub fn new() -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let issuer = rcgen::CertifiedIssuer::self_signed(params, key).unwrap();
        let pem = issuer.pem();
        TestCa { issuer, pem }
    }

    /// A certificate for `name` signed by this CA and its key, both PEM.
    pub fn leaf(&self, name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }
}
