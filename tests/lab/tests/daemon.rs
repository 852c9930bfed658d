//! The [`Daemon`] handle against a stand-in for dockline: a small Python program with the
//! same command line and admin API (`/readyz`, `/status` with the reload counters,
//! `/metrics`) that reloads on SIGHUP and exits 0 on SIGTERM. Runs as root, like every
//! scenario test.

// Test helpers fail the test by panicking, as the tests themselves do.
#![allow(clippy::unwrap_used)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use dockline_lab::{Daemon, Lab};

/// `run --config FILE [--port N]`. A reload counts as rejected when the file says "bad".
const STAND_IN: &str = r#"#!/usr/bin/env python3
import http.server, json, signal, sys
args = sys.argv[1:]
path = args[args.index("--config") + 1]
port = int(args[args.index("--port") + 1]) if "--port" in args else 9470
state = {"ok": 0, "error": 0, "problems": None}
def reload(*_):
    if "bad" in open(path).read():
        state["error"] += 1
        state["problems"] = ["the file says bad"]
    else:
        state["ok"] += 1
signal.signal(signal.SIGHUP, reload)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
class Admin(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/readyz":
            body = "ready\n"
        elif self.path == "/status":
            last = {"problems": state["problems"]} if state["problems"] else None
            body = json.dumps({"text": open(path).read(), "config": {
                "reloads_ok": state["ok"], "reloads_error": state["error"],
                "last_reload_error": last}})
        elif self.path == "/metrics":
            body = '# HELP m A test metric\nm{vip="a",port="80"} 1\nm{vip="b",port="80"} 2\n'
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body.encode())
    def log_message(self, *_):
        pass
print("stand-in listening", flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", port), Admin).serve_forever()
"#;

/// Writes `script` as an executable file in the lab's directory.
fn program(lab: &Lab, name: &str, script: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = lab.dir().join(name);
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The message of a panic caught by `catch_unwind`.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

#[test]
fn a_daemon_starts_ready_reloads_answers_and_stops() {
    let mut lab = Lab::new("selftest-daemon");
    let node = lab.netns("node");
    let binary = program(&lab, "stand-in", STAND_IN);
    let binary = binary.to_str().unwrap();

    let mut daemon = Daemon::builder(binary, &node)
        .config("first")
        .start(&mut lab);
    assert_eq!(daemon.config_path(), lab.dir().join("dockline.toml"));
    assert_eq!(daemon.status()["text"], "first");
    assert!(daemon.log().contains("stand-in listening"));

    // The one series whose labels include the pairs given; the sum over all that match.
    assert_eq!(daemon.metric("m", &[("vip", "b")]), Some(2.0));
    assert_eq!(daemon.metric("m", &[("vip", "c")]), None);
    assert_eq!(daemon.metric_sum("m", &[("port", "80")]), 3.0);
    assert!(daemon.metrics().text().contains("# HELP m "));
    let several = catch_unwind(AssertUnwindSafe(|| daemon.metric("m", &[("port", "80")])));
    assert!(
        panic_message(&*several.unwrap_err()).contains("several series match m"),
        "a metric that names no single series is a panic"
    );

    // A reload returns once it is counted, accepted or rejected with its problems.
    assert_eq!(daemon.reload("second"), Ok(()));
    assert_eq!(daemon.status()["text"], "second");
    assert_eq!(
        daemon.reload("bad"),
        Err(vec!["the file says bad".to_owned()])
    );
    daemon.write_config("third");
    assert_eq!(
        daemon.status()["text"],
        "third",
        "written in place, no signal"
    );

    // A second daemon gets a file of its own, and is found where it was told to listen.
    let other = Daemon::builder(binary, &node)
        .config("other")
        .arg("--port")
        .arg("9471")
        .admin("127.0.0.1:9471")
        .start(&mut lab);
    assert_eq!(other.config_path(), lab.dir().join("dockline-2.toml"));
    assert_eq!(other.status()["text"], "other");

    let status = daemon.stop();
    assert_eq!(status.code(), Some(0));
    assert!(!daemon.is_running());
    assert_eq!(daemon.admin_get("/readyz"), None);
}

#[test]
fn a_start_that_fails_reports_the_log() {
    let mut lab = Lab::new("selftest-daemon-fails");
    let node = lab.netns("node");
    let failing = program(&lab, "failing", "#!/bin/sh\necho 'cannot listen'\nexit 1\n");
    let failing = failing.to_str().unwrap();

    let log = Daemon::builder(failing, &node)
        .config("")
        .start_expecting_failure(&mut lab);
    assert!(log.contains("cannot listen"), "{log}");

    let started = catch_unwind(AssertUnwindSafe(|| {
        Daemon::builder(failing, &node).config("").start(&mut lab)
    }));
    let message = panic_message(&*started.unwrap_err());
    assert!(
        message.contains("exited (exit status: 1) before http://127.0.0.1:9470/readyz answered")
            && message.contains("cannot listen"),
        "the panic names the exit and shows the log: {message}"
    );
}

#[test]
fn a_daemon_that_never_gets_ready_fails_the_start_with_its_log() {
    let mut lab = Lab::new("selftest-daemon-stuck");
    let node = lab.netns("node");
    let stuck = program(
        &lab,
        "stuck",
        "#!/bin/sh\necho 'waiting for Godot'\nexec sleep 60\n",
    );
    let started = catch_unwind(AssertUnwindSafe(|| {
        Daemon::builder(stuck.to_str().unwrap(), &node).start(&mut lab)
    }));
    let message = panic_message(&*started.unwrap_err());
    assert!(
        message
            .contains("not ready within 10s: http://127.0.0.1:9470/readyz last said \"no answer\"")
            && message.contains("waiting for Godot"),
        "the panic says what it waited for and shows the log: {message}"
    );
}
