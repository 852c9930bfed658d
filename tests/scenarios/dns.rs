//! The DNS responder against `dig` (and knot as an upstream): every name of the Kubernetes
//! DNS specification over UDP and TCP, headless round-robin, truncation and TCP fallback,
//! EDNS and header rules (and the checks of ISC's EDNS compliance tester), pod names,
//! REFUSED and forwarding for outside names (failover, negative answers, TCP), answers that
//! follow reloads and health checks without restarting listeners, and bad input that is
//! counted and survived.
//!
//! Each test runs its own daemon in its own namespace, on 127.0.0.1:5353 there.

// Test helpers fail the test by panicking, as the tests themselves do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dockline_lab::{Daemon, Lab, Netns, Process, wait_until};

const BASE: &str = r#"
[node]
name = "node-1"
[admin]
listen = "127.0.0.1:9470"
[proxy]
enabled = false
[cluster]
pod_cidr = "fd00:10::/64"
"#;

/// The services most tests query.
const SERVICES: &str = r#"
[[services]]
name = "web"
cluster_ip = "10.222.0.10"
ports = [{ name = "http", port = 80, target_port = 8080 }]
[[services.endpoints]]
ip = "10.111.1.5"
[[services]]
name = "plain"
cluster_ip = "10.222.0.11"
ports = [{ port = 81 }]
[[services]]
name = "db"
namespace = "prod"
cluster_ip = "None"
ports = [{ name = "pg", port = 5432, target_port = 5433 }]
[[services.endpoints]]
ip = "fd00:10::5"
hostname = "db-0"
[[services.endpoints]]
ip = "10.111.1.6"
hostname = "db-1"
[[services.endpoints]]
ip = "10.111.1.7"
ready = false
[[services]]
name = "ext"
type = "ExternalName"
external_name = "www.example.org"
"#;

struct Dns {
    lab: Lab,
    ns: Netns,
    daemon: Daemon,
}

fn start(test: &str, config: &str) -> Dns {
    let mut lab = Lab::new(test);
    let ns = lab.netns("node");
    let daemon = Daemon::builder(env!("CARGO_BIN_EXE_dockline"), &ns)
        .config(config)
        .start(&mut lab);
    Dns { lab, ns, daemon }
}

impl Dns {
    /// `dig` at the daemon with `args`, full output.
    fn dig(&self, args: &str) -> String {
        self.dig_port(5353, args)
    }

    fn dig_port(&self, port: u16, args: &str) -> String {
        self.ns
            .sh(&format!("dig +time=2 +tries=1 -p {port} @127.0.0.1 {args}"))
            .stdout
            .iter()
            .map(|b| *b as char)
            .collect()
    }

    /// The answer section's data, one record a line (`dig +short`).
    fn short(&self, args: &str) -> Vec<String> {
        self.dig(&format!("+short {args}"))
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Runs a bash script in the namespace (for /dev/udp and /dev/tcp).
    fn bash(&self, script: &str) -> String {
        let out = self.ns.exec("bash", &["-c", script]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn status(output: &str) -> &str {
    output
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("(no answer)")
}

fn flags(output: &str) -> Vec<&str> {
    output
        .lines()
        .find(|l| l.starts_with(";; flags:"))
        .map(|l| {
            l.trim_start_matches(";; flags:")
                .split(';')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect()
        })
        .unwrap_or_default()
}

/// Whitespace runs as one space, so record lines compare whatever dig's alignment.
fn squeeze(output: &str) -> String {
    output.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn answers_the_kubernetes_names_over_udp_and_tcp() {
    let dns = start("dns-names", &format!("{BASE}{SERVICES}"));
    for transport in ["+notcp", "+tcp"] {
        let q = |args: &str| dns.short(&format!("{transport} {args}"));
        assert_eq!(q("web.default.svc.cluster.local A"), ["10.222.0.10"]);
        // Names are case-insensitive.
        assert_eq!(q("WEB.Default.SVC.cluster.LOCAL A"), ["10.222.0.10"]);
        assert_eq!(
            q("_http._tcp.web.default.svc.cluster.local SRV"),
            ["0 100 80 web.default.svc.cluster.local."]
        );
        // Headless: ready endpoints only, A and AAAA by family, names by hostname.
        assert_eq!(q("db.prod.svc.cluster.local A"), ["10.111.1.6"]);
        assert_eq!(q("db.prod.svc.cluster.local AAAA"), ["fd00:10::5"]);
        assert_eq!(q("db-0.db.prod.svc.cluster.local AAAA"), ["fd00:10::5"]);
        assert_eq!(q("db-1.db.prod.svc.cluster.local A"), ["10.111.1.6"]);
        assert_eq!(
            sorted(q("_pg._tcp.db.prod.svc.cluster.local SRV")),
            [
                "0 50 5433 db-0.db.prod.svc.cluster.local.",
                "0 50 5433 db-1.db.prod.svc.cluster.local."
            ]
        );
        assert_eq!(
            q("-x 10.222.0.10"),
            ["web.default.svc.cluster.local."],
            "PTR of a cluster IP"
        );
        assert_eq!(
            q("-x fd00:10::5"),
            ["db-0.db.prod.svc.cluster.local."],
            "PTR of an endpoint, full-nibble IPv6"
        );
        assert_eq!(
            q("ext.default.svc.cluster.local A"),
            ["www.example.org."],
            "ExternalName is a CNAME"
        );
        assert_eq!(q("dns-version.cluster.local TXT"), ["\"1.1.0\""]);
        assert_eq!(q("cluster.local NS"), ["ns.dns.cluster.local."]);
        assert_eq!(q("ns.dns.cluster.local A"), ["127.0.0.1"]);
        let soa = q("cluster.local SOA");
        assert!(
            soa.len() == 1 && soa[0].starts_with("ns.dns.cluster.local. hostmaster.cluster.local."),
            "{soa:?}"
        );
    }

    // The SRV targets' addresses ride along; TTL is dns.ttl; AA set, RD copied, no RA.
    let srv = squeeze(&dns.dig("_pg._tcp.db.prod.svc.cluster.local SRV"));
    assert!(
        srv.contains("db-0.db.prod.svc.cluster.local. 5 IN AAAA fd00:10::5"),
        "{srv}"
    );
    assert!(
        srv.contains("db-1.db.prod.svc.cluster.local. 5 IN A 10.111.1.6"),
        "{srv}"
    );
    assert_eq!(
        flags(&dns.dig("_pg._tcp.db.prod.svc.cluster.local SRV")),
        ["qr", "aa", "rd"]
    );
    assert_eq!(
        flags(&dns.dig("+norec web.default.svc.cluster.local")),
        ["qr", "aa"]
    );

    // NXDOMAIN for unknown names, NODATA for a known name and another type, both with the
    // SOA; an empty non-terminal is NODATA; the unnamed port has no SRV; no SRV for
    // ExternalName; an unknown type is NODATA.
    for (query, expected) in [
        ("nope.default.svc.cluster.local A", "NXDOMAIN"),
        ("_http._tcp.plain.default.svc.cluster.local SRV", "NXDOMAIN"),
        ("_http._tcp.ext.default.svc.cluster.local SRV", "NXDOMAIN"),
        ("db-2.db.prod.svc.cluster.local A", "NXDOMAIN"),
        ("9.9.222.10.in-addr.arpa PTR", "NXDOMAIN"),
        ("web.default.svc.cluster.local AAAA", "NOERROR"),
        ("web.default.svc.cluster.local TYPE65280", "NOERROR"),
        ("prod.svc.cluster.local A", "NOERROR"),
        ("cluster.local A", "NOERROR"),
    ] {
        let out = dns.dig(query);
        assert_eq!(status(&out), expected, "{query}: {out}");
        assert!(out.contains("ANSWER: 0,"), "{query}: {out}");
        assert!(
            out.contains("AUTHORITY: 1,") && out.contains("IN\tSOA\tns.dns.cluster.local."),
            "{query}: SOA in authority: {out}"
        );
        assert!(flags(&out).contains(&"aa"), "{query}: {out}");
    }
}

#[test]
fn headless_answers_rotate_over_every_ready_endpoint() {
    let mut config = format!(
        "{BASE}[[services]]\nname = \"pool\"\ncluster_ip = \"None\"\nports = [{{ port = 80 }}]\n"
    );
    for i in 1..=4 {
        config += &format!("[[services.endpoints]]\nip = \"10.111.1.{i}\"\n");
    }
    config += "[[services]]\nname = \"down\"\ncluster_ip = \"None\"\nports = [{ port = 80 }]\n\
               [[services.endpoints]]\nip = \"10.111.2.1\"\nready = false\n";
    config += "[[services]]\nname = \"eager\"\ncluster_ip = \"None\"\n\
               publish_not_ready_addresses = true\nports = [{ port = 80 }]\n\
               [[services.endpoints]]\nip = \"10.111.3.1\"\nready = false\n";
    let dns = start("dns-rotation", &config);
    let all: Vec<String> = (1..=4).map(|i| format!("10.111.1.{i}")).collect();
    let mut firsts = Vec::new();
    for _ in 0..8 {
        let answer = dns.short("pool.default.svc.cluster.local A");
        assert_eq!(
            sorted(answer.clone()),
            all,
            "every endpoint in every answer"
        );
        firsts.push(answer[0].clone());
    }
    for pair in firsts.windows(2) {
        assert_ne!(
            pair[0], pair[1],
            "consecutive answers start differently: {firsts:?}"
        );
    }
    assert_eq!(
        sorted(firsts[..4].to_vec()),
        all,
        "each endpoint comes first in turn"
    );

    let down = dns.dig("down.default.svc.cluster.local A");
    assert_eq!(status(&down), "NXDOMAIN", "no ready endpoint: {down}");
    assert_eq!(
        dns.short("eager.default.svc.cluster.local A"),
        ["10.111.3.1"],
        "publish_not_ready_addresses"
    );
}

#[test]
fn large_answers_truncate_over_udp_and_complete_over_tcp() {
    let mut config = format!(
        "{BASE}[[services]]\nname = \"big\"\ncluster_ip = \"None\"\nports = [{{ port = 80 }}]\n"
    );
    for i in 0..100 {
        config += &format!(
            "[[services.endpoints]]\nip = \"10.111.{}.{}\"\n",
            i / 50,
            i % 50 + 1
        );
    }
    let dns = start("dns-tc", &config);
    let plain = dns.dig("+noedns +ignore big.default.svc.cluster.local A");
    assert!(flags(&plain).contains(&"tc"), "TC over 512 bytes: {plain}");
    assert!(plain.contains("ANSWER: 0,"), "{plain}");
    let edns = dns.dig("+ignore +bufsize=1232 big.default.svc.cluster.local A");
    assert!(flags(&edns).contains(&"tc"), "TC over 1232 bytes: {edns}");
    assert_eq!(dns.short("+tcp big.default.svc.cluster.local A").len(), 100);
    // dig retries over TCP by itself on TC.
    assert_eq!(dns.short("big.default.svc.cluster.local A").len(), 100);
    let roomy = dns.dig("+bufsize=4096 +ignore big.default.svc.cluster.local A");
    assert!(roomy.contains("ANSWER: 100,"), "fits in 4096: {roomy}");
}

#[test]
fn edns_and_header_rules() {
    let dns = start("dns-edns", &format!("{BASE}{SERVICES}"));
    let name = "web.default.svc.cluster.local";
    let plain = dns.dig(&format!("+noedns {name}"));
    assert!(
        !plain.contains("OPT PSEUDOSECTION"),
        "no OPT without EDNS: {plain}"
    );
    let edns = dns.dig(&format!("+edns=0 +ednsopt=100:abcd +ednsflags=0x40 {name}"));
    assert_eq!(status(&edns), "NOERROR", "{edns}");
    assert!(
        edns.contains("; EDNS: version: 0, flags:; udp: 1232"),
        "OPT echoed, unknown flags and options dropped: {edns}"
    );
    assert!(!edns.contains("OPT=100"), "{edns}");
    let badvers = dns.dig(&format!("+edns=1 +noednsneg {name}"));
    assert_eq!(status(&badvers), "BADVERS", "{badvers}");
    assert!(badvers.contains("; EDNS: version: 0"), "{badvers}");
    assert!(badvers.contains("ANSWER: 0,"), "{badvers}");
    let dnssec = dns.dig(&format!("+dnssec {name}"));
    assert!(
        dnssec.contains("; EDNS: version: 0, flags: do;"),
        "DO copied: {dnssec}"
    );
    let zflag = dns.dig(&format!("+zflag {name}"));
    assert_eq!(status(&zflag), "NOERROR", "{zflag}");
    assert!(!zflag.contains("MBZ"), "Z clear in the answer: {zflag}");
    for opcode in [1, 2, 4, 5, 15] {
        // RD, CD and AD asked for; none is defined for these opcodes (RFC 6895 section 2).
        let out = dns.dig(&format!("+opcode={opcode} +rec +cdflag +adflag {name}"));
        assert_eq!(status(&out), "NOTIMP", "opcode {opcode}: {out}");
        assert_eq!(flags(&out), ["qr"], "opcode {opcode}: {out}");
    }
    let chaos = dns.dig("version.bind CH TXT");
    assert_eq!(status(&chaos), "REFUSED", "{chaos}");
    let badvers = [("qtype", "A"), ("rcode", "BADVERS"), ("transport", "udp")];
    assert!(
        dns.daemon
            .metric("dockline_dns_queries_total", &badvers)
            .is_some_and(|n| n >= 1.0)
    );
}

#[test]
fn outside_names_are_refused_without_forwarders() {
    let dns = start("dns-refused", &format!("{BASE}{SERVICES}"));
    for transport in ["+notcp", "+tcp"] {
        let out = dns.dig(&format!("{transport} www.example.org A"));
        assert_eq!(status(&out), "REFUSED", "{out}");
        assert!(
            !flags(&out).contains(&"ra") && !flags(&out).contains(&"aa"),
            "{out}"
        );
        assert!(out.contains("ANSWER: 0,"), "{out}");
    }
    // Reverse names outside service_cidr and pod_cidr are not ours either.
    assert_eq!(status(&dns.dig("-x 192.0.2.1")), "REFUSED");
    let refused = [("qtype", "A"), ("rcode", "REFUSED"), ("transport", "tcp")];
    assert!(
        dns.daemon
            .metric("dockline_dns_queries_total", &refused)
            .is_some_and(|n| n >= 1.0)
    );
}

/// knot on 127.0.0.1:`port` in the daemon's namespace, authoritative for `example.test`.
fn start_knot(dns: &mut Dns, port: u16) -> Process {
    start_knot_with(dns, port, 300)
}

/// The same, with `soa_minimum` as the SOA's minimum (the TTL of negative answers). Besides
/// `www` (TTL 300) the zone has `brief` (TTL 2), `soon` (TTL 10), `burst` and `big` (60
/// addresses); knot
/// counts the queries it answers ([`knot_queries`]).
fn start_knot_with(dns: &mut Dns, port: u16, soa_minimum: u32) -> Process {
    let dir = dns.lab.dir().join(format!("knot-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut zone = format!(
        "$ORIGIN example.test.\n$TTL 300\n\
         @ SOA ns admin 1 3600 900 604800 {soa_minimum}\n@ NS ns\nns A 127.0.0.1\n\
         www A 192.0.2.80\nbrief 2 A 192.0.2.81\nburst A 192.0.2.82\n\
         soon 10 A 192.0.2.83\n",
    );
    // Too large for 512 bytes.
    for i in 1..=60 {
        zone += &format!("big A 192.0.2.{i}\n");
    }
    std::fs::write(dir.join("example.test.zone"), zone).unwrap();
    let d = dir.display();
    std::fs::write(
        dir.join("knot.conf"),
        format!(
            "server:\n  listen: 127.0.0.1@{port}\n  rundir: {d}\n\
             database:\n  storage: {d}\n\
             mod-stats:\n  - id: counts\n\
             template:\n  - id: default\n    storage: {d}\n    global-module: mod-stats/counts\n\
             zone:\n  - domain: example.test\n    file: example.test.zone\n"
        ),
    )
    .unwrap();
    let conf = dir.join("knot.conf");
    let knot = dns
        .lab
        .spawn(&dns.ns, "knotd", &["-c", conf.to_str().unwrap()]);
    wait_until(Duration::from_secs(10), "knot answers", || {
        dns.dig_port(port, "+short www.example.test A").trim() == "192.0.2.80"
    });
    knot
}

/// The queries the knot on `port` has answered so far.
fn knot_queries(dns: &Dns, port: u16) -> u64 {
    let conf = dns.lab.dir().join(format!("knot-{port}/knot.conf"));
    let stats = dns.ns.sh_ok(&format!(
        "knotc -c {} stats mod-stats.server-operation",
        conf.display()
    ));
    stats
        .lines()
        .find(|l| l.starts_with("mod-stats.server-operation[query]"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// Forwarding to `upstreams` with the cache off: the relay alone.
fn with_forward_uncached(upstreams: &str) -> String {
    with_forward(upstreams).replace("[proxy]", "[dns.cache]\nenabled = false\n[proxy]")
}

fn with_forward(upstreams: &str) -> String {
    format!("{BASE}{SERVICES}").replace(
        "[proxy]",
        &format!("[dns]\nforward = [{upstreams}]\n[proxy]"),
    )
}

#[test]
fn outside_names_are_forwarded_to_knot() {
    let mut dns = start("dns-forward", &with_forward_uncached("\"127.0.0.1:5300\""));
    let knot = start_knot(&mut dns, 5300);
    for transport in ["+notcp", "+tcp"] {
        let out = dns.dig(&format!("{transport} www.example.test A"));
        assert_eq!(status(&out), "NOERROR", "{out}");
        assert!(
            out.contains("www.example.test.\t300\tIN\tA\t192.0.2.80"),
            "relayed as is: {out}"
        );
        assert!(flags(&out).contains(&"aa"), "the upstream's flags: {out}");
        assert!(
            out.contains("AUTHORITY: 0, ADDITIONAL: 1"),
            "knot's sections, its OPT: {out}"
        );
        // The upstream's negative answer, its SOA in the authority section.
        let missing = dns.dig(&format!("{transport} nope.example.test A"));
        assert_eq!(status(&missing), "NXDOMAIN", "{missing}");
        assert!(flags(&missing).contains(&"aa"), "{missing}");
        assert!(
            squeeze(&missing)
                .contains("example.test. 300 IN SOA ns.example.test. admin.example.test. 1 3600"),
            "the upstream's SOA: {missing}"
        );
    }
    // The client's UDP size goes upstream: a large answer comes back truncated, and the
    // client's retry over TCP is relayed over TCP, whole.
    let small = dns.dig("+ignore +bufsize=512 big.example.test A");
    assert!(flags(&small).contains(&"tc"), "{small}");
    let roomy = dns.dig("+ignore +bufsize=4096 big.example.test A");
    assert!(roomy.contains("ANSWER: 60,"), "{roomy}");
    let tcp = dns.dig("+tcp big.example.test A");
    assert!(tcp.contains("ANSWER: 60,"), "{tcp}");
    // Every forwarded TCP query (three here) went over one kept connection.
    let sockets = dns.ns.sh_ok("ss -Htan 'dport = :5300'");
    assert_eq!(sockets.lines().count(), 1, "{sockets}");
    assert!(sockets.starts_with("ESTAB"), "{sockets}");
    // When knot goes away and comes back, the next TCP query opens a new connection.
    let mut knot = knot;
    knot.signal("KILL");
    knot.wait_timeout(Duration::from_secs(5))
        .expect("knot ends");
    let _knot = start_knot(&mut dns, 5300);
    let again = dns.dig("+tcp www.example.test A");
    assert_eq!(status(&again), "NOERROR", "{again}");
    // Cluster names are still ours.
    assert_eq!(dns.short("web.default.svc.cluster.local"), ["10.222.0.10"]);
}

#[test]
fn forwarding_fails_over_to_the_next_upstream_and_follows_reloads() {
    // Nothing listens on 5301; then a blackholed address, whose sends fail at once.
    let mut dns = start(
        "dns-failover",
        &with_forward("\"127.0.0.1:5301\", \"198.51.100.1:53\", \"127.0.0.1:5300\""),
    );
    dns.ns.sh_ok("ip route add blackhole 198.51.100.1/32");
    let _knot = start_knot(&mut dns, 5300);
    for transport in ["+notcp", "+tcp"] {
        let out = dns.ns.sh(&format!(
            "dig +time=8 +tries=1 -p 5353 @127.0.0.1 {transport} www.example.test A"
        ));
        let out = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(status(&out), "NOERROR", "{transport}: {out}");
        assert!(
            out.contains("192.0.2.80"),
            "the third upstream answers: {out}"
        );
    }
    // Every upstream down: SERVFAIL, counted.
    dns.daemon
        .reload(&with_forward("\"127.0.0.1:5301\""))
        .expect("accepted");
    wait_until(Duration::from_secs(10), "the dead upstream alone", || {
        status(&dns.dig_port(5353, "+time=4 www.example.test A")) == "SERVFAIL"
    });
    assert!(
        dns.daemon
            .metric("dockline_dns_forward_errors_total", &[])
            .is_some_and(|n| n >= 1.0)
    );
    // No forwarders left: REFUSED again, never an open resolver.
    dns.daemon
        .reload(&format!("{BASE}{SERVICES}"))
        .expect("accepted");
    wait_until(Duration::from_secs(10), "forwarding stops", || {
        status(&dns.dig("www.example.test A")) == "REFUSED"
    });
}

#[test]
fn answers_follow_reloads_and_listeners_move_without_restart() {
    let config = format!("{BASE}{SERVICES}");
    let dns = start("dns-reload", &config);
    let pid = dns.daemon.pid();
    assert_eq!(dns.short("db.prod.svc.cluster.local A"), ["10.111.1.6"]);
    let serial = |dns: &Dns, port| {
        dns.dig_port(port, "+short cluster.local SOA")
            .split_whitespace()
            .nth(2)
            .unwrap_or("")
            .to_owned()
    };
    let before = serial(&dns, 5353);

    // Readiness flips, ttl changes, and a second listen address appears.
    let next = config
        .replace("ip = \"10.111.1.7\"\nready = false", "ip = \"10.111.1.7\"")
        .replace(
            "[proxy]",
            "[dns]\nttl = 30\nlisten = [\"127.0.0.1:5353\", \"127.0.0.1:5354\"]\n[proxy]",
        );
    dns.daemon.reload(&next).expect("accepted");
    wait_until(Duration::from_secs(5), "the reload reaches DNS", || {
        dns.short("db.prod.svc.cluster.local A").len() == 2
    });
    assert!(
        squeeze(&dns.dig("web.default.svc.cluster.local"))
            .contains("web.default.svc.cluster.local. 30 IN A 10.222.0.10"),
        "ttl follows the reload"
    );
    assert_ne!(
        serial(&dns, 5353),
        before,
        "the SOA serial changes on reload"
    );
    assert_eq!(
        dns.dig_port(5354, "+short web.default.svc.cluster.local"),
        "10.222.0.10\n"
    );

    // The first address goes away; the second stays.
    dns.daemon
        .reload(&next.replace("\"127.0.0.1:5353\", ", ""))
        .expect("accepted");
    wait_until(Duration::from_secs(5), "5353 closes", || {
        !dns.dig("web.default.svc.cluster.local").contains("status:")
    });
    assert_eq!(
        dns.dig_port(5354, "+tcp +short web.default.svc.cluster.local"),
        "10.222.0.10\n"
    );
    assert_eq!(dns.daemon.pid(), pid, "no restart");

    // A listen address that cannot be bound keeps the old ones serving.
    // Whether the reload itself counts as accepted is not what this checks.
    let _ = dns
        .daemon
        .reload(&next.replace("\"127.0.0.1:5353\", ", "\"192.0.2.99:53\", "));
    wait_until(Duration::from_secs(5), "the failed bind is logged", || {
        dns.daemon
            .log()
            .contains("dns: cannot listen on 192.0.2.99:53")
    });
    assert_eq!(
        dns.dig_port(5354, "+short web.default.svc.cluster.local"),
        "10.222.0.10\n"
    );
}

/// Listens on `addr:port` in `ns` and closes every connection: enough for a TCP check.
fn tcp_listener(dns: &mut Dns, addr: &str, port: u16) -> Process {
    let script = format!(
        "import socket\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('{addr}', {port}))\ns.listen(64)\nwhile True:\n    s.accept()[0].close()\n"
    );
    let ns = dns.ns.clone();
    dns.lab.spawn(&ns, "python3", &["-c", &script])
}

#[test]
fn health_checks_move_headless_answers_and_leave_cluster_ips_alone() {
    let config = format!(
        r#"{BASE}
[[services]]
name = "cache"
cluster_ip = "None"
ports = [{{ port = 7000 }}]
health_check = {{ kind = "tcp", interval_ms = 200, timeout_ms = 100, rise = 1, fall = 1 }}
[[services.endpoints]]
ip = "10.111.2.1"
[[services.endpoints]]
ip = "10.111.2.2"
[[services]]
name = "api"
cluster_ip = "10.222.0.20"
ports = [{{ port = 7000 }}]
health_check = {{ kind = "tcp", interval_ms = 200, timeout_ms = 100, rise = 1, fall = 1 }}
[[services.endpoints]]
ip = "10.111.2.3"
"#
    );
    let mut dns = start("dns-health", &config);
    for ip in ["10.111.2.1", "10.111.2.2", "10.111.2.3"] {
        dns.ns.sh_ok(&format!("ip addr add {ip}/32 dev lo"));
    }
    let name = "cache.default.svc.cluster.local";
    let answer = |dns: &Dns| sorted(dns.short(name));
    let first = tcp_listener(&mut dns, "10.111.2.1", 7000);
    wait_until(
        Duration::from_secs(10),
        "only the passing endpoint answers",
        || answer(&dns) == ["10.111.2.1"],
    );
    let _second = tcp_listener(&mut dns, "10.111.2.2", 7000);
    wait_until(Duration::from_secs(10), "the second endpoint joins", || {
        answer(&dns) == ["10.111.2.1", "10.111.2.2"]
    });
    first.signal("KILL");
    wait_until(
        Duration::from_secs(10),
        "the failing endpoint leaves",
        || answer(&dns) == ["10.111.2.2"],
    );
    // The ClusterIP's name does not follow its endpoints' health (nothing listens there).
    assert_eq!(dns.short("api.default.svc.cluster.local"), ["10.222.0.20"]);
    assert_eq!(
        dns.short("10-111-2-1.default.pod.cluster.local"),
        ["10.111.2.1"],
        "a failing pod still exists"
    );
}

#[test]
fn bad_input_is_counted_and_never_stalls_others() {
    let mut dns = start("dns-bad", &format!("{BASE}{SERVICES}"));
    // A slow TCP client holds a connection with half a frame...
    let slow = dns.lab.spawn(
        &dns.ns,
        "bash",
        &[
            "-c",
            "exec 3<>/dev/tcp/127.0.0.1/5353; printf '\\x00\\x30\\x00' >&3; sleep 30",
        ],
    );
    // ...garbage, a short packet, a response, a query with two questions...
    dns.bash(
        "printf 'garbage-garbage-garbage' > /dev/udp/127.0.0.1/5353; \
         printf '\\x01\\x02\\x03' > /dev/udp/127.0.0.1/5353; \
         printf '\\x12\\x34\\x81\\x80\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00' > /dev/udp/127.0.0.1/5353",
    );
    // ...an oversized TCP frame gets the connection closed at once.
    let oversized = dns.bash(
        "exec 3<>/dev/tcp/127.0.0.1/5353; printf '\\xff\\xff' >&3; timeout 3 cat <&3; echo closed",
    );
    assert!(oversized.contains("closed"), "{oversized}");
    // Everyone else is still answered, over UDP and TCP.
    assert_eq!(dns.short("web.default.svc.cluster.local"), ["10.222.0.10"]);
    assert_eq!(
        dns.short("+tcp web.default.svc.cluster.local"),
        ["10.222.0.10"]
    );
    // A truncated question is FORMERR.
    let formerr = dns.bash(
        "exec 3<>/dev/tcp/127.0.0.1/5353; \
         printf '\\x00\\x0e\\xab\\xcd\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x03w' >&3; \
         timeout 3 head -c 6 <&3 | od -An -tx1",
    );
    assert!(
        formerr.contains("ab cd 81 01"),
        "FORMERR, RD copied: {formerr}"
    );
    wait_until(Duration::from_secs(5), "bad queries counted", || {
        let bad = dns.daemon.metrics();
        let counted =
            |reason: &str| bad.value("dockline_dns_bad_queries_total", &[("reason", reason)]);
        counted("malformed").is_some_and(|n| n >= 2.0)
            && counted("response").is_some_and(|n| n >= 1.0)
            && counted("tcp_frame").is_some_and(|n| n >= 1.0)
    });
    assert!(
        dns.daemon
            .metric("dockline_dns_query_duration_seconds_count", &[])
            .is_some_and(|n| n >= 2.0)
    );
    assert!(dns.daemon.is_running(), "{}", dns.daemon.log());
    drop(slow);
}

#[test]
fn a_dns_port_in_use_stops_the_start_naming_the_address() {
    let mut dns = start("dns-inuse", &format!("{BASE}{SERVICES}"));
    let second_config = format!("{BASE}{SERVICES}").replace("127.0.0.1:9470", "127.0.0.1:9471");
    let log = Daemon::builder(env!("CARGO_BIN_EXE_dockline"), &dns.ns)
        .config(&second_config)
        .start_expecting_failure(&mut dns.lab);
    assert!(
        log.contains("dns: cannot listen on 127.0.0.1:5353: Address already in use"),
        "{log}"
    );
    assert_eq!(dns.short("web.default.svc.cluster.local"), ["10.222.0.10"]);
}

#[test]
fn pod_names_answer_for_endpoints_of_their_namespace() {
    let config = format!("{BASE}{SERVICES}");
    let dns = start("dns-pods", &config);
    for (query, expected) in [
        ("10-111-1-5.default.pod.cluster.local A", "10.111.1.5"),
        ("+tcp 10-111-1-6.PROD.pod.cluster.local A", "10.111.1.6"),
        // Not ready: the pod exists all the same.
        ("10-111-1-7.prod.pod.cluster.local A", "10.111.1.7"),
        ("fd00-10--5.prod.pod.cluster.local AAAA", "fd00:10::5"),
    ] {
        let out = dns.dig(query);
        assert_eq!(status(&out), "NOERROR", "{query}: {out}");
        assert!(flags(&out).contains(&"aa"), "{out}");
        let rtype = if expected.contains(':') { "AAAA" } else { "A" };
        assert!(
            squeeze(&out).contains(&format!(" 5 IN {rtype} {expected}")),
            "{query}: {out}"
        );
    }
    for query in [
        // An endpoint of another namespace's service.
        "10-111-1-5.prod.pod.cluster.local A",
        "10-111-1-6.default.pod.cluster.local A",
        // No endpoint has it.
        "10-111-1-9.default.pod.cluster.local A",
        "10-111-1-5.nope.pod.cluster.local A",
    ] {
        let out = dns.dig(query);
        assert_eq!(status(&out), "NXDOMAIN", "{query}: {out}");
        assert!(squeeze(&out).contains("cluster.local. 5 IN SOA"), "{out}");
    }
    let nodata = dns.dig("10-111-1-5.default.pod.cluster.local AAAA");
    assert_eq!(status(&nodata), "NOERROR", "{nodata}");
    assert!(nodata.contains("ANSWER: 0,"), "{nodata}");
    // The endpoint goes away with a reload: so does its pod name.
    dns.daemon
        .reload(&config.replace("[[services.endpoints]]\nip = \"10.111.1.5\"\n", ""))
        .expect("accepted");
    wait_until(Duration::from_secs(5), "the pod name goes", || {
        status(&dns.dig("10-111-1-5.default.pod.cluster.local A")) == "NXDOMAIN"
    });
}

/// The checks of ISC's EDNS compliance tester (genreport, ednscomp.isc.org), made with `dig`
/// on the zone apex SOA, each with the outcome RFC 1035, RFC 6891 and RFC 3225 require.
#[test]
fn ednscomp_checks() {
    let mut config = format!(
        "{BASE}[[services]]\nname = \"big\"\ncluster_ip = \"None\"\nports = [{{ port = 80 }}]\n"
    );
    for i in 1..=60 {
        config += &format!("[[services.endpoints]]\nip = \"10.111.9.{i}\"\n");
    }
    let dns = start("dns-ednscomp", &config);
    let soa = "cluster.local SOA";
    let edns_line = |out: &str| -> String {
        out.lines()
            .find(|l| l.starts_with("; EDNS:"))
            .unwrap_or("(no OPT)")
            .to_owned()
    };
    let answered = |out: &str| {
        assert_eq!(status(out), "NOERROR", "{out}");
        assert!(out.contains("ANSWER: 1,"), "{out}");
        assert!(
            squeeze(out).contains("cluster.local. 5 IN SOA ns.dns.cluster.local."),
            "{out}"
        );
        assert!(flags(out).contains(&"aa"), "{out}");
    };

    // dns: plain DNS, no OPT in the answer.
    let plain = dns.dig(&format!("+noedns {soa}"));
    answered(&plain);
    assert_eq!(edns_line(&plain), "(no OPT)", "{plain}");

    // edns: OPT echoed, version 0.
    let edns = dns.dig(&format!("+edns=0 +nocookie {soa}"));
    answered(&edns);
    assert!(
        edns_line(&edns).starts_with("; EDNS: version: 0, flags:;"),
        "{edns}"
    );

    // edns1: BADVERS, an OPT of version 0, no answer.
    let edns1 = dns.dig(&format!("+edns=1 +noednsneg +nocookie {soa}"));
    assert_eq!(status(&edns1), "BADVERS", "{edns1}");
    assert!(
        edns_line(&edns1).starts_with("; EDNS: version: 0,"),
        "{edns1}"
    );
    assert!(edns1.contains("ANSWER: 0,"), "{edns1}");

    // ednsopt: an unknown option is ignored, not echoed.
    let ednsopt = dns.dig(&format!("+edns=0 +nocookie +ednsopt=100 {soa}"));
    answered(&ednsopt);
    assert!(!ednsopt.contains("OPT=100"), "{ednsopt}");

    // edns1opt: version 1 with an unknown option: BADVERS, option not echoed.
    let edns1opt = dns.dig(&format!("+edns=1 +noednsneg +nocookie +ednsopt=100 {soa}"));
    assert_eq!(status(&edns1opt), "BADVERS", "{edns1opt}");
    assert!(
        edns_line(&edns1opt).starts_with("; EDNS: version: 0,"),
        "{edns1opt}"
    );
    assert!(!edns1opt.contains("OPT=100"), "{edns1opt}");
    assert!(edns1opt.contains("ANSWER: 0,"), "{edns1opt}");

    // ednsflags: an unknown EDNS flag is ignored and cleared in the answer (dig prints set
    // must-be-zero bits as MBZ; the query shows it was sent).
    let ednsflags = dns.dig(&format!("+qr +edns=0 +nocookie +ednsflags=0x80 {soa}"));
    let (query, response) = ednsflags
        .split_once(";; QUERY SIZE")
        .expect("dig +qr prints the query first");
    assert!(query.contains("MBZ: 0x0080"), "sent: {query}");
    answered(response);
    assert!(!response.contains("MBZ"), "{response}");

    // do: the DO bit is copied back (RFC 3225 section 3).
    let dnssec = dns.dig(&format!("+edns=0 +nocookie +dnssec {soa}"));
    answered(&dnssec);
    assert!(
        edns_line(&dnssec).starts_with("; EDNS: version: 0, flags: do;"),
        "{dnssec}"
    );

    // optlist: NSID, ECS, EXPIRE and COOKIE together: NOERROR, none implemented, none echoed.
    let optlist = dns.dig(&format!(
        "+edns=0 +nsid +subnet=0.0.0.0/0 +expire +cookie {soa}"
    ));
    answered(&optlist);
    for option in ["NSID", "CLIENT-SUBNET", "EXPIRE", "COOKIE"] {
        assert!(
            !optlist.contains(&format!("; {option}")),
            "{option}: {optlist}"
        );
    }

    // zflag: the header's Z bit is ignored and clear in the answer.
    let zflag = dns.dig(&format!("+qr +noedns +zflag {soa}"));
    let (query, response) = zflag.split_once(";; QUERY SIZE").expect("query first");
    assert!(query.contains("MBZ: 0x4"), "sent: {query}");
    answered(response);
    assert!(!response.contains("MBZ"), "{response}");

    // opcode: an unknown opcode gets NOTIMP, no answer, not authoritative.
    for args in ["+noedns", "+edns=0 +nocookie"] {
        let opcode = dns.dig(&format!("{args} +opcode=15 {soa}"));
        assert_eq!(status(&opcode), "NOTIMP", "{opcode}");
        assert!(opcode.contains("ANSWER: 0,"), "{opcode}");
        assert!(!flags(&opcode).contains(&"aa"), "{opcode}");
        assert_eq!(flags(&opcode), ["qr"], "no RD, CD, AD, RA or AA: {opcode}");
    }

    // type666: an unknown type at a name that exists is NODATA with the SOA.
    let type666 = dns.dig("+noedns cluster.local TYPE666");
    assert_eq!(status(&type666), "NOERROR", "{type666}");
    assert!(type666.contains("ANSWER: 0, AUTHORITY: 1,"), "{type666}");
    assert!(
        squeeze(&type666).contains("cluster.local. 5 IN SOA"),
        "{type666}"
    );
    assert!(flags(&type666).contains(&"aa"), "{type666}");

    // ednstcp: EDNS over TCP.
    let ednstcp = dns.dig(&format!("+tcp +edns=0 +nocookie {soa}"));
    answered(&ednstcp);
    assert!(
        edns_line(&ednstcp).starts_with("; EDNS: version: 0,"),
        "{ednstcp}"
    );

    // edns@512: a large answer to a 512-byte EDNS requestor: TC, within 512 bytes, OPT kept.
    for args in ["+edns=0 +bufsize=512 +dnssec", "+noedns"] {
        let small = dns.dig(&format!(
            "+ignore +nocookie {args} big.default.svc.cluster.local A"
        ));
        assert!(flags(&small).contains(&"tc"), "{args}: {small}");
        let size: usize = small
            .split("MSG SIZE  rcvd: ")
            .nth(1)
            .and_then(|s| s.trim().parse().ok())
            .expect("dig prints the size");
        assert!(size <= 512, "{args}: {size} bytes");
        if args.contains("edns=0") {
            assert!(edns_line(&small).contains("flags: do;"), "{small}");
        }
    }

    // Header: RD copied (set and clear), RA never set (no recursion), AA on our answers.
    let rd = dns.dig(&format!("+noedns +rec {soa}"));
    assert_eq!(flags(&rd), ["qr", "aa", "rd"], "{rd}");
    let nord = dns.dig(&format!("+noedns +norec {soa}"));
    assert_eq!(flags(&nord), ["qr", "aa"], "{nord}");
}

// ---------------------------------------------------------------------------------------
// The cache of forwarded answers ([dns.cache]), against knot as the upstream.
// ---------------------------------------------------------------------------------------

/// The dns component's cache figures in /status: (entries, bytes).
fn cache_figures(dns: &Dns) -> (u64, u64) {
    let status = dns.daemon.status();
    let components = status["components"].as_array().expect("components");
    let component = components
        .iter()
        .find(|c| c["name"] == "dns")
        .expect("dns in /status");
    let figure = |name: &str| component["status"][name].as_u64().expect(name);
    (figure("cache_entries"), figure("cache_bytes"))
}

/// The TTL of the first record of `owner` in dig's output.
fn ttl_of(output: &str, owner: &str) -> u32 {
    output
        .lines()
        .find(|l| l.starts_with(owner))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or_else(|| panic!("no record of {owner}: {output}"))
}

#[test]
fn a_second_query_is_answered_from_the_cache_with_ttls_counting_down() {
    let mut dns = start("dns-cache-hit", &with_forward("\"127.0.0.1:5300\""));
    let _knot = start_knot(&mut dns, 5300);
    assert_eq!(cache_figures(&dns), (0, 0));
    let first = dns.dig("www.example.test A");
    assert_eq!(status(&first), "NOERROR", "{first}");
    assert_eq!(ttl_of(&first, "www.example.test."), 300, "{first}");
    let asked = knot_queries(&dns, 5300);
    std::thread::sleep(Duration::from_millis(2100));
    for transport in ["+notcp", "+tcp"] {
        let again = dns.dig(&format!("{transport} www.example.test A"));
        assert_eq!(status(&again), "NOERROR", "{again}");
        assert!(again.contains("192.0.2.80"), "{again}");
        let ttl = ttl_of(&again, "www.example.test.");
        assert!((296..=298).contains(&ttl), "the TTL counts down: {again}");
    }
    // The client's RD is its own on a hit.
    let norec = dns.dig("+norec www.example.test A");
    assert!(!flags(&norec).contains(&"rd"), "{norec}");
    assert!(flags(&dns.dig("www.example.test A")).contains(&"rd"));
    assert_eq!(knot_queries(&dns, 5300), asked, "knot was not asked again");
    let hits = dns.daemon.metric_sum("dockline_dns_cache_hits_total", &[]);
    assert!(hits >= 4.0, "{hits}");
    let (entries, bytes) = cache_figures(&dns);
    assert_eq!(entries, 1);
    assert!(bytes > 0);
    assert_eq!(
        dns.daemon.metric("dockline_dns_cache_entries", &[]),
        Some(1.0)
    );
    // A hit larger than the client's UDP size is truncated as a fresh answer would be; over
    // TCP it is whole. Neither goes to knot.
    let roomy = dns.dig("+ignore +bufsize=4096 big.example.test A");
    assert!(roomy.contains("ANSWER: 60,"), "{roomy}");
    let asked = knot_queries(&dns, 5300);
    let small = dns.dig("+ignore +bufsize=512 big.example.test A");
    assert!(flags(&small).contains(&"tc"), "{small}");
    assert!(small.contains("ANSWER: 0,"), "{small}");
    let tcp = dns.dig("+tcp big.example.test A");
    assert!(tcp.contains("ANSWER: 60,"), "{tcp}");
    assert_eq!(knot_queries(&dns, 5300), asked);
}

#[test]
fn nxdomain_is_cached_for_the_soa_minimum() {
    let mut dns = start("dns-cache-negative", &with_forward("\"127.0.0.1:5300\""));
    let _knot = start_knot_with(&mut dns, 5300, 3);
    let first = dns.dig("nope.example.test A");
    assert_eq!(status(&first), "NXDOMAIN", "{first}");
    let asked = knot_queries(&dns, 5300);
    let again = dns.dig("nope.example.test A");
    assert_eq!(status(&again), "NXDOMAIN", "{again}");
    assert!(ttl_of(&again, "example.test.") <= 3, "{again}");
    assert_eq!(knot_queries(&dns, 5300), asked, "from the cache");
    std::thread::sleep(Duration::from_millis(3200));
    let later = dns.dig("nope.example.test A");
    assert_eq!(status(&later), "NXDOMAIN", "{later}");
    assert_eq!(knot_queries(&dns, 5300), asked + 1, "expired after 3 s");
}

#[test]
fn when_knot_dies_cached_names_answer_uncached_ones_servfail_and_stale_ones_are_served() {
    let forward = with_forward("\"127.0.0.1:5300\"");
    let stale = forward.replace("[proxy]", "[dns.cache]\nserve_stale_s = 60\n[proxy]");
    let mut dns = start("dns-cache-stale", &stale);
    let mut knot = start_knot(&mut dns, 5300);
    assert_eq!(status(&dns.dig("www.example.test A")), "NOERROR");
    assert_eq!(status(&dns.dig("brief.example.test A")), "NOERROR");
    knot.signal("KILL");
    knot.wait_timeout(Duration::from_secs(5))
        .expect("knot ends");
    let www = dns.dig("www.example.test A");
    assert_eq!(status(&www), "NOERROR", "{www}");
    assert!(www.contains("192.0.2.80"), "{www}");
    let slow_dig = |args: &str| -> String {
        let out = dns
            .ns
            .sh(&format!("dig +time=6 +tries=1 -p 5353 @127.0.0.1 {args}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let uncached = slow_dig("burst.example.test A");
    assert_eq!(status(&uncached), "SERVFAIL", "{uncached}");
    // brief's 2 s are over: served stale, with TTL 30 (RFC 8767).
    std::thread::sleep(Duration::from_millis(2100));
    let brief = slow_dig("brief.example.test A");
    assert_eq!(status(&brief), "NOERROR", "{brief}");
    assert!(brief.contains("192.0.2.81"), "{brief}");
    assert_eq!(ttl_of(&brief, "brief.example.test."), 30, "{brief}");
    let served = dns
        .daemon
        .metric_sum("dockline_dns_cache_stale_served_total", &[]);
    assert!(served >= 1.0, "{served}");
    // Without serve_stale_s, an expired name fails like an uncached one.
    dns.daemon.reload(&forward).expect("accepted");
    wait_until(Duration::from_secs(20), "brief is not served stale", || {
        status(&slow_dig("brief.example.test A")) == "SERVFAIL"
    });
}

#[test]
fn a_hundred_clients_asking_one_new_name_make_one_upstream_query() {
    let mut dns = start("dns-cache-flight", &with_forward("\"127.0.0.1:5300\""));
    let knot = start_knot(&mut dns, 5300);
    let asked = knot_queries(&dns, 5300);
    let answered_udp = [("qtype", "A"), ("rcode", "NOERROR"), ("transport", "udp")];
    let answered = dns
        .daemon
        .metric_sum("dockline_dns_queries_total", &answered_udp);
    // knot stopped: the first query waits upstream while the others arrive.
    knot.signal("STOP");
    // burst.example.test A, RD, from 100 sockets of their own.
    let query = "\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\
                 \\x05burst\\x07example\\x04test\\x00\\x00\\x01\\x00\\x01";
    dns.bash(&format!(
        "for i in $(seq 100); do printf '{query}' > /dev/udp/127.0.0.1/5353; done"
    ));
    wait_until(Duration::from_secs(5), "100 misses", || {
        dns.daemon
            .metric_sum("dockline_dns_cache_misses_total", &[])
            >= 100.0
    });
    knot.signal("CONT");
    wait_until(Duration::from_secs(5), "100 answers", || {
        dns.daemon
            .metric_sum("dockline_dns_queries_total", &answered_udp)
            >= answered + 100.0
    });
    assert_eq!(knot_queries(&dns, 5300), asked + 1, "one upstream query");
}

#[test]
fn a_reload_that_changes_dns_forward_empties_the_cache() {
    let mut dns = start("dns-cache-flush", &with_forward("\"127.0.0.1:5300\""));
    let _first = start_knot(&mut dns, 5300);
    let _second = start_knot(&mut dns, 5302);
    assert_eq!(status(&dns.dig("www.example.test A")), "NOERROR");
    assert_eq!(cache_figures(&dns).0, 1);
    // Another key changed: the cache stays.
    let ttl = with_forward("\"127.0.0.1:5300\"")
        .replace("[proxy]", "[dns.cache]\nmax_ttl_s = 600\n[proxy]");
    dns.daemon.reload(&ttl).expect("accepted");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cache_figures(&dns).0, 1, "kept");
    dns.daemon
        .reload(&with_forward("\"127.0.0.1:5302\""))
        .expect("accepted");
    wait_until(Duration::from_secs(10), "the cache is emptied", || {
        cache_figures(&dns) == (0, 0)
    });
    let asked = knot_queries(&dns, 5302);
    assert_eq!(status(&dns.dig("www.example.test A")), "NOERROR");
    assert_eq!(
        knot_queries(&dns, 5302),
        asked + 1,
        "asked of the new upstream"
    );
}

#[test]
fn a_name_asked_in_the_last_tenth_of_its_ttl_is_refreshed_in_the_background() {
    let mut dns = start("dns-cache-prefetch", &with_forward("\"127.0.0.1:5300\""));
    let _knot = start_knot(&mut dns, 5300);
    assert_eq!(status(&dns.dig("soon.example.test A")), "NOERROR");
    let asked = knot_queries(&dns, 5300);
    std::thread::sleep(Duration::from_millis(9200));
    let late = dns.dig("soon.example.test A");
    assert_eq!(
        ttl_of(&late, "soon.example.test."),
        1,
        "from the cache: {late}"
    );
    wait_until(Duration::from_secs(3), "knot is asked again", || {
        knot_queries(&dns, 5300) == asked + 1
    });
    // Past the first answer's 10 s, the refreshed one answers.
    std::thread::sleep(Duration::from_millis(1500));
    let refreshed = dns.dig("soon.example.test A");
    assert!(ttl_of(&refreshed, "soon.example.test.") >= 7, "{refreshed}");
    assert_eq!(knot_queries(&dns, 5300), asked + 1, "{refreshed}");
}
