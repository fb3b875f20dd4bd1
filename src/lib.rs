//! quiche-ev: the event logic of quiche's C examples (`recv_cb`,
//! `timeout_cb`, `flush_egress`, `create_conn`, `mint_token`,
//! `validate_token`, version negotiation, stateless retry and the connection
//! table), written once in Rust and driven by libev watchers that the C
//! programs set up, plus an application layer (HTTP/3 and hq-interop
//! requests and responses) that C programs program against. See
//! `include/quiche_ev.h` for the C API.
//!
//! Layers, data and calls flowing one way (no module names one to its
//! left; `make test` checks it):
//!
//! ```text
//! socket      -> transport                       -> application -> C API
//! (batch_io,     (handle, server/, client, driver,   (app/)         (ffi/)
//!  dgram,         egress, table, cid, token,
//!  socket)        stateless, secrets, hooks,
//!                 tickets, quic_lb, steer)
//! ```
//!
//! Under all of them: `log`, `unwind` (the panic boundary), `crypto`.

#[macro_use]
pub mod log;

pub mod app;
pub mod batch_io;
pub mod cid;
pub mod client;
pub mod crypto;
pub mod dgram;
pub mod driver;
pub mod egress;
pub mod evloop;
pub mod ffi;
pub mod handle;
pub mod hooks;
pub mod id_hash;
pub mod observe;
pub mod platform;
pub mod quic_lb;
pub mod reentry;
pub mod secrets;
pub mod server;
pub mod socket;
pub mod stateless;
/// On-host steering: a CID's worker bits everywhere; Linux's classic-BPF
/// reuseport groups (elsewhere their calls say they need Linux).
pub mod steer;
pub mod table;
pub mod tickets;
pub mod token;
pub mod transport;
pub mod unwind;
pub mod workers;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod careless_tests;
#[cfg(test)]
mod model_tests;

/// Largest UDP payload we send or accept, as upstream's `MAX_DATAGRAM_SIZE`.
pub const MAX_DATAGRAM_SIZE: usize = 1350;

/// Length of every connection ID we choose (upstream's `LOCAL_CONN_ID_LEN`).
pub const LOCAL_CONN_ID_LEN: usize = 16;

