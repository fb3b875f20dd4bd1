//! The C API as careless hosts call it, on the in-memory platform (so
//! `make miri` runs these under Miri): every exported function named
//! here is the real one. Each test is one promise of the header or the
//! README: freeing a handle from each kind of callback, with or without
//! stopping the host's own watcher first; a stopped server and a closed
//! client leave no watcher behind (the host's included), so the loop
//! ends by itself; callbacks never run inside the host's own calls; a
//! response's end is never lost; a body resumed from inside its own
//! callback keeps going; and the smaller promises (stateless resets in
//! the stats, the connect timeout, the last error, the log's origin).

use std::ffi::CStr;

use libc::c_int;

use crate::ffi::client::*;
use crate::ffi::conn::*;
use crate::ffi::errors::quiche_ev_last_error;
use crate::ffi::request::*;
use crate::ffi::server::*;
use crate::ffi::types::*;
use crate::testing::script::*;
use crate::testing::world::*;
use crate::testing::Ran;

mod datagrams;
mod server_config;

/// Iterations before a run counts as "never ends".
const LIMIT: usize = 50_000;

/// A body size, smaller under Miri (which runs every byte of the
/// in-memory network a thousand times slower) but still several windows
/// and several body chunks.
fn size(n: usize) -> usize {
    if cfg!(miri) { n / 10 } else { n }
}

fn no_violations() {
    let v = violations();
    assert!(v.is_empty(), "calls on freed handles or closed requests: {v:?}\ncalls: {:?}", calls());
}

/// A server freed from inside one of its callbacks: nothing of it is
/// called again, its socket watcher (the host's or its own) stops, and
/// the loop ends once the client gives up too.
fn server_freed_in(kind: &'static str, watch: Watch) {
    struct FreeIn {
        kind: &'static str,
        server: *mut quiche_ev_server,
    }
    impl Script for FreeIn {
        fn request(&mut self, r: *mut quiche_ev_request) {
            match self.kind {
                "request" => free_server(self.server),
                "body" => {} // read the body first
                _ => {
                    answer(r);
                }
            }
        }
        fn request_closed(&mut self, _r: *mut quiche_ev_request, _outcome: c_int, _code: u64) {
            if self.kind == "request closed" {
                free_server(self.server);
            }
        }
        fn conn_established(&mut self, _c: *mut quiche_ev_conn) {
            if self.kind == "conn established" {
                free_server(self.server);
            }
        }
        fn body(&mut self, _r: *mut quiche_ev_request, data: &[u8], _fin: bool) -> usize {
            if self.kind == "body" {
                free_server(self.server);
            }
            data.len()
        }
    }
    let mut w = World::new(true);
    let s = w.server(watch);
    let c = w.client(Watch::Own);
    hook_server(s);
    hook_client(c);
    set_script(FreeIn { kind, server: s });
    // (A request answered in full from its request callback is over
    // before its body callback could run: give it a body.)
    let body = pattern(size(3000), 1);
    quiche_ev_client_request(c, c"POST".as_ptr(), c"/p/100/1".as_ptr(), std::ptr::null(), 0, body.as_ptr(),
                             body.len(), std::ptr::null_mut());
    assert_eq!(w.lp.run(LIMIT), Ran::Idle, "{kind}: the loop ends by itself; calls {:?}", calls());
    assert!(count(kind) >= 1, "{kind} was called: {:?}", calls());
    no_violations();
    assert_eq!(w.host_watchers_active(), 0);
    free_client(c);
}

#[test]
fn a_server_freed_in_its_request_callback_is_gone_and_its_watcher_stopped() {
    server_freed_in("request", Watch::Host);
    server_freed_in("request", Watch::Own);
}

#[test]
fn a_server_freed_in_a_request_closed_callback_is_gone() {
    server_freed_in("request closed", Watch::Host);
    server_freed_in("request closed", Watch::Own);
}

#[test]
fn a_server_freed_in_its_connection_and_body_callbacks_is_gone() {
    server_freed_in("conn established", Watch::Host);
    server_freed_in("body", Watch::Host);
}

/// A client freed from inside one of its callbacks, its own watcher
/// stopped first or not.
fn client_freed_in(kind: &'static str, stop_first: bool) {
    struct FreeIn {
        kind: &'static str,
        client: *mut quiche_ev_client,
        watcher: *mut libev_sys::ev_io,
        lp: crate::testing::FakeLoop,
        stop_first: bool,
    }
    impl FreeIn {
        fn free(&mut self) {
            if self.stop_first {
                // SAFETY: the host's own watcher, on its loop.
                unsafe { crate::evloop::EvLoop::io_stop(&self.lp, self.watcher) };
            }
            free_client(self.client);
        }
    }
    impl Script for FreeIn {
        fn done(&mut self, _c: *mut quiche_ev_client, _id: i64, _outcome: c_int, _code: u64) {
            if self.kind == "done" {
                self.free();
            }
        }
        fn closed(&mut self, _c: *mut quiche_ev_client, _state: c_int) {
            if self.kind == "closed" {
                self.free();
            }
        }
        fn headers(&mut self, _c: *mut quiche_ev_client, _id: i64, _status: c_int) {
            if self.kind == "headers" {
                self.free();
            }
        }
        fn response_body(&mut self, _c: *mut quiche_ev_client, _id: i64, data: &[u8]) -> usize {
            if self.kind == "response body" {
                self.free();
            }
            data.len()
        }
        fn client_established(&mut self, _c: *mut quiche_ev_client) {
            if self.kind == "established" {
                self.free();
            }
        }
    }
    let mut w = World::new(true);
    let s = w.server(Watch::Own);
    let c = w.client(Watch::Host);
    let watcher = *w.watchers.last().unwrap();
    hook_server(s);
    hook_client(c);
    set_script(FreeIn { kind, client: c, watcher, lp: w.lp.clone(), stop_first });
    get(c, &format!("/p/{}/2", size(5000)));
    get(c, "/p/10/3");
    // The server outlives the client: stop it once the client is gone.
    for _ in 0..LIMIT {
        if !w.lp.run_once() {
            break;
        }
        if count(kind) > 0 && w.host_watchers_active() == 0 {
            break;
        }
    }
    assert!(count(kind) >= 1, "{kind} was called: {:?}", calls());
    assert_eq!(w.host_watchers_active(), 0, "{kind}: the client's watcher is stopped");
    assert_eq!(quiche_ev_server_shutdown(s, 0), 0);
    assert_eq!(w.lp.run(LIMIT), Ran::Idle, "{kind}: the loop ends by itself");
    no_violations();
    free_server(s);
}

#[test]
fn a_client_freed_in_its_done_callback_is_gone() {
    client_freed_in("done", false);
    client_freed_in("done", true);
}

#[test]
fn a_client_freed_in_its_closed_headers_body_or_established_callback_is_gone() {
    client_freed_in("closed", false);
    client_freed_in("headers", true);
    client_freed_in("response body", false);
    client_freed_in("established", false);
}

/// The host stops its own watcher and frees its memory (a stopped watcher
/// is the host's again), then frees the handle: the library must not
/// touch that watcher any more (it did: the handle remembered every host
/// watcher it had seen and stopped them again when freed; Miri reports
/// the use after free, valgrind did in tests/c/free_in_callbacks.c).
#[test]
fn a_watcher_the_host_stopped_and_freed_is_never_touched_again() {
    /// Stops and frees the host's watcher `w` (taken out of the world).
    fn drop_watcher(lp: &crate::testing::FakeLoop, w: *mut libev_sys::ev_io) {
        // SAFETY: the host's own watcher, made by World::host_watcher and
        // no longer in the world's list.
        unsafe {
            crate::evloop::EvLoop::io_stop(lp, w);
            drop(Box::from_raw(w));
        }
    }
    // A server freed in its request callback, after its watcher.
    struct FreeIn {
        server: *mut quiche_ev_server,
        watcher: *mut libev_sys::ev_io,
        lp: crate::testing::FakeLoop,
    }
    impl Script for FreeIn {
        fn request(&mut self, _r: *mut quiche_ev_request) {
            drop_watcher(&self.lp, self.watcher);
            free_server(self.server);
        }
    }
    let mut w = World::new(true);
    let s = w.server(Watch::Host);
    let watcher = w.watchers.pop().unwrap();
    let c = w.client(Watch::Own);
    hook_server(s);
    hook_client(c);
    set_script(FreeIn { server: s, watcher, lp: w.lp.clone() });
    get(c, "/p/10/1");
    w.lp.run_until(LIMIT, || count("request") > 0);
    assert_eq!(count("request"), 1, "{:?}", calls());
    no_violations();
    free_client(c);

    // A client whose connection is over: the host frees its (stopped)
    // watcher after the loop, then the client.
    let mut w = World::new(true);
    let s = w.server(Watch::Own);
    let c = w.client(Watch::Host);
    hook_server(s);
    hook_client(c);
    set_script(Defaults);
    get(c, "/p/10/2");
    w.lp.run_until(LIMIT, || count("done") > 0);
    assert_eq!(quiche_ev_client_close(c, 0, std::ptr::null()), 0);
    w.lp.run_until(LIMIT, || count("closed") > 0 && w.host_watchers_active() == 0);
    assert_eq!(w.host_watchers_active(), 0);
    let watcher = w.watchers.pop().unwrap();
    drop_watcher(&w.lp, watcher);
    free_client(c);
    free_server(s);
    no_violations();
}

#[test]
fn a_server_freed_in_its_stopped_callback_after_a_shutdown_from_a_request() {
    struct Shut {
        server: *mut quiche_ev_server,
    }
    impl Script for Shut {
        fn request(&mut self, r: *mut quiche_ev_request) {
            answer(r);
            assert_eq!(quiche_ev_server_shutdown(self.server, 500), 0);
            assert_eq!(quiche_ev_server_shutdown(self.server, 500), 0, "twice is fine");
        }
        fn stopped(&mut self, s: *mut quiche_ev_server, status: c_int) {
            assert_eq!(status, 0);
            free_server(s);
        }
    }
    let mut w = World::new(true);
    let s = w.server(Watch::Host);
    let c = w.client(Watch::Own);
    hook_server(s);
    hook_client(c);
    set_script(Shut { server: s });
    get(c, "/p/3000/4");
    assert_eq!(w.lp.run(LIMIT), Ran::Idle);
    assert_eq!(count("stopped 0"), 1);
    assert_eq!(count("done 0 0"), 1, "the response in flight finished: {:?}", calls());
    no_violations();
    assert_eq!(w.host_watchers_active(), 0);
    free_client(c);
}

#[test]
fn an_idle_servers_shutdown_calls_back_from_the_loop_only_and_the_loop_then_ends() {
    let mut w = World::new(true);
    let s = w.server(Watch::Host);
    hook_server(s);
    set_script(Defaults);
    assert_eq!(quiche_ev_server_shutdown(s, 1000), 0);
    assert!(calls().is_empty(), "nothing ran inside the host's call: {:?}", calls());
    assert_eq!(quiche_ev_server_is_stopped(s), 0);
    assert_eq!(w.lp.run(LIMIT), Ran::Idle, "the stopped server left no watcher, the host's included");
    assert_eq!(calls(), ["stopped 0"]);
    assert_eq!(quiche_ev_server_is_stopped(s), 1);
    free_server(s);
}

#[test]
fn a_client_whose_server_never_answers_fails_at_its_connect_timeout_and_stops_the_hosts_watcher() {
    let mut w = World::new(true);
    // No server: nothing is bound there, nothing ever answers, so the
    // host's watcher never fires before the end.
    let c = w.client_to("127.0.0.1:9", Watch::Host);
    hook_client(c);
    set_script(Defaults);
    assert_eq!(quiche_ev_client_set_connect_timeout(c, 2000), 0);
    let id = get(c, "/p/10/5");
    assert_eq!(w.lp.run(LIMIT), Ran::Idle, "the closed client stopped the watcher that never fired");
    assert_eq!(w.host_watchers_active(), 0);
    assert_eq!(calls(), [format!("done {id} {QUICHE_EV_RESPONSE_FAILED}"), format!("closed {QUICHE_EV_CLIENT_FAILED}")],
               "never sent: FAILED, as documented");
    let why = unsafe { CStr::from_ptr(quiche_ev_client_failure(c)) }.to_string_lossy().into_owned();
    assert!(why.contains("connect timeout"), "{why}");
    // Well before the idle timeout (30 ticks of 100 ms), at 2 s.
    assert!(w.lp.seconds() < 2.5, "failed at {} s", w.lp.seconds());
    free_client(c);
}

#[test]
fn a_closed_client_returns_the_loop_to_the_host() {
    struct CloseWhenDone;
    impl Script for CloseWhenDone {
        fn done(&mut self, c: *mut quiche_ev_client, _id: i64, _outcome: c_int, _code: u64) {
            assert_eq!(quiche_ev_client_close(c, 0, std::ptr::null()), 0);
        }
    }
    let mut w = World::new(true);
    let s = w.server(Watch::Own);
    let c = w.client(Watch::Host);
    hook_server(s);
    hook_client(c);
    set_script(CloseWhenDone);
    get(c, "/p/10/6");
    // The server keeps the loop alive until it is shut down; the client's
    // side is done once its closed callback ran.
    w.lp.run_until(LIMIT, || count("closed") > 0);
    assert_eq!(count(&format!("closed {QUICHE_EV_CLIENT_CLOSED}")), 1);
    // libev calls the host's watcher once more on the next iteration
    // (ev_feed_fd_event), and recv_cb stops it.
    assert!(w.lp.run_once());
    assert_eq!(w.host_watchers_active(), 0, "the host's watcher of the closed client is stopped");
    assert_eq!(quiche_ev_server_shutdown(s, 0), 0);
    assert_eq!(w.lp.run(LIMIT), Ran::Idle);
    no_violations();
    free_client(c);
    free_server(s);
}

#[test]
fn a_host_watcher_stopped_and_reused_before_the_client_ends_is_never_touched_again() {
    // Upstream-shaped mains keep the watcher on a stack frame: it is
    // stopped and its memory reused before the client closes and is freed.
    struct Quiet;
    impl Script for Quiet {}
    for close_first in [true, false] {
        set_script(Quiet);
        let mut w = World::new(true);
        let s = w.server(Watch::Own);
        let c = w.client(Watch::Host);
        hook_server(s);
        hook_client(c);
        get(c, "/p/10/6");
        w.lp.run_until(LIMIT, || count("done") > 0);
        assert_eq!(count("done"), 1, "{:?}", calls());
        let reused = w.stop_and_reuse_host_watcher(w.watchers.len() - 1);
        if close_first {
            assert_eq!(quiche_ev_client_close(c, 0, std::ptr::null()), 0);
            w.lp.run_until(LIMIT, || count("closed") > 0);
            assert_eq!(count("closed"), 1, "{:?}", calls());
        }
        free_client(c);
        assert_eq!(quiche_ev_server_shutdown(s, 0), 0);
        assert_eq!(w.lp.run(LIMIT), Ran::Idle);
        assert!(crate::testing::world::untouched(reused), "the library wrote to a watcher the host stopped");
        no_violations();
        free_server(s);
    }
}

#[test]
fn an_empty_final_write_on_a_full_stream_still_ends_the_response() {
    // The body (and its DATA frame header) uses up the stream's window
    // exactly, so the FIN's own frame header does not fit: quiche (and
    // the in-memory framing) take nothing of that last, empty write.
    struct FillThenFin {
        len: usize,
    }
    impl Script for FillThenFin {
        fn request(&mut self, r: *mut quiche_ev_request) {
            assert_eq!(quiche_ev_respond(r, 200, std::ptr::null(), 0, 0), 0);
            let conn = quiche_ev_conn_quiche(quiche_ev_request_conn(r)) as *mut crate::testing::wire::FakeConn;
            let stream = quiche_ev_request_stream_id(r);
            // SAFETY: this platform's connection, live during the call.
            let cap = unsafe { crate::app::framing::Streams::stream_capacity(&mut *conn, stream) }.unwrap();
            self.len = cap - 3; // a DATA frame header of 3 bytes
            let body = pattern(self.len, 7);
            assert_eq!(quiche_ev_respond_write(r, body.as_ptr(), body.len(), 0), self.len as isize, "all of it fit");
            assert_eq!(unsafe { crate::app::framing::Streams::stream_capacity(&mut *conn, stream) }.unwrap(), 0);
            assert_eq!(quiche_ev_respond_write(r, std::ptr::null(), 0, 1), 0, "the end: nothing to take");
        }
        fn response_body(&mut self, _c: *mut quiche_ev_client, _id: i64, data: &[u8]) -> usize {
            self.len -= data.len();
            data.len()
        }
    }
    let mut w = World::new(true);
    w.server_config.stream_window = 4096;
    w.client_config.stream_window = 4096;
    let s = w.server(Watch::Own);
    let c = w.client(Watch::Own);
    hook_server(s);
    hook_client(c);
    set_script(FillThenFin { len: 0 });
    let id = get(c, "/any");
    w.lp.run_until(LIMIT, || count("done") > 0);
    no_violations();
    assert_eq!(count(&format!("done {id} {QUICHE_EV_RESPONSE_COMPLETE}")), 1, "{:?}", calls());
    assert_eq!(count("request closed 0"), 1);
    free_client(c);
    free_server(s);
}

#[test]
fn a_body_resumed_from_inside_its_own_callback_keeps_going_on_both_sides() {
    struct TakeHalfAndResume {
        received: usize,
    }
    impl Script for TakeHalfAndResume {
        fn request(&mut self, _r: *mut quiche_ev_request) {}
        fn body(&mut self, r: *mut quiche_ev_request, data: &[u8], fin: bool) -> usize {
            let took = if data.len() > 1 { data.len() / 2 } else { data.len() };
            self.received += took;
            if took < data.len() {
                assert_eq!(quiche_ev_request_resume_body(r), 0);
            }
            if fin && took == data.len() {
                assert_eq!(answer_with(r, size(30_000), 8), 0);
            }
            took
        }
        fn response_body(&mut self, c: *mut quiche_ev_client, id: i64, data: &[u8]) -> usize {
            let took = if data.len() > 1 { data.len() / 2 } else { data.len() };
            if took < data.len() {
                assert_eq!(quiche_ev_client_resume(c, id), 0);
            }
            took
        }
    }
    fn answer_with(r: *mut quiche_ev_request, len: usize, seed: u64) -> c_int {
        let body = pattern(len, seed);
        quiche_ev_respond_bytes(r, 200, std::ptr::null(), 0, body.as_ptr(), body.len())
    }
    let mut w = World::new(true);
    let s = w.server(Watch::Own);
    let c = w.client(Watch::Own);
    hook_server(s);
    hook_client(c);
    set_script(TakeHalfAndResume { received: 0 });
    let body = pattern(size(40_000), 9);
    let id = quiche_ev_client_request(c, c"POST".as_ptr(), c"/up".as_ptr(), std::ptr::null(), 0, body.as_ptr(),
                                      body.len(), std::ptr::null_mut());
    w.lp.run_until(LIMIT, || count("done") > 0);
    assert_eq!(count(&format!("done {id} {QUICHE_EV_RESPONSE_COMPLETE}")), 1, "{:?}", calls());
    no_violations();
    free_client(c);
    free_server(s);
}

#[test]
fn a_connection_ended_by_a_stateless_reset_says_so_in_its_stats() {
    struct Stats {
        reset: Option<c_int>,
    }
    impl Script for Stats {
        fn conn_closed(&mut self, _c: *mut quiche_ev_conn, stats: &quiche_ev_stats) {
            self.reset = Some(stats.stateless_reset);
            assert_eq!(stats.stateless_reset, 1, "reported as a stateless reset");
        }
    }
    let mut w = World::new(true);
    let s = w.server(Watch::Own);
    let c = w.client(Watch::Own);
    hook_server(s);
    hook_client(c);
    set_script(Stats { reset: None });
    get(c, "/p/10/10");
    w.lp.run_until(LIMIT, || count("done") > 0);
    // The server's CID for the connection, and a reset for it.
    let srv = quiche_ev_server::get(s).unwrap();
    let cid = unsafe {
        let st = crate::server::ServerCore::state(srv);
        crate::server::ServerCore::cids_of(srv, st.conn_ids()[0])[0]
    };
    let client_addr = std::net::SocketAddr::from(([127, 0, 0, 1], 40000 + 101));
    w.net.deliver(crate::testing::wire::stateless_reset_for(&cid), client_addr, SERVER_ADDR.parse().unwrap());
    w.lp.run_until(LIMIT, || count("conn closed") > 0);
    assert_eq!(count("conn closed"), 1, "{:?}", calls());
    free_client(c);
    free_server(s);
}

#[test]
fn a_long_hq_request_line_on_a_narrow_stream_arrives_whole() {
    struct Paths(Vec<String>);
    impl Script for Paths {
        fn request(&mut self, r: *mut quiche_ev_request) {
            self.0.push(path_of(r));
            let p = path_of(r);
            assert!(p.len() > 200, "the whole line arrived: {} bytes", p.len());
            answer(r);
        }
    }
    let mut w = World::new(false);
    w.server_config.stream_window = 64;
    w.client_config.stream_window = 64;
    let s = w.server(Watch::Own);
    let c = w.client(Watch::Own);
    hook_server(s);
    hook_client(c);
    set_script(Paths(Vec::new()));
    let long = format!("/p/10/11?{}", "x".repeat(300));
    let id = get(c, &long);
    w.lp.run_until(LIMIT, || count("done") > 0);
    assert_eq!(count(&format!("done {id} {QUICHE_EV_RESPONSE_COMPLETE}")), 1, "{:?}", calls());
    free_client(c);
    free_server(s);
}

#[test]
fn a_streamed_upload_is_written_as_flow_control_allows_and_ends_with_trailers() {
    let len = size(50_000);
    struct Upload {
        len: usize,
        sent: usize,
        got: Vec<u8>,
    }
    impl Script for Upload {
        fn request(&mut self, _r: *mut quiche_ev_request) {}
        fn body(&mut self, r: *mut quiche_ev_request, data: &[u8], fin: bool) -> usize {
            self.got.extend_from_slice(data);
            if fin {
                assert_eq!(self.got, pattern(self.len, 12), "the upload arrived whole and in order");
                answer_ok(r);
            }
            data.len()
        }
        fn request_writable(&mut self, c: *mut quiche_ev_client, id: i64) {
            let body = pattern(self.len, 12);
            while self.sent < self.len {
                let n = quiche_ev_client_request_write(c, id, body[self.sent..].as_ptr(), self.len - self.sent, 0);
                assert!(n >= 0, "write: {n}");
                self.sent += n as usize;
                if n == 0 {
                    return; // the writable callback comes again
                }
            }
            let t = [quiche_ev_header { name: b"x-sum".as_ptr(), name_len: 5, value: b"ok".as_ptr(), value_len: 2 }];
            let r = quiche_ev_client_request_trailers(c, id, t.as_ptr(), 1);
            assert!(r == 0 || r == crate::ffi::QUICHE_EV_ERR_AGAIN, "trailers: {r}");
        }
    }
    fn answer_ok(r: *mut quiche_ev_request) {
        assert_eq!(quiche_ev_respond_bytes(r, 200, std::ptr::null(), 0, b"ok".as_ptr(), 2), 0);
    }
    let mut w = World::new(true);
    let s = w.server(Watch::Own);
    let c = w.client(Watch::Own);
    hook_server(s);
    hook_client(c);
    set_script(Upload { len, sent: 0, got: Vec::new() });
    let id = quiche_ev_client_request_start(c, c"POST".as_ptr(), c"/up".as_ptr(), std::ptr::null(), 0,
                                            std::ptr::null_mut());
    assert!(id >= 0);
    assert_eq!(quiche_ev_client_request_write(c, id, b"x".as_ptr(), 1, 0), 0, "not sent yet: nothing taken");
    w.lp.run_until(LIMIT, || count("done") > 0);
    assert_eq!(count(&format!("done {id} {QUICHE_EV_RESPONSE_COMPLETE}")), 1, "{:?}", calls());
    assert!(count("request writable") > 2, "backpressure: several writable calls");
    no_violations();
    free_client(c);
    free_server(s);
}

#[test]
fn a_long_lived_connection_keeps_nothing_per_finished_request() {
    const N: usize = if cfg!(miri) { 24 } else { 60 };
    struct Sequential {
        n: usize,
    }
    impl Script for Sequential {
        fn done(&mut self, c: *mut quiche_ev_client, _id: i64, outcome: c_int, _code: u64) {
            assert_eq!(outcome, QUICHE_EV_RESPONSE_COMPLETE);
            self.n += 1;
            if self.n < N {
                get(c, "/p/10/13");
            }
        }
    }
    let mut w = World::new(true);
    let s = w.server(Watch::Own);
    let c = w.client(Watch::Own);
    hook_server(s);
    hook_client(c);
    set_script(Sequential { n: 0 });
    get(c, "/p/10/13");
    w.lp.run_until(LIMIT, || count("done") == N);
    assert_eq!(count("done"), N);
    let srv = quiche_ev_server::get(s).unwrap();
    let (open, kept) = unsafe {
        let st = crate::server::ServerCore::state(srv);
        crate::server::ServerConn::app(st.conn_ptr(st.conn_ids()[0])).kept()
    };
    assert_eq!(open, 0);
    assert!(kept < 20, "{kept} finished streams remembered after {N} requests");
    free_client(c);
    free_server(s);
}

#[test]
fn a_failed_new_says_why_without_a_log_callback() {
    let w = World::new(true);
    let sa = std_sockaddr(SERVER_ADDR);
    let s = quiche_ev_server_new(std::ptr::null_mut(), 3, &sa.0 as *const _ as *const libc::sockaddr, sa.1,
                                 std::ptr::null_mut(), std::ptr::null_mut());
    assert!(s.is_null());
    let why = unsafe { CStr::from_ptr(quiche_ev_last_error()) }.to_string_lossy().into_owned();
    assert!(why.contains("loop, config and socket are required"), "{why}");
    let mut cfg = crate::testing::wire::FakeConfig::default();
    let c = quiche_ev_client_new(w.lp_raw(), 12345, std::ptr::null(), &sa.0 as *const _ as *const libc::sockaddr,
                                 sa.1, &mut cfg as *mut _ as *mut quiche_config, std::ptr::null_mut());
    assert!(c.is_null());
    let why = unsafe { CStr::from_ptr(quiche_ev_last_error()) }.to_string_lossy().into_owned();
    assert!(why.contains("12345 is not a socket"), "{why}");
}

fn std_sockaddr(a: &str) -> (libc::sockaddr_storage, libc::socklen_t) {
    crate::socket::std_to_sockaddr(&a.parse().unwrap())
}

impl World {
    fn lp_raw(&self) -> *mut libev_sys::ev_loop {
        crate::evloop::EvLoop::raw(&self.lp)
    }
}

#[test]
fn an_empty_request_body_whose_end_does_not_fit_at_once_still_ends() {
    // The client's connection window is all but used by a first upload
    // the server does not read yet: the second request's headers fit, its
    // empty body's DATA frame header (2 bytes) does not.
    struct Tight {
        first: Option<i64>,
        reads: bool,
    }
    impl Script for Tight {
        fn request(&mut self, r: *mut quiche_ev_request) {
            if path_of(r) == "/empty" {
                // The second request: read the first's body from now on.
                self.reads = true;
            }
        }
        fn body(&mut self, r: *mut quiche_ev_request, data: &[u8], fin: bool) -> usize {
            let first = path_of(r) == "/first";
            if first && !self.reads {
                return 0; // hold the first upload back
            }
            if fin {
                assert_eq!(quiche_ev_respond_bytes(r, 200, std::ptr::null(), 0, b"ok".as_ptr(), 2), 0);
            }
            data.len()
        }
        fn request_writable(&mut self, c: *mut quiche_ev_client, id: i64) {
            if Some(id) != self.first {
                return;
            }
            // Fill what is left of the window but for the second request's
            // headers and one byte.
            let conn = quiche_ev_client_quiche(c) as *mut crate::testing::wire::FakeConn;
            // SAFETY: this platform's connection, live during the call.
            let room = unsafe { (*conn).new_stream_capacity() } as usize;
            let headers = 40; // the second request's HEADERS frame (below)
            if room > headers + 1 + 3 {
                let body = pattern(room - headers - 1 - 3, 1);
                let n = quiche_ev_client_request_write(c, id, body.as_ptr(), body.len(), 0);
                assert_eq!(n as usize, body.len());
                let second = quiche_ev_client_request(c, c"POST".as_ptr(), c"/empty".as_ptr(), std::ptr::null(), 0,
                                                      b"".as_ptr(), 0, std::ptr::null_mut());
                assert!(second >= 0);
            }
        }
        fn done(&mut self, c: *mut quiche_ev_client, id: i64, _outcome: c_int, _code: u64) {
            if Some(id) == self.first {
                return;
            }
            // The empty request was answered: end the first too.
            let first = self.first.unwrap();
            quiche_ev_client_request_write(c, first, std::ptr::null(), 0, 1);
        }
    }
    let mut w = World::new(true);
    w.client_config.conn_window = 8192;
    w.server_config.conn_window = 8192;
    let s = w.server(Watch::Own);
    let c = w.client(Watch::Own);
    hook_server(s);
    hook_client(c);
    let first = quiche_ev_client_request_start(c, c"POST".as_ptr(), c"/first".as_ptr(), std::ptr::null(), 0,
                                               std::ptr::null_mut());
    set_script(Tight { first: Some(first), reads: false });
    w.lp.run_until(LIMIT, || count("done") == 2);
    no_violations();
    assert_eq!(count(&format!("done 1 {QUICHE_EV_RESPONSE_COMPLETE}")), 1, "the empty request ended: {:?}", calls());
    free_client(c);
    free_server(s);
}

#[test]
fn every_log_line_names_the_handle_and_connection_it_is_about() {
    use std::sync::Mutex;
    static SEEN: Mutex<Vec<(String, usize, usize, usize)>> = Mutex::new(Vec::new());
    unsafe extern "C" fn logger(r: *const quiche_ev_log_record, _user: *mut libc::c_void) {
        let r = &*r;
        let msg = CStr::from_ptr(r.message).to_string_lossy().into_owned();
        SEEN.lock().unwrap().push((msg, r.server as usize, r.client as usize, r.conn as usize));
    }
    // The client, once closed, shuts the server down from its own
    // callback: the server's lines then name the server alone (they named
    // the client too, whose callback was on the stack).
    struct ShutFromClient {
        server: *mut quiche_ev_server,
    }
    impl Script for ShutFromClient {
        fn done(&mut self, c: *mut quiche_ev_client, _id: i64, _outcome: c_int, _code: u64) {
            assert_eq!(quiche_ev_client_close(c, 0, std::ptr::null()), 0);
        }
        fn closed(&mut self, _c: *mut quiche_ev_client, _state: c_int) {
            assert_eq!(quiche_ev_server_shutdown(self.server, 0), 0);
        }
    }
    let mut w = World::new(true);
    let s = w.server(Watch::Own);
    let c = w.client(Watch::Own);
    hook_server(s);
    hook_client(c);
    set_script(ShutFromClient { server: s });
    assert_eq!(crate::ffi::log::quiche_ev_set_logger(Some(logger), std::ptr::null_mut(), 3), 0);
    get(c, "/p/10/1");
    assert_eq!(w.lp.run(LIMIT), Ran::Idle);
    assert_eq!(count("stopped 0"), 1, "{:?}", calls());
    crate::ffi::log::quiche_ev_set_log(None, std::ptr::null_mut(), 1);
    // Other tests log from other threads meanwhile: keep what is ours.
    let seen: Vec<_> = SEEN.lock().unwrap().iter()
        .filter(|(_, sv, cl, _)| *sv == s as usize || *cl == c as usize).cloned().collect();
    let new_conn = seen.iter().find(|(m, ..)| m == "new connection").expect("the server logged its new connection");
    assert_eq!((new_conn.1, new_conn.2), (s as usize, 0), "a server line names the server, not the client");
    assert_ne!(new_conn.3, 0, "and the connection");
    let est = seen.iter().find(|(m, ..)| m.starts_with("connection established")).expect("the client logged");
    assert_eq!((est.1, est.2, est.3), (0, c as usize, 0), "a client line names the client");
    let shut = seen.iter().find(|(m, ..)| m.starts_with("shutting down")).expect("the server logged its shutdown");
    assert_eq!((shut.1, shut.2, shut.3), (s as usize, 0, 0),
               "a call on the server from the client's callback logs as the server's alone");
    free_client(c);
    free_server(s);
}

#[test]
fn an_internal_error_stops_the_server_tells_the_host_from_the_loop_and_leaves_no_watcher() {
    use crate::testing::wire::PANIC_ON_SEND;
    // In a C API call (the host answers from its request callback: the
    // call returns an error, the server fails on the next iteration), and
    // inside the library's own work (the built-in responder's send).
    for in_call in [true, false] {
        struct Answer {
            in_call: bool,
            status: Option<c_int>,
        }
        impl Script for Answer {
            fn request(&mut self, r: *mut quiche_ev_request) {
                if self.in_call {
                    PANIC_ON_SEND.with(|p| p.set(true));
                    self.status = Some(answer(r));
                    assert_eq!(self.status, Some(crate::ffi::QUICHE_EV_ERR_INTERNAL));
                } else {
                    // A body larger than the window: the library sends the
                    // rest on its own, from the loop, and fails there.
                    let body = pattern(size(100_000), 3);
                    quiche_ev_respond_bytes(r, 200, std::ptr::null(), 0, body.as_ptr(), body.len());
                    PANIC_ON_SEND.with(|p| p.set(true));
                }
            }
            fn stopped(&mut self, s: *mut quiche_ev_server, status: c_int) {
                assert_eq!(status, crate::ffi::QUICHE_EV_ERR_INTERNAL);
                free_server(s);
            }
        }
        let mut w = World::new(true);
        let s = w.server(Watch::Host);
        let c = w.client(Watch::Own);
        hook_server(s);
        hook_client(c);
        set_script(Answer { in_call, status: None });
        get(c, "/p/10/1");
        assert_eq!(w.lp.run(LIMIT), Ran::Idle, "the failed server left nothing running; calls {:?}", calls());
        assert_eq!(count(&format!("stopped {}", crate::ffi::QUICHE_EV_ERR_INTERNAL)), 1, "{:?}", calls());
        no_violations();
        assert_eq!(w.host_watchers_active(), 0);
        free_client(c);
    }
}

/// Once a stopped server has stopped the host's socket watcher, the
/// watcher is the host's again: here the host reuses the very same
/// `ev_io` for another socket, and freeing the server afterwards must not
/// touch it (it used to stop it a second time, from its stale list: a
/// watcher on a returned stack frame, in the examples).
#[test]
fn a_watcher_the_stopped_server_gave_back_is_never_touched_again() {
    unsafe extern "C" fn other_cb(_lp: *mut libev_sys::ev_loop, _w: *mut libev_sys::ev_io, _r: c_int) {}
    let mut w = World::new(true);
    let s = w.server(Watch::Host);
    let watcher = *w.watchers.last().unwrap();
    let c = w.client(Watch::Own);
    hook_server(s);
    hook_client(c);
    set_script(Defaults);
    get(c, "/p/100/3");
    w.lp.run_until(LIMIT, || count("done") > 0);
    assert_eq!(quiche_ev_server_shutdown(s, 0), 0);
    w.lp.run_until(LIMIT, || quiche_ev_server_is_stopped(s) == 1);
    assert_eq!(quiche_ev_server_is_stopped(s), 1);
    // libev calls the host's watcher once more (ev_feed_fd_event; the fake
    // loop on its next iteration), and recv_cb stops it.
    w.lp.run_once();
    assert!(!w.lp.is_active(watcher), "the stopped server stopped the host's watcher");
    // The host reuses its watcher for a socket of its own.
    let fd = w.net.socket(None);
    // SAFETY: the host's own watcher, inactive, at a stable address.
    unsafe {
        crate::evloop::EvLoop::io_init(&w.lp, watcher, other_cb, fd, libev_sys::EV_READ, std::ptr::null_mut());
        crate::evloop::EvLoop::io_start(&w.lp, watcher);
    }
    free_server(s);
    assert!(w.lp.is_active(watcher), "freeing the server left the host's reused watcher alone");
    // SAFETY: as above.
    unsafe { crate::evloop::EvLoop::io_stop(&w.lp, watcher) };
    free_client(c);
    no_violations();
}
