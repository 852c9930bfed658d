//! `[dns]` and `[admin]`: the listen addresses, the TTL, the upstream resolvers and the
//! cache of their answers.

use std::collections::HashSet;
use std::net::SocketAddr;

use super::Collector;
use crate::schema::{Config, DnsCache};

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
    check_ttl("dns.ttl", dns.ttl, problems);
    for (index, upstream) in dns.forward.iter().enumerate() {
        if dns.listen.contains(&upstream.0) {
            problems.add(
                format!("dns.forward[{index}]"),
                format!("{upstream} is this server's own listen address"),
            );
        }
    }
    check_cache(&dns.cache, problems);
}

/// `[dns.cache]`: times are TTLs (31-bit), the minimum not above the maximum, room for at
/// least one answer while the cache is on.
fn check_cache(cache: &DnsCache, problems: &mut Collector) {
    if cache.enabled && cache.max_entries == 0 {
        problems.add(
            "dns.cache.max_entries",
            "needs at least 1 while dns.cache.enabled = true",
        );
    }
    for (key, seconds) in [
        ("min_ttl_s", cache.min_ttl_s),
        ("max_ttl_s", cache.max_ttl_s),
        ("negative_ttl_s", cache.negative_ttl_s),
        ("serve_stale_s", cache.serve_stale_s),
    ] {
        check_ttl(&format!("dns.cache.{key}"), seconds, problems);
    }
    if cache.min_ttl_s > cache.max_ttl_s {
        problems.add(
            "dns.cache.min_ttl_s",
            format!(
                "{} is above dns.cache.max_ttl_s ({})",
                cache.min_ttl_s, cache.max_ttl_s
            ),
        );
    }
}

fn check_ttl(path: &str, seconds: u32, problems: &mut Collector) {
    if seconds > i32::MAX as u32 {
        problems.add(path, format!("{seconds} is above the maximum {}", i32::MAX));
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
