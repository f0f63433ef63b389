//! DNS-name endpoints of `sluice serve`, through the real binary: the name is resolved
//! by the system resolver from an `/etc/hosts` the test controls (bind-mounted in a private
//! mount namespace, with a `resolv.conf` naming a loopback server that does not exist, so
//! no lookup leaves the machine), and re-resolved every `resolveEvery`.

#![allow(clippy::disallowed_types)]

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{EchoServer, Sluice, free_port, get, metric_value};

/// Runs the binary with `hosts` as its `/etc/hosts` (user + mount namespace: no root needed
/// where unprivileged user namespaces are allowed; CI runs as root).
fn with_hosts(dir: &Path) -> Vec<std::ffi::OsString> {
    let script = "mount --bind \"$0/hosts\" /etc/hosts && mount --bind \"$0/resolv.conf\" /etc/resolv.conf && exec \"$@\"";
    [
        "unshare",
        "--map-root-user",
        "--mount",
        "--",
        "sh",
        "-c",
        script,
    ]
    .iter()
    .map(Into::into)
    .chain([dir.as_os_str().to_owned()])
    .collect()
}

/// Rewrites the hosts file in place (a bind mount pins the inode: no rename).
fn set_hosts(dir: &Path, text: &str) {
    std::fs::write(dir.join("hosts"), text).unwrap();
}

/// The endpoints of the one pool that take new work.
fn serving(sluice: &Sluice) -> Vec<String> {
    let pools: serde_json::Value = serde_json::from_str(&sluice.admin_get("/pools")).unwrap();
    pools["pools"][0]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["draining"] == false)
        .map(|e| e["address"].as_str().unwrap().to_owned())
        .collect()
}

async fn backend_of(port: u16) -> String {
    get(port, "/", &[]).await.backend()
}

async fn wait_for_backend(port: u16, want: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if backend_of(port).await == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_name_endpoint_follows_the_name_and_keeps_its_last_good_address_when_lookups_fail() {
    let backend_port = free_port();
    let _a = EchoServer::start("a", format!("127.0.0.1:{backend_port}").parse().unwrap()).unwrap();
    let _b = EchoServer::start("b", format!("127.0.0.2:{backend_port}").parse().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    set_hosts(dir.path(), "127.0.0.1 api.test\n");
    std::fs::write(
        dir.path().join("resolv.conf"),
        "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
    )
    .unwrap();
    let port = free_port();
    let yaml = format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {{name: api, namespace: default}}\nspec:\n  listener: {{port: {port}}}\n  resolveEvery: 200ms\n  endpoints: [{{address: \"api.test:{backend_port}\"}}]\n"
    );
    let wrapper = with_hosts(dir.path());
    let wrapper: Vec<&OsStr> = wrapper.iter().map(|s| s.as_os_str()).collect();
    let sluice = Sluice::start_via(&wrapper, dir, &yaml, &[], &[]);
    let dir = sluice.dir.path().to_owned();

    assert_eq!(backend_of(port).await, "a", "resolved at load");

    set_hosts(&dir, "127.0.0.2 api.test\n");
    assert!(
        wait_for_backend(port, "b", Duration::from_secs(5)).await,
        "the new address serves within a few resolveEvery periods"
    );
    assert_eq!(
        serving(&sluice),
        [format!("127.0.0.2:{backend_port}")],
        "the old address only drains"
    );

    set_hosts(&dir, "");
    let failures = |m: &str| metric_value(m, "sluice_dns_resolutions_total{result=\"failure\"}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while failures(&sluice.admin_get("/metrics")).unwrap_or(0.0) < 1.0 {
        assert!(Instant::now() < deadline, "the failed lookup is counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..5 {
        assert_eq!(
            backend_of(port).await,
            "b",
            "the last good address keeps serving"
        );
    }
}
