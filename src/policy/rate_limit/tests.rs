use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::config::RateLimitKey;

fn limit(rps: u32, burst: u32) -> RateLimitConfig {
    RateLimitConfig {
        requests_per_second: rps,
        burst,
        key: RateLimitKey::ClientIp,
    }
}

fn addr(n: u32) -> Key<'static> {
    Key::Addr(IpAddr::V4(Ipv4Addr::from(n)))
}

#[test]
fn a_full_bucket_allows_the_burst_then_one_request_per_interval() {
    let l = RateLimiter::default();
    let c = limit(10, 3);
    let t0 = Instant::now();
    for _ in 0..3 {
        assert!(l.check(&c, addr(1), t0).is_ok());
    }
    let wait = l.check(&c, addr(1), t0).unwrap_err();
    assert_eq!(wait, Duration::from_millis(100));
    assert!(
        l.check(&c, addr(1), t0 + Duration::from_millis(99))
            .is_err()
    );
    assert!(
        l.check(&c, addr(1), t0 + Duration::from_millis(100))
            .is_ok()
    );
    assert!(
        l.check(&c, addr(1), t0 + Duration::from_millis(100))
            .is_err()
    );
    // Idle for a second refills the bucket to the burst, no more.
    let later = t0 + Duration::from_secs(2);
    assert_eq!(
        (0..10)
            .filter(|_| l.check(&c, addr(1), later).is_ok())
            .count(),
        3
    );
}

#[test]
fn each_key_has_its_own_bucket_and_the_pool_key_one_for_all() {
    let l = RateLimiter::default();
    let c = limit(1, 1);
    let t0 = Instant::now();
    assert!(l.check(&c, addr(1), t0).is_ok());
    assert!(l.check(&c, addr(1), t0).is_err());
    assert!(l.check(&c, addr(2), t0).is_ok());
    let v6 = Key::Addr(IpAddr::V6(Ipv6Addr::LOCALHOST));
    assert!(l.check(&c, v6, t0).is_ok());
    assert!(l.check(&c, Key::Value(b"alice"), t0).is_ok());
    assert!(l.check(&c, Key::Value(b"alice"), t0).is_err());
    assert!(l.check(&c, Key::Value(b"bob"), t0).is_ok());
    assert!(l.check(&c, Key::Pool, t0).is_ok());
    assert!(l.check(&c, Key::Pool, t0).is_err());
}

#[test]
fn rotating_keys_never_grow_the_table_past_its_cap() {
    let l = RateLimiter::default();
    // One request per key per minute: every key stays live for a minute, so only the cap
    // (and eviction of the keys closest to expiry) bounds the table.
    let c = RateLimitConfig {
        requests_per_second: 1,
        burst: 60,
        key: RateLimitKey::ClientIp,
    };
    let t0 = Instant::now();
    for n in 0..(MAX_KEYS as u32 * 2) {
        let now = t0 + Duration::from_micros(u64::from(n));
        assert!(l.check(&c, addr(n), now).is_ok());
    }
    assert!(l.len() <= MAX_KEYS, "{} keys", l.len());
    assert!(l.len() >= MAX_KEYS / 2, "{} keys", l.len());
    // A key that is being limited survives the churn: its debt is the largest.
    let hot = addr(u32::MAX);
    let now = t0 + Duration::from_secs(1);
    while l.check(&c, hot, now).is_ok() {}
    for n in 0..(MAX_KEYS as u32) {
        let _ = l.check(
            &c,
            addr(n + 10_000_000),
            now + Duration::from_micros(u64::from(n)),
        );
    }
    assert!(l.check(&c, hot, now + Duration::from_millis(500)).is_err());
}

#[test]
fn idle_keys_are_dropped_once_their_bucket_is_full_again() {
    let l = RateLimiter::default();
    let c = limit(100, 100);
    let t0 = Instant::now();
    for n in 0..10_000 {
        let _ = l.check(&c, addr(n), t0);
    }
    assert_eq!(l.len(), 10_000);
    // Eleven seconds later every bucket is full again: the next new keys sweep them out.
    let later = t0 + Duration::from_secs(11);
    for n in 0..10_000 {
        let _ = l.check(&c, addr(n + 1_000_000), later);
    }
    assert!(l.len() < 10_000 + 1_000, "{} keys", l.len());
}

/// Sends `2 x rps` requests per second for ten seconds on the paused clock and counts the
/// accepted ones.
async fn accepted_at_twice_the_rate(rps: u32, burst: u32) -> u64 {
    let l = RateLimiter::default();
    let c = limit(rps, burst);
    let gap = Duration::from_secs(1) / (rps * 2);
    let end = Instant::now() + Duration::from_secs(10);
    let mut accepted = 0;
    while Instant::now() < end {
        if l.check(&c, addr(7), Instant::now()).is_ok() {
            accepted += 1;
        }
        // `advance`, not `sleep`: timers are rounded to whole milliseconds, the clock is not.
        tokio::time::advance(gap).await;
    }
    accepted
}

#[tokio::test(start_paused = true)]
async fn at_twice_the_limit_for_ten_seconds_accepted_is_within_5_percent_of_rate_x_10_plus_burst() {
    for (rps, burst) in [(100, 100), (100, 20), (7, 1), (1000, 50), (3, 30)] {
        let expected = f64::from(rps * 10 + burst);
        let got = accepted_at_twice_the_rate(rps, burst).await as f64;
        let error = (got - expected).abs() / expected;
        println!(
            "rps {rps} burst {burst}: accepted {got} of {expected} ({:.2}% off)",
            error * 100.0
        );
        assert!(
            error <= 0.05,
            "rps {rps} burst {burst}: accepted {got}, expected {expected} ({:.1}% off)",
            error * 100.0
        );
    }
}

/// The resident memory of 1M distinct keys (an address-rotating client). Run alone:
/// `cargo test --release --lib rate_limit_memory -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement: run alone, it reads the process's RSS"]
#[allow(clippy::disallowed_types)] // wall-clock time of the measurement itself
fn rate_limit_memory_with_a_million_distinct_keys() {
    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
    let before = rss_kib();
    let l = RateLimiter::default();
    let c = RateLimitConfig {
        requests_per_second: 1,
        burst: 3600,
        key: RateLimitKey::ClientIp,
    };
    let t0 = Instant::now();
    let start = std::time::Instant::now();
    for n in 0..1_000_000u32 {
        let _ = l.check(&c, addr(n), t0 + Duration::from_micros(u64::from(n)));
    }
    let took = start.elapsed();
    let after = rss_kib();
    println!(
        "1,000,000 distinct keys: {} keys kept (cap {MAX_KEYS}), RSS +{} KiB, {:.0} ns per check",
        l.len(),
        after.saturating_sub(before),
        took.as_nanos() as f64 / 1e6
    );
    assert!(l.len() <= MAX_KEYS);
}
