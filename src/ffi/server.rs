//! `quiche_ev_server_*`: the server handle, its settings, its callbacks.

use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use libc::{c_char, c_int, c_void, sockaddr, socklen_t, ssize_t};
use libev_sys::{ev_io, ev_loop};

use super::guard::{as_bytes, as_str, guard};
use super::types::{copy_sized, quiche_config, quiche_ev_conn_cb, quiche_ev_conn_closed_cb, quiche_ev_request_body_cb,
                   quiche_ev_request_cb, quiche_ev_request_closed_cb, quiche_ev_request_writable_cb, quiche_ev_server,
                   quiche_ev_counters, quiche_ev_server_stopped_cb, quiche_h3_config};
use super::{QUICHE_EV_ERR_INTERNAL, QUICHE_EV_ERR_INVALID, QUICHE_EV_ERR_NULL, QUICHE_EV_ERR_STATE};
use crate::app::builtin::Builtin;
use crate::app::files::Root;
use crate::app::server::{Protocol, Shared};
use crate::batch_io::IoMode;
use crate::dgram::UdpSockets;
use crate::evloop::LibEv;
use crate::platform::Real;
use crate::server::Server;
use crate::socket::sockaddr_to_std;

type S = Server<Real>;

/// The server behind a handle; `None` for NULL.
fn server(p: *const quiche_ev_server) -> Option<*mut S> {
    (!p.is_null()).then_some(p as *mut S)
}

/// Runs `f` on the server's state (with NULL giving `QUICHE_EV_ERR_NULL`).
fn with_state(p: *const quiche_ev_server, f: impl FnOnce(&mut crate::server::ServerState<Real>) -> c_int) -> c_int {
    guard(QUICHE_EV_ERR_INTERNAL, || match server(p) {
        // SAFETY: a non-NULL handle came from quiche_ev_server_new and is
        // not used after _free (C API contract); no borrow of its state is
        // alive during a C API call (host callbacks run with none).
        Some(s) => f(unsafe { S::state(s) }),
        None => QUICHE_EV_ERR_NULL,
    })
}

/// Creates a server on the bound, non-blocking UDP socket `sock` whose
/// address is `local`.
///
/// `config` (and `h3_config`, if given) stay owned by the caller and must
/// outlive the server. With `h3_config` NULL every connection speaks
/// hq-interop; otherwise HTTP/3. Until a request callback is set
/// (`quiche_ev_server_on_request`) every request is answered `byez\n`, as
/// upstream's samples do (or from files, see `quiche_ev_server_set_root`).
///
/// Start an `ev_io` on `sock` with `quiche_ev_server_recv_cb` and
/// `w.data = server`. The server starts and stops its own watchers on
/// `loop`; it never stops the loop (see `quiche_ev_server_on_stopped`).
///
/// Returns NULL (with an error-level log message) when an argument is NULL,
/// the address is not IPv4/IPv6, or `sock` is not a non-blocking UDP
/// socket.
#[no_mangle]
pub extern "C" fn quiche_ev_server_new(loop_: *mut ev_loop, sock: c_int, local: *const sockaddr,
                                       local_len: socklen_t, config: *mut quiche_config,
                                       h3_config: *mut quiche_h3_config) -> *mut quiche_ev_server {
    guard(std::ptr::null_mut(), || {
        if loop_.is_null() || config.is_null() || sock < 0 {
            log_error!("quiche_ev_server_new: loop, config and socket are required");
            return std::ptr::null_mut();
        }
        // SAFETY: the caller passes local_len readable bytes at local.
        let Some(local) = (unsafe { sockaddr_to_std(local, local_len) }) else {
            log_error!("quiche_ev_server_new: local address is not an IPv4/IPv6 address");
            return std::ptr::null_mut();
        };
        if let Some(why) = crate::socket::unusable_socket(sock) {
            log_error!("quiche_ev_server_new: {why}");
            return std::ptr::null_mut();
        }
        let protocol = if h3_config.is_null() {
            Protocol::Hq
        } else {
            Protocol::H3(quiche_h3_config::as_config(h3_config))
        };
        // SAFETY: the loop and the config outlive the server (contract
        // above).
        let s = unsafe {
            S::create(LibEv::new(loop_), UdpSockets::new(sock, local), sock, local,
                      quiche_config::as_config(config), Shared::new(protocol))
        };
        // SAFETY: just created, no borrow alive; the config outlives the
        // server (contract above).
        unsafe { S::state(s).observe.set_config(quiche_config::as_config(config)) };
        s.cast()
    })
}

/// The socket watcher's callback (upstream's `recv_cb`): set it with
/// `ev_io_init(&w, quiche_ev_server_recv_cb, sock, EV_READ)` and
/// `w.data = server`. After an internal error the server stops this
/// watcher (see `quiche_ev_server_on_stopped`).
#[no_mangle]
pub extern "C" fn quiche_ev_server_recv_cb(loop_: *mut ev_loop, w: *mut ev_io, _revents: c_int) {
    guard((), || {
        // SAFETY: w is the watcher libev is calling us for.
        let Some(w) = (unsafe { w.as_mut() }) else { return };
        let Some(s) = server(w.data.cast()) else {
            log_error!("quiche_ev_server_recv_cb: watcher data is not a server");
            return;
        };
        // SAFETY: data is the live server (C API contract).
        unsafe { S::recv_cb(s, w.fd) };
        // SAFETY: as above; and the host's watcher, on the loop calling us.
        unsafe {
            if S::is_failed(s) && !loop_.is_null() {
                // A failed server reads no more: stop the watcher that
                // would otherwise call us forever.
                libev_sys::ev_io_stop(loop_, w);
            }
        }
    })
}

/// Serves files below the folder `dir` instead of answering `byez\n` (when
/// no request callback is set): the request path maps to a file under
/// `dir` (`/` to `index.html`); anything missing or outside it gets 404
/// (HTTP/3) or a stream reset (hq-interop). Files are streamed as flow
/// control allows; reads never wait for the disk inside the loop.
///
/// Returns 0, `QUICHE_EV_ERR_NULL`, or `QUICHE_EV_ERR_INVALID` when `dir`
/// is not a readable folder (the log says why).
#[no_mangle]
pub extern "C" fn quiche_ev_server_set_root(server: *mut quiche_ev_server, dir: *const c_char) -> c_int {
    with_state(server, |st| {
        // SAFETY: dir is NULL or a C string.
        let Some(dir) = (unsafe { as_str(dir) }) else { return QUICHE_EV_ERR_NULL };
        match Root::open(Path::new(dir)) {
            Ok(root) => {
                st.app.handlers_mut().builtin = Builtin::Files(Rc::new(root));
                0
            }
            Err(e) => {
                log_error!("cannot serve {dir}: {e}");
                QUICHE_EV_ERR_INVALID
            }
        }
    })
}

/// Bounds the number of live connections (default 10000). When the table
/// is full, new clients are refused (CONNECTION_REFUSED) before any state
/// is made for them. Returns 0, `QUICHE_EV_ERR_NULL` or
/// `QUICHE_EV_ERR_INVALID` (for 0).
#[no_mangle]
pub extern "C" fn quiche_ev_server_set_max_conns(server: *mut quiche_ev_server, max: usize) -> c_int {
    with_state(server, |st| {
        if max == 0 {
            log_error!("quiche_ev_server_set_max_conns: the bound must be at least 1");
            return QUICHE_EV_ERR_INVALID;
        }
        st.settings.max_conns = max;
        0
    })
}

/// How long a Retry token stays valid, in milliseconds (default 10000).
/// Returns 0, `QUICHE_EV_ERR_NULL` or `QUICHE_EV_ERR_INVALID` (for 0).
#[no_mangle]
pub extern "C" fn quiche_ev_server_set_token_lifetime(server: *mut quiche_ev_server, ms: u64) -> c_int {
    with_state(server, |st| {
        if ms == 0 {
            log_error!("quiche_ev_server_set_token_lifetime: the lifetime must be at least 1 ms");
            return QUICHE_EV_ERR_INVALID;
        }
        st.set_token_lifetime(Duration::from_millis(ms));
        0
    })
}

/// Stateless retry on (non-zero, the default, like upstream) or off: with
/// it off, a client's first Initial creates its connection at once (no
/// address validation round trip). Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_server_set_retry(server: *mut quiche_ev_server, on: c_int) -> c_int {
    with_state(server, |st| {
        st.settings.retry = on != 0;
        0
    })
}

/// The 32-byte secret that stateless-reset tokens are derived from
/// (default: random per server). A server restarted with the same key can
/// reset the connections of its previous run, so their clients stop at
/// once instead of waiting for their idle timeout. Keep it secret.
/// Returns 0, `QUICHE_EV_ERR_NULL`, or `QUICHE_EV_ERR_INVALID` when `len`
/// is not 32.
#[no_mangle]
pub extern "C" fn quiche_ev_server_set_reset_key(server: *mut quiche_ev_server, key: *const u8, len: usize) -> c_int {
    with_state(server, |st| {
        // SAFETY: key is NULL or len readable bytes.
        let Some(key) = (unsafe { as_bytes(key, len) }) else { return QUICHE_EV_ERR_NULL };
        let Ok(key) = <[u8; 32]>::try_from(key) else {
            log_error!("quiche_ev_server_set_reset_key: the key must be 32 bytes, not {len}");
            return QUICHE_EV_ERR_INVALID;
        };
        st.set_reset_key(key);
        0
    })
}

/// Chooses the datagram path: `batched` non-zero (the default) reads with
/// `recvmmsg` + UDP GRO and sends GSO batches; 0 uses one `recvfrom` /
/// `sendto` per packet like upstream (for comparison). Returns 0 or
/// `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_server_set_batched_io(server: *mut quiche_ev_server, batched: c_int) -> c_int {
    guard(QUICHE_EV_ERR_INTERNAL, || match self::server(server) {
        Some(s) => {
            let mode = if batched != 0 { IoMode::BATCHED } else { IoMode::PLAIN };
            // SAFETY: as in with_state.
            unsafe {
                S::io(s).set_mode(mode);
                S::state(s).settings.gso = mode.gso;
            }
            0
        }
        None => QUICHE_EV_ERR_NULL,
    })
}

/// Turns GSO sends on (non-zero, the default on the batched path) or off,
/// keeping the read side as it is: for measuring what GSO itself brings.
/// Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_server_set_gso(server: *mut quiche_ev_server, on: c_int) -> c_int {
    guard(QUICHE_EV_ERR_INTERNAL, || match self::server(server) {
        Some(s) => {
            // SAFETY: as in with_state.
            unsafe {
                let io = S::io(s);
                io.set_mode(IoMode { gso: on != 0, ..io.mode() });
                S::state(s).settings.gso = on != 0;
            }
            0
        }
        None => QUICHE_EV_ERR_NULL,
    })
}

/// Appends the TLS secrets of every connection from now on to the file
/// `path` (NSS key log format, as `SSLKEYLOGFILE`), for decrypting
/// captures. Also turns key logging on in the server's `quiche_config`.
/// Returns 0, `QUICHE_EV_ERR_NULL` or `QUICHE_EV_ERR_INVALID` (the file
/// cannot be opened; the log says why).
#[no_mangle]
pub extern "C" fn quiche_ev_server_set_keylog_path(server: *mut quiche_ev_server, path: *const c_char) -> c_int {
    with_state(server, |st| {
        // SAFETY: path is NULL or a C string.
        let Some(path) = (unsafe { as_str(path) }) else { return QUICHE_EV_ERR_NULL };
        match st.observe.set_keylog(Path::new(path)) {
            Ok(()) => 0,
            Err(e) => {
                log_error!("cannot write key log {path}: {e}");
                QUICHE_EV_ERR_INVALID
            }
        }
    })
}

/// Writes a qlog trace (JSON-SEQ, `.sqlog`) for every connection from now
/// on into the folder `dir` (created if missing), one file per connection
/// named `server-<connection ID in hex>.sqlog`. Returns 0,
/// `QUICHE_EV_ERR_NULL` or `QUICHE_EV_ERR_INVALID`.
#[no_mangle]
pub extern "C" fn quiche_ev_server_set_qlog_dir(server: *mut quiche_ev_server, dir: *const c_char) -> c_int {
    with_state(server, |st| {
        // SAFETY: dir is NULL or a C string.
        let Some(dir) = (unsafe { as_str(dir) }) else { return QUICHE_EV_ERR_NULL };
        match st.observe.set_qlog_dir(Path::new(dir)) {
            Ok(()) => 0,
            Err(e) => {
                log_error!("cannot write qlog files to {dir}: {e}");
                QUICHE_EV_ERR_INVALID
            }
        }
    })
}

/// The pointer every server callback receives as `user` (default NULL).
/// Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_server_set_user_data(server: *mut quiche_ev_server, user: *mut c_void) -> c_int {
    with_state(server, |st| {
        st.app.handlers_mut().user = user;
        if let Some((cb, _)) = st.on_stopped {
            st.on_stopped = Some((cb, user));
        }
        0
    })
}

/// The server's user data (NULL when unset or for a NULL server).
#[no_mangle]
pub extern "C" fn quiche_ev_server_user_data(server: *const quiche_ev_server) -> *mut c_void {
    guard(std::ptr::null_mut(), || match self::server(server) {
        // SAFETY: as in with_state.
        Some(s) => unsafe { S::state(s).app.handlers.user },
        None => std::ptr::null_mut(),
    })
}

/// Sets the request callback: `cb(req, user)` runs once per request, when
/// its headers (HTTP/3) or request line (hq-interop) arrived. Answer in it
/// or later (from any watcher of the loop) with `quiche_ev_respond*`; the
/// request handle is valid until its closed callback returns. NULL brings
/// back the built-in responder. Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_server_on_request(server: *mut quiche_ev_server,
                                              cb: quiche_ev_request_cb) -> c_int {
    with_state(server, |st| {
        st.app.handlers_mut().on_request = cb;
        0
    })
}

/// Sets the request body callback: `cb(req, data, len, fin, user)` gets
/// the body as it arrives, then once with `fin` 1 (and maybe `len` 0) at
/// its end, also for a request without a body. Calls stop when the request
/// is over (its closed callback ran): a request answered in full before
/// the end of its body was read may never get the `fin` call, so do not
/// wait for it to answer. Return how many bytes you took: fewer than `len`
/// pauses the body (the client is held back by flow control) until
/// `quiche_ev_request_resume_body`, when the rest is offered again (with
/// `fin` again if it came with it). Without this callback bodies are read
/// and dropped. Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_server_on_request_body(
    server: *mut quiche_ev_server, cb: quiche_ev_request_body_cb) -> c_int {
    with_state(server, |st| {
        st.app.handlers_mut().on_body = cb;
        0
    })
}

/// Sets the writable callback: `cb(req, user)` runs when a response that
/// `quiche_ev_respond_write` could not take whole (or whose trailers did
/// not fit) has room again (`quiche_ev_request_on_writable` overrides it
/// per request). Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_server_on_request_writable(
    server: *mut quiche_ev_server, cb: quiche_ev_request_writable_cb) -> c_int {
    with_state(server, |st| {
        st.app.handlers_mut().on_writable = cb;
        0
    })
}

/// Sets the request closed callback: `cb(req, outcome, code, user)` runs
/// once per request the host saw, when it is over: `QUICHE_EV_REQUEST_COMPLETE`
/// (the response went out whole), `_RESET` (the client reset or stopped
/// the stream, e.g. it cancelled the request, even before any answer;
/// `code` is its error code), `_CANCELLED` (reset by us), `_CONN_CLOSED`.
/// The handle is freed when it returns. Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_server_on_request_closed(
    server: *mut quiche_ev_server, cb: quiche_ev_request_closed_cb) -> c_int {
    with_state(server, |st| {
        st.app.handlers_mut().on_request_closed = cb;
        0
    })
}

/// Sets the connection callbacks (either may be NULL): `established(conn,
/// user)` when a handshake completes; `closed(conn, stats, user)` when the
/// connection is gone, with its numbers and how it ended. A connection
/// handle is valid from its established callback until its closed callback
/// returns. Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_server_on_conn(
    server: *mut quiche_ev_server, established: quiche_ev_conn_cb, closed: quiche_ev_conn_closed_cb) -> c_int {
    with_state(server, |st| {
        let h = st.app.handlers_mut();
        h.on_conn_established = established;
        h.on_conn_closed = closed;
        0
    })
}

/// Sets the stopped callback: `cb(server, status, user)` runs once the
/// server has stopped: after `quiche_ev_server_shutdown` finished (status
/// 0), or after an internal error (status `QUICHE_EV_ERR_INTERNAL`; the
/// server then does nothing more and should be freed). This is where a
/// program that runs only this server breaks its loop. Returns 0 or
/// `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_server_on_stopped(server: *mut quiche_ev_server,
                                              cb: quiche_ev_server_stopped_cb) -> c_int {
    with_state(server, |st| {
        let user = st.app.handlers.user;
        st.on_stopped = cb.map(|f| (f, user));
        0
    })
}

/// Shuts the server down gracefully: from now on no datagram creates a
/// connection (new clients are refused, even if the loop runs again);
/// HTTP/3 connections get a GOAWAY; connections close (H3_NO_ERROR) as
/// soon as their in-flight requests are complete, and all that remain
/// after `drain_ms` milliseconds are closed then. The stopped callback
/// runs when every connection is gone. Calling it again with 0 closes
/// everything at once. Returns 0, `QUICHE_EV_ERR_NULL`, or
/// `QUICHE_EV_ERR_STATE` after an internal error.
#[no_mangle]
pub extern "C" fn quiche_ev_server_shutdown(server: *mut quiche_ev_server, drain_ms: u64) -> c_int {
    guard(QUICHE_EV_ERR_INTERNAL, || match self::server(server) {
        // SAFETY: as in with_state.
        Some(s) if unsafe { S::is_failed(s) } => QUICHE_EV_ERR_STATE,
        Some(s) => {
            // SAFETY: as in with_state.
            unsafe { S::shutdown(s, Duration::from_millis(drain_ms)) };
            0
        }
        None => QUICHE_EV_ERR_NULL,
    })
}

/// 1 once a shutdown has finished, 0 while running or draining,
/// `QUICHE_EV_ERR_INTERNAL` after an internal error, `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_server_is_stopped(server: *const quiche_ev_server) -> c_int {
    guard(QUICHE_EV_ERR_INTERNAL, || match self::server(server) {
        // SAFETY: as in with_state.
        Some(s) if unsafe { S::is_failed(s) } => QUICHE_EV_ERR_INTERNAL,
        // SAFETY: as in with_state.
        Some(s) => (unsafe { S::is_stopped(s) }) as c_int,
        None => QUICHE_EV_ERR_NULL,
    })
}

/// The number of live connections, or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_server_conn_count(server: *const quiche_ev_server) -> ssize_t {
    guard(QUICHE_EV_ERR_INTERNAL as ssize_t, || match self::server(server) {
        // SAFETY: as in with_state.
        Some(s) => unsafe { S::state(s).conn_count() as ssize_t },
        None => QUICHE_EV_ERR_NULL as ssize_t,
    })
}

/// Fills `out` with the server's counters. Set `out->size =
/// sizeof(*out)` first. Returns 0, `QUICHE_EV_ERR_NULL`, or
/// `QUICHE_EV_ERR_INVALID` for a size too small.
#[no_mangle]
pub extern "C" fn quiche_ev_server_counters(server: *const quiche_ev_server, out: *mut quiche_ev_counters)
                                            -> c_int {
    guard(QUICHE_EV_ERR_INTERNAL, || {
        let Some(s) = self::server(server) else { return QUICHE_EV_ERR_NULL };
        if out.is_null() {
            return QUICHE_EV_ERR_NULL;
        }
        // SAFETY: as in with_state.
        let full = unsafe { S::state(s).counters };
        // SAFETY: out points to the caller's structure of out->size bytes.
        if unsafe { copy_sized(&full, out) } { 0 } else { QUICHE_EV_ERR_INVALID }
    })
}

/// Frees the server and every connection it still has (stopping their
/// timers; their requests are dropped without callbacks). Called from one
/// of the server's own callbacks, the free happens when that callback
/// returns. NULL is a no-op.
#[no_mangle]
pub extern "C" fn quiche_ev_server_free(server: *mut quiche_ev_server) {
    guard((), || {
        if let Some(s) = self::server(server) {
            // SAFETY: made by quiche_ev_server_new; C does not use it after.
            unsafe { S::destroy(s) };
        }
    })
}
