//! The daemon's life in a network namespace: it starts and serves the admin API, reloads a
//! good file, keeps serving through a bad one, moves its admin listener, refuses a port in
//! use, and stops cleanly on SIGTERM and SIGINT.

// Test helpers fail the test by panicking, as the tests themselves do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use dockline_lab::{Lab, Netns, Process, http_get, wait_until};

const DOCKLINE: &str = env!("CARGO_BIN_EXE_dockline");
const ADMIN: &str = "http://127.0.0.1:9470";

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

/// A node namespace linked to a client namespace, and a config file in the lab's dir.
struct Setup {
    lab: Lab,
    node: Netns,
    client: Netns,
    file: PathBuf,
}

fn setup(test: &str, text: &str) -> Setup {
    let mut lab = Lab::new(test);
    let node = lab.netns("node");
    let client = lab.netns("client");
    lab.link(
        &node,
        "eth0",
        &["172.30.0.11/24"],
        &client,
        "eth0",
        &["172.30.0.100/24"],
    );
    let file = lab.dir().join("dockline.toml");
    std::fs::write(&file, text).unwrap();
    Setup {
        lab,
        node,
        client,
        file,
    }
}

impl Setup {
    fn start(&mut self, extra: &[&str]) -> Process {
        let file = self.file.to_str().unwrap().to_owned();
        let mut args = vec!["run", "--config", &file];
        args.extend_from_slice(extra);
        let daemon = self.lab.spawn(&self.node, DOCKLINE, &args);
        wait_ready(&self.node, &daemon, ADMIN);
        daemon
    }

    fn status(&self) -> serde_json::Value {
        let (code, body) =
            http_get(&self.node, &format!("{ADMIN}/status")).expect("status answers");
        assert_eq!(code, 200);
        serde_json::from_str(&body).unwrap()
    }

    fn metric(&self, line_start: &str) -> Option<f64> {
        let (_, body) = http_get(&self.node, &format!("{ADMIN}/metrics"))?;
        body.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}

fn wait_ready(ns: &Netns, daemon: &Process, admin: &str) {
    let url = format!("{admin}/readyz");
    let mut tries = 0;
    wait_until(Duration::from_secs(10), "dockline answers /readyz", || {
        tries += 1;
        if tries % 50 == 0 && !daemon.log().is_empty() {
            eprintln!("{}", daemon.log());
        }
        http_get(ns, &url).is_some_and(|(code, _)| code == 200)
    });
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
    let mut s = setup("serves", &config(&["web"]));
    let _daemon = s.start(&[]);
    assert_eq!(
        http_get(&s.node, &format!("{ADMIN}/healthz")).unwrap().0,
        200
    );
    let status = s.status();
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
        s.metric("dockline_config_reloads_total{result=\"error\"}"),
        Some(0.0)
    );
    let (_, metrics) = http_get(&s.node, &format!("{ADMIN}/metrics")).unwrap();
    assert!(
        metrics.contains("# HELP dockline_config_reloads_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("dockline_services{type=\"ClusterIP\"} 1"),
        "{metrics}"
    );

    // The CLI renders the same document as tables.
    let out = s.node.exec(DOCKLINE, &["status"]);
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
    let mut s = setup("badreload", &config(&["web"]));
    let daemon = s.start(&[]);

    std::fs::write(&s.file, "[[services]]\nname = \"api\"\nports = [{ port = 80, node_port = 80 }]\n[dns]\nttl = \"x\"\n").unwrap();
    wait_until(
        Duration::from_secs(5),
        "the file change is noticed and rejected",
        || s.status()["config"]["reloads_error"].as_u64() == Some(1),
    );
    let status = s.status();
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
        s.metric("dockline_config_reloads_total{result=\"error\"}"),
        Some(1.0)
    );
    assert_eq!(
        http_get(&s.node, &format!("{ADMIN}/readyz")).unwrap().0,
        200
    );
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
    std::fs::write(&s.file, config(&["web"]).replace("[dns]", "[[services]]\nname = \"c\"\ncluster_ip = \"10.99.0.1\"\nports = [{ port = 80 }]\n[dns]")).unwrap();
    wait_until(
        Duration::from_secs(5),
        "the second bad file is rejected",
        || s.status()["config"]["reloads_error"].as_u64() == Some(2),
    );
    daemon.signal("HUP");
    wait_until(
        Duration::from_secs(5),
        "the SIGHUP reload is rejected",
        || s.status()["config"]["reloads_error"].as_u64() == Some(3),
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
    assert_eq!(service_names(&s.status()), ["web"]);

    // A good file is swapped in on the file change alone.
    std::fs::write(&s.file, config(&["api", "web"])).unwrap();
    wait_until(
        Duration::from_secs(5),
        "the good file is swapped in",
        || service_names(&s.status()) == ["api", "web"],
    );
    assert_eq!(
        s.metric("dockline_config_reloads_total{result=\"ok\"}"),
        Some(1.0)
    );
}

#[test]
fn a_reload_by_rename_like_an_editor_is_picked_up() {
    let mut s = setup("rename", &config(&["web"]));
    let _daemon = s.start(&[]);
    let tmp = s.file.with_extension("tmp");
    std::fs::write(&tmp, config(&["one", "two"])).unwrap();
    std::fs::rename(&tmp, &s.file).unwrap();
    wait_until(Duration::from_secs(5), "the renamed file is loaded", || {
        service_names(&s.status()) == ["one", "two"]
    });
}

/// A ConfigMap volume: the file is a link through `..data`, and an update swaps that link
/// to a new timestamped directory by rename. Other files written next to it are no change.
#[test]
fn a_configmap_style_swap_is_picked_up_and_other_files_are_ignored() {
    let mut s = setup("configmap", "");
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
    s.file = dir.join("dockline.toml");
    let daemon = s.start(&[]);

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
        service_names(&s.status()) == ["one", "two"]
    });
}

#[test]
fn sigterm_and_sigint_stop_the_daemon_with_exit_0() {
    for signal in ["TERM", "INT"] {
        let mut s = setup(&format!("sig{}", signal.to_lowercase()), &config(&["web"]));
        let mut daemon = s.start(&[]);
        daemon.signal(signal);
        let status = daemon
            .wait_timeout(Duration::from_secs(7))
            .unwrap_or_else(|| panic!("still running 7 s after SIG{signal}:\n{}", daemon.log()));
        assert_eq!(status.code(), Some(0), "SIG{signal}:\n{}", daemon.log());
        assert!(
            daemon.log().contains("dockline stopped"),
            "{}",
            daemon.log()
        );
        assert!(http_get(&s.node, &format!("{ADMIN}/healthz")).is_none());
    }
}

#[test]
fn a_port_in_use_stops_the_start_with_an_error_naming_the_address() {
    // Without the proxy, whose listeners bind before admin's and would clash first
    // (tests/scenarios/proxy.rs checks its message).
    let text = config(&["web"]).replace("[dns]", "[proxy]\nenabled = false\n[dns]");
    let mut s = setup("portinuse", &text);
    let _first = s.start(&[]);
    let file = s.file.to_str().unwrap().to_owned();
    let mut second = s.lab.spawn(&s.node, DOCKLINE, &["run", "--config", &file]);
    let status = second
        .wait_timeout(Duration::from_secs(5))
        .expect("the second daemon gives up");
    assert_eq!(status.code(), Some(1));
    assert!(
        second
            .log()
            .contains("admin: cannot listen on 127.0.0.1:9470"),
        "{}",
        second.log()
    );
}

#[test]
fn the_admin_listener_follows_a_reload() {
    let mut s = setup("adminmove", &config(&["web"]));
    let _daemon = s.start(&[]);
    std::fs::write(
        &s.file,
        config(&["web"]).replace("127.0.0.1:9470", "172.30.0.11:9471"),
    )
    .unwrap();
    wait_until(
        Duration::from_secs(5),
        "admin answers on the new address",
        || http_get(&s.client, "http://172.30.0.11:9471/healthz").is_some_and(|(c, _)| c == 200),
    );
    wait_until(Duration::from_secs(5), "the old address is closed", || {
        http_get(&s.node, &format!("{ADMIN}/healthz")).is_none()
    });
}

#[test]
fn runs_on_the_embedded_default_with_environment_overrides() {
    let mut lab = Lab::new("embedded");
    let node = lab.netns("node");
    let daemon = lab.spawn(&node, DOCKLINE, &["run"]);
    wait_ready(&node, &daemon, ADMIN);
    let (_, body) = http_get(&node, &format!("{ADMIN}/status")).unwrap();
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["config"]["source"], "<embedded default>");
    assert_eq!(status["node"]["internal_ip"], "127.0.0.1");

    let other = lab.spawn_with_env(
        &node,
        DOCKLINE,
        &["run", "--log-format", "json"],
        &[
            ("DOCKLINE__ADMIN__LISTEN", "127.0.0.1:9999"),
            ("DOCKLINE__NODE__NAME", "laptop"),
            // The first daemon holds the default DNS port.
            ("DOCKLINE__DNS__LISTEN", "127.0.0.1:5354"),
        ],
    );
    wait_ready(&node, &other, "http://127.0.0.1:9999");
    let (_, body) = http_get(&node, "http://127.0.0.1:9999/status").unwrap();
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["node"]["name"], "laptop");
    let first_line = other.log().lines().next().unwrap_or_default().to_owned();
    let log: serde_json::Value = serde_json::from_str(&first_line)
        .unwrap_or_else(|e| panic!("JSON log line expected, got {first_line:?}: {e}"));
    assert_eq!(log["message"], "config loaded");
}
