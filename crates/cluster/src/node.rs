//! One node's gossip, without I/O: foca (SWIM), this node's identity and joining
//! ([`Membership`]), anti-entropy ([`crate::sync`]), and dissemination sized to the live
//! member count.
//!
//! The driver passes packets, config changes and `now` in, sends what
//! [`GossipNode::poll_transmit`] hands out and calls [`GossipNode::handle_timeout`] at
//! [`GossipNode::poll_timeout`]. A payload's first byte says whose it is: [`SWIM`] for
//! foca's packets, [`SYNC`] for anti-entropy.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Instant;

use dockline_config::GossipTiming;
use foca::{
    AccumulatingRuntime, Foca, Member, NoCustomBroadcast, OwnedNotification, PostcardCodec, Timer,
};
use rand::rngs::SmallRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{RngExt, SeedableRng};

use crate::identity::NodeId;
use crate::membership::{Action, Membership, MembershipConfig};
use crate::sync::{self, MIN_SYNC_GAP, QUICK_SYNC, STATE_REPLIES_PER_SECOND, SYNC_PERIOD, Sync};

type Swim = Foca<NodeId, PostcardCodec, SmallRng, NoCustomBroadcast>;

/// The first byte of a payload carrying a foca packet.
pub(crate) const SWIM: u8 = 0;
/// The first byte of a payload carrying an anti-entropy message.
pub(crate) const SYNC: u8 = 1;

/// Why a payload was not taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Invalid {
    /// foca refused it (undecodable, or addressed to an identity we no longer have).
    #[error("swim: {0}")]
    Swim(foca::Error),
    /// An anti-entropy payload that does not decode.
    #[error("undecodable sync message")]
    Sync,
    /// Neither kind of payload.
    #[error("unknown payload kind")]
    Kind,
}

/// The fewest members dissemination is sized for. While a cluster forms, each node knows
/// only part of it, and updates spread as if the cluster were that small; the floor keeps
/// them going (a handful more sends per update in a small cluster).
const SIZED_FOR_AT_LEAST: usize = 16;
const INDIRECT: usize = 5;
/// The most nodes a repair compares views with at once.
const REPAIR_TARGETS: usize = 8;

/// foca's settings for `timing` and `members` live nodes (this one included): updates are
/// sent about 4·log10(n+1) times and suspicion lasts the suspect timeout times log10(n)
/// (at least once), memberlist's rules; the periodic gossip, a few times per probe period,
/// reaches more members as the cluster grows.
pub(crate) fn foca_config(timing: &GossipTiming, members: usize) -> foca::Config {
    let members = members.max(SIZED_FOR_AT_LEAST);
    let size = NonZeroU32::new(members as u32).unwrap_or(NonZeroU32::MIN);
    let mut config = foca::Config::new_lan(size);
    config.probe_period = std::time::Duration::from_millis(timing.probe_interval_ms);
    config.probe_rtt = std::time::Duration::from_millis(timing.probe_timeout_ms);
    // memberlist's rule: suspicion grows with log10 of the size, so that a suspect has
    // time to hear of it and refute it before the whole cluster declares it down.
    let scale = (members as f64).log10().max(1.0);
    config.suspect_to_down_after =
        std::time::Duration::from_millis(timing.suspect_timeout_ms).mul_f64(scale);
    config.max_packet_size = NonZeroUsize::new(sync::MAX_PAYLOAD - 1).expect("non-zero");
    config.num_indirect_probes = NonZeroUsize::new(INDIRECT).expect("non-zero");
    // ceil(log2(n)) - 2, at least 3: 3 up to 32 members, 4 at 64, 5 at 128.
    let fan_out = (usize::BITS - members.saturating_sub(1).leading_zeros()).saturating_sub(2);
    config.periodic_gossip = Some(foca::PeriodicParams {
        frequency: std::time::Duration::from_millis((timing.probe_interval_ms / 3).max(5)),
        num_members: NonZeroUsize::new((fan_out as usize).max(3)).expect("non-zero"),
    });
    config
}

/// One node's membership: foca, the identity, the anti-entropy schedule and what to send.
pub(crate) struct GossipNode {
    swim: Swim,
    membership: Membership,
    timing: GossipTiming,
    runtime: AccumulatingRuntime<NodeId>,
    timers: Vec<(Instant, Timer<NodeId>)>,
    outbox: VecDeque<(SocketAddr, Vec<u8>)>,
    rng: SmallRng,
    next_sync: Instant,
    /// The view hash sent in the last periodic digest: a view that moved from it is
    /// compared again within [`QUICK_SYNC`], but not within [`MIN_SYNC_GAP`] of the last.
    synced_hash: u64,
    last_sync: Option<Instant>,
    /// Full states this node may still send in answer to digests (a token bucket refilled
    /// at [`STATE_REPLIES_PER_SECOND`]), and when it was last refilled.
    state_replies: f64,
    refilled_at: Instant,
    last_repair: Option<Instant>,
    /// The live member count foca's settings were last sized for.
    sized_for: usize,
}

impl std::fmt::Debug for GossipNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GossipNode")
            .field("me", self.membership.me())
            .field("members", &self.swim.num_members())
            .finish()
    }
}

impl GossipNode {
    /// A node listening on `addr`, with the identity `config` describes and the first
    /// `bump`; `seed` seeds its random choices. The first join is due at once.
    pub(crate) fn new(
        config: &MembershipConfig,
        timing: GossipTiming,
        addr: SocketAddr,
        bump: u64,
        seed: u64,
        now: Instant,
    ) -> Self {
        let membership = Membership::new(config, addr, bump, now);
        let swim = Foca::new(
            membership.me().clone(),
            foca_config(&timing, 1),
            SmallRng::seed_from_u64(seed),
            PostcardCodec,
        );
        let mut rng = SmallRng::seed_from_u64(seed.rotate_left(17) ^ 0x5eed);
        // Soon, to fill in what the join missed, and spread so that nodes started together
        // do not sync in step.
        let first_sync = now + QUICK_SYNC.mul_f64(rng.random_range(0.5..1.5));
        GossipNode {
            swim,
            membership,
            timing,
            runtime: AccumulatingRuntime::new(),
            timers: Vec::new(),
            outbox: VecDeque::new(),
            rng,
            next_sync: first_sync,
            synced_hash: 0,
            last_sync: None,
            state_replies: STATE_REPLIES_PER_SECOND,
            refilled_at: now,
            last_repair: None,
            sized_for: 1,
        }
    }

    /// The identity this node gossips.
    pub(crate) fn me(&self) -> &NodeId {
        self.membership.me()
    }

    /// The seeds and static nodes this node joins through.
    pub(crate) fn join_targets(&self) -> &[SocketAddr] {
        self.membership.join_targets()
    }

    /// Whether the node is still in its join window.
    pub(crate) fn joining(&self, now: Instant) -> bool {
        self.membership.joining(now)
    }

    /// Whether the node is still forming its view: inside its join window, with targets to
    /// join through, and no live member heard yet.
    pub(crate) fn forming(&self, now: Instant) -> bool {
        self.membership.joining(now)
            && !self.membership.join_targets().is_empty()
            && self.swim.num_members() == 0
    }

    /// Every identity foca knows, with its state (down ones included).
    pub(crate) fn members(&self) -> impl Iterator<Item = &Member<NodeId>> {
        self.swim.iter_membership_state()
    }

    /// Takes one payload received from `from`.
    pub(crate) fn handle_packet(
        &mut self,
        from: SocketAddr,
        payload: &[u8],
        now: Instant,
    ) -> Result<(), Invalid> {
        let result = match payload.split_first() {
            Some((&SWIM, packet)) => self
                .swim
                .handle_data(packet, &mut self.runtime)
                .map_err(Invalid::Swim),
            Some((&SYNC, message)) => match sync::decode(message) {
                Some(message) => {
                    self.on_sync(from, message, now);
                    Ok(())
                }
                None => Err(Invalid::Sync),
            },
            _ => Err(Invalid::Kind),
        };
        self.settle(now);
        result
    }

    /// When [`GossipNode::handle_timeout`] has something to do next.
    pub(crate) fn poll_timeout(&self) -> Instant {
        let foca = self.timers.iter().map(|(at, _)| *at).min();
        [
            Some(self.membership.poll_timeout()),
            Some(self.next_sync),
            foca,
        ]
        .into_iter()
        .flatten()
        .min()
        .expect("three candidates")
    }

    /// Runs what is due at `now`: foca's timers, rejoins, the periodic sync.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.timers)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.timers = later;
        for (_, timer) in due {
            if let Err(error) = self.swim.handle_timer(timer, &mut self.runtime) {
                tracing::debug!(%error, "gossip: foca refused a timer");
            }
        }
        self.membership.handle_timeout(now, self.live_addrs());
        if now >= self.next_sync {
            self.sync_with_random_member(now);
            let jitter = self.rng.random_range(0.9..1.1);
            self.next_sync = now + SYNC_PERIOD.mul_f64(jitter);
        }
        self.settle(now);
    }

    /// Follows a new config (identity, seeds).
    pub(crate) fn on_config(&mut self, config: &MembershipConfig, now: Instant) {
        let live = self.live_addrs();
        self.membership.on_config(config, live);
        self.settle(now);
    }

    /// Compares views now with the nodes most likely on the other side of a split: those
    /// this node counts down, its join targets, and a few live members ([`REPAIR_TARGETS`]
    /// at most) — the answer to a sign of a split view (an L2 conflict). At most once a
    /// sync period; returns whether it compared.
    pub(crate) fn repair(&mut self, now: Instant) -> bool {
        if self
            .last_repair
            .is_some_and(|last| now.saturating_duration_since(last) < SYNC_PERIOD)
        {
            return false;
        }
        self.last_repair = Some(now);
        let me = self.me().addr;
        let mut down: Vec<SocketAddr> = self
            .swim
            .iter_membership_state()
            .filter(|m| m.state() == foca::State::Down)
            .map(|m| m.id().addr)
            .chain(self.membership.join_targets().iter().copied())
            .filter(|addr| *addr != me)
            .collect();
        down.sort();
        down.dedup();
        down.shuffle(&mut self.rng);
        let mut live = self.live_addrs();
        live.shuffle(&mut self.rng);
        let some_live: Vec<SocketAddr> = live.into_iter().take(3).collect();
        down.retain(|addr| !some_live.contains(addr));
        let mut targets = some_live;
        targets.extend(down);
        targets.truncate(REPAIR_TARGETS);
        let digest = self.digest();
        for target in targets {
            self.send_sync(target, &digest);
        }
        self.settle(now);
        true
    }

    /// Tells the cluster this node leaves.
    pub(crate) fn leave(&mut self, now: Instant) {
        if let Err(error) = self.swim.leave_cluster(&mut self.runtime) {
            tracing::debug!(%error, "gossip: leaving");
        }
        self.settle(now);
    }

    /// The next payload to send, with its destination.
    pub(crate) fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.outbox.pop_front()
    }

    fn on_sync(&mut self, from: SocketAddr, message: Sync, now: Instant) {
        match message {
            Sync::Digest(theirs) => {
                if theirs != self.view_hash() && self.take_state_reply(now) {
                    self.send_state(from, true);
                }
            }
            Sync::State { reply, members } => {
                // Placeholders stand for an address, not a node: never a member. What is
                // learned here is not gossiped on: the others repair by their own syncs,
                // and a joiner's whole list would otherwise become dozens of updates.
                let known = members.into_iter().filter(|m| !m.id().name.is_empty());
                if let Err(error) = self.swim.apply_many(known, false, &mut self.runtime) {
                    tracing::debug!(%error, "gossip: foca refused a synced state");
                }
                if reply {
                    self.send_state(from, false);
                }
            }
        }
    }

    /// Takes one full-state reply from the budget, if one is left: a node many ask at once
    /// (a seed when a cluster starts, any node in a storm of view changes) answers some
    /// now and the rest at their next sync, rather than flooding itself and the network.
    fn take_state_reply(&mut self, now: Instant) -> bool {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.refilled_at = now;
        self.state_replies =
            (self.state_replies + elapsed * STATE_REPLIES_PER_SECOND).min(STATE_REPLIES_PER_SECOND);
        if self.state_replies >= 1.0 {
            self.state_replies -= 1.0;
            true
        } else {
            false
        }
    }

    fn view_hash(&self) -> u64 {
        sync::view_hash(self.me(), self.swim.iter_membership_state())
    }

    fn digest(&self) -> Vec<u8> {
        sync::encode(&Sync::Digest(self.view_hash()))
    }

    /// Sends a digest to one random live member.
    fn sync_with_random_member(&mut self, now: Instant) {
        self.last_sync = Some(now);
        let live = self.live_addrs();
        self.synced_hash = self.view_hash();
        if let Some(target) = live.choose(&mut self.rng).copied() {
            let digest = sync::encode(&Sync::Digest(self.synced_hash));
            self.send_sync(target, &digest);
        }
    }

    /// Sends this node's whole state (every identity foca knows, and its own) to `to`.
    fn send_state(&mut self, to: SocketAddr, reply: bool) {
        let mut members: Vec<Member<NodeId>> = self.swim.iter_membership_state().cloned().collect();
        members.push(Member::alive(self.me().clone()));
        for payload in sync::state_payloads(members, reply) {
            self.send_sync(to, &payload);
        }
    }

    fn send_sync(&mut self, to: SocketAddr, message: &[u8]) {
        let mut payload = Vec::with_capacity(1 + message.len());
        payload.push(SYNC);
        payload.extend_from_slice(message);
        self.outbox.push_back((to, payload));
    }

    /// The addresses of foca's live members.
    fn live_addrs(&self) -> Vec<SocketAddr> {
        self.swim.iter_members().map(|m| m.id().addr).collect()
    }

    /// Carries out the membership core's actions, sizes foca to the live count and moves
    /// foca's output (timers, packets) out.
    fn settle(&mut self, now: Instant) {
        while let Some(action) = self.membership.poll_action() {
            let done = match action {
                Action::ChangeIdentity(id) => {
                    tracing::info!(digest = %id.shared_digest, "gossip: identity changed");
                    self.swim.change_identity(id, &mut self.runtime)
                }
                Action::Announce(to) => {
                    // With the announce, a digest: the target answers with its whole state,
                    // so the joiner learns every member at once.
                    let digest = self.digest();
                    self.send_sync(to, &digest);
                    self.swim
                        .announce(NodeId::placeholder(to), &mut self.runtime)
                }
            };
            if let Err(error) = done {
                tracing::debug!(%error, "gossip: foca refused an event");
            }
        }
        let live = self.swim.num_members() + 1;
        if live != self.sized_for {
            match self.swim.set_config(foca_config(&self.timing, live)) {
                Ok(()) => self.sized_for = live,
                Err(error) => tracing::debug!(%error, "gossip: foca kept its settings"),
            }
        }
        let quick = match self.last_sync {
            Some(last) => (now + QUICK_SYNC).max(last + MIN_SYNC_GAP),
            None => now + QUICK_SYNC,
        };
        if self.next_sync > quick && self.view_hash() != self.synced_hash {
            self.next_sync = quick;
        }
        while let Some((after, timer)) = self.runtime.to_schedule() {
            self.timers.push((now + after, timer));
        }
        while let Some(notification) = self.runtime.to_notify() {
            if let OwnedNotification::Rejoin(id) = notification {
                tracing::info!(
                    bump = id.bump,
                    "gossip: the cluster declared this node down; rejoined"
                );
                self.membership.renewed(id);
            }
        }
        while let Some((to, data)) = self.runtime.to_send() {
            let mut payload = Vec::with_capacity(1 + data.len());
            payload.push(SWIM);
            payload.extend_from_slice(&data);
            self.outbox.push_back((to.addr, payload));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> GossipTiming {
        GossipTiming {
            probe_interval_ms: 120,
            probe_timeout_ms: 50,
            suspect_timeout_ms: 120,
        }
    }

    #[test]
    fn dissemination_grows_with_the_live_member_count() {
        let small = foca_config(&timing(), 1);
        let sixteen = foca_config(&timing(), 16);
        let large = foca_config(&timing(), 64);
        assert_eq!(
            small.max_transmissions, sixteen.max_transmissions,
            "the floor"
        );
        assert!(sixteen.max_transmissions < large.max_transmissions);
        let fan_out = |c: &foca::Config| c.periodic_gossip.as_ref().unwrap().num_members.get();
        assert_eq!(fan_out(&small), 3);
        assert_eq!(fan_out(&sixteen), 3);
        assert_eq!(fan_out(&large), 4);
        assert_eq!(fan_out(&foca_config(&timing(), 128)), 5);
        assert_eq!(large.probe_period.as_millis(), 120);
        assert!(large.max_packet_size.get() < sync::MAX_PAYLOAD);
    }
}
