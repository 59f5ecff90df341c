//! Load-aware spill-over: where the clients of a pool that failed, was
//! drained or is over its overflow share go, as pure functions of the
//! pools' capacities, learned demands and health.
//!
//! The control plane plans a [`Split`] per ordered pool list (at most once
//! a second, from one snapshot of health and demand) and publishes it with
//! the health state; the query path hashes the client subnet into the
//! split's ranges. Nothing here reads a clock, a counter or an atomic.
//!
//! The rule (issue 24): with [`Spill::Ordered`] a failed first pool's
//! clients all go to the next usable pool, as failover always did. With
//! [`Spill::Capacity`] they are spread over the next candidate pools in
//! proportion to each one's spare capacity (its ceiling minus its own
//! demand), so every receiver fills the same fraction of its spare room and
//! none is pushed over its ceiling while the failed pool's demand fits in
//! the room of all of them: the cascade of "the next region in the list
//! takes everything and falls over next" does not start.
//! A pool whose own demand is above its overflow share (`overflow_at` ×
//! capacity) keeps only the share it can carry and sheds the rest by the
//! same rule. Receivers are chosen by spare capacity, so a pool near its
//! ceiling takes no newcomers: the newest clients (spilled-in ones) are the
//! first to leave an overloaded pool, its own clients only after them.

use std::fmt::Write as _;

use super::{ClientAddress, Service, mask};
use crate::hash::hash_address;

pub use crate::health::{MAX_SPLIT, SPLIT_RANGE, Split, split_position};

/// How a failed or overflowing pool's clients are spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spill {
    /// All to the next usable pool in the client's order (failover as ever).
    Ordered,
    /// Over the next candidate pools in proportion to their spare capacity.
    Capacity,
}

/// What the planner knows of one pool.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolLoad {
    /// Whether it may answer now (enough healthy endpoints, not drained).
    pub usable: bool,
    /// A backup pool: a receiver only when no primary is usable.
    pub backup: bool,
    /// Declared capacity (requests per second, or a share of the total).
    pub capacity: Option<f64>,
    /// Overflow share of the capacity (`overflow_at`), if it sheds.
    pub overflow_at: Option<f64>,
    /// Its own demand: answers per second to clients whose first pool it is.
    pub demand: f64,
}

impl PoolLoad {
    /// Load it should carry at most: the overflow share of its capacity,
    /// else its capacity.
    pub fn ceiling(&self) -> Option<f64> {
        self.capacity.map(|c| c * self.overflow_at.unwrap_or(1.0))
    }

    /// Room left under its ceiling for others' clients (never negative).
    pub fn spare(&self) -> f64 {
        self.ceiling().map_or(0.0, |c| (c - self.demand).max(0.0))
    }

    /// The share of its own clients it keeps: 1, or when its own demand is
    /// above its overflow share, the part of that demand the share covers.
    pub fn keep(&self) -> f64 {
        match (self.overflow_at, self.ceiling()) {
            (Some(_), Some(ceiling)) if self.demand > ceiling && self.demand > 0.0 => {
                ceiling / self.demand
            }
            _ => 1.0,
        }
    }
}

/// Where a client falls in a service's splits: its subnet (the ECS prefix,
/// capped by the service's sticky prefix, as `sticky` hashes it) hashed to
/// a split position, and that prefix length (the ECS scope such an answer
/// holds for).
#[inline]
pub fn client_position(service: &Service, client: ClientAddress) -> (u16, u8) {
    let prefix_len = service
        .sticky_prefix_len(client.address)
        .min(client.prefix_len);
    let hash = hash_address(mask(client.address, prefix_len));
    (split_position(hash), prefix_len)
}

/// Plans the split of the clients of `order` (pool indices, in the
/// client's order) from the pools' loads (`loads[i]` for pool `i`).
///
/// Returns [`Split::NONE`] when the first pool is usable and keeps all its
/// clients (the common case: ordinary failover), or when nothing is usable
/// (the all-down rule decides).
pub fn plan_split(order: &[u16], loads: &[PoolLoad], spill: Spill) -> Split {
    let load = |p: u16| loads.get(usize::from(p));
    let Some(&first) = order.iter().find(|&&p| load(p).is_some_and(|l| !l.backup)) else {
        return Split::NONE;
    };
    let Some(first_load) = load(first) else {
        return Split::NONE;
    };
    let keep = if first_load.usable {
        first_load.keep()
    } else {
        0.0
    };
    if keep >= 1.0 {
        return Split::NONE;
    }
    // Receivers: the usable primaries after the first pool, else the
    // usable backups (as failover treats backups).
    let mut receivers = [0u16; MAX_SPLIT - 1];
    let mut count = 0;
    for backup in [false, true] {
        for &p in order {
            if count == receivers.len() || p == first {
                continue;
            }
            if load(p).is_some_and(|l| l.usable && l.backup == backup)
                && !receivers[..count].contains(&p)
            {
                receivers[count] = p;
                count += 1;
            }
        }
        if count > 0 {
            break;
        }
    }
    let receivers = match spill {
        Spill::Ordered => &receivers[..count.min(1)],
        Spill::Capacity => &receivers[..count],
    };
    if receivers.is_empty() {
        return Split::NONE;
    }
    let weights = receiver_weights(receivers, loads, spill);
    let mut split = Split {
        keeps_first: keep > 0.0,
        ..Split::NONE
    };
    let mut shares = [0f64; MAX_SPLIT];
    let mut entries = 0;
    if keep > 0.0 {
        split.pools[0] = first;
        shares[0] = keep;
        entries = 1;
    }
    let total: f64 = weights[..receivers.len()].iter().sum();
    for (i, &p) in receivers.iter().enumerate() {
        split.pools[entries] = p;
        shares[entries] = (1.0 - keep) * weights[i] / total;
        entries += 1;
    }
    let mut cumulative = 0.0;
    for (bound, share) in split.bounds.iter_mut().zip(&shares).take(entries) {
        cumulative += share;
        let position = (cumulative * f64::from(SPLIT_RANGE)).round();
        *bound = position.clamp(0.0, f64::from(SPLIT_RANGE - 1)) as u16;
    }
    split.len = entries as u8;
    split
}

/// Relative shares of the receivers: spare capacity (capacity spill), or
/// everything to the one receiver (ordered). With no spare anywhere, by
/// capacity, so the overload is spread evenly relative to size; receivers
/// without a declared capacity count as one unit.
fn receiver_weights(receivers: &[u16], loads: &[PoolLoad], spill: Spill) -> [f64; MAX_SPLIT] {
    let mut weights = [0f64; MAX_SPLIT];
    if spill == Spill::Ordered {
        weights[0] = 1.0;
        return weights;
    }
    let load = |p: u16| loads.get(usize::from(p)).copied();
    for (i, &p) in receivers.iter().enumerate() {
        weights[i] = load(p).map_or(0.0, |l| l.spare());
    }
    if weights.iter().sum::<f64>() <= 0.0 {
        for (i, &p) in receivers.iter().enumerate() {
            weights[i] = load(p).and_then(|l| l.capacity).unwrap_or(1.0).max(0.0);
        }
    }
    if weights.iter().sum::<f64>() <= 0.0 {
        weights[..receivers.len()].fill(1.0);
    }
    weights
}

/// One line per split entry saying where the share goes and why, for
/// `explain` and `/status`: `"us 75.0 % (spare 300 of capacity 400, own demand 100/s)"`.
pub fn describe(split: &Split, loads: &[PoolLoad], name: impl Fn(u16) -> String) -> String {
    let mut out = String::new();
    for (i, (pool, share)) in split.shares().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{} {:.1} %", name(pool), share * 100.0);
        let Some(load) = loads.get(usize::from(pool)) else {
            continue;
        };
        if i == 0 && split.keeps_first {
            let _ = write!(
                out,
                " (kept: own demand {:.0}/s over its overflow share {:.0})",
                load.demand,
                load.ceiling().unwrap_or(0.0)
            );
        } else if let Some(capacity) = load.capacity {
            let _ = write!(
                out,
                " (spare {:.0} of capacity {capacity:.0}, own demand {:.0}/s)",
                load.spare(),
                load.demand
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(capacity: f64, demand: f64) -> PoolLoad {
        PoolLoad {
            usable: true,
            backup: false,
            capacity: Some(capacity),
            overflow_at: None,
            demand,
        }
    }

    fn down(mut load: PoolLoad) -> PoolLoad {
        load.usable = false;
        load
    }

    fn shares(split: &Split) -> Vec<(u16, f64)> {
        split
            .shares()
            .map(|(p, s)| (p, (s * 1000.0).round() / 1000.0))
            .collect()
    }

    #[test]
    fn a_usable_first_pool_keeps_its_clients() {
        let loads = [pool(100.0, 50.0), pool(100.0, 0.0)];
        assert!(plan_split(&[0, 1], &loads, Spill::Capacity).is_none());
        assert!(plan_split(&[0, 1], &loads, Spill::Ordered).is_none());
    }

    #[test]
    fn ordered_sends_a_failed_pools_clients_to_the_next_usable_one() {
        let loads = [
            down(pool(100.0, 50.0)),
            down(pool(100.0, 0.0)),
            pool(10.0, 9.0),
            pool(500.0, 0.0),
        ];
        let split = plan_split(&[0, 1, 2, 3], &loads, Spill::Ordered);
        assert_eq!(shares(&split), vec![(2, 1.0)]);
        assert_eq!(split.pool_for(0), Some((2, false)));
        assert_eq!(split.pool_for(u16::MAX), Some((2, false)));
    }

    #[test]
    fn capacity_spreads_by_spare_capacity() {
        // Spare: us 400 - 100 = 300, ap 200 - 100 = 100: 75 % / 25 %.
        let loads = [
            down(pool(400.0, 300.0)),
            pool(400.0, 100.0),
            pool(200.0, 100.0),
        ];
        let split = plan_split(&[0, 1, 2], &loads, Spill::Capacity);
        assert_eq!(shares(&split), vec![(1, 0.75), (2, 0.25)]);
        assert!(!split.keeps_first);
        // Own demand is what counts, not capacity: equal capacities, but
        // the busier pool takes less.
        let loads = [down(pool(100.0, 0.0)), pool(100.0, 80.0), pool(100.0, 20.0)];
        let split = plan_split(&[0, 2, 1], &loads, Spill::Capacity);
        assert_eq!(shares(&split), vec![(2, 0.8), (1, 0.2)]);
    }

    #[test]
    fn receivers_fill_the_same_fraction_of_their_room_and_none_goes_over() {
        // eu fails with 360/s of clients; us and ap have 300 and 100 spare.
        let loads = [
            down(pool(400.0, 360.0)),
            pool(400.0, 100.0),
            pool(200.0, 100.0),
        ];
        let after = |split: &Split| {
            let mut after = [0.0f64, 100.0, 100.0];
            for (p, share) in split.shares() {
                after[usize::from(p)] += share * 360.0;
            }
            after
        };
        let spread = after(&plan_split(&[0, 1, 2], &loads, Spill::Capacity));
        let used = |r: usize| (spread[r] - loads[r].demand) / loads[r].spare();
        assert!((used(1) - 0.9).abs() < 1e-3 && (used(2) - 0.9).abs() < 1e-3);
        assert!(spread[1] <= 400.0 && spread[2] <= 200.0, "{spread:?}");
        // Ordered puts us at (100 + 360) / 400 = 115 % and leaves ap at 50 %.
        let ordered = after(&plan_split(&[0, 1, 2], &loads, Spill::Ordered));
        assert_eq!(ordered, [0.0, 460.0, 100.0]);
    }

    #[test]
    fn a_full_receiver_takes_no_newcomers_and_no_spare_anywhere_spreads_by_capacity() {
        let loads = [
            down(pool(100.0, 50.0)),
            pool(100.0, 100.0),
            pool(100.0, 40.0),
        ];
        let split = plan_split(&[0, 1, 2], &loads, Spill::Capacity);
        assert_eq!(shares(&split), vec![(1, 0.0), (2, 1.0)]);
        assert_eq!(
            split.pool_for(0),
            Some((2, false)),
            "an empty range is never hit"
        );
        let loads = [
            down(pool(100.0, 50.0)),
            pool(300.0, 400.0),
            pool(100.0, 140.0),
        ];
        let split = plan_split(&[0, 1, 2], &loads, Spill::Capacity);
        assert_eq!(shares(&split), vec![(1, 0.75), (2, 0.25)]);
    }

    #[test]
    fn overflow_sheds_the_excess_share_and_spare_counts_under_the_overflow_share() {
        // eu: capacity 100, sheds above 90; own demand 120: keeps 90/120.
        let mut eu = pool(100.0, 120.0);
        eu.overflow_at = Some(0.9);
        let mut us = pool(100.0, 40.0);
        us.overflow_at = Some(0.9); // spare 90 - 40 = 50
        let ap = pool(100.0, 50.0); // spare 100 - 50 = 50
        let split = plan_split(&[0, 1, 2], &[eu, us, ap], Spill::Capacity);
        assert_eq!(shares(&split), vec![(0, 0.75), (1, 0.125), (2, 0.125)]);
        assert!(split.keeps_first);
        assert_eq!(split.pool_for(0), Some((0, true)));
        assert_eq!(split.pool_for(u16::MAX), Some((2, false)));
        // Under the share nothing is shed.
        eu.demand = 89.0;
        assert!(plan_split(&[0, 1, 2], &[eu, us, ap], Spill::Capacity).is_none());
        // Ordered shedding goes to the next pool only.
        eu.demand = 120.0;
        let split = plan_split(&[0, 1, 2], &[eu, us, ap], Spill::Ordered);
        assert_eq!(shares(&split), vec![(0, 0.75), (1, 0.25)]);
    }

    #[test]
    fn backups_receive_only_when_no_primary_is_usable() {
        let mut backup = pool(1000.0, 0.0);
        backup.backup = true;
        let loads = [down(pool(100.0, 0.0)), pool(100.0, 0.0), backup];
        assert_eq!(
            shares(&plan_split(&[0, 2, 1], &loads, Spill::Capacity)),
            vec![(1, 1.0)]
        );
        let loads = [down(pool(100.0, 0.0)), down(pool(100.0, 0.0)), backup];
        assert_eq!(
            shares(&plan_split(&[0, 1, 2], &loads, Spill::Capacity)),
            vec![(2, 1.0)]
        );
        // Nothing usable: no split, the all-down rule decides.
        let loads = [down(pool(100.0, 0.0)), down(pool(100.0, 0.0))];
        assert!(plan_split(&[0, 1], &loads, Spill::Capacity).is_none());
    }

    #[test]
    fn at_most_four_receivers_in_order() {
        let mut loads = vec![down(pool(10.0, 0.0))];
        loads.extend((0..6).map(|_| pool(10.0, 0.0)));
        let split = plan_split(&[0, 6, 5, 4, 3, 2, 1], &loads, Spill::Capacity);
        assert_eq!(
            shares(&split),
            vec![(6, 0.25), (5, 0.25), (4, 0.25), (3, 0.25)]
        );
    }

    #[test]
    fn positions_follow_the_shares_and_a_subnet_keeps_its_pool() {
        let loads = [
            down(pool(400.0, 300.0)),
            pool(400.0, 100.0),
            pool(200.0, 100.0),
        ];
        let split = plan_split(&[0, 1, 2], &loads, Spill::Capacity);
        let mut counts = [0u32; 3];
        for h in 0..=u16::MAX {
            let (p, _) = split.pool_for(h).unwrap();
            counts[usize::from(p)] += 1;
        }
        assert_eq!(counts[1] + counts[2], SPLIT_RANGE);
        assert_eq!(counts[1], 49152, "75 % of the hash space");
        // Same subnet hash, same pool: the split is a pure function.
        let h = split_position(crate::hash::hash_address("198.51.100.0".parse().unwrap()));
        assert_eq!(split.pool_for(h), split.pool_for(h));
    }

    #[test]
    fn describe_says_where_and_why() {
        let loads = [
            down(pool(400.0, 300.0)),
            pool(400.0, 100.0),
            pool(200.0, 100.0),
        ];
        let split = plan_split(&[0, 1, 2], &loads, Spill::Capacity);
        let names = ["eu", "us", "ap"];
        let text = describe(&split, &loads, |p| names[usize::from(p)].to_string());
        assert_eq!(
            text,
            "us 75.0 % (spare 300 of capacity 400, own demand 100/s), ap 25.0 % (spare 100 of capacity 200, own demand 100/s)"
        );
    }
}
