//! The two primitives the library needs from BoringSSL: random bytes and
//! HMAC-SHA256. Each has a stand-in compiled only under Miri, which cannot
//! call into C; the stand-ins are NOT cryptographic and exist only so Miri
//! can run the code around them.

/// Fills `buf` from the CSPRNG.
#[cfg(not(miri))]
pub fn random_bytes(buf: &mut [u8]) {
    // BoringSSL's RAND_bytes aborts rather than fail, so this cannot error
    // in practice; fall back to the system's generator to stay total anyway.
    if boring::rand::rand_bytes(buf).is_err() {
        os_random(buf);
    }
}

#[cfg(miri)]
pub fn random_bytes(buf: &mut [u8]) {
    os_random(buf);
}

/// The system's random bytes: `getrandom(2)` on Linux, `getentropy(3)`
/// elsewhere (macOS 10.12+, FreeBSD 12+, the other BSDs) and with the
/// `portable` feature.
fn os_random(buf: &mut [u8]) {
    #[cfg(all(target_os = "linux", not(feature = "portable")))]
    getrandom_fill(buf);
    #[cfg(not(all(target_os = "linux", not(feature = "portable"))))]
    getentropy_fill(buf);
}

#[cfg(target_os = "linux")]
#[cfg_attr(feature = "portable", allow(dead_code))]
fn getrandom_fill(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: the pointer and length describe the unfilled tail of buf.
        let n = unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        assert!(n > 0, "no randomness available");
        filled += n as usize;
    }
}

/// At most 256 bytes per call. Compiled on glibc too, where the unit tests
/// run it (musl's bindings in the libc crate lack it).
#[cfg(not(all(target_os = "linux", target_env = "musl")))]
#[cfg_attr(all(target_os = "linux", not(feature = "portable")), allow(dead_code))]
fn getentropy_fill(buf: &mut [u8]) {
    for chunk in buf.chunks_mut(256) {
        // SAFETY: the pointer and length describe `chunk`, at most 256 bytes.
        let r = unsafe { libc::getentropy(chunk.as_mut_ptr().cast(), chunk.len()) };
        assert_eq!(r, 0, "no randomness available");
    }
}

/// HMAC-SHA256 of `msg` under `key`.
#[cfg(not(miri))]
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    boring::hash::hmac_sha256(key, msg).expect("HMAC-SHA256 over a memory buffer")
}

/// Miri's stand-in: a keyed std hash, four times for 32 bytes.
#[cfg(miri)]
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    use std::hash::{Hash, Hasher};
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (i, key, msg).hash(&mut h);
        chunk.copy_from_slice(&h.finish().to_be_bytes());
    }
    out
}

/// A BoringSSL primitive refused its input.
#[derive(Debug)]
pub struct CryptoError;

/// AES-128-GCM seal in place: `payload` becomes the ciphertext, `tag`
/// receives the 16-byte tag.
#[cfg(not(miri))]
pub fn aes_128_gcm_seal(key: &[u8], nonce: &[u8], aad: &[u8], payload: &mut [u8], tag: &mut [u8]) -> Result<(), CryptoError> {
    use boring::symm::{encrypt_aead, Cipher};
    let sealed = encrypt_aead(Cipher::aes_128_gcm(), key, Some(nonce), aad, payload, tag).map_err(|_| CryptoError)?;
    payload.copy_from_slice(&sealed);
    Ok(())
}

/// Miri's stand-in: leaves the payload as it is, a zero tag.
#[cfg(miri)]
pub fn aes_128_gcm_seal(_key: &[u8], _nonce: &[u8], _aad: &[u8], _payload: &mut [u8], tag: &mut [u8])
                        -> Result<(), CryptoError> {
    tag.fill(0);
    Ok(())
}

/// One AES-128 block encryption (ECB), as QUIC header protection uses it.
#[cfg(not(miri))]
pub fn aes_128_block(key: &[u8; 16], block: &[u8]) -> Result<[u8; 16], CryptoError> {
    use boring::symm::{Cipher, Crypter, Mode};
    let mut c = Crypter::new(Cipher::aes_128_ecb(), Mode::Encrypt, key, None).map_err(|_| CryptoError)?;
    c.pad(false);
    let mut out = [0u8; 32]; // Crypter wants room for one more block
    let n = c.update(&block[..16], &mut out).map_err(|_| CryptoError)?;
    if n < 16 {
        return Err(CryptoError);
    }
    let mut r = [0u8; 16];
    r.copy_from_slice(&out[..16]);
    Ok(r)
}

/// Miri's stand-in: key XOR block.
#[cfg(miri)]
pub fn aes_128_block(key: &[u8; 16], block: &[u8]) -> Result<[u8; 16], CryptoError> {
    let mut r = [0u8; 16];
    for i in 0..16 {
        r[i] = key[i] ^ block[i];
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1000 bytes (more than one getentropy call's 256), twice: different,
    /// and no 64-byte stretch left unwritten (all zero: 2^-512 by chance).
    fn fills_large_buffers(fill: fn(&mut [u8])) {
        let (mut a, mut b) = ([0u8; 1000], [0u8; 1000]);
        fill(&mut a);
        fill(&mut b);
        assert_ne!(a, b);
        assert!(a.chunks(64).all(|c| c.iter().any(|&x| x != 0)), "{a:?}");
    }

    #[test]
    fn the_system_generator_fills_large_buffers() {
        fills_large_buffers(os_random);
    }

    /// Both system generators run here, whichever this build uses.
    #[cfg(target_os = "linux")]
    #[test]
    fn getrandom_fills_large_buffers() {
        fills_large_buffers(getrandom_fill);
    }

    #[cfg(not(all(target_os = "linux", target_env = "musl")))]
    #[test]
    fn getentropy_fills_large_buffers() {
        fills_large_buffers(getentropy_fill);
    }
}
