//! `quiche_ev_config_new` and `quiche_ev_set_ticket_keys`: TLS session
//! tickets that every worker and host resumes, with key rotation.

use libc::c_int;

use super::errors::report;
use super::guard::{as_bytes, guard};
use super::types::quiche_config;
use super::{QUICHE_EV_ERR_INTERNAL, QUICHE_EV_ERR_INVALID, QUICHE_EV_ERR_NULL};
use crate::tickets::{self, TicketKeys, TICKET_KEY_LEN};

/// Makes a `quiche_config`, exactly as `quiche_config_new(version)` does
/// (use it with every `quiche_config_*` function and free it with
/// `quiche_config_free`), except that its TLS session tickets are
/// encrypted under the process's ticket keys (`quiche_ev_set_ticket_keys`)
/// rather than a key of its own: every server config made this way, in
/// every worker of the process (and, with the same keys, on every host),
/// resumes the others' tickets, 0-RTT included, also across a key
/// rotation. (A config from `quiche_config_new` keeps one key of its own,
/// which `quiche_config_set_ticket_key` replaces, dropping the previous
/// one's tickets.) Returns NULL for an unknown version or when BoringSSL
/// fails (the last error says why).
#[no_mangle]
pub extern "C" fn quiche_ev_config_new(version: u32) -> *mut quiche_config {
    guard(std::ptr::null_mut(), || match tickets::new_config(version) {
        // quiche's own ffi boxes a `quiche::Config` the same way
        // (tests/config_identity.rs), so quiche_config_free frees it.
        Ok(c) => Box::into_raw(Box::new(c)).cast(),
        Err(e) => {
            report(format!("quiche_ev_config_new: {e}"));
            std::ptr::null_mut()
        }
    })
}

/// Sets the TLS session-ticket keys of every config made by
/// `quiche_ev_config_new` in this process, from any thread, effective for
/// the next handshake: new tickets are issued under `current`; a ticket
/// under `previous` (NULL: none) still resumes and its client gets a
/// fresh one under `current`. Each key is 48 bytes, the format of
/// `quiche_config_set_ticket_key`: a 16-byte name (in the clear in every
/// ticket), a 16-byte HMAC-SHA256 key, a 16-byte AES-128 key. Give every
/// host of a fleet the same keys; rotate in two steps, as for
/// `quiche_ev_server_set_token_keys`, and drop the old key once the
/// tickets made under it have expired (BoringSSL: 2 days). Keep them secret:
/// whoever holds them can decrypt the resumption secrets. Until called,
/// the process uses one random key. Returns 0, `QUICHE_EV_ERR_NULL` or
/// `QUICHE_EV_ERR_INVALID` (`len` is not 48).
#[no_mangle]
pub extern "C" fn quiche_ev_set_ticket_keys(current: *const u8, previous: *const u8, len: usize) -> c_int {
    guard(QUICHE_EV_ERR_INTERNAL, || {
        if current.is_null() {
            report("quiche_ev_set_ticket_keys: the current key is required".into());
            return QUICHE_EV_ERR_NULL;
        }
        if len != TICKET_KEY_LEN {
            report(format!("quiche_ev_set_ticket_keys: keys must be {TICKET_KEY_LEN} bytes, not {len}"));
            return QUICHE_EV_ERR_INVALID;
        }
        // SAFETY: non-NULL pointers to len readable bytes (C API contract).
        let read = |p: *const u8| unsafe { as_bytes(p, len) }.and_then(|b| <[u8; TICKET_KEY_LEN]>::try_from(b).ok());
        let Some(cur) = read(current) else { return QUICHE_EV_ERR_INVALID };
        let prev = if previous.is_null() {
            None
        } else {
            match read(previous) {
                Some(p) => Some(p),
                None => return QUICHE_EV_ERR_INVALID,
            }
        };
        tickets::set_keys(TicketKeys { current: cur, previous: prev });
        0
    })
}
