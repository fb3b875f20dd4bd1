//! The panic boundary of every exported body, and the pointer helpers:
//! the only places where C's pointers become Rust references.

use std::ffi::CStr;

use libc::c_char;
use quiche::h3;

use super::errors::{report, QUICHE_EV_ERR_INVALID, QUICHE_EV_ERR_NULL};
use super::types::quiche_ev_header;
use crate::handle::{Handle, Role};
use crate::platform::Platform;

pub use crate::unwind::guard;

/// Runs `f`, a C API call on handle `h`; a panic becomes `on_panic` and
/// fails the handle (its host hears it from the loop, as after a panic in
/// a callback).
pub fn guard_on<P: Platform, R: Role<P>, T>(h: *const Handle<P, R>, on_panic: T, f: impl FnOnce() -> T) -> T {
    let mut panicked = true;
    let r = guard(on_panic, || {
        let v = f();
        panicked = false;
        v
    });
    if panicked {
        // SAFETY: h is the live handle the call was made on.
        unsafe { Handle::fail_soon(h) };
    }
    r
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

/// `len` bytes at `p` (empty for a zero length, whatever `p`); `None` for
/// NULL with a non-zero length.
///
/// # Safety
/// A non-NULL `p` must point to `len` readable bytes.
pub unsafe fn as_bytes<'a>(p: *const u8, len: usize) -> Option<&'a [u8]> {
    if len == 0 {
        return Some(&[]);
    }
    if p.is_null() {
        return None;
    }
    // SAFETY: per the contract above.
    Some(unsafe { std::slice::from_raw_parts(p, len) })
}

/// `n` C headers as quiche header references, borrowed from the caller's
/// memory (no copy). Names must be non-empty lowercase tokens, not
/// pseudo-headers; values must not contain CR, LF or NUL.
///
/// # Safety
/// A non-NULL `headers` must point to `n` headers whose pointers are
/// valid for their lengths, for `'a`.
pub unsafe fn header_refs_from_c<'a>(headers: *const quiche_ev_header, n: usize)
                                     -> Result<Vec<h3::HeaderRef<'a>>, libc::c_int> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if headers.is_null() {
        return Err(QUICHE_EV_ERR_NULL);
    }
    // SAFETY: per the contract above.
    let list = unsafe { std::slice::from_raw_parts(headers, n) };
    let mut out = Vec::with_capacity(n);
    for h in list {
        // SAFETY: per the contract above.
        let (Some(name), Some(value)) = (unsafe { as_bytes(h.name, h.name_len) }, unsafe { as_bytes(h.value, h.value_len) })
        else {
            return Err(QUICHE_EV_ERR_NULL);
        };
        let name_ok = !name.is_empty() && name[0] != b':'
            && name.iter().all(|&b| b.is_ascii_graphic() && !b.is_ascii_uppercase());
        let value_ok = value.iter().all(|&b| b != b'\r' && b != b'\n' && b != 0);
        if !name_ok || !value_ok {
            report(format!("header {:?} refused: names are lowercase tokens, values have no CR, LF or NUL",
                           String::from_utf8_lossy(name)));
            return Err(QUICHE_EV_ERR_INVALID);
        }
        out.push(h3::HeaderRef::new(name, value));
    }
    Ok(out)
}

/// As [`header_refs_from_c`], copied into quiche's owned header type (for
/// headers kept beyond the call).
///
/// # Safety
/// As for [`header_refs_from_c`].
pub unsafe fn headers_from_c(headers: *const quiche_ev_header, n: usize) -> Result<Vec<h3::Header>, libc::c_int> {
    use quiche::h3::NameValue;
    // SAFETY: per the contract above; the references die here.
    let refs = unsafe { header_refs_from_c(headers, n) }?;
    Ok(refs.iter().map(|h| h3::Header::new(h.name(), h.value())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_checked() {
        let ok = [quiche_ev_header { name: b"x-a".as_ptr(), name_len: 3, value: b"1".as_ptr(), value_len: 1 }];
        assert_eq!(unsafe { headers_from_c(ok.as_ptr(), 1) }.unwrap().len(), 1);
        for (n, v) in [(&b"X-A"[..], &b"1"[..]), (b":status", b"1"), (b"x", b"a\r\nb"), (b"", b"1")] {
            let h = [quiche_ev_header { name: n.as_ptr(), name_len: n.len(), value: v.as_ptr(), value_len: v.len() }];
            assert_eq!(unsafe { headers_from_c(h.as_ptr(), 1) }.unwrap_err(), QUICHE_EV_ERR_INVALID);
        }
        assert_eq!(unsafe { headers_from_c(std::ptr::null(), 2) }.unwrap_err(), QUICHE_EV_ERR_NULL);
    }
}
