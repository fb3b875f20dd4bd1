//! The local interop runner (`tests/interop/`, `make interop`) in `cargo
//! test`: its Python unit tests (every impairment of the network simulator;
//! the checks failing on altered real runs), and the quick subset of the
//! matrix (`make interop-quick`: handshake, transfer, retry, http3 and
//! transferloss for ours/ours, ours/aioquic and aioquic/ours), which must
//! have no failing cell; a cell whose endpoint exits 127 (unsupported) is
//! allowed.
//!
//! `make test` builds everything the runner needs first (`all upstream
//! peers`); these tests never build.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// One at a time: both start many processes on a 2-core machine.
static SERIAL: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python(args: &[&str]) -> (Option<i32>, String) {
    let o = Command::new("python3")
        .args(args)
        .current_dir(root())
        .output()
        .expect("cannot run python3");
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    (o.status.code(), text)
}

#[test]
fn the_runners_unit_tests_pass() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (code, out) = python(&["-m", "unittest", "discover", "-s", "tests/interop", "-p", "test_*.py"]);
    assert_eq!(code, Some(0), "interop runner unit tests failed:\n{out}");
    assert!(out.contains("OK"), "{out}");
}

#[test]
fn the_quick_interop_subset_has_no_failing_cell() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let report = root().join("target/interop-quick.md");
    let _ = std::fs::remove_file(&report);
    let (code, out) = python(&[
        "tests/interop/run.py", "--quick",
        "--report", report.to_str().unwrap(),
        "--logs", root().join("target/interop-logs-quick").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "failing interop cells (logs in target/interop-logs-quick/):\n{out}");
    let md = std::fs::read_to_string(&report).expect("no report written");
    // Every cell of the subset ran: 5 cases x 3 pairs.
    assert!(out.contains("15 runs:"), "{out}");
    assert!(!md.contains("**fail**"), "{md}");
    for case in ["handshake", "transfer", "retry", "http3", "transferloss"] {
        assert!(md.contains(&format!("| {case} |")), "{case} missing from the report:\n{md}");
    }
}
