//! One check against one endpoint: a TCP connect, or an HTTP GET whose status passes.
//! Everything is bounded by the check's timeout.

use std::net::SocketAddr;
use std::time::Duration;

use dockline_config::HealthCheckKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::http;
use crate::schedule::Probe;

/// Whether `probe` passes: connected (TCP), or answered with a passing status (HTTP),
/// within the check's timeout.
pub(crate) async fn run(probe: &Probe) -> bool {
    let timeout = Duration::from_millis(probe.check.timeout_ms);
    tokio::time::timeout(timeout, attempt(probe))
        .await
        .unwrap_or(false)
}

async fn attempt(probe: &Probe) -> bool {
    let addr = SocketAddr::new(probe.ip, probe.port);
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return false;
    };
    match probe.check.kind {
        HealthCheckKind::Tcp => true,
        HealthCheckKind::Http => {
            let request = format!(
                "GET {} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: dockline-health\r\nConnection: close\r\n\r\n",
                probe.check.http_path()
            );
            if stream.write_all(request.as_bytes()).await.is_err() {
                return false;
            }
            let mut response = Vec::with_capacity(64);
            let mut buf = [0u8; 64];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => response.extend_from_slice(&buf[..n]),
                }
                match http::status_code(&response) {
                    Ok(Some(code)) => return http::passes(code),
                    Ok(None) => {}
                    Err(_) => return false,
                }
            }
        }
    }
}
