# Memory checks (issue "Hardening"). Both run the hq pair (server/client),
# the h3 pair (http3-server/http3-client) and the h3 pair with two workers
# (--workers 2) through the scenario of
# scripts/mem-scenario.sh: a full download, a client SIGKILLed mid-download,
# then SIGTERM to the server with that connection live (and a second round
# with SIGTERM + SIGINT at once, so the server frees a still-open
# connection). Any memory error or definite/indirect leak fails the target,
# printing the logs; they stay in target/memcheck/.
#
#   make valgrind   the c-examples/ binaries under valgrind's memcheck
#   make asan       the examples rebuilt with ASan + UBSan into target/asan/
#                   (c-examples/ is left alone; the Rust staticlib is not
#                   instrumented, but LeakSanitizer still sees its heap)
#
# Both then run the C test programs of MEM_TESTS (tests/c/, built here with
# tests/c/harness.c and c-examples/common.c: plainly into target/c-tests/
# for valgrind, with ASan + UBSan into target/asan/): free_in_callbacks
# frees a server and a client from inside each kind of their callbacks,
# with the program's watcher stopped first, left running, or none (_start);
# logs_and_errors fails _new calls and logs from six handles.
# Only valgrind sees what the library itself (Rust, libev) does to freed
# memory: ASan instruments the C code alone.

.PHONY: valgrind asan

MEM_TESTS := free_in_callbacks logs_and_errors
TEST_SOURCES := tests/c/harness.c c-examples/common.c
TEST_DEPS := $(TEST_SOURCES) tests/c/harness.h c-examples/common.h include/quiche_ev.h $(LIB)

valgrind: examples cert $(addprefix target/c-tests/,$(MEM_TESTS))
	MEM_TESTS="$(MEM_TESTS)" scripts/valgrind.sh

target/c-tests/%: tests/c/%.c $(TEST_DEPS) | target/c-tests
	$(CC) $(CFLAGS) $(WARNINGS) $(INCS) -Ic-examples -o $@ $< $(TEST_SOURCES) $(LIB) $(NATIVE_LIBS)

target/c-tests:
	mkdir -p $@

# gcc brings libasan/libubsan; clang needs libclang-rt-<version>-dev.
ASAN_CC ?= $(CC)
ASAN_CFLAGS ?= -O1 -g
ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer
ASAN_EXAMPLES := $(patsubst c-examples/%,target/asan/%,$(EXAMPLES))

asan: $(ASAN_EXAMPLES) $(addprefix target/asan/,$(MEM_TESTS)) cert
	MEM_TESTS="$(MEM_TESTS)" scripts/asan.sh target/asan

target/asan/%: c-examples/%.c c-examples/common.c c-examples/common.h include/quiche_ev.h $(LIB) | target/asan
	$(ASAN_CC) $(ASAN_CFLAGS) $(ASAN_FLAGS) $(WARNINGS) $(INCS) -o $@ $< c-examples/common.c $(LIB) $(NATIVE_LIBS)

target/asan/%: tests/c/%.c $(TEST_DEPS) | target/asan
	$(ASAN_CC) $(ASAN_CFLAGS) $(ASAN_FLAGS) $(WARNINGS) $(INCS) -Ic-examples -o $@ $< $(TEST_SOURCES) $(LIB) $(NATIVE_LIBS)

target/asan:
	mkdir -p $@
