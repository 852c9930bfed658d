//! `dockline doctor`: checks the host against a config before the daemon meets it, and
//! prints one line per check (ok / warn / fail) with a fix for each problem. Exit 1 on a
//! fail.
//!
//! The judging is in [`checks`] (pure, unit-tested); this module only asks the kernel:
//! /proc/self/status, /proc/sys, /sys/class/net, /proc/net, a UDP bind, /dev/net/tun and
//! TCP connections to the BGP peers.

mod checks;

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use dockline_config::{Protocol, Source};

use checks::{Bound, Host, Interface, Level, Plan, Reach};

/// How long a BGP peer has to accept a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs every check for `config` (the embedded default without one) and prints them.
pub fn doctor(config: Option<PathBuf>) -> ExitCode {
    // The capabilities checked are the ones the daemon would hold: it raises them the same way.
    crate::capabilities::raise_permitted();
    let source = match config {
        Some(path) => Source::File(path),
        None => Source::Embedded,
    };
    let snapshot = match crate::reload::load_snapshot(&source) {
        Ok((_, snapshot, _)) => snapshot,
        Err(problems) => {
            println!("fail  config {}:\n{problems}", source.name());
            println!(
                "      fix: `dockline check {}` lists every problem",
                source.name()
            );
            return ExitCode::FAILURE;
        }
    };
    let config = &snapshot.config;
    let mut plan = Plan {
        listens: vec![("admin", Protocol::Tcp, config.admin.listen)],
        l2: dockline_l2::enabled(config),
    };
    if config.dns.enabled {
        for addr in &config.dns.listen {
            plan.listens.push(("dns", Protocol::Udp, *addr));
            plan.listens.push(("dns", Protocol::Tcp, *addr));
        }
    }
    if let Some(addr) = config
        .cluster
        .gossip
        .listen
        .filter(|_| dockline_cluster::enabled(config))
    {
        plan.listens.push(("cluster", Protocol::Udp, addr));
    }
    if dockline_proxy::enabled(config) {
        for listen in dockline_proxy::listen_addrs(&snapshot) {
            plan.listens.push(("proxy", listen.protocol, listen.addr));
        }
    }
    println!(
        "dockline doctor: {} on node {}",
        source.name(),
        config.node.name
    );
    let findings = checks::run(config, &plan, &LiveHost);
    for finding in &findings {
        println!("{finding}");
    }
    let count = |level| findings.iter().filter(|f| f.level == level).count();
    println!(
        "{} ok, {} warn, {} fail",
        count(Level::Ok),
        count(Level::Warn),
        count(Level::Fail)
    );
    if count(Level::Fail) > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The host this process runs on.
struct LiveHost;

impl Host for LiveHost {
    fn capabilities(&self) -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("CapEff:"))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .unwrap_or(0)
    }

    fn sysctl(&self, key: &str) -> Option<String> {
        std::fs::read_to_string(Path::new("/proc/sys").join(key)).ok()
    }

    fn sysctls_writable(&self) -> bool {
        // Writing a value back unchanged tells a read-only /proc/sys from a writable one.
        let probe = "/proc/sys/net/ipv4/conf/all/arp_ignore";
        std::fs::read_to_string(probe)
            .is_ok_and(|value| std::fs::write(probe, value.trim()).is_ok())
    }

    fn interface(&self, name: &str) -> Option<Interface> {
        // Names come from the config; one with a slash would leave /sys/class/net.
        if name.contains('/') || name.starts_with('.') {
            return None;
        }
        let dir = Path::new("/sys/class/net").join(name);
        let read = |file: &str| std::fs::read_to_string(dir.join(file)).ok();
        const IFF_UP: u32 = 0x1;
        let flags = read("flags")?;
        let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).ok()?;
        Some(Interface {
            up: flags & IFF_UP != 0,
            mtu: read("mtu")?.trim().parse().ok()?,
        })
    }

    fn interface_with(&self, ip: IpAddr) -> Option<String> {
        let addresses = nix::ifaddrs::getifaddrs().ok()?;
        addresses
            .filter_map(|a| {
                let address = a.address?;
                let found: IpAddr = match (address.as_sockaddr_in(), address.as_sockaddr_in6()) {
                    (Some(v4), _) => v4.ip().into(),
                    (_, Some(v6)) => v6.ip().into(),
                    _ => return None,
                };
                (found == ip).then_some(a.interface_name)
            })
            .next()
    }

    fn bound_sockets(&self) -> Vec<Bound> {
        [
            ("/proc/net/tcp", Protocol::Tcp),
            ("/proc/net/tcp6", Protocol::Tcp),
            ("/proc/net/udp", Protocol::Udp),
            ("/proc/net/udp6", Protocol::Udp),
        ]
        .into_iter()
        .flat_map(|(file, protocol)| {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            checks::parse_proc_net(&text, protocol)
        })
        .collect()
    }

    fn udp_port_free(&self, port: u16) -> Result<(), String> {
        let bind = |ip: IpAddr| UdpSocket::bind(SocketAddr::new(ip, port)).map(drop);
        match bind(Ipv6Addr::UNSPECIFIED.into()) {
            // No IPv6 on this host: the IPv4 wildcard is all there is.
            Err(e)
                if e.kind() == ErrorKind::AddrNotAvailable
                    || e.raw_os_error() == Some(libc::EAFNOSUPPORT) =>
            {
                bind(std::net::Ipv4Addr::UNSPECIFIED.into())
            }
            other => other,
        }
        .map_err(|e| e.to_string())
    }

    fn tun(&self) -> Result<(), String> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn connect(&self, addr: SocketAddr) -> Reach {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(_) => Reach::Connected,
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => Reach::Refused,
            Err(e) => Reach::Unreachable(e.to_string()),
        }
    }

    fn sysctl_record(&self) -> Option<String> {
        let records = dockline_routes::sysctl::records_left();
        (!records.is_empty()).then(|| records.into_iter().map(|(_, text)| text).collect())
    }
}
