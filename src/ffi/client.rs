//! `quiche_ev_client_*`: the client handle, its requests and responses.

use std::path::Path;

use libc::{c_char, c_int, c_void, sockaddr, socklen_t, ssize_t};
use libev_sys::{ev_io, ev_loop};

use super::errors::report;
use super::guard::{as_bytes, as_str, guard, guard_on, headers_from_c};
use super::handles::*;
use super::host::CClientHost;
use super::types::*;
use super::{QUICHE_EV_ERR_AGAIN, QUICHE_EV_ERR_CLOSED, QUICHE_EV_ERR_INTERNAL, QUICHE_EV_ERR_INVALID,
            QUICHE_EV_ERR_NULL, QUICHE_EV_ERR_STATE, QUICHE_EV_ERR_TOO_LARGE, QUICHE_EV_ERR_TRANSPORT,
            QUICHE_EV_ERR_UNSUPPORTED};
use crate::app::client::{self as ops, ClientRequests, NewRequest, ReqError};
use crate::app::output::Output;
use crate::app::proto::Protocol;
use crate::batch_io::IoMode;
use crate::client::{ClientCore, Phase};
use crate::dgram::DatagramIo;
use crate::evloop::EvLoop;
use crate::handle::Handle;
use crate::log::Origin;
use crate::observe::Observe;
use crate::platform::Platform;
use crate::socket::sockaddr_to_std;

type C = ClientCore<P, ClientRequests<P, CClientHost>>;

/// Runs `f` on a live client (NULL gives `QUICHE_EV_ERR_NULL`), inside its
/// panic boundary and with it as the log's origin.
fn with(p: *const quiche_ev_client, f: impl FnOnce(*mut Cli) -> c_int) -> c_int {
    with_or(p, QUICHE_EV_ERR_NULL, QUICHE_EV_ERR_INTERNAL, f)
}

pub(super) fn with_or<T: Copy>(p: *const quiche_ev_client, null: T, on_panic: T, f: impl FnOnce(*mut Cli) -> T) -> T {
    guard(on_panic, || match quiche_ev_client::get(p) {
        Some(c) => crate::log::within(|o| *o = Origin { client: c.cast(), ..Origin::NONE }, || guard_on(c, on_panic, || f(c))),
        None => null,
    })
}

/// The client's C callbacks, to change them.
///
/// # Safety
/// `c` is live; no borrow of its state is alive.
pub(super) unsafe fn host<'a>(c: *mut Cli) -> &'a mut CClientHost {
    &mut C::state(c).app.host
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
            report("quiche_ev_client_new: loop, config and socket are required".into());
            return std::ptr::null_mut();
        }
        // SAFETY: host is NULL or a C string.
        let host = unsafe { as_str(host) };
        // SAFETY: the caller passes peer_len readable bytes at peer.
        let Some(peer) = (unsafe { sockaddr_to_std(peer, peer_len) }) else {
            report("quiche_ev_client_new: peer address is not an IPv4/IPv6 address".into());
            return std::ptr::null_mut();
        };
        type Io = <P as Platform>::Io;
        if let Some(why) = Io::socket_problem(sock) {
            report(format!("quiche_ev_client_new: {why}"));
            return std::ptr::null_mut();
        }
        let local = match Io::local_addr(sock) {
            Ok(a) => a,
            Err(e) => {
                report(format!("quiche_ev_client_new: failed to get the local address of the socket: {e}"));
                return std::ptr::null_mut();
            }
        };
        let protocol = if h3_config.is_null() {
            Protocol::Hq
        } else {
            Protocol::H3(quiche_h3_config::as_config(h3_config))
        };
        let app = ClientRequests::new(protocol, host.unwrap_or(""), CClientHost::default());
        let cfg = quiche_config::as_config(config);
        let mut observe = Observe::default();
        // SAFETY: the config outlives the client (contract).
        unsafe { observe.set_config(cfg) };
        // SAFETY: the loop and the config outlive the client (contract).
        let created = unsafe {
            C::create(<P as Platform>::Loop::from_raw(loop_), Io::open(sock, local), local, peer, host, &mut *cfg,
                      observe, app)
        };
        match created {
            Ok(c) => quiche_ev_client::of(c),
            Err(e) => {
                report(format!("quiche_ev_client_new: {e}"));
                std::ptr::null_mut()
            }
        }
    })
}

/// The socket watcher's callback (upstream's `recv_cb`), for the first
/// socket and for one given to `quiche_ev_client_migrate`:
/// `ev_io_init(&w, quiche_ev_client_recv_cb, sock, EV_READ)`,
/// `w.data = client`, on the client's loop. The watcher must stay at its
/// address while it is active; once stopped it is the program's again
/// (the client keeps no pointer to it). Once the connection is over (its
/// closed callback ran) or the client is freed, the client stops every
/// such watcher, whether or not it was ever called (libev calls it once
/// more on the next loop iteration), so `ev_run` returns by itself when
/// the program has nothing else; a watcher whose `data` is a client already freed is
/// stopped without anything else being touched. Or let the client watch
/// its sockets itself: `quiche_ev_client_start`.
#[no_mangle]
pub extern "C" fn quiche_ev_client_recv_cb(loop_: *mut ev_loop, w: *mut ev_io, _revents: c_int) {
    guard((), || {
        if w.is_null() || loop_.is_null() {
            return;
        }
        // SAFETY: libev calls us with its loop and a live watcher; the
        // handle machinery checks `data` before using it.
        unsafe { Cli::host_recv_cb(loop_, w) };
    })
}

/// Lets the client watch its socket (and any socket given to
/// `quiche_ev_client_migrate` later) itself: no `ev_io` of the program's
/// is needed (nor allowed: use one or the other). Its watchers are
/// stopped when the connection is over or the client is freed. Returns 0,
/// `QUICHE_EV_ERR_NULL`, or `QUICHE_EV_ERR_STATE` when it is over.
#[no_mangle]
pub extern "C" fn quiche_ev_client_start(client: *mut quiche_ev_client) -> c_int {
    with(client, |c| {
        // SAFETY: a live client, no borrow alive (C API call).
        unsafe {
            if matches!(C::phase(c), Phase::ClosedOk | Phase::Failed) {
                return QUICHE_EV_ERR_STATE;
            }
            Handle::start(c);
        }
        0
    })
}

/// The pointer the client's callbacks receive as `user` for connection
/// events (default NULL). Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_client_set_user_data(client: *mut quiche_ev_client, user: *mut c_void) -> c_int {
    with(client, |c| {
        // SAFETY: a live client; no borrow alive during a C API call.
        unsafe { host(c).user = user };
        0
    })
}

/// The client's user data.
#[no_mangle]
pub extern "C" fn quiche_ev_client_user_data(client: *const quiche_ev_client) -> *mut c_void {
    guard(std::ptr::null_mut(), || match quiche_ev_client::get(client) {
        // SAFETY: as in quiche_ev_client_set_user_data.
        Some(c) => unsafe { C::state(c).app.host.user },
        None => std::ptr::null_mut(),
    })
}

/// `cb(client, user)` when the handshake completed. Returns 0 or
/// `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_client_on_established(client: *mut quiche_ev_client, cb: quiche_ev_client_cb) -> c_int {
    with(client, |c| {
        // SAFETY: as in quiche_ev_client_set_user_data.
        unsafe { host(c).on_established = cb };
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
        unsafe { host(c).on_closed = cb };
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
        let h = unsafe { host(c) };
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
        unsafe { host(c).on_trailers = cb };
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
    issue(client, method, None, path, headers, n, user, || {
        if body.is_null() {
            return Ok(None);
        }
        // SAFETY: body_len readable bytes at body.
        unsafe { as_bytes(body, body_len) }.map(|b| Some(Some(b.to_vec()))).ok_or(QUICHE_EV_ERR_NULL)
    })
}

/// Queues a request whose body the program writes itself, as it comes,
/// with `quiche_ev_client_request_write` (never copied whole; flow
/// control holds the program back through the request writable
/// callback), ended by a write with `fin` or by
/// `quiche_ev_client_request_trailers`. Otherwise as
/// `quiche_ev_client_request` (HTTP/3 only: hq-interop requests have no
/// body, `QUICHE_EV_ERR_INVALID`).
#[no_mangle]
pub extern "C" fn quiche_ev_client_request_start(client: *mut quiche_ev_client, method: *const c_char,
                                                 path: *const c_char, headers: *const quiche_ev_header, n: usize,
                                                 user: *mut c_void) -> i64 {
    issue(client, method, None, path, headers, n, user, || Ok(Some(None)))
}

/// Queues an extended CONNECT (RFC 9220): `:method` CONNECT with
/// `:protocol` `protocol` (e.g. `connect-udp`, RFC 9298), `:path` `path`
/// (e.g. `/.well-known/masque/udp/192.0.2.6/443/`), `:scheme` https and
/// the client's `:authority`, plus `n` extra header fields (e.g.
/// `capsule-protocol: ?1`). It is sent once the server's HTTP/3 SETTINGS
/// have arrived and only if they allow extended CONNECT
/// (SETTINGS_ENABLE_CONNECT_PROTOCOL); otherwise its done callback gets
/// `QUICHE_EV_RESPONSE_FAILED` (the log says why). The request stream is
/// the tunnel: it stays open until the program ends it as a streamed body
/// (`quiche_ev_client_request_write` with `fin`, or
/// `quiche_ev_client_cancel`), and carries what the protocol puts there
/// (capsules) both ways; HTTP Datagrams go with
/// `quiche_ev_client_request_send_datagram` once the response headers
/// arrived. HTTP/3 only. Returns the request's id (>= 0), or as
/// `quiche_ev_client_request` (`QUICHE_EV_ERR_INVALID` also for a
/// `protocol` that is empty or not a token).
#[no_mangle]
pub extern "C" fn quiche_ev_client_extended_connect(client: *mut quiche_ev_client, protocol: *const c_char,
                                                    path: *const c_char, headers: *const quiche_ev_header, n: usize,
                                                    user: *mut c_void) -> i64 {
    issue(client, c"CONNECT".as_ptr(), Some(protocol), path, headers, n, user, || Ok(Some(None)))
}

/// An HTTP token (RFC 9110 §5.6.2): visible ASCII but delimiters.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && !b"\"(),/:;<=>?@[\\]{}".contains(&b))
}

/// Queues a request; `body()` gives its body (see `NewRequest`).
#[allow(clippy::too_many_arguments)]
fn issue(client: *mut quiche_ev_client, method: *const c_char, protocol: Option<*const c_char>, path: *const c_char,
         headers: *const quiche_ev_header, n: usize, user: *mut c_void,
         body: impl FnOnce() -> Result<Option<Option<Vec<u8>>>, c_int>) -> i64 {
    with_or(client, QUICHE_EV_ERR_NULL as i64, QUICHE_EV_ERR_INTERNAL as i64, |c| {
        // SAFETY: method and path are NULL or C strings.
        let (Some(method), Some(path)) = (unsafe { as_str(method) }, unsafe { as_str(path) }) else {
            return QUICHE_EV_ERR_NULL as i64;
        };
        let protocol = match protocol {
            None => None,
            // SAFETY: protocol is NULL or a C string.
            Some(p) => match unsafe { as_str(p) } {
                None => return QUICHE_EV_ERR_NULL as i64,
                Some(p) if !is_token(p) => {
                    report(format!("quiche_ev_client_extended_connect: {p:?} is not a protocol token"));
                    return QUICHE_EV_ERR_INVALID as i64;
                }
                Some(p) => Some(p.as_bytes().to_vec()),
            },
        };
        // SAFETY: the caller passes n headers.
        let extra = match unsafe { headers_from_c(headers, n) } {
            Ok(l) => l,
            Err(code) => return code as i64,
        };
        let body = match body() {
            Ok(b) => b,
            Err(code) => return code as i64,
        };
        // SAFETY: a live client, no borrow alive.
        if matches!(unsafe { C::phase(c) }, Phase::Closing | Phase::ClosedOk | Phase::Failed) {
            report("quiche_ev_client_request: the connection is closing or over".into());
            return QUICHE_EV_ERR_STATE as i64;
        }
        let r = NewRequest { method: method.as_bytes().to_vec(), protocol, path: path.as_bytes().to_vec(),
                             headers: extra, body, user };
        // SAFETY: as above.
        match unsafe { ops::request(c, r) } {
            Ok(id) => id,
            Err(why) => {
                report(format!("quiche_ev_client_request: {why}"));
                QUICHE_EV_ERR_INVALID as i64
            }
        }
    })
}

pub(super) fn req_code(e: ReqError) -> c_int {
    match e {
        ReqError::Unknown => QUICHE_EV_ERR_INVALID,
        ReqError::State => QUICHE_EV_ERR_STATE,
        ReqError::Closed => QUICHE_EV_ERR_CLOSED,
        ReqError::Again => QUICHE_EV_ERR_AGAIN,
        ReqError::Transport(why) => {
            report(format!("quiche refused: {why}"));
            QUICHE_EV_ERR_TRANSPORT
        }
        ReqError::Unsupported(why) => {
            report(why.to_string());
            QUICHE_EV_ERR_UNSUPPORTED
        }
        ReqError::TooLarge(max) => {
            report(format!("the datagram is larger than the server takes now ({max} bytes)"));
            QUICHE_EV_ERR_TOO_LARGE
        }
    }
}

/// Writes body of a request made with `quiche_ev_client_request_start`:
/// as much of `len` bytes as flow control takes now (0 until the request
/// is sent, which waits for the handshake and the server's stream limit),
/// never blocking, never dropping. When it took fewer than `len`, the
/// request writable callback (`quiche_ev_client_on_request_writable`)
/// runs once more fits; offer the rest then. With `fin` non-zero the body
/// ends once all of `buf` was taken (an end that does not fit at once is
/// sent as soon as it does). Returns the bytes taken, or
/// `QUICHE_EV_ERR_NULL`, `QUICHE_EV_ERR_INVALID` (no such request),
/// `QUICHE_EV_ERR_STATE` (not a streamed request, or its body ended),
/// `QUICHE_EV_ERR_CLOSED` (the server reset the stream, or the request is
/// over), `QUICHE_EV_ERR_TRANSPORT`.
#[no_mangle]
pub extern "C" fn quiche_ev_client_request_write(client: *mut quiche_ev_client, id: i64, buf: *const u8, len: usize,
                                                 fin: c_int) -> ssize_t {
    with_or(client, QUICHE_EV_ERR_NULL as ssize_t, QUICHE_EV_ERR_INTERNAL as ssize_t, |c| {
        // SAFETY: buf is NULL (with len 0) or len readable bytes.
        let Some(data) = (unsafe { as_bytes(buf, len) }) else { return QUICHE_EV_ERR_NULL as ssize_t };
        // SAFETY: a live client, no borrow alive.
        match unsafe { ops::write(c, id, data, fin != 0) } {
            Ok(n) => n as ssize_t,
            Err(e) => req_code(e) as ssize_t,
        }
    })
}

/// Ends a streamed request body with HTTP/3 trailer fields (copied).
/// Returns 0, `QUICHE_EV_ERR_AGAIN` (no room now, or the request is not
/// sent yet: the request writable callback follows; call again from it),
/// or as `quiche_ev_client_request_write` (`QUICHE_EV_ERR_STATE` also for
/// hq-interop).
#[no_mangle]
pub extern "C" fn quiche_ev_client_request_trailers(client: *mut quiche_ev_client, id: i64,
                                                    headers: *const quiche_ev_header, n: usize) -> c_int {
    with(client, |c| {
        // SAFETY: the caller passes n headers.
        let list = match unsafe { headers_from_c(headers, n) } {
            Ok(l) => l,
            Err(code) => return code,
        };
        // SAFETY: a live client, no borrow alive.
        match unsafe { ops::trailers(c, id, &list) } {
            Ok(()) => 0,
            Err(e) => req_code(e),
        }
    })
}

/// `cb(client, id, user)` when a streamed request body that took fewer
/// bytes than offered (or was not sent yet) has room: write more from it.
/// `user` is the pointer given to `quiche_ev_client_request_start`.
/// Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_client_on_request_writable(client: *mut quiche_ev_client,
                                                       cb: quiche_ev_request_body_writable_cb) -> c_int {
    with(client, |c| {
        // SAFETY: a live client, no borrow alive.
        unsafe { host(c).on_request_writable = cb };
        0
    })
}

/// How long the handshake may take, in milliseconds from
/// `quiche_ev_client_new` (default 10000; 0: no limit of its own, only
/// quiche's idle timeout, which by default is none). A server that has
/// not completed the handshake by then fails the client (state
/// `QUICHE_EV_CLIENT_FAILED`, `quiche_ev_client_failure` says so; its
/// requests end with `QUICHE_EV_RESPONSE_FAILED`). Returns 0 or
/// `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_client_set_connect_timeout(client: *mut quiche_ev_client, ms: u64) -> c_int {
    with(client, |c| {
        let t = (ms > 0).then(|| std::time::Duration::from_millis(ms));
        // SAFETY: a live client, no borrow alive.
        unsafe { C::set_connect_timeout(c, t) };
        0
    })
}

/// After a body callback took fewer bytes than offered: offer the rest
/// again. Returns 0, `QUICHE_EV_ERR_NULL`, `QUICHE_EV_ERR_INVALID` (no
/// such request).
#[no_mangle]
pub extern "C" fn quiche_ev_client_resume(client: *mut quiche_ev_client, id: i64) -> c_int {
    // SAFETY: a live client, no borrow alive.
    with(client, |c| if unsafe { ops::resume(c, id) } { 0 } else { QUICHE_EV_ERR_INVALID })
}

/// Cancels a request (its stream is reset with H3_REQUEST_CANCELLED); its
/// done callback follows with `QUICHE_EV_RESPONSE_FAILED`. Returns 0,
/// `QUICHE_EV_ERR_NULL`, `QUICHE_EV_ERR_INVALID` (no such request).
#[no_mangle]
pub extern "C" fn quiche_ev_client_cancel(client: *mut quiche_ev_client, id: i64) -> c_int {
    // SAFETY: as in quiche_ev_client_resume.
    with(client, |c| if unsafe { ops::cancel(c, id) } { 0 } else { QUICHE_EV_ERR_INVALID })
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
    guard(std::ptr::null(), || match quiche_ev_client::get(client) {
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
        // SAFETY: a live client, no borrow alive; each borrow of the
        // driver's state ends before the next one starts (close_info's,
        // then the connection's).
        let full = unsafe {
            let info = C::close_info(c);
            let app = &C::state(c).app;
            quiche_ev_stats::of_conn(C::conn(c), &info, |recv| app.dgram_dropped(recv))
        };
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
    with_or(client, std::ptr::null_mut(), std::ptr::null_mut(), |c| {
        // SAFETY: a live client.
        quiche_conn::of(unsafe { C::conn_ptr(c) })
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
        type Io = <P as Platform>::Io;
        if let Some(why) = Io::socket_problem(sock) {
            report(format!("quiche_ev_client_migrate: {why}"));
            return QUICHE_EV_ERR_INVALID;
        }
        let local = match Io::local_addr(sock) {
            Ok(a) => a,
            Err(e) => {
                report(format!("quiche_ev_client_migrate: {e}"));
                return QUICHE_EV_ERR_INVALID;
            }
        };
        // SAFETY: a live client, no borrow alive.
        match unsafe { C::migrate(c, sock, local) } {
            Ok(()) => 0,
            Err(e) => {
                report(e);
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
                report(format!("session file {path}: {e}"));
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
                report(format!("cannot write key log {path}: {e}"));
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
                report(format!("cannot write qlog files to {dir}: {e}"));
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
            let io = Handle::io(c);
            io.set_mode(mode);
            C::state(c).gso = io.mode().gso; // what this build took
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
            let io = Handle::io(c);
            io.set_mode(IoMode { gso: on != 0, ..io.mode() });
            C::state(c).gso = io.mode().gso;
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
                    report(format!("quiche_ev_client_fetch: path {i} must be a string starting with '/'"));
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
             f: impl FnOnce(&mut Output<P>, &str) -> std::io::Result<()>) -> c_int {
    with(client, |c| {
        // SAFETY: path is NULL or a C string.
        let Some(p) = (unsafe { as_str(path) }) else { return QUICHE_EV_ERR_NULL };
        // SAFETY: a live client, no borrow alive.
        let st = unsafe { C::state(c) };
        let out = st.app.output.get_or_insert_with(|| Output::stdout(Vec::new()));
        match f(out, p) {
            Ok(()) => 0,
            Err(e) => {
                report(format!("cannot write {p}: {e}"));
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

/// Frees the client: its watchers stop, and so do the program's
/// `recv_cb` watchers that drive it; requests still open end without
/// callbacks. From one of its own callbacks, the free happens when that
/// callback returns, and no callback of the client runs after it. NULL is
/// a no-op.
#[no_mangle]
pub extern "C" fn quiche_ev_client_free(client: *mut quiche_ev_client) {
    guard((), || {
        if let Some(c) = quiche_ev_client::get(client) {
            // SAFETY: made by quiche_ev_client_new; C does not use it after.
            unsafe { Handle::destroy(c) };
        }
    })
}
