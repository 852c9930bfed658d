//! The active health checker: every endpoint of a service with a `health_check` is probed
//! (TCP connect or HTTP GET) on its interval; the rise/fall verdicts are published into
//! [`LiveHealth`], which DNS, the proxy and the announcers read.
//!
//! The schedule and the rise/fall counting live in [`schedule`] (sans-IO, driven by a
//! `now`); this module only runs the probes and follows reloads.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod http;
mod probe;
pub mod schedule;

use std::sync::Arc;
use std::time::Duration;

use dockline_model::{LiveHealth, Published, Snapshot};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use schedule::{Checks, Probe};

pub use http::HealthError;

/// Probes finished, by outcome.
pub const CHECKS: &str = "dockline_health_checks_total";

/// Describes the component's metrics; called once at start-up.
pub fn describe_metrics() {
    metrics::describe_counter!(CHECKS, "Endpoint health checks run, by result (pass, fail)");
}

/// The endpoints to check: every endpoint of a service with a `health_check`, on the
/// check's port or else the first port's `target_port`.
pub fn targets(snapshot: &Snapshot) -> Vec<Probe> {
    snapshot
        .services
        .iter()
        .filter_map(|s| {
            let check = s.health_check.as_ref()?;
            let port = check
                .port
                .or_else(|| s.ports.first().map(|p| p.target_port))?;
            Some((s, check, port))
        })
        .flat_map(|(s, check, port)| {
            let key = s.key();
            s.endpoints.iter().map(move |e| Probe {
                service: key.clone(),
                ip: e.ip,
                port,
                check: check.clone(),
            })
        })
        .collect()
}

/// The health-check component: probes the endpoints of the snapshot in force and publishes
/// their verdicts.
#[derive(Debug)]
pub struct HealthChecker {
    published: Arc<Published>,
    health: Arc<LiveHealth>,
}

impl HealthChecker {
    /// A checker of the snapshots in `published` that writes verdicts to `health`; nothing
    /// is probed before [`HealthChecker::run`].
    pub fn new(published: Arc<Published>, health: Arc<LiveHealth>) -> Self {
        HealthChecker { published, health }
    }

    /// Checks until `shutdown`; returns only then.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut reloads = self.published.subscribe();
        let mut checks = Checks::default();
        checks.sync(targets(&self.published.load()), Instant::now().into_std());
        let (results, mut finished) = mpsc::channel::<(Probe, bool)>(1024);
        loop {
            let now = Instant::now().into_std();
            for probe in checks.due(now) {
                let results = results.clone();
                tokio::spawn(async move {
                    let passed = probe::run(&probe).await;
                    let _ = results.send((probe, passed)).await;
                });
            }
            let wake = checks.next_due().map_or_else(
                || Instant::now() + Duration::from_secs(3600),
                Instant::from_std,
            );
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = reloads.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    checks.sync(targets(&self.published.load()), Instant::now().into_std());
                    self.health.publish(checks.verdicts());
                }
                Some((probe, passed)) = finished.recv() => {
                    let result = if passed { "pass" } else { "fail" };
                    metrics::counter!(CHECKS, "result" => result).increment(1);
                    if let Some(ready) = checks.record(&probe, passed, Instant::now().into_std()) {
                        tracing::info!(
                            service = %probe.service,
                            endpoint = %probe.ip,
                            port = probe.port,
                            ready,
                            "endpoint health changed"
                        );
                        self.health.publish(checks.verdicts());
                    }
                }
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }
}
