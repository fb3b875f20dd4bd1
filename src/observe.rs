//! Looking into connections from outside: TLS key logs (for decrypting a
//! capture) and qlog traces, on both sides, set up per connection as it is
//! created.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use libc::c_void;

/// A connection a key log and a qlog can be attached to.
pub trait Observed {
    fn set_keylog(&mut self, writer: Box<dyn Write + Send + Sync>);
    fn set_qlog(&mut self, writer: Box<dyn Write + Send + Sync>, title: String, description: String);
    fn source_id(&self) -> Vec<u8>;
}

impl Observed for quiche::Connection {
    fn set_keylog(&mut self, writer: Box<dyn Write + Send + Sync>) {
        quiche::Connection::set_keylog(self, writer)
    }
    fn set_qlog(&mut self, writer: Box<dyn Write + Send + Sync>, title: String, description: String) {
        quiche::Connection::set_qlog(self, writer, title, description)
    }
    fn source_id(&self) -> Vec<u8> {
        quiche::Connection::source_id(self).to_vec()
    }
}

/// A connection configuration that can turn key logging on.
pub trait LogKeys {
    fn log_keys(&mut self);
}

impl LogKeys for quiche::Config {
    fn log_keys(&mut self) {
        quiche::Config::log_keys(self)
    }
}

/// One key log file shared by every connection of a handle.
#[derive(Clone)]
struct KeyLog(Arc<Mutex<File>>);

impl Write for KeyLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Lines must not interleave: write each whole, unbuffered, so the
        // file is complete whenever a capture is decrypted.
        let mut f = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What a handle records for each new connection.
#[derive(Default)]
pub struct Observe {
    keylog: Option<KeyLog>,
    qlog_dir: Option<PathBuf>,
    /// The config the handle's connections come from (see `set_config`),
    /// with the function that turns key logging on in it.
    config: Option<(*mut c_void, unsafe fn(*mut c_void))>,
}

impl Observe {
    /// The config the handle's connections come from: `set_keylog` turns
    /// key logging on there.
    ///
    /// # Safety
    /// `config` is NULL or outlives this value, and is used only on the
    /// thread that uses this value (the C API's contract for the config
    /// given to `quiche_ev_server_new` / `quiche_ev_client_new`).
    pub unsafe fn set_config<C: LogKeys>(&mut self, config: *mut C) {
        unsafe fn on<C: LogKeys>(c: *mut c_void) {
            // SAFETY: the pointer set_config was given (its contract).
            unsafe { (*c.cast::<C>()).log_keys() }
        }
        self.config = (!config.is_null()).then_some((config.cast(), on::<C> as unsafe fn(*mut c_void)));
    }

    /// Appends TLS secrets (NSS key log format) to `path` from now on, and
    /// turns key logging on in the config given to `set_config`: quiche
    /// hands a connection's secrets to its key log only when its config
    /// has `log_keys` on. A connection that already exists logs the
    /// secrets it derives from then on (BoringSSL looks the config's
    /// callback up at each secret): all of them for a client's connection
    /// right after `quiche_ev_client_new`, which has sent nothing yet.
    pub fn set_keylog(&mut self, path: &Path) -> io::Result<()> {
        let f = OpenOptions::new().create(true).append(true).open(path)?;
        self.keylog = Some(KeyLog(Arc::new(Mutex::new(f))));
        if let Some((config, on)) = self.config {
            // SAFETY: valid and ours on this thread (set_config's contract).
            unsafe { on(config) };
        }
        Ok(())
    }

    /// Writes one qlog file (JSON-SEQ) per connection into `dir`.
    pub fn set_qlog_dir(&mut self, dir: &Path) -> io::Result<()> {
        if !dir.is_dir() {
            std::fs::create_dir_all(dir)?;
        }
        self.qlog_dir = Some(dir.to_path_buf());
        Ok(())
    }

    /// Sets up key logging and qlog for a connection just created.
    pub fn attach(&self, conn: &mut impl Observed, role: &str, scid: &[u8]) {
        self.attach_keylog(conn);
        self.qlog_for(conn, role, scid);
    }

    pub fn attach_keylog(&self, conn: &mut impl Observed) {
        if let Some(k) = &self.keylog {
            conn.set_keylog(Box::new(k.clone()));
        }
    }

    /// qlog for a connection that already exists (its own SCID names it).
    pub fn attach_qlog(&self, conn: &mut impl Observed, role: &str) {
        let scid = conn.source_id();
        self.qlog_for(conn, role, &scid);
    }

    fn qlog_for(&self, conn: &mut impl Observed, role: &str, scid: &[u8]) {
        if let Some(dir) = &self.qlog_dir {
            let id: String = scid.iter().map(|b| format!("{b:02x}")).collect();
            let path = dir.join(format!("{role}-{id}.sqlog"));
            match File::create(&path) {
                Ok(f) => conn.set_qlog(Box::new(BufWriter::new(f)), format!("quiche-ev {role}"),
                                       format!("{role} connection {id}")),
                Err(e) => log_warn!("cannot write qlog {}: {e}", path.display()),
            }
        }
    }
}
