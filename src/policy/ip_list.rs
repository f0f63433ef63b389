//! Sets of IPv4 and IPv6 networks (`ipAllowList`, `ipDenyList`, `--trusted-proxies`) and
//! the one CIDR grammar they are written in.
//!
//! A set is a prefix trie per address family (`prefix-trie`), so a lookup costs a walk of
//! at most 32 or 128 bits whatever the number of networks: 10,000 CIDRs answer in tens of
//! nanoseconds (`benches/policy.rs`), where a scan would cost microseconds. IPv4-mapped IPv6
//! addresses (`::ffff:10.0.0.1`, what a dual-stack socket reports) are looked up as IPv4, so a
//! list written in IPv4 holds for them. This module only answers "is the address in the set";
//! what a match means (403, trusted hop) is decided by its callers.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use prefix_trie::PrefixSet;

/// One network: an address with its prefix length, host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    /// The network address.
    pub addr: IpAddr,
    /// Prefix length: 0..=32 (IPv4) or 0..=128 (IPv6).
    pub len: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a `/32` or `/128`).
    ///
    /// Host bits must be zero (`10.0.0.1/8` is refused, naming `10.0.0.0/8`): a list that
    /// says more than it means is a typo more often than an intent. The error is a sentence
    /// for a validation message.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (addr, len) = match text.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not an IPv4 or IPv6 address or CIDR"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(len) => match len.parse::<u8>() {
                Ok(n) if n <= max && (len.len() == 1 || !len.starts_with('0')) => n,
                _ => return Err(format!("{text:?}: prefix length must be 0..={max}")),
            },
        };
        let cidr = Cidr {
            addr: mask(addr, len),
            len,
        };
        if cidr.addr != addr {
            return Err(format!(
                "{text:?} has host bits set (the network is {cidr})"
            ));
        }
        Ok(cidr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

/// A set of networks, answering "is this address in one of them".
#[derive(Clone, Default)]
pub struct IpSet {
    /// The networks as given (sorted, deduplicated): what equality and `Debug` compare.
    cidrs: Vec<Cidr>,
    v4: PrefixSet<(u32, u8)>,
    v6: PrefixSet<(u128, u8)>,
}

impl IpSet {
    /// The set of `cidrs`.
    pub fn new(cidrs: impl IntoIterator<Item = Cidr>) -> IpSet {
        let mut cidrs: Vec<Cidr> = cidrs.into_iter().collect();
        cidrs.sort_unstable();
        cidrs.dedup();
        let mut set = IpSet {
            cidrs: Vec::new(),
            v4: PrefixSet::new(),
            v6: PrefixSet::new(),
        };
        for c in &cidrs {
            match c.addr {
                IpAddr::V4(a) => {
                    set.v4.insert((u32::from(a), c.len));
                }
                IpAddr::V6(a) => {
                    set.v6.insert((u128::from(a), c.len));
                }
            }
        }
        set.cidrs = cidrs;
        set
    }

    /// Whether no network is in the set.
    pub fn is_empty(&self) -> bool {
        self.cidrs.is_empty()
    }

    /// The networks, sorted.
    pub fn cidrs(&self) -> &[Cidr] {
        &self.cidrs
    }

    /// Whether `addr` lies in one of the networks (IPv4-mapped IPv6 as IPv4).
    pub fn contains(&self, addr: IpAddr) -> bool {
        match addr.to_canonical() {
            IpAddr::V4(a) => self.v4.is_covered(&(u32::from(a), 32)),
            IpAddr::V6(a) => self.v6.is_covered(&(u128::from(a), 128)),
        }
    }
}

impl PartialEq for IpSet {
    fn eq(&self, other: &Self) -> bool {
        self.cidrs == other.cidrs
    }
}

impl Eq for IpSet {}

impl fmt::Debug for IpSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.cidrs.iter().map(|c| c.to_string()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(list: &[&str]) -> IpSet {
        IpSet::new(list.iter().map(|c| Cidr::parse(c).unwrap()))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_is_in_the_set_when_a_network_covers_it() {
        let s = set(&["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "0.0.0.0/32"]);
        assert!(s.contains(ip("10.1.2.3")));
        assert!(s.contains(ip("192.0.2.7")));
        assert!(!s.contains(ip("192.0.2.8")));
        assert!(!s.contains(ip("11.0.0.1")));
        assert!(s.contains(ip("2001:db8:1::5")));
        assert!(!s.contains(ip("2001:db9::1")));
        assert!(!set(&[]).contains(ip("10.0.0.1")));
        assert!(set(&["0.0.0.0/0"]).contains(ip("203.0.113.9")));
        assert!(set(&["::/0"]).contains(ip("::1")));
        assert!(!set(&["::/0"]).contains(ip("127.0.0.1")));
    }

    #[test]
    fn ipv4_mapped_ipv6_addresses_match_ipv4_networks() {
        let s = set(&["10.0.0.0/8"]);
        assert!(s.contains(ip("::ffff:10.9.9.9")));
        assert!(!s.contains(ip("::ffff:11.9.9.9")));
    }

    #[test]
    fn cidrs_with_host_bits_or_bad_lengths_are_refused_with_the_network_named() {
        assert_eq!(
            Cidr::parse("10.0.0.1/8").unwrap_err(),
            "\"10.0.0.1/8\" has host bits set (the network is 10.0.0.0/8)"
        );
        for bad in [
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0.0/",
            "10.0.0.0/08",
            "10.0.0/8",
            "",
            "host.example",
            "10.0.0.0/8 ",
            "10.0.0.0/-1",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(
            Cidr::parse("2001:DB8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert!(Cidr::parse("10.0.0.0/0").is_err());
        assert_eq!(Cidr::parse("0.0.0.0/0").unwrap().len, 0);
    }

    #[test]
    fn sets_with_the_same_networks_in_another_order_are_equal() {
        assert_eq!(
            set(&["10.0.0.0/8", "::1", "10.0.0.0/8"]),
            set(&["::1", "10.0.0.0/8"])
        );
        assert_ne!(set(&["10.0.0.0/8"]), set(&["10.0.0.0/9"]));
    }
}
