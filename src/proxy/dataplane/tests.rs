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

fn router(dp: &Dataplane, port: u16) -> Arc<Router> {
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
