//! TCP: accept, pick a ready endpoint, connect with a timeout (trying another endpoint
//! when one refuses), then forward both directions with splice(2) until both ends close,
//! the connection idles out or its endpoint is drained. With no endpoint to take it, the
//! client is reset (SO_LINGER 0), never left hanging.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::Counter;
use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::frontends::ListenAddr;
use crate::pool::Refusal;
use crate::splice::PipePool;
use crate::{Route, Shared};

/// Endpoints tried for one connection before giving up.
const ATTEMPTS: usize = 3;

pub async fn serve(
    listener: TcpListener,
    at: ListenAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((client, peer)) => {
                let Some(route) = shared.route(&at) else {
                    reset(client);
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move { handle(client, peer, route, shared).await });
            }
            Err(error) => {
                // Out of descriptors or memory: say so and breathe, the listener lives on.
                shared.metrics.listen_errors.increment(1);
                tracing::error!(listen = %at, %error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn handle(client: TcpStream, peer: SocketAddr, route: Arc<Route>, shared: Arc<Shared>) {
    route.metrics.connections.increment(1);
    let health = shared.health.load();
    let mut tried = Vec::new();
    let (backend, lease) = loop {
        let lease = match route.pool.lease(
            peer.ip(),
            route.frontend.external,
            &route.node,
            &health,
            &tried,
        ) {
            Ok(lease) => lease,
            Err(refusal) => {
                match refusal {
                    Refusal::NoEndpoint => shared.metrics.no_endpoint.increment(1),
                    Refusal::OverLimit => shared.metrics.over_limit.increment(1),
                }
                tracing::debug!(service = %route.frontend.service, client = %peer, ?refusal, "connection reset");
                reset(client);
                return;
            }
        };
        let target = SocketAddr::new(lease.endpoint, route.frontend.port.target_port);
        match connect(target, route.limits.connect_timeout).await {
            Ok(backend) => break (backend, lease),
            Err(error) => {
                shared.metrics.connect_errors.increment(1);
                tracing::warn!(service = %route.frontend.service, backend = %target, %error, "cannot connect to the backend");
                tried.push(lease.endpoint);
                drop(lease);
                if tried.len() >= ATTEMPTS {
                    reset(client);
                    return;
                }
            }
        }
    };
    let _ = client.set_nodelay(true);
    let _ = backend.set_nodelay(true);
    route.metrics.active.increment(1.0);
    let last = AtomicU64::new(0);
    let start = Instant::now();
    let idle = route.limits.idle_timeout;
    let metrics = &shared.metrics;
    tokio::select! {
        _ = forward(&client, &backend, &last, start, (&metrics.to_backend, &metrics.to_client), &shared.pipes) => {}
        () = idle_out(&last, start, idle) => {
            tracing::debug!(service = %route.frontend.service, client = %peer, "idle connection closed");
        }
        () = lease.drain.cancelled() => {
            tracing::debug!(service = %route.frontend.service, client = %peer, "drained connection closed");
        }
    }
    route.metrics.active.decrement(1.0);
}

async fn connect(target: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    tokio::time::timeout(timeout, socket.connect(target))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
}

/// Closes with a RST instead of a FIN: the client learns at once that nobody is there.
fn reset(stream: TcpStream) {
    let _ = SockRef::from(&stream).set_linger(Some(Duration::ZERO));
}

/// Both directions until both have ended; an error in one ends both.
async fn forward(
    client: &TcpStream,
    backend: &TcpStream,
    last: &AtomicU64,
    start: Instant,
    (to_backend, to_client): (&Counter, &Counter),
    pipes: &PipePool,
) -> io::Result<()> {
    let up = one_way(client, backend, last, start, to_backend, pipes);
    let down = one_way(backend, client, last, start, to_client, pipes);
    tokio::try_join!(up, down).map(|_| ())
}

/// One direction, with splice through a pipe; a userspace buffer if no pipe can be had.
async fn one_way(
    from: &TcpStream,
    to: &TcpStream,
    last: &AtomicU64,
    start: Instant,
    bytes: &Counter,
    pipes: &PipePool,
) -> io::Result<()> {
    let pipe = pipes.take();
    let mut buf = if pipe.is_err() {
        vec![0u8; 64 * 1024]
    } else {
        Vec::new()
    };
    loop {
        let n = loop {
            from.readable().await?;
            let read = match &pipe {
                Ok(pipe) => from.try_io(Interest::READABLE, || pipe.fill(from.as_raw_fd())),
                Err(_) => from.try_read(&mut buf),
            };
            match read {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            let _ = SockRef::from(to).shutdown(std::net::Shutdown::Write);
            // Every byte read was written: the pipe is empty and can serve again.
            if let Ok(pipe) = pipe {
                pipes.put(pipe);
            }
            return Ok(());
        }
        let mut sent = 0;
        while sent < n {
            to.writable().await?;
            let wrote = match &pipe {
                Ok(pipe) => to.try_io(Interest::WRITABLE, || pipe.drain(to.as_raw_fd(), n - sent)),
                Err(_) => to.try_write(&buf[sent..n]),
            };
            match wrote {
                Ok(m) => sent += m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        bytes.increment(n as u64);
        last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// Returns once nothing moved for `idle`.
async fn idle_out(last: &AtomicU64, start: Instant, idle: Duration) {
    loop {
        let last = start + Duration::from_millis(last.load(Ordering::Relaxed));
        let deadline = last + idle;
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}
