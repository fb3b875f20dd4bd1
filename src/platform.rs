//! What the transport is generic over: the loop, the datagram I/O and the
//! QUIC connection. Production is [`Real`] (libev, UDP sockets, quiche);
//! the tests run the same handles on a fake of each (see `testing`),
//! under Miri too.

use std::net::SocketAddr;

use crate::dgram::{DatagramIo, UdpSockets};
use crate::evloop::{EvLoop, LibEv};
use crate::observe::{LogKeys, Observe, Observed};
use crate::transport::Transport;

/// Everything a new connection is made from.
pub struct NewConn<'a> {
    pub scid: &'a [u8],
    /// Server: the client's original destination CID when a Retry was
    /// sent (quiche checks it against the transport parameters).
    pub odcid: Option<&'a [u8]>,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    /// Server: the stateless-reset token of `scid`.
    pub reset_token: Option<u128>,
    /// Client: the TLS server name.
    pub host: Option<&'a str>,
    /// Key log and qlog, if the host asked for them.
    pub observe: &'a Observe,
}

pub trait Platform: 'static + Sized {
    type Loop: EvLoop;
    type Io: DatagramIo;
    type Conn: Transport + Observed;
    /// The connection settings (`quiche_config`), borrowed from C.
    type Config: LogKeys;

    fn accept(config: &mut Self::Config, new: &NewConn) -> quiche::Result<Self::Conn>;
    fn connect(config: &mut Self::Config, new: &NewConn) -> quiche::Result<Self::Conn>;
}

/// libev, the host's UDP sockets, quiche.
pub struct Real;

impl Platform for Real {
    type Loop = LibEv;
    type Io = UdpSockets;
    type Conn = quiche::Connection;
    type Config = quiche::Config;

    fn accept(config: &mut quiche::Config, new: &NewConn) -> quiche::Result<quiche::Connection> {
        // The token goes into this connection's transport parameters; the
        // config is ours for the duration of the call (one loop thread).
        config.set_stateless_reset_token(new.reset_token);
        let odcid = new.odcid.map(quiche::ConnectionId::from_ref);
        let mut conn = quiche::accept(&quiche::ConnectionId::from_ref(new.scid), odcid.as_ref(),
                                      new.local, new.peer, config)?;
        new.observe.attach(&mut conn, "server", new.scid);
        Ok(conn)
    }

    fn connect(config: &mut quiche::Config, new: &NewConn) -> quiche::Result<quiche::Connection> {
        let mut conn = quiche::connect(new.host.and_then(server_name), &quiche::ConnectionId::from_ref(new.scid),
                                       new.local, new.peer, config)?;
        new.observe.attach(&mut conn, "client", new.scid);
        Ok(conn)
    }
}

/// The TLS server name for `host`: none for an IP address literal (RFC
/// 6066 §3 allows only DNS names there; GnuTLS servers refuse the
/// handshake over `::1`), as other QUIC clients do.
fn server_name(host: &str) -> Option<&str> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    match bare.parse::<std::net::IpAddr>() {
        Ok(_) => None,
        Err(_) => Some(host),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn address_literals_are_no_server_names() {
        for ip in ["127.0.0.1", "::1", "[::1]", "fe80::1"] {
            assert_eq!(super::server_name(ip), None, "{ip}");
        }
        for name in ["localhost", "quic.tech", "a.b-c.example"] {
            assert_eq!(super::server_name(name), Some(name));
        }
    }
}
