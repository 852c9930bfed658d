//! The L2 announcer: answers ARP requests (IPv4) and neighbour solicitations (IPv6) for the
//! VIPs this node owns, on `l2.interfaces` only, and announces a VIP with gratuitous ARPs /
//! unsolicited advertisements when it takes it over. Ownership ([`owner`]) follows the
//! live member set, endpoint health and the snapshot; a node that loses a VIP stops
//! answering for it with the next frame.
//!
//! The codecs ([`arp`], [`ndp`]) and the ownership rule are sans-IO; [`socket`] is the thin
//! AF_PACKET driver and [`announcer`] the one task that owns the state.

mod announcer;
pub mod arp;
pub mod frame;
pub mod ndp;
pub mod owner;
mod socket;
mod sysctl;

use std::path::PathBuf;
use std::sync::Arc;

use dockline_config::{Announce, Config};
use dockline_model::{LiveHealth, LiveMembers, LiveOwners, Published, Snapshot};
use tokio_util::sync::CancellationToken;

pub use frame::{Ignored, Mac};
pub use socket::{PacketSocket, interface};

const REQUESTS: &str = "dockline_l2_requests_received_total";
const RESPONSES: &str = "dockline_l2_responses_sent_total";
const GRATUITOUS: &str = "dockline_l2_gratuitous_sent_total";
const OWNED: &str = "dockline_vip_owned";
const IGNORED: &str = "dockline_l2_frames_ignored_total";

#[derive(Debug, thiserror::Error)]
pub enum L2Error {
    #[error("l2: interface {0}: {1}")]
    Interface(String, std::io::Error),
    #[error("l2: cannot open a packet socket on {0}: {1}")]
    Socket(String, std::io::Error),
    #[error("l2: cannot set {}: {error}", path.display())]
    Sysctl {
        path: PathBuf,
        error: std::io::Error,
    },
}

pub fn describe_metrics() {
    metrics::describe_counter!(
        REQUESTS,
        "ARP requests and neighbour solicitations received for a VIP, by VIP"
    );
    metrics::describe_counter!(
        RESPONSES,
        "ARP replies and neighbour advertisements sent, by VIP"
    );
    metrics::describe_counter!(
        GRATUITOUS,
        "Gratuitous ARPs and unsolicited neighbour advertisements sent, by VIP"
    );
    metrics::describe_gauge!(OWNED, "1 while this node owns (answers for) the VIP");
    metrics::describe_counter!(
        IGNORED,
        "ARP/IPv6 frames received and not answered, by reason (truncated, foreign, \
         not_request, malformed)"
    );
    for reason in [
        Ignored::Truncated,
        Ignored::Foreign,
        Ignored::NotRequest,
        Ignored::Malformed,
    ] {
        metrics::counter!(IGNORED, "reason" => reason.label()).absolute(0);
    }
}

/// L2 announcing is on when there are interfaces and some pool announces "l2".
pub fn enabled(config: &Config) -> bool {
    !config.l2.interfaces.is_empty()
        && config
            .pools
            .iter()
            .any(|p| p.announce.contains(&Announce::L2))
}

/// The live inputs the announcer reads and the one it writes.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub published: Arc<Published>,
    pub health: Arc<LiveHealth>,
    pub members: Arc<LiveMembers>,
    pub owners: Arc<LiveOwners>,
}

/// One announce interface.
#[derive(Debug)]
struct Link {
    name: String,
    mac: Mac,
    arp: PacketSocket,
    solicitations: PacketSocket,
}

/// The announcer with its sockets open and the host prepared.
#[derive(Debug)]
pub struct L2 {
    links: Vec<Link>,
    host: sysctl::HostChanges,
    inputs: Inputs,
}

impl L2 {
    /// Opens the packet sockets on every `l2.interfaces` entry of `snapshot` (the one about
    /// to be published) and sets the ARP sysctls. A change of the interfaces needs a new
    /// announcer; everything else is followed from `inputs`.
    pub fn bind(snapshot: &Snapshot, inputs: Inputs) -> Result<Self, L2Error> {
        let interfaces = snapshot.config.l2.interfaces.clone();
        let mut links = Vec::new();
        for name in &interfaces {
            let (index, mac) = interface(name).map_err(|e| L2Error::Interface(name.clone(), e))?;
            let socket =
                |r: std::io::Result<PacketSocket>| r.map_err(|e| L2Error::Socket(name.clone(), e));
            links.push(Link {
                name: name.clone(),
                mac,
                arp: socket(PacketSocket::arp(index))?,
                solicitations: socket(PacketSocket::solicitations(index))?,
            });
        }
        let host = sysctl::HostChanges::apply(&interfaces)
            .map_err(|(path, error)| L2Error::Sysctl { path, error })?;
        Ok(L2 {
            links,
            host,
            inputs,
        })
    }

    /// Answers and announces until `shutdown`; the sysctls are restored on return.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), L2Error> {
        let L2 {
            links,
            host,
            inputs,
        } = self;
        announcer::run(links, inputs, shutdown).await;
        drop(host);
        Ok(())
    }
}
