//! `quiche_ev_workers_*`: N servers on one address, one per thread, each
//! with its own loop and socket, steered by connection ID (see
//! `workers` and `steer`).

use std::sync::Arc;
use std::time::Duration;

use libc::{c_char, c_int, c_uint, c_void, sockaddr, socklen_t, ssize_t};
use libev_sys::ev_loop;

use super::errors::report;
use super::guard::guard;
use super::handles::Srv;
use super::server::{copy_line, key_pair};
use super::types::*;
use super::{QUICHE_EV_ERR_INTERNAL, QUICHE_EV_ERR_INVALID, QUICHE_EV_ERR_NULL, QUICHE_EV_ERR_STATE};
use crate::socket::{sockaddr_to_std, std_to_sockaddr};
use crate::workers::{Exit, Group, WorkerHost, WorkerInfo};

/// A group of workers: one server per thread on one address. Made by
/// `quiche_ev_workers_new`, freed by `quiche_ev_workers_free`.
pub struct quiche_ev_workers {
    _private: [u8; 0],
}

/// What a worker's start and stop callbacks get, valid during the call.
/// `size` as for `quiche_ev_stats`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct quiche_ev_worker_info {
    pub size: usize,
    pub workers: *mut quiche_ev_workers,
    /// This worker, 0 .. `count` - 1.
    pub index: c_uint,
    pub count: c_uint,
    /// The worker's own loop (`ev_loop_new`), run on this thread: make the
    /// server on it, and put any watcher of yours for this worker there.
    pub loop_: *mut ev_loop,
    /// The worker's socket (bound, non-blocking, in the group).
    pub sock: c_int,
    /// The address every worker's socket is bound to (the port the kernel
    /// chose, for port 0).
    pub local: *const sockaddr,
    pub local_len: socklen_t,
}

/// A worker's start callback: `(info, user)`, on the worker's own thread;
/// returns its server.
pub type quiche_ev_worker_start_cb =
    Option<unsafe extern "C" fn(*const quiche_ev_worker_info, *mut c_void) -> *mut quiche_ev_server>;
/// A worker's stop callback: `(info, user)`, on the worker's thread.
pub type quiche_ev_worker_stop_cb = Option<unsafe extern "C" fn(*const quiche_ev_worker_info, *mut c_void)>;
/// A worker exited: `(workers, index, status, user)`, on the program's loop.
pub type quiche_ev_worker_exit_cb = Option<unsafe extern "C" fn(*mut quiche_ev_workers, c_uint, c_int, *mut c_void)>;
/// Every worker exited: `(workers, status, user)`, on the program's loop.
pub type quiche_ev_workers_stopped_cb = Option<unsafe extern "C" fn(*mut quiche_ev_workers, c_int, *mut c_void)>;

/// The host's callbacks, set before the start.
#[derive(Clone, Copy)]
pub(crate) struct CWorkers {
    user: *mut c_void,
    on_start: quiche_ev_worker_start_cb,
    on_stop: quiche_ev_worker_stop_cb,
    on_exit: quiche_ev_worker_exit_cb,
    on_stopped: quiche_ev_workers_stopped_cb,
}

/// The group behind the C handle.
/// cbindgen:ignore
type Grp = Group<crate::app::server::ConnApp<P, super::host::CServerHost>, CWorkers>;

/// The host's callbacks as the group calls them, with the handle they
/// name.
struct CWorkerHost {
    cbs: CWorkers,
    handle: *mut quiche_ev_workers,
}

// SAFETY: the C API documents that the start and stop callbacks run on
// the workers' threads, several at once, and that `user` is shared by
// them: the host makes what they touch thread-safe. The handle pointer is
// only handed back to the host.
unsafe impl Send for CWorkerHost {}
unsafe impl Sync for CWorkerHost {}

fn status(how: Exit) -> c_int {
    match how {
        Exit::Stopped => 0,
        Exit::Failed => QUICHE_EV_ERR_INTERNAL,
        Exit::Aborted => super::QUICHE_EV_ERR_CLOSED,
    }
}

impl CWorkerHost {
    fn info(&self, w: &WorkerInfo, local: &libc::sockaddr_storage, len: socklen_t) -> quiche_ev_worker_info {
        quiche_ev_worker_info {
            size: std::mem::size_of::<quiche_ev_worker_info>(),
            workers: self.handle,
            index: w.index as c_uint,
            count: w.count as c_uint,
            loop_: w.lp,
            sock: w.fd,
            local: (local as *const libc::sockaddr_storage).cast(),
            local_len: len,
        }
    }
}

impl WorkerHost<crate::app::server::ConnApp<P, super::host::CServerHost>> for CWorkerHost {
    fn start(&self, w: &WorkerInfo) -> Result<*mut Srv, String> {
        let Some(cb) = self.cbs.on_start else { return Err("no start callback".into()) };
        let (ss, len) = std_to_sockaddr(&w.local);
        let info = self.info(w, &ss, len);
        // SAFETY: the host's callback, on this worker's thread, with an
        // info valid for the call.
        let s = unsafe { cb(&info, self.cbs.user) };
        match quiche_ev_server::get(s) {
            Some(s) => Ok(s),
            None => {
                let why = super::errors::last_error_text();
                Err(format!("the start callback returned no server{}", why.map_or(String::new(), |w| format!(": {w}"))))
            }
        }
    }

    fn stop(&self, w: &WorkerInfo) {
        if let Some(cb) = self.cbs.on_stop {
            let (ss, len) = std_to_sockaddr(&w.local);
            let info = self.info(w, &ss, len);
            // SAFETY: as in start.
            unsafe { cb(&info, self.cbs.user) };
        }
    }

    fn exited(&self, group: *const c_void, index: u8, how: Exit) {
        if let Some(cb) = self.cbs.on_exit {
            // SAFETY: the host's callback, on its loop, with its live group.
            unsafe { cb(group as *mut quiche_ev_workers, index as c_uint, status(how), self.cbs.user) };
        }
    }

    fn stopped(&self, group: *const c_void, how: Exit) {
        if let Some(cb) = self.cbs.on_stopped {
            // SAFETY: as in exited.
            unsafe { cb(group as *mut quiche_ev_workers, status(how), self.cbs.user) };
        }
    }
}

fn get(p: *const quiche_ev_workers) -> Option<*mut Grp> {
    (!p.is_null()).then_some(p as *mut Grp)
}

/// Runs `f` on the group behind a handle (NULL gives `QUICHE_EV_ERR_NULL`).
fn with(p: *const quiche_ev_workers, f: impl FnOnce(*mut Grp) -> c_int) -> c_int {
    guard(QUICHE_EV_ERR_INTERNAL, || match get(p) {
        Some(g) => f(g),
        None => QUICHE_EV_ERR_NULL,
    })
}

/// Runs `f` on the part of the group any thread may use.
fn with_shared(p: *const quiche_ev_workers, f: impl FnOnce(&crate::workers::Shared) -> c_int) -> c_int {
    // SAFETY: a live group (C API contract); its shared part never changes.
    with(p, |g| f(unsafe { Grp::shared(g) }))
}

/// Runs `f` on the callbacks, before the start only.
fn with_callbacks(p: *mut quiche_ev_workers, what: &str, f: impl FnOnce(&mut CWorkers)) -> c_int {
    with(p, |g| {
        // SAFETY: a live group, on the program's thread (C API contract).
        unsafe {
            if (*g).started() {
                report(format!("{what}: callbacks are set before quiche_ev_workers_start"));
                return QUICHE_EV_ERR_STATE;
            }
            f(&mut (*g).data);
        }
        0
    })
}

/// Makes a group of `count` workers (1..=32) on `local`: binds `count`
/// UDP sockets to it with `SO_REUSEPORT` (port 0: one port the kernel
/// chooses, the same for all; an address some other socket holds is
/// refused) and, for more than one worker, attaches a classic BPF program
/// to their group (`SO_ATTACH_REUSEPORT_CBPF`, no privilege needed) that
/// gives each datagram to the worker whose connection IDs it carries: a
/// short-header packet by the worker index in its connection ID's first
/// octet, a long-header one by that index too once the client knows a CID
/// of ours, or else by a hash of the client's connection ID, so every
/// packet of a connection reaches one worker from any client address
/// (NAT rebinding, migration). Nothing runs until
/// `quiche_ev_workers_start`. Returns NULL (the last error says why) for
/// a bad count or address, an address in use, or a kernel that refuses the
/// program (without it, a client that moves would land on a worker that
/// does not know it).
#[no_mangle]
pub extern "C" fn quiche_ev_workers_new(local: *const sockaddr, local_len: socklen_t, count: c_uint)
                                        -> *mut quiche_ev_workers {
    guard(std::ptr::null_mut(), || {
        // SAFETY: NULL or local_len readable bytes (C API contract).
        let Some(addr) = (unsafe { sockaddr_to_std(local, local_len) }) else {
            report("quiche_ev_workers_new: local address is not an IPv4/IPv6 address".into());
            return std::ptr::null_mut();
        };
        let cbs = CWorkers { user: std::ptr::null_mut(), on_start: None, on_stop: None, on_exit: None, on_stopped: None };
        match Grp::new(addr, count as usize, cbs) {
            Ok(g) => Box::into_raw(Box::new(g)).cast(),
            Err(e) => {
                report(format!("quiche_ev_workers_new: {e}"));
                std::ptr::null_mut()
            }
        }
    })
}

/// The pointer every group callback receives as `user` (default NULL):
/// shared by every worker's thread. Before the start only. Returns 0,
/// `QUICHE_EV_ERR_NULL` or `QUICHE_EV_ERR_STATE`.
#[no_mangle]
pub extern "C" fn quiche_ev_workers_set_user_data(workers: *mut quiche_ev_workers, user: *mut c_void) -> c_int {
    with_callbacks(workers, "quiche_ev_workers_set_user_data", |c| c.user = user)
}

/// Sets the start callback (required): `cb(info, user)` runs on worker
/// `info->index`'s own thread, before its loop runs, and returns the
/// worker's server: made with `quiche_ev_server_new(info->loop_,
/// info->sock, info->local, info->local_len, config, h3_config)` on a
/// `quiche_config` of this worker's own (configs are not thread-safe:
/// make one per worker, e.g. with `quiche_ev_config_new` so that session
/// tickets resume across workers), with your callbacks, user data and
/// options set. Do not start a watcher on `info->sock`: the group starts
/// the server (`quiche_ev_server_start`). The group then gives the server
/// its CID layout (with the worker's index in every CID), its token and
/// reset keys, and the set of live workers: set those on the group, not
/// on the server. NULL (the worker's last error, if any, is kept) fails
/// `quiche_ev_workers_start`. Before the start only. Returns 0,
/// `QUICHE_EV_ERR_NULL` or `QUICHE_EV_ERR_STATE`.
#[no_mangle]
pub extern "C" fn quiche_ev_workers_on_start(workers: *mut quiche_ev_workers, cb: quiche_ev_worker_start_cb) -> c_int {
    with_callbacks(workers, "quiche_ev_workers_on_start", |c| c.on_start = cb)
}

/// Sets the stop callback: `cb(info, user)` runs on the worker's thread
/// once its loop is over (its server stopped, failed, or the worker was
/// aborted) and the group has freed its server (as
/// `quiche_ev_server_free`: requests still open are dropped without
/// callbacks), before the loop is destroyed: stop your watchers on
/// `info->loop_` and free what the start callback made (its
/// `quiche_config`, which had to outlive the server). Before the start
/// only. Returns 0, `QUICHE_EV_ERR_NULL` or `QUICHE_EV_ERR_STATE`.
#[no_mangle]
pub extern "C" fn quiche_ev_workers_on_stop(workers: *mut quiche_ev_workers, cb: quiche_ev_worker_stop_cb) -> c_int {
    with_callbacks(workers, "quiche_ev_workers_on_stop", |c| c.on_stop = cb)
}

/// Sets the exit callback: `cb(workers, index, status, user)` runs on the
/// program's loop (the one given to `quiche_ev_workers_start`) after
/// worker `index` ended: status 0 (its server stopped after a shutdown),
/// `QUICHE_EV_ERR_INTERNAL` (an internal error stopped it) or
/// `QUICHE_EV_ERR_CLOSED` (aborted). A worker that ends alone leaves the
/// group at once: its socket is closed and the steering rebuilt, and the
/// other workers answer its clients with stateless resets, so they fail
/// at once. Before the start only. Returns 0, `QUICHE_EV_ERR_NULL` or
/// `QUICHE_EV_ERR_STATE`.
#[no_mangle]
pub extern "C" fn quiche_ev_workers_on_exit(workers: *mut quiche_ev_workers, cb: quiche_ev_worker_exit_cb) -> c_int {
    with_callbacks(workers, "quiche_ev_workers_on_exit", |c| c.on_exit = cb)
}

/// Sets the stopped callback: `cb(workers, status, user)` runs on the
/// program's loop after the last exit callback: status 0 when every worker
/// stopped after a shutdown, else the first other exit status. The group
/// then leaves nothing on the program's loop (`ev_run` returns when the
/// program has nothing else). Before the start only. Returns 0,
/// `QUICHE_EV_ERR_NULL` or `QUICHE_EV_ERR_STATE`.
#[no_mangle]
pub extern "C" fn quiche_ev_workers_on_stopped(workers: *mut quiche_ev_workers,
                                               cb: quiche_ev_workers_stopped_cb) -> c_int {
    with_callbacks(workers, "quiche_ev_workers_on_stopped", |c| c.on_stopped = cb)
}

/// Gives every worker's server QUIC-LB connection IDs, as
/// `quiche_ev_server_set_cid_layout` does, each with its worker's index in
/// the first octet (that is what the steering program reads). Without
/// this call the workers issue random 16-byte CIDs with their index in the
/// first octet. Before the start only. Returns 0, `QUICHE_EV_ERR_NULL`,
/// `QUICHE_EV_ERR_INVALID` (a layout the draft does not allow; the last
/// error says why) or `QUICHE_EV_ERR_STATE`.
#[no_mangle]
pub extern "C" fn quiche_ev_workers_set_cid_layout(workers: *mut quiche_ev_workers, config_id: c_int,
                                                   server_id: *const u8, server_id_len: usize, nonce_len: usize,
                                                   key: *const u8, key_len: usize) -> c_int {
    with(workers, |g| {
        let what = "quiche_ev_workers_set_cid_layout";
        let source = match super::server::cid_layout(what, config_id, server_id, server_id_len, nonce_len, key,
                                                     key_len, -1) {
            Ok(s) => s,
            Err(e) => return e,
        };
        // SAFETY: a live group, on the program's thread.
        match unsafe { (*g).set_cids(source) } {
            Ok(()) => 0,
            Err(e) => {
                report(format!("{what}: {e}"));
                QUICHE_EV_ERR_STATE
            }
        }
    })
}

/// As `quiche_ev_server_cid_layout`, for the group's workers. Any thread.
#[no_mangle]
pub extern "C" fn quiche_ev_workers_cid_layout(workers: *const quiche_ev_workers, buf: *mut c_char, len: usize)
                                               -> ssize_t {
    guard(QUICHE_EV_ERR_INTERNAL as ssize_t, || match get(workers) {
        // SAFETY: a live group; buf is NULL or len writable bytes.
        Some(g) => unsafe { copy_line(&Grp::shared(g).describe_cids(), buf, len) },
        None => QUICHE_EV_ERR_NULL as ssize_t,
    })
}

/// The Retry token keys of every worker, as
/// `quiche_ev_server_set_token_keys`: all workers hold the same ones, so a
/// token one minted is accepted by any. Default: random per group. Any
/// thread, any time (a rotation). Returns 0, `QUICHE_EV_ERR_NULL` or
/// `QUICHE_EV_ERR_INVALID`.
#[no_mangle]
pub extern "C" fn quiche_ev_workers_set_token_keys(workers: *mut quiche_ev_workers, current: *const u8,
                                                   previous: *const u8, len: usize) -> c_int {
    with_shared(workers, |s| match key_pair("quiche_ev_workers_set_token_keys", current, previous, len, 32) {
        Ok(k) => {
            s.secrets().set_token(k);
            0
        }
        Err(e) => e,
    })
}

/// The stateless-reset keys of every worker, as
/// `quiche_ev_server_set_reset_keys`: any worker can reset a connection
/// of any other (one that died, or another host's). Default: random per
/// group. Any thread, any time. Returns 0, `QUICHE_EV_ERR_NULL` or
/// `QUICHE_EV_ERR_INVALID`.
#[no_mangle]
pub extern "C" fn quiche_ev_workers_set_reset_keys(workers: *mut quiche_ev_workers, current: *const u8,
                                                   previous: *const u8, len: usize) -> c_int {
    with_shared(workers, |s| match key_pair("quiche_ev_workers_set_reset_keys", current, previous, len, 32) {
        Ok(k) => {
            s.secrets().set_reset(k);
            0
        }
        Err(e) => e,
    })
}

/// Starts the workers: one thread each, each running its own loop, its
/// server made by the start callback on that thread. Returns when every
/// worker has its server (0), or, when one could not (its reason is the
/// last error), after stopping the others again (`QUICHE_EV_ERR_INVALID`;
/// free the group then). `loop_` is the program's loop, on this thread:
/// the exit and stopped callbacks run there, and the group keeps it
/// running until every worker has exited. Call it once. Returns also
/// `QUICHE_EV_ERR_NULL` or `QUICHE_EV_ERR_STATE` (already started, or no
/// start callback).
#[no_mangle]
pub extern "C" fn quiche_ev_workers_start(workers: *mut quiche_ev_workers, loop_: *mut ev_loop) -> c_int {
    with(workers, |g| {
        if loop_.is_null() {
            report("quiche_ev_workers_start: the program's loop is required".into());
            return QUICHE_EV_ERR_NULL;
        }
        // SAFETY: a live group at a stable address, on the program's thread
        // (C API contract); the loop outlives the group.
        unsafe {
            if (*g).started() || (*g).data.on_start.is_none() {
                report("quiche_ev_workers_start: already started, or no start callback".into());
                return QUICHE_EV_ERR_STATE;
            }
            let host = Arc::new(CWorkerHost { cbs: (*g).data, handle: workers });
            match Grp::start(g, loop_, host) {
                Ok(()) => 0,
                Err(e) => {
                    report(format!("quiche_ev_workers_start: {e}"));
                    QUICHE_EV_ERR_INVALID
                }
            }
        }
    })
}

/// Shuts every worker's server down gracefully, as
/// `quiche_ev_server_shutdown(server, drain_ms)` on each worker's own
/// thread; a second call with 0 closes everything at once. Each worker
/// exits once its server has stopped. Any thread. Returns 0 or
/// `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_workers_shutdown(workers: *mut quiche_ev_workers, drain_ms: u64) -> c_int {
    with_shared(workers, |s| {
        s.shutdown(Duration::from_millis(drain_ms));
        0
    })
}

/// Ends worker `index` at once, as if it had crashed: its connections are
/// dropped without a word (no CONNECTION_CLOSE), its socket leaves the
/// group and the steering is rebuilt; the other workers answer its
/// clients' next packets with stateless resets (the shared key), so they
/// fail at once instead of at their idle timeout. For taking a wedged
/// worker out, and for testing a deployment's failover. Any thread.
/// Returns 0, `QUICHE_EV_ERR_NULL`, `QUICHE_EV_ERR_INVALID` (no such
/// worker) or `QUICHE_EV_ERR_STATE` (not running).
#[no_mangle]
pub extern "C" fn quiche_ev_workers_abort(workers: *mut quiche_ev_workers, index: c_uint) -> c_int {
    with_shared(workers, |s| {
        if index as usize >= s.count() {
            report(format!("quiche_ev_workers_abort: no worker {index}"));
            return QUICHE_EV_ERR_INVALID;
        }
        if s.abort(index as usize) { 0 } else { QUICHE_EV_ERR_STATE }
    })
}

/// The number of workers, or `QUICHE_EV_ERR_NULL`. Any thread.
#[no_mangle]
pub extern "C" fn quiche_ev_workers_count(workers: *const quiche_ev_workers) -> c_int {
    with_shared(workers, |s| s.count() as c_int)
}

/// Worker `index`'s socket (to read its address, e.g. the port chosen for
/// port 0), or `QUICHE_EV_ERR_NULL`, `QUICHE_EV_ERR_INVALID` (no such
/// worker) or `QUICHE_EV_ERR_STATE` (its socket is closed: it exited
/// alone). The group owns it: do not close it or watch it. Any thread.
#[no_mangle]
pub extern "C" fn quiche_ev_workers_socket(workers: *const quiche_ev_workers, index: c_uint) -> c_int {
    with_shared(workers, |s| {
        if index as usize >= s.count() {
            return QUICHE_EV_ERR_INVALID;
        }
        s.socket(index as usize).unwrap_or(QUICHE_EV_ERR_STATE)
    })
}

/// 1 while worker `index` runs, 0 before its start and after its exit,
/// or `QUICHE_EV_ERR_NULL` / `QUICHE_EV_ERR_INVALID`. Any thread.
#[no_mangle]
pub extern "C" fn quiche_ev_workers_running(workers: *const quiche_ev_workers, index: c_uint) -> c_int {
    with_shared(workers, |s| {
        if index as usize >= s.count() {
            return QUICHE_EV_ERR_INVALID;
        }
        s.is_running(index as usize) as c_int
    })
}

/// Fills `out` with worker `index`'s counters (set `out->size` first), as
/// `quiche_ev_server_counters`, taken each time its loop is about to wait
/// (so at most one loop iteration old) and when it exits. Any thread.
/// Returns 0, `QUICHE_EV_ERR_NULL` or `QUICHE_EV_ERR_INVALID` (no such
/// worker, or a size too small).
#[no_mangle]
pub extern "C" fn quiche_ev_workers_counters(workers: *const quiche_ev_workers, index: c_uint,
                                             out: *mut quiche_ev_counters) -> c_int {
    with_shared(workers, |s| {
        if out.is_null() {
            return QUICHE_EV_ERR_NULL;
        }
        let Some(c) = s.counters(index as usize) else { return QUICHE_EV_ERR_INVALID };
        // SAFETY: out points to the caller's structure of out->size bytes.
        if unsafe { copy_sized(&quiche_ev_counters::of(&c), out) } { 0 } else { QUICHE_EV_ERR_INVALID }
    })
}

/// Frees the group: aborts the workers still running (as
/// `quiche_ev_workers_abort`; shut down first for a graceful end), waits
/// for their threads, closes the sockets. From the program's thread only
/// (never from a worker's: it would wait for itself; refused, with the
/// last error saying so); inside the group's exit or stopped callback the
/// free happens when the callback returns. NULL is a no-op.
#[no_mangle]
pub extern "C" fn quiche_ev_workers_free(workers: *mut quiche_ev_workers) {
    guard((), || {
        let Some(g) = get(workers) else { return };
        if crate::workers::on_worker_thread() {
            report("quiche_ev_workers_free: called on a worker's thread; free the group from the program's".into());
            return;
        }
        // SAFETY: made by quiche_ev_workers_new; C does not use it after.
        unsafe { Grp::destroy(g) };
    })
}
