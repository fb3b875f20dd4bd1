//! The panic boundary: a panic inside the library is caught here, logged,
//! and turned into a value; it never unwinds into C (or through libev).
//! Every layer uses it: the handle machinery around each libev callback,
//! the C API around each exported body.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

fn panic_message(p: &(dyn Any + Send)) -> &str {
    p.downcast_ref::<&str>().copied()
        .or_else(|| p.downcast_ref::<String>().map(|s| s.as_str()))
        .unwrap_or("unknown panic")
}

/// Runs `f`; a panic is logged (error level) and becomes `on_panic`.
pub fn guard<R>(on_panic: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            log_error!("quiche-ev: internal error: {}", panic_message(&*p));
            on_panic
        }
    }
}

#[cfg(test)]
mod tests {
    use super::guard;

    #[test]
    fn a_panic_becomes_the_error_value() {
        assert_eq!(guard(-3, || -> i32 { panic!("boom") }), -3);
        assert_eq!(guard(-3, || 7), 7);
    }
}
