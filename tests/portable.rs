//! The portable build (`make portable`: the library with its `portable`
//! feature, which takes the code paths of the platforms other than Linux,
//! and the examples linked against it in target/portable/c-examples/):
//!
//! - it passes the whole parity matrix (tests/compare/compare.py: ours
//!   against upstream's samples, aioquic and ngtcp2, hq-interop and
//!   HTTP/3) as the main build does;
//! - it really is the other path: under strace its server and client read
//!   with `recvfrom` and send with `sendto` and never call `recvmmsg`,
//!   `sendmsg` or set UDP_GRO / UDP_SEGMENT, while the main build's do (the
//!   control that shows the check can fail);
//! - its archive's quiche-ev objects reference neither `recvmmsg`,
//!   `sendmsg` nor `getrandom` (but `recvfrom`, `sendto`, `getentropy`),
//!   while the main archive's reference them.
//!
//! `make portable-check` and `make test` build it first; these tests never
//! build.

mod common;
use common::*;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn portable_examples() -> PathBuf {
    let dir = root().join("target/portable/c-examples");
    assert!(dir.join("server").exists(), "{} is missing: run `make portable`", dir.display());
    dir
}

#[test]
fn the_portable_examples_pass_the_parity_matrix() {
    let report = root().join("target/portable/compare.md");
    let out = Command::new("python3").arg(root().join("tests/compare/compare.py"))
        .arg("--ours-dir").arg(portable_examples()).arg("--report").arg(&report)
        .current_dir(root()).output().expect("cannot run python3");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "the parity matrix failed with the portable build:\n{stdout}\n{stderr}");
    assert!(stdout.contains("all pairs pass"), "{stdout}");
    let md = std::fs::read_to_string(&report).unwrap();
    for pair in ["hq: ours -> ours", "hq: ours -> upstream", "hq: upstream -> ours", "hq: aioquic -> ours",
                 "hq: ours -> aioquic", "h3: ours -> ours", "h3: ours -> upstream", "h3: upstream -> ours",
                 "h3: aioquic -> ours", "h3: ours -> aioquic", "h3: ngtcp2 -> ours", "h3: ours -> ngtcp2"] {
        assert!(md.contains(&format!("| {pair} |")), "{pair} missing from the report:\n{md}");
    }
}

/// The system calls a traced process made on its sockets, one per line.
const TRACED: &str = "trace=recvmmsg,sendmsg,setsockopt,recvfrom,sendto";

fn strace(log: &Path, program: &Path) -> Command {
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-e", TRACED, "-o"]).arg(log).arg(program)
        .env("QUICHE_EV_QUIET", "1").env_remove("SSLKEYLOGFILE").env_remove("QLOGDIR")
        .current_dir(root().join("c-examples"));
    cmd
}

/// Runs `server` and `client` (hq-interop) from `dir` under strace: their
/// traces, after a complete exchange and a clean server shutdown.
fn traced_exchange(dir: &Path, tag: &str) -> (String, String) {
    let tmp = tempdir(&format!("strace-{tag}"));
    let (server_log, client_log) = (tmp.join("server.strace"), tmp.join("client.strace"));
    let port = free_udp_port();
    let mut server = Server::fixed_port(
        { let mut c = strace(&server_log, &dir.join("server")); c.args(["127.0.0.1", &port.to_string()]); c }, port);
    let mut client = strace(&client_log, &dir.join("client"));
    client.args(["127.0.0.1", &port.to_string()]);
    let run = run(client, DEADLINE);
    assert_eq!((run.code(), run.stdout.as_slice()), (Some(0), &b"byez\n"[..]), "{}", run.stderr);
    // SIGTERM to the server itself (strace's child), which shuts down and
    // exits 0; strace then writes the rest of its trace and exits too.
    let strace_pid = server.child.id();
    let children = std::fs::read_to_string(format!("/proc/{strace_pid}/task/{strace_pid}/children")).unwrap();
    let pid: i32 = children.split_whitespace().next().expect("strace's child").parse().unwrap();
    // SAFETY: a signal to a process this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = server.wait_exit(DEADLINE).expect("the server did not stop");
    assert!(status.success(), "server: {status}\n{}", server.stderr.dump());
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (read(&server_log), read(&client_log))
}

fn calls(trace: &str) -> BTreeSet<&str> {
    trace.lines().filter_map(|l| l.split_whitespace().nth(1)?.split('(').next()).collect()
}

#[test]
fn the_portable_examples_make_none_of_the_linux_only_calls() {
    assert!(Command::new("strace").arg("-V").output().is_ok_and(|o| o.status.success()),
            "strace is missing: apt-get install strace (make deps)");
    // The control: the main build batches (recvmmsg + GRO both ways, GSO
    // for the server's multi-packet flights).
    let (server, client) = traced_exchange(&root().join("c-examples"), "main");
    for (side, trace) in [("server", &server), ("client", &client)] {
        assert!(calls(trace).contains("recvmmsg") && trace.contains("UDP_GRO"),
                "main {side}: no recvmmsg / UDP_GRO, the check would prove nothing:\n{trace}");
    }
    // strace names the option but shows a UDP_SEGMENT control message as
    // cmsg_type=0x67 (103): a sendmsg with SOL_UDP control data.
    assert!(server.lines().any(|l| l.contains("sendmsg(") && l.contains("cmsg_level=SOL_UDP")),
            "main server: no GSO send:\n{server}");
    // The portable build: one recvfrom / sendto per packet, nothing else.
    let (server, client) = traced_exchange(&portable_examples(), "portable");
    for (side, trace) in [("server", &server), ("client", &client)] {
        let made = calls(trace);
        assert!(made.contains("recvfrom") && made.contains("sendto"), "portable {side}:\n{trace}");
        for linux_only in ["recvmmsg", "sendmsg"] {
            assert!(!made.contains(linux_only), "portable {side} calls {linux_only}:\n{trace}");
        }
        // No UDP-level option or control message (GRO, GSO) at all.
        assert!(!trace.contains("SOL_UDP"), "portable {side} uses SOL_UDP:\n{trace}");
    }
}

/// The undefined symbols of `crate`'s own objects in `archive` (rustc
/// names them CRATE.CRATE.HASH-cgu.N.rcgu.o or CRATE-HASH.CRATE.HASH-...).
fn crate_imports(archive: &Path, krate: &str) -> BTreeSet<String> {
    let out = Command::new("nm").args(["-A", "--undefined-only"]).arg(archive).output().expect("nm (binutils)");
    assert!(out.status.success(), "nm {}: {}", archive.display(), String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut members = BTreeSet::new();
    let mut imports = BTreeSet::new();
    for line in text.lines() {
        // archive:member: U symbol
        let mut parts = line.splitn(3, ':');
        let (_, Some(member), Some(rest)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let ours = (member.starts_with(&format!("{krate}.")) || member.starts_with(&format!("{krate}-")))
            && member.contains(&format!(".{krate}.")) && member.ends_with(".rcgu.o");
        if ours {
            members.insert(member.to_string());
            if let Some(sym) = rest.split_whitespace().last() {
                imports.insert(sym.to_string());
            }
        }
    }
    assert!(!members.is_empty(), "no object of {krate} found in {}", archive.display());
    imports
}

#[test]
fn the_portable_archive_references_no_linux_only_function() {
    let main = crate_imports(&root().join("target/release/libquiche_ev.a"), "quiche_ev");
    for f in ["recvmmsg", "sendmsg", "getrandom", "recvfrom", "sendto"] {
        assert!(main.contains(f), "the main archive does not reference {f}: the check below would prove nothing");
    }
    let lib = root().join("target/release/libquiche_ev_portable.a");
    assert!(lib.exists(), "{} is missing: run `make portable`", lib.display());
    let portable = crate_imports(&lib, "quiche_ev_portable");
    for f in ["recvmmsg", "sendmsg", "getrandom"] {
        assert!(!portable.contains(f), "the portable archive references {f}");
    }
    for f in ["recvfrom", "sendto", "getentropy"] {
        assert!(portable.contains(f), "the portable archive does not reference {f}");
    }
}
