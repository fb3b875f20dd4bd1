# quiche-ev: `make` builds libquiche_ev.a, the C examples and a test
# certificate; `make demo` runs a server and a client on loopback;
# `make test` runs every test. See README.md.

CARGO ?= cargo
CC ?= cc

LIB := target/release/libquiche_ev.a
# The plain quiche static library (ffi feature on), for upstream's samples.
QUICHE_LIB := target/release/libquiche.a

# quiche.h and upstream's samples live in the quiche crate's own package.
QUICHE_DIR = $(shell $(CARGO) metadata --format-version 1 2>/dev/null | \
  python3 -c 'import json,sys,os; print([os.path.dirname(p["manifest_path"]) for p in json.load(sys.stdin)["packages"] if p["name"]=="quiche"][0])')

# The system the build runs on (Linux, Darwin, FreeBSD): see README
# "Platforms".
UNAME_S := $(shell uname -s)

# What `cargo rustc -- --print native-static-libs` reports for the
# staticlib: libev, BoringSSL's C++ runtime (boring-sys's choice), then
# Rust's standard library's system libraries for the platform (`rustc
# --print native-static-libs` of an empty staticlib). `make cross-check`
# checks the Darwin and FreeBSD rows against rustc for those targets.
ifeq ($(UNAME_S),Darwin)
NATIVE_LIBS := -lev -lc++ -lSystem -lc -lm
else ifeq ($(UNAME_S),FreeBSD)
NATIVE_LIBS := -lev -lc++ -lexecinfo -lpthread -lgcc_s -lc -lm -lrt -lpthread -lrt -lutil -lexecinfo -lkvm -lmemstat -lkvm -lutil -lprocstat -lrt -ldevstat
else
NATIVE_LIBS := -lev -lstdc++ -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
endif

CFLAGS ?= -O2 -g
WARNINGS := -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -pedantic
INCS = -Iinclude -I$(QUICHE_DIR)/include
# libev outside the compiler's search paths (Homebrew, FreeBSD's
# /usr/local): LIBEV_DIR=/prefix, as for libev-sys.
ifdef LIBEV_DIR
INCS += -I$(LIBEV_DIR)/include
NATIVE_LIBS := -L$(LIBEV_DIR)/lib $(NATIVE_LIBS)
endif

EXAMPLES := c-examples/server c-examples/client c-examples/http3-server c-examples/http3-client c-examples/app-server c-examples/fetch c-examples/udp-proxy
UPSTREAM := server client http3-server http3-client

.PHONY: all lib examples cert upstream peers demo test deps clean layers FORCE

all: examples cert

lib: $(LIB)

# Cargo decides whether anything changed; the archive's timestamp moves
# only when it did, so the examples relink only then.
# quiche is named too: its own staticlib (libquiche.a, for upstream's
# samples) is only produced when it is a package being built. Built
# together with quiche-ev, it has the same features (ffi on) and is the
# same compiled crate.
$(LIB): FORCE
	$(CARGO) build --release -p quiche-ev -p quiche

$(QUICHE_LIB): $(LIB)

examples: $(EXAMPLES)

c-examples/%: c-examples/%.c c-examples/common.c c-examples/common.h include/quiche_ev.h $(LIB)
	$(CC) $(CFLAGS) $(WARNINGS) $(INCS) -o $@ $< c-examples/common.c $(LIB) $(NATIVE_LIBS)

# A self-signed pair where the servers look for it (./cert.crt, ./cert.key).
cert: c-examples/cert.crt

c-examples/cert.crt:
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	  -keyout c-examples/cert.key -out c-examples/cert.crt -days 3650 \
	  -subj /CN=quic.tech -addext subjectAltName=DNS:quic.tech,DNS:localhost,IP:127.0.0.1 2>/dev/null

# Upstream's four samples, compiled from the quiche package (never copied
# here): once against plain libquiche.a, once against libquiche_ev.a (which
# must be a superset of quiche's C API). -w: they are upstream's code.
upstream: $(addprefix target/upstream/quiche/,$(UPSTREAM)) $(addprefix target/upstream/quiche-ev/,$(UPSTREAM))

target/upstream/quiche/%: $(QUICHE_LIB) | target/upstream/quiche
	$(CC) -g -w -I$(QUICHE_DIR)/include -o $@ -x c $(QUICHE_DIR)/examples/$*.c -x none $(QUICHE_LIB) $(NATIVE_LIBS)

target/upstream/quiche-ev/%: $(LIB) | target/upstream/quiche-ev
	$(CC) -g -w -I$(QUICHE_DIR)/include -o $@ -x c $(QUICHE_DIR)/examples/$*.c -x none $(LIB) $(NATIVE_LIBS)

target/upstream/quiche target/upstream/quiche-ev:
	mkdir -p $@

# System packages, installed when missing and run as root (Debian).
PACKAGES := g++ cmake clang libclang-dev libev-dev uthash-dev openssl pkg-config python3-venv ngtcp2-server ngtcp2-client valgrind tshark strace
deps:
	@missing=$$(for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "missing packages: $$missing (run: sudo apt-get install $$missing)"; exit 1; \
	  fi; \
	fi

# A server and a client on loopback: the client prints "byez".
demo: deps all
	@cd c-examples && QUICHE_EV_QUIET=1 ./server 127.0.0.1 0 2> ../target/demo-server.log & \
	  pid=$$!; \
	  for i in $$(seq 100); do grep -q 'listening on' target/demo-server.log 2>/dev/null && break; sleep 0.05; done; \
	  port=$$(sed -n 's/.*listening on .*:\([0-9]*\)$$/\1/p' target/demo-server.log); \
	  echo "server listening on 127.0.0.1:$$port; running the client:"; \
	  QUICHE_EV_QUIET=1 c-examples/client 127.0.0.1 $$port; rc=$$?; \
	  kill -TERM $$pid; wait $$pid; \
	  echo "client exit status $$rc; server log in target/demo-server.log"; exit $$rc

# Python test peers (aioquic from PyPI) in a private virtualenv.
VENV := target/venv
peers: $(VENV)/.installed
$(VENV)/.installed:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q aioquic
	touch $@

# Sanitizer runs first (mk/sanitizers.mk), so cargo's summary closes the
# output. The portable build and the other platforms (mk/portable.mk):
# cross-check here, tests/portable.rs in cargo's run (`make
# portable-check` also runs the unit tests with the feature; the main
# unit tests already run both random-byte sources and both read paths).
# Three groups share the two cores, each printed whole when it ends:
# Miri (the longest), the memory checks (ASan, then valgrind), and the
# foreign targets' type check, which takes whichever core frees first
# (Miri alone runs about as long as the other two one after the other).
test: deps all upstream peers portable
	python3 scripts/check-layers.py
	$(MAKE) --no-print-directory -j2 --output-sync=recurse miri test-memory cross-check
	$(CARGO) test --release --workspace

.PHONY: test-memory
test-memory:
	$(MAKE) --no-print-directory -j1 asan valgrind

# No import cycle in src/, and every reference points down the layers
# (socket -> transport -> application -> C API).
layers:
	python3 scripts/check-layers.py

# `make -s print-VAR` prints a variable as make sees it on this system
# (tests/common/mod.rs builds the C test programs with WARNINGS and
# NATIVE_LIBS so).
print-%:
	@echo '$($*)'

clean:
	$(CARGO) clean
	rm -f $(EXAMPLES) c-examples/cert.crt c-examples/cert.key

# Further targets, one concern per file: sanitizers, the comparison
# harness, benchmarks.
include $(wildcard mk/*.mk)
