#!/usr/bin/env python3
"""Endpoint script for quiche-ev's examples (the interop runner's contract,
see contract.py): c-examples/server and client for hq-interop,
http3-server and http3-client for h3.

    server  [--root DIR] [--cert F --key F] [--no-retry] [--early-data] [--allow-migration]
            [--qlog-dir D] HOST PORT
    client  [--output-dir DIR] [--session-file F] [--early-data]
            [--multiconnect] [--migrate] [--wire-version HEX]
            [--idle-timeout MS] HOST PORT PATH...

Options the binary does not list in its usage line yet are not passed; the
script says so on stderr, and the test cases that need them fail. Two
have an exact equivalent with today's options: the certificate is then
read from ./cert.crt and ./cert.key (links to cert.pem and priv.key, made
in CERTS, where the server runs), and a single request is saved with
--output DOWNLOADS/<file>. One connection per
path (multiconnect) is one client run per path without --multiconnect.

What quiche 0.30 cannot do exits 127 with the reason.
"""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from contract import exec_, main, paths_of, run  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BIN = os.environ.get("QUICHE_EV_EXAMPLES", os.path.join(ROOT, "c-examples"))

NO_ECN = ("quiche 0.30 neither marks its packets ECT nor reports ECN counts "
          "(its ACK frames carry none: lib.rs 'sending ECN is not supported')")
V1_ONLY = "quiche 0.30 speaks QUIC v1 only (version_is_supported matches 0x00000001 alone)"

# Under 30 % loss each way (handshakeloss) a sender's PTO backs off past
# 10 s; a 30 s idle timeout then ends connections that would complete.
# 60 s, as aioquic's default (ngtcp2's is raised to match).
IDLE_TIMEOUT_MS = "60000"

SERVER_CASES = {"handshake", "transfer", "multiconnect", "http3", "retry", "resumption",
                "zerortt", "chacha20"}
SERVER_UNSUPPORTED = {
    "ecn": NO_ECN,
    "v2": V1_ONLY,
    "connectionmigration": "quiche 0.30 cannot offer a preferred_address "
                           "(transport_params.rs leaves it a TODO)",
}
CLIENT_CASES = {"handshake", "transfer", "multiconnect", "http3", "retry", "resumption",
                "zerortt", "connectionmigration"}
CLIENT_UNSUPPORTED = {
    "keyupdate": "quiche 0.30 answers a peer's key update but has no API to start one",
    "chacha20": "quiche built with BoringSSL cannot restrict the TLS 1.3 cipher suites "
                "it offers (BoringSSL has no TLS 1.3 cipher configuration)",
    "ecn": NO_ECN,
    "v2": V1_ONLY,
}


def options_of(binary):
    """The --options the binary's usage line lists."""
    out = subprocess.run([binary], capture_output=True, text=True, timeout=10)
    return set(re.findall(r"--[a-z][a-z-]*", out.stderr))


def note(text):
    print(f"note: {text}", file=sys.stderr, flush=True)


def env():
    e = dict(os.environ)
    if not e.get("INTEROP_VERBOSE"):
        e["QUICHE_EV_QUIET"] = "1"  # quiche's debug log is megabytes per transfer
    return e


def server(ep):
    binary = os.path.join(BIN, "http3-server" if ep.alpn == "h3" else "server")
    opts = options_of(binary)
    args = [binary, "--root", ep.www]
    cwd = None
    if "--cert" in opts:
        args += ["--cert", ep.cert, "--key", ep.key]
    else:
        # ./cert.crt and ./cert.key beside the chain: run in CERTS.
        cwd = os.path.abspath(ep.certs)
        for link, target in (("cert.crt", "cert.pem"), ("cert.key", "priv.key")):
            try:
                os.symlink(target, os.path.join(cwd, link))
            except FileExistsError:
                pass
        note("no --cert yet: the certificate is read from ./cert.crt in " + cwd)
    wanted = []
    if ep.testcase != "retry":
        wanted.append("--no-retry")
    if ep.testcase == "zerortt":
        wanted.append("--early-data")
    # The runner tells a server "transfer" in connectionmigration, so it
    # is always allowed (http3-server, like upstream's, disables it).
    wanted.append("--allow-migration")
    for o in wanted:
        if o in opts:
            args.append(o)
        else:
            note(f"{os.path.basename(binary)} has no {o} yet")
    if "--idle-timeout" in opts:
        args += ["--idle-timeout", IDLE_TIMEOUT_MS]
    if ep.qlogdir:
        if "--qlog-dir" in opts:
            args += ["--qlog-dir", ep.qlogdir]
        else:
            note(f"{os.path.basename(binary)} has no --qlog-dir yet")
    exec_(args + [ep.host, str(ep.port)], cwd=cwd, env=env())


def client(ep):
    binary = os.path.join(BIN, "http3-client" if ep.alpn == "h3" else "client")
    opts = options_of(binary)
    host, port = ep.server_address
    connections = ep.connections()
    common = []
    if ep.testcase == "multiconnect":
        if "--multiconnect" in opts:
            common.append("--multiconnect")
        else:
            connections = [[u] for u in ep.requests]
    if ep.testcase == "connectionmigration":
        common.append("--migrate")
    # QUIC v1 from the first packet (no greased version: the runner's
    # checks, like quiche's own endpoint with --wire-version 00000001),
    # and the runner's patience with lossy handshakes.
    common += ["--wire-version", "00000001", "--idle-timeout", IDLE_TIMEOUT_MS]
    commands = []
    for i, urls in enumerate(connections):
        args = [binary] + common
        paths = paths_of(urls)
        if "--output-dir" in opts or len(paths) > 1:
            args += ["--output-dir", ep.downloads]
        else:
            args += ["--output", os.path.join(ep.downloads, os.path.basename(paths[0]))]
        if ep.testcase in ("resumption", "zerortt"):
            args += ["--session-file", ep.session_file]
            if ep.testcase == "zerortt" and i > 0:
                args.append("--early-data")
        commands.append(args + [host, str(port)] + paths)
    missing = sorted({a for c in commands for a in c if a.startswith("--")} - opts)
    if missing:
        note(f"{os.path.basename(binary)} has no {', '.join(missing)} yet")
    return run(commands, env=env())


if __name__ == "__main__":
    sys.exit(main(server, client, {"server": SERVER_CASES, "client": CLIENT_CASES},
                  {"server": SERVER_UNSUPPORTED, "client": CLIENT_UNSUPPORTED}))
