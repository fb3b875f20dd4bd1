//! The client side of upstream's `client.c` / `http3-client.c`: one
//! connection, its `recv_cb`, `timeout_cb` and `flush_egress`, the request
//! on establishment and the response on stdout.
//!
//! Unlike upstream, the client knows whether the response arrived in full,
//! and says why not when it did not (see [`Client::status`]).

use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::fd::RawFd;

use libc::{c_int, c_void};
use libev_sys::*;
use quiche::ConnectionId;

use crate::app::{ClientApp, Outcome};
use crate::batch_io::{prepare_socket, read_batch, IoMode, RecvBatch};
use crate::cid::gen_cid;
use crate::conn_io::{closed_line, flush_egress, Flushed, Pending, SCRATCH_LEN};

pub struct Client {
    timer: ev_timer,
    lp: *mut ev_loop,
    sock: RawFd,
    local: SocketAddr,
    conn: quiche::Connection,
    app: ClientApp,
    output: Box<dyn Write>,
    established: bool,
    finished: bool,
    failure: Option<String>,
    io: IoMode,
    batch: Option<RecvBatch>,
    buf: Vec<u8>,
    out: Vec<u8>,
    pending: Vec<Pending>,
    /// Watches for writability while the socket is full.
    write_watcher: ev_io,
}

impl Client {
    /// Creates the connection (random 16-byte SCID, like upstream); the
    /// first flight is sent as soon as the loop runs.
    ///
    /// # Safety
    /// `lp` must be a live libev loop that outlives the client.
    pub unsafe fn new(lp: *mut ev_loop, sock: RawFd, host: Option<&str>, local: SocketAddr,
               peer: SocketAddr, config: &mut quiche::Config, app: ClientApp)
               -> Result<Box<Client>, String> {
        let scid = gen_cid();
        let conn = quiche::connect(host, &ConnectionId::from_ref(&scid), local, peer, config)
            .map_err(|e| format!("failed to create connection: {e:?}"))?;
        let mut c = Box::new(Client {
            timer: ev_timer::zeroed(),
            lp, sock, local, conn, app,
            output: Box::new(io::stdout()),
            established: false,
            finished: false,
            failure: None,
            io: IoMode::PLAIN,
            batch: None,
            buf: vec![0; 65535],
            out: vec![0; SCRATCH_LEN],
            pending: Vec::new(),
            write_watcher: ev_io::zeroed(),
        });
        // SAFETY: the watchers live in the box, which the C side keeps until
        // quiche_ev_client_free (which stops them).
        unsafe {
            ev_timer_init(&mut c.timer, timeout_cb, 0.0, 0.0);
            ev_io_init(&mut c.write_watcher, write_cb, sock, EV_WRITE);
        }
        c.timer.data = &mut *c as *mut Client as *mut c_void;
        c.write_watcher.data = &mut *c as *mut Client as *mut c_void;
        c.set_io(IoMode::BATCHED);
        // The first flight goes out from the loop (a timer due at once),
        // not from here: by then `main` has set up every watcher, signal
        // handlers included.
        // SAFETY: the timer is initialised above and lives in the box.
        unsafe { ev_timer_start(lp, &mut c.timer) };
        Ok(c)
    }

    pub fn io_mode(&self) -> IoMode {
        self.io
    }

    /// Batched (recvmmsg/GRO, GSO) or plain (recvfrom/sendto) I/O.
    pub fn set_io(&mut self, mode: IoMode) {
        self.io = mode;
        self.batch = prepare_socket(self.sock, mode);
    }

    /// Where response bodies go (stdout by default).
    pub fn set_output(&mut self, w: Box<dyn Write>) {
        self.output = w;
    }

    fn flush(&mut self) {
        // SAFETY: the timer and the watcher are ours and on our loop.
        unsafe {
            if libev_sys::ev_is_active(&self.write_watcher as *const ev_io as *const c_void) != 0 {
                return; // write_cb flushes once the socket has room
            }
            let flushed = flush_egress(self.lp, self.sock, &mut self.conn, &mut self.timer,
                                       &mut self.pending, &mut self.out, self.io);
            if flushed == Flushed::Blocked {
                ev_io_start(self.lp, &mut self.write_watcher);
            }
        }
    }

    fn on_writable(&mut self) {
        // SAFETY: our watcher, our loop.
        unsafe { ev_io_stop(self.lp, &mut self.write_watcher) };
        self.flush();
        if self.conn.is_closed() {
            self.finish();
        }
    }

    /// Reads one batch into quiche; false once the socket is drained.
    fn read_batch(&mut self) -> bool {
        let (sock, local) = (self.sock, self.local);
        let mut batch = self.batch.take();
        let mut buf = std::mem::take(&mut self.buf);
        let conn = &mut self.conn;
        let more = read_batch(sock, batch.as_mut(), &mut buf, |pkt, from| {
            if let Err(e) = conn.recv(pkt, quiche::RecvInfo { from, to: local }) {
                eprintln!("failed to process packet: {e:?}");
            }
        });
        self.batch = batch;
        self.buf = buf;
        more.unwrap_or_else(|e| {
            eprintln!("failed to read: {e}");
            false
        })
    }

    /// `recv_cb`: per read batch, feeds the datagrams to quiche, sends the
    /// request once established, reads responses and flushes (so ACKs and
    /// flow-control credit flow while a large response streams in).
    pub fn recv_cb(&mut self) {
        while !self.finished {
            let more = self.read_batch();
            if self.conn.is_closed() {
                return self.finish();
            }
            if self.conn.is_established() && !self.established {
                self.established = true;
                eprintln!("connection established: {}",
                          String::from_utf8_lossy(self.conn.application_proto()));
                self.app.on_established(&mut self.conn);
            }
            if self.conn.is_established() {
                self.app.on_recv(&mut self.conn, &mut *self.output);
            }
            self.flush();
            if self.conn.is_closed() {
                return self.finish();
            }
            if !more {
                break;
            }
        }
    }

    /// `timeout_cb`.
    fn on_timeout(&mut self) {
        if self.finished {
            return;
        }
        self.conn.on_timeout();
        self.flush();
        if self.conn.is_closed() {
            self.finish();
        }
    }

    /// SIGINT/SIGTERM: close now and report the request as interrupted.
    pub fn interrupt(&mut self) {
        if self.finished {
            return;
        }
        if *self.app.outcome() == Outcome::Pending {
            self.failure = Some("interrupted".into());
        }
        let _ = self.conn.close(true, 0, b"interrupted");
        self.flush();
        self.finish();
    }

    /// The connection is over: closing line, verdict, stop the loop.
    fn finish(&mut self) {
        self.finished = true;
        let _ = self.output.flush();
        eprintln!("{}", closed_line(&self.conn, false));
        if self.failure.is_none() {
            self.failure = match self.app.outcome() {
                Outcome::Complete => None,
                Outcome::Failed(why) => Some(why.clone()),
                Outcome::Pending => Some(self.why_incomplete()),
            };
        }
        if let Some(why) = &self.failure {
            eprintln!("error: {why}");
        }
        // SAFETY: our watchers, our loop.
        unsafe {
            ev_timer_stop(self.lp, &mut self.timer);
            ev_io_stop(self.lp, &mut self.write_watcher);
            ev_break(self.lp, EVBREAK_ONE);
        }
    }

    fn why_incomplete(&self) -> String {
        let peer = self.conn.peer_error().map(|e| {
            format!("closed by the server (error code {:#x}, reason \"{}\")",
                    e.error_code, String::from_utf8_lossy(&e.reason))
        });
        let local = self.conn.local_error().map(|e| {
            format!("closed locally (error code {:#x}, reason \"{}\")",
                    e.error_code, String::from_utf8_lossy(&e.reason))
        });
        let what = if self.established { "no complete response" } else { "no answer from the server" };
        let how = if self.conn.is_timed_out() {
            "idle timeout".to_string()
        } else {
            peer.or(local).unwrap_or_else(|| "connection closed".into())
        };
        format!("{what}: {how}")
    }

    /// 0 when every response arrived in full; 1 otherwise.
    pub fn status(&self) -> c_int {
        match (self.finished, &self.failure, self.app.outcome()) {
            (_, None, Outcome::Complete) => 0,
            _ => 1,
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.output.flush();
        // SAFETY: stop before the box (and the watchers in it) is freed.
        unsafe {
            ev_timer_stop(self.lp, &mut self.timer);
            ev_io_stop(self.lp, &mut self.write_watcher);
        }
    }
}

unsafe extern "C" fn timeout_cb(lp: *mut ev_loop, w: *mut ev_timer, _revents: c_int) {
    crate::ffi::guard::callback(lp, || {
        // SAFETY: `data` is the client owning this timer (set in `new`).
        let client = unsafe { &mut *((*w).data as *mut Client) };
        client.on_timeout();
    });
}

unsafe extern "C" fn write_cb(lp: *mut ev_loop, w: *mut ev_io, _revents: c_int) {
    crate::ffi::guard::callback(lp, || {
        // SAFETY: `data` is the client owning this watcher (set in `new`).
        let client = unsafe { &mut *((*w).data as *mut Client) };
        client.on_writable();
    });
}
