//! The server's application layer: requests read from each connection
//! (through its [`Framing`]), handed to the host — or, when it takes
//! none, to the built-in responders (`byez`, files under a root) through
//! the very same path — and responses written as the host (or a driven
//! body) supplies them, as flow control allows.
//!
//! The transport calls the hooks below with its state borrowed; they only
//! queue events. `deliver` runs each event with nothing borrowed, so a
//! host callback may call any request operation (`ops`), which borrow the
//! connection afresh for the duration of the call.

mod datagrams;
mod deliver;
mod ops;

pub use datagrams::{conn_datagram_max_len, conn_send_datagram, request_datagram_max_len, send_datagram};
pub use ops::{reset, respond, respond_body, respond_bytes, resume_body, trailers, write};

use std::collections::VecDeque;
use std::ptr::NonNull;
use std::rc::Rc;

use libc::c_void;
use quiche::h3::{self, NameValue};
use quiche::Shutdown;

use super::body::{Progress, Sent};
use super::datagram::DgramState;
use super::framing::{reject, AppPlatform, Framing, HttpEvent, Polled, SendError, Streams};
use super::host::ServerHost;
use super::proto::{AnyFraming, Protocol};
use super::request::{Outcome, Request, Response};
use crate::hooks::{ConnRef, HandleRef, ServerApp};
use crate::id_hash::IdMap;
use crate::server::{Server, ServerConn};
use crate::transport::{CloseInfo, ConnStats, Transport};

/// HTTP/3 error codes we use (RFC 9114 §8.1).
pub const H3_NO_ERROR: u64 = 0x100;
pub const H3_INTERNAL_ERROR: u64 = 0x102;
pub const H3_REQUEST_REJECTED: u64 = 0x10b;
pub const H3_REQUEST_CANCELLED: u64 = 0x10c;

/// A server whose connections run this application for host `H`.
pub type Srv<P, H> = Server<P, ConnApp<P, H>>;
/// One of its connections.
pub type SConn<P, H> = ServerConn<P, ConnApp<P, H>>;

/// Server-wide application state.
pub struct Shared<P: AppPlatform, H: ServerHost<P>> {
    pub protocol: Protocol<P>,
    /// The host's callbacks; each request keeps the ones it arrived with.
    pub host: Rc<H>,
    events: VecDeque<Event<P, H>>,
}

impl<P: AppPlatform, H: ServerHost<P>> Shared<P, H> {
    pub fn new(protocol: Protocol<P>, host: H) -> Self {
        Shared { protocol, host: Rc::new(host), events: VecDeque::new() }
    }

    /// Changes the host's callbacks (requests that arrive later see the
    /// change).
    pub fn host_mut(&mut self) -> &mut H {
        Rc::make_mut(&mut self.host)
    }
}

/// What the host hears, delivered with nothing borrowed.
pub enum Event<P: AppPlatform, H: ServerHost<P>> {
    ConnEstablished(ConnRef, Rc<H>),
    ConnClosed(ConnRef, ConnStats, CloseInfo, Rc<H>),
    Request(NonNull<Request<P, H>>),
    Body(NonNull<Request<P, H>>),
    Writable(NonNull<Request<P, H>>),
    /// Owns the request: it is freed once delivered (or dropped).
    Closed(Owned<P, H>, Outcome, u64),
    Stopped(bool, Rc<H>),
    /// An HTTP Datagram for a request: the whole datagram, and where its
    /// payload starts (after the Quarter Stream ID).
    RequestDatagram(NonNull<Request<P, H>>, Vec<u8>, usize),
    /// A QUIC datagram for the connection's callback.
    ConnDatagram(ConnRef, Vec<u8>, Rc<H>),
    /// quiche's datagram queue has room again.
    DatagramWritable(ConnRef, Rc<H>),
}

/// A request box whose owner is an event: freed when dropped.
pub struct Owned<P: AppPlatform, H: ServerHost<P>>(NonNull<Request<P, H>>);

impl<P: AppPlatform, H: ServerHost<P>> Drop for Owned<P, H> {
    fn drop(&mut self) {
        // SAFETY: the box was leaked into the connection's map and moved
        // out of it into this owner; nothing else frees it.
        unsafe { drop(Box::from_raw(self.0.as_ptr())) };
    }
}

/// One connection's application state.
pub struct ConnApp<P: AppPlatform, H: ServerHost<P>> {
    framing: AnyFraming<P>,
    opened: bool,
    requests: IdMap<u64, NonNull<Request<P, H>>>,
    /// The host's pointer for this connection.
    pub user: *mut c_void,
    /// Highest request stream seen (for GOAWAY).
    last_stream: Option<u64>,
    goaway_sent: bool,
    /// Streams of complete responses whose data quiche still holds (sent
    /// but not all acknowledged): a draining server must not close on
    /// them. Pruned as it grows.
    finishing: Vec<u64>,
    pruned_len: usize,
    /// A driven body waits for the disk.
    disk_wait: bool,
    /// The host heard the connection come up: it hears it go.
    announced: bool,
    dgrams: DgramState,
}

impl<P: AppPlatform, H: ServerHost<P>> Drop for ConnApp<P, H> {
    /// A connection freed with requests still open (its server was freed
    /// first): free them, telling no one.
    fn drop(&mut self) {
        for (_, r) in self.requests.drain() {
            drop(Owned(r));
        }
    }
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
    /// The peer (or the protocol) does not allow it, and why.
    Unsupported(&'static str),
    /// Larger than the peer takes now; the largest that fits.
    TooLarge(usize),
}

fn log_request_headers(list: &[h3::Header]) {
    if crate::log::enabled(crate::log::Level::Debug) {
        for h in list {
            log_debug!("request header: {}={}", String::from_utf8_lossy(h.name()), String::from_utf8_lossy(h.value()));
        }
    }
}

impl<P: AppPlatform, H: ServerHost<P>> ConnApp<P, H> {
    fn request(&self, stream: u64) -> Option<*mut Request<P, H>> {
        self.requests.get(&stream).map(|r| r.as_ptr())
    }

    fn new_request(&mut self, shared: &mut Shared<P, H>, me: ConnRef, stream: u64, headers: Vec<h3::Header>,
                   body_done: bool) {
        let mut r = Request::new(me, stream, headers, self.framing.is_h3(), shared.host.clone());
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
    fn finish(&mut self, shared: &mut Shared<P, H>, stream: u64, outcome: Outcome, code: u64) {
        if let Some(r) = self.requests.remove(&stream) {
            // SAFETY: requests in the map are live; no other reference to
            // this one is alive during a hook or an operation's own step.
            unsafe { (*r.as_ptr()).closed = true };
            if outcome == Outcome::Complete {
                self.finishing.push(stream);
            }
            shared.events.push_back(Event::Closed(Owned(r), outcome, code));
        }
    }

    /// Wants to read a body chunk for `r`: queue a Body event unless one
    /// is queued or the host paused it.
    fn body_ready(shared: &mut Shared<P, H>, r: NonNull<Request<P, H>>) {
        // SAFETY: r is live (in the map); no other reference to it is alive.
        let req = unsafe { &mut *r.as_ptr() };
        if !req.body_queued && !req.paused && !req.closed {
            req.body_queued = true;
            shared.events.push_back(Event::Body(r));
        }
    }

    /// Everything the framing has to say: new requests, body data,
    /// resets.
    fn poll(&mut self, conn: &mut P::Conn, shared: &mut Shared<P, H>, me: ConnRef) {
        loop {
            match self.framing.poll(conn) {
                Polled::Event(HttpEvent::Headers { stream, list, fin }) => {
                    if let Some(r) = self.requests.get(&stream).copied() {
                        // Trailers of a request body: its end follows.
                        if fin {
                            // SAFETY: r is live.
                            unsafe { (*r.as_ptr()).body_fin_seen = true };
                            Self::body_ready(shared, r);
                        }
                        continue;
                    }
                    log_request_headers(&list);
                    if self.goaway_sent {
                        reject(conn, stream, H3_REQUEST_REJECTED);
                        continue;
                    }
                    self.new_request(shared, me, stream, list, fin);
                }
                Polled::Event(HttpEvent::Data(s)) => {
                    if let Some(r) = self.requests.get(&s).copied() {
                        Self::body_ready(shared, r);
                    }
                }
                Polled::Event(HttpEvent::Finished(s)) => {
                    if let Some(r) = self.requests.get(&s).copied() {
                        // SAFETY: r is live.
                        unsafe { (*r.as_ptr()).body_fin_seen = true };
                        Self::body_ready(shared, r);
                    }
                }
                Polled::Event(HttpEvent::Reset(s, code)) => self.finish(shared, s, Outcome::Reset, code),
                Polled::Event(HttpEvent::GoAway) => {}
                Polled::Done => return,
                Polled::Fatal(why) => {
                    log_warn!("{why}");
                    return;
                }
            }
        }
    }

    /// Continues every response that can move: pending headers, driven
    /// bodies, and writable notices for the host; completes requests.
    fn resume(&mut self, conn: &mut P::Conn, shared: &mut Shared<P, H>) {
        self.disk_wait = false;
        let streams: Vec<u64> = conn.writable_streams().into_iter().filter(|s| self.requests.contains_key(s)).collect();
        for s in streams {
            // A client that cancels a request stops the stream
            // (STOP_SENDING); quiche then lists it as writable so that we
            // learn of it, even when nothing was written to it yet.
            if let Err(quiche::Error::StreamStopped(code)) = conn.stream_capacity(s) {
                let _ = conn.stream_shutdown(s, Shutdown::Read, H3_REQUEST_CANCELLED);
                self.finish(shared, s, Outcome::Reset, code);
                continue;
            }
            self.advance(conn, shared, s, true);
        }
    }

    /// One request's response as far as it can go now. `writable`: the
    /// stream is listed as writable, so a host that wrote less than it
    /// offered hears that it may go on. Never after the host's own write:
    /// the stream has no room then, and a writable callback that writes
    /// nothing would queue the next one forever.
    fn advance(&mut self, conn: &mut P::Conn, shared: &mut Shared<P, H>, s: u64, writable: bool) {
        let Some(rp) = self.request(s) else { return };
        // SAFETY: requests in the map are live; no other reference to this
        // one is alive during a hook or an operation's own step.
        let r = unsafe { &mut *rp };
        if let Response::Pending(headers, fin) = &r.response {
            let fin = *fin;
            match self.framing.send_headers(conn, s, headers, fin, false) {
                Ok(true) => r.response = if fin { Response::Done } else { Response::Sending },
                Ok(false) => return,
                Err(e) => return self.failed(conn, shared, s, e),
            }
        }
        if let Some(body) = r.driven.as_mut() {
            let framing = &mut self.framing;
            let mut stopped = None;
            let progress = body.write(|data, fin| match framing.send_body(conn, s, data, fin) {
                Ok(Some(n)) => Sent::Took(n),
                Ok(None) => Sent::Full,
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
                            reject(conn, s, H3_INTERNAL_ERROR);
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

    fn complete_if_done(&mut self, conn: &mut P::Conn, shared: &mut Shared<P, H>, s: u64) {
        let Some(rp) = self.request(s) else { return };
        // SAFETY: as in advance.
        let r = unsafe { &mut *rp };
        if !matches!(r.response, Response::Done) || r.driven.is_some() {
            return;
        }
        if !r.body_done {
            // Answered before the body was read: stop the upload.
            let _ = conn.stream_shutdown(s, Shutdown::Read, H3_NO_ERROR);
            r.body_done = true;
        }
        self.finish(shared, s, Outcome::Complete, 0);
    }

    fn failed(&mut self, conn: &mut P::Conn, shared: &mut Shared<P, H>, s: u64, e: SendError) {
        match e {
            SendError::Stopped(code) => self.finish(shared, s, Outcome::Reset, code),
            SendError::Other(why) => {
                log_debug!("failed to send on stream {s}: {why}");
                reject(conn, s, H3_INTERNAL_ERROR);
                self.finish(shared, s, Outcome::Cancelled, H3_INTERNAL_ERROR);
            }
        }
    }

    /// Takes what quiche received of datagrams: HTTP Datagrams go to the
    /// request they name, the rest to the connection's callback. Not
    /// before the handshake completed (0-RTT ones wait in quiche's queue):
    /// the host hears a connection come up before anything on it.
    fn read_datagrams(&mut self, conn: &mut P::Conn, shared: &mut Shared<P, H>, me: ConnRef) {
        if !conn.is_established() {
            return;
        }
        let h3 = self.framing.is_h3();
        let requests = &self.requests;
        let writable = self.dgrams.take_all(conn, h3, |d, http| {
            match http {
                Some((stream, offset)) => match requests.get(&stream) {
                    Some(&r) => shared.events.push_back(Event::RequestDatagram(r, d, offset)),
                    None => return Some(d),
                },
                None => shared.events.push_back(Event::ConnDatagram(me, d, shared.host.clone())),
            }
            None
        });
        if writable {
            shared.events.push_back(Event::DatagramWritable(me, shared.host.clone()));
        }
    }

    /// Received datagrams the host never heard of, given quiche's count.
    pub fn dgram_dropped(&self, quiche_recv: u64) -> u64 {
        self.dgrams.dropped_total(quiche_recv)
    }

    /// Forgets complete streams quiche no longer holds (it forgets a
    /// stream once all of it was sent, acknowledged and read: then its
    /// capacity is an error). Amortised: only when the list doubled.
    fn prune_finishing(&mut self, conn: &mut P::Conn, always: bool) {
        if always || self.finishing.len() >= 2 * self.pruned_len + 16 {
            self.finishing.retain(|&s| conn.stream_capacity(s).is_ok());
            self.pruned_len = self.finishing.len();
        }
    }
}

#[cfg(test)]
impl<P: AppPlatform, H: ServerHost<P>> ConnApp<P, H> {
    /// Requests open, and complete streams remembered (what a long-lived
    /// connection must not accumulate).
    pub fn kept(&self) -> (usize, usize) {
        (self.requests.len(), self.finishing.len())
    }
}

impl<P: AppPlatform, H: ServerHost<P>> ServerApp<P> for ConnApp<P, H> {
    type Shared = Shared<P, H>;
    type Event = Event<P, H>;

    fn new_conn(shared: &mut Shared<P, H>) -> Self {
        ConnApp { framing: shared.protocol.framing(true), opened: false, requests: IdMap::default(),
                  user: std::ptr::null_mut(), last_stream: None, goaway_sent: false, finishing: Vec::new(),
                  pruned_len: 0, disk_wait: false, announced: false, dgrams: DgramState::default() }
    }

    fn on_established(&mut self, _conn: &mut P::Conn, shared: &mut Shared<P, H>, me: ConnRef) {
        if shared.host.hears_conns() {
            self.announced = true;
            shared.events.push_back(Event::ConnEstablished(me, shared.host.clone()));
        }
    }

    fn on_input(&mut self, conn: &mut P::Conn, shared: &mut Shared<P, H>, me: ConnRef) {
        if !self.opened {
            if let Err(why) = self.framing.open(conn) {
                log_warn!("{why}");
                return;
            }
            self.opened = true;
        }
        self.poll(conn, shared, me);
        self.read_datagrams(conn, shared, me);
        self.resume(conn, shared);
        self.prune_finishing(conn, false);
    }

    fn is_busy(&mut self, conn: &mut P::Conn) -> bool {
        self.prune_finishing(conn, true);
        !self.requests.is_empty() || !self.finishing.is_empty()
    }

    fn wants_retry(&self) -> bool {
        self.disk_wait
    }

    fn on_shutdown(&mut self, conn: &mut P::Conn, last: bool) {
        // RFC 9114 §5.2's two steps: a GOAWAY with the largest ID says
        // "shutting down" while requests already sent are still served;
        // the second names the first request that will not be. hq-interop
        // has no GOAWAY: its clients cannot know, so nothing is refused
        // there; the drain time bounds them.
        if !self.framing.is_h3() || !self.opened {
            return;
        }
        let id = if last { self.last_stream.map_or(0, |s| s + 4) } else { (1 << 62) - 4 };
        self.framing.send_goaway(conn, id);
        self.goaway_sent = last;
    }

    fn close_code(&self) -> (bool, u64) {
        if self.framing.is_h3() { (true, H3_NO_ERROR) } else { (true, 0) }
    }

    fn on_closed(&mut self, shared: &mut Shared<P, H>, stats: &ConnStats, info: &CloseInfo, me: ConnRef) {
        let streams: Vec<u64> = self.requests.keys().copied().collect();
        for s in streams {
            self.finish(shared, s, Outcome::ConnClosed, 0);
        }
        if self.announced {
            shared.events.push_back(Event::ConnClosed(me, *stats, info.clone(), shared.host.clone()));
        }
    }

    fn on_stopped(shared: &mut Shared<P, H>, failed: bool) {
        shared.events.push_back(Event::Stopped(failed, shared.host.clone()));
    }

    fn next_event(shared: &mut Shared<P, H>) -> Option<Event<P, H>> {
        shared.events.pop_front()
    }

    unsafe fn deliver(ev: Event<P, H>, server: HandleRef) {
        deliver::deliver(ev, server)
    }
}
