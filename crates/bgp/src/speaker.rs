//! The speaker: one task that owns the listeners and the peer tasks. It follows the
//! published snapshot and endpoint health, publishes the routes wanted to every session,
//! hands accepted connections to the session of their router, and on a reload starts,
//! stops or resets only the sessions whose `[[bgp.peers]]` entry was added, removed or
//! changed.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dockline_config::{BgpPeer, Config};
use dockline_model::{LiveHealth, Published, Snapshot};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::BgpError;
use crate::advertise::{self, Routes};
use crate::bfd::ControlPacket;
use crate::peer::{self, PeerConfig, PeerInputs};
use crate::session::Settings;
use crate::socket;
use crate::status::StatusBoard;

/// A running peer task, and how to reach and stop it.
struct PeerHandle {
    config: PeerConfig,
    inbound: mpsc::Sender<TcpStream>,
    bfd: mpsc::Sender<ControlPacket>,
    stop: CancellationToken,
}

/// The sessions of `config`, keyed by router address; a password file that cannot be read
/// is an error naming it.
pub(crate) fn peer_configs(config: &Config) -> Result<HashMap<IpAddr, PeerConfig>, BgpError> {
    let Some(local_asn) = config.bgp.asn else {
        return Ok(HashMap::new());
    };
    let router_id = match (config.bgp.router_id, config.node.internal_ip) {
        (Some(id), _) => id,
        (None, Some(IpAddr::V4(ip))) => ip,
        _ => return Err(BgpError::NoRouterId),
    };
    config
        .bgp
        .peers
        .iter()
        .map(|peer| {
            let key = peer.password_file.as_ref().map(read_key).transpose()?;
            Ok((peer.address, peer_config(peer, local_asn, router_id, key)))
        })
        .collect()
}

fn read_key(path: &std::path::PathBuf) -> Result<Vec<u8>, BgpError> {
    let text = std::fs::read(path).map_err(|error| BgpError::PasswordFile {
        path: path.clone(),
        error: error.to_string(),
    })?;
    let key = text.trim_ascii_end().to_vec();
    if key.is_empty() || key.len() > socket::MAX_KEY_LENGTH {
        return Err(BgpError::PasswordFile {
            path: path.clone(),
            error: format!("the key must be 1 to {} bytes", socket::MAX_KEY_LENGTH),
        });
    }
    Ok(key)
}

fn peer_config(
    peer: &BgpPeer,
    local_asn: u32,
    router_id: std::net::Ipv4Addr,
    key: Option<Vec<u8>>,
) -> PeerConfig {
    let external = peer.asn != local_asn;
    PeerConfig {
        address: SocketAddr::new(peer.address, peer.port),
        key,
        // eBGP routers are expected one hop away unless multihop says otherwise.
        ttl: peer.ebgp_multihop.map(u32::from).or(external.then_some(1)),
        bfd: (peer.bfd == Some(true)).then(|| {
            (
                Duration::from_millis(peer.bfd_interval_ms.unwrap_or(300).into()),
                peer.bfd_multiplier.unwrap_or(3),
            )
        }),
        settings: Settings {
            local_asn,
            router_id,
            peer_asn: peer.asn,
            hold_time: peer.hold_time,
            keepalive: peer.keepalive,
            connect_retry: Duration::from_secs(peer.connect_retry_s.into()),
            passive: peer.passive,
            graceful_restart: peer.graceful_restart,
        },
    }
}

/// The listeners on port 179, one per address family with peers. A listener that cannot
/// be opened (another BGP daemon on the node, say) only matters to passive peers, which
/// would never come up: for the others dockline connects and the router need not.
pub(crate) fn listen(
    peers: &HashMap<IpAddr, PeerConfig>,
) -> Result<Vec<Arc<TcpListener>>, BgpError> {
    let mut listeners = Vec::new();
    for ipv6 in [false, true] {
        let family: Vec<&PeerConfig> = peers
            .iter()
            .filter(|(ip, _)| ip.is_ipv6() == ipv6)
            .map(|(_, config)| config)
            .collect();
        if family.is_empty() {
            continue;
        }
        let address = if ipv6 { "[::]:179" } else { "0.0.0.0:179" };
        match socket::listen(ipv6) {
            Ok(listener) => listeners.push(Arc::new(listener)),
            Err(error) if family.iter().any(|peer| peer.settings.passive) => {
                return Err(BgpError::Listen { address, error });
            }
            Err(error) => {
                tracing::warn!(address, %error, "not listening for BGP: sessions are opened by dockline only");
            }
        }
    }
    Ok(listeners)
}

/// The BFD receive sockets on port 3784, one per address family with a BFD peer (the
/// families are part of the restart key, so a reload that needs another one rebinds).
pub(crate) fn bfd_listen(peers: &HashMap<IpAddr, PeerConfig>) -> Result<Vec<UdpSocket>, BgpError> {
    let mut sockets = Vec::new();
    for ipv6 in [false, true] {
        if !peers
            .iter()
            .any(|(ip, config)| ip.is_ipv6() == ipv6 && config.bfd.is_some())
        {
            continue;
        }
        let socket = socket::bfd_listen(ipv6).map_err(|error| BgpError::Listen {
            address: if ipv6 { "[::]:3784" } else { "0.0.0.0:3784" },
            error,
        })?;
        sockets.push(socket);
    }
    Ok(sockets)
}

/// Installs or removes the TCP-MD5 key of `peer` on every listener.
fn sign_listeners(listeners: &[Arc<TcpListener>], peer: IpAddr, key: Option<&[u8]>) {
    for listener in listeners {
        let family_matches = listener
            .local_addr()
            .is_ok_and(|local| local.is_ipv6() == peer.is_ipv6());
        if family_matches && let Err(error) = socket::set_md5_key(&**listener, peer, key) {
            tracing::warn!(%peer, %error, "could not set the TCP-MD5 key on the listener");
        }
    }
}

/// Runs the speaker until `shutdown`; every session withdraws its routes and sends a
/// Cease before this returns.
pub(crate) async fn run(
    first: Arc<Snapshot>,
    listeners: Vec<Arc<TcpListener>>,
    bfd_sockets: Vec<UdpSocket>,
    published: Arc<Published>,
    health: Arc<LiveHealth>,
    board: Arc<StatusBoard>,
    shutdown: CancellationToken,
) {
    let mut snapshots = published.subscribe();
    let mut verdicts = health.subscribe();
    let wanted = |snapshot: &Snapshot| Arc::new(advertise::desired(snapshot, &health.load()));
    let (routes, _) = watch::channel::<Arc<Routes>>(wanted(&first));

    let (accepted, mut accepted_rx) = mpsc::channel::<(TcpStream, SocketAddr)>(16);
    let mut acceptors = JoinSet::new();
    for listener in &listeners {
        let listener = Arc::clone(listener);
        let accepted = accepted.clone();
        acceptors.spawn(async move {
            loop {
                match listener.accept().await {
                    Ok(connection) => {
                        if accepted.send(connection).await.is_err() {
                            return;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "BGP accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }

    let (bfd_received, mut bfd_received_rx) = mpsc::channel::<(ControlPacket, IpAddr)>(64);
    for socket in bfd_sockets {
        let bfd_received = bfd_received.clone();
        acceptors.spawn(async move {
            let mut buffer = [0u8; 64];
            loop {
                let Ok((length, from, ttl)) = socket::recv_with_ttl(&socket, &mut buffer).await
                else {
                    continue;
                };
                // Malformed packets, and packets from beyond the link, are dropped here
                // (RFC 5880 section 6.8.6, RFC 5881 section 5).
                match ControlPacket::decode_received(&buffer[..length], ttl) {
                    Ok(packet) => {
                        if bfd_received.send((packet, from.ip())).await.is_err() {
                            return;
                        }
                    }
                    Err(discarded) => crate::metrics::bfd_discarded(discarded),
                }
            }
        });
    }

    let node_ip = first.node.internal_ip;
    let mut tasks = JoinSet::new();
    let mut generation = 0u64;
    let mut peers: HashMap<IpAddr, PeerHandle> = HashMap::new();
    let reconcile = |snapshot: &Snapshot,
                     peers: &mut HashMap<IpAddr, PeerHandle>,
                     tasks: &mut JoinSet<()>,
                     generation: &mut u64| {
        let configs = match peer_configs(&snapshot.config) {
            Ok(configs) => configs,
            Err(error) => {
                tracing::error!(%error, "BGP peers not changed");
                return;
            }
        };
        peers.retain(|address, handle| {
            let keep = configs.get(address) == Some(&handle.config);
            if !keep {
                tracing::info!(peer = %address, "BGP peer removed or changed: closing its session");
                handle.stop.cancel();
                if handle.config.key.is_some() {
                    sign_listeners(&listeners, *address, None);
                }
            }
            keep
        });
        for (address, config) in configs {
            if peers.contains_key(&address) {
                continue;
            }
            if config.key.is_some() {
                sign_listeners(&listeners, address, config.key.as_deref());
            }
            let (inbound, inbound_rx) = mpsc::channel(4);
            let (bfd, bfd_rx) = mpsc::channel(16);
            let stop = shutdown.child_token();
            let inputs = PeerInputs {
                routes: routes.subscribe(),
                inbound: inbound_rx,
                bfd_packets: bfd_rx,
                board: Arc::clone(&board),
                generation: *generation,
                node_ip,
            };
            *generation += 1;
            tasks.spawn(peer::run(config.clone(), inputs, stop.clone()));
            peers.insert(
                address,
                PeerHandle {
                    config,
                    inbound,
                    bfd,
                    stop,
                },
            );
        }
    };
    reconcile(&first, &mut peers, &mut tasks, &mut generation);

    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Ok(()) = snapshots.changed() => {
                let snapshot = published.load();
                reconcile(&snapshot, &mut peers, &mut tasks, &mut generation);
                routes.send_if_modified(|current| replace(current, wanted(&snapshot)));
            }
            Ok(()) = verdicts.changed() => {
                let snapshot = published.load();
                routes.send_if_modified(|current| replace(current, wanted(&snapshot)));
            }
            Some((stream, from)) = accepted_rx.recv() => {
                match peers.get(&from.ip()) {
                    Some(peer) => {
                        let _ = peer.inbound.try_send(stream);
                    }
                    None => tracing::debug!(%from, "BGP connection from an unknown address refused"),
                }
            }
            Some((packet, from)) = bfd_received_rx.recv() => {
                if let Some(peer) = peers.get(&from) {
                    let _ = peer.bfd.try_send(packet);
                }
            }
            Some(_) = tasks.join_next() => {}
        }
    }
    acceptors.abort_all();
    // The peer tokens are children of `shutdown`: every task is withdrawing by now.
    while tasks.join_next().await.is_some() {}
}

/// Replaces `current` when the routes differ; whether they did.
fn replace(current: &mut Arc<Routes>, next: Arc<Routes>) -> bool {
    let changed = **current != *next;
    if changed {
        *current = next;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(peers: &str) -> Config {
        let text = format!("[node]\ninternal_ip = \"172.30.0.11\"\n[bgp]\nasn = 64513\n{peers}");
        dockline_model::testing::snapshot(&text).config
    }

    #[test]
    fn ebgp_sessions_get_ttl_1_unless_multihop_and_ibgp_keeps_the_default() {
        let peers = peer_configs(&config(
            "[[bgp.peers]]\naddress = \"10.0.0.1\"\nasn = 64512\n\
             [[bgp.peers]]\naddress = \"10.0.0.2\"\nasn = 64512\nebgp_multihop = 4\n\
             [[bgp.peers]]\naddress = \"10.0.0.3\"\nasn = 64513\nbfd = true\n",
        ))
        .unwrap();
        let ttl = |ip: &str| peers[&ip.parse::<IpAddr>().unwrap()].ttl;
        assert_eq!(
            (ttl("10.0.0.1"), ttl("10.0.0.2"), ttl("10.0.0.3")),
            (Some(1), Some(4), None)
        );
        let internal = &peers[&"10.0.0.3".parse::<IpAddr>().unwrap()];
        assert_eq!(
            internal.settings.router_id,
            std::net::Ipv4Addr::new(172, 30, 0, 11)
        );
        assert_eq!(internal.bfd, Some((Duration::from_millis(300), 3)));
    }

    #[test]
    fn the_password_file_is_read_without_its_newline_and_a_missing_one_is_named() {
        let dir = std::env::temp_dir().join(format!("dockline-bgp-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("bgp.key");
        std::fs::write(&key, "s3cret\n").unwrap();
        let peers = peer_configs(&config(&format!(
            "[[bgp.peers]]\naddress = \"10.0.0.1\"\nasn = 64512\npassword_file = \"{}\"\n",
            key.display()
        )))
        .unwrap();
        assert_eq!(
            peers.values().next().unwrap().key.as_deref(),
            Some(&b"s3cret"[..])
        );

        let missing = dir.join("missing.key");
        let error = peer_configs(&config(&format!(
            "[[bgp.peers]]\naddress = \"10.0.0.1\"\nasn = 64512\npassword_file = \"{}\"\n",
            missing.display()
        )))
        .unwrap_err();
        assert!(error.to_string().contains("missing.key"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
