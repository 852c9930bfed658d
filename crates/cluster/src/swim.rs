//! The gossip driver: one task owns the socket and the [`GossipNode`] (foca, the identity,
//! anti-entropy). Packets, the node's timer, config changes and L2 conflicts go into the
//! node; what it hands out is sealed and sent, and the member set is published. Every
//! packet goes through the [`Auth`] envelope both ways; the keys are read again on every
//! config change, so a reload rotates them.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use dockline_config::Config;
use dockline_model::{LiveMembers, LiveOwners, MemberSet, Published, Snapshot};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::auth::{Auth, Rejected};
use crate::error::ClusterError;
use crate::membership::MembershipConfig;
use crate::metrics::{self, Rejection, count_rejected};
use crate::node::GossipNode;
use crate::status::{ClusterStatus, Traffic};
use crate::view;

/// How often the traffic rates in the status are worked out.
const RATE_PERIOD: Duration = Duration::from_secs(1);

/// The live inputs gossip reads and the one it writes.
#[derive(Debug, Clone)]
pub(crate) struct Inputs {
    pub(crate) published: Arc<Published>,
    pub(crate) members: Arc<LiveMembers>,
    pub(crate) owners: Arc<LiveOwners>,
}

/// The bound socket and the state the gossip loop starts from.
#[derive(Debug)]
pub(crate) struct Gossip {
    socket: UdpSocket,
    auth: Auth,
    node: GossipNode,
    inputs: Inputs,
    status: watch::Sender<ClusterStatus>,
}

impl Gossip {
    /// Reads the secret and binds `cluster.gossip.listen` of `snapshot`, then publishes a
    /// first member set.
    pub(crate) async fn bind(snapshot: &Snapshot, inputs: Inputs) -> Result<Self, ClusterError> {
        let gossip = &snapshot.config.cluster.gossip;
        let listen = gossip
            .listen
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 7946)));
        let auth = Auth::new(Auth::read_keys(gossip.secret_file.as_deref())?);
        let socket = bind_socket(listen).map_err(|e| ClusterError::Bind(listen, e))?;
        let addr = socket.local_addr().map_err(ClusterError::Io)?;
        let bump = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let node = GossipNode::new(
            &MembershipConfig::from_snapshot(snapshot),
            gossip.timing(),
            addr,
            bump,
            bump ^ (u64::from(std::process::id()) << 32),
            Instant::now(),
        );
        // Published before the announcers start, so none claims a VIP of a peer it has
        // not met yet.
        let mut first = view::member_set(
            node.me(),
            std::iter::empty(),
            &snapshot.config.network.nodes,
            &snapshot.config.cluster.allowed_nodes,
            true,
        );
        first.forming = node.forming(Instant::now());
        view::publish(&inputs.members, first, &snapshot.shared_digest);
        Ok(Gossip {
            socket,
            auth,
            node,
            inputs,
            status: watch::Sender::new(ClusterStatus::default()),
        })
    }

    /// The address the gossip socket is bound to.
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.socket.local_addr().ok()
    }

    /// A receiver of what `/status` shows of membership.
    pub(crate) fn status(&self) -> watch::Receiver<ClusterStatus> {
        self.status.subscribe()
    }

    /// Gossips until `shutdown`, then leaves the cluster; the socket closes on return.
    pub(crate) async fn run(self, shutdown: CancellationToken) -> Result<(), ClusterError> {
        let Gossip {
            socket,
            auth,
            node,
            inputs,
            status,
        } = self;
        // Subscribed before the snapshot is read, so that a later publish wakes `changes`.
        let mut changes = inputs.published.subscribe();
        let mut owner_changes = inputs.owners.subscribe();
        let mut driver = Driver {
            socket,
            auth,
            node,
            inputs,
            status,
            nonce: wall_clock_ms().rotate_left(32) ^ u64::from(std::process::id()),
            outsiders_logged: BTreeSet::new(),
            conflicts_seen: 0,
            traffic: Traffic::default(),
        };
        // The daemon may bind with a snapshot and publish another before this runs.
        driver.follow_config();
        tracing::info!(
            listen = %driver.node.me().addr,
            seeds = ?driver.node.join_targets(),
            authenticated = driver.auth.enabled(),
            "gossip started"
        );
        let mut rates = tokio::time::interval(RATE_PERIOD);
        let mut buf = vec![0u8; 65_536];
        loop {
            driver.flush().await;
            driver.publish();
            let wake = driver.node.poll_timeout();
            tokio::select! {
                _ = shutdown.cancelled() => {
                    driver.node.leave(Instant::now());
                    driver.flush().await;
                    return Ok(());
                }
                received = driver.socket.recv_from(&mut buf) => {
                    let (len, from) = received.map_err(ClusterError::Io)?;
                    driver.receive(&buf[..len], from);
                }
                () = tokio::time::sleep_until(wake.into()) => {
                    driver.node.handle_timeout(Instant::now());
                }
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    driver.follow_config();
                }
                Ok(()) = owner_changes.changed() => driver.follow_conflicts(),
                _ = rates.tick() => driver.traffic.tick(Instant::now(), &driver.status),
            }
        }
    }
}

/// The gossip task's state.
struct Driver {
    socket: UdpSocket,
    auth: Auth,
    node: GossipNode,
    inputs: Inputs,
    status: watch::Sender<ClusterStatus>,
    nonce: u64,
    outsiders_logged: BTreeSet<String>,
    /// The L2 conflicts counted so far; a rise asks for a repair.
    conflicts_seen: u64,
    traffic: Traffic,
}

impl Driver {
    /// Opens one datagram and hands its payload to the node.
    fn receive(&mut self, packet: &[u8], from: SocketAddr) {
        self.traffic.received(packet.len());
        match self.auth.open(packet, wall_clock_ms()) {
            Err(Rejected::Auth) => {
                count_rejected(Rejection::Auth);
                tracing::debug!(%from, "gossip: unauthenticated packet dropped");
            }
            Err(Rejected::Replay) => {
                count_rejected(Rejection::Replay);
                tracing::debug!(%from, "gossip: replayed or stale packet dropped");
            }
            Ok(payload) => {
                if let Err(error) = self.node.handle_packet(from, payload, Instant::now()) {
                    count_rejected(Rejection::Invalid);
                    tracing::debug!(%from, %error, "gossip: packet refused");
                }
            }
        }
    }

    /// Follows the snapshot in force: keys and identity.
    fn follow_config(&mut self) {
        let snapshot = self.inputs.published.load();
        reload_keys(&mut self.auth, &snapshot.config);
        let config = MembershipConfig::from_snapshot(&snapshot);
        self.node.on_config(&config, Instant::now());
    }

    /// A new L2 conflict means two nodes disagree on an owner: compare views now.
    fn follow_conflicts(&mut self) {
        let conflicts: u64 = self
            .inputs
            .owners
            .load()
            .vips
            .iter()
            .map(|v| v.conflicts)
            .sum();
        if conflicts > self.conflicts_seen && self.node.repair(Instant::now()) {
            tracing::info!(conflicts, "gossip: L2 conflict heard, comparing views now");
        }
        self.conflicts_seen = conflicts;
    }

    /// Seals and sends what the node has to send.
    async fn flush(&mut self) {
        while let Some((to, payload)) = self.node.poll_transmit() {
            self.nonce = self.nonce.wrapping_add(1);
            let packet = self.auth.seal(&payload, wall_clock_ms(), self.nonce);
            self.traffic.sent(packet.len());
            if let Err(error) = self.socket.send_to(&packet, to).await {
                tracing::debug!(%to, %error, "gossip: send failed");
            }
        }
    }

    /// Publishes the member set; a change is logged and timestamped.
    fn publish(&mut self) {
        let snapshot = self.inputs.published.load();
        let allowed = &snapshot.config.cluster.allowed_nodes;
        let known = || self.node.members().map(|m| (m.id(), m.state()));
        view::log_outsiders(
            known().map(|(id, _)| id),
            allowed,
            &mut self.outsiders_logged,
        );
        let now = Instant::now();
        let mut set = view::member_set(
            self.node.me(),
            known(),
            &snapshot.config.network.nodes,
            allowed,
            self.node.joining(now),
        );
        set.forming = self.node.forming(now);
        let before = self.inputs.members.load();
        // Most events (probes, acks, timers) change nothing: nothing to compare or count.
        if *before == set {
            return;
        }
        let changes = membership_changes(&before, &set);
        if !changes.is_empty() {
            let at = wall_clock_ms();
            let alive = set.live_names().count();
            tracing::info!(
                members = set.members.len(),
                live = alive,
                at_unix_ms = at,
                changes = %changes.join(", "),
                "gossip: membership changed"
            );
            metrics::record_change(at);
            self.status.send_modify(|status| {
                status.last_change_unix_ms = at;
                status.live_members = alive;
            });
        }
        view::publish(&self.inputs.members, set, &snapshot.shared_digest);
    }
}

/// The members that came, went, or changed between live and down, as "name state" ("gone"
/// for one no longer listed); empty when none did (a digest change alone is not a
/// membership change).
fn membership_changes(before: &MemberSet, after: &MemberSet) -> Vec<String> {
    let live = |set: &MemberSet, name: &str| {
        set.members
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.state.is_live())
    };
    let names: BTreeSet<&str> = before
        .members
        .iter()
        .chain(&after.members)
        .map(|m| m.name.as_str())
        .collect();
    names
        .into_iter()
        .filter_map(|name| match (live(before, name), live(after, name)) {
            (was, now) if was == now => None,
            (_, Some(true)) => Some(format!("{name} live")),
            (_, Some(false)) => Some(format!("{name} down")),
            (_, None) => Some(format!("{name} gone")),
        })
        .collect()
}

/// The size asked for the socket's receive buffer: a burst of full states (a node many
/// sync with at once) must not crowd out the probes that arrive with it. The kernel caps
/// it at `net.core.rmem_max`.
const RECEIVE_BUFFER: usize = 4 << 20;

/// A UDP socket bound to `listen` with a large receive buffer.
fn bind_socket(listen: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(listen),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if let Err(error) = socket.set_recv_buffer_size(RECEIVE_BUFFER) {
        tracing::debug!(%error, "gossip: receive buffer left at its default");
    }
    socket.bind(&listen.into())?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

/// Reads the keys of `config` again; a file that cannot be read keeps the keys in use (the
/// node stays in the cluster) and says why.
fn reload_keys(auth: &mut Auth, config: &Config) {
    let path = config.cluster.gossip.secret_file.as_deref();
    match Auth::read_keys(path) {
        Ok(keys) if keys.is_empty() != auth.enabled() => auth.set_keys(keys),
        // On or off needs a restart, which the component's restart key asks for.
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "gossip: keys not reloaded, the old ones stay"),
    }
}

/// Milliseconds since the epoch: the time the auth envelope carries and changes are
/// stamped with.
fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|since| since.as_millis() as u64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use dockline_model::{Member, MemberState};

    use super::*;

    fn set(members: &[(&str, MemberState)]) -> MemberSet {
        MemberSet::new(
            members
                .iter()
                .map(|(name, state)| Member {
                    name: (*name).into(),
                    internal_ip: [10, 0, 0, 1].into(),
                    state: *state,
                    shared_digest: String::new(),
                    config_revision: None,
                    announces_l2: true,
                })
                .collect(),
        )
    }

    #[test]
    fn membership_changes_name_who_came_went_or_changed_liveness_only() {
        use MemberState::{Alive, Down, Suspect};
        let before = set(&[("a", Alive), ("b", Alive), ("c", Alive), ("d", Down)]);
        let after = set(&[("a", Suspect), ("b", Down), ("d", Alive), ("e", Alive)]);
        assert_eq!(
            membership_changes(&before, &after),
            ["b down", "c gone", "d live", "e live"],
            "alive to suspect is no change: both are live"
        );
        assert!(membership_changes(&after, &after).is_empty());
    }
}
