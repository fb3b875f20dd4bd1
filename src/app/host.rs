//! What the host hears, as the application layer says it. The C API
//! implements these traits with the host's C callbacks; a method that
//! returns `false` or `None` means "the host set no callback for this",
//! and the application falls back on its built-in behaviour (the example
//! clients' output, dropping a body). A request the host takes no callback
//! for goes to a built-in responder (`builtin`), through the same
//! operations a host uses.
//!
//! Every method is called with no borrow of any handle alive and from
//! inside one of the handle's callbacks, so the host may call back into
//! anything, `_free` of the handle included.

use libc::c_void;
use quiche::h3;

use super::framing::AppPlatform;
use crate::hooks::{ConnRef, HandleRef};
use crate::transport::{CloseInfo, ConnStats};

/// A server request as the host names it (the address of its
/// `request::Request`; valid until its closed callback returns).
pub type ReqRef = *mut c_void;

/// A client request's number, as the host knows it.
pub type ReqId = i64;

/// How a server request ended, as the request closed callback reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Outcome {
    /// The response went out whole.
    Complete = 0,
    /// The client reset the stream (or stopped reading it).
    Reset = 1,
    /// The host (or the library, after a failed body) reset it.
    Cancelled = 2,
    /// The connection closed first.
    ConnClosed = 3,
}

/// How a client request ended, as the done callback reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum ResponseOutcome {
    /// The whole response arrived.
    Complete = 0,
    /// The server reset the stream (the code says why).
    Reset = 1,
    /// The request was never sent (refused, the connection never came
    /// up) or was cancelled.
    Failed = 2,
    /// The connection ended before the response did.
    ConnClosed = 3,
}

/// A server's host.
pub trait ServerHost<P: AppPlatform>: Clone + 'static {
    /// The host's own data on each request (set through the C API).
    type PerRequest: Default;

    /// A request arrived (a host without a request callback of its own
    /// hands it to a built-in responder, `builtin`).
    fn request(&self, r: ReqRef);
    /// Request body bytes (`fin`: the body ends with them); the number
    /// taken, or `None` when the host reads no bodies (they are dropped).
    fn body(&self, r: ReqRef, data: &[u8], fin: bool) -> Option<usize>;
    /// A response that could not take everything has room again.
    fn writable(&self, r: ReqRef);
    /// The request is over; its handle is freed when this returns.
    fn request_closed(&self, r: ReqRef, outcome: Outcome, code: u64);
    /// The payload of an HTTP Datagram bound to request `r`; false when
    /// the host takes none (it is dropped, and counted).
    fn request_datagram(&self, r: ReqRef, data: &[u8]) -> bool;
    /// A QUIC datagram on `conn` that goes to no request (every one on
    /// hq-interop; on HTTP/3 those naming no open request, whole); false
    /// when the host takes none (it is dropped, and counted).
    fn datagram(&self, conn: ConnRef, data: &[u8]) -> bool;
    /// A datagram send on `conn` found quiche's queue full; now it has
    /// room.
    fn datagram_writable(&self, conn: ConnRef);
    /// Whether the host hears connections come and go (if not, those
    /// events are not even made).
    fn hears_conns(&self) -> bool;
    fn conn_established(&self, conn: ConnRef);
    fn conn_closed(&self, conn: ConnRef, stats: &ConnStats, info: &CloseInfo);
    /// The server stopped (its shutdown finished, or `failed`).
    fn stopped(&self, server: HandleRef, failed: bool);
}

/// A client's host. `user` is the pointer given with the request. Cheap to
/// copy: each call runs on a copy (the host may change the client's
/// callbacks from inside one).
pub trait ClientHost: Clone + 'static {
    fn established(&self, client: HandleRef);
    /// Response headers; false when the host takes none.
    fn headers(&self, client: HandleRef, id: ReqId, status: i32, headers: &[h3::Header], user: *mut c_void) -> bool;
    /// Response body bytes: the number taken, or `None` (no callback).
    fn body(&self, client: HandleRef, id: ReqId, data: &[u8], user: *mut c_void) -> Option<usize>;
    /// Response trailers; false when the host takes none.
    fn trailers(&self, client: HandleRef, id: ReqId, headers: &[h3::Header], user: *mut c_void) -> bool;
    /// The request is over; false when the host takes no completions.
    fn done(&self, client: HandleRef, id: ReqId, outcome: ResponseOutcome, code: u64, user: *mut c_void) -> bool;
    /// A streamed request body has room again.
    fn request_writable(&self, client: HandleRef, id: ReqId, user: *mut c_void);
    /// The payload of an HTTP Datagram bound to request `id`; false when
    /// the host takes none (dropped, and counted).
    fn request_datagram(&self, client: HandleRef, id: ReqId, data: &[u8], user: *mut c_void) -> bool;
    /// A QUIC datagram that goes to no request (see
    /// [`ServerHost::datagram`]); false when the host takes none.
    fn datagram(&self, client: HandleRef, data: &[u8]) -> bool;
    /// A datagram send found quiche's queue full; now it has room.
    fn datagram_writable(&self, client: HandleRef);
    /// The connection is over (`failed`: not cleanly); the last event.
    fn closed(&self, client: HandleRef, failed: bool);
}
