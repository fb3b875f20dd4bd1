//! The datagram promises of the C API, called the way a host calls them,
//! on the in-memory platform (under Miri too): QUIC datagrams both ways
//! on a server connection and a client, each send answered at once with
//! 0 or a clear error and every callback from the loop only; a full
//! send queue says "again" and the writable callback follows; HTTP
//! Datagrams bound to an extended CONNECT, with its `:protocol`, both
//! ways; what happens without the peer's settings; where a datagram for
//! a request that is over goes, and that what no one took is counted.

use std::ffi::CStr;

use libc::c_int;

use crate::ffi::client::*;
use crate::ffi::datagram::*;
use crate::ffi::errors::quiche_ev_last_error;
use crate::ffi::request::*;
use crate::ffi::server::*;
use crate::ffi::types::*;
use crate::ffi::{QUICHE_EV_ERR_AGAIN, QUICHE_EV_ERR_CLOSED, QUICHE_EV_ERR_NULL, QUICHE_EV_ERR_STATE,
                 QUICHE_EV_ERR_TOO_LARGE, QUICHE_EV_ERR_UNSUPPORTED};
use crate::testing::script::*;
use crate::testing::world::*;
use crate::testing::Ran;

const LIMIT: usize = 50_000;

const MASQUE_PATH: &std::ffi::CStr = c"/.well-known/masque/udp/192.0.2.6/443/";

fn no_violations() {
    let v = violations();
    assert!(v.is_empty(), "calls on freed handles or closed requests: {v:?}\ncalls: {:?}", calls());
}

fn last_error() -> String {
    let p = quiche_ev_last_error();
    assert!(!p.is_null());
    // SAFETY: the library's NUL-terminated last error.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// A world whose both sides take datagrams (queues of `recv` and `send`
/// datagrams), and whose HTTP/3 servers allow extended CONNECT.
fn world(h3: bool, recv: usize, send: usize) -> World {
    let mut w = World::new(h3);
    w.server_config.dgram = Some((recv, send));
    w.client_config.dgram = Some((recv, send));
    w.h3_config.extended_connect = true;
    w
}

/// Runs the loop until `done` or nothing is left to run.
fn run_until(w: &World, done: impl Fn() -> bool) {
    w.lp.run_until(LIMIT, || done());
}

/// Closes the client, shuts the server down, and runs the loop out.
fn finish(w: &World, s: *mut quiche_ev_server, c: *mut quiche_ev_client) {
    quiche_ev_client_close(c, 0, std::ptr::null());
    assert_eq!(quiche_ev_server_shutdown(s, 0), 0);
    assert_eq!(w.lp.run(LIMIT), Ran::Idle, "the loop ends by itself");
    no_violations();
    free_client(c);
    free_server(s);
}

fn connect_udp(c: *mut quiche_ev_client) -> i64 {
    let h = [quiche_ev_header { name: b"capsule-protocol".as_ptr(), name_len: 16, value: b"?1".as_ptr(),
                                value_len: 2 }];
    quiche_ev_client_extended_connect(c, c"connect-udp".as_ptr(), MASQUE_PATH.as_ptr(), h.as_ptr(), 1,
                                      std::ptr::null_mut())
}

/// A world with a server and a client, every callback (datagrams too)
/// going to the script.
fn hooked(w: &mut World) -> (*mut quiche_ev_server, *mut quiche_ev_client) {
    let s = w.server(Watch::Own);
    let c = w.client(Watch::Own);
    hook_server(s);
    hook_client(c);
    hook_server_datagrams(s);
    hook_client_datagrams(c);
    (s, c)
}

#[test]
fn quic_datagrams_go_both_ways_and_every_callback_comes_from_the_loop() {
    struct Echo {
        got: Vec<Vec<u8>>,
    }
    impl Script for Echo {
        fn client_established(&mut self, c: *mut quiche_ev_client) {
            let before = calls().len();
            assert!(quiche_ev_client_datagram_max_len(c) >= 1000, "{}", quiche_ev_client_datagram_max_len(c));
            assert_eq!(quiche_ev_client_send_datagram(c, b"ping-1".as_ptr(), 6), 0);
            assert_eq!(quiche_ev_client_send_datagram(c, b"ping-2".as_ptr(), 6), 0);
            assert_eq!(calls().len(), before, "nothing was called back inside the sends");
        }
        fn conn_datagram(&mut self, conn: *mut quiche_ev_conn, data: &[u8]) {
            let mut d = data.to_vec();
            d.reverse();
            assert!(quiche_ev_conn_datagram_max_len(conn) >= d.len() as isize);
            assert_eq!(quiche_ev_conn_send_datagram(conn, d.as_ptr(), d.len()), 0, "echoed from inside the callback");
        }
        fn client_datagram(&mut self, c: *mut quiche_ev_client, data: &[u8]) {
            self.got.push(data.to_vec());
            if self.got.len() == 2 {
                assert_eq!(self.got, [b"1-gnip".to_vec(), b"2-gnip".to_vec()], "in order, intact");
                let mut st = quiche_ev_stats { size: std::mem::size_of::<quiche_ev_stats>(),
                                               ..unsafe { std::mem::zeroed() } };
                assert_eq!(quiche_ev_client_stats(c, &mut st), 0);
                assert_eq!((st.dgram_sent, st.dgram_recv, st.dgram_dropped), (2, 2, 0));
                quiche_ev_client_close(c, 0, std::ptr::null());
            }
        }
        fn conn_closed(&mut self, _c: *mut quiche_ev_conn, stats: &quiche_ev_stats) {
            assert_eq!((stats.dgram_sent, stats.dgram_recv, stats.dgram_dropped), (2, 2, 0));
        }
    }
    let mut w = world(false, 16, 16);
    let (s, c) = hooked(&mut w);
    set_script(Echo { got: Vec::new() });
    run_until(&w, || count("conn closed") > 0);
    assert_eq!(count("conn datagram"), 2, "{:?}", calls());
    assert_eq!(count("client datagram"), 2, "{:?}", calls());
    finish(&w, s, c);
}

#[test]
fn on_http3_a_datagram_naming_no_open_request_reaches_the_connection_whole() {
    // Every datagram on HTTP/3 is an HTTP Datagram; this one names stream
    // 0 (Quarter Stream ID 0), which is no request yet.
    struct Framed;
    impl Script for Framed {
        fn client_established(&mut self, c: *mut quiche_ev_client) {
            assert_eq!(quiche_ev_client_send_datagram(c, b"\x00ping".as_ptr(), 5), 0);
        }
        fn conn_datagram(&mut self, conn: *mut quiche_ev_conn, data: &[u8]) {
            assert_eq!(data, b"\x00ping", "whole, Quarter Stream ID included");
            assert_eq!(quiche_ev_conn_send_datagram(conn, b"\x00pong".as_ptr(), 5), 0);
        }
        fn client_datagram(&mut self, c: *mut quiche_ev_client, data: &[u8]) {
            assert_eq!(data, b"\x00pong");
            quiche_ev_client_close(c, 0, std::ptr::null());
        }
    }
    let mut w = world(true, 16, 16);
    let (s, c) = hooked(&mut w);
    set_script(Framed);
    run_until(&w, || count("conn closed") > 0);
    assert_eq!((count("conn datagram"), count("client datagram")), (1, 1), "{:?}", calls());
    finish(&w, s, c);
}

#[test]
fn a_full_send_queue_says_again_and_the_writable_callback_follows_from_the_loop() {
    const TOTAL: u8 = 20;
    struct Fill {
        next: u8,
        agains: usize,
        got: Vec<u8>,
    }
    impl Fill {
        fn send_some(&mut self, c: *mut quiche_ev_client) {
            let before = calls().len();
            while self.next < TOTAL {
                let d = [self.next; 3];
                match quiche_ev_client_send_datagram(c, d.as_ptr(), d.len()) {
                    0 => self.next += 1,
                    QUICHE_EV_ERR_AGAIN => {
                        self.agains += 1;
                        break;
                    }
                    e => panic!("send: {e}"),
                }
            }
            assert_eq!(calls().len(), before, "no callback inside the sends");
        }
    }
    impl Script for Fill {
        fn client_established(&mut self, c: *mut quiche_ev_client) {
            self.send_some(c);
            assert_eq!(self.next, 4, "quiche's queue holds 4: the fifth is refused, not dropped");
        }
        fn client_datagram_writable(&mut self, c: *mut quiche_ev_client) {
            self.send_some(c);
        }
        fn conn_datagram(&mut self, _conn: *mut quiche_ev_conn, data: &[u8]) {
            assert_eq!(data, [self.got.len() as u8; 3], "every one, in order, intact");
            self.got.push(data[0]);
        }
    }
    let mut w = world(false, 64, 4);
    let (s, c) = hooked(&mut w);
    set_script(Fill { next: 0, agains: 0, got: Vec::new() });
    run_until(&w, || count("conn datagram") == TOTAL as usize);
    // (The in-memory network loses none: all of them, checked in order.)
    assert_eq!(count("conn datagram"), TOTAL as usize, "{:?}", calls());
    assert!(count("client datagram writable") >= 4, "{:?}", calls());
    no_violations();
    finish(&w, s, c);
}

#[test]
fn sends_say_why_not_too_large_not_yet_closed_and_null() {
    struct Limits;
    impl Script for Limits {
        fn conn_established(&mut self, conn: *mut quiche_ev_conn) {
            let max = quiche_ev_conn_datagram_max_len(conn);
            assert!(max > 1000, "{max}");
            let big = vec![7u8; max as usize + 1];
            assert_eq!(quiche_ev_conn_send_datagram(conn, big.as_ptr(), big.len()), QUICHE_EV_ERR_TOO_LARGE);
            assert!(last_error().contains(&format!("({max} bytes)")), "{}", last_error());
            assert_eq!(quiche_ev_conn_send_datagram(conn, big.as_ptr(), max as usize), 0, "the largest fits");
            assert_eq!(quiche_ev_conn_send_datagram(conn, std::ptr::null(), 1), QUICHE_EV_ERR_NULL);
        }
        fn request(&mut self, r: *mut quiche_ev_request) {
            // hq-interop has no HTTP datagrams, whatever the request.
            assert_eq!(quiche_ev_request_send_datagram(r, b"x".as_ptr(), 1), QUICHE_EV_ERR_UNSUPPORTED);
            assert!(last_error().contains("hq-interop"), "{}", last_error());
            answer(r);
        }
        fn client_datagram(&mut self, c: *mut quiche_ev_client, data: &[u8]) {
            assert!(data.len() > 1000 && data.iter().all(|&b| b == 7));
            assert_eq!(quiche_ev_client_request_send_datagram(c, 99, b"x".as_ptr(), 1),
                       crate::ffi::QUICHE_EV_ERR_INVALID, "no such request");
            assert_eq!(quiche_ev_client_send_datagram(c, std::ptr::null(), 1), QUICHE_EV_ERR_NULL);
            quiche_ev_client_close(c, 0, std::ptr::null());
        }
    }
    let mut w = world(false, 8, 8);
    let (s, c) = hooked(&mut w);
    set_script(Limits);
    // Before the handshake: the server's limits are not known yet.
    assert_eq!(quiche_ev_client_send_datagram(c, b"x".as_ptr(), 1), QUICHE_EV_ERR_STATE);
    assert_eq!(quiche_ev_client_datagram_max_len(c), QUICHE_EV_ERR_STATE as isize);
    get(c, "/p/10/1");
    run_until(&w, || count("closed") > 0);
    assert_eq!(count("client datagram"), 1, "{:?}", calls());
    assert_eq!(quiche_ev_client_send_datagram(c, b"x".as_ptr(), 1), QUICHE_EV_ERR_CLOSED, "after the close");
    finish(&w, s, c);
}

#[test]
fn datagrams_not_enabled_on_one_side_are_unsupported_both_ways() {
    // The server's config does not enable datagrams: it takes none (the
    // client hears so), and sends none (quiche's send queue holds none).
    struct Off;
    impl Script for Off {
        fn client_established(&mut self, c: *mut quiche_ev_client) {
            assert_eq!(quiche_ev_client_send_datagram(c, b"x".as_ptr(), 1), QUICHE_EV_ERR_UNSUPPORTED);
            assert!(last_error().contains("does not accept QUIC datagrams"), "{}", last_error());
            assert_eq!(quiche_ev_client_datagram_max_len(c), QUICHE_EV_ERR_UNSUPPORTED as isize);
        }
        fn conn_established(&mut self, conn: *mut quiche_ev_conn) {
            assert_eq!(quiche_ev_conn_send_datagram(conn, b"x".as_ptr(), 1), QUICHE_EV_ERR_UNSUPPORTED);
            assert!(last_error().contains("quiche_config_enable_dgram"), "{}", last_error());
        }
        fn done(&mut self, c: *mut quiche_ev_client, _id: i64, _outcome: c_int, _code: u64) {
            quiche_ev_client_close(c, 0, std::ptr::null());
        }
    }
    let mut w = world(false, 8, 8);
    w.server_config.dgram = None;
    let (s, c) = hooked(&mut w);
    set_script(Off);
    get(c, "/p/10/1");
    run_until(&w, || count("closed") > 0);
    assert_eq!(count(&format!("closed {QUICHE_EV_CLIENT_CLOSED}")), 1, "{:?}", calls());
    finish(&w, s, c);
}

/// A CONNECT-UDP exchange: the client opens the tunnel, sends one HTTP
/// Datagram once the answer came; the server echoes it on the request;
/// the client then ends the tunnel, and the server ends its side.
struct Tunnel {
    max_len: isize,
}

impl Script for Tunnel {
    fn request(&mut self, r: *mut quiche_ev_request) {
        let protocol = unsafe { CStr::from_ptr(quiche_ev_request_protocol(r)) };
        let method = unsafe { CStr::from_ptr(quiche_ev_request_method(r)) };
        assert_eq!((method, protocol), (c"CONNECT", c"connect-udp"), "the :protocol is visible");
        assert_eq!(path_of(r), MASQUE_PATH.to_str().unwrap());
        let h = [quiche_ev_header { name: b"capsule-protocol".as_ptr(), name_len: 16, value: b"?1".as_ptr(),
                                    value_len: 2 }];
        assert_eq!(quiche_ev_respond(r, 200, h.as_ptr(), 1, 0), 0);
        let conn_max = quiche_ev_conn_datagram_max_len(quiche_ev_request_conn(r));
        assert_eq!(quiche_ev_request_datagram_max_len(r), conn_max - 1, "a one-byte Quarter Stream ID");
    }
    fn request_datagram(&mut self, r: *mut quiche_ev_request, data: &[u8]) {
        assert_eq!(data, b"\x00hello", "the payload, after the Quarter Stream ID");
        assert_eq!(quiche_ev_request_send_datagram(r, b"\x00olleh".as_ptr(), 6), 0);
    }
    fn body(&mut self, r: *mut quiche_ev_request, data: &[u8], fin: bool) -> usize {
        if fin {
            assert_eq!(quiche_ev_respond_write(r, std::ptr::null(), 0, 1), 0, "our side of the tunnel ends");
        }
        data.len()
    }
    fn headers(&mut self, c: *mut quiche_ev_client, id: i64, status: c_int) {
        assert_eq!(status, 200);
        self.max_len = quiche_ev_client_request_datagram_max_len(c, id);
        assert_eq!(quiche_ev_client_request_send_datagram(c, id, b"\x00hello".as_ptr(), 6), 0);
    }
    fn response_datagram(&mut self, c: *mut quiche_ev_client, id: i64, data: &[u8]) {
        assert_eq!(data, b"\x00olleh");
        assert_eq!(quiche_ev_client_request_write(c, id, std::ptr::null(), 0, 1), 0, "the tunnel ends");
    }
}

#[test]
fn http_datagrams_go_both_ways_on_an_extended_connect() {
    let mut w = world(true, 16, 16);
    let (s, c) = hooked(&mut w);
    set_script(Tunnel { max_len: 0 });
    let id = connect_udp(c);
    assert!(id >= 0);
    // A streamed request is not sent yet: no datagram can name it.
    assert_eq!(quiche_ev_client_request_send_datagram(c, id, b"x".as_ptr(), 1), QUICHE_EV_ERR_STATE);
    run_until(&w, || count("done") > 0);
    no_violations();
    assert_eq!(count("request datagram 6"), 1, "{:?}", calls());
    assert_eq!(count(&format!("response datagram {id} 6")), 1, "{:?}", calls());
    assert_eq!(count(&format!("done {id} {QUICHE_EV_RESPONSE_COMPLETE}")), 1, "{:?}", calls());
    assert_eq!(count("request closed 0"), 1, "{:?}", calls());
    assert_eq!(count("conn datagram"), 0, "every one went to its request");
    finish(&w, s, c);
}

#[test]
fn an_extended_connect_waits_for_settings_and_fails_without_the_servers_consent() {
    let mut w = world(true, 16, 16);
    w.h3_config.extended_connect = false;
    let s = w.server(Watch::Own);
    let c = w.client(Watch::Own);
    hook_server(s);
    hook_client(c);
    set_script(Defaults);
    let id = connect_udp(c);
    let plain = get(c, "/p/10/2");
    run_until(&w, || count("done") == 2);
    assert_eq!(count(&format!("done {id} {QUICHE_EV_RESPONSE_FAILED}")), 1, "{:?}", calls());
    assert_eq!(count(&format!("done {plain} {QUICHE_EV_RESPONSE_COMPLETE}")), 1, "the next request went on");
    assert_eq!(calls().iter().filter(|c| *c == "request").count(), 1, "the CONNECT never reached the server: {:?}",
               calls());
    // Not a token, or on hq-interop: refused at once.
    assert_eq!(quiche_ev_client_extended_connect(c, c"a b".as_ptr(), c"/".as_ptr(), std::ptr::null(), 0,
                                                 std::ptr::null_mut()), crate::ffi::QUICHE_EV_ERR_INVALID as i64);
    assert_eq!(quiche_ev_client_extended_connect(c, std::ptr::null(), c"/".as_ptr(), std::ptr::null(), 0,
                                                 std::ptr::null_mut()), QUICHE_EV_ERR_NULL as i64);
    finish(&w, s, c);
}

#[test]
fn http_datagrams_need_the_peers_h3_datagram_setting() {
    // The client takes no datagrams: no transport parameter, no
    // SETTINGS_H3_DATAGRAM.
    let mut w = world(true, 16, 16);
    w.client_config.dgram = None;
    let s = w.server(Watch::Own);
    let c = w.client(Watch::Own);
    hook_server(s);
    hook_client(c);
    struct NoDatagrams;
    impl Script for NoDatagrams {
        fn request(&mut self, r: *mut quiche_ev_request) {
            assert_eq!(quiche_ev_request_send_datagram(r, b"\x00x".as_ptr(), 2), QUICHE_EV_ERR_UNSUPPORTED);
            assert!(last_error().contains("max_datagram_frame_size"), "{}", last_error());
            assert_eq!(quiche_ev_request_datagram_max_len(r), QUICHE_EV_ERR_UNSUPPORTED as isize);
            assert_eq!(quiche_ev_respond(r, 200, std::ptr::null(), 0, 1), 0);
        }
    }
    set_script(NoDatagrams);
    let id = connect_udp(c);
    run_until(&w, || count("done") > 0);
    assert_eq!(count(&format!("done {id} {QUICHE_EV_RESPONSE_COMPLETE}")), 1, "{:?}", calls());
    no_violations();
    finish(&w, s, c);
}

#[test]
fn a_datagram_for_a_request_that_is_over_goes_to_the_connection_or_is_counted() {
    // Stream 0's tunnel ends; then the client sends one more datagram
    // naming it (Quarter Stream ID 0): the connection's callback has it
    // whole. Without that callback it is dropped, and counted.
    struct Late {
        hear: bool,
    }
    impl Script for Late {
        fn request(&mut self, r: *mut quiche_ev_request) {
            assert_eq!(quiche_ev_respond(r, 200, std::ptr::null(), 0, 1), 0);
        }
        fn done(&mut self, c: *mut quiche_ev_client, id: i64, _outcome: c_int, _code: u64) {
            assert_eq!(quiche_ev_client_request_send_datagram(c, id, b"x".as_ptr(), 1), crate::ffi::QUICHE_EV_ERR_INVALID,
                       "a request that is over is no request any more");
            assert_eq!(quiche_ev_client_send_datagram(c, b"\x00late".as_ptr(), 5), 0);
        }
        fn conn_datagram(&mut self, _conn: *mut quiche_ev_conn, data: &[u8]) {
            assert!(self.hear);
            assert_eq!(data, b"\x00late");
        }
        fn conn_closed(&mut self, _c: *mut quiche_ev_conn, stats: &quiche_ev_stats) {
            assert_eq!(stats.dgram_recv, 1);
            assert_eq!(stats.dgram_dropped, if self.hear { 0 } else { 1 }, "what no one took is counted");
        }
    }
    for hear in [true, false] {
        let mut w = world(true, 16, 16);
        let s = w.server(Watch::Own);
        let c = w.client(Watch::Own);
        hook_server(s);
        hook_client(c);
        hook_server_datagrams(s);
        if !hear {
            assert_eq!(quiche_ev_server_on_datagram(s, None), 0);
        }
        set_script(Late { hear });
        connect_udp(c);
        run_until(&w, || count("done") > 0);
        // Let the late datagram arrive, then end.
        for _ in 0..200 {
            if !w.lp.run_once() {
                break;
            }
        }
        assert_eq!(count("conn datagram"), hear as usize, "{:?}", calls());
        finish(&w, s, c);
        assert_eq!(count("conn closed"), 1);
    }
}

#[test]
fn a_malformed_http_datagram_closes_the_connection_with_h3_datagram_error() {
    struct Malformed {
        code: Option<u64>,
    }
    impl Script for Malformed {
        fn client_established(&mut self, c: *mut quiche_ev_client) {
            // A two-byte varint cut short: no Quarter Stream ID.
            assert_eq!(quiche_ev_client_send_datagram(c, b"\x40".as_ptr(), 1), 0);
        }
        fn conn_closed(&mut self, _c: *mut quiche_ev_conn, stats: &quiche_ev_stats) {
            self.code = Some(stats.error_code);
            assert_eq!((stats.has_error, stats.error_by_peer, stats.error_is_app), (1, 0, 1));
            assert_eq!(stats.error_code, 0x33, "H3_DATAGRAM_ERROR");
            assert_eq!(stats.dgram_dropped, 1);
        }
    }
    let mut w = world(true, 16, 16);
    let s = w.server(Watch::Own);
    let c = w.client(Watch::Own);
    hook_server(s);
    hook_client(c);
    hook_server_datagrams(s);
    set_script(Malformed { code: None });
    run_until(&w, || count("conn closed") > 0);
    assert_eq!(count("conn closed"), 1, "{:?}", calls());
    assert_eq!(count(&format!("closed {QUICHE_EV_CLIENT_FAILED}")), 1, "{:?}", calls());
    assert_eq!(count("conn datagram"), 0);
    finish(&w, s, c);
}

#[test]
fn a_server_freed_in_a_request_datagram_callback_hears_nothing_more() {
    struct FreeIn {
        server: *mut quiche_ev_server,
    }
    impl Script for FreeIn {
        fn request(&mut self, r: *mut quiche_ev_request) {
            assert_eq!(quiche_ev_respond(r, 200, std::ptr::null(), 0, 0), 0);
        }
        fn headers(&mut self, c: *mut quiche_ev_client, id: i64, _status: c_int) {
            for i in 0..3u8 {
                assert_eq!(quiche_ev_client_request_send_datagram(c, id, [0, i].as_ptr(), 2), 0);
            }
        }
        fn request_datagram(&mut self, _r: *mut quiche_ev_request, _data: &[u8]) {
            free_server(self.server);
        }
    }
    let mut w = world(true, 16, 16);
    let s = w.server(Watch::Host);
    let c = w.client(Watch::Own);
    hook_server(s);
    hook_client(c);
    hook_server_datagrams(s);
    set_script(FreeIn { server: s });
    connect_udp(c);
    run_until(&w, || count("request datagram") > 0 && w.host_watchers_active() == 0);
    assert_eq!(count("request datagram"), 1, "nothing after the free: {:?}", calls());
    no_violations();
    // The client gives up on its own (idle timeout); then the loop is empty.
    assert_eq!(w.lp.run(LIMIT), Ran::Idle);
    assert_eq!(count("request datagram"), 1);
    no_violations();
    free_client(c);
}
