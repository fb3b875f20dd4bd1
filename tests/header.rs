//! include/quiche_ev.h is generated, in sync, carries Cargo.toml's version,
//! and the headers as installed (quiche_ev.h, the quiche.h wrapper and
//! quiche's own header) compile cleanly alone and with quiche.h before or
//! after quiche_ev.h, in strict C99/C11/C17 (gcc and clang) and as C++
//! (g++ and clang++) with strict warnings.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const VERSION_PARTS: [&str; 3] =
    [env!("CARGO_PKG_VERSION_MAJOR"), env!("CARGO_PKG_VERSION_MINOR"), env!("CARGO_PKG_VERSION_PATCH")];

#[test]
fn header_is_in_sync_with_the_code() {
    // build.rs generates the header from src/ffi/ and leaves a copy in
    // OUT_DIR (QUICHE_EV_SKIP_HEADER builds none: then nothing to compare).
    let Some(fresh) = option_env!("OUT_DIR").map(|d| Path::new(d).join("quiche_ev.h")).filter(|p| p.exists()) else {
        return;
    };
    let fresh = std::fs::read(fresh).unwrap();
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
/// `before` and `after` are lines around `#include <quiche_ev.h>`.
fn program(before: &str, after: &str) -> String {
    let [major, minor, patch] = VERSION_PARTS;
    format!("{before}#include <quiche_ev.h>
{after}#if QUICHE_EV_VERSION_MAJOR != {major} || QUICHE_EV_VERSION_MINOR != {minor} || QUICHE_EV_VERSION_PATCH != {patch}
#error the version macros differ from Cargo.toml
#endif
int main(void) {{
    const char *v = QUICHE_EV_VERSION;
    const char *(*version)(void) = quiche_ev_version;
    const char *(*quiche)(void) = quiche_ev_quiche_version;
    const char *(*describe)(int) = quiche_ev_strerror;
    const char *(*upstream)(void) = quiche_version;
    (void) v; (void) version; (void) quiche; (void) describe; (void) upstream;
    quiche_ev_server_free(NULL);
    return QUICHE_EV_ERR_UNSUPPORTED < 0 ? 0 : 1;
}}
")
}

/// Compiles `src` (syntax only) with `cc` in language `lang`, standard
/// `std`, strict warnings and no feature macro, with `includes` as -I
/// folders: the headers must work in strict ISO modes.
fn compiles(cc: &str, lang: &str, std: &str, src: &Path, includes: &[PathBuf]) -> Result<(), String> {
    let out = Command::new(cc)
        .args(["-x", lang, &format!("-std={std}"), "-Wall", "-Wextra", "-Werror", "-pedantic", "-fsyntax-only"])
        .args(includes.iter().map(|d| format!("-I{}", d.display())))
        .arg(src).output()
        .unwrap_or_else(|e| panic!("{cc} is missing ({e}): apt-get install gcc g++ clang"));
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
}

/// The headers as `make install` lays them out (one folder there):
/// include/quiche_ev.h, and what `make` staged in target/include/ (the
/// quiche.h wrapper, mk/quiche.h, and quiche's own header in upstream/).
fn installed_layout() -> Vec<PathBuf> {
    let staged = root().join("target/include");
    for f in ["quiche.h", "upstream/quiche.h"] {
        assert!(staged.join(f).exists(), "{} is missing: run `make` first", staged.join(f).display());
    }
    vec![root().join("include"), staged]
}

#[test]
fn the_staged_headers_are_the_wrapper_and_quiches_own() {
    let staged = root().join("target/include");
    assert!(std::fs::read(staged.join("upstream/quiche.h")).unwrap()
            == std::fs::read(quiche_package().join("include/quiche.h")).unwrap(),
            "target/include/upstream/quiche.h differs from the pinned quiche's: run `make`");
    assert!(std::fs::read(staged.join("quiche.h")).unwrap() == std::fs::read(root().join("mk/quiche.h")).unwrap(),
            "target/include/quiche.h differs from mk/quiche.h: run `make`");
}

#[test]
fn header_compiles_cleanly_in_strict_c_and_cpp_in_any_order() {
    let dir = tempdir("header");
    // Alone; after a system header that already settled the feature
    // macros (so no trick that needs quiche_ev.h to come first); after
    // quiche.h, as most programs write it; and before it.
    let sources: Vec<(&str, PathBuf)> = [
        ("alone", program("", "")),
        ("after_stdio", program("#include <stdio.h>\n#include <time.h>\n", "")),
        ("after_quiche", program("#include <quiche.h>\n", "")),
        ("before_quiche", program("", "#include <quiche.h>\n")),
    ].into_iter().map(|(name, text)| {
        let p = dir.join(format!("{name}.c"));
        std::fs::write(&p, text).unwrap();
        (name, p)
    }).collect();
    let includes = installed_layout();
    // 48 compilations, one thread per compiler.
    let failures: Vec<String> = std::thread::scope(|scope| {
        let jobs: Vec<_> = [("gcc", "c", ["c99", "c11", "c17"]), ("clang", "c", ["c99", "c11", "c17"]),
                            ("g++", "c++", ["c++11", "c++17", "c++20"]), ("clang++", "c++", ["c++11", "c++17", "c++20"])]
            .into_iter().map(|(cc, lang, stds)| {
                let (sources, includes) = (&sources, &includes);
                scope.spawn(move || {
                    let mut failures = Vec::new();
                    for std in stds {
                        for (name, src) in sources {
                            if let Err(e) = compiles(cc, lang, std, src, includes) {
                                failures.push(format!("{cc} -std={std} {name}:\n{e}"));
                            }
                        }
                    }
                    failures
                })
            }).collect();
        jobs.into_iter().flat_map(|j| j.join().unwrap()).collect()
    });
    assert!(failures.is_empty(), "the headers do not compile cleanly:\n{}", failures.join("\n"));
    let header = std::fs::read_to_string(root().join("include/quiche_ev.h")).unwrap();
    assert!(header.contains("#ifndef QUICHE_EV_H"));
    assert!(header.contains("extern \"C\""));
    assert!(header.contains("do not edit"));
    assert!(header.contains("#include <ev.h>") && header.contains("#include <quiche.h>"));
    assert!(header.contains("upstream's `recv_cb`"), "doc comments carried into the header");
}

#[test]
fn quiches_own_header_first_fails_in_strict_c_which_the_wrapper_fixes() {
    // The problem the installed quiche.h solves, so the test above is not
    // vacuous: with quiche's header itself first, strict C11 has no struct
    // timespec. When a quiche release fixes its header this fails: the
    // wrapper (mk/quiche.h) may then go.
    let dir = tempdir("header-raw");
    let src = dir.join("raw_quiche_first.c");
    std::fs::write(&src, program("#include <quiche.h>\n", "")).unwrap();
    let raw = vec![root().join("include"), quiche_package().join("include")];
    let e = compiles("gcc", "c", "c11", &src, &raw).expect_err("quiche.h first compiled without the wrapper");
    assert!(e.contains("timespec"), "{e}");
    compiles("gcc", "c", "c11", &src, &installed_layout()).expect("the wrapper fixes it");
}

#[test]
fn c_examples_keep_event_logic_out_of_c() {
    for f in ["server.c", "client.c", "http3-server.c", "http3-client.c", "common.c", "app-server.c", "fetch.c",
              "udp-proxy.c"] {
        let src = std::fs::read_to_string(root().join("c-examples").join(f)).unwrap();
        for banned in ["quiche_conn_send", "quiche_conn_recv", "recvfrom", "sendto", "HASH_", "uthash"] {
            assert!(!src.contains(banned), "{f} uses {banned}: event logic belongs in Rust");
        }
    }
}
