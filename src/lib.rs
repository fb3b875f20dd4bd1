//! quiche-ev: the event logic of quiche's C examples (`recv_cb`,
//! `timeout_cb`, `flush_egress`, `create_conn`, `mint_token`,
//! `validate_token`, version negotiation, stateless retry and the connection
//! table), written once in Rust and driven by libev watchers that the C
//! programs set up. See `include/quiche_ev.h` for the C API.

pub mod app;
pub mod batch_io;
pub mod cid;
pub mod client;
pub mod conn_io;
pub mod ffi;
pub mod server;
pub mod socket;
pub mod stateless;
pub mod token;

/// Largest UDP payload we send or accept, as upstream's `MAX_DATAGRAM_SIZE`.
pub const MAX_DATAGRAM_SIZE: usize = 1350;

/// Length of every connection ID we choose (upstream's `LOCAL_CONN_ID_LEN`).
pub const LOCAL_CONN_ID_LEN: usize = 16;
