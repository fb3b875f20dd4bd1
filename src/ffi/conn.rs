//! `quiche_ev_conn_*`: one server connection, from its established
//! callback (or any of its requests) until its closed callback returns.

use libc::{c_char, c_int, c_void, sockaddr_storage, socklen_t};

use super::guard::{as_str, guard, guard_on};
use super::handles::*;
use super::types::*;
use super::{QUICHE_EV_ERR_INTERNAL, QUICHE_EV_ERR_INVALID, QUICHE_EV_ERR_NULL};
use crate::log::Origin;
use crate::server::{ServerConn, ServerCore};
use crate::socket::std_to_sockaddr;
use crate::transport::Transport;

/// Runs `f` on a live connection, inside its server's panic boundary
/// and with it as the log's origin (NULL gives `null`).
pub(super) fn with<T: Copy>(p: *const quiche_ev_conn, null: T, on_panic: T, f: impl FnOnce(*const SConn) -> T) -> T {
    guard(on_panic, || {
        let Some(e) = quiche_ev_conn::get(p) else { return null };
        // SAFETY: a valid connection handle (C API contract).
        let server = unsafe { ServerConn::server(e) };
        crate::log::within(|o| *o = Origin { server: server.cast(), conn: e.cast(), ..Origin::NONE }, || guard_on(server, on_panic, || f(e)))
    })
}

/// Attaches the host's pointer to the connection (default NULL).
/// Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_conn_set_user_data(c: *mut quiche_ev_conn, user: *mut c_void) -> c_int {
    with(c, QUICHE_EV_ERR_NULL, QUICHE_EV_ERR_INTERNAL, |e| {
        // SAFETY: a valid connection handle (C API contract); no other
        // borrow of it is alive during a C API call.
        unsafe { ServerConn::app(e).user = user };
        0
    })
}

/// The host's pointer attached to the connection.
#[no_mangle]
pub extern "C" fn quiche_ev_conn_user_data(c: *const quiche_ev_conn) -> *mut c_void {
    guard(std::ptr::null_mut(), || match quiche_ev_conn::get(c) {
        // SAFETY: as in quiche_ev_conn_set_user_data.
        Some(e) => unsafe { ServerConn::app(e).user },
        None => std::ptr::null_mut(),
    })
}

/// The underlying `quiche_conn *`, for anything else quiche offers (its
/// C API in quiche.h works on it). Valid as long as the connection handle.
/// After changing it (sending on a stream, closing it...), call
/// `quiche_ev_conn_changed` so the library flushes it; do not free it.
#[no_mangle]
pub extern "C" fn quiche_ev_conn_quiche(c: *mut quiche_ev_conn) -> *mut quiche_conn {
    with(c, std::ptr::null_mut(), std::ptr::null_mut(), |e| {
        // SAFETY: as in quiche_ev_conn_set_user_data.
        quiche_conn::of(unsafe { ServerConn::conn_ptr(e) })
    })
}

/// Tells the library the connection was changed through
/// `quiche_ev_conn_quiche`: it is serviced and flushed before the loop
/// sleeps again. Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_conn_changed(c: *mut quiche_ev_conn) -> c_int {
    with(c, QUICHE_EV_ERR_NULL, QUICHE_EV_ERR_INTERNAL, |e| {
        // SAFETY: as in quiche_ev_conn_set_user_data.
        unsafe { ServerCore::conn_changed(e) };
        0
    })
}

/// Fills `out` with the connection's numbers so far. Set `out->size =
/// sizeof(*out)` first. Returns 0, `QUICHE_EV_ERR_NULL`, or
/// `QUICHE_EV_ERR_INVALID` for a size too small.
#[no_mangle]
pub extern "C" fn quiche_ev_conn_stats(c: *const quiche_ev_conn, out: *mut quiche_ev_stats) -> c_int {
    with(c, QUICHE_EV_ERR_NULL, QUICHE_EV_ERR_INTERNAL, |e| {
        if out.is_null() {
            return QUICHE_EV_ERR_NULL;
        }
        // SAFETY: as in quiche_ev_conn_set_user_data.
        // (close_info borrows the driver's state: taken before the
        // connection is.)
        let full = unsafe {
            let info = ServerConn::close_info(e);
            let app = ServerConn::app(e);
            quiche_ev_stats::of_conn(ServerConn::conn(e), &info, |recv| app.dgram_dropped(recv))
        };
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
    with(c, QUICHE_EV_ERR_NULL, QUICHE_EV_ERR_INTERNAL, |e| {
        if out.is_null() || len.is_null() {
            return QUICHE_EV_ERR_NULL;
        }
        // SAFETY: as in quiche_ev_conn_set_user_data.
        let Some(peer) = (unsafe { ServerConn::conn(e) }).peer_addr() else { return QUICHE_EV_ERR_INVALID };
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
    with(c, QUICHE_EV_ERR_NULL, QUICHE_EV_ERR_INTERNAL, |e| {
        // SAFETY: reason is NULL or a C string.
        let reason = unsafe { as_str(reason) }.unwrap_or("");
        // SAFETY: as in quiche_ev_conn_set_user_data.
        unsafe {
            let _ = ServerConn::conn(e).close(true, code, reason.as_bytes());
            ServerCore::conn_changed(e);
        }
        0
    })
}
