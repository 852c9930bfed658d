//! Address ranges of LoadBalancer pools: `A-B`, a CIDR, or a single address.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// An inclusive range of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressRange {
    first: IpAddr,
    last: IpAddr,
}

impl AddressRange {
    /// A range from `first` to `last` inclusive; `None` if the families differ or `last < first`.
    pub fn new(first: IpAddr, last: IpAddr) -> Option<Self> {
        let same_family = first.is_ipv4() == last.is_ipv4();
        (same_family && to_u128(first) <= to_u128(last)).then_some(AddressRange { first, last })
    }

    /// The lowest address of the range.
    pub fn first(&self) -> IpAddr {
        self.first
    }

    /// The highest address of the range.
    pub fn last(&self) -> IpAddr {
        self.last
    }

    /// How many addresses the range holds (at most 2^128 - 1 for the whole IPv6 space, which
    /// no pool uses; saturates there).
    pub fn size(&self) -> u128 {
        (to_u128(self.last) - to_u128(self.first)).saturating_add(1)
    }

    /// Whether `ip` is in the range (an address of the other family never is).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.first.is_ipv4()
            && (to_u128(self.first)..=to_u128(self.last)).contains(&to_u128(ip))
    }

    /// Whether the two ranges share an address.
    pub fn overlaps(&self, other: &AddressRange) -> bool {
        self.first.is_ipv4() == other.first.is_ipv4()
            && to_u128(self.first) <= to_u128(other.last)
            && to_u128(other.first) <= to_u128(self.last)
    }

    /// The address `index` places after the first, if inside the range.
    pub fn nth(&self, index: u128) -> Option<IpAddr> {
        (index < self.size()).then(|| from_u128(to_u128(self.first) + index, self.first.is_ipv4()))
    }

    /// Where `ip` lies in the range, if inside.
    pub fn index_of(&self, ip: IpAddr) -> Option<u128> {
        self.contains(ip).then(|| to_u128(ip) - to_u128(self.first))
    }
}

impl From<IpNet> for AddressRange {
    fn from(net: IpNet) -> Self {
        AddressRange {
            first: net.network(),
            last: net.broadcast(),
        }
    }
}

impl FromStr for AddressRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some((a, b)) = s.split_once('-') {
            let first: IpAddr = a
                .trim()
                .parse()
                .map_err(|_| format!("{:?} is not an IP address", a.trim()))?;
            let last: IpAddr = b
                .trim()
                .parse()
                .map_err(|_| format!("{:?} is not an IP address", b.trim()))?;
            return AddressRange::new(first, last).ok_or_else(|| {
                format!("{s:?} is not a range: both ends must be of one family, the first not above the last")
            });
        }
        if s.contains('/') {
            let net: IpNet = s
                .parse()
                .map_err(|_| format!("{s:?} is not a CIDR such as 192.0.2.0/28"))?;
            if net.trunc() != net {
                return Err(format!(
                    "{s:?} has host bits set; the network is {}",
                    net.trunc()
                ));
            }
            return Ok(net.into());
        }
        let ip: IpAddr = s
            .parse()
            .map_err(|_| format!("{s:?} is not an address range (A-B), a CIDR or an IP address"))?;
        Ok(AddressRange {
            first: ip,
            last: ip,
        })
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4).into(),
        IpAddr::V6(v6) => v6.into(),
    }
}

fn from_u128(n: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4((n as u32).into())
    } else {
        IpAddr::V6(n.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> AddressRange {
        s.parse().unwrap()
    }

    #[test]
    fn parses_ranges_cidrs_and_single_addresses() {
        let a = r("192.0.2.10-192.0.2.50");
        assert_eq!(a.size(), 41);
        assert_eq!(a.nth(40), Some("192.0.2.50".parse().unwrap()));
        assert_eq!(a.nth(41), None);
        assert_eq!(r("2001:db8:1::/124").size(), 16);
        assert_eq!(r("192.0.2.7").size(), 1);
        assert_eq!(r("192.0.2.0/28").to_string(), "192.0.2.0-192.0.2.15");
    }

    #[test]
    fn rejects_bad_ranges() {
        assert!("192.0.2.50-192.0.2.10".parse::<AddressRange>().is_err());
        assert!("192.0.2.1-2001:db8::1".parse::<AddressRange>().is_err());
        assert!("192.0.2.1/28".parse::<AddressRange>().is_err());
        assert!("banana".parse::<AddressRange>().is_err());
    }

    #[test]
    fn overlap_and_containment() {
        assert!(r("192.0.2.0/28").overlaps(&r("192.0.2.15-192.0.2.20")));
        assert!(!r("192.0.2.0/28").overlaps(&r("192.0.2.16-192.0.2.20")));
        assert!(!r("192.0.2.0/28").overlaps(&r("2001:db8::/64")));
        assert!(r("2001:db8::/64").contains("2001:db8::5".parse().unwrap()));
        assert_eq!(
            r("192.0.2.10-192.0.2.50").index_of("192.0.2.12".parse().unwrap()),
            Some(2)
        );
    }
}
