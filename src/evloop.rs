//! The libev calls the library makes, behind one small trait.
//!
//! Production code runs on [`LibEv`] (the host's `struct ev_loop *`).
//! Tests run the very same server and client code on [`fake::FakeLoop`], a
//! pure-Rust loop that stores watcher pointers and calls their callbacks
//! exactly as libev does (through `w->cb(loop, w, revents)` with `w->data`
//! set by us), so the ownership of every handle and watcher can be checked
//! under Miri, where no C code can run.
//!
//! Every method is `unsafe` for the same reason libev's functions are: a
//! watcher must stay at its address, initialised, while it is active.

use libc::{c_int, c_void};
use libev_sys::{ev_io, ev_io_cb, ev_loop, ev_timer, ev_timer_cb};

/// Smallest timer interval. `ev_timer_again` with a repeat of 0 stops the
/// timer, so an already-expired deadline (0 s) must become "now".
pub const MIN_TIMER_SECS: f64 = 1e-6;

pub trait EvLoop {
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

    pub fn raw(&self) -> *mut ev_loop {
        self.lp
    }
}

impl EvLoop for LibEv {
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
}

/// A loop for tests: virtual time, watchers kept by pointer, callbacks
/// called as libev calls them. Cloning shares the loop.
#[cfg(test)]
pub mod fake {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    #[derive(Default)]
    struct State {
        now: f64,
        timers: Vec<*mut ev_timer>,
        ios: Vec<*mut ev_io>,
    }

    #[derive(Clone, Default)]
    pub struct FakeLoop(Rc<RefCell<State>>);

    impl FakeLoop {
        pub fn new() -> FakeLoop {
            FakeLoop::default()
        }

        pub fn now(&self) -> f64 {
            self.0.borrow().now
        }

        /// Active timers and I/O watchers.
        pub fn active(&self) -> (usize, usize) {
            let s = self.0.borrow();
            (s.timers.len(), s.ios.len())
        }

        /// When the next timer is due, if any is active.
        pub fn next_due(&self) -> Option<f64> {
            let s = self.0.borrow();
            // SAFETY: active watchers are valid (the EvLoop contract).
            s.timers.iter().map(|&w| unsafe { (*w).at }).min_by(|a, b| a.total_cmp(b))
        }

        /// Advances virtual time to the earliest due timer and fires it
        /// (libev re-arms a repeating timer before calling it). False when
        /// no timer is active.
        pub fn fire_next_timer(&self) -> bool {
            let w = {
                let mut s = self.0.borrow_mut();
                // SAFETY: as in next_due.
                let Some(i) = (0..s.timers.len()).min_by(|&a, &b| unsafe {
                    (*s.timers[a]).at.total_cmp(&(*s.timers[b]).at)
                }) else {
                    return false;
                };
                let w = s.timers[i];
                // SAFETY: w is active, so valid.
                unsafe {
                    s.now = s.now.max((*w).at);
                    if (*w).repeat > 0.0 {
                        (*w).at = s.now + (*w).repeat;
                    } else {
                        s.timers.remove(i);
                        (*w).active = 0;
                    }
                }
                w
            };
            // The borrow is released: the callback may start and stop
            // watchers on this loop.
            // SAFETY: libev's calling convention; the callback was set by
            // timer_init.
            unsafe {
                let cb = (*w).cb.expect("an initialised timer has a callback");
                cb(std::ptr::null_mut(), w, libev_sys::EV_TIMER);
            }
            true
        }

        /// Calls every active I/O watcher on `fd` interested in `revents`.
        pub fn fire_io(&self, fd: c_int, revents: c_int) {
            let ws: Vec<*mut ev_io> = {
                let s = self.0.borrow();
                // SAFETY: active watchers are valid.
                s.ios.iter().copied().filter(|&w| unsafe { (*w).fd == fd && (*w).events & revents != 0 }).collect()
            };
            for w in ws {
                // Still active? An earlier callback may have stopped it.
                if !self.0.borrow().ios.contains(&w) {
                    continue;
                }
                // SAFETY: as in fire_next_timer.
                unsafe {
                    let cb = (*w).cb.expect("an initialised watcher has a callback");
                    cb(std::ptr::null_mut(), w, revents);
                }
            }
        }
    }

    impl EvLoop for FakeLoop {
        unsafe fn timer_init(&self, w: *mut ev_timer, cb: ev_timer_cb, data: *mut c_void) {
            (*w).active = 0;
            (*w).pending = 0;
            (*w).priority = 0;
            (*w).cb = Some(cb);
            (*w).at = 0.0;
            (*w).repeat = 0.0;
            (*w).data = data;
        }

        unsafe fn io_init(&self, w: *mut ev_io, cb: ev_io_cb, fd: c_int, events: c_int, data: *mut c_void) {
            (*w).active = 0;
            (*w).pending = 0;
            (*w).priority = 0;
            (*w).cb = Some(cb);
            (*w).fd = fd;
            (*w).events = events;
            (*w).data = data;
        }

        unsafe fn timer_arm(&self, w: *mut ev_timer, after: f64) {
            let mut s = self.0.borrow_mut();
            (*w).repeat = after.max(MIN_TIMER_SECS);
            (*w).at = s.now + (*w).repeat;
            if (*w).active == 0 {
                (*w).active = 1;
                s.timers.push(w);
            }
        }

        unsafe fn timer_stop(&self, w: *mut ev_timer) {
            let mut s = self.0.borrow_mut();
            s.timers.retain(|&t| t != w);
            (*w).active = 0;
        }

        unsafe fn io_start(&self, w: *mut ev_io) {
            let mut s = self.0.borrow_mut();
            if (*w).active == 0 {
                (*w).active = 1;
                s.ios.push(w);
            }
        }

        unsafe fn io_stop(&self, w: *mut ev_io) {
            let mut s = self.0.borrow_mut();
            s.ios.retain(|&i| i != w);
            (*w).active = 0;
        }
    }
}
