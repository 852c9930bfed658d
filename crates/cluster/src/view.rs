//! Turns foca's member list into the published [`MemberSet`]: one entry per node name (a
//! restarted node shows up under its newest identity), this node included.
//!
//! With `cluster.allowed_nodes` set, a node outside it (by name or internal IP) is left
//! out, whether gossip or `network.nodes` names it: it owns no VIP and is not shown.
//!
//! Static `network.nodes` that gossip has not (or no longer) heard of count as suspect
//! while the node is joining and as down after: a starting node must not claim every VIP
//! before it has met its peers, nor wait forever for a peer that never comes.

use std::collections::BTreeSet;
use std::net::IpAddr;

use dockline_config::{AllowedNode, PeerNode};
use dockline_model::{LiveMembers, Member, MemberSet, MemberState};
use foca::State;

use crate::identity::NodeId;

/// Whether `cluster.allowed_nodes` (`allowed`) lets the node `name` at `internal_ip` be a
/// member; an empty list lets every node in.
pub(crate) fn admitted(allowed: &[AllowedNode], name: &str, internal_ip: IpAddr) -> bool {
    allowed.is_empty() || allowed.iter().any(|a| a.admits(name, internal_ip))
}

/// Logs each node `allowed` keeps out once (per name in `logged`).
pub(crate) fn log_outsiders<'a>(
    known: impl Iterator<Item = &'a NodeId>,
    allowed: &[AllowedNode],
    logged: &mut BTreeSet<String>,
) {
    for id in known {
        if !id.name.is_empty()
            && !admitted(allowed, &id.name, id.internal_ip)
            && logged.insert(id.name.clone())
        {
            tracing::warn!(
                node = %id.name,
                internal_ip = %id.internal_ip,
                addr = %id.addr,
                "gossip: a node outside cluster.allowed_nodes is ignored"
            );
        }
    }
}

/// The member set from foca's members (`known`, with their states) and the static peers;
/// `joining` while the node is in its join window. Nodes outside `allowed` are left out.
pub(crate) fn member_set<'a>(
    me: &NodeId,
    known: impl Iterator<Item = (&'a NodeId, State)>,
    statics: &[PeerNode],
    allowed: &[AllowedNode],
    joining: bool,
) -> MemberSet {
    let mut newest: Vec<(&NodeId, State)> = Vec::new();
    for (id, state) in known {
        if id.name.is_empty() || id.name == me.name || !admitted(allowed, &id.name, id.internal_ip)
        {
            continue;
        }
        match newest.iter_mut().find(|(seen, _)| seen.name == id.name) {
            Some(entry) if id.bump > entry.0.bump => *entry = (id, state),
            Some(_) => {}
            None => newest.push((id, state)),
        }
    }
    let member = |id: &NodeId, state| Member {
        name: id.name.clone(),
        internal_ip: id.internal_ip,
        state,
        shared_digest: id.shared_digest.clone(),
        config_revision: id.config_revision,
        announces_l2: id.announces_l2,
    };
    let mut members: Vec<Member> = newest
        .into_iter()
        .map(|(id, state)| {
            let state = match state {
                State::Alive => MemberState::Alive,
                State::Suspect => MemberState::Suspect,
                State::Down => MemberState::Down,
            };
            member(id, state)
        })
        .collect();
    members.push(member(me, MemberState::Alive));
    for peer in statics {
        if members.iter().all(|m| m.name != peer.name)
            && admitted(allowed, &peer.name, peer.internal_ip)
        {
            members.push(Member {
                name: peer.name.clone(),
                internal_ip: peer.internal_ip,
                state: if joining {
                    MemberState::Suspect
                } else {
                    MemberState::Down
                },
                shared_digest: String::new(),
                config_revision: None,
                // Unknown until heard from: it may own VIPs, as before it was heard.
                announces_l2: true,
            });
        }
    }
    MemberSet::new(members)
}

/// Publishes `set` and sets the member gauges from it; `ours` is this node's shared digest.
pub(crate) fn publish(members: &LiveMembers, set: MemberSet, ours: &str) {
    crate::metrics::record_member_set(&set, ours);
    members.publish(set);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str, bump: u64) -> NodeId {
        NodeId {
            name: name.into(),
            addr: "10.0.0.1:7946".parse().unwrap(),
            internal_ip: "10.0.0.1".parse().unwrap(),
            shared_digest: format!("d{bump}"),
            config_revision: None,
            announces_l2: true,
            bump,
        }
    }

    #[test]
    fn a_restarted_node_is_listed_once_under_its_newest_identity() {
        let me = id("a", 1);
        let old = id("b", 1);
        let new = id("b", 2);
        let set = member_set(
            &me,
            [
                (&new, State::Alive),
                (&old, State::Down),
                (&me, State::Alive),
            ]
            .into_iter(),
            &[],
            &[],
            false,
        );
        let got: Vec<_> = set
            .members
            .iter()
            .map(|m| (m.name.as_str(), m.state, m.shared_digest.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("a", MemberState::Alive, "d1"),
                ("b", MemberState::Alive, "d2")
            ]
        );
    }
}

#[cfg(test)]
mod static_peers {
    use super::*;

    #[test]
    fn unheard_static_peers_are_suspect_while_joining_then_down() {
        let me = NodeId::placeholder("10.0.0.1:7946".parse().unwrap());
        let peer = PeerNode {
            name: "b".into(),
            internal_ip: "10.0.0.2".parse().unwrap(),
            pod_cidr: None,
        };
        let state = |joining| {
            member_set(
                &me,
                std::iter::empty(),
                std::slice::from_ref(&peer),
                &[],
                joining,
            )
            .members[1]
                .state
        };
        assert_eq!(state(true), MemberState::Suspect);
        assert_eq!(state(false), MemberState::Down);
    }
}

#[cfg(test)]
mod allowed_nodes {
    use super::*;

    fn id(name: &str, ip: &str) -> NodeId {
        NodeId {
            name: name.into(),
            addr: format!("{ip}:7946").parse().unwrap(),
            internal_ip: ip.parse().unwrap(),
            shared_digest: "d".into(),
            config_revision: None,
            announces_l2: true,
            bump: 1,
        }
    }

    #[test]
    fn nodes_outside_allowed_nodes_are_left_out_and_logged_once() {
        let me = id("a", "10.0.0.1");
        let named = id("b", "192.0.2.2");
        let in_range = id("c", "10.0.0.3");
        let rogue = id("rogue", "192.0.2.66");
        let allowed: Vec<AllowedNode> = ["b", "10.0.0.0/24"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let known = [&named, &in_range, &rogue];
        let set = member_set(
            &me,
            known.iter().map(|id| (*id, State::Alive)),
            &[],
            &allowed,
            false,
        );
        let names: Vec<&str> = set.members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let everyone = member_set(
            &me,
            known.iter().map(|id| (*id, State::Alive)),
            &[],
            &[],
            false,
        );
        assert_eq!(everyone.members.len(), 4, "no list: every node is allowed");

        let mut logged = BTreeSet::new();
        log_outsiders(known.into_iter(), &allowed, &mut logged);
        log_outsiders(known.into_iter(), &allowed, &mut logged);
        assert_eq!(logged.into_iter().collect::<Vec<_>>(), ["rogue"]);
    }
}
