//! What the transport calls on the application layer: the seam between
//! `server`/`client` (datagrams, drivers, CIDs) and `app` (requests,
//! responses, the host's callbacks).
//!
//! Hooks run while the transport holds its state borrowed, so they must
//! never call the host. Whatever the host must hear becomes an event,
//! queued, and delivered later by `deliver`, when no Rust borrow of any
//! handle is alive: that is what lets a host callback call back into the
//! library (respond, write, close, shut down, even free the handle).

use crate::platform::Platform;
use crate::transport::{CloseInfo, ConnStats};

/// A connection as the application layer's events name it (the address
/// of the server's per-connection box; valid until its closed event has
/// been delivered).
pub type ConnRef = *const libc::c_void;

/// The server-side application: one value per connection, plus `Shared`
/// for the whole server.
pub trait ServerApp<P: Platform>: Sized {
    /// Server-wide settings and the queue of events for the host.
    type Shared;
    /// What the host hears (delivered by [`ServerApp::deliver`]).
    type Event;

    fn new_conn(shared: &mut Self::Shared) -> Self;
    /// The handshake completed. `me` names this connection in events.
    fn on_established(&mut self, conn: &mut P::Conn, shared: &mut Self::Shared, me: ConnRef);
    /// Packets arrived, a timer fired, or the socket or flow control made
    /// room: read requests, continue responses.
    fn on_input(&mut self, conn: &mut P::Conn, shared: &mut Self::Shared, me: ConnRef);
    /// Requests in flight, or responses not yet delivered (a draining
    /// server waits for them).
    fn is_busy(&mut self, conn: &mut P::Conn) -> bool;
    /// Work waits on something other than the peer (a file read that
    /// would block): call `on_input` again soon.
    fn wants_retry(&self) -> bool;
    /// The server is shutting down: tell the peer (HTTP/3 GOAWAY). First
    /// with `last` false (requests already on their way are still
    /// served), then, after a grace period, with `last` true (from now on
    /// new requests are refused).
    fn on_shutdown(&mut self, conn: &mut P::Conn, last: bool);
    /// The code a draining server closes with: (application close, code).
    fn close_code(&self) -> (bool, u64);
    /// The connection is gone: release its requests.
    fn on_closed(&mut self, shared: &mut Self::Shared, stats: &ConnStats, info: &CloseInfo, me: ConnRef);

    fn next_event(shared: &mut Self::Shared) -> Option<Self::Event>;
    /// Delivers one event to the host.
    ///
    /// # Safety
    /// Called with no borrow of the server alive.
    unsafe fn deliver(ev: Self::Event);
}

/// The client-side application (one connection).
pub trait ClientApp<P: Platform>: Sized {
    type Event;

    fn on_established(&mut self, conn: &mut P::Conn);
    fn on_input(&mut self, conn: &mut P::Conn);
    /// Nothing left to do: the client may close.
    fn is_done(&self) -> bool;
    /// The connection is over; `conn` still holds what it received.
    fn on_closed(&mut self, conn: &mut P::Conn, stats: &ConnStats, info: &CloseInfo);
    /// Responses still being delivered after the connection ended (the
    /// host paused them; their bytes had all arrived): the closed event
    /// waits for them.
    fn delivering(&self) -> bool;

    fn next_event(&mut self) -> Option<Self::Event>;
    /// # Safety
    /// Called with no borrow of the client alive.
    unsafe fn deliver(ev: Self::Event);
}
