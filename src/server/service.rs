//! Each connection's turn: application input, CID upkeep, its part in a
//! shutdown, `flush_egress`, and its removal once closed.

use std::ptr::addr_of;

use super::{closed_line, ConnFlags, Deferred, Server, ServerConn, ServerCore, ServerState, Stopping};
use crate::driver::Driver;
use crate::egress::Flushed;
use crate::handle::Handle;
use crate::hooks::{ConnRef, ServerApp};
use crate::platform::Platform;
use crate::table::{Cid, ConnId};
use crate::transport::Transport;

impl<P: Platform, A: ServerApp<P>> ServerCore<P, A> {
    /// Lets each touched connection work and flush; removes the closed
    /// ones.
    pub(super) unsafe fn service_touched(h: *const Server<P, A>) {
        loop {
            let ids = std::mem::take(&mut Self::state(h).touched);
            if ids.is_empty() {
                break;
            }
            for id in ids {
                let e = Self::state(h).conn_ptr(id);
                if !e.is_null() {
                    crate::log::within(|o| o.conn = e.cast(), || Self::service(h, id, e));
                }
            }
        }
    }

    /// One connection's step.
    unsafe fn service(h: *const Server<P, A>, id: ConnId, e: *const ServerConn<P, A>) {
        let st = Self::state(h);
        let drv = Driver::state(addr_of!((*e).drv));
        let app = ServerConn::app(e);
        let mut flags = (*e).flags.get();
        drv.touched = false;
        if !drv.conn.is_closed() {
            if drv.conn.is_established() && !flags.established {
                flags.established = true;
                st.table.forget_odcid(id);
                // (upstream's servers print nothing here; their clients do)
                log_debug!("connection established: {}", String::from_utf8_lossy(drv.conn.application_proto()));
                app.on_established(&mut drv.conn, &mut st.app, e as ConnRef);
            }
            if drv.conn.is_established() || drv.conn.is_in_early_data() {
                app.on_input(&mut drv.conn, &mut st.app, e as ConnRef);
            }
            drv.path_events();
            let mut mapped: Vec<Cid> = Vec::new();
            let mut unmapped: Vec<Vec<u8>> = Vec::new();
            drv.manage_scids(|| {
                let cid = st.next_cid()?;
                Some((cid, st.reset_token(&cid)))
            }, |c| mapped.extend(Cid::from_slice(c)), |c| unmapped.push(c.to_vec()));
            for c in mapped {
                st.table.map(id, &c);
            }
            for c in unmapped {
                st.table.unmap(id, &c);
            }
            Self::shutdown_step(st, &mut flags, app, &mut drv.conn);
            if app.wants_retry() && !flags.retry_listed {
                flags.retry_listed = true;
                st.retry_soon.push(id);
            }
        }
        let flushed = Driver::flush_egress(addr_of!((*e).drv), drv, Handle::lp(h), Handle::io(h), &mut st.out,
                                           st.settings.gso);
        if flushed == Flushed::Blocked {
            if !flags.blocked_listed {
                flags.blocked_listed = true;
                st.blocked.push(id);
            }
            Handle::want_writable(h, st.fd);
        }
        (*e).flags.set(flags);
        if drv.conn.is_closed() {
            Self::remove(h, st, id);
        }
    }

    /// What a shutdown in progress asks of one connection: the GOAWAYs,
    /// and its close once it is idle (or at once, when closing).
    fn shutdown_step(st: &ServerState<P, A>, flags: &mut ConnFlags, app: &mut A, conn: &mut P::Conn) {
        if st.stopping != Stopping::No && !flags.shutdown_told {
            flags.shutdown_told = true;
            app.on_shutdown(conn, false);
        }
        if matches!(st.stopping, Stopping::Draining | Stopping::Closing) && !flags.shutdown_final {
            flags.shutdown_final = true;
            app.on_shutdown(conn, true);
        }
        let close_now = match st.stopping {
            Stopping::Draining => !app.is_busy(conn),
            Stopping::Closing | Stopping::Stopped => true,
            Stopping::No | Stopping::Grace => false,
        };
        if close_now && !flags.closing {
            flags.closing = true;
            let (is_app, code) = app.close_code();
            let _ = conn.close(is_app, code, b"server shutting down");
        }
    }

    /// Takes a closed connection out of the table; the host hears of it,
    /// then the dispatch loop frees it.
    pub(super) unsafe fn remove(h: *const Server<P, A>, st: &mut ServerState<P, A>, id: ConnId) {
        let Some(e) = st.table.get(id) else { return };
        let ep = e.as_ptr() as *const ServerConn<P, A>;
        let drv = Driver::state(addr_of!((*ep).drv));
        let stats = drv.conn.conn_stats();
        // quiche closes a server connection whose first packet it could not
        // open (corrupted on the way, or junk): nothing was ever sent to the
        // client, whose next Initial (same DCID) must find its way in.
        let bury = stats.recv > 0;
        if !bury {
            log_debug!("first packet of a new connection could not be processed: connection dropped");
        }
        st.table.remove(id, bury);
        Driver::stop(addr_of!((*ep).drv), Handle::lp(h));
        // The driver's record: it also knows a close by a Stateless Reset.
        let info = drv.close_info();
        crate::log::within(|o| o.conn = ep.cast(), || log_info!("{}", closed_line(&stats, true)));
        st.counters.closed += 1;
        ServerConn::app(ep).on_closed(&mut st.app, &stats, &info, ep as ConnRef);
        Self::defer(st, Deferred::Free(e));
        log_info!("connection freed, {} left", st.table.len());
    }

    /// Connection `id` is serviced on the next step.
    pub(super) fn touch(st: &mut ServerState<P, A>, id: ConnId) {
        if let Some(e) = st.table.get(id) {
            // SAFETY: entries in the table are live.
            let drv = unsafe { Driver::state(addr_of!((*e.as_ptr()).drv)) };
            if !drv.touched {
                drv.touched = true;
                st.touched.push(id);
            }
        }
    }

    /// Every connection gets serviced on the next step (a shutdown phase
    /// changed what each must do).
    pub(super) fn touch_all(st: &mut ServerState<P, A>) {
        for id in st.table.ids() {
            Self::touch(st, id);
        }
    }

    /// The host changed connection `conn` (wrote to a stream, closed it)
    /// from outside our callbacks, or from inside them: it is flushed
    /// before the loop sleeps again.
    ///
    /// # Safety
    /// `conn` is a live connection of a live server; no borrow of the
    /// server's state is alive.
    pub unsafe fn conn_changed(conn: *const ServerConn<P, A>) {
        let h = (*conn).server;
        Self::touch(Self::state(h), (*conn).id);
        Handle::changed(h);
    }

    /// Takes the lists of blocked and retrying connections, clearing
    /// their flags.
    pub(super) fn take_listed(st: &mut ServerState<P, A>, blocked: bool) -> Vec<ConnId> {
        let ids = std::mem::take(if blocked { &mut st.blocked } else { &mut st.retry_soon });
        for &id in &ids {
            if let Some(e) = st.table.get(id) {
                // SAFETY: entries in the table are live.
                let e = unsafe { &*e.as_ptr() };
                let mut f = e.flags.get();
                if blocked {
                    f.blocked_listed = false;
                } else {
                    f.retry_listed = false;
                }
                e.flags.set(f);
            }
        }
        ids
    }
}
