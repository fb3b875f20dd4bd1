//! hq-interop framing (HTTP/0.9 over QUIC, the interop runner's
//! protocol): a request is one line, `GET /path\r\n`, ended by the
//! stream's FIN; a response is the bare body. No headers, no status, no
//! GOAWAY. Written over [`Streams`], so it runs on quiche and on the
//! tests' in-memory connection alike.

use std::collections::VecDeque;

use quiche::h3;

use super::framing::{reject, stream_error, Framing, HttpEvent, Opened, PeerSettings, Polled, SendError, Streams};
use crate::id_hash::IdMap;

/// Longest request line a server buffers before refusing the stream.
const MAX_REQUEST_LINE: usize = 8192;

/// H3_REQUEST_REJECTED, the code a refused stream is reset with.
const REJECTED: u64 = 0x10b;

pub struct Hq {
    server: bool,
    /// Server: request lines being read, by stream.
    lines: IdMap<u64, Vec<u8>>,
    /// Client: the next request stream (upstream's client starts at 4).
    next_stream: u64,
    pending: VecDeque<HttpEvent>,
    /// The readable streams were looked at in this round of polls (a
    /// stream stays readable until the application reads it: each round
    /// reports it once).
    scanned: bool,
}

impl Hq {
    pub fn new(server: bool) -> Hq {
        Hq { server, lines: IdMap::default(), next_stream: 4, pending: VecDeque::new(), scanned: false }
    }

    /// Server: reads what arrived of each request line; a complete one
    /// (the FIN came) becomes a request.
    fn read_requests<C: Streams>(&mut self, conn: &mut C) {
        let mut buf = [0u8; 2048];
        for s in conn.readable_streams() {
            loop {
                match conn.stream_recv(s, &mut buf) {
                    Ok((n, fin)) => {
                        let line = self.lines.entry(s).or_default();
                        line.extend_from_slice(&buf[..n]);
                        if line.len() > MAX_REQUEST_LINE {
                            self.lines.remove(&s);
                            reject(conn, s, REJECTED);
                            break;
                        }
                        if fin {
                            let line = self.lines.remove(&s).unwrap_or_default();
                            let path = request_path(&line).unwrap_or(b"/").to_vec();
                            let list = vec![h3::Header::new(b":method", b"GET"), h3::Header::new(b":scheme", b"https"),
                                            h3::Header::new(b":path", &path)];
                            self.pending.push_back(HttpEvent::Headers { stream: s, list, fin: true });
                            break;
                        }
                    }
                    Err(quiche::Error::Done) => break,
                    Err(e) => {
                        self.lines.remove(&s);
                        if let SendError::Stopped(code) = stream_error(e) {
                            self.pending.push_back(HttpEvent::Reset(s, code));
                        }
                        break;
                    }
                }
            }
        }
    }
}

/// The path of an HTTP/0.9 request line (`GET /path\r\n`), tolerating the
/// trailing NUL upstream's client sends.
pub fn request_path(req: &[u8]) -> Option<&[u8]> {
    let line = req.split(|&b| b == b'\n' || b == b'\r' || b == 0).next().unwrap_or(b"");
    let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
    match (words.next(), words.next()) {
        (Some(b"GET"), Some(path)) => Some(path),
        _ => None,
    }
}

impl<C: Streams> Framing<C> for Hq {
    fn is_h3(&self) -> bool {
        false
    }

    fn open(&mut self, _conn: &mut C) -> Result<(), String> {
        Ok(())
    }

    fn poll(&mut self, conn: &mut C) -> Polled {
        if self.pending.is_empty() && !self.scanned {
            self.scanned = true;
            if self.server {
                self.read_requests(conn);
            } else {
                // A response is its stream's bytes: the client reads them.
                self.pending.extend(conn.readable_streams().into_iter().map(HttpEvent::Data));
            }
        }
        match self.pending.pop_front() {
            Some(ev) => Polled::Event(ev),
            None => {
                self.scanned = false;
                Polled::Done
            }
        }
    }

    fn send_headers<T: h3::NameValue>(&mut self, _conn: &mut C, _stream: u64, _headers: &[T], _fin: bool,
                                      _trailers: bool) -> Result<bool, SendError> {
        Ok(true) // hq-interop has none: nothing to send
    }

    fn send_request(&mut self, conn: &mut C, headers: &[h3::Header], _fin: bool)
                    -> Result<Option<Opened>, SendError> {
        use quiche::h3::NameValue;
        if conn.peer_streams_left_bidi() == 0 {
            return Ok(None);
        }
        let path = headers.iter().find(|h| h.name() == b":path").map_or(&b"/"[..], |h| h.value());
        let mut line = b"GET ".to_vec();
        line.extend_from_slice(path);
        line.extend_from_slice(b"\r\n");
        let stream = self.next_stream;
        self.next_stream += 4;
        Ok(Some(Opened { stream, prelude: Some(line) }))
    }

    fn send_body(&mut self, conn: &mut C, stream: u64, data: &[u8], fin: bool) -> Result<Option<usize>, SendError> {
        match conn.stream_send(stream, data, fin) {
            Ok(n) => Ok(Some(n)),
            Err(quiche::Error::Done) | Err(quiche::Error::StreamLimit) => Ok(None),
            Err(e) => Err(stream_error(e)),
        }
    }

    fn recv_body(&mut self, conn: &mut C, stream: u64, buf: &mut [u8]) -> Result<(usize, bool), SendError> {
        match conn.stream_recv(stream, buf) {
            Ok(v) => Ok(v),
            Err(quiche::Error::Done) => Ok((0, false)),
            Err(e) => Err(stream_error(e)),
        }
    }

    fn send_goaway(&mut self, _conn: &mut C, _id: u64) {}

    fn peer_settings(&self, _conn: &C) -> Option<PeerSettings> {
        Some(PeerSettings::default())
    }
}

#[cfg(test)]
mod tests {
    use super::request_path;

    #[test]
    fn request_lines() {
        assert_eq!(request_path(b"GET /a\r\n"), Some(&b"/a"[..]));
        assert_eq!(request_path(b"GET /a\r\n\0"), Some(&b"/a"[..]));
        assert_eq!(request_path(b"GET  /b"), Some(&b"/b"[..]));
        assert_eq!(request_path(b"POST /a\r\n"), None);
        assert_eq!(request_path(b""), None);
    }
}
