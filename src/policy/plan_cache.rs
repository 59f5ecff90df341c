//! A per-thread memo of pool choices: the failover walk (which pool of the
//! client's order has enough healthy endpoints) depends only on the service,
//! the order, the family and the endpoints' health, and health changes
//! rarely, so each worker thread keeps recent choices and redoes the walk
//! only when the health epoch (`health::health_epoch`) has moved.
//!
//! Thread-local, so no lock and no sharing between workers; a fixed number
//! of direct-mapped slots (1,024 of 64 bytes: 64 KiB per thread), so memory
//! does not grow with the configuration (a collision only means a
//! recomputation).

use std::cell::Cell;

use super::{Family, PoolChoice, Service};
use crate::health::health_epoch;

/// Slots per thread (a power of two).
const SLOTS: usize = 1024;

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// `Service::serial`; 0 (no service has it) marks an empty slot.
    service: u64,
    order: u32,
    family: Family,
    epoch: u64,
    choice: PoolChoice,
}

const EMPTY: Entry = Entry {
    service: 0,
    order: 0,
    family: Family::V4,
    epoch: 0,
    choice: PoolChoice::NoData,
};

thread_local! {
    // Plain `Copy` data with a constant initialiser: no lazy set-up and no
    // destructor to register, so an access is one thread-pointer offset.
    static CHOICES: [Cell<Entry>; SLOTS] = const { [const { Cell::new(EMPTY) }; SLOTS] };
}

/// The choice for (`service`, `order`, `family`): remembered if the health
/// epoch has not moved since it was made, else `compute`d and remembered.
#[inline]
pub(super) fn choose(
    service: &Service,
    order: u32,
    family: Family,
    compute: impl FnOnce() -> PoolChoice,
) -> PoolChoice {
    // Read before computing: a change racing with the computation bumps the
    // epoch after it, so the entry is already stale when next looked at.
    let epoch = health_epoch();
    let key = service.serial ^ (u64::from(order) << 1) ^ family as u64;
    // Fibonacci hashing: the top bits of the product spread sequential
    // serials and orders over the slots.
    let slot = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SLOTS.trailing_zeros())) as usize;
    CHOICES.with(|choices| {
        let cell = &choices[slot];
        let entry = cell.get();
        if entry.service == service.serial
            && entry.order == order
            && entry.family == family
            && entry.epoch == epoch
        {
            return entry.choice;
        }
        let choice = compute();
        cell.set(Entry {
            service: service.serial,
            order,
            family,
            epoch,
            choice,
        });
        choice
    })
}
