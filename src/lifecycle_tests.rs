//! The server's and the client's lifecycles on a fake platform (fake
//! loop, in-memory network, scripted connections, applications that only
//! name their events): every path that hands pointers to libev or frees
//! what libev points to — create, recv, timeout, close, remove, shutdown,
//! deferred free, the panic boundary, the end of every watcher — with no
//! C code involved, so `make miri` runs them under Miri.

use std::net::SocketAddr;
use std::time::Duration;

use libev_sys::EV_READ;

use crate::client::{Client, ClientCore, Phase};
use crate::dgram::DatagramIo;
use crate::handle::Handle;
use crate::observe::Observe;
use crate::server::{Server, ServerCore};
use crate::stateless;
use crate::testing::*;

type S = Server<ScriptedPlatform, NullServerApp>;
type C = Client<ScriptedPlatform, NullClientApp>;
type SC = ServerCore<ScriptedPlatform, NullServerApp>;
type CC = ClientCore<ScriptedPlatform, NullClientApp>;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct Fixture {
    s: *mut S,
    lp: FakeLoop,
    net: Net,
    fd: i32,
    local: SocketAddr,
    seen: std::rc::Rc<std::cell::RefCell<Vec<&'static str>>>,
    _config: Box<()>,
}

fn server_with(on: Option<OnDeliver>) -> Fixture {
    let lp = FakeLoop::new();
    let net = Net::new();
    net.make_current();
    let local = addr("127.0.0.1:4433");
    let fd = net.socket(Some(local));
    let mut config = Box::new(());
    let (rec, seen) = recorder();
    let shared = NullShared::new(on.unwrap_or(rec));
    // SAFETY: the config outlives the server (dropped with the fixture,
    // after the test destroyed the server).
    let s = unsafe { SC::create(lp.clone(), FakeIo::open(fd, local), fd, local, &mut *config, shared) };
    unsafe {
        SC::state(s).settings.retry = false;
        // The server watches its socket itself (no watcher of the test's).
        Handle::start(s);
    }
    Fixture { s, lp, net, fd, local, seen, _config: config }
}

fn server() -> Fixture {
    server_with(None)
}

impl Fixture {
    fn deliver(&self, pkt: Vec<u8>, from: SocketAddr) {
        self.net.deliver(pkt, from, self.local);
        self.lp.fire_io(self.fd, EV_READ);
    }

    fn conns(&self) -> usize {
        unsafe { SC::state(self.s).conn_count() }
    }

    fn sent(&self) -> Vec<(Vec<u8>, SocketAddr, SocketAddr)> {
        self.net.take_sent()
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
    fn cids(&self) -> Vec<crate::table::Cid> {
        unsafe {
            let ids = SC::state(self.s).conn_ids();
            SC::cids_of(self.s, ids[0])
        }
    }
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
    assert_eq!(f.lp.active(), (0, 1), "no watcher left active but the server's socket watcher");
    // A late packet for it gets a stateless reset, shorter than itself.
    f.deliver(fake_short(&cids[1], 60), peer);
    let sent = f.sent();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].0.len() < 60 && sent[0].0.len() >= stateless::MIN_RESET_LEN);
    // ... and a late duplicate Initial does not create a second connection.
    f.deliver(fake_initial(&[1; 8]), peer);
    assert_eq!(f.conns(), 0);
    unsafe { Handle::destroy(f.s) };
}

/// A ClientHello of two datagrams, read in one batch, gets its two Retries
/// in one send call (a GSO batch: still two datagrams); another client's
/// Initial in the same batch gets its own call.
#[cfg(not(miri))] // quiche::retry seals its integrity tag with BoringSSL
#[test]
fn a_batchs_retries_to_one_client_leave_in_one_send_call() {
    let f = server();
    unsafe { SC::state(f.s).settings.retry = true };
    let (a, b) = (addr("127.0.0.1:5570"), addr("127.0.0.1:5571"));
    let calls = f.net.0.borrow().send_calls;
    f.net.deliver(fake_initial(&[8; 8]), a, f.local);
    f.net.deliver(fake_initial(&[8; 8]), a, f.local);
    f.net.deliver(fake_initial(&[9; 8]), b, f.local);
    f.lp.fire_io(f.fd, EV_READ);
    let mut sent = f.sent();
    assert_eq!(sent.iter().map(|s| s.2).collect::<Vec<_>>(), [a, a, b]);
    for (pkt, _, _) in &mut sent {
        let hdr = quiche::Header::from_slice(pkt, 16).expect("a long header");
        assert_eq!(hdr.ty, quiche::Type::Retry);
    }
    assert_eq!(f.net.0.borrow().send_calls - calls, 2, "a's two Retries in one call, b's in another");
    assert_eq!(f.conns(), 0, "a Retry keeps no state");
    unsafe { Handle::destroy(f.s) };
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
        let st = SC::state(f.s);
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
    // Freed with a live connection: its timer is stopped and it is freed,
    // and the server's socket watcher is stopped.
    assert_eq!(f.lp.active(), (1, 1));
    unsafe { Handle::destroy(f.s) };
    assert_eq!(f.lp.active(), (0, 0));
}

#[test]
fn server_shutdown_drains_then_reports_stopped() {
    let f = server();
    unsafe { SC::state(f.s).app.busy = true };
    let peer = addr("127.0.0.1:5557");
    f.deliver(fake_initial(&[3; 8]), peer);
    f.deliver(fake_initial(&[3; 8]), peer);
    let before = f.seen.borrow().len();
    unsafe { SC::shutdown(f.s, Duration::from_secs(5)) };
    assert_eq!(f.seen.borrow().len(), before, "nothing is delivered from inside the host's call");
    assert_eq!(f.conns(), 1, "a busy connection is left to finish");
    // A new client is refused while draining, with no state made.
    f.deliver(fake_initial(&[4; 8]), addr("127.0.0.1:5558"));
    assert_eq!(f.conns(), 1);
    // The drain time passes: it is closed, its closing period ends, the
    // server reports it stopped exactly once.
    f.run_timers(100);
    assert_eq!(f.conns(), 0);
    assert_eq!(*f.seen.borrow(), ["established", "closed", "stopped"], "stopped exactly once");
    assert_eq!(f.lp.active(), (0, 0), "a stopped server leaves no watcher behind");
    // Even if the loop runs again, no datagram creates a connection.
    f.net.deliver(fake_initial(&[5; 8]), addr("127.0.0.1:5559"), f.local);
    assert_eq!(f.conns(), 0);
    assert!(unsafe { SC::state(f.s).is_stopped() });
    unsafe { Handle::destroy(f.s) };
}

#[test]
fn the_host_may_free_the_server_from_its_callback() {
    let holder: std::rc::Rc<std::cell::Cell<*mut S>> = Default::default();
    let h = holder.clone();
    let on: OnDeliver = std::rc::Rc::new(std::cell::RefCell::new(Box::new(move |e: &'static str| {
        if e == "established" {
            // SAFETY: the server is live; the free is deferred until the
            // callback that delivered this event returns.
            unsafe { Handle::destroy(h.get()) };
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
    unsafe { SC::state(f.s).app.panic_on_input = true };
    f.deliver(fake_initial(&[7; 8]), peer);
    assert!(unsafe { Handle::is_failed(f.s) });
    assert_eq!(f.seen.borrow().last(), Some(&"stopped: failed"), "the host heard of the internal error");
    assert_eq!(f.lp.active(), (0, 0), "every watcher is stopped");
    // Further datagrams do nothing.
    f.net.deliver(fake_initial(&[8; 8]), peer, f.local);
    f.lp.fire_io(f.fd, EV_READ);
    unsafe { Handle::destroy(f.s) };
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
            unsafe { SC::state(h.get()).app.events.push_back("again") };
        }
    })));
    let f = server_with(Some(on));
    holder.set(f.s);
    let peer = addr("127.0.0.1:5562");
    f.deliver(fake_initial(&[9; 8]), peer);
    f.deliver(fake_initial(&[9; 8]), peer);
    assert_eq!(count.get(), crate::reentry::MAX_EVENTS_PER_DISPATCH, "one dispatch, then back to the loop");
    assert!(f.lp.next_due().unwrap() - f.lp.seconds() < 1e-3, "the rest is due on the next iteration");
    assert!(f.lp.fire_next_timer());
    assert_eq!(count.get(), ENDLESS);
    unsafe { Handle::destroy(f.s) };
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
            unsafe { CC::state(h.get()).app.events.push_back("again") };
        }
    })));
    let (c, lp, net, _seen) = client();
    unsafe { CC::state(c).app.on_deliver = on };
    holder.set(c);
    assert!(lp.fire_next_timer());
    net.take_sent();
    for _ in 0..2 {
        net.deliver(vec![0u8; 100], addr("127.0.0.1:4433"), addr("127.0.0.1:6000"));
        lp.fire_io(CLIENT_FD.with(|f| f.get()), EV_READ);
    }
    assert_eq!(count.get(), crate::reentry::MAX_EVENTS_PER_DISPATCH);
    assert!(lp.next_due().unwrap() - lp.seconds() < 1e-3, "the rest is due on the next iteration");
    assert!(lp.fire_next_timer());
    assert_eq!(count.get(), ENDLESS);
    unsafe { Handle::destroy(c) };
}

thread_local! {
    static CLIENT_FD: std::cell::Cell<i32> = const { std::cell::Cell::new(-1) };
}

fn client() -> (*mut C, FakeLoop, Net, std::rc::Rc<std::cell::RefCell<Vec<&'static str>>>) {
    let lp = FakeLoop::new();
    let net = Net::new();
    net.make_current();
    let local = addr("127.0.0.1:6000");
    let fd = net.socket(Some(local));
    CLIENT_FD.with(|f| f.set(fd));
    let (rec, seen) = recorder();
    let mut config = ();
    let c = unsafe {
        CC::create(lp.clone(), FakeIo::open(fd, local), local, addr("127.0.0.1:4433"), None, &mut config,
                   Observe::default(), NullClientApp::new(rec))
    }
    .unwrap();
    unsafe { Handle::start(c) };
    (c, lp, net, seen)
}

#[test]
fn client_connect_recv_close_and_report() {
    let (c, lp, net, seen) = client();
    // The first flight leaves from the loop, not from create.
    assert!(net.take_sent().is_empty());
    assert!(lp.fire_next_timer());
    assert_eq!(net.take_sent().len(), 1);
    for _ in 0..2 {
        net.deliver(vec![0u8; 100], addr("127.0.0.1:4433"), addr("127.0.0.1:6000"));
        lp.fire_io(CLIENT_FD.with(|f| f.get()), EV_READ);
    }
    assert_eq!(unsafe { CC::phase(c) }, Phase::Established);
    // The application is done: the client closes (it never stops the
    // host's loop); its closing period ends on the timer.
    unsafe {
        let st = CC::state(c);
        st.close_when_done = true;
        st.app.done = true;
        CC::changed(c);
    }
    assert_eq!(lp.run(1000), Ran::Idle, "the loop ends by itself");
    assert_eq!(unsafe { CC::phase(c) }, Phase::ClosedOk);
    assert_eq!(*seen.borrow(), ["established", "closed"]);
    unsafe { Handle::destroy(c) };
}

#[test]
fn client_idle_timeout_is_a_failure() {
    let (c, lp, _net, seen) = client();
    assert_eq!(lp.run(1000), Ran::Idle);
    assert_eq!(unsafe { CC::phase(c) }, Phase::Failed);
    let why = unsafe { std::ffi::CStr::from_ptr(CC::failure_cstr(c)) }.to_string_lossy().into_owned();
    assert!(why.contains("idle timeout"), "{why}");
    assert_eq!(*seen.borrow(), ["closed: failed"]);
    unsafe { Handle::destroy(c) };
}

/// Stateless resets with shared, rotating keys: a CID this server never
/// issued (another worker's, another host's) is answered under the reset
/// key, and during a rotation under both keys, each reset ending in the
/// token that key gives the CID; a CID naming another live worker of the
/// group is that worker's and is dropped, never reset; once that worker
/// is gone, it is reset.
#[test]
fn unknown_cids_are_reset_under_every_key_but_never_those_of_a_live_sibling_worker() {
    use crate::cid::CidSource;
    use crate::secrets::KeyPair;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    let f = server();
    let (cur, prev) = ([5u8; 32], [6u8; 32]);
    let live = Arc::new(AtomicU32::new(0b11));
    unsafe {
        let st = SC::state(f.s);
        st.set_reset_keys(KeyPair { current: cur, previous: Some(prev) });
        st.set_cid_source(CidSource::random_for_worker(0).unwrap());
        st.set_peers(crate::server::Peers { index: 0, live: live.clone() });
    }
    let peer = addr("127.0.0.1:5560");
    // Worker 1's CID, worker 1 alive: not ours to answer.
    let mut theirs = [0x21u8; 16];
    theirs[0] = 0x41; // low five bits: worker 1
    f.deliver(fake_short(&theirs, 60), peer);
    assert!(f.sent().is_empty());
    assert_eq!(unsafe { SC::state(f.s).counters.dropped_misrouted }, 1);
    // Worker 1 died: its clients are told at once, under both keys.
    live.store(0b01, Ordering::Release);
    f.deliver(fake_short(&theirs, 60), peer);
    let sent = f.sent();
    assert_eq!(sent.len(), 2, "one reset per key");
    for (d, k) in sent.iter().zip([cur, prev]) {
        assert_eq!(d.0[d.0.len() - 16..], stateless::reset_token(&k, &theirs).to_be_bytes(), "ends in its token");
        assert!(d.0.len() < 60 && d.2 == peer);
    }
    unsafe { Handle::destroy(f.s) };
}
