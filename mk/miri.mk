# `make miri`: the library's unsafe code (handle ownership across libev,
# the connection lifecycle, the table) under Miri, on the fake loop. See
# scripts/miri.sh; without a nightly toolchain it says so and passes.

.PHONY: miri

miri:
	scripts/miri.sh
