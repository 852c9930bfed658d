//! Many [`GossipNode`]s in one process, on a simulated network with a fake clock: packets
//! are delayed, and a share of them lost. Used to check that views converge within the
//! bounds the daemon promises, at sizes the scenario tests cannot start.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dockline_config::GossipTiming;
use foca::State;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use crate::membership::MembershipConfig;
use crate::node::GossipNode;

/// The default profile's timing.
fn default_timing() -> GossipTiming {
    GossipTiming {
        probe_interval_ms: 120,
        probe_timeout_ms: 50,
        suspect_timeout_ms: 120,
    }
}

fn addr(index: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, (index / 250) as u8, (index % 250 + 1) as u8], 7946))
}

fn name(index: usize) -> String {
    format!("node-{index:03}")
}

/// A packet on its way.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Instant,
    sequence: u64,
    from: usize,
    to: usize,
    payload: Vec<u8>,
}

/// The nodes, the wire between them and the clock.
struct Cluster {
    nodes: Vec<Option<GossipNode>>,
    by_addr: HashMap<SocketAddr, usize>,
    wire: BinaryHeap<Reverse<InFlight>>,
    sequence: u64,
    /// Share of packets dropped.
    loss: f64,
    /// Nodes that hear nothing (their own packets still go out).
    deaf: BTreeSet<usize>,
    rng: SmallRng,
    /// Bytes sent on the wire, all nodes together: each payload with the authentication
    /// envelope (49 bytes) and the IPv4 and UDP headers (28 bytes).
    bytes_sent: u64,
    start: Instant,
    now: Instant,
}

impl Cluster {
    fn new(loss: f64, seed: u64) -> Self {
        let start = Instant::now();
        Cluster {
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            wire: BinaryHeap::new(),
            sequence: 0,
            loss,
            deaf: BTreeSet::new(),
            rng: SmallRng::seed_from_u64(seed),
            bytes_sent: 0,
            start,
            now: start,
        }
    }

    /// Starts node `index` now, joining through node 0.
    fn start_node(&mut self, index: usize) {
        let config = MembershipConfig {
            name: name(index),
            internal_ip: addr(index).ip(),
            shared_digest: "d".repeat(64),
            config_revision: None,
            announces_l2: true,
            seeds: vec![addr(0)],
            static_nodes: Vec::new(),
        };
        let bump = 1_000 + self.now.duration_since(self.start).as_secs();
        let node = GossipNode::new(
            &config,
            default_timing(),
            addr(index),
            bump,
            index as u64 * 7919 + self.rng.random_range(0..1_000_000),
            self.now,
        );
        if self.nodes.len() <= index {
            self.nodes.resize_with(index + 1, || None);
        }
        self.nodes[index] = Some(node);
        self.by_addr.insert(addr(index), index);
    }

    /// Stops node `index` without a word (a crash or a cut link).
    fn kill(&mut self, index: usize) {
        self.nodes[index] = None;
    }

    /// Moves every node's output onto the wire, with 0.1-1 ms of delay and the loss.
    fn collect_output(&mut self) {
        for from in 0..self.nodes.len() {
            let Some(node) = self.nodes[from].as_mut() else {
                continue;
            };
            while let Some((to, payload)) = node.poll_transmit() {
                self.bytes_sent += payload.len() as u64 + 49 + 28;
                let Some(&to) = self.by_addr.get(&to) else {
                    continue;
                };
                if self.rng.random_range(0.0..1.0) < self.loss {
                    continue;
                }
                let delay = Duration::from_micros(self.rng.random_range(100..1_000));
                self.sequence += 1;
                self.wire.push(Reverse(InFlight {
                    at: self.now + delay,
                    sequence: self.sequence,
                    from,
                    to,
                    payload,
                }));
            }
        }
    }

    /// Runs until `until`, event by event.
    fn run_until(&mut self, until: Instant) {
        loop {
            self.collect_output();
            let next_timer = self
                .nodes
                .iter()
                .flatten()
                .map(GossipNode::poll_timeout)
                .min();
            let next_packet = self.wire.peek().map(|packet| packet.0.at);
            let Some(next) = [next_timer, next_packet].into_iter().flatten().min() else {
                return;
            };
            if next > until {
                self.now = until;
                return;
            }
            self.now = self.now.max(next);
            if next_packet == Some(next) {
                let Reverse(packet) = self.wire.pop().expect("peeked");
                if self.deaf.contains(&packet.to) {
                    continue;
                }
                if let Some(node) = self.nodes[packet.to].as_mut() {
                    // Refused packets happen (a message for an identity since changed).
                    let _ = node.handle_packet(addr(packet.from), &packet.payload, self.now);
                }
            } else {
                let now = self.now;
                for node in self.nodes.iter_mut().flatten() {
                    if node.poll_timeout() <= now {
                        node.handle_timeout(now);
                    }
                }
            }
        }
    }

    /// Runs in steps of 10 ms until `done` holds or `limit` has passed; returns how long
    /// from now it took.
    fn time_until(&mut self, limit: Duration, done: impl Fn(&Cluster) -> bool) -> Option<Duration> {
        let from = self.now;
        while self.now < from + limit {
            if done(self) {
                return Some(self.now - from);
            }
            let step = self.now + Duration::from_millis(10);
            self.run_until(step);
        }
        done(self).then(|| self.now - from)
    }

    /// The names node `index` counts live (newest identity per name), itself included.
    fn view(&self, index: usize) -> BTreeSet<String> {
        let node = self.nodes[index].as_ref().expect("a running node");
        let mut newest: HashMap<&str, (u64, State)> = HashMap::new();
        for member in node.members() {
            let id = member.id();
            let entry = newest.entry(&id.name).or_insert((id.bump, member.state()));
            if id.bump >= entry.0 {
                *entry = (id.bump, member.state());
            }
        }
        newest
            .into_iter()
            .filter(|(_, (_, state))| *state != State::Down)
            .map(|(name, _)| name.to_owned())
            .chain(std::iter::once(node.me().name.clone()))
            .collect()
    }

    /// Whether every running node counts exactly the running nodes live.
    fn agreed(&self) -> bool {
        let running: BTreeSet<String> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_some())
            .map(name)
            .collect();
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_some())
            .all(|i| self.view(i) == running)
    }
}

/// `count` nodes started within 50 ms of each other, each joining through node 0.
fn started_together(count: usize, loss: f64, seed: u64) -> Cluster {
    let mut cluster = Cluster::new(loss, seed);
    for index in 0..count {
        cluster.start_node(index);
        let next = cluster.now + Duration::from_micros(50_000 / count as u64);
        cluster.run_until(next);
    }
    cluster
}

#[test]
fn sixty_four_nodes_started_together_agree_within_two_seconds_despite_ten_percent_loss() {
    for seed in 1..=3 {
        let mut cluster = started_together(64, 0.10, seed);
        let took = cluster.time_until(Duration::from_secs(10), Cluster::agreed);
        let took = took.unwrap_or_else(|| panic!("seed {seed}: no agreement in 10 s"));
        assert!(
            took < Duration::from_secs(2),
            "seed {seed}: agreed after {took:?}"
        );
    }
}

/// For three seeds: 64 nodes at 10% loss, agreed and settled for 2 s, then `event`; the
/// time until every running node agrees again, which must be under a second.
fn agreed_again_within_one_second(what: &str, event: impl Fn(&mut Cluster)) {
    for seed in 1..=3 {
        let mut cluster = started_together(64, 0.10, seed);
        cluster
            .time_until(Duration::from_secs(10), Cluster::agreed)
            .expect("agreement first");
        cluster.run_until(cluster.now + Duration::from_secs(2));
        event(&mut cluster);
        let took = cluster
            .time_until(Duration::from_secs(10), Cluster::agreed)
            .unwrap_or_else(|| panic!("seed {seed}: {what} never agreed on"));
        assert!(
            took < Duration::from_secs(1),
            "seed {seed}: {what} agreed on after {took:?}"
        );
    }
}

#[test]
fn a_silent_loss_is_seen_by_every_survivor_within_one_second() {
    agreed_again_within_one_second("the loss", |cluster| cluster.kill(17));
}

#[test]
fn a_node_joining_a_settled_cluster_is_known_by_all_within_one_second() {
    agreed_again_within_one_second("the joiner", |cluster| cluster.start_node(64));
}

#[test]
fn a_node_that_heard_nothing_for_a_while_catches_up_by_anti_entropy() {
    let mut cluster = started_together(32, 0.10, 7);
    cluster
        .time_until(Duration::from_secs(10), Cluster::agreed)
        .expect("agreement first");
    // Node 5 hears nothing while node 9 dies and node 32 joins; every update about them
    // is spread and done with before it listens again.
    cluster.deaf.insert(5);
    cluster.kill(9);
    cluster.start_node(32);
    cluster.run_until(cluster.now + Duration::from_secs(3));
    assert!(!cluster.view(5).contains(&name(32)));
    cluster.deaf.clear();
    let took = cluster
        .time_until(Duration::from_secs(10), Cluster::agreed)
        .expect("node 5 catches up");
    assert!(took < Duration::from_secs(3), "caught up after {took:?}");
}

#[test]
fn a_settled_cluster_of_sixty_four_gossips_under_ten_kilobytes_per_second_per_node() {
    let mut cluster = started_together(64, 0.0, 3);
    cluster
        .time_until(Duration::from_secs(10), Cluster::agreed)
        .expect("agreement first");
    cluster.run_until(cluster.now + Duration::from_secs(5));
    let before = cluster.bytes_sent;
    cluster.run_until(cluster.now + Duration::from_secs(10));
    let per_node = (cluster.bytes_sent - before) as f64 / 10.0 / 64.0;
    assert!(per_node < 10_000.0, "{per_node:.0} B/s sent per node");
}
