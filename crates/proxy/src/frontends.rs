//! Which addresses the proxy listens on for a snapshot (sans-IO): for every TCP or UDP
//! service port the ClusterIP, the NodePort (on the node's internal IP, or on every node
//! address when the node allows it) and the LoadBalancer IP. Headless and ExternalName
//! services have no ClusterIP and so no listeners.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use dockline_config::{Protocol, ProxyProtocol};
use dockline_model::Snapshot;

/// One listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenAddr {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The address and port listened on.
    pub addr: SocketAddr,
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.protocol)
    }
}

/// What arrives on a listener is forwarded to. Kept per listener, so only what the
/// connections need: 10,000 services have more than 10,000 listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frontend {
    /// `namespace/name` of the service, shared by its listeners.
    pub(crate) service: Arc<str>,
    /// The service port.
    pub(crate) port: u16,
    /// The endpoints' port.
    pub(crate) target_port: u16,
    /// NodePort or LoadBalancer traffic, which `external_traffic_policy` applies to.
    pub(crate) external: bool,
    /// The header sent to the endpoint first on TCP connections.
    pub(crate) proxy_protocol: ProxyProtocol,
}

pub(crate) fn desired(snapshot: &Snapshot) -> BTreeMap<ListenAddr, Frontend> {
    let mut out = BTreeMap::new();
    let node = &snapshot.node;
    // "Every node address" is the wildcard of the internal IP's family: binding the other
    // family's wildcard would fail the start on hosts with IPv6 turned off.
    let node_port_ip: IpAddr = match (node.nodeport_internal_ip_only, node.internal_ip) {
        (true, ip) => ip,
        (false, IpAddr::V4(_)) => Ipv4Addr::UNSPECIFIED.into(),
        (false, IpAddr::V6(_)) => Ipv6Addr::UNSPECIFIED.into(),
    };
    for service in &snapshot.services {
        let Some(cluster_ip) = service.cluster_ip else {
            continue;
        };
        let key: Arc<str> = service.key().into();
        for port in &service.ports {
            let mut add = |ip: IpAddr, number: u16, external: bool| {
                let at = ListenAddr {
                    protocol: port.protocol,
                    addr: SocketAddr::new(ip, number),
                };
                out.entry(at).or_insert_with(|| Frontend {
                    service: key.clone(),
                    port: port.port,
                    target_port: port.target_port,
                    external,
                    proxy_protocol: service.proxy_protocol,
                });
            };
            add(cluster_ip, port.port, false);
            if let Some(node_port) = port.node_port {
                add(node_port_ip, node_port, true);
            }
            if let Some(lb) = service.load_balancer_ip {
                add(lb, port.port, true);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(annotation: &str) -> Snapshot {
        let text = format!(
            r#"
[node]
name = "node-1"
internal_ip = "172.30.0.11"
annotations = {{ "node.deckhouse.io/nodeport-bind-internal-ip" = "{annotation}" }}
[[pools]]
name = "public"
addresses = ["192.0.2.10-192.0.2.20"]
[[services]]
name = "web"
type = "LoadBalancer"
cluster_ip = "10.222.0.10"
load_balancer_ip = "192.0.2.10"
ports = [{{ name = "http", port = 80, target_port = 8080, node_port = 30080 }}, {{ name = "dns", port = 53, protocol = "UDP" }}]
[[services]]
name = "headless"
cluster_ip = "None"
ports = [{{ port = 80 }}]
[[services]]
name = "ext"
type = "ExternalName"
external_name = "example.org"
"#
        );
        dockline_model::testing::snapshot(&text)
    }

    fn addrs(s: &Snapshot) -> Vec<String> {
        desired(s).keys().map(ToString::to_string).collect()
    }

    #[test]
    fn cluster_ip_node_port_and_lb_ip_per_port() {
        let s = snapshot("true");
        let all = addrs(&s);
        assert!(all.contains(&"10.222.0.10:80/TCP".to_owned()), "{all:?}");
        assert!(all.contains(&"172.30.0.11:30080/TCP".to_owned()), "{all:?}");
        assert!(all.contains(&"192.0.2.10:80/TCP".to_owned()), "{all:?}");
        assert!(all.contains(&"10.222.0.10:53/UDP".to_owned()), "{all:?}");
        assert!(all.contains(&"192.0.2.10:53/UDP".to_owned()), "{all:?}");
        // The UDP port got a NodePort allocated too; nothing for headless/ExternalName.
        assert_eq!(all.len(), 6, "{all:?}");
        let lb = &desired(&s)[&ListenAddr {
            protocol: Protocol::Tcp,
            addr: "192.0.2.10:80".parse().unwrap(),
        }];
        assert!(lb.external);
        assert_eq!(lb.target_port, 8080);
    }

    #[test]
    fn node_ports_on_every_address_when_the_node_allows_it() {
        let all = addrs(&snapshot("false"));
        assert!(all.contains(&"0.0.0.0:30080/TCP".to_owned()), "{all:?}");
        assert!(
            !all.iter().any(|a| a.starts_with("172.30.0.11:")),
            "{all:?}"
        );
    }
}
