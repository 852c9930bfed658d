//! Relays a query for a name outside our zones to the configured upstreams, in order, and
//! returns the first upstream's answer as it came: dockline adds nothing and caches nothing,
//! so the client sees the upstream's flags (RA included) and records.
//!
//! The query goes over the client's transport: UDP answers keep the client's EDNS size and
//! may come back truncated, and the client retries over TCP as it would with the upstream.
//! Each relayed query has a socket of its own, so answers cannot be confused.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::answer::Transport;

/// How long one upstream gets to answer before the next is tried.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// The first upstream answer to `query`, or `None` if none answered.
pub async fn relay(
    query: &[u8],
    upstreams: &[SocketAddr],
    transport: Transport,
) -> Option<Vec<u8>> {
    for upstream in upstreams {
        let attempt = async {
            match transport {
                Transport::Udp => over_udp(query, *upstream).await,
                Transport::Tcp => over_tcp(query, *upstream).await,
            }
        };
        match tokio::time::timeout(UPSTREAM_TIMEOUT, attempt).await {
            Ok(Ok(answer)) => return Some(answer),
            Ok(Err(error)) => {
                tracing::debug!(upstream = %upstream, error = %error, "upstream failed");
            }
            Err(_) => tracing::debug!(upstream = %upstream, "upstream timed out"),
        }
    }
    None
}

async fn over_udp(query: &[u8], upstream: SocketAddr) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        SocketAddr::V6(_) => ([0u16; 8], 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buf = vec![0; usize::from(u16::MAX)];
    loop {
        let len = socket.recv(&mut buf).await?;
        // Only the answer to this query: same ID, QR set.
        if len >= 12 && buf[..2] == query[..2] && buf[2] & 0x80 != 0 {
            buf.truncate(len);
            return Ok(buf);
        }
    }
}

async fn over_tcp(query: &[u8], upstream: SocketAddr) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(upstream).await?;
    let len = u16::try_from(query.len()).map_err(std::io::Error::other)?;
    let mut frame = Vec::with_capacity(query.len() + 2);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(query);
    stream.write_all(&frame).await?;
    let len = stream.read_u16().await?;
    let mut answer = vec![0; usize::from(len)];
    stream.read_exact(&mut answer).await?;
    Ok(answer)
}
