//! The pod network's metrics, with a handle per series so the data path formats no labels.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{Counter, Gauge};

use crate::vxlan::DropReason;

const RX_PACKETS: &str = "dockline_vxlan_rx_packets_total";
const RX_BYTES: &str = "dockline_vxlan_rx_bytes_total";
const TX_PACKETS: &str = "dockline_vxlan_tx_packets_total";
const TX_BYTES: &str = "dockline_vxlan_tx_bytes_total";
const DROPS: &str = "dockline_vxlan_drops_total";
const FDB_ENTRIES: &str = "dockline_vxlan_fdb_entries";
const POD_ROUTES: &str = "dockline_pod_routes";
const ROUTE_ERRORS: &str = "dockline_pod_route_errors_total";

/// Describes the component's metrics; called once at start-up.
pub fn describe_metrics() {
    metrics::describe_counter!(
        RX_PACKETS,
        "VXLAN packets received and delivered to the device"
    );
    metrics::describe_counter!(
        RX_BYTES,
        "Bytes of VXLAN payload (header and frame) delivered"
    );
    metrics::describe_counter!(TX_PACKETS, "VXLAN packets sent, one per destination VTEP");
    metrics::describe_counter!(TX_BYTES, "Bytes of VXLAN payload (header and frame) sent");
    metrics::describe_counter!(DROPS, "Received VXLAN packets dropped, by reason");
    metrics::describe_gauge!(FDB_ENTRIES, "Entries of the VXLAN forwarding table");
    metrics::describe_gauge!(POD_ROUTES, "Routes to other nodes' pod ranges, by mode");
    metrics::describe_counter!(ROUTE_ERRORS, "Pod route changes the kernel refused");
}

/// The data path's counters, and the drops also kept as numbers for `/status`. Clones
/// count into the same series (each data path thread has one).
#[derive(Debug, Clone)]
pub(crate) struct Counters {
    rx_packets: Counter,
    rx_bytes: Counter,
    tx_packets: Counter,
    tx_bytes: Counter,
    drops: [Counter; DropReason::ALL.len()],
    drop_counts: Arc<[AtomicU64; DropReason::ALL.len()]>,
}

impl Counters {
    pub(crate) fn new() -> Self {
        Counters {
            rx_packets: metrics::counter!(RX_PACKETS),
            rx_bytes: metrics::counter!(RX_BYTES),
            tx_packets: metrics::counter!(TX_PACKETS),
            tx_bytes: metrics::counter!(TX_BYTES),
            drops: DropReason::ALL
                .map(|reason| metrics::counter!(DROPS, "reason" => reason.name())),
            drop_counts: Arc::new(DropReason::ALL.map(|_| AtomicU64::new(0))),
        }
    }

    /// Packets delivered, with their bytes of VXLAN header and frame.
    pub(crate) fn received(&self, packets: usize, bytes: usize) {
        self.rx_packets.increment(packets as u64);
        self.rx_bytes.increment(bytes as u64);
    }

    /// Datagrams sent, with their bytes of UDP header, VXLAN header and frame.
    pub(crate) fn transmitted(&self, packets: usize, bytes: usize) {
        self.tx_packets.increment(packets as u64);
        self.tx_bytes.increment(bytes as u64);
    }

    pub(crate) fn dropped(&self, reason: DropReason, from: IpAddr) {
        let at = reason as usize;
        self.drops[at].increment(1);
        self.drop_counts[at].fetch_add(1, Ordering::Relaxed);
        tracing::trace!(%from, reason = reason.name(), "VXLAN packet dropped");
    }

    /// Drops so far, in the order of [`DropReason::ALL`].
    pub(crate) fn drop_counts(&self) -> [u64; DropReason::ALL.len()] {
        std::array::from_fn(|at| self.drop_counts[at].load(Ordering::Relaxed))
    }
}

/// Sets the forwarding table's size.
pub(crate) fn fdb_entries(count: usize) {
    metrics::gauge!(FDB_ENTRIES).set(count as f64);
}

/// The pod-route gauge of `mode` ("Classic" or "VXLAN").
pub(crate) fn pod_routes(mode: &'static str) -> Gauge {
    metrics::gauge!(POD_ROUTES, "mode" => mode)
}

/// Counts route changes the kernel refused.
pub(crate) fn route_errors(count: usize) {
    metrics::counter!(ROUTE_ERRORS).increment(count as u64);
}
