//! Connection-ID generation: the one source every CID a server issues
//! comes from (its first SCID, every spare one, a Retry's SCID), set by
//! the host as configuration ([`CidSource`]).
//!
//! Upstream's `gen_cid` opens `/dev/urandom` on every call and never closes
//! it (one descriptor leaked per retry); we draw from BoringSSL's CSPRNG,
//! which keeps no descriptor per call.

use std::fmt;

use crate::quic_lb::{self, Generator, NonceSpaceExhausted, Octets};
use crate::LOCAL_CONN_ID_LEN;

pub use crate::crypto::random_bytes;

/// A fresh random connection ID of our own length.
pub fn gen_cid() -> [u8; LOCAL_CONN_ID_LEN] {
    let mut cid = [0; LOCAL_CONN_ID_LEN];
    random_bytes(&mut cid);
    cid
}

/// Where a server's connection IDs come from.
///
/// - [`CidSource::Random`] without a worker: 16 random bytes, upstream's
///   `LOCAL_CONN_ID_LEN` (the default, as before any layout existed).
/// - [`CidSource::Random`] with a worker: the same, with the worker's
///   index in the five low bits of the first octet, for the kernel's
///   steering program (see `steer`).
/// - [`CidSource::QuicLb`]: QUIC-LB CIDs (draft-ietf-quic-load-balancers-21)
///   carrying the server ID, plaintext or encrypted, with the worker (if
///   any) in the first octet (see `quic_lb`).
///
/// Every CID of one source has the same length ([`CidSource::len`]).
#[derive(Clone)]
pub enum CidSource {
    Random { worker: Option<u8> },
    QuicLb(Generator),
}

impl Default for CidSource {
    fn default() -> Self {
        CidSource::Random { worker: None }
    }
}

impl CidSource {
    /// A QUIC-LB layout: `config_id` 0..=6, `server_id` 1..=15 octets, a
    /// nonce of `nonce_len` octets (4..=18, server ID and nonce at most 19
    /// together), encrypted under `key` if given, and `worker` (0..=31) in
    /// the first octet if given.
    pub fn quic_lb(config_id: u8, server_id: &[u8], nonce_len: usize, key: Option<[u8; quic_lb::KEY_LEN]>,
                   worker: Option<u8>) -> Result<CidSource, String> {
        let config = quic_lb::Config::new(config_id, server_id, nonce_len, key).map_err(|e| e.to_string())?;
        let generator = Generator::new(config, worker).map_err(|e| e.to_string())?;
        Ok(CidSource::QuicLb(generator))
    }

    /// Random CIDs naming `worker` (0..=31) in their first octet.
    pub fn random_for_worker(worker: u8) -> Result<CidSource, String> {
        if worker > quic_lb::LOW_BITS_MASK {
            return Err(format!("worker index {worker} does not fit in five bits"));
        }
        Ok(CidSource::Random { worker: Some(worker) })
    }

    /// The same layout for another worker (a fresh nonce counter: each
    /// worker keeps its own, in disjoint nonce spaces).
    pub fn for_worker(&self, worker: u8) -> Result<CidSource, String> {
        match self {
            CidSource::Random { .. } => CidSource::random_for_worker(worker),
            CidSource::QuicLb(g) => {
                Ok(CidSource::QuicLb(Generator::new(g.config().clone(), Some(worker)).map_err(|e| e.to_string())?))
            }
        }
    }

    /// The length of every CID this source makes.
    pub fn len(&self) -> usize {
        match self {
            CidSource::Random { .. } => LOCAL_CONN_ID_LEN,
            CidSource::QuicLb(g) => g.cid_len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The worker index written into each CID, if any.
    pub fn worker(&self) -> Option<u8> {
        match self {
            CidSource::Random { worker } => *worker,
            CidSource::QuicLb(g) => g.worker(),
        }
    }

    /// The next connection ID. Fails only when a keyed QUIC-LB layout has
    /// used every nonce of its space (the key must be replaced).
    pub fn next(&mut self) -> Result<Octets, NonceSpaceExhausted> {
        match self {
            CidSource::Random { worker } => {
                let mut cid = gen_cid();
                if let Some(w) = worker {
                    cid[0] = (cid[0] & !quic_lb::LOW_BITS_MASK) | *w;
                }
                Ok(Octets::from_slice(&cid).expect("16 octets"))
            }
            CidSource::QuicLb(g) => g.next_cid(),
        }
    }
}

/// One line for the log and the examples: what the CIDs carry (never the
/// key).
impl fmt::Display for CidSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidSource::Random { worker } => {
                write!(f, "random {LOCAL_CONN_ID_LEN}-octet connection IDs")?;
                if let Some(w) = worker {
                    write!(f, ", worker {w} in the first octet's low 5 bits")?;
                }
                Ok(())
            }
            CidSource::QuicLb(g) => {
                let c = g.config();
                let l = c.layout();
                write!(f, "QUIC-LB connection IDs of {} octets: config ID {}, server ID ", c.cid_len(),
                       l.config_id())?;
                for b in c.server_id() {
                    write!(f, "{b:02x}")?;
                }
                let mode = match l.mode() {
                    quic_lb::Mode::Plaintext => "plaintext",
                    quic_lb::Mode::SinglePass => "encrypted (single-pass AES-128)",
                    quic_lb::Mode::FourPass => "encrypted (four-pass)",
                };
                write!(f, " ({} octets), nonce {} octets, {mode}", l.server_id_len(), l.nonce_len())?;
                match g.worker() {
                    Some(w) => write!(f, ", worker {w} in the first octet's low 5 bits"),
                    None => write!(f, ", random low bits in the first octet"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cids_are_random_and_full_length() {
        let a = gen_cid();
        let b = gen_cid();
        assert_ne!(a, b);
        assert_ne!(a, [0; LOCAL_CONN_ID_LEN]);
    }

    #[test]
    fn gen_cid_keeps_no_descriptor() {
        // Open descriptors below 4096, counted with fcntl (no /proc off
        // Linux).
        // SAFETY: F_GETFD on any number only asks whether it is open.
        let count = || (0..4096).filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1).count();
        let before = count();
        for _ in 0..1000 {
            gen_cid();
        }
        // Other tests in this process may open a few files meanwhile; a
        // descriptor per call (upstream's gen_cid) would add a thousand.
        assert!(count() < before + 10, "descriptors grew from {before} to {}", count());
    }

    #[test]
    fn the_default_source_is_upstreams_random_16_octets() {
        let mut s = CidSource::default();
        assert_eq!(s.len(), 16);
        assert_eq!(s.worker(), None);
        let (a, b) = (s.next().unwrap(), s.next().unwrap());
        assert_eq!((a.len(), b.len()), (16, 16));
        assert_ne!(a, b);
        assert_eq!(s.to_string(), "random 16-octet connection IDs");
    }

    #[test]
    fn random_cids_of_a_worker_name_it_and_stay_random_otherwise() {
        let mut s = CidSource::random_for_worker(5).unwrap();
        let mut firsts = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let c = s.next().unwrap();
            assert_eq!(crate::steer::worker_of(&c), Some(5));
            firsts.insert(c[0] >> 5);
        }
        assert!(firsts.len() > 1, "the top three bits stay random");
        assert!(CidSource::random_for_worker(32).is_err());
    }

    #[test]
    fn quic_lb_sources_decode_to_their_server_id_for_every_worker() {
        for key in [None, Some([7u8; 16])] {
            for (sid, nonce) in [(&[0xab, 0xcd][..], 14), (&[1, 2, 3][..], 6), (&[9; 15][..], 4)] {
                let base = CidSource::quic_lb(2, sid, nonce, key, None).unwrap();
                let layout = match &base {
                    CidSource::QuicLb(g) => g.config().layout().clone(),
                    _ => unreachable!(),
                };
                for w in [0u8, 1, 31] {
                    let mut s = base.for_worker(w).unwrap();
                    assert_eq!(s.worker(), Some(w));
                    for _ in 0..20 {
                        let c = s.next().unwrap();
                        assert_eq!(c.len(), 1 + sid.len() + nonce);
                        assert_eq!(c.len(), s.len());
                        assert_eq!(crate::steer::worker_of(&c), Some(w));
                        assert_eq!(&*layout.decode(&c).unwrap().server_id, sid);
                    }
                }
            }
        }
        assert!(CidSource::quic_lb(7, &[1], 8, None, None).is_err());
        assert!(CidSource::quic_lb(0, &[1; 16], 8, None, None).is_err());
        assert!(CidSource::quic_lb(0, &[1], 3, None, None).is_err());
        assert!(CidSource::quic_lb(0, &[1], 8, None, Some(32)).is_err());
    }

    #[test]
    fn the_description_names_the_layout_but_never_the_key() {
        let s = CidSource::quic_lb(1, &[0x0a, 0x0b], 14, Some([0x5a; 16]), Some(3)).unwrap();
        let d = s.to_string();
        assert_eq!(d, "QUIC-LB connection IDs of 17 octets: config ID 1, server ID 0a0b (2 octets), nonce 14 \
                       octets, encrypted (single-pass AES-128), worker 3 in the first octet's low 5 bits");
        assert!(!d.contains("5a5a"));
        let p = CidSource::quic_lb(0, &[0x0a], 8, None, None).unwrap().to_string();
        assert!(p.contains("plaintext") && p.contains("random low bits"), "{p}");
    }
}
