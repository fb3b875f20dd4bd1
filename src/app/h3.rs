//! HTTP/3 framing through `quiche::h3`, on quiche's connections: the
//! production implementation of [`Framing`] for HTTP/3.

use quiche::h3;

use super::framing::{AppPlatform, Framing, HttpEvent, Opened, PeerSettings, Polled, SendError};
use crate::platform::Real;

/// H3_GENERAL_PROTOCOL_ERROR, H3_INTERNAL_ERROR (RFC 9114 §8.1).
const H3_GENERAL_PROTOCOL_ERROR: u64 = 0x101;
const H3_INTERNAL_ERROR: u64 = 0x102;

pub struct H3 {
    /// Borrowed from C for the handle's life.
    config: *const h3::Config,
    conn: Option<Box<h3::Connection>>,
    server: bool,
    settings_logged: bool,
}

impl H3 {
    /// # Safety
    /// `config` is valid for the handle's life.
    pub unsafe fn new(config: *const h3::Config, server: bool) -> H3 {
        H3 { config, conn: None, server, settings_logged: false }
    }

    fn h3(&mut self) -> Result<&mut h3::Connection, SendError> {
        self.conn.as_deref_mut().ok_or_else(|| SendError::Other("HTTP/3 not set up".into()))
    }
}

fn h3_error(e: h3::Error) -> SendError {
    match e {
        h3::Error::TransportError(quiche::Error::StreamStopped(c))
        | h3::Error::TransportError(quiche::Error::StreamReset(c)) => SendError::Stopped(c),
        e => SendError::Other(format!("{e:?}")),
    }
}

impl Framing<quiche::Connection> for H3 {
    fn is_h3(&self) -> bool {
        true
    }

    fn open(&mut self, conn: &mut quiche::Connection) -> Result<(), String> {
        if self.conn.is_none() {
            // SAFETY: the config outlives the handle (C API contract).
            match h3::Connection::with_transport(conn, unsafe { &*self.config }) {
                Ok(h) => self.conn = Some(Box::new(h)),
                Err(e) => {
                    let _ = conn.close(true, H3_INTERNAL_ERROR, b"h3 setup failed");
                    return Err(format!("failed to create HTTP/3 connection: {e:?}"));
                }
            }
        }
        Ok(())
    }

    fn poll(&mut self, conn: &mut quiche::Connection) -> Polled {
        let server = self.server;
        let Some(h3) = self.conn.as_deref_mut() else { return Polled::Done };
        loop {
            let ev = h3.poll(conn);
            if !server && !self.settings_logged {
                if let Some(settings) = h3.peer_settings_raw() {
                    for (id, value) in settings {
                        log_info!("got HTTP/3 SETTING: {id}={value}");
                    }
                    self.settings_logged = true;
                }
            }
            return match ev {
                Ok((stream, h3::Event::Headers { list, more_frames })) => {
                    Polled::Event(HttpEvent::Headers { stream, list, fin: !more_frames })
                }
                Ok((s, h3::Event::Data)) => Polled::Event(HttpEvent::Data(s)),
                Ok((s, h3::Event::Finished)) => Polled::Event(HttpEvent::Finished(s)),
                Ok((s, h3::Event::Reset(code))) => Polled::Event(HttpEvent::Reset(s, code)),
                Ok((_, h3::Event::GoAway)) => Polled::Event(HttpEvent::GoAway),
                Ok((_, h3::Event::PriorityUpdate)) => continue,
                Err(h3::Error::Done) => Polled::Done,
                Err(e) => {
                    // quiche closed it already for protocol errors; make sure.
                    let _ = conn.close(true, H3_GENERAL_PROTOCOL_ERROR, b"");
                    Polled::Fatal(format!("HTTP/3 processing failed: {e:?}"))
                }
            };
        }
    }

    fn send_headers<T: h3::NameValue>(&mut self, conn: &mut quiche::Connection, stream: u64, headers: &[T],
                                      fin: bool, trailers: bool) -> Result<bool, SendError> {
        let server = self.server;
        let h3 = self.h3()?;
        let r = if trailers {
            h3.send_additional_headers(conn, stream, headers, true, fin)
        } else if server {
            h3.send_response(conn, stream, headers, fin)
        } else {
            return Err(SendError::Other("a client sends headers with its request".into()));
        };
        match r {
            Ok(()) => Ok(true),
            Err(h3::Error::StreamBlocked) | Err(h3::Error::Done) => Ok(false),
            Err(e) => Err(h3_error(e)),
        }
    }

    fn send_request(&mut self, conn: &mut quiche::Connection, headers: &[h3::Header], fin: bool)
                    -> Result<Option<Opened>, SendError> {
        match self.h3()?.send_request(conn, headers, fin) {
            Ok(stream) => Ok(Some(Opened { stream, prelude: None })),
            Err(h3::Error::StreamBlocked) | Err(h3::Error::TransportError(quiche::Error::StreamLimit))
            | Err(h3::Error::Done) => Ok(None),
            Err(e) => Err(h3_error(e)),
        }
    }

    fn send_body(&mut self, conn: &mut quiche::Connection, stream: u64, data: &[u8], fin: bool)
                 -> Result<Option<usize>, SendError> {
        match self.h3()?.send_body(conn, stream, data, fin) {
            Ok(n) => Ok(Some(n)),
            // Includes an empty final write whose DATA frame header does
            // not fit (quiche wants 2 bytes of room for it).
            Err(h3::Error::Done) | Err(h3::Error::StreamBlocked) => Ok(None),
            Err(e) => Err(h3_error(e)),
        }
    }

    fn recv_body(&mut self, conn: &mut quiche::Connection, stream: u64, buf: &mut [u8])
                 -> Result<(usize, bool), SendError> {
        let Some(h3) = self.conn.as_deref_mut() else { return Ok((0, false)) };
        match h3.recv_body(conn, stream, buf) {
            Ok(n) => Ok((n, false)),
            Err(h3::Error::Done) => Ok((0, false)),
            Err(e) => Err(h3_error(e)),
        }
    }

    fn send_goaway(&mut self, conn: &mut quiche::Connection, id: u64) {
        if let Some(h3) = self.conn.as_deref_mut() {
            if let Err(e) = h3.send_goaway(conn, id) {
                log_debug!("failed to send GOAWAY: {e:?}");
            }
        }
    }

    fn peer_settings(&self, conn: &quiche::Connection) -> Option<PeerSettings> {
        let h3 = self.conn.as_deref()?;
        h3.peer_settings_raw()?;
        Some(PeerSettings { datagrams: h3.dgram_enabled_by_peer(conn),
                            extended_connect: h3.extended_connect_enabled_by_peer() })
    }
}

impl AppPlatform for Real {
    type H3Config = h3::Config;
    type H3 = H3;

    unsafe fn h3(config: *const h3::Config, server: bool) -> H3 {
        H3::new(config, server)
    }
}
