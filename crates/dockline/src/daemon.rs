//! The daemon's life: load the config, start every enabled component, apply reloads, serve
//! until SIGTERM or SIGINT, then stop everything within a grace period.
//!
//! A component binds its sockets before it is reported running, so a port in use stops the
//! start with an error naming the address. One cancellation token reaches every task; which
//! components run is the supervisor's business ([`crate::supervisor`]).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, anyhow};
use dockline_admin::Runtime;
use dockline_config::Source;
use dockline_model::{LiveHealth, LiveMembers, LiveOwners, Published};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::reload::Apply;
use crate::supervisor::{Ended, Supervisor};
use crate::{RunOptions, reload, telemetry};
use dockline_admin::LiveState;

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
    let live = LiveState {
        published: Arc::new(Published::new(snapshot)),
        // Endpoint health verdicts: written by the health checker, read by everyone else.
        health: Arc::new(LiveHealth::default()),
        // Membership (written by cluster) and VIP owners (written by l2).
        members: Arc::new(LiveMembers::default()),
        owners: Arc::new(LiveOwners::default()),
        runtime: runtime.clone(),
        metrics,
    };
    let shutdown = CancellationToken::new();

    let (applies_tx, mut applies) = mpsc::channel::<Apply>(1);
    let reloads = reload::start(
        source,
        text,
        live.published.clone(),
        runtime,
        applies_tx,
        hangup,
        shutdown.clone(),
    )?;
    let mut reloads = tokio::spawn(reloads);

    let (mut supervisor, mut ended) = Supervisor::new(live.clone(), shutdown.clone());
    supervisor.start_all().await?;
    tracing::info!(node = %live.published.load().node.name, "dockline running");

    let outcome = loop {
        tokio::select! {
            _ = terminate.recv() => {
                tracing::info!(signal = "SIGTERM", "stopping");
                break Ok(());
            }
            _ = interrupt.recv() => {
                tracing::info!(signal = "SIGINT", "stopping");
                break Ok(());
            }
            Some(Apply { snapshot, reply }) = applies.recv() => {
                let _ = reply.send(supervisor.apply(snapshot).await);
            }
            Some(Ended { name, result }) = ended.recv() => break match result {
                Ok(()) => Err(anyhow!("{name} stopped unexpectedly")),
                Err(error) => Err(error.context(format!("{name} failed"))),
            },
            ended = &mut reloads => break match ended {
                Ok(Ok(())) => Err(anyhow!("config reloads stopped unexpectedly")),
                Ok(Err(error)) => Err(error.context("config reloads failed")),
                Err(error) => Err(anyhow!("config reloads panicked: {error}")),
            },
        }
    };
    shutdown.cancel();
    // Rejects a reload that waits for an answer, so the loader thread can end.
    drop(applies);
    supervisor.stop_all().await;
    if outcome.is_ok() {
        tracing::info!("dockline stopped");
    }
    outcome
}
