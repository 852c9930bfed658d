//! One test per configuration rule: a small snippet, the exact path of the problem and the
//! gist of its message. Snippets go through `parse` + `validate`; file-level cases (empty,
//! missing, unreadable, invalid TOML) through `load_with_env` on a real file.

use std::path::{Path, PathBuf};

use dockline_config::{
    Config, Problem, Problems, Source, load_with_env, parse, parse_split, validate,
};

const NO_ENV: [(String, String); 0] = [];

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Parses and validates `text` with `vars` as the environment.
fn check_with_env(text: &str, vars: &[(&str, &str)]) -> Result<Config, Problems> {
    let config = parse("test.toml", text, env(vars))?;
    validate(&config)?;
    Ok(config)
}

fn check(text: &str) -> Result<Config, Problems> {
    check_with_env(text, &[])
}

fn valid(text: &str) -> Config {
    check(text)
        .unwrap_or_else(|problems| panic!("expected valid, got:\n{problems}\n--- in:\n{text}"))
}

/// The problems of `text`, which must have some.
fn problems(text: &str) -> Vec<Problem> {
    match check(text) {
        Ok(_) => panic!("expected problems in:\n{text}"),
        Err(problems) => problems.0,
    }
}

/// Asserts that one of `problems` is at exactly `path` with a message containing `message`.
#[track_caller]
fn assert_has(problems: &[Problem], path: &str, message: &str) {
    assert!(
        problems
            .iter()
            .any(|p| p.path == path && p.message.contains(message)),
        "expected a problem at {path} containing {message:?}, got:\n{}",
        Problems(problems.to_vec())
    );
}

/// Asserts that `found` holds exactly the `expected` problems, each given as its path and a
/// part of its message, in any order.
#[track_caller]
fn assert_exactly(found: &[Problem], expected: &[(&str, &str)]) {
    for (path, message) in expected {
        assert_has(found, path, message);
    }
    assert_eq!(
        found.len(),
        expected.len(),
        "expected {} problem(s), got:\n{}",
        expected.len(),
        Problems(found.to_vec())
    );
}

/// Asserts that `text` has exactly one problem, at `path`, containing `message`.
#[track_caller]
fn assert_only(text: &str, path: &str, message: &str) {
    assert_exactly(&problems(text), &[(path, message)]);
}

/// A scratch directory for file-level cases, unique per test.
fn scratch(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("validation-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn load_file(path: &Path) -> Result<Config, Problems> {
    load_with_env(&Source::File(path.to_owned()), NO_ENV)
}

fn load_problems(path: &Path) -> Vec<Problem> {
    match load_file(path) {
        Ok(_) => panic!("expected problems in {}", path.display()),
        Err(problems) => problems.0,
    }
}

/// The one problem of the file at `path`, which must be about the file itself (named by it).
#[track_caller]
fn file_problem(path: &Path) -> Problem {
    let mut found = load_problems(path);
    assert_eq!(found.len(), 1, "{}", Problems(found.clone()));
    let problem = found.remove(0);
    assert_eq!(problem.path, path.display().to_string());
    problem
}

/// Pools and a node good enough for LoadBalancer snippets.
const POOLS: &str = r#"
[[pools]]
name = "public"
addresses = ["192.0.2.10-192.0.2.50"]

[[pools]]
name = "edge"
addresses = ["198.51.100.0/28"]
auto_assign = false
"#;

// ---------------------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------------------

#[test]
fn a_minimal_file_is_valid() {
    let config = valid("[node]\nname = \"node-1\"\n");
    assert_eq!(config, Config::default());
}

#[test]
fn every_rule_problem_is_reported_at_once() {
    assert_exactly(
        &problems(
            r#"
[node]
name = "Node_1"
internal_ip = "172.30.0.11"

[cluster]
service_cidr = "10.222.0.0/16"

[[bgp.peers]]
address = "172.30.0.1"
asn = 64512
hold_time = 1

[[services]]
name = "a"
cluster_ip = "10.96.0.10"
ports = [{ port = 80 }]

[[services]]
name = "b"
type = "NodePort"
ports = [{ port = 80, node_port = 80 }]
"#,
        ),
        &[
            ("node.name", "is not a DNS label"),
            ("bgp.asn", "must be set when bgp.peers are given"),
            ("bgp.peers[0].hold_time", "must be 0 or at least 3"),
            ("services[0].cluster_ip", "outside cluster.service_cidr"),
            (
                "services[1].ports[0].node_port",
                "outside the NodePort range",
            ),
        ],
    );
}

#[test]
fn every_parse_problem_is_reported_at_once() {
    assert_exactly(
        &problems(
            r#"
[admin]
listen = 9470

[dns]
ttl = "five"

[[services]]
name = "a"
type = "Foo"

[[services]]
name = "ok"
ports = [{ port = 80 }]

[[services]]
name = "c"
colour = "blue"
"#,
        ),
        &[
            ("admin.listen", "invalid type"),
            ("dns.ttl", "invalid type: string \"five\""),
            ("services[0].type", "unknown variant `Foo`"),
            ("services[2].colour", "unknown field `colour`"),
        ],
    );
}

#[test]
fn problems_display_one_line_each() {
    let err = check("[dns]\nttl = \"x\"\n[admin]\nlisten = 1\n").unwrap_err();
    let text = err.to_string();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.lines()
            .all(|l| l.starts_with("admin.listen: ") || l.starts_with("dns.ttl: ")),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------
// Syntax and types
// ---------------------------------------------------------------------------------------

#[test]
fn unparsable_toml_is_one_line_with_line_and_column() {
    let err = parse(
        "dockline.toml",
        "[node]\nname = \"node-1\"\ninternal_ip = \n",
        NO_ENV,
    )
    .unwrap_err();
    assert_eq!(err.len(), 1);
    let line = err.to_string();
    assert!(
        line.starts_with("dockline.toml:3:15: invalid TOML: "),
        "{line}"
    );
    assert!(!line.contains('\n'), "{line:?}");
}

#[test]
fn unparsable_toml_file_names_the_file() {
    let dir = scratch("unparsable");
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[node]\nname = \"node-1\"\n[dns\nttl = 5\n").unwrap();
    let found = load_problems(&path);
    assert_eq!(found.len(), 1);
    let line = found[0].to_string();
    assert!(
        line.starts_with(&format!("{}:3:5: invalid TOML: ", path.display())),
        "{line}"
    );
    assert!(!line.contains('\n'), "{line:?}");
}

#[test]
fn duplicate_key_is_invalid_toml() {
    let err = parse("f.toml", "[dns]\nttl = 5\nttl = 6\n", NO_ENV).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("f.toml:3:1: invalid TOML: duplicate key"),
        "{err}"
    );
}

#[test]
fn wrong_type_names_the_key() {
    assert_only(
        "[dns]\nttl = \"5\"\n",
        "dns.ttl",
        "invalid type: string \"5\", expected u32",
    );
    assert_only(
        "[proxy]\nenabled = \"yes\"\n",
        "proxy.enabled",
        "invalid type: string \"yes\", expected a boolean",
    );
    assert_only("[dns]\nttl = -1\n", "dns.ttl", "expected u32");
    assert_only(
        "[l2]\ninterfaces = \"eth0\"\n",
        "l2.interfaces",
        "invalid type",
    );
    assert_only(
        "[[services]]\nname = \"a\"\nports = [{ port = 70000 }]\n",
        "services[0].ports[0].port",
        "expected u16",
    );
    assert_only(
        "services = 5\n",
        "services",
        "expected an array of tables, written [[services]]",
    );
    assert_only("dns = 5\n", "dns", "invalid type");
}

#[test]
fn unknown_key_in_a_section() {
    assert_only(
        "[dns]\nttl = 5\nttls = 6\n",
        "dns.ttls",
        "unknown field `ttls`, expected one of `enabled`, `listen`, `ttl`, `forward`",
    );
    assert_only(
        "[cluster.gossip]\nlisten = \"172.30.0.11:7946\"\nseed = []\n[node]\ninternal_ip = \"172.30.0.11\"\n",
        "cluster.gossip.seed",
        "unknown field `seed`",
    );
}

#[test]
fn unknown_key_in_a_service() {
    assert_only(
        "[[services]]\nname = \"a\"\nport = 80\n",
        "services[0].port",
        "unknown field `port`",
    );
    assert_only(
        "[[services]]\nname = \"a\"\nports = [{ port = 80, nodePort = 30080 }]\n",
        "services[0].ports[0].nodePort",
        "unknown field `nodePort`",
    );
}

#[test]
fn unknown_top_level_section() {
    assert_only(
        "[dnss]\nttl = 5\n",
        "dnss",
        "unknown section; expected one of node, cluster,",
    );
    assert_only("ttl = 5\n", "ttl", "unknown section");
}

#[test]
fn invalid_address() {
    assert_only(
        "[node]\ninternal_ip = \"172.30.0.300\"\n",
        "node.internal_ip",
        "invalid IP address syntax",
    );
    assert_only(
        "[admin]\nlisten = \"127.0.0.1\"\n",
        "admin.listen",
        "invalid socket address syntax",
    );
    assert_only(
        "[dns]\nforward = [\"resolver\"]\n",
        "dns.forward[0]",
        "\"resolver\" is not an IP address or IP:PORT",
    );
    assert_only(
        "[[services]]\nname = \"a\"\ncluster_ip = \"none\"\nports = [{ port = 80 }]\n",
        "services[0].cluster_ip",
        "\"none\" is not an IP address or \"None\"",
    );
    assert_only(
        "[[services]]\nname = \"a\"\ncluster_ip = \"None\"\nendpoints = [{ ip = \"10.111.1.300\" }]\n",
        "services[0].endpoints[0].ip",
        "invalid IP address syntax",
    );
    assert_only(
        "[node]\ninternal_ip = \"0.0.0.0\"\n",
        "node.internal_ip",
        "0.0.0.0 is not a unicast host address",
    );
}

#[test]
fn invalid_cidr() {
    assert_only(
        "[cluster]\npod_cidr = \"10.111.0.0/33\"\n",
        "cluster.pod_cidr",
        "invalid IP address syntax",
    );
    assert_only(
        "[cluster]\nservice_cidr = \"10.222.0.0\"\n",
        "cluster.service_cidr",
        "invalid IP address syntax",
    );
    assert_only(
        "[cluster]\nservice_cidr = \"10.222.0.1/16\"\n",
        "cluster.service_cidr",
        "10.222.0.1/16 has host bits set; the network is 10.222.0.0/16",
    );
    assert_only(
        "[[pools]]\nname = \"p\"\naddresses = [\"192.0.2.1/28\"]\n",
        "pools[0].addresses[0]",
        "\"192.0.2.1/28\" has host bits set; the network is 192.0.2.0/28",
    );
    assert_only(
        "[[pools]]\nname = \"p\"\naddresses = [\"192.0.2.50-192.0.2.10\"]\n",
        "pools[0].addresses[0]",
        "is not a range",
    );
}

#[test]
fn bad_tunnel_mode() {
    assert_only(
        "[network]\ntunnel_mode = \"vxlan\"\n",
        "network.tunnel_mode",
        "unknown variant `vxlan`, expected `Classic` or `VXLAN`",
    );
}

// ---------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------

#[test]
fn empty_file() {
    let dir = scratch("empty");
    for (name, text) in [("empty.toml", ""), ("blank.toml", "\n  \n\t\n")] {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let problem = file_problem(&path);
        assert!(problem.message.contains("the file is empty"), "{problem}");
    }
}

#[test]
fn missing_file() {
    let path = scratch("missing").join("nowhere.toml");
    let problem = file_problem(&path);
    assert!(
        problem.message.starts_with("cannot read the file: "),
        "{problem}"
    );
}

#[test]
fn unreadable_file_a_directory() {
    // Tests may run as root, which reads a mode-000 file; a directory cannot be read as one.
    let path = scratch("directory").join("dockline.toml");
    std::fs::create_dir(&path).unwrap();
    let problem = file_problem(&path);
    assert!(
        problem.message.starts_with("cannot read the file: "),
        "{problem}"
    );
}

#[test]
fn unreadable_file_not_utf8() {
    let path = scratch("not-utf8").join("latin1.toml");
    std::fs::write(&path, b"[node]\nname = \"n\xf6de\"\n").unwrap();
    let problem = file_problem(&path);
    assert!(problem.message.contains("not UTF-8"), "{problem}");
}

#[test]
fn a_file_with_rule_problems_reports_them_all() {
    let path = scratch("rules").join("dockline.toml");
    std::fs::write(
        &path,
        "[node]\nname = \"node-1\"\n[[network.nodes]]\nname = \"node-1\"\ninternal_ip = \"172.30.0.12\"\npod_cidr = \"10.111.2.0/24\"\n",
    )
    .unwrap();
    assert_exactly(
        &load_problems(&path),
        &[
            ("node.internal_ip", "must be set when the node has peers"),
            (
                "network.nodes[0].name",
                "\"node-1\" is already used by node.name",
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------
// Cluster, node and network rules
// ---------------------------------------------------------------------------------------

#[test]
fn cluster_ip_outside_service_cidr() {
    assert_only(
        "[cluster]\nservice_cidr = \"10.222.0.0/16\"\n[[services]]\nname = \"a\"\ncluster_ip = \"10.96.0.10\"\nports = [{ port = 80 }]\n",
        "services[0].cluster_ip",
        "10.96.0.10 is outside cluster.service_cidr 10.222.0.0/16",
    );
    assert_only(
        "[[services]]\nname = \"a\"\ncluster_ip = \"10.222.0.0\"\nports = [{ port = 80 }]\n",
        "services[0].cluster_ip",
        "10.222.0.0 is the network or broadcast address",
    );
    valid("[[services]]\nname = \"a\"\ncluster_ip = \"10.222.0.10\"\nports = [{ port = 80 }]\n");
}

#[test]
fn duplicate_cluster_ip() {
    assert_only(
        "[[services]]\nname = \"a\"\ncluster_ip = \"10.222.0.10\"\nports = [{ port = 80 }]\n[[services]]\nname = \"b\"\ncluster_ip = \"10.222.0.10\"\nports = [{ port = 80 }]\n",
        "services[1].cluster_ip",
        "10.222.0.10 is already used by services[0]",
    );
}

#[test]
fn service_cidr_overlapping_pod_cidr() {
    assert_only(
        "[cluster]\npod_cidr = \"10.0.0.0/8\"\nservice_cidr = \"10.222.0.0/16\"\n",
        "cluster.service_cidr",
        "10.222.0.0/16 overlaps cluster.pod_cidr 10.0.0.0/8",
    );
}

#[test]
fn node_pod_cidr_outside_cluster_pod_cidr() {
    assert_only(
        "[node]\npod_cidr = \"10.112.1.0/24\"\n",
        "node.pod_cidr",
        "10.112.1.0/24 is outside cluster.pod_cidr 10.111.0.0/16",
    );
    assert_only(
        "[node]\ninternal_ip = \"172.30.0.11\"\npod_cidr = \"10.111.1.0/24\"\n[[network.nodes]]\nname = \"node-2\"\ninternal_ip = \"172.30.0.12\"\npod_cidr = \"192.168.2.0/24\"\n",
        "network.nodes[0].pod_cidr",
        "192.168.2.0/24 is outside cluster.pod_cidr 10.111.0.0/16",
    );
}

#[test]
fn node_pod_cidrs_overlapping() {
    assert_only(
        "[node]\ninternal_ip = \"172.30.0.11\"\npod_cidr = \"10.111.1.0/24\"\n[[network.nodes]]\nname = \"node-2\"\ninternal_ip = \"172.30.0.12\"\npod_cidr = \"10.111.1.128/25\"\n",
        "network.nodes[0].pod_cidr",
        "10.111.1.128/25 overlaps node.pod_cidr",
    );
}

#[test]
fn peer_needs_a_pod_cidr() {
    assert_only(
        "[node]\ninternal_ip = \"172.30.0.11\"\n[[network.nodes]]\nname = \"node-2\"\ninternal_ip = \"172.30.0.12\"\n",
        "network.nodes[0].pod_cidr",
        "must be set",
    );
}

#[test]
fn vxlan_mode_needs_the_node_pod_cidr() {
    assert_only(
        "[node]\ninternal_ip = \"172.30.0.11\"\n[network]\ntunnel_mode = \"VXLAN\"\n[[network.nodes]]\nname = \"node-2\"\ninternal_ip = \"172.30.0.12\"\npod_cidr = \"10.111.2.0/24\"\n",
        "node.pod_cidr",
        "must be set in VXLAN mode",
    );
}

#[test]
fn vxlan_settings_are_checked() {
    assert_exactly(
        &problems(
            "[network.vxlan]\nvni = 16777216\nport = 0\ndevice = \"a-very-long-device-name\"\nunderlay_mtu = 1280\n",
        ),
        &[
            ("network.vxlan.vni", "16777216 is outside 1-16777215"),
            ("network.vxlan.port", "must not be 0"),
            ("network.vxlan.device", "is not an interface name"),
            ("network.vxlan.underlay_mtu", "1280 is outside 1350-65535"),
        ],
    );
}

#[test]
fn duplicate_node_names() {
    let peers = |a: &str, b: &str| {
        format!(
            "[node]\nname = \"node-1\"\ninternal_ip = \"172.30.0.11\"\n\
             [[network.nodes]]\nname = \"{a}\"\ninternal_ip = \"172.30.0.12\"\npod_cidr = \"10.111.2.0/24\"\n\
             [[network.nodes]]\nname = \"{b}\"\ninternal_ip = \"172.30.0.13\"\npod_cidr = \"10.111.3.0/24\"\n"
        )
    };
    assert_only(
        &peers("node-2", "node-2"),
        "network.nodes[1].name",
        "\"node-2\" is already used by network.nodes[0].name",
    );
    assert_only(
        &peers("node-2", "node-1"),
        "network.nodes[1].name",
        "\"node-1\" is already used by node.name",
    );
    valid(&peers("node-2", "node-3"));
}

#[test]
fn duplicate_node_addresses() {
    assert_only(
        "[node]\ninternal_ip = \"172.30.0.11\"\n[[network.nodes]]\nname = \"node-2\"\ninternal_ip = \"172.30.0.11\"\npod_cidr = \"10.111.2.0/24\"\n",
        "network.nodes[0].internal_ip",
        "172.30.0.11 is already used by node.internal_ip",
    );
}

#[test]
fn peers_need_the_node_internal_ip() {
    assert_only(
        "[cluster.gossip]\nlisten = \"172.30.0.11:7946\"\ninsecure = true\n",
        "node.internal_ip",
        "must be set when the node has peers",
    );
}

#[test]
fn gossip_seeds_need_listen() {
    assert_only(
        "[cluster.gossip]\nseeds = [\"172.30.0.12:7946\"]\n",
        "cluster.gossip.listen",
        "must be set when seeds are given",
    );
}

#[test]
fn one_seed_list_for_every_node_may_include_the_node_itself() {
    let config = valid(
        "[node]\ninternal_ip = \"172.30.0.11\"\n[cluster.gossip]\nlisten = \"172.30.0.11:7946\"\n\
         secret_file = \"/etc/dockline/gossip.key\"\n\
         seeds = [\"172.30.0.11:7946\", \"172.30.0.12:7946\", \"172.30.0.13:7946\"]\n",
    );
    assert_eq!(config.cluster.gossip.seeds.len(), 3);
}

#[test]
fn gossip_off_loopback_needs_a_secret_or_insecure_in_writing() {
    let off_loopback =
        "[node]\ninternal_ip = \"172.30.0.11\"\n[cluster.gossip]\nlisten = \"172.30.0.11:7946\"\n";
    assert_only(
        off_loopback,
        "cluster.gossip.secret_file",
        "must be set: cluster.gossip.listen 172.30.0.11:7946 is not a loopback address",
    );
    assert_only(
        "[node]\ninternal_ip = \"172.30.0.11\"\n[cluster.gossip]\nlisten = \"0.0.0.0:7946\"\n",
        "cluster.gossip.secret_file",
        "or set cluster.gossip.insecure = true",
    );
    valid(&format!(
        "{off_loopback}secret_file = \"/etc/dockline/gossip.key\"\n"
    ));
    valid(&format!("{off_loopback}insecure = true\n"));
    valid("[node]\ninternal_ip = \"127.0.0.1\"\n[cluster.gossip]\nlisten = \"127.0.0.1:7946\"\n");
    assert_only(
        &format!("{off_loopback}insecure = true\nsecret_file = \"/k\"\n"),
        "cluster.gossip.insecure",
        "contradicts cluster.gossip.secret_file",
    );
}

#[test]
fn allowed_nodes_are_names_or_cidrs_and_the_mismatch_policy_is_flag_or_exclude() {
    let config = valid(
        "[cluster]\nallowed_nodes = [\"node-1\", \"172.30.0.0/24\", \"10.0.0.7\"]\non_config_mismatch = \"exclude\"\n",
    );
    let allowed = &config.cluster.allowed_nodes;
    let ip = |s: &str| s.parse().unwrap();
    assert!(allowed[0].admits("node-1", ip("192.0.2.1")));
    assert!(!allowed[0].admits("node-2", ip("192.0.2.1")));
    assert!(allowed[1].admits("rogue", ip("172.30.0.9")));
    assert!(allowed[2].admits("x", ip("10.0.0.7")) && !allowed[2].admits("x", ip("10.0.0.8")));
    assert_eq!(
        config.cluster.on_config_mismatch,
        dockline_config::ConfigMismatch::Exclude
    );
    assert_eq!(
        valid("").cluster.on_config_mismatch,
        dockline_config::ConfigMismatch::Flag
    );
    assert_exactly(
        &check("[cluster]\nallowed_nodes = [\"Node_1\", \"172.30.0.1/24\"]\n")
            .unwrap_err()
            .0,
        &[
            (
                "cluster.allowed_nodes[0]",
                "(a node name, or a CIDR of internal IPs)",
            ),
            (
                "cluster.allowed_nodes[1]",
                "172.30.0.1/24 has host bits set",
            ),
        ],
    );
    assert_only(
        "[cluster]\non_config_mismatch = \"drop\"\n",
        "cluster.on_config_mismatch",
        "unknown variant `drop`",
    );
}

#[test]
fn annotation_value_must_be_true_or_false() {
    assert_only(
        "[node]\nannotations = { \"node.deckhouse.io/nodeport-bind-internal-ip\" = \"False\" }\n",
        "node.annotations.\"node.deckhouse.io/nodeport-bind-internal-ip\"",
        "\"False\" must be \"true\" or \"false\"",
    );
    assert_only(
        "[node]\nannotations = { \"node.deckhouse.io/nodeport-bind-internal-ip\" = \"\" }\n",
        "node.annotations.\"node.deckhouse.io/nodeport-bind-internal-ip\"",
        "must be \"true\" or \"false\"",
    );
    let on = valid(
        "[node]\nannotations = { \"node.deckhouse.io/nodeport-bind-internal-ip\" = \"false\" }\n",
    );
    assert!(!on.node.nodeport_binds_internal_ip_only());
    let off = valid(
        "[node]\nannotations = { \"node.deckhouse.io/nodeport-bind-internal-ip\" = \"true\" }\n",
    );
    assert!(off.node.nodeport_binds_internal_ip_only());
    // Other annotations are free-form.
    valid("[node]\nannotations = { \"example.com/rack\" = \"r12\" }\n");
}

// ---------------------------------------------------------------------------------------
// DNS, L2, BGP
// ---------------------------------------------------------------------------------------

#[test]
fn dns_rules() {
    assert_only(
        "[dns]\nlisten = []\n",
        "dns.listen",
        "needs at least one address",
    );
    valid("[dns]\nenabled = false\nlisten = []\n");
    assert_only(
        "[dns]\nlisten = [\"127.0.0.1:53\", \"127.0.0.1:53\"]\n",
        "dns.listen[1]",
        "127.0.0.1:53 is listed twice",
    );
    assert_only(
        "[dns]\nlisten = [\"127.0.0.1:53\"]\nforward = [\"127.0.0.1\"]\n",
        "dns.forward[0]",
        "127.0.0.1:53 is this server's own listen address",
    );
    assert_only(
        "[dns]\nttl = 2147483648\n",
        "dns.ttl",
        "2147483648 is above the maximum 2147483647",
    );
}

#[test]
fn dns_cache_rules() {
    // The defaults config/dockline.toml documents.
    let c = valid("").dns.cache;
    let read = (c.enabled, c.max_entries, c.min_ttl_s, c.max_ttl_s);
    assert_eq!(read, (true, 100_000, 0, 3600));
    assert_eq!((c.negative_ttl_s, c.serve_stale_s), (300, 0));
    let set = valid(
        "[dns.cache]\nmax_entries = 10\nmin_ttl_s = 5\nmax_ttl_s = 60\nnegative_ttl_s = 30\nserve_stale_s = 86400\n",
    );
    assert_eq!(
        (set.dns.cache.max_entries, set.dns.cache.serve_stale_s),
        (10, 86400)
    );
    assert_only(
        "[dns.cache]\nmax_entries = 0\n",
        "dns.cache.max_entries",
        "needs at least 1 while dns.cache.enabled = true",
    );
    valid("[dns.cache]\nenabled = false\nmax_entries = 0\n");
    assert_only(
        "[dns.cache]\nmin_ttl_s = 61\nmax_ttl_s = 60\n",
        "dns.cache.min_ttl_s",
        "61 is above dns.cache.max_ttl_s (60)",
    );
    assert_exactly(
        &problems("[dns.cache]\nnegative_ttl_s = 2147483648\nserve_stale_s = 4294967295\n"),
        &[
            (
                "dns.cache.negative_ttl_s",
                "2147483648 is above the maximum 2147483647",
            ),
            (
                "dns.cache.serve_stale_s",
                "4294967295 is above the maximum 2147483647",
            ),
        ],
    );
    assert_only(
        "[dns.cache]\nmax_ttls = 60\n",
        "dns.cache.max_ttls",
        "unknown field",
    );
}

#[test]
fn l2_interfaces() {
    assert_exactly(
        &problems("[l2]\ninterfaces = [\"eth0\", \"eth0\", \"eth0:1\"]\n"),
        &[
            ("l2.interfaces[1]", "\"eth0\" is listed twice"),
            ("l2.interfaces[2]", "is not an interface name"),
        ],
    );
}

#[test]
fn bgp_rules() {
    assert_only("[bgp]\nasn = 0\n", "bgp.asn", "0 is reserved");
    assert_only(
        "[node]\ninternal_ip = \"2001:db8::11\"\n[bgp]\nasn = 64513\n[[bgp.peers]]\naddress = \"2001:db8::1\"\nasn = 64512\n",
        "bgp.router_id",
        "must be set",
    );
    assert_exactly(
        &problems(
            "[node]\ninternal_ip = \"172.30.0.11\"\n[bgp]\nasn = 64513\n\
         [[bgp.peers]]\naddress = \"172.30.0.1\"\nasn = 0\n\
         [[bgp.peers]]\naddress = \"172.30.0.1\"\nasn = 64512\nhold_time = 2\n",
        ),
        &[
            ("bgp.peers[0].asn", "0 is reserved"),
            ("bgp.peers[1].address", "172.30.0.1 is listed twice"),
            (
                "bgp.peers[1].hold_time",
                "2 must be 0 or at least 3 seconds",
            ),
        ],
    );
    // 4-byte ASNs and hold time 0 are fine; the peer's port defaults to 179.
    let config = valid(
        "[node]\ninternal_ip = \"172.30.0.11\"\n[bgp]\nasn = 4200000001\n[[bgp.peers]]\naddress = \"172.30.0.1\"\nasn = 4200000000\nhold_time = 0\n",
    );
    assert_eq!(config.bgp.peers[0].port, 179);
}

#[test]
fn bgp_peer_session_keys() {
    let peers = "[node]\ninternal_ip = \"172.30.0.11\"\n[bgp]\nasn = 64513\n";
    let config = valid(&format!(
        "{peers}[[bgp.peers]]\naddress = \"172.30.0.1\"\nasn = 64512\nhold_time = 9\nkeepalive = 2\n\
         connect_retry_s = 1\nebgp_multihop = 4\npassive = true\ngraceful_restart = false\n"
    ));
    let peer = &config.bgp.peers[0];
    assert_eq!(
        (peer.keepalive, peer.connect_retry_s, peer.ebgp_multihop),
        (Some(2), 1, Some(4))
    );
    assert!(peer.passive && !peer.graceful_restart);
    assert_eq!(
        valid(&format!(
            "{peers}[[bgp.peers]]\naddress = \"172.30.0.1\"\nasn = 64512\n"
        ))
        .bgp
        .peers[0]
            .connect_retry_s,
        5
    );
    assert_exactly(
        &problems(&format!(
            "{peers}[[bgp.peers]]\naddress = \"172.30.0.1\"\nasn = 64512\nhold_time = 9\nkeepalive = 9\nconnect_retry_s = 0\nebgp_multihop = 0\n\
             [[bgp.peers]]\naddress = \"172.30.0.2\"\nasn = 64513\nhold_time = 0\nkeepalive = 3\nebgp_multihop = 2\n"
        )),
        &[
            (
                "bgp.peers[0].keepalive",
                "9 must be at least 1 and below hold_time (9)",
            ),
            ("bgp.peers[0].connect_retry_s", "must be at least 1 second"),
            ("bgp.peers[0].ebgp_multihop", "must be a TTL of 1 to 255"),
            ("bgp.peers[1].keepalive", "has no effect with hold_time = 0"),
            ("bgp.peers[1].ebgp_multihop", "applies to eBGP only"),
        ],
    );
}

#[test]
fn bfd_keys() {
    let peers = "[node]\ninternal_ip = \"172.30.0.11\"\n[bgp]\nasn = 64513\n";
    let config = valid(&format!(
        "{peers}[[bgp.peers]]\naddress = \"172.30.0.1\"\nasn = 64512\nbfd = true\nbfd_interval_ms = 100\nbfd_multiplier = 5\n"
    ));
    let peer = &config.bgp.peers[0];
    assert_eq!(
        (peer.bfd, peer.bfd_interval_ms, peer.bfd_multiplier),
        (Some(true), Some(100), Some(5))
    );
    assert_exactly(
        &problems(&format!(
            "{peers}[[bgp.peers]]\naddress = \"172.30.0.1\"\nasn = 64512\nbfd = true\nbfd_interval_ms = 5\nbfd_multiplier = 0\n\
             [[bgp.peers]]\naddress = \"172.30.0.2\"\nasn = 64512\nbfd_interval_ms = 300\nbfd_multiplier = 3\n"
        )),
        &[
            (
                "bgp.peers[0].bfd_interval_ms",
                "5 must be 10 to 60000 milliseconds",
            ),
            ("bgp.peers[0].bfd_multiplier", "must be 1 to 255"),
            (
                "bgp.peers[1].bfd_interval_ms",
                "has no effect without bfd = true",
            ),
            (
                "bgp.peers[1].bfd_multiplier",
                "has no effect without bfd = true",
            ),
        ],
    );
}

#[test]
fn pool_aggregation_lengths() {
    let bgp = "[node]\ninternal_ip = \"172.30.0.11\"\n[bgp]\nasn = 64513\n";
    let config = valid(&format!(
        "{bgp}[[pools]]\nname = \"a\"\naddresses = [\"192.0.2.0/28\", \"2001:db8::/120\"]\nannounce = [\"bgp\"]\n\
         aggregation_length = 28\naggregation_length_v6 = 120\n"
    ));
    assert_eq!(config.pools[0].aggregation_length, Some(28));
    assert_exactly(
        &problems(&format!(
            "{bgp}[[pools]]\nname = \"a\"\naddresses = [\"192.0.2.0/28\"]\nannounce = [\"bgp\"]\naggregation_length = 33\naggregation_length_v6 = 129\n\
             [[pools]]\nname = \"b\"\naddresses = [\"192.0.3.0/28\"]\nannounce = [\"l2\"]\naggregation_length = 28\n"
        )),
        &[
            ("pools[0].aggregation_length", "33 is longer than 32 bits"),
            (
                "pools[0].aggregation_length_v6",
                "129 is longer than 128 bits",
            ),
            ("pools[1].aggregation_length", "applies to BGP only"),
        ],
    );
}

// ---------------------------------------------------------------------------------------
// Pools
// ---------------------------------------------------------------------------------------

#[test]
fn overlapping_pools() {
    assert_only(
        "[[pools]]\nname = \"a\"\naddresses = [\"192.0.2.0/28\"]\n[[pools]]\nname = \"b\"\naddresses = [\"192.0.2.15-192.0.2.20\"]\n",
        "pools[1].addresses[0]",
        "192.0.2.15-192.0.2.20 overlaps pools[0].addresses[0]",
    );
    // Adjacent ranges and different families do not overlap.
    valid(
        "[[pools]]\nname = \"a\"\naddresses = [\"192.0.2.0/28\", \"2001:db8::/124\"]\n[[pools]]\nname = \"b\"\naddresses = [\"192.0.2.16-192.0.2.20\", \"2001:db8::10\"]\n",
    );
}

#[test]
fn pool_overlapping_cluster_ranges() {
    assert_only(
        "[[pools]]\nname = \"a\"\naddresses = [\"10.222.255.0/24\"]\n",
        "pools[0].addresses[0]",
        "overlaps cluster.service_cidr 10.222.0.0/16",
    );
}

#[test]
fn pool_rules() {
    assert_exactly(
        &problems(
            "[[pools]]\nname = \"a\"\naddresses = []\nannounce = [\"l2\", \"l2\", \"bgp\"]\ncommunities = [\"65536:1\"]\nlarge_communities = [\"1:2\"]\n\
         [[pools]]\nname = \"a\"\naddresses = [\"192.0.2.1\"]\n",
        ),
        &[
            ("pools[0].addresses", "needs at least one range"),
            ("pools[0].announce[1]", "is listed twice"),
            ("pools[0].announce", "\"bgp\" needs bgp.asn"),
            ("pools[0].communities[0]", "\"65536:1\" is not a community"),
            (
                "pools[0].large_communities[0]",
                "\"1:2\" is not a large community",
            ),
            ("pools[1].name", "\"a\" is already used by pools[0]"),
        ],
    );
    assert_only(
        "[[pools]]\nname = \"a\"\naddresses = [\"192.0.2.1\"]\nannounce = [\"arp\"]\n",
        "pools[0].announce[0]",
        "unknown variant `arp`",
    );
}

// ---------------------------------------------------------------------------------------
// Services
// ---------------------------------------------------------------------------------------

#[test]
fn duplicate_service() {
    assert_only(
        "[[services]]\nname = \"web\"\nports = [{ port = 80 }]\n[[services]]\nname = \"web\"\nnamespace = \"default\"\nports = [{ port = 81 }]\n",
        "services[1].name",
        "default/web is already defined by services[0]",
    );
    // The same name in another namespace is another service.
    valid(
        "[[services]]\nname = \"web\"\nports = [{ port = 80 }]\n[[services]]\nname = \"web\"\nnamespace = \"shop\"\nports = [{ port = 80 }]\n",
    );
}

#[test]
fn service_names_are_dns_labels() {
    let found =
        problems("[[services]]\nname = \"Web\"\nnamespace = \"my_ns\"\nports = [{ port = 80 }]\n");
    assert_has(&found, "services[0].name", "\"Web\" is not a DNS label");
    assert_has(
        &found,
        "services[0].namespace",
        "\"my_ns\" is not a DNS label",
    );
}

#[test]
fn service_needs_ports() {
    assert_only(
        "[[services]]\nname = \"a\"\n",
        "services[0].ports",
        "needs at least one port",
    );
    valid("[[services]]\nname = \"a\"\ncluster_ip = \"None\"\n");
}

#[test]
fn port_rules() {
    let found = problems(
        "[[services]]\nname = \"a\"\nports = [{ port = 0, target_port = 0 }, { name = \"x\", port = 0 }]\n",
    );
    assert_has(&found, "services[0].ports[0].port", "must be 1-65535");
    assert_has(
        &found,
        "services[0].ports[0].target_port",
        "must be 1-65535",
    );
    assert_has(
        &found,
        "services[0].ports[0].name",
        "must be set when a service has several ports",
    );
    assert_has(&found, "services[0].ports[1].port", "0/TCP is listed twice");
    // The same port number over TCP and UDP is two ports.
    valid(
        "[[services]]\nname = \"a\"\nports = [{ name = \"t\", port = 53 }, { name = \"u\", port = 53, protocol = \"UDP\" }]\n",
    );
}

#[test]
fn allocate_load_balancer_node_ports_is_for_load_balancers_only() {
    assert_only(
        "[[services]]\nname = \"a\"\ntype = \"NodePort\"\nallocate_load_balancer_node_ports = false\nports = [{ port = 80 }]\n",
        "services[0].allocate_load_balancer_node_ports",
        "only for LoadBalancer services",
    );
    valid(
        "[[pools]]\nname = \"p\"\naddresses = [\"192.0.2.0/24\"]\nannounce = [\"l2\"]\n[[services]]\nname = \"a\"\ntype = \"LoadBalancer\"\nallocate_load_balancer_node_ports = false\nports = [{ port = 80 }]\n",
    );
}

#[test]
fn node_port_out_of_range() {
    let err = check(
        r#"
[[services]]
name = "a"
ports = [{ port = 80 }]

[[services]]
name = "b"
type = "NodePort"
ports = [{ port = 80, node_port = 30080 }]

[[services]]
name = "c"
type = "NodePort"
ports = [{ port = 80, node_port = 80 }]
"#,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "services[2].ports[0].node_port: 80 is outside the NodePort range 30000-32767"
    );
    assert_only(
        "[[services]]\nname = \"a\"\ntype = \"NodePort\"\nports = [{ port = 80, node_port = 32768 }]\n",
        "services[0].ports[0].node_port",
        "32768 is outside the NodePort range 30000-32767",
    );
    valid(
        "[[services]]\nname = \"a\"\ntype = \"NodePort\"\nports = [{ port = 80, node_port = 32767 }]\n",
    );
}

#[test]
fn duplicate_node_ports() {
    assert_only(
        "[[services]]\nname = \"a\"\ntype = \"NodePort\"\nports = [{ port = 80, node_port = 30080 }]\n\
         [[services]]\nname = \"b\"\ntype = \"NodePort\"\nports = [{ port = 8080, node_port = 30080 }]\n",
        "services[1].ports[0].node_port",
        "30080/TCP is already used by services[0].ports[0].node_port",
    );
    // A TCP and a UDP node port may have the same number.
    valid(
        "[[services]]\nname = \"a\"\ntype = \"NodePort\"\nports = [{ port = 53, node_port = 30053 }]\n\
         [[services]]\nname = \"b\"\ntype = \"NodePort\"\nports = [{ port = 53, protocol = \"UDP\", node_port = 30053 }]\n",
    );
}

#[test]
fn node_port_only_on_nodeport_and_loadbalancer() {
    assert_only(
        "[[services]]\nname = \"a\"\nports = [{ port = 80, node_port = 30080 }]\n",
        "services[0].ports[0].node_port",
        "only NodePort and LoadBalancer services have node ports, this one is ClusterIP",
    );
}

#[test]
fn headless_service_with_a_node_port() {
    assert_only(
        "[[services]]\nname = \"a\"\ncluster_ip = \"None\"\nports = [{ port = 80, node_port = 30080 }]\n",
        "services[0].ports[0].node_port",
        "only NodePort and LoadBalancer services have node ports, this one is ClusterIP",
    );
}

#[test]
fn headless_service_of_type_nodeport() {
    assert_only(
        "[[services]]\nname = \"a\"\ntype = \"NodePort\"\ncluster_ip = \"None\"\nports = [{ port = 80 }]\n",
        "services[0].cluster_ip",
        "\"None\" (headless) is only for ClusterIP services; NodePort services need a cluster IP",
    );
}

#[test]
fn external_name_without_external_name() {
    assert_only(
        "[[services]]\nname = \"db\"\ntype = \"ExternalName\"\n",
        "services[0].external_name",
        "ExternalName services need external_name",
    );
}

#[test]
fn external_name_with_ports() {
    assert_only(
        "[[services]]\nname = \"db\"\ntype = \"ExternalName\"\nexternal_name = \"db.example.com\"\nports = [{ port = 5432 }]\n",
        "services[0].ports",
        "ExternalName services have no ports",
    );
    valid(
        "[[services]]\nname = \"db\"\ntype = \"ExternalName\"\nexternal_name = \"db.example.com.\"\n",
    );
}

#[test]
fn external_name_rules() {
    assert_exactly(
        &problems(
            "[[services]]\nname = \"db\"\ntype = \"ExternalName\"\nexternal_name = \"db..example.com\"\ncluster_ip = \"10.222.0.5\"\nendpoints = [{ ip = \"10.111.1.5\" }]\n\
         [[services]]\nname = \"web\"\nexternal_name = \"web.example.com\"\nports = [{ port = 80 }]\n",
        ),
        &[
            (
                "services[0].external_name",
                "\"db..example.com\" is not a DNS name",
            ),
            (
                "services[0].cluster_ip",
                "ExternalName services have no cluster IP",
            ),
            (
                "services[0].endpoints",
                "ExternalName services have no endpoints",
            ),
            (
                "services[1].external_name",
                "only for ExternalName services, this one is ClusterIP",
            ),
        ],
    );
}

#[test]
fn load_balancer_fields_only_on_load_balancers() {
    let found = problems(
        "[[services]]\nname = \"a\"\ntype = \"NodePort\"\nload_balancer_ip = \"192.0.2.10\"\npool = \"public\"\nsharing_key = \"k\"\nports = [{ port = 80 }]\n",
    );
    assert_has(
        &found,
        "services[0].load_balancer_ip",
        "only for LoadBalancer services",
    );
    assert_has(&found, "services[0].pool", "only for LoadBalancer services");
    assert_has(
        &found,
        "services[0].sharing_key",
        "only for LoadBalancer services",
    );
    assert_only(
        "[[services]]\nname = \"a\"\nexternal_traffic_policy = \"Local\"\nports = [{ port = 80 }]\n",
        "services[0].external_traffic_policy",
        "\"Local\" is only for NodePort and LoadBalancer services",
    );
}

#[test]
fn load_balancer_ip_outside_its_pool() {
    assert_only(
        &format!(
            "{POOLS}[[services]]\nname = \"a\"\ntype = \"LoadBalancer\"\npool = \"edge\"\nload_balancer_ip = \"192.0.2.10\"\nports = [{{ port = 80 }}]\n"
        ),
        "services[0].load_balancer_ip",
        "192.0.2.10 is outside pool \"edge\"",
    );
    assert_only(
        &format!(
            "{POOLS}[[services]]\nname = \"a\"\ntype = \"LoadBalancer\"\nload_balancer_ip = \"203.0.113.10\"\nports = [{{ port = 80 }}]\n"
        ),
        "services[0].load_balancer_ip",
        "203.0.113.10 is in no pool",
    );
    // Without `pool`, any pool holding the address will do, even one without auto_assign.
    valid(&format!(
        "{POOLS}[[services]]\nname = \"a\"\ntype = \"LoadBalancer\"\nload_balancer_ip = \"198.51.100.5\"\nports = [{{ port = 80 }}]\n"
    ));
}

#[test]
fn load_balancer_pool_must_exist_and_auto_assign() {
    assert_only(
        &format!(
            "{POOLS}[[services]]\nname = \"a\"\ntype = \"LoadBalancer\"\npool = \"nope\"\nports = [{{ port = 80 }}]\n"
        ),
        "services[0].pool",
        "no pool is named \"nope\"",
    );
    assert_only(
        "[[pools]]\nname = \"p\"\naddresses = [\"192.0.2.0/28\"]\nauto_assign = false\n[[services]]\nname = \"a\"\ntype = \"LoadBalancer\"\nports = [{ port = 80 }]\n",
        "services[0].pool",
        "no pool has auto_assign = true",
    );
    valid(&format!(
        "{POOLS}[[services]]\nname = \"a\"\ntype = \"LoadBalancer\"\nports = [{{ port = 80 }}]\n"
    ));
}

#[test]
fn load_balancer_ip_sharing() {
    let two = |key_a: &str, key_b: &str, policy_b: &str, proto_b: &str| {
        format!(
            "{POOLS}[[services]]\nname = \"a\"\ntype = \"LoadBalancer\"\nload_balancer_ip = \"192.0.2.20\"\n{key_a}\nports = [{{ port = 53 }}]\n\
             [[services]]\nname = \"b\"\ntype = \"LoadBalancer\"\nload_balancer_ip = \"192.0.2.20\"\n{key_b}\nexternal_traffic_policy = \"{policy_b}\"\nports = [{{ port = 53, protocol = \"{proto_b}\" }}]\n"
        )
    };
    let k = "sharing_key = \"dns\"";
    valid(&two(k, k, "Cluster", "UDP"));
    assert_only(
        &two("", "", "Cluster", "UDP"),
        "services[1].load_balancer_ip",
        "192.0.2.20 is already used by services[0]; set the same sharing_key",
    );
    assert_only(
        &two(k, "sharing_key = \"other\"", "Cluster", "UDP"),
        "services[1].load_balancer_ip",
        "is already used by services[0]",
    );
    assert_only(
        &two(k, k, "Local", "UDP"),
        "services[1].external_traffic_policy",
        "need the same policy as services[0]",
    );
    assert_only(
        &two(k, k, "Cluster", "TCP"),
        "services[1].ports",
        "53/TCP is already served on the shared IP 192.0.2.20 by services[0]",
    );
}

#[test]
fn health_check_rules() {
    assert_exactly(
        &problems(
            "[[services]]\nname = \"a\"\nports = [{ port = 80 }]\n\
         health_check = { kind = \"http\", interval_ms = 100, timeout_ms = 200, rise = 0, fall = 0, path = \"healthz\", port = 0 }\n",
        ),
        &[
            (
                "services[0].health_check.timeout_ms",
                "200 must be above 0 and at most interval_ms (100)",
            ),
            ("services[0].health_check.rise", "must be at least 1"),
            ("services[0].health_check.fall", "must be at least 1"),
            (
                "services[0].health_check.path",
                "\"healthz\" must start with '/'",
            ),
            ("services[0].health_check.port", "must be 1-65535"),
        ],
    );
    assert_only(
        "[[services]]\nname = \"a\"\nports = [{ port = 80 }]\nhealth_check = { kind = \"tcp\", path = \"/\" }\n",
        "services[0].health_check.path",
        "only for kind = \"http\"",
    );
    assert_only(
        "[[services]]\nname = \"a\"\nports = [{ port = 80 }]\nhealth_check = { kind = \"icmp\" }\n",
        "services[0].health_check.kind",
        "unknown variant `icmp`",
    );
    let config = valid(
        "[[services]]\nname = \"a\"\nports = [{ port = 80 }]\nhealth_check = { kind = \"tcp\" }\n",
    );
    let h = config.services[0].health_check.as_ref().unwrap();
    assert_eq!(
        (h.interval_ms, h.timeout_ms, h.rise, h.fall),
        (1000, 500, 2, 2)
    );
}

#[test]
fn endpoint_rules() {
    assert_exactly(
        &problems(
            "[[services]]\nname = \"a\"\ncluster_ip = \"None\"\nendpoints = [{ ip = \"0.0.0.0\", hostname = \"Web_0\", node = \"-n\" }]\n",
        ),
        &[
            (
                "services[0].endpoints[0].ip",
                "0.0.0.0 is not a unicast host address",
            ),
            (
                "services[0].endpoints[0].hostname",
                "\"Web_0\" is not a DNS label",
            ),
            ("services[0].endpoints[0].node", "\"-n\" is not a DNS label"),
        ],
    );
}

// ---------------------------------------------------------------------------------------
// Environment overrides
// ---------------------------------------------------------------------------------------

#[test]
fn env_overrides_admin_listen() {
    let config = check_with_env(
        "[admin]\nlisten = \"127.0.0.1:9470\"\n",
        &[("DOCKLINE__ADMIN__LISTEN", "127.0.0.1:9999")],
    )
    .unwrap();
    assert_eq!(config.admin.listen, "127.0.0.1:9999".parse().unwrap());
}

#[test]
fn env_overrides_dns_ttl() {
    let config = check_with_env("[dns]\nttl = 5\n", &[("DOCKLINE__DNS__TTL", "30")]).unwrap();
    assert_eq!(config.dns.ttl, 30);
    // Also when the file does not mention the key, or the section.
    let config = check_with_env("[node]\nname = \"n\"\n", &[("DOCKLINE__DNS__TTL", "30")]).unwrap();
    assert_eq!(config.dns.ttl, 30);
}

#[test]
fn env_overrides_lists_comma_separated() {
    let config = check_with_env(
        "[dns]\nlisten = [\"127.0.0.1:5353\"]\n",
        &[("DOCKLINE__DNS__LISTEN", "127.0.0.1:53,[::1]:53")],
    )
    .unwrap();
    assert_eq!(
        config.dns.listen,
        vec!["127.0.0.1:53".parse().unwrap(), "[::1]:53".parse().unwrap()]
    );
    // A single value is a list of one.
    let config = check_with_env("", &[("DOCKLINE__DNS__LISTEN", "127.0.0.1:53")]).unwrap();
    assert_eq!(config.dns.listen, vec!["127.0.0.1:53".parse().unwrap()]);
    let config = check_with_env(
        "[node]\ninternal_ip = \"172.30.0.11\"\n[cluster.gossip]\ninsecure = true\n",
        &[
            ("DOCKLINE__L2__INTERFACES", "eth0,eth1"),
            ("DOCKLINE__DNS__FORWARD", "172.30.0.1,172.30.0.2:5353"),
            ("DOCKLINE__CLUSTER__GOSSIP__LISTEN", "172.30.0.11:7946"),
            (
                "DOCKLINE__CLUSTER__GOSSIP__SEEDS",
                "172.30.0.12:7946,172.30.0.13:7946",
            ),
        ],
    )
    .unwrap();
    assert_eq!(config.l2.interfaces, ["eth0", "eth1"]);
    assert_eq!(config.dns.forward.len(), 2);
    assert_eq!(config.dns.forward[0].0, "172.30.0.1:53".parse().unwrap());
    assert_eq!(config.cluster.gossip.seeds.len(), 2);
}

#[test]
fn env_override_keeps_the_rest_of_the_file() {
    let config = check_with_env(
        "[node]\nname = \"node-7\"\nannotations = { \"node.deckhouse.io/nodeport-bind-internal-ip\" = \"false\" }\n[[services]]\nname = \"a\"\nports = [{ port = 80 }]\n",
        &[("DOCKLINE__DNS__TTL", "9"), ("DOCKLINE__PROXY__ENABLED", "false")],
    )
    .unwrap();
    assert_eq!(config.node.name, "node-7");
    assert!(!config.node.nodeport_binds_internal_ip_only());
    assert_eq!(config.services.len(), 1);
    assert!(!config.proxy.enabled);
}

#[test]
fn env_without_the_prefix_is_ignored() {
    let config = check_with_env(
        "",
        &[
            ("DOCKLINEX__DNS__TTL", "30"),
            ("DNS__TTL", "31"),
            ("PATH", "/usr/bin"),
            ("DOCKLINE_DNS_TTL", "32"),
        ],
    )
    .unwrap();
    assert_eq!(config.dns.ttl, 5);
}

#[test]
fn bad_env_value_is_reported_with_its_path() {
    let err = check_with_env("", &[("DOCKLINE__DNS__TTL", "soon")]).unwrap_err();
    assert_eq!(err.len(), 1, "{err}");
    assert_eq!(err.0[0].path, "dns.ttl");
    assert!(err.0[0].message.contains("invalid type"), "{err}");
    let err = check_with_env("", &[("DOCKLINE__ADMIN__LISTEN", "localhost")]).unwrap_err();
    assert_has(&err.0, "admin.listen", "invalid socket address syntax");
    let err = check_with_env("", &[("DOCKLINE__DNS__TTLS", "5")]).unwrap_err();
    assert_has(&err.0, "dns.ttls", "unknown field `ttls`");
    // Overrides are validated like the file.
    let err = check_with_env(
        "",
        &[("DOCKLINE__DNS__LISTEN", "127.0.0.1:53,127.0.0.1:53")],
    )
    .unwrap_err();
    assert_has(&err.0, "dns.listen[1]", "127.0.0.1:53 is listed twice");
}

#[test]
fn env_overrides_apply_to_files() {
    let path = scratch("env-file").join("dockline.toml");
    std::fs::write(&path, "[admin]\nlisten = \"127.0.0.1:9470\"\n").unwrap();
    let source = Source::File(path.clone());
    let config = load_with_env(
        &source,
        env(&[("DOCKLINE__ADMIN__LISTEN", "127.0.0.1:9999")]),
    )
    .unwrap();
    assert_eq!(config.admin.listen.port(), 9999);
    let err =
        load_with_env(&source, env(&[("DOCKLINE__ADMIN__LISTEN", "127.0.0.1:0")])).unwrap_err();
    assert_has(&err.0, "admin.listen", "needs a port other than 0");
}

#[test]
fn env_values_are_text_until_the_schema_converts_them() {
    // A string that looks like a number stays as written.
    let config = check_with_env("", &[("DOCKLINE__NODE__NAME", "007")]).unwrap();
    assert_eq!(config.node.name, "007");
    let config = check_with_env("", &[("DOCKLINE__NODE__NAME", "1e5")]).unwrap();
    assert_eq!(config.node.name, "1e5");
    // A number that is not an integer is refused, not rounded.
    let err = check_with_env("", &[("DOCKLINE__DNS__TTL", "5.5")]).unwrap_err();
    assert_has(&err.0, "dns.ttl", "invalid type: string \"5.5\"");
    let err = check_with_env("", &[("DOCKLINE__DNS__TTL", "4294967296")]).unwrap_err();
    assert_has(&err.0, "dns.ttl", "4294967296");
    // Optional numbers and booleans convert from text.
    let config = check_with_env(
        "[node]\ninternal_ip = \"172.30.0.11\"\n",
        &[
            ("DOCKLINE__BGP__ASN", "64513"),
            ("DOCKLINE__DNS__ENABLED", "false"),
        ],
    )
    .unwrap();
    assert_eq!(config.bgp.asn, Some(64513));
    assert!(!config.dns.enabled);
}

#[test]
fn env_list_values_are_trimmed_and_may_be_empty() {
    let config = check_with_env(
        "[l2]\ninterfaces = [\"eth0\"]\n",
        &[
            ("DOCKLINE__L2__INTERFACES", ""),
            ("DOCKLINE__DNS__LISTEN", "127.0.0.1:53, [::1]:53"),
        ],
    )
    .unwrap();
    assert!(config.l2.interfaces.is_empty());
    assert_eq!(config.dns.listen.len(), 2);
    // A list override replaces the file's list instead of merging with it.
    let config = check_with_env(
        "[dns]\nlisten = [\"127.0.0.1:5353\", \"127.0.0.2:5353\", \"127.0.0.3:5353\"]\n",
        &[("DOCKLINE__DNS__LISTEN", "127.0.0.9:53")],
    )
    .unwrap();
    assert_eq!(config.dns.listen, vec!["127.0.0.9:53".parse().unwrap()]);
    let err = check_with_env(
        "",
        &[("DOCKLINE__CLUSTER__GOSSIP__SEEDS", "172.30.0.12:7946,nope")],
    )
    .unwrap_err();
    assert_has(
        &err.0,
        "cluster.gossip.seeds[1]",
        "invalid socket address syntax",
    );
}

#[test]
fn gossip_timing_follows_the_profile_and_is_checked() {
    let base = "[node]\ninternal_ip = \"172.30.0.11\"\n[cluster.gossip]\nlisten = \"172.30.0.11:7946\"\ninsecure = true\n";
    let fast = valid(&format!(
        "{base}profile = \"fast\"\nsuspect_timeout_ms = 50\n"
    ));
    let t = fast.cluster.gossip.timing();
    assert_eq!(
        (
            t.probe_interval_ms,
            t.probe_timeout_ms,
            t.suspect_timeout_ms
        ),
        (30, 15, 50)
    );
    assert_only(
        &format!("{base}probe_interval_ms = 100\nprobe_timeout_ms = 100\n"),
        "cluster.gossip.probe_timeout_ms",
        "less than probe_interval_ms",
    );
    assert_only(
        &format!("{base}suspect_timeout_ms = 1\n"),
        "cluster.gossip.suspect_timeout_ms",
        "outside 5-60000",
    );
    assert_has(
        &problems(&format!("{base}profile = \"slow\"\n")),
        "cluster.gossip.profile",
        "slow",
    );
}

#[test]
fn gratuitous_settings_are_checked() {
    assert_only(
        "[l2]\ngratuitous_count = 1000\n",
        "l2.gratuitous_count",
        "at most 100",
    );
    assert_only(
        "[l2]\ngratuitous_interval_ms = 0\n",
        "l2.gratuitous_interval_ms",
        "1-10000",
    );
}

// ---------------------------------------------------------------------------------------
// Proxy
// ---------------------------------------------------------------------------------------

#[test]
fn proxy_limits_have_defaults_and_zero_timeouts_are_rejected() {
    let config = valid("[node]\nname = \"n\"\n");
    assert_eq!(config.proxy.connect_timeout_ms, 5000);
    assert_eq!(config.proxy.idle_timeout_s, 3600);
    assert_eq!(config.proxy.udp_idle_timeout_s, 30);
    assert_eq!(config.proxy.drain_grace_s, 30);
    assert_exactly(
        &problems(
            "[node]\nname = \"n\"\n[proxy]\nconnect_timeout_ms = 0\nidle_timeout_s = 0\nudp_idle_timeout_s = 0\n",
        ),
        &[
            ("proxy.connect_timeout_ms", "must be above 0"),
            ("proxy.idle_timeout_s", "must be above 0"),
            ("proxy.udp_idle_timeout_s", "must be above 0"),
        ],
    );
}

#[test]
fn load_balancing_and_connection_cap_per_service() {
    let base = "[node]\nname = \"n\"\n[[services]]\nname = \"web\"\ncluster_ip = \"10.222.0.10\"\nports = [{ port = 80 }]\n";
    let config = valid(base);
    assert_eq!(
        config.services[0].load_balancing,
        dockline_config::LoadBalancing::RoundRobin
    );
    assert_eq!(config.services[0].max_connections, None);
    let config = valid(&format!(
        "{base}load_balancing = \"Maglev\"\nmax_connections = 100\n"
    ));
    assert_eq!(
        config.services[0].load_balancing,
        dockline_config::LoadBalancing::Maglev
    );
    assert_eq!(config.services[0].max_connections, Some(100));
    assert_only(
        &format!("{base}max_connections = 0\n"),
        "services[0].max_connections",
        "must be at least 1",
    );
    assert!(!problems(&format!("{base}load_balancing = \"Random\"\n")).is_empty());
}

#[test]
fn proxy_protocol_per_service() {
    let base = "[node]\nname = \"n\"\n[[services]]\nname = \"web\"\ncluster_ip = \"10.222.0.10\"\nports = [{ port = 80 }]\n";
    assert_eq!(
        valid(base).services[0].proxy_protocol,
        dockline_config::ProxyProtocol::None
    );
    for (text, want) in [
        ("none", dockline_config::ProxyProtocol::None),
        ("v1", dockline_config::ProxyProtocol::V1),
        ("v2", dockline_config::ProxyProtocol::V2),
    ] {
        let config = valid(&format!("{base}proxy_protocol = \"{text}\"\n"));
        assert_eq!(config.services[0].proxy_protocol, want);
    }
    assert!(!problems(&format!("{base}proxy_protocol = \"v3\"\n")).is_empty());
    assert_only(
        "[node]\nname = \"n\"\n[[services]]\nname = \"db\"\ncluster_ip = \"None\"\nproxy_protocol = \"v2\"\n",
        "services[0].proxy_protocol",
        "only for services the proxy forwards (not headless or ExternalName)",
    );
    assert_only(
        "[node]\nname = \"n\"\n[[services]]\nname = \"ext\"\ntype = \"ExternalName\"\nexternal_name = \"example.org\"\nproxy_protocol = \"v1\"\n",
        "services[0].proxy_protocol",
        "only for services the proxy forwards (not headless or ExternalName)",
    );
}

#[test]
fn http_check_path_defaults_to_root() {
    let config = valid(
        "[node]\nname = \"n\"\n[[services]]\nname = \"web\"\ncluster_ip = \"10.222.0.10\"\nports = [{ port = 80 }]\nhealth_check = { kind = \"http\" }\n",
    );
    assert_eq!(
        config.services[0]
            .health_check
            .as_ref()
            .unwrap()
            .http_path(),
        "/"
    );
}

#[test]
fn l2_with_peers_needs_gossip() {
    assert_only(
        "[node]\ninternal_ip = \"172.30.0.11\"\npod_cidr = \"10.111.1.0/24\"\n[l2]\ninterfaces = [\"eth0\"]\n\
         [[network.nodes]]\nname = \"n2\"\ninternal_ip = \"172.30.0.12\"\npod_cidr = \"10.111.2.0/24\"\n",
        "cluster.gossip.listen",
        "every node would answer",
    );
}

#[test]
fn an_etcd_source_needs_endpoints_and_a_clean_prefix() {
    let found =
        problems("[node]\nname = \"n\"\n[source]\nkind = \"etcd\"\nprefix = \"dockline/\"\n");
    assert_exactly(
        &found,
        &[
            ("source.endpoints", "required with kind = \"etcd\""),
            ("source.prefix", "must start with /"),
        ],
    );
}

#[test]
fn etcd_endpoints_are_urls_and_tls_files_ask_for_https() {
    let found = problems(
        "[node]\nname = \"n\"\n[source]\nkind = \"etcd\"\nca_file = \"/etc/ca.pem\"\n\
         endpoints = [\"10.0.0.1:2379\", \"http://10.0.0.2:2379\", \"ftp://x:1\"]\n",
    );
    assert_exactly(
        &found,
        &[
            ("source.endpoints[0]", "is not a URL"),
            ("source.endpoints[1]", "write https://"),
            ("source.endpoints[2]", "is not http or https"),
        ],
    );
}

#[test]
fn etcd_credentials_come_in_pairs() {
    let found = problems(
        "[node]\nname = \"n\"\n[source]\nkind = \"etcd\"\nendpoints = [\"https://e:2379\"]\n\
         cert_file = \"/c.pem\"\nusername = \"node\"\n",
    );
    assert_exactly(
        &found,
        &[
            ("source.key_file", "cert_file and key_file go together"),
            (
                "source.password_file",
                "username and password_file go together",
            ),
        ],
    );
}

#[test]
fn etcd_keys_are_refused_with_the_file_source() {
    assert_only(
        "[node]\nname = \"n\"\n[source]\nendpoints = [\"http://e:2379\"]\n",
        "source.endpoints",
        "only used with kind = \"etcd\"",
    );
}

#[test]
fn a_file_source_keeps_the_serialized_config_unchanged() {
    let config = valid("[node]\nname = \"n\"\n[source]\nkind = \"file\"\n");
    let json = serde_json::to_string(&config).unwrap();
    assert!(!json.contains("source"), "{json}");
}

const LOCAL_ETCD: &str =
    "[node]\nname = \"n\"\n[source]\nkind = \"etcd\"\nendpoints = [\"http://127.0.0.1:2379\"]\n";

#[test]
fn a_split_config_takes_node_from_the_local_file_and_the_rest_from_the_shared_document() {
    let config = parse_split(
        ("local.toml", LOCAL_ETCD),
        ("/dockline/config", "[dns]\nttl = 9\n"),
        NO_ENV,
    )
    .unwrap();
    validate(&config).unwrap();
    assert_eq!((config.node.name.as_str(), config.dns.ttl), ("n", 9));
    assert_eq!(config.source.document_key(), "/dockline/config");
}

#[test]
fn sections_on_the_wrong_side_of_a_split_config_are_named() {
    let Err(found) = parse_split(
        ("local.toml", &format!("{LOCAL_ETCD}[dns]\nttl = 9\n")),
        ("/dockline/config", "[node]\nname = \"m\"\n"),
        NO_ENV,
    ) else {
        panic!("expected problems");
    };
    assert_exactly(
        &found.0,
        &[
            ("node", "belongs in each node's local file"),
            ("dns", "comes from the shared document"),
        ],
    );
}

#[test]
fn a_split_config_names_the_shared_document_in_syntax_errors_and_applies_the_environment() {
    let Err(found) = parse_split(("local.toml", LOCAL_ETCD), ("/d/config", "[dns\n"), NO_ENV)
    else {
        panic!("expected problems");
    };
    assert!(found.0[0].path.starts_with("/d/config:1:"), "{found}");
    let config = parse_split(
        ("local.toml", LOCAL_ETCD),
        ("/d/config", "[dns]\nttl = 9\n"),
        env(&[("DOCKLINE__DNS__TTL", "7")]),
    )
    .unwrap();
    assert_eq!(config.dns.ttl, 7);
}

#[test]
fn vxlan_over_ipv6_is_accepted_when_every_node_is_on_ipv6() {
    let ipv6 = "[node]\ninternal_ip = \"fd00::11\"\npod_cidr = \"10.111.1.0/24\"\n[network]\ntunnel_mode = \"VXLAN\"\n[[network.nodes]]\nname = \"node-2\"\ninternal_ip = \"fd00::12\"\npod_cidr = \"10.111.2.0/24\"\n";
    check(ipv6).unwrap();
    assert_exactly(
        &problems(&ipv6.replace("fd00::12", "172.30.0.12")),
        &[(
            "network.nodes[0].internal_ip",
            "172.30.0.12: the VXLAN underlay is one address family, and node.internal_ip fd00::11 is the other",
        )],
    );
}

#[test]
fn a_vxlan_node_with_a_pod_range_needs_an_internal_ip() {
    assert_only(
        "[node]\npod_cidr = \"10.111.1.0/24\"\n[network]\ntunnel_mode = \"VXLAN\"\n",
        "node.internal_ip",
        "must be set in VXLAN mode",
    );
}

#[test]
fn classic_mode_over_ipv6_is_accepted() {
    let text = "[node]\ninternal_ip = \"fd00::11\"\npod_cidr = \"fd00:111:0:1::/64\"\n[cluster]\npod_cidr = \"fd00:111::/48\"\nservice_cidr = \"fd00:222::/108\"\n[[network.nodes]]\nname = \"node-2\"\ninternal_ip = \"fd00::12\"\npod_cidr = \"fd00:111:0:2::/64\"\n";
    valid(text);
}
