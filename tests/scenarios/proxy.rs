//! The L4 proxy in namespaces: a node running dockline, two nginx backends in their own
//! namespaces and a client. Traffic goes through the ClusterIP, the NodePort (internal IP
//! only by default, every address with the annotation "false") and the LoadBalancer IP;
//! a killed backend leaves the rotation within the health-check window; a long transfer
//! survives a reload; UDP flows echo; with no ready endpoint a connection is reset.

// Test helpers fail the test by panicking, as the tests themselves do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use dockline_lab::{Lab, Netns, Process, http_get, wait_until};

const DOCKLINE: &str = env!("CARGO_BIN_EXE_dockline");
const NODE_IP: &str = "172.30.0.11";
/// A second address of the node, where NodePorts answer only with the annotation "false".
const NODE_IP2: &str = "172.30.0.12";
const BACKENDS: [(&str, &str); 2] = [("b1", "172.30.0.21"), ("b2", "172.30.0.22")];

struct Setup {
    lab: Lab,
    node: Netns,
    client: Netns,
    backends: Vec<Netns>,
}

/// Node, client and two backend namespaces on one switch; the client routes service
/// addresses via the node.
fn setup(test: &str) -> Setup {
    let mut lab = Lab::new(test);
    let lan = lab.switch("lan");
    let node = lab.netns("node");
    let client = lab.netns("client");
    lab.attach(
        &lan,
        &node,
        "eth0",
        &[&format!("{NODE_IP}/24"), &format!("{NODE_IP2}/24")],
    );
    lab.attach(&lan, &client, "eth0", &["172.30.0.100/24"]);
    client.sh_ok(&format!(
        "ip route add 10.222.0.0/16 via {NODE_IP} && ip route add 192.0.2.0/24 via {NODE_IP}"
    ));
    let backends = BACKENDS
        .iter()
        .map(|(name, ip)| {
            let ns = lab.netns(name);
            lab.attach(&lan, &ns, "eth0", &[&format!("{ip}/24")]);
            ns
        })
        .collect();
    Setup {
        lab,
        node,
        client,
        backends,
    }
}

/// nginx on `ip:8080` in `ns`, serving its name at / and `big_mib` MiB (if any) at /big
/// at 2 MiB/s.
fn nginx(lab: &mut Lab, ns: &Netns, name: &str, ip: &str, big_mib: usize) -> Process {
    let dir = lab.dir().join(name);
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), name).unwrap();
    if big_mib > 0 {
        std::fs::write(www.join("big"), vec![b'x'; big_mib << 20]).unwrap();
    }
    let d = dir.to_str().unwrap();
    let conf = format!(
        "user root;\nmaster_process off;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 512; }}\n\
         http {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
          fastcgi_temp_path {d}/fastcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
          server {{ listen {ip}:8080; root {d}/www; location /big {{ limit_rate 2m; }} }}\n}}\n"
    );
    let file = dir.join("nginx.conf");
    std::fs::write(&file, conf).unwrap();
    let process = lab.spawn(
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

fn start(lab: &mut Lab, node: &Netns, config: &str) -> (Process, std::path::PathBuf) {
    let file = lab.dir().join("dockline.toml");
    std::fs::write(&file, config).unwrap();
    let daemon = lab.spawn(node, DOCKLINE, &["run", "--config", file.to_str().unwrap()]);
    wait_until(Duration::from_secs(10), "dockline ready", || {
        http_get(node, "http://127.0.0.1:9470/readyz").is_some_and(|(c, _)| c == 200)
    });
    (daemon, file)
}

fn body(client: &Netns, url: &str) -> Option<String> {
    http_get(client, url).and_then(|(code, body)| (code == 200).then_some(body))
}

/// The backends that answered `n` requests to `url`.
fn served_by(client: &Netns, url: &str, n: usize) -> HashSet<String> {
    (0..n).filter_map(|_| body(client, url)).collect()
}

fn metrics(node: &Netns) -> String {
    http_get(node, "http://127.0.0.1:9470/metrics").unwrap().1
}

#[test]
fn service_addresses_reach_both_backends_and_a_dead_one_leaves() {
    let Setup {
        mut lab,
        node,
        client,
        backends,
    } = setup("proxy-web");
    let b1 = nginx(&mut lab, &backends[0], "b1", BACKENDS[0].1, 0);
    let _b2 = nginx(&mut lab, &backends[1], "b2", BACKENDS[1].1, 0);
    let (_daemon, file) = start(&mut lab, &node, &web_service(false, ""));

    let both: HashSet<String> = ["b1", "b2"].map(String::from).into();
    for url in [
        "http://10.222.0.10/",
        &format!("http://{NODE_IP}:30080/"),
        "http://192.0.2.10/",
    ] {
        assert_eq!(served_by(&client, url, 6), both, "{url}");
    }
    // NodePorts listen on the internal IP only by default.
    assert_eq!(body(&client, &format!("http://{NODE_IP2}:30080/")), None);
    let m = metrics(&node);
    assert!(
        m.contains(r#"dockline_proxy_connections_total{service="default/web",port="80"}"#),
        "{m}"
    );
    assert!(
        m.contains(r#"dockline_proxy_backend_up{service="default/web",endpoint="172.30.0.21"} 1"#),
        "{m}"
    );

    // A dead backend leaves the rotation within the check window (fall 2 x 200 ms).
    b1.signal("KILL");
    wait_until(Duration::from_secs(3), "b1 marked down", || {
        metrics(&node).contains(
            r#"dockline_proxy_backend_up{service="default/web",endpoint="172.30.0.21"} 0"#,
        )
    });
    assert_eq!(
        served_by(&client, "http://10.222.0.10/", 6),
        HashSet::from(["b2".to_owned()])
    );

    // The annotation "false" moves NodePorts to every address, without a restart.
    std::fs::write(&file, web_service(true, "")).unwrap();
    wait_until(
        Duration::from_secs(5),
        "the NodePort answers on the second address",
        || body(&client, &format!("http://{NODE_IP2}:30080/")).is_some(),
    );
    assert!(body(&client, &format!("http://{NODE_IP}:30080/")).is_some());
}

#[test]
fn a_long_transfer_survives_a_reload_that_adds_a_service() {
    let Setup {
        mut lab,
        node,
        client,
        backends,
    } = setup("proxy-reload");
    let _b1 = nginx(&mut lab, &backends[0], "b1", BACKENDS[0].1, 8);
    let _b2 = nginx(&mut lab, &backends[1], "b2", BACKENDS[1].1, 8);
    let (_daemon, file) = start(&mut lab, &node, &web_service(false, ""));

    let out = lab.dir().join("big.out");
    // About 4 s at nginx's 2 MiB/s, so the reload lands mid-transfer.
    let mut curl = lab.spawn(
        &client,
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
    std::fs::write(&file, web_service(false, api)).unwrap();
    wait_until(Duration::from_secs(5), "the added service answers", || {
        body(&client, "http://10.222.0.20/").is_some_and(|b| b == "b2")
    });
    assert!(curl.is_running(), "the transfer ended before the reload");
    let status = curl
        .wait_timeout(Duration::from_secs(15))
        .expect("curl ends");
    assert!(status.success(), "{}", curl.log());
    assert_eq!(file_len(&out), 8 << 20);
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[test]
fn udp_datagrams_echo_through_a_udp_service() {
    let Setup {
        mut lab,
        node,
        client,
        backends,
    } = setup("proxy-udp");
    let echo = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('172.30.0.21',5300))\nwhile True:\n d,a=s.recvfrom(65536)\n s.sendto(b'echo:'+d,a)\n";
    let _echo = lab.spawn(&backends[0], "python3", &["-c", echo]);
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
    let (_daemon, _) = start(&mut lab, &node, &config);
    let ask = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(0.5)\n\
               for i in range(3):\n s.sendto(b'ping%d'%i,('10.222.0.30',53))\n print(s.recvfrom(100)[0].decode())\n";
    wait_until(
        Duration::from_secs(5),
        "UDP echo through the ClusterIP",
        || {
            let out = client.exec("python3", &["-c", ask]);
            String::from_utf8_lossy(&out.stdout) == "echo:ping0\necho:ping1\necho:ping2\n"
        },
    );
}

#[test]
fn without_a_ready_endpoint_connections_are_reset_and_a_busy_port_fails_the_start() {
    let Setup {
        mut lab,
        node,
        client,
        ..
    } = setup("proxy-reset");
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
    let (mut daemon, file) = start(&mut lab, &node, &config);
    let out = client.exec("curl", &["-sS", "-m", "3", "http://10.222.0.40/"]);
    let err = String::from_utf8_lossy(&out.stderr);
    // The RST arrives right after the handshake: curl fails to connect (7) or to receive
    // (56), at once; a hung connection would be its timeout (28).
    assert!(matches!(out.status.code(), Some(7 | 56)), "{err}");
    daemon.signal("TERM");
    daemon.wait_timeout(Duration::from_secs(7)).expect("stops");

    // A port already in use stops the start with an error naming the address.
    let _squatter = lab.spawn(
        &node,
        "python3",
        &["-m", "http.server", "--bind", NODE_IP, "30099"],
    );
    wait_until(Duration::from_secs(5), "squatter listens", || {
        node.sh("ss -Hltn 'sport = :30099' | grep -q LISTEN")
            .status
            .success()
    });
    let busy = config.replace(
        "ports = [{ port = 80 }]",
        "type = \"NodePort\"\nports = [{ port = 80, node_port = 30099 }]",
    );
    std::fs::write(&file, busy).unwrap();
    let mut failed = lab.spawn(
        &node,
        DOCKLINE,
        &["run", "--config", file.to_str().unwrap()],
    );
    let status = failed.wait_timeout(Duration::from_secs(10)).expect("exits");
    assert!(!status.success());
    assert!(
        failed
            .log()
            .contains("cannot listen on 172.30.0.11:30099/TCP"),
        "{}",
        failed.log()
    );
}
