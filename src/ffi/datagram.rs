//! Datagrams from C: QUIC DATAGRAM frames (RFC 9221) on a server
//! connection and on the client's, and HTTP Datagrams (RFC 9297) bound to
//! a request, on either side. Sends never block and never drop: each
//! returns 0 (queued in quiche), or says why not; a send refused because
//! quiche's send queue is full (`QUICHE_EV_ERR_AGAIN`) is followed by the
//! datagram writable callback once there is room. Received datagrams
//! come to callbacks, from the loop.

use libc::{c_int, ssize_t};

use super::client::{host as client_host, req_code, with_or};
use super::guard::{as_bytes, guard};
use super::handles::*;
use super::request::code_of;
use super::server::{host as server_host, State};
use super::types::*;
use super::{QUICHE_EV_ERR_INTERNAL, QUICHE_EV_ERR_NULL};
use crate::app::client as client_ops;
use crate::app::server::{self as server_ops, OpError};

// ---- the wrappers: each starts with the panic guard ----

fn on_conn<T: Copy>(c: *const quiche_ev_conn, null: T, on_panic: T, f: impl FnOnce(*const SConn) -> T) -> T {
    guard(on_panic, || super::conn::with(c, null, on_panic, f))
}

fn on_request<T: Copy>(r: *const quiche_ev_request, null: T, on_panic: T, f: impl FnOnce(*mut Req) -> T) -> T {
    guard(on_panic, || super::request::on_request(r, null, on_panic, f))
}

fn on_server(s: *const quiche_ev_server, f: impl FnOnce(&mut State) -> c_int) -> c_int {
    guard(QUICHE_EV_ERR_INTERNAL, || super::server::with_state(s, f))
}

fn on_client<T: Copy>(c: *const quiche_ev_client, null: T, on_panic: T, f: impl FnOnce(*mut Cli) -> T) -> T {
    guard(on_panic, || with_or(c, null, on_panic, f))
}

/// A send's result as C sees it.
fn sent(r: Result<(), OpError>) -> c_int {
    r.map_or_else(code_of, |()| 0)
}

/// A length, or why there is none.
fn length(r: Result<usize, OpError>) -> ssize_t {
    r.map_or_else(|e| code_of(e) as ssize_t, |n| n as ssize_t)
}

/// `len` bytes at `data`; `None` for NULL with a length.
fn bytes<'a>(data: *const u8, len: usize) -> Option<&'a [u8]> {
    // SAFETY: the caller passes len readable bytes at data (or NULL).
    unsafe { as_bytes(data, len) }
}

// ---- server: connections ----

/// Sends one QUIC datagram (RFC 9221) of `len` bytes (copied) on a server
/// connection. It is unreliable: quiche sends it once, soon, and never
/// again if it is lost. Returns 0 (queued), `QUICHE_EV_ERR_NULL`,
/// `QUICHE_EV_ERR_UNSUPPORTED` (the client does not accept datagrams:
/// its transport parameters have no max_datagram_frame_size),
/// `QUICHE_EV_ERR_TOO_LARGE` (more than `quiche_ev_conn_datagram_max_len`
/// says), `QUICHE_EV_ERR_AGAIN` (quiche's send queue, of
/// `quiche_config_enable_dgram`'s `send_queue_len` datagrams, is full:
/// nothing was queued; the datagram writable callback says when there is
/// room), `QUICHE_EV_ERR_CLOSED` (the connection is closing).
/// On HTTP/3 the client reads every datagram as an HTTP Datagram (RFC
/// 9297): begin it with a Quarter Stream ID, or use
/// `quiche_ev_request_send_datagram`.
#[no_mangle]
pub extern "C" fn quiche_ev_conn_send_datagram(conn: *mut quiche_ev_conn, data: *const u8, len: usize) -> c_int {
    on_conn(conn, QUICHE_EV_ERR_NULL, QUICHE_EV_ERR_INTERNAL, |e| {
        let Some(data) = bytes(data, len) else { return QUICHE_EV_ERR_NULL };
        // SAFETY: a valid connection handle, no borrow alive (C API call).
        sent(unsafe { server_ops::conn_send_datagram(e, data) })
    })
}

/// The largest QUIC datagram payload the connection's peer takes now
/// (its max_datagram_frame_size, and what fits one packet: 1310 bytes
/// with 1350-byte packets), or `QUICHE_EV_ERR_UNSUPPORTED`,
/// `QUICHE_EV_ERR_CLOSED`, `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_conn_datagram_max_len(conn: *const quiche_ev_conn) -> ssize_t {
    on_conn(conn, QUICHE_EV_ERR_NULL as ssize_t, QUICHE_EV_ERR_INTERNAL as ssize_t, |e| {
        // SAFETY: as in quiche_ev_conn_send_datagram.
        length(unsafe { server_ops::conn_datagram_max_len(e) })
    })
}

/// Sets the connection datagram callback: `cb(conn, data, len, user)`
/// once per QUIC datagram received that goes to no request. On hq-interop
/// that is every datagram; on HTTP/3 every datagram is an HTTP Datagram
/// (RFC 9297), which goes to the request its Quarter Stream ID names
/// (`quiche_ev_server_on_request_datagram`), so this one hears those that
/// name no open request (e.g. arriving after their request ended), whole,
/// Quarter Stream ID included. `data` is valid during the call. It runs
/// from the loop, between the connection's established and closed
/// callbacks. Without a callback such datagrams are dropped and counted
/// (`quiche_ev_stats.dgram_dropped`).
///
/// Receiving needs `quiche_config_enable_dgram(config, true,
/// recv_queue_len, send_queue_len)` (quiche then advertises the
/// max_datagram_frame_size transport parameter, and on HTTP/3 sends
/// SETTINGS_H3_DATAGRAM): without it a peer's datagram is a protocol
/// violation that closes the connection. quiche holds at most
/// `recv_queue_len` received datagrams and, when one more arrives, drops
/// the oldest; the library empties that queue after every batch of
/// packets, so only a batch bringing more than `recv_queue_len` for one
/// connection loses some, and `dgram_dropped` counts them. Returns 0 or
/// `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_server_on_datagram(server: *mut quiche_ev_server, cb: quiche_ev_conn_datagram_cb) -> c_int {
    on_server(server, |st| {
        server_host(st).on_datagram = cb;
        0
    })
}

/// Sets the datagram writable callback: `cb(conn, user)` once after a
/// datagram send on that connection (`quiche_ev_conn_send_datagram`, or
/// `quiche_ev_request_send_datagram` on one of its requests) returned
/// `QUICHE_EV_ERR_AGAIN`, when quiche's send queue has room again: send
/// the next one from it. Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_server_on_datagram_writable(server: *mut quiche_ev_server, cb: quiche_ev_conn_cb)
                                                        -> c_int {
    on_server(server, |st| {
        server_host(st).on_datagram_writable = cb;
        0
    })
}

// ---- server: requests ----

/// Sets the request datagram callback: `cb(req, data, len, user)` once
/// per HTTP Datagram (RFC 9297) bound to a request that has no callback
/// of its own (`quiche_ev_request_on_datagram`), with its payload (after
/// the Quarter Stream ID; for CONNECT-UDP, RFC 9298, the payload starts
/// with its Context ID). `data` is valid during the call. It runs from the
/// loop, between the request callback and the request closed callback;
/// datagrams for a request that is over go to the connection datagram
/// callback (`quiche_ev_server_on_datagram`), or are dropped and counted.
/// A request keeps the callback set when it arrived. Returns 0 or
/// `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_server_on_request_datagram(server: *mut quiche_ev_server,
                                                       cb: quiche_ev_request_datagram_cb) -> c_int {
    on_server(server, |st| {
        server_host(st).on_request_datagram = cb;
        0
    })
}

/// This request's own datagram callback (instead of the server's).
/// Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_request_on_datagram(req: *mut quiche_ev_request, cb: quiche_ev_request_datagram_cb)
                                                -> c_int {
    on_request(req, QUICHE_EV_ERR_NULL, QUICHE_EV_ERR_INTERNAL, |r| {
        // SAFETY: a valid request handle; no other reference to it is
        // alive during a C API call.
        unsafe { (*r).host_data.on_datagram = cb };
        0
    })
}

/// Sends one HTTP Datagram (RFC 9297) bound to the request's stream:
/// the library puts the Quarter Stream ID in front of the `len` payload
/// bytes (copied; for CONNECT-UDP the payload starts with a Context ID).
/// Unreliable, as QUIC datagrams are. HTTP/3 only, and only once the
/// client's SETTINGS said it takes them (SETTINGS_H3_DATAGRAM, which
/// quiche sends when datagrams are enabled in its config). Returns 0
/// (queued), `QUICHE_EV_ERR_NULL`, `QUICHE_EV_ERR_UNSUPPORTED` (hq-interop,
/// or the client did not enable HTTP/3 or QUIC datagrams, or its SETTINGS
/// have not arrived yet; the last error says which),
/// `QUICHE_EV_ERR_TOO_LARGE` (more than
/// `quiche_ev_request_datagram_max_len`), `QUICHE_EV_ERR_AGAIN` (quiche's
/// send queue is full; see `quiche_ev_server_on_datagram_writable`),
/// `QUICHE_EV_ERR_CLOSED` (the request or the connection is over),
/// `QUICHE_EV_ERR_STATE` (its response completed).
#[no_mangle]
pub extern "C" fn quiche_ev_request_send_datagram(req: *mut quiche_ev_request, data: *const u8, len: usize) -> c_int {
    on_request(req, QUICHE_EV_ERR_NULL, QUICHE_EV_ERR_INTERNAL, |r| {
        let Some(data) = bytes(data, len) else { return QUICHE_EV_ERR_NULL };
        // SAFETY: a valid request handle, no borrow alive (C API call).
        sent(unsafe { server_ops::send_datagram(r, data) })
    })
}

/// The largest HTTP Datagram payload the request can send now, or as
/// `quiche_ev_request_send_datagram`'s errors.
#[no_mangle]
pub extern "C" fn quiche_ev_request_datagram_max_len(req: *mut quiche_ev_request) -> ssize_t {
    on_request(req, QUICHE_EV_ERR_NULL as ssize_t, QUICHE_EV_ERR_INTERNAL as ssize_t, |r| {
        // SAFETY: as in quiche_ev_request_send_datagram.
        length(unsafe { server_ops::request_datagram_max_len(r) })
    })
}

// ---- client ----

/// A client operation's result as C sees it.
fn client_sent(r: Result<(), client_ops::ReqError>) -> c_int {
    r.map_or_else(req_code, |()| 0)
}

fn client_length(r: Result<usize, client_ops::ReqError>) -> ssize_t {
    r.map_or_else(|e| req_code(e) as ssize_t, |n| n as ssize_t)
}

/// Sends one QUIC datagram (RFC 9221) of `len` bytes (copied) to the
/// server. Returns 0 (queued), `QUICHE_EV_ERR_NULL`, `QUICHE_EV_ERR_STATE`
/// (the handshake has not completed: the server's limits are not known
/// yet), `QUICHE_EV_ERR_UNSUPPORTED`, `QUICHE_EV_ERR_TOO_LARGE`,
/// `QUICHE_EV_ERR_AGAIN` (see `quiche_ev_client_on_datagram_writable`),
/// `QUICHE_EV_ERR_CLOSED`, as `quiche_ev_conn_send_datagram`.
#[no_mangle]
pub extern "C" fn quiche_ev_client_send_datagram(client: *mut quiche_ev_client, data: *const u8, len: usize)
                                                 -> c_int {
    on_client(client, QUICHE_EV_ERR_NULL, QUICHE_EV_ERR_INTERNAL, |c| {
        let Some(data) = bytes(data, len) else { return QUICHE_EV_ERR_NULL };
        // SAFETY: a live client, no borrow alive (C API call).
        client_sent(unsafe { client_ops::send_datagram(c, data) })
    })
}

/// The largest QUIC datagram payload the server takes now, or
/// `QUICHE_EV_ERR_STATE` (not established yet), `QUICHE_EV_ERR_UNSUPPORTED`,
/// `QUICHE_EV_ERR_CLOSED`, `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_client_datagram_max_len(client: *mut quiche_ev_client) -> ssize_t {
    on_client(client, QUICHE_EV_ERR_NULL as ssize_t, QUICHE_EV_ERR_INTERNAL as ssize_t, |c| {
        // SAFETY: as in quiche_ev_client_send_datagram.
        client_length(unsafe { client_ops::datagram_max_len(c) })
    })
}

/// Sets the client's datagram callback: `cb(client, data, len, user)` per
/// QUIC datagram received that goes to no request, as the server's
/// (`quiche_ev_server_on_datagram`, which says what receiving needs and
/// what quiche's receive queue does): every one on hq-interop; on HTTP/3
/// those naming no request still open. Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_client_on_datagram(client: *mut quiche_ev_client, cb: quiche_ev_client_datagram_cb)
                                               -> c_int {
    on_client(client, QUICHE_EV_ERR_NULL, QUICHE_EV_ERR_INTERNAL, |c| {
        // SAFETY: a live client; no borrow alive during a C API call.
        unsafe { client_host(c).on_datagram = cb };
        0
    })
}

/// `cb(client, user)` once after a datagram send
/// (`quiche_ev_client_send_datagram` or
/// `quiche_ev_client_request_send_datagram`) returned
/// `QUICHE_EV_ERR_AGAIN`, when quiche's send queue has room again.
/// Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_client_on_datagram_writable(client: *mut quiche_ev_client, cb: quiche_ev_client_cb)
                                                        -> c_int {
    on_client(client, QUICHE_EV_ERR_NULL, QUICHE_EV_ERR_INTERNAL, |c| {
        // SAFETY: as in quiche_ev_client_on_datagram.
        unsafe { client_host(c).on_datagram_writable = cb };
        0
    })
}

/// `cb(client, id, data, len, user)` per HTTP Datagram (RFC 9297) bound
/// to request `id`, with its payload (after the Quarter Stream ID) and
/// the user pointer given with the request; from the loop, until the
/// request's done callback. Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_client_on_request_datagram(client: *mut quiche_ev_client,
                                                       cb: quiche_ev_response_datagram_cb) -> c_int {
    on_client(client, QUICHE_EV_ERR_NULL, QUICHE_EV_ERR_INTERNAL, |c| {
        // SAFETY: as in quiche_ev_client_on_datagram.
        unsafe { client_host(c).on_request_datagram = cb };
        0
    })
}

/// Sends one HTTP Datagram (RFC 9297) bound to request `id` (e.g. an
/// extended CONNECT, `quiche_ev_client_extended_connect`): the Quarter
/// Stream ID, then the `len` payload bytes (copied). Returns 0 (queued),
/// `QUICHE_EV_ERR_NULL`, `QUICHE_EV_ERR_INVALID` (no such request),
/// `QUICHE_EV_ERR_STATE` (not sent yet: send from its headers callback),
/// `QUICHE_EV_ERR_UNSUPPORTED` (hq-interop, or the server did not enable
/// HTTP/3 or QUIC datagrams), `QUICHE_EV_ERR_TOO_LARGE`,
/// `QUICHE_EV_ERR_AGAIN`, `QUICHE_EV_ERR_CLOSED` (the request is over).
#[no_mangle]
pub extern "C" fn quiche_ev_client_request_send_datagram(client: *mut quiche_ev_client, id: i64, data: *const u8,
                                                         len: usize) -> c_int {
    on_client(client, QUICHE_EV_ERR_NULL, QUICHE_EV_ERR_INTERNAL, |c| {
        let Some(data) = bytes(data, len) else { return QUICHE_EV_ERR_NULL };
        // SAFETY: a live client, no borrow alive (C API call).
        client_sent(unsafe { client_ops::request_send_datagram(c, id, data) })
    })
}

/// The largest HTTP Datagram payload request `id` can send now, or as
/// `quiche_ev_client_request_send_datagram`'s errors.
#[no_mangle]
pub extern "C" fn quiche_ev_client_request_datagram_max_len(client: *mut quiche_ev_client, id: i64) -> ssize_t {
    on_client(client, QUICHE_EV_ERR_NULL as ssize_t, QUICHE_EV_ERR_INTERNAL as ssize_t, |c| {
        // SAFETY: as in quiche_ev_client_request_send_datagram.
        client_length(unsafe { client_ops::request_datagram_max_len(c, id) })
    })
}
