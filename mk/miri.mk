# `make miri`: the library's unsafe code (handle ownership across libev,
# the connection lifecycle, the table) under Miri, on the fake loop. See
# scripts/miri.sh; without a nightly toolchain it says so and passes.

.PHONY: miri miri-full

miri:
	scripts/miri.sh

# Every careless-host scenario and more seeds of the random hosts (long).
miri-full:
	MIRI_FULL=1 MODEL_SEEDS=$${MODEL_SEEDS:-20} scripts/miri.sh
