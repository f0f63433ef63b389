//! DNS-name endpoints of `sluice serve`: each `host:port` resolves to one endpoint per
//! address, at load and again every `resolveEvery`, like nginx's `server NAME resolve` and
//! HAProxy's `resolvers`. A name that fails keeps its last good addresses (none before its
//! first success, so the pool answers 503 rather than refusing to start); failures are
//! logged and counted in `sluice_dns_resolutions_total{result}`.
//!
//! Resolution happens in the file front end: the validated set keeps the names
//! (`PoolConfig::dns`) and this module fills in `endpoints`; the data plane sees addresses
//! only, and a change of address set is an ordinary apply (endpoints that stay keep their
//! health and connections).

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ConfigSet, EndpointConfig, PoolConfig};

/// Looks a host name up: its addresses, or why not. The system resolver in production
/// (`getaddrinfo`: `/etc/hosts`, then DNS); tests substitute their own.
pub type Lookup = Arc<dyn Fn(&str) -> io::Result<Vec<IpAddr>> + Send + Sync>;

/// The system resolver.
pub fn system() -> Lookup {
    Arc::new(|host| {
        let addrs = (host, 0).to_socket_addrs()?;
        Ok(addrs.map(|a| a.ip()).collect())
    })
}

/// Outcome counts of one resolution round, for the metric.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Names that resolved.
    pub ok: u64,
    /// Names that failed (their last good addresses were kept).
    pub failed: u64,
}

/// The last good addresses of every name, between rounds.
#[derive(Default)]
pub struct Resolver {
    last_good: HashMap<String, Vec<IpAddr>>,
}

impl Resolver {
    /// `base` with every pool's DNS names resolved into endpoints (after its address
    /// endpoints; an address already listed is not added twice). Blocking: run it off the
    /// runtime's threads.
    pub fn fill(&mut self, base: &ConfigSet, lookup: &Lookup) -> (ConfigSet, Round) {
        let mut round = Round::default();
        let mut set = base.clone();
        let mut seen_this_round: HashSet<String> = HashSet::new();
        for pool in &mut set.pools {
            let Some(dns) = &pool.dns else { continue };
            let mut filled = PoolConfig::clone(pool);
            for name in &dns.names {
                if seen_this_round.insert(name.host.clone()) {
                    self.refresh(&name.host, lookup, &mut round);
                }
                for ip in self.last_good.get(&name.host).into_iter().flatten() {
                    let address = SocketAddr::new(*ip, name.port);
                    if filled.endpoints.iter().all(|e| e.address != address) {
                        filled.endpoints.push(EndpointConfig {
                            address,
                            weight: name.weight,
                            ready: true,
                        });
                    }
                }
            }
            *pool = Arc::new(filled);
        }
        (set, round)
    }

    /// Drops the addresses of names `set` no longer lists.
    fn forget_all_but(&mut self, set: &ConfigSet) {
        let listed: HashSet<&str> = set
            .pools
            .iter()
            .filter_map(|p| p.dns.as_ref())
            .flat_map(|d| d.names.iter().map(|n| n.host.as_str()))
            .collect();
        self.last_good
            .retain(|host, _| listed.contains(host.as_str()));
    }

    fn refresh(&mut self, host: &str, lookup: &Lookup, round: &mut Round) {
        match lookup(host) {
            Ok(mut ips) if !ips.is_empty() => {
                ips.sort();
                ips.dedup();
                round.ok += 1;
                self.last_good.insert(host.to_owned(), ips);
            }
            Ok(_) => {
                round.failed += 1;
                tracing::warn!(
                    host,
                    "DNS name resolved to no address; keeping the last good ones"
                );
            }
            Err(e) => {
                round.failed += 1;
                tracing::warn!(host, error = %e, "cannot resolve DNS name; keeping the last good addresses");
            }
        }
    }
}

/// The names of the served configuration between rounds: the set as loaded (names
/// unresolved), the resolver with its last good addresses, and what was last applied.
pub struct Names {
    resolver: Arc<parking_lot::Mutex<Resolver>>,
    lookup: Lookup,
    base: ConfigSet,
    applied: ConfigSet,
}

impl Names {
    /// Resolves `base` for the first time (blocking: before the runtime starts).
    pub fn first(base: ConfigSet, lookup: Lookup) -> (Names, Round) {
        let mut resolver = Resolver::default();
        let (applied, round) = resolver.fill(&base, &lookup);
        let names = Names {
            resolver: Arc::new(parking_lot::Mutex::new(resolver)),
            lookup,
            base,
            applied,
        };
        (names, round)
    }

    /// What to serve now.
    pub fn applied(&self) -> &ConfigSet {
        &self.applied
    }

    /// When to resolve again, counted from now.
    pub fn period(&self) -> Option<Duration> {
        period(&self.base)
    }

    /// `base` resolved on a blocking thread (with the last good addresses of names it
    /// shares with the served set).
    pub async fn fill(&self, base: &ConfigSet) -> (ConfigSet, Round) {
        let resolver = Arc::clone(&self.resolver);
        let lookup = Arc::clone(&self.lookup);
        let owned = base.clone();
        let work = move || resolver.lock().fill(&owned, &lookup);
        match tokio::task::spawn_blocking(work).await {
            Ok(done) => done,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The runtime is shutting down: nothing will be applied anyway.
            Err(_) => (base.clone(), Round::default()),
        }
    }

    /// Records that `base`, resolved as `applied`, is now served.
    pub fn served(&mut self, base: ConfigSet, applied: ConfigSet) {
        self.resolver.lock().forget_all_but(&base);
        self.base = base;
        self.applied = applied;
    }

    /// Resolves the served set again: `Some(set)` when an address changed (then
    /// [`Names::adopt`] it once applied).
    pub async fn again(&self) -> (Option<ConfigSet>, Round) {
        let (filled, round) = self.fill(&self.base).await;
        if filled == self.applied {
            (None, round)
        } else {
            (Some(filled), round)
        }
    }

    /// Records that the served set's names now resolve to `applied`.
    pub fn adopt(&mut self, applied: ConfigSet) {
        self.applied = applied;
    }
}

/// How often `set`'s names are resolved again: the shortest `resolveEvery` among its
/// pools, or `None` when no pool names a host.
pub fn period(set: &ConfigSet) -> Option<Duration> {
    set.pools
        .iter()
        .filter_map(|p| p.dns.as_ref().map(|d| d.every))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    fn set(yaml: &str) -> ConfigSet {
        crate::config::load_text("pools.yaml", yaml).expect("valid")
    }

    const POOL: &str = "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {name: api, namespace: default}\nspec:\n  listener: {port: 8080}\n  resolveEvery: 5s\n  endpoints: [{address: \"127.0.0.1:9000\"}, {address: \"api.internal:8081\", weight: 2}]\n";

    /// Names and their addresses, shared between a test and its resolver.
    type Table = Arc<Mutex<HashMap<String, Vec<IpAddr>>>>;

    /// A resolver answering from a table the test edits; a missing name fails.
    fn table(entries: &[(&str, &[&str])]) -> (Lookup, Table) {
        let map: HashMap<String, Vec<IpAddr>> = entries
            .iter()
            .map(|(h, ips)| {
                (
                    (*h).to_owned(),
                    ips.iter().map(|ip| ip.parse().expect("ip")).collect(),
                )
            })
            .collect();
        let map = Arc::new(Mutex::new(map));
        let shared = Arc::clone(&map);
        let lookup: Lookup = Arc::new(move |host| {
            shared
                .lock()
                .get(host)
                .cloned()
                .ok_or_else(|| io::Error::other("NXDOMAIN"))
        });
        (lookup, map)
    }

    fn addresses(set: &ConfigSet) -> Vec<(String, u32)> {
        set.pools[0]
            .endpoints
            .iter()
            .map(|e| (e.address.to_string(), e.weight))
            .collect()
    }

    #[test]
    fn every_address_of_a_name_becomes_an_endpoint_with_the_names_port_and_weight() {
        let base = set(POOL);
        let (lookup, _) = table(&[("api.internal", &["10.1.0.2", "10.1.0.1", "10.1.0.2"])]);
        let (filled, round) = Resolver::default().fill(&base, &lookup);
        assert_eq!(round, Round { ok: 1, failed: 0 });
        assert_eq!(
            addresses(&filled),
            [
                ("127.0.0.1:9000".to_owned(), 1),
                ("10.1.0.1:8081".to_owned(), 2),
                ("10.1.0.2:8081".to_owned(), 2),
            ]
        );
        assert_eq!(period(&base), Some(Duration::from_secs(5)));
    }

    #[test]
    fn a_failed_lookup_keeps_the_last_good_addresses_and_a_new_answer_replaces_them() {
        let base = set(POOL);
        let (lookup, table) = table(&[("api.internal", &["10.1.0.1"])]);
        let mut resolver = Resolver::default();
        let (first, _) = resolver.fill(&base, &lookup);
        table.lock().clear();
        let (during_outage, round) = resolver.fill(&base, &lookup);
        assert_eq!(round, Round { ok: 0, failed: 1 });
        assert_eq!(addresses(&during_outage), addresses(&first));
        table
            .lock()
            .insert("api.internal".into(), vec!["10.1.0.9".parse().expect("ip")]);
        let (moved, _) = resolver.fill(&base, &lookup);
        assert_eq!(
            addresses(&moved),
            [
                ("127.0.0.1:9000".to_owned(), 1),
                ("10.1.0.9:8081".to_owned(), 2)
            ]
        );
    }

    #[test]
    fn a_name_that_never_resolved_adds_nothing_and_does_not_stop_the_load() {
        let base = set(POOL);
        let (lookup, _) = table(&[]);
        let (filled, round) = Resolver::default().fill(&base, &lookup);
        assert_eq!(round, Round { ok: 0, failed: 1 });
        assert_eq!(addresses(&filled), [("127.0.0.1:9000".to_owned(), 1)]);
    }

    #[test]
    fn an_address_already_listed_is_not_added_twice() {
        let (lookup, _) = table(&[("api.internal", &["127.0.0.1"])]);
        let pool = "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {name: api, namespace: default}\nspec:\n  listener: {port: 8080}\n  endpoints: [{address: \"127.0.0.1:8081\"}, {address: \"api.internal:8081\"}]\n";
        let (filled, _) = Resolver::default().fill(&set(pool), &lookup);
        assert_eq!(addresses(&filled), [("127.0.0.1:8081".to_owned(), 1)]);
    }
}
