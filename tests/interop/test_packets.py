"""What the trace reader keeps out of Wireshark's way: datagrams whose long
header carries a version other than v1 or v2 (a greased first Initial, a
Version Negotiation) are counted, attributed to their sender and left out
of the copy tshark reads; everything else is kept byte for byte.

    python3 -m unittest tests/interop/test_packets.py
"""

import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from packets import Trace  # noqa: E402
from pcap import PcapWriter, records, udp_payload  # noqa: E402

SERVER = ("127.0.0.1", 4433)
CLIENT = ("127.0.0.1", 50000)


def long_header(version: bytes, body=b"\x08" + b"d" * 8 + b"\x08" + b"s" * 8):
    return bytes([0xC0]) + version + body


GREASED = long_header(bytes.fromhex("babababa"))
VN = long_header(b"\0\0\0\0")
V1 = long_header(b"\0\0\0\1")
SHORT = bytes([0x40]) + b"x" * 30


class KnownVersions(unittest.TestCase):
    def write(self, datagrams):
        d = tempfile.mkdtemp()
        self.addCleanup(lambda: [os.remove(os.path.join(d, f)) for f in os.listdir(d)]
                        or os.rmdir(d))
        path = os.path.join(d, "leg.pcap")
        w = PcapWriter(path)
        for i, (src, dst, payload) in enumerate(datagrams):
            w.write(1000.0 + i, src, dst, payload)
        w.close()
        return path

    def test_greased_initials_and_version_negotiation_are_counted_and_left_out(self):
        path = self.write([(CLIENT, SERVER, GREASED), (SERVER, CLIENT, VN),
                           (CLIENT, SERVER, V1), (SERVER, CLIENT, V1), (CLIENT, SERVER, SHORT)])
        t = Trace(path, None, SERVER)
        self.assertEqual(t.version_negotiation, 1)
        self.assertEqual(t.foreign_versions, {"0xbabababa"})
        self.assertNotEqual(t.pcap, path)
        self.assertEqual([udp_payload(p) for _, p in records(t.pcap)], [V1, V1, SHORT])
        # The original is untouched.
        self.assertEqual(len(list(records(path))), 5)

    def test_a_server_side_foreign_version_is_not_the_clients(self):
        # Corruption can turn a server's v1 packet into an unknown version.
        path = self.write([(CLIENT, SERVER, V1), (SERVER, CLIENT, long_header(b"\0\0\0\x81"))])
        t = Trace(path, None, SERVER)
        self.assertEqual(t.foreign_versions, set())
        self.assertEqual([udp_payload(p) for _, p in records(t.pcap)], [V1])

    def test_a_clean_trace_is_read_as_it_is(self):
        path = self.write([(CLIENT, SERVER, V1), (SERVER, CLIENT, SHORT)])
        t = Trace(path, None, SERVER)
        self.assertEqual(t.pcap, path)
        self.assertEqual((t.version_negotiation, t.foreign_versions), (0, set()))


if __name__ == "__main__":
    unittest.main()
