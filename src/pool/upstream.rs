//! Idle upstream HTTP/1 connections of one endpoint, one list per worker thread so that
//! workers never contend: each worker only touches its own slot's (uncontended) mutex.

use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use parking_lot::Mutex;
use tokio::time::Instant;

/// Most idle connections kept per worker per endpoint.
const MAX_IDLE_PER_WORKER: usize = 256;

static SLOTS: OnceLock<usize> = OnceLock::new();

/// Sets how many worker threads use upstream pools (once, at start-up; default 1 slot per
/// available CPU). More workers than slots still work: they share slots.
pub fn set_worker_slots(n: usize) {
    let _ = SLOTS.set(n.max(1));
}

fn slots() -> usize {
    *SLOTS.get_or_init(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// Request body sent upstream: the client's stream, or bytes kept for a replay.
#[derive(Debug)]
pub enum UpstreamBody {
    /// The client's body, streamed.
    Stream(Incoming),
    /// A buffered body (or none).
    Full(Option<Bytes>),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            UpstreamBody::Stream(inner) => Pin::new(inner).poll_frame(cx),
            UpstreamBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Stream(inner) => inner.is_end_stream(),
            UpstreamBody::Full(data) => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Stream(inner) => inner.size_hint(),
            UpstreamBody::Full(Some(d)) => SizeHint::with_exact(d.len() as u64),
            UpstreamBody::Full(None) => SizeHint::with_exact(0),
        }
    }
}

/// A pooled connection and when it went idle.
struct Idle {
    conn: SendRequest<UpstreamBody>,
    since: Instant,
}

/// Per-worker lists of idle keep-alive connections.
pub struct UpstreamPool {
    slots: Box<[Mutex<Vec<Idle>>]>,
}

impl Default for UpstreamPool {
    fn default() -> Self {
        UpstreamPool {
            slots: (0..slots()).map(|_| Mutex::new(Vec::new())).collect(),
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
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl UpstreamPool {
    fn slot(&self) -> &Mutex<Vec<Idle>> {
        &self.slots[SLOT.with(|s| *s) % self.slots.len()]
    }

    /// The most recently used idle connection of this worker that is still open and was
    /// idle for less than `max_idle`.
    pub fn take(&self, max_idle: Duration) -> Option<SendRequest<UpstreamBody>> {
        let now = Instant::now();
        let mut idle = self.slot().lock();
        while let Some(entry) = idle.pop() {
            if !entry.conn.is_closed() && now.saturating_duration_since(entry.since) < max_idle {
                return Some(entry.conn);
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
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// Closes connections idle for `max_idle` or longer (a periodic sweep calls this).
    pub fn expire(&self, max_idle: Duration) {
        let now = Instant::now();
        for slot in &self.slots {
            slot.lock().retain(|e| {
                !e.conn.is_closed() && now.saturating_duration_since(e.since) < max_idle
            });
        }
    }

    /// Drops every idle connection (the endpoint left the pool).
    pub fn clear(&self) {
        for slot in &self.slots {
            slot.lock().clear();
        }
    }
}
