//! Rules across values: ranges, containment, uniqueness and the Kubernetes service rules.
//! Every broken rule is collected with the path of the value to change.
//!
//! One file per part of the configuration, checked in this order (the order problems are
//! reported in):
//! - `node_cluster.rs`: `[node]`, `[cluster]` and `[cluster.gossip]`;
//! - `source.rs`: `[source]`;
//! - `network.rs`: `[network]`, its `[network.vxlan]` and the peers in `[[network.nodes]]`;
//! - `dns_admin.rs`: `[dns]` and `[admin]`;
//! - `proxy.rs`: `[proxy]`;
//! - `l2.rs`: `[l2]`;
//! - `pools_bgp.rs`: `[bgp]` and `[[pools]]`;
//! - `services.rs`: each `[[services]]` entry, with its ports in `service_ports.rs` and its
//!   LoadBalancer IP in `load_balancer.rs`;
//! - `names.rs`: the shapes of DNS labels, DNS names and interface names.

mod dns_admin;
mod l2;
mod load_balancer;
mod names;
mod network;
mod node_cluster;
mod pools_bgp;
mod proxy;
mod service_ports;
mod services;
mod source;

use std::ops::RangeInclusive;

use crate::schema::Config;
use crate::{Problem, Problems};

/// The Kubernetes default NodePort range.
pub const NODE_PORT_RANGE: RangeInclusive<u16> = 30000..=32767;

/// Checks every rule; returns all broken ones.
pub fn validate(config: &Config) -> Result<(), Problems> {
    let mut problems = Collector::default();
    node_cluster::check_node(config, &mut problems);
    node_cluster::check_cluster(config, &mut problems);
    source::check_source(config, &mut problems);
    network::check_network(config, &mut problems);
    dns_admin::check_dns(config, &mut problems);
    dns_admin::check_admin(config, &mut problems);
    proxy::check_proxy(config, &mut problems);
    l2::check_l2(config, &mut problems);
    pools_bgp::check_bgp(config, &mut problems);
    pools_bgp::check_pools(config, &mut problems);
    services::check_services(config, &mut problems);
    problems.finish()
}

/// Checks `[source]` alone.
pub(crate) fn validate_source(config: &Config) -> Result<(), Problems> {
    let mut problems = Collector::default();
    source::check_source(config, &mut problems);
    problems.finish()
}

/// The problems found so far, in the order the rules found them.
#[derive(Default)]
struct Collector {
    found: Vec<Problem>,
}

impl Collector {
    /// Records that the value at `path` breaks a rule.
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.found.push(Problem::new(path, message));
    }

    fn finish(self) -> Result<(), Problems> {
        if self.found.is_empty() {
            Ok(())
        } else {
            Err(Problems(self.found))
        }
    }
}
