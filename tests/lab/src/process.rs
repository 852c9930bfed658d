//! Handles on programs a lab started.

use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The child is shared with the [`Lab`](crate::Lab): the test can signal, wait for and
/// restart its program while the lab still guarantees a kill on drop, even if the test
/// dropped or leaked this handle.
pub(crate) type Shared = Arc<Mutex<Child>>;

/// Locks a shared child, ignoring poisoning: a panic elsewhere while holding the lock
/// leaves the `Child` itself intact, and cleanup must still reach it.
pub(crate) fn lock(child: &Shared) -> MutexGuard<'_, Child> {
    child.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How many trailing log lines to show when a test fails.
pub(crate) const LOG_TAIL_LINES: usize = 40;

/// The last `lines` lines of `log`, indented, after a count of the lines left out.
pub(crate) fn tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    let skip = all.len().saturating_sub(lines);
    let mut out: Vec<String> = Vec::with_capacity(lines + 1);
    if skip > 0 {
        out.push(format!("    ... {skip} earlier lines"));
    }
    out.extend(all[skip..].iter().map(|line| format!("    {line}")));
    out.join("\n")
}

/// A program running in a namespace, started by [`Lab::spawn`](crate::Lab::spawn).
///
/// `ip netns exec` execs the program, so [`pid`](Self::pid) is the program's own pid and
/// signals reach it directly, not a wrapper.
#[derive(Debug)]
pub struct Process {
    pub(crate) child: Shared,
    pub(crate) pid: u32,
    pub(crate) log_path: PathBuf,
    pub(crate) what: String,
}

impl Process {
    /// The program's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `sig` ("TERM", "HUP", "KILL", ...) with the `kill` command, since the
    /// workspace forbids the unsafe code a direct `kill(2)` needs.
    ///
    /// Does nothing once the process has been reaped: its pid may belong to an unrelated
    /// process by then. The lock is held across the check and the kill, so nothing can
    /// reap it in between; an exited but unreaped child is a zombie, which takes signals.
    pub fn signal(&self, sig: &str) {
        let mut child = lock(&self.child);
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        let pid = self.pid.to_string();
        let out = std::process::Command::new("kill")
            .args(["-s", sig, &pid])
            .output()
            .unwrap_or_else(|e| panic!("cannot run `kill -s {sig} {pid}`: {e}"));
        drop(child);
        if !out.status.success() {
            panic!(
                "`kill -s {sig} {pid}` ({}) failed: {}",
                self.what,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }

    /// Waits up to `timeout` for the process to exit; `None` if it is still running.
    ///
    /// Polls rather than blocking in `wait`, because a blocked `wait` holds the lock the
    /// lab needs to kill the process, and the test must be able to give up.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match lock(&self.child).try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => {}
                Err(e) => panic!("waiting for {} (pid {}): {e}", self.what, self.pid),
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the process has not exited yet.
    pub fn is_running(&mut self) -> bool {
        self.wait_timeout(Duration::ZERO).is_none()
    }

    /// Everything the process wrote to stdout and stderr so far, interleaved as written.
    pub fn log(&self) -> String {
        match std::fs::read(&self.log_path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => panic!("reading log {}: {e}", self.log_path.display()),
        }
    }

    /// The file holding the process's stdout and stderr, in the lab's directory.
    pub fn log_path(&self) -> PathBuf {
        self.log_path.clone()
    }
}
