//! The cluster's metrics: the member gauges, set with every published member set, and the
//! count of gossip packets dropped.

use dockline_model::{MemberSet, MemberState};

const MEMBERS: &str = "dockline_members";
const DIGEST_MISMATCH: &str = "dockline_config_digest_mismatch";
const REJECTED: &str = "dockline_gossip_packets_rejected_total";
const BYTES: &str = "dockline_gossip_bytes_total";
const LAST_CHANGE: &str = "dockline_membership_last_change_timestamp_seconds";

/// Which way gossip bytes went: the `direction` label of the byte counter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Direction {
    Sent,
    Received,
}

impl Direction {
    fn label(self) -> &'static str {
        match self {
            Direction::Sent => "sent",
            Direction::Received => "received",
        }
    }
}

/// Why a gossip packet was dropped: the `reason` label of the rejection counter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rejection {
    /// No valid HMAC.
    Auth,
    /// Authentic but sent outside the replay window, or seen before.
    Replay,
    /// foca could not decode it, or it was not for this node.
    Invalid,
}

impl Rejection {
    fn label(self) -> &'static str {
        match self {
            Rejection::Auth => "auth",
            Rejection::Replay => "replay",
            Rejection::Invalid => "invalid",
        }
    }
}

/// Describes the cluster's metrics and starts the rejection counters at zero.
pub fn describe() {
    metrics::describe_gauge!(MEMBERS, "Cluster members by SWIM state, this node included");
    metrics::describe_gauge!(
        DIGEST_MISMATCH,
        "1 while any live member gossips a shared config digest other than ours"
    );
    metrics::describe_counter!(
        REJECTED,
        "Gossip packets dropped, by reason (auth: no valid HMAC; replay: sent outside the \
         replay window or seen before; invalid: foca could not decode it or it was not for \
         this node)"
    );
    for reason in [Rejection::Auth, Rejection::Replay, Rejection::Invalid] {
        metrics::counter!(REJECTED, "reason" => reason.label()).absolute(0);
    }
    metrics::describe_counter!(
        BYTES,
        metrics::Unit::Bytes,
        "Gossip bytes (whole UDP payloads, authentication included) sent and received"
    );
    for direction in [Direction::Sent, Direction::Received] {
        metrics::counter!(BYTES, "direction" => direction.label()).absolute(0);
    }
    metrics::describe_gauge!(
        LAST_CHANGE,
        metrics::Unit::Seconds,
        "When a member last came, went or changed between live and down (seconds since \
         the epoch); 0 before the first change"
    );
    metrics::gauge!(LAST_CHANGE).set(0.0);
}

/// Counts gossip bytes of one datagram.
pub(crate) fn count_bytes(direction: Direction, bytes: usize) {
    metrics::counter!(BYTES, "direction" => direction.label()).increment(bytes as u64);
}

/// Stamps a membership change at `unix_ms`.
pub(crate) fn record_change(unix_ms: u64) {
    metrics::gauge!(LAST_CHANGE).set(unix_ms as f64 / 1000.0);
}

/// Sets the member gauges from `set`; `ours` is this node's shared config digest.
pub(crate) fn record_member_set(set: &MemberSet, ours: &str) {
    for state in [MemberState::Alive, MemberState::Suspect, MemberState::Down] {
        let n = set.members.iter().filter(|m| m.state == state).count();
        metrics::gauge!(MEMBERS, "state" => state.name()).set(n as f64);
    }
    let split = set.digest_mismatch(ours);
    metrics::gauge!(DIGEST_MISMATCH).set(if split { 1.0 } else { 0.0 });
}

/// Counts one dropped gossip packet.
pub(crate) fn count_rejected(reason: Rejection) {
    metrics::counter!(REJECTED, "reason" => reason.label()).increment(1);
}
