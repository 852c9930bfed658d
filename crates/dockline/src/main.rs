//! The `dockline` command: parses the command line and hands over to the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dockline::{LogFormat, RunOptions};

#[derive(Debug, Parser)]
#[command(
    name = "dockline",
    version,
    about = "Node-level load balancer for bare-metal clusters"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon (on the embedded single-node default without --config).
    Run {
        /// The TOML configuration; reloaded on SIGHUP and when the file changes.
        #[arg(short, long, env = "DOCKLINE_CONFIG")]
        config: Option<PathBuf>,
        /// Log lines as text or JSON.
        #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "DOCKLINE_LOG_FORMAT")]
        log_format: LogFormat,
        /// A tracing filter such as "info" or "dockline=debug" (RUST_LOG also works).
        #[arg(long, env = "DOCKLINE_LOG")]
        log_level: Option<String>,
    },
    /// Validate a configuration file and print every problem (exit 1 if any).
    Check { file: PathBuf },
    /// Check the host against a config: capabilities, ports, sysctls, interfaces, peers
    /// (exit 1 if a check fails).
    Doctor {
        /// The TOML configuration (the embedded default without one).
        #[arg(short, long, env = "DOCKLINE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Show a running daemon's status as tables.
    Status {
        /// The admin API address.
        #[arg(long, default_value = "127.0.0.1:9470", env = "DOCKLINE_ADMIN")]
        admin: SocketAddr,
        /// Print the raw JSON document instead of tables.
        #[arg(long)]
        json: bool,
        /// Exit 1 unless the daemon is ready (every enabled component runs), as a health
        /// check; the output is the same.
        #[arg(long)]
        ready: bool,
    },
    /// Read or write the shared config document in etcd (with source.kind = "etcd").
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print the version.
    Version,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate SHARED with the local file's [node] as a reload would, then write it to etcd
    /// unless someone else wrote it since it was read (exit 1 on problems or a conflict).
    Push {
        /// This node's local file, with [node] and [source].
        #[arg(short, long, env = "DOCKLINE_CONFIG")]
        config: PathBuf,
        /// The shared document: every section but [node] and [source].
        shared: PathBuf,
    },
    /// Print the shared document in etcd, its revision on the first line.
    Get {
        /// This node's local file, with [node] and [source].
        #[arg(short, long, env = "DOCKLINE_CONFIG")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            config,
            log_format,
            log_level,
        } => dockline::run(RunOptions {
            config,
            log_format,
            log_level,
        }),
        Command::Check { file } => dockline::check(&file),
        Command::Doctor { config } => dockline::doctor(config),
        Command::Status { admin, json, ready } => dockline::status(admin, json, ready),
        Command::Config {
            command: ConfigCommand::Push { config, shared },
        } => dockline::config_push(&config, &shared),
        Command::Config {
            command: ConfigCommand::Get { config },
        } => dockline::config_get(&config),
        Command::Version => {
            println!("dockline {}", dockline::VERSION);
            ExitCode::SUCCESS
        }
    }
}
