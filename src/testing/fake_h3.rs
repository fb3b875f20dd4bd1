//! An HTTP/3-like framing over the in-memory connection, for tests: a
//! HEADERS frame (type 1) and DATA frames (type 0), each a type byte and
//! a QUIC varint length, parsed lazily as quiche's is (a DATA payload
//! stays in the stream until the application reads it, so flow control
//! holds the sender back), with quiche's send rules: a header section is
//! sent whole or not at all, and a DATA frame needs room for its own
//! header (an empty final DATA frame needs 2 bytes, as in quiche).

use std::collections::{HashMap, VecDeque};

use quiche::h3;

use super::wire::FakeConn;
use crate::app::framing::{stream_error, Datagrams, Framing, HttpEvent, Opened, PeerSettings, Polled, SendError, Streams};

const DATA: u8 = 0;
const HEADERS: u8 = 1;

fn varint_len(v: u64) -> usize {
    match v {
        0..=63 => 1,
        64..=16383 => 2,
        16384..=1_073_741_823 => 4,
        _ => 8,
    }
}

fn put_varint(out: &mut Vec<u8>, v: u64) {
    match varint_len(v) {
        1 => out.push(v as u8),
        2 => out.extend_from_slice(&((v as u16) | 0x4000).to_be_bytes()),
        4 => out.extend_from_slice(&((v as u32) | 0x8000_0000).to_be_bytes()),
        _ => out.extend_from_slice(&(v | 0xc000_0000_0000_0000).to_be_bytes()),
    }
}

fn frame(ty: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![ty];
    put_varint(&mut f, payload.len() as u64);
    f.extend_from_slice(payload);
    f
}

fn encode_headers<T: h3::NameValue>(list: &[T]) -> Vec<u8> {
    let mut p = Vec::new();
    put_varint(&mut p, list.len() as u64);
    for h in list {
        put_varint(&mut p, h.name().len() as u64);
        p.extend_from_slice(h.name());
        put_varint(&mut p, h.value().len() as u64);
        p.extend_from_slice(h.value());
    }
    p
}

fn decode_headers(mut p: &[u8]) -> Option<Vec<h3::Header>> {
    fn varint(p: &mut &[u8]) -> Option<u64> {
        let first = *p.first()?;
        let len = 1 << (first >> 6);
        let bytes = p.get(..len)?;
        let mut v = (first & 0x3f) as u64;
        for &b in &bytes[1..] {
            v = (v << 8) | b as u64;
        }
        *p = &p[len..];
        Some(v)
    }
    fn bytes<'a>(p: &mut &'a [u8]) -> Option<&'a [u8]> {
        let n = varint(p)? as usize;
        let v = p.get(..n)?;
        *p = &p[n..];
        Some(v)
    }
    let n = varint(&mut p)?;
    let mut list = Vec::new();
    for _ in 0..n {
        let name = bytes(&mut p)?;
        let value = bytes(&mut p)?;
        list.push(h3::Header::new(name, value));
    }
    Some(list)
}

/// Where the reading of one stream stands.
enum Rx {
    /// A frame header, these bytes of it so far.
    Header(Vec<u8>),
    /// A HEADERS payload: bytes so far, bytes in all.
    Headers(Vec<u8>, usize),
    /// A DATA payload: bytes left; whether a Data event told of it.
    Data(u64, bool),
    /// The FIN (or a reset) was reported.
    Over,
}

pub struct FakeH3 {
    server: bool,
    rx: HashMap<u64, Rx>,
    /// Streams whose FIN was read from the connection.
    fins: std::collections::HashSet<u64>,
    /// Client: the next request stream.
    next_stream: u64,
    pending: VecDeque<HttpEvent>,
    /// SETTINGS_ENABLE_CONNECT_PROTOCOL, and whether SETTINGS went out.
    extended_connect: bool,
    settings_sent: bool,
}

impl FakeH3 {
    pub fn new(server: bool, extended_connect: bool) -> FakeH3 {
        FakeH3 { server, rx: HashMap::new(), fins: Default::default(), next_stream: 0, pending: VecDeque::new(),
                 extended_connect, settings_sent: false }
    }

    /// Parses what `s` has, up to a DATA payload (left for `recv_body`).
    fn drive(&mut self, conn: &mut FakeConn, s: u64) {
        let mut state = self.rx.remove(&s).unwrap_or(Rx::Header(Vec::new()));
        loop {
            state = match state {
                Rx::Over => break,
                Rx::Data(0, _) => Rx::Header(Vec::new()),
                Rx::Data(left, told) => {
                    if !told {
                        self.pending.push_back(HttpEvent::Data(s));
                    }
                    state = Rx::Data(left, true);
                    break;
                }
                Rx::Header(got) if got.is_empty() && self.fins.contains(&s) => {
                    self.fins.remove(&s);
                    self.pending.push_back(HttpEvent::Finished(s));
                    Rx::Over
                }
                Rx::Header(mut got) => {
                    // One byte at a time: the type, then the varint.
                    let need = match got.len() {
                        0 | 1 => 1,
                        _ => (1 << (got[1] >> 6)) + 1 - got.len(),
                    };
                    if need == 0 {
                        let mut v = (got[1] & 0x3f) as u64;
                        for &b in &got[2..] {
                            v = (v << 8) | b as u64;
                        }
                        if got[0] == HEADERS { Rx::Headers(Vec::new(), v as usize) } else { Rx::Data(v, false) }
                    } else {
                        let mut b = vec![0u8; need];
                        match conn.stream_recv(s, &mut b) {
                            Ok((n, fin)) => {
                                got.extend_from_slice(&b[..n]);
                                if fin {
                                    self.fins.insert(s);
                                }
                                Rx::Header(got)
                            }
                            Err(quiche::Error::Done) => {
                                state = Rx::Header(got);
                                break;
                            }
                            Err(e) => {
                                if let SendError::Stopped(code) = stream_error(e) {
                                    self.pending.push_back(HttpEvent::Reset(s, code));
                                }
                                Rx::Over
                            }
                        }
                    }
                }
                Rx::Headers(mut got, len) => {
                    if got.len() == len {
                        let list = decode_headers(&got).unwrap_or_default();
                        let fin = conn.fin_pending(s) || self.fins.contains(&s);
                        self.pending.push_back(HttpEvent::Headers { stream: s, list, fin });
                        Rx::Header(Vec::new())
                    } else {
                        let mut b = vec![0u8; len - got.len()];
                        match conn.stream_recv(s, &mut b) {
                            Ok((n, fin)) => {
                                got.extend_from_slice(&b[..n]);
                                if fin {
                                    self.fins.insert(s);
                                }
                                if n == 0 {
                                    state = Rx::Headers(got, len);
                                    break;
                                }
                                Rx::Headers(got, len)
                            }
                            Err(quiche::Error::Done) => {
                                state = Rx::Headers(got, len);
                                break;
                            }
                            Err(e) => {
                                if let SendError::Stopped(code) = stream_error(e) {
                                    self.pending.push_back(HttpEvent::Reset(s, code));
                                }
                                Rx::Over
                            }
                        }
                    }
                }
            };
        }
        self.rx.insert(s, state);
    }
}

impl Framing<FakeConn> for FakeH3 {
    fn is_h3(&self) -> bool {
        true
    }

    fn open(&mut self, conn: &mut FakeConn) -> Result<(), String> {
        if !std::mem::replace(&mut self.settings_sent, true) {
            conn.send_h3_settings(self.extended_connect);
        }
        Ok(())
    }

    fn poll(&mut self, conn: &mut FakeConn) -> Polled {
        if self.pending.is_empty() {
            if conn.take_goaway().is_some() {
                self.pending.push_back(HttpEvent::GoAway);
            }
            for s in conn.readable_streams() {
                if !matches!(self.rx.get(&s), Some(Rx::Over)) {
                    self.drive(conn, s);
                }
            }
            // Forget streams that are over.
            self.rx.retain(|_, r| !matches!(r, Rx::Over));
        }
        match self.pending.pop_front() {
            Some(ev) => Polled::Event(ev),
            None => Polled::Done,
        }
    }

    fn send_headers<T: h3::NameValue>(&mut self, conn: &mut FakeConn, stream: u64, headers: &[T], fin: bool,
                                      trailers: bool) -> Result<bool, SendError> {
        if !trailers && !self.server {
            return Err(SendError::Other("a client sends headers with its request".into()));
        }
        let f = frame(HEADERS, &encode_headers(headers));
        let cap = conn.stream_capacity(stream).map_err(stream_error)?;
        if cap < f.len() {
            return Ok(false);
        }
        conn.stream_send(stream, &f, fin).map_err(stream_error)?;
        Ok(true)
    }

    fn send_request(&mut self, conn: &mut FakeConn, headers: &[h3::Header], fin: bool)
                    -> Result<Option<Opened>, SendError> {
        let f = frame(HEADERS, &encode_headers(headers));
        if conn.peer_streams_left_bidi() == 0 || conn.new_stream_capacity() < f.len() as u64 {
            return Ok(None);
        }
        let stream = self.next_stream;
        match conn.stream_send(stream, &f, fin) {
            Ok(_) => {
                self.next_stream += 4;
                Ok(Some(Opened { stream, prelude: None }))
            }
            Err(quiche::Error::StreamLimit) | Err(quiche::Error::Done) => Ok(None),
            Err(e) => Err(stream_error(e)),
        }
    }

    fn send_body(&mut self, conn: &mut FakeConn, stream: u64, data: &[u8], fin: bool)
                 -> Result<Option<usize>, SendError> {
        if data.is_empty() && !fin {
            return Ok(None);
        }
        let overhead = 1 + varint_len(data.len() as u64);
        let cap = conn.stream_capacity(stream).map_err(stream_error)?;
        if cap < overhead {
            return Ok(None);
        }
        let n = data.len().min(cap - overhead);
        let fin = fin && n == data.len();
        let f = frame(DATA, &data[..n]);
        conn.stream_send(stream, &f, fin).map_err(stream_error)?;
        Ok(Some(n))
    }

    fn recv_body(&mut self, conn: &mut FakeConn, stream: u64, buf: &mut [u8]) -> Result<(usize, bool), SendError> {
        let Some(Rx::Data(left, _)) = self.rx.get(&stream) else { return Ok((0, false)) };
        let want = buf.len().min(*left as usize);
        match conn.stream_recv(stream, &mut buf[..want]) {
            Ok((n, fin)) => {
                if fin {
                    self.fins.insert(stream);
                }
                let Some(Rx::Data(left, told)) = self.rx.get_mut(&stream) else { return Ok((n, false)) };
                *left -= n as u64;
                if *left == 0 {
                    // What follows (another frame, the FIN) comes as events
                    // of the next poll.
                    self.rx.insert(stream, Rx::Header(Vec::new()));
                    self.drive(conn, stream);
                } else if n < want {
                    *told = false; // drained: the next bytes make a Data event
                }
                Ok((n, false))
            }
            Err(quiche::Error::Done) => {
                if let Some(Rx::Data(_, told)) = self.rx.get_mut(&stream) {
                    *told = false;
                }
                Ok((0, false))
            }
            Err(e) => Err(stream_error(e)),
        }
    }

    fn send_goaway(&mut self, conn: &mut FakeConn, id: u64) {
        conn.send_goaway(id);
    }

    fn peer_settings(&self, conn: &FakeConn) -> Option<PeerSettings> {
        let (datagrams, extended_connect) = conn.peer_h3_settings()?;
        Some(PeerSettings { datagrams: datagrams && conn.dgram_max_writable_len().is_some(), extended_connect })
    }
}
