//! `make compare` inside `make test`: the parity matrix passes, and the
//! harness itself fails (naming the pair) when our server misbehaves.

mod common;
use common::*;
use std::process::Command;
use std::time::Duration;

fn harness(args: &[&str]) -> Run {
    let mut cmd = Command::new("python3");
    cmd.arg(root().join("tests/parity/compare.py")).args(args);
    run(cmd, Duration::from_secs(600))
}

#[test]
fn every_pair_matches_upstream_or_differs_only_as_intended() {
    let r = harness(&[]);
    let out = String::from_utf8_lossy(&r.stdout);
    assert_eq!(r.code(), Some(0), "{out}\n{}", r.stderr);
    assert!(out.contains(" passed, 0 failed"), "{out}");
    let report = std::fs::read_to_string(root().join("target/compare.md")).unwrap();
    assert!(report.contains("| h3: ngtcp2 client -> ours server | pass |"), "{report}");
    assert!(report.contains("| hq: upstream-ev client -> ours server | pass |"), "{report}");
}

#[test]
fn a_broken_server_fails_the_harness_and_is_named() {
    let dir = tempdir("broken");
    std::fs::write(dir.join("index.html"), b"byex\n").unwrap();
    let args = format!("--root {}", dir.display());
    let r = harness(&["--ours-server-args", &args, "--only", "hq: upstream client -> ours server"]);
    assert_eq!(r.code(), Some(1), "{}", String::from_utf8_lossy(&r.stdout));
    assert!(r.stderr.contains("regressions in: hq: upstream client -> ours server"), "{}", r.stderr);
    assert!(String::from_utf8_lossy(&r.stdout).contains("client stdout b'byex\\n'"));
}
