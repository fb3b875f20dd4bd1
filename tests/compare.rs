//! The behaviour parity harness (`tests/compare/compare.py`, `make
//! compare`) as part of `cargo test`: the whole matrix must pass, and the
//! harness itself must catch a broken server, name the pair, and refuse to
//! run (with the install command) when a peer is missing.
//!
//! `make test` builds everything the harness needs first (`all upstream
//! peers`); these tests never build.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn harness() -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg(root().join("tests/compare/compare.py")).current_dir(root());
    cmd
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// A fresh directory under the system temp dir, unique to this test.
fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("quiche-ev-compare-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

#[test]
fn every_pair_matches_upstream_but_for_intended_differences() {
    let o = harness().output().expect("cannot run python3");
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "the parity matrix failed:\n{out}\n{err}");
    assert!(out.contains("all pairs pass"), "{out}");
    let report = read(&root().join("target/compare.md"));
    assert!(!report.contains("REGRESSION"), "{report}");
    // Every pairing the matrix promises is in the report.
    for pair in ["hq: ours -> ours", "hq: ours -> upstream", "hq: upstream -> ours",
                 "hq: upstream -> upstream", "hq: upstream-ev -> upstream-ev",
                 "hq: aioquic -> ours", "hq: ours -> aioquic",
                 "h3: ours -> ours", "h3: ours -> upstream", "h3: upstream -> ours",
                 "h3: upstream -> upstream", "h3: upstream-ev -> upstream-ev",
                 "h3: aioquic -> ours", "h3: ours -> aioquic",
                 "h3: ngtcp2 -> ours", "h3: ours -> ngtcp2"] {
        assert!(report.contains(&format!("| {pair} |")), "{pair} missing from the report:\n{report}");
    }
}

#[test]
fn a_server_answering_byex_fails_the_harness_and_is_named() {
    // Our servers with --root serving a wrong body: "/" and "/index.html"
    // both map to DIR/index.html.
    let dir = tempdir("byex");
    std::fs::write(dir.join("index.html"), b"byex\n").unwrap();
    let report = dir.join("compare.md");
    let o = harness()
        .arg("--ours-server-args").arg(format!("--root {}", dir.display()))
        .arg("--only").arg("upstream -> ours")
        .arg("--report").arg(&report)
        .output().expect("cannot run python3");
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "a broken server must fail the run:\n{out}\n{err}");
    for pair in ["hq: upstream -> ours", "h3: upstream -> ours"] {
        assert!(out.contains(&format!("REGRESSION in {pair} ")), "{pair} not named:\n{out}");
        assert!(err.contains(&format!("compare: FAILED {pair}\n")), "{pair} not named:\n{err}");
    }
    assert!(out.contains(r"stdout [client]: reference 'byez\n' -> this pair 'byex\n'"), "{out}");
    // The references (upstream's own server) still pass.
    assert!(out.contains("hq: upstream -> upstream") && out.contains("baseline ok"), "{out}");
    let md = read(&report);
    assert!(md.contains("**REGRESSION**"), "{md}");
    assert!(md.contains("byex"), "{md}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_peer_is_an_error_with_the_install_command() {
    // A PATH with python3 and stdbuf but no gtlsserver / gtlsclient.
    let bin = tempdir("path");
    // python3 may be a shim (pyenv) that needs PATH: link the interpreter.
    let py = Command::new("python3").args(["-c", "import sys; print(sys.executable)"])
        .output().expect("cannot run python3");
    let py = String::from_utf8(py.stdout).unwrap().trim().to_string();
    std::os::unix::fs::symlink(&py, bin.join("python3")).unwrap();
    let stdbuf = which("stdbuf").expect("stdbuf not on PATH");
    std::os::unix::fs::symlink(stdbuf, bin.join("stdbuf")).unwrap();
    let o = harness().env("PATH", &bin).output().expect("cannot run python3");
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}\n{err}");
    assert!(err.contains("gtlsserver not found: run `apt-get install ngtcp2-server ngtcp2-client`"),
            "{err}");
    assert!(!out.contains("pass"), "nothing may run with a peer missing:\n{out}");
    let _ = std::fs::remove_dir_all(&bin);
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}
