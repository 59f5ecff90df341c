//! Response rate limiting (RRL), as BIND and Knot do it: each client prefix
//! gets a budget of UDP responses per second; over it, responses are dropped,
//! except every `slip`-th one, which goes out truncated (TC, no records) so a
//! real client behind a spoofed flood retries over TCP and still gets in.
//!
//! Lock-free: a fixed table of atomic buckets indexed by a hash of the
//! prefix, each holding (second, count). Two prefixes that share a bucket
//! share a budget, which only makes the limit stricter for them. The clock
//! is passed in, so this module reads none.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::hash::hash_address;
use crate::policy::mask;
use crate::snapshot::RrlSettings;

/// What to do with one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RrlVerdict {
    /// Within budget: send as is.
    Send,
    /// Over budget: send a truncated reply instead.
    Slip,
    /// Over budget: send nothing.
    Drop,
}

/// The limiter: this snapshot's settings over budgets that outlive it.
#[derive(Debug)]
pub struct RateLimiter {
    settings: RrlSettings,
    /// Each bucket: high 32 bits the second it counts, low 32 bits the count.
    /// Shared with the limiter of the state this one replaced (see [`new`](Self::new)).
    buckets: Arc<[AtomicU64]>,
}

impl RateLimiter {
    /// A limiter with `settings.table_size` buckets (rounded up to a power
    /// of two). It takes over `previous`'s buckets when they are as many,
    /// so a reload keeps every client's budget; a new table size starts
    /// afresh.
    pub fn new(settings: RrlSettings, previous: Option<&RateLimiter>) -> Self {
        let size = settings.table_size.max(1).next_power_of_two();
        let buckets = match previous {
            Some(previous) if previous.buckets.len() == size => previous.buckets.clone(),
            _ => (0..size).map(|_| AtomicU64::new(0)).collect(),
        };
        Self { settings, buckets }
    }

    /// Accounts one response to `client` at second `now_secs`.
    pub fn check(&self, client: IpAddr, now_secs: u32) -> RrlVerdict {
        let prefix_len = match client {
            IpAddr::V4(_) => self.settings.ipv4_prefix_len,
            IpAddr::V6(_) => self.settings.ipv6_prefix_len,
        };
        let hash = hash_address(mask(client, prefix_len));
        let bucket = &self.buckets[(hash as usize) & (self.buckets.len() - 1)];
        let now = u64::from(now_secs) << 32;
        let mut current = bucket.load(Ordering::Relaxed);
        let count = loop {
            let (second, count) = (current & !0xffff_ffff, current & 0xffff_ffff);
            let next = if second == now {
                now | (count + 1).min(0xffff_ffff)
            } else {
                now | 1
            };
            match bucket.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break next & 0xffff_ffff,
                Err(actual) => current = actual,
            }
        };
        let limit = u64::from(self.settings.responses_per_second);
        if count <= limit {
            return RrlVerdict::Send;
        }
        let over = count - limit;
        match self.settings.slip {
            0 => RrlVerdict::Drop,
            slip if over % u64::from(slip) == 0 => RrlVerdict::Slip,
            _ => RrlVerdict::Drop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(slip: u32) -> RrlSettings {
        RrlSettings {
            responses_per_second: 5,
            slip,
            ipv4_prefix_len: 24,
            ipv6_prefix_len: 56,
            table_size: 1024,
        }
    }

    fn limiter(slip: u32) -> RateLimiter {
        RateLimiter::new(settings(slip), None)
    }

    #[test]
    fn budget_per_prefix_per_second_with_slip() {
        let rrl = limiter(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let same_prefix: IpAddr = "192.0.2.200".parse().unwrap();
        let verdicts: Vec<RrlVerdict> = (0..9)
            .map(|i| rrl.check(if i % 2 == 0 { a } else { same_prefix }, 100))
            .collect();
        assert_eq!(&verdicts[..5], &[RrlVerdict::Send; 5]);
        assert_eq!(
            &verdicts[5..],
            &[
                RrlVerdict::Drop,
                RrlVerdict::Slip,
                RrlVerdict::Drop,
                RrlVerdict::Slip
            ]
        );
        // A new second refills the budget.
        assert_eq!(rrl.check(a, 101), RrlVerdict::Send);
    }

    #[test]
    fn other_prefixes_are_not_limited_and_slip_zero_drops() {
        let rrl = limiter(0);
        let flood: IpAddr = "198.51.100.7".parse().unwrap();
        for _ in 0..5 {
            assert_eq!(rrl.check(flood, 7), RrlVerdict::Send);
        }
        assert_eq!(rrl.check(flood, 7), RrlVerdict::Drop);
        let other: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(rrl.check(other, 7), RrlVerdict::Send);
        let v6: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        assert_eq!(rrl.check(v6, 7), RrlVerdict::Send);
    }

    #[test]
    fn budgets_carry_over_to_the_next_limiter_of_the_same_size() {
        let old = limiter(0);
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..5 {
            assert_eq!(old.check(client, 9), RrlVerdict::Send);
        }
        // A reload: new settings over the same budgets.
        let next = RateLimiter::new(settings(2), Some(&old));
        assert_eq!(next.check(client, 9), RrlVerdict::Drop);
        assert_eq!(next.check(client, 9), RrlVerdict::Slip);
        // Another table size is another table.
        let resized = RateLimiter::new(
            RrlSettings {
                table_size: 2048,
                ..settings(0)
            },
            Some(&next),
        );
        assert_eq!(resized.check(client, 9), RrlVerdict::Send);
    }
}
