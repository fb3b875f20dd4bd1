//! Application protocols that plug into the transport: hq-interop (HTTP/0.9
//! over QUIC, upstream's `server.c`/`client.c`) and HTTP/3
//! (`http3-server.c`/`http3-client.c`).
//!
//! The transport (`server`, `client`, `conn_io`) calls these hooks after it
//! has fed packets to quiche; the hooks only touch streams.

pub mod h3;
pub mod hq;
pub mod serve;

use std::io::Write;

/// Which application a server runs for every connection.
pub enum ServerAppConfig {
    Hq { serve: serve::Responder },
    /// The `quiche_h3_config` is borrowed from C for the server's life.
    H3 { config: *mut quiche::h3::Config, serve: serve::Responder },
}

/// Per-connection server application state.
pub enum ServerApp {
    Hq(hq::HqServer),
    H3(h3::H3Server),
}

impl ServerApp {
    pub fn new(cfg: &ServerAppConfig) -> Self {
        match cfg {
            ServerAppConfig::Hq { .. } => ServerApp::Hq(hq::HqServer::default()),
            ServerAppConfig::H3 { .. } => ServerApp::H3(h3::H3Server::default()),
        }
    }

    /// Called after packets were processed for an established (or
    /// early-data) connection.
    pub fn on_recv(&mut self, conn: &mut quiche::Connection, cfg: &ServerAppConfig) {
        match (self, cfg) {
            (ServerApp::Hq(app), ServerAppConfig::Hq { serve }) => app.on_recv(conn, serve),
            (ServerApp::H3(app), ServerAppConfig::H3 { config, serve }) => {
                // SAFETY: the config outlives the server (documented in the
                // C API) and is only read here.
                let h3_config = unsafe { &**config };
                app.on_recv(conn, h3_config, serve)
            }
            _ => unreachable!("connection app and server app config always match"),
        }
    }
}

/// How a client's exchange ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Still waiting for (part of) the response.
    Pending,
    /// Every requested response arrived in full.
    Complete,
    /// The request failed; the message says how.
    Failed(String),
}

/// Per-connection client application state.
// One per process: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum ClientApp {
    Hq(hq::HqClient),
    H3(h3::H3Client),
}

impl ClientApp {
    /// Sends the request(s) once the handshake completes.
    pub fn on_established(&mut self, conn: &mut quiche::Connection) {
        match self {
            ClientApp::Hq(app) => app.on_established(conn),
            ClientApp::H3(app) => app.on_established(conn),
        }
    }

    /// Reads what arrived; response bodies go to `out`.
    pub fn on_recv(&mut self, conn: &mut quiche::Connection, out: &mut dyn Write) {
        match self {
            ClientApp::Hq(app) => app.on_recv(conn, out),
            ClientApp::H3(app) => app.on_recv(conn, out),
        }
    }

    pub fn outcome(&self) -> &Outcome {
        match self {
            ClientApp::Hq(app) => &app.outcome,
            ClientApp::H3(app) => &app.outcome,
        }
    }
}
