//! Config reload: SIGHUP or a change of the file rebuilds the snapshot.
//!
//! Validate, build, then apply: a file that fails any step is logged with the same lines
//! `dockline check` prints, counted, shown in `/status`, and the running snapshot stays.
//! The supervisor applies a valid snapshot (see [`crate::supervisor`]): it binds the
//! components the reload turns on before it publishes, and a bind failure rejects the
//! reload the same way.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dockline_admin::Runtime;
use dockline_config::{Problem, Problems, Source, parse};
use dockline_model::{Published, Snapshot, build};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::signal::unix::Signal;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::telemetry;

/// Editors write a file in several steps; wait for them to settle before reading.
const SETTLE: Duration = Duration::from_millis(150);

/// A valid snapshot for the supervisor to apply; the answer is the snapshot it replaced, or
/// the problems that rejected it.
#[derive(Debug)]
pub struct Apply {
    pub snapshot: Arc<Snapshot>,
    pub reply: oneshot::Sender<Result<Arc<Snapshot>, Problem>>,
}

/// Reads, parses, validates and builds; environment overrides from the process.
pub fn load_snapshot(source: &Source) -> Result<(String, Snapshot), Problems> {
    let text = source.read()?;
    let snapshot = snapshot_of(source, &text)?;
    Ok((text, snapshot))
}

/// Parsing 10,000 services allocates about eight times what the snapshot keeps. The work
/// runs on a scratch thread, so its garbage (and the first snapshot) land in that thread's
/// malloc arena; the copy made here is compact in the caller's arena, and once the original
/// is dropped the scratch arena is empty and goes back to the system whole.
fn snapshot_of(source: &Source, text: &str) -> Result<Snapshot, Problems> {
    let parse_and_build = || parse(&source.name(), text, std::env::vars()).and_then(build);
    let built = std::thread::scope(|scope| {
        match std::thread::Builder::new()
            .name("dockline-parse".into())
            .spawn_scoped(scope, parse_and_build)
        {
            Ok(worker) => worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(_) => parse_and_build(),
        }
    })?;
    let compact = built.clone();
    drop(built);
    crate::memory::release_free_heap();
    Ok(compact)
}

/// Runs until `shutdown`, reloading on SIGHUP (always) and on file events (when the text
/// changed).
///
/// Loads run on one thread of their own: a load of 10,000 services allocates about eight
/// times what it keeps, and one thread keeps that churn in one malloc arena, trimmed after
/// each load, instead of raising the high-water mark of every worker thread's arena.
///
/// The watch is in place when this returns, before the daemon reports ready, so no change
/// made after readiness can be missed; the returned future is the reload loop.
pub fn start(
    source: Source,
    mut last_text: String,
    published: Arc<Published>,
    runtime: Arc<Runtime>,
    applies: mpsc::Sender<Apply>,
    mut hangup: Signal,
    shutdown: CancellationToken,
) -> anyhow::Result<impl Future<Output = anyhow::Result<()>> + Send> {
    let (events_tx, mut events) = mpsc::channel::<()>(1);
    let watcher = source.path().and_then(|path| match watch(path, events_tx) {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            tracing::warn!(file = %path.display(), %error, "cannot watch the config file; reload with SIGHUP");
            None
        }
    });
    // `forced` reloads (SIGHUP) run even when the text is unchanged.
    let (loads, load_requests) = std::sync::mpsc::channel::<bool>();
    std::thread::Builder::new()
        .name("dockline-config".into())
        .spawn(move || {
            while let Ok(forced) = load_requests.recv() {
                reload(
                    &source,
                    &published,
                    &runtime,
                    &applies,
                    &mut last_text,
                    forced,
                );
            }
        })
        .map_err(|e| anyhow::anyhow!("cannot start the config loader thread: {e}"))?;
    Ok(async move {
        // Kept alive for the life of the loop; dropping it stops the watch.
        let _watcher = watcher;
        loop {
            let forced = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = hangup.recv() => {
                    tracing::info!(trigger = "SIGHUP", "reloading config");
                    true
                }
                Some(()) = events.recv() => {
                    tokio::time::sleep(SETTLE).await;
                    while events.try_recv().is_ok() {}
                    false
                }
            };
            if loads.send(forced).is_err() {
                anyhow::bail!("the config loader thread ended");
            }
        }
    })
}

fn reload(
    source: &Source,
    published: &Published,
    runtime: &Runtime,
    applies: &mpsc::Sender<Apply>,
    last_text: &mut String,
    forced: bool,
) {
    let started = Instant::now();
    let result = source.read().and_then(|text| {
        if !forced && text == *last_text {
            return Ok(None);
        }
        if !forced {
            tracing::info!(trigger = "file change", "reloading config");
        }
        *last_text = text;
        let snapshot = snapshot_of(source, last_text)?;
        if snapshot.config_digest == published.load().config_digest {
            return Ok(Some((Arc::new(snapshot), true)));
        }
        let snapshot = Arc::new(snapshot);
        let previous = apply(applies, snapshot.clone())?;
        drop_when_unread(previous);
        Ok(Some((snapshot, false)))
    });
    match result {
        Ok(None) => {}
        Ok(Some((snapshot, unchanged))) => {
            let elapsed = started.elapsed();
            telemetry::record_snapshot(&snapshot);
            drop(snapshot);
            runtime.reload_succeeded(elapsed);
            metrics::counter!(telemetry::CONFIG_RELOADS, "result" => "ok").increment(1);
            metrics::gauge!(telemetry::CONFIG_LAST_RELOAD_SUCCESS).set(telemetry::unix_now());
            metrics::gauge!(telemetry::CONFIG_LOAD_DURATION).set(elapsed.as_secs_f64());
            tracing::info!(
                unchanged,
                digest = %published.load().config_digest,
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                "config loaded"
            );
        }
        Err(problems) => {
            for problem in problems.iter() {
                tracing::error!(%problem, "invalid config");
            }
            tracing::warn!(
                source = %source.name(),
                problems = problems.len(),
                "config reload rejected; the running config stays"
            );
            runtime.reload_failed(problems.iter().map(ToString::to_string).collect());
            metrics::counter!(telemetry::CONFIG_RELOADS, "result" => "error").increment(1);
        }
    }
    // The replaced snapshot, or the rejected file's parse, was just freed.
    crate::memory::release_free_heap();
}

/// Hands a valid snapshot to the supervisor and waits until it is in force or rejected.
fn apply(
    applies: &mpsc::Sender<Apply>,
    snapshot: Arc<Snapshot>,
) -> Result<Arc<Snapshot>, Problems> {
    let (reply, answer) = oneshot::channel();
    let stopping = || Problems(vec![Problem::new("daemon", "stopping")]);
    applies
        .blocking_send(Apply { snapshot, reply })
        .map_err(|_| stopping())?;
    answer
        .blocking_recv()
        .map_err(|_| stopping())?
        .map_err(|problem| Problems(vec![problem]))
}

/// Drops the replaced snapshot here, once readers that woke for the swap let go of it, so
/// the trim after the load can return its memory.
fn drop_when_unread(previous: Arc<Snapshot>) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while Arc::strong_count(&previous) > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Watches the file's directory, not the file: editors and Kubernetes ConfigMaps replace
/// files by rename, which a watch on the old inode would miss.
fn watch(path: &Path, events: mpsc::Sender<()>) -> notify::Result<notify::RecommendedWatcher> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => ".".into(),
    };
    let name = path.file_name().map(ToOwned::to_owned);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        // Our own reads show up as access events; only writes, creates, renames and removals
        // can change the text.
        let kind = match event.kind {
            EventKind::Access(notify::event::AccessKind::Close(
                notify::event::AccessMode::Write,
            )) => true,
            EventKind::Access(_) => false,
            _ => true,
        };
        // Other files in the directory (a log written next to the config, say) are not
        // the config. A ConfigMap volume swaps its `..data` link to replace the file.
        let ours = event.paths.is_empty()
            || event.paths.iter().any(|p| match p.file_name() {
                Some(file) => {
                    Some(file) == name.as_deref() || file.as_encoded_bytes().starts_with(b"..")
                }
                None => true,
            });
        if kind && ours {
            let _ = events.try_send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}
