//! UDP: a flow table keyed by client address. The first datagram of a client picks an
//! endpoint and opens a connected upstream socket; replies from it go back to the client
//! from the service address. A flow idle for `udp_idle_timeout_s` is forgotten.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::data_plane::{DataPlane, Route};
use crate::frontends::ListenAddr;
use crate::pool::Lease;

type Flows = Arc<Mutex<HashMap<SocketAddr, Arc<Flow>>>>;

#[derive(Debug)]
struct Flow {
    upstream: UdpSocket,
    /// Milliseconds after `start` of the last datagram either way.
    last: AtomicU64,
    start: Instant,
}

impl Flow {
    fn touch(&self) {
        self.last
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// Relays datagrams received on `socket` until the task is aborted; the reply tasks of its
/// flows stop with it.
pub(crate) async fn serve(socket: UdpSocket, at: ListenAddr, plane: Arc<DataPlane>) {
    let stop = CancellationToken::new();
    let _stop_replies = stop.clone().drop_guard();
    let socket = Arc::new(socket);
    let flows: Flows = Arc::default();
    let mut buf = vec![0u8; 65_536];
    loop {
        let (len, client) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(error) => {
                plane.metrics.listen_errors.increment(1);
                tracing::warn!(listen = %at, %error, "cannot receive a datagram");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let existing = {
            let flows = flows.lock().unwrap_or_else(|p| p.into_inner());
            let flow = flows.get(&client).cloned();
            // Touched under the lock: the reply task expires a flow under it too, so either
            // it sees this datagram or the flow is gone and a new one opens.
            if let Some(flow) = &flow {
                flow.touch();
            }
            flow
        };
        let flow = match existing {
            Some(flow) => flow,
            None => {
                let Some(route) = plane.route(&at) else {
                    continue;
                };
                match open(&route, &plane, client, &socket, &flows, &stop).await {
                    Some(flow) => flow,
                    None => continue,
                }
            }
        };
        // UDP sends wait only for socket buffer room, which a busy backend link frees fast.
        if flow.upstream.send(&buf[..len]).await.is_ok() {
            plane.metrics.to_backend.increment(len as u64);
        }
    }
}

async fn open(
    route: &Arc<Route>,
    plane: &Arc<DataPlane>,
    client: SocketAddr,
    socket: &Arc<UdpSocket>,
    flows: &Flows,
    stop: &CancellationToken,
) -> Option<Arc<Flow>> {
    let health = plane.health.load();
    let lease = match route.pool.lease(
        client.ip(),
        route.frontend.external,
        &route.settings.node,
        &health,
        &[],
    ) {
        Ok(lease) => lease,
        Err(refusal) => {
            plane.metrics.refused(refusal).increment(1);
            return None;
        }
    };
    let target = SocketAddr::new(lease.endpoint, route.frontend.target_port);
    let local: SocketAddr = if target.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let upstream = match UdpSocket::bind(local).await {
        Ok(upstream) => upstream,
        Err(error) => {
            plane.metrics.listen_errors.increment(1);
            if let Some(held_back) = plane.exhausted.admit(std::time::Instant::now()) {
                tracing::error!(backend = %target, %error, held_back, "cannot open an upstream socket");
            }
            return None;
        }
    };
    if let Err(error) = upstream.connect(target).await {
        plane.metrics.connect_errors.increment(1);
        tracing::warn!(backend = %target, %error, "cannot connect to the backend");
        return None;
    }
    let flow = Arc::new(Flow {
        upstream,
        last: AtomicU64::new(0),
        start: Instant::now(),
    });
    flows
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(client, flow.clone());
    route.metrics.accepted();
    route.metrics.opened();
    let relay = Relay {
        client,
        socket: socket.clone(),
        flows: flows.clone(),
        route: route.clone(),
        plane: plane.clone(),
        stop: stop.clone(),
    };
    tokio::spawn(relay.replies(flow.clone(), lease));
    Some(flow)
}

/// What the reply task of one flow needs.
struct Relay {
    client: SocketAddr,
    socket: Arc<UdpSocket>,
    flows: Flows,
    route: Arc<Route>,
    plane: Arc<DataPlane>,
    stop: CancellationToken,
}

impl Relay {
    /// Relays the backend's replies to the client until the flow idles out, its endpoint
    /// is drained or the listener stops; then removes the flow.
    async fn replies(self, flow: Arc<Flow>, lease: Lease) {
        let idle = self.route.settings.limits.udp_idle_timeout;
        let mut buf = vec![0u8; 65_536];
        loop {
            let last = flow.start + Duration::from_millis(flow.last.load(Ordering::Relaxed));
            tokio::select! {
                () = self.stop.cancelled() => break,
                () = lease.drain.cancelled() => break,
                () = tokio::time::sleep_until(last + idle) => {
                    let mut flows = self.flows.lock().unwrap_or_else(|p| p.into_inner());
                    let last = flow.start + Duration::from_millis(flow.last.load(Ordering::Relaxed));
                    if Instant::now() >= last + idle {
                        forget(&mut flows, self.client, &flow);
                        break;
                    }
                }
                received = flow.upstream.recv(&mut buf) => {
                    // An ICMP error from the backend (port unreachable) surfaces here; the
                    // flow stays until it idles out.
                    if let Ok(len) = received {
                        flow.touch();
                        if self.socket.send_to(&buf[..len], self.client).await.is_ok() {
                            self.plane.metrics.to_client.increment(len as u64);
                        }
                    }
                }
            }
        }
        forget(
            &mut self.flows.lock().unwrap_or_else(|p| p.into_inner()),
            self.client,
            &flow,
        );
        self.route.metrics.closed();
    }
}

/// Removes `flow` from the table, and not a newer flow of the same client.
fn forget(flows: &mut HashMap<SocketAddr, Arc<Flow>>, client: SocketAddr, flow: &Arc<Flow>) {
    if flows.get(&client).is_some_and(|f| Arc::ptr_eq(f, flow)) {
        flows.remove(&client);
    }
}
