//! `--socket-trip N`: every datagram the server receives also goes through
//! the kernel, sent and received on a loopback UDP socket pair, in groups
//! of N (N sends, then N receives: N kernel entries' worth of UDP path at
//! a time, between quiche's calls), with the trips' own time taken out of
//! the server's meter. What is left in the server's figure is quiche's own
//! work, run after the kernel's UDP path went through the caches and
//! branch predictors: how much a socket around quiche slows quiche itself
//! down (bench/README.md, "The requests, call by call").

use std::io;
use std::net::UdpSocket;

use crate::cpu::thread_ns;

pub struct SocketTrip {
    tx: UdpSocket,
    rx: UdpSocket,
    /// Datagrams waiting for their group's trip: `held` of `copies` are in
    /// use, each with its length (buffers reused: a copy is a memcpy).
    copies: Vec<(Box<[u8; 1500]>, usize)>,
    held: usize,
    buf: Box<[u8; 1500]>,
}

impl SocketTrip {
    pub fn new(group: usize) -> io::Result<SocketTrip> {
        let tx = UdpSocket::bind("127.0.0.1:0")?;
        let rx = UdpSocket::bind("127.0.0.1:0")?;
        tx.connect(rx.local_addr()?)?;
        rx.connect(tx.local_addr()?)?;
        let copies = (0..group.max(1)).map(|_| (Box::new([0; 1500]), 0)).collect();
        Ok(SocketTrip { tx, rx, copies, held: 0, buf: Box::new([0; 1500]) })
    }

    /// Holds a copy of `datagram` (in the meter: a memcpy of its length);
    /// when a group is full, it travels. Returns the thread CPU time the
    /// trip took (0 when none did), for the caller to take out of its
    /// meter.
    pub fn pass(&mut self, datagram: &[u8]) -> u64 {
        let (copy, len) = &mut self.copies[self.held];
        copy[..datagram.len()].copy_from_slice(datagram);
        *len = datagram.len();
        self.held += 1;
        if self.held == self.copies.len() { self.flush() } else { 0 }
    }

    /// The end of a turn: what is held travels now (as a socket server's
    /// receive batch ends with the datagrams that arrived). Time as `pass`.
    pub fn flush(&mut self) -> u64 {
        if self.held == 0 {
            return 0;
        }
        let t0 = thread_ns();
        // Sent, then received back: loopback queues each within its send
        // call, and the socket's buffer holds a group.
        for (d, len) in &self.copies[..self.held] {
            self.tx.send(&d[..*len]).expect("socket trip: send");
        }
        for (_, len) in &self.copies[..self.held] {
            let n = self.rx.recv(&mut self.buf[..]).expect("socket trip: recv");
            assert_eq!(n, *len, "socket trip: the datagram came back whole");
        }
        self.held = 0;
        thread_ns() - t0
    }
}
