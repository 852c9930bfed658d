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
    /// `[node]`.
    pub node: Node,
    /// `[source]`: where the shared sections come from. Left out of the serialized form
    /// (and so of the config digest) while it is the default, so a file-only config keeps
    /// the digest it always had.
    #[serde(skip_serializing_if = "ConfigSource::is_default")]
    pub source: ConfigSource,
    /// `[cluster]`.
    pub cluster: Cluster,
    /// `[network]`.
    pub network: Network,
    /// `[admin]`.
    pub admin: Admin,
    /// `[dns]`.
    pub dns: Dns,
    /// `[proxy]`.
    pub proxy: Proxy,
    /// `[l2]`.
    pub l2: L2,
    /// `[bgp]`.
    pub bgp: Bgp,
    /// `[[pools]]`.
    pub pools: Vec<Pool>,
    /// `[[services]]`.
    pub services: Vec<Service>,
}

/// The annotation that opens NodePorts on every node address instead of the internal IP only.
pub const NODEPORT_BIND_INTERNAL_IP: &str = "node.deckhouse.io/nodeport-bind-internal-ip";

/// This node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Node {
    /// This node's name, unique in the cluster; a DNS label.
    pub name: String,
    /// The address NodePorts bind to and peers reach this node on.
    /// Optional on a lone node (then 127.0.0.1); required once there are peers.
    pub internal_ip: Option<IpAddr>,
    /// This node's pod range, inside `cluster.pod_cidr`.
    pub pod_cidr: Option<IpNet>,
    /// Free-form labels; dockline reads [`NODEPORT_BIND_INTERNAL_IP`].
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

/// `[source]`: where every section but `[node]` and `[source]` comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigSource {
    /// "file" (everything in the one local file) or "etcd".
    pub kind: SourceKind,
    /// The etcd client URLs, `http://HOST:PORT` or `https://HOST:PORT`.
    pub endpoints: Vec<String>,
    /// The key prefix; the shared document is stored at `<prefix>/config`.
    pub prefix: String,
    /// The CA that signs the etcd servers' certificates (TLS).
    pub ca_file: Option<PathBuf>,
    /// This node's client certificate (TLS client authentication), with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// The private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// The etcd user, with `password_file`.
    pub username: Option<String>,
    /// A file holding the etcd user's password.
    pub password_file: Option<PathBuf>,
    /// Where the last applied shared document and its revision are cached.
    pub cache_dir: PathBuf,
}

impl Default for ConfigSource {
    fn default() -> Self {
        ConfigSource {
            kind: SourceKind::File,
            endpoints: Vec::new(),
            prefix: "/dockline".into(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            username: None,
            password_file: None,
            cache_dir: PathBuf::from("/var/lib/dockline"),
        }
    }
}

impl ConfigSource {
    /// Whether this is `[source]` as a file without one reads it.
    pub fn is_default(&self) -> bool {
        *self == ConfigSource::default()
    }

    /// The etcd key of the shared document.
    pub fn document_key(&self) -> String {
        format!("{}/config", self.prefix)
    }
}

/// Where the shared sections come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// The local file holds every section.
    #[default]
    File,
    /// The local file holds `[node]` and `[source]`; the rest is one document in etcd.
    Etcd,
}

/// `[cluster]`: what all nodes of the cluster must agree on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cluster {
    /// The DNS zone the built-in server answers for.
    pub domain: String,
    /// The range every node's pod range is carved from.
    pub pod_cidr: IpNet,
    /// The range cluster IPs come from.
    pub service_cidr: IpNet,
    /// `[cluster.gossip]`.
    pub gossip: Gossip,
    /// Who may be a member: node names or CIDRs of internal IPs. Empty: any node that
    /// authenticates.
    pub allowed_nodes: Vec<AllowedNode>,
    /// What a member whose shared config digest differs from the cluster's may do.
    pub on_config_mismatch: ConfigMismatch,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            domain: "cluster.local".into(),
            pod_cidr: IpNet::from_str("10.111.0.0/16").expect("literal CIDR"),
            service_cidr: IpNet::from_str("10.222.0.0/16").expect("literal CIDR"),
            gossip: Gossip::default(),
            allowed_nodes: Vec::new(),
            on_config_mismatch: ConfigMismatch::default(),
        }
    }
}

/// One entry of `cluster.allowed_nodes`: a node name, or a network its internal IP is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedNode {
    /// A node name (`node.name` of the member).
    Name(String),
    /// A CIDR (or a single address) the member's internal IP must be in.
    Network(IpNet),
}

impl AllowedNode {
    /// Whether a member called `name` with internal IP `internal_ip` matches this entry.
    pub fn admits(&self, name: &str, internal_ip: IpAddr) -> bool {
        match self {
            AllowedNode::Name(allowed) => allowed == name,
            AllowedNode::Network(network) => network.contains(&internal_ip),
        }
    }
}

impl FromStr for AllowedNode {
    type Err = std::convert::Infallible;

    /// Text that reads as an address or CIDR is a network; anything else a name (checked
    /// as a DNS label by validation).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(network) = s.parse::<IpNet>() {
            return Ok(AllowedNode::Network(network));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(AllowedNode::Network(IpNet::from(ip)));
        }
        Ok(AllowedNode::Name(s.to_owned()))
    }
}

impl fmt::Display for AllowedNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowedNode::Name(name) => f.write_str(name),
            AllowedNode::Network(network) => network.fmt(f),
        }
    }
}

/// `cluster.on_config_mismatch`: the policy for members whose shared config digest is not
/// the cluster's (the digest most live members gossip).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigMismatch {
    /// Report the mismatch (status, metric) and keep the member as an owner of VIPs.
    #[default]
    Flag,
    /// Report it, and give the mismatched members no VIPs until they agree.
    Exclude,
}

/// SWIM membership among dockline nodes. Without `listen` the node runs alone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Gossip {
    /// The UDP address gossip binds to.
    pub listen: Option<SocketAddr>,
    /// Nodes to contact when joining.
    pub seeds: Vec<SocketAddr>,
    /// A file holding the keys that authenticate gossip packets, one a line: the first
    /// signs, any of them verifies.
    pub secret_file: Option<PathBuf>,
    /// Allows gossip off loopback without `secret_file` (unauthenticated).
    pub insecure: bool,
    /// Failure-detection timing preset; the `*_ms` keys override single values of it.
    pub profile: GossipProfile,
    /// Overrides the profile's time between probes of a peer.
    pub probe_interval_ms: Option<u64>,
    /// Overrides the profile's wait for a probe's answer.
    pub probe_timeout_ms: Option<u64>,
    /// Overrides the profile's time a peer stays suspect before it is declared dead.
    pub suspect_timeout_ms: Option<u64>,
}

/// SWIM timing presets: with "default" a dead node's VIPs move in about 0.3 s on a LAN,
/// with "fast" in about 0.1 s (more probe traffic, less slack for a loaded node).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GossipProfile {
    /// Probe every 120 ms, 50 ms timeout, 120 ms suspicion.
    #[default]
    Default,
    /// Probe every 30 ms, 15 ms timeout, 30 ms suspicion.
    Fast,
}

/// Effective SWIM timing in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GossipTiming {
    /// Time between probes of a peer.
    pub probe_interval_ms: u64,
    /// Wait for a probe's answer.
    pub probe_timeout_ms: u64,
    /// Time a peer stays suspect before it is declared dead.
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

/// `network.tunnel_mode`: how pod traffic crosses between nodes.
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

/// `[network]`: pod traffic between nodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Network {
    /// Routing or overlay.
    pub tunnel_mode: TunnelMode,
    /// The overlay's settings, read in VXLAN mode.
    pub vxlan: Vxlan,
    /// Peers known statically; gossip adds the rest.
    pub nodes: Vec<PeerNode>,
}

/// `[network.vxlan]`: the overlay's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Vxlan {
    /// The VXLAN network identifier, 1-16777215.
    pub vni: u32,
    /// The tunnel's UDP port, the same on every node.
    pub port: u16,
    /// The name of the device dockline creates.
    pub device: String,
    /// The MTU of the network between nodes; the overlay's is derived from it.
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

/// A peer known in advance, one `[[network.nodes]]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerNode {
    /// The peer's node name.
    pub name: String,
    /// The address routes and tunnels to the peer go to.
    pub internal_ip: IpAddr,
    /// The peer's pod range; required.
    pub pod_cidr: Option<IpNet>,
}

/// `[admin]`: the HTTP endpoint for /metrics, /healthz, /readyz and /status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Admin {
    /// Where to serve; the port is not 0.
    pub listen: SocketAddr,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            listen: SocketAddr::from(([127, 0, 0, 1], 9470)),
        }
    }
}

/// `[dns]`: the authoritative server for the cluster domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Dns {
    /// `false` turns the DNS server off.
    pub enabled: bool,
    /// Where to answer, over UDP and TCP.
    pub listen: Vec<SocketAddr>,
    /// The TTL of every answer, in seconds.
    pub ttl: u32,
    /// Upstream resolvers for names outside the cluster domain; empty answers REFUSED.
    pub forward: Vec<Upstream>,
    /// The cache of forwarded answers.
    pub cache: DnsCache,
}

impl Default for Dns {
    fn default() -> Self {
        Dns {
            enabled: true,
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 5353))],
            ttl: 5,
            forward: Vec::new(),
            cache: DnsCache::default(),
        }
    }
}

/// `[dns.cache]`: the cache of answers from the `dns.forward` upstreams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsCache {
    /// `false` relays every query upstream.
    pub enabled: bool,
    /// Answers kept at most; the least recently used goes first.
    pub max_entries: u32,
    /// The shortest time, in seconds, a positive answer is kept, whatever its TTL.
    pub min_ttl_s: u32,
    /// The longest time, in seconds, a positive answer is kept, whatever its TTL.
    pub max_ttl_s: u32,
    /// The longest time, in seconds, a negative answer (NXDOMAIN, NODATA) is kept.
    pub negative_ttl_s: u32,
    /// How long, in seconds, an expired answer may still be served (RFC 8767) while no
    /// upstream answers; 0 never serves one.
    pub serve_stale_s: u32,
}

impl Default for DnsCache {
    fn default() -> Self {
        DnsCache {
            enabled: true,
            max_entries: 100_000,
            min_ttl_s: 0,
            max_ttl_s: 3600,
            negative_ttl_s: 300,
            serve_stale_s: 0,
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

/// `[proxy]`: the L4 proxy for ClusterIP, NodePort and LoadBalancer traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Proxy {
    /// `false` leaves forwarding to another proxy.
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

/// `[l2]`: announcing LoadBalancer IPs with ARP and NDP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct L2 {
    /// Interfaces to answer ARP/NDP on; empty turns L2 announcing off.
    pub interfaces: Vec<String>,
    /// Gratuitous ARPs / unsolicited neighbour advertisements sent on taking a VIP over.
    pub gratuitous_count: u32,
    /// Time between the gratuitous announcements, in milliseconds.
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

/// `[bgp]`: announcing LoadBalancer IPs to routers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Bgp {
    /// This node's AS number; unset means no BGP.
    pub asn: Option<u32>,
    /// Defaults to the node's internal IPv4 address.
    pub router_id: Option<std::net::Ipv4Addr>,
    /// One per router to keep a session with.
    pub peers: Vec<BgpPeer>,
}

/// A router to keep a BGP session with, one `[[bgp.peers]]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpPeer {
    /// The router's address.
    pub address: IpAddr,
    /// The router's AS number; equal to `bgp.asn` means iBGP.
    pub asn: u32,
    /// The router's TCP port.
    #[serde(default = "default_bgp_port")]
    pub port: u16,
    /// A file holding the TCP-MD5 (RFC 2385) key.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Seconds; 0 or at least 3 (RFC 4271 section 4.2).
    #[serde(default = "default_hold_time")]
    pub hold_time: u16,
    /// Seconds between KEEPALIVEs; a third of the negotiated hold time when unset.
    #[serde(default)]
    pub keepalive: Option<u16>,
    /// Seconds to wait before connecting again after a failed or closed session.
    #[serde(default = "default_connect_retry")]
    pub connect_retry_s: u16,
    /// The TTL of the session's packets, for an eBGP router more than one hop away;
    /// unset: 1 for eBGP (directly connected), the system default for iBGP.
    #[serde(default)]
    pub ebgp_multihop: Option<u8>,
    /// Never connect: wait for the router to.
    #[serde(default)]
    pub passive: bool,
    /// Graceful restart (RFC 4724): the router keeps our routes while dockline restarts.
    #[serde(default = "default_true")]
    pub graceful_restart: bool,
    /// BFD (RFC 5880/5881, single-hop, asynchronous) for this session: the session goes
    /// down as soon as BFD loses the router.
    #[serde(default)]
    pub bfd: Option<bool>,
    /// BFD transmit and receive interval in milliseconds; 300 when unset.
    #[serde(default)]
    pub bfd_interval_ms: Option<u32>,
    /// BFD detection multiplier; 3 when unset.
    #[serde(default)]
    pub bfd_multiplier: Option<u8>,
}

fn default_bgp_port() -> u16 {
    179
}
fn default_hold_time() -> u16 {
    90
}
fn default_connect_retry() -> u16 {
    5
}
fn default_true() -> bool {
    true
}

/// How a pool's VIPs are made reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Announce {
    /// ARP/NDP answers on `l2.interfaces` by the owning node.
    L2,
    /// Routes to every BGP peer.
    Bgp,
}

/// Addresses LoadBalancer services get their IP from, one `[[pools]]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    /// The name services' `pool` refers to.
    pub name: String,
    /// Ranges `A-B` or CIDRs, IPv4 or IPv6.
    pub addresses: Vec<AddressRange>,
    /// Services that name no pool may be given an address from this one.
    #[serde(default = "default_true")]
    pub auto_assign: bool,
    /// How the VIPs are announced; empty: not at all.
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
    /// Advertise the IPv4 aggregate of this length that covers each VIP instead of its
    /// /32 (one route per pool when the pool is that aggregate).
    #[serde(default)]
    pub aggregation_length: Option<u8>,
    /// The same for IPv6 VIPs instead of their /128.
    #[serde(default)]
    pub aggregation_length_v6: Option<u8>,
}

/// The Kubernetes service type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServiceType {
    /// A virtual address inside the cluster (or none, when headless).
    #[default]
    ClusterIP,
    /// A cluster IP that is also reachable on a port of every node.
    NodePort,
    /// A NodePort service with an announced address from a pool.
    LoadBalancer,
    /// Only a DNS alias (CNAME).
    ExternalName,
}

impl fmt::Display for ServiceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Which endpoints a node forwards NodePort and LoadBalancer traffic to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TrafficPolicy {
    /// Any ready endpoint.
    #[default]
    Cluster,
    /// Only endpoints on this node, keeping the client address.
    Local,
}

/// `cluster_ip`: an address, or "None" for a headless service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterIp {
    /// No virtual address: DNS answers with the endpoints.
    Headless,
    /// A fixed address inside `cluster.service_cidr`.
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

/// One `[[services]]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// A DNS label; unique within the namespace.
    pub name: String,
    /// A DNS label.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// The service type, written `type`.
    #[serde(default, rename = "type")]
    pub kind: ServiceType,
    /// Omitted: allocated from `cluster.service_cidr`.
    #[serde(default)]
    pub cluster_ip: Option<ClusterIp>,
    /// Omitted: allocated from `pool` (or any auto-assign pool).
    #[serde(default)]
    pub load_balancer_ip: Option<IpAddr>,
    /// The pool to take the LoadBalancer IP from; LoadBalancer services only.
    #[serde(default)]
    pub pool: Option<String>,
    /// Services with the same key may share one LoadBalancer IP when their ports differ.
    #[serde(default)]
    pub sharing_key: Option<String>,
    /// Which endpoints NodePort and LoadBalancer traffic goes to.
    #[serde(default)]
    pub external_traffic_policy: TrafficPolicy,
    /// LoadBalancer services only: `false` gives ports without a `node_port` none
    /// (Kubernetes' `allocateLoadBalancerNodePorts`), for services reached on their
    /// LoadBalancer IP alone; the NodePort range then does not bound their number.
    #[serde(default = "default_true")]
    pub allocate_load_balancer_node_ports: bool,
    /// ExternalName services only: the CNAME target.
    #[serde(default)]
    pub external_name: Option<String>,
    /// Headless DNS includes endpoints that are not ready.
    #[serde(default)]
    pub publish_not_ready_addresses: bool,
    /// What the service serves.
    #[serde(default)]
    pub ports: Vec<ServicePort>,
    /// Active checks of each endpoint; none: endpoints are as `ready` says.
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
    /// The backends.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

/// How the proxy picks an endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LoadBalancing {
    /// Each endpoint in turn.
    #[default]
    RoundRobin,
    /// The endpoint with the fewest open connections.
    LeastConnections,
    /// Consistent hashing on the client address (Maglev).
    Maglev,
}

/// HAProxy's PROXY protocol, version 1 (text) or 2 (binary), or none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocol {
    /// No header.
    #[default]
    None,
    /// Version 1, text.
    V1,
    /// Version 2, binary.
    V2,
}

fn default_namespace() -> String {
    "default".into()
}

/// A transport protocol, written "TCP" or "UDP".
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub enum Protocol {
    /// TCP.
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP.
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

/// One port of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePort {
    /// A DNS label; required when the service has several ports.
    #[serde(default)]
    pub name: Option<String>,
    /// TCP or UDP.
    #[serde(default)]
    pub protocol: Protocol,
    /// The port on the service's addresses.
    pub port: u16,
    /// Defaults to `port`.
    #[serde(default)]
    pub target_port: Option<u16>,
    /// NodePort and LoadBalancer services; omitted: allocated from 30000-32767.
    #[serde(default)]
    pub node_port: Option<u16>,
}

/// How a health check probes an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheckKind {
    /// A TCP connect succeeds.
    Tcp,
    /// A GET of `path` answers 2xx or 3xx.
    Http,
}

/// Active checks of each endpoint of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// TCP or HTTP.
    pub kind: HealthCheckKind,
    /// Time between checks, in milliseconds.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// Give up on one check after this many milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Passes in a row that make an endpoint ready.
    #[serde(default = "default_threshold")]
    pub rise: u32,
    /// Failures in a row that make an endpoint not ready.
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

/// A backend of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// The backend's address.
    pub ip: IpAddr,
    /// The node the endpoint runs on (for `external_traffic_policy = "Local"`).
    #[serde(default)]
    pub node: Option<String>,
    /// Gives the endpoint the DNS name `<hostname>.<svc>.<ns>.svc.<domain>`.
    #[serde(default)]
    pub hostname: Option<String>,
    /// `false` keeps the endpoint out of balancing and DNS (see `publish_not_ready_addresses`).
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
string_serde!(AllowedNode);
string_serde!(AddressRange);
