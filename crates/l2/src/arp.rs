//! ARP (RFC 826) over Ethernet for IPv4 VIPs: parse requests, build replies and
//! gratuitous ARPs (RFC 5227 section 3: an announcement is a request with the sender and
//! target protocol addresses both set to the announced address). Sans-IO: frames in, frames
//! out.

use std::net::Ipv4Addr;

use crate::frame::{ETH_HEADER, ETHERTYPE_ARP, Ignored, MIN_FRAME, Mac, pad};

const ARP_LEN: usize = 28;
const OP_REQUEST: u16 = 1;
const OP_REPLY: u16 = 2;

/// An ARP request for an IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Who asks, and where the reply goes.
    pub sender_mac: Mac,
    /// The asker's address.
    pub sender_ip: Ipv4Addr,
    /// The address asked for.
    pub target_ip: Ipv4Addr,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn ipv4(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

fn mac(b: &[u8], at: usize) -> Mac {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[at..at + 6]);
    Mac(m)
}

/// The ARP packet of an Ethernet frame: Ethernet hardware and IPv4 addresses only.
fn arp_packet(frame: &[u8]) -> Result<&[u8], Ignored> {
    if frame.len() < ETH_HEADER + ARP_LEN {
        return Err(Ignored::Truncated);
    }
    if be16(frame, 12) != ETHERTYPE_ARP {
        return Err(Ignored::Foreign);
    }
    let arp = &frame[ETH_HEADER..];
    if be16(arp, 0) != 1 || be16(arp, 2) != 0x0800 || arp[4] != 6 || arp[5] != 4 {
        return Err(Ignored::Foreign);
    }
    Ok(arp)
}

/// The request in an Ethernet frame, or why the frame is not one to answer.
pub fn parse_request(frame: &[u8]) -> Result<Request, Ignored> {
    let arp = arp_packet(frame)?;
    if be16(arp, 6) != OP_REQUEST {
        return Err(Ignored::NotRequest);
    }
    let request = Request {
        sender_mac: mac(arp, 8),
        sender_ip: ipv4(arp, 14),
        target_ip: ipv4(arp, 24),
    };
    if request.sender_mac.is_multicast() {
        return Err(Ignored::Malformed);
    }
    // Announcements and probes (RFC 5227) ask nobody.
    if request.sender_ip == request.target_ip || request.sender_ip.is_unspecified() {
        return Err(Ignored::NotRequest);
    }
    Ok(request)
}

fn build(eth_dst: Mac, op: u16, sha: Mac, spa: Ipv4Addr, tha: Mac, tpa: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(MIN_FRAME);
    f.extend_from_slice(&eth_dst.0);
    f.extend_from_slice(&sha.0);
    f.extend_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sha.0);
    f.extend_from_slice(&spa.octets());
    f.extend_from_slice(&tha.0);
    f.extend_from_slice(&tpa.octets());
    pad(f)
}

/// The reply that says `vip` is at `mac`, sent to the asker.
pub fn reply(request: &Request, vip: Ipv4Addr, mac: Mac) -> Vec<u8> {
    build(
        request.sender_mac,
        OP_REPLY,
        mac,
        vip,
        request.sender_mac,
        request.sender_ip,
    )
}

/// A request from `mac`/`ip` asking who has `target` (for probes and tests).
pub fn request(mac: Mac, ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    build(Mac::BROADCAST, OP_REQUEST, mac, ip, Mac::ZERO, target)
}

/// The sender of an ARP reply: who says it has which address.
pub fn parse_reply(frame: &[u8]) -> Result<(Mac, Ipv4Addr), Ignored> {
    let arp = arp_packet(frame)?;
    if be16(arp, 6) != OP_REPLY {
        return Err(Ignored::NotRequest);
    }
    Ok((mac(arp, 8), ipv4(arp, 14)))
}

/// Who claims an address in an ARP frame that says where an address is: a reply, or a
/// gratuitous request (sender and target address the same, RFC 5227 section 3). Probes
/// (sender address 0.0.0.0) and ordinary requests claim nothing.
pub fn parse_claim(frame: &[u8]) -> Result<(Mac, Ipv4Addr), Ignored> {
    let arp = arp_packet(frame)?;
    let (sender_mac, sender_ip, target_ip) = (mac(arp, 8), ipv4(arp, 14), ipv4(arp, 24));
    let claims = match be16(arp, 6) {
        OP_REPLY => true,
        OP_REQUEST => sender_ip == target_ip,
        _ => false,
    };
    if !claims || sender_ip.is_unspecified() {
        return Err(Ignored::NotRequest);
    }
    if sender_mac.is_multicast() {
        return Err(Ignored::Malformed);
    }
    Ok((sender_mac, sender_ip))
}

/// A gratuitous ARP announcing `vip` at `mac` to the whole segment.
pub fn gratuitous(vip: Ipv4Addr, mac: Mac) -> Vec<u8> {
    build(Mac::BROADCAST, OP_REQUEST, mac, vip, Mac::ZERO, vip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::hex;
    use crate::testing::ARPING_REQUEST;

    #[test]
    fn parses_an_arping_request() {
        let r = parse_request(&hex(ARPING_REQUEST)).unwrap();
        assert_eq!(r.sender_mac, Mac([2, 0, 0, 0, 0, 0x0c]));
        assert_eq!(r.sender_ip, Ipv4Addr::new(10, 99, 0, 100));
        assert_eq!(r.target_ip, Ipv4Addr::new(192, 0, 2, 10));
    }

    #[test]
    fn replies_to_the_asker_with_our_mac() {
        let r = parse_request(&hex(ARPING_REQUEST)).unwrap();
        let me = Mac([2, 0, 0, 0, 0, 1]);
        let frame = reply(&r, Ipv4Addr::new(192, 0, 2, 10), me);
        assert_eq!(frame.len(), MIN_FRAME);
        assert_eq!(
            frame[..42],
            hex("02000000000c02000000000108060001080006040002\
                 020000000001c000020a02000000000c0a630064")[..]
        );
        assert_eq!(parse_request(&frame), Err(Ignored::NotRequest));
        assert_eq!(parse_reply(&frame), Ok((me, Ipv4Addr::new(192, 0, 2, 10))));
    }

    #[test]
    fn a_probe_request_parses_back() {
        let me = Mac([2, 0, 0, 0, 0, 0x0c]);
        let frame = request(
            me,
            Ipv4Addr::new(10, 99, 0, 100),
            Ipv4Addr::new(192, 0, 2, 10),
        );
        assert_eq!(
            frame[..42],
            hex(ARPING_REQUEST)[..42]
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    // arping asks with target MAC ff:ff:ff:ff:ff:ff, we with zeros (RFC 826 leaves it).
                    if (32..38).contains(&i) { 0 } else { *b }
                })
                .collect::<Vec<u8>>()[..]
        );
    }

    #[test]
    fn gratuitous_is_a_broadcast_announcement() {
        let frame = gratuitous(Ipv4Addr::new(192, 0, 2, 10), Mac([2, 0, 0, 0, 0, 1]));
        assert_eq!(&frame[..6], &[0xff; 6]);
        assert_eq!(&frame[28..32], &frame[38..42], "sender IP = target IP");
        assert_eq!(parse_request(&frame), Err(Ignored::NotRequest));
    }

    #[test]
    fn replies_and_announcements_claim_their_sender_address_and_requests_do_not() {
        let other = Mac([2, 0, 0, 0, 0, 0x0b]);
        let vip = Ipv4Addr::new(192, 0, 2, 10);
        assert_eq!(parse_claim(&gratuitous(vip, other)), Ok((other, vip)));
        let request = parse_request(&hex(ARPING_REQUEST)).unwrap();
        assert_eq!(parse_claim(&reply(&request, vip, other)), Ok((other, vip)));
        assert_eq!(
            parse_claim(&hex(ARPING_REQUEST)),
            Err(Ignored::NotRequest),
            "asking is not claiming"
        );
        let probe = build(
            Mac::BROADCAST,
            OP_REQUEST,
            other,
            Ipv4Addr::UNSPECIFIED,
            Mac::ZERO,
            vip,
        );
        assert_eq!(parse_claim(&probe), Err(Ignored::NotRequest));
        assert_eq!(
            parse_claim(&gratuitous(vip, other)[..30]),
            Err(Ignored::Truncated)
        );
    }

    #[test]
    fn truncated_and_foreign_frames_are_ignored() {
        let good = hex(ARPING_REQUEST);
        assert_eq!(parse_request(&good[..41]), Err(Ignored::Truncated));
        let mut ipx = good.clone();
        ipx[16] = 0x81; // protocol type 0x8137
        assert_eq!(parse_request(&ipx), Err(Ignored::Foreign));
        let mut ieee = good.clone();
        ieee[15] = 6; // IEEE 802 hardware
        assert_eq!(parse_request(&ieee), Err(Ignored::Foreign));
        let mut ip = good;
        ip[12] = 0x08;
        ip[13] = 0x00;
        assert_eq!(parse_request(&ip), Err(Ignored::Foreign));
    }
}
