//! `[dns]` and `[admin]`: the listen addresses, the TTL and the upstream resolvers.

use std::collections::HashSet;
use std::net::SocketAddr;

use super::Collector;
use crate::schema::Config;

pub(super) fn check_dns(config: &Config, problems: &mut Collector) {
    let dns = &config.dns;
    if dns.enabled && dns.listen.is_empty() {
        problems.add(
            "dns.listen",
            "needs at least one address while dns.enabled = true",
        );
    }
    check_unique_addresses("dns.listen", &dns.listen, problems);
    // RFC 2181 section 8: TTLs are 31-bit.
    if dns.ttl > i32::MAX as u32 {
        problems.add(
            "dns.ttl",
            format!("{} is above the maximum {}", dns.ttl, i32::MAX),
        );
    }
    for (index, upstream) in dns.forward.iter().enumerate() {
        if dns.listen.contains(&upstream.0) {
            problems.add(
                format!("dns.forward[{index}]"),
                format!("{upstream} is this server's own listen address"),
            );
        }
    }
}

fn check_unique_addresses(path: &str, addresses: &[SocketAddr], problems: &mut Collector) {
    let mut seen = HashSet::new();
    for (index, address) in addresses.iter().enumerate() {
        if !seen.insert(address) {
            problems.add(
                format!("{path}[{index}]"),
                format!("{address} is listed twice"),
            );
        }
    }
}

pub(super) fn check_admin(config: &Config, problems: &mut Collector) {
    if config.admin.listen.port() == 0 {
        problems.add("admin.listen", "needs a port other than 0");
    }
}
