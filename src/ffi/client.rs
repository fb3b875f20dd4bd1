//! `quiche_ev_client_*`: the client handle, its requests and responses.

use std::path::Path;

use libc::{c_char, c_int, c_void, sockaddr, socklen_t};
use libev_sys::{ev_io, ev_loop};
use quiche::h3;

use super::guard::{as_bytes, as_str, guard, headers_from_c};
use super::types::{copy_sized, quiche_config, quiche_conn, quiche_ev_client, quiche_ev_client_cb,
                   quiche_ev_client_closed_cb, quiche_ev_header, quiche_ev_response_body_cb, quiche_ev_response_done_cb,
                   quiche_ev_response_headers_cb, quiche_ev_response_trailers_cb, quiche_ev_stats, quiche_h3_config};
use super::{QUICHE_EV_ERR_INTERNAL, QUICHE_EV_ERR_INVALID, QUICHE_EV_ERR_NULL, QUICHE_EV_ERR_STATE,
            QUICHE_EV_ERR_TRANSPORT};
use crate::app::client::{self as app, ClientRequests, NewRequest};
use crate::app::output::Output;
use crate::batch_io::IoMode;
use crate::client::{Client, Phase};
use crate::dgram::UdpSockets;
use crate::evloop::LibEv;
use crate::observe::Observe;
use crate::platform::Real;
use crate::socket::{local_addr, sockaddr_to_std};

/// The client's states (`quiche_ev_client_state`).
pub const QUICHE_EV_CLIENT_CONNECTING: c_int = 0;
pub const QUICHE_EV_CLIENT_ESTABLISHED: c_int = 1;
pub const QUICHE_EV_CLIENT_CLOSING: c_int = 2;
pub const QUICHE_EV_CLIENT_CLOSED: c_int = 3;
pub const QUICHE_EV_CLIENT_FAILED: c_int = 4;

/// The response done callback's outcomes. COMPLETE: the whole response
/// arrived (also one paused by the host whose bytes had all arrived when
/// the connection ended: it completes once resumed).
pub const QUICHE_EV_RESPONSE_COMPLETE: c_int = 0;
/// The server reset the stream; the code says why.
pub const QUICHE_EV_RESPONSE_RESET: c_int = 1;
/// The request was never sent (refused by quiche, e.g. after the server's
/// GOAWAY) or was cancelled (`quiche_ev_client_cancel`).
pub const QUICHE_EV_RESPONSE_FAILED: c_int = 2;
/// The connection ended before the response did.
pub const QUICHE_EV_RESPONSE_CONN_CLOSED: c_int = 3;

type C = Client<Real>;

fn client(p: *const quiche_ev_client) -> Option<*mut C> {
    (!p.is_null()).then_some(p as *mut C)
}

/// Runs `f` on a live client (NULL gives `QUICHE_EV_ERR_NULL`).
fn with(p: *const quiche_ev_client, f: impl FnOnce(*mut C) -> c_int) -> c_int {
    guard(QUICHE_EV_ERR_INTERNAL, || match client(p) {
        Some(c) => f(c),
        None => QUICHE_EV_ERR_NULL,
    })
}

/// Connects to `peer` over the non-blocking UDP socket `sock`; the first
/// flight goes out as soon as `ev_run` starts. Start an `ev_io` on `sock`
/// with `quiche_ev_client_recv_cb` and `w.data = client`.
///
/// `host` is the TLS server name (and HTTP/3 `:authority`); NULL for none.
/// An IP address literal is the `:authority` only: TLS server names are
/// DNS names (RFC 6066), so none is sent, and quiche then checks the
/// server's certificate chain but not the name in it.
/// `sock` need not be bound (the kernel then picks the port).
/// `config` (and `h3_config`) stay owned by the caller and must outlive
/// the client. With `h3_config` NULL the client speaks hq-interop
/// (requests are `GET <path>\r\n`); otherwise HTTP/3.
///
/// Issue requests with `quiche_ev_client_request` (at any time: they wait
/// for the handshake), or let the built-in output fetch paths
/// (`quiche_ev_client_fetch`). The client never stops the loop; its closed
/// callback says when the connection is over.
///
/// Returns NULL (with an error-level log message) on a NULL or invalid
/// argument (`sock` must be a non-blocking UDP socket).
#[no_mangle]
pub extern "C" fn quiche_ev_client_new(loop_: *mut ev_loop, sock: c_int, host: *const c_char,
                                       peer: *const sockaddr, peer_len: socklen_t, config: *mut quiche_config,
                                       h3_config: *mut quiche_h3_config) -> *mut quiche_ev_client {
    guard(std::ptr::null_mut(), || {
        if loop_.is_null() || config.is_null() || sock < 0 {
            log_error!("quiche_ev_client_new: loop, config and socket are required");
            return std::ptr::null_mut();
        }
        // SAFETY: host is NULL or a C string.
        let host = unsafe { as_str(host) };
        // SAFETY: the caller passes peer_len readable bytes at peer.
        let Some(peer) = (unsafe { sockaddr_to_std(peer, peer_len) }) else {
            log_error!("quiche_ev_client_new: peer address is not an IPv4/IPv6 address");
            return std::ptr::null_mut();
        };
        if let Some(why) = crate::socket::unusable_socket(sock) {
            log_error!("quiche_ev_client_new: {why}");
            return std::ptr::null_mut();
        }
        let local = match local_addr(sock) {
            Ok(a) => a,
            Err(e) => {
                log_error!("failed to get local address of socket: {e}");
                return std::ptr::null_mut();
            }
        };
        let app = ClientRequests::new(quiche_h3_config::as_config(h3_config), host.unwrap_or(""));
        // SAFETY: the loop and the config outlive the client (contract).
        let created = unsafe {
            C::create(LibEv::new(loop_), UdpSockets::new(sock, local), sock, local, peer, host,
                      &mut *quiche_config::as_config(config), &Observe::default(), app)
        };
        match created {
            Ok(c) => {
                // SAFETY: just created; no borrow alive. The config
                // outlives the client (contract).
                unsafe {
                    C::state(c).app.client = c;
                    C::observe(c, |o, _| o.set_config(quiche_config::as_config(config)));
                }
                c.cast()
            }
            Err(e) => {
                log_error!("{e}");
                std::ptr::null_mut()
            }
        }
    })
}

/// The socket watcher's callback (upstream's `recv_cb`), for the first
/// socket and for one given to `quiche_ev_client_migrate`:
/// `ev_io_init(&w, quiche_ev_client_recv_cb, sock, EV_READ)`,
/// `w.data = client`. After the connection is over (or an internal
/// error) it stops the watcher that calls it.
#[no_mangle]
pub extern "C" fn quiche_ev_client_recv_cb(loop_: *mut ev_loop, w: *mut ev_io, _revents: c_int) {
    guard((), || {
        // SAFETY: w is the watcher libev is calling us for.
        let Some(w) = (unsafe { w.as_mut() }) else { return };
        let Some(c) = client(w.data.cast()) else {
            log_error!("quiche_ev_client_recv_cb: watcher data is not a client");
            return;
        };
        // SAFETY: data is the live client (C API contract).
        unsafe { C::recv_cb(c, w.fd) };
        // SAFETY: as above.
        let over = unsafe { C::is_failed(c) || matches!(C::phase(c), Phase::ClosedOk | Phase::Failed) };
        if over && !loop_.is_null() {
            // Nothing more to read: stop the watcher that would otherwise
            // keep calling for stray datagrams.
            // SAFETY: the host's watcher, on the loop calling us.
            unsafe { libev_sys::ev_io_stop(loop_, w) };
        }
    })
}

/// The pointer the client's callbacks receive as `user` for connection
/// events (default NULL). Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_client_set_user_data(client: *mut quiche_ev_client, user: *mut c_void) -> c_int {
    with(client, |c| {
        // SAFETY: a live client; no borrow alive during a C API call.
        let st = unsafe { C::state(c) };
        st.user = user;
        if let Some((cb, _)) = st.on_closed {
            st.on_closed = Some((cb, user));
        }
        if let Some((cb, _)) = st.on_established {
            st.on_established = Some((cb, user));
        }
        0
    })
}

/// The client's user data.
#[no_mangle]
pub extern "C" fn quiche_ev_client_user_data(client: *const quiche_ev_client) -> *mut c_void {
    guard(std::ptr::null_mut(), || match self::client(client) {
        // SAFETY: as in quiche_ev_client_set_user_data.
        Some(c) => unsafe { C::state(c).user },
        None => std::ptr::null_mut(),
    })
}

/// `cb(client, user)` when the handshake completed. Returns 0 or
/// `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_client_on_established(client: *mut quiche_ev_client, cb: quiche_ev_client_cb) -> c_int {
    with(client, |c| {
        // SAFETY: as in quiche_ev_client_set_user_data.
        let st = unsafe { C::state(c) };
        st.on_established = cb.map(|f| (f, st.user));
        0
    })
}

/// `cb(client, state, user)` once the connection is over: `state` is
/// `QUICHE_EV_CLIENT_CLOSED` (closed without error) or
/// `QUICHE_EV_CLIENT_FAILED` (timeout, error, stateless reset, internal
/// error; `quiche_ev_client_failure` says why). Every request's done
/// callback has run by then. A program that runs only this client breaks
/// its loop here. Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_client_on_closed(client: *mut quiche_ev_client, cb: quiche_ev_client_closed_cb) -> c_int {
    with(client, |c| {
        // SAFETY: as in quiche_ev_client_set_user_data.
        let st = unsafe { C::state(c) };
        st.on_closed = cb.map(|f| (f, st.user));
        0
    })
}

/// The response callbacks (any may be NULL), called per request with the
/// user pointer given to `quiche_ev_client_request`:
/// `headers(client, id, status, headers, n, user)` once (HTTP/3 only;
/// the pointers are valid during the call); `body(client, id, data, len,
/// user)` per chunk, returning how many bytes it took (fewer pauses the
/// response until `quiche_ev_client_resume`; the server is held back by
/// flow control meanwhile); `done(client, id, outcome, code, user)` once
/// at the end (`QUICHE_EV_RESPONSE_*`). Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_client_on_response(client: *mut quiche_ev_client, headers: quiche_ev_response_headers_cb,
                                               body: quiche_ev_response_body_cb, done: quiche_ev_response_done_cb) -> c_int {
    with(client, |c| {
        // SAFETY: as in quiche_ev_client_set_user_data.
        let h = &mut unsafe { C::state(c) }.app.handlers;
        h.on_headers = headers;
        h.on_body = body;
        h.on_done = done;
        0
    })
}

/// `cb(client, id, trailers, n, user)` for an HTTP/3 response that ends
/// with trailer fields: once, after its last body byte was taken and
/// just before its done callback (`QUICHE_EV_RESPONSE_COMPLETE`); the
/// pointers are valid during the call. A response without trailers, or
/// one that does not complete, never calls it. Returns 0 or
/// `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_client_on_trailers(client: *mut quiche_ev_client,
                                               cb: quiche_ev_response_trailers_cb) -> c_int {
    with(client, |c| {
        // SAFETY: as in quiche_ev_client_set_user_data.
        unsafe { C::state(c) }.app.handlers.on_trailers = cb;
        0
    })
}

/// Queues a request: `method` (HTTP/3; hq-interop only has GET), `path`
/// (starting with '/'), `n` extra header fields, and `body_len` bytes of
/// body (`body` NULL for none). Everything is copied. It is sent once the
/// handshake is done (in 0-RTT when resuming with early data), as the
/// server's stream limit allows. Returns the request's id (>= 0), or
/// `QUICHE_EV_ERR_NULL`, `QUICHE_EV_ERR_INVALID` (the log says why),
/// `QUICHE_EV_ERR_STATE` (the connection is closing or over).
#[no_mangle]
pub extern "C" fn quiche_ev_client_request(client: *mut quiche_ev_client, method: *const c_char,
                                           path: *const c_char, headers: *const quiche_ev_header, n: usize,
                                           body: *const u8, body_len: usize, user: *mut c_void) -> i64 {
    guard(QUICHE_EV_ERR_INTERNAL as i64, || {
        let Some(c) = self::client(client) else { return QUICHE_EV_ERR_NULL as i64 };
        // SAFETY: method and path are NULL or C strings.
        let (Some(method), Some(path)) = (unsafe { as_str(method) }, unsafe { as_str(path) }) else {
            return QUICHE_EV_ERR_NULL as i64;
        };
        // SAFETY: the caller passes n headers.
        let extra = match unsafe { headers_from_c(headers, n) } {
            Ok(l) => l,
            Err(code) => return code as i64,
        };
        let body = if body.is_null() {
            None
        } else {
            // SAFETY: body_len readable bytes at body.
            unsafe { as_bytes(body, body_len) }.map(<[u8]>::to_vec)
        };
        // SAFETY: a live client, no borrow alive.
        if matches!(unsafe { C::phase(c) }, Phase::Closing | Phase::ClosedOk | Phase::Failed) {
            return QUICHE_EV_ERR_STATE as i64;
        }
        let r = NewRequest { method: method.as_bytes().to_vec(), path: path.as_bytes().to_vec(),
                             headers: extra.into_iter().map(|h: h3::Header| h).collect(), body, user };
        // SAFETY: as above.
        match unsafe { app::request(c, r) } {
            Ok(id) => id,
            Err(why) => {
                log_error!("quiche_ev_client_request: {why}");
                QUICHE_EV_ERR_INVALID as i64
            }
        }
    })
}

/// After a body callback took fewer bytes than offered: offer the rest
/// again. Returns 0, `QUICHE_EV_ERR_NULL`, `QUICHE_EV_ERR_INVALID` (no
/// such request).
#[no_mangle]
pub extern "C" fn quiche_ev_client_resume(client: *mut quiche_ev_client, id: i64) -> c_int {
    // SAFETY: a live client, no borrow alive.
    with(client, |c| if unsafe { app::resume(c, id) } { 0 } else { QUICHE_EV_ERR_INVALID })
}

/// Cancels a request (its stream is reset with H3_REQUEST_CANCELLED); its
/// done callback follows with `QUICHE_EV_RESPONSE_FAILED`. Returns 0,
/// `QUICHE_EV_ERR_NULL`, `QUICHE_EV_ERR_INVALID` (no such request).
#[no_mangle]
pub extern "C" fn quiche_ev_client_cancel(client: *mut quiche_ev_client, id: i64) -> c_int {
    // SAFETY: as in quiche_ev_client_resume.
    with(client, |c| if unsafe { app::cancel(c, id) } { 0 } else { QUICHE_EV_ERR_INVALID })
}

/// Closes the connection with the application error `code` (0 or
/// H3_NO_ERROR 0x100 count as a clean close) and `reason` (NULL for
/// none). Requests still open end with `QUICHE_EV_RESPONSE_CONN_CLOSED`;
/// the closed callback follows. Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_client_close(client: *mut quiche_ev_client, code: u64, reason: *const c_char) -> c_int {
    with(client, |c| {
        // SAFETY: reason is NULL or a C string; a live client.
        unsafe { C::close(c, code, as_str(reason).unwrap_or("").as_bytes()) };
        0
    })
}

/// Where the connection is: `QUICHE_EV_CLIENT_CONNECTING`, `_ESTABLISHED`,
/// `_CLOSING`, `_CLOSED` (over, no error) or `_FAILED`; or
/// `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_client_state(client: *const quiche_ev_client) -> c_int {
    // SAFETY: a live client.
    with(client, |c| unsafe { C::phase(c) } as c_int)
}

/// Why the connection failed, NUL-terminated, valid until the client is
/// freed; NULL while it has not failed.
#[no_mangle]
pub extern "C" fn quiche_ev_client_failure(client: *const quiche_ev_client) -> *const c_char {
    guard(std::ptr::null(), || match self::client(client) {
        // SAFETY: a live client.
        Some(c) => unsafe { C::failure_cstr(c) },
        None => std::ptr::null(),
    })
}

/// Fills `out` with the connection's numbers so far (packets, bytes,
/// RTT, cwnd), and once it ended, how (see `quiche_ev_stats`); valid also
/// in and after the closed callback. Set `out->size = sizeof(*out)` first.
/// Returns 0, `QUICHE_EV_ERR_NULL`, or `QUICHE_EV_ERR_INVALID` for a size
/// too small.
#[no_mangle]
pub extern "C" fn quiche_ev_client_stats(client: *const quiche_ev_client, out: *mut quiche_ev_stats) -> c_int {
    with(client, |c| {
        if out.is_null() {
            return QUICHE_EV_ERR_NULL;
        }
        // SAFETY: a live client, no borrow alive.
        let full = unsafe { quiche_ev_stats::of_conn(C::conn(c), &C::close_info(c)) };
        // SAFETY: out points to the caller's structure of out->size bytes.
        if unsafe { copy_sized(&full, out) } { 0 } else { QUICHE_EV_ERR_INVALID }
    })
}

/// The client's `quiche_conn *`, for anything else quiche offers (its C
/// API in quiche.h works on it). Valid as long as the client. After
/// changing it (sending on a stream of your own, closing it...), call
/// `quiche_ev_client_changed` so the library flushes it; do not free it.
#[no_mangle]
pub extern "C" fn quiche_ev_client_quiche(client: *mut quiche_ev_client) -> *mut quiche_conn {
    guard(std::ptr::null_mut(), || match self::client(client) {
        // SAFETY: a live client; quiche's ffi takes a `quiche::Connection`
        // as `quiche_conn` (pinned version).
        Some(c) => unsafe { C::conn(c) as *mut quiche::Connection as *mut quiche_conn },
        None => std::ptr::null_mut(),
    })
}

/// Tells the library the connection was changed through
/// `quiche_ev_client_quiche`: it is serviced and flushed before the loop
/// sleeps again. Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_client_changed(client: *mut quiche_ev_client) -> c_int {
    with(client, |c| {
        // SAFETY: a live client, no borrow alive.
        unsafe { C::changed(c) };
        0
    })
}

/// Moves the connection to the bound, non-blocking UDP socket `sock`
/// (active migration: quiche validates the new path and switches to it).
/// Needs a spare connection ID from the server (the move waits for one).
/// A server whose transport parameters disable active migration (RFC 9000
/// §9) is not migrated from: `QUICHE_EV_ERR_TRANSPORT`, or, when that is
/// only learned after this call, a warning in the log. Watch `sock` with
/// `quiche_ev_client_recv_cb` too; the
/// socket stays yours. Returns 0, `QUICHE_EV_ERR_NULL`,
/// `QUICHE_EV_ERR_INVALID` (not a non-blocking UDP socket), `QUICHE_EV_ERR_TRANSPORT`
/// (quiche refused; the log says why).
#[no_mangle]
pub extern "C" fn quiche_ev_client_migrate(client: *mut quiche_ev_client, sock: c_int) -> c_int {
    with(client, |c| {
        if let Some(why) = crate::socket::unusable_socket(sock) {
            log_error!("quiche_ev_client_migrate: {why}");
            return QUICHE_EV_ERR_INVALID;
        }
        let local = match local_addr(sock) {
            Ok(a) => a,
            Err(e) => {
                log_error!("quiche_ev_client_migrate: {e}");
                return QUICHE_EV_ERR_INVALID;
            }
        };
        // SAFETY: a live client, no borrow alive.
        match unsafe { C::migrate(c, sock, local) } {
            Ok(()) => 0,
            Err(e) => {
                log_warn!("{e}");
                QUICHE_EV_ERR_TRANSPORT
            }
        }
    })
}

/// TLS session resumption through the file `path`: if it holds a session
/// (from an earlier run), the connection offers it (and with early data
/// enabled in the config, requests go in 0-RTT); when the connection ends,
/// the newest session is written there. Call right after
/// `quiche_ev_client_new`. Returns 0, `QUICHE_EV_ERR_NULL`,
/// `QUICHE_EV_ERR_INVALID` (an unusable session file; the log says why).
#[no_mangle]
pub extern "C" fn quiche_ev_client_set_session_file(client: *mut quiche_ev_client, path: *const c_char) -> c_int {
    with(client, |c| {
        // SAFETY: path is NULL or a C string.
        let Some(path) = (unsafe { as_str(path) }) else { return QUICHE_EV_ERR_NULL };
        // SAFETY: a live client, no borrow alive.
        match unsafe { C::set_session_file(c, Path::new(path)) } {
            Ok(()) => 0,
            Err(e) => {
                log_error!("session file {path}: {e}");
                QUICHE_EV_ERR_INVALID
            }
        }
    })
}

/// Appends the connection's TLS secrets to `path` (NSS key log format, as
/// `SSLKEYLOGFILE`); turns key logging on in the config. Call right after
/// `quiche_ev_client_new`. Returns 0, `QUICHE_EV_ERR_NULL`,
/// `QUICHE_EV_ERR_INVALID`.
#[no_mangle]
pub extern "C" fn quiche_ev_client_set_keylog_path(client: *mut quiche_ev_client, path: *const c_char) -> c_int {
    with(client, |c| {
        // SAFETY: path is NULL or a C string.
        let Some(path) = (unsafe { as_str(path) }) else { return QUICHE_EV_ERR_NULL };
        // SAFETY: a live client, no borrow alive.
        match unsafe { C::observe(c, |o, conn| o.set_keylog(Path::new(path)).map(|_| o.attach_keylog(conn))) } {
            Ok(()) => 0,
            Err(e) => {
                log_error!("cannot write key log {path}: {e}");
                QUICHE_EV_ERR_INVALID
            }
        }
    })
}

/// Writes the connection's qlog trace into the folder `dir` (created if
/// missing) as `client-<connection ID in hex>.sqlog`. Call right after
/// `quiche_ev_client_new`. Returns 0, `QUICHE_EV_ERR_NULL`,
/// `QUICHE_EV_ERR_INVALID`.
#[no_mangle]
pub extern "C" fn quiche_ev_client_set_qlog_dir(client: *mut quiche_ev_client, dir: *const c_char) -> c_int {
    with(client, |c| {
        // SAFETY: dir is NULL or a C string.
        let Some(dir) = (unsafe { as_str(dir) }) else { return QUICHE_EV_ERR_NULL };
        // SAFETY: a live client, no borrow alive.
        match unsafe { C::observe(c, |o, conn| o.set_qlog_dir(Path::new(dir)).map(|_| o.attach_qlog(conn, "client"))) } {
            Ok(()) => 0,
            Err(e) => {
                log_error!("cannot write qlog files to {dir}: {e}");
                QUICHE_EV_ERR_INVALID
            }
        }
    })
}

/// Chooses the datagram path, as `quiche_ev_server_set_batched_io`.
/// Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_client_set_batched_io(client: *mut quiche_ev_client, batched: c_int) -> c_int {
    with(client, |c| {
        let mode = if batched != 0 { IoMode::BATCHED } else { IoMode::PLAIN };
        // SAFETY: a live client, no borrow alive.
        unsafe {
            C::io(c).set_mode(mode);
            C::state(c).gso = mode.gso;
        }
        0
    })
}

/// Turns GSO sends on or off, as `quiche_ev_server_set_gso`. Returns 0 or
/// `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_client_set_gso(client: *mut quiche_ev_client, on: c_int) -> c_int {
    with(client, |c| {
        // SAFETY: a live client, no borrow alive.
        unsafe {
            let io = C::io(c);
            io.set_mode(IoMode { gso: on != 0, ..io.mode() });
            C::state(c).gso = on != 0;
        }
        0
    })
}

/// The built-in application of the example clients: fetch `n` paths
/// (each starting with '/') and write the bodies to stdout, one request
/// after another so they print in order (see `quiche_ev_client_set_output`
/// and `_set_output_dir` for elsewhere); the connection closes once all
/// are done. Used when no response callback is set. Returns 0,
/// `QUICHE_EV_ERR_NULL`, `QUICHE_EV_ERR_INVALID` (a path).
#[no_mangle]
pub extern "C" fn quiche_ev_client_fetch(client: *mut quiche_ev_client, paths: *const *const c_char, n: usize)
                                         -> c_int {
    with(client, |c| {
        if paths.is_null() && n > 0 {
            return QUICHE_EV_ERR_NULL;
        }
        let mut list = Vec::with_capacity(n);
        for i in 0..n {
            // SAFETY: the caller passes n C strings at paths.
            match unsafe { as_str(*paths.add(i)) } {
                Some(p) if p.starts_with('/') => list.push(p.to_string()),
                _ => {
                    log_error!("quiche_ev_client_fetch: path {i} must be a string starting with '/'");
                    return QUICHE_EV_ERR_INVALID;
                }
            }
        }
        // SAFETY: a live client, no borrow alive.
        let st = unsafe { C::state(c) };
        let mut out = Output::stdout(list);
        if let Some(old) = st.app.output.take() {
            out.keep_sink_of(old);
        }
        st.app.output = Some(out);
        st.close_when_done = true;
        // SAFETY: as above.
        unsafe { C::changed(c) };
        0
    })
}

/// Writes the fetched bodies to the file `path` (created or truncated; a
/// pipe is written without blocking: a full one pauses the response)
/// instead of stdout. Returns 0, `QUICHE_EV_ERR_NULL`,
/// `QUICHE_EV_ERR_INVALID` (cannot open it).
#[no_mangle]
pub extern "C" fn quiche_ev_client_set_output(client: *mut quiche_ev_client, path: *const c_char) -> c_int {
    output_to(client, path, |o, p| o.to_file(p))
}

/// Writes each fetched body to its own file in the folder `dir` (named
/// after the last path segment), fetching all paths at once. Returns as
/// `quiche_ev_client_set_output`.
#[no_mangle]
pub extern "C" fn quiche_ev_client_set_output_dir(client: *mut quiche_ev_client, dir: *const c_char) -> c_int {
    output_to(client, dir, |o, p| o.to_dir(p))
}

fn output_to(client: *mut quiche_ev_client, path: *const c_char,
             f: impl FnOnce(&mut Output, &str) -> std::io::Result<()>) -> c_int {
    with(client, |c| {
        // SAFETY: path is NULL or a C string.
        let Some(p) = (unsafe { as_str(path) }) else { return QUICHE_EV_ERR_NULL };
        // SAFETY: a live client, no borrow alive.
        let st = unsafe { C::state(c) };
        let out = st.app.output.get_or_insert_with(|| Output::stdout(Vec::new()));
        match f(out, p) {
            Ok(()) => 0,
            Err(e) => {
                log_error!("cannot write {p}: {e}");
                QUICHE_EV_ERR_INVALID
            }
        }
    })
}

/// The built-in application's verdict, for an exit status: 0 when the
/// connection ended cleanly and every fetched response arrived whole
/// (2xx on HTTP/3), 1 otherwise (the log said why), `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_client_status(client: *const quiche_ev_client) -> c_int {
    with(client, |c| {
        // SAFETY: a live client.
        let (phase, ok) = unsafe { (C::phase(c), C::state(c).app.output.as_ref().is_none_or(Output::ok)) };
        (phase != Phase::ClosedOk || !ok) as c_int
    })
}

/// Frees the client (stopping its watchers; requests still open end
/// without callbacks). From one of its own callbacks, the free happens
/// when that callback returns. NULL is a no-op.
#[no_mangle]
pub extern "C" fn quiche_ev_client_free(client: *mut quiche_ev_client) {
    guard((), || {
        if let Some(c) = self::client(client) {
            // SAFETY: made by quiche_ev_client_new; C does not use it after.
            unsafe { C::destroy(c) };
        }
    })
}
