//! Snapshot building: allocation is deterministic, explicit values win, sharing works, and
//! exhaustion is a reported problem.

// Test helpers fail the test by panicking, as the tests themselves do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use dockline_config::parse;
use dockline_model::testing::snapshot;
use dockline_model::{Snapshot, build};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const POOL: &str = r#"
[[pools]]
name = "public"
addresses = ["192.0.2.10-192.0.2.13", "2001:db8:1::/124"]
announce = ["l2"]
"#;

fn lb(name: &str, extra: &str) -> String {
    format!(
        "[[services]]\nname = \"{name}\"\ntype = \"LoadBalancer\"\nports = [{{ port = 80 }}]\n{extra}\n"
    )
}

#[test]
fn every_node_computes_the_same_addresses() {
    let text = format!("{POOL}{}{}{}", lb("a", ""), lb("b", ""), lb("c", ""));
    let (one, two) = (snapshot(&text), snapshot(&text));
    let addrs = |s: &Snapshot| -> Vec<_> {
        s.services
            .iter()
            .map(|s| (s.cluster_ip, s.load_balancer_ip, s.ports[0].node_port))
            .collect()
    };
    assert_eq!(addrs(&one), addrs(&two));
    for s in &one.services {
        let lb = s.load_balancer_ip.unwrap();
        assert!(lb.is_ipv4(), "an IPv4 service gets an IPv4 VIP: {lb}");
        assert!(s.cluster_ip.unwrap().to_string().starts_with("10.222."));
        assert!((30000..=32767).contains(&s.ports[0].node_port.unwrap()));
    }
    assert_eq!(one.vips.len(), 3);
    assert_eq!(one.config_digest, two.config_digest);
}

#[test]
fn explicit_addresses_are_taken_first_and_others_avoid_them() {
    let mut text = POOL.to_owned();
    for name in ["a", "b", "c"] {
        text += &lb(name, "");
    }
    text += &lb("z", "load_balancer_ip = \"192.0.2.10\"");
    let s = snapshot(&text);
    let z = s.services.iter().find(|s| s.name == "z").unwrap();
    assert_eq!(z.load_balancer_ip, Some(ip("192.0.2.10")));
    let mut all: Vec<_> = s
        .services
        .iter()
        .map(|s| s.load_balancer_ip.unwrap())
        .collect();
    all.sort();
    all.dedup();
    assert_eq!(
        all.len(),
        4,
        "four distinct VIPs from a pool of four IPv4 addresses"
    );
}

#[test]
fn adding_a_service_does_not_move_the_others() {
    let before = snapshot(&format!("{POOL}{}{}", lb("a", ""), lb("m", "")));
    let after = snapshot(&format!(
        "{POOL}{}{}{}",
        lb("a", ""),
        lb("m", ""),
        lb("b", "")
    ));
    for name in ["a", "m"] {
        let find = |s: &Snapshot| {
            let svc = s.services.iter().find(|x| x.name == name).unwrap();
            (svc.cluster_ip, svc.ports[0].node_port)
        };
        assert_eq!(
            find(&before),
            find(&after),
            "{name} kept its cluster IP and node port"
        );
    }
}

#[test]
fn a_full_pool_is_a_problem_naming_the_service() {
    let mut text = POOL.replace(", \"2001:db8:1::/124\"", "");
    for name in ["a", "b", "c", "d", "e"] {
        text += &lb(name, "");
    }
    let config = parse("test.toml", &text, std::iter::empty()).unwrap();
    let problems = build(config).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems}");
    assert!(
        problems
            .to_string()
            .contains("no auto-assign pool has a free address"),
        "{problems}"
    );
}

#[test]
fn services_with_one_sharing_key_share_an_ip_when_ports_differ() {
    let text = format!(
        "{POOL}{}{}",
        lb("dns-tcp", "sharing_key = \"dns\""),
        lb("dns-udp", "sharing_key = \"dns\"")
            .replace("port = 80 }", "port = 80, protocol = \"UDP\" }")
    );
    let s = snapshot(&text);
    assert_eq!(
        s.services[0].load_balancer_ip,
        s.services[1].load_balancer_ip
    );
    assert_eq!(s.vips.len(), 1);
    assert_eq!(s.vips[0].services, ["default/dns-tcp", "default/dns-udp"]);
}

#[test]
fn services_with_one_sharing_key_but_the_same_port_get_two_ips() {
    let text = format!(
        "{POOL}{}{}",
        lb("x", "sharing_key = \"k\""),
        lb("y", "sharing_key = \"k\"")
    );
    let s = snapshot(&text);
    assert_ne!(
        s.services[0].load_balancer_ip,
        s.services[1].load_balancer_ip
    );
}

#[test]
fn an_ipv6_service_gets_an_ipv6_vip() {
    let text = format!(
        "[cluster]\nservice_cidr = \"fd00:222::/108\"\n{POOL}{}",
        lb("six", "")
    );
    let s = snapshot(&text);
    assert!(s.services[0].cluster_ip.unwrap().is_ipv6());
    assert!(s.services[0].load_balancer_ip.unwrap().is_ipv6());
}

#[test]
fn headless_and_external_name_services_get_no_cluster_ip() {
    let s = snapshot(
        r#"
[[services]]
name = "db"
cluster_ip = "None"
ports = [{ port = 5432 }]
[[services]]
name = "ext"
type = "ExternalName"
external_name = "db.example.com"
"#,
    );
    assert!(s.services.iter().all(|s| s.cluster_ip.is_none()));
    assert!(s.services.iter().find(|s| s.name == "db").unwrap().headless);
}

#[test]
fn the_shared_digest_ignores_per_node_settings() {
    let base = format!("{POOL}{}", lb("a", ""));
    let one = snapshot(&format!(
        "[node]\nname = \"node-1\"\n[admin]\nlisten = \"127.0.0.1:1\"\n{base}"
    ));
    let two = snapshot(&format!("[node]\nname = \"node-2\"\n{base}"));
    assert_eq!(one.shared_digest, two.shared_digest);
    assert_ne!(one.config_digest, two.config_digest);
    let three = snapshot(&format!("{base}{}", lb("b", "")));
    assert_ne!(one.shared_digest, three.shared_digest);
}

#[test]
fn target_port_defaults_to_port() {
    let s = snapshot(
        "[[services]]\nname = \"a\"\nports = [{ name = \"a\", port = 80 }, { name = \"b\", port = 81, target_port = 8081 }]\n",
    );
    assert_eq!(s.services[0].ports[0].target_port, 80);
    assert_eq!(s.services[0].ports[1].target_port, 8081);
}

#[test]
fn load_balancers_without_node_ports_are_not_bounded_by_the_node_port_range() {
    let services = |extra: &str| -> String {
        let mut text = String::from(
            "[[pools]]\nname = \"big\"\naddresses = [\"10.128.0.0/16\"]\nannounce = [\"l2\"]\n",
        );
        for i in 0..2_800 {
            text += &lb(&format!("s{i}"), extra);
        }
        text
    };
    let without = snapshot(&services("allocate_load_balancer_node_ports = false"));
    assert_eq!(without.vips.len(), 2_800);
    assert!(
        without
            .services
            .iter()
            .all(|s| s.ports[0].node_port.is_none())
    );

    let config = parse("test.toml", &services(""), std::iter::empty()).unwrap();
    let problems = build(config).unwrap_err().to_string();
    assert!(
        problems.contains("the NodePort range 30000-32767 has no free port left"),
        "2,800 services with node ports do not fit 2,768 ports"
    );
}

#[test]
fn an_explicit_node_port_stays_when_allocation_is_off() {
    let text = format!(
        "{POOL}{}",
        lb("web", "allocate_load_balancer_node_ports = false")
            .replace("port = 80 }", "port = 80, node_port = 30080 }")
    );
    assert_eq!(snapshot(&text).services[0].ports[0].node_port, Some(30080));
}
