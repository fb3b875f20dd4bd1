//! A host for the C API on the in-memory platform: a fake loop, an
//! in-memory network, and servers and clients made and driven through
//! the exported C functions themselves, with the host's own socket
//! watchers where a test wants them (as an upstream-shaped `main` has).

use std::net::SocketAddr;

use libc::c_int;
use libev_sys::{ev_io, EV_READ};

use super::wire::{FakeConfig, FakeH3Config};
use super::{FakeLoop, Net};
use crate::evloop::EvLoop;
use crate::ffi::client::*;
use crate::ffi::server::*;
use crate::ffi::types::{quiche_config, quiche_ev_client, quiche_ev_server, quiche_h3_config};
use crate::socket::std_to_sockaddr;

pub const SERVER_ADDR: &str = "127.0.0.1:4433";

/// How a handle's socket is watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watch {
    /// An `ev_io` of the host's with the C API's `recv_cb`.
    Host,
    /// The handle's own (`_start`).
    Own,
}

/// The loop, the network and the settings every handle borrows (which
/// must outlive them: they live as long as the world).
pub struct World {
    pub lp: FakeLoop,
    pub net: Net,
    pub server_config: Box<FakeConfig>,
    pub client_config: Box<FakeConfig>,
    pub h3_config: Box<FakeH3Config>,
    /// The host's watchers (raw boxes: only raw pointers reach them),
    /// kept at their addresses until the world goes (the contract for a
    /// watcher that calls `recv_cb`).
    pub watchers: Vec<*mut ev_io>,
    /// Host watchers stopped and overwritten (see `stop_and_reuse_host_watcher`).
    pub reused: Vec<*mut ev_io>,
    pub h3: bool,
    /// The pointers handles got to the settings, each made once (a second
    /// `&mut` of a box would invalidate the first handle's pointer): set
    /// the settings before the first handle.
    raw_h3_config: Option<*mut FakeH3Config>,
    raw_client_config: Option<*mut FakeConfig>,
}

impl World {
    pub fn new(h3: bool) -> World {
        let net = Net::new();
        net.make_current();
        let lp = FakeLoop::new();
        let n = net.clone();
        lp.set_readiness(Box::new(n.readiness()));
        World { lp, net, server_config: Box::default(), client_config: Box::default(), h3_config: Box::default(),
                watchers: Vec::new(), reused: Vec::new(), h3, raw_h3_config: None, raw_client_config: None }
    }

    fn h3_ptr(&mut self) -> *mut quiche_h3_config {
        if !self.h3 {
            return std::ptr::null_mut();
        }
        if self.raw_h3_config.is_none() {
            self.raw_h3_config = Some(std::ptr::addr_of_mut!(*self.h3_config));
        }
        self.raw_h3_config.expect("made") as *mut quiche_h3_config
    }

    /// Starts a watcher of the host's on `fd` calling `cb` with `data`.
    pub fn host_watcher(&mut self, fd: c_int, cb: libev_sys::ev_io_cb, data: *mut libc::c_void) -> *mut ev_io {
        let p = Box::into_raw(Box::new(ev_io::zeroed()));
        // SAFETY: the watcher stays at its address until the world is
        // dropped.
        unsafe {
            self.lp.io_init(p, cb, fd, EV_READ, data);
            self.lp.io_start(p);
        }
        self.watchers.push(p);
        p
    }

    /// A server on `SERVER_ADDR` (no Retry: it needs quiche's crypto).
    pub fn server(&mut self, watch: Watch) -> *mut quiche_ev_server {
        let local: SocketAddr = SERVER_ADDR.parse().unwrap();
        let fd = self.net.socket(Some(local));
        let (sa, len) = std_to_sockaddr(&local);
        let cfg = &mut *self.server_config as *mut FakeConfig as *mut quiche_config;
        let h3 = self.h3_ptr();
        let s = quiche_ev_server_new(self.lp.raw(), fd, &sa as *const _ as *const libc::sockaddr, len, cfg, h3);
        assert!(!s.is_null());
        assert_eq!(quiche_ev_server_set_retry(s, 0), 0);
        match watch {
            Watch::Host => {
                self.host_watcher(fd, quiche_ev_server_recv_cb, s.cast());
            }
            Watch::Own => assert_eq!(quiche_ev_server_start(s), 0),
        }
        s
    }

    /// A client of `SERVER_ADDR` (or of `peer`).
    pub fn client_to(&mut self, peer: &str, watch: Watch) -> *mut quiche_ev_client {
        let peer: SocketAddr = peer.parse().unwrap();
        let fd = self.net.socket(None);
        let (sa, len) = std_to_sockaddr(&peer);
        if self.raw_client_config.is_none() {
            self.raw_client_config = Some(std::ptr::addr_of_mut!(*self.client_config));
        }
        let cfg = self.raw_client_config.expect("made") as *mut quiche_config;
        let h3 = self.h3_ptr();
        let c = quiche_ev_client_new(self.lp.raw(), fd, c"localhost".as_ptr(), &sa as *const _ as *const libc::sockaddr,
                                     len, cfg, h3);
        assert!(!c.is_null());
        match watch {
            Watch::Host => {
                self.host_watcher(fd, quiche_ev_client_recv_cb, c.cast());
            }
            Watch::Own => assert_eq!(quiche_ev_client_start(c), 0),
        }
        c
    }

    pub fn client(&mut self, watch: Watch) -> *mut quiche_ev_client {
        self.client_to(SERVER_ADDR, watch)
    }

    /// The host stops its watcher and its memory is reused (upstream's
    /// mains keep it on a stack frame that returns): the bytes are
    /// overwritten with `POISON` and stay the host's. Returns the watcher
    /// to check later that the library wrote nothing there.
    pub fn stop_and_reuse_host_watcher(&mut self, i: usize) -> *mut ev_io {
        let w = self.watchers[i];
        // SAFETY: made by host_watcher and still allocated.
        unsafe {
            self.lp.io_stop(w);
            std::ptr::write_bytes(w.cast::<u8>(), POISON, std::mem::size_of::<ev_io>());
        }
        self.watchers.remove(i);
        self.reused.push(w);
        w
    }

    /// Whether any of the host's watchers is still active.
    pub fn host_watchers_active(&self) -> usize {
        self.watchers.iter().filter(|&&w| self.lp.is_active(w)).count()
    }
}

/// The byte a reused host watcher is filled with.
pub const POISON: u8 = 0xA5;

/// Whether the reused watcher `w` still holds only [`POISON`].
pub fn untouched(w: *const ev_io) -> bool {
    // SAFETY: a watcher kept by the world.
    let b = unsafe { std::slice::from_raw_parts(w.cast::<u8>(), std::mem::size_of::<ev_io>()) };
    b.iter().all(|&x| x == POISON)
}

impl Drop for World {
    fn drop(&mut self) {
        for w in self.reused.drain(..) {
            // SAFETY: made by host_watcher, stopped before it was reused.
            unsafe { drop(Box::from_raw(w)) };
        }
        for w in self.watchers.drain(..) {
            // SAFETY: made by host_watcher; stopped first, so the loop
            // holds no pointer to it.
            unsafe {
                self.lp.io_stop(w);
                drop(Box::from_raw(w));
            }
        }
    }
}
