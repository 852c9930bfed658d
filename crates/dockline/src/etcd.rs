//! Fleet configuration from etcd: the shared document at `<prefix>/config`, read in one
//! piece, followed by a watch that tracks its revision, and cached on local disk.
//!
//! The watch never hands over a partial view: the document is one key, so every event is a
//! whole document. Each (re)connection reads the key first and watches from the revision
//! after that read, so a compaction, a leader change or a lost connection ends in a re-read
//! and a new watch, never in a missed or half-applied change.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, anyhow, bail};
use dockline_config::ConfigSource;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, EventType, Identity, TlsOptions, Txn,
    TxnOp, WatchOptions,
};
use tokio_util::sync::CancellationToken;

/// How long a start or a command waits for etcd before it gives up (and a start falls back
/// to the cache).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A request to a member that went away fails after this long, so the client tries another.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Pings on the connection find a member that went silent (its host gone, the link cut)
/// while the watch is idle; a member that stops closes the connection at once. etcd drops a
/// client that pings more often than its `--grpc-keepalive-min-time` (5 s by default) with
/// no data in between, which would end an idle watch every few seconds.
const KEEP_ALIVE: Duration = Duration::from_secs(6);
/// How long a ping may go unanswered before the connection counts as dead.
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest wait between two reconnection attempts.
const MAX_RETRY: Duration = Duration::from_secs(2);

/// The shared document at one revision (the key's modification revision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Document {
    pub(crate) revision: i64,
    pub(crate) text: String,
}

/// What the watch saw happen to the document.
#[derive(Debug)]
pub(crate) enum Change {
    /// A new document (or the one read after a reconnection).
    Put(Document),
    /// The key was deleted at this revision.
    Deleted(i64),
}

/// The member to try first: the last one that answered. One client talks to one member;
/// a request to a dead member would not move on by itself.
static PREFERRED_MEMBER: AtomicUsize = AtomicUsize::new(0);

/// A client connected to the first member of `source` that answers (starting with the last
/// one that did), with TLS and the user's password from their files.
pub(crate) async fn connect(source: &ConfigSource) -> anyhow::Result<Client> {
    let options = connect_options(source)?;
    let count = source.endpoints.len();
    let first = PREFERRED_MEMBER.load(Ordering::Relaxed);
    let mut failures = Vec::new();
    for offset in 0..count {
        let member = (first + offset) % count;
        let endpoint = &source.endpoints[member];
        let attempt = async {
            let mut client = Client::connect([endpoint], Some(options.clone())).await?;
            client.status().await?;
            Ok::<_, etcd_client::Error>(client)
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
            Ok(Ok(client)) => {
                PREFERRED_MEMBER.store(member, Ordering::Relaxed);
                return Ok(client);
            }
            // Every member checks the same credentials: no other one would take them.
            Ok(Err(error)) if refused(&error) => {
                return Err(anyhow::Error::new(error).context(format!(
                    "etcd at {endpoint} refused source.username {:?}",
                    source.username.as_deref().unwrap_or_default()
                )));
            }
            Ok(Err(error)) if may_lack_client_certificate(source, endpoint, &error) => {
                failures.push(format!(
                    "{endpoint}: {error} (if etcd requires client certificates \
                     (--client-cert-auth), set source.cert_file and source.key_file)"
                ));
            }
            Ok(Err(error)) => failures.push(format!("{endpoint}: {error}")),
            Err(_) => failures.push(format!("{endpoint}: no answer within {CONNECT_TIMEOUT:?}")),
        }
    }
    bail!("cannot reach etcd: {}", failures.join("; "))
}

/// Whether etcd answered and refused who the client is or what it asked: its own messages
/// for a wrong user or password and for a missing permission. Trying again cannot help.
pub(crate) fn refused(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::GRpcStatus(status) => [
            "etcdserver: authentication failed",
            "etcdserver: permission denied",
        ]
        .iter()
        .any(|refusal| status.message().starts_with(refusal)),
        _ => false,
    }
}

/// Whether a TLS connection without a client certificate failed after the member accepted
/// it: a member that wants one (`--client-cert-auth`) sends a bad-certificate alert, or (TLS
/// 1.3, where the client finishes the handshake first) just closes, which the client sees
/// as a broken pipe, a reset or a cancelled request, depending on timing.
fn may_lack_client_certificate(
    source: &ConfigSource,
    endpoint: &str,
    error: &etcd_client::Error,
) -> bool {
    source.cert_file.is_none()
        && endpoint.starts_with("https://")
        && !format!("{error:?}").contains("ConnectionRefused")
}

fn connect_options(source: &ConfigSource) -> anyhow::Result<ConnectOptions> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_timeout(REQUEST_TIMEOUT)
        .with_keep_alive(KEEP_ALIVE, KEEP_ALIVE_TIMEOUT)
        .with_keep_alive_while_idle(true)
        // A member cut off from the quorum ends the watch instead of serving a stale view.
        .with_require_leader(true);
    if source.ca_file.is_some() || source.cert_file.is_some() {
        let mut tls = TlsOptions::new();
        if let Some(ca) = &source.ca_file {
            tls = tls.ca_certificate(Certificate::from_pem(read_file(ca, "source.ca_file")?));
        }
        if let (Some(cert), Some(key)) = (&source.cert_file, &source.key_file) {
            tls = tls.identity(Identity::from_pem(
                read_file(cert, "source.cert_file")?,
                read_file(key, "source.key_file")?,
            ));
        }
        options = options.with_tls(tls);
    }
    if let (Some(user), Some(file)) = (&source.username, &source.password_file) {
        let password = String::from_utf8(read_file(file, "source.password_file")?)
            .with_context(|| format!("source.password_file {} is not text", file.display()))?;
        options = options.with_user(user, password.trim_end_matches(['\n', '\r']));
    }
    Ok(options)
}

fn read_file(path: &Path, key: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {key} {}", path.display()))
}

/// The document at `key` (None if absent) and the store's revision when it was read.
pub(crate) async fn read(
    client: &mut Client,
    key: &str,
) -> anyhow::Result<(Option<Document>, i64)> {
    let response = client
        .get(key, None)
        .await
        .with_context(|| format!("cannot read {key} from etcd"))?;
    let revision = response.header().map_or(0, |header| header.revision());
    let document = match response.kvs().first() {
        Some(kv) => Some(Document {
            revision: kv.mod_revision(),
            text: kv
                .value_str()
                .with_context(|| format!("{key} is not UTF-8 text"))?
                .to_owned(),
        }),
        None => None,
    };
    Ok((document, revision))
}

/// Why a push did not write.
#[derive(Debug)]
pub(crate) enum PushRefused {
    /// Someone else wrote the key after it was read: the revision now there.
    Conflict { read: i64, now: i64 },
    /// etcd could not be reached or refused the request.
    Failed(anyhow::Error),
}

/// Writes `text` at `key` if the key is still at `read_revision` (0: still absent); the new
/// revision on success.
pub(crate) async fn compare_and_put(
    client: &mut Client,
    key: &str,
    text: &str,
    read_revision: i64,
) -> Result<i64, PushRefused> {
    let unchanged = Compare::mod_revision(key, CompareOp::Equal, read_revision);
    let txn = Txn::new()
        .when([unchanged])
        .and_then([TxnOp::put(key, text, None)])
        .or_else([TxnOp::get(key, None)]);
    let response = client.txn(txn).await.map_err(|error| {
        let what = if refused(&error) {
            format!("cannot write {key} to etcd: source.username needs readwrite on it")
        } else {
            format!("cannot write {key} to etcd")
        };
        PushRefused::Failed(anyhow::Error::new(error).context(what))
    })?;
    let revision = response.header().map_or(0, |header| header.revision());
    if response.succeeded() {
        return Ok(revision);
    }
    let now = response
        .op_responses()
        .into_iter()
        .find_map(|op| match op {
            etcd_client::TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.mod_revision()),
            _ => None,
        })
        .unwrap_or(0);
    Err(PushRefused::Conflict {
        read: read_revision,
        now,
    })
}

/// Follows the document at `key` until `shutdown`, handing each change the watch sees
/// (after `seen`, the revision last handed over) to `changes`. Reconnects, re-reads and
/// watches again after any failure; only a closed `changes` ends it early.
pub(crate) async fn follow<T: From<Change>>(
    source: ConfigSource,
    mut seen: Option<i64>,
    changes: std::sync::mpsc::Sender<T>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let key = source.document_key();
    let mut retry = Duration::from_millis(100);
    loop {
        let interrupted = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            end = watch_once(&source, &key, &mut seen, &changes, &mut retry) => end,
        };
        match interrupted {
            WatchEnd::LoaderGone => return Err(anyhow!("the config loader thread ended")),
            WatchEnd::Interrupted(error) => tracing::warn!(
                key,
                error = format!("{error:#}"),
                retry_ms = retry.as_millis() as u64,
                "etcd watch interrupted; the running config stays, re-reading"
            ),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(retry) => {}
        }
        retry = (retry * 2).min(MAX_RETRY);
    }
}

/// Why one connection's watch ended.
enum WatchEnd {
    /// etcd went away, compacted past the watch or cancelled it: read again.
    Interrupted(anyhow::Error),
    /// Nobody takes changes any more.
    LoaderGone,
}

impl From<anyhow::Error> for WatchEnd {
    fn from(error: anyhow::Error) -> Self {
        WatchEnd::Interrupted(error)
    }
}

/// One connection: read the key, hand it over if it is new, then watch from the next
/// revision until something breaks.
async fn watch_once<T: From<Change>>(
    source: &ConfigSource,
    key: &str,
    seen: &mut Option<i64>,
    changes: &std::sync::mpsc::Sender<T>,
    retry: &mut Duration,
) -> WatchEnd {
    let hand_over = |change: Change, seen: &mut Option<i64>| {
        let revision = match &change {
            Change::Put(document) => document.revision,
            Change::Deleted(revision) => *revision,
        };
        if *seen == Some(revision) {
            return true;
        }
        *seen = Some(revision);
        changes.send(T::from(change)).is_ok()
    };
    let result: anyhow::Result<WatchEnd> = async {
        let mut client = connect(source).await?;
        let (document, read_at) = read(&mut client, key).await?;
        let change = match document {
            Some(document) => Change::Put(document),
            None => Change::Deleted(read_at),
        };
        // An absent key at start is the loader's business only when it replaces a document.
        let first_seen = seen.is_some() || matches!(change, Change::Put(_));
        if first_seen && !hand_over(change, seen) {
            return Ok(WatchEnd::LoaderGone);
        }
        let options = WatchOptions::new().with_start_revision(read_at + 1);
        let mut stream = client
            .watch(key, Some(options))
            .await
            .with_context(|| format!("cannot watch {key}"))?;
        tracing::info!(
            key,
            revision = read_at,
            "watching the shared config in etcd"
        );
        *retry = Duration::from_millis(100);
        while let Some(response) = stream.message().await.context("the watch broke")? {
            if response.canceled() || response.compact_revision() > 0 {
                return Ok(WatchEnd::Interrupted(anyhow!(
                    "the watch was cancelled (compacted at revision {}): {}",
                    response.compact_revision(),
                    response.cancel_reason()
                )));
            }
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                let change = match event.event_type() {
                    EventType::Put => Change::Put(Document {
                        revision: kv.mod_revision(),
                        text: kv
                            .value_str()
                            .with_context(|| format!("{key} is not UTF-8 text"))?
                            .to_owned(),
                    }),
                    EventType::Delete => Change::Deleted(kv.mod_revision()),
                };
                if !hand_over(change, seen) {
                    return Ok(WatchEnd::LoaderGone);
                }
            }
        }
        Ok(WatchEnd::Interrupted(anyhow!("etcd closed the watch")))
    }
    .await;
    result.unwrap_or_else(WatchEnd::Interrupted)
}

/// The last applied document on local disk, so a node can start while etcd is unreachable.
#[derive(Debug, Clone)]
pub(crate) struct Cache {
    path: PathBuf,
}

impl Cache {
    /// The cache file in `source.cache_dir`.
    pub(crate) fn new(source: &ConfigSource) -> Self {
        Cache {
            path: source.cache_dir.join("etcd-config.json"),
        }
    }

    /// Where the cache lives.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The cached document of `key`; None if there is none (or it was cached for another
    /// key).
    pub(crate) fn load(&self, key: &str) -> anyhow::Result<Option<Document>> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("cannot read the cache {}", self.path.display()));
            }
        };
        let cached: serde_json::Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("the cache {} is not JSON", self.path.display()))?;
        if cached["key"].as_str() != Some(key) {
            return Ok(None);
        }
        match (cached["revision"].as_i64(), cached["document"].as_str()) {
            (Some(revision), Some(text)) => Ok(Some(Document {
                revision,
                text: text.to_owned(),
            })),
            _ => Err(anyhow!(
                "the cache {} lacks a revision or a document",
                self.path.display()
            )),
        }
    }

    /// Replaces the cache with `document` of `key`: written to a temporary file, synced, then
    /// renamed over the old one, so a crash leaves the old cache or the new one, whole.
    pub(crate) fn store(&self, key: &str, document: &Document) -> anyhow::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let cached = serde_json::json!({
            "key": key,
            "revision": document.revision,
            "document": document.text,
        });
        let temporary = self.path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(cached.to_string().as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&temporary, &self.path)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().with_context(|| format!("cannot write the cache {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source_with_cache(dir: &Path) -> ConfigSource {
        ConfigSource {
            cache_dir: dir.to_owned(),
            ..ConfigSource::default()
        }
    }

    #[test]
    fn the_cache_gives_back_the_document_it_stored_for_the_same_key_only() {
        let dir = std::env::temp_dir().join(format!("dockline-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = Cache::new(&source_with_cache(&dir));
        assert_eq!(cache.load("/d/config").unwrap(), None);
        let document = Document {
            revision: 42,
            text: "[dns]\nttl = 9\n".into(),
        };
        cache.store("/d/config", &document).unwrap();
        assert_eq!(cache.load("/d/config").unwrap(), Some(document));
        assert_eq!(cache.load("/other/config").unwrap(), None);
        assert!(!cache.path().with_extension("json.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
