//! Observability of the four examples: TLS key logs that decrypt a real
//! capture (each side on its own), qlog files per connection, `--help`,
//! and the servers' counters line at exit.

mod common;
use common::*;

#[path = "observe/capture.rs"]
mod capture;
use capture::*;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::net::UdpSocket;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const PAIRS: [(&str, &str); 2] = [("server", "client"), ("http3-server", "http3-client")];

// ---- key logs ----

/// Which side of the exchange writes the key log.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Side {
    Server,
    Client,
}

/// A capture filter for the server's port that keeps what Debian 12's
/// Wireshark (4.0) can decrypt. Our clients open with a greased version
/// (0xbabababa, as upstream's do), which earns a Version Negotiation, and
/// the server answers the Initial with a Retry. quiche restarts the TLS
/// handshake after each (a new ClientHello, with a new client random, at
/// CRYPTO offset 0). Wireshark 4.0 keeps the Initial keys it derived for
/// the first version it saw, and takes a later ClientHello at offset 0
/// for a retransmission of the first: it never learns the client random
/// the key log names. So the filter leaves out the attempts before the
/// one that succeeded: long-header packets of the greased version and
/// Version Negotiation (version 0), Retry packets, and the client's
/// Initials without a token (sent before the Retry). udp[8] is the first
/// byte of the UDP payload; udp[13] the DCID length, after which come the
/// DCID, the SCID length and the SCID, then an Initial's token length.
fn decryptable_exchange(port: u16) -> String {
    format!(
        "udp port {port} and not (udp[8] & 0x80 != 0 and (udp[9:4] = 0 or udp[9:4] = 0xbabababa \
         or udp[8] & 0x30 = 0x30 \
         or (dst port {port} and udp[8] & 0x30 = 0 and udp[15 + udp[13] + udp[14 + udp[13]]] = 0)))"
    )
}

/// A client fetches the default path from a server while dumpcap
/// captures the exchange on `lo`; only `side` has `SSLKEYLOGFILE`.
/// Returns the capture and the key log.
fn captured_exchange(srv: &str, cli: &str, side: Side) -> (PathBuf, PathBuf) {
    let dir = tempdir(&format!("keylog-{srv}-{side:?}"));
    let keylog = dir.join("keys.log");
    let keylog_env = ("SSLKEYLOGFILE", keylog.to_str().unwrap());
    // One datagram per QUIC packet: a GSO batch shows up on `lo` as one
    // unsegmented datagram, in which Wireshark cannot find the second
    // short-header packet (tests/interop/pcap.py).
    let no_gso = ("QUICHE_EV_GSO", "0");
    let server_env: &[(&str, &str)] = if side == Side::Server { &[keylog_env, no_gso] } else { &[no_gso] };
    let s = Server::ours_env(srv, &[], server_env);
    let cap = Capture::start(&decryptable_exchange(s.port));

    let mut cmd = our_command(cli);
    cmd.env(no_gso.0, no_gso.1).args(["127.0.0.1", &s.port.to_string()]);
    if side == Side::Client {
        cmd.env(keylog_env.0, keylog_env.1);
    }
    let r = run(cmd, DEADLINE);
    assert_eq!((r.code(), r.stdout.as_slice()), (Some(0), &b"byez\n"[..]), "{cli}: {}", r.stderr);

    let pcap = dir.join("exchange.pcapng");
    cap.finish(&pcap);
    let log = std::fs::read_to_string(&keylog).unwrap_or_default();
    for label in ["CLIENT_HANDSHAKE_TRAFFIC_SECRET ", "SERVER_HANDSHAKE_TRAFFIC_SECRET ",
                  "CLIENT_TRAFFIC_SECRET_0 ", "SERVER_TRAFFIC_SECRET_0 "] {
        assert_eq!(log.lines().filter(|l| l.starts_with(label)).count(), 1,
                   "{side:?}'s key log ({srv}/{cli}) needs one {label}line:\n{log}");
    }
    (pcap, keylog)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Asserts that the key log decrypts the request and the response: for
/// hq-interop the request line and the body, for HTTP/3 the DATA frame
/// (type 0, length 5) carrying the body (the request's HEADERS are QPACK).
fn assert_decrypts(srv: &str, side: Side, pcap: &Path, keylog: &Path) {
    let data = stream_data(pcap, keylog);
    let shown: Vec<String> = data.iter().map(|d| String::from_utf8_lossy(d).into_owned()).collect();
    let wanted: &[&[u8]] = if srv == "server" { &[b"GET /index.html", b"byez\n"] } else { &[b"\x00\x05byez\n"] };
    for w in wanted {
        assert!(data.iter().any(|d| contains(d, w)),
                "{srv}, {side:?}'s key log: no decrypted STREAM data holds {:?}; decrypted: {shown:?}",
                String::from_utf8_lossy(w));
    }
}

/// Without secrets the same capture shows QUIC packets and no STREAM data:
/// what the key log tests find is the key log's doing.
fn assert_opaque_without_keys(pcap: &Path) {
    let empty = pcap.with_file_name("empty-keys.log");
    std::fs::write(&empty, b"").unwrap();
    assert!(quic_packets(pcap, &empty) >= 5, "the capture holds no exchange");
    assert_eq!(stream_data(pcap, &empty), Vec::<Vec<u8>>::new(), "STREAM data decrypted without keys");
}

#[test]
fn the_server_key_log_alone_decrypts_a_capture() {
    for (srv, cli) in PAIRS {
        let (pcap, keylog) = captured_exchange(srv, cli, Side::Server);
        assert_decrypts(srv, Side::Server, &pcap, &keylog);
        assert_opaque_without_keys(&pcap);
    }
}

#[test]
fn the_client_key_log_alone_decrypts_a_capture() {
    for (srv, cli) in PAIRS {
        let (pcap, keylog) = captured_exchange(srv, cli, Side::Client);
        assert_decrypts(srv, Side::Client, &pcap, &keylog);
    }
}

// ---- qlog ----

/// One qlog event, as tests/observe/qlog_summary.py prints it ("-" for
/// what the event does not have).
#[derive(Debug)]
struct Event {
    /// Without the `quic:` prefix.
    name: String,
    packet_type: String,
    scid: String,
    dcid: String,
    initiator: String,
    frames: Vec<String>,
    reason: String,
}

/// One qlog file: its name's parts, the header record's fields (file
/// schema, serialization format, vantage point, title) and the events.
struct Qlog {
    path: PathBuf,
    role: String,
    cid: String,
    header: Vec<String>,
    events: Vec<Event>,
}

impl Qlog {
    /// Reads `path`, which must be a complete JSON-SEQ qlog named
    /// `ROLE-CID.sqlog` (the connection ID in lower-case hex).
    fn read(path: &Path) -> Qlog {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let (role, rest) = name.split_once('-').unwrap_or_else(|| panic!("{name}: not ROLE-CID.sqlog"));
        let cid = rest.strip_suffix(".sqlog").unwrap_or_else(|| panic!("{name}: not .sqlog"));
        assert!(cid.len() >= 16 && cid.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{name}: the connection ID is not hex");
        let out = Command::new("python3").arg(root().join("tests/observe/qlog_summary.py")).arg(path)
            .output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        let mut rows = text.lines().map(|l| l.split('\t').map(String::from).collect::<Vec<_>>());
        let header = rows.next().unwrap_or_else(|| panic!("{name} is empty"));
        assert_eq!(header[0], "header");
        let events = rows.map(|r| {
            let [_, name, packet_type, scid, dcid, initiator, frames, reason] = <[String; 8]>::try_from(r).unwrap();
            Event { name: name.trim_start_matches("quic:").to_string(), packet_type, scid, dcid, initiator,
                    frames: frames.split(',').map(String::from).collect(), reason }
        }).collect();
        Qlog { path: path.to_path_buf(), role: role.to_string(), cid: cid.to_string(), header: header[1..].to_vec(),
               events }
    }

    /// Events named `name` (without the `quic:` prefix).
    fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Event> + 'a {
        self.events.iter().filter(move |e| e.name == name)
    }

    /// Whether a packet of `ty` was sent (`event` "packet_sent") or
    /// received ("packet_received").
    fn has_packet(&self, event: &str, ty: &str) -> bool {
        self.named(event).any(|e| e.packet_type == ty)
    }

    /// Whether a packet carrying a `frame` was sent or received.
    fn has_frame(&self, event: &str, frame: &str) -> bool {
        self.named(event).any(|e| e.frames.iter().any(|f| f == frame))
    }

    /// The long-header packets of `event` (Initial, Handshake).
    fn long_headers<'a>(&'a self, event: &'a str) -> impl Iterator<Item = &'a Event> + 'a {
        self.named(event).filter(|e| matches!(e.packet_type.as_str(), "initial" | "handshake"))
    }

    /// The header record, the handshake, packets both ways, data, and the
    /// close as the last event, with `initiator`.
    fn assert_complete(&self, initiator: &str) {
        let p = self.path.display();
        assert_eq!(self.header[..3], ["urn:ietf:params:qlog:file:sequential", "JSON-SEQ", self.role.as_str()],
                   "{p}: header {:?}", self.header);
        assert!(self.named("parameters_set").any(|e| e.initiator == "local"), "{p}: no local transport parameters");
        assert!(self.named("parameters_set").any(|e| e.initiator == "remote"), "{p}: no peer transport parameters");
        for ty in ["initial", "handshake", "1RTT"] {
            for ev in ["packet_sent", "packet_received"] {
                assert!(self.has_packet(ev, ty), "{p}: no {ty} packet in {ev}");
            }
        }
        let done = if self.role == "server" { "packet_sent" } else { "packet_received" };
        assert!(self.has_frame(done, "handshake_done"), "{p}: no HANDSHAKE_DONE in {done}");
        assert!(self.has_frame("packet_sent", "stream") && self.has_frame("packet_received", "stream"),
                "{p}: no STREAM frames both ways");
        let last = self.events.last().unwrap_or_else(|| panic!("{p}: no events"));
        assert_eq!((last.name.as_str(), last.initiator.as_str()), ("connection_closed", initiator),
                   "{p}: the last event is not the close by the {initiator} side: {last:?}");
        // The name's connection ID is the one this side's long-header
        // packets carry as their source.
        let own: Vec<&str> = self.long_headers("packet_sent").map(|e| e.scid.as_str()).collect();
        assert!(!own.is_empty() && own.iter().all(|c| *c == self.cid), "{p}: sent with SCIDs {own:?}");
    }
}

/// The one qlog file in `dir`.
fn only_qlog(dir: &Path) -> Qlog {
    let files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "one connection, one file: {files:?}");
    Qlog::read(&files[0])
}

#[test]
fn qlog_files_trace_each_connection_from_handshake_to_close() {
    // QLOGDIR on one side, --qlog-dir on the other, swapped for HTTP/3.
    for (i, (srv, cli)) in PAIRS.into_iter().enumerate() {
        let dir = tempdir(&format!("qlog-{srv}"));
        let (sdir, cdir) = (dir.join("server"), dir.join("client"));
        let (sdir_s, cdir_s) = (sdir.to_str().unwrap(), cdir.to_str().unwrap());
        let mut s = if i == 0 {
            Server::ours_env(srv, &[], &[("QLOGDIR", sdir_s)])
        } else {
            Server::ours(srv, &["--qlog-dir", sdir_s])
        };
        let mut cmd = our_command(cli);
        if i == 0 {
            cmd.args(["--qlog-dir", cdir_s]);
        } else {
            cmd.env("QLOGDIR", cdir_s);
        }
        cmd.args(["127.0.0.1", &s.port.to_string()]);
        let r = run(cmd, DEADLINE);
        assert_eq!(r.code(), Some(0), "{cli}: {}", r.stderr);
        assert!(s.stderr.wait_for("connection freed, 0 left", DEADLINE), "{}", s.stderr.dump());
        s.signal(libc::SIGTERM);
        assert_eq!(s.wait_exit(DEADLINE).and_then(|st| st.code()), Some(0), "{}", s.stderr.dump());

        let (server, client) = (only_qlog(&sdir), only_qlog(&cdir));
        assert_eq!((server.role.as_str(), client.role.as_str()), ("server", "client"));
        client.assert_complete("local");
        server.assert_complete("remote");
        // Each side's file is named after its own connection ID: the
        // server's long-header packets go to the client's, and come from
        // the server's.
        let to: Vec<&str> = server.long_headers("packet_sent").map(|e| e.dcid.as_str()).collect();
        assert!(to.iter().all(|c| *c == client.cid), "{srv}: server sent to {to:?}, client is {}", client.cid);
        let from: Vec<&str> = client.long_headers("packet_received").map(|e| e.scid.as_str()).collect();
        assert!(from.contains(&server.cid.as_str()), "{cli}: received from {from:?}, server is {}", server.cid);
    }
}

#[test]
fn qlog_of_a_connection_the_server_shuts_down_ends_with_its_close() {
    // The client writes the body to a pipe nobody reads: the download
    // stalls on flow control, and the connection is live when the server
    // gets SIGTERM.
    let dir = tempdir("qlog-shutdown");
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("big"), vec![7u8; 8 << 20]).unwrap();
    let fifo = dir.join("fifo");
    let c_fifo = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o600) }, 0);
    let _unread = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&fifo).unwrap();

    let sdir = dir.join("server");
    let args = ["--root", root.to_str().unwrap(), "--drain-ms", "0", "--qlog-dir", sdir.to_str().unwrap()];
    // Debug level: the server says when its side of the handshake is done.
    let mut s = Server::ours_env("server", &args, &[("QUICHE_EV_LOG", "debug")]);
    let mut c = our_command("client")
        .args(["--output", fifo.to_str().unwrap(), "127.0.0.1", &s.port.to_string(), "/big"])
        .stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let client_err = lines_of(c.stderr.take().unwrap());
    assert!(s.stderr.wait_for("connection established: hq-interop", DEADLINE), "{}", s.stderr.dump());
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(DEADLINE).and_then(|st| st.code()), Some(0), "{}", s.stderr.dump());
    assert!(s.stderr.has("shutting down: 1 connection(s)"), "{}", s.stderr.dump());
    let _ = wait_child(&mut c, DEADLINE).unwrap_or_else(|| panic!("the client did not finish:\n{}", client_err.dump()));

    let server = only_qlog(&sdir);
    let last = server.events.last().unwrap();
    assert_eq!((last.name.as_str(), last.initiator.as_str(), last.reason.as_str()),
               ("connection_closed", "local", "server shutting down"), "{}", server.path.display());
    assert!(server.has_frame("packet_sent", "connection_close"), "{}", server.path.display());
}

#[test]
fn qlog_of_a_connection_closed_during_its_handshake_ends_with_its_close() {
    // A quiche client in the test sends its first flight and takes the
    // server's, but never its Finished: the server's connection is half
    // way through the handshake, with no RTT sample, when SIGTERM comes.
    let dir = tempdir("qlog-handshake");
    let sdir = dir.join("server");
    let mut s = Server::ours_env("server", &["--no-retry", "--drain-ms", "0", "--qlog-dir", sdir.to_str().unwrap()],
                                 &[("QUICHE_EV_LOG", "debug")]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(DEADLINE)).unwrap();
    let local = sock.local_addr().unwrap();
    let peer: std::net::SocketAddr = ([127, 0, 0, 1], s.port).into();
    let mut config = common::inproc::config(false);
    config.verify_peer(false);
    let scid = random16();
    let mut conn = quiche::connect(Some("localhost"), &quiche::ConnectionId::from_ref(&scid), local, peer,
                                   &mut config).unwrap();
    let mut buf = [0u8; 65535];
    while let Ok((n, info)) = conn.send(&mut buf) {
        sock.send_to(&buf[..n], info.to).unwrap();
    }
    while !conn.is_established() {
        let (n, from) = sock.recv_from(&mut buf).expect("the server's first flight");
        conn.recv(&mut buf[..n], quiche::RecvInfo { from, to: local }).unwrap();
    }
    assert!(s.stderr.wait_for("new connection", DEADLINE), "{}", s.stderr.dump());
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(DEADLINE).and_then(|st| st.code()), Some(0), "{}", s.stderr.dump());

    let server = only_qlog(&sdir);
    let last = server.events.last().unwrap();
    assert_eq!(last.name, "connection_closed", "{}: last event {last:?}; server log:\n{}",
               server.path.display(), s.stderr.dump());
}

#[test]
fn quiche_conn_set_qlog_path_links_and_writes_from_c() {
    // quiche's own qlog entry point, exported because quiche is built
    // with its qlog feature: a C program linked like the examples calls
    // it, and the file it names becomes a qlog of the Initial it sends.
    let dir = tempdir("qlog-c");
    let src = dir.join("qlog.c");
    std::fs::write(&src, r#"#include <quiche_ev.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

int main(int argc, char *argv[]) {
    if (argc != 2) return 2;
    quiche_config *config = quiche_config_new(QUICHE_PROTOCOL_VERSION);
    if (config == NULL) return 1;
    quiche_config_set_application_protos(config, (const uint8_t *) "\x0ahq-interop", 11);
    struct sockaddr_in local, peer;
    memset(&local, 0, sizeof(local));
    local.sin_family = AF_INET;
    local.sin_port = htons(40000);
    local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    peer = local;
    peer.sin_port = htons(40001);
    const uint8_t scid[16] = { 0x0c, 0x1d };
    quiche_conn *conn = quiche_connect("localhost", scid, sizeof(scid),
                                       (struct sockaddr *) &local, sizeof(local),
                                       (struct sockaddr *) &peer, sizeof(peer), config);
    if (conn == NULL || !quiche_conn_set_qlog_path(conn, argv[1], "from C", "one Initial")) return 1;
    uint8_t out[1350];
    quiche_send_info info;
    ssize_t sent = quiche_conn_send(conn, out, sizeof(out), &info);
    quiche_conn_free(conn);
    quiche_config_free(config);
    return sent > 0 ? 0 : 1;
}
"#).unwrap();
    let exe = dir.join("qlog");
    compile_c(&[&src], &exe);

    let qlog = dir.join("client-0c1d0000000000000000000000000000.sqlog");
    let st = Command::new(&exe).arg(&qlog).status().unwrap();
    assert_eq!(st.code(), Some(0));
    let q = Qlog::read(&qlog);
    assert_eq!(q.header[2..4], ["client", "from C"], "{:?}", q.header);
    assert!(q.has_packet("packet_sent", "initial") && q.has_frame("packet_sent", "crypto"), "{:?}", q.events);
}

// ---- --help and usage ----

/// The environment variables the examples read (every `getenv` in
/// c-examples/common.c).
fn environment_variables() -> Vec<String> {
    let src = std::fs::read_to_string(root().join("c-examples/common.c")).unwrap();
    let mut vars: Vec<String> = src.split("getenv(\"").skip(1)
        .map(|s| s.split('"').next().unwrap().to_string()).collect();
    vars.sort();
    vars.dedup();
    vars
}

#[test]
fn every_example_documents_its_options_and_environment() {
    let env = environment_variables();
    for v in ["SSLKEYLOGFILE", "QLOGDIR", "QUICHE_EV_LOG", "QUICHE_EV_QUIET", "QUICHE_EV_PLAIN_IO", "QUICHE_EV_GSO"] {
        assert!(env.iter().any(|e| e == v), "c-examples/common.c no longer reads {v}: {env:?}");
    }
    let server_opts = ["--root", "--cert", "--key", "--max-conns", "--no-retry", "--early-data", "--reset-key",
                       "--qlog-dir", "--drain-ms", "--cid-limit", "--help"];
    let client_opts = ["--output", "--output-dir", "--session-file", "--early-data", "--multiconnect", "--migrate",
                       "--qlog-dir", "--connect-timeout", "--help"];
    for name in ["server", "client", "http3-server", "http3-client"] {
        let help = our_command(name).arg("--help").output().unwrap();
        let text = String::from_utf8_lossy(&help.stdout);
        assert_eq!(help.status.code(), Some(0), "{name} --help: {}", String::from_utf8_lossy(&help.stderr));
        assert!(text.starts_with(&format!("usage: {} [options] HOST PORT", ours(name).display())), "{name}:\n{text}");

        let bad = our_command(name).args(["--bogus", "127.0.0.1", "4433"]).output().unwrap();
        let usage = String::from_utf8_lossy(&bad.stderr);
        assert_eq!(bad.status.code(), Some(2), "{name} --bogus: {usage}");
        assert!(usage.starts_with("usage: ") && usage.contains("(--help: more)"), "{name} --bogus: {usage}");
        assert!(bad.stdout.is_empty());

        // Every option, the usage line's included, and every variable
        // has its line in the help.
        let listed = |word: &str| text.lines().any(|l| l.split_whitespace().next() == Some(word));
        let opts: &[&str] = if name.ends_with("server") { &server_opts } else { &client_opts };
        let from_usage = usage.split(['[', ']', ' ']).filter(|w| w.starts_with("--"));
        for opt in opts.iter().copied().chain(from_usage) {
            assert!(listed(opt), "{name} --help does not describe {opt}:\n{text}");
        }
        for v in &env {
            assert!(listed(v) || listed(&format!("{v}=0")), "{name} --help does not describe {v}:\n{text}");
        }
        assert!(text.contains("\nenvironment:\n"), "{name}:\n{text}");
    }
}

#[test]
fn no_arguments_prints_the_usage_line_and_exits_2() {
    for name in ["server", "client", "http3-server", "http3-client"] {
        let out = our_command(name).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("usage: "), "{name}");
    }
}

// ---- the counters line ----

/// `name=value` pairs of the server's "server counters:" line.
fn counters(s: &Server) -> BTreeMap<String, u64> {
    let line = s.stderr.last("server counters: ").unwrap_or_else(|| panic!("no counters line:\n{}", s.stderr.dump()));
    line.trim_start_matches("server counters: ").split(' ')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("{line}"));
            (k.to_string(), v.parse().unwrap_or_else(|_| panic!("{line}")))
        })
        .collect()
}

/// A version 1 Initial header (16-byte DCID, 8-byte SCID, no token),
/// padded with zeros to `len` bytes.
fn initial_of(len: usize) -> Vec<u8> {
    let mut p = vec![0xc0, 0, 0, 0, 1, 16];
    p.extend_from_slice(&random16());
    p.push(8);
    p.extend_from_slice(&random16()[..8]);
    p.push(0); // token length
    p.resize(len, 0);
    p
}

#[test]
fn servers_count_connections_and_dropped_datagrams_at_exit() {
    for (srv, cli) in PAIRS {
        let mut s = Server::ours(srv, &[]);
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(DEADLINE)).unwrap();
        let to = ("127.0.0.1", s.port);
        // Short headers too short to hold our connection ID: unknown.
        for _ in 0..3 {
            sock.send_to(b"\x40junk", to).unwrap();
        }
        // Long headers cut before their version: malformed.
        for _ in 0..2 {
            sock.send_to(&[0xc0, 0, 0], to).unwrap();
        }
        // A well-formed Initial in a datagram under 1200 bytes: short.
        sock.send_to(&initial_of(200), to).unwrap();
        // A 60-byte short-header packet for a connection ID the server
        // never issued: a Stateless Reset, smaller than what caused it.
        let mut pkt = [0x55u8; 60];
        pkt[0] = 0x40 | (random16()[0] & 0x3f);
        pkt[1..17].copy_from_slice(&random16());
        sock.send_to(&pkt, to).unwrap();
        let mut buf = [0u8; 1500];
        let (n, _) = sock.recv_from(&mut buf).expect("no stateless reset came back");
        assert!(n < pkt.len() && n >= 21 && buf[0] & 0xc0 == 0x40, "{srv}: not a stateless reset: {n} bytes");

        // The datagrams arrive in order, so the reset says the junk before
        // it was read. Then one client, and SIGTERM.
        let r = our_client(cli, s.port, &[]);
        assert_eq!(r.stdout, b"byez\n", "{cli}: {}", r.stderr);
        assert!(s.stderr.wait_for("connection freed, 0 left", DEADLINE), "{}", s.stderr.dump());
        s.signal(libc::SIGTERM);
        assert_eq!(s.wait_exit(DEADLINE).and_then(|st| st.code()), Some(0), "{}", s.stderr.dump());
        assert!(s.stderr.wait_closed(DEADLINE));

        let c = counters(&s);
        let line = s.stderr.last("server counters: ").unwrap();
        for (k, v) in [("accepted", 1), ("closed", 1), ("refused", 0), ("invalid_tokens", 0),
                       ("dropped_unknown", 3), ("dropped_malformed", 2), ("dropped_short", 1),
                       ("stateless_resets", 1), ("dropped_late", 0), ("dropped_rate_limited", 0)] {
            assert_eq!(c.get(k), Some(&v), "{srv}: {k} in {line}");
        }
        // Our clients open with a greased version and the server asks for
        // a Retry: at least one of each (one per Initial of the flight).
        for k in ["retries", "version_negotiations"] {
            assert!(c.get(k).is_some_and(|&v| v >= 1), "{srv}: {k} in {line}");
        }
    }
}
