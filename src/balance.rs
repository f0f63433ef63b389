//! Load-balancing algorithms, one file each, behind one small trait.
//!
//! A balancer is built once per pool snapshot from the endpoints that may take new work
//! (healthy, not ejected, not draining), so it can precompute (Maglev table, smooth WRR
//! schedule). `pick` is on the request path: no allocation, no lock beyond what an
//! algorithm's own state strictly needs, and it must honour `usable` (an endpoint at its
//! connection limit, or the one a retry is moving away from, is skipped).

use std::sync::Arc;

use crate::config::Algorithm;
use crate::pool::Endpoint;

mod consistent_hash;
mod least_connections;
mod p2c;
mod random;
mod round_robin;
mod weighted_round_robin;

#[cfg(test)]
mod testing;

pub use consistent_hash::ConsistentHash;
pub use least_connections::LeastConnections;
pub use p2c::PowerOfTwoChoices;
pub use random::Random;
pub use round_robin::RoundRobin;
pub use weighted_round_robin::WeightedRoundRobin;

/// Per-request input to a pick.
pub struct PickContext<'a> {
    /// Hash of the request key (ConsistentHash); `None` when the request has no key.
    pub hash: Option<u64>,
    /// Endpoints for which this returns false must not be picked.
    pub usable: &'a dyn Fn(&Endpoint) -> bool,
}

impl PickContext<'_> {
    /// A context that accepts every endpoint and carries no hash.
    pub fn any() -> PickContext<'static> {
        PickContext {
            hash: None,
            usable: &|_| true,
        }
    }
}

/// A load-balancing algorithm over a fixed endpoint list.
pub trait Balancer: Send + Sync + std::fmt::Debug {
    /// Index into `endpoints` (the same slice the balancer was built with) of the chosen
    /// endpoint, or `None` when no endpoint is usable.
    fn pick(&self, endpoints: &[Arc<Endpoint>], ctx: &PickContext<'_>) -> Option<usize>;
}

/// Builds the balancer for `algorithm` over `endpoints`.
pub fn build(algorithm: &Algorithm, endpoints: &[Arc<Endpoint>]) -> Box<dyn Balancer> {
    match algorithm {
        Algorithm::RoundRobin => Box::new(RoundRobin::new(endpoints)),
        Algorithm::WeightedRoundRobin => Box::new(WeightedRoundRobin::new(endpoints)),
        Algorithm::LeastConnections => Box::new(LeastConnections::new(endpoints)),
        Algorithm::PowerOfTwoChoices => Box::new(PowerOfTwoChoices::new(endpoints)),
        Algorithm::ConsistentHash(_) => Box::new(ConsistentHash::new(endpoints)),
        Algorithm::Random => Box::new(Random::new(endpoints)),
    }
}

/// Hashes a client address for ClientIP hashing and affinity, HTTP and TCP alike, without
/// allocating: the octets of the address (IPv4-mapped IPv6 as IPv4).
pub fn hash_ip(ip: std::net::IpAddr) -> u64 {
    match ip {
        std::net::IpAddr::V4(v4) => hash_key(&v4.octets()),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => hash_key(&v4.octets()),
            None => hash_key(&v6.octets()),
        },
    }
}

/// Hashes a request key (header value, cookie value, client IP bytes) for ConsistentHash.
pub fn hash_key(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HashKey;
    use proptest::prelude::*;

    fn algorithms() -> [Algorithm; 6] {
        [
            Algorithm::RoundRobin,
            Algorithm::WeightedRoundRobin,
            Algorithm::LeastConnections,
            Algorithm::PowerOfTwoChoices,
            Algorithm::ConsistentHash(HashKey::ClientIp),
            Algorithm::Random,
        ]
    }

    #[test]
    fn an_ipv4_client_hashes_the_same_seen_as_ipv4_or_ipv4_mapped_ipv6() {
        let v4: std::net::IpAddr = "203.0.113.7".parse().unwrap();
        let mapped: std::net::IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(hash_ip(v4), hash_ip(mapped));
        assert_ne!(hash_ip(v4), hash_ip("203.0.113.8".parse().unwrap()));
    }

    proptest! {
        /// The invariant every balancer keeps: never an unusable endpoint, and `None` only
        /// when no endpoint is usable.
        #[test]
        fn no_balancer_picks_an_unusable_endpoint(
            members in prop::collection::vec((1u32..=1000, any::<bool>(), 0u32..5), 0..24),
            hashes in prop::collection::vec(any::<Option<u64>>(), 1..16),
        ) {
            let eps = testing::weighted(&members.iter().map(|m| m.0).collect::<Vec<_>>());
            for (ep, m) in eps.iter().zip(&members) {
                for _ in 0..m.2 {
                    std::mem::forget(ep.begin());
                }
            }
            let usable = |e: &Endpoint| {
                eps.iter().position(|p| std::ptr::eq(&**p, e)).is_some_and(|i| members[i].1)
            };
            for algorithm in algorithms() {
                let balancer = build(&algorithm, &eps);
                for &hash in &hashes {
                    let ctx = PickContext { hash, usable: &usable };
                    match balancer.pick(&eps, &ctx) {
                        Some(i) => prop_assert!(members[i].1, "{algorithm:?} picked unusable {i}"),
                        None => prop_assert!(members.iter().all(|m| !m.1), "{algorithm:?} found nothing"),
                    }
                }
            }
        }
    }
}
