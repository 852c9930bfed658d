//! VXLAN mode's I/O: the TAP device, the UDP sockets frames arrive on and leave by, around
//! the sans-IO [`Vtep`] and the software offloads ([`crate::offload`]).
//!
//! The TAP is opened with a virtio-net header and TSO: the kernel hands over TCP frames of up
//! to 64 KiB, which are cut into MTU-sized segments here and leave in one UDP GSO send; on
//! the way in, UDP GRO hands over runs of VXLAN packets, whose TCP segments are joined again
//! before the TAP gets them. Where the kernel lacks one of these, the data path works
//! without it, and says so once in the log.
//!
//! Frames leave from one of [`SENDERS`] UDP sockets, each bound to its own source port in
//! 49152-65535: the source port is a hash of the inner flow (ECMP entropy), and a UDP socket
//! sends from its own port only. The UDP checksum is set (UDP GSO needs it; RFC 7348 allows
//! it); DF is set over IPv4 (path-MTU discovery is on by default) and IPv6 never fragments
//! on the way, so nothing is fragmented. Frames arrive on a UDP socket bound to the VXLAN
//! port, so the kernel answers no "port unreachable".

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::time::Instant;

use ipnet::IpNet;
use nix::sys::socket::{setsockopt, sockopt};
use socket2::{Domain, Protocol, SockFilter, SockRef, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::PodNetError;
use crate::batch::{self, BATCH, Batch};
use crate::metrics::Counters;
use crate::offload::coalesce::Coalescer;
use crate::offload::segment::{Segments, segment};
use crate::offload::virtio::{self, VirtioHeader};
use crate::offload::{complete_checksum, split_datagram};
use crate::plan;
use crate::vxlan::flow::SOURCE_PORTS;
use crate::vxlan::{DropReason, HEADER_LEN, Vtep};

/// Frames the kernel queues on the device for us to read.
const DEVICE_QUEUE: u32 = 10_000;
/// Socket buffer bytes each way.
const SOCKET_BUFFER: usize = 8 << 20;
/// BPF: "return 0", keep no byte of any packet (for the senders, which receive nothing).
const ACCEPT_NOTHING: [SockFilter; 1] = [SockFilter::new(0x06, 0, 0, 0)];
/// Sockets frames leave by, one per source port.
const SENDERS: usize = 16;
/// Where a frame read from the device starts in a batch buffer: behind its virtio-net
/// header, whose last bytes the VXLAN header then overwrites.
const FRAME_AT: usize = virtio::HEADER_LEN;
/// Most UDP payload bytes of one GSO send: an IP packet is at most 64 KiB, headers included.
const GSO_MAX_BYTES: usize = 65_000;
/// Most segments of one GSO send (UDP_MAX_SEGMENTS of older kernels).
const GSO_MAX_SEGMENTS: usize = 64;

/// What VXLAN mode needs to know at bind.
#[derive(Debug, Clone)]
pub(crate) struct OverlaySettings {
    pub(crate) device: String,
    pub(crate) vni: u32,
    pub(crate) port: u16,
    /// This node's underlay address, IPv4 or IPv6.
    pub(crate) local: IpAddr,
    pub(crate) address: IpNet,
    pub(crate) mtu: u32,
}

/// The overlay's device and sockets, and the VTEP that decides for them.
pub(crate) struct Overlay {
    device: tun_rs::AsyncDevice,
    /// The device reads and writes a virtio-net header (TSO and checksum offload on).
    offload: bool,
    /// The kernel takes UDP GSO sends.
    udp_gso: bool,
    pub(crate) index: u32,
    pub(crate) settings: OverlaySettings,
    receiver: UdpSocket,
    senders: Vec<UdpSocket>,
    pub(crate) vtep: Vtep,
    counters: Counters,
    /// The segments of the super-frame being sent.
    segments: Vec<u8>,
    /// Frames for the device, joined where they can be.
    coalescer: Coalescer,
}

impl std::fmt::Debug for Overlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overlay")
            .field("settings", &self.settings)
            .field("offload", &self.offload)
            .field("udp_gso", &self.udp_gso)
            .field("vtep", &self.vtep)
            .finish_non_exhaustive()
    }
}

impl Overlay {
    /// Creates the device (up, addressed, its MTU set, offloads on where the kernel has
    /// them) and binds the sockets.
    pub(crate) fn bind(settings: OverlaySettings, counters: Counters) -> Result<Self, PodNetError> {
        let IpAddr::V4(address) = settings.address.addr() else {
            return Err(PodNetError::Unsupported("an IPv6 pod range in VXLAN mode"));
        };
        let device_error = |e: io::Error| PodNetError::Device(settings.device.clone(), e);
        let mtu = u16::try_from(settings.mtu).unwrap_or(u16::MAX);
        let build = |offload: bool| {
            tun_rs::DeviceBuilder::new()
                .name(&settings.device)
                .layer(tun_rs::Layer::L2)
                .mac_addr(plan::device_mac(address.into()))
                .mtu(mtu)
                .offload(offload)
                // Room for the bursts TCP sends while the loop is busy with the other
                // direction: with the default 1000 frames the kernel drops them on the
                // device (TX dropped).
                .tx_queue_len(DEVICE_QUEUE)
                .ipv4(address, settings.address.prefix_len(), None)
                .enable(true)
                .build_async()
        };
        let (device, offload) = match build(true) {
            Ok(device) => (device, true),
            Err(error) => {
                tracing::warn!(%error, "the TAP device takes no virtio-net header: no TSO, one frame per read and write");
                (build(false).map_err(device_error)?, false)
            }
        };
        let index = device.if_index().map_err(device_error)?;

        let listen = SocketAddr::new(settings.local, settings.port);
        let socket_error = |e: io::Error| PodNetError::Socket(listen, e);
        let receiver = udp_socket(listen).map_err(socket_error)?;
        let gro = setsockopt(&receiver, sockopt::UdpGroSegment, &true);
        if let Err(error) = &gro {
            tracing::warn!(%error, "no UDP GRO: VXLAN packets are received one by one");
        }
        let senders = bind_senders(settings.local).map_err(socket_error)?;
        // Probed by setting a socket default the sends override anyway.
        let udp_gso = setsockopt(&senders[0], sockopt::UdpGsoSegment, &0).is_ok();
        if !udp_gso {
            tracing::warn!("no UDP GSO: segments are sent one datagram each");
        }
        tracing::info!(
            device = settings.device,
            address = %settings.address,
            mtu = settings.mtu,
            %listen,
            vni = settings.vni,
            batch = BATCH,
            tso = offload,
            udp_gso,
            udp_gro = gro.is_ok(),
            source_ports = ?senders.iter().filter_map(|s| s.local_addr().ok()).map(|a| a.port()).collect::<Vec<_>>(),
            "VXLAN overlay up"
        );
        Ok(Overlay {
            device,
            offload,
            udp_gso,
            index,
            vtep: Vtep::new(settings.vni),
            settings,
            receiver,
            senders,
            counters,
            segments: Vec::with_capacity(2 * batch::BUFFER_LEN),
            coalescer: Coalescer::new(),
        })
    }

    /// Waits for a frame from the device, then takes the ones queued behind it (up to
    /// [`BATCH`]), each read at [`FRAME_AT`] (its virtio-net header in front, if any).
    pub(crate) async fn read_frames(&self, batch: &mut Batch) -> io::Result<()> {
        let start = if self.offload { 0 } else { FRAME_AT };
        let length = self.device.recv(&mut batch.buffers[0][start..]).await?;
        batch.lengths[0] = start + length;
        batch.filled = 1;
        while batch.filled < BATCH {
            match self
                .device
                .try_recv(&mut batch.buffers[batch.filled][start..])
            {
                Ok(length) => {
                    batch.lengths[batch.filled] = start + length;
                    batch.filled += 1;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Waits until datagrams are queued on the socket, then takes them (up to [`BATCH`]).
    pub(crate) async fn read_datagrams(&self, batch: &mut Batch) -> io::Result<()> {
        loop {
            self.receiver.readable().await?;
            match self
                .receiver
                .try_io(Interest::READABLE, || batch.receive(&self.receiver))
            {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                result => return result,
            }
        }
    }

    /// Encapsulates the frames read by [`Overlay::read_frames`] and sends a copy of each to
    /// every VTEP it goes to: super-frames cut into segments, one GSO send each; other
    /// frames many per system call, in order.
    pub(crate) async fn send_frames(&mut self, batch: &mut Batch, now: Instant) {
        // (buffer, sender, destination) of frames waiting to go in one sendmmsg.
        let mut plain: Vec<(usize, usize, SocketAddr)> = Vec::with_capacity(BATCH);
        let mut destinations: Vec<SocketAddr> = Vec::new();
        for at in 0..batch.filled {
            let length = batch.lengths[at];
            let buffer = &mut batch.buffers[at];
            let offload = match self.offload {
                true => VirtioHeader::decode(buffer).unwrap_or_default(),
                false => VirtioHeader::default(),
            };
            let frame = &mut buffer[FRAME_AT..length];
            let Some(transmit) = self.vtep.transmit(frame, now) else {
                continue;
            };
            let sender = usize::from(transmit.source_port) % self.senders.len();
            let header = transmit.header;
            destinations.clear();
            destinations.extend(
                transmit
                    .to
                    .map(|to| SocketAddr::new(to, self.settings.port)),
            );
            if offload.gso_type != virtio::GSO_NONE {
                self.segments.clear();
                let cut = segment(frame, offload.gso_size.into(), &header, &mut self.segments);
                // The frames read before this one leave first: a flow's order is kept.
                self.send_plain(batch, &mut plain).await;
                match cut {
                    Ok(segments) => {
                        for to in &destinations {
                            self.send_segments(sender, segments, *to).await;
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
            buffer[FRAME_AT - HEADER_LEN..FRAME_AT].copy_from_slice(&header);
            plain.extend(destinations.iter().map(|to| (at, sender, *to)));
        }
        self.send_plain(batch, &mut plain).await;
    }

    /// Sends the queued frames of `batch`, one sendmmsg per sender socket as far as the
    /// socket takes them, and empties the queue.
    async fn send_plain(&self, batch: &Batch, plain: &mut Vec<(usize, usize, SocketAddr)>) {
        for (index, sender) in self.senders.iter().enumerate() {
            let datagrams: Vec<(&[u8], SocketAddr)> = plain
                .iter()
                .filter(|(_, from, _)| *from == index)
                .map(|(at, _, to)| {
                    (
                        &batch.buffers[*at][FRAME_AT - HEADER_LEN..batch.lengths[*at]],
                        *to,
                    )
                })
                .collect();
            send_all(sender, &datagrams, &self.counters).await;
        }
        plain.clear();
    }

    /// Sends the segments [`segment`] wrote to `to`: with UDP GSO as many per send as a
    /// datagram holds, else one datagram each. A GSO send the kernel refuses turns GSO off.
    async fn send_segments(&mut self, sender: usize, segments: Segments, to: SocketAddr) {
        let socket = &self.senders[sender];
        let per_send = (GSO_MAX_BYTES / segments.stride).clamp(1, GSO_MAX_SEGMENTS);
        // Where the segments not yet sent start.
        let mut unsent = 0;
        if self.udp_gso && segments.count > 1 {
            for chunk in self.segments.chunks(per_send * segments.stride) {
                let size = u16::try_from(segments.stride)
                    .ok()
                    .filter(|_| chunk.len() > segments.stride);
                match send_one(socket, chunk, size, to).await {
                    Ok(()) => self
                        .counters
                        .transmitted(chunk.len().div_ceil(segments.stride), chunk.len()),
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
                unsent += chunk.len();
            }
            if self.udp_gso {
                return;
            }
        }
        let datagrams: Vec<(&[u8], SocketAddr)> = self.segments[unsent..]
            .chunks(segments.stride)
            .map(|datagram| (datagram, to))
            .collect();
        send_all(socket, &datagrams, &self.counters).await;
    }

    /// Decapsulates the datagrams read by [`Overlay::read_datagrams`] (each one or several
    /// VXLAN packets) and writes their frames to the device, joined where they can be, or
    /// counts why each was dropped.
    pub(crate) async fn deliver_datagrams(&mut self, batch: &Batch, now: Instant) {
        for at in 0..batch.filled {
            let Some(from) = batch.sources[at] else {
                continue;
            };
            let datagram = &batch.buffers[at][..batch.lengths[at]];
            let size = batch.segment_sizes[at].unwrap_or(datagram.len());
            for packet in split_datagram(datagram, size) {
                match self.vtep.receive(from, packet, now) {
                    Ok(frame) if self.offload => {
                        self.counters.received(packet.len());
                        self.coalescer.push(frame);
                    }
                    Ok(frame) => {
                        self.counters.received(packet.len());
                        if let Err(error) = self.device.send(frame).await {
                            tracing::debug!(%error, "frame not written to the device");
                        }
                    }
                    Err(reason) => self.counters.dropped(reason, from),
                }
            }
        }
        self.coalescer.finish();
        for frame in self.coalescer.frames() {
            if let Err(error) = self.device.send(frame).await {
                tracing::debug!(%error, "frame not written to the device");
            }
        }
        self.coalescer.clear();
    }

    /// Drops so far, by reason name.
    pub(crate) fn drops(&self) -> Vec<(String, u64)> {
        DropReason::ALL
            .iter()
            .zip(self.counters.drop_counts)
            .map(|(reason, count)| (reason.name().to_owned(), count))
            .collect()
    }
}

/// Sends every datagram, waiting while the socket is full; a datagram the kernel refuses is
/// skipped (and logged at debug).
async fn send_all(socket: &UdpSocket, datagrams: &[(&[u8], SocketAddr)], counters: &Counters) {
    let mut rest = datagrams;
    while !rest.is_empty() {
        match socket.try_io(Interest::WRITABLE, || batch::send_many(socket, rest)) {
            Ok(sent) => {
                counters.transmitted(
                    sent,
                    rest[..sent].iter().map(|(bytes, _)| bytes.len()).sum(),
                );
                rest = &rest[sent.max(1)..];
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                if socket.writable().await.is_err() {
                    return;
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => {
                tracing::debug!(to = %rest[0].1, %error, "VXLAN send failed");
                rest = &rest[1..];
            }
        }
    }
}

/// Sends one datagram (or one GSO run of them), waiting while the socket is full.
async fn send_one(
    socket: &UdpSocket,
    bytes: &[u8],
    segment_size: Option<u16>,
    to: SocketAddr,
) -> io::Result<()> {
    loop {
        match socket.try_io(Interest::WRITABLE, || {
            batch::send_one(socket, bytes, segment_size, to)
        }) {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => socket.writable().await?,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

/// A non-blocking UDP socket bound to `address`, with large buffers.
fn udp_socket(address: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    if address.is_ipv6() {
        // Over IPv6 a datagram too large for the path fails instead of leaving in fragments.
        socket.set_only_v6(true)?;
        setsockopt(&socket, sockopt::Ipv6DontFrag, &true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    grow_buffers(&socket);
    UdpSocket::from_std(socket.into())
}

/// The sockets frames leave by, bound to `local` and [`SENDERS`] ports spread over
/// 49152-65535 (a port in use elsewhere is skipped for the next free one). They receive
/// nothing: a filter keeps no packet.
fn bind_senders(local: IpAddr) -> io::Result<Vec<UdpSocket>> {
    let span = usize::from(SOURCE_PORTS.end() - SOURCE_PORTS.start()) + 1;
    let slot = span / SENDERS;
    let mut senders = Vec::with_capacity(SENDERS);
    for index in 0..SENDERS {
        let first = usize::from(*SOURCE_PORTS.start()) + index * slot;
        let mut last_error = None;
        for port in first..first + slot {
            match udp_socket(SocketAddr::new(local, port as u16)) {
                Ok(socket) => {
                    SockRef::from(&socket).attach_filter(&ACCEPT_NOTHING)?;
                    senders.push(socket);
                    last_error = None;
                    break;
                }
                Err(error) if error.kind() == io::ErrorKind::AddrInUse => last_error = Some(error),
                Err(error) => return Err(error),
            }
        }
        if let Some(error) = last_error {
            return Err(error);
        }
    }
    Ok(senders)
}

/// Gives a socket buffers of [`SOCKET_BUFFER`] past the `net.core.{r,w}mem_max` limits (we
/// hold CAP_NET_ADMIN, the device needs it): with the default 208 KiB, the sender's
/// bursts overflow the receiver's buffer and TCP inside backs off on every loss. Without
/// the capability, the limits apply and that is said in the log.
fn grow_buffers(socket: &impl AsFd) {
    let forced = setsockopt(socket, sockopt::RcvBufForce, &SOCKET_BUFFER)
        .and_then(|()| setsockopt(socket, sockopt::SndBufForce, &SOCKET_BUFFER));
    if let Err(error) = forced {
        let socket = SockRef::from(socket);
        let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
        let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
        tracing::info!(%error, "VXLAN socket buffers limited by net.core.rmem_max/wmem_max");
    }
}
