//! The daemon's life: load the config, start every enabled component, serve until SIGTERM or
//! SIGINT, then stop everything within a grace period.
//!
//! A component binds its sockets before it is reported running, so a port in use stops the
//! start with an error naming the address. One cancellation token reaches every task.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use dockline_admin::{AdminState, ComponentState, MoreMetrics, Runtime};
use dockline_config::Source;
use dockline_model::{LiveHealth, LiveMembers, LiveOwners, Published};
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{RunOptions, reload, telemetry};

/// How long components get to finish after SIGTERM before they are aborted.
const GRACE: Duration = Duration::from_secs(5);

pub fn run(options: RunOptions) -> anyhow::Result<()> {
    crate::memory::fix_mmap_threshold();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("dockline")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(options))
}

async fn serve(options: RunOptions) -> anyhow::Result<()> {
    // Before anything else: SIGHUP's default action would end the process mid-start.
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let hangup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;

    let source = match options.config {
        Some(path) => Source::File(path),
        None => Source::Embedded,
    };
    let started = Instant::now();
    let (text, snapshot) = reload::load_snapshot(&source)
        .map_err(|problems| anyhow!("invalid configuration {}:\n{problems}", source.name()))?;
    let load_duration = started.elapsed();
    let metrics = telemetry::install()?;
    telemetry::record_snapshot(&snapshot);
    metrics::gauge!(telemetry::CONFIG_LAST_RELOAD_SUCCESS).set(telemetry::unix_now());
    metrics::gauge!(telemetry::CONFIG_LOAD_DURATION).set(load_duration.as_secs_f64());
    tracing::info!(
        version = crate::VERSION,
        source = %source.name(),
        node = %snapshot.node.name,
        services = snapshot.services.len(),
        digest = %snapshot.config_digest,
        duration_ms = load_duration.as_secs_f64() * 1000.0,
        "config loaded"
    );
    let runtime = Runtime::new(source.name(), load_duration);
    let published = Arc::new(Published::new(snapshot));
    // Endpoint health verdicts: written by the health checker, read by everyone else.
    let health = Arc::new(LiveHealth::default());
    // Membership (written by cluster) and VIP owners (written by l2).
    let members = Arc::new(LiveMembers::default());
    let owners = Arc::new(LiveOwners::default());
    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();

    let reloads = reload::start(
        source,
        text,
        published.clone(),
        runtime.clone(),
        hangup,
        shutdown.clone(),
    )?;
    tasks.spawn(with_name("reload", reloads));

    // Every enabled component is registered before any starts, so /readyz stays 503 until
    // the last one has bound its sockets.
    for name in enabled_components(&published.load().config) {
        runtime.set_component(name, ComponentState::Starting);
    }

    // Routes first: service addresses are local before anything listens on them.
    let routes = dockline_routes::Routes::bind(&published.load(), published.clone()).await?;
    spawn_component(&mut tasks, &runtime, "routes", {
        let shutdown = shutdown.clone();
        async move { Ok(routes.run(shutdown).await?) }
    });

    // Health before the proxy and DNS: verdicts start flowing as soon as they serve.
    let checker = dockline_health::HealthChecker::new(published.clone(), health.clone());
    spawn_component(&mut tasks, &runtime, "health", {
        let shutdown = shutdown.clone();
        async move {
            checker.run(shutdown).await;
            Ok(())
        }
    });

    let mut more_metrics = vec![MoreMetrics(Arc::new(dockline_dns::render_latency))];
    if dockline_proxy::enabled(&published.load().config) {
        let proxy =
            dockline_proxy::Proxy::bind(&published.load(), published.clone(), health.clone())?;
        more_metrics.push(MoreMetrics(Arc::new(proxy.metrics_renderer())));
        spawn_component(&mut tasks, &runtime, "proxy", {
            let shutdown = shutdown.clone();
            async move { Ok(proxy.run(shutdown).await?) }
        });
    }

    if published.load().config.dns.enabled {
        let dns = dockline_dns::Dns::bind(
            &published.load(),
            published.clone(),
            health.clone(),
            crate::memory::release_free_heap,
        )
        .await?;
        spawn_component(&mut tasks, &runtime, "dns", {
            let shutdown = shutdown.clone();
            async move { Ok(dns.run(shutdown).await?) }
        });
    }

    if dockline_cluster::enabled(&published.load().config) {
        let cluster =
            dockline_cluster::Cluster::bind(&published.load(), published.clone(), members.clone())
                .await?;
        spawn_component(&mut tasks, &runtime, "cluster", {
            let shutdown = shutdown.clone();
            async move { Ok(cluster.run(shutdown).await?) }
        });
    }

    if dockline_l2::enabled(&published.load().config) {
        let l2 = dockline_l2::L2::bind(
            &published.load(),
            dockline_l2::Inputs {
                published: published.clone(),
                health: health.clone(),
                members: members.clone(),
                owners: owners.clone(),
            },
        )?;
        spawn_component(&mut tasks, &runtime, "l2", {
            let shutdown = shutdown.clone();
            async move { Ok(l2.run(shutdown).await?) }
        });
    }

    let admin_listen = published.load().config.admin.listen;
    let listener = dockline_admin::bind(admin_listen).await?;
    let admin_state = AdminState {
        published: published.clone(),
        health: health.clone(),
        members,
        owners,
        runtime: runtime.clone(),
        metrics,
        more_metrics,
    };
    spawn_component(&mut tasks, &runtime, "admin", {
        let shutdown = shutdown.clone();
        async move {
            dockline_admin::serve(listener, admin_state, shutdown).await;
            Ok(())
        }
    });
    tracing::info!(listen = %admin_listen, "admin API listening");

    tracing::info!(node = %published.load().node.name, "dockline running");

    let outcome = tokio::select! {
        _ = terminate.recv() => { tracing::info!(signal = "SIGTERM", "stopping"); Ok(()) }
        _ = interrupt.recv() => { tracing::info!(signal = "SIGINT", "stopping"); Ok(()) }
        Some(ended) = tasks.join_next() => match ended {
            Ok((name, Ok(()))) => Err(anyhow!("{name} stopped unexpectedly")),
            Ok((name, Err(error))) => Err(error.context(format!("{name} failed"))),
            Err(error) => Err(anyhow!("a component panicked: {error}")),
        },
    };
    shutdown.cancel();
    let drained = tokio::time::timeout(GRACE, async {
        while let Some(ended) = tasks.join_next().await {
            if let Ok((name, Err(error))) = ended {
                tracing::warn!(
                    component = name,
                    error = format!("{error:#}"),
                    "error while stopping"
                );
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            grace_s = GRACE.as_secs(),
            "components did not stop in time; aborting them"
        );
        tasks.abort_all();
    }
    for (name, _) in runtime.components() {
        runtime.set_component(name, ComponentState::Stopped);
    }
    if outcome.is_ok() {
        tracing::info!("dockline stopped");
    }
    outcome
}

/// The components this config turns on, in start order.
fn enabled_components(config: &dockline_config::Config) -> Vec<&'static str> {
    let mut components = vec!["routes", "health"];
    if dockline_proxy::enabled(config) {
        components.push("proxy");
    }
    if config.dns.enabled {
        components.push("dns");
    }
    if dockline_cluster::enabled(config) {
        components.push("cluster");
    }
    if dockline_l2::enabled(config) {
        components.push("l2");
    }
    components.push("admin");
    components
}

type Ended = (&'static str, anyhow::Result<()>);

async fn with_name(name: &'static str, task: impl Future<Output = anyhow::Result<()>>) -> Ended {
    (name, task.await)
}

/// Spawns a started component and reports it running; its end (other than at shutdown)
/// stops the daemon.
fn spawn_component(
    tasks: &mut JoinSet<Ended>,
    runtime: &Arc<Runtime>,
    name: &'static str,
    task: impl Future<Output = anyhow::Result<()>> + Send + 'static,
) {
    runtime.set_component(name, ComponentState::Running);
    metrics::gauge!(telemetry::COMPONENT_UP, "component" => name).set(1.0);
    let runtime = runtime.clone();
    tasks.spawn(async move {
        let result = task.await;
        let state = match &result {
            Ok(()) => ComponentState::Stopped,
            Err(error) => ComponentState::Failed(format!("{error:#}")),
        };
        runtime.set_component(name, state);
        metrics::gauge!(telemetry::COMPONENT_UP, "component" => name).set(0.0);
        (name, result)
    });
}
