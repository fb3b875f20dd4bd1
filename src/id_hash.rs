//! A hasher for maps keyed by small integers that cannot be chosen to
//! collide in numbers: the library's own connection handles (a counter)
//! and stream IDs (quiche lets a peer have only so many streams open, so
//! a map of them stays as small as that limit). One multiply where
//! std's SipHash costs a few hundred instructions a lookup, several times
//! per request. Maps keyed by what a peer picks freely (connection IDs)
//! keep SipHash and its random keys.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used by u64 keys; any other key still hashes correctly.
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing: the key's bits spread over the whole word,
        // whose top bits hashbrown uses as its tag.
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A `HashMap` keyed by a library-chosen or peer-bounded integer.
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_spread_over_the_tag_bits() {
        // Client bidi stream IDs (0, 4, 8, ...) must not share hashbrown's
        // 7-bit tag (the hash's top bits), or every probe compares keys.
        let tags: std::collections::HashSet<u64> = (0..128u64)
            .map(|i| {
                let mut h = IdHasher::default();
                h.write_u64(i * 4);
                h.finish() >> 57
            })
            .collect();
        assert!(tags.len() > 64, "{} distinct tags of 128 keys", tags.len());
    }

    #[test]
    fn a_map_finds_what_it_holds() {
        let mut m: IdMap<u64, u64> = IdMap::default();
        for i in 0..1000 {
            m.insert(i * 4, i);
        }
        assert!((0..1000).all(|i| m.get(&(i * 4)) == Some(&i)));
        assert!(m.get(&1).is_none());
    }
}
