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

/// Bytes of sent batches' buffers a [`Scratch`] keeps for reuse, at most.
const SPARE_BYTES: usize = 256 * 1024;

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

/// A flush's working memory, shared by the connections of one server or
/// client: the buffer quiche writes each batch into (the bytes, through
/// `Deref`), and the buffers of held batches already sent, kept for the
/// next batch held. A held batch is a few KB, and glibc serves every
/// fresh allocation of that size by first consolidating its free lists of
/// small chunks: thousands of instructions each time, where the reused
/// buffer costs a copy.
pub struct Scratch {
    buf: Vec<u8>,
    spare: Vec<Vec<u8>>,
    spare_bytes: usize,
}

impl Default for Scratch {
    fn default() -> Scratch {
        Scratch { buf: vec![0; SCRATCH_LEN], spare: Vec::new(), spare_bytes: 0 }
    }
}

impl std::ops::Deref for Scratch {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

impl Scratch {
    /// The bytes and the spare buffers, apart.
    fn split(&mut self) -> (&mut [u8], Spares<'_>) {
        (&mut self.buf, Spares { list: &mut self.spare, bytes: &mut self.spare_bytes })
    }
}

/// The spare buffers alone (a flush borrows them beside the scratch bytes).
struct Spares<'a> {
    list: &'a mut Vec<Vec<u8>>,
    bytes: &'a mut usize,
}

impl Spares<'_> {
    /// `data` in a buffer of its own: a spare one if there is one.
    fn copy(&mut self, data: &[u8]) -> Vec<u8> {
        match self.list.pop() {
            Some(mut v) => {
                *self.bytes -= v.capacity();
                v.clear();
                v.extend_from_slice(data);
                v
            }
            None => data.to_vec(),
        }
    }

    /// A sent batch's buffer, kept while the spares stay under
    /// [`SPARE_BYTES`].
    fn keep(&mut self, v: Vec<u8>) {
        if *self.bytes + v.capacity() <= SPARE_BYTES {
            *self.bytes += v.capacity();
            self.list.push(v);
        }
    }
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
    /// quiche said it has nothing more (asking again at once would only
    /// repeat that, and each `send` call costs quiche a copy of its
    /// transport parameters).
    drained: bool,
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
    let mut b = Batch { len, segment: len, from: info.from, to: info.to, at: Some(info.at), carry: None,
                        drained: false };
    if !gso {
        return Some(b);
    }
    let max_segments = MAX_SEGMENTS.min(MAX_GSO_BYTES / b.segment.max(1));
    let quantum = conn.send_quantum().max(b.segment).min(MAX_GSO_BYTES);
    while b.len / b.segment < max_segments && b.len + b.segment <= quantum {
        let Some((len, info)) = next_packet(conn, &mut scratch[b.len..b.len + max_pkt]) else {
            b.drained = true;
            break;
        };
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

    /// What is held for `old` goes to `new` instead (the peer moved).
    pub fn redirect(&mut self, old: SocketAddr, new: SocketAddr) {
        for p in self.pending.iter_mut().filter(|p| p.to == old) {
            p.to = new;
        }
    }

    /// The packets held, in order (for tests).
    #[cfg(test)]
    pub fn pending_packets(&self) -> Vec<Vec<u8>> {
        self.pending.iter().flat_map(|p| p.data.chunks(p.segment.max(1)).map(<[u8]>::to_vec)).collect()
    }

    fn hold(&mut self, spares: &mut Spares, data: &[u8], segment: usize, from: SocketAddr, to: SocketAddr,
            at: Option<Instant>) {
        self.pending.push_back(Pending { data: spares.copy(data), segment, from, to, at });
    }

    /// Sends one batch now; on a full socket keeps what did not go out (at
    /// the back of the queue, or at the front with `urgent`).
    fn send_now(&mut self, send: SendFn, spares: &mut Spares, data: &[u8], segment: usize, from: SocketAddr,
                to: SocketAddr, urgent: bool) -> Result<(), Flushed> {
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
        let p = Pending { data: spares.copy(rest), segment, from, to, at: None };
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
    /// With `ack_now` (packets arrived since the last flush) while a paced
    /// batch waits, the peer's ACK is not held back behind our own pacing:
    /// the held batch goes at once, then one packet quiche builds now (it
    /// carries the ACK). Never the new packet alone ahead of the held ones:
    /// packets leave in packet-number order, or a peer acknowledging the
    /// newer one makes quiche declare the held, older ones lost.
    pub fn flush<C: Transport>(&mut self, send: SendFn, conn: &mut C, scratch: &mut Scratch, gso: bool,
                               ack_now: bool, now: Instant) -> Flushed {
        let (scratch, mut spares) = scratch.split();
        let spares = &mut spares;
        let mut escape = false;
        while let Some(p) = self.pending.front() {
            if let Some(at) = due_later(p.at, now) {
                if !ack_now {
                    return Flushed::Paced(at);
                }
                escape = true;
            }
            let p = self.pending.pop_front().expect("front exists");
            let sent = self.send_now(send, spares, &p.data, p.segment, p.from, p.to, true);
            spares.keep(p.data);
            if let Err(why) = sent {
                return why;
            }
        }
        if escape {
            let max_pkt = conn.max_send_udp_payload_size().min(1500);
            if let Some((len, info)) = next_packet(conn, &mut scratch[..max_pkt]) {
                if let Err(why) = self.send_now(send, spares, &scratch[..len], len, info.from, info.to, false) {
                    return why;
                }
            }
        }
        let mut carried = None;
        while let Some(b) = build(conn, scratch, gso, carried.take()) {
            if let Some(at) = due_later(b.at, now) {
                self.hold(spares, &scratch[..b.len], b.segment, b.from, b.to, b.at);
                if let Some((len, info)) = b.carry {
                    self.hold(spares, &scratch[b.len..b.len + len], len, info.from, info.to, Some(info.at));
                }
                return Flushed::Paced(at);
            }
            if let Err(why) = self.send_now(send, spares, &scratch[..b.len], b.segment, b.from, b.to, false) {
                if let Some((len, info)) = b.carry {
                    self.hold(spares, &scratch[b.len..b.len + len], len, info.from, info.to, Some(info.at));
                }
                return why;
            }
            if let Some((len, info)) = b.carry {
                scratch.copy_within(b.len..b.len + len, 0);
                carried = Some((len, info));
            }
            if b.drained {
                break;
            }
        }
        Flushed::Done
    }
}

#[cfg(all(test, not(miri)))]
pub(crate) mod tests {
    use super::*;
    use crate::testing::{handshake, pair, pair_with, unpaced_now};

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
        let mut scratch = Scratch::default();
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
        let r = q.flush(&mut full, &mut server, &mut scratch, true, false, unpaced_now());
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
            let r = q.flush(&mut open, &mut server, &mut scratch, true, false, unpaced_now());
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
        let mut scratch = Scratch::default();
        let mut sizes = Vec::new();
        let mut send = |data: &[u8], seg: usize, _: SocketAddr, _: SocketAddr| -> io::Result<usize> {
            assert!(data.len() <= seg, "plain mode never batches");
            sizes.push(data.len());
            Ok(data.len())
        };
        Egress::default().flush(&mut send, &mut server, &mut scratch, false, false, unpaced_now());
        assert!(sizes.len() > 5);
    }

    /// With BBR2 (quiche's paced congestion control) on a path with a
    /// 25 ms RTT, a paced batch waits in the queue for its time; when
    /// packets that want an ACK arrive while it waits, the ACK is not held
    /// back: the held batch leaves at once, in order, then one new packet
    /// (never the new one ahead of the held ones).
    #[test]
    fn bbr2_paced_batches_wait_and_an_ack_releases_them_in_order() {
        let (mut client, mut server, a, b) = pair_with(|c, is_server| {
            if is_server {
                c.set_cc_algorithm(quiche::CongestionControlAlgorithm::Bbr2Gcongestion);
                c.enable_pacing(true);
                // 2 Mbit/s (gcongestion reads this in Mbit/s): about 5 ms
                // between full packets.
                c.set_max_pacing_rate(2);
            } else {
                c.enable_pacing(false);
            }
        });
        let rtt = Duration::from_millis(25);
        // The handshake on the same path, so quiche measures that RTT
        // (gcongestion bounds its window by the pacing rate times it).
        let mut buf = [0u8; 1500];
        while !(client.is_established() && server.is_established()) {
            while let Ok((n, _)) = client.send(&mut buf) {
                server.recv(&mut buf[..n], quiche::RecvInfo { from: a, to: b }).unwrap();
            }
            std::thread::sleep(rtt);
            while let Ok((n, _)) = server.send(&mut buf) {
                client.recv(&mut buf[..n], quiche::RecvInfo { from: b, to: a }).unwrap();
            }
        }
        let data = vec![7u8; 4_000_000];
        let mut off = 0;
        let mut scratch = Scratch::default();
        let mut q = Egress::default();
        let start = Instant::now();
        let (mut paced, mut sent, mut escapes) = (0, 0usize, 0);
        // Client-to-server packets (ACKs) wait here for the path's delay.
        let mut acks: std::collections::VecDeque<(Instant, Vec<u8>)> = Default::default();
        let mut rbuf = vec![0u8; 1 << 20];
        while sent < 150 && start.elapsed() < Duration::from_secs(30) {
            off += server.stream_send(1, &data[off..], false).unwrap_or(0);
            let now = Instant::now();
            while acks.front().is_some_and(|(t, _)| *t <= now) {
                let (_, mut p) = acks.pop_front().unwrap();
                server.recv(&mut p, quiche::RecvInfo { from: a, to: b }).unwrap();
            }
            let wire: std::cell::RefCell<Vec<Vec<u8>>> = Default::default();
            let mut send = |data: &[u8], seg: usize, _: SocketAddr, _: SocketAddr| -> io::Result<usize> {
                wire.borrow_mut().extend(data.chunks(seg).map(<[u8]>::to_vec));
                Ok(data.len())
            };
            let r = q.flush(&mut send, &mut server, &mut scratch, true, false, Instant::now());
            if let Flushed::Paced(at) = r {
                paced += 1;
                // The second flush runs at this instant: on a loaded machine
                // this thread may sleep past the batch's time before it
                // gets there, and then there is nothing left to release.
                let now = Instant::now();
                if at.saturating_duration_since(now) > 2 * PACING_GRANULARITY {
                    // A packet that wants an ACK arrives while a batch waits
                    // for its time: the held batch leaves at once, then one
                    // new packet (carrying the ACK).
                    // (Two of them: quiche acknowledges every second one at
                    // once.)
                    for i in 0..2u8 {
                        client.stream_send(0, &[i], false).unwrap();
                        let (n, _) = client.send(&mut buf).unwrap();
                        server.recv(&mut buf[..n], quiche::RecvInfo { from: a, to: b }).unwrap();
                    }
                    let held: Vec<Vec<u8>> =
                        q.pending.iter().flat_map(|p| p.data.chunks(p.segment).map(<[u8]>::to_vec)).collect();
                    assert!(!held.is_empty());
                    let before = wire.borrow().len();
                    q.flush(&mut send, &mut server, &mut scratch, true, true, now);
                    let w = wire.borrow();
                    assert_eq!(w.len(), before + held.len() + 1, "the held packets, then one new packet");
                    assert!(w[before..before + held.len()] == held[..], "the held packets first, in order");
                    assert!(!held.contains(&w[w.len() - 1]), "the last one is new");
                    escapes += 1;
                }
            }
            let wire = wire.into_inner();
            sent += wire.len();
            for mut pkt in wire {
                client.recv(&mut pkt, quiche::RecvInfo { from: b, to: a }).unwrap();
            }
            while client.stream_recv(1, &mut rbuf).is_ok() {}
            while let Ok((n, _)) = client.send(&mut buf) {
                acks.push_back((Instant::now() + rtt, buf[..n].to_vec()));
            }
            let wake = [acks.front().map(|(t, _)| *t), if let Flushed::Paced(at) = r { Some(at) } else { None }]
                .into_iter().flatten().min();
            if let Some(t) = wake {
                std::thread::sleep(t.saturating_duration_since(Instant::now()));
            }
        }
        assert!(sent >= 150, "the transfer progressed ({sent} packets)");
        assert!(paced > 5, "BBR2 paced the transfer ({paced} waits)");
        assert!(escapes > 0, "ACKs released a paced batch");
        assert_eq!(server.stats().lost, 0, "nothing left out of order, nothing declared lost");
    }

    /// With BBR2 on a path of sub-millisecond RTT behind a 100 Mbit/s
    /// bottleneck (so quiche's pacer spaces its window over more than a
    /// millisecond and batches wait), flushed as the driver does (`ack_now`
    /// whenever packets arrived since the last flush): several MB go
    /// through and quiche counts no packet lost. Nothing leaves out of
    /// packet-number order, so no ACK of a newer packet can make quiche
    /// declare held, older ones lost.
    #[test]
    fn bbr2_at_sub_ms_rtt_counts_no_loss() {
        let (mut client, mut server, a, b) = pair_with(|c, is_server| {
            if is_server {
                c.set_cc_algorithm(quiche::CongestionControlAlgorithm::Bbr2Gcongestion);
                c.enable_pacing(true);
            } else {
                c.enable_pacing(false);
            }
        });
        handshake(&mut client, &mut server, a, b);
        // The path: one-way delay, and the bottleneck's time per byte
        // (server to client; a FIFO, so it never reorders nor drops).
        let delay = Duration::from_micros(100);
        let per_byte = Duration::from_nanos(80); // 100 Mbit/s
        let total = 4_000_000usize;
        let chunk = vec![7u8; 64 * 1024];
        let (mut off, mut got) = (0usize, 0usize);
        let mut scratch = Scratch::default();
        let mut q = Egress::default();
        let mut buf = [0u8; 1500];
        let mut rbuf = vec![0u8; 1 << 20];
        let mut data: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
        let mut acks: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
        let mut link_free = Instant::now();
        let (mut ack_now, mut waits, mut min_rtt) = (false, 0, Duration::MAX);
        let start = Instant::now();
        while got < total {
            assert!(start.elapsed() < Duration::from_secs(60), "the transfer stalled at {got} bytes");
            let now = Instant::now();
            while data.front().is_some_and(|(t, _)| *t <= now) {
                let (_, mut p) = data.pop_front().unwrap();
                client.recv(&mut p, quiche::RecvInfo { from: b, to: a }).unwrap();
            }
            if client.timeout_instant().is_some_and(|t| t <= now) {
                client.on_timeout();
            }
            while let Ok((n, _)) = client.stream_recv(1, &mut rbuf) {
                got += n;
            }
            while let Ok((n, _)) = client.send(&mut buf) {
                acks.push_back((now + delay, buf[..n].to_vec()));
            }
            while acks.front().is_some_and(|(t, _)| *t <= now) {
                let (_, mut p) = acks.pop_front().unwrap();
                server.recv(&mut p, quiche::RecvInfo { from: a, to: b }).unwrap();
                ack_now = true;
            }
            if server.timeout_instant().is_some_and(|t| t <= now) {
                server.on_timeout();
            }
            while off < total {
                let n = chunk.len().min(total - off);
                match server.stream_send(1, &chunk[..n], off + n == total) {
                    Ok(n) if n > 0 => off += n,
                    _ => break,
                }
            }
            let mut send = |d: &[u8], seg: usize, _: SocketAddr, _: SocketAddr| -> io::Result<usize> {
                for p in d.chunks(seg) {
                    link_free = link_free.max(Instant::now()) + per_byte * p.len() as u32;
                    data.push_back((link_free + delay, p.to_vec()));
                }
                Ok(d.len())
            };
            let r = q.flush(&mut send, &mut server, &mut scratch, true, std::mem::take(&mut ack_now), Instant::now());
            let paced = if let Flushed::Paced(at) = r { Some(at) } else { None };
            waits += paced.is_some() as usize;
            min_rtt = min_rtt.min(server.path_stats().next().unwrap().min_rtt.unwrap_or(Duration::MAX));
            // Wait, as the loop would, until the next arrival or timer.
            let wake = [data.front().map(|(t, _)| *t), acks.front().map(|(t, _)| *t), paced,
                        server.timeout_instant(), client.timeout_instant()];
            if let Some(t) = wake.into_iter().flatten().min() {
                wait_until(t);
            }
        }
        assert!(min_rtt < Duration::from_millis(1), "a sub-millisecond RTT ({min_rtt:?})");
        assert!(waits > 10, "the pacer held batches back ({waits} times)");
        let st = server.stats();
        assert_eq!(st.lost, 0, "no packet declared lost ({} sent, {} of the lost spurious)", st.sent, st.spurious_lost);
    }

    /// Returns at `t`. Where this machine's sleeps are coarse (a 100 us
    /// sleep lasting 300 us or more, as in some VMs and sandboxes; 160 us
    /// is usual), the last 2 ms are spent spinning: this path's events are
    /// 100 us apart, and coarse sleeps would deliver them in bunches, so
    /// quiche would see a bursty, faster-looking path and never pace a
    /// batch a millisecond ahead. Elsewhere it sleeps, which also keeps
    /// time on a loaded machine (a spinning thread waits for its turn).
    fn wait_until(t: Instant) {
        static COARSE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let coarse = *COARSE.get_or_init(|| {
            let mut took: Vec<Duration> = (0..9).map(|_| {
                let start = Instant::now();
                std::thread::sleep(Duration::from_micros(100));
                start.elapsed()
            }).collect();
            took.sort();
            took[4] >= Duration::from_micros(300)
        });
        let spin = if coarse { Duration::from_millis(2) } else { Duration::ZERO };
        if let Some(long) = t.checked_duration_since(Instant::now() + spin) {
            std::thread::sleep(long);
        }
        while Instant::now() < t {
            std::hint::spin_loop();
        }
    }

    /// What is held for an address the peer left goes to its new one, in
    /// its place in the queue; what is held for other addresses stays.
    #[test]
    fn redirect_moves_only_what_was_held_for_the_old_address() {
        let (mut client, mut server, a, b) = pair();
        handshake(&mut client, &mut server, a, b);
        let (new, other): (SocketAddr, SocketAddr) = ("127.0.0.1:3".parse().unwrap(), "127.0.0.1:4".parse().unwrap());
        let mut q = Egress::default();
        let mut scratch = Scratch::default();
        q.hold(&mut scratch.split().1, b"one", 3, b, a, None);
        q.hold(&mut scratch.split().1, b"two", 3, b, other, None);
        q.hold(&mut scratch.split().1, b"three", 5, b, a, None);
        q.redirect(a, new);
        let mut sent = Vec::new();
        let mut send = |d: &[u8], _: usize, _: SocketAddr, to: SocketAddr| -> io::Result<usize> {
            sent.push((d.to_vec(), to));
            Ok(d.len())
        };
        assert_eq!(q.flush(&mut send, &mut server, &mut scratch, true, false, unpaced_now()), Flushed::Done);
        assert_eq!(sent, vec![(b"one".to_vec(), new), (b"two".to_vec(), other), (b"three".to_vec(), new)]);
    }

    /// A held batch's buffer, once the batch is sent, holds the next batch
    /// held instead of a fresh allocation; the spares kept stay under
    /// `SPARE_BYTES`.
    #[test]
    fn a_sent_batchs_buffer_holds_the_next_one_and_the_spares_stay_bounded() {
        let (mut client, mut server, a, b) = pair();
        handshake(&mut client, &mut server, a, b);
        let mut q = Egress::default();
        let mut scratch = Scratch::default();
        let later = Instant::now() + Duration::from_millis(50);
        q.hold(&mut scratch.split().1, &[1u8; 3000], 1000, b, a, Some(later));
        let first = q.pending.front().expect("held").data.as_ptr();
        let mut sent = Vec::new();
        let mut send = |d: &[u8], _: usize, _: SocketAddr, _: SocketAddr| -> io::Result<usize> {
            sent.push(d.to_vec());
            Ok(d.len())
        };
        assert_eq!(q.flush(&mut send, &mut server, &mut scratch, true, false, unpaced_now()), Flushed::Done);
        assert!(sent[0] == [1u8; 3000]);
        assert_eq!(scratch.spare.len(), 1, "the sent batch's buffer is kept");
        q.hold(&mut scratch.split().1, &[2u8; 2000], 1000, b, a, Some(later));
        let held = &q.pending.front().expect("held").data;
        assert_eq!(held.as_ptr(), first, "and holds the next batch");
        assert!(held[..] == [2u8; 2000]);
        assert_eq!((scratch.spare.len(), scratch.spare_bytes), (0, 0));
        let (_, mut spares) = scratch.split();
        for _ in 0..100 {
            spares.keep(Vec::with_capacity(20_000));
        }
        assert!(*spares.bytes <= SPARE_BYTES && *spares.bytes > SPARE_BYTES - 20_000, "{}", spares.bytes);
        assert_eq!(*spares.bytes, spares.list.iter().map(Vec::capacity).sum::<usize>());
    }

    /// A flush asks quiche for packets until it has none, and then stops:
    /// each `send` call costs quiche a copy of its transport parameters,
    /// so the one that said "done" is not repeated.
    #[test]
    fn a_flush_asks_for_packets_once_past_the_last() {
        let (a, b): (SocketAddr, SocketAddr) = ("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap());
        for (gso, packets) in [(true, 3), (true, 0), (false, 3)] {
            let mut conn = crate::testing::scripted::ScriptedConn::replying(b, a, b"cid", packets);
            let mut sent = 0;
            let mut send = |d: &[u8], seg: usize, _: SocketAddr, _: SocketAddr| -> io::Result<usize> {
                sent += d.len() / seg;
                Ok(d.len())
            };
            let flushed = Egress::default().flush(&mut send, &mut conn, &mut Scratch::default(), gso, false,
                                                  unpaced_now());
            assert_eq!((flushed, sent, conn.sends), (Flushed::Done, packets, packets + 1), "gso {gso}");
        }
    }

    /// Every packet of a paced batch leaves at or after its release time.
    #[test]
    fn a_held_batch_never_leaves_before_its_time() {
        let (mut client, mut server, a, b) = pair();
        handshake(&mut client, &mut server, a, b);
        let mut q = Egress::default();
        let later = Instant::now() + Duration::from_millis(50);
        let mut scratch = Scratch::default();
        q.hold(&mut scratch.split().1, b"paced packet", 12, b, a, Some(later));
        let sent = std::cell::Cell::new(0);
        let mut send = |d: &[u8], _: usize, _: SocketAddr, _: SocketAddr| -> io::Result<usize> {
            sent.set(sent.get() + 1);
            Ok(d.len())
        };
        assert_eq!(q.flush(&mut send, &mut server, &mut scratch, true, false, Instant::now()), Flushed::Paced(later));
        assert_eq!(sent.get(), 0);
        assert_eq!(q.flush(&mut send, &mut server, &mut scratch, true, false, later), Flushed::Done);
        assert_eq!(sent.get(), 1, "sent once its time came");
    }
}
