# Local QUIC interop runner (issue 12): the interop runner's test cases
# between our examples, aioquic and ngtcp2, through a simulated network
# (tests/interop/relay.py), checked from decrypted traces as
# quic-interop-runner checks them. See tests/interop/README.md.
#
#   make interop         the whole matrix (about 30 minutes): every case, ours as server and as
#                        client against aioquic and ngtcp2, ours against
#                        ours, and the peers against each other; writes
#                        target/interop.md (logs: target/interop-logs/)
#   make interop-quick   the subset `make test` runs (tests/interop_subset.rs):
#                        handshake, transfer, retry, http3, transferloss for
#                        ours/ours, ours/aioquic and aioquic/ours
#   make interop INTEROP_ARGS='--cases retry,http3 --peers ngtcp2'
#
# Needs tshark, openssl, ngtcp2-server/-client and aioquic (make peers).

.PHONY: interop interop-quick

INTEROP_ARGS ?=

interop: all upstream peers
	python3 tests/interop/run.py $(INTEROP_ARGS)

interop-quick: all upstream peers
	python3 tests/interop/run.py --quick --report target/interop-quick.md \
	  --logs target/interop-logs-quick $(INTEROP_ARGS)
