use super::*;
use crate::balance::testing::weighted as endpoints;

/// nginx's `ngx_http_upstream_get_peer`, verbatim in spirit: the reference to match.
fn nginx(weights: &[u32], picks: usize) -> Vec<usize> {
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut current = vec![0i64; weights.len()];
    (0..picks)
        .map(|_| {
            let mut best = 0;
            for (i, &w) in weights.iter().enumerate() {
                current[i] += i64::from(w);
                if current[i] > current[best] {
                    best = i;
                }
            }
            current[best] -= total;
            best
        })
        .collect()
}

fn picks(wrr: &WeightedRoundRobin, eps: &[Arc<Endpoint>], n: usize) -> Vec<usize> {
    (0..n)
        .map(|_| wrr.pick(eps, &PickContext::any()).unwrap())
        .collect()
}

#[test]
fn weights_one_two_three_give_c_b_a_c_b_c() {
    let eps = endpoints(&[1, 2, 3]);
    let wrr = WeightedRoundRobin::new(&eps);
    let names: String = picks(&wrr, &eps, 6)
        .into_iter()
        .map(|i| (b'a' + i as u8) as char)
        .collect();
    assert_eq!(names, "cbacbc");
}

#[test]
fn shares_are_exact_over_a_period() {
    let eps = endpoints(&[1, 2, 3]);
    let wrr = WeightedRoundRobin::new(&eps);
    let mut counts = [0; 3];
    for i in picks(&wrr, &eps, 6 * 50) {
        counts[i] += 1;
    }
    assert_eq!(counts, [50, 100, 150]);
}

#[test]
fn common_factor_of_weights_does_not_change_the_sequence() {
    let small = endpoints(&[1, 2, 3]);
    let large = endpoints(&[100, 200, 300]);
    let a = picks(&WeightedRoundRobin::new(&small), &small, 24);
    let b = picks(&WeightedRoundRobin::new(&large), &large, 24);
    assert_eq!(a, b);
}

#[test]
fn no_burst_is_longer_than_a_weight() {
    let weights = [1, 5, 2, 7, 3];
    let eps = endpoints(&weights);
    let wrr = WeightedRoundRobin::new(&eps);
    let seq = picks(&wrr, &eps, 18 * 10);
    let mut run = 1;
    for pair in seq.windows(2) {
        run = if pair[0] == pair[1] { run + 1 } else { 1 };
        assert!(run <= weights[pair[1]], "burst of {run} on {}", pair[1]);
    }
}

#[test]
fn unusable_endpoint_turn_goes_to_the_next_scheduled_one() {
    let eps = endpoints(&[1, 2, 3]);
    let wrr = WeightedRoundRobin::new(&eps);
    let skipped = Arc::as_ptr(&eps[2]);
    let usable = |e: &Endpoint| !std::ptr::eq(e, skipped);
    let ctx = PickContext {
        hash: None,
        usable: &usable,
    };
    let mut counts = [0; 3];
    for _ in 0..600 {
        counts[wrr.pick(&eps, &ctx).unwrap()] += 1;
    }
    assert_eq!(counts[2], 0);
    assert_eq!(counts[0] + counts[1], 600);
}

#[test]
fn huge_period_falls_back_to_locked_state_with_the_same_sequence() {
    // 1,100 endpoints of weight 1000 and one of weight 1: the period exceeds 2^20.
    let mut weights = vec![1000; 1100];
    weights.push(1);
    let eps = endpoints(&weights);
    let wrr = WeightedRoundRobin::new(&eps);
    assert!(matches!(wrr.mode, Mode::Locked(_)));
    assert_eq!(picks(&wrr, &eps, 3000), nginx(&weights, 3000));
}

#[test]
fn ten_thousand_endpoints_of_few_weights_get_a_schedule() {
    let weights: Vec<u32> = (0..10_000).map(|i| [1, 2, 5][i % 3]).collect();
    let eps = endpoints(&weights);
    let wrr = WeightedRoundRobin::new(&eps);
    let Mode::Schedule { order, .. } = &wrr.mode else {
        panic!("expected a precomputed schedule");
    };
    assert_eq!(order.len() as u32, weights.iter().sum::<u32>());
}

#[test]
fn no_endpoints_gives_none() {
    let wrr = WeightedRoundRobin::new(&[]);
    assert_eq!(wrr.pick(&[], &PickContext::any()), None);
}
