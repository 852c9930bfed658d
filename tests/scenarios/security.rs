//! Secure by default, in namespaces: nodes and a client on one switch, with rogue hosts
//! that try to join the cluster (no key, a wrong key, replayed packets, the key but outside
//! `cluster.allowed_nodes`), a node with L2
//! off, a BGP-only pool, one config file for every node, a split config under both
//! mismatch policies, and a daemon SIGKILLed with the ARP sysctls set.
//!
//! The client checks the way a user would: `arping` for every VIP must see exactly one
//! MAC, the owner's.

// Test helpers fail the test by panicking, as the tests themselves do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use dockline_lab::{Lab, Netns, Process, http_get, wait_until};

const DOCKLINE: &str = env!("CARGO_BIN_EXE_dockline");
/// The L2 VIPs: eight IPv4 addresses and two IPv6.
const L2_VIPS: [&str; 10] = [
    "192.0.2.10",
    "192.0.2.11",
    "192.0.2.12",
    "192.0.2.13",
    "192.0.2.14",
    "192.0.2.15",
    "192.0.2.16",
    "192.0.2.17",
    "2001:db8:1::a",
    "2001:db8:1::b",
];
/// VIPs of a pool announced by BGP only: local on every node, answered by ARP on none.
const BGP_VIPS: [&str; 2] = ["198.51.100.10", "198.51.100.11"];
const ADMIN: &str = "http://127.0.0.1:9470";
const REJECTED: &str = "dockline_gossip_packets_rejected_total";

fn node_ip(i: usize) -> String {
    format!("172.30.0.{}", 11 + i)
}

/// One LoadBalancer service per VIP, `extra` more services appended.
fn services(extra: &str) -> String {
    let mut text = String::new();
    for (i, ip) in L2_VIPS.iter().chain(&BGP_VIPS).enumerate() {
        let pool = if BGP_VIPS.contains(ip) {
            "routed"
        } else {
            "public"
        };
        text += &format!(
            "[[services]]\nname = \"s{i}\"\ntype = \"LoadBalancer\"\npool = \"{pool}\"\n\
             load_balancer_ip = \"{ip}\"\nports = [{{ port = 8080 }}]\n"
        );
    }
    text + extra
}

/// The one file every node of a test runs: `[node]`, `gossip.listen` and `l2.interfaces`
/// come from the environment ([`Segment::start_node`]), so even the seed list, which names
/// every node, is the same for all.
fn shared_config(gossip_auth: &str, policy: &str, services: &str) -> String {
    let seeds: Vec<String> = (0..3).map(|i| format!("\"{}:7946\"", node_ip(i))).collect();
    format!(
        r#"
[cluster]
on_config_mismatch = "{policy}"
allowed_nodes = ["n1", "n2", "172.30.0.13/32"]
[cluster.gossip]
seeds = [{seeds}]
{gossip_auth}
[dns]
enabled = false
[proxy]
enabled = false
[l2]
interfaces = ["eth0"]
[bgp]
asn = 64513
[[bgp.peers]]
address = "172.30.0.1"
asn = 64512
[[pools]]
name = "public"
addresses = ["192.0.2.10-192.0.2.17", "2001:db8:1::a-2001:db8:1::b"]
announce = ["l2"]
[[pools]]
name = "routed"
addresses = ["198.51.100.10-198.51.100.11"]
announce = ["bgp"]
{services}
"#,
        seeds = seeds.join(", "),
    )
}

/// Nodes (and rogues) and a client on one switch.
struct Segment {
    lab: Lab,
    client: Netns,
    hosts: BTreeMap<String, Netns>,
    macs: BTreeMap<String, String>,
    daemons: BTreeMap<String, Process>,
}

impl Segment {
    fn new(test: &str) -> Segment {
        let mut lab = Lab::new(test);
        let sw = lab.switch("sw");
        let client = lab.netns("client");
        lab.attach(
            &sw,
            &client,
            "eth0",
            &["172.30.0.100/24", "fd00:30::100/64"],
        );
        client.sh_ok(
            "ip route add 192.0.2.0/24 dev eth0 && ip route add 198.51.100.0/24 dev eth0 && \
             ip -6 route add 2001:db8:1::/64 dev eth0",
        );
        // The hosts are attached now, so that the switch is complete before anything runs.
        let mut segment = Segment {
            lab,
            client,
            hosts: BTreeMap::new(),
            macs: BTreeMap::new(),
            daemons: BTreeMap::new(),
        };
        for (name, ip) in [
            ("n1", node_ip(0)),
            ("n2", node_ip(1)),
            ("n3", node_ip(2)),
            ("rogue", "172.30.0.66".to_owned()),
        ] {
            let ns = segment.lab.netns(name);
            let v6 = format!("fd00:30::{}/64", ip.rsplit('.').next().unwrap());
            segment
                .lab
                .attach(&sw, &ns, "eth0", &[&format!("{ip}/24"), &v6]);
            let mac = ns
                .sh_ok("cat /sys/class/net/eth0/address")
                .trim()
                .to_owned();
            segment.macs.insert(name.to_owned(), mac);
            segment.hosts.insert(name.to_owned(), ns);
        }
        segment
    }

    /// Writes a gossip key and the [`shared_config`] signing with it, under `policy`, with
    /// `extra` services; returns the config file.
    fn keyed_config(&self, file: &str, policy: &str, extra: &str) -> PathBuf {
        let key = self.write("gossip.key", "the-cluster-key\n");
        let auth = format!("secret_file = \"{}\"", key.display());
        self.write(file, &shared_config(&auth, policy, &services(extra)))
    }

    fn ns(&self, name: &str) -> &Netns {
        &self.hosts[name]
    }

    fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.lab.dir().join(file);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Starts node `i` (n1, n2, n3) with `file`; `l2` is its `l2.interfaces`.
    fn start_node(&mut self, i: usize, file: &Path, l2: &str) {
        let name = format!("n{}", i + 1);
        let ip = node_ip(i);
        let listen = format!("{ip}:7946");
        self.start(
            &name,
            file,
            &[
                ("DOCKLINE__NODE__NAME", &name),
                ("DOCKLINE__NODE__INTERNAL_IP", &ip),
                ("DOCKLINE__CLUSTER__GOSSIP__LISTEN", &listen),
                ("DOCKLINE__L2__INTERFACES", l2),
            ],
        );
    }

    fn start(&mut self, host: &str, file: &Path, env: &[(&str, &str)]) {
        let ns = self.ns(host).clone();
        let mut env = env.to_vec();
        env.push(("DOCKLINE_LOG", "info"));
        let daemon = self.lab.spawn_with_env(
            &ns,
            DOCKLINE,
            &["run", "--config", file.to_str().unwrap()],
            &env,
        );
        self.daemons.insert(host.to_owned(), daemon);
    }

    fn status(&self, host: &str) -> Option<serde_json::Value> {
        let (code, body) = http_get(self.ns(host), &format!("{ADMIN}/status"))?;
        (code == 200).then(|| serde_json::from_str(&body).unwrap())
    }

    /// The names of the members `host` lists as alive.
    fn alive(&self, host: &str) -> BTreeSet<String> {
        let Some(status) = self.status(host) else {
            return BTreeSet::new();
        };
        status["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["state"] == "alive")
            .filter_map(|m| m["name"].as_str().map(str::to_owned))
            .collect()
    }

    fn wait_members(&self, hosts: &[&str], members: &[&str]) {
        let want: BTreeSet<String> = members.iter().map(|m| (*m).to_owned()).collect();
        for host in hosts {
            wait_until(
                Duration::from_secs(10),
                &format!("{host} sees {want:?}"),
                || self.alive(host) == want,
            );
        }
    }

    /// VIP -> owner, as `host` computes it.
    fn owners(&self, host: &str) -> BTreeMap<String, Option<String>> {
        let status = self.status(host).unwrap();
        status["vip_owners"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["ip"].as_str().unwrap().to_owned(),
                    v["owner"].as_str().map(str::to_owned),
                )
            })
            .collect()
    }

    /// The MACs that answered the client for `vip`: `arping` for IPv4, `ndisc6` for IPv6.
    fn answers(&self, vip: &str) -> BTreeSet<String> {
        let out = if vip.contains(':') {
            self.client
                .exec("ndisc6", &["-m", "-r", "1", "-w", "700", vip, "eth0"])
        } else {
            self.client
                .sh(&format!("timeout 0.6 arping -c 1 -w 1 -I eth0 {vip}"))
        };
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .filter_map(|l| {
                if let Some((_, mac)) = l.split_once("link-layer address:") {
                    return Some(mac.trim().to_lowercase());
                }
                let a = l.find('[')?;
                let b = l.find(']')?;
                l.contains("reply from").then(|| l[a + 1..b].to_lowercase())
            })
            .collect()
    }

    /// Every L2 VIP is answered by exactly one MAC, the owner's as `host` computes it, and
    /// no BGP VIP is answered at all.
    fn assert_one_mac_per_vip(&self, host: &str) -> BTreeMap<String, String> {
        let owners = self.owners(host);
        let mut seen = BTreeMap::new();
        for vip in L2_VIPS {
            let owner = owners[vip].clone().expect("every L2 VIP has an owner");
            let mac = self.macs[&owner].clone();
            wait_until(
                Duration::from_secs(5),
                &format!("{vip} answered by {owner} alone"),
                || self.answers(vip) == BTreeSet::from([mac.clone()]),
            );
            seen.insert(vip.to_owned(), owner);
        }
        for vip in BGP_VIPS {
            assert_eq!(self.answers(vip), BTreeSet::new(), "{vip} is BGP only");
        }
        seen
    }

    fn metric(&self, host: &str, line_prefix: &str) -> f64 {
        let (_, body) = http_get(self.ns(host), &format!("{ADMIN}/metrics")).unwrap();
        body.lines()
            .filter(|l| l.starts_with(line_prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Sends `sig` to the daemon on `host` and waits for it to exit.
    fn stop(&mut self, host: &str, sig: &str) {
        let daemon = self.daemons.get_mut(host).unwrap();
        daemon.signal(sig);
        daemon
            .wait_timeout(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{host} did not exit on SIG{sig}"));
    }

    fn log(&self, host: &str) -> String {
        self.daemons[host].log()
    }
}

/// Sends the UDP payloads of a pcap file again, each to its original destination on port
/// 7946 if that is one of the addresses given, from the namespace it runs in; prints how
/// many it sent.
const REPLAY: &str = r#"
import socket, struct, sys
data = open(sys.argv[1], 'rb').read()
pos, sent = 24, 0
out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
while pos + 16 <= len(data):
    length = struct.unpack('<I', data[pos + 8:pos + 12])[0]
    frame = data[pos + 16:pos + 16 + length]
    pos += 16 + length
    if len(frame) < 42 or frame[12:14] != b'\x08\x00' or frame[23] != 17:
        continue
    ip = frame[14:]
    udp = ip[(ip[0] & 15) * 4:]
    to = socket.inet_ntoa(ip[16:20])
    if struct.unpack('>H', udp[2:4])[0] != 7946 or to not in sys.argv[2:]:
        continue
    out.sendto(udp[8:], (to, 7946))
    sent += 1
print(sent)
"#;

#[test]
fn rogues_without_the_key_with_a_wrong_key_replaying_or_not_allowed_never_join_nor_move_a_vip() {
    let mut s = Segment::new("sec-rogues");
    let file = s.keyed_config("cluster.toml", "flag", "");
    s.start_node(0, &file, "eth0");
    s.start_node(1, &file, "eth0");
    s.wait_members(&["n1", "n2"], &["n1", "n2"]);
    let before = s.assert_one_mac_per_vip("n1");

    // Capture the real nodes' gossip for a moment, for the replay below.
    let capture = s.lab.dir().join("gossip.pcap");
    s.ns("n1").sh(&format!(
        "timeout 2 tcpdump -U -n -i eth0 -w {} udp port 7946",
        capture.display()
    ));

    // Rogue 1: no key (insecure, as a user of an older version would run); rogue 2 (the
    // same host, restarted): a wrong key. Both seed with n1 and have L2 off, as in the
    // report: they must neither join nor answer ARP for any VIP.
    let insecure = s.write(
        "rogue-insecure.toml",
        &shared_config("insecure = true", "flag", &services("")),
    );
    let rogue_env = [
        ("DOCKLINE__NODE__NAME", "rogue-zz"),
        ("DOCKLINE__NODE__INTERNAL_IP", "172.30.0.66"),
        ("DOCKLINE__CLUSTER__GOSSIP__LISTEN", "172.30.0.66:7946"),
        ("DOCKLINE__L2__INTERFACES", ""),
    ];
    s.start("rogue", &insecure, &rogue_env);
    let auth = format!("{REJECTED}{{reason=\"auth\"}}");
    wait_until(Duration::from_secs(5), "no-key packets rejected", || {
        s.metric("n1", &auth) >= 3.0
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(s.alive("n1"), BTreeSet::from(["n1".into(), "n2".into()]));
    assert_eq!(s.alive("rogue"), BTreeSet::from(["rogue-zz".into()]));
    s.stop("rogue", "TERM");

    let wrong_key = s.write("wrong.key", "not-the-key\n");
    let wrong = s.write(
        "rogue-wrong-key.toml",
        &shared_config(
            &format!("secret_file = \"{}\"", wrong_key.display()),
            "flag",
            &services(""),
        ),
    );
    let rejected_before = s.metric("n1", &auth);
    s.start("rogue", &wrong, &rogue_env);
    wait_until(Duration::from_secs(5), "wrong-key packets rejected", || {
        s.metric("n1", &auth) >= rejected_before + 3.0
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(s.alive("n1"), BTreeSet::from(["n1".into(), "n2".into()]));
    assert_eq!(s.alive("n2"), BTreeSet::from(["n1".into(), "n2".into()]));

    // Rogue 3: the captured packets, authentic but old, sent again.
    let replay = format!("{REJECTED}{{reason=\"replay\"}}");
    let replayed_before = s.metric("n1", &replay) + s.metric("n2", &replay);
    let script = s.write("replay.py", REPLAY);
    let sent = s.ns("rogue").sh_ok(&format!(
        "python3 {} {} {} {}",
        script.display(),
        capture.display(),
        node_ip(0),
        node_ip(1)
    ));
    let sent: f64 = sent.trim().parse().unwrap();
    assert!(sent > 10.0, "captured {sent} gossip packets");
    wait_until(
        Duration::from_secs(3),
        "every replayed packet rejected",
        || s.metric("n1", &replay) + s.metric("n2", &replay) >= replayed_before + sent,
    );

    // Rogue 4: the real key, but outside cluster.allowed_nodes (by name and by address).
    s.stop("rogue", "TERM");
    s.start("rogue", &file, &rogue_env);
    wait_until(Duration::from_secs(5), "the outsider logged", || {
        s.log("n1")
            .contains("a node outside cluster.allowed_nodes is ignored")
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(s.alive("n1"), BTreeSet::from(["n1".into(), "n2".into()]));
    assert_eq!(s.alive("n2"), BTreeSet::from(["n1".into(), "n2".into()]));
    let logged = s
        .log("n1")
        .matches("a node outside cluster.allowed_nodes is ignored")
        .count();
    assert_eq!(logged, 1, "logged once");

    // Nothing moved: the same owners, each answering alone.
    assert_eq!(s.assert_one_mac_per_vip("n1"), before);
    assert_eq!(s.assert_one_mac_per_vip("n2"), before);
    assert!(s.log("rogue").contains("gossip started"));
}

#[test]
fn a_node_with_l2_off_and_a_bgp_only_pool_answer_no_arp_and_the_client_sees_one_mac_per_vip() {
    let mut s = Segment::new("sec-l2-off");
    let file = s.keyed_config("cluster.toml", "flag", "");
    s.start_node(0, &file, "eth0");
    s.start_node(1, &file, "eth0");
    // n3: L2 off; the VIPs of both pools are local there too (routes), as BGP needs.
    s.start_node(2, &file, "");
    let all = ["n1", "n2", "n3"];
    s.wait_members(&all, &all);
    for host in all {
        let routes = s.ns(host).sh_ok("ip route show table local proto 215");
        for vip in L2_VIPS.iter().chain(&BGP_VIPS).filter(|v| !v.contains(':')) {
            assert!(routes.contains(vip), "{vip} is local on {host}: {routes}");
        }
    }
    let owners = s.assert_one_mac_per_vip("n1");
    assert!(
        owners.values().all(|owner| owner != "n3"),
        "the node with L2 off owns nothing: {owners:?}"
    );
    assert_eq!(s.assert_one_mac_per_vip("n2"), owners);
    // The client never heard n3's MAC for any VIP, IPv4 or IPv6.
    let n3 = &s.macs["n3"];
    for vip in L2_VIPS.iter().chain(&BGP_VIPS) {
        assert!(!s.answers(vip).contains(n3), "{vip} answered by n3");
    }
    // A VIP is still reachable on the node that holds it locally, as a BGP next hop is:
    // the client routes a BGP VIP via n3.
    s.client
        .sh_ok("ip route replace 198.51.100.10/32 via 172.30.0.13 && ping -c 1 -W 2 198.51.100.10");
}

#[test]
fn one_config_file_whose_seeds_list_every_node_serves_all_three_and_they_converge() {
    let mut s = Segment::new("sec-one-file");
    let file = s.keyed_config("cluster.toml", "flag", "");
    let check = s.ns("n1").sh(&format!(
        "DOCKLINE__NODE__INTERNAL_IP={ip} DOCKLINE__CLUSTER__GOSSIP__LISTEN={ip}:7946 \
         {DOCKLINE} check {file}",
        ip = node_ip(0),
        file = file.display()
    ));
    assert!(check.status.success(), "{check:?}");
    for i in 0..3 {
        s.start_node(i, &file, "eth0");
    }
    let all = ["n1", "n2", "n3"];
    s.wait_members(&all, &all);
    let owners = s.assert_one_mac_per_vip("n1");
    assert_eq!(s.assert_one_mac_per_vip("n3"), owners);
    assert!(s.log("n1").contains("gossip started"));
}

/// Three nodes, n3 with one more service (another shared digest), under `policy`.
fn split_config(test: &str, policy: &str) -> Segment {
    let mut s = Segment::new(test);
    let file = s.keyed_config("cluster.toml", policy, "");
    let extra = "[[services]]\nname = \"odd\"\nports = [{ port = 80 }]\n";
    let odd = s.keyed_config("odd.toml", policy, extra);
    s.start_node(0, &file, "eth0");
    s.start_node(1, &file, "eth0");
    s.start_node(2, &odd, "eth0");
    let all = ["n1", "n2", "n3"];
    s.wait_members(&all, &all);
    wait_until(Duration::from_secs(5), "n1 flags the split", || {
        s.metric("n1", "dockline_config_digest_mismatch") == 1.0
    });
    s
}

#[test]
fn under_exclude_a_node_with_another_config_owns_nothing() {
    let s = split_config("sec-exclude", "exclude");
    for host in ["n1", "n2", "n3"] {
        let owners = s.owners(host);
        assert!(
            owners.values().all(|o| o.as_deref() != Some("n3")),
            "{host}: {owners:?}"
        );
    }
    let owners = s.assert_one_mac_per_vip("n1");
    assert!(owners.values().any(|o| o == "n1") && owners.values().any(|o| o == "n2"));
    assert_eq!(s.metric("n3", "dockline_vip_owned"), 0.0);
}

#[test]
fn under_flag_a_node_with_another_config_keeps_its_vips() {
    let s = split_config("sec-flag", "flag");
    let owners = s.assert_one_mac_per_vip("n1");
    assert!(owners.values().any(|o| o == "n3"), "{owners:?}");
}

#[test]
fn a_sigkilled_daemon_leaves_sysctls_the_next_start_adopts_or_restores_and_a_clean_stop_undoes() {
    let mut s = Segment::new("sec-sysctl");
    let ns = s.ns("n1").clone();
    // A second NIC, and host values that are not the kernel defaults, so that "restored"
    // can only mean "as the host had them".
    let sw2 = s.lab.switch("sw2");
    s.lab.attach(&sw2, &ns, "eth1", &["172.31.0.11/24"]);
    ns.sh_ok("sysctl -qw net.ipv4.conf.all.arp_announce=1 net.ipv4.conf.eth1.arp_announce=1");
    let read = |key: &str| {
        ns.sh_ok(&format!("cat /proc/sys/net/ipv4/conf/{key}"))
            .trim()
            .to_owned()
    };
    let host = [
        ("all/arp_ignore", "0"),
        ("all/arp_announce", "1"),
        ("eth0/arp_ignore", "0"),
        ("eth0/arp_announce", "0"),
        ("eth1/arp_ignore", "0"),
        ("eth1/arp_announce", "1"),
    ];
    let single = |interface: &str| {
        format!(
            "[node]\nname = \"n1\"\ninternal_ip = \"172.30.0.11\"\n[dns]\nenabled = false\n\
             [proxy]\nenabled = false\n[l2]\ninterfaces = [\"{interface}\"]\n\
             [[pools]]\nname = \"public\"\naddresses = [\"192.0.2.10-192.0.2.17\"]\n\
             announce = [\"l2\"]\n[[services]]\nname = \"web\"\ntype = \"LoadBalancer\"\n\
             load_balancer_ip = \"192.0.2.10\"\nports = [{{ port = 8080 }}]\n"
        )
    };
    let on_eth0 = s.write("eth0.toml", &single("eth0"));
    let on_eth1 = s.write("eth1.toml", &single("eth1"));
    let ready = |s: &Segment| {
        wait_until(Duration::from_secs(10), "n1 ready", || {
            http_get(s.ns("n1"), &format!("{ADMIN}/readyz")).is_some_and(|(c, _)| c == 200)
        })
    };

    s.start("n1", &on_eth0, &[]);
    ready(&s);
    assert_eq!(
        (read("all/arp_ignore"), read("all/arp_announce")),
        ("1".into(), "2".into())
    );
    assert_eq!(read("eth0/arp_ignore"), "1");
    s.stop("n1", "KILL");
    // Left as the killed daemon set them, and recorded.
    assert_eq!(read("all/arp_ignore"), "1");
    assert_eq!(read("eth0/arp_ignore"), "1");
    let inode = ns.sh_ok("readlink /proc/self/ns/net");
    let inode = inode
        .trim()
        .trim_start_matches("net:[")
        .trim_end_matches(']');
    let routes_record = format!("/run/dockline/routes-{inode}.sysctl");
    let l2_record = format!("/run/dockline/l2-{inode}.sysctl");
    let recorded = std::fs::read_to_string(&routes_record).unwrap();
    assert!(
        recorded.contains("/proc/sys/net/ipv4/conf/all/arp_announce 1 2"),
        "{recorded}"
    );

    // The next start announces on eth1 instead: the routes settings are adopted, eth0's
    // restored at once, and the killed run's routes found.
    s.start("n1", &on_eth1, &[]);
    ready(&s);
    let log = s.log("n1");
    assert!(
        log.contains("sysctl: adopted the host value recorded by a run that did not stop"),
        "{log}"
    );
    assert!(
        log.contains("sysctl: restored the host value recorded by a run that did not stop"),
        "{log}"
    );
    assert!(log.contains("local routes left by a run that did not stop cleanly"));
    assert_eq!(read("eth0/arp_ignore"), "0", "eth0 restored at start");
    assert_eq!(read("eth1/arp_ignore"), "1");

    // A clean stop leaves the host as it was.
    s.stop("n1", "TERM");
    for (key, value) in host {
        assert_eq!(read(key), value, "{key}");
    }
    assert_eq!(ns.sh_ok("ip route show table local proto 215").trim(), "");
    assert!(!std::path::Path::new(&routes_record).exists());
    assert!(!std::path::Path::new(&l2_record).exists());
}
