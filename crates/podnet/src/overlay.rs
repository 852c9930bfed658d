//! VXLAN mode's I/O: the TAP device, the UDP socket frames arrive on, and the raw socket
//! they leave by, around the sans-IO [`Vtep`].
//!
//! Frames leave through a raw IPPROTO_UDP socket because the UDP source port is per inner
//! flow (ECMP entropy): one bound UDP socket could only send from 4789. The kernel adds the
//! IPv4 header (DF set: path-MTU discovery is on by default, and nothing is fragmented);
//! the UDP checksum is zero, as RFC 7348 recommends over IPv4. Frames arrive on a UDP socket
//! bound to the VXLAN port, so the kernel answers no "port unreachable". The raw socket
//! would also receive a copy of every UDP packet: a filter that accepts nothing stops that.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Instant;

use ipnet::IpNet;
use std::os::fd::AsFd;

use nix::sys::socket::{setsockopt, sockopt};
use socket2::{Domain, Protocol, SockFilter, SockRef, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::PodNetError;
use crate::batch::{BATCH, Batch};
use crate::metrics::Counters;
use crate::plan;
use crate::vxlan::{DropReason, HEADER_LEN, Vtep};

/// UDP header bytes, written in front of the VXLAN header on send.
const UDP_HEADER_LEN: usize = 8;
/// Frames the kernel queues on the device for us to read.
const DEVICE_QUEUE: u32 = 10_000;
/// Socket buffer bytes each way.
const SOCKET_BUFFER: usize = 8 << 20;
/// BPF: "return 0", keep no byte of any packet.
const ACCEPT_NOTHING: [SockFilter; 1] = [SockFilter::new(0x06, 0, 0, 0)];

/// What VXLAN mode needs to know at bind.
#[derive(Debug, Clone)]
pub(crate) struct OverlaySettings {
    pub(crate) device: String,
    pub(crate) vni: u32,
    pub(crate) port: u16,
    pub(crate) local: Ipv4Addr,
    pub(crate) address: IpNet,
    pub(crate) mtu: u32,
}

/// The overlay's device and sockets, and the VTEP that decides for them.
pub(crate) struct Overlay {
    device: tun_rs::AsyncDevice,
    pub(crate) index: u32,
    pub(crate) settings: OverlaySettings,
    receiver: UdpSocket,
    sender: UdpSocket,
    pub(crate) vtep: Vtep,
    counters: Counters,
}

impl std::fmt::Debug for Overlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overlay")
            .field("settings", &self.settings)
            .field("vtep", &self.vtep)
            .finish_non_exhaustive()
    }
}

impl Overlay {
    /// Creates the device (up, addressed, its MTU set) and binds the sockets.
    pub(crate) fn bind(settings: OverlaySettings, counters: Counters) -> Result<Self, PodNetError> {
        let IpAddr::V4(address) = settings.address.addr() else {
            return Err(PodNetError::Unsupported("an IPv6 pod range in VXLAN mode"));
        };
        let device_error = |e: io::Error| PodNetError::Device(settings.device.clone(), e);
        let mtu = u16::try_from(settings.mtu).unwrap_or(u16::MAX);
        let device = tun_rs::DeviceBuilder::new()
            .name(&settings.device)
            .layer(tun_rs::Layer::L2)
            .mac_addr(plan::device_mac(address.into()))
            .mtu(mtu)
            // Room for the bursts TCP sends while the loop is busy with the other direction:
            // with the default 1000 frames the kernel drops them on the device (TX dropped).
            .tx_queue_len(DEVICE_QUEUE)
            .ipv4(address, settings.address.prefix_len(), None)
            .enable(true)
            .build_async()
            .map_err(device_error)?;
        let index = device.if_index().map_err(device_error)?;

        let listen = SocketAddr::V4(SocketAddrV4::new(settings.local, settings.port));
        let receiver = std::net::UdpSocket::bind(listen)
            .and_then(|socket| {
                socket.set_nonblocking(true)?;
                grow_buffers(&socket);
                UdpSocket::from_std(socket)
            })
            .map_err(|e| PodNetError::Socket(listen, e))?;
        let sender = raw_sender(settings.local).map_err(|e| PodNetError::Socket(listen, e))?;
        grow_buffers(&sender);
        tracing::info!(
            device = settings.device,
            address = %settings.address,
            mtu = settings.mtu,
            %listen,
            vni = settings.vni,
            batch = BATCH,
            // Said once here: no virtio-net header, TSO/GSO/GRO or UDP GSO is used yet.
            offloads = "none",
            "VXLAN overlay up"
        );
        Ok(Overlay {
            device,
            index,
            vtep: Vtep::new(settings.vni),
            settings,
            receiver,
            sender,
            counters,
        })
    }

    /// Waits for a frame from the device, then takes the ones queued behind it (up to
    /// [`BATCH`]), each read after room for the UDP and VXLAN headers.
    pub(crate) async fn read_frames(&self, batch: &mut Batch) -> io::Result<()> {
        let start = UDP_HEADER_LEN + HEADER_LEN;
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
    /// every VTEP it goes to, in as few system calls as the socket allows.
    pub(crate) async fn send_frames(&mut self, batch: &mut Batch, now: Instant) {
        let start = UDP_HEADER_LEN + HEADER_LEN;
        batch.sends.clear();
        for at in 0..batch.filled {
            let length = batch.lengths[at];
            let buffer = &mut batch.buffers[at];
            let Some(transmit) = self.vtep.transmit(&buffer[start..length], now) else {
                continue;
            };
            batch.sends.extend(transmit.to.map(|vtep| (at, vtep)));
            let udp_len = u16::try_from(length).unwrap_or(u16::MAX);
            buffer[0..2].copy_from_slice(&transmit.source_port.to_be_bytes());
            buffer[2..4].copy_from_slice(&self.settings.port.to_be_bytes());
            buffer[4..6].copy_from_slice(&udp_len.to_be_bytes());
            buffer[6..8].copy_from_slice(&[0, 0]);
            buffer[UDP_HEADER_LEN..start].copy_from_slice(&transmit.header);
        }
        while !batch.sends.is_empty() {
            if let Err(error) = self.sender.writable().await {
                tracing::debug!(%error, "VXLAN sender not writable");
                return;
            }
            match self
                .sender
                .try_io(Interest::WRITABLE, || batch.send(&self.sender))
            {
                Ok((packets, bytes)) => self.counters.transmitted(packets, bytes),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => {
                    tracing::debug!(%error, "VXLAN send failed");
                    return;
                }
            }
        }
    }

    /// Decapsulates the datagrams read by [`Overlay::read_datagrams`] and writes their
    /// frames to the device, or counts why each was dropped.
    pub(crate) async fn deliver_datagrams(&mut self, batch: &Batch, now: Instant) {
        for at in 0..batch.filled {
            let Some(from) = batch.sources[at] else {
                continue;
            };
            let datagram = &batch.buffers[at][..batch.lengths[at]];
            match self.vtep.receive(from, datagram, now) {
                Ok(frame) => {
                    self.counters.received(datagram.len());
                    if let Err(error) = self.device.send(frame).await {
                        tracing::debug!(%error, "frame not written to the device");
                    }
                }
                Err(reason) => self.counters.dropped(reason, from),
            }
        }
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

/// Gives a socket buffers of [`SOCKET_BUFFER`] past the `net.core.{r,w}mem_max` limits (we
/// hold CAP_NET_ADMIN, the device needs it): with the default 208 KiB, the sender's
/// sendmmsg bursts overflow the receiver's buffer and TCP inside backs off on every loss.
/// Without the capability, the limits apply and that is said in the log.
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

/// The raw socket frames leave by, bound to this node's address (the outer source).
/// tokio's `UdpSocket` wraps it: it is only `sendto` on a datagram socket to tokio, and so
/// needs no unsafe registration of a raw fd.
fn raw_sender(local: Ipv4Addr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::UDP))?;
    socket.attach_filter(&ACCEPT_NOTHING)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(local, 0)).into())?;
    UdpSocket::from_std(socket.into())
}
