//! The controller's cost per watch event: turning N BackendPools, their Services and
//! EndpointSlices (two endpoints each, one host per pool on one port, as in
//! `tests/kube_scale.rs`) into the desired configuration: from scratch (the first
//! rebuild after start) and with the controller's persistent index after one
//! EndpointSlice changed (what every coalesced burst of events pays at steady state,
//! before the data plane applies the result).
//!
//! Run with `cargo bench --bench controller`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;
use sluice::api::BackendPool;
use sluice::controller::index::{self, Objects};

/// `n` pools with their Services and slices, as the reflectors would hold them.
fn objects(n: usize) -> Objects {
    let mut o = Objects::default();
    for i in 0..n {
        let name = format!("s{i}");
        o.services.push(Arc::new(
            serde_json::from_value::<Service>(json!({
                "metadata": {"name": name, "namespace": "scale"},
                "spec": {"ports": [{"name": "http", "port": 80}]},
            }))
            .expect("a Service"),
        ));
        let mut labels = BTreeMap::new();
        labels.insert(index::SERVICE_NAME_LABEL, name.clone());
        o.slices.push(Arc::new(
            serde_json::from_value::<EndpointSlice>(json!({
                "metadata": {"name": format!("{name}-x"), "namespace": "scale", "labels": labels},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080}],
                "endpoints": [
                    {"addresses": [format!("10.{}.{}.1", i / 250, i % 250)], "conditions": {"ready": true}},
                    {"addresses": [format!("10.{}.{}.2", i / 250, i % 250)], "conditions": {"ready": true}},
                ],
            }))
            .expect("an EndpointSlice"),
        ));
        o.pools.push(Arc::new(
            serde_json::from_value::<BackendPool>(json!({
                "apiVersion": "sluice.dev/v1alpha1", "kind": "BackendPool",
                "metadata": {"name": format!("p{i}"), "namespace": "scale"},
                "spec": {"listener": {"port": 8080, "hosts": [format!("p{i}.scale.test")]},
                         "service": {"name": name, "port": "http"}},
            }))
            .expect("a BackendPool"),
        ));
    }
    o
}

fn desired(c: &mut Criterion) {
    let mut g = c.benchmark_group("controller_desired");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_millis(500));
    for n in [1_000, 10_000] {
        let o = objects(n);
        assert_eq!(index::desired(&o).set.pools.len(), n, "every pool accepted");
        g.bench_with_input(BenchmarkId::from_parameter(n), &o, |b, o| {
            b.iter(|| index::desired(black_box(o)))
        });
    }
    g.finish();
}

/// One EndpointSlice changed among `n` pools, rebuilt by the controller's persistent
/// index: the per-event cost at steady state.
fn incremental(c: &mut Criterion) {
    let mut g = c.benchmark_group("controller_one_slice_changed");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_millis(500));
    for n in [1_000, 10_000] {
        let mut o = objects(n);
        let mut index = index::Index::default();
        index.desired(&o);
        let mut k = 0;
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                k = (k + 7) % n;
                let mut changed = (*o.slices[k]).clone();
                if let Some(eps) = changed.endpoints.as_mut() {
                    eps.rotate_left(1);
                }
                o.slices[k] = Arc::new(changed);
                index.desired(black_box(&o))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, desired, incremental);
criterion_main!(benches);
