//! The names dockline is authoritative for, as an index built once per snapshot or health
//! change: every owner name with its records precomputed, so answering is a lookup.
//!
//! Zones: the cluster domain and the reverse zones of `service_cidr` and `pod_cidr` (cut at
//! the octet or nibble boundary at or above the prefix). Names follow the Kubernetes DNS
//! specification 1.1.0 (services, headless endpoints, SRV for named ports, PTR) and CoreDNS
//! where it is silent (`ns.dns.<domain>`, dashed-IP endpoint names, pod names as with
//! `pods verified`, SOA fields). Empty non-terminals are present as nodes without records,
//! so they answer NODATA, not NXDOMAIN.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dockline_config::{Protocol, ServiceType};
use dockline_model::{Endpoint, HealthVerdicts, Service, Snapshot};
use foldhash::{HashMap, HashSet};
use hickory_proto::ProtoError;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use ipnet::IpNet;

use crate::precomputed::Precomputed;

mod patch;

/// The schema version of the Kubernetes DNS specification served at `dns-version.<domain>`.
pub const SCHEMA_VERSION: &str = "1.1.0";

/// The largest record set answered from precomputed bytes.
const MAX_PRECOMPUTED: usize = 64;

/// SOA timers as CoreDNS's kubernetes plugin sets them.
const SOA_REFRESH: i32 = 7200;
const SOA_RETRY: i32 = 1800;
const SOA_EXPIRE: i32 = 86400;

/// Names are keyed by their lowercase wire form (length-prefixed labels, root last): a few
/// dozen bytes where a hickory `Name` takes 80 and more, and what the fast path reads off
/// the query as it is. The index hashes them with foldhash rather than SipHash: one lookup
/// per query, and the keys are ours (query names never enter the table), so hash flooding
/// is no concern. Shared (`Arc`), as are the nodes, so that a reload that changes a few
/// services copies the index cheaply and rebuilds only their names ([`patch`]).
pub(crate) type Key = Arc<[u8]>;

/// The records of every name in the cluster domain and its reverse zones, indexed by name;
/// built once per snapshot or health change and never changed after.
#[derive(Debug)]
pub struct Zone {
    names: HashMap<Key, Arc<Node>>,
    apexes: Vec<Apex>,
    ttl: u32,
    forward: Vec<SocketAddr>,
    /// Names that could not be formed (a label too long, say) and were left out.
    skipped: usize,
    /// While a patch re-adds records: the only names that may take them.
    only: Option<HashSet<Key>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Apex {
    pub(crate) name: Name,
    key: Key,
    pub(crate) soa: Record,
}

/// One owner name and what it holds.
#[derive(Debug, Default, Clone)]
pub(crate) struct Node {
    apex: usize,
    pub(crate) sets: Vec<RecordSet>,
    pub(crate) cname: Option<Box<Record>>,
}

/// The records of one type at one name, kept as their data alone: records are made at
/// answer time, owned by the question's name. Most queries never get that far: the fast
/// path sends the precomputed bytes.
#[derive(Debug)]
pub(crate) struct RecordSet {
    pub(crate) rtype: RecordType,
    data: Vec<Data>,
    /// Headless endpoints rotate: each answer starts one record further.
    rotates: bool,
    /// Advanced on every answer from a rotating set. Per name and type, so that a client
    /// asking A and AAAA in turn still sees every A record come first in its turn.
    turn: AtomicUsize,
    precomputed: Option<Precomputed>,
}

/// The data of one record. The many (addresses, PTR, SRV) are compact; targets are shared
/// with the names they point at.
#[derive(Debug, Clone, PartialEq)]
enum Data {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Ptr(Arc<Name>),
    /// SRV (priority 0) and NS: the target's address goes in the additional section.
    Srv {
        weight: u16,
        port: u16,
        target: Arc<Name>,
        address: IpAddr,
    },
    Ns {
        target: Arc<Name>,
        address: IpAddr,
    },
    /// The few others (SOA, TXT), whole.
    Other(Box<RData>),
}

/// Where a query name falls.
#[derive(Debug)]
pub(crate) enum Lookup<'z> {
    Found(&'z Node, &'z Apex),
    /// Inside one of our zones, but no such name.
    Missing(&'z Apex),
    Outside,
}

impl Data {
    fn address(ip: IpAddr) -> Data {
        match ip {
            IpAddr::V4(v4) => Data::A(v4),
            IpAddr::V6(v6) => Data::Aaaa(v6),
        }
    }

    fn record_type(&self) -> RecordType {
        match self {
            Data::A(_) => RecordType::A,
            Data::Aaaa(_) => RecordType::AAAA,
            Data::Ptr(_) => RecordType::PTR,
            Data::Srv { .. } => RecordType::SRV,
            Data::Ns { .. } => RecordType::NS,
            Data::Other(rdata) => rdata.record_type(),
        }
    }

    fn record(&self, owner: &Name, ttl: u32) -> Record {
        let rdata = match self {
            Data::A(v4) => RData::A(A(*v4)),
            Data::Aaaa(v6) => RData::AAAA(AAAA(*v6)),
            Data::Ptr(target) => RData::PTR(PTR(Name::clone(target))),
            Data::Srv {
                weight,
                port,
                target,
                ..
            } => RData::SRV(SRV::new(0, *weight, *port, Name::clone(target))),
            Data::Ns { target, .. } => RData::NS(NS(Name::clone(target))),
            Data::Other(rdata) => RData::clone(rdata),
        };
        Record::from_rdata(owner.clone(), ttl, rdata)
    }

    /// The address record of an SRV or NS target.
    fn additional(&self, ttl: u32) -> Option<Record> {
        match self {
            Data::Srv {
                target, address, ..
            }
            | Data::Ns { target, address } => Some(address_record(target, *address, ttl)),
            _ => None,
        }
    }
}

/// A copy starts its rotation over, as a rebuilt set does.
impl Clone for RecordSet {
    fn clone(&self) -> Self {
        RecordSet {
            rtype: self.rtype,
            data: self.data.clone(),
            rotates: self.rotates,
            turn: AtomicUsize::new(0),
            precomputed: self.precomputed.clone(),
        }
    }
}

impl RecordSet {
    fn new(rtype: RecordType, rotates: bool) -> Self {
        RecordSet {
            rtype,
            data: Vec::new(),
            rotates,
            turn: AtomicUsize::new(0),
            precomputed: None,
        }
    }

    /// Where this answer starts: one further on every call if the set rotates.
    pub(crate) fn next_turn(&self) -> usize {
        match self.rotates && self.data.len() > 1 {
            true => self.turn.fetch_add(1, Ordering::Relaxed) % self.data.len(),
            false => 0,
        }
    }

    pub(crate) fn precomputed(&self) -> Option<&Precomputed> {
        self.precomputed.as_ref()
    }

    /// The records owned by `owner`, in answer order (rotated one further on every call if
    /// the set rotates), and their additionals.
    pub(crate) fn records(&self, owner: &Name, ttl: u32) -> (Vec<Record>, Vec<Record>) {
        let (tail, head) = self.data.split_at(self.next_turn());
        let answers = head.iter().chain(tail).map(|d| d.record(owner, ttl));
        let additionals = self.data.iter().filter_map(|d| d.additional(ttl));
        (answers.collect(), additionals.collect())
    }
}

impl Node {
    /// The record set of `rtype`, if this name has one.
    pub(crate) fn set(&self, rtype: RecordType) -> Option<&RecordSet> {
        self.sets.iter().find(|s| s.rtype == rtype)
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
        let ns_name = Arc::new(Name::from_ascii("ns.dns")?.append_domain(&domain)?);
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
                    Name::clone(&ns_name),
                    hostmaster.clone(),
                    serial,
                    SOA_REFRESH,
                    SOA_RETRY,
                    SOA_EXPIRE,
                    ttl,
                );
                Apex {
                    soa: Record::from_rdata(name.clone(), ttl, RData::SOA(soa)),
                    key: key(&name),
                    name,
                }
            })
            .collect();
        let mut zone = Zone {
            names: HashMap::default(),
            apexes,
            ttl,
            forward: config.dns.forward.iter().map(|u| u.0).collect(),
            skipped: 0,
            only: None,
        };
        let internal_ip = snapshot.node.internal_ip;
        for index in 0..zone.apexes.len() {
            let apex = zone.apexes[index].name.clone();
            let soa = zone.apexes[index].soa.data.clone();
            zone.add(&apex, Data::Other(Box::new(soa)), false);
            let ns = Data::Ns {
                target: ns_name.clone(),
                address: internal_ip,
            };
            zone.add(&apex, ns, false);
        }
        zone.add(&ns_name, Data::address(internal_ip), false);
        let version = Name::from_ascii("dns-version")?.append_domain(&domain)?;
        let txt = RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_owned()]));
        zone.add(&version, Data::Other(Box::new(txt)), false);
        let domains = Domains::of(&domain)?;
        for service in &snapshot.services {
            zone.add_whole_service(service, health, &domains);
        }
        zone.add_empty_non_terminals();
        zone.precompute();
        Ok(zone)
    }

    /// Every name `service` gives, under the service and the pod domain.
    fn add_whole_service(&mut self, service: &Service, health: &HealthVerdicts, domains: &Domains) {
        if let Err(_unrepresentable) = self.add_service(service, health, &domains.svc) {
            self.skipped += 1;
        }
        self.add_pods(service, &domains.pod);
    }

    /// What the zone of `snapshot` takes from `health`: the readiness of the endpoints of
    /// headless services that publish ready endpoints only. When it has not changed, a
    /// rebuild would give the same zone (most health checks are of ClusterIP and
    /// LoadBalancer endpoints, whose names do not follow health).
    pub fn health_inputs(snapshot: &Snapshot, health: &HealthVerdicts) -> Vec<bool> {
        snapshot
            .services
            .iter()
            .filter(|s| s.headless && !s.publish_not_ready_addresses)
            .flat_map(|s| s.endpoints.iter().map(|e| health.is_ready(s, e)))
            .collect()
    }

    /// Upstream resolvers for names outside our zones; empty = REFUSED.
    pub fn forward(&self) -> &[SocketAddr] {
        &self.forward
    }

    /// How many services were left out: their names are not valid DNS names.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// The TTL of every record.
    pub(crate) fn ttl(&self) -> u32 {
        self.ttl
    }

    /// The node of a lowercase wire-format name: the fast path's lookup.
    pub(crate) fn node_by_key(&self, key: &[u8]) -> Option<&Node> {
        self.names.get(key).map(Arc::as_ref)
    }

    /// Whether a lowercase wire-format name lies outside all of our zones: the cache's
    /// test, which must never answer for a name of ours.
    pub(crate) fn is_outside(&self, key: &[u8]) -> bool {
        let mut suffix = key;
        loop {
            if self.apexes.iter().any(|apex| *apex.key == *suffix) {
                return false;
            }
            if suffix == [0] {
                return true;
            }
            suffix = parent(suffix);
        }
    }

    pub(crate) fn lookup(&self, name: &Name) -> Lookup<'_> {
        if let Some(node) = self.names.get(&key(name)) {
            return Lookup::Found(node.as_ref(), &self.apexes[node.apex]);
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
    ) -> Result<(), ProtoError> {
        let name = Arc::new(
            Name::from_ascii(&service.name)?
                .append_name(&Name::from_ascii(&service.namespace)?)?
                .append_domain(svc_domain)?,
        );
        if service.kind == ServiceType::ExternalName {
            if let Some(target) = &service.external_name {
                let target = Name::from_ascii(format!("{}.", target.trim_end_matches('.')))?;
                let record =
                    Record::from_rdata(Name::clone(&name), self.ttl, RData::CNAME(CNAME(target)));
                if let Some(node) = self.node(&name) {
                    node.cname = Some(Box::new(record));
                }
            }
            return Ok(());
        }
        if let Some(ip) = service.cluster_ip {
            self.add(&name, Data::address(ip), false);
            let targets = [(name.clone(), ip)];
            for port in service.ports.iter().filter(|p| p.name.is_some()) {
                self.add_srv(&name, port, port.port, &targets, 100)?;
            }
            self.add_ptr(ip, &name);
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
            let host = Arc::new(Name::from_ascii(host_label(endpoint))?.append_domain(&name)?);
            self.add(&name, Data::address(endpoint.ip), true);
            self.add(&host, Data::address(endpoint.ip), false);
            self.add_ptr(endpoint.ip, &host);
            hosts.push((host, endpoint.ip));
        }
        let weight = u16::try_from(100 / hosts.len()).unwrap_or(1).max(1);
        for port in service.ports.iter().filter(|p| p.name.is_some()) {
            self.add_srv(&name, port, port.target_port, &hosts, weight)?;
        }
        Ok(())
    }

    /// Pod names as CoreDNS's `pods verified` serves them: `<address>.<ns>.pod.<domain>`
    /// (the address's dots or colons, as RFC 5952 writes it, turned into dashes) for every
    /// endpoint of a service in `<ns>`, ready or not: the pod exists either way. An
    /// endpoint whose name cannot be formed has none.
    fn add_pods(&mut self, service: &Service, pod_domain: &Name) {
        let Ok(namespace) =
            Name::from_ascii(&service.namespace).and_then(|ns| ns.append_domain(pod_domain))
        else {
            return;
        };
        for endpoint in &service.endpoints {
            let label = dashed(endpoint.ip);
            if let Ok(owner) = Name::from_ascii(label).and_then(|l| l.append_domain(&namespace)) {
                self.add(&owner, Data::address(endpoint.ip), false);
            }
        }
    }

    /// `_<port>._<proto>.<service>`: one SRV per target, the targets' addresses as additionals.
    fn add_srv(
        &mut self,
        service: &Name,
        port: &dockline_model::Port,
        number: u16,
        targets: &[(Arc<Name>, IpAddr)],
        weight: u16,
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
        for (target, address) in targets {
            let srv = Data::Srv {
                weight,
                port: number,
                target: target.clone(),
                address: *address,
            };
            self.add(&owner, srv, rotates);
        }
        Ok(())
    }

    fn add_ptr(&mut self, ip: IpAddr, target: &Arc<Name>) {
        self.add(&Name::from(ip), Data::Ptr(target.clone()), false);
    }

    /// Adds `data` at `owner` if `owner` is inside one of our zones.
    fn add(&mut self, owner: &Name, data: Data, rotates: bool) {
        let Some(node) = self.node(owner) else {
            return;
        };
        let rtype = data.record_type();
        let index = match node.sets.iter().position(|s| s.rtype == rtype) {
            Some(index) => index,
            None => {
                // Most names hold one set of one record: sized for one at first, as a
                // vector of four cut down later leaves a freed block behind per name.
                if node.sets.is_empty() {
                    node.sets.reserve_exact(1);
                }
                node.sets.push(RecordSet::new(rtype, rotates));
                node.sets.len() - 1
            }
        };
        let set = &mut node.sets[index];
        if !set.data.contains(&data) {
            if set.data.is_empty() {
                set.data.reserve_exact(1);
            }
            set.data.push(data);
        }
    }

    /// The node of `owner`, created on first use, if `owner` is inside one of our zones.
    fn node(&mut self, owner: &Name) -> Option<&mut Node> {
        let apex = self.apex_of(owner)?;
        let key = key(owner);
        if self.only.as_ref().is_some_and(|only| !only.contains(&key)) {
            return None;
        }
        // Unshared while a zone is built; a patch copies the nodes it changes.
        let node = Arc::make_mut(self.names.entry(key).or_default());
        node.apex = apex;
        Some(node)
    }

    /// The wire-format answers of the fast path for every record set of up to
    /// `MAX_PRECOMPUTED` records (larger sets are rare and take the general path); then
    /// every vector is cut to its length, as the zone is not changed after this.
    fn precompute(&mut self) {
        let ttl = self.ttl;
        for (key, node) in &mut self.names {
            precompute_node(key, Arc::make_mut(node), ttl);
        }
        self.names.shrink_to_fit();
    }

    /// Every ancestor of a name, up to its zone's apex, exists (RFC 8020: NXDOMAIN means
    /// nothing below either, so `svc.<domain>` must answer NODATA).
    fn add_empty_non_terminals(&mut self) {
        let mut missing = Vec::new();
        for (name, node) in &self.names {
            let apex_len = self.apexes[node.apex].key.len();
            let mut parent = parent(name);
            while parent.len() > apex_len {
                if !self.names.contains_key(parent) {
                    missing.push((Key::from(parent), node.apex));
                }
                parent = self::parent(parent);
            }
        }
        for (name, apex) in missing {
            Arc::make_mut(self.names.entry(name).or_default()).apex = apex;
        }
    }
}

/// See [`Zone::precompute`]; for one name.
fn precompute_node(key: &[u8], node: &mut Node, ttl: u32) {
    node.sets.shrink_to_fit();
    if node.cname.is_some() {
        return;
    }
    let mut owner = None;
    for set in &mut node.sets {
        set.data.shrink_to_fit();
        if set.data.len() > MAX_PRECOMPUTED {
            continue;
        }
        let rotates = set.rotates && set.data.len() > 1;
        let addresses: Option<Vec<IpAddr>> = set
            .data
            .iter()
            .map(|d| match d {
                Data::A(v4) => Some(IpAddr::V4(*v4)),
                Data::Aaaa(v6) => Some(IpAddr::V6(*v6)),
                _ => None,
            })
            .collect();
        if let Some(addresses) = addresses {
            // Most sets: written directly, without making records to encode.
            set.precomputed = Some(Precomputed::addresses(&addresses, ttl, rotates));
            continue;
        }
        if owner.is_none() {
            owner = Name::read(&mut BinDecoder::new(key)).ok();
        }
        let Some(owner) = &owner else {
            continue;
        };
        let records: Vec<Record> = set.data.iter().map(|d| d.record(owner, ttl)).collect();
        let additionals: Vec<Record> = set.data.iter().filter_map(|d| d.additional(ttl)).collect();
        set.precomputed = Precomputed::encode(owner, set.rtype, &records, &additionals, rotates);
    }
}

/// The parents of the names of services: `svc.<domain>` and `pod.<domain>`.
struct Domains {
    svc: Name,
    pod: Name,
}

impl Domains {
    fn of(domain: &Name) -> Result<Domains, ProtoError> {
        Ok(Domains {
            svc: Name::from_ascii("svc")?.append_domain(domain)?,
            pod: Name::from_ascii("pod")?.append_domain(domain)?,
        })
    }
}

/// The lowercase wire form of `name` (always fully qualified).
pub(crate) fn key(name: &Name) -> Key {
    let mut key = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        key.push(label.len() as u8);
        key.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    key.push(0);
    key.into()
}

/// The wire form of a name's parent: the first label cut off (the root is its own parent).
fn parent(key: &[u8]) -> &[u8] {
    match key.first() {
        Some(&len) if len > 0 => key.get(usize::from(len) + 1..).unwrap_or(&[0]),
        _ => key,
    }
}

fn address_record(owner: &Name, ip: IpAddr, ttl: u32) -> Record {
    Data::address(ip).record(owner, ttl)
}

/// An endpoint's name below its service: its hostname, else its address with dashes
/// (CoreDNS's choice).
fn host_label(endpoint: &Endpoint) -> String {
    match &endpoint.hostname {
        Some(hostname) => hostname.clone(),
        None => dashed(endpoint.ip),
    }
}

/// An address as one label: `10-1-2-3`, `fd00--5`.
fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
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
