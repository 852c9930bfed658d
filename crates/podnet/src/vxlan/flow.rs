//! The UDP source port of an encapsulated frame: a hash of the inner flow, so routers that
//! spread traffic over equal-cost paths by the outer 5-tuple keep each inner flow on one
//! path in order while different flows spread (RFC 7348 section 5, "Source Port").

use std::ops::RangeInclusive;

/// The dynamic port range the RFC recommends for the source port.
pub const SOURCE_PORTS: RangeInclusive<u16> = 49152..=65535;

const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const ETHERTYPE_IPV6: [u8; 2] = [0x86, 0xdd];
const TCP: u8 = 6;
const UDP: u8 = 17;
const SCTP: u8 = 132;

/// The source port for `frame` (an Ethernet frame): its IP addresses, protocol and ports
/// when it carries IPv4 or IPv6 (the ports only in the first fragment's header, which every
/// fragment of a flow lacks alike), else its MACs and EtherType.
pub fn source_port(frame: &[u8]) -> u16 {
    let span = SOURCE_PORTS.end() - SOURCE_PORTS.start() + 1;
    let (addresses, protocol, ports) = flow_key(frame);
    let hash = fnv1a(addresses.iter().chain(&[protocol]).chain(ports));
    SOURCE_PORTS.start() + (hash % u64::from(span)) as u16
}

/// What names the frame's flow: addresses, protocol and ports.
fn flow_key(frame: &[u8]) -> (&[u8], u8, &[u8]) {
    let ethertype = frame.get(12..14);
    let ip = frame.get(14..).unwrap_or_default();
    let (addresses, protocol, transport) = match ethertype {
        Some(t) if t == ETHERTYPE_IPV4 && ip.len() >= 20 => {
            let header_len = usize::from(ip[0] & 0x0f) * 4;
            let first_fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff == 0;
            let transport = if first_fragment {
                ip.get(header_len..)
            } else {
                None
            };
            (&ip[12..20], ip[9], transport)
        }
        Some(t) if t == ETHERTYPE_IPV6 && ip.len() >= 40 => (&ip[8..40], ip[6], ip.get(40..)),
        _ => (frame.get(..14).unwrap_or(frame), 0, None),
    };
    let ports = match (protocol, transport) {
        (TCP | UDP | SCTP, Some(t)) if t.len() >= 4 => &t[..4],
        _ => &[],
    };
    (addresses, protocol, ports)
}

/// FNV-1a, 64 bits: stable across runs and builds, so every node hashes alike.
fn fnv1a<'a>(bytes: impl Iterator<Item = &'a u8>) -> u64 {
    bytes.fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vxlan::captured;
    use crate::vxlan::header::HEADER_LEN;

    fn frame(payload: &[u8]) -> &[u8] {
        &payload[HEADER_LEN..]
    }

    #[test]
    fn every_port_is_in_the_dynamic_range_and_stable() {
        for payload in [
            captured::ARP_REQUEST,
            captured::ARP_REPLY,
            captured::ICMP_REQUEST,
            captured::IPV6_NEIGHBOR_SOLICITATION,
            &[],
        ] {
            let port = source_port(payload.get(HEADER_LEN..).unwrap_or_default());
            assert!(SOURCE_PORTS.contains(&port), "{port}");
            assert_eq!(
                port,
                source_port(payload.get(HEADER_LEN..).unwrap_or_default())
            );
        }
    }

    #[test]
    fn tcp_flows_differ_by_port_and_a_flow_keeps_its_port() {
        // The captured echo request, turned into TCP segments of two connections.
        let mut a = frame(captured::ICMP_REQUEST).to_vec();
        a[14 + 9] = TCP;
        let mut b = a.clone();
        b[14 + 20 + 1] ^= 1;
        let mut a_later = a.clone();
        a_later[14 + 20 + 8] ^= 0xff;
        assert_ne!(source_port(&a), source_port(&b));
        assert_eq!(source_port(&a), source_port(&a_later));
    }
}
