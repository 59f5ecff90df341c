//! Where the precompiled answers write a reply: a growable `Vec` (TCP, the
//! tools, tests) or a UDP worker's fixed buffer.
//!
//! The fixed buffer exists for speed: the common reply is a copy of the
//! query's header and question, a few records and an OPT record, and into
//! a buffer of known size each of those is a copy of a size fixed at
//! compile time (a few register moves), where `Vec::extend_from_slice`
//! with a length known only at run time is a call to `memcpy` behind a
//! capacity check. Such a copy may run past the reply's end, which is
//! harmless: the length says where the reply ends.

/// Size of a UDP worker's reply buffer: the largest UDP reply gslb sends
/// (`server.max_udp_payload` is at most 4096).
pub const UDP_REPLY_MAX: usize = 4096;

/// Header and question at most this long are copied in one fixed-size
/// piece (a question name of up to 48 bytes; longer ones take `memcpy`).
const SHORT_QUESTION: usize = 64;

/// A reply under construction.
pub trait ReplyBuffer {
    /// Starts the reply with `query[..len]`, the query's header and
    /// question. `query` may go on past `len`: the bytes there may be
    /// copied but are not part of the reply.
    fn start_with(&mut self, query: &[u8], len: usize);

    /// Appends `bytes[..len]` (`len` at most `N`); the fixed size lets a
    /// buffer copy the whole array in one piece.
    fn append_array<const N: usize>(&mut self, bytes: &[u8; N], len: usize);

    /// Appends `bytes`.
    fn append(&mut self, bytes: &[u8]);

    /// Overwrites the `N` bytes at `offset`, which the reply already holds.
    fn overwrite<const N: usize>(&mut self, offset: usize, bytes: &[u8; N]);

    /// Bytes written so far (`usize::MAX` once a fixed buffer overflowed,
    /// so the reply is too long for any limit).
    fn written(&self) -> usize;
}

impl ReplyBuffer for Vec<u8> {
    #[inline(always)]
    fn start_with(&mut self, query: &[u8], len: usize) {
        self.clear();
        self.extend_from_slice(query.get(..len).unwrap_or(query));
    }

    #[inline(always)]
    fn append_array<const N: usize>(&mut self, bytes: &[u8; N], len: usize) {
        self.extend_from_slice(bytes.get(..len).unwrap_or(bytes));
    }

    #[inline(always)]
    fn append(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    #[inline(always)]
    fn overwrite<const N: usize>(&mut self, offset: usize, bytes: &[u8; N]) {
        if let Some(target) = self
            .get_mut(offset..)
            .and_then(|rest| rest.first_chunk_mut::<N>())
        {
            *target = *bytes;
        }
    }

    #[inline(always)]
    fn written(&self) -> usize {
        self.len()
    }
}

/// A UDP worker's reply buffer: [`UDP_REPLY_MAX`] bytes and the length of
/// the reply in them.
pub struct UdpReply {
    bytes: Box<[u8; UDP_REPLY_MAX]>,
    /// Bytes of the reply; `usize::MAX` after an overflow.
    len: usize,
    /// Where writers that need a `Vec` (the general path) write, before
    /// their reply is copied into `bytes`.
    scratch: Vec<u8>,
}

/// `UdpReply::len` of a reply that did not fit.
const OVERFLOWED: usize = usize::MAX;

impl UdpReply {
    /// An empty reply buffer.
    pub fn new() -> Self {
        Self {
            bytes: Box::new([0; UDP_REPLY_MAX]),
            len: 0,
            // Sized for any UDP reply up front: the query path then never
            // allocates.
            scratch: Vec::with_capacity(UDP_REPLY_MAX),
        }
    }

    /// Makes the reply what `write` appends to an empty `Vec`, if it
    /// returns something and the reply fits; `None` otherwise.
    pub fn write_with<T>(&mut self, write: impl FnOnce(&mut Vec<u8>) -> Option<T>) -> Option<T> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let written = write(&mut scratch);
        let fits = self.set(&scratch);
        self.scratch = scratch;
        written.filter(|_| fits)
    }

    /// Makes the reply a copy of `reply`; false (and empty) if it is longer
    /// than the buffer.
    fn set(&mut self, reply: &[u8]) -> bool {
        match self.bytes.get_mut(..reply.len()) {
            Some(target) => {
                target.copy_from_slice(reply);
                self.len = reply.len();
                true
            }
            None => {
                self.len = 0;
                false
            }
        }
    }

    /// The reply's bytes (empty after an overflow).
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }

    /// The reply's bytes, to change in place (empty after an overflow).
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.bytes.get_mut(..self.len).unwrap_or_default()
    }

    /// Shortens the reply to `len` bytes.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

impl Default for UdpReply {
    fn default() -> Self {
        Self::new()
    }
}

impl AsRef<[u8]> for UdpReply {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl ReplyBuffer for UdpReply {
    #[inline(always)]
    fn start_with(&mut self, query: &[u8], len: usize) {
        self.len = 0;
        if len <= SHORT_QUESTION
            && let (Some(source), Some(target)) = (
                query.first_chunk::<SHORT_QUESTION>(),
                self.bytes.first_chunk_mut::<SHORT_QUESTION>(),
            )
        {
            // Sixteen bytes at a time: a whole-array copy of this size
            // becomes a call to `memcpy`.
            let (sources, _) = source.as_chunks::<16>();
            let (targets, _) = target.as_chunks_mut::<16>();
            for (target, source) in targets.iter_mut().zip(sources) {
                *target = u128::from_ne_bytes(*source).to_ne_bytes();
            }
            self.len = len;
        } else {
            self.append(query.get(..len).unwrap_or(query));
        }
    }

    #[inline(always)]
    fn append_array<const N: usize>(&mut self, bytes: &[u8; N], len: usize) {
        match self
            .bytes
            .get_mut(self.len..)
            .and_then(|rest| rest.first_chunk_mut::<N>())
        {
            Some(target) => {
                *target = *bytes;
                self.len += len.min(N);
            }
            // Near the end of the buffer: an exact copy, if it fits.
            None => self.append(bytes.get(..len).unwrap_or(bytes)),
        }
    }

    #[inline(always)]
    fn append(&mut self, bytes: &[u8]) {
        let end = self.len.saturating_add(bytes.len());
        match self.bytes.get_mut(self.len..end) {
            Some(target) => {
                target.copy_from_slice(bytes);
                self.len = end;
            }
            None => self.len = OVERFLOWED,
        }
    }

    #[inline(always)]
    fn overwrite<const N: usize>(&mut self, offset: usize, bytes: &[u8; N]) {
        if let Some(target) = self
            .as_bytes_mut()
            .get_mut(offset..)
            .and_then(|rest| rest.first_chunk_mut::<N>())
        {
            *target = *bytes;
        }
    }

    #[inline(always)]
    fn written(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both kinds of buffer hold the same bytes after the same writes.
    fn write_all<R: ReplyBuffer>(out: &mut R, query: &[u8], len: usize) {
        out.start_with(query, len);
        out.append_array(&[1, 2, 3, 4, 5, 6, 7, 8], 3);
        out.append(&[9; 20]);
        out.overwrite(2, &[0xaa, 0xbb]);
        out.append_array(&[7u8; 35], 35);
    }

    #[test]
    fn a_udp_reply_holds_what_a_vec_holds() {
        let long_query: Vec<u8> = (0..200u8).collect();
        for len in [12, 40, 64, 65, 150] {
            // The query as sent, and inside a larger receive buffer.
            for query in [&long_query[..len], &long_query[..]] {
                let mut vec = Vec::new();
                let mut udp = UdpReply::new();
                write_all(&mut vec, query, len);
                write_all(&mut udp, query, len);
                assert_eq!(udp.as_bytes(), &vec[..], "query of {len}");
                assert_eq!(udp.written(), vec.len());
            }
        }
    }

    #[test]
    fn a_udp_reply_that_does_not_fit_reads_as_overflowed() {
        let mut udp = UdpReply::new();
        udp.start_with(&[0; 12], 12);
        udp.append(&vec![5; UDP_REPLY_MAX - 20]);
        // Within the buffer, but too close to its end for a whole-array copy.
        udp.append_array(&[6; 16], 4);
        assert_eq!(udp.written(), UDP_REPLY_MAX - 4);
        udp.append_array(&[6; 16], 16);
        assert_eq!(udp.written(), OVERFLOWED);
        assert!(udp.as_bytes().is_empty());
        udp.append(&[1]);
        assert_eq!(udp.written(), OVERFLOWED);
        assert!(udp.set(&[1, 2, 3]));
        assert_eq!(udp.as_bytes(), &[1, 2, 3]);
        assert!(!udp.set(&vec![0; UDP_REPLY_MAX + 1]));
        assert!(udp.as_bytes().is_empty());
        let written = udp.write_with(|v| {
            v.extend_from_slice(&[4, 5]);
            Some(v.len())
        });
        assert_eq!(written, Some(2));
        assert_eq!(udp.as_bytes(), &[4, 5]);
        let too_long = udp.write_with(|v| {
            v.resize(UDP_REPLY_MAX + 1, 0);
            Some(v.len())
        });
        assert_eq!(too_long, None);
        assert!(udp.as_bytes().is_empty());
    }
}
