//! Listening sockets. IP_FREEBIND lets a listener bind a ClusterIP or LoadBalancer IP
//! before the routes component has made it local; the backlog is set explicitly because
//! the default is small for a proxy.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

const BACKLOG: i32 = 4096;

fn socket(addr: SocketAddr, kind: Type, protocol: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), kind, Some(protocol))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
        socket.set_freebind_v6(true)?;
    } else {
        socket.set_freebind_v4(true)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// A listening TCP socket, non-blocking, for the [`crate::accept::Acceptor`] to serve.
pub(crate) fn tcp(addr: SocketAddr) -> io::Result<Socket> {
    let socket = socket(addr, Type::STREAM, Protocol::TCP)?;
    socket.set_reuse_address(true)?;
    // Accepted connections inherit TCP_NODELAY from the listener: set once here, it saves
    // a system call on every connection.
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket)
}

pub(crate) fn udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = socket(addr, Type::DGRAM, Protocol::UDP)?;
    // Room for bursts while the single receive loop is busy.
    let _ = socket.set_recv_buffer_size(4 << 20);
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_connections_inherit_tcp_nodelay_from_the_listener() {
        let listener = tcp("127.0.0.1:0".parse().unwrap()).unwrap();
        let at = listener.local_addr().unwrap().as_socket().unwrap();
        let client = std::net::TcpStream::connect(at).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(accepted.tcp_nodelay().unwrap());
        assert!(!client.nodelay().unwrap());
    }
}
