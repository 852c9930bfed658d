//! Who answers for each VIP: rendezvous (highest random weight) hashing over the live,
//! eligible nodes. Every node computes the same owner from the same inputs, so no
//! coordinator or lease is needed, and a node's loss moves only the VIPs it owned.
//!
//! Under `external_traffic_policy = "Local"` a node is eligible only while it runs a ready
//! endpoint of a service on the VIP; under "Cluster" every live node is.

use std::collections::BTreeSet;

use dockline_config::{Announce, TrafficPolicy};
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

/// The owner of every L2-announced VIP of `snapshot`. This node always counts as live.
pub fn owners(snapshot: &Snapshot, health: &HealthVerdicts, members: &MemberSet) -> VipOwners {
    let me = snapshot.node.name.as_str();
    let mut live: BTreeSet<&str> = members.live_names().collect();
    live.insert(me);
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
            }
        })
        .collect();
    VipOwners { vips }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{lb, members, snapshot};
    use dockline_model::MemberState;

    fn owner_of(o: &VipOwners, ip: &str) -> Option<String> {
        let ip: std::net::IpAddr = ip.parse().unwrap();
        o.vips
            .iter()
            .find(|v| v.ip == ip)
            .and_then(|v| v.owner.clone())
    }

    /// LoadBalancer services `s<i>` on 192.0.2.`<i>`, Cluster policy, for `i` in `range`.
    fn spread_services(range: std::ops::Range<u8>) -> String {
        range
            .map(|i| {
                lb(
                    &format!("s{i}"),
                    &format!("192.0.2.{i}"),
                    "Cluster",
                    "n1",
                    true,
                )
            })
            .collect()
    }

    const ALL: [(&str, MemberState); 3] = [
        ("n1", MemberState::Alive),
        ("n2", MemberState::Alive),
        ("n3", MemberState::Alive),
    ];

    #[test]
    fn every_node_computes_the_same_owner() {
        let services = spread_services(10..20);
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
        let services = spread_services(10..30);
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

    #[test]
    fn alone_the_node_owns_every_vip() {
        let snap = snapshot("n1", &lb("web", "2001:db8::10", "Cluster", "n1", true));
        let o = owners(&snap, &HealthVerdicts::default(), &MemberSet::default());
        assert!(o.vips[0].owned_by_me);
    }
}
