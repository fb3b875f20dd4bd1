//! The libev calls the library makes, behind one small trait.
//!
//! Production code runs on [`LibEv`] (the host's `struct ev_loop *`).
//! Tests run the very same handles, application layer and C API on a
//! pure-Rust loop (`testing::fake_loop`) that stores watcher pointers and
//! calls their callbacks exactly as libev does (through `w->cb(loop, w,
//! revents)` with `w->data` set by us), so the ownership of every handle
//! and watcher can be checked under Miri, where no C code can run.
//!
//! Every method is `unsafe` for the same reason libev's functions are: a
//! watcher must stay at its address, initialised, while it is active.

use libc::{c_int, c_void};
use libev_sys::{ev_io, ev_io_cb, ev_loop, ev_timer, ev_timer_cb};

/// Smallest timer interval. `ev_timer_again` with a repeat of 0 stops the
/// timer, so an already-expired deadline (0 s) must become "now".
pub const MIN_TIMER_SECS: f64 = 1e-6;

pub trait EvLoop: Clone {
    /// The loop behind a C `struct ev_loop *`.
    ///
    /// # Safety
    /// `lp` is a live loop (for the fake: one of its raw pointers).
    unsafe fn from_raw(lp: *mut ev_loop) -> Self;

    /// The C `struct ev_loop *` (what watcher callbacks receive).
    fn raw(&self) -> *mut ev_loop;

    /// The time deadlines are measured in (the tests' loop runs on a
    /// virtual clock).
    fn now(&self) -> std::time::Instant;

    /// `ev_timer_init(w, cb, 0, 0)` and `w->data = data`.
    ///
    /// # Safety
    /// `w` must be valid for writes and not active.
    unsafe fn timer_init(&self, w: *mut ev_timer, cb: ev_timer_cb, data: *mut c_void);

    /// `ev_io_init(w, cb, fd, events)` and `w->data = data`.
    ///
    /// # Safety
    /// `w` must be valid for writes and not active.
    unsafe fn io_init(&self, w: *mut ev_io, cb: ev_io_cb, fd: c_int, events: c_int, data: *mut c_void);

    /// (Re)arms `w` to fire `after` seconds from now (`w->repeat = after;
    /// ev_timer_again`), whether or not it is active.
    ///
    /// # Safety
    /// `w` must be initialised and stay at its address until stopped.
    unsafe fn timer_arm(&self, w: *mut ev_timer, after: f64);

    /// # Safety
    /// `w` must be initialised.
    unsafe fn timer_stop(&self, w: *mut ev_timer);

    /// # Safety
    /// `w` must be initialised and stay at its address until stopped.
    unsafe fn io_start(&self, w: *mut ev_io);

    /// # Safety
    /// `w` must be initialised.
    unsafe fn io_stop(&self, w: *mut ev_io);

    /// `ev_feed_fd_event`: every I/O watcher active on `fd` for `revents`
    /// is called on the next loop iteration, as if the fd were ready.
    /// Only libev's own list of active watchers is read.
    fn feed_fd_event(&self, fd: c_int, revents: c_int);
}

/// The host's libev loop.
#[derive(Clone, Copy)]
pub struct LibEv {
    lp: *mut ev_loop,
}

impl LibEv {
    /// # Safety
    /// `lp` must be a live loop that outlives every watcher started on it.
    pub unsafe fn new(lp: *mut ev_loop) -> LibEv {
        LibEv { lp }
    }

}

impl EvLoop for LibEv {
    unsafe fn from_raw(lp: *mut ev_loop) -> LibEv {
        LibEv { lp }
    }

    fn raw(&self) -> *mut ev_loop {
        self.lp
    }

    fn now(&self) -> std::time::Instant {
        std::time::Instant::now()
    }

    unsafe fn timer_init(&self, w: *mut ev_timer, cb: ev_timer_cb, data: *mut c_void) {
        libev_sys::ev_timer_init(w, cb, 0.0, 0.0);
        (*w).data = data;
    }

    unsafe fn io_init(&self, w: *mut ev_io, cb: ev_io_cb, fd: c_int, events: c_int, data: *mut c_void) {
        libev_sys::ev_io_init(w, cb, fd, events);
        (*w).data = data;
    }

    unsafe fn timer_arm(&self, w: *mut ev_timer, after: f64) {
        (*w).repeat = after.max(MIN_TIMER_SECS);
        libev_sys::ev_timer_again(self.lp, w);
    }

    unsafe fn timer_stop(&self, w: *mut ev_timer) {
        libev_sys::ev_timer_stop(self.lp, w);
    }

    unsafe fn io_start(&self, w: *mut ev_io) {
        libev_sys::ev_io_start(self.lp, w);
    }

    unsafe fn io_stop(&self, w: *mut ev_io) {
        libev_sys::ev_io_stop(self.lp, w);
    }

    fn feed_fd_event(&self, fd: c_int, revents: c_int) {
        // SAFETY: the loop is live (new's contract); libev ignores an fd
        // it has no watcher for.
        unsafe { libev_sys::ev_feed_fd_event(self.lp, fd, revents) }
    }
}
