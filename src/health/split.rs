//! The published spill-over state (README "Load-aware answers"): how the
//! clients of one pool order are divided between pools, planned by the
//! control plane (`load`, with `policy::spill::plan_split`) from one
//! snapshot of health and demand, and read by the query path from the
//! health view like any other memoised choice. Plain `Copy` data: no
//! atomics, no clock.

/// Most pools in one split: the client's first pool and up to four
/// receivers (the first four usable candidates after it).
pub const MAX_SPLIT: usize = 5;

/// Hash positions of a split: a client's 16-bit subnet hash falls in one
/// pool's range.
pub const SPLIT_RANGE: u32 = 1 << 16;

/// How one order's clients are divided: pool `pools[i]` takes the clients
/// whose hash is below `bounds[i]` (and at or above the previous bound);
/// the last pool takes the rest. Small and `Copy`, so per-thread memos
/// hold it as they hold any other pool choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// Pool indices (into `Service::pools`).
    pub pools: [u16; MAX_SPLIT],
    /// Exclusive upper hash bounds, cumulative, in 0..=[`SPLIT_RANGE`]`-1`.
    pub bounds: [u16; MAX_SPLIT],
    /// Entries in use (0: no split, the order is walked as ever).
    pub len: u8,
    /// Whether `pools[0]` is the client's first pool keeping a share (it
    /// was not failed over from).
    pub keeps_first: bool,
}

impl Split {
    /// No split: failover walks the order as it always did.
    pub const NONE: Split = Split {
        pools: [0; MAX_SPLIT],
        bounds: [0; MAX_SPLIT],
        len: 0,
        keeps_first: false,
    };

    /// Whether there is nothing to split.
    pub fn is_none(&self) -> bool {
        self.len == 0
    }

    /// The entries: pool index and its share of the clients (0..=1).
    pub fn shares(&self) -> impl Iterator<Item = (u16, f64)> + '_ {
        let len = usize::from(self.len);
        (0..len).map(move |i| {
            let low = if i == 0 {
                0
            } else {
                u32::from(self.bounds[i - 1])
            };
            let high = if i + 1 == len {
                SPLIT_RANGE
            } else {
                u32::from(self.bounds[i])
            };
            (
                self.pools[i],
                f64::from(high - low) / f64::from(SPLIT_RANGE),
            )
        })
    }

    /// The pool a client whose subnet hashes to `hash` goes to, and whether
    /// it is the client's first pool (`None` when there is no split).
    #[inline]
    pub fn pool_for(&self, hash: u16) -> Option<(u16, bool)> {
        let len = usize::from(self.len);
        if len == 0 {
            return None;
        }
        let mut i = 0;
        while i + 1 < len && hash >= self.bounds[i] {
            i += 1;
        }
        Some((self.pools[i], i == 0 && self.keeps_first))
    }
}

/// The 16-bit position of a client subnet hash in a split.
#[inline]
pub fn split_position(subnet_hash: u64) -> u16 {
    (subnet_hash >> 48) as u16
}

/// A load-aware service's splits as published with the health state: one
/// per pool order of the service, with what each one says for `explain`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSplits {
    /// `Service::serial` of the service they were planned for (a reload's
    /// services answer by plain failover until planned again).
    pub serial: u64,
    /// By order index (`Service::orders`).
    pub splits: Box<[Split]>,
    /// By order index: where the split sends clients and why (empty
    /// without a split).
    pub reasons: Box<[Box<str>]>,
}
