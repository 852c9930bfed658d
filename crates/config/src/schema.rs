//! The typed configuration: one struct per TOML table of the user contract.
//!
//! Every struct rejects unknown keys and has defaults, so a file only names what it changes.
//! Values that need a relation to other values (ranges, uniqueness) are checked in
//! [`crate::validate`], which reports all problems at once.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::AddressRange;

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub node: Node,
    pub cluster: Cluster,
    pub network: Network,
    pub admin: Admin,
    pub dns: Dns,
    pub proxy: Proxy,
    pub l2: L2,
    pub bgp: Bgp,
    pub pools: Vec<Pool>,
    pub services: Vec<Service>,
}

/// The annotation that opens NodePorts on every node address instead of the internal IP only.
pub const NODEPORT_BIND_INTERNAL_IP: &str = "node.deckhouse.io/nodeport-bind-internal-ip";

/// This node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Node {
    pub name: String,
    /// The address NodePorts bind to and peers reach this node on.
    /// Optional on a lone node (then 127.0.0.1); required once there are peers.
    pub internal_ip: Option<IpAddr>,
    /// This node's pod range, inside `cluster.pod_cidr`.
    pub pod_cidr: Option<IpNet>,
    pub annotations: BTreeMap<String, String>,
}

impl Default for Node {
    fn default() -> Self {
        Node {
            name: "node-1".into(),
            internal_ip: None,
            pod_cidr: None,
            annotations: BTreeMap::new(),
        }
    }
}

impl Node {
    /// NodePorts listen on the internal IP only unless the annotation says "false".
    pub fn nodeport_binds_internal_ip_only(&self) -> bool {
        self.annotations
            .get(NODEPORT_BIND_INTERNAL_IP)
            .is_none_or(|v| v != "false")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cluster {
    pub domain: String,
    pub pod_cidr: IpNet,
    pub service_cidr: IpNet,
    pub gossip: Gossip,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            domain: "cluster.local".into(),
            pod_cidr: IpNet::from_str("10.111.0.0/16").expect("literal CIDR"),
            service_cidr: IpNet::from_str("10.222.0.0/16").expect("literal CIDR"),
            gossip: Gossip::default(),
        }
    }
}

/// SWIM membership among dockline nodes. Without `listen` the node runs alone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Gossip {
    pub listen: Option<SocketAddr>,
    pub seeds: Vec<SocketAddr>,
    /// A file holding a shared secret that authenticates gossip packets.
    pub secret_file: Option<PathBuf>,
    /// Failure-detection timing preset; the `*_ms` keys override single values of it.
    pub profile: GossipProfile,
    pub probe_interval_ms: Option<u64>,
    pub probe_timeout_ms: Option<u64>,
    pub suspect_timeout_ms: Option<u64>,
}

/// SWIM timing presets: with "default" a dead node's VIPs move in about 0.3 s on a LAN,
/// with "fast" in about 0.1 s (more probe traffic, less slack for a loaded node).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GossipProfile {
    #[default]
    Default,
    Fast,
}

/// Effective SWIM timing in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GossipTiming {
    pub probe_interval_ms: u64,
    pub probe_timeout_ms: u64,
    pub suspect_timeout_ms: u64,
}

impl Gossip {
    /// The profile's timing with the explicit keys applied.
    pub fn timing(&self) -> GossipTiming {
        let (interval, timeout, suspect) = match self.profile {
            GossipProfile::Default => (120, 50, 120),
            GossipProfile::Fast => (30, 15, 30),
        };
        GossipTiming {
            probe_interval_ms: self.probe_interval_ms.unwrap_or(interval),
            probe_timeout_ms: self.probe_timeout_ms.unwrap_or(timeout),
            suspect_timeout_ms: self.suspect_timeout_ms.unwrap_or(suspect),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TunnelMode {
    /// Direct routing: a route per remote node's pod range via that node's address.
    #[default]
    Classic,
    /// An overlay over UDP (RFC 7348).
    #[serde(rename = "VXLAN")]
    Vxlan,
}

impl fmt::Display for TunnelMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TunnelMode::Classic => "Classic",
            TunnelMode::Vxlan => "VXLAN",
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Network {
    pub tunnel_mode: TunnelMode,
    pub vxlan: Vxlan,
    /// Peers known statically; gossip adds the rest.
    pub nodes: Vec<PeerNode>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Vxlan {
    pub vni: u32,
    pub port: u16,
    pub device: String,
    pub underlay_mtu: u32,
}

impl Default for Vxlan {
    fn default() -> Self {
        Vxlan {
            vni: 1,
            port: 4789,
            device: "dockline0".into(),
            underlay_mtu: 1500,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerNode {
    pub name: String,
    pub internal_ip: IpAddr,
    pub pod_cidr: Option<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Admin {
    pub listen: SocketAddr,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            listen: SocketAddr::from(([127, 0, 0, 1], 9470)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Dns {
    pub enabled: bool,
    pub listen: Vec<SocketAddr>,
    pub ttl: u32,
    /// Upstream resolvers for names outside the cluster domain; empty answers REFUSED.
    pub forward: Vec<Upstream>,
}

impl Default for Dns {
    fn default() -> Self {
        Dns {
            enabled: true,
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 5353))],
            ttl: 5,
            forward: Vec::new(),
        }
    }
}

/// An upstream resolver: `IP` (port 53) or `IP:PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upstream(pub SocketAddr);

impl FromStr for Upstream {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(Upstream(addr));
        }
        s.parse::<IpAddr>()
            .map(|ip| Upstream(SocketAddr::new(ip, 53)))
            .map_err(|_| format!("{s:?} is not an IP address or IP:PORT"))
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Proxy {
    pub enabled: bool,
    /// Give up connecting to a backend after this; the client is reset.
    pub connect_timeout_ms: u64,
    /// A TCP connection with no bytes either way for this long is closed.
    pub idle_timeout_s: u64,
    /// A UDP flow with no datagram either way for this long is forgotten.
    pub udp_idle_timeout_s: u64,
    /// Connections to a removed endpoint or service may finish within this time.
    pub drain_grace_s: u64,
}

impl Default for Proxy {
    fn default() -> Self {
        Proxy {
            enabled: true,
            connect_timeout_ms: 5000,
            idle_timeout_s: 3600,
            udp_idle_timeout_s: 30,
            drain_grace_s: 30,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct L2 {
    /// Interfaces to answer ARP/NDP on; empty turns L2 announcing off.
    pub interfaces: Vec<String>,
    /// Gratuitous ARPs / unsolicited neighbour advertisements sent on taking a VIP over.
    pub gratuitous_count: u32,
    pub gratuitous_interval_ms: u64,
}

impl Default for L2 {
    fn default() -> Self {
        L2 {
            interfaces: Vec::new(),
            gratuitous_count: 3,
            gratuitous_interval_ms: 200,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Bgp {
    pub asn: Option<u32>,
    /// Defaults to the node's internal IPv4 address.
    pub router_id: Option<std::net::Ipv4Addr>,
    pub peers: Vec<BgpPeer>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpPeer {
    pub address: IpAddr,
    pub asn: u32,
    #[serde(default = "default_bgp_port")]
    pub port: u16,
    /// A file holding the TCP-MD5 (RFC 2385) key.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Seconds; 0 or at least 3 (RFC 4271 section 4.2).
    #[serde(default = "default_hold_time")]
    pub hold_time: u16,
    #[serde(default = "default_true")]
    pub graceful_restart: bool,
}

fn default_bgp_port() -> u16 {
    179
}
fn default_hold_time() -> u16 {
    90
}
fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Announce {
    L2,
    Bgp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    pub name: String,
    /// Ranges `A-B` or CIDRs, IPv4 or IPv6.
    pub addresses: Vec<AddressRange>,
    #[serde(default = "default_true")]
    pub auto_assign: bool,
    #[serde(default)]
    pub announce: Vec<Announce>,
    /// BGP communities `ASN:VALUE`.
    #[serde(default)]
    pub communities: Vec<String>,
    /// BGP large communities `GLOBAL:LOCAL1:LOCAL2` (RFC 8092).
    #[serde(default)]
    pub large_communities: Vec<String>,
    /// LOCAL_PREF for iBGP peers.
    #[serde(default)]
    pub local_pref: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
    ExternalName,
}

impl fmt::Display for ServiceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TrafficPolicy {
    #[default]
    Cluster,
    Local,
}

/// `cluster_ip`: an address, or "None" for a headless service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterIp {
    Headless,
    Address(IpAddr),
}

impl FromStr for ClusterIp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "None" {
            return Ok(ClusterIp::Headless);
        }
        s.parse()
            .map(ClusterIp::Address)
            .map_err(|_| format!("{s:?} is not an IP address or \"None\""))
    }
}

impl fmt::Display for ClusterIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterIp::Headless => f.write_str("None"),
            ClusterIp::Address(ip) => ip.fmt(f),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    #[serde(default, rename = "type")]
    pub kind: ServiceType,
    /// Omitted: allocated from `cluster.service_cidr`.
    #[serde(default)]
    pub cluster_ip: Option<ClusterIp>,
    /// Omitted: allocated from `pool` (or any auto-assign pool).
    #[serde(default)]
    pub load_balancer_ip: Option<IpAddr>,
    #[serde(default)]
    pub pool: Option<String>,
    /// Services with the same key may share one LoadBalancer IP when their ports differ.
    #[serde(default)]
    pub sharing_key: Option<String>,
    #[serde(default)]
    pub external_traffic_policy: TrafficPolicy,
    /// ExternalName services only: the CNAME target.
    #[serde(default)]
    pub external_name: Option<String>,
    /// Headless DNS includes endpoints that are not ready.
    #[serde(default)]
    pub publish_not_ready_addresses: bool,
    #[serde(default)]
    pub ports: Vec<ServicePort>,
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    /// How the proxy picks an endpoint for a new connection or flow.
    #[serde(default)]
    pub load_balancing: LoadBalancing,
    /// At most this many proxied connections at once; more are reset.
    #[serde(default)]
    pub max_connections: Option<u32>,
    /// A PROXY protocol header the proxy sends to the endpoint before the client's bytes
    /// (TCP ports), so the endpoint learns the client's address.
    #[serde(default)]
    pub proxy_protocol: ProxyProtocol,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LoadBalancing {
    #[default]
    RoundRobin,
    LeastConnections,
    /// Consistent hashing on the client address (Maglev).
    Maglev,
}

/// HAProxy's PROXY protocol, version 1 (text) or 2 (binary), or none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocol {
    #[default]
    None,
    V1,
    V2,
}

fn default_namespace() -> String {
    "default".into()
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub enum Protocol {
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePort {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub protocol: Protocol,
    pub port: u16,
    /// Defaults to `port`.
    #[serde(default)]
    pub target_port: Option<u16>,
    /// NodePort and LoadBalancer services; omitted: allocated from 30000-32767.
    #[serde(default)]
    pub node_port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheckKind {
    Tcp,
    Http,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    pub kind: HealthCheckKind,
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_threshold")]
    pub rise: u32,
    #[serde(default = "default_threshold")]
    pub fall: u32,
    /// HTTP checks: the path to GET; a 2xx or 3xx answer passes. Unset: "/".
    #[serde(default)]
    pub path: Option<String>,
    /// Defaults to each port's `target_port`, the first port's for the endpoint.
    #[serde(default)]
    pub port: Option<u16>,
}

impl HealthCheck {
    /// The path an HTTP check requests.
    pub fn http_path(&self) -> &str {
        self.path.as_deref().unwrap_or("/")
    }
}

fn default_interval_ms() -> u64 {
    1000
}
fn default_timeout_ms() -> u64 {
    500
}
fn default_threshold() -> u32 {
    2
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub ip: IpAddr,
    /// The node the endpoint runs on (for `external_traffic_policy = "Local"`).
    #[serde(default)]
    pub node: Option<String>,
    /// Gives the endpoint the DNS name `<hostname>.<svc>.<ns>.svc.<domain>`.
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default = "default_true")]
    pub ready: bool,
}

// Types written as strings in TOML: parsed with FromStr so the error names the value.
macro_rules! string_serde {
    ($ty:ty) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}
string_serde!(Upstream);
string_serde!(ClusterIp);
string_serde!(AddressRange);
