//! `dockline config push` and `dockline config get`: the shared document in etcd, written
//! only when it is valid together with this node's local file, and only over the revision
//! it was read at.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use dockline_config::{ConfigSource, Problems, Source, SourceKind, parse_source};

use etcd_client::Client;

use crate::etcd::{self, Document, PushRefused};
use crate::reload::split_snapshot;

/// Validates `shared` with the local file's `[node]` as a reload would, then writes it with a
/// compare-and-swap on the revision read. Exit 1 on problems, a lost race or an etcd error.
pub fn config_push(local: &Path, shared: &Path) -> ExitCode {
    let local = Source::File(local.to_owned());
    let outcome = local_settings(&local).and_then(|(local_text, settings)| {
        let shared_source = Source::File(shared.to_owned());
        let shared_text = shared_source
            .read()
            .map_err(|problems| anyhow!("{problems}"))?;
        command_runtime()?.block_on(push(&local, &local_text, &settings, &shared_text))
    });
    finish(outcome)
}

/// Prints the shared document and its revision (as a TOML comment on the first line, so the
/// output can be edited and pushed back).
pub fn config_get(local: &Path) -> ExitCode {
    let local = Source::File(local.to_owned());
    let outcome = local_settings(&local).and_then(|(_, settings)| {
        let got: anyhow::Result<()> = command_runtime()?.block_on(async {
            let key = settings.document_key();
            let (_, current) = connect_and_read(&settings, &key).await?;
            match current {
                Some(document) => {
                    println!("# {key} at revision {}", document.revision);
                    print!("{}", document.text);
                    Ok(())
                }
                None => {
                    bail!("{key} does not exist in etcd; write it with `dockline config push`")
                }
            }
        });
        Ok(got?)
    });
    finish(outcome)
}

/// What a push or a get ended with: problems are printed one per line, like `check`.
enum Failure {
    Problems(Problems),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure::Other(error)
    }
}

fn finish(outcome: Result<(), Failure>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Problems(problems)) => {
            for problem in problems.iter() {
                println!("{problem}");
            }
            eprintln!(
                "dockline: {} problem(s); nothing was written",
                problems.len()
            );
            ExitCode::FAILURE
        }
        Err(Failure::Other(error)) => {
            eprintln!("dockline: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The local file's text and its etcd `[source]`.
fn local_settings(local: &Source) -> Result<(String, ConfigSource), Failure> {
    let text = local.read().map_err(Failure::Problems)?;
    let settings =
        parse_source(&local.name(), &text, std::env::vars()).map_err(Failure::Problems)?;
    if settings.kind != SourceKind::Etcd {
        return Err(anyhow!(
            "{}: source.kind is not \"etcd\"; the shared document lives in etcd only with an etcd source",
            local.name()
        )
        .into());
    }
    Ok((text, settings))
}

fn command_runtime() -> Result<tokio::runtime::Runtime, Failure> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?)
}

async fn push(
    local: &Source,
    local_text: &str,
    settings: &ConfigSource,
    shared_text: &str,
) -> Result<(), Failure> {
    let key = settings.document_key();
    split_snapshot(local, local_text, &key, shared_text).map_err(Failure::Problems)?;
    let (mut client, current) = connect_and_read(settings, &key).await?;
    let read_revision = current.map_or(0, |document| document.revision);
    match etcd::compare_and_put(&mut client, &key, shared_text, read_revision).await {
        Ok(revision) => {
            println!("{key}: pushed at revision {revision}");
            Ok(())
        }
        Err(PushRefused::Conflict { read, now }) => Err(anyhow!(
            "conflict: {key} changed after this push read it at revision {read} (now at revision {now}); nothing was written, get the new document and push again"
        )
        .into()),
        Err(PushRefused::Failed(error)) => Err(error.into()),
    }
}

/// Whether etcd itself refused the user or the request (see [`etcd::refused`]).
fn refused(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<etcd_client::Error>()
        .is_some_and(etcd::refused)
}

/// How long a command retries reaching etcd and reading the key: long enough for a leader
/// election after a member is lost.
const READ_PATIENCE: Duration = Duration::from_secs(5);

/// A client and the document at `key`, retried until [`READ_PATIENCE`] runs out, unless etcd
/// refused the credentials. Only the read is retried: a write that failed is reported, never
/// repeated blindly.
async fn connect_and_read(
    settings: &ConfigSource,
    key: &str,
) -> anyhow::Result<(Client, Option<Document>)> {
    let deadline = Instant::now() + READ_PATIENCE;
    loop {
        let attempt = async {
            let mut client = etcd::connect(settings).await?;
            let (document, _) = etcd::read(&mut client, key).await?;
            anyhow::Ok((client, document))
        };
        match attempt.await {
            Ok(read) => return Ok(read),
            Err(error) if Instant::now() >= deadline || refused(&error) => return Err(error),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
