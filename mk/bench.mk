# `make bench`: the benchmark (never part of `make test`). bench/bench.py
# prints a table and writes target/bench.md (raw runs: target/bench.json);
# every row is a median of several runs and a ratio against a baseline
# measured in the same run. bench/README.md explains how to read it.
#
#   make bench                  full run (about 9 minutes on 2 cores)
#   make bench BENCH_QUICK=1    short run (about 2 minutes)
#
# Knobs (environment): BENCH_RUNS, BENCH_HANDSHAKES, BENCH_CONCURRENCY,
# BENCH_IDLE, BENCH_MEM_IDLE, BENCH_BULK_MIB, BENCH_IO_MODES, BENCH_SECTIONS,
# BENCH_SHIPPED, BENCH_PING_INTERVAL, BENCH_DEADLINE, BENCH_UNKNOWN_PPS,
# BENCH_UNKNOWN_SECS, BENCH_UNKNOWN_BURST, BENCH_UNKNOWN_BURSTS,
# BENCH_UNKNOWN_INPROC, BENCH_SLOW_CONNS, BENCH_SLOW_RATE, BENCH_SLOW_WINDOW,
# BENCH_SLOW_SECS, BENCH_SLOW_RUNS, BENCH_REQUESTS, BENCH_REQ_CONNS,
# BENCH_REQ_STREAMS, BENCH_REQ_BODY, BENCH_FLOOR_BATCH, BENCH_AES_MIB,
# BENCH_SOAK_REQUESTS, BENCH_SOAK_CONNS, BENCH_SOAK_RUNS (see bench/bench.py).

BENCH_UPSTREAM := target/bench/upstream/server
# Defined before the bench rule: make expands a rule's prerequisites as it
# reads it (defined later, they were empty and the floor never got built).
BENCH_FLOOR := target/release/floor
BENCH_C := target/bench/req_server target/bench/req_load
BENCH_INPROC := target/bench/unknown_cid_inproc

.PHONY: bench bench-quick

# aioquic (make peers) holds the idle connections; without it those rows say
# so instead of stopping the run.
bench: all upstream $(BENCH_UPSTREAM) $(BENCH_FLOOR) $(BENCH_C) $(BENCH_INPROC)
	@$(MAKE) --no-print-directory peers || echo "bench: aioquic unavailable (make peers failed): idle-connection and slow-transfer rows will be empty"
	python3 bench/bench.py

bench-quick:
	@$(MAKE) --no-print-directory bench BENCH_QUICK=1

# The baseline: upstream's server.c compiled from the quiche package as
# `make upstream` does, but with -O2 like our examples and quiche's debug
# log off like ours under QUICHE_EV_QUIET (bench/no_debug_log.c). `make
# upstream`'s own build (-O0, debug log on) is measured too, as "shipped".
$(BENCH_UPSTREAM): $(QUICHE_LIB) bench/no_debug_log.c | target/bench/upstream
	$(CC) -O2 -g -w -I$(QUICHE_DIR)/include -Dquiche_enable_debug_logging=bench_no_debug_logging \
	  -o $@ -x c $(QUICHE_DIR)/examples/server.c bench/no_debug_log.c -x none $(QUICHE_LIB) $(NATIVE_LIBS)

target/bench/upstream:
	mkdir -p $@

# The floor (bench/floor, a workspace member): quiche's own cost, client
# and server in one process. Built in the same cargo invocation as the
# library, so cargo resolves the same features and reuses the quiche and
# BoringSSL it already built (building it alone would compile BoringSSL
# again).

$(BENCH_FLOOR): $(LIB) FORCE
	$(CARGO) build --release -p quiche-ev -p quiche -p quiche-ev-floor

# Our code's own cost per unknown-CID datagram, in process
# (benches/unknown_cid_inproc.rs, a `cargo bench` target, so `cargo test`
# never builds it), copied where bench.py finds it.
$(BENCH_INPROC): $(LIB) FORCE | target/bench/upstream
	cp "$$($(CARGO) bench --bench unknown_cid_inproc --no-run --message-format=json-render-diagnostics \
	  | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)" $@

# The request rows' server (C request callback) and load generator, on
# the public API like the examples.

$(BENCH_C): target/bench/%: bench/%.c c-examples/common.c c-examples/common.h include/quiche_ev.h $(LIB) | target/bench/upstream
	$(CC) $(CFLAGS) $(WARNINGS) $(INCS) -Ic-examples -o $@ $< c-examples/common.c $(LIB) $(NATIVE_LIBS)
