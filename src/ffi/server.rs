//! `quiche_ev_server_*`: the server handle, its settings, its callbacks.

use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use libc::{c_char, c_int, c_void, sockaddr, socklen_t, ssize_t};
use libev_sys::{ev_io, ev_loop};

use super::errors::report;
use super::guard::{as_bytes, as_str, guard, guard_on};
use super::handles::*;
use super::host::CServerHost;
use super::types::*;
use super::{QUICHE_EV_ERR_INTERNAL, QUICHE_EV_ERR_INVALID, QUICHE_EV_ERR_NULL, QUICHE_EV_ERR_STATE};
use crate::app::builtin::Builtin;
use crate::app::files::Root;
use crate::app::proto::Protocol;
use crate::app::server::Shared;
use crate::batch_io::IoMode;
use crate::dgram::DatagramIo;
use crate::evloop::EvLoop;
use crate::handle::Handle;
use crate::log::Origin;
use crate::platform::Platform;
use crate::server::{ServerCore, ServerState};
use crate::socket::sockaddr_to_std;

pub(super) type State = ServerState<P, crate::app::server::ConnApp<P, CServerHost>>;

/// Runs `f` on the server behind a handle (NULL gives
/// `QUICHE_EV_ERR_NULL`).
fn with(p: *const quiche_ev_server, f: impl FnOnce(*mut Srv) -> c_int) -> c_int {
    guard(QUICHE_EV_ERR_INTERNAL, || match quiche_ev_server::get(p) {
        Some(s) => crate::log::within(|o| *o = Origin { server: s.cast(), ..Origin::NONE }, || guard_on(s, QUICHE_EV_ERR_INTERNAL, || f(s))),
        None => QUICHE_EV_ERR_NULL,
    })
}

/// Runs `f` on the server's state (NULL gives `QUICHE_EV_ERR_NULL`).
pub(super) fn with_state(p: *const quiche_ev_server, f: impl FnOnce(&mut State) -> c_int) -> c_int {
    // SAFETY: a non-NULL handle came from quiche_ev_server_new and is not
    // used after _free (C API contract); no borrow of its state is alive
    // during a C API call (host callbacks run with none).
    with(p, |s| f(unsafe { ServerCore::state(s) }))
}

/// The server's C callbacks, to change them.
pub(super) fn host(st: &mut State) -> &mut CServerHost {
    st.app.host_mut()
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
            report("quiche_ev_server_new: loop, config and socket are required".into());
            return std::ptr::null_mut();
        }
        // SAFETY: the caller passes local_len readable bytes at local.
        let Some(local) = (unsafe { sockaddr_to_std(local, local_len) }) else {
            report("quiche_ev_server_new: local address is not an IPv4/IPv6 address".into());
            return std::ptr::null_mut();
        };
        type Io = <P as Platform>::Io;
        if let Some(why) = Io::socket_problem(sock) {
            report(format!("quiche_ev_server_new: {why}"));
            return std::ptr::null_mut();
        }
        let protocol = if h3_config.is_null() {
            Protocol::Hq
        } else {
            Protocol::H3(quiche_h3_config::as_config(h3_config))
        };
        let cfg = quiche_config::as_config(config);
        // SAFETY: the loop and the config outlive the server (contract
        // above).
        let s = unsafe {
            ServerCore::create(<P as Platform>::Loop::from_raw(loop_), Io::open(sock, local), sock, local, cfg,
                               Shared::new(protocol, CServerHost::default()))
        };
        // SAFETY: just created, no borrow alive; the config outlives the
        // server (contract above).
        unsafe { ServerCore::state(s).observe.set_config(cfg) };
        quiche_ev_server::of(s)
    })
}

/// The socket watcher's callback (upstream's `recv_cb`): set it with
/// `ev_io_init(&w, quiche_ev_server_recv_cb, sock, EV_READ)` and
/// `w.data = server`, on the server's loop. The watcher must stay at its
/// address while it is active (as upstream's, on `main`'s stack); once
/// stopped it is the program's again (the server keeps no pointer to
/// it). The server stops it when it has stopped (after
/// `quiche_ev_server_shutdown` or an internal error) and when it is
/// freed, whether or not the watcher was ever called (libev calls it once
/// more on the next loop iteration), so `ev_run` returns by itself when
/// the program has nothing else. It also
/// stops, without touching anything else, a watcher whose `data` is a
/// server already freed. Or let the server watch its socket itself:
/// `quiche_ev_server_start`.
#[no_mangle]
pub extern "C" fn quiche_ev_server_recv_cb(loop_: *mut ev_loop, w: *mut ev_io, _revents: c_int) {
    guard((), || {
        if w.is_null() || loop_.is_null() {
            return;
        }
        // SAFETY: libev calls us with its loop and a live watcher; the
        // handle machinery checks `data` before using it.
        unsafe { Srv::host_recv_cb(loop_, w) };
    })
}

/// Lets the server watch its socket itself: no `ev_io` of the program's
/// is needed (nor allowed: use one or the other). The watcher is the
/// server's own, stopped when the server stops or is freed. Returns 0,
/// `QUICHE_EV_ERR_NULL`, or `QUICHE_EV_ERR_STATE` when the server has
/// stopped.
#[no_mangle]
pub extern "C" fn quiche_ev_server_start(server: *mut quiche_ev_server) -> c_int {
    with(server, |s| {
        // SAFETY: a live server, no borrow alive (C API call).
        unsafe {
            if Handle::is_failed(s) || ServerCore::state(s).is_stopped() {
                return QUICHE_EV_ERR_STATE;
            }
            Handle::start(s);
        }
        0
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
                host(st).builtin = Builtin::Files(Rc::new(root));
                0
            }
            Err(e) => {
                report(format!("cannot serve {dir}: {e}"));
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
            report("quiche_ev_server_set_max_conns: the bound must be at least 1".into());
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
            report("quiche_ev_server_set_token_lifetime: the lifetime must be at least 1 ms".into());
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
/// (default: random per server), with no previous one: the same as
/// `quiche_ev_server_set_reset_keys(server, key, NULL, len)`. A server
/// restarted with the same key can reset the connections of its previous
/// run, so their clients stop at once instead of waiting for their idle
/// timeout. Keep it secret. Returns 0, `QUICHE_EV_ERR_NULL`, or
/// `QUICHE_EV_ERR_INVALID` when `len` is not 32.
#[no_mangle]
pub extern "C" fn quiche_ev_server_set_reset_key(server: *mut quiche_ev_server, key: *const u8, len: usize) -> c_int {
    with_state(server, |st| match key_pair("quiche_ev_server_set_reset_key", key, std::ptr::null(), len, 32) {
        Ok(keys) => {
            st.set_reset_keys(keys);
            0
        }
        Err(e) => e,
    })
}

/// Chooses the datagram path: `batched` non-zero (the default) reads with
/// `recvmmsg` + UDP GRO and sends GSO batches; 0 uses one `recvfrom` /
/// `sendto` per packet like upstream (for comparison). Returns 0 or
/// `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_server_set_batched_io(server: *mut quiche_ev_server, batched: c_int) -> c_int {
    with(server, |s| {
        let mode = if batched != 0 { IoMode::BATCHED } else { IoMode::PLAIN };
        // SAFETY: as in with_state.
        unsafe {
            let io = Handle::io(s);
            io.set_mode(mode);
            ServerCore::state(s).settings.gso = io.mode().gso; // what this build took
        }
        0
    })
}

/// Turns GSO sends on (non-zero, the default on the batched path) or off,
/// keeping the read side as it is: for measuring what GSO itself brings.
/// Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_server_set_gso(server: *mut quiche_ev_server, on: c_int) -> c_int {
    with(server, |s| {
        // SAFETY: as in with_state.
        unsafe {
            let io = Handle::io(s);
            io.set_mode(IoMode { gso: on != 0, ..io.mode() });
            ServerCore::state(s).settings.gso = io.mode().gso;
        }
        0
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
                report(format!("cannot write key log {path}: {e}"));
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
                report(format!("cannot write qlog files to {dir}: {e}"));
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
        host(st).user = user;
        0
    })
}

/// The server's user data (NULL when unset or for a NULL server).
#[no_mangle]
pub extern "C" fn quiche_ev_server_user_data(server: *const quiche_ev_server) -> *mut c_void {
    guard(std::ptr::null_mut(), || match quiche_ev_server::get(server) {
        // SAFETY: as in with_state.
        Some(s) => unsafe { ServerCore::state(s).app.host.user },
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
        host(st).on_request = cb;
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
        host(st).on_body = cb;
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
        host(st).on_writable = cb;
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
        host(st).on_request_closed = cb;
        0
    })
}

/// Sets the connection callbacks (either may be NULL): `established(conn,
/// user)` when a handshake completes; `closed(conn, stats, user)` when the
/// connection is gone, with its numbers and how it ended, for every
/// connection whose established callback ran (one that never came up is
/// never heard of). A connection handle is valid from its established
/// callback until its closed callback returns. Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_server_on_conn(
    server: *mut quiche_ev_server, established: quiche_ev_conn_cb, closed: quiche_ev_conn_closed_cb) -> c_int {
    with_state(server, |st| {
        let h = host(st);
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
        host(st).on_stopped = cb;
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
    with(server, |s| {
        // SAFETY: as in with_state.
        unsafe {
            if Handle::is_failed(s) {
                return QUICHE_EV_ERR_STATE;
            }
            ServerCore::shutdown(s, Duration::from_millis(drain_ms));
        }
        0
    })
}

/// 1 once a shutdown has finished, 0 while running or draining,
/// `QUICHE_EV_ERR_INTERNAL` after an internal error, `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_server_is_stopped(server: *const quiche_ev_server) -> c_int {
    with(server, |s| {
        // SAFETY: as in with_state.
        unsafe {
            if Handle::is_failed(s) {
                return QUICHE_EV_ERR_INTERNAL;
            }
            ServerCore::state(s).is_stopped() as c_int
        }
    })
}

/// The number of live connections, or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_server_conn_count(server: *const quiche_ev_server) -> ssize_t {
    guard(QUICHE_EV_ERR_INTERNAL as ssize_t, || match quiche_ev_server::get(server) {
        // SAFETY: as in with_state.
        Some(s) => unsafe { ServerCore::state(s).conn_count() as ssize_t },
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
        let Some(s) = quiche_ev_server::get(server) else { return QUICHE_EV_ERR_NULL };
        if out.is_null() {
            return QUICHE_EV_ERR_NULL;
        }
        // SAFETY: as in with_state.
        let full = quiche_ev_counters::of(unsafe { &ServerCore::state(s).counters });
        // SAFETY: out points to the caller's structure of out->size bytes.
        if unsafe { copy_sized(&full, out) } { 0 } else { QUICHE_EV_ERR_INVALID }
    })
}

/// Frees the server and every connection it still has (stopping their
/// timers; their requests are dropped without callbacks), and stops every
/// watcher that drives it (its own, and the program's `recv_cb`
/// watchers). Called from one of the server's own callbacks, the free
/// happens when that callback returns, and no callback of the server runs
/// after it. NULL is a no-op.
#[no_mangle]
pub extern "C" fn quiche_ev_server_free(server: *mut quiche_ev_server) {
    guard((), || {
        if let Some(s) = quiche_ev_server::get(server) {
            // SAFETY: made by quiche_ev_server_new; C does not use it after.
            unsafe { Handle::destroy(s) };
        }
    })
}

/// One datagram as if read from the server's socket, from `from`, then
/// the step that follows (Rust only: the fuzz harness and in-process
/// tests). False when the server is gone.
///
/// # Safety
/// `server` is a live server handle, outside its callbacks.
pub unsafe fn inject_datagram(server: *mut quiche_ev_server, pkt: &mut [u8], from: std::net::SocketAddr) -> bool {
    match quiche_ev_server::get(server) {
        Some(s) => ServerCore::inject(s, pkt, from),
        None => false,
    }
}

/// A key pair from C: `current` (required) and `previous` (NULL: none),
/// each `len` bytes, which must be `want`.
pub(crate) fn key_pair(what: &str, current: *const u8, previous: *const u8, len: usize, want: usize)
            -> Result<crate::secrets::KeyPair, c_int> {
    if current.is_null() {
        report(format!("{what}: the current key is required"));
        return Err(QUICHE_EV_ERR_NULL);
    }
    if len != want {
        report(format!("{what}: keys must be {want} bytes, not {len}"));
        return Err(QUICHE_EV_ERR_INVALID);
    }
    // SAFETY: non-NULL pointers to `len` readable bytes (C API contract).
    let read = |p: *const u8| unsafe { as_bytes(p, len) }.and_then(|b| <[u8; 32]>::try_from(b).ok());
    let current = read(current).ok_or(QUICHE_EV_ERR_INVALID)?;
    let previous = if previous.is_null() { None } else { Some(read(previous).ok_or(QUICHE_EV_ERR_INVALID)?) };
    Ok(crate::secrets::KeyPair { current, previous })
}

/// The keys stateless-reset tokens are derived from, 32 bytes each:
/// `current` for every connection ID issued from now on, and `previous`
/// (NULL: none) during a rotation. A datagram for a connection the server
/// does not know is answered with a reset under each key, so a connection
/// whose CIDs another holder of either key issued (a worker of the same
/// group that died, another host, this server's previous run) is ended at
/// once instead of waiting for its idle timeout. Share them across every
/// worker and host behind one address; keep them secret. Default: random
/// per server (per group for a worker's server). Returns 0,
/// `QUICHE_EV_ERR_NULL` (no current key, or no server), or
/// `QUICHE_EV_ERR_INVALID` when `len` is not 32.
#[no_mangle]
pub extern "C" fn quiche_ev_server_set_reset_keys(server: *mut quiche_ev_server, current: *const u8,
                                                  previous: *const u8, len: usize) -> c_int {
    with_state(server, |st| match key_pair("quiche_ev_server_set_reset_keys", current, previous, len, 32) {
        Ok(keys) => {
            st.set_reset_keys(keys);
            0
        }
        Err(e) => e,
    })
}

/// The keys Retry tokens are made with, 32 bytes each: `current` mints
/// them; a token made under `current` or `previous` (NULL: none) is
/// accepted. A fleet that shares them accepts on any server a token any
/// other minted. Rotate in two steps across every server so that none
/// meets a token it cannot read: first (old, new) everywhere, then (new,
/// old); drop the old key once tokens made under it have expired (see
/// `quiche_ev_server_set_token_lifetime`). Default: random per server
/// (per group for a worker's server). Returns 0, `QUICHE_EV_ERR_NULL` or
/// `QUICHE_EV_ERR_INVALID` (`len` is not 32).
#[no_mangle]
pub extern "C" fn quiche_ev_server_set_token_keys(server: *mut quiche_ev_server, current: *const u8,
                                                  previous: *const u8, len: usize) -> c_int {
    with_state(server, |st| match key_pair("quiche_ev_server_set_token_keys", current, previous, len, 32) {
        Ok(keys) => {
            st.set_token_keys(keys);
            0
        }
        Err(e) => e,
    })
}

/// The CID source a QUIC-LB layout makes, or the reason it cannot.
pub(crate) fn cid_layout(what: &str, config_id: c_int, server_id: *const u8, server_id_len: usize,
                         nonce_len: usize, key: *const u8, key_len: usize, worker: c_int)
                         -> Result<crate::cid::CidSource, c_int> {
    // SAFETY: NULL or server_id_len readable bytes (C API contract).
    let Some(sid) = (unsafe { as_bytes(server_id, server_id_len) }) else {
        report(format!("{what}: server_id is NULL"));
        return Err(QUICHE_EV_ERR_NULL);
    };
    let key = match (key.is_null(), key_len) {
        (true, 0) => None,
        (false, 16) => {
            // SAFETY: 16 readable bytes at key (C API contract).
            let k = unsafe { as_bytes(key, 16) }.and_then(|b| <[u8; 16]>::try_from(b).ok());
            Some(k.ok_or(QUICHE_EV_ERR_INVALID)?)
        }
        _ => {
            report(format!("{what}: the key is 16 bytes (or NULL with length 0 for plaintext), not {key_len}"));
            return Err(QUICHE_EV_ERR_INVALID);
        }
    };
    let (Ok(config_id), Ok(worker)) = (u8::try_from(config_id), i16::try_from(worker)) else {
        report(format!("{what}: config ID {config_id} or worker {worker} out of range"));
        return Err(QUICHE_EV_ERR_INVALID);
    };
    let worker = match worker {
        -1 => None,
        w => match u8::try_from(w) {
            Ok(w) => Some(w),
            Err(_) => {
                report(format!("{what}: worker {w} is neither -1 nor 0..=31"));
                return Err(QUICHE_EV_ERR_INVALID);
            }
        },
    };
    crate::cid::CidSource::quic_lb(config_id, sid, nonce_len, key, worker).map_err(|e| {
        report(format!("{what}: {e}"));
        QUICHE_EV_ERR_INVALID
    })
}

/// Makes every connection ID the server issues from now on (the first of
/// each new connection, every spare one, a Retry's) a QUIC-LB connection
/// ID (draft-ietf-quic-load-balancers-21): a first octet whose top three
/// bits are `config_id` (0..=6), then the `server_id_len` (1..=15) octets
/// of `server_id` and a nonce of `nonce_len` (4..=18) octets, together at
/// most 19; plaintext when `key` is NULL (`key_len` 0), else encrypted
/// under the 16-byte `key` (one AES pass when server ID and nonce make 16
/// octets, four otherwise). A QUIC-LB load balancer configured with the
/// same config ID, lengths and key routes every packet of a connection to
/// this server, whatever address the client moves to. `worker` (0..=31)
/// goes into the five low bits of the first octet, which QUIC-LB leaves to
/// the server, for the kernel's steering between the workers of one host
/// (`quiche_ev_workers_new` sets it for its workers); -1 leaves them
/// random. Without this call the server issues random 16-byte CIDs, as
/// upstream's samples do. Connections already up keep their CIDs. Returns
/// 0, `QUICHE_EV_ERR_NULL`, or `QUICHE_EV_ERR_INVALID` for a layout the
/// draft does not allow (the last error says which part).
#[no_mangle]
pub extern "C" fn quiche_ev_server_set_cid_layout(server: *mut quiche_ev_server, config_id: c_int,
                                                  server_id: *const u8, server_id_len: usize, nonce_len: usize,
                                                  key: *const u8, key_len: usize, worker: c_int) -> c_int {
    with_state(server, |st| {
        match cid_layout("quiche_ev_server_set_cid_layout", config_id, server_id, server_id_len, nonce_len, key,
                         key_len, worker) {
            Ok(source) => {
                st.set_cid_source(source);
                0
            }
            Err(e) => e,
        }
    })
}

/// Writes into `buf` (`len` bytes, NUL-terminated, truncated to fit) one
/// line describing the connection IDs the server issues: random 16-byte,
/// or the QUIC-LB layout (config ID, server ID, lengths, plaintext or
/// encrypted, the worker bits; never the key). Returns the length of the
/// whole line (without the NUL, as `snprintf`), or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_server_cid_layout(server: *const quiche_ev_server, buf: *mut c_char, len: usize)
                                              -> ssize_t {
    guard(QUICHE_EV_ERR_INTERNAL as ssize_t, || {
        let Some(s) = quiche_ev_server::get(server) else { return QUICHE_EV_ERR_NULL as ssize_t };
        // SAFETY: as in with_state.
        let line = unsafe { ServerCore::state(s).cid_source().to_string() };
        // SAFETY: buf is NULL or len writable bytes (C API contract).
        unsafe { copy_line(&line, buf, len) }
    })
}

/// Copies `line` into the caller's `buf` of `len` bytes as a C string
/// (truncated, always NUL-terminated when `len` > 0); returns the whole
/// line's length.
///
/// # Safety
/// `buf` is NULL or points to `len` writable bytes.
pub(crate) unsafe fn copy_line(line: &str, buf: *mut c_char, len: usize) -> ssize_t {
    if !buf.is_null() && len > 0 {
        let n = line.len().min(len - 1);
        // SAFETY: n + 1 <= len bytes of buf are written.
        unsafe {
            std::ptr::copy_nonoverlapping(line.as_ptr(), buf.cast(), n);
            *buf.add(n) = 0;
        }
    }
    line.len() as ssize_t
}
