//! When counted conflicts reach the published VIP owners, sans-IO. Every publish copies the
//! owners for every reader, so a host flooding gratuitous ARPs for a VIP must not cause one
//! per frame: a conflict is published at once when nothing was published for a while, and
//! otherwise with the others of the same period once it ends.

use std::time::{Duration, Instant};

/// Conflicts change the published owners at most this often.
pub(crate) const CONFLICT_PUBLISH_GAP: Duration = Duration::from_secs(1);

/// What was published when, and whether conflicts wait.
#[derive(Debug, Default)]
pub(crate) struct ConflictThrottle {
    published_at: Option<Instant>,
    waiting: bool,
}

impl ConflictThrottle {
    /// The owners were published at `now` (for a conflict or any other change).
    pub(crate) fn published(&mut self, now: Instant) {
        self.published_at = Some(now);
        self.waiting = false;
    }

    /// A conflict was counted at `now`: `true` when the owners are to be published now;
    /// otherwise it waits for [`ConflictThrottle::due`].
    pub(crate) fn conflict(&mut self, now: Instant) -> bool {
        let recently = self
            .published_at
            .is_some_and(|at| now.saturating_duration_since(at) < CONFLICT_PUBLISH_GAP);
        self.waiting |= recently;
        !recently
    }

    /// When the waiting conflicts are to be published, if any wait.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.published_at
            .filter(|_| self.waiting)
            .map(|at| at + CONFLICT_PUBLISH_GAP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_conflicts_is_published_once_a_period() {
        let start = Instant::now();
        let mut throttle = ConflictThrottle::default();
        let mut publishes = 0;
        // 10,000 conflicting frames a second for three seconds.
        for tick in 0..30_000u64 {
            let now = start + Duration::from_micros(tick * 100);
            if throttle.due().is_some_and(|at| at <= now) || throttle.conflict(now) {
                throttle.published(now);
                publishes += 1;
            }
        }
        assert_eq!(publishes, 3);
    }

    #[test]
    fn a_first_conflict_is_published_at_once_and_a_late_one_when_the_period_ends() {
        let start = Instant::now();
        let mut throttle = ConflictThrottle::default();
        assert!(throttle.conflict(start));
        throttle.published(start);
        assert_eq!(throttle.due(), None);
        let soon = start + Duration::from_millis(300);
        assert!(!throttle.conflict(soon));
        assert_eq!(throttle.due(), Some(start + CONFLICT_PUBLISH_GAP));
        // Another change published the owners meanwhile: nothing waits any more.
        throttle.published(soon);
        assert_eq!(throttle.due(), None);
        assert!(throttle.conflict(soon + CONFLICT_PUBLISH_GAP));
    }
}
