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
use std::io;
use std::net::SocketAddr;
use std::ptr::addr_of;
use std::time::Instant;

use libc::c_void;
use libev_sys::{ev_timer, ev_timer_cb};

use crate::batch_io::is_full;
use crate::dgram::DatagramIo;
use crate::egress::{Egress, Flushed, Scratch};
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
    /// Where the peer is, and where it was.
    peer: PeerAddrs,
}

/// The peer's current address, and the ones it left (NAT rebinding,
/// migration).
#[derive(Default)]
struct PeerAddrs {
    now: Option<SocketAddr>,
    left: Vec<SocketAddr>,
}

/// Old peer addresses remembered per connection.
const MAX_LEFT_ADDRESSES: usize = 4;

impl PeerAddrs {
    /// A datagram came from `from` (the first tells where the peer is).
    fn saw(&mut self, from: SocketAddr) {
        self.now.get_or_insert(from);
    }

    /// The peer moved to `peer`: the address it left, if it had one.
    fn moved(&mut self, peer: SocketAddr) -> Option<SocketAddr> {
        let old = self.now.replace(peer).filter(|o| *o != peer)?;
        self.left.retain(|a| *a != peer && *a != old);
        if self.left.len() == MAX_LEFT_ADDRESSES {
            self.left.remove(0);
        }
        self.left.push(old);
        Some(old)
    }

    /// `path_events` over any connection: reports what happened to its
    /// paths and follows the peer.
    ///
    /// When the peer moved (its NAT rebound, or it migrated), the
    /// previously active path is validated with a PATH_CHALLENGE sent to
    /// the old address (RFC 9000 §9.3.3: a peer that is in fact still
    /// there answers from there and the connection moves back). What we
    /// still held for the old address (paced, or waiting for the socket)
    /// was built for the peer before quiche noticed: it goes to the new
    /// address.
    ///
    /// What quiche sent to the old address before noticing is lost after
    /// a NAT rebinding and stays in flight on the old path: quiche (0.30)
    /// keeps a loss recovery per path, declares a packet lost only once a
    /// later packet of the same path is acknowledged, and on a PTO only
    /// ever retransmits the oldest of it, so the transfer stalls. And the
    /// probe at the old address never arrives there. So what quiche builds
    /// for an address the peer left (the probe, and its retransmissions)
    /// also goes, as a copy, to where the peer is now ([`PeerAddrs::send`]):
    /// the same datagram, so a peer that gets both drops one as a
    /// duplicate, and its acknowledgement of the copy lets quiche declare
    /// the rest lost and resend it.
    fn follow<C: Transport>(&mut self, conn: &mut C, egress: &mut Egress) {
        while let Some(ev) = conn.path_event_next() {
            match ev {
                quiche::PathEvent::PeerMigrated(local, peer) => {
                    log_info!("connection migrated to {peer}");
                    if let Some(old) = self.moved(peer) {
                        egress.redirect(old, peer);
                        if let Err(e) = conn.probe_path(local, old) {
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

    /// Sends what quiche built, to `to` as quiche addressed it; built for
    /// an address the peer left (a probe of the old path), a copy of what
    /// went out also goes to the peer's current address (see
    /// [`PeerAddrs::follow`]).
    fn send<I: DatagramIo>(&self, io: &mut I, d: &[u8], seg: usize, from: SocketAddr, to: SocketAddr)
                           -> io::Result<usize> {
        let sent = io.send(d, seg, from, to);
        if let Some(now) = self.now.filter(|now| *now != to && self.left.contains(&to)) {
            // What the old address did not take stays held (and is copied
            // when it goes); what it refused for good is copied now.
            let went = match &sent {
                Ok(n) => *n,
                Err(e) if is_full(e) => 0,
                Err(_) => d.len(),
            };
            if went > 0 {
                let _ = io.send(&d[..went], seg, from, now);
            }
        }
        sent
    }
}

impl<P: Platform> Driver<P> {
    pub fn new(conn: P::Conn) -> Driver<P> {
        Driver {
            timer: UnsafeCell::new(ev_timer::zeroed()),
            state: UnsafeCell::new(DriverState { conn, egress: Egress::default(), blocked: false,
                                                 touched: false, acks_due: false, stateless_reset: false,
                                                 peer: PeerAddrs::default() }),
        }
    }

    /// The timer, as libev sees it.
    ///
    /// # Safety
    /// `this` points to a live driver (derived from its handle's raw root).
    pub unsafe fn timer(this: *const Self) -> *mut ev_timer {
        UnsafeCell::raw_get(addr_of!((*this).timer))
    }

    /// The connection, as a raw pointer derived from the driver's own
    /// (no reference in between): what the C API hands out as
    /// `quiche_conn *`, which stays usable for as long as the connection
    /// lives although the library borrows the state in between.
    ///
    /// # Safety
    /// `this` points to a live driver.
    pub unsafe fn conn_ptr(this: *const Self) -> *mut P::Conn {
        std::ptr::addr_of_mut!((*UnsafeCell::raw_get(addr_of!((*this).state))).conn)
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
                               scratch: &mut Scratch, gso: bool) -> Flushed {
        st.touched = false;
        let result = if st.blocked {
            Flushed::Blocked
        } else {
            let peer = &st.peer;
            let mut send = |d: &[u8], seg: usize, from: SocketAddr, to: SocketAddr| peer.send(io, d, seg, from, to);
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
        self.peer.saw(from);
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
    /// rebinding) and follows the peer ([`PeerAddrs::follow`]): quiche
    /// validates and switches paths on its own.
    pub fn path_events(&mut self) {
        self.peer.follow(&mut self.conn, &mut self.egress);
    }

    /// Keeps the peer supplied with spare connection IDs (up to what it
    /// accepts and [`MAX_SPARE_SCIDS`] beside the one in use, in all: a
    /// retired one is replaced, no more) made by `mint`, which returns a
    /// new CID and its stateless-reset token (or nothing: no CID left to
    /// give); `map` learns each one issued. Retired ones are given to
    /// `unmap`.
    pub fn manage_scids(&mut self, mut mint: impl FnMut() -> Option<(crate::table::Cid, u128)>,
                        mut map: impl FnMut(&[u8]), mut unmap: impl FnMut(&[u8])) {
        while let Some(cid) = self.conn.retired_scid_next() {
            unmap(cid.as_ref());
        }
        if !self.conn.is_established() {
            return;
        }
        // The one in use is counted too.
        while self.conn.scids_left() > 0 && self.conn.active_scids() <= MAX_SPARE_SCIDS {
            let Some((cid, token)) = mint() else { break };
            match self.conn.new_scid(&cid, token) {
                Ok(_) => {
                    map(&cid);
                }
                Err(e) => {
                    log_debug!("cannot issue a connection ID: {e:?}");
                    break;
                }
            }
        }
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;
    use crate::testing::{handshake, pair, unpaced_now};
    use std::os::fd::RawFd;
    use std::time::Duration;

    /// A socket that records what it sends and takes `budget` packets
    /// before it is full (`None`: no limit).
    #[derive(Default)]
    struct Net {
        sent: Vec<(Vec<u8>, SocketAddr)>,
        budget: Option<usize>,
    }

    impl DatagramIo for Net {
        fn open(_fd: RawFd, _local: SocketAddr) -> Net {
            Net::default()
        }
        fn socket_problem(_fd: RawFd) -> Option<String> {
            None
        }
        fn local_addr(_fd: RawFd) -> io::Result<SocketAddr> {
            Err(io::ErrorKind::Unsupported.into())
        }
        fn fds(&self) -> Vec<RawFd> {
            vec![3]
        }
        fn set_mode(&mut self, _mode: crate::batch_io::IoMode) {}
        fn mode(&self) -> crate::batch_io::IoMode {
            crate::batch_io::IoMode::PLAIN
        }
        fn read_batch(&mut self, _fd: RawFd, _f: crate::dgram::OnDatagram) -> io::Result<bool> {
            Ok(false)
        }
        fn send(&mut self, data: &[u8], segment: usize, _from: SocketAddr, to: SocketAddr) -> io::Result<usize> {
            let mut n = 0;
            for p in data.chunks(segment) {
                match &mut self.budget {
                    Some(0) => break,
                    Some(b) => *b -= 1,
                    None => {}
                }
                self.sent.push((p.to_vec(), to));
                n += p.len();
            }
            if n == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        }
        fn fd_of(&self, _from: SocketAddr) -> RawFd {
            3
        }
        fn add_socket(&mut self, _fd: RawFd, _local: SocketAddr) {}
    }

    fn path_sent(server: &quiche::Connection, peer: SocketAddr) -> usize {
        server.path_stats().find(|p| p.peer_addr == peer).map_or(0, |p| p.sent)
    }

    #[test]
    fn spare_cids_stay_at_most_max_spare_scids_in_all_and_a_retired_one_is_replaced() {
        // The client accepts 8; several calls (one per flush, in real
        // life) must not add up to more than MAX_SPARE_SCIDS spares.
        let (mut client, mut server, a, b) = crate::testing::pair_with(|c, _| {
            c.enable_pacing(false);
            c.set_active_connection_id_limit(8);
        });
        handshake(&mut client, &mut server, a, b);
        let mut drv = DriverState::<crate::platform::Real> {
            conn: server, egress: Egress::default(), blocked: false, touched: false, acks_due: false,
            stateless_reset: false, peer: PeerAddrs::default(),
        };
        let mut next = 10u8;
        let mut mapped: Vec<Vec<u8>> = Vec::new();
        let mut unmapped: Vec<Vec<u8>> = Vec::new();
        let mut manage = |drv: &mut DriverState<crate::platform::Real>, mapped: &mut Vec<Vec<u8>>,
                          unmapped: &mut Vec<Vec<u8>>| {
            drv.manage_scids(|| {
                next += 1;
                Some((crate::table::Cid::from_slice(&[next; 16]).unwrap(), next as u128))
            }, |c| mapped.push(c.to_vec()), |c| unmapped.push(c.to_vec()));
        };
        for _ in 0..3 {
            manage(&mut drv, &mut mapped, &mut unmapped);
        }
        assert_eq!(mapped.len(), MAX_SPARE_SCIDS, "spares issued over three calls");
        assert_eq!(drv.conn.active_scids(), MAX_SPARE_SCIDS + 1);
        // The client retires one (it moved to a spare and let the first
        // go): one new spare replaces it, no more.
        let mut buf = [0u8; 1500];
        while let Ok((n, _)) = drv.conn.send(&mut buf) {
            client.recv(&mut buf[..n], quiche::RecvInfo { from: b, to: a }).unwrap();
        }
        client.retire_dcid(0).unwrap();
        while let Ok((n, _)) = client.send(&mut buf) {
            drv.conn.recv(&mut buf[..n], quiche::RecvInfo { from: a, to: b }).unwrap();
        }
        manage(&mut drv, &mut mapped, &mut unmapped);
        manage(&mut drv, &mut mapped, &mut unmapped);
        assert_eq!(unmapped, vec![vec![2u8; 16]], "the first CID was retired");
        assert_eq!(mapped.len(), MAX_SPARE_SCIDS + 1, "one spare replaced it");
        assert_eq!(drv.conn.active_scids(), MAX_SPARE_SCIDS + 1);
    }

    /// The client's NAT rebinds mid-download, dropping its old mapping:
    /// some packets the server sent before it noticed reach the client,
    /// the others are lost. Once quiche reports the move (after validating
    /// the new path), the PATH_CHALLENGE validating the old path goes to
    /// the old address (RFC 9000 §9.3.3), with a copy to the new one; and
    /// the download completes (the copy's acknowledgement lets quiche
    /// declare lost what went to the old mapping).
    #[test]
    fn after_a_rebinding_the_old_path_is_probed_at_the_old_address() {
        let (mut client, mut server, a, b) = pair();
        handshake(&mut client, &mut server, a, b);
        let moved: SocketAddr = "127.0.0.1:3".parse().unwrap();
        let (mut peer, mut egress, mut net) = (PeerAddrs::default(), Egress::default(), Net::default());
        peer.saw(a);
        let mut scratch = Scratch::default();
        let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (mut off, mut got) = (0, Vec::new());
        let (mut rbuf, mut buf) = (vec![0u8; 1 << 20], [0u8; 1500]);
        // Where the client appears to be (its NAT's mapping).
        let mut nat = a;
        let (mut ack_now, mut lost_to_old) = (false, 0);
        // Set when the server followed the client: the old path's packet
        // count then; and whether the flush after it was checked.
        let (mut probe_from, mut checked) = (None, false);
        let start = Instant::now();
        while got.len() < body.len() {
            assert!(start.elapsed() < Duration::from_secs(20), "the download stalled at {} bytes", got.len());
            let now = Instant::now();
            if server.timeout_instant().is_some_and(|t| t <= now) {
                server.on_timeout();
            }
            if client.timeout_instant().is_some_and(|t| t <= now) {
                client.on_timeout();
            }
            while off < body.len() {
                match server.stream_send(1, &body[off..], true) {
                    Ok(n) if n > 0 => off += n,
                    _ => break,
                }
            }
            egress.flush(&mut |d, seg, from, to| peer.send(&mut net, d, seg, from, to), &mut server, &mut scratch,
                         true, std::mem::take(&mut ack_now), unpaced_now());
            let mut sent = std::mem::take(&mut net.sent);
            if let Some(before) = probe_from.take() {
                // The flush right after the server followed the client.
                let probes = path_sent(&server, a) - before;
                assert!(probes >= 1, "quiche probed the old path");
                let to_old: Vec<&Vec<u8>> = sent.iter().filter(|(_, to)| *to == a).map(|(p, _)| p).collect();
                assert_eq!(to_old.len(), probes, "the old path's probe goes to the old address: {:?}",
                           sent.iter().map(|(p, to)| (p.len(), *to)).collect::<Vec<_>>());
                for p in &to_old {
                    assert!(sent.iter().any(|(q, to)| q == *p && *to == moved), "with a copy to the new one");
                }
                checked = true;
            }
            if nat == a && got.len() > 1_000_000 {
                // The NAT rebinds: the first few reach the client, the rest
                // go to the old mapping.
                assert!(sent.len() > 4 && sent.iter().all(|(_, to)| *to == a));
                for (mut p, _) in sent.drain(..4) {
                    client.recv(&mut p, quiche::RecvInfo { from: b, to: a }).unwrap();
                }
                nat = moved;
            }
            for (mut p, to) in sent {
                if to == nat {
                    client.recv(&mut p, quiche::RecvInfo { from: b, to: a }).unwrap();
                } else {
                    lost_to_old += 1;
                }
            }
            while let Ok((n, _)) = client.stream_recv(1, &mut rbuf) {
                got.extend_from_slice(&rbuf[..n]);
            }
            while let Ok((n, _)) = client.send(&mut buf) {
                peer.saw(nat);
                let _ = server.recv(&mut buf[..n], quiche::RecvInfo { from: nat, to: b });
                ack_now = true;
                let before = path_sent(&server, a);
                let was = peer.now;
                peer.follow(&mut server, &mut egress);
                if was != peer.now {
                    assert_eq!(peer.now, Some(moved));
                    probe_from = Some(before);
                }
            }
            if !ack_now {
                let wake = [server.timeout_instant(), client.timeout_instant()].into_iter().flatten().min();
                if let Some(t) = wake {
                    std::thread::sleep(t.saturating_duration_since(Instant::now()));
                }
            }
        }
        assert!(checked, "the server followed the client");
        assert!(lost_to_old > 0, "packets went to the old mapping");
        assert!(got == body, "the download completed, intact");
    }
}
