//! The speaker's metrics: names, descriptions, and the handles each session keeps so that
//! counting formats no labels.

use std::net::IpAddr;

use metrics::{Counter, Gauge};

use crate::bfd::Discarded;
use crate::session::Direction;

const SESSION_UP: &str = "dockline_bgp_session_up";
const ANNOUNCED: &str = "dockline_bgp_announced_prefixes";
const UPDATES_SENT: &str = "dockline_bgp_updates_sent_total";
const NOTIFICATIONS: &str = "dockline_bgp_notifications_total";
const BFD_UP: &str = "dockline_bfd_session_up";
const BFD_DISCARDED: &str = "dockline_bfd_discarded_total";

/// Describes the BGP metrics to the recorder.
pub fn describe_metrics() {
    metrics::describe_gauge!(
        SESSION_UP,
        "1 while the BGP session with the peer is established"
    );
    metrics::describe_gauge!(
        ANNOUNCED,
        "Prefixes the peer has from this node (advertised and not withdrawn)"
    );
    metrics::describe_counter!(UPDATES_SENT, "BGP UPDATE messages sent to the peer");
    metrics::describe_gauge!(BFD_UP, "1 while the BFD session with the peer is up");
    metrics::describe_counter!(
        BFD_DISCARDED,
        "BFD control packets dropped, by reason (truncated, invalid, ttl: not sent with TTL 255)"
    );
    metrics::describe_counter!(
        NOTIFICATIONS,
        "BGP NOTIFICATION messages, by peer, direction (sent, received) and error code"
    );
}

/// Counts a BFD control packet dropped before it reached a session.
pub(crate) fn bfd_discarded(reason: Discarded) {
    metrics::counter!(BFD_DISCARDED, "reason" => reason.as_str()).increment(1);
}

/// One session's metric handles.
#[derive(Debug)]
pub(crate) struct PeerMetrics {
    peer: String,
    pub(crate) session_up: Gauge,
    pub(crate) announced: Gauge,
    pub(crate) updates_sent: Counter,
    pub(crate) bfd_up: Gauge,
}

impl PeerMetrics {
    /// The handles for `peer`, the session down and nothing announced.
    pub(crate) fn new(peer: IpAddr) -> Self {
        let peer = peer.to_string();
        let metrics = PeerMetrics {
            session_up: metrics::gauge!(SESSION_UP, "peer" => peer.clone()),
            announced: metrics::gauge!(ANNOUNCED, "peer" => peer.clone()),
            updates_sent: metrics::counter!(UPDATES_SENT, "peer" => peer.clone()),
            bfd_up: metrics::gauge!(BFD_UP, "peer" => peer.clone()),
            peer,
        };
        metrics.session_up.set(0.0);
        metrics.announced.set(0.0);
        metrics
    }

    /// Counts a NOTIFICATION; rare enough to look the handle up each time.
    pub(crate) fn notification(&self, direction: Direction, code: u8) {
        metrics::counter!(
            NOTIFICATIONS,
            "peer" => self.peer.clone(),
            "direction" => direction.as_str(),
            "code" => code.to_string()
        )
        .increment(1);
    }
}
