//! The `/status` document. Serialized by the daemon, deserialized by `dockline status`.
//!
//! The field names are a user contract (scripts read this JSON): extend the document, do not
//! rename or remove a field. Times are RFC 3339 in UTC with milliseconds.

use std::net::IpAddr;
use std::time::SystemTime;

use dockline_model::{HealthVerdicts, MemberSet, Snapshot, VipOwners};
use serde::{Deserialize, Serialize};

use crate::runtime::Runtime;

/// The whole `/status` answer: this node, its components, the config in force and what it
/// serves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    /// The daemon's version (the crate version it was built from).
    pub version: String,
    /// This node as the config describes it.
    pub node: NodeReport,
    /// When the daemon started. RFC 3339, UTC.
    pub started_at: String,
    /// Whole seconds since `started_at`.
    pub uptime_seconds: u64,
    /// What `/readyz` answers: every enabled component is running.
    pub ready: bool,
    /// The enabled components, in start order.
    pub components: Vec<ComponentReport>,
    /// The config in force and the reload history.
    pub config: ConfigReport,
    /// Every configured service, sorted by namespace, then name.
    pub services: Vec<ServiceReport>,
    /// Every LoadBalancer IP, sorted by address.
    pub vips: Vec<VipReport>,
    /// Cluster members, this node included, sorted by name (empty without gossip).
    #[serde(default)]
    pub members: Vec<MemberReport>,
    /// Owners of the L2-announced VIPs (empty without the L2 announcer).
    #[serde(default)]
    pub vip_owners: Vec<VipOwnerReport>,
    /// BGP sessions (empty without the BGP speaker).
    #[serde(default)]
    pub bgp_peers: Vec<BgpPeerReport>,
}

/// One BGP session in `/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BgpPeerReport {
    /// The router's address.
    pub address: IpAddr,
    /// The router's AS number.
    pub asn: u32,
    /// The RFC 4271 state name (`Established`, `Active`, ...).
    pub state: String,
    /// Seconds since the session came up, while it is established.
    pub uptime_seconds: Option<u64>,
    /// Why the session last failed or went down.
    pub last_error: Option<String>,
    /// Prefixes the router has from this node.
    pub prefixes_sent: usize,
    /// Those prefixes, in CIDR notation, sorted.
    #[serde(default)]
    pub advertised: Vec<String>,
    /// UPDATE messages sent on the session.
    pub updates_sent: u64,
}

/// One cluster member as this node's gossip sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberReport {
    /// The member's node name.
    pub name: String,
    /// The member's internal IP.
    pub ip: IpAddr,
    /// "alive", "suspect" or "down".
    pub state: String,
    /// The member gossips the same shared config digest as this node.
    pub digest_match: bool,
    /// The etcd revision of the shared config the member runs, as it gossips it; absent
    /// with a file source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_revision: Option<i64>,
}

/// The owner of one L2-announced VIP, as this node computes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VipOwnerReport {
    /// The VIP.
    pub ip: IpAddr,
    /// The name of the node that answers ARP/NDP for it; `None` when no live node is
    /// eligible.
    pub owner: Option<String>,
    /// This node is the owner.
    pub owned_by_me: bool,
    /// Claims heard from another MAC while this node answered for the VIP (split views).
    #[serde(default)]
    pub conflicts: u64,
    /// The last MAC heard claiming it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict_mac: Option<String>,
}

/// This node, from the `[node]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeReport {
    /// `node.name`.
    pub name: String,
    /// `node.internal_ip`.
    pub internal_ip: IpAddr,
    /// `node.pod_cidr` in CIDR notation, if set.
    pub pod_cidr: Option<String>,
    /// NodePorts listen on `internal_ip` only; `false` when the node's annotation makes them
    /// listen on every node address.
    pub nodeport_internal_ip_only: bool,
}

/// One enabled component and its state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComponentReport {
    /// The component's name ("dns", "proxy", "l2", ...).
    pub name: String,
    /// "starting", "running", "failed" or "stopped".
    pub state: String,
    /// Why it failed; present only when `state` is "failed".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the component reports of itself, when it does (the pod network: its mode,
    /// device, MTU, VTEPs, routes and drops; dns: `cache_entries`, `cache_bytes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

/// The config in force and how reloads went.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigReport {
    /// Where the config comes from: the file's path, `<embedded default>`, or the etcd key
    /// (saying when it was read from the local cache).
    pub source: String,
    /// The etcd revision of the shared document in force; absent with a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// SHA-256 (hex) of the whole effective config.
    pub config_digest: String,
    /// SHA-256 (hex) of the parts every node must agree on; members compare it by gossip.
    pub shared_digest: String,
    /// When the config in force was last loaded or reloaded. RFC 3339, UTC.
    pub loaded_at: String,
    /// How long reading, validating and building the config in force took, in milliseconds.
    pub load_duration_ms: f64,
    /// Reloads accepted since the daemon started, including ones whose config equals the one
    /// in force.
    pub reloads_ok: u64,
    /// Reloads rejected since the daemon started (invalid config, or a component that could
    /// not bind).
    pub reloads_error: u64,
    /// The last rejected reload, if any; a later accepted reload does not clear it.
    pub last_reload_error: Option<ReloadErrorReport>,
}

/// A rejected reload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReloadErrorReport {
    /// When it was rejected. RFC 3339, UTC.
    pub at: String,
    /// Why, one problem per entry.
    pub problems: Vec<String>,
}

/// One service as the snapshot in force resolves it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceReport {
    /// The service's namespace.
    pub namespace: String,
    /// The service's name.
    pub name: String,
    /// "ClusterIP", "NodePort", "LoadBalancer" or "ExternalName" (JSON field `type`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The ClusterIP; `None` for headless and ExternalName services.
    pub cluster_ip: Option<IpAddr>,
    /// `cluster_ip = "None"`: the name resolves to the endpoints themselves.
    pub headless: bool,
    /// The LoadBalancer IP, given or allocated from `pool`.
    pub load_balancer_ip: Option<IpAddr>,
    /// The pool the LoadBalancer IP belongs to.
    pub pool: Option<String>,
    /// The CNAME target of an ExternalName service.
    pub external_name: Option<String>,
    /// "Cluster" or "Local".
    pub external_traffic_policy: String,
    /// The service's ports.
    pub ports: Vec<PortReport>,
    /// The service's endpoints with their readiness.
    pub endpoints: Vec<EndpointReport>,
}

/// One port of a service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PortReport {
    /// The port's name, if it has one.
    pub name: Option<String>,
    /// "TCP" or "UDP".
    pub protocol: String,
    /// The port the service listens on.
    pub port: u16,
    /// The port on the endpoints that traffic goes to.
    pub target_port: u16,
    /// The port opened on the node (given or allocated) for NodePort and LoadBalancer
    /// services.
    pub node_port: Option<u16>,
}

/// One endpoint of a service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointReport {
    /// The endpoint's address.
    pub ip: IpAddr,
    /// The node the endpoint runs on, if the config says.
    pub node: Option<String>,
    /// The endpoint's hostname (for its DNS name), if it has one.
    pub hostname: Option<String>,
    /// Takes traffic now: ready in the config and not failing its health check.
    pub ready: bool,
    /// "not ready" (config), "ready" (no health check), "unchecked" (no verdict yet),
    /// "passing" or "failing".
    pub health: String,
}

/// One LoadBalancer IP and how it is announced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VipReport {
    /// The VIP.
    pub ip: IpAddr,
    /// The pool it belongs to.
    pub pool: String,
    /// How the pool announces it: "l2" and/or "bgp".
    pub announce: Vec<String>,
    /// `namespace/name` of each service on this IP.
    pub services: Vec<String>,
}

/// `t` as RFC 3339 in UTC with milliseconds, the format of every time in the report.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

impl StatusReport {
    /// Adds the live member set and VIP owners; `ours` is this node's shared digest.
    pub fn with_cluster(mut self, members: &MemberSet, owners: &VipOwners, ours: &str) -> Self {
        self.members = members
            .members
            .iter()
            .map(|m| MemberReport {
                name: m.name.clone(),
                ip: m.internal_ip,
                state: m.state.name().to_owned(),
                digest_match: m.shared_digest == ours,
                config_revision: m.config_revision,
            })
            .collect();
        self.vip_owners = owners
            .vips
            .iter()
            .map(|v| VipOwnerReport {
                ip: v.ip,
                owner: v.owner.clone(),
                owned_by_me: v.owned_by_me,
                conflicts: v.conflicts,
                conflict_mac: v.conflict_mac.clone(),
            })
            .collect();
        self
    }

    /// The report of `snapshot` with the health verdicts and the daemon's runtime record;
    /// `members` and `vip_owners` stay empty until [`StatusReport::with_cluster`].
    pub fn build(snapshot: &Snapshot, health: &HealthVerdicts, runtime: &Runtime) -> Self {
        let history = runtime.config();
        let lower = |s: String| s.to_lowercase();
        StatusReport {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            node: NodeReport {
                name: snapshot.node.name.clone(),
                internal_ip: snapshot.node.internal_ip,
                pod_cidr: snapshot.node.pod_cidr.map(|c| c.to_string()),
                nodeport_internal_ip_only: snapshot.node.nodeport_internal_ip_only,
            },
            started_at: rfc3339(runtime.started_at),
            uptime_seconds: runtime.started_at.elapsed().map_or(0, |d| d.as_secs()),
            ready: runtime.ready(),
            components: runtime
                .components()
                .into_iter()
                .map(|(name, state)| ComponentReport {
                    name: name.to_owned(),
                    state: state.name().to_owned(),
                    error: match state {
                        crate::ComponentState::Failed(e) => Some(e),
                        _ => None,
                    },
                    status: runtime.component_status(name),
                })
                .collect(),
            config: ConfigReport {
                source: history.source.clone(),
                revision: history.revision,
                config_digest: snapshot.config_digest.clone(),
                shared_digest: snapshot.shared_digest.clone(),
                loaded_at: rfc3339(history.loaded_at),
                load_duration_ms: history.load_duration.as_secs_f64() * 1000.0,
                reloads_ok: history.reloads_ok,
                reloads_error: history.reloads_error,
                last_reload_error: history.last_error.as_ref().map(|e| ReloadErrorReport {
                    at: rfc3339(e.at),
                    problems: e.problems.clone(),
                }),
            },
            services: snapshot
                .services
                .iter()
                .map(|s| ServiceReport {
                    namespace: s.namespace.clone(),
                    name: s.name.clone(),
                    kind: s.kind.to_string(),
                    cluster_ip: s.cluster_ip,
                    headless: s.headless,
                    load_balancer_ip: s.load_balancer_ip,
                    pool: s.pool.clone(),
                    external_name: s.external_name.clone(),
                    external_traffic_policy: format!("{:?}", s.external_traffic_policy),
                    ports: s
                        .ports
                        .iter()
                        .map(|p| PortReport {
                            name: p.name.clone(),
                            protocol: p.protocol.to_string(),
                            port: p.port,
                            target_port: p.target_port,
                            node_port: p.node_port,
                        })
                        .collect(),
                    endpoints: s
                        .endpoints
                        .iter()
                        .map(|e| EndpointReport {
                            ip: e.ip,
                            node: e.node.clone(),
                            hostname: e.hostname.clone(),
                            ready: health.is_ready(s, e),
                            health: match (e.ready, health.get(&s.key(), e.ip)) {
                                (false, _) => "not ready",
                                (true, Some(true)) => "passing",
                                (true, Some(false)) => "failing",
                                (true, None) if s.health_check.is_some() => "unchecked",
                                (true, None) => "ready",
                            }
                            .to_owned(),
                        })
                        .collect(),
                })
                .collect(),
            vips: snapshot
                .vips
                .iter()
                .map(|v| VipReport {
                    ip: v.ip,
                    pool: v.pool.clone(),
                    announce: v.announce.iter().map(|a| lower(format!("{a:?}"))).collect(),
                    services: v.services.clone(),
                })
                .collect(),
            members: Vec::new(),
            vip_owners: Vec::new(),
            bgp_peers: runtime
                .bgp_peers()
                .into_iter()
                .map(|peer| BgpPeerReport {
                    address: peer.address,
                    asn: peer.asn,
                    state: peer.state,
                    uptime_seconds: peer
                        .established_at
                        .map(|at| at.elapsed().map_or(0, |d| d.as_secs())),
                    last_error: peer.last_error,
                    prefixes_sent: peer.prefixes_sent,
                    advertised: peer.advertised,
                    updates_sent: peer.updates_sent,
                })
                .collect(),
        }
    }
}
