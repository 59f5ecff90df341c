//! Picking endpoints inside the chosen pool: weighted random, sticky
//! (weighted rendezvous hashing of the client subnet) or multivalue.

use super::{
    Census, ClientAddress, Family, MAX_RECORDS, Pool, Selection, Service, Trace, mask, trace,
};
use crate::hash::{SplitMix64, hash_address, mix};
use crate::health::HealthView;

use super::SelectionKind;

/// Which endpoints of the pool may be picked.
#[derive(Debug, Clone, Copy)]
pub enum Candidates<'c> {
    /// The healthy ones, as counted by the caller.
    Healthy(&'c Census),
    /// All answering the family, healthy or not (failing open).
    All,
}

/// Fills `selection` with endpoints of `pool` answering `family`.
/// Inlined into `select`: out of line, the call and its nine arguments
/// cost every service query 14 instructions (`tests/callgrind_harness.rs`).
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn pick<'s>(
    service: &'s Service,
    pool: &'s Pool,
    health: &HealthView,
    family: Family,
    client: ClientAddress,
    seed: u64,
    candidates: Candidates<'_>,
    selection: &mut Selection<'s>,
    trace: &mut Trace<'_>,
) {
    selection.pool = Some(pool);
    let fail_open = matches!(candidates, Candidates::All);
    selection.failed_open = fail_open;
    // The common case, one weighted record from a small pool of healthy
    // endpoints: the census already has them and their total weight.
    if let Candidates::Healthy(census) = candidates
        && service.selection == SelectionKind::Weighted
        && service.max_records <= 1
        && pool.endpoints.len() <= 64
    {
        pick_one_weighted(pool, health, census, seed, selection, trace);
        return;
    }
    pick_among_candidates(
        service, pool, health, family, client, seed, fail_open, selection, trace,
    );
}

/// [`pick`] beyond the common case. Kept out of line: its candidate and
/// score arrays (4 KiB) would otherwise enlarge the stack frame of every
/// query's `select`.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn pick_among_candidates<'s>(
    service: &'s Service,
    pool: &'s Pool,
    health: &HealthView,
    family: Family,
    client: ClientAddress,
    seed: u64,
    fail_open: bool,
    selection: &mut Selection<'s>,
    trace: &mut Trace<'_>,
) {
    // Candidates: indices of usable endpoints, on the stack.
    let mut candidates = [0u16; 256];
    let mut count = 0usize;
    for (i, endpoint) in pool.endpoints.iter().enumerate() {
        if count == candidates.len() {
            break;
        }
        if endpoint.serves(family)
            && (endpoint.is_healthy(health) || (fail_open && !endpoint.is_operator_down(health)))
        {
            candidates[count] = i as u16;
            count += 1;
        }
    }
    let candidates = &mut candidates[..count];
    let wanted = usize::from(service.max_records)
        .clamp(1, MAX_RECORDS)
        .min(count);
    // Zero weights everywhere means "equal" (Route 53); otherwise weight 0 is never picked
    // while something else is available.
    let all_zero = candidates
        .iter()
        .all(|&i| pool.endpoints[usize::from(i)].effective_weight(health) == 0);
    let weight = |i: u16| -> u64 {
        if all_zero {
            1
        } else {
            pool.endpoints[usize::from(i)].effective_weight(health)
        }
    };
    match service.selection {
        SelectionKind::Weighted => {
            let mut rng = SplitMix64(seed);
            let mut remaining = candidates.len();
            while usize::from(selection.count) < wanted && remaining > 0 {
                let total: u64 = candidates[..remaining].iter().map(|&i| weight(i)).sum();
                let position = if total == 0 {
                    (rng.next_u64() % remaining as u64) as usize
                } else {
                    let mut target = rng.next_u64() % total;
                    let mut found = remaining - 1;
                    for (slot, &i) in candidates[..remaining].iter().enumerate() {
                        let w = weight(i);
                        if target < w {
                            found = slot;
                            break;
                        }
                        target -= w;
                    }
                    found
                };
                selection.push(candidates[position]);
                candidates.swap(position, remaining - 1);
                remaining -= 1;
            }
            trace!(
                trace,
                "weighted random among {count} endpoint(s): picked {}",
                names(selection)
            );
        }
        SelectionKind::Sticky => {
            let prefix_len = service
                .sticky_prefix_len(client.address)
                .min(client.prefix_len);
            let client_hash = hash_address(mask(client.address, prefix_len));
            // Weighted rendezvous hashing: each endpoint scores -w/ln(u); the
            // highest scores win. Removing an endpoint only moves its clients.
            let mut scored = [(0f64, 0u16); 256];
            for (slot, &i) in candidates.iter().enumerate() {
                let endpoint = &pool.endpoints[usize::from(i)];
                let u = unit_interval(mix(client_hash ^ endpoint.key_hash));
                let score = if weight(i) == 0 {
                    f64::MIN
                } else {
                    -(weight(i) as f64) / u.ln()
                };
                scored[slot] = (score, i);
            }
            let scored = &mut scored[..count];
            scored.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
            for &(_, i) in scored.iter().take(wanted) {
                selection.push(i);
            }
            trace!(
                trace,
                "sticky hash of client /{prefix_len} among {count} endpoint(s): picked {}",
                names(selection)
            );
        }
        SelectionKind::Multivalue => {
            let start = if count == 0 {
                0
            } else {
                (seed % count as u64) as usize
            };
            for k in 0..wanted {
                selection.push(candidates[(start + k) % count]);
            }
            trace!(
                trace,
                "multivalue: {} of {count} healthy endpoint(s): {}",
                selection.count,
                names(selection)
            );
        }
        SelectionKind::Fastest => {
            // The control plane's preferred endpoint (kept with hysteresis)
            // first, then the others by measured RTT; unmeasured ones last.
            let preferred = pool.preferred_endpoint(health);
            let rank = |i: u16| -> (bool, u32, u16) {
                let rtt = health
                    .endpoint(pool.endpoints[usize::from(i)].id)
                    .rtt()
                    .unwrap_or(u32::MAX);
                (Some(i) != preferred, rtt, i)
            };
            candidates.sort_unstable_by_key(|&i| rank(i));
            for &i in candidates.iter().take(wanted) {
                selection.push(i);
            }
            trace!(
                trace,
                "fastest among {count} endpoint(s) by probe RTT: picked {}",
                names(selection)
            );
        }
    }
}

/// [`pick`] for `Weighted` with one record wanted among at most 64
/// endpoints: the same draw and the same endpoint as the general loop's
/// first round, over the census's healthy endpoints. Inlined into
/// `select` like [`pick`]: as a call it cost each geo query 20
/// instructions (`tests/callgrind_harness.rs`).
#[inline]
fn pick_one_weighted<'s>(
    pool: &'s Pool,
    health: &HealthView,
    census: &Census,
    seed: u64,
    selection: &mut Selection<'s>,
    trace: &mut Trace<'_>,
) {
    // The pool has at most 64 endpoints, so the mask holds every healthy one
    // (and popcount is a slow loop on baseline x86-64).
    let count = census.healthy;
    if count > 0 {
        // Zero weights everywhere means "equal" (see `pick`).
        let all_zero = census.healthy_weight == 0;
        let total = if all_zero {
            count as u64
        } else {
            census.healthy_weight
        };
        let mut target = SplitMix64(seed).next_u64() % total;
        // The first healthy endpoint whose cumulative weight passes the
        // target (the census and these weights come from one view).
        let mut bits = census.healthy_mask;
        let mut chosen = 0u16;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            chosen = i as u16;
            let w = if all_zero {
                1
            } else {
                pool.endpoints[i].effective_weight(health)
            };
            if target < w {
                break;
            }
            target -= w;
        }
        selection.push(chosen);
    }
    trace!(
        trace,
        "weighted random among {count} endpoint(s): picked {}",
        names(selection)
    );
}

fn names(selection: &Selection<'_>) -> String {
    let names: Vec<String> = selection.endpoints().map(|e| e.key.clone()).collect();
    if names.is_empty() {
        "(none)".to_string()
    } else {
        names.join(", ")
    }
}

/// Maps a hash into (0, 1].
fn unit_interval(hash: u64) -> f64 {
    ((hash >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}
