//! One worker's source of QUIC-LB connection IDs, with the draft's nonce
//! counter (draft-ietf-quic-load-balancers-21 §9.6) for keyed layouts.

use super::{Config, EncodeError, FirstOctet, NonceSpaceExhausted, Octets, LOW_BITS_MASK};
use crate::crypto::random_bytes;

// ---------------------------------------------------------------------------
// Generator: one worker's source of CIDs
// ---------------------------------------------------------------------------

/// The draft's nonce counter (§9.6): starts at a random value, counts up
/// (big-endian, wrapping), and reports exhaustion when it would come back to
/// where it started. With a worker index the top five bits of the nonce
/// hold it and only the bits below count, so workers sharing a server ID
/// and key draw from disjoint nonce spaces.
#[derive(Debug, Clone)]
pub(super) struct NonceCounter {
    pub(super) next: Octets,
    pub(super) start: Octets,
    /// Mask of the bits of the first nonce octet that count (0xff without
    /// a worker, 0x07 with one).
    first_mask: u8,
    exhausted: bool,
}

impl NonceCounter {
    pub(super) fn new(len: usize, worker: Option<u8>) -> NonceCounter {
        let mut start = Octets::zeroed(len);
        random_bytes(start.as_mut_slice());
        let first_mask = match worker {
            None => 0xff,
            Some(w) => {
                let n = start.as_mut_slice();
                n[0] = (w & LOW_BITS_MASK) << 3 | (n[0] & 0x07);
                0x07
            }
        };
        NonceCounter { next: start, start, first_mask, exhausted: false }
    }

    pub(super) fn take(&mut self) -> Result<Octets, NonceSpaceExhausted> {
        if self.exhausted {
            return Err(NonceSpaceExhausted);
        }
        let current = self.next;
        let n = self.next.as_mut_slice();
        let mut carry = true;
        for b in n[1..].iter_mut().rev() {
            let (v, c) = b.overflowing_add(carry as u8);
            *b = v;
            carry = c;
            if !carry {
                break;
            }
        }
        if carry {
            let fixed = n[0] & !self.first_mask;
            n[0] = fixed | (n[0].wrapping_add(1) & self.first_mask);
        }
        self.exhausted = self.next == self.start;
        Ok(current)
    }
}

/// One worker's source of connection IDs for one configuration. Without a
/// key, every nonce is random (the draft requires plaintext nonces to be
/// unlinkable). With a key, nonces come from a counter started at a random
/// value, with the worker index in the nonce's top five bits when there is
/// one; it never repeats a nonce, and reports [`NonceSpaceExhausted`] when
/// the key must be replaced. Keep exactly one generator per worker and
/// configuration.
#[derive(Debug, Clone)]
pub struct Generator {
    config: Config,
    worker: Option<u8>,
    pub(super) counter: Option<NonceCounter>,
}

impl Generator {
    /// `worker`: the index written into every CID's first octet (0..=31),
    /// or `None` for random low bits.
    pub fn new(config: Config, worker: Option<u8>) -> Result<Generator, EncodeError> {
        if let Some(w) = worker {
            if w > LOW_BITS_MASK {
                return Err(EncodeError::Worker(w));
            }
        }
        let counter = config.layout().has_key().then(|| NonceCounter::new(config.layout().nonce_len(), worker));
        Ok(Generator { config, worker, counter })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn worker(&self) -> Option<u8> {
        self.worker
    }

    pub fn cid_len(&self) -> usize {
        self.config.cid_len()
    }

    /// The next connection ID.
    pub fn next_cid(&mut self) -> Result<Octets, NonceSpaceExhausted> {
        let first = self.worker.map_or(FirstOctet::Random, FirstOctet::Worker);
        let cid = match &mut self.counter {
            Some(counter) => {
                let nonce = counter.take()?;
                self.config.encode(&nonce, first)
            }
            None => self.config.generate(first),
        };
        Ok(cid.expect("worker index checked by Generator::new"))
    }
}
