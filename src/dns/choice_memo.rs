//! A per-thread memo of pool choices for the query path: the failover walk
//! (which pool of the client's order has enough healthy endpoints) depends
//! only on a `policy::MemoKey` (service, order, family and the health
//! view's epoch), and health changes rarely, so each worker thread keeps
//! recent choices and redoes the walk only when the view has changed.
//!
//! Thread-local, so no lock and no sharing between workers; a fixed number
//! of direct-mapped slots (1,024 of 56 bytes: 56 KiB per thread), so memory
//! does not grow with the configuration (a collision only means a
//! recomputation).

use std::cell::Cell;

use crate::policy::{ChoiceMemo, Family, MemoKey, PoolChoice};

/// Slots per thread (a power of two).
const SLOTS: usize = 1024;

/// The key of an empty slot: `service` 0, which no service has.
const EMPTY_KEY: MemoKey = MemoKey {
    service: 0,
    order: 0,
    family: Family::V4,
    epoch: 0,
};

thread_local! {
    // Plain `Copy` data with a constant initialiser: no lazy set-up and no
    // destructor to register, so an access is one thread-pointer offset.
    // Keys and choices in separate arrays: a lookup reads the 24-byte key,
    // and the 32-byte choice only when the key matches (one array of both
    // copied whole entries out per query: 17 more instructions per
    // service query in `tests/callgrind_harness.rs`).
    static KEYS: [Cell<MemoKey>; SLOTS] = const { [const { Cell::new(EMPTY_KEY) }; SLOTS] };
    static CHOICES: [Cell<PoolChoice>; SLOTS] =
        const { [const { Cell::new(PoolChoice::NoData) }; SLOTS] };
}

/// The calling thread's memo (a handle: the slots are thread-local).
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadMemo;

impl ChoiceMemo for ThreadMemo {
    #[inline]
    fn choose(&mut self, key: MemoKey, compute: impl FnOnce() -> PoolChoice) -> PoolChoice {
        let mixed = key.service ^ (u64::from(key.order) << 1) ^ key.family as u64;
        // Fibonacci hashing: the top bits of the product spread sequential
        // serials and orders over the slots.
        let slot =
            (mixed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SLOTS.trailing_zeros())) as usize;
        if KEYS.with(|keys| keys[slot].get() == key) {
            return CHOICES.with(|choices| choices[slot].get());
        }
        let choice = compute();
        KEYS.with(|keys| keys[slot].set(key));
        CHOICES.with(|choices| choices[slot].set(choice));
        choice
    }
}
