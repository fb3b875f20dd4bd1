//! Server events reaching the host: each runs with nothing borrowed, so
//! the host may call back into anything. After every host call that is
//! not the last of an event, the server is checked: a host that freed it
//! (the free waits for the callback to return) hears nothing more.

use std::ptr::NonNull;

use super::{ops, ConnApp, Event, SConn, Srv};
use crate::app::framing::AppPlatform;
use crate::app::held::with_body_buf;
use crate::app::host::{ReqRef, ServerHost};
use crate::app::request::{Outcome, Request};
use crate::handle::Handle;
use crate::hooks::HandleRef;
use crate::server::{ServerConn, ServerCore};

pub(super) unsafe fn deliver<P: AppPlatform, H: ServerHost<P>>(ev: Event<P, H>, server: HandleRef) {
    match ev {
        Event::ConnEstablished(conn, h) => h.conn_established(conn),
        Event::ConnClosed(conn, mut stats, info, h) => {
            // Counted up to now: the connection's datagram events were
            // all delivered before this one.
            stats.dgram_dropped = app_of::<P, H>(conn).dgram_dropped(stats.dgram_recv);
            h.conn_closed(conn, &stats, &info)
        }
        Event::Request(r) => {
            let rp = r.as_ptr();
            if (*rp).closed {
                return;
            }
            (*rp).announced = true;
            let h = (*rp).host.clone();
            h.request(rp as ReqRef);
        }
        Event::Body(r) => deliver_body(r, server as *const Srv<P, H>),
        Event::Writable(r) => {
            let rp = r.as_ptr();
            (*rp).writable_queued = false;
            if (*rp).closed {
                return;
            }
            let h = (*rp).host.clone();
            h.writable(rp as ReqRef);
        }
        Event::Closed(owned, outcome, code) => {
            let rp = owned.0.as_ptr();
            // A request the host never saw ends silently.
            if (*rp).announced {
                let h = (*rp).host.clone();
                h.request_closed(rp as ReqRef, outcome, code);
            }
            drop(owned);
        }
        Event::Stopped(failed, h) => h.stopped(server, failed),
        Event::RequestDatagram(r, d, offset) => {
            let rp = r.as_ptr();
            // A request's datagrams come between its request and closed
            // callbacks; later ones are dropped (and counted).
            let heard = !(*rp).closed && (*rp).announced && {
                let h = (*rp).host.clone();
                h.request_datagram(rp as ReqRef, &d[offset..])
            };
            if !heard && !Handle::should_stop(server as *const Srv<P, H>) {
                app_of::<P, H>((*rp).conn).dgrams.dropped += 1;
            }
        }
        Event::ConnDatagram(conn, d, h) => {
            if !h.datagram(conn, &d) {
                app_of::<P, H>(conn).dgrams.dropped += 1;
            }
        }
        Event::DatagramWritable(conn, h) => h.datagram_writable(conn),
    }
}

/// The application state of connection `conn` (live: a connection is
/// freed only after its closed event).
unsafe fn app_of<'a, P: AppPlatform, H: ServerHost<P>>(conn: crate::hooks::ConnRef) -> &'a mut ConnApp<P, H> {
    ServerConn::app(conn as *const SConn<P, H>)
}

/// Reads the request body as it arrives and hands it to the host, chunk
/// by chunk, until quiche has no more, the body ended, or the host took
/// less than it was given (then it is paused until resumed; a resume from
/// inside the callback itself queues the next chunk instead).
unsafe fn deliver_body<P: AppPlatform, H: ServerHost<P>>(r: NonNull<Request<P, H>>, server: *const Srv<P, H>) {
    let rp = r.as_ptr();
    with_body_buf(|buf| loop {
        (*rp).body_queued = false;
        if (*rp).closed || (*rp).paused {
            return;
        }
        if (*rp).body_done {
            // A request without a body: just its end.
            if std::mem::take(&mut (*rp).fin_call) {
                let h = (*rp).host.clone();
                h.body(rp as ReqRef, &[], true);
            }
            return;
        }
        // What to hand over: held bytes first, else a fresh read (the FIN
        // comes with an empty chunk after the last bytes).
        let held = (*rp).held.take(buf);
        let (n, fin) = match held {
            Some(chunk) => chunk,
            None => match read_body(rp, buf) {
                Some(v) => v,
                None => return,
            },
        };
        if n == 0 && !fin {
            return; // wait for more
        }
        let h = (*rp).host.clone();
        (*rp).in_body = true;
        let took = h.body(rp as ReqRef, &buf[..n], fin).map_or(n, |t| t.min(n));
        (*rp).in_body = false;
        if (*rp).closed || Handle::should_stop(server) {
            return;
        }
        if took < n {
            (*rp).held.put_back(&buf[took..n], fin);
            if std::mem::take(&mut (*rp).resume_wanted) {
                // Resumed during the callback: the rest goes on the next
                // round, through the dispatch loop (not here: a host that
                // always takes nothing and resumes would spin).
                let conn = (*rp).conn as *const SConn<P, H>;
                ConnApp::body_ready(ServerCore::app_shared(ServerConn::server(conn)), r);
                ServerCore::conn_changed(conn);
            } else {
                (*rp).paused = true;
            }
            return;
        }
        if fin {
            (*rp).body_done = true;
            ops::request_changed(rp);
            return;
        }
    })
}

/// One read from the connection for request `rp`: (bytes, FIN reached);
/// `None` when the stream failed (the request is finished then).
unsafe fn read_body<P: AppPlatform, H: ServerHost<P>>(rp: *mut Request<P, H>, buf: &mut [u8]) -> Option<(usize, bool)> {
    use crate::app::framing::{Framing, SendError};
    let e = (*rp).conn as *const SConn<P, H>;
    let stream = (*rp).stream;
    let got = {
        let app = ServerConn::app(e);
        app.framing.recv_body(ServerConn::conn(e), stream, buf)
    };
    // Reading freed flow-control credit: flush it.
    ServerCore::conn_changed(e);
    match got {
        // h3: quiche reports the FIN (Finished) once every byte was read.
        Ok((n, fin)) => Some((n, fin || (n == 0 && (*rp).body_fin_seen))),
        Err(err) => {
            let shared = ServerCore::app_shared(ServerConn::server(e));
            let app = ServerConn::app(e);
            match err {
                SendError::Stopped(code) => app.finish(shared, stream, Outcome::Reset, code),
                SendError::Other(why) => {
                    log_debug!("failed to read stream {stream}: {why}");
                    app.failed(ServerConn::conn(e), shared, stream, SendError::Other(why));
                }
            }
            None
        }
    }
}
