//! The application layer: HTTP/3 and hq-interop requests and responses on
//! top of the transport (`server`, `client`), delivered to the host
//! (`host`: the C API implements it) or, where it set no callback, to the
//! built-in applications (upstream's `byez`, files under a root, the
//! example clients' output), which use the same path.
//!
//! The transport calls it through `hooks`; it is generic over the
//! platform (`framing`), so the tests run it on an in-memory connection.

pub mod body;
pub mod builtin;
pub mod client;
pub mod datagram;
pub mod files;
pub mod framing;
pub mod h3;
pub mod held;
pub mod host;
pub mod hq;
pub mod output;
pub mod proto;
pub mod request;
pub mod server;
