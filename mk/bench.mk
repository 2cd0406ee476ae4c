# Benchmarks (GitHub issue 5): the same RTP load through kamailio-ice,
# rtpengine (userspace) and a floor relay, plus call set-up cost with sipp.
#   make bench        N = 250, 500, 1000, 2000; 5 s warm-up + 20 s each, then
#                     three rounds of set-up runs at 50 and at 200 cps, a ramp (~25 min)
#   make bench-quick  N = 250, 4 + 6 s each, a short set-up run (~2 min)
# Needs root (a private network namespace, CPU pinning). BENCH_ARGS passes
# more options to utils/ice-bench/bench.py (see its --help).

include utils/ice-bench/ice-bench.mk

BENCH_ARGS ?=

.PHONY: bench bench-quick bench-tool

bench-tool: $(ICE_BENCH)

bench: module $(ICE_BENCH)
	$(PYTHON) utils/ice-bench/bench.py --bench $(CURDIR)/$(ICE_BENCH) \
		--module $(CURDIR)/$(MODULE) $(BENCH_ARGS)

bench-quick: module $(ICE_BENCH)
	$(PYTHON) utils/ice-bench/bench.py --quick --bench $(CURDIR)/$(ICE_BENCH) \
		--module $(CURDIR)/$(MODULE) $(BENCH_ARGS)
