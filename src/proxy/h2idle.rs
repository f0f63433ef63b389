//! Idle HTTP/2 client connections: closed with a GOAWAY once no stream has been open for
//! the connection's idle timeout (the same `timeouts.idle` rule as HTTP/1.1 keep-alive).
//!
//! hyper answers the client's PINGs and sends its own, so without this an idle HTTP/2
//! connection would stay open for as long as the client lives. nginx (`keepalive_timeout`),
//! Envoy (`idle_timeout`) and HAProxy (`timeout client`) all close them.
//!
//! Each stream holds a [`StreamGuard`] from its request until hyper drops its response body
//! (sent, or reset); the connection's [`Streams`] counts open streams and is signalled when
//! the last one ends (kept apart from the [`Connection`], which HTTP/1.1 connections have
//! too and which then needs neither). [`idle`] waits for that signal while streams are open and
//! on one lazily re-armed timer while none is, so a busy connection costs a counter per
//! stream, not a timer registration.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;

use crate::proxy::body::ProxyBody;
use crate::proxy::http::Connection;

/// The open streams of one HTTP/2 connection.
#[derive(Debug, Default)]
pub struct Streams {
    /// Streams open now.
    open: AtomicU32,
    /// Signalled when the last open stream ends.
    quiet: tokio::sync::Notify,
}

/// One open stream, from its request until its response body is finished.
#[derive(Debug)]
pub struct StreamGuard(Arc<Streams>);

impl StreamGuard {
    /// Counts a new stream in `streams`.
    pub fn new(streams: Arc<Streams>) -> Self {
        streams.open.fetch_add(1, Ordering::Relaxed);
        StreamGuard(streams)
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::Relaxed) == 1 {
            // The connection turned quiet: its idle timer starts now.
            self.0.quiet.notify_one();
        }
    }
}

/// A response body that keeps its stream counted until hyper drops it (once the body is
/// sent, or the stream is reset).
pub struct TrackedBody {
    body: ProxyBody,
    _stream: StreamGuard,
}

impl TrackedBody {
    /// `body`, counted against `stream` while it lives.
    pub fn new(body: ProxyBody, stream: StreamGuard) -> Self {
        TrackedBody {
            body,
            _stream: stream,
        }
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Resolves once no stream has been open in `streams` for `conn`'s idle timeout (measured
/// from the connection's start when it never had one).
///
/// One timer, re-armed lazily: it may fire early (a stream ran meanwhile), and then waits
/// again for what is left; it is moved earlier only when the connection turned quiet with
/// a shorter timeout than the one it was armed for (requests reached another pool). The
/// quiet period starts when this future sees the signal of the last stream's end (it runs
/// in the connection's task, woken right then), so streams read no clock.
pub async fn idle(conn: &Connection, streams: &Streams) {
    let mut quiet_since = Instant::now();
    let timer = tokio::time::sleep(conn.keep_idle());
    tokio::pin!(timer);
    loop {
        let notified = streams.quiet.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if streams.open.load(Ordering::Relaxed) > 0 {
            // Busy: nothing to time until the last open stream ends.
            notified.await;
            quiet_since = Instant::now();
            continue;
        }
        let due = quiet_since + conn.keep_idle();
        if Instant::now() >= due {
            return;
        }
        if timer.deadline() > due || timer.is_elapsed() {
            timer.as_mut().reset(due);
        }
        tokio::select! {
            _ = timer.as_mut() => {}
            _ = notified => quiet_since = Instant::now(),
        }
    }
}
