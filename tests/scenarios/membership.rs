//! Membership at scale in namespaces: twelve dockline nodes on one switch, started at once,
//! each joining through one seed with keyed gossip and the default profile. Every node
//! must report the same members, every VIP one owner that every node agrees on and one MAC
//! in `arping`; a node killed and restarted is agreed on again. Two nodes kept from hearing
//! each other show the L2 conflict they cause, and heal once they hear each other again.

// Test helpers fail the test by panicking, as the tests themselves do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use dockline_lab::{Daemon, Lab, Netns, wait_until};

const VIPS: usize = 12;

fn name(i: usize) -> String {
    format!("n{:02}", i + 1)
}

fn node_ip(i: usize) -> String {
    format!("172.31.0.{}", 11 + i)
}

fn vip(v: usize) -> String {
    format!("192.0.2.{}", 10 + v)
}

/// Node `i`'s config: gossip on its internal IP, one seed (node 0), the key in `secret`,
/// and `VIPS` LoadBalancer services announced over L2.
fn config(i: usize, secret: &std::path::Path) -> String {
    let services: String = (0..VIPS)
        .map(|v| {
            format!(
                "[[services]]\nname = \"s{v}\"\ntype = \"LoadBalancer\"\nload_balancer_ip = \"{}\"\nports = [{{ port = 8080 }}]\n",
                vip(v)
            )
        })
        .collect();
    format!(
        r#"
[node]
name = "{name}"
internal_ip = "{ip}"
[cluster.gossip]
listen = "{ip}:7946"
seeds = ["{seed}:7946"]
secret_file = "{secret}"
[dns]
enabled = false
[proxy]
enabled = false
[l2]
interfaces = ["eth0"]
[[pools]]
name = "public"
addresses = ["192.0.2.10-192.0.2.60"]
announce = ["l2"]
{services}
"#,
        name = name(i),
        ip = node_ip(i),
        seed = node_ip(0),
        secret = secret.display(),
    )
}

struct Cluster {
    lab: Lab,
    client: Netns,
    nodes: Vec<Netns>,
    daemons: Vec<Option<Daemon>>,
    macs: BTreeMap<String, String>,
}

impl Cluster {
    /// `count` nodes and a client on one switch; no daemon started yet.
    fn new(test: &str, count: usize) -> Cluster {
        let mut lab = Lab::new(test);
        let sw = lab.switch("sw");
        let client = lab.host(&sw, "client", &["172.31.0.200/24"]);
        client.sh_ok("ip route add 192.0.2.0/24 dev eth0");
        let mut nodes = Vec::new();
        let mut macs = BTreeMap::new();
        for i in 0..count {
            let ns = lab.host(&sw, &name(i), &[&format!("{}/24", node_ip(i))]);
            let mac = ns
                .sh_ok("cat /sys/class/net/eth0/address")
                .trim()
                .to_owned();
            macs.insert(name(i), mac);
            nodes.push(ns);
        }
        std::fs::write(lab.dir().join("gossip.key"), "s3cret\n").unwrap();
        Cluster {
            lab,
            client,
            nodes,
            daemons: (0..count).map(|_| None).collect(),
            macs,
        }
    }

    /// Spawns node `i`'s daemon (not waiting for it).
    fn spawn(&mut self, i: usize) {
        let secret = self.lab.dir().join("gossip.key");
        let daemon = Daemon::builder(env!("CARGO_BIN_EXE_dockline"), &self.nodes[i])
            .config(&config(i, &secret))
            .env("DOCKLINE_LOG", "info")
            .spawn(&mut self.lab);
        self.daemons[i] = Some(daemon);
    }

    fn running(&self) -> impl Iterator<Item = &Daemon> {
        self.daemons.iter().flatten()
    }

    /// Each running node's members: name and state, sorted by name.
    fn views(&self) -> Vec<Vec<(String, String)>> {
        self.running()
            .map(|d| {
                d.status()["members"]
                    .as_array()
                    .map(|members| {
                        members
                            .iter()
                            .map(|m| {
                                let field = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
                                (field("name"), field("state"))
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Whether every running node sees exactly `alive` alive and nothing else live.
    fn agree_on(&self, alive: &BTreeSet<String>) -> bool {
        self.views().iter().all(|view| {
            let live: BTreeSet<String> = view
                .iter()
                .filter(|(_, state)| state != "down")
                .map(|(name, _)| name.clone())
                .collect();
            live == *alive && view.iter().all(|(n, s)| s == "alive" || !alive.contains(n))
        })
    }

    /// Per VIP, the owner each running node computes and how many say they answer for it.
    fn owners(&self) -> BTreeMap<String, (BTreeSet<String>, usize)> {
        let mut owners: BTreeMap<String, (BTreeSet<String>, usize)> = BTreeMap::new();
        for daemon in self.running() {
            for v in daemon.status()["vip_owners"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                let entry = owners
                    .entry(v["ip"].as_str().unwrap().to_owned())
                    .or_default();
                entry
                    .0
                    .insert(v["owner"].as_str().unwrap_or("none").to_owned());
                entry.1 += usize::from(v["owned_by_me"] == true);
            }
        }
        owners
    }

    /// Whether every VIP has one owner all nodes agree on, and that node alone answers.
    fn one_owner_each(&self) -> bool {
        let owners = self.owners();
        owners.len() == VIPS
            && owners
                .values()
                .all(|(names, answering)| names.len() == 1 && *answering == 1)
    }

    /// The MACs that answered one `arping` for `vip` from the client.
    fn arping(&self, vip: &str) -> BTreeSet<String> {
        let out = self
            .client
            .sh(&format!("timeout 0.5 arping -c 1 -w 1 -I eth0 {vip}"));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("reply from"))
            .filter_map(|l| Some(l[l.find('[')? + 1..l.find(']')?].to_lowercase()))
            .collect()
    }

    /// Checks that each VIP is answered by exactly its owner's MAC.
    fn check_one_mac_per_vip(&self) {
        for (vip, (names, _)) in self.owners() {
            let owner = names.into_iter().next().unwrap();
            let expected = BTreeSet::from([self.macs[&owner].clone()]);
            wait_until(
                Duration::from_secs(3),
                &format!("{vip} answered by {owner} alone"),
                || self.arping(&vip) == expected,
            );
        }
    }
}

#[test]
fn twelve_nodes_started_at_once_agree_and_a_restarted_node_is_agreed_on_again() {
    const COUNT: usize = 12;
    let mut c = Cluster::new("membership-12", COUNT);
    let everyone: BTreeSet<String> = (0..COUNT).map(name).collect();
    for i in 0..COUNT {
        c.spawn(i);
    }
    let started = Instant::now();
    for daemon in c.daemons.iter_mut().flatten() {
        daemon.wait_ready();
    }
    wait_until(
        Duration::from_secs(10),
        "every node sees all twelve alive",
        || c.agree_on(&everyone),
    );
    eprintln!(
        "all twelve agree {:?} after the last start",
        started.elapsed()
    );
    let views = c.views();
    assert!(views.windows(2).all(|w| w[0] == w[1]), "{views:?}");
    wait_until(Duration::from_secs(5), "one agreed owner per VIP", || {
        c.one_owner_each()
    });
    c.check_one_mac_per_vip();

    // SIGKILL a node: every survivor sees it down, and its VIPs move to one owner each.
    let victim = 5;
    c.daemons[victim].as_mut().unwrap().signal("KILL");
    let killed = Instant::now();
    let survivors: BTreeSet<String> = everyone
        .iter()
        .filter(|n| **n != name(victim))
        .cloned()
        .collect();
    c.daemons[victim] = None;
    wait_until(
        Duration::from_secs(5),
        "every survivor sees the loss",
        || c.agree_on(&survivors),
    );
    eprintln!("loss seen by all {:?} after SIGKILL", killed.elapsed());
    wait_until(
        Duration::from_secs(5),
        "one agreed owner per VIP after the loss",
        || c.one_owner_each(),
    );
    c.check_one_mac_per_vip();

    // Restarted, it is known by all again, and VIPs settle on one owner each.
    c.spawn(victim);
    let restarted = Instant::now();
    c.daemons[victim].as_mut().unwrap().wait_ready();
    wait_until(
        Duration::from_secs(5),
        "the restarted node is agreed on",
        || c.agree_on(&everyone),
    );
    eprintln!(
        "restart agreed by all {:?} after the start",
        restarted.elapsed()
    );
    wait_until(
        Duration::from_secs(5),
        "one agreed owner per VIP after the restart",
        || c.one_owner_each(),
    );
    c.check_one_mac_per_vip();
    let changed = c.running().map(|d| {
        d.metric("dockline_membership_last_change_timestamp_seconds", &[])
            .unwrap()
    });
    assert!(changed.into_iter().all(|at| at > 0.0));
    // Gossip's cost is visible: bytes each way in the metrics and per second in /status.
    for daemon in c.running() {
        for direction in ["sent", "received"] {
            let bytes = daemon.metric("dockline_gossip_bytes_total", &[("direction", direction)]);
            assert!(bytes.unwrap() > 0.0, "{direction}");
        }
    }
    wait_until(Duration::from_secs(3), "gossip rates in /status", || {
        c.running().all(|d| {
            let components = d.status()["components"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            components.iter().any(|component| {
                let status = &component["status"];
                component["name"] == "cluster"
                    && status["gossip_bytes_sent_per_s"].as_u64().unwrap_or(0) > 0
                    && status["gossip_bytes_received_per_s"].as_u64().unwrap_or(0) > 0
                    && status["live_members"] == COUNT
            })
        })
    });
}

#[test]
fn two_nodes_kept_from_hearing_each_other_count_the_conflict_and_heal_after() {
    let mut c = Cluster::new("membership-split", 2);
    let both: BTreeSet<String> = (0..2).map(name).collect();
    c.spawn(0);
    c.spawn(1);
    for daemon in c.daemons.iter_mut().flatten() {
        daemon.wait_ready();
    }
    wait_until(Duration::from_secs(10), "both see both", || {
        c.agree_on(&both)
    });
    wait_until(Duration::from_secs(5), "one owner per VIP", || {
        c.one_owner_each()
    });

    // n02 stops hearing n01's gossip: each declares the other down and claims every VIP,
    // and each hears the other's gratuitous ARPs for VIPs it answers for.
    let block = format!(
        "iptables -I INPUT -p udp -s {} --dport 7946 -j DROP",
        node_ip(0)
    );
    c.nodes[1].sh_ok(&block);
    let conflicts = |c: &Cluster| -> f64 {
        c.running()
            .map(|d| d.metric_sum("dockline_l2_conflicts_total", &[]))
            .sum()
    };
    wait_until(Duration::from_secs(10), "a conflict heard", || {
        conflicts(&c) > 0.0
    });
    // Counted conflicts reach /status within a second (their publishing is throttled).
    let shown = |c: &Cluster| -> u64 {
        c.running()
            .flat_map(|d| {
                d.status()["vip_owners"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .map(|v| v["conflicts"].as_u64().unwrap_or(0))
            .sum()
    };
    wait_until(Duration::from_secs(3), "the conflict in /status", || {
        shown(&c) > 0
    });
    let logged = c
        .running()
        .any(|d| d.log().contains("another MAC claims a VIP"));
    assert!(logged, "the conflict is logged");

    // Once they hear each other again, views and owners agree, and one MAC answers.
    c.nodes[1].sh_ok(&block.replace("-I INPUT", "-D INPUT"));
    let healing = Instant::now();
    wait_until(Duration::from_secs(10), "both see both again", || {
        c.agree_on(&both)
    });
    wait_until(Duration::from_secs(5), "one owner per VIP again", || {
        c.one_owner_each()
    });
    eprintln!("healed {:?} after the block was lifted", healing.elapsed());
    c.check_one_mac_per_vip();
    let repaired = c.running().any(|d| d.log().contains("L2 conflict heard"));
    assert!(repaired, "membership compared views on the conflict");
}
