//! The panic boundary and the pointer helpers: the only places where C's
//! pointers become Rust references.

use std::any::Any;
use std::ffi::CStr;
use std::panic::{catch_unwind, AssertUnwindSafe};

use libc::c_char;
use libev_sys::{ev_break, ev_loop, EVBREAK_ALL};

fn panic_message(p: &(dyn Any + Send)) -> &str {
    p.downcast_ref::<&str>().copied()
        .or_else(|| p.downcast_ref::<String>().map(|s| s.as_str()))
        .unwrap_or("unknown panic")
}

/// Runs `f`; a panic is reported on stderr and becomes `on_panic`.
pub fn guard<R>(on_panic: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            eprintln!("quiche-ev: internal error: {}", panic_message(&*p));
            on_panic
        }
    }
}

/// The boundary for callbacks that libev calls: a panic stops the loop,
/// since the state behind the callback can no longer be trusted.
pub fn callback(lp: *mut ev_loop, f: impl FnOnce()) {
    let ok = guard(false, || {
        f();
        true
    });
    if !ok && !lp.is_null() {
        // SAFETY: lp is the loop that invoked the callback.
        unsafe { ev_break(lp, EVBREAK_ALL) };
    }
}

/// A shared reference from a C pointer, `None` for NULL.
///
/// # Safety
/// A non-NULL `p` must point to a live `T` not mutated for `'a`.
pub unsafe fn as_ref<'a, T>(p: *const T) -> Option<&'a T> {
    // SAFETY: per the contract above.
    unsafe { p.as_ref() }
}

/// An exclusive reference from a C pointer, `None` for NULL.
///
/// # Safety
/// A non-NULL `p` must point to a live `T` with no other reference for `'a`.
pub unsafe fn as_mut<'a, T>(p: *mut T) -> Option<&'a mut T> {
    // SAFETY: per the contract above.
    unsafe { p.as_mut() }
}

/// A UTF-8 string from a C string, `None` for NULL or invalid UTF-8.
///
/// # Safety
/// A non-NULL `p` must point to a NUL-terminated string.
pub unsafe fn as_str<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        return None;
    }
    // SAFETY: per the contract above.
    unsafe { CStr::from_ptr(p) }.to_str().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_the_error_value() {
        assert_eq!(guard(-3, || -> i32 { panic!("boom") }), -3);
        assert_eq!(guard(-3, || 7), 7);
    }

    #[test]
    fn a_panicking_callback_does_not_unwind() {
        callback(std::ptr::null_mut(), || panic!("in a callback"));
    }
}
