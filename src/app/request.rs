//! One request on a server connection, as the host sees it
//! (`quiche_ev_request *`): what the client asked for, the host's data,
//! and where the response and the request body stand.
//!
//! A request is a raw box owned by its connection's application state.
//! It is handed to the host with the request event and stays valid until
//! its closed event has been delivered; then the dispatch loop frees it.

use std::cell::OnceCell;
use std::ffi::CString;
use std::rc::Rc;

use libc::c_void;
use quiche::h3::{self, NameValue};

use super::body::Body;
use super::framing::AppPlatform;
use super::held::Held;
use super::host::ServerHost;
use crate::hooks::ConnRef;

pub use super::host::Outcome;

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

pub struct Request<P: AppPlatform, H: ServerHost<P>> {
    /// The connection (`server::ServerConn`), valid while the request is.
    pub conn: ConnRef,
    pub stream: u64,
    pub headers: Vec<h3::Header>,
    /// NUL-terminated copies of the pseudo-headers, made when a C getter
    /// first asks (most hosts ask for the path only).
    method: OnceCell<CString>,
    path: OnceCell<CString>,
    authority: OnceCell<CString>,
    scheme: OnceCell<CString>,
    /// `:protocol` of an extended CONNECT (RFC 9220; empty otherwise).
    protocol: OnceCell<CString>,
    /// The request came over HTTP/3 (not hq-interop).
    pub h3: bool,
    pub user: *mut c_void,
    /// The host's own per-request data.
    pub host_data: H::PerRequest,
    /// The host as it was when the request arrived.
    pub host: Rc<H>,
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
    /// A body callback for this request is running.
    pub in_body: bool,
    /// The host resumed the body from inside its body callback: the
    /// short return of that callback must not pause it.
    pub resume_wanted: bool,
    /// A request without a body whose body callback has not yet heard
    /// its end (the one call with `fin` and no bytes).
    pub fin_call: bool,
    /// The closed event is queued: every operation is refused from now on.
    pub closed: bool,
    /// The host got the request callback (only then the closed one).
    pub announced: bool,
    /// P is the platform the connection runs on.
    _platform: std::marker::PhantomData<P>,
}

fn cstring(v: &[u8]) -> CString {
    CString::new(v.iter().copied().filter(|&b| b != 0).collect::<Vec<u8>>()).expect("NULs removed")
}

impl<P: AppPlatform, H: ServerHost<P>> Request<P, H> {
    pub fn new(conn: ConnRef, stream: u64, headers: Vec<h3::Header>, h3: bool, host: Rc<H>) -> Self {
        Request {
            method: OnceCell::new(),
            path: OnceCell::new(),
            authority: OnceCell::new(),
            scheme: OnceCell::new(),
            protocol: OnceCell::new(),
            conn, stream, headers, h3,
            user: std::ptr::null_mut(),
            host_data: H::PerRequest::default(),
            host,
            response: Response::NotStarted,
            driven: None,
            want_writable: false,
            writable_queued: false,
            body_done: false,
            body_fin_seen: false,
            held: Held::default(),
            paused: false,
            body_queued: false,
            in_body: false,
            resume_wanted: false,
            fin_call: false,
            closed: false,
            announced: false,
            _platform: std::marker::PhantomData,
        }
    }

    /// The value of pseudo-header `name` (empty when absent).
    pub fn pseudo(&self, name: &[u8]) -> &[u8] {
        self.headers.iter().find(|h| h.name() == name).map_or(&[], |h| h.value())
    }

    pub fn path_bytes(&self) -> &[u8] {
        self.pseudo(b":path")
    }

    fn c_field<'a>(&'a self, cell: &'a OnceCell<CString>, name: &[u8]) -> &'a CString {
        cell.get_or_init(|| cstring(self.pseudo(name)))
    }

    /// The pseudo-headers as C strings, valid as long as the request.
    pub fn method(&self) -> &CString {
        self.c_field(&self.method, b":method")
    }

    pub fn path(&self) -> &CString {
        self.c_field(&self.path, b":path")
    }

    pub fn authority(&self) -> &CString {
        self.c_field(&self.authority, b":authority")
    }

    pub fn scheme(&self) -> &CString {
        self.c_field(&self.scheme, b":scheme")
    }

    pub fn protocol(&self) -> &CString {
        self.c_field(&self.protocol, b":protocol")
    }
}
