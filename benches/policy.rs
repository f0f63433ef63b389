//! Cost of the access policies on the request path: one address-list lookup in lists of
//! 10, 1,000 and 10,000 CIDRs (IPv4 and IPv6, hits and misses), one rate-limit check, and
//! the client address from a trusted proxy's `X-Forwarded-For`.
//!
//! Run with `cargo bench --bench policy` (about 20 s).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sluice::config::{RateLimitConfig, RateLimitKey};
use sluice::policy::{Cidr, IpSet, RateLimiter, TrustedProxies, rate_limit::Key};

/// `n` networks: three quarters IPv4 of lengths 16..=32, a quarter IPv6 /48s, spread so the
/// trie has real depth (what a country-block or cloud-range list looks like).
fn networks(n: usize) -> Vec<Cidr> {
    let mut rng = fastrand::Rng::with_seed(7);
    (0..n)
        .map(|i| {
            if i % 4 == 3 {
                let addr = Ipv6Addr::from(
                    0x2001_0db8_0000_0000_0000_0000_0000_0000u128 | (u128::from(rng.u32(..)) << 80),
                );
                Cidr::parse(&format!("{addr}/48")).expect("a /48 with its host bits clear")
            } else {
                let len = rng.u8(16..=32);
                let bits = rng.u32(..) & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                Cidr::parse(&format!("{}/{len}", Ipv4Addr::from(bits))).expect("a masked network")
            }
        })
        .collect()
}

fn address_lists(c: &mut Criterion) {
    let mut group = c.benchmark_group("ip_list_contains");
    for n in [10, 1_000, 10_000] {
        let cidrs = networks(n);
        let set = IpSet::new(cidrs.iter().copied());
        let hit_v4 = cidrs
            .iter()
            .find(|c| c.addr.is_ipv4())
            .expect("an IPv4 network")
            .addr;
        let hit_v6 = cidrs
            .iter()
            .find(|c| c.addr.is_ipv6())
            .map_or(IpAddr::V6(Ipv6Addr::LOCALHOST), |c| c.addr);
        let miss_v4 = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
        let miss_v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        for (name, addr) in [
            ("v4_hit", hit_v4),
            ("v4_miss", miss_v4),
            ("v6_hit", hit_v6),
            ("v6_miss", miss_v6),
        ] {
            group.bench_with_input(BenchmarkId::new(name, n), &addr, |b, &addr| {
                b.iter(|| set.contains(black_box(addr)))
            });
        }
    }
    group.finish();
}

fn rate_limit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _guard = rt.enter();
    let limiter = RateLimiter::default();
    let config = RateLimitConfig {
        requests_per_second: 1_000_000,
        burst: 1_000_000,
        key: RateLimitKey::ClientIp,
    };
    let now = tokio::time::Instant::now();
    let mut n = 0u32;
    c.bench_function("rate_limit_check_10k_clients", |b| {
        b.iter(|| {
            n = (n + 1) % 10_000;
            let key = Key::Addr(IpAddr::V4(Ipv4Addr::from(n)));
            black_box(limiter.check(&config, key, now))
        })
    });
}

fn client_address(c: &mut Criterion) {
    let trusted = TrustedProxies(IpSet::new(
        ["10.0.0.0/8", "192.168.0.0/16"].map(|c| Cidr::parse(c).expect("a CIDR")),
    ));
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "x-forwarded-for",
        http::HeaderValue::from_static("203.0.113.9, 10.1.2.3"),
    );
    let peer = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    c.bench_function("client_address_two_hops", |b| {
        b.iter(|| trusted.client(black_box(peer), black_box(&headers)))
    });
    let untrusted = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1));
    c.bench_function("client_address_untrusted_peer", |b| {
        b.iter(|| trusted.client(black_box(untrusted), black_box(&headers)))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = address_lists, rate_limit, client_address
}
criterion_main!(benches);
