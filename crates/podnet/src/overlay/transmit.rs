//! The transmit thread: frames read from the device, encapsulated and sent to every VTEP
//! they go to. A TCP super-frame (TSO) is cut into MTU-sized segments that leave in UDP GSO
//! sends, gathered from their headers and the super-frame's payload (which is not copied
//! here); other frames leave many per sendmmsg(2), in the order they were read.

use std::io::{self, IoSlice};
use std::net::{SocketAddr, UdpSocket};
use std::ops::Range;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Instant;

use nix::poll::PollFlags;
use tun_rs::SyncDevice;

use super::{FRAME_AT, Shared};
use crate::batch::{self, Batch, Datagram, SEND_BATCH};
use crate::metrics::Counters;
use crate::offload::complete_checksum;
use crate::offload::segment::{Segments, segment};
use crate::offload::virtio::{self, VirtioHeader};
use crate::vxlan::HEADER_LEN;

/// Most UDP payload bytes of one GSO send: an IP packet is at most 64 KiB, headers included.
const GSO_MAX_BYTES: usize = 65_000;
/// Most segments of one GSO send (UDP_MAX_SEGMENTS of older kernels).
const GSO_MAX_SEGMENTS: usize = 64;

/// What the VTEP decided for one frame of the batch.
#[derive(Debug, Clone)]
struct Plan {
    /// The frame's buffer in the batch.
    at: usize,
    header: [u8; HEADER_LEN],
    sender: usize,
    /// Where its destinations are in [`Transmitter::destinations`].
    destinations: Range<usize>,
}

/// The device-to-socket direction, run on a thread of its own.
pub(super) struct Transmitter {
    device: Arc<SyncDevice>,
    /// The device reads a virtio-net header in front of each frame.
    offload: bool,
    /// The kernel takes UDP GSO sends.
    udp_gso: bool,
    senders: Vec<UdpSocket>,
    port: u16,
    shared: Arc<Shared>,
    counters: Counters,
    batch: Batch,
    plans: Vec<Plan>,
    destinations: Vec<SocketAddr>,
    /// (buffer, sender, destination) of frames waiting to go in one sendmmsg.
    plain: Vec<(usize, usize, SocketAddr)>,
    /// The headers of the segments of the super-frame being sent.
    headers: Vec<u8>,
}

impl Transmitter {
    pub(super) fn new(
        device: Arc<SyncDevice>,
        offload: bool,
        udp_gso: bool,
        senders: Vec<UdpSocket>,
        port: u16,
        shared: Arc<Shared>,
    ) -> Self {
        Transmitter {
            device,
            offload,
            udp_gso,
            senders,
            port,
            counters: shared.counters.clone(),
            shared,
            batch: Batch::new(SEND_BATCH),
            plans: Vec::with_capacity(SEND_BATCH),
            destinations: Vec::new(),
            plain: Vec::with_capacity(SEND_BATCH),
            headers: Vec::with_capacity(GSO_MAX_SEGMENTS * 256),
        }
    }

    /// Carries frames until told to stop, or until reading the device fails.
    pub(super) fn run(mut self) -> io::Result<()> {
        let (shared, device) = (Arc::clone(&self.shared), Arc::clone(&self.device));
        shared.stop.run_reads(device.as_fd(), || {
            self.read_frames()?;
            self.send_frames(Instant::now());
            Ok(())
        })
    }

    /// Takes the frames queued on the device (up to [`SEND_BATCH`], and up to the first
    /// super-frame), each read at [`FRAME_AT`] (its virtio-net header in front, if any);
    /// `WouldBlock` when none is.
    fn read_frames(&mut self) -> io::Result<()> {
        let start = if self.offload { 0 } else { FRAME_AT };
        let batch = &mut self.batch;
        batch.filled = 0;
        while batch.filled < batch.capacity() {
            let buffer = &mut batch.buffers[batch.filled];
            match self.device.recv(&mut buffer[start..]) {
                Ok(length) => {
                    batch.lengths[batch.filled] = start + length;
                    batch.filled += 1;
                    let super_frame = VirtioHeader::decode(buffer)
                        .is_some_and(|header| header.gso_type != virtio::GSO_NONE);
                    if self.offload && super_frame {
                        break;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock && batch.filled > 0 => {
                    break;
                }
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Asks the VTEP where each frame of the batch goes, holding its lock once.
    fn plan(&mut self, now: Instant) {
        self.plans.clear();
        self.destinations.clear();
        let vtep = self.shared.vtep();
        for at in 0..self.batch.filled {
            let frame = &self.batch.buffers[at][FRAME_AT..self.batch.lengths[at]];
            let Some(transmit) = vtep.transmit(frame, now) else {
                continue;
            };
            let first = self.destinations.len();
            let port = self.port;
            self.destinations
                .extend(transmit.to.map(|to| SocketAddr::new(to, port)));
            self.plans.push(Plan {
                at,
                header: transmit.header,
                sender: usize::from(transmit.source_port) % self.senders.len(),
                destinations: first..self.destinations.len(),
            });
        }
    }

    /// Encapsulates the batch and sends a copy of each frame to every VTEP it goes to:
    /// super-frames cut into segments, one GSO send each; other frames many per system
    /// call, in order.
    fn send_frames(&mut self, now: Instant) {
        self.plan(now);
        for index in 0..self.plans.len() {
            let plan = self.plans[index].clone();
            let length = self.batch.lengths[plan.at];
            let buffer = &mut self.batch.buffers[plan.at];
            let offload = match self.offload {
                true => VirtioHeader::decode(buffer).unwrap_or_default(),
                false => VirtioHeader::default(),
            };
            let frame = &mut buffer[FRAME_AT..length];
            if offload.gso_type != virtio::GSO_NONE {
                self.headers.clear();
                let cut = segment(
                    frame,
                    offload.gso_size.into(),
                    &plan.header,
                    &mut self.headers,
                );
                // The frames read before this one leave first: a flow's order is kept.
                self.send_plain();
                match cut {
                    Ok(segments) => {
                        for at in plan.destinations {
                            let to = self.destinations[at];
                            self.send_segments(plan.sender, plan.at, segments, to);
                        }
                    }
                    Err(error) => {
                        tracing::debug!(%error, gso_type = offload.gso_type, "super-frame dropped")
                    }
                }
                continue;
            }
            if offload.flags & virtio::NEEDS_CSUM != 0 {
                complete_checksum(
                    frame,
                    offload.checksum_start.into(),
                    offload.checksum_offset.into(),
                );
            }
            buffer[FRAME_AT - HEADER_LEN..FRAME_AT].copy_from_slice(&plan.header);
            let destinations = &self.destinations[plan.destinations];
            self.plain
                .extend(destinations.iter().map(|to| (plan.at, plan.sender, *to)));
        }
        self.send_plain();
    }

    /// Sends the queued frames, one sendmmsg per sender socket as far as the socket takes
    /// them, and empties the queue.
    fn send_plain(&mut self) {
        if self.plain.is_empty() {
            return;
        }
        for (index, sender) in self.senders.iter().enumerate() {
            let datagrams: Vec<Datagram<'_>> = self
                .plain
                .iter()
                .filter(|(_, from, _)| *from == index)
                .map(|(at, _, to)| {
                    let length = self.batch.lengths[*at];
                    let bytes = &self.batch.buffers[*at][FRAME_AT - HEADER_LEN..length];
                    ([bytes, &[]], *to)
                })
                .collect();
            send_all(sender, &datagrams, &self.counters, &self.shared);
        }
        self.plain.clear();
    }

    /// Sends the segments [`segment`] cut from the super-frame in buffer `at` to `to`: with
    /// UDP GSO as many per send as a datagram holds, each gathered from its headers and its
    /// payload, else one datagram each. A GSO send the kernel refuses turns GSO off.
    fn send_segments(&mut self, sender: usize, at: usize, segments: Segments, to: SocketAddr) {
        let socket = &self.senders[sender];
        let frame = &self.batch.buffers[at][FRAME_AT..self.batch.lengths[at]];
        let stride = segments.stride();
        let per_send = (GSO_MAX_BYTES / stride).clamp(1, GSO_MAX_SEGMENTS);
        // The first segment not yet sent.
        let mut unsent = 0;
        if self.udp_gso && segments.count > 1 {
            let mut pieces = Vec::with_capacity(2 * per_send);
            while unsent < segments.count {
                let count = per_send.min(segments.count - unsent);
                pieces.clear();
                pieces.extend(
                    (unsent..unsent + count)
                        .flat_map(|index| segments.parts(index, &self.headers, frame))
                        .map(IoSlice::new),
                );
                let bytes = pieces.iter().map(|piece| piece.len()).sum();
                let size = u16::try_from(stride).ok().filter(|_| count > 1);
                match send_one(socket, &pieces, size, to, &self.shared) {
                    Ok(()) => self.counters.transmitted(count, bytes),
                    Err(error)
                        if matches!(
                            error.raw_os_error(),
                            Some(nix::libc::EIO | nix::libc::EINVAL)
                        ) =>
                    {
                        tracing::warn!(%error, "UDP GSO refused: segments are sent one datagram each from now on");
                        self.udp_gso = false;
                        break;
                    }
                    Err(error) => tracing::debug!(%to, %error, "VXLAN send failed"),
                }
                unsent += count;
            }
            if self.udp_gso {
                return;
            }
        }
        let datagrams: Vec<Datagram<'_>> = (unsent..segments.count)
            .map(|index| (segments.parts(index, &self.headers, frame), to))
            .collect();
        send_all(socket, &datagrams, &self.counters, &self.shared);
    }
}

/// Sends every datagram, waiting while the socket is full; a datagram the kernel refuses is
/// skipped (and logged at debug). Gives up when the data path stops.
fn send_all(socket: &UdpSocket, datagrams: &[Datagram<'_>], counters: &Counters, shared: &Shared) {
    let mut rest = datagrams;
    while !rest.is_empty() {
        let sent = shared
            .stop
            .retry_write(socket.as_fd(), || batch::send_many(socket, rest));
        match sent {
            None => return,
            Some(Ok(sent)) => {
                counters.transmitted(
                    sent,
                    rest[..sent]
                        .iter()
                        .map(|([head, tail], _)| head.len() + tail.len())
                        .sum(),
                );
                rest = &rest[sent.max(1)..];
            }
            Some(Err(error)) => {
                tracing::debug!(to = %rest[0].1, %error, "VXLAN send failed");
                rest = &rest[1..];
            }
        }
    }
}

/// Sends one datagram (or one GSO run of them) gathered from `pieces`, waiting while the
/// socket is full.
fn send_one(
    socket: &UdpSocket,
    pieces: &[IoSlice<'_>],
    segment_size: Option<u16>,
    to: SocketAddr,
    shared: &Shared,
) -> io::Result<()> {
    loop {
        match batch::send_one(socket, pieces, segment_size, to) {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                if !shared.stop.wait(socket.as_fd(), PollFlags::POLLOUT)? {
                    return Ok(());
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}
