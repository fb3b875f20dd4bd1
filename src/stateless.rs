//! Packets a server sends without any connection state: a Stateless Reset
//! (RFC 9000 §10.3) for a short-header packet of a connection it no longer
//! knows, and an Initial carrying a transport CONNECTION_CLOSE (RFC 9000
//! §10.2.3) to refuse a connection attempt (bad token, overload) without
//! creating a `quiche::Connection` for it. A token bucket ([`RateLimiter`])
//! bounds how often either is sent, so a flood of junk cannot turn the
//! server into a reflector.
//!
//! The Initial is protected here, not by quiche: RFC 9001 §5.2 Initial keys
//! (HKDF over HMAC-SHA256), AES-128-GCM payload protection (§5.3) and AES
//! header protection (§5.4), all on BoringSSL primitives.

use std::time::Instant;

use crate::crypto::{aes_128_block, aes_128_gcm_seal, hmac_sha256, random_bytes};

// ---------------------------------------------------------------------------
// Stateless reset
// ---------------------------------------------------------------------------

/// Domain separation: the reset key must not produce a MAC that means
/// anything to another use of the same key.
const RESET_LABEL: &[u8] = b"quiche-ev stateless reset token\0";

/// Length of a stateless reset token.
pub const RESET_TOKEN_LEN: usize = 16;

/// Smallest Stateless Reset (RFC 9000 §10.3): two fixed bits and at least
/// 38 unpredictable bits (5 bytes) before the 16-byte token. Short-header
/// packets smaller than this are never valid, so peers discard them.
pub const MIN_RESET_LEN: usize = 21;

/// Shortest packet we answer with a reset: the answer must be strictly
/// shorter than what triggered it (§10.3.3, so two stateless endpoints
/// cannot loop) and at least [`MIN_RESET_LEN`].
pub const MIN_TRIGGER_LEN: usize = MIN_RESET_LEN + 1;

/// Largest reset we send. Resets are `trigger - 1` bytes up to this cap:
/// one byte shorter than the trigger is what §10.3 asks for triggers of 43
/// bytes or less (a reset as long as a real packet is indistinguishable
/// from one), and never larger than the trigger also keeps far from the
/// "three times or more larger" amplification limit. Past the cap nothing
/// is gained by sending more bytes.
pub const MAX_RESET_LEN: usize = crate::MAX_DATAGRAM_SIZE;

/// The stateless reset token of connection ID `cid` under `key`:
/// HMAC-SHA256(key, label || cid), first 16 bytes, as the big-endian u128
/// that `quiche::Config::set_stateless_reset_token` and
/// `quiche::Connection::new_scid` take. Anyone holding `key` can recompute
/// it after losing the connection's state; nobody else can predict it.
pub fn reset_token(key: &[u8; 32], cid: &[u8]) -> u128 {
    // On the stack: a CID is at most 20 bytes.
    let mut msg = [0u8; 64];
    let n = RESET_LABEL.len() + cid.len().min(msg.len() - RESET_LABEL.len());
    msg[..RESET_LABEL.len()].copy_from_slice(RESET_LABEL);
    msg[RESET_LABEL.len()..n].copy_from_slice(&cid[..n - RESET_LABEL.len()]);
    let mac = hmac_sha256(key, &msg[..n]);
    let mut token = [0u8; RESET_TOKEN_LEN];
    token.copy_from_slice(&mac[..RESET_TOKEN_LEN]);
    u128::from_be_bytes(token)
}

/// Writes into `out` a Stateless Reset answering a short-header datagram of
/// `trigger_len` bytes, ending in `token`, and returns its length:
/// `min(trigger_len - 1, MAX_RESET_LEN, out.len())`. `None` when that is
/// less than [`MIN_RESET_LEN`] (a trigger under [`MIN_TRIGGER_LEN`] bytes).
pub fn stateless_reset(trigger_len: usize, token: u128, out: &mut [u8]) -> Option<usize> {
    let len = trigger_len.checked_sub(1)?.min(MAX_RESET_LEN).min(out.len());
    if len < MIN_RESET_LEN {
        return None;
    }
    let (head, tail) = out[..len].split_at_mut(len - RESET_TOKEN_LEN);
    random_bytes(head);
    // Short header form (0) with the fixed bit (1); the rest stays random.
    head[0] = 0b0100_0000 | (head[0] & 0b0011_1111);
    tail.copy_from_slice(&token.to_be_bytes());
    Some(len)
}


// ---------------------------------------------------------------------------
// Initial keys (RFC 9001 §5.2)
// ---------------------------------------------------------------------------

/// QUIC version 1.
pub const QUIC_V1: u32 = 0x0000_0001;

/// RFC 9001 §5.2: the version 1 salt for the Initial secret.
const INITIAL_SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
    0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a,
];

const KEY_LEN: usize = 16;
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;
const SAMPLE_LEN: usize = 16;
/// The header-protection sample starts this far after the packet number's
/// first byte, as if the packet number were 4 bytes long (RFC 9001 §5.4.2).
const SAMPLE_OFFSET: usize = 4;

/// HKDF-Extract (RFC 5869 §2.2).
fn hkdf_extract(salt: &[u8], ikm: &[u8]) -> [u8; 32] {
    hmac_sha256(salt, ikm)
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context, into `out`.
fn hkdf_expand_label(secret: &[u8; 32], label: &[u8], out: &mut [u8]) {
    const PREFIX: &[u8] = b"tls13 ";
    let mut info = Vec::with_capacity(4 + PREFIX.len() + label.len());
    info.extend_from_slice(&(out.len() as u16).to_be_bytes());
    info.push((PREFIX.len() + label.len()) as u8);
    info.extend_from_slice(PREFIX);
    info.extend_from_slice(label);
    info.push(0); // empty context
    // HKDF-Expand (RFC 5869 §2.3): T(i) = HMAC(PRK, T(i-1) | info | i).
    let mut block: Vec<u8> = Vec::new();
    for (i, chunk) in out.chunks_mut(32).enumerate() {
        let mut msg = std::mem::take(&mut block);
        msg.extend_from_slice(&info);
        msg.push(i as u8 + 1);
        let t = hmac_sha256(secret, &msg);
        chunk.copy_from_slice(&t[..chunk.len()]);
        block = t.to_vec();
    }
}

/// A packet protection key set.
#[derive(Debug, PartialEq, Eq)]
struct Keys {
    key: [u8; KEY_LEN],
    iv: [u8; IV_LEN],
    hp: [u8; KEY_LEN],
}

impl Keys {
    /// The keys of a traffic secret (RFC 9001 §5.1).
    fn from_secret(secret: &[u8; 32]) -> Keys {
        let mut k = Keys { key: [0; KEY_LEN], iv: [0; IV_LEN], hp: [0; KEY_LEN] };
        hkdf_expand_label(secret, b"quic key", &mut k.key);
        hkdf_expand_label(secret, b"quic iv", &mut k.iv);
        hkdf_expand_label(secret, b"quic hp", &mut k.hp);
        k
    }
}

/// The secret protecting the server's Initial packets of a connection whose
/// client chose `client_dcid` as the Destination Connection ID.
fn server_initial_secret(version: u32, client_dcid: &[u8]) -> Result<[u8; 32], CloseError> {
    if version != QUIC_V1 {
        return Err(CloseError::UnsupportedVersion(version));
    }
    let initial = hkdf_extract(&INITIAL_SALT_V1, client_dcid);
    let mut secret = [0u8; 32];
    hkdf_expand_label(&initial, b"server in", &mut secret);
    Ok(secret)
}

// ---------------------------------------------------------------------------
// Packet protection (RFC 9001 §5.3, §5.4)
// ---------------------------------------------------------------------------

/// Protects a long-header packet in place. `packet` is the header (up to
/// and including the `pn_len`-byte packet number at `pn_offset`), the
/// payload, and `TAG_LEN` bytes of room for the AEAD tag at the end. The
/// payload must be long enough for the header-protection sample.
fn protect(keys: &Keys, packet: &mut [u8], pn_offset: usize, pn_len: usize, pn: u64) -> Result<(), CloseError> {
    let header_len = pn_offset + pn_len;
    let sample_at = pn_offset + SAMPLE_OFFSET;
    if packet.len() < sample_at + SAMPLE_LEN || packet.len() < header_len + TAG_LEN {
        return Err(CloseError::BufferTooShort);
    }
    // AEAD nonce: the IV XORed with the packet number, right-aligned.
    let mut nonce = keys.iv;
    for (n, p) in nonce[IV_LEN - 8..].iter_mut().zip(pn.to_be_bytes()) {
        *n ^= p;
    }
    let tag_at = packet.len() - TAG_LEN;
    let (aad, rest) = packet.split_at_mut(header_len);
    let (payload, tag) = rest.split_at_mut(tag_at - header_len);
    aes_128_gcm_seal(&keys.key, &nonce, aad, payload, tag).map_err(|_| CloseError::Crypto)?;

    let mask = hp_mask(&keys.hp, &packet[sample_at..sample_at + SAMPLE_LEN])?;
    packet[0] ^= mask[0] & 0x0f; // long header: the low four bits
    for (b, m) in packet[pn_offset..header_len].iter_mut().zip(&mask[1..]) {
        *b ^= m;
    }
    Ok(())
}

/// The header-protection mask: AES-ECB of the sample (RFC 9001 §5.4.3).
fn hp_mask(hp: &[u8; KEY_LEN], sample: &[u8]) -> Result<[u8; 5], CloseError> {
    let block = aes_128_block(hp, sample).map_err(|_| CloseError::Crypto)?;
    let mut mask = [0u8; 5];
    mask.copy_from_slice(&block[..5]);
    Ok(mask)
}

// ---------------------------------------------------------------------------
// Initial CONNECTION_CLOSE
// ---------------------------------------------------------------------------

/// Transport error INVALID_TOKEN (RFC 9000 §20.1): the token in an Initial
/// was not accepted.
pub const INVALID_TOKEN: u64 = 0x0b;
/// Transport error CONNECTION_REFUSED (RFC 9000 §20.1).
pub const CONNECTION_REFUSED: u64 = 0x02;

/// Longest reason phrase [`initial_close`] carries.
pub const MAX_REASON_LEN: usize = 128;

/// Packet number length in the close packet (the packet number is 0).
const PN_LEN: usize = 1;
/// Long header (1), fixed bit (1), type Initial (00), packet number length.
const INITIAL_FIRST_BYTE: u8 = 0b1100_0000 | (PN_LEN as u8 - 1);
/// Transport CONNECTION_CLOSE frame type.
const CONNECTION_CLOSE: u8 = 0x1c;
/// The Length field is always written as a 2-byte varint.
const LENGTH_FIELD_LEN: usize = 2;
/// Largest value a QUIC varint holds.
const MAX_VARINT: u64 = (1 << 62) - 1;

/// Largest datagram [`initial_close`] writes: the long header with two
/// 20-byte connection IDs, the frame with an 8-byte error code and the
/// longest reason, and the tag. Far below the 3 × 1200 bytes a server may
/// send to an unvalidated address that sent one Initial (RFC 9000 §8.1).
pub const MAX_CLOSE_LEN: usize = 1 + 4 + 2 * (1 + quiche::MAX_CONN_ID_LEN) + 1 + LENGTH_FIELD_LEN + PN_LEN
    + (1 + 8 + 1 + 2 + MAX_REASON_LEN) + TAG_LEN;

/// Why [`initial_close`] wrote nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum CloseError {
    /// Only QUIC v1's Initial keys are known.
    UnsupportedVersion(u32),
    /// A connection ID longer than 20 bytes, a reason longer than
    /// [`MAX_REASON_LEN`], or an error code past the varint range.
    InvalidInput,
    /// `out` cannot hold the packet ([`MAX_CLOSE_LEN`] always can).
    BufferTooShort,
    /// BoringSSL refused an operation (does not happen with valid keys).
    Crypto,
}

/// Bytes of `v` as a QUIC variable-length integer (RFC 9000 §16).
fn varint_len(v: u64) -> usize {
    match v {
        0..=63 => 1,
        64..=16383 => 2,
        16384..=1_073_741_823 => 4,
        _ => 8,
    }
}

/// Appends to a buffer whose size was checked beforehand.
struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) {
        self.buf[self.at..self.at + b.len()].copy_from_slice(b);
        self.at += b.len();
    }

    fn varint_of_len(&mut self, v: u64, len: usize) {
        let tag = match len {
            1 => 0b00,
            2 => 0b01,
            4 => 0b10,
            _ => 0b11,
        };
        let be = (v | (tag << (8 * len - 2))).to_be_bytes();
        self.bytes(&be[8 - len..]);
    }

    fn varint(&mut self, v: u64) {
        self.varint_of_len(v, varint_len(v));
    }

    fn cid(&mut self, cid: &[u8]) {
        self.bytes(&[cid.len() as u8]);
        self.bytes(cid);
    }
}

/// Writes into `out` a server Initial packet that closes the connection
/// attempt of a client Initial with Destination Connection ID `client_dcid`
/// and Source Connection ID `client_scid`, with transport error `error_code`
/// and `reason`; returns its length.
///
/// The header mirrors the client's IDs (DCID = `client_scid`, SCID =
/// `client_dcid`), has no token and packet number 0; the payload is one
/// CONNECTION_CLOSE (type 0x1c, frame type 0 = unknown), protected with the
/// server Initial keys of `client_dcid` (after a Retry: the Retry's SCID,
/// which the client then uses as its DCID). The close is not ack-eliciting,
/// so it needs no padding to 1200 bytes (RFC 9000 §14.1); it is at most
/// [`MAX_CLOSE_LEN`] bytes.
pub fn initial_close(version: u32, client_dcid: &[u8], client_scid: &[u8], error_code: u64, reason: &[u8],
                     out: &mut [u8]) -> Result<usize, CloseError> {
    let secret = server_initial_secret(version, client_dcid)?;
    if client_dcid.len() > quiche::MAX_CONN_ID_LEN || client_scid.len() > quiche::MAX_CONN_ID_LEN
        || reason.len() > MAX_REASON_LEN || error_code > MAX_VARINT {
        return Err(CloseError::InvalidInput);
    }
    let frame_len = 1 + varint_len(error_code) + 1 + varint_len(reason.len() as u64) + reason.len();
    // Header protection samples 16 bytes starting 4 bytes after the packet
    // number; PADDING frames (zero bytes) make sure they exist.
    let payload_len = frame_len.max(SAMPLE_OFFSET + SAMPLE_LEN - PN_LEN - TAG_LEN);
    let pn_offset = 1 + 4 + 1 + client_scid.len() + 1 + client_dcid.len() + 1 + LENGTH_FIELD_LEN;
    let total = pn_offset + PN_LEN + payload_len + TAG_LEN;
    if out.len() < total {
        return Err(CloseError::BufferTooShort);
    }
    let mut w = Writer { buf: &mut out[..total], at: 0 };
    w.bytes(&[INITIAL_FIRST_BYTE]);
    w.bytes(&version.to_be_bytes());
    w.cid(client_scid);
    w.cid(client_dcid);
    w.varint(0); // token length
    w.varint_of_len((PN_LEN + payload_len + TAG_LEN) as u64, LENGTH_FIELD_LEN);
    w.bytes(&[0; PN_LEN]); // packet number 0
    w.bytes(&[CONNECTION_CLOSE]);
    w.varint(error_code);
    w.varint(0); // the frame that caused it: unknown
    w.varint(reason.len() as u64);
    w.bytes(reason);
    let padding = payload_len - frame_len;
    w.buf[w.at..w.at + padding].fill(0);

    protect(&Keys::from_secret(&secret), &mut out[..total], pn_offset, PN_LEN, 0)?;
    Ok(total)
}

// ---------------------------------------------------------------------------
// Rate limiting
// ---------------------------------------------------------------------------

/// Token bucket: `allow` succeeds at most `burst` times in a row, and then
/// `per_second` times a second on average. Counted in billionths of a
/// token so that refill is exact integer arithmetic on nanoseconds.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: u64,
    capacity: u128,
    level: u128,
    last: Option<Instant>,
}

const NANOS: u128 = 1_000_000_000;

impl RateLimiter {
    /// A full bucket: `burst` sends at once, refilled at `per_second`.
    pub fn new(per_second: u32, burst: u32) -> RateLimiter {
        let capacity = u128::from(burst) * NANOS;
        RateLimiter { per_second: per_second.into(), capacity, level: capacity, last: None }
    }

    /// Takes one token if there is one. `now` may not go backwards; if it
    /// does, no time is taken to have passed.
    pub fn allow(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_nanos();
            self.level = self.level.saturating_add(elapsed.saturating_mul(self.per_second.into())).min(self.capacity);
        }
        if self.last.is_none_or(|last| now > last) {
            self.last = Some(now);
        }
        if self.level >= NANOS {
            self.level -= NANOS;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::time::Duration;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    // --- RFC 9001 Appendix A -------------------------------------------------

    const RFC_DCID: &str = "8394c8f03e515708";

    #[test]
    #[cfg_attr(miri, ignore)] // HMAC-SHA256 is BoringSSL's
    fn server_initial_keys_match_rfc9001_a1() {
        let secret = server_initial_secret(QUIC_V1, &hex(RFC_DCID)).unwrap();
        assert_eq!(secret.to_vec(), hex("3c199828fd139efd216c155ad844cc81fb82fa8d7446fa7d78be803acdda951b"));
        let keys = Keys::from_secret(&secret);
        assert_eq!(keys.key.to_vec(), hex("cf3a5331653c364c88f0f379b6067e37"));
        assert_eq!(keys.iv.to_vec(), hex("0ac1493ca1905853b0bba03e"));
        assert_eq!(keys.hp.to_vec(), hex("c206b8d9b9f0f37644430b490eeaa314"));
    }

    #[test]
    #[cfg_attr(miri, ignore)] // AES is BoringSSL's
    fn packet_protection_matches_rfc9001_a3() {
        // The server Initial of Appendix A.3: packet number 1 in 2 bytes.
        let header = hex("c1000000010008f067a5502a4262b50040750001");
        let payload = hex("02000000000600405a020000560303eefce7f7b37ba1d1632e96677825ddf739
                           88cfc79825df566dc5430b9a045a1200130100002e00330024001d00209d3c94
                           0d89690b84d08a60993c144eca684d1081287c834d5311bcf32bb9da1a002b00
                           020304");
        let expected = hex("cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a
                            5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3
                            dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84
                            022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc4
                            2158407dd074ee");
        let mut packet = [header.clone(), payload, vec![0; TAG_LEN]].concat();
        let keys = Keys::from_secret(&server_initial_secret(QUIC_V1, &hex(RFC_DCID)).unwrap());
        protect(&keys, &mut packet, header.len() - 2, 2, 1).unwrap();
        assert_eq!(packet, expected);
    }

    #[test]
    fn only_version_1_is_supported() {
        let mut out = [0u8; MAX_CLOSE_LEN];
        assert_eq!(initial_close(0xff00_001d, &[1; 8], &[2; 8], INVALID_TOKEN, b"", &mut out),
                   Err(CloseError::UnsupportedVersion(0xff00_001d)));
    }

    #[test]
    #[cfg_attr(miri, ignore)] // HMAC-SHA256 is BoringSSL's
    fn bad_inputs_and_short_buffers_are_refused() {
        let mut out = [0u8; MAX_CLOSE_LEN];
        let e = |dcid: &[u8], scid: &[u8], code: u64, reason: &[u8], out: &mut [u8]| {
            initial_close(QUIC_V1, dcid, scid, code, reason, out)
        };
        assert_eq!(e(&[1; 21], &[2; 8], 2, b"", &mut out), Err(CloseError::InvalidInput));
        assert_eq!(e(&[1; 8], &[2; 21], 2, b"", &mut out), Err(CloseError::InvalidInput));
        assert_eq!(e(&[1; 8], &[2; 8], 1 << 62, b"", &mut out), Err(CloseError::InvalidInput));
        assert_eq!(e(&[1; 8], &[2; 8], 2, &[b'x'; MAX_REASON_LEN + 1], &mut out), Err(CloseError::InvalidInput));
        let n = e(&[1; 8], &[2; 8], 2, b"no", &mut out).unwrap();
        assert_eq!(e(&[1; 8], &[2; 8], 2, b"no", &mut out[..n - 1]), Err(CloseError::BufferTooShort));
        // The largest possible close fits MAX_CLOSE_LEN exactly.
        let most = e(&[1; 20], &[2; 20], MAX_VARINT, &[b'x'; MAX_REASON_LEN], &mut out).unwrap();
        assert_eq!(most, MAX_CLOSE_LEN);
    }

    #[test]
    fn varints_encode_as_rfc9000_a1() {
        // RFC 9000 Appendix A.1's examples.
        for (v, wire) in [(37u64, "25"), (15293, "7bbd"), (494_878_333, "9d7f3e7d"),
                          (151_288_809_941_952_652, "c2197c5eff14e88c")] {
            let mut buf = [0u8; 8];
            let mut w = Writer { buf: &mut buf, at: 0 };
            w.varint(v);
            let n = w.at;
            assert_eq!(buf[..n].to_vec(), hex(wire), "{v}");
        }
    }

    // --- A real quiche client hears the close --------------------------------

    fn config(server: bool) -> quiche::Config {
        let mut c = quiche::Config::new(quiche::PROTOCOL_VERSION).unwrap();
        c.set_application_protos(&[b"hq-interop"]).unwrap();
        c.set_max_idle_timeout(5000);
        c.set_initial_max_data(1_000_000);
        c.set_initial_max_stream_data_bidi_local(100_000);
        c.set_initial_max_stream_data_bidi_remote(100_000);
        c.set_initial_max_streams_bidi(10);
        // A short PTO keeps the draining period (3 PTO) short in tests.
        c.set_initial_rtt(Duration::from_millis(1));
        if server {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/c-examples");
            c.load_cert_chain_from_pem_file(&format!("{dir}/cert.crt")).expect("run `make` first");
            c.load_priv_key_from_pem_file(&format!("{dir}/cert.key")).unwrap();
        }
        c
    }

    const CLIENT: &str = "127.0.0.1:4000";
    const SERVER: &str = "127.0.0.1:4433";

    fn addrs() -> (SocketAddr, SocketAddr) {
        (CLIENT.parse().unwrap(), SERVER.parse().unwrap())
    }

    fn new_client(scid: &[u8]) -> quiche::Connection {
        let (c, s) = addrs();
        quiche::connect(Some("quic.tech"), &quiche::ConnectionId::from_ref(scid), c, s, &mut config(false)).unwrap()
    }

    /// Hands `dgram` to the client as coming from the server.
    fn to_client(client: &mut quiche::Connection, dgram: &[u8]) -> quiche::Result<usize> {
        let (c, s) = addrs();
        client.recv(&mut dgram.to_vec(), quiche::RecvInfo { from: s, to: c })
    }

    /// Runs the client's timers until it is closed (a deadline, not a
    /// timing check: the draining period is a few milliseconds here).
    fn wait_closed(client: &mut quiche::Connection) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !client.is_closed() {
            assert!(Instant::now() < deadline, "the client never finished draining");
            match client.timeout() {
                Some(t) if !t.is_zero() => std::thread::sleep(t.min(Duration::from_millis(50))),
                _ => {}
            }
            client.on_timeout();
        }
    }

    /// The client has the close: the transport error, and it sends nothing
    /// more (draining), then closes.
    fn assert_closed_by(client: &mut quiche::Connection, code: u64, reason: &[u8]) {
        let err = client.peer_error().expect("the client took the CONNECTION_CLOSE");
        assert!(!err.is_app);
        assert_eq!(err.error_code, code);
        assert_eq!(err.reason, reason);
        assert!(client.is_draining());
        let mut buf = [0u8; 1500];
        assert_eq!(client.send(&mut buf), Err(quiche::Error::Done), "a draining client is silent");
        wait_closed(client);
    }

    /// The client's next Initial, parsed.
    fn first_initial(client: &mut quiche::Connection) -> (u32, Vec<u8>, Vec<u8>) {
        let mut buf = [0u8; 1500];
        let (n, _) = client.send(&mut buf).unwrap();
        let hdr = quiche::Header::from_slice(&mut buf[..n], quiche::MAX_CONN_ID_LEN).unwrap();
        assert_eq!(hdr.ty, quiche::Type::Initial);
        (hdr.version, hdr.dcid.to_vec(), hdr.scid.to_vec())
    }

    #[test]
    #[cfg_attr(miri, ignore)] // quiche and BoringSSL
    fn a_quiche_client_takes_the_close_for_invalid_token_and_connection_refused() {
        for (code, reason) in [(INVALID_TOKEN, &b"invalid token"[..]), (CONNECTION_REFUSED, &b"busy"[..])] {
            let mut client = new_client(&[7; 16]);
            let (version, dcid, scid) = first_initial(&mut client);
            let mut out = [0u8; MAX_CLOSE_LEN];
            let n = initial_close(version, &dcid, &scid, code, reason, &mut out).unwrap();
            assert!(n < 1200, "no amplification: {n} bytes");
            assert_eq!(to_client(&mut client, &out[..n]), Ok(n));
            assert_closed_by(&mut client, code, reason);
        }
    }

    #[test]
    #[cfg_attr(miri, ignore)] // quiche and BoringSSL
    fn the_close_is_protected_with_the_clients_dcid() {
        // Keys from any other connection ID: the client cannot read it.
        let mut client = new_client(&[7; 16]);
        let (version, mut dcid, scid) = first_initial(&mut client);
        dcid[0] ^= 1;
        let mut out = [0u8; MAX_CLOSE_LEN];
        let n = initial_close(version, &dcid, &scid, INVALID_TOKEN, b"", &mut out).unwrap();
        to_client(&mut client, &out[..n]).ok();
        assert!(client.peer_error().is_none());
        assert!(!client.is_closed() && !client.is_draining());
    }

    #[test]
    #[cfg_attr(miri, ignore)] // quiche and BoringSSL
    fn after_a_retry_the_close_uses_the_retry_cid() {
        let mut client = new_client(&[7; 16]);
        let (version, odcid, scid) = first_initial(&mut client);
        let retry_cid = [9u8; 16];
        let mut out = [0u8; 1500];
        let n = quiche::retry(&quiche::ConnectionId::from_ref(&scid), &quiche::ConnectionId::from_ref(&odcid),
                              &quiche::ConnectionId::from_ref(&retry_cid), b"some token", version, &mut out).unwrap();
        to_client(&mut client, &out[..n]).unwrap();
        let (version, dcid, scid) = first_initial(&mut client);
        assert_eq!(dcid, retry_cid, "the client follows the Retry");
        let n = initial_close(version, &dcid, &scid, INVALID_TOKEN, b"invalid token", &mut out).unwrap();
        to_client(&mut client, &out[..n]).unwrap();
        assert_closed_by(&mut client, INVALID_TOKEN, b"invalid token");
    }

    // --- Stateless reset -----------------------------------------------------

    #[test]
    fn reset_tokens_are_keyed_per_connection_id() {
        let (k1, k2) = ([1u8; 32], [2u8; 32]);
        assert_eq!(reset_token(&k1, b"cid-a"), reset_token(&k1, b"cid-a"));
        assert_ne!(reset_token(&k1, b"cid-a"), reset_token(&k1, b"cid-b"));
        assert_ne!(reset_token(&k1, b"cid-a"), reset_token(&k2, b"cid-a"));
    }

    #[test]
    #[cfg_attr(miri, ignore)] // HMAC-SHA256 is BoringSSL's
    fn the_reset_token_is_the_labelled_hmac() {
        let key = [5u8; 32];
        let mac = boring::hash::hmac_sha256(&key, &[RESET_LABEL, b"cid"].concat()).unwrap();
        assert_eq!(reset_token(&key, b"cid").to_be_bytes(), mac[..16]);
    }

    #[test]
    fn too_short_triggers_get_no_reset() {
        let mut out = [0u8; 64];
        for trigger in 0..MIN_TRIGGER_LEN {
            assert_eq!(stateless_reset(trigger, 1, &mut out), None, "trigger of {trigger} bytes");
        }
        assert_eq!(stateless_reset(100, 1, &mut out[..MIN_RESET_LEN - 1]), None, "no room");
    }

    #[test]
    #[cfg_attr(miri, ignore)] // random bytes come from BoringSSL
    fn a_reset_is_shorter_than_its_trigger_and_ends_in_the_token() {
        let token = 0x0011_2233_4455_6677_8899_aabb_ccdd_eeffu128;
        let mut out = [0u8; 65536];
        for trigger in [MIN_TRIGGER_LEN, 22, 43, 44, 60, 1200, 1350, 1500, 65527] {
            let n = stateless_reset(trigger, token, &mut out).unwrap();
            assert!(n < trigger && (MIN_RESET_LEN..=MAX_RESET_LEN).contains(&n), "{n} for {trigger}");
            if trigger <= 43 {
                assert_eq!(n, trigger - 1, "§10.3: one byte shorter than a small trigger");
            }
            assert_eq!(out[0] & 0b1100_0000, 0b0100_0000, "short header, fixed bit");
            assert_eq!(out[n - 16..n], token.to_be_bytes());
        }
        // A smaller buffer bounds it.
        assert_eq!(stateless_reset(1000, token, &mut out[..30]), Some(30));
        // The bits before the token are random, not fixed.
        let mut other = [0u8; 100];
        stateless_reset(101, token, &mut other).unwrap();
        stateless_reset(101, token, &mut out).unwrap();
        assert_ne!(other[1..84], out[1..84]);
    }

    /// A client and a server connection whose server announced
    /// `reset_token(key, server_scid)`, with the handshake done in memory.
    fn established_pair(key: &[u8; 32], server_scid: &[u8]) -> (quiche::Connection, quiche::Connection) {
        let (c, s) = addrs();
        let mut client = new_client(&[3; 16]);
        let mut scfg = config(true);
        scfg.set_stateless_reset_token(Some(reset_token(key, server_scid)));
        let mut server = quiche::accept(&quiche::ConnectionId::from_ref(server_scid), None, s, c, &mut scfg).unwrap();
        let mut buf = [0u8; 1500];
        for _ in 0..20 {
            if client.is_established() && server.is_established() {
                return (client, server);
            }
            while let Ok((n, _)) = client.send(&mut buf) {
                server.recv(&mut buf[..n], quiche::RecvInfo { from: c, to: s }).unwrap();
            }
            while let Ok((n, _)) = server.send(&mut buf) {
                to_client(&mut client, &buf[..n]).unwrap();
            }
        }
        panic!("no handshake");
    }

    #[test]
    #[cfg_attr(miri, ignore)] // quiche and BoringSSL
    fn a_quiche_client_closes_on_our_reset() {
        let key = [0x5a; 32];
        let server_scid = [0x11; 16];
        let (mut client, _server) = established_pair(&key, &server_scid);
        let mut out = [0u8; 100];

        // A wrong token (another CID's) is just an undecryptable packet.
        let n = stateless_reset(60, reset_token(&key, &[0x22; 16]), &mut out).unwrap();
        to_client(&mut client, &out[..n]).unwrap();
        assert!(!client.is_closed(), "a reset with a wrong token closes nothing");

        let n = stateless_reset(60, reset_token(&key, &server_scid), &mut out).unwrap();
        assert_eq!(n, 59);
        to_client(&mut client, &out[..n]).unwrap();
        assert!(client.is_closed(), "quiche took the reset");
    }

    // --- Rate limiter ----------------------------------------------------------

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut r = RateLimiter::new(10, 3);
        assert!((0..3).all(|_| r.allow(at(0))), "a full burst");
        assert!(!r.allow(at(0)));
        assert!(!r.allow(at(99)), "10/s: the next token is due at 100 ms");
        assert!(r.allow(at(100)));
        assert!(!r.allow(at(100)));
        // A long pause refills to the burst, not beyond.
        assert_eq!((0..10).filter(|_| r.allow(at(3_600_000))).count(), 3);
        // Over a second past that: 10 more, whatever the spacing of the calls.
        let got = (1..=1000).filter(|ms| r.allow(at(3_600_000 + ms))).count();
        assert_eq!(got, 10);
    }

    #[test]
    fn time_going_backwards_refills_nothing() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut r = RateLimiter::new(1000, 1);
        assert!(r.allow(t0));
        assert!(!r.allow(t0 - Duration::from_secs(5)));
        assert!(!r.allow(t0), "the earlier instant did not move the clock back");
        assert!(r.allow(t0 + Duration::from_millis(1)));
    }

    #[test]
    fn a_zero_rate_allows_only_the_burst() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(0, 2);
        assert!(r.allow(t0) && r.allow(t0));
        assert!(!r.allow(t0 + Duration::from_secs(1_000_000)));
        let mut none = RateLimiter::new(100, 0);
        assert!(!none.allow(t0));
    }
}
