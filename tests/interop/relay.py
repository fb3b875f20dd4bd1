#!/usr/bin/env python3
"""The local interop runner's network simulator: a userspace UDP relay.

The client sends to the relay's address; the relay forwards each client
address's datagrams to the server from a socket of its own (one per client
address, like a NAT mapping) and the server's answers back to that client.
On the way it applies a scenario, configured per direction:

    delay      a constant one-way delay (order is kept)
    loss       drop each datagram with a probability (seeded RNG)
    corrupt    flip bits (XOR one byte with a random non-zero mask) in a
               fraction of the datagrams
    drops      drop the datagrams with these 1-based numbers in that
               direction (the runner's `droplist`)

and, for the whole path:

    blackhole  from a trigger on (N seconds after the first datagram, or
               once N datagrams or N bytes have passed through the relay,
               both directions counted), drop everything for a duration;
               may repeat
    rebind     at a trigger, move every mapping to a new socket: a new port
               ("port") or a new address, 127.0.0.2, .3, ... ("addr"; the
               loopback interface answers for all of 127.0.0.0/8). The old
               mapping is dropped: what the server still sends to the old
               address is discarded (and counted).

ECN codepoints are carried over (IP_RECVTOS / IPV6_RECVTCLASS in,
IP_TOS / IPV6_TCLASS out). IPv6 works as IPv4 does (the server address
decides the family); only address rebinding needs IPv4.

With a trace directory, the relay writes what crossed each leg, as the
interop runner's simulator does: `client_leg.pcap` (datagrams the client
sent and the relay delivered to it) and `server_leg.pcap` (what the relay
delivered to the server and what the server sent), see pcap.py.

Library use:

    with Relay(("127.0.0.1", 4433), Scenario(to_server=Link(loss=0.3))) as r:
        ... clients send to r.address ...
    print(r.stats)

Command line (runs until SIGINT/SIGTERM, then prints its statistics as one
JSON line on stdout):

    relay.py --server 127.0.0.1:4433 [--listen 127.0.0.1:0] [--delay MS]
             [--loss P] [--corrupt P] [--to-server-drops 2,3,4]
             [--blackhole TRIGGER:SECONDS] [--rebind port|addr:TRIGGER[:EVERY]]
             [--trace-dir DIR] [--seed N]

TRIGGER is a number with a unit: `5s`, `200p` (datagrams), `3MB`/`500KB`/
`1000B` (bytes). --delay/--loss/--corrupt apply to both directions;
--to-server-* and --to-client-* set one direction.
"""

import argparse
import heapq
import json
import random
import re
import selectors
import signal
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass, field

try:
    from pcap import PcapWriter
except ImportError:  # imported as tests.interop.relay
    from .pcap import PcapWriter

TO_SERVER = "to_server"
TO_CLIENT = "to_client"
_BUF = 4 * 1024 * 1024
_MAX_DATAGRAM = 65535
_BATCH = 256  # datagrams read from one socket before looking at the others


@dataclass
class Link:
    """Impairments of one direction."""
    delay: float = 0.0        # seconds
    loss: float = 0.0         # probability per datagram
    corrupt: float = 0.0      # probability per datagram
    drops: frozenset = frozenset()  # 1-based datagram numbers to drop


@dataclass
class Trigger:
    """`amount` seconds (unit "s"), datagrams ("packets") or bytes
    ("bytes") after the first datagram, counted over both directions;
    again every `every` of the same unit if set."""
    amount: float
    unit: str = "s"
    every: float | None = None

    _UNITS = {"s": ("s", 1), "ms": ("s", 0.001), "p": ("packets", 1),
              "B": ("bytes", 1), "KB": ("bytes", 1000), "MB": ("bytes", 1000 * 1000)}

    @classmethod
    def parse(cls, text, every=None):
        def one(t):
            m = re.fullmatch(r"([0-9.]+)(ms|s|p|B|KB|MB)", t.strip())
            if not m:
                raise ValueError(f"bad trigger {t!r} (want e.g. 5s, 200p, 3MB)")
            unit, scale = cls._UNITS[m.group(2)]
            return float(m.group(1)) * scale, unit
        amount, unit = one(text)
        step = None
        if every:
            step, unit2 = one(every)
            if unit2 != unit:
                raise ValueError(f"trigger {text!r} and its repeat {every!r} differ in unit")
        return cls(amount, unit, step)


@dataclass
class Blackhole:
    start: Trigger
    duration: float  # seconds


@dataclass
class Rebind:
    kind: str  # "port" or "addr"
    when: Trigger


@dataclass
class Scenario:
    to_server: Link = field(default_factory=Link)
    to_client: Link = field(default_factory=Link)
    blackhole: Blackhole | None = None
    rebind: Rebind | None = None
    seed: int = 1


@dataclass
class DirectionStats:
    received: int = 0
    forwarded: int = 0
    lost: int = 0
    corrupted: int = 0
    listed_drops: int = 0
    blackholed: int = 0
    send_errors: int = 0


@dataclass
class Stats:
    to_server: DirectionStats = field(default_factory=DirectionStats)
    to_client: DirectionStats = field(default_factory=DirectionStats)
    mappings: int = 0
    rebinds: int = 0
    blackholes: int = 0
    old_mapping_drops: int = 0  # server datagrams to a retired mapping

    def as_dict(self):
        return asdict(self)


class _TriggerState:
    def __init__(self, trigger: Trigger):
        self.trigger = trigger
        self.next = trigger.amount

    def due(self, elapsed, packets, nbytes) -> bool:
        if self.next is None:
            return False
        value = {"s": elapsed, "packets": packets, "bytes": nbytes}[self.trigger.unit]
        if value < self.next:
            return False
        self.next = self.next + self.trigger.every if self.trigger.every else None
        return True


class _Mapping:
    """One client address and the relay socket that speaks for it."""

    def __init__(self, client, sock):
        self.client = client
        self.sock = sock
        self.local = sock.getsockname()[:2]
        self.retired = False


def _family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _ecn_opts(family):
    if family == socket.AF_INET6:
        return socket.IPPROTO_IPV6, socket.IPV6_RECVTCLASS, socket.IPV6_TCLASS
    return socket.IPPROTO_IP, socket.IP_RECVTOS, socket.IP_TOS


def _udp_socket(family, addr):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BUF)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _BUF)
    level, recv_opt, _ = _ecn_opts(family)
    s.setsockopt(level, recv_opt, 1)
    s.bind(addr)
    s.setblocking(False)
    return s


class Relay:
    """The relay; `start()` runs it in a thread, `stop()` ends it (both
    done by `with`). `address` is where clients send; `stats` counts
    what happened."""

    def __init__(self, server, scenario: Scenario | None = None, listen=None,
                 trace_dir=None):
        self.server = (server[0], int(server[1]))
        self.scenario = scenario or Scenario()
        self._family = _family(self.server[0])
        if self.scenario.rebind and self.scenario.rebind.kind == "addr" \
                and self._family == socket.AF_INET6:
            raise ValueError("address rebinding needs IPv4: ::1 is the only IPv6 loopback address")
        if self.scenario.rebind and self.scenario.rebind.kind not in ("port", "addr"):
            raise ValueError(f"rebind kind must be port or addr, not {self.scenario.rebind.kind!r}")
        self._loopback = "::1" if self._family == socket.AF_INET6 else "127.0.0.1"
        listen = listen or (self._loopback, 0)
        self._listen = _udp_socket(self._family, (listen[0], int(listen[1])))
        self.address = self._listen.getsockname()[:2]
        self.stats = Stats()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listen, selectors.EVENT_READ, None)
        self._wake_r, self._wake_w = socket.socketpair()
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._mappings = {}
        self._retired = []
        self._queue = []  # (due, seq, direction, mapping, data, ecn)
        self._seq = 0
        self._rng = {TO_SERVER: random.Random(self.scenario.seed),
                     TO_CLIENT: random.Random(self.scenario.seed + 1)}
        self._numbers = {TO_SERVER: 0, TO_CLIENT: 0}
        self._t0 = None
        self._packets = 0
        self._bytes = 0
        self._blackhole_until = 0.0
        self._blackhole_trigger = (_TriggerState(self.scenario.blackhole.start)
                                   if self.scenario.blackhole else None)
        self._rebind_trigger = (_TriggerState(self.scenario.rebind.when)
                                if self.scenario.rebind else None)
        self._next_addr = 2
        self._traces = {}
        if trace_dir:
            self._traces = {"client": PcapWriter(f"{trace_dir}/client_leg.pcap"),
                            "server": PcapWriter(f"{trace_dir}/server_leg.pcap")}
        self._thread = None
        self._lock = threading.Lock()
        self.error = None

    # -- lifecycle ----------------------------------------------------------

    def start(self):
        self._thread = threading.Thread(target=self._run_guarded, name="relay", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._thread is not None:
            self._wake_w.send(b"x")
            self._thread.join(timeout=10)
            self._thread = None
        for m in list(self._mappings.values()) + self._retired:
            m.sock.close()
        self._mappings.clear()
        self._retired.clear()
        for s in (self._listen, self._wake_r, self._wake_w):
            s.close()
        self._sel.close()
        for t in self._traces.values():
            t.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def blackhole_active(self) -> bool:
        return time.monotonic() < self._blackhole_until

    def mapping_address(self, client):
        """The address the server sees for `client` right now (None if the
        relay has not heard from it)."""
        with self._lock:
            m = self._mappings.get(client)
            return m.local if m else None

    # -- the loop -------------------------------------------------------------

    def _run_guarded(self):
        try:
            self._run()
        except Exception as e:  # reported by the owner through .error
            self.error = e
            raise

    def _run(self):
        while True:
            timeout = 0.1
            if self._queue:
                timeout = min(timeout, max(0.0, self._queue[0][0] - time.monotonic()))
            for key, _ in self._sel.select(timeout):
                if key.data == "wake":
                    return
                self._drain(key.fileobj, key.data)
            self._send_due()

    def _drain(self, sock, mapping):
        level, _, _ = _ecn_opts(self._family)
        for _ in range(_BATCH):
            try:
                data, anc, _flags, src = sock.recvmsg(_MAX_DATAGRAM, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # e.g. an ICMP error reported on the socket
            ecn = 0
            for lvl, _typ, cdata in anc:
                if lvl == level and cdata:
                    ecn = int.from_bytes(cdata[:4], sys.byteorder) & 3 \
                        if len(cdata) >= 4 else cdata[0] & 3
            src = src[:2]
            if mapping is None:
                self._from_client(src, data, ecn)
            else:
                self._from_server(mapping, src, data, ecn)

    def _from_client(self, src, data, ecn):
        now = time.time()
        self._trace("client", now, src, self.address, data, ecn)
        mapping = self._mappings.get(src)
        if mapping is None:
            mapping = self._new_mapping(src)
        data = self._impair(TO_SERVER, data)
        if data is not None:
            self._enqueue(TO_SERVER, mapping, data, ecn)

    def _from_server(self, mapping, src, data, ecn):
        if src != self.server:
            return  # only the server talks to the relay's upstream sockets
        self._trace("server", time.time(), src, mapping.local, data, ecn)
        if mapping.retired:
            self.stats.old_mapping_drops += 1
            return
        data = self._impair(TO_CLIENT, data)
        if data is not None:
            self._enqueue(TO_CLIENT, mapping, data, ecn)

    # -- impairments ----------------------------------------------------------

    def _impair(self, direction, data):
        """The datagram to forward (maybe corrupted), or None to drop it."""
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        # Triggers look at what passed before this datagram: "after 10
        # datagrams" lets ten through and acts on the eleventh.
        elapsed = now - self._t0
        if self._rebind_trigger and self._rebind_trigger.due(elapsed, self._packets, self._bytes):
            self._rebind()
        if self._blackhole_trigger and \
                self._blackhole_trigger.due(elapsed, self._packets, self._bytes):
            self._blackhole_until = now + self.scenario.blackhole.duration
            self.stats.blackholes += 1
        st = getattr(self.stats, direction)
        st.received += 1
        self._numbers[direction] += 1
        self._packets += 1
        self._bytes += len(data)
        link = getattr(self.scenario, direction)
        rng = self._rng[direction]
        lose = rng.random() < link.loss
        corrupt = rng.random() < link.corrupt
        if self._numbers[direction] in link.drops:
            st.listed_drops += 1
            return None
        if now < self._blackhole_until:
            st.blackholed += 1
            return None
        if lose:
            st.lost += 1
            return None
        if corrupt and data:
            st.corrupted += 1
            b = bytearray(data)
            b[rng.randrange(len(b))] ^= rng.randrange(1, 256)
            data = bytes(b)
        return data

    def _enqueue(self, direction, mapping, data, ecn):
        delay = getattr(self.scenario, direction).delay
        if delay <= 0:
            self._send(direction, mapping, data, ecn)
            return
        self._seq += 1
        heapq.heappush(self._queue, (time.monotonic() + delay, self._seq, direction,
                                     mapping, data, ecn))

    def _send_due(self):
        now = time.monotonic()
        while self._queue and self._queue[0][0] <= now:
            _, _, direction, mapping, data, ecn = heapq.heappop(self._queue)
            self._send(direction, mapping, data, ecn)

    def _send(self, direction, mapping, data, ecn):
        # A NAT translates when the datagram passes: after a rebind, the
        # mapping's current socket carries what was still queued.
        if direction == TO_SERVER:
            mapping = self._mappings.get(mapping.client, mapping)
            sock, dst, leg, src = mapping.sock, self.server, "server", mapping.local
        else:
            sock, dst, leg, src = self._listen, mapping.client, "client", self.address
        level, _, send_opt = _ecn_opts(self._family)
        try:
            if ecn:
                sock.sendmsg([data], [(level, send_opt, ecn.to_bytes(4, sys.byteorder))], 0, dst)
            else:
                sock.sendto(data, dst)
        except OSError:
            getattr(self.stats, direction).send_errors += 1
            return
        getattr(self.stats, direction).forwarded += 1
        self._trace(leg, time.time(), src, dst, data, ecn)

    # -- mappings -------------------------------------------------------------

    def _upstream_socket(self, host):
        return _udp_socket(self._family, (host, 0))

    def _new_mapping(self, client):
        m = _Mapping(client, self._upstream_socket(self._loopback))
        self._sel.register(m.sock, selectors.EVENT_READ, m)
        with self._lock:
            self._mappings[client] = m
        self.stats.mappings += 1
        return m

    def _rebind(self):
        """Every live mapping moves to a new socket; the old ones stay open
        only to count (and drop) what the server still sends to them."""
        self.stats.rebinds += 1
        host = self._loopback
        if self.scenario.rebind.kind == "addr":
            host = f"127.0.0.{self._next_addr}"
            self._next_addr += 1
        for client, old in list(self._mappings.items()):
            new = _Mapping(client, self._upstream_socket(host))
            self._sel.register(new.sock, selectors.EVENT_READ, new)
            old.retired = True
            self._retired.append(old)
            with self._lock:
                self._mappings[client] = new

    def _trace(self, leg, ts, src, dst, data, ecn):
        t = self._traces.get(leg)
        if t is not None:
            t.write(ts, src, dst, data, ecn)


# -- command line ------------------------------------------------------------


def _addr(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def _drops(text):
    return frozenset(int(x) for x in text.split(",") if x)


def scenario_from_args(a) -> Scenario:
    def link(prefix):
        def pick(name):
            v = getattr(a, f"{prefix}_{name}")
            return v if v is not None else getattr(a, name)
        return Link(delay=pick("delay") / 1000.0, loss=pick("loss"), corrupt=pick("corrupt"),
                    drops=_drops(getattr(a, f"{prefix}_drops") or ""))
    bh = None
    if a.blackhole:
        trig, _, dur = a.blackhole.rpartition(":")
        bh = Blackhole(Trigger.parse(trig), float(dur.rstrip("s")))
    rb = None
    if a.rebind:
        kind, trig, *every = a.rebind.split(":")
        rb = Rebind(kind, Trigger.parse(trig, every[0] if every else None))
    return Scenario(to_server=link("to_server"), to_client=link("to_client"),
                    blackhole=bh, rebind=rb, seed=a.seed)


def parser():
    p = argparse.ArgumentParser(description="UDP relay with network impairments")
    p.add_argument("--server", required=True, type=_addr, help="HOST:PORT to forward to")
    p.add_argument("--listen", type=_addr, help="HOST:PORT for clients (default: loopback, free port)")
    p.add_argument("--delay", type=float, default=0.0, help="one-way delay in ms, both directions")
    p.add_argument("--loss", type=float, default=0.0, help="loss probability, both directions")
    p.add_argument("--corrupt", type=float, default=0.0, help="corruption probability, both directions")
    for d in ("to_server", "to_client"):
        flag = d.replace("_", "-")
        p.add_argument(f"--{flag}-delay", dest=f"{d}_delay", type=float)
        p.add_argument(f"--{flag}-loss", dest=f"{d}_loss", type=float)
        p.add_argument(f"--{flag}-corrupt", dest=f"{d}_corrupt", type=float)
        p.add_argument(f"--{flag}-drops", dest=f"{d}_drops", help="1-based datagram numbers")
    p.add_argument("--blackhole", help="TRIGGER:SECONDS, e.g. 3MB:2")
    p.add_argument("--rebind", help="port|addr:TRIGGER[:EVERY], e.g. port:1MB:3MB")
    p.add_argument("--trace-dir", help="write client_leg.pcap and server_leg.pcap here")
    p.add_argument("--seed", type=int, default=1)
    return p


def main(argv):
    a = parser().parse_args(argv)
    try:
        relay = Relay(a.server, scenario_from_args(a), listen=a.listen, trace_dir=a.trace_dir)
    except ValueError as e:
        print(f"relay: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    relay.start()
    host, port = relay.address
    print(f"relay listening on {host}:{port}", file=sys.stderr, flush=True)
    while not stop.wait(0.2):
        if relay.error:
            break
    relay.stop()
    print(json.dumps(relay.stats.as_dict()), flush=True)
    return 1 if relay.error else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
