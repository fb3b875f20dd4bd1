"""The test cases of the QUIC interop runner (quic-interop-runner,
testcases.py), with the runner's parameters: the test case name each
endpoint is given, the files (sizes, number, name length), the network
scenario and the deadline. The checks themselves are in checks.py.

The runner's simulator (ns-3) is replaced by relay.py. Its default link,
"simple-p2p --delay=15ms --bandwidth=10Mbps --queue=25", becomes a 15 ms
one-way delay in each direction, with no bandwidth limit. A 10 MB file
over 10 Mbit/s takes eight seconds there and well under one on loopback,
so what the runner times in seconds from the start of the transfer
(blackhole on=5s off=2s; first rebind after 1 s, then every 5 s) is
triggered here by the bytes that have passed the relay by then at
10 Mbit/s (1.25 MB a second), so that it falls at the same point of the
transfer: the blackhole after 6.25 MB, rebinds after 1.25 MB and then
every 6.25 MB (two in a 10 MB transfer, as in the runner).
"""

import os
import random
import string
from dataclasses import dataclass

from relay import Blackhole, Link, Rebind, Scenario, Trigger

KB = 1 << 10
MB = 1 << 20

BASE_DELAY = 0.015  # seconds, one way


def at_10_mbps(seconds):
    """The bytes 10 Mbit/s carries in `seconds`: the runner's link rate."""
    return int(seconds * 10_000_000 / 8)


@dataclass
class Case:
    name: str
    abbreviation: str
    files: list  # file sizes in bytes
    testname: str | None = None  # what both endpoints are told, if not `name`
    client_testname: str | None = None  # the client's, where it differs
    name_length: int = 10
    delay: float = BASE_DELAY  # one-way, seconds
    loss: float = 0.0  # both directions
    corrupt: float = 0.0  # both directions
    drops_to_server: frozenset = frozenset()
    blackhole: Blackhole | None = None
    rebind: Rebind | None = None
    ipv6: bool = False
    cert_chain: int = 1
    timeout: int = 60
    alpn: str | None = None  # forced ALPN (http3); else the pair's
    description: str = ""

    def testname_for(self, role):
        if role == "client" and self.client_testname:
            return self.client_testname
        return self.testname or self.name

    def scenario(self, seed=1) -> Scenario:
        def link(drops=frozenset()):
            return Link(delay=self.delay, loss=self.loss, corrupt=self.corrupt, drops=drops)
        return Scenario(to_server=link(self.drops_to_server), to_client=link(),
                        blackhole=self.blackhole, rebind=self.rebind, seed=seed)

    def make_files(self, www, rng=None):
        """Random files of the case's sizes under `www`, named with random
        lower-case letters as the runner names them; returns the names."""
        rng = rng or random.SystemRandom()
        names = []
        for size in self.files:
            while True:
                name = "".join(rng.choice(string.ascii_lowercase) for _ in range(self.name_length))
                if name not in names:
                    break
            with open(os.path.join(www, name), "wb") as f:
                left = size
                while left:
                    chunk = min(left, 1 << 20)
                    f.write(os.urandom(chunk))
                    left -= chunk
            names.append(name)
        return names


CASES = [
    Case("handshake", "H", [1 * KB],
         description="one handshake, no Retry, a 1 KB file"),
    Case("transfer", "DC", [2 * MB, 3 * MB, 5 * MB],
         description="2, 3 and 5 MB on one connection, concurrently; the client's "
                     "flow-control windows grow"),
    Case("longrtt", "LR", [1 * KB], testname="handshake", delay=0.750,
         description="handshake with 750 ms one-way delay (1.5 s RTT): the client "
                     "retransmits its ClientHello"),
    Case("chacha20", "C20", [3 * MB],
         description="only TLS_CHACHA20_POLY1305_SHA256 offered"),
    Case("multiplexing", "M", [32] * 1999, testname="transfer",
         description="1999 files of 32 bytes on one connection; the server's stream "
                     "limit is at most 1000 and grows"),
    Case("retry", "S", [10 * KB],
         description="a Retry, then an Initial carrying its token"),
    Case("resumption", "R", [5 * KB, 10 * KB],
         description="second connection resumes the TLS session (no certificate), "
                     "without 0-RTT"),
    Case("zerortt", "Z", [32] * 40, name_length=250,
         description="second connection sends its 40 requests in 0-RTT"),
    Case("http3", "3", [5 * KB, 10 * KB, 500 * KB], alpn="h3",
         description="5 KB, 10 KB and 500 KB over HTTP/3, in parallel"),
    Case("blackhole", "B", [10 * MB], testname="transfer",
         blackhole=Blackhole(Trigger(at_10_mbps(5), "bytes"), 2.0),
         description="10 MB; the network drops everything for 2 s after 6.25 MB "
                     "(5 s at 10 Mbit/s)"),
    Case("keyupdate", "U", [3 * MB], testname="transfer", client_testname="keyupdate",
         description="the client updates its keys; both sides send key phase 1"),
    Case("ecn", "E", [1 * KB],
         description="every packet marked ECT, ECN counts in both sides' ACKs"),
    Case("amplificationlimit", "A", [5 * KB], testname="transfer", cert_chain=9,
         drops_to_server=frozenset({2, 3, 4, 5, 6, 7}),
         description="9-certificate chain, client datagrams 2-7 dropped: the server "
                     "sends at most 3x what it received before validation"),
    Case("handshakeloss", "L1", [1 * KB] * 50, testname="multiconnect", loss=0.30, timeout=300,
         description="50 connections, one after another, with 30 % loss each way"),
    Case("transferloss", "L2", [2 * MB], testname="transfer", loss=0.02,
         description="2 MB with 2 % loss each way"),
    Case("handshakecorruption", "C1", [1 * KB] * 50, testname="multiconnect", corrupt=0.30,
         timeout=300,
         description="50 connections with 30 % of the datagrams corrupted each way"),
    Case("transfercorruption", "C2", [2 * MB], testname="transfer", corrupt=0.02,
         description="2 MB with 2 % of the datagrams corrupted each way"),
    Case("ipv6", "6", [5 * KB, 10 * KB], testname="transfer", ipv6=True,
         description="a transfer over ::1, no IPv4 packet"),
    Case("v2", "V2", [1 * KB],
         description="the client starts in v1 offering v2; the server switches to v2"),
    Case("rebind-port", "BP", [10 * MB], testname="transfer",
         rebind=Rebind("port", Trigger(at_10_mbps(1), "bytes", every=at_10_mbps(5))),
         description="10 MB; a NAT moves the client to a new port after 1.25 MB, then every "
                     "6.25 MB (1 s, then every 5 s at 10 Mbit/s): the server validates each "
                     "new path"),
    Case("rebind-addr", "BA", [10 * MB], testname="transfer",
         rebind=Rebind("addr", Trigger(at_10_mbps(1), "bytes", every=at_10_mbps(5))),
         description="as rebind-port, to a new address (127.0.0.2, .3, ...)"),
    Case("connectionmigration", "CM", [2 * MB], testname="transfer",
         client_testname="connectionmigration",
         description="the client migrates to a new local port (and a new connection "
                     "ID); the server validates the path"),
]

BY_NAME = {c.name: c for c in CASES}
