//! Per-connection I/O shared by the server and the client: `flush_egress`,
//! the connection's libev timer, and the closing statistics line.

use std::io;
use std::os::fd::RawFd;

use libev_sys::{ev_loop, ev_timer, ev_timer_again, ev_timer_stop};

use crate::socket::send_to;

/// Smallest timer interval. `ev_timer_again` with a repeat of 0 stops the
/// timer, so an already-expired quiche timeout (0 ns) must become "now".
const MIN_TIMER_SECS: f64 = 1e-6;

/// `flush_egress`: sends every packet quiche has for `conn`, each to the
/// address quiche chose (`send_info.to`), then re-arms `timer` from
/// `conn.timeout()`.
///
/// # Safety
/// `lp` must be the loop `timer` runs on and `timer` must stay at this
/// address while active.
pub unsafe fn flush_egress(lp: *mut ev_loop, sock: RawFd, conn: &mut quiche::Connection,
                           timer: &mut ev_timer, out: &mut [u8]) {
    loop {
        let (len, info) = match conn.send(out) {
            Ok(v) => v,
            Err(quiche::Error::Done) => break,
            Err(e) => {
                eprintln!("failed to create packet: {e:?}");
                // quiche closes the connection itself on internal errors;
                // make sure it cannot spin here.
                let _ = conn.close(false, 0x1, b"internal error");
                break;
            }
        };
        match send_to(sock, &out[..len], &info.to) {
            Ok(_) => {}
            // The socket buffer is full: the packet is counted as sent
            // and quiche's loss recovery will resend its data. Stop now
            // instead of spinning; the timer brings us back.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock
                || e.raw_os_error() == Some(libc::ENOBUFS) => break,
            Err(e) => {
                eprintln!("failed to send: {e}");
                break;
            }
        }
    }
    arm_timer(lp, conn, timer);
}

/// Re-arms (or stops) the connection timer from quiche's next timeout.
///
/// # Safety
/// As for [`flush_egress`].
pub unsafe fn arm_timer(lp: *mut ev_loop, conn: &quiche::Connection, timer: &mut ev_timer) {
    match conn.timeout() {
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
