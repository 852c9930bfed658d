//! The routes component: keeps the kernel's routes in line with the snapshot.
//!
//! Today that is the service addresses this node serves (ClusterIPs while the proxy is on,
//! LoadBalancer IPs), made local by `local` routes on `lo` (see [`netlink`]). It reconciles at
//! start, after every config swap and every [`RESYNC`] (a route someone deleted by hand comes
//! back), and removes every route it made when the daemon stops. Routes an earlier run left
//! (one that was killed) are found by their protocol number at start: the ones still
//! wanted are kept, the others removed, and the log says how many of each.
//!
//! A local address is one the kernel answers ARP for on any interface whose `arp_ignore`
//! is 0, which would let every node answer for every VIP. So before the first address is
//! made local, the component sets strict ARP on `all` ([`STRICT_ARP`], kube-proxy's
//! `strictARP`): the kernel then answers only for addresses configured on the receiving
//! interface, which dockline's local routes are not, on every interface, present or
//! future. Only the L2 announcer answers for a VIP, and only while it owns it. The host's
//! values are recorded under /run/dockline and restored at stop, or after a kill at the
//! next start ([`sysctl`]).

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod desired;
mod netlink;
pub mod sysctl;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dockline_model::{Published, Snapshot};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use desired::{Diff, diff, local_addresses};
pub use netlink::{PROTOCOL, is_dockline_route, list_routes, route_address};

/// The ARP settings that keep the kernel from answering for local routes, on `all` (the
/// kernel takes the larger of `all` and the interface's value): answer only for addresses
/// of the receiving interface, and never use a VIP as the sender of the kernel's own ARP
/// requests.
pub const STRICT_ARP: [(&str, &str); 2] = [
    ("/proc/sys/net/ipv4/conf/all/arp_ignore", "1"),
    ("/proc/sys/net/ipv4/conf/all/arp_announce", "2"),
];

/// How often the kernel's routes are compared with the snapshot without a config change.
pub const RESYNC: Duration = Duration::from_secs(10);

const LOCAL_ROUTES: &str = "dockline_local_routes";
const ROUTE_ERRORS: &str = "dockline_route_errors_total";

/// Why a route could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum RoutesError {
    /// No netlink socket could be opened.
    #[error("routes: cannot open a netlink socket: {0}")]
    Connect(std::io::Error),
    /// The routes go on `lo`, which every namespace has unless someone deleted it.
    #[error("routes: the loopback interface lo is missing")]
    NoLoopback,
    /// The kernel refused a request: what was asked, and its answer.
    #[error("routes: {0}: {1}")]
    Netlink(String, rtnetlink::Error),
    /// An address rtnetlink could not turn into a host-route request.
    #[error("routes: {0} cannot be a route destination: {1}")]
    Invalid(IpAddr, String),
    /// Strict ARP could not be set (or recorded), so no address is made local.
    #[error("routes: cannot set {}: {error}; no service address is made local without it", path.display())]
    Sysctl {
        /// The sysctl's file, or the record under /run/dockline.
        path: PathBuf,
        /// What the kernel said.
        error: std::io::Error,
    },
}

/// Describes the component's metrics; called once at start-up.
pub fn describe_metrics() {
    metrics::describe_gauge!(
        LOCAL_ROUTES,
        "Service addresses made local by dockline's routes"
    );
    metrics::describe_counter!(ROUTE_ERRORS, "Route changes the kernel refused");
}

/// The routes component, connected and reconciled once.
#[derive(Debug)]
pub struct Routes {
    netlink: netlink::Netlink,
    /// Strict ARP, set before the first address is made local and kept until the stop.
    strict_arp: Option<sysctl::Sysctls>,
    published: Arc<Published>,
    /// Subscribed at bind, so no snapshot published after the one bound with is missed.
    changes: watch::Receiver<u64>,
}

impl Routes {
    /// Connects and applies `snapshot` (the one about to be published); a route the kernel
    /// refuses now (no CAP_NET_ADMIN, say) stops the start with the address and the reason.
    /// Later snapshots are followed from `published`.
    pub async fn bind(snapshot: &Snapshot, published: Arc<Published>) -> Result<Self, RoutesError> {
        let mut routes = Routes {
            netlink: netlink::Netlink::connect().await?,
            strict_arp: None,
            changes: published.subscribe(),
            published,
        };
        let left = routes.netlink.list().await?;
        if !left.is_empty() {
            let wanted = local_addresses(snapshot);
            tracing::info!(
                kept = left.intersection(&wanted).count(),
                removed = left.difference(&wanted).count(),
                "local routes left by a run that did not stop cleanly"
            );
        }
        let errors = routes.reconcile(snapshot).await?;
        match errors.into_iter().next() {
            Some(first) => Err(first),
            None => Ok(routes),
        }
    }

    /// Follows the snapshot until `shutdown`, then removes dockline's routes.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), RoutesError> {
        let published = self.published.clone();
        let mut resync = tokio::time::interval(RESYNC);
        resync.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                changed = self.changes.changed() => if changed.is_err() { break },
                _ = resync.tick() => {}
            }
            for error in self.reconcile(&published.load()).await? {
                tracing::error!(%error, "route not applied");
            }
        }
        let current = self.netlink.list().await?;
        for ip in current {
            if let Err(error) = self.netlink.remove(ip).await {
                tracing::warn!(%error, "route left behind");
            }
        }
        metrics::gauge!(LOCAL_ROUTES).set(0.0);
        tracing::info!("local routes removed");
        // Only now that nothing is local any more may the kernel answer ARP as before.
        drop(self.strict_arp.take());
        Ok(())
    }

    /// Applies the difference; listing failures end the component, a refused change is
    /// returned (and counted) so the rest still applies.
    async fn reconcile(&mut self, snapshot: &Snapshot) -> Result<Vec<RoutesError>, RoutesError> {
        let desired: BTreeSet<IpAddr> = local_addresses(snapshot);
        if !desired.is_empty()
            && self.strict_arp.is_none()
            && let Err(error) = self.set_strict_arp()
        {
            // Without strict ARP every node would answer for every VIP: add nothing.
            return Ok(vec![error]);
        }
        let current = self.netlink.list().await?;
        let Diff { add, remove } = diff(&current, &desired);
        let mut errors = Vec::new();
        for ip in &add {
            match self.netlink.add(*ip).await {
                Ok(()) => tracing::debug!(%ip, "local route added"),
                Err(e) => errors.push(e),
            }
        }
        let missing = errors.len();
        for ip in &remove {
            match self.netlink.remove(*ip).await {
                Ok(()) => tracing::debug!(%ip, "local route removed"),
                Err(e) => errors.push(e),
            }
        }
        if !add.is_empty() || !remove.is_empty() {
            tracing::info!(
                added = add.len(),
                removed = remove.len(),
                total = desired.len(),
                "local routes reconciled"
            );
        }
        metrics::counter!(ROUTE_ERRORS).increment(errors.len() as u64);
        metrics::gauge!(LOCAL_ROUTES).set((desired.len() - missing) as f64);
        Ok(errors)
    }

    fn set_strict_arp(&mut self) -> Result<(), RoutesError> {
        let wanted: Vec<(PathBuf, String)> = STRICT_ARP
            .iter()
            .map(|(path, value)| (PathBuf::from(path), (*value).to_owned()))
            .collect();
        let held = sysctl::Sysctls::apply("routes", &wanted)
            .map_err(|(path, error)| RoutesError::Sysctl { path, error })?;
        tracing::info!("strict ARP set on all interfaces (arp_ignore=1, arp_announce=2)");
        self.strict_arp = Some(held);
        Ok(())
    }
}
