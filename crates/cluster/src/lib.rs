//! The cluster component: node membership by SWIM gossip (the `foca` crate) over UDP on
//! `cluster.gossip.listen`, joining through `cluster.gossip.seeds` and the static
//! `network.nodes`. It publishes the member set (name, internal IP, state, shared config
//! digest) as a live input that the announcers read, and flags a member whose shared digest
//! differs from ours (split config).
//!
//! Off loopback, gossip is authenticated ([`Auth`]: HMAC-SHA256 with the keys of
//! `cluster.gossip.secret_file`, a timestamp and a nonce against replays), and
//! `cluster.allowed_nodes` bounds who may be a member.
//!
//! Dissemination is sized to the live member count, and anti-entropy (`sync`) makes any two
//! views that differ equal again: periodically with a random member, at once for a joiner
//! and its seed, and with every node when L2 hears a conflict.
//!
//! foca is the sans-IO SWIM core; `membership` (identity and joining), `sync`
//! (anti-entropy) and `node` (the three together) are sans-IO too; `swim` only moves their
//! packets and timers.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod auth;
mod error;
mod identity;
mod membership;
mod metrics;
mod node;
#[cfg(test)]
mod simulation;
mod status;
mod swim;
mod sync;
mod view;

use std::net::SocketAddr;
use std::sync::Arc;

use dockline_model::{LiveMembers, LiveOwners, Published, Snapshot};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use auth::{Auth, Rejected, WINDOW as REPLAY_WINDOW};
pub use error::ClusterError;
pub use identity::NodeId;
pub use membership::JOIN_WINDOW;
pub use metrics::describe as describe_metrics;
pub use status::ClusterStatus;

/// Entry points for the fuzz targets.
#[doc(hidden)]
pub mod fuzzing {
    use std::time::Instant;

    use crate::membership::MembershipConfig;
    use crate::node::GossipNode;

    /// Feeds `payload` to a fresh node, as if received from a peer, and runs what is due.
    pub fn feed_payload(payload: &[u8]) {
        let config = MembershipConfig {
            name: "fuzz".into(),
            internal_ip: [10, 0, 0, 1].into(),
            shared_digest: "d".into(),
            config_revision: None,
            announces_l2: true,
            seeds: vec![([10, 0, 0, 2], 7946).into()],
            static_nodes: Vec::new(),
        };
        let timing = dockline_config::GossipTiming {
            probe_interval_ms: 120,
            probe_timeout_ms: 50,
            suspect_timeout_ms: 120,
        };
        let now = Instant::now();
        let mut node = GossipNode::new(&config, timing, ([10, 0, 0, 1], 7946).into(), 1, 1, now);
        let _ = node.handle_packet(([10, 0, 0, 3], 7946).into(), payload, now);
        node.handle_timeout(now + std::time::Duration::from_secs(1));
        while node.poll_transmit().is_some() {}
    }
}

/// Membership is on when `cluster.gossip.listen` is set.
pub fn enabled(config: &dockline_config::Config) -> bool {
    config.cluster.gossip.listen.is_some()
}

/// The cluster component with its socket bound.
#[derive(Debug)]
pub struct Cluster {
    gossip: swim::Gossip,
}

impl Cluster {
    /// Binds `cluster.gossip.listen` of `snapshot` (the one about to be published) and
    /// reads the secret; call only when [`enabled`]. Later snapshots are followed from
    /// `published`; the member set is written to `members`; a rise in the L2 conflicts of
    /// `owners` makes the node compare views with every node at once.
    pub async fn bind(
        snapshot: &Snapshot,
        published: Arc<Published>,
        members: Arc<LiveMembers>,
        owners: Arc<LiveOwners>,
    ) -> Result<Self, ClusterError> {
        let inputs = swim::Inputs {
            published,
            members,
            owners,
        };
        let gossip = swim::Gossip::bind(snapshot, inputs).await?;
        Ok(Cluster { gossip })
    }

    /// A receiver of what `/status` shows of membership, updated as it changes.
    pub fn status(&self) -> watch::Receiver<ClusterStatus> {
        self.gossip.status()
    }

    /// The address the gossip socket is bound to.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.gossip.local_addr()
    }

    /// Gossips until `shutdown`, then leaves the cluster so peers learn at once, and
    /// closes the socket.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ClusterError> {
        self.gossip.run(shutdown).await
    }
}
