use super::*;
use crate::balance::hash_key;
use crate::balance::testing::endpoints;

fn endpoint(i: usize, weight: u32) -> Arc<Endpoint> {
    let addr = format!("10.0.{}.{}:8080", i / 250, i % 250 + 1)
        .parse()
        .unwrap();
    Arc::new(Endpoint::new(addr, weight))
}

fn key(k: u32) -> u64 {
    hash_key(&k.to_le_bytes())
}

fn with_hash(hash: u64) -> PickContext<'static> {
    PickContext {
        hash: Some(hash),
        usable: &|_| true,
    }
}

/// The address each of `keys` maps to.
fn owners(eps: &[Arc<Endpoint>], keys: u32) -> Vec<std::net::SocketAddr> {
    let ch = ConsistentHash::new(eps);
    (0..keys)
        .map(|k| eps[ch.pick(eps, &with_hash(key(k))).unwrap()].address())
        .collect()
}

#[test]
fn same_hash_goes_to_the_same_endpoint() {
    let eps = endpoints(7);
    let ch = ConsistentHash::new(&eps);
    for k in 0..100 {
        let first = ch.pick(&eps, &with_hash(key(k)));
        assert!((0..5).all(|_| ch.pick(&eps, &with_hash(key(k))) == first));
    }
}

#[test]
fn endpoint_order_does_not_change_the_mapping() {
    let eps = endpoints(10);
    let mut shuffled = eps.clone();
    shuffled.reverse();
    shuffled.swap(2, 7);
    assert_eq!(owners(&eps, 2000), owners(&shuffled, 2000));
}

#[test]
fn removing_one_of_ten_endpoints_moves_only_its_keys() {
    const N: usize = 10;
    const KEYS: u32 = 10_000;
    let eps = endpoints(N);
    let before = owners(&eps, KEYS);
    let removed = eps[3].address();
    let rest: Vec<_> = eps
        .iter()
        .filter(|e| e.address() != removed)
        .cloned()
        .collect();
    let after = owners(&rest, KEYS);

    let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
    let owned = before.iter().filter(|&&b| b == removed).count();
    let strays = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b != a && **b != removed)
        .count();
    assert!(
        moved as f64 <= 1.5 * KEYS as f64 / N as f64,
        "moved {moved}"
    );
    assert!(moved >= owned, "every key of the removed endpoint moves");
    // Maglev may reshuffle a few slots of the survivors; allow 1% of all keys.
    assert!(
        strays <= KEYS as usize / 100,
        "{strays} keys moved between survivors"
    );
}

#[test]
fn slots_are_shared_evenly() {
    let eps = endpoints(10);
    let ch = ConsistentHash::new(&eps);
    assert_eq!(ch.table.len(), 65_537);
    let mut counts = [0usize; 10];
    for &i in &ch.table {
        counts[i as usize] += 1;
    }
    let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
    assert!(max - min <= 1, "{counts:?}");
}

#[test]
fn slots_follow_weights() {
    let eps = vec![endpoint(0, 1), endpoint(1, 3)];
    let ch = ConsistentHash::new(&eps);
    let heavy = ch.table.iter().filter(|&&i| i == 1).count();
    let share = heavy as f64 / ch.table.len() as f64;
    assert!((share - 0.75).abs() < 0.01, "share {share}");
}

#[test]
fn table_is_a_prime_at_least_a_hundred_per_endpoint() {
    assert_eq!(table_size(1), 65_537);
    assert_eq!(table_size(656), 131_071);
    assert_eq!(table_size(10_000), 1_048_573);
    assert_eq!(table_size(1_000_000), 2_097_143);
}

#[test]
fn keys_of_an_unusable_endpoint_spread_over_the_others_and_stay_put() {
    let eps = endpoints(5);
    let ch = ConsistentHash::new(&eps);
    let skipped = Arc::as_ptr(&eps[0]);
    let usable = |e: &Endpoint| !std::ptr::eq(e, skipped);
    let mut counts = [0; 5];
    for k in 0..5000 {
        let h = key(k);
        if ch.pick(&eps, &with_hash(h)) != Some(0) {
            continue;
        }
        let ctx = PickContext {
            hash: Some(h),
            usable: &usable,
        };
        let i = ch.pick(&eps, &ctx).unwrap();
        assert_eq!(ch.pick(&eps, &ctx), Some(i));
        counts[i] += 1;
    }
    assert_eq!(counts[0], 0);
    assert!(counts[1..].iter().all(|&c| c > 100), "{counts:?}");
}

#[test]
fn requests_without_a_key_are_spread() {
    let eps = endpoints(4);
    let ch = ConsistentHash::new(&eps);
    let mut counts = [0; 4];
    for _ in 0..8000 {
        counts[ch.pick(&eps, &PickContext::any()).unwrap()] += 1;
    }
    assert!(
        counts.iter().all(|&c| (1600..=2400).contains(&c)),
        "{counts:?}"
    );
}

#[test]
fn no_endpoints_gives_none() {
    assert_eq!(ConsistentHash::new(&[]).pick(&[], &with_hash(1)), None);
}
