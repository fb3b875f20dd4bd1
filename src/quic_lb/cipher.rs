//! The QUIC-LB ciphers (draft-ietf-quic-load-balancers-21 §5.4): AES-128-ECB
//! on BoringSSL for the single-pass case, and the four-round Feistel network
//! (AES-128-ECB as the round function) for every other length.

use super::{Octets, KEY_LEN};

// ---------------------------------------------------------------------------
// AES-128-ECB, one block at a time
// ---------------------------------------------------------------------------

/// One AES-128 key schedule for a run of single-block operations (a
/// four-pass encode or decode makes four with one context).
#[cfg(not(miri))]
pub(super) struct Aes(boring::symm::Crypter);

#[cfg(not(miri))]
impl Aes {
    pub(super) fn new(key: &[u8; KEY_LEN], encrypt: bool) -> Aes {
        use boring::symm::{Cipher, Crypter, Mode};
        let mode = if encrypt { Mode::Encrypt } else { Mode::Decrypt };
        // EVP_CipherInit_ex cannot refuse AES-128-ECB with a 16-byte key;
        // it fails only when it cannot allocate, where Rust aborts anyway.
        let mut c = Crypter::new(Cipher::aes_128_ecb(), mode, key, None).expect("AES-128-ECB with a 16-byte key");
        c.pad(false);
        Aes(c)
    }

    pub(super) fn block(&mut self, input: &[u8; 16]) -> [u8; 16] {
        let mut out = [0u8; 32]; // Crypter asks for a block of headroom
        // Without padding, ECB turns each whole block into one output block.
        let n = self.0.update(input, &mut out).expect("one AES block");
        debug_assert_eq!(n, 16);
        let mut r = [0u8; 16];
        r.copy_from_slice(&out[..16]);
        r
    }
}

/// Miri cannot call into C: key XOR block stands in (its own inverse, so
/// encode/decode round trips still hold). NOT a cipher.
#[cfg(miri)]
pub(super) struct Aes([u8; KEY_LEN]);

#[cfg(miri)]
impl Aes {
    pub(super) fn new(key: &[u8; KEY_LEN], _encrypt: bool) -> Aes {
        Aes(*key)
    }

    pub(super) fn block(&mut self, input: &[u8; 16]) -> [u8; 16] {
        let mut r = *input;
        r.iter_mut().zip(self.0).for_each(|(b, k)| *b ^= k);
        r
    }
}

// ---------------------------------------------------------------------------
// The four-pass Feistel network (§5.4.2)
// ---------------------------------------------------------------------------

/// Half of a plaintext of up to 19 octets: up to 10 octets.
pub(super) type Half = [u8; 10];

/// `expand(length, pass, input_bytes)`: the half, zero padding, the
/// plaintext length in octet 15 and the pass number in octet 16.
pub(super) fn expand(plaintext_len: usize, pass: u8, half: &[u8]) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..half.len()].copy_from_slice(half);
    b[14] = plaintext_len as u8;
    b[15] = pass;
    b
}

/// Splits `x` into left and right halves of `ceil(len / 2)` octets. With an
/// odd length the middle octet is shared: left keeps its high nibble, right
/// its low nibble.
pub(super) fn split(x: &[u8]) -> (Half, Half) {
    let half = x.len().div_ceil(2);
    let (mut left, mut right) = ([0u8; 10], [0u8; 10]);
    left[..half].copy_from_slice(&x[..half]);
    right[..half].copy_from_slice(&x[x.len() - half..]);
    if x.len() % 2 == 1 {
        left[half - 1] &= 0xf0;
        right[0] &= 0x0f;
    }
    (left, right)
}

/// The inverse of [`split`].
pub(super) fn merge(left: &Half, right: &Half, len: usize) -> Octets {
    let half = len.div_ceil(2);
    let mut out = Octets::zeroed(len);
    let o = out.as_mut_slice();
    o[..half].copy_from_slice(&left[..half]);
    if len % 2 == 1 {
        o[half - 1] |= right[0];
        o[half..].copy_from_slice(&right[1..half]);
    } else {
        o[half..].copy_from_slice(&right[..half]);
    }
    out
}

/// One pass: `target ^= truncate(AES(expand(len, pass, source)), half)`,
/// then, for odd lengths, the nibble `target` does not own is cleared.
fn pass(aes: &mut Aes, len: usize, pass: u8, source: &Half, target: &mut Half, target_is_left: bool) {
    let half = len.div_ceil(2);
    let mask = aes.block(&expand(len, pass, &source[..half]));
    target[..half].iter_mut().zip(mask).for_each(|(t, m)| *t ^= m);
    if len % 2 == 1 {
        if target_is_left {
            target[half - 1] &= 0xf0;
        } else {
            target[0] &= 0x0f;
        }
    }
}

pub(super) fn four_pass_encrypt(key: &[u8; KEY_LEN], plaintext: &[u8]) -> Octets {
    let len = plaintext.len();
    let mut aes = Aes::new(key, true);
    let (mut left, mut right) = split(plaintext);
    pass(&mut aes, len, 1, &left, &mut right, false);
    pass(&mut aes, len, 2, &right, &mut left, true);
    pass(&mut aes, len, 3, &left, &mut right, false);
    pass(&mut aes, len, 4, &right, &mut left, true);
    merge(&left, &right, len)
}

pub(super) fn four_pass_decrypt(key: &[u8; KEY_LEN], ciphertext: &[u8]) -> Octets {
    let len = ciphertext.len();
    // A Feistel network runs backwards with the same (forward) round function.
    let mut aes = Aes::new(key, true);
    let (mut left, mut right) = split(ciphertext);
    pass(&mut aes, len, 4, &right, &mut left, true);
    pass(&mut aes, len, 3, &left, &mut right, false);
    pass(&mut aes, len, 2, &right, &mut left, true);
    pass(&mut aes, len, 1, &left, &mut right, false);
    merge(&left, &right, len)
}

pub(super) fn single_pass(key: &[u8; KEY_LEN], block: &[u8], encrypt: bool) -> Octets {
    let mut b = [0u8; 16];
    b.copy_from_slice(block);
    let out = Aes::new(key, encrypt).block(&b);
    Octets::from_slice(&out).expect("16 octets")
}
