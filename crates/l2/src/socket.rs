//! The thin I/O side: one AF_PACKET socket per interface and protocol (ARP, and IPv6 with a
//! classic BPF filter that passes only ICMPv6 neighbour solicitations and advertisements),
//! registered with tokio. Frames are read and written whole, Ethernet header included.

use std::io::{self, Read};

use socket2::{Domain, SockAddr, SockAddrStorage, SockFilter, Socket, Type};
use tokio::io::unix::AsyncFd;

use crate::frame::{ETHERTYPE_ARP, ETHERTYPE_IPV6, Mac};

/// An interface's index and MAC address, read from sysfs.
pub fn interface(name: &str) -> io::Result<(u32, Mac)> {
    let read = |what: &str| std::fs::read_to_string(format!("/sys/class/net/{name}/{what}"));
    let index = read("ifindex")?
        .trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad ifindex"))?;
    let mac = read("address")?
        .parse()
        .map_err(|e: String| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok((index, mac))
}

/// Passes IPv6 frames whose next header is ICMPv6 (58) and whose ICMPv6 type is a neighbour
/// solicitation (135, to answer) or advertisement (136, to hear conflicts), so the daemon
/// never sees the VIP's data traffic.
fn neighbor_discovery_only() -> [SockFilter; 7] {
    [
        SockFilter::new(0x30, 0, 0, 20),  // ldb [20]: IPv6 next header
        SockFilter::new(0x15, 0, 4, 58),  // jeq #58, else drop
        SockFilter::new(0x30, 0, 0, 54),  // ldb [54]: ICMPv6 type
        SockFilter::new(0x15, 1, 0, 135), // jeq #135: pass
        SockFilter::new(0x15, 0, 1, 136), // jeq #136: pass, else drop
        SockFilter::new(0x06, 0, 0, 0xffff),
        SockFilter::new(0x06, 0, 0, 0),
    ]
}

/// The link-layer address that binds a packet socket to `ifindex` for `protocol`.
#[allow(unsafe_code)]
fn link_addr(ifindex: u32, protocol: u16) -> SockAddr {
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: sockaddr_ll is one of the platform's sockaddr types and fits the storage
    // (view_as asserts the size); the storage is zeroed, a valid sockaddr_ll.
    let ll = unsafe { storage.view_as::<libc::sockaddr_ll>() };
    ll.sll_family = libc::AF_PACKET as u16;
    ll.sll_protocol = protocol.to_be();
    ll.sll_ifindex = ifindex as i32;
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: the storage holds an initialised sockaddr_ll of `len` bytes.
    unsafe { SockAddr::new(storage, len) }
}

#[allow(unsafe_code)]
fn register(socket: Socket) -> io::Result<AsyncFd<Socket>> {
    // SAFETY: `Socket` owns its descriptor, which stays open and unchanged until the
    // `AsyncFd` (its only owner from here on) is dropped.
    Ok(unsafe { AsyncFd::register(socket) }?)
}

/// A packet socket bound to one interface and one ethertype.
#[derive(Debug)]
pub struct PacketSocket {
    fd: AsyncFd<Socket>,
}

impl PacketSocket {
    fn open(ifindex: u32, protocol: u16, filter: Option<&[SockFilter]>) -> io::Result<Self> {
        // Protocol 0 receives nothing until bind names the protocol and the interface, so no
        // frame of another interface slips in between.
        let socket = Socket::new(Domain::PACKET, Type::RAW, Some(0.into()))?;
        if let Some(filter) = filter {
            socket.attach_filter(filter)?;
        }
        socket.bind(&link_addr(ifindex, protocol))?;
        socket.set_nonblocking(true)?;
        Ok(PacketSocket {
            fd: register(socket)?,
        })
    }

    /// A socket for ARP frames on interface `ifindex`.
    pub fn arp(ifindex: u32) -> io::Result<Self> {
        Self::open(ifindex, ETHERTYPE_ARP, None)
    }

    /// A socket for IPv6 neighbour solicitations and advertisements on interface
    /// `ifindex`, filtered in the kernel so that no other IPv6 traffic reaches it.
    pub fn neighbor_discovery(ifindex: u32) -> io::Result<Self> {
        Self::open(ifindex, ETHERTYPE_IPV6, Some(&neighbor_discovery_only()))
    }

    /// The next frame.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut ready = self.fd.readable().await?;
            match ready.try_io(|fd| fd.get_ref().read(buf)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends a frame out of the bound interface; a full queue drops it (the next request
    /// or repeat goes out again).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        self.fd.get_ref().send(frame).map(|_| ())
    }
}
