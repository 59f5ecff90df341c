//! Keeps `fastest` answers stable: from measured probe RTTs, chooses each
//! pool's preferred endpoint and the pool order of `fastest` services,
//! switching only when the challenger is clearly faster (hysteresis), so
//! answers do not flap on noise. Runs on the control plane; the query path
//! only reads the atomics and the order this writes.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::config::SelectionKind;
use crate::policy::{NO_PREFERENCE, Pool};
use crate::snapshot::Snapshot;

/// A challenger must be this much faster (fraction of the incumbent's RTT)…
pub const SWITCH_MARGIN: f64 = 0.2;
/// …and at least this many microseconds faster.
pub const SWITCH_MIN_US: u32 = 1_000;

/// Chooses the index with the lowest RTT, keeping `current` unless the best
/// beats it by the margins. `None` RTTs (down or unmeasured) never win.
pub fn choose_with_hysteresis(current: Option<usize>, rtts_us: &[Option<u32>]) -> Option<usize> {
    let best = rtts_us
        .iter()
        .enumerate()
        .filter_map(|(i, rtt)| rtt.map(|r| (r, i)))
        .min()
        .map(|(_, i)| i)?;
    let Some(current) = current else {
        return Some(best);
    };
    let (Some(Some(incumbent)), Some(challenger)) = (rtts_us.get(current), rtts_us[best]) else {
        return Some(best);
    };
    let clearly_faster = f64::from(challenger) < f64::from(*incumbent) * (1.0 - SWITCH_MARGIN)
        && incumbent.saturating_sub(challenger) >= SWITCH_MIN_US;
    Some(if clearly_faster { best } else { current })
}

/// Whether [`update`] has anything to maintain: a `fastest` service
/// (measured pool order) or `selection = "fastest"` (preferred endpoints).
pub fn has_work(snapshot: &Snapshot) -> bool {
    snapshot.services.iter().any(|service| {
        service.measured_order.is_some() || service.selection == SelectionKind::Fastest
    })
}

/// Updates every pool's preferred endpoint and every `fastest` service's order.
pub fn update(snapshot: &Snapshot) {
    for service in &snapshot.services {
        for pool in &service.pools {
            update_pool(pool);
        }
        let Some(order) = &service.measured_order else {
            continue;
        };
        let rtts: Vec<Option<u32>> = service.pools.iter().map(|p| p.best_rtt_us()).collect();
        let current = order.load().first().map(|&i| usize::from(i));
        let Some(leader) = choose_with_hysteresis(current, &rtts) else {
            continue;
        };
        // The leader first, then the other measured pools by RTT, then the
        // unmeasured ones in configured order.
        let mut rest: Vec<usize> = (0..service.pools.len()).filter(|&i| i != leader).collect();
        rest.sort_by_key(|&i| (rtts[i].is_none(), rtts[i].unwrap_or(u32::MAX), i));
        let new: Box<[u16]> = std::iter::once(leader)
            .chain(rest)
            .map(|i| i as u16)
            .collect();
        if order.load().as_ref()[..] != new[..] {
            tracing::info!(service = %service.name, order = ?new, "fastest pool order changed");
            order.store(Arc::new(new));
        }
    }
}

fn update_pool(pool: &Pool) {
    let rtts: Vec<Option<u32>> = pool
        .endpoints
        .iter()
        .map(|e| {
            if e.is_healthy() {
                e.health.rtt_us()
            } else {
                None
            }
        })
        .collect();
    let current = pool.preferred_endpoint().map(usize::from);
    let chosen = choose_with_hysteresis(current, &rtts).map_or(NO_PREFERENCE, |i| i as u16);
    pool.preferred.store(chosen, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_incumbent_until_a_challenger_is_clearly_faster() {
        // No incumbent: the best wins.
        assert_eq!(
            choose_with_hysteresis(None, &[Some(5_000), Some(3_000)]),
            Some(1)
        );
        // 10 % faster: not enough.
        assert_eq!(
            choose_with_hysteresis(Some(0), &[Some(5_000), Some(4_500)]),
            Some(0)
        );
        // 40 % faster and 2 ms: switch.
        assert_eq!(
            choose_with_hysteresis(Some(0), &[Some(5_000), Some(3_000)]),
            Some(1)
        );
        // 50 % faster but only 100 µs: noise at loopback scale, keep.
        assert_eq!(
            choose_with_hysteresis(Some(0), &[Some(200), Some(100)]),
            Some(0)
        );
        // The incumbent went down (no RTT): move.
        assert_eq!(
            choose_with_hysteresis(Some(0), &[None, Some(9_000)]),
            Some(1)
        );
        // Nothing measured: no preference.
        assert_eq!(choose_with_hysteresis(Some(0), &[None, None]), None);
    }

    #[test]
    fn a_noisy_sequence_does_not_flap() {
        let mut current = None;
        let mut switches = 0;
        let samples = [
            (10_000, 10_500),
            (10_400, 9_800),
            (9_900, 10_100),
            (10_200, 9_700),
            (10_000, 9_900),
        ];
        for (a, b) in samples {
            let next = choose_with_hysteresis(current, &[Some(a), Some(b)]);
            if current.is_some() && next != current {
                switches += 1;
            }
            current = next;
        }
        assert_eq!(switches, 0);
    }
}
