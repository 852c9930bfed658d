//! Pod names as CoreDNS's `pods verified` serves them: `<address>.<ns>.pod.<domain>`, the
//! address with its dots (IPv4) or colons (IPv6, as RFC 5952 writes it) turned into dashes,
//! answers A or AAAA with that address only while a service in namespace `<ns>` has it as
//! an endpoint (ready or not: the pod exists either way). Any other name below
//! `pod.<domain>` is NXDOMAIN, except the ancestors of a pod name, which answer NODATA
//! (RFC 8020).
//!
//! Built from the snapshot alongside the zone; the records are keyed by their owner names
//! (hickory's `Name` compares case-insensitively), so answering is one lookup.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use dockline_model::Snapshot;
use hickory_proto::ProtoError;
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record};

/// The pod names of one snapshot.
#[derive(Debug, Default)]
pub struct Pods {
    records: HashSet<ByOwner>,
    /// `pod.<domain>` and `<ns>.pod.<domain>` of every namespace with a pod.
    ancestors: HashSet<Name>,
}

/// What a name below `pod.<domain>` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PodName<'p> {
    /// A pod: its address record.
    Pod(&'p Record),
    /// An ancestor of pod names: no records of its own.
    Ancestor,
}

impl Pods {
    /// The pod names of every endpoint of every service in `snapshot`; an endpoint whose
    /// name cannot be formed (a namespace label too long, say) has none.
    pub fn build(snapshot: &Snapshot) -> Result<Pods, ProtoError> {
        let config = &snapshot.config;
        let ttl = config.dns.ttl;
        let domain = Name::from_ascii(format!("{}.", config.cluster.domain))?;
        let pod_domain = Name::from_ascii("pod")?.append_domain(&domain)?;
        let mut pods = Pods::default();
        for service in &snapshot.services {
            let Ok(namespace) =
                Name::from_ascii(&service.namespace).and_then(|ns| ns.append_domain(&pod_domain))
            else {
                continue;
            };
            for endpoint in &service.endpoints {
                let Ok(owner) =
                    Name::from_ascii(label(endpoint.ip)).and_then(|l| l.append_domain(&namespace))
                else {
                    continue;
                };
                let data = match endpoint.ip {
                    IpAddr::V4(v4) => RData::A(A(v4)),
                    IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
                };
                pods.records
                    .insert(ByOwner(Record::from_rdata(owner, ttl, data)));
                pods.ancestors.insert(namespace.clone());
            }
        }
        if !pods.ancestors.is_empty() {
            pods.ancestors.insert(pod_domain);
        }
        Ok(pods)
    }

    /// `name` as a pod name, if it is one or an ancestor of one.
    pub(crate) fn lookup(&self, name: &Name) -> Option<PodName<'_>> {
        if let Some(ByOwner(record)) = self.records.get(name) {
            return Some(PodName::Pod(record));
        }
        self.ancestors.contains(name).then_some(PodName::Ancestor)
    }
}

/// A record that is its own key by owner name: the name is held once, not twice.
#[derive(Debug)]
struct ByOwner(Record);

impl PartialEq for ByOwner {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for ByOwner {}

impl Hash for ByOwner {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.name.hash(state);
    }
}

impl Borrow<Name> for ByOwner {
    fn borrow(&self) -> &Name {
        &self.0.name
    }
}

/// The label of a pod's address: `10-1-2-3`, `fd00--5`.
fn label(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}
