//! A libev stand-in for tests: virtual time, watchers kept by pointer,
//! callbacks called as libev calls them (`w->cb(loop, w, revents)`),
//! `ev_feed_fd_event`, and a `run` that returns, as `ev_run` does, once
//! no watcher is active. Cloning shares the loop; its raw pointer (what
//! watcher callbacks receive as their loop) gives it back.

use std::cell::RefCell;
use std::rc::Rc;

use libc::c_int;
use libev_sys::{ev_io, ev_loop, ev_timer, ev_timer_cb, ev_io_cb, EV_READ, EV_WRITE};

use crate::evloop::{EvLoop, MIN_TIMER_SECS};

/// Whether `fd` is ready for `events` (the in-memory network says).
pub type Readiness = Box<dyn Fn(c_int, c_int) -> c_int>;

struct State {
    /// Virtual seconds since `base`.
    now: f64,
    base: std::time::Instant,
    timers: Vec<*mut ev_timer>,
    ios: Vec<*mut ev_io>,
    /// Watchers fed an event (`ev_feed_fd_event`), called next iteration.
    fed: Vec<(*mut ev_io, c_int)>,
    ready: Option<Rc<Readiness>>,
    /// `ev_break` was asked for (by a test's own callback).
    broken: bool,
}

impl Default for State {
    fn default() -> Self {
        State { now: 0.0, base: std::time::Instant::now(), timers: Vec::new(), ios: Vec::new(), fed: Vec::new(),
                ready: None, broken: false }
    }
}

#[derive(Clone, Default)]
pub struct FakeLoop(Rc<RefCell<State>>);

/// How [`FakeLoop::run`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ran {
    /// No watcher is active any more (`ev_run` would return).
    Idle,
    /// Someone called [`FakeLoop::break_loop`].
    Broken,
    /// The iteration limit came first: something keeps the loop alive.
    Limit,
}

impl FakeLoop {
    pub fn new() -> FakeLoop {
        FakeLoop::default()
    }

    /// Tells the loop which fds are ready for what.
    pub fn set_readiness(&self, ready: Readiness) {
        self.0.borrow_mut().ready = Some(Rc::new(ready));
    }

    /// Virtual seconds since the loop was made.
    pub fn seconds(&self) -> f64 {
        self.0.borrow().now
    }

    /// Active timers and I/O watchers.
    pub fn active(&self) -> (usize, usize) {
        let s = self.0.borrow();
        (s.timers.len(), s.ios.len())
    }

    /// Whether `w` is active.
    pub fn is_active(&self, w: *mut ev_io) -> bool {
        self.0.borrow().ios.contains(&w)
    }

    /// When the next timer is due, if any is active.
    pub fn next_due(&self) -> Option<f64> {
        let s = self.0.borrow();
        // SAFETY: active watchers are valid (the EvLoop contract).
        s.timers.iter().map(|&w| unsafe { (*w).at }).min_by(|a, b| a.total_cmp(b))
    }

    /// `ev_break`.
    pub fn break_loop(&self) {
        self.0.borrow_mut().broken = true;
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
            cb(self.raw(), w, libev_sys::EV_TIMER);
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
            self.call_io(w, revents);
        }
    }

    /// Calls `w` if it is still active (an earlier callback may have
    /// stopped it).
    fn call_io(&self, w: *mut ev_io, revents: c_int) {
        if !self.0.borrow().ios.contains(&w) {
            return;
        }
        // SAFETY: as in fire_next_timer.
        unsafe {
            let cb = (*w).cb.expect("an initialised watcher has a callback");
            cb(self.raw(), w, revents);
        }
    }

    /// One loop iteration (100 µs of virtual time): fed events, ready
    /// fds, due timers; if none of those, time jumps to the next timer.
    /// False when nothing at all could run.
    pub fn run_once(&self) -> bool {
        self.0.borrow_mut().now += 1e-4;
        let fed = std::mem::take(&mut self.0.borrow_mut().fed);
        let mut ran = !fed.is_empty();
        for (w, revents) in fed {
            self.call_io(w, revents);
        }
        let ready = self.0.borrow().ready.clone();
        if let Some(ready) = ready {
            let ios: Vec<*mut ev_io> = self.0.borrow().ios.clone();
            for w in ios {
                if !self.0.borrow().ios.contains(&w) {
                    continue;
                }
                // SAFETY: active, so valid.
                let (fd, events) = unsafe { ((*w).fd, (*w).events) };
                let revents = ready(fd, events) & events;
                if revents != 0 {
                    ran = true;
                    self.call_io(w, revents);
                }
            }
        }
        while self.next_due().is_some_and(|t| t <= self.seconds()) {
            ran = true;
            self.fire_next_timer();
        }
        if !ran {
            ran = self.fire_next_timer();
        }
        ran
    }

    /// Iterates until `done()` holds (checked before each iteration) or
    /// nothing could run, at most `limit` iterations; whether `done()`
    /// held.
    pub fn run_until(&self, limit: usize, mut done: impl FnMut() -> bool) -> bool {
        for _ in 0..limit {
            if done() {
                return true;
            }
            if !self.run_once() {
                break;
            }
        }
        done()
    }

    /// `ev_run`: iterates until no watcher is active (or a break, or
    /// `limit` iterations).
    pub fn run(&self, limit: usize) -> Ran {
        self.0.borrow_mut().broken = false;
        for _ in 0..limit {
            if std::mem::take(&mut self.0.borrow_mut().broken) {
                return Ran::Broken;
            }
            let idle = {
                let s = self.0.borrow();
                s.timers.is_empty() && s.ios.is_empty() && s.fed.is_empty()
            };
            if idle {
                return Ran::Idle;
            }
            if !self.run_once() {
                // Active I/O watchers that are never ready and no timer:
                // libev would sleep forever.
                return Ran::Limit;
            }
        }
        Ran::Limit
    }
}

impl EvLoop for FakeLoop {
    unsafe fn from_raw(lp: *mut ev_loop) -> FakeLoop {
        let p = lp as *const RefCell<State>;
        // SAFETY: `lp` came from raw() of a live FakeLoop (the caller's
        // contract): one more owner of the same Rc.
        Rc::increment_strong_count(p);
        FakeLoop(Rc::from_raw(p))
    }

    fn raw(&self) -> *mut ev_loop {
        Rc::as_ptr(&self.0) as *mut ev_loop
    }

    fn now(&self) -> std::time::Instant {
        let s = self.0.borrow();
        s.base + std::time::Duration::from_secs_f64(s.now)
    }

    unsafe fn timer_init(&self, w: *mut ev_timer, cb: ev_timer_cb, data: *mut libc::c_void) {
        (*w).active = 0;
        (*w).pending = 0;
        (*w).priority = 0;
        (*w).cb = Some(cb);
        (*w).at = 0.0;
        (*w).repeat = 0.0;
        (*w).data = data;
    }

    unsafe fn io_init(&self, w: *mut ev_io, cb: ev_io_cb, fd: c_int, events: c_int, data: *mut libc::c_void) {
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
        s.fed.retain(|&(i, _)| i != w);
        (*w).active = 0;
    }

    fn feed_fd_event(&self, fd: c_int, revents: c_int) {
        let mut s = self.0.borrow_mut();
        let ws: Vec<*mut ev_io> = s.ios.iter().copied()
            // SAFETY: active watchers are valid.
            .filter(|&w| unsafe { (*w).fd == fd && (*w).events & revents != 0 }).collect();
        for w in ws {
            if !s.fed.iter().any(|&(f, _)| f == w) {
                s.fed.push((w, revents));
            }
        }
    }
}

/// Readiness of an fd whose inbox is `readable` and whose sends `writable`.
pub fn readiness(readable: bool, writable: bool) -> c_int {
    (if readable { EV_READ } else { 0 }) | (if writable { EV_WRITE } else { 0 })
}
