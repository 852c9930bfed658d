//! Fleet configuration from etcd: a real 3-member etcd cluster (Debian's etcd-server) and
//! three dockline nodes, each in a namespace of its own on one switch. Pushes go through
//! `dockline config push`, forced documents through etcdctl.
//!
//! lan 172.30.0.0/24: etcd members .21-.23, dockline nodes .11-.13.

// Test helpers fail the test by panicking, as the tests themselves do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dockline_lab::{Daemon, Lab, Netns, Process, wait_until};

const DOCKLINE: &str = env!("CARGO_BIN_EXE_dockline");
const KEY: &str = "/dockline/config";
const MEMBERS: [&str; 3] = ["172.30.0.21", "172.30.0.22", "172.30.0.23"];
const NODES: [&str; 3] = ["172.30.0.11", "172.30.0.12", "172.30.0.13"];

/// A shared document with `services` ClusterIP services (they bind nothing: the proxy is
/// off), so each push is visible in /status. Gossip is unkeyed: only the test's own
/// namespaces are on the lab's network (the keyed path is tests/scenarios/security.rs's).
fn shared(services: usize) -> String {
    let mut text = String::from(
        "[admin]\nlisten = \"127.0.0.1:9470\"\n[dns]\nlisten = [\"127.0.0.1:5353\"]\n\
         [proxy]\nenabled = false\n[cluster.gossip]\ninsecure = true\n",
    );
    for n in 1..=services {
        text.push_str(&format!(
            "[[services]]\nname = \"web-{n}\"\ncluster_ip = \"10.222.0.{n}\"\nports = [{{ port = 80 }}]\n"
        ));
    }
    text
}

fn endpoints() -> String {
    let urls: Vec<String> = MEMBERS
        .iter()
        .map(|ip| format!("\"http://{ip}:2379\""))
        .collect();
    urls.join(", ")
}

struct Fleet {
    lab: Lab,
    members: Vec<(Netns, Option<Process>)>,
    nodes: Vec<Netns>,
    locals: Vec<PathBuf>,
}

impl Fleet {
    /// The etcd cluster up and healthy, the nodes' namespaces and local files made (no
    /// dockline started yet).
    fn new(test: &str) -> Fleet {
        let mut lab = Lab::new(test);
        let lan = lab.switch("lan");
        let mut members = Vec::new();
        for (i, ip) in MEMBERS.iter().enumerate() {
            let ns = lab.host(&lan, &format!("etcd{}", i + 1), &[&format!("{ip}/24")]);
            members.push((ns, None));
        }
        let mut nodes = Vec::new();
        let mut locals = Vec::new();
        for (i, ip) in NODES.iter().enumerate() {
            let name = format!("n{}", i + 1);
            nodes.push(lab.host(&lan, &name, &[&format!("{ip}/24")]));
            let local = lab.dir().join(format!("{name}-local.toml"));
            let cache = lab.dir().join(format!("{name}-cache"));
            std::fs::write(
                &local,
                format!(
                    "[node]\nname = \"{name}\"\ninternal_ip = \"{ip}\"\n[source]\nkind = \"etcd\"\n\
                     endpoints = [{}]\ncache_dir = \"{}\"\n",
                    endpoints(),
                    cache.display()
                ),
            )
            .unwrap();
            locals.push(local);
        }
        let mut fleet = Fleet {
            lab,
            members,
            nodes,
            locals,
        };
        for i in 0..MEMBERS.len() {
            fleet.start_member(i);
        }
        wait_until(Duration::from_secs(20), "etcd cluster healthy", || {
            fleet.etcdctl(&["endpoint", "health"]).status.success()
        });
        fleet
    }

    fn start_member(&mut self, i: usize) {
        let cluster: Vec<String> = MEMBERS
            .iter()
            .enumerate()
            .map(|(j, ip)| format!("e{}=http://{ip}:2380", j + 1))
            .collect();
        let ip = MEMBERS[i];
        let data = self.lab.dir().join(format!("etcd{}", i + 1));
        let args = [
            "--name".to_owned(),
            format!("e{}", i + 1),
            "--data-dir".to_owned(),
            data.display().to_string(),
            "--listen-client-urls".to_owned(),
            format!("http://{ip}:2379"),
            "--advertise-client-urls".to_owned(),
            format!("http://{ip}:2379"),
            "--listen-peer-urls".to_owned(),
            format!("http://{ip}:2380"),
            "--initial-advertise-peer-urls".to_owned(),
            format!("http://{ip}:2380"),
            "--initial-cluster".to_owned(),
            cluster.join(","),
            "--initial-cluster-state".to_owned(),
            "new".to_owned(),
            "--heartbeat-interval".to_owned(),
            "50".to_owned(),
            "--election-timeout".to_owned(),
            "500".to_owned(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let ns = self.members[i].0.clone();
        let process = self.lab.spawn(&ns, "etcd", &args);
        self.members[i].1 = Some(process);
    }

    fn kill_member(&mut self, i: usize) {
        if let Some(mut process) = self.members[i].1.take() {
            process.signal("KILL");
            process.wait_timeout(Duration::from_secs(5));
        }
    }

    /// etcdctl from the first node's namespace, against every member.
    fn etcdctl(&self, args: &[&str]) -> Output {
        let urls: Vec<String> = MEMBERS
            .iter()
            .map(|ip| format!("http://{ip}:2379"))
            .collect();
        let endpoints = format!("--endpoints={}", urls.join(","));
        let mut all = vec![endpoints.as_str(), "--command-timeout=2s"];
        all.extend_from_slice(args);
        self.nodes[0].exec("etcdctl", &all)
    }

    /// `dockline config push` of `text` from node `i`.
    fn push(&self, i: usize, text: &str) -> Output {
        push_from(self.lab.dir(), &self.nodes[i], i, &self.locals[i], text)
    }

    /// A push that must succeed; the revision it printed.
    fn push_ok(&self, text: &str) -> i64 {
        let out = self.push(0, text);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "push failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        revision_in(&stdout)
    }

    fn start_node(&mut self, i: usize) -> Daemon {
        let [(listen_key, listen), (seeds_key, seeds)] = gossip_env(i);
        Daemon::builder(DOCKLINE, &self.nodes[i])
            .config_file(&self.locals[i].clone())
            .env(listen_key, &listen)
            .env(seeds_key, &seeds)
            .start(&mut self.lab)
    }
}

/// `dockline config push` of `text` (written to a file in `dir`) from `ns`, with `local` as the local file of node `i`:
/// validated as node i's reload would be, with its environment.
fn push_from(dir: &Path, ns: &Netns, i: usize, local: &Path, text: &str) -> Output {
    let file = dir.join(format!("push-{}.toml", unique()));
    std::fs::write(&file, text).unwrap();
    let [listen, seeds] = gossip_env(i).map(|(key, value)| format!("{key}={value}"));
    ns.exec(
        "env",
        &[
            &listen,
            &seeds,
            DOCKLINE,
            "config",
            "push",
            "--config",
            &local.display().to_string(),
            &file.display().to_string(),
        ],
    )
}

/// Node i's gossip address and seeds (the other nodes): they differ per node, so they come
/// from each node's environment rather than from the shared document.
fn gossip_env(i: usize) -> [(&'static str, String); 2] {
    let others: Vec<String> = NODES
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(_, ip)| format!("{ip}:7946"))
        .collect();
    [
        (
            "DOCKLINE__CLUSTER__GOSSIP__LISTEN",
            format!("{}:7946", NODES[i]),
        ),
        ("DOCKLINE__CLUSTER__GOSSIP__SEEDS", others.join(",")),
    ]
}

fn unique() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The number after "revision " in a push's output.
fn revision_in(stdout: &str) -> i64 {
    stdout
        .rsplit("revision ")
        .next()
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or_else(|| panic!("no revision in {stdout:?}"))
}

fn revision_of(daemon: &Daemon) -> Option<i64> {
    daemon.status()["config"]["revision"].as_i64()
}

fn services_of(daemon: &Daemon) -> usize {
    daemon.status()["services"]
        .as_array()
        .map_or(0, |services| services.len())
}

/// Waits until every node runs `revision`.
fn applied_everywhere(daemons: &[Daemon], revision: i64, timeout: Duration) {
    wait_until(
        timeout,
        &format!("revision {revision} on every node"),
        || daemons.iter().all(|d| revision_of(d) == Some(revision)),
    );
}

/// Seconds since midnight UTC now, as the daemons' log timestamps count them.
fn time_of_day() -> f64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    since_epoch.as_secs_f64() % 86_400.0
}

/// When the daemon's log says it loaded `revision`: the first "config loaded" line after
/// the one that starts reloading it, in seconds since midnight UTC.
fn loaded_at(log: &str, revision: i64) -> f64 {
    let reloading = format!("trigger=\"etcd\" key=\"{KEY}\" revision={revision}");
    let line = log
        .lines()
        .skip_while(|line| !line.contains(&reloading))
        .find(|line| line.contains("config loaded"))
        .unwrap_or_else(|| panic!("no load of revision {revision} in the log:\n{log}"));
    // "2026-11-30T15:45:11.887908Z  INFO ...": the clock part of the timestamp.
    let clock = line.split(['T', 'Z']).nth(1).unwrap();
    let mut parts = clock.split(':').map(|part| part.parse::<f64>().unwrap());
    let (hours, minutes, seconds) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    hours * 3600.0 + minutes * 60.0 + seconds
}

#[test]
fn pushes_reach_every_node_within_a_second_and_survive_member_loss_bad_documents_and_compaction() {
    let mut fleet = Fleet::new("etcd-push");
    let first = fleet.push_ok(&shared(1));
    let daemons: Vec<Daemon> = (0..NODES.len()).map(|i| fleet.start_node(i)).collect();
    for daemon in &daemons {
        assert_eq!(revision_of(daemon), Some(first));
        assert_eq!(
            daemon.metric("dockline_config_revision", &[]),
            Some(first as f64)
        );
    }

    // A push reaches every node within a second, timed from their logs.
    let pushed = time_of_day();
    let second = fleet.push_ok(&shared(2));
    applied_everywhere(&daemons, second, Duration::from_secs(5));
    for daemon in &daemons {
        let took = loaded_at(&daemon.log(), second) - pushed;
        eprintln!("push to loaded: {took:.3} s");
        assert!(
            took < 1.0,
            "revision {second} loaded {took:.3} s after the push"
        );
    }
    assert!(daemons.iter().all(|d| services_of(d) == 2));

    // Every node sees every member's revision through gossip.
    wait_until(
        Duration::from_secs(5),
        "every member at the new revision",
        || {
            daemons.iter().all(|d| {
                let members = d.status()["members"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                members.len() == 3
                    && members
                        .iter()
                        .all(|m| m["config_revision"].as_i64() == Some(second))
            })
        },
    );

    // With one member killed, pushes still apply.
    fleet.kill_member(0);
    let third = fleet.push_ok(&shared(3));
    applied_everywhere(&daemons, third, Duration::from_secs(5));

    // A bad push is refused with its path, and nothing is written.
    let mut bad = shared(3);
    bad.push_str(
        "[[services]]\nname = \"bad\"\ncluster_ip = \"10.99.0.1\"\nports = [{ port = 80 }]\n",
    );
    let out = fleet.push(0, &bad);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("services[3].cluster_ip"), "{stdout}");

    // A bad document forced in with etcdctl is rejected by every node, which keep serving.
    let errors_before: Vec<f64> = daemons
        .iter()
        .map(|d| d.metric_sum("dockline_config_reloads_total", &[("result", "error")]))
        .collect();
    assert!(fleet.etcdctl(&["put", KEY, &bad]).status.success());
    for (daemon, before) in daemons.iter().zip(&errors_before) {
        wait_until(
            Duration::from_secs(5),
            "the forced bad document rejected",
            || daemon.metric_sum("dockline_config_reloads_total", &[("result", "error")]) > *before,
        );
        let status = daemon.status();
        let problems = status["config"]["last_reload_error"]["problems"].to_string();
        assert!(problems.contains("services[3].cluster_ip"), "{problems}");
        assert_eq!(revision_of(daemon), Some(third));
        assert_eq!(daemon.admin_get("/readyz").map(|r| r.0), Some(200));
    }

    // Compaction during the watch loses no update.
    let fourth = fleet.push_ok(&shared(4));
    applied_everywhere(&daemons, fourth, Duration::from_secs(5));
    let compacted = fleet.etcdctl(&["compact", &fourth.to_string()]);
    assert!(compacted.status.success(), "{compacted:?}");
    let fifth = fleet.push_ok(&shared(5));
    applied_everywhere(&daemons, fifth, Duration::from_secs(5));
    assert!(daemons.iter().all(|d| services_of(d) == 5));

    // `config get` prints the document in force and its revision.
    let local = fleet.locals[1].display().to_string();
    let got = fleet.nodes[1].exec(DOCKLINE, &["config", "get", "--config", &local]);
    assert!(got.status.success(), "{got:?}");
    let stdout = String::from_utf8_lossy(&got.stdout);
    assert_eq!(
        stdout,
        format!("# {KEY} at revision {fifth}\n{}", shared(5))
    );
}

#[test]
fn without_etcd_nodes_keep_serving_restart_from_their_cache_and_catch_up() {
    let mut fleet = Fleet::new("etcd-cache");
    let first = fleet.push_ok(&shared(2));
    let mut daemons: Vec<Daemon> = (0..NODES.len()).map(|i| fleet.start_node(i)).collect();
    applied_everywhere(&daemons, first, Duration::from_secs(5));

    for i in 0..MEMBERS.len() {
        fleet.kill_member(i);
    }
    std::thread::sleep(Duration::from_secs(2));
    for daemon in &daemons {
        assert_eq!(daemon.admin_get("/readyz").map(|r| r.0), Some(200));
        assert_eq!(services_of(daemon), 2);
    }

    // A restarted node comes up from its cache, and says so.
    daemons[2].stop();
    daemons[2] = fleet.start_node(2);
    let status = daemons[2].status();
    let source = status["config"]["source"].as_str().unwrap_or_default();
    assert!(source.contains("from the local cache"), "{source}");
    assert_eq!(revision_of(&daemons[2]), Some(first));
    assert!(
        daemons[2]
            .log()
            .contains("starting from the cached shared config")
    );

    // A node with neither etcd nor a cache refuses to start, saying why.
    let empty = fleet.lab.dir().join("no-cache-local.toml");
    std::fs::write(
        &empty,
        format!(
            "[node]\nname = \"n9\"\n[source]\nkind = \"etcd\"\nendpoints = [{}]\ncache_dir = \"{}\"\n",
            endpoints(),
            fleet.lab.dir().join("empty-cache").display()
        ),
    )
    .unwrap();
    let log = Daemon::builder(DOCKLINE, &fleet.nodes[0])
        .config_file(&empty)
        .admin("127.0.0.1:9471")
        .start_expecting_failure(&mut fleet.lab);
    assert!(log.contains("no cached document"), "{log}");

    // etcd back: every node catches up.
    for i in 0..MEMBERS.len() {
        fleet.start_member(i);
    }
    wait_until(
        Duration::from_secs(20),
        "etcd cluster healthy again",
        || fleet.etcdctl(&["endpoint", "health"]).status.success(),
    );
    let second = fleet.push_ok(&shared(3));
    applied_everywhere(&daemons, second, Duration::from_secs(10));
    let status = daemons[2].status();
    let source = status["config"]["source"].as_str().unwrap_or_default();
    assert!(!source.contains("cache"), "{source}");
}

#[test]
fn of_two_concurrent_pushes_one_wins_and_the_other_gets_a_conflict() {
    let fleet = Fleet::new("etcd-race");
    fleet.push_ok(&shared(1));
    let mut conflicts = 0;
    for attempt in 0..20 {
        let (a, b) = std::thread::scope(|scope| {
            let a = scope.spawn(|| fleet.push(0, &shared(2)));
            let b = scope.spawn(|| fleet.push(1, &shared(3)));
            (a.join().unwrap(), b.join().unwrap())
        });
        let outcomes = [&a, &b];
        assert!(
            outcomes.iter().any(|o| o.status.success()),
            "attempt {attempt}: neither push won: {a:?} {b:?}"
        );
        for out in outcomes.iter().filter(|o| !o.status.success()) {
            assert_eq!(out.status.code(), Some(1));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("conflict"), "{stderr}");
            conflicts += 1;
        }
        if conflicts > 0 {
            break;
        }
    }
    assert!(
        conflicts > 0,
        "20 pairs of concurrent pushes never conflicted"
    );
}

/// The one etcd member of the TLS test: https only, and a client certificate required.
const TLS_MEMBER: &str = "172.30.0.21";

/// Runs `openssl ARGS` (split at spaces) in `dir`, where the keys and certificates go.
fn openssl(dir: &Path, args: &str) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args.split_whitespace())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (ca.pem), and signed by it a server certificate for the etcd member's address
/// (server.pem, server.key) and a client certificate (client.pem, client.key).
fn make_certificates(dir: &Path) {
    openssl(
        dir,
        "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=dockline-lab-ca \
         -keyout ca.key -out ca.pem",
    );
    let uses = [
        (
            "server",
            format!("subjectAltName=IP:{TLS_MEMBER}\nextendedKeyUsage=serverAuth,clientAuth\n"),
        ),
        ("client", "extendedKeyUsage=clientAuth\n".to_owned()),
    ];
    for (name, extensions) in uses {
        std::fs::write(dir.join(format!("{name}.ext")), extensions).unwrap();
        openssl(
            dir,
            &format!(
                "req -newkey rsa:2048 -nodes -subj /CN=dockline-{name} \
                 -keyout {name}.key -out {name}.csr"
            ),
        );
        openssl(
            dir,
            &format!(
                "x509 -req -in {name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
                 -extfile {name}.ext -out {name}.pem"
            ),
        );
    }
}

/// Who a local file of the TLS test connects as.
struct Credentials<'a> {
    username: &'a str,
    password: &'a str,
    client_certificate: bool,
}

/// Node 1's local file for the TLS member, connecting as `credentials`.
fn tls_local(dir: &Path, name: &str, credentials: &Credentials) -> PathBuf {
    let password_file = dir.join(format!("{name}.password"));
    std::fs::write(&password_file, format!("{}\n", credentials.password)).unwrap();
    let mut text = format!(
        "[node]\nname = \"n1\"\ninternal_ip = \"{}\"\n[source]\nkind = \"etcd\"\n\
         endpoints = [\"https://{TLS_MEMBER}:2379\"]\ncache_dir = \"{}\"\n\
         ca_file = \"{}\"\nusername = \"{}\"\npassword_file = \"{}\"\n",
        NODES[0],
        dir.join(format!("{name}-cache")).display(),
        dir.join("ca.pem").display(),
        credentials.username,
        password_file.display(),
    );
    if credentials.client_certificate {
        text.push_str(&format!(
            "cert_file = \"{}\"\nkey_file = \"{}\"\n",
            dir.join("client.pem").display(),
            dir.join("client.key").display()
        ));
    }
    let local = dir.join(format!("{name}-local.toml"));
    std::fs::write(&local, text).unwrap();
    local
}

#[test]
fn over_tls_with_etcd_auth_a_reader_node_follows_only_a_writer_pushes_and_bad_credentials_fail_clearly()
 {
    let mut lab = Lab::new("etcd-tls");
    let lan = lab.switch("lan");
    let member = lab.host(&lan, "etcd1", &[&format!("{TLS_MEMBER}/24")]);
    let node = lab.host(&lan, "n1", &[&format!("{}/24", NODES[0])]);
    let dir = lab.dir().to_owned();
    make_certificates(&dir);
    let file = |name: &str| dir.join(name).display().to_string();
    let client_url = format!("https://{TLS_MEMBER}:2379");
    let peer_url = format!("http://{TLS_MEMBER}:2380");
    let args = [
        "--name",
        "e1",
        "--data-dir",
        &file("etcd-data"),
        "--listen-client-urls",
        &client_url,
        "--advertise-client-urls",
        &client_url,
        "--listen-peer-urls",
        &peer_url,
        "--initial-advertise-peer-urls",
        &peer_url,
        "--initial-cluster",
        &format!("e1={peer_url}"),
        "--client-cert-auth",
        "--trusted-ca-file",
        &file("ca.pem"),
        "--cert-file",
        &file("server.pem"),
        "--key-file",
        &file("server.key"),
    ];
    let _etcd = lab.spawn(&member, "etcd", &args);

    // etcdctl over TLS with the client certificate; as root once authentication is on.
    let etcdctl = |args: &[&str]| {
        let endpoint = format!("--endpoints={client_url}");
        let tls = [
            format!("--cacert={}", file("ca.pem")),
            format!("--cert={}", file("client.pem")),
            format!("--key={}", file("client.key")),
        ];
        let mut all = vec![endpoint.as_str(), "--command-timeout=2s"];
        all.extend(tls.iter().map(String::as_str));
        all.extend_from_slice(args);
        node.exec("etcdctl", &all)
    };
    wait_until(Duration::from_secs(20), "etcd answering over TLS", || {
        etcdctl(&["endpoint", "health"]).status.success()
    });
    // The roles the README gives: read on the prefix for nodes, readwrite for pushes.
    let setup: [&[&str]; 11] = [
        &["user", "add", "root", "--new-user-password=root-secret"],
        &["user", "grant-role", "root", "root"],
        &["role", "add", "dockline-reader"],
        &[
            "role",
            "grant-permission",
            "--prefix=true",
            "dockline-reader",
            "read",
            "/dockline/",
        ],
        &["role", "add", "dockline-writer"],
        &[
            "role",
            "grant-permission",
            "--prefix=true",
            "dockline-writer",
            "readwrite",
            "/dockline/",
        ],
        &[
            "user",
            "add",
            "node-reader",
            "--new-user-password=reader-secret",
        ],
        &["user", "grant-role", "node-reader", "dockline-reader"],
        &[
            "user",
            "add",
            "operator",
            "--new-user-password=writer-secret",
        ],
        &["user", "grant-role", "operator", "dockline-writer"],
        &["auth", "enable"],
    ];
    for step in setup {
        let out = etcdctl(step);
        assert!(out.status.success(), "etcdctl {step:?}: {out:?}");
    }
    let unauthenticated = etcdctl(&["get", KEY]);
    assert!(!unauthenticated.status.success(), "{unauthenticated:?}");

    let reader = Credentials {
        username: "node-reader",
        password: "reader-secret",
        client_certificate: true,
    };
    let reader_local = tls_local(&dir, "reader", &reader);
    let writer_local = tls_local(
        &dir,
        "writer",
        &Credentials {
            username: "operator",
            password: "writer-secret",
            client_certificate: true,
        },
    );
    let push_as = |local: &Path, text: &str| push_from(&dir, &node, 0, local, text);

    // The writer pushes; a node reading as the reader starts on it and follows the next.
    let out = push_as(&writer_local, &shared(1));
    assert!(out.status.success(), "{out:?}");
    let first = revision_in(&String::from_utf8_lossy(&out.stdout));
    let [(listen_key, listen), (seeds_key, seeds)] = gossip_env(0);
    let daemon = Daemon::builder(DOCKLINE, &node)
        .config_file(&reader_local)
        .env(listen_key, &listen)
        .env(seeds_key, &seeds)
        .start(&mut lab);
    assert_eq!(revision_of(&daemon), Some(first));
    let out = push_as(&writer_local, &shared(2));
    assert!(out.status.success(), "{out:?}");
    let second = revision_in(&String::from_utf8_lossy(&out.stdout));
    applied_everywhere(
        std::slice::from_ref(&daemon),
        second,
        Duration::from_secs(5),
    );
    assert_eq!(services_of(&daemon), 2);

    // The reader may read but not write: its push is refused, nothing changes.
    let out = push_as(&reader_local, &shared(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr.contains("permission denied"), "{stderr}");
    assert!(stderr.contains("needs readwrite"), "{stderr}");
    let local = reader_local.display().to_string();
    let got = node.exec(DOCKLINE, &["config", "get", "--config", &local]);
    let stdout = String::from_utf8_lossy(&got.stdout);
    assert!(
        stdout.starts_with(&format!("# {KEY} at revision {second}\n")),
        "{got:?}"
    );
    assert_eq!(revision_of(&daemon), Some(second));

    // A wrong password and a missing client certificate fail with the reason.
    let wrong_password = tls_local(
        &dir,
        "wrong-password",
        &Credentials {
            password: "not-the-secret",
            ..reader
        },
    );
    let out = push_as(&wrong_password, &shared(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr.contains("authentication failed"), "{stderr}");
    let no_certificate = tls_local(
        &dir,
        "no-certificate",
        &Credentials {
            client_certificate: false,
            ..reader
        },
    );
    let out = push_as(&no_certificate, &shared(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr.contains("set source.cert_file"), "{stderr}");

    // A node with a wrong password and no cache refuses to start, saying why.
    let log = Daemon::builder(DOCKLINE, &node)
        .config_file(&wrong_password)
        .admin("127.0.0.1:9471")
        .start_expecting_failure(&mut lab);
    assert!(log.contains("authentication failed"), "{log}");

    // With a cache it starts from it, and says etcd refused it, not that etcd is away.
    let cache = dir.join("wrong-password-cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::copy(
        dir.join("reader-cache/etcd-config.json"),
        cache.join("etcd-config.json"),
    )
    .unwrap();
    let mut refused = Daemon::builder(DOCKLINE, &node)
        .config_file(&wrong_password)
        .admin("127.0.0.1:9471")
        .env("DOCKLINE__ADMIN__LISTEN", "127.0.0.1:9471")
        .env("DOCKLINE__DNS__ENABLED", "false")
        .start(&mut lab);
    let log = refused.log();
    assert!(
        log.contains(
            "etcd refused this node's credentials; starting from the cached shared config"
        ),
        "{log}"
    );
    assert!(!log.contains("unreachable"), "{log}");
    let status = refused.status();
    let source = status["config"]["source"].as_str().unwrap_or_default();
    assert!(
        source.contains("(from the local cache: etcd refused this node's credentials)"),
        "{source}"
    );
    refused.stop();
    assert_eq!(revision_of(&daemon), Some(second));
}
