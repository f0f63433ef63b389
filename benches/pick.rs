//! Cost of one `Balancer::pick` for every algorithm over 3, 100 and 10,000 endpoints,
//! plus the cost of building the balancers that precompute (WRR schedule, Maglev table),
//! which a pool pays on every snapshot rebuild.
//!
//! Run with `cargo bench --bench pick`; measurement windows are short so the whole run
//! takes about a minute.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sluice::balance::{self, PickContext};
use sluice::config::{Algorithm, HashKey};
use sluice::pool::Endpoint;

const SIZES: [usize; 3] = [3, 100, 10_000];

fn algorithms() -> [(&'static str, Algorithm); 6] {
    [
        ("RoundRobin", Algorithm::RoundRobin),
        ("WeightedRoundRobin", Algorithm::WeightedRoundRobin),
        ("LeastConnections", Algorithm::LeastConnections),
        ("PowerOfTwoChoices", Algorithm::PowerOfTwoChoices),
        (
            "ConsistentHash",
            Algorithm::ConsistentHash(HashKey::ClientIp),
        ),
        ("Random", Algorithm::Random),
    ]
}

/// `n` distinct endpoints with weights 1..=5.
fn endpoints(n: usize) -> Vec<Arc<Endpoint>> {
    (0..n)
        .map(|i| {
            let addr = format!("10.{}.{}.{}:8080", (i >> 16) & 255, (i >> 8) & 255, i & 255)
                .parse()
                .expect("a valid socket address");
            Arc::new(Endpoint::new(addr, 1 + (i % 5) as u32))
        })
        .collect()
}

fn pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    for (name, algorithm) in algorithms() {
        for n in SIZES {
            let eps = endpoints(n);
            let balancer = balance::build(&algorithm, &eps);
            let usable = |_: &Endpoint| true;
            let mut key = 0u64;
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    // A different key each time, as different clients would send.
                    key = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
                    let ctx = PickContext {
                        hash: Some(key),
                        usable: &usable,
                    };
                    black_box(balancer.pick(black_box(&eps), &ctx))
                })
            });
        }
    }
    group.finish();
}

fn build(c: &mut Criterion) {
    let mut group = c.benchmark_group("build");
    group.sample_size(10);
    let eps = endpoints(10_000);
    for (name, algorithm) in [
        ("WeightedRoundRobin", Algorithm::WeightedRoundRobin),
        (
            "ConsistentHash",
            Algorithm::ConsistentHash(HashKey::ClientIp),
        ),
    ] {
        group.bench_with_input(BenchmarkId::new(name, eps.len()), &eps, |b, eps| {
            b.iter(|| black_box(balance::build(&algorithm, eps)))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = pick, build
}
criterion_main!(benches);
