//! The application seam: what the transport (`server`, `client`:
//! datagrams, drivers, CIDs) calls on the application layer (`app`:
//! requests, responses, and everything the host hears).
//!
//! Hooks run while the transport holds its state borrowed, so they must
//! never call the host. Whatever the host must hear becomes an event,
//! queued, and delivered later by `deliver`, when no Rust borrow of any
//! handle is alive: that is what lets a host callback call back into the
//! library (respond, write, close, shut down, even free the handle).
//! The transport itself has no word for a host callback: a stopped
//! server or a finished client is one more event through this seam.

use crate::platform::Platform;
use crate::transport::{CloseInfo, ConnStats};

/// A server connection as the application layer's events name it (the
/// address of the transport's per-connection box; valid until its closed
/// event has been delivered).
pub type ConnRef = *const libc::c_void;

/// A handle (server or client) as events name it.
pub type HandleRef = *const libc::c_void;

/// The server-side application: one value per connection, plus `Shared`
/// for the whole server.
pub trait ServerApp<P: Platform>: Sized + 'static {
    /// Server-wide settings and the queue of events for the host.
    type Shared: 'static;
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
    /// The server stopped: its shutdown finished, or (`failed`) an
    /// internal error stopped it.
    fn on_stopped(shared: &mut Self::Shared, failed: bool);

    fn next_event(shared: &mut Self::Shared) -> Option<Self::Event>;
    /// Delivers one event to the host of `server`.
    ///
    /// # Safety
    /// Called with no borrow of the server alive, inside one of its
    /// callbacks.
    unsafe fn deliver(ev: Self::Event, server: HandleRef);
}

/// The client-side application (one connection).
pub trait ClientApp<P: Platform>: Sized + 'static {
    type Event;

    /// The handshake completed.
    fn on_established(&mut self, conn: &mut P::Conn);
    fn on_input(&mut self, conn: &mut P::Conn);
    /// Nothing left to do: the client may close.
    fn is_done(&self) -> bool;
    /// The connection is over; `conn` still holds what it received.
    fn on_closed(&mut self, conn: &mut P::Conn, stats: &ConnStats, info: &CloseInfo);
    /// Responses still being delivered after the connection ended (the
    /// host paused them; their bytes had all arrived): the end waits for
    /// them.
    fn delivering(&self) -> bool;
    /// Everything was delivered: the host hears that the connection is
    /// over (`failed`: not cleanly), as the last event.
    fn on_over(&mut self, failed: bool);

    fn next_event(&mut self) -> Option<Self::Event>;
    /// # Safety
    /// Called with no borrow of the client alive, inside one of its
    /// callbacks.
    unsafe fn deliver(ev: Self::Event, client: HandleRef);
}
