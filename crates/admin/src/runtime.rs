//! What the daemon knows about itself: when it started, the state of each component and the
//! history of config loads. Written by the daemon's wiring, read by the admin API.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

/// The life of one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentState {
    /// Registered as enabled, not yet bound.
    Starting,
    /// Bound and running.
    Running,
    /// Could not bind, or its run ended with an error: the error, with its causes.
    Failed(String),
    /// Its run ended without an error, or the daemon stopped it.
    Stopped,
}

impl ComponentState {
    /// The state's name in `/status` and `/readyz`: "starting", "running", "failed" or
    /// "stopped".
    pub fn name(&self) -> &'static str {
        match self {
            ComponentState::Starting => "starting",
            ComponentState::Running => "running",
            ComponentState::Failed(_) => "failed",
            ComponentState::Stopped => "stopped",
        }
    }
}

/// How the config in force got there, and the last reload that failed.
#[derive(Debug, Clone)]
pub struct ConfigHistory {
    /// The file, `<embedded default>`, or the etcd key (and whether it came from the cache).
    pub source: String,
    /// The etcd revision of the shared document in force; `None` with a file.
    pub revision: Option<i64>,
    /// When the config in force was loaded.
    pub loaded_at: SystemTime,
    /// How long reading, validating and building the snapshot in force took.
    pub load_duration: Duration,
    /// Reloads accepted since start.
    pub reloads_ok: u64,
    /// Reloads rejected since start.
    pub reloads_error: u64,
    /// The last rejected reload; an accepted one does not clear it.
    pub last_error: Option<ReloadFailure>,
}

/// A rejected reload.
#[derive(Debug, Clone)]
pub struct ReloadFailure {
    /// When it was rejected.
    pub at: SystemTime,
    /// Why, one problem per entry.
    pub problems: Vec<String>,
}

/// Appends metrics in the Prometheus text format to the recorder's: series a component
/// keeps itself (the DNS latency histogram, the proxy's per-service series).
///
/// The function receives the text rendered so far and appends its own lines.
#[derive(Clone)]
pub struct MoreMetrics(pub Arc<dyn Fn(&mut String) + Send + Sync>);

impl std::fmt::Debug for MoreMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MoreMetrics")
    }
}

/// What a component adds to its entry of `/status`, computed at each request.
#[derive(Clone)]
pub struct MoreStatus(pub Arc<dyn Fn() -> serde_json::Value + Send + Sync>);

impl std::fmt::Debug for MoreStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MoreStatus")
    }
}

/// One enabled component as the daemon, `/readyz`, `/status` and `/metrics` see it.
#[derive(Debug, Clone)]
struct ComponentRecord {
    name: &'static str,
    state: ComponentState,
    metrics: Option<MoreMetrics>,
    status: Option<MoreStatus>,
}

/// The daemon's record of itself, shared by the daemon (which writes it) and the admin
/// API (which reads it).
#[derive(Debug)]
pub struct Runtime {
    /// When the daemon started.
    pub started_at: SystemTime,
    /// The enabled components, in start order.
    components: Mutex<Vec<ComponentRecord>>,
    /// The BGP sessions, as the speaker last reported them.
    bgp_peers: Mutex<Vec<BgpPeerRecord>>,
    config: ArcSwap<ConfigHistory>,
}

/// One BGP session as the speaker reports it to `/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpPeerRecord {
    /// The router's address.
    pub address: std::net::IpAddr,
    /// The router's AS number.
    pub asn: u32,
    /// The RFC 4271 state name.
    pub state: String,
    /// When the session came up, while it is established.
    pub established_at: Option<SystemTime>,
    /// Why the session last failed or went down.
    pub last_error: Option<String>,
    /// Prefixes the router has from this node.
    pub prefixes_sent: usize,
    /// Those prefixes, in CIDR notation, sorted.
    pub advertised: Vec<String>,
    /// UPDATE messages sent on the session.
    pub updates_sent: u64,
}

impl Runtime {
    /// A record that starts now with no component registered; `source` names where the
    /// config came from, `load_duration` is how long the first load took.
    pub fn new(source: String, load_duration: Duration) -> Arc<Self> {
        let now = SystemTime::now();
        Arc::new(Runtime {
            started_at: now,
            components: Mutex::new(Vec::new()),
            bgp_peers: Mutex::new(Vec::new()),
            config: ArcSwap::from_pointee(ConfigHistory {
                source,
                revision: None,
                loaded_at: now,
                load_duration,
                reloads_ok: 0,
                reloads_error: 0,
                last_error: None,
            }),
        })
    }

    fn records(&self) -> std::sync::MutexGuard<'_, Vec<ComponentRecord>> {
        self.components
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a component's state; the first call registers it (as enabled), after the
    /// ones registered before it.
    pub fn set_component(&self, name: &'static str, state: ComponentState) {
        let mut components = self.records();
        match components.iter_mut().find(|c| c.name == name) {
            Some(record) => record.state = state,
            None => components.push(ComponentRecord {
                name,
                state,
                metrics: None,
                status: None,
            }),
        }
    }

    /// Sets what a registered component appends to `/metrics` (None: nothing).
    pub fn set_component_metrics(&self, name: &'static str, metrics: Option<MoreMetrics>) {
        if let Some(record) = self.records().iter_mut().find(|c| c.name == name) {
            record.metrics = metrics;
        }
    }

    /// Sets what a registered component adds to `/status` (None: nothing).
    pub fn set_component_status(&self, name: &'static str, status: Option<MoreStatus>) {
        if let Some(record) = self.records().iter_mut().find(|c| c.name == name) {
            record.status = status;
        }
    }

    /// What the component `name` adds to `/status` now, if anything.
    pub fn component_status(&self, name: &str) -> Option<serde_json::Value> {
        let status = self
            .records()
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.status.clone());
        status.map(|MoreStatus(render)| render())
    }

    /// Forgets a component that a reload turned off, and its metrics.
    pub fn remove_component(&self, name: &'static str) {
        self.records().retain(|c| c.name != name);
    }

    /// The registered components and their states, in start order.
    pub fn components(&self) -> Vec<(&'static str, ComponentState)> {
        self.records()
            .iter()
            .map(|c| (c.name, c.state.clone()))
            .collect()
    }

    /// What the registered components append to `/metrics`.
    pub fn more_metrics(&self) -> Vec<MoreMetrics> {
        self.records()
            .iter()
            .filter_map(|c| c.metrics.clone())
            .collect()
    }

    /// Ready once every registered component runs.
    pub fn ready(&self) -> bool {
        let components = self.records();
        !components.is_empty()
            && components
                .iter()
                .all(|c| c.state == ComponentState::Running)
    }

    /// Replaces the BGP sessions shown by `/status` (empty when BGP stops).
    pub fn set_bgp_peers(&self, peers: Vec<BgpPeerRecord>) {
        *self
            .bgp_peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = peers;
    }

    /// The BGP sessions as last reported.
    pub fn bgp_peers(&self) -> Vec<BgpPeerRecord> {
        self.bgp_peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The config load history as it is now.
    pub fn config(&self) -> Arc<ConfigHistory> {
        self.config.load_full()
    }

    /// Counts an accepted reload that took `load_duration`; the config in force is now the
    /// new one.
    pub fn reload_succeeded(&self, load_duration: Duration) {
        self.config.rcu(|h| ConfigHistory {
            loaded_at: SystemTime::now(),
            load_duration,
            reloads_ok: h.reloads_ok + 1,
            ..(**h).clone()
        });
    }

    /// Names where the config in force came from and its etcd revision.
    pub fn set_source(&self, source: String, revision: Option<i64>) {
        self.config.rcu(|h| ConfigHistory {
            source: source.clone(),
            revision,
            ..(**h).clone()
        });
    }

    /// Counts a rejected reload and keeps its problems as the last error.
    pub fn reload_failed(&self, problems: Vec<String>) {
        self.config.rcu(|h| ConfigHistory {
            reloads_error: h.reloads_error + 1,
            last_error: Some(ReloadFailure {
                at: SystemTime::now(),
                problems: problems.clone(),
            }),
            ..(**h).clone()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_component_runs() {
        let rt = Runtime::new("x".into(), Duration::ZERO);
        assert!(!rt.ready());
        rt.set_component("admin", ComponentState::Running);
        rt.set_component("dns", ComponentState::Starting);
        assert!(!rt.ready());
        rt.set_component("dns", ComponentState::Running);
        assert!(rt.ready());
        rt.set_component("dns", ComponentState::Failed("port in use".into()));
        assert!(!rt.ready());
        rt.remove_component("dns");
        assert!(rt.ready());
        assert_eq!(rt.components(), [("admin", ComponentState::Running)]);
    }

    #[test]
    fn metrics_of_a_removed_component_go_with_it() {
        let rt = Runtime::new("x".into(), Duration::ZERO);
        rt.set_component("dns", ComponentState::Running);
        let render = |text: &mut String| text.push_str("dns_series 1\n");
        rt.set_component_metrics("dns", Some(MoreMetrics(Arc::new(render))));
        assert_eq!(rt.more_metrics().len(), 1);
        rt.remove_component("dns");
        assert!(rt.more_metrics().is_empty());
    }

    #[test]
    fn reload_history_keeps_the_last_error() {
        let rt = Runtime::new("x".into(), Duration::ZERO);
        rt.reload_failed(vec!["dns.ttl: bad".into()]);
        rt.reload_succeeded(Duration::from_millis(3));
        let h = rt.config();
        assert_eq!((h.reloads_ok, h.reloads_error), (1, 1));
        assert_eq!(h.last_error.as_ref().unwrap().problems, ["dns.ttl: bad"]);
    }
}
