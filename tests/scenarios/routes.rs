//! The routes component in a namespace: service addresses become local (a listener bound to
//! a VIP is reachable from a client), follow reloads, stale routes of an earlier run go, and
//! everything dockline added is removed when it stops.

// Test helpers fail the test by panicking, as the tests themselves do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dockline_lab::{Daemon, Lab, Netns, http_get, wait_until};

fn config(proxy: bool, with_api: bool) -> String {
    let mut text = format!(
        r#"
[node]
name = "node-1"
internal_ip = "172.30.0.11"
[dns]
enabled = false
[proxy]
enabled = {proxy}
[[pools]]
name = "public"
addresses = ["192.0.2.10-192.0.2.20", "2001:db8:1::/124"]
announce = ["l2"]
[[services]]
name = "web"
type = "LoadBalancer"
cluster_ip = "10.222.0.10"
load_balancer_ip = "192.0.2.10"
ports = [{{ port = 80 }}]
"#
    );
    if with_api {
        text +=
            "[[services]]\nname = \"api\"\ncluster_ip = \"10.222.0.20\"\nports = [{ port = 80 }]\n";
    }
    text
}

/// dockline's local routes in `ns`, as `ip` prints their destinations.
fn local_routes(ns: &Netns) -> Vec<String> {
    let mut routes: Vec<String> = ["-4", "-6"]
        .iter()
        .flat_map(|family| {
            ns.sh_ok(&format!("ip {family} route show table local proto 215"))
                .lines()
                .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect();
    routes.sort();
    routes
}

#[test]
fn service_addresses_become_local_follow_reloads_and_go_at_stop() {
    let mut lab = Lab::new("routes");
    let (node, client) =
        lab.linked_pair("node", &["172.30.0.11/24"], "client", &["172.30.0.100/24"]);
    client.sh_ok("ip route add 192.0.2.0/24 via 172.30.0.11");
    // A stale route of an earlier run, which the start must remove.
    node.sh_ok("ip route add local 10.222.9.9/32 dev lo table local proto 215");
    let mut daemon = Daemon::builder(env!("CARGO_BIN_EXE_dockline"), &node)
        .config(&config(true, true))
        .start(&mut lab);
    assert_eq!(
        local_routes(&node),
        ["10.222.0.10", "10.222.0.20", "192.0.2.10"]
    );

    // A listener on the VIP is reachable from the client through the local route.
    let dir = lab.dir().to_str().unwrap().to_owned();
    let _server = lab.spawn(
        &node,
        "python3",
        &[
            "-m",
            "http.server",
            "--bind",
            "192.0.2.10",
            "--directory",
            &dir,
            "8080",
        ],
    );
    wait_until(
        Duration::from_secs(10),
        "the client reaches the VIP",
        || http_get(&client, "http://192.0.2.10:8080/dockline.toml").is_some_and(|(c, _)| c == 200),
    );

    // A reload drops a service: its ClusterIP stops being local.
    daemon.write_config(&config(true, false));
    wait_until(
        Duration::from_secs(5),
        "the removed ClusterIP's route goes",
        || local_routes(&node) == ["10.222.0.10", "192.0.2.10"],
    );
    // Without the proxy, only announced VIPs stay local.
    daemon.write_config(&config(false, false));
    wait_until(
        Duration::from_secs(5),
        "ClusterIP routes go with the proxy",
        || local_routes(&node) == ["192.0.2.10"],
    );
    // A route deleted by hand comes back at the next resync.
    node.sh_ok("ip route del local 192.0.2.10/32 dev lo table local proto 215");
    wait_until(
        Duration::from_secs(15),
        "the deleted route is restored",
        || local_routes(&node) == ["192.0.2.10"],
    );

    let status = daemon.stop();
    assert_eq!(status.code(), Some(0), "{}", daemon.log());
    assert!(
        local_routes(&node).is_empty(),
        "routes left after stop: {:?}",
        local_routes(&node)
    );
}

#[test]
fn ipv6_vips_get_local_routes_too() {
    let mut lab = Lab::new("routes6");
    let node = lab.netns("node");
    let text = config(true, false)
        .replace("192.0.2.10\"\nports", "2001:db8:1::5\"\nports")
        .replace("cluster_ip = \"10.222.0.10\"\n", "");
    let _daemon = Daemon::builder(env!("CARGO_BIN_EXE_dockline"), &node)
        .config(&text.replace("[cluster]", ""))
        .start(&mut lab);
    wait_until(Duration::from_secs(10), "the IPv6 VIP is local", || {
        local_routes(&node).contains(&"2001:db8:1::5".to_owned())
    });
}
