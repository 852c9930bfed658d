//! Frames and datagrams handled many per wakeup: one recvmmsg(2) takes every datagram
//! queued on the VXLAN socket (up to [`BATCH`]), and the frames read from the device in one
//! wakeup leave with one sendmmsg(2). A naive VTEP makes a system call per frame each way;
//! batching takes most of the per-packet system calls off the send and receive of the
//! underlay side.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};

/// Frames or datagrams per batch.
pub(crate) const BATCH: usize = 64;
/// Room for the largest datagram or frame (a device MTU up to 65535 and its headers).
const BUFFER_LEN: usize = 65_536;

/// Buffers for one batch, with their lengths and the addresses they came from or go to.
pub(crate) struct Batch {
    pub(crate) buffers: Vec<Vec<u8>>,
    /// Bytes used in each buffer, for the first `filled` buffers.
    pub(crate) lengths: [usize; BATCH],
    pub(crate) filled: usize,
    /// Received: the source of each datagram (None when it was not IPv4/IPv6).
    pub(crate) sources: [Option<IpAddr>; BATCH],
    /// To send: (buffer index, destination), a buffer once per VTEP it goes to.
    pub(crate) sends: Vec<(usize, IpAddr)>,
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
            sends: Vec::with_capacity(BATCH),
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
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
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
            filled += 1;
        }
        self.filled = filled;
        Ok(())
    }

    /// Sends the queued `(buffer, destination)` pairs, as many per system call as the
    /// kernel takes, and returns the datagrams and bytes sent. When the socket is full it
    /// returns what went so far, the rest still queued, or `WouldBlock` if nothing went (so
    /// the caller's readiness is cleared before it waits). A datagram the kernel refuses is
    /// skipped.
    pub(crate) fn send(&mut self, socket: &impl AsRawFd) -> io::Result<(usize, usize)> {
        let (mut sent, mut bytes) = (0, 0);
        while !self.sends.is_empty() {
            let slices: Vec<[IoSlice<'_>; 1]> = self
                .sends
                .iter()
                .map(|(at, _)| [IoSlice::new(&self.buffers[*at][..self.lengths[*at]])])
                .collect();
            // The port of a raw socket's destination is not used: the UDP header is ours.
            let destinations: Vec<Option<SockaddrStorage>> = self
                .sends
                .iter()
                .map(|(_, to)| Some(SockaddrStorage::from(SocketAddr::new(*to, 0))))
                .collect();
            let mut headers = MultiHeaders::preallocate(slices.len(), None);
            let result = sendmmsg(
                socket.as_raw_fd(),
                &mut headers,
                slices.iter(),
                &destinations,
                [],
                MsgFlags::MSG_DONTWAIT,
            )
            .map(|results| results.count());
            let done = match result {
                Ok(count) => {
                    sent += count;
                    bytes += self.sends[..count]
                        .iter()
                        .map(|(at, _)| self.lengths[*at])
                        .sum::<usize>();
                    count.max(1)
                }
                Err(Errno::EAGAIN) if sent == 0 => return Err(io::ErrorKind::WouldBlock.into()),
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => 0,
                Err(error) => {
                    tracing::debug!(to = %self.sends[0].1, %error, "VXLAN send failed");
                    1
                }
            };
            self.sends.drain(..done.min(self.sends.len()));
        }
        Ok((sent, bytes))
    }
}

fn source_ip(address: &SockaddrStorage) -> Option<IpAddr> {
    let v4 = address.as_sockaddr_in().map(|a| IpAddr::V4(a.ip()));
    v4.or_else(|| address.as_sockaddr_in6().map(|a| IpAddr::V6(a.ip())))
}
