//! The server's and the client's lifecycles on the fake platform (fake
//! loop, in-memory network, scripted connections): every path that hands
//! pointers to libev or frees what libev points to — create, recv,
//! timeout, close, remove, shutdown, deferred free, the panic boundary —
//! with no C code involved, so `make miri` runs them under Miri.

use std::net::SocketAddr;
use std::time::Duration;

use crate::client::{Client, Phase};
use crate::dgram::fake::FakeNet;
use crate::evloop::fake::FakeLoop;
use crate::observe::Observe;
use crate::server::Server;
use crate::stateless;
use crate::testing::*;

type S = Server<FakePlatform>;
type C = Client<FakePlatform>;

const FD: i32 = 3;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct Fixture {
    s: *mut S,
    lp: FakeLoop,
    net: FakeNet,
    local: SocketAddr,
    seen: std::rc::Rc<std::cell::RefCell<Vec<&'static str>>>,
    _config: Box<()>,
}

fn server_with(on: Option<OnDeliver>) -> Fixture {
    let lp = FakeLoop::new();
    let net = FakeNet::default();
    let local = addr("127.0.0.1:4433");
    let mut config = Box::new(());
    let (rec, seen) = recorder();
    let shared = NullShared::new(on.unwrap_or(rec));
    // SAFETY: the config outlives the server (dropped with the fixture,
    // after the test destroyed the server).
    let s = unsafe { S::create(lp.clone(), net.clone(), FD, local, &mut *config, shared) };
    unsafe { S::state(s).settings.retry = false };
    Fixture { s, lp, net, local, seen, _config: config }
}

fn server() -> Fixture {
    server_with(None)
}

impl Fixture {
    fn deliver(&self, pkt: Vec<u8>, from: SocketAddr) {
        self.net.0.borrow_mut().inbox.push_back((pkt, from, self.local));
        // SAFETY: s is the live root.
        unsafe { S::recv_cb(self.s, FD) };
    }

    fn conns(&self) -> usize {
        unsafe { S::state(self.s).conn_count() }
    }

    fn sent(&self) -> Vec<(Vec<u8>, SocketAddr, SocketAddr)> {
        std::mem::take(&mut self.net.0.borrow_mut().sent)
    }

    /// Fires timers until none is active or `max` fired.
    fn run_timers(&self, max: usize) -> usize {
        let mut n = 0;
        while n < max && self.lp.fire_next_timer() {
            n += 1;
        }
        n
    }

    /// The server's CIDs for its only connection.
    fn cids(&self) -> Vec<[u8; 16]> {
        unsafe {
            let st = S::state(self.s);
            let ids = st_ids(st);
            S::cids_of(st, ids[0])
        }
    }
}

fn st_ids(st: &mut crate::server::ServerState<FakePlatform>) -> Vec<u64> {
    st.conn_ids()
}

#[test]
fn server_create_recv_timeout_close_remove() {
    let f = server();
    let peer = addr("127.0.0.1:5555");
    f.deliver(fake_initial(&[1; 8]), peer);
    assert_eq!(f.conns(), 1, "an Initial made a connection");
    let sent = f.sent();
    assert_eq!(sent.len(), 1, "the connection answered");
    assert_eq!(sent[0].2, peer);
    // The client's second Initial still carries its own DCID: it reaches
    // the same connection, which is now established and offers a spare
    // CID (mapped to it).
    f.deliver(fake_initial(&[1; 8]), peer);
    assert_eq!(f.conns(), 1);
    let cids = f.cids();
    assert_eq!(cids.len(), 2, "first CID plus one spare");
    // A short-header packet to the spare CID is routed to the connection.
    f.deliver(fake_short(&cids[1], 60), peer);
    assert_eq!(f.sent().len(), 2);
    // Idle: the timer fires until the connection times out, closes and is
    // removed; the host hears of it; its memory is freed.
    assert!(f.run_timers(100) > 0);
    assert_eq!(f.conns(), 0);
    assert_eq!(*f.seen.borrow(), ["established", "closed"]);
    assert_eq!(f.lp.active(), (0, 0), "no watcher left active");
    // A late packet for it gets a stateless reset, shorter than itself.
    f.deliver(fake_short(&cids[1], 60), peer);
    let sent = f.sent();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].0.len() < 60 && sent[0].0.len() >= stateless::MIN_RESET_LEN);
    // ... and a late duplicate Initial does not create a second connection.
    f.deliver(fake_initial(&[1; 8]), peer);
    assert_eq!(f.conns(), 0);
    unsafe { S::destroy(f.s) };
}

#[test]
fn server_close_unmaps_retired_cids_and_frees_with_live_connections() {
    let f = server();
    let peer = addr("127.0.0.1:5556");
    f.deliver(fake_initial(&[2; 8]), peer);
    f.deliver(fake_initial(&[2; 8]), peer);
    let cids = f.cids();
    assert_eq!(cids.len(), 2);
    // The peer retires the first CID: the next step unmaps it.
    unsafe {
        let st = S::state(f.s);
        let id = st.conn_ids()[0];
        let e = st.conn_ptr(id);
        crate::server::ServerConn::conn(e).retired.push_back(cids[0].to_vec());
    }
    f.deliver(fake_short(&cids[1], 60), peer);
    let now = f.cids();
    assert!(!now.contains(&cids[0]) && now.contains(&cids[1]), "retired one unmapped");
    assert_eq!(now.len(), 2, "and a new spare issued in its place");
    f.sent();
    // The retired CID now leads nowhere (a stateless reset answers it).
    f.deliver(fake_short(&cids[0], 60), peer);
    assert_eq!(f.sent().len(), 1);
    // Freed with a live connection: its timer is stopped and it is freed.
    assert_eq!(f.lp.active().0, 1);
    unsafe { S::destroy(f.s) };
    assert_eq!(f.lp.active(), (0, 0));
}

#[test]
fn server_shutdown_drains_then_reports_stopped() {
    let (rec, seen) = recorder();
    let f = server_with(Some(rec));
    unsafe { S::state(f.s).app.busy = true };
    let peer = addr("127.0.0.1:5557");
    f.deliver(fake_initial(&[3; 8]), peer);
    f.deliver(fake_initial(&[3; 8]), peer);
    let stopped = std::rc::Rc::new(std::cell::Cell::new(0));
    unsafe extern "C" fn on_stopped(_s: *mut crate::ffi::types::quiche_ev_server, status: i32, user: *mut libc::c_void) {
        let n = &*(user as *const std::cell::Cell<i32>);
        n.set(n.get() + 1 + status);
    }
    unsafe {
        S::state(f.s).on_stopped = Some((on_stopped, std::rc::Rc::as_ptr(&stopped) as *mut libc::c_void));
        S::shutdown(f.s, Duration::from_secs(5));
    }
    assert_eq!(f.conns(), 1, "a busy connection is left to finish");
    // A new client is refused while draining, with no state made.
    f.deliver(fake_initial(&[4; 8]), addr("127.0.0.1:5558"));
    assert_eq!(f.conns(), 1);
    // The drain time passes: it is closed, its closing period ends, the
    // server reports it stopped exactly once.
    f.run_timers(100);
    assert_eq!(f.conns(), 0);
    assert_eq!(stopped.get(), 1);
    assert_eq!(*seen.borrow(), ["established", "closed"]);
    // Even if the loop runs again, no datagram creates a connection.
    f.deliver(fake_initial(&[5; 8]), addr("127.0.0.1:5559"));
    assert_eq!(f.conns(), 0);
    assert!(unsafe { S::is_stopped(f.s) });
    unsafe { S::destroy(f.s) };
}

#[test]
fn the_host_may_free_the_server_from_its_callback() {
    let holder: std::rc::Rc<std::cell::Cell<*mut S>> = Default::default();
    let h = holder.clone();
    let on: OnDeliver = std::rc::Rc::new(std::cell::RefCell::new(Box::new(move |e: &'static str| {
        if e == "established" {
            // SAFETY: the server is live; the free is deferred until the
            // callback that delivered this event returns.
            unsafe { S::destroy(h.get()) };
        }
    })));
    let f = server_with(Some(on));
    holder.set(f.s);
    let peer = addr("127.0.0.1:5560");
    f.deliver(fake_initial(&[6; 8]), peer);
    f.deliver(fake_initial(&[6; 8]), peer);
    // The server is gone (Miri would report a leak or a use after free).
    assert_eq!(f.lp.active(), (0, 0));
}

#[test]
fn a_panic_stops_the_server_and_tells_the_host() {
    let f = server();
    let peer = addr("127.0.0.1:5561");
    f.deliver(fake_initial(&[7; 8]), peer);
    let status = std::rc::Rc::new(std::cell::Cell::new(0));
    unsafe extern "C" fn on_stopped(_s: *mut crate::ffi::types::quiche_ev_server, st: i32, user: *mut libc::c_void) {
        (*(user as *const std::cell::Cell<i32>)).set(st);
    }
    unsafe {
        let st = S::state(f.s);
        st.on_stopped = Some((on_stopped, std::rc::Rc::as_ptr(&status) as *mut libc::c_void));
        st.app.panic_on_input = true;
    }
    f.deliver(fake_initial(&[7; 8]), peer);
    assert!(unsafe { S::is_failed(f.s) });
    assert_eq!(status.get(), -3, "the host heard of the internal error");
    assert_eq!(f.lp.active(), (0, 0), "every watcher of ours is stopped");
    // Further datagrams do nothing.
    f.deliver(fake_initial(&[8; 8]), peer);
    unsafe { S::destroy(f.s) };
}

/// A host whose every event makes another (as a writable callback that
/// writes nothing would): each dispatch stops at the cap and the rest
/// waits for the next loop iteration, so the loop's other watchers run.
const ENDLESS: usize = crate::reentry::MAX_EVENTS_PER_DISPATCH + 10;

#[test]
fn a_host_that_answers_every_event_with_another_does_not_starve_the_loop() {
    let holder: std::rc::Rc<std::cell::Cell<*mut S>> = Default::default();
    let count: std::rc::Rc<std::cell::Cell<usize>> = Default::default();
    let (h, n) = (holder.clone(), count.clone());
    let on: OnDeliver = std::rc::Rc::new(std::cell::RefCell::new(Box::new(move |_e: &'static str| {
        n.set(n.get() + 1);
        if n.get() < ENDLESS {
            // SAFETY: the server is live; no borrow of its state is held
            // while an event is delivered.
            unsafe { S::state(h.get()).app.events.push_back("again") };
        }
    })));
    let f = server_with(Some(on));
    holder.set(f.s);
    let peer = addr("127.0.0.1:5562");
    f.deliver(fake_initial(&[9; 8]), peer);
    f.deliver(fake_initial(&[9; 8]), peer);
    assert_eq!(count.get(), crate::reentry::MAX_EVENTS_PER_DISPATCH, "one dispatch, then back to the loop");
    assert!(f.lp.next_due().unwrap() - f.lp.now() < 1e-3, "the rest is due on the next iteration");
    assert!(f.lp.fire_next_timer());
    assert_eq!(count.get(), ENDLESS);
    unsafe { S::destroy(f.s) };
}

#[test]
fn a_client_host_that_answers_every_event_with_another_does_not_starve_the_loop() {
    let holder: std::rc::Rc<std::cell::Cell<*mut C>> = Default::default();
    let count: std::rc::Rc<std::cell::Cell<usize>> = Default::default();
    let (h, n) = (holder.clone(), count.clone());
    let on: OnDeliver = std::rc::Rc::new(std::cell::RefCell::new(Box::new(move |_e: &'static str| {
        n.set(n.get() + 1);
        if n.get() < ENDLESS {
            // SAFETY: as above, for the client.
            unsafe { C::state(h.get()).app.events.push_back("again") };
        }
    })));
    let (c, lp, net, _seen) = client();
    unsafe { C::state(c).app.on_deliver = on };
    holder.set(c);
    assert!(lp.fire_next_timer());
    net.0.borrow_mut().sent.clear();
    for _ in 0..2 {
        net.0.borrow_mut().inbox.push_back((vec![0u8; 100], addr("127.0.0.1:4433"), addr("127.0.0.1:6000")));
        unsafe { C::recv_cb(c, FD) };
    }
    assert_eq!(count.get(), crate::reentry::MAX_EVENTS_PER_DISPATCH);
    assert!(lp.next_due().unwrap() - lp.now() < 1e-3, "the rest is due on the next iteration");
    assert!(lp.fire_next_timer());
    assert_eq!(count.get(), ENDLESS);
    unsafe { C::destroy(c) };
}

fn client() -> (*mut C, FakeLoop, FakeNet, std::rc::Rc<std::cell::RefCell<Vec<&'static str>>>) {
    let lp = FakeLoop::new();
    let net = FakeNet::default();
    let (rec, seen) = recorder();
    let mut config = ();
    let c = unsafe {
        C::create(lp.clone(), net.clone(), FD, addr("127.0.0.1:6000"), addr("127.0.0.1:4433"), None, &mut config,
                  &Observe::default(), NullClientApp::new(rec))
    }
    .unwrap();
    (c, lp, net, seen)
}

#[test]
fn client_connect_recv_close_and_report() {
    let (c, lp, net, seen) = client();
    let closed = std::rc::Rc::new(std::cell::Cell::new(-1));
    unsafe extern "C" fn on_closed(_c: *mut crate::ffi::types::quiche_ev_client, phase: i32, user: *mut libc::c_void) {
        (*(user as *const std::cell::Cell<i32>)).set(phase);
    }
    unsafe { C::state(c).on_closed = Some((on_closed, std::rc::Rc::as_ptr(&closed) as *mut libc::c_void)) };
    // The first flight leaves from the loop, not from create.
    assert!(net.0.borrow().sent.is_empty());
    assert!(lp.fire_next_timer());
    assert_eq!(net.0.borrow_mut().sent.drain(..).count(), 1);
    for _ in 0..2 {
        net.0.borrow_mut().inbox.push_back((vec![0u8; 100], addr("127.0.0.1:4433"), addr("127.0.0.1:6000")));
        unsafe { C::recv_cb(c, FD) };
    }
    assert_eq!(unsafe { C::phase(c) }, Phase::Established);
    // The application is done: the client closes (it never stops the
    // host's loop); its closing period ends on the timer.
    unsafe {
        let st = C::state(c);
        st.close_when_done = true;
        st.app.done = true;
        C::changed(c);
    }
    let mut n = 0;
    while lp.fire_next_timer() && n < 100 {
        n += 1;
    }
    assert_eq!(unsafe { C::phase(c) }, Phase::ClosedOk);
    assert_eq!(closed.get(), Phase::ClosedOk as i32);
    assert_eq!(*seen.borrow(), ["established", "closed"]);
    assert_eq!(lp.active(), (0, 0));
    unsafe { C::destroy(c) };
}

#[test]
fn client_idle_timeout_is_a_failure() {
    let (c, lp, _net, _seen) = client();
    let mut n = 0;
    while lp.fire_next_timer() && n < 100 {
        n += 1;
    }
    assert_eq!(unsafe { C::phase(c) }, Phase::Failed);
    assert!(unsafe { C::failure(c) }.unwrap().contains("idle timeout"));
    unsafe { C::destroy(c) };
}
