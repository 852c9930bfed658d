//! Frames and datagrams handled many per wakeup. One recvmmsg(2) takes every datagram
//! queued on the VXLAN socket (up to [`BATCH`]), each possibly several VXLAN packets that
//! UDP GRO joined (the kernel says their size in a control message). On send, plain
//! datagrams leave many per sendmmsg(2), and the segments of one TCP super-frame leave in
//! one sendmsg(2) with UDP GSO: the kernel cuts them apart below the socket.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg,
    sendmmsg, sendmsg,
};

/// Frames or datagrams per batch.
pub(crate) const BATCH: usize = 64;
/// Room for the largest datagram or frame: a GRO datagram, or a TSO frame (an IP packet
/// of up to 64 KiB behind an Ethernet and a virtio-net header).
pub(crate) const BUFFER_LEN: usize = 65_536 + 512;

/// Buffers for one batch, with their lengths and the addresses they came from.
pub(crate) struct Batch {
    pub(crate) buffers: Vec<Vec<u8>>,
    /// Bytes used in each buffer, for the first `filled` buffers.
    pub(crate) lengths: [usize; BATCH],
    pub(crate) filled: usize,
    /// Received: the source of each datagram (None when it was not IPv4/IPv6).
    pub(crate) sources: [Option<IpAddr>; BATCH],
    /// Received: the size of the packets UDP GRO joined into each datagram, if it did.
    pub(crate) segment_sizes: [Option<usize>; BATCH],
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("filled", &self.filled)
            .finish_non_exhaustive()
    }
}

impl Batch {
    pub(crate) fn new() -> Self {
        Batch {
            buffers: vec![vec![0; BUFFER_LEN]; BATCH],
            lengths: [0; BATCH],
            filled: 0,
            sources: [None; BATCH],
            segment_sizes: [None; BATCH],
        }
    }

    /// Takes the datagrams queued on `socket` without waiting; `WouldBlock` when none is.
    pub(crate) fn receive(&mut self, socket: &impl AsRawFd) -> io::Result<()> {
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .buffers
            .iter_mut()
            .map(|buffer| [IoSliceMut::new(buffer)])
            .collect();
        // The message headers hold raw pointers, so they are not `Send` and cannot live in
        // the batch across the run loop's awaits: made per call, a few KiB.
        let space = nix::cmsg_space!(i32);
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, Some(space));
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

/// Sends `datagrams` to their destinations, as many per system call as the kernel takes,
/// and returns how many went; `WouldBlock` if the socket is full before the first.
pub(crate) fn send_many(
    socket: &impl AsRawFd,
    datagrams: &[(&[u8], SocketAddr)],
) -> io::Result<usize> {
    let slices: Vec<[IoSlice<'_>; 1]> = datagrams
        .iter()
        .map(|(bytes, _)| [IoSlice::new(bytes)])
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

/// Sends `bytes` to `to` in one system call: one datagram, or with `segment_size` one
/// datagram per that many bytes (UDP GSO; the last may be shorter).
pub(crate) fn send_one(
    socket: &impl AsRawFd,
    bytes: &[u8],
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
        &[IoSlice::new(bytes)],
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
