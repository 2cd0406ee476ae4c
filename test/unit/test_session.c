/*
 * kamailio-ice: unit tests for the ports pool of lib/session: pairs a
 * forwarder holds open (socket_reuse), per forwarder and interface.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "session.h"

#define PMIN 30000
#define PMAX 30039 /* 20 pairs */

static struct kice_table *mk(unsigned nfwd)
{
	struct kice_table *t = NULL;

	assert_int_equal(
			kice_table_create(&t, &kice_mem_libc, 16, PMIN, PMAX, nfwd), 0);
	return t;
}

static uint16_t take(struct kice_table *t, unsigned fwd, unsigned iface,
		bool want_held)
{
	uint16_t port = 0;
	bool held = !want_held;

	assert_int_equal(kice_ports_alloc_pair(t->ports, fwd, iface, &port, &held), 0);
	assert_int_equal(held, want_held);
	assert_true(port >= PMIN && port < PMAX && port % 2 == 0);
	return port;
}

static uint32_t in_use(struct kice_table *t)
{
	uint32_t used, total;

	kice_ports_usage(t->ports, &used, &total);
	assert_int_equal(total, 40);
	return used;
}

/* a kept pair comes back to the same forwarder and interface only, last
 * kept first; a pair given back closed is free for anyone */
static void test_held_lists(void **state)
{
	struct kice_table *t = mk(2);
	uint16_t a, b, c;

	(void)state;
	a = take(t, 0, 0, false);
	b = take(t, 0, 0, false);
	assert_int_not_equal(a, b);
	assert_int_equal(in_use(t), 4);
	assert_true(kice_ports_release_kept(t->ports, a, 0, 0));
	assert_true(kice_ports_release_kept(t->ports, b, 0, 0));
	assert_int_equal(in_use(t), 0);
	assert_int_equal(kice_ports_held(t->ports), 2);
	/* forwarder 1, or interface 1 of forwarder 0: not these */
	c = take(t, 1, 0, false);
	assert_true(c != a && c != b);
	kice_ports_release_closed(t->ports, c);
	c = take(t, 0, 1, false);
	assert_true(c != a && c != b);
	kice_ports_release_closed(t->ports, c);
	/* forwarder 0 on interface 0: b then a, nothing to bind */
	assert_int_equal(take(t, 0, 0, true), b);
	assert_int_equal(take(t, 0, 0, true), a);
	assert_int_equal(kice_ports_held(t->ports), 0);
	/* a worker giving a held pair back (its UPDATE failed): still held */
	kice_ports_release_pair(t->ports, a);
	assert_int_equal(kice_ports_held(t->ports), 1);
	/* the forwarder closing a held pair: no longer held, free for all */
	kice_ports_release_closed(t->ports, b);
	assert_int_equal(kice_ports_held(t->ports), 1);
	assert_int_equal(take(t, 0, 0, true), a);
	kice_ports_release_closed(t->ports, a);
	assert_int_equal(kice_ports_held(t->ports), 0);
	assert_int_equal(in_use(t), 0);
	kice_table_destroy(t);
}

/* a forwarder keeps at most half its share: 20 pairs, 2 forwarders -> 5 */
static void test_hold_cap(void **state)
{
	struct kice_table *t = mk(2);
	uint16_t p[8];
	int i, kept = 0;

	(void)state;
	for(i = 0; i < 8; i++)
		p[i] = take(t, 0, 0, false);
	for(i = 0; i < 8; i++) {
		if(kice_ports_release_kept(t->ports, p[i], 0, 0))
			kept++;
		else
			kice_ports_release_closed(t->ports, p[i]);
	}
	assert_int_equal(kept, 5);
	assert_int_equal(kice_ports_held(t->ports), 5);
	assert_int_equal(in_use(t), 0);
	/* the other forwarder still gets every pair nobody holds: 15 */
	for(i = 0; i < 15; i++)
		take(t, 1, 0, false);
	{
		uint16_t port;
		bool held;
		assert_int_equal(kice_ports_alloc_pair(t->ports, 1, 0, &port, &held),
				-ENOSPC);
	}
	/* ... and forwarder 0 its five held ones */
	for(i = 0; i < 5; i++)
		take(t, 0, 0, true);
	kice_table_destroy(t);
}

/* one forwarder, pool used up on interface 0: a session on interface 1
 * gets a pair held for interface 0 (the forwarder binds it again) */
static void test_other_interface(void **state)
{
	struct kice_table *t = mk(1);
	uint16_t p[20], q;
	int i;

	(void)state;
	for(i = 0; i < 20; i++)
		p[i] = take(t, 0, 0, false);
	for(i = 0; i < 10; i++) /* the cap: half of 20 */
		assert_true(kice_ports_release_kept(t->ports, p[i], 0, 0));
	assert_false(kice_ports_release_kept(t->ports, p[10], 0, 0));
	kice_ports_release_closed(t->ports, p[10]);
	/* the one pair nobody holds first, then held ones of interface 0 */
	assert_int_equal(take(t, 0, 1, false), p[10]);
	q = take(t, 0, 1, true);
	assert_int_equal(q, p[9]);
	assert_int_equal(kice_ports_held(t->ports), 9);
	/* given back by the forwarder that re-bound it on interface 1: it is
	 * on interface 1's list now */
	assert_true(kice_ports_release_kept(t->ports, q, 0, 1));
	assert_int_equal(take(t, 0, 1, true), q);
	kice_table_destroy(t);
}

/* a forwarder that stops closes what it held: nothing is held after */
static void test_drop_held(void **state)
{
	struct kice_table *t = mk(2);
	uint16_t a = take(t, 0, 0, false), b = take(t, 0, 0, false),
			 c = take(t, 1, 0, false);

	(void)state;
	assert_true(kice_ports_release_kept(t->ports, a, 0, 0));
	assert_true(kice_ports_release_kept(t->ports, c, 1, 0));
	kice_ports_drop_held(t->ports, 0);
	assert_int_equal(kice_ports_held(t->ports), 1); /* forwarder 1's */
	/* b, in use when forwarder 0 stopped, goes back as an ordinary pair */
	kice_ports_release_pair(t->ports, b);
	assert_int_equal(kice_ports_held(t->ports), 1);
	assert_true(take(t, 0, 0, false) != c);
	assert_int_equal(take(t, 1, 0, true), c);
	/* bad arguments change nothing */
	assert_false(kice_ports_release_kept(t->ports, 1000, 0, 0));
	assert_false(kice_ports_release_kept(t->ports, a, 7, 0));
	assert_false(kice_ports_release_kept(t->ports, a, 0, KICE_PORTS_IFACES));
	kice_ports_release_pair(t->ports, 65000);
	kice_ports_release_closed(t->ports, 1);
	kice_table_destroy(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_held_lists),
		cmocka_unit_test(test_hold_cap),
		cmocka_unit_test(test_other_interface),
		cmocka_unit_test(test_drop_held),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
