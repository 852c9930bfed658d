//! TCP (RFC 1035 section 4.2.2, RFC 7766): length-prefixed queries, answered in order on
//! each connection, one task per connection so a slow client stalls only itself. Frames
//! shorter than a header or longer than any query, and clients idle or slow past the
//! timeouts, get the connection closed; past `MAX_CONNECTIONS` new ones are closed at once.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout;

use super::responder::{Responder, relayed};
use crate::metrics::Bad;
use crate::verdict::{Action, Transport};
use crate::wire::HEADER_LEN;

const MAX_CONNECTIONS: usize = 1024;
const BACKLOG: i32 = 1024;
/// A query is a header, one question and an OPT record: never near this.
const MAX_QUERY: usize = 4096;
/// Between queries on a connection (RFC 7766 section 6.2.3 suggests seconds).
const IDLE: Duration = Duration::from_secs(10);
/// To finish sending a query, or to take an answer.
const TRANSFER: Duration = Duration::from_secs(5);

pub(super) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

pub(super) async fn serve(listener: TcpListener, responder: Arc<Responder>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of descriptors, say: back off instead of spinning.
                tracing::warn!(error = %error, "dns: tcp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                tokio::spawn(connection(stream, responder.clone(), slot));
            }
            Err(_) => responder.metrics.bad(Bad::TcpBusy),
        }
    }
}

async fn connection(mut stream: TcpStream, responder: Arc<Responder>, _slot: OwnedSemaphorePermit) {
    let _ = stream.set_nodelay(true);
    let mut query = Vec::new();
    let mut out = Vec::with_capacity(4096);
    let mut frame = Vec::with_capacity(4096);
    loop {
        let len = match timeout(IDLE, stream.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            Ok(Err(_)) => return,
            Err(_) => return responder.metrics.bad(Bad::TcpTimeout),
        };
        if !(HEADER_LEN..=MAX_QUERY).contains(&len) {
            return responder.metrics.bad(Bad::TcpFrame);
        }
        query.resize(len, 0);
        match timeout(TRANSFER, stream.read_exact(&mut query)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return,
            Err(_) => return responder.metrics.bad(Bad::TcpTimeout),
        }
        let started = Instant::now();
        let (mut verdict, upstreams) = responder.decide(&query, Transport::Tcp, started, &mut out);
        match verdict.action {
            Action::Reply => {}
            Action::Forward => {
                out = responder.relay(&query, &upstreams, Transport::Tcp).await;
                verdict = relayed(&out, verdict);
            }
            Action::Drop => return responder.dropped(&query),
        }
        let Ok(len) = u16::try_from(out.len()) else {
            return;
        };
        frame.clear();
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&out);
        match timeout(TRANSFER, stream.write_all(&frame)).await {
            Ok(Ok(())) => responder.answered(Transport::Tcp, &verdict, started),
            Ok(Err(_)) => return,
            Err(_) => return responder.metrics.bad(Bad::TcpTimeout),
        }
    }
}
