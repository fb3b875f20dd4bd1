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

/// A C header field that [`check_headers`] accepted: its name and value
/// are quiche header fields read in place from the caller's memory (no
/// copy), for as long as the slice it came in lives.
#[repr(transparent)]
pub struct CheckedHeader(quiche_ev_header);

impl h3::NameValue for CheckedHeader {
    fn name(&self) -> &[u8] {
        // SAFETY: checked non-NULL (or empty) by check_headers, valid for
        // the call that handed it over, which `&self` does not outlive.
        unsafe { as_bytes(self.0.name, self.0.name_len) }.unwrap_or_default()
    }

    fn value(&self) -> &[u8] {
        // SAFETY: as for name.
        unsafe { as_bytes(self.0.value, self.0.value_len) }.unwrap_or_default()
    }
}

/// Bytes a header name may have: lowercase tokens (visible ASCII, no
/// uppercase letter).
static NAME_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0x21;
    while b < 0x7f {
        t[b] = !(b >= b'A' as usize && b <= b'Z' as usize);
        b += 1;
    }
    t
};

/// `n` C headers, checked: names must be non-empty lowercase tokens, not
/// pseudo-headers; values must not contain CR, LF or NUL. Nothing is
/// copied.
///
/// # Safety
/// A non-NULL `headers` must point to `n` headers whose pointers are
/// valid for their lengths, for `'a`.
pub unsafe fn check_headers<'a>(headers: *const quiche_ev_header, n: usize)
                                -> Result<&'a [CheckedHeader], libc::c_int> {
    if n == 0 {
        return Ok(&[]);
    }
    if headers.is_null() {
        return Err(QUICHE_EV_ERR_NULL);
    }
    // SAFETY: per the contract above.
    let list = unsafe { std::slice::from_raw_parts(headers, n) };
    for h in list {
        // SAFETY: per the contract above.
        let (Some(name), Some(value)) = (unsafe { as_bytes(h.name, h.name_len) }, unsafe { as_bytes(h.value, h.value_len) })
        else {
            return Err(QUICHE_EV_ERR_NULL);
        };
        let name_ok = !name.is_empty() && name[0] != b':' && name.iter().all(|&b| NAME_BYTE[b as usize]);
        let value_ok = !value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0);
        if !name_ok || !value_ok {
            report(format!("header {:?} refused: names are lowercase tokens, values have no CR, LF or NUL",
                           String::from_utf8_lossy(name)));
            return Err(QUICHE_EV_ERR_INVALID);
        }
    }
    // SAFETY: CheckedHeader is a transparent wrapper, and every element
    // was checked.
    Ok(unsafe { std::slice::from_raw_parts(list.as_ptr().cast::<CheckedHeader>(), n) })
}

/// As [`check_headers`], copied into quiche's owned header type (for
/// headers kept beyond the call).
///
/// # Safety
/// As for [`check_headers`].
pub unsafe fn headers_from_c(headers: *const quiche_ev_header, n: usize) -> Result<Vec<h3::Header>, libc::c_int> {
    use quiche::h3::NameValue;
    // SAFETY: per the contract above; the references die here.
    let list = unsafe { check_headers(headers, n) }?;
    Ok(list.iter().map(|h| h3::Header::new(h.name(), h.value())).collect())
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

    /// Every byte a name or a value may have, and none other.
    #[test]
    fn header_bytes_are_checked_one_by_one() {
        use quiche::h3::NameValue;
        for b in 0..=255u8 {
            let name = [b'x', b];
            let h = [quiche_ev_header { name: name.as_ptr(), name_len: 2, value: name.as_ptr(), value_len: 2 }];
            let name_ok = b.is_ascii_graphic() && !b.is_ascii_uppercase();
            let value_ok = !matches!(b, b'\r' | b'\n' | 0);
            match unsafe { check_headers(h.as_ptr(), 1) } {
                Ok(list) => {
                    assert!(name_ok && value_ok, "byte {b:#x} let through");
                    assert_eq!((list[0].name(), list[0].value()), (&name[..], &name[..]), "read in place");
                }
                Err(e) => assert!(!(name_ok && value_ok) && e == QUICHE_EV_ERR_INVALID, "byte {b:#x}: {e}"),
            }
        }
        let empty = [quiche_ev_header { name: b"x".as_ptr(), name_len: 1, value: std::ptr::null(), value_len: 0 }];
        assert_eq!(unsafe { check_headers(empty.as_ptr(), 1) }.map(|l| l[0].value().len()), Ok(0));
    }
}
