//! UDP: one socket per address, read by one blocking thread per two cores, each looping
//! receive -> answer -> send with its buffers reused. One shared socket rather than one per
//! thread with SO_REUSEPORT: the kernel hands each datagram to whichever thread waits, so
//! the threads stay evenly loaded whatever the clients' source ports hash to (measured no
//! slower here), and no other process can join the port. Plain threads rather than tasks:
//! under load a query is waiting on every receive, and the async path's readiness wake-ups
//! cost more than the answer itself (11 us of CPU per query with tasks, under 6 without).
//! Each thread takes every datagram queued, up to `BATCH`, with one recvmmsg(2) and sends
//! the answers with one sendmmsg(2): under load the system calls, not the answers, are most
//! of the CPU time per query.
//! Large socket buffers: a burst that overflows the receive buffer is lost queries.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::runtime::Handle;

use super::responder::{Responder, relayed};
use crate::verdict::{Action, Transport};

/// Socket buffer size asked for; the kernel caps it at net.core.rmem_max / wmem_max.
const SOCKET_BUFFER: usize = 8 << 20;

/// The largest datagram read; a longer one arrives cut and gets FORMERR. Queries are a
/// header, a question and an OPT record: a few hundred bytes even with EDNS padding.
const MAX_DATAGRAM: usize = 4096;

/// Datagrams taken per receive call, and answers sent per send call.
const BATCH: usize = 32;

/// How often an idle worker looks whether its listener was closed.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// UDP threads for `cores`: one per two cores. A thread answers well over 100,000 queries
/// a second, and one that is busy finds more queries queued at each receive, so fewer
/// threads batch better: on 2 cores, one thread answered 17% more queries than two, with
/// 20% less CPU per query (tests/bench/dns.sh). The other cores serve the node's pods.
pub(super) fn workers(cores: usize) -> usize {
    (cores / 2).max(1)
}

pub(super) fn bind(addr: SocketAddr, workers: usize) -> io::Result<Vec<UdpSocket>> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_recv_buffer_size(SOCKET_BUFFER)?;
    socket.set_send_buffer_size(SOCKET_BUFFER)?;
    socket.set_read_timeout(Some(STOP_CHECK))?;
    socket.bind(&addr.into())?;
    let socket: UdpSocket = socket.into();
    let mut sockets = Vec::with_capacity(workers.max(1));
    for _ in 1..workers.max(1) {
        sockets.push(socket.try_clone()?);
    }
    sockets.push(socket);
    Ok(sockets)
}

/// Serves `socket` on a thread of its own until `stop` is set (the thread sees it within
/// [`STOP_CHECK`]). Forwarded queries become tasks on `runtime`.
pub(super) fn spawn(
    socket: UdpSocket,
    responder: Arc<Responder>,
    stop: Arc<AtomicBool>,
    runtime: Handle,
) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("dockline-dns-udp".into())
        .spawn(move || serve(Arc::new(socket), &responder, &stop, &runtime))
}

fn serve(socket: Arc<UdpSocket>, responder: &Arc<Responder>, stop: &AtomicBool, runtime: &Handle) {
    let mut batch = Batch::new();
    while !stop.load(Ordering::Relaxed) {
        if let Err(error) = batch.receive(&socket) {
            if !matches!(error, Errno::EAGAIN | Errno::EINTR) {
                tracing::debug!(error = %error, "dns: udp receive failed");
            }
            continue;
        }
        let started = Instant::now();
        for i in 0..batch.peers.len() {
            let (len, peer) = batch.peers[i];
            let query = &batch.queries[i][..len];
            let out = &mut batch.answers[i];
            let (verdict, upstreams) = responder.decide(query, Transport::Udp, started, out);
            match verdict.action {
                Action::Reply => {
                    batch.replies.push(i);
                    responder.answered(Transport::Udp, &verdict, started);
                }
                Action::Forward => {
                    let Some(peer) = socket_addr(&peer) else {
                        continue;
                    };
                    let query = query.to_vec();
                    let (socket, responder) = (socket.clone(), responder.clone());
                    runtime.spawn(async move {
                        let reply = responder.relay(&query, &upstreams, Transport::Udp).await;
                        // A datagram send does not block for long: the socket buffer is large.
                        if let Err(error) = socket.send_to(&reply, peer) {
                            tracing::debug!(peer = %peer, error = %error, "dns: udp send failed");
                        }
                        let verdict = relayed(&reply, verdict);
                        responder.answered(Transport::Udp, &verdict, started);
                    });
                }
                Action::Drop => responder.dropped(query),
            }
        }
        batch.send_replies(&socket);
    }
}

/// The buffers of one receive -> answer -> send round, reused from round to round.
struct Batch {
    queries: Vec<Vec<u8>>,
    answers: Vec<Vec<u8>>,
    /// Length and source of each query received in this round.
    peers: Vec<(usize, SockaddrStorage)>,
    /// Indexes of the queries answered in this round, in order.
    replies: Vec<usize>,
    /// Kept apart: a send points the headers' addresses at its own list, which a receive
    /// would then write into. (A socket is of one address family, so the address length
    /// the kernel leaves in the receive headers fits the next datagram too.)
    receive_headers: MultiHeaders<SockaddrStorage>,
    send_headers: MultiHeaders<SockaddrStorage>,
}

impl Batch {
    fn new() -> Self {
        Batch {
            queries: vec![vec![0; MAX_DATAGRAM]; BATCH],
            answers: (0..BATCH).map(|_| Vec::with_capacity(512)).collect(),
            peers: Vec::with_capacity(BATCH),
            replies: Vec::with_capacity(BATCH),
            receive_headers: MultiHeaders::preallocate(BATCH, None),
            send_headers: MultiHeaders::preallocate(BATCH, None),
        }
    }

    /// Waits for a datagram (up to the socket's read timeout), then takes every one queued
    /// behind it, up to `BATCH`.
    fn receive(&mut self, socket: &UdpSocket) -> Result<(), Errno> {
        self.peers.clear();
        self.replies.clear();
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .queries
            .iter_mut()
            .map(|query| [IoSliceMut::new(query)])
            .collect();
        let messages = recvmmsg(
            socket.as_raw_fd(),
            &mut self.receive_headers,
            slices.iter_mut(),
            MsgFlags::MSG_WAITFORONE,
            None,
        )?;
        for message in messages {
            // A datagram without a source cannot be answered: skip it.
            if let Some(peer) = message.address {
                self.peers.push((message.bytes, peer));
            }
        }
        Ok(())
    }

    /// Sends this round's answers, as many per system call as the kernel takes.
    fn send_replies(&mut self, socket: &UdpSocket) {
        let mut next = 0;
        while next < self.replies.len() {
            let pending = &self.replies[next..];
            let slices: Vec<[IoSlice<'_>; 1]> = pending
                .iter()
                .map(|&i| [IoSlice::new(&self.answers[i])])
                .collect();
            let peers: Vec<Option<SockaddrStorage>> =
                pending.iter().map(|&i| Some(self.peers[i].1)).collect();
            match sendmmsg(
                socket.as_raw_fd(),
                &mut self.send_headers,
                slices.iter(),
                &peers,
                [],
                MsgFlags::empty(),
            ) {
                Ok(sent) => next += sent.count().max(1),
                Err(Errno::EINTR) => {}
                Err(error) => {
                    // The first datagram failed (an unreachable peer, say): skip it only.
                    tracing::debug!(peer = ?peers[0], error = %error, "dns: udp send failed");
                    next += 1;
                }
            }
        }
    }
}

fn socket_addr(peer: &SockaddrStorage) -> Option<SocketAddr> {
    let v4 = peer.as_sockaddr_in().map(|a| SocketAddr::from(*a));
    v4.or_else(|| peer.as_sockaddr_in6().map(|a| SocketAddr::from(*a)))
}
