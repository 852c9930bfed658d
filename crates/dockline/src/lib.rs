//! The dockline daemon and its command-line tools, wired from the component crates.
//!
//! `run` starts the daemon: config -> model snapshot (published with arc-swap) -> components,
//! each reconciling to the snapshot; `check` validates a file like a reload would;
//! `status` prints a running daemon's `/status`; `doctor` checks the host against a config;
//! `config_push` and `config_get` write and read the shared document in etcd.

mod capabilities;
mod check;
mod components;
mod daemon;
mod doctor;
mod etcd;
mod fleet;
mod logging;
mod memory;
mod reload;
mod status;
mod supervisor;
mod systemd;
mod telemetry;

use std::path::PathBuf;
use std::process::ExitCode;

pub use check::check;
pub use doctor::doctor;
pub use fleet::{config_get, config_push};
pub use logging::LogFormat;
pub use status::status;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How `dockline run` was asked to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config: Option<PathBuf>,
    pub log_format: LogFormat,
    pub log_level: Option<String>,
}

/// Runs the daemon until SIGTERM or SIGINT; exit 0 after a clean stop, 1 on a start-up or
/// runtime failure (printed with its cause).
pub fn run(options: RunOptions) -> ExitCode {
    logging::init(options.log_format, options.log_level.as_deref());
    capabilities::raise_permitted();
    match daemon::run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "dockline stopped");
            eprintln!("dockline: {error:#}");
            ExitCode::FAILURE
        }
    }
}
