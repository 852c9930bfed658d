//! The daemon's sd_notify messages for a `Type=notify` unit (docker/dockline.service). No
//! systemd runs as PID 1 here, so the test plays the service manager: it binds the
//! datagram socket named by NOTIFY_SOCKET, and checks the messages arrive in order: READY=1
//! once /readyz answers 200, RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a
//! reload, STOPPING=1 at SIGTERM.

// Test helpers fail the test by panicking, as the tests themselves do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use dockline_lab::{Lab, http_get};

const DOCKLINE: &str = env!("CARGO_BIN_EXE_dockline");

fn config(services: &str) -> String {
    format!(
        r#"
dns = {{ enabled = false }}
node = {{ name = "node-1", internal_ip = "172.30.0.11" }}
{services}
"#
    )
}

/// The next message, within `timeout`.
fn next(socket: &UnixDatagram, timeout: Duration) -> String {
    socket.set_read_timeout(Some(timeout)).unwrap();
    let mut buffer = [0u8; 4096];
    let n = socket
        .recv(&mut buffer)
        .unwrap_or_else(|e| panic!("no sd_notify message within {timeout:?}: {e}"));
    String::from_utf8_lossy(&buffer[..n]).into_owned()
}

#[test]
fn the_daemon_tells_the_service_manager_ready_reloading_and_stopping_in_order() {
    let mut lab = Lab::new("sd-notify");
    let node = lab.netns("node");
    node.ip(&["link", "set", "lo", "up"]);
    let file = lab.dir().join("dockline.toml");
    std::fs::write(&file, config("")).unwrap();
    let socket_path = lab.dir().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let mut daemon = lab.spawn_with_env(
        &node,
        DOCKLINE,
        &["run", "--config", file.to_str().unwrap()],
        &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())],
    );

    assert_eq!(next(&socket, Duration::from_secs(10)), "READY=1");
    let ready = http_get(&node, "http://127.0.0.1:9470/readyz").map(|(code, _)| code);
    assert_eq!(ready, Some(200), "READY=1 came before /readyz turned 200");

    std::fs::write(
        &file,
        config("[[services]]\nname = \"web\"\nports = [{ port = 80 }]\n"),
    )
    .unwrap();
    daemon.signal("HUP");
    let reloading = next(&socket, Duration::from_secs(5));
    let mut lines = reloading.lines();
    assert_eq!(lines.next(), Some("RELOADING=1"), "{reloading:?}");
    let usec: u64 = lines
        .next()
        .and_then(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"));
    assert!(usec > 0);
    assert_eq!(next(&socket, Duration::from_secs(5)), "READY=1");

    daemon.signal("TERM");
    assert_eq!(next(&socket, Duration::from_secs(5)), "STOPPING=1");
    let exit = daemon.wait_timeout(Duration::from_secs(10)).expect("stops");
    assert!(exit.success(), "{exit:?}\n{}", daemon.log());
}
