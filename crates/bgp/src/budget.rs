//! How much a router may make dockline work, sans-IO.
//!
//! dockline learns no routes, so nothing a router sends needs to be kept: memory is bounded
//! by one message per connection whatever arrives. What a router can still do is make the
//! speaker spend CPU: decoding an endless stream of UPDATEs or KEEPALIVEs, or asking for
//! the whole table again and again with ROUTE-REFRESH (each one re-sends every prefix).
//! [`ReceiveBudget`] is a token bucket over that work, kept per session so that a router
//! cannot refill it by reconnecting. A router that empties it is reset with a Cease, "Out
//! of Resources" (RFC 4486).
//!
//! The figures leave room for any router that peers in good faith: a burst of
//! [`BURST`] (a table of some 300,000 routes sent at session start fits) and
//! [`REFILL_PER_SECOND`] for ever after, far above the keepalives and the odd UPDATE a
//! fabric sends a load-balancer node.

use std::time::{Duration, Instant};

/// What the bucket holds when full, in cost units (bytes of received message).
pub const BURST: u64 = 64 * 1024 * 1024;
/// What flows back in every second.
pub const REFILL_PER_SECOND: u64 = 8 * 1024 * 1024;
/// Added to each message's length: the work of framing and decoding it, whatever its size.
pub const PER_MESSAGE: u64 = 64;
/// What one ROUTE-REFRESH costs: it makes dockline send its whole table again, so a router
/// gets [`BURST`] / this many at once and two a second after that.
pub const ROUTE_REFRESH: u64 = 4 * 1024 * 1024;

/// A token bucket of received work.
#[derive(Debug, Clone)]
pub struct ReceiveBudget {
    available: u64,
    refilled_at: Instant,
}

impl ReceiveBudget {
    /// A full bucket.
    pub fn new(now: Instant) -> Self {
        ReceiveBudget {
            available: BURST,
            refilled_at: now,
        }
    }

    /// Takes `cost` out at `now`; `false` when the bucket holds less, which leaves it empty.
    pub fn spend(&mut self, cost: u64, now: Instant) -> bool {
        self.refill(now);
        match self.available.checked_sub(cost) {
            Some(left) => {
                self.available = left;
                true
            }
            None => {
                self.available = 0;
                false
            }
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled_at);
        // Whole milliseconds only, so the remainder is credited at the next call.
        let millis = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        if millis == 0 {
            return;
        }
        let added = millis.saturating_mul(REFILL_PER_SECOND) / 1000;
        self.available = self.available.saturating_add(added).min(BURST);
        self.refilled_at += Duration::from_millis(millis);
    }
}

/// The cost of a received message of `length` bytes; `route_refresh` for a ROUTE-REFRESH.
pub fn cost(length: usize, route_refresh: bool) -> u64 {
    if route_refresh {
        ROUTE_REFRESH
    } else {
        u64::try_from(length).unwrap_or(u64::MAX) + PER_MESSAGE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_takes_a_burst_then_refuses_until_it_refills() {
        let start = Instant::now();
        let mut budget = ReceiveBudget::new(start);
        assert!(budget.spend(BURST - 10, start));
        assert!(!budget.spend(11, start));
        // Empty now: half a second gives back half the refill rate.
        let later = start + Duration::from_millis(500);
        assert!(budget.spend(REFILL_PER_SECOND / 2, later));
        assert!(!budget.spend(1, later));
    }

    #[test]
    fn the_refill_never_exceeds_the_burst() {
        let start = Instant::now();
        let mut budget = ReceiveBudget::new(start);
        let much_later = start + Duration::from_secs(3600);
        assert!(budget.spend(BURST, much_later));
        assert!(!budget.spend(1, much_later));
    }

    #[test]
    fn a_steady_stream_below_the_refill_rate_is_never_refused() {
        let start = Instant::now();
        let mut budget = ReceiveBudget::new(start);
        // 1,000 messages of 4 KiB a second, for a minute: half the refill rate.
        for tick in 0..60_000u64 {
            let now = start + Duration::from_millis(tick);
            assert!(budget.spend(cost(4096, false), now), "refused at {tick} ms");
        }
    }

    #[test]
    fn route_refreshes_are_dear() {
        let start = Instant::now();
        let mut budget = ReceiveBudget::new(start);
        let at_once = BURST / ROUTE_REFRESH;
        for _ in 0..at_once {
            assert!(budget.spend(cost(23, true), start));
        }
        assert!(!budget.spend(cost(23, true), start));
        assert!(budget.spend(cost(23, true), start + Duration::from_millis(500)));
    }
}
