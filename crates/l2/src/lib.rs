//! The L2 announcer: answers ARP requests (IPv4) and neighbour solicitations (IPv6) for the
//! VIPs this node owns, on `l2.interfaces` only (the kernel answers none: the routes
//! component sets strict ARP, and a local route gets no neighbour advertisement), and announces a VIP with gratuitous ARPs /
//! unsolicited advertisements when it takes it over. Ownership ([`owner`]) follows the
//! live member set, endpoint health and the snapshot; a node that loses a VIP stops
//! answering for it with the next frame.
//!
//! The codecs ([`arp`], [`ndp`]), the ownership rule and the speaker (what to answer and
//! announce, and when) are sans-IO; the socket module is the thin AF_PACKET driver and the
//! announcer the one task that owns the state.

#![warn(missing_docs, unreachable_pub)]

mod announcer;
pub mod arp;
mod error;
pub mod frame;
mod link;
mod metrics;
pub mod ndp;
pub mod owner;
mod socket;
mod speaker;
mod sysctl;
#[cfg(test)]
mod testing;
mod throttle;

use dockline_config::{Announce, Config};
use dockline_model::Snapshot;
use tokio_util::sync::CancellationToken;

pub use self::metrics::describe_metrics;
pub use announcer::Inputs;
pub use error::L2Error;
pub use frame::{Ignored, Mac};
pub use socket::{PacketSocket, interface};

use link::Link;

/// L2 announcing is on when there are interfaces and some pool announces "l2".
pub fn enabled(config: &Config) -> bool {
    !config.l2.interfaces.is_empty()
        && config
            .pools
            .iter()
            .any(|p| p.announce.contains(&Announce::L2))
}

/// The announcer with its sockets open and the host prepared.
#[derive(Debug)]
pub struct L2 {
    links: Vec<Link>,
    host: dockline_routes::sysctl::Sysctls,
    inputs: Inputs,
}

impl L2 {
    /// Opens the packet sockets on every `l2.interfaces` entry of `snapshot` (the one about
    /// to be published) and sets the ARP sysctls. A change of the interfaces needs a new
    /// announcer; everything else is followed from `inputs`.
    pub fn bind(snapshot: &Snapshot, inputs: Inputs) -> Result<Self, L2Error> {
        let interfaces = &snapshot.config.l2.interfaces;
        let links = interfaces
            .iter()
            .map(|name| Link::bind(name))
            .collect::<Result<Vec<_>, _>>()?;
        let host =
            sysctl::apply(interfaces).map_err(|(path, error)| L2Error::Sysctl { path, error })?;
        Ok(L2 {
            links,
            host,
            inputs,
        })
    }

    /// Answers and announces until `shutdown`. On return every socket is closed and the
    /// sysctls are restored, so the daemon can stop and bind a new announcer live.
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
