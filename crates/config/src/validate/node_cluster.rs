//! `[node]`, `[cluster]` and `[cluster.gossip]`: this node's identity and the cluster-wide
//! ranges every pod range and service address must fit in.

use std::net::SocketAddr;

use ipnet::IpNet;

use super::Collector;
use super::names::{dns_label, dns_name};
use crate::schema::{AllowedNode, Config, Gossip, NODEPORT_BIND_INTERNAL_IP, TunnelMode};

pub(super) fn check_node(config: &Config, problems: &mut Collector) {
    let node = &config.node;
    if let Err(why) = dns_label(&node.name) {
        problems.add("node.name", why);
    }
    let has_peers = config.cluster.gossip.listen.is_some() || !config.network.nodes.is_empty();
    if node.internal_ip.is_none() && has_peers {
        problems.add(
            "node.internal_ip",
            "must be set when the node has peers (cluster.gossip.listen or network.nodes)",
        );
    }
    if let Some(ip) = node.internal_ip
        && (ip.is_unspecified() || ip.is_multicast())
    {
        problems.add(
            "node.internal_ip",
            format!("{ip} is not a unicast host address"),
        );
    }
    if let Some(value) = node.annotations.get(NODEPORT_BIND_INTERNAL_IP)
        && value != "true"
        && value != "false"
    {
        problems.add(
            format!("node.annotations.\"{NODEPORT_BIND_INTERNAL_IP}\""),
            format!("{value:?} must be \"true\" or \"false\""),
        );
    }
    if let Some(pod_cidr) = node.pod_cidr {
        check_pod_range("node.pod_cidr", pod_cidr, config.cluster.pod_cidr, problems);
    }
    if config.network.tunnel_mode == TunnelMode::Vxlan && node.pod_cidr.is_none() && has_peers {
        problems.add(
            "node.pod_cidr",
            "must be set in VXLAN mode: its first address is the node's overlay address",
        );
    }
}

/// A node's pod range: a network address, inside `cluster.pod_cidr`.
pub(super) fn check_pod_range(
    path: &str,
    range: IpNet,
    cluster_pod_cidr: IpNet,
    problems: &mut Collector,
) {
    check_host_bits(path, range, problems);
    if !cluster_pod_cidr.contains(&range) {
        problems.add(
            path,
            format!("{range} is outside cluster.pod_cidr {cluster_pod_cidr}"),
        );
    }
}

/// Whether two CIDRs share an address (then one contains the other).
pub(super) fn ranges_overlap(first: IpNet, second: IpNet) -> bool {
    first.contains(&second.network()) || second.contains(&first.network())
}

fn check_host_bits(path: &str, network: IpNet, problems: &mut Collector) {
    if network.trunc() != network {
        problems.add(
            path,
            format!(
                "{network} has host bits set; the network is {}",
                network.trunc()
            ),
        );
    }
}

pub(super) fn check_cluster(config: &Config, problems: &mut Collector) {
    let cluster = &config.cluster;
    if let Err(why) = dns_name(&cluster.domain) {
        problems.add("cluster.domain", why);
    }
    check_host_bits("cluster.pod_cidr", cluster.pod_cidr, problems);
    check_host_bits("cluster.service_cidr", cluster.service_cidr, problems);
    if ranges_overlap(cluster.pod_cidr, cluster.service_cidr) {
        problems.add(
            "cluster.service_cidr",
            format!(
                "{} overlaps cluster.pod_cidr {}",
                cluster.service_cidr, cluster.pod_cidr
            ),
        );
    }
    check_gossip(&cluster.gossip, problems);
    for (index, entry) in cluster.allowed_nodes.iter().enumerate() {
        let path = format!("cluster.allowed_nodes[{index}]");
        match entry {
            AllowedNode::Name(name) => {
                if let Err(why) = dns_label(name) {
                    problems.add(
                        path,
                        format!("{why} (a node name, or a CIDR of internal IPs)"),
                    );
                }
            }
            AllowedNode::Network(network) => check_host_bits(&path, *network, problems),
        }
    }
}

fn check_gossip(gossip: &Gossip, problems: &mut Collector) {
    if !gossip.seeds.is_empty() && gossip.listen.is_none() {
        problems.add("cluster.gossip.listen", "must be set when seeds are given");
    }
    // Seeds may list the node itself (one [cluster] section for every node): membership
    // skips its own address.
    if let Some(listen) = gossip.listen {
        check_gossip_secret(listen, gossip, problems);
    }
    let timing = gossip.timing();
    for (key, value) in [
        ("probe_interval_ms", timing.probe_interval_ms),
        ("probe_timeout_ms", timing.probe_timeout_ms),
        ("suspect_timeout_ms", timing.suspect_timeout_ms),
    ] {
        if !(5..=60_000).contains(&value) {
            problems.add(
                format!("cluster.gossip.{key}"),
                format!("{value} is outside 5-60000"),
            );
        }
    }
    if timing.probe_timeout_ms >= timing.probe_interval_ms {
        problems.add(
            "cluster.gossip.probe_timeout_ms",
            format!(
                "{} must be less than probe_interval_ms ({})",
                timing.probe_timeout_ms, timing.probe_interval_ms
            ),
        );
    }
}

/// Gossip off loopback is authenticated unless the user opts out in writing.
fn check_gossip_secret(listen: SocketAddr, gossip: &Gossip, problems: &mut Collector) {
    match (&gossip.secret_file, gossip.insecure) {
        (Some(_), true) => problems.add(
            "cluster.gossip.insecure",
            "contradicts cluster.gossip.secret_file: remove one of them",
        ),
        (None, false) if !listen.ip().is_loopback() => problems.add(
            "cluster.gossip.secret_file",
            format!(
                "must be set: cluster.gossip.listen {listen} is not a loopback address, and \
                 anyone who reaches it could join the cluster and take VIPs. Write a key \
                 (`head -c 32 /dev/urandom | base64 > /etc/dockline/gossip.key`, the same file \
                 on every node) and set secret_file to it, or set \
                 cluster.gossip.insecure = true on a network only trusted hosts reach"
            ),
        ),
        _ => {}
    }
}
