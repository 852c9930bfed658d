//! Rules across values: ranges, containment, uniqueness and the Kubernetes service rules.
//! Every broken rule is collected with the path of the value to change.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;

use ipnet::IpNet;

use crate::schema::*;
use crate::{AddressRange, Problem, Problems};

/// The Kubernetes default NodePort range.
pub const NODE_PORT_RANGE: RangeInclusive<u16> = 30000..=32767;

const MAX_VNI: u32 = (1 << 24) - 1;
/// Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
const MAX_IFNAME: usize = 15;

/// Checks every rule; returns all broken ones.
pub fn validate(config: &Config) -> Result<(), Problems> {
    let mut v = Validator::default();
    v.node(config);
    v.cluster(config);
    v.network(config);
    v.dns(config);
    v.proxy(config);
    v.l2(config);
    v.bgp(config);
    v.pools(config);
    v.services(config);
    if v.problems.is_empty() {
        Ok(())
    } else {
        Err(Problems(v.problems))
    }
}

/// LoadBalancer IPs given explicitly: ip -> (sharing key, policy, ports, first service).
type SharedIps<'c> =
    BTreeMap<IpAddr, (Option<&'c str>, TrafficPolicy, Vec<(Protocol, u16)>, usize)>;

#[derive(Default)]
struct Validator {
    problems: Vec<Problem>,
}

impl Validator {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    fn node(&mut self, c: &Config) {
        let node = &c.node;
        if let Err(why) = dns_label(&node.name) {
            self.err("node.name", why);
        }
        let has_peers = c.cluster.gossip.listen.is_some() || !c.network.nodes.is_empty();
        if node.internal_ip.is_none() && has_peers {
            self.err(
                "node.internal_ip",
                "must be set when the node has peers (cluster.gossip.listen or network.nodes)",
            );
        }
        if let Some(ip) = node.internal_ip
            && (ip.is_unspecified() || ip.is_multicast())
        {
            self.err(
                "node.internal_ip",
                format!("{ip} is not a unicast host address"),
            );
        }
        if let Some(value) = node.annotations.get(NODEPORT_BIND_INTERNAL_IP)
            && value != "true"
            && value != "false"
        {
            self.err(
                format!("node.annotations.\"{NODEPORT_BIND_INTERNAL_IP}\""),
                format!("{value:?} must be \"true\" or \"false\""),
            );
        }
        if let Some(pod_cidr) = node.pod_cidr {
            self.pod_range("node.pod_cidr", pod_cidr, c.cluster.pod_cidr);
        }
        if c.network.tunnel_mode == TunnelMode::Vxlan && node.pod_cidr.is_none() && has_peers {
            self.err(
                "node.pod_cidr",
                "must be set in VXLAN mode: its first address is the node's overlay address",
            );
        }
    }

    fn pod_range(&mut self, path: &str, range: IpNet, cluster: IpNet) {
        if range.trunc() != range {
            self.err(
                path,
                format!(
                    "{range} has host bits set; the network is {}",
                    range.trunc()
                ),
            );
        }
        if !cluster.contains(&range) {
            self.err(
                path,
                format!("{range} is outside cluster.pod_cidr {cluster}"),
            );
        }
    }

    fn cluster(&mut self, c: &Config) {
        let cl = &c.cluster;
        if let Err(why) = dns_name(&cl.domain) {
            self.err("cluster.domain", why);
        }
        for (path, net) in [
            ("cluster.pod_cidr", cl.pod_cidr),
            ("cluster.service_cidr", cl.service_cidr),
        ] {
            if net.trunc() != net {
                self.err(
                    path,
                    format!("{net} has host bits set; the network is {}", net.trunc()),
                );
            }
        }
        if cl.pod_cidr.contains(&cl.service_cidr.network())
            || cl.service_cidr.contains(&cl.pod_cidr.network())
        {
            self.err(
                "cluster.service_cidr",
                format!(
                    "{} overlaps cluster.pod_cidr {}",
                    cl.service_cidr, cl.pod_cidr
                ),
            );
        }
        let g = &cl.gossip;
        if !g.seeds.is_empty() && g.listen.is_none() {
            self.err("cluster.gossip.listen", "must be set when seeds are given");
        }
        for (i, seed) in g.seeds.iter().enumerate() {
            if Some(*seed) == g.listen {
                self.err(
                    format!("cluster.gossip.seeds[{i}]"),
                    "is this node's own listen address",
                );
            }
        }
        let t = g.timing();
        for (key, value) in [
            ("probe_interval_ms", t.probe_interval_ms),
            ("probe_timeout_ms", t.probe_timeout_ms),
            ("suspect_timeout_ms", t.suspect_timeout_ms),
        ] {
            if !(5..=60_000).contains(&value) {
                self.err(
                    format!("cluster.gossip.{key}"),
                    format!("{value} is outside 5-60000"),
                );
            }
        }
        if t.probe_timeout_ms >= t.probe_interval_ms {
            self.err(
                "cluster.gossip.probe_timeout_ms",
                format!(
                    "{} must be less than probe_interval_ms ({})",
                    t.probe_timeout_ms, t.probe_interval_ms
                ),
            );
        }
    }

    fn network(&mut self, c: &Config) {
        let n = &c.network;
        if n.vxlan.vni == 0 || n.vxlan.vni > MAX_VNI {
            self.err(
                "network.vxlan.vni",
                format!("{} is outside 1-{MAX_VNI}", n.vxlan.vni),
            );
        }
        if n.vxlan.port == 0 {
            self.err("network.vxlan.port", "must not be 0");
        }
        if let Err(why) = interface_name(&n.vxlan.device) {
            self.err("network.vxlan.device", why);
        }
        // IPv6 needs 1280 on the overlay; the encapsulation takes up to 70 bytes more.
        if !(1350..=65535).contains(&n.vxlan.underlay_mtu) {
            self.err(
                "network.vxlan.underlay_mtu",
                format!("{} is outside 1350-65535", n.vxlan.underlay_mtu),
            );
        }
        let mut names = HashMap::from([(c.node.name.as_str(), "node.name".to_owned())]);
        let mut ips: HashMap<IpAddr, String> = HashMap::new();
        if let Some(ip) = c.node.internal_ip {
            ips.insert(ip, "node.internal_ip".into());
        }
        let mut pod_ranges: Vec<(IpNet, String)> = c
            .node
            .pod_cidr
            .map(|r| (r, "node.pod_cidr".to_owned()))
            .into_iter()
            .collect();
        for (i, peer) in n.nodes.iter().enumerate() {
            let path = format!("network.nodes[{i}]");
            if let Err(why) = dns_label(&peer.name) {
                self.err(format!("{path}.name"), why);
            }
            if let Some(first) = names.insert(&peer.name, format!("{path}.name")) {
                self.err(
                    format!("{path}.name"),
                    format!("{:?} is already used by {first}", peer.name),
                );
            }
            if let Some(first) = ips.insert(peer.internal_ip, format!("{path}.internal_ip")) {
                self.err(
                    format!("{path}.internal_ip"),
                    format!("{} is already used by {first}", peer.internal_ip),
                );
            }
            match peer.pod_cidr {
                Some(range) => {
                    self.pod_range(&format!("{path}.pod_cidr"), range, c.cluster.pod_cidr);
                    if let Some((_, first)) = pod_ranges.iter().find(|(r, _)| overlaps(*r, range)) {
                        self.err(
                            format!("{path}.pod_cidr"),
                            format!("{range} overlaps {first}"),
                        );
                    }
                    pod_ranges.push((range, format!("{path}.pod_cidr")));
                }
                None => self.err(
                    format!("{path}.pod_cidr"),
                    "must be set: routes and the overlay need each node's pod range",
                ),
            }
        }
    }

    fn dns(&mut self, c: &Config) {
        if c.dns.enabled && c.dns.listen.is_empty() {
            self.err(
                "dns.listen",
                "needs at least one address while dns.enabled = true",
            );
        }
        self.unique_addrs("dns.listen", &c.dns.listen);
        // RFC 2181 section 8: TTLs are 31-bit.
        if c.dns.ttl > i32::MAX as u32 {
            self.err(
                "dns.ttl",
                format!("{} is above the maximum {}", c.dns.ttl, i32::MAX),
            );
        }
        for (i, up) in c.dns.forward.iter().enumerate() {
            if c.dns.listen.contains(&up.0) {
                self.err(
                    format!("dns.forward[{i}]"),
                    format!("{up} is this server's own listen address"),
                );
            }
        }
        if c.admin.listen.port() == 0 {
            self.err("admin.listen", "needs a port other than 0");
        }
    }

    fn unique_addrs(&mut self, path: &str, addrs: &[SocketAddr]) {
        let mut seen = HashSet::new();
        for (i, a) in addrs.iter().enumerate() {
            if !seen.insert(a) {
                self.err(format!("{path}[{i}]"), format!("{a} is listed twice"));
            }
        }
    }

    fn l2(&mut self, c: &Config) {
        let mut seen = HashSet::new();
        for (i, name) in c.l2.interfaces.iter().enumerate() {
            if let Err(why) = interface_name(name) {
                self.err(format!("l2.interfaces[{i}]"), why);
            }
            if !seen.insert(name) {
                self.err(
                    format!("l2.interfaces[{i}]"),
                    format!("{name:?} is listed twice"),
                );
            }
        }
        if !c.l2.interfaces.is_empty()
            && !c.network.nodes.is_empty()
            && c.cluster.gossip.listen.is_none()
        {
            self.err(
                "cluster.gossip.listen",
                "must be set when l2.interfaces and network.nodes are: without membership \
                 every node would answer for every VIP",
            );
        }
        if c.l2.gratuitous_count > 100 {
            self.err("l2.gratuitous_count", "must be at most 100");
        }
        if !(1..=10_000).contains(&c.l2.gratuitous_interval_ms) {
            self.err("l2.gratuitous_interval_ms", "must be within 1-10000");
        }
    }

    fn bgp(&mut self, c: &Config) {
        let b = &c.bgp;
        if b.asn == Some(0) {
            self.err("bgp.asn", "0 is reserved (RFC 7607)");
        }
        if !b.peers.is_empty() && b.asn.is_none() {
            self.err("bgp.asn", "must be set when bgp.peers are given");
        }
        if !b.peers.is_empty()
            && b.router_id.is_none()
            && !matches!(c.node.internal_ip, Some(IpAddr::V4(_)))
        {
            self.err(
                "bgp.router_id",
                "must be set: it defaults to node.internal_ip, which is not an IPv4 address",
            );
        }
        let mut seen = HashSet::new();
        for (i, peer) in b.peers.iter().enumerate() {
            let path = format!("bgp.peers[{i}]");
            if peer.asn == 0 {
                self.err(format!("{path}.asn"), "0 is reserved (RFC 7607)");
            }
            if peer.hold_time != 0 && peer.hold_time < 3 {
                self.err(
                    format!("{path}.hold_time"),
                    format!(
                        "{} must be 0 or at least 3 seconds (RFC 4271)",
                        peer.hold_time
                    ),
                );
            }
            if !seen.insert(peer.address) {
                self.err(
                    format!("{path}.address"),
                    format!("{} is listed twice", peer.address),
                );
            }
        }
    }

    fn pools(&mut self, c: &Config) {
        let mut names = HashMap::new();
        let mut ranges: Vec<(AddressRange, String)> = Vec::new();
        for (i, pool) in c.pools.iter().enumerate() {
            let path = format!("pools[{i}]");
            if pool.name.is_empty() {
                self.err(format!("{path}.name"), "must not be empty");
            }
            if let Some(first) = names.insert(pool.name.as_str(), i) {
                self.err(
                    format!("{path}.name"),
                    format!("{:?} is already used by pools[{first}]", pool.name),
                );
            }
            if pool.addresses.is_empty() {
                self.err(format!("{path}.addresses"), "needs at least one range");
            }
            for (j, range) in pool.addresses.iter().enumerate() {
                let here = format!("{path}.addresses[{j}]");
                if let Some((_, other)) = ranges.iter().find(|(r, _)| r.overlaps(range)) {
                    self.err(&here, format!("{range} overlaps {other}"));
                }
                for (what, net) in [
                    ("cluster.service_cidr", c.cluster.service_cidr),
                    ("cluster.pod_cidr", c.cluster.pod_cidr),
                ] {
                    if range.overlaps(&net.into()) {
                        self.err(&here, format!("{range} overlaps {what} {net}"));
                    }
                }
                ranges.push((*range, here));
            }
            let mut seen = HashSet::new();
            for (j, a) in pool.announce.iter().enumerate() {
                if !seen.insert(a) {
                    self.err(format!("{path}.announce[{j}]"), "is listed twice");
                }
            }
            if pool.announce.contains(&Announce::Bgp) && c.bgp.asn.is_none() {
                self.err(
                    format!("{path}.announce"),
                    "\"bgp\" needs bgp.asn and bgp.peers",
                );
            }
            for (j, community) in pool.communities.iter().enumerate() {
                if !valid_community(community, 2) {
                    self.err(
                        format!("{path}.communities[{j}]"),
                        format!("{community:?} is not a community ASN:VALUE of two 16-bit numbers"),
                    );
                }
            }
            for (j, community) in pool.large_communities.iter().enumerate() {
                if !valid_community(community, 3) {
                    self.err(
                        format!("{path}.large_communities[{j}]"),
                        format!(
                            "{community:?} is not a large community of three 32-bit numbers A:B:C"
                        ),
                    );
                }
            }
        }
    }

    fn services(&mut self, c: &Config) {
        let mut names: HashMap<(&str, &str), usize> = HashMap::new();
        let mut cluster_ips: HashMap<IpAddr, usize> = HashMap::new();
        let mut node_ports: HashMap<(Protocol, u16), String> = HashMap::new();
        // Services sharing a LoadBalancer IP: ip -> (sharing key, policy, ports, first service).
        let mut lb_ips: SharedIps = BTreeMap::new();
        for (i, s) in c.services.iter().enumerate() {
            let path = format!("services[{i}]");
            if let Err(why) = dns_label(&s.name) {
                self.err(format!("{path}.name"), why);
            }
            if let Err(why) = dns_label(&s.namespace) {
                self.err(format!("{path}.namespace"), why);
            }
            if let Some(first) = names.insert((&s.namespace, &s.name), i) {
                self.err(
                    format!("{path}.name"),
                    format!(
                        "{}/{} is already defined by services[{first}]",
                        s.namespace, s.name
                    ),
                );
            }
            self.service_kind(s, &path);
            if let Some(ClusterIp::Address(ip)) = s.cluster_ip {
                if !c.cluster.service_cidr.contains(&ip) {
                    self.err(
                        format!("{path}.cluster_ip"),
                        format!(
                            "{ip} is outside cluster.service_cidr {}",
                            c.cluster.service_cidr
                        ),
                    );
                } else if ip == c.cluster.service_cidr.network()
                    || (ip.is_ipv4() && ip == c.cluster.service_cidr.broadcast())
                {
                    self.err(
                        format!("{path}.cluster_ip"),
                        format!("{ip} is the network or broadcast address"),
                    );
                }
                if let Some(first) = cluster_ips.insert(ip, i) {
                    self.err(
                        format!("{path}.cluster_ip"),
                        format!("{ip} is already used by services[{first}]"),
                    );
                }
            }
            self.ports(s, &path, &mut node_ports);
            self.load_balancer(c, s, i, &path, &mut lb_ips);
            self.health_check(s, &path);
            if s.max_connections == Some(0) {
                self.err(format!("{path}.max_connections"), "must be at least 1");
            }
            if s.proxy_protocol != ProxyProtocol::None
                && (s.kind == ServiceType::ExternalName
                    || s.cluster_ip == Some(ClusterIp::Headless))
            {
                self.err(
                    format!("{path}.proxy_protocol"),
                    "only for services the proxy forwards (not headless or ExternalName)",
                );
            }
            for (j, ep) in s.endpoints.iter().enumerate() {
                let here = format!("{path}.endpoints[{j}]");
                if ep.ip.is_unspecified() || ep.ip.is_multicast() {
                    self.err(
                        format!("{here}.ip"),
                        format!("{} is not a unicast host address", ep.ip),
                    );
                }
                if let Some(h) = &ep.hostname
                    && let Err(why) = dns_label(h)
                {
                    self.err(format!("{here}.hostname"), why);
                }
                if let Some(node) = &ep.node
                    && let Err(why) = dns_label(node)
                {
                    self.err(format!("{here}.node"), why);
                }
            }
        }
    }

    fn service_kind(&mut self, s: &Service, path: &str) {
        let headless = s.cluster_ip == Some(ClusterIp::Headless);
        match s.kind {
            ServiceType::ExternalName => {
                match &s.external_name {
                    None => self.err(
                        format!("{path}.external_name"),
                        "ExternalName services need external_name",
                    ),
                    Some(name) => {
                        if let Err(why) = dns_name(name) {
                            self.err(format!("{path}.external_name"), why);
                        }
                    }
                }
                if !s.ports.is_empty() {
                    self.err(
                        format!("{path}.ports"),
                        "ExternalName services have no ports",
                    );
                }
                if s.cluster_ip.is_some() {
                    self.err(
                        format!("{path}.cluster_ip"),
                        "ExternalName services have no cluster IP",
                    );
                }
                if !s.endpoints.is_empty() {
                    self.err(
                        format!("{path}.endpoints"),
                        "ExternalName services have no endpoints",
                    );
                }
            }
            kind => {
                if s.external_name.is_some() {
                    self.err(
                        format!("{path}.external_name"),
                        format!("only for ExternalName services, this one is {kind}"),
                    );
                }
                if headless && kind != ServiceType::ClusterIP {
                    self.err(
                        format!("{path}.cluster_ip"),
                        format!("\"None\" (headless) is only for ClusterIP services; {kind} services need a cluster IP"),
                    );
                }
                if !headless && s.ports.is_empty() {
                    self.err(
                        format!("{path}.ports"),
                        "needs at least one port (only headless services may have none)",
                    );
                }
            }
        }
        if s.kind != ServiceType::LoadBalancer {
            if s.load_balancer_ip.is_some() {
                self.err(
                    format!("{path}.load_balancer_ip"),
                    "only for LoadBalancer services",
                );
            }
            if s.pool.is_some() {
                self.err(format!("{path}.pool"), "only for LoadBalancer services");
            }
            if s.sharing_key.is_some() {
                self.err(
                    format!("{path}.sharing_key"),
                    "only for LoadBalancer services",
                );
            }
        }
        if s.external_traffic_policy == TrafficPolicy::Local
            && !matches!(s.kind, ServiceType::NodePort | ServiceType::LoadBalancer)
        {
            self.err(
                format!("{path}.external_traffic_policy"),
                "\"Local\" is only for NodePort and LoadBalancer services",
            );
        }
    }

    fn ports(
        &mut self,
        s: &Service,
        path: &str,
        node_ports: &mut HashMap<(Protocol, u16), String>,
    ) {
        let mut seen_ports = HashSet::new();
        let mut seen_names = HashSet::new();
        let takes_node_port = matches!(s.kind, ServiceType::NodePort | ServiceType::LoadBalancer);
        for (j, p) in s.ports.iter().enumerate() {
            let here = format!("{path}.ports[{j}]");
            match &p.name {
                Some(name) => {
                    if let Err(why) = dns_label(name) {
                        self.err(format!("{here}.name"), why);
                    }
                    if !seen_names.insert(name) {
                        self.err(
                            format!("{here}.name"),
                            format!("{name:?} is used by another port of this service"),
                        );
                    }
                }
                None if s.ports.len() > 1 => self.err(
                    format!("{here}.name"),
                    "must be set when a service has several ports",
                ),
                None => {}
            }
            if p.port == 0 {
                self.err(format!("{here}.port"), "must be 1-65535");
            }
            if p.target_port == Some(0) {
                self.err(format!("{here}.target_port"), "must be 1-65535");
            }
            if !seen_ports.insert((p.protocol, p.port)) {
                self.err(
                    format!("{here}.port"),
                    format!("{}/{} is listed twice", p.port, p.protocol),
                );
            }
            if let Some(np) = p.node_port {
                if !takes_node_port {
                    self.err(
                        format!("{here}.node_port"),
                        format!("only NodePort and LoadBalancer services have node ports, this one is {}", s.kind),
                    );
                } else if !NODE_PORT_RANGE.contains(&np) {
                    self.err(
                        format!("{here}.node_port"),
                        format!(
                            "{np} is outside the NodePort range {}-{}",
                            NODE_PORT_RANGE.start(),
                            NODE_PORT_RANGE.end()
                        ),
                    );
                } else if let Some(first) =
                    node_ports.insert((p.protocol, np), format!("{here}.node_port"))
                {
                    self.err(
                        format!("{here}.node_port"),
                        format!("{np}/{} is already used by {first}", p.protocol),
                    );
                }
            }
        }
    }

    fn load_balancer<'c>(
        &mut self,
        c: &Config,
        s: &'c Service,
        i: usize,
        path: &str,
        lb_ips: &mut SharedIps<'c>,
    ) {
        if s.kind != ServiceType::LoadBalancer {
            return;
        }
        let pool = match &s.pool {
            Some(name) => match c.pools.iter().find(|p| &p.name == name) {
                Some(pool) => Some(pool),
                None => {
                    self.err(format!("{path}.pool"), format!("no pool is named {name:?}"));
                    return;
                }
            },
            None => None,
        };
        match s.load_balancer_ip {
            Some(ip) => {
                let owner = c
                    .pools
                    .iter()
                    .find(|p| p.addresses.iter().any(|r| r.contains(ip)));
                match (pool, owner) {
                    (Some(pool), _) if !pool.addresses.iter().any(|r| r.contains(ip)) => self.err(
                        format!("{path}.load_balancer_ip"),
                        format!("{ip} is outside pool {:?}", pool.name),
                    ),
                    (None, None) => self.err(
                        format!("{path}.load_balancer_ip"),
                        format!("{ip} is in no pool; add it to one of [[pools]]"),
                    ),
                    _ => {}
                }
                let ports: Vec<_> = s.ports.iter().map(|p| (p.protocol, p.port)).collect();
                let key = s.sharing_key.as_deref();
                match lb_ips.get_mut(&ip) {
                    None => {
                        lb_ips.insert(ip, (key, s.external_traffic_policy, ports, i));
                    }
                    Some((first_key, policy, used, first)) => {
                        if key.is_none() || *first_key != key {
                            self.err(
                                format!("{path}.load_balancer_ip"),
                                format!("{ip} is already used by services[{first}]; set the same sharing_key on both to share it"),
                            );
                        } else if *policy != s.external_traffic_policy {
                            self.err(
                                format!("{path}.external_traffic_policy"),
                                format!("services sharing {ip} need the same policy as services[{first}]"),
                            );
                        } else if let Some((proto, port)) = ports.iter().find(|p| used.contains(p))
                        {
                            self.err(
                                format!("{path}.ports"),
                                format!("{port}/{proto} is already served on the shared IP {ip} by services[{first}]"),
                            );
                        } else {
                            used.extend(ports);
                        }
                    }
                }
            }
            None => {
                if pool.is_none() && !c.pools.iter().any(|p| p.auto_assign) {
                    self.err(
                        format!("{path}.pool"),
                        "needs a pool or load_balancer_ip: no pool has auto_assign = true",
                    );
                }
            }
        }
    }

    fn proxy(&mut self, c: &Config) {
        let p = &c.proxy;
        for (key, value) in [
            ("connect_timeout_ms", p.connect_timeout_ms),
            ("idle_timeout_s", p.idle_timeout_s),
            ("udp_idle_timeout_s", p.udp_idle_timeout_s),
        ] {
            if value == 0 {
                self.err(format!("proxy.{key}"), "must be above 0");
            }
        }
    }

    fn health_check(&mut self, s: &Service, path: &str) {
        let Some(h) = &s.health_check else { return };
        let here = format!("{path}.health_check");
        if h.interval_ms == 0 {
            self.err(format!("{here}.interval_ms"), "must be above 0");
        }
        if h.timeout_ms == 0 || h.timeout_ms > h.interval_ms {
            self.err(
                format!("{here}.timeout_ms"),
                format!(
                    "{} must be above 0 and at most interval_ms ({})",
                    h.timeout_ms, h.interval_ms
                ),
            );
        }
        if h.rise == 0 {
            self.err(format!("{here}.rise"), "must be at least 1");
        }
        if h.fall == 0 {
            self.err(format!("{here}.fall"), "must be at least 1");
        }
        if h.port == Some(0) {
            self.err(format!("{here}.port"), "must be 1-65535");
        }
        match (&h.kind, &h.path) {
            (HealthCheckKind::Http, Some(p)) if !p.starts_with('/') => {
                self.err(format!("{here}.path"), format!("{p:?} must start with '/'"))
            }
            (HealthCheckKind::Tcp, Some(_)) => {
                self.err(format!("{here}.path"), "only for kind = \"http\"")
            }
            _ => {}
        }
    }
}

fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// RFC 1123 label, as Kubernetes names: lowercase letters, digits and '-', 1-63 characters,
/// starting and ending with a letter or digit.
fn dns_label(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a DNS label: 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"
        ))
    }
}

/// A DNS name of labels (letters, digits, '-', '_') separated by dots; a trailing dot is allowed.
fn dns_name(name: &str) -> Result<(), String> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let ok = !trimmed.is_empty()
        && trimmed.len() <= 253
        && trimmed.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not a DNS name such as db.example.com"))
    }
}

fn interface_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_IFNAME
        && !name.contains(['/', ':'])
        && !name.chars().any(char::is_whitespace)
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not an interface name: 1-{MAX_IFNAME} characters without '/', ':' or spaces"
        ))
    }
}

/// `parts` numbers separated by ':'; 16-bit each for classic communities, 32-bit for large.
fn valid_community(text: &str, parts: usize) -> bool {
    let fields: Vec<&str> = text.split(':').collect();
    fields.len() == parts
        && fields.iter().all(|f| {
            if parts == 2 {
                f.parse::<u16>().is_ok()
            } else {
                f.parse::<u32>().is_ok()
            }
        })
}
