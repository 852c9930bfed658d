//! [`Daemon`]: the real `dockline` binary running in a lab namespace, and what scenario
//! tests ask of it through its admin API (readiness, `/status`, `/metrics`) and its config
//! file (reloads).

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::process::{LOG_TAIL_LINES, tail};
use crate::scrape::Scrape;
use crate::{Lab, Netns, Process, http_get, wait_until};

/// dockline's admin listener when the config does not set `admin.listen`.
const DEFAULT_ADMIN: &str = "127.0.0.1:9470";

/// How long [`DaemonBuilder::start`] waits for `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`Daemon::reload`] waits for `/status` to count the reload.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`DaemonBuilder::start_expecting_failure`] waits for the daemon to give up.
const FAILURE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long [`Daemon::stop`] waits for the process to exit after the signal.
const STOP_TIMEOUT: Duration = Duration::from_secs(7);

/// Where the daemon's config comes from.
#[derive(Debug)]
enum ConfigSource {
    /// `run` without `--config`: the embedded default (plus environment overrides).
    Embedded,
    /// Text written to a new file in the lab's directory.
    Text(String),
    /// A file the test prepared itself.
    File(PathBuf),
}

/// How to start a [`Daemon`]; made by [`Daemon::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `start` or `spawn`"]
pub struct DaemonBuilder {
    binary: String,
    netns: Netns,
    config: ConfigSource,
    args: Vec<String>,
    env: Vec<(String, String)>,
    admin: String,
}

impl DaemonBuilder {
    /// Runs the daemon on this config text, written to `dockline.toml` in the lab's
    /// directory (`dockline-2.toml`, `dockline-3.toml`, ... for later daemons of the lab).
    pub fn config(mut self, text: &str) -> Self {
        self.config = ConfigSource::Text(text.to_owned());
        self
    }

    /// Runs the daemon on a config file the test has prepared (a link, say); the file is
    /// left as it is.
    pub fn config_file(mut self, path: &Path) -> Self {
        self.config = ConfigSource::File(path.to_owned());
        self
    }

    /// Adds an argument after `run --config FILE` (e.g. `--log-format`).
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// Sets an environment variable for the daemon; the rest of the environment is the
    /// test's own.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Where the handle reaches the admin API (`host:port`, IPv6 in brackets), when the
    /// config moves it off dockline's default 127.0.0.1:9470. The handle does not read the
    /// config: this must say what `admin.listen` (or `DOCKLINE__ADMIN__LISTEN`) says.
    pub fn admin(mut self, listen: &str) -> Self {
        self.admin = listen.to_owned();
        self
    }

    /// Starts the daemon and waits until `/readyz` answers 200.
    ///
    /// Panics, with the daemon's log tail, when the daemon exits first or is not ready
    /// within 10 s.
    pub fn start(self, lab: &mut Lab) -> Daemon {
        let mut daemon = self.spawn(lab);
        daemon.wait_ready();
        daemon
    }

    /// Starts a daemon that must refuse to start: waits for it to exit, and returns its log
    /// for the test to look for the reason in.
    ///
    /// Panics unless it exits with status 1 within 5 s.
    pub fn start_expecting_failure(self, lab: &mut Lab) -> String {
        let mut daemon = self.spawn(lab);
        let Some(status) = daemon.wait_exit(FAILURE_TIMEOUT) else {
            panic!(
                "{} still runs {FAILURE_TIMEOUT:?} after its start, which should fail{}",
                daemon.what(),
                daemon.log_tail()
            );
        };
        assert_eq!(
            status.code(),
            Some(1),
            "{} exited with {status}, not 1{}",
            daemon.what(),
            daemon.log_tail()
        );
        daemon.log()
    }

    /// Starts the daemon and returns at once, for daemons started together and then each
    /// waited for ([`Daemon::wait_ready`]).
    pub fn spawn(self, lab: &mut Lab) -> Daemon {
        let config_path = match self.config {
            ConfigSource::Embedded => None,
            ConfigSource::File(path) => Some(path),
            ConfigSource::Text(text) => {
                let path = free_config_path(lab.dir());
                std::fs::write(&path, text)
                    .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
                Some(path)
            }
        };
        let mut args: Vec<&str> = vec!["run"];
        if let Some(path) = &config_path {
            let path = path
                .to_str()
                .unwrap_or_else(|| panic!("config path {} is not UTF-8", path.display()));
            args.extend(["--config", path]);
        }
        args.extend(self.args.iter().map(String::as_str));
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let process = lab.spawn_with_env(&self.netns, &self.binary, &args, &env);
        Daemon {
            process,
            netns: self.netns,
            config_path,
            admin: self.admin,
        }
    }
}

/// `dockline.toml` in `dir`, or the first of `dockline-2.toml`, `dockline-3.toml`, ... not
/// taken yet, so every daemon of a lab has a file of its own.
fn free_config_path(dir: &Path) -> PathBuf {
    let first = dir.join("dockline.toml");
    if !first.exists() {
        return first;
    }
    (2..)
        .map(|n| dir.join(format!("dockline-{n}.toml")))
        .find(|path| !path.exists())
        .unwrap_or(first)
}

/// A `dockline run` process in a lab namespace.
///
/// The [`Lab`] owns the process: it is killed when the lab is dropped, also when the test
/// panics, whatever became of this handle.
#[derive(Debug)]
pub struct Daemon {
    process: Process,
    netns: Netns,
    config_path: Option<PathBuf>,
    admin: String,
}

impl Daemon {
    /// How to start `binary` (the scenario tests pass `env!("CARGO_BIN_EXE_dockline")`)
    /// in `netns`. Without [`config`](DaemonBuilder::config) or
    /// [`config_file`](DaemonBuilder::config_file) it runs on its embedded default.
    pub fn builder(binary: &str, netns: &Netns) -> DaemonBuilder {
        DaemonBuilder {
            binary: binary.to_owned(),
            netns: netns.clone(),
            config: ConfigSource::Embedded,
            args: Vec::new(),
            env: Vec::new(),
            admin: DEFAULT_ADMIN.to_owned(),
        }
    }

    /// The config file the daemon runs on.
    ///
    /// Panics for a daemon on its embedded default, which has none.
    pub fn config_path(&self) -> &Path {
        self.config_path.as_deref().unwrap_or_else(|| {
            panic!(
                "{} runs on its embedded default: it has no config file",
                self.what()
            )
        })
    }

    /// Replaces the config file's text, in place, as an editor or config management does,
    /// and returns at once: the daemon notices through its watch on the file.
    pub fn write_config(&self, text: &str) {
        let path = self.config_path();
        std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// Reloads with `text`: writes it to the config file (as [`write_config`](Self::write_config)),
    /// sends SIGHUP, and waits until `/status` counts one more reload, accepted or
    /// rejected, than before. `Err` holds the problems of a rejected reload.
    ///
    /// The file watch may count a reload of the same text as well, so the counters may
    /// move by two; the config in force is the same either way. A change written just
    /// before (by [`write_config`](Self::write_config)) may still be pending and be the
    /// reload counted: let it land first. Components follow an accepted config on their
    /// own schedule: wait for the effect the test looks for.
    pub fn reload(&self, text: &str) -> Result<(), Vec<String>> {
        let (ok_before, error_before) = self.reload_counts();
        self.write_config(text);
        self.signal("HUP");
        let mut ok_after = ok_before;
        wait_until(
            RELOAD_TIMEOUT,
            &format!("{} counts the SIGHUP reload in /status", self.what()),
            || {
                let (ok, error) = self.reload_counts();
                ok_after = ok;
                ok + error > ok_before + error_before
            },
        );
        if ok_after > ok_before {
            return Ok(());
        }
        let status = self.status();
        let problems = status["config"]["last_reload_error"]["problems"]
            .as_array()
            .map(|problems| {
                problems
                    .iter()
                    .map(|p| p.as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        Err(problems)
    }

    /// The reloads `/status` has counted: (accepted, rejected).
    fn reload_counts(&self) -> (u64, u64) {
        let status = self.status();
        let count = |key: &str| {
            status["config"][key]
                .as_u64()
                .unwrap_or_else(|| panic!("/status has no config.{key}: {status}"))
        };
        (count("reloads_ok"), count("reloads_error"))
    }

    /// The URL of `path` on the admin API, e.g. `admin_url("/healthz")`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// GETs `path` from the admin API, from inside the daemon's namespace: status code and
    /// body, or `None` when nothing answers (see [`http_get`]).
    pub fn admin_get(&self, path: &str) -> Option<(u16, String)> {
        http_get(&self.netns, &self.admin_url(path))
    }

    /// The `/status` document.
    ///
    /// Panics when it does not answer 200 with JSON.
    pub fn status(&self) -> serde_json::Value {
        let body = self.admin_get_ok("/status");
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{}: /status is not JSON ({e}): {body}", self.what()))
    }

    /// One read of `/metrics`, to ask several questions of the same moment.
    ///
    /// Panics when it does not answer 200 or a line is not a sample.
    pub fn metrics(&self) -> Scrape {
        Scrape::parse(&self.admin_get_ok("/metrics"))
    }

    /// The value of the one series named exactly `name` whose labels include every pair of
    /// `labels` (others may have any value), read from `/metrics` now; `None` when no series
    /// matches.
    ///
    /// Panics when several series match: name enough labels to pick one, or ask for
    /// [`metric_sum`](Self::metric_sum).
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.metrics().value(name, labels)
    }

    /// The sum over every series named exactly `name` whose labels include every pair of
    /// `labels`, read from `/metrics` now; 0 when none matches.
    pub fn metric_sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.metrics().sum(name, labels)
    }

    /// Everything the daemon wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// The daemon's pid (its own, not a wrapper's).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Sends `signal` ("HUP", "KILL", ...); see [`Process::signal`].
    pub fn signal(&self, signal: &str) {
        self.process.signal(signal);
    }

    /// Whether the daemon is still running.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Waits up to `timeout` for the daemon to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.process.wait_timeout(timeout)
    }

    /// Stops the daemon with SIGTERM; see [`stop_with`](Self::stop_with).
    pub fn stop(&mut self) -> ExitStatus {
        self.stop_with("TERM")
    }

    /// Sends `signal` and returns the exit status.
    ///
    /// Panics, with the log tail, when the daemon is still running 7 s later.
    pub fn stop_with(&mut self, signal: &str) -> ExitStatus {
        self.signal(signal);
        self.wait_exit(STOP_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "{} still runs {STOP_TIMEOUT:?} after SIG{signal}{}",
                self.what(),
                self.log_tail()
            )
        })
    }

    /// Polls `/readyz` until it answers 200, as [`DaemonBuilder::start`] does after the
    /// spawn; for daemons spawned together (a cluster's nodes) and then waited for.
    ///
    /// Panics, with the log tail, when the daemon exits first or is not ready within 10 s.
    pub fn wait_ready(&mut self) {
        let url = self.admin_url("/readyz");
        let started = Instant::now();
        loop {
            let answer = http_get(&self.netns, &url);
            if matches!(answer, Some((200, _))) {
                return;
            }
            if let Some(status) = self.wait_exit(Duration::ZERO) {
                panic!(
                    "{} exited ({status}) before {url} answered{}",
                    self.what(),
                    self.log_tail()
                );
            }
            if started.elapsed() >= READY_TIMEOUT {
                let last = match answer {
                    Some((code, body)) => format!("{code} {}", body.trim()),
                    None => "no answer".to_owned(),
                };
                panic!(
                    "{} not ready within {READY_TIMEOUT:?}: {url} last said {last:?}{}",
                    self.what(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The body of `path` on the admin API; panics unless it answers 200.
    fn admin_get_ok(&self, path: &str) -> String {
        match self.admin_get(path) {
            Some((200, body)) => body,
            Some((code, body)) => panic!("{}: {path} answered {code}: {body}", self.what()),
            None => panic!("{}: {path} does not answer", self.what()),
        }
    }

    fn what(&self) -> String {
        format!("dockline (pid {}) in {}", self.process.pid(), self.netns)
    }

    fn log_tail(&self) -> String {
        format!(
            "\n--- last {LOG_TAIL_LINES} lines of {}:\n{}",
            self.process.log_path().display(),
            tail(&self.log(), LOG_TAIL_LINES)
        )
    }
}
