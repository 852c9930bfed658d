//! Frames and datagrams handled many per wakeup. One recvmmsg(2) takes every datagram
//! queued on the VXLAN socket (up to [`RECEIVE_BATCH`]), each possibly several VXLAN packets that
//! UDP GRO joined (the kernel says their size in a control message). On send, plain
//! datagrams leave many per sendmmsg(2), and the segments of one TCP super-frame leave in
//! one sendmsg(2) with UDP GSO, gathered from their headers and the super-frame's payload:
//! the kernel cuts them apart below the socket.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg,
    sendmmsg, sendmsg,
};

/// Datagrams per receiving batch: each may be a GRO run of up to 64 KiB, and the batch is
/// read again (checked, then gathered to the device) after it is received, so it is kept
/// small enough to stay in the CPU's cache (8 x 64 KiB) rather than read back from memory.
pub(crate) const RECEIVE_BATCH: usize = 8;
/// Frames per sending batch: small frames (ACKs) gathered for one sendmmsg(2). A TCP
/// super-frame ends the batch and leaves at once, while it is in the cache.
pub(crate) const SEND_BATCH: usize = 16;
/// Room for the largest datagram or frame: a GRO datagram, or a TSO frame (an IP packet
/// of up to 64 KiB behind an Ethernet and a virtio-net header).
pub(crate) const BUFFER_LEN: usize = 65_536 + 512;

/// Buffers for one batch, with their lengths and the addresses they came from.
pub(crate) struct Batch {
    pub(crate) buffers: Vec<Vec<u8>>,
    /// Bytes used in each buffer, for the first `filled` buffers.
    pub(crate) lengths: Vec<usize>,
    pub(crate) filled: usize,
    /// Received: the source of each datagram (None when it was not IPv4/IPv6).
    pub(crate) sources: Vec<Option<IpAddr>>,
    /// Received: the size of the packets UDP GRO joined into each datagram, if it did.
    pub(crate) segment_sizes: Vec<Option<usize>>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("filled", &self.filled)
            .finish_non_exhaustive()
    }
}

impl Batch {
    /// A batch of `capacity` buffers.
    pub(crate) fn new(capacity: usize) -> Self {
        Batch {
            buffers: vec![vec![0; BUFFER_LEN]; capacity],
            lengths: vec![0; capacity],
            filled: 0,
            sources: vec![None; capacity],
            segment_sizes: vec![None; capacity],
        }
    }

    /// Buffers in the batch.
    pub(crate) fn capacity(&self) -> usize {
        self.buffers.len()
    }

    /// Takes the datagrams queued on `socket` without waiting; `WouldBlock` when none is.
    pub(crate) fn receive(&mut self, socket: &impl AsRawFd) -> io::Result<()> {
        let capacity = self.capacity();
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .buffers
            .iter_mut()
            .map(|buffer| [IoSliceMut::new(buffer)])
            .collect();
        // Made per call (a few KiB): the message headers hold raw pointers into buffers
        // that are borrowed anew for each call.
        let space = nix::cmsg_space!(i32);
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(capacity, Some(space));
        let received = recvmmsg(
            socket.as_raw_fd(),
            &mut headers,
            slices.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )
        .map_err(io::Error::from)?;
        let mut filled = 0;
        for message in received {
            self.lengths[filled] = message.bytes;
            self.sources[filled] = message.address.as_ref().and_then(source_ip);
            self.segment_sizes[filled] = message.cmsgs().ok().and_then(|mut cmsgs| {
                cmsgs.find_map(|cmsg| match cmsg {
                    ControlMessageOwned::UdpGroSegments(size) => usize::try_from(size).ok(),
                    _ => None,
                })
            });
            filled += 1;
        }
        self.filled = filled;
        Ok(())
    }
}

/// A datagram to send: its bytes, in two pieces the kernel joins (the second may be
/// empty), and where it goes.
pub(crate) type Datagram<'a> = ([&'a [u8]; 2], SocketAddr);

/// Sends `datagrams` to their destinations, as many per system call as the kernel takes,
/// and returns how many went; `WouldBlock` if the socket is full before the first.
pub(crate) fn send_many(socket: &impl AsRawFd, datagrams: &[Datagram<'_>]) -> io::Result<usize> {
    let slices: Vec<[IoSlice<'_>; 2]> = datagrams
        .iter()
        .map(|(pieces, _)| pieces.map(IoSlice::new))
        .collect();
    let destinations: Vec<Option<SockaddrStorage>> = datagrams
        .iter()
        .map(|(_, to)| Some(SockaddrStorage::from(*to)))
        .collect();
    let mut headers = MultiHeaders::preallocate(slices.len(), None);
    sendmmsg(
        socket.as_raw_fd(),
        &mut headers,
        slices.iter(),
        &destinations,
        [],
        MsgFlags::MSG_DONTWAIT,
    )
    .map(|results| results.count())
    .map_err(io::Error::from)
}

/// Sends the bytes of `pieces`, joined, to `to` in one system call: one datagram, or with
/// `segment_size` one datagram per that many bytes (UDP GSO; the last may be shorter).
pub(crate) fn send_one(
    socket: &impl AsRawFd,
    pieces: &[IoSlice<'_>],
    segment_size: Option<u16>,
    to: SocketAddr,
) -> io::Result<()> {
    let size;
    let control = match segment_size {
        Some(segment_size) => {
            size = segment_size;
            vec![ControlMessage::UdpGsoSegments(&size)]
        }
        None => Vec::new(),
    };
    sendmsg(
        socket.as_raw_fd(),
        pieces,
        &control,
        MsgFlags::MSG_DONTWAIT,
        Some(&SockaddrStorage::from(to)),
    )
    .map(|_| ())
    .map_err(io::Error::from)
}

fn source_ip(address: &SockaddrStorage) -> Option<IpAddr> {
    let v4 = address.as_sockaddr_in().map(|a| IpAddr::V4(a.ip()));
    v4.or_else(|| address.as_sockaddr_in6().map(|a| IpAddr::V6(a.ip())))
}
