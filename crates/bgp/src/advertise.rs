//! What to advertise, sans-IO: the routes this node wants the routers to have, and, per
//! session, the minimal UPDATEs that take the router from what it was sent to that.
//!
//! Every node advertises a LoadBalancer IP of a pool announced over BGP, as a host route
//! (or the pool's aggregate), with itself as next hop: the fabric spreads traffic over the
//! nodes by ECMP. Under `external_traffic_policy = "Local"` a node advertises only while it
//! runs a ready endpoint of a service on that IP (RFC 4271 section 9.1.3 leaves the choice
//! of what to advertise to local policy).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use dockline_config::{Announce, Pool, TrafficPolicy};
use dockline_model::{HealthVerdicts, Snapshot};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use netgauze_bgp_pkt::BgpMessage;
use netgauze_bgp_pkt::community::{Community, LargeCommunity};
use netgauze_bgp_pkt::nlri::{Ipv4Unicast, Ipv4UnicastAddress, Ipv6Unicast, Ipv6UnicastAddress};
use netgauze_bgp_pkt::path_attribute::{
    As2PathSegment, As4Path, As4PathSegment, AsPath, AsPathSegmentType, Communities,
    LargeCommunities, LocalPreference, MpReach, MpUnreach, NextHop, Origin, PathAttribute,
    PathAttributeValue,
};
use netgauze_bgp_pkt::update::BgpUpdateMessage;
use netgauze_parse_utils::WritablePdu;

use crate::message::{self, AS_TRANS, MAX_MESSAGE_LENGTH};

/// The attributes a pool gives its routes, whatever the session.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PoolAttributes {
    /// RFC 1997 communities, as 32-bit values.
    pub communities: Vec<u32>,
    /// RFC 8092 large communities.
    pub large_communities: Vec<(u32, u32, u32)>,
    /// LOCAL_PREF, sent to iBGP peers only.
    pub local_pref: Option<u32>,
}

impl PoolAttributes {
    /// The pool's attributes; communities that do not parse are left out (`check`
    /// refuses them before they get here).
    pub fn of(pool: &Pool) -> Self {
        let numbers = |text: &str| -> Option<Vec<u32>> {
            text.split(':').map(|part| part.parse().ok()).collect()
        };
        PoolAttributes {
            communities: pool
                .communities
                .iter()
                .filter_map(|text| match numbers(text)?.as_slice() {
                    [high, low] if *high <= 0xffff && *low <= 0xffff => Some(high << 16 | low),
                    _ => None,
                })
                .collect(),
            large_communities: pool
                .large_communities
                .iter()
                .filter_map(|text| match numbers(text)?.as_slice() {
                    [global, first, second] => Some((*global, *first, *second)),
                    _ => None,
                })
                .collect(),
            local_pref: pool.local_pref,
        }
    }
}

/// Every route this node wants advertised, with its pool's attributes.
pub type Routes = BTreeMap<IpNet, Arc<PoolAttributes>>;

/// The routes to advertise for `snapshot` under the current endpoint `health`.
pub fn desired(snapshot: &Snapshot, health: &HealthVerdicts) -> Routes {
    let me = snapshot.node.name.as_str();
    let pools: HashMap<&str, (&Pool, Arc<PoolAttributes>)> = snapshot
        .config
        .pools
        .iter()
        .filter(|pool| pool.announce.contains(&Announce::Bgp))
        .map(|pool| {
            (
                pool.name.as_str(),
                (pool, Arc::new(PoolAttributes::of(pool))),
            )
        })
        .collect();
    let mut routes = Routes::new();
    for vip in &snapshot.vips {
        let Some((pool, attributes)) = pools.get(vip.pool.as_str()) else {
            continue;
        };
        if vip.external_traffic_policy == TrafficPolicy::Local {
            let serves_here = snapshot
                .services
                .iter()
                .filter(|service| vip.services.contains(&service.key()))
                .flat_map(|service| health.ready_endpoints(service))
                .any(|endpoint| endpoint.node.as_deref() == Some(me));
            if !serves_here {
                continue;
            }
        }
        routes.insert(prefix(vip.ip, pool), Arc::clone(attributes));
    }
    routes
}

/// The host route of `ip`, or the pool's aggregate that covers it.
fn prefix(ip: IpAddr, pool: &Pool) -> IpNet {
    match ip {
        IpAddr::V4(ip) => {
            let length = pool.aggregation_length.unwrap_or(32).min(32);
            IpNet::V4(Ipv4Net::new(ip, length).map_or(Ipv4Net::from(ip), |net| net.trunc()))
        }
        IpAddr::V6(ip) => {
            let length = pool.aggregation_length_v6.unwrap_or(128).min(128);
            IpNet::V6(Ipv6Net::new(ip, length).map_or(Ipv6Net::from(ip), |net| net.trunc()))
        }
    }
}

/// What one session needs to know to build its UPDATEs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// dockline's AS number.
    pub local_asn: u32,
    /// The router is in another AS.
    pub external: bool,
    /// AS_PATH carries 4-byte numbers (RFC 6793).
    pub four_octet_asn: bool,
    /// The IPv4 next hop; IPv4 routes are not sent without one.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// The IPv6 next hop; IPv6 routes are not sent without one.
    pub next_hop_v6: Option<Ipv6Addr>,
}

/// The Adj-RIB-Out of one session: what the router was sent and still has.
#[derive(Debug, Default)]
pub struct Advertised {
    routes: Routes,
}

impl Advertised {
    /// Nothing sent yet (a session just established, or a refresh asked for).
    pub fn new() -> Self {
        Advertised::default()
    }

    /// How many prefixes the router has from this session.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// The prefixes the router has from this session, in order.
    pub fn prefixes(&self) -> impl Iterator<Item = &IpNet> {
        self.routes.keys()
    }

    /// The router has nothing from this session.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The UPDATEs that turn what was sent into `desired`, withdrawals first, each under
    /// 4096 bytes; routes of a family without a next hop for this peer are left out.
    pub fn update_to(&mut self, desired: &Routes, peer: &Peer) -> Vec<BgpMessage> {
        let sendable = |prefix: &IpNet| match prefix {
            IpNet::V4(_) => peer.next_hop_v4.is_some(),
            IpNet::V6(_) => peer.next_hop_v6.is_some(),
        };
        let withdrawn: Vec<IpNet> = self
            .routes
            .keys()
            .filter(|prefix| !desired.contains_key(prefix) || !sendable(prefix))
            .copied()
            .collect();
        // Announcements grouped by attributes: one set of UPDATEs per pool.
        let mut announced: HashMap<&PoolAttributes, Vec<IpNet>> = HashMap::new();
        for (prefix, attributes) in desired {
            if sendable(prefix) && self.routes.get(prefix) != Some(attributes) {
                announced.entry(attributes).or_default().push(*prefix);
            }
        }
        let mut messages = withdrawals(&withdrawn);
        let mut groups: Vec<_> = announced.into_iter().collect();
        groups.sort_by(|a, b| a.1.first().cmp(&b.1.first()));
        for (attributes, prefixes) in groups {
            messages.extend(announcements(&prefixes, attributes, peer));
        }
        for prefix in withdrawn {
            self.routes.remove(&prefix);
        }
        for (prefix, attributes) in desired {
            if sendable(prefix) {
                self.routes.insert(*prefix, Arc::clone(attributes));
            }
        }
        messages
    }

    /// UPDATEs withdrawing everything sent, for a stop.
    pub fn withdraw_all(&mut self) -> Vec<BgpMessage> {
        let all: Vec<IpNet> = self.routes.keys().copied().collect();
        self.routes.clear();
        withdrawals(&all)
    }
}

/// The NLRI bytes of one prefix: its length octet and the significant octets.
fn nlri_length(prefix: &IpNet) -> usize {
    1 + usize::from(prefix.prefix_len()).div_ceil(8)
}

/// Splits `prefixes` into runs whose NLRI fit in `room` bytes each.
fn chunks(prefixes: &[IpNet], room: usize) -> Vec<&[IpNet]> {
    let mut runs = Vec::new();
    let (mut start, mut used) = (0, 0);
    for (index, prefix) in prefixes.iter().enumerate() {
        let size = nlri_length(prefix);
        if used + size > room && index > start {
            runs.push(&prefixes[start..index]);
            (start, used) = (index, 0);
        }
        used += size;
    }
    if start < prefixes.len() {
        runs.push(&prefixes[start..]);
    }
    runs
}

fn split(prefixes: &[IpNet]) -> (Vec<Ipv4UnicastAddress>, Vec<Ipv6UnicastAddress>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for prefix in prefixes {
        match prefix {
            IpNet::V4(net) => {
                if let Ok(network) = Ipv4Unicast::from_net(*net) {
                    v4.push(Ipv4UnicastAddress::new_no_path_id(network));
                }
            }
            IpNet::V6(net) => {
                if let Ok(network) = Ipv6Unicast::from_net(*net) {
                    v6.push(Ipv6UnicastAddress::new(None, network));
                }
            }
        }
    }
    (v4, v6)
}

fn withdrawals(prefixes: &[IpNet]) -> Vec<BgpMessage> {
    let empty = BgpUpdateMessage::new(Vec::new(), Vec::new(), Vec::new());
    // The MP_UNREACH_NLRI header (attribute header with extended length, AFI, SAFI) is
    // counted against IPv6 runs as well.
    let room = MAX_MESSAGE_LENGTH - BgpMessage::Update(empty).len() - 7;
    let (v4, v6): (Vec<IpNet>, Vec<IpNet>) = prefixes.iter().partition(|p| p.addr().is_ipv4());
    let mut messages = Vec::new();
    for run in chunks(&v4, room) {
        let (nlri, _) = split(run);
        messages.push(BgpMessage::Update(BgpUpdateMessage::new(
            nlri,
            Vec::new(),
            Vec::new(),
        )));
    }
    for run in chunks(&v6, room) {
        let (_, nlri) = split(run);
        let unreach = message::mp_unreach(MpUnreach::Ipv6Unicast { nlri: nlri.into() });
        messages.push(BgpMessage::Update(BgpUpdateMessage::new(
            Vec::new(),
            vec![unreach],
            Vec::new(),
        )));
    }
    messages
}

/// The attributes every route of a pool carries to `peer`, without next hop or NLRI.
fn common_attributes(attributes: &PoolAttributes, peer: &Peer) -> Vec<PathAttribute> {
    let mut list = vec![
        message::attribute(PathAttributeValue::Origin(Origin::IGP)),
        message::attribute(PathAttributeValue::AsPath(as_path(peer))),
    ];
    if peer.external && !peer.four_octet_asn && peer.local_asn > u32::from(u16::MAX) {
        // A 2-byte router sees AS_TRANS above and the real number here (RFC 6793).
        list.push(message::attribute(PathAttributeValue::As4Path(
            As4Path::new([As4PathSegment::new(
                AsPathSegmentType::AsSequence,
                [peer.local_asn],
            )]),
        )));
    }
    if !peer.external
        && let Some(preference) = attributes.local_pref
    {
        list.push(message::attribute(PathAttributeValue::LocalPreference(
            LocalPreference::new(preference),
        )));
    }
    if !attributes.communities.is_empty() {
        let communities: Vec<Community> = attributes
            .communities
            .iter()
            .map(|value| Community::new(*value))
            .collect();
        list.push(message::attribute(PathAttributeValue::Communities(
            Communities::new(communities),
        )));
    }
    if !attributes.large_communities.is_empty() {
        let large: Vec<LargeCommunity> = attributes
            .large_communities
            .iter()
            .map(|(global, first, second)| LargeCommunity::new(*global, *first, *second))
            .collect();
        list.push(message::attribute(PathAttributeValue::LargeCommunities(
            LargeCommunities::new(large),
        )));
    }
    list
}

/// Empty towards iBGP, our AS alone towards eBGP (RFC 4271 section 5.1.2).
fn as_path(peer: &Peer) -> AsPath {
    match (peer.external, peer.four_octet_asn) {
        (false, true) => AsPath::As4PathSegments(Box::new([])),
        (false, false) => AsPath::As2PathSegments(Box::new([])),
        (true, true) => AsPath::As4PathSegments(Box::new([As4PathSegment::new(
            AsPathSegmentType::AsSequence,
            [peer.local_asn],
        )])),
        (true, false) => {
            let asn = u16::try_from(peer.local_asn).unwrap_or(AS_TRANS);
            AsPath::As2PathSegments(Box::new([As2PathSegment::new(
                AsPathSegmentType::AsSequence,
                [asn],
            )]))
        }
    }
}

fn announcements(prefixes: &[IpNet], attributes: &PoolAttributes, peer: &Peer) -> Vec<BgpMessage> {
    let (v4, v6): (Vec<IpNet>, Vec<IpNet>) = prefixes.iter().partition(|p| p.addr().is_ipv4());
    let mut messages = Vec::new();
    if let Some(next_hop) = peer.next_hop_v4 {
        let mut list = common_attributes(attributes, peer);
        list.push(message::attribute(PathAttributeValue::NextHop(
            NextHop::new(next_hop),
        )));
        let base =
            BgpMessage::Update(BgpUpdateMessage::new(Vec::new(), list.clone(), Vec::new())).len();
        for run in chunks(&v4, MAX_MESSAGE_LENGTH.saturating_sub(base)) {
            let (nlri, _) = split(run);
            messages.push(BgpMessage::Update(BgpUpdateMessage::new(
                Vec::new(),
                list.clone(),
                nlri,
            )));
        }
    }
    if let Some(next_hop_global) = peer.next_hop_v6 {
        let reach = |nlri: Vec<Ipv6UnicastAddress>| {
            let mut list = common_attributes(attributes, peer);
            list.push(message::attribute(PathAttributeValue::MpReach(
                MpReach::Ipv6Unicast {
                    next_hop_global,
                    next_hop_local: None,
                    nlri: nlri.into(),
                },
            )));
            BgpMessage::Update(BgpUpdateMessage::new(Vec::new(), list, Vec::new()))
        };
        let base = reach(Vec::new()).len();
        for run in chunks(&v6, MAX_MESSAGE_LENGTH.saturating_sub(base)) {
            let (_, nlri) = split(run);
            messages.push(reach(nlri));
        }
    }
    messages
}

#[cfg(test)]
mod tests;
