//! The cluster's metrics: the member gauges, set with every published member set, and the
//! count of gossip packets dropped.

use dockline_model::{MemberSet, MemberState};

const MEMBERS: &str = "dockline_members";
const DIGEST_MISMATCH: &str = "dockline_config_digest_mismatch";
const REJECTED: &str = "dockline_gossip_packets_rejected_total";

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
