//! `[[services]]`: the Kubernetes service rules, service by service. The ports are checked in
//! `service_ports.rs` and the LoadBalancer IP in `load_balancer.rs`; what must be unique across
//! services (names, cluster IPs, node ports, unshared LoadBalancer IPs) is tracked here.

use std::collections::HashMap;
use std::net::IpAddr;

use super::Collector;
use super::load_balancer::{SharedIps, check_load_balancer};
use super::names::{dns_label, dns_name};
use super::service_ports::{NodePorts, check_ports};
use crate::schema::{
    ClusterIp, Config, HealthCheckKind, ProxyProtocol, Service, ServiceType, TrafficPolicy,
};

pub(super) fn check_services(config: &Config, problems: &mut Collector) {
    // (namespace, name) -> index of the service that defined it first.
    let mut names: HashMap<(&str, &str), usize> = HashMap::new();
    let mut cluster_ips: HashMap<IpAddr, usize> = HashMap::new();
    let mut node_ports = NodePorts::new();
    let mut shared_ips = SharedIps::default();
    for (index, service) in config.services.iter().enumerate() {
        let path = format!("services[{index}]");
        if let Err(why) = dns_label(&service.name) {
            problems.add(format!("{path}.name"), why);
        }
        if let Err(why) = dns_label(&service.namespace) {
            problems.add(format!("{path}.namespace"), why);
        }
        if let Some(first) = names.insert((&service.namespace, &service.name), index) {
            problems.add(
                format!("{path}.name"),
                format!(
                    "{}/{} is already defined by services[{first}]",
                    service.namespace, service.name
                ),
            );
        }
        check_kind(service, &path, problems);
        if let Some(ClusterIp::Address(ip)) = service.cluster_ip {
            check_cluster_ip(config, ip, &path, problems);
            if let Some(first) = cluster_ips.insert(ip, index) {
                problems.add(
                    format!("{path}.cluster_ip"),
                    format!("{ip} is already used by services[{first}]"),
                );
            }
        }
        check_ports(service, &path, &mut node_ports, problems);
        check_load_balancer(config, service, index, &path, &mut shared_ips, problems);
        check_health_check(service, &path, problems);
        if service.max_connections == Some(0) {
            problems.add(format!("{path}.max_connections"), "must be at least 1");
        }
        if service.proxy_protocol != ProxyProtocol::None
            && (service.kind == ServiceType::ExternalName
                || service.cluster_ip == Some(ClusterIp::Headless))
        {
            problems.add(
                format!("{path}.proxy_protocol"),
                "only for services the proxy forwards (not headless or ExternalName)",
            );
        }
        check_endpoints(service, &path, problems);
    }
}

/// The keys each service type needs, and those it must not have.
fn check_kind(service: &Service, path: &str, problems: &mut Collector) {
    match service.kind {
        ServiceType::ExternalName => check_external_name(service, path, problems),
        kind => {
            let headless = service.cluster_ip == Some(ClusterIp::Headless);
            if service.external_name.is_some() {
                problems.add(
                    format!("{path}.external_name"),
                    format!("only for ExternalName services, this one is {kind}"),
                );
            }
            if headless && kind != ServiceType::ClusterIP {
                problems.add(
                    format!("{path}.cluster_ip"),
                    format!("\"None\" (headless) is only for ClusterIP services; {kind} services need a cluster IP"),
                );
            }
            if !headless && service.ports.is_empty() {
                problems.add(
                    format!("{path}.ports"),
                    "needs at least one port (only headless services may have none)",
                );
            }
        }
    }
    if service.kind != ServiceType::LoadBalancer {
        for (key, is_set) in [
            ("load_balancer_ip", service.load_balancer_ip.is_some()),
            ("pool", service.pool.is_some()),
            ("sharing_key", service.sharing_key.is_some()),
            (
                "allocate_load_balancer_node_ports",
                !service.allocate_load_balancer_node_ports,
            ),
        ] {
            if is_set {
                problems.add(format!("{path}.{key}"), "only for LoadBalancer services");
            }
        }
    }
    if service.external_traffic_policy == TrafficPolicy::Local
        && !matches!(
            service.kind,
            ServiceType::NodePort | ServiceType::LoadBalancer
        )
    {
        problems.add(
            format!("{path}.external_traffic_policy"),
            "\"Local\" is only for NodePort and LoadBalancer services",
        );
    }
}

/// An ExternalName service is a DNS alias: a target name and nothing the proxy would serve.
fn check_external_name(service: &Service, path: &str, problems: &mut Collector) {
    match &service.external_name {
        None => problems.add(
            format!("{path}.external_name"),
            "ExternalName services need external_name",
        ),
        Some(name) => {
            if let Err(why) = dns_name(name) {
                problems.add(format!("{path}.external_name"), why);
            }
        }
    }
    if !service.ports.is_empty() {
        problems.add(
            format!("{path}.ports"),
            "ExternalName services have no ports",
        );
    }
    if service.cluster_ip.is_some() {
        problems.add(
            format!("{path}.cluster_ip"),
            "ExternalName services have no cluster IP",
        );
    }
    if !service.endpoints.is_empty() {
        problems.add(
            format!("{path}.endpoints"),
            "ExternalName services have no endpoints",
        );
    }
}

/// A given cluster IP is a host address of `cluster.service_cidr`.
fn check_cluster_ip(config: &Config, ip: IpAddr, path: &str, problems: &mut Collector) {
    let service_cidr = config.cluster.service_cidr;
    if !service_cidr.contains(&ip) {
        problems.add(
            format!("{path}.cluster_ip"),
            format!("{ip} is outside cluster.service_cidr {service_cidr}"),
        );
    } else if ip == service_cidr.network() || (ip.is_ipv4() && ip == service_cidr.broadcast()) {
        problems.add(
            format!("{path}.cluster_ip"),
            format!("{ip} is the network or broadcast address"),
        );
    }
}

fn check_health_check(service: &Service, path: &str, problems: &mut Collector) {
    let Some(check) = &service.health_check else {
        return;
    };
    let here = format!("{path}.health_check");
    if check.interval_ms == 0 {
        problems.add(format!("{here}.interval_ms"), "must be above 0");
    }
    if check.timeout_ms == 0 || check.timeout_ms > check.interval_ms {
        problems.add(
            format!("{here}.timeout_ms"),
            format!(
                "{} must be above 0 and at most interval_ms ({})",
                check.timeout_ms, check.interval_ms
            ),
        );
    }
    if check.rise == 0 {
        problems.add(format!("{here}.rise"), "must be at least 1");
    }
    if check.fall == 0 {
        problems.add(format!("{here}.fall"), "must be at least 1");
    }
    if check.port == Some(0) {
        problems.add(format!("{here}.port"), "must be 1-65535");
    }
    match (&check.kind, &check.path) {
        (HealthCheckKind::Http, Some(request_path)) if !request_path.starts_with('/') => {
            problems.add(
                format!("{here}.path"),
                format!("{request_path:?} must start with '/'"),
            );
        }
        (HealthCheckKind::Tcp, Some(_)) => {
            problems.add(format!("{here}.path"), "only for kind = \"http\"");
        }
        _ => {}
    }
}

fn check_endpoints(service: &Service, path: &str, problems: &mut Collector) {
    for (index, endpoint) in service.endpoints.iter().enumerate() {
        let here = format!("{path}.endpoints[{index}]");
        if endpoint.ip.is_unspecified() || endpoint.ip.is_multicast() {
            problems.add(
                format!("{here}.ip"),
                format!("{} is not a unicast host address", endpoint.ip),
            );
        }
        for (key, name) in [("hostname", &endpoint.hostname), ("node", &endpoint.node)] {
            if let Some(name) = name
                && let Err(why) = dns_label(name)
            {
                problems.add(format!("{here}.{key}"), why);
            }
        }
    }
}
