//! The C API's plain data types, opaque stand-ins for C types that other
//! headers define (`quiche.h`; cbindgen is told not to emit those), and
//! every cast between a C handle and what it is in Rust: one place, one
//! kind of object per handle type (the handle machinery's raw root).
//!
//! The platform the C API runs on is chosen here too: libev, UDP sockets
//! and quiche; in the crate's own tests, the in-memory platform of
//! `testing`, so the model test drives these very functions under Miri.

use libc::{c_char, c_int, c_void};

use crate::server::Counters;
use crate::transport::{CloseInfo, ConnStats, Transport};

/// The platform behind the C API.
/// cbindgen:ignore
#[cfg(not(test))]
pub(crate) type P = crate::platform::Real;
/// cbindgen:ignore
#[cfg(test)]
pub(crate) type P = crate::testing::FakePlatform;

/// `quiche_config` from quiche.h: quiche's ffi boxes a `quiche::Config`.
#[repr(C)]
pub struct quiche_config {
    _private: [u8; 0],
}

/// `quiche_h3_config` from quiche.h: a boxed `quiche::h3::Config`.
#[repr(C)]
pub struct quiche_h3_config {
    _private: [u8; 0],
}

/// A QUIC server: the connection table and everything event-driven about
/// it. Made by `quiche_ev_server_new`, freed by `quiche_ev_server_free`.
pub struct quiche_ev_server {
    _private: [u8; 0],
}

/// A QUIC client: one connection and its requests. Made by
/// `quiche_ev_client_new`, freed by `quiche_ev_client_free`.
pub struct quiche_ev_client {
    _private: [u8; 0],
}

/// One request on a server connection, from its request callback until
/// its closed callback returns.
pub struct quiche_ev_request {
    _private: [u8; 0],
}

/// One server connection, from its established callback until its closed
/// callback returns.
pub struct quiche_ev_conn {
    _private: [u8; 0],
}

/// `quiche_conn` from quiche.h: a `quiche::Connection`.
#[repr(C)]
pub struct quiche_conn {
    _private: [u8; 0],
}

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
/// GOAWAY; or the connection ended, or never came up, before it could be)
/// or was cancelled (`quiche_ev_client_cancel`).
pub const QUICHE_EV_RESPONSE_FAILED: c_int = 2;
/// The connection ended before the response did.
pub const QUICHE_EV_RESPONSE_CONN_CLOSED: c_int = 3;

/// The request closed callback's outcomes.
pub const QUICHE_EV_REQUEST_COMPLETE: c_int = 0;
pub const QUICHE_EV_REQUEST_RESET: c_int = 1;
pub const QUICHE_EV_REQUEST_CANCELLED: c_int = 2;
pub const QUICHE_EV_REQUEST_CONN_CLOSED: c_int = 3;

/// One header field: `name_len` bytes at `name`, `value_len` at `value`
/// (not NUL-terminated). Given to the library, the bytes are copied; given
/// by the library, they are valid for the duration of the callback (or, for
/// a request's headers, until its closed callback returns).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct quiche_ev_header {
    pub name: *const u8,
    pub name_len: usize,
    pub value: *const u8,
    pub value_len: usize,
}

/// A connection's numbers and how it ended. `size` is the size of the
/// structure as filled (fields are only ever added at the end: a program
/// compiled against an older header reads the fields it knows). `reason`
/// is valid during the closed callback that gave the structure, or, when
/// `quiche_ev_conn_stats` / `quiche_ev_client_stats` filled it, as long as
/// that connection handle.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct quiche_ev_stats {
    pub size: usize,
    /// Packets received, sent, declared lost.
    pub recv: u64,
    pub sent: u64,
    pub lost: u64,
    /// Bytes received, sent, lost.
    pub recv_bytes: u64,
    pub sent_bytes: u64,
    pub lost_bytes: u64,
    /// Smoothed round-trip time, in nanoseconds.
    pub rtt_ns: u64,
    /// Congestion window, in bytes.
    pub cwnd: u64,
    /// 1 when the idle timeout ended it.
    pub timed_out: c_int,
    /// 1 when a peer's Stateless Reset ended it.
    pub stateless_reset: c_int,
    /// 1 when a CONNECTION_CLOSE was sent or received (then the fields
    /// below describe it).
    pub has_error: c_int,
    /// 1 when the peer sent it, 0 when we did.
    pub error_by_peer: c_int,
    /// 1 for an application (HTTP/3) error code, 0 for a transport one.
    pub error_is_app: c_int,
    pub error_code: u64,
    pub reason: *const u8,
    pub reason_len: usize,
    /// QUIC DATAGRAM frames sent and received (RFC 9221).
    pub dgram_sent: u64,
    pub dgram_recv: u64,
    /// Received datagrams the program never heard of: discarded by
    /// quiche when its receive queue was full (it keeps the newest; the
    /// queue's length is `quiche_config_enable_dgram`'s `recv_queue_len`),
    /// or delivered to no one (no datagram callback set, or for a request
    /// already over).
    pub dgram_dropped: u64,
}

impl quiche_ev_header {
    /// A view of `h` (valid while `h` is).
    pub fn of(h: &quiche::h3::Header) -> quiche_ev_header {
        use quiche::h3::NameValue;
        quiche_ev_header { name: h.name().as_ptr(), name_len: h.name().len(), value: h.value().as_ptr(),
                           value_len: h.value().len() }
    }
}

impl quiche_ev_stats {
    /// The stats and close information, with `reason` pointing into `info`.
    pub fn new(s: &ConnStats, info: &CloseInfo) -> quiche_ev_stats {
        let e = info.error.as_ref();
        quiche_ev_stats {
            size: std::mem::size_of::<quiche_ev_stats>(),
            recv: s.recv, sent: s.sent, lost: s.lost, recv_bytes: s.recv_bytes, sent_bytes: s.sent_bytes,
            lost_bytes: s.lost_bytes, rtt_ns: s.rtt_ns, cwnd: s.cwnd,
            timed_out: info.timed_out as c_int,
            stateless_reset: info.stateless_reset as c_int,
            has_error: e.is_some() as c_int,
            error_by_peer: e.is_some_and(|e| e.by_peer) as c_int,
            error_is_app: e.is_some_and(|e| e.is_app) as c_int,
            error_code: e.map_or(0, |e| e.code),
            reason: e.map_or(std::ptr::null(), |e| e.reason.as_ptr()),
            reason_len: e.map_or(0, |e| e.reason.len()),
            dgram_sent: s.dgram_sent,
            dgram_recv: s.dgram_recv,
            dgram_dropped: s.dgram_dropped,
        }
    }

    /// The stats of a live connection handle (`quiche_ev_conn_stats`,
    /// `quiche_ev_client_stats`), with `reason` pointing into quiche's own
    /// record of the close, which lasts as long as the connection, and
    /// `dropped(received)` the datagrams the host never heard of.
    pub fn of_conn(conn: &impl Transport, info: &CloseInfo, dropped: impl FnOnce(u64) -> u64) -> quiche_ev_stats {
        let mut stats = conn.conn_stats();
        stats.dgram_dropped = dropped(stats.dgram_recv);
        let mut s = quiche_ev_stats::new(&stats, info);
        let kept = info.error.as_ref().and_then(|e| conn.close_reason(e.by_peer));
        s.reason = kept.map_or(std::ptr::null(), |r| r.as_ptr());
        s.reason_len = kept.map_or(0, |r| r.len());
        s
    }
}

/// A server's counters since it was created (`quiche_ev_counters`).
/// `size` as for `quiche_ev_stats`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct quiche_ev_counters {
    pub size: usize,
    /// Connections created, and closed.
    pub accepted: u64,
    pub closed: u64,
    /// New connections refused (CONNECTION_REFUSED: table full, shutting
    /// down).
    pub refused: u64,
    /// Retry packets sent.
    pub retries: u64,
    /// Initials with a token of ours that did not validate (INVALID_TOKEN).
    pub invalid_tokens: u64,
    pub version_negotiations: u64,
    pub stateless_resets: u64,
    /// Datagrams dropped: unparsable; for no connection (and not
    /// answerable); too short to be a first Initial; for a connection just
    /// closed; over the rate limit of stateless answers.
    pub dropped_malformed: u64,
    pub dropped_unknown: u64,
    pub dropped_short: u64,
    pub dropped_late: u64,
    pub dropped_rate_limited: u64,
    /// Short-header datagrams for a connection of another live worker of
    /// the same group (see `quiche_ev_workers_new`): dropped, never
    /// answered with a reset.
    pub dropped_misrouted: u64,
}

impl quiche_ev_counters {
    pub(crate) fn of(c: &Counters) -> quiche_ev_counters {
        quiche_ev_counters {
            size: std::mem::size_of::<quiche_ev_counters>(),
            accepted: c.accepted, closed: c.closed, refused: c.refused, retries: c.retries,
            invalid_tokens: c.invalid_tokens, version_negotiations: c.version_negotiations,
            stateless_resets: c.stateless_resets, dropped_malformed: c.dropped_malformed,
            dropped_unknown: c.dropped_unknown, dropped_short: c.dropped_short, dropped_late: c.dropped_late,
            dropped_rate_limited: c.dropped_rate_limited, dropped_misrouted: c.dropped_misrouted,
        }
    }
}

/// One message of the library's log, as `quiche_ev_set_logger`'s callback
/// receives it (valid during the call). `size` as for `quiche_ev_stats`.
/// `server`, `client`, `conn` say who the message is about: the handle
/// whose work logged it and, for a server, the connection; NULL where
/// none applies.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct quiche_ev_log_record {
    pub size: usize,
    /// `QUICHE_EV_LOG_ERROR` .. `QUICHE_EV_LOG_DEBUG`.
    pub level: c_int,
    /// One line, NUL-terminated, no newline.
    pub message: *const c_char,
    pub server: *mut quiche_ev_server,
    pub client: *mut quiche_ev_client,
    pub conn: *mut quiche_ev_conn,
}

/// Copies `full` (a `#[repr(C)]` structure whose first field is its
/// `size_t size`) into the caller's structure, whose `size` field says how
/// large the caller's version is: only what both know is written, and
/// `size` is set to that. Returns false when the caller's size is too
/// small to hold even the size field.
///
/// # Safety
/// `out` points to a structure of at least `(*out).size` writable bytes.
pub unsafe fn copy_sized<T: Copy>(full: &T, out: *mut T) -> bool {
    let out = out as *mut u8;
    // SAFETY: the caller's structure starts with its size.
    let theirs = unsafe { std::ptr::read_unaligned(out as *const usize) };
    if theirs < std::mem::size_of::<usize>() {
        return false;
    }
    let n = theirs.min(std::mem::size_of::<T>());
    // SAFETY: both regions are valid for n bytes and do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(full as *const T as *const u8, out, n);
        std::ptr::write_unaligned(out as *mut usize, n);
    }
    true
}

/// Callback types: each is a nullable C function pointer.
///
/// The log callback: `(level, message, user)`; see `quiche_ev_set_log`.
pub type quiche_ev_log_cb = Option<unsafe extern "C" fn(c_int, *const c_char, *mut c_void)>;
/// The log callback with the message's origin: `(record, user)`; see
/// `quiche_ev_set_logger`.
pub type quiche_ev_logger_cb = Option<unsafe extern "C" fn(*const quiche_ev_log_record, *mut c_void)>;
/// A request arrived: `(request, user)`.
pub type quiche_ev_request_cb = Option<unsafe extern "C" fn(*mut quiche_ev_request, *mut c_void)>;
/// Request body: `(request, data, len, fin, user)`; returns the bytes taken.
pub type quiche_ev_request_body_cb =
    Option<unsafe extern "C" fn(*mut quiche_ev_request, *const u8, usize, c_int, *mut c_void) -> usize>;
/// A response has room again: `(request, user)`.
pub type quiche_ev_request_writable_cb = Option<unsafe extern "C" fn(*mut quiche_ev_request, *mut c_void)>;
/// A request is over: `(request, outcome, code, user)`.
pub type quiche_ev_request_closed_cb = Option<unsafe extern "C" fn(*mut quiche_ev_request, c_int, u64, *mut c_void)>;
/// A server connection's handshake completed: `(conn, user)`.
pub type quiche_ev_conn_cb = Option<unsafe extern "C" fn(*mut quiche_ev_conn, *mut c_void)>;
/// A server connection is gone: `(conn, stats, user)`.
pub type quiche_ev_conn_closed_cb = Option<unsafe extern "C" fn(*mut quiche_ev_conn, *const quiche_ev_stats, *mut c_void)>;
/// The server stopped: `(server, status, user)`.
pub type quiche_ev_server_stopped_cb = Option<unsafe extern "C" fn(*mut quiche_ev_server, c_int, *mut c_void)>;
/// The client's handshake completed: `(client, user)`.
pub type quiche_ev_client_cb = Option<unsafe extern "C" fn(*mut quiche_ev_client, *mut c_void)>;
/// The client's connection is over: `(client, state, user)`.
pub type quiche_ev_client_closed_cb = Option<unsafe extern "C" fn(*mut quiche_ev_client, c_int, *mut c_void)>;
/// Response headers: `(client, id, status, headers, n, request user)`.
pub type quiche_ev_response_headers_cb =
    Option<unsafe extern "C" fn(*mut quiche_ev_client, i64, c_int, *const quiche_ev_header, usize, *mut c_void)>;
/// Response body: `(client, id, data, len, request user)`; returns the bytes taken.
pub type quiche_ev_response_body_cb =
    Option<unsafe extern "C" fn(*mut quiche_ev_client, i64, *const u8, usize, *mut c_void) -> usize>;
/// A response is over: `(client, id, outcome, code, request user)`.
pub type quiche_ev_response_done_cb = Option<unsafe extern "C" fn(*mut quiche_ev_client, i64, c_int, u64, *mut c_void)>;
/// A streamed request body has room again: `(client, id, request user)`.
pub type quiche_ev_request_body_writable_cb = Option<unsafe extern "C" fn(*mut quiche_ev_client, i64, *mut c_void)>;
/// Response trailers: `(client, id, headers, n, request user)`.
pub type quiche_ev_response_trailers_cb =
    Option<unsafe extern "C" fn(*mut quiche_ev_client, i64, *const quiche_ev_header, usize, *mut c_void)>;
/// A QUIC datagram on a server connection: `(conn, data, len, user)`.
pub type quiche_ev_conn_datagram_cb = Option<unsafe extern "C" fn(*mut quiche_ev_conn, *const u8, usize, *mut c_void)>;
/// An HTTP Datagram's payload for a server request: `(request, data, len,
/// user)`.
pub type quiche_ev_request_datagram_cb =
    Option<unsafe extern "C" fn(*mut quiche_ev_request, *const u8, usize, *mut c_void)>;
/// A QUIC datagram on the client's connection: `(client, data, len, user)`.
pub type quiche_ev_client_datagram_cb =
    Option<unsafe extern "C" fn(*mut quiche_ev_client, *const u8, usize, *mut c_void)>;
/// An HTTP Datagram's payload for a client request: `(client, id, data,
/// len, request user)`.
pub type quiche_ev_response_datagram_cb =
    Option<unsafe extern "C" fn(*mut quiche_ev_client, i64, *const u8, usize, *mut c_void)>;
