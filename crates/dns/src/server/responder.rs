//! What every listener answers with: the zone in force, the cache of forwarded answers, the
//! upstreams to relay to and the metrics. The UDP threads and TCP tasks all hold one
//! [`Responder`]; the component swaps a rebuilt zone (and the cache settings) into it.
//!
//! A query for a name outside our zones is looked up in the cache on the thread that
//! received it, without allocating; a hit in the last tenth of its time also starts a
//! background refresh, relayed over TCP so that its answer is never truncated. A miss is
//! relayed: the first miss for a key leads, the others wait for it and read the cache when
//! it lands. When no upstream answers, an expired answer is served stale if
//! `serve_stale_s` allows, or SERVFAIL.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use arc_swap::{ArcSwap, ArcSwapOption};
use dockline_config::DnsCache;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, oneshot};

use crate::answer;
use crate::cache::{Cache, Lookup};
use crate::flight::Flights;
use crate::forward::Forwarders;
use crate::metrics::{Bad, Metrics};
use crate::question::Question;
use crate::verdict::{Action, Transport, Verdict};
use crate::zone::Zone;

/// Forwarded queries in flight at most; more are answered SERVFAIL at once.
const MAX_FORWARDS: usize = 512;

/// A waiter on another query's relay: woken with whether an upstream answered.
type Waiter = oneshot::Sender<bool>;

/// The zone in force, the cache, the forwarders and the metrics, shared by every listener.
#[derive(Debug)]
pub(crate) struct Responder {
    zone: ArcSwap<Zone>,
    /// `None` while `dns.cache.enabled = false`.
    cache: Mutex<Option<Cache>>,
    flights: Mutex<Flights<Waiter>>,
    pub(super) metrics: Metrics,
    forwards: Arc<Semaphore>,
    /// The upstreams of the `dns.forward` list last forwarded to.
    forwarders: ArcSwapOption<Forwarders>,
    /// Runs background refreshes.
    runtime: Handle,
}

impl Responder {
    /// A responder answering from `zone` with a cache as `settings` say, and no forwarders
    /// set up yet; must be called on the runtime.
    pub(crate) fn new(zone: Zone, settings: &DnsCache) -> Self {
        let responder = Responder {
            zone: ArcSwap::from_pointee(zone),
            cache: Mutex::new(settings.enabled.then(|| Cache::new(settings))),
            flights: Mutex::default(),
            metrics: Metrics::default(),
            forwards: Arc::new(Semaphore::new(MAX_FORWARDS)),
            forwarders: ArcSwapOption::empty(),
            runtime: Handle::current(),
        };
        responder.metrics.cache_entries(0);
        responder
    }

    /// The zone in force.
    pub(crate) fn zone(&self) -> Arc<Zone> {
        self.zone.load_full()
    }

    /// Puts `zone` in force for the next query, with the cache as `settings` say; the old
    /// zone, which queries in flight may still hold. A new `dns.forward` list empties the
    /// cache: what the old upstreams said is not what the new ones would.
    pub(crate) fn replace_zone(&self, zone: Zone, settings: &DnsCache) -> Arc<Zone> {
        let forward_changed = zone.forward() != self.zone.load().forward();
        let old = self.zone.swap(Arc::new(zone));
        let mut cache = self.lock_cache();
        match (&mut *cache, settings.enabled) {
            (Some(cache), true) => {
                if forward_changed {
                    cache.flush();
                    tracing::info!("dns: dns.forward changed, cache emptied");
                }
                let evicted = cache.configure(settings);
                self.metrics.cache_evicted(evicted);
            }
            (None, true) => *cache = Some(Cache::new(settings)),
            (_, false) => *cache = None,
        }
        self.metrics
            .cache_entries(cache.as_ref().map_or(0, Cache::entries));
        old
    }

    /// The answers cached and the memory they hold, in bytes.
    pub(crate) fn cache_size(&self) -> (usize, usize) {
        self.lock_cache()
            .as_ref()
            .map_or((0, 0), |cache| (cache.entries(), cache.bytes()))
    }

    /// Answers `query` from the zone in force, or from the cache for an outside name; the
    /// upstreams too when it is to be forwarded. The zone is not held past this call, so
    /// no await ever keeps an old zone alive.
    pub(super) fn decide(
        self: &Arc<Self>,
        query: &[u8],
        transport: Transport,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> (Verdict, Vec<SocketAddr>) {
        let zone = self.zone.load();
        let question = Question::parse(query);
        if let Some(question) = &question
            && !zone.forward().is_empty()
            && zone.is_outside(question.name_key())
            && let Some(verdict) = self.cached(question, zone.forward(), transport, now, out)
        {
            return (verdict, Vec::new());
        }
        let verdict = answer::answer_read(query, question.as_ref(), &zone, transport, out);
        let upstreams = match verdict.action {
            Action::Forward => zone.forward().to_vec(),
            Action::Reply | Action::Drop => Vec::new(),
        };
        (verdict, upstreams)
    }

    /// A fresh cached answer to `question`, written to `out`; a refresh is started when it
    /// nears its end.
    fn cached(
        self: &Arc<Self>,
        question: &Question<'_>,
        upstreams: &[SocketAddr],
        transport: Transport,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Option<Verdict> {
        let found = self
            .lock_cache()
            .as_mut()?
            .lookup(question, transport, now, out);
        let Lookup::Hit { refresh } = found else {
            return None;
        };
        self.metrics.cache_hit();
        if refresh {
            self.refresh(question, upstreams);
        }
        Some(Verdict {
            action: Action::Reply,
            qtype: Some(RecordType::from(question.qtype())),
            rcode: ResponseCode::from_low(out[3] & 0x0f),
        })
    }

    /// Relays the query of `question` again in the background and keeps the answer.
    fn refresh(self: &Arc<Self>, question: &Question<'_>, upstreams: &[SocketAddr]) {
        let (responder, upstreams) = (Arc::clone(self), upstreams.to_vec());
        let query = question.query().to_vec();
        self.runtime.spawn(async move {
            let Some(question) = Question::parse(&query) else {
                return;
            };
            let Some(generation) = responder.lock_cache().as_ref().map(Cache::generation) else {
                return;
            };
            if let Some(response) = responder.forward(&query, &upstreams, Transport::Tcp).await {
                responder.store(&question, &response, generation);
            }
        });
    }

    /// Relays `query` upstream: the upstream's answer, a cached one another relay of the
    /// same question brought, a stale one, or SERVFAIL when none answers or too many relays
    /// are in flight already.
    pub(super) async fn relay(
        &self,
        query: &[u8],
        upstreams: &[SocketAddr],
        transport: Transport,
    ) -> Vec<u8> {
        let question = Question::parse(query);
        let generation = self.lock_cache().as_ref().map(Cache::generation);
        let (Some(question), Some(generation)) = (question, generation) else {
            let relayed = self.forward(query, upstreams, transport).await;
            return relayed.unwrap_or_else(|| self.servfail(query, transport));
        };
        self.metrics.cache_miss();
        let mut woken = None;
        let leads = self.lock_flights().join(question.cache_key(), || {
            let (wake, woken_by) = oneshot::channel();
            woken = Some(woken_by);
            wake
        });
        if !leads && let Some(woken) = woken {
            return self
                .follow(&question, query, upstreams, transport, woken)
                .await;
        }
        let mut landing = Landing {
            responder: self,
            key: question.cache_key(),
            answered: false,
        };
        let Some(response) = self.forward(query, upstreams, transport).await else {
            return self.failed(&question, query, transport);
        };
        landing.answered = true;
        self.store(&question, &response, generation);
        let servfail = response.get(3).is_some_and(|b| b & 0x0f == 2);
        if servfail && let Some(stale) = self.stale(&question, transport) {
            return stale;
        }
        response
    }

    /// The answer for a miss that waited on another relay of its question.
    async fn follow(
        &self,
        question: &Question<'_>,
        query: &[u8],
        upstreams: &[SocketAddr],
        transport: Transport,
        woken: oneshot::Receiver<bool>,
    ) -> Vec<u8> {
        let answered = woken.await;
        let mut out = Vec::new();
        let found = self
            .lock_cache()
            .as_mut()
            .map(|cache| cache.lookup(question, transport, Instant::now(), &mut out));
        if let Some(Lookup::Hit { .. }) = found {
            return out;
        }
        if let Some(stale) = self.stale(question, transport) {
            return stale;
        }
        match answered {
            Ok(false) => self.failed(question, query, transport),
            // An answer not to be kept (REFUSED, truncated), or the relay was dropped:
            // this query goes up itself.
            Ok(true) | Err(_) => {
                let relayed = self.forward(query, upstreams, transport).await;
                relayed.unwrap_or_else(|| self.servfail(query, transport))
            }
        }
    }

    /// Keeps `response` to `question` unless the cache was flushed since `generation`.
    fn store(&self, question: &Question<'_>, response: &[u8], generation: u64) {
        let mut cache = self.lock_cache();
        if let Some(cache) = cache.as_mut() {
            let evicted = cache.store(question, response, generation, Instant::now());
            self.metrics.cache_evicted(evicted);
            self.metrics.cache_entries(cache.entries());
        }
    }

    /// No upstream answered: a stale answer if there is one, else SERVFAIL.
    fn failed(&self, question: &Question<'_>, query: &[u8], transport: Transport) -> Vec<u8> {
        self.stale(question, transport)
            .unwrap_or_else(|| self.servfail(query, transport))
    }

    fn stale(&self, question: &Question<'_>, transport: Transport) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let served = self
            .lock_cache()
            .as_mut()
            .is_some_and(|cache| cache.serve_stale(question, transport, Instant::now(), &mut out));
        served.then(|| {
            self.metrics.cache_stale_served();
            out
        })
    }

    fn servfail(&self, query: &[u8], transport: Transport) -> Vec<u8> {
        self.metrics.forward_error();
        let mut out = Vec::new();
        answer::failure(query, ResponseCode::ServFail, transport, &mut out);
        out
    }

    /// The first upstream answer to `query`, or `None` when none answers or too many relays
    /// are in flight already.
    async fn forward(
        &self,
        query: &[u8],
        upstreams: &[SocketAddr],
        transport: Transport,
    ) -> Option<Vec<u8>> {
        let _permit = self.forwards.clone().try_acquire_owned().ok()?;
        let forwarders = self.forwarders(upstreams).await?;
        forwarders.relay(query, transport).await
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

    fn lock_cache(&self) -> MutexGuard<'_, Option<Cache>> {
        // The cache is consistent between calls: a panic inside one leaves it usable.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_flights(&self) -> MutexGuard<'_, Flights<Waiter>> {
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A relay that leads its question's flight: its waiters are woken when it ends, however
/// it ends (a TCP client going away drops it halfway).
struct Landing<'r> {
    responder: &'r Responder,
    key: &'r [u8],
    answered: bool,
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        for waiter in self.responder.lock_flights().land(self.key) {
            let _ = waiter.send(self.answered);
        }
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
