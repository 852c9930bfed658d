//! The daemon's life in a network namespace: it starts and serves the admin API, reloads a
//! good file, keeps serving through a bad one, moves its admin listener, refuses a port in
//! use, and stops cleanly on SIGTERM and SIGINT.

// Test helpers fail the test by panicking, as the tests themselves do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dockline_lab::{Daemon, DaemonBuilder, Lab, Netns, http_get, wait_until};

fn config(services: &[&str]) -> String {
    let mut text = String::from(
        r#"
[node]
name = "node-1"
internal_ip = "172.30.0.11"
[admin]
listen = "127.0.0.1:9470"
[dns]
enabled = false
"#,
    );
    for name in services {
        text += &format!(
            "[[services]]\nname = \"{name}\"\nports = [{{ port = 80 }}]\n[[services.endpoints]]\nip = \"10.111.1.5\"\n"
        );
    }
    text
}

/// A node namespace linked to a client namespace.
struct Setup {
    lab: Lab,
    node: Netns,
    client: Netns,
}

fn setup(test: &str) -> Setup {
    let mut lab = Lab::new(test);
    let (node, client) =
        lab.linked_pair("node", &["172.30.0.11/24"], "client", &["172.30.0.100/24"]);
    Setup { lab, node, client }
}

impl Setup {
    /// dockline in the node namespace.
    fn daemon(&self) -> DaemonBuilder {
        Daemon::builder(env!("CARGO_BIN_EXE_dockline"), &self.node)
    }

    /// dockline in the node namespace on `text`, ready.
    fn start(&mut self, text: &str) -> Daemon {
        self.daemon().config(text).start(&mut self.lab)
    }
}

fn service_names(status: &serde_json::Value) -> Vec<String> {
    status["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn serves_health_readiness_status_and_metrics_on_loopback_only() {
    let mut s = setup("serves");
    let daemon = s.start(&config(&["web"]));
    assert_eq!(daemon.admin_get("/healthz").unwrap().0, 200);
    let status = daemon.status();
    assert_eq!(status["node"]["name"], "node-1");
    assert_eq!(status["ready"], true);
    assert_eq!(service_names(&status), ["web"]);
    assert!(
        status["services"][0]["cluster_ip"]
            .as_str()
            .unwrap()
            .starts_with("10.222.")
    );
    assert_eq!(status["services"][0]["endpoints"][0]["ip"], "10.111.1.5");
    assert_eq!(
        status["config"]["config_digest"].as_str().unwrap().len(),
        64
    );
    assert_eq!(
        daemon.metric("dockline_config_reloads_total", &[("result", "error")]),
        Some(0.0)
    );
    let metrics = daemon.metrics();
    assert!(
        metrics
            .text()
            .contains("# HELP dockline_config_reloads_total"),
        "{}",
        metrics.text()
    );
    assert_eq!(
        metrics.value("dockline_services", &[("type", "ClusterIP")]),
        Some(1.0),
        "{}",
        metrics.text()
    );

    // The CLI renders the same document as tables.
    let out = s.node.exec(env!("CARGO_BIN_EXE_dockline"), &["status"]);
    let tables = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tables}");
    assert!(
        tables.contains("SERVICES") && tables.contains("default/web"),
        "{tables}"
    );

    // Secure by default: nothing answers on the node's network address.
    assert!(http_get(&s.client, "http://172.30.0.11:9470/healthz").is_none());
}

#[test]
fn a_bad_file_on_reload_leaves_the_old_config_serving() {
    let mut s = setup("badreload");
    let daemon = s.start(&config(&["web"]));
    let reloads_error = || daemon.status()["config"]["reloads_error"].as_u64();

    daemon.write_config("[[services]]\nname = \"api\"\nports = [{ port = 80, node_port = 80 }]\n[dns]\nttl = \"x\"\n");
    wait_until(
        Duration::from_secs(5),
        "the file change is noticed and rejected",
        || reloads_error() == Some(1),
    );
    let status = daemon.status();
    assert_eq!(service_names(&status), ["web"], "the running config stays");
    let problems: Vec<&str> = status["config"]["last_reload_error"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        problems.contains(&"dns.ttl: invalid type: string \"x\", expected u32"),
        "{problems:?}"
    );
    assert_eq!(
        daemon.metric("dockline_config_reloads_total", &[("result", "error")]),
        Some(1.0)
    );
    assert_eq!(daemon.admin_get("/readyz").unwrap().0, 200);
    assert!(
        daemon.log().contains("config reload rejected"),
        "{}",
        daemon.log()
    );
    assert!(
        daemon.log().contains("dns.ttl: invalid type"),
        "logged like `check` prints it"
    );

    // A semantic error is rejected the same way; SIGHUP forces a reload even of an
    // unchanged file (the file change counts too).
    daemon.write_config(&config(&["web"]).replace(
        "[dns]",
        "[[services]]\nname = \"c\"\ncluster_ip = \"10.99.0.1\"\nports = [{ port = 80 }]\n[dns]",
    ));
    wait_until(
        Duration::from_secs(5),
        "the second bad file is rejected",
        || reloads_error() == Some(2),
    );
    daemon.signal("HUP");
    wait_until(
        Duration::from_secs(5),
        "the SIGHUP reload is rejected",
        || reloads_error() == Some(3),
    );
    assert!(
        daemon.log().contains("trigger=\"SIGHUP\""),
        "{}",
        daemon.log()
    );
    assert!(
        daemon.log().contains(
            "services[0].cluster_ip: 10.99.0.1 is outside cluster.service_cidr 10.222.0.0/16"
        ),
        "{}",
        daemon.log()
    );
    assert_eq!(service_names(&daemon.status()), ["web"]);

    // A good file is swapped in on the file change alone.
    daemon.write_config(&config(&["api", "web"]));
    wait_until(
        Duration::from_secs(5),
        "the good file is swapped in",
        || service_names(&daemon.status()) == ["api", "web"],
    );
    assert_eq!(
        daemon.metric("dockline_config_reloads_total", &[("result", "ok")]),
        Some(1.0)
    );
}

#[test]
fn a_reload_by_rename_like_an_editor_is_picked_up() {
    let mut s = setup("rename");
    let daemon = s.start(&config(&["web"]));
    let tmp = daemon.config_path().with_extension("tmp");
    std::fs::write(&tmp, config(&["one", "two"])).unwrap();
    std::fs::rename(&tmp, daemon.config_path()).unwrap();
    wait_until(Duration::from_secs(5), "the renamed file is loaded", || {
        service_names(&daemon.status()) == ["one", "two"]
    });
}

/// A ConfigMap volume: the file is a link through `..data`, and an update swaps that link
/// to a new timestamped directory by rename. Other files written next to it are no change.
#[test]
fn a_configmap_style_swap_is_picked_up_and_other_files_are_ignored() {
    let mut s = setup("configmap");
    let dir = s.lab.dir().join("volume");
    let version = |n: u32, services: &[&str]| {
        let data = dir.join(format!("..2026_11_25_{n}"));
        std::fs::create_dir_all(&data).unwrap();
        // Padded so that one read of it stands out from the daemon's other reads.
        let text = config(services) + &"# padding\n".repeat(6_000);
        std::fs::write(data.join("dockline.toml"), text).unwrap();
        data
    };
    let first = version(1, &["web"]);
    std::os::unix::fs::symlink(first.file_name().unwrap(), dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/dockline.toml", dir.join("dockline.toml")).unwrap();
    let daemon = s
        .daemon()
        .config_file(&dir.join("dockline.toml"))
        .start(&mut s.lab);

    // Unrelated writes in the directory: the config is not read again. An unchanged read
    // logs nothing, so the bytes the daemon read (/proc/PID/io) are the witness.
    let read_bytes = || {
        let io = std::fs::read_to_string(format!("/proc/{}/io", daemon.pid())).unwrap();
        let line = io
            .lines()
            .find(|l| l.starts_with("rchar:"))
            .unwrap()
            .to_owned();
        line[6..].trim().parse::<u64>().unwrap()
    };
    let size = 60_000;
    let before = read_bytes();
    for i in 0..5 {
        std::fs::write(dir.join(format!("other-{i}.log")), "x").unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    let read = read_bytes() - before;
    assert!(
        read < size,
        "{read} bytes read after unrelated writes (config: {size} bytes)"
    );

    let second = version(2, &["one", "two"]);
    std::os::unix::fs::symlink(second.file_name().unwrap(), dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    wait_until(Duration::from_secs(5), "the swapped file is loaded", || {
        service_names(&daemon.status()) == ["one", "two"]
    });
}

#[test]
fn sigterm_and_sigint_stop_the_daemon_with_exit_0() {
    for signal in ["TERM", "INT"] {
        let mut s = setup(&format!("sig{}", signal.to_lowercase()));
        let mut daemon = s.start(&config(&["web"]));
        let status = daemon.stop_with(signal);
        assert_eq!(status.code(), Some(0), "SIG{signal}:\n{}", daemon.log());
        assert!(
            daemon.log().contains("dockline stopped"),
            "{}",
            daemon.log()
        );
        assert!(daemon.admin_get("/healthz").is_none());
    }
}

#[test]
fn a_port_in_use_stops_the_start_with_an_error_naming_the_address() {
    // Without the proxy, whose listeners bind before admin's and would clash first
    // (tests/scenarios/proxy.rs checks its message).
    let text = config(&["web"]).replace("[dns]", "[proxy]\nenabled = false\n[dns]");
    let mut s = setup("portinuse");
    let _first = s.start(&text);
    let log = s.daemon().config(&text).start_expecting_failure(&mut s.lab);
    assert!(
        log.contains("admin: cannot listen on 127.0.0.1:9470"),
        "{log}"
    );
}

#[test]
fn the_admin_listener_follows_a_reload() {
    let mut s = setup("adminmove");
    let daemon = s.start(&config(&["web"]));
    // Written without SIGHUP: `Daemon::reload` would wait on the old address.
    daemon.write_config(&config(&["web"]).replace("127.0.0.1:9470", "172.30.0.11:9471"));
    wait_until(
        Duration::from_secs(5),
        "admin answers on the new address",
        || http_get(&s.client, "http://172.30.0.11:9471/healthz").is_some_and(|(c, _)| c == 200),
    );
    wait_until(Duration::from_secs(5), "the old address is closed", || {
        daemon.admin_get("/healthz").is_none()
    });
}

#[test]
fn runs_on_the_embedded_default_with_environment_overrides() {
    let mut lab = Lab::new("embedded");
    let node = lab.netns("node");
    let dockline = || Daemon::builder(env!("CARGO_BIN_EXE_dockline"), &node);
    let daemon = dockline().start(&mut lab);
    let status = daemon.status();
    assert_eq!(status["config"]["source"], "<embedded default>");
    assert_eq!(status["node"]["internal_ip"], "127.0.0.1");

    let other = dockline()
        .arg("--log-format")
        .arg("json")
        .env("DOCKLINE__ADMIN__LISTEN", "127.0.0.1:9999")
        .env("DOCKLINE__NODE__NAME", "laptop")
        // The first daemon holds the default DNS port.
        .env("DOCKLINE__DNS__LISTEN", "127.0.0.1:5354")
        .admin("127.0.0.1:9999")
        .start(&mut lab);
    assert_eq!(other.status()["node"]["name"], "laptop");
    let first_line = other.log().lines().next().unwrap_or_default().to_owned();
    let log: serde_json::Value = serde_json::from_str(&first_line)
        .unwrap_or_else(|e| panic!("JSON log line expected, got {first_line:?}: {e}"));
    assert_eq!(log["message"], "config loaded");
}
