"""Writes UDP datagrams to a classic pcap file, one record per datagram.

The relay (relay.py) records each leg of the path it simulates here, as
the interop runner's network simulator records `trace_node_left.pcap` and
`trace_node_right.pcap`: exactly the datagrams its sockets received and
sent. A capture of the loopback interface cannot stand in for that: an
endpoint that sends with UDP GSO shows up on `lo` as one unsegmented
super-datagram (tens of kilobytes, which Wireshark cannot split into QUIC
packets), while the receiving socket gets the segments.

Records are raw IP packets (link type 101) with synthesized IPv4 or IPv6
and UDP headers that carry the real addresses, ports and ECN bits.
"""

import ipaddress
import struct

LINKTYPE_RAW = 101
_IPPROTO_UDP = 17


def _ipv4_checksum(header: bytes) -> int:
    total = sum(struct.unpack("!10H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_packet(src, dst, payload: bytes, ecn: int = 0) -> bytes:
    """An IP packet carrying `payload` from `src` to `dst` ((host, port)
    tuples of the same family), ECN codepoint `ecn` (0..3)."""
    udp_len = 8 + len(payload)
    udp = struct.pack("!HHHH", src[1], dst[1], udp_len, 0)
    s = ipaddress.ip_address(src[0].split("%")[0])
    d = ipaddress.ip_address(dst[0].split("%")[0])
    if s.version == 4:
        header = struct.pack("!BBHHHBBH4s4s", 0x45, ecn & 3, 20 + udp_len, 0,
                             0x4000, 64, _IPPROTO_UDP, 0, s.packed, d.packed)
        header = header[:10] + struct.pack("!H", _ipv4_checksum(header)) + header[12:]
        return header + udp + payload
    first_word = (6 << 28) | ((ecn & 3) << 20)
    header = struct.pack("!IHBB16s16s", first_word, udp_len, _IPPROTO_UDP, 64,
                         s.packed, d.packed)
    return header + udp + payload


class PcapWriter:
    """A classic pcap file of raw IP packets; call `close()` when done."""

    def __init__(self, path):
        self._f = open(path, "wb")
        # magic, version 2.4, no timezone, no accuracy, snaplen, link type
        self._f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, LINKTYPE_RAW))

    def write(self, ts: float, src, dst, payload: bytes, ecn: int = 0):
        pkt = udp_packet(src, dst, payload, ecn)
        sec = int(ts)
        usec = int((ts - sec) * 1_000_000)
        self._f.write(struct.pack("<IIII", sec, usec, len(pkt), len(pkt)))
        self._f.write(pkt)

    def close(self):
        if not self._f.closed:
            self._f.close()


def records(path):
    """(header bytes, IP packet) of each record of a pcap we wrote."""
    with open(path, "rb") as f:
        data = f.read()
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        yield data[off:off + 16], data[off + 16:off + 16 + incl]
        off += 16 + incl


def _ip_header_length(ip_packet: bytes) -> int:
    return 40 if ip_packet[0] >> 4 == 6 else (ip_packet[0] & 15) * 4


def udp_payload(ip_packet: bytes) -> bytes:
    return ip_packet[_ip_header_length(ip_packet) + 8:]


def udp_ports(ip_packet: bytes):
    """(source port, destination port)."""
    return struct.unpack_from("!HH", ip_packet, _ip_header_length(ip_packet))


def rewrite(src, dst, keep):
    """Copies the records of `src` for which keep(udp payload) is true to
    `dst`; returns how many were left out."""
    dropped = 0
    with open(src, "rb") as f:
        header = f.read(24)
    with open(dst, "wb") as out:
        out.write(header)
        for rec, pkt in records(src):
            if keep(udp_payload(pkt)):
                out.write(rec)
                out.write(pkt)
            else:
                dropped += 1
    return dropped
