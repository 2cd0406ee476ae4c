/*
 * kamailio-ice: unit tests for the flags parser (lib/flags, DESIGN.md §5)
 * and the interface parameter parser (lib/call).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "call.h"
#include "flags.h"

static int parse(struct kice_flags *f, const char *s, struct kice_slice *bad)
{
	return kice_flags_parse(f, s, strlen(s), bad);
}

static void test_modes(void **state)
{
	struct kice_flags f;

	(void)state;
	assert_int_equal(parse(&f, "", NULL), 0);
	assert_int_equal(f.ice, KICE_FLAG_ICE_DEFAULT);
	assert_int_equal(parse(&f, "remove", NULL), 0);
	assert_int_equal(f.ice, KICE_FLAG_ICE_REMOVE);
	assert_int_equal(parse(&f, "force lite", NULL), 0);
	assert_int_equal(f.ice, KICE_FLAG_ICE_FORCE);
	assert_true(f.lite);
	assert_int_equal(parse(&f, "  relay   trickle ", NULL), 0);
	assert_int_equal(f.ice, KICE_FLAG_ICE_RELAY);
	assert_true(f.trickle);
	assert_int_equal(parse(&f, "pass", NULL), 0);
	assert_int_equal(f.ice, KICE_FLAG_ICE_PASS);
}

static void test_rtpengine_spellings(void **state)
{
	struct kice_flags f;

	(void)state;
	assert_int_equal(parse(&f, "ICE=force", NULL), 0);
	assert_int_equal(f.ice, KICE_FLAG_ICE_FORCE);
	assert_int_equal(parse(&f, "ICE=remove", NULL), 0);
	assert_int_equal(f.ice, KICE_FLAG_ICE_REMOVE);
	assert_int_equal(parse(&f, "ICE=default", NULL), 0);
	assert_int_equal(f.ice, KICE_FLAG_ICE_DEFAULT);
	assert_int_equal(parse(&f, "ICE=force-relay", NULL), 0);
	assert_int_equal(f.ice, KICE_FLAG_ICE_RELAY);
	assert_int_equal(parse(&f, "ICE=optional", NULL), 0);
	assert_int_equal(f.ice, KICE_FLAG_ICE_RELAY);
	assert_int_equal(parse(&f, "ICE-lite=forward", NULL), 0);
	assert_true(f.lite);
	assert_int_equal(parse(&f, "RTP/AVP DTLS=passive rtcp-mux-demux", NULL), 0);
	assert_true(kice_slice_eq(f.transport, "RTP/AVP"));
	assert_int_equal(f.dtls, 2);
	assert_int_equal(f.rtcp_mux, 3);
	assert_int_equal(parse(&f, "address-family=IP6 trickle-ICE strict-source", NULL), 0);
	assert_int_equal(f.af, 6);
	assert_true(f.trickle);
	assert_true(f.strict_source);
	assert_int_equal(parse(&f, "direction=internal direction=external", NULL), 0);
	assert_string_equal(f.in_iface, "internal");
	assert_string_equal(f.out_iface, "external");
	assert_int_equal(parse(&f, "UDP/TLS/RTP/SAVPF sdes=off dtls=off rtcp-mux=require", NULL), 0);
	assert_int_equal(f.sdes, -1);
	assert_int_equal(f.dtls, -1);
	assert_int_equal(f.rtcp_mux, 2);
}

static void test_unknown_flags(void **state)
{
	struct kice_flags f;
	struct kice_slice bad;
	static const char *const cases[][2] = {
		{"remove bogus", "bogus"},
		{"ICE=sometimes", "ICE=sometimes"},
		{"dtls=maybe", "dtls=maybe"},
		{"rtcp-mux-never", "rtcp-mux-never"},
		{"in-iface=", "in-iface="},
		{"RTP/AVPX", "RTP/AVPX"},
		{"address-family=IP5", "address-family=IP5"},
		{"ICE-lite=backward", "ICE-lite=backward"},
	};
	size_t i;

	(void)state;
	for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&bad, 0, sizeof(bad));
		assert_int_equal(parse(&f, cases[i][0], &bad), -EINVAL);
		assert_true(kice_slice_eq(bad, cases[i][1]));
	}
	assert_int_equal(kice_flags_parse(NULL, "x", 1, NULL), -EINVAL);
	/* every prefix of a long flags string parses or fails cleanly */
	{
		const char *s = "force lite trickle RTP/SAVPF dtls=active in-iface=a";
		size_t n;
		for(n = 0; n <= strlen(s); n++)
			kice_flags_parse(&f, s, n, &bad);
	}
}

static void test_iface(void **state)
{
	struct kice_iface i;

	(void)state;
	assert_int_equal(kice_iface_parse(&i, "pub/192.0.2.1!203.0.113.5", 25), 0);
	assert_string_equal(i.name, "pub");
	assert_int_equal(i.local.af, 4);
	assert_int_equal(i.adv.ip[0], 203);
	assert_int_equal(kice_iface_parse(&i, "10.0.0.1", 8), 0);
	assert_string_equal(i.name, "default");
	assert_int_equal(i.adv.ip[3], 1);
	assert_int_equal(kice_iface_parse(&i, "v6/2001:db8::1", 14), 0);
	assert_int_equal(i.local.af, 6);
	assert_int_equal(kice_iface_parse(&i, "x/300.1.1.1", 11), -EINVAL);
	assert_int_equal(kice_iface_parse(&i, "/1.2.3.4", 8), -EINVAL);
	assert_int_equal(kice_iface_parse(&i, "x/1.2.3.4!2001:db8::1", 21), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_modes),
		cmocka_unit_test(test_rtpengine_spellings),
		cmocka_unit_test(test_unknown_flags),
		cmocka_unit_test(test_iface),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
