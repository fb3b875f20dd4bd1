//! The application layer: HTTP/3 and hq-interop requests and responses on
//! top of the transport (`server`, `client`), delivered to the host's
//! callbacks or, when it set none, to the built-in applications (upstream's
//! `byez`, files under a root, the example clients' output), which use
//! the same path.
//!
//! The transport calls it through `hooks`; the host through `ffi`.

pub mod body;
pub mod builtin;
pub mod client;
pub mod files;
pub mod held;
pub mod output;
pub mod request;
pub mod server;
