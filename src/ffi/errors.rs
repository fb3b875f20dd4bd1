//! The C API's error codes (`QUICHE_EV_ERR_*`, negative; 0 is success),
//! `quiche_ev_strerror`, their descriptions, and the failures a C caller
//! can read back (`quiche_ev_last_error`).

use std::cell::RefCell;
use std::ffi::{CStr, CString};

use libc::{c_char, c_int};

use crate::unwind::guard;

/// A required pointer argument was NULL.
pub const QUICHE_EV_ERR_NULL: c_int = -1;
/// An argument was out of range or unusable.
pub const QUICHE_EV_ERR_INVALID: c_int = -2;
/// An internal error was caught (a Rust panic); the object is unusable and
/// should be freed.
pub const QUICHE_EV_ERR_INTERNAL: c_int = -3;
/// Not allowed in the current state (e.g. responding twice, or a server
/// that is shutting down).
pub const QUICHE_EV_ERR_STATE: c_int = -4;
/// The stream or connection is already closed.
pub const QUICHE_EV_ERR_CLOSED: c_int = -5;
/// quiche refused the operation.
pub const QUICHE_EV_ERR_TRANSPORT: c_int = -6;
/// Not supported by this protocol or this build.
pub const QUICHE_EV_ERR_UNSUPPORTED: c_int = -7;
/// Nothing was wrong, but there is no room now: try again from the
/// writable callback (e.g. trailers that do not fit the send window).
pub const QUICHE_EV_ERR_AGAIN: c_int = -8;
/// Larger than the peer accepts: a datagram over the size its transport
/// parameters and the path allow (see the `_datagram_max_len` functions).
pub const QUICHE_EV_ERR_TOO_LARGE: c_int = -9;

/// What `quiche_ev_strerror` says for a code it does not know.
const UNKNOWN: &CStr = c"unknown quiche-ev error code";

/// The description of `code`; every code above has its own.
fn describe(code: c_int) -> &'static CStr {
    match code {
        0 => c"success",
        QUICHE_EV_ERR_NULL => c"a required pointer argument was NULL",
        QUICHE_EV_ERR_INVALID => c"an argument was out of range or unusable",
        QUICHE_EV_ERR_INTERNAL => c"internal error caught; the object is unusable",
        QUICHE_EV_ERR_STATE => c"not allowed in the current state",
        QUICHE_EV_ERR_CLOSED => c"the stream or connection is already closed",
        QUICHE_EV_ERR_TRANSPORT => c"quiche refused the operation",
        QUICHE_EV_ERR_UNSUPPORTED => c"not supported by this protocol or build",
        QUICHE_EV_ERR_AGAIN => c"no room now; try again when writable",
        QUICHE_EV_ERR_TOO_LARGE => c"larger than the peer accepts",
        _ => UNKNOWN,
    }
}

/// A static, NUL-terminated English description of `code`: "success" for
/// 0, one sentence for each `QUICHE_EV_ERR_*` code, and a generic text for
/// any other value. Never NULL; do not free it.
#[no_mangle]
pub extern "C" fn quiche_ev_strerror(code: c_int) -> *const c_char {
    guard(UNKNOWN.as_ptr(), || describe(code).as_ptr())
}

/// Why the last quiche-ev call that failed on this thread failed (a NULL
/// from a `_new`, a negative error code), in one English line: the same
/// text the log gets at error level, here also without a log callback.
/// NULL when no call failed yet. Valid until the next failing call on
/// this thread; do not free it. Calls that succeed leave it as it is.
#[no_mangle]
pub extern "C" fn quiche_ev_last_error() -> *const c_char {
    guard(std::ptr::null(), last_error)
}

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// This thread's last error, as text.
pub fn last_error_text() -> Option<String> {
    LAST_ERROR.with(|e| e.borrow().as_ref().map(|c| c.to_string_lossy().into_owned()))
}

/// A call failed for `why`: logged (error level) and kept as this
/// thread's last error.
pub fn report(why: String) {
    log_error!("{why}");
    let c = CString::new(why.replace('\0', "")).expect("NULs removed");
    LAST_ERROR.with(|e| *e.borrow_mut() = Some(c));
}

/// This thread's last error, NUL-terminated; NULL when none.
pub fn last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ref().map_or(std::ptr::null(), |c| c.as_ptr()))
}
