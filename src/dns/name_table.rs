//! The precompiled answers' index by question name: names of up to 32
//! wire bytes (nearly all of them) are keyed by four zero-padded 64-bit
//! words, so a lookup hashes and compares four words with no loop over
//! bytes and no call to `memcmp`; longer names by their bytes.
//!
//! Keys are the lowercase wire names the table was built with; a lookup
//! matches only the exact bytes (case folding is the caller's business).
//! Every name given is a whole wire name, ending at its only zero-length
//! label: that is what lets a zero-padded key stand for its name.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use rustc_hash::FxBuildHasher;

/// Longest name keyed by words.
const SHORT: usize = 32;

/// `KEEP_FIRST[n]` keeps the first `n` bytes of four little-endian words
/// and clears the rest (a table: cheaper per lookup than computing it).
const KEEP_FIRST: [[u64; 4]; SHORT + 1] = {
    let mut masks = [[0u64; 4]; SHORT + 1];
    let mut n = 0;
    while n <= SHORT {
        let mut word = 0;
        while word < 4 {
            let kept = if n >= 8 * (word + 1) {
                8
            } else {
                n.saturating_sub(8 * word)
            };
            masks[n][word] = if kept == 8 {
                u64::MAX
            } else {
                (1u64 << (8 * kept)) - 1
            };
            word += 1;
        }
        n += 1;
    }
    masks
};

/// A name of at most [`SHORT`] bytes as little-endian words, zero past its
/// end. The name's length is implied: a wire name ends with its only
/// zero-length label, so two names that differ only in trailing zeros
/// cannot both be valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ShortName([u64; 4]);

impl Hash for ShortName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // One word in, mixed from all four (the hasher multiplies it):
        // cheaper than hashing each, and names differ mostly in a few
        // bytes anyway.
        let [a, b, c, d] = self.0;
        state.write_u64(a ^ b.rotate_left(19) ^ c.rotate_left(37) ^ d.rotate_left(53));
    }
}

impl ShortName {
    /// The key of `name`, if it is short enough.
    fn of(name: &[u8]) -> Option<Self> {
        let mut bytes = [0u8; SHORT];
        bytes.get_mut(..name.len())?.copy_from_slice(name);
        Some(Self::from_bytes(&bytes))
    }

    /// The key of the `len` bytes at the start of `window`, which holds at
    /// least [`SHORT`] bytes (read whole, then masked: no copy of variable
    /// length). `None` if the name is longer.
    #[inline(always)]
    fn of_window(window: &[u8; SHORT], len: usize) -> Option<Self> {
        let masks = KEEP_FIRST.get(len)?;
        let mut words = Self::from_bytes(window).0;
        for (word, mask) in words.iter_mut().zip(masks) {
            *word &= mask;
        }
        Some(Self(words))
    }

    #[inline(always)]
    fn from_bytes(bytes: &[u8; SHORT]) -> Self {
        let (chunks, _) = bytes.as_chunks::<8>();
        let mut words = [0u64; 4];
        for (word, chunk) in words.iter_mut().zip(chunks) {
            *word = u64::from_le_bytes(*chunk);
        }
        Self(words)
    }
}

/// Values by wire name (see the module docs).
#[derive(Debug)]
pub struct NameTable<V> {
    short: HashMap<ShortName, V, FxBuildHasher>,
    long: HashMap<Box<[u8]>, V, FxBuildHasher>,
}

impl<V> Default for NameTable<V> {
    fn default() -> Self {
        Self {
            short: HashMap::with_hasher(FxBuildHasher),
            long: HashMap::with_hasher(FxBuildHasher),
        }
    }
}

impl<V> NameTable<V> {
    /// Sets the value of `name`.
    pub fn insert(&mut self, name: &[u8], value: V) {
        match ShortName::of(name) {
            Some(key) => {
                self.short.insert(key, value);
            }
            None => {
                self.long.insert(name.into(), value);
            }
        }
    }

    /// The value of `name`.
    #[inline]
    pub fn get(&self, name: &[u8]) -> Option<&V> {
        match ShortName::of(name) {
            Some(key) => self.short.get(&key),
            None => self.long.get(name),
        }
    }

    /// The value of the `len`-byte name at the start of `window`, which
    /// may go on past the name: when it holds [`SHORT`] bytes, a short
    /// name's key is read without a copy of variable length.
    #[inline(always)]
    pub fn get_at(&self, window: &[u8], len: usize) -> Option<&V> {
        if let Some(whole) = window.first_chunk::<SHORT>() {
            return match ShortName::of_window(whole, len) {
                Some(key) => self.short.get(&key),
                None => self.long.get(window.get(..len)?),
            };
        }
        self.get(window.get(..len)?)
    }

    /// Number of names.
    pub fn name_count(&self) -> usize {
        self.short.len() + self.long.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for label in text.split('.').filter(|l| !l.is_empty()) {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out
    }

    #[test]
    fn names_short_and_long_are_found_by_bytes_and_in_a_window() {
        let names: Vec<Vec<u8>> = [
            ".",
            "a.",
            "www.example.test.",
            "twenty-six-bytes.test.",
            "thirty-one-bytes-long-na.test.",
            "thirty-two-bytes-long-nam.test.",
            "thirty-three-bytes-long-n.tests.",
            "a-name-longer-than-thirty-two-bytes.example.test.",
        ]
        .iter()
        .map(|n| wire(n))
        .collect();
        let lengths: Vec<usize> = names.iter().map(Vec::len).collect();
        assert!(
            [31, 32, 33].iter().all(|n| lengths.contains(n)),
            "{lengths:?}"
        );
        let mut table = NameTable::default();
        for (i, name) in names.iter().enumerate() {
            table.insert(name, i);
        }
        assert_eq!(table.name_count(), names.len());
        for (i, name) in names.iter().enumerate() {
            assert_eq!(table.get(name), Some(&i));
            // In a longer buffer whose bytes past the name are not zero.
            let mut window = name.clone();
            window.extend_from_slice(&[0xa5; 40]);
            assert_eq!(table.get_at(&window, name.len()), Some(&i));
            // As the packet's last bytes (a window shorter than 32).
            assert_eq!(table.get_at(name, name.len()), Some(&i));
        }
        // Names that differ in case or in a byte are other names.
        assert_eq!(table.get(&wire("www.example.tesT.")), None);
        assert_eq!(table.get(&wire("www.example.tes.")), None);
    }
}
