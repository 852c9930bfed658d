//! The checks of `dockline doctor`, without I/O: each reads the config and asks a [`Host`]
//! what it needs to know, and returns one [`Finding`] (ok, warn or fail, with a fix for a
//! problem). The real host is in [`super`]; the tests below use a fake one.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use dockline_config::{Config, Protocol, TunnelMode};

/// A capability: its number in linux/capability.h and its name without `CAP_`.
type Capability = (u32, &'static str);
const NET_BIND_SERVICE: Capability = (10, "NET_BIND_SERVICE");
const NET_ADMIN: Capability = (12, "NET_ADMIN");
const NET_RAW: Capability = (13, "NET_RAW");

/// Where a daemon that changes sysctls records the values it found, per owner and network
/// namespace (`dockline_routes::sysctl`): one `<file> <host value> <dockline's value>` line
/// per setting. A clean stop removes the record.
pub(crate) const SYSCTL_RECORD: &str = "/run/dockline/<owner>-<netns>.sysctl";

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Ok,
    Warn,
    Fail,
}

/// One line of the doctor's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub(crate) level: Level,
    /// What was checked, in a few words ("ip_forward", "port 10.0.0.1:53/UDP").
    pub(crate) check: String,
    /// What was found.
    pub(crate) detail: String,
    /// What to do about a problem; `None` when all is well.
    pub(crate) fix: Option<String>,
}

impl Finding {
    fn ok(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Finding {
            level: Level::Ok,
            check: check.into(),
            detail: detail.into(),
            fix: None,
        }
    }

    fn problem(
        level: Level,
        check: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Finding {
            level,
            check: check.into(),
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        };
        write!(f, "{level:<4}  {}: {}", self.check, self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n      fix: {fix}")?;
        }
        Ok(())
    }
}

/// A network interface as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Interface {
    pub(crate) up: bool,
    pub(crate) mtu: u32,
}

/// A socket bound on the host, from /proc/net/{tcp,udp}{,6}.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bound {
    pub(crate) protocol: Protocol,
    pub(crate) addr: SocketAddr,
}

/// The outcome of a TCP connection attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reach {
    Connected,
    /// The host answered with a reset: it is there, nothing listens (or it refuses us).
    Refused,
    /// No answer in time, or no route: the error's text.
    Unreachable(String),
}

/// What the checks ask the host. Each answer is one fact; the checks judge it.
pub(crate) trait Host {
    /// The process's effective capability set (CapEff).
    fn capabilities(&self) -> u64;
    /// A sysctl's value, the key relative to /proc/sys; `None` when it does not exist.
    fn sysctl(&self, key: &str) -> Option<String>;
    /// Whether this process can write sysctls (/proc/sys is not read-only here).
    fn sysctls_writable(&self) -> bool;
    /// The interface of that name, if it exists.
    fn interface(&self, name: &str) -> Option<Interface>;
    /// The name of the interface that carries `ip`, if one does.
    fn interface_with(&self, ip: IpAddr) -> Option<String>;
    /// Every bound TCP listener and UDP socket.
    fn bound_sockets(&self) -> Vec<Bound>;
    /// Binds UDP `port` on every address and lets it go again: the error's text if that
    /// fails.
    fn udp_port_free(&self, port: u16) -> Result<(), String>;
    /// Opens /dev/net/tun: the error's text if that fails.
    fn tun(&self) -> Result<(), String>;
    /// A TCP connection to `addr`, with a short timeout.
    fn connect(&self, addr: SocketAddr) -> Reach;
    /// The text of every [`SYSCTL_RECORD`] of this network namespace, if there is one.
    fn sysctl_record(&self) -> Option<String>;
}

/// What the enabled components open, from the config and the snapshot built from it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    /// (component, protocol, address) of every socket the daemon will bind.
    pub(crate) listens: Vec<(&'static str, Protocol, SocketAddr)>,
    /// The L2 announcer runs (it needs raw sockets and its interfaces).
    pub(crate) l2: bool,
}

/// Every check, in the order the report prints them.
pub(crate) fn run(config: &Config, plan: &Plan, host: &dyn Host) -> Vec<Finding> {
    let mut findings = vec![capabilities(plan, host)];
    findings.extend(ports(plan, host));
    findings.push(ip_forward(config, host));
    if plan.l2 {
        for interface in &config.l2.interfaces {
            findings.push(l2_interface(interface, host));
            findings.push(arp_sysctls(interface, host));
        }
    }
    if config.network.tunnel_mode == TunnelMode::Vxlan {
        findings.push(tun(host));
        findings.push(vxlan_port(config, host));
        findings.push(underlay_mtu(config, host));
    }
    findings.push(rp_filter(config, host));
    for peer in &config.bgp.peers {
        findings.push(bgp_peer(SocketAddr::new(peer.address, peer.port), host));
    }
    findings.push(leftover_sysctls(host));
    findings
}

/// NET_ADMIN always (the routes component adds service addresses), NET_RAW for the L2
/// announcer's packet sockets, NET_BIND_SERVICE for a port under
/// `net.ipv4.ip_unprivileged_port_start`.
fn capabilities(plan: &Plan, host: &dyn Host) -> Finding {
    let unprivileged_from: u16 = host
        .sysctl("net/ipv4/ip_unprivileged_port_start")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1024);
    let mut needed = vec![(NET_ADMIN, "routes".to_owned())];
    if plan.l2 {
        needed.push((NET_RAW, "l2".to_owned()));
    }
    if let Some((component, _, addr)) = plan
        .listens
        .iter()
        .find(|(_, _, addr)| addr.port() < unprivileged_from)
    {
        needed.push((NET_BIND_SERVICE, format!("{component} on {addr}")));
    }
    let held = host.capabilities();
    let missing: Vec<String> = needed
        .iter()
        .filter(|((bit, _), _)| held & (1 << bit) == 0)
        .map(|((_, name), why)| format!("{name} (for {why})"))
        .collect();
    let names: Vec<&str> = needed.iter().map(|((_, name), _)| *name).collect();
    if missing.is_empty() {
        return Finding::ok("capabilities", format!("holds {}", names.join(", ")));
    }
    let adds: Vec<String> = names.iter().map(|n| format!("--cap-add {n}")).collect();
    Finding::problem(
        Level::Fail,
        "capabilities",
        format!("missing {}", missing.join(", ")),
        format!(
            "run as root, or give them: `docker run {}`, or AmbientCapabilities= in the systemd unit",
            adds.join(" ")
        ),
    )
}

/// Each socket the daemon will bind, against those bound already. A wildcard address
/// clashes with every address of the port.
fn ports(plan: &Plan, host: &dyn Host) -> Vec<Finding> {
    let bound = host.bound_sockets();
    let clashes = |protocol: Protocol, addr: &SocketAddr| {
        bound.iter().any(|b| {
            b.protocol == protocol
                && b.addr.port() == addr.port()
                && (b.addr.ip() == addr.ip()
                    || b.addr.ip().is_unspecified()
                    || addr.ip().is_unspecified())
        })
    };
    let taken: Vec<Finding> = plan
        .listens
        .iter()
        .filter(|(_, protocol, addr)| clashes(*protocol, addr))
        .map(|(component, protocol, addr)| {
            let flag = if *protocol == Protocol::Udp { "u" } else { "t" };
            Finding::problem(
                Level::Fail,
                format!("port {addr}/{protocol}"),
                format!("{component} needs it, and another socket holds it"),
                format!(
                    "find the holder with `ss -lpn{flag} 'sport = :{}'` (a running dockline holds its own) and stop it, or change the port in the config",
                    addr.port()
                ),
            )
        })
        .collect();
    if taken.is_empty() {
        vec![Finding::ok(
            "ports",
            format!("all {} listening addresses are free", plan.listens.len()),
        )]
    } else {
        taken
    }
}

/// Pods on this node reach other nodes' pods through it: forwarding must be on.
fn ip_forward(config: &Config, host: &dyn Host) -> Finding {
    const KEY: &str = "net/ipv4/ip_forward";
    if config.node.pod_cidr.is_none() {
        return Finding::ok("ip_forward", "not needed: node.pod_cidr is not set");
    }
    match host.sysctl(KEY).as_deref().map(str::trim) {
        Some("1") => Finding::ok("ip_forward", "on"),
        value => Finding::problem(
            Level::Fail,
            "ip_forward",
            format!(
                "is {}; pod traffic through this node would be dropped",
                value.unwrap_or("unknown")
            ),
            "`sysctl -w net.ipv4.ip_forward=1`, and keep it in /etc/sysctl.d/",
        ),
    }
}

fn l2_interface(name: &str, host: &dyn Host) -> Finding {
    let check = format!("l2 interface {name}");
    match host.interface(name) {
        Some(Interface { up: true, .. }) => Finding::ok(check, "exists and is up"),
        Some(_) => Finding::problem(
            Level::Fail,
            check,
            "is down",
            format!("`ip link set {name} up`"),
        ),
        None => Finding::problem(
            Level::Fail,
            check,
            "does not exist",
            "name an existing interface in l2.interfaces (see `ip link`)",
        ),
    }
}

/// The announcer sets `arp_ignore = 1` and `arp_announce = 2` itself; it cannot where
/// /proc/sys is read-only (a container), and then the host must.
fn arp_sysctls(interface: &str, host: &dyn Host) -> Finding {
    let check = format!("arp sysctls on {interface}");
    let wanted = [("arp_ignore", "1"), ("arp_announce", "2")];
    let wrong: Vec<(String, String, &str)> = wanted
        .iter()
        .filter_map(|(key, value)| {
            let full = format!("net.ipv4.conf.{interface}.{key}");
            let now = host.sysctl(&full.replace('.', "/"))?.trim().to_owned();
            (now != *value).then_some((full, now, *value))
        })
        .collect();
    if wrong.is_empty() {
        return Finding::ok(
            check,
            "arp_ignore=1 arp_announce=2 (or the interface is missing)",
        );
    }
    let found: Vec<String> = wrong
        .iter()
        .map(|(k, now, _)| format!("{k}={now}"))
        .collect();
    if host.sysctls_writable() {
        return Finding::ok(
            check,
            format!("{}; dockline sets them at start", found.join(" ")),
        );
    }
    let sets: Vec<String> = wrong.iter().map(|(k, _, v)| format!("{k}={v}")).collect();
    Finding::problem(
        Level::Fail,
        check,
        format!("{}, and /proc/sys cannot be written here", found.join(" ")),
        format!("on the host: `sysctl -w {}`", sets.join(" ")),
    )
}

fn tun(host: &dyn Host) -> Finding {
    match host.tun() {
        Ok(()) => Finding::ok("/dev/net/tun", "opens"),
        Err(error) => Finding::problem(
            Level::Fail,
            "/dev/net/tun",
            format!("cannot be opened ({error}); the VXLAN TAP device cannot be created"),
            "`modprobe tun`; in a container add `--device /dev/net/tun`",
        ),
    }
}

fn vxlan_port(config: &Config, host: &dyn Host) -> Finding {
    let port = config.network.vxlan.port;
    let check = format!("vxlan port {port}/UDP");
    match host.udp_port_free(port) {
        Ok(()) => Finding::ok(check, "free"),
        Err(error) => Finding::problem(
            Level::Fail,
            check,
            format!("cannot be bound ({error})"),
            format!(
                "remove the other tunnel (`ip -d link | grep 'dstport {port}'`) or set network.vxlan.port"
            ),
        ),
    }
}

/// The interface that carries `node.internal_ip` must pass packets of `underlay_mtu`.
fn underlay_mtu(config: &Config, host: &dyn Host) -> Finding {
    let wanted = config.network.vxlan.underlay_mtu;
    let Some(ip) = config.node.internal_ip else {
        return Finding::ok("underlay mtu", "not checked: node.internal_ip is not set");
    };
    let Some((name, interface)) = host
        .interface_with(ip)
        .and_then(|name| host.interface(&name).map(|i| (name, i)))
    else {
        return Finding::problem(
            Level::Fail,
            "underlay mtu",
            format!("no interface carries node.internal_ip {ip}"),
            "add the address to the node's interface or fix node.internal_ip",
        );
    };
    let check = format!("underlay mtu on {name}");
    if interface.mtu < wanted {
        Finding::problem(
            Level::Fail,
            check,
            format!(
                "{} is below network.vxlan.underlay_mtu = {wanted}",
                interface.mtu
            ),
            format!(
                "set network.vxlan.underlay_mtu = {}, or `ip link set {name} mtu {wanted}`",
                interface.mtu
            ),
        )
    } else {
        Finding::ok(check, format!("{} >= {wanted}", interface.mtu))
    }
}

/// Strict reverse-path filtering (1) drops overlay traffic whose source is routed via
/// another device; the kernel applies the larger of `all` and the device's value.
fn rp_filter(config: &Config, host: &dyn Host) -> Finding {
    let device = &config.network.vxlan.device;
    let value = |scope: &str| {
        host.sysctl(&format!("net/ipv4/conf/{scope}/rp_filter"))
            .and_then(|v| v.trim().parse::<u8>().ok())
    };
    let effective = match value(device) {
        Some(own) => own.max(value("all").unwrap_or(0)),
        None => value("all").unwrap_or(0),
    };
    let on = if host.interface(device).is_some() {
        device.as_str()
    } else {
        "all"
    };
    if effective == 1 {
        Finding::problem(
            Level::Warn,
            format!("rp_filter ({on})"),
            "strict (1): pod traffic arriving through the overlay may be dropped",
            format!(
                "`sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.{device}.rp_filter=2` (loose)"
            ),
        )
    } else {
        Finding::ok(format!("rp_filter ({on})"), format!("{effective}"))
    }
}

fn bgp_peer(addr: SocketAddr, host: &dyn Host) -> Finding {
    let check = format!("bgp peer {addr}");
    match host.connect(addr) {
        Reach::Connected => Finding::ok(check, "accepts TCP connections"),
        Reach::Refused => Finding::problem(
            Level::Warn,
            check,
            "answers, but refuses the connection",
            "configure this node as a neighbor on the router, or check bgp.peers[].port",
        ),
        Reach::Unreachable(error) => Finding::problem(
            Level::Fail,
            check,
            format!("unreachable ({error})"),
            "check the route to the peer and the firewalls between (TCP port 179)",
        ),
    }
}

/// Parses [`SYSCTL_RECORD`]s: key under /proc/sys -> the host's value before dockline;
/// malformed lines are skipped.
pub(crate) fn parse_record(text: &str) -> BTreeMap<String, String> {
    dockline_routes::sysctl::parse_record(text)
        .into_iter()
        .filter_map(|entry| {
            let key = entry.path.strip_prefix("/proc/sys").ok()?;
            Some((key.to_string_lossy().into_owned(), entry.original))
        })
        .collect()
}

/// A daemon killed with SIGKILL could not restore what it changed; its record says what.
fn leftover_sysctls(host: &dyn Host) -> Finding {
    const CHECK: &str = "sysctls left by a killed daemon";
    let Some(text) = host.sysctl_record() else {
        return Finding::ok(CHECK, "no record");
    };
    let changed: Vec<(String, String, String)> = parse_record(&text)
        .into_iter()
        .filter_map(|(key, before)| {
            let now = host.sysctl(&key)?.trim().to_owned();
            (now != before).then_some((key, now, before))
        })
        .collect();
    if changed.is_empty() {
        return Finding::ok(CHECK, format!("{SYSCTL_RECORD} matches the host"));
    }
    let found: Vec<String> = changed
        .iter()
        .map(|(key, now, before)| format!("{key} is {now}, was {before}"))
        .collect();
    let restores: Vec<String> = changed
        .iter()
        .map(|(key, _, before)| format!("{}={before}", key.replace('/', ".")))
        .collect();
    Finding::problem(
        Level::Warn,
        CHECK,
        format!(
            "{} (by {SYSCTL_RECORD}, unless dockline runs now)",
            found.join("; ")
        ),
        format!(
            "start dockline (it restores them), or `sysctl -w {}` and remove {SYSCTL_RECORD}",
            restores.join(" ")
        ),
    )
}

/// Parses /proc/net/{tcp,udp}{,6}: the TCP sockets in LISTEN and every bound UDP socket.
pub(crate) fn parse_proc_net(text: &str, protocol: Protocol) -> Vec<Bound> {
    const TCP_LISTEN: &str = "0A";
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            if protocol == Protocol::Tcp && state != TCP_LISTEN {
                return None;
            }
            let (ip, port) = local.split_once(':')?;
            Some(Bound {
                protocol,
                addr: SocketAddr::new(parse_proc_ip(ip)?, u16::from_str_radix(port, 16).ok()?),
            })
        })
        .collect()
}

/// The kernel prints addresses as 32-bit words in host byte order (little-endian here).
fn parse_proc_ip(hex: &str) -> Option<IpAddr> {
    let words: Vec<u32> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect::<Option<_>>()?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A host set up right for the config below; each test breaks one thing.
    #[derive(Default)]
    struct FakeHost {
        capabilities: u64,
        sysctls: BTreeMap<String, String>,
        read_only: bool,
        interfaces: BTreeMap<String, Interface>,
        addresses: BTreeMap<IpAddr, String>,
        bound: Vec<Bound>,
        vxlan_port: Option<String>,
        tun: Option<String>,
        peers: RefCell<BTreeMap<SocketAddr, Reach>>,
        record: Option<String>,
    }

    impl Host for FakeHost {
        fn capabilities(&self) -> u64 {
            self.capabilities
        }
        fn sysctl(&self, key: &str) -> Option<String> {
            self.sysctls.get(key).cloned()
        }
        fn sysctls_writable(&self) -> bool {
            !self.read_only
        }
        fn interface(&self, name: &str) -> Option<Interface> {
            self.interfaces.get(name).cloned()
        }
        fn interface_with(&self, ip: IpAddr) -> Option<String> {
            self.addresses.get(&ip).cloned()
        }
        fn bound_sockets(&self) -> Vec<Bound> {
            self.bound.clone()
        }
        fn udp_port_free(&self, _: u16) -> Result<(), String> {
            self.vxlan_port.clone().map_or(Ok(()), Err)
        }
        fn tun(&self) -> Result<(), String> {
            self.tun.clone().map_or(Ok(()), Err)
        }
        fn connect(&self, addr: SocketAddr) -> Reach {
            self.peers
                .borrow()
                .get(&addr)
                .cloned()
                .unwrap_or(Reach::Connected)
        }
        fn sysctl_record(&self) -> Option<String> {
            self.record.clone()
        }
    }

    const CONFIG: &str = r#"
[node]
name = "node-1"
internal_ip = "10.0.0.11"
pod_cidr = "10.111.1.0/24"
[l2]
interfaces = ["eth0"]
[network]
tunnel_mode = "VXLAN"
[bgp]
asn = 64513
router_id = "10.0.0.11"
[[bgp.peers]]
address = "10.0.0.1"
asn = 64512
"#;

    fn config() -> Config {
        dockline_config::parse("test.toml", CONFIG, std::iter::empty()).expect("valid config")
    }

    fn healthy() -> FakeHost {
        let sysctl = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        FakeHost {
            capabilities: (1 << NET_ADMIN.0) | (1 << NET_RAW.0) | (1 << NET_BIND_SERVICE.0),
            sysctls: BTreeMap::from([
                sysctl("net/ipv4/ip_forward", "1"),
                sysctl("net/ipv4/ip_unprivileged_port_start", "1024"),
                sysctl("net/ipv4/conf/eth0/arp_ignore", "1"),
                sysctl("net/ipv4/conf/eth0/arp_announce", "2"),
                sysctl("net/ipv4/conf/all/rp_filter", "2"),
            ]),
            interfaces: BTreeMap::from([(
                "eth0".to_owned(),
                Interface {
                    up: true,
                    mtu: 1500,
                },
            )]),
            addresses: BTreeMap::from([("10.0.0.11".parse().expect("ip"), "eth0".to_owned())]),
            ..FakeHost::default()
        }
    }

    fn plan() -> Plan {
        Plan {
            listens: vec![
                (
                    "admin",
                    Protocol::Tcp,
                    "127.0.0.1:9470".parse().expect("addr"),
                ),
                ("dns", Protocol::Udp, "10.0.0.11:53".parse().expect("addr")),
            ],
            l2: true,
        }
    }

    /// The findings that are not ok, as (level, check).
    fn problems(host: &FakeHost) -> Vec<(Level, String)> {
        run(&config(), &plan(), host)
            .into_iter()
            .filter(|f| f.level != Level::Ok)
            .map(|f| (f.level, f.check))
            .collect()
    }

    #[test]
    fn a_host_set_up_right_passes_every_check() {
        let findings = run(&config(), &plan(), &healthy());
        assert!(
            findings
                .iter()
                .all(|f| f.level == Level::Ok && f.fix.is_none()),
            "{findings:#?}"
        );
        assert_eq!(findings.len(), 11, "{findings:#?}");
    }

    #[test]
    fn a_missing_capability_fails_and_names_the_cap_add() {
        let host = FakeHost {
            capabilities: 1 << NET_ADMIN.0,
            ..healthy()
        };
        let findings = run(&config(), &plan(), &host);
        let caps = &findings[0];
        assert_eq!(caps.level, Level::Fail);
        assert!(caps.detail.contains("NET_RAW (for l2)"), "{caps}");
        assert!(
            caps.detail
                .contains("NET_BIND_SERVICE (for dns on 10.0.0.11:53)"),
            "{caps}"
        );
        assert!(caps.to_string().contains("--cap-add NET_RAW"), "{caps}");
    }

    #[test]
    fn a_port_held_on_the_wildcard_address_is_taken() {
        let host = FakeHost {
            bound: vec![Bound {
                protocol: Protocol::Udp,
                addr: "0.0.0.0:53".parse().expect("addr"),
            }],
            ..healthy()
        };
        assert_eq!(
            problems(&host),
            [(Level::Fail, "port 10.0.0.11:53/UDP".to_owned())]
        );
        // The same port over TCP, or on another address, is no clash.
        let host = FakeHost {
            bound: vec![
                Bound {
                    protocol: Protocol::Tcp,
                    addr: "0.0.0.0:53".parse().expect("addr"),
                },
                Bound {
                    protocol: Protocol::Udp,
                    addr: "10.0.0.12:53".parse().expect("addr"),
                },
            ],
            ..healthy()
        };
        assert_eq!(problems(&host), []);
    }

    #[test]
    fn forwarding_off_fails_when_the_node_has_pods() {
        let mut host = healthy();
        host.sysctls
            .insert("net/ipv4/ip_forward".into(), "0".into());
        assert_eq!(problems(&host), [(Level::Fail, "ip_forward".to_owned())]);
    }

    #[test]
    fn an_l2_interface_down_or_missing_fails() {
        let mut host = healthy();
        host.interfaces.insert(
            "eth0".into(),
            Interface {
                up: false,
                mtu: 1500,
            },
        );
        assert_eq!(
            problems(&host),
            [(Level::Fail, "l2 interface eth0".to_owned())]
        );
        host.interfaces.clear();
        let found = problems(&host);
        assert!(
            found.contains(&(Level::Fail, "l2 interface eth0".to_owned())),
            "{found:?}"
        );
    }

    #[test]
    fn arp_sysctls_fail_only_where_dockline_cannot_set_them() {
        let mut host = healthy();
        host.sysctls
            .insert("net/ipv4/conf/eth0/arp_ignore".into(), "0".into());
        assert_eq!(problems(&host), []);
        host.read_only = true;
        let findings = run(&config(), &plan(), &host);
        let arp = findings
            .iter()
            .find(|f| f.check == "arp sysctls on eth0")
            .expect("arp finding");
        assert_eq!(arp.level, Level::Fail);
        assert_eq!(
            arp.fix.as_deref(),
            Some("on the host: `sysctl -w net.ipv4.conf.eth0.arp_ignore=1`")
        );
    }

    #[test]
    fn vxlan_needs_tun_a_free_port_and_a_large_enough_underlay() {
        let host = FakeHost {
            tun: Some("No such file or directory".into()),
            ..healthy()
        };
        assert_eq!(problems(&host), [(Level::Fail, "/dev/net/tun".to_owned())]);
        let host = FakeHost {
            vxlan_port: Some("Address in use".into()),
            ..healthy()
        };
        assert_eq!(
            problems(&host),
            [(Level::Fail, "vxlan port 4789/UDP".to_owned())]
        );
        let mut host = healthy();
        host.interfaces.insert(
            "eth0".into(),
            Interface {
                up: true,
                mtu: 1400,
            },
        );
        assert_eq!(
            problems(&host),
            [(Level::Fail, "underlay mtu on eth0".to_owned())]
        );
    }

    #[test]
    fn strict_rp_filter_warns() {
        let mut host = healthy();
        host.sysctls
            .insert("net/ipv4/conf/all/rp_filter".into(), "1".into());
        assert_eq!(
            problems(&host),
            [(Level::Warn, "rp_filter (all)".to_owned())]
        );
    }

    #[test]
    fn a_bgp_peer_that_refuses_warns_and_one_out_of_reach_fails() {
        let host = healthy();
        let peer: SocketAddr = "10.0.0.1:179".parse().expect("addr");
        host.peers.borrow_mut().insert(peer, Reach::Refused);
        assert_eq!(
            problems(&host),
            [(Level::Warn, "bgp peer 10.0.0.1:179".to_owned())]
        );
        host.peers
            .borrow_mut()
            .insert(peer, Reach::Unreachable("timed out".into()));
        assert_eq!(
            problems(&host),
            [(Level::Fail, "bgp peer 10.0.0.1:179".to_owned())]
        );
    }

    #[test]
    fn sysctls_that_differ_from_the_record_warn_with_the_values_to_restore() {
        let mut host = healthy();
        host.record = Some(
            "/proc/sys/net/ipv4/conf/eth0/arp_ignore 1 1\n\
             /proc/sys/net/ipv4/conf/eth0/arp_announce 0 2\n"
                .into(),
        );
        let findings = run(&config(), &plan(), &host);
        let left = findings.last().expect("findings");
        assert_eq!(left.level, Level::Warn);
        assert!(
            left.detail
                .starts_with("net/ipv4/conf/eth0/arp_announce is 2, was 0"),
            "{left}"
        );
        assert!(
            left.fix
                .as_deref()
                .unwrap_or("")
                .contains("sysctl -w net.ipv4.conf.eth0.arp_announce=0"),
            "{left}"
        );
    }

    #[test]
    fn proc_net_lines_give_listeners_and_bound_udp_sockets() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:24FE 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n\
   1: 0100007F:9C40 0100007F:24FE 01 00000000:00000000 00:00000000 00000000     0        0 2 1\n";
        assert_eq!(
            parse_proc_net(tcp, Protocol::Tcp),
            [Bound {
                protocol: Protocol::Tcp,
                addr: "127.0.0.1:9470".parse().expect("addr")
            }]
        );
        let udp6 = "  sl  local_address                         remote_address                        st\n\
   0: 00000000000000000000000001000000:0035 00000000000000000000000000000000:0000 07 0\n";
        assert_eq!(
            parse_proc_net(udp6, Protocol::Udp),
            [Bound {
                protocol: Protocol::Udp,
                addr: "[::1]:53".parse().expect("addr")
            }]
        );
    }
}
