//! Config -> Snapshot: resolves every service's addresses and ports.
//!
//! Order matters for determinism: explicit addresses and ports are taken first, then the
//! rest are allocated walking services sorted by `namespace/name`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};

use dockline_config::{
    AddressRange, ClusterIp, Config, NODE_PORT_RANGE, Problem, Problems, Protocol, ServiceType,
    TrafficPolicy, validate,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::allocate::probe;
use crate::{Endpoint, NodeInfo, Port, Service, Snapshot, Vip};

/// Probing a range stops after this many taken candidates.
const MAX_PROBES: u128 = 1 << 20;

/// Validates `config` and builds its snapshot; all problems, including a pool or range that
/// has run out of addresses, come back together.
///
/// The services move into [`Snapshot::services`]; the snapshot's copy of the config keeps
/// every other section (one copy of 10,000 services is enough).
pub fn build(mut config: Config) -> Result<Snapshot, Problems> {
    validate(&config)?;
    let shared_digest = digest(&SharedParts::of(&config));
    // The services are most of the JSON and the shared digest covers them already: the
    // whole config's digest hashes them once, through it, rather than twice.
    let services = std::mem::take(&mut config.services);
    let config_digest = digest(&(&config, &shared_digest));
    config.services = services;
    let config = &mut config;
    let mut problems = Vec::new();
    // Config order is kept for problem paths; allocation walks the sorted order.
    let mut order: Vec<usize> = (0..config.services.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&config.services[a], &config.services[b]);
        (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name))
    });

    let cluster_ips = allocate_cluster_ips(config, &order, &mut problems);
    let node_ports = allocate_node_ports(config, &order, &mut problems);
    let lb_ips = allocate_load_balancer_ips(config, &order, &cluster_ips, &mut problems);
    if !problems.is_empty() {
        return Err(Problems(problems));
    }

    let mut given: Vec<Option<dockline_config::Service>> = std::mem::take(&mut config.services)
        .into_iter()
        .map(Some)
        .collect();
    let services: Vec<Service> = order
        .iter()
        .filter_map(|&i| given[i].take().map(|s| (i, s)))
        .map(|(i, s)| {
            let (load_balancer_ip, pool) = match &lb_ips[i] {
                Some((ip, pool)) => (Some(*ip), Some(pool.clone())),
                None => (None, None),
            };
            Service {
                namespace: s.namespace,
                name: s.name,
                kind: s.kind,
                cluster_ip: cluster_ips[i],
                headless: s.cluster_ip == Some(ClusterIp::Headless),
                load_balancer_ip,
                pool,
                external_traffic_policy: s.external_traffic_policy,
                external_name: s.external_name,
                publish_not_ready_addresses: s.publish_not_ready_addresses,
                ports: s
                    .ports
                    .into_iter()
                    .zip(&node_ports[i])
                    .map(|(p, node_port)| Port {
                        target_port: p.target_port.unwrap_or(p.port),
                        name: p.name,
                        protocol: p.protocol,
                        port: p.port,
                        node_port: *node_port,
                    })
                    .collect(),
                health_check: s.health_check,
                load_balancing: s.load_balancing,
                max_connections: s.max_connections,
                proxy_protocol: s.proxy_protocol,
                endpoints: s
                    .endpoints
                    .into_iter()
                    .map(|e| Endpoint {
                        ip: e.ip,
                        node: e.node,
                        hostname: e.hostname,
                        ready: e.ready,
                    })
                    .collect(),
            }
        })
        .collect();

    Ok(Snapshot {
        node: NodeInfo {
            name: config.node.name.clone(),
            internal_ip: config
                .node
                .internal_ip
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            pod_cidr: config.node.pod_cidr,
            nodeport_internal_ip_only: config.node.nodeport_binds_internal_ip_only(),
        },
        vips: vips(config, &services),
        config_digest,
        shared_digest,
        config_revision: None,
        services,
        config: std::mem::take(config),
    })
}

fn allocate_cluster_ips(
    config: &Config,
    order: &[usize],
    problems: &mut Vec<Problem>,
) -> Vec<Option<IpAddr>> {
    let range = AddressRange::from(config.cluster.service_cidr);
    let mut result: Vec<Option<IpAddr>> = config
        .services
        .iter()
        .map(|s| match s.cluster_ip {
            Some(ClusterIp::Address(ip)) => Some(ip),
            _ => None,
        })
        .collect();
    let mut used: HashSet<IpAddr> = result.iter().flatten().copied().collect();
    let is_v4 = range.first().is_ipv4();
    for &i in order {
        let s = &config.services[i];
        if s.cluster_ip.is_some() || s.kind == ServiceType::ExternalName {
            continue;
        }
        // Neither the network address nor (IPv4) the broadcast address.
        let slot = |index: u128| {
            (index != 0 && !(is_v4 && index == range.size() - 1))
                .then(|| range.nth(index))
                .flatten()
        };
        match probe(
            &key(s),
            range.size(),
            |ip| used.contains(ip),
            MAX_PROBES,
            slot,
        ) {
            Some(ip) => {
                used.insert(ip);
                result[i] = Some(ip);
            }
            None => problems.push(Problem::new(
                format!("services[{i}].cluster_ip"),
                format!(
                    "cluster.service_cidr {} has no free address left",
                    config.cluster.service_cidr
                ),
            )),
        }
    }
    result
}

fn allocate_node_ports(
    config: &Config,
    order: &[usize],
    problems: &mut Vec<Problem>,
) -> Vec<Vec<Option<u16>>> {
    let mut result: Vec<Vec<Option<u16>>> = config
        .services
        .iter()
        .map(|s| s.ports.iter().map(|p| p.node_port).collect())
        .collect();
    let mut used: BTreeMap<Protocol, HashSet<u16>> = BTreeMap::new();
    for s in &config.services {
        for p in &s.ports {
            if let Some(np) = p.node_port {
                used.entry(p.protocol).or_default().insert(np);
            }
        }
    }
    let first = *NODE_PORT_RANGE.start();
    let size = u128::from(NODE_PORT_RANGE.end() - first) + 1;
    for &i in order {
        let s = &config.services[i];
        let wants_node_ports = match s.kind {
            ServiceType::NodePort => true,
            ServiceType::LoadBalancer => s.allocate_load_balancer_node_ports,
            _ => false,
        };
        if !wants_node_ports {
            continue;
        }
        for (j, p) in s.ports.iter().enumerate() {
            if p.node_port.is_some() {
                continue;
            }
            let taken = used.entry(p.protocol).or_default();
            let id = format!("{}/{}/{}", key(s), p.port, p.protocol);
            let slot = |index: u128| u16::try_from(index).ok().map(|n| first + n);
            match probe(&id, size, |port| taken.contains(port), size, slot) {
                Some(np) => {
                    taken.insert(np);
                    result[i][j] = Some(np);
                }
                None => problems.push(Problem::new(
                    format!("services[{i}].ports[{j}].node_port"),
                    "the NodePort range 30000-32767 has no free port left",
                )),
            }
        }
    }
    result
}

/// An allocated LoadBalancer IP and who may share it.
struct Shared {
    pool: String,
    policy: TrafficPolicy,
    ports: HashSet<(Protocol, u16)>,
}

fn allocate_load_balancer_ips(
    config: &Config,
    order: &[usize],
    cluster_ips: &[Option<IpAddr>],
    problems: &mut Vec<Problem>,
) -> Vec<Option<(IpAddr, String)>> {
    let mut result: Vec<Option<(IpAddr, String)>> = vec![None; config.services.len()];
    let mut taken: BTreeMap<IpAddr, Shared> = BTreeMap::new();
    // The addresses of each sharing key, so that a service finds the ones it may join
    // without walking every address taken.
    let mut by_sharing_key: HashMap<String, BTreeSet<IpAddr>> = HashMap::new();
    let pool_of = |ip: IpAddr| {
        config
            .pools
            .iter()
            .find(|p| p.addresses.iter().any(|r| r.contains(ip)))
    };
    // Explicit addresses first (validation checked pools and sharing rules).
    for (i, s) in config.services.iter().enumerate() {
        let (ServiceType::LoadBalancer, Some(ip)) = (s.kind, s.load_balancer_ip) else {
            continue;
        };
        let Some(pool) = pool_of(ip) else { continue };
        let entry = taken.entry(ip).or_insert_with(|| {
            if let Some(key) = &s.sharing_key {
                by_sharing_key.entry(key.clone()).or_default().insert(ip);
            }
            Shared {
                pool: pool.name.clone(),
                policy: s.external_traffic_policy,
                ports: HashSet::new(),
            }
        });
        entry
            .ports
            .extend(s.ports.iter().map(|p| (p.protocol, p.port)));
        result[i] = Some((ip, pool.name.clone()));
    }
    for &i in order {
        let s = &config.services[i];
        if s.kind != ServiceType::LoadBalancer || s.load_balancer_ip.is_some() {
            continue;
        }
        let ports: HashSet<(Protocol, u16)> =
            s.ports.iter().map(|p| (p.protocol, p.port)).collect();
        let candidates: Vec<_> = match &s.pool {
            Some(name) => config.pools.iter().filter(|p| &p.name == name).collect(),
            None => config.pools.iter().filter(|p| p.auto_assign).collect(),
        };
        // A service joins an IP of its sharing key when the ports fit beside the others.
        if let Some(key) = &s.sharing_key {
            let joinable = by_sharing_key
                .get(key)
                .into_iter()
                .flatten()
                .copied()
                .find(|ip| {
                    taken.get(ip).is_some_and(|sh| {
                        candidates.iter().any(|p| p.name == sh.pool)
                            && sh.policy == s.external_traffic_policy
                            && sh.ports.is_disjoint(&ports)
                    })
                });
            if let Some((ip, sh)) = joinable.and_then(|ip| Some((ip, taken.get_mut(&ip)?))) {
                sh.ports.extend(ports);
                result[i] = Some((ip, sh.pool.clone()));
                continue;
            }
        }
        // Prefer the family of the service's cluster IP; pools may hold both.
        let want_v4 = cluster_ips[i].is_none_or(|ip| ip.is_ipv4());
        let hash_key = s.sharing_key.clone().unwrap_or_else(|| key(s));
        let found = candidates.iter().find_map(|pool| {
            let ranges: Vec<&AddressRange> = pool
                .addresses
                .iter()
                .filter(|r| r.first().is_ipv4() == want_v4)
                .collect();
            let ranges = if ranges.is_empty() {
                pool.addresses.iter().collect()
            } else {
                ranges
            };
            let size: u128 = ranges
                .iter()
                .map(|r| r.size())
                .fold(0, u128::saturating_add);
            let used = |ip: &IpAddr| taken.contains_key(ip);
            probe(&hash_key, size, used, MAX_PROBES, |index| {
                nth_in(&ranges, index)
            })
            .map(|ip| (ip, pool.name.clone()))
        });
        match found {
            Some((ip, pool)) => {
                if let Some(key) = &s.sharing_key {
                    by_sharing_key.entry(key.clone()).or_default().insert(ip);
                }
                taken.insert(
                    ip,
                    Shared {
                        pool: pool.clone(),
                        policy: s.external_traffic_policy,
                        ports,
                    },
                );
                result[i] = Some((ip, pool));
            }
            None => problems.push(Problem::new(
                format!("services[{i}].pool"),
                match &s.pool {
                    Some(name) => format!("pool {name:?} has no free address left for {}", key(s)),
                    None => format!("no auto-assign pool has a free address left for {}", key(s)),
                },
            )),
        }
    }
    result
}

/// The `index`-th address across several ranges.
fn nth_in(ranges: &[&AddressRange], mut index: u128) -> Option<IpAddr> {
    for r in ranges {
        if index < r.size() {
            return r.nth(index);
        }
        index -= r.size();
    }
    None
}

fn vips(config: &Config, services: &[Service]) -> Vec<Vip> {
    let mut by_ip: BTreeMap<IpAddr, Vip> = BTreeMap::new();
    for s in services {
        let (Some(ip), Some(pool)) = (s.load_balancer_ip, &s.pool) else {
            continue;
        };
        let announce = config
            .pools
            .iter()
            .find(|p| &p.name == pool)
            .map(|p| p.announce.clone())
            .unwrap_or_default();
        by_ip
            .entry(ip)
            .or_insert_with(|| Vip {
                ip,
                pool: pool.clone(),
                announce,
                external_traffic_policy: s.external_traffic_policy,
                services: Vec::new(),
            })
            .services
            .push(s.key());
    }
    by_ip.into_values().collect()
}

fn key(s: &dockline_config::Service) -> String {
    format!("{}/{}", s.namespace, s.name)
}

/// What every node of a cluster must agree on.
#[derive(Serialize)]
struct SharedParts<'a> {
    domain: &'a str,
    pod_cidr: String,
    service_cidr: String,
    network: (&'a dockline_config::TunnelMode, &'a dockline_config::Vxlan),
    pools: &'a [dockline_config::Pool],
    services: &'a [dockline_config::Service],
}

impl<'a> SharedParts<'a> {
    fn of(c: &'a Config) -> Self {
        SharedParts {
            domain: &c.cluster.domain,
            pod_cidr: c.cluster.pod_cidr.to_string(),
            service_cidr: c.cluster.service_cidr.to_string(),
            network: (&c.network.tunnel_mode, &c.network.vxlan),
            pools: &c.pools,
            services: &c.services,
        }
    }
}

/// SHA-256 of `value`'s JSON, streamed into the hash: the JSON of 10,000 services is
/// megabytes that need not be held at once.
fn digest<T: Serialize>(value: &T) -> String {
    // serde_json writes a few bytes at a time; the hash takes them in blocks.
    let mut hasher = std::io::BufWriter::with_capacity(1 << 16, HashWriter(Sha256::new()));
    // Writing into a hash cannot fail, and our types always serialize.
    let _ = serde_json::to_writer(&mut hasher, value);
    let _ = std::io::Write::flush(&mut hasher);
    let (hasher, _) = hasher.into_parts();
    hasher
        .0
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
