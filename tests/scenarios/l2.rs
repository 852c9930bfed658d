//! The L2 announcer and membership in namespaces: three dockline nodes and a client on one
//! switch. The client's `arping`, `ndisc6`, kernel neighbour table and TCP connections
//! must always see exactly one node per VIP, the right one, also across a SIGKILL of the
//! owner, a Local-policy endpoint going not ready, and a burst of broken frames.

// Test helpers fail the test by panicking, as the tests themselves do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dockline_lab::{Daemon, Lab, Netns, http_get, wait_until};

const NODES: [&str; 3] = ["n1", "n2", "n3"];
const VIP4: &str = "192.0.2.10";
const VIP6: &str = "2001:db8:1::a";

fn node_ip(i: usize) -> String {
    format!("172.30.0.{}", 11 + i)
}

/// The config of node `i`, with `services` (TOML) appended; gossip is authenticated with
/// the key in `secret`.
fn config(i: usize, services: &str, secret: &std::path::Path) -> String {
    let peers: String = (0..3)
        .filter(|j| *j != i)
        .map(|j| {
            format!(
                "[[network.nodes]]\nname = \"{}\"\ninternal_ip = \"{}\"\npod_cidr = \"10.111.{}.0/24\"\n",
                NODES[j],
                node_ip(j),
                j + 1
            )
        })
        .collect();
    format!(
        r#"
[node]
name = "{name}"
internal_ip = "{ip}"
pod_cidr = "10.111.{n}.0/24"
[cluster.gossip]
listen = "{ip}:7946"
secret_file = "{secret}"
[dns]
enabled = false
[proxy]
enabled = false
[l2]
interfaces = ["eth0"]
{peers}
[[pools]]
name = "public"
addresses = ["192.0.2.10-192.0.2.50", "2001:db8:1::/124"]
announce = ["l2"]
{services}
"#,
        name = NODES[i],
        ip = node_ip(i),
        n = i + 1,
        secret = secret.display(),
    )
}

fn lb(name: &str, ip: &str) -> String {
    format!(
        "[[services]]\nname = \"{name}\"\ntype = \"LoadBalancer\"\nload_balancer_ip = \"{ip}\"\nports = [{{ port = 8080 }}]\n"
    )
}

struct Cluster {
    lab: Lab,
    client: Netns,
    nodes: Vec<Netns>,
    daemons: Vec<Daemon>,
    macs: BTreeMap<String, String>,
}

impl Cluster {
    /// Three nodes and a client on one switch, a capture of every answer the client sees,
    /// and the daemons started and converged.
    fn start(test: &str, services: &str) -> Cluster {
        let mut lab = Lab::new(test);
        let sw = lab.switch("sw");
        let client = lab.host(&sw, "client", &["172.30.0.100/24", "fd00:30::100/64"]);
        client.sh_ok(
            "ip route add 192.0.2.0/24 dev eth0 && ip -6 route add 2001:db8:1::/64 dev eth0",
        );
        let mut nodes = Vec::new();
        let mut macs = BTreeMap::new();
        for (i, name) in NODES.iter().enumerate() {
            let v6 = format!("fd00:30::{}/64", 11 + i);
            let ns = lab.host(&sw, name, &[&format!("{}/24", node_ip(i)), &v6]);
            let mac = ns
                .sh_ok("cat /sys/class/net/eth0/address")
                .trim()
                .to_owned();
            macs.insert((*name).to_owned(), mac);
            nodes.push(ns);
        }
        let mut cluster = Cluster {
            lab,
            client,
            nodes,
            daemons: Vec::new(),
            macs,
        };
        let client = cluster.client.clone();
        cluster.lab.spawn(
            &client,
            "tcpdump",
            &[
                "-i",
                "eth0",
                "-e",
                "-n",
                "-l",
                "arp or (icmp6 and ip6[40] == 136)",
            ],
        );
        std::fs::write(cluster.secret(), "s3cret\n").unwrap();
        // All three start at once, as they would in a cluster, then each must be ready.
        for i in 0..3 {
            let daemon = Daemon::builder(env!("CARGO_BIN_EXE_dockline"), &cluster.nodes[i])
                .config(&config(i, services, &cluster.secret()))
                .env("DOCKLINE_LOG", "info")
                .spawn(&mut cluster.lab);
            cluster.daemons.push(daemon);
        }
        for daemon in &mut cluster.daemons {
            daemon.wait_ready();
        }
        for daemon in &cluster.daemons {
            wait_until(Duration::from_secs(10), "three alive members", || {
                daemon.status()["members"]
                    .as_array()
                    .is_some_and(|m| m.len() == 3 && m.iter().all(|m| m["state"] == "alive"))
            });
        }
        cluster
    }

    fn secret(&self) -> PathBuf {
        self.lab.dir().join("gossip.key")
    }

    /// The owner of `vip` as node `i` computes it.
    fn owner(&self, i: usize, vip: &str) -> Option<String> {
        self.daemons[i].status()["vip_owners"]
            .as_array()?
            .iter()
            .find(|v| v["ip"] == vip)?["owner"]
            .as_str()
            .map(str::to_owned)
    }

    fn index(name: &str) -> usize {
        NODES.iter().position(|n| *n == name).unwrap()
    }

    /// The MACs that answered one `arping` from the client (empty: no answer).
    fn arping(&self, vip: &str) -> BTreeSet<String> {
        let out = self
            .client
            .sh(&format!("timeout 0.5 arping -c 1 -w 1 -I eth0 {vip}"));
        macs_in(&String::from_utf8_lossy(&out.stdout), '[', ']')
    }

    fn ndisc6(&self, vip: &str) -> BTreeSet<String> {
        let out = self
            .client
            .exec("ndisc6", &["-m", "-r", "1", "-w", "700", vip, "eth0"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once("link-layer address:"))
            .map(|(_, mac)| mac.trim().to_lowercase())
            .collect()
    }

    /// Every (VIP, MAC) answer the client saw, in order: ARP replies and gratuitous ARPs,
    /// solicited and unsolicited neighbour advertisements.
    fn answers(&self) -> Vec<(String, String)> {
        let log = std::fs::read_to_string(self.lab.dir().join("00-client-tcpdump.log"))
            .unwrap_or_default();
        log.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let src = f.get(1)?.to_string();
                if let Some(at) = l.find("Reply ") {
                    let ip = l[at + 6..].split_whitespace().next()?;
                    return Some((ip.to_owned(), src));
                }
                if let Some(at) = l.find("who-has ") {
                    let rest: Vec<&str> = l[at + 8..].split_whitespace().collect();
                    // Gratuitous: "who-has VIP tell VIP".
                    if rest.get(2) == rest.first() {
                        return Some((rest[0].to_owned(), src));
                    }
                    return None;
                }
                let at = l.find("tgt is ")?;
                let ip = l[at + 7..].trim_end_matches(|c: char| !c.is_ascii_hexdigit());
                Some((ip.split(',').next()?.to_owned(), src))
            })
            .collect()
    }
}

fn macs_in(text: &str, open: char, close: char) -> BTreeSet<String> {
    text.lines()
        .filter(|l| l.contains("reply from"))
        .filter_map(|l| {
            let a = l.find(open)?;
            let b = l.find(close)?;
            Some(l[a + 1..b].to_lowercase())
        })
        .collect()
}

/// Per VIP, the runs of one MAC in the answers the client saw.
fn runs(answers: &[(String, String)]) -> BTreeMap<String, Vec<String>> {
    let mut runs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (ip, mac) in answers {
        let seq = runs.entry(ip.clone()).or_default();
        if seq.last() != Some(mac) {
            seq.push(mac.clone());
        }
    }
    runs
}

fn serve_name(cluster: &mut Cluster) {
    for (i, name) in NODES.iter().enumerate() {
        let dir = cluster.lab.dir().join(format!("www-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("name"), name).unwrap();
        let ns = cluster.nodes[i].clone();
        cluster.lab.spawn(
            &ns,
            "python3",
            &[
                "-m",
                "http.server",
                "8080",
                "--bind",
                "0.0.0.0",
                "--directory",
                dir.to_str().unwrap(),
            ],
        );
    }
}

#[test]
fn one_owner_answers_and_a_killed_owner_is_replaced_fast() {
    let services = lb("web", VIP4) + &lb("web6", VIP6);
    let mut c = Cluster::start("l2-failover", &services);
    serve_name(&mut c);

    let owner4 = c.owner(0, VIP4).expect("an owner");
    let owner6 = c.owner(0, VIP6).expect("an owner");
    for i in 1..3 {
        assert_eq!(c.owner(i, VIP4).as_deref(), Some(owner4.as_str()));
        assert_eq!(c.owner(i, VIP6).as_deref(), Some(owner6.as_str()));
    }
    let mac4 = c.macs[&owner4].clone();
    wait_until(
        Duration::from_secs(5),
        "arping answered by the owner",
        || c.arping(VIP4) == BTreeSet::from([mac4.clone()]),
    );
    assert_eq!(c.ndisc6(VIP6), BTreeSet::from([c.macs[&owner6].clone()]));
    wait_until(
        Duration::from_secs(5),
        "TCP to the VIP reaches the owner",
        || {
            http_get(&c.client, &format!("http://{VIP4}:8080/name")).map(|(_, b)| b)
                == Some(owner4.clone())
        },
    );
    let neigh = c.client.sh_ok(&format!("ip neigh show {VIP4} dev eth0"));
    assert!(neigh.contains(&mac4), "{neigh}");

    // SIGKILL the owner; probe every few ms until another node answers.
    let dead = Cluster::index(&owner4);
    let killed = Instant::now();
    c.daemons[dead].signal("KILL");
    let survivor = (dead + 1) % 3;
    let mut new_mac = BTreeSet::new();
    while killed.elapsed() < Duration::from_secs(10) {
        new_mac = c.arping(VIP4);
        if !new_mac.is_empty() && !new_mac.contains(&mac4) {
            break;
        }
    }
    let failover = killed.elapsed();
    eprintln!("failover: first answer from the new owner {failover:?} after SIGKILL");
    let new_owner = c.owner(survivor, VIP4).expect("a new owner");
    assert_ne!(new_owner, owner4);
    assert_eq!(new_mac, BTreeSet::from([c.macs[&new_owner].clone()]));
    // The gratuitous ARPs moved the client's existing neighbour entry.
    wait_until(Duration::from_secs(3), "neighbour entry moved", || {
        c.client
            .sh_ok(&format!("ip neigh show {VIP4} dev eth0"))
            .contains(&c.macs[&new_owner])
    });
    wait_until(Duration::from_secs(5), "TCP reaches the new owner", || {
        http_get(&c.client, &format!("http://{VIP4}:8080/name")).map(|(_, b)| b)
            == Some(new_owner.clone())
    });
    let owner6_now = c.owner(survivor, VIP6).unwrap();
    assert_eq!(
        c.ndisc6(VIP6),
        BTreeSet::from([c.macs[&owner6_now].clone()])
    );

    // Over the whole run each VIP was answered by one MAC at a time: the killed owner's
    // and then its successor's, never interleaved.
    let runs = runs(&c.answers());
    assert_eq!(runs[VIP4], [mac4, c.macs[&new_owner].clone()], "{runs:?}");
    let expected6: Vec<String> = if owner6 == owner6_now {
        vec![c.macs[&owner6].clone()]
    } else {
        vec![c.macs[&owner6].clone(), c.macs[&owner6_now].clone()]
    };
    assert_eq!(runs[VIP6], expected6, "{runs:?}");
    // Summed over the VIPs: a series per VIP.
    let sent = c.daemons[survivor].metric_sum("dockline_l2_gratuitous_sent_total", &[]);
    assert!(sent >= 1.0);

    // Gossip without the shared secret is dropped and counted.
    let target = node_ip(survivor);
    c.client.sh_ok(&format!(
        "python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\
         .sendto(b\"x\" * 64, (\"{target}\", 7946))'"
    ));
    let survivor_daemon = &c.daemons[survivor];
    wait_until(Duration::from_secs(3), "forged gossip counted", || {
        survivor_daemon
            .metric(
                "dockline_gossip_packets_rejected_total",
                &[("reason", "auth")],
            )
            .is_some_and(|n| n >= 1.0)
    });
    assert_eq!(
        survivor_daemon.metric("dockline_members", &[("state", "alive")]),
        Some(2.0)
    );
}

fn local_service(not_ready_on: Option<&str>) -> String {
    let mut s = "[[services]]\nname = \"local\"\ntype = \"LoadBalancer\"\nload_balancer_ip = \"192.0.2.30\"\nexternal_traffic_policy = \"Local\"\nports = [{ port = 8080 }]\n".to_owned();
    for (node, ip) in [("n2", "10.111.2.5"), ("n3", "10.111.3.5")] {
        let ready = not_ready_on != Some(node);
        s +=
            &format!("[[services.endpoints]]\nip = \"{ip}\"\nnode = \"{node}\"\nready = {ready}\n");
    }
    s
}

/// Frames no node may answer, sent raw from the client: a truncated ARP, an ARP for
/// another hardware type, a neighbour solicitation for the VIP with a bad checksum and one
/// cut short.
const BAD_FRAMES: &str = r#"
import socket, struct
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
mac = open("/sys/class/net/eth0/address").read().strip()
src = bytes.fromhex(mac.replace(":", ""))
bcast = b"\xff" * 6
vip4 = bytes([192, 0, 2, 10])
arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + src + bytes([172, 30, 0, 100]) + b"\0" * 6 + vip4
s.send(bcast + src + b"\x08\x06" + arp[:10])
s.send(bcast + src + b"\x08\x06" + struct.pack("!H", 6) + arp[2:])
vip6 = socket.inet_pton(socket.AF_INET6, "2001:db8:1::a")
me6 = socket.inet_pton(socket.AF_INET6, "fd00:30::100")
ns = bytes([135, 0, 0x12, 0x34, 0, 0, 0, 0]) + vip6 + bytes([1, 1]) + src
ip6 = struct.pack("!IHBB", 0x60000000, len(ns), 58, 255) + me6 + vip6
mcast = bytes([0x33, 0x33, 0xff, 0, 0, 0x0a])
s.send(mcast + src + b"\x86\xdd" + ip6 + ns)
short = struct.pack("!IHBB", 0x60000000, 32, 58, 255) + me6 + vip6
s.send(mcast + src + b"\x86\xdd" + short + ns[:6])
"#;

#[test]
fn vips_spread_follow_local_readiness_and_broken_frames_are_counted() {
    let spread: String = (20..26)
        .map(|i| lb(&format!("s{i}"), &format!("192.0.2.{i}")))
        .collect();
    let services = lb("web", VIP4) + &lb("web6", VIP6) + &spread;
    let mut c = Cluster::start("l2-spread", &(services.clone() + &local_service(None)));

    let owners: BTreeSet<String> = (20..26)
        .map(|i| c.owner(0, &format!("192.0.2.{i}")).unwrap())
        .collect();
    assert!(owners.len() > 1, "six VIPs all on {owners:?}");

    // Local: only n2 and n3 run endpoints; take the owner's endpoint out and reload.
    let first = c.owner(0, "192.0.2.30").unwrap();
    assert!(first == "n2" || first == "n3", "{first}");
    let other = if first == "n2" { "n3" } else { "n2" };
    for i in 0..3 {
        let text = config(
            i,
            &(services.clone() + &local_service(Some(&first))),
            &c.secret(),
        );
        c.daemons[i].reload(&text).expect("accepted");
    }
    wait_until(Duration::from_secs(5), "the Local VIP moved", || {
        (0..3).all(|i| c.owner(i, "192.0.2.30").as_deref() == Some(other))
    });
    let mac = c.macs[other].clone();
    wait_until(
        Duration::from_secs(3),
        "arping answered by the new owner",
        || c.arping("192.0.2.30") == BTreeSet::from([mac.clone()]),
    );

    let client = c.client.clone();
    let script = c.lab.dir().join("bad_frames.py");
    std::fs::write(&script, BAD_FRAMES).unwrap();
    client.sh_ok(&format!("python3 {}", script.display()));
    for reason in ["truncated", "foreign", "malformed"] {
        wait_until(Duration::from_secs(3), &format!("{reason} counted"), || {
            c.daemons.iter().all(|d| {
                d.metric("dockline_l2_frames_ignored_total", &[("reason", reason)])
                    .is_some_and(|n| n >= 1.0)
            })
        });
    }
    let owner = c.owner(0, VIP4).unwrap();
    assert_eq!(c.arping(VIP4), BTreeSet::from([c.macs[&owner].clone()]));
    for d in &mut c.daemons {
        assert!(d.is_running());
    }
    let runs = runs(&c.answers());
    for (vip, macs) in &runs {
        let moved = vip == "192.0.2.30";
        assert!(
            macs.len() == 1 || moved && macs.len() == 2,
            "{vip}: {macs:?}"
        );
    }

    // Split config: n1 alone gets another service; n2 flags it.
    // The readiness reloads above changed every node's file; their digests converge by gossip.
    let mismatch = |i: usize| c.daemons[i].metric("dockline_config_digest_mismatch", &[]);
    wait_until(Duration::from_secs(5), "digests agree again", || {
        mismatch(1) == Some(0.0)
    });
    let extra = services + &local_service(Some(&first)) + &lb("extra", "192.0.2.40");
    let text = config(0, &extra, &c.secret());
    c.daemons[0].reload(&text).expect("accepted");
    wait_until(Duration::from_secs(5), "split config flagged", || {
        mismatch(1) == Some(1.0)
            && c.daemons[1].status()["members"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["name"] == "n1" && m["digest_match"] == false)
    });
}

/// One config pushed to every node at once (as a config-management run does): each node's
/// identity changes at the same moment, and all must still learn each other's new digest.
#[test]
fn configs_changed_on_every_node_at_once_converge_each_time() {
    let c = Cluster::start("l2-together", &lb("web", VIP4));
    for round in 1..=10 {
        let services =
            lb("web", VIP4) + &lb(&format!("r{round}"), &format!("192.0.2.{}", 30 + round));
        let texts: Vec<String> = (0..3).map(|i| config(i, &services, &c.secret())).collect();
        for (daemon, text) in c.daemons.iter().zip(&texts) {
            daemon.write_config(text);
        }
        wait_until(
            Duration::from_secs(3),
            &format!("round {round}: every node sees every other's new digest"),
            || {
                c.daemons.iter().all(|d| {
                    let s = d.status();
                    let loaded = s["services"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|s| s["name"] == format!("r{round}"));
                    let members = s["members"].as_array().unwrap();
                    d.metric("dockline_config_digest_mismatch", &[]) == Some(0.0)
                        && loaded
                        && members.len() == 3
                        && members
                            .iter()
                            .all(|m| m["state"] == "alive" && m["digest_match"] == true)
                })
            },
        );
    }
}
