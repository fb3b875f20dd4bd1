//! include/quiche_ev.h is generated, in sync, carries Cargo.toml's version,
//! and compiles cleanly as the only include in strict C99/C11/C17 (gcc and
//! clang) and as C++ (g++ and clang++) with strict warnings.

mod common;
use common::*;
use std::process::Command;

// The generator build.rs uses, so the check regenerates exactly as a build
// would.
#[allow(dead_code)]
#[path = "../build.rs"]
mod build_script;

const VERSION_PARTS: [&str; 3] =
    [env!("CARGO_PKG_VERSION_MAJOR"), env!("CARGO_PKG_VERSION_MINOR"), env!("CARGO_PKG_VERSION_PATCH")];

#[test]
fn header_is_in_sync_with_the_code() {
    let parts = VERSION_PARTS.map(String::from);
    let mut fresh = Vec::new();
    build_script::generate_header(&root(), env!("CARGO_PKG_VERSION"), &parts).write(&mut fresh);
    let checked_in = std::fs::read(root().join("include/quiche_ev.h")).unwrap();
    assert!(fresh == checked_in,
            "include/quiche_ev.h is stale: run `cargo build` and commit the regenerated header");
}

#[test]
fn header_carries_the_cargo_version() {
    let header = std::fs::read_to_string(root().join("include/quiche_ev.h")).unwrap();
    for (name, value) in ["MAJOR", "MINOR", "PATCH"].iter().zip(VERSION_PARTS) {
        assert!(header.contains(&format!("\n#define QUICHE_EV_VERSION_{name} {value}\n")), "QUICHE_EV_VERSION_{name}");
    }
    assert!(header.contains(&format!("\n#define QUICHE_EV_VERSION \"{}\"\n", env!("CARGO_PKG_VERSION"))));
}

/// A translation unit that uses the header's macros and new functions; the
/// version macros must be integer literals equal to Cargo.toml's (`#if`).
fn program(first: &str) -> String {
    let [major, minor, patch] = VERSION_PARTS;
    format!("{first}#include <quiche_ev.h>
#if QUICHE_EV_VERSION_MAJOR != {major} || QUICHE_EV_VERSION_MINOR != {minor} || QUICHE_EV_VERSION_PATCH != {patch}
#error the version macros differ from Cargo.toml
#endif
int main(void) {{
    const char *v = QUICHE_EV_VERSION;
    const char *(*version)(void) = quiche_ev_version;
    const char *(*quiche)(void) = quiche_ev_quiche_version;
    const char *(*describe)(int) = quiche_ev_strerror;
    (void) v; (void) version; (void) quiche; (void) describe;
    quiche_ev_server_free(NULL);
    return QUICHE_EV_ERR_UNSUPPORTED < 0 ? 0 : 1;
}}
")
}

/// Compiles `src` (syntax only) with `cc` in language `lang`, standard
/// `std`, strict warnings and no feature macro: quiche_ev.h must work as
/// the only include in strict ISO modes.
fn compiles(cc: &str, lang: &str, std: &str, src: &std::path::Path, quiche_h: &std::path::Path) -> Result<(), String> {
    let out = Command::new(cc)
        .args(["-x", lang, &format!("-std={std}"), "-Wall", "-Wextra", "-Werror", "-pedantic", "-fsyntax-only"])
        .arg(format!("-I{}", root().join("include").display()))
        .arg(format!("-I{}", quiche_h.display()))
        .arg(src).output()
        .unwrap_or_else(|e| panic!("{cc} is missing ({e}): apt-get install gcc g++ clang"));
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
}

#[test]
fn header_compiles_cleanly_in_strict_c_and_cpp() {
    let dir = tempdir("header");
    // Alone, and after a system header that already settled the feature
    // macros (so no trick that needs quiche_ev.h to come first).
    let alone = dir.join("alone.c");
    std::fs::write(&alone, program("")).unwrap();
    let after = dir.join("after_stdio.c");
    std::fs::write(&after, program("#include <stdio.h>\n#include <time.h>\n")).unwrap();
    let quiche_h = quiche_package().join("include");
    let mut failures = Vec::new();
    for cc in ["gcc", "clang"] {
        for std in ["c99", "c11", "c17"] {
            for src in [&alone, &after] {
                if let Err(e) = compiles(cc, "c", std, src, &quiche_h) {
                    failures.push(format!("{cc} -std={std} {}:\n{e}", src.display()));
                }
            }
        }
    }
    for cxx in ["g++", "clang++"] {
        for std in ["c++11", "c++17", "c++20"] {
            if let Err(e) = compiles(cxx, "c++", std, &alone, &quiche_h) {
                failures.push(format!("{cxx} -std={std}:\n{e}"));
            }
        }
    }
    assert!(failures.is_empty(), "the header does not compile cleanly:\n{}", failures.join("\n"));
    let header = std::fs::read_to_string(root().join("include/quiche_ev.h")).unwrap();
    assert!(header.contains("#ifndef QUICHE_EV_H"));
    assert!(header.contains("extern \"C\""));
    assert!(header.contains("do not edit"));
    assert!(header.contains("#include <ev.h>") && header.contains("#include <quiche.h>"));
    assert!(header.contains("upstream's `recv_cb`"), "doc comments carried into the header");
}

#[test]
fn c_examples_keep_event_logic_out_of_c() {
    for f in ["server.c", "client.c", "http3-server.c", "http3-client.c", "common.c", "app-server.c", "fetch.c"] {
        let src = std::fs::read_to_string(root().join("c-examples").join(f)).unwrap();
        for banned in ["quiche_conn_send", "quiche_conn_recv", "recvfrom", "sendto", "HASH_", "uthash"] {
            assert!(!src.contains(banned), "{f} uses {banned}: event logic belongs in Rust");
        }
    }
}
