//! The routes component: keeps the kernel's routes in line with the snapshot.
//!
//! Today that is the service addresses this node serves (ClusterIPs while the proxy is on,
//! LoadBalancer IPs), made local by `local` routes on `lo` (see [`netlink`]). It reconciles at
//! start, after every config swap and every [`RESYNC`] (a route someone deleted by hand comes
//! back), and removes every route it made when the daemon stops.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod desired;
mod netlink;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use dockline_model::{Published, Snapshot};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use desired::{Diff, diff, local_addresses};
pub use netlink::{PROTOCOL, is_dockline_route, list_routes, route_address};

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
    published: Arc<Published>,
    /// Subscribed at bind, so no snapshot published after the one bound with is missed.
    changes: watch::Receiver<u64>,
}

impl Routes {
    /// Connects and applies `snapshot` (the one about to be published); a route the kernel
    /// refuses now (no CAP_NET_ADMIN, say) stops the start with the address and the reason.
    /// Later snapshots are followed from `published`.
    pub async fn bind(snapshot: &Snapshot, published: Arc<Published>) -> Result<Self, RoutesError> {
        let routes = Routes {
            netlink: netlink::Netlink::connect().await?,
            changes: published.subscribe(),
            published,
        };
        let errors = routes.reconcile(snapshot).await?;
        match errors.into_iter().next() {
            Some(first) => Err(first),
            None => Ok(routes),
        }
    }

    /// Follows the snapshot until `shutdown`, then removes dockline's routes.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), RoutesError> {
        let mut resync = tokio::time::interval(RESYNC);
        resync.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                changed = self.changes.changed() => if changed.is_err() { break },
                _ = resync.tick() => {}
            }
            for error in self.reconcile(&self.published.load()).await? {
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
        Ok(())
    }

    /// Applies the difference; listing failures end the component, a refused change is
    /// returned (and counted) so the rest still applies.
    async fn reconcile(&self, snapshot: &Snapshot) -> Result<Vec<RoutesError>, RoutesError> {
        let desired: BTreeSet<IpAddr> = local_addresses(snapshot);
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
}
