//! `quiche_ev_version` and `quiche_ev_quiche_version`: which library was
//! built and which quiche it carries. (The header's `QUICHE_EV_VERSION*`
//! macros, for compile time, are written by build.rs from the same
//! Cargo.toml version.)

use libc::c_char;

use super::guard::guard;

/// quiche-ev's version (Cargo.toml), NUL-terminated.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The quiche version pinned in Cargo.toml (`quiche = "=0.30.0"`),
/// NUL-terminated. tests/ffi_contract.rs checks it against the linked
/// quiche's own `quiche_version()`.
const QUICHE_VERSION: &str = "0.30.0\0";

/// The version of the quiche-ev library in use (Cargo.toml's, e.g.
/// "0.1.0"), as a static string. Compare with `QUICHE_EV_VERSION` (the header's) to
/// detect a header and library mismatch.
#[no_mangle]
pub extern "C" fn quiche_ev_version() -> *const c_char {
    guard(VERSION.as_ptr().cast(), || VERSION.as_ptr().cast())
}

/// The version of quiche built into this library ("0.30.0"), as a static
/// string: the `quiche.h` installed beside `quiche_ev.h` is that version's.
/// quiche's own `quiche_version()` gives the same.
#[no_mangle]
pub extern "C" fn quiche_ev_quiche_version() -> *const c_char {
    guard(QUICHE_VERSION.as_ptr().cast(), || QUICHE_VERSION.as_ptr().cast())
}
