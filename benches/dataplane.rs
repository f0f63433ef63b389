//! Control-path costs that bound how fast configuration changes reach traffic:
//! route lookup (host + path) among 1,000 and 10,000 routes, building a port's router of
//! 10,000 routes, publishing a snapshot of a pool with 10,000 endpoints, and validating +
//! applying 1,000 pools to their runtime state.
//!
//! Run with `cargo bench --bench dataplane`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use sluice::api::BackendPool;
use sluice::config::{self, HostMatch, PathMatch, PathRegex, RequestMatch, Source};
use sluice::pool::Pool;
use sluice::route::router::{RouteInput, Router};

/// `n` BackendPool documents: HTTP pools sharing port 8080 by host (10 paths per host),
/// each with `eps` endpoints.
fn documents(n: usize, eps: usize) -> Vec<BackendPool> {
    (0..n)
        .map(|i| {
            let endpoints: String = (0..eps)
                .map(|e| format!("{{address: \"10.{}.{}.{}:{}\"}},", i % 250, e / 250, e % 250 + 1, 8000 + i / 250))
                .collect();
            let yaml = format!(
                "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {{name: p{i}, namespace: bench}}\nspec: {{listener: {{port: 8080, hosts: [h{}.example.com], pathPrefix: /api/v{}}}, endpoints: [{endpoints}]}}\n",
                i / 10,
                i % 10
            );
            serde_norway::from_str(&yaml).expect("a valid document")
        })
        .collect()
}

fn route_lookup(c: &mut Criterion) {
    let set = config::validate(&Source::Kubernetes, &documents(1_000, 1)).expect("valid");
    let mut router = Router::default();
    for cfg in &set.pools {
        router.add(
            &cfg.listener.hosts,
            &cfg.listener.path_prefix,
            Arc::new(Pool::new(cfg.clone())),
        );
    }
    router.add(
        &[HostMatch::Wildcard(".example.com".into())],
        "/",
        Arc::new(Pool::new(set.pools[0].clone())),
    );
    let mut g = c.benchmark_group("route_lookup_1000_routes");
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    g.bench_function("exact_host_and_prefix", |b| {
        b.iter(|| {
            router.find(
                black_box(Some("H57.example.com:8080")),
                black_box("/api/v7/items/42"),
            )
        })
    });
    g.bench_function("wildcard_fallback", |b| {
        b.iter(|| router.find(black_box(Some("other.example.com")), black_box("/x")))
    });
    g.finish();
}

/// A router of `hosts` x `paths` routes (one pool shared: lookup cost does not depend on
/// which pool a route names): every tenth route with a header condition, every tenth a
/// regular expression (1,000 of 10,000).
fn big_router(hosts: usize, paths: usize, pool: &Arc<Pool>) -> Router<Arc<Pool>> {
    let canary = RequestMatch {
        headers: vec![(
            http::HeaderName::from_static("x-canary"),
            http::HeaderValue::from_static("1"),
        )],
        ..RequestMatch::default()
    };
    // Compiled once, as validation does; the router shares the compiled expressions.
    let paths: Vec<PathMatch> = (0..paths)
        .map(|p| match p % 10 {
            8 => PathMatch::Regex(PathRegex::new(&format!("/re{p}/[0-9]+")).expect("valid")),
            _ => PathMatch::Prefix(format!("/svc{p}/api")),
        })
        .collect();
    let mut router = Router::default();
    for h in 0..hosts {
        let host = [HostMatch::Exact(format!("h{h}.example.com"))];
        for (p, path) in paths.iter().enumerate() {
            let matches = if p % 10 == 9 {
                canary.clone()
            } else {
                RequestMatch::default()
            };
            router.add_route(&host, path, &matches, pool.clone());
        }
    }
    router.seal()
}

fn routing_at_scale(c: &mut Criterion) {
    let set = config::validate(&Source::Kubernetes, &documents(1, 1)).expect("valid");
    let pool = Arc::new(Pool::new(set.pools[0].clone()));
    let hosts_x_paths = big_router(1_000, 10, &pool);
    let one_host = big_router(1, 10_000, &pool);
    let headers = http::HeaderMap::new();
    let lookup = |router: &Router<Arc<Pool>>, host: &'static str, path: &'static str| {
        let found = router.route(&RouteInput {
            host: black_box(Some(host)),
            path: black_box(path),
            query: None,
            method: &http::Method::GET,
            headers: &headers,
        });
        assert!(found.is_some(), "{host}{path} is routed");
    };
    let mut g = c.benchmark_group("routing_10000_routes");
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    g.bench_function("lookup_host_x_path", |b| {
        b.iter(|| lookup(&hosts_x_paths, "h517.example.com", "/svc7/api/items/42"))
    });
    g.bench_function("lookup_host_x_regex_path", |b| {
        b.iter(|| lookup(&hosts_x_paths, "h517.example.com", "/re8/42"))
    });
    g.bench_function("lookup_one_host_10000_paths", |b| {
        b.iter(|| lookup(&one_host, "h0.example.com", "/svc7777/api/items/42"))
    });
    g.bench_function("lookup_one_host_10000_paths_regex", |b| {
        b.iter(|| lookup(&one_host, "h0.example.com", "/re7778/42"))
    });
    g.bench_function("build_1000_hosts_x_10_paths", |b| {
        b.iter(|| big_router(1_000, 10, &pool))
    });
    g.sample_size(10);
    g.bench_function("build_1_host_x_10000_paths", |b| {
        b.iter(|| big_router(1, 10_000, &pool))
    });
    g.finish();
}

fn snapshot_publish(c: &mut Criterion) {
    let set = config::validate(&Source::Kubernetes, &documents(1, 10_000)).expect("valid");
    let pool = Pool::new(set.pools[0].clone());
    let mut g = c.benchmark_group("snapshot_publish_10000_endpoints");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    g.bench_function("round_robin_refresh", |b| b.iter(|| pool.refresh()));
    g.finish();
}

fn config_apply(c: &mut Criterion) {
    let docs = documents(1_000, 3);
    let mut g = c.benchmark_group("config_1000_pools");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    g.bench_function("validate", |b| {
        b.iter(|| config::validate(&Source::Kubernetes, black_box(&docs)))
    });
    let set = config::validate(&Source::Kubernetes, &docs).expect("valid");
    let pools: Vec<Pool> = set.pools.iter().map(|c| Pool::new(c.clone())).collect();
    g.bench_function("update_pools_in_place", |b| {
        b.iter(|| {
            for (pool, cfg) in pools.iter().zip(&set.pools) {
                pool.update(cfg.clone());
            }
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    route_lookup,
    routing_at_scale,
    snapshot_publish,
    config_apply
);
criterion_main!(benches);
