//! Which addresses this node must treat as its own, computed from the snapshot alone.
//!
//! LoadBalancer IPs are local on every node when the proxy serves them or a pool announces
//! them: the announcers decide who attracts the traffic (ARP/NDP owner, BGP), not the routes,
//! so a takeover needs no route change. ClusterIPs are local only while dockline's proxy
//! owns services; with `proxy.enabled = false` another proxy (kube-proxy, Cilium) does.

use std::collections::BTreeSet;
use std::net::IpAddr;

use dockline_model::Snapshot;

/// The addresses this node makes local: every announced LoadBalancer IP, and while the
/// proxy is on, every LoadBalancer IP and ClusterIP it serves.
pub fn local_addresses(snapshot: &Snapshot) -> BTreeSet<IpAddr> {
    let proxy = snapshot.config.proxy.enabled;
    let mut addresses: BTreeSet<IpAddr> = snapshot
        .vips
        .iter()
        .filter(|vip| proxy || !vip.announce.is_empty())
        .map(|vip| vip.ip)
        .collect();
    if proxy {
        addresses.extend(snapshot.services.iter().filter_map(|s| s.cluster_ip));
    }
    addresses
}

/// What to add and what to remove to get from `current` to `desired`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// Desired, not yet in the kernel.
    pub add: Vec<IpAddr>,
    /// In the kernel (made by dockline), no longer desired.
    pub remove: Vec<IpAddr>,
}

/// The changes that turn `current` into `desired`, each list in address order.
pub fn diff(current: &BTreeSet<IpAddr>, desired: &BTreeSet<IpAddr>) -> Diff {
    Diff {
        add: desired.difference(current).copied().collect(),
        remove: current.difference(desired).copied().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dockline_model::testing::snapshot;

    const SERVICES: &str = r#"
[[pools]]
name = "p"
addresses = ["192.0.2.10-192.0.2.20"]
announce = ["l2"]
[[pools]]
name = "quiet"
addresses = ["198.51.100.1-198.51.100.5"]
auto_assign = false
[[services]]
name = "web"
cluster_ip = "10.222.0.10"
type = "LoadBalancer"
load_balancer_ip = "192.0.2.10"
ports = [{ port = 80 }]
[[services]]
name = "db"
cluster_ip = "None"
ports = [{ port = 5432 }]
[[services]]
name = "plain"
type = "LoadBalancer"
pool = "quiet"
cluster_ip = "10.222.0.11"
load_balancer_ip = "198.51.100.1"
ports = [{ port = 80 }]
"#;

    fn ips(list: &[&str]) -> BTreeSet<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn with_the_proxy_cluster_ips_and_every_vip_are_local() {
        let s = snapshot(SERVICES);
        assert_eq!(
            local_addresses(&s),
            ips(&["10.222.0.10", "10.222.0.11", "192.0.2.10", "198.51.100.1"])
        );
    }

    #[test]
    fn without_the_proxy_only_announced_vips_are_local() {
        let s = snapshot(&format!("[proxy]\nenabled = false\n{SERVICES}"));
        assert_eq!(local_addresses(&s), ips(&["192.0.2.10"]));
    }

    #[test]
    fn diff_adds_the_missing_and_removes_the_stale() {
        let d = diff(
            &ips(&["10.0.0.1", "10.0.0.2"]),
            &ips(&["10.0.0.2", "10.0.0.3"]),
        );
        assert_eq!(d.add, ips(&["10.0.0.3"]).into_iter().collect::<Vec<_>>());
        assert_eq!(d.remove, ips(&["10.0.0.1"]).into_iter().collect::<Vec<_>>());
        assert_eq!(
            diff(&ips(&["10.0.0.1"]), &ips(&["10.0.0.1"])),
            Diff::default()
        );
    }
}
