/*
 * kamailio-ice: unit tests for the random byte pool (lib/rand).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "rand.h"
#include "stun.h"

static int cmp12(const void *a, const void *b)
{
	return memcmp(a, b, 12);
}

/* 4096 transaction IDs (about 100 pool refills): all different */
static void test_unique_tids(void **state)
{
	enum { N = 4096 };
	uint8_t(*t)[12] = calloc(N, 12);
	int i;

	(void)state;
	assert_non_null(t);
	for(i = 0; i < N; i++)
		assert_int_equal(kice_stun_tid_random(t[i]), 0);
	qsort(t, N, 12, cmp12);
	for(i = 1; i < N; i++)
		assert_int_not_equal(memcmp(t[i - 1], t[i], 12), 0);
	free(t);
}

/* every bit position is set about half the time over 64 KiB drawn in
 * odd-sized pieces that straddle refills (a stuck or repeated pool shows) */
static void test_bits_balanced(void **state)
{
	enum { LEN = 65536 };
	uint8_t *b = malloc(LEN);
	unsigned ones[8] = {0}, off = 0, k = 1, i, j;

	(void)state;
	assert_non_null(b);
	while(off < LEN) {
		unsigned n = k % 37 + 1;
		if(n > LEN - off)
			n = LEN - off;
		assert_int_equal(kice_random(b + off, n), 0);
		off += n;
		k = k * 7 + 3;
	}
	for(i = 0; i < LEN; i++)
		for(j = 0; j < 8; j++)
			ones[j] += (b[i] >> j) & 1;
	/* expected 32768 each, sd 128: 6 sd either way */
	for(j = 0; j < 8; j++) {
		assert_true(ones[j] > 32768 - 768);
		assert_true(ones[j] < 32768 + 768);
	}
	/* no 16-byte block repeats the one before it */
	for(i = 16; i < LEN; i += 16)
		assert_int_not_equal(memcmp(b + i - 16, b + i, 16), 0);
	free(b);
}

/* a forked child must not hand out what the parent's pool still holds */
static void test_fork_distinct(void **state)
{
	uint8_t first[4], parent[64], child[64];
	int p[2];
	pid_t pid;
	int st;

	(void)state;
	assert_int_equal(kice_random(first, sizeof(first)), 0); /* fills the pool */
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if(pid == 0) {
		ssize_t w;
		close(p[0]);
		if(kice_random(child, sizeof(child)) < 0)
			_exit(2);
		w = write(p[1], child, sizeof(child));
		_exit(w == (ssize_t)sizeof(child) ? 0 : 3);
	}
	close(p[1]);
	assert_int_equal(kice_random(parent, sizeof(parent)), 0);
	assert_int_equal(read(p[0], child, sizeof(child)), (ssize_t)sizeof(child));
	close(p[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_not_equal(memcmp(parent, child, sizeof(parent)), 0);
	/* not even a shifted copy: the child's first bytes appear nowhere in
	 * what the parent drew */
	assert_null(memmem(parent, sizeof(parent), child, 8));
}

static void test_args(void **state)
{
	uint8_t big[200], zero[200];

	(void)state;
	assert_int_equal(kice_random(NULL, 0), 0);
	assert_int_equal(kice_random(NULL, 4), -EINVAL);
	assert_int_equal(kice_stun_tid_random(NULL), -EINVAL);
	memset(big, 0, sizeof(big));
	memset(zero, 0, sizeof(zero));
	assert_int_equal(kice_random(big, sizeof(big)), 0); /* past the pool */
	assert_int_not_equal(memcmp(big, zero, sizeof(big)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unique_tids),
		cmocka_unit_test(test_bits_balanced),
		cmocka_unit_test(test_fork_distinct),
		cmocka_unit_test(test_args),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
