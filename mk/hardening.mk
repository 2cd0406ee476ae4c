# Hardening (GitHub issue 6): soak runs of many short calls with media
# through kamailio + ice, then checks that sessions, ports and shared memory
# are back where they started, and port-pool exhaustion (test/soak/soak.py).
#   make soak        SOAK_CALLS (100000) calls at SOAK_RATE (150) calls/s:
#                    about 11 min of load + 1 min of set-up and checks
#   make soak-short  2000 calls at 100 calls/s (about 1 min); part of nothing
#                    by default. make test runs a 300-call version
#                    (test/integration/test_soak.py).
# Needs root (a private network namespace "soak-soak"). Logs and
# figures.json in SOAK_OUT (/tmp/kice-soak/soak). SOAK_ARGS passes more
# options (see test/soak/soak.py --help).
# Included by the top-level Makefile (-include mk/*.mk): MODULE, PYTHON.

SOAK_CALLS ?= 100000
SOAK_RATE ?= 150
SOAK_OUT ?= /tmp/kice-soak
SOAK_ARGS ?=
SOAK_ENV = ICE_SO=$(CURDIR)/$(MODULE) ICE_TEST_OUT=$(SOAK_OUT) \
	ICE_NS_PREFIX=$${ICE_NS_PREFIX:-soak-}

.PHONY: soak soak-short

soak: module
	$(SOAK_ENV) $(PYTHON) test/soak/soak.py --calls $(SOAK_CALLS) \
		--rate $(SOAK_RATE) $(SOAK_ARGS)

soak-short: module
	$(SOAK_ENV) $(PYTHON) test/soak/soak.py --calls 2000 --rate 100 \
		$(SOAK_ARGS)
