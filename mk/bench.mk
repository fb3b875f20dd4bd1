# Benchmarks (not part of `make test`): bench/bench.py prints a table and
# writes target/bench.md; every row is a ratio against a baseline measured
# in the same run. BENCH_QUICK=1 for a short run; BENCH_RUNS, BENCH_HANDSHAKES,
# BENCH_IDLE, BENCH_MEM_IDLE, BENCH_BULK_MIB to tune.

.PHONY: bench

bench: all upstream peers
	python3 bench/bench.py
