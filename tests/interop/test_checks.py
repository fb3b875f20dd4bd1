"""The checks can fail: each test takes a real run (aioquic against
aioquic, through the relay), sees it pass, then alters one thing the
check depends on and sees the check fail with the right reason. A case
that several tests only read (handshake) runs once and is loaded afresh
for each; the tests that alter a run's files (http3, keyupdate) have a
case of their own.

    python3 -m unittest tests/interop/test_checks.py   (needs make peers)
"""

import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import checks  # noqa: E402
from cases import BY_NAME  # noqa: E402
from report import PASS  # noqa: E402
from run import Runner, load_run  # noqa: E402


class Checks(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.logs = tempfile.mkdtemp(prefix="interop-checks-")
        cls.runner = Runner(cls.logs, keep=True, verbose=False)
        cls.passed = set()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.logs, ignore_errors=True)

    def run_case(self, name, server="aioquic", client="aioquic"):
        """The run's folder and a fresh load of it (altering the loaded
        run leaves the folder alone; altering the folder is for a case no
        other test uses)."""
        if (name, server, client) not in self.passed:
            result = self.runner.run(BY_NAME[name], server, client)
            self.assertEqual(result.status, PASS, result.reason)
            self.passed.add((name, server, client))
        d = os.path.join(self.logs, name, f"{server}_{client}")
        return d, load_run(BY_NAME[name], d)

    def fails(self, check, run, reason):
        with self.assertRaises(checks.Failed) as e:
            check(run)
        self.assertIn(reason, str(e.exception))

    def test_files_are_compared_byte_for_byte(self):
        d, run = self.run_case("http3")
        name = run.files[2]
        path = os.path.join(d, "downloads", name)
        with open(path, "r+b") as f:
            f.seek(1234)
            b = f.read(1)
            f.seek(1234)
            f.write(bytes([b[0] ^ 1]))
        self.fails(checks.check, run, f"{name[:20]}: contents differ at byte 1234")
        with open(path, "ab") as f:
            f.write(b"x")
        self.fails(checks.check, run, "bytes downloaded")
        os.remove(path)
        self.fails(checks.check, run, "1 of 3 files missing")
        shutil.copy(os.path.join(d, "www", name), path)
        open(os.path.join(d, "downloads", "stray"), "w").close()
        self.fails(checks.check, run, "unexpected downloaded files: stray")

    def test_a_retry_fails_handshake_and_its_absence_fails_retry(self):
        _, retried = self.run_case("retry")
        self.fails(checks.check_handshake, retried, "a Retry was sent")
        _, plain = self.run_case("handshake")
        self.fails(checks.check_retry, plain, "no Retry packet")

    def test_resumption_and_zerortt_tell_each_other_apart(self):
        _, zero = self.run_case("zerortt")
        self.fails(checks.check_resumption, zero, "the client sent 0-RTT")
        _, resumed = self.run_case("resumption")
        self.fails(checks.check_zerortt, resumed, "no 0-RTT data")
        # One connection is not two.
        _, one = self.run_case("handshake")
        self.fails(checks.check_zerortt, one, "1 handshake(s), want 2")

    def test_the_alpn_must_be_the_pairs(self):
        _, run = self.run_case("handshake")
        run.alpn = "h3"
        self.fails(checks.check, run, "the server selected ALPN hq-interop, want h3")

    def test_without_key_logs_what_needs_them_fails(self):
        d, run = self.run_case("keyupdate")
        open(os.path.join(d, "sim", "keys.log"), "w").close()
        self.fails(checks.check, load_run(BY_NAME["keyupdate"], d), "neither side wrote a key log")

    def test_an_impairment_that_never_happened_fails_its_case(self):
        _, run = self.run_case("blackhole")
        run.relay = dict(run.relay, blackholes=0)
        self.fails(checks.check_blackhole, run, "the blackhole never opened")
        _, plain = self.run_case("handshake")
        self.fails(checks.check_rebind_port, plain, "the relay never rebound")

    def test_chacha20_wants_only_chacha20_offered(self):
        _, run = self.run_case("handshake")
        self.fails(checks.check_chacha20, run, "want only 0x1303")


if __name__ == "__main__":
    unittest.main()
