//! Starts the components of [`COMPONENTS`] that the config turns on, applies reloads to the
//! set (start, stop, restart), and stops them all at the end.
//!
//! A reload is applied in three steps: bind every component it turns on (and every one
//! whose restart key changed) with the new snapshot; only if all of them bound, publish the
//! snapshot and run them; then stop the ones it turns off. A bind that fails rejects the
//! reload: what did bind is dropped (its sockets close), the snapshot in force stays, and a
//! restarted component is bound again with it.

use std::sync::Arc;
use std::time::Duration;

use dockline_admin::ComponentState;
use dockline_config::Problem;
use dockline_model::Snapshot;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::components::{Bound, COMPONENTS, Component};
use crate::telemetry;
use dockline_admin::LiveState;

/// How long a component gets to release what it holds once told to stop, before it is
/// aborted.
pub const GRACE: Duration = Duration::from_secs(5);

/// A component that ended while nobody asked it to: the daemon stops.
#[derive(Debug)]
pub struct Ended {
    pub name: &'static str,
    pub result: anyhow::Result<()>,
}

#[derive(Debug)]
struct Running {
    component: &'static Component,
    /// Its restart key when it was bound.
    restart_key: String,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Owns the running components.
#[derive(Debug)]
pub struct Supervisor {
    live: LiveState,
    /// The daemon's token; each component runs under a child of it.
    shutdown: CancellationToken,
    /// In table order.
    running: Vec<Running>,
    ended: mpsc::UnboundedSender<Ended>,
}

/// What a reload changes in the component set.
#[derive(Debug, Default, PartialEq)]
struct Plan {
    start: Vec<&'static str>,
    restart: Vec<&'static str>,
    stop: Vec<&'static str>,
}

impl Plan {
    /// `running` pairs each running component with the restart key it was bound with.
    fn new(running: &[(&str, &str)], next: &dockline_config::Config) -> Plan {
        let mut plan = Plan::default();
        for component in COMPONENTS {
            let was = running.iter().find(|(name, _)| *name == component.name);
            match (was, (component.enabled)(next)) {
                (None, true) => plan.start.push(component.name),
                (Some(_), false) => plan.stop.push(component.name),
                (Some((_, key)), true) if *key != (component.restart_key)(next) => {
                    plan.restart.push(component.name);
                }
                _ => {}
            }
        }
        plan
    }

    /// The components to bind, in table order.
    fn to_bind(&self) -> impl Iterator<Item = &'static Component> + '_ {
        COMPONENTS
            .iter()
            .filter(|c| self.start.contains(&c.name) || self.restart.contains(&c.name))
    }
}

impl Supervisor {
    /// A supervisor with nothing running, and the receiver of unexpected ends.
    pub fn new(
        live: LiveState,
        shutdown: CancellationToken,
    ) -> (Supervisor, mpsc::UnboundedReceiver<Ended>) {
        let (ended, ends) = mpsc::unbounded_channel();
        let supervisor = Supervisor {
            live,
            shutdown,
            running: Vec::new(),
            ended,
        };
        (supervisor, ends)
    }

    /// Binds and runs every component the published snapshot turns on, in table order.
    /// All are registered first, so `/readyz` stays 503 until the last one has bound. The
    /// first failure stops the ones already running and is returned.
    pub async fn start_all(&mut self) -> anyhow::Result<()> {
        let snapshot = self.live.published.load();
        let enabled: Vec<&'static Component> = COMPONENTS
            .iter()
            .filter(|c| (c.enabled)(&snapshot.config))
            .collect();
        for component in &enabled {
            self.live
                .runtime
                .set_component(component.name, ComponentState::Starting);
        }
        for component in enabled {
            match (component.bind)(self.live.clone(), snapshot.clone()).await {
                Ok(bound) => self.spawn(component, &snapshot, bound),
                Err(error) => {
                    self.live.runtime.set_component(
                        component.name,
                        ComponentState::Failed(format!("{error:#}")),
                    );
                    self.shutdown.cancel();
                    self.stop_all().await;
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// Applies a reloaded snapshot to the component set and publishes it; returns the
    /// snapshot it replaced, or the problems that rejected it (the old one stays).
    pub async fn apply(&mut self, next: Arc<Snapshot>) -> Result<Arc<Snapshot>, Problem> {
        let running: Vec<(&str, &str)> = self
            .running
            .iter()
            .map(|r| (r.component.name, r.restart_key.as_str()))
            .collect();
        let plan = Plan::new(&running, &next.config);
        // A restarted component lets go of what it holds (an interface's sysctls, a
        // port) before it binds anew.
        for name in &plan.restart {
            self.stop(name).await;
            tracing::info!(component = name, "restarting: its config changed");
        }
        for component in plan.to_bind() {
            self.live
                .runtime
                .set_component(component.name, ComponentState::Starting);
        }
        let mut bound = Vec::new();
        let mut problem = None;
        for component in plan.to_bind() {
            match (component.bind)(self.live.clone(), next.clone()).await {
                Ok(ready) => bound.push((component, ready)),
                Err(error) => {
                    problem = Some(bind_problem(component.name, &error));
                    break;
                }
            }
        }
        if let Some(problem) = problem {
            // Dropped unrun: what they opened closes, what they set is restored.
            drop(bound);
            self.recover(&plan).await;
            return Err(problem);
        }
        let previous = self.live.published.publish(next.clone());
        for (component, ready) in bound {
            self.spawn(component, &next, ready);
            if plan.start.contains(&component.name) {
                tracing::info!(component = component.name, "started: turned on by a reload");
            }
        }
        for name in &plan.stop {
            self.stop(name).await;
            self.live.runtime.remove_component(name);
            tracing::info!(component = name, "stopped: turned off by a reload");
        }
        Ok(previous)
    }

    /// After a rejected reload: components it would have started are forgotten, and the
    /// ones it restarted are bound again with the snapshot in force.
    async fn recover(&mut self, plan: &Plan) {
        for name in &plan.start {
            self.live.runtime.remove_component(name);
        }
        let current = self.live.published.load();
        for component in COMPONENTS.iter().filter(|c| plan.restart.contains(&c.name)) {
            match (component.bind)(self.live.clone(), current.clone()).await {
                Ok(bound) => self.spawn(component, &current, bound),
                Err(error) => {
                    tracing::error!(
                        component = component.name,
                        error = format!("{error:#}"),
                        "cannot bind again with the config in force; the component is down"
                    );
                    self.live.runtime.set_component(
                        component.name,
                        ComponentState::Failed(format!("{error:#}")),
                    );
                }
            }
        }
    }

    /// Runs a bound component under a child token and reports it running.
    fn spawn(&mut self, component: &'static Component, snapshot: &Snapshot, bound: Bound) {
        let name = component.name;
        let runtime = self.live.runtime.clone();
        runtime.set_component(name, ComponentState::Running);
        runtime.set_component_metrics(name, bound.metrics);
        runtime.set_component_status(name, bound.status);
        metrics::gauge!(telemetry::COMPONENT_UP, "component" => name).set(1.0);
        let stop = self.shutdown.child_token();
        let ended = self.ended.clone();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let result = (bound.run)(stop.clone()).await;
                metrics::gauge!(telemetry::COMPONENT_UP, "component" => name).set(0.0);
                if stop.is_cancelled() {
                    if let Err(error) = result {
                        tracing::warn!(
                            component = name,
                            error = format!("{error:#}"),
                            "error while stopping"
                        );
                    }
                    return;
                }
                let state = match &result {
                    Ok(()) => ComponentState::Stopped,
                    Err(error) => ComponentState::Failed(format!("{error:#}")),
                };
                runtime.set_component(name, state);
                let _ = ended.send(Ended { name, result });
            }
        });
        let restart_key = (component.restart_key)(&snapshot.config);
        let at = self
            .running
            .iter()
            .position(|r| index_of(r.component.name) > index_of(name))
            .unwrap_or(self.running.len());
        self.running.insert(
            at,
            Running {
                component,
                restart_key,
                stop,
                task,
            },
        );
    }

    /// Stops one component and waits (up to [`GRACE`]) until it has released what it holds.
    async fn stop(&mut self, name: &str) {
        let Some(at) = self.running.iter().position(|r| r.component.name == name) else {
            return;
        };
        let running = self.running.remove(at);
        running.stop.cancel();
        finish(running).await;
    }

    /// Stops everything (the daemon's token is cancelled by the caller) within one
    /// [`GRACE`], aborting what is left.
    pub async fn stop_all(&mut self) {
        let running = std::mem::take(&mut self.running);
        let names: Vec<&'static str> = running.iter().map(|r| r.component.name).collect();
        for each in &running {
            each.stop.cancel();
        }
        let mut tasks: Vec<JoinHandle<()>> = running.into_iter().map(|r| r.task).collect();
        let drained = tokio::time::timeout(GRACE, async {
            for task in &mut tasks {
                let _ = task.await;
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                grace_s = GRACE.as_secs(),
                "components did not stop in time; aborting them"
            );
            for task in &tasks {
                task.abort();
            }
        }
        for name in names {
            self.live
                .runtime
                .set_component(name, ComponentState::Stopped);
        }
    }
}

/// Waits for a stopped component's task, aborting it after [`GRACE`].
async fn finish(mut running: Running) {
    let name = running.component.name;
    if tokio::time::timeout(GRACE, &mut running.task)
        .await
        .is_err()
    {
        tracing::warn!(
            component = name,
            grace_s = GRACE.as_secs(),
            "did not stop in time; aborted"
        );
        running.task.abort();
    }
}

/// A bind failure as a reload problem, `<component>: <what failed>` (the component's own
/// errors already start with its name).
fn bind_problem(name: &str, error: &anyhow::Error) -> Problem {
    let text = format!("{error:#}");
    let message = text
        .strip_prefix(name)
        .and_then(|rest| rest.strip_prefix(": "))
        .unwrap_or(&text);
    Problem::new(name, message)
}

fn index_of(name: &str) -> usize {
    COMPONENTS
        .iter()
        .position(|c| c.name == name)
        .unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> dockline_config::Config {
        match dockline_config::parse("test.toml", toml, std::iter::empty()) {
            Ok(config) => config,
            Err(problems) => panic!("{problems}"),
        }
    }

    const NODE: &str = r#"
[node]
name = "node-1"
internal_ip = "10.0.0.1"
"#;

    const L2: &str = r#"
[[pools]]
name = "public"
addresses = ["192.0.2.10-192.0.2.20"]
announce = ["l2"]
"#;

    fn keys(config: &dockline_config::Config) -> Vec<(&'static str, String)> {
        COMPONENTS
            .iter()
            .filter(|c| (c.enabled)(config))
            .map(|c| (c.name, (c.restart_key)(config)))
            .collect()
    }

    fn plan(from: &str, to: &str) -> Plan {
        let running = keys(&config(from));
        let running: Vec<(&str, &str)> = running.iter().map(|(n, k)| (*n, k.as_str())).collect();
        Plan::new(&running, &config(to))
    }

    #[test]
    fn the_default_set_and_an_unchanged_config_need_nothing() {
        let base = NODE.to_owned();
        let names: Vec<&str> = keys(&config(&base)).iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["routes", "health", "proxy", "dns", "admin"]);
        assert_eq!(plan(&base, &base), Plan::default());
    }

    #[test]
    fn dns_turned_off_stops_it_and_on_again_starts_it() {
        let on = NODE.to_owned();
        let off = format!("{NODE}\n[dns]\nenabled = false\n");
        assert_eq!(
            plan(&on, &off),
            Plan {
                stop: vec!["dns"],
                ..Plan::default()
            }
        );
        assert_eq!(
            plan(&off, &on),
            Plan {
                start: vec!["dns"],
                ..Plan::default()
            }
        );
    }

    #[test]
    fn new_l2_interfaces_restart_l2_only() {
        let one = format!("{NODE}\n[l2]\ninterfaces = [\"eth0\"]\n{L2}");
        let two = format!("{NODE}\n[l2]\ninterfaces = [\"eth0\", \"eth1\"]\n{L2}");
        let none = format!("{NODE}{L2}");
        assert_eq!(
            plan(&one, &two),
            Plan {
                restart: vec!["l2"],
                ..Plan::default()
            }
        );
        assert_eq!(
            plan(&none, &one),
            Plan {
                start: vec!["l2"],
                ..Plan::default()
            }
        );
        assert_eq!(
            plan(&two, &none),
            Plan {
                stop: vec!["l2"],
                ..Plan::default()
            }
        );
    }

    #[test]
    fn a_new_gossip_listen_address_restarts_the_cluster() {
        let gossip =
            |port: u16| format!("{NODE}\n[cluster.gossip]\nlisten = \"127.0.0.1:{port}\"\n");
        let restarted = plan(&gossip(7946), &gossip(7947));
        assert_eq!(restarted.restart, ["cluster"]);
        assert!(restarted.start.is_empty() && restarted.stop.is_empty());
    }
}
