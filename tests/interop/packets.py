"""QUIC packets of one leg's trace, decoded and decrypted by tshark.

A `Trace` is one pcap the relay wrote (client_leg.pcap or server_leg.pcap)
plus the key log that decrypts it and the address that stands for the
server on that leg (the relay's listening address on the client leg, the
server's on the server leg), which gives each packet its direction, as the
interop runner's TraceAnalyzer does with its fixed client and server IPs.

Two ways to read it:

- `packets(filter)`: one `QuicPacket` per QUIC packet (coalesced packets
  split), with every field of its protocol tree, for the few packets a
  check looks at closely (long-header packets, a handful of frames);
- `rows(filter, fields)`: per datagram, the listed fields (each a list of
  its occurrences), cheap enough for every packet of a 10 MB transfer.
"""

import json
import subprocess

from pcap import records, rewrite, udp_payload, udp_ports

FROM_CLIENT = "client"
FROM_SERVER = "server"

INITIAL, ZERO_RTT, HANDSHAKE, RETRY = "0", "1", "2", "3"
# QUIC v2 numbers its long-header packet types differently (RFC 9369).
V2 = "0x6b3343cf"
_V2_TYPES = {"1": INITIAL, "2": ZERO_RTT, "3": HANDSHAKE, "0": RETRY}

# Hex-dump fields a check never reads: dropped to keep packets small.
_BULKY = {"udp.payload", "quic.stream_data", "quic.payload", "quic.protected_payload",
          "quic.remaining_payload", "quic.crypto.crypto_data", "data.data", "tls.handshake.certificate"}
_PAYLOADS = ("quic.payload", "quic.protected_payload", "quic.remaining_payload")


class TsharkError(Exception):
    pass


def _flatten(node, out, key=None):
    """Every leaf of a tshark JSON tree under its field name; a subtree's
    name is recorded too (with no value)."""
    if isinstance(node, dict):
        if key is not None:
            out.setdefault(key, [])
        for k, v in node.items():
            _flatten(v, out, k)
    elif isinstance(node, list):
        for x in node:
            _flatten(x, out, key)
    elif key not in _BULKY:
        out.setdefault(key, []).append(node)


def _payload_len(quic):
    for k in _PAYLOADS:
        v = quic.get(k)
        if isinstance(v, str):
            return (len(v) + 1) // 3 if v else 0
    short = quic.get("quic.short")
    if isinstance(short, dict):
        return _payload_len(short)
    return 0


class QuicPacket:
    """One QUIC packet: `fields` maps each field name of its tree to the
    list of its values; frame-level facts are attributes."""

    def __init__(self, frame, quic, direction):
        self.number = int(frame["frame.number"])
        self.time = float(frame["frame.time_epoch"])
        self.src, self.dst, self.udp_length, self.ecn, self.ipv6 = (
            frame["src"], frame["dst"], frame["udp_length"], frame["ecn"], frame["ipv6"])
        self.direction = direction
        self.payload_length = _payload_len(quic)
        self.fields = {}
        _flatten(quic, self.fields)

    def get(self, name, default=None):
        v = self.fields.get(name)
        return v[0] if v else default

    def all(self, name):
        return self.fields.get(name, [])

    def has(self, name):
        return name in self.fields

    @property
    def long_header(self):
        return self.get("quic.header_form") == "1"

    @property
    def version(self):
        return self.get("quic.version")

    @property
    def type(self):
        """INITIAL, ZERO_RTT, HANDSHAKE, RETRY, "vn", "1rtt" or None."""
        if not self.long_header:
            return "1rtt" if self.get("quic.header_form") == "0" else None
        if self.version == "0x00000000":
            return "vn"
        t = self.get("quic.long.packet_type")
        if t is None:
            t = _V2_TYPES.get(self.get("quic.long.packet_type_v2"))
        return t

    @property
    def decrypted(self):
        return "quic.frame" in self.fields

    def __repr__(self):
        return f"<QUIC #{self.number} {self.direction} type={self.type} {self.src}->{self.dst}>"


KNOWN_VERSIONS = (b"\x00\x00\x00\x01", bytes.fromhex(V2[2:]))


def _long_header_version(payload):
    return payload[1:5] if len(payload) >= 5 and payload[0] & 0x80 else None


class Trace:
    """Datagrams whose long header carries a version other than v1 or v2
    (a client's greased first Initial, the server's Version Negotiation)
    are counted and left out of what tshark reads: Wireshark 4.0 keeps the
    greased version for the connection IDs it saw and then fails to
    decrypt every later packet of that connection, Initials included."""

    def __init__(self, pcap, keylog, server_address, tshark="tshark"):
        self.keylog = keylog
        self.server_address = (server_address[0], str(server_address[1]))
        self.tshark = tshark
        self._cache = {}
        self.version_negotiation = 0
        self.foreign_versions = set()  # what the client side sent
        foreign = 0
        for _, pkt in records(pcap):
            v = _long_header_version(udp_payload(pkt))
            if v is None or v in KNOWN_VERSIONS:
                continue
            foreign += 1
            if v == b"\0\0\0\0":
                self.version_negotiation += 1
            elif str(udp_ports(pkt)[0]) != self.server_address[1]:
                self.foreign_versions.add("0x" + v.hex())
        self.pcap = pcap
        if foreign:
            self.pcap = pcap[:-len(".pcap")] + "-known-versions.pcap"
            rewrite(pcap, self.pcap,
                    lambda p: _long_header_version(p) in (None,) + KNOWN_VERSIONS)

    def _argv(self, display_filter):
        argv = [self.tshark, "-n", "-r", self.pcap,
                "-d", f"udp.port=={self.server_address[1]},quic",
                "--disable-protocol", "http3", "-Y", display_filter]
        if self.keylog:
            argv += ["-o", f"tls.keylog_file:{self.keylog}"]
        return argv

    def _run(self, argv):
        out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise TsharkError(f"tshark failed ({out.returncode}): {out.stderr.strip()[-500:]}")
        return out.stdout

    def direction(self, src):
        return FROM_SERVER if tuple(src) == self.server_address else FROM_CLIENT

    def packets(self, display_filter="quic"):
        """Every QUIC packet of the datagrams that match the filter."""
        if display_filter in self._cache:
            return self._cache[display_filter]
        text = self._run(self._argv(display_filter) + [
            "-T", "json", "--no-duplicate-keys", "-J", "frame ip ipv6 udp quic"])
        result = []
        for record in json.loads(text or "[]"):
            layers = record["_source"]["layers"]
            frame = _frame_facts(layers)
            quics = layers.get("quic", [])
            for q in quics if isinstance(quics, list) else [quics]:
                if isinstance(q, dict):  # a bare string: nothing tshark could dissect
                    result.append(QuicPacket(frame, q, self.direction(frame["src"])))
        self._cache[display_filter] = result
        return result

    def rows(self, display_filter, fields):
        """Per datagram: {"direction", "src", "dst", field: [values]...}."""
        base = ["frame.number", "ip.src", "ipv6.src", "ip.dst", "ipv6.dst", "udp.srcport",
                "udp.dstport", "udp.length"]
        argv = self._argv(display_filter) + ["-T", "fields", "-E", "occurrence=a",
                                             "-E", "aggregator=,", "-E", "separator=\t"]
        for f in base + list(fields):
            argv += ["-e", f]
        out = []
        for line in self._run(argv).splitlines():
            cols = line.split("\t")
            cols += [""] * (len(base) + len(fields) - len(cols))
            v = dict(zip(base + list(fields), cols))
            src = (v["ip.src"] or v["ipv6.src"], v["udp.srcport"])
            dst = (v["ip.dst"] or v["ipv6.dst"], v["udp.dstport"])
            row = {"number": int(v["frame.number"]), "src": src, "dst": dst,
                   "udp_length": int(v["udp.length"] or 0), "direction": self.direction(src)}
            for f in fields:
                row[f] = v[f].split(",") if v[f] else []
            out.append(row)
        return out

    # -- the runner's TraceAnalyzer queries -----------------------------------

    def long_header(self, kind, direction=None):
        return [p for p in self.packets("quic.header_form == 1")
                if p.type == kind and (direction is None or p.direction == direction)]

    def initial(self, direction=None):
        return self.long_header(INITIAL, direction)

    def handshake(self, direction=None):
        return self.long_header(HANDSHAKE, direction)

    def retry(self, direction=None):
        return self.long_header(RETRY, direction)

    def zero_rtt(self):
        return self.long_header(ZERO_RTT, FROM_CLIENT)

    def decryption_failures(self):
        return len(self.rows("quic.decryption_failed", []))


def _frame_facts(layers):
    ip = layers.get("ip") or layers.get("ipv6") or {}
    v6 = "ipv6" in layers
    udp = layers.get("udp", {})
    pre = "ipv6" if v6 else "ip"
    if v6:
        ecn = ip.get("ipv6.tclass_tree", {}).get("ipv6.tclass.ecn", "0")
    else:
        ecn = ip.get("ip.dsfield_tree", {}).get("ip.dsfield.ecn", "0")
    return {
        "frame.number": layers["frame"]["frame.number"],
        "frame.time_epoch": layers["frame"]["frame.time_epoch"],
        "src": (ip.get(f"{pre}.src"), udp.get("udp.srcport")),
        "dst": (ip.get(f"{pre}.dst"), udp.get("udp.dstport")),
        "udp_length": int(udp.get("udp.length", 0)),
        "ecn": int(ecn),
        "ipv6": v6,
    }
