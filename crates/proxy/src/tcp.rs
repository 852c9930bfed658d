//! TCP: accept, set the connection up as [`Setup`] decides (pick a ready endpoint, connect
//! with a timeout and try another endpoint when one fails, send the PROXY protocol header
//! if the service asks for one), then forward both directions (small messages through a
//! stack buffer, bulk data with splice(2)) until both ends close, the connection idles out
//! or its endpoint is drained. With no endpoint to take it, the client is reset (SO_LINGER
//! 0), never left hanging.

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use metrics::Counter;
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::time::Instant;

use crate::accept::Accepted;
use crate::data_plane::{DataPlane, Route};
use crate::frontends::ListenAddr;
use crate::pool::Lease;
use crate::setup::{Connected, GiveUp, Introduction, Setup};
use crate::splice::{Pipe, PipePool};

/// Takes a connection from the acceptor: starts its task, or resets it at once when its
/// listener's service port has gone. An accept that failed counts, and logs at most once a
/// second (running out of descriptors fails in bursts).
pub(crate) fn accepted(plane: &Arc<DataPlane>, at: ListenAddr, accepted: Accepted) {
    let (client, peer) = match accepted {
        Ok(connection) => connection,
        Err(error) => {
            plane.metrics.listen_errors.increment(1);
            if let Some(held_back) = plane.exhausted.admit(std::time::Instant::now()) {
                tracing::error!(listen = %at, %error, held_back, "cannot accept a connection");
            }
            return;
        }
    };
    let Some(route) = plane.route(&at) else {
        reset(client);
        return;
    };
    let plane = plane.clone();
    tokio::spawn(async move {
        // Registered by the worker that runs the connection, not by the acceptor's.
        match TcpStream::from_std(client) {
            Ok(client) => handle(client, peer, route, plane).await,
            Err(error) => {
                plane.metrics.listen_errors.increment(1);
                if let Some(held_back) = plane.exhausted.admit(std::time::Instant::now()) {
                    tracing::error!(listen = %at, %error, held_back, "cannot register a connection");
                }
            }
        }
    });
}

async fn handle(mut client: TcpStream, peer: SocketAddr, route: Arc<Route>, plane: Arc<DataPlane>) {
    route.metrics.accepted();
    let (mut backend, lease) = match set_up(&client, peer, &route, &plane).await {
        Ok(connected) => connected,
        Err(reason) => {
            tracing::debug!(service = %route.frontend.service, client = %peer, ?reason, "connection reset");
            reset(client);
            return;
        }
    };
    route.metrics.opened();
    let activity = Activity::new();
    let idle = route.settings.limits.idle_timeout;
    let metrics = &plane.metrics;
    tokio::select! {
        _ = forward(&mut client, &mut backend, &activity, (&metrics.to_backend, &metrics.to_client), &plane.pipes) => {}
        () = activity.idle_out(idle) => {
            tracing::debug!(service = %route.frontend.service, client = %peer, "idle connection closed");
        }
        () = lease.drain.cancelled() => {
            tracing::debug!(service = %route.frontend.service, client = %peer, "drained connection closed");
        }
    }
    route.metrics.closed();
}

/// Carries out what [`Setup`] decides: connects to the endpoints it picks until one takes
/// the connection, and sends the PROXY protocol header it makes.
async fn set_up(
    client: &TcpStream,
    peer: SocketAddr,
    route: &Route,
    plane: &DataPlane,
) -> Result<(TcpStream, Lease), GiveUp> {
    let health = plane.health.load();
    let mut setup = Setup::new(route, &health, &plane.metrics, peer);
    let mut attempt = setup.start(Instant::now().into_std())?;
    let (mut backend, attempt) = loop {
        let target = attempt.target;
        let socket = match new_socket(target) {
            Ok(socket) => socket,
            Err(error) => {
                if let Some(held_back) = plane.exhausted.admit(std::time::Instant::now()) {
                    tracing::error!(service = %route.frontend.service, backend = %target, %error, held_back, "cannot open a backend socket");
                }
                return Err(setup.no_socket(attempt));
            }
        };
        match connect(socket, target, attempt.deadline).await {
            Ok(backend) => break (backend, attempt),
            Err(error) => {
                tracing::warn!(service = %route.frontend.service, backend = %target, %error, "cannot connect to the backend");
                attempt = setup.connect_failed(attempt, Instant::now().into_std())?;
            }
        }
    };
    let target = attempt.target;
    match setup.connected(attempt) {
        Connected::Forward(lease) => Ok((backend, lease)),
        Connected::Introduce(introduction) => {
            match introduce(&mut backend, client, &introduction).await {
                Ok(()) => Ok((backend, introduction.sent())),
                Err(error) => {
                    tracing::warn!(service = %route.frontend.service, backend = %target, %error, "cannot send the PROXY protocol header");
                    Err(setup.header_failed(introduction))
                }
            }
        }
    }
}

/// Sends the PROXY protocol header, before any byte of the client's.
async fn introduce(
    backend: &mut TcpStream,
    client: &TcpStream,
    introduction: &Introduction,
) -> io::Result<()> {
    // Where the client connected, asked of the accepted socket only when a header is due.
    let service = client.local_addr()?;
    backend.write_all(&introduction.header(service)).await
}

/// A non-blocking socket to connect to `target` with; small messages go out at once. (The
/// client's side has TCP_NODELAY from its listener.)
fn new_socket(target: SocketAddr) -> io::Result<Socket> {
    let kind = Type::STREAM.nonblocking().cloexec();
    let socket = Socket::new(Domain::for_address(target), kind, Some(Protocol::TCP))?;
    let _ = socket.set_tcp_nodelay(true);
    Ok(socket)
}

/// Connects, failing with `TimedOut` at `deadline`. A connect that failed shows as a socket
/// closed for writing (EPOLLHUP), so the pending error is asked for (getsockopt SO_ERROR)
/// only then, not on every connection as a generic connect does.
async fn connect(
    socket: Socket,
    target: SocketAddr,
    deadline: std::time::Instant,
) -> io::Result<TcpStream> {
    match socket.connect(&target.into()) {
        Ok(()) => {}
        Err(error) if error.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(error) => return Err(error),
    }
    let stream = TcpStream::from_std(socket.into())?;
    let ready = tokio::time::timeout_at(deadline.into(), stream.ready(Interest::WRITABLE))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    if ready.is_write_closed() {
        return Err(stream
            .take_error()?
            .unwrap_or_else(|| io::ErrorKind::ConnectionRefused.into()));
    }
    Ok(stream)
}

/// Closes with a RST instead of a FIN: the client learns at once that nobody is there.
fn reset(stream: impl AsFd) {
    let _ = SockRef::from(&stream).set_linger(Some(Duration::ZERO));
}

/// Both directions until both have ended; an error in one ends both.
async fn forward(
    client: &mut TcpStream,
    backend: &mut TcpStream,
    activity: &Activity,
    (to_backend, to_client): (&Counter, &Counter),
    pipes: &PipePool,
) -> io::Result<()> {
    let (client_read, client_write) = client.split();
    let (backend_read, backend_write) = backend.split();
    let up = one_way(client_read, backend_write, activity, to_backend, pipes);
    let down = one_way(backend_read, client_write, activity, to_client, pipes);
    tokio::try_join!(up, down).map(|_| ())
}

/// Bytes read per call while a direction carries small messages.
const SMALL: usize = 16 * 1024;

/// One direction. Small messages (requests, most responses) are read into a buffer on the
/// stack and written straight on: one read and one write each, and no pipe held by an idle
/// connection. Once a read fills the buffer, the direction carries bulk data and moves to
/// splice(2) for the rest of the connection (HAProxy's splice-auto works alike).
async fn one_way(
    from: ReadHalf<'_>,
    to: WriteHalf<'_>,
    activity: &Activity,
    bytes: &Counter,
    pipes: &PipePool,
) -> io::Result<()> {
    let (from, to) = (from.as_ref(), to.as_ref());
    loop {
        // The peer's FIN (EPOLLRDHUP) seen before a read that empties the socket means the
        // stream ended with that read: no further read just to be told so.
        let closed = from.ready(Interest::READABLE).await?.is_read_closed();
        match copy_small(from, to)? {
            Copied::Nothing => continue,
            Copied::End => return activity.end(to),
            Copied::All(n) => {
                bytes.increment(n as u64);
                if closed {
                    activity.touch();
                    return activity.end(to);
                }
            }
            Copied::Part { read, rest } => {
                bytes.increment(read as u64);
                write_rest(to, &rest).await?;
                if closed && read < SMALL {
                    activity.touch();
                    return activity.end(to);
                }
            }
            Copied::Full => {
                bytes.increment(SMALL as u64);
                break;
            }
        }
        activity.touch();
    }
    activity.touch();
    match pipes.take() {
        Ok(pipe) => spliced(from, to, activity, bytes, pipe, pipes).await,
        Err(_) => buffered(from, to, activity, bytes).await,
    }
}

enum Copied {
    /// Not readable after all.
    Nothing,
    End,
    /// A short read, written whole.
    All(usize),
    /// A read the writer did not take whole: its length, and what is left to write.
    Part {
        read: usize,
        rest: Vec<u8>,
    },
    /// A full buffer, written whole: bulk data.
    Full,
}

/// One read into a stack buffer and a write of what came. A short read means the socket's
/// receive queue is empty: its readiness is cleared then (as tokio's own reads do), which
/// saves the read that would only say EAGAIN. The buffer is left uninitialised: zeroing
/// 16 KiB on every read cost more than the read of a small request.
fn copy_small(from: &TcpStream, to: &TcpStream) -> io::Result<Copied> {
    let mut buf = [MaybeUninit::<u8>::uninit(); SMALL];
    let mut short = 0;
    let read = from.try_io(Interest::READABLE, || {
        let n = SockRef::from(from).recv(&mut buf)?;
        if n > 0 && n < SMALL {
            short = n;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    let n = match read {
        Ok(0) => return Ok(Copied::End),
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && short > 0 => short,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Copied::Nothing),
        Err(e) => return Err(e),
    };
    // SAFETY: recv(2) wrote the first `n` bytes of `buf` (it returned `n`), so they are
    // initialised; u8 has no invalid values.
    #[allow(unsafe_code)]
    let received = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n) };
    let wrote = match to.try_write(received) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(e) => return Err(e),
    };
    Ok(match (wrote == n, n == SMALL) {
        (true, true) => Copied::Full,
        (true, false) => Copied::All(n),
        (false, _) => Copied::Part {
            read: n,
            rest: received[wrote..].to_vec(),
        },
    })
}

async fn write_rest(to: &TcpStream, mut rest: &[u8]) -> io::Result<()> {
    while !rest.is_empty() {
        to.writable().await?;
        match to.try_write(rest) {
            Ok(m) => rest = &rest[m..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Bulk data through a pipe, zero-copy.
async fn spliced(
    from: &TcpStream,
    to: &TcpStream,
    activity: &Activity,
    bytes: &Counter,
    pipe: Pipe,
    pipes: &PipePool,
) -> io::Result<()> {
    loop {
        let n = loop {
            from.readable().await?;
            match from.try_io(Interest::READABLE, || pipe.fill(from.as_raw_fd())) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            // Every byte read was written: the pipe is empty and can serve again.
            pipes.put(pipe);
            return activity.end(to);
        }
        let mut sent = 0;
        while sent < n {
            to.writable().await?;
            match to.try_io(Interest::WRITABLE, || pipe.drain(to.as_raw_fd(), n - sent)) {
                Ok(m) => sent += m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        bytes.increment(n as u64);
        activity.touch();
    }
}

/// Bulk data through a heap buffer, when no pipe can be had (out of descriptors, say).
async fn buffered(
    from: &TcpStream,
    to: &TcpStream,
    activity: &Activity,
    bytes: &Counter,
) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        from.readable().await?;
        let n = match from.try_read(&mut buf) {
            Ok(0) => return activity.end(to),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        write_rest(to, &buf[..n]).await?;
        bytes.increment(n as u64);
        activity.touch();
    }
}

/// What the two directions of a connection share: when bytes last moved, for the idle
/// timeout, and whether one direction has ended.
struct Activity {
    start: Instant,
    /// Milliseconds after `start`.
    last: AtomicU64,
    one_ended: AtomicBool,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last: AtomicU64::new(0),
            one_ended: AtomicBool::new(false),
        }
    }

    /// Bytes moved now.
    fn touch(&self) {
        let elapsed = self.start.elapsed().as_millis() as u64;
        self.last.store(elapsed, Ordering::Relaxed);
    }

    /// The direction writing to `to` has ended: the peer learns it by a FIN. The first
    /// direction to end sends it with shutdown(2); after the second, both sockets close at
    /// once and closing sends it, so a shutdown then would be a system call for nothing.
    fn end(&self, to: &TcpStream) -> io::Result<()> {
        if !self.one_ended.swap(true, Ordering::Relaxed) {
            let _ = SockRef::from(to).shutdown(std::net::Shutdown::Write);
        }
        Ok(())
    }

    /// Returns once nothing moved for `idle`.
    async fn idle_out(&self, idle: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last.load(Ordering::Relaxed));
            let deadline = last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;

    fn soon() -> std::time::Instant {
        std::time::Instant::now() + Duration::from_secs(5)
    }

    /// A connected pair of TCP streams on 127.0.0.1: (the one that connected, the accepted).
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = listener.local_addr().unwrap();
        let connected = connect(new_socket(at).unwrap(), at, soon()).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        (connected, accepted)
    }

    #[tokio::test]
    async fn a_refused_connect_fails_with_the_kernels_error() {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let at = free.local_addr().unwrap();
        drop(free);
        let error = connect(new_socket(at).unwrap(), at, soon())
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
    }

    #[tokio::test]
    async fn both_directions_carry_their_bytes_and_their_end() {
        let (mut client, mut proxied_client) = pair().await;
        let (mut proxied_backend, mut backend) = pair().await;
        let (activity, pipes, counter) = (Activity::new(), PipePool::default(), Counter::noop());
        // Both sockets close when forwarding returns, as a connection's task does then.
        let forwarding = async move {
            forward(
                &mut proxied_client,
                &mut proxied_backend,
                &activity,
                (&counter, &counter),
                &pipes,
            )
            .await
        };
        let peers = async {
            // The request and the client's FIN may arrive together: both must get through.
            client.write_all(b"request").await.unwrap();
            client.shutdown().await.unwrap();
            let mut request = Vec::new();
            backend.read_to_end(&mut request).await.unwrap();
            assert_eq!(request, b"request");
            backend.write_all(b"response").await.unwrap();
            drop(backend);
            let mut response = Vec::new();
            client.read_to_end(&mut response).await.unwrap();
            assert_eq!(response, b"response");
        };
        let (forwarded, ()) = tokio::time::timeout(Duration::from_secs(5), async {
            tokio::join!(forwarding, peers)
        })
        .await
        .unwrap();
        forwarded.unwrap();
    }
}
