#!/usr/bin/env python3
"""Endpoint script for aioquic (the interop runner's contract, see
contract.py), through our aioquic peer, tests/peers/aioquic_peer.py, run
with the venv `make peers` makes (target/venv; AIOQUIC_PYTHON overrides).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from contract import exec_, main, paths_of, run  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PYTHON = os.environ.get("AIOQUIC_PYTHON", os.path.join(ROOT, "target", "venv", "bin", "python"))
PEER = os.path.join(ROOT, "tests", "peers", "aioquic_peer.py")

NO_ECN = "aioquic neither marks its packets ECT nor reports ECN counts"
SERVER_CASES = {"handshake", "transfer", "multiconnect", "http3", "retry", "resumption",
                "zerortt", "chacha20", "v2"}
CLIENT_CASES = SERVER_CASES | {"keyupdate", "connectionmigration"}
UNSUPPORTED = {"ecn": NO_ECN}

# Generous: the runner's deadline for the test case decides.
CLIENT_TIMEOUT = "600"


def common(ep):
    args = ["--alpn", ep.alpn]
    if ep.keylog:
        args += ["--keylog", ep.keylog]
    if ep.qlogdir:
        args += ["--qlog-dir", ep.qlogdir]
    if ep.testcase == "chacha20":
        args.append("--chacha20")
    return args


def server(ep):
    args = [PYTHON, PEER, "server"] + common(ep) + [
        "--cert", ep.cert, "--key", ep.key, "--root", ep.www, "--tickets"]
    if ep.testcase == "retry":
        args.append("--retry")
    exec_(args + [ep.host, str(ep.port)])


def client(ep):
    host, port = ep.server_address
    base = [PYTHON, PEER, "client"] + common(ep) + [
        "--timeout", CLIENT_TIMEOUT, "--output-dir", ep.downloads]
    flag = {"multiconnect": "--multiconnect", "keyupdate": "--key-update",
            "connectionmigration": "--migrate", "v2": "--v2"}.get(ep.testcase)
    if flag:
        base.append(flag)
    commands = []
    for i, urls in enumerate(ep.connections()):
        args = list(base)
        if ep.testcase in ("resumption", "zerortt"):
            args += ["--session-file", ep.session_file]
            if ep.testcase == "zerortt" and i > 0:
                args.append("--early-data")
        commands.append(args + [host, str(port)] + paths_of(urls))
    return run(commands)


if __name__ == "__main__":
    sys.exit(main(server, client, {"server": SERVER_CASES, "client": CLIENT_CASES},
                  {"server": UNSUPPORTED, "client": UNSUPPORTED}))
