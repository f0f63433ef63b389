//! The endpoints one request (or TCP connection) has already tried, so that no retry goes
//! back to one of them while an untried endpoint is left.
//!
//! Kept inline in a fixed array: the common path (one attempt, nothing tried) must not
//! allocate. The array holds every attempt `retry.attempts` (at most 10) allows after the
//! first; a set that is full stops growing, which only weakens the exclusion, never
//! breaks a pick.

use std::sync::Arc;

use super::Endpoint;

/// How many endpoints a [`Tried`] set remembers: one per attempt the validated
/// `retry.attempts` (0..=10) allows, plus the first.
pub const MAX_TRIED: usize = 11;

/// Endpoints already tried for one request, compared by identity.
#[derive(Debug, Default)]
pub struct Tried {
    endpoints: [Option<Arc<Endpoint>>; MAX_TRIED],
    len: usize,
}

impl Tried {
    /// Remembers `endpoint` (once; nothing when the set is full).
    pub fn insert(&mut self, endpoint: Arc<Endpoint>) {
        if self.contains(&endpoint) || self.len == MAX_TRIED {
            return;
        }
        self.endpoints[self.len] = Some(endpoint);
        self.len += 1;
    }

    /// Whether `endpoint` was tried.
    pub fn contains(&self, endpoint: &Endpoint) -> bool {
        self.endpoints[..self.len]
            .iter()
            .flatten()
            .any(|e| std::ptr::eq(e.as_ref(), endpoint))
    }

    /// True before the first failure.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A set holding only the endpoint tried last: the fallback exclusion once every
    /// endpoint was tried, so that attempts still alternate instead of repeating one.
    pub fn last_only(&self) -> Tried {
        let mut only = Tried::default();
        if let Some(last) = self
            .len
            .checked_sub(1)
            .and_then(|i| self.endpoints[i].clone())
        {
            only.insert(last);
        }
        only
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(port: u16) -> Arc<Endpoint> {
        Arc::new(Endpoint::new(([127, 0, 0, 1], port).into(), 1))
    }

    #[test]
    fn tried_endpoints_are_matched_by_identity_not_address() {
        let (a, twin) = (endpoint(1), endpoint(1));
        let mut tried = Tried::default();
        assert!(tried.is_empty());
        tried.insert(a.clone());
        tried.insert(a.clone());
        assert!(tried.contains(&a));
        assert!(!tried.contains(&twin));
        assert_eq!(tried.len, 1);
    }

    #[test]
    fn a_full_set_stops_growing_and_keeps_what_it_holds() {
        let all: Vec<_> = (0..MAX_TRIED as u16 + 2).map(endpoint).collect();
        let mut tried = Tried::default();
        for e in &all {
            tried.insert(e.clone());
        }
        assert!(all[..MAX_TRIED].iter().all(|e| tried.contains(e)));
        assert!(!tried.contains(&all[MAX_TRIED]));
    }

    #[test]
    fn last_only_keeps_just_the_endpoint_tried_last() {
        let (a, b) = (endpoint(1), endpoint(2));
        let mut tried = Tried::default();
        assert!(tried.last_only().is_empty());
        tried.insert(a.clone());
        tried.insert(b.clone());
        let last = tried.last_only();
        assert!(last.contains(&b) && !last.contains(&a));
    }
}
