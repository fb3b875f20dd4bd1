//! Where each datagram goes: a short-header packet to its connection by
//! its DCID bytes (one lookup, no header parse), anything else through
//! upstream's decisions (version negotiation, stateless retry, token
//! validation, `create_conn`) and the refusals a peer can see (RFC 9000:
//! INVALID_TOKEN, CONNECTION_REFUSED, Stateless Reset).

use std::cell::{Cell, UnsafeCell};
use std::net::SocketAddr;
use std::ptr::{addr_of, NonNull};
use std::time::Instant;

use libc::c_void;
use quiche::{ConnectionId, Type};

use super::{timeout_cb, ConnFlags, Server, ServerConn, ServerCore, ServerState, Stopping};
use crate::batch_io::{MAX_GSO_BYTES, MAX_SEGMENTS};
use crate::dgram::DatagramIo;
use crate::driver::Driver;
use crate::handle::Handle;
use crate::hooks::ServerApp;
use crate::platform::{NewConn, Platform};
use crate::stateless;
use crate::table::{Cid, ConnId};

/// Smallest UDP payload that may carry a client's first Initial (RFC 9000
/// §14.1); we answer nothing shorter, so we cannot be used to amplify.
const MIN_INITIAL_DATAGRAM: usize = 1200;

/// Smallest destination CID a client may put in its first Initial
/// (RFC 9000 §7.2).
const MIN_INITIAL_DCID_LEN: usize = 8;

/// Stateless packets of one read batch to one peer, sent after the batch
/// in one call: consecutive ones of one size to the same peer join (a GSO
/// batch), so a ClientHello of two datagrams gets its two Retries (or
/// Version Negotiations) in one system call. Each is still a datagram of
/// its own on the wire, so the second stays a spare if the first is lost.
pub(super) struct StatelessOut {
    data: Vec<u8>,
    segment: usize,
    from: SocketAddr,
    to: SocketAddr,
}

impl StatelessOut {
    /// A packet of `len` bytes from `from` to `to` can join this batch.
    fn takes(&self, len: usize, from: SocketAddr, to: SocketAddr) -> bool {
        self.from == from && self.to == to && len == self.segment && len > 0
            && self.data.len() / self.segment < MAX_SEGMENTS && self.data.len() + len <= MAX_GSO_BYTES
    }
}

impl<P: Platform, A: ServerApp<P>> ServerCore<P, A> {
    /// One datagram from `from` to our address `to`: routed to its
    /// connection by DCID, or answered (version negotiation, retry,
    /// refusals, stateless reset), or the start of a new connection.
    /// Public as the entry point of the fuzz harness.
    ///
    /// # Safety
    /// `h` is the live root and no borrow of its state is alive.
    pub unsafe fn handle_datagram(h: *const Server<P, A>, pkt: &mut [u8], from: SocketAddr, to: SocketAddr) {
        let st = Self::state(h);
        let Some(&first) = pkt.first() else { return };
        if first & 0x80 == 0 {
            // Short header: the DCID is one of our own right after the
            // first byte; no allocation, one lookup per CID length in use
            // (one, unless the layout changed while connections lived).
            match st.table.by_short_header(pkt) {
                Some(id) => Self::feed(st, id, pkt, from, to),
                None => Self::unknown_short(st, pkt, from, to),
            }
            return;
        }
        let hdr = match quiche::Header::from_slice(pkt, st.cids.len()) {
            Ok(h) => h,
            Err(e) => {
                st.counters.dropped_malformed += 1;
                log_debug!("failed to parse header: {e:?}");
                return;
            }
        };
        let known = st.table.by_cid(&hdr.dcid).or_else(|| st.table.by_odcid(&hdr.dcid));
        match known {
            Some(id) => Self::feed(st, id, pkt, from, to),
            None => {
                if let Some(id) = Self::accept(h, st, &hdr, pkt.len(), from, to) {
                    Self::feed(st, id, pkt, from, to);
                }
            }
        }
    }

    /// One datagram as if read from the socket, then the step that
    /// follows (the fuzz harness and in-process tests). False when the
    /// host freed the server meanwhile.
    ///
    /// # Safety
    /// `h` is the live root, outside its callbacks.
    pub unsafe fn inject(h: *mut Server<P, A>, pkt: &mut [u8], from: SocketAddr) -> bool {
        let to = Self::state(h).local;
        Handle::callback(h, || {
            Self::handle_datagram(h, pkt, from, to);
            Self::send_stateless_out(h);
            Handle::step(h);
        })
    }

    unsafe fn feed(st: &mut ServerState<P, A>, id: ConnId, pkt: &mut [u8], from: SocketAddr, to: SocketAddr) {
        let Some(e) = st.table.get(id) else { return };
        let drv = Driver::state(addr_of!((*e.as_ptr()).drv));
        drv.recv(pkt, from, to);
        if !drv.touched {
            drv.touched = true;
            st.touched.push(id);
        }
    }

    /// A short-header packet for no connection we have: a Stateless Reset
    /// (RFC 9000 §10.3) if it is long enough to answer with a shorter one
    /// (so resets bouncing between two endpoints die out) and the rate
    /// allows. The cheap checks come first: a flood of junk costs a
    /// lookup and the rate limiter, not a HMAC or an allocation each. The
    /// token is derived from the DCID (as long as ours are) under the
    /// reset key, so a client whose connection another holder of the key
    /// issued (a dead worker, a restarted server) stops at once; during a
    /// key rotation a reset goes out under each key. A CID naming another
    /// live worker of our group is that worker's: dropped, never reset.
    fn unknown_short(st: &mut ServerState<P, A>, pkt: &[u8], from: SocketAddr, to: SocketAddr) {
        let dcid = match pkt.get(1..1 + st.cids.len()) {
            Some(d) if pkt.len() >= stateless::MIN_TRIGGER_LEN => d,
            _ => {
                st.counters.dropped_unknown += 1;
                log_debug!("packet for unknown connection dropped ({} bytes)", pkt.len());
                return;
            }
        };
        if let (Some(peers), Some(_)) = (&st.peers, st.cids.worker()) {
            if peers.is_other_live(dcid[0] & crate::steer::WORKER_MASK) {
                st.counters.dropped_misrouted += 1;
                log_debug!("packet for another worker's connection dropped");
                return;
            }
        }
        if !st.stateless_limit.allow(Instant::now()) {
            st.counters.dropped_rate_limited += 1;
            return;
        }
        let keys = st.secrets().get().reset;
        let mut tokens = [0u128; 2];
        let mut n = 0;
        for k in keys.all() {
            tokens[n] = stateless::reset_token(k, dcid);
            n += 1;
        }
        for &token in &tokens[..n] {
            if let Some(len) = stateless::stateless_reset(pkt.len(), token, &mut st.out) {
                st.counters.stateless_resets += 1;
                log_debug!("stateless reset for an unknown connection");
                Self::send_stateless(st, len, to, from);
            }
        }
    }

    /// Queues a stateless answer (in `out[..len]`) for after the batch.
    fn send_stateless(st: &mut ServerState<P, A>, len: usize, from: SocketAddr, to: SocketAddr) {
        let pkt = &st.out[..len];
        match st.stateless_out.last_mut() {
            Some(last) if last.takes(pkt.len(), from, to) => last.data.extend_from_slice(pkt),
            _ => st.stateless_out.push(StatelessOut { data: pkt.to_vec(), segment: len, from, to }),
        }
    }

    pub(super) unsafe fn send_stateless_out(h: *const Server<P, A>) {
        let out = std::mem::take(&mut Self::state(h).stateless_out);
        let io = Handle::io(h);
        for o in out {
            if let Err(e) = io.send(&o.data, o.segment, o.from, o.to) {
                log_debug!("failed to send: {e}");
            }
        }
    }

    /// Refuses a client's Initial with a CONNECTION_CLOSE carrying `code`,
    /// creating no state (RFC 9000 §8.1.2, §5.2.2).
    fn refuse(st: &mut ServerState<P, A>, hdr: &quiche::Header, code: u64, reason: &[u8], from: SocketAddr,
              to: SocketAddr) {
        if !st.stateless_limit.allow(Instant::now()) {
            st.counters.dropped_rate_limited += 1;
            return;
        }
        match stateless::initial_close(hdr.version, &hdr.dcid, &hdr.scid, code, reason, &mut st.out) {
            Ok(n) => Self::send_stateless(st, n, to, from),
            Err(e) => log_debug!("cannot build a refusal: {e:?}"),
        }
    }

    /// A long-header packet for no connection: version negotiation,
    /// stateless retry, token validation, refusals, and `create_conn`.
    unsafe fn accept(h: *const Server<P, A>, st: &mut ServerState<P, A>, hdr: &quiche::Header, len: usize,
                     from: SocketAddr, to: SocketAddr) -> Option<ConnId> {
        if matches!(hdr.ty, Type::Short | Type::VersionNegotiation) {
            st.counters.dropped_unknown += 1;
            return None;
        }
        // A client's first datagram is padded to 1200 bytes; answering a
        // shorter one would make us an amplifier for spoofed sources.
        if len < MIN_INITIAL_DATAGRAM {
            st.counters.dropped_short += 1;
            log_debug!("datagram of {len} bytes for unknown connection dropped");
            return None;
        }
        if !quiche::version_is_supported(hdr.version) {
            log_info!("version negotiation");
            match quiche::negotiate_version(&hdr.scid, &hdr.dcid, &mut st.out) {
                Ok(n) => {
                    st.counters.version_negotiations += 1;
                    Self::send_stateless(st, n, to, from);
                }
                Err(e) => log_debug!("failed to create vneg packet: {e:?}"),
            }
            return None;
        }
        if hdr.ty != Type::Initial {
            st.counters.dropped_unknown += 1;
            log_debug!("packet for unknown connection dropped");
            return None;
        }
        if hdr.dcid.len() < MIN_INITIAL_DCID_LEN {
            st.counters.dropped_malformed += 1;
            log_debug!("initial with a destination connection ID of {} bytes dropped", hdr.dcid.len());
            return None;
        }
        if st.table.is_buried(&hdr.dcid) {
            st.counters.dropped_late += 1;
            log_debug!("late initial for a closed connection dropped");
            return None;
        }
        if st.stopping != Stopping::No {
            st.counters.refused += 1;
            log_info!("server shutting down, new connection refused");
            Self::refuse(st, hdr, stateless::CONNECTION_REFUSED, b"server shutting down", from, to);
            return None;
        }
        if st.table.len() >= st.settings.max_conns {
            st.counters.refused += 1;
            log_info!("connection limit ({}) reached, new connection refused", st.settings.max_conns);
            Self::refuse(st, hdr, stateless::CONNECTION_REFUSED, b"server busy", from, to);
            return None;
        }
        let token = hdr.token.as_deref().unwrap_or(&[]);
        let odcid = if token.is_empty() {
            None
        } else {
            let keys = st.secrets().get().token;
            match st.tokens.validate_token(&keys, token, &from, &hdr.dcid) {
                Ok(odcid) => Some(odcid),
                // We only ever hand out Retry tokens, so this is one that
                // is forged, altered, expired, for another address, or from
                // before a restart: the client cannot take another Retry,
                // so tell it (RFC 9000 §8.1.2) instead of letting it time
                // out.
                Err(e) => {
                    st.counters.invalid_tokens += 1;
                    log_info!("invalid address validation token ({e:?})");
                    Self::refuse(st, hdr, stateless::INVALID_TOKEN, b"invalid token", from, to);
                    return None;
                }
            }
        };
        match odcid {
            Some(odcid) => {
                // A valid token binds the DCID we chose in the Retry.
                let cid = Cid::from_slice(&hdr.dcid)?;
                Self::create_conn(h, st, cid, Some(&odcid), None, from, to)
            }
            None if st.settings.retry => {
                let Some(new_cid) = st.next_cid() else {
                    Self::refuse_no_cid(st, hdr, from, to);
                    return None;
                };
                log_info!("stateless retry");
                let key = st.secrets().get().token.current;
                let token = st.tokens.mint_token(&key, &hdr.dcid, &from, &new_cid);
                match quiche::retry(&hdr.scid, &hdr.dcid, &ConnectionId::from_ref(&new_cid), &token,
                                    hdr.version, &mut st.out) {
                    Ok(n) => {
                        st.counters.retries += 1;
                        Self::send_stateless(st, n, to, from);
                    }
                    Err(e) => log_debug!("failed to create retry packet: {e:?}"),
                }
                None
            }
            None => {
                let Some(scid) = st.next_cid() else {
                    Self::refuse_no_cid(st, hdr, from, to);
                    return None;
                };
                Self::create_conn(h, st, scid, None, Some(&hdr.dcid), from, to)
            }
        }
    }

    /// The CID layout has no connection ID left to give (a keyed QUIC-LB
    /// layout used its whole nonce space): new clients are refused until
    /// the host sets a new layout.
    fn refuse_no_cid(st: &mut ServerState<P, A>, hdr: &quiche::Header, from: SocketAddr, to: SocketAddr) {
        st.counters.refused += 1;
        Self::refuse(st, hdr, stateless::CONNECTION_REFUSED, b"server busy", from, to);
    }

    /// `create_conn`: a new connection under our own `scid`; with
    /// no Retry, the client's own DCID also leads to it until the
    /// handshake is done.
    unsafe fn create_conn(h: *const Server<P, A>, st: &mut ServerState<P, A>, scid: Cid, odcid: Option<&[u8]>,
                          client_dcid: Option<&[u8]>, from: SocketAddr, to: SocketAddr) -> Option<ConnId> {
        let new = NewConn {
            scid: &scid, odcid, local: to, peer: from, host: None,
            reset_token: Some(st.reset_token(&scid)),
            observe: &st.observe,
        };
        let conn = match P::accept(&mut *st.config, &new) {
            Ok(c) => c,
            Err(quiche::Error::BufferTooShort) => {
                // quiche 0.30 encodes a server's transport parameters into
                // 128 bytes: after a Retry (two more connection IDs) they
                // may not fit, e.g. with datagrams on.
                log_warn!("failed to create connection: BufferTooShort (our transport parameters exceed the 128 \
                           bytes quiche 0.30 has for them{}; see README, Datagrams)",
                          if odcid.is_some() { ", with the Retry's connection IDs" } else { "" });
                return None;
            }
            Err(e) => {
                log_warn!("failed to create connection: {e:?}");
                return None;
            }
        };
        let id = st.table.next_id();
        let entry = Box::into_raw(Box::new(ServerConn {
            drv: Driver::new(conn),
            server: h,
            id,
            app: UnsafeCell::new(A::new_conn(&mut st.app)),
            flags: Cell::new(ConnFlags::default()),
        }));
        Driver::init_timer(addr_of!((*entry).drv), Handle::lp(h), timeout_cb::<P, A>, entry as *mut c_void);
        let inserted = st.table.insert(NonNull::new_unchecked(entry), scid, client_dcid);
        debug_assert_eq!(inserted, id);
        st.counters.accepted += 1;
        crate::log::within(|o| o.conn = entry.cast(), || log_info!("new connection"));
        Some(id)
    }
}
