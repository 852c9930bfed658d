//! Anti-entropy, without I/O: the messages two nodes exchange to make their member views
//! equal, whatever updates either of them missed.
//!
//! SWIM spreads each update a bounded number of times; a node that misses all of them
//! (packet loss, a late start) keeps a stale view until something else tells it. So every
//! [`SYNC_PERIOD`] a node sends a random member a [`Sync::Digest`] of its view (a hash of
//! its active identities, 9 bytes). A receiver whose view hashes the same does nothing; one
//! whose view differs answers with its full state ([`Sync::State`], asking for the other's
//! in return), and the first node answers with its own. Both then hold the union of what
//! they knew, with foca's rules deciding between conflicting entries.
//!
//! In a settled cluster this costs one small packet per node and period; a full exchange
//! happens only while views differ. A node whose own view changed compares again within
//! [`QUICK_SYNC`] rather than a whole period, but never twice within [`MIN_SYNC_GAP`], and
//! answers at most [`STATE_REPLIES_PER_SECOND`] digests with its state: when many views
//! change at once, syncing must not become the load that makes them change. The same exchange gives a joining node the whole member
//! list from its seed at once, and heals a split view on demand (an L2 conflict).

use std::time::Duration;

use foca::{Member, State};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::identity::NodeId;

/// How often each node compares its view with a random member's. Seconds, not memberlist's
/// 30 s: with the digest first, a settled cluster pays one small packet per period for it.
pub(crate) const SYNC_PERIOD: Duration = Duration::from_secs(1);

/// How soon a node compares views again after its own view changed (and at the start):
/// a change is often half known, and the other half is then fetched at once.
pub(crate) const QUICK_SYNC: Duration = Duration::from_millis(200);

/// The shortest time between two periodic comparisons of one node, quick ones included.
pub(crate) const MIN_SYNC_GAP: Duration = Duration::from_millis(500);

/// How many full states a node sends per second at most in answer to digests.
pub(crate) const STATE_REPLIES_PER_SECOND: f64 = 8.0;

/// The largest payload a node sends, foca's packets included: under a 1500-byte MTU with
/// the IP, UDP and authentication headers added.
pub(crate) const MAX_PAYLOAD: usize = 1400;

/// What two nodes exchange to compare and merge their views.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Sync {
    /// The hash of the sender's active identities ([`view_hash`]).
    Digest(u64),
    /// One packet's worth of the sender's members; `reply` asks for the receiver's state
    /// in return (set on the first packet of a state only).
    State {
        reply: bool,
        members: Vec<Member<NodeId>>,
    },
}

/// A hash of the active identities of a view (`members` and `me`), in any order: two nodes
/// whose hashes agree know the same live nodes under the same identities.
pub(crate) fn view_hash<'a>(
    me: &'a NodeId,
    members: impl Iterator<Item = &'a Member<NodeId>>,
) -> u64 {
    let mut ids: Vec<&NodeId> = members
        .filter(|m| m.state() != State::Down)
        .map(Member::id)
        .chain(std::iter::once(me))
        .collect();
    ids.sort_by(|a, b| (&a.name, a.bump, a.addr).cmp(&(&b.name, b.bump, b.addr)));
    ids.dedup();
    let mut hasher = Sha256::new();
    for id in ids {
        hasher.update(id.name.as_bytes());
        hasher.update([0]);
        hasher.update(id.bump.to_be_bytes());
        hasher.update(id.addr.to_string().as_bytes());
        hasher.update([0]);
    }
    let hash = hasher.finalize();
    u64::from_be_bytes(hash[..8].try_into().expect("8 bytes"))
}

/// The sync payloads carrying `members` (every one of them, `me` included): each at most
/// [`MAX_PAYLOAD`] bytes, the first asking for a reply when `reply`.
pub(crate) fn state_payloads(members: Vec<Member<NodeId>>, reply: bool) -> Vec<Vec<u8>> {
    let mut payloads = Vec::new();
    let mut chunk: Vec<Member<NodeId>> = Vec::new();
    for member in members {
        chunk.push(member);
        let encoded = encode(&Sync::State {
            reply: reply && payloads.is_empty(),
            members: chunk.clone(),
        });
        if encoded.len() > MAX_PAYLOAD && chunk.len() > 1 {
            let last = chunk.pop().expect("two or more");
            payloads.push(encode(&Sync::State {
                reply: reply && payloads.is_empty(),
                members: std::mem::take(&mut chunk),
            }));
            chunk.push(last);
        }
    }
    if !chunk.is_empty() || payloads.is_empty() {
        payloads.push(encode(&Sync::State {
            reply: reply && payloads.is_empty(),
            members: chunk,
        }));
    }
    payloads
}

/// The payload of `message`.
pub(crate) fn encode(message: &Sync) -> Vec<u8> {
    postcard::to_allocvec(message).expect("a sync message always encodes")
}

/// The message in `payload`, or `None` when it is not one.
pub(crate) fn decode(payload: &[u8]) -> Option<Sync> {
    postcard::from_bytes(payload).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str, bump: u64) -> NodeId {
        NodeId {
            name: name.into(),
            addr: format!("10.0.0.{}:7946", name.len() + bump as usize % 200)
                .parse()
                .unwrap(),
            internal_ip: "10.0.0.1".parse().unwrap(),
            shared_digest: "a".repeat(64),
            config_revision: None,
            announces_l2: true,
            bump,
        }
    }

    #[test]
    fn the_view_hash_ignores_order_and_down_members_but_not_identities() {
        let me = id("a", 1);
        let b = Member::alive(id("b", 1));
        let c = Member::new(id("c", 1), 3, State::Suspect);
        let gone = Member::down(id("d", 1));
        let one = view_hash(&me, [&b, &c, &gone].into_iter());
        let other_order = view_hash(&me, [&c, &b].into_iter());
        assert_eq!(one, other_order);
        let restarted = Member::alive(id("b", 2));
        assert_ne!(one, view_hash(&me, [&restarted, &c].into_iter()));
        assert_ne!(one, view_hash(&me, [&b].into_iter()));
    }

    #[test]
    fn a_large_state_is_split_into_packets_that_fit_and_decode_back() {
        let members: Vec<Member<NodeId>> = (0..100)
            .map(|n| Member::alive(id(&format!("node-{n:03}"), n)))
            .collect();
        let payloads = state_payloads(members.clone(), true);
        assert!(payloads.len() > 1);
        let mut back = Vec::new();
        for (index, payload) in payloads.iter().enumerate() {
            assert!(payload.len() <= MAX_PAYLOAD, "{} bytes", payload.len());
            let Some(Sync::State { reply, members }) = decode(payload) else {
                panic!("not a state");
            };
            assert_eq!(reply, index == 0, "only the first packet asks for a reply");
            back.extend(members);
        }
        assert_eq!(back, members);
    }

    #[test]
    fn an_empty_state_is_one_packet_and_garbage_is_no_message() {
        assert_eq!(state_payloads(Vec::new(), false).len(), 1);
        let digest = encode(&Sync::Digest(7));
        assert_eq!(decode(&digest), Some(Sync::Digest(7)));
        assert_eq!(decode(&[0xff; 3]), None);
    }
}
