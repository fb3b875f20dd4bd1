//! What the application layer needs of a connection to speak HTTP on it,
//! as three traits: [`Streams`], QUIC's bidirectional streams (quiche's
//! stream calls), [`Datagrams`], QUIC's DATAGRAM frames (RFC 9221), and
//! [`Framing`], requests and responses on the streams (HTTP/3 through
//! `quiche::h3`, or hq-interop's bare request lines). The request
//! logic (`server`, `client`) is written once over them, so it runs on
//! quiche in production and on an in-memory connection in the tests
//! (under Miri too).

use quiche::h3;
use quiche::Shutdown;

use crate::platform::Platform;

/// QUIC streams, as quiche offers them (same meanings, same errors).
pub trait Streams {
    fn stream_send(&mut self, id: u64, data: &[u8], fin: bool) -> quiche::Result<usize>;
    fn stream_recv(&mut self, id: u64, buf: &mut [u8]) -> quiche::Result<(usize, bool)>;
    fn stream_shutdown(&mut self, id: u64, dir: Shutdown, code: u64) -> quiche::Result<()>;
    /// Room on the stream now; `StreamStopped(code)` once the peer
    /// stopped it; an error once quiche forgot it (all sent, acknowledged
    /// and read).
    fn stream_capacity(&mut self, id: u64) -> quiche::Result<usize>;
    /// Streams that have room (or were stopped by the peer).
    fn writable_streams(&mut self) -> Vec<u64>;
    /// Streams with data (or a FIN, or a reset) to read.
    fn readable_streams(&mut self) -> Vec<u64>;
    fn peer_streams_left_bidi(&self) -> u64;
}

impl Streams for quiche::Connection {
    fn stream_send(&mut self, id: u64, data: &[u8], fin: bool) -> quiche::Result<usize> {
        quiche::Connection::stream_send(self, id, data, fin)
    }
    fn stream_recv(&mut self, id: u64, buf: &mut [u8]) -> quiche::Result<(usize, bool)> {
        quiche::Connection::stream_recv(self, id, buf)
    }
    fn stream_shutdown(&mut self, id: u64, dir: Shutdown, code: u64) -> quiche::Result<()> {
        quiche::Connection::stream_shutdown(self, id, dir, code)
    }
    fn stream_capacity(&mut self, id: u64) -> quiche::Result<usize> {
        quiche::Connection::stream_capacity(self, id)
    }
    fn writable_streams(&mut self) -> Vec<u64> {
        self.writable().collect()
    }
    fn readable_streams(&mut self) -> Vec<u64> {
        self.readable().collect()
    }
    fn peer_streams_left_bidi(&self) -> u64 {
        quiche::Connection::peer_streams_left_bidi(self)
    }
}

/// QUIC DATAGRAM frames (RFC 9221), as quiche offers them (same meanings,
/// same errors).
pub trait Datagrams {
    /// The largest payload the peer accepts on the current path; `None`
    /// while the peer has not said it accepts any (its transport
    /// parameters lack `max_datagram_frame_size`, or are not known yet).
    fn dgram_max_writable_len(&self) -> Option<usize>;
    /// Queues one datagram: `Err(Done)` when quiche's send queue is full,
    /// `Err(InvalidState)` when the peer takes none, `Err(BufferTooShort)`
    /// when it is larger than the peer takes.
    fn dgram_send(&mut self, data: &[u8]) -> quiche::Result<()>;
    /// The oldest received datagram, out of quiche's receive queue.
    fn dgram_recv_vec(&mut self) -> Option<Vec<u8>>;
    fn is_dgram_send_queue_full(&self) -> bool;
    fn dgram_send_queue_len(&self) -> usize;
}

impl Datagrams for quiche::Connection {
    fn dgram_max_writable_len(&self) -> Option<usize> {
        quiche::Connection::dgram_max_writable_len(self)
    }
    fn dgram_send(&mut self, data: &[u8]) -> quiche::Result<()> {
        quiche::Connection::dgram_send(self, data)
    }
    fn dgram_recv_vec(&mut self) -> Option<Vec<u8>> {
        quiche::Connection::dgram_recv_buf(self).ok()
    }
    fn is_dgram_send_queue_full(&self) -> bool {
        quiche::Connection::is_dgram_send_queue_full(self)
    }
    fn dgram_send_queue_len(&self) -> usize {
        quiche::Connection::dgram_send_queue_len(self)
    }
}

/// What the peer's HTTP/3 SETTINGS allow (hq-interop has none: nothing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerSettings {
    /// SETTINGS_H3_DATAGRAM=1 (RFC 9297), and the QUIC transport
    /// parameter that goes with it: HTTP Datagrams may be sent.
    pub datagrams: bool,
    /// SETTINGS_ENABLE_CONNECT_PROTOCOL=1 (RFC 9220): a client may send
    /// extended CONNECT.
    pub extended_connect: bool,
}

/// Something on the connection, as HTTP sees it.
#[derive(Debug)]
pub enum HttpEvent {
    /// A header section on `stream`: a request (server), a response
    /// (client), or trailers after either. `fin`: nothing follows it.
    Headers { stream: u64, list: Vec<h3::Header>, fin: bool },
    /// Body bytes can be read on `stream`.
    Data(u64),
    /// The peer's FIN on `stream` (every body byte was read before it).
    Finished(u64),
    /// The peer reset `stream` with this code.
    Reset(u64, u64),
    /// The peer sent GOAWAY.
    GoAway,
}

/// What [`Framing::poll`] found.
#[derive(Debug)]
pub enum Polled {
    Event(HttpEvent),
    /// Nothing more for now.
    Done,
    /// The connection cannot go on (the framing closed it).
    Fatal(String),
}

/// Why a send did not happen.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// The peer reset or stopped the stream, with this code.
    Stopped(u64),
    Other(String),
}

/// A request stream the client opened.
pub struct Opened {
    pub stream: u64,
    /// Bytes to write on it before any body (hq-interop: the request
    /// line, whose end is the stream's FIN).
    pub prelude: Option<Vec<u8>>,
}

/// HTTP requests and responses over a connection's streams.
pub trait Framing<C> {
    fn is_h3(&self) -> bool;
    /// Sets up what the framing needs before the first request (HTTP/3:
    /// its control streams). Idempotent.
    fn open(&mut self, conn: &mut C) -> Result<(), String>;
    /// The next thing that happened.
    fn poll(&mut self, conn: &mut C) -> Polled;
    /// A response's (or, with `trailers`, a trailer) header section:
    /// `Ok(false)` when it does not fit yet (try again when writable).
    fn send_headers<T: h3::NameValue>(&mut self, conn: &mut C, stream: u64, headers: &[T], fin: bool,
                                      trailers: bool) -> Result<bool, SendError>;
    /// Opens a request stream with `headers`; `Ok(None)` when the peer's
    /// stream limit or flow control does not allow it yet.
    fn send_request(&mut self, conn: &mut C, headers: &[h3::Header], fin: bool)
                    -> Result<Option<Opened>, SendError>;
    /// Body bytes: `Some(n)`, n bytes taken (and the FIN with them when
    /// `fin` and n is all of `data`); `None` when nothing at all was
    /// taken, not even the FIN of an empty write: try again when the
    /// stream is writable.
    fn send_body(&mut self, conn: &mut C, stream: u64, data: &[u8], fin: bool) -> Result<Option<usize>, SendError>;
    /// Reads body bytes: (bytes, FIN reached). HTTP/3 reports the FIN
    /// with [`HttpEvent::Finished`] instead.
    fn recv_body(&mut self, conn: &mut C, stream: u64, buf: &mut [u8]) -> Result<(usize, bool), SendError>;
    /// HTTP/3 GOAWAY naming `id` (nothing for hq-interop).
    fn send_goaway(&mut self, conn: &mut C, id: u64);
    /// The peer's SETTINGS, once they arrived (`None` before); hq-interop
    /// knows at once that there are none.
    fn peer_settings(&self, conn: &C) -> Option<PeerSettings>;
}

/// What the application layer needs of a platform beyond the transport's:
/// streams and datagrams on its connections, and its HTTP/3 framing.
pub trait AppPlatform: Platform<Conn: Streams + Datagrams> {
    /// The HTTP/3 settings a host passes (`quiche_h3_config`).
    type H3Config;
    type H3: Framing<Self::Conn>;
    /// HTTP/3 framing for a new connection.
    ///
    /// # Safety
    /// `config` is valid for the handle's life.
    unsafe fn h3(config: *const Self::H3Config, server: bool) -> Self::H3;
}

/// A stream error as the application layer handles it.
pub fn stream_error(e: quiche::Error) -> SendError {
    match e {
        quiche::Error::StreamStopped(c) | quiche::Error::StreamReset(c) => SendError::Stopped(c),
        e => SendError::Other(format!("{e:?}")),
    }
}

/// Resets `stream` both ways with `code`.
pub fn reject<C: Streams>(conn: &mut C, stream: u64, code: u64) {
    let _ = conn.stream_shutdown(stream, Shutdown::Read, code);
    let _ = conn.stream_shutdown(stream, Shutdown::Write, code);
}
