//! A server made through the C API and driven in-process (each datagram
//! through `inject_datagram`), with a quiche client in the test: for the
//! fuzz harness and token tests.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use libev_sys::*;
use quiche_ev::ffi::server::*;
use quiche_ev::ffi::types::{quiche_config, quiche_ev_server};
use quiche_ev::socket::std_to_sockaddr;

pub fn config(server: bool) -> quiche::Config {
    let mut c = quiche::Config::new(quiche::PROTOCOL_VERSION).unwrap();
    c.set_application_protos(&[b"hq-interop"]).unwrap();
    c.set_max_idle_timeout(5000);
    c.set_initial_max_data(1_000_000);
    c.set_initial_max_stream_data_bidi_local(100_000);
    c.set_initial_max_stream_data_bidi_remote(100_000);
    c.set_initial_max_streams_bidi(10);
    if server {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/c-examples");
        c.load_cert_chain_from_pem_file(&format!("{dir}/cert.crt")).expect("run `make` first");
        c.load_priv_key_from_pem_file(&format!("{dir}/cert.key")).unwrap();
    }
    c
}

pub struct InProc {
    pub server: *mut quiche_ev_server,
    pub lp: *mut ev_loop,
    pub local: SocketAddr,
    /// Where the server's answers to `peer` land.
    pub sink: UdpSocket,
    pub peer: SocketAddr,
    _sock: UdpSocket,
    _config: Box<quiche::Config>,
}

impl InProc {
    pub fn new() -> InProc {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_nonblocking(true).unwrap();
        let local = sock.local_addr().unwrap();
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        sink.set_nonblocking(true).unwrap();
        let peer = sink.local_addr().unwrap();
        let lp = unsafe { ev_loop_new(EVFLAG_AUTO) };
        let mut config = Box::new(config(true));
        let fd = sock.as_raw_fd();
        let (addr, len) = std_to_sockaddr(&local);
        let server = quiche_ev_server_new(lp, fd, &addr as *const _ as *const libc::sockaddr, len,
                                          &mut *config as *mut quiche::Config as *mut quiche_config,
                                          std::ptr::null_mut());
        assert!(!server.is_null());
        InProc { server, lp, local, sink, peer, _sock: sock, _config: config }
    }

    pub fn conn_count(&self) -> usize {
        quiche_ev_server_conn_count(self.server) as usize
    }

    pub fn set_max_conns(&self, n: usize) {
        assert_eq!(quiche_ev_server_set_max_conns(self.server, n), 0);
    }

    pub fn set_token_lifetime(&self, d: Duration) {
        assert_eq!(quiche_ev_server_set_token_lifetime(self.server, d.as_millis() as u64), 0);
    }

    /// One datagram from `from`, then egress.
    pub fn feed(&mut self, pkt: &[u8], from: SocketAddr) {
        assert!(unsafe { inject_datagram(self.server, &mut pkt.to_vec(), from) });
    }

    /// Datagrams the server sent to `peer` so far.
    pub fn drain(&self) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let mut buf = [0u8; 65535];
        while let Ok(n) = self.sink.recv(&mut buf) {
            got.push(buf[..n].to_vec());
        }
        got
    }

    /// A fresh quiche client at `peer` and its first Initial, the Retry the
    /// server answers it with, and the client's next Initial (with token).
    pub fn retry_flow(&mut self) -> (quiche::Connection, Vec<u8>, Vec<u8>, Vec<u8>) {
        let mut ccfg = config(false);
        let mut client = quiche::connect(None, &quiche::ConnectionId::from_ref(&crate::common::random16()),
                                         self.peer, self.local, &mut ccfg).unwrap();
        let mut out = [0u8; 1500];
        let (n, _) = client.send(&mut out).unwrap();
        let initial = out[..n].to_vec();
        self.feed(&initial, self.peer);
        let retry = self.drain().pop().expect("the server answers an Initial with a Retry");
        client.recv(&mut retry.clone(), quiche::RecvInfo { from: self.local, to: self.peer }).unwrap();
        let (n, _) = client.send(&mut out).unwrap();
        let with_token = out[..n].to_vec();
        (client, initial, retry, with_token)
    }
}

impl Drop for InProc {
    fn drop(&mut self) {
        quiche_ev_server_free(self.server);
        unsafe { ev_loop_destroy(self.lp) };
    }
}
