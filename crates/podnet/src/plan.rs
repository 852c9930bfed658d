//! What the pod network should look like, computed from the config and the member set
//! alone: the peers, the overlay's address, MTU and MACs, and the pod routes of each mode.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dockline_config::Config;
use dockline_model::MemberSet;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::vxlan::Mac;

/// Bytes VXLAN adds over an IPv4 underlay: outer IPv4 (20), UDP (8), VXLAN (8), inner
/// Ethernet (14).
pub const OVERHEAD_IPV4: u32 = 50;
/// Over IPv6 the outer IP header is 40 bytes.
pub const OVERHEAD_IPV6: u32 = 70;

/// Another node with a pod range: where its pods are and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// Its node name.
    pub name: String,
    /// Its underlay address: the VTEP in VXLAN mode, the gateway in Classic mode.
    pub internal_ip: IpAddr,
    /// Its pod range.
    pub pod_cidr: IpNet,
}

/// The peers of `network.nodes` that are up. With gossip on, a peer counts only while
/// membership says it is live (a node that leaves loses its routes and VTEP at once);
/// without gossip every configured peer counts.
pub fn peers(config: &Config, members: &MemberSet) -> Vec<Peer> {
    let gossip = config.cluster.gossip.listen.is_some();
    config
        .network
        .nodes
        .iter()
        .filter(|node| node.name != config.node.name)
        .filter(|node| {
            !gossip
                || members
                    .members
                    .iter()
                    .any(|m| m.name == node.name && m.state.is_live())
        })
        .filter_map(|node| {
            Some(Peer {
                name: node.name.clone(),
                internal_ip: node.internal_ip,
                pod_cidr: node.pod_cidr?,
            })
        })
        .collect()
}

/// A node's overlay address: the first host address of its pod range, with the prefix
/// length of the cluster's pod range (so the whole cluster range is on the device).
pub fn overlay_address(node_pod_cidr: IpNet, cluster_pod_cidr: IpNet) -> IpNet {
    // The network address plus one (IPv6's `hosts()` would start at the network address).
    let network = node_pod_cidr.network();
    let first = match network {
        IpAddr::V4(v4) if node_pod_cidr.prefix_len() < 32 => {
            Ipv4Addr::from(u32::from(v4) + 1).into()
        }
        IpAddr::V6(v6) if node_pod_cidr.prefix_len() < 128 => {
            Ipv6Addr::from(u128::from(v6) + 1).into()
        }
        single => single,
    };
    IpNet::new(first, cluster_pod_cidr.prefix_len()).unwrap_or(node_pod_cidr)
}

/// The overlay device's MTU over an underlay of `underlay_mtu`.
pub fn overlay_mtu(underlay_mtu: u32, underlay_is_ipv6: bool) -> u32 {
    let overhead = if underlay_is_ipv6 {
        OVERHEAD_IPV6
    } else {
        OVERHEAD_IPV4
    };
    underlay_mtu.saturating_sub(overhead)
}

/// A node's overlay MAC, derived from its overlay address so every node can seed every
/// other's without asking: locally administered, unicast, `02:4c` then the address's last
/// four bytes.
pub fn device_mac(overlay: IpAddr) -> Mac {
    let tail = match overlay {
        IpAddr::V4(v4) => v4.octets(),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    [0x02, 0x4c, tail[0], tail[1], tail[2], tail[3]]
}

/// One route to a peer's pod range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PodRoute {
    /// The peer's pod range.
    pub destination: IpNet,
    /// Its internal IP (Classic) or overlay address (VXLAN).
    pub gateway: IpAddr,
}

/// A peer Classic mode cannot route to: its address is on no directly connected network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreachable {
    /// The peer's name.
    pub name: String,
    /// Its internal IP.
    pub internal_ip: IpAddr,
}

/// Classic mode's routes, one per peer via its internal IP, for the peers on a network in
/// `connected` (the prefixes of this node's addresses); the others are reported instead, a
/// route through a router that knows no pod ranges would only black-hole.
pub fn classic_routes(peers: &[Peer], connected: &[IpNet]) -> (Vec<PodRoute>, Vec<Unreachable>) {
    let mut routes = Vec::new();
    let mut unreachable = Vec::new();
    for peer in peers {
        if connected.iter().any(|net| net.contains(&peer.internal_ip)) {
            routes.push(PodRoute {
                destination: peer.pod_cidr,
                gateway: peer.internal_ip,
            });
        } else {
            unreachable.push(Unreachable {
                name: peer.name.clone(),
                internal_ip: peer.internal_ip,
            });
        }
    }
    (routes, unreachable)
}

/// VXLAN mode's routes, one per peer via its overlay address on the device, so pods behind
/// the peer are reached, not only its overlay address.
pub fn overlay_routes(peers: &[Peer], cluster_pod_cidr: IpNet) -> Vec<PodRoute> {
    peers
        .iter()
        .map(|peer| PodRoute {
            destination: peer.pod_cidr,
            gateway: overlay_address(peer.pod_cidr, cluster_pod_cidr).addr(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dockline_model::{Member, MemberState};

    const NETWORK: &str = r#"
[node]
name = "node-1"
internal_ip = "172.30.0.11"
pod_cidr = "10.111.1.0/24"
[[network.nodes]]
name = "node-2"
internal_ip = "172.30.0.12"
pod_cidr = "10.111.2.0/24"
[[network.nodes]]
name = "node-3"
internal_ip = "172.30.1.13"
pod_cidr = "10.111.3.0/24"
"#;

    fn config(extra: &str) -> Config {
        let text = format!("{NETWORK}{extra}");
        match dockline_config::parse("t.toml", &text, std::iter::empty()) {
            Ok(config) => config,
            Err(problems) => panic!("{problems}"),
        }
    }

    fn net(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    fn member(name: &str, state: MemberState) -> Member {
        Member {
            name: name.into(),
            internal_ip: "172.30.0.12".parse().unwrap(),
            state,
            shared_digest: String::new(),
            config_revision: None,
            announces_l2: true,
        }
    }

    #[test]
    fn without_gossip_every_configured_peer_counts() {
        let names: Vec<String> = peers(&config(""), &MemberSet::default())
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["node-2", "node-3"]);
    }

    #[test]
    fn with_gossip_only_live_members_count() {
        let config = config("[cluster.gossip]\nlisten = \"127.0.0.1:7946\"\n");
        let members = MemberSet::new(vec![
            member("node-2", MemberState::Suspect),
            member("node-3", MemberState::Down),
        ]);
        let names: Vec<String> = peers(&config, &members)
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["node-2"]);
    }

    #[test]
    fn the_overlay_address_is_the_first_pod_address_with_the_cluster_prefix() {
        assert_eq!(
            overlay_address(net("10.111.1.0/24"), net("10.111.0.0/16")),
            net("10.111.1.1/16")
        );
        assert_eq!(
            overlay_address(net("fd00:111:1::/64"), net("fd00:111::/48")),
            net("fd00:111:1::1/48")
        );
        assert_eq!(
            device_mac("10.111.1.1".parse().unwrap()),
            [2, 0x4c, 10, 111, 1, 1]
        );
    }

    #[test]
    fn the_mtu_loses_50_bytes_over_ipv4_and_70_over_ipv6() {
        assert_eq!(overlay_mtu(1500, false), 1450);
        assert_eq!(overlay_mtu(1500, true), 1430);
        assert_eq!(overlay_mtu(9000, false), 8950);
    }

    #[test]
    fn classic_routes_go_via_connected_peers_and_report_the_others() {
        let peers = peers(&config(""), &MemberSet::default());
        let (routes, unreachable) = classic_routes(&peers, &[net("172.30.0.0/24")]);
        assert_eq!(
            routes,
            [PodRoute {
                destination: net("10.111.2.0/24"),
                gateway: "172.30.0.12".parse().unwrap(),
            }]
        );
        assert_eq!(
            unreachable,
            [Unreachable {
                name: "node-3".into(),
                internal_ip: "172.30.1.13".parse().unwrap(),
            }]
        );
    }

    #[test]
    fn overlay_routes_go_via_each_peers_overlay_address() {
        let peers = peers(&config(""), &MemberSet::default());
        let gateways: Vec<String> = overlay_routes(&peers, net("10.111.0.0/16"))
            .iter()
            .map(|r| format!("{} via {}", r.destination, r.gateway))
            .collect();
        assert_eq!(
            gateways,
            [
                "10.111.2.0/24 via 10.111.2.1",
                "10.111.3.0/24 via 10.111.3.1"
            ]
        );
    }
}
