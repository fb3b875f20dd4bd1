//! The built-in server applications, used when the host set no request
//! callback: upstream's fixed answer (`byez\n` to everything) and files
//! under a document root. They answer through the same request
//! operations a host uses (`respond_body`, `respond`), so there is one
//! request path, not two.

use std::rc::Rc;

use quiche::h3::{self, NameValue};

use super::body::Body;
use super::files::Root;
use super::framing::AppPlatform;
use super::host::ServerHost;
use super::request::Request;
use super::server::{respond, respond_body, respond_bytes};

/// The fixed answer of upstream's servers.
pub const BYEZ: &[u8] = b"byez\n";

#[derive(Clone)]
pub enum Builtin {
    /// `byez\n` for every request, like upstream.
    Byez,
    /// Files under the root; 404 (HTTP/3) or a stream reset (hq-interop)
    /// for anything missing or outside it.
    Files(Rc<Root>),
}

fn headers(len: u64) -> [h3::Header; 2] {
    [h3::Header::new(b"server", b"quiche"), h3::Header::new(b"content-length", len.to_string().as_bytes())]
}

impl Builtin {
    /// Answers request `r`. Like upstream's servers, it prints the
    /// request's header fields (HTTP/3) at info level first; a host's own
    /// request callback sees them at debug level only.
    ///
    /// # Safety
    /// `r` is a live request handle; no borrow of its server is alive.
    pub unsafe fn respond<P: AppPlatform, H: ServerHost<P>>(&self, r: *mut Request<P, H>) {
        if (*r).h3 && crate::log::enabled(crate::log::Level::Info) {
            for h in &(*r).headers {
                log_info!("got HTTP header: {}={}", String::from_utf8_lossy(h.name()),
                          String::from_utf8_lossy(h.value()));
            }
        }
        let result = match self {
            Builtin::Byez => respond_bytes(r, 200, &headers(BYEZ.len() as u64), BYEZ),
            Builtin::Files(root) => {
                let body = root.open_file((*r).path_bytes()).map(|(f, len)| Body::from_file(f, len));
                match body {
                    Some(b) => respond_body(r, 200, &headers(b.len()), b),
                    None => respond(r, 404, &headers(0), true),
                }
            }
        };
        if let Err(e) = result {
            log_debug!("built-in response failed: {e:?}");
        }
    }
}
