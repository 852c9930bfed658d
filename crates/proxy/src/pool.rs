//! The endpoints of one service as the proxy sees them: which are candidates for a new
//! connection, the counters the balancing needs, the connection cap, and a drain token per
//! endpoint that closes its connections once a reload removed it and the grace passed.
//! A pool outlives reloads (only its service is swapped), so counters stay true.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use dockline_config::{LoadBalancing, TrafficPolicy};
use dockline_model::{HealthVerdicts, Service};
use tokio_util::sync::CancellationToken;

use crate::balance::{self, maglev};

/// The endpoints of one service and their open connections.
#[derive(Debug)]
pub(crate) struct Pool {
    service: ArcSwap<Service>,
    turn: AtomicUsize,
    total: AtomicUsize,
    endpoints: Mutex<HashMap<IpAddr, Open>>,
    /// The Maglev table for the last candidate list, rebuilt when the list changes.
    maglev: Mutex<Option<(Vec<IpAddr>, Arc<maglev::Table>)>>,
}

/// Open connections to one endpoint, and the token that ends them.
#[derive(Debug, Default)]
struct Open {
    count: usize,
    drain: CancellationToken,
}

/// One admitted connection; releases its counts on drop.
#[derive(Debug)]
pub(crate) struct Lease {
    pool: Arc<Pool>,
    /// The endpoint the connection goes to.
    pub(crate) endpoint: IpAddr,
    /// Cancelled when the endpoint is drained: the connection is to close.
    pub(crate) drain: CancellationToken,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool.total.fetch_sub(1, Ordering::Relaxed);
        let mut endpoints = self.pool.lock_endpoints();
        if let Some(open) = endpoints.get_mut(&self.endpoint) {
            open.count = open.count.saturating_sub(1);
        }
    }
}

/// Why no lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No endpoint is ready (or all that are were excluded).
    NoEndpoint,
    /// The service is at its `max_connections`.
    OverLimit,
}

impl Refusal {
    /// The `reason` label of the refused-connections counter.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refusal::NoEndpoint => "no_endpoint",
            Refusal::OverLimit => "max_connections",
        }
    }
}

impl Pool {
    pub(crate) fn new(service: Service) -> Arc<Pool> {
        Arc::new(Pool {
            service: ArcSwap::from_pointee(service),
            turn: AtomicUsize::new(0),
            total: AtomicUsize::new(0),
            endpoints: Mutex::new(HashMap::new()),
            maglev: Mutex::new(None),
        })
    }

    pub(crate) fn service(&self) -> Arc<Service> {
        self.service.load_full()
    }

    /// Takes a reload's version of the service; returns the endpoints it no longer has.
    pub(crate) fn update(&self, service: Service) -> Vec<IpAddr> {
        let gone = self
            .service
            .load()
            .endpoints
            .iter()
            .map(|e| e.ip)
            .filter(|ip| !service.endpoints.iter().any(|e| e.ip == *ip))
            .collect();
        self.service.store(Arc::new(service));
        gone
    }

    /// Closes the connections of `endpoint` unless a reload brought it back meanwhile.
    pub(crate) fn drain(&self, endpoint: IpAddr) {
        let present = self
            .service
            .load()
            .endpoints
            .iter()
            .any(|e| e.ip == endpoint);
        if !present {
            if let Some(open) = self.lock_endpoints().remove(&endpoint) {
                open.drain.cancel();
            }
        }
    }

    /// Closes every connection: the service is gone.
    pub(crate) fn drain_all(&self) {
        for (_, open) in self.lock_endpoints().drain() {
            open.drain.cancel();
        }
    }

    /// Picks a ready endpoint for a new connection from `client` and admits it, skipping
    /// `tried` (endpoints that just failed to connect).
    pub(crate) fn lease(
        self: &Arc<Self>,
        client: IpAddr,
        external: bool,
        node: &str,
        health: &HealthVerdicts,
        tried: &[IpAddr],
    ) -> Result<Lease, Refusal> {
        let service = self.service.load();
        let local_only = external && service.external_traffic_policy == TrafficPolicy::Local;
        let candidates: Vec<IpAddr> = health
            .ready_endpoints(&service)
            .filter(|e| !local_only || e.node.as_deref() == Some(node))
            .map(|e| e.ip)
            .filter(|ip| !tried.contains(ip))
            .collect();
        if candidates.is_empty() {
            return Err(Refusal::NoEndpoint);
        }
        let cap = service.max_connections.map_or(usize::MAX, |m| m as usize);
        if self.total.fetch_add(1, Ordering::Relaxed) >= cap {
            self.total.fetch_sub(1, Ordering::Relaxed);
            return Err(Refusal::OverLimit);
        }
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        let mut endpoints = self.lock_endpoints();
        let index = match service.load_balancing {
            LoadBalancing::RoundRobin => balance::round_robin(turn, candidates.len()),
            LoadBalancing::LeastConnections => {
                let active: Vec<usize> = candidates
                    .iter()
                    .map(|ip| endpoints.get(ip).map_or(0, |o| o.count))
                    .collect();
                balance::least_connections(&active, turn)
            }
            LoadBalancing::Maglev => balance::maglev(&self.maglev_table(&candidates), client),
        };
        let endpoint = candidates[index];
        let open = endpoints.entry(endpoint).or_default();
        open.count += 1;
        Ok(Lease {
            pool: self.clone(),
            endpoint,
            drain: open.drain.clone(),
        })
    }

    fn maglev_table(&self, candidates: &[IpAddr]) -> Arc<maglev::Table> {
        let mut cache = self.maglev.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((ips, table)) = cache.as_ref()
            && ips == candidates
        {
            return table.clone();
        }
        let names: Vec<String> = candidates.iter().map(ToString::to_string).collect();
        let table = Arc::new(maglev::Table::new(&names));
        *cache = Some((candidates.to_vec(), table.clone()));
        table
    }

    /// Connections leased and not yet released.
    #[cfg(test)]
    pub(crate) fn leased(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    fn lock_endpoints(&self) -> MutexGuard<'_, HashMap<IpAddr, Open>> {
        self.endpoints.lock().unwrap_or_else(|p| p.into_inner())
    }
}
