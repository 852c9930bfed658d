//! UDP: one socket per address, read by one blocking thread per core, each looping
//! receive -> answer -> send with its buffers reused. One shared socket rather than one per
//! thread with SO_REUSEPORT: the kernel hands each datagram to whichever thread waits, so
//! the threads stay evenly loaded whatever the clients' source ports hash to (measured no
//! slower here), and no other process can join the port. Plain threads rather than tasks:
//! under load a query is waiting on every receive, and the async path's readiness wake-ups
//! cost more than the answer itself (11 us of CPU per query with tasks, under 6 without).
//! Large socket buffers: a burst that overflows the receive buffer is lost queries.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::runtime::Handle;

use super::{Shared, decide};
use crate::answer::{Action, Transport};

/// Socket buffer size asked for; the kernel caps it at net.core.rmem_max / wmem_max.
const SOCKET_BUFFER: usize = 8 << 20;

/// The largest datagram read; a longer one arrives cut and gets FORMERR.
const MAX_DATAGRAM: usize = 65_535;

/// How often an idle worker looks whether its listener was closed.
const STOP_CHECK: Duration = Duration::from_millis(200);

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

/// Serves `socket` on a thread of its own until `stop` is set. Forwarded queries become
/// tasks on `runtime`.
pub(super) fn spawn(
    socket: UdpSocket,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    runtime: Handle,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name("dockline-dns-udp".into())
        .spawn(move || serve(Arc::new(socket), &shared, &stop, &runtime))
        .map(drop)
}

fn serve(socket: Arc<UdpSocket>, shared: &Arc<Shared>, stop: &AtomicBool, runtime: &Handle) {
    let mut query = vec![0; MAX_DATAGRAM];
    let mut out = Vec::with_capacity(4096);
    while !stop.load(Ordering::Relaxed) {
        let (len, peer) = match socket.recv_from(&mut query) {
            Ok(received) => received,
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(error) => {
                tracing::debug!(error = %error, "dns: udp receive failed");
                continue;
            }
        };
        let started = Instant::now();
        let query = &query[..len];
        let (verdict, upstreams) = decide(query, shared, Transport::Udp, &mut out);
        match verdict.action {
            Action::Reply => {
                if let Err(error) = socket.send_to(&out, peer) {
                    tracing::debug!(peer = %peer, error = %error, "dns: udp send failed");
                }
                shared.answered(Transport::Udp, &verdict, started);
            }
            Action::Forward => {
                let query = query.to_vec();
                let (socket, shared) = (socket.clone(), shared.clone());
                runtime.spawn(async move {
                    let reply = super::relay(&query, &upstreams, Transport::Udp, &shared).await;
                    // A datagram send does not block for long: the socket buffer is large.
                    if let Err(error) = socket.send_to(&reply, peer) {
                        tracing::debug!(peer = %peer, error = %error, "dns: udp send failed");
                    }
                    let verdict = super::relayed(&reply, verdict);
                    shared.answered(Transport::Udp, &verdict, started);
                });
            }
            Action::Drop => shared.dropped(query),
        }
    }
}
