//! The gossip loop: one task owns foca, the socket and the timers. foca's sends, timers and
//! notifications are collected in an `AccumulatingRuntime` and carried out after each event.

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::{Duration, Instant};

use dockline_config::Config;
use foca::{AccumulatingRuntime, Foca, NoCustomBroadcast, PeriodicParams, PostcardCodec, Timer};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio_util::sync::CancellationToken;

use crate::identity::NodeId;
use crate::{Cluster, ClusterError, JOIN_WINDOW, REJECTED, identity, publish, view};

type Swim = Foca<NodeId, PostcardCodec, SmallRng, NoCustomBroadcast>;

/// How often seeds that are not (or no longer) members are contacted again.
const REJOIN: Duration = Duration::from_secs(1);

fn foca_config(config: &Config) -> foca::Config {
    let t = config.cluster.gossip.timing();
    let size = NonZeroU32::new(config.network.nodes.len() as u32 + 1).unwrap_or(NonZeroU32::MIN);
    let mut c = foca::Config::new_lan(size);
    c.probe_period = Duration::from_millis(t.probe_interval_ms);
    c.probe_rtt = Duration::from_millis(t.probe_timeout_ms);
    c.suspect_to_down_after = Duration::from_millis(t.suspect_timeout_ms);
    // Updates spread by piggybacking and by this gossip: a few times per probe period.
    c.periodic_gossip = Some(PeriodicParams {
        frequency: Duration::from_millis((t.probe_interval_ms / 3).max(5)),
        num_members: NonZeroUsize::MIN.saturating_add(2),
    });
    c
}

/// Where to send join requests: the seeds and the static nodes at our gossip port.
fn seeds(config: &Config, me: std::net::SocketAddr) -> Vec<std::net::SocketAddr> {
    let g = &config.cluster.gossip;
    let mut all = g.seeds.clone();
    for node in &config.network.nodes {
        all.push(std::net::SocketAddr::new(node.internal_ip, me.port()));
    }
    all.retain(|a| *a != me);
    all.sort();
    all.dedup();
    all
}

pub async fn run(cluster: Cluster, shutdown: CancellationToken) -> Result<(), ClusterError> {
    let Cluster {
        socket,
        auth,
        mut me,
        started,
        published,
        members,
    } = cluster;
    let addr = me.addr;
    let config = published.load().config.clone();
    let seed = me.bump ^ (u64::from(std::process::id()) << 32);
    let rng = SmallRng::seed_from_u64(seed);
    let mut swim: Swim = Foca::new(me.clone(), foca_config(&config), rng, PostcardCodec);
    let mut rt = AccumulatingRuntime::new();
    let mut timers: Vec<(Instant, Timer<NodeId>)> = Vec::new();
    let mut changes = published.subscribe();
    let mut rejoin = tokio::time::interval(REJOIN);
    let mut buf = vec![0u8; 65_536];
    tracing::info!(listen = %addr, seeds = ?seeds(&config, addr), "gossip started");

    loop {
        let next = timers.iter().map(|(at, _)| *at).min();
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            _ = shutdown.cancelled() => {
                if let Err(error) = swim.leave_cluster(&mut rt) {
                    tracing::debug!(%error, "gossip: leaving");
                }
                flush_sends(&socket, &auth, &mut rt).await;
                return Ok(());
            }
            received = socket.recv_from(&mut buf) => {
                let (len, from) = received.map_err(ClusterError::Io)?;
                match auth.open(&buf[..len]) {
                    None => {
                        metrics::counter!(REJECTED, "reason" => "auth").increment(1);
                        tracing::debug!(%from, "gossip: unauthenticated packet dropped");
                        Ok(())
                    }
                    Some(payload) => swim.handle_data(payload, &mut rt).inspect_err(|_| {
                        metrics::counter!(REJECTED, "reason" => "invalid").increment(1);
                    }),
                }
            }
            () = sleep => {
                let now = Instant::now();
                let due: Vec<Timer<NodeId>> = {
                    let (due, later): (Vec<_>, Vec<_>) =
                        timers.drain(..).partition(|(at, _)| *at <= now);
                    timers = later;
                    due.into_iter().map(|(_, t)| t).collect()
                };
                due.into_iter().try_for_each(|t| swim.handle_timer(t, &mut rt))
            }
            _ = rejoin.tick() => {
                let config = published.load().config.clone();
                let known: Vec<std::net::SocketAddr> =
                    swim.iter_members().map(|m| m.id().addr).collect();
                seeds(&config, addr)
                    .into_iter()
                    .filter(|s| !known.contains(s))
                    .try_for_each(|s| swim.announce(NodeId::placeholder(s), &mut rt))
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let next = identity(&published.load(), addr, me.bump + 1);
                if next.shared_digest == me.shared_digest && next.name == me.name
                    && next.internal_ip == me.internal_ip
                {
                    Ok(())
                } else {
                    tracing::info!(digest = %next.shared_digest, "gossip: identity changed");
                    me = next.clone();
                    // Messages to an identity a peer no longer has are dropped, so when
                    // peers change at once (one config pushed everywhere) none would learn
                    // the others' new identities until probes time out. An announce is
                    // accepted by address: send one to every peer we know of.
                    let mut peers: Vec<std::net::SocketAddr> =
                        swim.iter_members().map(|m| m.id().addr).collect();
                    peers.extend(seeds(&published.load().config, addr));
                    peers.sort();
                    peers.dedup();
                    swim.change_identity(next, &mut rt).and_then(|()| {
                        peers
                            .into_iter()
                            .try_for_each(|p| swim.announce(NodeId::placeholder(p), &mut rt))
                    })
                }
            }
        };
        if let Err(error) = result {
            tracing::debug!(%error, "gossip: foca refused an event");
        }
        let now = Instant::now();
        while let Some((after, timer)) = rt.to_schedule() {
            timers.push((now + after, timer));
        }
        while rt.to_notify().is_some() {}
        flush_sends(&socket, &auth, &mut rt).await;
        let snapshot = published.load();
        let set = view::member_set(
            &me,
            swim.iter_membership_state().map(|m| (m.id(), m.state())),
            &snapshot.config.network.nodes,
            started.elapsed() < JOIN_WINDOW,
        );
        publish(&members, set, &snapshot.shared_digest);
    }
}

async fn flush_sends(
    socket: &tokio::net::UdpSocket,
    auth: &crate::Auth,
    rt: &mut AccumulatingRuntime<NodeId>,
) {
    while let Some((to, data)) = rt.to_send() {
        if let Err(error) = socket.send_to(&auth.seal(&data), to.addr).await {
            tracing::debug!(to = %to.addr, %error, "gossip: send failed");
        }
    }
}
