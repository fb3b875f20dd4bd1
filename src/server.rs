//! The server side of upstream's `server.c` / `http3-server.c`: the
//! connection table, `recv_cb`, `create_conn`, `timeout_cb`, version
//! negotiation and stateless retry.
//!
//! Unlike upstream, after a read batch only the connections that received
//! packets are flushed (upstream walks the whole table), so an idle
//! connection costs nothing per datagram; idle ones are driven by their
//! own timers.

use std::collections::HashMap;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::Duration;

use libc::{c_int, c_void};
use libev_sys::*;
use quiche::{ConnectionId, Type};

use crate::app::{ServerApp, ServerAppConfig};
use crate::batch_io::{prepare_socket, read_batch, IoMode, RecvBatch};
use crate::cid::gen_cid;
use crate::conn_io::{closed_line, flush_egress, Flushed, Pending, SCRATCH_LEN};
use crate::socket::send_to;
use crate::token::{TokenKey, DEFAULT_LIFETIME};
use crate::LOCAL_CONN_ID_LEN;

/// Default bound on live connections.
pub const DEFAULT_MAX_CONNS: usize = 10_000;

/// Read batches per `recv_cb` before egress gets its turn (the socket
/// stays readable, so libev calls again).
const MAX_READS_PER_CALLBACK: usize = 64;

/// Smallest UDP payload that may carry a client's first Initial.
const MIN_INITIAL_DATAGRAM: usize = 1200;

/// Smallest destination CID a client may put in its first Initial
/// (RFC 9000 §7.2).
const MIN_INITIAL_DCID_LEN: usize = 8;

type Cid = [u8; LOCAL_CONN_ID_LEN];

/// One connection (upstream's `struct conn_io`).
pub struct ServerConn {
    timer: ev_timer,
    server: *mut Server,
    cid: Cid,
    conn: quiche::Connection,
    app: ServerApp,
    touched: bool,
    /// Egress the socket did not take yet (or held for pacing).
    pending: Vec<Pending>,
    /// Waiting for the socket to become writable.
    blocked: bool,
}

pub struct Server {
    lp: *mut ev_loop,
    sock: RawFd,
    local: SocketAddr,
    /// Borrowed from C; outlives the server (documented in the C API).
    config: *mut quiche::Config,
    app: ServerAppConfig,
    conns: HashMap<Cid, Box<ServerConn>>,
    tokens: TokenKey,
    max_conns: usize,
    io: IoMode,
    /// recvmmsg buffers (taken out while datagrams are handled).
    batch: Option<RecvBatch>,
    buf: Vec<u8>,
    /// Egress scratch: one GSO batch (also Version Negotiation and Retry).
    out: Vec<u8>,
    touched: Vec<Cid>,
    /// Connections waiting for the socket to become writable, and the
    /// watcher that tells us.
    blocked: Vec<Cid>,
    write_watcher: ev_io,
    /// Set by `shutdown`: no new connections; break the loop once the
    /// table is empty (or when `stop_timer` fires).
    stopping: bool,
    stop_timer: ev_timer,
}

/// Longest a shutting-down server waits for its connections to finish
/// their closing period (quiche sends the CONNECTION_CLOSE, then keeps the
/// connection for 3 PTO; blocked egress also needs the socket to drain)
/// before the loop is broken anyway.
const SHUTDOWN_LINGER_SECS: f64 = 1.0;

impl Server {
    /// # Safety
    /// `config` must stay valid, and not be used elsewhere while the loop
    /// runs, until the server is dropped.
    pub unsafe fn new(lp: *mut ev_loop, sock: RawFd, local: SocketAddr,
                      config: *mut quiche::Config, app: ServerAppConfig) -> Box<Server> {
        let mut server = Box::new(Server {
            lp, sock, local, config, app,
            io: IoMode::PLAIN,
            batch: None,
            blocked: Vec::new(),
            write_watcher: ev_io::zeroed(),
            conns: HashMap::new(),
            tokens: TokenKey::new(DEFAULT_LIFETIME),
            max_conns: DEFAULT_MAX_CONNS,
            buf: vec![0; 65535],
            out: vec![0; SCRATCH_LEN],
            touched: Vec::new(),
            stopping: false,
            stop_timer: ev_timer::zeroed(),
        });
        // SAFETY: the watcher lives in the boxed server and is stopped in
        // Drop; it is started only while a connection is blocked.
        unsafe {
            ev_io_init(&mut server.write_watcher, write_cb, sock, EV_WRITE);
            server.write_watcher.data = &mut *server as *mut Server as *mut c_void;
        }
        server.set_io(IoMode::BATCHED);
        server
    }

    pub fn io_mode(&self) -> IoMode {
        self.io
    }

    /// Batched (recvmmsg/GRO, GSO) or plain (recvfrom/sendto) I/O.
    pub fn set_io(&mut self, mode: IoMode) {
        self.io = mode;
        self.batch = prepare_socket(self.sock, mode);
    }

    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    pub fn set_max_conns(&mut self, n: usize) {
        self.max_conns = n;
    }

    pub fn set_token_lifetime(&mut self, d: Duration) {
        self.tokens.set_lifetime(d);
    }

    pub fn app_config_mut(&mut self) -> &mut ServerAppConfig {
        &mut self.app
    }

    /// `recv_cb`: reads the queued datagrams batch by batch (a bounded
    /// number of batches per call: the socket stays readable, so libev
    /// calls again) and after each batch flushes the connections that got
    /// packets, so ACKs and flow-control credit keep the peers' sending
    /// clock running.
    pub fn recv_cb(&mut self) {
        let sock = self.sock;
        let mut batch = self.batch.take();
        let mut buf = mem::take(&mut self.buf);
        for _ in 0..MAX_READS_PER_CALLBACK {
            let more = read_batch(sock, batch.as_mut(), &mut buf, |pkt, from| self.handle_datagram(pkt, from));
            self.flush_touched();
            match more {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    eprintln!("failed to read: {e}");
                    break;
                }
            }
        }
        self.batch = batch;
        self.buf = buf;
    }

    /// Flushes the connections that received packets since the last call.
    pub fn flush_touched(&mut self) {
        let touched = mem::take(&mut self.touched);
        for cid in &touched {
            self.flush_conn(cid);
        }
        self.touched = touched;
        self.touched.clear();
    }

    /// One datagram from `from`: header parse, table lookup, version
    /// negotiation, retry, token validation, `create_conn`, then quiche.
    /// Public as the entry point of the fuzz harness (tests/fuzz_datagram.rs).
    pub fn handle_datagram(&mut self, pkt: &mut [u8], from: SocketAddr) {
        let len = pkt.len();
        let cid = match quiche::Header::from_slice(pkt, LOCAL_CONN_ID_LEN) {
            Err(e) => {
                eprintln!("failed to parse header: {e:?}");
                return;
            }
            Ok(hdr) => match Cid::try_from(hdr.dcid.as_ref()) {
                Ok(cid) if self.conns.contains_key(&cid) => cid,
                _ => match self.accept(&hdr, len, from) {
                    Some(cid) => cid,
                    None => return,
                },
            },
        };
        let Some(sc) = self.conns.get_mut(&cid) else { return };
        let info = quiche::RecvInfo { from, to: self.local };
        if let Err(e) = sc.conn.recv(pkt, info) {
            eprintln!("failed to process packet: {e:?}");
        } else if sc.conn.is_established() || sc.conn.is_in_early_data() {
            sc.app.on_recv(&mut sc.conn, &self.app);
        }
        if !sc.touched {
            sc.touched = true;
            self.touched.push(cid);
        }
    }

    /// A packet for no known connection: version negotiation, stateless
    /// retry, token validation and finally `create_conn`.
    fn accept(&mut self, hdr: &quiche::Header, len: usize, from: SocketAddr) -> Option<Cid> {
        if self.stopping {
            return None;
        }
        match hdr.ty {
            Type::Short | Type::VersionNegotiation => {
                eprintln!("packet for unknown connection dropped");
                return None;
            }
            _ => {}
        }
        // A client's first datagram is padded to 1200 bytes (RFC 9000
        // §14.1); answering shorter ones (with Version Negotiation or Retry)
        // would make us an amplifier for spoofed sources.
        if len < MIN_INITIAL_DATAGRAM {
            eprintln!("datagram of {len} bytes for unknown connection dropped");
            return None;
        }
        if !quiche::version_is_supported(hdr.version) {
            eprintln!("version negotiation");
            match quiche::negotiate_version(&hdr.scid, &hdr.dcid, &mut self.out) {
                Ok(n) => self.send_stateless(n, &from),
                Err(e) => eprintln!("failed to create vneg packet: {e:?}"),
            }
            return None;
        }
        if hdr.ty != Type::Initial {
            eprintln!("packet for unknown connection dropped");
            return None;
        }
        if hdr.dcid.len() < MIN_INITIAL_DCID_LEN {
            eprintln!("initial with a destination connection ID of {} bytes dropped", hdr.dcid.len());
            return None;
        }
        let token = hdr.token.as_deref().unwrap_or(&[]);
        if token.is_empty() {
            eprintln!("stateless retry");
            let new_cid = gen_cid();
            let token = self.tokens.mint_token(&hdr.dcid, &from, &new_cid);
            match quiche::retry(&hdr.scid, &hdr.dcid, &ConnectionId::from_ref(&new_cid),
                                &token, hdr.version, &mut self.out) {
                Ok(n) => self.send_stateless(n, &from),
                Err(e) => eprintln!("failed to create retry packet: {e:?}"),
            }
            return None;
        }
        let odcid = match self.tokens.validate_token(token, &from, &hdr.dcid) {
            Ok(odcid) => odcid,
            Err(e) => {
                eprintln!("invalid address validation token ({e:?})");
                return None;
            }
        };
        // A valid token binds the DCID we chose in the Retry: 16 bytes.
        let cid = Cid::try_from(hdr.dcid.as_ref()).ok()?;
        if self.conns.len() >= self.max_conns {
            eprintln!("connection limit ({}) reached, new connection refused", self.max_conns);
            return None;
        }
        self.create_conn(cid, &odcid, from)
    }

    fn send_stateless(&self, len: usize, to: &SocketAddr) {
        if let Err(e) = send_to(self.sock, &self.out[..len], to) {
            eprintln!("failed to send: {e}");
        }
    }

    /// `create_conn`: a new connection under our own 16-byte `cid`.
    fn create_conn(&mut self, cid: Cid, odcid: &[u8], from: SocketAddr) -> Option<Cid> {
        // SAFETY: the config outlives the server (see `new`).
        let config = unsafe { &mut *self.config };
        let conn = match quiche::accept(&ConnectionId::from_ref(&cid),
                                        Some(&ConnectionId::from_ref(odcid)),
                                        self.local, from, config) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("failed to create connection: {e:?}");
                return None;
            }
        };
        let mut sc = Box::new(ServerConn {
            timer: ev_timer::zeroed(),
            server: self as *mut Server,
            cid,
            conn,
            app: ServerApp::new(&self.app),
            touched: false,
            pending: Vec::new(),
            blocked: false,
        });
        // SAFETY: the timer lives in the box, which stays put until the
        // connection is removed (and the timer stopped).
        unsafe { ev_timer_init(&mut sc.timer, timeout_cb, 0.0, 0.0) };
        sc.timer.data = &mut *sc as *mut ServerConn as *mut c_void;
        self.conns.insert(cid, sc);
        eprintln!("new connection");
        Some(cid)
    }

    /// `flush_egress` for one connection, and its removal once closed.
    fn flush_conn(&mut self, cid: &Cid) {
        let Some(sc) = self.conns.get_mut(cid) else { return };
        sc.touched = false;
        if sc.blocked {
            return; // write_cb flushes it once the socket has room
        }
        // SAFETY: the timer is in the connection's box, on our loop.
        let flushed = unsafe {
            flush_egress(self.lp, self.sock, &mut sc.conn, &mut sc.timer, &mut sc.pending,
                         &mut self.out, self.io)
        };
        if flushed == Flushed::Blocked {
            sc.blocked = true;
            self.blocked.push(*cid);
            // SAFETY: the watcher lives in the boxed server.
            unsafe { ev_io_start(self.lp, &mut self.write_watcher) };
            return;
        }
        if sc.conn.is_closed() {
            eprintln!("{}", closed_line(&sc.conn, true));
            self.remove(cid);
            if self.stopping && self.conns.is_empty() {
                // SAFETY: lp is the loop we were created for.
                unsafe { ev_break(self.lp, EVBREAK_ALL) };
            }
        }
    }

    fn remove(&mut self, cid: &Cid) {
        if let Some(mut sc) = self.conns.remove(cid) {
            // SAFETY: stop before the box (and the timer in it) is freed.
            unsafe { ev_timer_stop(self.lp, &mut sc.timer) };
            eprintln!("connection freed, {} left", self.conns.len());
        }
    }

    /// The socket has room again: flush the connections that were blocked.
    fn on_writable(&mut self) {
        // SAFETY: the watcher lives in the boxed server.
        unsafe { ev_io_stop(self.lp, &mut self.write_watcher) };
        let blocked = mem::take(&mut self.blocked);
        for cid in &blocked {
            if let Some(sc) = self.conns.get_mut(cid) {
                sc.blocked = false;
                self.flush_conn(cid);
            }
        }
    }

    /// `timeout_cb` for the connection `cid`.
    fn on_timeout(&mut self, cid: Cid) {
        if let Some(sc) = self.conns.get_mut(&cid) {
            sc.conn.on_timeout();
            self.flush_conn(&cid);
        }
    }

    /// SIGINT/SIGTERM: closes every connection with CONNECTION_CLOSE and
    /// sends it, then breaks the loop once all are closed (at most
    /// `SHUTDOWN_LINGER_SECS` later). A second signal breaks at once.
    pub fn shutdown(&mut self) {
        if self.stopping || self.conns.is_empty() {
            // SAFETY: lp is the loop we were created for.
            unsafe { ev_break(self.lp, EVBREAK_ALL) };
            return;
        }
        self.stopping = true;
        let cids: Vec<Cid> = self.conns.keys().copied().collect();
        for cid in &cids {
            if let Some(sc) = self.conns.get_mut(cid) {
                let _ = sc.conn.close(true, 0, b"server shutting down");
            }
            self.flush_conn(cid);
        }
        if !self.conns.is_empty() {
            // SAFETY: the timer lives in the boxed server, stopped in Drop.
            unsafe {
                ev_timer_init(&mut self.stop_timer, stop_cb, SHUTDOWN_LINGER_SECS, 0.0);
                self.stop_timer.data = self as *mut Server as *mut c_void;
                ev_timer_start(self.lp, &mut self.stop_timer);
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let cids: Vec<Cid> = self.conns.keys().copied().collect();
        for cid in &cids {
            self.remove(cid);
        }
        // SAFETY: stopping inactive watchers is a no-op.
        unsafe {
            ev_timer_stop(self.lp, &mut self.stop_timer);
            ev_io_stop(self.lp, &mut self.write_watcher);
        }
    }
}

/// The socket became writable while connections were blocked.
unsafe extern "C" fn write_cb(lp: *mut ev_loop, w: *mut ev_io, _revents: c_int) {
    crate::ffi::guard::callback(lp, || {
        // SAFETY: `data` is the boxed server owning this watcher.
        unsafe { (*((*w).data as *mut Server)).on_writable() };
    });
}

/// The shutdown linger is over: stop the loop; `Drop` frees the rest.
unsafe extern "C" fn stop_cb(lp: *mut ev_loop, _w: *mut ev_timer, _revents: c_int) {
    crate::ffi::guard::callback(lp, || {
        // SAFETY: lp is the loop running us.
        unsafe { ev_break(lp, EVBREAK_ALL) };
    });
}

/// `timeout_cb`: libev calls it when a connection's timer expires.
unsafe extern "C" fn timeout_cb(lp: *mut ev_loop, w: *mut ev_timer, _revents: c_int) {
    crate::ffi::guard::callback(lp, || {
        // SAFETY: `data` was set by create_conn to the connection that owns
        // this timer, which is alive while the timer is active.
        let sc = unsafe { &*((*w).data as *const ServerConn) };
        let (server, cid) = (sc.server, sc.cid);
        // SAFETY: the server owns the connection, so it is alive too.
        unsafe { (*server).on_timeout(cid) };
    });
}
