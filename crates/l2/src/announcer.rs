//! The announcer task, a thin driver around the [`Speaker`]: it turns socket reads, changes
//! of the snapshot, endpoint health and the member set, and the speaker's repeat timer into
//! calls to the speaker, sends what the speaker hands out, keeps the metrics and publishes
//! the VIP owners.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use dockline_model::{LiveHealth, LiveMembers, LiveOwners, Published};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::link::Link;
use crate::metrics::Metrics;
use crate::speaker::{Event, Received, Speaker, TransmitKind};
use crate::throttle::ConflictThrottle;

/// The live inputs the announcer reads and the one it writes.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The desired state: VIPs, services, the `[l2]` settings.
    pub published: Arc<Published>,
    /// Endpoint readiness, for VIPs under `external_traffic_policy = "Local"`.
    pub health: Arc<LiveHealth>,
    /// The live nodes the VIPs are spread over.
    pub members: Arc<LiveMembers>,
    /// Written: the owner of every L2 VIP, as this node computes it.
    pub owners: Arc<LiveOwners>,
}

/// Starts one reader per link and protocol; each only turns frames into messages.
fn spawn_readers(
    links: &[Arc<Link>],
    readers: &mut JoinSet<()>,
) -> mpsc::Receiver<(usize, Vec<u8>)> {
    let (tx, rx) = mpsc::channel(1024);
    for (index, link) in links.iter().enumerate() {
        for ipv6 in [false, true] {
            let (link, tx) = (link.clone(), tx.clone());
            readers.spawn(async move {
                let socket = if ipv6 {
                    &link.neighbor_discovery
                } else {
                    &link.arp
                };
                let mut buf = vec![0u8; 2048];
                loop {
                    match socket.recv(&mut buf).await {
                        Ok(n) => {
                            if tx.send((index, buf[..n].to_vec())).await.is_err() {
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

/// Answers and announces on `links` until `shutdown`. On return no reader is left and
/// every socket is closed, so nothing answers for a VIP any more.
pub(crate) async fn run(links: Vec<Link>, inputs: Inputs, shutdown: CancellationToken) {
    let links: Vec<Arc<Link>> = links.into_iter().map(Arc::new).collect();
    let mut readers = JoinSet::new();
    let mut frames = spawn_readers(&links, &mut readers);
    let mut snapshots = inputs.published.subscribe();
    let mut health = inputs.health.subscribe();
    let mut members = inputs.members.subscribe();
    let mut announcer = Announcer {
        speaker: Speaker::new(links.iter().map(|link| link.mac).collect()),
        links,
        inputs,
        metrics: Metrics::default(),
        conflicts_logged: BTreeSet::new(),
        conflict_throttle: ConflictThrottle::default(),
    };
    announcer.follow_inputs();
    loop {
        // What a call below queued goes out before the next wait, and the repeat timer is
        // read after the sends that moved it.
        announcer.transmit();
        let timeout = announcer.speaker.poll_timeout();
        let repeat = async {
            match timeout {
                Some(at) => tokio::time::sleep_until(Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        let conflicts_due = announcer.conflict_throttle.due().map(Instant::from_std);
        let publish_conflicts = async {
            match conflicts_due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        // Biased: a stop or an ownership change is seen before any further frame is
        // answered, and frames come last so that a flood of them cannot starve the rest.
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Ok(()) = snapshots.changed() => announcer.follow_inputs(),
            Ok(()) = health.changed() => announcer.follow_inputs(),
            Ok(()) = members.changed() => announcer.follow_inputs(),
            () = repeat => announcer.on_timer(),
            () = publish_conflicts => announcer.publish_owners(),
            Some((link, frame)) = frames.recv() => announcer.receive(link, &frame),
        }
    }
    readers.shutdown().await;
    announcer.stop();
}

/// The state the announcer task owns.
struct Announcer {
    links: Vec<Arc<Link>>,
    inputs: Inputs,
    speaker: Speaker,
    metrics: Metrics,
    /// A VIP's first conflict is logged; later ones are counted, with the last MAC in
    /// `/status`. Keyed by VIP alone, so spoofed MACs cannot make it grow.
    conflicts_logged: BTreeSet<IpAddr>,
    /// Holds back the owners' republishing for conflicts during a flood.
    conflict_throttle: ConflictThrottle,
}

impl Announcer {
    /// Hands the current inputs to the speaker and publishes the owners it computed.
    fn follow_inputs(&mut self) {
        let snapshot = self.inputs.published.load();
        self.speaker.on_inputs(
            &snapshot,
            &self.inputs.health.load(),
            &self.inputs.members.load(),
            now(),
        );
        self.after_change();
    }

    /// A repeat or the end of a takeover hold is due.
    fn on_timer(&mut self) {
        self.speaker.handle_timeout(now());
        self.after_change();
    }

    /// Counts and logs the takeovers and releases, and publishes the owners.
    fn after_change(&mut self) {
        while let Some(event) = self.speaker.poll_event() {
            match event {
                Event::TakenOver(vip) => {
                    tracing::info!(%vip, "l2: VIP taken over");
                    self.metrics.vip(vip).owned.set(1.0);
                }
                Event::Released(vip) => {
                    tracing::info!(%vip, "l2: VIP released");
                    self.metrics.vip(vip).owned.set(0.0);
                }
            }
        }
        let owners = self.speaker.owners();
        self.metrics.follow(owners.vips.iter().map(|v| v.ip));
        self.publish_owners();
    }

    fn publish_owners(&mut self) {
        self.inputs.owners.publish(self.speaker.owners().clone());
        self.conflict_throttle.published(now());
    }

    /// Hands one received frame to the speaker and counts it.
    fn receive(&mut self, link: usize, frame: &[u8]) {
        match self.speaker.on_frame(link, frame) {
            Received::Answered(vip) | Received::NotOwned(vip) => {
                self.metrics.vip(vip).requests.increment(1);
            }
            Received::Conflict { vip, mac } => {
                self.metrics.vip(vip).conflicts.increment(1);
                if self.conflicts_logged.insert(vip) {
                    tracing::warn!(%vip, %mac, "l2: another MAC claims a VIP this node answers for");
                }
                // The count in the owners tells membership to compare views now; during
                // a flood, later counts follow once a period (see `throttle`).
                if self.conflict_throttle.conflict(now()) {
                    self.publish_owners();
                }
            }
            Received::Ignored(reason) => self.metrics.ignored(reason),
            Received::NotVip | Received::Looped => {}
        }
    }

    /// Sends everything the speaker has for now; a frame that fails is logged and left to
    /// the next request or repeat.
    fn transmit(&mut self) {
        while let Some(transmit) = self.speaker.poll_transmit(now()) {
            let link = &self.links[transmit.link];
            let vip = transmit.vip;
            let sent = link.socket_for(vip).send(&transmit.frame);
            let metrics = self.metrics.vip(vip);
            match (transmit.kind, sent) {
                (TransmitKind::Reply, Ok(())) => metrics.responses.increment(1),
                (TransmitKind::Gratuitous, Ok(())) => metrics.gratuitous.increment(1),
                (TransmitKind::Reply, Err(error)) => {
                    tracing::warn!(interface = %link.name, %vip, %error, "l2: reply failed");
                }
                (TransmitKind::Gratuitous, Err(error)) => {
                    tracing::warn!(interface = %link.name, %vip, %error, "l2: announce failed");
                }
            }
        }
    }

    /// Shows every VIP as no longer owned once nothing answers for it.
    fn stop(mut self) {
        for vip in self.speaker.owned() {
            self.metrics.vip(vip).owned.set(0.0);
        }
    }
}

/// The driver's clock (tokio's, so that a paused test runtime controls it too).
fn now() -> std::time::Instant {
    Instant::now().into_std()
}
