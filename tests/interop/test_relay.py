"""Unit tests of the network simulator (relay.py), one or more per
impairment, with plain UDP sockets on loopback and deadlines.

    python3 -m unittest discover -s tests/interop -p 'test_*.py'
"""

import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pcap import records, udp_payload, udp_ports  # noqa: E402
from relay import Blackhole, Link, Rebind, Relay, Scenario, Trigger  # noqa: E402

DEADLINE = 10.0


def udp(host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((host, 0))
    return s


def recv(sock, deadline=DEADLINE):
    """One datagram and its source, or None at the deadline."""
    sock.settimeout(deadline)
    try:
        data, src = sock.recvfrom(65535)
        return data, src[:2]
    except socket.timeout:
        return None


def recv_n(sock, n, deadline=DEADLINE):
    out = []
    end = time.monotonic() + deadline
    while len(out) < n and time.monotonic() < end:
        got = recv(sock, max(0.001, end - time.monotonic()))
        if got:
            out.append(got)
    return out


def wait_until(cond, deadline=DEADLINE):
    end = time.monotonic() + deadline
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.005)
    return True


def settled(relay, direction, sent):
    """Waits until the relay has read all `sent` datagrams of a direction."""
    return wait_until(lambda: getattr(relay.stats, direction).received >= sent)


class RelayCase(unittest.TestCase):
    host = "127.0.0.1"

    def setUp(self):
        self.server = udp(self.host)
        self.client = udp(self.host)

    def tearDown(self):
        self.server.close()
        self.client.close()

    def relay(self, scenario=None, **kw):
        r = Relay(self.server.getsockname()[:2], scenario, **kw).start()
        self.addCleanup(r.stop)
        return r

    def exchange(self, relay, payload=b"ping"):
        """Client -> server -> client through the relay; returns the source
        the server saw."""
        self.client.sendto(payload, relay.address)
        got = recv(self.server)
        self.assertIsNotNone(got, "server got nothing")
        data, src = got
        self.assertEqual(data, payload)
        self.server.sendto(b"re:" + payload, src)
        back = recv(self.client)
        self.assertIsNotNone(back, "client got no answer")
        self.assertEqual(back, (b"re:" + payload, relay.address))
        return src


class Forwarding(RelayCase):
    def test_both_ways_from_a_mapping_of_the_relays_own(self):
        r = self.relay()
        seen = self.exchange(r)
        self.assertNotEqual(seen, self.client.getsockname()[:2])
        self.assertEqual(seen, r.mapping_address(self.client.getsockname()[:2]))

    def test_each_client_address_gets_its_own_mapping(self):
        r = self.relay()
        other = udp()
        self.addCleanup(other.close)
        a = self.exchange(r)
        other.sendto(b"two", r.address)
        data, b = recv(self.server)
        self.assertEqual(data, b"two")
        self.assertNotEqual(a, b)
        self.server.sendto(b"to-two", b)
        self.assertEqual(recv(other), (b"to-two", r.address))
        self.assertEqual(r.stats.mappings, 2)


class Delay(RelayCase):
    def test_each_direction_waits_its_delay_and_keeps_order(self):
        d = 0.15
        r = self.relay(Scenario(to_server=Link(delay=d), to_client=Link(delay=d)))
        sent = {}
        for i in range(20):
            sent[i] = time.monotonic()
            self.client.sendto(struct.pack("!I", i), r.address)
        got = recv_n(self.server, 20)
        arrived = time.monotonic()
        self.assertEqual([struct.unpack("!I", p)[0] for p, _ in got], list(range(20)))
        # Never early: the last one cannot arrive before its delay ran out.
        self.assertGreaterEqual(arrived - sent[19], d - 0.002)
        src = got[0][1]
        t = time.monotonic()
        self.server.sendto(b"back", src)
        self.assertEqual(recv(self.client), (b"back", r.address))
        self.assertGreaterEqual(time.monotonic() - t, d - 0.002)

    def test_round_trip_is_the_sum_of_both_delays(self):
        r = self.relay(Scenario(to_server=Link(delay=0.1), to_client=Link(delay=0.2)))
        t = time.monotonic()
        self.exchange(r)
        self.assertGreaterEqual(time.monotonic() - t, 0.3 - 0.004)


def send_paced(test, relay, n, payload=lambda i: struct.pack("!I", i) * 8, batch=50):
    """Sends n datagrams client -> server in batches, draining the server
    after each so that no kernel buffer drops anything; returns what the
    server got."""
    got = []
    received0 = relay.stats.to_server.received
    forwarded0 = relay.stats.to_server.forwarded
    for start in range(0, n, batch):
        count = min(batch, n - start)
        for i in range(start, start + count):
            test.client.sendto(payload(i), relay.address)
        test.assertTrue(settled(relay, "to_server", received0 + start + count))
        forwarded = relay.stats.to_server.forwarded - forwarded0
        while len(got) < forwarded:
            one = recv(test.server, 2.0)
            test.assertIsNotNone(one, "a forwarded datagram never arrived")
            got.append(one[0])
    return got


class Loss(RelayCase):
    def test_loss_rate_within_bounds_and_only_in_its_direction(self):
        n, p = 2000, 0.3
        r = self.relay(Scenario(to_server=Link(loss=p), seed=7))
        got = send_paced(self, r, n)
        lost = n - len(got)
        self.assertEqual(lost, r.stats.to_server.lost)
        sigma = (n * p * (1 - p)) ** 0.5
        self.assertLess(abs(lost - n * p), 5 * sigma, f"lost {lost} of {n}")
        # Survivors are intact and in order.
        idx = [struct.unpack("!I", g[:4])[0] for g in got]
        self.assertEqual(idx, sorted(idx))
        # The other direction is untouched.
        src = r.mapping_address(self.client.getsockname()[:2])
        for i in range(200):
            self.server.sendto(b"x%d" % i, src)
        self.assertEqual(len(recv_n(self.client, 200)), 200)
        self.assertEqual(r.stats.to_client.lost, 0)

    def test_same_seed_same_losses(self):
        runs = []
        for _ in range(2):
            r = Relay(self.server.getsockname()[:2],
                      Scenario(to_server=Link(loss=0.5), seed=3)).start()
            got = send_paced(self, r, 300)
            r.stop()
            runs.append([struct.unpack("!I", g[:4])[0] for g in got])
        self.assertEqual(runs[0], runs[1])


class Corruption(RelayCase):
    def test_flips_bits_in_about_the_right_fraction_and_loses_nothing(self):
        n, p = 2000, 0.2
        r = self.relay(Scenario(to_server=Link(corrupt=p), seed=11))
        payloads = [os.urandom(100) for _ in range(n)]
        got = send_paced(self, r, n, payload=lambda i: payloads[i])
        self.assertEqual(len(got), n)
        changed = 0
        for sent, recvd in zip(payloads, got):
            diff = [i for i in range(100) if sent[i] != recvd[i]]
            if diff:
                changed += 1
                self.assertEqual(len(diff), 1, "one byte is changed per corrupted datagram")
        self.assertEqual(changed, r.stats.to_server.corrupted)
        sigma = (n * p * (1 - p)) ** 0.5
        self.assertLess(abs(changed - n * p), 5 * sigma, f"{changed} of {n} corrupted")


class DropList(RelayCase):
    def test_drops_exactly_the_listed_datagrams(self):
        r = self.relay(Scenario(to_server=Link(drops=frozenset({2, 3, 4, 5, 6, 7}))))
        got = send_paced(self, r, 10)
        self.assertEqual([struct.unpack("!I", g[:4])[0] for g in got], [0, 7, 8, 9])
        self.assertEqual(r.stats.to_server.listed_drops, 6)


class BlackholeWindow(RelayCase):
    def test_drops_both_directions_in_its_window_only(self):
        r = self.relay(Scenario(blackhole=Blackhole(Trigger(10, "packets"), 1.5)))
        before = send_paced(self, r, 10, batch=1)
        self.assertEqual(len(before), 10)
        # The eleventh datagram opens the window.
        for i in range(5):
            self.client.sendto(b"in-window", r.address)
        self.assertTrue(settled(r, "to_server", 15))
        self.assertTrue(r.blackhole_active())
        src = r.mapping_address(self.client.getsockname()[:2])
        for i in range(3):
            self.server.sendto(b"in-window", src)
        self.assertTrue(settled(r, "to_client", 3))
        self.assertEqual(r.stats.to_server.blackholed, 5)
        self.assertEqual(r.stats.to_client.blackholed, 3)
        self.assertTrue(wait_until(lambda: not r.blackhole_active(), 5.0))
        self.assertEqual(self.exchange(r, b"after"), src)
        self.assertEqual(r.stats.blackholes, 1)
        # Nothing from inside the window ever arrived.
        self.assertEqual(recv(self.server, 0.05), None)
        self.assertEqual(recv(self.client, 0.05), None)

    def test_byte_trigger_and_repeat(self):
        r = self.relay(Scenario(blackhole=Blackhole(Trigger(1000, "bytes", every=2000), 0.05)))
        send_paced(self, r, 3, payload=lambda i: b"x" * 500, batch=1)  # 1500 bytes
        self.assertEqual(r.stats.blackholes, 1)  # fired on the third
        self.assertTrue(wait_until(lambda: not r.blackhole_active()))
        send_paced(self, r, 4, payload=lambda i: b"x" * 500, batch=1)  # 3500 bytes: again
        self.assertEqual(r.stats.blackholes, 2)


class Rebinding(RelayCase):
    def test_port_rebinding_changes_the_port_and_drops_the_old_mapping(self):
        self.before_rebind = self.source_before(Scenario(rebind=Rebind("port", Trigger(3, "packets"))))
        self.assertEqual(self.before_rebind[0], "127.0.0.1")
        self.assertNotEqual(self.after_rebind[1], self.before_rebind[1])
        self.assertEqual(self.after_rebind[0], "127.0.0.1")

    def test_address_rebinding_moves_to_127_0_0_2_and_drops_the_old_mapping(self):
        self.before_rebind = self.source_before(Scenario(rebind=Rebind("addr", Trigger(3, "packets"))))
        self.assertEqual(self.after_rebind[0], "127.0.0.2")

    def source_before(self, scenario):
        """Runs a rebind after 3 datagrams: records the source the server
        saw before (returned) and after (self.after_rebind), and checks the
        old mapping is dropped while the new one delivers."""
        r = self.relay(scenario)
        sources = []
        for i in range(3):
            self.client.sendto(b"before", r.address)
            data, src = recv(self.server)
            sources.append(src)
        self.assertEqual(len(set(sources)), 1)
        self.assertEqual(r.stats.rebinds, 0)
        self.client.sendto(b"after", r.address)  # the fourth: rebinds
        data, after = recv(self.server)
        self.assertEqual(data, b"after")
        self.assertEqual(r.stats.rebinds, 1)
        self.assertNotEqual(after, sources[0])
        self.server.sendto(b"to-old", sources[0])
        self.assertTrue(wait_until(lambda: r.stats.old_mapping_drops == 1))
        self.server.sendto(b"to-new", after)
        self.assertEqual(recv(self.client), (b"to-new", r.address))
        self.assertIsNone(recv(self.client, 0.05), "the old mapping must not deliver")
        self.after_rebind = after
        return sources[0]

    def test_address_rebinding_refuses_ipv6(self):
        with self.assertRaises(ValueError):
            Relay(("::1", 9), Scenario(rebind=Rebind("addr", Trigger(1, "s"))))


class IPv6(RelayCase):
    host = "::1"

    def test_relays_over_ipv6(self):
        r = self.relay(Scenario(to_server=Link(delay=0.01)))
        self.assertEqual(r.address[0], "::1")
        seen = self.exchange(r)
        self.assertEqual(seen[0], "::1")

    def test_port_rebinding_over_ipv6(self):
        r = self.relay(Scenario(rebind=Rebind("port", Trigger(1, "packets"))))
        a = self.exchange(r, b"one")
        b = self.exchange(r, b"two")
        self.assertNotEqual(a, b)


class ECN(RelayCase):
    def test_ecn_codepoints_cross_the_relay_both_ways(self):
        r = self.relay()
        self.server.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
        self.client.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
        self.client.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 2)  # ECT(0)
        self.client.sendto(b"ect0", r.address)
        self.server.settimeout(DEADLINE)
        data, anc, _, src = self.server.recvmsg(100, 64)
        self.assertEqual(data, b"ect0")
        self.assertEqual([c[2][0] & 3 for c in anc if c[1] == socket.IP_TOS], [2])
        self.server.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 1)  # ECT(1)
        self.server.sendto(b"ect1", src)
        self.client.settimeout(DEADLINE)
        data, anc, _, _ = self.client.recvmsg(100, 64)
        self.assertEqual(data, b"ect1")
        self.assertEqual([c[2][0] & 3 for c in anc if c[1] == socket.IP_TOS], [1])


def read_pcap(path):
    """(src port, dst port, payload) of each record of a relay trace."""
    out = []
    for _, pkt in records(path):
        out.append(udp_ports(pkt) + (udp_payload(pkt),))
    return out


class Traces(RelayCase):
    def test_each_leg_records_what_crossed_it(self):
        with tempfile.TemporaryDirectory() as d:
            r = Relay(self.server.getsockname()[:2],
                      Scenario(to_server=Link(drops=frozenset({2}))), trace_dir=d).start()
            for p in (b"a", b"b", b"c"):
                self.client.sendto(p, r.address)
            got = recv_n(self.server, 2)
            self.server.sendto(b"z", got[0][1])
            self.assertEqual(recv(self.client), (b"z", r.address))
            r.stop()
            cport = self.client.getsockname()[1]
            sport = self.server.getsockname()[1]
            client_leg = read_pcap(os.path.join(d, "client_leg.pcap"))
            server_leg = read_pcap(os.path.join(d, "server_leg.pcap"))
            # The client leg has all three the client sent (the drop is
            # past it) and the answer; the server leg what got through.
            self.assertEqual([(s, p) for s, _, p in client_leg],
                             [(cport, b"a"), (cport, b"b"), (cport, b"c"), (r.address[1], b"z")])
            self.assertEqual([(dp, p) for _, dp, p in server_leg[:2]], [(sport, b"a"), (sport, b"c")])
            self.assertEqual(server_leg[2][0], sport)
            self.assertEqual(server_leg[2][2], b"z")

    def test_tshark_reads_the_trace(self):
        with tempfile.TemporaryDirectory() as d:
            r = Relay(self.server.getsockname()[:2], trace_dir=d).start()
            self.exchange(r)
            r.stop()
            out = subprocess.run(["tshark", "-r", os.path.join(d, "server_leg.pcap"),
                                  "-T", "fields", "-e", "ip.src", "-e", "udp.dstport"],
                                 capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stderr)
            lines = out.stdout.split("\n")
            self.assertEqual(lines[0], f"127.0.0.1\t{self.server.getsockname()[1]}")


class Triggers(unittest.TestCase):
    def test_parse(self):
        self.assertEqual(Trigger.parse("5s"), Trigger(5.0, "s"))
        self.assertEqual(Trigger.parse("200p"), Trigger(200.0, "packets"))
        self.assertEqual(Trigger.parse("3MB", "2MB"), Trigger(3e6, "bytes", 2e6))
        with self.assertRaises(ValueError):
            Trigger.parse("3 parsecs")
        with self.assertRaises(ValueError):
            Trigger.parse("1s", "2MB")


class CommandLine(RelayCase):
    def test_runs_until_sigterm_and_prints_its_statistics(self):
        here = os.path.dirname(os.path.abspath(__file__))
        p = subprocess.Popen([sys.executable, os.path.join(here, "relay.py"),
                              "--server", "127.0.0.1:%d" % self.server.getsockname()[1],
                              "--to-server-drops", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = p.stderr.readline()
            self.assertIn("relay listening on 127.0.0.1:", line)
            addr = ("127.0.0.1", int(line.rsplit(":", 1)[1]))
            self.client.sendto(b"dropped", addr)
            self.client.sendto(b"kept", addr)
            self.assertEqual(recv(self.server)[0], b"kept")
            p.terminate()
            out, _ = p.communicate(timeout=DEADLINE)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0)
        import json
        stats = json.loads(out.strip().splitlines()[-1])
        self.assertEqual(stats["to_server"]["listed_drops"], 1)
        self.assertEqual(stats["to_server"]["forwarded"], 1)


if __name__ == "__main__":
    unittest.main()
