//! ConsistentHash: Maglev hashing (Eisenbud et al., NSDI 2016) on a request key.
//!
//! Each endpoint derives a permutation of the `M` table slots from its address
//! (`offset`, `skip` from xxh3 with two seeds; `M` is prime so every `skip` visits every
//! slot). Endpoints take turns claiming their next free preferred slot until the table is
//! full. A pick is one table lookup, `table[hash % M]`: O(1), no lock, no allocation.
//!
//! Why Maglev rather than a hash ring: near-perfect balance (each endpoint owns `M/n`
//! slots, plus or minus one) with O(1) lookups, and minimal disruption: when one of `n`
//! endpoints leaves, about `1/n` of the keys move, almost all of them keys the departed
//! endpoint owned. `M` is a prime at least `100 * n` (from a short list, 65,537 up to
//! 2,097,143), which the paper shows keeps disruption small.
//!
//! The table depends only on the set of (address, weight) pairs: endpoints are sorted by
//! address before filling, so the order the pool lists them in does not matter and every
//! rebuild (and every sluice replica) maps a key to the same endpoint. Entries hold
//! indices into the slice the balancer was built from.
//!
//! Weights are honoured: in each round of turns an endpoint earns `weight` credits and
//! claims a slot per `max_weight` credits, so its share of slots, and of keys, is
//! proportional to its weight. With equal weights this is plain Maglev.
//!
//! A request without a key gets a random slot. When the owner of a key's slot is unusable,
//! the following slots are tried (their owners are spread over the pool, so one
//! endpoint's keys do not all land on one neighbour), then every endpoint in order.

use std::sync::Arc;

use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::round_robin::scan_from;
use super::{Balancer, PickContext};
use crate::pool::Endpoint;

/// Candidate table sizes, all prime; the first that is at least `100 * n` is used.
const TABLE_SIZES: [u64; 6] = [65_537, 131_071, 262_139, 524_287, 1_048_573, 2_097_143];
/// Seed of the hash giving an endpoint's first preferred slot.
const OFFSET_SEED: u64 = 0x5eed_0ff5;
/// Seed of the hash giving an endpoint's stride through the table.
const SKIP_SEED: u64 = 0x5eed_5c1b;
/// Slots tried after an unusable owner before scanning endpoints in order.
const PROBES: usize = 16;
/// Marks a slot not yet claimed while the table is filled.
const EMPTY: u32 = u32::MAX;

/// Maglev consistent-hash balancer keyed by [`PickContext::hash`].
#[derive(Debug)]
pub struct ConsistentHash {
    /// Slot -> index into the endpoint slice; empty when there are no endpoints.
    table: Box<[u32]>,
}

impl ConsistentHash {
    /// Builds the Maglev table over `endpoints` (O(M log M) typical).
    pub fn new(endpoints: &[Arc<Endpoint>]) -> Self {
        ConsistentHash {
            table: populate(endpoints),
        }
    }
}

impl Balancer for ConsistentHash {
    fn pick(&self, endpoints: &[Arc<Endpoint>], ctx: &PickContext<'_>) -> Option<usize> {
        let m = self.table.len();
        if m == 0 || endpoints.is_empty() {
            return None;
        }
        let hash = ctx.hash.unwrap_or_else(|| fastrand::u64(..));
        let slot = (hash % m as u64) as usize;
        for j in 0..PROBES {
            let i = self.table[(slot + j) % m] as usize;
            if endpoints.get(i).is_some_and(|e| (ctx.usable)(e)) {
                return Some(i);
            }
        }
        let owner = self.table[slot] as usize;
        scan_from(endpoints, (owner + 1) % endpoints.len(), ctx)
    }
}

fn table_size(n: usize) -> u64 {
    let wanted = (n as u64).saturating_mul(100);
    TABLE_SIZES
        .iter()
        .copied()
        .find(|&m| m >= wanted)
        .unwrap_or(TABLE_SIZES[TABLE_SIZES.len() - 1])
}

/// Maglev's population, with weighted turns.
fn populate(endpoints: &[Arc<Endpoint>]) -> Box<[u32]> {
    if endpoints.is_empty() {
        return Box::default();
    }
    let m = table_size(endpoints.len());
    let mut order: Vec<usize> = (0..endpoints.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&endpoints[a], &endpoints[b]);
        (a.label(), a.weight()).cmp(&(b.label(), b.weight()))
    });
    struct Turns {
        index: u32,
        weight: u64,
        credit: u64,
        next: u64,
        skip: u64,
    }
    let mut turns: Vec<Turns> = order
        .iter()
        .map(|&i| {
            let name = endpoints[i].label().as_bytes();
            Turns {
                index: u32::try_from(i).unwrap_or(EMPTY - 1),
                weight: u64::from(endpoints[i].weight().max(1)),
                credit: 0,
                next: xxh3_64_with_seed(name, OFFSET_SEED) % m,
                skip: xxh3_64_with_seed(name, SKIP_SEED) % (m - 1) + 1,
            }
        })
        .collect();
    let max_weight = turns.iter().map(|t| t.weight).max().unwrap_or(1);
    let mut table = vec![EMPTY; m as usize];
    let mut filled = 0u64;
    loop {
        for t in &mut turns {
            t.credit += t.weight;
            if t.credit < max_weight {
                continue;
            }
            t.credit -= max_weight;
            // Terminates: `m` is prime, so the stride visits every slot, and one is free.
            loop {
                let slot = t.next as usize;
                t.next += t.skip;
                if t.next >= m {
                    t.next -= m;
                }
                if table[slot] == EMPTY {
                    table[slot] = t.index;
                    break;
                }
            }
            filled += 1;
            if filled == m {
                return table.into_boxed_slice();
            }
        }
    }
}

#[cfg(test)]
mod tests;
