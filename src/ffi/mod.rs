//! Every `extern "C"` item of the C API (`include/quiche_ev.h`), and
//! nothing else. Each body runs inside a panic boundary and checks its
//! pointers; errors are negative `QUICHE_EV_ERR_*` values or NULL.

// C names for C types.
#![allow(non_camel_case_types)]
// These are C entry points: C cannot see `unsafe`, so each function takes
// raw pointers, checks them (NULL gives an error value) and documents its
// contract in the header instead.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

pub mod client;
pub mod guard;
pub mod server;
pub mod types;

use libc::c_int;

/// A required pointer argument was NULL.
pub const QUICHE_EV_ERR_NULL: c_int = -1;
/// An argument was out of range or unusable (the message on stderr says
/// which).
pub const QUICHE_EV_ERR_INVALID: c_int = -2;
/// An internal error was caught (a Rust panic); the object should be freed.
pub const QUICHE_EV_ERR_INTERNAL: c_int = -3;
