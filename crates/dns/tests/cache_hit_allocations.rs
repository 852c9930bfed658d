//! A cache hit allocates nothing: the question is read on the stack, the key looked up as a
//! borrowed slice, and the answer written into the caller's buffer (as the UDP threads
//! reuse theirs). Counted with a global allocator of this test binary alone, per thread (the
//! test harness allocates on threads of its own).

#![allow(clippy::unwrap_used)]
// A counting allocator needs `unsafe impl GlobalAlloc`; it only passes calls on.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use dockline_config::DnsCache;
use dockline_dns::cache::Lookup;
use dockline_dns::{Cache, Question, Transport};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every call is passed on to the system allocator unchanged; only counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // A thread being torn down has no counter left: not counted.
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above, that is from the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A query for www.example.test A with an OPT record, and knot's answer to it: one A
/// record with TTL 300, and its OPT.
fn query_and_answer() -> (Vec<u8>, Vec<u8>) {
    let name = Name::from_ascii("www.example.test.").unwrap();
    let mut query = Message::new(0x1234, MessageType::Query, OpCode::Query);
    query.add_query(Query::query(name.clone(), RecordType::A));
    query.set_edns(Edns::new());
    let mut answer = Message::new(0x1234, MessageType::Response, OpCode::Query);
    answer.metadata.authoritative = true;
    answer.add_query(Query::query(name.clone(), RecordType::A));
    let address = RData::A(A::new(192, 0, 2, 80));
    answer.add_answer(Record::from_rdata(name, 300, address));
    answer.set_edns(Edns::new());
    (query.to_vec().unwrap(), answer.to_vec().unwrap())
}

#[test]
fn a_cache_hit_allocates_nothing() {
    let (query, answer) = query_and_answer();
    let mut cache = Cache::new(&DnsCache::default());
    let now = Instant::now();
    let question = Question::parse(&query).unwrap();
    let stored = allocations();
    cache.store(&question, &answer, cache.generation(), now);
    assert!(
        allocations() > stored,
        "the counter counts: keeping an answer allocates"
    );
    let mut out = Vec::with_capacity(512);
    let before = allocations();
    for i in 0..1000 {
        let question = Question::parse(&query).unwrap();
        let at = now + Duration::from_millis(i);
        let found = cache.lookup(&question, Transport::Udp, at, &mut out);
        assert_eq!(found, Lookup::Hit { refresh: false });
    }
    assert_eq!(allocations() - before, 0);
    assert_eq!(out.len(), answer.len());
}
