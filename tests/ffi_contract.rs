//! The C API's contract: NULL and invalid arguments give the documented
//! error value (never a crash), `_free(NULL)` is a no-op, every exported
//! body runs inside a panic boundary, every error code has a description,
//! and the version functions say what was built.

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::ptr;

use libev_sys::*;
use quiche_ev::ffi::client::*;
use quiche_ev::ffi::conn::*;
use quiche_ev::ffi::datagram::*;
use quiche_ev::ffi::errors::quiche_ev_strerror;
use quiche_ev::ffi::log::*;
use quiche_ev::ffi::meta::{quiche_ev_quiche_version, quiche_ev_version};
use quiche_ev::ffi::request::*;
use quiche_ev::ffi::server::*;
use quiche_ev::ffi::types::*;
use quiche_ev::ffi::{QUICHE_EV_ERR_INVALID, QUICHE_EV_ERR_NULL, QUICHE_EV_ERR_STATE};
use quiche_ev::socket::std_to_sockaddr;

extern "C" {
    fn quiche_config_new(version: u32) -> *mut quiche_config;
    fn quiche_config_free(c: *mut quiche_config);
    fn quiche_version() -> *const libc::c_char;
}

/// A C string the library returned, which must never be NULL.
fn text(p: *const libc::c_char) -> String {
    assert!(!p.is_null());
    unsafe { std::ffi::CStr::from_ptr(p) }.to_str().unwrap().to_string()
}

struct Fixture {
    lp: *mut ev_loop,
    sock: libc::c_int,
    config: *mut quiche_config,
    addr: (libc::sockaddr_storage, libc::socklen_t),
}

impl Fixture {
    fn new() -> Fixture {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_nonblocking(true).unwrap();
        let addr = std_to_sockaddr(&s.local_addr().unwrap());
        let sock = std::os::fd::IntoRawFd::into_raw_fd(s);
        unsafe {
            Fixture { lp: ev_loop_new(EVFLAG_AUTO), sock, config: quiche_config_new(1), addr }
        }
    }
    fn addr(&self) -> *const libc::sockaddr {
        &self.addr.0 as *const _ as *const libc::sockaddr
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        unsafe {
            quiche_config_free(self.config);
            ev_loop_destroy(self.lp);
            libc::close(self.sock);
        }
    }
}

/// Sockets a handle must refuse (its reads and writes would block the
/// host's loop, or it is no UDP socket): a blocking UDP socket, a TCP
/// listener, a file.
fn unusable_sockets() -> Vec<std::os::fd::OwnedFd> {
    let blocking = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let file = std::fs::File::open("/dev/null").unwrap();
    vec![blocking.into(), tcp.into(), file.into()]
}

#[test]
fn server_functions_reject_null_and_invalid_arguments() {
    let f = Fixture::new();
    let n = ptr::null_mut();
    assert!(quiche_ev_server_new(n, f.sock, f.addr(), f.addr.1, f.config, n.cast()).is_null());
    assert!(quiche_ev_server_new(f.lp, -1, f.addr(), f.addr.1, f.config, n.cast()).is_null());
    assert!(quiche_ev_server_new(f.lp, f.sock, ptr::null(), f.addr.1, f.config, n.cast()).is_null());
    assert!(quiche_ev_server_new(f.lp, f.sock, f.addr(), 3, f.config, n.cast()).is_null());
    assert!(quiche_ev_server_new(f.lp, f.sock, f.addr(), f.addr.1, n.cast(), n.cast()).is_null());
    for bad in unusable_sockets() {
        assert!(quiche_ev_server_new(f.lp, bad.as_raw_fd(), f.addr(), f.addr.1, f.config, n.cast()).is_null());
    }

    let s0: *mut quiche_ev_server = n.cast();
    assert_eq!(quiche_ev_server_set_root(s0, c"/tmp".as_ptr()), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_server_set_max_conns(s0, 5), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_server_set_token_lifetime(s0, 5), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_server_set_retry(s0, 0), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_server_set_reset_key(s0, [0u8; 32].as_ptr(), 32), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_server_set_keylog_path(s0, c"/dev/null".as_ptr()), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_server_set_qlog_dir(s0, c"/tmp".as_ptr()), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_server_conn_count(s0), QUICHE_EV_ERR_NULL as isize);
    assert_eq!(quiche_ev_server_set_batched_io(s0, 0), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_server_set_gso(s0, 0), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_server_set_user_data(s0, n.cast()), QUICHE_EV_ERR_NULL);
    assert!(quiche_ev_server_user_data(s0).is_null());
    assert_eq!(quiche_ev_server_on_request(s0, None), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_server_on_request_body(s0, None), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_server_on_request_writable(s0, None), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_server_on_request_closed(s0, None), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_server_on_conn(s0, None, None), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_server_on_stopped(s0, None), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_server_on_datagram(s0, None), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_server_on_request_datagram(s0, None), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_server_on_datagram_writable(s0, None), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_server_shutdown(s0, 0), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_server_is_stopped(s0), QUICHE_EV_ERR_NULL);
    let mut counters = quiche_ev_counters { size: std::mem::size_of::<quiche_ev_counters>(), ..Default::default() };
    assert_eq!(quiche_ev_server_counters(s0, &mut counters), QUICHE_EV_ERR_NULL);
    quiche_ev_server_recv_cb(f.lp, n.cast(), EV_READ);
    quiche_ev_server_free(s0);

    let s = quiche_ev_server_new(f.lp, f.sock, f.addr(), f.addr.1, f.config, n.cast());
    assert!(!s.is_null());
    assert_eq!(quiche_ev_server_conn_count(s), 0);
    assert_eq!(quiche_ev_server_set_root(s, ptr::null()), QUICHE_EV_ERR_NULL);
    let missing = CString::new("/no/such/folder").unwrap();
    assert_eq!(quiche_ev_server_set_root(s, missing.as_ptr()), QUICHE_EV_ERR_INVALID);
    assert_eq!(quiche_ev_server_set_root(s, c"/tmp".as_ptr()), 0);
    assert_eq!(quiche_ev_server_set_max_conns(s, 0), QUICHE_EV_ERR_INVALID);
    assert_eq!(quiche_ev_server_set_max_conns(s, 3), 0);
    assert_eq!(quiche_ev_server_set_token_lifetime(s, 0), QUICHE_EV_ERR_INVALID);
    assert_eq!(quiche_ev_server_set_token_lifetime(s, 2000), 0);
    assert_eq!(quiche_ev_server_set_reset_key(s, ptr::null(), 32), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_server_set_reset_key(s, [0u8; 31].as_ptr(), 31), QUICHE_EV_ERR_INVALID);
    assert_eq!(quiche_ev_server_set_reset_key(s, [7u8; 32].as_ptr(), 32), 0);
    assert_eq!(quiche_ev_server_set_keylog_path(s, c"/no/such/dir/keys".as_ptr()), QUICHE_EV_ERR_INVALID);
    assert_eq!(quiche_ev_server_set_qlog_dir(s, ptr::null()), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_server_set_batched_io(s, 0), 0);
    assert_eq!(quiche_ev_server_set_batched_io(s, 1), 0);
    assert_eq!(quiche_ev_server_set_gso(s, 0), 0);
    let mut user = 5u8;
    assert_eq!(quiche_ev_server_set_user_data(s, (&mut user as *mut u8).cast()), 0);
    assert_eq!(quiche_ev_server_user_data(s), (&mut user as *mut u8).cast());
    assert_eq!(quiche_ev_server_counters(s, ptr::null_mut()), QUICHE_EV_ERR_NULL);
    // A caller with an older, smaller structure gets what fits, and its
    // size back; one too small for the size field is refused.
    let mut small = [0usize; 3];
    small[0] = 3 * std::mem::size_of::<usize>();
    assert_eq!(quiche_ev_server_counters(s, small.as_mut_ptr().cast()), 0);
    assert_eq!(small[0], 3 * std::mem::size_of::<usize>());
    let mut tiny = [1usize; 1];
    assert_eq!(quiche_ev_server_counters(s, tiny.as_mut_ptr().cast()), QUICHE_EV_ERR_INVALID);
    assert_eq!(quiche_ev_server_counters(s, &mut counters), 0);
    assert_eq!(counters.size, std::mem::size_of::<quiche_ev_counters>());
    assert_eq!(quiche_ev_server_is_stopped(s), 0);

    // A watcher whose data is NULL: reported, no crash.
    let mut w = ev_io::zeroed();
    quiche_ev_server_recv_cb(f.lp, &mut w, EV_READ);
    // A real watcher: nothing queued, returns at EAGAIN.
    w.data = s.cast();
    w.fd = f.sock;
    quiche_ev_server_recv_cb(f.lp, &mut w, EV_READ);
    // Shut down with no connection: nothing happens inside the call (the
    // stopped callback never runs from inside a call of the host's); the
    // loop finishes it, and then has nothing left to run.
    assert_eq!(quiche_ev_server_shutdown(s, 1000), 0);
    assert_eq!(quiche_ev_server_is_stopped(s), 0);
    unsafe { ev_run(f.lp, 0) };
    assert_eq!(quiche_ev_server_is_stopped(s), 1, "stopped for good, and ev_run returned by itself");
    quiche_ev_server_free(s);
}

#[test]
fn request_and_conn_functions_reject_null() {
    let n: *mut quiche_ev_request = ptr::null_mut();
    assert!(quiche_ev_request_method(n).is_null());
    assert!(quiche_ev_request_path(n).is_null());
    assert!(quiche_ev_request_authority(n).is_null());
    assert!(quiche_ev_request_scheme(n).is_null());
    assert_eq!(quiche_ev_request_header_count(n), 0);
    let mut h = quiche_ev_header { name: ptr::null(), name_len: 0, value: ptr::null(), value_len: 0 };
    assert_eq!(quiche_ev_request_header(n, 0, &mut h), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_request_stream_id(n), u64::MAX);
    assert!(quiche_ev_request_conn(n).is_null());
    assert_eq!(quiche_ev_request_set_user_data(n, ptr::null_mut()), QUICHE_EV_ERR_NULL);
    assert!(quiche_ev_request_user_data(n).is_null());
    assert_eq!(quiche_ev_request_on_writable(n, None), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_respond(n, 200, ptr::null(), 0, 1), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_respond_write(n, ptr::null(), 0, 1), QUICHE_EV_ERR_NULL as isize);
    assert_eq!(quiche_ev_respond_bytes(n, 200, ptr::null(), 0, ptr::null(), 0), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_respond_trailers(n, ptr::null(), 0), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_request_reset(n, 0x10c), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_request_resume_body(n), QUICHE_EV_ERR_NULL);
    assert!(quiche_ev_request_protocol(n).is_null());
    assert_eq!(quiche_ev_request_on_datagram(n, None), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_request_send_datagram(n, b"x".as_ptr(), 1), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_request_datagram_max_len(n), QUICHE_EV_ERR_NULL as isize);

    let c: *mut quiche_ev_conn = ptr::null_mut();
    assert_eq!(quiche_ev_conn_set_user_data(c, ptr::null_mut()), QUICHE_EV_ERR_NULL);
    assert!(quiche_ev_conn_user_data(c).is_null());
    assert!(quiche_ev_conn_quiche(c).is_null());
    assert_eq!(quiche_ev_conn_changed(c), QUICHE_EV_ERR_NULL);
    let mut st = std::mem::MaybeUninit::<quiche_ev_stats>::zeroed();
    assert_eq!(quiche_ev_conn_stats(c, st.as_mut_ptr()), QUICHE_EV_ERR_NULL);
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    assert_eq!(quiche_ev_conn_peer_addr(c, &mut ss, &mut len), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_conn_close(c, 0, ptr::null()), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_conn_send_datagram(c, b"x".as_ptr(), 1), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_conn_datagram_max_len(c), QUICHE_EV_ERR_NULL as isize);

    assert_eq!(quiche_ev_set_log(None, ptr::null_mut(), 0), QUICHE_EV_ERR_INVALID);
    assert_eq!(quiche_ev_set_log(None, ptr::null_mut(), QUICHE_EV_LOG_INFO), 0);
}

#[test]
fn client_functions_reject_null_and_invalid_arguments() {
    let f = Fixture::new();
    let n = ptr::null_mut();
    let host = c"localhost".as_ptr();
    assert!(quiche_ev_client_new(n, f.sock, host, f.addr(), f.addr.1, f.config, n.cast()).is_null());
    assert!(quiche_ev_client_new(f.lp, -1, host, f.addr(), f.addr.1, f.config, n.cast()).is_null());
    assert!(quiche_ev_client_new(f.lp, f.sock, host, ptr::null(), 0, f.config, n.cast()).is_null());
    assert!(quiche_ev_client_new(f.lp, f.sock, host, f.addr(), f.addr.1, n.cast(), n.cast()).is_null());
    for bad in unusable_sockets() {
        assert!(quiche_ev_client_new(f.lp, bad.as_raw_fd(), host, f.addr(), f.addr.1, f.config, n.cast()).is_null());
    }

    let c0: *mut quiche_ev_client = n.cast();
    assert_eq!(quiche_ev_client_set_output(c0, c"/dev/null".as_ptr()), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_set_output_dir(c0, c"/tmp".as_ptr()), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_fetch(c0, ptr::null(), 0), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_status(c0), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_state(c0), QUICHE_EV_ERR_NULL);
    assert!(quiche_ev_client_failure(c0).is_null());
    let mut stats = quiche_ev_stats { size: std::mem::size_of::<quiche_ev_stats>(), ..unsafe { std::mem::zeroed() } };
    assert_eq!(quiche_ev_client_stats(c0, &mut stats), QUICHE_EV_ERR_NULL);
    assert!(quiche_ev_client_quiche(c0).is_null());
    assert_eq!(quiche_ev_client_changed(c0), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_set_batched_io(c0, 1), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_set_gso(c0, 0), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_set_user_data(c0, n.cast()), QUICHE_EV_ERR_NULL);
    assert!(quiche_ev_client_user_data(c0).is_null());
    assert_eq!(quiche_ev_client_on_established(c0, None), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_on_closed(c0, None), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_on_response(c0, None, None, None), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_on_trailers(c0, None), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_request(c0, c"GET".as_ptr(), c"/".as_ptr(), ptr::null(), 0, ptr::null(), 0, n.cast()),
               QUICHE_EV_ERR_NULL as i64);
    assert_eq!(quiche_ev_client_resume(c0, 0), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_cancel(c0, 0), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_close(c0, 0, ptr::null()), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_migrate(c0, f.sock), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_set_session_file(c0, c"/tmp/x".as_ptr()), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_set_keylog_path(c0, c"/tmp/x".as_ptr()), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_set_qlog_dir(c0, c"/tmp".as_ptr()), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_extended_connect(c0, c"connect-udp".as_ptr(), c"/".as_ptr(), ptr::null(), 0, n.cast()),
               QUICHE_EV_ERR_NULL as i64);
    assert_eq!(quiche_ev_client_send_datagram(c0, b"x".as_ptr(), 1), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_datagram_max_len(c0), QUICHE_EV_ERR_NULL as isize);
    assert_eq!(quiche_ev_client_on_datagram(c0, None), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_on_datagram_writable(c0, None), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_on_request_datagram(c0, None), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_request_send_datagram(c0, 0, b"x".as_ptr(), 1), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_request_datagram_max_len(c0, 0), QUICHE_EV_ERR_NULL as isize);
    quiche_ev_client_recv_cb(f.lp, n.cast(), EV_READ);
    quiche_ev_client_free(c0);

    // A valid client (no server behind the address): connecting; its
    // status says "not complete" until a response arrives.
    let c = quiche_ev_client_new(f.lp, f.sock, host, f.addr(), f.addr.1, f.config, n.cast());
    assert!(!c.is_null());
    assert_eq!(quiche_ev_client_state(c), QUICHE_EV_CLIENT_CONNECTING);
    assert!(quiche_ev_client_failure(c).is_null());
    assert_eq!(quiche_ev_client_status(c), 1);
    assert_eq!(quiche_ev_client_set_output(c, ptr::null()), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_set_output(c, c"/no/such/dir/out".as_ptr()), QUICHE_EV_ERR_INVALID);
    let bad = [c"no-slash".as_ptr()];
    assert_eq!(quiche_ev_client_fetch(c, bad.as_ptr(), 1), QUICHE_EV_ERR_INVALID);
    let null_path = [ptr::null()];
    assert_eq!(quiche_ev_client_fetch(c, null_path.as_ptr(), 1), QUICHE_EV_ERR_INVALID);
    assert_eq!(quiche_ev_client_fetch(c, ptr::null(), 2), QUICHE_EV_ERR_NULL);
    // hq-interop: GET only; paths start with '/'; headers are checked.
    assert_eq!(quiche_ev_client_request(c, c"POST".as_ptr(), c"/".as_ptr(), ptr::null(), 0, ptr::null(), 0, n.cast()),
               QUICHE_EV_ERR_INVALID as i64);
    assert_eq!(quiche_ev_client_request(c, c"GET".as_ptr(), c"x".as_ptr(), ptr::null(), 0, ptr::null(), 0, n.cast()),
               QUICHE_EV_ERR_INVALID as i64);
    let upper = [quiche_ev_header { name: b"X".as_ptr(), name_len: 1, value: b"v".as_ptr(), value_len: 1 }];
    assert_eq!(quiche_ev_client_request(c, c"GET".as_ptr(), c"/".as_ptr(), upper.as_ptr(), 1, ptr::null(), 0, n.cast()),
               QUICHE_EV_ERR_INVALID as i64);
    assert_eq!(quiche_ev_client_request(c, c"GET".as_ptr(), c"/".as_ptr(), ptr::null(), 0, ptr::null(), 0, n.cast()), 0);
    assert_eq!(quiche_ev_client_request(c, c"GET".as_ptr(), c"/b".as_ptr(), ptr::null(), 0, ptr::null(), 0, n.cast()), 1);
    assert_eq!(quiche_ev_client_resume(c, 99), QUICHE_EV_ERR_INVALID);
    // hq-interop has no extended CONNECT; datagrams wait for the handshake.
    assert_eq!(quiche_ev_client_extended_connect(c, c"connect-udp".as_ptr(), c"/".as_ptr(), ptr::null(), 0, n.cast()),
               QUICHE_EV_ERR_INVALID as i64);
    assert_eq!(quiche_ev_client_send_datagram(c, b"x".as_ptr(), 1), QUICHE_EV_ERR_STATE);
    assert_eq!(quiche_ev_client_send_datagram(c, ptr::null(), 1), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_request_send_datagram(c, 99, b"x".as_ptr(), 1), QUICHE_EV_ERR_INVALID);
    assert_eq!(quiche_ev_client_migrate(c, -1), QUICHE_EV_ERR_INVALID);
    for bad in unusable_sockets() {
        assert_eq!(quiche_ev_client_migrate(c, bad.as_raw_fd()), QUICHE_EV_ERR_INVALID);
    }
    let mut w = ev_io::zeroed();
    quiche_ev_client_recv_cb(f.lp, &mut w, EV_READ);
    assert_eq!(quiche_ev_client_close(c, 0, c"bye".as_ptr()), 0);
    assert_eq!(quiche_ev_client_state(c), QUICHE_EV_CLIENT_CLOSING);
    assert_eq!(quiche_ev_client_request(c, c"GET".as_ptr(), c"/".as_ptr(), ptr::null(), 0, ptr::null(), 0, n.cast()),
               QUICHE_EV_ERR_STATE as i64);
    quiche_ev_client_free(c);
}

#[test]
fn every_exported_function_runs_inside_a_panic_boundary() {
    // Structural check over src/ffi: each `extern "C"` body starts with the
    // guard, or with one of the file's small wrappers whose own body
    // starts with it, so no panic can unwind into C. The guard itself is
    // tested in src/ffi/guard.rs.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/ffi");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let src = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        // The body's first statement, past comments.
        let first_statement = |after_sig: &str| {
            let body = &after_sig[after_sig.find('{').unwrap() + 1..];
            body.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with("//")).unwrap_or("").to_string()
        };
        // Wrappers: plain `fn name(` (private, or shared with the other
        // ffi files as `pub(super)`) whose body starts with `guard(` or
        // with another wrapper.
        let mut allowed = vec!["guard(".to_string()];
        let wrappers: Vec<usize> = ["\nfn ", "\npub(super) fn "].iter()
            .flat_map(|p| src.match_indices(p).map(|(at, m)| at + m.len())).collect();
        loop {
            let before = allowed.len();
            for &at in &wrappers {
                let rest = &src[at..];
                let call = format!("{}(", &rest[..rest.find(['(', '<']).unwrap()]);
                let first = first_statement(rest);
                if !allowed.contains(&call) && allowed.iter().any(|a| first.starts_with(a.as_str())) {
                    allowed.push(call);
                }
            }
            if allowed.len() == before {
                break;
            }
        }
        let mut rest = src.as_str();
        while let Some(at) = rest.find("#[no_mangle]") {
            rest = &rest[at + 12..];
            let first = first_statement(rest);
            assert!(allowed.iter().any(|a| first.starts_with(a.as_str())),
                    "an exported function in {dir} does not start with the panic guard: {}",
                    &rest[..rest.find('{').unwrap()]);
            seen += 1;
        }
    }
    assert!(seen >= 70, "found only {seen} exported functions");
}

#[test]
fn versions_are_cargo_tomls_and_the_linked_quiches() {
    assert_eq!(text(quiche_ev_version()), env!("CARGO_PKG_VERSION"));
    assert_eq!(text(quiche_ev_quiche_version()), text(unsafe { quiche_version() }));
    assert_eq!(text(quiche_ev_quiche_version()), "0.30.0");
}

#[test]
fn every_error_code_in_the_header_has_its_own_description() {
    // The codes as C sees them: every `#define QUICHE_EV_ERR_<NAME> <n>`.
    let header = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/quiche_ev.h")).unwrap();
    let codes: Vec<(String, libc::c_int)> = header.lines()
        .filter_map(|l| l.strip_prefix("#define QUICHE_EV_ERR_"))
        .map(|l| {
            let (name, value) = l.split_once(' ').unwrap();
            (name.to_string(), value.trim().parse().unwrap())
        })
        .collect();
    let names: Vec<&str> = codes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["NULL", "INVALID", "INTERNAL", "STATE", "CLOSED", "TRANSPORT", "UNSUPPORTED", "AGAIN",
                       "TOO_LARGE"]);

    let unknown = text(quiche_ev_strerror(-1000));
    assert_eq!(text(quiche_ev_strerror(0)), "success");
    let mut seen = vec![unknown.clone(), "success".to_string()];
    for (name, code) in &codes {
        assert!(*code < 0, "QUICHE_EV_ERR_{name} is not negative");
        let s = text(quiche_ev_strerror(*code));
        assert!(!seen.contains(&s), "QUICHE_EV_ERR_{name} has no description of its own: {s:?}");
        seen.push(s);
    }
    // Anything else: the same generic text, never NULL.
    for code in [1, 2, -10, 100, libc::c_int::MIN, libc::c_int::MAX] {
        assert_eq!(text(quiche_ev_strerror(code)), unknown, "code {code}");
    }
    assert_eq!(quiche_ev_strerror(-2), quiche_ev_strerror(-2), "static strings, not allocations");
}
