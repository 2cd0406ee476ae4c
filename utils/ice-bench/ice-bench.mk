# ice-bench: the RTP load generator / floor relay (utils/ice-bench/ice-bench.c).
# Included by mk/bench.mk; builds build/bench/ice-bench.

ICE_BENCH := build/bench/ice-bench
ICE_BENCH_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror
# the floor relay's io_uring variant (--floor-relay --uring); liburing-dev
# comes with scripts/deps.sh
ICE_BENCH_LIBS := -luring

$(ICE_BENCH): utils/ice-bench/ice-bench.c
	@mkdir -p $(dir $@)
	$(CC) $(ICE_BENCH_CFLAGS) $< -o $@ $(ICE_BENCH_LIBS)
