//! The cache driven by hand-made upstream responses and a fake clock.

#![allow(clippy::unwrap_used)]

use std::str::FromStr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::*;

fn settings() -> DnsCache {
    DnsCache::default()
}

fn query(name: &str, rtype: RecordType, id: u16, edns: Option<u16>) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_str(name).unwrap(), rtype));
    if let Some(payload) = edns {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        message.set_edns(edns);
    }
    message.to_vec().unwrap()
}

/// The upstream's response to `query`: `answers` A records of the question's name with
/// `ttl`, in order, and `rcode`.
fn response(query: &[u8], rcode: ResponseCode, ttls: &[u32]) -> Message {
    let request = Message::from_vec(query).unwrap();
    let mut message = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
    message.metadata = Metadata::response_from_request(&request.metadata);
    message.metadata.response_code = rcode;
    message.metadata.recursion_available = true;
    message.add_queries(request.queries.clone());
    let name = request.queries[0].name().clone();
    for (i, ttl) in ttls.iter().enumerate() {
        let address = A::new(192, 0, 2, i as u8 + 1);
        message.add_answer(Record::from_rdata(name.clone(), *ttl, RData::A(address)));
    }
    if let Some(edns) = &request.edns {
        let mut opt = Edns::new();
        opt.set_max_payload(1232)
            .set_dnssec_ok(edns.flags().dnssec_ok);
        message.set_edns(opt);
    }
    message
}

fn with_soa(mut message: Message, ttl: u32, minimum: u32) -> Message {
    let zone = Name::from_str("example.test.").unwrap();
    let mname = Name::from_str("ns.example.test.").unwrap();
    let rname = Name::from_str("admin.example.test.").unwrap();
    let soa = SOA::new(mname, rname, 1, 3600, 900, 604800, minimum);
    message.add_authority(Record::from_rdata(zone, ttl, RData::SOA(soa)));
    message
}

fn bytes(message: &Message) -> Vec<u8> {
    message.to_vec().unwrap()
}

fn ttls(out: &[u8]) -> Vec<u32> {
    let message = Message::from_vec(out).unwrap();
    let sections = [&message.answers, &message.authorities];
    sections
        .iter()
        .flat_map(|s| s.iter().map(|r| r.ttl))
        .collect()
}

/// Stores the response to `query` at `now`; true if it was kept.
fn store(cache: &mut Cache, query: &[u8], response: &[u8], now: Instant) -> bool {
    let question = Question::parse(query).unwrap();
    let before = cache.entries();
    cache.store(&question, response, cache.generation(), now);
    cache.entries() > before
}

fn lookup(cache: &mut Cache, query: &[u8], transport: Transport, now: Instant) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let question = Question::parse(query).unwrap();
    match cache.lookup(&question, transport, now, &mut out) {
        Lookup::Hit { .. } => Some(out),
        Lookup::Miss => None,
    }
}

const WWW: &str = "www.example.test.";

#[test]
fn a_positive_answer_is_kept_for_its_smallest_ttl_counting_down() {
    let mut cache = Cache::new(&settings());
    let now = Instant::now();
    let q = query(WWW, RecordType::A, 1, None);
    assert!(store(
        &mut cache,
        &q,
        &bytes(&response(&q, ResponseCode::NoError, &[300, 100])),
        now
    ));
    let later = now + Duration::from_secs(40);
    let out = lookup(&mut cache, &q, Transport::Udp, later).unwrap();
    // Each record's own TTL counts down, never past the time the answer is kept for.
    assert_eq!(ttls(&out), [60, 60]);
    let soon = lookup(
        &mut cache,
        &q,
        Transport::Udp,
        now + Duration::from_millis(2500),
    );
    assert_eq!(ttls(&soon.unwrap()), [98, 98]);
    assert!(
        lookup(
            &mut cache,
            &q,
            Transport::Udp,
            now + Duration::from_secs(99)
        )
        .is_some()
    );
    assert!(
        lookup(
            &mut cache,
            &q,
            Transport::Udp,
            now + Duration::from_secs(100)
        )
        .is_none()
    );
    assert_eq!(cache.entries(), 0, "an expired entry goes when looked up");
    assert_eq!(cache.bytes(), 0);
}

#[test]
fn positive_times_are_clamped_to_min_and_max_ttl() {
    let mut cache = Cache::new(&DnsCache {
        min_ttl_s: 30,
        max_ttl_s: 60,
        ..settings()
    });
    let now = Instant::now();
    let short = query("short.example.test.", RecordType::A, 1, None);
    store(
        &mut cache,
        &short,
        &bytes(&response(&short, ResponseCode::NoError, &[5])),
        now,
    );
    let long = query("long.example.test.", RecordType::A, 1, None);
    store(
        &mut cache,
        &long,
        &bytes(&response(&long, ResponseCode::NoError, &[86400])),
        now,
    );
    let at = |s| now + Duration::from_secs(s);
    // Kept 30 s, the TTL sent never above what it says.
    assert_eq!(
        ttls(&lookup(&mut cache, &short, Transport::Udp, at(10)).unwrap()),
        [0]
    );
    assert!(lookup(&mut cache, &short, Transport::Udp, at(29)).is_some());
    assert!(lookup(&mut cache, &short, Transport::Udp, at(30)).is_none());
    // Kept 60 s, the TTL sent no longer than it is kept.
    assert_eq!(
        ttls(&lookup(&mut cache, &long, Transport::Udp, at(10)).unwrap()),
        [50]
    );
    assert!(lookup(&mut cache, &long, Transport::Udp, at(60)).is_none());
}

#[test]
fn negative_answers_are_kept_for_the_soa_minimum_within_negative_ttl() {
    let mut cache = Cache::new(&DnsCache {
        negative_ttl_s: 20,
        ..settings()
    });
    let now = Instant::now();
    let at = |s| now + Duration::from_secs(s);
    let nx = query("nope.example.test.", RecordType::A, 1, None);
    let answer = with_soa(response(&nx, ResponseCode::NXDomain, &[]), 300, 7);
    assert!(store(&mut cache, &nx, &bytes(&answer), now));
    let out = lookup(&mut cache, &nx, Transport::Udp, at(2)).unwrap();
    assert_eq!(
        Message::from_vec(&out).unwrap().response_code,
        ResponseCode::NXDomain
    );
    assert_eq!(ttls(&out), [5], "the SOA counts down from the minimum");
    assert!(lookup(&mut cache, &nx, Transport::Udp, at(7)).is_none());
    // NODATA, the SOA's TTL lower than its minimum, and both above negative_ttl_s.
    let nodata = query(WWW, RecordType::AAAA, 1, None);
    let answer = with_soa(response(&nodata, ResponseCode::NoError, &[]), 25, 3600);
    assert!(store(&mut cache, &nodata, &bytes(&answer), now));
    assert!(lookup(&mut cache, &nodata, Transport::Udp, at(19)).is_some());
    assert!(lookup(&mut cache, &nodata, Transport::Udp, at(20)).is_none());
    // Without an SOA there is nothing to say how long: not kept.
    let bare = query("bare.example.test.", RecordType::A, 1, None);
    let answer = response(&bare, ResponseCode::NXDomain, &[]);
    assert!(!store(&mut cache, &bare, &bytes(&answer), now));
}

#[test]
fn refused_truncated_and_mismatched_answers_are_not_kept_servfail_briefly() {
    let mut cache = Cache::new(&settings());
    let now = Instant::now();
    let q = query(WWW, RecordType::A, 7, None);
    let good = response(&q, ResponseCode::NoError, &[300]);
    let refused = response(&q, ResponseCode::Refused, &[]);
    assert!(!store(&mut cache, &q, &bytes(&refused), now));
    let mut truncated = good.clone();
    truncated.metadata.truncation = true;
    assert!(!store(&mut cache, &q, &bytes(&truncated), now));
    let mut wrong_id = good.clone();
    wrong_id.metadata.id = 8;
    assert!(!store(&mut cache, &q, &bytes(&wrong_id), now));
    for (name, rtype) in [
        ("other.example.test.", RecordType::A),
        (WWW, RecordType::AAAA),
    ] {
        let other = query(name, rtype, 7, None);
        let answer = bytes(&response(&other, ResponseCode::NoError, &[300]));
        assert!(!store(&mut cache, &q, &answer, now), "{name} {rtype}");
    }
    let whole = bytes(&good);
    assert!(
        !store(&mut cache, &q, &whole[..whole.len() - 1], now),
        "cut short"
    );
    let mut longer = whole.clone();
    longer.push(0);
    assert!(!store(&mut cache, &q, &longer, now), "trailing bytes");
    assert_eq!(cache.entries(), 0);
    let servfail = response(&q, ResponseCode::ServFail, &[]);
    assert!(store(&mut cache, &q, &bytes(&servfail), now));
    assert!(lookup(&mut cache, &q, Transport::Udp, now + Duration::from_secs(4)).is_some());
    assert!(lookup(&mut cache, &q, Transport::Udp, now + Duration::from_secs(5)).is_none());
}

#[test]
fn a_hit_takes_the_clients_id_rd_case_and_edns() {
    let mut cache = Cache::new(&settings());
    let now = Instant::now();
    let filler = query(WWW, RecordType::A, 1, Some(4096));
    let answer = response(&filler, ResponseCode::NoError, &[300]);
    assert!(store(&mut cache, &filler, &bytes(&answer), now));
    // Another client: no EDNS, RD clear, the name in capitals.
    let mut other = query("WWW.Example.TEST.", RecordType::A, 0xbeef, None);
    other[2] &= !0x01;
    let key_of = |q: &[u8]| Question::parse(q).unwrap().cache_key().to_vec();
    assert_eq!(
        key_of(&other),
        key_of(&filler),
        "EDNS without DO shares the key"
    );
    let plain = query(WWW, RecordType::A, 1, None);
    assert_eq!(key_of(&plain), key_of(&filler));
    let out = lookup(&mut cache, &other, Transport::Udp, now).unwrap();
    assert_eq!(
        out[12..30],
        other[12..30],
        "the client's question, its case kept"
    );
    let message = Message::from_vec(&out).unwrap();
    assert_eq!(message.metadata.id, 0xbeef);
    assert!(!message.metadata.recursion_desired);
    assert!(message.metadata.recursion_available, "the upstream's RA");
    assert!(message.edns.is_none());
    assert_eq!(message.answers.len(), 1);
    let with_edns = lookup(&mut cache, &filler, Transport::Udp, now).unwrap();
    let message = Message::from_vec(&with_edns).unwrap();
    assert_eq!(message.edns.unwrap().max_payload(), 1232);
}

fn other_key_lookups(question: &[u8], flip: impl Fn(&mut Vec<u8>)) -> bool {
    let mut cache = Cache::new(&settings());
    let now = Instant::now();
    store(
        &mut cache,
        question,
        &bytes(&response(question, ResponseCode::NoError, &[300])),
        now,
    );
    let mut other = question.to_vec();
    flip(&mut other);
    lookup(&mut cache, &other, Transport::Udp, now).is_some()
}

#[test]
fn do_and_cd_are_part_of_the_key() {
    let q = query(WWW, RecordType::A, 1, Some(1232));
    // CD set.
    assert!(!other_key_lookups(&q, |q| q[3] |= 0x10));
    // DO set: the flags byte of the OPT's TTL.
    assert!(!other_key_lookups(&q, |q| {
        let at = q.len() - 4;
        q[at] |= 0x80;
    }));
    // AD in the query is not.
    assert!(other_key_lookups(&q, |q| q[3] |= 0x20));
}

#[test]
fn a_hit_too_large_for_the_client_is_truncated_as_a_fresh_answer() {
    let mut cache = Cache::new(&settings());
    let now = Instant::now();
    let q = query("big.example.test.", RecordType::A, 1, None);
    let big = response(&q, ResponseCode::NoError, &[300; 60]);
    assert!(store(&mut cache, &q, &bytes(&big), now));
    let whole = lookup(&mut cache, &q, Transport::Tcp, now).unwrap();
    assert_eq!(Message::from_vec(&whole).unwrap().answers.len(), 60);
    for (edns, size) in [(None, 512), (Some(512), 512), (Some(900), 900)] {
        let small = query("big.example.test.", RecordType::A, 2, edns);
        let out = lookup(&mut cache, &small, Transport::Udp, now).unwrap();
        assert!(out.len() <= size, "{edns:?}: {} bytes", out.len());
        let message = Message::from_vec(&out).unwrap();
        assert!(message.metadata.truncation, "{edns:?}");
        assert!(message.answers.is_empty());
        assert_eq!(message.queries.len(), 1);
        assert_eq!(message.edns.is_some(), edns.is_some());
    }
    // Within 1232 bytes it fits whole.
    let roomy = query("big.example.test.", RecordType::A, 3, Some(1232));
    let out = lookup(&mut cache, &roomy, Transport::Udp, now).unwrap();
    let message = Message::from_vec(&out).unwrap();
    assert!(!message.metadata.truncation);
    assert_eq!(message.answers.len(), 60);
}

#[test]
fn the_least_recently_used_is_evicted_and_bytes_follow() {
    let mut cache = Cache::new(&DnsCache {
        max_entries: 2,
        ..settings()
    });
    let now = Instant::now();
    let names = ["a.example.test.", "b.example.test.", "c.example.test."];
    let queries: Vec<Vec<u8>> = names
        .iter()
        .map(|n| query(n, RecordType::A, 1, None))
        .collect();
    let put = |cache: &mut Cache, q: &[u8]| {
        let question = Question::parse(q).unwrap();
        let answer = bytes(&response(q, ResponseCode::NoError, &[300]));
        cache.store(&question, &answer, cache.generation(), now)
    };
    assert_eq!(put(&mut cache, &queries[0]), 0);
    assert_eq!(put(&mut cache, &queries[1]), 0);
    let two = cache.bytes();
    assert!(two > 2 * 40, "{two}");
    // a is used, so b is the least recently used when c comes.
    assert!(lookup(&mut cache, &queries[0], Transport::Udp, now).is_some());
    assert_eq!(put(&mut cache, &queries[2]), 1);
    assert!(lookup(&mut cache, &queries[1], Transport::Udp, now).is_none());
    assert!(lookup(&mut cache, &queries[0], Transport::Udp, now).is_some());
    assert!(lookup(&mut cache, &queries[2], Transport::Udp, now).is_some());
    assert_eq!((cache.entries(), cache.bytes()), (2, two));
    // Fewer entries allowed on reload: the older go.
    assert_eq!(
        cache.configure(&DnsCache {
            max_entries: 1,
            ..settings()
        }),
        1
    );
    assert!(lookup(&mut cache, &queries[2], Transport::Udp, now).is_some());
    cache.flush();
    assert_eq!((cache.entries(), cache.bytes()), (0, 0));
}

#[test]
fn an_answer_relayed_before_a_flush_is_not_kept_after_it() {
    let mut cache = Cache::new(&settings());
    let now = Instant::now();
    let q = query(WWW, RecordType::A, 1, None);
    let question = Question::parse(&q).unwrap();
    let before = cache.generation();
    cache.flush();
    let answer = bytes(&response(&q, ResponseCode::NoError, &[300]));
    cache.store(&question, &answer, before, now);
    assert_eq!(cache.entries(), 0);
}

#[test]
fn expired_answers_are_served_stale_only_when_asked_and_within_serve_stale() {
    let now = Instant::now();
    let at = |s| now + Duration::from_secs(s);
    let q = query(WWW, RecordType::A, 1, None);
    let question = Question::parse(&q).unwrap();
    let answer = bytes(&response(&q, ResponseCode::NoError, &[10]));
    let mut out = Vec::new();
    let mut plain = Cache::new(&settings());
    plain.store(&question, &answer, 0, now);
    assert!(!plain.serve_stale(&question, Transport::Udp, at(11), &mut out));
    let mut cache = Cache::new(&DnsCache {
        serve_stale_s: 60,
        ..settings()
    });
    cache.store(&question, &answer, 0, now);
    assert!(
        !cache.serve_stale(&question, Transport::Udp, at(4), &mut out),
        "fresh"
    );
    assert_eq!(
        cache.lookup(&question, Transport::Udp, at(20), &mut out),
        Lookup::Miss
    );
    // An upstream's SERVFAIL does not push the stale answer out.
    let servfail = bytes(&response(&q, ResponseCode::ServFail, &[]));
    cache.store(&question, &servfail, 0, at(20));
    assert!(cache.serve_stale(&question, Transport::Udp, at(20), &mut out));
    assert_eq!(ttls(&out), [30]);
    assert_eq!(
        Message::from_vec(&out).unwrap().response_code,
        ResponseCode::NoError
    );
    assert!(cache.serve_stale(&question, Transport::Udp, at(69), &mut out));
    assert!(!cache.serve_stale(&question, Transport::Udp, at(70), &mut out));
}

#[test]
fn a_hit_in_the_last_tenth_of_its_time_asks_for_one_refresh() {
    let mut cache = Cache::new(&settings());
    let now = Instant::now();
    let q = query(WWW, RecordType::A, 1, None);
    let question = Question::parse(&q).unwrap();
    let answer = bytes(&response(&q, ResponseCode::NoError, &[100]));
    cache.store(&question, &answer, 0, now);
    let mut out = Vec::new();
    let mut ask = |s| {
        cache.lookup(
            &question,
            Transport::Udp,
            now + Duration::from_secs(s),
            &mut out,
        )
    };
    assert_eq!(ask(90), Lookup::Hit { refresh: false });
    assert_eq!(ask(91), Lookup::Hit { refresh: true });
    assert_eq!(ask(92), Lookup::Hit { refresh: false });
    // The refreshed answer starts over.
    cache.store(&question, &answer, 0, now + Duration::from_secs(95));
    assert_eq!(
        cache.lookup(
            &question,
            Transport::Udp,
            now + Duration::from_secs(186),
            &mut out
        ),
        Lookup::Hit { refresh: true }
    );
}
