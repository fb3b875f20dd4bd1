//! The client's application layer: requests the host issues at any time
//! (queued until the handshake is done, or sent in 0-RTT when resuming
//! with early data), each response delivered separately — headers, body
//! chunks, completion — to the host's callbacks, or to the built-in
//! output of the example clients (`output`), through the same path.

use std::collections::{HashMap, VecDeque};

use libc::{c_int, c_void};
use quiche::h3::{self, NameValue};

use super::body::{Body, Progress, Sent};
use super::held::{Held, BODY_CHUNK};
use super::output::Output;
use crate::client::Client;
use crate::ffi::types::{quiche_ev_client, quiche_ev_header};
use crate::hooks::ClientApp;
use crate::platform::Real;
use crate::transport::{CloseInfo, ConnStats};

/// A request's number, as the host knows it.
pub type ReqId = i64;

/// Response headers: `(client, id, status, headers, n, request user)`.
pub type HeadersFn = unsafe extern "C" fn(*mut quiche_ev_client, i64, c_int, *const quiche_ev_header, usize, *mut c_void);
/// Response body: `(client, id, data, len, request user)`, returns bytes taken.
pub type BodyFn = unsafe extern "C" fn(*mut quiche_ev_client, i64, *const u8, usize, *mut c_void) -> usize;
/// A request is over: `(client, id, outcome, code, request user)`.
pub type DoneFn = unsafe extern "C" fn(*mut quiche_ev_client, i64, c_int, u64, *mut c_void);
/// Response trailers: `(client, id, headers, n, request user)`.
pub type TrailersFn = unsafe extern "C" fn(*mut quiche_ev_client, i64, *const quiche_ev_header, usize, *mut c_void);

/// How a request ended, as the done callback reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Outcome {
    /// The whole response arrived.
    Complete = 0,
    /// The server reset the stream (the code says why).
    Reset = 1,
    /// The request could not be sent (or was cancelled).
    Failed = 2,
    /// The connection ended first.
    ConnClosed = 3,
}

/// The host's response callbacks; without them, the built-in output.
#[derive(Clone, Default)]
pub struct Handlers {
    pub on_headers: Option<HeadersFn>,
    pub on_body: Option<BodyFn>,
    pub on_done: Option<DoneFn>,
    pub on_trailers: Option<TrailersFn>,
}

/// Application error H3_REQUEST_CANCELLED, for requests the host drops.
const H3_REQUEST_CANCELLED: u64 = 0x10c;

struct Req {
    headers: Vec<h3::Header>,
    path: String,
    body: Option<Body>,
    stream: Option<u64>,
    user: *mut c_void,
    status: i32,
    resp_headers: Vec<h3::Header>,
    headers_seen: bool,
    /// h3: trailer fields (a second HEADERS frame), given to the host
    /// when the response completes.
    trailers: Vec<h3::Header>,
    /// h3: the FIN arrived (all bytes read).
    fin_seen: bool,
    /// Bytes the host did not take yet, and whether the FIN follows them
    /// (hq-interop reads it with the last data).
    held: Held,
    paused: bool,
    body_queued: bool,
    done: bool,
}

enum Proto {
    /// hq-interop: next client-initiated stream (upstream starts at 4).
    Hq { next_stream: u64 },
    H3 { config: *const h3::Config, h3: Option<Box<h3::Connection>>, settings_logged: bool },
}

enum Event {
    Headers(ReqId),
    Body(ReqId),
    Done(ReqId, Outcome, u64),
}

/// The client's requests.
pub struct ClientRequests {
    proto: Proto,
    authority: String,
    queue: VecDeque<ReqId>,
    reqs: HashMap<ReqId, Req>,
    by_stream: HashMap<u64, ReqId>,
    next_id: ReqId,
    events: VecDeque<Event>,
    pub handlers: Handlers,
    /// The example clients' output (used when no body callback is set).
    pub output: Option<Output>,
    /// The client that owns this (set right after it is created).
    pub client: *mut Client<Real>,
}

/// A request from the host: method, path, extra headers, optional body.
pub struct NewRequest {
    pub method: Vec<u8>,
    pub path: Vec<u8>,
    pub headers: Vec<h3::Header>,
    pub body: Option<Vec<u8>>,
    pub user: *mut c_void,
}

impl ClientRequests {
    /// hq-interop (`h3_config` null) or HTTP/3 requests to `authority`.
    pub fn new(h3_config: *const h3::Config, authority: &str) -> ClientRequests {
        let proto = if h3_config.is_null() {
            Proto::Hq { next_stream: 4 }
        } else {
            Proto::H3 { config: h3_config, h3: None, settings_logged: false }
        };
        ClientRequests { proto, authority: authority.to_string(), queue: VecDeque::new(), reqs: HashMap::new(),
                         by_stream: HashMap::new(), next_id: 0, events: VecDeque::new(),
                         handlers: Handlers::default(), output: None, client: std::ptr::null_mut() }
    }

    pub fn is_h3(&self) -> bool {
        matches!(self.proto, Proto::H3 { .. })
    }

    /// Queues a request; it is sent as soon as the connection allows.
    pub fn add(&mut self, r: NewRequest) -> Result<ReqId, &'static str> {
        if !r.path.starts_with(b"/") {
            return Err("the path must start with '/'");
        }
        if matches!(self.proto, Proto::Hq { .. }) && (r.method != b"GET" || r.body.is_some()) {
            return Err("hq-interop can only GET");
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut headers = vec![h3::Header::new(b":method", &r.method), h3::Header::new(b":scheme", b"https"),
                               h3::Header::new(b":authority", self.authority.as_bytes()),
                               h3::Header::new(b":path", &r.path)];
        if !r.headers.iter().any(|h| h.name() == b"user-agent") {
            headers.push(h3::Header::new(b"user-agent", b"quiche"));
        }
        headers.extend(r.headers);
        self.reqs.insert(id, Req {
            headers, path: String::from_utf8_lossy(&r.path).into_owned(),
            body: r.body.map(Body::from_bytes), stream: None, user: r.user, status: 0, resp_headers: Vec::new(),
            headers_seen: false, trailers: Vec::new(), fin_seen: false, held: Held::default(), paused: false, body_queued: false, done: false,
        });
        self.queue.push_back(id);
        Ok(id)
    }

    /// Requests not yet complete.
    pub fn pending(&self) -> usize {
        self.reqs.values().filter(|r| !r.done).count()
    }

    pub fn path_of(&self, id: ReqId) -> Option<&str> {
        self.reqs.get(&id).map(|r| r.path.as_str())
    }

    pub fn status_of(&self, id: ReqId) -> i32 {
        self.reqs.get(&id).map_or(0, |r| r.status)
    }

    fn done(&mut self, id: ReqId, outcome: Outcome, code: u64) {
        if let Some(r) = self.reqs.get_mut(&id) {
            if !r.done {
                r.done = true;
                self.events.push_back(Event::Done(id, outcome, code));
            }
        }
    }

    fn body_ready(&mut self, id: ReqId) {
        if let Some(r) = self.reqs.get_mut(&id) {
            if !r.body_queued && !r.paused && !r.done {
                r.body_queued = true;
                self.events.push_back(Event::Body(id));
            }
        }
    }

    /// Sends what is queued, as far as stream credit allows.
    fn send_queued(&mut self, conn: &mut quiche::Connection) {
        let h3 = self.is_h3();
        while let Some(&id) = self.queue.front() {
            let Some(r) = self.reqs.get_mut(&id) else {
                self.queue.pop_front();
                continue;
            };
            if r.done {
                self.queue.pop_front();
                continue;
            }
            let sent = match &mut self.proto {
                Proto::Hq { next_stream } => {
                    if conn.peer_streams_left_bidi() == 0 {
                        return;
                    }
                    let s = *next_stream;
                    let line = format!("GET {}\r\n", r.path);
                    match conn.stream_send(s, line.as_bytes(), true) {
                        Ok(_) => {
                            *next_stream += 4;
                            Ok(s)
                        }
                        Err(quiche::Error::Done) | Err(quiche::Error::StreamLimit) => return,
                        Err(e) => Err(format!("{e:?}")),
                    }
                }
                Proto::H3 { h3: Some(h3), .. } => {
                    match h3.send_request(conn, &r.headers, r.body.is_none()) {
                        Ok(s) => Ok(s),
                        Err(h3::Error::StreamBlocked) | Err(h3::Error::TransportError(quiche::Error::StreamLimit))
                        | Err(h3::Error::Done) => return,
                        Err(e) => Err(format!("{e:?}")),
                    }
                }
                Proto::H3 { h3: None, .. } => return,
            };
            self.queue.pop_front();
            match sent {
                Ok(s) => {
                    if h3 {
                        log_info!("sent HTTP request {s}");
                    } else {
                        log_info!("sent HTTP request");
                    }
                    r.stream = Some(s);
                    self.by_stream.insert(s, id);
                }
                Err(e) => {
                    log_info!("failed to send HTTP request: {e}");
                    self.done(id, Outcome::Failed, 0);
                }
            }
        }
    }

    /// Continues request bodies that flow control held back.
    fn send_bodies(&mut self, conn: &mut quiche::Connection) {
        let Proto::H3 { h3: Some(h3), .. } = &mut self.proto else { return };
        let writable: Vec<u64> = conn.writable().filter(|s| self.by_stream.contains_key(s)).collect();
        for s in writable {
            let id = self.by_stream[&s];
            let Some(r) = self.reqs.get_mut(&id) else { continue };
            let Some(body) = r.body.as_mut() else { continue };
            let mut failed = None;
            let p = body.write(|d, fin| match h3.send_body(conn, s, d, fin) {
                Ok(n) => Sent::Took(n),
                Err(h3::Error::Done) | Err(h3::Error::StreamBlocked) => Sent::Took(0),
                Err(e) => {
                    failed = Some(e);
                    Sent::Failed
                }
            });
            match p {
                Progress::Done => r.body = None,
                Progress::Blocked | Progress::Waiting => {}
                Progress::Failed(why) => {
                    r.body = None;
                    log_debug!("request body on stream {s} failed: {why} {failed:?}");
                    let _ = conn.stream_shutdown(s, quiche::Shutdown::Write, H3_REQUEST_CANCELLED);
                }
            }
        }
    }

    fn poll_h3(&mut self, conn: &mut quiche::Connection) {
        loop {
            let Proto::H3 { h3: Some(h3), settings_logged, .. } = &mut self.proto else { return };
            let ev = h3.poll(conn);
            if !*settings_logged {
                if let Some(settings) = h3.peer_settings_raw() {
                    for (id, value) in settings {
                        log_info!("got HTTP/3 SETTING: {id}={value}");
                    }
                    *settings_logged = true;
                }
            }
            match ev {
                Ok((s, h3::Event::Headers { list, .. })) => {
                    for h in &list {
                        log_info!("got HTTP header: {}={}", String::from_utf8_lossy(h.name()),
                                  String::from_utf8_lossy(h.value()));
                    }
                    let Some(&id) = self.by_stream.get(&s) else { continue };
                    let Some(r) = self.reqs.get_mut(&id) else { continue };
                    if r.headers_seen {
                        r.trailers = list; // delivered with the completion
                        continue;
                    }
                    r.headers_seen = true;
                    r.status = list.iter().find(|h| h.name() == b":status")
                        .and_then(|h| std::str::from_utf8(h.value()).ok()?.parse().ok()).unwrap_or(0);
                    r.resp_headers = list;
                    self.events.push_back(Event::Headers(id));
                }
                Ok((s, h3::Event::Data)) => {
                    if let Some(&id) = self.by_stream.get(&s) {
                        self.body_ready(id);
                    }
                }
                Ok((s, h3::Event::Finished)) => {
                    if let Some(&id) = self.by_stream.get(&s) {
                        if let Some(r) = self.reqs.get_mut(&id) {
                            r.fin_seen = true;
                        }
                        self.body_ready(id);
                    }
                }
                Ok((s, h3::Event::Reset(code))) => {
                    if let Some(&id) = self.by_stream.get(&s) {
                        log_info!("request was reset");
                        self.done(id, Outcome::Reset, code);
                    }
                }
                Ok((_, h3::Event::GoAway)) => log_info!("got GOAWAY"),
                Ok(_) => {}
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

    fn read_hq(&mut self, conn: &mut quiche::Connection) {
        for s in conn.readable() {
            match self.by_stream.get(&s) {
                Some(&id) => self.body_ready(id),
                None => {
                    let mut buf = [0u8; 1024];
                    while let Ok((_, fin)) = conn.stream_recv(s, &mut buf) {
                        if fin {
                            break;
                        }
                    }
                }
            }
        }
    }

    /// One read of response body for `id`: (bytes, FIN).
    fn read_body(&mut self, conn: &mut quiche::Connection, id: ReqId, buf: &mut [u8]) -> Result<(usize, bool), u64> {
        let Some(r) = self.reqs.get(&id) else { return Ok((0, false)) };
        let Some(s) = r.stream else { return Ok((0, false)) };
        match &mut self.proto {
            Proto::H3 { h3: Some(h3), .. } => match h3.recv_body(conn, s, buf) {
                Ok(n) => Ok((n, false)),
                Err(h3::Error::Done) => Ok((0, r.fin_seen)),
                Err(h3::Error::TransportError(quiche::Error::StreamReset(c))) => Err(c),
                Err(_) => Ok((0, false)),
            },
            Proto::H3 { h3: None, .. } => Ok((0, false)),
            Proto::Hq { .. } => match conn.stream_recv(s, buf) {
                Ok(v) => Ok(v),
                Err(quiche::Error::StreamReset(c)) => Err(c),
                Err(_) => Ok((0, false)),
            },
        }
    }

    /// The connection ended: what it received of each open response
    /// (a host that paused it had not taken it yet; a server that saw it
    /// all acknowledged may have closed) moves out of quiche into the
    /// request, whose held FIN marks the ones that arrived whole.
    fn salvage(&mut self, conn: &mut quiche::Connection) {
        let mut buf = vec![0u8; BODY_CHUNK];
        loop {
            if self.is_h3() {
                self.poll_h3(conn); // frames not parsed yet, FINs (Finished)
            }
            let mut read_any = false;
            let open: Vec<ReqId> = self.reqs.iter()
                .filter(|(_, r)| !r.done && !r.held.complete() && r.stream.is_some())
                .map(|(&id, _)| id).collect();
            for id in open {
                loop {
                    match self.read_body(conn, id, &mut buf) {
                        Ok((n, fin)) => {
                            let Some(r) = self.reqs.get_mut(&id) else { break };
                            r.held.append(&buf[..n], fin);
                            read_any |= n > 0;
                            if fin || n == 0 {
                                break;
                            }
                        }
                        Err(code) => {
                            self.done(id, Outcome::Reset, code);
                            break;
                        }
                    }
                }
            }
            if !read_any {
                break;
            }
        }
    }

    /// Whether the connection should close on its own: every request done
    /// and the built-in output has nothing more to ask for.
    fn nothing_left(&self) -> bool {
        self.queue.is_empty() && self.pending() == 0
            && self.output.as_ref().is_none_or(|o| o.finished())
    }
}

impl ClientApp<Real> for ClientRequests {
    type Event = (*mut Client<Real>, EventBox);

    fn on_established(&mut self, _conn: &mut quiche::Connection) {}

    fn on_input(&mut self, conn: &mut quiche::Connection) {
        if let Proto::H3 { config, h3, .. } = &mut self.proto {
            if h3.is_none() {
                // SAFETY: the config outlives the client (C API contract).
                match h3::Connection::with_transport(conn, unsafe { &**config }) {
                    Ok(h) => *h3 = Some(Box::new(h)),
                    Err(e) => {
                        log_warn!("failed to create HTTP/3 connection: {e:?}");
                        let _ = conn.close(true, 0x102, b"h3 setup failed");
                        return;
                    }
                }
            }
        }
        if let Some(o) = self.output.as_mut() {
            for r in o.next_requests() {
                let _ = self.add(r);
            }
        }
        self.send_queued(conn);
        self.send_bodies(conn);
        match self.proto {
            Proto::H3 { .. } => self.poll_h3(conn),
            Proto::Hq { .. } => self.read_hq(conn),
        }
    }

    fn is_done(&self) -> bool {
        self.nothing_left()
    }

    fn on_closed(&mut self, conn: &mut quiche::Connection, _stats: &ConnStats, _info: &CloseInfo) {
        self.salvage(conn);
        let ids: Vec<ReqId> = self.reqs.keys().copied().collect();
        for id in ids {
            match self.reqs.get(&id) {
                // Every byte and the FIN arrived: still delivered (as the
                // host takes it), then complete.
                Some(r) if r.held.complete() => self.body_ready(id),
                _ => self.done(id, Outcome::ConnClosed, 0),
            }
        }
    }

    fn delivering(&self) -> bool {
        self.pending() > 0
    }

    fn next_event(&mut self) -> Option<Self::Event> {
        self.events.pop_front().map(|e| (self.client, EventBox(e)))
    }

    unsafe fn deliver((client, ev): Self::Event) {
        match ev.0 {
            Event::Headers(id) => deliver_headers(client, id),
            Event::Body(id) => deliver_body(client, id),
            Event::Done(id, outcome, code) => deliver_done(client, id, outcome, code),
        }
    }
}

/// An event, opaque outside this module.
pub struct EventBox(Event);

unsafe fn app<'a>(client: *mut Client<Real>) -> &'a mut ClientRequests {
    &mut Client::state(client).app
}

unsafe fn deliver_headers(client: *mut Client<Real>, id: ReqId) {
    let a = app(client);
    let Some(r) = a.reqs.get(&id) else { return };
    if r.done {
        return;
    }
    // Copies: the host may add requests (moving the map) during the call.
    let (status, headers, user) = (r.status, r.resp_headers.clone(), r.user);
    let cb = a.handlers.on_headers;
    match cb {
        Some(cb) => {
            let list: Vec<quiche_ev_header> = headers.iter().map(quiche_ev_header::of).collect();
            cb(client as *mut quiche_ev_client, id, status, list.as_ptr(), list.len(), user);
        }
        None => {
            if let Some(o) = app(client).output.as_mut() {
                o.on_headers(id, status);
            }
        }
    }
}

unsafe fn deliver_body(client: *mut Client<Real>, id: ReqId) {
    let mut buf = vec![0u8; BODY_CHUNK];
    loop {
        let a = app(client);
        let Some(r) = a.reqs.get_mut(&id) else { return };
        r.body_queued = false;
        if r.done || r.paused {
            return;
        }
        let user = r.user;
        let (n, fin) = if let Some(chunk) = r.held.take(&mut buf) {
            chunk
        } else {
            let conn = Client::conn(client);
            let got = a.read_body(conn, id, &mut buf);
            Client::changed(client); // reading freed flow-control credit
            match got {
                Ok(v) => v,
                Err(code) => {
                    log_info!("request was reset");
                    app(client).done(id, Outcome::Reset, code);
                    return;
                }
            }
        };
        if n == 0 && !fin {
            return;
        }
        let cb = app(client).handlers.on_body;
        let took = if n == 0 {
            0
        } else {
            match cb {
                Some(cb) => cb(client as *mut quiche_ev_client, id, buf.as_ptr(), n, user).min(n),
                None => match app(client).output.as_mut() {
                    Some(o) => o.on_body(client, id, &buf[..n]),
                    None => n,
                },
            }
        };
        let a = app(client);
        let Some(r) = a.reqs.get_mut(&id) else { return };
        if took < n {
            r.held.put_back(&buf[took..n], fin);
            r.paused = true;
            return;
        }
        if fin {
            a.done(id, Outcome::Complete, 0);
            return;
        }
    }
}

unsafe fn deliver_done(client: *mut Client<Real>, id: ReqId, outcome: Outcome, code: u64) {
    let a = app(client);
    let Some(r) = a.reqs.remove(&id) else { return };
    if let Some(s) = r.stream {
        a.by_stream.remove(&s);
    }
    if let (Outcome::Complete, Some(cb)) = (outcome, a.handlers.on_trailers) {
        if !r.trailers.is_empty() {
            let list: Vec<quiche_ev_header> = r.trailers.iter().map(quiche_ev_header::of).collect();
            cb(client as *mut quiche_ev_client, id, list.as_ptr(), list.len(), r.user);
        }
    }
    let a = app(client);
    match a.handlers.on_done {
        Some(cb) => cb(client as *mut quiche_ev_client, id, outcome as c_int, code, r.user),
        None => {
            if let Some(o) = a.output.as_mut() {
                o.on_done(id, &r.path, r.status, outcome, code);
            }
        }
    }
    // Something may be left to send, or the connection may be done.
    Client::changed(client);
}

/// `quiche_ev_client_request`: queues a request; its id, or why not.
///
/// # Safety
/// `client` is live; no borrow of it is alive.
pub unsafe fn request(client: *mut Client<Real>, r: NewRequest) -> Result<ReqId, &'static str> {
    let id = app(client).add(r)?;
    Client::changed(client);
    Ok(id)
}

/// `quiche_ev_client_resume`: the host takes response body again.
///
/// # Safety
/// As for [`request`].
pub unsafe fn resume(client: *mut Client<Real>, id: ReqId) -> bool {
    let a = app(client);
    let Some(r) = a.reqs.get_mut(&id) else { return false };
    if r.paused {
        r.paused = false;
        a.body_ready(id);
        Client::changed(client);
    }
    true
}

/// `quiche_ev_client_cancel`: resets a request; its done callback follows
/// (outcome Failed).
///
/// # Safety
/// As for [`request`].
pub unsafe fn cancel(client: *mut Client<Real>, id: ReqId) -> bool {
    let a = app(client);
    let Some(r) = a.reqs.get(&id) else { return false };
    if let Some(s) = r.stream {
        let conn = Client::conn(client);
        let _ = conn.stream_shutdown(s, quiche::Shutdown::Read, H3_REQUEST_CANCELLED);
        let _ = conn.stream_shutdown(s, quiche::Shutdown::Write, H3_REQUEST_CANCELLED);
    }
    a.done(id, Outcome::Failed, H3_REQUEST_CANCELLED);
    Client::changed(client);
    true
}

impl quiche_ev_header {
    /// A view of `h` (valid while `h` is).
    pub fn of(h: &h3::Header) -> quiche_ev_header {
        quiche_ev_header { name: h.name().as_ptr(), name_len: h.name().len(), value: h.value().as_ptr(),
                           value_len: h.value().len() }
    }
}
