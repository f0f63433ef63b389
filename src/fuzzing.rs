//! Entry points for the fuzz targets in `fuzz/` (`hack/fuzz.sh`): each parser sluice owns,
//! as the data plane runs it but without a socket, returning plain values the targets can
//! check invariants on. Not an API: hidden from the docs, and nothing in sluice calls it.
//!
//! It must stay a thin view. No parsing logic lives here, so that what is fuzzed is the
//! code that serves traffic; each adapter sits next to its parser.

use http::Method;

pub use crate::config::{
    AllowedOrigins, BasicAuthConfig, ConfigSet, CorsConfig, CredentialSource, Htpasswd,
    OriginPattern, Source, ValidationErrors, parse_documents, validate,
};
pub use crate::policy::basic_auth::{Quick, check as basic_auth_check, quick as basic_auth_quick};
pub use crate::policy::cors::allowed_origin;
pub use crate::policy::{Cidr, IpSet, TrustedProxies};
pub use crate::proxy::l4::proxy_protocol::{Peeked, build_header, peek_header};

/// What sluice's HTTP/1.1 loop makes of the bytes at the start of a request
/// (`h1server::parse`, then the request it builds).
#[derive(Debug)]
pub enum RequestHead {
    /// The head is not complete yet.
    Partial,
    /// Not for the simple loop: the connection goes to hyper with every byte read.
    Other,
    /// A head the simple loop serves.
    Simple(Box<SimpleHead>),
}

/// A request head the simple loop serves.
#[derive(Debug)]
pub struct SimpleHead {
    /// Bytes of the head, up to and including the blank line.
    pub len: usize,
    /// Method.
    pub method: Method,
    /// Request target, as it appears in the head.
    pub target: Vec<u8>,
    /// The `Content-Length` (0 without one).
    pub content_length: u64,
    /// `Connection: close` was asked for.
    pub close: bool,
    /// The request built from the head (body left out); `None` when the `http` types
    /// refuse a part, and the connection goes to hyper after all.
    pub request: Option<http::Request<()>>,
}

/// [`RequestHead`] of the bytes at the start of `buf`.
pub fn parse_request_head(buf: &[u8]) -> RequestHead {
    crate::proxy::http1::server::parse_for_fuzzing(buf)
}

/// How the upstream client delimits a response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (`HEAD`, 204, 304).
    Empty,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the backend closes.
    Close,
    /// 101: the connection changes protocol.
    Upgrade,
}

/// What the upstream client makes of the bytes at the start of a response.
#[derive(Debug)]
pub enum ResponseHead {
    /// The head is not complete yet.
    Partial,
    /// An interim (1xx other than 101) head of `len` bytes, skipped.
    Interim {
        /// Bytes of the head.
        len: usize,
    },
    /// A final (or 101) head.
    Final {
        /// Bytes of the head.
        len: usize,
        /// Status, version and headers.
        parts: http::response::Parts,
        /// Body framing.
        framing: BodyFraming,
        /// The connection may carry another request once the body is read.
        keep_alive: bool,
    },
    /// The exchange fails.
    Refused(std::io::Error),
}

/// [`ResponseHead`] of the bytes at the start of `buf`, answering a `method` request.
pub fn parse_response_head(buf: &[u8], method: &Method) -> ResponseHead {
    crate::proxy::http1::client::parse_head_for_fuzzing(buf, method)
}

/// A chunked response body as the upstream client decodes it.
#[derive(Debug)]
pub struct Chunked {
    /// The data frames given to the client, in order.
    pub frames: Vec<Vec<u8>>,
    /// `Ok(Some(rest))`: the body ended, `rest` being the bytes fed after it;
    /// `Ok(None)`: the input ran out before the end; `Err`: the body was refused.
    pub end: Result<Option<Vec<u8>>, std::io::Error>,
}

/// Decodes a chunked body arriving in `reads` (one slice per socket read).
pub fn decode_chunked<'a>(reads: impl IntoIterator<Item = &'a [u8]>) -> Chunked {
    crate::proxy::http1::client::decode_chunked_for_fuzzing(&mut reads.into_iter())
}
