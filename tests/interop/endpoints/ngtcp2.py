#!/usr/bin/env python3
"""Endpoint script for ngtcp2 (the interop runner's contract, see
contract.py): Debian's GnuTLS builds of ngtcp2's HTTP/3 examples,
`gtlsserver` (package ngtcp2-server) and `gtlsclient` (ngtcp2-client).
They speak HTTP/3 only; the local runner gives a pair with ngtcp2 ALPN=h3.
GnuTLS writes the key log named by SSLKEYLOGFILE by itself.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from contract import exec_, main, missing_downloads, run, unsupported  # noqa: E402

SERVER = os.environ.get("GTLSSERVER", "gtlsserver")
CLIENT = os.environ.get("GTLSCLIENT", "gtlsclient")

CHACHA20_ONLY = "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+CHACHA20-POLY1305"
SERVER_CASES = {"handshake", "transfer", "multiconnect", "http3", "retry", "resumption",
                "zerortt", "chacha20", "ecn"}
CLIENT_CASES = SERVER_CASES | {"keyupdate", "connectionmigration"}
UNSUPPORTED = {
    "v2": "ngtcp2 0.12 (Debian) knows only the QUIC v2 draft version 0x709a50c4, "
          "not RFC 9369's 0x6b3343cf",
}
# gtlsclient and gtlsserver give up a handshake after 10 s by default,
# which 30 % loss each way (handshakeloss) sometimes needs; the runner's
# deadline decides.
HANDSHAKE_TIMEOUT = "60s"
# Their idle timeout (30 s by default) is raised to 60 s like ours and
# aioquic's: under 30 % loss each way a sender's PTO backs off past 10 s,
# and a 30 s silence then ends a connection that would still complete.
IDLE_TIMEOUT = "60s"
# The client's initial flow-control windows for transfers: small, so that
# they have to grow during the transfer (the runner's `transfer`).
SMALL_WINDOWS = ["--max-data=1M", "--max-stream-data-bidi-local=256K"]


def server(ep):
    if ep.alpn != "h3":
        unsupported("Debian's ngtcp2 packages only the HTTP/3 examples (no hq-interop)")
    args = [SERVER, "-q", "--no-quic-dump", "--no-http-dump", "--handshake-timeout=" + HANDSHAKE_TIMEOUT, "--timeout=" + IDLE_TIMEOUT,
            "-d", ep.www]
    if ep.testcase == "retry":
        args.append("-V")
    if ep.testcase == "chacha20":
        args.append("--ciphers=" + CHACHA20_ONLY)
    if ep.qlogdir:
        args.append("--qlog-dir=" + ep.qlogdir)
    host = "*" if ep.host == "::" else ep.host
    exec_(args + [host, str(ep.port), ep.key, ep.cert])


def client(ep):
    if ep.alpn != "h3":
        unsupported("Debian's ngtcp2 packages only the HTTP/3 examples (no hq-interop)")
    host, port = ep.server_address
    base = [CLIENT, "-q", "--no-quic-dump", "--no-http-dump", "--exit-on-all-streams-close",
            "--handshake-timeout=" + HANDSHAKE_TIMEOUT, "--timeout=" + IDLE_TIMEOUT, "--download", ep.downloads] + SMALL_WINDOWS
    if ep.qlogdir:
        base.append("--qlog-dir=" + ep.qlogdir)
    if ep.testcase == "chacha20":
        base.append("--ciphers=" + CHACHA20_ONLY)
    if ep.testcase == "keyupdate":
        base.append("--key-update=1ms")
    if ep.testcase == "connectionmigration":
        base.append("--change-local-addr=50ms")
    connections = ep.connections()
    if ep.testcase == "multiconnect":
        connections = [[u] for u in ep.requests]
    commands = []
    for i, urls in enumerate(connections):
        args = list(base)
        if ep.testcase in ("resumption", "zerortt"):
            tp = ep.session_file + ".tp"
            args += ["--session-file=" + ep.session_file, "--tp-file=" + tp]
            if ep.testcase == "resumption":
                args.append("--disable-early-data")
        commands.append(args + [host, str(port)] + urls)
    # gtlsclient exits 0 even when its handshake timed out: a run is good
    # when its files are there.
    return run(commands, check=lambda cmd: missing_downloads(ep, cmd))


if __name__ == "__main__":
    sys.exit(main(server, client, {"server": SERVER_CASES, "client": CLIENT_CASES},
                  {"server": UNSUPPORTED, "client": UNSUPPORTED}))
