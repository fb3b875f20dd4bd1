#!/usr/bin/env python3
"""The local QUIC interop runner (issue 12): runs the interop runner's test
cases between quiche-ev's examples and other implementations, through a
simulated network (relay.py), and checks each run from the decrypted
traces, as quic-interop-runner does.

    run.py [--cases a,b] [--peers aioquic,ngtcp2] [--roles server,client,reference]
           [--quick] [--report target/interop.md] [--logs target/interop-logs]
           [--keep] [--qlog] [--seed N]

Pairs (server, client): quiche-ev ("ours") as server against ours and each
peer as client (role "server"), each peer as server against ours as client
("client"), and the peers against each other as a reference ("reference").
--quick: handshake, transfer, retry, http3 and transferloss for ours/ours,
ours/aioquic and aioquic/ours (what `make test` runs).

For each run: the case's files (random content) under www/, a fresh relay
writing both legs' traces, the server endpoint, then the client endpoint
with REQUESTS pointing at the relay, each with a deadline. Then: exit codes
(127 = unsupported), the files byte for byte, and the case's checks on the
traces decrypted with both sides' key logs (checks.py). Logs of every run:
<logs>/<case>/<server>_<client>/ (server/ and client/ output and key logs,
sim/ traces and relay statistics, result.txt); the traces and files are
removed when the run passes unless --keep.

Exit status: 0 when no cell failed, 1 otherwise, 2 on bad usage or a
missing tool.
"""

import argparse
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import checks  # noqa: E402
from cases import BY_NAME, CASES  # noqa: E402
from certs import make_chain  # noqa: E402
from packets import Trace, TsharkError  # noqa: E402
from relay import Relay  # noqa: E402
from report import FAIL, OURS, PASS, UNSUPPORTED, Result, render  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
ENDPOINTS = os.path.join(HERE, "endpoints")

# Implementation -> ALPNs it speaks (Debian's ngtcp2 has only the HTTP/3
# examples).
IMPLS = {"ours": ("hq-interop", "h3"), "aioquic": ("hq-interop", "h3"), "ngtcp2": ("h3",)}
PEERS = ["aioquic", "ngtcp2"]
QUICK_CASES = ["handshake", "transfer", "retry", "http3", "transferloss"]
QUICK_PEERS = ["aioquic"]
SERVER_START = 15.0  # seconds for a server to bind its port
STOP_GRACE = 5.0

_children = []


def _kill_children():
    for p in _children:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


atexit.register(_kill_children)


def free_port(host):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_bound(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def start(impl, env, log):
    out = open(log, "wb")
    p = subprocess.Popen([sys.executable, os.path.join(ENDPOINTS, f"{impl}.py")],
                         env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    out.close()
    _children.append(p)
    return p


def stop(p):
    """SIGTERM to the process group, then SIGKILL after a grace period."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    else:  # the leader is gone; its helpers may not be
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _children.remove(p)
    return p.returncode


def last_line(log, prefix=None):
    try:
        with open(log, "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    lines = [line.strip() for line in lines if line.strip()]
    if prefix:
        lines = [line[len(prefix):].strip() for line in lines if line.startswith(prefix)]
    return lines[-1][:200] if lines else ""


def merge_keylogs(out, *paths):
    with open(out, "wb") as o:
        for p in paths:
            if os.path.exists(p):
                with open(p, "rb") as f:
                    o.write(f.read())


def load_run(case, run_dir):
    """What the checks look at, from a run's directory (www/, downloads/,
    sim/ with the traces, keys.log and run.json)."""
    sim = os.path.join(run_dir, "sim")
    with open(os.path.join(sim, "run.json")) as f:
        meta = json.load(f)
    keys = os.path.join(sim, "keys.log")
    with open(keys, "rb") as f:
        have_keys = b"SERVER_HANDSHAKE_TRAFFIC_SECRET" in f.read()
    return checks.Run(case, os.path.join(run_dir, "www"), os.path.join(run_dir, "downloads"),
                      meta["files"],
                      Trace(os.path.join(sim, "client_leg.pcap"), keys, meta["relay"]),
                      Trace(os.path.join(sim, "server_leg.pcap"), keys, meta["server"]),
                      meta["relay_stats"], meta["alpn"], have_keys)


class Runner:
    def __init__(self, logs, keep=False, qlog=False, seed=1, verbose=True):
        self.logs = logs
        self.keep = keep
        self.qlog = qlog
        self.seed = seed
        self.verbose = verbose
        self.certs = {}

    def certs_for(self, length):
        if length not in self.certs:
            self.certs[length] = make_chain(os.path.join(self.logs, f"certs-{length}"), length)
        return self.certs[length]

    def alpn(self, case, server, client):
        if case.alpn:
            return case.alpn
        return "hq-interop" if "hq-interop" in IMPLS[server] and "hq-interop" in IMPLS[client] \
            else "h3"

    def run(self, case, server, client):
        t0 = time.monotonic()
        d = os.path.join(self.logs, case.name, f"{server}_{client}")
        shutil.rmtree(d, ignore_errors=True)
        dirs = {k: os.path.join(d, k) for k in ("www", "downloads", "server", "client", "sim")}
        for p in dirs.values():
            os.makedirs(p)
        try:
            result = self._run(case, server, client, dirs)
        except TsharkError as e:
            result = Result(FAIL, f"trace analysis failed: {e}")
        result.seconds = time.monotonic() - t0
        with open(os.path.join(d, "result.txt"), "w") as f:
            f.write(f"{result.status}: {result.reason}\n{result.seconds:.1f} s\n")
        if not self.keep:
            shutil.rmtree(dirs["www"], ignore_errors=True)
            shutil.rmtree(dirs["downloads"], ignore_errors=True)
            if result.status == PASS:
                for name in os.listdir(dirs["sim"]):
                    if name.endswith(".pcap"):
                        os.remove(os.path.join(dirs["sim"], name))
        if self.verbose:
            print(f"{case.name:20} {server:>8} server, {client:<8} client: {result.status:11} "
                  f"{result.seconds:5.1f}s  {result.reason}", flush=True)
        return result

    def _run(self, case, server, client, dirs):
        files = case.make_files(dirs["www"])
        certs = self.certs_for(case.cert_chain)
        host = "::1" if case.ipv6 else "127.0.0.1"
        url_host = f"[{host}]" if case.ipv6 else host
        alpn = self.alpn(case, server, client)
        keys = {r: os.path.join(dirs[r], "keys.log") for r in ("server", "client")}
        base = dict(os.environ, ALPN=alpn)
        base.pop("SSLKEYLOGFILE", None)
        base.pop("QLOGDIR", None)

        def env(role, **kw):
            e = dict(base, ROLE=role, TESTCASE=case.testname_for(role),
                     SSLKEYLOGFILE=keys[role], **kw)
            if self.qlog:
                e["QLOGDIR"] = os.path.join(dirs[role], "qlog")
            return e

        # The relay binds first, so the server's port cannot be its port.
        port = free_port(host)
        relay = Relay((host, port), case.scenario(self.seed), listen=(host, 0),
                      trace_dir=dirs["sim"])
        while relay.address[1] == port:
            port = free_port(host)
            relay.server = (host, port)
        relay.start()
        srv = cli = None
        try:
            for attempt in range(3):
                srv = start(server, env("server", WWW=dirs["www"], CERTS=certs, HOST=host,
                                        PORT=str(port)), os.path.join(dirs["server"], "output.txt"))
                deadline = time.monotonic() + SERVER_START
                while not port_bound(host, port) or srv.poll() is not None:
                    if srv.poll() is not None or time.monotonic() > deadline:
                        break
                    time.sleep(0.02)
                else:
                    break
                # Another process took the free port between our probe and
                # the server's bind: try another one.
                if attempt < 2 and srv.poll() is not None and "Address already in use" in \
                        last_line(os.path.join(dirs["server"], "output.txt")):
                    port = free_port(host)
                    while port == relay.address[1]:
                        port = free_port(host)
                    relay.server = (host, port)
                    continue
                return self._server_failed(srv, dirs)
            requests = " ".join(f"https://{url_host}:{relay.address[1]}/{f}" for f in files)
            cli = start(client, env("client", DOWNLOADS=dirs["downloads"], REQUESTS=requests),
                        os.path.join(dirs["client"], "output.txt"))
            # As the runner's docker-compose --abort-on-container-exit: the
            # run ends when the client exits, or the server does.
            deadline = time.monotonic() + case.timeout
            while cli.poll() is None and srv.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            rc = cli.poll()
            stop(cli)
            cli = None
            server_rc = srv.poll()
            stop(srv)
            srv = None
        finally:
            for p in (cli, srv):
                if p is not None:
                    stop(p)
            relay.stop()
        stats = relay.stats.as_dict()
        with open(os.path.join(dirs["sim"], "run.json"), "w") as f:
            json.dump({"relay": relay.address, "server": (host, port), "alpn": alpn,
                       "files": files, "relay_stats": stats}, f, indent=1)
        if relay.error:
            return Result(FAIL, f"relay error: {relay.error}")
        client_log = os.path.join(dirs["client"], "output.txt")
        server_log = os.path.join(dirs["server"], "output.txt")
        if rc == 127:
            return Result(UNSUPPORTED, f"client: {last_line(client_log, 'unsupported:')}")
        if server_rc == 127:
            return Result(UNSUPPORTED, f"server: {last_line(server_log, 'unsupported:')}")
        notes = last_line(client_log, "note:") or last_line(server_log, "note:")
        notes = f" ({notes})" if notes else ""
        if rc is None:
            if server_rc is not None:
                return Result(FAIL, f"the server exited with {server_rc} during the run: "
                                    f"{last_line(server_log)}")
            return Result(FAIL, f"the client did not finish within {case.timeout} s{notes}")
        if rc != 0:
            return Result(FAIL, f"the client exited with {rc}: {last_line(client_log)}{notes}")
        merge_keylogs(os.path.join(dirs["sim"], "keys.log"), keys["client"], keys["server"])
        try:
            seen = checks.check(load_run(case, os.path.dirname(dirs["sim"])))
        except checks.Failed as e:
            return Result(FAIL, f"{e}{notes}")
        return Result(PASS, seen + ("" if alpn == "hq-interop" or case.alpn else " (over h3)"))

    def _server_failed(self, srv, dirs):
        log = os.path.join(dirs["server"], "output.txt")
        rc = srv.poll()
        if rc == 127:
            return Result(UNSUPPORTED, f"server: {last_line(log, 'unsupported:')}")
        if rc is None:
            return Result(FAIL, f"the server did not bind its port within {SERVER_START:.0f} s")
        return Result(FAIL, f"the server exited with {rc} before listening: {last_line(log)}")


def plan(cases, peers, roles):
    """(case, server, client) triples, each once."""
    pairs = []
    if "server" in roles:
        pairs += [(OURS, c) for c in [OURS] + peers]
    if "client" in roles:
        pairs += [(s, OURS) for s in peers + ([] if "server" in roles else [OURS])]
    if "reference" in roles:
        pairs += [(s, c) for s in peers for c in peers if s != c]
    return [(case, s, c) for case in cases for (s, c) in pairs]


def missing_tools():
    problems = []
    for tool, pkg in (("tshark", "tshark"), ("openssl", "openssl"),
                      ("gtlsserver", "ngtcp2-server"), ("gtlsclient", "ngtcp2-client")):
        if shutil.which(tool) is None:
            problems.append(f"{tool} not found: run `apt-get install {pkg}`")
    for b in ("server", "client", "http3-server", "http3-client"):
        if not os.path.exists(os.path.join(ROOT, "c-examples", b)):
            problems.append(f"c-examples/{b} missing: run `make`")
    if not os.path.exists(os.path.join(ROOT, "target", "venv", ".installed")):
        problems.append("aioquic venv missing: run `make peers`")
    return problems


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", help="comma-separated case names (default: all)")
    ap.add_argument("--peers", help=f"comma-separated peers (default: {','.join(PEERS)})")
    ap.add_argument("--roles", default="server,client,reference",
                    help="server (ours as server), client (ours as client), reference "
                         "(peers against each other)")
    ap.add_argument("--quick", action="store_true", help="the bounded subset make test runs")
    ap.add_argument("--report", default=os.path.join(ROOT, "target", "interop.md"))
    ap.add_argument("--logs", default=os.path.join(ROOT, "target", "interop-logs"))
    ap.add_argument("--keep", action="store_true",
                    help="keep every run's files and traces (by default only a failed run's traces)")
    ap.add_argument("--qlog", action="store_true", help="set QLOGDIR for the endpoints")
    ap.add_argument("--seed", type=int, default=1, help="the relay's loss/corruption seed")
    a = ap.parse_args(argv)

    names = a.cases.split(",") if a.cases else (QUICK_CASES if a.quick else [c.name for c in CASES])
    unknown = [n for n in names if n not in BY_NAME]
    peers = a.peers.split(",") if a.peers else (QUICK_PEERS if a.quick else PEERS)
    roles = a.roles.split(",") if not a.quick or a.roles != ap.get_default("roles") \
        else ["server", "client"]
    if unknown or any(p not in PEERS for p in peers) or \
            any(r not in ("server", "client", "reference") for r in roles):
        print(f"run.py: unknown case, peer or role in {names} {peers} {roles}; cases: "
              f"{', '.join(BY_NAME)}; peers: {', '.join(PEERS)}", file=sys.stderr)
        return 2
    problems = missing_tools()
    if problems:
        print("\n".join(f"run.py: {p}" for p in problems), file=sys.stderr)
        return 2
    cases = [c for c in CASES if c.name in names]
    a.logs = os.path.abspath(a.logs)
    os.makedirs(a.logs, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    runner = Runner(a.logs, keep=a.keep, qlog=a.qlog, seed=a.seed)
    results = {}
    for case, server, client in plan(cases, peers, roles):
        results[(case.name, server, client)] = runner.run(case, server, client)
    notes = ["Pairs with ngtcp2 run over h3 (Debian's ngtcp2 has only its HTTP/3 "
             "examples); every other case runs over hq-interop as in the runner.", ""]
    md = render(cases, results, peers, [OURS] + PEERS, notes=notes)
    os.makedirs(os.path.dirname(os.path.abspath(a.report)), exist_ok=True)
    with open(a.report, "w") as f:
        f.write(md)
    failed = [k for k, r in results.items() if r.status == FAIL]
    print(f"\n{len(results)} runs: {sum(r.status == PASS for r in results.values())} pass, "
          f"{len(failed)} fail, "
          f"{sum(r.status == UNSUPPORTED for r in results.values())} unsupported; "
          f"report: {a.report}")
    for case, s, c in failed:
        print(f"FAILED {case}: {s} server, {c} client: {results[(case, s, c)].reason}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
