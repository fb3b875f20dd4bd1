//! Which framing a connection speaks, chosen per handle: hq-interop
//! (`h3_config` NULL) or HTTP/3.

use quiche::h3;

use super::framing::{AppPlatform, Framing, Opened, PeerSettings, Polled, SendError};
use super::hq::Hq;

/// The protocol every connection of a handle speaks.
pub enum Protocol<P: AppPlatform> {
    Hq,
    /// The host's `quiche_h3_config`, borrowed for the handle's life.
    H3(*const P::H3Config),
}

impl<P: AppPlatform> Clone for Protocol<P> {
    fn clone(&self) -> Self {
        match self {
            Protocol::Hq => Protocol::Hq,
            Protocol::H3(c) => Protocol::H3(*c),
        }
    }
}

impl<P: AppPlatform> Protocol<P> {
    /// The framing of a new connection (`server`: which side).
    pub fn framing(&self, server: bool) -> AnyFraming<P> {
        match self {
            Protocol::Hq => AnyFraming::Hq(Hq::new(server)),
            // SAFETY: the config outlives the handle (C API contract).
            Protocol::H3(c) => AnyFraming::H3(unsafe { P::h3(*c, server) }),
        }
    }
}

pub enum AnyFraming<P: AppPlatform> {
    Hq(Hq),
    H3(P::H3),
}

macro_rules! each {
    ($self:ident, $f:ident => $e:expr) => {
        match $self {
            AnyFraming::Hq($f) => $e,
            AnyFraming::H3($f) => $e,
        }
    };
}

impl<P: AppPlatform> Framing<P::Conn> for AnyFraming<P> {
    fn is_h3(&self) -> bool {
        matches!(self, AnyFraming::H3(_))
    }
    fn open(&mut self, conn: &mut P::Conn) -> Result<(), String> {
        each!(self, f => f.open(conn))
    }
    fn poll(&mut self, conn: &mut P::Conn) -> Polled {
        each!(self, f => f.poll(conn))
    }
    fn send_headers<T: h3::NameValue>(&mut self, conn: &mut P::Conn, stream: u64, headers: &[T], fin: bool,
                                      trailers: bool) -> Result<bool, SendError> {
        each!(self, f => f.send_headers(conn, stream, headers, fin, trailers))
    }
    fn send_request(&mut self, conn: &mut P::Conn, headers: &[h3::Header], fin: bool)
                    -> Result<Option<Opened>, SendError> {
        each!(self, f => f.send_request(conn, headers, fin))
    }
    fn send_body(&mut self, conn: &mut P::Conn, stream: u64, data: &[u8], fin: bool)
                 -> Result<Option<usize>, SendError> {
        each!(self, f => f.send_body(conn, stream, data, fin))
    }
    fn recv_body(&mut self, conn: &mut P::Conn, stream: u64, buf: &mut [u8]) -> Result<(usize, bool), SendError> {
        each!(self, f => f.recv_body(conn, stream, buf))
    }
    fn send_goaway(&mut self, conn: &mut P::Conn, id: u64) {
        each!(self, f => f.send_goaway(conn, id))
    }
    fn peer_settings(&self, conn: &P::Conn) -> Option<PeerSettings> {
        each!(self, f => f.peer_settings(conn))
    }
}
