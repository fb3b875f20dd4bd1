//! Address validation tokens for stateless retry (`mint_token`,
//! `validate_token`).
//!
//! Upstream's token is `"quiche" || raw sockaddr || original DCID` with no
//! authentication: anyone can forge one for any address. Ours is
//!
//! ```text
//! 0x01 | issued_ms (u64 BE) | odcid_len (u8) | odcid | HMAC-SHA256
//! ```
//!
//! where the MAC covers the body above, the client's IP and port, and the
//! connection ID the Retry told the client to use next, under the server's
//! token key (see `secrets`: random at start-up unless the host shares one
//! between servers). A token is good for `lifetime` after issue, under the
//! current key or, during a rotation, the previous one.

use std::net::SocketAddr;
use std::time::Duration;

use crate::crypto::hmac_sha256;
use crate::secrets::KeyPair;

const FORMAT: u8 = 1;
const TAG_LEN: usize = 32;
const MAX_CID_LEN: usize = quiche::MAX_CONN_ID_LEN;

/// Default token lifetime: enough for a Retry round trip on a slow path.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(10);

/// Longest token we mint.
pub const MAX_TOKEN_LEN: usize = 1 + 8 + 1 + MAX_CID_LEN + TAG_LEN;

/// Why a token was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Too short, too long, or not our format.
    Malformed,
    /// The MAC does not match: forged, altered, or for another address or
    /// connection ID.
    BadTag,
    /// Older than the lifetime (or from the future).
    Expired,
}

/// How long tokens live; the keys come with each call (they may be
/// shared and rotated by other threads).
pub struct TokenPolicy {
    lifetime: Duration,
}

fn tag(key: &[u8; 32], body: &[u8], peer: &SocketAddr, retry_scid: &[u8]) -> [u8; TAG_LEN] {
    let mut msg = Vec::with_capacity(body.len() + 19 + retry_scid.len());
    msg.extend_from_slice(body);
    match peer {
        SocketAddr::V4(a) => msg.extend_from_slice(&a.ip().octets()),
        SocketAddr::V6(a) => msg.extend_from_slice(&a.ip().octets()),
    }
    msg.extend_from_slice(&peer.port().to_be_bytes());
    msg.extend_from_slice(retry_scid);
    hmac_sha256(key, &msg)
}

impl TokenPolicy {
    pub fn new(lifetime: Duration) -> Self {
        TokenPolicy { lifetime }
    }

    pub fn set_lifetime(&mut self, lifetime: Duration) {
        self.lifetime = lifetime;
    }

    /// `mint_token`: a token for `peer` under `key` that remembers `odcid`
    /// (the client's first destination CID) and is valid only together
    /// with `retry_scid`.
    pub fn mint_token(&self, key: &[u8; 32], odcid: &[u8], peer: &SocketAddr, retry_scid: &[u8]) -> Vec<u8> {
        mint_at(key, odcid, peer, retry_scid, now_ms())
    }

    /// `validate_token`: the original destination CID if `token` was minted
    /// under one of `keys` for `peer` and `dcid`, within its lifetime.
    pub fn validate_token(&self, keys: &KeyPair, token: &[u8], peer: &SocketAddr, dcid: &[u8])
                          -> Result<Vec<u8>, TokenError> {
        self.validate_at(keys, token, peer, dcid, now_ms())
    }

    fn validate_at(&self, keys: &KeyPair, token: &[u8], peer: &SocketAddr, dcid: &[u8], now: u64)
                   -> Result<Vec<u8>, TokenError> {
        if token.len() < 1 + 8 + 1 + TAG_LEN || token[0] != FORMAT {
            return Err(TokenError::Malformed);
        }
        let odcid_len = token[9] as usize;
        if odcid_len > MAX_CID_LEN || token.len() != 10 + odcid_len + TAG_LEN {
            return Err(TokenError::Malformed);
        }
        let (body, tag_got) = token.split_at(10 + odcid_len);
        // Both keys are always tried, so the time taken does not say which
        // one a token was minted under.
        let matches = keys.all().fold(false, |ok, k| boring::memcmp::eq(tag_got, &tag(k, body, peer, dcid)) | ok);
        if !matches {
            return Err(TokenError::BadTag);
        }
        let issued = u64::from_be_bytes(body[1..9].try_into().unwrap());
        let lifetime = self.lifetime.as_millis() as u64;
        if issued > now || now - issued > lifetime {
            return Err(TokenError::Expired);
        }
        Ok(body[10..].to_vec())
    }
}

fn mint_at(key: &[u8; 32], odcid: &[u8], peer: &SocketAddr, retry_scid: &[u8], issued_ms: u64) -> Vec<u8> {
    assert!(odcid.len() <= MAX_CID_LEN);
    let mut token = Vec::with_capacity(MAX_TOKEN_LEN);
    token.push(FORMAT);
    token.extend_from_slice(&issued_ms.to_be_bytes());
    token.push(odcid.len() as u8);
    token.extend_from_slice(odcid);
    let t = tag(key, &token, peer, retry_scid);
    token.extend_from_slice(&t);
    token
}

/// Milliseconds on the monotonic clock (CLOCK_MONOTONIC: system-wide, so
/// a server restarted on the same machine reads the same clock; never
/// moved by NTP or an administrator, unlike the wall clock).
fn now_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> KeyPair {
        KeyPair::random()
    }

    fn policy() -> TokenPolicy {
        TokenPolicy::new(Duration::from_secs(5))
    }

    const ODCID: &[u8] = b"\x01\x02\x03\x04\x05\x06\x07\x08";
    const SCID: &[u8] = b"0123456789abcdef";

    fn peer() -> SocketAddr {
        "127.0.0.1:5555".parse().unwrap()
    }

    #[test]
    fn round_trip() {
        let (p, k) = (policy(), keys());
        let t = p.mint_token(&k.current, ODCID, &peer(), SCID);
        assert!(t.len() <= MAX_TOKEN_LEN);
        assert_eq!(p.validate_token(&k, &t, &peer(), SCID), Ok(ODCID.to_vec()));
    }

    #[test]
    fn other_address_port_or_cid_is_refused() {
        let (p, k) = (policy(), keys());
        let t = p.mint_token(&k.current, ODCID, &peer(), SCID);
        assert_eq!(p.validate_token(&k, &t, &"127.0.0.2:5555".parse().unwrap(), SCID), Err(TokenError::BadTag));
        assert_eq!(p.validate_token(&k, &t, &"127.0.0.1:5556".parse().unwrap(), SCID), Err(TokenError::BadTag));
        assert_eq!(p.validate_token(&k, &t, &peer(), b"fedcba9876543210"), Err(TokenError::BadTag));
    }

    #[test]
    fn altered_truncated_or_foreign_tokens_are_refused() {
        let (p, k) = (policy(), keys());
        let t = p.mint_token(&k.current, ODCID, &peer(), SCID);
        for i in 0..t.len() {
            let mut bad = t.clone();
            bad[i] ^= 0x40;
            assert!(p.validate_token(&k, &bad, &peer(), SCID).is_err(), "flip at {i}");
        }
        for n in 0..t.len() {
            assert!(p.validate_token(&k, &t[..n], &peer(), SCID).is_err(), "truncated to {n}");
        }
        // Another process's key (another server start) does not validate it.
        assert_eq!(p.validate_token(&keys(), &t, &peer(), SCID), Err(TokenError::BadTag));
        // An upstream-style token: "quiche" + sockaddr + odcid.
        let mut forged = b"quiche".to_vec();
        forged.extend_from_slice(&[2, 0, 0x15, 0xb3, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        forged.extend_from_slice(ODCID);
        assert!(p.validate_token(&k, &forged, &peer(), SCID).is_err());
    }

    #[test]
    fn tokens_expire() {
        let (p, k) = (policy(), keys());
        let now = now_ms();
        let old = mint_at(&k.current, ODCID, &peer(), SCID, now - 5_001);
        assert_eq!(p.validate_at(&k, &old, &peer(), SCID, now), Err(TokenError::Expired));
        let fresh = mint_at(&k.current, ODCID, &peer(), SCID, now - 4_000);
        assert!(p.validate_at(&k, &fresh, &peer(), SCID, now).is_ok());
        let future = mint_at(&k.current, ODCID, &peer(), SCID, now + 60_000);
        assert_eq!(p.validate_at(&k, &future, &peer(), SCID, now), Err(TokenError::Expired));
    }

    #[test]
    fn a_rotation_keeps_tokens_of_the_previous_key_until_it_goes() {
        let p = policy();
        let old = keys();
        let t = p.mint_token(&old.current, ODCID, &peer(), SCID);
        // Step 1 of a fleet's rotation: the new key is accepted, not used.
        let next = keys().current;
        let step1 = KeyPair { current: old.current, previous: Some(next) };
        assert!(p.validate_token(&step1, &t, &peer(), SCID).is_ok());
        let t_new = p.mint_token(&next, ODCID, &peer(), SCID);
        assert!(p.validate_token(&step1, &t_new, &peer(), SCID).is_ok(), "a server already on step 2 minted it");
        // Step 2: the new key mints; the old one is still accepted.
        let step2 = KeyPair { current: next, previous: Some(old.current) };
        assert!(p.validate_token(&step2, &t, &peer(), SCID).is_ok());
        // Done: the old key is gone, and so are its tokens.
        let done = KeyPair { current: next, previous: None };
        assert_eq!(p.validate_token(&done, &t, &peer(), SCID), Err(TokenError::BadTag));
        assert!(p.validate_token(&done, &t_new, &peer(), SCID).is_ok());
    }
}
