//! The one machinery every handle runs on, server and client alike: the
//! libev callbacks (socket readable, socket writable, "step soon"), the
//! read loop and its per-callback cap, re-entrancy and the deferred free,
//! the panic boundary and what an internal error stops, the host's socket
//! watchers, and the registry of live handles.
//!
//! A handle is a [`Handle`] around its role (`server::ServerCore` or
//! `client::ClientCore`); the role says what a datagram, a step and an
//! event are, the machinery says when they happen.
//!
//! # Ownership (the invariant every `unsafe` block here relies on)
//!
//! - [`Handle::create`] `Box::into_raw`s the handle first; every pointer
//!   handed to libev (watcher `data`, connection back pointers) or to C
//!   (the handle itself) derives from that one raw root, and the handle is
//!   only reached through it: `&Handle` (shared) for the watchers and the
//!   cells, `&mut` to the role state or the I/O for one step at a time
//!   ([`Handle::role`], [`Handle::io`]). No `&mut Handle` exists until
//!   [`Handle::free`] takes the box back.
//! - Watchers libev writes live in `UnsafeCell`s and are reached by raw
//!   pointers only.
//! - The host is called only from [`Role::deliver`], with no borrow of the
//!   handle alive and inside [`Handle::callback`] (depth at least one), so
//!   a host that frees the handle in its callback only records the wish;
//!   the outermost callback frees it on its way out and reports that the
//!   handle is gone, and nothing touches it after that.
//!
//! # The host's socket watchers
//!
//! A host may watch the socket itself with an `ev_io` whose callback is
//! the C API's `recv_cb` and whose `data` is the handle (as upstream's
//! samples do), or let the handle watch it ([`Handle::start`]). When the
//! handle is over (a stopped server, a closed client) or freed, it stops
//! every watcher that drives it, so `ev_run` ends by itself when the host
//! has nothing else: its own, the host's watchers it has seen in
//! `recv_cb`, and those it has not seen yet: libev is asked to call every
//! watcher on the handle's sockets once more (`ev_feed_fd_event`), and
//! `recv_cb` stops a watcher whose handle is over, or whose `data` is no
//! live handle at all (the registry answers that without reading the
//! freed memory).

use std::cell::{Cell, UnsafeCell};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::ptr::addr_of;
use std::sync::Mutex;

use libc::{c_int, c_void};
use libev_sys::{ev_io, ev_loop, ev_timer, EV_READ, EV_WRITE};

use crate::dgram::DatagramIo;
use crate::evloop::EvLoop;
use crate::platform::Platform;
use crate::reentry::{Dispatched, Reentry, MAX_EVENTS_PER_DISPATCH};

/// Read batches per readable callback before the rest of the loop gets a
/// turn (the socket stays readable, so libev calls again).
pub const MAX_READS_PER_CALLBACK: usize = 64;

/// What a handle is, for the registry and the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Server,
    Client,
}

/// What a handle's role provides to the machinery. Every function gets
/// the handle's raw root and borrows what it needs for the call only.
///
/// # Safety
/// Implementations keep the ownership invariant above: no borrow of the
/// handle outlives a call, and only [`Role::deliver`] calls the host.
pub unsafe trait Role<P: Platform>: Sized + 'static {
    const KIND: Kind;
    /// What the host hears, delivered one at a time.
    type Event;

    /// One datagram read from one of the handle's sockets.
    unsafe fn on_datagram(h: *const Handle<P, Self>, pkt: &mut [u8], from: SocketAddr, to: SocketAddr);
    /// A read batch ended.
    unsafe fn after_batch(_h: *const Handle<P, Self>) {}
    /// Work that calls no host: connections read, write, flush, close.
    unsafe fn service(h: *const Handle<P, Self>);
    /// The next event for the host.
    unsafe fn next_event(h: *const Handle<P, Self>) -> Option<Self::Event>;
    /// Delivers one event: the host is called, and may call back into
    /// anything (free included).
    unsafe fn deliver(h: *const Handle<P, Self>, ev: Self::Event);
    /// After a step: step again after this many seconds (0: on the next
    /// loop iteration), or wait for the loop.
    unsafe fn next_kick(h: *const Handle<P, Self>) -> Option<f64>;
    /// The socket became writable again.
    unsafe fn on_writable(h: *const Handle<P, Self>);
    /// The kick timer fired, before the step it causes.
    unsafe fn on_kick(_h: *const Handle<P, Self>) {}
    /// The handle's work is done and the host was told (a stopped server,
    /// a closed client): nothing more is read.
    unsafe fn is_over(h: *const Handle<P, Self>) -> bool;
    /// Stops every timer the role itself owns.
    unsafe fn stop_timers(h: *const Handle<P, Self>);
    /// After an internal error: drops what was queued for the host and
    /// returns the one event that tells it (stopped, closed).
    unsafe fn failure_event(h: *const Handle<P, Self>) -> Option<Self::Event>;
    /// Frees what the role owns (connections, queued events) before the
    /// handle itself goes; their timers are stopped first.
    unsafe fn release(h: *const Handle<P, Self>);
}

pub struct Handle<P: Platform, R> {
    lp: P::Loop,
    /// Watches the socket that refused a send (EAGAIN).
    write_watcher: UnsafeCell<ev_io>,
    /// "Step soon": work the host queued outside our callbacks, events
    /// left over by a capped dispatch, work waiting for the disk.
    kick_timer: UnsafeCell<ev_timer>,
    /// Read watchers of the handle's own ([`Handle::start`]): raw boxes
    /// (each stays at its address while the list grows, and only raw
    /// pointers ever reach it), freed with the handle.
    readers: UnsafeCell<Vec<*mut ev_io>>,
    /// The host's watchers seen in `recv_cb`: (their loop, the watcher).
    host_watchers: UnsafeCell<Vec<(*mut ev_loop, *mut ev_io)>>,
    /// The handle watches its sockets itself ([`Handle::start`]).
    started: Cell<bool>,
    /// Watchers were stopped because the handle is over.
    retired: Cell<bool>,
    /// A C API call panicked: fail on the next loop iteration.
    fail_pending: Cell<bool>,
    /// Callbacks on the stack, a deferred free, a failure.
    reentry: Reentry,
    /// The socket(s): a cell of its own, so a read batch can run while
    /// each datagram it yields is handled with the role state borrowed.
    io: UnsafeCell<P::Io>,
    /// Reached shared only: a role keeps its mutable state and its
    /// watchers in cells of its own.
    role: R,
}

/// Addresses of live handles, by kind: `recv_cb` checks a watcher's
/// `data` here before touching it.
static LIVE: Mutex<BTreeSet<(usize, Kind)>> = Mutex::new(BTreeSet::new());

fn registry() -> std::sync::MutexGuard<'static, BTreeSet<(usize, Kind)>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether `p` is a live handle of kind `kind` (reads nothing at `p`).
pub fn is_live(p: *const c_void, kind: Kind) -> bool {
    registry().contains(&(p as usize, kind))
}

impl<P: Platform, R: Role<P>> Handle<P, R> {
    /// Makes the handle and returns its raw root; `init` then runs with it
    /// (to set up the role's own watchers, which point back to it).
    ///
    /// # Safety
    /// `lp` outlives the handle.
    pub unsafe fn create(lp: P::Loop, io: P::Io, role: R, init: impl FnOnce(*mut Self)) -> *mut Self {
        let first_fd = io.fds().first().copied().unwrap_or(-1);
        let h = Box::into_raw(Box::new(Handle {
            lp,
            write_watcher: UnsafeCell::new(ev_io::zeroed()),
            kick_timer: UnsafeCell::new(ev_timer::zeroed()),
            readers: UnsafeCell::new(Vec::new()),
            host_watchers: UnsafeCell::new(Vec::new()),
            started: Cell::new(false),
            retired: Cell::new(false),
            fail_pending: Cell::new(false),
            reentry: Reentry::default(),
            io: UnsafeCell::new(io),
            role,
        }));
        let data = h as *mut c_void;
        let l: &P::Loop = &(*h).lp;
        l.io_init(Self::write_watcher(h), write_cb::<P, R>, first_fd, EV_WRITE, data);
        l.timer_init(Self::kick_timer(h), kick_cb::<P, R>, data);
        registry().insert((h as usize, R::KIND));
        init(h);
        h
    }

    fn write_watcher(h: *const Self) -> *mut ev_io {
        // SAFETY: a pointer into the live handle, never turned into a
        // reference (libev writes the watcher).
        unsafe { UnsafeCell::raw_get(addr_of!((*h).write_watcher)) }
    }

    fn kick_timer(h: *const Self) -> *mut ev_timer {
        // SAFETY: as in write_watcher.
        unsafe { UnsafeCell::raw_get(addr_of!((*h).kick_timer)) }
    }

    /// The role (its cells give its state and watchers out).
    ///
    /// # Safety
    /// `h` is live.
    pub unsafe fn role<'a>(h: *const Self) -> &'a R {
        &(*h).role
    }

    /// The socket(s), for one step.
    ///
    /// # Safety
    /// As for [`Handle::role`], for the I/O.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn io<'a>(h: *const Self) -> &'a mut P::Io {
        &mut *UnsafeCell::raw_get(addr_of!((*h).io))
    }

    /// The loop the handle runs on.
    ///
    /// # Safety
    /// `h` is live.
    pub unsafe fn lp<'a>(h: *const Self) -> &'a P::Loop {
        &(*h).lp
    }

    /// A callback of this handle is on the stack.
    ///
    /// # Safety
    /// `h` is live.
    pub unsafe fn inside(h: *const Self) -> bool {
        (*h).reentry.inside()
    }

    /// Freed (wish recorded) or failed: deliver nothing more.
    ///
    /// # Safety
    /// `h` is live.
    pub unsafe fn should_stop(h: *const Self) -> bool {
        (*h).reentry.should_stop()
    }

    /// Whether an internal error stopped it.
    ///
    /// # Safety
    /// `h` is live.
    pub unsafe fn is_failed(h: *const Self) -> bool {
        (*h).reentry.failed() || (*h).fail_pending.get()
    }

    /// The log origin of this handle's work.
    fn origin(h: *const Self) -> impl FnOnce(&mut crate::log::Origin) {
        move |o| match R::KIND {
            Kind::Server => o.server = h.cast(),
            Kind::Client => o.client = h.cast(),
        }
    }

    /// Runs `f` as one of the handle's callbacks: re-entrancy, the panic
    /// boundary (a panic fails the handle), the deferred free, and the
    /// end of the handle's watchers once it is over. Returns false when
    /// the handle is gone: the caller must not touch it again.
    ///
    /// # Safety
    /// `h` is the live root.
    pub unsafe fn callback(h: *mut Self, f: impl FnOnce()) -> bool {
        let after = crate::log::within(Self::origin(h), || (*h).reentry.run(f));
        let free = if after.fail { Self::fail(h) } else { after.free };
        if free {
            Self::free(h);
            return false;
        }
        if !(*h).reentry.inside() && !(*h).retired.get() && R::is_over(h) {
            Self::retire(h);
        }
        true
    }

    /// After an internal error the role's state cannot be trusted: stop
    /// every watcher that drives the handle, then tell the host (once).
    /// Returns whether the host freed the handle meanwhile.
    unsafe fn fail(h: *mut Self) -> bool {
        log_error!("quiche-ev: {:?} stopped after an internal error", R::KIND);
        (*h).reentry.set_failed();
        (*h).fail_pending.set(false);
        crate::unwind::guard((), || Self::retire(h));
        let ev = crate::unwind::guard(None, || R::failure_event(h));
        match ev {
            Some(ev) => (*h).reentry.notify(|| R::deliver(h, ev)),
            None => !(*h).reentry.inside() && (*h).reentry.defer_free(),
        }
    }

    /// A C API call on this handle panicked (outside any callback): the
    /// handle fails on the next loop iteration, where its host can be
    /// told.
    ///
    /// # Safety
    /// `h` is live.
    pub unsafe fn fail_soon(h: *const Self) {
        (*h).fail_pending.set(true);
        Self::kick(h, 0.0);
    }

    /// The handle is over (or failed): stop its own watchers and timers,
    /// and every watcher of the host's that drives it.
    unsafe fn retire(h: *const Self) {
        (*h).retired.set(true);
        let l = &(*h).lp;
        l.timer_stop(Self::kick_timer(h));
        l.io_stop(Self::write_watcher(h));
        for &r in (*UnsafeCell::raw_get(addr_of!((*h).readers))).iter() {
            l.io_stop(r);
        }
        R::stop_timers(h);
        Self::stop_host_watchers(h);
    }

    /// Stops the host's watchers seen so far and makes libev call every
    /// other watcher on the handle's sockets once, so that `recv_cb`
    /// stops those too. The list is emptied: once stopped, a watcher is
    /// the host's again (to free or to reuse), and nothing here may touch
    /// it later (a free after the stop retires the handle once more).
    unsafe fn stop_host_watchers(h: *const Self) {
        for (lp, w) in std::mem::take(&mut *UnsafeCell::raw_get(addr_of!((*h).host_watchers))) {
            P::Loop::from_raw(lp).io_stop(w);
        }
        for fd in Self::io(h).fds() {
            (*h).lp.feed_fd_event(fd, EV_READ);
        }
    }

    /// Frees the handle now, or (inside one of its callbacks) when the
    /// outermost one returns.
    ///
    /// # Safety
    /// `h` came from [`Handle::create`] and the caller does not use it
    /// afterwards.
    pub unsafe fn destroy(h: *mut Self) {
        if !(*h).reentry.defer_free() {
            Self::free(h);
        }
    }

    unsafe fn free(h: *mut Self) {
        registry().remove(&(h as usize, R::KIND));
        crate::unwind::guard((), || {
            Self::retire(h);
            R::release(h);
        });
        for r in std::mem::take(&mut *UnsafeCell::raw_get(addr_of!((*h).readers))) {
            drop(Box::from_raw(r));
        }
        drop(Box::from_raw(h));
    }

    /// The C API's `recv_cb`: the host's watcher `w` on loop `lp` says its
    /// socket is readable. Safe for any watcher libev calls: one whose
    /// `data` is no live handle of this kind, or that watches a socket
    /// the handle does not own, or whose handle is over, is stopped.
    ///
    /// # Safety
    /// `w` is the watcher libev is calling, on the loop `lp`.
    pub unsafe fn host_recv_cb(lp: *mut ev_loop, w: *mut ev_io) {
        let data = (*w).data;
        let fd = (*w).fd;
        if !is_live(data, R::KIND) {
            log_debug!("{:?} watcher whose handle is gone: stopped", R::KIND);
            P::Loop::from_raw(lp).io_stop(w);
            return;
        }
        let h = data as *mut Self;
        if !Self::io(h).fds().contains(&fd) {
            log_warn!("{:?} watcher on a socket that is not the handle's: stopped", R::KIND);
            P::Loop::from_raw(lp).io_stop(w);
            return;
        }
        if (*h).retired.get() {
            // Stopped here and not remembered: the host may free it now.
            P::Loop::from_raw(lp).io_stop(w);
            return;
        }
        let seen = &mut *UnsafeCell::raw_get(addr_of!((*h).host_watchers));
        if !seen.iter().any(|&(_, s)| s == w) {
            seen.push((lp, w));
        }
        Self::read(h, fd);
    }

    /// The handle watches its sockets itself (no `ev_io` of the host's
    /// needed). Sockets added later (a client's migration) are watched as
    /// they come ([`Handle::watch_new_sockets`]).
    ///
    /// # Safety
    /// `h` is the live root.
    pub unsafe fn start(h: *mut Self) {
        if (*h).retired.get() {
            return;
        }
        (*h).started.set(true);
        Self::watch_new_sockets(h);
    }

    /// Starts an own read watcher on every socket that has none yet (only
    /// once [`Handle::start`] was called).
    ///
    /// # Safety
    /// `h` is the live root.
    pub unsafe fn watch_new_sockets(h: *mut Self) {
        if !(*h).started.get() || (*h).retired.get() {
            return;
        }
        let readers = &mut *UnsafeCell::raw_get(addr_of!((*h).readers));
        for fd in Self::io(h).fds() {
            if readers.iter().any(|&r| (*r).fd == fd) {
                continue;
            }
            let r = Box::into_raw(Box::new(ev_io::zeroed()));
            (*h).lp.io_init(r, reader_cb::<P, R>, fd, EV_READ, h as *mut c_void);
            (*h).lp.io_start(r);
            readers.push(r);
        }
    }

    /// Reads the queued datagrams batch by batch (a bounded number per
    /// call), and after each batch lets the role work and the host hear
    /// what happened. Stops reading as soon as the host freed the handle
    /// or it is over.
    unsafe fn read(h: *mut Self, fd: RawFd) -> bool {
        Self::callback(h, || {
            for _ in 0..MAX_READS_PER_CALLBACK {
                let more = Self::io(h).read_batch(fd, &mut |pkt, from, to| R::on_datagram(h, pkt, from, to));
                R::after_batch(h);
                Self::step(h);
                if (*h).reentry.should_stop() || R::is_over(h) {
                    break;
                }
                match more {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        log_warn!("failed to read: {e}");
                        break;
                    }
                }
            }
        })
    }

    /// After input (datagrams, a timer, writability, the host's calls):
    /// the role works, then the host hears what happened, again while its
    /// answers make more (bounded), then the kick timer is armed if work
    /// is left.
    ///
    /// # Safety
    /// `h` is the live root, inside one of its callbacks.
    pub unsafe fn step(h: *mut Self) {
        let rounds = (*h).reentry.rounds(|| R::service(h), || Self::dispatch(h));
        let Some(capped) = rounds else { return };
        let next = if capped { Some(0.0) } else { R::next_kick(h) };
        if let Some(after) = next {
            Self::kick(h, after);
        }
    }

    /// Delivers queued events to the host, each with no borrow alive, at
    /// most [`MAX_EVENTS_PER_DISPATCH`] per call.
    unsafe fn dispatch(h: *mut Self) -> Dispatched {
        let mut n = 0;
        loop {
            if n == MAX_EVENTS_PER_DISPATCH {
                return Dispatched::Capped;
            }
            let Some(ev) = R::next_event(h) else { break };
            n += 1;
            R::deliver(h, ev);
            if (*h).reentry.should_stop() {
                break;
            }
        }
        if n == 0 { Dispatched::Nothing } else { Dispatched::Some }
    }

    /// Arms the kick timer: a step after `after` seconds (0: on the next
    /// loop iteration).
    ///
    /// # Safety
    /// `h` is live.
    pub unsafe fn kick(h: *const Self, after: f64) {
        if !(*h).retired.get() {
            (*h).lp.timer_arm(Self::kick_timer(h), after);
        }
    }

    /// The host changed something outside the handle's callbacks (a
    /// response written from its own timer, a request queued): step on
    /// the next loop iteration. Inside a callback the running step sees
    /// it anyway.
    ///
    /// # Safety
    /// `h` is live.
    pub unsafe fn changed(h: *const Self) {
        if !(*h).reentry.inside() {
            Self::kick(h, 0.0);
        }
    }

    /// Watches socket `fd` for writability (a send was refused).
    ///
    /// # Safety
    /// `h` is live; `fd` is one of its sockets.
    pub unsafe fn want_writable(h: *const Self, fd: RawFd) {
        if (*h).retired.get() {
            return;
        }
        let w = Self::write_watcher(h);
        if (*w).fd != fd {
            (*h).lp.io_stop(w);
            (*h).lp.io_init(w, write_cb::<P, R>, fd, EV_WRITE, h as *mut c_void);
        }
        (*h).lp.io_start(w);
    }
}

unsafe extern "C" fn reader_cb<P: Platform, R: Role<P>>(_lp: *mut ev_loop, w: *mut ev_io, _revents: c_int) {
    let h = (*w).data as *mut Handle<P, R>;
    let fd = (*w).fd;
    Handle::read(h, fd);
}

unsafe extern "C" fn write_cb<P: Platform, R: Role<P>>(_lp: *mut ev_loop, w: *mut ev_io, _revents: c_int) {
    let h = (*w).data as *mut Handle<P, R>;
    Handle::callback(h, || {
        (*h).lp.io_stop(w);
        R::on_writable(h);
        Handle::step(h);
    });
}

unsafe extern "C" fn kick_cb<P: Platform, R: Role<P>>(_lp: *mut ev_loop, w: *mut ev_timer, _revents: c_int) {
    let h = (*w).data as *mut Handle<P, R>;
    (*h).lp.timer_stop(w);
    if (*h).fail_pending.get() {
        if Handle::fail(h) {
            Handle::free(h);
        }
        return;
    }
    Handle::callback(h, || {
        R::on_kick(h);
        Handle::step(h);
    });
}
