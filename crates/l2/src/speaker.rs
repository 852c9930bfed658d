//! The announcer's protocol core, without I/O: which VIPs this node speaks for, the answers
//! to ARP requests (RFC 826) and neighbour solicitations (RFC 4861 section 7.2.4) for
//! them, and the gratuitous ARPs / unsolicited advertisements (RFC 5227 section 3, RFC 4861
//! section 7.2.6) repeated after a takeover.
//!
//! A VIP is released at once when the node stops owning it. One whose owner before was
//! another node, now down or gone, is taken over at once: a failover, with nobody left to
//! answer. Any other is taken over only once the node's view of the members has settled:
//! no membership change for one probe period, or [`HOLD_BOUND_PROBES`] probe periods at
//! most. While views change (a node joins, a cluster forms) nodes briefly disagree on
//! owners; the hold keeps a node that is ahead from claiming a VIP that another, behind,
//! still answers for. A node still forming its view (see `MemberSet::forming`) claims
//! nothing.
//!
//! Another MAC heard claiming a VIP this node answers for is a conflict: counted per VIP
//! and shown with the owners, so that membership can compare views at once.
//!
//! The driver passes inputs, frames and `now` in ([`Speaker::on_inputs`],
//! [`Speaker::on_frame`]), sends what [`Speaker::poll_transmit`] hands out, calls
//! [`Speaker::handle_timeout`] at [`Speaker::poll_timeout`] and reads takeovers and
//! releases from [`Speaker::poll_event`]. There are no sockets, no clock and no metrics
//! here.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use dockline_model::{HealthVerdicts, MemberSet, Snapshot, VipOwners};

use crate::frame::{ETHERTYPE_ARP, Ignored, Mac};
use crate::{arp, ndp};

/// A frame to send on one announce link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Transmit {
    /// Index of the link, as in the MACs given to [`Speaker::new`].
    pub(crate) link: usize,
    /// The VIP the frame speaks for; an IPv4 VIP's frame is ARP, an IPv6 VIP's NDP.
    pub(crate) vip: IpAddr,
    pub(crate) kind: TransmitKind,
    /// The whole Ethernet frame.
    pub(crate) frame: Vec<u8>,
}

/// Why a frame is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TransmitKind {
    /// Answers a request or solicitation.
    Reply,
    /// A gratuitous ARP or unsolicited advertisement after a takeover.
    Gratuitous,
}

/// What a received frame turned out to be, for the driver's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Received {
    /// A request for a VIP this node owns; the reply is queued.
    Answered(IpAddr),
    /// A request for an L2 VIP that another node, or none, owns: not answered.
    NotOwned(IpAddr),
    /// A request for an address that is not an L2 VIP: the kernel's business.
    NotVip,
    /// This node's own frame, looped back by the interface: it asks nothing.
    Looped,
    /// Another MAC claims a VIP this node answers for (a gratuitous ARP, an ARP reply or a
    /// neighbour advertisement): two nodes think they own it.
    Conflict { vip: IpAddr, mac: Mac },
    /// Not a request to answer, and why.
    Ignored(Ignored),
}

/// A change of what this node answers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// This node now owns the VIP and answers for it.
    TakenOver(IpAddr),
    /// This node no longer owns the VIP and stopped answering for it.
    Released(IpAddr),
}

/// The takeover announcements of one VIP still to send.
#[derive(Debug, Clone, Copy)]
struct Repeat {
    at: Instant,
    left: u32,
}

/// The longest a takeover waits for the view to settle, in probe periods.
pub(crate) const HOLD_BOUND_PROBES: u32 = 10;

/// One node's answering and announcing state for its announce links.
#[derive(Debug)]
pub(crate) struct Speaker {
    /// The MAC of each announce link, by link index.
    macs: Vec<Mac>,
    /// The owner of every L2 VIP of the snapshot, as last computed.
    owners: VipOwners,
    /// Every L2 VIP, and whether this node answers for it: requests for the others are not
    /// ours.
    vips: BTreeMap<IpAddr, bool>,
    /// The members' names and liveness as last seen, and when they last changed.
    members_seen: Option<Vec<(String, bool)>>,
    members_changed_at: Option<Instant>,
    /// The probe period: no membership change for this long is a settled view.
    settle: Duration,
    /// VIPs this node owns but does not answer for yet, with when the hold began.
    held: BTreeMap<IpAddr, Instant>,
    /// Per VIP: claims heard from other MACs while this node answered for it, and the last
    /// such MAC (kept while the VIP is in the config, like the counter).
    conflicts: BTreeMap<IpAddr, (u64, Mac)>,
    /// Announcements per takeover (the first at once) and the time between them.
    gratuitous_count: u32,
    gratuitous_interval: Duration,
    repeats: BTreeMap<IpAddr, Repeat>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl Speaker {
    /// A speaker for links with these MACs that owns nothing yet.
    pub(crate) fn new(macs: Vec<Mac>) -> Self {
        Speaker {
            macs,
            owners: VipOwners::default(),
            vips: BTreeMap::new(),
            members_seen: None,
            members_changed_at: None,
            settle: Duration::ZERO,
            held: BTreeMap::new(),
            conflicts: BTreeMap::new(),
            gratuitous_count: 0,
            gratuitous_interval: Duration::ZERO,
            repeats: BTreeMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Recomputes which VIPs this node owns ([`crate::owner::owners`]). A VIP lost is not
    /// answered from now on and its pending announcements are dropped; a VIP won is taken
    /// over once the view has settled (at once if it has): announced on every link at once
    /// and again every `l2.gratuitous_interval_ms` until `l2.gratuitous_count`
    /// announcements are out.
    pub(crate) fn on_inputs(
        &mut self,
        snapshot: &Snapshot,
        health: &HealthVerdicts,
        members: &MemberSet,
        now: Instant,
    ) {
        let l2 = &snapshot.config.l2;
        self.gratuitous_count = l2.gratuitous_count;
        self.gratuitous_interval = Duration::from_millis(l2.gratuitous_interval_ms);
        let probe = snapshot.config.cluster.gossip.timing().probe_interval_ms;
        self.settle = Duration::from_millis(probe);
        let seen: Vec<(String, bool)> = members
            .members
            .iter()
            .map(|m| (m.name.clone(), m.state.is_live()))
            .collect();
        if self
            .members_seen
            .as_ref()
            .is_some_and(|before| *before != seen)
        {
            self.members_changed_at = Some(now);
        }
        self.members_seen = Some(seen);

        let previous = std::mem::replace(
            &mut self.owners,
            crate::owner::owners(snapshot, health, members),
        );
        let wanted: BTreeMap<IpAddr, bool> = self
            .owners
            .vips
            .iter()
            .map(|v| (v.ip, v.owned_by_me && !members.forming))
            .collect();
        let before = std::mem::take(&mut self.vips);
        self.vips = wanted
            .iter()
            .map(|(vip, want)| (*vip, *want && before.get(vip) == Some(&true)))
            .collect();
        let lost: Vec<IpAddr> = owned(&before)
            .filter(|vip| self.vips.get(vip) != Some(&true))
            .collect();
        for lost in lost {
            self.repeats.remove(&lost);
            self.transmits.retain(|t| t.vip != lost);
            self.events.push_back(Event::Released(lost));
        }
        self.held.retain(|vip, _| wanted.get(vip) == Some(&true));
        let me = snapshot.node.name.as_str();
        for (vip, _) in wanted.iter().filter(|(_, want)| **want) {
            if self.vips.get(vip) == Some(&true) || self.held.contains_key(vip) {
                continue;
            }
            // The owner before is another node, gone or down now: nobody else answers,
            // so a failover is not held.
            // Owners are sorted by address.
            let owner_before = previous
                .vips
                .binary_search_by_key(vip, |v| v.ip)
                .ok()
                .map(|at| &previous.vips[at]);
            let failover = owner_before
                .and_then(|v| v.owner.as_deref())
                .is_some_and(|owner| owner != me && !is_live(members, owner));
            if failover {
                self.take_over(*vip, now);
            } else {
                self.held.insert(*vip, now);
            }
        }
        self.conflicts.retain(|vip, _| wanted.contains_key(vip));
        self.take_over_settled(now);
    }

    /// Takes over the held VIPs whose hold is over at `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.take_over_settled(now);
    }

    /// Takes over every held VIP if the view has settled, or those held for the bound.
    fn take_over_settled(&mut self, now: Instant) {
        let settled = self
            .members_changed_at
            .is_none_or(|changed| now >= changed + self.settle);
        let bound = self.settle * HOLD_BOUND_PROBES;
        let due: Vec<IpAddr> = self
            .held
            .iter()
            .filter(|(_, since)| settled || now >= **since + bound)
            .map(|(vip, _)| *vip)
            .collect();
        for vip in due {
            self.held.remove(&vip);
            self.take_over(vip, now);
        }
        self.show_answering();
    }

    /// Answers for `vip` from now on and announces it.
    fn take_over(&mut self, vip: IpAddr, now: Instant) {
        self.vips.insert(vip, true);
        self.events.push_back(Event::TakenOver(vip));
        if self.gratuitous_count > 0 {
            self.announce(vip);
            self.schedule(vip, self.gratuitous_count - 1, now);
        }
    }

    /// Makes the owners say which VIPs this node answers for now, and their conflicts.
    fn show_answering(&mut self) {
        for owner in &mut self.owners.vips {
            owner.owned_by_me = self.vips.get(&owner.ip) == Some(&true);
            let conflict = self.conflicts.get(&owner.ip);
            owner.conflicts = conflict.map_or(0, |(count, _)| *count);
            owner.conflict_mac = conflict.map(|(_, mac)| mac.to_string());
        }
    }

    /// Reads one frame received on `link` and queues the reply when it asks for a VIP this
    /// node owns.
    pub(crate) fn on_frame(&mut self, link: usize, frame: &[u8]) -> Received {
        let mac = self.macs[link];
        if frame.get(6..12) == Some(&mac.0[..]) {
            return Received::Looped;
        }
        let request = match Request::parse(frame) {
            Ok(request) => request,
            Err(Ignored::NotRequest) => return self.on_claim(frame),
            Err(reason) => return Received::Ignored(reason),
        };
        let vip = request.target();
        match self.vips.get(&vip) {
            None => Received::NotVip,
            Some(false) => Received::NotOwned(vip),
            Some(true) => {
                self.transmits.push_back(Transmit {
                    link,
                    vip,
                    kind: TransmitKind::Reply,
                    frame: request.reply(mac),
                });
                Received::Answered(vip)
            }
        }
    }

    /// A frame that asks nothing: a conflict if another MAC claims a VIP we answer for.
    fn on_claim(&mut self, frame: &[u8]) -> Received {
        let claim = if frame.get(12..14) == Some(&ETHERTYPE_ARP.to_be_bytes()[..]) {
            arp::parse_claim(frame).map(|(mac, ip)| (mac, IpAddr::V4(ip)))
        } else {
            ndp::parse_advertisement(frame).map(|(mac, ip)| (mac, IpAddr::V6(ip)))
        };
        match claim {
            Ok((mac, vip)) if self.vips.get(&vip) == Some(&true) && !self.macs.contains(&mac) => {
                let entry = self.conflicts.entry(vip).or_insert((0, mac));
                *entry = (entry.0 + 1, mac);
                self.show_answering();
                Received::Conflict { vip, mac }
            }
            Ok(_) => Received::Ignored(Ignored::NotRequest),
            Err(reason) => Received::Ignored(reason),
        }
    }

    /// When the next announcement repeat or the end of a takeover hold is due, if any.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let repeat = self.repeats.values().map(|r| r.at).min();
        let hold_ends = self.held.values().min().map(|since| {
            let bound = *since + self.settle * HOLD_BOUND_PROBES;
            match self.members_changed_at {
                Some(changed) => bound.min(changed + self.settle),
                None => bound,
            }
        });
        [repeat, hold_ends].into_iter().flatten().min()
    }

    /// The next frame to send now: queued replies and announcements first, then the
    /// repeats due at `now`. `None` once nothing is left for now.
    pub(crate) fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if self.transmits.is_empty() {
            let due: Vec<(IpAddr, u32)> = self
                .repeats
                .iter()
                .filter(|(_, r)| r.at <= now)
                .map(|(vip, r)| (*vip, r.left))
                .collect();
            for (vip, left) in due {
                self.announce(vip);
                self.schedule(vip, left - 1, now);
            }
        }
        self.transmits.pop_front()
    }

    /// The next takeover or release since the last call.
    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The owner of every L2 VIP, as of the last [`Speaker::on_inputs`].
    pub(crate) fn owners(&self) -> &VipOwners {
        &self.owners
    }

    /// The VIPs this node owns (answers for).
    pub(crate) fn owned(&self) -> impl Iterator<Item = IpAddr> + '_ {
        owned(&self.vips)
    }

    /// Queues one announcement of `vip` on every link.
    fn announce(&mut self, vip: IpAddr) {
        for (link, mac) in self.macs.iter().enumerate() {
            let frame = match vip {
                IpAddr::V4(v4) => arp::gratuitous(v4, *mac),
                IpAddr::V6(v6) => ndp::unsolicited(v6, *mac),
            };
            self.transmits.push_back(Transmit {
                link,
                vip,
                kind: TransmitKind::Gratuitous,
                frame,
            });
        }
    }

    /// Plans the `left` announcements of `vip` still to send, the next one an interval
    /// after `now`.
    fn schedule(&mut self, vip: IpAddr, left: u32, now: Instant) {
        if left == 0 {
            self.repeats.remove(&vip);
        } else {
            let at = now + self.gratuitous_interval;
            self.repeats.insert(vip, Repeat { at, left });
        }
    }
}

/// Whether `name` is a live member of `members`.
fn is_live(members: &MemberSet, name: &str) -> bool {
    members
        .members
        .iter()
        .any(|m| m.name == name && m.state.is_live())
}

/// The VIPs of `vips` this node owns.
fn owned(vips: &BTreeMap<IpAddr, bool>) -> impl Iterator<Item = IpAddr> + '_ {
    vips.iter().filter(|(_, mine)| **mine).map(|(vip, _)| *vip)
}

/// A request to answer: an ARP request or a neighbour solicitation.
#[derive(Debug, Clone, Copy)]
enum Request {
    Arp(arp::Request),
    Neighbor(ndp::Solicitation),
}

impl Request {
    /// The request in `frame`, told apart by ethertype, or why there is none.
    fn parse(frame: &[u8]) -> Result<Self, Ignored> {
        if frame.get(12..14) == Some(&ETHERTYPE_ARP.to_be_bytes()[..]) {
            arp::parse_request(frame).map(Request::Arp)
        } else {
            ndp::parse_solicitation(frame).map(Request::Neighbor)
        }
    }

    /// The address asked for.
    fn target(&self) -> IpAddr {
        match self {
            Request::Arp(request) => request.target_ip.into(),
            Request::Neighbor(solicitation) => solicitation.target.into(),
        }
    }

    /// The answer saying the target is at `mac`.
    fn reply(&self, mac: Mac) -> Vec<u8> {
        match self {
            Request::Arp(request) => arp::reply(request, request.target_ip, mac),
            Request::Neighbor(solicitation) => {
                ndp::advertise(solicitation, solicitation.target, mac)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use dockline_model::MemberState;

    use super::*;
    use crate::frame::hex;
    use crate::testing::{
        ARPING_REQUEST, NDISC6_SOLICITATION, cluster_vips, lb, members, snapshot,
    };

    const LINK_MACS: [Mac; 2] = [Mac([2, 0, 0, 0, 0, 1]), Mac([2, 0, 0, 0, 0, 2])];
    const VIP4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
    /// The address `NDISC6_SOLICITATION` asks for.
    const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x10);
    const INTERVAL: Duration = Duration::from_millis(200);

    /// The services on both VIPs, their endpoint on `endpoint_node`, ready or not, with
    /// `gratuitous_count` takeover announcements 200 ms apart.
    fn config(endpoint_node: &str, ready: bool, gratuitous_count: u32) -> Snapshot {
        let extra = format!(
            "{}{}{}",
            lb("web", "192.0.2.10", "Local", endpoint_node, ready),
            lb("web6", "2001:db8:1::10", "Local", endpoint_node, ready),
            format_args!(
                r#"
                [[pools]]
                name = "ipv6"
                addresses = ["2001:db8:1::/120"]
                announce = ["l2"]
                [l2]
                gratuitous_count = {gratuitous_count}
                gratuitous_interval_ms = 200
                "#
            ),
        );
        snapshot("n1", &extra)
    }

    /// A speaker on two links, fed `snapshot` for node n1 with n2 alive too.
    fn speaker(snapshot: &Snapshot, now: Instant) -> Speaker {
        let mut speaker = Speaker::new(LINK_MACS.to_vec());
        speaker.on_inputs(
            snapshot,
            &HealthVerdicts::default(),
            &members(&[("n1", MemberState::Alive), ("n2", MemberState::Alive)]),
            now,
        );
        speaker
    }

    fn drain(speaker: &mut Speaker, now: Instant) -> Vec<Transmit> {
        std::iter::from_fn(|| speaker.poll_transmit(now)).collect()
    }

    fn gratuitous(vip: IpAddr) -> Vec<Transmit> {
        LINK_MACS
            .iter()
            .enumerate()
            .map(|(link, mac)| Transmit {
                link,
                vip,
                kind: TransmitKind::Gratuitous,
                frame: match vip {
                    IpAddr::V4(v4) => arp::gratuitous(v4, *mac),
                    IpAddr::V6(v6) => ndp::unsolicited(v6, *mac),
                },
            })
            .collect()
    }

    #[test]
    fn a_takeover_is_announced_on_every_link_at_the_repeat_schedule_and_no_more() {
        let start = Instant::now();
        let mut speaker = speaker(&config("n1", true, 3), start);
        let events: Vec<Event> = std::iter::from_fn(|| speaker.poll_event()).collect();
        assert_eq!(
            events,
            [Event::TakenOver(VIP4.into()), Event::TakenOver(VIP6.into())]
        );
        let both = [gratuitous(VIP4.into()), gratuitous(VIP6.into())].concat();
        assert_eq!(drain(&mut speaker, start), both, "the first at once");
        assert_eq!(speaker.poll_timeout(), Some(start + INTERVAL));
        let early = start + INTERVAL - Duration::from_millis(1);
        assert_eq!(drain(&mut speaker, early), []);

        let second = start + INTERVAL;
        assert_eq!(drain(&mut speaker, second), both);
        assert_eq!(speaker.poll_timeout(), Some(second + INTERVAL));
        // A late wake-up counts the next interval from when the repeat went out.
        let third = second + INTERVAL + Duration::from_millis(5);
        assert_eq!(drain(&mut speaker, third), both);

        assert_eq!(speaker.poll_timeout(), None, "three announcements in all");
        assert_eq!(drain(&mut speaker, third + 10 * INTERVAL), []);
    }

    #[test]
    fn losing_a_vip_stops_replies_at_once_and_cancels_pending_repeats() {
        let start = Instant::now();
        let snapshot = config("n1", true, 3);
        let mut speaker = speaker(&snapshot, start);
        drain(&mut speaker, start);
        while speaker.poll_event().is_some() {}
        let request = hex(ARPING_REQUEST);
        assert_eq!(
            speaker.on_frame(0, &request),
            Received::Answered(VIP4.into())
        );

        let mut failing = HealthVerdicts::default();
        failing.set("default/web", "10.111.0.5".parse().unwrap(), false);
        let later = start + INTERVAL / 2;
        let alone = members(&[("n1", MemberState::Alive)]);
        speaker.on_inputs(&snapshot, &failing, &alone, later);
        assert_eq!(speaker.poll_event(), Some(Event::Released(VIP4.into())));
        assert_eq!(speaker.poll_event(), None);
        assert!(speaker.owned().eq([IpAddr::from(VIP6)]));

        // The reply queued before the loss is not sent; only the IPv6 VIP still repeats.
        assert_eq!(speaker.poll_timeout(), Some(start + INTERVAL));
        assert_eq!(drain(&mut speaker, later), []);
        assert_eq!(
            speaker.on_frame(0, &request),
            Received::NotOwned(VIP4.into())
        );
        assert_eq!(drain(&mut speaker, later), []);
        assert_eq!(
            drain(&mut speaker, start + INTERVAL),
            gratuitous(VIP6.into())
        );
    }

    #[test]
    fn a_request_for_an_owned_vip_gets_one_reply_with_the_links_mac() {
        let start = Instant::now();
        let mut speaker = speaker(&config("n1", true, 0), start);
        assert_eq!(drain(&mut speaker, start), [], "no announcements asked for");
        let request = hex(ARPING_REQUEST);

        assert_eq!(
            speaker.on_frame(1, &request),
            Received::Answered(VIP4.into())
        );
        let sent = drain(&mut speaker, start);
        assert_eq!(sent.len(), 1);
        let reply = &sent[0];
        assert_eq!((reply.link, reply.vip), (1, VIP4.into()));
        assert_eq!(reply.kind, TransmitKind::Reply);
        let parsed = arp::parse_request(&request).unwrap();
        assert_eq!(reply.frame, arp::reply(&parsed, VIP4, LINK_MACS[1]));
        assert_eq!(arp::parse_reply(&reply.frame), Ok((LINK_MACS[1], VIP4)));
    }

    #[test]
    fn a_solicitation_for_an_owned_ipv6_vip_gets_an_advertisement() {
        let start = Instant::now();
        let mut speaker = speaker(&config("n1", true, 0), start);
        let solicitation = hex(NDISC6_SOLICITATION);

        assert_eq!(
            speaker.on_frame(0, &solicitation),
            Received::Answered(VIP6.into())
        );
        let parsed = ndp::parse_solicitation(&solicitation).unwrap();
        let advertisement = Transmit {
            link: 0,
            vip: VIP6.into(),
            kind: TransmitKind::Reply,
            frame: ndp::advertise(&parsed, VIP6, LINK_MACS[0]),
        };
        assert_eq!(drain(&mut speaker, start), [advertisement]);
    }

    #[test]
    fn frames_that_ask_nothing_of_this_node_are_not_answered_and_say_why() {
        let start = Instant::now();
        // n2 runs the only endpoint, so n2 owns both VIPs.
        let mut speaker = speaker(&config("n2", true, 3), start);
        assert_eq!(speaker.poll_event(), None);
        let request = hex(ARPING_REQUEST);
        let asker = Mac([2, 0, 0, 0, 0, 0x0c]);
        let asker_ip = Ipv4Addr::new(10, 99, 0, 100);
        // A pool address no service was given.
        let unassigned = arp::request(asker, asker_ip, Ipv4Addr::new(192, 0, 2, 99));
        let reply = arp::reply(&arp::parse_request(&request).unwrap(), VIP4, asker);
        let looped = arp::request(LINK_MACS[0], asker_ip, VIP4);

        let cases = [
            (&request[..], Received::NotOwned(VIP4.into())),
            (&request[..41], Received::Ignored(Ignored::Truncated)),
            (&reply[..], Received::Ignored(Ignored::NotRequest)),
            (&unassigned[..], Received::NotVip),
            (&looped[..], Received::Looped),
        ];
        for (frame, expected) in cases {
            assert_eq!(speaker.on_frame(0, frame), expected);
        }
        let solicitation = hex(NDISC6_SOLICITATION);
        assert_eq!(
            speaker.on_frame(1, &solicitation),
            Received::NotOwned(VIP6.into())
        );
        assert_eq!(drain(&mut speaker, start), []);
        assert_eq!(speaker.poll_timeout(), None);
    }

    /// Twenty LoadBalancer VIPs of the cluster policy, one announcement per takeover.
    fn spread_vips() -> Snapshot {
        let services = cluster_vips(10..30);
        snapshot("n1", &format!("{services}\n[l2]\ngratuitous_count = 1\n"))
    }

    fn events(speaker: &mut Speaker) -> Vec<Event> {
        std::iter::from_fn(|| speaker.poll_event()).collect()
    }

    /// The default profile's probe period: the settle time.
    const SETTLE: Duration = Duration::from_millis(120);

    /// A speaker of n1 with n2 alive, its first takeovers drained; the VIPs n2 owns.
    fn beside_n2(snapshot: &Snapshot, start: Instant) -> (Speaker, Vec<IpAddr>) {
        let both = members(&[("n1", MemberState::Alive), ("n2", MemberState::Alive)]);
        let mut speaker = Speaker::new(LINK_MACS.to_vec());
        speaker.on_inputs(snapshot, &HealthVerdicts::default(), &both, start);
        events(&mut speaker);
        drain(&mut speaker, start);
        let of_n2: Vec<IpAddr> = speaker
            .owners()
            .vips
            .iter()
            .filter(|v| !v.owned_by_me)
            .map(|v| v.ip)
            .collect();
        assert!(!of_n2.is_empty() && of_n2.len() < 20, "both own some");
        (speaker, of_n2)
    }

    /// A speaker of n1 that formed its view alone and then met n2, its VIPs held; the VIPs
    /// n1 owns now.
    fn joined_n2(snapshot: &Snapshot, start: Instant, joined: Instant) -> (Speaker, Vec<IpAddr>) {
        let mut alone = members(&[("n1", MemberState::Alive)]);
        alone.forming = true;
        let mut speaker = Speaker::new(LINK_MACS.to_vec());
        speaker.on_inputs(snapshot, &HealthVerdicts::default(), &alone, start);
        assert_eq!(events(&mut speaker), [], "forming: nothing claimed");
        let both = members(&[("n1", MemberState::Alive), ("n2", MemberState::Alive)]);
        speaker.on_inputs(snapshot, &HealthVerdicts::default(), &both, joined);
        let ours: Vec<IpAddr> = speaker
            .owners()
            .vips
            .iter()
            .filter(|v| v.owner.as_deref() == Some("n1"))
            .map(|v| v.ip)
            .collect();
        assert!(!ours.is_empty() && ours.len() < 20, "both own some");
        (speaker, ours)
    }

    #[test]
    fn vips_a_joining_node_wins_are_taken_over_once_its_view_has_settled() {
        let start = Instant::now();
        let joined = start + Duration::from_millis(400);
        let snapshot = spread_vips();
        let (mut speaker, ours) = joined_n2(&snapshot, start, joined);
        assert_eq!(events(&mut speaker), [], "held while the change is fresh");
        assert!(speaker.owners().vips.iter().all(|v| !v.owned_by_me));
        assert_eq!(speaker.poll_timeout(), Some(joined + SETTLE));

        speaker.handle_timeout(joined + SETTLE - Duration::from_millis(1));
        assert_eq!(events(&mut speaker), []);
        speaker.handle_timeout(joined + SETTLE);
        let taken: Vec<Event> = ours.iter().map(|vip| Event::TakenOver(*vip)).collect();
        assert_eq!(events(&mut speaker), taken);
        assert_eq!(drain(&mut speaker, joined + SETTLE).len(), 2 * ours.len());
    }

    #[test]
    fn vips_of_an_owner_that_died_are_taken_over_at_once() {
        let start = Instant::now();
        let snapshot = spread_vips();
        let (mut speaker, of_n2) = beside_n2(&snapshot, start);
        let n2_down = members(&[("n1", MemberState::Alive), ("n2", MemberState::Down)]);
        let changed = start + Duration::from_secs(1);
        speaker.on_inputs(&snapshot, &HealthVerdicts::default(), &n2_down, changed);
        let taken: Vec<Event> = of_n2.iter().map(|vip| Event::TakenOver(*vip)).collect();
        assert_eq!(events(&mut speaker), taken, "a failover is not held");
        assert!(speaker.owners().vips.iter().all(|v| v.owned_by_me));
    }

    #[test]
    fn a_release_is_at_once_and_a_hold_ends_at_its_bound_while_members_keep_joining() {
        let start = Instant::now();
        let joined = start + Duration::from_millis(400);
        let snapshot = spread_vips();
        let (mut speaker, _) = joined_n2(&snapshot, start, joined);
        // Every 100 ms, under the settle time, one more node joins: each takes some VIPs
        // (released by n1 if it held them), and none is ever settled.
        let mut names = vec!["n1".to_owned(), "n2".to_owned()];
        let mut now = joined;
        let mut taken_at = None;
        for step in 3..=16 {
            now += Duration::from_millis(100);
            speaker.handle_timeout(now - Duration::from_millis(1));
            if events(&mut speaker)
                .iter()
                .any(|e| matches!(e, Event::TakenOver(_)))
            {
                taken_at.get_or_insert(now - Duration::from_millis(1));
            }
            names.push(format!("n{step}"));
            let set: Vec<(&str, MemberState)> = names
                .iter()
                .map(|n| (n.as_str(), MemberState::Alive))
                .collect();
            speaker.on_inputs(&snapshot, &HealthVerdicts::default(), &members(&set), now);
            if events(&mut speaker)
                .iter()
                .any(|e| matches!(e, Event::TakenOver(_)))
            {
                taken_at.get_or_insert(now);
            }
        }
        let bound = SETTLE * HOLD_BOUND_PROBES;
        let taken_at = taken_at.expect("taken over despite the churn");
        assert!(
            taken_at >= joined + bound && taken_at <= joined + bound + Duration::from_millis(100),
            "taken over {:?} after the join",
            taken_at - joined
        );
    }

    #[test]
    fn a_node_forming_its_view_claims_nothing_then_takes_over_at_once() {
        let start = Instant::now();
        let snapshot = config("n1", true, 0);
        let mut forming = members(&[("n1", MemberState::Alive)]);
        forming.forming = true;
        let mut speaker = Speaker::new(LINK_MACS.to_vec());
        speaker.on_inputs(&snapshot, &HealthVerdicts::default(), &forming, start);
        assert_eq!(events(&mut speaker), []);
        assert_eq!(
            speaker.on_frame(0, &hex(ARPING_REQUEST)),
            Received::NotOwned(VIP4.into())
        );
        forming.forming = false;
        speaker.on_inputs(&snapshot, &HealthVerdicts::default(), &forming, start);
        assert_eq!(
            events(&mut speaker),
            [Event::TakenOver(VIP4.into()), Event::TakenOver(VIP6.into())]
        );
    }

    #[test]
    fn another_mac_claiming_a_vip_we_answer_for_is_a_conflict_shown_with_the_owners() {
        let start = Instant::now();
        let mut speaker = speaker(&config("n1", true, 0), start);
        let other = Mac([2, 0, 0, 0, 0, 0x0b]);
        let claims = [
            arp::gratuitous(VIP4, other),
            ndp::unsolicited(VIP6, other),
            arp::gratuitous(VIP4, other),
        ];
        let expected = [
            Received::Conflict {
                vip: VIP4.into(),
                mac: other,
            },
            Received::Conflict {
                vip: VIP6.into(),
                mac: other,
            },
            Received::Conflict {
                vip: VIP4.into(),
                mac: other,
            },
        ];
        for (claim, expected) in claims.iter().zip(expected) {
            assert_eq!(speaker.on_frame(0, claim), expected);
        }
        let shown: Vec<(u64, Option<String>)> = speaker
            .owners()
            .vips
            .iter()
            .map(|v| (v.conflicts, v.conflict_mac.clone()))
            .collect();
        let mac = Some(other.to_string());
        assert_eq!(shown, [(2, mac.clone()), (1, mac)]);
        // Our own other link's announcement, and a claim for an address that is not ours.
        let ours = arp::gratuitous(VIP4, LINK_MACS[1]);
        assert_eq!(
            speaker.on_frame(0, &ours),
            Received::Ignored(Ignored::NotRequest)
        );
        let elsewhere = arp::gratuitous(Ipv4Addr::new(192, 0, 2, 99), other);
        assert_eq!(
            speaker.on_frame(0, &elsewhere),
            Received::Ignored(Ignored::NotRequest)
        );
        assert_eq!(drain(&mut speaker, start), [], "a conflict is not answered");
    }

    #[test]
    fn nothing_pending_means_no_timeout() {
        let start = Instant::now();
        assert_eq!(Speaker::new(LINK_MACS.to_vec()).poll_timeout(), None);
        // One announcement per takeover goes out at once and leaves no repeat behind.
        let mut speaker = speaker(&config("n1", true, 1), start);
        assert_eq!(speaker.poll_timeout(), None);
        assert_eq!(
            drain(&mut speaker, start),
            [gratuitous(VIP4.into()), gratuitous(VIP6.into())].concat()
        );
        assert_eq!(speaker.poll_timeout(), None);
    }
}
