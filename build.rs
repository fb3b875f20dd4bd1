//! Generates `include/quiche_ev.h` from the `extern "C"` items in
//! `src/ffi/` with cbindgen (settings in `cbindgen.toml`).
//!
//! The header is checked in; `tests/header.rs` fails when regenerating it
//! would change it. Set `QUICHE_EV_SKIP_HEADER=1` to build without writing it.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=QUICHE_EV_SKIP_HEADER");
    if env::var_os("QUICHE_EV_SKIP_HEADER").is_some() {
        return;
    }
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    // Only src/ffi/ is the C API: cbindgen reads that module (and its
    // submodules) alone, so internal constants and types never leak into
    // the header.
    let header = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/ffi/mod.rs"))
        .generate()
        .expect("cbindgen can read the C API");
    let path = crate_dir.join("include/quiche_ev.h");
    // Write only on change, so an unchanged header keeps its timestamp and
    // `make` does not rebuild the examples for nothing.
    header.write_to_file(&path);
}

