//! ingress-nginx's `limit-connections`: at most N requests in flight per client address,
//! per replica (nginx's `limit_conn` on `$binary_remote_addr` counts a connection while it
//! has a request being processed, and each HTTP/2 stream as one, which is what this counts).
//! A request holds its [`ClientSlot`] until its answer has been sent (or its upgraded
//! connection closes); the next one past the limit is refused.
//!
//! The table holds an entry only while its address has a request in flight, so its size is
//! bounded by the requests in flight, whatever the number of addresses seen. Sixteen
//! `parking_lot` mutexes, each held for one hash-map update; allocated on first use, so
//! pools without the limit cost one empty cell.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

/// Shards of a table; a power of two.
const SHARDS: usize = 16;

/// In-flight requests per client address of one pool.
#[derive(Debug, Default)]
pub struct ConnLimiter {
    table: OnceLock<Arc<Table>>,
}

#[derive(Debug)]
struct Table {
    shards: Box<[Mutex<HashMap<IpAddr, u32>>]>,
}

/// One request's place under the limit, given back when dropped.
#[derive(Debug)]
pub struct ClientSlot {
    table: Arc<Table>,
    client: IpAddr,
}

impl ConnLimiter {
    /// A slot for a request from `client`, or `None` when `client` already has `max`
    /// requests in flight.
    pub fn acquire(&self, client: IpAddr, max: u32) -> Option<ClientSlot> {
        let table = self.table.get_or_init(|| {
            Arc::new(Table {
                shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            })
        });
        {
            let mut shard = table.shard(client).lock();
            let n = shard.entry(client).or_insert(0);
            if *n >= max {
                return None;
            }
            *n += 1;
        }
        Some(ClientSlot {
            table: table.clone(),
            client,
        })
    }

    /// Requests in flight from `client` (tests and diagnostics).
    pub fn in_flight(&self, client: IpAddr) -> u32 {
        self.table
            .get()
            .and_then(|t| t.shard(client).lock().get(&client).copied())
            .unwrap_or(0)
    }
}

impl Table {
    fn shard(&self, client: IpAddr) -> &Mutex<HashMap<IpAddr, u32>> {
        let bits = match client {
            IpAddr::V4(a) => u64::from(a.to_bits()),
            IpAddr::V6(a) => {
                let b = a.to_bits();
                (b as u64) ^ ((b >> 64) as u64)
            }
        };
        let i = (bits.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize % SHARDS;
        &self.shards[i]
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut shard = self.table.shard(self.client).lock();
        if let Some(n) = shard.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                shard.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_max_slots_at_once_and_another_when_one_is_given_back() {
        let limiter = ConnLimiter::default();
        let a: IpAddr = "198.18.0.7".parse().unwrap();
        let b: IpAddr = "2001:db8::7".parse().unwrap();
        let first = limiter.acquire(a, 2).expect("1 of 2");
        let second = limiter.acquire(a, 2).expect("2 of 2");
        assert!(
            limiter.acquire(a, 2).is_none(),
            "a third at once is refused"
        );
        assert!(limiter.acquire(b, 2).is_some(), "another client is not");
        drop(first);
        let third = limiter.acquire(a, 2).expect("a slot was given back");
        assert_eq!(limiter.in_flight(a), 2);
        drop((second, third));
        assert_eq!(limiter.in_flight(a), 0);
        let table = limiter.table.get().unwrap();
        assert!(
            table.shards.iter().all(|s| s.lock().is_empty()),
            "no entry is kept for a client without requests"
        );
    }
}
