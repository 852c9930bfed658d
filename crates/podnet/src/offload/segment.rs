//! Segmentation in software (what a NIC's TSO and USO do): a TCP super-frame becomes
//! MTU-sized segments, each with the headers of the first, its own sequence number, IPv4 ID
//! and lengths, FIN and PSH only on the last, CWR only on the first (RFC 3168 section
//! 6.1.2, as Linux's GSO does), and full checksums, since a peer VTEP delivers what it
//! receives without checking anything. A UDP super-frame (a pod's UDP GSO send) becomes
//! datagrams the same way, each with its own UDP length.
//!
//! Only the headers are written: each segment's, behind a copy of the caller's `prefix`
//! (the VXLAN header), back to back. A segment is its headers followed by its slice of the
//! super-frame's payload ([`Segments::parts`]), so the payload is never copied here: the
//! kernel gathers both pieces of every segment in one UDP GSO send.

use super::{Layout, flags, u32_at};

/// Why a super-frame could not be cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    /// Not TCP or UDP over IPv4 or IPv6 without extension headers.
    #[error("not a TCP or UDP frame the segmenter can cut")]
    NotTcp,
    /// A segment size of zero.
    #[error("a segment size of zero")]
    ZeroSize,
}

/// What [`segment`] wrote: the headers of `count` segments, `header_len` bytes each, and
/// where their payloads are in the super-frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segments {
    /// Bytes of each segment's headers, the prefix included.
    pub header_len: usize,
    /// Payload bytes of every segment but the last (which may have fewer).
    pub segment_size: usize,
    /// Segments written.
    pub count: usize,
    /// Where the payload starts in the super-frame.
    payload_at: usize,
}

impl Segments {
    /// Bytes of a whole segment but the last (the size to give UDP GSO).
    pub fn stride(&self) -> usize {
        self.header_len + self.segment_size
    }

    /// Segment `index` as its headers (in `headers`, as [`segment`] wrote them) and its
    /// payload (in `frame`, the super-frame that was cut).
    pub fn parts<'a>(&self, index: usize, headers: &'a [u8], frame: &'a [u8]) -> [&'a [u8]; 2] {
        let payload = &frame[self.payload_at..];
        let start = (index * self.segment_size).min(payload.len());
        let end = (start + self.segment_size).min(payload.len());
        let at = index * self.header_len;
        [&headers[at..at + self.header_len], &payload[start..end]]
    }
}

/// Appends to `headers` the headers of each segment of `frame` (an Ethernet frame carrying
/// TCP or UDP) with at most `segment_size` bytes of payload each, each behind `prefix`. The
/// checksums of `frame` need not be right (the TAP leaves them partial); those of every
/// segment are.
pub fn segment(
    frame: &[u8],
    segment_size: usize,
    prefix: &[u8],
    headers: &mut Vec<u8>,
) -> Result<Segments, SegmentError> {
    let layout = Layout::of(frame).ok_or(SegmentError::NotTcp)?;
    if segment_size == 0 {
        return Err(SegmentError::ZeroSize);
    }
    let original = &frame[..layout.payload];
    let payload = &frame[layout.payload..];
    let ipv4_id = (!layout.ipv6).then(|| u16::from_be_bytes([frame[18], frame[19]]));
    let sequence = u32_at(frame, layout.transport + 4);
    // TCP's flags (a UDP frame has at least 8 header bytes: these are never read for it).
    let original_flags = frame
        .get(layout.transport + 13)
        .copied()
        .unwrap_or_default();
    // An empty payload is still one segment: the frame as it is, checksums completed.
    let chunks = payload.chunks(segment_size).count().max(1);
    headers.reserve(chunks * (prefix.len() + original.len()));
    for index in 0..chunks {
        let chunk = payload
            .get(index * segment_size..)
            .map_or(&[][..], |rest| &rest[..rest.len().min(segment_size)]);
        headers.extend_from_slice(prefix);
        let start = headers.len();
        headers.extend_from_slice(original);
        let segment = &mut headers[start..];
        let length = segment.len() + chunk.len();
        if let Some(id) = ipv4_id {
            let id = id.wrapping_add(index as u16);
            segment[18..20].copy_from_slice(&id.to_be_bytes());
        }
        layout.set_ip_length(segment, length);
        if layout.udp {
            layout.set_udp_length(segment, length);
        } else {
            let offset = (index * segment_size) as u32;
            let tcp = &mut segment[layout.transport..];
            tcp[4..8].copy_from_slice(&sequence.wrapping_add(offset).to_be_bytes());
            let mut segment_flags = original_flags;
            if index + 1 < chunks {
                segment_flags &= !(flags::FIN | flags::PSH);
            }
            if index > 0 {
                segment_flags &= !flags::CWR;
            }
            tcp[13] = segment_flags;
        }
        layout.set_checksum(segment, chunk);
    }
    Ok(Segments {
        header_len: prefix.len() + original.len(),
        segment_size,
        count: chunks,
        payload_at: layout.payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::captured;

    const PREFIX: [u8; 8] = [0x08, 0, 0, 0, 0, 0, 42, 0];

    fn cut(frame: &[u8], size: usize) -> (Segments, Vec<Vec<u8>>) {
        let mut headers = Vec::new();
        let segments = segment(frame, size, &PREFIX, &mut headers).unwrap();
        let packets = (0..segments.count)
            .map(|index| segments.parts(index, &headers, frame).concat())
            .collect();
        (segments, packets)
    }

    #[test]
    fn a_tso_super_frame_becomes_mss_sized_segments_with_right_headers() {
        let frame = captured::super_frame();
        let (segments, packets) = cut(frame, 1398);
        assert_eq!(segments.count, 5);
        assert_eq!(segments.stride(), 8 + 66 + 1398);
        assert_eq!(packets.len(), 5);
        let first_seq = u32::from_be_bytes(frame[38..42].try_into().unwrap());
        let first_id = u16::from_be_bytes([frame[18], frame[19]]);
        for (index, packet) in packets.iter().enumerate() {
            assert_eq!(packet[..8], PREFIX);
            let segment = &packet[8..];
            let layout = Layout::of(segment).unwrap();
            let payload = if index < 4 { 1398 } else { 6000 - 4 * 1398 };
            assert_eq!(segment.len(), 66 + payload);
            assert_eq!(
                u16::from_be_bytes([segment[16], segment[17]]) as usize,
                52 + payload
            );
            assert_eq!(
                u16::from_be_bytes([segment[18], segment[19]]),
                first_id + index as u16
            );
            assert_eq!(
                tun_rs::checksum(&segment[14..34], 0),
                0xffff,
                "IPv4 header checksum"
            );
            assert!(layout.checksum_valid(segment), "TCP checksum of {index}");
            let seq = u32::from_be_bytes(segment[38..42].try_into().unwrap());
            assert_eq!(seq, first_seq + (index * 1398) as u32);
            let psh = segment[47] & flags::PSH != 0;
            assert_eq!(psh, index == 4, "PSH on the last only");
            assert_eq!(
                segment[..38],
                frame[..38]
                    .iter()
                    .enumerate()
                    .map(|(at, byte)| match at {
                        16..=19 | 24..=25 => segment[at],
                        _ => *byte,
                    })
                    .collect::<Vec<_>>()[..],
                "other header bytes kept"
            );
            assert_eq!(
                segment[66..],
                frame[66 + index * 1398..66 + index * 1398 + payload]
            );
        }
    }

    #[test]
    fn a_udp_gso_super_frame_becomes_datagrams_with_their_own_lengths() {
        let frame = captured::udp_super_frame();
        let (segments, packets) = cut(frame, 1000);
        assert_eq!(segments.count, 3);
        assert_eq!(segments.stride(), 8 + 42 + 1000);
        let first_id = u16::from_be_bytes([frame[18], frame[19]]);
        for (index, packet) in packets.iter().enumerate() {
            let datagram = &packet[8..];
            let payload = if index < 2 { 1000 } else { 563 };
            assert_eq!(datagram.len(), 42 + payload);
            assert_eq!(
                u16::from_be_bytes([datagram[16], datagram[17]]) as usize,
                28 + payload
            );
            assert_eq!(
                u16::from_be_bytes([datagram[18], datagram[19]]),
                first_id + index as u16
            );
            assert_eq!(
                u16::from_be_bytes([datagram[38], datagram[39]]) as usize,
                8 + payload
            );
            assert_eq!(datagram[34..38], frame[34..38], "ports kept");
            let layout = Layout::of(datagram).unwrap();
            assert!(layout.udp);
            assert!(layout.checksum_valid(datagram), "UDP checksum of {index}");
            assert_eq!(
                datagram[42..],
                frame[42 + index * 1000..42 + index * 1000 + payload]
            );
        }
    }

    #[test]
    fn what_is_not_tcp_or_needs_no_cut_is_handled() {
        // A SYN has no payload: one segment, as it came but for its checksum, which the
        // capture shows partial and the segment has complete.
        let syn = captured::syn();
        let (segments, packets) = cut(syn, 1398);
        assert_eq!(segments.count, 1);
        let only = &packets[0][8..];
        assert_eq!(only[..50], syn[..50]);
        assert_eq!(only[52..], syn[52..]);
        assert!(Layout::of(only).unwrap().checksum_valid(only));
        assert!(!Layout::of(syn).unwrap().checksum_valid(syn));
        let mut out = Vec::new();
        assert_eq!(
            segment(captured::syn(), 0, &PREFIX, &mut out),
            Err(SegmentError::ZeroSize)
        );
        let mut arp = captured::syn().to_vec();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(
            segment(&arp, 1398, &PREFIX, &mut out),
            Err(SegmentError::NotTcp)
        );
        assert_eq!(
            segment(&arp[..20], 1398, &PREFIX, &mut out),
            Err(SegmentError::NotTcp)
        );
        // A TCP data offset below five words is no TCP header.
        let mut short_offset = captured::syn().to_vec();
        short_offset[46] = 0x20;
        assert_eq!(
            segment(&short_offset, 1398, &PREFIX, &mut out),
            Err(SegmentError::NotTcp)
        );
        assert!(out.is_empty());
    }
}
