//! The status page at `/`, opened in headless Chromium inside a node's namespace: two
//! nodes with gossip and one L2 VIP, a backend with a TCP health check. The DOM must show
//! the VIP's owner as `/status` computes it, the pod network's mode and route, the endpoint
//! going down when its backend stops, and the new owner after the old one is killed. The
//! last screenshot is saved under target/ for a person to look at.

// Test helpers fail the test by panicking, as the tests themselves do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use dockline_lab::{Lab, Netns, Process, http_get, wait_until};

const DOCKLINE: &str = env!("CARGO_BIN_EXE_dockline");
const NODES: [&str; 2] = ["n1", "n2"];
const VIP: &str = "192.0.2.10";
const BACKEND: &str = "172.30.0.50";
const PAGE: &str = "http://127.0.0.1:9470/";

fn config(i: usize, secret: &Path) -> String {
    let other = 1 - i;
    format!(
        r#"
node = {{ name = "{name}", internal_ip = "172.30.0.{ip}", pod_cidr = "10.111.{n}.0/24" }}
dns = {{ enabled = false }}
l2 = {{ interfaces = ["eth0"] }}
pools = [{{ name = "public", addresses = ["192.0.2.10-192.0.2.20"], announce = ["l2"] }}]
[cluster.gossip]
listen = "172.30.0.{ip}:7946"
secret_file = "{secret}"
[[network.nodes]]
name = "{other_name}"
internal_ip = "172.30.0.{other_ip}"
pod_cidr = "10.111.{other_n}.0/24"
[[services]]
name = "web"
type = "LoadBalancer"
load_balancer_ip = "{VIP}"
ports = [{{ port = 8080 }}]
health_check = {{ kind = "tcp", interval_ms = 200, timeout_ms = 150, rise = 1, fall = 1 }}
endpoints = [{{ ip = "{BACKEND}", node = "n1" }}]
"#,
        name = NODES[i],
        ip = 11 + i,
        n = i + 1,
        other_name = NODES[other],
        other_ip = 11 + other,
        other_n = other + 1,
        secret = secret.display(),
    )
}

/// Chromium, headless and offline, with a fresh profile in the lab's directory.
fn chromium(ns: &Netns, profile: &Path, extra: &[&str]) -> String {
    let profile = format!("--user-data-dir={}", profile.display());
    let mut args = vec![
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        &profile,
    ];
    args.extend_from_slice(extra);
    args.push(PAGE);
    let out = ns.exec("chromium", &args);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The DOM of the page as Chromium built it.
fn dom(ns: &Netns, profile: &Path) -> String {
    chromium(ns, profile, &["--dump-dom"])
}

fn owner_cell(dom: &str) -> Option<&str> {
    let row = dom.split(&format!("<tr data-vip=\"{VIP}\">")).nth(1)?;
    let cell = row.split("<td class=\"owner\">").nth(1)?;
    cell.split("</td>").next()
}

fn endpoint_health(dom: &str) -> Option<&str> {
    let row = dom.split(&format!("data-endpoint=\"{BACKEND}\"")).nth(1)?;
    let health = row.split("data-health=\"").nth(1)?;
    health.split('"').next()
}

fn owner(ns: &Netns) -> Option<String> {
    let (_, body) = http_get(ns, "http://127.0.0.1:9470/status")?;
    let status: serde_json::Value = serde_json::from_str(&body).ok()?;
    status["vip_owners"][0]["owner"].as_str().map(str::to_owned)
}

#[test]
fn the_page_shows_the_vip_owner_and_an_endpoint_going_down_in_a_browser() {
    let mut lab = Lab::new("status-page");
    let sw = lab.switch("sw");
    let backend = lab.netns("backend");
    lab.attach(&sw, &backend, "eth0", &[&format!("{BACKEND}/24")]);
    let backend_server = lab.spawn(
        &backend,
        "python3",
        &["-m", "http.server", "8080", "--bind", BACKEND],
    );
    let secret = lab.dir().join("gossip.key");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let mut nodes: Vec<Netns> = Vec::new();
    let mut daemons: Vec<Process> = Vec::new();
    for (i, name) in NODES.iter().enumerate() {
        let ns = lab.netns(name);
        lab.attach(&sw, &ns, "eth0", &[&format!("172.30.0.{}/24", 11 + i)]);
        let file = lab.dir().join(format!("{name}.toml"));
        std::fs::write(&file, config(i, &secret)).unwrap();
        daemons.push(lab.spawn(&ns, DOCKLINE, &["run", "--config", file.to_str().unwrap()]));
        nodes.push(ns);
    }
    for ns in &nodes {
        wait_until(
            Duration::from_secs(10),
            "both members alive, the endpoint passing",
            || {
                http_get(ns, "http://127.0.0.1:9470/status").is_some_and(|(_, body)| {
                    body.matches("\"state\":\"alive\"").count() == 2 && body.contains("\"passing\"")
                })
            },
        );
    }
    let profile = lab.dir().join("chromium-profile");

    // The owner as /status computes it is the owner the page shows, on both nodes.
    let first = owner(&nodes[0]).expect("an owner");
    for (i, ns) in nodes.iter().enumerate() {
        let dom = dom(ns, &profile);
        let expected = if first == NODES[i] {
            format!("{first} (this node)")
        } else {
            first.clone()
        };
        assert_eq!(owner_cell(&dom), Some(expected.as_str()), "{dom}");
        assert_eq!(endpoint_health(&dom), Some("passing"), "{dom}");
        assert!(dom.contains("<tr data-member=\"n1\">") && dom.contains("<tr data-member=\"n2\">"));
        // The pod network (Classic, the default) with its route to the other node's pods.
        assert!(dom.contains("id=\"podnet-mode\">Classic</span>"), "{dom}");
        let route = format!("<tr data-route=\"10.111.{}.0/24\">", 2 - i);
        assert!(dom.contains(&route), "{route} in {dom}");
    }

    // The backend stops: the endpoint goes down on the page.
    backend_server.signal("KILL");
    wait_until(
        Duration::from_secs(5),
        "the endpoint fails its check",
        || endpoint_health(&dom(&nodes[0], &profile)) == Some("failing"),
    );

    // The owner is killed: the survivor's page shows it owning the VIP, the other down.
    let owner_index = NODES.iter().position(|n| *n == first).unwrap();
    let survivor = 1 - owner_index;
    daemons[owner_index].signal("KILL");
    let moved = format!("{} (this node)", NODES[survivor]);
    wait_until(
        Duration::from_secs(5),
        "the VIP moves to the survivor",
        || owner_cell(&dom(&nodes[survivor], &profile)) == Some(moved.as_str()),
    );

    let shot = screenshot_path();
    chromium(
        &nodes[survivor],
        &profile,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,900",
            "--hide-scrollbars",
        ],
    );
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "a screenshot of {size} bytes at {}",
        shot.display()
    );
    eprintln!("screenshot: {}", shot.display());
}

/// Where the screenshot stays after the lab is gone.
fn screenshot_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    let _ = std::fs::create_dir_all(&target);
    target.join("status-page.png")
}
