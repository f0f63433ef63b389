use super::*;
use crate::config::load_text;

fn dataplane() -> Dataplane {
    Dataplane::new(
        Workers::start(1).expect("a worker"),
        DataplaneOptions {
            bind: IpAddr::from([127, 0, 0, 1]),
            access_log: None,
            spans: None,
            max_connections: 16,
            trusted_proxies: Arc::default(),
        },
    )
}

/// Two HTTP pools on `port`: `a` for `host`, `b` for `b.test`, each with one endpoint
/// on `endpoint_port`.
fn set(port: u16, host: &str, endpoint_port: u16) -> ConfigSet {
    let doc = |name: &str, host: &str| {
        format!(
            "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {{name: {name}, namespace: t}}\nspec: {{listener: {{port: {port}, hosts: [{host}]}}, endpoints: [{{address: \"198.18.0.1:{endpoint_port}\"}}]}}\n"
        )
    };
    let text = [doc("a", host), doc("b", "b.test")].join("---\n");
    load_text("pools.yaml", &text).expect("valid")
}

fn router(dp: &Dataplane, port: u16) -> Arc<Router<Arc<Target>>> {
    let state = dp.state.lock();
    let listener = state.ports[&port].http.as_ref().expect("an HTTP port");
    listener.router.load_full()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[tokio::test]
async fn an_endpoint_change_keeps_the_router_and_a_route_change_replaces_it() {
    let dp = dataplane();
    let port = free_port();
    dp.apply(&set(port, "a.test", 8080)).expect("applied");
    let first = router(&dp, port);

    dp.apply(&set(port, "a.test", 8081)).expect("applied");
    assert!(
        Arc::ptr_eq(&first, &router(&dp, port)),
        "only endpoints changed: the routes stay as built"
    );
    let a = dp.pools().iter().find(|p| p.name() == "t/a").cloned();
    let endpoints = &a.expect("pool a").snapshot().config.endpoints;
    assert_eq!(endpoints[0].address.port(), 8081, "the pool itself changed");

    dp.apply(&set(port, "other.test", 8081)).expect("applied");
    let rebuilt = router(&dp, port);
    assert!(
        !Arc::ptr_eq(&first, &rebuilt),
        "a host change rebuilds the routes"
    );
    assert!(rebuilt.find(Some("other.test"), "/").is_some());
    assert!(rebuilt.find(Some("a.test"), "/").is_none());
}

#[tokio::test]
async fn routes_of_another_front_end_share_the_pools_they_name() {
    use crate::config::{PathMatch, PathRegex, RouteConfig};
    let dp = dataplane();
    let port = free_port();
    let mut set = set(port, "a.test", 8080);
    // Two more routes on a.test, as an Ingress would add them: both to pool t/b.
    let extra = |path: PathMatch| {
        let mut route: RouteConfig = (*set.routes[1]).clone();
        route.owner = "ingress t/web".into();
        route.hosts = set.routes[0].hosts.clone();
        route.path = path;
        Arc::new(route)
    };
    let exact = extra(PathMatch::Exact("/login".into()));
    let regex = extra(PathMatch::Regex(
        PathRegex::new("/u/[0-9]+").expect("valid"),
    ));
    set.routes.extend([exact, regex]);
    dp.apply(&set).expect("applied");

    let r = router(&dp, port);
    let pool_of = |path: &str| {
        let target = r.find(Some("a.test"), path).expect("routed");
        target.pools().next().expect("a backend").clone()
    };
    let b = dp.pools().iter().find(|p| p.name() == "t/b").cloned();
    let b = b.expect("pool b");
    assert!(Arc::ptr_eq(&pool_of("/login"), &b), "exact route to t/b");
    assert!(Arc::ptr_eq(&pool_of("/u/7"), &b), "regex route to t/b");
    assert_eq!(
        pool_of("/login/x").name(),
        "t/a",
        "below the exact path: the prefix"
    );
    assert_eq!(pool_of("/u/x").name(), "t/a");
    assert!(
        Arc::ptr_eq(
            &r.find(Some("b.test"), "/")
                .expect("routed")
                .pools()
                .next()
                .expect("b")
                .clone(),
            &b
        ),
        "b's own route and the extra routes use one pool, so one health checker"
    );
}

#[tokio::test]
async fn a_change_that_cannot_bind_a_new_port_changes_nothing() {
    let dp = dataplane();
    let port = free_port();
    dp.apply(&set(port, "a.test", 8080)).expect("applied");
    let before = router(&dp, port);

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to occupy");
    let busy = taken.local_addr().expect("its address").port();
    let mut next = set(port, "changed.test", 9090);
    let text = format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {{name: c, namespace: t}}\nspec: {{listener: {{port: {busy}}}, endpoints: []}}\n"
    );
    let extra = load_text("more.yaml", &text).expect("valid");
    next.pools.extend(extra.pools);
    next.routes.extend(extra.routes);
    next.listeners.extend(extra.listeners);

    let err = dp
        .apply(&next)
        .expect_err("the busy port refuses the change");
    assert!(
        matches!(err, ApplyError::Bind { ref pool, .. } if pool == "t/c"),
        "{err}"
    );
    assert_eq!(dp.ports(), vec![port], "no port was added");
    assert!(Arc::ptr_eq(&before, &router(&dp, port)), "routes unchanged");
    let a = dp.pools().iter().find(|p| p.name() == "t/a").cloned();
    let endpoints = &a.expect("pool a").snapshot().config.endpoints;
    assert_eq!(endpoints[0].address.port(), 8080, "pools unchanged");
    assert!(dp.pools().iter().all(|p| p.name() != "t/c"));
}

/// A pool with no endpoints on `port` (its requests get a quick local 503).
fn empty_pool(name: &str, port: u16) -> String {
    format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {{name: {name}, namespace: t}}\nspec: {{listener: {{port: {port}}}, endpoints: []}}\n"
    )
}

/// Opens a connection to `port`, has one request answered, and returns it (idle).
async fn answered_connection(port: u16) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connected");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .expect("sent");
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).await.expect("answered");
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    stream
}

#[tokio::test]
async fn an_idle_connection_closes_at_once_when_its_port_is_removed_and_others_stay_open() {
    use tokio::io::AsyncReadExt;
    let dp = dataplane();
    let (gone, kept) = (free_port(), free_port());
    let both = [empty_pool("a", gone), empty_pool("b", kept)].join("---\n");
    dp.apply(&load_text("pools.yaml", &both).expect("valid"))
        .expect("applied");
    let mut on_gone = answered_connection(gone).await;
    let mut on_kept = answered_connection(kept).await;

    let one = empty_pool("b", kept);
    dp.apply(&load_text("pools.yaml", &one).expect("valid"))
        .expect("applied");
    let mut buf = [0u8; 64];
    // Well under the worker's one-second idle sweep: the drain itself wakes it.
    let closed = tokio::time::timeout(Duration::from_millis(500), on_gone.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the removed port's idle connection is still open: {closed:?}"
    );
    let still = tokio::time::timeout(Duration::from_millis(300), on_kept.read(&mut buf)).await;
    assert!(
        still.is_err(),
        "the kept port's idle connection ended: {still:?}"
    );
    drop(on_kept);
    answered_connection(kept).await;
}
