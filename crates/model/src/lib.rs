//! The desired state of a node, built from a validated [`Config`]: every service with its
//! resolved addresses and ports, the LoadBalancer IPs (VIPs) to announce, and digests that
//! tell two nodes' configs apart. Built once per (re)load and published with `arc-swap`, so
//! readers on hot paths never take a lock.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod allocate;
mod build;
mod diff;
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
pub use diff::{ServiceDiff, diff_services};
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
    /// This node.
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
    /// The etcd revision of the shared document the snapshot was built from (gossiped next
    /// to the shared digest); `None` with a file source.
    pub config_revision: Option<i64>,
}

/// This node, as the components need it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeInfo {
    /// `node.name`.
    pub name: String,
    /// `node.internal_ip`, or 127.0.0.1 on a lone node that sets none.
    pub internal_ip: IpAddr,
    /// `node.pod_cidr`.
    pub pod_cidr: Option<IpNet>,
    /// NodePorts listen on `internal_ip` only (the default), else on every node address.
    pub nodeport_internal_ip_only: bool,
}

/// A service with every address and port resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    /// The service's namespace.
    pub namespace: String,
    /// The service's name.
    pub name: String,
    /// The service type, serialized as `type`.
    #[serde(rename = "type")]
    pub kind: ServiceType,
    /// `None` for headless and ExternalName services.
    pub cluster_ip: Option<IpAddr>,
    /// `cluster_ip = "None"` was given.
    pub headless: bool,
    /// Given or allocated; LoadBalancer services only.
    pub load_balancer_ip: Option<IpAddr>,
    /// The pool `load_balancer_ip` belongs to.
    pub pool: Option<String>,
    /// Which endpoints NodePort and LoadBalancer traffic goes to.
    pub external_traffic_policy: TrafficPolicy,
    /// The CNAME target of an ExternalName service.
    pub external_name: Option<String>,
    /// Headless DNS includes endpoints that are not ready.
    pub publish_not_ready_addresses: bool,
    /// Every port, with its target and node port resolved.
    pub ports: Vec<Port>,
    /// Active checks of each endpoint, as configured.
    pub health_check: Option<HealthCheck>,
    /// How the proxy picks an endpoint.
    pub load_balancing: LoadBalancing,
    /// At most this many proxied connections at once.
    pub max_connections: Option<u32>,
    /// The PROXY protocol header sent to endpoints, if any.
    pub proxy_protocol: ProxyProtocol,
    /// The backends, in config order.
    pub endpoints: Vec<Endpoint>,
}

impl Service {
    /// `namespace/name`, the service's identity.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// One port of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Port {
    /// The port's name; required when the service has several.
    pub name: Option<String>,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The port on the service's addresses.
    pub port: u16,
    /// The endpoints' port (`port` unless the config says otherwise).
    pub target_port: u16,
    /// Set (given or allocated) on NodePort and LoadBalancer services.
    pub node_port: Option<u16>,
}

/// A backend of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// The backend's address.
    pub ip: IpAddr,
    /// The node it runs on, if known.
    pub node: Option<String>,
    /// Its DNS label under the service, if any.
    pub hostname: Option<String>,
    /// Readiness as configured; health checks may take a ready endpoint out.
    pub ready: bool,
}

/// A LoadBalancer IP and how it is announced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vip {
    /// The address.
    pub ip: IpAddr,
    /// The pool it comes from.
    pub pool: String,
    /// How the pool announces it.
    pub announce: Vec<Announce>,
    /// The policy of the services on it; services share an address only with the same one.
    pub external_traffic_policy: TrafficPolicy,
    /// `namespace/name` of each service on this IP (several when they share it).
    pub services: Vec<String>,
}
