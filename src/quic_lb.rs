//! QUIC-LB connection IDs (draft-ietf-quic-load-balancers-21): connection
//! IDs that carry a server ID, so that a load balancer holding the same
//! configuration can route every packet of a connection to the server that
//! owns it, whatever address the client has moved to.
//!
//! # Layout
//!
//! ```text
//! byte 0                 bytes 1 ..= S            bytes S+1 ..= S+N
//! +----------+---------+------------------------+-------------------------+
//! | config   | low     | server ID (S octets)   | nonce (N octets)        |
//! | ID (3)   | bits (5)|                        |                         |
//! +----------+---------+------------------------+-------------------------+
//!  never encrypted      plaintext layout: as is; encrypted layout: the S+N
//!                       octets are AES-128-ECB(key, server ID || nonce) when
//!                       S+N = 16, a four-round Feistel network over them
//!                       (AES-128-ECB as round function) otherwise
//! ```
//!
//! S is 1..=15, N is 4..=18 and S+N at most 19, so a CID is 6..=20 octets.
//! The config ID (0..=6; 0b111 means "unroutable" and is never configured)
//! lets a load balancer hold up to seven configurations at once (key
//! rotation). The five low bits of the first octet are, per the draft,
//! either the CID length minus one (length self-description, for hardware
//! offload) or random. [`FirstOctet`] chooses: random, the length, or an
//! on-host **worker index** (see [`crate::steer`]). The first octet is never
//! encrypted, so a worker index there is readable by the kernel's
//! classic-BPF steering program without the key.
//!
//! # What a QUIC-LB-aware load balancer sees
//!
//! It reads the config ID, looks up that configuration (server ID length,
//! nonce length, key), decrypts if there is a key, and routes by the server
//! ID. It ignores the five low bits, which must therefore not be configured
//! as length self-description at the balancer when they carry a worker
//! index (our CIDs have one fixed length per configuration, so nothing on
//! the path needs them). The worker index is visible to any observer: it
//! is the same in every CID of a connection, so it leaks up to log2(workers)
//! bits that link a connection's CIDs across a migration. With the
//! plaintext layout the server ID already leaks more; with the encrypted
//! layout this is a real, small weakening of the draft's "no observable
//! relationship" advice, the price of steering without a key in the kernel
//! (hiding it needs a keyed mask, which classic BPF cannot compute).
//!
//! # Nonces
//!
//! The draft forbids reusing a nonce under one key. [`Config::generate`]
//! draws a random nonce (the plaintext layout must, so that nonces are
//! unlinkable); that is safe when the nonce is long. [`Generator`] follows
//! the draft's counter method for encrypted layouts: a counter started at a
//! random value, with the worker index in its top five bits so that two
//! workers of one server (same server ID, same key, CIDs differing only in
//! the unencrypted first octet otherwise) never produce the same
//! ciphertext, and an error instead of a wrap back onto used nonces.
//!
//! Everything here is written from the draft's text; the unit tests pass
//! every vector of its Appendix B and the worked example of its four-pass
//! section.

use std::fmt;

use crate::cid::random_bytes;

/// Longest connection ID QUIC version 1 allows, and so the longest we make.
pub const MAX_CID_LEN: usize = 20;
/// Length of a QUIC-LB key (AES-128).
pub const KEY_LEN: usize = 16;
/// Shortest server ID.
pub const MIN_SERVER_ID_LEN: usize = 1;
/// Longest server ID (19 octets minus the shortest nonce).
pub const MAX_SERVER_ID_LEN: usize = 15;
/// Shortest nonce.
pub const MIN_NONCE_LEN: usize = 4;
/// Longest nonce (19 octets minus the shortest server ID).
pub const MAX_NONCE_LEN: usize = 18;
/// Longest server ID plus nonce (a CID of 20 octets with its first octet).
pub const MAX_PLAINTEXT_LEN: usize = MAX_CID_LEN - 1;
/// Config rotation codepoint that marks a CID as unroutable (§3.1): never a
/// configuration's ID.
pub const UNROUTABLE_CONFIG_ID: u8 = 0b111;
/// The five low bits of the first octet (length, random or worker index).
pub const LOW_BITS_MASK: u8 = 0x1f;
const CONFIG_ID_SHIFT: u32 = 5;

// ---------------------------------------------------------------------------
// Octets: up to 20 bytes on the stack
// ---------------------------------------------------------------------------

/// Up to [`MAX_CID_LEN`] bytes held by value: a connection ID, a server ID
/// or a nonce. Derefs to `[u8]`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Octets {
    len: u8,
    // Bytes past `len` are always zero, so the derived comparisons hold.
    buf: [u8; MAX_CID_LEN],
}

impl Octets {
    /// A copy of `bytes`; `None` if longer than [`MAX_CID_LEN`].
    pub fn from_slice(bytes: &[u8]) -> Option<Octets> {
        if bytes.len() > MAX_CID_LEN {
            return None;
        }
        let mut o = Octets::zeroed(bytes.len());
        o.buf[..bytes.len()].copy_from_slice(bytes);
        Some(o)
    }

    fn zeroed(len: usize) -> Octets {
        debug_assert!(len <= MAX_CID_LEN);
        Octets { len: len as u8, buf: [0; MAX_CID_LEN] }
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len as usize]
    }
}

impl std::ops::Deref for Octets {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for Octets {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl fmt::Debug for Octets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.as_slice() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A configuration the draft does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// Config IDs are 0..=6 (7 is the unroutable codepoint).
    ConfigId(u8),
    /// Server IDs are 1..=15 octets.
    ServerIdLen(usize),
    /// Nonces are 4..=18 octets.
    NonceLen(usize),
    /// Server ID and nonce together exceed 19 octets.
    TooLong(usize),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ConfigId(id) => write!(f, "config ID {id} is not in 0..=6"),
            ConfigError::ServerIdLen(n) => write!(f, "server ID of {n} octets is not in 1..=15"),
            ConfigError::NonceLen(n) => write!(f, "nonce of {n} octets is not in 4..=18"),
            ConfigError::TooLong(n) => write!(f, "server ID and nonce are {n} octets together, more than 19"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Inputs to [`Layout::encode`] that do not fit the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    ServerIdLen { expected: usize, got: usize },
    NonceLen { expected: usize, got: usize },
    /// Worker indexes are 0..=31 (five bits).
    Worker(u8),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::ServerIdLen { expected, got } => write!(f, "server ID of {got} octets, the layout has {expected}"),
            EncodeError::NonceLen { expected, got } => write!(f, "nonce of {got} octets, the layout has {expected}"),
            EncodeError::Worker(w) => write!(f, "worker index {w} does not fit in five bits"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// Why a connection ID does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// A zero-length connection ID.
    Empty,
    /// Config ID 0b111: the issuer had no configuration (§3.2).
    Unroutable,
    /// No configuration with this config ID.
    UnknownConfig(u8),
    /// The CID is too short for its configuration.
    TooShort { need: usize, got: usize },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Empty => write!(f, "empty connection ID"),
            DecodeError::Unroutable => write!(f, "connection ID marked unroutable (config ID 7)"),
            DecodeError::UnknownConfig(id) => write!(f, "no configuration with config ID {id}"),
            DecodeError::TooShort { need, got } => write!(f, "connection ID of {got} octets, the layout needs {need}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// [`Generator::next_cid`] ran through every nonce of its space: the
/// configuration (key) must be replaced before issuing more CIDs (§8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceSpaceExhausted;

impl fmt::Display for NonceSpaceExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "every nonce of this configuration has been used; rotate the key")
    }
}

impl std::error::Error for NonceSpaceExhausted {}

// ---------------------------------------------------------------------------
// First octet
// ---------------------------------------------------------------------------

/// What the five low bits of the first octet carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstOctet {
    /// Random bits (the draft's choice for servers that do not self-describe
    /// the length).
    Random,
    /// The CID's length minus one (length self-description, §3.3), as in
    /// the draft's test vectors.
    Length,
    /// An on-host worker index, 0..=31, for the kernel's steering program
    /// (see [`crate::steer`]).
    Worker(u8),
}

/// The config ID (top three bits) of a connection ID; `None` when empty.
pub fn config_id_of(cid: &[u8]) -> Option<u8> {
    cid.first().map(|b| b >> CONFIG_ID_SHIFT)
}

// ---------------------------------------------------------------------------
// AES-128-ECB, one block at a time
// ---------------------------------------------------------------------------

/// One AES-128 key schedule for a run of single-block operations (a
/// four-pass encode or decode makes four with one context).
#[cfg(not(miri))]
struct Aes(boring::symm::Crypter);

#[cfg(not(miri))]
impl Aes {
    fn new(key: &[u8; KEY_LEN], encrypt: bool) -> Aes {
        use boring::symm::{Cipher, Crypter, Mode};
        let mode = if encrypt { Mode::Encrypt } else { Mode::Decrypt };
        // EVP_CipherInit_ex cannot refuse AES-128-ECB with a 16-byte key;
        // it fails only when it cannot allocate, where Rust aborts anyway.
        let mut c = Crypter::new(Cipher::aes_128_ecb(), mode, key, None).expect("AES-128-ECB with a 16-byte key");
        c.pad(false);
        Aes(c)
    }

    fn block(&mut self, input: &[u8; 16]) -> [u8; 16] {
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
struct Aes([u8; KEY_LEN]);

#[cfg(miri)]
impl Aes {
    fn new(key: &[u8; KEY_LEN], _encrypt: bool) -> Aes {
        Aes(*key)
    }

    fn block(&mut self, input: &[u8; 16]) -> [u8; 16] {
        let mut r = *input;
        r.iter_mut().zip(self.0).for_each(|(b, k)| *b ^= k);
        r
    }
}

// ---------------------------------------------------------------------------
// The four-pass Feistel network (§5.4.2)
// ---------------------------------------------------------------------------

/// Half of a plaintext of up to 19 octets: up to 10 octets.
type Half = [u8; 10];

/// `expand(length, pass, input_bytes)`: the half, zero padding, the
/// plaintext length in octet 15 and the pass number in octet 16.
fn expand(plaintext_len: usize, pass: u8, half: &[u8]) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..half.len()].copy_from_slice(half);
    b[14] = plaintext_len as u8;
    b[15] = pass;
    b
}

/// Splits `x` into left and right halves of `ceil(len / 2)` octets. With an
/// odd length the middle octet is shared: left keeps its high nibble, right
/// its low nibble.
fn split(x: &[u8]) -> (Half, Half) {
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
fn merge(left: &Half, right: &Half, len: usize) -> Octets {
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

fn four_pass_encrypt(key: &[u8; KEY_LEN], plaintext: &[u8]) -> Octets {
    let len = plaintext.len();
    let mut aes = Aes::new(key, true);
    let (mut left, mut right) = split(plaintext);
    pass(&mut aes, len, 1, &left, &mut right, false);
    pass(&mut aes, len, 2, &right, &mut left, true);
    pass(&mut aes, len, 3, &left, &mut right, false);
    pass(&mut aes, len, 4, &right, &mut left, true);
    merge(&left, &right, len)
}

fn four_pass_decrypt(key: &[u8; KEY_LEN], ciphertext: &[u8]) -> Octets {
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

fn single_pass(key: &[u8; KEY_LEN], block: &[u8], encrypt: bool) -> Octets {
    let mut b = [0u8; 16];
    b.copy_from_slice(block);
    let out = Aes::new(key, encrypt).block(&b);
    Octets::from_slice(&out).expect("16 octets")
}

// ---------------------------------------------------------------------------
// Layout: what a load balancer knows
// ---------------------------------------------------------------------------

/// How the bytes after the first octet are protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No key: server ID and nonce in the clear.
    Plaintext,
    /// Key, server ID + nonce = 16 octets: one AES-128-ECB block.
    SinglePass,
    /// Key, any other length: the four-round Feistel network.
    FourPass,
}

/// One QUIC-LB configuration as a load balancer holds it: config ID,
/// server ID length, nonce length and optional key. Encodes any server ID
/// of that length; decodes any CID of that configuration.
#[derive(Clone)]
pub struct Layout {
    config_id: u8,
    server_id_len: u8,
    nonce_len: u8,
    key: Option<[u8; KEY_LEN]>,
}

impl fmt::Debug for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key itself: debug output ends up in logs.
        f.debug_struct("Layout")
            .field("config_id", &self.config_id)
            .field("server_id_len", &self.server_id_len)
            .field("nonce_len", &self.nonce_len)
            .field("mode", &self.mode())
            .finish()
    }
}

impl Layout {
    pub fn new(config_id: u8, server_id_len: usize, nonce_len: usize, key: Option<[u8; KEY_LEN]>)
               -> Result<Layout, ConfigError> {
        if config_id >= UNROUTABLE_CONFIG_ID {
            return Err(ConfigError::ConfigId(config_id));
        }
        if !(MIN_SERVER_ID_LEN..=MAX_SERVER_ID_LEN).contains(&server_id_len) {
            return Err(ConfigError::ServerIdLen(server_id_len));
        }
        if !(MIN_NONCE_LEN..=MAX_NONCE_LEN).contains(&nonce_len) {
            return Err(ConfigError::NonceLen(nonce_len));
        }
        if server_id_len + nonce_len > MAX_PLAINTEXT_LEN {
            return Err(ConfigError::TooLong(server_id_len + nonce_len));
        }
        Ok(Layout { config_id, server_id_len: server_id_len as u8, nonce_len: nonce_len as u8, key })
    }

    pub fn config_id(&self) -> u8 {
        self.config_id
    }

    pub fn server_id_len(&self) -> usize {
        self.server_id_len as usize
    }

    pub fn nonce_len(&self) -> usize {
        self.nonce_len as usize
    }

    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// Length of every CID of this layout: first octet, server ID, nonce.
    pub fn cid_len(&self) -> usize {
        1 + self.plaintext_len()
    }

    fn plaintext_len(&self) -> usize {
        self.server_id_len() + self.nonce_len()
    }

    pub fn mode(&self) -> Mode {
        match self.key {
            None => Mode::Plaintext,
            Some(_) if self.plaintext_len() == 16 => Mode::SinglePass,
            Some(_) => Mode::FourPass,
        }
    }

    /// The first octet for `first`.
    fn first_octet(&self, first: FirstOctet) -> Result<u8, EncodeError> {
        let low = match first {
            FirstOctet::Random => {
                let mut b = [0u8; 1];
                random_bytes(&mut b);
                b[0] & LOW_BITS_MASK
            }
            FirstOctet::Length => (self.cid_len() - 1) as u8,
            FirstOctet::Worker(w) if w <= LOW_BITS_MASK => w,
            FirstOctet::Worker(w) => return Err(EncodeError::Worker(w)),
        };
        Ok(self.config_id << CONFIG_ID_SHIFT | low)
    }

    /// The connection ID for `server_id` and `nonce` (§5.2, §5.4).
    pub fn encode(&self, server_id: &[u8], nonce: &[u8], first: FirstOctet) -> Result<Octets, EncodeError> {
        if server_id.len() != self.server_id_len() {
            return Err(EncodeError::ServerIdLen { expected: self.server_id_len(), got: server_id.len() });
        }
        if nonce.len() != self.nonce_len() {
            return Err(EncodeError::NonceLen { expected: self.nonce_len(), got: nonce.len() });
        }
        let first = self.first_octet(first)?;
        let mut plaintext = [0u8; MAX_PLAINTEXT_LEN];
        let len = self.plaintext_len();
        plaintext[..server_id.len()].copy_from_slice(server_id);
        plaintext[server_id.len()..len].copy_from_slice(nonce);
        let plaintext = &plaintext[..len];
        let body = match (&self.key, self.mode()) {
            (Some(key), Mode::SinglePass) => single_pass(key, plaintext, true),
            (Some(key), _) => four_pass_encrypt(key, plaintext),
            (None, _) => Octets::from_slice(plaintext).expect("at most 19 octets"),
        };
        let mut cid = Octets::zeroed(1 + len);
        cid.as_mut_slice()[0] = first;
        cid.as_mut_slice()[1..].copy_from_slice(&body);
        Ok(cid)
    }

    /// The server ID (and nonce) in `cid` (§5.5). Octets past the layout's
    /// length (which the draft lets a server append for its own use) are
    /// ignored, as a load balancer ignores them.
    pub fn decode(&self, cid: &[u8]) -> Result<Decoded, DecodeError> {
        match config_id_of(cid) {
            None => return Err(DecodeError::Empty),
            Some(UNROUTABLE_CONFIG_ID) => return Err(DecodeError::Unroutable),
            Some(id) if id != self.config_id => return Err(DecodeError::UnknownConfig(id)),
            Some(_) => {}
        }
        if cid.len() < self.cid_len() {
            return Err(DecodeError::TooShort { need: self.cid_len(), got: cid.len() });
        }
        let body = &cid[1..self.cid_len()];
        let plaintext = match (&self.key, self.mode()) {
            (Some(key), Mode::SinglePass) => single_pass(key, body, false),
            (Some(key), _) => four_pass_decrypt(key, body),
            (None, _) => Octets::from_slice(body).expect("at most 19 octets"),
        };
        let (sid, nonce) = plaintext.split_at(self.server_id_len());
        Ok(Decoded {
            config_id: self.config_id,
            server_id: Octets::from_slice(sid).expect("at most 15 octets"),
            nonce: Octets::from_slice(nonce).expect("at most 18 octets"),
        })
    }
}

/// What a connection ID carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    pub config_id: u8,
    pub server_id: Octets,
    pub nonce: Octets,
}

/// A load balancer's view: up to seven layouts, chosen by a CID's config
/// ID (several at once during a key rotation).
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    layouts: [Option<Layout>; UNROUTABLE_CONFIG_ID as usize],
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Adds `layout` under its config ID; returns the one it replaces.
    pub fn insert(&mut self, layout: Layout) -> Option<Layout> {
        let id = layout.config_id as usize;
        self.layouts[id].replace(layout)
    }

    pub fn remove(&mut self, config_id: u8) -> Option<Layout> {
        self.layouts.get_mut(config_id as usize).and_then(Option::take)
    }

    pub fn decode(&self, cid: &[u8]) -> Result<Decoded, DecodeError> {
        let id = config_id_of(cid).ok_or(DecodeError::Empty)?;
        if id == UNROUTABLE_CONFIG_ID {
            return Err(DecodeError::Unroutable);
        }
        self.layouts[id as usize].as_ref().ok_or(DecodeError::UnknownConfig(id))?.decode(cid)
    }
}

// ---------------------------------------------------------------------------
// Config: what a server knows
// ---------------------------------------------------------------------------

/// One server's QUIC-LB configuration: a [`Layout`] and its own server ID.
#[derive(Debug, Clone)]
pub struct Config {
    layout: Layout,
    server_id: Octets,
}

impl Config {
    pub fn new(config_id: u8, server_id: &[u8], nonce_len: usize, key: Option<[u8; KEY_LEN]>)
               -> Result<Config, ConfigError> {
        let layout = Layout::new(config_id, server_id.len(), nonce_len, key)?;
        let server_id = Octets::from_slice(server_id).expect("checked by Layout::new");
        Ok(Config { layout, server_id })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn server_id(&self) -> &[u8] {
        &self.server_id
    }

    pub fn cid_len(&self) -> usize {
        self.layout.cid_len()
    }

    /// Our CID with `nonce`.
    pub fn encode(&self, nonce: &[u8], first: FirstOctet) -> Result<Octets, EncodeError> {
        self.layout.encode(&self.server_id, nonce, first)
    }

    /// A fresh CID with a random nonce (fails only for a worker index
    /// above 31). Random nonces repeat after about 2^(4 * nonce_len) CIDs
    /// (the birthday bound); with a key and a short nonce use [`Generator`].
    pub fn generate(&self, first: FirstOctet) -> Result<Octets, EncodeError> {
        let mut nonce = [0u8; MAX_NONCE_LEN];
        let nonce = &mut nonce[..self.layout.nonce_len()];
        random_bytes(nonce);
        self.encode(nonce, first)
    }

    /// Whether `cid` decodes, under this configuration, to our server ID.
    pub fn is_own(&self, cid: &[u8]) -> bool {
        matches!(self.layout.decode(cid), Ok(d) if d.server_id == self.server_id)
    }
}

// ---------------------------------------------------------------------------
// Generator: one worker's source of CIDs
// ---------------------------------------------------------------------------

/// The draft's nonce counter (§8.6): starts at a random value, counts up
/// (big-endian, wrapping), and reports exhaustion when it would come back to
/// where it started. With a worker index the top five bits of the nonce
/// hold it and only the bits below count, so workers sharing a server ID
/// and key draw from disjoint nonce spaces.
#[derive(Debug, Clone)]
struct NonceCounter {
    next: Octets,
    start: Octets,
    /// Mask of the bits of the first nonce octet that count (0xff without
    /// a worker, 0x07 with one).
    first_mask: u8,
    exhausted: bool,
}

impl NonceCounter {
    fn new(len: usize, worker: Option<u8>) -> NonceCounter {
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

    fn take(&mut self) -> Result<Octets, NonceSpaceExhausted> {
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
/// unlinkable). With a key, nonces come from a counter ([`NonceCounter`]
/// above), never repeating until the key is replaced. Keep exactly one
/// generator per worker and configuration.
#[derive(Debug, Clone)]
pub struct Generator {
    config: Config,
    worker: Option<u8>,
    counter: Option<NonceCounter>,
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
        let counter = config.layout.has_key().then(|| NonceCounter::new(config.layout.nonce_len(), worker));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        assert!(s.len() % 2 == 0, "odd hex string {s}");
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn key(s: &str) -> [u8; KEY_LEN] {
        hex(s).try_into().unwrap()
    }

    /// Appendix B's key for every encrypted vector.
    const KEY_B: &str = "8f95f09245765f80256934e50c66207f";

    /// One vector: the layout, server ID and nonce encode (with the length
    /// self-described, as in every Appendix B vector) to exactly `cid`, and
    /// `cid` decodes back to both.
    fn check_vector(config_id: u8, sid: &str, nonce: &str, key: Option<&str>, cid: &str) {
        let (sid, nonce, cid) = (hex(sid), hex(nonce), hex(cid));
        let layout = Layout::new(config_id, sid.len(), nonce.len(), key.map(self::key)).unwrap();
        let encoded = layout.encode(&sid, &nonce, FirstOctet::Length).unwrap();
        assert_eq!(&encoded[..], &cid[..], "encode");
        let decoded = layout.decode(&cid).unwrap();
        assert_eq!(decoded.config_id, config_id);
        assert_eq!(&decoded.server_id[..], &sid[..], "decoded server ID");
        assert_eq!(&decoded.nonce[..], &nonce[..], "decoded nonce");
        // The server's view agrees.
        let config = Config::new(config_id, &sid, nonce.len(), key.map(self::key)).unwrap();
        assert_eq!(&config.encode(&nonce, FirstOctet::Length).unwrap()[..], &cid[..]);
        assert!(config.is_own(&cid));
    }

    // -- Appendix B.1, unencrypted CIDs --------------------------------------

    #[test]
    fn appendix_b1_unencrypted_vector_1() {
        check_vector(0, "c4605e", "4504cc4f", None, "07c4605e4504cc4f");
    }

    /// The draft prints this row as `1 350d28b420 3487d970b
    /// 20a350d28b4203487d970b`: a nonce of nine hex digits and a first octet
    /// of three. Every field was evidently printed as an unpadded hex
    /// integer (the first octet as `hex(cr << 5)` then `hex(length)`, which
    /// also reproduces row 1's `0` `7`): the nonce is the integer
    /// 0x3487d970b in five octets, 03487d970b, and the first octet is
    /// 0x20 | 0x0a = 0x2a for an 11-octet CID. That reading keeps the
    /// server ID's inner `0d` and the row's 22 digits consistent; reading
    /// the digits as unpadded bytes instead would have printed the server
    /// ID as 35d28b420.
    #[test]
    fn appendix_b1_unencrypted_vector_2() {
        check_vector(1, "350d28b420", "03487d970b", None, "2a350d28b42003487d970b");
    }

    // -- Appendix B.2, encrypted CIDs ----------------------------------------

    /// Server ID + nonce = 7 octets (odd): four passes, nibble split.
    #[test]
    fn appendix_b2_encrypted_vector_1() {
        check_vector(0, "ed793a", "ee080dbf", Some(KEY_B), "0720b1d07b359d3c");
    }

    /// 10 + 5 = 15 octets (odd), server ID longer than the nonce: decoding
    /// needs the fourth pass.
    #[test]
    fn appendix_b2_encrypted_vector_2() {
        check_vector(1, "ed793a51d49b8f5fab65", "ee080dbf48", Some(KEY_B), "2fcc381bc74cb4fbad2823a3d1f8fed2");
    }

    /// 8 + 8 = 16 octets: the single-pass AES-ECB special case.
    #[test]
    fn appendix_b2_encrypted_vector_3() {
        let layout = Layout::new(2, 8, 8, Some(key(KEY_B))).unwrap();
        assert_eq!(layout.mode(), Mode::SinglePass);
        check_vector(2, "ed793a51d49b8f5f", "ee080dbf48c0d1e5", Some(KEY_B), "504dd2d05a7b0de9b2b9907afb5ecf8cc3");
    }

    /// 9 + 9 = 18 octets (even), four passes. The draft's table labels this
    /// row cr_bits 3, but its CID's first octet 0x12 is config ID 0 with
    /// length 18; the first octet is not an input to the encryption, so the
    /// ciphertext is the same under either config ID. Checked both ways.
    #[test]
    fn appendix_b2_encrypted_vector_4() {
        let (sid, nonce) = ("ed793a51d49b8f5fab", "ee080dbf48c0d1e55d");
        let body = "5779c9cc86beb3a3a4a3ca96fce4bfe0cdbc";
        check_vector(0, sid, nonce, Some(KEY_B), &format!("12{body}"));
        check_vector(3, sid, nonce, Some(KEY_B), &format!("72{body}"));
    }

    // -- §5.4.2's worked example and helper functions -------------------------

    #[test]
    fn expand_and_truncate_examples() {
        assert_eq!(expand(0x06, 0x02, &hex("aaba3c")).to_vec(), hex("aaba3c00000000000000000000000602"));
        // The example's step 3 input.
        assert_eq!(expand(7, 1, &hex("31441a90")).to_vec(), hex("31441a90000000000000000000000701"));
    }

    #[test]
    fn split_shares_the_middle_octet_by_nibbles() {
        // The draft's own example: 0x7040b81b55ccf3 -> 0x7040b810, 0x0b55ccf3.
        let (l, r) = split(&hex("7040b81b55ccf3"));
        assert_eq!(l[..4].to_vec(), hex("7040b810"));
        assert_eq!(r[..4].to_vec(), hex("0b55ccf3"));
        assert_eq!(&merge(&l, &r, 7)[..], &hex("7040b81b55ccf3")[..]);
        let (l, r) = split(&hex("0102030405060708"));
        assert_eq!((l[..4].to_vec(), r[..4].to_vec()), (hex("01020304"), hex("05060708")));
    }

    /// §5.4.2's "Encryption Example", step by step: the AES outputs of
    /// passes 1-4 and the final CID 0x0767947d29be054a.
    #[test]
    fn four_pass_encryption_example() {
        let k = key("fdf726a9893ec05c0632d3956680baf0");
        let mut aes = Aes::new(&k, true);
        assert_eq!(aes.block(&expand(7, 1, &hex("31441a90"))).to_vec(), hex("a255dd8cdacf01948d3a848c3c7fee23"));
        assert_eq!(aes.block(&expand(7, 2, &hex("0e3c1ff9"))).to_vec(), hex("e5e452cb9e1bedb0b2bf830506bf4c4e"));
        assert_eq!(aes.block(&expand(7, 3, &hex("d4a04850"))).to_vec(), hex("b7821ab3024fed0913b6a04d18e3216f"));
        assert_eq!(aes.block(&expand(7, 4, &hex("09be054a"))).to_vec(), hex("b334357cfdf81e3fafe180154eaf7378"));
        check_vector(0, "31441a", "9c69c275", Some("fdf726a9893ec05c0632d3956680baf0"), "0767947d29be054a");
    }

    // -- Beyond the vectors ---------------------------------------------------

    /// Every legal (server ID, nonce) length pair, keyed and not: encode
    /// then decode is the identity, and the CID has the layout's length.
    #[test]
    fn every_length_round_trips() {
        let k = key(KEY_B);
        for sid_len in MIN_SERVER_ID_LEN..=MAX_SERVER_ID_LEN {
            for nonce_len in MIN_NONCE_LEN..=MAX_PLAINTEXT_LEN - sid_len {
                for key in [None, Some(k)] {
                    let mut sid = vec![0u8; sid_len];
                    let mut nonce = vec![0u8; nonce_len];
                    for _ in 0..20 {
                        random_bytes(&mut sid);
                        random_bytes(&mut nonce);
                        let layout = Layout::new(5, sid_len, nonce_len, key).unwrap();
                        let cid = layout.encode(&sid, &nonce, FirstOctet::Random).unwrap();
                        assert_eq!(cid.len(), 1 + sid_len + nonce_len);
                        assert_eq!(config_id_of(&cid), Some(5));
                        let d = layout.decode(&cid).unwrap();
                        assert_eq!((&d.server_id[..], &d.nonce[..]), (&sid[..], &nonce[..]), "{sid_len}+{nonce_len} {key:?}");
                        if key.is_none() {
                            assert_eq!(&cid[1..1 + sid_len], &sid[..]);
                        } else if sid_len >= 4 {
                            // Encrypted: the server ID is not in the clear
                            // (a shorter one matches by chance too often).
                            assert_ne!(&cid[1..1 + sid_len], &sid[..], "{sid_len}+{nonce_len}");
                        }
                    }
                }
            }
        }
    }

    /// A change of one nonce bit changes the encrypted server ID octets (the
    /// point of encrypting: CIDs of one server look unrelated).
    #[test]
    fn encrypted_cids_of_one_server_look_unrelated() {
        for (sid_len, nonce_len) in [(3, 4), (8, 8), (10, 5), (9, 9), (2, 13)] {
            let layout = Layout::new(0, sid_len, nonce_len, Some(key(KEY_B))).unwrap();
            let sid = vec![0x42; sid_len];
            let mut nonce = vec![0u8; nonce_len];
            let a = layout.encode(&sid, &nonce, FirstOctet::Worker(0)).unwrap();
            *nonce.last_mut().unwrap() ^= 1;
            let b = layout.encode(&sid, &nonce, FirstOctet::Worker(0)).unwrap();
            assert_ne!(a[1..1 + sid_len], b[1..1 + sid_len], "{sid_len}+{nonce_len}");
        }
    }

    #[test]
    fn first_octet_carries_config_id_and_the_chosen_low_bits() {
        let c = Config::new(6, &[1, 2], 13, Some(key(KEY_B))).unwrap();
        for w in 0..=31 {
            let cid = c.generate(FirstOctet::Worker(w)).unwrap();
            assert_eq!(cid[0], 6 << 5 | w);
            assert!(c.is_own(&cid));
        }
        assert_eq!(c.generate(FirstOctet::Worker(32)), Err(EncodeError::Worker(32)));
        assert_eq!(c.generate(FirstOctet::Length).unwrap()[0], 6 << 5 | 15);
        // Random low bits: 64 draws all alike would be a 2^-310 fluke.
        let lows: std::collections::HashSet<u8> =
            (0..64).map(|_| c.generate(FirstOctet::Random).unwrap()[0] & LOW_BITS_MASK).collect();
        assert!(lows.len() > 1);
        assert!((0..64).all(|_| config_id_of(&c.generate(FirstOctet::Random).unwrap()) == Some(6)));
    }

    #[test]
    fn generated_cids_are_fresh_and_own() {
        let plain = Config::new(0, &[0xab, 0xcd], 13, None).unwrap();
        let keyed = Config::new(1, &[0xab, 0xcd], 13, Some(key(KEY_B))).unwrap();
        for c in [&plain, &keyed] {
            let cids: std::collections::HashSet<Vec<u8>> =
                (0..1000).map(|_| c.generate(FirstOctet::Worker(3)).unwrap().to_vec()).collect();
            assert_eq!(cids.len(), 1000);
            assert!(cids.iter().all(|cid| c.is_own(cid) && cid.len() == 16));
        }
        // The plaintext layout shows the server ID right after the first
        // octet (what `--server-id` alone will configure).
        assert_eq!(&plain.generate(FirstOctet::Random).unwrap()[1..3], &[0xab, 0xcd]);
    }

    #[test]
    fn invalid_configurations_are_refused() {
        assert_eq!(Layout::new(7, 3, 4, None).unwrap_err(), ConfigError::ConfigId(7));
        assert_eq!(Layout::new(8, 3, 4, None).unwrap_err(), ConfigError::ConfigId(8));
        assert_eq!(Layout::new(0, 0, 4, None).unwrap_err(), ConfigError::ServerIdLen(0));
        assert_eq!(Layout::new(0, 16, 4, None).unwrap_err(), ConfigError::ServerIdLen(16));
        assert_eq!(Layout::new(0, 3, 3, None).unwrap_err(), ConfigError::NonceLen(3));
        assert_eq!(Layout::new(0, 1, 19, None).unwrap_err(), ConfigError::NonceLen(19));
        assert_eq!(Layout::new(0, 15, 5, None).unwrap_err(), ConfigError::TooLong(20));
        assert!(Layout::new(6, 15, 4, None).is_ok());
        assert!(Layout::new(0, 1, 18, Some([0; 16])).is_ok());
        assert!(Config::new(0, &[0; 16], 4, None).is_err());
        assert!(Config::new(0, &[], 4, None).is_err());
    }

    #[test]
    fn wrong_inputs_to_encode_are_refused() {
        let l = Layout::new(0, 3, 4, None).unwrap();
        assert_eq!(l.encode(&[1, 2], &[0; 4], FirstOctet::Length), Err(EncodeError::ServerIdLen { expected: 3, got: 2 }));
        assert_eq!(l.encode(&[1, 2, 3], &[0; 5], FirstOctet::Length), Err(EncodeError::NonceLen { expected: 4, got: 5 }));
    }

    #[test]
    fn decode_refuses_other_configs_short_and_unroutable_cids() {
        let l = Layout::new(0, 3, 4, Some(key(KEY_B))).unwrap();
        let cid = hex("0720b1d07b359d3c");
        assert_eq!(l.decode(&[]), Err(DecodeError::Empty));
        assert_eq!(l.decode(&hex("2720b1d07b359d3c")), Err(DecodeError::UnknownConfig(1)));
        assert_eq!(l.decode(&hex("e720b1d07b359d3c")), Err(DecodeError::Unroutable));
        assert_eq!(l.decode(&cid[..7]), Err(DecodeError::TooShort { need: 8, got: 7 }));
        // Octets a server appended for its own use are ignored.
        let mut longer = cid.clone();
        longer.extend_from_slice(&[9, 9]);
        assert_eq!(&l.decode(&longer).unwrap().server_id[..], &hex("ed793a")[..]);
        // Another server's CID is not ours; neither is a flipped bit's.
        let mine = Config::new(0, &hex("ed793a"), 4, Some(key(KEY_B))).unwrap();
        let other = Config::new(0, &hex("ed793b"), 4, Some(key(KEY_B))).unwrap();
        assert!(mine.is_own(&cid) && !other.is_own(&cid));
        let mut flipped = cid.clone();
        flipped[2] ^= 0x01;
        assert!(!mine.is_own(&flipped));
    }

    /// A load balancer holding several configurations picks by config ID:
    /// the Appendix B vectors decode side by side through one decoder.
    #[test]
    fn decoder_picks_the_layout_by_config_id() {
        let mut d = Decoder::new();
        assert!(d.insert(Layout::new(0, 3, 4, Some(key(KEY_B))).unwrap()).is_none());
        d.insert(Layout::new(1, 10, 5, Some(key(KEY_B))).unwrap());
        d.insert(Layout::new(2, 8, 8, Some(key(KEY_B))).unwrap());
        assert_eq!(&d.decode(&hex("0720b1d07b359d3c")).unwrap().server_id[..], &hex("ed793a")[..]);
        assert_eq!(&d.decode(&hex("2fcc381bc74cb4fbad2823a3d1f8fed2")).unwrap().server_id[..],
                   &hex("ed793a51d49b8f5fab65")[..]);
        assert_eq!(&d.decode(&hex("504dd2d05a7b0de9b2b9907afb5ecf8cc3")).unwrap().server_id[..],
                   &hex("ed793a51d49b8f5f")[..]);
        assert_eq!(d.decode(&hex("6011223344556677")), Err(DecodeError::UnknownConfig(3)));
        assert_eq!(d.decode(&hex("f011223344556677")), Err(DecodeError::Unroutable));
        assert_eq!(d.decode(&[]), Err(DecodeError::Empty));
        // Rotation: config 0 replaced by a plaintext layout.
        assert!(d.insert(Layout::new(0, 3, 4, None).unwrap()).is_some());
        assert_eq!(&d.decode(&hex("07c4605e4504cc4f")).unwrap().server_id[..], &hex("c4605e")[..]);
        assert!(d.remove(0).is_some() && d.remove(0).is_none() && d.remove(9).is_none());
        assert_eq!(d.decode(&hex("07c4605e4504cc4f")), Err(DecodeError::UnknownConfig(0)));
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let c = Config::new(0, &[1], 4, Some(key(KEY_B))).unwrap();
        let s = format!("{c:?} {:?}", c.layout());
        assert!(!s.contains("8f") && !s.contains("143"), "{s}");
        assert!(s.contains("FourPass"), "{s}");
    }

    // -- Generator and its nonce counter --------------------------------------

    #[test]
    fn generator_without_key_draws_random_nonces() {
        let mut g = Generator::new(Config::new(0, &[7], 4, None).unwrap(), Some(2)).unwrap();
        assert!(g.counter.is_none());
        let a = g.next_cid().unwrap();
        let b = g.next_cid().unwrap();
        assert_ne!(a, b);
        assert_eq!((a[0], a[1], a.len()), (2, 7, 6));
    }

    #[test]
    fn generator_with_key_counts_inside_its_workers_partition() {
        let config = Config::new(0, &[7, 7, 7], 4, Some(key(KEY_B))).unwrap();
        let mut g = Generator::new(config.clone(), Some(21)).unwrap();
        let mut prev: Option<u32> = None;
        for _ in 0..100 {
            let cid = g.next_cid().unwrap();
            assert_eq!(cid[0], 21);
            let d = config.layout().decode(&cid).unwrap();
            assert_eq!(&d.server_id[..], &[7, 7, 7]);
            assert_eq!(d.nonce[0] >> 3, 21, "worker in the nonce's top five bits");
            let n = u32::from_be_bytes(d.nonce[..].try_into().unwrap()) & 0x07ff_ffff;
            if let Some(p) = prev {
                assert_eq!(n, (p + 1) & 0x07ff_ffff, "counts by one");
            }
            prev = Some(n);
        }
        assert_eq!(Generator::new(config, Some(32)).unwrap_err(), EncodeError::Worker(32));
    }

    #[test]
    fn two_workers_never_share_a_nonce() {
        let config = Config::new(0, &[1], 4, Some(key(KEY_B))).unwrap();
        let nonces = |w| {
            let mut g = Generator::new(config.clone(), Some(w)).unwrap();
            (0..200).map(|_| config.layout().decode(&g.next_cid().unwrap()).unwrap().nonce).collect::<Vec<_>>()
        };
        let (a, b) = (nonces(0), nonces(1));
        assert!(a.iter().all(|n| !b.contains(n)));
    }

    #[test]
    fn counter_wraps_inside_the_partition_and_stops_where_it_started() {
        // Worker 9: top five bits 01001; the 27 bits below count.
        let mut c = NonceCounter::new(4, Some(9));
        c.start = Octets::from_slice(&[0x4a, 0x00, 0x00, 0x00]).unwrap();
        c.next = Octets::from_slice(&[0x4f, 0xff, 0xff, 0xfe]).unwrap();
        assert_eq!(&c.take().unwrap()[..], &[0x4f, 0xff, 0xff, 0xfe]);
        assert_eq!(&c.take().unwrap()[..], &[0x4f, 0xff, 0xff, 0xff]);
        // Wraps to the partition's zero, keeping the worker bits.
        assert_eq!(&c.take().unwrap()[..], &[0x48, 0x00, 0x00, 0x00]);
        c.next = Octets::from_slice(&[0x49, 0xff, 0xff, 0xff]).unwrap();
        assert_eq!(&c.take().unwrap()[..], &[0x49, 0xff, 0xff, 0xff]);
        // The next one would be the start: exhausted, and it stays so.
        assert_eq!(c.take(), Err(NonceSpaceExhausted));
        assert_eq!(c.take(), Err(NonceSpaceExhausted));
        // Without a worker the whole first octet counts.
        let mut c = NonceCounter::new(4, None);
        c.start = Octets::from_slice(&[0x10, 0, 0, 0]).unwrap();
        c.next = Octets::from_slice(&[0xff, 0xff, 0xff, 0xff]).unwrap();
        c.take().unwrap();
        assert_eq!(&c.next[..], &[0, 0, 0, 0]);
    }

    #[test]
    fn generator_reports_exhaustion() {
        let mut g = Generator::new(Config::new(0, &[1], 4, Some(key(KEY_B))).unwrap(), None).unwrap();
        let counter = g.counter.as_mut().unwrap();
        counter.next = counter.start;
        // Step to the last nonce before the start.
        let n = counter.next.as_mut_slice();
        let v = u32::from_be_bytes(n[..].try_into().unwrap()).wrapping_sub(1);
        n.copy_from_slice(&v.to_be_bytes());
        assert!(g.next_cid().is_ok());
        assert_eq!(g.next_cid(), Err(NonceSpaceExhausted));
    }
}
