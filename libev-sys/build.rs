//! Links the system libev and compiles the shim for its macro-only API.
//!
//! Debian's libev-dev has no pkg-config file, so `ev` is linked by name.
//! `LIBEV_DIR=/prefix` points at another install (`/prefix/include/ev.h`,
//! `/prefix/lib/libev.*`).

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBEV_DIR");
    println!("cargo:rerun-if-changed=shim/ev_shim.c");

    let mut build = cc::Build::new();
    build.file("shim/ev_shim.c").warnings(true).extra_warnings(true);

    if let Ok(dir) = env::var("LIBEV_DIR") {
        let dir = PathBuf::from(dir);
        build.include(dir.join("include"));
        println!("cargo:rustc-link-search=native={}", dir.join("lib").display());
        println!("cargo:include={}", dir.join("include").display());
    }

    build.compile("ev_shim");
    println!("cargo:rustc-link-lib=ev");
}
