//! Client events reaching the host (or the built-in output): each runs
//! with nothing borrowed. After every host call that is not the last of
//! an event, the client is checked: one the host freed meanwhile hears
//! nothing more.

use libc::{c_int, c_void};

use super::{ops, Cli, ClientRequests, Event, Outcome, ReqId};
use crate::app::framing::AppPlatform;
use crate::app::host::ClientHost;
use crate::app::held::with_body_buf;
use crate::client::ClientCore;
use crate::handle::Handle;
use libev_sys::{ev_io, ev_loop};

unsafe fn app<'a, P: AppPlatform, H: ClientHost>(client: *const Cli<P, H>) -> &'a mut ClientRequests<P, H> {
    &mut ClientCore::state(client).app
}

/// The host, copied out of the client: no reference into the client may
/// be alive while the host runs (it calls back in).
unsafe fn host<P: AppPlatform, H: ClientHost>(client: *const Cli<P, H>) -> H {
    app(client).host.clone()
}

pub(super) unsafe fn deliver<P: AppPlatform, H: ClientHost>(ev: Event, client: *mut Cli<P, H>) {
    let me = client as *const c_void;
    match ev {
        Event::Established => host(client).established(me),
        Event::Headers(id) => deliver_headers(client, id),
        Event::Body(id) => deliver_body(client, id),
        Event::Done(id, outcome, code) => deliver_done(client, id, outcome, code),
        Event::Writable(id) => {
            let a = app(client);
            let Some(r) = a.reqs.get_mut(&id) else { return };
            let user = r.user;
            let live = match &mut r.upload {
                super::Upload::Streamed(s) => {
                    s.writable_queued = false;
                    !r.done
                }
                _ => false,
            };
            if live {
                host(client).request_writable(me, id, user);
            }
        }
        Event::Closed(failed) => host(client).closed(me, failed),
        Event::RequestDatagram(id, d, offset) => {
            // A request's datagrams come until its done callback; later
            // ones are dropped (and counted).
            let user = match app(client).reqs.get(&id) {
                Some(r) if !r.done => Some(r.user),
                _ => None,
            };
            let heard = user.is_some_and(|user| host(client).request_datagram(me, id, &d[offset..], user));
            if !heard && !Handle::should_stop(client) {
                app(client).dgrams.dropped += 1;
            }
        }
        Event::Datagram(d) => {
            if !host(client).datagram(me, &d) {
                app(client).dgrams.dropped += 1;
            }
        }
        Event::DatagramWritable => host(client).datagram_writable(me),
    }
}

unsafe fn deliver_headers<P: AppPlatform, H: ClientHost>(client: *mut Cli<P, H>, id: ReqId) {
    let a = app(client);
    let Some(r) = a.reqs.get(&id) else { return };
    if r.done {
        return;
    }
    // Copies: the host may add requests (moving the map) during the call.
    let (status, headers, user) = (r.status, r.resp_headers.clone(), r.user);
    if !host(client).headers(client as *const c_void, id, status, &headers, user) {
        if let Some(o) = app(client).output.as_mut() {
            o.on_headers(id, status);
        }
    }
}

unsafe fn deliver_body<P: AppPlatform, H: ClientHost>(client: *mut Cli<P, H>, id: ReqId) {
    with_body_buf(|buf| loop {
        let a = app(client);
        let Some(r) = a.reqs.get_mut(&id) else { return };
        r.body_queued = false;
        if r.done || r.paused {
            return;
        }
        let user = r.user;
        let (n, fin) = if let Some(chunk) = r.held.take(buf) {
            chunk
        } else {
            let got = a.read_body(ClientCore::conn(client), id, buf);
            ClientCore::changed(client); // reading freed flow-control credit
            match got {
                Ok(v) => v,
                Err(code) => {
                    log_info!("request was reset");
                    app(client).done(id, Outcome::Reset, code);
                    return;
                }
            }
        };
        if n == 0 && !fin {
            return;
        }
        let took = if n == 0 {
            0
        } else {
            set_in_body(client, id, true);
            let me = client as *const c_void;
            let heard = host(client).body(me, id, &buf[..n], user);
            let took = match heard {
                Some(t) => t.min(n),
                None => output_body(client, id, &buf[..n]),
            };
            set_in_body(client, id, false);
            took
        };
        if Handle::should_stop(client) {
            return;
        }
        let a = app(client);
        let Some(r) = a.reqs.get_mut(&id) else { return };
        if took < n {
            r.held.put_back(&buf[took..n], fin);
            if std::mem::take(&mut r.resume_wanted) {
                // Resumed during the callback: next round, through the
                // dispatch loop (a host that takes nothing and resumes
                // would spin here).
                a.body_ready(id);
                ClientCore::changed(client);
            } else {
                r.paused = true;
            }
            return;
        }
        if fin {
            a.done(id, Outcome::Complete, 0);
            return;
        }
    })
}

unsafe fn set_in_body<P: AppPlatform, H: ClientHost>(client: *mut Cli<P, H>, id: ReqId, on: bool) {
    if let Some(r) = app(client).reqs.get_mut(&id) {
        r.in_body = on;
    }
}

/// The built-in output's share of a body (all of it when there is none).
unsafe fn output_body<P: AppPlatform, H: ClientHost>(client: *mut Cli<P, H>, id: ReqId, data: &[u8]) -> usize {
    let a = app(client);
    let path = a.path_of(id).unwrap_or("").to_string();
    match a.output.as_mut() {
        Some(o) => o.on_body(Handle::lp(client), client as *mut c_void, pipe_writable::<P, H>, id, &path, data),
        None => data.len(),
    }
}

/// The output's pipe drained: resume the response it paused.
unsafe extern "C" fn pipe_writable<P: AppPlatform, H: ClientHost>(_lp: *mut ev_loop, w: *mut ev_io, _revents: c_int) {
    let client = (*w).data as *mut Cli<P, H>;
    ClientCore::run_callback(client, || {
        Handle::lp(client).io_stop(w);
        let id = app(client).output.as_mut().and_then(|o| o.take_waiting());
        if let Some(id) = id {
            ops::resume(client, id);
        }
    });
}

unsafe fn deliver_done<P: AppPlatform, H: ClientHost>(client: *mut Cli<P, H>, id: ReqId, outcome: Outcome,
                                                       code: u64) {
    let a = app(client);
    let Some(r) = a.reqs.remove(&id) else { return };
    if let Some(s) = r.stream {
        a.by_stream.remove(&s);
    }
    let me = client as *const c_void;
    if outcome == Outcome::Complete && !r.trailers.is_empty() {
        host(client).trailers(me, id, &r.trailers, r.user);
        if Handle::should_stop(client) {
            return;
        }
    }
    if !host(client).done(me, id, outcome, code, r.user) {
        if let Some(o) = app(client).output.as_mut() {
            o.on_done(id, &r.path, r.status, outcome, code);
        }
    }
    if Handle::should_stop(client) {
        return;
    }
    // Something may be left to send, or the connection may be done.
    ClientCore::changed(client);
}

use crate::evloop::EvLoop;
