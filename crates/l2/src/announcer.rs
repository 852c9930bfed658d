//! The announcer task: owns the set of VIPs this node answers for, recomputes it whenever
//! the snapshot, endpoint health or the member set changes, answers the frames the socket
//! readers pass in, and repeats gratuitous announcements after a takeover.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::frame::{ETHERTYPE_ARP, Mac};
use crate::{GRATUITOUS, IGNORED, Ignored, Inputs, Link, OWNED, REQUESTS, RESPONSES, arp, ndp};

/// Per-VIP metric handles, made once per VIP.
struct VipMetrics {
    requests: Counter,
    responses: Counter,
    gratuitous: Counter,
    owned: Gauge,
}

impl VipMetrics {
    fn new(ip: IpAddr) -> Self {
        let ip = ip.to_string();
        let m = VipMetrics {
            requests: metrics::counter!(REQUESTS, "ip" => ip.clone()),
            responses: metrics::counter!(RESPONSES, "ip" => ip.clone()),
            gratuitous: metrics::counter!(GRATUITOUS, "ip" => ip.clone()),
            owned: metrics::gauge!(OWNED, "ip" => ip),
        };
        m.owned.set(0.0);
        m
    }
}

/// A pending repeat of a takeover announcement.
struct Repeat {
    at: Instant,
    vip: IpAddr,
    left: u32,
}

struct State {
    links: Vec<Arc<Link>>,
    inputs: Inputs,
    owned: BTreeSet<IpAddr>,
    vips: HashMap<IpAddr, VipMetrics>,
    repeats: Vec<Repeat>,
}

fn spawn_readers(
    links: &[Arc<Link>],
    readers: &mut JoinSet<()>,
) -> mpsc::Receiver<(usize, Vec<u8>)> {
    let (tx, rx) = mpsc::channel(1024);
    for (i, link) in links.iter().enumerate() {
        for ipv6 in [false, true] {
            let (link, tx) = (link.clone(), tx.clone());
            readers.spawn(async move {
                let socket = if ipv6 { &link.solicitations } else { &link.arp };
                let mut buf = vec![0u8; 2048];
                loop {
                    match socket.recv(&mut buf).await {
                        Ok(n) => {
                            if tx.send((i, buf[..n].to_vec())).await.is_err() {
                                return;
                            }
                        }
                        Err(error) => {
                            tracing::warn!(interface = %link.name, %error, "l2: receive failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            });
        }
    }
    rx
}

pub async fn run(links: Vec<Link>, inputs: Inputs, shutdown: CancellationToken) {
    let links: Vec<Arc<Link>> = links.into_iter().map(Arc::new).collect();
    // Readers only turn frames into messages; the JoinSet aborts them when this task ends.
    let mut readers = JoinSet::new();
    let mut frames = spawn_readers(&links, &mut readers);
    let mut snapshots = inputs.published.subscribe();
    let mut health = inputs.health.subscribe();
    let mut members = inputs.members.subscribe();
    let mut state = State {
        links,
        inputs,
        owned: BTreeSet::new(),
        vips: HashMap::new(),
        repeats: Vec::new(),
    };
    state.reconcile();
    loop {
        let next_repeat = state.repeats.iter().map(|r| r.at).min();
        let repeat = async {
            match next_repeat {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some((link, frame)) = frames.recv() => state.answer(link, &frame),
            () = repeat => state.repeat_due(),
            Ok(()) = snapshots.changed() => state.reconcile(),
            Ok(()) = health.changed() => state.reconcile(),
            Ok(()) = members.changed() => state.reconcile(),
        }
    }
    for ip in std::mem::take(&mut state.owned) {
        state.metrics(ip).owned.set(0.0);
    }
}

impl State {
    fn metrics(&mut self, ip: IpAddr) -> &VipMetrics {
        self.vips.entry(ip).or_insert_with(|| VipMetrics::new(ip))
    }

    /// Recomputes ownership and publishes it; starts announcing VIPs taken over and stops
    /// answering for VIPs lost.
    fn reconcile(&mut self) {
        let snapshot = self.inputs.published.load();
        let owners = crate::owner::owners(
            &snapshot,
            &self.inputs.health.load(),
            &self.inputs.members.load(),
        );
        let now_owned: BTreeSet<IpAddr> = owners
            .vips
            .iter()
            .filter(|v| v.owned_by_me)
            .map(|v| v.ip)
            .collect();
        let l2 = &snapshot.config.l2;
        for lost in self
            .owned
            .difference(&now_owned)
            .copied()
            .collect::<Vec<_>>()
        {
            tracing::info!(vip = %lost, "l2: VIP released");
            self.metrics(lost).owned.set(0.0);
            self.repeats.retain(|r| r.vip != lost);
        }
        for won in now_owned
            .difference(&self.owned)
            .copied()
            .collect::<Vec<_>>()
        {
            tracing::info!(vip = %won, "l2: VIP taken over");
            self.metrics(won).owned.set(1.0);
            if l2.gratuitous_count > 0 {
                self.announce(won);
                self.repeats.push(Repeat {
                    at: Instant::now() + Duration::from_millis(l2.gratuitous_interval_ms),
                    vip: won,
                    left: l2.gratuitous_count - 1,
                });
            }
        }
        self.owned = now_owned;
        // Requests are counted for every L2 VIP, owned or not.
        let known: BTreeSet<IpAddr> = owners.vips.iter().map(|v| v.ip).collect();
        self.vips.retain(|ip, _| known.contains(ip));
        for ip in known {
            self.metrics(ip);
        }
        self.inputs.owners.publish(owners);
    }

    fn repeat_due(&mut self) {
        let now = Instant::now();
        let interval = Duration::from_millis(
            self.inputs
                .published
                .load()
                .config
                .l2
                .gratuitous_interval_ms,
        );
        let due: Vec<IpAddr> = self
            .repeats
            .iter()
            .filter(|r| r.at <= now && r.left > 0)
            .map(|r| r.vip)
            .collect();
        for vip in due {
            self.announce(vip);
        }
        for r in &mut self.repeats {
            if r.at <= now {
                r.left = r.left.saturating_sub(1);
                r.at = now + interval;
            }
        }
        self.repeats.retain(|r| r.left > 0);
    }

    /// Sends one gratuitous ARP / unsolicited advertisement for `vip` on every link.
    fn announce(&mut self, vip: IpAddr) {
        let links = self.links.clone();
        for link in &links {
            let (socket, frame) = match vip {
                IpAddr::V4(v4) => (&link.arp, arp::gratuitous(v4, link.mac)),
                IpAddr::V6(v6) => (&link.solicitations, ndp::unsolicited(v6, link.mac)),
            };
            match socket.send(&frame) {
                Ok(()) => self.metrics(vip).gratuitous.increment(1),
                Err(error) => {
                    tracing::warn!(interface = %link.name, %vip, %error, "l2: announce failed");
                }
            }
        }
    }

    fn ignored(reason: Ignored) {
        metrics::counter!(IGNORED, "reason" => reason.label()).increment(1);
    }

    /// Answers one received frame if it asks for a VIP this node owns.
    fn answer(&mut self, link: usize, frame: &[u8]) {
        let link = self.links[link].clone();
        // Our own frames, looped back by the interface, ask nothing.
        if frame.get(6..12) == Some(&link.mac.0[..]) {
            return;
        }
        let is_arp = frame.get(12..14) == Some(&ETHERTYPE_ARP.to_be_bytes()[..]);
        let (vip, reply, socket) = if is_arp {
            match arp::parse_request(frame) {
                Ok(r) => (IpAddr::V4(r.target_ip), Reply::Arp(r), &link.arp),
                Err(reason) => return Self::ignored(reason),
            }
        } else {
            match ndp::parse_solicitation(frame) {
                Ok(s) => (IpAddr::V6(s.target), Reply::Nd(s), &link.solicitations),
                Err(reason) => return Self::ignored(reason),
            }
        };
        let Some(metrics) = self.vips.get(&vip) else {
            // Asks for an address that is not an L2 VIP: the kernel's business.
            return;
        };
        metrics.requests.increment(1);
        if !self.owned.contains(&vip) {
            return;
        }
        let out = reply.build(link.mac);
        match socket.send(&out) {
            Ok(()) => metrics.responses.increment(1),
            Err(error) => tracing::warn!(interface = %link.name, %vip, %error, "l2: reply failed"),
        }
    }
}

enum Reply {
    Arp(arp::Request),
    Nd(ndp::Solicitation),
}

impl Reply {
    fn build(&self, mac: Mac) -> Vec<u8> {
        match self {
            Reply::Arp(r) => arp::reply(r, r.target_ip, mac),
            Reply::Nd(s) => ndp::advertise(s, s.target, mac),
        }
    }
}
