//! Generates `include/quiche_ev.h` from the `extern "C"` items in
//! `src/ffi/` with cbindgen (settings in `cbindgen.toml`), plus the
//! version macros from Cargo.toml's version.
//!
//! The header is checked in; `tests/header.rs` fails when the checked-in
//! file differs from what this script generates (a copy in OUT_DIR).
//! Set `QUICHE_EV_SKIP_HEADER=1` to build without writing it.
//!
//! The shared library's soname is set elsewhere: see `soname/build.rs`.

use std::env;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=QUICHE_EV_SKIP_HEADER");
    if env::var_os("QUICHE_EV_SKIP_HEADER").is_some() {
        return;
    }
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let version = ["MAJOR", "MINOR", "PATCH"].map(|p| env::var(format!("CARGO_PKG_VERSION_{p}")).unwrap());
    let header = generate_header(&crate_dir, &env::var("CARGO_PKG_VERSION").unwrap(), &version);
    // Write only on change, so an unchanged header keeps its timestamp and
    // `make` does not rebuild the examples for nothing.
    header.write_to_file(crate_dir.join("include/quiche_ev.h"));
    // The same text where tests/header.rs reads it (OUT_DIR), so that the
    // tests need no cbindgen of their own: as a dev-dependency its crates
    // would unify features with quiche's and rebuild quiche for cargo test.
    header.write_to_file(PathBuf::from(env::var("OUT_DIR").unwrap()).join("quiche_ev.h"));
}

/// The header: cbindgen over src/ffi/, with the version macros added after
/// the includes. `version` is Cargo.toml's (`CARGO_PKG_VERSION`), `parts`
/// its major, minor and patch numbers.
pub fn generate_header(crate_dir: &Path, version: &str, parts: &[String; 3]) -> cbindgen::Bindings {
    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    // cbindgen writes a `pub const` only from a literal; these come from
    // Cargo.toml, so they are added as text.
    let macros = format!(
        "

/**
 * The quiche-ev version this header belongs to (Cargo.toml's `version`).
 * `quiche_ev_version()` returns the linked library's, which should match.
 */
#define QUICHE_EV_VERSION_MAJOR {}
#define QUICHE_EV_VERSION_MINOR {}
#define QUICHE_EV_VERSION_PATCH {}
#define QUICHE_EV_VERSION \"{version}\"

/**
 * The ALPN of hq-interop (HTTP/0.9 over QUIC), in the length-prefixed form
 * `quiche_config_set_application_protos` takes, beside quiche.h's
 * `QUICHE_H3_APPLICATION_PROTOCOL`; pass `sizeof(...) - 1` as its length.
 */
#define QUICHE_EV_HQ_APPLICATION_PROTOCOL \"\\x0ahq-interop\"",
        parts[0], parts[1], parts[2]
    );
    config.after_includes = Some(config.after_includes.unwrap_or_default() + &macros);
    // Only src/ffi/ is the C API: cbindgen reads that module (and its
    // submodules) alone, so internal constants and types never leak into
    // the header.
    cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/ffi/mod.rs"))
        .generate()
        .expect("cbindgen can read the C API")
}
