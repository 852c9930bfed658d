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
//! foca is the sans-IO SWIM core and `membership` the sans-IO core for this node's identity
//! and joining; `swim` only moves their packets, timers and actions.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod auth;
mod error;
mod identity;
mod membership;
mod metrics;
mod swim;
mod view;

use std::net::SocketAddr;
use std::sync::Arc;

use dockline_model::{LiveMembers, Published, Snapshot};
use tokio_util::sync::CancellationToken;

pub use auth::{Auth, Rejected, WINDOW as REPLAY_WINDOW};
pub use error::ClusterError;
pub use identity::NodeId;
pub use membership::JOIN_WINDOW;
pub use metrics::describe as describe_metrics;

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
    /// `published`.
    pub async fn bind(
        snapshot: &Snapshot,
        published: Arc<Published>,
        members: Arc<LiveMembers>,
    ) -> Result<Self, ClusterError> {
        let gossip = swim::Gossip::bind(snapshot, published, members).await?;
        Ok(Cluster { gossip })
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
