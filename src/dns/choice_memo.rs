//! A per-thread memo of pool choices for the query path: the failover walk
//! (which pool of the client's order has enough healthy endpoints) depends
//! only on a `policy::MemoKey` (service, order, family and the health
//! view's epoch), and health changes rarely, so each worker thread keeps
//! recent choices and redoes the walk only when the view has changed.
//!
//! Thread-local, so no lock and no sharing between workers; a fixed number
//! of direct-mapped slots (1,024 of 64 bytes: 64 KiB per thread), so memory
//! does not grow with the configuration (a collision only means a
//! recomputation).

use std::cell::Cell;

use crate::policy::{ChoiceMemo, Family, MemoKey, PoolChoice};

/// Slots per thread (a power of two).
const SLOTS: usize = 1024;

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The key; `service` 0 (no service has it) marks an empty slot.
    key: MemoKey,
    choice: PoolChoice,
}

const EMPTY: Entry = Entry {
    key: MemoKey {
        service: 0,
        order: 0,
        family: Family::V4,
        epoch: 0,
    },
    choice: PoolChoice::NoData,
};

thread_local! {
    // Plain `Copy` data with a constant initialiser: no lazy set-up and no
    // destructor to register, so an access is one thread-pointer offset.
    static CHOICES: [Cell<Entry>; SLOTS] = const { [const { Cell::new(EMPTY) }; SLOTS] };
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
        CHOICES.with(|choices| {
            let cell = &choices[slot];
            let entry = cell.get();
            if entry.key == key {
                return entry.choice;
            }
            let choice = compute();
            cell.set(Entry { key, choice });
            choice
        })
    }
}
