//! The I/O around [`answer`](crate::answer::answer): UDP worker threads and a TCP acceptor
//! per listen address, sharing the zone in force through `arc-swap`.

mod tcp;
mod udp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use arc_swap::{ArcSwap, ArcSwapOption};
use hickory_proto::op::ResponseCode;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::DnsError;
use crate::answer::{self, Action, Transport, Verdict};
use crate::forward::Forwarders;
use crate::metrics::{Bad, Metrics};
use crate::zone::Zone;

/// Forwarded queries in flight at most; more are answered SERVFAIL at once.
const MAX_FORWARDS: usize = 512;

/// What every listener reads.
#[derive(Debug)]
pub(crate) struct Shared {
    pub zone: ArcSwap<Zone>,
    pub metrics: Metrics,
    pub forwards: Arc<Semaphore>,
    /// The upstreams of the `dns.forward` list last forwarded to.
    forwarders: ArcSwapOption<Forwarders>,
}

impl Shared {
    pub fn new(zone: Zone) -> Self {
        Shared {
            zone: ArcSwap::from_pointee(zone),
            metrics: Metrics::default(),
            forwards: Arc::new(Semaphore::new(MAX_FORWARDS)),
            forwarders: ArcSwapOption::empty(),
        }
    }

    /// The forwarders for `upstreams`: the ones in use, or new ones when `dns.forward`
    /// changed since. `None` if they cannot be set up.
    async fn forwarders(&self, upstreams: &[SocketAddr]) -> Option<Arc<Forwarders>> {
        if let Some(current) = self.forwarders.load_full()
            && current.upstreams() == upstreams
        {
            return Some(current);
        }
        match Forwarders::connect(upstreams).await {
            Ok(forwarders) => {
                let forwarders = Arc::new(forwarders);
                self.forwarders.store(Some(forwarders.clone()));
                Some(forwarders)
            }
            Err(error) => {
                tracing::warn!(error = %error, "dns: cannot set up the forwarders");
                None
            }
        }
    }

    /// Counts an answered query.
    fn answered(&self, transport: Transport, verdict: &Verdict, started: Instant) {
        if verdict.rcode == ResponseCode::FormErr {
            self.metrics.bad(Bad::Malformed);
        }
        self.metrics
            .query(transport, verdict.qtype, verdict.rcode, started.elapsed());
    }

    /// Counts a query dropped without an answer.
    fn dropped(&self, query: &[u8]) {
        let reason = match query.get(2) {
            Some(flags) if flags & 0x80 != 0 => Bad::Response,
            _ => Bad::Malformed,
        };
        self.metrics.bad(reason);
    }
}

/// One listen address served over UDP and TCP; its tasks and threads stop when it is
/// dropped (the UDP threads within `udp::STOP_CHECK`).
#[derive(Debug)]
pub(crate) struct Listener {
    _tcp: JoinSet<()>,
    udp_stop: Arc<AtomicBool>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.udp_stop.store(true, Ordering::Relaxed);
    }
}

impl Listener {
    /// Binds `addr` (TCP first, then UDP, read by one thread per two cores) and serves it; must
    /// be called on the runtime, which runs the TCP tasks and forwarded queries.
    pub fn start(addr: SocketAddr, shared: &Arc<Shared>) -> Result<Listener, DnsError> {
        let cannot = |error| DnsError::Listen { addr, error };
        let tcp = tcp::bind(addr).map_err(cannot)?;
        // Port 0: UDP takes the port TCP got.
        let bound = tcp.local_addr().map_err(cannot)?;
        let workers = udp::workers(std::thread::available_parallelism().map_or(1, |n| n.get()));
        let udp = udp::bind(bound, workers).map_err(cannot)?;
        let mut tasks = JoinSet::new();
        tasks.spawn(tcp::serve(tcp, shared.clone()));
        let listener = Listener {
            _tcp: tasks,
            udp_stop: Arc::new(AtomicBool::new(false)),
        };
        for socket in udp {
            let stop = listener.udp_stop.clone();
            udp::spawn(socket, shared.clone(), stop, Handle::current()).map_err(cannot)?;
        }
        Ok(listener)
    }
}

/// Relays `query` upstream: the upstream's answer, or SERVFAIL when none answers or too many
/// relays are in flight already.
async fn relay(
    query: &[u8],
    upstreams: &[SocketAddr],
    transport: Transport,
    shared: &Shared,
) -> Vec<u8> {
    let relayed = match shared.forwards.clone().try_acquire_owned() {
        Ok(_permit) => match shared.forwarders(upstreams).await {
            Some(forwarders) => forwarders.relay(query, transport).await,
            None => None,
        },
        Err(_) => None,
    };
    relayed.unwrap_or_else(|| {
        shared.metrics.forward_error();
        let mut out = Vec::new();
        answer::failure(query, ResponseCode::ServFail, transport, &mut out);
        out
    })
}

/// The verdict of a relayed query: the response code is the upstream's.
fn relayed(reply: &[u8], verdict: Verdict) -> Verdict {
    let rcode = reply
        .get(3)
        .map_or(ResponseCode::ServFail, |b| ResponseCode::from_low(b & 0x0f));
    Verdict {
        action: Action::Reply,
        rcode,
        ..verdict
    }
}

/// Answers `query` from the zone in force; the upstreams too when it is to be forwarded.
/// The zone is not held past this call, so no await ever keeps an old zone alive.
fn decide(
    query: &[u8],
    shared: &Shared,
    transport: Transport,
    out: &mut Vec<u8>,
) -> (Verdict, Vec<SocketAddr>) {
    let zone = shared.zone.load();
    let verdict = answer::answer(query, &zone, transport, out);
    let upstreams = match verdict.action {
        Action::Forward => zone.forward().to_vec(),
        Action::Reply | Action::Drop => Vec::new(),
    };
    (verdict, upstreams)
}
