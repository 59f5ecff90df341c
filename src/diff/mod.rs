//! `gslb diff`: how the clients of each service move between pools from one
//! compiled configuration to another, a traffic-shift preview before a
//! reload (or between two published versions, or two members).
//!
//! Exact, not sampled: for each service the walk splits the address space
//! at the union of both sides' region-table boundaries (every GeoIP, `nets`,
//! ASN and latency boundary compiled into them), so each block it visits is
//! one leaf on both sides and the pools it gets are read, not guessed. A
//! client list (see `clients`) is weighed over the same blocks.
//!
//! Which pools a leaf's clients get is [`destinations`]: the load-aware
//! split the side's health view holds for the leaf's order (pool → share of
//! its clients, chosen by a hash of the client subnet), else the policy's
//! own failover (`policy::choose_pool`). Where a block's clients split,
//! the report moves the least the two splits allow. Reads only compiled
//! snapshots and health views: no files, no clock, no network.

pub mod clients;
mod report;

use std::collections::HashMap;
use std::fmt;

use ipnet::IpNet;
use serde::Serialize;

pub use clients::{ClientEntry, ClientList, ClientsError, parse_clients};
pub use report::render_text;

use crate::geo::{Family as AddressFamily, LocationTable, PrefixTrie, net_bits};
use crate::health::{HealthTable, HealthView};
use crate::policy::{self, PoolChoice, Service};
use crate::snapshot::Snapshot;

/// Most lookups spent describing where one moved network is.
const LOCATION_BUDGET: usize = 200_000;

/// One side of a comparison: a compiled configuration and the health its
/// answers are judged in.
#[derive(Clone, Copy)]
pub struct Side<'a> {
    /// The compiled configuration.
    pub snapshot: &'a Snapshot,
    /// Endpoint health (for a config file: every endpoint in its initial
    /// state, plus any `--down`).
    pub health: &'a HealthView,
}

/// Who is weighed.
#[derive(Debug, Clone, Copy)]
pub enum Clients<'a> {
    /// Every address, each counting one.
    AddressSpace,
    /// The entries of a client list, by their weights.
    Listed(&'a ClientList),
}

/// What to report.
#[derive(Debug, Clone)]
pub struct DiffOptions {
    /// Client address families reported, each on its own.
    pub families: Vec<AddressFamily>,
    /// The answer family asked for by clients whose entry names none.
    pub record: policy::Family,
    /// Moved networks listed per service and family.
    pub top: usize,
}

/// Where a client's answer comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination {
    /// This pool answers.
    Pool(String),
    /// No records (no pool has the family, or all down with `nodata`).
    NoData,
    /// SERVFAIL (all down with `servfail`).
    ServFail,
    /// The service does not exist on this side.
    NoService,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Pool(name) => f.write_str(name),
            Destination::NoData => f.write_str("(no records)"),
            Destination::ServFail => f.write_str("(SERVFAIL)"),
            Destination::NoService => f.write_str("(no service)"),
        }
    }
}

impl Serialize for Destination {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The comparison of two sides.
#[derive(Debug, Serialize)]
pub struct Diff {
    /// Per service (the old side's order, then services only the new side has).
    pub services: Vec<ServiceDiff>,
}

/// One service.
#[derive(Debug, Serialize)]
pub struct ServiceDiff {
    /// Its name.
    pub name: String,
    /// `changed`, `unchanged`, `added` or `removed`.
    pub change: &'static str,
    /// Per client address family.
    pub families: Vec<FamilyDiff>,
    /// The new side's load-aware splits: for each pool order whose
    /// clients are split, where they go and why (`"eu, us, ap: eu down: us
    /// 66.7 % (spare 400 of capacity 400, own demand 0/s), ap 33.3 % (…)"`).
    pub spill: Vec<String>,
}

/// One service's clients of one address family.
#[derive(Debug, Serialize)]
pub struct FamilyDiff {
    /// `ipv4` or `ipv6`.
    pub family: &'static str,
    /// `addresses` (the address space) or `clients` (a client list's weights).
    pub unit: &'static str,
    /// All the weight weighed.
    pub total: f64,
    /// The weight whose pool changes.
    pub moved: f64,
    /// Every (from, to) with its weight, largest first; `from == to` is
    /// weight that stays.
    pub flows: Vec<Flow>,
    /// The largest moved networks (address space: maximal CIDR blocks with
    /// one move; client list: the entries that move most).
    pub top_moved: Vec<MovedNetwork>,
    /// Blocks the walk visited (each one leaf on both sides).
    pub blocks: u64,
}

/// Weight going from one destination to another.
#[derive(Debug, Clone, Serialize)]
pub struct Flow {
    /// Old side's destination.
    pub from: Destination,
    /// New side's destination.
    pub to: Destination,
    /// Its weight.
    pub weight: f64,
    /// Its share of the family's total, in percent.
    pub percent: f64,
}

/// A network whose clients move.
#[derive(Debug, Clone, Serialize)]
pub struct MovedNetwork {
    /// The network.
    #[serde(serialize_with = "serialize_display")]
    pub network: IpNet,
    /// Moved weight in it.
    pub weight: f64,
    /// Its moves with their shares of `weight`, in percent.
    pub moves: Vec<Flow>,
    /// Where it is (the new side's GeoIP data, else the old side's), with
    /// shares of its addresses in percent.
    pub locations: Vec<(String, f64)>,
}

fn serialize_display<S: serde::Serializer>(
    value: &impl fmt::Display,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// The destinations of the clients whose table leaf holds order
/// `order_index` of `service`, each with its share of them (summing to 1):
/// the shares of the load-aware split `health` holds for that order, else
/// all to the pool the policy's failover chooses.
pub fn destinations(
    service: &Service,
    health: &HealthView,
    order_index: u32,
    family: policy::Family,
) -> Vec<(Destination, f64)> {
    if let Some((split, _)) = policy::load_split(service, health, order_index) {
        let shares: Vec<(Destination, f64)> = split
            .shares()
            .filter_map(|(pool, share)| {
                let pool = service.pools.get(usize::from(pool))?;
                Some((Destination::Pool(pool.name.clone()), share))
            })
            .collect();
        if !shares.is_empty() {
            return shares;
        }
    }
    let order = policy::client_order(service, health, order_index);
    let destination = match policy::choose_pool(service, health, order, family, &mut None) {
        PoolChoice::Pick { pool, .. } | PoolChoice::Single { pool, .. } => service
            .pools
            .get(usize::from(pool))
            .map_or(Destination::NoData, |p| Destination::Pool(p.name.clone())),
        // `choose_pool` walks the order; splits were read above.
        PoolChoice::NoData | PoolChoice::Split(_) => Destination::NoData,
        PoolChoice::ServFail => Destination::ServFail,
    };
    vec![(destination, 1.0)]
}

/// Marks the endpoints `names` give (a pool, or a `pool/target` endpoint
/// key) down by their probes in `health`, as a failure would: what `gslb
/// diff --down` judges the new side in. Fail-open may still answer them,
/// as it would answer a real failure.
///
/// # Errors
/// A name that is neither a pool nor an endpoint of `snapshot`.
pub fn mark_down(
    snapshot: &Snapshot,
    health: &HealthTable,
    names: &[String],
    now: std::time::SystemTime,
) -> Result<(), String> {
    for name in names {
        let mut found = false;
        for endpoint in &snapshot.probes.endpoints {
            let pool = endpoint.key.split_once('/').map_or("", |(pool, _)| pool);
            if endpoint.key == *name || pool == name {
                health.handle_verdict(&endpoint.health, false, now);
                found = true;
            }
        }
        if !found {
            return Err(format!(
                "--down {name:?}: no such pool or endpoint (give a pool name or pool/target as in /status)"
            ));
        }
    }
    Ok(())
}

/// Plans the load-aware services' splits in `health` as a server that has
/// learned no demand yet would (as `explain --offline` does: demands are
/// zero, so a failed pool's clients spread by the receivers' capacities),
/// and publishes them, so [`destinations`] weighs them.
pub fn plan_offline_splits(snapshot: &Snapshot, health: &HealthTable) {
    let view = health.view_arc();
    let usable = |pool: &policy::Pool| crate::load::pool_usable(pool, &view);
    let demand = crate::load::DemandLearner::default();
    let plans: Vec<(usize, crate::load::ServicePlan)> = snapshot
        .services
        .iter()
        .enumerate()
        .filter_map(|(i, service)| {
            crate::load::plan_service(service, &usable, &demand).map(|plan| (i, plan))
        })
        .collect();
    if !plans.is_empty() {
        health.set_splits(crate::load::published_splits(&snapshot.services, &plans));
    }
}

/// Compares how `old` and `new` answer `clients`, per service and family.
pub fn diff(old: Side<'_>, new: Side<'_>, clients: Clients<'_>, options: &DiffOptions) -> Diff {
    let mut names: Vec<&str> = old
        .snapshot
        .services
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    for service in &new.snapshot.services {
        if !names.contains(&service.name.as_str()) {
            names.push(&service.name);
        }
    }
    let locations = new
        .snapshot
        .geo
        .locations
        .as_deref()
        .or(old.snapshot.geo.locations.as_deref());
    fn find<'s>(side: &Side<'s>, name: &str) -> Option<&'s Service> {
        side.snapshot.services.iter().find(|s| s.name == name)
    }
    let services = names
        .into_iter()
        .map(|name| {
            let (before, after) = (find(&old, name), find(&new, name));
            let mut walk = ServiceWalk::new(
                before.map(|s| (s, old.health)),
                after.map(|s| (s, new.health)),
            );
            let families: Vec<FamilyDiff> = options
                .families
                .iter()
                .map(|&family| walk.family(family, clients, name, options, locations))
                .collect();
            let change = match (before, after) {
                (None, _) => "added",
                (_, None) => "removed",
                _ if families.iter().any(|f| f.moved > 0.0) => "changed",
                _ => "unchanged",
            };
            ServiceDiff {
                name: name.to_string(),
                change,
                families,
                spill: after.map_or_else(Vec::new, |s| split_reasons(s, new.health)),
            }
        })
        .collect();
    Diff { services }
}

/// Where `service`'s split orders send their clients and why, as `health`
/// holds the splits (one line per order with a split).
fn split_reasons(service: &Service, health: &HealthView) -> Vec<String> {
    let Some(rules) = &service.load else {
        return Vec::new();
    };
    (0..service.orders.len())
        .filter_map(|order| {
            let order = u32::try_from(order).ok()?;
            let (_, why) = health.split(rules.slot, service.serial, order)?;
            Some(why.to_string())
        })
        .collect()
}

/// Weight per (from, to) destination indices.
type Flows = HashMap<(u32, u32), f64>;

/// A move: weight from a destination to another (indices into the
/// service's destinations), as a share of a block's weight.
type Move = (u32, u32, f64);

/// One side of one service, as the walk reads it.
struct Router<'a> {
    /// The region table's trie for the family walked; `None`: no service.
    trie: Option<&'a PrefixTrie<u32>>,
    /// Per order index, per answer family: the split (destination indices).
    splits: [Vec<Vec<(u32, f64)>>; 2],
}

impl Router<'_> {
    fn lookup(&self, bits: u128) -> (u32, u8) {
        self.trie.map_or((0, 0), |t| t.lookup(bits))
    }
}

/// The state of one service's comparison.
struct ServiceWalk<'a> {
    old: Option<(&'a Service, &'a HealthView)>,
    new: Option<(&'a Service, &'a HealthView)>,
    destinations: Vec<Destination>,
    /// (old order, new order, answer family) → its moves.
    moves: HashMap<(u32, u32, usize), std::rc::Rc<[Move]>>,
}

fn family_slot(family: policy::Family) -> usize {
    match family {
        policy::Family::V4 => 0,
        policy::Family::V6 => 1,
    }
}

impl<'a> ServiceWalk<'a> {
    fn new(
        old: Option<(&'a Service, &'a HealthView)>,
        new: Option<(&'a Service, &'a HealthView)>,
    ) -> Self {
        Self {
            old,
            new,
            destinations: Vec::new(),
            moves: HashMap::new(),
        }
    }

    fn intern(&mut self, destination: Destination) -> u32 {
        match self.destinations.iter().position(|d| *d == destination) {
            Some(i) => i as u32,
            None => {
                self.destinations.push(destination);
                (self.destinations.len() - 1) as u32
            }
        }
    }

    fn router(
        &mut self,
        side: Option<(&'a Service, &'a HealthView)>,
        family: AddressFamily,
    ) -> Router<'a> {
        let Some((service, health)) = side else {
            let none = self.intern(Destination::NoService);
            let split = vec![vec![(none, 1.0)]];
            return Router {
                trie: None,
                splits: [split.clone(), split],
            };
        };
        let mut splits: [Vec<Vec<(u32, f64)>>; 2] = Default::default();
        for answer in [policy::Family::V4, policy::Family::V6] {
            splits[family_slot(answer)] = (0..service.orders.len().max(1) as u32)
                .map(|order| {
                    destinations(service, health, order, answer)
                        .into_iter()
                        .map(|(d, share)| (self.intern(d), share))
                        .collect()
                })
                .collect();
        }
        Router {
            trie: Some(service.table.prefixes.trie(family)),
            splits,
        }
    }

    /// The moves of a block with `old_order` before and `new_order` after.
    fn moves(
        &mut self,
        old: &Router<'_>,
        new: &Router<'_>,
        orders: (u32, u32),
        answer: usize,
    ) -> std::rc::Rc<[Move]> {
        self.moves
            .entry((orders.0, orders.1, answer))
            .or_insert_with(|| {
                let split = |router: &Router<'_>, order: u32| {
                    router.splits[answer]
                        .get(order as usize)
                        .cloned()
                        .unwrap_or_default()
                };
                transition(&split(old, orders.0), &split(new, orders.1)).into()
            })
            .clone()
    }

    fn family(
        &mut self,
        family: AddressFamily,
        clients: Clients<'_>,
        name: &str,
        options: &DiffOptions,
        locations: Option<&LocationTable>,
    ) -> FamilyDiff {
        let (old, new) = (self.router(self.old, family), self.router(self.new, family));
        let width = family.width();
        let mut flows: Flows = HashMap::new();
        let mut blocks = 0u64;
        let (total, unit, top) = match clients {
            Clients::AddressSpace => {
                let answer = family_slot(options.record);
                let mut moved_blocks: Vec<Block> = Vec::new();
                walk(&old, &new, width, 0, 0, &mut |bits, len, o, n| {
                    blocks += 1;
                    let weight = block_size(width, len);
                    let moves = self.moves(&old, &new, (o, n), answer);
                    let mut moved = 0.0;
                    for &(from, to, share) in moves.iter() {
                        *flows.entry((from, to)).or_default() += weight * share;
                        if from != to {
                            moved += weight * share;
                        }
                    }
                    if moved > 0.0 {
                        push_block(
                            &mut moved_blocks,
                            width,
                            Block {
                                bits,
                                len,
                                moves,
                                weight: moved,
                            },
                        );
                    }
                });
                let mut top = moved_blocks;
                top.sort_by(|a, b| b.weight.total_cmp(&a.weight).then(a.bits.cmp(&b.bits)));
                top.truncate(options.top);
                let top = top
                    .into_iter()
                    .map(|block| {
                        let network = block_net(family, block.bits, block.len);
                        self.moved_network(network, block.weight, &block.moves, locations)
                    })
                    .collect();
                (block_size(width, 0), "addresses", top)
            }
            Clients::Listed(list) => {
                let mut total = 0.0;
                let mut moved_entries: Vec<(usize, f64, Flows)> = Vec::new();
                for (index, entry) in list.entries.iter().enumerate() {
                    let (entry_family, bits, len) = net_bits(entry.net);
                    if entry_family != family || !entry.applies_to(name) {
                        continue;
                    }
                    let answer = family_slot(entry.record.unwrap_or(options.record));
                    total += entry.weight;
                    let mut own: Flows = HashMap::new();
                    let mut visit = |weight: f64, o: u32, n: u32, walk: &mut Self| {
                        for &(from, to, share) in walk.moves(&old, &new, (o, n), answer).iter() {
                            *own.entry((from, to)).or_default() += weight * share;
                        }
                    };
                    if entry.point {
                        // The server routes a query by the leaf of its
                        // (ECS or source) address.
                        blocks += 1;
                        let (o, _) = old.lookup(bits);
                        let (n, _) = new.lookup(bits);
                        visit(entry.weight, o, n, self);
                    } else {
                        // A network of clients: its weight spread evenly
                        // over its addresses.
                        let mut parts = Vec::new();
                        walk(&old, &new, width, bits, len, &mut |_, part_len, o, n| {
                            parts.push((part_len, o, n));
                        });
                        blocks += parts.len() as u64;
                        for (part_len, o, n) in parts {
                            let weight =
                                entry.weight * block_size(width, part_len) / block_size(width, len);
                            visit(weight, o, n, self);
                        }
                    }
                    let mut moved = 0.0;
                    for (&(from, to), &weight) in &own {
                        *flows.entry((from, to)).or_default() += weight;
                        if from != to {
                            moved += weight;
                        }
                    }
                    if moved > 0.0 {
                        moved_entries.push((index, moved, own));
                    }
                }
                moved_entries.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                moved_entries.truncate(options.top);
                let top = moved_entries
                    .into_iter()
                    .map(|(index, moved, own)| {
                        let moves: Vec<Move> = own
                            .into_iter()
                            .filter(|((from, to), _)| from != to)
                            .map(|((from, to), weight)| (from, to, weight / moved))
                            .collect();
                        let network = list.entries[index].net;
                        self.moved_network(network, moved, &moves, locations)
                    })
                    .collect();
                (total, "clients", top)
            }
        };
        let mut flows: Vec<Flow> = flows
            .into_iter()
            .filter(|&(_, weight)| weight > 0.0)
            .map(|((from, to), weight)| self.flow(from, to, weight, total))
            .collect();
        flows.sort_by(|a, b| {
            (a.from == a.to)
                .cmp(&(b.from == b.to))
                .then(b.weight.total_cmp(&a.weight))
                .then(a.from.cmp(&b.from))
                .then(a.to.cmp(&b.to))
        });
        FamilyDiff {
            family: match family {
                AddressFamily::V4 => "ipv4",
                AddressFamily::V6 => "ipv6",
            },
            unit,
            total,
            moved: flows
                .iter()
                .filter(|f| f.from != f.to)
                .fold(0.0, |sum, f| sum + f.weight),
            flows,
            top_moved: top,
            blocks,
        }
    }

    fn flow(&self, from: u32, to: u32, weight: f64, total: f64) -> Flow {
        let name = |i: u32| {
            self.destinations
                .get(i as usize)
                .cloned()
                .unwrap_or(Destination::NoData)
        };
        Flow {
            from: name(from),
            to: name(to),
            weight,
            percent: if total > 0.0 {
                weight * 100.0 / total
            } else {
                0.0
            },
        }
    }

    fn moved_network(
        &self,
        network: IpNet,
        weight: f64,
        moves: &[Move],
        locations: Option<&LocationTable>,
    ) -> MovedNetwork {
        let moved_share: f64 = moves.iter().filter(|m| m.0 != m.1).map(|m| m.2).sum();
        let mut flows: Vec<Flow> = moves
            .iter()
            .filter(|m| m.0 != m.1)
            .map(|&(from, to, share)| {
                let share = if moved_share > 0.0 {
                    share / moved_share
                } else {
                    0.0
                };
                self.flow(from, to, weight * share, weight)
            })
            .collect();
        flows.sort_by(|a, b| b.weight.total_cmp(&a.weight));
        MovedNetwork {
            network,
            weight,
            moves: flows,
            locations: locations.map_or_else(Vec::new, |table| describe_locations(table, network)),
        }
    }
}

/// The moves from split `old` to split `new` (both summing to 1): what both
/// give a destination stays; the rest moves from where `old` gives more to
/// where `new` gives more, in proportion. For one-pool splits that is the
/// one move there is; for wider splits it is the least movement the two
/// splits allow.
fn transition(old: &[(u32, f64)], new: &[(u32, f64)]) -> Vec<Move> {
    let share = |split: &[(u32, f64)], d: u32| -> f64 {
        split.iter().filter(|(x, _)| *x == d).map(|(_, s)| s).sum()
    };
    let mut all: Vec<u32> = old.iter().chain(new).map(|(d, _)| *d).collect();
    all.sort_unstable();
    all.dedup();
    let mut moves = Vec::new();
    let mut surplus = Vec::new();
    let mut deficit = Vec::new();
    for &d in &all {
        let (a, b) = (share(old, d), share(new, d));
        let stay = a.min(b);
        if stay > 0.0 {
            moves.push((d, d, stay));
        }
        if a > stay {
            surplus.push((d, a - stay));
        }
        if b > stay {
            deficit.push((d, b - stay));
        }
    }
    let moving: f64 = deficit.iter().map(|(_, s)| s).sum();
    for &(from, out) in &surplus {
        for &(to, into) in &deficit {
            if moving > 0.0 {
                moves.push((from, to, out * into / moving));
            }
        }
    }
    moves
}

/// Splits `bits/len` at every boundary of either side's table and calls
/// `visit(bits, len, old order, new order)` for each block, in address
/// order: a block ends where the deeper of the two leaves holding its
/// first address ends.
fn walk(
    old: &Router<'_>,
    new: &Router<'_>,
    width: u8,
    bits: u128,
    len: u8,
    visit: &mut impl FnMut(u128, u8, u32, u32),
) {
    let (o, old_len) = old.lookup(bits);
    let (n, new_len) = new.lookup(bits);
    if old_len.max(new_len) <= len || len >= width {
        visit(bits, len, o, n);
        return;
    }
    // Recursion depth is bounded by the family width (at most 128).
    walk(old, new, width, bits, len + 1, visit);
    walk(
        old,
        new,
        width,
        bits | (1u128 << (width - 1 - len)),
        len + 1,
        visit,
    );
}

/// Addresses in a block of prefix length `len`.
fn block_size(width: u8, len: u8) -> f64 {
    2f64.powi(i32::from(width.saturating_sub(len)))
}

fn block_net(family: AddressFamily, bits: u128, len: u8) -> IpNet {
    let address = crate::geo::prefix_trie::bits_addr(family, bits);
    // `len` never exceeds the family width, so the prefix is valid.
    IpNet::new(address, len).unwrap_or_else(|_| IpNet::from(address))
}

/// A moved block of the address-space walk.
struct Block {
    bits: u128,
    len: u8,
    moves: std::rc::Rc<[Move]>,
    weight: f64,
}

/// Pushes a block visited in address order, merging it with its sibling
/// into their parent while both move alike: what is left are the widest
/// CIDR blocks with one move.
fn push_block(stack: &mut Vec<Block>, width: u8, block: Block) {
    stack.push(block);
    while stack.len() >= 2 {
        let (right, left) = (&stack[stack.len() - 1], &stack[stack.len() - 2]);
        let siblings = left.len == right.len
            && left.len > 0
            && right.bits == left.bits | (1u128 << (width - left.len))
            && left.bits & (1u128 << (width - left.len)) == 0
            && left.moves == right.moves;
        if !siblings {
            break;
        }
        let right = stack.pop().map_or(0.0, |b| b.weight);
        if let Some(left) = stack.last_mut() {
            left.len -= 1;
            left.weight += right;
        }
    }
}

/// Where `network` is, by share of its addresses: one label (`GB-ENG`,
/// `GB`, `unknown`) per location, or when it spans several, its countries.
fn describe_locations(table: &LocationTable, network: IpNet) -> Vec<(String, f64)> {
    let (family, bits, len) = net_bits(network);
    let trie = table.prefixes().trie(family);
    let width = family.width();
    let mut tally: HashMap<String, f64> = HashMap::new();
    let mut countries: HashMap<String, f64> = HashMap::new();
    let mut budget = LOCATION_BUDGET;
    let mut stack = vec![(bits, len)];
    while let Some((bits, len)) = stack.pop() {
        let (id, leaf_len) = trie.lookup(bits);
        budget = budget.saturating_sub(1);
        // Over budget, a block counts as the location of its first address.
        if leaf_len <= len || len >= width || budget == 0 {
            let location = table.location(id);
            let country = location.country.as_deref().unwrap_or("unknown").to_string();
            let label = location
                .subdivision
                .as_deref()
                .map_or_else(|| country.clone(), str::to_string);
            let size = block_size(width, len);
            *tally.entry(label).or_default() += size;
            *countries.entry(country).or_default() += size;
            continue;
        }
        stack.push((bits | (1u128 << (width - 1 - len)), len + 1));
        stack.push((bits, len + 1));
    }
    let chosen = if tally.len() == 1 { tally } else { countries };
    let whole: f64 = chosen.values().sum();
    let mut shares: Vec<(String, f64)> = chosen
        .into_iter()
        .map(|(label, size)| (label, size * 100.0 / whole))
        .collect();
    shares.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_moves_only_the_difference() {
        assert_eq!(transition(&[(0, 1.0)], &[(0, 1.0)]), vec![(0, 0, 1.0)]);
        assert_eq!(transition(&[(0, 1.0)], &[(1, 1.0)]), vec![(0, 1, 1.0)]);
        // Half of pool 0's clients spill to 1 and 2 alike.
        let moves = transition(&[(0, 1.0)], &[(0, 0.5), (1, 0.25), (2, 0.25)]);
        assert_eq!(moves, vec![(0, 0, 0.5), (0, 1, 0.25), (0, 2, 0.25)]);
    }

    #[test]
    fn sibling_blocks_with_one_move_merge() {
        let moves: std::rc::Rc<[Move]> = vec![(0, 1, 1.0)].into();
        let other: std::rc::Rc<[Move]> = vec![(0, 2, 1.0)].into();
        let mut stack = Vec::new();
        let block = |bits: u128, len: u8, moves: &std::rc::Rc<[Move]>| Block {
            bits,
            len,
            moves: moves.clone(),
            weight: block_size(32, len),
        };
        // 10.0.0.0/9 and 10.128.0.0/10 + 10.192.0.0/10: one /8.
        push_block(&mut stack, 32, block(0x0a00_0000, 9, &moves));
        push_block(&mut stack, 32, block(0x0a80_0000, 10, &moves));
        push_block(&mut stack, 32, block(0x0ac0_0000, 10, &moves));
        // 11.0.0.0/8 moves elsewhere: no merge.
        push_block(&mut stack, 32, block(0x0b00_0000, 8, &other));
        let blocks: Vec<(u128, u8, f64)> =
            stack.iter().map(|b| (b.bits, b.len, b.weight)).collect();
        assert_eq!(
            blocks,
            vec![
                (0x0a00_0000, 8, 16_777_216.0),
                (0x0b00_0000, 8, 16_777_216.0)
            ]
        );
    }
}
