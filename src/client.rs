//! The client side of upstream's `client.c` / `http3-client.c`, as the
//! role of a [`Handle`]: one connection on one [`Driver`], its
//! `recv_cb` and `timeout_cb`, a connect deadline, migration, and a state
//! the host can ask for. The host hears that the connection is over
//! through an event; the client never stops the host's loop.
//!
//! Ownership follows the handle's invariant (see `handle`); the driver's
//! timer points back to the handle's root.

use std::cell::UnsafeCell;
use std::ffi::CString;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::ptr::addr_of;
use std::time::{Duration, Instant};

use libc::{c_int, c_void};
use libev_sys::{ev_loop, ev_timer};

use crate::cid::{gen_cid, random_bytes};
use crate::dgram::DatagramIo;
use crate::driver::Driver;
use crate::egress::{Flushed, Scratch};
use crate::evloop::EvLoop;
use crate::handle::{Handle, Kind, Role};
use crate::hooks::ClientApp;
use crate::observe::Observe;
use crate::platform::{NewConn, Platform};
use crate::server::closed_line;
use crate::transport::{CloseInfo, Transport};

/// How long a client waits for its handshake by default (msquic's default
/// handshake idle timeout): a server that never answers fails the client
/// then, whatever the idle timeout (quiche's default, 0, has none).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client: the machinery of every handle around the client's role.
pub type Client<P, A> = Handle<P, ClientCore<P, A>>;

/// Where the connection is, as `quiche_ev_client_state` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Phase {
    Connecting = 0,
    Established = 1,
    Closing = 2,
    /// Closed without an error (ours or the peer's).
    ClosedOk = 3,
    /// Closed by an error, a timeout, a stateless reset, or an internal
    /// error.
    Failed = 4,
}

pub struct ClientState<P: Platform, A: ClientApp<P>> {
    pub app: A,
    phase: Phase,
    established: bool,
    /// Close on our own once the application has nothing left to do.
    pub close_when_done: bool,
    out: Scratch,
    pub gso: bool,
    local: SocketAddr,
    /// Why the connection failed, in words (for the log and the host).
    failure: Option<String>,
    failure_c: Option<CString>,
    /// The host was told the connection is over.
    over_told: bool,
    /// Key log and qlog settings.
    observe: Observe,
    /// Where the TLS session is loaded from and saved to.
    session_file: Option<std::path::PathBuf>,
    /// A local address to move to as soon as quiche can (migration).
    migrate_to: Option<SocketAddr>,
    /// A client's own CIDs need reset tokens too (RFC 9000 §10.3); it
    /// never sends resets, so its key is random and private.
    reset_key: [u8; 32],
    created: Instant,
    /// When an unfinished handshake fails the client.
    connect_deadline: Option<Instant>,
    _platform: std::marker::PhantomData<P>,
}

/// The client's role: the connection's driver and the state around it.
pub struct ClientCore<P: Platform, A: ClientApp<P>> {
    drv: Driver<P>,
    state: UnsafeCell<ClientState<P, A>>,
}

impl<P: Platform, A: ClientApp<P>> ClientCore<P, A> {
    /// Creates the connection (random 16-byte SCID, like upstream) and
    /// returns the client's raw root. The first flight goes out as soon as
    /// the loop runs (by then the host has set up its watchers).
    ///
    /// # Safety
    /// `config` must be valid for the call; `lp` outlives the client.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn create(lp: P::Loop, io: P::Io, local: SocketAddr, peer: SocketAddr, host: Option<&str>,
                         config: &mut P::Config, observe: Observe, app: A) -> Result<*mut Client<P, A>, String> {
        let scid = gen_cid();
        let new = NewConn { scid: &scid, odcid: None, local, peer, reset_token: None, host, observe: &observe };
        let conn = P::connect(config, &new).map_err(|e| format!("failed to create connection: {e:?}"))?;
        let mut reset_key = [0u8; 32];
        random_bytes(&mut reset_key);
        let now = lp.now();
        let core = ClientCore {
            drv: Driver::new(conn),
            state: UnsafeCell::new(ClientState {
                app, phase: Phase::Connecting, established: false, close_when_done: false,
                out: Scratch::default(), gso: true, local, failure: None, failure_c: None, over_told: false,
                observe, session_file: None, migrate_to: None, reset_key, created: now,
                connect_deadline: Some(now + DEFAULT_CONNECT_TIMEOUT),
                _platform: std::marker::PhantomData,
            }),
        };
        Ok(Handle::create(lp, io, core, |h| {
            let lp = Handle::lp(h);
            Driver::init_timer(Self::drv(h), lp, timeout_cb::<P, A>, h as *mut c_void);
            lp.timer_arm(Driver::timer(Self::drv(h)), 0.0);
        }))
    }

    fn drv(h: *const Client<P, A>) -> *const Driver<P> {
        // SAFETY: a pointer into the live handle's role.
        unsafe { addr_of!((*Handle::role(h)).drv) }
    }

    /// # Safety
    /// `h` is the live root; no other reference to the state exists while
    /// the returned one is used.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn state<'a>(h: *const Client<P, A>) -> &'a mut ClientState<P, A> {
        &mut *UnsafeCell::raw_get(addr_of!((*Handle::role(h)).state))
    }

    /// # Safety
    /// As for [`ClientCore::state`], for the connection.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn conn<'a>(h: *const Client<P, A>) -> &'a mut P::Conn {
        &mut Driver::state(Self::drv(h)).conn
    }

    /// The connection as the C API hands it out (see [`Driver::conn_ptr`]).
    ///
    /// # Safety
    /// `h` is live.
    pub unsafe fn conn_ptr(h: *const Client<P, A>) -> *mut P::Conn {
        Driver::conn_ptr(Self::drv(h))
    }

    /// How the connection ended (or is ending), as far as known now.
    ///
    /// # Safety
    /// As for [`ClientCore::state`].
    pub unsafe fn close_info(h: *const Client<P, A>) -> CloseInfo {
        Driver::state(Self::drv(h)).close_info()
    }

    /// The connection's step: establishment, application input, CID
    /// upkeep, migration, the connect deadline, `flush_egress`, and the
    /// end.
    unsafe fn service_conn(h: *const Client<P, A>) {
        let st = Self::state(h);
        if st.is_over() {
            return;
        }
        let drv = Driver::state(Self::drv(h));
        if !drv.conn.is_closed() {
            if drv.conn.is_established() && !st.established {
                st.established = true;
                if st.phase == Phase::Connecting {
                    st.phase = Phase::Established;
                }
                log_info!("connection established: {}", String::from_utf8_lossy(drv.conn.application_proto()));
                st.app.on_established(&mut drv.conn);
            }
            if drv.conn.is_established() || drv.conn.is_in_early_data() {
                st.app.on_input(&mut drv.conn);
            }
            drv.path_events();
            if st.established {
                if let Err(e) = Self::try_migrate(st, drv) {
                    log_warn!("{e}");
                }
            }
            let key = st.reset_key;
            drv.manage_scids(|| {
                let cid = crate::table::Cid::from_slice(&gen_cid())?;
                Some((cid, crate::stateless::reset_token(&key, &cid)))
            }, |_| {}, |_| {});
            if st.close_when_done && st.phase == Phase::Established && st.app.is_done() {
                st.phase = Phase::Closing;
                let _ = drv.conn.close(true, 0, b"");
            }
        }
        let now = Handle::lp(h).now();
        let late = !st.established && st.connect_deadline.is_some_and(|d| now >= d);
        if late && !drv.conn.is_closed() {
            // Say goodbye once (if anyone listens), then fail at once: the
            // closing period would only make the host wait longer.
            let _ = drv.conn.close(false, 0, b"handshake timeout");
        }
        let flushed = Driver::flush_egress(Self::drv(h), drv, Handle::lp(h), Handle::io(h), &mut st.out, st.gso);
        if flushed == Flushed::Blocked {
            // Watch the socket that refused (after a migration it is not
            // the first one).
            Handle::want_writable(h, Handle::io(h).fd_of(st.local));
        }
        if late {
            let waited = st.connect_deadline.map_or(Duration::ZERO, |d| d - st.created);
            let why = format!("no answer from the server: handshake not complete after {:.1} s (connect timeout)",
                              waited.as_secs_f64());
            Self::finish(h, Some(why));
        } else if drv.conn.is_closed() {
            Self::finish(h, None);
        } else if let (false, Some(d)) = (st.established, st.connect_deadline) {
            // Wake up at the deadline at the latest.
            let wait = d.saturating_duration_since(now);
            let next = drv.conn.timeout().map_or(wait, |t| t.min(wait));
            Handle::lp(h).timer_arm(Driver::timer(Self::drv(h)), next.as_secs_f64());
        }
    }

    /// The connection is over: closing line, verdict, the application
    /// learns what arrived.
    unsafe fn finish(h: *const Client<P, A>, failure: Option<String>) {
        let st = Self::state(h);
        let drv = Driver::state(Self::drv(h));
        let stats = drv.conn.conn_stats();
        let info = drv.close_info();
        log_info!("{}", closed_line(&stats, false));
        st.failure = failure.or_else(|| failure_of(&info, st.established));
        st.failure_c = st.failure.as_deref().map(|f| CString::new(f.replace('\0', "")).expect("no NUL"));
        if let Some(path) = &st.session_file {
            if let Some(s) = drv.conn.session() {
                if let Err(e) = std::fs::write(path, s) {
                    log_warn!("cannot save the session to {}: {e}", path.display());
                }
            }
        }
        st.phase = if st.failure.is_some() { Phase::Failed } else { Phase::ClosedOk };
        if let Some(why) = &st.failure {
            log_error!("error: {why}");
        }
        st.app.on_closed(&mut drv.conn, &stats, &info);
        Driver::stop(Self::drv(h), Handle::lp(h));
    }

    /// The host changed something (a new request, a close): serviced
    /// before the loop sleeps again.
    ///
    /// # Safety
    /// `h` is the live root; no borrow of its state is alive.
    pub unsafe fn changed(h: *const Client<P, A>) {
        if Handle::is_failed(h) || Self::state(h).is_over() {
            return;
        }
        Driver::state(Self::drv(h)).touched = true;
        Handle::changed(h);
    }

    /// Closes the connection (application close with `code`, `reason`).
    ///
    /// # Safety
    /// As for [`ClientCore::changed`].
    pub unsafe fn close(h: *const Client<P, A>, code: u64, reason: &[u8]) {
        let st = Self::state(h);
        if st.is_over() {
            return;
        }
        st.phase = st.phase.max_closing();
        let _ = Self::conn(h).close(true, code, reason);
        Self::changed(h);
    }

    /// Moves the connection to socket `fd` bound to `local` (active
    /// migration): quiche validates the new path and switches to it.
    ///
    /// # Safety
    /// As for [`ClientCore::changed`]; `fd` stays open while the client
    /// lives.
    pub unsafe fn migrate(h: *mut Client<P, A>, fd: RawFd, local: SocketAddr) -> Result<(), String> {
        Handle::io(h).add_socket(fd, local);
        Handle::watch_new_sockets(h);
        let st = Self::state(h);
        st.migrate_to = Some(local);
        let r = Self::try_migrate(st, Driver::state(Self::drv(h)));
        Self::changed(h);
        r
    }

    /// Moves to the pending new local address once quiche can: it needs a
    /// spare connection ID from the peer (which comes shortly after the
    /// handshake) and one of ours for the peer.
    fn try_migrate(st: &mut ClientState<P, A>, drv: &mut crate::driver::DriverState<P>) -> Result<(), String> {
        let Some(local) = st.migrate_to else { return Ok(()) };
        if drv.conn.peer_disabled_migration() {
            st.migrate_to = None;
            return Err("cannot migrate: the server disabled active migration (RFC 9000 §9)".into());
        }
        match drv.conn.migrate_source(local) {
            Ok(_) => {
                st.migrate_to = None;
                st.local = local;
                log_info!("migrating to {local}");
                Ok(())
            }
            Err(quiche::Error::OutOfIdentifiers) => {
                log_debug!("migration to {local} waits for a spare connection ID");
                Ok(())
            }
            Err(e) => {
                st.migrate_to = None;
                Err(format!("cannot migrate: {e:?}"))
            }
        }
    }

    /// Runs `f` as one of the client's callbacks (panic boundary,
    /// re-entrancy, deferred free) followed by a step, for watchers its
    /// application owns. False when the client is gone.
    ///
    /// # Safety
    /// `h` is the live root.
    pub unsafe fn run_callback(h: *mut Client<P, A>, f: impl FnOnce()) -> bool {
        Handle::callback(h, || {
            f();
            Handle::step(h);
        })
    }

    /// Where the connection is.
    ///
    /// # Safety
    /// `h` is the live root; no borrow of its state is alive.
    pub unsafe fn phase(h: *const Client<P, A>) -> Phase {
        if Handle::is_failed(h) {
            return Phase::Failed;
        }
        Self::state(h).phase
    }

    /// Why the connection failed, NUL-terminated, valid until the client
    /// is freed; null while it has not failed.
    ///
    /// # Safety
    /// As for [`ClientCore::phase`].
    pub unsafe fn failure_cstr(h: *const Client<P, A>) -> *const libc::c_char {
        Self::state(h).failure_c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr())
    }

    /// Loads a saved TLS session from `path` (if it exists) into the
    /// connection, and saves the newest there when the connection ends.
    ///
    /// # Safety
    /// As for [`ClientCore::phase`].
    pub unsafe fn set_session_file(h: *const Client<P, A>, path: &std::path::Path) -> Result<(), String> {
        Self::state(h).session_file = Some(path.to_path_buf());
        match std::fs::read(path) {
            Ok(s) if !s.is_empty() => Self::conn(h).set_session(&s).map_err(|e| format!("unusable session: {e:?}")),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// How long the handshake may take from the client's creation (`None`:
    /// as long as quiche's own timers allow).
    ///
    /// # Safety
    /// As for [`ClientCore::changed`].
    pub unsafe fn set_connect_timeout(h: *const Client<P, A>, timeout: Option<Duration>) {
        let st = Self::state(h);
        st.connect_deadline = timeout.map(|t| st.created + t);
        Self::changed(h);
    }

    /// The local address the connection uses now.
    ///
    /// # Safety
    /// As for [`ClientCore::phase`].
    pub unsafe fn local(h: *const Client<P, A>) -> SocketAddr {
        Self::state(h).local
    }

    /// The key log / qlog settings, with the connection they apply to.
    ///
    /// # Safety
    /// As for [`ClientCore::phase`].
    pub unsafe fn observe<R>(h: *const Client<P, A>, f: impl FnOnce(&mut Observe, &mut P::Conn) -> R) -> R {
        f(&mut Self::state(h).observe, Self::conn(h))
    }
}

// SAFETY: every function below borrows the state for its own duration
// only, and only `deliver` calls the host (through the application).
unsafe impl<P: Platform, A: ClientApp<P>> Role<P> for ClientCore<P, A> {
    const KIND: Kind = Kind::Client;
    type Event = A::Event;

    unsafe fn on_datagram(h: *const Client<P, A>, pkt: &mut [u8], from: SocketAddr, to: SocketAddr) {
        if !Self::state(h).is_over() {
            Driver::state(Self::drv(h)).recv(pkt, from, to);
        }
    }

    unsafe fn service(h: *const Client<P, A>) {
        Self::service_conn(h);
    }

    unsafe fn next_event(h: *const Client<P, A>) -> Option<A::Event> {
        let st = Self::state(h);
        if let Some(ev) = st.app.next_event() {
            return Some(ev);
        }
        if st.is_over() && !st.over_told && !st.app.delivering() {
            st.over_told = true;
            st.app.on_over(st.phase == Phase::Failed);
            return st.app.next_event();
        }
        None
    }

    unsafe fn deliver(h: *const Client<P, A>, ev: A::Event) {
        A::deliver(ev, h.cast());
    }

    unsafe fn next_kick(h: *const Client<P, A>) -> Option<f64> {
        Driver::state(Self::drv(h)).touched.then_some(0.0)
    }

    unsafe fn on_writable(h: *const Client<P, A>) {
        Driver::state(Self::drv(h)).unblock();
    }

    unsafe fn is_over(h: *const Client<P, A>) -> bool {
        let st = Self::state(h);
        st.is_over() && st.over_told
    }

    unsafe fn stop_timers(h: *const Client<P, A>) {
        Driver::stop(Self::drv(h), Handle::lp(h));
    }

    unsafe fn failure_event(h: *const Client<P, A>) -> Option<A::Event> {
        let st = Self::state(h);
        st.phase = Phase::Failed;
        if st.failure.is_none() {
            st.failure = Some("internal error".into());
            st.failure_c = Some(CString::new("internal error").expect("no NUL"));
        }
        while st.app.next_event().is_some() {}
        if st.over_told {
            return None;
        }
        st.over_told = true;
        st.app.on_over(true);
        st.app.next_event()
    }

    unsafe fn release(h: *const Client<P, A>) {
        Driver::stop(Self::drv(h), Handle::lp(h));
    }
}

impl<P: Platform, A: ClientApp<P>> ClientState<P, A> {
    fn is_over(&self) -> bool {
        matches!(self.phase, Phase::ClosedOk | Phase::Failed)
    }
}

impl Phase {
    /// Established or connecting becomes closing; the end states stay.
    fn max_closing(self) -> Phase {
        match self {
            Phase::ClosedOk | Phase::Failed => self,
            _ => Phase::Closing,
        }
    }
}

/// Why a connection that ended with `info` failed, or `None` when it
/// ended cleanly (no error code, or NO_ERROR, from either side).
pub fn failure_of(info: &CloseInfo, established: bool) -> Option<String> {
    if info.stateless_reset {
        return Some("connection reset by the server (stateless reset)".into());
    }
    if info.timed_out {
        let what = if established { "idle timeout" } else { "no answer from the server: idle timeout" };
        return Some(what.into());
    }
    let e = info.error.as_ref()?;
    let clean = e.code == 0 || (e.is_app && e.code == 0x100);
    if clean {
        return None;
    }
    let who = if e.by_peer { "closed by the server" } else { "closed locally" };
    let name = if e.is_app { None } else { transport_error_name(e.code) };
    Some(format!("{who} (error code {:#x}{}, reason \"{}\")", e.code,
                 name.map(|n| format!(" {n}")).unwrap_or_default(), String::from_utf8_lossy(&e.reason)))
}

/// RFC 9000 §20.1 names of the transport errors a peer may close with.
pub fn transport_error_name(code: u64) -> Option<&'static str> {
    Some(match code {
        0x0 => "NO_ERROR",
        0x1 => "INTERNAL_ERROR",
        0x2 => "CONNECTION_REFUSED",
        0x3 => "FLOW_CONTROL_ERROR",
        0x4 => "STREAM_LIMIT_ERROR",
        0x5 => "STREAM_STATE_ERROR",
        0x6 => "FINAL_SIZE_ERROR",
        0x7 => "FRAME_ENCODING_ERROR",
        0x8 => "TRANSPORT_PARAMETER_ERROR",
        0x9 => "CONNECTION_ID_LIMIT_ERROR",
        0xa => "PROTOCOL_VIOLATION",
        0xb => "INVALID_TOKEN",
        0xc => "APPLICATION_ERROR",
        0xd => "CRYPTO_BUFFER_EXCEEDED",
        0xe => "KEY_UPDATE_ERROR",
        0xf => "AEAD_LIMIT_REACHED",
        0x10 => "NO_VIABLE_PATH",
        0x100..=0x1ff => "CRYPTO_ERROR",
        _ => return None,
    })
}


/// `timeout_cb`: the connection's timer (quiche's timers, a paced batch,
/// the connect deadline).
unsafe extern "C" fn timeout_cb<P: Platform, A: ClientApp<P>>(_lp: *mut ev_loop, w: *mut ev_timer, _revents: c_int) {
    let h = (*w).data as *mut Client<P, A>;
    Handle::callback(h, || {
        Driver::state(ClientCore::drv(h)).on_timeout();
        Handle::step(h);
    });
}
