//! The PROXY protocol v1/v2 header parse (`proxy_protocol::peek_header`, what a listener
//! with `proxyProtocol` runs on the bytes it has peeked).
//!
//! Invariants, for every header it takes:
//! - its length is within the input, the header alone gives the same answer (the client's
//!   first bytes after it change nothing), and every strict prefix of it is incomplete (a
//!   header split across TCP segments is never refused);
//! - re-encoded by sluice's own writer (`build_header`, what TCP backends receive) in the
//!   same version with the same source and destination, it parses to the same addresses,
//!   taking the whole encoding (and `ppp` reads the same destination as sluice).

#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use ppp::{HeaderResult, v1, v2};
use sluice::config::ProxyProtocolVersion;
use sluice::fuzzing::{Peeked, build_header, peek_header};
use sluice_fuzz::prefixes;

/// Version and destination of the header `ppp` reads at the start of `data`.
fn destination(data: &[u8]) -> Option<(ProxyProtocolVersion, SocketAddr)> {
    match HeaderResult::parse(data) {
        HeaderResult::V1(Ok(h)) => match h.addresses {
            v1::Addresses::Tcp4(a) => Some((
                ProxyProtocolVersion::V1,
                SocketAddr::new(a.destination_address.into(), a.destination_port),
            )),
            v1::Addresses::Tcp6(a) => Some((
                ProxyProtocolVersion::V1,
                SocketAddr::new(a.destination_address.into(), a.destination_port),
            )),
            v1::Addresses::Unknown => None,
        },
        HeaderResult::V2(Ok(h)) => match h.addresses {
            v2::Addresses::IPv4(a) => Some((
                ProxyProtocolVersion::V2,
                SocketAddr::new(a.destination_address.into(), a.destination_port),
            )),
            v2::Addresses::IPv6(a) => Some((
                ProxyProtocolVersion::V2,
                SocketAddr::new(a.destination_address.into(), a.destination_port),
            )),
            _ => None,
        },
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Peeked::Header { len, announced } = peek_header(data) else {
        return;
    };
    assert!(len > 0 && len <= data.len(), "header of {len} bytes in {}", data.len());
    assert_eq!(peek_header(&data[..len]), Peeked::Header { len, announced });
    for k in prefixes(len) {
        let prefix = peek_header(&data[..k]);
        assert_eq!(prefix, Peeked::Partial, "prefix of {k} bytes");
    }

    let Some(announced) = announced else {
        return;
    };
    let (version, to) = destination(data).expect("a header with a source has a destination");
    assert_eq!(to, announced.destination, "ppp reads another destination");
    let encoded = build_header(version, announced.source, announced.destination);
    assert_eq!(
        peek_header(&encoded),
        Peeked::Header {
            len: encoded.len(),
            announced: Some(announced)
        },
        "re-encoded as {:?}",
        String::from_utf8_lossy(&encoded)
    );
});
