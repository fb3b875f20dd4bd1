//! The server's application layer: requests read from each connection
//! (HTTP/3 or hq-interop), handed to the host's callbacks — or, when the
//! host set none, to the built-in responders (`byez`, files under a root)
//! through the very same path — and responses written as the host (or a
//! driven body) supplies them, as flow control allows.
//!
//! The transport calls the hooks below with its state borrowed; they only
//! queue events. [`ConnApp::deliver`] runs each event with nothing
//! borrowed, so a host callback may call any request operation (the
//! `respond*`, `write`, `reset` functions here), which borrow the
//! connection afresh for the duration of the call.

use std::collections::{HashMap, VecDeque};
use std::ptr::NonNull;
use std::rc::Rc;

use libc::{c_int, c_void};
use quiche::h3::{self, NameValue};

use super::body::{Body, Progress, Sent};
use super::builtin::Builtin;
use super::held::BODY_CHUNK;
use super::request::{Outcome, Request, Response, WritableFn};
use crate::ffi::types::{quiche_ev_conn, quiche_ev_stats, quiche_ev_request};
use crate::hooks::{ConnRef, ServerApp};
use crate::platform::Real;
use crate::server::{Server, ServerConn};
use crate::transport::{CloseInfo, ConnStats};

// The host's callbacks; `ffi::types` has their C typedefs (nullable).
/// A request arrived: `(request, user)`.
pub type RequestFn = unsafe extern "C" fn(*mut quiche_ev_request, *mut c_void);
/// Request body: `(request, data, len, fin, user)`, returns bytes taken.
pub type BodyFn = unsafe extern "C" fn(*mut quiche_ev_request, *const u8, usize, c_int, *mut c_void) -> usize;
/// A request is over: `(request, outcome, code, user)`.
pub type RequestClosedFn = unsafe extern "C" fn(*mut quiche_ev_request, c_int, u64, *mut c_void);
/// A connection's handshake completed: `(conn, user)`.
pub type ConnFn = unsafe extern "C" fn(*mut quiche_ev_conn, *mut c_void);
/// A connection is gone: `(conn, stats, user)`.
pub type ConnClosedFn = unsafe extern "C" fn(*mut quiche_ev_conn, *const quiche_ev_stats, *mut c_void);

/// HTTP/3 error codes we use (RFC 9114 §8.1).
pub const H3_NO_ERROR: u64 = 0x100;
pub const H3_INTERNAL_ERROR: u64 = 0x102;
pub const H3_REQUEST_REJECTED: u64 = 0x10b;
pub const H3_REQUEST_CANCELLED: u64 = 0x10c;

/// Longest hq-interop request line we buffer before refusing the stream.
const MAX_HQ_REQUEST: usize = 8192;

/// The host's callbacks (any may be unset) and user data. Without a
/// request callback, requests go to the built-in responder.
#[derive(Clone)]
pub struct Handlers {
    pub user: *mut c_void,
    pub on_request: Option<RequestFn>,
    pub on_body: Option<BodyFn>,
    pub on_writable: Option<WritableFn>,
    pub on_request_closed: Option<RequestClosedFn>,
    pub on_conn_established: Option<ConnFn>,
    pub on_conn_closed: Option<ConnClosedFn>,
    pub builtin: Builtin,
}

/// Which protocol every connection of the server speaks.
pub enum Protocol {
    Hq,
    /// The `quiche_h3_config` is borrowed from C for the server's life.
    H3(*mut h3::Config),
}

/// Server-wide application state.
pub struct Shared {
    pub protocol: Protocol,
    pub handlers: Rc<Handlers>,
    events: VecDeque<Event>,
}

impl Shared {
    pub fn new(protocol: Protocol) -> Shared {
        Shared {
            protocol,
            handlers: Rc::new(Handlers {
                user: std::ptr::null_mut(), on_request: None, on_body: None, on_writable: None,
                on_request_closed: None, on_conn_established: None, on_conn_closed: None,
                builtin: Builtin::Byez,
            }),
            events: VecDeque::new(),
        }
    }

    /// Changes the handlers (connections made later, and requests made
    /// later, see the change).
    pub fn handlers_mut(&mut self) -> &mut Handlers {
        Rc::make_mut(&mut self.handlers)
    }
}

/// What the host hears, delivered with nothing borrowed.
pub enum Event {
    ConnEstablished(ConnRef, Rc<Handlers>),
    ConnClosed(ConnRef, ConnStats, CloseInfo, Rc<Handlers>),
    Request(NonNull<Request>),
    Body(NonNull<Request>),
    Writable(NonNull<Request>),
    /// Owns the request: it is freed once delivered (or dropped).
    Closed(Owned, Outcome, u64),
}

/// A request box whose owner is an event: freed when dropped.
pub struct Owned(NonNull<Request>);

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: the box was leaked into the connection's map and moved
        // out of it into this owner; nothing else frees it.
        unsafe { drop(Box::from_raw(self.0.as_ptr())) };
    }
}

impl Drop for ConnApp {
    /// A connection freed with requests still open (its server was freed
    /// first): free them, telling no one.
    fn drop(&mut self) {
        for (_, r) in self.requests.drain() {
            drop(Owned(r));
        }
    }
}

enum Proto {
    /// Request lines being read, by stream.
    Hq(HashMap<u64, Vec<u8>>),
    /// Made once the transport is established (or in early data).
    /// Boxed: it is large, and idle connections should not pay for it.
    H3(Option<Box<h3::Connection>>),
}

/// One connection's application state.
pub struct ConnApp {
    proto: Proto,
    requests: HashMap<u64, NonNull<Request>>,
    pub user: *mut c_void,
    /// Highest request stream seen (for GOAWAY).
    last_stream: Option<u64>,
    goaway_sent: bool,
    /// Streams of complete responses whose data quiche still holds (sent
    /// but not all acknowledged): a draining server must not close on them.
    finishing: Vec<u64>,
    /// A driven body waits for the disk.
    disk_wait: bool,
}

/// Why a request operation was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum OpError {
    /// Not now: responded already, no headers yet, not HTTP/3...
    State,
    /// The request (or its connection) is over.
    Closed,
    /// quiche refused it.
    Transport(String),
    /// No room now; the writable callback says when to try again.
    Again,
}

/// Sends on `stream` with the connection's protocol; the error says
/// whether the peer stopped the stream (its code) or something else.
enum SendError {
    Stopped(u64),
    Other(String),
}

fn h3_send_error(e: h3::Error) -> SendError {
    match e {
        h3::Error::TransportError(quiche::Error::StreamStopped(c)) => SendError::Stopped(c),
        h3::Error::TransportError(quiche::Error::StreamReset(c)) => SendError::Stopped(c),
        e => SendError::Other(format!("{e:?}")),
    }
}

fn quic_send_error(e: quiche::Error) -> SendError {
    match e {
        quiche::Error::StreamStopped(c) | quiche::Error::StreamReset(c) => SendError::Stopped(c),
        e => SendError::Other(format!("{e:?}")),
    }
}

impl Proto {
    /// Body bytes on `stream`: bytes taken (0 when there is no room).
    fn send_body(&mut self, conn: &mut quiche::Connection, stream: u64, data: &[u8], fin: bool)
                 -> Result<usize, SendError> {
        match self {
            Proto::H3(Some(h3)) => match h3.send_body(conn, stream, data, fin) {
                Ok(n) => Ok(n),
                Err(h3::Error::Done) | Err(h3::Error::StreamBlocked) => Ok(0),
                Err(e) => Err(h3_send_error(e)),
            },
            Proto::H3(None) => Err(SendError::Other("HTTP/3 not set up".into())),
            Proto::Hq(_) => match conn.stream_send(stream, data, fin) {
                Ok(n) => Ok(n),
                Err(quiche::Error::Done) => Ok(0),
                Err(e) => Err(quic_send_error(e)),
            },
        }
    }

    /// Response headers (HTTP/3); Ok(false) when they do not fit yet.
    fn send_headers(&mut self, conn: &mut quiche::Connection, stream: u64, headers: &[h3::Header], fin: bool,
                    trailers: bool) -> Result<bool, SendError> {
        let Proto::H3(Some(h3)) = self else { return Ok(true) };
        let r = if trailers {
            h3.send_additional_headers(conn, stream, headers, true, fin)
        } else {
            h3.send_response(conn, stream, headers, fin)
        };
        match r {
            Ok(()) => Ok(true),
            Err(h3::Error::StreamBlocked) | Err(h3::Error::Done) => Ok(false),
            Err(e) => Err(h3_send_error(e)),
        }
    }

    /// Reads request body bytes: (bytes, FIN reached).
    fn recv_body(&mut self, conn: &mut quiche::Connection, stream: u64, buf: &mut [u8])
                 -> Result<(usize, bool), SendError> {
        match self {
            Proto::H3(Some(h3)) => match h3.recv_body(conn, stream, buf) {
                Ok(n) => Ok((n, false)),
                Err(h3::Error::Done) => Ok((0, false)),
                Err(e) => Err(h3_send_error(e)),
            },
            Proto::H3(None) => Ok((0, false)),
            Proto::Hq(_) => match conn.stream_recv(stream, buf) {
                Ok(v) => Ok(v),
                Err(quiche::Error::Done) => Ok((0, false)),
                Err(e) => Err(quic_send_error(e)),
            },
        }
    }
}

fn log_headers(list: &[h3::Header]) {
    if crate::log::enabled(crate::log::Level::Info) {
        for h in list {
            log_info!("got HTTP header: {}={}", String::from_utf8_lossy(h.name()), String::from_utf8_lossy(h.value()));
        }
    }
}

/// The path of an HTTP/0.9 request line (`GET /path\r\n`), tolerating the
/// trailing NUL upstream's client sends.
pub fn hq_request_path(req: &[u8]) -> Option<&[u8]> {
    let line = req.split(|&b| b == b'\n' || b == b'\r' || b == 0).next().unwrap_or(b"");
    let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
    match (words.next(), words.next()) {
        (Some(b"GET"), Some(path)) => Some(path),
        _ => None,
    }
}

impl ConnApp {
    fn request(&self, stream: u64) -> Option<*mut Request> {
        self.requests.get(&stream).map(|r| r.as_ptr())
    }

    fn new_request(&mut self, shared: &mut Shared, me: ConnRef, stream: u64, headers: Vec<h3::Header>,
                   body_done: bool) {
        let mut r = Request::new(me as *const ServerConn<Real>, stream, headers, shared.handlers.clone());
        r.body_done = body_done;
        r.body_fin_seen = body_done;
        // No body: the body callback still hears its end (fin, 0 bytes).
        r.fin_call = body_done;
        let ptr = NonNull::from(Box::leak(Box::new(r)));
        self.requests.insert(stream, ptr);
        self.last_stream = Some(self.last_stream.map_or(stream, |s| s.max(stream)));
        shared.events.push_back(Event::Request(ptr));
        if body_done {
            Self::body_ready(shared, ptr);
        }
    }

    /// The request on `stream` is over: no more operations; the host
    /// hears it; the box is freed after that.
    fn finish(&mut self, shared: &mut Shared, stream: u64, outcome: Outcome, code: u64) {
        if let Some(r) = self.requests.remove(&stream) {
            // SAFETY: requests in the map are live.
            unsafe { (*r.as_ptr()).closed = true };
            if outcome == Outcome::Complete {
                self.finishing.push(stream);
            }
            shared.events.push_back(Event::Closed(Owned(r), outcome, code));
        }
    }

    fn reject(conn: &mut quiche::Connection, stream: u64, code: u64) {
        let _ = conn.stream_shutdown(stream, quiche::Shutdown::Read, code);
        let _ = conn.stream_shutdown(stream, quiche::Shutdown::Write, code);
    }

    /// Wants to read a body chunk for `r`: queue a Body event unless one
    /// is queued or the host paused it.
    fn body_ready(shared: &mut Shared, r: NonNull<Request>) {
        // SAFETY: r is live (in the map).
        let req = unsafe { &mut *r.as_ptr() };
        if !req.body_queued && !req.paused && !req.closed {
            req.body_queued = true;
            shared.events.push_back(Event::Body(r));
        }
    }

    fn poll_h3(&mut self, conn: &mut quiche::Connection, shared: &mut Shared, me: ConnRef) {
        if let Proto::H3(h3) = &mut self.proto {
            if h3.is_none() {
                let Protocol::H3(config) = shared.protocol else { return };
                // SAFETY: the config outlives the server (C API contract).
                match h3::Connection::with_transport(conn, unsafe { &*config }) {
                    Ok(h) => *h3 = Some(Box::new(h)),
                    Err(e) => {
                        log_warn!("failed to create HTTP/3 connection: {e:?}");
                        let _ = conn.close(true, H3_INTERNAL_ERROR, b"h3 setup failed");
                        return;
                    }
                }
            }
        }
        loop {
            let Proto::H3(Some(h3)) = &mut self.proto else { return };
            match h3.poll(conn) {
                Ok((s, h3::Event::Headers { list, more_frames })) => {
                    if self.requests.contains_key(&s) {
                        continue; // trailers of a request body: nothing to do
                    }
                    log_headers(&list);
                    if self.goaway_sent {
                        Self::reject(conn, s, H3_REQUEST_REJECTED);
                        continue;
                    }
                    self.new_request(shared, me, s, list, !more_frames);
                }
                Ok((s, h3::Event::Data)) => {
                    if let Some(r) = self.requests.get(&s).copied() {
                        Self::body_ready(shared, r);
                    }
                }
                Ok((s, h3::Event::Finished)) => {
                    if let Some(r) = self.requests.get(&s).copied() {
                        // SAFETY: r is live.
                        unsafe { (*r.as_ptr()).body_fin_seen = true };
                        Self::body_ready(shared, r);
                    }
                }
                Ok((s, h3::Event::Reset(code))) => self.finish(shared, s, Outcome::Reset, code),
                Ok((_, h3::Event::GoAway)) | Ok((_, h3::Event::PriorityUpdate)) => {}
                Err(h3::Error::Done) => return,
                Err(e) => {
                    log_warn!("HTTP/3 processing failed: {e:?}");
                    // quiche closed it already for protocol errors; make sure.
                    let _ = conn.close(true, 0x101, b"");
                    return;
                }
            }
        }
    }

    fn read_hq(&mut self, conn: &mut quiche::Connection, shared: &mut Shared, me: ConnRef) {
        let mut buf = [0u8; 2048];
        for s in conn.readable() {
            if let Some(r) = self.requests.get(&s).copied() {
                // hq-interop requests have no body: read and drop any.
                while let Ok((_, fin)) = conn.stream_recv(s, &mut buf) {
                    if fin {
                        break;
                    }
                }
                let _ = r;
                continue;
            }
            let Proto::Hq(lines) = &mut self.proto else { return };
            loop {
                match conn.stream_recv(s, &mut buf) {
                    Ok((n, fin)) => {
                        let line = lines.entry(s).or_default();
                        line.extend_from_slice(&buf[..n]);
                        if line.len() > MAX_HQ_REQUEST {
                            log_info!("request on stream {s} too long, refused");
                            lines.remove(&s);
                            Self::reject(conn, s, H3_REQUEST_REJECTED);
                            break;
                        }
                        if fin {
                            let line = lines.remove(&s).unwrap_or_default();
                            if self.goaway_sent {
                                Self::reject(conn, s, H3_REQUEST_REJECTED);
                                break;
                            }
                            let path = hq_request_path(&line).unwrap_or(b"/").to_vec();
                            let headers = vec![h3::Header::new(b":method", b"GET"),
                                               h3::Header::new(b":scheme", b"https"),
                                               h3::Header::new(b":path", &path)];
                            self.new_request(shared, me, s, headers, true);
                            break;
                        }
                    }
                    Err(quiche::Error::Done) => break,
                    Err(e) => {
                        log_debug!("failed to read stream {s}: {e:?}");
                        lines.remove(&s);
                        break;
                    }
                }
            }
        }
    }

    /// Continues every response that can move: pending headers, driven
    /// bodies, and writable notices for the host; completes requests.
    fn resume(&mut self, conn: &mut quiche::Connection, shared: &mut Shared) {
        self.disk_wait = false;
        let streams: Vec<u64> = conn.writable().filter(|s| self.requests.contains_key(s)).collect();
        for s in streams {
            // A client that cancels a request stops the stream
            // (STOP_SENDING); quiche then lists it as writable so that we
            // learn of it, even when nothing was written to it yet.
            if let Err(quiche::Error::StreamStopped(code)) = conn.stream_capacity(s) {
                let _ = conn.stream_shutdown(s, quiche::Shutdown::Read, H3_REQUEST_CANCELLED);
                self.finish(shared, s, Outcome::Reset, code);
                continue;
            }
            self.advance(conn, shared, s, true);
        }
    }

    /// One request's response as far as it can go now. `writable`: quiche
    /// lists the stream as writable, so a host that wrote less than it
    /// offered hears that it may go on. Never after the host's own write:
    /// the stream has no room then, and a writable callback that writes
    /// nothing would queue the next one forever.
    fn advance(&mut self, conn: &mut quiche::Connection, shared: &mut Shared, s: u64, writable: bool) {
        let Some(rp) = self.request(s) else { return };
        // SAFETY: requests in the map are live; no other borrow of this
        // one exists during a hook.
        let r = unsafe { &mut *rp };
        if let Response::Pending(headers, fin) = &r.response {
            let fin = *fin;
            match self.proto.send_headers(conn, s, headers, fin, false) {
                Ok(true) => r.response = if fin { Response::Done } else { Response::Sending },
                Ok(false) => return,
                Err(e) => return self.failed(conn, shared, s, e),
            }
        }
        if let Some(body) = r.driven.as_mut() {
            let proto = &mut self.proto;
            let mut stopped = None;
            let progress = body.write(|data, fin| match proto.send_body(conn, s, data, fin) {
                Ok(n) => Sent::Took(n),
                Err(e) => {
                    stopped = Some(e);
                    Sent::Failed
                }
            });
            match progress {
                Progress::Done => {
                    r.driven = None;
                    r.response = Response::Done;
                }
                Progress::Blocked => {}
                Progress::Waiting => self.disk_wait = true,
                Progress::Failed(why) => {
                    r.driven = None;
                    return match stopped {
                        Some(e) => self.failed(conn, shared, s, e),
                        None => {
                            // A file that cannot be read must not end like a
                            // complete response.
                            log_warn!("{why} (stream {s}): reset");
                            Self::reject(conn, s, H3_INTERNAL_ERROR);
                            self.finish(shared, s, Outcome::Cancelled, H3_INTERNAL_ERROR);
                        }
                    };
                }
            }
        } else if writable && r.want_writable && matches!(r.response, Response::Sending) && !r.writable_queued {
            r.want_writable = false;
            r.writable_queued = true;
            shared.events.push_back(Event::Writable(NonNull::from(&mut *r)));
        }
        self.complete_if_done(conn, shared, s);
    }

    fn complete_if_done(&mut self, conn: &mut quiche::Connection, shared: &mut Shared, s: u64) {
        let Some(rp) = self.request(s) else { return };
        // SAFETY: as in advance.
        let r = unsafe { &mut *rp };
        if !matches!(r.response, Response::Done) || r.driven.is_some() {
            return;
        }
        if !r.body_done {
            // Answered before the body was read: stop the upload.
            let _ = conn.stream_shutdown(s, quiche::Shutdown::Read, H3_NO_ERROR);
            r.body_done = true;
        }
        self.finish(shared, s, Outcome::Complete, 0);
    }

    fn failed(&mut self, conn: &mut quiche::Connection, shared: &mut Shared, s: u64, e: SendError) {
        match e {
            SendError::Stopped(code) => self.finish(shared, s, Outcome::Reset, code),
            SendError::Other(why) => {
                log_debug!("failed to send on stream {s}: {why}");
                Self::reject(conn, s, H3_INTERNAL_ERROR);
                self.finish(shared, s, Outcome::Cancelled, H3_INTERNAL_ERROR);
            }
        }
    }
}

impl ServerApp<Real> for ConnApp {
    type Shared = Shared;
    type Event = Event;

    fn new_conn(shared: &mut Shared) -> Self {
        let proto = match shared.protocol {
            Protocol::Hq => Proto::Hq(HashMap::new()),
            Protocol::H3(_) => Proto::H3(None),
        };
        ConnApp { proto, requests: HashMap::new(), user: std::ptr::null_mut(), last_stream: None,
                  goaway_sent: false, finishing: Vec::new(), disk_wait: false }
    }

    fn on_established(&mut self, _conn: &mut quiche::Connection, shared: &mut Shared, me: ConnRef) {
        if shared.handlers.on_conn_established.is_some() {
            shared.events.push_back(Event::ConnEstablished(me, shared.handlers.clone()));
        }
    }

    fn on_input(&mut self, conn: &mut quiche::Connection, shared: &mut Shared, me: ConnRef) {
        match self.proto {
            Proto::H3(_) => self.poll_h3(conn, shared, me),
            Proto::Hq(_) => self.read_hq(conn, shared, me),
        }
        self.resume(conn, shared);
    }

    fn is_busy(&mut self, conn: &mut quiche::Connection) -> bool {
        // quiche forgets a stream once all of it was sent, acknowledged
        // and read: then its capacity is an error.
        self.finishing.retain(|&s| conn.stream_capacity(s).is_ok());
        !self.requests.is_empty() || !self.finishing.is_empty()
    }

    fn wants_retry(&self) -> bool {
        self.disk_wait
    }

    fn on_shutdown(&mut self, conn: &mut quiche::Connection, last: bool) {
        // RFC 9114 §5.2's two steps: a GOAWAY with the largest ID says
        // "shutting down" while requests already sent are still served;
        // the second names the first request that will not be.
        let Proto::H3(Some(h3)) = &mut self.proto else { return };
        let id = if last { self.last_stream.map_or(0, |s| s + 4) } else { (1 << 62) - 4 };
        if let Err(e) = h3.send_goaway(conn, id) {
            log_debug!("failed to send GOAWAY: {e:?}");
        }
        // hq-interop has no GOAWAY: its clients cannot know, so nothing
        // is refused there; the drain time bounds them.
        self.goaway_sent = last;
    }

    fn close_code(&self) -> (bool, u64) {
        match self.proto {
            Proto::H3(_) => (true, H3_NO_ERROR),
            Proto::Hq(_) => (true, 0),
        }
    }

    fn on_closed(&mut self, shared: &mut Shared, stats: &ConnStats, info: &CloseInfo, me: ConnRef) {
        let streams: Vec<u64> = self.requests.keys().copied().collect();
        for s in streams {
            self.finish(shared, s, Outcome::ConnClosed, 0);
        }
        if shared.handlers.on_conn_closed.is_some() {
            shared.events.push_back(Event::ConnClosed(me, *stats, info.clone(), shared.handlers.clone()));
        }
    }

    fn next_event(shared: &mut Shared) -> Option<Event> {
        shared.events.pop_front()
    }

    unsafe fn deliver(ev: Event) {
        match ev {
            Event::ConnEstablished(conn, h) => {
                if let Some(cb) = h.on_conn_established {
                    cb(conn as *mut quiche_ev_conn, h.user);
                }
            }
            Event::ConnClosed(conn, stats, info, h) => {
                if let Some(cb) = h.on_conn_closed {
                    let c = quiche_ev_stats::new(&stats, &info);
                    cb(conn as *mut quiche_ev_conn, &c, h.user);
                }
            }
            Event::Request(r) => {
                let req = &mut *r.as_ptr();
                if req.closed {
                    return;
                }
                req.announced = true;
                let h = req.handlers.clone();
                match h.on_request {
                    Some(cb) => cb(r.as_ptr() as *mut quiche_ev_request, h.user),
                    None => h.builtin.respond(r.as_ptr()),
                }
            }
            Event::Body(r) => deliver_body(r),
            Event::Writable(r) => {
                let req = &mut *r.as_ptr();
                req.writable_queued = false;
                if req.closed {
                    return;
                }
                let (cb, user) = (req.on_writable.or(req.handlers.on_writable), req.handlers.user);
                if let Some(cb) = cb {
                    cb(r.as_ptr() as *mut quiche_ev_request, user);
                }
            }
            Event::Closed(owned, outcome, code) => {
                let r = owned.0.as_ptr();
                let h = (*r).handlers.clone();
                // A request the host never saw ends silently.
                if let (Some(cb), true) = (h.on_request_closed, (*r).announced) {
                    cb(r as *mut quiche_ev_request, outcome as c_int, code, h.user);
                }
                drop(owned);
            }
        }
    }
}

/// Reads the request body as it arrives and hands it to the host, chunk
/// by chunk, until quiche has no more, the body ended, or the host took
/// less than it was given (then it is paused until resumed).
unsafe fn deliver_body(r: NonNull<Request>) {
    let mut buf = vec![0u8; BODY_CHUNK];
    loop {
        let req = &mut *r.as_ptr();
        req.body_queued = false;
        if req.closed || req.paused {
            return;
        }
        if req.body_done {
            // A request without a body: just its end.
            if std::mem::take(&mut req.fin_call) {
                let h = req.handlers.clone();
                if let Some(cb) = h.on_body {
                    cb(r.as_ptr() as *mut quiche_ev_request, buf.as_ptr(), 0, 1, h.user);
                }
            }
            return;
        }
        // What to hand over: held bytes first, else a fresh read (the FIN
        // comes with an empty chunk after the last bytes).
        let (n, fin) = match req.held.take(&mut buf) {
            Some(chunk) => chunk,
            None => match read_body(r, &mut buf) {
                Ok((n, fin)) => (n, fin),
                Err(()) => return,
            },
        };
        if n == 0 && !fin {
            return; // wait for more
        }
        let h = req.handlers.clone();
        let took = match h.on_body {
            Some(cb) => cb(r.as_ptr() as *mut quiche_ev_request, buf.as_ptr(), n, fin as c_int, h.user).min(n),
            None => n, // nobody wants it: consumed
        };
        let req = &mut *r.as_ptr();
        if req.closed {
            return;
        }
        if took < n {
            req.held.put_back(&buf[took..n], fin);
            req.paused = true;
            return;
        }
        if fin {
            req.body_done = true;
            let conn = req.conn;
            request_changed(conn, req.stream);
            return;
        }
    }
}

/// One read from quiche for `r`: (bytes, FIN reached).
unsafe fn read_body(r: NonNull<Request>, buf: &mut [u8]) -> Result<(usize, bool), ()> {
    let req = &mut *r.as_ptr();
    let e = req.conn;
    let conn = ServerConn::conn(e);
    let app = ServerConn::app(e);
    let got = app.proto.recv_body(conn, req.stream, buf);
    // Reading freed flow-control credit: flush it.
    Server::conn_changed(e);
    match got {
        // h3: quiche reports the FIN (Finished) once every byte was read.
        Ok((n, fin)) => Ok((n, fin || (n == 0 && req.body_fin_seen))),
        Err(e) => {
            if let SendError::Stopped(code) = e {
                let stream = req.stream;
                let shared = Server::app_shared(ServerConn::server(req.conn));
                ServerConn::app(req.conn).finish(shared, stream, Outcome::Reset, code);
            }
            Err(())
        }
    }
}

/// After a host operation on a request: try to move its response, and
/// let the server flush the connection.
unsafe fn request_changed(e: *const ServerConn<Real>, stream: u64) {
    let conn = ServerConn::conn(e);
    let app = ServerConn::app(e);
    let shared = Server::app_shared(ServerConn::server(e));
    app.advance(conn, shared, stream, false);
    Server::conn_changed(e);
}

/// The live request behind `r`. A request whose response went out whole
/// has ended (`State`, as before it is over); one that was reset or lost
/// its connection is `Closed`.
unsafe fn live<'a>(r: *mut Request) -> Result<&'a mut Request, OpError> {
    let req = &mut *r;
    if req.closed {
        return Err(if matches!(req.response, Response::Done) { OpError::State } else { OpError::Closed });
    }
    Ok(req)
}

/// `quiche_ev_respond`: the status and headers (`:status` and, unless the
/// host gave its own, `server: quiche-ev` are added), then the body
/// through [`write`] unless `fin`.
///
/// # Safety
/// `r` is a request handle still valid (before its closed callback
/// returned); no borrow of its server is alive.
pub unsafe fn respond(r: *mut Request, status: u16, headers: &[h3::Header], fin: bool) -> Result<(), OpError> {
    let req = live(r)?;
    if !matches!(req.response, Response::NotStarted) || !(100..=999).contains(&status) {
        return Err(OpError::State);
    }
    let e = req.conn;
    let app = ServerConn::app(e);
    if let Proto::Hq(_) = app.proto {
        // hq-interop has no status line: an error status with no body is
        // a stream reset ("no such file"); anything else is just a body.
        if fin && !(200..300).contains(&status) {
            ConnApp::reject(ServerConn::conn(e), req.stream, H3_REQUEST_REJECTED);
            let shared = Server::app_shared(ServerConn::server(e));
            app.finish(shared, req.stream, Outcome::Cancelled, H3_REQUEST_REJECTED);
            Server::conn_changed(e);
            return Ok(());
        }
        req.response = if fin { Response::Done } else { Response::Sending };
        if fin {
            let _ = ServerConn::conn(e).stream_send(req.stream, b"", true);
        }
    } else {
        let mut list = vec![h3::Header::new(b":status", status.to_string().as_bytes())];
        list.extend(headers.iter().cloned());
        req.response = Response::Pending(list, fin);
    }
    request_changed(e, req.stream);
    Ok(())
}

/// `quiche_ev_respond_write`: as much of `data` as flow control takes
/// now (maybe 0); when less than all, the writable callback follows when
/// more fits. `fin` ends the response once all of `data` was taken.
///
/// # Safety
/// As for [`respond`].
pub unsafe fn write(r: *mut Request, data: &[u8], fin: bool) -> Result<usize, OpError> {
    let req = live(r)?;
    match req.response {
        Response::Sending if req.driven.is_none() => {}
        Response::Pending(..) => {
            req.want_writable = true;
            return Ok(0);
        }
        _ => return Err(OpError::State),
    }
    let e = req.conn;
    let conn = ServerConn::conn(e);
    let app = ServerConn::app(e);
    let stream = req.stream;
    let took = match app.proto.send_body(conn, stream, data, fin) {
        Ok(n) => n,
        Err(err) => {
            let shared = Server::app_shared(ServerConn::server(e));
            app.failed(conn, shared, stream, err);
            Server::conn_changed(e);
            return Err(OpError::Closed);
        }
    };
    if took == data.len() && fin {
        req.response = Response::Done;
    } else if took < data.len() {
        req.want_writable = true;
    }
    request_changed(e, stream);
    Ok(took)
}

/// `quiche_ev_respond_bytes` / a built-in file: status, headers and a
/// body the library drives out on its own.
///
/// # Safety
/// As for [`respond`].
pub unsafe fn respond_body(r: *mut Request, status: u16, headers: &[h3::Header], body: Body)
                           -> Result<(), OpError> {
    let empty = body.is_empty();
    {
        let req = live(r)?;
        if !matches!(req.response, Response::NotStarted) {
            return Err(OpError::State);
        }
        if !empty {
            req.driven = Some(body);
        }
    }
    respond(r, status, headers, empty)
}

/// `quiche_ev_respond_trailers`: HTTP/3 trailers, ending the response.
///
/// # Safety
/// As for [`respond`].
pub unsafe fn trailers(r: *mut Request, headers: &[h3::Header]) -> Result<(), OpError> {
    let req = live(r)?;
    if !matches!(req.response, Response::Sending) || req.driven.is_some() {
        return Err(OpError::State);
    }
    let e = req.conn;
    let conn = ServerConn::conn(e);
    let app = ServerConn::app(e);
    if let Proto::Hq(_) = app.proto {
        return Err(OpError::State);
    }
    match app.proto.send_headers(conn, req.stream, headers, true, true) {
        Ok(true) => req.response = Response::Done,
        Ok(false) => {
            // The writable callback says when to try again.
            req.want_writable = true;
            return Err(OpError::Again);
        }
        Err(SendError::Stopped(_)) => return Err(OpError::Closed),
        Err(SendError::Other(why)) => return Err(OpError::Transport(why)),
    }
    request_changed(e, req.stream);
    Ok(())
}

/// `quiche_ev_request_reset`: abandons the request (both directions) with
/// the application error `code`; its closed callback follows.
///
/// # Safety
/// As for [`respond`].
pub unsafe fn reset(r: *mut Request, code: u64) -> Result<(), OpError> {
    let req = live(r)?;
    let e = req.conn;
    ConnApp::reject(ServerConn::conn(e), req.stream, code);
    let shared = Server::app_shared(ServerConn::server(e));
    ServerConn::app(e).finish(shared, req.stream, Outcome::Cancelled, code);
    Server::conn_changed(e);
    Ok(())
}

/// `quiche_ev_request_resume_body`: the host can take request body again.
///
/// # Safety
/// As for [`respond`].
pub unsafe fn resume_body(r: *mut Request) -> Result<(), OpError> {
    let req = live(r)?;
    if req.paused {
        req.paused = false;
        let shared = Server::app_shared(ServerConn::server(req.conn));
        ConnApp::body_ready(shared, NonNull::from(&mut *req));
        Server::conn_changed(req.conn);
    }
    Ok(())
}
