//! dockline's pod network: how pods on one node reach pods on another.
//!
//! Two modes, chosen by `network.tunnel_mode` and switched on reload:
//! - Classic: a route per peer's pod range via the peer's internal IP (one L2 segment);
//! - VXLAN: a TAP device and a userspace VTEP (RFC 7348) over UDP, with a route per peer's
//!   pod range via the peer's overlay address, so nodes on different segments share one pod
//!   network.
//!
//! Both modes compute their routes from the same peer list ([`plan`]) and keep them with
//! the same reconcile loop, which is why they live in one crate. The protocol parts
//! ([`vxlan`]) take bytes and `now` and do no I/O. A mode switch is a restart of this
//! component (see [`restart_key`]): the old mode removes its routes and device, the new one
//! brings up its own, with no restart of the daemon.

#![warn(missing_docs, unreachable_pub)]

mod batch;
mod metrics;
mod netlink;
pub mod offload;
mod overlay;
pub mod plan;
pub mod vxlan;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dockline_config::{Config, TunnelMode};
use dockline_model::{LiveMembers, MemberSet, Published, Snapshot};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use metrics::describe_metrics;
pub use plan::{PodRoute, Unreachable};

use overlay::{Overlay, OverlaySettings};

/// How often the routes are compared with the kernel's (and the forwarding table aged)
/// without any change.
pub const RESYNC: Duration = Duration::from_secs(10);

/// Why the pod network could not start or keep going.
#[derive(Debug, thiserror::Error)]
pub enum PodNetError {
    /// No netlink socket could be opened.
    #[error("podnet: cannot open a netlink socket: {0}")]
    Netlink(std::io::Error),
    /// The kernel refused a request: what was asked, and its answer.
    #[error("podnet: {0} (changing routes needs CAP_NET_ADMIN): {1}")]
    Kernel(String, rtnetlink::Error),
    /// A route rtnetlink could not express.
    #[error("podnet: {0} cannot be a route: {1}")]
    Invalid(PodRoute, String),
    /// The overlay device could not be made.
    #[error("podnet: cannot create the TAP device {0} (needs CAP_NET_ADMIN and /dev/net/tun): {1}")]
    Device(String, std::io::Error),
    /// A VXLAN socket could not be opened.
    #[error("podnet: cannot open the VXLAN sockets on {0} and source ports in 49152-65535: {1}")]
    Socket(SocketAddr, std::io::Error),
    /// Reading the device or the socket failed.
    #[error("podnet: the VXLAN data path failed: {0}")]
    DataPath(std::io::Error),
    /// A setting `check` lets through that this build cannot run.
    #[error("podnet: {0} is not supported yet")]
    Unsupported(&'static str),
}

impl std::fmt::Display for PodRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} via {}", self.destination, self.gateway)
    }
}

/// The pod network runs on a node with a pod range.
pub fn enabled(config: &Config) -> bool {
    config.node.pod_cidr.is_some()
}

/// What the component takes at bind: the mode, and in VXLAN mode everything the device and
/// sockets are made from. A change restarts it, which is how a mode switch happens; Classic
/// mode follows everything else live.
pub fn restart_key(config: &Config) -> String {
    match config.network.tunnel_mode {
        TunnelMode::Classic => "Classic".to_owned(),
        TunnelMode::Vxlan => format!(
            "VXLAN {:?} {:?} {:?} {}",
            config.network.vxlan,
            config.node.internal_ip,
            config.node.pod_cidr,
            config.cluster.pod_cidr
        ),
    }
}

/// What `/status` shows of the pod network.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodNetStatus {
    /// "Classic" or "VXLAN".
    pub mode: String,
    /// The overlay device (VXLAN).
    pub device: Option<String>,
    /// The overlay device's MTU (VXLAN).
    pub mtu: Option<u32>,
    /// This node's overlay address (VXLAN).
    pub overlay_address: Option<String>,
    /// The VTEPs frames go to and are accepted from (VXLAN).
    pub vteps: Vec<IpAddr>,
    /// Entries of the forwarding table (VXLAN).
    pub fdb_entries: usize,
    /// The pod routes installed.
    pub routes: Vec<PodRoute>,
    /// Peers Classic mode cannot route to: not on a directly connected network.
    pub unreachable: Vec<Unreachable>,
    /// Received packets dropped, by reason (VXLAN).
    pub drops: Vec<(String, u64)>,
}

/// The pod network component, bound and reconciled once.
#[derive(Debug)]
pub struct PodNet {
    netlink: netlink::Netlink,
    overlay: Option<Overlay>,
    published: Arc<Published>,
    members: Arc<LiveMembers>,
    /// Both subscribed at bind, so no change after the bound snapshot is missed.
    config_changes: watch::Receiver<u64>,
    member_changes: watch::Receiver<u64>,
    routes_gauge: ::metrics::Gauge,
    status: watch::Sender<PodNetStatus>,
}

impl PodNet {
    /// Brings up the mode of `snapshot` (the one about to be published): in VXLAN mode the
    /// device and sockets, then the routes. A refused route (no CAP_NET_ADMIN, say) fails
    /// the bind with the route and the reason.
    pub async fn bind(
        snapshot: &Snapshot,
        published: Arc<Published>,
        members: Arc<LiveMembers>,
    ) -> Result<Self, PodNetError> {
        let config = &snapshot.config;
        let overlay = match config.network.tunnel_mode {
            TunnelMode::Classic => None,
            TunnelMode::Vxlan => Some(Overlay::bind(
                overlay_settings(config)?,
                metrics::Counters::new(),
            )?),
        };
        let mode = if overlay.is_some() {
            "VXLAN"
        } else {
            "Classic"
        };
        let mut podnet = PodNet {
            netlink: netlink::Netlink::connect()?,
            overlay,
            config_changes: published.subscribe(),
            member_changes: members.subscribe(),
            published,
            members,
            routes_gauge: metrics::pod_routes(mode),
            status: watch::Sender::new(PodNetStatus::default()),
        };
        let errors = podnet.reconcile(config, &podnet.members.load()).await?;
        match errors.into_iter().next() {
            Some(first) => Err(first),
            None => Ok(podnet),
        }
    }

    /// A receiver of what `/status` shows, updated after every change.
    pub fn status(&self) -> watch::Receiver<PodNetStatus> {
        self.status.subscribe()
    }

    /// Carries frames (VXLAN) and follows the config and membership until `shutdown`, then
    /// removes the routes and the device.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), PodNetError> {
        let mut resync = tokio::time::interval(RESYNC);
        resync.tick().await;
        let result = loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => Event::Stop,
                error = data_path_failed(self.overlay.as_mut()) => Event::Failed(error),
                changed = self.config_changes.changed() => match changed {
                    Ok(()) => Event::Changed,
                    Err(_) => Event::Stop,
                },
                changed = self.member_changes.changed() => match changed {
                    Ok(()) => Event::Changed,
                    Err(_) => Event::Stop,
                },
                _ = resync.tick() => Event::Resync,
            };
            let now = Instant::now();
            match (event, &mut self.overlay) {
                (Event::Stop, _) => break Ok(()),
                (Event::Failed(error), _) => break Err(PodNetError::DataPath(error)),
                (Event::Resync, Some(overlay)) => {
                    overlay.vtep().fdb().expire(now);
                }
                _ => {}
            }
            let snapshot = self.published.load();
            let members = self.members.load();
            match self.reconcile(&snapshot.config, &members).await {
                Ok(errors) => {
                    for error in errors {
                        tracing::error!(%error, "pod route not applied");
                    }
                }
                Err(error) => break Err(error),
            }
        };
        self.remove_routes().await;
        if let Some(overlay) = self.overlay.take() {
            tracing::info!(device = overlay.settings.device, "VXLAN overlay down");
        }
        result
    }

    /// Brings the routes (and in VXLAN mode the known VTEPs) in line with `config` and
    /// `members`. Listing failures are returned as the error; refused changes are returned
    /// in the list (and counted) so the rest still applies.
    async fn reconcile(
        &mut self,
        config: &Config,
        members: &MemberSet,
    ) -> Result<Vec<PodNetError>, PodNetError> {
        let peers = plan::peers(config, members);
        let cluster_pods = config.cluster.pod_cidr;
        let (desired, unreachable, device) = match &mut self.overlay {
            Some(overlay) => {
                overlay.vtep().fdb().set_vteps(peers.iter().map(|peer| {
                    let address = plan::overlay_address(peer.pod_cidr, cluster_pods).addr();
                    (peer.internal_ip, plan::device_mac(address))
                }));
                let routes = plan::overlay_routes(&peers, cluster_pods);
                (routes, Vec::new(), Some(overlay.index))
            }
            None => {
                let connected = self.netlink.connected().await?;
                let (routes, unreachable) = plan::classic_routes(&peers, &connected);
                (routes, unreachable, None)
            }
        };
        let desired: BTreeSet<PodRoute> = desired.into_iter().collect();
        let current = self.netlink.list().await?;
        let mut errors = Vec::new();
        let mut added = 0;
        for route in desired.difference(&current) {
            match self.netlink.add(*route, device).await {
                Ok(()) => added += 1,
                Err(error) => errors.push(error),
            }
        }
        let stale: Vec<PodRoute> = current.difference(&desired).copied().collect();
        for route in &stale {
            if let Err(error) = self.netlink.remove(*route).await {
                errors.push(error);
            }
        }
        if added > 0 || !stale.is_empty() {
            tracing::info!(
                added,
                removed = stale.len(),
                total = desired.len(),
                "pod routes reconciled"
            );
        }
        let previous = self.status.borrow().unreachable.clone();
        if unreachable != previous {
            for peer in &unreachable {
                tracing::warn!(
                    node = peer.name,
                    internal_ip = %peer.internal_ip,
                    "Classic mode needs one L2 segment: this node is on no directly connected network, so it gets no pod route (use VXLAN)"
                );
            }
        }
        metrics::route_errors(errors.len());
        self.routes_gauge
            .set(desired.len().saturating_sub(errors.len()) as f64);
        self.publish_status(desired.into_iter().collect(), unreachable);
        Ok(errors)
    }

    fn publish_status(&mut self, routes: Vec<PodRoute>, unreachable: Vec<Unreachable>) {
        let mut status = PodNetStatus {
            mode: "Classic".into(),
            routes,
            unreachable,
            ..PodNetStatus::default()
        };
        if let Some(overlay) = &mut self.overlay {
            let mut vtep = overlay.vtep();
            let fdb = vtep.fdb();
            metrics::fdb_entries(fdb.len());
            status.mode = "VXLAN".into();
            status.device = Some(overlay.settings.device.clone());
            status.mtu = Some(overlay.settings.mtu);
            status.overlay_address = Some(overlay.settings.address.to_string());
            status.vteps = fdb.vteps().collect();
            status.fdb_entries = fdb.len();
            status.drops = overlay.drops();
        }
        self.status.send_replace(status);
    }

    /// Removes every pod route dockline made (at stop, and so before a mode switch).
    async fn remove_routes(&self) {
        let current = match self.netlink.list().await {
            Ok(current) => current,
            Err(error) => {
                tracing::warn!(%error, "pod routes left behind");
                return;
            }
        };
        for route in current {
            if let Err(error) = self.netlink.remove(route).await {
                tracing::warn!(%error, "pod route left behind");
            }
        }
        self.routes_gauge.set(0.0);
        tracing::info!("pod routes removed");
    }
}

/// What the run loop woke up for.
enum Event {
    Stop,
    Failed(std::io::Error),
    Changed,
    Resync,
}

/// Why the overlay's data path stopped on its own; never ready in Classic mode.
async fn data_path_failed(overlay: Option<&mut Overlay>) -> std::io::Error {
    match overlay {
        Some(overlay) => overlay.failed().await,
        None => std::future::pending().await,
    }
}

/// The overlay's settings from the config (validation has checked they are present).
fn overlay_settings(config: &Config) -> Result<OverlaySettings, PodNetError> {
    let vxlan = &config.network.vxlan;
    let Some(local) = config.node.internal_ip else {
        return Err(PodNetError::Unsupported("VXLAN without node.internal_ip"));
    };
    let Some(pod_cidr) = config.node.pod_cidr else {
        return Err(PodNetError::Unsupported("VXLAN without node.pod_cidr"));
    };
    Ok(OverlaySettings {
        device: vxlan.device.clone(),
        vni: vxlan.vni,
        port: vxlan.port,
        local,
        address: plan::overlay_address(pod_cidr, config.cluster.pod_cidr),
        mtu: plan::overlay_mtu(vxlan.underlay_mtu, local.is_ipv6()),
    })
}
