//! The BGP LoadBalancer announcer: every node advertises the LoadBalancer IPs it can serve
//! to the routers of `[[bgp.peers]]`, as /32 and /128 routes (or pool aggregates) with
//! itself as next hop, so the fabric spreads traffic over the nodes by ECMP and stops
//! sending to a node that withdraws.
//!
//! The protocol is sans-IO: [`message`] frames and codes messages (through
//! netgauze-bgp-pkt), [`session`] is the RFC 4271 state machine, [`advertise`] decides
//! what each router should have and the minimal UPDATEs to get it there. The speaker task
//! follows the snapshot and endpoint health; one task per router drives its session over
//! TCP (with TCP-MD5 and TTL from [`socket`]).

#![warn(missing_docs, unreachable_pub)]

pub mod advertise;
pub mod bfd;
pub mod budget;
mod error;
pub mod message;
mod metrics;
mod peer;
pub mod session;
pub mod socket;
mod speaker;
mod status;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use dockline_admin::Runtime;
use dockline_config::Config;
use dockline_model::{LiveHealth, Published, Snapshot};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

pub use self::metrics::describe_metrics;
pub use error::BgpError;

use status::StatusBoard;

/// BGP is on when `bgp.asn` is set and there is a router to talk to.
pub fn enabled(config: &Config) -> bool {
    config.bgp.asn.is_some() && !config.bgp.peers.is_empty()
}

/// What every session shares and the speaker cannot change live (the AS number, the
/// router ID, which address families have BFD sockets): a change restarts the speaker
/// (and so every session). Peer settings are followed per session instead.
pub fn restart_key(config: &Config) -> String {
    // The BFD sockets are opened per address family at bind.
    let bfd = |ipv6: bool| {
        config
            .bgp
            .peers
            .iter()
            .any(|peer| peer.bfd == Some(true) && peer.address.is_ipv6() == ipv6)
    };
    format!(
        "{:?} {:?} bfd {} {}",
        config.bgp.asn,
        config.bgp.router_id,
        bfd(false),
        bfd(true)
    )
}

/// The live inputs the speaker follows.
#[derive(Debug)]
pub struct Inputs {
    /// The snapshot in force.
    pub published: Arc<Published>,
    /// Endpoint health, for the Local policy.
    pub health: Arc<LiveHealth>,
    /// Where the sessions' status lines go, for `/status`.
    pub runtime: Arc<Runtime>,
}

/// The speaker with its listeners open.
#[derive(Debug)]
pub struct Bgp {
    snapshot: Arc<Snapshot>,
    listeners: Vec<Arc<TcpListener>>,
    bfd_sockets: Vec<UdpSocket>,
    published: Arc<Published>,
    health: Arc<LiveHealth>,
    board: Arc<StatusBoard>,
}

impl Bgp {
    /// Reads the peers' password files and opens the port-179 listeners for `snapshot`
    /// (the one about to be published); the error names the file or address.
    pub fn bind(snapshot: Arc<Snapshot>, inputs: Inputs) -> Result<Self, BgpError> {
        let peers: HashMap<IpAddr, _> = speaker::peer_configs(&snapshot.config)?;
        let listeners = speaker::listen(&peers)?;
        let bfd_sockets = speaker::bfd_listen(&peers)?;
        Ok(Bgp {
            snapshot,
            listeners,
            bfd_sockets,
            published: inputs.published,
            health: inputs.health,
            board: Arc::new(StatusBoard::new(inputs.runtime)),
        })
    }

    /// Keeps the sessions and their routes until `shutdown`; then every session withdraws
    /// its routes and sends a Cease before this returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), BgpError> {
        speaker::run(
            self.snapshot,
            self.listeners,
            self.bfd_sockets,
            self.published,
            self.health,
            self.board,
            shutdown,
        )
        .await;
        Ok(())
    }
}
