//! The [`Lab`]: owner of everything a scenario test builds.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::cmd;
use crate::netns::{self, Netns, PREFIX, Switch};
use crate::process::{self, LOG_TAIL_LINES, Process, Shared};

/// Numbers namespaces and lab directories. Together with the pid it makes names unique
/// across the parallel tests of one test binary and across test binaries.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A throwaway network: namespaces, links between them, and programs running in them.
///
/// Everything is undone when the lab is dropped, which also happens while a failing test
/// unwinds, so one failed assertion never leaves namespaces or daemons behind to break
/// the next test. Only a killed test binary skips that; [`sweep_stale`](crate::sweep_stale)
/// catches its leftovers on the next run.
#[derive(Debug)]
pub struct Lab {
    test: String,
    dir: PathBuf,
    namespaces: Vec<String>,
    children: Vec<Child>,
    next_port: usize,
}

#[derive(Debug)]
struct Child {
    what: String,
    pid: u32,
    log_path: PathBuf,
    child: Shared,
}

impl Lab {
    /// Starts a lab for the test named `test` (used in the directory name, for finding its
    /// logs).
    ///
    /// Panics when not root or without `ip`: a scenario test that quietly skips would
    /// pass in CI without ever having run.
    pub fn new(test: &str) -> Lab {
        check_root();
        if let Err(e) = Command::new("ip").arg("-V").output() {
            panic!("scenario tests need root and iproute2: cannot run `ip`: {e}");
        }
        netns::sweep_stale();

        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "dockline-lab-{}-{}-{n}",
            netns::sanitize(test, 48),
            std::process::id()
        ));
        // A directory of the same name can only be a leftover of a dead run with our pid.
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("creating lab dir {}: {e}", dir.display()));

        Lab {
            test: test.to_owned(),
            dir,
            namespaces: Vec::new(),
            children: Vec::new(),
            next_port: 0,
        }
    }

    /// Creates a namespace named `dl-<pid>-<n>-<role>` with `lo` up (many programs
    /// expect a working loopback, and a fresh namespace has it down).
    pub fn netns(&mut self, role: &str) -> Netns {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "{PREFIX}{}-{n}-{}",
            std::process::id(),
            netns::sanitize(role, 32)
        );
        cmd::ip(&["netns", "add", &name]);
        // Owned from here on, so a failure below still gets it deleted.
        self.namespaces.push(name.clone());
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Connects two namespaces with a veth pair, addresses both ends (CIDR strings, IPv4
    /// or IPv6) and brings them up.
    ///
    /// The pair is created inside `a` with its peer placed straight into `b`, so no
    /// interface ever appears in the namespace the tests run in, where names of parallel
    /// tests would clash.
    pub fn link(
        &mut self,
        a: &Netns,
        a_if: &str,
        a_addrs: &[&str],
        b: &Netns,
        b_if: &str,
        b_addrs: &[&str],
    ) {
        a.ip(&[
            "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", &b.name,
        ]);
        a.configure(a_if, a_addrs);
        b.configure(b_if, b_addrs);
    }

    /// Two new namespaces joined by a veth pair whose ends are both `eth0`, addressed and
    /// up: the smallest lab with a host and a peer to reach it from.
    pub fn linked_pair(
        &mut self,
        a_role: &str,
        a_addrs: &[&str],
        b_role: &str,
        b_addrs: &[&str],
    ) -> (Netns, Netns) {
        let a = self.netns(a_role);
        let b = self.netns(b_role);
        self.link(&a, "eth0", a_addrs, &b, "eth0", b_addrs);
        (a, b)
    }

    /// Creates a namespace holding the bridge `br0`, up, for hosts to [`attach`](Self::attach) to.
    ///
    /// Multicast snooping is off so multicast (neighbour discovery, VRRP adverts) is
    /// flooded like on a dumb switch, whatever reports the bridge happened to see. IPv6 is
    /// off in the switch namespace so the bridge and its ports send nothing of their own
    /// (router solicitations, MLD reports) into captures.
    pub fn switch(&mut self, role: &str) -> Switch {
        let ns = self.netns(role);
        ns.sh_ok(
            "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6 && \
             echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6",
        );
        ns.ip(&[
            "link",
            "add",
            Switch::BRIDGE,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        ns.ip(&["link", "set", Switch::BRIDGE, "up"]);
        Switch { ns }
    }

    /// Plugs `host` into the switch: a veth pair from `host_if` in `host` to a new bridge
    /// port (`portN`) in the switch namespace, with `addrs` on `host_if`.
    ///
    /// STP is off on the bridge, so the port forwards as soon as this returns.
    pub fn attach(&mut self, sw: &Switch, host: &Netns, host_if: &str, addrs: &[&str]) {
        let port = format!("port{}", self.next_port);
        self.next_port += 1;
        host.ip(&[
            "link",
            "add",
            host_if,
            "type",
            "veth",
            "peer",
            "name",
            &port,
            "netns",
            &sw.ns.name,
        ]);
        sw.ns
            .ip(&["link", "set", &port, "master", Switch::BRIDGE, "up"]);
        host.configure(host_if, addrs);
    }

    /// Creates a namespace named after `role` and plugs it into the switch by its `eth0`,
    /// with `addrs` (see [`attach`](Self::attach)).
    pub fn host(&mut self, sw: &Switch, role: &str, addrs: &[&str]) -> Netns {
        let ns = self.netns(role);
        self.attach(sw, &ns, "eth0", addrs);
        ns
    }

    /// Starts `program args` in `ns`, with stdout and stderr going to one log file in
    /// [`dir`](Self::dir). The lab kills it on drop; the returned handle is for the test.
    ///
    /// Returns once the pid runs `program` itself inside `ns` (`ip netns exec` has done
    /// its exec), so signals sent through the handle reach the program, never `ip`.
    pub fn spawn(&mut self, ns: &Netns, program: &str, args: &[&str]) -> Process {
        self.spawn_with_env(ns, program, args, &[])
    }

    /// [`spawn`](Self::spawn) with extra environment variables (the rest is inherited,
    /// so `RUST_LOG` and friends set for the test run reach the program).
    pub fn spawn_with_env(
        &mut self,
        ns: &Netns,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Process {
        let base = Path::new(program)
            .file_name()
            .map_or_else(|| program.to_owned(), |b| b.to_string_lossy().into_owned());
        let role = role_of(&ns.name);
        let log_path = self.dir.join(format!(
            "{:02}-{}-{}.log",
            self.children.len(),
            role,
            netns::sanitize(&base, 32)
        ));
        // Append mode, so stdout and stderr writes interleave instead of overwriting.
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap_or_else(|e| panic!("creating log {}: {e}", log_path.display()));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("cloning log {}: {e}", log_path.display()));

        let what = format!("`{}` in {}", cmd::line(program, args), ns.name);
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, program])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let pid = child.id();
        let child = Arc::new(Mutex::new(child));
        wait_for_exec(&child, pid, ns, program, &what);
        self.children.push(Child {
            what: what.clone(),
            pid,
            log_path: log_path.clone(),
            child: Arc::clone(&child),
        });
        Process {
            child,
            pid,
            log_path,
            what,
        }
    }

    /// The lab's own directory under the system temp dir, for logs, configs and sockets.
    /// Removed on drop, but kept (and its path printed) when the test fails.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The namespaces made so far, in creation order.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }
}

impl Drop for Lab {
    /// Processes die first, since a namespace still used by a process outlives its name;
    /// then the namespaces go. Nothing here may panic: a panic while unwinding aborts
    /// the whole test binary and hides the original failure.
    fn drop(&mut self) {
        let failing = std::thread::panicking();
        let mut statuses = Vec::with_capacity(self.children.len());
        for c in &self.children {
            let mut child = process::lock(&c.child);
            let status = match child.try_wait() {
                Ok(Some(status)) => Some(status),
                _ => {
                    if let Err(e) = child.kill() {
                        eprintln!("dockline-lab: killing {} (pid {}): {e}", c.what, c.pid);
                    }
                    match child.wait() {
                        Ok(_) => None,
                        Err(e) => {
                            eprintln!("dockline-lab: waiting for {} (pid {}): {e}", c.what, c.pid);
                            None
                        }
                    }
                }
            };
            statuses.push(status);
        }

        if failing {
            self.report(&statuses);
        }

        for name in self.namespaces.iter().rev() {
            // Catches what the spawned programs forked, and what `exec`/`sh` left running.
            netns::kill_all_in(name);
            cmd::quiet("ip", &["netns", "del", name]);
        }

        if !failing {
            if let Err(e) = fs::remove_dir_all(&self.dir) {
                eprintln!("dockline-lab: removing {}: {e}", self.dir.display());
            }
        }
    }
}

impl Lab {
    /// Prints where the logs are and their tails: the test harness shows a failing test's
    /// stderr, so most failures can be understood without opening the directory.
    fn report(&self, statuses: &[Option<std::process::ExitStatus>]) {
        eprintln!(
            "dockline-lab: test {:?} failed; lab dir kept: {}",
            self.test,
            self.dir.display()
        );
        for (c, status) in self.children.iter().zip(statuses) {
            let state = match status {
                Some(s) => format!("had exited: {s}"),
                None => "was running, killed".to_owned(),
            };
            eprintln!(
                "--- {} (pid {}) {state}; log {}",
                c.what,
                c.pid,
                c.log_path.display()
            );
            match fs::read(&c.log_path) {
                Ok(bytes) => eprintln!(
                    "{}",
                    process::tail(&String::from_utf8_lossy(&bytes), LOG_TAIL_LINES)
                ),
                Err(e) => eprintln!("    (cannot read log: {e})"),
            }
        }
    }
}

/// How long [`wait_for_exec`] waits before giving up with a warning.
const EXEC_TIMEOUT: Duration = Duration::from_secs(5);

/// Waits until the spawned pid is `program` itself, running inside `ns`.
///
/// Right after `spawn` the pid is still a fork of the test, then `ip` setting up the
/// namespace; a signal sent then would kill `ip` (or the fork) instead of reaching the
/// program, and a test that starts a daemon and immediately sends it HUP or TERM would
/// see nonsense. Gives up quietly if the child exits (e.g. program not found: `ip` says
/// so in the log), and with a warning after [`EXEC_TIMEOUT`].
fn wait_for_exec(child: &Shared, pid: u32, ns: &Netns, program: &str, what: &str) {
    let target = netns::ns_id(&Path::new(netns::RUN_DIR).join(&ns.name));
    // When the program is `ip` itself its exe cannot tell the two apart; being in the
    // namespace is then the best available sign.
    let program_is_ip = Path::new(program).file_name().is_some_and(|f| f == "ip");
    let ip = if program_is_ip { None } else { ip_exe() };
    let deadline = Instant::now() + EXEC_TIMEOUT;
    loop {
        if !matches!(process::lock(child).try_wait(), Ok(None)) {
            return;
        }
        let in_ns =
            target.is_some() && netns::ns_id(Path::new(&format!("/proc/{pid}/ns/net"))) == target;
        let exec_done = match (ip, fs::read_link(format!("/proc/{pid}/exe"))) {
            (Some(ip), Ok(exe)) => exe != *ip,
            _ => true,
        };
        if in_ns && exec_done {
            return;
        }
        if Instant::now() >= deadline {
            eprintln!("dockline-lab: {what} (pid {pid}) did not start within {EXEC_TIMEOUT:?}");
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The resolved path of the `ip` binary that `Command::new("ip")` runs, as
/// `/proc/PID/exe` shows it.
fn ip_exe() -> Option<&'static PathBuf> {
    static IP: OnceLock<Option<PathBuf>> = OnceLock::new();
    IP.get_or_init(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|dir| dir.join("ip"))
            .find(|p| p.is_file())
            .and_then(|p| fs::canonicalize(p).ok())
    })
    .as_ref()
}

/// The role part of a lab namespace name, `dl-<pid>-<n>-<role>`; the whole name otherwise.
fn role_of(name: &str) -> &str {
    name.strip_prefix(PREFIX)
        .and_then(|r| r.splitn(3, '-').nth(2))
        .unwrap_or(name)
}

/// Reads the effective uid from /proc, since `geteuid` would need unsafe code.
fn check_root() {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_else(|e| {
        panic!("scenario tests need root and iproute2: cannot read /proc/self/status: {e}")
    });
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|id| id.parse::<u32>().ok());
    match euid {
        Some(0) => {}
        Some(uid) => panic!(
            "scenario tests need root and iproute2: running as uid {uid}; run the tests as root \
             (e.g. `sudo -E cargo test`)"
        ),
        None => panic!("scenario tests need root and iproute2: cannot find the effective uid"),
    }
}

#[cfg(test)]
mod tests {
    use super::role_of;

    #[test]
    fn role_of_lab_names() {
        assert_eq!(role_of("dl-12-3-router"), "router");
        assert_eq!(role_of("dl-12-3-node-a"), "node-a");
        assert_eq!(role_of("other"), "other");
    }
}
