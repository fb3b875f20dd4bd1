//! The HTTP/3 work on each side, as little as ours does and no less: the
//! server answers every request with ours' response head and a body; the
//! client keeps requests in flight and reads their responses.

use quiche::h3;

use crate::link::{request_headers, response_headers, Endpoint, READ_CHUNK, WRITE_CHUNK};

/// A response being written.
struct Resp {
    stream: u64,
    head_sent: bool,
    sent: usize,
}

/// The server's application: `body_len` bytes for every request.
pub struct Responder {
    body_len: usize,
    /// The bytes written (cycled for bodies longer than one chunk).
    src: Vec<u8>,
    head: Vec<h3::Header>,
    open: Vec<Resp>,
    pub started: usize,
    pub completed: usize,
    pub errors: usize,
}

impl Responder {
    pub fn new(body_len: usize) -> Responder {
        let mut src = vec![0u8; body_len.min(WRITE_CHUNK)];
        boring::rand::rand_bytes(&mut src).unwrap();
        Responder { body_len, src, head: response_headers(body_len), open: Vec::new(), started: 0, completed: 0,
                    errors: 0 }
    }

    /// Reads new requests and writes what fits of every open response.
    pub fn serve(&mut self, ep: &mut Endpoint) {
        let Endpoint { conn, h3, .. } = ep;
        let Some(h3) = h3.as_mut() else { return };
        let mut sink = [0u8; 2048];
        loop {
            match h3.poll(conn) {
                Ok((stream, h3::Event::Headers { .. })) => {
                    self.started += 1;
                    self.open.push(Resp { stream, head_sent: false, sent: 0 });
                }
                // A GET has no body; drain anything that comes.
                Ok((stream, h3::Event::Data)) => while h3.recv_body(conn, stream, &mut sink).is_ok() {},
                Ok(_) => {}
                Err(h3::Error::Done) => break,
                Err(_) => {
                    self.errors += 1;
                    break;
                }
            }
        }
        let mut open = std::mem::take(&mut self.open);
        open.retain_mut(|r| !self.advance(h3, conn, r));
        self.open = open;
    }

    /// Writes what fits of one response; true once it is all written (or
    /// failed).
    fn advance(&mut self, h3: &mut h3::Connection, conn: &mut quiche::Connection, r: &mut Resp) -> bool {
        if !r.head_sent {
            match h3.send_response(conn, r.stream, &self.head, self.body_len == 0) {
                Ok(()) => r.head_sent = true,
                Err(h3::Error::StreamBlocked) | Err(h3::Error::Done) => return false,
                Err(_) => {
                    self.errors += 1;
                    return true;
                }
            }
        }
        // As ours: each call offers the rest of the current 256 KiB chunk
        // (a whole in-memory body when it is shorter).
        while r.sent < self.body_len {
            let at = r.sent % WRITE_CHUNK;
            let len = (WRITE_CHUNK - at).min(self.body_len - r.sent);
            let fin = r.sent + len == self.body_len;
            match h3.send_body(conn, r.stream, &self.src[at..at + len], fin) {
                Ok(n) => {
                    r.sent += n;
                    if n < len {
                        return false;
                    }
                }
                Err(h3::Error::Done) | Err(h3::Error::StreamBlocked) => return false,
                Err(_) => {
                    self.errors += 1;
                    return true;
                }
            }
        }
        self.completed += 1;
        true
    }
}

/// The client's application: `GET path` requests, `max_inflight` at a
/// time, until `to_issue` were sent; bodies read and dropped.
pub struct Fetcher {
    head: Vec<h3::Header>,
    pub to_issue: usize,
    pub max_inflight: usize,
    pub inflight: usize,
    pub done: usize,
    pub failed: usize,
    pub body_bytes: u64,
    buf: Vec<u8>,
}

impl Fetcher {
    pub fn new(path: &str, to_issue: usize, max_inflight: usize) -> Fetcher {
        Fetcher { head: request_headers(path), to_issue, max_inflight, inflight: 0, done: 0, failed: 0,
                  body_bytes: 0, buf: vec![0; READ_CHUNK] }
    }

    /// Reads responses, then issues requests while there is room.
    pub fn step(&mut self, ep: &mut Endpoint) {
        let Endpoint { conn, h3, .. } = ep;
        let Some(h3) = h3.as_mut() else { return };
        loop {
            match h3.poll(conn) {
                Ok((_, h3::Event::Headers { list, .. })) => {
                    if list.first().map(|h| h3::NameValue::value(h)) != Some(&b"200"[..]) {
                        self.failed += 1;
                    }
                }
                Ok((stream, h3::Event::Data)) => {
                    while let Ok(n) = h3.recv_body(conn, stream, &mut self.buf) {
                        self.body_bytes += n as u64;
                    }
                }
                Ok((_, h3::Event::Finished)) => {
                    self.done += 1;
                    self.inflight -= 1;
                }
                Ok((_, h3::Event::Reset(_))) => {
                    self.failed += 1;
                    self.inflight -= 1;
                }
                Ok(_) => {}
                Err(h3::Error::Done) => break,
                Err(_) => {
                    self.failed += 1;
                    break;
                }
            }
        }
        while self.to_issue > 0 && self.inflight < self.max_inflight {
            match h3.send_request(conn, &self.head, true) {
                Ok(_) => {
                    self.to_issue -= 1;
                    self.inflight += 1;
                }
                Err(h3::Error::StreamBlocked) | Err(h3::Error::TransportError(quiche::Error::StreamLimit)) => break,
                Err(e) => panic!("send_request: {e:?}"),
            }
        }
    }

    pub fn finished(&self) -> bool {
        self.to_issue == 0 && self.inflight == 0
    }
}
