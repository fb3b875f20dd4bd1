//! TLS session-ticket keys shared by every worker and every host, with a
//! rotation that loses no resumption.
//!
//! A session ticket is the server's own state, encrypted under its ticket
//! key, that a client presents to resume (and to send 0-RTT data). Workers
//! and hosts that share the key resume each other's clients. quiche 0.30
//! offers one key per `quiche_config` (`quiche_config_set_ticket_key`,
//! BoringSSL's `SSL_CTX_set_tlsext_ticket_keys`), and setting it drops the
//! previous one: a ticket issued a second before a rotation no longer
//! resumes. So the configs made by [`new_config`] carry BoringSSL's ticket
//! key callback instead, which reads the process-wide keys set with
//! [`set_keys`]: tickets are issued under the current key, and a ticket
//! under the previous one still resumes (and its client gets a fresh
//! ticket under the current key at once).
//!
//! Keys are BoringSSL's 48-byte format, the one quiche's
//! `set_ticket_key` takes: a 16-byte key name (sent in the clear in every
//! ticket, to find the key), a 16-byte HMAC-SHA256 key and a 16-byte
//! AES-128-CBC key. Until [`set_keys`] is called, the process uses one
//! random key (every config of the process shares it, so the workers of
//! a process resume each other's clients anyway).

use std::sync::{OnceLock, RwLock};

use boring::hash::MessageDigest;
use boring::hmac::HmacCtxRef;
use boring::ssl::{SslContextBuilder, SslMethod, SslRef, TicketKeyCallbackResult};
use boring::symm::{Cipher, CipherCtxRef};

use crate::crypto::random_bytes;

/// Length of a ticket key: name, HMAC key, AES key.
pub const TICKET_KEY_LEN: usize = 48;
const NAME: std::ops::Range<usize> = 0..16;
const HMAC_KEY: std::ops::Range<usize> = 16..32;
const AES_KEY: std::ops::Range<usize> = 32..48;

/// The process's ticket keys.
#[derive(Clone, Copy)]
pub struct TicketKeys {
    pub current: [u8; TICKET_KEY_LEN],
    pub previous: Option<[u8; TICKET_KEY_LEN]>,
}

fn store() -> &'static RwLock<TicketKeys> {
    static KEYS: OnceLock<RwLock<TicketKeys>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut current = [0u8; TICKET_KEY_LEN];
        random_bytes(&mut current);
        RwLock::new(TicketKeys { current, previous: None })
    })
}

/// Sets the keys every config of [`new_config`] uses from now on (any
/// thread; connections in progress are not affected).
pub fn set_keys(keys: TicketKeys) {
    *store().write().unwrap_or_else(|p| p.into_inner()) = keys;
}

pub fn keys() -> TicketKeys {
    *store().read().unwrap_or_else(|p| p.into_inner())
}

/// A quiche config whose session tickets use the process's keys (see the
/// module documentation); otherwise as `quiche::Config::new` makes it
/// (same TLS method, the system's CA paths for a client).
pub fn new_config(version: u32) -> Result<quiche::Config, String> {
    let mut b = SslContextBuilder::new(SslMethod::tls()).map_err(|e| format!("TLS context: {e}"))?;
    b.set_default_verify_paths().map_err(|e| format!("TLS context: {e}"))?;
    // SAFETY: the callback sets the key name, the IV, the cipher and the
    // HMAC contexts as BoringSSL documents for SSL_CTX_set_tlsext_ticket_key_cb.
    unsafe { b.set_ticket_key_callback(ticket_key) };
    quiche::Config::with_boring_ssl_ctx_builder(version, b).map_err(|e| format!("quiche config: {e:?}"))
}

/// BoringSSL's ticket key callback: on `encrypt`, name the current key,
/// draw an IV and set the contexts up with it; otherwise find the key the
/// ticket names (current: resume; previous: resume and renew the ticket;
/// none: a full handshake).
fn ticket_key(_ssl: &SslRef, name: &mut [u8; 16], iv: &mut [u8; 16], cipher: &mut CipherCtxRef,
              hmac: &mut HmacCtxRef, encrypt: bool) -> TicketKeyCallbackResult {
    let keys = keys();
    let (key, result) = if encrypt {
        name.copy_from_slice(&keys.current[NAME]);
        random_bytes(iv);
        (keys.current, TicketKeyCallbackResult::Success)
    } else if name[..] == keys.current[NAME] {
        (keys.current, TicketKeyCallbackResult::Success)
    } else {
        match keys.previous {
            Some(p) if name[..] == p[NAME] => (p, TicketKeyCallbackResult::DecryptSuccessRenew),
            _ => return TicketKeyCallbackResult::Noop,
        }
    };
    let aes = Cipher::aes_128_cbc();
    let ok = if encrypt {
        cipher.init_encrypt(&aes, &key[AES_KEY], iv)
    } else {
        cipher.init_decrypt(&aes, &key[AES_KEY], iv)
    };
    if ok.and_then(|_| hmac.init(&key[HMAC_KEY], &MessageDigest::sha256())).is_err() {
        return TicketKeyCallbackResult::Error;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    /// A server config from `new_config` with what the in-memory pairs
    /// use, early data on.
    fn server_config() -> quiche::Config {
        let mut c = new_config(quiche::PROTOCOL_VERSION).unwrap();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/c-examples");
        c.load_cert_chain_from_pem_file(&format!("{dir}/cert.crt")).expect("run `make` first");
        c.load_priv_key_from_pem_file(&format!("{dir}/cert.key")).unwrap();
        tune(&mut c);
        c
    }

    fn tune(c: &mut quiche::Config) {
        c.set_application_protos(&[b"hq-interop"]).unwrap();
        c.set_initial_max_data(1_000_000);
        c.set_initial_max_stream_data_bidi_local(1_000_000);
        c.set_initial_max_stream_data_bidi_remote(1_000_000);
        c.set_initial_max_streams_bidi(10);
        c.enable_early_data();
        c.verify_peer(false);
    }

    fn addrs() -> (SocketAddr, SocketAddr) {
        ("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap())
    }

    /// One connection from a fresh client to a server on `server_cfg`,
    /// resuming `session` (with a request in 0-RTT) if given: whether the
    /// server resumed it, whether its 0-RTT request arrived before the
    /// handshake completed, and the client's session afterwards (a ticket
    /// it got).
    fn connect(server_cfg: &mut quiche::Config, session: Option<&[u8]>) -> (bool, bool, Vec<u8>) {
        let (a, b) = addrs();
        let mut cc = quiche::Config::new(quiche::PROTOCOL_VERSION).unwrap();
        tune(&mut cc);
        let mut scid = [0u8; 16];
        random_bytes(&mut scid);
        let mut client = quiche::connect(None, &quiche::ConnectionId::from_ref(&scid), a, b, &mut cc).unwrap();
        if let Some(s) = session {
            client.set_session(s).unwrap();
            client.stream_send(0, b"early", true).unwrap();
        }
        let mut buf = [0u8; 1500];
        let (n, _) = client.send(&mut buf).unwrap();
        let hdr = quiche::Header::from_slice(&mut buf[..n], 16).unwrap();
        random_bytes(&mut scid);
        let mut server = quiche::accept(&quiche::ConnectionId::from_ref(&scid), None, b, a, server_cfg).unwrap();
        let _ = hdr;
        server.recv(&mut buf[..n], quiche::RecvInfo { from: a, to: b }).unwrap();
        let mut early = false;
        for _ in 0..20 {
            if !server.is_established() && server.readable().any(|s| s == 0) {
                early = true;
            }
            while let Ok((n, _)) = client.send(&mut buf) {
                server.recv(&mut buf[..n], quiche::RecvInfo { from: a, to: b }).unwrap();
            }
            if !server.is_established() && server.readable().any(|s| s == 0) {
                early = true;
            }
            while let Ok((n, _)) = server.send(&mut buf) {
                client.recv(&mut buf[..n], quiche::RecvInfo { from: b, to: a }).unwrap();
            }
        }
        assert!(client.is_established() && server.is_established());
        (server.is_resumed(), early, client.session().expect("the server sent a ticket").to_vec())
    }

    fn key(seed: u8) -> [u8; TICKET_KEY_LEN] {
        let mut k = [0u8; TICKET_KEY_LEN];
        for (i, b) in k.iter_mut().enumerate() {
            *b = seed.wrapping_mul(31).wrapping_add(i as u8);
        }
        k
    }

    /// Two configs (two workers: two TLS contexts) with the same keys
    /// resume each other's tickets, 0-RTT included; a rotation keeps the
    /// previous key's tickets and renews them; once the old key is gone
    /// its tickets get a full handshake (never a failed one).
    #[test]
    fn tickets_resume_across_configs_and_survive_a_rotation() {
        let (k1, k2, k3) = (key(1), key(2), key(3));
        set_keys(TicketKeys { current: k1, previous: None });
        let (mut w1, mut w2) = (server_config(), server_config());
        let (resumed, _, ticket1) = connect(&mut w1, None);
        assert!(!resumed);
        let (resumed, early, _) = connect(&mut w2, Some(&ticket1));
        assert!(resumed && early, "worker 2 resumed worker 1's ticket with 0-RTT");
        // Rotation: k2 current, k1 still accepted (and the ticket renewed).
        set_keys(TicketKeys { current: k2, previous: Some(k1) });
        let (resumed, early, renewed) = connect(&mut w1, Some(&ticket1));
        assert!(resumed && early, "a ticket under the previous key still resumes");
        // k1 retired: its tickets no longer resume, the renewed one does.
        set_keys(TicketKeys { current: k3, previous: Some(k2) });
        let (resumed, _, _) = connect(&mut w2, Some(&ticket1));
        assert!(!resumed, "the retired key's ticket: a full handshake, which succeeded");
        let (resumed, early, _) = connect(&mut w2, Some(&renewed));
        assert!(resumed && early, "the ticket renewed under k2 resumes");
        // A config made by quiche's own constructor with another key does
        // not read our tickets (the keys are what is shared).
        let mut other = quiche::Config::new(quiche::PROTOCOL_VERSION).unwrap();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/c-examples");
        other.load_cert_chain_from_pem_file(&format!("{dir}/cert.crt")).unwrap();
        other.load_priv_key_from_pem_file(&format!("{dir}/cert.key")).unwrap();
        tune(&mut other);
        let (resumed, _, _) = connect(&mut other, Some(&renewed));
        assert!(!resumed);
    }
}
