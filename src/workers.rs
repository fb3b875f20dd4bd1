//! Workers: one server per thread, every thread with its own libev loop
//! (`ev_loop_new`) and its own `SO_REUSEPORT` socket on the group's
//! address, the kernel's steering program on the socket group (see
//! `steer`), and one set of secrets shared by all (see `secrets`).
//!
//! # Threads, and who calls what where
//!
//! - The host's thread (the one whose loop it gave to [`Group::start`])
//!   owns the [`Group`]: it starts it, frees it, and hears there when a
//!   worker exited and when every worker did ([`WorkerHost::exited`],
//!   [`WorkerHost::stopped`], delivered by an `ev_async` on its loop, which
//!   keeps that loop running while workers run).
//! - Worker `i`'s thread makes the loop, asks the host for its server
//!   ([`WorkerHost::start`], on that thread, on that loop and socket),
//!   gives it the group's CID layout (with `i` in every CID), secrets and
//!   live set, watches its socket, and runs the loop until the server has
//!   stopped or the worker is aborted; then the server is freed, the host
//!   cleans up ([`WorkerHost::stop`], on that thread) and the loop is
//!   destroyed. Everything the server calls back runs on that thread.
//! - Any thread may ask a worker to shut down or abort, read its
//!   counters, rotate the secrets: each worker reads its commands on its
//!   own thread, woken by `ev_async_send` (libev's one thread-safe call).
//!
//! # A worker that exits alone
//!
//! Its bit leaves the live set at once (so the others reset its clients
//! instead of leaving them to another worker), its socket is closed, and
//! the steering program is rebuilt for the socket order the kernel has
//! then (it moved the last socket into the gap: `steer::Group`) and
//! attached again. Its clients' next packets go by the hash to live
//! workers, which answer them with stateless resets under the shared key:
//! they fail at once, not at their idle timeout. During a shutdown of the
//! whole group nothing is rebuilt: sockets stay as they are until the
//! group is freed, so the workers still draining keep their steering.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use libc::{c_int, c_void};
use libev_sys::*;

use crate::cid::CidSource;
use crate::evloop::EvLoop;
use crate::handle::{is_live, Handle, Kind};
use crate::hooks::ServerApp;
use crate::platform::Real;
use crate::secrets::{Secrets, SharedSecrets};
use crate::server::{Counters, Peers, Server, ServerCore};
use crate::steer;

/// Most workers a group has: the five worker bits of a CID.
pub const MAX_WORKERS: usize = steer::MAX_WORKERS;

/// How a worker ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Its server stopped after a shutdown.
    Stopped,
    /// An internal error stopped its server (or the worker itself).
    Failed,
    /// Aborted ([`Group::abort`]), or its server was freed by the host.
    Aborted,
}

/// What a worker's thread is given.
#[derive(Clone, Copy, Debug)]
pub struct WorkerInfo {
    pub index: u8,
    pub count: u8,
    /// The worker's own loop (run on its thread).
    pub lp: *mut ev_loop,
    /// The worker's socket in the group.
    pub fd: RawFd,
    pub local: SocketAddr,
}

/// The host's side of a group.
///
/// # Threads
/// `start` and `stop` run on the worker's thread, `exited` and `stopped`
/// on the host's: implementations are `Send + Sync` and must be safe to
/// call from several workers at once.
pub trait WorkerHost<A: ServerApp<Real>>: Send + Sync + 'static {
    /// Makes worker `w`'s server on `w.lp` and `w.fd` (the host's
    /// callbacks, user data and options set), or says why not.
    fn start(&self, w: &WorkerInfo) -> Result<*mut Server<Real, A>, String>;
    /// The worker's loop is over and its server freed (its configs may
    /// go now); the loop is destroyed right after.
    fn stop(&self, w: &WorkerInfo);
    /// On the host's loop: worker `index` exited.
    fn exited(&self, group: *const c_void, index: u8, how: Exit);
    /// On the host's loop, after the last `exited`: every worker exited
    /// (`Stopped` when all of them stopped after a shutdown).
    fn stopped(&self, group: *const c_void, how: Exit);
}

/// A loop's `ev_async`, reachable from other threads.
#[derive(Clone, Copy)]
struct Remote {
    lp: *mut ev_loop,
    w: *mut ev_async,
}

// SAFETY: only ever used for ev_async_send, which libev allows from any
// thread, and only while the watcher is started (the owner clears its
// Remote, under the same mutex, before stopping the watcher).
unsafe impl Send for Remote {}

impl Remote {
    fn wake(&self) {
        // SAFETY: a started watcher of a live loop (see above).
        unsafe { ev_async_send(self.lp, self.w) };
    }
}

#[derive(Default)]
struct Commands {
    shutdown: Option<Duration>,
    abort: bool,
}

/// One worker, as every thread sees it.
#[derive(Default)]
struct Slot {
    /// Set while its loop runs.
    remote: Mutex<Option<Remote>>,
    commands: Mutex<Commands>,
    /// A copy of its server's counters, taken before each loop sleep and
    /// at the end.
    counters: Mutex<Counters>,
    running: AtomicBool,
}

/// The sockets and the kernel's view of their order.
struct Sockets {
    fds: Vec<Option<OwnedFd>>,
    model: steer::Group,
    steering: bool,
}

/// What every thread shares: the part of a group any thread may use.
pub struct Shared {
    local: SocketAddr,
    count: u8,
    live: Arc<AtomicU32>,
    secrets: SharedSecrets,
    cids: Mutex<CidSource>,
    sockets: Mutex<Sockets>,
    slots: Vec<Slot>,
    /// A shutdown of the whole group was asked for (or the group is
    /// going): exits rebuild nothing.
    stopping: AtomicBool,
    exits: Mutex<VecDeque<(u8, Exit)>>,
    host_wake: Mutex<Option<Remote>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A group of workers; owned by the host's thread. `data` is the host's
/// own, freed with the group.
pub struct Group<A: ServerApp<Real>, H: 'static = ()> {
    pub data: H,
    inner: Arc<Shared>,
    host: Option<Arc<dyn WorkerHost<A>>>,
    threads: Vec<JoinHandle<()>>,
    /// The host's loop and the async watcher on it (boxed: libev holds
    /// its address).
    host_loop: Option<(*mut ev_loop, *mut ev_async)>,
    /// Exits delivered to the host so far.
    exited: usize,
    /// The host's callbacks are running (a free inside them waits).
    depth: u32,
    free_wanted: bool,
    over: bool,
    /// The first exit that was not `Stopped` (what `stopped` reports).
    worst: Exit,
}

/// Binds `count` `SO_REUSEPORT` sockets to `local` (port 0: one the kernel
/// picks, the same for all), first checking that no one else's socket
/// holds the address (a reuseport socket of the same user would otherwise
/// join the group).
fn bind_group(local: SocketAddr, count: usize) -> Result<(Vec<OwnedFd>, SocketAddr), String> {
    let mut last = String::new();
    for _ in 0..8 {
        // A plain socket: binds only if nobody holds the address.
        let probe = std::net::UdpSocket::bind(local).map_err(|e| format!("cannot bind {local}: {e}"))?;
        let addr = probe.local_addr().map_err(|e| e.to_string())?;
        drop(probe);
        let mut fds = Vec::with_capacity(count);
        for _ in 0..count {
            match steer::bind_reuseport(&addr) {
                Ok(fd) => fds.push(fd),
                Err(e) => {
                    last = format!("cannot bind {addr}: {e}");
                    break;
                }
            }
        }
        if fds.len() == count {
            return Ok((fds, addr));
        }
        if local.port() != 0 {
            break;
        }
    }
    Err(last)
}

impl<A: ServerApp<Real>, H: 'static> Group<A, H> {
    /// `count` workers on `local`: binds their sockets and attaches the
    /// steering program (for more than one worker; a kernel that refuses
    /// it fails the group: by the 4-tuple hash alone a client that moves
    /// lands on a worker that does not know it).
    pub fn new(local: SocketAddr, count: usize, data: H) -> Result<Group<A, H>, String> {
        if !(1..=MAX_WORKERS).contains(&count) {
            return Err(format!("{count} workers: a group has 1 to {MAX_WORKERS}"));
        }
        let (fds, local) = bind_group(local, count)?;
        let model = steer::Group::new(count).map_err(|e| e.to_string())?;
        let steering = count > 1;
        if steering {
            model.attach(fds[0].as_raw_fd())
                .map_err(|e| format!("the kernel refused the steering program on {local}: {e}"))?;
        }
        let live = if count == 32 { u32::MAX } else { (1u32 << count) - 1 };
        let inner = Shared {
            local, count: count as u8,
            live: Arc::new(AtomicU32::new(live)),
            secrets: SharedSecrets::new(Secrets::random()),
            cids: Mutex::new(CidSource::default()),
            sockets: Mutex::new(Sockets { fds: fds.into_iter().map(Some).collect(), model, steering }),
            slots: (0..count).map(|_| Slot::default()).collect(),
            stopping: AtomicBool::new(false),
            exits: Mutex::new(VecDeque::new()),
            host_wake: Mutex::new(None),
        };
        Ok(Group { data, inner: Arc::new(inner), host: None, threads: Vec::new(), host_loop: None, exited: 0, depth: 0,
                   free_wanted: false, over: false, worst: Exit::Stopped })
    }

    /// Whether [`Group::start`] was called.
    pub fn started(&self) -> bool {
        self.host.is_some()
    }

    /// The part any thread may use (it never changes after `new`).
    ///
    /// # Safety
    /// `this` is a live group.
    pub unsafe fn shared<'a>(this: *const Self) -> &'a Shared {
        &*std::ptr::addr_of!((*this).inner)
    }

    /// The CID layout every worker uses, each with its own index in the
    /// first octet (before [`Group::start`] only).
    pub fn set_cids(&self, cids: CidSource) -> Result<(), String> {
        if self.host.is_some() {
            return Err("the CID layout is set before the workers start".into());
        }
        cids.for_worker(0)?;
        *lock(&self.inner.cids) = cids;
        Ok(())
    }

    /// Starts every worker's thread, each asking `host` for its server;
    /// returns once all of them have one (or, if any could not, once the
    /// others are stopped again, with the reason). Exits are heard on
    /// `host_lp`, the calling thread's loop.
    ///
    /// # Safety
    /// `this` is a live group at a stable address, on the thread running
    /// `host_lp`; `host_lp` outlives the group.
    pub unsafe fn start(this: *mut Self, host_lp: *mut ev_loop, host: Arc<dyn WorkerHost<A>>)
                        -> Result<(), String> {
        // (Fields are reached one at a time through `this`: other threads
        // may hold `Group::shared` meanwhile.)
        if (*this).host.is_some() {
            return Err("the workers were already started".into());
        }
        (*this).host = Some(host.clone());
        let inner = Arc::clone(&(*this).inner);
        let wake = Box::into_raw(Box::new(ev_async::zeroed()));
        ev_async_init(wake, host_cb::<A, H>);
        (*wake).data = this.cast();
        ev_async_start(host_lp, wake);
        (*this).host_loop = Some((host_lp, wake));
        *lock(&inner.host_wake) = Some(Remote { lp: host_lp, w: wake });
        let (tx, rx) = mpsc::channel();
        for index in 0..inner.count {
            let (inner, host, wtx) = (inner.clone(), host.clone(), tx.clone());
            let fd = inner.socket(index as usize).expect("every socket is open before the start");
            let spawned = std::thread::Builder::new().name(format!("quiche-ev-w{index}"))
                .spawn(move || worker_thread(inner, host, index, fd, wtx));
            match spawned {
                Ok(t) => (*this).threads.push(t),
                Err(e) => {
                    let _ = tx.send(Err(format!("cannot start worker {index}'s thread: {e}")));
                }
            }
        }
        drop(tx);
        let mut failure = None;
        for _ in 0..inner.count {
            match rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failure = failure.or(Some(e)),
                Err(_) => failure = failure.or(Some("a worker thread ended before it started".into())),
            }
        }
        match failure {
            None => Ok(()),
            Some(e) => {
                Self::end_all(this);
                Err(e)
            }
        }
    }

    /// Aborts every worker still running and waits for their threads.
    unsafe fn end_all(this: *mut Self) {
        let inner = Arc::clone(&(*this).inner);
        inner.stopping.store(true, Ordering::Release);
        for i in 0..inner.count() {
            inner.abort(i);
        }
        for t in std::mem::take(&mut (*this).threads) {
            let _ = t.join();
        }
        if let Some((lp, w)) = (*this).host_loop.take() {
            *lock(&inner.host_wake) = None;
            ev_async_stop(lp, w);
            drop(Box::from_raw(w));
        }
    }

    /// Frees the group: aborts the workers still running, waits for their
    /// threads, closes the sockets. Inside one of the group's own
    /// callbacks the free waits until it returns.
    ///
    /// # Safety
    /// `this` came from `Box::into_raw`; called on the host's thread (not
    /// a worker's), and not used afterwards.
    pub unsafe fn destroy(this: *mut Self) {
        if (*this).depth > 0 {
            (*this).free_wanted = true;
            return;
        }
        Self::end_all(this);
        drop(Box::from_raw(this));
    }

    /// On the host's loop: deliver the exits that came in.
    unsafe fn on_host_wake(this: *mut Self) {
        let host = match &(*this).host {
            Some(h) => h.clone(),
            None => return,
        };
        let inner = Arc::clone(&(*this).inner);
        (*this).depth += 1;
        loop {
            let next = lock(&inner.exits).pop_front();
            let Some((index, how)) = next else { break };
            (*this).exited += 1;
            if (*this).worst == Exit::Stopped {
                (*this).worst = how;
            }
            crate::unwind::guard((), || host.exited(this.cast(), index, how));
            if (*this).exited == inner.count() && !(*this).over {
                (*this).over = true;
                // Every worker's thread is over or about to be: join them,
                // stop our watcher (the host's loop may end now).
                for t in std::mem::take(&mut (*this).threads) {
                    let _ = t.join();
                }
                if let Some((lp, w)) = (*this).host_loop.take() {
                    *lock(&inner.host_wake) = None;
                    ev_async_stop(lp, w);
                    drop(Box::from_raw(w));
                }
                let worst = (*this).worst;
                crate::unwind::guard((), || host.stopped(this.cast(), worst));
            }
        }
        (*this).depth -= 1;
        if (*this).depth == 0 && (*this).free_wanted {
            Self::end_all(this);
            drop(Box::from_raw(this));
        }
    }

}

unsafe extern "C" fn host_cb<A: ServerApp<Real>, H: 'static>(_lp: *mut ev_loop, w: *mut ev_async, _revents: c_int) {
    Group::<A, H>::on_host_wake((*w).data.cast());
}

impl Shared {
    pub fn count(&self) -> usize {
        self.count as usize
    }

    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Worker `index`'s socket, while it is open.
    pub fn socket(&self, index: usize) -> Option<RawFd> {
        lock(&self.sockets).fds.get(index)?.as_ref().map(|f| f.as_raw_fd())
    }

    /// Whether the steering program is attached.
    pub fn steering(&self) -> bool {
        lock(&self.sockets).steering
    }

    /// The secrets every worker holds (rotate them from any thread).
    pub fn secrets(&self) -> &SharedSecrets {
        &self.secrets
    }

    /// The layout's description, as worker 0 uses it.
    pub fn describe_cids(&self) -> String {
        let base = lock(&self.cids).clone();
        let each = base.for_worker(0).map_or_else(|_| base.to_string(), |w| w.to_string());
        each.replace("worker 0 in", "the worker's index in")
    }

    /// A copy of worker `index`'s counters (as of its last loop iteration).
    pub fn counters(&self, index: usize) -> Option<Counters> {
        self.slots.get(index).map(|s| *lock(&s.counters))
    }

    pub fn is_running(&self, index: usize) -> bool {
        self.slots.get(index).is_some_and(|s| s.running.load(Ordering::Acquire))
    }

    /// Asks every worker's server to shut down (`quiche_ev_server_shutdown`
    /// on its own thread; a second call with 0 closes at once).
    pub fn shutdown(&self, drain: Duration) {
        self.stopping.store(true, Ordering::Release);
        for s in &self.slots {
            lock(&s.commands).shutdown = Some(drain);
            if let Some(r) = *lock(&s.remote) {
                r.wake();
            }
        }
    }

    /// Ends worker `index` at once, as a crash would (its connections are
    /// dropped without a word; the other workers reset its clients).
    /// False when it is not running.
    pub fn abort(&self, index: usize) -> bool {
        let Some(s) = self.slots.get(index) else { return false };
        lock(&s.commands).abort = true;
        match *lock(&s.remote) {
            Some(r) => {
                r.wake();
                true
            }
            None => false,
        }
    }

    /// Worker `index` is over: out of the live set; alone (the group is
    /// not stopping), its socket closes and the steering is rebuilt; the
    /// host's loop hears of it.
    fn worker_exited(&self, index: u8, how: Exit) {
        self.live.fetch_and(!(1u32 << index), Ordering::AcqRel);
        self.slots[index as usize].running.store(false, Ordering::Release);
        if !self.stopping.load(Ordering::Acquire) {
            let mut s = lock(&self.sockets);
            if s.fds[index as usize].take().is_some() {
                s.model.socket_closed(index);
                log_warn!("worker {index} exited ({how:?}): its socket left the group; steering rebuilt");
            }
            if s.steering {
                let any = s.fds.iter().flatten().next().map(|f| f.as_raw_fd());
                if let Some(fd) = any {
                    if let Err(e) = s.model.attach(fd) {
                        log_error!("cannot attach the rebuilt steering program: {e}");
                    }
                }
            }
        }
        lock(&self.exits).push_back((index, how));
        if let Some(r) = *lock(&self.host_wake) {
            r.wake();
        }
    }
}

/// A worker's own state, on its thread's stack (reached by its watchers'
/// `data`).
struct Worker<A: ServerApp<Real>> {
    inner: Arc<Shared>,
    index: u8,
    server: *mut Server<Real, A>,
    exit: Option<Exit>,
}

impl<A: ServerApp<Real>> Worker<A> {
    fn slot(&self) -> &Slot {
        &self.inner.slots[self.index as usize]
    }

    /// Whether the server still exists (the host may have freed it).
    fn server_live(&self) -> bool {
        is_live(self.server as *const c_void, Kind::Server)
    }

    /// Copies the counters out; notes when the server is over.
    unsafe fn check(&mut self) {
        if !self.server_live() {
            self.exit.get_or_insert(Exit::Aborted);
            return;
        }
        let st = ServerCore::state(self.server);
        *lock(&self.slot().counters) = st.counters;
        if Handle::is_failed(self.server) {
            self.exit.get_or_insert(Exit::Failed);
        } else if st.is_stopped() {
            self.exit.get_or_insert(Exit::Stopped);
        }
    }

    /// Runs what other threads asked for.
    unsafe fn commands(&mut self) {
        let c = std::mem::take(&mut *lock(&self.slot().commands));
        if c.abort {
            self.exit = Some(Exit::Aborted);
            return;
        }
        if let Some(d) = c.shutdown {
            if self.server_live() && !Handle::is_failed(self.server) {
                let s = self.server;
                crate::log::within(|o| o.server = s.cast(), || {
                    crate::unwind::guard((), || ServerCore::shutdown(s, d));
                });
            }
        }
    }
}

// The two ev_break calls below end the worker's own loop: run_worker makes
// it (ev_loop_new), runs it on the library's thread and destroys it; no
// host loop is ever broken. The host hears of the exit through its exit
// callback, on its own loop (host_wake).
unsafe extern "C" fn worker_wake_cb<A: ServerApp<Real>>(lp: *mut ev_loop, w: *mut ev_async, _revents: c_int) {
    let me = &mut *((*w).data as *mut Worker<A>);
    me.commands();
    if me.exit.is_some() {
        ev_break(lp, EVBREAK_ALL);
    }
}

unsafe extern "C" fn worker_prepare_cb<A: ServerApp<Real>>(lp: *mut ev_loop, w: *mut ev_prepare, _revents: c_int) {
    let me = &mut *((*w).data as *mut Worker<A>);
    me.check();
    if me.exit.is_some() {
        ev_break(lp, EVBREAK_ALL);
    }
}

thread_local! {
    static ON_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is a worker's (where a group must not be freed:
/// freeing waits for every worker's thread).
pub fn on_worker_thread() -> bool {
    ON_WORKER.with(|w| w.get())
}

/// The starter's answer: sent once.
struct Ready {
    tx: mpsc::Sender<Result<(), String>>,
    sent: bool,
}

impl Ready {
    fn send(&mut self, r: Result<(), String>) {
        if !std::mem::replace(&mut self.sent, true) {
            let _ = self.tx.send(r);
        }
    }
}

fn worker_thread<A: ServerApp<Real>>(inner: Arc<Shared>, host: Arc<dyn WorkerHost<A>>, index: u8, fd: RawFd,
                                     tx: mpsc::Sender<Result<(), String>>) {
    ON_WORKER.with(|w| w.set(true));
    let mut ready = Ready { tx, sent: false };
    let inner2 = inner.clone();
    let how = crate::unwind::guard(Some(Exit::Failed), || {
        // SAFETY: this thread owns the loop it makes and every watcher on
        // it; the server is the host's answer, checked before use.
        unsafe { run_worker(inner2, host, index, fd, &mut ready) }
    });
    // A panic before the start was reported: the starter must not wait.
    ready.send(Err(format!("worker {index} failed to start (internal error)")));
    if let Some(how) = how {
        inner.worker_exited(index, how);
    }
}

/// The worker's life; `None` when it never started (already reported).
unsafe fn run_worker<A: ServerApp<Real>>(inner: Arc<Shared>, host: Arc<dyn WorkerHost<A>>, index: u8, fd: RawFd,
                                         ready: &mut Ready) -> Option<Exit> {
    let lp = ev_loop_new(EVFLAG_AUTO);
    if lp.is_null() {
        ready.send(Err(format!("worker {index}: ev_loop_new failed")));
        return None;
    }
    let info = WorkerInfo { index, count: inner.count, lp, fd, local: inner.local };
    let server = match host.start(&info) {
        Ok(s) => s,
        Err(e) => {
            ev_loop_destroy(lp);
            ready.send(Err(format!("worker {index}: {e}")));
            return None;
        }
    };
    let usable = !server.is_null() && is_live(server as *const c_void, Kind::Server)
        && Handle::lp(server).raw() == lp && ServerCore::state(server).fd() == fd;
    if !usable {
        ev_loop_destroy(lp);
        ready.send(Err(format!("worker {index}: the start callback must return a server made on the \
                                        worker's loop and socket")));
        return None;
    }
    {
        let st = ServerCore::state(server);
        st.share_secrets(inner.secrets.clone());
        let cids = lock(&inner.cids).for_worker(index);
        match cids {
            Ok(c) => {
                if inner.count > 1 || !matches!(c, CidSource::Random { .. }) {
                    crate::log::within(|o| o.server = server.cast(), || st.set_cid_source(c));
                }
            }
            Err(e) => log_error!("worker {index}: {e}"),
        }
        st.set_peers(Peers { index, live: inner.live.clone() });
    }
    Handle::start(server);
    let mut me = Worker::<A> { inner: inner.clone(), index, server, exit: None };
    let me_ptr: *mut Worker<A> = &mut me;
    let wake = Box::into_raw(Box::new(ev_async::zeroed()));
    ev_async_init(wake, worker_wake_cb::<A>);
    (*wake).data = me_ptr.cast();
    ev_async_start(lp, wake);
    ev_unref(lp);
    let prepare = Box::into_raw(Box::new(ev_prepare::zeroed()));
    ev_prepare_init(prepare, worker_prepare_cb::<A>);
    (*prepare).data = me_ptr.cast();
    ev_prepare_start(lp, prepare);
    ev_unref(lp);
    let slot = &inner.slots[index as usize];
    slot.running.store(true, Ordering::Release);
    *lock(&slot.remote) = Some(Remote { lp, w: wake });
    ready.send(Ok(()));
    // Commands that came before the loop ran (a shutdown right after the
    // start) are seen on its first iteration.
    ev_async_send(lp, wake);
    ev_run(lp, 0);
    // Nobody wakes this loop any more.
    *lock(&slot.remote) = None;
    ev_ref(lp);
    ev_async_stop(lp, wake);
    ev_ref(lp);
    ev_prepare_stop(lp, prepare);
    drop(Box::from_raw(wake));
    drop(Box::from_raw(prepare));
    (*me_ptr).check();
    let how = (*me_ptr).exit.unwrap_or(Exit::Stopped);
    if (*me_ptr).server_live() {
        Handle::destroy(server);
    }
    crate::unwind::guard((), || host.stop(&info));
    ev_loop_destroy(lp);
    Some(how)
}
