//! `quiche_ev_conn_*`: one server connection, from its established
//! callback (or any of its requests) until its closed callback returns.

use libc::{c_char, c_int, c_void, sockaddr_storage, socklen_t};

use super::guard::{as_str, guard};
use super::types::{copy_sized, quiche_conn, quiche_ev_conn, quiche_ev_stats};
use super::{QUICHE_EV_ERR_INTERNAL, QUICHE_EV_ERR_INVALID, QUICHE_EV_ERR_NULL};
use crate::platform::Real;
use crate::server::{Server, ServerConn};
use crate::socket::std_to_sockaddr;
use crate::transport::Transport;

type E = ServerConn<Real>;

fn conn(p: *const quiche_ev_conn) -> Option<*const E> {
    (!p.is_null()).then_some(p as *const E)
}

/// Attaches the host's pointer to the connection (default NULL).
/// Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_conn_set_user_data(c: *mut quiche_ev_conn, user: *mut c_void) -> c_int {
    guard(QUICHE_EV_ERR_INTERNAL, || match conn(c) {
        Some(e) => {
            // SAFETY: a valid connection handle (C API contract); no other
            // borrow of it is alive during a C API call.
            unsafe { E::app(e).user = user };
            0
        }
        None => QUICHE_EV_ERR_NULL,
    })
}

/// The host's pointer attached to the connection.
#[no_mangle]
pub extern "C" fn quiche_ev_conn_user_data(c: *const quiche_ev_conn) -> *mut c_void {
    guard(std::ptr::null_mut(), || match conn(c) {
        // SAFETY: as in quiche_ev_conn_set_user_data.
        Some(e) => unsafe { E::app(e).user },
        None => std::ptr::null_mut(),
    })
}

/// The underlying `quiche_conn *`, for anything else quiche offers (its
/// C API in quiche.h works on it). Valid as long as the connection handle.
/// After changing it (sending on a stream, closing it...), call
/// `quiche_ev_conn_changed` so the library flushes it; do not free it.
#[no_mangle]
pub extern "C" fn quiche_ev_conn_quiche(c: *mut quiche_ev_conn) -> *mut quiche_conn {
    guard(std::ptr::null_mut(), || match conn(c) {
        // SAFETY: as in quiche_ev_conn_set_user_data; quiche's ffi takes a
        // `quiche::Connection` as `quiche_conn` (pinned version).
        Some(e) => unsafe { E::conn(e) as *mut quiche::Connection as *mut quiche_conn },
        None => std::ptr::null_mut(),
    })
}

/// Tells the library the connection was changed through
/// `quiche_ev_conn_quiche`: it is serviced and flushed before the loop
/// sleeps again. Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_conn_changed(c: *mut quiche_ev_conn) -> c_int {
    guard(QUICHE_EV_ERR_INTERNAL, || match conn(c) {
        Some(e) => {
            // SAFETY: as in quiche_ev_conn_set_user_data.
            unsafe { Server::conn_changed(e) };
            0
        }
        None => QUICHE_EV_ERR_NULL,
    })
}

/// Fills `out` with the connection's numbers so far. Set `out->size =
/// sizeof(*out)` first. Returns 0, `QUICHE_EV_ERR_NULL`, or
/// `QUICHE_EV_ERR_INVALID` for a size too small.
#[no_mangle]
pub extern "C" fn quiche_ev_conn_stats(c: *const quiche_ev_conn, out: *mut quiche_ev_stats) -> c_int {
    guard(QUICHE_EV_ERR_INTERNAL, || {
        let (Some(e), false) = (conn(c), out.is_null()) else { return QUICHE_EV_ERR_NULL };
        // SAFETY: as in quiche_ev_conn_set_user_data.
        let q = unsafe { E::conn(e) };
        let info = q.close_info();
        let full = quiche_ev_stats::of_conn(q, &info);
        // SAFETY: out points to the caller's structure of out->size bytes.
        if unsafe { copy_sized(&full, out) } { 0 } else { QUICHE_EV_ERR_INVALID }
    })
}

/// The peer's current address into `out` (`*len` in: its size; out: the
/// address length). Returns 0, `QUICHE_EV_ERR_NULL`, or
/// `QUICHE_EV_ERR_INVALID` when `*len` is too small.
#[no_mangle]
pub extern "C" fn quiche_ev_conn_peer_addr(c: *const quiche_ev_conn, out: *mut sockaddr_storage,
                                           len: *mut socklen_t) -> c_int {
    guard(QUICHE_EV_ERR_INTERNAL, || {
        let (Some(e), false, false) = (conn(c), out.is_null(), len.is_null()) else { return QUICHE_EV_ERR_NULL };
        // SAFETY: as in quiche_ev_conn_set_user_data.
        let q = unsafe { E::conn(e) };
        let Some(peer) = q.path_stats().next().map(|p| p.peer_addr) else { return QUICHE_EV_ERR_INVALID };
        let (ss, n) = std_to_sockaddr(&peer);
        // SAFETY: len and out are valid (contract).
        unsafe {
            if *len < n {
                return QUICHE_EV_ERR_INVALID;
            }
            std::ptr::copy_nonoverlapping(&ss as *const sockaddr_storage as *const u8, out as *mut u8, n as usize);
            *len = n;
        }
        0
    })
}

/// Closes the connection with the application error `code` and `reason`
/// (NULL for none); its requests end with `QUICHE_EV_REQUEST_CONN_CLOSED`
/// and its closed callback follows. Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_conn_close(c: *mut quiche_ev_conn, code: u64, reason: *const c_char) -> c_int {
    guard(QUICHE_EV_ERR_INTERNAL, || {
        let Some(e) = conn(c) else { return QUICHE_EV_ERR_NULL };
        // SAFETY: reason is NULL or a C string.
        let reason = unsafe { as_str(reason) }.unwrap_or("");
        // SAFETY: as in quiche_ev_conn_set_user_data.
        unsafe {
            let _ = E::conn(e).close(true, code, reason.as_bytes());
            Server::conn_changed(e);
        }
        0
    })
}
