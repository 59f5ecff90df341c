//! Deterministic hashing shared by every layer: the SplitMix64 generator
//! and stable hashes of addresses and strings. A leaf: it imports nothing of
//! the crate. Results are the same on every instance and restart, which
//! sticky selection, RRL buckets and probe jitter rely on.

/// SplitMix64: tiny, fast, good enough for load spreading (not for secrets).
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// Next pseudo-random value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }
}

/// The SplitMix64 finaliser: a strong 64-bit mixing function.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A deterministic hash of an address (same on every instance and restart).
pub fn hash_address(address: std::net::IpAddr) -> u64 {
    match address {
        std::net::IpAddr::V4(v4) => mix(u64::from(u32::from(v4)) ^ 0x4_0000_0000),
        std::net::IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            mix(mix(bits as u64) ^ ((bits >> 64) as u64))
        }
    }
}

/// Stable FNV-1a hash of a string (endpoint identities).
pub fn hash_str(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(hash)
}
