//! What the daemon knows about itself: when it started, the state of each component and the
//! history of config loads. Written by the daemon's wiring, read by the admin API.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

/// The life of one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentState {
    Starting,
    Running,
    Failed(String),
    Stopped,
}

impl ComponentState {
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
    /// The file, or `<embedded default>`.
    pub source: String,
    pub loaded_at: SystemTime,
    /// How long reading, validating and building the snapshot in force took.
    pub load_duration: Duration,
    pub reloads_ok: u64,
    pub reloads_error: u64,
    pub last_error: Option<ReloadFailure>,
}

#[derive(Debug, Clone)]
pub struct ReloadFailure {
    pub at: SystemTime,
    pub problems: Vec<String>,
}

#[derive(Debug)]
pub struct Runtime {
    pub started_at: SystemTime,
    components: Mutex<Vec<(&'static str, ComponentState)>>,
    config: ArcSwap<ConfigHistory>,
}

impl Runtime {
    pub fn new(source: String, load_duration: Duration) -> Arc<Self> {
        let now = SystemTime::now();
        Arc::new(Runtime {
            started_at: now,
            components: Mutex::new(Vec::new()),
            config: ArcSwap::from_pointee(ConfigHistory {
                source,
                loaded_at: now,
                load_duration,
                reloads_ok: 0,
                reloads_error: 0,
                last_error: None,
            }),
        })
    }

    /// Records a component's state; the first call registers it (as enabled).
    pub fn set_component(&self, name: &'static str, state: ComponentState) {
        let mut components = self
            .components
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match components.iter_mut().find(|(n, _)| *n == name) {
            Some((_, s)) => *s = state,
            None => components.push((name, state)),
        }
    }

    pub fn components(&self) -> Vec<(&'static str, ComponentState)> {
        self.components
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Ready once every registered component runs.
    pub fn ready(&self) -> bool {
        let components = self
            .components
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        !components.is_empty()
            && components
                .iter()
                .all(|(_, s)| *s == ComponentState::Running)
    }

    pub fn config(&self) -> Arc<ConfigHistory> {
        self.config.load_full()
    }

    pub fn reload_succeeded(&self, load_duration: Duration) {
        self.config.rcu(|h| ConfigHistory {
            loaded_at: SystemTime::now(),
            load_duration,
            reloads_ok: h.reloads_ok + 1,
            ..(**h).clone()
        });
    }

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
