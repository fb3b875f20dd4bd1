//! A scripted QUIC connection for the transport's lifecycle tests, and
//! applications that only name their events: no streams, no TLS, every
//! datagram accepted.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use quiche::{ConnectionId, PathEvent, RecvInfo, SendInfo};

use super::{FakeIo, FakeLoop};
use crate::hooks::{ClientApp, ConnRef, HandleRef, ServerApp};
use crate::platform::{NewConn, Platform};
use crate::transport::{CloseError, CloseInfo, ConnStats, Transport};

/// A scripted QUIC connection: established after its second datagram,
/// answers every datagram with one packet, closes after `idle_ticks`
/// timeouts (idle timeout) or when closed (after one more timeout: its
/// closing period), offers CIDs like quiche.
pub struct ScriptedConn {
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub received: usize,
    replies: usize,
    /// `send` calls so far.
    pub sends: usize,
    pub idle_ticks: u32,
    closing: bool,
    closed: bool,
    timed_out: bool,
    local_error: Option<CloseError>,
    pub scids: Vec<Vec<u8>>,
    pub retired: VecDeque<Vec<u8>>,
    pub limit: usize,
}

impl ScriptedConn {
    fn new(new: &NewConn) -> ScriptedConn {
        ScriptedConn::replying(new.local, new.peer, new.scid, 0)
    }

    /// A connection with `replies` packets to send (established only after
    /// its second datagram, as any).
    pub fn replying(local: SocketAddr, peer: SocketAddr, scid: &[u8], replies: usize) -> ScriptedConn {
        ScriptedConn { local, peer, received: 0, replies, sends: 0, idle_ticks: 3, closing: false, closed: false,
                       timed_out: false, local_error: None, scids: vec![scid.to_vec()], retired: VecDeque::new(),
                       limit: 2 }
    }
}

impl Transport for ScriptedConn {
    fn recv(&mut self, buf: &mut [u8], info: RecvInfo) -> quiche::Result<usize> {
        if self.closed {
            return Err(quiche::Error::Done);
        }
        self.received += 1;
        self.replies += 1;
        self.peer = info.from;
        Ok(buf.len())
    }
    fn send(&mut self, out: &mut [u8]) -> quiche::Result<(usize, SendInfo)> {
        self.sends += 1;
        if self.replies == 0 || self.closed {
            return Err(quiche::Error::Done);
        }
        self.replies -= 1;
        out[..100].fill(0x42);
        Ok((100, SendInfo { from: self.local, to: self.peer, at: std::time::Instant::now() }))
    }
    fn max_send_udp_payload_size(&self) -> usize {
        1350
    }
    fn send_quantum(&self) -> usize {
        1350
    }
    fn timeout(&self) -> Option<Duration> {
        (!self.closed).then_some(Duration::from_millis(100))
    }
    fn on_timeout(&mut self) {
        if self.closing {
            self.closed = true;
            return;
        }
        if self.idle_ticks == 0 {
            self.closed = true;
            self.timed_out = true;
        } else {
            self.idle_ticks -= 1;
        }
    }
    fn is_established(&self) -> bool {
        self.received >= 2
    }
    fn is_in_early_data(&self) -> bool {
        false
    }
    fn is_closed(&self) -> bool {
        self.closed
    }
    fn close(&mut self, app: bool, err: u64, reason: &[u8]) -> quiche::Result<()> {
        if self.closing {
            return Err(quiche::Error::Done);
        }
        self.closing = true;
        self.replies += 1;
        self.local_error = Some(CloseError { by_peer: false, is_app: app, code: err, reason: reason.to_vec() });
        Ok(())
    }
    fn scids_left(&self) -> usize {
        self.limit.saturating_sub(self.scids.len())
    }
    fn active_scids(&self) -> usize {
        self.scids.len()
    }
    fn new_scid(&mut self, scid: &[u8], _token: u128) -> quiche::Result<u64> {
        self.scids.push(scid.to_vec());
        Ok(self.scids.len() as u64 - 1)
    }
    fn retired_scid_next(&mut self) -> Option<ConnectionId<'static>> {
        let cid = self.retired.pop_front()?;
        self.scids.retain(|c| *c != cid);
        Some(ConnectionId::from_vec(cid))
    }
    fn migrate_source(&mut self, local: SocketAddr) -> quiche::Result<u64> {
        self.local = local;
        Ok(1)
    }
    fn peer_disabled_migration(&self) -> bool {
        false
    }
    fn probe_path(&mut self, _local: SocketAddr, _peer: SocketAddr) -> quiche::Result<u64> {
        Ok(0)
    }
    fn path_event_next(&mut self) -> Option<PathEvent> {
        None
    }
    fn session(&self) -> Option<Vec<u8>> {
        None
    }
    fn set_session(&mut self, _session: &[u8]) -> quiche::Result<()> {
        Ok(())
    }
    fn conn_stats(&self) -> ConnStats {
        ConnStats { recv: self.received as u64, ..Default::default() }
    }
    fn close_info(&self) -> CloseInfo {
        CloseInfo { timed_out: self.timed_out, stateless_reset: false, error: self.local_error.clone() }
    }
    fn close_reason(&self, by_peer: bool) -> Option<&[u8]> {
        self.local_error.as_ref().filter(|e| e.by_peer == by_peer).map(|e| e.reason.as_slice())
    }
    fn peer_addr(&self) -> Option<SocketAddr> {
        Some(self.peer)
    }
    fn application_proto(&self) -> &[u8] {
        b"fake"
    }
}

impl crate::observe::Observed for ScriptedConn {
    fn set_keylog(&mut self, _w: Box<dyn std::io::Write + Send + Sync>) {}
    fn set_qlog(&mut self, _w: Box<dyn std::io::Write + Send + Sync>, _title: String, _description: String) {}
    fn source_id(&self) -> Vec<u8> {
        self.scids[0].clone()
    }
}

/// What a fake application does with each event it delivers (the test's
/// own closure: record it, or call back into the handle).
pub type OnDeliver = std::rc::Rc<std::cell::RefCell<Box<dyn FnMut(&'static str)>>>;

/// A recorder for [`OnDeliver`]: the closure and the list it fills.
pub fn recorder() -> (OnDeliver, std::rc::Rc<std::cell::RefCell<Vec<&'static str>>>) {
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let s = seen.clone();
    (std::rc::Rc::new(std::cell::RefCell::new(Box::new(move |e| s.borrow_mut().push(e)))), seen)
}

/// The server's fake application state: events are names, delivered to
/// the test's closure.
pub struct NullShared {
    pub events: VecDeque<&'static str>,
    pub on_deliver: OnDeliver,
    /// Panic in the next `on_input` (to test the panic boundary).
    pub panic_on_input: bool,
    /// New connections start busy (a draining server waits for them).
    pub busy: bool,
}

impl NullShared {
    pub fn new(on_deliver: OnDeliver) -> NullShared {
        NullShared { events: VecDeque::new(), on_deliver, panic_on_input: false, busy: false }
    }
}

pub struct NullServerApp {
    pub busy: bool,
}

impl ServerApp<ScriptedPlatform> for NullServerApp {
    type Shared = NullShared;
    type Event = (&'static str, OnDeliver);

    fn new_conn(shared: &mut NullShared) -> Self {
        NullServerApp { busy: shared.busy }
    }
    fn on_established(&mut self, _conn: &mut ScriptedConn, shared: &mut NullShared, _me: ConnRef) {
        shared.events.push_back("established");
    }
    fn on_input(&mut self, _conn: &mut ScriptedConn, shared: &mut NullShared, _me: ConnRef) {
        if std::mem::take(&mut shared.panic_on_input) {
            panic!("injected");
        }
    }
    fn is_busy(&mut self, _conn: &mut ScriptedConn) -> bool {
        self.busy
    }
    fn wants_retry(&self) -> bool {
        false
    }
    fn on_shutdown(&mut self, _conn: &mut ScriptedConn, _last: bool) {}
    fn close_code(&self) -> (bool, u64) {
        (true, 0)
    }
    fn on_closed(&mut self, shared: &mut NullShared, _stats: &ConnStats, _info: &CloseInfo, _me: ConnRef) {
        shared.events.push_back("closed");
    }
    fn on_stopped(shared: &mut NullShared, failed: bool) {
        shared.events.push_back(if failed { "stopped: failed" } else { "stopped" });
    }
    fn next_event(shared: &mut NullShared) -> Option<Self::Event> {
        let e = shared.events.pop_front()?;
        Some((e, shared.on_deliver.clone()))
    }
    unsafe fn deliver(ev: Self::Event, _server: HandleRef) {
        (ev.1.borrow_mut())(ev.0);
    }
}

pub struct NullClientApp {
    pub done: bool,
    pub events: VecDeque<&'static str>,
    pub on_deliver: OnDeliver,
}

impl NullClientApp {
    pub fn new(on_deliver: OnDeliver) -> NullClientApp {
        NullClientApp { done: false, events: VecDeque::new(), on_deliver }
    }
}

impl ClientApp<ScriptedPlatform> for NullClientApp {
    type Event = (&'static str, OnDeliver);

    fn on_established(&mut self, _conn: &mut ScriptedConn) {
        self.events.push_back("established");
    }
    fn on_input(&mut self, _conn: &mut ScriptedConn) {}
    fn is_done(&self) -> bool {
        self.done
    }
    fn on_closed(&mut self, _conn: &mut ScriptedConn, _stats: &ConnStats, _info: &CloseInfo) {}
    fn delivering(&self) -> bool {
        false
    }
    fn on_over(&mut self, failed: bool) {
        self.events.push_back(if failed { "closed: failed" } else { "closed" });
    }
    fn next_event(&mut self) -> Option<Self::Event> {
        let e = self.events.pop_front()?;
        Some((e, self.on_deliver.clone()))
    }
    unsafe fn deliver(ev: Self::Event, _client: HandleRef) {
        (ev.1.borrow_mut())(ev.0);
    }
}

/// The lifecycle tests' platform: [`FakeLoop`], [`FakeIo`],
/// [`ScriptedConn`].
pub struct ScriptedPlatform;

impl Platform for ScriptedPlatform {
    type Loop = FakeLoop;
    type Io = FakeIo;
    type Conn = ScriptedConn;
    type Config = ();

    fn accept(_config: &mut (), new: &NewConn) -> quiche::Result<ScriptedConn> {
        Ok(ScriptedConn::new(new))
    }
    fn connect(_config: &mut (), new: &NewConn) -> quiche::Result<ScriptedConn> {
        let mut c = ScriptedConn::new(new);
        c.replies = 1; // the client speaks first
        Ok(c)
    }
}

/// A datagram that parses as a client's first Initial (QUIC v1, an 8-byte
/// DCID, no token), padded to 1200 bytes; the payload is junk, which only
/// a real quiche would notice.
pub fn fake_initial(dcid: &[u8; 8]) -> Vec<u8> {
    let mut p = vec![0xc0, 0, 0, 0, 1, 8];
    p.extend_from_slice(dcid);
    p.push(8);
    p.extend_from_slice(&[7; 8]);
    p.push(0); // token length
    p.extend_from_slice(&[0x44, 0xa0]); // length (varint)
    p.resize(1200, 0);
    p
}

/// A short-header packet for `dcid`, `len` bytes long.
pub fn fake_short(dcid: &[u8], len: usize) -> Vec<u8> {
    let mut p = vec![0x40];
    p.extend_from_slice(dcid);
    p.resize(len, 0x55);
    p
}
