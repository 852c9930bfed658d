//! What the listener and connection tasks read: the routing table from each listening
//! address to the service port it forwards to, swapped whole on reload, plus the live
//! health verdicts and the resources every connection shares. The control side (`Proxy`
//! in lib.rs) writes the table; the tasks only read it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use dockline_model::LiveHealth;

use crate::frontends::{Frontend, ListenAddr};
use crate::metrics;
use crate::pool::Pool;
use crate::splice::PipePool;
use crate::throttle::Throttle;

/// Timeouts in force, from `[proxy]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) connect_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) udp_idle_timeout: Duration,
}

impl Limits {
    /// The limits `[proxy]` sets.
    pub(crate) fn new(config: &dockline_config::Proxy) -> Limits {
        Limits {
            connect_timeout: Duration::from_millis(config.connect_timeout_ms),
            idle_timeout: Duration::from_secs(config.idle_timeout_s),
            udp_idle_timeout: Duration::from_secs(config.udp_idle_timeout_s),
        }
    }
}

/// What every route of one routing table shares.
#[derive(Debug)]
pub(crate) struct Settings {
    /// This node's name, for `external_traffic_policy = "Local"`.
    pub(crate) node: Arc<str>,
    pub(crate) limits: Limits,
}

/// What a listener forwards to. One per listener, so what all share is behind one pointer.
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) frontend: Frontend,
    pub(crate) pool: Arc<Pool>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) metrics: Arc<metrics::PortCounters>,
}

/// The state shared by every listener and connection task.
#[derive(Debug)]
pub(crate) struct DataPlane {
    pub(crate) routes: ArcSwap<HashMap<ListenAddr, Arc<Route>>>,
    pub(crate) health: Arc<LiveHealth>,
    pub(crate) metrics: metrics::Global,
    pub(crate) pipes: PipePool,
    /// Logging of running out of descriptors or memory, which fails in bursts.
    pub(crate) exhausted: Throttle,
}

impl DataPlane {
    /// A plane with an empty routing table.
    pub(crate) fn new(health: Arc<LiveHealth>) -> DataPlane {
        DataPlane {
            routes: ArcSwap::default(),
            health,
            metrics: metrics::Global::new(),
            pipes: PipePool::default(),
            exhausted: Throttle::new(Duration::from_secs(1)),
        }
    }

    /// The route of a listener, if its service port is still configured.
    pub(crate) fn route(&self, at: &ListenAddr) -> Option<Arc<Route>> {
        self.routes.load().get(at).cloned()
    }
}
