//! What `/status` shows of each session: the peer tasks write their line, and every change
//! is handed whole to the daemon's runtime record, which the admin API reads.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use dockline_admin::{BgpPeerRecord, Runtime};

/// The sessions' lines, shared by the peer tasks.
#[derive(Debug)]
pub(crate) struct StatusBoard {
    /// Each line with the generation of the task that wrote it.
    peers: Mutex<BTreeMap<IpAddr, (u64, BgpPeerRecord)>>,
    runtime: Arc<Runtime>,
}

impl StatusBoard {
    pub(crate) fn new(runtime: Arc<Runtime>) -> Self {
        StatusBoard {
            peers: Mutex::new(BTreeMap::new()),
            runtime,
        }
    }

    pub(crate) fn set(&self, generation: u64, status: BgpPeerRecord) {
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

    fn change(&self, change: impl FnOnce(&mut BTreeMap<IpAddr, (u64, BgpPeerRecord)>)) {
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut peers);
        let lines = peers.values().map(|(_, status)| status.clone()).collect();
        self.runtime.set_bgp_peers(lines);
    }
}
