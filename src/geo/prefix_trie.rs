//! Binary prefix tries over IP address bits, and the per-family pair of them.
//!
//! Owns the in-memory longest-prefix structure that every GeoIP answer is read
//! from. It knows nothing about files, mmdb or locations: values are any small
//! `Copy + Eq` type (a location id, a pool decision...).
//!
//! Invariant kept: after [`PrefixTrie::collapse`] (and in every trie returned by
//! [`PrefixTrie::map`]) no inner node has a subtree whose leaves all hold the
//! same value, so the depth returned by [`PrefixTrie::lookup`] is the widest
//! prefix over which the answer is uniform: the honest EDNS Client Subnet
//! scope (RFC 7871 §7.2.1).
//!
//! Bit convention: an address is a `u128` holding the address value
//! **right-aligned**, as `u128::from(u32::from(ipv4))` for IPv4 or
//! `u128::from(ipv6)` for IPv6. The family width is the trie's `max_len`
//! (32 or 128); bits above it are ignored. Bit 0 of the prefix is the most
//! significant bit of the family width.

use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;
use rustc_hash::FxHashMap;

/// Address family of a prefix trie, and of an address after IPv4-mapped IPv6
/// addresses have been folded into IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4: 32 address bits.
    V4,
    /// IPv6: 128 address bits.
    V6,
}

impl Family {
    /// Number of address bits in this family (32 or 128).
    pub const fn width(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

/// Splits an address into its family and right-aligned bits.
///
/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are returned as IPv4, so a
/// dual-stack socket's view of an IPv4 client finds the IPv4 data.
pub fn addr_bits(ip: IpAddr) -> (Family, u128) {
    match ip {
        IpAddr::V4(v4) => (Family::V4, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (Family::V4, u128::from(u32::from(v4))),
            None => (Family::V6, u128::from(v6)),
        },
    }
}

/// Splits a network into its family, right-aligned (masked) bits and prefix
/// length in that family.
///
/// A network inside `::ffff:0:0/96` with a prefix of at least 96 is returned
/// as the IPv4 network it maps; a wider IPv6 network stays IPv6.
pub fn net_bits(net: IpNet) -> (Family, u128, u8) {
    match net.trunc() {
        IpNet::V4(v4) => (
            Family::V4,
            u128::from(u32::from(v4.network())),
            v4.prefix_len(),
        ),
        IpNet::V6(v6) => {
            let prefix_len = v6.prefix_len();
            match v6.network().to_ipv4_mapped() {
                Some(v4) if prefix_len >= 96 => {
                    (Family::V4, u128::from(u32::from(v4)), prefix_len - 96)
                }
                _ => (Family::V6, u128::from(v6.network()), prefix_len),
            }
        }
    }
}

/// Rebuilds the address of `family` from right-aligned bits (the inverse of
/// [`addr_bits`] for non-mapped addresses). Bits above the family width are
/// ignored.
pub fn bits_addr(family: Family, bits: u128) -> IpAddr {
    match family {
        // Truncation intended: only the low 32 bits are an IPv4 address.
        Family::V4 => IpAddr::V4(Ipv4Addr::from(bits as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(bits)),
    }
}

/// A binary trie over the bits of one address family, mapping every address
/// to a value. Inner nodes live in one arena (`Vec<[u32; 2]>`) and refer to
/// their children by `u32` reference: an inner node's index, or, with the
/// [`LEAF`] bit set, an index into a table of leaf values. So a node costs 8
/// bytes and a leaf nothing but its parent's reference (and after
/// [`collapse`](Self::collapse) or [`map`](Self::map) the value table holds
/// each distinct value once). There is no allocation per node and none
/// during lookup.
///
/// The arena is reference-counted, so a clone is cheap and shares it
/// (services with identical routing share one compiled table);
/// [`insert`](Self::insert) copies a shared arena before changing it.
#[derive(Clone, Debug)]
pub struct PrefixTrie<T> {
    /// Nodes, leaf values and the jump table.
    arena: Arc<Arena<T>>,
    /// Reference to the root: a leaf when the whole family maps to one value.
    root: u32,
    /// Family width in bits: 32 for IPv4, 128 for IPv6.
    max_len: u8,
}

/// The storage of a [`PrefixTrie`]. Every reference held in `nodes`, in
/// `jump` and in the trie's `root` is valid: inner references index `nodes`,
/// leaf references index `values` (all are produced by this module).
#[derive(Clone, Debug)]
struct Arena<T> {
    /// Inner nodes: references to the children for bit 0 and bit 1.
    nodes: Vec<[u32; 2]>,
    /// Leaf values. Leaves may share a slot, so a slot is never overwritten.
    values: Vec<T>,
    /// The reference (and its depth) reached from the root by each value of
    /// the first [`JUMP_BITS`] bits, or a leaf above that depth: lookups start
    /// there instead of walking those bits one at a time. Built by `map` and
    /// `collapse`; empty (lookups walk from the root) in a new trie, after
    /// `insert`, or when `max_len < JUMP_BITS`.
    jump: Vec<(u32, u8)>,
    /// The 16-way index [`PrefixTrie::index_for_lookups`] builds; empty
    /// otherwise, and after any change.
    strided: Strided,
}

/// Bits resolved at once by [`PrefixTrie`]'s jump table (256 entries).
const JUMP_BITS: u8 = 8;
/// Bits resolved by each level of the strided index after its first.
const STRIDE: u8 = 4;

/// A multibit copy of a trie for the query path: the first [`JUMP_BITS`]
/// index a 256-slot table, each further [`STRIDE`] bits a 16-slot node, so
/// a /24 takes 5 steps instead of 24. A leaf slot keeps its binary depth,
/// so lookups report the same scopes as the binary trie.
///
/// A slot is one `u32` (a node is 64 bytes): with [`SLOT_LEAF`] set, the
/// depth in bits 23..=30 and the index of the value (in the trie's value
/// table) below; otherwise the index of the next node.
#[derive(Clone, Debug, Default)]
struct Strided {
    first: Box<[u32]>,
    nodes: Vec<[u32; 16]>,
}

impl Strided {
    /// Follows `slot` down at most `chunks` levels, taking each level's
    /// STRIDE bits from the top of `word`; returns the slot reached (a leaf
    /// unless the chunks ran out first).
    #[inline(always)]
    fn walk(&self, mut slot: u32, mut word: u64, chunks: u8) -> u32 {
        for _ in 0..chunks {
            if slot & SLOT_LEAF != 0 {
                break;
            }
            let chunk = word >> (64 - STRIDE);
            word <<= STRIDE;
            // Index is valid: only this module pushes nodes.
            slot = self.nodes[slot as usize][chunk as usize];
        }
        slot
    }
}

/// Tag bit of a strided slot holding a leaf.
const SLOT_LEAF: u32 = 1 << 31;
/// Bits of a leaf slot's value index (the depth sits above them).
const SLOT_VALUE_BITS: u32 = 23;
/// Mask of a leaf slot's value index.
const SLOT_VALUE: u32 = (1 << SLOT_VALUE_BITS) - 1;

/// Tag bit of a child reference: set, the other bits index the leaf values;
/// clear, they index the inner nodes.
const LEAF: u32 = 1 << 31;

impl<T: Copy + Eq + Hash> PrefixTrie<T> {
    /// Creates a trie in which every address maps to `default`.
    ///
    /// `max_len` is the family width (32 for IPv4, 128 for IPv6); larger
    /// values are clamped to 128.
    pub fn new(default: T, max_len: u8) -> Self {
        PrefixTrie {
            arena: Arc::new(Arena {
                nodes: Vec::new(),
                values: vec![default],
                jump: Vec::new(),
                strided: Strided::default(),
            }),
            root: LEAF,
            max_len: max_len.min(128),
        }
    }

    /// Creates an empty trie for `family` in which every address maps to
    /// `default`.
    pub fn for_family(default: T, family: Family) -> Self {
        Self::new(default, family.width())
    }

    /// Family width in bits (32 or 128).
    pub fn max_len(&self) -> u8 {
        self.max_len
    }

    /// Number of inner nodes and leaf value slots in the arena, including
    /// any left unreachable by overriding inserts until the next
    /// [`collapse`](Self::collapse).
    pub fn node_count(&self) -> usize {
        self.arena.nodes.len() + self.arena.values.len()
    }

    /// Bytes held by the arena (nodes, values, jump table, strided index),
    /// for reports.
    pub fn arena_bytes(&self) -> usize {
        let arena = &*self.arena;
        arena.nodes.capacity() * std::mem::size_of::<[u32; 2]>()
            + arena.values.capacity() * std::mem::size_of::<T>()
            + arena.jump.capacity() * std::mem::size_of::<(u32, u8)>()
            + arena.strided.first.len() * std::mem::size_of::<u32>()
            + arena.strided.nodes.capacity() * std::mem::size_of::<[u32; 16]>()
    }

    /// Maps every address of the prefix `bits/prefix_len` to `value`.
    ///
    /// Last write wins over the covered range: everything previously inserted
    /// at or beneath this prefix is replaced, and a later insert of a longer
    /// prefix overrides part of this one. So inserting general prefixes first
    /// and specific ones after gives longest-prefix-match semantics.
    ///
    /// Bits beyond `prefix_len` are ignored; a `prefix_len` above
    /// [`max_len`](Self::max_len) is clamped to it. Sibling leaves are not
    /// merged here; call [`collapse`](Self::collapse) when done inserting.
    pub fn insert(&mut self, bits: u128, prefix_len: u8, value: T) {
        let max_len = self.max_len;
        let prefix_len = prefix_len.min(max_len);
        let arena = Arc::make_mut(&mut self.arena);
        // Paths change: lookups walk from the root until `collapse` rebuilds
        // the jump table (and `index_for_lookups` the strided index).
        arena.jump.clear();
        arena.strided = Strided::default();
        // Where the reference to `current` is stored: the root, or a child
        // slot of an inner node.
        let mut slot: Option<(usize, usize)> = None;
        let mut current = self.root;
        for depth in 0..prefix_len {
            if current & LEAF != 0 {
                // Split the leaf: both halves keep its value (and slot).
                let inner = push_inner(&mut arena.nodes, [current, current]);
                set_reference(&mut self.root, &mut arena.nodes, slot, inner);
                current = inner;
            }
            let side = bit_at(bits, depth, max_len);
            slot = Some((current as usize, side));
            current = arena.nodes[current as usize][side];
        }
        // Any subtree under `current` becomes unreachable; `collapse` drops it.
        let leaf = push_leaf(&mut arena.values, value);
        set_reference(&mut self.root, &mut arena.nodes, slot, leaf);
    }

    /// Same as [`insert`](Self::insert): lays `value` over the prefix,
    /// replacing whatever was beneath it.
    pub fn overlay(&mut self, bits: u128, prefix_len: u8, value: T) {
        self.insert(bits, prefix_len, value);
    }

    /// Returns the value for the address and the depth of the leaf reached.
    ///
    /// After [`collapse`](Self::collapse) the depth is the shortest prefix
    /// length whose whole range maps to the returned value, i.e. the ECS
    /// scope this answer can honestly claim.
    #[inline]
    pub fn lookup(&self, bits: u128) -> (T, u8) {
        let aligned = bits.checked_shl(128 - u32::from(self.max_len)).unwrap_or(0);
        self.lookup_aligned((aligned >> 64) as u64, aligned as u64)
    }

    /// [`lookup`](Self::lookup) with the address left-aligned in two
    /// halves, so the bits at any depth are one 64-bit shift away (u128
    /// shifts cost several instructions each).
    #[inline(always)]
    fn lookup_aligned(&self, high: u64, low: u64) -> (T, u8) {
        let arena = &*self.arena;
        if let Some(&first) = arena.strided.first.get((high >> 56) as usize) {
            // The bits below the jump in `high`, then (only IPv6 walks that
            // deep) those of `low`. Nodes exist only above depth `max_len`,
            // and a chunk never straddles the halves (STRIDE divides
            // 64 - JUMP_BITS).
            let mut slot = arena
                .strided
                .walk(first, high << JUMP_BITS, (64 - JUMP_BITS) / STRIDE);
            if slot & SLOT_LEAF == 0 {
                slot = arena.strided.walk(slot, low, 64 / STRIDE);
            }
            let depth = (slot >> SLOT_VALUE_BITS) as u8;
            return (arena.values[(slot & SLOT_VALUE) as usize], depth);
        }
        // The first JUMP_BITS bits (the jump table is empty when the family
        // is narrower than that).
        let first = (high >> (64 - u32::from(JUMP_BITS))) as usize;
        let (mut current, mut depth) = arena.jump.get(first).copied().unwrap_or((self.root, 0));
        // References are valid (see `Arena`), so indexing cannot fail.
        while current & LEAF == 0 {
            // Inner nodes only exist above depth `max_len` (insert stops at
            // `prefix_len <= max_len`), so depth < 128.
            let bit = if depth < 64 {
                (high << depth) >> 63
            } else {
                (low << (depth & 63)) >> 63
            };
            current = arena.nodes[current as usize][bit as usize];
            depth += 1;
        }
        (arena.values[(current & !LEAF) as usize], depth)
    }

    /// Builds the strided index that makes [`lookup`](Self::lookup) take
    /// one step per 4 bits. Costs memory (64 bytes per node), so it is
    /// built only for tables read per query; any later change drops it.
    /// A trie with more than 2^23 value slots keeps the binary walk only.
    pub fn index_for_lookups(&mut self) {
        let mut strided = Strided::default();
        if self.max_len >= JUMP_BITS && self.arena.values.len() <= SLOT_VALUE as usize + 1 {
            let first: Option<Box<[u32]>> = (0..1u32 << JUMP_BITS)
                .map(|chunk| self.stride_slot(self.root, 0, chunk, JUMP_BITS, &mut strided.nodes))
                .collect();
            match first {
                Some(first) => strided.first = first,
                None => strided = Strided::default(),
            }
        }
        strided.nodes.shrink_to_fit();
        Arc::make_mut(&mut self.arena).strided = strided;
    }

    /// The slot for the next `width` bits (`chunk`) below the reference
    /// `current` at `depth`: the leaf reached within them, or a new node
    /// below. `None` when node indices would reach the leaf tag.
    fn stride_slot(
        &self,
        mut current: u32,
        mut depth: u8,
        chunk: u32,
        width: u8,
        nodes: &mut Vec<[u32; 16]>,
    ) -> Option<u32> {
        let arena = &*self.arena;
        for i in 0..width {
            if current & LEAF != 0 {
                break;
            }
            current = arena.nodes[current as usize][((chunk >> (width - 1 - i)) & 1) as usize];
            depth += 1;
        }
        if current & LEAF != 0 {
            // The value index fits: `index_for_lookups` checked the table size.
            return Some(SLOT_LEAF | u32::from(depth) << SLOT_VALUE_BITS | (current & !LEAF));
        }
        let mut slots = [0u32; 16];
        for (next, slot) in slots.iter_mut().enumerate() {
            *slot = self.stride_slot(current, depth, next as u32, STRIDE, nodes)?;
        }
        let index = u32::try_from(nodes.len())
            .ok()
            .filter(|i| i & SLOT_LEAF == 0)?;
        nodes.push(slots);
        Some(index)
    }

    /// [`lookup`](Self::lookup) without the jump table, for tests.
    #[cfg(test)]
    fn lookup_from_root(&self, bits: u128) -> (T, u8) {
        let arena = &*self.arena;
        let (mut current, mut depth) = (self.root, 0u8);
        while current & LEAF == 0 {
            current = arena.nodes[current as usize][bit_at(bits, depth, self.max_len)];
            depth += 1;
        }
        (arena.values[(current & !LEAF) as usize], depth)
    }

    /// Fills the jump table for the current nodes (empty when
    /// `max_len < JUMP_BITS`).
    fn build_jump(&mut self) {
        let (root, max_len) = (self.root, self.max_len);
        let arena = Arc::make_mut(&mut self.arena);
        arena.jump = if max_len < JUMP_BITS {
            Vec::new()
        } else {
            let nodes = &arena.nodes;
            (0..1u32 << JUMP_BITS)
                .map(|first| {
                    let bits = u128::from(first) << (max_len - JUMP_BITS);
                    let (mut current, mut depth) = (root, 0u8);
                    while depth < JUMP_BITS && current & LEAF == 0 {
                        current = nodes[current as usize][bit_at(bits, depth, max_len)];
                        depth += 1;
                    }
                    (current, depth)
                })
                .collect()
        };
    }

    /// Returns a compact copy with every value passed through `f`, then
    /// sibling leaves with equal values merged bottom-up (so mapping many
    /// locations to a few decisions widens the scopes lookup reports).
    ///
    /// `f` is called once per reachable leaf, in address order.
    pub fn map<U: Copy + Eq + Hash>(&self, mut f: impl FnMut(T) -> U) -> PrefixTrie<U> {
        let mut out = Rebuilt {
            arena: Arena {
                nodes: Vec::new(),
                values: Vec::new(),
                jump: Vec::new(),
                strided: Strided::default(),
            },
            slots: FxHashMap::default(),
        };
        let root = self.rebuild(self.root, &mut f, &mut out).place(&mut out);
        out.arena.nodes.shrink_to_fit();
        out.arena.values.shrink_to_fit();
        let mut trie = PrefixTrie {
            arena: Arc::new(out.arena),
            root,
            max_len: self.max_len,
        };
        trie.build_jump();
        trie
    }

    /// Merges sibling leaves holding equal values, bottom-up, and drops
    /// nodes left unreachable by overriding inserts.
    pub fn collapse(&mut self) {
        *self = self.map(|value| value);
    }

    /// Iterates over the leaves reachable from the root, in address order,
    /// as `(bits, prefix_len, value)` with `bits` right-aligned and masked.
    pub fn iter_leaves(&self) -> Leaves<'_, T> {
        Leaves {
            trie: self,
            stack: vec![(self.root, 0, 0)],
        }
    }

    /// Number of leaves reachable from the root: the CIDR blocks of the
    /// table (after [`collapse`](Self::collapse), each as wide as it can be).
    pub fn leaf_count(&self) -> usize {
        self.iter_leaves().count()
    }

    /// Number of address ranges with one value: runs of adjacent leaves
    /// holding the same value count once (several CIDR blocks can make one
    /// range that is not itself a prefix).
    pub fn range_count(&self) -> usize {
        let mut previous = None;
        let mut ranges = 0;
        for (_, _, value) in self.iter_leaves() {
            if previous != Some(value) {
                ranges += 1;
                previous = Some(value);
            }
        }
        ranges
    }

    /// Whether `self` and `other` share one arena (one is a clone of the
    /// other, neither changed since).
    pub fn shares_nodes_with(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.arena, &other.arena)
    }

    /// Copies the subtree at `current` into `out` mapped through `f`,
    /// merging equal sibling leaves. A leaf result is not placed yet, so the
    /// parent can still merge it; an inner result is already in `out`.
    fn rebuild<U: Copy + Eq + Hash>(
        &self,
        current: u32,
        f: &mut impl FnMut(T) -> U,
        out: &mut Rebuilt<U>,
    ) -> Built<U> {
        // Recursion depth is bounded by `max_len` (at most 128).
        let arena = &*self.arena;
        if current & LEAF != 0 {
            return Built::Leaf(f(arena.values[(current & !LEAF) as usize]));
        }
        let [left, right] = arena.nodes[current as usize];
        let left = self.rebuild(left, f, out);
        let right = self.rebuild(right, f, out);
        match (left, right) {
            (Built::Leaf(a), Built::Leaf(b)) if a == b => Built::Leaf(a),
            (left, right) => {
                let children = [left.place(out), right.place(out)];
                Built::Inner(push_inner(&mut out.arena.nodes, children))
            }
        }
    }
}

/// Bit `depth` of `bits`, counted from the top of the family width
/// `max_len`, as a child index (0 or 1). Requires `depth < max_len`.
#[inline]
fn bit_at(bits: u128, depth: u8, max_len: u8) -> usize {
    ((bits >> (max_len - 1 - depth)) & 1) as usize
}

/// Stores `reference` where `slot` says: a child of an inner node, or the root.
fn set_reference(
    root: &mut u32,
    nodes: &mut [[u32; 2]],
    slot: Option<(usize, usize)>,
    reference: u32,
) {
    match slot {
        Some((node, side)) => nodes[node][side] = reference,
        None => *root = reference,
    }
}

fn push_inner(nodes: &mut Vec<[u32; 2]>, children: [u32; 2]) -> u32 {
    // A binary trie over at most 128 bits built from real prefix lists stays
    // far below 2^31 nodes (the arena would need 16 GiB first).
    let idx = u32::try_from(nodes.len())
        .ok()
        .filter(|idx| idx & LEAF == 0)
        .expect("prefix trie arena exceeds 2^31 nodes");
    nodes.push(children);
    idx
}

fn push_leaf<T>(values: &mut Vec<T>, value: T) -> u32 {
    // As for nodes: one value per insert or distinct value, far below 2^31.
    let idx = u32::try_from(values.len())
        .ok()
        .filter(|idx| idx & LEAF == 0)
        .expect("prefix trie values exceed 2^31");
    values.push(value);
    idx | LEAF
}

/// The arena being built by [`PrefixTrie::map`], with the slot of each
/// distinct value placed so far (leaves share them).
struct Rebuilt<U> {
    arena: Arena<U>,
    slots: FxHashMap<U, u32>,
}

/// Result of rebuilding one subtree: a leaf value not yet placed, or the
/// reference of an inner node already in the output arena.
enum Built<U> {
    Leaf(U),
    Inner(u32),
}

impl<U: Copy + Eq + Hash> Built<U> {
    fn place(self, out: &mut Rebuilt<U>) -> u32 {
        match self {
            Built::Leaf(value) => match out.slots.get(&value) {
                Some(&leaf) => leaf,
                None => {
                    let leaf = push_leaf(&mut out.arena.values, value);
                    out.slots.insert(value, leaf);
                    leaf
                }
            },
            Built::Inner(idx) => idx,
        }
    }
}

/// Iterator over the leaves of a [`PrefixTrie`], from [`PrefixTrie::iter_leaves`].
#[derive(Debug)]
pub struct Leaves<'a, T> {
    trie: &'a PrefixTrie<T>,
    /// Pending references as (reference, bits so far, depth).
    stack: Vec<(u32, u128, u8)>,
}

impl<T: Copy + Eq + Hash> Iterator for Leaves<'_, T> {
    type Item = (u128, u8, T);

    fn next(&mut self) -> Option<Self::Item> {
        let arena = &*self.trie.arena;
        while let Some((current, bits, depth)) = self.stack.pop() {
            if current & LEAF != 0 {
                return Some((bits, depth, arena.values[(current & !LEAF) as usize]));
            }
            let [left, right] = arena.nodes[current as usize];
            let one = 1u128 << (self.trie.max_len - 1 - depth);
            self.stack.push((right, bits | one, depth + 1));
            self.stack.push((left, bits, depth + 1));
        }
        None
    }
}

/// One [`PrefixTrie`] per address family, looked up by [`IpAddr`].
#[derive(Clone, Debug)]
pub struct PrefixTable<T> {
    /// IPv4 trie (32 bits); also answers IPv4-mapped IPv6 addresses.
    pub v4: PrefixTrie<T>,
    /// IPv6 trie (128 bits).
    pub v6: PrefixTrie<T>,
}

impl<T: Copy + Eq + Hash> PrefixTable<T> {
    /// Creates a table in which every address of both families maps to `default`.
    pub fn new(default: T) -> Self {
        PrefixTable {
            v4: PrefixTrie::for_family(default, Family::V4),
            v6: PrefixTrie::for_family(default, Family::V6),
        }
    }

    /// The trie for `family`.
    pub fn trie(&self, family: Family) -> &PrefixTrie<T> {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    /// The trie for `family`, mutably.
    pub fn trie_mut(&mut self, family: Family) -> &mut PrefixTrie<T> {
        match family {
            Family::V4 => &mut self.v4,
            Family::V6 => &mut self.v6,
        }
    }

    /// Maps `net` to `value` with [`PrefixTrie::insert`] semantics (last
    /// write wins). IPv4-mapped IPv6 networks of length ≥ 96 go to the IPv4 trie.
    pub fn insert(&mut self, net: IpNet, value: T) {
        let (family, bits, prefix_len) = net_bits(net);
        self.trie_mut(family).insert(bits, prefix_len, value);
    }

    /// Looks `ip` up in its family's trie (IPv4-mapped IPv6 in the IPv4 one)
    /// and returns the value with its prefix length in that family.
    #[inline]
    pub fn lookup(&self, ip: IpAddr) -> (T, u8) {
        // Left-aligned per family without a u128 shift.
        match addr_bits(ip) {
            (Family::V4, bits) => self.v4.lookup_aligned((bits as u64) << 32, 0),
            (Family::V6, bits) => self.v6.lookup_aligned((bits >> 64) as u64, bits as u64),
        }
    }

    /// Maps both tries through `f` and collapses them, see [`PrefixTrie::map`].
    pub fn map<U: Copy + Eq + Hash>(&self, mut f: impl FnMut(T) -> U) -> PrefixTable<U> {
        PrefixTable {
            v4: self.v4.map(&mut f),
            v6: self.v6.map(&mut f),
        }
    }

    /// Collapses both tries, see [`PrefixTrie::collapse`].
    pub fn collapse(&mut self) {
        self.v4.collapse();
        self.v6.collapse();
    }

    /// Builds both tries' strided lookup index, see
    /// [`PrefixTrie::index_for_lookups`].
    pub fn index_for_lookups(&mut self) {
        self.v4.index_for_lookups();
        self.v6.index_for_lookups();
    }

    /// Total number of nodes in both arenas.
    pub fn node_count(&self) -> usize {
        self.v4.node_count() + self.v6.node_count()
    }

    /// Bytes held by both arenas, see [`PrefixTrie::arena_bytes`].
    pub fn arena_bytes(&self) -> usize {
        self.v4.arena_bytes() + self.v6.arena_bytes()
    }

    /// Total number of leaves (CIDR blocks) in both tries.
    pub fn leaf_count(&self) -> usize {
        self.v4.leaf_count() + self.v6.leaf_count()
    }

    /// Total number of ranges with one value in both tries, see
    /// [`PrefixTrie::range_count`].
    pub fn range_count(&self) -> usize {
        self.v4.range_count() + self.v6.range_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> u128 {
        let ip: Ipv4Addr = s.parse().unwrap();
        u128::from(u32::from(ip))
    }

    #[test]
    fn empty_trie_maps_everything_to_default_at_depth_zero() {
        let trie = PrefixTrie::new(7u8, 32);
        assert_eq!(trie.lookup(v4("1.2.3.4")), (7, 0));
        assert_eq!(trie.lookup(v4("255.255.255.255")), (7, 0));
    }

    #[test]
    fn longest_prefix_wins_when_inserted_general_first() {
        let mut trie = PrefixTrie::new(0u8, 32);
        trie.insert(v4("10.0.0.0"), 8, 1);
        trie.insert(v4("10.1.0.0"), 16, 2);
        trie.collapse();
        assert_eq!(trie.lookup(v4("10.1.2.3")), (2, 16));
        assert_eq!(trie.lookup(v4("10.2.0.0")).0, 1);
        assert_eq!(trie.lookup(v4("11.0.0.0")).0, 0);
    }

    #[test]
    fn later_general_insert_replaces_covered_range() {
        let mut trie = PrefixTrie::new(0u8, 32);
        trie.insert(v4("10.1.0.0"), 16, 2);
        trie.insert(v4("10.0.0.0"), 8, 1);
        trie.collapse();
        assert_eq!(trie.lookup(v4("10.1.2.3")), (1, 8));
    }

    #[test]
    fn collapse_merges_equal_siblings_and_widens_depth() {
        let mut trie = PrefixTrie::new(0u8, 32);
        trie.insert(v4("10.0.0.0"), 9, 1);
        trie.insert(v4("10.128.0.0"), 9, 1);
        assert_eq!(trie.lookup(v4("10.0.0.1")), (1, 9));
        trie.collapse();
        assert_eq!(trie.lookup(v4("10.0.0.1")), (1, 8));
        // 0.0.0.0/1 is uniform 0 except 10/8, so 11.x gets depth 8 (sibling of 10/8 is 11/8).
        assert_eq!(trie.lookup(v4("11.0.0.1")), (0, 8));
        assert_eq!(trie.lookup(v4("200.0.0.1")), (0, 1));
    }

    #[test]
    fn map_to_fewer_values_widens_scopes() {
        let mut trie = PrefixTrie::new(0u8, 32);
        trie.insert(v4("10.0.0.0"), 9, 1);
        trie.insert(v4("10.128.0.0"), 9, 2);
        trie.collapse();
        assert_eq!(trie.lookup(v4("10.0.0.1")), (1, 9));
        let decisions = trie.map(|loc| loc != 0);
        assert_eq!(decisions.lookup(v4("10.0.0.1")), (true, 8));
        let all_same = trie.map(|_| ());
        assert_eq!(all_same.lookup(v4("10.0.0.1")), ((), 0));
        assert_eq!(all_same.node_count(), 1);
    }

    #[test]
    fn host_routes_and_full_depth() {
        let mut trie = PrefixTrie::new(0u8, 32);
        trie.insert(v4("1.2.3.4"), 32, 9);
        trie.insert(v4("0.0.0.0"), 32, 8);
        trie.insert(v4("255.255.255.255"), 40, 7); // clamped to /32
        trie.collapse();
        assert_eq!(trie.lookup(v4("1.2.3.4")), (9, 32));
        assert_eq!(trie.lookup(v4("1.2.3.5")), (0, 32));
        assert_eq!(trie.lookup(v4("0.0.0.0")), (8, 32));
        assert_eq!(trie.lookup(v4("255.255.255.255")), (7, 32));
    }

    #[test]
    fn ipv6_width_and_default_route_override() {
        let mut trie = PrefixTrie::new(0u8, 128);
        let jp = u128::from("2001:218::".parse::<Ipv6Addr>().unwrap());
        trie.insert(jp, 32, 3);
        trie.insert(u128::MAX, 128, 4);
        trie.collapse();
        let addr = u128::from("2001:218::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(trie.lookup(addr), (3, 32));
        assert_eq!(trie.lookup(u128::MAX), (4, 128));
        trie.insert(0, 0, 5);
        trie.collapse();
        assert_eq!(trie.lookup(addr), (5, 0));
        assert_eq!(trie.node_count(), 1);
    }

    #[test]
    fn iter_leaves_covers_the_space_in_order() {
        let mut trie = PrefixTrie::new(0u8, 32);
        trie.insert(v4("128.0.0.0"), 2, 1);
        trie.collapse();
        let leaves: Vec<_> = trie.iter_leaves().collect();
        assert_eq!(
            leaves,
            vec![(0, 1, 0), (v4("128.0.0.0"), 2, 1), (v4("192.0.0.0"), 2, 0)]
        );
    }

    #[test]
    fn clones_share_the_arena_until_one_is_changed() {
        let mut trie = PrefixTrie::new(0u8, 32);
        trie.insert(v4("10.0.0.0"), 8, 1);
        trie.insert(v4("11.0.0.0"), 8, 1);
        trie.insert(v4("12.0.0.0"), 8, 2);
        trie.collapse();
        assert_eq!((trie.leaf_count(), trie.range_count()), (10, 4));
        let mut copy = trie.clone();
        assert!(copy.shares_nodes_with(&trie));
        copy.insert(v4("12.0.0.0"), 8, 3);
        assert!(!copy.shares_nodes_with(&trie));
        assert_eq!(trie.lookup(v4("12.1.2.3")), (2, 8));
        assert_eq!(copy.lookup(v4("12.1.2.3")), (3, 8));
    }

    #[test]
    fn addr_bits_folds_ipv4_mapped_ipv6() {
        let mapped: IpAddr = "::ffff:81.2.69.160".parse().unwrap();
        let plain: IpAddr = "81.2.69.160".parse().unwrap();
        assert_eq!(addr_bits(mapped), addr_bits(plain));
        assert_eq!(addr_bits(plain), (Family::V4, v4("81.2.69.160")));
        let compat: IpAddr = "::81.2.69.160".parse().unwrap();
        assert_eq!(addr_bits(compat).0, Family::V6);
        assert_eq!(bits_addr(Family::V4, v4("81.2.69.160")), plain);
    }

    #[test]
    fn net_bits_masks_and_folds_mapped_networks() {
        let net: IpNet = "81.2.69.160/24".parse().unwrap();
        assert_eq!(net_bits(net), (Family::V4, v4("81.2.69.0"), 24));
        let mapped: IpNet = "::ffff:81.2.69.0/120".parse().unwrap();
        assert_eq!(net_bits(mapped), (Family::V4, v4("81.2.69.0"), 24));
        let wide: IpNet = "::/64".parse().unwrap();
        assert_eq!(net_bits(wide), (Family::V6, 0, 64));
    }

    #[test]
    fn prefix_table_routes_by_family() {
        let mut table = PrefixTable::new(0u8);
        table.insert("81.2.69.0/24".parse().unwrap(), 1);
        table.insert("2001:218::/32".parse().unwrap(), 2);
        table.collapse();
        assert_eq!(table.lookup("81.2.69.1".parse().unwrap()), (1, 24));
        assert_eq!(table.lookup("::ffff:81.2.69.1".parse().unwrap()), (1, 24));
        assert_eq!(table.lookup("2001:218:1::1".parse().unwrap()), (2, 32));
        assert_eq!(table.lookup("::81.2.69.1".parse().unwrap()).0, 0);
    }

    /// Small deterministic PRNG (xorshift64*) so the property test needs no
    /// dependency and every failure reproduces.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Naive model: the last inserted prefix covering the address wins,
    /// which is exactly "last write wins over the covered range".
    fn model_lookup(model: &[(u128, u8, u8)], width: u8, bits: u128) -> u8 {
        model
            .iter()
            .rev()
            .find(|(p, len, _)| covers(*p, *len, width, bits))
            .map_or(0, |(_, _, v)| *v)
    }

    fn covers(prefix: u128, len: u8, width: u8, bits: u128) -> bool {
        len == 0 || (prefix ^ bits) >> (width - len) == 0
    }

    fn mask(bits: u128, len: u8, width: u8) -> u128 {
        if len == 0 {
            0
        } else {
            bits >> (width - len) << (width - len)
        }
    }

    /// Whether every address in `bits/len` maps to `value` in the model:
    /// the range is uniform iff no model prefix changes the answer inside it,
    /// checked on the boundaries of every prefix that intersects it.
    fn model_uniform(model: &[(u128, u8, u8)], width: u8, bits: u128, len: u8, value: u8) -> bool {
        let start = mask(bits, len, width);
        let mut probes = vec![start];
        for (p, plen, _) in model {
            if *plen >= len && covers(start, len, width, *p) {
                probes.push(*p);
                // First address after the prefix, if still inside the range.
                let size_log = width - plen;
                if size_log < 128 {
                    let after = p.wrapping_add(1u128 << size_log);
                    if covers(start, len, width, after) && after != 0 {
                        probes.push(after);
                    }
                }
            }
        }
        probes
            .into_iter()
            .all(|probe| model_lookup(model, width, probe) == value)
    }

    fn random_prefix(rng: &mut Rng, width: u8) -> (u128, u8) {
        // Cluster prefixes under a few short roots so they overlap often.
        let len = rng.below(u64::from(width) + 1) as u8;
        let high = u128::from(rng.below(4)) << (width - 2);
        // (Nothing below the root bits for widths of 4 and less.)
        let low = (u128::from(rng.next()) << 64 | u128::from(rng.next()))
            .checked_shr(u32::from(128 - width + 4))
            .unwrap_or(0);
        (mask(high | low, len, width), len)
    }

    #[test]
    fn property_lookup_matches_naive_model_and_depth_is_maximal() {
        for (seed, width) in [(1u64, 32u8), (2, 128), (3, 32), (4, 128), (5, 32)] {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed);
            let mut trie = PrefixTrie::new(0u8, width);
            let mut model = Vec::new();
            for _ in 0..300 {
                let (bits, len) = random_prefix(&mut rng, width);
                let value = rng.below(4) as u8;
                trie.insert(bits, len, value);
                model.push((bits, len, value));
            }
            trie.collapse();
            let mut probes: Vec<u128> = model.iter().map(|(p, _, _)| *p).collect();
            for _ in 0..500 {
                let (bits, _) = random_prefix(&mut rng, width);
                probes.push(bits | u128::from(rng.below(1 << 4)));
            }
            for bits in probes {
                let (value, depth) = trie.lookup(bits);
                assert_eq!(
                    value,
                    model_lookup(&model, width, bits),
                    "seed {seed} bits {bits:#x}"
                );
                assert!(
                    model_uniform(&model, width, bits, depth, value),
                    "seed {seed}: range at depth {depth} around {bits:#x} is not uniform"
                );
                if depth > 0 {
                    assert!(
                        !model_uniform(&model, width, bits, depth - 1, value),
                        "seed {seed}: depth {depth} around {bits:#x} is not maximal"
                    );
                }
            }
        }
    }

    #[test]
    fn jump_table_and_strided_index_agree_with_walking_from_the_root() {
        for (seed, width) in [(6u64, 4u8), (7, 8), (8, 9), (9, 32), (10, 128)] {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed);
            let mut trie = PrefixTrie::new(0u8, width);
            let check = |trie: &PrefixTrie<u8>, rng: &mut Rng| {
                for _ in 0..2000 {
                    let (bits, _) = random_prefix(rng, width);
                    let bits = bits | u128::from(rng.below(1 << 4)) & (u128::MAX >> (128 - width));
                    assert_eq!(
                        trie.lookup(bits),
                        trie.lookup_from_root(bits),
                        "width {width}"
                    );
                }
            };
            for round in 0..3 {
                for _ in 0..100 {
                    let (bits, len) = random_prefix(&mut rng, width);
                    trie.insert(bits, len, rng.below(4) as u8);
                }
                // Inserted into: the table must not be used stale.
                check(&trie, &mut rng);
                if round < 2 {
                    trie.collapse();
                    check(&trie, &mut rng);
                    trie.index_for_lookups();
                    assert_eq!(trie.arena.strided.first.is_empty(), width < JUMP_BITS);
                    check(&trie, &mut rng);
                }
            }
        }
    }
}
