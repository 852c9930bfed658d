//! A zone for a reload that changed a few services, made from the zone in force instead of
//! from scratch: the index is copied (its names and nodes are shared, so that is a copy of
//! pointers), the names the changed services had or have are rebuilt, and nothing else is
//! touched. The result is the zone a full build of the new snapshot gives.
//!
//! A name a changed service gives is rebuilt from every service that gives it: under the
//! service's own name only that service does, but a PTR name (an address) or a pod name
//! (a namespace and an address) may come from several, and they all share that address.
//! Re-adding them in snapshot order keeps the order of records a full build has.

use std::collections::HashSet as StdHashSet;
use std::net::IpAddr;
use std::sync::Arc;

use dockline_model::{HealthVerdicts, Service, ServiceDiff, Snapshot};
use hickory_proto::ProtoError;
use hickory_proto::rr::{Name, RData};

use super::{Data, Domains, HashSet, Key, Node, Zone, parent, precompute_node};

impl Zone {
    /// The zone of `new`, patched from this one, which must have been built from `old`
    /// with the same `health`. `None` when the reload changed more than services (the
    /// domain, the ranges, the TTL, the upstreams or the node's address): then only a full
    /// build will do.
    pub fn patched(
        &self,
        old: &Snapshot,
        new: &Snapshot,
        diff: &ServiceDiff<'_>,
        health: &HealthVerdicts,
        serial: u32,
    ) -> Result<Option<Zone>, ProtoError> {
        if !same_frame(old, new) {
            return Ok(None);
        }
        let domain = Name::from_ascii(format!("{}.", new.config.cluster.domain))?;
        let domains = Domains::of(&domain)?;
        // The names the old and the new versions give, each counted as a build counts
        // the services it skips.
        let mut scratch = self.empty();
        for service in diff.before() {
            scratch.add_whole_service(service, health, &domains);
        }
        let skipped_before = scratch.skipped;
        let mut touched: HashSet<Key> = scratch.names.drain().map(|(key, _)| key).collect();
        scratch.skipped = 0;
        for service in diff.after() {
            scratch.add_whole_service(service, health, &domains);
        }
        touched.extend(scratch.names.drain().map(|(key, _)| key));

        let mut next = Zone {
            names: self.names.clone(),
            apexes: self.apexes.clone(),
            ttl: self.ttl,
            forward: self.forward.clone(),
            skipped: self.skipped + scratch.skipped - skipped_before,
            only: None,
        };
        for key in &touched {
            next.names.remove(key);
        }
        // Every service that gives one of the touched names: the changed ones, and those
        // sharing one of their addresses.
        let addresses: StdHashSet<IpAddr> = diff
            .before()
            .chain(diff.after())
            .flat_map(addresses_of)
            .collect();
        let changed: StdHashSet<*const Service> = diff.after().map(std::ptr::from_ref).collect();
        next.only = Some(touched);
        for service in &new.services {
            if changed.contains(&std::ptr::from_ref(service))
                || addresses_of(service).any(|ip| addresses.contains(&ip))
            {
                // Its skips were counted above, or it is unchanged and counted already.
                let skipped = next.skipped;
                next.add_whole_service(service, health, &domains);
                next.skipped = skipped;
            }
        }
        let touched = next.only.take().unwrap_or_default();
        next.fix_empty_non_terminals(&touched);
        for key in &touched {
            if let Some(node) = next.names.get_mut(key) {
                precompute_node(key, Arc::make_mut(node), next.ttl);
            }
        }
        next.set_serial(serial);
        Ok(Some(next))
    }

    /// A zone with this one's apexes and settings and no names.
    fn empty(&self) -> Zone {
        Zone {
            names: Default::default(),
            apexes: self.apexes.clone(),
            ttl: self.ttl,
            forward: Vec::new(),
            skipped: 0,
            only: None,
        }
    }

    /// After the `touched` names were rebuilt: their ancestors exist while anything is
    /// below them, and an empty name with nothing below it is gone, as in a full build.
    fn fix_empty_non_terminals(&mut self, touched: &HashSet<Key>) {
        // Deepest first, so that a name emptied of its last child is seen after the child.
        let mut candidates: Vec<Key> = touched
            .iter()
            .flat_map(|key| {
                let mut chain = vec![key.clone()];
                let mut at: &[u8] = key;
                while at != [0] {
                    at = parent(at);
                    chain.push(Key::from(at));
                }
                chain
            })
            .collect::<StdHashSet<Key>>()
            .into_iter()
            .collect();
        candidates.sort_by_key(|key| std::cmp::Reverse(key.len()));
        for key in candidates {
            let Some(apex) = self.apex_of_key(&key) else {
                continue;
            };
            if self.apexes[apex].key.len() >= key.len() {
                continue;
            }
            let needed = match self.names.get(&key) {
                Some(node) if !node.sets.is_empty() || node.cname.is_some() => continue,
                _ => self.has_below(&key),
            };
            if needed {
                Arc::make_mut(self.names.entry(key).or_default()).apex = apex;
            } else {
                self.names.remove(&key);
            }
        }
    }

    /// Whether some name lies below `key`.
    fn has_below(&self, key: &[u8]) -> bool {
        self.names.keys().any(|name| {
            name.len() > key.len()
                && name.ends_with(key)
                && is_label_start(name, name.len() - key.len())
        })
    }

    /// The most specific apex at or above a wire-format name.
    fn apex_of_key(&self, key: &[u8]) -> Option<usize> {
        let mut at = key;
        loop {
            if let Some(index) = self.apexes.iter().position(|apex| *apex.key == *at) {
                return Some(index);
            }
            if at == [0] {
                return None;
            }
            at = parent(at);
        }
    }

    /// Puts `serial` in every apex's SOA record, and in the answers that carry it.
    fn set_serial(&mut self, serial: u32) {
        for apex in &mut self.apexes {
            if let RData::SOA(soa) = &mut apex.soa.data {
                soa.serial = serial;
            }
            let Some(node) = self.names.get_mut(&apex.key) else {
                continue;
            };
            let node: &mut Node = Arc::make_mut(node);
            for set in &mut node.sets {
                for data in &mut set.data {
                    if let Data::Other(rdata) = data
                        && let RData::SOA(soa) = rdata.as_mut()
                    {
                        soa.serial = serial;
                    }
                }
            }
            precompute_node(&apex.key, node, self.ttl);
        }
    }
}

/// Whether byte `at` of wire-format `name` starts a label (so the bytes from there on are
/// a whole name, not the tail of a label that happens to match).
fn is_label_start(name: &[u8], at: usize) -> bool {
    let mut position = 0;
    while position < at {
        position += usize::from(name[position]) + 1;
    }
    position == at
}

/// The addresses that name a service's PTR and pod records.
fn addresses_of(service: &Service) -> impl Iterator<Item = IpAddr> + '_ {
    service
        .cluster_ip
        .into_iter()
        .chain(service.endpoints.iter().map(|endpoint| endpoint.ip))
}

/// Whether everything a zone takes besides the services is the same.
fn same_frame(old: &Snapshot, new: &Snapshot) -> bool {
    let (a, b) = (&old.config, &new.config);
    a.cluster.domain == b.cluster.domain
        && a.cluster.service_cidr == b.cluster.service_cidr
        && a.cluster.pod_cidr == b.cluster.pod_cidr
        && a.dns.ttl == b.dns.ttl
        && a.dns.forward == b.dns.forward
        && old.node.internal_ip == new.node.internal_ip
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use dockline_model::diff_services;
    use dockline_model::testing::snapshot;

    use super::*;

    /// Every name with its node, and the apexes: what two equal zones agree on.
    fn dump(zone: &Zone) -> (BTreeMap<Vec<u8>, String>, String, usize) {
        let names = zone
            .names
            .iter()
            .map(|(key, node)| (key.to_vec(), format!("{node:?}")))
            .collect();
        (names, format!("{:?}", zone.apexes), zone.skipped)
    }

    /// Patching the zone of `from` to `to` gives the zone a full build of `to` gives.
    fn assert_patch_equals_build(from: &str, to: &str) {
        let (old, new) = (snapshot(from), snapshot(to));
        let health = HealthVerdicts::default();
        let zone = Zone::build(&old, &health, 1).unwrap();
        let diff = diff_services(&old.services, &new.services);
        let patched = zone
            .patched(&old, &new, &diff, &health, 2)
            .unwrap()
            .expect("only services changed");
        let built = Zone::build(&new, &health, 2).unwrap();
        let (patched, built) = (dump(&patched), dump(&built));
        for (key, node) in &built.0 {
            assert_eq!(patched.0.get(key), Some(node), "name {key:?}");
        }
        assert_eq!(patched, built);
    }

    const BASE: &str = r#"
[node]
name = "node-1"
internal_ip = "172.30.0.11"
[cluster]
service_cidr = "10.222.0.0/16"
[[services]]
name = "web"
cluster_ip = "10.222.0.10"
ports = [{ name = "http", port = 80 }]
[[services.endpoints]]
ip = "10.111.2.2"
[[services]]
name = "api"
cluster_ip = "10.222.0.11"
ports = [{ name = "http", port = 80 }]
[[services.endpoints]]
ip = "10.111.2.2"
[[services]]
name = "db"
namespace = "prod"
cluster_ip = "None"
ports = [{ name = "pg", port = 5432 }]
[[services.endpoints]]
ip = "10.111.1.1"
hostname = "db-0"
[[services.endpoints]]
ip = "10.111.1.2"
[[services]]
name = "replica"
namespace = "prod"
cluster_ip = "None"
[[services.endpoints]]
ip = "10.111.1.2"
hostname = "replica-0"
[[services]]
name = "mail"
namespace = "ext"
type = "ExternalName"
external_name = "mail.example.com"
"#;

    #[test]
    fn a_changed_port_patches_to_the_built_zone() {
        let to = BASE.replacen(
            "{ name = \"http\", port = 80 }",
            "{ name = \"web\", port = 81 }",
            1,
        );
        assert_patch_equals_build(BASE, &to);
        assert_patch_equals_build(&to, BASE);
    }

    #[test]
    fn the_last_service_of_a_namespace_leaves_no_empty_name_behind() {
        let to = BASE.replace(
            "[[services]]\nname = \"mail\"\nnamespace = \"ext\"\ntype = \"ExternalName\"\nexternal_name = \"mail.example.com\"\n",
            "",
        );
        assert_ne!(to, BASE);
        assert_patch_equals_build(BASE, &to);
        assert_patch_equals_build(&to, BASE);
    }

    #[test]
    fn shared_addresses_keep_the_records_of_the_services_that_stay() {
        // db goes: the PTR and pod name of 10.111.1.2 stay with replica.
        let start = BASE.find("[[services]]\nname = \"db\"").unwrap();
        let end = BASE.find("[[services]]\nname = \"replica\"").unwrap();
        let to = format!("{}{}", &BASE[..start], &BASE[end..]);
        assert_patch_equals_build(BASE, &to);
        assert_patch_equals_build(&to, BASE);
        // api moves to another cluster IP; web keeps the endpoint they share.
        let moved = BASE.replace("10.222.0.11", "10.222.0.12");
        assert_patch_equals_build(BASE, &moved);
    }

    #[test]
    fn a_new_namespace_and_a_new_cname_target_patch_to_the_built_zone() {
        let to = format!(
            "{}[[services]]\nname = \"cache\"\nnamespace = \"new\"\ncluster_ip = \"None\"\n[[services.endpoints]]\nip = \"10.111.3.3\"\n",
            BASE.replace("mail.example.com", "smtp.example.com")
        );
        assert_patch_equals_build(BASE, &to);
        assert_patch_equals_build(&to, BASE);
    }

    #[test]
    fn a_new_domain_or_ttl_needs_a_full_build() {
        let old = snapshot(BASE);
        let health = HealthVerdicts::default();
        let zone = Zone::build(&old, &health, 1).unwrap();
        for changed in [
            BASE.replace("[cluster]\n", "[cluster]\ndomain = \"example.internal\"\n"),
            format!("{BASE}[dns]\nttl = 9\n"),
        ] {
            let new = snapshot(&changed);
            let diff = diff_services(&old.services, &new.services);
            assert!(diff.is_empty());
            assert!(
                zone.patched(&old, &new, &diff, &health, 2)
                    .unwrap()
                    .is_none()
            );
        }
    }
}
