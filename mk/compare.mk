# Behaviour parity harness (issue "Behaviour parity harness"): every
# client/server pairing of ours, upstream's samples (plain libquiche and
# linked against libquiche_ev.a), aioquic and ngtcp2, for hq-interop and
# HTTP/3, each compared with the same pair run with upstream's samples.
# Prints a table and writes target/compare.md; a regression (a difference
# that is not one of README's "Differences from upstream") fails it.
# `make test` runs it too, through tests/compare.rs.
#
#   make compare                          the whole matrix
#   make compare COMPARE_ARGS='--only h3:'  a subset (see compare.py --help)

.PHONY: compare

COMPARE_ARGS ?=

compare: all upstream peers
	python3 tests/compare/compare.py $(COMPARE_ARGS)
