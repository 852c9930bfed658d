//! The VXLAN header (RFC 7348 section 5): 8 bytes in front of the inner Ethernet frame.
//!
//! ```text
//! |R|R|R|R|I|R|R|R|        Reserved (24)          |
//! |          VNI (24)                |  Reserved  |
//! ```
//! Sent with only the I flag set and every reserved bit zero. Received headers must carry
//! the I flag; like Linux (stricter than the RFC, which says to ignore them) a header with
//! any reserved bit set is refused, so the two ends agree on what crosses.

use super::DropReason;

/// Bytes of the VXLAN header.
pub const HEADER_LEN: usize = 8;
/// Bytes of an Ethernet header without a VLAN tag: the shortest inner frame worth reading.
pub const ETHERNET_HEADER_LEN: usize = 14;
/// The I flag: the VNI is valid.
const FLAG_VNI: u8 = 0x08;

/// The header that carries a frame of `vni` (24 bits; higher bits are ignored).
pub fn encode(vni: u32) -> [u8; HEADER_LEN] {
    let vni = vni.to_be_bytes();
    [FLAG_VNI, 0, 0, 0, vni[1], vni[2], vni[3], 0]
}

/// The VNI and the inner Ethernet frame of a received UDP payload, or why it is dropped.
pub fn decode(payload: &[u8]) -> Result<(u32, &[u8]), DropReason> {
    if payload.len() < HEADER_LEN + ETHERNET_HEADER_LEN {
        return Err(DropReason::TooShort);
    }
    let (header, frame) = payload.split_at(HEADER_LEN);
    if header[0] & FLAG_VNI == 0 {
        return Err(DropReason::NoVniFlag);
    }
    if header[0] != FLAG_VNI || header[1..4] != [0, 0, 0] || header[7] != 0 {
        return Err(DropReason::ReservedBits);
    }
    let vni = u32::from_be_bytes([0, header[4], header[5], header[6]]);
    Ok((vni, frame))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vxlan::captured;

    #[test]
    fn a_kernel_vxlan_payload_decodes_to_its_vni_and_frame() {
        let payload = captured::ARP_REQUEST;
        let (vni, frame) = decode(payload).unwrap();
        assert_eq!(vni, 42);
        assert_eq!(frame.len(), 42);
        assert_eq!(&frame[..6], &[0xff; 6]);
        assert_eq!(&frame[12..14], &[0x08, 0x06]);
    }

    #[test]
    fn the_encoded_header_is_byte_for_byte_what_the_kernel_sends() {
        assert_eq!(encode(42), captured::ICMP_REQUEST[..HEADER_LEN]);
        assert_eq!(encode(0x00ab_cdef), [0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0]);
    }

    #[test]
    fn each_bad_header_has_its_own_reason() {
        let mut no_flag = captured::ICMP_REQUEST.to_vec();
        no_flag[0] = 0;
        assert_eq!(decode(&no_flag), Err(DropReason::NoVniFlag));

        let mut reserved = captured::ICMP_REQUEST.to_vec();
        reserved[0] |= 0x01;
        assert_eq!(decode(&reserved), Err(DropReason::ReservedBits));
        let mut reserved = captured::ICMP_REQUEST.to_vec();
        reserved[7] = 1;
        assert_eq!(decode(&reserved), Err(DropReason::ReservedBits));

        let short = &captured::ICMP_REQUEST[..HEADER_LEN + ETHERNET_HEADER_LEN - 1];
        assert_eq!(decode(short), Err(DropReason::TooShort));
        assert_eq!(decode(&[]), Err(DropReason::TooShort));
    }
}
