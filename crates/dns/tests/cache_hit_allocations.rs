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

/// www.example.test A, ID 0x1234, RD, with an OPT of 1232 bytes.
const QUERY: &[u8] = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01\
    \x03www\x07example\x04test\x00\x00\x01\x00\x01\
    \x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00";

/// knot's answer: one A record, TTL 300, its OPT.
const ANSWER: &[u8] = b"\x12\x34\x85\x00\x00\x01\x00\x01\x00\x00\x00\x01\
    \x03www\x07example\x04test\x00\x00\x01\x00\x01\
    \xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04\xc0\x00\x02\x50\
    \x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00";

#[test]
fn a_cache_hit_allocates_nothing() {
    let mut cache = Cache::new(&DnsCache::default());
    let now = Instant::now();
    let question = Question::parse(QUERY).unwrap();
    let stored = allocations();
    cache.store(&question, ANSWER, cache.generation(), now);
    assert!(
        allocations() > stored,
        "the counter counts: keeping an answer allocates"
    );
    let mut out = Vec::with_capacity(512);
    let before = allocations();
    for i in 0..1000 {
        let question = Question::parse(QUERY).unwrap();
        let at = now + Duration::from_millis(i);
        let found = cache.lookup(&question, Transport::Udp, at, &mut out);
        assert_eq!(found, Lookup::Hit { refresh: false });
    }
    assert_eq!(allocations() - before, 0);
    assert_eq!(out.len(), ANSWER.len());
}
