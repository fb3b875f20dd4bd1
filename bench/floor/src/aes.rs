//! The cost of encryption alone: AES-128-GCM over 1350-byte packets with
//! quiche's BoringSSL and quiche's calls (src/crypto/boringssl.rs of the
//! quiche package: `EVP_AEAD_CTX_seal_scatter` / `EVP_AEAD_CTX_open`, and
//! one AES block (`AES_ecb_encrypt`) for the header-protection mask).
//!
//! A packet is 1350 bytes on the wire: a 21-byte short header (1 + a
//! 16-byte connection ID + a 4-byte packet number) authenticated as
//! associated data, 1313 bytes of payload encrypted, and the 16-byte tag.
//! The figures are per GiB of payload (what the bulk rows divide by is
//! response body, a little less than the payload: frame headers ride in
//! it too).

use boring_sys as ffi;

use crate::cpu::thread_ns;
use crate::link::MAX_DATAGRAM_SIZE;

const HEADER: usize = 21;
const TAG: usize = 16;
pub const PAYLOAD: usize = MAX_DATAGRAM_SIZE - HEADER - TAG;

pub struct AesCost {
    pub seal_s_per_gib: f64,
    pub open_s_per_gib: f64,
    pub packets: usize,
}

/// Seals (then opens) `mib` MiB of payload, packet by packet.
pub fn measure(mib: usize) -> AesCost {
    let packets = (mib << 20).div_ceil(PAYLOAD);
    let mut key = [0u8; 16];
    let mut hp_key = [0u8; 16];
    boring::rand::rand_bytes(&mut key).unwrap();
    boring::rand::rand_bytes(&mut hp_key).unwrap();
    // SAFETY: plain BoringSSL calls on buffers we own, with the lengths
    // they have; the context is freed at the end.
    unsafe {
        let ctx = ffi::EVP_AEAD_CTX_new(ffi::EVP_aead_aes_128_gcm(), key.as_ptr(), key.len(), TAG);
        assert!(!ctx.is_null());
        let mut hp: ffi::AES_KEY = std::mem::zeroed();
        assert_eq!(ffi::AES_set_encrypt_key(hp_key.as_ptr(), 128, &mut hp), 0);
        let mut pkt = vec![0u8; MAX_DATAGRAM_SIZE];
        boring::rand::rand_bytes(&mut pkt).unwrap();
        let mut sealed = vec![Vec::new(); 64];
        let mut mask = [0u8; 16];

        // Seal: the payload in place, its tag after it, then the mask from
        // a sample of the ciphertext.
        let t0 = thread_ns();
        for pn in 0..packets as u64 {
            let nonce = nonce(pn);
            let (head, rest) = pkt.split_at_mut(HEADER);
            let (payload, tag) = rest.split_at_mut(PAYLOAD);
            let mut tag_len = 0usize;
            let ok = ffi::EVP_AEAD_CTX_seal_scatter(ctx, payload.as_mut_ptr(), tag.as_mut_ptr(), &mut tag_len, TAG,
                                                    nonce.as_ptr(), nonce.len(), payload.as_ptr(), PAYLOAD,
                                                    std::ptr::null(), 0, head.as_ptr(), HEADER);
            assert_eq!(ok, 1);
            ffi::AES_ecb_encrypt(payload.as_ptr().add(4), mask.as_mut_ptr(), &hp, 1);
            if (pn as usize) < sealed.len() {
                sealed[pn as usize] = pkt.clone(); // kept to open below
            }
        }
        let seal_ns = thread_ns() - t0;

        // Open: the mask, then the payload and tag (out of place: the same
        // 64 sealed packets over and over, left intact).
        let mut out = vec![0u8; MAX_DATAGRAM_SIZE];
        let t0 = thread_ns();
        for pn in 0..packets as u64 {
            let k = (pn as usize) % sealed.len();
            let p = &sealed[k];
            ffi::AES_ecb_encrypt(p.as_ptr().add(HEADER + 4), mask.as_mut_ptr(), &hp, 1);
            let nonce = nonce(k as u64);
            let mut out_len = 0usize;
            let ok = ffi::EVP_AEAD_CTX_open(ctx, out.as_mut_ptr(), &mut out_len, out.len(), nonce.as_ptr(),
                                            nonce.len(), p[HEADER..].as_ptr(), PAYLOAD + TAG, p.as_ptr(), HEADER);
            assert_eq!(ok, 1);
        }
        let open_ns = thread_ns() - t0;
        ffi::EVP_AEAD_CTX_free(ctx);

        let gib = (packets * PAYLOAD) as f64 / (1u64 << 30) as f64;
        AesCost { seal_s_per_gib: seal_ns as f64 / 1e9 / gib, open_s_per_gib: open_ns as f64 / 1e9 / gib, packets }
    }
}

fn nonce(pn: u64) -> [u8; 12] {
    let mut n = [0x5au8; 12];
    for (i, b) in pn.to_be_bytes().iter().enumerate() {
        n[4 + i] ^= b;
    }
    n
}
