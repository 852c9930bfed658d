//! Throwaway network labs for dockline's scenario tests.
//!
//! Each scenario test builds its own small network from Linux network namespaces, veth
//! links and bridges (with iproute2's `ip`), starts the real `dockline` binary and real
//! peers (BIRD, curl, keepalived, ...) inside it, and tears it all down when the [`Lab`]
//! is dropped, even when the test panics. Namespace names carry the test binary's pid and
//! a counter, so tests run in parallel within one binary and across binaries without
//! stepping on each other.
//!
//! [`Daemon`] runs the `dockline` binary in a lab namespace: it starts it on a config and
//! waits until it is ready, reloads and stops it, and reads its `/status` and `/metrics`
//! ([`Scrape`]).
//!
//! Needs root and iproute2. Without them [`Lab::new`] panics rather than skipping, so a
//! CI job that lost its privileges fails loudly instead of passing without testing.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod cmd;
mod daemon;
mod lab;
mod netns;
mod process;
mod scrape;

use std::time::{Duration, Instant};

pub use daemon::{Daemon, DaemonBuilder};
pub use lab::Lab;
pub use netns::{Netns, Switch, list_netns, sweep_stale};
pub use process::Process;
pub use scrape::{Sample, Scrape};

/// Polls `f` every 20 ms until it returns true; panics after `timeout`.
///
/// Scenario tests wait on daemons that converge at their own pace (sessions coming up,
/// routes arriving); a deadline plus polling is both faster and less flaky than sleeps.
pub fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    loop {
        if f() {
            return;
        }
        if start.elapsed() >= timeout {
            panic!("timed out after {timeout:?}: {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// GETs `url` with curl from inside `ns`: the status code and body, or `None` when curl
/// fails (cannot connect, or no complete answer within its 2 s limit).
///
/// A real client in the client's namespace, so the request takes the same path through
/// the lab's network as real traffic would. URL globbing is off (`-g`) so IPv6 literals
/// like `http://[fd00::1]/` work.
pub fn http_get(ns: &Netns, url: &str) -> Option<(u16, String)> {
    let out = ns.exec(
        "curl",
        &[
            "-g",
            "-s",
            "-m",
            "2",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            url,
        ],
    );
    if !out.status.success() {
        return None;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (body, code) = stdout.rsplit_once('\n')?;
    match code.trim().parse::<u16>() {
        Ok(0) | Err(_) => None,
        Ok(code) => Some((code, body.to_owned())),
    }
}
