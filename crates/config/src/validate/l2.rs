//! `[l2]`: the interfaces ARP/NDP is answered on and the gratuitous announcements.

use std::collections::HashSet;

use super::Collector;
use super::names::interface_name;
use crate::schema::Config;

pub(super) fn check_l2(config: &Config, problems: &mut Collector) {
    let l2 = &config.l2;
    let mut seen = HashSet::new();
    for (index, name) in l2.interfaces.iter().enumerate() {
        let path = format!("l2.interfaces[{index}]");
        if let Err(why) = interface_name(name) {
            problems.add(&path, why);
        }
        if !seen.insert(name) {
            problems.add(path, format!("{name:?} is listed twice"));
        }
    }
    if !l2.interfaces.is_empty()
        && !config.network.nodes.is_empty()
        && config.cluster.gossip.listen.is_none()
    {
        problems.add(
            "cluster.gossip.listen",
            "must be set when l2.interfaces and network.nodes are: without membership \
             every node would answer for every VIP",
        );
    }
    if l2.gratuitous_count > 100 {
        problems.add("l2.gratuitous_count", "must be at most 100");
    }
    if !(1..=10_000).contains(&l2.gratuitous_interval_ms) {
        problems.add("l2.gratuitous_interval_ms", "must be within 1-10000");
    }
}
