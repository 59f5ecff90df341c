//! Compiles the load-aware answer keys (pool `capacity` and `overflow_at`,
//! service `spill` and `overflow_at`) into the policy's [`LoadRules`],
//! reporting every bad value with its position.

use std::sync::Arc;

use hickory_proto::rr::Name;
use toml::Spanned;

use super::BuildError;
use crate::config::{LoadedConfig, PolicyKind, PoolToml, ServiceToml, SpillKind};
use crate::policy::spill::Spill;
use crate::policy::{LoadRules, Pool, Service};

/// A pool's `capacity` and `overflow_at`, checked: a capacity is a finite
/// number above zero; an overflow share is in (0, 1] and needs a capacity.
pub(super) fn pool_load_keys(
    loaded: &LoadedConfig,
    name: &str,
    pool: &PoolToml,
    errors: &mut Vec<BuildError>,
) -> (Option<f64>, Option<f64>) {
    let capacity = pool.capacity.as_ref().and_then(|c| {
        let value = *c.get_ref();
        if value.is_finite() && value > 0.0 {
            Some(value)
        } else {
            errors.push(
                loaded
                    .error_at(
                        c.span(),
                        format!("capacity {value} of pool {name} must be a number above zero"),
                    )
                    .into(),
            );
            None
        }
    });
    let overflow_at = pool
        .overflow_at
        .as_ref()
        .and_then(|o| overflow_share(loaded, o, &format!("pool {name}"), errors));
    if let Some(o) = &pool.overflow_at
        && pool.capacity.is_none()
    {
        errors.push(
            loaded
                .error_at(
                    o.span(),
                    format!(
                        "overflow_at of pool {name} is a share of its capacity: add `capacity` to the pool"
                    ),
                )
                .into(),
        );
    }
    (capacity, overflow_at)
}

/// A service's load rules, or `None` for classic failover (ordered spill,
/// no pool sheds). `spill` defaults to `capacity` when every primary pool
/// declares a capacity, else `ordered`; asking for `capacity` with a
/// primary pool that has none is an error, and so is asking for it (or a
/// service `overflow_at`) with `policy = "fastest"` (one measured order
/// for everyone: nothing to split per client), which is always `None`.
pub(super) fn service_load_rules(
    loaded: &LoadedConfig,
    fqdn: &Name,
    service: &ServiceToml,
    pools: &[Arc<Pool>],
    errors: &mut Vec<BuildError>,
) -> Option<LoadRules> {
    let primaries = || pools.iter().filter(|p| !p.backup);
    let measured = *service.policy.get_ref() == PolicyKind::Fastest;
    let all_have_capacity = primaries().all(|p| p.capacity.is_some());
    let spill = match service.spill.as_ref().map(|s| (s, *s.get_ref())) {
        Some((_, SpillKind::Ordered)) => Spill::Ordered,
        Some((written, SpillKind::Capacity)) => {
            for pool in primaries().filter(|p| p.capacity.is_none()) {
                errors.push(
                    loaded
                        .error_at(
                            written.span(),
                            format!(
                                "spill = \"capacity\" in service {fqdn} needs a capacity on every primary pool; pool {} has none: add `capacity` to it or use spill = \"ordered\"",
                                pool.name
                            ),
                        )
                        .into(),
                );
            }
            Spill::Capacity
        }
        None if all_have_capacity && primaries().next().is_some() && !measured => Spill::Capacity,
        None => Spill::Ordered,
    };
    if measured
        && let Some(written) = &service.spill
        && *written.get_ref() == SpillKind::Capacity
    {
        errors.push(
            loaded
                .error_at(
                    written.span(),
                    format!(
                        "spill = \"capacity\" in service {fqdn} cannot follow policy = \"fastest\" (its order is measured, the same for every client): use another policy or spill = \"ordered\""
                    ),
                )
                .into(),
        );
    }
    let service_overflow = service
        .overflow_at
        .as_ref()
        .and_then(|o| overflow_share(loaded, o, &format!("service {fqdn}"), errors));
    if let Some(o) = &service.overflow_at
        && !pools.iter().any(|p| p.capacity.is_some())
    {
        errors.push(
            loaded
                .error_at(
                    o.span(),
                    format!(
                        "overflow_at of service {fqdn} is a share of its pools' capacity, but none of them has a `capacity`"
                    ),
                )
                .into(),
        );
    }
    if measured {
        if let Some(written) = &service.overflow_at {
            errors.push(
                loaded
                    .error_at(
                        written.span(),
                        format!(
                            "overflow_at in service {fqdn} cannot follow policy = \"fastest\" (its order is measured, the same for every client, so no share of its clients can be shed): remove it or use another policy"
                        ),
                    )
                    .into(),
            );
        }
        // Its pools' own overflow_at applies to the services that split
        // per client, not to this one.
        return None;
    }
    let overflow_at: Vec<Option<f64>> = pools
        .iter()
        .map(|p| p.capacity.and(p.overflow_at.or(service_overflow)))
        .collect();
    (spill == Spill::Capacity || overflow_at.iter().any(Option::is_some)).then_some(LoadRules {
        spill,
        overflow_at,
        slot: 0,
    })
}

/// Numbers the load-aware services of a build: their splits' places in the
/// health view.
pub(super) fn assign_load_slots(services: &mut [Service]) {
    for (slot, rules) in services
        .iter_mut()
        .filter_map(|s| s.load.as_mut())
        .enumerate()
    {
        rules.slot = u32::try_from(slot).unwrap_or(u32::MAX);
    }
}

fn overflow_share(
    loaded: &LoadedConfig,
    value: &Spanned<f64>,
    owner: &str,
    errors: &mut Vec<BuildError>,
) -> Option<f64> {
    let share = *value.get_ref();
    if share > 0.0 && share <= 1.0 {
        Some(share)
    } else {
        errors.push(
            loaded
                .error_at(
                    value.span(),
                    format!(
                        "overflow_at {share} of {owner} must be a share of the capacity in (0, 1], e.g. 0.9"
                    ),
                )
                .into(),
        );
        None
    }
}
