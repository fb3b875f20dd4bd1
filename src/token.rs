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
//! connection ID the Retry told the client to use next, under a key drawn
//! from the CSPRNG at start-up. A token is good for `lifetime` after issue.

use std::net::SocketAddr;
use std::time::Duration;

use crate::crypto::{hmac_sha256, random_bytes};

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

/// The per-process token key and policy.
pub struct TokenKey {
    key: [u8; 32],
    lifetime: Duration,
}

impl TokenKey {
    /// A key drawn from the CSPRNG.
    pub fn new(lifetime: Duration) -> Self {
        let mut key = [0; 32];
        random_bytes(&mut key);
        TokenKey { key, lifetime }
    }

    pub fn set_lifetime(&mut self, lifetime: Duration) {
        self.lifetime = lifetime;
    }

    fn tag(&self, body: &[u8], peer: &SocketAddr, retry_scid: &[u8]) -> [u8; TAG_LEN] {
        let mut msg = Vec::with_capacity(body.len() + 19 + retry_scid.len());
        msg.extend_from_slice(body);
        match peer {
            SocketAddr::V4(a) => msg.extend_from_slice(&a.ip().octets()),
            SocketAddr::V6(a) => msg.extend_from_slice(&a.ip().octets()),
        }
        msg.extend_from_slice(&peer.port().to_be_bytes());
        msg.extend_from_slice(retry_scid);
        hmac_sha256(&self.key, &msg)
    }

    /// `mint_token`: a token for `peer` that remembers `odcid` (the client's
    /// first destination CID) and is valid only together with `retry_scid`.
    pub fn mint_token(&self, odcid: &[u8], peer: &SocketAddr, retry_scid: &[u8]) -> Vec<u8> {
        self.mint_at(odcid, peer, retry_scid, now_ms())
    }

    fn mint_at(&self, odcid: &[u8], peer: &SocketAddr, retry_scid: &[u8], issued_ms: u64) -> Vec<u8> {
        assert!(odcid.len() <= MAX_CID_LEN);
        let mut token = Vec::with_capacity(MAX_TOKEN_LEN);
        token.push(FORMAT);
        token.extend_from_slice(&issued_ms.to_be_bytes());
        token.push(odcid.len() as u8);
        token.extend_from_slice(odcid);
        let tag = self.tag(&token, peer, retry_scid);
        token.extend_from_slice(&tag);
        token
    }

    /// `validate_token`: the original destination CID if `token` was minted
    /// by this key for `peer` and `dcid`, within its lifetime.
    pub fn validate_token(&self, token: &[u8], peer: &SocketAddr, dcid: &[u8]) -> Result<Vec<u8>, TokenError> {
        self.validate_at(token, peer, dcid, now_ms())
    }

    fn validate_at(&self, token: &[u8], peer: &SocketAddr, dcid: &[u8], now: u64) -> Result<Vec<u8>, TokenError> {
        if token.len() < 1 + 8 + 1 + TAG_LEN || token[0] != FORMAT {
            return Err(TokenError::Malformed);
        }
        let odcid_len = token[9] as usize;
        if odcid_len > MAX_CID_LEN || token.len() != 10 + odcid_len + TAG_LEN {
            return Err(TokenError::Malformed);
        }
        let (body, tag) = token.split_at(10 + odcid_len);
        if !boring::memcmp::eq(tag, &self.tag(body, peer, dcid)) {
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

    fn key() -> TokenKey {
        TokenKey::new(Duration::from_secs(5))
    }

    const ODCID: &[u8] = b"\x01\x02\x03\x04\x05\x06\x07\x08";
    const SCID: &[u8] = b"0123456789abcdef";

    fn peer() -> SocketAddr {
        "127.0.0.1:5555".parse().unwrap()
    }

    #[test]
    fn round_trip() {
        let k = key();
        let t = k.mint_token(ODCID, &peer(), SCID);
        assert!(t.len() <= MAX_TOKEN_LEN);
        assert_eq!(k.validate_token(&t, &peer(), SCID), Ok(ODCID.to_vec()));
    }

    #[test]
    fn other_address_port_or_cid_is_refused() {
        let k = key();
        let t = k.mint_token(ODCID, &peer(), SCID);
        assert_eq!(k.validate_token(&t, &"127.0.0.2:5555".parse().unwrap(), SCID), Err(TokenError::BadTag));
        assert_eq!(k.validate_token(&t, &"127.0.0.1:5556".parse().unwrap(), SCID), Err(TokenError::BadTag));
        assert_eq!(k.validate_token(&t, &peer(), b"fedcba9876543210"), Err(TokenError::BadTag));
    }

    #[test]
    fn altered_truncated_or_foreign_tokens_are_refused() {
        let k = key();
        let t = k.mint_token(ODCID, &peer(), SCID);
        for i in 0..t.len() {
            let mut bad = t.clone();
            bad[i] ^= 0x40;
            assert!(k.validate_token(&bad, &peer(), SCID).is_err(), "flip at {i}");
        }
        for n in 0..t.len() {
            assert!(k.validate_token(&t[..n], &peer(), SCID).is_err(), "truncated to {n}");
        }
        // Another process's key (another server start) does not validate it.
        assert_eq!(key().validate_token(&t, &peer(), SCID), Err(TokenError::BadTag));
        // An upstream-style token: "quiche" + sockaddr + odcid.
        let mut forged = b"quiche".to_vec();
        forged.extend_from_slice(&[2, 0, 0x15, 0xb3, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        forged.extend_from_slice(ODCID);
        assert!(k.validate_token(&forged, &peer(), SCID).is_err());
    }

    #[test]
    fn tokens_expire() {
        let k = key();
        let now = now_ms();
        let old = k.mint_at(ODCID, &peer(), SCID, now - 5_001);
        assert_eq!(k.validate_at(&old, &peer(), SCID, now), Err(TokenError::Expired));
        let fresh = k.mint_at(ODCID, &peer(), SCID, now - 4_000);
        assert!(k.validate_at(&fresh, &peer(), SCID, now).is_ok());
        let future = k.mint_at(ODCID, &peer(), SCID, now + 60_000);
        assert_eq!(k.validate_at(&future, &peer(), SCID, now), Err(TokenError::Expired));
    }
}
