"""Certificates as the interop runner makes them (its certs.sh): a root CA
and a chain of `length` RSA-2048 certificates, each signed by the one
before, the last being the leaf. The server gets `cert.pem` (leaf first,
then the intermediates; the root is not sent) and `priv.key`. The
amplificationlimit case uses a chain of 9 so that the server's first
flight is far above three times the client's Initial.
"""

import os
import subprocess
import tempfile

LEAF_NAMES = "subjectAltName=DNS:localhost,DNS:server,DNS:server4,DNS:server6,IP:127.0.0.1,IP:::1"
CA_EXTENSIONS = "basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\n"


def _openssl(*args, cwd):
    out = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {out.stderr.strip()}")


def make_chain(directory, length):
    """Writes cert.pem, priv.key and ca.pem into `directory` (once: an
    existing chain is reused)."""
    if os.path.exists(os.path.join(directory, "priv.key")):
        return directory
    os.makedirs(directory, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        with open(os.path.join(tmp, "ca.ext"), "w") as f:
            f.write(CA_EXTENSIONS)
        with open(os.path.join(tmp, "leaf.ext"), "w") as f:
            f.write(LEAF_NAMES + "\n")
        _openssl("req", "-x509", "-sha256", "-nodes", "-days", "365", "-newkey", "rsa:2048",
                 "-keyout", "key0.pem", "-out", "cert0.pem",
                 "-subj", "/O=interop runner Root Certificate Authority/",
                 "-addext", "basicConstraints=critical,CA:true", cwd=tmp)
        for i in range(1, length + 1):
            leaf = i == length
            subject = "interop runner leaf" if leaf else f"interop runner intermediate {i}"
            _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", f"key{i}.pem",
                     "-out", "req.csr", "-subj", f"/O={subject}/", cwd=tmp)
            _openssl("x509", "-req", "-sha256", "-days", "365", "-in", "req.csr",
                     "-out", f"cert{i}.pem", "-CA", f"cert{i - 1}.pem", "-CAkey", f"key{i - 1}.pem",
                     "-CAcreateserial", "-extfile", "leaf.ext" if leaf else "ca.ext", cwd=tmp)
        chain = b"".join(open(os.path.join(tmp, f"cert{i}.pem"), "rb").read()
                         for i in range(length, 0, -1))
        with open(os.path.join(tmp, "cert.pem"), "wb") as f:
            f.write(chain)
        os.replace(os.path.join(tmp, f"key{length}.pem"), os.path.join(directory, "priv.key.tmp"))
        os.replace(os.path.join(tmp, "cert0.pem"), os.path.join(directory, "ca.pem"))
        os.replace(os.path.join(tmp, "cert.pem"), os.path.join(directory, "cert.pem"))
        os.replace(os.path.join(directory, "priv.key.tmp"), os.path.join(directory, "priv.key"))
    return directory
