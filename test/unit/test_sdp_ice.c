/*
 * kamailio-ice: unit tests for the force rewrite and the a=candidate
 * parser of lib/sdp_ice (RFC 8839, RFC 8445 §5.1.2).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sdp.h"
#include "sdp_ice.h"

static size_t load(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, cap, f);
	fclose(f);
	return n;
}

static void mode_golden(const char *in, const char *expect, bool lite,
		enum kice_ice_mode mode);

static void force_golden(const char *in, const char *expect, bool lite)
{
	mode_golden(in, expect, lite, KICE_ICE_FORCE);
}

static void mode_golden(const char *in, const char *expect, bool lite,
		enum kice_ice_mode mode)
{
	static char buf[65536], want[65536], out[65536];
	static struct kice_sdp sdp;
	static struct kice_sdp_edits ed;
	struct kice_rewrite rw;
	size_t n = load(in, buf, sizeof(buf)), wn = load(expect, want, sizeof(want));
	unsigned i;
	int m;

	assert_int_equal(kice_sdp_parse(&sdp, buf, n), 0);
	memset(&rw, 0, sizeof(rw));
	rw.mode = mode;
	rw.nmedia = sdp.nmedia;
	rw.lite = lite;
	strcpy(rw.ufrag, "Rly1");
	strcpy(rw.pwd, "RelayPasswordRelayPass");
	for(i = 0; i < sdp.nmedia; i++) {
		rw.media[i].af = KICE_AF_INET;
		strcpy(rw.media[i].addr, "203.0.113.7");
		rw.media[i].rtp_port = (uint16_t)(40000 + 4 * i);
		rw.media[i].rtcp_port = (uint16_t)(40001 + 4 * i);
		rw.media[i].skip = sdp.media[i].port == 0;
	}
	assert_int_equal(kice_sdp_rewrite(&sdp, &rw, &ed), 0);
	m = kice_sdp_edits_apply(&ed, buf, n, out, sizeof(out));
	assert_int_equal((size_t)m, wn);
	assert_memory_equal(out, want, wn);
	/* what we send parses, and carries exactly our ICE description */
	if(mode == KICE_ICE_FORCE) {
		static struct kice_sdp o;
		assert_int_equal(kice_sdp_parse(&o, out, (size_t)m), 0);
		assert_int_equal(o.ice_lite, lite);
		for(i = 0; i < o.nmedia; i++) {
			if(o.media[i].port == 0)
				continue;
			assert_true(kice_slice_eq(o.media[i].ice_ufrag, "Rly1"));
			assert_true(kice_slice_eq(o.media[i].ice_pwd, "RelayPasswordRelayPass"));
			assert_true(o.media[i].end_of_candidates);
			assert_true(o.media[i].ncand == 1 || o.media[i].ncand == 2);
		}
	}
}

static void test_force_bria(void **state)
{
	(void)state;
	force_golden("test/data/sdp/bria-offer.sdp",
			"test/data/sdp/bria-offer.force.expect", false);
}

static void test_force_chrome_lite(void **state)
{
	(void)state;
	force_golden("test/data/sdp/chrome-offer.sdp",
			"test/data/sdp/chrome-offer.force-lite.expect", true);
}

static void test_force_linphone(void **state)
{
	(void)state;
	force_golden("test/data/sdp/linphone-offer.sdp",
			"test/data/sdp/linphone-offer.force.expect", false);
}

/* relay: the endpoint's ICE kept, ours added as typ relay, lowest
 * priority, before a=end-of-candidates */
static void test_relay_firefox(void **state)
{
	(void)state;
	mode_golden("test/data/sdp/firefox-offer.sdp",
			"test/data/sdp/firefox-offer.relay.expect", false, KICE_ICE_RELAY);
}

static void test_relay_bria(void **state)
{
	(void)state;
	mode_golden("test/data/sdp/bria-offer.sdp",
			"test/data/sdp/bria-offer.relay.expect", false, KICE_ICE_RELAY);
	assert_true(kice_sdp_relay_priority(1) < kice_sdp_host_priority(1));
	/* lower than any srflx (type preference 100) or prflx (110) */
	assert_true(kice_sdp_relay_priority(1) < (100u << 24));
}

static void test_force_bad_credentials(void **state)
{
	static char buf[65536];
	static struct kice_sdp sdp;
	static struct kice_sdp_edits ed;
	struct kice_rewrite rw;
	size_t n = load("test/data/sdp/bria-offer.sdp", buf, sizeof(buf));
	unsigned i;

	(void)state;
	assert_int_equal(kice_sdp_parse(&sdp, buf, n), 0);
	memset(&rw, 0, sizeof(rw));
	rw.mode = KICE_ICE_FORCE;
	rw.nmedia = sdp.nmedia;
	for(i = 0; i < sdp.nmedia; i++) {
		rw.media[i].af = KICE_AF_INET;
		strcpy(rw.media[i].addr, "203.0.113.7");
		rw.media[i].rtp_port = 40000;
		rw.media[i].rtcp_port = 40001;
	}
	strcpy(rw.ufrag, "abc"); /* RFC 8839: at least 4 characters */
	strcpy(rw.pwd, "RelayPasswordRelayPass");
	assert_int_equal(kice_sdp_rewrite(&sdp, &rw, &ed), -EINVAL);
	strcpy(rw.ufrag, "abcd");
	strcpy(rw.pwd, "tooShortPassword21char"); /* 22: fine */
	assert_int_equal(kice_sdp_rewrite(&sdp, &rw, &ed), 0);
	strcpy(rw.pwd, "tooShortPassword21cha");
	assert_int_equal(kice_sdp_rewrite(&sdp, &rw, &ed), -EINVAL);
	strcpy(rw.pwd, "RelayPassword RelayPass"); /* space is not an ice-char */
	assert_int_equal(kice_sdp_rewrite(&sdp, &rw, &ed), -EINVAL);
}

static void test_host_priority(void **state)
{
	(void)state;
	/* RFC 8445 §5.1.2.1 with type pref 126 and local pref 65535 */
	assert_int_equal(kice_sdp_host_priority(1), 2130706431u);
	assert_int_equal(kice_sdp_host_priority(2), 2130706430u);
}

static int cand(const char *s, struct kice_sdp_cand *c)
{
	return kice_sdp_cand_parse(kice_slice_make(s, strlen(s)), c);
}

static void test_candidate_parse(void **state)
{
	struct kice_sdp_cand c;

	(void)state;
	assert_int_equal(cand("842163049 1 udp 1677729535 198.51.100.7 61665 typ srflx "
						  "raddr 192.168.1.10 rport 61665 generation 0 "
						  "network-cost 999", &c), 0);
	assert_true(kice_slice_eq(c.foundation, "842163049"));
	assert_int_equal(c.component, 1);
	assert_true(c.udp);
	assert_int_equal(c.priority, 1677729535u);
	assert_true(kice_slice_eq(c.addr, "198.51.100.7"));
	assert_int_equal(c.port, 61665);
	assert_true(kice_slice_eq(c.type, "srflx"));
	assert_true(kice_slice_eq(c.raddr, "192.168.1.10"));
	assert_int_equal(c.rport, 61665);
	assert_int_equal(cand("1 2 UDP 2130706430 4a2f9b3c-1c2d-4e5f-8a9b-0c1d2e3f4a5b.local 50001 typ host", &c), 0);
	assert_true(kice_slice_eq(c.addr, "4a2f9b3c-1c2d-4e5f-8a9b-0c1d2e3f4a5b.local"));
	assert_int_equal(c.component, 2);
	assert_int_equal(cand("3 1 tcp 1518280447 192.0.2.4 9 typ host tcptype active", &c), 0);
	assert_false(c.udp);
	assert_int_equal(cand("1 1 UDP 2130706431 2001:db8::1 5000 typ host", &c), 0);
	assert_true(kice_slice_eq(c.addr, "2001:db8::1"));
	/* malformed */
	assert_int_equal(cand("", &c), -EBADMSG);
	assert_int_equal(cand("1 0 UDP 1 192.0.2.1 5000 typ host", &c), -EBADMSG);
	assert_int_equal(cand("1 1 UDP 0 192.0.2.1 5000 typ host", &c), -EBADMSG);
	assert_int_equal(cand("1 1 UDP 1 192.0.2.1 70000 typ host", &c), -EBADMSG);
	assert_int_equal(cand("1 1 UDP 1 192.0.2.1 5000 type host", &c), -EBADMSG);
	assert_int_equal(cand("1 1 UDP 1 192.0.2.1 5000 typ", &c), -EBADMSG);
	assert_int_equal(cand("1 1 UDP x 192.0.2.1 5000 typ host", &c), -EBADMSG);
	assert_int_equal(cand("1 1 UDP 1 192.0.2.1 5000 typ srflx raddr 1.2.3.4 rport 99999", &c), -EBADMSG);
	assert_int_equal(cand("123456789012345678901234567890123 1 UDP 1 192.0.2.1 5000 typ host", &c), -EBADMSG);
	/* every prefix parses or fails cleanly */
	{
		const char *s = "842163049 1 udp 1677729535 198.51.100.7 61665 typ srflx raddr 192.168.1.10 rport 61665";
		size_t k;
		for(k = 0; k <= strlen(s); k++) {
			char *b = malloc(k ? k : 1);
			memcpy(b, s, k);
			kice_sdp_cand_parse(kice_slice_make(b, k), &c);
			free(b);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_force_bria),
		cmocka_unit_test(test_force_chrome_lite),
		cmocka_unit_test(test_force_linphone),
		cmocka_unit_test(test_force_bad_credentials),
		cmocka_unit_test(test_relay_firefox),
		cmocka_unit_test(test_relay_bria),
		cmocka_unit_test(test_host_priority),
		cmocka_unit_test(test_candidate_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
