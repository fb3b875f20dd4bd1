#!/usr/bin/env python3
"""Behaviour parity harness (`make compare`): runs every client/server pair
of {ours, upstream, upstream linked against libquiche_ev.a} for hq-interop
and HTTP/3, plus the independent stacks aioquic (hq and h3, both roles) and
ngtcp2 (h3, both roles), and compares each pair with its *upstream twin*:
the same pair with every "ours" side replaced by upstream's sample.

Compared per pair: the client's stdout (byte for byte) and exit status; the
ordered event lines on each side's stderr, numbers normalised; and the
packet types each quiche-based side sent and received (from quiche's trace
lines `tx pkt <Type>` / `rx pkt <Type>`). A difference is either one of the
intended improvements listed in INTENDED (each is a row of the README's
"Differences from upstream") or a regression; a regression fails the run and
names the pair. Prints a table and writes target/compare.md.

Options:
  --ours-server-args "ARGS"  extra arguments for our servers (the harness's
                             own test gives it a broken server this way)
  --only SUBSTRING           run only the pairs whose name contains it
"""

import argparse
import difflib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EX = os.path.join(ROOT, "c-examples")
PY = os.path.join(ROOT, "target/venv/bin/python")
PEER = os.path.join(ROOT, "tests/peers/aioquic_peer.py")
EXPECTED = b"byez\n"
DEADLINE = 20.0
# Upstream's clients can hang after a complete exchange (a zero timeout
# stops their timer): give them this long after the response, then kill.
UPSTREAM_GRACE = 6.0

EVENT = re.compile(r"^(version negotiation|stateless retry|new connection|connection established: .*"
                   r"|sent HTTP request.*|got HTTP header: .*|got HTTP/3 SETTING: .*|connection closed.*"
                   r"|request was reset.*|got GOAWAY|error: .*|invalid address validation token.*)$")
PACKET = re.compile(r"\b(tx|rx) pkt ([A-Za-z]+)")

# Intended differences: (side, what ours shows, what upstream shows, README
# row). Applied as normalisations to both event lists before comparing.
INTENDED = [
    ("client", re.compile(r"^connection closed, recv=N sent=N lost=N rtt=Nns$"), "connection closed",
     "the client always reports its closing statistics (upstream's recv_cb path prints a bare line)"),
    ("client", re.compile(r"^connection closed$"), "connection closed",
     "(upstream's bare closing line, same event)"),
]

# Values that differ by nature between runs or implementations, not by
# behaviour: the peer's SETTINGS values come from the peer.
VOLATILE = [(re.compile(r"^got HTTP/N SETTING: .*"), "got HTTP/N SETTING: *"),
            (re.compile(r"^(got HTTP header: server)=.*"), r"\1=*")]

children = []


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def bound(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", port))
        return False
    except OSError:
        return True
    finally:
        s.close()


class Fail(Exception):
    pass


def need(path, how):
    if not (os.path.exists(path) or shutil.which(path)):
        raise SystemExit(f"compare: {path} is missing: {how}")


# ---- implementations ------------------------------------------------------

def server_cmd(impl, proto, port, docroot, ours_args):
    name = "server" if proto == "hq" else "http3-server"
    if impl == "ours":
        return [os.path.join(EX, name), *ours_args, "127.0.0.1", str(port)]
    if impl in ("upstream", "upstream-ev"):
        flavour = "quiche" if impl == "upstream" else "quiche-ev"
        return [os.path.join(ROOT, "target/upstream", flavour, name), "127.0.0.1", str(port)]
    if impl == "aioquic":
        alpn = "hq-interop" if proto == "hq" else "h3"
        return [PY, PEER, "server", "--alpn", alpn, "--cert", "cert.crt", "--key", "cert.key", "127.0.0.1", str(port)]
    if impl == "ngtcp2":
        return ["gtlsserver", "-d", docroot, "127.0.0.1", str(port),
                os.path.join(EX, "cert.key"), os.path.join(EX, "cert.crt")]
    raise ValueError(impl)


def client_cmd(impl, proto, port, dl):
    name = "client" if proto == "hq" else "http3-client"
    if impl == "ours":
        return [os.path.join(EX, name), "127.0.0.1", str(port)]
    if impl in ("upstream", "upstream-ev"):
        flavour = "quiche" if impl == "upstream" else "quiche-ev"
        return [os.path.join(ROOT, "target/upstream", flavour, name), "127.0.0.1", str(port)]
    if impl == "aioquic":
        alpn = "hq-interop" if proto == "hq" else "h3"
        return [PY, PEER, "client", "--alpn", alpn, "--timeout", "10", "127.0.0.1", str(port)]
    if impl == "ngtcp2":
        return ["gtlsclient", "--download", dl, "--exit-on-all-streams-close", "127.0.0.1", str(port),
                f"https://127.0.0.1:{port}/index.html"]
    raise ValueError(impl)


def run_pair(proto, client, server, ours_args):
    """One exchange; returns the observation dict."""
    docroot = tempfile.mkdtemp(prefix="compare-root-")
    dl = tempfile.mkdtemp(prefix="compare-dl-")
    with open(os.path.join(docroot, "index.html"), "wb") as f:
        f.write(EXPECTED)
    port = free_port()
    serr = tempfile.TemporaryFile()
    srv = subprocess.Popen(server_cmd(server, proto, port, docroot, ours_args), cwd=EX,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=serr)
    children.append(srv)
    end = time.monotonic() + DEADLINE
    while not bound(port):
        if srv.poll() is not None or time.monotonic() > end:
            serr.seek(0)
            raise Fail(f"{server} server did not start: {serr.read()[-500:]!r}")
        time.sleep(0.01)
    cout, cerr = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    cli = subprocess.Popen(client_cmd(client, proto, port, dl), cwd=EX, stdin=subprocess.DEVNULL,
                           stdout=cout, stderr=cerr)
    children.append(cli)
    status, hung = None, False
    end = time.monotonic() + DEADLINE
    got_at = None
    while True:
        status = cli.poll()
        if status is not None:
            break
        now = time.monotonic()
        if client.startswith("upstream") and got_at is None and _size(cout) >= len(EXPECTED):
            got_at = now
        if got_at is not None and now - got_at > UPSTREAM_GRACE:
            hung = True
            break
        if now > end:
            break
        time.sleep(0.01)
    if status is None:
        cli.kill()
        cli.wait()
    time.sleep(0.05)
    srv.send_signal(signal.SIGTERM)
    try:
        srv.wait(5)
    except subprocess.TimeoutExpired:
        srv.kill()
        srv.wait()
    cout.seek(0)
    stdout = cout.read()
    if client == "ngtcp2":
        p = os.path.join(dl, "index.html")
        stdout = open(p, "rb").read() if os.path.exists(p) else b""
    cerr.seek(0)
    serr.seek(0)
    shutil.rmtree(docroot)
    shutil.rmtree(dl)
    c_text = cerr.read().decode(errors="replace")
    s_text = serr.read().decode(errors="replace")
    return {
        "stdout": stdout, "status": status, "hung": hung,
        "client_events": events(c_text, "client"), "server_events": events(s_text, "server"),
        "client_packets": packets(c_text), "server_packets": packets(s_text),
    }


def _size(f):
    return os.fstat(f.fileno()).st_size


def events(text, side):
    out = []
    for line in text.splitlines():
        if not EVENT.match(line):
            continue
        line = re.sub(r"\d+", "N", line)
        for pat, rep in VOLATILE:
            line = pat.sub(rep, line)
        for s, pat, rep, _ in INTENDED:
            if s == side and pat.match(line):
                line = rep
        out.append(line)
    return out


def packets(text):
    seen = {"tx": set(), "rx": set()}
    for d, t in PACKET.findall(text):
        seen[d].add(t)
    return {d: sorted(v) for d, v in seen.items()}


# ---- the matrix -----------------------------------------------------------

def pairs():
    mine = ["ours", "upstream", "upstream-ev"]
    out = []
    for proto in ["hq", "h3"]:
        for c in mine:
            for s in mine:
                out.append((proto, c, s))
        out += [(proto, "aioquic", "ours"), (proto, "ours", "aioquic")]
    out += [("h3", "ngtcp2", "ours"), ("h3", "ours", "ngtcp2")]
    return out


def twin(pair):
    proto, c, s = pair
    swap = {"ours": "upstream", "upstream-ev": "upstream"}
    return proto, swap.get(c, c), swap.get(s, s)


def compare(obs, base, pair):
    """(regressions, intended notes)."""
    proto, c, s = pair
    bad, notes = [], []
    if obs["stdout"] != EXPECTED:
        bad.append(f"client stdout {obs['stdout'][:40]!r}, expected {EXPECTED!r}")
    ok_status = obs["status"] == 0 or (obs["hung"] and c.startswith("upstream"))
    if not ok_status:
        bad.append(f"client exit status {obs['status']}")
    if obs["hung"]:
        notes.append("upstream client hung after the response (its zero-timeout timer bug), killed")
    if base is None:
        return bad, notes
    for side in ["client", "server"]:
        a, b = base[f"{side}_events"], obs[f"{side}_events"]
        if a != b:
            diff = [d for d in difflib.ndiff(a, b) if d[:1] in "+-"]
            bad.append(f"{side} events differ from upstream: " + "; ".join(diff))
        pa, pb = base[f"{side}_packets"], obs[f"{side}_packets"]
        # Only sides that trace in both runs (quiche-based) are compared.
        if any(pa.values()) and any(pb.values()) and pa != pb:
            bad.append(f"{side} packet types differ from upstream: {pb} vs {pa}")
    if c == "ours" and base["client_events"] == obs["client_events"]:
        notes.append("intended: " + INTENDED[0][3])
    return bad, notes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours-server-args", default="")
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    ours_args = shlex.split(args.ours_server_args)
    need(os.path.join(EX, "server"), "run `make`")
    need(os.path.join(ROOT, "target/upstream/quiche/server"), "run `make upstream`")
    need(os.path.join(ROOT, "target/upstream/quiche-ev/server"), "run `make upstream`")
    need(PY, "run `make peers` (aioquic in target/venv)")
    for tool in ["gtlsserver", "gtlsclient"]:
        need(tool, "apt-get install ngtcp2-server ngtcp2-client")

    cache = {}

    def observe(pair):
        if pair not in cache:
            try:
                cache[pair] = run_pair(*pair, ours_args)
            except Fail as e:
                cache[pair] = {"error": str(e)}
        return cache[pair]

    rows, failed = [], []
    for pair in pairs():
        name = f"{pair[0]}: {pair[1]} client -> {pair[2]} server"
        if args.only not in name:
            continue
        obs = observe(pair)
        tw = twin(pair)
        base = observe(tw) if tw != pair else None
        if "error" in obs:
            bad, notes = [obs["error"]], []
        elif base is not None and "error" in base:
            bad, notes = [f"upstream twin failed: {base['error']}"], []
        else:
            bad, notes = compare(obs, base, pair)
        result = "FAIL" if bad else "pass"
        if bad:
            failed.append(name)
        rows.append((name, result, bad, notes, tw if base is not None else None))
        print(f"{result:<5} {name}" + (f"   [{'; '.join(bad)}]" if bad else ""), flush=True)

    os.makedirs(os.path.join(ROOT, "target"), exist_ok=True)
    with open(os.path.join(ROOT, "target/compare.md"), "w") as f:
        f.write("# quiche-ev parity report\n\n")
        f.write("Each pair is compared with its upstream twin (every `ours` side replaced by "
                "upstream's sample): client stdout and exit status, event lines on both sides "
                "(numbers normalised), packet types per direction.\n\n")
        f.write("| pair | result | compared with | regressions | intended differences / notes |\n")
        f.write("|---|---|---|---|---|\n")
        for name, result, bad, notes, tw in rows:
            twn = f"{tw[1]} -> {tw[2]}" if tw else "(baseline)"
            f.write(f"| {name} | {result} | {twn} | {'<br>'.join(bad) or '-'} | {'<br>'.join(notes) or '-'} |\n")
    print(f"\n{len(rows) - len(failed)} passed, {len(failed)} failed")
    print("report: target/compare.md")
    if failed:
        print("regressions in: " + ", ".join(failed), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in children:
            if p.poll() is None:
                p.kill()
                p.wait()
