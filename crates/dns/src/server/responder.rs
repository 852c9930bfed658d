//! What every listener answers with: the zone in force, the upstreams to relay to and the
//! metrics. The UDP threads and TCP tasks all hold one [`Responder`]; the component swaps a
//! rebuilt zone into it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::{ArcSwap, ArcSwapOption};
use hickory_proto::op::ResponseCode;
use tokio::sync::Semaphore;

use crate::answer;
use crate::forward::Forwarders;
use crate::metrics::{Bad, Metrics};
use crate::verdict::{Action, Transport, Verdict};
use crate::zone::Zone;

/// Forwarded queries in flight at most; more are answered SERVFAIL at once.
const MAX_FORWARDS: usize = 512;

/// The zone in force, the forwarders and the metrics, shared by every listener.
#[derive(Debug)]
pub(crate) struct Responder {
    zone: ArcSwap<Zone>,
    pub(super) metrics: Metrics,
    forwards: Arc<Semaphore>,
    /// The upstreams of the `dns.forward` list last forwarded to.
    forwarders: ArcSwapOption<Forwarders>,
}

impl Responder {
    /// A responder answering from `zone`, with no forwarders set up yet.
    pub(crate) fn new(zone: Zone) -> Self {
        Responder {
            zone: ArcSwap::from_pointee(zone),
            metrics: Metrics::default(),
            forwards: Arc::new(Semaphore::new(MAX_FORWARDS)),
            forwarders: ArcSwapOption::empty(),
        }
    }

    /// Puts `zone` in force for the next query; the old one, which queries in flight may
    /// still hold.
    pub(crate) fn replace_zone(&self, zone: Zone) -> Arc<Zone> {
        self.zone.swap(Arc::new(zone))
    }

    /// Answers `query` from the zone in force; the upstreams too when it is to be forwarded.
    /// The zone is not held past this call, so no await ever keeps an old zone alive.
    pub(super) fn decide(
        &self,
        query: &[u8],
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> (Verdict, Vec<SocketAddr>) {
        let zone = self.zone.load();
        let verdict = answer::answer(query, &zone, transport, out);
        let upstreams = match verdict.action {
            Action::Forward => zone.forward().to_vec(),
            Action::Reply | Action::Drop => Vec::new(),
        };
        (verdict, upstreams)
    }

    /// Relays `query` upstream: the upstream's answer, or SERVFAIL when none answers or too
    /// many relays are in flight already.
    pub(super) async fn relay(
        &self,
        query: &[u8],
        upstreams: &[SocketAddr],
        transport: Transport,
    ) -> Vec<u8> {
        let relayed = match self.forwards.clone().try_acquire_owned() {
            Ok(_permit) => match self.forwarders(upstreams).await {
                Some(forwarders) => forwarders.relay(query, transport).await,
                None => None,
            },
            Err(_) => None,
        };
        relayed.unwrap_or_else(|| {
            self.metrics.forward_error();
            let mut out = Vec::new();
            answer::failure(query, ResponseCode::ServFail, transport, &mut out);
            out
        })
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
    pub(super) fn answered(&self, transport: Transport, verdict: &Verdict, started: Instant) {
        if verdict.rcode == ResponseCode::FormErr {
            self.metrics.bad(Bad::Malformed);
        }
        self.metrics
            .query(transport, verdict.qtype, verdict.rcode, started.elapsed());
    }

    /// Counts a query dropped without an answer.
    pub(super) fn dropped(&self, query: &[u8]) {
        let reason = match query.get(2) {
            Some(flags) if flags & 0x80 != 0 => Bad::Response,
            _ => Bad::Malformed,
        };
        self.metrics.bad(reason);
    }
}

/// The verdict of a relayed query: the response code is the upstream's.
pub(super) fn relayed(reply: &[u8], verdict: Verdict) -> Verdict {
    let rcode = reply
        .get(3)
        .map_or(ResponseCode::ServFail, |b| ResponseCode::from_low(b & 0x0f));
    Verdict {
        action: Action::Reply,
        rcode,
        ..verdict
    }
}
