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

/// A piece of a frame for the TAP: bytes the coalescer wrote (a virtio-net header, a
/// super-frame's headers), or bytes of a frame pushed to it, by the number it was pushed
/// with. The caller gathers the pieces in one writev(2), so payloads are not copied here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// These bytes of [`Coalescer::written`].
    Written(Range<usize>),
    /// These bytes of the pushed frame `frame`.
    Pushed {
        /// The number the frame was pushed with.
        frame: usize,
        /// Its bytes in this piece.
        bytes: Range<usize>,
    },
}

/// Frames for the TAP, each a virtio-net header and then pieces of the frames pushed, in
/// the order they came.
#[derive(Debug, Default)]
pub struct Coalescer {
    /// Virtio-net headers, and the headers of each super-frame (copied from its first
    /// segment, then changed to describe the whole).
    written: Vec<u8>,
    pieces: Vec<Piece>,
    /// Where each frame's pieces are in `pieces`.
    frames: Vec<Range<usize>>,
    /// The super-frame being built: always the last of `frames`.
    open: Option<Open>,
}

/// A super-frame that can still grow.
#[derive(Debug)]
struct Open {
    layout: Layout,
    /// Where its virtio-net header and then its headers are in `written`.
    header_at: usize,
    segment_size: usize,
    segments: usize,
    next_sequence: u32,
    /// Bytes of the IP packet so far.
    ip_len: usize,
}

impl Coalescer {
    /// An empty coalescer.
    pub fn new() -> Self {
        Coalescer::default()
    }

    /// Adds `frame` (an Ethernet frame from a peer VTEP), known to the caller as number
    /// `id`, joined to the super-frame being built if it can be.
    pub fn push(&mut self, id: usize, frame: &[u8]) {
        let layout = Layout::of(frame).filter(|layout| joinable(layout, frame));
        if let (Some(layout), Some(open)) = (layout, &self.open) {
            if self.follows(open, &layout, frame) {
                self.append(&layout, id, frame);
                return;
            }
        }
        self.close();
        let first_piece = self.pieces.len();
        let header_at = self.written.len();
        match layout {
            Some(layout) => {
                // Checked already: the kernel need not check it again.
                let header = VirtioHeader {
                    flags: virtio::DATA_VALID,
                    ..VirtioHeader::default()
                };
                self.written.extend_from_slice(&header.encode());
                // The headers are copied: a super-frame's are changed when it closes.
                self.written.extend_from_slice(&frame[..layout.payload]);
                self.pieces
                    .push(Piece::Written(header_at..self.written.len()));
                self.pieces.push(Piece::Pushed {
                    frame: id,
                    bytes: layout.payload..frame.len(),
                });
                let tcp = &frame[layout.transport..];
                let segment_size = frame.len() - layout.payload;
                let sequence = u32_at(tcp, 4);
                let ended = tcp[13] & flags::PSH != 0;
                if !ended {
                    self.open = Some(Open {
                        layout,
                        header_at,
                        segment_size,
                        segments: 1,
                        next_sequence: sequence.wrapping_add(segment_size as u32),
                        ip_len: frame.len() - ETHERNET_LEN,
                    });
                }
            }
            None => {
                self.written
                    .extend_from_slice(&VirtioHeader::default().encode());
                self.pieces
                    .push(Piece::Written(header_at..self.written.len()));
                self.pieces.push(Piece::Pushed {
                    frame: id,
                    bytes: 0..frame.len(),
                });
            }
        }
        self.frames.push(first_piece..self.pieces.len());
    }

    /// Ends the super-frame being built; call before reading [`Coalescer::frames`].
    pub fn finish(&mut self) {
        self.close();
    }

    /// The frames so far, each as its pieces, a virtio-net header first.
    pub fn frames(&self) -> impl Iterator<Item = &[Piece]> {
        self.frames.iter().map(|range| &self.pieces[range.clone()])
    }

    /// The bytes [`Piece::Written`] points into.
    pub fn written(&self) -> &[u8] {
        &self.written
    }

    /// The bytes of `piece`; `pushed` gives the frame pushed with each number.
    pub fn bytes<'a>(&'a self, piece: &Piece, pushed: impl Fn(usize) -> &'a [u8]) -> &'a [u8] {
        match piece {
            Piece::Written(range) => &self.written[range.clone()],
            Piece::Pushed { frame, bytes } => &pushed(*frame)[bytes.clone()],
        }
    }

    /// Forgets every frame, keeping the memory.
    pub fn clear(&mut self) {
        self.written.clear();
        self.pieces.clear();
        self.frames.clear();
        self.open = None;
    }

    /// Whether `frame` continues the open super-frame.
    fn follows(&self, open: &Open, layout: &Layout, frame: &[u8]) -> bool {
        let first = &self.written[open.header_at + virtio::HEADER_LEN..];
        let payload_len = frame.len() - layout.payload;
        let tcp = layout.transport;
        let sequence = u32_at(frame, tcp + 4);
        *layout == open.layout
            && payload_len <= open.segment_size
            && sequence == open.next_sequence
            && open.ip_len + payload_len <= MAX_IP_LEN
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
    fn append(&mut self, layout: &Layout, id: usize, frame: &[u8]) {
        let payload_len = frame.len() - layout.payload;
        self.pieces.push(Piece::Pushed {
            frame: id,
            bytes: layout.payload..frame.len(),
        });
        self.frames.last_mut().expect("the open frame").end = self.pieces.len();
        let open = self.open.as_mut().expect("an open super-frame");
        open.segments += 1;
        open.ip_len += payload_len;
        open.next_sequence = open.next_sequence.wrapping_add(payload_len as u32);
        let pushed = frame[layout.transport + 13] & flags::PSH != 0;
        if pushed {
            let at = open.header_at + virtio::HEADER_LEN + layout.transport + 13;
            self.written[at] |= flags::PSH;
        }
        if pushed || payload_len < open.segment_size {
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
        let layout = open.layout;
        let written =
            &mut self.written[open.header_at..open.header_at + virtio::HEADER_LEN + layout.payload];
        let (header, frame) = written.split_at_mut(virtio::HEADER_LEN);
        let length = ETHERNET_LEN + open.ip_len;
        layout.set_ip_length(frame, length);
        let at = layout.transport + TCP_CHECKSUM_OFFSET;
        let pseudo = layout.pseudo_header_sum(frame, length - layout.transport);
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

    /// Each frame out, its pieces gathered from the frames `pushed`, header apart.
    fn outputs(coalescer: &Coalescer, pushed: &[&[u8]]) -> Vec<(VirtioHeader, Vec<u8>)> {
        coalescer
            .frames()
            .map(|pieces| {
                let bytes: Vec<u8> = pieces
                    .iter()
                    .flat_map(|piece| coalescer.bytes(piece, |frame| pushed[frame]))
                    .copied()
                    .collect();
                let header = VirtioHeader::decode(&bytes).unwrap();
                (header, bytes[virtio::HEADER_LEN..].to_vec())
            })
            .collect()
    }

    #[test]
    fn the_kernels_segments_join_into_one_super_frame_that_cuts_back_to_them() {
        let segments = captured::segments();
        let mut coalescer = Coalescer::new();
        for (id, segment) in segments.iter().enumerate() {
            coalescer.push(id, segment);
        }
        coalescer.finish();
        let out = outputs(&coalescer, &segments);
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
        let mut headers = Vec::new();
        let result = segment(frame, 1398, &[], &mut headers).unwrap();
        let again: Vec<Vec<u8>> = (0..result.count)
            .map(|index| result.parts(index, &headers, frame).concat())
            .collect();
        assert_eq!(again, segments);
    }

    #[test]
    fn other_frames_pass_alone_and_end_the_run() {
        let segments = captured::segments();
        let mut corrupt = segments[4].to_vec();
        corrupt[100] ^= 0xff;
        // Out of order: the fourth before the third.
        let pushed = [
            segments[0],
            segments[1],
            captured::ack(),
            segments[3],
            segments[2],
            &corrupt,
            captured::syn(),
        ];
        let mut coalescer = Coalescer::new();
        for (id, frame) in pushed.iter().enumerate() {
            coalescer.push(id, frame);
        }
        coalescer.finish();
        let out = outputs(&coalescer, &pushed);
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
