//! Namespace handles and the sweep of namespaces left behind by killed test runs.

use std::path::Path;
use std::process::Output;

use crate::cmd;

/// Prefix of every namespace a lab creates; [`sweep_stale`] relies on it.
pub(crate) const PREFIX: &str = "dl-";

/// A network namespace made by a [`Lab`](crate::Lab).
///
/// Only the name: cloning is cheap, and the namespace's lifetime belongs to the lab, so a
/// handle outliving its lab simply refers to a namespace that no longer exists.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Netns {
    /// The name under `/run/netns`, usable with `ip -n NAME` and `ip netns exec NAME`.
    pub name: String,
}

impl Netns {
    /// Runs `program args` to completion inside the namespace. Returns whatever happened,
    /// so tests can assert on failures too; panics only if `ip` itself cannot start.
    pub fn exec(&self, program: &str, args: &[&str]) -> Output {
        let mut full = vec!["netns", "exec", self.name.as_str(), program];
        full.extend_from_slice(args);
        cmd::output("ip", &full)
    }

    /// Runs a shell script inside the namespace, for pipelines and redirections.
    pub fn sh(&self, script: &str) -> Output {
        self.exec("sh", &["-c", script])
    }

    /// Like [`sh`](Self::sh), but panics with the script's stderr unless it succeeds, and
    /// returns its stdout: most setup steps in a test have no sensible way to continue.
    pub fn sh_ok(&self, script: &str) -> String {
        let out = self.sh(script);
        if !out.status.success() {
            panic!(
                "in netns {}: `{script}` failed ({}): {}{}",
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `ip -n NAME args` and panics on failure; `ip -n` needs no exec into the
    /// namespace, so it is the cheap way to configure one.
    pub fn ip(&self, args: &[&str]) -> Output {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        cmd::ip(&full)
    }

    /// Adds addresses to `dev`, then brings it up. IPv6 addresses get `nodad`, so they
    /// are usable at once instead of after a second of duplicate address detection.
    pub(crate) fn configure(&self, dev: &str, addrs: &[&str]) {
        for addr in addrs {
            if addr.contains(':') {
                self.ip(&["-6", "addr", "add", addr, "dev", dev, "nodad"]);
            } else {
                self.ip(&["addr", "add", addr, "dev", dev]);
            }
        }
        self.ip(&["link", "set", dev, "up"]);
    }
}

impl std::fmt::Display for Netns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// A namespace holding the bridge `br0`: an L2 segment that hosts join with
/// [`Lab::attach`](crate::Lab::attach). Keeping the bridge in its own namespace keeps
/// the hosts' routing tables free of it, like a real switch.
#[derive(Debug, Clone)]
pub struct Switch {
    /// The namespace the bridge lives in.
    pub ns: Netns,
}

impl Switch {
    /// The bridge's name inside [`ns`](Self::ns).
    pub const BRIDGE: &'static str = "br0";
}

/// Names of all network namespaces on the machine (`ip netns list`), lab-made or not.
pub fn list_netns() -> Vec<String> {
    let out = cmd::ip(&["netns", "list"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        // Lines look like "NAME" or "NAME (id: 3)".
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// Deletes namespaces named `dl-<pid>-...` whose `<pid>` is no longer alive.
///
/// A test binary killed by SIGKILL or a CI timeout runs no destructors, and its
/// namespaces (and the daemons in them, holding ports and addresses) would otherwise
/// pile up forever. Processes still inside such a namespace are killed first, because
/// deleting the name alone does not free a namespace that processes still use. A
/// namespace whose owner pid was reused by an unrelated process is left alone: missing
/// one is harmless, deleting a live test's namespace is not.
pub fn sweep_stale() {
    let out = match std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("dockline-lab: sweep_stale: cannot run `ip netns list`: {e}");
            return;
        }
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(owner) = owner_pid(name) else {
            continue;
        };
        if Path::new(&format!("/proc/{owner}")).exists() {
            continue;
        }
        kill_all_in(name);
        cmd::quiet("ip", &["netns", "del", name]);
    }
}

/// The pid embedded in a lab namespace name, `dl-<pid>-...`.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok()
}

/// Where iproute2 keeps namespace names (bind mounts of the namespace files).
pub(crate) const RUN_DIR: &str = "/var/run/netns";

/// Identity of a network namespace: device and inode of its nsfs file, which is what
/// both `/proc/PID/ns/net` and a name under [`RUN_DIR`] resolve to.
pub(crate) fn ns_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino()))
}

/// SIGKILLs every process in namespace `name` (`ip netns pids`), for cleanup paths:
/// errors are reported on stderr, never panicked on.
///
/// Refuses when `name` turns out to be the namespace this test process or init lives
/// in: a `dl-` name bound to the host's namespace (by a bug, or by `ip netns attach` to
/// a process that had not yet left it) would otherwise kill every process on the host.
pub(crate) fn kill_all_in(name: &str) {
    let Some(target) = ns_id(&Path::new(RUN_DIR).join(name)) else {
        return;
    };
    for own in ["/proc/self/ns/net", "/proc/1/ns/net"] {
        if ns_id(Path::new(own)) == Some(target) {
            eprintln!(
                "dockline-lab: netns {name} is the host's own namespace ({own}); not killing its processes"
            );
            return;
        }
    }
    let out = match std::process::Command::new("ip")
        .args(["netns", "pids", name])
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("dockline-lab: cannot run `ip netns pids {name}`: {e}");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let pids: Vec<&str> = stdout.split_whitespace().collect();
    if pids.is_empty() {
        return;
    }
    let me = std::process::id().to_string();
    if pids.contains(&me.as_str()) || pids.contains(&"1") {
        eprintln!(
            "dockline-lab: netns {name} holds this test process or init; not killing its processes"
        );
        return;
    }
    let mut args = vec!["-s", "KILL"];
    args.extend(pids.iter().copied());
    // A process may exit between listing and killing; that failure is expected noise.
    let _ = std::process::Command::new("kill").args(&args).output();
}

/// Keeps user-chosen parts of names to characters that are safe in namespace, file and
/// directory names, and short enough to read in `ip netns list`.
pub(crate) fn sanitize(s: &str, max: usize) -> String {
    let s: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(max)
        .collect();
    if s.is_empty() { "x".to_owned() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_parses_lab_names_only() {
        assert_eq!(owner_pid("dl-1234-7-router"), Some(1234));
        assert_eq!(owner_pid("dl-1234-7-a-b"), Some(1234));
        assert_eq!(owner_pid("dl-x-7-router"), None);
        assert_eq!(owner_pid("dl-1234"), None);
        assert_eq!(owner_pid("blue"), None);
    }

    #[test]
    fn sanitize_keeps_names_safe() {
        assert_eq!(sanitize("node a/1", 32), "node_a_1");
        assert_eq!(sanitize("", 32), "x");
        assert_eq!(sanitize("abcdef", 3), "abc");
    }
}
