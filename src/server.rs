//! The server side of upstream's `server.c` / `http3-server.c`: the
//! connection table, `recv_cb`, `create_conn`, `timeout_cb`, version
//! negotiation, stateless retry, and the refusals a peer can see (RFC 9000:
//! INVALID_TOKEN, CONNECTION_REFUSED, Stateless Reset).
//!
//! # Ownership (the invariant every `unsafe` block here relies on)
//!
//! - A [`Server`] is created by [`Server::create`], which `Box::into_raw`s
//!   it first; every pointer handed to libev or to C (watcher `data`, each
//!   connection's back pointer) is derived from that one raw root, and the
//!   server is only ever reached through it: `&Server` (shared) for the
//!   watchers and the re-entrancy cells, and `&mut ServerState` through
//!   [`Server::state`] for one step at a time. No `&mut Server` exists
//!   until [`Server::destroy`] takes the box back.
//! - Every connection ([`ServerConn`]) is likewise a raw box owned by the
//!   table; its timer's `data` is that raw pointer. It is freed only by
//!   the dispatch loop, after its closed event reached the host, and after
//!   its timer was stopped.
//! - Watchers that libev writes live in `UnsafeCell`s and are reached by
//!   raw pointers only.
//! - The host is called (through queued events, see `hooks`) only when no
//!   borrow of the state is alive, so it may call back into the server,
//!   free it included (the free is then deferred until the outermost
//!   callback returns).

use std::cell::{Cell, UnsafeCell};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::ptr::{addr_of, NonNull};
use std::time::{Duration, Instant};

use libc::{c_int, c_void};
use libev_sys::{ev_io, ev_loop, ev_timer, EV_WRITE};
use quiche::{ConnectionId, Type};

use crate::cid::gen_cid;
use crate::dgram::DatagramIo;
use crate::driver::Driver;
use crate::egress::{Flushed, SCRATCH_LEN};
use crate::evloop::EvLoop;
use crate::hooks::{ConnRef, ServerApp};
use crate::observe::Observe;
use crate::platform::{NewConn, Platform};
use crate::reentry::{After, Dispatched, Reentry, MAX_EVENTS_PER_DISPATCH};
use crate::stateless::{self, RateLimiter};
use crate::table::{Cid, ConnId, Table};
use crate::token::{TokenKey, DEFAULT_LIFETIME};
use crate::transport::{ConnStats, Transport};
use crate::LOCAL_CONN_ID_LEN;

/// Default bound on live connections.
pub const DEFAULT_MAX_CONNS: usize = 10_000;

/// Read batches per `recv_cb` before egress gets its turn (the socket
/// stays readable, so libev calls again).
const MAX_READS_PER_CALLBACK: usize = 64;

/// Smallest UDP payload that may carry a client's first Initial (RFC 9000
/// §14.1); we answer nothing shorter, so we cannot be used to amplify.
const MIN_INITIAL_DATAGRAM: usize = 1200;

/// Smallest destination CID a client may put in its first Initial
/// (RFC 9000 §7.2).
const MIN_INITIAL_DCID_LEN: usize = 8;

/// Stateless answers (resets, refusals) per second, and their burst.
const STATELESS_PER_SEC: u32 = 1000;
const STATELESS_BURST: u32 = 100;

/// How soon work waiting for the disk is tried again.
const RETRY_SOON_SECS: f64 = 0.001;

/// How long a shutting-down server keeps even idle connections open, for
/// requests already on their way (a few round trips on most paths).
const SHUTDOWN_GRACE: Duration = Duration::from_millis(250);

/// How long a draining server waits for closing connections (their
/// closing period, blocked egress) after it closed them, before it drops
/// what is left.
const CLOSE_LINGER_SECS: f64 = 1.0;

/// The longest a draining server waits past the linger for connections
/// still in their closing period (3 PTOs: about 3 s for one closed during
/// its handshake, before any RTT sample), so that each ends as quiche
/// ends it (its qlog records the close) rather than being dropped.
const CLOSING_PERIOD_CAP: Duration = Duration::from_secs(10);

/// What the server did with the datagrams it could not give to a
/// connection, and how many connections it made: the C API's structure,
/// kept as is (`quiche_ev_server_counters` copies it out).
pub type Counters = crate::ffi::types::quiche_ev_counters;

/// What the host set, beyond the quiche config.
pub struct Settings {
    pub max_conns: usize,
    pub retry: bool,
    pub gso: bool,
}

/// One connection: its driver, its application state, and the way back
/// to the server (a raw pointer derived from the server's root).
pub struct ServerConn<P: Platform> {
    drv: Driver<P>,
    server: *const Server<P>,
    id: ConnId,
    app: UnsafeCell<P::ServerApp>,
    flags: Cell<ConnFlags>,
}

#[derive(Clone, Copy, Default)]
struct ConnFlags {
    established: bool,
    closing: bool,
    shutdown_told: bool,
    shutdown_final: bool,
}

/// Work the dispatch loop does after the host heard everything before it.
enum Deferred<E, P: Platform> {
    App(E),
    /// Free a connection whose closed event has been delivered.
    Free(NonNull<ServerConn<P>>),
    /// The shutdown finished (or the server failed): tell the host.
    Stopped,
}

/// Graceful shutdown in progress.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stopping {
    No,
    /// New connections are refused, connections were told (GOAWAY);
    /// requests already on their way may still arrive, so even idle
    /// connections stay open for `SHUTDOWN_GRACE`.
    Grace,
    /// Idle connections close; in-flight requests may finish.
    Draining,
    /// Every connection was told to close; waiting for them to go.
    Closing,
    /// Nothing left; the host was told.
    Stopped,
}

pub struct ServerState<P: Platform> {
    fd: RawFd,
    local: SocketAddr,
    /// Borrowed from C for the server's life (see the C API).
    config: *mut P::Config,
    table: Table<ServerConn<P>>,
    touched: Vec<ConnId>,
    blocked: Vec<ConnId>,
    /// Connections whose application waits for the disk: serviced again
    /// after `RETRY_SOON_SECS`.
    retry_soon: Vec<ConnId>,
    tokens: TokenKey,
    reset_key: [u8; 32],
    stateless_limit: RateLimiter,
    pub settings: Settings,
    pub observe: Observe,
    pub app: <P::ServerApp as ServerApp<P>>::Shared,
    pub counters: Counters,
    out: Vec<u8>,
    /// Stateless answers made while a read batch is in progress, sent
    /// when it is over (the socket is busy reading then).
    stateless_out: Vec<(Vec<u8>, SocketAddr, SocketAddr)>,
    stopping: Stopping,
    /// When a shutdown's drain time ends.
    drain_until: Option<Instant>,
    /// When the first close linger ended (the closing-period cap counts from it).
    closing_since: Option<Instant>,
    deferred: std::collections::VecDeque<Deferred<<P::ServerApp as ServerApp<P>>::Event, P>>,
    /// The host's "stopped" callback.
    pub on_stopped: Option<(StoppedFn, *mut c_void)>,
}

/// The server stopped: `(server, status, user)`; status 0 after a
/// shutdown, negative after an internal error.
pub type StoppedFn = unsafe extern "C" fn(*mut crate::ffi::types::quiche_ev_server, c_int, *mut c_void);

pub struct Server<P: Platform> {
    lp: P::Loop,
    write_watcher: UnsafeCell<ev_io>,
    /// Drain deadline, then close linger.
    stop_timer: UnsafeCell<ev_timer>,
    /// "Flush soon": work queued by the host outside our callbacks.
    kick_timer: UnsafeCell<ev_timer>,
    /// Callbacks on the stack, a deferred free, a failure.
    reentry: Reentry,
    /// The socket(s): a cell of its own, so a read batch can run while
    /// each datagram it yields is handled with the state borrowed.
    io: UnsafeCell<P::Io>,
    state: UnsafeCell<ServerState<P>>,
}

impl<P: Platform> Server<P> {
    /// Makes a server on the bound socket `fd` (address `local`) and
    /// returns its raw root.
    ///
    /// # Safety
    /// `config` must stay valid, and unused elsewhere while the loop runs,
    /// until the server is destroyed.
    pub unsafe fn create(lp: P::Loop, io: P::Io, fd: RawFd, local: SocketAddr, config: *mut P::Config,
                         app: <P::ServerApp as ServerApp<P>>::Shared) -> *mut Server<P> {
        let mut reset_key = [0u8; 32];
        crate::cid::random_bytes(&mut reset_key);
        let server = Box::into_raw(Box::new(Server::<P> {
            lp,
            write_watcher: UnsafeCell::new(ev_io::zeroed()),
            stop_timer: UnsafeCell::new(ev_timer::zeroed()),
            kick_timer: UnsafeCell::new(ev_timer::zeroed()),
            reentry: Reentry::default(),
            io: UnsafeCell::new(io),
            state: UnsafeCell::new(ServerState {
                fd, local, config,
                table: Table::new(DEFAULT_LIFETIME + Duration::from_secs(1)),
                touched: Vec::new(),
                blocked: Vec::new(),
                retry_soon: Vec::new(),
                tokens: TokenKey::new(DEFAULT_LIFETIME),
                reset_key,
                stateless_limit: RateLimiter::new(STATELESS_PER_SEC, STATELESS_BURST),
                settings: Settings { max_conns: DEFAULT_MAX_CONNS, retry: true, gso: true },
                observe: Observe::default(),
                app,
                counters: Counters { size: std::mem::size_of::<Counters>(), ..Default::default() },
                out: vec![0; SCRATCH_LEN],
                stateless_out: Vec::new(),
                stopping: Stopping::No,
                drain_until: None,
                closing_since: None,
                deferred: Default::default(),
                on_stopped: None,
            }),
        }));
        let s = &*server;
        let data = server as *mut c_void;
        s.lp.io_init(Self::ptr(addr_of!((*server).write_watcher)), write_cb::<P>, fd, EV_WRITE, data);
        s.lp.timer_init(Self::ptr(addr_of!((*server).stop_timer)), stop_cb::<P>, data);
        s.lp.timer_init(Self::ptr(addr_of!((*server).kick_timer)), kick_cb::<P>, data);
        server
    }

    fn ptr<T>(cell: *const UnsafeCell<T>) -> *mut T {
        UnsafeCell::raw_get(cell)
    }

    /// The state, for one step.
    ///
    /// # Safety
    /// `this` is the live root; no other reference to the state exists
    /// while the returned one is used.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn state<'a>(this: *const Self) -> &'a mut ServerState<P> {
        &mut *Self::ptr(addr_of!((*this).state))
    }

    /// The socket(s), for one step.
    ///
    /// # Safety
    /// As for [`Server::state`], for the I/O.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn io<'a>(this: *const Self) -> &'a mut P::Io {
        &mut *Self::ptr(addr_of!((*this).io))
    }

    /// Frees the server now, or (inside one of its callbacks) when the
    /// outermost one returns.
    ///
    /// # Safety
    /// `this` came from [`Server::create`] and is not used by the caller
    /// afterwards.
    pub unsafe fn destroy(this: *mut Self) {
        if !(*this).reentry.defer_free() {
            Self::free(this);
        }
    }

    unsafe fn free(this: *mut Self) {
        {
            let s = &*this;
            s.lp.io_stop(Self::ptr(addr_of!((*this).write_watcher)));
            s.lp.timer_stop(Self::ptr(addr_of!((*this).stop_timer)));
            s.lp.timer_stop(Self::ptr(addr_of!((*this).kick_timer)));
            let st = Self::state(this);
            for e in st.table.drain() {
                Driver::stop(addr_of!((*e.as_ptr()).drv), &s.lp);
                drop(Box::from_raw(e.as_ptr()));
            }
            for d in st.deferred.drain(..) {
                if let Deferred::Free(e) = d {
                    drop(Box::from_raw(e.as_ptr()));
                }
            }
        }
        drop(Box::from_raw(this));
    }

    /// Runs one library callback: re-entrancy bookkeeping, the panic
    /// boundary, and the deferred free.
    unsafe fn callback(this: *mut Self, f: impl FnOnce()) {
        for after in (*this).reentry.run(f) {
            match after {
                After::Fail => Self::fail(this),
                After::Free => Self::free(this),
            }
        }
    }

    /// After an internal error the state cannot be trusted: stop every
    /// watcher of ours, refuse all further work, tell the host.
    unsafe fn fail(this: *const Self) {
        let s = &*this;
        log_error!("quiche-ev: server stopped after an internal error");
        s.lp.io_stop(Self::ptr(addr_of!((*this).write_watcher)));
        s.lp.timer_stop(Self::ptr(addr_of!((*this).stop_timer)));
        s.lp.timer_stop(Self::ptr(addr_of!((*this).kick_timer)));
        crate::ffi::guard::guard((), || {
            let st = Self::state(this);
            for id in st.table.ids() {
                if let Some(e) = st.table.get(id) {
                    Driver::stop(addr_of!((*e.as_ptr()).drv), &s.lp);
                }
            }
            if let Some((cb, user)) = st.on_stopped {
                cb(this as *mut crate::ffi::types::quiche_ev_server, crate::ffi::QUICHE_EV_ERR_INTERNAL, user);
            }
        });
    }

    /// Whether an internal error stopped it.
    ///
    /// # Safety
    /// `this` is the live root.
    pub unsafe fn is_failed(this: *const Self) -> bool {
        (*this).reentry.failed()
    }

    /// `recv_cb`: reads the queued datagrams batch by batch (a bounded
    /// number of batches per call: the socket stays readable, so libev
    /// calls again) and after each batch lets the connections that got
    /// packets work and flush, so ACKs and flow-control credit keep the
    /// peers' sending clock running.
    ///
    /// # Safety
    /// `this` is the live root.
    pub unsafe fn recv_cb(this: *mut Self, fd: RawFd) {
        Self::callback(this, || {
            for _ in 0..MAX_READS_PER_CALLBACK {
                let more = Self::io(this)
                    .read_batch(fd, &mut |pkt, from, to| Self::handle_datagram(this, pkt, from, to));
                Self::send_stateless_out(this);
                Self::step(this);
                match more {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        log_warn!("failed to read: {e}");
                        break;
                    }
                }
            }
        });
    }

    /// After a batch (or a timer, or writability): let every touched
    /// connection work and flush, tell the host what happened, then flush
    /// what the host's answers produced.
    unsafe fn step(this: *mut Self) {
        let rounds = (*this).reentry.rounds(|| Self::service_touched(this), || Self::dispatch(this));
        let Some(capped) = rounds else { return };
        let st = Self::state(this);
        if capped || !st.touched.is_empty() || !st.deferred.is_empty() {
            // The host keeps answering; continue on the next iteration.
            (*this).lp.timer_arm(Self::ptr(addr_of!((*this).kick_timer)), 0.0);
        } else if !st.retry_soon.is_empty() {
            (*this).lp.timer_arm(Self::ptr(addr_of!((*this).kick_timer)), RETRY_SOON_SECS);
        }
        Self::check_stopped(this);
    }

    /// One datagram from `from` to our address `to`: routed to its
    /// connection by DCID, or answered (version negotiation, retry,
    /// refusals, stateless reset), or the start of a new connection.
    /// Public as the entry point of the fuzz harness.
    ///
    /// # Safety
    /// `this` is the live root and no borrow of its state is alive.
    pub unsafe fn handle_datagram(this: *const Self, pkt: &mut [u8], from: SocketAddr, to: SocketAddr) {
        let st = Self::state(this);
        let Some(&first) = pkt.first() else { return };
        if first & 0x80 == 0 {
            // Short header: the DCID is our own 16 bytes right after the
            // first byte; no allocation, one lookup.
            let dcid = pkt.get(1..1 + LOCAL_CONN_ID_LEN);
            match dcid.and_then(|d| st.table.by_cid(d)) {
                Some(id) => Self::feed(this, st, id, pkt, from, to),
                None => Self::unknown_short(st, pkt, from, to),
            }
            return;
        }
        let hdr = match quiche::Header::from_slice(pkt, LOCAL_CONN_ID_LEN) {
            Ok(h) => h,
            Err(e) => {
                st.counters.dropped_malformed += 1;
                log_debug!("failed to parse header: {e:?}");
                return;
            }
        };
        let known = st.table.by_cid(&hdr.dcid).or_else(|| st.table.by_odcid(&hdr.dcid));
        match known {
            Some(id) => Self::feed(this, st, id, pkt, from, to),
            None => {
                if let Some(id) = Self::accept(this, st, &hdr, pkt.len(), from, to) {
                    Self::feed(this, st, id, pkt, from, to);
                }
            }
        }
    }

    /// One datagram as if read from the socket, then the step that
    /// follows (the fuzz harness and in-process tests).
    ///
    /// # Safety
    /// `this` is the live root and no borrow of its state is alive.
    pub unsafe fn inject(this: *mut Self, pkt: &mut [u8], from: SocketAddr) {
        let to = Self::state(this).local;
        Self::callback(this, || {
            Self::handle_datagram(this, pkt, from, to);
            Self::send_stateless_out(this);
            Self::step(this);
        });
    }

    unsafe fn feed(this: *const Self, st: &mut ServerState<P>, id: ConnId, pkt: &mut [u8], from: SocketAddr,
                   to: SocketAddr) {
        let _ = this;
        let Some(e) = st.table.get(id) else { return };
        let drv = Driver::state(addr_of!((*e.as_ptr()).drv));
        drv.recv(pkt, from, to);
        if !drv.touched {
            drv.touched = true;
            st.touched.push(id);
        }
    }

    /// A short-header packet for no connection we have: a Stateless Reset
    /// (RFC 9000 §10.3) if it is long enough to answer with a shorter one,
    /// is not our own reset coming back, and the rate allows.
    fn unknown_short(st: &mut ServerState<P>, pkt: &[u8], from: SocketAddr, to: SocketAddr) {
        let Some(dcid) = pkt.get(1..1 + LOCAL_CONN_ID_LEN) else {
            st.counters.dropped_unknown += 1;
            log_debug!("packet for unknown connection dropped ({} bytes)", pkt.len());
            return;
        };
        let token = stateless::reset_token(&st.reset_key, dcid);
        if stateless::is_reset_of(pkt, token) {
            st.counters.dropped_unknown += 1;
            return;
        }
        if !st.stateless_limit.allow(Instant::now()) {
            st.counters.dropped_rate_limited += 1;
            return;
        }
        match stateless::stateless_reset(pkt.len(), token, &mut st.out) {
            Some(n) => {
                st.counters.stateless_resets += 1;
                log_debug!("stateless reset for an unknown connection");
                Self::send_stateless(st, n, to, from);
            }
            None => {
                st.counters.dropped_unknown += 1;
                log_debug!("packet for unknown connection dropped ({} bytes)", pkt.len());
            }
        }
    }

    /// Queues a stateless answer (in `out[..len]`) for after the batch.
    fn send_stateless(st: &mut ServerState<P>, len: usize, from: SocketAddr, to: SocketAddr) {
        st.stateless_out.push((st.out[..len].to_vec(), from, to));
    }

    unsafe fn send_stateless_out(this: *const Self) {
        let out = std::mem::take(&mut Self::state(this).stateless_out);
        let io = Self::io(this);
        for (d, from, to) in out {
            if let Err(e) = io.send(&d, d.len(), from, to) {
                log_debug!("failed to send: {e}");
            }
        }
    }

    /// Refuses a client's Initial with a CONNECTION_CLOSE carrying `code`,
    /// creating no state (RFC 9000 §8.1.2, §5.2.2).
    fn refuse(st: &mut ServerState<P>, hdr: &quiche::Header, code: u64, reason: &[u8], from: SocketAddr,
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
    unsafe fn accept(this: *const Self, st: &mut ServerState<P>, hdr: &quiche::Header, len: usize,
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
            match st.tokens.validate_token(token, &from, &hdr.dcid) {
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
                let cid = Cid::try_from(hdr.dcid.as_ref()).ok()?;
                Self::create_conn(this, st, cid, Some(&odcid), None, from, to)
            }
            None if st.settings.retry => {
                log_info!("stateless retry");
                let new_cid = gen_cid();
                let token = st.tokens.mint_token(&hdr.dcid, &from, &new_cid);
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
            None => Self::create_conn(this, st, gen_cid(), None, Some(&hdr.dcid), from, to),
        }
    }

    /// `create_conn`: a new connection under our own 16-byte `scid`; with
    /// no Retry, the client's own DCID also leads to it until the
    /// handshake is done.
    unsafe fn create_conn(this: *const Self, st: &mut ServerState<P>, scid: Cid, odcid: Option<&[u8]>,
                          client_dcid: Option<&[u8]>, from: SocketAddr, to: SocketAddr) -> Option<ConnId> {
        let new = NewConn {
            scid: &scid, odcid, local: to, peer: from, host: None,
            reset_token: Some(stateless::reset_token(&st.reset_key, &scid)),
            observe: &st.observe,
        };
        let conn = match P::accept(&mut *st.config, &new) {
            Ok(c) => c,
            Err(e) => {
                log_warn!("failed to create connection: {e:?}");
                return None;
            }
        };
        let id = st.table.next_id();
        let entry = Box::into_raw(Box::new(ServerConn {
            drv: Driver::new(conn),
            server: this,
            id,
            app: UnsafeCell::new(<P::ServerApp as ServerApp<P>>::new_conn(&mut st.app)),
            flags: Cell::new(ConnFlags::default()),
        }));
        Driver::init_timer(addr_of!((*entry).drv), &(*this).lp, timeout_cb::<P>, entry as *mut c_void);
        let inserted = st.table.insert(NonNull::new_unchecked(entry), scid, client_dcid);
        debug_assert_eq!(inserted, id);
        st.counters.accepted += 1;
        log_info!("new connection");
        Some(id)
    }

    /// Lets each touched connection work (application input, spare CIDs,
    /// draining) and flushes it; removes the closed ones.
    unsafe fn service_touched(this: *const Self) {
        loop {
            let ids = std::mem::take(&mut Self::state(this).touched);
            if ids.is_empty() {
                break;
            }
            for id in ids {
                Self::service(this, id);
            }
        }
    }

    /// One connection's step: input to the application, CID upkeep,
    /// shutdown, `flush_egress`, and removal once closed.
    unsafe fn service(this: *const Self, id: ConnId) {
        let s = &*this;
        let st = Self::state(this);
        let Some(e) = st.table.get(id) else { return };
        let e = e.as_ptr() as *const ServerConn<P>;
        let drv = Driver::state(addr_of!((*e).drv));
        let app = &mut *UnsafeCell::raw_get(addr_of!((*e).app));
        let mut flags = (*e).flags.get();
        drv.touched = false;
        if !drv.conn.is_closed() {
            if drv.conn.is_established() && !flags.established {
                flags.established = true;
                st.table.forget_odcid(id);
                // (upstream's servers print nothing here; their clients do)
                log_debug!("connection established: {}", String::from_utf8_lossy(drv.conn.application_proto()));
                app.on_established(&mut drv.conn, &mut st.app, e as ConnRef);
            }
            if drv.conn.is_established() || drv.conn.is_in_early_data() {
                app.on_input(&mut drv.conn, &mut st.app, e as ConnRef);
            }
            drv.path_events();
            let key = st.reset_key;
            let table = &mut st.table;
            let mut mapped: Vec<Cid> = Vec::new();
            let mut unmapped: Vec<Vec<u8>> = Vec::new();
            drv.manage_scids(|| {
                let cid = gen_cid();
                (cid, stateless::reset_token(&key, &cid))
            }, |c| mapped.extend(Cid::try_from(c)), |c| unmapped.push(c.to_vec()));
            for c in mapped {
                table.map(id, &c);
            }
            for c in unmapped {
                table.unmap(id, &c);
            }
            if st.stopping != Stopping::No && !flags.shutdown_told {
                flags.shutdown_told = true;
                app.on_shutdown(&mut drv.conn, false);
            }
            if matches!(st.stopping, Stopping::Draining | Stopping::Closing) && !flags.shutdown_final {
                flags.shutdown_final = true;
                app.on_shutdown(&mut drv.conn, true);
            }
            let close_now = match st.stopping {
                Stopping::Draining => !app.is_busy(&mut drv.conn),
                Stopping::Closing | Stopping::Stopped => true,
                Stopping::No | Stopping::Grace => false,
            };
            if app.wants_retry() && !st.retry_soon.contains(&id) {
                st.retry_soon.push(id);
            }
            if close_now && !flags.closing {
                flags.closing = true;
                let (is_app, code) = app.close_code();
                let _ = drv.conn.close(is_app, code, b"server shutting down");
            }
        }
        (*e).flags.set(flags);
        let flushed = Driver::flush_egress(addr_of!((*e).drv), drv, &s.lp, Self::io(this), &mut st.out,
                                           st.settings.gso);
        if flushed == Flushed::Blocked {
            if !st.blocked.contains(&id) {
                st.blocked.push(id);
            }
            s.lp.io_start(Self::ptr(addr_of!((*this).write_watcher)));
        }
        if drv.conn.is_closed() {
            Self::remove(this, st, id);
        }
    }

    /// Takes a closed connection out of the table; the host hears of it,
    /// then the dispatch loop frees it.
    unsafe fn remove(this: *const Self, st: &mut ServerState<P>, id: ConnId) {
        let Some(e) = st.table.get(id) else { return };
        let ep = e.as_ptr() as *const ServerConn<P>;
        let drv = Driver::state(addr_of!((*ep).drv));
        let stats = drv.conn.conn_stats();
        // quiche closes a server connection whose first packet it could not
        // open (corrupted on the way, or junk): nothing was ever sent to the
        // client, whose next Initial (same DCID) must find its way in.
        let bury = stats.recv > 0;
        if !bury {
            log_debug!("first packet of a new connection could not be processed: connection dropped");
        }
        st.table.remove(id, bury);
        Driver::stop(addr_of!((*ep).drv), &(*this).lp);
        let info = drv.conn.close_info();
        log_info!("{}", closed_line(&stats, true));
        st.counters.closed += 1;
        let app = &mut *UnsafeCell::raw_get(addr_of!((*ep).app));
        app.on_closed(&mut st.app, &stats, &info, ep as ConnRef);
        Self::defer(st, Deferred::Free(e));
        log_info!("connection freed, {} left", st.table.len());
    }

    /// Queues `d` after every application event queued so far.
    fn defer(st: &mut ServerState<P>, d: Deferred<<P::ServerApp as ServerApp<P>>::Event, P>) {
        while let Some(ev) = <P::ServerApp as ServerApp<P>>::next_event(&mut st.app) {
            st.deferred.push_back(Deferred::App(ev));
        }
        st.deferred.push_back(d);
    }

    /// Delivers every queued event to the host, each with no borrow of the
    /// state alive. True when anything was delivered.
    unsafe fn dispatch(this: *mut Self) -> Dispatched {
        let mut n = 0;
        loop {
            if n == MAX_EVENTS_PER_DISPATCH {
                return Dispatched::Capped;
            }
            let next = {
                let st = Self::state(this);
                match st.deferred.pop_front() {
                    Some(d) => Some(d),
                    None => <P::ServerApp as ServerApp<P>>::next_event(&mut st.app).map(Deferred::App),
                }
            };
            let Some(d) = next else { break };
            n += 1;
            match d {
                Deferred::App(ev) => <P::ServerApp as ServerApp<P>>::deliver(ev),
                Deferred::Free(e) => drop(Box::from_raw(e.as_ptr())),
                Deferred::Stopped => {
                    let cb = Self::state(this).on_stopped;
                    if let Some((cb, user)) = cb {
                        cb(this as *mut crate::ffi::types::quiche_ev_server, 0, user);
                    }
                }
            }
            if (*this).reentry.should_stop() {
                break;
            }
        }
        if n == 0 { Dispatched::Nothing } else { Dispatched::Some }
    }

    /// The socket has room again: flush the connections that were blocked.
    unsafe fn on_writable(this: *mut Self) {
        let s = &*this;
        s.lp.io_stop(Self::ptr(addr_of!((*this).write_watcher)));
        let st = Self::state(this);
        for id in std::mem::take(&mut st.blocked) {
            if let Some(e) = st.table.get(id) {
                Driver::state(addr_of!((*e.as_ptr()).drv)).unblock();
                Self::touch(st, id);
            }
        }
        Self::step(this);
    }

    /// `timeout_cb` for one connection.
    unsafe fn on_timeout(this: *mut Self, e: *const ServerConn<P>) {
        Driver::state(addr_of!((*e).drv)).on_timeout();
        Self::touch(Self::state(this), (*e).id);
        Self::step(this);
    }

    /// Every connection gets serviced on the next step (a shutdown phase
    /// changed what each must do).
    fn touch_all(st: &mut ServerState<P>) {
        for id in st.table.ids() {
            Self::touch(st, id);
        }
    }

    fn touch(st: &mut ServerState<P>, id: ConnId) {
        if let Some(e) = st.table.get(id) {
            // SAFETY: entries in the table are live.
            let drv = unsafe { Driver::state(addr_of!((*e.as_ptr()).drv)) };
            if !drv.touched {
                drv.touched = true;
                st.touched.push(id);
            }
        }
    }

    /// The host changed connection `conn` (wrote to a stream, closed it)
    /// from outside our callbacks, or from inside them: it is flushed
    /// before the loop sleeps again.
    ///
    /// # Safety
    /// `conn` is a live connection of a live server; no borrow of the
    /// server's state is alive.
    pub unsafe fn conn_changed(conn: *const ServerConn<P>) {
        let this = (*conn).server;
        Self::touch(Self::state(this), (*conn).id);
        if !(*this).reentry.inside() {
            (*this).lp.timer_arm(Self::ptr(addr_of!((*this).kick_timer)), 0.0);
        }
    }

    /// The server-wide application state, for the host's calls.
    ///
    /// # Safety
    /// As for [`Server::state`].
    pub unsafe fn app_shared<'a>(this: *const Self) -> &'a mut <P::ServerApp as ServerApp<P>>::Shared {
        &mut Self::state(this).app
    }

    /// `quiche_ev_server_shutdown`: refuse new connections from now on
    /// (even if the loop runs again), tell every connection (HTTP/3
    /// GOAWAY), close those with nothing in flight and the rest as their
    /// last response ends, or all of them after `drain`; the host's
    /// stopped callback runs once every connection is gone. A second call
    /// with a zero drain closes everything at once.
    ///
    /// # Safety
    /// `this` is the live root; no borrow of its state is alive.
    pub unsafe fn shutdown(this: *mut Self, drain: Duration) {
        if (*this).reentry.failed() {
            return;
        }
        let st = Self::state(this);
        match st.stopping {
            Stopping::No => {
                log_info!("shutting down: {} connection(s), drain {:.3} s", st.table.len(), drain.as_secs_f64());
            }
            Stopping::Grace | Stopping::Draining if drain.is_zero() => {}
            _ => return,
        }
        Self::touch_all(st);
        let first = if drain.is_zero() {
            st.stopping = Stopping::Closing;
            Duration::from_secs_f64(CLOSE_LINGER_SECS)
        } else {
            st.stopping = Stopping::Grace;
            st.drain_until = Some(Instant::now() + drain);
            drain.min(SHUTDOWN_GRACE)
        };
        (*this).lp.timer_arm(Self::ptr(addr_of!((*this).stop_timer)), first.as_secs_f64());
        if !(*this).reentry.inside() {
            Self::callback(this, || Self::step(this));
        }
    }

    /// The drain time is over: close what is left; after the linger, drop
    /// what still has not finished closing.
    unsafe fn on_stop_timer(this: *mut Self) {
        let st = Self::state(this);
        match st.stopping {
            Stopping::Grace => {
                st.stopping = Stopping::Draining;
                Self::touch_all(st);
                let left = st.drain_until.map_or(Duration::ZERO, |t| t.saturating_duration_since(Instant::now()));
                (*this).lp.timer_arm(Self::ptr(addr_of!((*this).stop_timer)), left.as_secs_f64());
            }
            Stopping::Draining => {
                st.stopping = Stopping::Closing;
                Self::touch_all(st);
                (*this).lp.timer_arm(Self::ptr(addr_of!((*this).stop_timer)), CLOSE_LINGER_SECS);
            }
            Stopping::Closing => {
                let now = Instant::now();
                let since = *st.closing_since.get_or_insert(now);
                let mut wait = Duration::ZERO;
                for id in st.table.ids() {
                    if let Some(e) = st.table.get(id) {
                        // SAFETY: entries in the table are live.
                        let drv = Driver::state(addr_of!((*e.as_ptr()).drv));
                        if !drv.blocked {
                            if let Some(t) = drv.conn.timeout() {
                                wait = wait.max(t);
                            }
                        }
                    }
                }
                if !wait.is_zero() && now + wait <= since + CLOSING_PERIOD_CAP {
                    // Timers still pending (a closing period): let quiche end them.
                    (*this).lp.timer_arm(Self::ptr(addr_of!((*this).stop_timer)),
                                         (wait + Duration::from_millis(5)).as_secs_f64());
                } else {
                    for id in st.table.ids() {
                        log_debug!("connection still closing at the end of the linger: dropped");
                        Self::remove(this, st, id);
                    }
                }
            }
            _ => {}
        }
        Self::step(this);
    }

    unsafe fn check_stopped(this: *mut Self) {
        let st = Self::state(this);
        if matches!(st.stopping, Stopping::Grace | Stopping::Draining | Stopping::Closing) && st.table.is_empty() {
            st.stopping = Stopping::Stopped;
            (*this).lp.timer_stop(Self::ptr(addr_of!((*this).stop_timer)));
            log_info!("shutdown complete");
            Self::defer(st, Deferred::Stopped);
            if Self::dispatch(this) == Dispatched::Capped {
                (*this).lp.timer_arm(Self::ptr(addr_of!((*this).kick_timer)), 0.0);
            }
        }
    }

    /// Whether the shutdown finished.
    ///
    /// # Safety
    /// As for [`Server::state`].
    pub unsafe fn is_stopped(this: *const Self) -> bool {
        Self::state(this).stopping == Stopping::Stopped
    }

    pub fn conn_count(st: &ServerState<P>) -> usize {
        st.table.len()
    }

    /// The connections' CIDs (for tests: which CIDs lead where).
    pub fn cids_of(st: &ServerState<P>, id: ConnId) -> Vec<Cid> {
        st.table.cids(id).to_vec()
    }
}

impl<P: Platform> ServerState<P> {
    pub fn set_token_lifetime(&mut self, d: Duration) {
        self.tokens.set_lifetime(d);
        self.table.set_tomb_life(d.max(DEFAULT_LIFETIME) + Duration::from_secs(1));
    }

    /// The key stateless-reset tokens are derived from.
    pub fn set_reset_key(&mut self, key: [u8; 32]) {
        self.reset_key = key;
    }

    pub fn config(&self) -> *mut P::Config {
        self.config
    }

    pub fn fd(&self) -> RawFd {
        self.fd
    }

    pub fn local(&self) -> SocketAddr {
        self.local
    }

    pub fn conn_count(&self) -> usize {
        self.table.len()
    }

    pub fn conn_ids(&self) -> Vec<ConnId> {
        self.table.ids()
    }

    /// The connection numbered `id` (null when there is none).
    pub fn conn_ptr(&self, id: ConnId) -> *const ServerConn<P> {
        self.table.get(id).map_or(std::ptr::null(), |p| p.as_ptr() as *const ServerConn<P>)
    }
}

impl<P: Platform> ServerConn<P> {
    /// The connection's driver state (for the host's calls).
    ///
    /// # Safety
    /// As for [`Driver::state`].
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn conn<'a>(this: *const Self) -> &'a mut P::Conn {
        &mut Driver::state(addr_of!((*this).drv)).conn
    }

    /// # Safety
    /// As for [`Driver::state`], for the application state.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn app<'a>(this: *const Self) -> &'a mut P::ServerApp {
        &mut *UnsafeCell::raw_get(addr_of!((*this).app))
    }

    /// The server this connection belongs to.
    ///
    /// # Safety
    /// `this` is live.
    pub unsafe fn server(this: *const Self) -> *const Server<P> {
        (*this).server
    }
}

/// Upstream's closing line: `connection closed, recv=.. sent=.. lost=..
/// rtt=..ns` plus ` cwnd=..` on the server.
pub fn closed_line(s: &ConnStats, with_cwnd: bool) -> String {
    let mut line = format!("connection closed, recv={} sent={} lost={} rtt={}ns", s.recv, s.sent, s.lost,
                           s.rtt_ns);
    if with_cwnd {
        line.push_str(&format!(" cwnd={}", s.cwnd));
    }
    line
}

/// The socket became writable while connections were blocked.
unsafe extern "C" fn write_cb<P: Platform>(_lp: *mut ev_loop, w: *mut ev_io, _revents: c_int) {
    let this = (*w).data as *mut Server<P>;
    Server::callback(this, || Server::on_writable(this));
}

unsafe extern "C" fn stop_cb<P: Platform>(_lp: *mut ev_loop, w: *mut ev_timer, _revents: c_int) {
    let this = (*w).data as *mut Server<P>;
    Server::callback(this, || Server::on_stop_timer(this));
}

unsafe extern "C" fn kick_cb<P: Platform>(_lp: *mut ev_loop, w: *mut ev_timer, _revents: c_int) {
    let this = (*w).data as *mut Server<P>;
    (*this).lp.timer_stop(w);
    Server::callback(this, || {
        let st = Server::state(this);
        for id in std::mem::take(&mut st.retry_soon) {
            Server::touch(st, id);
        }
        Server::step(this)
    });
}

/// `timeout_cb`: a connection's timer expired.
unsafe extern "C" fn timeout_cb<P: Platform>(_lp: *mut ev_loop, w: *mut ev_timer, _revents: c_int) {
    let e = (*w).data as *const ServerConn<P>;
    let this = (*e).server as *mut Server<P>;
    Server::callback(this, || Server::on_timeout(this, e));
}
