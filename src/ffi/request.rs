//! `quiche_ev_request_*` and `quiche_ev_respond*`: a request on a server
//! connection, and its response.
//!
//! Every function here may be called from any callback of the server's
//! loop or from the host's own watchers on that loop, between the
//! request callback and the return of the request's closed callback.

use libc::{c_char, c_int, c_void, ssize_t};

use super::errors::report;
use super::guard::{as_bytes, check_headers, guard, guard_on, headers_from_c};
use super::handles::*;
use super::types::*;
use super::{QUICHE_EV_ERR_AGAIN, QUICHE_EV_ERR_CLOSED, QUICHE_EV_ERR_INTERNAL, QUICHE_EV_ERR_INVALID,
            QUICHE_EV_ERR_NULL, QUICHE_EV_ERR_STATE, QUICHE_EV_ERR_TOO_LARGE, QUICHE_EV_ERR_TRANSPORT,
            QUICHE_EV_ERR_UNSUPPORTED};
use crate::app::server::{self as ops, OpError};
use crate::log::Origin;
use crate::server::ServerConn;

pub(super) fn code_of(e: OpError) -> c_int {
    match e {
        OpError::State => QUICHE_EV_ERR_STATE,
        OpError::Closed => QUICHE_EV_ERR_CLOSED,
        OpError::Again => QUICHE_EV_ERR_AGAIN,
        OpError::Transport(why) => {
            report(format!("quiche refused: {why}"));
            QUICHE_EV_ERR_TRANSPORT
        }
        OpError::Unsupported(why) => {
            report(why.to_string());
            QUICHE_EV_ERR_UNSUPPORTED
        }
        OpError::TooLarge(max) => {
            report(format!("the datagram is larger than the peer takes now ({max} bytes)"));
            QUICHE_EV_ERR_TOO_LARGE
        }
    }
}

/// A field of a live request (NULL for a NULL request).
fn field<T: Copy>(p: *const quiche_ev_request, none: T, f: impl FnOnce(&Req) -> T) -> T {
    guard(none, || match quiche_ev_request::get(p) {
        // SAFETY: a valid request handle (C API contract: until its closed
        // callback returns).
        Some(r) => f(unsafe { &*r }),
        None => none,
    })
}

/// Runs `f` on a live request, inside the panic boundary of its server
/// and with its server and connection as the log's origin.
pub(super) fn on_request<T: Copy>(p: *const quiche_ev_request, null: T, on_panic: T, f: impl FnOnce(*mut Req) -> T) -> T {
    guard(on_panic, || {
        let Some(r) = quiche_ev_request::get(p) else { return null };
        // SAFETY: a valid request handle; its connection and server live
        // as long as it does.
        let (conn, server) = unsafe {
            let conn = (*r).conn as *const SConn;
            (conn, ServerConn::server(conn))
        };
        crate::log::within(|o| *o = Origin { server: server.cast(), conn: conn.cast(), ..Origin::NONE }, || guard_on(server, on_panic, || f(r)))
    })
}

/// The request method (`GET` for hq-interop), NUL-terminated, valid until
/// the closed callback returns. NULL for a NULL request.
#[no_mangle]
pub extern "C" fn quiche_ev_request_method(req: *const quiche_ev_request) -> *const c_char {
    field(req, std::ptr::null(), |r| r.method().as_ptr())
}

/// The request path (with any query), NUL-terminated, as `method`.
#[no_mangle]
pub extern "C" fn quiche_ev_request_path(req: *const quiche_ev_request) -> *const c_char {
    field(req, std::ptr::null(), |r| r.path().as_ptr())
}

/// The `:authority` (empty for hq-interop), NUL-terminated, as `method`.
#[no_mangle]
pub extern "C" fn quiche_ev_request_authority(req: *const quiche_ev_request) -> *const c_char {
    field(req, std::ptr::null(), |r| r.authority().as_ptr())
}

/// The `:scheme`, NUL-terminated, as `method`.
#[no_mangle]
pub extern "C" fn quiche_ev_request_scheme(req: *const quiche_ev_request) -> *const c_char {
    field(req, std::ptr::null(), |r| r.scheme().as_ptr())
}

/// The `:protocol` of an extended CONNECT (RFC 9220, e.g. `connect-udp`
/// with method `CONNECT`), NUL-terminated, as `method`; empty for any
/// other request. A client sends one only to a server whose HTTP/3
/// SETTINGS allow it: `quiche_h3_config_enable_extended_connect(h3_config,
/// true)`. NULL for a NULL request.
#[no_mangle]
pub extern "C" fn quiche_ev_request_protocol(req: *const quiche_ev_request) -> *const c_char {
    field(req, std::ptr::null(), |r| r.protocol().as_ptr())
}

/// How many header fields the request has (pseudo-headers included).
#[no_mangle]
pub extern "C" fn quiche_ev_request_header_count(req: *const quiche_ev_request) -> usize {
    field(req, 0, |r| r.headers.len())
}

/// Header field `i` into `out` (pointers valid until the closed callback
/// returns). Returns 0, `QUICHE_EV_ERR_NULL`, or `QUICHE_EV_ERR_INVALID`
/// when `i` is out of range.
#[no_mangle]
pub extern "C" fn quiche_ev_request_header(req: *const quiche_ev_request, i: usize, out: *mut quiche_ev_header)
                                           -> c_int {
    field(req, QUICHE_EV_ERR_NULL, |r| match r.headers.get(i) {
        _ if out.is_null() => QUICHE_EV_ERR_NULL,
        Some(h) => {
            // SAFETY: out is non-NULL and points to a header (contract).
            unsafe { *out = quiche_ev_header::of(h) };
            0
        }
        None => QUICHE_EV_ERR_INVALID,
    })
}

/// The request's QUIC stream ID.
#[no_mangle]
pub extern "C" fn quiche_ev_request_stream_id(req: *const quiche_ev_request) -> u64 {
    field(req, u64::MAX, |r| r.stream)
}

/// The connection the request came on (valid as long as the request).
#[no_mangle]
pub extern "C" fn quiche_ev_request_conn(req: *const quiche_ev_request) -> *mut quiche_ev_conn {
    field(req, std::ptr::null_mut(), |r| quiche_ev_conn::of(r.conn))
}

/// Attaches the host's pointer to the request (default NULL).
#[no_mangle]
pub extern "C" fn quiche_ev_request_set_user_data(req: *mut quiche_ev_request, user: *mut c_void) -> c_int {
    on_request(req, QUICHE_EV_ERR_NULL, QUICHE_EV_ERR_INTERNAL, |r| {
        // SAFETY: a valid request handle; no other reference to it is
        // alive during a C API call.
        unsafe { (*r).user = user };
        0
    })
}

/// The host's pointer attached to the request.
#[no_mangle]
pub extern "C" fn quiche_ev_request_user_data(req: *const quiche_ev_request) -> *mut c_void {
    field(req, std::ptr::null_mut(), |r| r.user)
}

/// This request's own writable callback (instead of the server's).
#[no_mangle]
pub extern "C" fn quiche_ev_request_on_writable(req: *mut quiche_ev_request, cb: quiche_ev_request_writable_cb) -> c_int {
    on_request(req, QUICHE_EV_ERR_NULL, QUICHE_EV_ERR_INTERNAL, |r| {
        // SAFETY: as in quiche_ev_request_set_user_data.
        unsafe { (*r).host_data.on_writable = cb };
        0
    })
}

/// Runs a response operation on a live request.
fn op(p: *mut quiche_ev_request, f: impl FnOnce(*mut Req) -> Result<c_int, OpError>) -> c_int {
    on_request(p, QUICHE_EV_ERR_NULL, QUICHE_EV_ERR_INTERNAL, |r| f(r).unwrap_or_else(code_of))
}

/// Starts the response: `status` (100-999) and `n` header fields (names
/// lowercase, no pseudo-headers; copied). With `fin` non-zero the response
/// ends here (no body); otherwise write the body with
/// `quiche_ev_respond_write`. Never blocks: headers that do not fit yet
/// are sent as soon as they do. hq-interop has no status or headers: an
/// error status with `fin` resets the stream, anything else starts a body.
/// Returns 0, `QUICHE_EV_ERR_NULL`, `QUICHE_EV_ERR_INVALID` (a header),
/// `QUICHE_EV_ERR_STATE` (already responded, or a bad status),
/// `QUICHE_EV_ERR_CLOSED`.
#[no_mangle]
pub extern "C" fn quiche_ev_respond(req: *mut quiche_ev_request, status: c_int, headers: *const quiche_ev_header,
                                    n: usize, fin: c_int) -> c_int {
    op(req, |r| {
        // SAFETY: the caller passes n headers at headers.
        let list = match unsafe { check_headers(headers, n) } {
            Ok(l) => l,
            Err(code) => return Ok(code),
        };
        let status = u16::try_from(status).map_err(|_| OpError::State)?;
        // SAFETY: a valid request handle, no borrow alive (C API call).
        unsafe { ops::respond(r, status, list, fin != 0) }.map(|_| 0)
    })
}

/// Writes response body: as much of `len` bytes as flow control takes
/// now — maybe 0, never blocking, never dropping. When it took fewer than
/// `len`, the writable callback runs once more fits; offer the rest then.
/// With `fin` non-zero the response ends once all of `buf` was taken; the
/// end itself is never lost: when even that does not fit (an empty final
/// write on a full stream), the library sends it as soon as it does, and
/// the closed callback follows then.
/// Returns the bytes taken, or `QUICHE_EV_ERR_NULL`, `QUICHE_EV_ERR_STATE`
/// (no response started, or it ended), `QUICHE_EV_ERR_CLOSED` (the client
/// reset the stream or the connection closed).
#[no_mangle]
pub extern "C" fn quiche_ev_respond_write(req: *mut quiche_ev_request, buf: *const u8, len: usize, fin: c_int)
                                          -> ssize_t {
    on_request(req, QUICHE_EV_ERR_NULL as ssize_t, QUICHE_EV_ERR_INTERNAL as ssize_t, |r| {
        // SAFETY: buf is NULL (with len 0) or len readable bytes.
        let Some(data) = (unsafe { as_bytes(buf, len) }) else { return QUICHE_EV_ERR_NULL as ssize_t };
        // SAFETY: as in quiche_ev_respond.
        match unsafe { ops::write(r, data, fin != 0) } {
            Ok(n) => n as ssize_t,
            Err(e) => code_of(e) as ssize_t,
        }
    })
}

/// The whole response at once: status, headers and `len` body bytes. The
/// library keeps no pointer to them after the call: what the stream takes
/// at once is sent from them, the rest is copied and sent as flow control
/// allows, and the response ends. No `content-length` is added: put it in
/// `headers` if your clients want it. Returns as `quiche_ev_respond`.
#[no_mangle]
pub extern "C" fn quiche_ev_respond_bytes(req: *mut quiche_ev_request, status: c_int,
                                          headers: *const quiche_ev_header, n: usize, body: *const u8,
                                          len: usize) -> c_int {
    op(req, |r| {
        // SAFETY: the caller passes n headers and len bytes.
        let list = match unsafe { check_headers(headers, n) } {
            Ok(l) => l,
            Err(code) => return Ok(code),
        };
        // SAFETY: as above.
        let Some(body) = (unsafe { as_bytes(body, len) }) else { return Ok(QUICHE_EV_ERR_NULL) };
        let status = u16::try_from(status).map_err(|_| OpError::State)?;
        // SAFETY: as in quiche_ev_respond.
        unsafe { ops::respond_bytes(r, status, list, body) }.map(|_| 0)
    })
}

/// Ends an HTTP/3 response with trailer fields (after its body). Returns
/// 0, `QUICHE_EV_ERR_STATE` (no body started, already ended, or
/// hq-interop), `QUICHE_EV_ERR_AGAIN` (no room now: the writable callback
/// follows; call again from it), `QUICHE_EV_ERR_CLOSED`,
/// `QUICHE_EV_ERR_TRANSPORT` (quiche refused them; the log says why).
#[no_mangle]
pub extern "C" fn quiche_ev_respond_trailers(req: *mut quiche_ev_request, headers: *const quiche_ev_header,
                                             n: usize) -> c_int {
    op(req, |r| {
        // SAFETY: the caller passes n headers.
        let list = match unsafe { headers_from_c(headers, n) } {
            Ok(l) => l,
            Err(code) => return Ok(code),
        };
        // SAFETY: as in quiche_ev_respond.
        unsafe { ops::trailers(r, &list) }.map(|_| 0)
    })
}

/// Abandons the request: resets its stream both ways with the
/// application error `code` (HTTP/3: e.g. 0x10c H3_REQUEST_CANCELLED).
/// Its closed callback follows with `QUICHE_EV_REQUEST_CANCELLED`.
/// Returns 0, `QUICHE_EV_ERR_NULL`, `QUICHE_EV_ERR_CLOSED`.
#[no_mangle]
pub extern "C" fn quiche_ev_request_reset(req: *mut quiche_ev_request, code: u64) -> c_int {
    // SAFETY: as in quiche_ev_respond.
    op(req, |r| unsafe { ops::reset(r, code) }.map(|_| 0))
}

/// After the body callback took fewer bytes than offered: the rest (and
/// what follows) is offered again, from the loop. Called from inside the
/// body callback itself, it keeps the body going even if that callback
/// returns short. Returns 0,
/// `QUICHE_EV_ERR_NULL`, `QUICHE_EV_ERR_CLOSED`.
#[no_mangle]
pub extern "C" fn quiche_ev_request_resume_body(req: *mut quiche_ev_request) -> c_int {
    // SAFETY: as in quiche_ev_respond.
    op(req, |r| unsafe { ops::resume_body(r) }.map(|_| 0))
}
