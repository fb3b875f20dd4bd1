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
pub mod errors;
pub mod guard;
pub mod meta;
pub mod server;
pub mod types;

pub use errors::*;
