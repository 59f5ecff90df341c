//! Keeps `fastest` answers stable: from measured probe RTTs, chooses each
//! pool's preferred endpoint and the pool order of `fastest` services,
//! switching only when the challenger is clearly faster (hysteresis), so
//! answers do not flap on noise. Runs on the control plane, over a
//! [`FastestPlan`] the snapshot build made, and writes its results (with the
//! RTTs) into the [`HealthTable`], whose views the query path reads.

use super::{EndpointId, HealthTable, MeasuredOrder};

/// What the updater maintains for one snapshot: built with it.
#[derive(Debug, Clone, Default)]
pub struct FastestPlan {
    /// Every pool of every service (when some service uses `fastest`).
    pub pools: Vec<FastestPool>,
    /// The services with `policy = "fastest"`.
    pub services: Vec<FastestService>,
}

/// A pool whose preferred endpoint is kept.
#[derive(Debug, Clone, Default)]
pub struct FastestPool {
    /// Its endpoints in order: id, and whether the configuration forces it down.
    pub endpoints: Vec<(EndpointId, bool)>,
}

/// A service whose pool order is measured.
#[derive(Debug, Clone)]
pub struct FastestService {
    /// Its name (for the log).
    pub name: String,
    /// `Service::serial`.
    pub serial: u64,
    /// Its slot among measured orders.
    pub slot: u32,
    /// Its pools, as indices into [`FastestPlan::pools`].
    pub pools: Vec<usize>,
    /// Its configured order (the order until one is measured).
    pub initial: Box<[u16]>,
}

impl FastestPlan {
    /// Whether [`update`] has anything to maintain.
    pub fn has_work(&self) -> bool {
        !self.pools.is_empty() || !self.services.is_empty()
    }
}

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

/// Updates every pool's preferred endpoint and every `fastest` service's
/// order from the records' current RTTs, and publishes them.
pub fn update(table: &HealthTable, plan: &FastestPlan) {
    // Per pool: RTTs of its usable endpoints, and its preferred endpoint.
    let mut best_rtts: Vec<Option<u32>> = Vec::with_capacity(plan.pools.len());
    let mut preferred: Vec<(Vec<EndpointId>, Option<EndpointId>)> =
        Vec::with_capacity(plan.pools.len());
    for pool in &plan.pools {
        let mut rtts = Vec::with_capacity(pool.endpoints.len());
        let mut current = None;
        for (i, &(id, config_down)) in pool.endpoints.iter().enumerate() {
            let record = table.record(id);
            let rtt = record
                .as_ref()
                .filter(|r| !config_down && r.is_usable())
                .and_then(|r| r.rtt_us());
            if record.as_ref().is_some_and(|r| r.preferred()) {
                current = Some(i);
            }
            rtts.push(rtt);
        }
        best_rtts.push(rtts.iter().flatten().min().copied());
        let chosen = choose_with_hysteresis(current, &rtts).map(|i| pool.endpoints[i].0);
        preferred.push((pool.endpoints.iter().map(|&(id, _)| id).collect(), chosen));
    }
    let slots = plan.services.iter().map(|s| s.slot as usize + 1).max();
    let mut measured: Vec<Option<MeasuredOrder>> = vec![None; slots.unwrap_or(0)];
    for service in &plan.services {
        let old = table
            .measured_order(service.slot, service.serial)
            .unwrap_or_else(|| service.initial.clone());
        let rtts: Vec<Option<u32>> = service
            .pools
            .iter()
            .map(|&p| best_rtts.get(p).copied().flatten())
            .collect();
        let current = old.first().map(|&i| usize::from(i));
        let order = match choose_with_hysteresis(current, &rtts) {
            Some(leader) => {
                // The leader first, then the other measured pools by RTT, then the
                // unmeasured ones in configured order.
                let mut rest: Vec<usize> = (0..rtts.len()).filter(|&i| i != leader).collect();
                rest.sort_by_key(|&i| (rtts[i].is_none(), rtts[i].unwrap_or(u32::MAX), i));
                let new: Box<[u16]> = std::iter::once(leader)
                    .chain(rest)
                    .map(|i| i as u16)
                    .collect();
                if old[..] != new[..] {
                    tracing::info!(service = %service.name, order = ?new, "fastest pool order changed");
                }
                new
            }
            None => old,
        };
        if let Some(slot) = measured.get_mut(service.slot as usize) {
            *slot = Some(MeasuredOrder {
                serial: service.serial,
                order,
            });
        }
    }
    table.set_fastest(&preferred, measured);
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
