//! A service's `ports`: names, numbers, and node ports, which are unique across services.

use std::collections::{HashMap, HashSet};

use super::names::dns_label;
use super::{Collector, NODE_PORT_RANGE};
use crate::schema::{Protocol, Service, ServiceType};

/// Node ports taken so far, with the path of the key that took each.
pub(super) type NodePorts = HashMap<(Protocol, u16), String>;

pub(super) fn check_ports(
    service: &Service,
    path: &str,
    node_ports: &mut NodePorts,
    problems: &mut Collector,
) {
    let mut seen_ports = HashSet::new();
    let mut seen_names = HashSet::new();
    for (index, port) in service.ports.iter().enumerate() {
        let here = format!("{path}.ports[{index}]");
        match &port.name {
            Some(name) => {
                if let Err(why) = dns_label(name) {
                    problems.add(format!("{here}.name"), why);
                }
                if !seen_names.insert(name) {
                    problems.add(
                        format!("{here}.name"),
                        format!("{name:?} is used by another port of this service"),
                    );
                }
            }
            None if service.ports.len() > 1 => problems.add(
                format!("{here}.name"),
                "must be set when a service has several ports",
            ),
            None => {}
        }
        if port.port == 0 {
            problems.add(format!("{here}.port"), "must be 1-65535");
        }
        if port.target_port == Some(0) {
            problems.add(format!("{here}.target_port"), "must be 1-65535");
        }
        if !seen_ports.insert((port.protocol, port.port)) {
            problems.add(
                format!("{here}.port"),
                format!("{}/{} is listed twice", port.port, port.protocol),
            );
        }
        if let Some(node_port) = port.node_port {
            check_node_port(
                service,
                port.protocol,
                node_port,
                &here,
                node_ports,
                problems,
            );
        }
    }
}

fn check_node_port(
    service: &Service,
    protocol: Protocol,
    node_port: u16,
    here: &str,
    node_ports: &mut NodePorts,
    problems: &mut Collector,
) {
    let path = format!("{here}.node_port");
    if !matches!(
        service.kind,
        ServiceType::NodePort | ServiceType::LoadBalancer
    ) {
        problems.add(
            path,
            format!(
                "only NodePort and LoadBalancer services have node ports, this one is {}",
                service.kind
            ),
        );
    } else if !NODE_PORT_RANGE.contains(&node_port) {
        problems.add(
            path,
            format!(
                "{node_port} is outside the NodePort range {}-{}",
                NODE_PORT_RANGE.start(),
                NODE_PORT_RANGE.end()
            ),
        );
    } else if let Some(first) = node_ports.insert((protocol, node_port), path.clone()) {
        problems.add(
            path,
            format!("{node_port}/{protocol} is already used by {first}"),
        );
    }
}
