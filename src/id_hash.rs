//! Hashers for the library's hot maps, where std's SipHash costs a few
//! hundred instructions a lookup, once or more per datagram or request.
//!
//! - [`IdMap`]: keys that are small integers and cannot be chosen to
//!   collide in numbers: the library's own connection handles (a counter)
//!   and stream IDs (quiche lets a peer have only so many streams open, so
//!   a map of them stays as small as that limit). One multiply and a fold.
//! - [`CidMap`]: connection IDs the server chose itself (random bytes, or
//!   QUIC-LB IDs whose nonce is random or encrypted). A peer looks keys up
//!   but never inserts one, so it cannot gather keys that collide; a
//!   random seed per map keeps even the layout unknown. One multiply per
//!   8 bytes and a finalizer, so the low bits (hashbrown's bucket) depend
//!   on all of them.
//!
//! Maps keyed by what a peer picks freely (a client's first DCID, the
//! tombstones of those) keep SipHash and its random keys.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// Fibonacci hashing's multiplier (2^64 / the golden ratio): a key's bits
/// spread over the whole word.
const MIX: u64 = 0x9e37_79b9_7f4a_7c15;

#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // The top bits are hashbrown's tag; the bucket index is the low
        // ones, which a product only gets from the key's low bits (stream
        // IDs, multiples of 4, would use a quarter of the buckets): the
        // high half folded down gives them the rest.
        self.0 ^ (self.0 >> 32)
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
        self.0 = (self.0 ^ n).wrapping_mul(MIX);
    }
}

/// A `HashMap` keyed by a library-chosen or peer-bounded integer.
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

pub struct CidHasher(u64);

impl Hasher for CidHasher {
    fn finish(&self) -> u64 {
        // The multiplies carry each byte only upwards, and the bucket index
        // is the low bits: a finalizer (MurmurHash3's) mixes every bit
        // into every other.
        let mut h = self.0;
        h = (h ^ (h >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        h = (h ^ (h >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(MIX);
    }
}

/// Builds [`CidHasher`]s from one random seed per map.
#[derive(Clone)]
pub struct CidHashSeed(u64);

impl Default for CidHashSeed {
    fn default() -> CidHashSeed {
        // std's RandomState: keys from the OS's randomness.
        CidHashSeed(std::collections::hash_map::RandomState::new().build_hasher().finish())
    }
}

impl BuildHasher for CidHashSeed {
    type Hasher = CidHasher;
    fn build_hasher(&self) -> CidHasher {
        CidHasher(self.0)
    }
}

/// A `HashMap` keyed by connection IDs the library issued.
pub type CidMap<K, V> = HashMap<K, V, CidHashSeed>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash of client bidi stream ID `i * 4`.
    fn stream_id_hash(i: u64) -> u64 {
        let mut h = IdHasher::default();
        h.write_u64(i * 4);
        h.finish()
    }

    #[test]
    fn stream_ids_spread_over_the_tag_bits() {
        // Client bidi stream IDs (0, 4, 8, ...) must not share hashbrown's
        // 7-bit tag (the hash's top bits), or every probe compares keys.
        let tags: std::collections::HashSet<u64> = (0..128u64).map(|i| stream_id_hash(i) >> 57).collect();
        assert!(tags.len() > 64, "{} distinct tags of 128 keys", tags.len());
    }

    /// QUIC-LB-shaped IDs (a fixed first octet and server ID, then a
    /// counter or random nonce) still spread over buckets (the low bits)
    /// and tags (the top 7).
    #[test]
    fn connection_ids_with_a_fixed_prefix_spread_over_buckets_and_tags() {
        let seed = CidHashSeed::default();
        for random in [false, true] {
            let seeds = std::collections::hash_map::RandomState::new();
            let (mut buckets, mut tags) = (std::collections::HashSet::new(), std::collections::HashSet::new());
            for i in 0..1024u64 {
                let nonce = if random { seeds.hash_one(i) } else { i };
                let mut cid = [0u8; 16];
                cid[..5].copy_from_slice(&[0x07, 0xab, 0xcd, 0xef, 0x01]);
                cid[5..13].copy_from_slice(&nonce.to_be_bytes());
                let key = crate::table::Cid::from_slice(&cid).unwrap();
                let h = seed.hash_one(key);
                buckets.insert(h & 1023);
                tags.insert(h >> 57);
            }
            // 1024 keys thrown uniformly at 1024 buckets fill about 647.
            assert!(buckets.len() > 560, "random {random}: {} of 1024 buckets", buckets.len());
            assert!(tags.len() > 110, "random {random}: {} of 128 tags", tags.len());
        }
    }

    #[test]
    fn a_cid_map_finds_what_it_holds_and_seeds_differ() {
        let mut m: CidMap<crate::table::Cid, u64> = CidMap::default();
        let cid = |i: u64| crate::table::Cid::from_slice(&[&[9u8; 4][..], &i.to_le_bytes()[..]].concat()).unwrap();
        for i in 0..1000 {
            m.insert(cid(i), i);
        }
        assert!((0..1000).all(|i| m.get(&cid(i)) == Some(&i)));
        assert!(m.get(&cid(1000)).is_none());
        let (a, b) = (CidHashSeed::default(), CidHashSeed::default());
        assert_ne!(a.hash_one(cid(1)), b.hash_one(cid(1)), "each map has its own seed");
    }

    /// Client bidi stream IDs (multiples of 4) reach every bucket, not a
    /// quarter of them.
    #[test]
    fn stream_ids_spread_over_the_buckets() {
        let buckets: std::collections::HashSet<u64> = (0..1024u64).map(|i| stream_id_hash(i) & 1023).collect();
        assert!(buckets.len() > 560, "{} of 1024 buckets", buckets.len());
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
