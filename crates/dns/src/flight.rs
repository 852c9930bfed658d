//! Single-flight for cache misses, without I/O: the first miss for a key leads (it relays
//! the query), later misses for the same key wait until the leader lands, then read the
//! cache. `W` is how the driver wakes a waiter.

use foldhash::HashMap;

/// The misses being relayed, each with its waiters.
#[derive(Debug)]
pub(crate) struct Flights<W> {
    waiting: HashMap<Box<[u8]>, Vec<W>>,
}

impl<W> Default for Flights<W> {
    fn default() -> Self {
        Flights {
            waiting: HashMap::default(),
        }
    }
}

impl<W> Flights<W> {
    /// Leads the flight of `key` (`true`) if there is none; otherwise waits on it with
    /// `waiter` (made only then).
    pub(crate) fn join(&mut self, key: &[u8], waiter: impl FnOnce() -> W) -> bool {
        match self.waiting.get_mut(key) {
            Some(waiters) => {
                waiters.push(waiter());
                false
            }
            None => {
                self.waiting.insert(key.into(), Vec::new());
                true
            }
        }
    }

    /// Ends the flight of `key`: its waiters, to be woken.
    pub(crate) fn land(&mut self, key: &[u8]) -> Vec<W> {
        self.waiting.remove(key).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_miss_leads_the_others_wait_until_it_lands() {
        let mut flights = Flights::default();
        assert!(flights.join(b"a", || 0));
        assert!(!flights.join(b"a", || 1));
        assert!(!flights.join(b"a", || 2));
        assert!(flights.join(b"b", || 3), "another key flies on its own");
        assert_eq!(flights.land(b"a"), [1, 2]);
        assert!(flights.join(b"a", || 4), "after landing, a new flight");
        assert_eq!(flights.land(b"b"), Vec::<i32>::new());
    }
}
