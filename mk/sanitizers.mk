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

.PHONY: valgrind asan

valgrind: examples cert
	scripts/valgrind.sh

# gcc brings libasan/libubsan; clang needs libclang-rt-<version>-dev.
ASAN_CC ?= $(CC)
ASAN_CFLAGS ?= -O1 -g
ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer
ASAN_EXAMPLES := $(patsubst c-examples/%,target/asan/%,$(EXAMPLES))

asan: $(ASAN_EXAMPLES) cert
	scripts/asan.sh target/asan

target/asan/%: c-examples/%.c c-examples/common.c c-examples/common.h include/quiche_ev.h $(LIB) | target/asan
	$(ASAN_CC) $(ASAN_CFLAGS) $(ASAN_FLAGS) $(WARNINGS) $(INCS) -o $@ $< c-examples/common.c $(LIB) $(NATIVE_LIBS)

target/asan:
	mkdir -p $@
