# The other platforms' code paths, tested on Linux, and the other
# platforms type-checked (issue "Reach", section 2; README "Platforms").
#
#   make portable        libquiche_ev_portable.a (portable/: the same sources with
#                        the `portable` feature) and the examples linked against
#                        it, in target/portable/c-examples/
#   make portable-unit   the library's unit tests with the `portable` feature
#   make cross-check     cargo check of the library and its tests for macOS,
#                        FreeBSD and Linux/musl (scripts/cross-check.py)
#   make portable-check  all of the above, then tests/portable.rs: the parity
#                        matrix against the portable examples, and proof that
#                        they make none of the Linux-only calls
#
# `make test` runs portable and cross-check, and tests/portable.rs with
# the other integration tests. portable-unit (about a minute of compiling
# after each source change) is left to portable-check: what it adds to
# the main build's unit tests is the code behind the feature's cfgs, whose
# two halves (getentropy, the plain read path) the main unit tests run.

.PHONY: portable portable-unit cross-check portable-check print-native-libs

PORTABLE_LIB := target/release/libquiche_ev_portable.a
PORTABLE_EXAMPLES := $(patsubst c-examples/%,target/portable/c-examples/%,$(EXAMPLES))

portable: $(PORTABLE_EXAMPLES) cert

# Built in the main target directory: only quiche-ev's own crate compiles
# again, and libquiche_ev.a is left alone. Named with $(LIB)'s packages so
# that cargo resolves the dependencies' features exactly as for the main
# build (alone, quiche-ev's build-dependencies would be missing from the
# unification, and every dependency would be built a second time).
$(PORTABLE_LIB): FORCE
	$(CARGO) build --release -p quiche-ev -p quiche -p quiche-ev-portable

target/portable/c-examples/%: c-examples/%.c c-examples/common.c c-examples/common.h include/quiche_ev.h $(PORTABLE_LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARNINGS) $(INCS) -o $@ $< c-examples/common.c $(PORTABLE_LIB) $(NATIVE_LIBS)

# The unit-test binary of another feature set: libquiche_ev.a and the
# other artifacts are not rebuilt.
portable-unit:
	$(CARGO) test --release -p quiche-ev --lib --features portable

cross-check:
	python3 scripts/cross-check.py

portable-check: all upstream peers portable portable-unit cross-check
	$(CARGO) test --release --test portable

# For scripts/cross-check.py: NATIVE_LIBS as this Makefile has it for a
# system (make print-native-libs UNAME_S=Darwin).
print-native-libs:
	@echo $(NATIVE_LIBS)
