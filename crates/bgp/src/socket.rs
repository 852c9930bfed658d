//! The TCP side of a session: the listeners on port 179, outbound connections with their
//! TTL, and TCP-MD5 signatures (RFC 2385) on both, through the Linux `TCP_MD5SIG` socket
//! option, which neither tokio nor socket2 offers.

#![allow(unsafe_code)]

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, SockRef, Socket, Type};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};

/// The BGP port dockline listens on.
pub const BGP_PORT: u16 = 179;

/// The longest key Linux accepts (`TCP_MD5SIG_MAXKEYLEN`).
pub const MAX_KEY_LENGTH: usize = 80;

/// `struct tcp_md5sig` of `<linux/tcp.h>`.
#[repr(C)]
struct Md5Signature {
    address: libc::sockaddr_storage,
    flags: u8,
    prefix_length: u8,
    key_length: u16,
    interface_index: libc::c_int,
    key: [u8; MAX_KEY_LENGTH],
}

/// Signs (or, with `None`, stops signing) the segments exchanged with `peer` on `socket`.
/// On a listener, the key applies to connections accepted from `peer`; Linux drops
/// unsigned or badly signed segments before they reach the socket.
pub fn set_md5_key(socket: &impl AsFd, peer: IpAddr, key: Option<&[u8]>) -> io::Result<()> {
    let key = key.unwrap_or_default();
    if key.len() > MAX_KEY_LENGTH {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a TCP-MD5 key is at most {MAX_KEY_LENGTH} bytes"),
        ));
    }
    let address = SockAddr::from(SocketAddr::new(peer, 0));
    // SAFETY: sockaddr_storage is plain old data, for which all zeroes is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    // SAFETY: `address` holds `address.len()` initialised bytes of a sockaddr, never more
    // than a sockaddr_storage, which `storage` is; the two do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            address.as_ptr().cast::<u8>(),
            (&raw mut storage).cast::<u8>(),
            address.len() as usize,
        );
    }
    let mut signature = Md5Signature {
        address: storage,
        flags: 0,
        prefix_length: 0,
        key_length: key.len() as u16,
        interface_index: 0,
        key: [0; MAX_KEY_LENGTH],
    };
    signature.key[..key.len()].copy_from_slice(key);
    set_option(socket, libc::IPPROTO_TCP, libc::TCP_MD5SIG, &signature)
}

/// Sets the TTL (IPv4) or hop limit (IPv6) of the segments sent on `socket`.
pub fn set_ttl(socket: &impl AsFd, peer: IpAddr, ttl: u32) -> io::Result<()> {
    let socket = SockRef::from(socket);
    match peer {
        IpAddr::V4(_) => socket.set_ttl_v4(ttl),
        IpAddr::V6(_) => socket.set_unicast_hops_v6(ttl),
    }
}

/// Listens on `[::]:179` (IPv6 only) or `0.0.0.0:179` for routers that connect.
pub fn listen(ipv6: bool) -> io::Result<TcpListener> {
    let (domain, address) = if ipv6 {
        (Domain::IPV6, IpAddr::V6(Ipv6Addr::UNSPECIFIED))
    } else {
        (Domain::IPV4, IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    if ipv6 {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::new(address, BGP_PORT).into())?;
    socket.listen(64)?;
    TcpListener::from_std(socket.into())
}

/// Receives single-hop BFD control packets on port 3784 (RFC 5881 section 4), IPv6 only
/// or IPv4.
pub fn bfd_listen(ipv6: bool) -> io::Result<UdpSocket> {
    let (domain, address) = if ipv6 {
        (Domain::IPV6, IpAddr::V6(Ipv6Addr::UNSPECIFIED))
    } else {
        (Domain::IPV4, IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if ipv6 {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    // Every datagram comes with its TTL or hop limit, which BFD checks (RFC 5881 section 5).
    let (level, option) = if ipv6 {
        (libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT)
    } else {
        (libc::IPPROTO_IP, libc::IP_RECVTTL)
    };
    set_option(&socket, level, option, &1 as &libc::c_int)?;
    socket.bind(&SocketAddr::new(address, crate::bfd::CONTROL_PORT).into())?;
    UdpSocket::from_std(socket.into())
}

/// Sets a socket option neither tokio nor socket2 offers. `value` is the C value the
/// option takes (an int, or a struct with the kernel's layout such as `tcp_md5sig`).
fn set_option<T>(
    socket: &impl AsFd,
    level: libc::c_int,
    option: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: the pointer and length describe `value`, live and fully initialised for the
    // call; the kernel only reads it, and the descriptor is borrowed for that time.
    let result = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            level,
            option,
            std::ptr::from_ref(value).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Receives one datagram on a socket from [`bfd_listen`]: its length, its sender, and the
/// TTL or hop limit it arrived with (`None` if the kernel gave none).
pub async fn recv_with_ttl(
    socket: &UdpSocket,
    buffer: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<u8>)> {
    loop {
        socket.readable().await?;
        match socket.try_io(tokio::io::Interest::READABLE, || {
            recvmsg_with_ttl(socket, buffer)
        }) {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            result => return result,
        }
    }
}

fn recvmsg_with_ttl(
    socket: &UdpSocket,
    buffer: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<u8>)> {
    let mut source = SockAddrStorage::zeroed();
    // Room for one control message carrying an int, u64-aligned as cmsghdr wants.
    let mut control = [0u64; 8];
    let mut vector = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    // SAFETY: all zeroes is a valid msghdr.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_name = (&raw mut source).cast();
    header.msg_namelen = source.size_of();
    header.msg_iov = &raw mut vector;
    header.msg_iovlen = 1;
    header.msg_control = control.as_mut_ptr().cast();
    header.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: every pointer in `header` points to a live buffer of the length given with
    // it, all owned by this frame and outliving the call.
    let length = unsafe { libc::recvmsg(socket.as_raw_fd(), &raw mut header, 0) };
    if length < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut ttl = None;
    // SAFETY: the kernel filled `header`'s control buffer; the CMSG macros walk it within
    // `msg_controllen`, and each data pointer is read as the int its type says it holds.
    unsafe {
        let mut message = libc::CMSG_FIRSTHDR(&raw const header);
        while !message.is_null() {
            let kind = ((*message).cmsg_level, (*message).cmsg_type);
            if kind == (libc::IPPROTO_IP, libc::IP_TTL)
                || kind == (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT)
            {
                let value =
                    std::ptr::read_unaligned(libc::CMSG_DATA(message).cast::<libc::c_int>());
                ttl = u8::try_from(value).ok();
            }
            message = libc::CMSG_NXTHDR(&raw const header, message);
        }
    }
    // SAFETY: the kernel wrote a sockaddr of `msg_namelen` bytes into `source`.
    let sender = unsafe { SockAddr::new(source, header.msg_namelen) }
        .as_socket()
        .ok_or_else(|| io::Error::other("a datagram without an IP sender"))?;
    Ok((length as usize, sender, ttl))
}

/// The socket BFD control packets go to `peer` from: a source port in 49152-65535 and
/// TTL 255, so the router can tell they come from its link (RFC 5881 sections 4 and 5).
pub fn bfd_sender(peer: IpAddr, first_port: u16) -> io::Result<UdpSocket> {
    let local = match peer {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no free BFD source port");
    for offset in 0..16_384u16 {
        let port = 49_152 + (first_port.wrapping_add(offset) % 16_384);
        match std::net::UdpSocket::bind(SocketAddr::new(local, port)) {
            Ok(socket) => {
                set_ttl(&socket, peer, 255)?;
                socket.set_nonblocking(true)?;
                socket.connect(SocketAddr::new(peer, crate::bfd::CONTROL_PORT))?;
                return UdpSocket::from_std(socket);
            }
            Err(error) => last = error,
        }
    }
    Err(last)
}

/// Connects to `peer`, signed with `key` and sent with `ttl` when given, within `timeout`.
pub async fn connect(
    peer: SocketAddr,
    key: Option<&[u8]>,
    ttl: Option<u32>,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let socket = match peer {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if key.is_some() {
        set_md5_key(&socket, peer.ip(), key)?;
    }
    if let Some(ttl) = ttl {
        set_ttl(&socket, peer.ip(), ttl)?;
    }
    let stream = tokio::time::timeout(timeout, socket.connect(peer))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn datagrams_come_with_the_ttl_they_were_sent_with() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        set_option(
            &socket,
            libc::IPPROTO_IP,
            libc::IP_RECVTTL,
            &1 as &libc::c_int,
        )
        .unwrap();
        socket.set_nonblocking(true).unwrap();
        let receiver = UdpSocket::from_std(socket).unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buffer = [0u8; 64];
        for ttl in [255, 64] {
            sender.set_ttl(ttl).unwrap();
            sender
                .send_to(b"bfd", receiver.local_addr().unwrap())
                .unwrap();
            let (length, from, seen) = recv_with_ttl(&receiver, &mut buffer).await.unwrap();
            assert_eq!((length, from), (3, sender.local_addr().unwrap()));
            assert_eq!(seen, Some(ttl as u8));
        }
    }

    #[test]
    fn the_signature_has_the_kernels_layout() {
        // sockaddr_storage (128) + flags, prefix length, key length, ifindex (8) + key (80).
        assert_eq!(std::mem::size_of::<Md5Signature>(), 216);
    }

    #[tokio::test]
    async fn keys_can_be_set_and_removed_on_a_socket() {
        let socket = TcpSocket::new_v4().unwrap();
        let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
        set_md5_key(&socket, peer, Some(b"secret")).unwrap();
        set_md5_key(&socket, peer, None).unwrap();
        assert!(set_md5_key(&socket, peer, Some(&[0; 81])).is_err());
    }
}
