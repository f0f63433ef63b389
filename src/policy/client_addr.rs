//! The client address of a request: the one answer every consumer uses (address lists,
//! rate limit `ClientIP`, `ClientIP` affinity, the access log's `client`).
//!
//! The connection's address (the PROXY header's source when the listener accepts PROXY,
//! else the TCP peer) is the client, unless that address is a trusted proxy
//! (`--trusted-proxies`): then `X-Forwarded-For` is read from the right, skipping trusted
//! addresses, and the first untrusted one is the client (nginx `real_ip_recursive`, Envoy
//! `xff_trusted_cidrs`). A header sent by an untrusted peer is never read, so a client
//! cannot choose its own address. What sluice *appends* to `X-Forwarded-For` stays the
//! connection's address (the hop sluice saw), so the chain remains a true record.
//!
//! Allocation-free: the header's bytes are split in place.

use std::net::IpAddr;

use http::HeaderMap;
use http::header::HeaderName;

use super::ip_list::IpSet;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Most `X-Forwarded-For` entries read: a chain of trusted proxies longer than this is not
/// a deployment, it is a header built to make sluice work.
const MAX_HOPS: usize = 32;

/// The proxies whose `X-Forwarded-For` is believed (`--trusted-proxies`); empty = none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub IpSet);

impl TrustedProxies {
    /// The client address of a request that came from `hop` (the connection's address)
    /// with `headers`.
    ///
    /// From an untrusted hop: `hop`. From a trusted one: the rightmost `X-Forwarded-For`
    /// entry that is not trusted; when every entry is trusted, the leftmost; when an entry
    /// is not an address (garbage, `unknown`), the last trusted address before it — a
    /// client cannot escape a limit by sending junk, it only shares its proxy's key.
    pub fn client(&self, hop: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut current = hop.to_canonical();
        if self.0.is_empty() || !self.0.contains(current) {
            return current;
        }
        let mut seen = 0;
        // Header lines in reverse order, each line's entries from the right: the combined
        // field value read backwards (RFC 9110 5.3).
        for line in headers.get_all(&X_FORWARDED_FOR).iter().rev() {
            for entry in line.as_bytes().rsplit(|&b| b == b',') {
                let entry = entry.trim_ascii();
                if entry.is_empty() {
                    continue;
                }
                seen += 1;
                let Some(addr) = (seen <= MAX_HOPS).then(|| parse_entry(entry)).flatten() else {
                    return current;
                };
                current = addr;
                if !self.0.contains(current) {
                    return current;
                }
            }
        }
        current
    }
}

/// One `X-Forwarded-For` element: an address, optionally with a port (`1.2.3.4:80`,
/// `[2001:db8::1]:80`), as some proxies write it.
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?;
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Some(addr.to_canonical());
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (addr, port) = rest.split_once("]:")?;
        port.parse::<u16>().ok()?;
        return addr.parse::<IpAddr>().ok().map(|a| a.to_canonical());
    }
    let (addr, port) = text.split_once(':')?;
    port.parse::<u16>().ok()?;
    addr.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ip_list::Cidr;

    fn trusted(list: &[&str]) -> TrustedProxies {
        TrustedProxies(IpSet::new(list.iter().map(|c| Cidr::parse(c).unwrap())))
    }

    fn xff(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append("x-forwarded-for", l.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing() {
        let t = trusted(&["10.0.0.0/8"]);
        let h = xff(&["1.1.1.1, 10.0.0.5"]);
        assert_eq!(t.client(ip("203.0.113.9"), &h), ip("203.0.113.9"));
        assert_eq!(
            TrustedProxies::default().client(ip("10.0.0.1"), &h),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn from_a_trusted_peer_the_rightmost_untrusted_entry_is_the_client() {
        let t = trusted(&["10.0.0.0/8", "2001:db8::/32"]);
        // The client prepended a lie; the trusted chain 10.0.0.7 -> peer is skipped.
        let h = xff(&["6.6.6.6, 198.51.100.4, 10.0.0.7"]);
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("198.51.100.4"));
        // Several header lines are one list, the last line the closest hop.
        let h = xff(&["6.6.6.6", "198.51.100.4,10.0.0.7", "2001:db8::9"]);
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("198.51.100.4"));
        // Ports and brackets as some proxies write them.
        let h = xff(&["[2001:db8:ffff::1]:443, 198.51.100.4:8080"]);
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("198.51.100.4"));
    }

    #[test]
    fn every_entry_trusted_gives_the_leftmost_and_none_gives_the_peer() {
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(
            t.client(ip("10.0.0.1"), &xff(&["10.1.1.1, 10.2.2.2"])),
            ip("10.1.1.1")
        );
        assert_eq!(t.client(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
        assert_eq!(t.client(ip("10.0.0.1"), &xff(&[" , ,"])), ip("10.0.0.1"));
    }

    #[test]
    fn malformed_forwarded_for_stops_at_the_last_trusted_hop() {
        let t = trusted(&["10.0.0.0/8"]);
        for bad in [
            "unknown",
            "1.2.3.4.5",
            "1.2.3.4:99999",
            "[::1",
            "caf\u{e9}",
            "::1]:80",
        ] {
            let mut h = HeaderMap::new();
            h.append(
                "x-forwarded-for",
                http::HeaderValue::from_bytes(format!("9.9.9.9, {bad}, 10.3.3.3").as_bytes())
                    .unwrap(),
            );
            assert_eq!(t.client(ip("10.0.0.1"), &h), ip("10.3.3.3"), "{bad:?}");
        }
        // A chain longer than MAX_HOPS of trusted entries stops there.
        let long = vec!["10.0.0.2"; MAX_HOPS + 5].join(",");
        let h = xff(&[&format!("9.9.9.9,{long}")]);
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("10.0.0.2"));
    }

    proptest::proptest! {
        /// Whatever bytes the header holds: no panic, an untrusted peer is its own client, and
        /// a trusted peer's client is the peer or an address written in the header.
        #[test]
        fn the_client_is_the_peer_or_an_address_from_the_header(
            value in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            trusted_peer in proptest::prelude::any::<bool>(),
        ) {
            let t = trusted(&["10.0.0.0/8"]);
            let peer = if trusted_peer { ip("10.0.0.1") } else { ip("192.0.2.1") };
            let mut h = HeaderMap::new();
            if let Ok(v) = http::HeaderValue::from_bytes(&value) {
                h.append("x-forwarded-for", v);
            }
            let client = t.client(peer, &h);
            if !trusted_peer {
                proptest::prop_assert_eq!(client, peer);
            } else if client != peer {
                let written = String::from_utf8_lossy(&value).into_owned();
                let canonical = written.split(',').filter_map(|e| parse_entry(e.trim().as_bytes()));
                proptest::prop_assert!(canonical.into_iter().any(|a| a == client));
            }
        }
    }

    #[test]
    fn ipv4_mapped_peers_are_seen_as_ipv4() {
        let t = trusted(&["10.0.0.0/8"]);
        let h = xff(&["198.51.100.4"]);
        assert_eq!(t.client(ip("::ffff:10.0.0.1"), &h), ip("198.51.100.4"));
        assert_eq!(
            TrustedProxies::default().client(ip("::ffff:192.0.2.1"), &h),
            ip("192.0.2.1")
        );
    }
}
