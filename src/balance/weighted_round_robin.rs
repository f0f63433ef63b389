//! WeightedRoundRobin: nginx's smooth weighted round robin.
//!
//! Each pick adds every endpoint's weight to its `current`, takes the endpoint with the
//! largest `current` (the first one on ties) and subtracts the total weight from it. Picks
//! interleave: weights 1:2:3 for a, b, c give `c b a c b c`, never a burst of `c c c`.
//!
//! The sequence is periodic: after `sum(weights) / gcd(weights)` picks every `current` is
//! back to zero. So the period is computed once per snapshot into a schedule of endpoint
//! indices that picks walk with one atomic counter: no lock, O(1). When the schedule would
//! be too large (more than 2^20 entries) or too slow to compute, the balancer keeps the
//! smooth state itself behind a `parking_lot::Mutex` instead.
//!
//! Computing the sequence does not need one `current` per endpoint. Endpoints of equal
//! weight are picked among themselves in index order, so a weight class is summarized by
//! how many picks it has had; each step compares one candidate per class, not per
//! endpoint. That keeps 10,000 endpoints with a handful of distinct weights cheap.
//!
//! An unusable scheduled endpoint hands its turn to the next usable entry of the schedule
//! (a few entries at most), then to the next usable endpoint in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::round_robin::scan_from;
use super::{Balancer, PickContext};
use crate::pool::Endpoint;

/// Longest schedule precomputed (entries); longer periods use the locked state.
const MAX_PERIOD: u64 = 1 << 20;
/// Most class comparisons spent computing a schedule (period x distinct weights).
const MAX_BUILD_WORK: u64 = 1 << 24;
/// Schedule entries tried after an unusable one before scanning endpoints in order.
const SKIP_SCAN: usize = 16;

/// Smooth weighted round-robin balancer (weights from [`Endpoint::weight`]).
#[derive(Debug)]
pub struct WeightedRoundRobin {
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    /// No endpoints.
    Empty,
    /// One period of the sequence, walked by a shared counter.
    Schedule {
        order: Box<[u32]>,
        next: AtomicUsize,
    },
    /// The period is too long to precompute: step the smooth state under a lock.
    Locked(Mutex<Smooth>),
}

impl WeightedRoundRobin {
    /// Builds the balancer over `endpoints`, reading each endpoint's weight once.
    pub fn new(endpoints: &[Arc<Endpoint>]) -> Self {
        let weights: Vec<u32> = endpoints.iter().map(|e| e.weight()).collect();
        let Some(mut smooth) = Smooth::new(&weights) else {
            return WeightedRoundRobin { mode: Mode::Empty };
        };
        let work = smooth.period.saturating_mul(smooth.classes.len() as u64);
        let mode = if smooth.period <= MAX_PERIOD && work <= MAX_BUILD_WORK {
            let order = (0..smooth.period).map(|_| smooth.step()).collect();
            Mode::Schedule {
                order,
                next: AtomicUsize::new(0),
            }
        } else {
            Mode::Locked(Mutex::new(smooth))
        };
        WeightedRoundRobin { mode }
    }
}

impl Balancer for WeightedRoundRobin {
    fn pick(&self, endpoints: &[Arc<Endpoint>], ctx: &PickContext<'_>) -> Option<usize> {
        let usable = |i: usize| endpoints.get(i).is_some_and(|e| (ctx.usable)(e));
        let first = match &self.mode {
            Mode::Empty => return None,
            Mode::Schedule { order, next } => {
                let len = order.len();
                let k = next.fetch_add(1, Ordering::Relaxed) % len;
                for j in 0..SKIP_SCAN.min(len) {
                    let i = order[(k + j) % len] as usize;
                    if usable(i) {
                        return Some(i);
                    }
                }
                order[k] as usize
            }
            Mode::Locked(smooth) => {
                let mut smooth = smooth.lock();
                let first = smooth.step() as usize;
                if usable(first) {
                    return Some(first);
                }
                for _ in 1..SKIP_SCAN {
                    let i = smooth.step() as usize;
                    if usable(i) {
                        return Some(i);
                    }
                }
                first
            }
        };
        if endpoints.is_empty() {
            return None;
        }
        scan_from(endpoints, (first + 1) % endpoints.len(), ctx)
    }
}

/// nginx's smooth WRR state, one entry per distinct weight.
///
/// With weights reduced by their gcd and `total` their sum, after `s` picks the endpoint
/// picked next is the one maximizing `s' * w - total * picked` (with `s' = s + 1`),
/// the lowest index on ties. Endpoints of one weight class differ only in `picked`, and
/// they are picked among themselves in index order, so the class's candidate is its
/// member `picked % len` and all its members' `picked` follow from the class count.
#[derive(Debug)]
struct Smooth {
    classes: Vec<Class>,
    total: u64,
    period: u64,
    /// Picks made in the current period.
    step: u64,
}

#[derive(Debug)]
struct Class {
    /// Reduced weight.
    weight: u64,
    /// Endpoint indices with this weight, ascending.
    members: Vec<u32>,
    /// Full rounds through `members` in this period.
    rounds: u64,
    /// Position of the next candidate in `members`.
    at: usize,
}

impl Smooth {
    /// `None` when there are no weights.
    fn new(weights: &[u32]) -> Option<Smooth> {
        let g = weights.iter().fold(0u32, |g, &w| gcd(g, w.max(1)));
        if g == 0 {
            return None;
        }
        let mut classes: Vec<Class> = Vec::new();
        for (i, &w) in weights.iter().enumerate() {
            let weight = u64::from(w.max(1) / g);
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            match classes.iter_mut().find(|c| c.weight == weight) {
                Some(c) => c.members.push(index),
                None => classes.push(Class {
                    weight,
                    members: vec![index],
                    rounds: 0,
                    at: 0,
                }),
            }
        }
        let total: u64 = weights.iter().map(|&w| u64::from(w.max(1) / g)).sum();
        Some(Smooth {
            classes,
            total,
            period: total,
            step: 0,
        })
    }

    /// The next endpoint index of the smooth sequence.
    fn step(&mut self) -> u32 {
        if self.step == self.period {
            // Every `current` is back to zero: restart so the numbers stay small.
            self.step = 0;
            for c in &mut self.classes {
                c.rounds = 0;
                c.at = 0;
            }
        }
        self.step += 1;
        let s = i128::from(self.step);
        let total = i128::from(self.total);
        let mut best: Option<(usize, i128, u32)> = None;
        for (ci, c) in self.classes.iter().enumerate() {
            let current = s * i128::from(c.weight) - total * i128::from(c.rounds);
            let index = c.members[c.at];
            let better = match best {
                None => true,
                Some((_, v, i)) => current > v || (current == v && index < i),
            };
            if better {
                best = Some((ci, current, index));
            }
        }
        let (ci, _, index) = best.expect("a Smooth always has at least one class");
        let c = &mut self.classes[ci];
        c.at += 1;
        if c.at == c.members.len() {
            c.at = 0;
            c.rounds += 1;
        }
        index
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests;
