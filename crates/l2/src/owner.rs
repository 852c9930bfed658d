//! Who answers for each VIP: rendezvous (highest random weight) hashing over the live,
//! eligible nodes. Every node computes the same owner from the same inputs, so no
//! coordinator or lease is needed, and a node's loss moves only the VIPs it owned.
//!
//! Under `external_traffic_policy = "Local"` a node is eligible only while it runs a ready
//! endpoint of a service on the VIP; under "Cluster" every live node is.
//!
//! Under `cluster.on_config_mismatch = "exclude"` only the nodes that gossip the cluster's
//! shared config digest are eligible. The cluster's digest is the one most live nodes
//! gossip (on a tie the greater one), so every node picks the same, and a node with another
//! config, which sees the others as the odd ones, still counts itself out.

use std::collections::{BTreeMap, BTreeSet};

use dockline_config::{Announce, ConfigMismatch, TrafficPolicy};
use dockline_model::{HealthVerdicts, MemberSet, Snapshot, Vip, VipOwner, VipOwners};
use sha2::{Digest, Sha256};

/// The weight of `node` for `vip`; the highest weight owns it.
fn weight(vip: &Vip, node: &str) -> [u8; 8] {
    let mut h = Sha256::new();
    h.update(vip.ip.to_string().as_bytes());
    h.update([0]);
    h.update(node.as_bytes());
    let digest = h.finalize();
    let mut w = [0u8; 8];
    w.copy_from_slice(&digest[..8]);
    w
}

/// Nodes with a ready endpoint of a service on `vip`.
fn nodes_with_ready_endpoints<'s>(
    snapshot: &'s Snapshot,
    health: &HealthVerdicts,
    vip: &Vip,
) -> BTreeSet<&'s str> {
    snapshot
        .services
        .iter()
        .filter(|s| vip.services.contains(&s.key()))
        .flat_map(|s| health.ready_endpoints(s))
        .filter_map(|e| e.node.as_deref())
        .collect()
}

/// The live nodes that may own VIPs: those that announce L2 (this node, running the
/// announcer, always counts, with the digest of `snapshot`); under "exclude" only the nodes
/// with the cluster's digest, or none heard yet.
fn eligible_nodes<'a>(snapshot: &'a Snapshot, members: &'a MemberSet) -> BTreeSet<&'a str> {
    let mut live: BTreeMap<&str, &str> = members
        .members
        .iter()
        .filter(|m| m.state.is_live() && m.announces_l2)
        .map(|m| (m.name.as_str(), m.shared_digest.as_str()))
        .collect();
    live.insert(snapshot.node.name.as_str(), snapshot.shared_digest.as_str());
    if snapshot.config.cluster.on_config_mismatch == ConfigMismatch::Flag {
        return live.into_keys().collect();
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for digest in live.values().filter(|d| !d.is_empty()) {
        *counts.entry(digest).or_default() += 1;
    }
    let cluster = counts
        .into_iter()
        .max_by_key(|(digest, count)| (*count, *digest))
        .map(|(digest, _)| digest);
    live.into_iter()
        .filter(|(_, digest)| digest.is_empty() || Some(*digest) == cluster)
        .map(|(name, _)| name)
        .collect()
}

/// The owner of every L2-announced VIP of `snapshot`.
pub fn owners(snapshot: &Snapshot, health: &HealthVerdicts, members: &MemberSet) -> VipOwners {
    let me = snapshot.node.name.as_str();
    let live = eligible_nodes(snapshot, members);
    let vips = snapshot
        .vips
        .iter()
        .filter(|v| v.announce.contains(&Announce::L2))
        .map(|vip| {
            let local = (vip.external_traffic_policy == TrafficPolicy::Local)
                .then(|| nodes_with_ready_endpoints(snapshot, health, vip));
            let owner = live
                .iter()
                .filter(|n| local.as_ref().is_none_or(|ready| ready.contains(**n)))
                .max_by_key(|n| (weight(vip, n), **n))
                .map(|n| (*n).to_owned());
            VipOwner {
                ip: vip.ip,
                owned_by_me: owner.as_deref() == Some(me),
                owner,
                conflicts: 0,
                conflict_mac: None,
            }
        })
        .collect();
    VipOwners { vips }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{cluster_vips, lb, members, snapshot};
    use dockline_model::MemberState;

    fn owner_of(o: &VipOwners, ip: &str) -> Option<String> {
        let ip: std::net::IpAddr = ip.parse().unwrap();
        o.vips
            .iter()
            .find(|v| v.ip == ip)
            .and_then(|v| v.owner.clone())
    }

    const ALL: [(&str, MemberState); 3] = [
        ("n1", MemberState::Alive),
        ("n2", MemberState::Alive),
        ("n3", MemberState::Alive),
    ];

    #[test]
    fn every_node_computes_the_same_owner() {
        let services = cluster_vips(10..20);
        let views: Vec<VipOwners> = ["n1", "n2", "n3"]
            .iter()
            .map(|me| {
                owners(
                    &snapshot(me, &services),
                    &HealthVerdicts::default(),
                    &members(&ALL),
                )
            })
            .collect();
        for ip in (10..20).map(|i| format!("192.0.2.{i}")) {
            let first = owner_of(&views[0], &ip);
            assert!(first.is_some());
            assert!(views.iter().all(|v| owner_of(v, &ip) == first), "{ip}");
        }
        let distinct: BTreeSet<_> = views[0].vips.iter().map(|v| v.owner.clone()).collect();
        assert!(
            distinct.len() > 1,
            "ten VIPs spread over more than one node"
        );
        let mine = views[1].vips.iter().filter(|v| v.owned_by_me).count();
        let n2 = views[0]
            .vips
            .iter()
            .filter(|v| v.owner.as_deref() == Some("n2"))
            .count();
        assert_eq!(mine, n2);
    }

    #[test]
    fn a_dead_owner_moves_only_its_vips() {
        let services = cluster_vips(10..30);
        let snap = snapshot("n1", &services);
        let before = owners(&snap, &HealthVerdicts::default(), &members(&ALL));
        let after = owners(
            &snap,
            &HealthVerdicts::default(),
            &members(&[
                ("n1", MemberState::Alive),
                ("n2", MemberState::Down),
                ("n3", MemberState::Suspect),
            ]),
        );
        for (b, a) in before.vips.iter().zip(&after.vips) {
            assert_ne!(a.owner.as_deref(), Some("n2"));
            if b.owner.as_deref() != Some("n2") {
                assert_eq!(a.owner, b.owner, "suspects keep their VIPs");
            }
        }
    }

    #[test]
    fn local_policy_elects_only_nodes_with_a_ready_endpoint() {
        let ready = snapshot("n1", &lb("web", "192.0.2.10", "Local", "n3", true));
        let o = owners(&ready, &HealthVerdicts::default(), &members(&ALL));
        assert_eq!(owner_of(&o, "192.0.2.10").as_deref(), Some("n3"));
        let mut failing = HealthVerdicts::default();
        failing.set("default/web", "10.111.0.5".parse().unwrap(), false);
        let o = owners(&ready, &failing, &members(&ALL));
        assert_eq!(owner_of(&o, "192.0.2.10"), None);
        let not_ready = snapshot("n1", &lb("web", "192.0.2.10", "Local", "n3", false));
        let o = owners(&not_ready, &HealthVerdicts::default(), &members(&ALL));
        assert_eq!(owner_of(&o, "192.0.2.10"), None);
    }

    /// Members n1..n3 alive, with these digests (n1 is the node computing).
    fn digests(n2: &str, n3: &str, ours: &str) -> MemberSet {
        let mut set = members(&ALL);
        for (member, digest) in set.members.iter_mut().zip([ours, n2, n3]) {
            member.shared_digest = digest.into();
        }
        set
    }

    fn owned_by(o: &VipOwners, node: &str) -> usize {
        o.vips
            .iter()
            .filter(|v| v.owner.as_deref() == Some(node))
            .count()
    }

    const TWENTY_VIPS: std::ops::Range<u8> = 10..30;

    fn twenty_vips(extra: &str, me: &str) -> Snapshot {
        snapshot(me, &format!("{extra}\n{}", cluster_vips(TWENTY_VIPS)))
    }

    #[test]
    fn under_flag_a_member_with_another_digest_still_owns_vips() {
        let snap = twenty_vips("", "n1");
        let ours = snap.shared_digest.clone();
        let o = owners(
            &snap,
            &HealthVerdicts::default(),
            &digests(&ours, "other", &ours),
        );
        assert!(owned_by(&o, "n3") > 0);
    }

    #[test]
    fn under_exclude_a_member_with_another_digest_owns_nothing_as_every_node_computes_it() {
        let extra = "[cluster]\non_config_mismatch = \"exclude\"";
        let snap = twenty_vips(extra, "n1");
        let ours = snap.shared_digest.clone();
        let o = owners(
            &snap,
            &HealthVerdicts::default(),
            &digests(&ours, "other", &ours),
        );
        assert_eq!(owned_by(&o, "n3"), 0);
        assert!(owned_by(&o, "n1") > 0 && owned_by(&o, "n2") > 0);

        // n3 itself, whose digest is the odd one: it sees n1 and n2 agree on another.
        let one_more = lb("more", "192.0.2.99", "Cluster", "n1", true);
        let odd = twenty_vips(&format!("{extra}\n{one_more}"), "n3");
        assert_ne!(odd.shared_digest, ours);
        let mut theirs = digests(&ours, &odd.shared_digest, &ours);
        theirs.members[2].shared_digest = odd.shared_digest.clone();
        let o = owners(&odd, &HealthVerdicts::default(), &theirs);
        assert!(o.vips.iter().all(|v| !v.owned_by_me), "{o:?}");

        // Members not heard from yet (no digest) stay eligible.
        let o = owners(&snap, &HealthVerdicts::default(), &digests("", "", &ours));
        assert!(owned_by(&o, "n2") > 0 && owned_by(&o, "n3") > 0);
    }

    #[test]
    fn a_member_that_does_not_announce_l2_owns_no_l2_vip() {
        let snap = twenty_vips("", "n1");
        let mut set = members(&ALL);
        set.members[2].announces_l2 = false;
        let o = owners(&snap, &HealthVerdicts::default(), &set);
        assert_eq!(owned_by(&o, "n3"), 0);
        assert!(owned_by(&o, "n1") > 0 && owned_by(&o, "n2") > 0);
    }

    #[test]
    fn alone_the_node_owns_every_vip() {
        let snap = snapshot("n1", &lb("web", "2001:db8::10", "Cluster", "n1", true));
        let o = owners(&snap, &HealthVerdicts::default(), &MemberSet::default());
        assert!(o.vips[0].owned_by_me);
    }
}
