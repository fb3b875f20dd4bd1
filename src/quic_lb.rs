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
//! Two levels of routing, then: the load balancer picks the host by the
//! server ID, the host's kernel picks the worker by the first octet. How
//! the kernel does it, why that allows at most 32 workers, and how the
//! Initial answering a Retry finds the worker that minted the Retry's CID:
//! [`crate::steer`].
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

use crate::crypto::random_bytes;

mod cipher;
mod generator;
#[cfg(test)]
mod tests;

use cipher::{four_pass_decrypt, four_pass_encrypt, single_pass};
pub use generator::Generator;

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
/// configuration (key) must be replaced before issuing more CIDs (§9.6).
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
