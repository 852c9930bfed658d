//! The names dockline is authoritative for, as an index built once per snapshot or health
//! change: every owner name with its records precomputed, so answering is a lookup.
//!
//! Zones: the cluster domain and the reverse zones of `service_cidr` and `pod_cidr` (cut at
//! the octet or nibble boundary at or above the prefix). Names follow the Kubernetes DNS
//! specification 1.1.0 (services, headless endpoints, SRV for named ports, PTR) and CoreDNS
//! where it is silent (`ns.dns.<domain>`, dashed-IP endpoint names, SOA fields). Empty
//! non-terminals are present as nodes without records, so they answer NODATA, not NXDOMAIN.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};

use dockline_config::{Protocol, ServiceType};
use dockline_model::{Endpoint, HealthVerdicts, Service, Snapshot};
use hickory_proto::ProtoError;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use ipnet::IpNet;

use crate::fast::FastAnswers;

/// The schema version of the Kubernetes DNS specification served at `dns-version.<domain>`.
pub const SCHEMA_VERSION: &str = "1.1.0";

/// The largest record set answered from precomputed bytes.
const MAX_PRECOMPUTED: usize = 64;

/// SOA timers as CoreDNS's kubernetes plugin sets them.
const SOA_REFRESH: i32 = 7200;
const SOA_RETRY: i32 = 1800;
const SOA_EXPIRE: i32 = 86400;

#[derive(Debug)]
pub struct Zone {
    names: HashMap<Name, Node>,
    fast: FastAnswers,
    apexes: Vec<Apex>,
    forward: Vec<SocketAddr>,
    /// Names that could not be formed (a label too long, say) and were left out.
    skipped: usize,
}

#[derive(Debug)]
pub(crate) struct Apex {
    pub name: Name,
    pub soa: Record,
}

/// One owner name and what it holds.
#[derive(Debug, Default)]
pub(crate) struct Node {
    pub apex: usize,
    pub sets: Vec<RecordSet>,
    pub cname: Option<Record>,
}

#[derive(Debug)]
pub(crate) struct RecordSet {
    pub rtype: RecordType,
    pub records: Vec<Record>,
    /// Addresses of SRV targets, for the additional section.
    pub additionals: Vec<Record>,
    /// Headless endpoints rotate: each answer starts one record further.
    pub rotates: bool,
    /// Advanced on every answer from a rotating set. Per name and type, so that a client
    /// asking A and AAAA in turn still sees every A record come first in its turn.
    turn: AtomicUsize,
}

/// Where a query name falls.
#[derive(Debug)]
pub(crate) enum Lookup<'z> {
    Found(&'z Node, &'z Apex),
    /// Inside one of our zones, but no such name.
    Missing(&'z Apex),
    Outside,
}

impl RecordSet {
    /// The records in answer order: rotated one further on every call if the set rotates.
    pub fn in_turn(&self) -> impl Iterator<Item = &Record> {
        let start = match self.rotates && !self.records.is_empty() {
            true => self.turn.fetch_add(1, Ordering::Relaxed) % self.records.len(),
            false => 0,
        };
        let (tail, head) = self.records.split_at(start);
        head.iter().chain(tail)
    }
}

impl Zone {
    /// Builds the index of `snapshot` with endpoint readiness from `health`. `serial` is the
    /// SOA serial, which the caller changes on every rebuild.
    pub fn build(
        snapshot: &Snapshot,
        health: &HealthVerdicts,
        serial: u32,
    ) -> Result<Zone, ProtoError> {
        let config = &snapshot.config;
        let ttl = config.dns.ttl;
        let domain = Name::from_ascii(format!("{}.", config.cluster.domain))?;
        let ns_name = Name::from_ascii("ns.dns")?.append_domain(&domain)?;
        let hostmaster = Name::from_ascii("hostmaster")?.append_domain(&domain)?;
        let mut apex_names = vec![domain.clone()];
        for cidr in [config.cluster.service_cidr, config.cluster.pod_cidr] {
            let name = reverse_zone(cidr)?;
            if !apex_names.contains(&name) {
                apex_names.push(name);
            }
        }
        let apexes = apex_names
            .into_iter()
            .map(|name| {
                let soa = SOA::new(
                    ns_name.clone(),
                    hostmaster.clone(),
                    serial,
                    SOA_REFRESH,
                    SOA_RETRY,
                    SOA_EXPIRE,
                    ttl,
                );
                Apex {
                    soa: Record::from_rdata(name.clone(), ttl, RData::SOA(soa)),
                    name,
                }
            })
            .collect();
        let mut zone = Zone {
            names: HashMap::new(),
            fast: FastAnswers::default(),
            apexes,
            forward: config.dns.forward.iter().map(|u| u.0).collect(),
            skipped: 0,
        };
        for index in 0..zone.apexes.len() {
            let apex = zone.apexes[index].name.clone();
            let soa = zone.apexes[index].soa.clone();
            zone.add(&apex, soa, false);
            let ns = RData::NS(NS(ns_name.clone()));
            let glue = address_record(&ns_name, snapshot.node.internal_ip, ttl);
            if let Some(set) = zone.add(&apex, Record::from_rdata(apex.clone(), ttl, ns), false) {
                set.additionals.push(glue);
            }
        }
        zone.add_address(&ns_name, snapshot.node.internal_ip, ttl, false);
        let version = Name::from_ascii("dns-version")?.append_domain(&domain)?;
        let txt = RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_owned()]));
        zone.add(
            &version,
            Record::from_rdata(version.clone(), ttl, txt),
            false,
        );
        let svc_domain = Name::from_ascii("svc")?.append_domain(&domain)?;
        for service in &snapshot.services {
            if let Err(_unrepresentable) = zone.add_service(service, health, &svc_domain, ttl) {
                zone.skipped += 1;
            }
        }
        zone.add_empty_non_terminals();
        zone.precompute();
        Ok(zone)
    }

    /// Upstream resolvers for names outside our zones; empty = REFUSED.
    pub fn forward(&self) -> &[SocketAddr] {
        &self.forward
    }

    pub(crate) fn fast(&self) -> &FastAnswers {
        &self.fast
    }

    pub fn skipped(&self) -> usize {
        self.skipped
    }

    pub(crate) fn lookup(&self, name: &Name) -> Lookup<'_> {
        if let Some(node) = self.names.get(name) {
            return Lookup::Found(node, &self.apexes[node.apex]);
        }
        match self.apex_of(name) {
            Some(index) => Lookup::Missing(&self.apexes[index]),
            None => Lookup::Outside,
        }
    }

    /// The most specific of our zones that contains `name`.
    fn apex_of(&self, name: &Name) -> Option<usize> {
        self.apexes
            .iter()
            .enumerate()
            .filter(|(_, apex)| apex.name.zone_of(name))
            .max_by_key(|(_, apex)| apex.name.num_labels())
            .map(|(index, _)| index)
    }

    fn add_service(
        &mut self,
        service: &Service,
        health: &HealthVerdicts,
        svc_domain: &Name,
        ttl: u32,
    ) -> Result<(), ProtoError> {
        let name = Name::from_ascii(&service.name)?
            .append_name(&Name::from_ascii(&service.namespace)?)?
            .append_domain(svc_domain)?;
        if service.kind == ServiceType::ExternalName {
            if let Some(target) = &service.external_name {
                let target = Name::from_ascii(format!("{}.", target.trim_end_matches('.')))?;
                let record = Record::from_rdata(name.clone(), ttl, RData::CNAME(CNAME(target)));
                if let Some(node) = self.node(&name) {
                    node.cname = Some(record);
                }
            }
            return Ok(());
        }
        if let Some(ip) = service.cluster_ip {
            self.add_address(&name, ip, ttl, false);
            let addresses = vec![address_record(&name, ip, ttl)];
            for port in service.ports.iter().filter(|p| p.name.is_some()) {
                let srv = SRV::new(0, 100, port.port, name.clone());
                self.add_srv(&name, port, vec![(srv, addresses.clone())], ttl)?;
            }
            self.add_ptr(ip, &name, ttl);
            return Ok(());
        }
        if !service.headless {
            return Ok(());
        }
        let endpoints: Vec<&Endpoint> = if service.publish_not_ready_addresses {
            service.endpoints.iter().collect()
        } else {
            health.ready_endpoints(service).collect()
        };
        if endpoints.is_empty() {
            // No ready endpoint: the service's names do not exist (NXDOMAIN).
            return Ok(());
        }
        let mut hosts = Vec::with_capacity(endpoints.len());
        for endpoint in &endpoints {
            let host = Name::from_ascii(host_label(endpoint))?.append_domain(&name)?;
            self.add_address(&name, endpoint.ip, ttl, true);
            self.add_address(&host, endpoint.ip, ttl, false);
            self.add_ptr(endpoint.ip, &host, ttl);
            hosts.push((host, endpoint.ip));
        }
        let weight = u16::try_from(100 / hosts.len()).unwrap_or(1).max(1);
        for port in service.ports.iter().filter(|p| p.name.is_some()) {
            let targets = hosts
                .iter()
                .map(|(host, ip)| {
                    let srv = SRV::new(0, weight, port.target_port, host.clone());
                    (srv, vec![address_record(host, *ip, ttl)])
                })
                .collect();
            self.add_srv(&name, port, targets, ttl)?;
        }
        Ok(())
    }

    /// `_<port>._<proto>.<service>`: one SRV per target, the targets' addresses as additionals.
    fn add_srv(
        &mut self,
        service: &Name,
        port: &dockline_model::Port,
        targets: Vec<(SRV, Vec<Record>)>,
        ttl: u32,
    ) -> Result<(), ProtoError> {
        let Some(port_name) = &port.name else {
            return Ok(());
        };
        let proto = match port.protocol {
            Protocol::Tcp => "_tcp",
            Protocol::Udp => "_udp",
        };
        let owner = Name::from_ascii(format!("_{port_name}"))?
            .append_name(&Name::from_ascii(proto)?)?
            .append_domain(service)?;
        let rotates = targets.len() > 1;
        for (srv, additionals) in targets {
            let record = Record::from_rdata(owner.clone(), ttl, RData::SRV(srv));
            if let Some(set) = self.add(&owner, record, rotates) {
                set.additionals.extend(additionals);
            }
        }
        Ok(())
    }

    fn add_address(&mut self, owner: &Name, ip: IpAddr, ttl: u32, rotates: bool) {
        self.add(owner, address_record(owner, ip, ttl), rotates);
    }

    fn add_ptr(&mut self, ip: IpAddr, target: &Name, ttl: u32) {
        let owner = Name::from(ip);
        let record = Record::from_rdata(owner.clone(), ttl, RData::PTR(PTR(target.clone())));
        self.add(&owner, record, false);
    }

    /// Adds `record` at `owner` if `owner` is inside one of our zones; returns its set.
    fn add(&mut self, owner: &Name, record: Record, rotates: bool) -> Option<&mut RecordSet> {
        let node = self.node(owner)?;
        let rtype = record.record_type();
        let index = match node.sets.iter().position(|s| s.rtype == rtype) {
            Some(index) => index,
            None => {
                node.sets.push(RecordSet {
                    rtype,
                    records: Vec::new(),
                    additionals: Vec::new(),
                    rotates,
                    turn: AtomicUsize::new(0),
                });
                node.sets.len() - 1
            }
        };
        let set = &mut node.sets[index];
        if !set.records.contains(&record) {
            set.records.push(record);
        }
        Some(set)
    }

    /// The node of `owner`, created on first use, if `owner` is inside one of our zones.
    fn node(&mut self, owner: &Name) -> Option<&mut Node> {
        let apex = self.apex_of(owner)?;
        let node = self.names.entry(owner.clone()).or_default();
        node.apex = apex;
        Some(node)
    }

    /// The wire-format answers of the fast path: every record set in every rotation, up
    /// to `MAX_PRECOMPUTED` records (larger sets are rare and take the general path).
    fn precompute(&mut self) {
        for (name, node) in &self.names {
            if node.cname.is_some() {
                continue;
            }
            for set in node
                .sets
                .iter()
                .filter(|s| s.records.len() <= MAX_PRECOMPUTED)
            {
                let turns = if set.rotates { set.records.len() } else { 1 };
                let rotations: Vec<Vec<&Record>> = (0..turns)
                    .map(|t| set.records[t..].iter().chain(&set.records[..t]).collect())
                    .collect();
                self.fast
                    .insert(name, set.rtype, &rotations, &set.additionals);
            }
        }
    }

    /// Every ancestor of a name, up to its zone's apex, exists (RFC 8020: NXDOMAIN means
    /// nothing below either, so `svc.<domain>` must answer NODATA).
    fn add_empty_non_terminals(&mut self) {
        let mut missing = Vec::new();
        for (name, node) in &self.names {
            let apex_labels = self.apexes[node.apex].name.num_labels();
            let mut parent = name.base_name();
            while parent.num_labels() > apex_labels {
                if !self.names.contains_key(&parent) {
                    missing.push((parent.clone(), node.apex));
                }
                parent = parent.base_name();
            }
        }
        for (name, apex) in missing {
            self.names.entry(name).or_default().apex = apex;
        }
    }
}

fn address_record(owner: &Name, ip: IpAddr, ttl: u32) -> Record {
    let data = match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(owner.clone(), ttl, data)
}

/// An endpoint's name below its service: its hostname, else its address with dashes
/// (CoreDNS's choice).
fn host_label(endpoint: &Endpoint) -> String {
    match (&endpoint.hostname, endpoint.ip) {
        (Some(hostname), _) => hostname.clone(),
        (None, IpAddr::V4(v4)) => v4.to_string().replace('.', "-"),
        (None, IpAddr::V6(v6)) => v6.to_string().replace(':', "-"),
    }
}

/// The reverse zone covering `cidr`: its prefix cut to whole octets (IPv4) or nibbles (IPv6).
fn reverse_zone(cidr: IpNet) -> Result<Name, ProtoError> {
    let labels: Vec<String> = match cidr.network() {
        IpAddr::V4(v4) => {
            let keep = usize::from(cidr.prefix_len() / 8);
            v4.octets()[..keep]
                .iter()
                .rev()
                .map(u8::to_string)
                .collect()
        }
        IpAddr::V6(v6) => {
            let keep = usize::from(cidr.prefix_len() / 4);
            let nibbles: Vec<u8> = v6.octets().iter().flat_map(|b| [b >> 4, b & 0xf]).collect();
            nibbles[..keep]
                .iter()
                .rev()
                .map(|n| format!("{n:x}"))
                .collect()
        }
    };
    let suffix = match cidr {
        IpNet::V4(_) => "in-addr.arpa.",
        IpNet::V6(_) => "ip6.arpa.",
    };
    let mut text = labels.join(".");
    if !text.is_empty() {
        text.push('.');
    }
    text.push_str(suffix);
    Name::from_ascii(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_zones_cut_at_octet_and_nibble_boundaries() {
        let zone = |cidr: &str| reverse_zone(cidr.parse().unwrap()).unwrap().to_ascii();
        assert_eq!(zone("10.222.0.0/16"), "222.10.in-addr.arpa.");
        assert_eq!(zone("10.96.0.0/12"), "10.in-addr.arpa.");
        assert_eq!(zone("0.0.0.0/0"), "in-addr.arpa.");
        assert_eq!(
            zone("fd00:10::/64"),
            "0.0.0.0.0.0.0.0.0.1.0.0.0.0.d.f.ip6.arpa."
        );
        assert_eq!(zone("2001:db8::/30"), "b.d.0.1.0.0.2.ip6.arpa.");
    }

    #[test]
    fn endpoints_without_hostname_are_named_by_dashed_address() {
        let endpoint = |ip: &str, hostname: Option<&str>| Endpoint {
            ip: ip.parse().unwrap(),
            node: None,
            hostname: hostname.map(str::to_owned),
            ready: true,
        };
        assert_eq!(host_label(&endpoint("10.1.2.3", None)), "10-1-2-3");
        assert_eq!(host_label(&endpoint("fd00::5", None)), "fd00--5");
        assert_eq!(host_label(&endpoint("10.1.2.3", Some("db-0"))), "db-0");
    }
}
