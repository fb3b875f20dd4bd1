//! One client connection and its server connection, in turns: the server
//! takes every datagram waiting for it, serves, and sends all quiche
//! has; the client takes up to `batch` datagrams (a receive batch), reads
//! responses, issues requests, and sends (its ACKs and credit). Each turn
//! runs inside its side's CPU meter; moving a datagram is handing over a
//! buffer.

use std::net::SocketAddr;

use quiche::h3;

use crate::app::{Fetcher, Responder};
use crate::cpu::Meter;
use crate::link::{accept, client_addr, random_cid, server_addr, wait_timers, Dir, Endpoint, Wire, H3_NO_ERROR};
use crate::trip::SocketTrip;

pub struct Pair {
    pub client: Option<Endpoint>,
    pub server: Option<Endpoint>,
    pub wire: Wire,
    pub resp: Responder,
    pub fetch: Fetcher,
    pub server_cpu: Meter,
    pub client_cpu: Meter,
    addr: SocketAddr,
    retry: bool,
    /// Close the connection (H3_NO_ERROR) once every request is done.
    close_when_done: bool,
    pub server_gone: bool,
    pub client_gone: bool,
    /// The endpoints' quiche statistics, taken when they are dropped.
    pub server_stats: Option<quiche::Stats>,
    pub client_stats: Option<quiche::Stats>,
    pub spare_scids: (usize, usize),
    pub recv_errors: usize,
    /// Times nothing moved and a quiche timer had to fire first.
    pub timer_waits: usize,
    /// `--socket-trip`: the server's datagrams go through the kernel first.
    pub trip: Option<SocketTrip>,
}

impl Pair {
    /// The client connects (its first flight is on the wire).
    pub fn connect(i: usize, retry: bool, config: &mut quiche::Config, resp: Responder, fetch: Fetcher,
                   close_when_done: bool) -> Pair {
        let addr = client_addr(i);
        let mut p = Pair { client: None, server: None, wire: Wire::default(), resp, fetch,
                           server_cpu: Meter::default(), client_cpu: Meter::default(), addr, retry, close_when_done,
                           server_gone: false, client_gone: false, server_stats: None, client_stats: None,
                           spare_scids: (0, 0), recv_errors: 0, timer_waits: 0, trip: None };
        let wire = &mut p.wire;
        p.client = Some(p.client_cpu.time(|| {
            let scid = random_cid();
            let conn = quiche::connect(None, &quiche::ConnectionId::from_ref(&scid), addr, server_addr(), config)
                .expect("connect");
            let mut c = Endpoint::new(conn, addr, server_addr());
            c.flush(wire, Dir::ToServer);
            c
        }));
        p
    }

    /// The server's turn; the datagrams it took and sent. Never inlined:
    /// `make bench` counts its instructions by name (callgrind
    /// `--toggle-collect`).
    #[inline(never)]
    pub fn server_turn(&mut self, config: &mut quiche::Config, h3_config: &h3::Config) -> usize {
        let Pair { server, wire, resp, addr, retry, server_gone, server_stats, spare_scids, recv_errors, trip, .. } =
            self;
        let mut trip_ns = 0;
        let moved = self.server_cpu.time(|| {
            let mut moved = 0;
            while let Some(mut d) = wire.to_server.pop_front() {
                moved += 1;
                if let Some(t) = trip.as_mut() {
                    trip_ns += t.pass(&d.buf[..d.len]);
                }
                if server.is_none() && !*server_gone {
                    *server = accept(config, wire, &mut d, *addr, *retry);
                }
                if let Some(s) = server.as_mut() {
                    s.recv(&mut d);
                }
                wire.give(d);
            }
            if let Some(t) = trip.as_mut() {
                trip_ns += t.flush();
            }
            let Some(s) = server.as_mut() else { return moved };
            if s.h3_ready(h3_config) {
                resp.serve(s);
            }
            s.manage_scids();
            moved += s.flush(wire, Dir::ToClient);
            if s.conn.is_draining() || s.conn.is_closed() {
                *server_stats = Some(s.conn.stats());
                spare_scids.0 = s.spare_scids;
                *recv_errors += s.recv_errors;
                *server = None; // dropped here: its cost is the server's
                *server_gone = true;
            }
            moved
        });
        self.server_cpu.ns -= trip_ns;
        moved
    }

    /// The client's turn; the datagrams it took and sent. Never inlined,
    /// as `server_turn`.
    #[inline(never)]
    pub fn client_turn(&mut self, h3_config: &h3::Config, batch: usize) -> usize {
        let Pair { client, wire, fetch, close_when_done, client_gone, client_stats, spare_scids, recv_errors, .. } =
            self;
        self.client_cpu.time(|| {
            let Some(c) = client.as_mut() else { return 0 };
            let mut moved = c.recv_from(wire, Dir::ToClient, batch);
            if c.h3_ready(h3_config) {
                fetch.step(c);
            }
            let closing = *close_when_done && fetch.finished();
            if closing {
                let _ = c.conn.close(true, H3_NO_ERROR, b"");
            }
            c.manage_scids();
            moved += c.flush(wire, Dir::ToServer);
            if closing || c.conn.is_closed() {
                *client_stats = Some(c.conn.stats());
                spare_scids.1 = c.spare_scids;
                *recv_errors += c.recv_errors;
                *client = None; // its CONNECTION_CLOSE is on the wire
                *client_gone = true;
            }
            moved
        })
    }

    /// When neither side moved: the earliest quiche timer, run in its
    /// side's meter. False on a stall (no timer armed).
    pub fn wait(&mut self) -> bool {
        self.timer_waits += 1;
        let mut eps: Vec<(&mut Endpoint, &mut Meter)> = Vec::new();
        if let Some(s) = self.server.as_mut() {
            eps.push((s, &mut self.server_cpu));
        }
        if let Some(c) = self.client.as_mut() {
            eps.push((c, &mut self.client_cpu));
        }
        wait_timers(&mut eps)
    }

    /// Turns until `done(self)`; Err on a stall or a runaway.
    pub fn run_until(&mut self, config: &mut quiche::Config, h3_config: &h3::Config, batch: usize,
                     done: impl Fn(&Pair) -> bool) -> Result<(), String> {
        let mut idle_rounds = 0;
        while !done(self) {
            let moved = self.server_turn(config, h3_config) + self.client_turn(h3_config, batch);
            if moved == 0 {
                idle_rounds += 1;
                if idle_rounds > 100 || !self.wait() {
                    return Err(format!("stalled: server {} client {} requests done {} failed {}",
                                       if self.server_gone { "gone" } else { "open" },
                                       if self.client_gone { "gone" } else { "open" }, self.fetch.done,
                                       self.fetch.failed));
                }
            } else {
                idle_rounds = 0;
            }
        }
        Ok(())
    }
}
