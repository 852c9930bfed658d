//! The receive thread: datagrams from the VXLAN socket (each one or several VXLAN packets
//! joined by UDP GRO), checked by the VTEP, and their frames written to the device, the
//! in-order TCP segments of a flow joined into one super-frame where the device takes them.
//! A frame is written with one writev(2) gathered from the received datagrams, so its
//! payload is copied once, by the kernel.

use std::io::{self, IoSlice};
use std::net::UdpSocket;
use std::ops::Range;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Instant;

use tun_rs::SyncDevice;

use super::Shared;
use crate::batch::{Batch, RECEIVE_BATCH};
use crate::metrics::Counters;
use crate::offload::coalesce::Coalescer;
use crate::offload::split_datagram;

/// The socket-to-device direction, run on a thread of its own.
pub(super) struct Receiver {
    device: Arc<SyncDevice>,
    /// The device takes a virtio-net header in front of each frame.
    offload: bool,
    socket: Arc<UdpSocket>,
    shared: Arc<Shared>,
    counters: Counters,
    batch: Batch,
    /// The frames the VTEP accepted: (buffer, bytes in it).
    accepted: Vec<(usize, Range<usize>)>,
    /// Frames for the device, joined where they can be.
    coalescer: Coalescer,
}

impl Receiver {
    pub(super) fn new(
        device: Arc<SyncDevice>,
        offload: bool,
        socket: UdpSocket,
        shared: Arc<Shared>,
    ) -> Self {
        Receiver {
            device,
            offload,
            socket: Arc::new(socket),
            counters: shared.counters.clone(),
            shared,
            batch: Batch::new(RECEIVE_BATCH),
            accepted: Vec::with_capacity(RECEIVE_BATCH),
            coalescer: Coalescer::new(),
        }
    }

    /// Carries datagrams until told to stop, or until reading the socket fails.
    pub(super) fn run(mut self) -> io::Result<()> {
        let (shared, socket) = (Arc::clone(&self.shared), Arc::clone(&self.socket));
        shared.stop.run_reads(socket.as_fd(), || {
            self.batch.receive(&self.socket)?;
            self.deliver(Instant::now());
            Ok(())
        })
    }

    /// Decapsulates the batch and writes its frames to the device, joined where they can
    /// be, or counts why each packet was dropped.
    fn deliver(&mut self, now: Instant) {
        self.check(now);
        let frame = |id: usize| {
            let (at, range) = &self.accepted[id];
            &self.batch.buffers[*at][range.clone()]
        };
        if !self.offload {
            for id in 0..self.accepted.len() {
                write(&self.device, &[IoSlice::new(frame(id))], &self.shared);
            }
            return;
        }
        for id in 0..self.accepted.len() {
            self.coalescer.push(id, frame(id));
        }
        self.coalescer.finish();
        let mut slices = Vec::new();
        for pieces in self.coalescer.frames() {
            slices.clear();
            slices.extend(
                pieces
                    .iter()
                    .map(|piece| IoSlice::new(self.coalescer.bytes(piece, frame))),
            );
            write(&self.device, &slices, &self.shared);
        }
        self.coalescer.clear();
    }

    /// Asks the VTEP about every packet of the batch, holding its lock once: the frames it
    /// accepts go to [`Receiver::accepted`], the others are counted.
    fn check(&mut self, now: Instant) {
        self.accepted.clear();
        let mut bytes = 0;
        let mut vtep = self.shared.vtep();
        for at in 0..self.batch.filled {
            let Some(from) = self.batch.sources[at] else {
                continue;
            };
            let datagram = &self.batch.buffers[at][..self.batch.lengths[at]];
            let size = self.batch.segment_sizes[at].unwrap_or(datagram.len());
            let mut start = 0;
            for packet in split_datagram(datagram, size) {
                let end = start + packet.len();
                match vtep.receive(from, packet, now) {
                    Ok(frame) => {
                        bytes += packet.len();
                        // The frame is the packet behind its VXLAN header.
                        self.accepted.push((at, end - frame.len()..end));
                    }
                    Err(reason) => self.counters.dropped(reason, from),
                }
                start = end;
            }
        }
        self.counters.received(self.accepted.len(), bytes);
    }
}

/// Writes one frame, gathered from `pieces`, to the device, waiting while it is full; a
/// frame the device refuses is dropped (and logged at debug).
fn write(device: &SyncDevice, pieces: &[IoSlice<'_>], shared: &Shared) {
    let written = shared
        .stop
        .retry_write(device.as_fd(), || device.send_vectored(pieces));
    if let Some(Err(error)) = written {
        tracing::debug!(%error, "frame not written to the device");
    }
}
