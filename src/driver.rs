//! The connection driver: one QUIC connection and everything that keeps it
//! moving on a libev loop — its timer, its held-back egress, whether it is
//! waiting for the socket, whether it received packets since its last
//! flush — and `flush_egress` / `timeout_cb` / close over them. Server and
//! client each hold one driver per connection; they differ only in how
//! datagrams find a driver.
//!
//! # Ownership
//!
//! A driver lives inside a handle that was `Box::into_raw`'d before any
//! pointer to it was handed to libev, and it never moves. libev writes the
//! timer, so the timer sits in an `UnsafeCell` and is only reached through
//! raw pointers derived from the handle's raw root ([`Driver::timer`]).
//! The rest is reached through [`Driver::state`], an exclusive borrow that
//! never outlives one callback and never covers the timer.

use std::cell::UnsafeCell;
use std::net::SocketAddr;
use std::ptr::addr_of;
use std::time::Instant;

use libc::c_void;
use libev_sys::{ev_timer, ev_timer_cb};

use crate::dgram::DatagramIo;
use crate::egress::{Egress, Flushed};
use crate::evloop::EvLoop;
use crate::platform::Platform;
use crate::transport::{CloseInfo, Transport};

/// Spare connection IDs offered to a peer, at most (the peer's
/// `active_connection_id_limit` usually allows fewer).
pub const MAX_SPARE_SCIDS: usize = 4;

pub struct Driver<P: Platform> {
    timer: UnsafeCell<ev_timer>,
    state: UnsafeCell<DriverState<P>>,
}

pub struct DriverState<P: Platform> {
    pub conn: P::Conn,
    egress: Egress,
    /// Waiting for the socket to become writable.
    pub blocked: bool,
    /// Received packets since the last flush (on the handle's touched list).
    pub touched: bool,
    /// Packets arrived that want an ACK now, even while pacing.
    acks_due: bool,
    /// A datagram closed the connection with no CONNECTION_CLOSE: quiche
    /// recognised the peer's Stateless Reset.
    stateless_reset: bool,
    /// The peer's current address, and the ones it left (NAT rebinding,
    /// migration): what is still addressed to those goes to it instead.
    peer: Option<SocketAddr>,
    left: Vec<SocketAddr>,
}

/// Old peer addresses remembered per connection.
const MAX_LEFT_ADDRESSES: usize = 4;

impl<P: Platform> Driver<P> {
    pub fn new(conn: P::Conn) -> Driver<P> {
        Driver {
            timer: UnsafeCell::new(ev_timer::zeroed()),
            state: UnsafeCell::new(DriverState { conn, egress: Egress::default(), blocked: false,
                                                 touched: false, acks_due: false, stateless_reset: false,
                                                 peer: None, left: Vec::new() }),
        }
    }

    /// The timer, as libev sees it.
    ///
    /// # Safety
    /// `this` points to a live driver (derived from its handle's raw root).
    pub unsafe fn timer(this: *const Self) -> *mut ev_timer {
        UnsafeCell::raw_get(addr_of!((*this).timer))
    }

    /// The driver's state.
    ///
    /// # Safety
    /// `this` points to a live driver and no other reference to its state
    /// exists while the returned one is used (one callback at most).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn state<'a>(this: *const Self) -> &'a mut DriverState<P> {
        &mut *UnsafeCell::raw_get(addr_of!((*this).state))
    }

    /// Sets the timer's callback and the pointer it will receive.
    ///
    /// # Safety
    /// `this` is live and stays put until [`Driver::stop`].
    pub unsafe fn init_timer(this: *const Self, lp: &P::Loop, cb: ev_timer_cb, data: *mut c_void) {
        lp.timer_init(Self::timer(this), cb, data);
    }

    /// Stops the timer (before the driver is freed).
    ///
    /// # Safety
    /// As for [`Driver::timer`].
    pub unsafe fn stop(this: *const Self, lp: &P::Loop) {
        lp.timer_stop(Self::timer(this));
    }

    /// `flush_egress`: sends what is held, then everything quiche has, and
    /// re-arms the timer for quiche's next timeout or the next paced batch.
    /// A blocked driver sends nothing (the handle's write watcher calls
    /// again) but its timer is still armed, so a due timeout is handled
    /// rather than spun on.
    ///
    /// # Safety
    /// As for [`Driver::state`]; `st` is that state.
    pub unsafe fn flush_egress(this: *const Self, st: &mut DriverState<P>, lp: &P::Loop, io: &mut P::Io,
                               scratch: &mut [u8], gso: bool) -> Flushed {
        st.touched = false;
        let result = if st.blocked {
            Flushed::Blocked
        } else {
            let (peer, left) = (st.peer, &st.left);
            let mut send = |d: &[u8], seg: usize, from: SocketAddr, to: SocketAddr| {
                // Packets quiche built for an address the peer has left
                // (sent before it noticed) go where the peer is now.
                let to = match peer {
                    Some(p) if left.contains(&to) => p,
                    _ => to,
                };
                io.send(d, seg, from, to)
            };
            let ack_now = std::mem::take(&mut st.acks_due);
            st.egress.flush(&mut send, &mut st.conn, scratch, gso, ack_now, Instant::now())
        };
        st.blocked = result == Flushed::Blocked;
        let mut next = st.conn.timeout();
        if let Flushed::Paced(at) = result {
            let wait = at.saturating_duration_since(Instant::now());
            next = Some(next.map_or(wait, |t| t.min(wait)));
        }
        match next {
            Some(d) => lp.timer_arm(Self::timer(this), d.as_secs_f64()),
            None => lp.timer_stop(Self::timer(this)),
        }
        result
    }
}

impl<P: Platform> DriverState<P> {
    /// Feeds one datagram to the connection; false when quiche refused it.
    pub fn recv(&mut self, pkt: &mut [u8], from: SocketAddr, to: SocketAddr) -> bool {
        self.acks_due = true;
        self.peer.get_or_insert(from);
        let was_closed = self.conn.is_closed();
        let ok = match self.conn.recv(pkt, quiche::RecvInfo { from, to }) {
            Ok(_) => true,
            Err(e) => {
                log_debug!("failed to process packet: {e:?}");
                false
            }
        };
        if !was_closed && self.conn.is_closed() {
            let info = self.conn.close_info();
            self.stateless_reset = info.error.is_none() && !info.timed_out;
        }
        ok
    }

    /// How the connection ended, including what only the driver saw.
    pub fn close_info(&self) -> CloseInfo {
        CloseInfo { stateless_reset: self.stateless_reset, ..self.conn.close_info() }
    }

    /// Whether held egress waits for the socket; cleared by the caller
    /// when the socket is writable again.
    pub fn unblock(&mut self) {
        self.blocked = false;
    }

    /// `timeout_cb`'s part: quiche's timers (loss detection, idle, the
    /// closing period). Paced batches are sent by the flush that follows.
    pub fn on_timeout(&mut self) {
        // quiche does nothing if none of its timers is due (the timer may
        // have fired for a paced batch).
        self.conn.on_timeout();
    }

    /// Reports what happened to the connection's paths (migration, NAT
    /// rebinding): quiche validates and switches paths on its own.
    ///
    /// When the peer moved (its NAT rebound, or it migrated), what quiche
    /// sent to its old address before noticing is lost and stays in flight
    /// on the old path, where quiche (0.30) only ever retransmits the
    /// oldest of it: the transfer stalls. So one more packet is sent on the
    /// old path (a PATH_CHALLENGE) and, like everything else still
    /// addressed there, delivered to the peer's new address: its
    /// acknowledgement lets quiche declare the rest lost and resend it.
    pub fn path_events(&mut self) {
        while let Some(ev) = self.conn.path_event_next() {
            match ev {
                quiche::PathEvent::PeerMigrated(local, peer) => {
                    log_info!("connection migrated to {peer}");
                    if let Some(old) = self.peer.replace(peer).filter(|o| *o != peer) {
                        self.left.retain(|a| *a != peer && *a != old);
                        if self.left.len() == MAX_LEFT_ADDRESSES {
                            self.left.remove(0);
                        }
                        self.left.push(old);
                        if let Err(e) = self.conn.probe_path(local, old) {
                            log_debug!("cannot probe the old path: {e:?}");
                        }
                    }
                }
                quiche::PathEvent::New(_, peer) => log_debug!("new path from {peer}"),
                quiche::PathEvent::Validated(_, peer) => log_debug!("path to {peer} validated"),
                quiche::PathEvent::FailedValidation(_, peer) => log_debug!("path to {peer} failed validation"),
                quiche::PathEvent::Closed(_, peer) => log_debug!("path to {peer} closed"),
                quiche::PathEvent::ReusedSourceConnectionId(..) => log_debug!("peer reused a connection ID"),
                _ => {}
            }
        }
    }

    /// Offers the peer spare connection IDs (up to what it accepts and
    /// [`MAX_SPARE_SCIDS`]) made by `mint`, which returns a new CID and its
    /// stateless-reset token; `map` learns each one issued. Retired ones
    /// are given to `unmap`.
    pub fn manage_scids(&mut self, mut mint: impl FnMut() -> ([u8; crate::LOCAL_CONN_ID_LEN], u128),
                        mut map: impl FnMut(&[u8]), mut unmap: impl FnMut(&[u8])) {
        while let Some(cid) = self.conn.retired_scid_next() {
            unmap(cid.as_ref());
        }
        if !self.conn.is_established() {
            return;
        }
        let mut issued = 0;
        while self.conn.scids_left() > 0 && issued < MAX_SPARE_SCIDS {
            let (cid, token) = mint();
            match self.conn.new_scid(&cid, token) {
                Ok(_) => {
                    map(&cid);
                    issued += 1;
                }
                Err(e) => {
                    log_debug!("cannot issue a connection ID: {e:?}");
                    break;
                }
            }
        }
    }
}
