//! The BGP announcer against BIRD 2, in namespaces: a router and two dockline nodes on one
//! switch, each node with an IPv4 and an IPv6 iBGP session. What BIRD has in its table
//! (`birdc show route all`) is the proof: both next hops, the pool's communities and
//! local-pref, IPv6 /128s by MP-BGP, withdrawals under the Local policy and on SIGTERM,
//! hold expiry of a frozen node, graceful restart over a SIGKILL, and TCP-MD5.

// Test helpers fail the test by panicking, as the tests themselves do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dockline_lab::{Daemon, Lab, Netns, Process, Switch, wait_until};

const ASN: u32 = 64512;
const VIP4: &str = "192.0.2.10";
const VIP6: &str = "2001:db8:1::a";
/// A second service added by a reload.
const VIP_ADDED: &str = "192.0.2.11";
const LOCAL_VIP: &str = "192.0.2.20";

fn node_ip(i: usize) -> String {
    format!("172.30.0.{}", 11 + i)
}

fn node_ip6(i: usize) -> String {
    format!("fd00:30::{}", 11 + i)
}

/// BIRD's config: one iBGP session per node and family, test-friendly timers, GR aware.
fn bird_config(password: Option<&str>) -> String {
    let password = password.map_or(String::new(), |p| format!("password \"{p}\";"));
    bird_config_with(&password)
}

/// BIRD's config with BFD on every session (100 ms, multiplier 3).
fn bird_config_with_bfd() -> String {
    let bfd = "protocol bfd { interface \"*\" { min rx interval 100 ms; min tx interval 100 ms; \
               multiplier 3; }; }\n";
    format!("{bfd}{}", bird_config_with("bfd on;"))
}

fn bird_config_with(session_keys: &str) -> String {
    let mut text = format!(
        "router id 172.30.0.1;\nprotocol device {{ scan time 1; }}\n\
         template bgp node {{ local as {ASN}; hold time 9; keepalive time 3; connect retry time 2;\n\
         connect delay time 1; error wait time 1, 2; direct; {session_keys} }}\n"
    );
    for i in 0..2 {
        text.push_str(&format!(
            "protocol bgp n{i}v4 from node {{ neighbor {} as {ASN}; ipv4 {{ import all; export none; gateway direct; }}; }}\n\
             protocol bgp n{i}v6 from node {{ neighbor {} as {ASN}; ipv6 {{ import all; export none; gateway direct; }}; }}\n",
            node_ip(i),
            node_ip6(i),
        ));
    }
    text
}

/// Node `i`'s config with `services` appended; `peer` adds keys to both peers.
fn node_config(i: usize, peer: &str, services: &str) -> String {
    format!(
        r#"
[node]
name = "n{i}"
internal_ip = "{ip}"
[dns]
enabled = false
[proxy]
enabled = false
[bgp]
asn = {ASN}
{v4}{v6}
[[pools]]
name = "routed"
addresses = ["192.0.2.10-192.0.2.50", "2001:db8:1::/124"]
announce = ["bgp"]
communities = ["64512:100"]
large_communities = ["64513:0:100"]
local_pref = 200
{services}
"#,
        ip = node_ip(i),
        v4 = bgp_peer("172.30.0.1", ASN, peer),
        v6 = bgp_peer("fd00:30::1", ASN, peer),
    )
}

/// One `[[bgp.peers]]` table with the tests' timers and `extra` keys.
fn bgp_peer(address: &str, asn: u32, extra: &str) -> String {
    format!(
        "[[bgp.peers]]\naddress = \"{address}\"\nasn = {asn}\nhold_time = 9\nconnect_retry_s = 1\n{extra}\n"
    )
}

fn lb(name: &str, ip: &str) -> String {
    format!(
        "[[services]]\nname = \"{name}\"\ntype = \"LoadBalancer\"\nload_balancer_ip = \"{ip}\"\npool = \"routed\"\nports = [{{ port = 8080 }}]\n"
    )
}

/// A Local-policy service whose endpoint on node n0 is health-checked on port 8080.
fn local_lb() -> String {
    format!(
        "[[services]]\nname = \"local\"\ntype = \"LoadBalancer\"\nload_balancer_ip = \"{LOCAL_VIP}\"\npool = \"routed\"\n\
         external_traffic_policy = \"Local\"\nports = [{{ port = 8080 }}]\n\
         health_check = {{ kind = \"tcp\", interval_ms = 200, timeout_ms = 100, rise = 1, fall = 1 }}\n\
         [[services.endpoints]]\nip = \"{}\"\nnode = \"n0\"\n",
        node_ip(0)
    )
}

fn services() -> String {
    lb("web", VIP4) + &lb("web6", VIP6)
}

struct Fabric {
    lab: Lab,
    switch: Switch,
    router: Netns,
    nodes: Vec<Netns>,
    daemons: Vec<Daemon>,
    bird: Process,
}

impl Fabric {
    /// BIRD and two nodes on one switch; each node runs dockline with its config.
    fn start(test: &str, bird: &str, configs: [String; 2]) -> Fabric {
        let mut fabric = Fabric::without_daemons(test, bird);
        for (i, config) in configs.into_iter().enumerate() {
            let daemon = fabric.daemon(i, &config);
            fabric.daemons.push(daemon);
        }
        fabric
    }

    /// BIRD running, the nodes' namespaces made, no dockline yet.
    fn without_daemons(test: &str, bird: &str) -> Fabric {
        let mut lab = Lab::new(test);
        let sw = lab.switch("sw");
        let router = lab.host(&sw, "router", &["172.30.0.1/24", "fd00:30::1/64"]);
        let nodes: Vec<Netns> = (0..2)
            .map(|i| {
                lab.host(
                    &sw,
                    &format!("n{i}"),
                    &[
                        &format!("{}/24", node_ip(i)),
                        &format!("{}/64", node_ip6(i)),
                    ],
                )
            })
            .collect();
        // IPv6 duplicate address detection would hold the addresses back for a second.
        for ns in nodes.iter().chain([&router]) {
            ns.sh("sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.eth0.accept_dad=0");
            ns.sh("ip -6 addr show dev eth0 | grep -q tentative && sleep 2");
        }
        std::fs::write(lab.dir().join("bird.conf"), bird).unwrap();
        let bird = Fabric::spawn_bird(&mut lab, &router);
        Fabric {
            lab,
            switch: sw,
            router,
            nodes,
            daemons: Vec::new(),
            bird,
        }
    }

    fn spawn_bird(lab: &mut Lab, router: &Netns) -> Process {
        let conf = lab.dir().join("bird.conf");
        let socket = lab.dir().join("bird.ctl");
        lab.spawn(
            router,
            "bird",
            &[
                "-f",
                "-c",
                conf.to_str().unwrap(),
                "-s",
                socket.to_str().unwrap(),
            ],
        )
    }

    /// BIRD killed and started again, as a router that reboots.
    fn restart_bird(&mut self) {
        self.bird.signal("KILL");
        self.bird.wait_timeout(Duration::from_secs(5));
        self.bird = Fabric::spawn_bird(&mut self.lab, &self.router);
    }

    fn daemon(&mut self, i: usize, config: &str) -> Daemon {
        Daemon::builder(env!("CARGO_BIN_EXE_dockline"), &self.nodes[i])
            .config(config)
            .env("DOCKLINE_LOG", "info")
            .start(&mut self.lab)
    }

    fn birdc(&self, command: &str) -> String {
        let socket = self.lab.dir().join("bird.ctl");
        let out = self
            .router
            .exec("birdc", &["-s", socket.to_str().unwrap(), command]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `show route all for PREFIX`: every path BIRD has, with attributes.
    fn routes(&self, prefix: &str) -> String {
        self.birdc(&format!("show route all for {prefix}"))
    }

    /// The next hops BIRD has for `prefix`, sorted.
    fn next_hops(&self, prefix: &str) -> Vec<String> {
        let mut hops: Vec<String> = self
            .routes(prefix)
            .lines()
            .filter_map(|line| line.trim_start().strip_prefix("via "))
            .filter_map(|rest| rest.split_whitespace().next().map(str::to_owned))
            .collect();
        hops.sort();
        hops
    }

    /// Waits until BIRD has exactly `hops` for `prefix`; the panic shows BIRD's table.
    fn wait_next_hops(&self, prefix: &str, hops: &[String], timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        while self.next_hops(prefix) != hops {
            assert!(
                std::time::Instant::now() < deadline,
                "{prefix} not via {hops:?} after {timeout:?}; BIRD has:\n{}\n{}",
                self.birdc("show route all"),
                self.birdc("show protocols all")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The `Established` line of `show protocols` for `name`, which carries its "since".
    fn protocol(&self, name: &str) -> String {
        self.birdc(&format!("show protocols {name}"))
            .lines()
            .find(|line| line.starts_with(name))
            .unwrap_or_default()
            .to_owned()
    }

    /// The protocol's line once it has stopped changing. Read right after the session came
    /// up, BIRD's "since" time was once seen to move by a millisecond with no reset in
    /// between (16:28:16.455 -> .456 in a full run), so a baseline is taken once it holds.
    fn settled_protocol(&self, name: &str) -> String {
        let mut last = self.protocol(name);
        for _ in 0..15 {
            std::thread::sleep(Duration::from_millis(200));
            let now = self.protocol(name);
            if now == last {
                return now;
            }
            last = now;
        }
        last
    }

    fn wait_established(&self) {
        for name in ["n0v4", "n0v6", "n1v4", "n1v6"] {
            wait_until(Duration::from_secs(15), &format!("{name} up"), || {
                self.protocol(name).contains("Established")
            });
        }
    }
}

fn both() -> Vec<String> {
    vec![node_ip(0), node_ip(1)]
}

#[test]
fn bird_gets_both_next_hops_with_attributes_and_follows_health_reloads_and_sigterm() {
    let configs = [
        node_config(0, "graceful_restart = false", &(services() + &local_lb())),
        node_config(1, "graceful_restart = false", &services()),
    ];
    let mut fabric = Fabric::start("bgp-bird", &bird_config(None), configs);
    fabric.wait_established();

    // A VIP served by both nodes has both next hops, with the pool's attributes.
    fabric.wait_next_hops(&format!("{VIP4}/32"), &both(), Duration::from_secs(5));
    let routes = fabric.routes(&format!("{VIP4}/32"));
    assert!(routes.contains("(64512,100)"), "community in:\n{routes}");
    assert!(
        routes.contains("(64513, 0, 100)"),
        "large community in:\n{routes}"
    );
    assert!(
        routes.contains("BGP.local_pref: 200"),
        "local-pref in:\n{routes}"
    );
    // The IPv6 /128 arrives by MP-BGP on the IPv6 sessions, next hop each node.
    let six = vec![node_ip6(0), node_ip6(1)];
    fabric.wait_next_hops(&format!("{VIP6}/128"), &six, Duration::from_secs(5));
    let routes6 = fabric.routes(&format!("{VIP6}/128"));
    println!("BIRD:\n{routes}\n{routes6}");

    // Local policy: n0 advertises while its endpoint answers, and only n0; it withdraws
    // when the endpoint stops answering and advertises again when it is back.
    let local = format!("{LOCAL_VIP}/32");
    for round in 0..2 {
        let node = fabric.nodes[0].clone();
        let endpoint = fabric.lab.spawn(
            &node,
            "python3",
            &["-m", "http.server", "--bind", &node_ip(0), "8080"],
        );
        fabric.wait_next_hops(&local, &[node_ip(0)], Duration::from_secs(5));
        if round == 0 {
            endpoint.signal("KILL");
            fabric.wait_next_hops(&local, &[], Duration::from_secs(3));
        }
    }

    // A reload that adds a service sends its route on the live session: BIRD's session
    // keeps its "since" time.
    let since = fabric.settled_protocol("n1v4");
    std::thread::sleep(Duration::from_millis(1100));
    fabric.daemons[1]
        .reload(&node_config(
            1,
            "graceful_restart = false",
            &(services() + &lb("added", VIP_ADDED)),
        ))
        .unwrap();
    fabric.wait_next_hops(
        &format!("{VIP_ADDED}/32"),
        &[node_ip(1)],
        Duration::from_secs(5),
    );
    assert_eq!(fabric.protocol("n1v4"), since, "the session was not reset");

    // /status and the metrics show the sessions.
    let status = fabric.daemons[1].status();
    let peers = status["bgp_peers"].as_array().unwrap();
    assert_eq!(peers.len(), 2, "{status}");
    assert!(
        peers.iter().all(|p| p["state"] == "Established"),
        "{status}"
    );
    assert_eq!(
        fabric.daemons[1].metric("dockline_bgp_session_up", &[("peer", "172.30.0.1")]),
        Some(1.0)
    );
    assert_eq!(
        fabric.daemons[1].metric("dockline_bgp_announced_prefixes", &[("peer", "172.30.0.1")]),
        Some(2.0)
    );

    // SIGTERM withdraws n1's routes (no graceful restart here): only n0 is left.
    fabric.daemons[1].stop();
    assert_eq!(fabric.next_hops(&format!("{VIP4}/32")), vec![node_ip(0)]);
    assert!(fabric.next_hops(&format!("{VIP_ADDED}/32")).is_empty());
    assert!(fabric.bird.is_running());
}

#[test]
fn a_frozen_node_is_dropped_at_hold_expiry_and_graceful_restart_keeps_routes_over_a_sigkill() {
    let configs = [
        node_config(0, "graceful_restart = false", &services()),
        node_config(1, "graceful_restart = true", &services()),
    ];
    let mut fabric = Fabric::start("bgp-hold", &bird_config(None), configs);
    fabric.wait_established();
    fabric.wait_next_hops(&format!("{VIP4}/32"), &both(), Duration::from_secs(5));

    // n0 frozen: its TCP stays open but silent, so BIRD drops it at hold expiry (9 s).
    fabric.daemons[0].signal("STOP");
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        fabric.next_hops(&format!("{VIP4}/32")),
        both(),
        "kept before expiry"
    );
    fabric.wait_next_hops(&format!("{VIP4}/32"), &[node_ip(1)], Duration::from_secs(6));
    fabric.daemons[0].signal("CONT");

    // n1 killed: with graceful restart BIRD keeps its routes, stale, until it is back.
    fabric.daemons[1].signal("KILL");
    std::thread::sleep(Duration::from_secs(1));
    let routes = fabric.routes(&format!("{VIP4}/32"));
    assert!(
        routes.contains(&node_ip(1)),
        "kept over the restart:\n{routes}"
    );
    let state = fabric.birdc("show protocols all n1v4");
    assert!(
        state.contains("Neighbor graceful restart active"),
        "restarting:\n{state}"
    );
    let config = node_config(1, "graceful_restart = true", &services());
    fabric.daemons[1] = fabric.daemon(1, &config);
    // Back: BIRD ends the restart at End-of-RIB, flushing what was not re-advertised;
    // the route is there, fresh.
    wait_until(Duration::from_secs(15), "n1 back, restart over", || {
        let state = fabric.birdc("show protocols all n1v4");
        state.contains("Established") && !state.contains("graceful restart active")
    });
    assert_eq!(fabric.next_hops(&format!("{VIP4}/32")), both());
}

/// MetalLB's native speaker was seen not to advertise again after a router came back
/// (metallb#485, #2803): here BIRD is killed and started again, and gets every route back.
#[test]
fn a_router_that_restarts_gets_every_route_again() {
    let configs = [
        node_config(0, "graceful_restart = false", &services()),
        node_config(1, "graceful_restart = true", &services()),
    ];
    let mut fabric = Fabric::start("bgp-router-restart", &bird_config(None), configs);
    fabric.wait_established();
    let six = vec![node_ip6(0), node_ip6(1)];
    fabric.wait_next_hops(&format!("{VIP4}/32"), &both(), Duration::from_secs(5));
    fabric.wait_next_hops(&format!("{VIP6}/128"), &six, Duration::from_secs(5));
    for _ in 0..2 {
        fabric.restart_bird();
        wait_until(Duration::from_secs(10), "BIRD answers again", || {
            fabric.birdc("show status").contains("Daemon is up")
        });
        fabric.wait_established();
        fabric.wait_next_hops(&format!("{VIP4}/32"), &both(), Duration::from_secs(5));
        fabric.wait_next_hops(&format!("{VIP6}/128"), &six, Duration::from_secs(5));
    }
}

#[test]
fn tcp_md5_with_the_right_key_comes_up_and_a_wrong_key_does_not() {
    let mut fabric = Fabric::without_daemons("bgp-md5", &bird_config(Some("s3cret")));
    for (i, key) in ["s3cret", "wrong"].iter().enumerate() {
        let file = fabric.lab.dir().join(format!("n{i}.key"));
        std::fs::write(&file, format!("{key}\n")).unwrap();
        let config = node_config(
            i,
            &format!("password_file = \"{}\"", file.display()),
            &services(),
        );
        let daemon = fabric.daemon(i, &config);
        fabric.daemons.push(daemon);
    }
    wait_until(Duration::from_secs(15), "n0 up with the right key", || {
        fabric.protocol("n0v4").contains("Established")
    });
    fabric.wait_next_hops(&format!("{VIP4}/32"), &[node_ip(0)], Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(3));
    assert!(!fabric.protocol("n1v4").contains("Established"));
    wait_until(Duration::from_secs(10), "n1 logs why", || {
        fabric.daemons[1].log().contains("TCP-MD5 is on")
    });
}

/// A router that completes the OPEN exchange, then sends one bad thing per connection and
/// prints the NOTIFICATION it gets back: garbage instead of a message, an UPDATE whose
/// withdrawn-routes length runs past its end, ROUTE-REFRESH after ROUTE-REFRESH, and empty
/// UPDATEs as fast as it can. With the first, BFD packets with TTL 64: not from the link.
const BAD_ROUTER: &str = r#"
import socket, struct, sys, threading
def send_bfd_from_afar():
    bfd = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    bfd.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 64)
    packet = bytes([0x20, 0x40, 3, 24]) + struct.pack("!IIIII", 7, 0, 300000, 300000, 0)
    for _ in range(3):
        bfd.sendto(packet, (sys.argv[1], 3784))
def message(kind, body=b""):
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), kind) + body
def read(connection):
    data = b""
    while len(data) < 19 or len(data) < struct.unpack("!H", data[16:18])[0]:
        want = 19 if len(data) < 19 else struct.unpack("!H", data[16:18])[0]
        chunk = connection.recv(want - len(data))
        if not chunk:
            return None
        data += chunk
    return data
capabilities = bytes([65, 4]) + struct.pack("!I", 64512) + bytes([1, 4, 0, 1, 0, 1])
parameters = bytes([2, len(capabilities)]) + capabilities
open_message = message(1, struct.pack("!BHH4sB", 4, 64512, 9, socket.inet_aton("172.30.0.5"), len(parameters)) + parameters)
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("172.30.0.5", 179))
listener.listen(4)
def flood(connection):
    chunk = message(2, b"\x00\x00\x00\x00") * 45000
    sent = 0
    try:
        while True:
            connection.sendall(chunk)
            sent += len(chunk)
    except OSError:
        print("flood stopped after", sent >> 20, "MiB", flush=True)
for mode in ["garbage", "truncated", "refresh", "flood"]:
    connection, _ = listener.accept()
    if mode == "garbage":
        send_bfd_from_afar()
    read(connection)
    connection.sendall(open_message + message(4))
    while True:
        received = read(connection)
        if received is None or received[18] == 4:
            break
    if mode == "garbage":
        connection.sendall(b"\x00" * 40)
    elif mode == "truncated":
        connection.sendall(b"\xff" * 16 + struct.pack("!HB", 23, 2) + b"\x00\x0a\x00\x00")
    elif mode == "refresh":
        connection.sendall(message(5, b"\x00\x01\x00\x01") * 40)
    else:
        threading.Thread(target=flood, args=(connection,), daemon=True).start()
    while True:
        received = read(connection)
        if received is None:
            print(mode, "closed without a NOTIFICATION", flush=True)
            break
        if received[18] == 3:
            print(mode, "NOTIFICATION", received[19], received[20], flush=True)
            break
    connection.close()
"#;

#[test]
fn a_bad_peer_gets_the_right_notifications_while_the_other_sessions_carry_on() {
    let mut fabric = Fabric::without_daemons("bgp-bad-peer", &bird_config(None));
    // The bad router has a namespace of its own: BIRD holds port 179 in the router's.
    let bad = fabric.lab.host(&fabric.switch, "bad", &["172.30.0.5/24"]);
    let script = fabric.lab.dir().join("bad_router.py");
    std::fs::write(&script, BAD_ROUTER).unwrap();
    let router = fabric.lab.spawn(
        &bad,
        "python3",
        &["-u", script.to_str().unwrap(), &node_ip(0)],
    );
    let extra = bgp_peer("172.30.0.5", ASN, "bfd = true");
    for i in 0..2 {
        let services = if i == 0 {
            services() + &extra
        } else {
            services()
        };
        let config = node_config(i, "", &services);
        let daemon = fabric.daemon(i, &config);
        fabric.daemons.push(daemon);
    }
    fabric.wait_established();
    let since = fabric.settled_protocol("n0v4");
    let rss = |daemon: &Daemon| {
        let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let rss_before = rss(&fabric.daemons[0]);
    wait_until(Duration::from_secs(30), "every NOTIFICATION", || {
        router.log().contains("flood NOTIFICATION")
    });
    let log = router.log();
    assert!(log.contains("garbage NOTIFICATION 1 1"), "{log}");
    assert!(log.contains("truncated NOTIFICATION 3 "), "{log}");
    // A router that keeps asking for the table, or floods UPDATEs, is reset with a Cease,
    // Out of Resources, and costs the node no memory to speak of.
    assert!(log.contains("refresh NOTIFICATION 6 8"), "{log}");
    assert!(log.contains("flood NOTIFICATION 6 8"), "{log}");
    let grown_kib = rss(&fabric.daemons[0]).saturating_sub(rss_before);
    assert!(grown_kib < 16 * 1024, "RSS grew by {grown_kib} KiB");
    assert!(fabric.daemons[0].log().contains("flooding"));
    // The BFD packets sent with TTL 64 were dropped as not from the link.
    assert_eq!(
        fabric.daemons[0].metric("dockline_bfd_discarded_total", &[("reason", "ttl")]),
        Some(3.0)
    );
    // Everything else carries on: n0's BIRD sessions and routes are untouched.
    assert_eq!(fabric.protocol("n0v4"), since);
    assert_eq!(fabric.next_hops(&format!("{VIP4}/32")), both());
    let sent = |code: &str| {
        fabric.daemons[0].metric(
            "dockline_bgp_notifications_total",
            &[
                ("peer", "172.30.0.5"),
                ("direction", "sent"),
                ("code", code),
            ],
        )
    };
    assert_eq!(
        (sent("1"), sent("3"), sent("6")),
        (Some(1.0), Some(1.0), Some(2.0))
    );
}

/// GoBGP at 172.30.0.2 (iBGP) and FRR's bgpd at 172.30.0.3 (eBGP, AS 64600), each with an
/// IPv4 and an IPv6 session to node n0.
fn gobgp_config() -> String {
    let mut text = format!(
        "[global.config]\nas = {ASN}\nrouter-id = \"172.30.0.2\"\nport = 179\n\
         local-address-list = [\"172.30.0.2\", \"fd00:30::2\"]\n"
    );
    for (address, family) in [(node_ip(0), "ipv4-unicast"), (node_ip6(0), "ipv6-unicast")] {
        text.push_str(&format!(
            "[[neighbors]]\n[neighbors.config]\nneighbor-address = \"{address}\"\npeer-as = {ASN}\n\
             [neighbors.timers.config]\nhold-time = 9\nkeepalive-interval = 3\nconnect-retry = 1\n\
             [[neighbors.afi-safis]]\n[neighbors.afi-safis.config]\nafi-safi-name = \"{family}\"\n"
        ));
    }
    text
}

fn frr_config() -> String {
    format!(
        "frr defaults traditional\nhostname frr\n!\nrouter bgp 64600\n bgp router-id 172.30.0.3\n\
         no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n\
         neighbor {v4} remote-as {ASN}\n neighbor {v4} timers 3 9\n neighbor {v4} timers connect 1\n\
         neighbor {v6} remote-as {ASN}\n neighbor {v6} timers 3 9\n neighbor {v6} timers connect 1\n\
         address-family ipv4 unicast\n  neighbor {v4} activate\n exit-address-family\n\
         address-family ipv6 unicast\n  neighbor {v6} activate\n exit-address-family\n!\n",
        v4 = node_ip(0),
        v6 = node_ip6(0),
    )
}

#[test]
fn gobgp_and_frr_receive_the_same_routes() {
    let mut lab = Lab::new("bgp-gobgp-frr");
    let sw = lab.switch("sw");
    let gobgp = lab.host(&sw, "gobgp", &["172.30.0.2/24", "fd00:30::2/64"]);
    let frr = lab.host(&sw, "frr", &["172.30.0.3/24", "fd00:30::3/64"]);
    let node = lab.host(
        &sw,
        "n0",
        &[
            &format!("{}/24", node_ip(0)),
            &format!("{}/64", node_ip6(0)),
        ],
    );
    for ns in [&gobgp, &frr, &node] {
        ns.sh("sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.eth0.accept_dad=0");
        ns.sh("ip -6 addr show dev eth0 | grep -q tentative && sleep 2");
    }
    let dir = lab.dir().to_owned();
    std::fs::write(dir.join("gobgp.toml"), gobgp_config()).unwrap();
    let gobgp_api = format!("unix://{}", dir.join("gobgp.sock").display());
    lab.spawn(
        &gobgp,
        "gobgpd",
        &[
            "-f",
            dir.join("gobgp.toml").to_str().unwrap(),
            "-p",
            "--pprof-disable",
            "--api-hosts",
            &gobgp_api,
        ],
    );
    let frr_dir = dir.join("frr");
    std::fs::create_dir_all(&frr_dir).unwrap();
    std::fs::write(frr_dir.join("bgpd.conf"), frr_config()).unwrap();
    // bgpd drops to the frr user, which must write its vty socket there.
    let _ = std::process::Command::new("chown")
        .args(["-R", "frr:frr", frr_dir.to_str().unwrap()])
        .status();
    lab.spawn(
        &frr,
        "/usr/lib/frr/bgpd",
        &[
            "-Z",
            "-n",
            "-S",
            "-f",
            frr_dir.join("bgpd.conf").to_str().unwrap(),
            "--vty_socket",
            frr_dir.to_str().unwrap(),
            "-i",
            frr_dir.join("bgpd.pid").to_str().unwrap(),
            "-P",
            "0",
            "--log",
            "stdout",
        ],
    );
    let peers = [
        ("172.30.0.2", ASN),
        ("fd00:30::2", ASN),
        ("172.30.0.3", 64600),
        ("fd00:30::3", 64600),
    ]
    .iter()
    .map(|(address, asn)| bgp_peer(address, *asn, ""))
    .collect::<String>();
    let config = format!(
        "[node]\nname = \"n0\"\ninternal_ip = \"{ip}\"\n[dns]\nenabled = false\n[proxy]\nenabled = false\n\
         [bgp]\nasn = {ASN}\n{peers}\
         [[pools]]\nname = \"routed\"\naddresses = [\"192.0.2.10-192.0.2.50\", \"2001:db8:1::/124\"]\n\
         announce = [\"bgp\"]\ncommunities = [\"64512:100\"]\nlarge_communities = [\"64513:0:100\"]\nlocal_pref = 200\n{services}",
        ip = node_ip(0),
        services = services(),
    );
    let _daemon = Daemon::builder(env!("CARGO_BIN_EXE_dockline"), &node)
        .config(&config)
        .env("DOCKLINE_LOG", "info")
        .start(&mut lab);

    let gobgp_rib = |family: &str| {
        let out = gobgp.exec(
            "gobgp",
            &["--target", &gobgp_api, "global", "rib", "-a", family],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    wait_until(Duration::from_secs(20), "GoBGP has both routes", || {
        gobgp_rib("ipv4").contains(&format!("{VIP4}/32"))
            && gobgp_rib("ipv6").contains(&format!("{VIP6}/128"))
    });
    let v4 = gobgp_rib("ipv4");
    assert!(v4.contains(&node_ip(0)), "next hop in:\n{v4}");
    assert!(v4.contains("64512:100"), "community in:\n{v4}");
    assert!(v4.contains("LocalPref: 200"), "local-pref in:\n{v4}");
    assert!(gobgp_rib("ipv6").contains(&node_ip6(0)));

    let vtysh = |command: &str| {
        let out = frr.exec(
            "vtysh",
            &[
                "--vty_socket",
                frr_dir.to_str().unwrap(),
                "-d",
                "bgpd",
                "-c",
                command,
            ],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    wait_until(Duration::from_secs(20), "FRR has both routes", || {
        vtysh(&format!("show bgp ipv4 unicast {VIP4}/32")).contains(&node_ip(0))
            && vtysh(&format!("show bgp ipv6 unicast {VIP6}/128")).contains(&node_ip6(0))
    });
    let route = vtysh(&format!("show bgp ipv4 unicast {VIP4}/32"));
    // eBGP: our AS in the path, no LOCAL_PREF from us, both kinds of community.
    assert!(
        route.contains(&format!("\n  {ASN}")),
        "AS path in:\n{route}"
    );
    assert!(
        route.contains("Community: 64512:100"),
        "community in:\n{route}"
    );
    assert!(
        route.contains("Large Community: 64513:0:100"),
        "large community in:\n{route}"
    );
    println!(
        "GoBGP:\n{v4}{v6}\nFRR:\n{route}{route6}",
        v6 = gobgp_rib("ipv6"),
        route6 = vtysh(&format!("show bgp ipv6 unicast {VIP6}/128")),
    );
}

#[test]
fn a_reload_resets_opens_and_closes_only_the_sessions_of_changed_peers() {
    let configs = [
        node_config(0, "", &services()),
        node_config(1, "", &services()),
    ];
    let fabric = Fabric::start("bgp-peer-reload", &bird_config(None), configs);
    fabric.wait_established();
    let v4 = fabric.settled_protocol("n0v4");
    let v6 = fabric.settled_protocol("n0v6");
    std::thread::sleep(Duration::from_millis(1100));

    // Only the IPv6 peer's keepalive changes: that session alone is reset.
    let changed = node_config(0, "", &services()).replacen(
        &bgp_peer("fd00:30::1", ASN, ""),
        &bgp_peer("fd00:30::1", ASN, "keepalive = 2"),
        1,
    );
    assert_ne!(changed, node_config(0, "", &services()));
    fabric.daemons[0].reload(&changed).unwrap();
    wait_until(Duration::from_secs(10), "n0v6 reset and back", || {
        let now = fabric.protocol("n0v6");
        now != v6 && now.contains("Established")
    });
    assert_eq!(
        fabric.protocol("n0v4"),
        v4,
        "the IPv4 session was not touched"
    );

    // The IPv6 peer removed: its session closes (BIRD sees the Cease), the other stays.
    let removed = node_config(0, "", &services()).replacen(&bgp_peer("fd00:30::1", ASN, ""), "", 1);
    assert!(!removed.contains("fd00:30::1"));
    fabric.daemons[0].reload(&removed).unwrap();
    wait_until(Duration::from_secs(10), "n0v6 closed", || {
        !fabric.protocol("n0v6").contains("Established")
    });
    fabric.wait_next_hops(
        &format!("{VIP6}/128"),
        &[node_ip6(1)],
        Duration::from_secs(5),
    );
    assert_eq!(fabric.protocol("n0v4"), v4);

    // Added back: it opens again.
    fabric.daemons[0].reload(&changed).unwrap();
    wait_until(Duration::from_secs(10), "n0v6 open again", || {
        fabric.protocol("n0v6").contains("Established")
    });
    assert_eq!(fabric.protocol("n0v4"), v4);
}

#[test]
fn with_bfd_a_frozen_node_loses_its_routes_within_a_second() {
    let configs = [
        node_config(0, "graceful_restart = false\nbfd = true", &services()),
        node_config(1, "graceful_restart = false", &services()),
    ];
    let fabric = Fabric::start("bgp-bfd", &bird_config_with_bfd(), configs);
    fabric.wait_established();
    fabric.wait_next_hops(&format!("{VIP4}/32"), &both(), Duration::from_secs(5));
    wait_until(Duration::from_secs(10), "BFD up on both ends", || {
        fabric
            .birdc("show bfd sessions")
            .lines()
            .any(|line| line.starts_with(&node_ip(0)) && line.contains(" Up "))
            && fabric.daemons[0].metric("dockline_bfd_session_up", &[("peer", "172.30.0.1")])
                == Some(1.0)
    });

    // Frozen: the TCP session stays open and silent, but BFD stops at once.
    fabric.daemons[0].signal("STOP");
    let frozen = std::time::Instant::now();
    fabric.wait_next_hops(&format!("{VIP4}/32"), &[node_ip(1)], Duration::from_secs(3));
    let detected = frozen.elapsed();
    fabric.daemons[0].signal("CONT");
    println!("BFD: routes of the frozen node gone after {detected:?}");
    assert!(detected < Duration::from_millis(1500), "{detected:?}");
    // Back: BFD and the session come up again, and so do the routes.
    fabric.wait_next_hops(&format!("{VIP4}/32"), &both(), Duration::from_secs(20));
}
