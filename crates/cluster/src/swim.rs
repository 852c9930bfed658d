//! The gossip driver: one task owns the socket, foca (the SWIM core) and the [`Membership`]
//! core. Packets, foca's timers, config changes and the membership timer go into the cores;
//! after each event their output is carried out (foca's sends and timers, collected in an
//! `AccumulatingRuntime`, and the membership actions as foca calls) and the member set is
//! published. Every packet goes through the [`Auth`] envelope both ways; the keys are read
//! again on every config change, so a reload rotates them.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use dockline_config::Config;
use dockline_model::{LiveMembers, Published, Snapshot};
use foca::{AccumulatingRuntime, Foca, NoCustomBroadcast, PeriodicParams, PostcardCodec, Timer};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::auth::{Auth, Rejected};
use crate::error::ClusterError;
use crate::identity::NodeId;
use crate::membership::{Action, Membership, MembershipConfig};
use crate::metrics::{Rejection, count_rejected};
use crate::view;

type Swim = Foca<NodeId, PostcardCodec, SmallRng, NoCustomBroadcast>;

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

/// The bound socket and the state the gossip loop starts from.
#[derive(Debug)]
pub(crate) struct Gossip {
    socket: UdpSocket,
    auth: Auth,
    membership: Membership,
    published: Arc<Published>,
    members: Arc<LiveMembers>,
}

impl Gossip {
    /// Reads the secret and binds `cluster.gossip.listen` of `snapshot`, then publishes a
    /// first member set.
    pub(crate) async fn bind(
        snapshot: &Snapshot,
        published: Arc<Published>,
        members: Arc<LiveMembers>,
    ) -> Result<Self, ClusterError> {
        let gossip = &snapshot.config.cluster.gossip;
        let listen = gossip
            .listen
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 7946)));
        let auth = Auth::new(Auth::read_keys(gossip.secret_file.as_deref())?);
        let socket = UdpSocket::bind(listen)
            .await
            .map_err(|e| ClusterError::Bind(listen, e))?;
        let addr = socket.local_addr().map_err(ClusterError::Io)?;
        let epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let membership = Membership::new(
            &MembershipConfig::from_snapshot(snapshot),
            addr,
            epoch.as_secs(),
            Instant::now(),
        );
        // Published before the announcers start, so none claims a VIP of a peer it has
        // not met yet.
        let first = view::member_set(
            membership.me(),
            std::iter::empty(),
            &snapshot.config.network.nodes,
            &snapshot.config.cluster.allowed_nodes,
            true,
        );
        view::publish(&members, first, &snapshot.shared_digest);
        Ok(Gossip {
            socket,
            auth,
            membership,
            published,
            members,
        })
    }

    /// The address the gossip socket is bound to.
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.socket.local_addr().ok()
    }

    /// Gossips until `shutdown`, then leaves the cluster; the socket closes on return.
    pub(crate) async fn run(self, shutdown: CancellationToken) -> Result<(), ClusterError> {
        let Gossip {
            socket,
            mut auth,
            mut membership,
            published,
            members,
        } = self;
        // Subscribed before the snapshot is read, so that a later publish wakes `changes`.
        let mut changes = published.subscribe();
        let snapshot = published.load();
        let me = membership.me().clone();
        let rng = SmallRng::seed_from_u64(me.bump ^ (u64::from(std::process::id()) << 32));
        let mut swim: Swim = Foca::new(me, foca_config(&snapshot.config), rng, PostcardCodec);
        // Nonces only need to differ between this node's packets of one millisecond: a
        // counter from a start unlikely to repeat across restarts.
        let mut nonce = wall_clock_ms().rotate_left(32) ^ u64::from(std::process::id());
        let mut outsiders_logged = BTreeSet::new();
        // The daemon may bind with a snapshot and publish another before this runs.
        membership.on_config(&MembershipConfig::from_snapshot(&snapshot), []);
        let mut rt = AccumulatingRuntime::new();
        let mut timers: Vec<(Instant, Timer<NodeId>)> = Vec::new();
        let mut buf = vec![0u8; 65_536];
        tracing::info!(
            listen = %membership.me().addr,
            seeds = ?membership.join_targets(),
            authenticated = auth.enabled(),
            "gossip started"
        );

        loop {
            while let Some(action) = membership.poll_action() {
                let done = match action {
                    Action::ChangeIdentity(id) => {
                        tracing::info!(digest = %id.shared_digest, "gossip: identity changed");
                        swim.change_identity(id, &mut rt)
                    }
                    Action::Announce(to) => swim.announce(NodeId::placeholder(to), &mut rt),
                };
                if let Err(error) = done {
                    tracing::debug!(%error, "gossip: foca refused an event");
                }
            }
            let now = Instant::now();
            while let Some((after, timer)) = rt.to_schedule() {
                timers.push((now + after, timer));
            }
            while rt.to_notify().is_some() {}
            flush_sends(&socket, &auth, &mut nonce, &mut rt).await;
            let snapshot = published.load();
            let allowed = &snapshot.config.cluster.allowed_nodes;
            view::log_outsiders(
                swim.iter_membership_state().map(|m| m.id()),
                allowed,
                &mut outsiders_logged,
            );
            let set = view::member_set(
                membership.me(),
                swim.iter_membership_state().map(|m| (m.id(), m.state())),
                &snapshot.config.network.nodes,
                allowed,
                membership.joining(now),
            );
            view::publish(&members, set, &snapshot.shared_digest);

            let next_timer = timers.iter().map(|(at, _)| *at).min();
            let foca_timer = async {
                match next_timer {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let result = tokio::select! {
                _ = shutdown.cancelled() => {
                    if let Err(error) = swim.leave_cluster(&mut rt) {
                        tracing::debug!(%error, "gossip: leaving");
                    }
                    flush_sends(&socket, &auth, &mut nonce, &mut rt).await;
                    return Ok(());
                }
                received = socket.recv_from(&mut buf) => {
                    let (len, from) = received.map_err(ClusterError::Io)?;
                    match auth.open(&buf[..len], wall_clock_ms()) {
                        Err(Rejected::Auth) => {
                            count_rejected(Rejection::Auth);
                            tracing::debug!(%from, "gossip: unauthenticated packet dropped");
                            Ok(())
                        }
                        Err(Rejected::Replay) => {
                            count_rejected(Rejection::Replay);
                            tracing::debug!(%from, "gossip: replayed or stale packet dropped");
                            Ok(())
                        }
                        Ok(payload) => swim.handle_data(payload, &mut rt).inspect_err(|_| {
                            count_rejected(Rejection::Invalid);
                        }),
                    }
                }
                () = foca_timer => {
                    let now = Instant::now();
                    let (due, later): (Vec<_>, Vec<_>) =
                        timers.drain(..).partition(|(at, _)| *at <= now);
                    timers = later;
                    due.into_iter().try_for_each(|(_, timer)| swim.handle_timer(timer, &mut rt))
                }
                () = tokio::time::sleep_until(membership.poll_timeout().into()) => {
                    membership.handle_timeout(Instant::now(), live_members(&swim));
                    Ok(())
                }
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let snapshot = published.load();
                    reload_keys(&mut auth, &snapshot.config);
                    let config = MembershipConfig::from_snapshot(&snapshot);
                    membership.on_config(&config, live_members(&swim));
                    Ok(())
                }
            };
            if let Err(error) = result {
                tracing::debug!(%error, "gossip: foca refused an event");
            }
        }
    }
}

/// The addresses of foca's live (alive or suspect) members.
fn live_members(swim: &Swim) -> Vec<SocketAddr> {
    swim.iter_members().map(|m| m.id().addr).collect()
}

/// Reads the keys of `config` again; a file that cannot be read keeps the keys in use (the
/// node stays in the cluster) and says why.
fn reload_keys(auth: &mut Auth, config: &Config) {
    let path = config.cluster.gossip.secret_file.as_deref();
    match Auth::read_keys(path) {
        Ok(keys) if keys.is_empty() != auth.enabled() => auth.set_keys(keys),
        // On or off needs a restart, which the component's restart key asks for.
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "gossip: keys not reloaded, the old ones stay"),
    }
}

/// Milliseconds since the epoch, the time the auth envelope carries.
fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|since| since.as_millis() as u64)
        .unwrap_or_default()
}

async fn flush_sends(
    socket: &UdpSocket,
    auth: &Auth,
    nonce: &mut u64,
    rt: &mut AccumulatingRuntime<NodeId>,
) {
    while let Some((to, data)) = rt.to_send() {
        *nonce = nonce.wrapping_add(1);
        let packet = auth.seal(&data, wall_clock_ms(), *nonce);
        if let Err(error) = socket.send_to(&packet, to.addr).await {
            tracing::debug!(to = %to.addr, %error, "gossip: send failed");
        }
    }
}
