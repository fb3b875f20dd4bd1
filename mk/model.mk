# The random-host model test (src/model_tests.rs) with many seeds, outside
# `make test` (which runs it natively with the default seeds in cargo test
# and a few seeds under Miri):
#
#   make model        MODEL_SEEDS seeds (default 20000), release build
#   make model-asan   the same under AddressSanitizer (nightly, build-std;
#                     default 3000 seeds), into target/model-asan/
#
# A failing seed prints how to replay it (MODEL_SEED=<n>).

.PHONY: model model-asan

MODEL_ASAN_TARGET := $(shell rustc -vV | sed -n 's/^host: //p')

model:
	MODEL_SEEDS=$${MODEL_SEEDS:-20000} $(CARGO) test --release -p quiche-ev --lib model_tests -- --nocapture

# ASan instruments our crate and the Rust standard library (build-std);
# BoringSSL's C is built without it (the model test never reaches it).
model-asan:
	RUSTFLAGS="-Zsanitizer=address" RUSTDOCFLAGS="-Zsanitizer=address" \
	ASAN_OPTIONS=detect_leaks=1 QUICHE_EV_SKIP_HEADER=1 \
	MODEL_SEEDS=$${MODEL_SEEDS:-3000} \
	cargo +nightly test -Zbuild-std --target $(MODEL_ASAN_TARGET) --target-dir target/model-asan \
	    --release -p quiche-ev --lib model_tests -- --nocapture
