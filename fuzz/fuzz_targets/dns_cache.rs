//! The cache of forwarded answers on arbitrary upstream responses: keeping any bytes as the
//! answer to a question must never panic, never change what another question is answered,
//! and whatever is answered from the cache carries the asking query's ID and question and
//! fits its transport.
//!
//! The input's first byte is the length of a query, its next bytes that query (a fixed one
//! when they are not a query the cache reads), the rest the upstream's response to it.
#![no_main]

use std::time::{Duration, Instant};

use dockline_config::DnsCache;
use dockline_dns::cache::Lookup;
use dockline_dns::{Cache, Question, Transport};

/// www.example.test A, ID 0x1234, RD, with an OPT of 1232 bytes.
const OTHER: &[u8] = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01\
    \x03www\x07example\x04test\x00\x00\x01\x00\x01\
    \x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00";

/// knot's answer to `OTHER`: one A record, TTL 300, its OPT.
const OTHER_ANSWER: &[u8] = b"\x12\x34\x85\x00\x00\x01\x00\x01\x00\x00\x00\x01\
    \x03www\x07example\x04test\x00\x00\x01\x00\x01\
    \xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04\xc0\x00\x02\x50\
    \x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00";

/// nope.example.test AAAA, ID 0x4321, no EDNS.
const FALLBACK: &[u8] = b"\x43\x21\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\
    \x04nope\x07example\x04test\x00\x00\x1c\x00\x01";

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&len, rest)) = data.split_first() else {
        return;
    };
    let (query, response) = rest.split_at(usize::from(len).min(rest.len()));
    let (query, question) = match Question::parse(query) {
        Some(question) => (query, question),
        None => (FALLBACK, Question::parse(FALLBACK).expect("a common query")),
    };
    let mut cache = Cache::new(&DnsCache {
        max_entries: 4,
        serve_stale_s: 60,
        ..DnsCache::default()
    });
    let now = Instant::now();
    let other = Question::parse(OTHER).expect("a common query");
    cache.store(&other, OTHER_ANSWER, cache.generation(), now);
    let mut before = Vec::new();
    assert!(matches!(
        cache.lookup(&other, Transport::Udp, now, &mut before),
        Lookup::Hit { .. }
    ));
    cache.store(&question, response, cache.generation(), now);
    let mut out = Vec::new();
    if query[12..] != OTHER[12..] {
        assert!(matches!(
            cache.lookup(&other, Transport::Udp, now, &mut out),
            Lookup::Hit { .. }
        ));
        assert_eq!(out, before, "another question's answer is unchanged");
    }
    for later in [0, 1, 3600, 3700] {
        let at = now + Duration::from_secs(later);
        for (transport, limit) in [(Transport::Udp, 4096), (Transport::Tcp, 65535)] {
            let hit = matches!(
                cache.lookup(&question, transport, at, &mut out),
                Lookup::Hit { .. }
            ) || cache.serve_stale(&question, transport, at, &mut out);
            if hit {
                assert!(out.len() <= limit, "{} bytes over {transport:?}", out.len());
                assert_eq!(out[..2], query[..2], "the query's ID");
                assert_eq!(out[4..6], [0, 1], "one question");
                let section = &query[12..12 + question_len(query)];
                assert_eq!(&out[12..12 + section.len()], section, "the query's question");
            }
        }
    }
});

/// The length of the question section of a query `Question::parse` read.
fn question_len(query: &[u8]) -> usize {
    let mut at = 12;
    while query[at] != 0 {
        at += usize::from(query[at]) + 1;
    }
    at + 1 - 12 + 4
}
