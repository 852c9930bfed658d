//! The dns component: an authoritative responder for the cluster domain per the Kubernetes
//! DNS-Based Service Discovery specification 1.1.0, on UDP and TCP at every `dns.listen`
//! address, with names outside the cluster forwarded to `dns.forward` or REFUSED.
//!
//! [`zone`] turns a snapshot and the endpoint health verdicts into an index of precomputed
//! records; [`answer`](mod@answer) answers one query from it (sans-IO); [`cache`] keeps the
//! upstreams' answers to outside names (sans-IO, `[dns.cache]`); `server` is the socket I/O
//! and `forward` the relay to upstreams. A new zone is swapped in on every config or health
//! change, so the next query sees it: patched from the one in force when a reload changed
//! a few services, built anew otherwise. Listeners are only opened and closed when
//! `dns.listen` changes.
//!
//! Modules depend one way, and none on this file: `server` -> `answer` -> `fast` -> `zone`
//! -> `precomputed`; `server` also uses `cache`, `flight` (one relay per question),
//! `forward` and `metrics`; `answer`, `fast` and `cache` read queries through `question`;
//! `verdict` (what became of a query), `wire` (message-format constants) and `edns` are
//! leaves used throughout.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod answer;
pub mod cache;
mod edns;
mod fast;
mod flight;
mod forward;
mod metrics;
mod precomputed;
mod question;
mod server;
mod verdict;
mod wire;
pub mod zone;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use dockline_model::{HealthVerdicts, LiveHealth, Published, Snapshot, diff_services};
use hickory_proto::ProtoError;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use answer::answer;
pub use cache::Cache;
pub use metrics::{describe as describe_metrics, render_latency};
pub use question::Question;
pub use verdict::{Action, Transport, Verdict};
pub use zone::Zone;

use server::{Listener, Responder};

/// Why the dns component could not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// A `dns.listen` address could not be bound.
    #[error("dns: cannot listen on {addr}: {error}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// What the socket call said.
        error: std::io::Error,
    },
    /// The zone of the snapshot could not be built.
    #[error("dns: cannot build the zone: {0}")]
    Zone(#[from] ProtoError),
}

/// The dns component with its sockets bound.
#[derive(Debug)]
pub struct Dns {
    published: Arc<Published>,
    health: Arc<LiveHealth>,
    config_changes: watch::Receiver<u64>,
    health_changes: watch::Receiver<u64>,
    responder: Arc<Responder>,
    listeners: BTreeMap<SocketAddr, Listener>,
    /// SOA serial: start time plus one per rebuild, so secondaries and caches see changes.
    serial: u32,
    /// What the zone in force took from the health verdicts ([`Zone::health_inputs`]).
    health_inputs: Vec<bool>,
    /// The snapshot and verdicts the zone in force was made from: a reload patches it
    /// when only a few services changed.
    zone_inputs: (Arc<Snapshot>, Arc<HealthVerdicts>),
    /// Called after a rebuild has dropped the old zone, to give its memory back (a zone of
    /// 10,000 services is tens of MB, and health changes can rebuild it often).
    after_rebuild: fn(),
}

/// The size of the cache of forwarded answers, for `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSize {
    /// Answers kept.
    pub entries: usize,
    /// The memory they hold, in bytes.
    pub bytes: usize,
}

/// Health verdicts change in bursts (a backend going down fails every check of every
/// service it serves); one rebuild per burst is enough.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(100);

impl Dns {
    /// Builds the zone of `snapshot` (the one about to be published) and binds every
    /// `dns.listen` address of it (an error names the address). Later snapshots are
    /// followed from `published`.
    pub async fn bind(
        snapshot: &Arc<Snapshot>,
        published: Arc<Published>,
        health: Arc<LiveHealth>,
        after_rebuild: fn(),
    ) -> Result<Self, DnsError> {
        // Subscribe before the first load, so no change between the two is missed.
        let config_changes = published.subscribe();
        let health_changes = health.subscribe();
        // The SOA serial is a 32-bit sequence number (RFC 1982): seconds since the epoch
        // wrap around, which serial arithmetic allows.
        let serial = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_secs() as u32);
        let verdicts = health.load();
        let zone = Zone::build(snapshot, &verdicts, serial)?;
        let health_inputs = Zone::health_inputs(snapshot, &verdicts);
        // The build's scratch memory goes back too.
        after_rebuild();
        let responder = Arc::new(Responder::new(zone, &snapshot.config.dns.cache));
        let mut listeners = BTreeMap::new();
        for addr in snapshot.config.dns.listen.iter().copied() {
            listeners.insert(addr, listen(addr, &responder)?);
            tracing::info!(listen = %addr, "dns listening");
        }
        Ok(Dns {
            published,
            health,
            config_changes,
            health_changes,
            responder,
            listeners,
            serial,
            health_inputs,
            zone_inputs: (snapshot.clone(), verdicts),
            after_rebuild,
        })
    }

    /// Reads the size of the cache of forwarded answers, now and after this is run.
    pub fn cache_size(&self) -> impl Fn() -> CacheSize + Send + Sync + 'static {
        let responder = self.responder.clone();
        move || {
            let (entries, bytes) = responder.cache_size();
            CacheSize { entries, bytes }
        }
    }

    /// Follows config and health changes until `shutdown`; the listeners close with it.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), DnsError> {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                changed = self.config_changes.changed() => {
                    if changed.is_err() { break }
                    let (snapshot, health) = (self.published.load(), self.health.load());
                    let inputs = Zone::health_inputs(&snapshot, &health);
                    self.rebuild(snapshot, health, inputs).await;
                    self.relisten().await;
                }
                changed = self.health_changes.changed() => {
                    if changed.is_err() { break }
                    tokio::time::sleep(SETTLE).await;
                    self.health_changes.mark_unchanged();
                    let (snapshot, health) = (self.published.load(), self.health.load());
                    let inputs = Zone::health_inputs(&snapshot, &health);
                    if inputs != self.health_inputs {
                        self.rebuild(snapshot, health, inputs).await;
                    }
                }
            }
        }
        for (_, listener) in std::mem::take(&mut self.listeners) {
            listener.close().await;
        }
        Ok(())
    }

    /// Swaps in the zone of `snapshot` and `health` (whose [`Zone::health_inputs`] are
    /// `inputs`); on failure the old zone keeps answering. Building (and dropping the old
    /// zone) takes a while for thousands of services: it runs on a blocking thread, never
    /// on a runtime worker.
    async fn rebuild(
        &mut self,
        snapshot: Arc<Snapshot>,
        health: Arc<HealthVerdicts>,
        inputs: Vec<bool>,
    ) {
        self.serial = self.serial.wrapping_add(1);
        self.health_inputs = inputs;
        let serial = self.serial;
        let cache = snapshot.config.dns.cache.clone();
        let (old, old_health) = self.zone_inputs.clone();
        let inputs_next = (snapshot.clone(), health.clone());
        let current = self.responder.zone();
        let built = tokio::task::spawn_blocking(move || {
            let patched = if *old_health == *health {
                let diff = diff_services(&old.services, &snapshot.services);
                // Past a quarter of the services a fresh build is the cheaper one.
                if diff.len() <= snapshot.services.len() / 4 {
                    current.patched(&old, &snapshot, &diff, &health, serial)?
                } else {
                    None
                }
            } else {
                None
            };
            tracing::debug!(patched = patched.is_some(), "dns: zone rebuilt");
            match patched {
                Some(zone) => Ok(zone),
                None => Zone::build(&snapshot, &health, serial),
            }
        })
        .await;
        match built {
            Ok(Ok(zone)) => {
                if zone.skipped() > 0 {
                    tracing::warn!(
                        services = zone.skipped(),
                        "dns: services left out: their names are not valid DNS names"
                    );
                }
                let old = self.responder.replace_zone(zone, &cache);
                self.zone_inputs = inputs_next;
                let after_rebuild = self.after_rebuild;
                // A query in flight may still hold the old zone; the last holder frees it.
                tokio::task::spawn_blocking(move || {
                    drop(old);
                    after_rebuild();
                });
            }
            Ok(Err(error)) => {
                tracing::error!(error = %error, "dns: zone not rebuilt, old one kept")
            }
            Err(error) => tracing::error!(error = %error, "dns: zone build failed, old one kept"),
        }
    }

    /// Opens new listen addresses before closing old ones; if one cannot be opened, every
    /// old one stays open, so a typo in a reload never takes DNS down. Returns once the
    /// addresses given up are closed.
    async fn relisten(&mut self) {
        let wanted = self.published.load().config.dns.listen.clone();
        let mut failed = false;
        for addr in &wanted {
            if self.listeners.contains_key(addr) {
                continue;
            }
            match listen(*addr, &self.responder) {
                Ok(listener) => {
                    self.listeners.insert(*addr, listener);
                    tracing::info!(listen = %addr, "dns listening");
                }
                Err(error) => {
                    failed = true;
                    tracing::error!(error = %error, "dns: new listen address not opened");
                }
            }
        }
        if failed {
            return;
        }
        let gone: Vec<SocketAddr> = self
            .listeners
            .keys()
            .filter(|addr| !wanted.contains(addr))
            .copied()
            .collect();
        for addr in gone {
            if let Some(listener) = self.listeners.remove(&addr) {
                listener.close().await;
                tracing::info!(listen = %addr, "dns stopped listening");
            }
        }
    }
}

/// Binds a listener at `addr`; the error names the address.
fn listen(addr: SocketAddr, responder: &Arc<Responder>) -> Result<Listener, DnsError> {
    Listener::bind(addr, responder).map_err(|error| DnsError::Listen { addr, error })
}
