//! Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software
//! Network Load Balancer", NSDI 2016, section 3.4): every backend fills a prime-sized
//! lookup table in the order of its own permutation (`offset + j * skip`), taking turns, so
//! each gets an almost equal share and a backend change moves few entries.

use dockline_model::stable_hash;

/// Prime, much larger than any endpoint count, as the paper advises.
pub(crate) const TABLE_SIZE: usize = 65_537;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Table {
    /// Backend index per slot; empty when there are no backends.
    slots: Vec<u32>,
}

impl Table {
    /// Builds the table for `backends` (names that identify each backend stably).
    pub(crate) fn new<S: AsRef<str>>(backends: &[S]) -> Table {
        if backends.is_empty() {
            return Table { slots: Vec::new() };
        }
        let m = TABLE_SIZE as u64;
        let perms: Vec<(u64, u64)> = backends
            .iter()
            .map(|b| {
                let h = stable_hash(b.as_ref());
                let offset = (h as u64) % m;
                let skip = ((h >> 64) as u64) % (m - 1) + 1;
                (offset, skip)
            })
            .collect();
        // Backends take turns in name order, not list order: which of two backends wins a
        // contested slot must not depend on how the endpoints happen to be listed.
        let mut order: Vec<usize> = (0..backends.len()).collect();
        order.sort_by(|&a, &b| backends[a].as_ref().cmp(backends[b].as_ref()));
        let mut next = vec![0u64; backends.len()];
        let mut slots = vec![u32::MAX; TABLE_SIZE];
        let mut filled = 0;
        'fill: loop {
            for &i in &order {
                let (offset, skip) = perms[i];
                let mut slot = ((offset + next[i] * skip) % m) as usize;
                while slots[slot] != u32::MAX {
                    next[i] += 1;
                    slot = ((offset + next[i] * skip) % m) as usize;
                }
                slots[slot] = i as u32;
                next[i] += 1;
                filled += 1;
                if filled == TABLE_SIZE {
                    break 'fill;
                }
            }
        }
        Table { slots }
    }

    /// The backend index for a flow hash; `None` without backends.
    pub(crate) fn lookup(&self, hash: u64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        Some(self.slots[(hash % TABLE_SIZE as u64) as usize] as usize)
    }
}

/// The hash of a client address that picks its slot.
pub(crate) fn client_hash(client: std::net::IpAddr) -> u64 {
    stable_hash(&client.to_string()) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("10.0.0.{i}")).collect()
    }

    fn keys() -> impl Iterator<Item = u64> {
        (0..10_000u32)
            .map(|i| client_hash(std::net::IpAddr::from([192, 168, (i >> 8) as u8, i as u8])))
    }

    #[test]
    fn shares_are_nearly_equal() {
        let table = Table::new(&names(5));
        let mut counts = [0usize; 5];
        for slot in &table.slots {
            counts[*slot as usize] += 1;
        }
        for c in counts {
            assert!((13_000..=13_200).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn removing_a_backend_moves_only_its_keys_and_few_others() {
        let before = Table::new(&names(5));
        let mut fewer = names(5);
        fewer.remove(2);
        let after = Table::new(&fewer);
        let (mut moved, mut of_removed) = (0, 0);
        for k in keys() {
            let old = &names(5)[before.lookup(k).unwrap()];
            let new = &fewer[after.lookup(k).unwrap()];
            if old == "10.0.0.3" {
                of_removed += 1;
            } else if old != new {
                moved += 1;
            }
        }
        assert!(of_removed > 1000, "{of_removed}");
        // The paper reports a few percent of disruption beyond the removed backend's keys.
        assert!(
            moved < 500,
            "{moved} of 10000 keys of surviving backends moved"
        );
    }

    #[test]
    fn adding_a_backend_takes_about_its_share() {
        let before = Table::new(&names(4));
        let after = Table::new(&names(5));
        let moved = keys()
            .filter(|&k| before.lookup(k) != after.lookup(k))
            .count();
        // Its fair share is 1/5 = 2000 keys.
        assert!((1500..2600).contains(&moved), "{moved}");
    }

    #[test]
    fn no_backends_no_answer_and_order_does_not_matter_for_names() {
        assert_eq!(Table::new::<String>(&[]).lookup(7), None);
        let listed = names(5);
        let mut shuffled = listed.clone();
        shuffled.reverse();
        shuffled.swap(0, 2);
        let (a, b) = (Table::new(&listed), Table::new(&shuffled));
        // Every slot, not a sample of keys: list order used to flip a handful of slots.
        for (x, y) in a.slots.iter().zip(&b.slots) {
            assert_eq!(listed[*x as usize], shuffled[*y as usize]);
        }
    }
}
