//! include/quiche_ev.h is generated, in sync, and compiles cleanly as C and
//! C++ with strict warnings.

mod common;
use common::*;
use std::process::Command;

fn quiche_include() -> std::path::PathBuf {
    let out = Command::new(env!("CARGO")).args(["metadata", "--format-version", "1"])
        .current_dir(root()).output().unwrap();
    let meta = String::from_utf8(out.stdout).unwrap();
    // The quiche package's manifest path, without a JSON parser.
    let at = meta.find("/quiche-0.30.0/Cargo.toml").expect("quiche 0.30.0 in cargo metadata");
    let start = meta[..at].rfind('"').unwrap() + 1;
    std::path::PathBuf::from(&meta[start..at]).join("quiche-0.30.0/include")
}

#[test]
fn header_is_in_sync_with_the_code() {
    let config = cbindgen::Config::from_file(root().join("cbindgen.toml")).unwrap();
    let mut fresh = Vec::new();
    cbindgen::Builder::new().with_config(config).with_src(root().join("src/ffi/mod.rs"))
        .generate().unwrap().write(&mut fresh);
    let checked_in = std::fs::read(root().join("include/quiche_ev.h")).unwrap();
    assert!(fresh == checked_in,
            "include/quiche_ev.h is stale: run `cargo build` and commit the regenerated header");
}

#[test]
fn header_compiles_cleanly_as_c_and_cpp() {
    let dir = tempdir("header");
    let src = dir.join("use.c");
    std::fs::write(&src, "#include <quiche_ev.h>\nint main(void) { quiche_ev_server_free(NULL); return 0; }\n").unwrap();
    let inc = quiche_include();
    for (cc, lang) in [("gcc", "c"), ("clang", "c"), ("g++", "c++"), ("clang++", "c++")] {
        if Command::new(cc).arg("--version").output().is_err() {
            if cc.starts_with("clang") {
                panic!("{cc} is missing: apt-get install clang");
            }
            panic!("{cc} is missing");
        }
        // quiche.h and <sys/socket.h> need POSIX declarations in strict C.
        let std = if lang == "c" { "-std=c11" } else { "-std=c++17" };
        let out = Command::new(cc)
            .args(["-x", lang, std, "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Werror", "-pedantic", "-fsyntax-only"])
            .arg(format!("-I{}", root().join("include").display()))
            .arg(format!("-I{}", inc.display()))
            .arg(&src).output().unwrap();
        assert!(out.status.success(), "{cc}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let header = std::fs::read_to_string(root().join("include/quiche_ev.h")).unwrap();
    assert!(header.contains("#ifndef QUICHE_EV_H"));
    assert!(header.contains("extern \"C\""));
    assert!(header.contains("do not edit"));
    assert!(header.contains("#include <ev.h>") && header.contains("#include <quiche.h>"));
    assert!(header.contains("upstream's `recv_cb`"), "doc comments carried into the header");
}

#[test]
fn c_examples_keep_event_logic_out_of_c() {
    for f in ["server.c", "client.c", "http3-server.c", "http3-client.c", "common.c"] {
        let src = std::fs::read_to_string(root().join("c-examples").join(f)).unwrap();
        for banned in ["quiche_conn_send", "quiche_conn_recv", "recvfrom", "sendto", "HASH_", "uthash"] {
            assert!(!src.contains(banned), "{f} uses {banned}: event logic belongs in Rust");
        }
    }
}
