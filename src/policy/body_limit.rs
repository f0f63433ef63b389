//! `maxRequestBodyBytes` on a body that is streamed: the client's body as the proxy reads
//! it, cut with an error the moment it grows past the limit.
//!
//! A body whose `Content-Length` is larger was already refused with 413 before anything was
//! read (see [`super::admit`]); this wrapper is for the bodies whose size is not known in
//! advance (chunked HTTP/1.1, HTTP/2 without `content-length`). Nothing is buffered: frames
//! are counted as they pass. When the limit is crossed the frame is withheld and
//! [`BodyError::TooLarge`] is returned instead, so the upstream request is aborted (its
//! body never completes) and the client gets 413 if no response was sent yet.
//! Without a limit the wrapper only forwards (one comparison per frame).
//!
//! It also counts the bytes that passed, for `sluice_request_bytes_total{pool}`: a plain
//! `u64` per frame, added to the pool's counter once, when the body is dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::pool::Pool;

/// Why the client's body could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The client's stream failed (broken framing, or the client went away).
    #[error("{0}")]
    Client(#[from] hyper::Error),
    /// The body grew past `maxRequestBodyBytes`.
    #[error("request body larger than maxRequestBodyBytes ({0} bytes)")]
    TooLarge(u64),
}

/// The client's request body, with an optional size limit.
#[derive(Debug)]
pub struct LimitedBody {
    inner: Incoming,
    /// Bytes still allowed; `u64::MAX` without a limit.
    left: u64,
    limit: u64,
    /// Body bytes read so far.
    read: u64,
    /// The pool whose `request_bytes` gets `read` when the body is dropped.
    counted_in: Option<Arc<Pool>>,
}

impl LimitedBody {
    /// The body as hyper gives it, without a limit.
    pub fn new(inner: Incoming) -> LimitedBody {
        LimitedBody {
            inner,
            left: u64::MAX,
            limit: u64::MAX,
            read: 0,
            counted_in: None,
        }
    }

    /// Adds the bytes read (before and after this call) to `pool`'s request bytes when the
    /// body is dropped.
    pub fn count_in(&mut self, pool: Arc<Pool>) {
        self.counted_in = Some(pool);
    }

    /// Cuts the body once more than `max` bytes have passed.
    pub fn limit(&mut self, max: u64) {
        self.left = max;
        self.limit = max;
    }
}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(BodyError::Client(e)))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if let Some(data) = frame.data_ref() {
            let len = data.len() as u64;
            if len > this.left {
                this.left = 0;
                return Poll::Ready(Some(Err(BodyError::TooLarge(this.limit))));
            }
            this.left -= len;
            this.read += len;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LimitedBody {
    fn drop(&mut self) {
        if let Some(pool) = &self.counted_in {
            pool.stats
                .request_bytes
                .fetch_add(self.read, Ordering::Relaxed);
        }
    }
}
