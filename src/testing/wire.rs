//! An in-memory QUIC connection for tests, with what the application
//! layer uses of quiche's: a handshake the server's routing recognises
//! (a client Initial of 1200 bytes with an 8-byte DCID, a server reply
//! naming its own CID, short-header packets after that), bidirectional
//! streams with per-stream and per-connection flow control, STOP_SENDING
//! and RESET_STREAM, CONNECTION_CLOSE, an idle timeout counted in timer
//! ticks, spare CIDs, and DATAGRAM frames with quiche's bounded queues
//! (a peer's limit learnt in the handshake, as a transport parameter).
//! No crypto, no loss (the in-memory network may
//! refuse a send, and quiche-ev keeps it), so the handles, the
//! application layer and the C API run end to end under Miri.
//!
//! Frames travel in a format of our own after each packet header.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use quiche::{ConnectionId, PathEvent, RecvInfo, SendInfo, Shutdown};

use super::fake_h3::FakeH3;
use super::{FakeIo, FakeLoop};
use crate::app::framing::{AppPlatform, Datagrams, Streams};
use crate::platform::{NewConn, Platform};
use crate::transport::{CloseError, CloseInfo, ConnStats, Transport};

/// What both sides of a fake connection allow (the `quiche_config` of
/// this platform).
#[derive(Clone, Debug)]
pub struct FakeConfig {
    /// Credit each side grants per stream, and per connection.
    pub stream_window: u64,
    pub conn_window: u64,
    /// Bidirectional streams a client may have open at once.
    pub max_streams: u64,
    /// Timer ticks without traffic before the idle timeout closes it.
    pub idle_ticks: u32,
    /// DATAGRAM frames accepted (quiche's `enable_dgram`): the lengths of
    /// the receive and send queues. `None`: off, as quiche's default.
    pub dgram: Option<(usize, usize)>,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig { stream_window: 16 * 1024, conn_window: 64 * 1024, max_streams: 16, idle_ticks: 30, dgram: None }
    }
}

impl crate::observe::LogKeys for FakeConfig {
    fn log_keys(&mut self) {}
}

/// The HTTP/3 settings of this platform: extended CONNECT allowed (RFC
/// 9220). HTTP Datagrams are announced when the connection takes
/// datagrams, as quiche does.
#[derive(Default)]
pub struct FakeH3Config {
    pub extended_connect: bool,
}

/// The platform the C API runs on in the crate's tests.
pub struct FakePlatform;

impl Platform for FakePlatform {
    type Loop = FakeLoop;
    type Io = FakeIo;
    type Conn = FakeConn;
    type Config = FakeConfig;

    fn accept(config: &mut FakeConfig, new: &NewConn) -> quiche::Result<FakeConn> {
        Ok(FakeConn::new(true, config, new))
    }

    fn connect(config: &mut FakeConfig, new: &NewConn) -> quiche::Result<FakeConn> {
        Ok(FakeConn::new(false, config, new))
    }
}

impl AppPlatform for FakePlatform {
    type H3Config = FakeH3Config;
    type H3 = FakeH3;

    unsafe fn h3(config: *const FakeH3Config, server: bool) -> FakeH3 {
        FakeH3::new(server, (*config).extended_connect)
    }
}

/// A short-header datagram to `dcid` that closes the connection it
/// reaches as a Stateless Reset would.
pub fn stateless_reset_for(dcid: &[u8]) -> Vec<u8> {
    let mut p = vec![0x40];
    p.extend_from_slice(dcid);
    p.push(9);
    p
}

/// Timer interval of an open connection (virtual time).
const TICK: Duration = Duration::from_millis(100);
/// Of one in its closing or draining period.
const CLOSING_TICK: Duration = Duration::from_millis(10);
/// Bytes of frames per packet.
const BUDGET: usize = 1100;
/// The largest DATAGRAM frame payload a packet carries.
const MAX_DGRAM: usize = BUDGET - 16;
/// quiche's code for a DATAGRAM frame it did not ask for.
const PROTOCOL_VIOLATION: u64 = 0xa;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Frame {
    Stream { id: u64, data: Vec<u8>, fin: bool },
    Reset { id: u64, code: u64 },
    Stop { id: u64, code: u64 },
    MaxStreamData { id: u64, max: u64 },
    MaxData { max: u64 },
    MaxStreams { max: u64 },
    Close { app: bool, code: u64, reason: Vec<u8> },
    GoAway { id: u64 },
    /// Stands for a datagram quiche recognises as the peer's Stateless
    /// Reset: the connection ends at once, with no error and no timeout.
    StatelessReset,
    /// The transport parameter max_datagram_frame_size (0: none), sent in
    /// the handshake.
    Params { max_dgram: u64 },
    Datagram { data: Vec<u8> },
    /// HTTP/3 SETTINGS that matter here: H3_DATAGRAM and
    /// ENABLE_CONNECT_PROTOCOL.
    H3Settings { datagram: bool, connect: bool },
}

fn put(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

impl Frame {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Frame::Stream { id, data, fin } => {
                out.push(1);
                put(out, *id);
                out.push(*fin as u8);
                put(out, data.len() as u64);
                out.extend_from_slice(data);
            }
            Frame::Reset { id, code } => {
                out.push(2);
                put(out, *id);
                put(out, *code);
            }
            Frame::Stop { id, code } => {
                out.push(3);
                put(out, *id);
                put(out, *code);
            }
            Frame::MaxStreamData { id, max } => {
                out.push(4);
                put(out, *id);
                put(out, *max);
            }
            Frame::MaxData { max } => {
                out.push(5);
                put(out, *max);
            }
            Frame::MaxStreams { max } => {
                out.push(6);
                put(out, *max);
            }
            Frame::Close { app, code, reason } => {
                out.push(7);
                out.push(*app as u8);
                put(out, *code);
                put(out, reason.len() as u64);
                out.extend_from_slice(reason);
            }
            Frame::GoAway { id } => {
                out.push(8);
                put(out, *id);
            }
            Frame::StatelessReset => out.push(9),
            Frame::Params { max_dgram } => {
                out.push(10);
                put(out, *max_dgram);
            }
            Frame::Datagram { data } => {
                out.push(11);
                put(out, data.len() as u64);
                out.extend_from_slice(data);
            }
            Frame::H3Settings { datagram, connect } => {
                out.push(12);
                out.push(*datagram as u8 | (*connect as u8) << 1);
            }
        }
    }

    fn len(&self) -> usize {
        let mut v = Vec::new();
        self.encode(&mut v);
        v.len()
    }

    /// Frames in `p` until its end or padding (0); `None` for junk.
    fn decode_all(mut p: &[u8]) -> Option<Vec<Frame>> {
        fn u64_of(p: &mut &[u8]) -> Option<u64> {
            let (v, rest) = p.split_first_chunk::<8>()?;
            *p = rest;
            Some(u64::from_le_bytes(*v))
        }
        fn bytes_of(p: &mut &[u8]) -> Option<Vec<u8>> {
            let n = u64_of(p)? as usize;
            if p.len() < n {
                return None;
            }
            let (v, rest) = p.split_at(n);
            *p = rest;
            Some(v.to_vec())
        }
        let mut frames = Vec::new();
        while let Some((&tag, rest)) = p.split_first() {
            p = rest;
            let f = match tag {
                0 => break,
                1 => {
                    let id = u64_of(&mut p)?;
                    let (&fin, rest) = p.split_first()?;
                    p = rest;
                    Frame::Stream { id, fin: fin != 0, data: bytes_of(&mut p)? }
                }
                2 => Frame::Reset { id: u64_of(&mut p)?, code: u64_of(&mut p)? },
                3 => Frame::Stop { id: u64_of(&mut p)?, code: u64_of(&mut p)? },
                4 => Frame::MaxStreamData { id: u64_of(&mut p)?, max: u64_of(&mut p)? },
                5 => Frame::MaxData { max: u64_of(&mut p)? },
                6 => Frame::MaxStreams { max: u64_of(&mut p)? },
                7 => {
                    let (&app, rest) = p.split_first()?;
                    p = rest;
                    Frame::Close { app: app != 0, code: u64_of(&mut p)?, reason: bytes_of(&mut p)? }
                }
                8 => Frame::GoAway { id: u64_of(&mut p)? },
                9 => Frame::StatelessReset,
                10 => Frame::Params { max_dgram: u64_of(&mut p)? },
                11 => Frame::Datagram { data: bytes_of(&mut p)? },
                12 => {
                    let (&bits, rest) = p.split_first()?;
                    p = rest;
                    Frame::H3Settings { datagram: bits & 1 != 0, connect: bits & 2 != 0 }
                }
                _ => return None,
            };
            frames.push(f);
        }
        Some(frames)
    }
}

#[derive(Default)]
struct FStream {
    /// Bytes accepted from the application, not yet in a packet.
    send_buf: VecDeque<u8>,
    /// Bytes accepted so far (what flow control counts).
    send_written: u64,
    send_max: u64,
    fin_written: bool,
    fin_sent: bool,
    reset_sent: bool,
    stopped_by_peer: Option<u64>,
    /// The application learnt of the stop (as quiche, which keeps a
    /// stopped stream until then).
    stop_seen: bool,
    recv_buf: VecDeque<u8>,
    recv_read: u64,
    recv_max: u64,
    recv_fin: bool,
    fin_read: bool,
    /// We stopped reading (STOP_SENDING sent).
    recv_closed: bool,
    recv_reset: Option<u64>,
    /// The application read the reset.
    reset_seen: bool,
    peer_initiated: bool,
}

impl FStream {
    fn send_done(&self) -> bool {
        self.reset_sent || self.stop_seen || (self.fin_sent && self.send_buf.is_empty())
    }

    fn recv_done(&self) -> bool {
        self.fin_read || self.recv_closed || self.reset_seen
    }
}

pub struct FakeConn {
    server: bool,
    cfg: FakeConfig,
    local: SocketAddr,
    peer: SocketAddr,
    scid: Vec<u8>,
    /// Where our packets go: the peer's CID.
    dcid: Vec<u8>,
    established: bool,
    /// Client: its Initial went out. Server: its reply is owed.
    initial_sent: bool,
    reply_owed: bool,
    /// Client: a packet for the server to complete its handshake.
    confirm_owed: bool,
    out: VecDeque<Frame>,
    streams: BTreeMap<u64, FStream>,
    conn_written: u64,
    conn_send_max: u64,
    conn_read: u64,
    conn_recv_max: u64,
    /// Streams the peer lets us open, and how many we opened.
    peer_max_streams: u64,
    opened: u64,
    /// Peer streams we allow in all, and how many are over.
    local_max_streams: u64,
    peer_streams_done: u64,
    closing: bool,
    closed: bool,
    timed_out: bool,
    idle: u32,
    local_error: Option<CloseError>,
    peer_error: Option<CloseError>,
    goaway: Option<u64>,
    received: u64,
    sent: u64,
    scids: Vec<Vec<u8>>,
    retired: VecDeque<Vec<u8>>,
    /// The peer's max_datagram_frame_size, once its parameters came.
    peer_max_dgram: Option<u64>,
    dgram_out: VecDeque<Vec<u8>>,
    dgram_in: VecDeque<Vec<u8>>,
    dgram_sent: u64,
    dgram_recv: u64,
    /// The peer's HTTP/3 SETTINGS (H3_DATAGRAM, ENABLE_CONNECT_PROTOCOL).
    peer_h3: Option<(bool, bool)>,
}

impl FakeConn {
    fn new(server: bool, cfg: &FakeConfig, new: &NewConn) -> FakeConn {
        // A client picks a random-looking 8-byte DCID for its Initial.
        let dcid = if server { Vec::new() } else { new.scid.iter().rev().take(8).copied().collect() };
        FakeConn {
            server, cfg: cfg.clone(), local: new.local, peer: new.peer, scid: new.scid.to_vec(), dcid,
            established: false, initial_sent: false, reply_owed: false, confirm_owed: false,
            streams: BTreeMap::new(), conn_written: 0, conn_send_max: cfg.conn_window, conn_read: 0,
            conn_recv_max: cfg.conn_window, peer_max_streams: cfg.max_streams, opened: 0,
            local_max_streams: cfg.max_streams, peer_streams_done: 0, closing: false, closed: false,
            timed_out: false, idle: cfg.idle_ticks, local_error: None, peer_error: None, goaway: None, received: 0,
            sent: 0, scids: vec![new.scid.to_vec()], retired: VecDeque::new(),
            // The transport parameters, in the first packet each way.
            out: VecDeque::from([Frame::Params { max_dgram: if cfg.dgram.is_some() { 65536 } else { 0 } }]),
            peer_max_dgram: None, dgram_out: VecDeque::new(), dgram_in: VecDeque::new(), dgram_sent: 0,
            dgram_recv: 0, peer_h3: None,
        }
    }

    /// Sends our HTTP/3 SETTINGS: H3_DATAGRAM when datagrams are on (as
    /// quiche decides), ENABLE_CONNECT_PROTOCOL as configured.
    pub fn send_h3_settings(&mut self, connect: bool) {
        self.out.push_back(Frame::H3Settings { datagram: self.cfg.dgram.is_some(), connect });
    }

    /// The peer's HTTP/3 SETTINGS (H3_DATAGRAM, ENABLE_CONNECT_PROTOCOL),
    /// once they came.
    pub fn peer_h3_settings(&self) -> Option<(bool, bool)> {
        self.peer_h3
    }

    /// Room for a new stream of ours (the framing's check before it opens
    /// one with a header section it cannot split).
    pub fn new_stream_capacity(&self) -> u64 {
        self.cfg.stream_window.min(self.conn_send_max - self.conn_written)
    }

    /// The peer's GOAWAY, once.
    pub fn take_goaway(&mut self) -> Option<u64> {
        self.goaway.take()
    }

    pub fn send_goaway(&mut self, id: u64) {
        self.out.push_back(Frame::GoAway { id });
    }

    /// The peer's FIN arrived and every byte before it was read.
    pub fn fin_pending(&self, id: u64) -> bool {
        self.streams.get(&id).is_some_and(|s| s.recv_fin && s.recv_buf.is_empty() && !s.fin_read)
    }

    fn is_local(&self, id: u64) -> bool {
        (id & 1 == 1) == self.server
    }

    fn cap(&self, s: &FStream) -> u64 {
        (s.send_max - s.send_written).min(self.conn_send_max - self.conn_written)
    }

    /// Forgets streams that are over both ways (quiche collects them too:
    /// their capacity becomes an error).
    fn collect(&mut self) {
        let done: Vec<u64> = self.streams.iter().filter(|(_, s)| s.send_done() && s.recv_done()).map(|(&i, _)| i)
            .collect();
        for id in done {
            if let Some(s) = self.streams.remove(&id) {
                if s.peer_initiated {
                    self.peer_streams_done += 1;
                    self.local_max_streams = self.peer_streams_done + self.cfg.max_streams;
                    self.out.push_back(Frame::MaxStreams { max: self.local_max_streams });
                }
            }
        }
    }

    fn apply(&mut self, f: Frame) {
        match f {
            Frame::Stream { id, data, fin } => {
                let window = self.cfg.stream_window;
                let local = self.is_local(id);
                let s = self.streams.entry(id).or_insert_with(|| FStream {
                    send_max: window, recv_max: window, peer_initiated: !local, ..Default::default()
                });
                if !s.recv_closed && s.recv_reset.is_none() {
                    s.recv_buf.extend(data);
                    s.recv_fin |= fin;
                }
            }
            Frame::Reset { id, code } => {
                if let Some(s) = self.streams.get_mut(&id) {
                    s.recv_buf.clear();
                    s.recv_reset.get_or_insert(code);
                }
            }
            Frame::Stop { id, code } => {
                if let Some(s) = self.streams.get_mut(&id) {
                    if s.stopped_by_peer.is_none() && !s.send_done() && !s.fin_sent {
                        s.stopped_by_peer = Some(code);
                        s.send_buf.clear();
                        self.out.push_back(Frame::Reset { id, code });
                    }
                }
            }
            Frame::MaxStreamData { id, max } => {
                if let Some(s) = self.streams.get_mut(&id) {
                    s.send_max = s.send_max.max(max);
                }
            }
            Frame::MaxData { max } => self.conn_send_max = self.conn_send_max.max(max),
            Frame::MaxStreams { max } => self.peer_max_streams = self.peer_max_streams.max(max),
            Frame::Close { app, code, reason } => {
                self.peer_error = Some(CloseError { by_peer: true, is_app: app, code, reason });
                self.closing = true; // draining
            }
            Frame::GoAway { id } => self.goaway = Some(id),
            Frame::StatelessReset => self.closed = true,
            Frame::Params { max_dgram } => self.peer_max_dgram = (max_dgram > 0).then_some(max_dgram),
            Frame::Datagram { data } => match self.cfg.dgram {
                // quiche closes a connection that gets what it never asked for.
                None => {
                    let _ = self.close(false, PROTOCOL_VIOLATION, b"");
                }
                Some((recv_len, _)) => {
                    self.dgram_recv += 1;
                    if self.dgram_in.len() >= recv_len {
                        self.dgram_in.pop_front(); // quiche discards the oldest
                    }
                    self.dgram_in.push_back(data);
                }
            },
            Frame::H3Settings { datagram, connect } => self.peer_h3 = Some((datagram, connect)),
        }
    }

    /// The frames of the next packet (control first, then stream data).
    fn next_frames(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        let mut room = BUDGET;
        while let Some(f) = self.out.front() {
            if f.len() > room {
                break;
            }
            room -= f.len();
            frames.push(self.out.pop_front().expect("front"));
        }
        if self.closing {
            return frames;
        }
        if self.established {
            while let Some(d) = self.dgram_out.front() {
                if d.len() + 9 > room {
                    break;
                }
                room -= d.len() + 9;
                self.dgram_sent += 1;
                frames.push(Frame::Datagram { data: self.dgram_out.pop_front().expect("front") });
            }
        }
        for (&id, s) in self.streams.iter_mut() {
            if room < 40 {
                break;
            }
            let unsent_fin = s.fin_written && !s.fin_sent;
            if s.send_buf.is_empty() && !unsent_fin {
                continue;
            }
            let n = s.send_buf.len().min(room - 40);
            let data: Vec<u8> = s.send_buf.drain(..n).collect();
            let fin = s.fin_written && s.send_buf.is_empty();
            s.fin_sent |= fin;
            room -= data.len() + 30;
            frames.push(Frame::Stream { id, data, fin });
        }
        frames
    }

    fn long_header(&self, initial: bool, out: &mut [u8]) -> usize {
        let mut p = vec![if initial { 0xc0 } else { 0xe0 }, 0, 0, 0, 1, self.dcid.len() as u8];
        p.extend_from_slice(&self.dcid);
        p.push(self.scid.len() as u8);
        p.extend_from_slice(&self.scid);
        if initial {
            p.push(0); // no token
        }
        p.extend_from_slice(&[0x44, 0x00]); // length (a varint; not checked)
        out[..p.len()].copy_from_slice(&p);
        p.len()
    }
}

impl Transport for FakeConn {
    fn recv(&mut self, buf: &mut [u8], info: RecvInfo) -> quiche::Result<usize> {
        if self.closed {
            return Err(quiche::Error::Done);
        }
        let Some(&first) = buf.first() else { return Err(quiche::Error::BufferTooShort) };
        let payload = if first & 0x80 != 0 {
            let dcid_len = *buf.get(5).ok_or(quiche::Error::InvalidPacket)? as usize;
            let scid_at = 6 + dcid_len;
            let scid_len = *buf.get(scid_at).ok_or(quiche::Error::InvalidPacket)? as usize;
            let scid = buf.get(scid_at + 1..scid_at + 1 + scid_len).ok_or(quiche::Error::InvalidPacket)?.to_vec();
            let mut at = scid_at + 1 + scid_len;
            if first & 0x30 == 0 {
                at += 1; // token length 0
            }
            at += 2;
            if self.server {
                self.reply_owed |= !self.established && !self.initial_sent;
            } else if !self.established {
                // The server's reply names its CID: ours to use from now on.
                self.dcid = scid;
                self.established = true;
                self.confirm_owed = true;
            }
            buf.get(at..).unwrap_or(&[])
        } else {
            if self.server {
                self.established = true;
            }
            // Our own CID's length tells where the header ends (as in QUIC).
            buf.get(1 + self.scid.len().max(16)..).unwrap_or(&[])
        };
        self.received += 1;
        self.idle = self.cfg.idle_ticks;
        self.peer = info.from;
        // Junk (a test's raw datagram) is just a packet with nothing in it.
        for f in Frame::decode_all(payload).unwrap_or_default() {
            self.apply(f);
        }
        self.collect();
        Ok(buf.len())
    }

    fn send(&mut self, out: &mut [u8]) -> quiche::Result<(usize, SendInfo)> {
        if self.closed {
            return Err(quiche::Error::Done);
        }
        let info = SendInfo { from: self.local, to: self.peer, at: Instant::now() };
        let (mut len, padded) = if !self.server && !self.initial_sent {
            self.initial_sent = true;
            (self.long_header(true, out), true)
        } else if self.server && self.reply_owed {
            self.reply_owed = false;
            self.initial_sent = true;
            (self.long_header(false, out), false)
        } else if self.established {
            let frames_waiting = !self.out.is_empty()
                || (!self.closing && !self.dgram_out.is_empty())
                || (!self.closing && self.streams.values().any(|s| !s.send_buf.is_empty() || (s.fin_written && !s.fin_sent)));
            if !frames_waiting && !std::mem::take(&mut self.confirm_owed) {
                return Err(quiche::Error::Done);
            }
            // The peer's CID as it is (any length up to 20), padded to 16
            // (a server's fake reply names no CID for the client).
            out[0] = 0x40;
            let n = self.dcid.len();
            out[1..1 + n].copy_from_slice(&self.dcid);
            let end = 1 + n.max(16);
            out[1 + n..end].fill(0);
            (end, false)
        } else {
            return Err(quiche::Error::Done);
        };
        let mut body = Vec::new();
        for f in self.next_frames() {
            f.encode(&mut body);
        }
        out[len..len + body.len()].copy_from_slice(&body);
        len += body.len();
        if padded {
            out[len..1200].fill(0);
            len = 1200;
        }
        self.sent += 1;
        self.collect();
        Ok((len, info))
    }

    fn max_send_udp_payload_size(&self) -> usize {
        1350
    }
    fn send_quantum(&self) -> usize {
        1350 * 10
    }
    fn timeout(&self) -> Option<Duration> {
        if self.closed {
            None
        } else if self.closing {
            Some(CLOSING_TICK)
        } else {
            Some(TICK)
        }
    }
    fn on_timeout(&mut self) {
        if self.closing {
            self.closed = true;
            return;
        }
        self.idle = self.idle.saturating_sub(1);
        if self.idle == 0 {
            self.closed = true;
            self.timed_out = true;
        }
    }
    fn is_established(&self) -> bool {
        self.established
    }
    fn is_in_early_data(&self) -> bool {
        false
    }
    fn is_closed(&self) -> bool {
        self.closed
    }
    fn close(&mut self, app: bool, err: u64, reason: &[u8]) -> quiche::Result<()> {
        if self.closing || self.closed {
            return Err(quiche::Error::Done);
        }
        self.closing = true;
        self.local_error = Some(CloseError { by_peer: false, is_app: app, code: err, reason: reason.to_vec() });
        self.out.push_back(Frame::Close { app, code: err, reason: reason.to_vec() });
        Ok(())
    }
    fn scids_left(&self) -> usize {
        2usize.saturating_sub(self.scids.len())
    }
    fn active_scids(&self) -> usize {
        self.scids.len()
    }
    fn new_scid(&mut self, scid: &[u8], _token: u128) -> quiche::Result<u64> {
        self.scids.push(scid.to_vec());
        Ok(self.scids.len() as u64 - 1)
    }
    fn retired_scid_next(&mut self) -> Option<ConnectionId<'static>> {
        let cid = self.retired.pop_front()?;
        self.scids.retain(|c| *c != cid);
        Some(ConnectionId::from_vec(cid))
    }
    fn migrate_source(&mut self, local: SocketAddr) -> quiche::Result<u64> {
        self.local = local;
        Ok(1)
    }
    fn peer_disabled_migration(&self) -> bool {
        false
    }
    fn probe_path(&mut self, _local: SocketAddr, _peer: SocketAddr) -> quiche::Result<u64> {
        Ok(0)
    }
    fn path_event_next(&mut self) -> Option<PathEvent> {
        None
    }
    fn session(&self) -> Option<Vec<u8>> {
        None
    }
    fn set_session(&mut self, _session: &[u8]) -> quiche::Result<()> {
        Ok(())
    }
    fn conn_stats(&self) -> ConnStats {
        ConnStats { recv: self.received, sent: self.sent, dgram_sent: self.dgram_sent, dgram_recv: self.dgram_recv,
                    ..Default::default() }
    }
    fn close_info(&self) -> CloseInfo {
        CloseInfo { timed_out: self.timed_out, stateless_reset: false,
                    error: self.peer_error.clone().or_else(|| self.local_error.clone()) }
    }
    fn close_reason(&self, by_peer: bool) -> Option<&[u8]> {
        let e = if by_peer { &self.peer_error } else { &self.local_error };
        e.as_ref().map(|e| e.reason.as_slice())
    }
    fn peer_addr(&self) -> Option<SocketAddr> {
        Some(self.peer)
    }
    fn application_proto(&self) -> &[u8] {
        b"fake"
    }
}

impl crate::observe::Observed for FakeConn {
    fn set_keylog(&mut self, _w: Box<dyn std::io::Write + Send + Sync>) {}
    fn set_qlog(&mut self, _w: Box<dyn std::io::Write + Send + Sync>, _title: String, _description: String) {}
    fn source_id(&self) -> Vec<u8> {
        self.scid.clone()
    }
}

thread_local! {
    /// A test's injected internal error: the next stream send panics.
    pub static PANIC_ON_SEND: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Datagrams for FakeConn {
    fn dgram_max_writable_len(&self) -> Option<usize> {
        self.peer_max_dgram.map(|m| (m as usize).min(MAX_DGRAM))
    }
    fn dgram_send(&mut self, data: &[u8]) -> quiche::Result<()> {
        let max = self.dgram_max_writable_len().ok_or(quiche::Error::InvalidState)?;
        if data.len() > max {
            return Err(quiche::Error::BufferTooShort);
        }
        if self.is_dgram_send_queue_full() {
            return Err(quiche::Error::Done);
        }
        self.dgram_out.push_back(data.to_vec());
        Ok(())
    }
    fn dgram_recv_vec(&mut self) -> Option<Vec<u8>> {
        self.dgram_in.pop_front()
    }
    fn is_dgram_send_queue_full(&self) -> bool {
        self.dgram_out.len() >= self.cfg.dgram.map_or(0, |(_, send_len)| send_len)
    }
    fn dgram_send_queue_len(&self) -> usize {
        self.dgram_out.len()
    }
}

impl Streams for FakeConn {
    fn stream_send(&mut self, id: u64, data: &[u8], fin: bool) -> quiche::Result<usize> {
        if PANIC_ON_SEND.with(|p| p.replace(false)) {
            panic!("injected internal error");
        }
        if self.closing || self.closed {
            return Err(quiche::Error::Done);
        }
        if !self.streams.contains_key(&id) {
            if !self.is_local(id) {
                return Err(quiche::Error::InvalidStreamState(id));
            }
            if self.opened >= self.peer_max_streams {
                return Err(quiche::Error::StreamLimit);
            }
            self.opened += 1;
            let w = self.cfg.stream_window;
            self.streams.insert(id, FStream { send_max: w, recv_max: w, ..Default::default() });
        }
        let s = self.streams.get_mut(&id).expect("inserted");
        if let Some(code) = s.stopped_by_peer {
            s.stop_seen = true;
            return Err(quiche::Error::StreamStopped(code));
        }
        let s = self.streams.get(&id).expect("inserted");
        if s.fin_written || s.reset_sent {
            return Err(quiche::Error::FinalSize);
        }
        let cap = self.cap(s) as usize;
        if cap == 0 && !data.is_empty() {
            return Err(quiche::Error::Done);
        }
        let n = data.len().min(cap);
        let s = self.streams.get_mut(&id).expect("present");
        s.send_buf.extend(&data[..n]);
        s.send_written += n as u64;
        s.fin_written = fin && n == data.len();
        self.conn_written += n as u64;
        Ok(n)
    }

    fn stream_recv(&mut self, id: u64, buf: &mut [u8]) -> quiche::Result<(usize, bool)> {
        let window = self.cfg.stream_window;
        let Some(s) = self.streams.get_mut(&id) else { return Err(quiche::Error::InvalidStreamState(id)) };
        if let Some(code) = s.recv_reset {
            s.reset_seen = true;
            return Err(quiche::Error::StreamReset(code));
        }
        if s.fin_read || s.recv_closed || (s.recv_buf.is_empty() && !s.recv_fin) {
            return Err(quiche::Error::Done);
        }
        let n = buf.len().min(s.recv_buf.len());
        for (b, v) in buf.iter_mut().zip(s.recv_buf.drain(..n)) {
            *b = v;
        }
        let fin = s.recv_fin && s.recv_buf.is_empty();
        s.fin_read = fin;
        s.recv_read += n as u64;
        // Credit goes back as it is read.
        if s.recv_max - s.recv_read < window / 2 && !fin {
            s.recv_max = s.recv_read + window;
            self.out.push_back(Frame::MaxStreamData { id, max: s.recv_max });
        }
        self.conn_read += n as u64;
        if self.conn_recv_max - self.conn_read < self.cfg.conn_window / 2 {
            self.conn_recv_max = self.conn_read + self.cfg.conn_window;
            self.out.push_back(Frame::MaxData { max: self.conn_recv_max });
        }
        self.collect();
        Ok((n, fin))
    }

    fn stream_shutdown(&mut self, id: u64, dir: Shutdown, code: u64) -> quiche::Result<()> {
        let Some(s) = self.streams.get_mut(&id) else { return Err(quiche::Error::InvalidStreamState(id)) };
        match dir {
            Shutdown::Read => {
                if !s.recv_done() {
                    s.recv_closed = true;
                    s.recv_buf.clear();
                    self.out.push_back(Frame::Stop { id, code });
                }
            }
            Shutdown::Write => {
                if !s.send_done() {
                    s.reset_sent = true;
                    s.send_buf.clear();
                    self.out.push_back(Frame::Reset { id, code });
                }
            }
        }
        self.collect();
        Ok(())
    }

    fn stream_capacity(&mut self, id: u64) -> quiche::Result<usize> {
        let Some(s) = self.streams.get_mut(&id) else { return Err(quiche::Error::InvalidStreamState(id)) };
        if let Some(code) = s.stopped_by_peer {
            s.stop_seen = true;
            return Err(quiche::Error::StreamStopped(code));
        }
        let s = self.streams.get(&id).expect("present");
        Ok(self.cap(s) as usize)
    }

    fn writable_streams(&mut self) -> Vec<u64> {
        self.streams.iter()
            .filter(|(_, s)| (s.stopped_by_peer.is_some() && !s.stop_seen) || (!s.send_done() && !s.fin_written && self.cap(s) > 0))
            .map(|(&i, _)| i).collect()
    }

    fn readable_streams(&mut self) -> Vec<u64> {
        self.streams.iter()
            .filter(|(_, s)| (s.recv_reset.is_some() && !s.reset_seen) || (!s.recv_closed && !s.fin_read && (!s.recv_buf.is_empty() || s.recv_fin)))
            .map(|(&i, _)| i).collect()
    }

    fn peer_streams_left_bidi(&self) -> u64 {
        self.peer_max_streams.saturating_sub(self.opened)
    }
}
