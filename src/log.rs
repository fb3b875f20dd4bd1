//! The library's log: silent unless the host installed a callback with
//! `quiche_ev_set_log` (or `quiche_ev_set_logger`), and then only up to the
//! level it chose.
//!
//! The level is one atomic load, checked before anything is formatted, so
//! a quiet library pays nothing on its hot paths (junk datagrams, every
//! packet).
//!
//! Each message carries its origin: the handle (server or client) and the
//! server connection it is about, when there is one. The handle machinery
//! and the connection service set it for the thread while they run
//! ([`within`]), so a host with several servers and clients in one process
//! can tell who logged a line.

use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use libc::{c_int, c_void};

/// Log levels, as the C API numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

impl Level {
    pub fn from_c(level: c_int) -> Option<Level> {
        match level {
            1 => Some(Level::Error),
            2 => Some(Level::Warn),
            3 => Some(Level::Info),
            4 => Some(Level::Debug),
            _ => None,
        }
    }
}

/// Who a message is about: addresses of the library's own objects (the C
/// API hands the same addresses out as its handles), null where none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    pub server: *const c_void,
    pub client: *const c_void,
    /// A server connection.
    pub conn: *const c_void,
}

impl Origin {
    pub const NONE: Origin = Origin { server: std::ptr::null(), client: std::ptr::null(), conn: std::ptr::null() };
}

thread_local! {
    static ORIGIN: Cell<Origin> = const { Cell::new(Origin::NONE) };
}

/// Runs `f` with `change` applied to this thread's origin, restoring the
/// previous one afterwards (also when `f` panics).
pub fn within<R>(change: impl FnOnce(&mut Origin), f: impl FnOnce() -> R) -> R {
    struct Restore(Origin);
    impl Drop for Restore {
        fn drop(&mut self) {
            ORIGIN.with(|o| o.set(self.0));
        }
    }
    let before = ORIGIN.with(|o| o.get());
    let _restore = Restore(before);
    let mut now = before;
    change(&mut now);
    ORIGIN.with(|o| o.set(now));
    f()
}

/// The origin messages from this thread have now.
pub fn origin() -> Origin {
    ORIGIN.with(|o| o.get())
}

/// Where messages go: installed by the C API (`quiche_ev_set_log*`).
pub type Sink = dyn Fn(Level, &CStr, &Origin) + Send + Sync;

/// 0: off; otherwise the most verbose level that is delivered.
static LEVEL: AtomicU8 = AtomicU8::new(0);
static SINK: Mutex<Option<Arc<Sink>>> = Mutex::new(None);

/// Installs (or with `None`, removes) the sink.
pub fn set(sink: Option<Arc<Sink>>, level: Level) {
    let mut s = SINK.lock().unwrap_or_else(|p| p.into_inner());
    LEVEL.store(if sink.is_some() { level as u8 } else { 0 }, Ordering::Relaxed);
    *s = sink;
}

#[inline]
pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Formats and delivers one message (callers check [`enabled`] first,
/// through the `log_*!` macros).
#[cold]
pub fn emit(level: Level, args: fmt::Arguments) {
    let text = fmt::format(args);
    let msg = CString::new(text).unwrap_or_else(|e| {
        let mut v = e.into_vec();
        v.retain(|&b| b != 0);
        CString::new(v).expect("NULs removed")
    });
    // Copy the sink out: it may itself install another.
    let sink = SINK.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(sink) = sink {
        sink(level, &msg, &origin());
    }
}

/// `log_error!(...)` .. `log_debug!(...)`: like `format!`, but nothing is
/// evaluated or formatted unless the level is enabled.
macro_rules! log_at {
    ($level:expr, $($arg:tt)*) => {
        if $crate::log::enabled($level) {
            $crate::log::emit($level, format_args!($($arg)*))
        }
    };
}
macro_rules! log_error { ($($arg:tt)*) => { log_at!($crate::log::Level::Error, $($arg)*) }; }
macro_rules! log_warn { ($($arg:tt)*) => { log_at!($crate::log::Level::Warn, $($arg)*) }; }
macro_rules! log_info { ($($arg:tt)*) => { log_at!($crate::log::Level::Info, $($arg)*) }; }
macro_rules! log_debug { ($($arg:tt)*) => { log_at!($crate::log::Level::Debug, $($arg)*) }; }
