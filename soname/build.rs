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
//!
//! On macOS (Mach-O) the same name is the install name,
//! `@rpath/libquiche_ev.ABI.dylib` with its current and compatibility
//! versions (`make install` gives the installed copy its absolute path);
//! quiche's build script passes its own `-install_name`, and ld64 keeps
//! the last one too. Everywhere else (Linux, the BSDs: ELF) `-soname`.
//! `make cross-check` checks which one the build script picks per target.

use std::env;

fn main() {
    let major = env::var("CARGO_PKG_VERSION_MAJOR").unwrap();
    let minor = env::var("CARGO_PKG_VERSION_MINOR").unwrap();
    let version = env::var("CARGO_PKG_VERSION").unwrap();
    let abi = if major == "0" { format!("0.{minor}") } else { major };
    match env::var("CARGO_CFG_TARGET_OS").unwrap().as_str() {
        "macos" | "ios" => println!(
            "cargo:rustc-cdylib-link-arg=-Wl,-install_name,@rpath/libquiche_ev.{abi}.dylib,\
             -current_version,{version},-compatibility_version,{abi}"
        ),
        _ => println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libquiche_ev.so.{abi}"),
    }
}
