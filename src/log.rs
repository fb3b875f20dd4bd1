//! The library's log: silent unless the host installed a callback with
//! `quiche_ev_set_log`, and then only up to the level it chose.
//!
//! The level is one atomic load, checked before anything is formatted, so
//! a quiet library pays nothing on its hot paths (junk datagrams, every
//! packet).

use std::ffi::CString;
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

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

/// The host's log callback: `(level, NUL-terminated message, user)`.
pub type LogFn = unsafe extern "C" fn(c_int, *const libc::c_char, *mut c_void);

struct Sink {
    cb: LogFn,
    user: *mut c_void,
}

// SAFETY: the user pointer is the host's; the C API documents that the
// callback may be called from whichever thread runs a loop with our
// handles, so the host is responsible for its thread safety.
unsafe impl Send for Sink {}

/// 0: off; otherwise the most verbose level that is delivered.
static LEVEL: AtomicU8 = AtomicU8::new(0);
static SINK: Mutex<Option<Sink>> = Mutex::new(None);

/// Installs (or with `None`, removes) the log callback.
pub fn set(cb: Option<LogFn>, user: *mut c_void, level: Level) {
    let mut sink = SINK.lock().unwrap_or_else(|p| p.into_inner());
    *sink = cb.map(|cb| Sink { cb, user });
    LEVEL.store(if sink.is_some() { level as u8 } else { 0 }, Ordering::Relaxed);
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
    // Copy the callback out: it may itself call quiche_ev_set_log.
    let sink = {
        let s = SINK.lock().unwrap_or_else(|p| p.into_inner());
        s.as_ref().map(|s| (s.cb, s.user))
    };
    if let Some((cb, user)) = sink {
        // SAFETY: the host's callback, with a valid C string for the call.
        unsafe { cb(level as c_int, msg.as_ptr(), user) };
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
