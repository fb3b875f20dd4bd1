//! A connection's egress: packets from quiche, grouped into GSO batches
//! (consecutive packets on one path, all of one size but the last), sent
//! when quiche's pacer says (`send_info.at`), and kept, never dropped, when
//! the socket is full (EAGAIN/ENOBUFS) until it is writable again.
//!
//! Pure logic over a send function, so the unit tests below (and the
//! driver's) run it without a socket.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::batch_io::{is_full, MAX_GSO_BYTES, MAX_SEGMENTS};
use crate::transport::Transport;

/// Packets due this close to now are sent now (libev's timers are no finer
/// than about a millisecond).
pub const PACING_GRANULARITY: Duration = Duration::from_millis(1);

/// Bytes for one batch plus one packet that did not fit it.
pub const SCRATCH_LEN: usize = MAX_GSO_BYTES + 1500;

/// How batches leave: `(data, segment, from, to)` → bytes that went out (a
/// whole number of packets), or WouldBlock when none did.
pub type SendFn<'a> = &'a mut dyn FnMut(&[u8], usize, SocketAddr, SocketAddr) -> io::Result<usize>;

/// A batch quiche produced that has not gone out yet.
struct Pending {
    data: Vec<u8>,
    segment: usize,
    from: SocketAddr,
    to: SocketAddr,
    /// Pacing release time; `None`: as soon as the socket takes it.
    at: Option<Instant>,
}

/// What a flush left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Everything quiche had is sent.
    Done,
    /// The socket is full: flush again when it is writable.
    Blocked,
    /// The next batch is due at this time.
    Paced(Instant),
}

/// One connection's held-back egress.
#[derive(Default)]
pub struct Egress {
    pending: VecDeque<Pending>,
}

/// One batch being built in the scratch buffer, and the packet after it
/// that could not join it (`carry`, also in the scratch buffer).
struct Batch {
    len: usize,
    segment: usize,
    from: SocketAddr,
    to: SocketAddr,
    at: Option<Instant>,
    carry: Option<(usize, quiche::SendInfo)>,
}

fn due_later(at: Option<Instant>, now: Instant) -> Option<Instant> {
    at.filter(|at| at.checked_duration_since(now).is_some_and(|d| d > PACING_GRANULARITY))
}

fn next_packet<C: Transport>(conn: &mut C, out: &mut [u8]) -> Option<(usize, quiche::SendInfo)> {
    match conn.send(out) {
        Ok(v) => Some(v),
        Err(quiche::Error::Done) => None,
        Err(e) => {
            log_debug!("failed to create packet: {e:?}");
            None
        }
    }
}

/// Fills `scratch` with one batch from quiche (starting with a packet
/// carried over from the previous batch, if any). `None` when quiche has
/// nothing to send.
fn build<C: Transport>(conn: &mut C, scratch: &mut [u8], gso: bool,
                       start: Option<(usize, quiche::SendInfo)>) -> Option<Batch> {
    let max_pkt = conn.max_send_udp_payload_size().min(1500);
    let (len, info) = match start {
        Some(s) => s,
        None => next_packet(conn, &mut scratch[..max_pkt])?,
    };
    let mut b = Batch { len, segment: len, from: info.from, to: info.to, at: Some(info.at), carry: None };
    if !gso {
        return Some(b);
    }
    let max_segments = MAX_SEGMENTS.min(MAX_GSO_BYTES / b.segment.max(1));
    let quantum = conn.send_quantum().max(b.segment).min(MAX_GSO_BYTES);
    while b.len / b.segment < max_segments && b.len + b.segment <= quantum {
        let Some((len, info)) = next_packet(conn, &mut scratch[b.len..b.len + max_pkt]) else { break };
        let same_path = info.to == b.to && info.from == b.from;
        if same_path && len <= b.segment && due_later(Some(info.at), b.at.unwrap_or(info.at)).is_none() {
            b.len += len;
            if len < b.segment {
                break; // a short packet ends a GSO batch
            }
        } else {
            b.carry = Some((len, info));
            break;
        }
    }
    Some(b)
}

impl Egress {
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    fn hold(&mut self, data: &[u8], segment: usize, from: SocketAddr, to: SocketAddr, at: Option<Instant>) {
        self.pending.push_back(Pending { data: data.to_vec(), segment, from, to, at });
    }

    /// Sends one batch now; on a full socket keeps what did not go out (at
    /// the back of the queue, or at the front with `urgent`).
    fn send_now(&mut self, send: SendFn, data: &[u8], segment: usize, from: SocketAddr, to: SocketAddr,
                urgent: bool) -> Result<(), Flushed> {
        let rest = match send(data, segment, from, to) {
            Ok(n) if n == data.len() => return Ok(()),
            Ok(n) => &data[n..],
            Err(e) if is_full(&e) => data,
            Err(e) => {
                // Unreachable peer and the like: the packets are lost and
                // quiche's loss recovery resends their frames.
                log_debug!("failed to send: {e}");
                return Ok(());
            }
        };
        let p = Pending { data: rest.to_vec(), segment, from, to, at: None };
        if urgent {
            self.pending.push_front(p);
        } else {
            self.pending.push_back(p);
        }
        Err(Flushed::Blocked)
    }

    /// `flush_egress` without the timer: what an earlier flush held goes
    /// first, in order, then every packet quiche has, each to
    /// `send_info.to` from `send_info.from`.
    ///
    /// With `ack_now` (packets arrived since the last flush), one packet
    /// goes out even while a paced batch waits, so the peer's ACKs are
    /// never held back behind our own pacing.
    pub fn flush<C: Transport>(&mut self, send: SendFn, conn: &mut C, scratch: &mut [u8], gso: bool,
                               ack_now: bool, now: Instant) -> Flushed {
        while let Some(p) = self.pending.front() {
            if let Some(at) = due_later(p.at, now) {
                if ack_now {
                    let max_pkt = conn.max_send_udp_payload_size().min(1500);
                    if let Some((len, info)) = next_packet(conn, &mut scratch[..max_pkt]) {
                        if let Err(why) = self.send_now(send, &scratch[..len], len, info.from, info.to, true) {
                            return why;
                        }
                    }
                }
                return Flushed::Paced(at);
            }
            let p = self.pending.pop_front().expect("front exists");
            if let Err(why) = self.send_now(send, &p.data, p.segment, p.from, p.to, true) {
                return why;
            }
        }
        let mut carried = None;
        while let Some(b) = build(conn, scratch, gso, carried.take()) {
            if let Some(at) = due_later(b.at, now) {
                self.hold(&scratch[..b.len], b.segment, b.from, b.to, b.at);
                if let Some((len, info)) = b.carry {
                    self.hold(&scratch[b.len..b.len + len], len, info.from, info.to, Some(info.at));
                }
                return Flushed::Paced(at);
            }
            if let Err(why) = self.send_now(send, &scratch[..b.len], b.segment, b.from, b.to, false) {
                if let Some((len, info)) = b.carry {
                    self.hold(&scratch[b.len..b.len + len], len, info.from, info.to, Some(info.at));
                }
                return why;
            }
            if let Some((len, info)) = b.carry {
                scratch.copy_within(b.len..b.len + len, 0);
                carried = Some((len, info));
            }
        }
        Flushed::Done
    }
}

#[cfg(all(test, not(miri)))]
pub(crate) mod tests {
    use super::*;
    use crate::testing::{handshake, pair, pair_with};

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
        let mut q = Egress::default();
        let mut wire: Vec<Vec<u8>> = Vec::new();
        // The socket takes two packets of the first batch, then is full.
        let mut calls = 0;
        let mut full = |data: &[u8], seg: usize, _: SocketAddr, _: SocketAddr| -> io::Result<usize> {
            calls += 1;
            if calls > 1 {
                return Err(io::Error::from(io::ErrorKind::WouldBlock));
            }
            let took = data.len().min(2 * seg);
            wire.extend(data[..took].chunks(seg).map(|p| p.to_vec()));
            Ok(took)
        };
        let r = q.flush(&mut full, &mut server, &mut scratch, true, false, Instant::now());
        assert_eq!(r, Flushed::Blocked);
        assert!(!q.is_empty(), "the refused batch is kept");
        // Writable again: what was held goes out first, then the rest.
        let mut rounds = 0;
        let mut got = Vec::new();
        loop {
            let mut open = |data: &[u8], seg: usize, _: SocketAddr, _: SocketAddr| -> io::Result<usize> {
                wire.extend(data.chunks(seg).map(|p| p.to_vec()));
                Ok(data.len())
            };
            let r = q.flush(&mut open, &mut server, &mut scratch, true, false, Instant::now());
            assert_ne!(r, Flushed::Blocked);
            for mut pkt in wire.drain(..) {
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
        assert!(got == body, "every byte arrives, in order");
        assert!(q.is_empty());
        assert_eq!(server.stats().lost, 0, "held packets were sent, not dropped");
    }

    #[test]
    fn plain_mode_sends_one_packet_per_call() {
        let (mut client, mut server, a, b) = pair();
        handshake(&mut client, &mut server, a, b);
        server.stream_send(1, &vec![1u8; 50_000], true).unwrap();
        let mut scratch = vec![0u8; SCRATCH_LEN];
        let mut sizes = Vec::new();
        let mut send = |data: &[u8], seg: usize, _: SocketAddr, _: SocketAddr| -> io::Result<usize> {
            assert!(data.len() <= seg, "plain mode never batches");
            sizes.push(data.len());
            Ok(data.len())
        };
        Egress::default().flush(&mut send, &mut server, &mut scratch, false, false, Instant::now());
        assert!(sizes.len() > 5);
    }

    /// With BBR2 (quiche's paced congestion control), packets leave at the
    /// times quiche gives them, never earlier; a paced batch waits in the
    /// queue; and while it waits, received packets still get their ACK out
    /// at once.
    #[test]
    fn bbr2_packets_leave_at_their_paced_times_and_acks_are_not_held() {
        let (mut client, mut server, a, b) = pair_with(|c| {
            c.set_cc_algorithm(quiche::CongestionControlAlgorithm::Bbr2Gcongestion);
            c.enable_pacing(true);
            // A low pacing rate makes the intervals long enough to see.
            c.set_max_pacing_rate(2_000_000);
        });
        handshake(&mut client, &mut server, a, b);
        server.stream_send(1, &vec![7u8; 400_000], true).unwrap();
        let mut scratch = vec![0u8; SCRATCH_LEN];
        let mut q = Egress::default();
        let start = Instant::now();
        let mut sent_at: Vec<(Instant, usize)> = Vec::new();
        let mut paced = 0;
        let mut early = 0;
        let mut waited = Duration::ZERO;
        while sent_at.len() < 60 && start.elapsed() < Duration::from_secs(20) {
            let now = Instant::now();
            let mut send = |data: &[u8], seg: usize, _: SocketAddr, _: SocketAddr| -> io::Result<usize> {
                sent_at.push((Instant::now(), data.len() / seg.max(1)));
                Ok(data.len())
            };
            match q.flush(&mut send, &mut server, &mut scratch, true, false, now) {
                Flushed::Paced(at) => {
                    paced += 1;
                    // Before its time, a flush sends nothing of it.
                    let before = sent_at.len();
                    let mut none = |_: &[u8], _: usize, _: SocketAddr, _: SocketAddr| -> io::Result<usize> {
                        early += 1;
                        Ok(0)
                    };
                    if at.checked_duration_since(Instant::now()).is_some_and(|d| d > 2 * PACING_GRANULARITY) {
                        q.flush(&mut none, &mut server, &mut scratch, true, false, Instant::now());
                    }
                    assert_eq!(sent_at.len(), before);
                    let d = at.saturating_duration_since(Instant::now());
                    waited += d;
                    std::thread::sleep(d);
                }
                Flushed::Done => break,
                Flushed::Blocked => unreachable!(),
            }
        }
        assert!(paced > 5, "BBR2 at 2 Mbit/s paces the transfer ({paced} waits)");
        assert_eq!(early, 0, "nothing left before its release time");
        assert!(waited > Duration::from_millis(20), "the pacer's intervals were honoured ({waited:?})");

        // A paced batch is waiting; a packet from the peer arrives: its ACK
        // goes out now, the paced batch stays queued.
        let mut now_q = Egress::default();
        let s2 = std::cell::RefCell::new(Vec::new());
        let mut capture = |d: &[u8], _: usize, _: SocketAddr, _: SocketAddr| -> io::Result<usize> {
            s2.borrow_mut().push(d.len());
            Ok(d.len())
        };
        // Fill until something is paced.
        let mut r = now_q.flush(&mut capture, &mut server, &mut scratch, true, false, Instant::now());
        let mut spins = 0;
        while !matches!(r, Flushed::Paced(_)) && spins < 100 {
            let _ = server.stream_send(1, &[0u8; 1], false);
            r = now_q.flush(&mut capture, &mut server, &mut scratch, true, false, Instant::now());
            spins += 1;
        }
        if let Flushed::Paced(_) = r {
            client.send_ack_eliciting().unwrap();
            let mut buf = [0u8; 1500];
            while let Ok((n, _)) = client.send(&mut buf) {
                server.recv(&mut buf[..n], quiche::RecvInfo { from: a, to: b }).unwrap();
            }
            let before = s2.borrow().len();
            let r = now_q.flush(&mut capture, &mut server, &mut scratch, true, true, Instant::now());
            assert!(matches!(r, Flushed::Paced(_)), "the paced batch still waits");
            assert_eq!(s2.borrow().len(), before + 1, "one packet (with the ACK) went out at once");
        }
    }
}
