//! A LoadBalancer service's pool and address. Services may share an address given
//! explicitly only when they agree on a `sharing_key` and a traffic policy and their ports
//! differ.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::Collector;
use crate::schema::{Config, Pool, Protocol, Service, ServiceType, TrafficPolicy};

/// The LoadBalancer IPs given explicitly so far.
#[derive(Default)]
pub(super) struct SharedIps<'config> {
    by_ip: BTreeMap<IpAddr, SharedIp<'config>>,
}

/// A LoadBalancer IP and the terms the first service that asked for it set.
struct SharedIp<'config> {
    /// Another service may share the IP only with this same key, and never without one.
    sharing_key: Option<&'config str>,
    /// Every service on the IP needs this policy.
    traffic_policy: TrafficPolicy,
    /// What the services on the IP serve so far.
    ports: Vec<(Protocol, u16)>,
    /// Index of the first service in `services`.
    first_service: usize,
}

pub(super) fn check_load_balancer<'config>(
    config: &Config,
    service: &'config Service,
    index: usize,
    path: &str,
    shared_ips: &mut SharedIps<'config>,
    problems: &mut Collector,
) {
    if service.kind != ServiceType::LoadBalancer {
        return;
    }
    let pool = match &service.pool {
        Some(name) => match config.pools.iter().find(|pool| &pool.name == name) {
            Some(pool) => Some(pool),
            None => {
                problems.add(format!("{path}.pool"), format!("no pool is named {name:?}"));
                return;
            }
        },
        None => None,
    };
    match service.load_balancer_ip {
        Some(ip) => {
            match pool {
                Some(pool) if !pool_contains(pool, ip) => problems.add(
                    format!("{path}.load_balancer_ip"),
                    format!("{ip} is outside pool {:?}", pool.name),
                ),
                None if !config.pools.iter().any(|pool| pool_contains(pool, ip)) => problems.add(
                    format!("{path}.load_balancer_ip"),
                    format!("{ip} is in no pool; add it to one of [[pools]]"),
                ),
                _ => {}
            }
            shared_ips.claim(ip, service, index, path, problems);
        }
        None => {
            if pool.is_none() && !config.pools.iter().any(|pool| pool.auto_assign) {
                problems.add(
                    format!("{path}.pool"),
                    "needs a pool or load_balancer_ip: no pool has auto_assign = true",
                );
            }
        }
    }
}

fn pool_contains(pool: &Pool, ip: IpAddr) -> bool {
    pool.addresses.iter().any(|range| range.contains(ip))
}

impl<'config> SharedIps<'config> {
    /// Puts `service` (at `index`) on `ip`, or reports why it cannot share it.
    fn claim(
        &mut self,
        ip: IpAddr,
        service: &'config Service,
        index: usize,
        path: &str,
        problems: &mut Collector,
    ) {
        let ports: Vec<_> = service
            .ports
            .iter()
            .map(|port| (port.protocol, port.port))
            .collect();
        let sharing_key = service.sharing_key.as_deref();
        let Some(shared) = self.by_ip.get_mut(&ip) else {
            self.by_ip.insert(
                ip,
                SharedIp {
                    sharing_key,
                    traffic_policy: service.external_traffic_policy,
                    ports,
                    first_service: index,
                },
            );
            return;
        };
        let first = shared.first_service;
        if sharing_key.is_none() || shared.sharing_key != sharing_key {
            problems.add(
                format!("{path}.load_balancer_ip"),
                format!("{ip} is already used by services[{first}]; set the same sharing_key on both to share it"),
            );
        } else if shared.traffic_policy != service.external_traffic_policy {
            problems.add(
                format!("{path}.external_traffic_policy"),
                format!("services sharing {ip} need the same policy as services[{first}]"),
            );
        } else if let Some((protocol, port)) =
            ports.iter().find(|served| shared.ports.contains(served))
        {
            problems.add(
                format!("{path}.ports"),
                format!(
                    "{port}/{protocol} is already served on the shared IP {ip} by services[{first}]"
                ),
            );
        } else {
            shared.ports.extend(ports);
        }
    }
}
