//! The desired state of a node, built from a validated [`Config`]: every service with its
//! resolved addresses and ports, the LoadBalancer IPs (VIPs) to announce, and digests that
//! tell two nodes' configs apart. Built once per (re)load and published with `arc-swap`, so
//! readers on hot paths never take a lock.

#![forbid(unsafe_code)]

mod allocate;
mod build;
mod health;
mod members;
mod published;
pub mod testing;

use std::net::IpAddr;

use dockline_config::{
    Announce, Config, HealthCheck, LoadBalancing, Protocol, ProxyProtocol, ServiceType,
    TrafficPolicy,
};
use ipnet::IpNet;
use serde::Serialize;

pub use allocate::stable_hash;
pub use build::build;
pub use health::{HealthVerdicts, LiveHealth};
pub use members::{
    Live, LiveMembers, LiveOwners, Member, MemberSet, MemberState, VipOwner, VipOwners,
};
pub use published::Published;

/// One consistent view of what this node should do.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// The config the snapshot was built from, without its services (see `services`).
    #[serde(skip)]
    pub config: Config,
    pub node: NodeInfo,
    /// Sorted by namespace, then name.
    pub services: Vec<Service>,
    /// Every LoadBalancer IP with the services behind it, sorted by address.
    pub vips: Vec<Vip>,
    /// SHA-256 of the whole effective config.
    pub config_digest: String,
    /// SHA-256 of the parts every node must agree on (cluster ranges, network mode, pools,
    /// services); nodes gossip it to detect a split config.
    pub shared_digest: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeInfo {
    pub name: String,
    pub internal_ip: IpAddr,
    pub pod_cidr: Option<IpNet>,
    /// NodePorts listen on `internal_ip` only (the default), else on every node address.
    pub nodeport_internal_ip_only: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ServiceType,
    /// `None` for headless and ExternalName services.
    pub cluster_ip: Option<IpAddr>,
    pub headless: bool,
    pub load_balancer_ip: Option<IpAddr>,
    pub pool: Option<String>,
    pub external_traffic_policy: TrafficPolicy,
    pub external_name: Option<String>,
    pub publish_not_ready_addresses: bool,
    pub ports: Vec<Port>,
    pub health_check: Option<HealthCheck>,
    pub load_balancing: LoadBalancing,
    pub max_connections: Option<u32>,
    pub proxy_protocol: ProxyProtocol,
    pub endpoints: Vec<Endpoint>,
}

impl Service {
    /// `namespace/name`, the service's identity.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Port {
    pub name: Option<String>,
    pub protocol: Protocol,
    pub port: u16,
    pub target_port: u16,
    /// Set (given or allocated) on NodePort and LoadBalancer services.
    pub node_port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub node: Option<String>,
    pub hostname: Option<String>,
    /// Readiness as configured; health checks may take a ready endpoint out.
    pub ready: bool,
}

/// A LoadBalancer IP and how it is announced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vip {
    pub ip: IpAddr,
    pub pool: String,
    pub announce: Vec<Announce>,
    pub external_traffic_policy: TrafficPolicy,
    /// `namespace/name` of each service on this IP (several when they share it).
    pub services: Vec<String>,
}
