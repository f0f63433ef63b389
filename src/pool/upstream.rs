//! Idle upstream HTTP/1 connections of one endpoint, one list per worker thread so that
//! workers never contend: each worker only touches its own slot's (uncontended) mutex.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::client::conn::http1::SendRequest;
use parking_lot::Mutex;

/// Request body type sent upstream.
pub type UpstreamBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// Most idle connections kept per worker per endpoint.
const MAX_IDLE_PER_WORKER: usize = 256;
/// Worker slots; workers beyond this share slots (still correct, a little contention).
const SLOTS: usize = 64;

/// Per-worker lists of idle keep-alive connections.
pub struct UpstreamPool {
    slots: Box<[Mutex<Vec<SendRequest<UpstreamBody>>>]>,
}

impl Default for UpstreamPool {
    fn default() -> Self {
        UpstreamPool {
            slots: (0..SLOTS).map(|_| Mutex::new(Vec::new())).collect(),
        }
    }
}

impl std::fmt::Debug for UpstreamPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamPool").finish_non_exhaustive()
    }
}

thread_local! {
    static SLOT: usize = next_slot();
}

fn next_slot() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed) % SLOTS
}

impl UpstreamPool {
    fn slot(&self) -> &Mutex<Vec<SendRequest<UpstreamBody>>> {
        &self.slots[SLOT.with(|s| *s)]
    }

    /// An idle connection that is still open and ready, if this worker has one.
    pub fn take(&self) -> Option<SendRequest<UpstreamBody>> {
        let mut idle = self.slot().lock();
        while let Some(conn) = idle.pop() {
            if conn.is_ready() {
                return Some(conn);
            }
        }
        None
    }

    /// Returns a connection after a complete, well-framed exchange.
    pub fn put(&self, conn: SendRequest<UpstreamBody>) {
        if conn.is_closed() {
            return;
        }
        let mut idle = self.slot().lock();
        if idle.len() < MAX_IDLE_PER_WORKER {
            idle.push(conn);
        }
    }

    /// Drops every idle connection (the endpoint left the pool).
    pub fn clear(&self) {
        for slot in &self.slots {
            slot.lock().clear();
        }
    }
}
