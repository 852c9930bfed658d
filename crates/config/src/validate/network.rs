//! `[network]`: the VXLAN overlay settings and the peers in `[[network.nodes]]`, whose names,
//! addresses and pod ranges must not clash with this node's or each other's.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::Collector;
use super::names::{dns_label, interface_name};
use super::node_cluster::{check_pod_range, ranges_overlap};
use crate::schema::{Config, TunnelMode, Vxlan};

/// VNIs are 24-bit (RFC 7348 section 5).
const MAX_VNI: u32 = (1 << 24) - 1;

pub(super) fn check_network(config: &Config, problems: &mut Collector) {
    check_vxlan(&config.network.vxlan, problems);
    check_peers(config, problems);
    if config.network.tunnel_mode == TunnelMode::Vxlan && config.node.pod_cidr.is_some() {
        check_vxlan_underlay(config, problems);
    }
}

/// What the userspace VTEP needs of the addresses: an internal IP to send from, peers of
/// the same family (its sockets are IPv4 or IPv6), and an IPv4 pod range (for now).
fn check_vxlan_underlay(config: &Config, problems: &mut Collector) {
    let Some(local) = config.node.internal_ip else {
        problems.add(
            "node.internal_ip",
            "must be set in VXLAN mode: the overlay's packets are sent from and received on it",
        );
        return;
    };
    if config.cluster.pod_cidr.addr().is_ipv6() {
        problems.add(
            "cluster.pod_cidr",
            "an IPv6 pod range in VXLAN mode is not supported yet",
        );
    }
    for (index, peer) in config.network.nodes.iter().enumerate() {
        if peer.internal_ip.is_ipv6() != local.is_ipv6() {
            problems.add(
                format!("network.nodes[{index}].internal_ip"),
                format!(
                    "{}: the VXLAN underlay is one address family, and node.internal_ip {local} is the other",
                    peer.internal_ip
                ),
            );
        }
    }
}

fn check_vxlan(vxlan: &Vxlan, problems: &mut Collector) {
    if vxlan.vni == 0 || vxlan.vni > MAX_VNI {
        problems.add(
            "network.vxlan.vni",
            format!("{} is outside 1-{MAX_VNI}", vxlan.vni),
        );
    }
    if vxlan.port == 0 {
        problems.add("network.vxlan.port", "must not be 0");
    }
    if let Err(why) = interface_name(&vxlan.device) {
        problems.add("network.vxlan.device", why);
    }
    // IPv6 needs 1280 on the overlay; the encapsulation takes up to 70 bytes more.
    if !(1350..=65535).contains(&vxlan.underlay_mtu) {
        problems.add(
            "network.vxlan.underlay_mtu",
            format!("{} is outside 1350-65535", vxlan.underlay_mtu),
        );
    }
}

/// Each peer's name, address and pod range, against this node's and the earlier peers'.
fn check_peers(config: &Config, problems: &mut Collector) {
    let node = &config.node;
    // Each value seen so far, with the path of the key that set it.
    let mut names = HashMap::from([(node.name.as_str(), "node.name".to_owned())]);
    let mut addresses: HashMap<IpAddr, String> = HashMap::new();
    if let Some(ip) = node.internal_ip {
        addresses.insert(ip, "node.internal_ip".into());
    }
    let mut pod_ranges: Vec<(IpNet, String)> = node
        .pod_cidr
        .map(|range| (range, "node.pod_cidr".to_owned()))
        .into_iter()
        .collect();
    for (index, peer) in config.network.nodes.iter().enumerate() {
        let path = format!("network.nodes[{index}]");
        if let Err(why) = dns_label(&peer.name) {
            problems.add(format!("{path}.name"), why);
        }
        if let Some(first) = names.insert(&peer.name, format!("{path}.name")) {
            problems.add(
                format!("{path}.name"),
                format!("{:?} is already used by {first}", peer.name),
            );
        }
        if let Some(first) = addresses.insert(peer.internal_ip, format!("{path}.internal_ip")) {
            problems.add(
                format!("{path}.internal_ip"),
                format!("{} is already used by {first}", peer.internal_ip),
            );
        }
        let pod_cidr_path = format!("{path}.pod_cidr");
        let Some(range) = peer.pod_cidr else {
            problems.add(
                pod_cidr_path,
                "must be set: routes and the overlay need each node's pod range",
            );
            continue;
        };
        check_pod_range(&pod_cidr_path, range, config.cluster.pod_cidr, problems);
        if let Some((_, first)) = pod_ranges
            .iter()
            .find(|(earlier, _)| ranges_overlap(*earlier, range))
        {
            problems.add(&pod_cidr_path, format!("{range} overlaps {first}"));
        }
        pod_ranges.push((range, pod_cidr_path));
    }
}
