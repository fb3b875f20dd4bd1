//! Every `extern "C"` item of the C API (`include/quiche_ev.h`), and
//! nothing else. Each body runs inside a panic boundary and checks its
//! pointers; errors are negative `QUICHE_EV_ERR_*` values or NULL.
//!
//! Threads and re-entrancy: a handle (server, client, and the requests and
//! connections it hands out) belongs to the thread running its loop; call
//! its functions only there. A group of workers runs each worker's server
//! on the worker's own thread; the group's functions say which thread may
//! call them (`workers`). Any function may be called from inside the
//! library's callbacks, including `_free` of the handle whose callback is
//! running (the free then waits until that callback returns) — except from
//! the log callback, which must call nothing.

// C names for C types.
#![allow(non_camel_case_types)]
// These are C entry points: C cannot see `unsafe`, so each function takes
// raw pointers, checks them (NULL gives an error value) and documents its
// contract in the header instead.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

pub mod client;
pub mod conn;
pub mod datagram;
pub mod errors;
pub mod guard;
pub mod handles;
pub mod host;
pub mod log;
pub mod meta;
pub mod request;
pub mod server;
pub mod tls;
pub mod types;
/// (Threads, sockets and the kernel's steering: the real platform only;
/// tests/workers_api.rs calls it.)
#[cfg(not(test))]
pub mod workers;

pub use errors::*;
