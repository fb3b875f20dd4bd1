//! Per-connection I/O shared by the server and the client: `flush_egress`,
//! the connection's libev timer, and the closing statistics line.
//!
//! Egress builds GSO batches (consecutive packets for one address, all of
//! one size but the last), honours quiche's pacing time (`send_info.at`)
//! with the connection timer, and keeps what the socket would not take
//! (EAGAIN/ENOBUFS) until it is writable again, instead of dropping it.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use libev_sys::{ev_loop, ev_timer, ev_timer_again, ev_timer_stop};

use crate::batch_io::{is_full, send_segments, GsoPolicy, IoMode, MAX_GSO_BYTES, MAX_SEGMENTS};

thread_local! {
    // TEMPORARY, until the socket owners (server.rs, client.rs) keep a
    // GsoPolicy next to their socket and pass it in: one per thread, i.e.
    // per event loop.
    static GSO_POLICY: std::cell::RefCell<GsoPolicy> = std::cell::RefCell::new(GsoPolicy::new());
}

/// Smallest timer interval. `ev_timer_again` with a repeat of 0 stops the
/// timer, so an already-expired quiche timeout (0 ns) must become "now".
const MIN_TIMER_SECS: f64 = 1e-6;

/// Packets due this close to now are sent now (libev's timers are no finer
/// than about a millisecond).
const PACING_GRANULARITY: Duration = Duration::from_millis(1);

/// Bytes for one batch plus one packet that did not fit it.
pub(crate) const SCRATCH_LEN: usize = MAX_GSO_BYTES + 1500;

/// A batch quiche produced that has not gone out yet.
pub struct Pending {
    data: Vec<u8>,
    segment: usize,
    to: SocketAddr,
    at: Option<Instant>,
}

/// What `flush_egress` left behind.
#[derive(Debug, PartialEq, Eq)]
pub enum Flushed {
    /// Everything quiche had is sent.
    Done,
    /// The socket is full: call again when it is writable.
    Blocked,
    /// The next packet is due later; the timer is set for it.
    Paced,
}

/// One batch being built in the scratch buffer.
struct Batch {
    len: usize,
    segment: usize,
    to: SocketAddr,
    at: Option<Instant>,
    /// Length of a packet after the batch that could not join it.
    carry: usize,
    carry_to: SocketAddr,
    carry_at: Option<Instant>,
}

/// Fills `scratch` with one batch from quiche. `None` when quiche has
/// nothing to send.
fn build(conn: &mut quiche::Connection, scratch: &mut [u8], mode: IoMode,
         start: Option<(usize, SocketAddr, Option<Instant>)>) -> Option<Batch> {
    let max_pkt = conn.max_send_udp_payload_size().min(1500);
    let mut b = match start {
        Some((len, to, at)) => Batch { len, segment: len, to, at, carry: 0, carry_to: to, carry_at: None },
        None => match conn.send(&mut scratch[..max_pkt]) {
            Ok((len, info)) => Batch { len, segment: len, to: info.to, at: Some(info.at), carry: 0,
                                       carry_to: info.to, carry_at: None },
            Err(quiche::Error::Done) => return None,
            Err(e) => {
                eprintln!("failed to create packet: {e:?}");
                return None;
            }
        },
    };
    if !mode.gso {
        return Some(b);
    }
    let max_segments = MAX_SEGMENTS.min(MAX_GSO_BYTES / b.segment.max(1));
    let quantum = conn.send_quantum().max(b.segment);
    while b.len / b.segment < max_segments && b.len + b.segment <= quantum.min(MAX_GSO_BYTES) {
        let room = &mut scratch[b.len..b.len + max_pkt];
        match conn.send(room) {
            Ok((len, info)) if info.to == b.to && len <= b.segment => {
                b.len += len;
                if len < b.segment {
                    break; // a short packet ends a GSO batch
                }
            }
            Ok((len, info)) => {
                b.carry = len;
                b.carry_to = info.to;
                b.carry_at = Some(info.at);
                break;
            }
            Err(quiche::Error::Done) => break,
            Err(e) => {
                eprintln!("failed to create packet: {e:?}");
                break;
            }
        }
    }
    Some(b)
}

fn due_later(at: Option<Instant>, now: Instant) -> Option<Duration> {
    at.and_then(|at| at.checked_duration_since(now)).filter(|d| *d > PACING_GRANULARITY)
}

/// Sends one batch; Ok(true) when all of it went out. On a full socket
/// (or a pacing delay) the rest is appended to `pending`.
/// How batches leave: `send_segments` on the socket, or a stand-in in tests.
type Send<'a> = &'a mut dyn FnMut(&[u8], usize, &SocketAddr) -> std::io::Result<usize>;

fn send_batch(send: Send, data: &[u8], segment: usize, to: SocketAddr, at: Option<Instant>,
              pending: &mut Vec<Pending>) -> Result<(), Flushed> {
    if due_later(at, Instant::now()).is_some() {
        pending.push(Pending { data: data.to_vec(), segment, to, at });
        return Err(Flushed::Paced);
    }
    match send(data, segment, &to) {
        Ok(n) if n == data.len() => Ok(()),
        Ok(n) => {
            pending.push(Pending { data: data[n..].to_vec(), segment, to, at: None });
            Err(Flushed::Blocked)
        }
        Err(e) if is_full(&e) => {
            pending.push(Pending { data: data.to_vec(), segment, to, at: None });
            Err(Flushed::Blocked)
        }
        Err(e) => {
            // Unreachable peer and the like: the packet is lost; quiche's
            // loss recovery resends its frames.
            eprintln!("failed to send: {e}");
            Ok(())
        }
    }
}

/// `flush_egress`: sends what is pending, then every packet quiche has for
/// `conn` (each to `send_info.to`), then re-arms `timer` for quiche's next
/// timeout or the next paced packet, whichever is sooner.
///
/// # Safety
/// `lp` must be the loop `timer` runs on and `timer` must stay at this
/// address while active.
pub unsafe fn flush_egress(lp: *mut ev_loop, sock: RawFd, conn: &mut quiche::Connection,
                           timer: &mut ev_timer, pending: &mut Vec<Pending>,
                           scratch: &mut [u8], mode: IoMode) -> Flushed {
    let mut send = |data: &[u8], segment: usize, to: &SocketAddr| {
        GSO_POLICY.with_borrow_mut(|gso| send_segments(sock, data, segment, to, mode.gso.then_some(gso)))
    };
    let result = flush(&mut send, conn, pending, scratch, mode);
    let now = Instant::now();
    let mut next = conn.timeout();
    if result == Flushed::Paced {
        let wait = pending.first().and_then(|p| due_later(p.at, now)).unwrap_or_default();
        next = Some(next.map_or(wait, |t| t.min(wait)));
    }
    arm_timer(lp, next, timer);
    result
}

fn flush(send: Send, conn: &mut quiche::Connection, pending: &mut Vec<Pending>,
         scratch: &mut [u8], mode: IoMode) -> Flushed {
    // What an earlier flush could not send goes first, in order.
    while !pending.is_empty() {
        let p = pending.remove(0);
        let mut rest = Vec::new();
        if let Err(why) = send_batch(send, &p.data, p.segment, p.to, p.at, &mut rest) {
            rest.append(pending);
            *pending = rest;
            return why;
        }
    }
    let mut carried = None;
    while let Some(b) = build(conn, scratch, mode, carried.take()) {
        if let Err(why) = send_batch(send, &scratch[..b.len], b.segment, b.to, b.at, pending) {
            if b.carry > 0 {
                let c = &scratch[b.len..b.len + b.carry];
                pending.push(Pending { data: c.to_vec(), segment: b.carry, to: b.carry_to, at: b.carry_at });
            }
            return why;
        }
        if b.carry > 0 {
            scratch.copy_within(b.len..b.len + b.carry, 0);
            carried = Some((b.carry, b.carry_to, b.carry_at));
        }
    }
    Flushed::Done
}

/// Re-arms (or stops) the connection timer for `after` from now.
///
/// # Safety
/// As for [`flush_egress`].
pub unsafe fn arm_timer(lp: *mut ev_loop, after: Option<Duration>, timer: &mut ev_timer) {
    match after {
        Some(d) => {
            timer.repeat = d.as_secs_f64().max(MIN_TIMER_SECS);
            ev_timer_again(lp, timer);
        }
        None => ev_timer_stop(lp, timer),
    }
}

/// Upstream's closing line: `connection closed, recv=.. sent=.. lost=..
/// rtt=..ns` plus ` cwnd=..` on the server.
pub fn closed_line(conn: &quiche::Connection, with_cwnd: bool) -> String {
    let stats = conn.stats();
    let path = conn.path_stats().next();
    let rtt = path.as_ref().map(|p| p.rtt.as_nanos()).unwrap_or(0);
    let mut line = format!("connection closed, recv={} sent={} lost={} rtt={}ns",
                           stats.recv, stats.sent, stats.lost, rtt);
    if with_cwnd {
        line.push_str(&format!(" cwnd={}", path.map(|p| p.cwnd).unwrap_or(0)));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn pair() -> (quiche::Connection, quiche::Connection, SocketAddr, SocketAddr) {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/c-examples");
        let mk = |server: bool| {
            let mut c = quiche::Config::new(quiche::PROTOCOL_VERSION).unwrap();
            c.set_application_protos(&[b"hq-interop"]).unwrap();
            c.set_initial_max_data(10_000_000);
            c.set_initial_max_stream_data_bidi_local(10_000_000);
            c.set_initial_max_stream_data_bidi_remote(10_000_000);
            c.set_initial_max_streams_bidi(10);
            // Pacing would hold packets for real time; this test is about
            // a full socket.
            c.enable_pacing(false);
            if server {
                c.load_cert_chain_from_pem_file(&format!("{dir}/cert.crt")).expect("run `make` first");
                c.load_priv_key_from_pem_file(&format!("{dir}/cert.key")).unwrap();
            }
            c
        };
        let (a, b): (SocketAddr, SocketAddr) = ("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap());
        let client = quiche::connect(None, &quiche::ConnectionId::from_ref(&[1; 16]), a, b, &mut mk(false)).unwrap();
        let server = quiche::accept(&quiche::ConnectionId::from_ref(&[2; 16]), None, b, a, &mut mk(true)).unwrap();
        (client, server, a, b)
    }

    /// Moves packets both ways until the handshake is done.
    fn handshake(c: &mut quiche::Connection, s: &mut quiche::Connection, a: SocketAddr, b: SocketAddr) {
        let mut buf = [0u8; 1500];
        for _ in 0..10 {
            while let Ok((n, _)) = c.send(&mut buf) {
                s.recv(&mut buf[..n], quiche::RecvInfo { from: a, to: b }).unwrap();
            }
            while let Ok((n, _)) = s.send(&mut buf) {
                c.recv(&mut buf[..n], quiche::RecvInfo { from: b, to: a }).unwrap();
            }
        }
        assert!(c.is_established() && s.is_established());
    }

    #[test]
    fn a_full_socket_keeps_every_byte_and_resumes_in_order() {
        let (mut client, mut server, a, b) = pair();
        handshake(&mut client, &mut server, a, b);
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        let mut off = 0;
        let mut push = |server: &mut quiche::Connection| {
            if off < body.len() {
                if let Ok(n) = server.stream_send(1, &body[off..], true) {
                    off += n;
                }
            }
        };
        push(&mut server);
        let mut scratch = vec![0u8; SCRATCH_LEN];
        let mut pending = Vec::new();
        let mut wire: Vec<Vec<u8>> = Vec::new();
        // The socket takes two packets of the first batch, then is full.
        let mut calls = 0;
        let mut full = |data: &[u8], seg: usize, _: &SocketAddr| -> io::Result<usize> {
            calls += 1;
            if calls > 1 {
                return Err(io::Error::from(io::ErrorKind::WouldBlock));
            }
            let took = data.len().min(2 * seg);
            wire.extend(data[..took].chunks(seg).map(|p| p.to_vec()));
            Ok(took)
        };
        let r = flush(&mut full, &mut server, &mut pending, &mut scratch, IoMode::BATCHED);
        assert_eq!(r, Flushed::Blocked);
        assert!(!pending.is_empty(), "the refused batch is kept");
        let held: usize = pending.iter().map(|p| p.data.len()).sum();
        assert!(held > 0);
        // Writable again: what was held goes out first, then the rest.
        let mut rounds = 0;
        let mut got = Vec::new();
        loop {
            let mut open = |data: &[u8], seg: usize, _: &SocketAddr| -> io::Result<usize> {
                wire.extend(data.chunks(seg).map(|p| p.to_vec()));
                Ok(data.len())
            };
            let r = flush(&mut open, &mut server, &mut pending, &mut scratch, IoMode::BATCHED);
            assert_ne!(r, Flushed::Blocked);
            // Deliver to the client and bring its ACKs back.
            for pkt in wire.drain(..) {
                let mut pkt = pkt;
                client.recv(&mut pkt, quiche::RecvInfo { from: b, to: a }).unwrap();
            }
            let mut buf = [0u8; 1500];
            while let Ok((n, _)) = client.send(&mut buf) {
                server.recv(&mut buf[..n], quiche::RecvInfo { from: a, to: b }).unwrap();
            }
            let mut rbuf = vec![0u8; 300_000];
            while let Ok((n, _)) = client.stream_recv(1, &mut rbuf) {
                got.extend_from_slice(&rbuf[..n]);
            }
            if client.stream_finished(1) {
                break;
            }
            push(&mut server);
            rounds += 1;
            assert!(rounds < 500, "the transfer never finished");
        }
        let expected: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        assert!(got == expected, "every byte arrives, in order");
        assert!(pending.is_empty());
        // Nothing was lost: quiche never had to declare a packet lost.
        assert_eq!(server.stats().lost, 0, "held packets were sent, not dropped");
    }

    #[test]
    fn plain_mode_sends_one_packet_per_call() {
        let (mut client, mut server, a, b) = pair();
        handshake(&mut client, &mut server, a, b);
        server.stream_send(1, &vec![1u8; 50_000], true).unwrap();
        let mut scratch = vec![0u8; SCRATCH_LEN];
        let mut pending = Vec::new();
        let mut sizes = Vec::new();
        let mut send = |data: &[u8], seg: usize, _: &SocketAddr| -> io::Result<usize> {
            assert!(data.len() <= seg, "plain mode never batches");
            sizes.push(data.len());
            Ok(data.len())
        };
        flush(&mut send, &mut server, &mut pending, &mut scratch, IoMode::PLAIN);
        assert!(sizes.len() > 5);
    }
}
