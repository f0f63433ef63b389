//! The response body sluice sends to clients: either a short local answer or the backend's
//! body streamed frame by frame (never buffered whole). When a backend body ends cleanly the
//! upstream connection goes back to its endpoint's idle pool; any other end drops it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::proxy::http::Exchange;
use crate::proxy::upstream::BackendBody;

/// Body of every response sluice produces.
// Boxing the upstream variant would cost an allocation per request; local answers are rare.
#[allow(clippy::large_enum_variant)]
pub enum ProxyBody {
    /// A local answer (error pages, admin).
    Full(Option<Bytes>),
    /// A backend's body and the bookkeeping that ends with it.
    Upstream {
        /// The backend body.
        inner: BackendBody,
        /// Finished (and logged) when the body ends or is dropped.
        exchange: Exchange,
        /// The endpoint's drain cut, armed only once the body has to wait for the backend
        /// (most bodies arrive with their head and never need it).
        cut: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    },
}

impl ProxyBody {
    /// A local answer with `text`.
    pub fn text(text: &'static str) -> Self {
        ProxyBody::Full(Some(Bytes::from_static(text.as_bytes())))
    }

    /// No body.
    pub fn empty() -> Self {
        ProxyBody::Full(None)
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            ProxyBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            ProxyBody::Upstream {
                inner,
                exchange,
                cut,
            } => {
                let polled = Pin::new(&mut *inner).poll_frame(cx);
                match &polled {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Some(d) = frame.data_ref() {
                            exchange.bytes_out += d.len() as u64;
                        }
                        if inner.is_end_stream() {
                            exchange.complete(inner.take_reusable());
                        }
                    }
                    Poll::Ready(None) => exchange.complete(inner.take_reusable()),
                    Poll::Ready(Some(Err(_))) => exchange.fail(),
                    Poll::Pending => {
                        if cut.is_none()
                            && let Some(endpoint) = exchange.endpoint()
                        {
                            *cut = Some(Box::pin(endpoint.cut.clone().cancelled_owned()));
                        }
                        if let Some(c) = cut
                            && c.as_mut().poll(cx).is_ready()
                        {
                            exchange.fail();
                            return Poll::Ready(Some(Err(std::io::Error::other(
                                "endpoint removed and its drain timeout passed",
                            ))));
                        }
                    }
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(data) => data.is_none(),
            ProxyBody::Upstream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(Some(d)) => SizeHint::with_exact(d.len() as u64),
            ProxyBody::Full(None) => SizeHint::with_exact(0),
            ProxyBody::Upstream { inner, .. } => inner.size_hint(),
        }
    }
}
