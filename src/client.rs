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
use crate::cid::gen_cid;
use crate::conn_io::{closed_line, flush_egress};
use crate::socket::recv_from;
use crate::MAX_DATAGRAM_SIZE;

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
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl Client {
    /// Creates the connection (random 16-byte SCID, like upstream) and
    /// sends the first flight.
    pub fn new(lp: *mut ev_loop, sock: RawFd, host: Option<&str>, local: SocketAddr,
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
            buf: vec![0; 65535],
            out: vec![0; MAX_DATAGRAM_SIZE],
        });
        // SAFETY: the timer lives in the box, which the C side keeps until
        // quiche_ev_client_free (which stops it).
        unsafe { ev_timer_init(&mut c.timer, timeout_cb, 0.0, 0.0) };
        c.timer.data = &mut *c as *mut Client as *mut c_void;
        c.flush();
        Ok(c)
    }

    /// Where response bodies go (stdout by default).
    pub fn set_output(&mut self, w: Box<dyn Write>) {
        self.output = w;
    }

    fn flush(&mut self) {
        // SAFETY: the timer is ours and on our loop.
        unsafe { flush_egress(self.lp, self.sock, &mut self.conn, &mut self.timer, &mut self.out) };
    }

    /// `recv_cb`: feeds every queued datagram to quiche, sends the request
    /// once established, reads responses, flushes.
    pub fn recv_cb(&mut self) {
        if self.finished {
            return;
        }
        loop {
            match recv_from(self.sock, &mut self.buf) {
                Ok((len, from)) => {
                    let info = quiche::RecvInfo { from, to: self.local };
                    if let Err(e) = self.conn.recv(&mut self.buf[..len], info) {
                        eprintln!("failed to process packet: {e:?}");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::InvalidData => continue,
                Err(e) => {
                    eprintln!("failed to read: {e}");
                    break;
                }
            }
        }
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
            self.finish();
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
        // SAFETY: our timer, our loop.
        unsafe {
            ev_timer_stop(self.lp, &mut self.timer);
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
        // SAFETY: stop before the box (and the timer in it) is freed.
        unsafe { ev_timer_stop(self.lp, &mut self.timer) };
    }
}

unsafe extern "C" fn timeout_cb(lp: *mut ev_loop, w: *mut ev_timer, _revents: c_int) {
    crate::ffi::guard::callback(lp, || {
        // SAFETY: `data` is the client owning this timer (set in `new`).
        let client = unsafe { &mut *((*w).data as *mut Client) };
        client.on_timeout();
    });
}
