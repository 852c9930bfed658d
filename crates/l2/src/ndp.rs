//! IPv6 neighbour discovery (RFC 4861) for IPv6 VIPs: parse neighbour solicitations
//! (section 4.3, validated per 7.1.1), build solicited advertisements (7.2.4) and
//! unsolicited ones (7.2.6) with the target link-layer address option. Sans-IO.

use std::net::Ipv6Addr;

use crate::frame::{ETH_HEADER, ETHERTYPE_IPV6, Ignored, Mac, pad};

const IPV6_HEADER: usize = 40;
const ICMPV6: u8 = 58;
const NEIGHBOR_SOLICITATION: u8 = 135;
const NEIGHBOR_ADVERTISEMENT: u8 = 136;
const OPT_SOURCE_LL: u8 = 1;
const OPT_TARGET_LL: u8 = 2;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// A neighbour solicitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Solicitation {
    /// The Ethernet source, where the answer goes when the NS carries no address option.
    pub eth_src: Mac,
    /// Unspecified (`::`) for duplicate address detection.
    pub src: Ipv6Addr,
    /// The address asked for.
    pub target: Ipv6Addr,
    /// The asker's source link-layer address option, where the answer goes if present.
    pub source_ll: Option<Mac>,
}

fn ipv6(b: &[u8], at: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(a)
}

/// RFC 4443 section 2.3: the one's complement sum over the pseudo-header and the message.
fn checksum(src: Ipv6Addr, dst: Ipv6Addr, icmp: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            sum += hi | pair.get(1).map_or(0, |b| u32::from(*b));
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(icmp.len() as u32).to_be_bytes());
    add(&[0, 0, 0, ICMPV6]);
    add(icmp);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn is_solicited_node(a: Ipv6Addr) -> bool {
    let o = a.octets();
    o[..11] == [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0] && o[11] == 1 && o[12] == 0xff
}

/// A neighbour discovery message of one type, checked (sections 7.1.1 and 7.1.2: hop
/// limit 255, so not forwarded; code 0; a valid checksum; a unicast target).
struct Message<'f> {
    eth_src: Mac,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    target: Ipv6Addr,
    /// The options after the target.
    options: &'f [u8],
}

/// The ICMPv6 message of type `kind` in an Ethernet frame, or why there is none.
fn parse_message(frame: &[u8], kind: u8) -> Result<Message<'_>, Ignored> {
    if frame.len() < ETH_HEADER + IPV6_HEADER {
        return Err(Ignored::Truncated);
    }
    if u16::from_be_bytes([frame[12], frame[13]]) != ETHERTYPE_IPV6 {
        return Err(Ignored::Foreign);
    }
    let ip = &frame[ETH_HEADER..];
    if ip[0] >> 4 != 6 {
        return Err(Ignored::Malformed);
    }
    if ip[6] != ICMPV6 {
        return Err(Ignored::Foreign);
    }
    let payload_len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    let Some(icmp) = ip[IPV6_HEADER..].get(..payload_len) else {
        return Err(Ignored::Truncated);
    };
    if icmp.first() != Some(&kind) {
        return Err(Ignored::NotRequest);
    }
    if icmp.len() < 24 {
        return Err(Ignored::Truncated);
    }
    let (src, dst) = (ipv6(ip, 8), ipv6(ip, 24));
    if ip[7] != 255 || icmp[1] != 0 || checksum(src, dst, icmp) != 0 {
        return Err(Ignored::Malformed);
    }
    let target = ipv6(icmp, 8);
    if target.is_multicast() {
        return Err(Ignored::Malformed);
    }
    let mut eth_src = [0u8; 6];
    eth_src.copy_from_slice(&frame[6..12]);
    Ok(Message {
        eth_src: Mac(eth_src),
        src,
        dst,
        target,
        options: &icmp[24..],
    })
}

/// The link-layer address in the last option of type `kind`, if any; options of length
/// zero or running past the end are malformed.
fn link_layer_option(mut options: &[u8], kind: u8) -> Result<Option<Mac>, Ignored> {
    let mut found = None;
    while !options.is_empty() {
        let len = usize::from(*options.get(1).ok_or(Ignored::Malformed)?) * 8;
        if len == 0 || len > options.len() {
            return Err(Ignored::Malformed);
        }
        if options[0] == kind && len >= 8 {
            let mut m = [0u8; 6];
            m.copy_from_slice(&options[2..8]);
            found = Some(Mac(m));
        }
        options = &options[len..];
    }
    Ok(found)
}

/// The solicitation in an Ethernet frame, or why the frame is not one to answer.
pub fn parse_solicitation(frame: &[u8]) -> Result<Solicitation, Ignored> {
    let ns = parse_message(frame, NEIGHBOR_SOLICITATION)?;
    let source_ll = link_layer_option(ns.options, OPT_SOURCE_LL)?;
    if ns.src.is_unspecified() && (!is_solicited_node(ns.dst) || source_ll.is_some()) {
        return Err(Ignored::Malformed);
    }
    Ok(Solicitation {
        eth_src: ns.eth_src,
        src: ns.src,
        target: ns.target,
        source_ll,
    })
}

/// Who claims an address in a neighbour advertisement (section 4.4, validated per 7.1.2):
/// the target link-layer address option, or the Ethernet source without one.
pub fn parse_advertisement(frame: &[u8]) -> Result<(Mac, Ipv6Addr), Ignored> {
    let na = parse_message(frame, NEIGHBOR_ADVERTISEMENT)?;
    let claimer = link_layer_option(na.options, OPT_TARGET_LL)?.unwrap_or(na.eth_src);
    Ok((claimer, na.target))
}

fn multicast_mac(a: Ipv6Addr) -> Mac {
    let o = a.octets();
    Mac([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

fn advertisement(eth_dst: Mac, dst: Ipv6Addr, vip: Ipv6Addr, mac: Mac, solicited: bool) -> Vec<u8> {
    // Router 0, Solicited as asked, Override 1: the owner's answer replaces a stale entry.
    let flags = if solicited { 0x60 } else { 0x20 };
    let mut icmp = vec![NEIGHBOR_ADVERTISEMENT, 0, 0, 0, flags, 0, 0, 0];
    icmp.extend_from_slice(&vip.octets());
    icmp.extend_from_slice(&[OPT_TARGET_LL, 1]);
    icmp.extend_from_slice(&mac.0);
    // The VIP is the source: it is the address the advertisement speaks for, and the
    // announce interface needs no address of its own.
    let sum = checksum(vip, dst, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());

    let mut f = Vec::with_capacity(ETH_HEADER + IPV6_HEADER + icmp.len());
    f.extend_from_slice(&eth_dst.0);
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[ICMPV6, 255]);
    f.extend_from_slice(&vip.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&icmp);
    pad(f)
}

/// The advertisement answering `ns` for `vip` at `mac` (section 7.2.4): to the asker, or to
/// all nodes when the asker has no address yet (duplicate address detection).
pub fn advertise(ns: &Solicitation, vip: Ipv6Addr, mac: Mac) -> Vec<u8> {
    if ns.src.is_unspecified() {
        return unsolicited(vip, mac);
    }
    let eth_dst = ns.source_ll.unwrap_or(ns.eth_src);
    advertisement(eth_dst, ns.src, vip, mac, true)
}

/// An unsolicited advertisement of `vip` at `mac` to all nodes (section 7.2.6).
pub fn unsolicited(vip: Ipv6Addr, mac: Mac) -> Vec<u8> {
    advertisement(multicast_mac(ALL_NODES), ALL_NODES, vip, mac, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::hex;
    use crate::testing::NDISC6_SOLICITATION;

    // The kernel's duplicate address detection for fe80::ff:fe00:c (with a nonce option,
    // RFC 7527), captured the same way.
    const DAD: &str = "3333ff00000c02000000000c86dd6000000000203aff\
                       00000000000000000000000000000000\
                       ff0200000000000000000001ff00000c\
                       870067f300000000fe80000000000000000000fffe00000c\
                       0e01070e70f18f13";

    fn ns() -> Vec<u8> {
        hex(NDISC6_SOLICITATION)
    }

    #[test]
    fn duplicate_address_detection_is_answered_to_all_nodes() {
        let s = parse_solicitation(&hex(DAD)).unwrap();
        assert!(s.src.is_unspecified());
        assert_eq!(s.source_ll, None);
        let f = advertise(&s, s.target, Mac([2, 0, 0, 0, 0, 1]));
        assert_eq!(ipv6(&f, 38), ALL_NODES);
        assert_eq!(f[58], 0x20, "not solicited");
    }

    #[test]
    fn parses_an_ndisc6_solicitation() {
        let s = parse_solicitation(&ns()).unwrap();
        assert_eq!(s.src, "fd00:99::64".parse::<Ipv6Addr>().unwrap());
        assert_eq!(s.target, "2001:db8:1::10".parse::<Ipv6Addr>().unwrap());
        assert_eq!(s.source_ll, Some(Mac([2, 0, 0, 0, 0, 0x0c])));
    }

    #[test]
    fn advertisement_is_solicited_with_override_and_a_valid_checksum() {
        let s = parse_solicitation(&ns()).unwrap();
        let me = Mac([2, 0, 0, 0, 0, 1]);
        let f = advertise(&s, s.target, me);
        assert_eq!(&f[..6], &[2, 0, 0, 0, 0, 0x0c]);
        assert_eq!(f[21], 255, "hop limit");
        let icmp = &f[54..];
        assert_eq!(icmp[0], NEIGHBOR_ADVERTISEMENT);
        assert_eq!(icmp[4], 0x60, "solicited + override");
        assert_eq!(&icmp[24..32], &[2, 1, 2, 0, 0, 0, 0, 1]);
        assert_eq!(checksum(ipv6(&f, 22), ipv6(&f, 38), icmp), 0);
        assert_eq!(parse_solicitation(&f), Err(Ignored::NotRequest));
    }

    #[test]
    fn unsolicited_goes_to_all_nodes() {
        let f = unsolicited("2001:db8:1::10".parse().unwrap(), Mac([2, 0, 0, 0, 0, 1]));
        assert_eq!(&f[..6], &[0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!(f[58], 0x20, "override only");
        assert_eq!(ipv6(&f, 38), ALL_NODES);
    }

    #[test]
    fn an_advertisement_claims_its_target_for_its_link_layer_address() {
        let other = Mac([2, 0, 0, 0, 0, 0x0b]);
        let vip: Ipv6Addr = "2001:db8:1::10".parse().unwrap();
        assert_eq!(
            parse_advertisement(&unsolicited(vip, other)),
            Ok((other, vip))
        );
        let ns = parse_solicitation(&hex(NDISC6_SOLICITATION)).unwrap();
        assert_eq!(
            parse_advertisement(&advertise(&ns, vip, other)),
            Ok((other, vip))
        );
        assert_eq!(
            parse_advertisement(&hex(NDISC6_SOLICITATION)),
            Err(Ignored::NotRequest)
        );
        let mut corrupted = unsolicited(vip, other);
        corrupted[ETH_HEADER + IPV6_HEADER + 10] ^= 1;
        assert_eq!(parse_advertisement(&corrupted), Err(Ignored::Malformed));
    }

    #[test]
    fn broken_solicitations_are_ignored() {
        let good = ns();
        assert_eq!(parse_solicitation(&good[..60]), Err(Ignored::Truncated));
        let mut hop = good.clone();
        hop[21] = 64;
        assert_eq!(parse_solicitation(&hop), Err(Ignored::Malformed));
        let mut sum = good.clone();
        sum[57] ^= 1;
        assert_eq!(parse_solicitation(&sum), Err(Ignored::Malformed));
        let mut udp = good.clone();
        udp[20] = 17;
        assert_eq!(parse_solicitation(&udp), Err(Ignored::Foreign));
        let mut zero_opt = good;
        zero_opt[79] = 0;
        assert_eq!(parse_solicitation(&zero_opt), Err(Ignored::Malformed));
    }
}
