//! Gives quiche-ev's shared library (`libquiche_ev.so`) its soname.
//!
//! Why a crate of its own: quiche's build script emits
//! `cargo:rustc-cdylib-link-arg=-Wl,-soname,libquiche.so.0`, and cargo
//! passes a dependency's cdylib link args on to every cdylib above it
//! (cargo issue #9562, kept for compatibility). The linker keeps the last
//! `-soname`, and cargo orders build-script link args as: the package's
//! own, then its dependencies' in package-name order. A `-soname` from
//! quiche-ev's own build.rs would come first and lose; this crate's name
//! sorts after `quiche`, so its argument comes last and wins.
//! `tests/install.rs` checks the soname of the built library.
//!
//! The rule (libtool-like, following Cargo's semver, as cargo-c does):
//! `libquiche_ev.so.MAJOR` from 1.0.0 on; while the major is 0 every minor
//! release may break the ABI, so `libquiche_ev.so.0.MINOR`. The file is
//! `libquiche_ev.so.MAJOR.MINOR.PATCH` (mk/install.mk, which checks that
//! it computes the same name). The version is quiche-ev's: both packages
//! inherit the workspace's.

use std::env;

fn main() {
    let major = env::var("CARGO_PKG_VERSION_MAJOR").unwrap();
    let minor = env::var("CARGO_PKG_VERSION_MINOR").unwrap();
    let abi = if major == "0" { format!("0.{minor}") } else { major };
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libquiche_ev.so.{abi}");
}
