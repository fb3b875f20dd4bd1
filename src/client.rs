//! The client side of upstream's `client.c` / `http3-client.c`: one
//! connection on one [`Driver`], its `recv_cb` and `timeout_cb`, and a
//! state the host can ask for. The host hears that the connection is over
//! through its callback; the client never stops the host's loop.
//!
//! Ownership follows the same invariant as the server (see `server`): the
//! client is `Box::into_raw`'d by [`Client::create`] before any pointer to
//! it reaches libev; libev's watchers sit in `UnsafeCell`s; the state is
//! borrowed for one step at a time, and the host is called only with no
//! borrow alive.

use std::cell::UnsafeCell;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::ptr::addr_of;

use libc::{c_int, c_void};
use libev_sys::{ev_io, ev_loop, ev_timer, EV_WRITE};

use crate::cid::{gen_cid, random_bytes};
use crate::dgram::DatagramIo;
use crate::driver::Driver;
use crate::egress::{Flushed, SCRATCH_LEN};
use crate::evloop::EvLoop;
use crate::hooks::ClientApp;
use crate::observe::Observe;
use crate::platform::{NewConn, Platform};
use crate::reentry::{After, Dispatched, Reentry, MAX_EVENTS_PER_DISPATCH};
use crate::server::closed_line;
use crate::transport::{CloseInfo, ConnStats, Transport};

/// Read batches per `recv_cb` before egress gets its turn.
const MAX_READS_PER_CALLBACK: usize = 64;


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

/// The connection is over: `(client, state, user)`.
pub type ClosedFn = unsafe extern "C" fn(*mut crate::ffi::types::quiche_ev_client, c_int, *mut c_void);
/// The handshake completed: `(client, user)`.
pub type EstablishedFn = unsafe extern "C" fn(*mut crate::ffi::types::quiche_ev_client, *mut c_void);

pub struct ClientState<P: Platform> {
    pub app: P::ClientApp,
    phase: Phase,
    established: bool,
    /// Close on our own once the application has nothing left to do.
    pub close_when_done: bool,
    out: Vec<u8>,
    pub gso: bool,
    local: SocketAddr,
    /// Why the connection failed, in words (for the log and the host).
    failure: Option<String>,
    stats: Option<ConnStats>,
    closed_told: bool,
    pub on_closed: Option<(ClosedFn, *mut c_void)>,
    /// The host's pointer for connection callbacks.
    pub user: *mut c_void,
    /// Key log and qlog settings.
    observe: Observe,
    /// Where the TLS session is loaded from and saved to.
    session_file: Option<std::path::PathBuf>,
    failure_c: Option<std::ffi::CString>,
    /// A local address to move to as soon as quiche can (migration).
    migrate_to: Option<SocketAddr>,
    pub on_established: Option<(EstablishedFn, *mut c_void)>,
    established_told: bool,
    /// A client's own CIDs need reset tokens too (RFC 9000 §10.3); it
    /// never sends resets, so its key is random and private.
    reset_key: [u8; 32],
}

pub struct Client<P: Platform> {
    lp: P::Loop,
    drv: Driver<P>,
    write_watcher: UnsafeCell<ev_io>,
    kick_timer: UnsafeCell<ev_timer>,
    /// Callbacks on the stack, a deferred free, a failure.
    reentry: Reentry,
    io: UnsafeCell<P::Io>,
    state: UnsafeCell<ClientState<P>>,
}

impl<P: Platform> Client<P> {
    /// Creates the connection (random 16-byte SCID, like upstream) and
    /// returns the client's raw root. The first flight goes out as soon as
    /// the loop runs (by then the host has set up its watchers).
    ///
    /// # Safety
    /// `config` must be valid for the call.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn create(lp: P::Loop, io: P::Io, fd: RawFd, local: SocketAddr, peer: SocketAddr,
                         host: Option<&str>, config: &mut P::Config, observe: &Observe, app: P::ClientApp)
                         -> Result<*mut Client<P>, String> {
        let scid = gen_cid();
        let new = NewConn { scid: &scid, odcid: None, local, peer, reset_token: None, host, observe };
        let conn = P::connect(config, &new).map_err(|e| format!("failed to create connection: {e:?}"))?;
        let mut reset_key = [0u8; 32];
        random_bytes(&mut reset_key);
        let client = Box::into_raw(Box::new(Client::<P> {
            lp,
            drv: Driver::new(conn),
            write_watcher: UnsafeCell::new(ev_io::zeroed()),
            kick_timer: UnsafeCell::new(ev_timer::zeroed()),
            reentry: Reentry::default(),
            io: UnsafeCell::new(io),
            state: UnsafeCell::new(ClientState {
                app, phase: Phase::Connecting, established: false, close_when_done: false, out: vec![0; SCRATCH_LEN], gso: true,
                local, failure: None, stats: None, closed_told: false, on_closed: None,
                on_established: None, established_told: false, reset_key, user: std::ptr::null_mut(),
                observe: Observe::default(), session_file: None, failure_c: None, migrate_to: None,
            }),
        }));
        let c = &*client;
        let data = client as *mut c_void;
        Driver::init_timer(addr_of!((*client).drv), &c.lp, timeout_cb::<P>, data);
        c.lp.io_init(UnsafeCell::raw_get(addr_of!((*client).write_watcher)), write_cb::<P>, fd, EV_WRITE, data);
        c.lp.timer_init(UnsafeCell::raw_get(addr_of!((*client).kick_timer)), kick_cb::<P>, data);
        c.lp.timer_arm(Driver::timer(addr_of!((*client).drv)), 0.0);
        Ok(client)
    }

    /// # Safety
    /// `this` is the live root; no other reference to the state exists
    /// while the returned one is used.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn state<'a>(this: *const Self) -> &'a mut ClientState<P> {
        &mut *UnsafeCell::raw_get(addr_of!((*this).state))
    }

    /// # Safety
    /// As for [`Client::state`], for the I/O.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn io<'a>(this: *const Self) -> &'a mut P::Io {
        &mut *UnsafeCell::raw_get(addr_of!((*this).io))
    }

    /// # Safety
    /// As for [`Client::state`], for the connection.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn conn<'a>(this: *const Self) -> &'a mut P::Conn {
        &mut Driver::state(addr_of!((*this).drv)).conn
    }

    /// How the connection ended (or is ending), as far as known now.
    ///
    /// # Safety
    /// `this` is the live root.
    pub unsafe fn close_info(this: *const Self) -> CloseInfo {
        Driver::state(addr_of!((*this).drv)).close_info()
    }

    /// Frees the client now, or when its outermost callback returns.
    ///
    /// # Safety
    /// `this` came from [`Client::create`] and is not used afterwards.
    pub unsafe fn destroy(this: *mut Self) {
        if !(*this).reentry.defer_free() {
            Self::stop_watchers(this);
            drop(Box::from_raw(this));
        }
    }

    unsafe fn stop_watchers(this: *const Self) {
        let c = &*this;
        Driver::stop(addr_of!((*this).drv), &c.lp);
        c.lp.io_stop(UnsafeCell::raw_get(addr_of!((*this).write_watcher)));
        c.lp.timer_stop(UnsafeCell::raw_get(addr_of!((*this).kick_timer)));
    }

    unsafe fn callback(this: *mut Self, f: impl FnOnce()) {
        for after in (*this).reentry.run(f) {
            match after {
                After::Fail => Self::fail(this),
                After::Free => {
                    Self::stop_watchers(this);
                    drop(Box::from_raw(this));
                }
            }
        }
    }

    /// After an internal error: stop, and tell the host (phase Failed).
    unsafe fn fail(this: *mut Self) {
        log_error!("quiche-ev: client stopped after an internal error");
        Self::stop_watchers(this);
        crate::ffi::guard::guard((), || {
            let st = Self::state(this);
            st.phase = Phase::Failed;
            st.failure.get_or_insert_with(|| "internal error".into());
            if let Some((cb, user)) = st.on_closed {
                if !st.closed_told {
                    st.closed_told = true;
                    cb(this as *mut crate::ffi::types::quiche_ev_client, Phase::Failed as c_int, user);
                }
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

    /// `recv_cb` for socket `fd` (the first one, or a migrated one).
    ///
    /// # Safety
    /// `this` is the live root.
    pub unsafe fn recv_cb(this: *mut Self, fd: RawFd) {
        Self::callback(this, || {
            for _ in 0..MAX_READS_PER_CALLBACK {
                let drv = Driver::state(addr_of!((*this).drv));
                let more = Self::io(this).read_batch(fd, &mut |pkt, from, to| {
                    drv.recv(pkt, from, to);
                });
                Self::step(this);
                match more {
                    Ok(true) if !Self::state(this).is_over() => {}
                    Ok(_) => break,
                    Err(e) => {
                        log_warn!("failed to read: {e}");
                        break;
                    }
                }
            }
        });
    }

    unsafe fn step(this: *mut Self) {
        let rounds = (*this).reentry.rounds(|| Self::service(this), || Self::dispatch(this));
        let Some(capped) = rounds else { return };
        if capped || Driver::state(addr_of!((*this).drv)).touched {
            (*this).lp.timer_arm(UnsafeCell::raw_get(addr_of!((*this).kick_timer)), 0.0);
        }
    }

    /// The connection's step: establishment, application input, CID
    /// upkeep, `flush_egress`, and the end.
    unsafe fn service(this: *mut Self) {
        let c = &*this;
        let st = Self::state(this);
        if st.is_over() {
            return;
        }
        let drv = Driver::state(addr_of!((*this).drv));
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
                let cid = gen_cid();
                (cid, crate::stateless::reset_token(&key, &cid))
            }, |_| {}, |_| {});
            if st.close_when_done && st.phase == Phase::Established && st.app.is_done() {
                st.phase = Phase::Closing;
                let _ = drv.conn.close(true, 0, b"");
            }
        }
        let flushed = Driver::flush_egress(addr_of!((*this).drv), drv, &c.lp, Self::io(this), &mut st.out,
                                           st.gso);
        if flushed == Flushed::Blocked {
            // Watch the socket that refused (after a migration it is not
            // the first one).
            let w = UnsafeCell::raw_get(addr_of!((*this).write_watcher));
            let fd = Self::io(this).fd_of(st.local);
            if (*w).fd != fd {
                c.lp.io_stop(w);
                c.lp.io_init(w, write_cb::<P>, fd, EV_WRITE, this as *mut c_void);
            }
            c.lp.io_start(w);
        }
        if drv.conn.is_closed() {
            Self::finish(this);
        }
    }

    /// The connection is over: closing line, verdict, the host is told.
    unsafe fn finish(this: *mut Self) {
        let st = Self::state(this);
        let drv = Driver::state(addr_of!((*this).drv));
        let stats = drv.conn.conn_stats();
        let info = drv.close_info();
        log_info!("{}", closed_line(&stats, false));
        st.failure = failure_of(&info, st.established);
        st.failure_c = st.failure.as_deref().map(|f| std::ffi::CString::new(f.replace('\0', "")).expect("no NUL"));
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
        st.stats = Some(stats);
        st.app.on_closed(&mut drv.conn, &stats, &info);
        Self::stop_watchers(this);
    }

    /// Delivers the application's events, then (once) the closed event.
    unsafe fn dispatch(this: *mut Self) -> Dispatched {
        let mut n = 0;
        loop {
            if n == MAX_EVENTS_PER_DISPATCH {
                return Dispatched::Capped;
            }
            let st = Self::state(this);
            if st.established && !st.established_told {
                st.established_told = true;
                if let Some((cb, user)) = st.on_established {
                    n += 1;
                    cb(this as *mut crate::ffi::types::quiche_ev_client, user);
                    continue;
                }
            }
            if let Some(ev) = st.app.next_event() {
                n += 1;
                <P::ClientApp as ClientApp<P>>::deliver(ev);
            } else if st.is_over() && !st.closed_told && !st.app.delivering() {
                st.closed_told = true;
                if let Some((cb, user)) = st.on_closed {
                    n += 1;
                    cb(this as *mut crate::ffi::types::quiche_ev_client, st.phase as c_int, user);
                }
            } else {
                break;
            }
            if (*this).reentry.should_stop() {
                break;
            }
        }
        if n == 0 { Dispatched::Nothing } else { Dispatched::Some }
    }

    unsafe fn on_timeout(this: *mut Self) {
        Driver::state(addr_of!((*this).drv)).on_timeout();
        Self::step(this);
    }

    unsafe fn on_writable(this: *mut Self) {
        (*this).lp.io_stop(UnsafeCell::raw_get(addr_of!((*this).write_watcher)));
        Driver::state(addr_of!((*this).drv)).unblock();
        Self::step(this);
    }

    /// The host changed something (a new request, a close): flush it
    /// before the loop sleeps again.
    ///
    /// # Safety
    /// `this` is the live root; no borrow of its state is alive.
    pub unsafe fn changed(this: *mut Self) {
        if (*this).reentry.failed() {
            return;
        }
        Driver::state(addr_of!((*this).drv)).touched = true;
        if !(*this).reentry.inside() {
            (*this).lp.timer_arm(UnsafeCell::raw_get(addr_of!((*this).kick_timer)), 0.0);
        }
    }

    /// Closes the connection (application close with `code`, `reason`).
    ///
    /// # Safety
    /// As for [`Client::changed`].
    pub unsafe fn close(this: *mut Self, code: u64, reason: &[u8]) {
        let st = Self::state(this);
        if st.is_over() {
            return;
        }
        st.phase = if st.phase == Phase::Connecting { Phase::Closing } else { st.phase.max_closing() };
        let _ = Self::conn(this).close(true, code, reason);
        Self::changed(this);
    }

    /// Moves the connection to socket `fd` bound to `local` (active
    /// migration): quiche validates the new path and switches to it.
    ///
    /// # Safety
    /// As for [`Client::changed`]; `fd` stays open while the client lives.
    pub unsafe fn migrate(this: *mut Self, fd: RawFd, local: SocketAddr) -> Result<(), String> {
        Self::io(this).add_socket(fd, local);
        let st = Self::state(this);
        st.migrate_to = Some(local);
        let r = Self::try_migrate(st, Driver::state(addr_of!((*this).drv)));
        Self::changed(this);
        r
    }

    /// Moves to the pending new local address once quiche can: it needs a
    /// spare connection ID from the peer (which comes shortly after the
    /// handshake) and one of ours for the peer.
    fn try_migrate(st: &mut ClientState<P>, drv: &mut crate::driver::DriverState<P>) -> Result<(), String> {
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

    /// The loop the client runs on.
    ///
    /// # Safety
    /// `this` is live.
    pub unsafe fn loop_of<'a>(this: *const Self) -> &'a P::Loop {
        &(*this).lp
    }

    /// Runs `f` as one of the client's callbacks (panic boundary,
    /// re-entrancy, deferred free), for watchers its application owns.
    ///
    /// # Safety
    /// `this` is the live root.
    pub unsafe fn run_callback(this: *mut Self, f: impl FnOnce()) {
        Self::callback(this, || {
            f();
            Self::step(this);
        });
    }

    /// Where the connection is.
    ///
    /// # Safety
    /// `this` is the live root; no borrow of its state is alive.
    pub unsafe fn phase(this: *const Self) -> Phase {
        if (*this).reentry.failed() {
            return Phase::Failed;
        }
        Self::state(this).phase
    }

    /// Why the connection failed, if it did.
    ///
    /// # Safety
    /// As for [`Client::phase`].
    pub unsafe fn failure(this: *const Self) -> Option<String> {
        Self::state(this).failure.clone()
    }

    /// The same, NUL-terminated, valid until the client is freed; null
    /// while it has not failed.
    ///
    /// # Safety
    /// As for [`Client::phase`].
    pub unsafe fn failure_cstr(this: *const Self) -> *const libc::c_char {
        Self::state(this).failure_c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr())
    }

    /// Loads a saved TLS session from `path` (if it exists) into the
    /// connection, and saves the newest there when the connection ends.
    ///
    /// # Safety
    /// As for [`Client::phase`].
    pub unsafe fn set_session_file(this: *mut Self, path: &std::path::Path) -> Result<(), String> {
        Self::state(this).session_file = Some(path.to_path_buf());
        match std::fs::read(path) {
            Ok(s) if !s.is_empty() => Self::conn(this).set_session(&s).map_err(|e| format!("unusable session: {e:?}")),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }


    /// The local address the connection uses now.
    ///
    /// # Safety
    /// As for [`Client::phase`].
    pub unsafe fn local(this: *const Self) -> SocketAddr {
        Self::state(this).local
    }
}

impl Client<crate::platform::Real> {
    /// Changes the key log / qlog settings and applies them to the
    /// connection.
    ///
    /// # Safety
    /// As for [`Client::phase`].
    pub unsafe fn observe<R>(this: *mut Self, f: impl FnOnce(&mut Observe, &mut quiche::Connection) -> R) -> R {
        let st = Self::state(this);
        f(&mut st.observe, Self::conn(this))
    }
}

impl<P: Platform> ClientState<P> {
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

unsafe extern "C" fn timeout_cb<P: Platform>(_lp: *mut ev_loop, w: *mut ev_timer, _revents: c_int) {
    let this = (*w).data as *mut Client<P>;
    Client::callback(this, || Client::on_timeout(this));
}

unsafe extern "C" fn write_cb<P: Platform>(_lp: *mut ev_loop, w: *mut ev_io, _revents: c_int) {
    let this = (*w).data as *mut Client<P>;
    Client::callback(this, || Client::on_writable(this));
}

unsafe extern "C" fn kick_cb<P: Platform>(_lp: *mut ev_loop, w: *mut ev_timer, _revents: c_int) {
    let this = (*w).data as *mut Client<P>;
    (*this).lp.timer_stop(w);
    Client::callback(this, || Client::step(this));
}
