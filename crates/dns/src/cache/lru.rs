//! A map from byte-string keys to values that remembers the order of use, for eviction of
//! the least recently used. Slots live in one vector, linked most recent first by index;
//! the hash table holds slot indexes only, so each key is stored once. Removal moves the
//! last slot into the hole, which keeps the vector dense without a free list.
//!
//! Keys are query names, chosen by clients: the table hashes them with SipHash under a
//! random key so that no client can aim many names at one bucket.

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

/// No slot: the end of the use order.
const NONE: u32 = u32::MAX;

/// What the map spends per key besides the key's bytes and the value: the slot's key
/// pointer and links, the table's index and control byte.
pub(crate) const PER_KEY: usize = std::mem::size_of::<Slot<()>>() + std::mem::size_of::<u32>() + 1;

/// Values by key, in order of use.
pub(crate) struct Lru<V> {
    table: HashTable<u32>,
    slots: Vec<Slot<V>>,
    /// The most and the least recently used slots.
    newest: u32,
    oldest: u32,
    hasher: RandomState,
}

struct Slot<V> {
    key: Box<[u8]>,
    value: V,
    /// The slot used just after this one, and just before.
    newer: u32,
    older: u32,
}

impl<V> Lru<V> {
    pub(crate) fn new() -> Self {
        Lru {
            table: HashTable::new(),
            slots: Vec::new(),
            newest: NONE,
            oldest: NONE,
            hasher: RandomState::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The value of `key`, made the most recently used.
    pub(crate) fn get(&mut self, key: &[u8]) -> Option<&mut V> {
        let index = self.find(key)?;
        self.unlink(index);
        self.link_newest(index);
        Some(&mut self.slots[index as usize].value)
    }

    /// Puts `value` under `key` as the most recently used; the value it replaces, if any.
    pub(crate) fn insert(&mut self, key: &[u8], value: V) -> Option<V> {
        if let Some(index) = self.find(key) {
            self.unlink(index);
            self.link_newest(index);
            return Some(std::mem::replace(
                &mut self.slots[index as usize].value,
                value,
            ));
        }
        let index = u32::try_from(self.slots.len()).expect("fewer than 2^32 - 1 entries");
        self.slots.push(Slot {
            key: key.into(),
            value,
            newer: NONE,
            older: NONE,
        });
        let hash = self.hasher.hash_one(key);
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.table
            .insert_unique(hash, index, |&i| hasher.hash_one(&*slots[i as usize].key));
        self.link_newest(index);
        None
    }

    /// Takes `key` out.
    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<V> {
        let index = self.find(key)?;
        Some(self.take(index).1)
    }

    /// Takes the least recently used out.
    pub(crate) fn pop_oldest(&mut self) -> Option<(Box<[u8]>, V)> {
        match self.oldest {
            NONE => None,
            oldest => Some(self.take(oldest)),
        }
    }

    pub(crate) fn clear(&mut self) {
        self.table.clear();
        self.slots.clear();
        self.newest = NONE;
        self.oldest = NONE;
    }

    fn find(&self, key: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        self.table
            .find(hash, |&i| *self.slots[i as usize].key == *key)
            .copied()
    }

    /// Removes slot `index`, moving the last slot into its place.
    fn take(&mut self, index: u32) -> (Box<[u8]>, V) {
        self.unlink(index);
        let hash = self.hasher.hash_one(&*self.slots[index as usize].key);
        if let Ok(entry) = self.table.find_entry(hash, |&i| i == index) {
            entry.remove();
        }
        let last = (self.slots.len() - 1) as u32;
        let slot = self.slots.swap_remove(index as usize);
        if last != index {
            // The last slot is now at `index`: its neighbours and its table entry follow.
            let moved = &self.slots[index as usize];
            let (newer, older) = (moved.newer, moved.older);
            let hash = self.hasher.hash_one(&*moved.key);
            self.join(newer, index);
            self.join(index, older);
            if let Some(entry) = self.table.find_mut(hash, |&i| i == last) {
                *entry = index;
            }
        }
        (slot.key, slot.value)
    }

    fn unlink(&mut self, index: u32) {
        let slot = &self.slots[index as usize];
        self.join(slot.newer, slot.older);
    }

    fn link_newest(&mut self, index: u32) {
        self.join(index, self.newest);
        self.join(NONE, index);
    }

    /// Makes `newer` the slot used right after `older` (either may be `NONE`: the ends).
    fn join(&mut self, newer: u32, older: u32) {
        match newer {
            NONE => self.newest = older,
            newer => self.slots[newer as usize].older = older,
        }
        match older {
            NONE => self.oldest = newer,
            older => self.slots[older as usize].newer = newer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_oldest_first(lru: &mut Lru<u32>) -> Vec<u32> {
        std::iter::from_fn(|| lru.pop_oldest().map(|(_, v)| v)).collect()
    }

    #[test]
    fn the_least_recently_used_goes_first() {
        let mut lru = Lru::new();
        for i in 0..5u32 {
            lru.insert(&i.to_be_bytes(), i);
        }
        assert_eq!(lru.get(&1u32.to_be_bytes()), Some(&mut 1));
        assert_eq!(lru.insert(&3u32.to_be_bytes(), 30), Some(3));
        assert_eq!(lru.remove(&0u32.to_be_bytes()), Some(0));
        assert_eq!(lru.len(), 4);
        assert_eq!(keys_oldest_first(&mut lru), [2, 4, 1, 30]);
        assert_eq!(lru.len(), 0);
        assert!(lru.get(&1u32.to_be_bytes()).is_none());
    }

    #[test]
    fn removals_anywhere_keep_every_other_key_reachable() {
        let mut lru = Lru::new();
        for i in 0..100u32 {
            lru.insert(&i.to_be_bytes(), i);
        }
        for i in (0..100u32).filter(|i| i % 3 == 0) {
            assert_eq!(lru.remove(&i.to_be_bytes()), Some(i));
        }
        for i in 0..100u32 {
            let found = lru.get(&i.to_be_bytes()).copied();
            assert_eq!(found, (i % 3 != 0).then_some(i), "{i}");
        }
        let order = keys_oldest_first(&mut lru);
        let expected: Vec<u32> = (0..100).filter(|i| i % 3 != 0).collect();
        assert_eq!(order, expected);
    }
}
