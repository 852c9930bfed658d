//! The overlay's UDP sockets: one bound to the VXLAN port that frames arrive on, and
//! [`SENDERS`] that frames leave by, each bound to its own source port in 49152-65535 (the
//! source port is a hash of the inner flow for ECMP entropy, and a UDP socket sends from
//! its own port only).

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;

use nix::sys::socket::{setsockopt, sockopt};
use socket2::{Domain, Protocol, SockFilter, SockRef, Socket, Type};

use crate::vxlan::flow::SOURCE_PORTS;

/// Socket buffer bytes each way.
const SOCKET_BUFFER: usize = 8 << 20;
/// BPF: "return 0", keep no byte of any packet (for the senders, which receive nothing).
const ACCEPT_NOTHING: [SockFilter; 1] = [SockFilter::new(0x06, 0, 0, 0)];
/// Sockets frames leave by, one per source port.
pub(crate) const SENDERS: usize = 16;

/// A non-blocking UDP socket bound to `address`, with large buffers.
pub(crate) fn udp_socket(address: SocketAddr) -> io::Result<UdpSocket> {
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
    Ok(socket.into())
}

/// The sockets frames leave by, bound to `local` and [`SENDERS`] ports spread over
/// 49152-65535 (a port in use elsewhere is skipped for the next free one). They receive
/// nothing: a filter keeps no packet.
pub(crate) fn bind_senders(local: IpAddr) -> io::Result<Vec<UdpSocket>> {
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
