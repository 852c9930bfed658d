//! Every TCP listener of the proxy in one epoll set of its own, served by one task. With
//! 10,000 services, a task and a runtime registration per listener cost about a kilobyte
//! each (heaptrack); here a listener costs its socket, an entry in a table and the
//! kernel's epoll item. The runtime polls only the set's descriptor, which turns readable
//! while any listener has a connection waiting.
//!
//! Listeners are level-triggered in the set: one that still has connections queued after
//! its turn shows up again at the next look, so a flood on one port cannot starve another.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{PoisonError, RwLock};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use socket2::Socket;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::frontends::ListenAddr;

/// Connections taken from one listener before the next ready one gets its turn.
const TURN: usize = 16;

/// Listeners looked at per epoll_wait(2).
const READY_MAX: usize = 64;

/// What one accept gave: a connection (non-blocking, not yet registered with the runtime,
/// so one refused at once costs no registration) and its client, or the error.
pub(crate) type Accepted = io::Result<(TcpStream, SocketAddr)>;

/// The set of listening TCP sockets.
pub(crate) struct Acceptor {
    set: AsyncFd<Set>,
    /// By descriptor, which is each listener's key in its epoll events.
    open: RwLock<HashMap<RawFd, Listening>>,
}

struct Set(Epoll);

impl AsRawFd for Set {
    fn as_raw_fd(&self) -> RawFd {
        self.0.0.as_raw_fd()
    }
}

struct Listening {
    socket: Socket,
    at: ListenAddr,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor")
            .field("listeners", &self.read().len())
            .finish()
    }
}

impl Acceptor {
    /// An empty set; must be called inside the runtime, which polls it.
    pub(crate) fn new() -> io::Result<Acceptor> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        // SAFETY: `Set` owns the epoll descriptor, never hands it out nor replaces it, and
        // closes it only when dropped, which is when the `AsyncFd` is.
        #[allow(unsafe_code)]
        let set = unsafe { AsyncFd::register_with_interest(Set(epoll), Interest::READABLE) }?;
        Ok(Acceptor {
            set,
            open: RwLock::default(),
        })
    }

    /// Adds a listening, non-blocking `socket`; returns its key for [`Acceptor::close`].
    pub(crate) fn add(&self, socket: Socket, at: ListenAddr) -> io::Result<RawFd> {
        let fd = socket.as_raw_fd();
        let mut open = self.write();
        let event = EpollEvent::new(EpollFlags::EPOLLIN, fd as u64);
        self.set.get_ref().0.add(&socket, event)?;
        open.insert(fd, Listening { socket, at });
        Ok(fd)
    }

    /// Closes the listener added as `fd`; no connection is taken from it after this returns.
    pub(crate) fn close(&self, fd: RawFd) {
        let closed = self.write().remove(&fd);
        if let Some(listening) = closed {
            // Closing the socket would take it out of the set too; said outright, so the set
            // never holds a descriptor number that something else may get next.
            let _ = self.set.get_ref().0.delete(&listening.socket);
        }
    }

    /// Closes every listener.
    pub(crate) fn close_all(&self) {
        let closed = std::mem::take(&mut *self.write());
        for listening in closed.values() {
            let _ = self.set.get_ref().0.delete(&listening.socket);
        }
    }

    /// Takes connections from every listener as they come, handing each to `accepted` with
    /// the listener's address, until the task is aborted. After an accept error (out of
    /// descriptors or memory, where the connection stays queued and accept fails again at
    /// once) it backs off, doubling from 10 ms up to a second.
    pub(crate) async fn serve(&self, mut accepted: impl FnMut(ListenAddr, Accepted)) {
        let mut ready = [EpollEvent::empty(); READY_MAX];
        let mut backoff = std::time::Duration::ZERO;
        loop {
            let Ok(mut guard) = self.set.readable().await else {
                // The runtime is shutting down.
                return;
            };
            // Readiness is cleared only once the set says nothing is ready, so a connection
            // that arrives meanwhile still wakes this task.
            let count = match guard.try_io(|set| {
                match set.get_ref().0.wait(&mut ready, EpollTimeout::ZERO) {
                    Ok(0) => Err(io::ErrorKind::WouldBlock.into()),
                    Ok(count) => Ok(count),
                    Err(nix::errno::Errno::EINTR) => Ok(0),
                    Err(errno) => Err(errno.into()),
                }
            }) {
                Ok(Ok(count)) => count,
                Ok(Err(error)) => {
                    tracing::error!(%error, "cannot read the proxy's listener set");
                    return;
                }
                Err(_cleared) => continue,
            };
            let mut failed = false;
            for event in &ready[..count] {
                failed |= self.take(event.data() as RawFd, &mut accepted);
            }
            if failed {
                backoff = (backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
                // Boxed: a timer held inline would make the task larger for a path only taken
                // when the node runs out of descriptors or memory.
                Box::pin(tokio::time::sleep(backoff)).await;
            } else {
                backoff = std::time::Duration::ZERO;
            }
        }
    }

    /// One listener's turn: accepts until its queue is empty or the turn is over. True if
    /// an accept failed.
    fn take(&self, fd: RawFd, accepted: &mut impl FnMut(ListenAddr, Accepted)) -> bool {
        let open = self.read();
        // Gone when it was closed after the set reported it.
        let Some(listening) = open.get(&fd) else {
            return false;
        };
        for _ in 0..TURN {
            // Non-blocking from the start: accepted sockets do not inherit O_NONBLOCK, and
            // setting it afterwards would be a system call more per connection.
            match listening
                .socket
                .accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
            {
                Ok((socket, peer)) => {
                    // An IPv4 or IPv6 listener's clients have IP addresses.
                    let peer = peer.as_socket().expect("a TCP client's address");
                    accepted(listening.at, Ok((socket.into(), peer)));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return false,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                // The client gave up before its turn: nothing to do, nothing wrong here.
                Err(error) if error.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(error) => {
                    accepted(listening.at, Err(error));
                    return true;
                }
            }
        }
        false
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<RawFd, Listening>> {
        self.open.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<RawFd, Listening>> {
        self.open.write().unwrap_or_else(PoisonError::into_inner)
    }
}

const BACKOFF_MIN: std::time::Duration = std::time::Duration::from_millis(10);
const BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use dockline_config::Protocol;
    use tokio::sync::mpsc;

    use super::*;

    fn listener() -> (Socket, ListenAddr) {
        let socket = crate::listeners::tcp("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        let at = ListenAddr {
            protocol: Protocol::Tcp,
            addr,
        };
        (socket, at)
    }

    /// The set served on a task of its own; what it accepts comes out of the channel.
    fn served(acceptor: &Arc<Acceptor>) -> mpsc::UnboundedReceiver<(ListenAddr, SocketAddr)> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            acceptor
                .serve(|at, accepted| {
                    let (stream, peer) = accepted.unwrap();
                    assert!(stream.nodelay().unwrap(), "TCP_NODELAY from the listener");
                    let _ = sender.send((at, peer));
                })
                .await;
        });
        receiver
    }

    #[tokio::test]
    async fn one_task_takes_connections_from_every_listener_with_their_address() {
        let acceptor = Arc::new(Acceptor::new().unwrap());
        let (first, first_at) = listener();
        let (second, second_at) = listener();
        acceptor.add(first, first_at).unwrap();
        acceptor.add(second, second_at).unwrap();
        let mut accepted = served(&acceptor);
        // More connections than one turn takes, so the listener comes back for another.
        let mut clients = Vec::new();
        for _ in 0..TURN + 2 {
            clients.push(tokio::net::TcpStream::connect(first_at.addr).await.unwrap());
        }
        clients.push(
            tokio::net::TcpStream::connect(second_at.addr)
                .await
                .unwrap(),
        );
        let mut counts = HashMap::new();
        for _ in 0..clients.len() {
            let (at, peer) = accepted.recv().await.unwrap();
            assert!(clients.iter().any(|c| c.local_addr().unwrap() == peer));
            *counts.entry(at).or_insert(0) += 1;
        }
        assert_eq!(counts[&first_at], TURN + 2);
        assert_eq!(counts[&second_at], 1);
    }

    #[tokio::test]
    async fn a_closed_listener_refuses_at_once_and_the_others_go_on() {
        let acceptor = Arc::new(Acceptor::new().unwrap());
        let (first, first_at) = listener();
        let (second, second_at) = listener();
        let first_fd = acceptor.add(first, first_at).unwrap();
        acceptor.add(second, second_at).unwrap();
        let mut accepted = served(&acceptor);
        acceptor.close(first_fd);
        let refused = std::net::TcpStream::connect(first_at.addr).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
        let _client = tokio::net::TcpStream::connect(second_at.addr)
            .await
            .unwrap();
        let (at, _) = tokio::time::timeout(Duration::from_secs(5), accepted.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(at, second_at);
        acceptor.close_all();
        let refused = std::net::TcpStream::connect(second_at.addr).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    }
}
