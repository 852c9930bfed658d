//! The endpoints of one service as the proxy sees them: which are candidates for a new
//! connection, the counters the balancing needs, the connection cap, and a drain token per
//! endpoint that closes its connections once a reload removed it and the grace passed.
//! A pool outlives reloads (only its endpoints are swapped), so counters stay true.

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
    backends: ArcSwap<Backends>,
    /// The service's `namespace/name`, which its health verdicts are filed under.
    key: Arc<str>,
    turn: AtomicUsize,
    total: AtomicUsize,
    endpoints: Mutex<HashMap<IpAddr, Open>>,
    /// The Maglev table for the last candidate list, rebuilt when the list changes.
    maglev: Mutex<Option<(Vec<IpAddr>, Arc<maglev::Table>)>>,
}

/// What the balancing needs of a service, from the snapshot: a slim copy, as a pool of
/// every proxied service lives beside the snapshot's own copy.
#[derive(Debug)]
pub(crate) struct Backends {
    /// In config order.
    pub(crate) endpoints: Vec<Backend>,
    load_balancing: LoadBalancing,
    max_connections: Option<u32>,
    /// `external_traffic_policy = "Local"`.
    local_policy: bool,
}

/// One endpoint of a service.
#[derive(Debug)]
pub(crate) struct Backend {
    pub(crate) ip: IpAddr,
    /// Ready by config; a failing health check may still take it out.
    pub(crate) ready: bool,
    /// The node it runs on, if known.
    node: Option<Box<str>>,
}

impl Backends {
    fn of(service: &Service) -> Backends {
        Backends {
            endpoints: service
                .endpoints
                .iter()
                .map(|e| Backend {
                    ip: e.ip,
                    ready: e.ready,
                    node: e.node.as_deref().map(Into::into),
                })
                .collect(),
            load_balancing: service.load_balancing,
            max_connections: service.max_connections,
            local_policy: service.external_traffic_policy == TrafficPolicy::Local,
        }
    }
}

impl Backend {
    /// Ready by config and not failing its health check (`key` is its service's).
    pub(crate) fn is_ready(&self, key: &str, health: &HealthVerdicts) -> bool {
        self.ready && health.get(key, self.ip) != Some(false)
    }
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
    pub(crate) fn new(service: &Service) -> Arc<Pool> {
        Arc::new(Pool {
            key: service.key().into(),
            backends: ArcSwap::from_pointee(Backends::of(service)),
            turn: AtomicUsize::new(0),
            total: AtomicUsize::new(0),
            endpoints: Mutex::new(HashMap::new()),
            maglev: Mutex::new(None),
        })
    }

    /// The service's `namespace/name`.
    pub(crate) fn key(&self) -> &Arc<str> {
        &self.key
    }

    /// The endpoints in force.
    pub(crate) fn backends(&self) -> Arc<Backends> {
        self.backends.load_full()
    }

    /// Takes a reload's version of the service; returns the endpoints it no longer has.
    pub(crate) fn update(&self, service: &Service) -> Vec<IpAddr> {
        let gone = self
            .backends
            .load()
            .endpoints
            .iter()
            .map(|e| e.ip)
            .filter(|ip| !service.endpoints.iter().any(|e| e.ip == *ip))
            .collect();
        self.backends.store(Arc::new(Backends::of(service)));
        gone
    }

    /// Closes the connections of `endpoint` unless a reload brought it back meanwhile.
    pub(crate) fn drain(&self, endpoint: IpAddr) {
        let present = self
            .backends
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
    /// `tried` (endpoints that just failed to connect). Allocates nothing unless the
    /// Maglev table must be rebuilt: this runs once per connection.
    pub(crate) fn lease(
        self: &Arc<Self>,
        client: IpAddr,
        external: bool,
        node: &str,
        health: &HealthVerdicts,
        tried: &[IpAddr],
    ) -> Result<Lease, Refusal> {
        let backends = self.backends.load();
        let local_only = external && backends.local_policy;
        let key: &str = &self.key;
        let candidates = || {
            backends
                .endpoints
                .iter()
                .filter(move |e| e.is_ready(key, health))
                .filter(move |e| !local_only || e.node.as_deref() == Some(node))
                .map(|e| e.ip)
                .filter(move |ip| !tried.contains(ip))
        };
        let count = candidates().count();
        if count == 0 {
            return Err(Refusal::NoEndpoint);
        }
        let cap = backends.max_connections.map_or(usize::MAX, |m| m as usize);
        if self.total.fetch_add(1, Ordering::Relaxed) >= cap {
            self.total.fetch_sub(1, Ordering::Relaxed);
            return Err(Refusal::OverLimit);
        }
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        let mut endpoints = self.lock_endpoints();
        let endpoint = match backends.load_balancing {
            LoadBalancing::RoundRobin => candidates().nth(balance::round_robin(turn, count)),
            LoadBalancing::LeastConnections => {
                let open = |ip: &IpAddr| endpoints.get(ip).map_or(0, |o| o.count);
                balance::least_connections(candidates().map(|ip| (ip, open(&ip))), count, turn)
            }
            LoadBalancing::Maglev => {
                let table = self.maglev_table(candidates());
                candidates().nth(balance::maglev(&table, client))
            }
        };
        // Some: `endpoint` is one of the `count` candidates.
        let endpoint = endpoint.ok_or(Refusal::NoEndpoint)?;
        let open = endpoints.entry(endpoint).or_default();
        open.count += 1;
        Ok(Lease {
            pool: self.clone(),
            endpoint,
            drain: open.drain.clone(),
        })
    }

    /// The Maglev table over `candidates`: the cached one while they stay the same.
    fn maglev_table(&self, candidates: impl Iterator<Item = IpAddr> + Clone) -> Arc<maglev::Table> {
        let mut cache = self.maglev.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((ips, table)) = cache.as_ref()
            && ips.iter().copied().eq(candidates.clone())
        {
            return table.clone();
        }
        let ips: Vec<IpAddr> = candidates.collect();
        let names: Vec<String> = ips.iter().map(ToString::to_string).collect();
        let table = Arc::new(maglev::Table::new(&names));
        *cache = Some((ips, table.clone()));
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

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::fixture;

    const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    const THREE: &str =
        r#"endpoints = [{ ip = "10.111.1.1" }, { ip = "10.111.1.2" }, { ip = "10.111.1.3" }]"#;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn pool(settings: &str) -> Arc<Pool> {
        Pool::new(&fixture::web(settings))
    }

    /// A connection to the ClusterIP, every endpoint passing its checks, none tried yet.
    fn lease(pool: &Arc<Pool>) -> Result<Lease, Refusal> {
        pool.lease(CLIENT, false, "node-1", &HealthVerdicts::default(), &[])
    }

    fn open(pool: &Pool, endpoint: &str) -> usize {
        pool.lock_endpoints()
            .get(&ip(endpoint))
            .map_or(0, |open| open.count)
    }

    #[test]
    fn only_ready_endpoints_passing_their_checks_are_leased() {
        let pool = pool(
            r#"endpoints = [{ ip = "10.111.1.1", ready = false }, { ip = "10.111.1.2" }, { ip = "10.111.1.3" }]"#,
        );
        let mut health = HealthVerdicts::default();
        health.set("default/web", ip("10.111.1.3"), false);
        for _ in 0..4 {
            let lease = pool.lease(CLIENT, false, "node-1", &health, &[]).unwrap();
            assert_eq!(lease.endpoint, ip("10.111.1.2"));
        }
        health.set("default/web", ip("10.111.1.2"), false);
        let refusal = pool.lease(CLIENT, false, "node-1", &health, &[]);
        assert_eq!(refusal.unwrap_err(), Refusal::NoEndpoint);
    }

    #[test]
    fn endpoints_just_tried_are_skipped() {
        let pool = pool(THREE);
        let health = HealthVerdicts::default();
        let tried = [ip("10.111.1.1"), ip("10.111.1.3")];
        for _ in 0..4 {
            let lease = pool
                .lease(CLIENT, false, "node-1", &health, &tried)
                .unwrap();
            assert_eq!(lease.endpoint, ip("10.111.1.2"));
        }
        let all = [ip("10.111.1.1"), ip("10.111.1.2"), ip("10.111.1.3")];
        let refusal = pool.lease(CLIENT, false, "node-1", &health, &all);
        assert_eq!(refusal.unwrap_err(), Refusal::NoEndpoint);
    }

    #[test]
    fn the_local_policy_keeps_external_connections_on_this_node() {
        let pool = pool(
            r#"type = "NodePort"
external_traffic_policy = "Local"
endpoints = [{ ip = "10.111.1.1", node = "node-1" }, { ip = "10.111.2.1", node = "node-2" }]"#,
        );
        let health = HealthVerdicts::default();
        for _ in 0..4 {
            let lease = pool.lease(CLIENT, true, "node-1", &health, &[]).unwrap();
            assert_eq!(lease.endpoint, ip("10.111.1.1"));
        }
        let elsewhere = pool.lease(CLIENT, true, "node-3", &health, &[]);
        assert_eq!(elsewhere.unwrap_err(), Refusal::NoEndpoint);
        // ClusterIP traffic is not external: every ready endpoint takes it.
        let internal: Vec<IpAddr> = (0..2)
            .map(|_| pool.lease(CLIENT, false, "node-3", &health, &[]))
            .map(|lease| lease.unwrap().endpoint)
            .collect();
        assert_eq!(internal, [ip("10.111.1.1"), ip("10.111.2.1")]);
    }

    #[test]
    fn max_connections_caps_the_open_leases_and_a_released_one_frees_its_slot() {
        let pool = pool(&format!("max_connections = 2\n{THREE}"));
        let first = lease(&pool).unwrap();
        let second = lease(&pool).unwrap();
        assert_eq!(lease(&pool).unwrap_err(), Refusal::OverLimit);
        // The refused one took no slot.
        assert_eq!(pool.leased(), 2);
        drop(first);
        let third = lease(&pool).unwrap();
        assert_eq!(lease(&pool).unwrap_err(), Refusal::OverLimit);
        drop((second, third));
        assert_eq!(pool.leased(), 0);
        assert_eq!(open(&pool, "10.111.1.1") + open(&pool, "10.111.1.2"), 0);
    }

    #[test]
    fn round_robin_takes_turns() {
        let pool = pool(THREE);
        let picks: Vec<IpAddr> = (0..4).map(|_| lease(&pool).unwrap().endpoint).collect();
        let want = ["10.111.1.1", "10.111.1.2", "10.111.1.3", "10.111.1.1"];
        assert_eq!(picks, want.map(ip));
    }

    #[test]
    fn least_connections_goes_to_the_endpoint_with_the_fewest_open() {
        let pool = pool(&format!("load_balancing = \"LeastConnections\"\n{THREE}"));
        let mut leases: Vec<Lease> = (0..3).map(|_| lease(&pool).unwrap()).collect();
        for endpoint in ["10.111.1.1", "10.111.1.2", "10.111.1.3"] {
            assert_eq!(open(&pool, endpoint), 1);
        }
        leases.retain(|lease| lease.endpoint != ip("10.111.1.2"));
        assert_eq!(open(&pool, "10.111.1.2"), 0);
        for _ in 0..3 {
            // Each goes to the endpoint with none open, and is dropped at once.
            assert_eq!(lease(&pool).unwrap().endpoint, ip("10.111.1.2"));
        }
        assert_eq!(pool.leased(), 2);
    }

    #[test]
    fn maglev_keeps_a_client_on_its_endpoint_and_reuses_the_table_while_the_candidates_stay() {
        let pool = pool(&format!("load_balancing = \"Maglev\"\n{THREE}"));
        let cached = || {
            let cache = pool.maglev.lock().unwrap();
            cache.as_ref().map(|(_, table)| table.clone()).unwrap()
        };
        let first = lease(&pool).unwrap().endpoint;
        let table = cached();
        for _ in 0..4 {
            assert_eq!(lease(&pool).unwrap().endpoint, first);
        }
        assert!(Arc::ptr_eq(&table, &cached()));
        // Other candidates (the client's endpoint just failed): another table.
        let health = HealthVerdicts::default();
        let retry = pool
            .lease(CLIENT, false, "node-1", &health, &[first])
            .unwrap();
        assert_ne!(retry.endpoint, first);
        assert!(!Arc::ptr_eq(&table, &cached()));
    }

    #[test]
    fn a_reload_keeps_the_open_connections_and_names_the_endpoints_it_removed() {
        let pool = pool(THREE);
        let held = lease(&pool).unwrap();
        assert_eq!(held.endpoint, ip("10.111.1.1"));
        let gone = pool.update(&fixture::web(
            r#"endpoints = [{ ip = "10.111.1.1" }, { ip = "10.111.1.4" }]"#,
        ));
        assert_eq!(gone, [ip("10.111.1.2"), ip("10.111.1.3")]);
        assert_eq!(pool.backends().endpoints.len(), 2);
        assert_eq!((pool.leased(), open(&pool, "10.111.1.1")), (1, 1));
        assert!(!held.drain.is_cancelled());
    }

    #[test]
    fn a_drained_endpoint_closes_its_connections_and_is_forgotten() {
        let pool = pool(THREE);
        let (on_first, on_second) = (lease(&pool).unwrap(), lease(&pool).unwrap());
        pool.update(&fixture::web(
            r#"endpoints = [{ ip = "10.111.1.2" }, { ip = "10.111.1.3" }]"#,
        ));
        pool.drain(ip("10.111.1.1"));
        assert!(on_first.drain.is_cancelled());
        assert!(!on_second.drain.is_cancelled());
        assert!(!pool.lock_endpoints().contains_key(&ip("10.111.1.1")));
        // Its connections close afterwards; their release touches no other count.
        drop(on_first);
        assert_eq!((pool.leased(), open(&pool, "10.111.1.2")), (1, 1));
        drop(on_second);
        assert_eq!(pool.leased(), 0);
    }

    #[test]
    fn an_endpoint_a_reload_brought_back_within_the_grace_is_not_drained() {
        let pool = pool(THREE);
        let held = lease(&pool).unwrap();
        pool.update(&fixture::web(r#"endpoints = [{ ip = "10.111.1.2" }]"#));
        pool.update(&fixture::web(THREE));
        pool.drain(ip("10.111.1.1"));
        assert!(!held.drain.is_cancelled());
        assert_eq!(open(&pool, "10.111.1.1"), 1);
    }

    #[test]
    fn a_removed_service_closes_every_connection_and_starts_over_if_it_returns() {
        let pool = pool(THREE);
        let held: Vec<Lease> = (0..3).map(|_| lease(&pool).unwrap()).collect();
        pool.drain_all();
        assert!(held.iter().all(|lease| lease.drain.is_cancelled()));
        drop(held);
        assert_eq!(pool.leased(), 0);
        let fresh = lease(&pool).unwrap();
        assert!(!fresh.drain.is_cancelled());
        assert_eq!(open(&pool, &fresh.endpoint.to_string()), 1);
    }
}
