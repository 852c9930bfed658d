//! The L4 service proxy: listeners on every service's ClusterIP, NodePort and
//! LoadBalancer IP forward TCP connections and UDP flows to the service's ready endpoints
//! (config readiness plus health verdicts), balanced per service.
//!
//! Reload is prepare -> swap: the routing table is rebuilt and swapped whole, listeners are
//! opened and closed by difference, and open connections keep going. Connections to a
//! removed endpoint are closed after `proxy.drain_grace_s`.
//!
//! A service may ask for a PROXY protocol header on its TCP connections, so endpoints
//! learn the client's address, which a userspace proxy otherwise replaces with the node's.

#![warn(missing_docs, unreachable_pub)]

mod accept;
mod balance;
mod data_plane;
#[cfg(test)]
mod fixture;
mod frontends;
mod listeners;
mod metrics;
mod pool;
mod proxy_protocol;
mod setup;
mod splice;
mod tcp;
mod throttle;
mod udp;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use dockline_config::{Config, Protocol};
use dockline_model::{LiveHealth, Published, Snapshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use accept::Acceptor;
use data_plane::{DataPlane, Limits, Route, Settings};
use frontends::Frontend;
pub use frontends::ListenAddr;
pub use metrics::describe as describe_metrics;
use pool::Pool;

/// The proxy runs when `proxy.enabled`.
pub fn enabled(config: &Config) -> bool {
    config.proxy.enabled
}

/// Every address the proxy listens on for `snapshot` (`dockline doctor` checks them).
pub fn listen_addrs(snapshot: &Snapshot) -> impl Iterator<Item = ListenAddr> {
    frontends::desired(snapshot).into_keys()
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The set that TCP listeners are served from could not be made.
    #[error("proxy: cannot make the listener set: {0}")]
    Acceptor(std::io::Error),
    /// A listening socket could not be opened.
    #[error("proxy: cannot listen on {at}: {source}")]
    Listen {
        /// The address and protocol of the listener.
        at: ListenAddr,
        /// What the kernel said.
        source: std::io::Error,
    },
}

enum Socket {
    Tcp(socket2::Socket),
    Udp(tokio::net::UdpSocket),
}

/// How an open listener is served.
#[derive(Debug)]
enum Served {
    /// In the acceptor's set, under this key.
    Tcp(RawFd),
    /// By a task of its own (a handful per node), which closes the socket when aborted.
    Udp(AbortOnDropHandle<()>),
}

/// The proxy of one node: its listeners, the routing table they read, and the pools that
/// keep each service's open connections across reloads.
#[derive(Debug)]
pub struct Proxy {
    published: Arc<Published>,
    /// Subscribed at bind, so no snapshot published after the one bound with is missed.
    reloads: tokio::sync::watch::Receiver<u64>,
    plane: Arc<DataPlane>,
    /// What the per-service series are rendered from.
    report: Arc<ArcSwap<metrics::Report>>,
    /// By service key; only services with a ClusterIP, the ones with listeners.
    pools: HashMap<Arc<str>, Arc<Pool>>,
    /// Counters per service port, kept across reloads while the port exists.
    ports: HashMap<(Arc<str>, u16), Arc<metrics::PortCounters>>,
    /// Every TCP listener, served by one task.
    acceptor: Arc<Acceptor>,
    /// The acceptor's task, from `run` on.
    accepting: Option<AbortOnDropHandle<()>>,
    /// Open listeners. With 10,000 services every byte a listener holds counts.
    listeners: BTreeMap<ListenAddr, Served>,
    /// UDP sockets bound at start, served once `run` starts.
    pending: Vec<(ListenAddr, tokio::net::UdpSocket)>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Socket::Tcp(_) => "tcp listener",
            Socket::Udp(_) => "udp socket",
        })
    }
}

impl Proxy {
    /// Binds every listener of `snapshot` (the one about to be published); any failure is a
    /// start error naming the address. Later snapshots are followed from `published`.
    pub fn bind(
        snapshot: &Snapshot,
        published: Arc<Published>,
        health: Arc<LiveHealth>,
    ) -> Result<Proxy, ProxyError> {
        let mut proxy = Proxy {
            reloads: published.subscribe(),
            published,
            plane: Arc::new(DataPlane::new(health)),
            report: Arc::default(),
            pools: HashMap::new(),
            ports: HashMap::new(),
            acceptor: Arc::new(Acceptor::new().map_err(ProxyError::Acceptor)?),
            accepting: None,
            listeners: BTreeMap::new(),
            pending: Vec::new(),
        };
        let desired = frontends::desired(snapshot);
        for at in desired.keys() {
            match bind(*at)? {
                // Queued connections wait in the backlog until `run` serves the set.
                socket @ Socket::Tcp(_) => proxy.serve(*at, socket),
                Socket::Udp(socket) => proxy.pending.push((*at, socket)),
            }
        }
        proxy.swap_routes(snapshot, desired, Duration::ZERO);
        Ok(proxy)
    }

    /// Serves and follows reloads until `shutdown`. Every listener is closed by the time
    /// this returns, and when this future is dropped unfinished (with the listeners' task
    /// handles); connections already open finish on their own.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), ProxyError> {
        let acceptor = self.acceptor.clone();
        let plane = self.plane.clone();
        let accepting = tokio::spawn(async move {
            acceptor
                .serve(|at, accepted| tcp::accepted(&plane, at, accepted))
                .await;
        });
        self.accepting = Some(AbortOnDropHandle::new(accepting));
        for (at, socket) in std::mem::take(&mut self.pending) {
            self.serve(at, Socket::Udp(socket));
        }
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                changed = self.reloads.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    self.reload().await;
                }
            }
        }
        self.acceptor.close_all();
        let listeners = std::mem::take(&mut self.listeners);
        self.close(listeners.into_values()).await;
        tracing::info!("proxy stopped");
        Ok(())
    }

    async fn reload(&mut self) {
        let snapshot = self.published.load();
        let desired = frontends::desired(&snapshot);
        // Close first: a NodePort moving between the internal IP and the wildcard address
        // must free its port before the new socket binds it.
        let gone: Vec<ListenAddr> = self
            .listeners
            .keys()
            .filter(|at| !desired.contains_key(at))
            .copied()
            .collect();
        let closing: Vec<_> = gone
            .into_iter()
            .filter_map(|at| Some((at, self.listeners.remove(&at)?)))
            .collect();
        let closed: Vec<ListenAddr> = closing.iter().map(|(at, _)| *at).collect();
        self.close(closing.into_iter().map(|(_, served)| served))
            .await;
        for at in closed {
            tracing::info!(listen = %at, "proxy listener closed");
        }
        let grace = Duration::from_secs(snapshot.config.proxy.drain_grace_s);
        self.swap_routes(&snapshot, desired.clone(), grace);
        for at in desired.keys() {
            if self.listeners.contains_key(at) {
                continue;
            }
            match bind(*at) {
                Ok(socket) => self.serve(*at, socket),
                Err(error) => {
                    self.plane.metrics.listen_errors.increment(1);
                    tracing::error!(error = %error, "proxy listener not opened");
                }
            }
        }
        tracing::info!(listeners = self.listeners.len(), "proxy reloaded");
    }

    fn serve(&mut self, at: ListenAddr, socket: Socket) {
        let served = match socket {
            Socket::Tcp(listener) => match self.acceptor.add(listener, at) {
                Ok(key) => Served::Tcp(key),
                Err(error) => {
                    self.plane.metrics.listen_errors.increment(1);
                    tracing::error!(listen = %at, %error, "proxy listener not served");
                    return;
                }
            },
            Socket::Udp(socket) => {
                let task = tokio::spawn(udp::serve(socket, at, self.plane.clone()));
                Served::Udp(AbortOnDropHandle::new(task))
            }
        };
        self.listeners.insert(at, served);
        tracing::info!(listen = %at, "proxy listening");
    }

    /// Closes `listeners`; every socket is closed when this returns.
    async fn close(&self, listeners: impl IntoIterator<Item = Served>) {
        let mut tasks = Vec::new();
        for served in listeners {
            match served {
                Served::Tcp(key) => self.acceptor.close(key),
                Served::Udp(task) => {
                    task.abort();
                    tasks.push(task);
                }
            }
        }
        for task in tasks {
            // Closed only when the task has dropped the socket.
            let _ = task.await;
        }
    }

    /// Builds the new routing table (keeping each service's pool), swaps it in and
    /// schedules the drain of endpoints and services that went.
    fn swap_routes(
        &mut self,
        snapshot: &Snapshot,
        desired: BTreeMap<ListenAddr, Frontend>,
        grace: Duration,
    ) {
        let mut pools = HashMap::new();
        // Endpoints to drain; `None`: the whole service went.
        let mut gone: Vec<(Arc<Pool>, Option<IpAddr>)> = Vec::new();
        for service in snapshot.services.iter().filter(|s| s.cluster_ip.is_some()) {
            let pool = match self.pools.remove(service.key().as_str()) {
                Some(pool) => {
                    let removed = pool.update(service);
                    gone.extend(removed.into_iter().map(|ip| (pool.clone(), Some(ip))));
                    pool
                }
                None => Pool::new(service),
            };
            pools.insert(pool.key().clone(), pool);
        }
        // Services removed entirely: every endpoint drains.
        gone.extend(self.pools.drain().map(|(_, pool)| (pool, None)));
        self.pools = pools;
        let settings = Arc::new(Settings {
            node: snapshot.node.name.as_str().into(),
            limits: Limits::new(&snapshot.config.proxy),
        });
        let mut ports = HashMap::new();
        let mut routes = HashMap::with_capacity(desired.len());
        for (at, mut frontend) in desired {
            let Some(pool) = self.pools.get(&frontend.service) else {
                continue;
            };
            // The pool's copy of the key: one per service, whatever its listeners.
            frontend.service = pool.key().clone();
            let port = (frontend.service.clone(), frontend.port);
            let counters = match ports.get(&port) {
                Some(counters) => Arc::clone(counters),
                None => {
                    let counters = self.ports.remove(&port).unwrap_or_default();
                    ports.insert(port, counters.clone());
                    counters
                }
            };
            let route = Route {
                frontend,
                pool: pool.clone(),
                settings: settings.clone(),
                metrics: counters,
            };
            routes.insert(at, Arc::new(route));
        }
        self.plane.routes.store(Arc::new(routes));
        self.ports = ports;
        self.publish_report();
        if !gone.is_empty() {
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                for (pool, endpoint) in gone {
                    match endpoint {
                        Some(ip) => pool.drain(ip),
                        None => pool.drain_all(),
                    }
                }
            });
        }
    }

    /// The per-service series' source: every port's counters and every proxied pool.
    fn publish_report(&self) {
        let mut ports: Vec<_> = self
            .ports
            .iter()
            .map(|((service, port), counters)| (service.clone(), *port, counters.clone()))
            .collect();
        ports.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        let mut pools: Vec<Arc<Pool>> = self.pools.values().cloned().collect();
        pools.sort_by(|a, b| a.key().cmp(b.key()));
        self.report
            .store(Arc::new(metrics::Report { ports, pools }));
    }

    /// Renders the per-service series (connections, active connections, backend_up) of
    /// the live config, for the admin API to append to /metrics.
    pub fn metrics_renderer(&self) -> impl Fn(&mut String) + Send + Sync + 'static {
        let report = self.report.clone();
        let health = self.plane.health.clone();
        move |out| metrics::render(&report.load(), &health.load(), out)
    }
}

fn bind(at: ListenAddr) -> Result<Socket, ProxyError> {
    let error = |source| ProxyError::Listen { at, source };
    Ok(match at.protocol {
        Protocol::Tcp => Socket::Tcp(listeners::tcp(at.addr).map_err(error)?),
        Protocol::Udp => Socket::Udp(listeners::udp(at.addr).map_err(error)?),
    })
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;
    use std::net::SocketAddr;

    use tokio::net::TcpStream;

    use super::*;

    /// A proxy bound to a TCP and a UDP listener on 127.0.0.1, and their address.
    fn proxy() -> (Proxy, SocketAddr) {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let at = free.local_addr().unwrap();
        drop(free);
        let port = at.port();
        let snapshot = dockline_model::testing::snapshot(&format!(
            "[cluster]\nservice_cidr = \"127.0.0.0/8\"\n\
             [[services]]\nname = \"web\"\ncluster_ip = \"127.0.0.1\"\n\
             ports = [{{ name = \"tcp\", port = {port} }}, \
             {{ name = \"udp\", port = {port}, protocol = \"UDP\" }}]\n"
        ));
        let published = Arc::new(Published::new(snapshot));
        let health = Arc::new(LiveHealth::default());
        let proxy = Proxy::bind(&published.load(), published.clone(), health).unwrap();
        (proxy, at)
    }

    async fn refused(at: SocketAddr) -> bool {
        TcpStream::connect(at)
            .await
            .is_err_and(|error| error.kind() == ErrorKind::ConnectionRefused)
    }

    #[tokio::test]
    async fn every_listener_is_closed_when_run_returns() {
        let (proxy, at) = proxy();
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(proxy.run(shutdown.clone()));
        assert!(TcpStream::connect(at).await.is_ok());
        shutdown.cancel();
        running.await.unwrap().unwrap();
        // Checked without yielding, so no listener task gets a turn after `run` returned.
        let closed = std::net::TcpStream::connect(at);
        assert_eq!(closed.unwrap_err().kind(), ErrorKind::ConnectionRefused);
        std::net::UdpSocket::bind(at).unwrap();
    }

    #[tokio::test]
    async fn a_run_dropped_unfinished_stops_its_listeners() {
        let (proxy, at) = proxy();
        let running = tokio::spawn(proxy.run(CancellationToken::new()));
        assert!(TcpStream::connect(at).await.is_ok());
        running.abort();
        let _ = running.await;
        // The listener tasks see their token cancelled at their next turn.
        let mut closed = false;
        for _ in 0..100 {
            if refused(at).await {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(closed, "{at} still listening");
    }
}
