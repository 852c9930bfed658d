//! The forwarding table: which VTEP (a node's underlay address) each inner MAC sits behind,
//! and where a frame goes when its MAC is not in it.
//!
//! Entries come two ways. Seeded: every known node's overlay MAC, derived from its pod
//! range (see [`crate::plan::device_mac`]), so unicast to a node flows before any frame
//! was seen from it. Learned: the source MAC of every frame accepted from a known VTEP (a
//! kernel vxlan peer, or a pod's MAC bridged behind a node). Learned entries age out; a VTEP
//! that leaves the known set loses all its entries at once. A frame to a broadcast,
//! multicast or unknown MAC goes to every known VTEP (head-end replication, RFC 7348
//! section 4.2 without multicast underlay).

use std::collections::{BTreeSet, HashMap, btree_set};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// An Ethernet address.
pub type Mac = [u8; 6];

/// How long a learned entry lives without a frame from its MAC (the Linux vxlan default).
pub const MAX_AGE: Duration = Duration::from_secs(300);
/// How often a MAC that keeps sending through the same VTEP has its entry refreshed: not
/// on every frame of a bulk transfer (a lookup each), at the price of an entry aging out up
/// to this much early.
const REFRESH: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// From membership or `network.nodes`: lives as long as its VTEP is known.
    Seeded,
    /// From a received frame, last seen at this instant.
    Learned(Instant),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    vtep: IpAddr,
    origin: Origin,
}

/// The VTEPs a frame is sent to.
#[derive(Debug)]
pub enum Destinations<'a> {
    /// A known unicast MAC: its VTEP only.
    One(Option<IpAddr>),
    /// Broadcast, multicast or unknown: every known VTEP, once each.
    Every(btree_set::Iter<'a, IpAddr>),
}

impl Iterator for Destinations<'_> {
    type Item = IpAddr;

    fn next(&mut self) -> Option<IpAddr> {
        match self {
            Destinations::One(vtep) => vtep.take(),
            Destinations::Every(vteps) => vteps.next().copied(),
        }
    }
}

/// MAC -> VTEP, and the set of VTEPs frames are accepted from and flooded to.
#[derive(Debug)]
pub struct Fdb {
    vteps: BTreeSet<IpAddr>,
    entries: HashMap<Mac, Entry>,
    max_age: Duration,
    /// The last MAC learned, its VTEP and when: frames from it skip the table until
    /// [`REFRESH`] has passed.
    last_learned: Option<(Mac, IpAddr, Instant)>,
}

impl Fdb {
    /// An empty table whose learned entries live `max_age` after their last frame.
    pub fn new(max_age: Duration) -> Self {
        Fdb {
            vteps: BTreeSet::new(),
            entries: HashMap::new(),
            max_age,
            last_learned: None,
        }
    }

    /// Replaces the known VTEPs, each with the MAC seeded for it: entries of VTEPs no longer
    /// known go at once, seeds are (re)written.
    pub fn set_vteps(&mut self, vteps: impl IntoIterator<Item = (IpAddr, Mac)>) {
        let seeds: Vec<(IpAddr, Mac)> = vteps.into_iter().collect();
        self.last_learned = None;
        self.vteps = seeds.iter().map(|(vtep, _)| *vtep).collect();
        self.entries
            .retain(|_, entry| entry.origin != Origin::Seeded && self.vteps.contains(&entry.vtep));
        for (vtep, mac) in seeds {
            let origin = Origin::Seeded;
            self.entries.insert(mac, Entry { vtep, origin });
        }
    }

    /// Whether frames from `vtep` are accepted.
    pub fn knows(&self, vtep: IpAddr) -> bool {
        self.vteps.contains(&vtep)
    }

    /// The known VTEPs, in address order.
    pub fn vteps(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.vteps.iter().copied()
    }

    /// Records that `mac` sent a frame through `vtep`. Group MACs are never sources; seeded
    /// entries are not moved by traffic; unknown VTEPs teach nothing.
    pub fn learn(&mut self, mac: Mac, vtep: IpAddr, now: Instant) {
        if is_group(mac) || !self.knows(vtep) {
            return;
        }
        if let Some((last_mac, last_vtep, at)) = self.last_learned {
            if (last_mac, last_vtep) == (mac, vtep) && now.saturating_duration_since(at) < REFRESH {
                return;
            }
        }
        self.last_learned = Some((mac, vtep, now));
        match self.entries.get_mut(&mac) {
            Some(Entry {
                origin: Origin::Seeded,
                ..
            }) => {}
            Some(entry) => {
                *entry = Entry {
                    vtep,
                    origin: Origin::Learned(now),
                }
            }
            None => {
                let origin = Origin::Learned(now);
                self.entries.insert(mac, Entry { vtep, origin });
            }
        }
    }

    /// Where a frame to `mac` goes (an entry past its age counts as unknown).
    pub fn destinations(&self, mac: Mac, now: Instant) -> Destinations<'_> {
        let known = self.entries.get(&mac).filter(|entry| match entry.origin {
            Origin::Seeded => true,
            Origin::Learned(seen) => now.saturating_duration_since(seen) < self.max_age,
        });
        match known {
            Some(entry) if !is_group(mac) => Destinations::One(Some(entry.vtep)),
            _ => Destinations::Every(self.vteps.iter()),
        }
    }

    /// Forgets learned entries past their age; returns how many went.
    pub fn expire(&mut self, now: Instant) -> usize {
        let before = self.entries.len();
        let max_age = self.max_age;
        self.last_learned = None;
        self.entries.retain(|_, entry| match entry.origin {
            Origin::Seeded => true,
            Origin::Learned(seen) => now.saturating_duration_since(seen) < max_age,
        });
        before - self.entries.len()
    }

    /// The number of entries, seeded and learned.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Broadcast and multicast MACs have the group bit, the low bit of the first byte.
fn is_group(mac: Mac) -> bool {
    mac[0] & 1 == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE_2: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(172, 31, 9, 2));
    const NODE_3: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(172, 31, 10, 3));
    const MAC_2: Mac = [2, 0, 0, 0, 0, 2];
    const MAC_3: Mac = [2, 0, 0, 0, 0, 3];
    const POD: Mac = [0x0e, 1, 2, 3, 4, 5];
    const BROADCAST: Mac = [0xff; 6];

    fn table() -> Fdb {
        let mut fdb = Fdb::new(MAX_AGE);
        fdb.set_vteps([(NODE_2, MAC_2), (NODE_3, MAC_3)]);
        fdb
    }

    fn to(fdb: &Fdb, mac: Mac, now: Instant) -> Vec<IpAddr> {
        fdb.destinations(mac, now).collect()
    }

    #[test]
    fn seeded_macs_go_to_their_node_and_the_rest_to_every_node() {
        let fdb = table();
        let now = Instant::now();
        assert_eq!(to(&fdb, MAC_2, now), [NODE_2]);
        assert_eq!(to(&fdb, MAC_3, now), [NODE_3]);
        assert_eq!(to(&fdb, BROADCAST, now), [NODE_2, NODE_3]);
        assert_eq!(to(&fdb, POD, now), [NODE_2, NODE_3]);
        assert_eq!(to(&fdb, [0x33, 0x33, 0, 0, 0, 0x16], now), [NODE_2, NODE_3]);
    }

    #[test]
    fn macs_are_learned_from_known_vteps_only_and_age_out() {
        let mut fdb = table();
        let start = Instant::now();
        fdb.learn(POD, IpAddr::from([192, 0, 2, 9]), start);
        assert_eq!(to(&fdb, POD, start), [NODE_2, NODE_3]);
        fdb.learn(POD, NODE_3, start);
        assert_eq!(to(&fdb, POD, start), [NODE_3]);
        assert_eq!(fdb.len(), 3);

        let later = start + MAX_AGE;
        assert_eq!(to(&fdb, POD, later), [NODE_2, NODE_3]);
        assert_eq!(fdb.expire(later), 1);
        assert_eq!(fdb.len(), 2, "seeded entries do not age");
    }

    #[test]
    fn a_mac_sending_through_one_vtep_is_refreshed_once_a_second_and_moves_at_once() {
        let mut fdb = table();
        let start = Instant::now();
        fdb.learn(POD, NODE_2, start);
        // Frames within the second leave the entry as it was: it ages from the start.
        fdb.learn(POD, NODE_2, start + Duration::from_millis(900));
        assert_eq!(to(&fdb, POD, start + MAX_AGE), [NODE_2, NODE_3]);
        // A frame after the second refreshes it.
        fdb.learn(POD, NODE_2, start + REFRESH);
        assert_eq!(to(&fdb, POD, start + MAX_AGE), [NODE_2]);
        // A move to another VTEP is learned on its first frame.
        fdb.learn(POD, NODE_3, start + REFRESH);
        assert_eq!(to(&fdb, POD, start + REFRESH), [NODE_3]);
        // A VTEP that leaves and comes back is learned again on its first frame.
        fdb.set_vteps([(NODE_2, MAC_2)]);
        fdb.set_vteps([(NODE_2, MAC_2), (NODE_3, MAC_3)]);
        fdb.learn(POD, NODE_3, start + REFRESH);
        assert_eq!(to(&fdb, POD, start + REFRESH), [NODE_3]);
    }

    #[test]
    fn traffic_neither_moves_a_seeded_mac_nor_teaches_a_group_mac() {
        let mut fdb = table();
        let now = Instant::now();
        fdb.learn(MAC_2, NODE_3, now);
        fdb.learn(BROADCAST, NODE_3, now);
        assert_eq!(to(&fdb, MAC_2, now), [NODE_2]);
        assert_eq!(fdb.len(), 2);
    }

    #[test]
    fn a_node_that_leaves_loses_its_entries_at_once() {
        let mut fdb = table();
        let now = Instant::now();
        fdb.learn(POD, NODE_3, now);
        fdb.set_vteps([(NODE_2, MAC_2)]);
        assert!(!fdb.knows(NODE_3));
        assert_eq!(fdb.len(), 1);
        assert_eq!(to(&fdb, POD, now), [NODE_2]);
        assert_eq!(to(&fdb, MAC_3, now), [NODE_2]);
    }
}
