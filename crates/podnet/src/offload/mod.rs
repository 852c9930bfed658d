//! Software offloads for the overlay's data path, without I/O.
//!
//! With TSO on the TAP device the kernel hands over TCP super-frames (up to 64 KiB behind a
//! virtio-net header, [`virtio`]) instead of MTU-sized frames: [`segment`] cuts one into
//! MTU-sized VXLAN packets, laid out for a single UDP GSO send. On the way in, the VXLAN
//! packets of one TCP flow that arrive together (UDP GRO) are joined back into one
//! super-frame for the TAP ([`coalesce`]). Each side's kernel then handles one large frame
//! where it would handle dozens of small ones, which is how the kernel's own vxlan driver
//! gets its speed.

pub mod coalesce;
pub mod segment;
pub mod virtio;

/// Ethernet header bytes (no VLAN tag: the overlay device carries none).
const ETHERNET_LEN: usize = 14;
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const ETHERTYPE_IPV6: [u8; 2] = [0x86, 0xdd];
const IPV6_HEADER_LEN: usize = 40;
const TCP: u8 = 6;
const UDP: u8 = 17;
/// Offset of the checksum in a TCP header.
pub const TCP_CHECKSUM_OFFSET: usize = 16;
/// Offset of the checksum in a UDP header.
const UDP_CHECKSUM_OFFSET: usize = 6;
/// Bytes of a UDP header.
const UDP_HEADER_LEN: usize = 8;
/// Bytes of a TCP header without options.
const TCP_HEADER_LEN: usize = 20;

/// TCP flags, in the 14th byte of the header.
mod flags {
    pub(super) const FIN: u8 = 0x01;
    pub(super) const PSH: u8 = 0x08;
    pub(super) const ACK: u8 = 0x10;
    pub(super) const CWR: u8 = 0x80;
}

/// Where the headers of an Ethernet frame carrying TCP or UDP over IPv4 or IPv6 end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// IPv6 rather than IPv4.
    pub ipv6: bool,
    /// UDP rather than TCP.
    pub udp: bool,
    /// Offset of the TCP or UDP header (the end of the IP header).
    pub transport: usize,
    /// Offset of the payload (the end of the TCP or UDP header).
    pub payload: usize,
}

impl Layout {
    /// The layout of `frame`, or `None` when it is not an unfragmented TCP segment or UDP
    /// datagram over IPv4 or IPv6 without extension headers whose headers fit in it.
    pub fn of(frame: &[u8]) -> Option<Layout> {
        let ip = frame.get(ETHERNET_LEN..)?;
        let (ipv6, ip_len, protocol) = match frame.get(12..14)? {
            t if t == ETHERTYPE_IPV4 => {
                let ihl = usize::from(*ip.first()? & 0x0f) * 4;
                let fragment = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]) & 0x3fff;
                if ip[0] >> 4 != 4 || ihl < 20 || fragment != 0 {
                    return None;
                }
                (false, ihl, *ip.get(9)?)
            }
            t if t == ETHERTYPE_IPV6 => {
                if ip.first()? >> 4 != 6 {
                    return None;
                }
                (true, IPV6_HEADER_LEN, *ip.get(6)?)
            }
            _ => return None,
        };
        let transport = ETHERNET_LEN + ip_len;
        let header_len = match protocol {
            TCP => usize::from(frame.get(transport + 12)? >> 4) * 4,
            UDP => UDP_HEADER_LEN,
            _ => return None,
        };
        let shortest = if protocol == TCP {
            TCP_HEADER_LEN
        } else {
            UDP_HEADER_LEN
        };
        let payload = transport + header_len;
        (header_len >= shortest && payload <= frame.len()).then_some(Layout {
            ipv6,
            udp: protocol == UDP,
            transport,
            payload,
        })
    }

    /// Offset of the TCP or UDP checksum from the transport header.
    pub fn checksum_offset(&self) -> usize {
        if self.udp {
            UDP_CHECKSUM_OFFSET
        } else {
            TCP_CHECKSUM_OFFSET
        }
    }

    /// The one's-complement sum (unfolded) of the pseudo-header of `frame` for a TCP or UDP
    /// header and payload of `length` bytes (RFC 793 section 3.1, RFC 8200 section 8.1).
    fn pseudo_header_sum(&self, frame: &[u8], length: usize) -> u64 {
        let addresses = if self.ipv6 {
            &frame[ETHERNET_LEN + 8..ETHERNET_LEN + 40]
        } else {
            &frame[ETHERNET_LEN + 12..ETHERNET_LEN + 20]
        };
        let protocol = if self.udp { UDP } else { TCP };
        tun_rs::checksum_no_fold(addresses, u64::from(protocol) + length as u64)
    }

    /// Writes the lengths of a frame `length` bytes long (its headers are `frame`) into its
    /// IP header, and the IPv4 header checksum.
    fn set_ip_length(&self, frame: &mut [u8], length: usize) {
        let ip = &mut frame[ETHERNET_LEN..];
        let ip_len = length - ETHERNET_LEN;
        if self.ipv6 {
            let length = (ip_len - IPV6_HEADER_LEN) as u16;
            ip[4..6].copy_from_slice(&length.to_be_bytes());
        } else {
            let header_len = self.transport - ETHERNET_LEN;
            ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
            ip[10..12].fill(0);
            let sum = !tun_rs::checksum(&ip[..header_len], 0);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
        }
    }

    /// Writes the full TCP or UDP checksum of a frame made of `headers` (up to the payload,
    /// its lengths already written) and `payload`.
    fn set_checksum(&self, headers: &mut [u8], payload: &[u8]) {
        let at = self.transport + self.checksum_offset();
        headers[at..at + 2].fill(0);
        let length = headers.len() - self.transport + payload.len();
        let pseudo = self.pseudo_header_sum(headers, length);
        // A TCP or UDP header is a whole number of 16-bit words, so the payload's words
        // line up with the ones it would have in one buffer.
        let sum = tun_rs::checksum_no_fold(&headers[self.transport..self.payload], pseudo);
        let sum = match !tun_rs::checksum(payload, sum) {
            // Zero means "no checksum" in UDP (RFC 768): all ones stands for it.
            0 if self.udp => 0xffff,
            sum => sum,
        };
        headers[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    }

    /// Writes the length of the UDP header and payload of a frame `length` bytes long into
    /// its UDP header.
    fn set_udp_length(&self, frame: &mut [u8], length: usize) {
        let length = (length - self.transport) as u16;
        frame[self.transport + 4..self.transport + 6].copy_from_slice(&length.to_be_bytes());
    }

    /// Whether the checksum of `frame` is right.
    fn checksum_valid(&self, frame: &[u8]) -> bool {
        let pseudo = self.pseudo_header_sum(frame, frame.len() - self.transport);
        tun_rs::checksum(&frame[self.transport..], pseudo) == 0xffff
    }
}

/// The big-endian number at `at` of `bytes` (a TCP sequence or ACK number), which the
/// caller has checked is long enough.
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Completes a checksum the kernel left partial (virtio-net `NEEDS_CSUM`): the field at
/// `start + offset` holds the pseudo-header sum, and the sum of everything from `start` on
/// goes there. False when the offsets fall outside `frame`.
pub fn complete_checksum(frame: &mut [u8], start: usize, offset: usize) -> bool {
    let at = start + offset;
    if at + 2 > frame.len() {
        return false;
    }
    let sum = !tun_rs::checksum(&frame[start..], 0);
    frame[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    true
}

/// The VXLAN packets of a datagram UDP GRO coalesced: the kernel joins datagrams of one
/// size (the last may be shorter) and says the size; without GRO it is the whole datagram.
pub fn split_datagram(datagram: &[u8], segment_size: usize) -> std::slice::Chunks<'_, u8> {
    datagram.chunks(segment_size.max(1))
}

#[cfg(test)]
pub(crate) mod captured;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gro_datagram_splits_at_the_size_the_kernel_gave() {
        // Three VXLAN packets of 1472 bytes and a last of 500, as UDP GRO joins them.
        let datagram: Vec<u8> = (0..3 * 1472 + 500).map(|i| (i / 1472) as u8).collect();
        let packets: Vec<&[u8]> = split_datagram(&datagram, 1472).collect();
        assert_eq!(packets.len(), 4);
        assert!(packets[..3].iter().all(|p| p.len() == 1472));
        assert_eq!(packets[3].len(), 500);
        assert!(
            packets
                .iter()
                .enumerate()
                .all(|(i, p)| p.iter().all(|b| *b == i as u8))
        );
        // Without GRO the size is the datagram's own.
        assert_eq!(split_datagram(&datagram, datagram.len()).count(), 1);
        assert_eq!(split_datagram(&datagram, 0).count(), datagram.len());
    }

    #[test]
    fn a_partial_checksum_is_completed() {
        let mut frame = captured::segments()[0].to_vec();
        let layout = Layout::of(&frame).unwrap();
        let at = layout.transport + TCP_CHECKSUM_OFFSET;
        let right = frame[at..at + 2].to_vec();
        // What the kernel leaves: the pseudo-header sum, folded, not inverted.
        let pseudo = layout.pseudo_header_sum(&frame, frame.len() - layout.transport);
        frame[at..at + 2].copy_from_slice(&tun_rs::checksum(&[], pseudo).to_be_bytes());
        assert!(complete_checksum(
            &mut frame,
            layout.transport,
            TCP_CHECKSUM_OFFSET
        ));
        assert_eq!(frame[at..at + 2], right);
        assert!(!complete_checksum(&mut frame, layout.transport, 5000));
    }
}
