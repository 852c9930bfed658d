//! `dockline doctor` on a node namespace linked to a router namespace: a host set up right
//! passes, then each check is made to fail once by breaking that one thing for real
//! (a capability dropped, a port held, forwarding off, the interface down, /proc/sys
//! read-only, no /dev/net/tun, a kernel VXLAN device on the port, a small MTU, strict
//! rp_filter, an unreachable BGP peer, a record left by a killed daemon).
//!
//! Each run of the doctor gets a mount namespace of its own with an empty /run, so the
//! host's /run/dockline never leaks in, and the breakage a test makes there stays there.

// Test helpers fail the test by panicking, as the tests themselves do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use dockline_lab::{Lab, Netns, Process, wait_until};

const DOCKLINE: &str = env!("CARGO_BIN_EXE_dockline");
const NODE_IP: &str = "172.30.0.11";
const ROUTER_IP: &str = "172.30.0.1";

fn config(interface: &str, peer: &str) -> String {
    format!(
        r#"
[node]
name = "node-1"
internal_ip = "{NODE_IP}"
pod_cidr = "10.111.1.0/24"
[admin]
listen = "127.0.0.1:9470"
[dns]
listen = ["{NODE_IP}:53"]
[l2]
interfaces = ["{interface}"]
[network]
tunnel_mode = "VXLAN"
vxlan = {{ port = 4789, underlay_mtu = 1500 }}
[bgp]
asn = 64513
router_id = "{NODE_IP}"
[[bgp.peers]]
address = "{peer}"
asn = 64512
[[pools]]
name = "public"
addresses = ["192.0.2.10-192.0.2.20"]
announce = ["l2"]
"#
    )
}

/// A node set up right for [`config`]: forwarding on, and a BGP speaker's port open on the
/// router (a plain TCP listener is all the doctor's connect needs).
struct Setup {
    lab: Lab,
    node: Netns,
    router: Netns,
    file: PathBuf,
    _router_listener: Process,
}

fn setup(test: &str, config_text: &str) -> Setup {
    let mut lab = Lab::new(test);
    let node = lab.netns("node");
    let router = lab.netns("router");
    lab.link(
        &node,
        "eth0",
        &[&format!("{NODE_IP}/24")],
        &router,
        "eth0",
        &[&format!("{ROUTER_IP}/24")],
    );
    node.sh_ok("echo 1 > /proc/sys/net/ipv4/ip_forward");
    let listener = lab.spawn(
        &router,
        "python3",
        &[
            "-c",
            &format!(
                "import socket, time\n\
                 s = socket.socket(); s.bind(('{ROUTER_IP}', 179)); s.listen(8)\n\
                 while True: s.accept()"
            ),
        ],
    );
    wait_until(Duration::from_secs(5), "the router listens on 179", || {
        router
            .sh("ss -ltn 'sport = :179' | grep -q LISTEN")
            .status
            .success()
    });
    let file = lab.dir().join("dockline.toml");
    std::fs::write(&file, config_text).unwrap();
    Setup {
        lab,
        node,
        router,
        file,
        _router_listener: listener,
    }
}

/// What one run of the doctor printed, and whether it exited 0.
struct Report {
    text: String,
    success: bool,
}

impl Report {
    /// The report's line for the check named `check`, with its fix line if it has one.
    fn line(&self, check: &str) -> String {
        let mut lines = self.text.lines();
        let found = lines
            .by_ref()
            .find(|l| l.get(6..).is_some_and(|rest| rest.starts_with(check)))
            .unwrap_or_else(|| panic!("no line for {check:?} in:\n{}", self.text));
        match lines.next().filter(|l| l.trim_start().starts_with("fix:")) {
            Some(fix) => format!("{found}\n{fix}"),
            None => found.to_owned(),
        }
    }

    /// The lines that are not ok.
    fn problems(&self) -> Vec<&str> {
        self.text
            .lines()
            .filter(|l| l.starts_with("warn") || l.starts_with("fail"))
            .collect()
    }
}

impl Setup {
    /// Runs `prepare` (a shell script) and then the doctor, in a mount namespace of their
    /// own inside the node namespace; `wrap` goes before the doctor's command line.
    fn doctor_with(&self, prepare: &str, wrap: &str) -> Report {
        let script = format!(
            "set -e; mount -t tmpfs dockline-doctor-run /run; {prepare}\n\
             exec {wrap} {DOCKLINE} doctor --config {}",
            self.file.display()
        );
        let out = self.node.exec("unshare", &["--mount", "sh", "-c", &script]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Report {
            text,
            success: out.status.success(),
        }
    }

    fn doctor(&self) -> Report {
        self.doctor_with(":", "")
    }
}

fn assert_fails(report: &Report, check: &str, detail: &str, fix: &str) {
    let line = report.line(check);
    assert!(line.starts_with("fail"), "{line}\n\nin:\n{}", report.text);
    assert!(line.contains(detail), "{detail:?} not in {line}");
    assert!(line.contains(fix), "{fix:?} not in {line}");
    assert!(!report.success, "exit 0 after a fail:\n{}", report.text);
}

#[test]
fn a_host_set_up_right_passes_every_check() {
    let s = setup("doctor-ok", &config("eth0", ROUTER_IP));
    let report = s.doctor();
    assert!(report.success, "{}", report.text);
    assert_eq!(report.problems(), Vec::<&str>::new(), "{}", report.text);
    for check in [
        "capabilities: holds NET_ADMIN, NET_RAW, NET_BIND_SERVICE",
        "ports: all 3 listening addresses are free",
        "ip_forward: on",
        "l2 interface eth0: exists and is up",
        "/dev/net/tun: opens",
        "vxlan port 4789/UDP: free",
        "underlay mtu on eth0: 1500 >= 1500",
        "bgp peer 172.30.0.1:179: accepts TCP connections",
        "sysctls left by a killed daemon: no record",
    ] {
        assert!(
            report.line(check).starts_with("ok"),
            "{check}:\n{}",
            report.text
        );
    }
    // The daemon would set the ARP sysctls itself here.
    assert!(
        report
            .line("arp sysctls on eth0")
            .contains("dockline sets them at start"),
        "{}",
        report.text
    );
}

#[test]
fn a_missing_capability_fails_with_the_cap_add_to_use() {
    let s = setup("doctor-caps", &config("eth0", ROUTER_IP));
    // Root without NET_RAW in its bounding set gets no NET_RAW at exec.
    let report = s.doctor_with(":", "setpriv --bounding-set -net_raw --");
    assert_fails(
        &report,
        "capabilities",
        "missing NET_RAW (for l2)",
        "--cap-add NET_RAW",
    );
}

#[test]
fn a_port_held_by_another_program_fails_and_names_it() {
    let mut s = setup("doctor-port", &config("eth0", ROUTER_IP));
    let node = s.node.clone();
    let _holder = s.lab.spawn(
        &node,
        "python3",
        &[
            "-c",
            "import socket, time\n\
             s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 53))\n\
             time.sleep(600)",
        ],
    );
    wait_until(Duration::from_secs(5), "the holder binds 53/UDP", || {
        node.sh("ss -lun 'sport = :53' | grep -q 0.0.0.0")
            .status
            .success()
    });
    let report = s.doctor();
    assert_fails(
        &report,
        "port 172.30.0.11:53/UDP",
        "dns needs it",
        "ss -lpnu 'sport = :53'",
    );
    // TCP 53 is still free.
    assert_eq!(report.problems().len(), 1, "{}", report.text);
}

#[test]
fn forwarding_off_fails() {
    let s = setup("doctor-forward", &config("eth0", ROUTER_IP));
    s.node.sh_ok("echo 0 > /proc/sys/net/ipv4/ip_forward");
    assert_fails(
        &s.doctor(),
        "ip_forward",
        "is 0",
        "sysctl -w net.ipv4.ip_forward=1",
    );
}

#[test]
fn an_l2_interface_down_or_missing_fails() {
    let s = setup("doctor-link", &config("eth9", ROUTER_IP));
    assert_fails(
        &s.doctor(),
        "l2 interface eth9",
        "does not exist",
        "l2.interfaces",
    );
    std::fs::write(&s.file, config("eth0", ROUTER_IP)).unwrap();
    s.node.ip(&["link", "set", "eth0", "down"]);
    assert_fails(
        &s.doctor(),
        "l2 interface eth0",
        "is down",
        "ip link set eth0 up",
    );
}

#[test]
fn arp_sysctls_that_cannot_be_set_fail() {
    let s = setup("doctor-arp", &config("eth0", ROUTER_IP));
    s.node
        .sh_ok("echo 0 > /proc/sys/net/ipv4/conf/eth0/arp_ignore");
    // A container's /proc/sys is read-only; the daemon could not set them there.
    let report = s.doctor_with(
        "mount --bind /proc/sys /proc/sys; mount -o remount,bind,ro /proc/sys",
        "",
    );
    assert_fails(
        &report,
        "arp sysctls on eth0",
        "net.ipv4.conf.eth0.arp_ignore=0",
        "sysctl -w net.ipv4.conf.eth0.arp_ignore=1",
    );
}

#[test]
fn no_tun_device_fails() {
    let s = setup("doctor-tun", &config("eth0", ROUTER_IP));
    let report = s.doctor_with("mount -t tmpfs empty /dev/net", "");
    assert_fails(&report, "/dev/net/tun", "cannot be opened", "modprobe tun");
}

#[test]
fn a_kernel_vxlan_device_on_the_port_fails() {
    let s = setup("doctor-vxlan", &config("eth0", ROUTER_IP));
    s.node.ip(&[
        "link", "add", "vx0", "type", "vxlan", "id", "42", "dstport", "4789", "dev", "eth0",
    ]);
    s.node.ip(&["link", "set", "vx0", "up"]);
    assert_fails(
        &s.doctor(),
        "vxlan port 4789/UDP",
        "cannot be bound",
        "network.vxlan.port",
    );
}

#[test]
fn an_underlay_mtu_below_the_config_fails() {
    let s = setup("doctor-mtu", &config("eth0", ROUTER_IP));
    s.node.ip(&["link", "set", "eth0", "mtu", "1400"]);
    assert_fails(
        &s.doctor(),
        "underlay mtu on eth0",
        "1400 is below network.vxlan.underlay_mtu = 1500",
        "underlay_mtu = 1400",
    );
}

#[test]
fn strict_rp_filter_warns_without_failing() {
    let s = setup("doctor-rpf", &config("eth0", ROUTER_IP));
    s.node
        .sh_ok("echo 1 > /proc/sys/net/ipv4/conf/all/rp_filter");
    let report = s.doctor();
    let line = report.line("rp_filter (all)");
    assert!(
        line.starts_with("warn") && line.contains("rp_filter=2"),
        "{line}"
    );
    assert!(report.success, "a warning alone exits 0:\n{}", report.text);
}

#[test]
fn an_unreachable_bgp_peer_fails_and_a_refusing_one_warns() {
    // No host at .99 on the segment: nothing answers ARP, the connect times out.
    let s = setup("doctor-bgp", &config("eth0", "172.30.0.99"));
    assert_fails(
        &s.doctor(),
        "bgp peer 172.30.0.99:179",
        "unreachable",
        "TCP port 179",
    );
    // The router answers on a second address, where nothing listens on 179.
    s.router
        .ip(&["addr", "add", "172.30.0.12/24", "dev", "eth0"]);
    std::fs::write(&s.file, config("eth0", "172.30.0.12")).unwrap();
    let report = s.doctor();
    let line = report.line("bgp peer 172.30.0.12:179");
    assert!(
        line.starts_with("warn") && line.contains("refuses"),
        "{line}"
    );
}

#[test]
fn sysctls_left_by_a_killed_daemon_are_named_with_their_old_values() {
    let s = setup("doctor-record", &config("eth0", ROUTER_IP));
    s.node
        .sh_ok("echo 1 > /proc/sys/net/ipv4/conf/eth0/arp_ignore");
    let report = s.doctor_with(
        "mkdir /run/dockline; echo '/proc/sys/net/ipv4/conf/eth0/arp_ignore 0 1' \
         > /run/dockline/l2-$(stat -L -c %i /proc/self/ns/net).sysctl",
        "",
    );
    let line = report.line("sysctls left by a killed daemon");
    assert!(line.starts_with("warn"), "{line}");
    assert!(
        line.contains("net/ipv4/conf/eth0/arp_ignore is 1, was 0"),
        "{line}"
    );
    assert!(
        line.contains("sysctl -w net.ipv4.conf.eth0.arp_ignore=0"),
        "{line}"
    );
}
