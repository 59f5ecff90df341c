//! Chooses the answer for one query to a service. Does no I/O, reads no
//! clock, takes no locks and allocates nothing unless a trace is asked for.
//!
//! The filter chain, in order (see ARCHITECTURE.md):
//! 1. the client's prefix finds an ordered pool list in the service's
//!    compiled [`RegionTable`] (geo map, distance or latency, built at load);
//! 2. failover walks that list, primaries first, then backup pools, and takes
//!    the first pool with enough healthy endpoints of the asked family;
//! 3. the pool's endpoints are picked by weight, by consistent hash of the
//!    client subnet, or as up to N healthy records;
//! 4. nothing healthy anywhere: the service's all-down rule.
//!
//! Health comes in as one [`HealthView`] per call, so a census and the pick
//! after it see the same state; no atomics, statics, clocks or
//! thread-locals here. The caller may keep pool choices between calls in a
//! [`ChoiceMemo`] keyed by the view's epoch.
//!
//! `gslb explain` calls [`select`] with a trace, so it shows exactly what
//! the server does.

mod pick;
pub mod route;
mod service;
pub mod spill;

use std::fmt::Write as _;
use std::net::IpAddr;

use pick::Candidates;
pub use service::{
    AllDown, Census, Endpoint, EndpointTarget, LoadRules, MinHealthy, PolicyKind, Pool,
    RegionTable, Selection, SelectionKind, Service,
};

use crate::health::HealthView;

/// Most records one answer can carry.
pub const MAX_RECORDS: usize = 16;

/// The client as the policy sees it: an address and how many of its
/// leading bits are known (the ECS source prefix, capped, or the full
/// address when the query carried no ECS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress {
    /// Address, bits past `prefix_len` zero.
    pub address: IpAddr,
    /// Known leading bits.
    pub prefix_len: u8,
}

impl ClientAddress {
    /// A client known by its full address (no ECS).
    pub fn full(address: IpAddr) -> Self {
        let prefix_len = match address {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        Self {
            address,
            prefix_len,
        }
    }

    /// A client subnet, with the address masked to `prefix_len` bits.
    pub fn subnet(address: IpAddr, prefix_len: u8) -> Self {
        let masked = mask(address, prefix_len);
        let max = match address {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        Self {
            address: masked,
            prefix_len: prefix_len.min(max),
        }
    }
}

/// Zeroes the bits of `address` past `prefix_len`.
pub fn mask(address: IpAddr, prefix_len: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix_len.min(32)))
                .unwrap_or(0);
            IpAddr::V4((bits & mask).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix_len.min(128)))
                .unwrap_or(0);
            IpAddr::V6((bits & mask).into())
        }
    }
}

/// The record family a query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// A records.
    V4,
    /// AAAA records.
    V6,
}

/// A sink for explanation lines; `None` on the query path.
pub type Trace<'t> = Option<&'t mut Vec<String>>;

macro_rules! trace {
    ($trace:expr, $($arg:tt)*) => {
        if let Some(lines) = $trace.as_deref_mut() {
            lines.push(format!($($arg)*));
        }
    };
}
pub(crate) use trace;

/// What a memoised pool choice depends on besides the service's health:
/// the service, the client's order and the family, under one health view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoKey {
    /// `Service::serial`.
    pub service: u64,
    /// Index of the client's order in `Service::orders`.
    pub order: u32,
    /// The family asked for.
    pub family: Family,
    /// `HealthView::epoch` of the view the choice is made in.
    pub epoch: u64,
}

/// Where the caller keeps pool choices between queries: a choice made for
/// a [`MemoKey`] holds for every query with the same key.
pub trait ChoiceMemo {
    /// The remembered choice for `key`, else `compute()`d (and remembered).
    fn choose(&mut self, key: MemoKey, compute: impl FnOnce() -> PoolChoice) -> PoolChoice;
}

/// No memo: every choice is computed.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMemo;

impl ChoiceMemo for NoMemo {
    #[inline]
    fn choose(&mut self, _: MemoKey, compute: impl FnOnce() -> PoolChoice) -> PoolChoice {
        compute()
    }
}

/// Chooses the endpoints answering `family` for `client` in `health`.
///
/// `seed` drives weighted random choice; the caller varies it per query
/// (consecutive values will do: draws mix it first).
pub fn select<'s>(
    service: &'s Service,
    health: &HealthView,
    client: ClientAddress,
    family: Family,
    seed: u64,
    trace: Trace<'_>,
) -> Selection<'s> {
    select_with(service, health, client, family, seed, trace, &mut NoMemo)
}

/// [`select`], keeping pool choices in `memo` when no trace is asked for
/// (a remembered choice would lose its explanation).
#[inline]
pub fn select_with<'s>(
    service: &'s Service,
    health: &HealthView,
    client: ClientAddress,
    family: Family,
    seed: u64,
    mut trace: Trace<'_>,
    memo: &mut impl ChoiceMemo,
) -> Selection<'s> {
    let (order_index, table_prefix_len) = service.table.lookup(client.address);
    let order = client_order(service, health, order_index);
    trace!(
        trace,
        "order: {} (table prefix /{table_prefix_len})",
        pool_names(service, order)
    );
    // The answer is the same for every address sharing the table leaf of
    // the source block's first address; with sticky hashing it also depends
    // on the hashed prefix. When the source block is mixed (the leaf is
    // longer than the source prefix), the honest scope is longer than the
    // source: RFC 7871 §7.2.1, "the SCOPE PREFIX-LENGTH [...] MAY be longer
    // than the SOURCE PREFIX-LENGTH" when the source was not specific
    // enough, so resolvers do not cache one region's answer for clients the
    // map sends elsewhere.
    let mut scope_prefix_len = table_prefix_len;
    if service.selection == SelectionKind::Sticky {
        scope_prefix_len = scope_prefix_len.max(service.sticky_prefix_len(client.address));
    }

    let mut selection = Selection::empty(service, scope_prefix_len);
    // Without a trace, the pool choice depends only on the key: the memo
    // may answer it until the health view changes.
    let choice = match &trace {
        None => memo.choose(
            MemoKey {
                service: service.serial,
                order: order_index,
                family,
                epoch: health.epoch(),
            },
            || match load_split(service, health, order_index) {
                Some((split, _)) => PoolChoice::Split(*split),
                None => choose_pool(service, health, order, family, &mut None)
                    .settle_single(service, health, family),
            },
        ),
        Some(_) => match load_split(service, health, order_index) {
            Some((split, why)) => {
                trace!(trace, "spill: {why}");
                PoolChoice::Split(*split)
            }
            None => choose_pool(service, health, order, family, &mut trace),
        },
    };
    // A split order: the client's subnet hash decides, per query.
    let choice = match choice {
        PoolChoice::Split(split) => resolve_split(
            service,
            health,
            order,
            family,
            client,
            &split,
            &mut selection,
            &mut trace,
        ),
        other => other,
    };
    match choice {
        PoolChoice::Pick {
            pool,
            census,
            fail_open,
            failed_over,
        } => {
            let candidates = if fail_open {
                Candidates::All
            } else {
                Candidates::Healthy(&census)
            };
            selection.pool_index = pool;
            if let Some(pool) = service.pools.get(usize::from(pool)) {
                pick::pick(
                    service,
                    pool,
                    health,
                    family,
                    client,
                    seed,
                    candidates,
                    &mut selection,
                    &mut trace,
                );
            }
            if failed_over {
                mark_failed_over(service, &mut selection, &mut trace);
            }
        }
        PoolChoice::Single {
            pool,
            endpoint,
            failed_over,
        } => {
            selection.pool_index = pool;
            selection.pool = service.pools.get(usize::from(pool)).map(|pool| &**pool);
            selection.push(endpoint);
            if failed_over {
                mark_failed_over(service, &mut selection, &mut trace);
            }
        }
        PoolChoice::NoData => {}
        PoolChoice::ServFail => selection.servfail = true,
        // Resolved into a `Pick` (or the order's walk) above.
        PoolChoice::Split(_) => {}
    }
    selection
}

/// The split in force for a load-aware service's order `order_index`, and
/// why (`None`: classic failover). Only orders from the service's table
/// are split; a measured (`fastest`) order is the same for everyone.
/// (`gslb diff` reads it to weigh a split's shares.)
#[inline]
pub fn load_split<'h>(
    service: &Service,
    health: &'h HealthView,
    order_index: u32,
) -> Option<(&'h spill::Split, &'h str)> {
    match (&service.load, service.measured_slot) {
        (Some(rules), None) => health.split(rules.slot, service.serial, order_index),
        _ => None,
    }
}

/// A client of a split order: the hash of its subnet picks the pool; when
/// that pool has no healthy endpoint of the family now (health moved since
/// the split was planned), failover walks the order as ever.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn resolve_split(
    service: &Service,
    health: &HealthView,
    order: &[u16],
    family: Family,
    client: ClientAddress,
    split: &spill::Split,
    selection: &mut Selection<'_>,
    trace: &mut Trace<'_>,
) -> PoolChoice {
    let (position, prefix_len) = spill::client_position(service, client);
    // The answer depends on the hashed subnet: the scope covers it.
    selection.scope_prefix_len = selection.scope_prefix_len.max(prefix_len);
    if let Some((pool_index, is_first)) = split.pool_for(position)
        && let Some(pool) = service.pools.get(usize::from(pool_index))
    {
        let census = pool.census(health, family);
        let total = census.total as usize;
        if total > 0 && census.healthy as usize >= pool.min_healthy.needed(total) {
            trace!(
                trace,
                "spill: client subnet {}/{prefix_len} hashes to position {position} of 65536: pool {}",
                mask(client.address, prefix_len),
                pool.name
            );
            return PoolChoice::Pick {
                pool: pool_index,
                census,
                fail_open: false,
                failed_over: !is_first,
            };
        }
        trace!(
            trace,
            "spill: pool {} has no healthy {} endpoints now: walking the order",
            pool.name,
            family_name(family)
        );
    }
    choose_pool(service, health, order, family, trace)
}

/// The ordered pool list clients with the table's order `order_index` get
/// in `health`: the compiled one, or for `fastest` the order the health
/// view measured from probe RTTs.
pub fn client_order<'s>(
    service: &'s Service,
    health: &'s HealthView,
    order_index: u32,
) -> &'s [u16] {
    match service
        .measured_slot
        .and_then(|slot| health.measured_order(slot, service.serial))
    {
        Some(measured) => measured,
        None => service.order(order_index),
    }
}

/// The pools of `order` in the order failover tries them: the primaries
/// in `order`'s order, then the backups in theirs.
pub fn failover_walk<'s>(service: &'s Service, order: &'s [u16]) -> impl Iterator<Item = u16> + 's {
    // Indexing holds: a compiled order names only pools of its service.
    let is_backup = |p: u16| service.pools[usize::from(p)].backup;
    order
        .iter()
        .copied()
        .filter(move |&p| !is_backup(p))
        .chain(order.iter().copied().filter(move |&p| is_backup(p)))
}

/// Which pool answers, decided from the order and the endpoints' health.
#[derive(Debug, Clone, Copy)]
pub enum PoolChoice {
    /// Pick endpoints from this pool (index in `Service::pools`).
    Pick {
        /// Index in `Service::pools`.
        pool: u16,
        /// Its endpoints of the family as counted when choosing.
        census: Census,
        /// Every candidate is down: pick as if all were up.
        fail_open: bool,
        /// The pool is not the client's first.
        failed_over: bool,
    },
    /// A `Pick` whose pool has one healthy endpoint of the family: every
    /// selection kind picks that one, so it is decided once, when the
    /// choice is memoised (see `PoolChoice::settle_single`).
    Single {
        /// Index in `Service::pools`.
        pool: u16,
        /// Its index in the pool.
        endpoint: u16,
        /// The pool is not the client's first.
        failed_over: bool,
    },
    /// A load-aware split of the order (a failed, drained or overflowing
    /// first pool): each query's client subnet hash picks the pool.
    Split(spill::Split),
    /// No records (no pool has the family, or all down with `nodata`).
    NoData,
    /// All down with `servfail`.
    ServFail,
}

impl PoolChoice {
    /// A `Pick` among one healthy endpoint as the `Single` it amounts to;
    /// any other choice as it is. Only for choices made without a trace,
    /// which would otherwise lose the pick's explanation.
    fn settle_single(self, service: &Service, health: &HealthView, family: Family) -> Self {
        let PoolChoice::Pick {
            pool,
            census,
            fail_open: false,
            failed_over,
        } = self
        else {
            return self;
        };
        if census.healthy != 1 {
            return self;
        }
        // The census's mask covers the first 64 endpoints; beyond, look.
        let endpoint = if census.healthy_mask != 0 {
            Some(census.healthy_mask.trailing_zeros() as usize)
        } else {
            service.pools.get(usize::from(pool)).and_then(|p| {
                p.endpoints
                    .iter()
                    .position(|e| e.serves(family) && e.is_healthy(health))
            })
        };
        match endpoint.and_then(|e| u16::try_from(e).ok()) {
            Some(endpoint) => PoolChoice::Single {
                pool,
                endpoint,
                failed_over,
            },
            None => self,
        }
    }
}

/// Failover: primaries in order, then backups; the first pool with enough
/// healthy endpoints of the family, else the service's all-down rule.
/// (`gslb diff` asks it which pool each order's clients get.)
pub fn choose_pool(
    service: &Service,
    health: &HealthView,
    order: &[u16],
    family: Family,
    trace: &mut Trace<'_>,
) -> PoolChoice {
    let mut first_with_family = None;
    let mut any_candidate = false;
    for pool_index in failover_walk(service, order) {
        any_candidate = true;
        let pool = &service.pools[usize::from(pool_index)];
        let census = pool.census(health, family);
        let total = census.total as usize;
        if total == 0 {
            trace!(
                trace,
                "pool {}: no {} endpoints, skipped",
                pool.name,
                family_name(family)
            );
            continue;
        }
        let is_first = *first_with_family.get_or_insert(pool_index) == pool_index;
        let healthy = census.healthy as usize;
        let needed = pool.min_healthy.needed(total);
        if healthy >= needed {
            trace!(
                trace,
                "pool {}{}: {healthy}/{total} healthy (needs {needed}), chosen",
                pool.name,
                if pool.backup { " (backup)" } else { "" }
            );
            return PoolChoice::Pick {
                pool: pool_index,
                census,
                fail_open: false,
                failed_over: !is_first,
            };
        }
        trace!(
            trace,
            "pool {}{}: {healthy}/{total} healthy (needs {needed}), skipped",
            pool.name,
            if pool.backup { " (backup)" } else { "" }
        );
    }
    if first_with_family.is_none() {
        trace!(
            trace,
            "{}: no {} records in any pool: no data",
            if any_candidate { "pools" } else { "order" },
            family_name(family)
        );
        return PoolChoice::NoData;
    }
    match service.all_down {
        AllDown::FailOpen => {
            // Fail-open means "the probes may be wrong": it answers
            // endpoints the probes call down, never the ones an operator
            // took out (`down = true`, force-down, drain).
            let Some(pool_index) = first_pool_open_to_probes(service, health, order, family) else {
                trace!(
                    trace,
                    "all pools down and every remaining {} endpoint is down by the operator (down = true, force-down or drain): no data, fail-open does not override an operator",
                    family_name(family)
                );
                return PoolChoice::NoData;
            };
            let pool = &service.pools[usize::from(pool_index)];
            trace!(
                trace,
                "all pools down: failing open with pool {} as if its probed endpoints were up (operator-disabled endpoints stay out)",
                pool.name
            );
            PoolChoice::Pick {
                pool: pool_index,
                census: Census::default(),
                fail_open: true,
                failed_over: true,
            }
        }
        AllDown::Nodata => {
            trace!(
                trace,
                "all pools down: answering with no records (all_down = nodata)"
            );
            PoolChoice::NoData
        }
        AllDown::Servfail => {
            trace!(trace, "all pools down: SERVFAIL (all_down = servfail)");
            PoolChoice::ServFail
        }
    }
}

/// The first pool (primaries, then backups) with an endpoint of `family`
/// that no operator took out of service: where failing open answers.
fn first_pool_open_to_probes(
    service: &Service,
    health: &HealthView,
    order: &[u16],
    family: Family,
) -> Option<u16> {
    let open = |&&p: &&u16| {
        service.pools[usize::from(p)]
            .endpoints
            .iter()
            .any(|e| e.serves(family) && !e.is_operator_down(health))
    };
    let primaries = order
        .iter()
        .filter(|&&p| !service.pools[usize::from(p)].backup);
    let backups = order
        .iter()
        .filter(|&&p| service.pools[usize::from(p)].backup);
    primaries.chain(backups).find(open).copied()
}

/// The answer does not come from the client's first pool: flag it, and
/// shorten the TTL when the service asks for that.
fn mark_failed_over(service: &Service, selection: &mut Selection<'_>, trace: &mut Trace<'_>) {
    selection.failed_over = true;
    if let Some(ttl) = service.failover_ttl {
        selection.ttl = ttl;
        trace!(trace, "failing over: ttl {ttl}");
    }
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::V4 => "A",
        Family::V6 => "AAAA",
    }
}

fn pool_names(service: &Service, order: &[u16]) -> String {
    let mut out = String::new();
    for (i, &p) in order.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{}", service.pools[usize::from(p)].name);
    }
    if out.is_empty() {
        out.push_str("(none)");
    }
    out
}

#[cfg(test)]
mod tests;
