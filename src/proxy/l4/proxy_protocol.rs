//! PROXY protocol v1/v2 (HAProxy's spec, parsed and built with the `ppp` crate): reading
//! the header a fronting L4 balancer puts before the client's bytes, and writing one to TCP
//! backends that asked for the client's address.

use std::net::SocketAddr;
use std::time::Duration;

use ppp::{HeaderResult, PartialResult, v1, v2};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::ProxyProtocolVersion;

/// How long a connection may take to send its PROXY header.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest header accepted (v2 with TLVs).
const MAX_HEADER: usize = 1024;
/// Largest v1 header, CRLF included (the spec's bound).
const V1_MAX: usize = 107;

/// Why a PROXY header was refused (the connection is closed).
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    /// Nothing valid arrived in time.
    #[error("no PROXY header within {HEADER_TIMEOUT:?}")]
    Timeout,
    /// The bytes are not a PROXY header.
    #[error("invalid PROXY header")]
    Invalid,
    /// The socket failed.
    #[error("reading PROXY header: {0}")]
    Io(#[from] std::io::Error),
}

/// The two addresses a PROXY header announces: the client and the address it connected to
/// (the fronting balancer's listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announced {
    /// Where the client connected from.
    pub source: SocketAddr,
    /// The address the client connected to.
    pub destination: SocketAddr,
}

/// Reads and consumes the PROXY header at the start of `stream`. Returns the addresses it
/// announces, or `None` for a `LOCAL`/`UNKNOWN` header (health checks of the fronting
/// balancer), in which case the socket's own addresses stand.
pub async fn read_header(stream: &mut TcpStream) -> Result<Option<Announced>, ProxyHeaderError> {
    match tokio::time::timeout(HEADER_TIMEOUT, read_header_inner(stream)).await {
        Ok(r) => r,
        Err(_) => Err(ProxyHeaderError::Timeout),
    }
}

async fn read_header_inner(stream: &mut TcpStream) -> Result<Option<Announced>, ProxyHeaderError> {
    let mut buf = [0u8; MAX_HEADER];
    let mut last_seen = 0;
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Err(ProxyHeaderError::Invalid);
        }
        match peek_header(&buf[..n]) {
            Peeked::Header { len, announced } => {
                let mut consumed = vec![0u8; len];
                stream.read_exact(&mut consumed).await?;
                return Ok(announced);
            }
            Peeked::Invalid => return Err(ProxyHeaderError::Invalid),
            Peeked::Partial => {}
        }
        if n == MAX_HEADER {
            return Err(ProxyHeaderError::Invalid);
        }
        if n == last_seen {
            // Peek returns the same bytes until more arrive: wait a little.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        last_seen = n;
    }
}

/// What the first bytes of a connection say about its PROXY header, as far as they go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peeked {
    /// A header may still be arriving: read more.
    Partial,
    /// Not a PROXY header.
    Invalid,
    /// A complete header of `len` bytes, announcing `announced` (`None` for a
    /// `LOCAL`/`UNKNOWN` header).
    Header {
        /// Bytes of the header.
        len: usize,
        /// The addresses it announces.
        announced: Option<Announced>,
    },
}

/// Parses the PROXY header at the start of `buf` (the bytes received so far).
pub fn peek_header(buf: &[u8]) -> Peeked {
    let parsed = HeaderResult::parse(buf);
    if buf.starts_with(b"PROXY ") {
        // ppp judges a v1 header before its end, calling some prefixes of a valid one
        // invalid (`PROXY TCP4 a b 51000 `, cut after the source port) and some whole lines
        // incomplete (`PROXY TCP4 x`). A v1 header is judged once its CRLF is in (or as
        // many bytes as the longest may take): one split across TCP segments is not
        // refused, and a bad line is refused at once.
        let line = &buf[..buf.len().min(V1_MAX)];
        if line.len() < V1_MAX && !line.windows(2).any(|w| w == b"\r\n") {
            return Peeked::Partial;
        }
    } else if !parsed.is_complete() {
        return Peeked::Partial;
    }
    match parsed {
        // ppp can take an `UNKNOWN` line as ending before its CRLF.
        HeaderResult::V1(Ok(h)) if !h.header.ends_with("\r\n") => Peeked::Invalid,
        HeaderResult::V1(Ok(h)) => Peeked::Header {
            len: h.header.len(),
            announced: v1_addresses(&h.addresses),
        },
        HeaderResult::V2(Ok(h)) => Peeked::Header {
            len: h.len(),
            announced: v2_addresses(&h),
        },
        _ => Peeked::Invalid,
    }
}

/// The addresses of a parsed v1 header (`None` for `UNKNOWN`).
pub fn v1_addresses(addresses: &v1::Addresses) -> Option<Announced> {
    let (source, destination) = match addresses {
        v1::Addresses::Tcp4(a) => (
            SocketAddr::new(a.source_address.into(), a.source_port),
            SocketAddr::new(a.destination_address.into(), a.destination_port),
        ),
        v1::Addresses::Tcp6(a) => (
            SocketAddr::new(a.source_address.into(), a.source_port),
            SocketAddr::new(a.destination_address.into(), a.destination_port),
        ),
        v1::Addresses::Unknown => return None,
    };
    Some(Announced {
        source,
        destination,
    })
}

/// The addresses of a parsed v2 header (`None` for `LOCAL` or a non-IP family).
pub fn v2_addresses(h: &v2::Header<'_>) -> Option<Announced> {
    if h.command == v2::Command::Local {
        return None;
    }
    let (source, destination) = match h.addresses {
        v2::Addresses::IPv4(a) => (
            SocketAddr::new(a.source_address.into(), a.source_port),
            SocketAddr::new(a.destination_address.into(), a.destination_port),
        ),
        v2::Addresses::IPv6(a) => (
            SocketAddr::new(a.source_address.into(), a.source_port),
            SocketAddr::new(a.destination_address.into(), a.destination_port),
        ),
        _ => return None,
    };
    Some(Announced {
        source,
        destination,
    })
}

/// The header announcing `client` -> `local` (the address the client reached) in `version`
/// (empty for `None`).
pub fn build_header(
    version: ProxyProtocolVersion,
    client: SocketAddr,
    local: SocketAddr,
) -> Vec<u8> {
    // Mixed families cannot be expressed; map both to IPv6 (v4-mapped) then.
    let (client, local) = match (client, local) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) | (SocketAddr::V6(_), SocketAddr::V6(_)) => {
            (client, local)
        }
        _ => (to_v6(client), to_v6(local)),
    };
    match version {
        ProxyProtocolVersion::None => Vec::new(),
        ProxyProtocolVersion::V1 => {
            let addresses = match (client, local) {
                (SocketAddr::V4(c), SocketAddr::V4(l)) => {
                    v1::Addresses::new_tcp4(*c.ip(), *l.ip(), c.port(), l.port())
                }
                (SocketAddr::V6(c), SocketAddr::V6(l)) => {
                    v1::Addresses::new_tcp6(*c.ip(), *l.ip(), c.port(), l.port())
                }
                _ => v1::Addresses::Unknown,
            };
            addresses.to_string().into_bytes()
        }
        ProxyProtocolVersion::V2 => {
            let addresses: v2::Addresses = (client, local).into();
            v2::Builder::with_addresses(
                v2::Version::Two as u8 | v2::Command::Proxy as u8,
                v2::Protocol::Stream,
                addresses,
            )
            .build()
            .unwrap_or_default()
        }
    }
}

fn to_v6(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) => SocketAddr::new(a.ip().to_ipv6_mapped().into(), a.port()),
        v6 => v6,
    }
}

/// Writes the PROXY header for `client` to a freshly connected backend.
pub async fn send_header(
    backend: &mut TcpStream,
    version: ProxyProtocolVersion,
    client: SocketAddr,
    local: SocketAddr,
) -> std::io::Result<()> {
    let header = build_header(version, client, local);
    if header.is_empty() {
        return Ok(());
    }
    backend.write_all(&header).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_header_round_trips() {
        let c: SocketAddr = "203.0.113.7:51000".parse().unwrap();
        let l: SocketAddr = "10.0.0.1:443".parse().unwrap();
        let bytes = build_header(ProxyProtocolVersion::V1, c, l);
        assert_eq!(bytes, b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\n");
        let HeaderResult::V1(Ok(h)) = HeaderResult::parse(&bytes) else {
            panic!("not v1")
        };
        let announced = v1_addresses(&h.addresses).unwrap();
        assert_eq!((announced.source, announced.destination), (c, l));
    }

    #[test]
    fn v2_header_round_trips() {
        let c: SocketAddr = "[2001:db8::7]:51000".parse().unwrap();
        let l: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
        let bytes = build_header(ProxyProtocolVersion::V2, c, l);
        let HeaderResult::V2(Ok(h)) = HeaderResult::parse(&bytes) else {
            panic!("not v2")
        };
        let announced = v2_addresses(&h).unwrap();
        assert_eq!((announced.source, announced.destination), (c, l));
        assert_eq!(h.len(), bytes.len());
    }

    #[test]
    fn v1_header_cut_after_a_port_is_incomplete_not_invalid() {
        // Found by fuzz/fuzz_targets/proxy_header.rs: ppp calls this prefix invalid.
        let header = b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\n";
        for k in 1..header.len() {
            assert_eq!(peek_header(&header[..k]), Peeked::Partial, "{k} bytes");
        }
        assert_eq!(
            peek_header(header),
            Peeked::Header {
                len: header.len(),
                announced: Some(Announced {
                    source: "203.0.113.7:51000".parse().unwrap(),
                    destination: "10.0.0.1:443".parse().unwrap(),
                })
            }
        );
        assert_eq!(peek_header(b"PROXY TCP4 x\r\n"), Peeked::Invalid);
        // ppp reads this as a 17-byte header, ending before the CRLF.
        let short = b"PROXY UNKNOWN \n\r\x01\x01\r\n";
        assert_eq!(peek_header(short), Peeked::Invalid);
        assert_eq!(peek_header(&short[..17]), Peeked::Partial);
        let mut endless = b"PROXY TCP4 ".to_vec();
        endless.resize(V1_MAX, b'1');
        assert_eq!(peek_header(&endless), Peeked::Invalid);
    }
}
