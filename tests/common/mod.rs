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

/// A free loopback port (bound and released; the kernel does not hand it out again at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("pools.yaml");
        std::fs::write(&config, yaml).unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
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

/// One HTTP/1.1 request on a new connection.
pub async fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Resp {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::get(path);
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
