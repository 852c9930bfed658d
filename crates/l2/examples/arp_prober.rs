//! A raw-socket ARP prober for the failover benchmark: asks for a VIP every few
//! milliseconds (5 by default) and prints `UNIX_NANOS MAC` each time the answering MAC
//! changes.
//!
//! Usage: arp_prober IFACE SENDER_IP VIP [INTERVAL_MS]
//! Runs until killed. `arping` cannot do this: its timeout is whole seconds.

use std::io::Write;
use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dockline_l2::{PacketSocket, arp, interface};

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> T {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or_else(|| {
        eprintln!("usage: arp_prober IFACE SENDER_IP VIP [INTERVAL_MS]; bad {what}");
        std::process::exit(2)
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let iface: String = arg(&args, 0, "IFACE");
    let sender: Ipv4Addr = arg(&args, 1, "SENDER_IP");
    let vip: Ipv4Addr = arg(&args, 2, "VIP");
    let interval = Duration::from_millis(if args.len() > 3 {
        arg(&args, 3, "INTERVAL_MS")
    } else {
        5
    });
    let (index, mac) = interface(&iface)?;
    let socket = PacketSocket::arp(index)?;
    let probe = arp::request(mac, sender, vip);
    let mut ticker = tokio::time::interval(interval);
    let mut buf = vec![0u8; 2048];
    let mut last = None;
    let mut out = std::io::stdout();
    loop {
        tokio::select! {
            _ = ticker.tick() => socket.send(&probe)?,
            n = socket.recv(&mut buf) => {
                if let Ok((from, ip)) = arp::parse_reply(&buf[..n?]) {
                    if ip == vip && last != Some(from) {
                        last = Some(from);
                        writeln!(out, "{} {from}", now_ns())?;
                        out.flush()?;
                    }
                }
            }
        }
    }
}
