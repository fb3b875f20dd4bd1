//! The graceful shutdown (`quiche_ev_server_shutdown`): new connections
//! refused for good, GOAWAY, a grace period for requests already on
//! their way, a drain for those in flight, a close linger, then the host
//! is told (its stopped callback) and the server is over.

use std::ptr::addr_of;
use std::time::Duration;

use libc::c_int;
use libev_sys::{ev_loop, ev_timer};

use super::{Server, ServerCore};
use crate::driver::Driver;
use crate::evloop::EvLoop;
use crate::handle::Handle;
use crate::hooks::ServerApp;
use crate::platform::Platform;
use crate::transport::Transport;

/// How long a shutting-down server keeps even idle connections open, for
/// requests already on their way (a few round trips on most paths).
const SHUTDOWN_GRACE: Duration = Duration::from_millis(250);

/// How long a draining server waits for closing connections (their
/// closing period, blocked egress) after it closed them, before it drops
/// what is left.
const CLOSE_LINGER_SECS: f64 = 1.0;

/// The longest a draining server waits past the linger for connections
/// still in their closing period (3 PTOs: about 3 s for one closed during
/// its handshake, before any RTT sample), so that each ends as quiche
/// ends it (its qlog records the close) rather than being dropped.
const CLOSING_PERIOD_CAP: Duration = Duration::from_secs(10);

/// Graceful shutdown in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopping {
    No,
    /// New connections are refused, connections were told (GOAWAY);
    /// requests already on their way may still arrive, so even idle
    /// connections stay open for `SHUTDOWN_GRACE`.
    Grace,
    /// Idle connections close; in-flight requests may finish.
    Draining,
    /// Every connection was told to close; waiting for them to go.
    Closing,
    /// Nothing left; the host is told.
    Stopped,
}

impl<P: Platform, A: ServerApp<P>> ServerCore<P, A> {
    /// `quiche_ev_server_shutdown`: refuse new connections from now on
    /// (even if the loop runs again), tell every connection (HTTP/3
    /// GOAWAY), close those with nothing in flight and the rest as their
    /// last response ends, or all of them after `drain`; the host's
    /// stopped event follows once every connection is gone. A second call
    /// with a zero drain closes everything at once. Nothing is delivered
    /// from inside this call: the work happens on the next loop iteration.
    ///
    /// # Safety
    /// `h` is the live root; no borrow of its state is alive.
    pub unsafe fn shutdown(h: *const Server<P, A>, drain: Duration) {
        let st = Self::state(h);
        match st.stopping {
            Stopping::No => {
                log_info!("shutting down: {} connection(s), drain {:.3} s", st.table.len(), drain.as_secs_f64());
            }
            Stopping::Grace | Stopping::Draining if drain.is_zero() => {}
            _ => return,
        }
        Self::touch_all(st);
        let first = if drain.is_zero() {
            st.stopping = Stopping::Closing;
            Duration::from_secs_f64(CLOSE_LINGER_SECS)
        } else {
            st.stopping = Stopping::Grace;
            st.drain_until = Some(Handle::lp(h).now() + drain);
            drain.min(SHUTDOWN_GRACE)
        };
        Handle::lp(h).timer_arm(Self::stop_timer(h), first.as_secs_f64());
        Handle::changed(h);
    }

    /// The drain time is over: close what is left; after the linger, drop
    /// what still has not finished closing.
    unsafe fn on_stop_timer(h: *const Server<P, A>) {
        let st = Self::state(h);
        let lp = Handle::lp(h);
        match st.stopping {
            Stopping::Grace => {
                st.stopping = Stopping::Draining;
                Self::touch_all(st);
                let left = st.drain_until.map_or(Duration::ZERO, |t| t.saturating_duration_since(lp.now()));
                lp.timer_arm(Self::stop_timer(h), left.as_secs_f64());
            }
            Stopping::Draining => {
                st.stopping = Stopping::Closing;
                Self::touch_all(st);
                lp.timer_arm(Self::stop_timer(h), CLOSE_LINGER_SECS);
            }
            Stopping::Closing => {
                let now = lp.now();
                let since = *st.closing_since.get_or_insert(now);
                let mut wait = Duration::ZERO;
                for id in st.table.ids() {
                    if let Some(e) = st.table.get(id) {
                        // SAFETY: entries in the table are live.
                        let drv = Driver::state(addr_of!((*e.as_ptr()).drv));
                        if !drv.blocked {
                            if let Some(t) = drv.conn.timeout() {
                                wait = wait.max(t);
                            }
                        }
                    }
                }
                if !wait.is_zero() && now + wait <= since + CLOSING_PERIOD_CAP {
                    // Timers still pending (a closing period): let quiche end them.
                    lp.timer_arm(Self::stop_timer(h), (wait + Duration::from_millis(5)).as_secs_f64());
                } else {
                    lp.timer_stop(Self::stop_timer(h));
                    for id in st.table.ids() {
                        log_debug!("connection still closing at the end of the linger: dropped");
                        Self::remove(h, st, id);
                    }
                }
            }
            Stopping::No | Stopping::Stopped => lp.timer_stop(Self::stop_timer(h)),
        }
    }

    /// Once a shutting-down server has no connection left: stopped, and
    /// the host is told (an event, delivered by the step that follows).
    pub(super) unsafe fn check_stopped(h: *const Server<P, A>) {
        let st = Self::state(h);
        if matches!(st.stopping, Stopping::Grace | Stopping::Draining | Stopping::Closing) && st.table.is_empty() {
            st.stopping = Stopping::Stopped;
            Handle::lp(h).timer_stop(Self::stop_timer(h));
            log_info!("shutdown complete");
            Self::take_app_events(st);
            A::on_stopped(&mut st.app, false);
        }
    }
}

pub(super) unsafe extern "C" fn stop_cb<P: Platform, A: ServerApp<P>>(_lp: *mut ev_loop, w: *mut ev_timer,
                                                                      _revents: c_int) {
    let h = (*w).data as *mut Server<P, A>;
    Handle::callback(h, || {
        ServerCore::on_stop_timer(h);
        Handle::step(h);
    });
}
