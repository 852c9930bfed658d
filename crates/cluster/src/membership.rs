//! This node's side of membership, without I/O: the identity it gossips and whom it
//! announces that identity to. foca runs SWIM itself; this decides what foca cannot know:
//!
//! - A config that gives the node another name, internal IP or shared config digest gives
//!   it a new identity (the old one with its `bump` raised by one), since foca spreads
//!   identities, not configs.
//! - With a new identity comes an announce to every live member and every seed. Peers drop
//!   messages addressed to an identity they no longer know, so when one config reaches
//!   every node at once, none would learn the others' new identities until probes time out;
//!   an announce is accepted by address, whatever identity the receiver has now.
//! - Every [`REJOIN`], the seeds and static nodes that are not live members are announced
//!   to again: a node that started alone finds its peers when they come up, and two halves
//!   of a split cluster find each other again. A node with no live member at all retries
//!   every [`JOIN_RETRY`], so one lost packet does not keep it out for a whole second.
//!
//! The caller passes `now` and foca's live members, carries out each [`Action`] from
//! [`Membership::poll_action`], and calls [`Membership::handle_timeout`] at
//! [`Membership::poll_timeout`].

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use dockline_model::Snapshot;

use crate::identity::NodeId;

/// How often seeds that are not (or no longer) members are announced to again.
pub(crate) const REJOIN: Duration = Duration::from_secs(1);

/// How often a node with no live member announces itself to its join targets.
pub(crate) const JOIN_RETRY: Duration = Duration::from_millis(200);

/// How long static peers not yet heard from count as live after the start.
pub const JOIN_WINDOW: Duration = Duration::from_secs(3);

/// What the config says about this node's membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MembershipConfig {
    /// `node.name`.
    pub(crate) name: String,
    /// `node.internal_ip`.
    pub(crate) internal_ip: IpAddr,
    /// The snapshot's shared config digest.
    pub(crate) shared_digest: String,
    /// The snapshot's etcd revision.
    pub(crate) config_revision: Option<i64>,
    /// `l2.interfaces` is not empty.
    pub(crate) announces_l2: bool,
    /// `cluster.gossip.seeds`.
    pub(crate) seeds: Vec<SocketAddr>,
    /// The internal IPs of `network.nodes`, reached at our own gossip port.
    pub(crate) static_nodes: Vec<IpAddr>,
}

impl MembershipConfig {
    /// The membership part of `snapshot`.
    pub(crate) fn from_snapshot(snapshot: &Snapshot) -> Self {
        let config = &snapshot.config;
        MembershipConfig {
            name: snapshot.node.name.clone(),
            internal_ip: snapshot.node.internal_ip,
            shared_digest: snapshot.shared_digest.clone(),
            config_revision: snapshot.config_revision,
            announces_l2: !config.l2.interfaces.is_empty(),
            seeds: config.cluster.gossip.seeds.clone(),
            static_nodes: config.network.nodes.iter().map(|n| n.internal_ip).collect(),
        }
    }
}

/// What the membership core asks foca to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Gossip this identity from now on (`Foca::change_identity`).
    ChangeIdentity(NodeId),
    /// Ask whoever listens at this address to let us in (`Foca::announce`).
    Announce(SocketAddr),
}

/// This node's identity and its joining schedule.
#[derive(Debug)]
pub(crate) struct Membership {
    me: NodeId,
    /// The seeds and static nodes, without our own address, sorted and deduplicated.
    join_targets: Vec<SocketAddr>,
    started: Instant,
    next_rejoin: Instant,
    actions: VecDeque<Action>,
}

impl Membership {
    /// A node listening on `addr` with the identity `config` describes. `bump` must order
    /// this start after any earlier one of the node (seconds since the epoch do). The first
    /// rejoin is due at once.
    pub(crate) fn new(
        config: &MembershipConfig,
        addr: SocketAddr,
        bump: u64,
        now: Instant,
    ) -> Self {
        Membership {
            me: NodeId {
                name: config.name.clone(),
                addr,
                internal_ip: config.internal_ip,
                shared_digest: config.shared_digest.clone(),
                config_revision: config.config_revision,
                announces_l2: config.announces_l2,
                bump,
            },
            join_targets: join_targets(config, addr),
            started: now,
            next_rejoin: now,
            actions: VecDeque::new(),
        }
    }

    /// The identity this node gossips.
    pub(crate) fn me(&self) -> &NodeId {
        &self.me
    }

    /// The addresses announced to when joining: seeds and static nodes but not ourselves.
    pub(crate) fn join_targets(&self) -> &[SocketAddr] {
        &self.join_targets
    }

    /// Whether the node is still in its [`JOIN_WINDOW`], when static peers not yet heard
    /// from count as suspect rather than down.
    pub(crate) fn joining(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.started) < JOIN_WINDOW
    }

    /// Follows a new config. If it changes the identity, asks for the change and for an
    /// announce to every one of `members` and every seed. `members` are foca's live members
    /// before the change, since changing identity makes foca forget them.
    pub(crate) fn on_config(
        &mut self,
        config: &MembershipConfig,
        members: impl IntoIterator<Item = SocketAddr>,
    ) {
        self.join_targets = join_targets(config, self.me.addr);
        let unchanged = self.me.name == config.name
            && self.me.internal_ip == config.internal_ip
            && self.me.shared_digest == config.shared_digest
            && self.me.config_revision == config.config_revision
            && self.me.announces_l2 == config.announces_l2;
        if unchanged {
            return;
        }
        self.me = NodeId {
            name: config.name.clone(),
            addr: self.me.addr,
            internal_ip: config.internal_ip,
            shared_digest: config.shared_digest.clone(),
            config_revision: config.config_revision,
            announces_l2: config.announces_l2,
            bump: self.me.bump + 1,
        };
        self.actions
            .push_back(Action::ChangeIdentity(self.me.clone()));
        let mut peers: Vec<SocketAddr> = members
            .into_iter()
            .chain(self.join_targets.iter().copied())
            .filter(|peer| *peer != self.me.addr)
            .collect();
        peers.sort();
        peers.dedup();
        self.actions.extend(peers.into_iter().map(Action::Announce));
    }

    /// Takes the identity foca renewed itself to after the cluster declared this node down
    /// (the same fields, a greater `bump`), so that the next change starts from it.
    pub(crate) fn renewed(&mut self, id: NodeId) {
        if id.bump > self.me.bump {
            self.me = id;
        }
    }

    /// When [`Membership::handle_timeout`] has something to do next.
    pub(crate) fn poll_timeout(&self) -> Instant {
        self.next_rejoin
    }

    /// At a due rejoin, asks for an announce to each join target that is not one of
    /// `members` (foca's live members); the next is due a [`REJOIN`] later, or a
    /// [`JOIN_RETRY`] later while `members` is empty.
    pub(crate) fn handle_timeout(
        &mut self,
        now: Instant,
        members: impl IntoIterator<Item = SocketAddr>,
    ) {
        if now < self.next_rejoin {
            return;
        }
        let members: Vec<SocketAddr> = members.into_iter().collect();
        let interval = if members.is_empty() {
            JOIN_RETRY
        } else {
            REJOIN
        };
        let missing = self
            .join_targets
            .iter()
            .filter(|target| !members.contains(target));
        self.actions.extend(missing.copied().map(Action::Announce));
        // A steady beat from the first rejoin; after a stall, one beat from now rather
        // than a burst of catch-up announces.
        self.next_rejoin += interval;
        if self.next_rejoin <= now {
            self.next_rejoin = now + interval;
        }
    }

    /// The next thing to do, oldest first.
    pub(crate) fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }
}

/// The seeds and the static nodes at our gossip port, without our own address (seeds may
/// list the node itself, so one seed list serves every node).
fn join_targets(config: &MembershipConfig, addr: SocketAddr) -> Vec<SocketAddr> {
    let statics = config
        .static_nodes
        .iter()
        .map(|ip| SocketAddr::new(*ip, addr.port()));
    let mut targets: Vec<SocketAddr> = config.seeds.iter().copied().chain(statics).collect();
    targets.retain(|target| *target != addr);
    targets.sort();
    targets.dedup();
    targets
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "10.0.0.1:7946";

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    /// Node `a` at 10.0.0.1 with seeds 10.0.0.1 (itself) and 10.0.0.2, and a static node
    /// 10.0.0.3.
    fn config(digest: &str) -> MembershipConfig {
        MembershipConfig {
            name: "a".into(),
            internal_ip: "10.0.0.1".parse().unwrap(),
            shared_digest: digest.into(),
            config_revision: None,
            announces_l2: true,
            seeds: vec![addr(ME), addr("10.0.0.2:7946")],
            static_nodes: vec!["10.0.0.3".parse().unwrap()],
        }
    }

    fn actions(membership: &mut Membership) -> Vec<Action> {
        std::iter::from_fn(|| membership.poll_action()).collect()
    }

    fn announces(targets: &[&str]) -> Vec<Action> {
        targets.iter().map(|t| Action::Announce(addr(t))).collect()
    }

    /// A membership whose first rejoin (due at the start) is done.
    fn started(start: Instant) -> Membership {
        let mut membership = Membership::new(&config("d1"), addr(ME), 100, start);
        membership.handle_timeout(start, []);
        actions(&mut membership);
        membership
    }

    #[test]
    fn a_new_shared_digest_bumps_the_identity_once_and_announces_to_every_member_and_seed() {
        let mut membership = started(Instant::now());
        let members = [addr("10.0.0.9:7946"), addr("10.0.0.2:7946")];
        membership.on_config(&config("d2"), members);

        let me = membership.me().clone();
        assert_eq!((me.shared_digest.as_str(), me.bump), ("d2", 101));
        let mut expected = vec![Action::ChangeIdentity(me.clone())];
        expected.extend(announces(&[
            "10.0.0.2:7946",
            "10.0.0.3:7946",
            "10.0.0.9:7946",
        ]));
        assert_eq!(actions(&mut membership), expected);

        membership.on_config(&config("d2"), members);
        assert_eq!(membership.me(), &me, "the same config again is no change");
        assert_eq!(actions(&mut membership), []);
    }

    #[test]
    fn a_new_name_or_internal_ip_is_a_new_identity_too() {
        let mut membership = started(Instant::now());
        let renamed = MembershipConfig {
            name: "b".into(),
            ..config("d1")
        };
        membership.on_config(&renamed, []);
        assert_eq!(
            (membership.me().name.as_str(), membership.me().bump),
            ("b", 101)
        );

        let moved = MembershipConfig {
            internal_ip: "10.0.1.1".parse().unwrap(),
            ..renamed
        };
        membership.on_config(&moved, []);
        assert_eq!(membership.me().internal_ip, moved.internal_ip);
        assert_eq!(membership.me().bump, 102);
    }

    #[test]
    fn an_unchanged_config_keeps_the_identity_and_announces_nothing() {
        let mut membership = started(Instant::now());
        let before = membership.me().clone();
        membership.on_config(&config("d1"), [addr("10.0.0.2:7946")]);
        assert_eq!(membership.me(), &before);
        assert_eq!(actions(&mut membership), []);
    }

    #[test]
    fn a_node_alone_retries_its_seeds_every_join_retry_and_not_before() {
        let start = Instant::now();
        let mut membership = Membership::new(&config("d1"), addr(ME), 100, start);
        let seeds = announces(&["10.0.0.2:7946", "10.0.0.3:7946"]);

        assert_eq!(
            membership.poll_timeout(),
            start,
            "the first rejoin is at the start"
        );
        membership.handle_timeout(start, []);
        assert_eq!(actions(&mut membership), seeds);

        assert_eq!(membership.poll_timeout(), start + JOIN_RETRY);
        membership.handle_timeout(start + JOIN_RETRY - Duration::from_millis(1), []);
        assert_eq!(actions(&mut membership), [], "not before the interval");
        membership.handle_timeout(start + JOIN_RETRY, []);
        assert_eq!(actions(&mut membership), seeds);
        assert_eq!(membership.poll_timeout(), start + 2 * JOIN_RETRY);
    }

    #[test]
    fn a_node_with_members_rejoins_missing_seeds_every_rejoin_interval() {
        let start = Instant::now();
        let mut membership = Membership::new(&config("d1"), addr(ME), 100, start);
        let some = [addr("10.0.0.9:7946")];
        membership.handle_timeout(start, some);
        assert_eq!(actions(&mut membership).len(), 2);
        assert_eq!(membership.poll_timeout(), start + REJOIN);
    }

    #[test]
    fn a_node_whose_seeds_are_live_members_does_not_rejoin() {
        let start = Instant::now();
        let mut membership = started(start);
        let members = [
            addr("10.0.0.2:7946"),
            addr("10.0.0.3:7946"),
            addr("10.0.0.4:7946"),
        ];
        membership.handle_timeout(start + REJOIN, members);
        assert_eq!(actions(&mut membership), []);
    }

    #[test]
    fn a_seed_that_is_not_a_live_member_is_announced_to_even_with_other_members_live() {
        let start = Instant::now();
        let mut membership = started(start);
        membership.handle_timeout(start + REJOIN, [addr("10.0.0.2:7946")]);
        assert_eq!(actions(&mut membership), announces(&["10.0.0.3:7946"]));
    }

    #[test]
    fn seeds_and_static_nodes_at_our_own_listen_address_are_skipped() {
        let start = Instant::now();
        let ours = MembershipConfig {
            // Our own address twice: as a seed and as a static node at our port.
            static_nodes: vec!["10.0.0.1".parse().unwrap(), "10.0.0.3".parse().unwrap()],
            ..config("d1")
        };
        let mut membership = Membership::new(&ours, addr(ME), 100, start);
        let others = announces(&["10.0.0.2:7946", "10.0.0.3:7946"]);
        membership.handle_timeout(start, []);
        assert_eq!(actions(&mut membership), others);

        membership.on_config(&config("d2"), [addr("10.0.0.3:7946")]);
        let mut expected = vec![Action::ChangeIdentity(membership.me().clone())];
        expected.extend(others);
        assert_eq!(actions(&mut membership), expected);
    }

    #[test]
    fn a_rejoin_after_a_stall_is_followed_by_one_interval_not_a_burst() {
        let start = Instant::now();
        let mut membership = started(start);
        let late = start + 5 * REJOIN + Duration::from_millis(300);
        membership.handle_timeout(late, []);
        assert_eq!(actions(&mut membership).len(), 2);
        assert_eq!(membership.poll_timeout(), late + JOIN_RETRY);
    }

    #[test]
    fn static_peers_count_as_joining_for_the_join_window_from_the_start() {
        let start = Instant::now();
        let membership = Membership::new(&config("d1"), addr(ME), 100, start);
        assert!(membership.joining(start + JOIN_WINDOW - Duration::from_millis(1)));
        assert!(!membership.joining(start + JOIN_WINDOW));
    }
}
