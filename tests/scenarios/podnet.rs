//! The pod network in namespaces: nodes on two underlay segments joined by a router, each
//! with a "pod" namespace behind it on a veth link (the node is its gateway). VXLAN carries
//! pod traffic between dockline nodes and to and from the kernel's vxlan driver, drops and
//! counts crafted packets, and keeps the MTU rule; Classic routes pods on one segment with
//! no encapsulation; a reload switches between the two with a ping running.

// Test helpers fail the test by panicking, as the tests themselves do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use dockline_lab::{Daemon, Lab, Netns, wait_until};

/// The underlay's address family. Over IPv4 the segments are A (172.30.0.0/24) and B
/// (172.30.1.0/24); over IPv6 A (fd00:a::/64) and B (fd00:b::/64). The router is host 1 of
/// each, node N host 10 + N of its segment.
#[derive(Clone, Copy)]
enum Underlay {
    V4,
    V6,
}

impl Underlay {
    /// Host `host` of `segment`, without the prefix length.
    fn address(self, segment: usize, host: u8) -> String {
        match self {
            Underlay::V4 => format!("172.30.{segment}.{host}"),
            Underlay::V6 => format!("fd00:{:x}::{host}", 0xa + segment),
        }
    }

    fn prefix_len(self) -> u8 {
        match self {
            Underlay::V4 => 24,
            Underlay::V6 => 64,
        }
    }
}

/// One node of the lab: its namespace, its pod's, its underlay address and its number
/// (its pod range is 10.111.N.0/24, its pod 10.111.N.10).
struct Node {
    ns: Netns,
    pod: Netns,
    ip: String,
    number: u8,
}

impl Node {
    fn pod_ip(&self) -> String {
        format!("10.111.{}.10", self.number)
    }
}

/// An IPv4 underlay: see [`lab_on`].
fn lab(name: &str, segments: &[usize]) -> (Lab, Netns, Vec<Node>) {
    lab_on(Underlay::V4, name, segments)
}

/// A router on both segments, and node N on `segments[N - 1]` with its pod behind it.
fn lab_on(underlay: Underlay, name: &str, segments: &[usize]) -> (Lab, Netns, Vec<Node>) {
    let mut lab = Lab::new(name);
    let switches = [lab.switch("segment-a"), lab.switch("segment-b")];
    let router = lab.netns("router");
    let prefix_len = underlay.prefix_len();
    for (segment, switch) in switches.iter().enumerate() {
        let address = format!("{}/{prefix_len}", underlay.address(segment, 1));
        lab.attach(switch, &router, &format!("eth{segment}"), &[&address]);
    }
    router.sh_ok("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1");
    let mut nodes = Vec::new();
    for (index, segment) in segments.iter().enumerate() {
        let number = u8::try_from(index + 1).unwrap();
        let ip = underlay.address(*segment, 10 + number);
        let ns = lab.host(
            &switches[*segment],
            &format!("node-{number}"),
            &[&format!("{ip}/{prefix_len}")],
        );
        ns.sh_ok(&format!(
            "ip route add default via {} && sysctl -qw net.ipv4.ip_forward=1",
            underlay.address(*segment, 1)
        ));
        let pod = lab.netns(&format!("pod-{number}"));
        lab.link(
            &ns,
            "pod0",
            &[&format!("10.111.{number}.1/24")],
            &pod,
            "eth0",
            &[&format!("10.111.{number}.10/24")],
        );
        pod.sh_ok(&format!("ip route add default via 10.111.{number}.1"));
        nodes.push(Node {
            ns,
            pod,
            ip,
            number,
        });
    }
    (lab, router, nodes)
}

/// Node `me`'s config: its pod range, the mode, and every other node as a peer.
fn config(me: &Node, nodes: &[Node], mode: &str) -> String {
    let mut text = format!(
        r#"
[node]
name = "node-{n}"
internal_ip = "{ip}"
pod_cidr = "10.111.{n}.0/24"
[dns]
enabled = false
[network]
tunnel_mode = "{mode}"
[network.vxlan]
vni = 42
"#,
        n = me.number,
        ip = me.ip,
    );
    for peer in nodes.iter().filter(|peer| peer.number != me.number) {
        text += &format!(
            "[[network.nodes]]\nname = \"node-{n}\"\ninternal_ip = \"{ip}\"\npod_cidr = \"10.111.{n}.0/24\"\n",
            n = peer.number,
            ip = peer.ip,
        );
    }
    text
}

fn start(lab: &mut Lab, node: &Node, nodes: &[Node], mode: &str) -> Daemon {
    Daemon::builder(env!("CARGO_BIN_EXE_dockline"), &node.ns)
        .config(&config(node, nodes, mode))
        .start(lab)
}

fn pings(from: &Netns, to: &str) -> bool {
    from.exec("ping", &["-c", "1", "-W", "1", to])
        .status
        .success()
}

/// `ping -M do -s SIZE`: the ping's output (it fails on "frag needed").
fn ping_df(from: &Netns, to: &str, ip_size: usize) -> String {
    let payload = (ip_size - 28).to_string();
    let out = from.exec(
        "ping",
        &["-c", "1", "-W", "1", "-M", "do", "-s", &payload, to],
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Sends 8 MiB over TCP from `client` to `server_ip` (a listener started in `server`) and
/// returns the byte count the server read.
fn tcp_transfer(lab: &mut Lab, server: &Netns, client: &Netns, server_ip: &str) -> usize {
    let received = lab.dir().join(format!("received-{}", server.name));
    let listener = format!(
        "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         s.bind(('0.0.0.0',5001))\ns.listen()\nc,_=s.accept()\nn=0\nwhile True:\n  d=c.recv(65536)\n  \
         if not d: break\n  n+=len(d)\nopen('{0}.part','w').write(str(n))\n\
         import os\nos.rename('{0}.part','{0}')\n",
        received.display()
    );
    let _server = lab.spawn(server, "python3", &["-c", &listener]);
    wait_until(Duration::from_secs(5), "the TCP listener", || {
        server.sh("ss -ltn | grep -q :5001").status.success()
    });
    let sender = format!(
        "import socket\ns=socket.create_connection(('{server_ip}',5001),timeout=10)\n\
         s.sendall(b'x'*(8<<20))\ns.close()\n"
    );
    client.sh_ok(&format!("python3 -c \"{sender}\""));
    wait_until(
        Duration::from_secs(10),
        "the server counts the bytes",
        || received.exists(),
    );
    std::fs::read_to_string(&received)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// What the pod network component reports in `/status`.
fn podnet_status(daemon: &Daemon) -> serde_json::Value {
    let status = daemon.status();
    let components = status["components"].as_array().unwrap();
    let podnet = components.iter().find(|c| c["name"] == "podnet");
    podnet.unwrap_or_else(|| panic!("no podnet in {status}"))["status"].clone()
}

/// Routes dockline made in the main table of `ns`, as `ip` prints them.
fn pod_routes(ns: &Netns) -> Vec<String> {
    ns.sh_ok("ip route show proto 215")
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn vxlan_joins_pods_on_two_segments_with_the_overlay_mtu_and_cleans_up_at_stop() {
    let (mut lab, _router, nodes) = lab("podnet-vxlan", &[0, 0, 1]);
    let mut daemons: Vec<Daemon> = nodes
        .iter()
        .map(|node| start(&mut lab, node, &nodes, "VXLAN"))
        .collect();
    let (first, far) = (&nodes[0], &nodes[2]);

    let device = first.ns.sh_ok("ip -o addr show dev dockline0");
    assert!(device.contains("10.111.1.1/16"), "{device}");
    let link = first.ns.sh_ok("ip -o link show dev dockline0");
    assert!(link.contains("mtu 1450"), "{link}");
    assert_eq!(
        pod_routes(&first.ns),
        [
            "10.111.2.0/24 via 10.111.2.1 dev dockline0",
            "10.111.3.0/24 via 10.111.3.1 dev dockline0"
        ]
    );

    wait_until(Duration::from_secs(5), "pod 1 pings pod 3", || {
        pings(&first.pod, &far.pod_ip())
    });
    assert!(pings(&far.pod, &first.pod_ip()));
    assert!(pings(&nodes[1].pod, &far.pod_ip()));
    assert_eq!(
        tcp_transfer(&mut lab, &far.pod, &first.pod, &far.pod_ip()),
        8 << 20
    );

    // The overlay's MTU is 1450: a 1450-byte DF packet passes, 1451 bytes need fragments.
    let fits = ping_df(&first.pod, &far.pod_ip(), 1450);
    assert!(fits.contains("1 received"), "{fits}");
    let too_big = ping_df(&first.pod, &far.pod_ip(), 1451);
    assert!(
        too_big.contains("mtu = 1450") || too_big.contains("mtu=1450"),
        "{too_big}"
    );

    let podnet = podnet_status(&daemons[0]);
    assert_eq!(podnet["mode"], "VXLAN", "{podnet}");
    assert_eq!(podnet["device"], "dockline0");
    assert_eq!(podnet["mtu"], 1450);
    assert_eq!(podnet["vteps"], serde_json::json!([nodes[1].ip, far.ip]));
    assert!(
        daemons[0]
            .metric("dockline_vxlan_tx_packets_total", &[])
            .unwrap()
            > 1000.0
    );
    assert_eq!(
        daemons[0].metric("dockline_pod_routes", &[("mode", "VXLAN")]),
        Some(2.0)
    );

    daemons[0].stop();
    let links = first.ns.sh_ok("ip -o link show");
    assert!(!links.contains("dockline0"), "{links}");
    assert!(pod_routes(&first.ns).is_empty());
    drop(daemons);
}

#[test]
fn vxlan_over_an_ipv6_underlay_joins_pods_with_70_bytes_of_overhead() {
    let (mut lab, _router, nodes) = lab_on(Underlay::V6, "podnet-ipv6", &[0, 1]);
    let daemons: Vec<Daemon> = nodes
        .iter()
        .map(|node| start(&mut lab, node, &nodes, "VXLAN"))
        .collect();
    let (first, far) = (&nodes[0], &nodes[1]);
    let link = first.ns.sh_ok("ip -o link show dev dockline0");
    assert!(link.contains("mtu 1430"), "{link}");

    wait_until(Duration::from_secs(5), "pod 1 pings pod 2", || {
        pings(&first.pod, &far.pod_ip())
    });
    assert!(pings(&far.pod, &first.pod_ip()));
    assert_eq!(
        tcp_transfer(&mut lab, &far.pod, &first.pod, &far.pod_ip()),
        8 << 20
    );
    assert_eq!(
        tcp_transfer(&mut lab, &first.pod, &far.pod, &first.pod_ip()),
        8 << 20
    );
    // 1430 bytes fit in a 1500-byte IPv6 underlay packet with the 70 bytes of headers.
    let fits = ping_df(&first.pod, &far.pod_ip(), 1430);
    assert!(fits.contains("1 received"), "{fits}");
    let too_big = ping_df(&first.pod, &far.pod_ip(), 1431);
    assert!(
        too_big.contains("mtu") && too_big.contains("1430"),
        "{too_big}"
    );

    let podnet = podnet_status(&daemons[0]);
    assert_eq!(podnet["mtu"], 1430, "{podnet}");
    assert_eq!(podnet["vteps"], serde_json::json!([far.ip]));
    assert_eq!(
        daemons[1].metric_sum("dockline_vxlan_drops_total", &[]),
        0.0
    );
}

#[test]
fn a_node_killed_and_restarted_rejoins_the_overlay() {
    let (mut lab, _router, nodes) = lab("podnet-restart", &[0, 1]);
    let _first = start(&mut lab, &nodes[0], &nodes, "VXLAN");
    let mut second = start(&mut lab, &nodes[1], &nodes, "VXLAN");
    wait_until(Duration::from_secs(5), "pods ping over the overlay", || {
        pings(&nodes[0].pod, &nodes[1].pod_ip())
    });
    second.stop_with("KILL");
    assert!(!pings(&nodes[0].pod, &nodes[1].pod_ip()));
    let _second = start(&mut lab, &nodes[1], &nodes, "VXLAN");
    wait_until(
        Duration::from_secs(5),
        "pods ping again after the restart",
        || pings(&nodes[0].pod, &nodes[1].pod_ip()),
    );
}

/// Turns node `n` into a kernel vxlan VTEP: device `vx0` with the MAC and address dockline
/// would give it, flooding to `remote`, its inner checksums completed in software (veth
/// would leave them partial for a userspace peer to see as bad).
fn kernel_vtep(node: &Node, remote: &str) {
    let n = node.number;
    node.ns.sh_ok(&format!(
        "ip link add vx0 type vxlan id 42 local {ip} dstport 4789 dev eth0 && \
         ip link set vx0 address 02:4c:0a:6f:{n:02x}:01 mtu 1450 && \
         bridge fdb append 00:00:00:00:00:00 dev vx0 dst {remote} && \
         ethtool -K vx0 tx off >/dev/null && \
         ip addr add 10.111.{n}.1/16 dev vx0 && ip link set vx0 up && \
         ip route add 10.111.1.0/24 via 10.111.1.1 dev vx0",
        ip = node.ip
    ));
}

#[test]
fn a_kernel_vxlan_peer_and_dockline_reach_each_others_pods_both_ways() {
    let (mut lab, _router, nodes) = lab("podnet-kernel", &[0, 1]);
    let daemon = start(&mut lab, &nodes[0], &nodes, "VXLAN");
    kernel_vtep(&nodes[1], &nodes[0].ip);
    let (ours, kernel) = (&nodes[0], &nodes[1]);
    wait_until(
        Duration::from_secs(5),
        "dockline's pod pings the kernel's",
        || pings(&ours.pod, &kernel.pod_ip()),
    );
    assert!(pings(&kernel.pod, &ours.pod_ip()));
    assert_eq!(
        tcp_transfer(&mut lab, &kernel.pod, &ours.pod, &kernel.pod_ip()),
        8 << 20
    );
    assert_eq!(
        tcp_transfer(&mut lab, &ours.pod, &kernel.pod, &ours.pod_ip()),
        8 << 20
    );
    assert_eq!(daemon.metric_sum("dockline_vxlan_drops_total", &[]), 0.0);
}

/// Sends one UDP datagram of `payload` (hex) to `to`:4789 from `from`'s address `source`.
fn send_udp(ns: &Netns, source: &str, to: &str, payload: &str) {
    ns.sh_ok(&format!(
        "python3 -c \"import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); \
         s.bind(('{source}', 0)); s.sendto(bytes.fromhex('{payload}'), ('{to}', 4789))\""
    ));
}

#[test]
fn crafted_packets_are_dropped_and_counted_by_reason() {
    let (mut lab, router, nodes) = lab("podnet-drops", &[0, 1]);
    let daemon = start(&mut lab, &nodes[0], &nodes, "VXLAN");
    let target = &nodes[0].ip;
    // A broadcast ARP request from 02:00:00:00:00:09, as the kernel would carry it.
    let frame =
        "ffffffffffff020000000009080600010800060400010200000000090a6f02630000000000000a6f0101";
    let good_header = "0800000000002a00";
    let known = &nodes[1];
    send_udp(
        &known.ns,
        &known.ip,
        target,
        &format!("0800000000002b00{frame}"),
    );
    send_udp(
        &known.ns,
        &known.ip,
        target,
        &format!("0000000000002a00{frame}"),
    );
    send_udp(&known.ns, &known.ip, target, "0800000000002a00ffff");
    send_udp(
        &router,
        "172.30.0.1",
        target,
        &format!("{good_header}{frame}"),
    );
    let drops = |reason: &str| {
        daemon
            .metric("dockline_vxlan_drops_total", &[("reason", reason)])
            .unwrap_or_default()
    };
    wait_until(Duration::from_secs(5), "four drops counted", || {
        daemon.metric_sum("dockline_vxlan_drops_total", &[]) >= 4.0
    });
    assert_eq!(drops("other_vni"), 1.0);
    assert_eq!(drops("no_i_flag"), 1.0);
    assert_eq!(drops("too_short"), 1.0);
    assert_eq!(drops("unknown_vtep"), 1.0);
    assert_eq!(
        daemon.metric("dockline_vxlan_rx_packets_total", &[]),
        Some(0.0)
    );
}

#[test]
fn classic_routes_pods_on_one_segment_without_encapsulation_and_reports_the_far_node() {
    let (mut lab, _router, nodes) = lab("podnet-classic", &[0, 0, 1]);
    let first = start(&mut lab, &nodes[0], &nodes, "Classic");
    let _second = start(&mut lab, &nodes[1], &nodes, "Classic");
    assert_eq!(
        pod_routes(&nodes[0].ns),
        ["10.111.2.0/24 via 172.30.0.12 dev eth0"]
    );
    let capture = lab.dir().join("classic.pcap");
    let tcpdump = lab.spawn(
        &nodes[0].ns,
        "tcpdump",
        &[
            "-i",
            "eth0",
            "-n",
            "-w",
            capture.to_str().unwrap(),
            "udp port 4789",
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    wait_until(Duration::from_secs(5), "pod 1 pings pod 2", || {
        pings(&nodes[0].pod, &nodes[1].pod_ip())
    });
    assert!(pings(&nodes[1].pod, &nodes[0].pod_ip()));
    tcpdump.signal("INT");
    std::thread::sleep(Duration::from_millis(300));
    let seen = nodes[0].ns.sh_ok(&format!(
        "tcpdump -r {} -n 2>/dev/null | wc -l",
        capture.display()
    ));
    assert_eq!(seen.trim(), "0", "UDP 4789 on the underlay in Classic mode");

    let podnet = podnet_status(&first);
    assert_eq!(podnet["mode"], "Classic", "{podnet}");
    assert_eq!(podnet["unreachable"][0]["name"], "node-3", "{podnet}");
    assert!(first.log().contains("Classic mode needs one L2 segment"));
}

/// How long after `since` a ping from `from` to `to` is first answered (polled every 50 ms).
fn answered_again(from: &Netns, to: &str, since: Instant) -> Duration {
    wait_until(
        Duration::from_secs(3),
        "a ping answered after the switch",
        || {
            from.exec("ping", &["-c", "1", "-W", "0.2", to])
                .status
                .success()
        },
    );
    since.elapsed()
}

#[test]
fn a_reload_switches_classic_and_vxlan_live_with_pods_answering_within_a_second() {
    let (mut lab, _router, nodes) = lab("podnet-switch", &[0, 0]);
    let daemons: Vec<Daemon> = nodes
        .iter()
        .map(|node| start(&mut lab, node, &nodes, "Classic"))
        .collect();
    let (a, b) = (&nodes[0], &nodes[1]);
    wait_until(Duration::from_secs(5), "pods ping in Classic mode", || {
        pings(&a.pod, &b.pod_ip())
    });
    let pid = daemons[0].pid();
    for mode in ["VXLAN", "Classic"] {
        // The pods cannot talk while only one node has switched: the switch is done when
        // the last node's reload (signal, load, teardown, bring-up) is.
        daemons[0].reload(&config(a, &nodes, mode)).unwrap();
        let since = Instant::now();
        daemons[1].reload(&config(b, &nodes, mode)).unwrap();
        let forth = answered_again(&a.pod, &b.pod_ip(), since);
        let back = answered_again(&b.pod, &a.pod_ip(), since);
        eprintln!(
            "switch to {mode}: pods answer again after {forth:?} (a to b), {back:?} (b to a)"
        );
        assert!(forth < Duration::from_secs(1), "{mode}: {forth:?}");
        assert!(back < Duration::from_secs(1), "{mode}: {back:?}");
        let via = if mode == "VXLAN" {
            "10.111.2.0/24 via 10.111.2.1 dev dockline0"
        } else {
            "10.111.2.0/24 via 172.30.0.12 dev eth0"
        };
        assert_eq!(pod_routes(&a.ns), [via]);
    }
    assert_eq!(daemons[0].pid(), pid, "no restart of the daemon");
    let links = a.ns.sh_ok("ip -o link show");
    assert!(!links.contains("dockline0"), "{links}");
}

#[test]
fn with_gossip_a_dead_node_loses_its_route_and_vtep_and_gets_them_back_when_it_rejoins() {
    let (mut lab, _router, nodes) = lab("podnet-members", &[0, 1]);
    let secret = lab.dir().join("gossip.key");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let gossiping = |node: &Node| {
        let mut text = config(node, &nodes, "VXLAN");
        text += &format!(
            "[cluster.gossip]\nlisten = \"{}:7946\"\nsecret_file = \"{}\"\n",
            node.ip,
            secret.display()
        );
        text
    };
    let start_gossiping = |lab: &mut Lab, node: &Node| {
        Daemon::builder(env!("CARGO_BIN_EXE_dockline"), &node.ns)
            .config(&gossiping(node))
            .start(lab)
    };
    let first = start_gossiping(&mut lab, &nodes[0]);
    let mut second = start_gossiping(&mut lab, &nodes[1]);
    let route = "10.111.2.0/24 via 10.111.2.1 dev dockline0";
    wait_until(
        Duration::from_secs(5),
        "node-2 is a member with a route",
        || pod_routes(&nodes[0].ns) == [route],
    );
    wait_until(Duration::from_secs(5), "pods ping over the overlay", || {
        pings(&nodes[0].pod, &nodes[1].pod_ip())
    });

    second.stop_with("KILL");
    wait_until(Duration::from_secs(5), "the dead node's route goes", || {
        pod_routes(&nodes[0].ns).is_empty()
    });
    assert_eq!(podnet_status(&first)["vteps"], serde_json::json!([]));

    let _second = start_gossiping(&mut lab, &nodes[1]);
    wait_until(
        Duration::from_secs(5),
        "the route comes back on rejoin",
        || pod_routes(&nodes[0].ns) == [route],
    );
    wait_until(Duration::from_secs(5), "pods ping again", || {
        pings(&nodes[0].pod, &nodes[1].pod_ip())
    });
}
