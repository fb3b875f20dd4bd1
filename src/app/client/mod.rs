//! The client's application layer: requests the host issues at any time
//! (queued until the handshake is done, or sent in 0-RTT when resuming
//! with early data), their bodies (copied whole, or streamed by the host
//! with backpressure), and each response delivered on its own — headers,
//! body chunks, trailers, completion — to the host, or to the built-in
//! output of the example clients (`output`), through the same path.

mod deliver;
mod ops;

pub use ops::{cancel, datagram_max_len, request, request_datagram_max_len, request_send_datagram, resume,
              send_datagram, trailers, write, ReqError};

use std::collections::{HashMap, VecDeque};

use libc::c_void;
use quiche::h3::{self, NameValue};

use super::body::{Body, Progress, Sent};
use super::datagram::DgramState;
use super::framing::{AppPlatform, Framing, HttpEvent, Polled, SendError, Streams};
use super::held::Held;
use super::host::ClientHost;
use super::output::Output;
use super::proto::{AnyFraming, Protocol};
use crate::client::Client;
use crate::hooks::{ClientApp, HandleRef};
use crate::id_hash::IdMap;
use crate::transport::{CloseInfo, ConnStats, Transport};

pub use super::host::{ReqId, ResponseOutcome as Outcome};

/// Application error H3_REQUEST_CANCELLED, for requests the host drops.
pub const H3_REQUEST_CANCELLED: u64 = 0x10c;

/// A client running this application for host `H`.
pub type Cli<P, H> = Client<P, ClientRequests<P, H>>;

/// A request's body, after its headers.
enum Upload {
    /// None, or all of it is out (with the FIN).
    Sent,
    /// Bytes the library drives out (copied from the host, or
    /// hq-interop's request line).
    Driven(Body),
    /// The host writes it (`quiche_ev_client_request_write`).
    Streamed(Streamed),
}

#[derive(Default)]
struct Streamed {
    /// The host wrote less than it offered: tell it when there is room.
    want_writable: bool,
    writable_queued: bool,
    /// The stream's capacity when the host's write fell short: it took
    /// all that fitted then, so only more room is worth a writable call
    /// (quiche lists a stream as writable with any connection-level room,
    /// even 2 bytes, too few for a DATA frame; a call then would take
    /// nothing, and come again on every loop iteration).
    blocked_at: usize,
    /// The host ended the body but its FIN did not fit yet.
    fin_owed: bool,
}

struct Req {
    headers: Vec<h3::Header>,
    path: String,
    upload: Upload,
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
    /// A body callback for this response is running.
    in_body: bool,
    /// Resumed from inside that callback: its short return keeps going.
    resume_wanted: bool,
    done: bool,
    /// An extended CONNECT (RFC 9220): it waits for the server's SETTINGS,
    /// which must allow it.
    connect: bool,
}

enum Event {
    Established,
    Headers(ReqId),
    Body(ReqId),
    Done(ReqId, Outcome, u64),
    Writable(ReqId),
    Closed(bool),
    /// An HTTP Datagram for a request: the whole datagram, and where its
    /// payload starts.
    RequestDatagram(ReqId, Vec<u8>, usize),
    /// A QUIC datagram for the client's datagram callback.
    Datagram(Vec<u8>),
    /// quiche's datagram queue has room again.
    DatagramWritable,
}

/// The client's requests.
pub struct ClientRequests<P: AppPlatform, H: ClientHost> {
    framing: AnyFraming<P>,
    opened: bool,
    authority: String,
    queue: VecDeque<ReqId>,
    reqs: HashMap<ReqId, Req>,
    by_stream: IdMap<u64, ReqId>,
    next_id: ReqId,
    events: VecDeque<Event>,
    /// The host's callbacks.
    pub host: H,
    /// The example clients' output (used where the host set no callback).
    pub output: Option<Output<P>>,
    dgrams: DgramState,
    /// An extended CONNECT waits for the server's SETTINGS.
    settings_wait: bool,
}

/// A request from the host: method, path, extra headers, and its body
/// (`None`: none; `Some(None)`: streamed by the host; `Some(Some(b))`:
/// these bytes). With `protocol`, an extended CONNECT (RFC 9220) whose
/// `:protocol` it is.
pub struct NewRequest {
    pub method: Vec<u8>,
    pub protocol: Option<Vec<u8>>,
    pub path: Vec<u8>,
    pub headers: Vec<h3::Header>,
    pub body: Option<Option<Vec<u8>>>,
    pub user: *mut c_void,
}

impl<P: AppPlatform, H: ClientHost> ClientRequests<P, H> {
    /// Requests to `authority` in `protocol`, heard by `host`.
    pub fn new(protocol: Protocol<P>, authority: &str, host: H) -> Self {
        ClientRequests { framing: protocol.framing(false), opened: false, authority: authority.to_string(),
                         queue: VecDeque::new(), reqs: HashMap::new(), by_stream: IdMap::default(), next_id: 0,
                         events: VecDeque::new(), host, output: None, dgrams: DgramState::default(),
                         settings_wait: false }
    }

    pub fn is_h3(&self) -> bool {
        self.framing.is_h3()
    }

    /// Queues a request; it is sent as soon as the connection allows.
    pub fn add(&mut self, r: NewRequest) -> Result<ReqId, &'static str> {
        if !r.path.starts_with(b"/") {
            return Err("the path must start with '/'");
        }
        if !self.is_h3() && (r.method != b"GET" || r.body.is_some() || r.protocol.is_some()) {
            return Err("hq-interop can only GET");
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut headers = vec![h3::Header::new(b":method", &r.method)];
        if let Some(p) = &r.protocol {
            headers.push(h3::Header::new(b":protocol", p));
        }
        headers.extend([h3::Header::new(b":scheme", b"https"), h3::Header::new(b":authority", self.authority.as_bytes()),
                        h3::Header::new(b":path", &r.path)]);
        if !r.headers.iter().any(|h| h.name() == b"user-agent") {
            headers.push(h3::Header::new(b"user-agent", b"quiche"));
        }
        headers.extend(r.headers);
        let upload = match r.body {
            None => Upload::Sent,
            Some(None) => Upload::Streamed(Streamed::default()),
            Some(Some(bytes)) => Upload::Driven(Body::from_bytes(bytes)),
        };
        self.reqs.insert(id, Req {
            headers, path: String::from_utf8_lossy(&r.path).into_owned(), upload, stream: None, user: r.user,
            status: 0, resp_headers: Vec::new(), headers_seen: false, trailers: Vec::new(), fin_seen: false,
            held: Held::default(), paused: false, body_queued: false, in_body: false, resume_wanted: false,
            done: false, connect: r.protocol.is_some(),
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

    /// Opens streams for queued requests, as far as the server's stream
    /// limit allows.
    fn send_queued(&mut self, conn: &mut P::Conn) {
        while let Some(&id) = self.queue.front() {
            let Some(r) = self.reqs.get_mut(&id) else {
                self.queue.pop_front();
                continue;
            };
            if r.done {
                self.queue.pop_front();
                continue;
            }
            if r.connect {
                // RFC 9220 §3: only to a server whose SETTINGS allow it.
                match self.framing.peer_settings(conn) {
                    None => {
                        self.settings_wait = true;
                        return;
                    }
                    Some(s) if !s.extended_connect => {
                        self.queue.pop_front();
                        log_info!("the server does not allow extended CONNECT (no SETTINGS_ENABLE_CONNECT_PROTOCOL)");
                        self.done(id, Outcome::Failed, 0);
                        continue;
                    }
                    Some(_) => {}
                }
            }
            let fin = matches!(r.upload, Upload::Sent);
            let opened = match self.framing.send_request(conn, &r.headers, fin) {
                Ok(Some(o)) => o,
                Ok(None) => return,
                Err(e) => {
                    self.queue.pop_front();
                    log_info!("failed to send HTTP request: {e:?}");
                    self.done(id, Outcome::Failed, 0);
                    continue;
                }
            };
            self.queue.pop_front();
            if self.framing.is_h3() {
                log_info!("sent HTTP request {}", opened.stream);
            } else {
                log_info!("sent HTTP request");
            }
            if let Some(line) = opened.prelude {
                r.upload = Upload::Driven(Body::from_bytes(line));
            }
            r.stream = Some(opened.stream);
            self.by_stream.insert(opened.stream, id);
            if let Upload::Streamed(s) = &mut r.upload {
                // The host may write now.
                s.want_writable = true;
                s.blocked_at = 0;
            }
            self.write_upload(conn, opened.stream);
        }
    }

    /// Moves request `stream`'s body along: a driven body as far as flow
    /// control allows, an owed FIN, or a writable notice for the host.
    fn write_upload(&mut self, conn: &mut P::Conn, stream: u64) {
        let Some(&id) = self.by_stream.get(&stream) else { return };
        let Some(r) = self.reqs.get_mut(&id) else { return };
        let framing = &mut self.framing;
        let mut failed = None;
        let mut send = |d: &[u8], fin: bool| match framing.send_body(conn, stream, d, fin) {
            Ok(Some(n)) => Sent::Took(n),
            Ok(None) => Sent::Full,
            Err(e) => {
                failed = Some(e);
                Sent::Failed
            }
        };
        match &mut r.upload {
            Upload::Sent => {}
            Upload::Driven(body) => match body.write(&mut send) {
                Progress::Done => r.upload = Upload::Sent,
                Progress::Blocked | Progress::Waiting => {}
                Progress::Failed(why) => {
                    r.upload = Upload::Sent;
                    log_debug!("request body on stream {stream} failed: {why} {failed:?}");
                    let _ = conn.stream_shutdown(stream, quiche::Shutdown::Write, H3_REQUEST_CANCELLED);
                }
            },
            Upload::Streamed(s) if s.fin_owed => {
                if send(&[], true) == Sent::Took(0) {
                    r.upload = Upload::Sent;
                }
            }
            Upload::Streamed(s) => {
                // (An error, e.g. the server stopped the stream: the
                // host's next write learns it.)
                let more_room = conn.stream_capacity(stream).map_or(true, |c| c > s.blocked_at);
                if s.want_writable && !s.writable_queued && more_room {
                    s.want_writable = false;
                    s.writable_queued = true;
                    self.events.push_back(Event::Writable(id));
                }
            }
        }
    }

    /// Continues request bodies that flow control held back.
    fn send_bodies(&mut self, conn: &mut P::Conn) {
        for s in conn.writable_streams() {
            if self.by_stream.contains_key(&s) {
                self.write_upload(conn, s);
            }
        }
    }

    fn poll(&mut self, conn: &mut P::Conn) {
        loop {
            match self.framing.poll(conn) {
                Polled::Event(HttpEvent::Headers { stream, list, .. }) => {
                    for h in &list {
                        log_info!("got HTTP header: {}={}", String::from_utf8_lossy(h.name()),
                                  String::from_utf8_lossy(h.value()));
                    }
                    let Some(&id) = self.by_stream.get(&stream) else { continue };
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
                Polled::Event(HttpEvent::Data(s)) => match self.by_stream.get(&s) {
                    Some(&id) => self.body_ready(id),
                    None => self.drain(conn, s),
                },
                Polled::Event(HttpEvent::Finished(s)) => {
                    if let Some(&id) = self.by_stream.get(&s) {
                        if let Some(r) = self.reqs.get_mut(&id) {
                            r.fin_seen = true;
                        }
                        self.body_ready(id);
                    }
                }
                Polled::Event(HttpEvent::Reset(s, code)) => {
                    if let Some(&id) = self.by_stream.get(&s) {
                        log_info!("request was reset");
                        self.done(id, Outcome::Reset, code);
                    }
                }
                Polled::Event(HttpEvent::GoAway) => log_info!("got GOAWAY"),
                Polled::Done => return,
                Polled::Fatal(why) => {
                    log_warn!("{why}");
                    return;
                }
            }
        }
    }

    /// Takes what quiche received of datagrams (once established): HTTP
    /// Datagrams go to the request they name, the rest to the client's
    /// datagram callback.
    fn read_datagrams(&mut self, conn: &mut P::Conn) {
        if !conn.is_established() {
            return;
        }
        let h3 = self.is_h3();
        let (by_stream, events) = (&self.by_stream, &mut self.events);
        let writable = self.dgrams.take_all(conn, h3, |d, http| {
            match http {
                Some((stream, offset)) => match by_stream.get(&stream) {
                    Some(&id) => events.push_back(Event::RequestDatagram(id, d, offset)),
                    None => return Some(d),
                },
                None => events.push_back(Event::Datagram(d)),
            }
            None
        });
        if writable {
            self.events.push_back(Event::DatagramWritable);
        }
    }

    /// Received datagrams the host never heard of, given quiche's count.
    pub fn dgram_dropped(&self, quiche_recv: u64) -> u64 {
        self.dgrams.dropped_total(quiche_recv)
    }

    /// Reads and drops what arrives on a stream that is no request of ours.
    fn drain(&mut self, conn: &mut P::Conn, s: u64) {
        let mut buf = [0u8; 1024];
        while let Ok((n, fin)) = self.framing.recv_body(conn, s, &mut buf) {
            if fin || n == 0 {
                break;
            }
        }
    }

    /// One read of response body for `id`: (bytes, FIN); `Err(code)` when
    /// the server reset the stream.
    fn read_body(&mut self, conn: &mut P::Conn, id: ReqId, buf: &mut [u8]) -> Result<(usize, bool), u64> {
        let Some(r) = self.reqs.get(&id) else { return Ok((0, false)) };
        let Some(s) = r.stream else { return Ok((0, false)) };
        let fin_seen = r.fin_seen;
        match self.framing.recv_body(conn, s, buf) {
            Ok((0, false)) => Ok((0, fin_seen)),
            Ok(v) => Ok(v),
            Err(SendError::Stopped(code)) => Err(code),
            Err(SendError::Other(_)) => Ok((0, false)),
        }
    }

    /// The connection ended: what it received of each open response
    /// (a host that paused it had not taken it yet; a server that saw it
    /// all acknowledged may have closed) moves out of quiche into the
    /// request, whose held FIN marks the ones that arrived whole.
    fn salvage(&mut self, conn: &mut P::Conn) {
        super::held::with_body_buf(|buf| loop {
            if self.opened && self.is_h3() {
                self.poll(conn); // frames not parsed yet, FINs (Finished)
            }
            let mut read_any = false;
            let open: Vec<ReqId> = self.reqs.iter()
                .filter(|(_, r)| !r.done && !r.held.complete() && r.stream.is_some())
                .map(|(&id, _)| id).collect();
            for id in open {
                loop {
                    match self.read_body(conn, id, buf) {
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
        })
    }

    /// Whether the connection should close on its own: every request done
    /// and the built-in output has nothing more to ask for.
    fn nothing_left(&self) -> bool {
        self.queue.is_empty() && self.pending() == 0 && self.output.as_ref().is_none_or(|o| o.finished())
    }
}

impl<P: AppPlatform, H: ClientHost> ClientApp<P> for ClientRequests<P, H> {
    type Event = EventBox;

    fn on_established(&mut self, _conn: &mut P::Conn) {
        self.events.push_back(Event::Established);
    }

    fn on_input(&mut self, conn: &mut P::Conn) {
        if !self.opened {
            if let Err(why) = self.framing.open(conn) {
                log_warn!("{why}");
                return;
            }
            self.opened = true;
        }
        if let Some(o) = self.output.as_mut() {
            for path in o.next_requests() {
                let _ = self.add(NewRequest { method: b"GET".to_vec(), protocol: None, path: path.into_bytes(),
                                              headers: Vec::new(), body: None, user: std::ptr::null_mut() });
            }
        }
        self.send_queued(conn);
        self.send_bodies(conn);
        self.poll(conn);
        if std::mem::take(&mut self.settings_wait) {
            // The SETTINGS an extended CONNECT waits for may have come now.
            self.send_queued(conn);
        }
        self.read_datagrams(conn);
    }

    fn is_done(&self) -> bool {
        self.nothing_left()
    }

    fn on_closed(&mut self, conn: &mut P::Conn, _stats: &ConnStats, _info: &CloseInfo) {
        if self.opened {
            self.salvage(conn);
        }
        let mut ids: Vec<ReqId> = self.reqs.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            match self.reqs.get(&id) {
                // Every byte and the FIN arrived: still delivered (as the
                // host takes it), then complete.
                Some(r) if r.held.complete() => self.body_ready(id),
                // Never sent (the connection never came up, or no stream
                // credit was ever given).
                Some(r) if r.stream.is_none() => self.done(id, Outcome::Failed, 0),
                _ => self.done(id, Outcome::ConnClosed, 0),
            }
        }
        self.queue.clear();
    }

    fn delivering(&self) -> bool {
        self.pending() > 0
    }

    fn on_over(&mut self, failed: bool) {
        self.events.push_back(Event::Closed(failed));
    }

    fn next_event(&mut self) -> Option<EventBox> {
        self.events.pop_front().map(EventBox)
    }

    unsafe fn deliver(ev: EventBox, client: HandleRef) {
        deliver::deliver::<P, H>(ev.0, client as *mut Cli<P, H>)
    }
}

/// An event, opaque outside this module.
pub struct EventBox(Event);
