//! Opaque stand-ins for C types that other headers define (`quiche.h`,
//! `ev.h`, `<sys/socket.h>`); cbindgen is told not to emit them.

/// `quiche_config` from quiche.h: quiche's ffi boxes a `quiche::Config`.
#[repr(C)]
pub struct quiche_config {
    _private: [u8; 0],
}

/// `quiche_h3_config` from quiche.h: a boxed `quiche::h3::Config`.
#[repr(C)]
pub struct quiche_h3_config {
    _private: [u8; 0],
}

impl quiche_config {
    /// The `quiche::Config` behind a C `quiche_config *`. This holds for
    /// the pinned quiche version, whose `quiche_config_new` returns
    /// `Box::into_raw(Box<Config>)`; `tests/config_identity.rs` proves it.
    pub fn as_config(p: *mut quiche_config) -> *mut quiche::Config {
        p.cast()
    }
}

impl quiche_h3_config {
    /// The `quiche::h3::Config` behind a C `quiche_h3_config *`.
    pub fn as_config(p: *mut quiche_h3_config) -> *mut quiche::h3::Config {
        p.cast()
    }
}
