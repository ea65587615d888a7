//! `OffsetMap`: key -> last offset over a log's dirty range, in bounded
//! memory (Kafka's `SkimpyOffsetMap`).
//!
//! Keys are not stored: each slot holds a 128-bit hash of the key and the
//! offset, [`ENTRY_BYTES`] in all, in one flat open-addressing table
//! (linear probing). Two keys with the same 128-bit hash would be taken for
//! one (the older record of either is then dropped); at 2^-128 per pair that
//! is the same bet Kafka makes with MD5. The table is filled to at most
//! [`LOAD_FACTOR`] of its slots (Kafka's `log.cleaner.io.buffer.load.factor`
//! default); past that the table doubles, up to the memory it was given,
//! and then `put` refuses new keys and the cleaner stops its dirty range
//! there. Starting small and doubling keeps a log with few keys from
//! allocating the whole `log.cleaner.dedupe.buffer.size` (Kafka allocates
//! it once per cleaner thread).

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher, Hasher};

/// Bytes per slot: a 16-byte key hash and an 8-byte offset.
pub const ENTRY_BYTES: usize = 24;
/// Largest share of the slots in use.
pub const LOAD_FACTOR: f64 = 0.9;

/// Offsets are never negative: an empty slot.
const EMPTY: i64 = -1;
/// Slots of a new map (24 KiB).
pub const INITIAL_SLOTS: usize = 1024;

/// Keys a table of `slots` holds.
fn entries_for(slots: usize) -> usize {
    ((slots as f64 * LOAD_FACTOR) as usize).clamp(1, slots - 1)
}

#[derive(Clone, Copy)]
struct Slot {
    hash: [u64; 2],
    offset: i64,
}

const EMPTY_SLOT: Slot = Slot {
    hash: [0; 2],
    offset: EMPTY,
};

/// See the module docs.
pub struct OffsetMap {
    slots: Vec<Slot>,
    /// The most slots the memory allows.
    max_slots: usize,
    /// Keys present.
    len: usize,
    /// Keys that fit in the current table: `LOAD_FACTOR` of the slots.
    max_entries: usize,
    /// Largest offset put (-1 when empty).
    latest_offset: i64,
}

/// 128 bits from two SipHash runs with different prefixes (std's hasher with
/// its fixed keys: the map lives only for one pass in one process).
fn hash_key(key: &[u8]) -> [u64; 2] {
    let build = BuildHasherDefault::<DefaultHasher>::default();
    let mut a = build.build_hasher();
    a.write(key);
    let mut b = build.build_hasher();
    b.write_u8(0xa5);
    b.write(key);
    [a.finish(), b.finish()]
}

impl OffsetMap {
    /// A map of at most `memory_bytes`, and never more than `expected_keys`
    /// need (an upper bound on the keys to be put, e.g. the dirty range's
    /// offset span). It starts at [`INITIAL_SLOTS`] and doubles as it fills.
    pub fn new(memory_bytes: usize, expected_keys: u64) -> OffsetMap {
        let by_memory = (memory_bytes / ENTRY_BYTES).max(2);
        let by_need = ((expected_keys as f64 / LOAD_FACTOR).ceil() as u64).saturating_add(1);
        let max_slots = by_memory.min(usize::try_from(by_need).unwrap_or(usize::MAX));
        let slots = max_slots.min(INITIAL_SLOTS);
        OffsetMap {
            slots: vec![EMPTY_SLOT; slots],
            max_slots,
            len: 0,
            max_entries: entries_for(slots),
            latest_offset: EMPTY,
        }
    }

    /// Double the table (up to `max_slots`), re-placing every key.
    fn grow(&mut self) {
        let slots = (self.slots.len() * 2).min(self.max_slots);
        let old = std::mem::replace(&mut self.slots, vec![EMPTY_SLOT; slots]);
        for slot in old.into_iter().filter(|s| s.offset != EMPTY) {
            let i = self.probe(&slot.hash);
            self.slots[i] = slot;
        }
        self.max_entries = entries_for(slots);
    }

    fn probe(&self, hash: &[u64; 2]) -> usize {
        let n = self.slots.len();
        let mut i = (hash[0] % n as u64) as usize;
        loop {
            let slot = &self.slots[i];
            if slot.offset == EMPTY || slot.hash == *hash {
                return i;
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
    }

    /// Record that `key`'s latest record is at `offset`. Returns false, and
    /// changes nothing, when `key` is new and the map is full.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        let hash = hash_key(key);
        let mut i = self.probe(&hash);
        if self.slots[i].offset == EMPTY {
            if self.len >= self.max_entries {
                if self.slots.len() >= self.max_slots {
                    return false;
                }
                self.grow();
                i = self.probe(&hash);
            }
            self.len += 1;
        }
        self.slots[i] = Slot { hash, offset };
        self.latest_offset = self.latest_offset.max(offset);
        true
    }

    /// The latest offset put for `key`.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        let slot = &self.slots[self.probe(&hash_key(key))];
        (slot.offset != EMPTY).then_some(slot.offset)
    }

    /// Keys in the map.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether a new key would be refused.
    pub fn is_full(&self) -> bool {
        self.len >= self.max_entries && self.slots.len() >= self.max_slots
    }

    /// Keys the map can hold once grown to its memory.
    pub fn max_entries(&self) -> usize {
        entries_for(self.max_slots)
    }

    /// Bytes of the table as it is now.
    pub fn memory_bytes(&self) -> usize {
        self.slots.len() * ENTRY_BYTES
    }

    /// Largest offset put; -1 when empty.
    pub fn latest_offset(&self) -> i64 {
        self.latest_offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_puts_win_and_absent_keys_are_none() {
        let mut m = OffsetMap::new(1 << 20, 100);
        assert!(m.put(b"a", 1));
        assert!(m.put(b"b", 2));
        assert!(m.put(b"a", 7));
        assert_eq!(m.get(b"a"), Some(7));
        assert_eq!(m.get(b"b"), Some(2));
        assert_eq!(m.get(b"c"), None);
        assert_eq!(m.get(b""), None);
        assert_eq!(m.len(), 2);
        assert_eq!(m.latest_offset(), 7);
    }

    #[test]
    fn sized_by_need_then_by_memory_and_grown_by_keys() {
        let small = OffsetMap::new(128 << 20, 1000);
        assert!(small.memory_bytes() < 64 * 1024, "{}", small.memory_bytes());
        assert!(small.max_entries() >= 1000);
        let capped = OffsetMap::new(24 * 100, 1_000_000);
        assert_eq!(capped.memory_bytes(), 2400);
        assert_eq!(capped.max_entries(), 90);
        // A wide offset range with few keys stays small.
        let mut few = OffsetMap::new(128 << 20, 1_000_000);
        assert_eq!(few.memory_bytes(), INITIAL_SLOTS * ENTRY_BYTES);
        for i in 0..10_000i64 {
            assert!(few.put(&i.to_be_bytes(), i));
        }
        assert_eq!(few.memory_bytes(), 16_384 * ENTRY_BYTES);
        assert!((0..10_000i64).all(|i| few.get(&i.to_be_bytes()) == Some(i)));
    }

    #[test]
    fn a_full_map_refuses_new_keys_but_updates_old_ones() {
        let mut m = OffsetMap::new(24 * 10, u64::MAX);
        let cap = m.max_entries();
        for i in 0..cap {
            assert!(m.put(format!("k{i}").as_bytes(), i as i64));
        }
        assert!(m.is_full());
        assert!(!m.put(b"new", 100));
        assert_eq!(m.get(b"new"), None);
        assert!(m.put(b"k0", 200));
        assert_eq!(m.get(b"k0"), Some(200));
        for i in 1..cap {
            assert_eq!(m.get(format!("k{i}").as_bytes()), Some(i as i64));
        }
    }

    #[test]
    fn many_keys_round_trip() {
        let mut m = OffsetMap::new(24 << 20, 100_000);
        for i in 0..100_000i64 {
            assert!(m.put(&i.to_be_bytes(), i));
        }
        for i in 0..100_000i64 {
            assert_eq!(m.get(&i.to_be_bytes()), Some(i));
        }
        assert_eq!(m.len(), 100_000);
    }
}
