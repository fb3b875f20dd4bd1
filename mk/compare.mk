# Behaviour parity with upstream and independent stacks (issue "parity
# harness"): tests/parity/compare.py runs the pair matrix, prints a table
# and writes target/compare.md; a regression fails. `make test` runs it too
# (tests/parity.rs).

.PHONY: compare

compare: all upstream peers
	python3 tests/parity/compare.py
