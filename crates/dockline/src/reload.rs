//! Config reload: SIGHUP or a change of the file rebuilds the snapshot.
//!
//! Validate, build, then apply: a file that fails any step is logged with the same lines
//! `dockline check` prints, counted, shown in `/status`, and the running snapshot stays.
//! The supervisor applies a valid snapshot (see [`crate::supervisor`]): it binds the
//! components the reload turns on before it publishes, and a bind failure rejects the
//! reload the same way.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use dockline_admin::Runtime;
use dockline_config::{
    Config, ConfigSource, Problem, Problems, ServiceBlocks, Source, SourceKind, parse_reusing,
    parse_source, parse_split_reusing,
};
use dockline_model::{Published, Snapshot, build};
use notify::{EventKind, RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use tokio::signal::unix::Signal;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::etcd::{self, Cache, Change, Document};
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

/// Reads, parses, validates and builds; environment overrides from the process. Also
/// returns the SHA-256 of the text and the services a reload can reuse.
pub fn load_snapshot(source: &Source) -> Result<(TextDigest, Snapshot, ServiceBlocks), Problems> {
    let text = source.read()?;
    let (snapshot, blocks) = snapshot_with(|| {
        parse_reusing(
            &ServiceBlocks::default(),
            &source.name(),
            &text,
            std::env::vars(),
        )
    })?;
    Ok((Sha256::digest(&text), snapshot, blocks))
}

/// Builds the snapshot of a node's local file and the shared document at `key`, as a start,
/// a reload and `dockline config push` all do; also returns the services a reload can reuse.
pub fn split_snapshot(
    local: &Source,
    local_text: &str,
    key: &str,
    shared_text: &str,
) -> Result<(Snapshot, ServiceBlocks), Problems> {
    snapshot_with(|| {
        parse_split_reusing(
            &ServiceBlocks::default(),
            (&local.name(), local_text),
            (key, shared_text),
            std::env::vars(),
        )
    })
}

/// The SHA-256 of a config file's text: what tells a file event that changed nothing.
pub type TextDigest = sha2::digest::Output<Sha256>;

/// The snapshot of what `parse` gives, with what the parse keeps for the next one (the
/// services it parsed). Parsing 10,000 services allocates several times what the snapshot
/// keeps. The work runs on a scratch thread, so its garbage (and the first snapshot) land
/// in that thread's malloc arena; the copies made here are compact in the caller's arena,
/// and once the originals are dropped the scratch arena is empty and goes back to the
/// system whole.
fn snapshot_with<T: Clone + Send>(
    parse: impl Fn() -> Result<(Config, T), Problems> + Sync,
) -> Result<(Snapshot, T), Problems> {
    let parse_and_build = || parse().and_then(|(config, kept)| Ok((build(config)?, kept)));
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

/// Where the config in force comes from, with what the first load read.
#[derive(Debug)]
pub enum Origin {
    /// One file (or the embedded default) holds everything.
    File {
        source: Source,
        digest: TextDigest,
        blocks: ServiceBlocks,
    },
    /// The local file holds `[node]` and `[source]`; etcd holds the shared document.
    Etcd {
        local: Source,
        settings: Box<ConfigSource>,
        document: Document,
        /// Why the document came from the local cache, if it did.
        from_cache: Option<CacheReason>,
        blocks: ServiceBlocks,
    },
}

/// Why a node started from its cached shared document instead of etcd's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheReason {
    /// No member answered.
    Unreachable,
    /// A member answered and refused the node's credentials (or their permissions): a
    /// wrong password or certificate, which waiting will not fix.
    Refused,
}

impl CacheReason {
    fn of(error: &anyhow::Error) -> CacheReason {
        match error.downcast_ref::<etcd_client::Error>() {
            Some(error) if etcd::refused(error) => CacheReason::Refused,
            _ => CacheReason::Unreachable,
        }
    }

    /// How logs and `/status` say it.
    fn describe(self) -> &'static str {
        match self {
            CacheReason::Unreachable => "etcd is unreachable",
            CacheReason::Refused => "etcd refused this node's credentials",
        }
    }
}

impl Origin {
    /// How logs and `/status` name the source.
    pub fn name(&self) -> String {
        match self {
            Origin::File { source, .. } => source.name(),
            Origin::Etcd {
                settings,
                from_cache,
                ..
            } => etcd_name(settings, *from_cache),
        }
    }
}

fn etcd_name(settings: &ConfigSource, from_cache: Option<CacheReason>) -> String {
    let name = format!(
        "etcd {} {}",
        settings.endpoints.join(","),
        settings.document_key()
    );
    match from_cache {
        Some(reason) => format!("{name} (from the local cache: {})", reason.describe()),
        None => name,
    }
}

/// The first load: the file, or (with `source.kind = "etcd"`) the local file and the shared
/// document from etcd, or from the cache when etcd cannot be reached.
pub async fn first_load(source: Source) -> anyhow::Result<(Origin, Snapshot)> {
    let invalid =
        |name: &str, problems: Problems| anyhow!("invalid configuration {name}:\n{problems}");
    let text = source
        .read()
        .map_err(|problems| invalid(&source.name(), problems))?;
    let settings = parse_source(&source.name(), &text, std::env::vars())
        .map_err(|problems| invalid(&source.name(), problems))?;
    if settings.kind == SourceKind::File {
        let (digest, snapshot, blocks) =
            load_snapshot(&source).map_err(|problems| invalid(&source.name(), problems))?;
        let origin = Origin::File {
            source,
            digest,
            blocks,
        };
        return Ok((origin, snapshot));
    }
    let key = settings.document_key();
    let cache = Cache::new(&settings);
    let (document, from_cache) = match read_document(&settings).await {
        Ok(document) => (document, None),
        Err(error) => {
            let reason = CacheReason::of(&error);
            let cached = cache.load(&key)?.ok_or_else(|| {
                anyhow!(
                    "{error:#}; and there is no cached document at {}, so there is no config to start with",
                    cache.path().display()
                )
            })?;
            tracing::warn!(
                key,
                error = format!("{error:#}"),
                cache = %cache.path().display(),
                revision = cached.revision,
                "{}; starting from the cached shared config",
                reason.describe()
            );
            (cached, Some(reason))
        }
    };
    let (mut snapshot, blocks) =
        split_snapshot(&source, &text, &key, &document.text).map_err(|problems| {
            invalid(
                &format!("{key} at revision {}", document.revision),
                problems,
            )
        })?;
    snapshot.config_revision = Some(document.revision);
    if from_cache.is_none() {
        store_cache(&cache, &key, &document);
    }
    Ok((
        Origin::Etcd {
            local: source,
            settings: Box::new(settings),
            document,
            from_cache,
            blocks,
        },
        snapshot,
    ))
}

async fn read_document(settings: &ConfigSource) -> anyhow::Result<Document> {
    let key = settings.document_key();
    let mut client = etcd::connect(settings).await?;
    let (document, _) = etcd::read(&mut client, &key).await?;
    document.ok_or_else(|| {
        anyhow!("{key} does not exist in etcd; write it with `dockline config push`")
    })
}

fn store_cache(cache: &Cache, key: &str, document: &Document) {
    if let Err(error) = cache.store(key, document) {
        tracing::warn!(
            error = format!("{error:#}"),
            "cannot cache the shared config"
        );
    }
}

/// The reload loop: a future that runs until `shutdown`.
pub type Reloads = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// Starts following `origin`: the file (see [`start_file`]) or the etcd document (see
/// [`start_etcd`]). The watch is in place when this returns, before the daemon reports
/// ready, so no change made after readiness can be missed.
pub fn start(
    origin: Origin,
    published: Arc<Published>,
    runtime: Arc<Runtime>,
    applies: mpsc::Sender<Apply>,
    hangup: Signal,
    shutdown: CancellationToken,
) -> anyhow::Result<Reloads> {
    let target = Target {
        published,
        runtime,
        applies,
    };
    match origin {
        Origin::File {
            source,
            digest,
            blocks,
        } => start_file(source, (digest, blocks), target, hangup, shutdown),
        Origin::Etcd {
            local,
            settings,
            document,
            from_cache,
            blocks,
        } => {
            let loaded = (document, from_cache, blocks);
            start_etcd(local, *settings, loaded, target, hangup, shutdown)
        }
    }
}

/// Where reloads go: the snapshot in force, the runtime record and the supervisor.
struct Target {
    published: Arc<Published>,
    runtime: Arc<Runtime>,
    applies: mpsc::Sender<Apply>,
}

/// Loads run on one thread of their own: a load of 10,000 services allocates about eight
/// times what it keeps, and one thread keeps that churn in one malloc arena, trimmed after
/// each load, instead of raising the high-water mark of every worker thread's arena.
fn loader_thread<T: Send + 'static>(
    requests: std::sync::mpsc::Receiver<T>,
    mut load: impl FnMut(T) + Send + 'static,
) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("dockline-config".into())
        .spawn(move || {
            while let Ok(request) = requests.recv() {
                load(request);
            }
        })
        .map(drop)
        .map_err(|e| anyhow!("cannot start the config loader thread: {e}"))
}

/// Reloads on SIGHUP (always) and on file events (when the text changed).
fn start_file(
    source: Source,
    (mut last_digest, mut blocks): (TextDigest, ServiceBlocks),
    target: Target,
    mut hangup: Signal,
    shutdown: CancellationToken,
) -> anyhow::Result<Reloads> {
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
    loader_thread(load_requests, move |forced| {
        target.reload(
            &source.name(),
            || {
                let text = source.read()?;
                let digest = Sha256::digest(&text);
                if !forced && digest == last_digest {
                    return Ok(None);
                }
                if !forced {
                    tracing::info!(trigger = "file change", "reloading config");
                }
                last_digest = digest;
                let (snapshot, kept) = snapshot_with(|| {
                    let (config, kept) =
                        parse_reusing(&blocks, &source.name(), &text, std::env::vars())?;
                    Ok((unchanged_source(&ConfigSource::default())(config)?, kept))
                })?;
                blocks = kept;
                Ok(Some(snapshot))
            },
            || {},
        );
    })?;
    Ok(Box::pin(async move {
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
                    // A SIGHUP (say, right after writing the file) loads at once instead of
                    // waiting out the settle time.
                    let forced = tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(SETTLE) => false,
                        _ = hangup.recv() => {
                            tracing::info!(trigger = "SIGHUP", "reloading config");
                            true
                        }
                    };
                    while events.try_recv().is_ok() {}
                    forced
                }
            };
            if loads.send(forced).is_err() {
                anyhow::bail!("the config loader thread ended");
            }
        }
    }))
}

/// A reload keeps the `[source]` the daemon started with: following another source needs
/// a restart.
fn unchanged_source(
    started_with: &ConfigSource,
) -> impl Fn(Config) -> Result<Config, Problems> + '_ {
    move |config| {
        if config.source == *started_with {
            Ok(config)
        } else {
            Err(Problems(vec![Problem::new(
                "source",
                "differs from the [source] dockline started with; restart dockline to follow another source",
            )]))
        }
    }
}

/// A load request of the etcd loader.
enum EtcdLoad {
    /// The watch saw a change.
    Change(Change),
    /// SIGHUP: the local file again, with the document in force.
    Hangup,
}

impl From<Change> for EtcdLoad {
    fn from(change: Change) -> Self {
        EtcdLoad::Change(change)
    }
}

/// Applies every document the etcd watch hands over, and the local file again on SIGHUP.
/// Each applied document is cached; a rejected one changes nothing.
fn start_etcd(
    local: Source,
    settings: ConfigSource,
    (document, from_cache, mut blocks): (Document, Option<CacheReason>, ServiceBlocks),
    target: Target,
    mut hangup: Signal,
    shutdown: CancellationToken,
) -> anyhow::Result<Reloads> {
    let key = settings.document_key();
    let cache = Cache::new(&settings);
    target
        .runtime
        .set_source(etcd_name(&settings, from_cache), Some(document.revision));
    metrics::gauge!(telemetry::CONFIG_REVISION).set(document.revision as f64);
    let (loads, load_requests) = std::sync::mpsc::channel::<EtcdLoad>();
    let name = etcd_name(&settings, None);
    let started_with = settings.clone();
    let mut in_force = document.clone();
    loader_thread(load_requests, move |request| {
        let candidate = match request {
            EtcdLoad::Hangup => in_force.clone(),
            EtcdLoad::Change(Change::Put(document)) => {
                tracing::info!(
                    trigger = "etcd",
                    key,
                    revision = document.revision,
                    "reloading config"
                );
                document
            }
            EtcdLoad::Change(Change::Deleted(revision)) => {
                target.reject(
                    &name,
                    &Problems(vec![Problem::new(
                        key.as_str(),
                        format!("deleted at revision {revision}; the running config stays"),
                    )]),
                );
                return;
            }
        };
        let mut loaded = false;
        target.reload(
            &name,
            || {
                let local_text = local.read()?;
                let (mut snapshot, kept) = snapshot_with(|| {
                    let (config, kept) = parse_split_reusing(
                        &blocks,
                        (&local.name(), &local_text),
                        (&key, &candidate.text),
                        std::env::vars(),
                    )?;
                    Ok((unchanged_source(&started_with)(config)?, kept))
                })?;
                blocks = kept;
                snapshot.config_revision = Some(candidate.revision);
                Ok(Some(snapshot))
            },
            || {
                target
                    .runtime
                    .set_source(name.clone(), Some(candidate.revision));
                metrics::gauge!(telemetry::CONFIG_REVISION).set(candidate.revision as f64);
                loaded = true;
            },
        );
        if loaded {
            store_cache(&cache, &key, &candidate);
            in_force = candidate;
        }
    })?;
    let seen = from_cache.is_none().then_some(document.revision);
    let follow = etcd::follow(settings, seen, loads.clone(), shutdown.clone());
    Ok(Box::pin(async move {
        tokio::pin!(follow);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                ended = &mut follow => return ended,
                _ = hangup.recv() => {
                    tracing::info!(trigger = "SIGHUP", "reloading config");
                    if loads.send(EtcdLoad::Hangup).is_err() {
                        anyhow::bail!("the config loader thread ended");
                    }
                }
            }
        }
    }))
}

impl Target {
    /// Builds a snapshot with `load` (None: nothing changed), hands it to the supervisor
    /// unless it equals the one in force, and records the outcome; `on_loaded` runs once
    /// the new config is in force.
    fn reload(
        &self,
        name: &str,
        load: impl FnOnce() -> Result<Option<Snapshot>, Problems>,
        on_loaded: impl FnOnce(),
    ) {
        let started = Instant::now();
        let result = load().and_then(|snapshot| {
            let Some(snapshot) = snapshot else {
                return Ok(None);
            };
            // A new etcd revision of the same text is still published: members gossip it.
            let unchanged = {
                let in_force = self.published.load();
                snapshot.config_digest == in_force.config_digest
                    && snapshot.config_revision == in_force.config_revision
            };
            if unchanged {
                return Ok(Some((Arc::new(snapshot), None)));
            }
            let snapshot = Arc::new(snapshot);
            let previous = apply(&self.applies, snapshot.clone())?;
            Ok(Some((snapshot, Some(previous))))
        });
        match result {
            Ok(None) => {}
            Ok(Some((snapshot, previous))) => {
                let unchanged = previous.is_none();
                let elapsed = started.elapsed();
                telemetry::record_snapshot(&snapshot);
                drop(snapshot);
                self.runtime.reload_succeeded(elapsed);
                metrics::counter!(telemetry::CONFIG_RELOADS, "result" => "ok").increment(1);
                metrics::gauge!(telemetry::CONFIG_LAST_RELOAD_SUCCESS).set(telemetry::unix_now());
                metrics::gauge!(telemetry::CONFIG_LOAD_DURATION).set(elapsed.as_secs_f64());
                tracing::info!(
                    unchanged,
                    digest = %self.published.load().config_digest,
                    duration_ms = elapsed.as_secs_f64() * 1000.0,
                    "config loaded"
                );
                on_loaded();
                // After the new config is reported in force: readers may hold the old one
                // for a while.
                if let Some(previous) = previous {
                    drop_when_unread(previous);
                }
            }
            Err(problems) => self.reject(name, &problems),
        }
        // The replaced snapshot, or the rejected file's parse, was just freed.
        crate::memory::release_free_heap();
    }

    /// Logs, counts and shows a rejected reload; the running config stays.
    fn reject(&self, name: &str, problems: &Problems) {
        for problem in problems.iter() {
            tracing::error!(%problem, "invalid config");
        }
        tracing::warn!(
            source = %name,
            problems = problems.len(),
            "config reload rejected; the running config stays"
        );
        self.runtime
            .reload_failed(problems.iter().map(ToString::to_string).collect());
        metrics::counter!(telemetry::CONFIG_RELOADS, "result" => "error").increment(1);
    }
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
