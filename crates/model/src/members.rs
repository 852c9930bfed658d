//! Live inputs published by the cluster and L2 components: the member set (who is alive,
//! with which shared-config digest) and the owner of every L2-announced VIP.
//!
//! Like [`crate::LiveHealth`], each is swapped whole through `arc-swap` and announced on a
//! `watch`; one component writes it, the others read.

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// A member's SWIM state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// Answers probes.
    Alive,
    /// Missed probes; still counted live until declared down (SWIM's suspicion).
    Suspect,
    /// Declared dead; no longer counted live.
    Down,
}

impl MemberState {
    /// The state's lowercase name: "alive", "suspect" or "down".
    pub fn name(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Down => "down",
        }
    }

    /// Alive or suspect.
    pub fn is_live(self) -> bool {
        self != MemberState::Down
    }
}

/// One node of the cluster, as membership sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The node's name.
    pub name: String,
    /// The node's `internal_ip`.
    pub internal_ip: IpAddr,
    /// What SWIM thinks of it.
    pub state: MemberState,
    /// The member's `Snapshot::shared_digest` as it gossips it.
    pub shared_digest: String,
    /// The member's `Snapshot::config_revision` as it gossips it.
    #[serde(default)]
    pub config_revision: Option<i64>,
    /// Whether the member answers ARP/NDP (its `l2.interfaces` is not empty): only such
    /// members can own L2 VIPs. Peers not heard from yet count as announcing.
    pub announces_l2: bool,
}

/// Every known member, this node included, sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberSet {
    /// Sorted by name.
    pub members: Vec<Member>,
    /// This node is still joining: it has peers to join through, has heard from none of
    /// them, and is inside its join window. It claims no VIP meanwhile, since its view of
    /// the cluster is only itself.
    pub forming: bool,
}

impl MemberSet {
    /// The set of `members`, sorted by name, formed.
    pub fn new(mut members: Vec<Member>) -> Self {
        members.sort_by(|a, b| a.name.cmp(&b.name));
        MemberSet {
            members,
            forming: false,
        }
    }

    /// Names of the members that count as up.
    pub fn live_names(&self) -> impl Iterator<Item = &str> {
        self.members
            .iter()
            .filter(|m| m.state.is_live())
            .map(|m| m.name.as_str())
    }

    /// A live member gossips a shared digest other than `ours` (split config). Members not
    /// heard from yet (empty digest) do not count.
    pub fn digest_mismatch(&self, ours: &str) -> bool {
        self.members
            .iter()
            .any(|m| m.state.is_live() && !m.shared_digest.is_empty() && m.shared_digest != ours)
    }
}

/// The owner of one L2-announced VIP, as this node computes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipOwner {
    /// The VIP.
    pub ip: IpAddr,
    /// `None` when no live node is eligible.
    pub owner: Option<String>,
    /// Whether this node is the owner.
    pub owned_by_me: bool,
    /// Frames heard from another MAC claiming this VIP while this node answered for it (a
    /// gratuitous ARP, an ARP reply or an unsolicited advertisement): a split view.
    #[serde(default)]
    pub conflicts: u64,
    /// The last MAC heard claiming it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict_mac: Option<String>,
}

/// Owners of every L2-announced VIP, sorted by address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VipOwners {
    /// Sorted by address.
    pub vips: Vec<VipOwner>,
}

/// A value one component publishes and others read without locking.
#[derive(Debug)]
pub struct Live<T> {
    current: ArcSwap<T>,
    generation: watch::Sender<u64>,
}

impl<T: Default> Default for Live<T> {
    fn default() -> Self {
        Live::new(T::default())
    }
}

impl<T> Live<T> {
    /// Holds `first` until the first publish.
    pub fn new(first: T) -> Self {
        Live {
            current: ArcSwap::from_pointee(first),
            generation: watch::Sender::new(0),
        }
    }

    /// The value in force now.
    pub fn load(&self) -> Arc<T> {
        self.current.load_full()
    }

    /// A receiver that sees a change after every publish that changed something.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}

impl<T: PartialEq> Live<T> {
    /// Publishes `next` if it differs from the value in force.
    pub fn publish(&self, next: T) {
        if *self.current.load_full() != next {
            self.current.store(Arc::new(next));
            self.generation.send_modify(|g| *g += 1);
        }
    }
}

/// The member set, published by the cluster component.
pub type LiveMembers = Live<MemberSet>;
/// The owners of the L2-announced VIPs, published by the L2 component.
pub type LiveOwners = Live<VipOwners>;

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, state: MemberState, digest: &str) -> Member {
        Member {
            name: name.into(),
            internal_ip: "10.0.0.1".parse().unwrap(),
            state,
            shared_digest: digest.into(),
            config_revision: None,
            announces_l2: true,
        }
    }

    #[test]
    fn down_members_neither_count_live_nor_flag_a_split_config() {
        let set = MemberSet::new(vec![
            member("b", MemberState::Suspect, "d1"),
            member("a", MemberState::Alive, "d1"),
            member("c", MemberState::Down, "d2"),
        ]);
        assert_eq!(set.live_names().collect::<Vec<_>>(), ["a", "b"]);
        assert!(!set.digest_mismatch("d1"));
        assert!(set.digest_mismatch("d2"));
    }

    #[test]
    fn publish_wakes_only_on_change() {
        let live = LiveMembers::default();
        let rx = live.subscribe();
        live.publish(MemberSet::default());
        assert!(!rx.has_changed().unwrap());
        live.publish(MemberSet::new(vec![member("a", MemberState::Alive, "d")]));
        assert!(rx.has_changed().unwrap());
    }
}
