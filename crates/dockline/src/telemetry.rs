//! The Prometheus recorder and the description of every metric the daemon core exports.
//! Components describe their own metrics next to the code that records them.

use anyhow::Context;
use metrics::{Unit, describe_counter, describe_gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const CONFIG_RELOADS: &str = "dockline_config_reloads_total";
pub const CONFIG_LAST_RELOAD_SUCCESS: &str =
    "dockline_config_last_reload_success_timestamp_seconds";
pub const CONFIG_LOAD_DURATION: &str = "dockline_config_load_duration_seconds";
pub const CONFIG_REVISION: &str = "dockline_config_revision";
pub const SERVICES: &str = "dockline_services";
pub const ENDPOINTS: &str = "dockline_endpoints";
pub const VIPS: &str = "dockline_load_balancer_ips";
pub const COMPONENT_UP: &str = "dockline_component_up";
pub const BUILD_INFO: &str = "dockline_build_info";
pub const START_TIME: &str = "dockline_start_time_seconds";

/// Installs the process-wide recorder; the admin API renders from the returned handle.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    describe_counter!(
        CONFIG_RELOADS,
        "Config reloads by result (ok: swapped in or unchanged; error: rejected, old config kept)"
    );
    describe_gauge!(
        CONFIG_LAST_RELOAD_SUCCESS,
        Unit::Seconds,
        "Unix time of the last successful config load"
    );
    describe_gauge!(
        CONFIG_LOAD_DURATION,
        Unit::Seconds,
        "Time to read, validate and build the config in force"
    );
    describe_gauge!(
        CONFIG_REVISION,
        "The etcd revision of the shared config document in force (with source.kind = \"etcd\")"
    );
    describe_gauge!(SERVICES, "Services in the config in force, by type");
    describe_gauge!(ENDPOINTS, "Endpoints in the config in force, by readiness");
    describe_gauge!(VIPS, "LoadBalancer IPs in the config in force");
    describe_gauge!(COMPONENT_UP, "1 while the component runs, 0 otherwise");
    describe_gauge!(BUILD_INFO, "Always 1; the version is a label");
    describe_gauge!(START_TIME, Unit::Seconds, "Unix time the daemon started");
    // Counters exist from the start, so a first rejected reload reads as 0 -> 1.
    for result in ["ok", "error"] {
        metrics::counter!(CONFIG_RELOADS, "result" => result).absolute(0);
    }
    metrics::gauge!(BUILD_INFO, "version" => crate::VERSION).set(1.0);
    metrics::gauge!(START_TIME).set(unix_now());
    for component in crate::components::COMPONENTS {
        (component.describe_metrics)();
    }
    Ok(handle)
}

/// Gauges that describe the snapshot in force.
pub fn record_snapshot(snapshot: &dockline_model::Snapshot) {
    use dockline_config::ServiceType;
    for kind in [
        ServiceType::ClusterIP,
        ServiceType::NodePort,
        ServiceType::LoadBalancer,
        ServiceType::ExternalName,
    ] {
        let n = snapshot.services.iter().filter(|s| s.kind == kind).count();
        metrics::gauge!(SERVICES, "type" => kind.to_string()).set(n as f64);
    }
    let (ready, not_ready) =
        snapshot
            .services
            .iter()
            .flat_map(|s| &s.endpoints)
            .fold((0usize, 0usize), |(r, n), e| {
                if e.ready { (r + 1, n) } else { (r, n + 1) }
            });
    metrics::gauge!(ENDPOINTS, "state" => "ready").set(ready as f64);
    metrics::gauge!(ENDPOINTS, "state" => "not_ready").set(not_ready as f64);
    metrics::gauge!(VIPS).set(snapshot.vips.len() as f64);
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
