//! What `/status` shows of each session: the peer tasks write their line, and every change
//! is handed whole to the daemon's callback, so the admin side never reaches into a task.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

/// One session, as `/status` and `dockline status` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// The router's address.
    pub address: IpAddr,
    /// The router's AS number.
    pub asn: u32,
    /// The RFC 4271 state name (`Established`, `Active`, ...).
    pub state: String,
    /// When the session came up, while it is established.
    pub established_at: Option<SystemTime>,
    /// Why the session last failed or went down.
    pub last_error: Option<String>,
    /// Prefixes the router has from this node.
    pub prefixes_sent: usize,
    /// UPDATE messages sent on this session since the speaker started.
    pub updates_sent: u64,
}

/// Receives every session's line, sorted by address, each time one changes.
pub type Report = Box<dyn Fn(Vec<PeerStatus>) + Send + Sync>;

/// The sessions' lines, shared by the peer tasks.
pub(crate) struct StatusBoard {
    /// Each line with the generation of the task that wrote it.
    peers: Mutex<BTreeMap<IpAddr, (u64, PeerStatus)>>,
    report: Report,
}

impl std::fmt::Debug for StatusBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusBoard").finish_non_exhaustive()
    }
}

impl StatusBoard {
    pub(crate) fn new(report: Report) -> Self {
        StatusBoard {
            peers: Mutex::new(BTreeMap::new()),
            report,
        }
    }

    pub(crate) fn set(&self, generation: u64, status: PeerStatus) {
        self.change(|peers| {
            peers.insert(status.address, (generation, status));
        });
    }

    /// Drops the line of `address` unless a newer task (a reset session) wrote it.
    pub(crate) fn remove(&self, address: IpAddr, generation: u64) {
        self.change(|peers| {
            if peers
                .get(&address)
                .is_some_and(|(written, _)| *written == generation)
            {
                peers.remove(&address);
            }
        });
    }

    fn change(&self, change: impl FnOnce(&mut BTreeMap<IpAddr, (u64, PeerStatus)>)) {
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut peers);
        (self.report)(peers.values().map(|(_, status)| status.clone()).collect());
    }
}
