//! The lab checked against the kernel: links carry traffic, and nothing survives a
//! dropped lab, whether the test passed or panicked. Runs as root, like every scenario test.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Duration;

use dockline_lab::{Lab, Netns, http_get, list_netns, sweep_stale, wait_until};

fn ping(from: &Netns, to: &str) {
    let out = from.exec("ping", &["-c1", "-W1", to]);
    assert!(
        out.status.success(),
        "ping {to} from {from} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn ns_id(path: &str) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("stat {path}: {e}"));
    (m.dev(), m.ino())
}

fn assert_gone(names: &[String]) {
    let left = list_netns();
    for n in names {
        assert!(!left.contains(n), "namespace {n} still exists: {left:?}");
    }
}

#[test]
fn switch_connects_hosts_and_drop_removes_everything() {
    let mut lab = Lab::new("selftest-switch");
    let sw = lab.switch("sw");
    let a = lab.netns("a");
    let b = lab.netns("b");
    lab.attach(&sw, &a, "eth0", &["172.30.0.11/24", "fd00::11/64"]);
    lab.attach(&sw, &b, "eth0", &["172.30.0.12/24", "fd00::12/64"]);

    // Usable as soon as attach returns: no retries.
    ping(&a, "172.30.0.12");
    ping(&b, "172.30.0.11");
    ping(&a, "fd00::12");
    ping(&b, "fd00::11");

    let mut sleeper = lab.spawn(&a, "sleep", &["100"]);
    assert!(sleeper.is_running());
    let pid = sleeper.pid();
    // `ip netns exec` execs, and spawn returns only after that: the pid is sleep's own.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "sleep");

    let names = vec![sw.ns.name.clone(), a.name.clone(), b.name.clone()];
    assert_eq!(lab.namespaces(), names.as_slice());
    let listed = list_netns();
    for n in &names {
        assert!(listed.contains(n), "{n} missing from {listed:?}");
    }
    let dir = lab.dir().to_path_buf();
    assert!(dir.is_dir());

    drop(lab);
    assert_gone(&names);
    assert!(!pid_alive(pid), "sleep (pid {pid}) survived the lab");
    assert!(!sleeper.is_running());
    assert!(!dir.exists(), "{} survived the lab", dir.display());
}

#[test]
fn link_connects_two_namespaces_directly() {
    let mut lab = Lab::new("selftest-link");
    let a = lab.netns("a");
    let b = lab.netns("b");
    lab.link(
        &a,
        "to-b",
        &["10.9.0.1/30", "fd09::1/64"],
        &b,
        "to-a",
        &["10.9.0.2/30", "fd09::2/64"],
    );
    ping(&a, "10.9.0.2");
    ping(&b, "fd09::1");
    // Nothing of the pair leaks into the namespace the tests run in.
    let here = std::process::Command::new("ip")
        .args(["link", "show", "to-b"])
        .output()
        .unwrap();
    assert!(!here.status.success());
}

#[test]
fn spawn_captures_output_and_takes_signals() {
    let mut lab = Lab::new("selftest-spawn");
    let ns = lab.netns("host");

    let mut p = lab.spawn_with_env(
        &ns,
        "sh",
        &["-c", "echo out $GREETING; echo err >&2"],
        &[("GREETING", "hi")],
    );
    let status = p.wait_timeout(Duration::from_secs(5)).expect("sh exits");
    assert!(status.success());
    let log = p.log();
    assert!(
        log.contains("out hi\n") && log.contains("err\n"),
        "log: {log:?}"
    );
    assert!(p.log_path().starts_with(lab.dir()));

    let mut sleeper = lab.spawn(&ns, "sleep", &["100"]);
    assert!(sleeper.wait_timeout(Duration::from_millis(50)).is_none());
    sleeper.signal("TERM");
    let status = sleeper
        .wait_timeout(Duration::from_secs(5))
        .expect("sleep dies on TERM");
    assert!(!status.success());
    // Signalling a reaped process is a no-op, not a shot at a reused pid.
    sleeper.signal("KILL");

    let out = ns.sh("ip -o addr show lo");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("127.0.0.1"),
        "lo is up with its address"
    );
}

#[test]
fn http_get_reports_status_and_body_or_none() {
    let mut lab = Lab::new("selftest-http");
    let server = lab.netns("server");
    let client = lab.netns("client");
    lab.link(
        &server,
        "eth0",
        &["10.8.0.1/24", "fd08::1/64"],
        &client,
        "eth0",
        &["10.8.0.2/24", "fd08::2/64"],
    );
    let root = lab.dir().join("www");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("hello.txt"), "hello lab").unwrap();

    assert_eq!(
        http_get(&client, "http://10.8.0.1:8080/hello.txt"),
        None,
        "nothing listens yet"
    );

    let root = root.to_str().unwrap().to_owned();
    let _srv = lab.spawn(
        &server,
        "python3",
        &["-m", "http.server", "-b", "::", "-d", &root, "8080"],
    );
    wait_until(Duration::from_secs(10), "http server answers", || {
        http_get(&client, "http://10.8.0.1:8080/hello.txt").is_some()
    });
    assert_eq!(
        http_get(&client, "http://10.8.0.1:8080/hello.txt"),
        Some((200, "hello lab".to_owned()))
    );
    assert_eq!(
        http_get(&client, "http://[fd08::1]:8080/hello.txt").map(|r| r.0),
        Some(200)
    );
    assert_eq!(
        http_get(&client, "http://10.8.0.1:8080/missing").map(|r| r.0),
        Some(404)
    );
}

#[test]
fn panic_in_a_test_still_cleans_up() {
    let mut names = Vec::new();
    let mut pid = 0;
    let mut dir = PathBuf::new();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut lab = Lab::new("selftest-panic");
        let sw = lab.switch("sw");
        let h = lab.netns("h");
        lab.attach(&sw, &h, "eth0", &["172.31.0.1/24"]);
        let p = lab.spawn(&h, "sh", &["-c", "echo about to be killed; exec sleep 100"]);
        wait_until(Duration::from_secs(5), "sh printed", || {
            p.log().contains("about")
        });
        names = vec![sw.ns.name.clone(), h.name.clone()];
        pid = p.pid();
        dir = lab.dir().to_path_buf();
        panic!("deliberate panic inside a lab");
    }));
    assert!(result.is_err());
    assert!(!names.is_empty());
    assert_gone(&names);
    assert!(!pid_alive(pid), "process (pid {pid}) survived the panic");
    // Kept for reading the logs of the failed test.
    let log = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(log, 1, "the process log is kept in {}", dir.display());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sweep_removes_namespaces_of_dead_runs() {
    let mut lab = Lab::new("selftest-sweep");
    let ns = lab.netns("victim");
    let mut sleeper = lab.spawn(&ns, "sleep", &["100"]);

    // Fake a leftover of a killed run: a second name, owned by a dead pid, for a
    // namespace that still has a process in it.
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    dead.wait().unwrap();
    let dead_pid = dead.id();
    assert!(!pid_alive(dead_pid));
    // The attach below must bind the victim's namespace, never the host's: sweeping a
    // name bound to the host's namespace would be the worst possible bug here.
    assert_eq!(
        ns_id(&format!("/proc/{}/ns/net", sleeper.pid())),
        ns_id(&format!("/var/run/netns/{}", ns.name)),
        "spawn returned before the program entered its namespace"
    );
    assert_ne!(
        ns_id("/proc/self/ns/net"),
        ns_id(&format!("/var/run/netns/{}", ns.name))
    );
    let stale = format!("dl-{dead_pid}-0-stale");
    let out = std::process::Command::new("ip")
        .args(["netns", "attach", &stale, &sleeper.pid().to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    sweep_stale();
    assert_gone(&[stale]);
    assert!(
        sleeper.wait_timeout(Duration::from_secs(5)).is_some(),
        "processes in it are killed"
    );
    // Namespaces of live owners are untouched.
    assert!(list_netns().contains(&ns.name));
}

#[test]
#[should_panic(expected = "timed out after 100ms: never")]
fn wait_until_panics_with_what_it_waited_for() {
    wait_until(Duration::from_millis(100), "never", || false);
}
