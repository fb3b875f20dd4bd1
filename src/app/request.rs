//! One request on a server connection, as the host sees it
//! (`quiche_ev_request *`): what the client asked for, the host's user
//! data, and where the response and the request body stand.
//!
//! A request is a raw box owned by its connection's application state.
//! It is handed to the host with the request event and stays valid until
//! its closed event has been delivered; then the dispatch loop frees it.

use std::ffi::CString;
use std::rc::Rc;

use libc::c_void;
use quiche::h3::{self, NameValue};

use super::body::Body;
use super::held::Held;
use super::server::Handlers;
use crate::platform::Real;
use crate::server::ServerConn;

/// A response has room again: `(request, user)`.
pub type WritableFn = unsafe extern "C" fn(*mut crate::ffi::types::quiche_ev_request, *mut c_void);

/// Where the response stands.
#[derive(Debug)]
pub enum Response {
    /// The host has not answered yet.
    NotStarted,
    /// Headers accepted but not yet sent (flow control); with the FIN.
    Pending(Vec<h3::Header>, bool),
    /// Headers are out; body (and trailers) may follow.
    Sending,
    /// The FIN is written: nothing more may be sent.
    Done,
}

/// How a request ended, as `quiche_ev_request_closed_cb` reports it.
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

pub struct Request {
    pub conn: *const ServerConn<Real>,
    pub stream: u64,
    pub headers: Vec<h3::Header>,
    /// NUL-terminated copies of the pseudo-headers, for the C getters.
    pub method: CString,
    pub path: CString,
    pub authority: CString,
    pub scheme: CString,
    pub user: *mut c_void,
    pub on_writable: Option<WritableFn>,
    pub handlers: Rc<Handlers>,
    pub response: Response,
    /// A body the library drives (bytes or a file).
    pub driven: Option<Body>,
    /// The host wrote less than it offered and waits for a writable call.
    pub want_writable: bool,
    pub writable_queued: bool,
    /// The request body: all read (FIN seen and delivered).
    pub body_done: bool,
    /// h3: the peer's FIN arrived (quiche's Finished event).
    pub body_fin_seen: bool,
    /// Bytes the host did not take yet, and whether the FIN follows them.
    pub held: Held,
    pub paused: bool,
    pub body_queued: bool,
    /// A request without a body whose body callback has not yet heard
    /// its end (the one call with `fin` and no bytes).
    pub fin_call: bool,
    /// The closed event is queued: every operation is refused from now on.
    pub closed: bool,
    /// The host got the request callback (only then the closed one).
    pub announced: bool,
}

fn cstring(v: &[u8]) -> CString {
    CString::new(v.iter().copied().filter(|&b| b != 0).collect::<Vec<u8>>()).expect("NULs removed")
}

impl Request {
    pub fn new(conn: *const ServerConn<Real>, stream: u64, headers: Vec<h3::Header>, handlers: Rc<Handlers>)
               -> Request {
        let get = |name: &[u8]| headers.iter().find(|h| h.name() == name).map(|h| cstring(h.value()))
            .unwrap_or_default();
        Request {
            method: get(b":method"),
            path: get(b":path"),
            authority: get(b":authority"),
            scheme: get(b":scheme"),
            conn, stream, headers,
            user: std::ptr::null_mut(),
            on_writable: None,
            handlers,
            response: Response::NotStarted,
            driven: None,
            want_writable: false,
            writable_queued: false,
            body_done: false,
            body_fin_seen: false,
            held: Held::default(),
            paused: false,
            body_queued: false,
            fin_call: false,
            closed: false,
            announced: false,
        }
    }

    pub fn path_bytes(&self) -> &[u8] {
        self.path.as_bytes()
    }

    /// The response is complete and the request body needs nothing more.
    pub fn is_complete(&self) -> bool {
        matches!(self.response, Response::Done) && self.body_done && self.driven.is_none()
    }
}
