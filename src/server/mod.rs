//! The server side of upstream's `server.c` / `http3-server.c`, as the
//! role of a [`Handle`]: the connection table and what each datagram
//! does (`routing`: `recv_cb`'s dispatch, `create_conn`, version
//! negotiation, stateless retry, refusals, stateless resets), the service
//! of each connection (`service`: application input, CIDs, `flush_egress`,
//! removal) and the graceful shutdown (`shutdown`).
//!
//! # Ownership
//!
//! The handle's invariant (see `handle`) holds; in addition every
//! connection ([`ServerConn`]) is a raw box owned by the table; its timer's
//! `data` is that raw pointer, and it points back to the server's root. It
//! is freed only by the dispatch loop, after its closed event reached the
//! host, and after its timer was stopped (or when the server is freed).

mod routing;
mod service;
mod shutdown;

use std::cell::{Cell, UnsafeCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::ptr::{addr_of, NonNull};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libc::{c_int, c_void};
use libev_sys::{ev_loop, ev_timer};

use crate::driver::Driver;
use crate::egress::Scratch;
use crate::evloop::EvLoop;
use crate::handle::{Handle, Kind, Role};
use crate::hooks::ServerApp;
use crate::observe::Observe;
use crate::platform::Platform;
use crate::stateless::RateLimiter;
use crate::table::{Cid, ConnId, Table};
use crate::cid::CidSource;
use crate::secrets::{KeyPair, Secrets, SharedSecrets};
use crate::token::{TokenPolicy, DEFAULT_LIFETIME};
use crate::transport::ConnStats;

pub use shutdown::Stopping;

/// Default bound on live connections.
pub const DEFAULT_MAX_CONNS: usize = 10_000;

/// Stateless answers (resets, refusals) per second, and their burst.
const STATELESS_PER_SEC: u32 = 1000;
const STATELESS_BURST: u32 = 100;

/// How soon work waiting for the disk is tried again.
const RETRY_SOON_SECS: f64 = 0.001;

/// A server: the machinery of every handle around the server's role.
pub type Server<P, A> = Handle<P, ServerCore<P, A>>;

/// What the server did with the datagrams it could not give to a
/// connection, and how many connections it made (the C API copies these
/// into `quiche_ev_counters`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub accepted: u64,
    pub closed: u64,
    pub refused: u64,
    pub retries: u64,
    pub invalid_tokens: u64,
    pub version_negotiations: u64,
    pub stateless_resets: u64,
    pub dropped_malformed: u64,
    pub dropped_unknown: u64,
    pub dropped_short: u64,
    pub dropped_late: u64,
    pub dropped_rate_limited: u64,
    /// Short-header datagrams for a connection of another live worker of
    /// the group (the kernel's steering missed: a GRO batch, a socket
    /// leaving the group): dropped, never reset.
    pub dropped_misrouted: u64,
}

/// What the host set, beyond the quiche config.
pub struct Settings {
    pub max_conns: usize,
    pub retry: bool,
    pub gso: bool,
}

/// One connection: its driver, its application state, and the way back
/// to the server (a raw pointer derived from the server's root).
pub struct ServerConn<P: Platform, A: ServerApp<P>> {
    drv: Driver<P>,
    server: *const Server<P, A>,
    id: ConnId,
    app: UnsafeCell<A>,
    flags: Cell<ConnFlags>,
}

#[derive(Clone, Copy, Default)]
struct ConnFlags {
    established: bool,
    closing: bool,
    shutdown_told: bool,
    shutdown_final: bool,
    /// On the server's list of connections waiting for the socket.
    blocked_listed: bool,
    /// On the list of connections to service again soon (disk).
    retry_listed: bool,
}

/// Work the dispatch loop does after the host heard everything before it.
pub enum Deferred<P: Platform, A: ServerApp<P>> {
    App(A::Event),
    /// Free a connection whose closed event has been delivered.
    Free(NonNull<ServerConn<P, A>>),
}

pub struct ServerState<P: Platform, A: ServerApp<P>> {
    fd: RawFd,
    local: SocketAddr,
    /// Borrowed from C for the server's life (see the C API).
    config: *mut P::Config,
    table: Table<ServerConn<P, A>>,
    touched: Vec<ConnId>,
    blocked: Vec<ConnId>,
    /// Connections whose application waits for the disk: serviced again
    /// after `RETRY_SOON_SECS`.
    retry_soon: Vec<ConnId>,
    tokens: TokenPolicy,
    /// Token and reset keys: the server's own, or its group's.
    secrets: SharedSecrets,
    /// Where every CID the server issues comes from.
    cids: CidSource,
    /// The server is one worker of a group (see `workers`).
    peers: Option<Peers>,
    stateless_limit: RateLimiter,
    pub settings: Settings,
    pub observe: Observe,
    pub app: A::Shared,
    pub counters: Counters,
    out: Scratch,
    /// Stateless answers made while a read batch is in progress, sent
    /// when it is over (the socket is busy reading then).
    stateless_out: Vec<routing::StatelessOut>,
    stopping: Stopping,
    /// When a shutdown's drain time ends.
    drain_until: Option<Instant>,
    /// When the first close linger ended (the closing-period cap counts from it).
    closing_since: Option<Instant>,
    deferred: VecDeque<Deferred<P, A>>,
}

/// The server's role: its state, and the one timer it owns besides the
/// connections' (the shutdown's drain deadline, then close linger).
pub struct ServerCore<P: Platform, A: ServerApp<P>> {
    stop_timer: UnsafeCell<ev_timer>,
    state: UnsafeCell<ServerState<P, A>>,
}

impl<P: Platform, A: ServerApp<P>> ServerCore<P, A> {
    /// Makes a server on the bound socket `fd` (address `local`) and
    /// returns its raw root.
    ///
    /// # Safety
    /// `config` must stay valid, and unused elsewhere while the loop runs,
    /// until the server is destroyed; `lp` outlives it.
    pub unsafe fn create(lp: P::Loop, io: P::Io, fd: RawFd, local: SocketAddr, config: *mut P::Config,
                         app: A::Shared) -> *mut Server<P, A> {
        let core = ServerCore {
            stop_timer: UnsafeCell::new(ev_timer::zeroed()),
            state: UnsafeCell::new(ServerState {
                fd, local, config,
                table: Table::new(DEFAULT_LIFETIME + Duration::from_secs(1)),
                touched: Vec::new(),
                blocked: Vec::new(),
                retry_soon: Vec::new(),
                tokens: TokenPolicy::new(DEFAULT_LIFETIME),
                secrets: SharedSecrets::new(Secrets::random()),
                cids: CidSource::default(),
                peers: None,
                stateless_limit: RateLimiter::new(STATELESS_PER_SEC, STATELESS_BURST),
                settings: Settings { max_conns: DEFAULT_MAX_CONNS, retry: true, gso: true },
                observe: Observe::default(),
                app,
                counters: Counters::default(),
                out: Scratch::default(),
                stateless_out: Vec::new(),
                stopping: Stopping::No,
                drain_until: None,
                closing_since: None,
                deferred: VecDeque::new(),
            }),
        };
        Handle::create(lp, io, core, |h| {
            Handle::lp(h).timer_init(Self::stop_timer(h), shutdown::stop_cb::<P, A>, h as *mut c_void);
        })
    }

    /// The state, for one step.
    ///
    /// # Safety
    /// `h` is the live root; no other reference to the state exists while
    /// the returned one is used.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn state<'a>(h: *const Server<P, A>) -> &'a mut ServerState<P, A> {
        &mut *UnsafeCell::raw_get(addr_of!((*Handle::role(h)).state))
    }

    fn stop_timer(h: *const Server<P, A>) -> *mut ev_timer {
        // SAFETY: a pointer into the live handle's role, never turned into
        // a reference (libev writes the timer).
        unsafe { UnsafeCell::raw_get(addr_of!((*Handle::role(h)).stop_timer)) }
    }

    /// The server-wide application state, for the host's calls.
    ///
    /// # Safety
    /// As for [`ServerCore::state`].
    pub unsafe fn app_shared<'a>(h: *const Server<P, A>) -> &'a mut A::Shared {
        &mut Self::state(h).app
    }

    /// The connections' CIDs (for tests: which CIDs lead where).
    ///
    /// # Safety
    /// As for [`ServerCore::state`].
    pub unsafe fn cids_of(h: *const Server<P, A>, id: ConnId) -> Vec<Cid> {
        Self::state(h).table.cids(id).to_vec()
    }

    /// Queues `d` after every application event queued so far.
    fn defer(st: &mut ServerState<P, A>, d: Deferred<P, A>) {
        Self::take_app_events(st);
        st.deferred.push_back(d);
    }

    fn take_app_events(st: &mut ServerState<P, A>) {
        while let Some(ev) = A::next_event(&mut st.app) {
            st.deferred.push_back(Deferred::App(ev));
        }
    }
}

// SAFETY: every function below borrows the state for its own duration
// only, and only `deliver` calls the host (through the application).
unsafe impl<P: Platform, A: ServerApp<P>> Role<P> for ServerCore<P, A> {
    const KIND: Kind = Kind::Server;
    type Event = Deferred<P, A>;

    unsafe fn on_datagram(h: *const Server<P, A>, pkt: &mut [u8], from: SocketAddr, to: SocketAddr) {
        Self::handle_datagram(h, pkt, from, to);
    }

    unsafe fn after_batch(h: *const Server<P, A>) {
        Self::send_stateless_out(h);
    }

    unsafe fn service(h: *const Server<P, A>) {
        Self::service_touched(h);
        Self::check_stopped(h);
    }

    unsafe fn next_event(h: *const Server<P, A>) -> Option<Deferred<P, A>> {
        let st = Self::state(h);
        st.deferred.pop_front().or_else(|| A::next_event(&mut st.app).map(Deferred::App))
    }

    unsafe fn deliver(h: *const Server<P, A>, ev: Deferred<P, A>) {
        match ev {
            Deferred::App(ev) => A::deliver(ev, h.cast()),
            Deferred::Free(e) => drop(Box::from_raw(e.as_ptr())),
        }
    }

    unsafe fn next_kick(h: *const Server<P, A>) -> Option<f64> {
        let st = Self::state(h);
        Self::take_app_events(st);
        if !st.touched.is_empty() || !st.deferred.is_empty() {
            Some(0.0)
        } else if !st.retry_soon.is_empty() {
            Some(RETRY_SOON_SECS)
        } else {
            None
        }
    }

    unsafe fn on_writable(h: *const Server<P, A>) {
        let st = Self::state(h);
        for id in Self::take_listed(st, true) {
            if let Some(e) = st.table.get(id) {
                Driver::state(addr_of!((*e.as_ptr()).drv)).unblock();
                Self::touch(st, id);
            }
        }
    }

    unsafe fn on_kick(h: *const Server<P, A>) {
        let st = Self::state(h);
        for id in Self::take_listed(st, false) {
            Self::touch(st, id);
        }
    }

    unsafe fn is_over(h: *const Server<P, A>) -> bool {
        let st = Self::state(h);
        Self::take_app_events(st);
        st.stopping == Stopping::Stopped && st.deferred.is_empty()
    }

    unsafe fn stop_timers(h: *const Server<P, A>) {
        let lp = Handle::lp(h);
        lp.timer_stop(Self::stop_timer(h));
        let st = Self::state(h);
        for id in st.table.ids() {
            if let Some(e) = st.table.get(id) {
                Driver::stop(addr_of!((*e.as_ptr()).drv), lp);
            }
        }
    }

    unsafe fn failure_event(h: *const Server<P, A>) -> Option<Deferred<P, A>> {
        let st = Self::state(h);
        // What was queued for the host is dropped (its requests freed);
        // connections still waiting to be freed stay queued for release.
        Self::take_app_events(st);
        st.deferred.retain(|d| matches!(d, Deferred::Free(_)));
        st.stopping = Stopping::Stopped;
        A::on_stopped(&mut st.app, true);
        A::next_event(&mut st.app).map(Deferred::App)
    }

    unsafe fn release(h: *const Server<P, A>) {
        let lp = Handle::lp(h);
        lp.timer_stop(Self::stop_timer(h));
        let st = Self::state(h);
        for e in st.table.drain() {
            Driver::stop(addr_of!((*e.as_ptr()).drv), lp);
            drop(Box::from_raw(e.as_ptr()));
        }
        Self::take_app_events(st);
        for d in st.deferred.drain(..) {
            if let Deferred::Free(e) = d {
                drop(Box::from_raw(e.as_ptr()));
            }
        }
    }
}

impl<P: Platform, A: ServerApp<P>> ServerState<P, A> {
    pub fn set_token_lifetime(&mut self, d: Duration) {
        // (the table remembers closed CIDs at least as long)
        self.tokens.set_lifetime(d);
        self.table.set_tomb_life(d.max(DEFAULT_LIFETIME) + Duration::from_secs(1));
    }

    /// The keys stateless-reset tokens are derived from (the previous
    /// one, during a rotation, still makes resets).
    pub fn set_reset_keys(&self, keys: KeyPair) {
        self.secrets.set_reset(keys);
    }

    /// The keys Retry tokens are minted (current) and accepted (both)
    /// under.
    pub fn set_token_keys(&self, keys: KeyPair) {
        self.secrets.set_token(keys);
    }

    /// From now on the server's keys are `secrets`, shared with whoever
    /// else holds them (the workers of a group).
    pub fn share_secrets(&mut self, secrets: SharedSecrets) {
        self.secrets = secrets;
    }

    pub fn secrets(&self) -> &SharedSecrets {
        &self.secrets
    }

    /// Where the CIDs issued from now on come from. Connections already
    /// up keep the CIDs they have (and are still found by them).
    pub fn set_cid_source(&mut self, cids: CidSource) {
        log_info!("connection IDs: {cids}");
        self.cids = cids;
    }

    pub fn cid_source(&self) -> &CidSource {
        &self.cids
    }

    /// The server is worker `peers.index` of a group.
    pub fn set_peers(&mut self, peers: Peers) {
        self.peers = Some(peers);
    }

    /// The next CID to issue, or `None` (logged, once per call) when the
    /// layout has none left.
    pub fn next_cid(&mut self) -> Option<Cid> {
        match self.cids.next() {
            Ok(cid) => {
                log_debug!("issued connection ID {}", Hex(&cid));
                Some(cid)
            }
            Err(e) => {
                log_error!("cannot issue a connection ID: {e}");
                None
            }
        }
    }

    /// The stateless-reset token of our CID `cid` (current reset key).
    pub fn reset_token(&self, cid: &[u8]) -> u128 {
        crate::stateless::reset_token(&self.secrets.get().reset.current, cid)
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
    pub fn conn_ptr(&self, id: ConnId) -> *const ServerConn<P, A> {
        self.table.get(id).map_or(std::ptr::null(), |p| p.as_ptr() as *const ServerConn<P, A>)
    }

    pub fn is_stopped(&self) -> bool {
        self.stopping == Stopping::Stopped
    }
}

impl<P: Platform, A: ServerApp<P>> ServerConn<P, A> {
    /// The connection (for the host's calls).
    ///
    /// # Safety
    /// As for [`Driver::state`].
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn conn<'a>(this: *const Self) -> &'a mut P::Conn {
        &mut Driver::state(addr_of!((*this).drv)).conn
    }

    /// The connection as the C API hands it out (see [`Driver::conn_ptr`]).
    ///
    /// # Safety
    /// `this` is live.
    pub unsafe fn conn_ptr(this: *const Self) -> *mut P::Conn {
        Driver::conn_ptr(addr_of!((*this).drv))
    }

    /// How the connection ended (or is ending), as far as known now.
    ///
    /// # Safety
    /// As for [`Driver::state`].
    pub unsafe fn close_info(this: *const Self) -> crate::transport::CloseInfo {
        Driver::state(addr_of!((*this).drv)).close_info()
    }

    /// # Safety
    /// As for [`Driver::state`], for the application state.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn app<'a>(this: *const Self) -> &'a mut A {
        &mut *UnsafeCell::raw_get(addr_of!((*this).app))
    }

    /// The server this connection belongs to.
    ///
    /// # Safety
    /// `this` is live.
    pub unsafe fn server(this: *const Self) -> *const Server<P, A> {
        (*this).server
    }
}

/// The group a worker's server belongs to: its own index, and which
/// workers are alive (bit i: worker i), kept by the group.
#[derive(Clone, Debug)]
pub struct Peers {
    pub index: u8,
    pub live: Arc<AtomicU32>,
}

impl Peers {
    /// Whether `worker` is another worker of the group, alive now: a
    /// connection ID naming it is its to answer, not ours to reset.
    pub fn is_other_live(&self, worker: u8) -> bool {
        worker != self.index && worker < 32 && self.live.load(Ordering::Acquire) & (1 << worker) != 0
    }
}

/// Bytes in hex, for the log.
pub struct Hex<'a>(pub &'a [u8]);

impl std::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
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

/// `timeout_cb`: a connection's timer expired.
unsafe extern "C" fn timeout_cb<P: Platform, A: ServerApp<P>>(_lp: *mut ev_loop, w: *mut ev_timer, _revents: c_int) {
    let e = (*w).data as *const ServerConn<P, A>;
    let h = (*e).server as *mut Server<P, A>;
    Handle::callback(h, || {
        Driver::state(addr_of!((*e).drv)).on_timeout();
        ServerCore::touch(ServerCore::state(h), (*e).id);
        Handle::step(h);
    });
}
