//! `[bgp]` and `[[pools]]`: the BGP speaker and its peers, then the LoadBalancer address
//! pools, which must not overlap each other or the cluster ranges.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::Collector;
use crate::AddressRange;
use crate::schema::{Announce, BgpPeer, Config, Pool};

pub(super) fn check_bgp(config: &Config, problems: &mut Collector) {
    let bgp = &config.bgp;
    if bgp.asn == Some(0) {
        problems.add("bgp.asn", "0 is reserved (RFC 7607)");
    }
    if !bgp.peers.is_empty() && bgp.asn.is_none() {
        problems.add("bgp.asn", "must be set when bgp.peers are given");
    }
    if !bgp.peers.is_empty()
        && bgp.router_id.is_none()
        && !matches!(config.node.internal_ip, Some(IpAddr::V4(_)))
    {
        problems.add(
            "bgp.router_id",
            "must be set: it defaults to node.internal_ip, which is not an IPv4 address",
        );
    }
    let mut seen = HashSet::new();
    for (index, peer) in bgp.peers.iter().enumerate() {
        let path = format!("bgp.peers[{index}]");
        if peer.asn == 0 {
            problems.add(format!("{path}.asn"), "0 is reserved (RFC 7607)");
        }
        if peer.hold_time != 0 && peer.hold_time < 3 {
            problems.add(
                format!("{path}.hold_time"),
                format!(
                    "{} must be 0 or at least 3 seconds (RFC 4271)",
                    peer.hold_time
                ),
            );
        }
        if !seen.insert(peer.address) {
            problems.add(
                format!("{path}.address"),
                format!("{} is listed twice", peer.address),
            );
        }
        check_peer_timers(peer, &path, problems);
        if peer.ebgp_multihop == Some(0) {
            problems.add(format!("{path}.ebgp_multihop"), "must be a TTL of 1 to 255");
        }
        if peer.ebgp_multihop.is_some() && bgp.asn == Some(peer.asn) {
            problems.add(
                format!("{path}.ebgp_multihop"),
                "applies to eBGP only: this peer is in bgp.asn (iBGP)",
            );
        }
        check_peer_bfd(peer, &path, problems);
    }
}

/// BFD (RFC 5880): the interval and multiplier only mean something with `bfd = true`.
fn check_peer_bfd(peer: &BgpPeer, path: &str, problems: &mut Collector) {
    let on = peer.bfd == Some(true);
    for (key, set) in [
        ("bfd_interval_ms", peer.bfd_interval_ms.is_some()),
        ("bfd_multiplier", peer.bfd_multiplier.is_some()),
    ] {
        if set && !on {
            problems.add(format!("{path}.{key}"), "has no effect without bfd = true");
        }
    }
    if let Some(interval) = peer.bfd_interval_ms
        && !(10..=60_000).contains(&interval)
    {
        problems.add(
            format!("{path}.bfd_interval_ms"),
            format!("{interval} must be 10 to 60000 milliseconds"),
        );
    }
    if peer.bfd_multiplier == Some(0) {
        problems.add(format!("{path}.bfd_multiplier"), "must be 1 to 255");
    }
}

/// Keepalive against hold time (RFC 4271 section 4.4) and the retry interval.
fn check_peer_timers(peer: &BgpPeer, path: &str, problems: &mut Collector) {
    if let Some(keepalive) = peer.keepalive {
        if peer.hold_time == 0 {
            problems.add(
                format!("{path}.keepalive"),
                "has no effect with hold_time = 0 (no keepalives are sent)",
            );
        } else if keepalive == 0 || keepalive >= peer.hold_time {
            problems.add(
                format!("{path}.keepalive"),
                format!(
                    "{keepalive} must be at least 1 and below hold_time ({})",
                    peer.hold_time
                ),
            );
        }
    }
    if peer.connect_retry_s == 0 {
        problems.add(
            format!("{path}.connect_retry_s"),
            "must be at least 1 second",
        );
    }
}

pub(super) fn check_pools(config: &Config, problems: &mut Collector) {
    let mut names = HashMap::new();
    // Every range of the earlier pools, with its path.
    let mut ranges: Vec<(AddressRange, String)> = Vec::new();
    for (index, pool) in config.pools.iter().enumerate() {
        let path = format!("pools[{index}]");
        if pool.name.is_empty() {
            problems.add(format!("{path}.name"), "must not be empty");
        }
        if let Some(first) = names.insert(pool.name.as_str(), index) {
            problems.add(
                format!("{path}.name"),
                format!("{:?} is already used by pools[{first}]", pool.name),
            );
        }
        if pool.addresses.is_empty() {
            problems.add(format!("{path}.addresses"), "needs at least one range");
        }
        for (range_index, range) in pool.addresses.iter().enumerate() {
            let here = format!("{path}.addresses[{range_index}]");
            if let Some((_, other)) = ranges.iter().find(|(earlier, _)| earlier.overlaps(range)) {
                problems.add(&here, format!("{range} overlaps {other}"));
            }
            for (what, network) in [
                ("cluster.service_cidr", config.cluster.service_cidr),
                ("cluster.pod_cidr", config.cluster.pod_cidr),
            ] {
                if range.overlaps(&network.into()) {
                    problems.add(&here, format!("{range} overlaps {what} {network}"));
                }
            }
            ranges.push((*range, here));
        }
        check_announcement(config, pool, &path, problems);
    }
}

/// How a pool's addresses are announced: the methods and the BGP communities.
fn check_announcement(config: &Config, pool: &Pool, path: &str, problems: &mut Collector) {
    let mut seen = HashSet::new();
    for (index, method) in pool.announce.iter().enumerate() {
        if !seen.insert(method) {
            problems.add(format!("{path}.announce[{index}]"), "is listed twice");
        }
    }
    if pool.announce.contains(&Announce::Bgp) && config.bgp.asn.is_none() {
        problems.add(
            format!("{path}.announce"),
            "\"bgp\" needs bgp.asn and bgp.peers",
        );
    }
    for (key, length, most) in [
        ("aggregation_length", pool.aggregation_length, 32),
        ("aggregation_length_v6", pool.aggregation_length_v6, 128),
    ] {
        if let Some(length) = length {
            if length > most {
                problems.add(
                    format!("{path}.{key}"),
                    format!("{length} is longer than {most} bits"),
                );
            }
            if !pool.announce.contains(&Announce::Bgp) {
                problems.add(
                    format!("{path}.{key}"),
                    "applies to BGP only: add \"bgp\" to announce",
                );
            }
        }
    }
    for (index, community) in pool.communities.iter().enumerate() {
        if !valid_community(community, 2) {
            problems.add(
                format!("{path}.communities[{index}]"),
                format!("{community:?} is not a community ASN:VALUE of two 16-bit numbers"),
            );
        }
    }
    for (index, community) in pool.large_communities.iter().enumerate() {
        if !valid_community(community, 3) {
            problems.add(
                format!("{path}.large_communities[{index}]"),
                format!("{community:?} is not a large community of three 32-bit numbers A:B:C"),
            );
        }
    }
}

/// `parts` numbers separated by ':'; 16-bit each for classic communities (RFC 1997),
/// 32-bit for large ones (RFC 8092).
fn valid_community(text: &str, parts: usize) -> bool {
    let fields: Vec<&str> = text.split(':').collect();
    fields.len() == parts
        && fields.iter().all(|field| {
            if parts == 2 {
                field.parse::<u16>().is_ok()
            } else {
                field.parse::<u32>().is_ok()
            }
        })
}
