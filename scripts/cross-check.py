#!/usr/bin/env python3
"""`make cross-check`: quiche-ev type-checked for platforms it does not run
on here (README "Platforms").

For each target below, `cargo check --release --target T -p quiche-ev
--lib --tests --keep-going`: the library and every test target, with the
target's own `libc` crate definitions (so a Linux-only function, constant
or field is an error), its `cfg(target_os)` and quiche's, boring's and
boring-sys's Rust code. `rustup target add` installs the targets' standard
libraries when missing.

What cannot run here and how it is stood in for:

- boring-sys's build script builds BoringSSL with CMake for the target and
  generates bindings with bindgen. `BORING_BSSL_PATH_<target>` (an empty
  folder: a "prebuilt" BoringSSL) skips the CMake build, since a check
  links nothing; `BORING_BSSL_INCLUDE_PATH_<target>` points bindgen at the
  BoringSSL headers vendored in the very boring-sys package of
  Cargo.lock; `BINDGEN_EXTRA_CLANG_ARGS_<target>` replaces the target's
  missing C library headers with scripts/cross-libc/ (see its README).
  The bindings are generated for the target triple from the real
  BoringSSL headers; only their few C-library types come from the stubs.
- libev-sys's build script compiles a C shim against ev.h with the
  target's C compiler: overridden (`links = "ev"` in cargo's config), as
  nothing is linked.

Known errors: lines in files this check's owner may not change (another
engineer's), each with what the portable path should be. Any other error
or warning fails; so does a known error that no longer occurs (remove it
here). While a known error remains the library does not compile for that
target, so the integration tests (tests/*.rs, which need it) are not
checked there: the library and its unit tests are.

Also checked, as the build would do it for each target: soname/build.rs's
link argument (-soname for ELF, -install_name for Mach-O: its selection,
not the linker's acceptance), and the Makefile's NATIVE_LIBS rows against
`rustc --print native-static-libs`.

Exit status 0 when everything matches, 1 otherwise, 2 on a setup problem.
"""

import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUBS = os.path.join(ROOT, "scripts", "cross-libc")

# target -> the `uname -s` whose Makefile row it checks (None: no row)
TARGETS = {
    "x86_64-apple-darwin": "Darwin",
    "x86_64-unknown-freebsd": "FreeBSD",
    # Linux's batched path with musl's types (msg_controllen, cmsg_len).
    "x86_64-unknown-linux-musl": None,
}
NON_LINUX = ("x86_64-apple-darwin", "x86_64-unknown-freebsd")

# (targets, file, rustc's message, what the portable path should be)
KNOWN = []


class Setup(Exception):
    pass


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def metadata():
    out = run(["cargo", "metadata", "--format-version", "1"], cwd=ROOT)
    if out.returncode != 0:
        raise Setup(f"cargo metadata failed:\n{out.stderr}")
    return json.loads(out.stdout)


def ensure_targets():
    out = run(["rustup", "target", "list", "--installed"], cwd=ROOT)
    if out.returncode != 0:
        raise Setup("rustup is needed to install the targets' standard libraries")
    missing = [t for t in TARGETS if t not in out.stdout.split()]
    if missing:
        print(f"cross-check: rustup target add {' '.join(missing)}", flush=True)
        if subprocess.run(["rustup", "target", "add", *missing], cwd=ROOT).returncode != 0:
            raise Setup(f"rustup target add {' '.join(missing)} failed")


def check(target, boring_include, empty):
    """cargo check for `target`: (success, errors, warnings, build-script outputs)."""
    t = target.replace("-", "_")
    env = dict(os.environ)
    env.update({
        f"BORING_BSSL_PATH_{t}": empty,
        f"BORING_BSSL_INCLUDE_PATH_{t}": boring_include,
        f"BINDGEN_EXTRA_CLANG_ARGS_{t}": f"-nostdlibinc -isystem {STUBS}",
        "QUICHE_EV_SKIP_HEADER": "1",
    })
    cmd = ["cargo", "check", "--release", "--target", target, "-p", "quiche-ev", "--lib", "--tests",
           "--keep-going", "--message-format=json",
           "--config", f'target.{target}.ev.rustc-link-lib=["ev"]']
    p = run(cmd, cwd=ROOT, env=env)
    errors, warnings, scripts, success = [], [], {}, None
    for line in p.stdout.splitlines():
        try:
            m = json.loads(line)
        except json.JSONDecodeError:
            continue
        reason = m.get("reason")
        if reason == "build-finished":
            success = m["success"]
        elif reason == "build-script-executed":
            scripts[m["package_id"]] = m["out_dir"]
        elif reason == "compiler-message":
            msg = m["message"]
            primary = next((s for s in msg["spans"] if s["is_primary"]), None)
            if primary is None:
                continue  # "aborting due to ...", "N warnings emitted"
            where = os.path.relpath(os.path.join(os.path.dirname(m["manifest_path"]), primary["file_name"]), ROOT)
            item = (where, primary["line_start"], msg["message"], msg["rendered"])
            (errors if msg["level"] == "error" else warnings).append(item)
    if success is None:
        raise Setup(f"{' '.join(cmd)} did not finish:\n{p.stderr[-3000:]}")
    if not success and not errors:
        raise Setup(f"cargo check --target {target} failed before reaching our code:\n{p.stderr[-3000:]}")
    return success, errors, warnings, scripts


def abi():
    with open(os.path.join(ROOT, "Cargo.toml")) as f:
        text = f.read()
    version = re.search(r'\[workspace\.package\][^\[]*?version\s*=\s*"([^"]+)"', text, re.S).group(1)
    major, minor = version.split(".")[:2]
    return f"0.{minor}" if major == "0" else major


def soname_problems(target, scripts):
    """soname/build.rs's link argument for `target`, as it ran in the check."""
    out_dir = next((d for pid, d in scripts.items() if "/soname#" in pid or "quiche-ev-soname" in pid), None)
    if out_dir is None:
        return [f"{target}: soname/build.rs did not run"]
    with open(os.path.join(os.path.dirname(out_dir), "output")) as f:
        output = f.read()
    a = abi()
    want = (f"-Wl,-install_name,@rpath/libquiche_ev.{a}.dylib" if "apple" in target
            else f"-Wl,-soname,libquiche_ev.so.{a}")
    if want not in output:
        return [f"{target}: soname/build.rs printed\n{output}\nwithout {want}"]
    return []


def native_libs_problems():
    """The Makefile's NATIVE_LIBS rows against rustc's list for each system."""
    problems = []
    rows = {"x86_64-unknown-linux-gnu": ("Linux", "stdc++")}
    rows.update({t: (s, "c++") for t, s in TARGETS.items() if s})  # boring-sys: libc++ there
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "empty.rs")
        open(src, "w").close()
        for target, (system, cpp) in rows.items():
            p = run(["rustc", "--crate-type", "staticlib", "--target", target, "--print", "native-static-libs",
                     "-o", os.path.join(tmp, f"{target}.a"), src])
            std = re.search(r"native-static-libs: (.*)", p.stderr)
            if p.returncode != 0 or not std:
                problems.append(f"rustc --target {target} --print native-static-libs failed:\n{p.stderr}")
                continue
            want = f"-lev -l{cpp} {std.group(1).strip()}"
            got = run(["make", "--no-print-directory", "-s", "print-native-libs", f"UNAME_S={system}"],
                      cwd=ROOT).stdout.strip()
            if got != want:
                problems.append(f"Makefile NATIVE_LIBS for {system} is\n  {got}\nrustc says\n  {want}")
    return problems


def main():
    try:
        ensure_targets()
        meta = metadata()
        boring = next(p for p in meta["packages"] if p["name"] == "boring-sys")
        boring_include = os.path.join(os.path.dirname(boring["manifest_path"]), "deps", "boringssl", "include")
        if not os.path.exists(os.path.join(boring_include, "openssl", "x509v3.h")):
            raise Setup(f"{boring_include} has no BoringSSL headers")
        empty = os.path.join(ROOT, "target", "cross-check", "no-boringssl")
        os.makedirs(empty, exist_ok=True)
        problems = native_libs_problems()
        for target in TARGETS:
            success, errors, warnings, scripts = check(target, boring_include, empty)
            known = [k for k in KNOWN if target in k[0]]
            seen = set()
            for where, line, message, rendered in errors:
                k = next((k for k in known if k[1] == where and k[2] == message), None)
                if k is None:
                    problems.append(f"{target}: {rendered}")
                else:
                    seen.add((k[1], k[2]))
            for where, line, message, rendered in warnings:
                problems.append(f"{target}: warning: {rendered}")
            for k in known:
                if (k[1], k[2]) not in seen:
                    problems.append(f"{target}: the known error `{k[2]}` in {k[1]} is gone: "
                                    "remove it from KNOWN in scripts/cross-check.py")
            problems += soname_problems(target, scripts)
            if seen:
                print(f"cross-check: {target}: library and unit tests type-check but for {len(seen)} known "
                      f"error(s) in {', '.join(sorted({w for w, _ in seen}))} (not ours to change): "
                      "integration tests unchecked there", flush=True)
            else:
                status = "ok" if success else "FAILED"
                print(f"cross-check: {target}: library, unit and integration tests type-check: {status}", flush=True)
    except Setup as e:
        print(f"cross-check: {e}", file=sys.stderr)
        return 2
    if problems:
        # The library and its unit-test build report the same error twice.
        problems = list(dict.fromkeys(problems))
        print("cross-check: FAILED\n" + "\n".join(problems), file=sys.stderr)
        return 1
    print("cross-check: all targets as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
