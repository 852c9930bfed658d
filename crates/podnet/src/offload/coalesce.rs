//! Receive coalescing in software (what a NIC's GRO does) for frames written to the TAP:
//! consecutive in-order TCP segments of one flow become one super-frame behind a virtio-net
//! header that tells the kernel how to cut it again, so the stack and the pod's veth handle
//! one large frame. Other frames pass unchanged behind an empty header.
//!
//! A segment joins the super-frame being built when everything but the lengths, the IPv4
//! ID and the checksums matches its first segment (addresses, ports, TTL, ACK number,
//! window, TCP options such as timestamps), its sequence number follows, it carries only
//! ACK (and PSH, which ends the super-frame), and it is no larger than the first (a smaller
//! one ends it too). Its TCP checksum must be right: once joined, the kernel trusts the
//! super-frame's payload instead of checking it.

use std::ops::Range;

use super::virtio::{self, VirtioHeader};
use super::{ETHERNET_LEN, Layout, TCP_CHECKSUM_OFFSET, flags, u32_at};

/// The largest IP packet a super-frame may grow to (the IPv4 total length is 16 bits).
const MAX_IP_LEN: usize = 65_535;

/// Frames for the TAP, each behind its virtio-net header, in the order they came.
#[derive(Debug, Default)]
pub struct Coalescer {
    /// The frames, each with its header in front, back to back.
    bytes: Vec<u8>,
    /// Where each frame (with its header) is in `bytes`.
    frames: Vec<Range<usize>>,
    /// The super-frame being built: always the last of `frames`.
    open: Option<Open>,
}

/// A super-frame that can still grow.
#[derive(Debug)]
struct Open {
    layout: Layout,
    segment_size: usize,
    segments: usize,
    next_sequence: u32,
}

impl Coalescer {
    /// An empty coalescer.
    pub fn new() -> Self {
        Coalescer::default()
    }

    /// Adds `frame` (an Ethernet frame from a peer VTEP), joined to the super-frame being
    /// built if it can be.
    pub fn push(&mut self, frame: &[u8]) {
        let layout = Layout::of(frame).filter(|layout| joinable(layout, frame));
        if let (Some(layout), Some(open)) = (layout, &self.open) {
            if self.follows(open, &layout, frame) {
                self.append(&layout, frame);
                return;
            }
        }
        self.close();
        let start = self.bytes.len();
        match layout {
            Some(layout) => {
                // Checked already: the kernel need not check it again.
                let header = VirtioHeader {
                    flags: virtio::DATA_VALID,
                    ..VirtioHeader::default()
                };
                self.bytes.extend_from_slice(&header.encode());
                self.bytes.extend_from_slice(frame);
                let tcp = &frame[layout.transport..];
                let segment_size = frame.len() - layout.payload;
                let sequence = u32_at(tcp, 4);
                let ended = tcp[13] & flags::PSH != 0;
                if !ended {
                    self.open = Some(Open {
                        layout,
                        segment_size,
                        segments: 1,
                        next_sequence: sequence.wrapping_add(segment_size as u32),
                    });
                }
            }
            None => {
                self.bytes
                    .extend_from_slice(&VirtioHeader::default().encode());
                self.bytes.extend_from_slice(frame);
            }
        }
        self.frames.push(start..self.bytes.len());
    }

    /// Ends the super-frame being built; call before reading [`Coalescer::frames`].
    pub fn finish(&mut self) {
        self.close();
    }

    /// The frames so far, each with its virtio-net header in front.
    pub fn frames(&self) -> impl Iterator<Item = &[u8]> {
        self.frames.iter().map(|range| &self.bytes[range.clone()])
    }

    /// Forgets every frame, keeping the memory.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.frames.clear();
        self.open = None;
    }

    /// Whether `frame` continues the open super-frame.
    fn follows(&self, open: &Open, layout: &Layout, frame: &[u8]) -> bool {
        let first_at = self.frames.last().map_or(0, |range| range.start) + virtio::HEADER_LEN;
        let first = &self.bytes[first_at..];
        let payload_len = frame.len() - layout.payload;
        let tcp = layout.transport;
        let sequence = u32_at(frame, tcp + 4);
        let grown = self.bytes.len() - first_at - ETHERNET_LEN + payload_len;
        *layout == open.layout
            && payload_len <= open.segment_size
            && sequence == open.next_sequence
            && grown <= MAX_IP_LEN
            && frame[..ETHERNET_LEN] == first[..ETHERNET_LEN]
            && same_ip_header(layout, frame, first)
            // Ports; the ACK number and header length; the window; the options. (The flags
            // are ACK, maybe with PSH, in both: `joinable` checked.)
            && frame[tcp..tcp + 4] == first[tcp..tcp + 4]
            && frame[tcp + 8..tcp + 13] == first[tcp + 8..tcp + 13]
            && frame[tcp + 14..tcp + 16] == first[tcp + 14..tcp + 16]
            && frame[tcp + 20..layout.payload] == first[tcp + 20..layout.payload]
    }

    /// Joins `frame` (which [`Coalescer::follows`] accepted) to the open super-frame.
    fn append(&mut self, layout: &Layout, frame: &[u8]) {
        let payload = &frame[layout.payload..];
        self.bytes.extend_from_slice(payload);
        let open = self.open.as_mut().expect("an open super-frame");
        open.segments += 1;
        open.next_sequence = open.next_sequence.wrapping_add(payload.len() as u32);
        let ended =
            frame[layout.transport + 13] & flags::PSH != 0 || payload.len() < open.segment_size;
        if frame[layout.transport + 13] & flags::PSH != 0 {
            let first_at = self.frames.last().expect("the open frame").start + virtio::HEADER_LEN;
            self.bytes[first_at + layout.transport + 13] |= flags::PSH;
        }
        let range = self.frames.last_mut().expect("the open frame");
        range.end = self.bytes.len();
        if ended {
            self.close();
        }
    }

    /// Ends the open super-frame: its lengths, its header, and its TCP checksum left partial
    /// (the pseudo-header sum) for the kernel to complete or trust.
    fn close(&mut self) {
        let Some(open) = self.open.take() else {
            return;
        };
        if open.segments == 1 {
            return;
        }
        let range = self.frames.last().expect("the open frame").clone();
        let (header, frame) = self.bytes[range].split_at_mut(virtio::HEADER_LEN);
        let layout = open.layout;
        layout.set_ip_length(frame);
        let at = layout.transport + TCP_CHECKSUM_OFFSET;
        let pseudo = layout.pseudo_header_sum(frame, frame.len() - layout.transport);
        frame[at..at + 2].copy_from_slice(&tun_rs::checksum(&[], pseudo).to_be_bytes());
        let gso = VirtioHeader {
            flags: virtio::NEEDS_CSUM,
            gso_type: if layout.ipv6 {
                virtio::GSO_TCPV6
            } else {
                virtio::GSO_TCPV4
            },
            header_len: layout.payload as u16,
            gso_size: open.segment_size as u16,
            checksum_start: layout.transport as u16,
            checksum_offset: TCP_CHECKSUM_OFFSET as u16,
        };
        header.copy_from_slice(&gso.encode());
    }
}

/// Whether a TCP frame may be joined: payload, only ACK (and PSH), lengths that match the
/// frame, a right checksum.
fn joinable(layout: &Layout, frame: &[u8]) -> bool {
    if layout.udp {
        return false;
    }
    let tcp_flags = frame[layout.transport + 13];
    let ip_len = frame.len() - ETHERNET_LEN;
    let stated_len = if layout.ipv6 {
        usize::from(u16::from_be_bytes([frame[18], frame[19]])) + 40
    } else {
        usize::from(u16::from_be_bytes([frame[16], frame[17]]))
    };
    frame.len() > layout.payload
        && tcp_flags & !flags::PSH == flags::ACK
        && stated_len == ip_len
        && layout.checksum_valid(frame)
}

/// Whether two IP headers match but for the lengths, the IPv4 ID and header checksum.
fn same_ip_header(layout: &Layout, frame: &[u8], first: &[u8]) -> bool {
    let ip = ETHERNET_LEN;
    if layout.ipv6 {
        frame[ip..ip + 4] == first[ip..ip + 4] && frame[ip + 6..ip + 40] == first[ip + 6..ip + 40]
    } else {
        frame[ip..ip + 2] == first[ip..ip + 2]
            && frame[ip + 6..ip + 10] == first[ip + 6..ip + 10]
            && frame[ip + 12..layout.transport] == first[ip + 12..layout.transport]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::captured;
    use crate::offload::segment::segment;

    fn outputs(coalescer: &Coalescer) -> Vec<(VirtioHeader, Vec<u8>)> {
        coalescer
            .frames()
            .map(|bytes| {
                let header = VirtioHeader::decode(bytes).unwrap();
                (header, bytes[virtio::HEADER_LEN..].to_vec())
            })
            .collect()
    }

    #[test]
    fn the_kernels_segments_join_into_one_super_frame_that_cuts_back_to_them() {
        let segments = captured::segments();
        let mut coalescer = Coalescer::new();
        for segment in &segments {
            coalescer.push(segment);
        }
        coalescer.finish();
        let out = outputs(&coalescer);
        assert_eq!(out.len(), 1);
        let (header, frame) = &out[0];
        assert_eq!(
            *header,
            VirtioHeader {
                flags: virtio::NEEDS_CSUM,
                gso_type: virtio::GSO_TCPV4,
                header_len: 66,
                gso_size: 1398,
                checksum_start: 34,
                checksum_offset: 16,
            }
        );
        assert_eq!(frame.len(), 66 + 6000);
        assert_eq!(u16::from_be_bytes([frame[16], frame[17]]), 52 + 6000);
        assert_ne!(frame[47] & flags::PSH, 0, "the last segment's PSH");
        // Cut again as the kernel would: byte for byte the kernel's own segments.
        let mut cut = Vec::new();
        let result = segment(frame, 1398, &[], &mut cut).unwrap();
        let again: Vec<&[u8]> = cut.chunks(result.stride).collect();
        assert_eq!(again, segments);
    }

    #[test]
    fn other_frames_pass_alone_and_end_the_run() {
        let segments = captured::segments();
        let mut coalescer = Coalescer::new();
        coalescer.push(segments[0]);
        coalescer.push(segments[1]);
        coalescer.push(captured::ack());
        // Out of order: the fourth before the third.
        coalescer.push(segments[3]);
        coalescer.push(segments[2]);
        let mut corrupt = segments[4].to_vec();
        corrupt[100] ^= 0xff;
        coalescer.push(&corrupt);
        coalescer.push(captured::syn());
        coalescer.finish();
        let out = outputs(&coalescer);
        let kinds: Vec<(u8, u8, usize)> = out
            .iter()
            .map(|(header, frame)| (header.flags, header.gso_type, frame.len()))
            .collect();
        assert_eq!(
            kinds,
            [
                (virtio::NEEDS_CSUM, virtio::GSO_TCPV4, 66 + 2 * 1398),
                (0, virtio::GSO_NONE, 66),
                (virtio::DATA_VALID, virtio::GSO_NONE, 1464),
                (virtio::DATA_VALID, virtio::GSO_NONE, 1464),
                (0, virtio::GSO_NONE, 474),
                (0, virtio::GSO_NONE, 74),
            ]
        );
        // The ACK has no payload, so it passes as it came; so do the corrupt and the SYN.
        assert_eq!(out[1].1, captured::ack());
        assert_eq!(out[4].1, corrupt);
        assert_eq!(out[5].1, captured::syn());
        coalescer.clear();
        assert_eq!(coalescer.frames().count(), 0);
    }
}
