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
use socket2::{Domain, Protocol, SockFilter, Socket, Type};
use tokio::net::UdpSocket;

use crate::PodNetError;
use crate::metrics::Counters;
use crate::plan;
use crate::vxlan::{DropReason, HEADER_LEN, Vtep};

/// UDP header bytes, written in front of the VXLAN header on send.
const UDP_HEADER_LEN: usize = 8;
/// Room for the largest frame a device of any valid MTU hands over.
const BUFFER_LEN: usize = 65_536;
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
            .ipv4(address, settings.address.prefix_len(), None)
            .enable(true)
            .build_async()
            .map_err(device_error)?;
        let index = device.if_index().map_err(device_error)?;

        let listen = SocketAddr::V4(SocketAddrV4::new(settings.local, settings.port));
        let receiver = std::net::UdpSocket::bind(listen)
            .and_then(|socket| {
                socket.set_nonblocking(true)?;
                UdpSocket::from_std(socket)
            })
            .map_err(|e| PodNetError::Socket(listen, e))?;
        let sender = raw_sender(settings.local).map_err(|e| PodNetError::Socket(listen, e))?;
        tracing::info!(
            device = settings.device,
            address = %settings.address,
            mtu = settings.mtu,
            %listen,
            vni = settings.vni,
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

    /// Reads one frame from the device into `buffer` after room for the headers.
    pub(crate) async fn read_frame(&self, buffer: &mut [u8]) -> io::Result<usize> {
        self.device
            .recv(&mut buffer[UDP_HEADER_LEN + HEADER_LEN..])
            .await
    }

    /// Reads one datagram from the socket.
    pub(crate) async fn read_datagram(&self, buffer: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.receiver.recv_from(buffer).await
    }

    /// Encapsulates the frame of `length` bytes read by [`Overlay::read_frame`] and sends a
    /// copy to each VTEP it goes to.
    pub(crate) async fn send_frame(&mut self, buffer: &mut [u8], length: usize, now: Instant) {
        let frame_start = UDP_HEADER_LEN + HEADER_LEN;
        let frame = &buffer[frame_start..frame_start + length];
        let Some(transmit) = self.vtep.transmit(frame, now) else {
            return;
        };
        let destinations: Vec<IpAddr> = transmit.to.collect();
        let datagram_len = frame_start + length;
        let udp_len = u16::try_from(datagram_len).unwrap_or(u16::MAX);
        buffer[0..2].copy_from_slice(&transmit.source_port.to_be_bytes());
        buffer[2..4].copy_from_slice(&self.settings.port.to_be_bytes());
        buffer[4..6].copy_from_slice(&udp_len.to_be_bytes());
        buffer[6..8].copy_from_slice(&[0, 0]);
        buffer[UDP_HEADER_LEN..frame_start].copy_from_slice(&transmit.header);
        let datagram = &buffer[..datagram_len];
        for vtep in destinations {
            // The port of a raw socket's destination is not used: the UDP header is ours.
            let sent = self
                .sender
                .send_to(datagram, SocketAddr::new(vtep, 0))
                .await;
            match sent {
                Ok(_) => self.counters.transmitted(datagram_len - UDP_HEADER_LEN),
                Err(error) => tracing::debug!(%vtep, %error, "VXLAN send failed"),
            }
        }
    }

    /// Decapsulates a datagram from `from` and writes its frame to the device, or counts
    /// why it was dropped.
    pub(crate) async fn deliver(&mut self, from: IpAddr, datagram: &[u8], now: Instant) {
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

    /// Drops so far, by reason name.
    pub(crate) fn drops(&self) -> Vec<(String, u64)> {
        DropReason::ALL
            .iter()
            .zip(self.counters.drop_counts)
            .map(|(reason, count)| (reason.name().to_owned(), count))
            .collect()
    }

    /// The buffer size the reads need.
    pub(crate) fn buffer() -> Vec<u8> {
        vec![0; BUFFER_LEN]
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
