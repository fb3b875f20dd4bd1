//! Raw bindings to the system libev 4.x (`ev.h`, default configuration:
//! `EV_MULTIPLICITY`, watcher priorities and `void *data` on).
//!
//! Functions that are macros in `ev.h` (`ev_io_init`, `ev_timer_init`,
//! `ev_timer_set`, `ev_signal_init`, `ev_is_active`, `ev_is_pending`) are
//! reached through a small C shim compiled by `build.rs`. The struct
//! definitions here are checked against the C compiler's view of `ev.h` by
//! the tests at the bottom of this file.
//!
//! Watchers must not move while active: libev keeps pointers to them. Keep
//! them in boxed (or otherwise pinned) memory.

#![allow(non_camel_case_types)]

use libc::{c_double, c_int, c_long, c_uint, c_void};

pub type ev_tstamp = c_double;

/// The opaque loop, `struct ev_loop` in C.
#[repr(C)]
pub struct ev_loop {
    _private: [u8; 0],
}

/// The list link of `EV_WATCHER_LIST` watchers.
#[repr(C)]
pub struct ev_watcher_list {
    _private: [u8; 0],
}

pub type ev_io_cb = unsafe extern "C" fn(*mut ev_loop, *mut ev_io, c_int);
pub type ev_timer_cb = unsafe extern "C" fn(*mut ev_loop, *mut ev_timer, c_int);
pub type ev_signal_cb = unsafe extern "C" fn(*mut ev_loop, *mut ev_signal, c_int);
pub type ev_async_cb = unsafe extern "C" fn(*mut ev_loop, *mut ev_async, c_int);
pub type ev_prepare_cb = unsafe extern "C" fn(*mut ev_loop, *mut ev_prepare, c_int);

/// `ev_io`: `EV_WATCHER_LIST(ev_io)` then `fd`, `events`.
#[repr(C)]
pub struct ev_io {
    pub active: c_int,
    pub pending: c_int,
    pub priority: c_int,
    pub data: *mut c_void,
    pub cb: Option<ev_io_cb>,
    pub next: *mut ev_watcher_list,
    pub fd: c_int,
    pub events: c_int,
}

/// `ev_timer`: `EV_WATCHER_TIME(ev_timer)` then `repeat`.
#[repr(C)]
pub struct ev_timer {
    pub active: c_int,
    pub pending: c_int,
    pub priority: c_int,
    pub data: *mut c_void,
    pub cb: Option<ev_timer_cb>,
    pub at: ev_tstamp,
    pub repeat: ev_tstamp,
}

/// `ev_signal`: `EV_WATCHER_LIST(ev_signal)` then `signum`.
#[repr(C)]
pub struct ev_signal {
    pub active: c_int,
    pub pending: c_int,
    pub priority: c_int,
    pub data: *mut c_void,
    pub cb: Option<ev_signal_cb>,
    pub next: *mut ev_watcher_list,
    pub signum: c_int,
}

/// `ev_async`: `EV_WATCHER(ev_async)` then `sent` (`sig_atomic_t
/// volatile`): the watcher another thread wakes with `ev_async_send`.
#[repr(C)]
pub struct ev_async {
    pub active: c_int,
    pub pending: c_int,
    pub priority: c_int,
    pub data: *mut c_void,
    pub cb: Option<ev_async_cb>,
    pub sent: c_int,
}

/// `ev_prepare`: `EV_WATCHER(ev_prepare)`: called before the loop blocks.
#[repr(C)]
pub struct ev_prepare {
    pub active: c_int,
    pub pending: c_int,
    pub priority: c_int,
    pub data: *mut c_void,
    pub cb: Option<ev_prepare_cb>,
}

macro_rules! zeroed_watcher {
    ($($t:ty),*) => {$(
        impl $t {
            /// An inactive watcher with no callback; initialise it with the
            /// matching `*_init` before starting it.
            pub fn zeroed() -> Self {
                // SAFETY: every field is an integer, a float, a raw pointer or
                // an Option of a function pointer, for which all-zero is valid.
                unsafe { std::mem::zeroed() }
            }
        }
    )*};
}
zeroed_watcher!(ev_io, ev_timer, ev_signal, ev_async, ev_prepare);

pub const EV_READ: c_int = 0x01;
pub const EV_WRITE: c_int = 0x02;
pub const EV_TIMER: c_int = 0x100;
pub const EV_SIGNAL: c_int = 0x400;
pub const EV_PREPARE: c_int = 0x4000;
pub const EV_ASYNC: c_int = 0x80000;
pub const EVBREAK_CANCEL: c_int = 0;
pub const EVBREAK_ONE: c_int = 1;
pub const EVBREAK_ALL: c_int = 2;
pub const EVRUN_NOWAIT: c_int = 1;
pub const EVRUN_ONCE: c_int = 2;
pub const EVFLAG_AUTO: c_uint = 0;

extern "C" {
    pub fn ev_version_major() -> c_int;
    pub fn ev_version_minor() -> c_int;
    pub fn ev_default_loop(flags: c_uint) -> *mut ev_loop;
    pub fn ev_loop_new(flags: c_uint) -> *mut ev_loop;
    pub fn ev_loop_destroy(lp: *mut ev_loop);
    pub fn ev_now(lp: *mut ev_loop) -> ev_tstamp;
    pub fn ev_now_update(lp: *mut ev_loop);
    pub fn ev_run(lp: *mut ev_loop, flags: c_int) -> c_int;
    pub fn ev_break(lp: *mut ev_loop, how: c_int);
    pub fn ev_io_start(lp: *mut ev_loop, w: *mut ev_io);
    pub fn ev_io_stop(lp: *mut ev_loop, w: *mut ev_io);
    pub fn ev_timer_start(lp: *mut ev_loop, w: *mut ev_timer);
    pub fn ev_timer_stop(lp: *mut ev_loop, w: *mut ev_timer);
    pub fn ev_timer_again(lp: *mut ev_loop, w: *mut ev_timer);
    pub fn ev_timer_remaining(lp: *mut ev_loop, w: *mut ev_timer) -> ev_tstamp;
    pub fn ev_signal_start(lp: *mut ev_loop, w: *mut ev_signal);
    pub fn ev_signal_stop(lp: *mut ev_loop, w: *mut ev_signal);
    pub fn ev_feed_signal_event(lp: *mut ev_loop, signum: c_int);
    pub fn ev_feed_fd_event(lp: *mut ev_loop, fd: c_int, revents: c_int);
    pub fn ev_async_start(lp: *mut ev_loop, w: *mut ev_async);
    pub fn ev_async_stop(lp: *mut ev_loop, w: *mut ev_async);
    /// The one libev call that is safe from any thread (for a started
    /// watcher of a live loop).
    pub fn ev_async_send(lp: *mut ev_loop, w: *mut ev_async);
    pub fn ev_prepare_start(lp: *mut ev_loop, w: *mut ev_prepare);
    pub fn ev_prepare_stop(lp: *mut ev_loop, w: *mut ev_prepare);
    /// A started watcher after `ev_unref` does not keep `ev_run` going;
    /// `ev_ref` before stopping it.
    pub fn ev_ref(lp: *mut ev_loop);
    pub fn ev_unref(lp: *mut ev_loop);

    // The shim (shim/ev_shim.c).
    #[link_name = "libev_sys_io_init"]
    pub fn ev_io_init(w: *mut ev_io, cb: ev_io_cb, fd: c_int, events: c_int);
    #[link_name = "libev_sys_timer_init"]
    pub fn ev_timer_init(w: *mut ev_timer, cb: ev_timer_cb, after: ev_tstamp, repeat: ev_tstamp);
    #[link_name = "libev_sys_timer_set"]
    pub fn ev_timer_set(w: *mut ev_timer, after: ev_tstamp, repeat: ev_tstamp);
    #[link_name = "libev_sys_signal_init"]
    pub fn ev_signal_init(w: *mut ev_signal, cb: ev_signal_cb, signum: c_int);
    #[link_name = "libev_sys_async_init"]
    pub fn ev_async_init(w: *mut ev_async, cb: ev_async_cb);
    #[link_name = "libev_sys_prepare_init"]
    pub fn ev_prepare_init(w: *mut ev_prepare, cb: ev_prepare_cb);
    #[link_name = "libev_sys_is_active"]
    pub fn ev_is_active(w: *const c_void) -> c_int;
    #[link_name = "libev_sys_is_pending"]
    pub fn ev_is_pending(w: *const c_void) -> c_int;
    #[link_name = "libev_sys_layout"]
    fn libev_sys_layout(what: c_int) -> c_long;
}

/// `sizeof`/`offsetof` facts as the C compiler sees `ev.h`, in the order the
/// shim reports them; used by the layout test.
pub fn c_layout() -> Vec<i64> {
    (0..)
        // SAFETY: pure function over a small integer.
        .map(|i| unsafe { libev_sys_layout(i) } as i64)
        .take_while(|&v| v >= 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn struct_layouts_match_ev_h() {
        let rust = vec![
            size_of::<ev_io>() as i64,
            offset_of!(ev_io, data) as i64,
            offset_of!(ev_io, cb) as i64,
            offset_of!(ev_io, fd) as i64,
            offset_of!(ev_io, events) as i64,
            size_of::<ev_timer>() as i64,
            offset_of!(ev_timer, data) as i64,
            offset_of!(ev_timer, cb) as i64,
            offset_of!(ev_timer, at) as i64,
            offset_of!(ev_timer, repeat) as i64,
            size_of::<ev_signal>() as i64,
            offset_of!(ev_signal, data) as i64,
            offset_of!(ev_signal, cb) as i64,
            offset_of!(ev_signal, signum) as i64,
            offset_of!(ev_io, next) as i64,
            offset_of!(ev_signal, next) as i64,
            size_of::<ev_async>() as i64,
            offset_of!(ev_async, data) as i64,
            offset_of!(ev_async, cb) as i64,
            offset_of!(ev_async, sent) as i64,
            size_of::<ev_prepare>() as i64,
            offset_of!(ev_prepare, data) as i64,
            offset_of!(ev_prepare, cb) as i64,
        ];
        assert_eq!(rust, c_layout());
    }

    unsafe extern "C" fn on_async(lp: *mut ev_loop, w: *mut ev_async, revents: c_int) {
        assert_eq!(revents & EV_ASYNC, EV_ASYNC);
        *((*w).data as *mut u32) += 1;
        ev_async_stop(lp, w);
    }

    unsafe extern "C" fn on_prepare(_lp: *mut ev_loop, w: *mut ev_prepare, revents: c_int) {
        assert_eq!(revents & EV_PREPARE, EV_PREPARE);
        *((*w).data as *mut u32) += 1;
    }

    /// Another thread wakes the loop through an `ev_async`; an unref'd
    /// prepare watcher runs before the loop blocks but does not keep it
    /// going once the async watcher stopped.
    #[test]
    fn an_async_watcher_wakes_the_loop_from_another_thread() {
        unsafe {
            let lp = ev_loop_new(EVFLAG_AUTO);
            let (mut woken, mut prepared) = (0u32, 0u32);
            let mut a = Box::new(ev_async::zeroed());
            ev_async_init(&mut *a, on_async);
            a.data = &mut woken as *mut u32 as *mut c_void;
            ev_async_start(lp, &mut *a);
            let mut p = Box::new(ev_prepare::zeroed());
            ev_prepare_init(&mut *p, on_prepare);
            p.data = &mut prepared as *mut u32 as *mut c_void;
            ev_prepare_start(lp, &mut *p);
            ev_unref(lp);
            let (lpn, an) = (lp as usize, &mut *a as *mut ev_async as usize);
            let t = std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                ev_async_send(lpn as *mut ev_loop, an as *mut ev_async);
            });
            ev_run(lp, 0);
            t.join().unwrap();
            assert_eq!(woken, 1);
            assert!(prepared >= 1);
            ev_ref(lp);
            ev_prepare_stop(lp, &mut *p);
            ev_loop_destroy(lp);
        }
    }

    #[test]
    fn system_libev_is_version_4() {
        assert_eq!(unsafe { ev_version_major() }, 4);
    }

    unsafe extern "C" fn on_timer(lp: *mut ev_loop, w: *mut ev_timer, revents: c_int) {
        assert_eq!(revents & EV_TIMER, EV_TIMER);
        *((*w).data as *mut u32) += 1;
        ev_break(lp, EVBREAK_ONE);
    }

    #[test]
    fn timer_fires_through_the_shim() {
        unsafe {
            let lp = ev_loop_new(EVFLAG_AUTO);
            assert!(!lp.is_null());
            let mut fired = 0u32;
            let mut t = Box::new(ev_timer::zeroed());
            ev_timer_init(&mut *t, on_timer, 0.001, 0.0);
            t.data = &mut fired as *mut u32 as *mut c_void;
            assert_eq!(ev_is_active(&*t as *const ev_timer as *const c_void), 0);
            ev_timer_start(lp, &mut *t);
            assert_ne!(ev_is_active(&*t as *const ev_timer as *const c_void), 0);
            ev_run(lp, 0);
            assert_eq!(fired, 1);
            assert_eq!(ev_is_active(&*t as *const ev_timer as *const c_void), 0);
            ev_loop_destroy(lp);
        }
    }

    unsafe extern "C" fn on_io(lp: *mut ev_loop, w: *mut ev_io, revents: c_int) {
        assert_eq!(revents & EV_READ, EV_READ);
        *((*w).data as *mut c_int) = (*w).fd;
        ev_io_stop(lp, w);
    }

    #[test]
    fn io_watcher_sees_a_readable_pipe() {
        unsafe {
            let mut fds = [0 as c_int; 2];
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            assert_eq!(libc::write(fds[1], b"x".as_ptr() as *const c_void, 1), 1);
            let lp = ev_loop_new(EVFLAG_AUTO);
            let mut seen: c_int = -1;
            let mut w = Box::new(ev_io::zeroed());
            ev_io_init(&mut *w, on_io, fds[0], EV_READ);
            w.data = &mut seen as *mut c_int as *mut c_void;
            ev_io_start(lp, &mut *w);
            ev_run(lp, 0);
            assert_eq!(seen, fds[0]);
            ev_loop_destroy(lp);
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
}
