//! The host's side of the C API in tests: one set of `extern "C"`
//! callbacks that record every call (in order, by name) and hand it to
//! the test's [`Script`], which decides what the host does there (answer,
//! write, pause, reset, free ...). Recorded calls on a handle after the
//! script freed it are the bug these tests look for.

use std::cell::RefCell;
use std::collections::HashSet;

use libc::{c_int, c_void};

use crate::ffi::client::*;
use crate::ffi::request::*;
use crate::ffi::server::*;
use crate::ffi::types::*;

/// The body of `/p/LEN/SEED`: LEN bytes from SEED.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    (0..len).map(|i| ((i as u64).wrapping_mul(31).wrapping_add(seed) % 251) as u8).collect()
}

/// `(len, seed)` of a `/p/LEN/SEED` path.
pub fn parse_path(path: &str) -> Option<(usize, u64)> {
    let path = path.split('?').next()?;
    let mut it = path.strip_prefix("/p/")?.split('/');
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// The path of a request handle, as a string.
pub fn path_of(r: *mut quiche_ev_request) -> String {
    let p = quiche_ev_request_path(r);
    // SAFETY: a live request's path is a C string.
    unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Answers `/p/LEN/SEED` with its pattern (and anything else with 404).
pub fn answer(r: *mut quiche_ev_request) -> c_int {
    match parse_path(&path_of(r)) {
        Some((len, seed)) => {
            let body = pattern(len, seed);
            quiche_ev_respond_bytes(r, 200, std::ptr::null(), 0, body.as_ptr(), body.len())
        }
        None => quiche_ev_respond(r, 404, std::ptr::null(), 0, 1),
    }
}

/// What the host does at each callback. The defaults answer every request
/// with [`answer`] and take every body whole.
#[allow(unused_variables)]
pub trait Script {
    fn request(&mut self, r: *mut quiche_ev_request) {
        answer(r);
    }
    fn body(&mut self, r: *mut quiche_ev_request, data: &[u8], fin: bool) -> usize {
        data.len()
    }
    fn writable(&mut self, r: *mut quiche_ev_request) {}
    fn request_closed(&mut self, r: *mut quiche_ev_request, outcome: c_int, code: u64) {}
    fn conn_established(&mut self, c: *mut quiche_ev_conn) {}
    fn conn_closed(&mut self, c: *mut quiche_ev_conn, stats: &quiche_ev_stats) {}
    fn stopped(&mut self, s: *mut quiche_ev_server, status: c_int) {}
    fn client_established(&mut self, c: *mut quiche_ev_client) {}
    fn headers(&mut self, c: *mut quiche_ev_client, id: i64, status: c_int) {}
    fn response_body(&mut self, c: *mut quiche_ev_client, id: i64, data: &[u8]) -> usize {
        data.len()
    }
    fn trailers(&mut self, c: *mut quiche_ev_client, id: i64, n: usize) {}
    fn done(&mut self, c: *mut quiche_ev_client, id: i64, outcome: c_int, code: u64) {}
    fn closed(&mut self, c: *mut quiche_ev_client, state: c_int) {}
    fn request_writable(&mut self, c: *mut quiche_ev_client, id: i64) {}
    fn conn_datagram(&mut self, c: *mut quiche_ev_conn, data: &[u8]) {}
    fn request_datagram(&mut self, r: *mut quiche_ev_request, data: &[u8]) {}
    fn datagram_writable(&mut self, c: *mut quiche_ev_conn) {}
    fn client_datagram(&mut self, c: *mut quiche_ev_client, data: &[u8]) {}
    fn response_datagram(&mut self, c: *mut quiche_ev_client, id: i64, data: &[u8]) {}
    fn client_datagram_writable(&mut self, c: *mut quiche_ev_client) {}
}

/// A host that only takes the defaults.
pub struct Defaults;

impl Script for Defaults {}

struct Host {
    script: Option<Box<dyn Script>>,
    calls: Vec<String>,
    /// Handles the script freed: no call may name them afterwards.
    freed: HashSet<usize>,
    /// Requests whose closed callback ran: no call may name them again.
    closed: HashSet<usize>,
    violations: Vec<String>,
}

thread_local! {
    static HOST: RefCell<Host> = RefCell::new(Host { script: None, calls: Vec::new(), freed: HashSet::new(),
                                                     closed: HashSet::new(), violations: Vec::new() });
}

/// Installs `s` as this thread's host.
pub fn set_script(s: impl Script + 'static) {
    HOST.with(|h| {
        let mut h = h.borrow_mut();
        h.script = Some(Box::new(s));
        h.calls.clear();
        h.freed.clear();
        h.closed.clear();
        h.violations.clear();
    });
}

/// The calls so far, by name.
pub fn calls() -> Vec<String> {
    HOST.with(|h| h.borrow().calls.clone())
}

/// How many recorded calls start with `prefix`.
pub fn count(prefix: &str) -> usize {
    calls().iter().filter(|c| c.starts_with(prefix)).count()
}

/// Calls on freed handles or closed requests (must be none).
pub fn violations() -> Vec<String> {
    HOST.with(|h| h.borrow().violations.clone())
}

/// Frees a server and remembers it (any call naming it later is a
/// violation).
pub fn free_server(s: *mut quiche_ev_server) {
    HOST.with(|h| h.borrow_mut().freed.insert(s as usize));
    quiche_ev_server_free(s);
}

pub fn free_client(c: *mut quiche_ev_client) {
    HOST.with(|h| h.borrow_mut().freed.insert(c as usize));
    quiche_ev_client_free(c);
}

/// Records the call `what` on `handle` (and `request`, if any) and runs
/// the script's part. The script runs with the host borrowed: it may call
/// the C API, which never calls back from inside a call.
fn call<R: Copy>(what: String, handle: *const c_void, request: Option<*mut quiche_ev_request>,
           f: impl FnOnce(&mut dyn Script) -> R, default: R) -> R {
    HOST.with(|h| {
        let mut h = h.borrow_mut();
        if h.freed.contains(&(handle as usize)) {
            h.violations.push(format!("{what} after its handle was freed"));
        }
        if let Some(r) = request {
            if h.closed.contains(&(r as usize)) {
                h.violations.push(format!("{what} after the request's closed callback"));
            }
        }
        h.calls.push(what);
        let mut script = h.script.take();
        drop(h);
        // A failed assertion in the script must not unwind into the library.
        let r = match script.as_mut() {
            Some(s) => match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut **s))) {
                Ok(r) => r,
                Err(p) => {
                    let msg = p.downcast_ref::<String>().cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                    HOST.with(|h| h.borrow_mut().violations.push(format!("the script failed: {msg}")));
                    default
                }
            },
            None => default,
        };
        HOST.with(|h| h.borrow_mut().script = script);
        r
    })
}

fn server_of(r: *mut quiche_ev_request) -> *const c_void {
    let conn = quiche_ev_request_conn(r);
    // SAFETY: a live request's connection is live; its server is the
    // first field reachable through the C API's own cast.
    unsafe { crate::server::ServerConn::server(quiche_ev_conn::get(conn).expect("a connection")).cast() }
}

unsafe extern "C" fn on_request(r: *mut quiche_ev_request, _user: *mut c_void) {
    // A new request may live where a closed one was.
    HOST.with(|h| h.borrow_mut().closed.remove(&(r as usize)));
    call("request".into(), server_of(r), Some(r), |s| s.request(r), ())
}

unsafe extern "C" fn on_body(r: *mut quiche_ev_request, data: *const u8, len: usize, fin: c_int, _u: *mut c_void)
                             -> usize {
    let d = std::slice::from_raw_parts(data, len);
    call(format!("body {len}{}", if fin != 0 { " fin" } else { "" }), server_of(r), Some(r),
         |s| s.body(r, d, fin != 0), len)
}

unsafe extern "C" fn on_writable(r: *mut quiche_ev_request, _user: *mut c_void) {
    call("writable".into(), server_of(r), Some(r), |s| s.writable(r), ())
}

unsafe extern "C" fn on_request_closed(r: *mut quiche_ev_request, outcome: c_int, code: u64, _u: *mut c_void) {
    call(format!("request closed {outcome}"), server_of(r), Some(r), |s| s.request_closed(r, outcome, code), ());
    HOST.with(|h| h.borrow_mut().closed.insert(r as usize));
}

unsafe extern "C" fn on_conn_established(c: *mut quiche_ev_conn, _user: *mut c_void) {
    let server = crate::server::ServerConn::server(quiche_ev_conn::get(c).expect("a connection"));
    call("conn established".into(), server.cast(), None, |s| s.conn_established(c), ())
}

unsafe extern "C" fn on_conn_closed(c: *mut quiche_ev_conn, stats: *const quiche_ev_stats, _user: *mut c_void) {
    let server = crate::server::ServerConn::server(quiche_ev_conn::get(c).expect("a connection"));
    call("conn closed".into(), server.cast(), None, |s| s.conn_closed(c, &*stats), ())
}

unsafe extern "C" fn on_stopped(srv: *mut quiche_ev_server, status: c_int, _user: *mut c_void) {
    call(format!("stopped {status}"), srv.cast(), None, |s| s.stopped(srv, status), ())
}

unsafe extern "C" fn on_client_established(c: *mut quiche_ev_client, _user: *mut c_void) {
    call("established".into(), c.cast(), None, |s| s.client_established(c), ())
}

unsafe extern "C" fn on_headers(c: *mut quiche_ev_client, id: i64, status: c_int, _h: *const quiche_ev_header,
                                _n: usize, _user: *mut c_void) {
    call(format!("headers {id} {status}"), c.cast(), None, |s| s.headers(c, id, status), ())
}

unsafe extern "C" fn on_response_body(c: *mut quiche_ev_client, id: i64, data: *const u8, len: usize,
                                      _user: *mut c_void) -> usize {
    let d = std::slice::from_raw_parts(data, len);
    call(format!("response body {id}"), c.cast(), None, |s| s.response_body(c, id, d), len)
}

unsafe extern "C" fn on_trailers(c: *mut quiche_ev_client, id: i64, _h: *const quiche_ev_header, n: usize,
                                 _user: *mut c_void) {
    call(format!("trailers {id}"), c.cast(), None, |s| s.trailers(c, id, n), ())
}

unsafe extern "C" fn on_done(c: *mut quiche_ev_client, id: i64, outcome: c_int, code: u64, _user: *mut c_void) {
    call(format!("done {id} {outcome}"), c.cast(), None, |s| s.done(c, id, outcome, code), ())
}

unsafe extern "C" fn on_closed(c: *mut quiche_ev_client, state: c_int, _user: *mut c_void) {
    call(format!("closed {state}"), c.cast(), None, |s| s.closed(c, state), ())
}

unsafe extern "C" fn on_request_writable(c: *mut quiche_ev_client, id: i64, _user: *mut c_void) {
    call(format!("request writable {id}"), c.cast(), None, |s| s.request_writable(c, id), ())
}

unsafe extern "C" fn on_conn_datagram(c: *mut quiche_ev_conn, data: *const u8, len: usize, _user: *mut c_void) {
    let server = crate::server::ServerConn::server(quiche_ev_conn::get(c).expect("a connection"));
    let d = std::slice::from_raw_parts(data, len);
    call(format!("conn datagram {len}"), server.cast(), None, |s| s.conn_datagram(c, d), ())
}

unsafe extern "C" fn on_request_datagram(r: *mut quiche_ev_request, data: *const u8, len: usize, _user: *mut c_void) {
    let d = std::slice::from_raw_parts(data, len);
    call(format!("request datagram {len}"), server_of(r), Some(r), |s| s.request_datagram(r, d), ())
}

unsafe extern "C" fn on_datagram_writable(c: *mut quiche_ev_conn, _user: *mut c_void) {
    let server = crate::server::ServerConn::server(quiche_ev_conn::get(c).expect("a connection"));
    call("datagram writable".into(), server.cast(), None, |s| s.datagram_writable(c), ())
}

unsafe extern "C" fn on_client_datagram(c: *mut quiche_ev_client, data: *const u8, len: usize, _user: *mut c_void) {
    let d = std::slice::from_raw_parts(data, len);
    call(format!("client datagram {len}"), c.cast(), None, |s| s.client_datagram(c, d), ())
}

unsafe extern "C" fn on_response_datagram(c: *mut quiche_ev_client, id: i64, data: *const u8, len: usize,
                                          _user: *mut c_void) {
    let d = std::slice::from_raw_parts(data, len);
    call(format!("response datagram {id} {len}"), c.cast(), None, |s| s.response_datagram(c, id, d), ())
}

unsafe extern "C" fn on_client_datagram_writable(c: *mut quiche_ev_client, _user: *mut c_void) {
    call("client datagram writable".into(), c.cast(), None, |s| s.client_datagram_writable(c), ())
}

/// Every server datagram callback goes to the script too.
pub fn hook_server_datagrams(s: *mut quiche_ev_server) {
    use crate::ffi::datagram::*;
    assert_eq!(quiche_ev_server_on_datagram(s, Some(on_conn_datagram)), 0);
    assert_eq!(quiche_ev_server_on_request_datagram(s, Some(on_request_datagram)), 0);
    assert_eq!(quiche_ev_server_on_datagram_writable(s, Some(on_datagram_writable)), 0);
}

/// Every client datagram callback goes to the script too.
pub fn hook_client_datagrams(c: *mut quiche_ev_client) {
    use crate::ffi::datagram::*;
    assert_eq!(quiche_ev_client_on_datagram(c, Some(on_client_datagram)), 0);
    assert_eq!(quiche_ev_client_on_request_datagram(c, Some(on_response_datagram)), 0);
    assert_eq!(quiche_ev_client_on_datagram_writable(c, Some(on_client_datagram_writable)), 0);
}

/// Every server callback goes to the script.
pub fn hook_server(s: *mut quiche_ev_server) {
    assert_eq!(quiche_ev_server_on_request(s, Some(on_request)), 0);
    assert_eq!(quiche_ev_server_on_request_body(s, Some(on_body)), 0);
    assert_eq!(quiche_ev_server_on_request_writable(s, Some(on_writable)), 0);
    assert_eq!(quiche_ev_server_on_request_closed(s, Some(on_request_closed)), 0);
    assert_eq!(quiche_ev_server_on_conn(s, Some(on_conn_established), Some(on_conn_closed)), 0);
    assert_eq!(quiche_ev_server_on_stopped(s, Some(on_stopped)), 0);
}

/// Every client callback goes to the script.
pub fn hook_client(c: *mut quiche_ev_client) {
    assert_eq!(quiche_ev_client_on_established(c, Some(on_client_established)), 0);
    assert_eq!(quiche_ev_client_on_closed(c, Some(on_closed)), 0);
    assert_eq!(quiche_ev_client_on_response(c, Some(on_headers), Some(on_response_body), Some(on_done)), 0);
    assert_eq!(quiche_ev_client_on_trailers(c, Some(on_trailers)), 0);
    assert_eq!(quiche_ev_client_on_request_writable(c, Some(on_request_writable)), 0);
}

/// A GET for `path` on `c`.
pub fn get(c: *mut quiche_ev_client, path: &str) -> i64 {
    let p = std::ffi::CString::new(path).unwrap();
    quiche_ev_client_request(c, c"GET".as_ptr(), p.as_ptr(), std::ptr::null(), 0, std::ptr::null(), 0,
                             std::ptr::null_mut())
}
