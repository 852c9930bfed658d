//! Deterministic address and port allocation.
//!
//! Every node computes the same result from the same config, with no coordinator: a
//! service's candidate slot is a hash of its identity, and a taken slot moves it to the next
//! free one. Unlike "lowest free address", adding or removing one service leaves the others
//! where they were unless they collided with it.

use sha2::{Digest, Sha256};

/// A stable 128-bit hash of `key` (the same on every node, platform and release).
pub fn stable_hash(key: &str) -> u128 {
    let digest = Sha256::digest(key.as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(first)
}

/// Picks the first free slot at or after the hash of `key`, wrapping around.
///
/// `slot(i)` maps an index `0..size` to a candidate value; `None` means the index is not
/// usable (a network or broadcast address); `taken(value)` says whether another service
/// holds it. Gives up after `max_probes` candidates, so a huge nearly-full IPv6 range cannot
/// stall a reload.
pub(crate) fn probe<T>(
    key: &str,
    size: u128,
    taken: impl Fn(&T) -> bool,
    max_probes: u128,
    slot: impl Fn(u128) -> Option<T>,
) -> Option<T> {
    if size == 0 {
        return None;
    }
    let start = stable_hash(key) % size;
    (0..size.min(max_probes))
        .map(|step| (start + step) % size)
        .filter_map(slot)
        .find(|candidate| !taken(candidate))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn free(_: &u128) -> bool {
        false
    }

    #[test]
    fn the_same_key_gets_the_same_slot() {
        let a = probe("default/web", 100, free, 100, Some);
        assert_eq!(a, probe("default/web", 100, free, 100, Some));
        assert!(a.unwrap() < 100);
    }

    #[test]
    fn a_taken_slot_moves_to_the_next_free_one() {
        let first = probe("k", 10, free, 10, Some).unwrap();
        let used = HashSet::from([first]);
        let taken = |slot: &u128| used.contains(slot);
        assert_eq!(probe("k", 10, taken, 10, Some), Some((first + 1) % 10));
    }

    #[test]
    fn full_and_unusable_spaces_give_none() {
        let used: HashSet<u128> = (0..4).collect();
        assert_eq!(probe("k", 4, |slot| used.contains(slot), 4, Some), None);
        assert_eq!(probe("k", 4, free, 4, |_| None::<u128>), None);
        assert_eq!(probe("k", 0, free, 4, Some), None);
    }
}
