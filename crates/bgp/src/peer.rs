//! One router's task: the thin driver around a [`Session`] and its Adj-RIB-Out. It turns
//! sockets and timers into session inputs, carries out the session's actions, and sends
//! the UPDATEs that bring the router to the routes wanted now. Socket readers are small
//! tasks that only forward bytes; everything else is owned here.

use std::collections::{HashMap, HashSet};
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use netgauze_bgp_pkt::BgpMessage;
use netgauze_iana::address_family::AddressType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::advertise::{Advertised, Peer, Routes};
use crate::bfd::{BfdSession, BfdState, ControlPacket};
use crate::message;
use crate::metrics::PeerMetrics;
use crate::session::{Action, ConnectionId, Negotiated, Session, Settings, State};
use crate::socket;
use crate::status::StatusBoard;
use dockline_admin::BgpPeerRecord;

/// How long a stop may spend writing withdrawals and the Cease, inside the daemon's grace.
const STOP_WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one write may block before the connection counts as dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Read chunks; the session keeps at most one message of them.
const READ_BUFFER: usize = 64 * 1024;

/// Everything a session is made from; a change of any of it resets that session only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PeerConfig {
    pub(crate) address: SocketAddr,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) ttl: Option<u32>,
    /// BFD transmit/receive interval and detection multiplier, when on.
    pub(crate) bfd: Option<(Duration, u8)>,
    pub(crate) settings: Settings,
}

enum Event {
    Connected(ConnectionId, std::io::Result<TcpStream>),
    Received(ConnectionId, Vec<u8>),
    Closed(ConnectionId),
}

struct Link {
    writer: OwnedWriteHalf,
    local: SocketAddr,
    reader: JoinHandle<()>,
}

/// What the peer task reads from the speaker.
pub(crate) struct PeerInputs {
    pub(crate) routes: watch::Receiver<Arc<Routes>>,
    pub(crate) inbound: mpsc::Receiver<TcpStream>,
    /// BFD control packets from the router, already checked.
    pub(crate) bfd_packets: mpsc::Receiver<ControlPacket>,
    pub(crate) board: Arc<StatusBoard>,
    /// Tells this task's status line from that of a task replacing it.
    pub(crate) generation: u64,
    /// The node's internal address: the next hop of its family when the session's own
    /// local address is of the other.
    pub(crate) node_ip: IpAddr,
}

/// A BFD session and the socket its packets go out on.
struct Bfd {
    session: BfdSession,
    socket: UdpSocket,
    up: bool,
}

struct PeerTask {
    config: PeerConfig,
    session: Session,
    bfd: Option<Bfd>,
    advertised: Advertised,
    /// What UPDATEs are built with, while established.
    peer: Option<Peer>,
    links: HashMap<ConnectionId, Link>,
    connecting: HashMap<ConnectionId, JoinHandle<()>>,
    events: mpsc::Sender<Event>,
    inputs: PeerInputs,
    metrics: PeerMetrics,
    established_at: Option<SystemTime>,
    updates_sent: u64,
    reported: Option<BgpPeerRecord>,
    /// Logged once until it changes or the session comes up, not at every retry.
    last_connect_error: Option<String>,
}

/// Runs the session with `config` until `shutdown`, then withdraws everything and sends a
/// Cease.
pub(crate) async fn run(config: PeerConfig, inputs: PeerInputs, shutdown: CancellationToken) {
    let (events, mut received) = mpsc::channel(16);
    let now = Instant::now();
    let bfd = config.bfd.and_then(|(interval, multiplier)| {
        // Any non-zero number unique on this node will do as discriminator.
        let discriminator = u32::try_from(inputs.generation % u64::from(u32::MAX)).unwrap_or(0) + 1;
        match socket::bfd_sender(config.address.ip(), discriminator as u16) {
            Ok(socket) => Some(Bfd {
                session: BfdSession::new(discriminator, interval, multiplier, now),
                socket,
                up: false,
            }),
            Err(error) => {
                tracing::error!(peer = %config.address, %error, "BFD not started: no socket");
                None
            }
        }
    });
    let mut task = PeerTask {
        bfd,
        session: Session::new(config.settings.clone()),
        metrics: PeerMetrics::new(config.address.ip()),
        config,
        advertised: Advertised::new(),
        peer: None,
        links: HashMap::new(),
        connecting: HashMap::new(),
        events,
        inputs,
        established_at: None,
        updates_sent: 0,
        reported: None,
        last_connect_error: None,
    };
    task.session.start(Instant::now());
    loop {
        task.carry_out().await;
        task.report();
        let deadline = [
            task.session.poll_timeout(),
            task.bfd.as_ref().map(|bfd| bfd.session.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        .min();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(event) = received.recv() => task.handle(event),
            Some(stream) = task.inputs.inbound.recv() => task.accept(stream),
            Ok(()) = task.inputs.routes.changed() => task.advertise(),
            Some(packet) = task.inputs.bfd_packets.recv() => {
                if let Some(bfd) = &mut task.bfd {
                    bfd.session.received(&packet, Instant::now());
                }
            }
            () = sleep => task.session.handle_timeout(Instant::now()),
        }
        task.run_bfd().await;
    }
    task.stop().await;
}

impl PeerTask {
    fn handle(&mut self, event: Event) {
        let now = Instant::now();
        match event {
            Event::Connected(id, result) => {
                if self.connecting.remove(&id).is_none() {
                    // Given up on already (the router connected first).
                    return;
                }
                match result {
                    Ok(stream) => {
                        self.add_link(id, stream);
                        self.session.connected(id, now);
                    }
                    Err(error) => {
                        let mut reason = error.to_string();
                        if self.config.key.is_some() && error.kind() == ErrorKind::TimedOut {
                            // Linux drops segments whose TCP-MD5 signature does not match
                            // without a word: a wrong key shows only as silence.
                            reason.push_str(
                                " (TCP-MD5 is on: a key the router does not share looks like this)",
                            );
                        }
                        if self.last_connect_error.as_ref() != Some(&reason) {
                            tracing::warn!(peer = %self.config.address, %reason, "BGP connect failed");
                            self.last_connect_error = Some(reason.clone());
                        }
                        self.session.connection_failed(id, now, &reason);
                    }
                }
            }
            Event::Received(id, bytes) => self.session.received(id, &bytes, now),
            Event::Closed(id) => self.session.connection_closed(id, now),
        }
    }

    fn accept(&mut self, stream: TcpStream) {
        let Some(id) = self.session.accept(Instant::now()) else {
            tracing::debug!(peer = %self.config.address, "BGP connection refused: session busy");
            return;
        };
        if let Some(ttl) = self.config.ttl
            && let Err(error) = socket::set_ttl(&stream, self.config.address.ip(), ttl)
        {
            tracing::warn!(peer = %self.config.address, %error, "could not set the TTL");
        }
        let _ = stream.set_nodelay(true);
        self.add_link(id, stream);
    }

    fn add_link(&mut self, id: ConnectionId, stream: TcpStream) {
        let Ok(local) = stream.local_addr() else {
            self.session.connection_closed(id, Instant::now());
            return;
        };
        let (mut read, writer) = stream.into_split();
        let events = self.events.clone();
        let reader = tokio::spawn(async move {
            let mut buffer = vec![0; READ_BUFFER];
            loop {
                match read.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(length) => {
                        // A bounded channel: a flooding router waits on its own TCP window.
                        let bytes = buffer[..length].to_vec();
                        if events.send(Event::Received(id, bytes)).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = events.send(Event::Closed(id)).await;
        });
        self.links.insert(
            id,
            Link {
                writer,
                local,
                reader,
            },
        );
    }

    /// Fires BFD's timers, sends what is due, and takes the BGP session down when BFD
    /// loses the router.
    async fn run_bfd(&mut self) {
        let Some(bfd) = &mut self.bfd else {
            return;
        };
        let now = Instant::now();
        bfd.session.handle_timeout(now);
        while let Some(packet) = bfd.session.poll_transmit(now) {
            let _ = bfd.socket.send(&packet).await;
        }
        let up = bfd.session.state() == BfdState::Up;
        if up != bfd.up {
            bfd.up = up;
            self.metrics.bfd_up.set(if up { 1.0 } else { 0.0 });
            if up {
                tracing::info!(peer = %self.config.address, "BFD session up");
            } else {
                tracing::warn!(peer = %self.config.address, "BFD session down: resetting the BGP session");
                self.session.bfd_down(now);
            }
        }
    }

    /// Carries out the session's actions until it has none left.
    async fn carry_out(&mut self) {
        while let Some(action) = self.session.poll_action() {
            match action {
                Action::Connect(id) => self.connect(id),
                Action::Send(id, bytes) => self.write(id, &bytes, WRITE_TIMEOUT).await,
                Action::Close(id) => self.close(id).await,
                Action::Up(id, negotiated) => self.up(id, &negotiated),
                Action::Down { reason } => {
                    tracing::warn!(peer = %self.config.address, %reason, "BGP session down");
                    self.down();
                }
                Action::RouteRefresh => {
                    tracing::info!(peer = %self.config.address, "route refresh asked for");
                    self.advertised = Advertised::new();
                    self.advertise();
                }
                Action::Notification {
                    direction,
                    code,
                    subcode,
                } => {
                    tracing::warn!(
                        peer = %self.config.address,
                        direction = direction.as_str(),
                        code,
                        subcode,
                        "BGP NOTIFICATION"
                    );
                    self.metrics.notification(direction, code);
                }
            }
        }
    }

    fn connect(&mut self, id: ConnectionId) {
        let events = self.events.clone();
        let address = self.config.address;
        let key = self.config.key.clone();
        let ttl = self.config.ttl;
        let timeout = self.config.settings.connect_retry;
        let attempt = tokio::spawn(async move {
            let result = socket::connect(address, key.as_deref(), ttl, timeout).await;
            let _ = events.send(Event::Connected(id, result)).await;
        });
        self.connecting.insert(id, attempt);
    }

    async fn write(&mut self, id: ConnectionId, bytes: &[u8], timeout: Duration) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        let written = tokio::time::timeout(timeout, link.writer.write_all(bytes)).await;
        if !matches!(written, Ok(Ok(()))) {
            self.session.connection_closed(id, Instant::now());
        }
    }

    async fn close(&mut self, id: ConnectionId) {
        if let Some(attempt) = self.connecting.remove(&id) {
            attempt.abort();
        }
        if let Some(mut link) = self.links.remove(&id) {
            link.reader.abort();
            let _ = tokio::time::timeout(STOP_WRITE_TIMEOUT, link.writer.shutdown()).await;
        }
    }

    fn up(&mut self, id: ConnectionId, negotiated: &Negotiated) {
        let local = self
            .links
            .get(&id)
            .map_or(self.inputs.node_ip, |link| link.local.ip());
        let next_hop = |want_v6: bool| {
            [local, self.inputs.node_ip]
                .into_iter()
                .find(|ip| ip.is_ipv6() == want_v6)
        };
        let settings = &self.config.settings;
        self.peer = Some(Peer {
            local_asn: settings.local_asn,
            external: settings.local_asn != settings.peer_asn,
            four_octet_asn: negotiated.four_octet_asn,
            next_hop_v4: match next_hop(false) {
                Some(IpAddr::V4(ip)) if negotiated.ipv4 => Some(ip),
                _ => None,
            },
            next_hop_v6: match next_hop(true) {
                Some(IpAddr::V6(ip)) if negotiated.ipv6 => Some(ip),
                _ => None,
            },
        });
        tracing::info!(
            peer = %self.config.address,
            router_id = %negotiated.peer_router_id,
            hold_time = negotiated.hold_time,
            graceful_restart = negotiated.graceful_restart,
            "BGP session established"
        );
        self.established_at = Some(SystemTime::now());
        self.last_connect_error = None;
        self.metrics.session_up.set(1.0);
        self.advertised = Advertised::new();
        self.advertise();
        // End-of-RIB after the initial table (RFC 4724 section 2).
        let families = [
            (negotiated.ipv4, AddressType::Ipv4Unicast),
            (negotiated.ipv6, AddressType::Ipv6Unicast),
        ];
        for (negotiated, family) in families {
            if negotiated {
                let bytes = message::encode(&message::end_of_rib(family));
                self.session.send(bytes, Instant::now());
            }
        }
    }

    fn down(&mut self) {
        self.peer = None;
        self.established_at = None;
        self.advertised = Advertised::new();
        self.metrics.session_up.set(0.0);
        self.metrics.announced.set(0.0);
    }

    /// Sends the UPDATEs that bring the router to the routes wanted now.
    fn advertise(&mut self) {
        let Some(peer) = &self.peer else {
            return;
        };
        let routes = Arc::clone(&self.inputs.routes.borrow_and_update());
        let updates = self.advertised.update_to(&routes, peer);
        self.send_updates(updates);
    }

    fn send_updates(&mut self, updates: Vec<BgpMessage>) {
        let now = Instant::now();
        let count = updates.len() as u64;
        for update in updates {
            self.session.send(message::encode(&update), now);
        }
        if count > 0 {
            self.updates_sent += count;
            self.metrics.updates_sent.increment(count);
            tracing::debug!(peer = %self.config.address, updates = count, "BGP UPDATEs sent");
        }
        self.metrics.announced.set(self.advertised.len() as f64);
    }

    /// Withdraws everything, sends a Cease and closes, within [`STOP_WRITE_TIMEOUT`].
    async fn stop(mut self) {
        if self.peer.is_some() {
            let withdrawals = self.advertised.withdraw_all();
            self.send_updates(withdrawals);
        }
        self.session.stop(Instant::now());
        let deadline = tokio::time::Instant::now() + STOP_WRITE_TIMEOUT;
        while let Some(action) = self.session.poll_action() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match action {
                Action::Send(id, bytes) => self.write(id, &bytes, left).await,
                Action::Close(id) => self.close(id).await,
                Action::Notification {
                    direction, code, ..
                } => self.metrics.notification(direction, code),
                _ => {}
            }
        }
        for (_, attempt) in self.connecting.drain() {
            attempt.abort();
        }
        let ids: HashSet<ConnectionId> = self.links.keys().copied().collect();
        for id in ids {
            self.close(id).await;
        }
        self.down();
        self.inputs
            .board
            .remove(self.config.address.ip(), self.inputs.generation);
    }

    /// Tells the status board, when something it shows changed.
    fn report(&mut self) {
        let state = self.session.state();
        let status = BgpPeerRecord {
            address: self.config.address.ip(),
            asn: self.config.settings.peer_asn,
            state: state.to_string(),
            established_at: self.established_at.filter(|_| state == State::Established),
            last_error: self.session.last_error().map(str::to_owned),
            prefixes_sent: self.advertised.len(),
            advertised: self
                .advertised
                .prefixes()
                .map(ToString::to_string)
                .collect(),
            updates_sent: self.updates_sent,
        };
        if self.reported.as_ref() != Some(&status) {
            self.inputs
                .board
                .set(self.inputs.generation, status.clone());
            self.reported = Some(status);
        }
    }
}
