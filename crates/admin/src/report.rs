//! The `/status` document. Serialized by the daemon, deserialized by `dockline status`.

use std::net::IpAddr;
use std::time::SystemTime;

use dockline_model::{HealthVerdicts, MemberSet, Snapshot, VipOwners};
use serde::{Deserialize, Serialize};

use crate::runtime::Runtime;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    pub version: String,
    pub node: NodeReport,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub uptime_seconds: u64,
    pub ready: bool,
    pub components: Vec<ComponentReport>,
    pub config: ConfigReport,
    pub services: Vec<ServiceReport>,
    pub vips: Vec<VipReport>,
    /// Cluster members, this node included (empty without gossip).
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
    /// UPDATE messages sent on the session.
    pub updates_sent: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberReport {
    pub name: String,
    pub ip: IpAddr,
    /// "alive", "suspect" or "down".
    pub state: String,
    /// The member gossips the same shared config digest as this node.
    pub digest_match: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VipOwnerReport {
    pub ip: IpAddr,
    /// `None` when no live node is eligible.
    pub owner: Option<String>,
    pub owned_by_me: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeReport {
    pub name: String,
    pub internal_ip: IpAddr,
    pub pod_cidr: Option<String>,
    pub nodeport_internal_ip_only: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComponentReport {
    pub name: String,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigReport {
    pub source: String,
    pub config_digest: String,
    pub shared_digest: String,
    pub loaded_at: String,
    pub load_duration_ms: f64,
    pub reloads_ok: u64,
    pub reloads_error: u64,
    pub last_reload_error: Option<ReloadErrorReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReloadErrorReport {
    pub at: String,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceReport {
    pub namespace: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub cluster_ip: Option<IpAddr>,
    pub headless: bool,
    pub load_balancer_ip: Option<IpAddr>,
    pub pool: Option<String>,
    pub external_name: Option<String>,
    pub external_traffic_policy: String,
    pub ports: Vec<PortReport>,
    pub endpoints: Vec<EndpointReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PortReport {
    pub name: Option<String>,
    pub protocol: String,
    pub port: u16,
    pub target_port: u16,
    pub node_port: Option<u16>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointReport {
    pub ip: IpAddr,
    pub node: Option<String>,
    pub hostname: Option<String>,
    /// Takes traffic now: ready in the config and not failing its health check.
    pub ready: bool,
    /// "not ready" (config), "ready" (no health check), "unchecked" (no verdict yet),
    /// "passing" or "failing".
    pub health: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VipReport {
    pub ip: IpAddr,
    pub pool: String,
    pub announce: Vec<String>,
    pub services: Vec<String>,
}

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
            })
            .collect();
        self.vip_owners = owners
            .vips
            .iter()
            .map(|v| VipOwnerReport {
                ip: v.ip,
                owner: v.owner.clone(),
                owned_by_me: v.owned_by_me,
            })
            .collect();
        self
    }

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
                })
                .collect(),
            config: ConfigReport {
                source: history.source.clone(),
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
                    updates_sent: peer.updates_sent,
                })
                .collect(),
        }
    }
}
