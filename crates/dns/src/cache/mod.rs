//! The cache of forwarded answers (`[dns.cache]`), without I/O: the caller passes `now`,
//! asks with [`Cache::lookup`] before relaying a query, keeps what the upstream said with
//! [`Cache::store`], and falls back on [`Cache::serve_stale`] when no upstream answers.
//!
//! Entries are keyed by name, type, class and the DO and CD bits ([`Question`]), bounded by
//! `max_entries` (the least recently used goes first), and kept for as long as
//! [`entry`](self::entry) says. An entry asked for in the last tenth of its time asks its
//! caller once to refresh it (prefetch). With `serve_stale_s`, an expired entry is kept that
//! much longer, to be served with TTL 30 while the upstreams fail (RFC 8767); without it,
//! an expired entry is dropped when next looked up, or evicted in its turn.

mod entry;
mod lru;

use std::time::{Duration, Instant};

use dockline_config::DnsCache;

use crate::question::Question;
use crate::verdict::Transport;
use entry::{Age, Entry, Lifetimes};
use lru::Lru;

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A fresh answer, written out. `refresh`: it is in the last tenth of its time and no
    /// refresh was asked for yet: the caller should relay the query again and store it.
    Hit {
        /// Refresh it in the background.
        refresh: bool,
    },
    /// Nothing fresh: relay the query.
    Miss,
}

/// The response code of a kept answer: a cached SERVFAIL is never served stale.
const SERVFAIL: u8 = 2;

/// Answers of the `dns.forward` upstreams, by question.
pub struct Cache {
    entries: Lru<Entry>,
    max_entries: usize,
    lifetimes: Lifetimes,
    stale: Duration,
    /// What the entries hold, keys included.
    bytes: usize,
    /// Bumped by every flush: an answer relayed before one is not stored after it.
    generation: u64,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("entries", &self.entries.len())
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// An empty cache with the limits of `settings` (its `enabled` is the caller's).
    pub fn new(settings: &DnsCache) -> Self {
        let mut cache = Cache {
            entries: Lru::new(),
            max_entries: 0,
            lifetimes: Lifetimes {
                min: 0,
                max: 0,
                negative: 0,
            },
            stale: Duration::ZERO,
            bytes: 0,
            generation: 0,
        };
        cache.configure(settings);
        cache
    }

    /// Takes the limits of `settings`; returns how many entries had to go to fit a lower
    /// `max_entries`. Entries kept keep the time they were given.
    pub fn configure(&mut self, settings: &DnsCache) -> usize {
        self.max_entries = settings.max_entries as usize;
        self.lifetimes = Lifetimes {
            min: settings.min_ttl_s,
            max: settings.max_ttl_s,
            negative: settings.negative_ttl_s,
        };
        self.stale = Duration::from_secs(u64::from(settings.serve_stale_s));
        self.evict_to(self.max_entries)
    }

    /// Answers `question` into `out` if a fresh answer is kept.
    pub fn lookup(
        &mut self,
        question: &Question<'_>,
        transport: Transport,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Lookup {
        let stale = self.stale;
        let Some((entry, age)) = self.find(question, now) else {
            return Lookup::Miss;
        };
        if age >= entry.lifetime {
            if age >= entry.lifetime + stale {
                self.remove(question.cache_key());
            }
            return Lookup::Miss;
        }
        entry.write(question, transport, Age::Fresh(now), out);
        let refresh = !entry.refreshing && (entry.lifetime - age) * 10 < entry.lifetime;
        entry.refreshing |= refresh;
        Lookup::Hit { refresh }
    }

    /// Answers `question` into `out` with an answer expired less than `serve_stale_s` ago,
    /// with TTL 30, when no upstream answered; `false` if there is no such answer.
    pub fn serve_stale(
        &mut self,
        question: &Question<'_>,
        transport: Transport,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> bool {
        let stale = self.stale;
        match self.find(question, now) {
            Some((entry, age))
                if age >= entry.lifetime
                    && age < entry.lifetime + stale
                    && entry.rcode() != SERVFAIL =>
            {
                entry.write(question, transport, Age::Stale, out);
                true
            }
            _ => false,
        }
    }

    /// Keeps `response`, the upstream's answer to `question`, if it is to be kept and no
    /// flush came since `generation` was read; returns how many entries were evicted for it.
    /// A SERVFAIL does not replace an answer that may still be served stale.
    pub fn store(
        &mut self,
        question: &Question<'_>,
        response: &[u8],
        generation: u64,
        now: Instant,
    ) -> usize {
        if generation != self.generation || self.max_entries == 0 {
            return 0;
        }
        let Some(entry) = Entry::new(question, response, self.lifetimes, now) else {
            return 0;
        };
        let key = question.cache_key();
        if entry.rcode() == SERVFAIL && !self.stale.is_zero() && self.serve_stale_held(key, now) {
            return 0;
        }
        self.bytes += held(key, &entry);
        if let Some(old) = self.entries.insert(key, entry) {
            self.bytes -= held(key, &old);
        }
        // The new entry is the most recently used: never the one evicted.
        self.evict_to(self.max_entries)
    }

    /// Drops every entry, and answers relayed before now.
    pub fn flush(&mut self) {
        self.entries.clear();
        self.bytes = 0;
        self.generation += 1;
    }

    /// What [`Cache::store`] compares to see whether a flush came in between.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// How many answers are kept.
    pub fn entries(&self) -> usize {
        self.entries.len()
    }

    /// The memory the kept answers hold, in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The entry of `question`, made the most recently used, and how long ago it was kept.
    fn find(&mut self, question: &Question<'_>, now: Instant) -> Option<(&mut Entry, Duration)> {
        let entry = self.entries.get(question.cache_key())?;
        let age = now.saturating_duration_since(entry.stored);
        Some((entry, age))
    }

    fn serve_stale_held(&mut self, key: &[u8], now: Instant) -> bool {
        let stale = self.stale;
        self.entries.get(key).is_some_and(|entry| {
            entry.rcode() != SERVFAIL
                && now.saturating_duration_since(entry.stored) < entry.lifetime + stale
        })
    }

    fn remove(&mut self, key: &[u8]) {
        if let Some(entry) = self.entries.remove(key) {
            self.bytes -= held(key, &entry);
        }
    }

    /// Evicts the least recently used until at most `count` are left.
    fn evict_to(&mut self, count: usize) -> usize {
        let mut evicted = 0;
        while self.entries.len() > count {
            let Some((key, entry)) = self.entries.pop_oldest() else {
                break;
            };
            self.bytes -= held(&key, &entry);
            evicted += 1;
        }
        evicted
    }
}

/// The memory one entry holds: its key, its answer and its place in the map (allocator
/// overhead and spare capacity aside: the process's RSS grows by about half as much again).
fn held(key: &[u8], entry: &Entry) -> usize {
    key.len() + entry.bytes() + lru::PER_KEY
}

#[cfg(test)]
mod tests;
