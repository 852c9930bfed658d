//! Components follow reloads: a reload that turns one on binds and starts it, one that
//! turns it off stops it and releases what it held (sockets, sysctls), a change the
//! component cannot follow live restarts that component only, and an enable that cannot
//! bind rejects the reload while the old set keeps serving.
//!
//! One node with two links (eth0, eth1), each to a client of its own.

// Test helpers fail the test by panicking, as the tests themselves do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dockline_lab::{Daemon, Lab, Netns, wait_until};

const VIP: &str = "192.0.2.10";

/// The config with `l2.interfaces` and `dns.enabled` as given.
fn config(interfaces: &[&str], dns: bool) -> String {
    let interfaces: Vec<String> = interfaces.iter().map(|i| format!("\"{i}\"")).collect();
    format!(
        r#"
[node]
name = "node-1"
internal_ip = "172.30.0.11"
[admin]
listen = "127.0.0.1:9470"
[dns]
enabled = {dns}
listen = ["127.0.0.1:5353"]
[proxy]
enabled = false
[l2]
interfaces = [{interfaces}]
[[pools]]
name = "public"
addresses = ["192.0.2.10-192.0.2.20"]
announce = ["l2"]
[[services]]
name = "web"
type = "LoadBalancer"
load_balancer_ip = "{VIP}"
ports = [{{ port = 8080 }}]
"#,
        interfaces = interfaces.join(", "),
    )
}

struct Node {
    lab: Lab,
    ns: Netns,
    /// The client on eth0 and the one on eth1.
    clients: [Netns; 2],
    daemon: Daemon,
}

fn start(test: &str, text: &str) -> Node {
    let mut lab = Lab::new(test);
    let (ns, c0) = lab.linked_pair("node", &["172.30.0.11/24"], "c0", &["172.30.0.100/24"]);
    let c1 = lab.netns("c1");
    lab.link(
        &ns,
        "eth1",
        &["172.31.0.11/24"],
        &c1,
        "eth0",
        &["172.31.0.100/24"],
    );
    for client in [&c0, &c1] {
        client.sh_ok("ip route add 192.0.2.0/24 dev eth0");
    }
    let daemon = Daemon::builder(env!("CARGO_BIN_EXE_dockline"), &ns)
        .config(text)
        .start(&mut lab);
    Node {
        lab,
        ns,
        clients: [c0, c1],
        daemon,
    }
}

impl Node {
    fn ready(&self) -> bool {
        self.daemon
            .admin_get("/readyz")
            .is_some_and(|(code, _)| code == 200)
    }

    /// The components /status lists, with their states.
    fn components(&self) -> Vec<(String, String)> {
        self.daemon.status()["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let field = |k: &str| c[k].as_str().unwrap().to_owned();
                (field("name"), field("state"))
            })
            .collect()
    }

    fn runs(&self, component: &str) -> bool {
        self.components()
            .iter()
            .any(|(name, state)| name == component && state == "running")
    }

    fn listed(&self, component: &str) -> bool {
        self.components().iter().any(|(name, _)| name == component)
    }

    /// Reloads with `text`, which must be accepted.
    fn reload(&self, text: &str) {
        if let Err(problems) = self.daemon.reload(text) {
            panic!("reload rejected: {problems:?}");
        }
    }

    /// Reloads with `text`, which must be rejected; the problems, one line each.
    fn reload_rejected(&self, text: &str) -> String {
        match self.daemon.reload(text) {
            Ok(()) => panic!("reload accepted"),
            Err(problems) => problems.join("\n"),
        }
    }

    fn metric_sum(&self, name: &str) -> f64 {
        self.daemon.metric_sum(name, &[])
    }

    fn sysctl(&self, interface: &str, key: &str) -> String {
        self.ns
            .sh_ok(&format!("cat /proc/sys/net/ipv4/conf/{interface}/{key}"))
            .trim()
            .to_owned()
    }

    /// The ARP settings the announcer makes on an interface it manages.
    fn announces_on(&self, interface: &str) -> bool {
        (
            self.sysctl(interface, "arp_ignore"),
            self.sysctl(interface, "arp_announce"),
        ) == ("1".to_owned(), "2".to_owned())
    }

    /// Whether one ARP request for the VIP from client `side` got a reply from dockline
    /// (the kernel answers for it too where dockline does not manage the link: the routes
    /// component makes the VIP local, so only dockline's reply counter tells them apart).
    fn dockline_answers_arp(&self, side: usize) -> bool {
        let before = self.metric_sum("dockline_l2_responses_sent_total");
        self.clients[side].sh(&format!("timeout 1 arping -c 1 -w 1 -I eth0 {VIP}"));
        self.metric_sum("dockline_l2_responses_sent_total") > before
    }

    fn dns_answers(&self) -> bool {
        let out = self
            .ns
            .sh("dig +short +time=1 +tries=1 -p 5353 @127.0.0.1 web.default.svc.cluster.local A");
        // A LoadBalancer service's name resolves to its ClusterIP, allocated from the
        // default service range.
        let answer = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        answer.starts_with("10.222.") && answer.parse::<std::net::Ipv4Addr>().is_ok()
    }
}

#[test]
fn l2_turned_on_by_reload_answers_and_off_again_releases_its_interfaces() {
    let node = start("l2-on-off", &config(&[], false));
    assert!(!node.listed("l2"), "{:?}", node.components());
    assert_eq!(node.sysctl("eth0", "arp_ignore"), "0");
    assert!(!node.dockline_answers_arp(0));

    node.reload(&config(&["eth0"], false));
    assert!(node.runs("l2"), "{:?}", node.components());
    assert!(node.ready());
    assert!(node.announces_on("eth0"));
    assert!(node.dockline_answers_arp(0));
    assert_eq!(node.metric_sum("dockline_vip_owned"), 1.0);

    node.reload(&config(&[], false));
    assert!(!node.listed("l2"), "{:?}", node.components());
    assert!(node.ready());
    // The sysctls are back as they were, and no AF_PACKET socket is left open.
    assert_eq!(node.sysctl("eth0", "arp_ignore"), "0");
    assert_eq!(node.sysctl("eth0", "arp_announce"), "0");
    assert!(!node.dockline_answers_arp(0));
    let packet_sockets = node.ns.sh_ok(&format!(
        "ss -0 -p | grep -c 'pid={},' || true",
        node.daemon.pid()
    ));
    assert_eq!(packet_sockets.trim(), "0");
    let component_up = node.metric_sum("dockline_component_up");
    assert_eq!(component_up, 3.0, "routes, health and admin run");
}

#[test]
fn the_l2_interfaces_change_live_and_only_l2_restarts() {
    let node = start("l2-interfaces", &config(&["eth0"], true));
    assert!(node.announces_on("eth0"));
    assert!(node.dockline_answers_arp(0));
    let dns_pid_socket = node.ns.sh_ok("ss -lunpH 'sport = :5353'");

    node.reload(&config(&["eth1"], true));
    assert!(node.runs("l2"));
    assert!(node.announces_on("eth1"));
    assert_eq!(node.sysctl("eth0", "arp_ignore"), "0", "eth0 released");
    assert!(node.dockline_answers_arp(1));
    assert!(!node.dockline_answers_arp(0));
    // DNS did not restart: the same socket serves.
    assert_eq!(node.ns.sh_ok("ss -lunpH 'sport = :5353'"), dns_pid_socket);
    assert!(node.dns_answers());

    node.reload(&config(&["eth0", "eth1"], true));
    assert!(node.announces_on("eth0") && node.announces_on("eth1"));
    assert!(node.dockline_answers_arp(0));
    assert!(node.dockline_answers_arp(1));
}

#[test]
fn dns_turned_off_and_on_again_by_reload() {
    let node = start("dns-off-on", &config(&[], true));
    assert!(node.runs("dns"));
    assert!(node.dns_answers());

    node.reload(&config(&[], false));
    assert!(!node.listed("dns"), "{:?}", node.components());
    assert!(node.ready());
    assert!(!node.dns_answers());
    let listening = node.ns.sh_ok("ss -lntuH 'sport = :5353'");
    assert_eq!(listening.trim(), "", "the DNS sockets are closed");
    // The latency histogram goes with the component.
    assert_eq!(
        node.metric_sum("dockline_dns_query_duration_seconds_count"),
        0.0
    );

    node.reload(&config(&[], true));
    assert!(node.runs("dns"));
    wait_until(Duration::from_secs(5), "DNS answers again", || {
        node.dns_answers()
    });
    assert!(node.metric_sum("dockline_dns_query_duration_seconds_count") >= 1.0);
}

#[test]
fn an_enable_that_cannot_bind_is_rejected_and_the_old_set_keeps_serving() {
    let mut node = start("enable-fails", &config(&["eth0"], false));
    let digest = node.daemon.status()["config"]["config_digest"].clone();

    // DNS turned on while another process holds its port.
    let ns = node.ns.clone();
    let mut squatter = node.lab.spawn(
        &ns,
        "python3",
        &[
            "-c",
            "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             s.bind(('127.0.0.1',5353))\ntime.sleep(60)",
        ],
    );
    wait_until(
        Duration::from_secs(5),
        "the squatter holds the port",
        || !node.ns.sh_ok("ss -lunH 'sport = :5353'").trim().is_empty(),
    );
    let problems = node.reload_rejected(&config(&["eth0"], true));
    let status = node.daemon.status();
    assert!(
        problems.contains("dns: cannot listen on 127.0.0.1:5353"),
        "{problems}"
    );
    assert_eq!(
        status["config"]["config_digest"], digest,
        "old config in force"
    );
    assert!(!node.listed("dns"));
    assert!(node.ready());
    assert!(node.dockline_answers_arp(0));
    squatter.signal("KILL");
    squatter
        .wait_timeout(Duration::from_secs(5))
        .expect("the squatter ends");

    // An interface that does not exist: l2 is restarted with it, fails, and comes back on
    // the old set.
    let problems = node.reload_rejected(&config(&["eth0", "nosuch0"], false));
    let status = node.daemon.status();
    assert!(problems.contains("l2: interface nosuch0"), "{problems}");
    assert_eq!(status["config"]["config_digest"], digest);
    assert!(node.runs("l2"));
    assert!(node.ready());
    assert!(node.announces_on("eth0"));
    assert!(node.dockline_answers_arp(0));
    // (The file watch may count a rejected text once more besides the SIGHUP.)
    assert!(status["config"]["reloads_error"].as_u64().unwrap() >= 2);
    assert_eq!(status["config"]["reloads_ok"], 0);

    // Once the port is free, the same change goes through.
    node.reload(&config(&["eth0"], true));
    assert!(node.runs("dns"));
    assert!(node.dns_answers());
}
