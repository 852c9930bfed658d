//! The virtio-net header (virtio spec 1.x section 5.1.6, the 10-byte legacy layout without
//! `num_buffers`) that a TAP device opened with IFF_VNET_HDR puts in front of every frame
//! read and expects in front of every frame written. Fields are little-endian: the TAP uses
//! the host's order unless told otherwise, and dockline runs on little-endian hosts only
//! (checked at build, below).

/// Bytes of the header.
pub const HEADER_LEN: usize = 10;

/// `flags`: the checksum at `checksum_start + checksum_offset` is partial.
pub const NEEDS_CSUM: u8 = 1;
/// `flags`: the checksums were checked and are right.
pub const DATA_VALID: u8 = 2;
/// `gso_type`: not a super-frame.
pub const GSO_NONE: u8 = 0;
/// `gso_type`: a TCP over IPv4 super-frame.
pub const GSO_TCPV4: u8 = 1;
/// `gso_type`: a TCP over IPv6 super-frame.
pub const GSO_TCPV6: u8 = 4;
/// `gso_type` bit: the super-frame's TCP uses ECN (CWR on the first segment only).
pub const GSO_ECN: u8 = 0x80;

#[cfg(not(target_endian = "little"))]
compile_error!("the TAP's virtio-net header is read as little-endian");

/// One virtio-net header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VirtioHeader {
    /// [`NEEDS_CSUM`], [`DATA_VALID`].
    pub flags: u8,
    /// [`GSO_NONE`], [`GSO_TCPV4`], [`GSO_TCPV6`], maybe with [`GSO_ECN`].
    pub gso_type: u8,
    /// Bytes of headers (Ethernet, IP, TCP) in front of the payload, a hint.
    pub header_len: u16,
    /// Payload bytes per segment of a super-frame.
    pub gso_size: u16,
    /// Where the checksummed data starts (from the Ethernet header).
    pub checksum_start: u16,
    /// Where the checksum field is, from `checksum_start`.
    pub checksum_offset: u16,
}

impl VirtioHeader {
    /// The header at the start of `bytes`, or `None` when it is shorter than one.
    pub fn decode(bytes: &[u8]) -> Option<VirtioHeader> {
        let bytes: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
        let word = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        Some(VirtioHeader {
            flags: bytes[0],
            gso_type: bytes[1],
            header_len: word(2),
            gso_size: word(4),
            checksum_start: word(6),
            checksum_offset: word(8),
        })
    }

    /// The header's bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut bytes = [0; HEADER_LEN];
        bytes[0] = self.flags;
        bytes[1] = self.gso_type;
        for (at, word) in [
            self.header_len,
            self.gso_size,
            self.checksum_start,
            self.checksum_offset,
        ]
        .into_iter()
        .enumerate()
        {
            bytes[2 + at * 2..4 + at * 2].copy_from_slice(&word.to_le_bytes());
        }
        bytes
    }

    /// A TCP super-frame the receiver must cut into `gso_size` pieces.
    pub fn is_tcp_gso(&self) -> bool {
        matches!(self.gso_type & !GSO_ECN, GSO_TCPV4 | GSO_TCPV6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tso_frames_header_decodes_and_encodes_back() {
        // The header of a TCPv4 TSO frame like the captured super-frame (MSS 1398 at an
        // MTU of 1450, 66 bytes of headers, the checksum partial from byte 34, its field
        // at +16), laid out as the virtio spec says.
        let bytes = [0x01, 0x01, 0x42, 0x00, 0x76, 0x05, 0x22, 0x00, 0x10, 0x00];
        let header = VirtioHeader::decode(&bytes).unwrap();
        assert_eq!(
            header,
            VirtioHeader {
                flags: NEEDS_CSUM,
                gso_type: GSO_TCPV4,
                header_len: 66,
                gso_size: 1398,
                checksum_start: 34,
                checksum_offset: 16,
            }
        );
        assert!(header.is_tcp_gso());
        assert_eq!(header.encode(), bytes);
        assert_eq!(VirtioHeader::decode(&bytes[..9]), None);
        assert!(!VirtioHeader::default().is_tcp_gso());
    }
}
