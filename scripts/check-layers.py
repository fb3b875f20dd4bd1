#!/usr/bin/env python3
"""The layers of src/ point one way, and no module imports itself back.

    utilities (log, unwind, crypto, id_hash)
    socket     batch_io, dgram, socket
    transport  handle, reentry, evloop, platform, hooks, server, client,
               driver, egress, table, cid, token, stateless, observe,
               transport, quic_lb, steer
    app        app::*
    C API      ffi::*

Checks, on the code outside tests (`#[cfg(test)]` items and the test-only
modules are left out):

1. No import cycle among modules. A module is a file; a file's private
   submodules (`mod x;`, not `pub mod x;`) are parts of it, so
   server/{mod,routing,service,shutdown}.rs are one module.
2. No module names a layer to its right: the socket layer names no
   transport, the transport names neither `app` nor `ffi`, `app` does not
   name `ffi`.

A reference is any path `crate::a::b` or `super::x` in the code (`use`
lines and paths in expressions alike). Exits 1, naming the cycle or the
reference, when either check fails.
"""

import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")

LAYER = {
    "log": 0, "unwind": 0, "crypto": 0, "id_hash": 0,
    "batch_io": 1, "dgram": 1, "socket": 1,
    "app": 3, "ffi": 4,
}
TRANSPORT = 2
TEST_ONLY = {"testing", "lifecycle_tests", "careless_tests", "model_tests"}


def module_of(path):
    rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib"):
        rel = rel[:-1]
    return rel


def strip_tests(src):
    """The source without `#[cfg(test)]` items and comments."""
    src = re.sub(r"//[^\n]*", "", src)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\((?:all\()?test[^\]]*\]", src):
        if m.start() < i:
            continue
        out.append(src[i:m.start()])
        # Skip the item: up to its `;` or its balanced `{ ... }`.
        j = m.end()
        while j < len(src) and src[j] not in ";{":
            j += 1
        if j < len(src) and src[j] == "{":
            depth = 0
            while j < len(src):
                depth += {"{": 1, "}": -1}.get(src[j], 0)
                j += 1
                if depth == 0:
                    break
        else:
            j += 1
        i = j
    out.append(src[i:])
    return "".join(out)


def main():
    files = {}
    for d, _, names in os.walk(ROOT):
        for n in names:
            if n.endswith(".rs"):
                p = os.path.join(d, n)
                files[tuple(module_of(p))] = p
    modules = set(files)
    # Private submodules belong to their parent (one module, several files).
    owner = {m: m for m in modules}
    texts = {m: strip_tests(open(p).read()) for m, p in files.items()}
    for m, src in texts.items():
        for sub in re.findall(r"(?m)^\s*mod (\w+);", src):
            child = m + (sub,)
            if child in modules:
                owner[child] = m
    for m in sorted(modules, key=len):
        owner[m] = owner[owner[m]]
    live = {m for m in modules if not (set(m) & TEST_ONLY)}

    def resolve(path):
        """The longest known module a path names."""
        while path and tuple(path) not in modules:
            path = path[:-1]
        return tuple(path) if path else None

    edges = {}
    for m in live:
        src = texts[m]
        # `super` in a/b.rs and in a/b/mod.rs alike is `a`.
        parent = m[:-1]
        refs = []
        for path in re.findall(r"\bcrate((?:::\w+)+)", src):
            refs.append(path.split("::")[1:])
        for path in re.findall(r"\bsuper((?:::\w+)+)", src):
            refs.append(list(parent) + path.split("::")[1:])
        # `use` trees: crate::a::{b, c::d} name a::b and a::c.
        for base, group in re.findall(r"\b(crate(?:::\w+)*)::\{([^}]*)\}", src):
            for item in group.split(","):
                item = item.strip().split("::")[0].split(" as ")[0].strip()
                if item and item != "self":
                    refs.append(base.split("::")[1:] + [item])
        for base, group in re.findall(r"\b(super(?:::\w+)*)::\{([^}]*)\}", src):
            for item in group.split(","):
                item = item.strip().split("::")[0].split(" as ")[0].strip()
                if item and item != "self":
                    refs.append(list(parent) + base.split("::")[1:] + [item])
        # A module's own children, by their bare name (`use ops::x`).
        for sub in re.findall(r"\b(\w+)::", src):
            if m + (sub,) in modules:
                refs.append(list(m) + [sub])
        targets = set()
        for r in refs:
            t = resolve(r)
            if t is not None and t in live:
                t = owner[t]
                if t != owner[m] and t != ():
                    targets.add(t)
        edges.setdefault(owner[m], set()).update(targets)

    failures = []

    def layer(m):
        return LAYER.get(m[0], TRANSPORT) if m else -1

    for a, bs in sorted(edges.items()):
        for b in sorted(bs):
            if layer(b) > layer(a):
                failures.append(f"{'::'.join(a)} (layer {layer(a)}) names {'::'.join(b)} (layer {layer(b)})")

    # Cycles: Tarjan's strongly connected components.
    index, low, stack, on, sccs = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    for comp in sccs:
        names = sorted("::".join(c) for c in comp)
        failures.append("import cycle among: " + ", ".join(names))

    if failures:
        print("check-layers: FAILED")
        for f in failures:
            print("  " + f)
        sys.exit(1)
    print(f"check-layers: ok ({len(edges)} modules, no cycle, every reference points down the layers)")


if __name__ == "__main__":
    main()
