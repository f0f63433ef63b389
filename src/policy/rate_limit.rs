//! `rateLimit`: a token bucket per key, kept as GCRA (the generic cell rate algorithm, what
//! the `governor` crate and nginx `limit_req` compute), per replica.
//!
//! GCRA keeps one number per key, the theoretical arrival time (TAT) of the next request:
//! with emission interval `T = 1 s / requestsPerSecond` and tolerance `tau = burst x T`, a
//! request at `now` is allowed when `max(TAT, now) + T <= now + tau`, and then moves TAT to
//! that value. A key whose TAT has passed is indistinguishable from a key never seen, which
//! is what makes the table boundable: such entries are dropped freely.
//!
//! The table is bounded: 64 shards (one `parking_lot` mutex each, held for a hash lookup),
//! [`MAX_KEYS`] entries in all. An idle sweep drops expired entries every 10 s of use; a full
//! shard first drops its expired entries, then, if that frees less than a quarter, the
//! quarter closest to expiry (they carry the least debt, so evicting them lets through the
//! least). An attacker rotating addresses therefore costs a fixed amount of memory and can
//! only evict keys that were about to expire anyway: 1,000,000 distinct keys leave about
//! 230,000 in the table and add 14 MiB of RSS (`rate_limit_memory_with_a_million_distinct_keys`).
//!
//! Keys are hashed with a per-table random seed (64-bit xxh3), so keys cost no allocation
//! and an attacker cannot aim hash collisions at the table or at another client's bucket.
//! Time is `tokio::time`, so tests run on the paused clock. This module does not decide
//! what a refusal looks like (429, `Retry-After`): the caller does.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::config::RateLimitConfig;

/// Shards of a table; a power of two.
const SHARDS: usize = 64;
/// Most keys tracked per rate-limited pool.
pub const MAX_KEYS: usize = 1 << 18;
const SHARD_CAP: usize = MAX_KEYS / SHARDS;
/// How often a shard that takes new keys drops its expired ones.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// What a request's bucket is chosen by.
#[derive(Debug, Clone, Copy)]
pub enum Key<'a> {
    /// A client address.
    Addr(IpAddr),
    /// A header value.
    Value(&'a [u8]),
    /// The one bucket of the pool.
    Pool,
}

/// The buckets of one pool; the table is allocated on the first rate-limited request, so
/// pools without `rateLimit` cost one empty cell.
#[derive(Debug, Default)]
pub struct RateLimiter {
    table: OnceLock<Box<Table>>,
}

#[derive(Debug)]
struct Table {
    seed: u64,
    epoch: Instant,
    shards: Box<[Mutex<Shard>]>,
}

#[derive(Debug, Default)]
struct Shard {
    /// Key hash -> TAT, nanoseconds since the table's epoch.
    tats: HashMap<u64, u64, BuildHasherDefault<KeyHasher>>,
    next_sweep: u64,
}

/// The keys are seeded hashes already: one multiply spreads them over the map's buckets
/// (the top bits chose the shard, so they must not be the only ones that vary).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        (self.0 ^ (self.0 >> 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl RateLimiter {
    /// Takes one request from `key`'s bucket at `now`: `Ok` when allowed, else how long
    /// until the next request of this key would be.
    pub fn check(
        &self,
        config: &RateLimitConfig,
        key: Key<'_>,
        now: Instant,
    ) -> Result<(), Duration> {
        let table = self.table.get_or_init(|| Box::new(Table::new(now)));
        table.check(config, key, now)
    }

    /// Keys tracked now (for tests and measurements).
    pub fn len(&self) -> usize {
        self.table
            .get()
            .map_or(0, |t| t.shards.iter().map(|s| s.lock().tats.len()).sum())
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Table {
    fn new(now: Instant) -> Table {
        Table {
            seed: fastrand::u64(..),
            // One second back, so that no TAT is ever 0 and `now` is never before the epoch.
            epoch: now.checked_sub(Duration::from_secs(1)).unwrap_or(now),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn hash(&self, key: Key<'_>) -> u64 {
        use xxhash_rust::xxh3::xxh3_64_with_seed;
        match key {
            Key::Addr(IpAddr::V4(a)) => xxh3_64_with_seed(&a.octets(), self.seed),
            Key::Addr(IpAddr::V6(a)) => xxh3_64_with_seed(&a.octets(), self.seed),
            Key::Value(v) => xxh3_64_with_seed(v, self.seed ^ 0x5555_5555_5555_5555),
            Key::Pool => self.seed,
        }
    }

    fn check(&self, config: &RateLimitConfig, key: Key<'_>, now: Instant) -> Result<(), Duration> {
        let now =
            u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        let interval = 1_000_000_000 / u64::from(config.requests_per_second.max(1));
        let tolerance = interval.saturating_mul(u64::from(config.burst.max(1)));
        let hash = self.hash(key);
        let mut shard = self.shards[(hash >> 58) as usize % SHARDS].lock();
        let tat = shard.tats.get(&hash).copied().unwrap_or(now).max(now);
        let next = tat.saturating_add(interval);
        if next - now > tolerance {
            return Err(Duration::from_nanos(next - tolerance - now));
        }
        match shard.tats.get_mut(&hash) {
            Some(t) => *t = next,
            None => {
                shard.make_room(now);
                shard.tats.insert(hash, next);
            }
        }
        Ok(())
    }
}

impl Shard {
    /// Before a new key goes in: the periodic sweep of expired keys, and eviction when full.
    fn make_room(&mut self, now: u64) {
        if now >= self.next_sweep {
            self.next_sweep = now.saturating_add(SWEEP_EVERY.as_nanos() as u64);
            self.tats.retain(|_, &mut tat| tat > now);
            if self.tats.capacity() > 64 && self.tats.len() < self.tats.capacity() / 4 {
                self.tats.shrink_to(self.tats.len() * 2);
            }
        }
        if self.tats.len() < SHARD_CAP {
            return;
        }
        self.tats.retain(|_, &mut tat| tat > now);
        if self.tats.len() > SHARD_CAP * 3 / 4 {
            // The quarter closest to expiry, estimated from a sample of 64 entries.
            let mut sample: Vec<u64> = self.tats.values().copied().take(64).collect();
            sample.sort_unstable();
            let cut = sample[sample.len() / 4];
            self.tats.retain(|_, &mut tat| tat > cut);
        }
    }
}

#[cfg(test)]
mod tests;
