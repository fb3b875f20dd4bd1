//! What the connection driver needs from a QUIC connection, as a trait.
//!
//! Production uses `quiche::Connection` (the impl below is plain
//! delegation). The trait exists so the transport's lifecycle (accept,
//! recv, timeout, close, removal) can run in tests with a scripted
//! connection, under Miri, where quiche's TLS (BoringSSL, C) cannot run.

use std::net::SocketAddr;
use std::time::Duration;

use quiche::{ConnectionId, PathEvent, RecvInfo, SendInfo};

/// The numbers of a connection that a host may want (closing line, stats
/// callback, counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnStats {
    pub recv: u64,
    pub sent: u64,
    pub lost: u64,
    pub recv_bytes: u64,
    pub sent_bytes: u64,
    pub lost_bytes: u64,
    pub rtt_ns: u64,
    pub cwnd: u64,
    /// QUIC DATAGRAM frames sent and received (RFC 9221).
    pub dgram_sent: u64,
    pub dgram_recv: u64,
    /// Received datagrams the host never heard of (quiche's full receive
    /// queue, or nobody to give them to). The transport leaves it 0: the
    /// application layer, which delivers them, fills it in.
    pub dgram_dropped: u64,
}

/// How a connection ended (or is ending).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CloseInfo {
    /// The idle timeout expired.
    pub timed_out: bool,
    /// The peer answered with a Stateless Reset (RFC 9000 §10.3); set by
    /// the driver, which sees the datagram that closed the connection.
    pub stateless_reset: bool,
    /// Closed by the peer (`true`) or by us (`false`), with the code and
    /// reason from the CONNECTION_CLOSE frame; `None` when neither sent one.
    pub error: Option<CloseError>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseError {
    pub by_peer: bool,
    /// An application error (HTTP/3 code) rather than a transport one.
    pub is_app: bool,
    pub code: u64,
    pub reason: Vec<u8>,
}

pub trait Transport {
    fn recv(&mut self, buf: &mut [u8], info: RecvInfo) -> quiche::Result<usize>;
    fn send(&mut self, out: &mut [u8]) -> quiche::Result<(usize, SendInfo)>;
    fn max_send_udp_payload_size(&self) -> usize;
    fn send_quantum(&self) -> usize;
    fn timeout(&self) -> Option<Duration>;
    fn on_timeout(&mut self);
    fn is_established(&self) -> bool;
    fn is_in_early_data(&self) -> bool;
    fn is_closed(&self) -> bool;
    fn close(&mut self, app: bool, err: u64, reason: &[u8]) -> quiche::Result<()>;

    /// Spare source CIDs the peer will accept now.
    fn scids_left(&self) -> usize;
    /// Source CIDs issued and not retired, the first one included.
    fn active_scids(&self) -> usize;
    fn new_scid(&mut self, scid: &[u8], reset_token: u128) -> quiche::Result<u64>;
    fn retired_scid_next(&mut self) -> Option<ConnectionId<'static>>;
    /// Client: move to the local address `local` (active migration).
    fn migrate_source(&mut self, local: SocketAddr) -> quiche::Result<u64>;
    /// Client: the server's transport parameters forbid active migration
    /// (RFC 9000 §9; quiche does not enforce it).
    fn peer_disabled_migration(&self) -> bool;
    /// Asks for a PATH_CHALLENGE on a known path.
    fn probe_path(&mut self, local: SocketAddr, peer: SocketAddr) -> quiche::Result<u64>;
    fn path_event_next(&mut self) -> Option<PathEvent>;

    /// The TLS session to resume from later (client), once there is one.
    fn session(&self) -> Option<Vec<u8>>;
    /// Offers a saved session (client, before the first packet).
    fn set_session(&mut self, session: &[u8]) -> quiche::Result<()>;

    fn conn_stats(&self) -> ConnStats;
    fn close_info(&self) -> CloseInfo;
    /// The reason bytes of the CONNECTION_CLOSE the peer sent (`by_peer`)
    /// or we sent, kept by the connection for as long as it lives.
    fn close_reason(&self, by_peer: bool) -> Option<&[u8]>;
    /// The peer's address on the active path.
    fn peer_addr(&self) -> Option<SocketAddr>;
    fn application_proto(&self) -> &[u8];
}

impl Transport for quiche::Connection {
    fn recv(&mut self, buf: &mut [u8], info: RecvInfo) -> quiche::Result<usize> {
        quiche::Connection::recv(self, buf, info)
    }
    fn send(&mut self, out: &mut [u8]) -> quiche::Result<(usize, SendInfo)> {
        quiche::Connection::send(self, out)
    }
    fn max_send_udp_payload_size(&self) -> usize {
        quiche::Connection::max_send_udp_payload_size(self)
    }
    fn send_quantum(&self) -> usize {
        quiche::Connection::send_quantum(self)
    }
    fn timeout(&self) -> Option<Duration> {
        quiche::Connection::timeout(self)
    }
    fn on_timeout(&mut self) {
        quiche::Connection::on_timeout(self)
    }
    fn is_established(&self) -> bool {
        quiche::Connection::is_established(self)
    }
    fn is_in_early_data(&self) -> bool {
        quiche::Connection::is_in_early_data(self)
    }
    fn is_closed(&self) -> bool {
        quiche::Connection::is_closed(self)
    }
    fn close(&mut self, app: bool, err: u64, reason: &[u8]) -> quiche::Result<()> {
        quiche::Connection::close(self, app, err, reason)
    }
    fn scids_left(&self) -> usize {
        quiche::Connection::scids_left(self)
    }
    fn active_scids(&self) -> usize {
        quiche::Connection::active_scids(self)
    }
    fn new_scid(&mut self, scid: &[u8], reset_token: u128) -> quiche::Result<u64> {
        quiche::Connection::new_scid(self, &ConnectionId::from_ref(scid), reset_token, false)
    }
    fn retired_scid_next(&mut self) -> Option<ConnectionId<'static>> {
        quiche::Connection::retired_scid_next(self)
    }
    fn migrate_source(&mut self, local: SocketAddr) -> quiche::Result<u64> {
        quiche::Connection::migrate_source(self, local)
    }
    fn peer_disabled_migration(&self) -> bool {
        self.peer_transport_params().is_some_and(|p| p.disable_active_migration)
    }
    fn probe_path(&mut self, local: SocketAddr, peer: SocketAddr) -> quiche::Result<u64> {
        quiche::Connection::probe_path(self, local, peer)
    }
    fn path_event_next(&mut self) -> Option<PathEvent> {
        quiche::Connection::path_event_next(self)
    }
    fn session(&self) -> Option<Vec<u8>> {
        quiche::Connection::session(self).map(<[u8]>::to_vec)
    }
    fn set_session(&mut self, session: &[u8]) -> quiche::Result<()> {
        quiche::Connection::set_session(self, session)
    }
    fn conn_stats(&self) -> ConnStats {
        let s = self.stats();
        let path = self.path_stats().next();
        ConnStats {
            recv: s.recv as u64,
            sent: s.sent as u64,
            lost: s.lost as u64,
            recv_bytes: s.recv_bytes,
            sent_bytes: s.sent_bytes,
            lost_bytes: s.lost_bytes,
            rtt_ns: path.as_ref().map(|p| p.rtt.as_nanos() as u64).unwrap_or(0),
            cwnd: path.map(|p| p.cwnd as u64).unwrap_or(0),
            dgram_sent: s.dgram_sent as u64,
            dgram_recv: s.dgram_recv as u64,
            dgram_dropped: 0,
        }
    }
    fn close_info(&self) -> CloseInfo {
        let err = |e: &quiche::ConnectionError, by_peer| CloseError {
            by_peer, is_app: e.is_app, code: e.error_code, reason: e.reason.clone(),
        };
        CloseInfo {
            timed_out: self.is_timed_out(),
            stateless_reset: false,
            error: self.peer_error().map(|e| err(e, true)).or_else(|| self.local_error().map(|e| err(e, false))),
        }
    }
    fn close_reason(&self, by_peer: bool) -> Option<&[u8]> {
        let e = if by_peer { self.peer_error() } else { self.local_error() };
        e.map(|e| e.reason.as_slice())
    }
    fn peer_addr(&self) -> Option<SocketAddr> {
        self.path_stats().next().map(|p| p.peer_addr)
    }
    fn application_proto(&self) -> &[u8] {
        quiche::Connection::application_proto(self)
    }
}
