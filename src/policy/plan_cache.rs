//! A per-thread memo of pool choices: the failover walk (which pool of the
//! client's order has enough healthy endpoints) depends only on the service,
//! the order, the family and the endpoints' health, and health changes
//! rarely, so each worker thread keeps recent choices and redoes the walk
//! only when the health epoch (`health::health_epoch`) has moved.
//!
//! Thread-local, so no lock and no sharing between workers; a fixed number
//! of direct-mapped slots, so memory does not grow with the configuration
//! (a collision only means a recomputation).

use std::cell::RefCell;

use super::pick::mix;
use super::{Family, PoolChoice, Service};
use crate::health::health_epoch;

/// Slots per thread (a power of two).
const SLOTS: usize = 1024;

#[derive(Debug, Clone, Copy)]
struct Entry {
    service: u64,
    order: u32,
    family: Family,
    epoch: u64,
    choice: PoolChoice,
}

thread_local! {
    static CHOICES: RefCell<Vec<Option<Entry>>> = const { RefCell::new(Vec::new()) };
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
    let slot = mix(key) as usize & (SLOTS - 1);
    CHOICES.with(|choices| {
        let mut choices = choices.borrow_mut();
        if choices.is_empty() {
            choices.resize(SLOTS, None);
        }
        if let Some(Some(entry)) = choices.get(slot)
            && entry.service == service.serial
            && entry.order == order
            && entry.family == family
            && entry.epoch == epoch
        {
            return entry.choice;
        }
        let choice = compute();
        if let Some(entry) = choices.get_mut(slot) {
            *entry = Some(Entry {
                service: service.serial,
                order,
                family,
                epoch,
                choice,
            });
        }
        choice
    })
}
