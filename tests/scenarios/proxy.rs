//! The L4 proxy in namespaces: a node running dockline, two nginx backends in their own
//! namespaces and a client. Traffic goes through the ClusterIP, the NodePort (internal IP
//! only by default, every address with the annotation "false") and the LoadBalancer IP;
//! a killed backend leaves the rotation within the health-check window; a long transfer
//! survives a reload; UDP flows echo; with no ready endpoint a connection is reset.
//! Limits and balancing: a removed endpoint drains for the grace period; idle TCP
//! connections and UDP flows time out; max_connections resets the one over the cap;
//! least-connections and Maglev pick as they promise; a hanging or unreachable backend
//! blocks nobody else; running out of descriptors is survived; the PROXY protocol header
//! shows the client's address to the endpoint.

// Test helpers fail the test by panicking, as the tests themselves do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use dockline_lab::{Daemon, DaemonBuilder, Lab, Netns, Process, http_get, wait_until};

const NODE_IP: &str = "172.30.0.11";
/// A second address of the node, where NodePorts answer only with the annotation "false".
const NODE_IP2: &str = "172.30.0.12";
const BACKENDS: [(&str, &str); 2] = [("b1", "172.30.0.21"), ("b2", "172.30.0.22")];

const CONNECTIONS: &str = "dockline_proxy_connections_total";
const ACTIVE: &str = "dockline_proxy_active_connections";
const BACKEND_UP: &str = "dockline_proxy_backend_up";
/// The labels of the `web` service's port 80, for [`CONNECTIONS`] and [`ACTIVE`].
const WEB_80: [(&str, &str); 2] = [("service", "default/web"), ("port", "80")];

/// The labels of the `web` service's endpoint `ip`, for [`BACKEND_UP`].
fn web_endpoint(ip: &str) -> [(&str, &str); 2] {
    [("service", "default/web"), ("endpoint", ip)]
}

struct Setup {
    lab: Lab,
    node: Netns,
    client: Netns,
    backends: Vec<Netns>,
    /// Name and address of each backend.
    addresses: Vec<(&'static str, &'static str)>,
}

/// Node, client and two backend namespaces on one switch; the client routes service
/// addresses via the node.
fn setup(test: &str) -> Setup {
    setup_with(test, &BACKENDS)
}

/// [`setup`] with the given backends (name, address).
fn setup_with(test: &str, addresses: &[(&'static str, &'static str)]) -> Setup {
    let mut lab = Lab::new(test);
    let lan = lab.switch("lan");
    let node = lab.host(
        &lan,
        "node",
        &[&format!("{NODE_IP}/24"), &format!("{NODE_IP2}/24")],
    );
    let client = lab.host(&lan, "client", &["172.30.0.100/24"]);
    client.sh_ok(&format!(
        "ip route add 10.222.0.0/16 via {NODE_IP} && ip route add 192.0.2.0/24 via {NODE_IP}"
    ));
    let backends = addresses
        .iter()
        .map(|(name, ip)| lab.host(&lan, name, &[&format!("{ip}/24")]))
        .collect();
    Setup {
        lab,
        node,
        client,
        backends,
        addresses: addresses.to_vec(),
    }
}

impl Setup {
    /// dockline on the node with `config`, ready.
    fn start(&mut self, config: &str) -> Daemon {
        self.dockline().config(config).start(&mut self.lab)
    }

    /// dockline on the node.
    fn dockline(&self) -> DaemonBuilder {
        Daemon::builder(env!("CARGO_BIN_EXE_dockline"), &self.node)
    }

    /// nginx on backend `i`, port 8080, serving its name at / and `big_mib` MiB (if any)
    /// at /big at 2 MiB/s.
    fn nginx(&mut self, i: usize, big_mib: usize) -> Process {
        let (name, ip) = self.addresses[i];
        let dir = self.lab.dir().join(name);
        let www = dir.join("www");
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("index.html"), name).unwrap();
        if big_mib > 0 {
            std::fs::write(www.join("big"), vec![b'x'; big_mib << 20]).unwrap();
        }
        let d = dir.to_str().unwrap();
        let server = format!("listen {ip}:8080; root {d}/www; location /big {{ limit_rate 2m; }}");
        self.nginx_serving(i, &server)
    }

    /// nginx on backend `i` with one `server { ... }` block that listens on its address,
    /// port 8080.
    fn nginx_serving(&mut self, i: usize, server: &str) -> Process {
        let (name, ip) = self.addresses[i];
        let ns = &self.backends[i];
        let dir = self.lab.dir().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.to_str().unwrap();
        let conf = format!(
            "user root;\nmaster_process off;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
              fastcgi_temp_path {d}/fastcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
              server {{ {server} }}\n}}\n"
        );
        let file = dir.join("nginx.conf");
        std::fs::write(&file, conf).unwrap();
        let process = self.lab.spawn(
            ns,
            "nginx",
            &[
                "-e",
                &format!("{d}/error.log"),
                "-c",
                file.to_str().unwrap(),
            ],
        );
        wait_until(Duration::from_secs(5), "nginx listens", || {
            ns.sh(&format!("ss -Hltn 'sport = :8080' | grep -q {ip}"))
                .status
                .success()
        });
        process
    }
}

fn web_service(annotation: bool, extra: &str) -> String {
    let annotation = if annotation {
        "annotations = { \"node.deckhouse.io/nodeport-bind-internal-ip\" = \"false\" }\n"
    } else {
        ""
    };
    format!(
        r#"
[node]
name = "node-1"
internal_ip = "{NODE_IP}"
{annotation}
[dns]
enabled = false
[[pools]]
name = "public"
addresses = ["192.0.2.10-192.0.2.20"]
[[services]]
name = "web"
type = "LoadBalancer"
cluster_ip = "10.222.0.10"
load_balancer_ip = "192.0.2.10"
ports = [{{ port = 80, target_port = 8080, node_port = 30080 }}]
health_check = {{ kind = "http", interval_ms = 200, timeout_ms = 150, rise = 1, fall = 2 }}
endpoints = [{{ ip = "172.30.0.21" }}, {{ ip = "172.30.0.22" }}]
{extra}"#
    )
}

fn body(client: &Netns, url: &str) -> Option<String> {
    http_get(client, url).and_then(|(code, body)| (code == 200).then_some(body))
}

/// The backends that answered `n` requests to `url`.
fn served_by(client: &Netns, url: &str, n: usize) -> HashSet<String> {
    (0..n).filter_map(|_| body(client, url)).collect()
}

#[test]
fn service_addresses_reach_both_backends_and_a_dead_one_leaves() {
    let mut s = setup("proxy-web");
    let b1 = s.nginx(0, 0);
    let _b2 = s.nginx(1, 0);
    let daemon = s.start(&web_service(false, ""));

    let both: HashSet<String> = ["b1", "b2"].map(String::from).into();
    for url in [
        "http://10.222.0.10/",
        &format!("http://{NODE_IP}:30080/"),
        "http://192.0.2.10/",
    ] {
        assert_eq!(served_by(&s.client, url, 6), both, "{url}");
    }
    // NodePorts listen on the internal IP only by default.
    assert_eq!(body(&s.client, &format!("http://{NODE_IP2}:30080/")), None);
    let m = daemon.metrics();
    assert!(m.value(CONNECTIONS, &WEB_80).is_some(), "{}", m.text());
    assert_eq!(
        m.value(BACKEND_UP, &web_endpoint("172.30.0.21")),
        Some(1.0),
        "{}",
        m.text()
    );

    // A dead backend leaves the rotation within the check window (fall 2 x 200 ms).
    b1.signal("KILL");
    wait_until(Duration::from_secs(3), "b1 marked down", || {
        daemon.metric(BACKEND_UP, &web_endpoint("172.30.0.21")) == Some(0.0)
    });
    assert_eq!(
        served_by(&s.client, "http://10.222.0.10/", 6),
        HashSet::from(["b2".to_owned()])
    );

    // The annotation "false" moves NodePorts to every address, without a restart.
    daemon.write_config(&web_service(true, ""));
    wait_until(
        Duration::from_secs(5),
        "the NodePort answers on the second address",
        || body(&s.client, &format!("http://{NODE_IP2}:30080/")).is_some(),
    );
    assert!(body(&s.client, &format!("http://{NODE_IP}:30080/")).is_some());
}

#[test]
fn a_long_transfer_survives_a_reload_that_adds_a_service() {
    let mut s = setup("proxy-reload");
    let _b1 = s.nginx(0, 8);
    let _b2 = s.nginx(1, 8);
    let daemon = s.start(&web_service(false, ""));

    let out = s.lab.dir().join("big.out");
    // About 4 s at nginx's 2 MiB/s, so the reload lands mid-transfer.
    let mut curl = s.lab.spawn(
        &s.client,
        "curl",
        &[
            "-sS",
            "--fail",
            "-o",
            out.to_str().unwrap(),
            "http://10.222.0.10/big",
        ],
    );
    std::thread::sleep(Duration::from_millis(700));
    let api = "[[services]]\nname = \"api\"\ncluster_ip = \"10.222.0.20\"\nports = [{ port = 80, target_port = 8080 }]\nendpoints = [{ ip = \"172.30.0.22\" }]\n";
    daemon.write_config(&web_service(false, api));
    wait_until(Duration::from_secs(5), "the added service answers", || {
        body(&s.client, "http://10.222.0.20/").is_some_and(|b| b == "b2")
    });
    assert!(curl.is_running(), "the transfer ended before the reload");
    let status = curl
        .wait_timeout(Duration::from_secs(15))
        .expect("curl ends");
    assert!(status.success(), "{}", curl.log());
    assert_eq!(file_len(&out), 8 << 20);
    // Every byte counted once: the body, plus a few headers and the small answers above.
    let to_client = daemon
        .metric("dockline_proxy_bytes_total", &[("direction", "to_client")])
        .expect("bytes counted");
    assert!(
        ((8 << 20) as f64..(8 << 20) as f64 + 65536.0).contains(&to_client),
        "{to_client}"
    );

    // The added service's series appear, and go when it is removed again.
    let has_api_series = || {
        daemon
            .metrics()
            .samples()
            .iter()
            .any(|sample| sample.has_labels(&[("service", "default/api")]))
    };
    assert!(has_api_series());
    daemon.write_config(&web_service(false, ""));
    wait_until(
        Duration::from_secs(5),
        "the removed service's series go",
        || !has_api_series(),
    );
    let m = daemon.metrics();
    assert!(m.value(CONNECTIONS, &WEB_80).is_some(), "{}", m.text());
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[test]
fn udp_datagrams_echo_through_a_udp_service() {
    let mut s = setup("proxy-udp");
    let echo = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('172.30.0.21',5300))\nwhile True:\n d,a=s.recvfrom(65536)\n s.sendto(b'echo:'+d,a)\n";
    let _echo = s.lab.spawn(&s.backends[0], "python3", &["-c", echo]);
    let config = format!(
        r#"
[node]
name = "node-1"
internal_ip = "{NODE_IP}"
[dns]
enabled = false
[[services]]
name = "echo"
cluster_ip = "10.222.0.30"
ports = [{{ protocol = "UDP", port = 53, target_port = 5300 }}]
endpoints = [{{ ip = "172.30.0.21" }}]
"#
    );
    let _daemon = s.start(&config);
    let ask = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(0.5)\n\
               for i in range(3):\n s.sendto(b'ping%d'%i,('10.222.0.30',53))\n print(s.recvfrom(100)[0].decode())\n";
    wait_until(
        Duration::from_secs(5),
        "UDP echo through the ClusterIP",
        || {
            let out = s.client.exec("python3", &["-c", ask]);
            String::from_utf8_lossy(&out.stdout) == "echo:ping0\necho:ping1\necho:ping2\n"
        },
    );
}

#[test]
fn without_a_ready_endpoint_connections_are_reset_and_a_busy_port_fails_the_start() {
    let mut s = setup("proxy-reset");
    let config = format!(
        r#"
[node]
name = "node-1"
internal_ip = "{NODE_IP}"
[dns]
enabled = false
[[services]]
name = "down"
cluster_ip = "10.222.0.40"
ports = [{{ port = 80 }}]
endpoints = [{{ ip = "172.30.0.21", ready = false }}]
"#
    );
    let mut daemon = s.start(&config);
    let out = s
        .client
        .exec("curl", &["-sS", "-m", "3", "http://10.222.0.40/"]);
    let err = String::from_utf8_lossy(&out.stderr);
    // The RST arrives right after the handshake: curl fails to connect (7) or to receive
    // (56), at once; a hung connection would be its timeout (28).
    assert!(matches!(out.status.code(), Some(7 | 56)), "{err}");
    daemon.stop();

    // A port already in use stops the start with an error naming the address.
    let _squatter = s.lab.spawn(
        &s.node,
        "python3",
        &["-m", "http.server", "--bind", NODE_IP, "30099"],
    );
    wait_until(Duration::from_secs(5), "squatter listens", || {
        s.node
            .sh("ss -Hltn 'sport = :30099' | grep -q LISTEN")
            .status
            .success()
    });
    let busy = config.replace(
        "ports = [{ port = 80 }]",
        "type = \"NodePort\"\nports = [{ port = 80, node_port = 30099 }]",
    );
    let log = s
        .dockline()
        .config(&busy)
        .start_expecting_failure(&mut s.lab);
    assert!(
        log.contains("cannot listen on 172.30.0.11:30099/TCP"),
        "{log}"
    );
}

/// The `web` service (LoadBalancer 192.0.2.10, ClusterIP 10.222.0.10, port 80 -> 8080,
/// HTTP checks) on `endpoints`, with extra service keys and `[proxy]` keys.
fn web(endpoints: &[&str], service_keys: &str, proxy_keys: &str) -> String {
    let endpoints: Vec<String> = endpoints
        .iter()
        .map(|ip| format!("{{ ip = \"{ip}\" }}"))
        .collect();
    format!(
        r#"
[node]
name = "node-1"
internal_ip = "{NODE_IP}"
[dns]
enabled = false
[proxy]
{proxy_keys}
[[pools]]
name = "public"
addresses = ["192.0.2.10-192.0.2.20"]
[[services]]
name = "web"
type = "LoadBalancer"
cluster_ip = "10.222.0.10"
load_balancer_ip = "192.0.2.10"
ports = [{{ port = 80, target_port = 8080 }}]
health_check = {{ kind = "http", interval_ms = 200, timeout_ms = 150, rise = 1, fall = 2 }}
endpoints = [{}]
{service_keys}
"#,
        endpoints.join(", ")
    )
}

/// A client holding `n` keep-alive HTTP connections to `host:port` (from `source`, if
/// given). Each asks once on connect; then every `every` seconds it asks again on each
/// (0: never, it only waits for the proxy to close them). It prints `I BODY` per answer on
/// connection I and `I closed` when that connection ends; it exits when all have.
const HOLD: &str = r#"
import select, socket, sys
host, port, every, n, source = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
def ask(s, f):
    s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    length = 0
    while True:
        line = f.readline()
        if not line:
            raise EOFError
        if line.strip() == b"":
            break
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-length":
            length = int(value)
    body = f.read(length)
    if len(body) < length:
        raise EOFError
    return body.decode()
conns = {}
for i in range(n):
    s = socket.create_connection((host, port), source_address=(source, 0) if source else None)
    f = s.makefile("rb")
    print(i, ask(s, f), flush=True)
    conns[i] = (s, f)
while conns:
    if every > 0:
        select.select([], [], [], every)
        ready = list(conns)
    else:
        readable, _, _ = select.select([s for s, _ in conns.values()], [], [])
        ready = [i for i, (s, _) in conns.items() if s in readable]
    for i in ready:
        s, f = conns[i]
        try:
            if every <= 0:
                raise EOFError
            print(i, ask(s, f), flush=True)
        except (OSError, EOFError):
            print(i, "closed", flush=True)
            del conns[i]
"#;

fn hold(lab: &mut Lab, client: &Netns, host: &str, every: f64, n: usize) -> Process {
    hold_from(lab, client, host, every, n, "")
}

fn hold_from(
    lab: &mut Lab,
    client: &Netns,
    host: &str,
    every: f64,
    n: usize,
    source: &str,
) -> Process {
    let p = lab.spawn(
        client,
        "python3",
        &[
            "-c",
            HOLD,
            host,
            "80",
            &every.to_string(),
            &n.to_string(),
            source,
        ],
    );
    wait_until(Duration::from_secs(5), "held connections answered", || {
        (0..n).all(|i| !answers(&p, i).is_empty())
    });
    p
}

/// The backends that answered on connection `conn` of a `hold` process, in order.
fn answers(p: &Process, conn: usize) -> Vec<String> {
    let prefix = format!("{conn} ");
    p.log()
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter(|b| *b != "closed")
        .map(str::to_owned)
        .collect()
}

fn closed(p: &Process, conn: usize) -> bool {
    p.log().lines().any(|l| l == format!("{conn} closed"))
}

/// curl's exit code for one request: 7 (cannot connect) or 56 (connection reset) mean
/// refused at once, 28 would be its own timeout (a hang).
fn curl_exit_code(client: &Netns, url: &str) -> Option<i32> {
    client.exec("curl", &["-sS", "-m", "3", url]).status.code()
}

#[test]
fn a_removed_endpoint_drains_its_connections_for_the_grace_period() {
    let mut s = setup("proxy-drain");
    let _b1 = s.nginx(0, 0);
    let _b2 = s.nginx(1, 0);
    let both = [BACKENDS[0].1, BACKENDS[1].1];
    let grace = Duration::from_secs(4);
    let proxy = format!("drain_grace_s = {}", grace.as_secs());
    let daemon = s.start(&web(&both, "", &proxy));

    // An interactive connection asking every 200 ms.
    let mut held = hold(&mut s.lab, &s.client, "192.0.2.10", 0.2, 1);
    let old = answers(&held, 0)[0].clone();
    let (kept, kept_ip) = if old == "b1" {
        BACKENDS[1]
    } else {
        BACKENDS[0]
    };

    let before_reload = daemon.metric(CONNECTIONS, &WEB_80).unwrap();
    assert!(before_reload >= 1.0);
    let reloaded = std::time::Instant::now();
    daemon.write_config(&web(&[kept_ip], "", &proxy));
    wait_until(
        Duration::from_secs(5),
        "new connections avoid the removed endpoint",
        || served_by(&s.client, "http://192.0.2.10/", 4) == HashSet::from([kept.to_owned()]),
    );
    // The removed endpoint's series is gone, the kept one's stays; the service's counter
    // went on from where it was.
    let m = daemon.metrics();
    let removed_ip = if kept_ip == BACKENDS[0].1 {
        BACKENDS[1].1
    } else {
        BACKENDS[0].1
    };
    let up = |ip| m.value(BACKEND_UP, &web_endpoint(ip));
    assert_eq!(up(kept_ip), Some(1.0), "{}", m.text());
    assert_eq!(up(removed_ip), None, "{}", m.text());
    assert!(
        m.value(CONNECTIONS, &WEB_80).unwrap() >= before_reload + 4.0,
        "{}",
        m.text()
    );
    // The established connection keeps talking to its old backend meanwhile.
    let before = answers(&held, 0).len();
    wait_until(
        Duration::from_secs(2),
        "the drained connection still passes data",
        || answers(&held, 0).len() >= before + 3,
    );
    assert!(
        answers(&held, 0).iter().all(|b| *b == old),
        "{}",
        held.log()
    );
    assert!(
        !closed(&held, 0),
        "closed before the grace ended: {}",
        held.log()
    );

    // Closed once the grace is over (it started after the file was written).
    wait_until(
        grace + Duration::from_secs(5),
        "the drained connection is closed",
        || closed(&held, 0),
    );
    assert!(
        reloaded.elapsed() >= grace,
        "closed {:?} after the reload, before the grace of {grace:?}",
        reloaded.elapsed()
    );
    held.wait_timeout(Duration::from_secs(2))
        .expect("the client ends");
    assert_eq!(body(&s.client, "http://192.0.2.10/").as_deref(), Some(kept));
}

#[test]
fn idle_tcp_connections_and_udp_flows_time_out_and_active_ones_stay() {
    let mut s = setup("proxy-idle");
    let _b1 = s.nginx(0, 0);
    // Answers each datagram with the source port it came from: a new port is a new flow.
    let echo = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('172.30.0.22',5300))\nwhile True:\n d,a=s.recvfrom(65536)\n s.sendto(b'%d'%a[1],a)\n";
    let _echo = s.lab.spawn(&s.backends[1], "python3", &["-c", echo]);
    let idle = Duration::from_secs(2);
    let udp = "[[services]]\nname = \"echo\"\ncluster_ip = \"10.222.0.30\"\nports = [{ protocol = \"UDP\", port = 53, target_port = 5300 }]\nendpoints = [{ ip = \"172.30.0.22\" }]\n";
    let proxy = format!(
        "idle_timeout_s = {}\nudp_idle_timeout_s = 1",
        idle.as_secs()
    );
    let config = web(&[BACKENDS[0].1], udp, &proxy);
    let daemon = s.start(&config);

    let active = hold(&mut s.lab, &s.client, "192.0.2.10", 0.3, 1);
    let quiet = hold(&mut s.lab, &s.client, "192.0.2.10", 0.0, 1);
    let quiet_since = std::time::Instant::now();
    wait_until(
        idle + Duration::from_secs(5),
        "the idle connection is closed",
        || closed(&quiet, 0),
    );
    assert!(
        quiet_since.elapsed() >= idle - Duration::from_millis(500),
        "closed after {:?}, idle timeout {idle:?}",
        quiet_since.elapsed()
    );
    // The active one outlives twice the idle timeout.
    wait_until(
        idle * 3 + Duration::from_secs(3),
        "the active connection keeps going",
        || answers(&active, 0).len() >= 15,
    );
    assert!(!closed(&active, 0), "{}", active.log());

    // Two datagrams from one client port share a flow (one upstream port at the echo
    // server); once the flow has idled out, the next datagram opens a new one.
    let ask = "import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('172.30.0.100',40000))\ns.settimeout(1)\n\
               for i in range(int(sys.argv[1])):\n s.sendto(b'x',('10.222.0.30',53))\n print(s.recvfrom(100)[0].decode())\n";
    let ports = |n: &str| -> Vec<String> {
        let out = s.client.exec("python3", &["-c", ask, n]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let mut first = Vec::new();
    wait_until(Duration::from_secs(5), "UDP echo", || {
        first = ports("2");
        first.len() == 2
    });
    assert_eq!(first[0], first[1], "one flow for one client address");
    let flows = [("service", "default/echo"), ("port", "53")];
    wait_until(Duration::from_secs(5), "the UDP flow idles out", || {
        daemon.metric(ACTIVE, &flows) == Some(0.0)
    });
    let again = ports("1");
    assert_eq!(again.len(), 1);
    assert_ne!(again[0], first[0], "a new flow after the idle timeout");
}

#[test]
fn max_connections_resets_the_one_over_the_cap_and_metrics_count_it() {
    let mut s = setup("proxy-cap");
    let _b1 = s.nginx(0, 0);
    let _b2 = s.nginx(1, 0);
    let config = web(&[BACKENDS[0].1, BACKENDS[1].1], "max_connections = 3", "");
    let daemon = s.start(&config);

    let held: Vec<Process> = (0..3)
        .map(|_| hold(&mut s.lab, &s.client, "192.0.2.10", 0.2, 1))
        .collect();
    let code = curl_exit_code(&s.client, "http://192.0.2.10/");
    assert!(
        matches!(code, Some(7 | 56)),
        "the 4th connection: curl exit {code:?}"
    );
    let counts: Vec<usize> = held.iter().map(|p| answers(p, 0).len()).collect();
    wait_until(
        Duration::from_secs(3),
        "the 3 held connections keep working",
        || {
            held.iter()
                .zip(&counts)
                .all(|(p, c)| answers(p, 0).len() >= c + 2)
        },
    );

    let m = daemon.metrics();
    let value = |name: &str, labels: &[(&str, &str)]| {
        m.value(name, labels)
            .unwrap_or_else(|| panic!("{name} {labels:?}: {}", m.text()))
    };
    assert_eq!(value(ACTIVE, &WEB_80), 3.0);
    assert!(value(CONNECTIONS, &WEB_80) >= 4.0);
    assert!(
        value(
            "dockline_proxy_refused_total",
            &[("reason", "max_connections")]
        ) >= 1.0
    );
    assert!(value("dockline_proxy_bytes_total", &[("direction", "to_backend")]) > 0.0);
    assert!(value("dockline_proxy_bytes_total", &[("direction", "to_client")]) > 0.0);
    assert_eq!(value("dockline_proxy_connect_errors_total", &[]), 0.0);
    for (_, ip) in BACKENDS {
        assert_eq!(value(BACKEND_UP, &web_endpoint(ip)), 1.0);
    }

    // Closing one frees a place.
    held[0].signal("KILL");
    wait_until(
        Duration::from_secs(5),
        "a new connection fits again",
        || body(&s.client, "http://192.0.2.10/").is_some(),
    );
    let counts: Vec<usize> = held[1..].iter().map(|p| answers(p, 0).len()).collect();
    wait_until(Duration::from_secs(3), "the other two still work", || {
        held[1..]
            .iter()
            .zip(&counts)
            .all(|(p, c)| answers(p, 0).len() >= c + 2)
    });
}

#[test]
fn least_connections_sends_new_connections_to_the_less_busy_backend() {
    let mut s = setup("proxy-leastconn");
    let _b1 = s.nginx(0, 0);
    let _b2 = s.nginx(1, 0);
    let lc = "load_balancing = \"LeastConnections\"";
    let daemon = s.start(&web(&[BACKENDS[0].1], lc, ""));

    // Three long-held connections on b1, the only endpoint for now.
    let mut on_b1 = hold(&mut s.lab, &s.client, "192.0.2.10", 0.0, 3);
    assert!(
        (0..3).all(|i| answers(&on_b1, i) == ["b1"]),
        "{}",
        on_b1.log()
    );
    // b2 joins: every new connection goes there while b1 holds more.
    daemon.write_config(&web(&[BACKENDS[0].1, BACKENDS[1].1], lc, ""));
    wait_until(Duration::from_secs(5), "b2 takes connections", || {
        body(&s.client, "http://192.0.2.10/").as_deref() == Some("b2")
    });
    assert_eq!(
        served_by(&s.client, "http://192.0.2.10/", 6),
        HashSet::from(["b2".to_owned()])
    );
    let on_b2 = hold(&mut s.lab, &s.client, "192.0.2.10", 0.0, 2);
    assert!(
        (0..2).all(|i| answers(&on_b2, i) == ["b2"]),
        "{}",
        on_b2.log()
    );

    // Once b1's connections close, the two are even again and share.
    on_b1.signal("KILL");
    on_b1
        .wait_timeout(Duration::from_secs(2))
        .expect("client ends");
    wait_until(Duration::from_secs(5), "b1 takes connections again", || {
        body(&s.client, "http://192.0.2.10/").as_deref() == Some("b1")
    });
}

/// `n` answers to GET `url` from the client's address `source`.
fn bodies_from(client: &Netns, source: &str, url: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let out = client.exec("curl", &["-s", "-m", "2", "--interface", source, url]);
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect()
}

#[test]
fn maglev_keeps_each_client_on_its_backend_when_another_goes() {
    let three = [BACKENDS[0], BACKENDS[1], ("b3", "172.30.0.23")];
    let mut s = setup_with("proxy-maglev", &three);
    for i in 0..three.len() {
        s.nginx(i, 0);
    }
    // Eight client addresses.
    let sources: Vec<String> = (101..=108).map(|i| format!("172.30.0.{i}")).collect();
    for source in &sources {
        s.client
            .ip(&["addr", "add", &format!("{source}/24"), "dev", "eth0"]);
    }
    let ips: Vec<&str> = three.iter().map(|(_, ip)| *ip).collect();
    let maglev = "load_balancing = \"Maglev\"";
    let daemon = s.start(&web(&ips, maglev, ""));
    wait_until(Duration::from_secs(5), "all three backends up", || {
        let m = daemon.metrics();
        ips.iter()
            .all(|ip| m.value(BACKEND_UP, &web_endpoint(ip)) == Some(1.0))
    });

    // Each client address always reaches one backend.
    let url = "http://192.0.2.10/";
    let backend_of = |source: &str| -> String {
        let seen = bodies_from(&s.client, source, url, 5);
        assert!(seen.iter().all(|b| *b == seen[0]), "{source}: {seen:?}");
        seen[0].clone()
    };
    let before: Vec<String> = sources.iter().map(|s| backend_of(s)).collect();
    let used: HashSet<&String> = before.iter().collect();
    assert!(
        used.len() >= 2,
        "all clients hash to one backend: {before:?}"
    );

    // The backend of the first client goes.
    let gone = before[0].clone();
    let kept: Vec<&str> = three
        .iter()
        .filter(|(name, _)| *name != gone)
        .map(|(_, ip)| *ip)
        .collect();
    daemon.write_config(&web(&kept, maglev, ""));
    wait_until(
        Duration::from_secs(5),
        "the removed backend gets no client",
        || bodies_from(&s.client, &sources[0], url, 1)[0] != gone,
    );
    for (source, old) in sources.iter().zip(&before) {
        let now = backend_of(source);
        if *old == gone {
            assert_ne!(now, gone, "{source}");
        } else {
            assert_eq!(now, *old, "{source} moved off a backend that stayed");
        }
    }
}

#[test]
fn a_hanging_or_unreachable_backend_does_not_block_other_services() {
    let mut s = setup("proxy-hang");
    let _b1 = s.nginx(0, 0);
    // "mute" accepts connections and never answers; "hole" points at an address nobody
    // has, so no SYN-ACK ever comes and the connect times out.
    let mute = "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('172.30.0.22',9000))\ns.listen(64)\nheld=[]\nwhile True:\n held.append(s.accept())\n";
    let _mute = s.lab.spawn(&s.backends[1], "python3", &["-c", mute]);
    wait_until(Duration::from_secs(5), "mute listens", || {
        s.backends[1]
            .sh("ss -Hltn 'sport = :9000' | grep -q LISTEN")
            .status
            .success()
    });
    let others = "[[services]]\nname = \"hole\"\ncluster_ip = \"10.222.0.50\"\nports = [{ port = 80, target_port = 8080 }]\nendpoints = [{ ip = \"172.30.0.99\" }]\n\
                  [[services]]\nname = \"mute\"\ncluster_ip = \"10.222.0.51\"\nports = [{ port = 80, target_port = 9000 }]\nendpoints = [{ ip = \"172.30.0.22\" }]\n";
    let config = web(&[BACKENDS[0].1], others, "connect_timeout_ms = 500");
    let daemon = s.start(&config);

    let mut stuck: Vec<Process> = Vec::new();
    for url in ["http://10.222.0.50/", "http://10.222.0.51/"] {
        for _ in 0..4 {
            stuck.push(s.lab.spawn(&s.client, "curl", &["-sS", "-m", "20", url]));
        }
    }
    // Meanwhile the web service answers every request (each within curl's 2 s limit).
    for _ in 0..10 {
        assert_eq!(
            body(&s.client, "http://10.222.0.10/").as_deref(),
            Some("b1")
        );
    }
    // The unreachable backend's clients are reset once the connect times out.
    for curl in &mut stuck[..4] {
        let status = curl
            .wait_timeout(Duration::from_secs(5))
            .expect("reset, not hung");
        assert!(
            matches!(status.code(), Some(7 | 56)),
            "{status}: {}",
            curl.log()
        );
    }
    // The mute backend's clients wait on it, and only they do.
    assert!(stuck[4..].iter_mut().all(Process::is_running));
    assert_eq!(
        body(&s.client, "http://10.222.0.10/").as_deref(),
        Some("b1")
    );
    let errors = daemon
        .metric("dockline_proxy_connect_errors_total", &[])
        .unwrap();
    assert!(errors >= 4.0, "connect errors: {errors}");
    assert!(
        daemon.log().contains("connect timed out"),
        "{}",
        daemon.log()
    );
}

/// CPU time (user + system, in clock ticks) the process has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn running_out_of_descriptors_is_logged_and_survived() {
    let mut s = setup("proxy-nofile");
    let _b1 = s.nginx(0, 0);
    let config = web(&[BACKENDS[0].1], "", "").replace("health_check", "# health_check");
    let mut daemon = s.start(&config);
    let pid = daemon.pid();
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    // Room for a dozen proxied connections, then no more.
    let limit = (open + 48).to_string();
    s.node
        .sh_ok(&format!("prlimit --pid {pid} --nofile={limit}:{limit}"));

    // Far more connections than descriptors, each asking once and then held.
    let flood = "import socket,time\nsocks=[]\nfor i in range(200):\n s=socket.create_connection(('192.0.2.10',80))\n s.sendall(b'GET / HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n')\n socks.append(s)\nprint('open',flush=True)\ntime.sleep(600)\n";
    let flood = s.lab.spawn(&s.client, "python3", &["-c", flood]);
    wait_until(Duration::from_secs(10), "the flood is open", || {
        flood.log().contains("open")
    });
    wait_until(
        Duration::from_secs(10),
        "the daemon logs the exhaustion",
        || daemon.log().contains("Too many open files"),
    );
    let exhausted = std::time::Instant::now();
    // Out of descriptors, it waits rather than spins: well under half a core.
    let ticks = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(pid) - ticks;
    assert!(
        used < 100,
        "{used} ticks of CPU in 2 s while out of descriptors"
    );
    assert!(daemon.is_running(), "{}", daemon.log());

    // Once the clients go, it serves again.
    flood.signal("KILL");
    wait_until(
        Duration::from_secs(15),
        "new connections are served again",
        || body(&s.client, "http://192.0.2.10/").as_deref() == Some("b1"),
    );
    let m = daemon.metrics();
    assert!(
        m.value("dockline_proxy_listen_errors_total", &[]).unwrap() >= 1.0,
        "{}",
        m.text()
    );
    // Logged, not flooded: at most once a second while it lasted.
    let logged = daemon.log().matches("Too many open files").count();
    let most = exhausted.elapsed().as_secs() as usize + 2;
    assert!(
        (1..=most).contains(&logged),
        "{logged} errors logged, {most} at most"
    );
}

#[test]
fn the_proxy_protocol_shows_the_client_address_to_a_local_endpoint() {
    let mut s = setup("proxy-pp");
    // IPv6 too: the client and the backend have addresses in fd00::/64, the node routes.
    s.node
        .ip(&["-6", "addr", "add", "fd00::11/64", "dev", "eth0", "nodad"]);
    s.client
        .ip(&["-6", "addr", "add", "fd00::100/64", "dev", "eth0", "nodad"]);
    s.client
        .ip(&["-6", "route", "add", "2001:db8:1::/64", "via", "fd00::11"]);
    s.backends[0].ip(&["-6", "addr", "add", "fd00::21/64", "dev", "eth0", "nodad"]);
    // nginx expects the header and answers with what it learnt from it.
    let server = format!(
        "listen {}:8080 proxy_protocol; listen [fd00::21]:8080 proxy_protocol; \
         return 200 \"$proxy_protocol_addr:$proxy_protocol_port>$proxy_protocol_server_addr:$proxy_protocol_server_port\";",
        BACKENDS[0].1
    );
    let _b1 = s.nginx_serving(0, &server);
    let service = |version: &str| {
        format!(
            r#"
[node]
name = "node-1"
internal_ip = "{NODE_IP}"
[dns]
enabled = false
[[pools]]
name = "public"
addresses = ["192.0.2.10-192.0.2.20", "2001:db8:1::/124"]
[[services]]
name = "web"
type = "LoadBalancer"
cluster_ip = "10.222.0.10"
load_balancer_ip = "192.0.2.10"
external_traffic_policy = "Local"
proxy_protocol = "{version}"
ports = [{{ port = 80, target_port = 8080, node_port = 30080 }}]
endpoints = [{{ ip = "{}", node = "node-1" }}]
[[services]]
name = "web6"
type = "LoadBalancer"
cluster_ip = "10.222.0.11"
load_balancer_ip = "2001:db8:1::a"
external_traffic_policy = "Local"
proxy_protocol = "{version}"
ports = [{{ port = 80, target_port = 8080, node_port = 30081 }}]
endpoints = [{{ ip = "fd00::21", node = "node-1" }}]
"#,
            BACKENDS[0].1
        )
    };
    let daemon = s.start(&service("v2"));
    s.client
        .ip(&["addr", "add", "172.30.0.101/24", "dev", "eth0"]);

    // The client's own address and port, and the service address it connected to.
    let seen = |source: &str, url: &str| -> (String, String) {
        let out = s.client.exec(
            "curl",
            &[
                "-gsS",
                "-m",
                "2",
                "--interface",
                source,
                "--local-port",
                "40100-40199",
                url,
            ],
        );
        let body = String::from_utf8_lossy(&out.stdout).into_owned();
        let (from, to) = body
            .split_once('>')
            .unwrap_or_else(|| panic!("{url}: {body:?} {out:?}"));
        let (ip, port) = from.rsplit_once(':').unwrap();
        assert!(
            (40100..40200).contains(&port.parse::<u16>().unwrap()),
            "{body}"
        );
        (ip.to_owned(), to.to_owned())
    };
    assert_eq!(
        seen("172.30.0.100", "http://192.0.2.10/"),
        ("172.30.0.100".to_owned(), "192.0.2.10:80".to_owned())
    );
    assert_eq!(
        seen("172.30.0.101", "http://192.0.2.10/"),
        ("172.30.0.101".to_owned(), "192.0.2.10:80".to_owned())
    );
    assert_eq!(
        seen("172.30.0.101", &format!("http://{NODE_IP}:30080/")),
        ("172.30.0.101".to_owned(), format!("{NODE_IP}:30080"))
    );
    // IPv6 end to end, and an IPv4 client of an IPv6 endpoint: the header carries
    // IPv4-mapped addresses, which nginx shows as IPv4.
    assert_eq!(
        seen("fd00::100", "http://[2001:db8:1::a]/"),
        ("fd00::100".to_owned(), "2001:db8:1::a:80".to_owned())
    );
    assert_eq!(
        seen("172.30.0.100", "http://10.222.0.11/"),
        ("172.30.0.100".to_owned(), "10.222.0.11:80".to_owned())
    );

    // Version 1 (text) after a reload; without the header nginx refuses the request.
    let daemon = &daemon;
    let reloaded = |n: usize| move || daemon.log().matches("proxy reloaded").count() >= n;
    daemon.write_config(&service("v1"));
    wait_until(
        Duration::from_secs(5),
        "the reload to v1 applies",
        reloaded(1),
    );
    assert_eq!(
        seen("172.30.0.101", "http://192.0.2.10/"),
        ("172.30.0.101".to_owned(), "192.0.2.10:80".to_owned())
    );
    daemon.write_config(&service("none"));
    wait_until(
        Duration::from_secs(5),
        "the reload to none applies",
        reloaded(2),
    );
    assert_eq!(http_get(&s.client, "http://192.0.2.10/"), None);
    let errors = std::fs::read_to_string(s.lab.dir().join("b1/error.log")).unwrap();
    assert!(errors.contains("broken header"), "{errors}");
}
