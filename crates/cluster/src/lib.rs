//! The cluster component: node membership by SWIM gossip (the `foca` crate) over UDP on
//! `cluster.gossip.listen`, joining through `cluster.gossip.seeds` and the static
//! `network.nodes`. It publishes the member set (name, internal IP, state, shared config
//! digest) as a live input that the announcers read, and flags a member whose shared digest
//! differs from ours (split config).
//!
//! foca is the sans-IO SWIM core; this crate only moves its packets and timers.

#![forbid(unsafe_code)]

mod auth;
mod identity;
mod swim;
mod view;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use dockline_model::{LiveMembers, MemberState, Published, Snapshot};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

pub use auth::Auth;
pub use identity::NodeId;

const MEMBERS: &str = "dockline_members";
const DIGEST_MISMATCH: &str = "dockline_config_digest_mismatch";
const REJECTED: &str = "dockline_gossip_packets_rejected_total";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster: cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("cluster: cannot read cluster.gossip.secret_file {0}: {1}")]
    Secret(PathBuf, std::io::Error),
    #[error("cluster: cluster.gossip.secret_file {0} is empty")]
    EmptySecret(PathBuf),
    #[error("cluster: gossip socket: {0}")]
    Io(std::io::Error),
}

pub fn describe_metrics() {
    metrics::describe_gauge!(MEMBERS, "Cluster members by SWIM state, this node included");
    metrics::describe_gauge!(
        DIGEST_MISMATCH,
        "1 while any live member gossips a shared config digest other than ours"
    );
    metrics::describe_counter!(
        REJECTED,
        "Gossip packets dropped, by reason (auth: no valid HMAC; invalid: foca could not \
         decode it or it was not for this node)"
    );
    for reason in ["auth", "invalid"] {
        metrics::counter!(REJECTED, "reason" => reason).absolute(0);
    }
}

/// Membership is on when `cluster.gossip.listen` is set.
pub fn enabled(config: &dockline_config::Config) -> bool {
    config.cluster.gossip.listen.is_some()
}

/// How long static peers not yet heard from count as live after the start.
pub const JOIN_WINDOW: Duration = Duration::from_secs(3);

/// The cluster component with its socket bound.
#[derive(Debug)]
pub struct Cluster {
    socket: UdpSocket,
    auth: Auth,
    me: NodeId,
    started: Instant,
    published: Arc<Published>,
    members: Arc<LiveMembers>,
}

impl Cluster {
    /// Binds `cluster.gossip.listen` of `snapshot` (the one about to be published) and
    /// reads the secret; call only when [`enabled`]. Later snapshots are followed from
    /// `published`.
    pub async fn bind(
        snapshot: &Snapshot,
        published: Arc<Published>,
        members: Arc<LiveMembers>,
    ) -> Result<Self, ClusterError> {
        let gossip = snapshot.config.cluster.gossip.clone();
        let listen = gossip
            .listen
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 7946)));
        let key = match &gossip.secret_file {
            None => None,
            Some(path) => {
                let text =
                    std::fs::read(path).map_err(|e| ClusterError::Secret(path.clone(), e))?;
                let trimmed = text.trim_ascii().to_vec();
                if trimmed.is_empty() {
                    return Err(ClusterError::EmptySecret(path.clone()));
                }
                Some(trimmed)
            }
        };
        let socket = UdpSocket::bind(listen)
            .await
            .map_err(|e| ClusterError::Bind(listen, e))?;
        let addr = socket.local_addr().map_err(ClusterError::Io)?;
        let epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let me = identity(snapshot, addr, epoch.as_secs());
        // Published before the announcers start, so none claims a VIP of a peer it has
        // not met yet.
        let first = view::member_set(
            &me,
            std::iter::empty(),
            &snapshot.config.network.nodes,
            true,
        );
        publish(&members, first, &snapshot.shared_digest);
        Ok(Cluster {
            socket,
            auth: Auth::new(key),
            me,
            started: Instant::now(),
            published,
            members,
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.socket.local_addr().ok()
    }

    /// Gossips until `shutdown`, then leaves the cluster so peers learn at once.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ClusterError> {
        swim::run(self, shutdown).await
    }
}

/// This node's identity as the snapshot describes it.
fn identity(snapshot: &Snapshot, addr: SocketAddr, bump: u64) -> NodeId {
    NodeId {
        name: snapshot.node.name.clone(),
        addr,
        internal_ip: snapshot.node.internal_ip,
        shared_digest: snapshot.shared_digest.clone(),
        bump,
    }
}

/// Publishes the member set and its metrics.
fn publish(members: &LiveMembers, set: dockline_model::MemberSet, ours: &str) {
    for state in [MemberState::Alive, MemberState::Suspect, MemberState::Down] {
        let n = set.members.iter().filter(|m| m.state == state).count();
        metrics::gauge!(MEMBERS, "state" => state.name()).set(n as f64);
    }
    let split = set.digest_mismatch(ours);
    metrics::gauge!(DIGEST_MISMATCH).set(if split { 1.0 } else { 0.0 });
    members.publish(set);
}
