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
from contract import Endpoint, exec_, run, unsupported  # noqa: E402

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
# The client's initial flow-control windows for transfers: small, so that
# they have to grow during the transfer (the runner's `transfer`).
SMALL_WINDOWS = ["--max-data=1M", "--max-stream-data-bidi-local=256K"]


def server(ep):
    if ep.alpn != "h3":
        unsupported("Debian's ngtcp2 packages only the HTTP/3 examples (no hq-interop)")
    args = [SERVER, "-q", "--no-quic-dump", "--no-http-dump", "-d", ep.www]
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
            "--download", ep.downloads] + SMALL_WINDOWS
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
    return run(commands)


def main():
    ep = Endpoint()
    if ep.testcase in UNSUPPORTED:
        unsupported(UNSUPPORTED[ep.testcase])
    if ep.testcase not in (SERVER_CASES if ep.role == "server" else CLIENT_CASES):
        unsupported(f"unknown test case {ep.testcase!r}")
    if ep.role == "server":
        server(ep)
    return client(ep)


if __name__ == "__main__":
    sys.exit(main())
