//! The pieces every scenario shares: the quiche configurations of our
//! examples, one endpoint (a quiche connection and its HTTP/3 layer), and
//! the in-memory wire between a client and a server.
//!
//! What is the same as ours (c-examples/http3-server.c, http3-client.c,
//! common.c; src/driver.rs, src/app/): the transport parameters, ALPN h3,
//! 1350-byte datagrams, Reno on the server and quiche's default (CUBIC) on
//! the client, pacing on (quiche's default; release times are ignored
//! here, as nothing waits), the certificate pair, 16-byte connection IDs, a
//! stateless-reset token in the server's transport parameters, spare
//! connection IDs offered to the peer (up to 4 per turn, as
//! src/driver.rs's `manage_scids`), the request and response header
//! fields, and response bodies written in 256 KiB chunks (src/app/body.rs's
//! FILE_CHUNK) and read in 64 KiB ones (src/app/held.rs's BODY_CHUNK).

use std::collections::VecDeque;
use std::net::SocketAddr;

use quiche::h3;

/// c-examples/common.h.
pub const MAX_DATAGRAM_SIZE: usize = 1350;
/// src/lib.rs (upstream's LOCAL_CONN_ID_LEN).
pub const LOCAL_CONN_ID_LEN: usize = 16;
/// c-examples/common.c.
pub const ACTIVE_CONN_ID_LIMIT: u64 = 8;
/// src/driver.rs: spare connection IDs offered per turn.
pub const MAX_SPARE_SCIDS: usize = 4;
/// RFC 9114 §8.1.
pub const H3_NO_ERROR: u64 = 0x100;
/// src/app/body.rs: file bytes per `send_body` call.
pub const WRITE_CHUNK: usize = 256 * 1024;
/// src/app/held.rs: body bytes per `recv_body` call.
pub const READ_CHUNK: usize = 64 * 1024;

pub fn server_addr() -> SocketAddr {
    "127.0.0.1:4433".parse().unwrap()
}

/// A client address per connection (the port changes, as with ours'
/// one socket per client).
pub fn client_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 10_000 + (i % 50_000) as u16))
}

/// The transport settings both of ours' HTTP/3 mains set
/// (http3-server.c, http3-client.c), plus common.c's configure_*.
fn transport(c: &mut quiche::Config) {
    c.set_application_protos(&[b"h3"]).unwrap();
    c.set_max_idle_timeout(5000);
    c.set_max_recv_udp_payload_size(MAX_DATAGRAM_SIZE);
    c.set_max_send_udp_payload_size(MAX_DATAGRAM_SIZE);
    c.set_initial_max_data(10_000_000);
    c.set_initial_max_stream_data_bidi_local(1_000_000);
    c.set_initial_max_stream_data_bidi_remote(1_000_000);
    c.set_initial_max_stream_data_uni(1_000_000);
    c.set_initial_max_streams_bidi(100);
    c.set_initial_max_streams_uni(100);
    c.set_disable_active_migration(true);
    c.set_active_connection_id_limit(ACTIVE_CONN_ID_LIMIT);
}

/// http3-server.c's configuration (Reno), with the examples' certificate.
pub fn server_config(cert: &str, key: &str) -> Result<quiche::Config, String> {
    let mut c = quiche::Config::new(quiche::PROTOCOL_VERSION).map_err(|e| format!("config: {e:?}"))?;
    c.load_cert_chain_from_pem_file(cert).map_err(|e| format!("{cert}: {e:?}"))?;
    c.load_priv_key_from_pem_file(key).map_err(|e| format!("{key}: {e:?}"))?;
    transport(&mut c);
    c.set_cc_algorithm(quiche::CongestionControlAlgorithm::Reno);
    Ok(c)
}

/// http3-client.c's configuration, starting with QUIC v1 (as ours' load
/// generator, bench/req_load.c: no version negotiation round trip).
pub fn client_config() -> quiche::Config {
    let mut c = quiche::Config::new(quiche::PROTOCOL_VERSION).unwrap();
    transport(&mut c);
    c
}

pub fn random_cid() -> [u8; LOCAL_CONN_ID_LEN] {
    let mut cid = [0; LOCAL_CONN_ID_LEN];
    boring::rand::rand_bytes(&mut cid).unwrap();
    cid
}

pub fn random_token() -> u128 {
    let mut t = [0; 16];
    boring::rand::rand_bytes(&mut t).unwrap();
    u128::from_be_bytes(t)
}

/// One datagram (a fixed buffer, reused: no allocation or zeroing per
/// packet once the pool is warm).
pub struct Dgram {
    pub buf: Box<[u8; 1500]>,
    pub len: usize,
}

/// The datagrams in flight each way, and spare buffers.
#[derive(Default)]
pub struct Wire {
    pub to_server: VecDeque<Dgram>,
    pub to_client: VecDeque<Dgram>,
    pool: Vec<Dgram>,
}

impl Wire {
    pub fn take(&mut self) -> Dgram {
        self.pool.pop().unwrap_or_else(|| Dgram { buf: Box::new([0; 1500]), len: 0 })
    }

    pub fn give(&mut self, d: Dgram) {
        self.pool.push(d);
    }
}

/// Which way a side sends.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    ToServer,
    ToClient,
}

/// One side of a connection: quiche's connection and its HTTP/3 layer.
pub struct Endpoint {
    pub conn: quiche::Connection,
    pub h3: Option<h3::Connection>,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    /// Spare connection IDs this side offered.
    pub spare_scids: usize,
    /// Datagrams quiche refused (should stay 0).
    pub recv_errors: usize,
}

impl Endpoint {
    pub fn new(conn: quiche::Connection, local: SocketAddr, peer: SocketAddr) -> Endpoint {
        Endpoint { conn, h3: None, local, peer, spare_scids: 0, recv_errors: 0 }
    }

    /// Feeds one datagram to quiche.
    pub fn recv(&mut self, d: &mut Dgram) {
        let info = quiche::RecvInfo { from: self.peer, to: self.local };
        match self.conn.recv(&mut d.buf[..d.len], info) {
            Ok(_) | Err(quiche::Error::Done) => {}
            Err(_) => self.recv_errors += 1,
        }
    }

    /// Feeds up to `max` datagrams waiting for this side; how many.
    pub fn recv_from(&mut self, wire: &mut Wire, inbound: Dir, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            let q = match inbound {
                Dir::ToServer => &mut wire.to_server,
                Dir::ToClient => &mut wire.to_client,
            };
            let Some(mut d) = q.pop_front() else { break };
            self.recv(&mut d);
            wire.give(d);
            n += 1;
        }
        n
    }

    /// Everything quiche has to send, onto the wire; how many datagrams.
    pub fn flush(&mut self, wire: &mut Wire, out: Dir) -> usize {
        let mut n = 0;
        loop {
            let mut d = wire.take();
            match self.conn.send(&mut d.buf[..MAX_DATAGRAM_SIZE]) {
                Ok((len, _info)) => {
                    d.len = len;
                    match out {
                        Dir::ToServer => wire.to_server.push_back(d),
                        Dir::ToClient => wire.to_client.push_back(d),
                    }
                    n += 1;
                }
                Err(_) => {
                    wire.give(d);
                    return n;
                }
            }
        }
    }

    /// The HTTP/3 layer, made once the handshake is done.
    pub fn h3_ready(&mut self, config: &h3::Config) -> bool {
        if self.h3.is_none() && self.conn.is_established() {
            self.h3 = Some(h3::Connection::with_transport(&mut self.conn, config).expect("HTTP/3 set-up"));
        }
        self.h3.is_some()
    }

    /// Offers the peer spare connection IDs, as ours does.
    pub fn manage_scids(&mut self) {
        while self.conn.retired_scid_next().is_some() {}
        if !self.conn.is_established() {
            return;
        }
        let mut issued = 0;
        while self.conn.scids_left() > 0 && issued < MAX_SPARE_SCIDS {
            let cid = random_cid();
            if self.conn.new_scid(&quiche::ConnectionId::from_ref(&cid), random_token(), false).is_err() {
                break;
            }
            issued += 1;
        }
        self.spare_scids += issued;
    }
}

/// The request ours' client sends (src/app/client.rs).
pub fn request_headers(path: &str) -> Vec<h3::Header> {
    vec![
        h3::Header::new(b":method", b"GET"),
        h3::Header::new(b":scheme", b"https"),
        h3::Header::new(b":authority", b"127.0.0.1"),
        h3::Header::new(b":path", path.as_bytes()),
        h3::Header::new(b"user-agent", b"quiche"),
    ]
}

/// The response head ours' built-in responders send (src/app/builtin.rs;
/// bench/req_server.c sends the same).
pub fn response_headers(len: usize) -> Vec<h3::Header> {
    vec![
        h3::Header::new(b":status", b"200"),
        h3::Header::new(b"server", b"quiche"),
        h3::Header::new(b"content-length", len.to_string().as_bytes()),
    ]
}

/// When nothing moved: waits for the earliest quiche timer among `eps`
/// and runs the expired ones, each inside its own side's meter. False
/// when no timer is armed (a stall).
pub fn wait_timers(eps: &mut [(&mut Endpoint, &mut crate::cpu::Meter)]) -> bool {
    let Some(d) = eps.iter().filter_map(|(e, _)| e.conn.timeout()).min() else { return false };
    std::thread::sleep(d);
    for (e, m) in eps.iter_mut() {
        m.time(|| e.conn.on_timeout());
    }
    true
}

/// Upstream's address-validation token (examples' `mint_token`): "quiche",
/// the client's address, the original destination connection ID. No MAC:
/// the floor's Retry costs quiche's packet work and nothing more.
fn mint_token(odcid: &[u8], client: SocketAddr) -> Vec<u8> {
    let mut t = b"quiche".to_vec();
    t.extend_from_slice(client.to_string().as_bytes());
    t.push(0);
    t.extend_from_slice(odcid);
    t
}

fn validate_token(token: &[u8], client: SocketAddr) -> Option<Vec<u8>> {
    let mut want = b"quiche".to_vec();
    want.extend_from_slice(client.to_string().as_bytes());
    want.push(0);
    token.starts_with(&want).then(|| token[want.len()..].to_vec())
}

/// The server's side of a first datagram from `client`: its connection,
/// or None (a Retry was sent back, or the datagram is not an Initial).
/// With `retry`, a first Initial without a token gets a Retry, and the
/// one that comes back with it makes the connection (upstream's flow).
/// The caller then feeds the datagram to the new endpoint.
pub fn accept(config: &mut quiche::Config, wire: &mut Wire, d: &mut Dgram, client: SocketAddr, retry: bool)
              -> Option<Endpoint> {
    let hdr = quiche::Header::from_slice(&mut d.buf[..d.len], LOCAL_CONN_ID_LEN).ok()?;
    if hdr.ty != quiche::Type::Initial {
        return None;
    }
    let (scid, odcid) = if retry {
        let token = hdr.token.as_deref().unwrap_or(&[]);
        if token.is_empty() {
            let new_scid = random_cid();
            let token = mint_token(&hdr.dcid, client);
            let mut out = wire.take();
            out.len = quiche::retry(&hdr.scid, &hdr.dcid, &quiche::ConnectionId::from_ref(&new_scid), &token,
                                    hdr.version, &mut out.buf[..]).expect("retry");
            wire.to_client.push_back(out);
            return None;
        }
        let odcid = validate_token(token, client)?;
        (hdr.dcid.to_vec(), Some(odcid))
    } else {
        (random_cid().to_vec(), None)
    };
    config.set_stateless_reset_token(Some(random_token()));
    let odcid = odcid.as_deref().map(quiche::ConnectionId::from_ref);
    let conn = quiche::accept(&quiche::ConnectionId::from_ref(&scid), odcid.as_ref(), server_addr(), client, config)
        .ok()?;
    Some(Endpoint::new(conn, server_addr(), client))
}
