//! The component contract: every part of the daemon that opens sockets, routes or devices is
//! one entry of [`COMPONENTS`], and nothing else in the daemon names a component. The
//! supervisor starts, stops and restarts them from this table, and `/readyz`, `/status` and
//! `/metrics` read the state it records.
//!
//! Adding a component is adding an entry: when it is on, what of the config it cannot follow
//! live, how it binds (with the snapshot about to be published: a reload is applied only
//! once every component it turns on has bound), and the metrics it describes and renders.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use dockline_admin::{LiveState, MoreMetrics, MoreStatus};
use dockline_config::Config;
use dockline_model::Snapshot;
use tokio_util::sync::CancellationToken;

/// A boxed future, as the table's function pointers return them.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// One component, as the daemon knows it.
#[derive(Debug)]
pub struct Component {
    /// Its name in logs, `/status`, `/readyz` and the `component` label.
    pub name: &'static str,
    /// Whether this config turns it on.
    pub enabled: fn(&Config) -> bool,
    /// The part of the config it cannot follow live: when this text changes on a reload,
    /// the component (and only it) is stopped and bound anew.
    pub restart_key: fn(&Config) -> String,
    /// Describes the metrics it records, once at start-up.
    pub describe_metrics: fn(),
    /// Opens what it needs for the snapshot given (not yet published on a reload); the
    /// error names what could not be opened.
    pub bind: fn(LiveState, Arc<Snapshot>) -> BoxFuture<anyhow::Result<Bound>>,
}

/// A component that has bound and is ready to run.
pub struct Bound {
    /// Runs until the token is cancelled, then releases what it opened.
    pub run: Box<dyn FnOnce(CancellationToken) -> BoxFuture<anyhow::Result<()>> + Send>,
    /// Series it keeps itself, appended to `/metrics` while it is enabled.
    pub metrics: Option<MoreMetrics>,
    /// What it adds to its entry of `/status`.
    pub status: Option<MoreStatus>,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound")
            .field("metrics", &self.metrics)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Bound {
    fn new<F, E>(run: impl FnOnce(CancellationToken) -> F + Send + 'static) -> Bound
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<anyhow::Error>,
    {
        Bound {
            run: Box::new(move |shutdown| {
                let running = run(shutdown);
                Box::pin(async move { running.await.map_err(Into::into) })
            }),
            metrics: None,
            status: None,
        }
    }

    fn with_metrics(mut self, render: impl Fn(&mut String) + Send + Sync + 'static) -> Bound {
        self.metrics = Some(MoreMetrics(Arc::new(render)));
        self
    }

    fn with_status(
        mut self,
        status: impl Fn() -> serde_json::Value + Send + Sync + 'static,
    ) -> Bound {
        self.status = Some(MoreStatus(Arc::new(status)));
        self
    }
}

fn always(_: &Config) -> bool {
    true
}

fn nothing_to_restart(_: &Config) -> String {
    String::new()
}

fn no_metrics() {}

/// Every component, in start order: routes first (service addresses are local before
/// anything listens on them), the pod network next, health before the proxy and DNS (verdicts flow as soon as
/// they serve), membership before the announcer (no VIP is claimed from a peer not yet
/// met), admin last (ready means everything before it runs).
pub static COMPONENTS: &[Component] = &[
    Component {
        name: "routes",
        enabled: always,
        restart_key: nothing_to_restart,
        describe_metrics: dockline_routes::describe_metrics,
        bind: |live, snapshot| {
            Box::pin(async move {
                let routes = dockline_routes::Routes::bind(&snapshot, live.published).await?;
                Ok(Bound::new(|shutdown| routes.run(shutdown)))
            })
        },
    },
    Component {
        name: "podnet",
        enabled: dockline_podnet::enabled,
        // The mode, device and sockets are taken at bind: changing `tunnel_mode` restarts
        // the component, which removes one mode's routes (and device) and brings up the
        // other's, live. Peers and membership are followed without a restart.
        restart_key: dockline_podnet::restart_key,
        describe_metrics: dockline_podnet::describe_metrics,
        bind: |live, snapshot| {
            Box::pin(async move {
                let podnet =
                    dockline_podnet::PodNet::bind(&snapshot, live.published, live.members).await?;
                let status = podnet.status();
                Ok(
                    Bound::new(|shutdown| podnet.run(shutdown)).with_status(move || {
                        serde_json::to_value(&*status.borrow()).unwrap_or_default()
                    }),
                )
            })
        },
    },
    Component {
        name: "health",
        enabled: always,
        restart_key: nothing_to_restart,
        describe_metrics: dockline_health::describe_metrics,
        bind: |live, _| {
            Box::pin(async move {
                let checker = dockline_health::HealthChecker::new(live.published, live.health);
                Ok(Bound::new(|shutdown| async move {
                    checker.run(shutdown).await;
                    anyhow::Ok(())
                }))
            })
        },
    },
    Component {
        name: "proxy",
        enabled: dockline_proxy::enabled,
        restart_key: nothing_to_restart,
        describe_metrics: dockline_proxy::describe_metrics,
        bind: |live, snapshot| {
            Box::pin(async move {
                let proxy = dockline_proxy::Proxy::bind(&snapshot, live.published, live.health)?;
                let render = proxy.metrics_renderer();
                Ok(Bound::new(|shutdown| proxy.run(shutdown)).with_metrics(render))
            })
        },
    },
    Component {
        name: "dns",
        enabled: |config| config.dns.enabled,
        restart_key: nothing_to_restart,
        describe_metrics: dockline_dns::describe_metrics,
        bind: |live, snapshot| {
            Box::pin(async move {
                let dns = dockline_dns::Dns::bind(
                    &snapshot,
                    live.published,
                    live.health,
                    crate::memory::release_free_heap,
                )
                .await?;
                let cache_size = dns.cache_size();
                Ok(Bound::new(|shutdown| dns.run(shutdown))
                    .with_metrics(dockline_dns::render_latency)
                    .with_status(move || {
                        let size = cache_size();
                        serde_json::json!({
                            "cache_entries": size.entries,
                            "cache_bytes": size.bytes,
                        })
                    }))
            })
        },
    },
    Component {
        name: "cluster",
        enabled: dockline_cluster::enabled,
        // The socket, the key and the probe timing (foca cannot change its probe period
        // live) are taken at bind; the identity and the seeds follow reloads.
        restart_key: |config| {
            let gossip = &config.cluster.gossip;
            format!(
                "{:?} {:?} {:?}",
                gossip.listen,
                gossip.secret_file,
                gossip.timing()
            )
        },
        describe_metrics: dockline_cluster::describe_metrics,
        bind: |live, snapshot| {
            Box::pin(async move {
                let cluster = dockline_cluster::Cluster::bind(
                    &snapshot,
                    live.published,
                    live.members,
                    live.owners,
                )
                .await?;
                let status = cluster.status();
                Ok(
                    Bound::new(|shutdown| cluster.run(shutdown)).with_status(move || {
                        serde_json::to_value(&*status.borrow()).unwrap_or_default()
                    }),
                )
            })
        },
    },
    Component {
        name: "l2",
        enabled: dockline_l2::enabled,
        // Packet sockets and sysctls are per interface, opened at bind.
        restart_key: |config| config.l2.interfaces.join(","),
        describe_metrics: dockline_l2::describe_metrics,
        bind: |live, snapshot| {
            Box::pin(async move {
                let l2 = dockline_l2::L2::bind(
                    &snapshot,
                    dockline_l2::Inputs {
                        published: live.published,
                        health: live.health,
                        members: live.members,
                        owners: live.owners,
                    },
                )?;
                Ok(Bound::new(|shutdown| l2.run(shutdown)))
            })
        },
    },
    Component {
        name: "bgp",
        enabled: dockline_bgp::enabled,
        // The AS number and router ID are every session's; peer changes are followed per
        // session by the speaker itself.
        restart_key: dockline_bgp::restart_key,
        describe_metrics: dockline_bgp::describe_metrics,
        bind: |live, snapshot| {
            Box::pin(async move {
                let bgp = dockline_bgp::Bgp::bind(
                    snapshot,
                    dockline_bgp::Inputs {
                        published: live.published,
                        health: live.health,
                        runtime: live.runtime,
                    },
                )?;
                Ok(Bound::new(|shutdown| bgp.run(shutdown)))
            })
        },
    },
    Component {
        name: "admin",
        enabled: always,
        // The listener moves by itself when `admin.listen` changes.
        restart_key: nothing_to_restart,
        describe_metrics: no_metrics,
        bind: |live, snapshot| {
            Box::pin(async move {
                let listen = snapshot.config.admin.listen;
                let listener = dockline_admin::bind(listen).await?;
                tracing::info!(%listen, "admin API listening");
                Ok(Bound::new(|shutdown| async move {
                    dockline_admin::serve(listener, live, shutdown).await;
                    anyhow::Ok(())
                }))
            })
        },
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_admin_starts_last() {
        let names: Vec<&str> = COMPONENTS.iter().map(|c| c.name).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        assert_eq!(names.first(), Some(&"routes"));
        assert_eq!(names.last(), Some(&"admin"));
    }
}
