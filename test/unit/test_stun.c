/*
 * kamailio-ice: unit tests for lib/stun (RFC 8489 codec).
 *
 * Vectors: RFC 5769 §2.1-2.4, annotated per field as in the RFC.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "stun.h"

/* RFC 5769 §2: password of the short-term vectors §2.1-2.3 */
static const char pwd[] = "VOkJxbRl1RmTxUk/WvJxBt";
#define PWD ((const uint8_t *)pwd), (sizeof(pwd) - 1)

static const uint8_t tid_5769[] = {
		0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};

/* RFC 5769 §2.1 Sample Request */
static const uint8_t req[] = {
		0x00, 0x01, 0x00, 0x58, /* Request type and message length */
		0x21, 0x12, 0xa4, 0x42, /* Magic cookie */
		0xb7, 0xe7, 0xa7, 0x01, /* } */
		0xbc, 0x34, 0xd6, 0x86, /* }  Transaction ID */
		0xfa, 0x87, 0xdf, 0xae, /* } */
		0x80, 0x22, 0x00, 0x10, /* SOFTWARE attribute header */
		0x53, 0x54, 0x55, 0x4e, /* } */
		0x20, 0x74, 0x65, 0x73, /* }  User-agent... */
		0x74, 0x20, 0x63, 0x6c, /* }  ...name */
		0x69, 0x65, 0x6e, 0x74, /* } */
		0x00, 0x24, 0x00, 0x04, /* PRIORITY attribute header */
		0x6e, 0x00, 0x01, 0xff, /* ICE priority value */
		0x80, 0x29, 0x00, 0x08, /* ICE-CONTROLLED attribute header */
		0x93, 0x2f, 0xf9, 0xb1, /* }  Pseudo-random tie breaker... */
		0x51, 0x26, 0x3b, 0x36, /* }   ...for ICE control */
		0x00, 0x06, 0x00, 0x09, /* USERNAME attribute header */
		0x65, 0x76, 0x74, 0x6a, /* } */
		0x3a, 0x68, 0x36, 0x76, /* }  Username (9 bytes) and padding (3) */
		0x59, 0x20, 0x20, 0x20, /* } */
		0x00, 0x08, 0x00, 0x14, /* MESSAGE-INTEGRITY attribute header */
		0x9a, 0xea, 0xa7, 0x0c, /* } */
		0xbf, 0xd8, 0xcb, 0x56, /* } */
		0x78, 0x1e, 0xf2, 0xb5, /* }  HMAC-SHA1 fingerprint */
		0xb2, 0xd3, 0xf2, 0x49, /* } */
		0xc1, 0xb5, 0x71, 0xa2, /* } */
		0x80, 0x28, 0x00, 0x04, /* FINGERPRINT attribute header */
		0xe5, 0x7a, 0x3b, 0xcf, /* CRC32 fingerprint */
};

/* RFC 5769 §2.2 Sample IPv4 Response */
static const uint8_t respv4[] = {
		0x01, 0x01, 0x00, 0x3c, /* Response type and message length */
		0x21, 0x12, 0xa4, 0x42, /* Magic cookie */
		0xb7, 0xe7, 0xa7, 0x01, /* } */
		0xbc, 0x34, 0xd6, 0x86, /* }  Transaction ID */
		0xfa, 0x87, 0xdf, 0xae, /* } */
		0x80, 0x22, 0x00, 0x0b, /* SOFTWARE attribute header */
		0x74, 0x65, 0x73, 0x74, /* } */
		0x20, 0x76, 0x65, 0x63, /* }  UTF-8 server name */
		0x74, 0x6f, 0x72, 0x20, /* } */
		0x00, 0x20, 0x00, 0x08, /* XOR-MAPPED-ADDRESS attribute header */
		0x00, 0x01, 0xa1, 0x47, /* Address family (IPv4) and xor'd port */
		0xe1, 0x12, 0xa6, 0x43, /* Xor'd mapped IPv4 address */
		0x00, 0x08, 0x00, 0x14, /* MESSAGE-INTEGRITY attribute header */
		0x2b, 0x91, 0xf5, 0x99, /* } */
		0xfd, 0x9e, 0x90, 0xc3, /* } */
		0x8c, 0x74, 0x89, 0xf9, /* }  HMAC-SHA1 fingerprint */
		0x2a, 0xf9, 0xba, 0x53, /* } */
		0xf0, 0x6b, 0xe7, 0xd7, /* } */
		0x80, 0x28, 0x00, 0x04, /* FINGERPRINT attribute header */
		0xc0, 0x7d, 0x4c, 0x96, /* CRC32 fingerprint */
};

/* RFC 5769 §2.3 Sample IPv6 Response */
static const uint8_t respv6[] = {
		0x01, 0x01, 0x00, 0x48, /* Response type and message length */
		0x21, 0x12, 0xa4, 0x42, /* Magic cookie */
		0xb7, 0xe7, 0xa7, 0x01, /* } */
		0xbc, 0x34, 0xd6, 0x86, /* }  Transaction ID */
		0xfa, 0x87, 0xdf, 0xae, /* } */
		0x80, 0x22, 0x00, 0x0b, /* SOFTWARE attribute header */
		0x74, 0x65, 0x73, 0x74, /* } */
		0x20, 0x76, 0x65, 0x63, /* }  UTF-8 server name */
		0x74, 0x6f, 0x72, 0x20, /* } */
		0x00, 0x20, 0x00, 0x14, /* XOR-MAPPED-ADDRESS attribute header */
		0x00, 0x02, 0xa1, 0x47, /* Address family (IPv6) and xor'd port */
		0x01, 0x13, 0xa9, 0xfa, /* } */
		0xa5, 0xd3, 0xf1, 0x79, /* }  Xor'd mapped IPv6 address */
		0xbc, 0x25, 0xf4, 0xb5, /* } */
		0xbe, 0xd2, 0xb9, 0xd9, /* } */
		0x00, 0x08, 0x00, 0x14, /* MESSAGE-INTEGRITY attribute header */
		0xa3, 0x82, 0x95, 0x4e, /* } */
		0x4b, 0xe6, 0x7b, 0xf1, /* } */
		0x17, 0x84, 0xc9, 0x7c, /* }  HMAC-SHA1 fingerprint */
		0x82, 0x92, 0xc2, 0x75, /* } */
		0xbf, 0xe3, 0xed, 0x41, /* } */
		0x80, 0x28, 0x00, 0x04, /* FINGERPRINT attribute header */
		0xc8, 0xfb, 0x0b, 0x4c, /* CRC32 fingerprint */
};

/* RFC 5769 §2.4 Sample Request with Long-Term Authentication */
static const uint8_t reqltc[] = {
		0x00, 0x01, 0x00, 0x60, /* Request type and message length */
		0x21, 0x12, 0xa4, 0x42, /* Magic cookie */
		0x78, 0xad, 0x34, 0x33, /* } */
		0xc6, 0xad, 0x72, 0xc0, /* }  Transaction ID */
		0x29, 0xda, 0x41, 0x2e, /* } */
		0x00, 0x06, 0x00, 0x12, /* USERNAME attribute header */
		0xe3, 0x83, 0x9e, 0xe3, /* } */
		0x83, 0x88, 0xe3, 0x83, /* } */
		0xaa, 0xe3, 0x83, 0x83, /* }  Username value (18 bytes) and */
		0xe3, 0x82, 0xaf, 0xe3, /* }  padding (2 bytes) */
		0x82, 0xb9, 0x00, 0x00, /* } */
		0x00, 0x15, 0x00, 0x1c, /* NONCE attribute header */
		0x66, 0x2f, 0x2f, 0x34, /* } */
		0x39, 0x39, 0x6b, 0x39, /* } */
		0x35, 0x34, 0x64, 0x36, /* } */
		0x4f, 0x4c, 0x33, 0x34, /* }  Nonce value */
		0x6f, 0x4c, 0x39, 0x46, /* } */
		0x53, 0x54, 0x76, 0x79, /* } */
		0x36, 0x34, 0x73, 0x41, /* } */
		0x00, 0x14, 0x00, 0x0b, /* REALM attribute header */
		0x65, 0x78, 0x61, 0x6d, /* } */
		0x70, 0x6c, 0x65, 0x2e, /* }  Realm value (11 bytes) and padding */
		0x6f, 0x72, 0x67, 0x00, /* }  (1 byte) */
		0x00, 0x08, 0x00, 0x14, /* MESSAGE-INTEGRITY attribute header */
		0xf6, 0x70, 0x24, 0x65, /* } */
		0x6d, 0xd6, 0x4a, 0x3e, /* } */
		0x02, 0xb8, 0xe0, 0x71, /* }  HMAC-SHA1 fingerprint */
		0x2e, 0x85, 0xc9, 0xa2, /* } */
		0x8c, 0xa8, 0x96, 0x66, /* } */
};

/* RFC 5769 §2.4 parameters. Username U+30DE U+30C8 U+30EA U+30C3 U+30AF
 * U+30B9; password "The<U+00AD>M<U+00AA>tr<U+2168>", "TheMatrIX" after
 * SASLprep. */
static const char ltc_user[] = "\xe3\x83\x9e\xe3\x83\x88\xe3\x83\xaa"
							   "\xe3\x83\x83\xe3\x82\xaf\xe3\x82\xb9";
static const char ltc_realm[] = "example.org";
static const char ltc_nonce[] = "f//499k954d6OL34oL9FSTvy64sA";
static const char ltc_pass[] = "TheMatrIX";
static const char ltc_pass_raw[] = "The\xc2\xadM\xc2\xaatr\xe2\x85\xa8";

#define S(lit) (lit), (sizeof(lit) - 1)

static void ltc_key(uint8_t key[KICE_STUN_LT_KEY_LEN])
{
	assert_int_equal(kice_stun_long_term_key(
							 key, S(ltc_user), S(ltc_realm), S(ltc_pass)),
			0);
}

struct vec
{
	const char *name;
	const uint8_t *p;
	size_t len;
	bool fp;
};

static const struct vec vecs[] = {
		{"RFC 5769 2.1", req, sizeof(req), true},
		{"RFC 5769 2.2", respv4, sizeof(respv4), true},
		{"RFC 5769 2.3", respv6, sizeof(respv6), true},
		{"RFC 5769 2.4", reqltc, sizeof(reqltc), false},
};
#define NVEC (sizeof(vecs) / sizeof(vecs[0]))

/* key of vecs[i] */
static void vec_key(size_t i, uint8_t *key, size_t *keylen)
{
	if(vecs[i].p == reqltc) {
		ltc_key(key);
		*keylen = KICE_STUN_LT_KEY_LEN;
	} else {
		memcpy(key, pwd, sizeof(pwd) - 1);
		*keylen = sizeof(pwd) - 1;
	}
}

/* parse a copy in an exact-size heap buffer, so ASan sees any overread */
static int parse_heap(
		struct kice_stun_msg *m, uint8_t **copy, const uint8_t *p, size_t len)
{
	*copy = malloc(len ? len : 1);
	assert_non_null(*copy);
	if(len)
		memcpy(*copy, p, len);
	return kice_stun_parse(m, *copy, len);
}

static void assert_slice(struct kice_slice s, const char *p, size_t len)
{
	assert_int_equal(s.len, len);
	assert_memory_equal(s.p, p, len);
}

static void assert_addr(
		const struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
	char txt[INET6_ADDRSTRLEN];

	if(ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, txt, sizeof(txt)));
		assert_int_equal(ntohs(sin->sin_port), port);
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
		assert_int_equal(ss->ss_family, AF_INET6);
		assert_non_null(
				inet_ntop(AF_INET6, &sin6->sin6_addr, txt, sizeof(txt)));
		assert_int_equal(ntohs(sin6->sin6_port), port);
	}
	assert_string_equal(txt, ip);
}

static void sa_from(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
	memset(ss, 0, sizeof(*ss));
	if(strchr(ip, ':') == NULL) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
	}
}

/* Append a raw attribute after whatever the writer holds, ignoring the
 * writer's ordering rules: builds what a non-conforming sender sends. */
static void append_raw(
		struct kice_stun_wr *wr, uint16_t type, const void *v, size_t len)
{
	bool mi = wr->mi, fp = wr->fp;

	wr->mi = wr->fp = false;
	assert_int_equal(kice_stun_wr_attr(wr, type, v, len), 0);
	wr->mi = mi;
	wr->fp = fp;
}

static void expect_bad(const uint8_t *p, size_t len, size_t why_off)
{
	struct kice_stun_msg m;
	uint8_t *copy;

	assert_int_equal(parse_heap(&m, &copy, p, len), -EBADMSG);
	assert_non_null(m.why);
	assert_int_equal(m.why_off, why_off);
	free(copy);
}

/* A Binding request carrying one attribute: returns its length */
static size_t one_attr(
		uint8_t *buf, size_t cap, uint16_t type, const void *v, size_t len)
{
	struct kice_stun_wr wr;
	int n;

	kice_stun_wr_init(&wr, buf, cap, KICE_STUN_BINDING_REQUEST, tid_5769);
	kice_stun_wr_attr(&wr, type, v, len);
	n = kice_stun_wr_finish(&wr);
	assert_true(n > 0);
	return (size_t)n;
}

/* ---- RFC 5769 vectors ---- */

static void test_rfc5769_request(void **state)
{
	struct kice_stun_msg m;
	uint8_t *buf;

	(void)state;
	assert_int_equal(parse_heap(&m, &buf, req, sizeof(req)), 0);
	assert_int_equal(m.type, KICE_STUN_BINDING_REQUEST);
	assert_int_equal(kice_stun_class(m.type), KICE_STUN_CLASS_REQUEST);
	assert_int_equal(kice_stun_method(m.type), KICE_STUN_METHOD_BINDING);
	assert_int_equal(m.len, sizeof(req));
	assert_memory_equal(m.tid, tid_5769, KICE_STUN_TID_LEN);
	assert_true(m.has_software);
	assert_slice(m.software, S("STUN test client"));
	assert_true(m.has_username);
	assert_slice(m.username, S("evtj:h6vY"));
	assert_true(m.has_priority);
	assert_int_equal(m.priority, 0x6e0001ff);
	assert_true(m.has_controlled);
	assert_true(m.controlled == 0x932ff9b151263b36ull);
	assert_false(m.has_controlling);
	assert_false(m.use_candidate);
	assert_false(m.has_xor_mapped);
	assert_false(m.has_realm);
	assert_int_equal(m.n_unknown, 0);
	assert_true(m.has_mi);
	assert_int_equal(m.mi_off, 76);
	assert_true(m.has_fp);
	assert_int_equal(m.fp_off, 100);

	assert_int_equal(kice_stun_check_integrity(&m, PWD), 0);
	assert_int_equal(kice_stun_check_integrity(
							 &m, (const uint8_t *)"VOkJxbRl1RmTxUk/WvJxBu", 22),
			-EACCES);
	assert_int_equal(kice_stun_check_fingerprint(&m), 0);
	assert_true(kice_is_stun(buf, sizeof(req)));
	free(buf);
}

static void test_rfc5769_ipv4_response(void **state)
{
	struct kice_stun_msg m;
	uint8_t *buf;

	(void)state;
	assert_int_equal(parse_heap(&m, &buf, respv4, sizeof(respv4)), 0);
	assert_int_equal(m.type, KICE_STUN_BINDING_SUCCESS);
	assert_int_equal(kice_stun_class(m.type), KICE_STUN_CLASS_SUCCESS);
	assert_memory_equal(m.tid, tid_5769, KICE_STUN_TID_LEN);
	assert_true(m.has_software);
	assert_slice(m.software, S("test vector"));
	assert_true(m.has_xor_mapped);
	assert_addr(&m.xor_mapped, "192.0.2.1", 32853);
	assert_false(m.has_mapped);
	assert_false(m.has_username);
	assert_false(m.has_priority);
	assert_true(m.has_mi);
	assert_int_equal(m.mi_off, 48);
	assert_true(m.has_fp);
	assert_int_equal(m.fp_off, 72);

	assert_int_equal(kice_stun_check_integrity(&m, PWD), 0);
	assert_int_equal(kice_stun_check_integrity(&m, (const uint8_t *)"wrong", 5),
			-EACCES);
	assert_int_equal(kice_stun_check_fingerprint(&m), 0);
	free(buf);
}

static void test_rfc5769_ipv6_response(void **state)
{
	struct kice_stun_msg m;
	uint8_t *buf;

	(void)state;
	assert_int_equal(parse_heap(&m, &buf, respv6, sizeof(respv6)), 0);
	assert_int_equal(m.type, KICE_STUN_BINDING_SUCCESS);
	assert_memory_equal(m.tid, tid_5769, KICE_STUN_TID_LEN);
	assert_slice(m.software, S("test vector"));
	assert_true(m.has_xor_mapped);
	assert_addr(&m.xor_mapped, "2001:db8:1234:5678:11:2233:4455:6677", 32853);
	assert_true(m.has_mi);
	assert_int_equal(m.mi_off, 60);
	assert_true(m.has_fp);
	assert_int_equal(m.fp_off, 84);

	assert_int_equal(kice_stun_check_integrity(&m, PWD), 0);
	assert_int_equal(
			kice_stun_check_integrity(&m, (const uint8_t *)pwd, 21), -EACCES);
	assert_int_equal(kice_stun_check_fingerprint(&m), 0);
	free(buf);
}

static void test_rfc5769_long_term(void **state)
{
	static const uint8_t tid[] = {0x78, 0xad, 0x34, 0x33, 0xc6, 0xad, 0x72,
			0xc0, 0x29, 0xda, 0x41, 0x2e};
	uint8_t key[KICE_STUN_LT_KEY_LEN];
	struct kice_stun_msg m;
	uint8_t *buf;

	(void)state;
	assert_int_equal(parse_heap(&m, &buf, reqltc, sizeof(reqltc)), 0);
	assert_int_equal(m.type, KICE_STUN_BINDING_REQUEST);
	assert_memory_equal(m.tid, tid, KICE_STUN_TID_LEN);
	assert_true(m.has_username);
	assert_slice(m.username, S(ltc_user));
	assert_true(m.has_nonce);
	assert_slice(m.nonce, S(ltc_nonce));
	assert_true(m.has_realm);
	assert_slice(m.realm, S(ltc_realm));
	assert_false(m.has_software);
	assert_int_equal(m.n_unknown, 0);
	assert_true(m.has_mi);
	assert_int_equal(m.mi_off, 92);
	assert_false(m.has_fp);

	ltc_key(key);
	assert_int_equal(kice_stun_check_integrity(&m, key, sizeof(key)), 0);
	/* the short-term password of §2.1 is the wrong key here */
	assert_int_equal(kice_stun_check_integrity(&m, PWD), -EACCES);
	key[15] ^= 1;
	assert_int_equal(kice_stun_check_integrity(&m, key, sizeof(key)), -EACCES);
	assert_int_equal(kice_stun_check_fingerprint(&m), -ENOENT);
	free(buf);
}

static void test_long_term_key(void **state)
{
	/* RFC 5389 §15.4: MD5("user:realm:pass") */
	static const uint8_t expect[] = {0x84, 0x93, 0xfb, 0xc5, 0x3b, 0xa5, 0x82,
			0xfb, 0x4c, 0x04, 0x4c, 0x45, 0x6b, 0xdc, 0x40, 0xeb};
	uint8_t key[KICE_STUN_LT_KEY_LEN], key2[KICE_STUN_LT_KEY_LEN];

	(void)state;
	assert_int_equal(
			kice_stun_long_term_key(key, S("user"), S("realm"), S("pass")), 0);
	assert_memory_equal(key, expect, sizeof(key));

	/* SASLprep maps U+00AD (RFC 3454 B.1) to nothing and U+00A0 (C.1.2)
	 * to a space */
	ltc_key(key);
	assert_int_equal(kice_stun_long_term_key(key2, S(ltc_user), S(ltc_realm),
							 S("The\xc2\xadMatrIX")),
			0);
	assert_memory_equal(key, key2, sizeof(key));
	assert_int_equal(
			kice_stun_long_term_key(key, S("user"), S("realm"), S("pa ss")), 0);
	assert_int_equal(kice_stun_long_term_key(
							 key2, S("user"), S("realm"), S("pa\xc2\xa0ss")),
			0);
	assert_memory_equal(key, key2, sizeof(key));

	/* U+00AA and U+2168 need NFKC: refused rather than mis-hashed */
	assert_int_equal(kice_stun_long_term_key(
							 key, S(ltc_user), S(ltc_realm), S(ltc_pass_raw)),
			-EINVAL);
	/* RFC 4013 §2.3 prohibits ASCII controls (C.2.1) */
	assert_int_equal(
			kice_stun_long_term_key(key, S("user"), S("realm"), S("pa\tss")),
			-EINVAL);
	/* invalid UTF-8: truncated, overlong, surrogate */
	assert_int_equal(
			kice_stun_long_term_key(key, S("user"), S("realm"), S("pa\xc2")),
			-EINVAL);
	assert_int_equal(
			kice_stun_long_term_key(key, S("user"), S("realm"), S("\xc0\xa0")),
			-EINVAL);
	assert_int_equal(kice_stun_long_term_key(
							 key, S("user"), S("realm"), S("\xed\xa0\x80")),
			-EINVAL);
	assert_int_equal(
			kice_stun_long_term_key(NULL, S("user"), S("realm"), S("pass")),
			-EINVAL);
	assert_int_equal(
			kice_stun_long_term_key(key, NULL, 4, S("realm"), S("pass")),
			-EINVAL);
}

/* A flipped bit anywhere makes parsing or one of the checks fail */
static void test_bit_flips(void **state)
{
	uint8_t key[KICE_STUN_LT_KEY_LEN + 32], *buf;
	struct kice_stun_msg m;
	size_t i, off, keylen;
	int bit, mi, fp;

	(void)state;
	for(i = 0; i < NVEC; i++) {
		vec_key(i, key, &keylen);
		for(off = 0; off < vecs[i].len; off++) {
			for(bit = 0; bit < 8; bit++) {
				buf = malloc(vecs[i].len);
				assert_non_null(buf);
				memcpy(buf, vecs[i].p, vecs[i].len);
				buf[off] ^= (uint8_t)(1u << bit);
				if(kice_stun_parse(&m, buf, vecs[i].len) == 0) {
					mi = kice_stun_check_integrity(&m, key, keylen);
					fp = kice_stun_check_fingerprint(&m);
					if(mi == 0 && (fp == 0 || !vecs[i].fp))
						fail_msg("%s: flip at byte %zu bit %d undetected",
								vecs[i].name, off, bit);
				}
				free(buf);
			}
		}
	}
}

/* Every proper prefix is rejected, and nothing reads past it */
static void test_truncation_sweep(void **state)
{
	struct kice_stun_msg m;
	uint8_t *buf;
	size_t i, n;

	(void)state;
	for(i = 0; i < NVEC; i++) {
		for(n = 0; n < vecs[i].len; n++) {
			assert_int_equal(parse_heap(&m, &buf, vecs[i].p, n), -EBADMSG);
			assert_non_null(m.why);
			assert_false(kice_is_stun(buf, n));
			free(buf);
		}
	}
}

static void test_is_stun(void **state)
{
	uint8_t buf[sizeof(req)];
	size_t i;

	(void)state;
	for(i = 0; i < NVEC; i++)
		assert_true(kice_is_stun(vecs[i].p, vecs[i].len));
	assert_false(kice_is_stun(NULL, 20));

	/* RFC 7983: 20..63 DTLS, 128..191 RTP/RTCP */
	memcpy(buf, req, sizeof(req));
	buf[0] = 0x16;
	assert_false(kice_is_stun(buf, sizeof(buf)));
	buf[0] = 0x80;
	assert_false(kice_is_stun(buf, sizeof(buf)));
	/* first byte 4 has the top two bits clear: STUN to RFC 8489, but not
	 * in RFC 7983's STUN range */
	buf[0] = 0x04;
	assert_false(kice_is_stun(buf, sizeof(buf)));
	buf[0] = 0x03;
	assert_true(kice_is_stun(buf, sizeof(buf)));

	memcpy(buf, req, sizeof(req));
	buf[7] ^= 1;
	assert_false(kice_is_stun(buf, sizeof(buf)));
	memcpy(buf, req, sizeof(req));
	buf[3] ^= 1;
	assert_false(kice_is_stun(buf, sizeof(buf)));
	assert_false(kice_is_stun(req, sizeof(req) - 4));
}

/* ---- writer ---- */

static void test_writer_roundtrip(void **state)
{
	static const char ufrags[] = "RemoteUfrag:LocalUfrag";
	uint8_t tid[KICE_STUN_TID_LEN], buf[256];
	struct kice_stun_wr wr;
	struct kice_stun_msg m;
	int n;

	(void)state;
	assert_int_equal(kice_stun_tid_random(tid), 0);
	kice_stun_wr_init(&wr, buf, sizeof(buf), KICE_STUN_BINDING_REQUEST, tid);
	assert_int_equal(kice_stun_wr_username(&wr, S(ufrags)), 0);
	assert_int_equal(kice_stun_wr_priority(&wr, 0x6e7f1eff), 0);
	assert_int_equal(
			kice_stun_wr_ice_controlling(&wr, 0x0123456789abcdefull), 0);
	assert_int_equal(kice_stun_wr_use_candidate(&wr), 0);
	assert_int_equal(kice_stun_wr_integrity(&wr, PWD), 0);
	assert_int_equal(kice_stun_wr_fingerprint(&wr), 0);
	n = kice_stun_wr_finish(&wr);
	/* 20 + USERNAME 4+24 + PRIORITY 8 + ICE-CONTROLLING 12
	 * + USE-CANDIDATE 4 + MI 24 + FP 8 */
	assert_int_equal(n, 104);
	assert_true(kice_is_stun(buf, (size_t)n));

	assert_int_equal(kice_stun_parse(&m, buf, (size_t)n), 0);
	assert_int_equal(m.type, KICE_STUN_BINDING_REQUEST);
	assert_memory_equal(m.tid, tid, sizeof(tid));
	assert_slice(m.username, S(ufrags));
	assert_true(m.has_priority);
	assert_int_equal(m.priority, 0x6e7f1eff);
	assert_true(m.has_controlling);
	assert_true(m.controlling == 0x0123456789abcdefull);
	assert_false(m.has_controlled);
	assert_true(m.use_candidate);
	assert_int_equal(kice_stun_check_integrity(&m, PWD), 0);
	assert_int_equal(
			kice_stun_check_integrity(&m, (const uint8_t *)"x", 1), -EACCES);
	assert_int_equal(kice_stun_check_fingerprint(&m), 0);
	/* RFC 8489 §14: padding is zero on sending */
	assert_int_equal(buf[20 + 4 + 22], 0);
	assert_int_equal(buf[20 + 4 + 23], 0);
}

/* The RFC 5769 §2.1-2.3 senders padded with spaces (RFC 5389 allowed any
 * value); wr.pad reproduces them byte for byte. */
static void test_writer_reproduces_request(void **state)
{
	uint8_t buf[sizeof(req)];
	struct kice_stun_wr wr;

	(void)state;
	kice_stun_wr_init(
			&wr, buf, sizeof(buf), KICE_STUN_BINDING_REQUEST, tid_5769);
	wr.pad = ' ';
	kice_stun_wr_software(&wr, S("STUN test client"));
	kice_stun_wr_priority(&wr, 0x6e0001ff);
	kice_stun_wr_ice_controlled(&wr, 0x932ff9b151263b36ull);
	kice_stun_wr_username(&wr, S("evtj:h6vY"));
	kice_stun_wr_integrity(&wr, PWD);
	kice_stun_wr_fingerprint(&wr);
	assert_int_equal(kice_stun_wr_finish(&wr), sizeof(req));
	assert_memory_equal(buf, req, sizeof(req));
}

static void test_writer_reproduces_ipv4_response(void **state)
{
	struct sockaddr_storage ss;
	uint8_t buf[sizeof(respv4)];
	struct kice_stun_wr wr;

	(void)state;
	sa_from(&ss, "192.0.2.1", 32853);
	kice_stun_wr_init(
			&wr, buf, sizeof(buf), KICE_STUN_BINDING_SUCCESS, tid_5769);
	wr.pad = ' ';
	kice_stun_wr_software(&wr, S("test vector"));
	kice_stun_wr_xor_mapped(&wr, (const struct sockaddr *)&ss);
	kice_stun_wr_integrity(&wr, PWD);
	kice_stun_wr_fingerprint(&wr);
	assert_int_equal(kice_stun_wr_finish(&wr), sizeof(respv4));
	assert_memory_equal(buf, respv4, sizeof(respv4));
}

static void test_writer_reproduces_ipv6_response(void **state)
{
	struct sockaddr_storage ss;
	uint8_t buf[sizeof(respv6)];
	struct kice_stun_wr wr;

	(void)state;
	sa_from(&ss, "2001:db8:1234:5678:11:2233:4455:6677", 32853);
	kice_stun_wr_init(
			&wr, buf, sizeof(buf), KICE_STUN_BINDING_SUCCESS, tid_5769);
	wr.pad = ' ';
	kice_stun_wr_software(&wr, S("test vector"));
	kice_stun_wr_xor_mapped(&wr, (const struct sockaddr *)&ss);
	kice_stun_wr_integrity(&wr, PWD);
	kice_stun_wr_fingerprint(&wr);
	assert_int_equal(kice_stun_wr_finish(&wr), sizeof(respv6));
	assert_memory_equal(buf, respv6, sizeof(respv6));
}

static void test_writer_reproduces_long_term(void **state)
{
	uint8_t buf[sizeof(reqltc)], key[KICE_STUN_LT_KEY_LEN];
	struct kice_stun_wr wr;

	(void)state;
	ltc_key(key);
	kice_stun_wr_init(
			&wr, buf, sizeof(buf), KICE_STUN_BINDING_REQUEST, reqltc + 8);
	kice_stun_wr_username(&wr, S(ltc_user));
	kice_stun_wr_attr(&wr, KICE_STUN_ATTR_NONCE, S(ltc_nonce));
	kice_stun_wr_attr(&wr, KICE_STUN_ATTR_REALM, S(ltc_realm));
	kice_stun_wr_integrity(&wr, key, sizeof(key));
	assert_int_equal(kice_stun_wr_finish(&wr), sizeof(reqltc));
	assert_memory_equal(buf, reqltc, sizeof(reqltc));
}

/* RFC 8489 §6.3.1: 420 listing the unknown comprehension-required types */
static void test_writer_error_response(void **state)
{
	static const uint16_t unk[] = {0x0030, 0x7fff, 0x0003};
	struct kice_stun_msg m;
	struct kice_stun_wr wr;
	uint8_t buf[128];
	int n;

	(void)state;
	kice_stun_wr_init(&wr, buf, sizeof(buf), KICE_STUN_BINDING_ERROR, tid_5769);
	kice_stun_wr_error_code(
			&wr, KICE_STUN_ERR_UNKNOWN_ATTRIBUTE, S("Unknown Attribute"));
	kice_stun_wr_unknown_attrs(&wr, unk, 3);
	kice_stun_wr_software(&wr, S("kamailio-ice"));
	kice_stun_wr_integrity(&wr, PWD);
	kice_stun_wr_fingerprint(&wr);
	n = kice_stun_wr_finish(&wr);
	assert_true(n > 0);

	assert_int_equal(kice_stun_parse(&m, buf, (size_t)n), 0);
	assert_int_equal(kice_stun_class(m.type), KICE_STUN_CLASS_ERROR);
	assert_true(m.has_error);
	assert_int_equal(m.error_code, 420);
	assert_slice(m.error_reason, S("Unknown Attribute"));
	assert_true(m.has_unknown_attrs);
	assert_int_equal(m.n_unknown_attrs, 3);
	assert_int_equal(kice_stun_unknown_attr(&m, 0), 0x0030);
	assert_int_equal(kice_stun_unknown_attr(&m, 1), 0x7fff);
	assert_int_equal(kice_stun_unknown_attr(&m, 2), 0x0003);
	assert_int_equal(m.n_unknown, 0);
	assert_int_equal(kice_stun_check_integrity(&m, PWD), 0);
	assert_int_equal(kice_stun_check_fingerprint(&m), 0);

	/* 487 Role Conflict, empty reason; 699 is the top of the range */
	kice_stun_wr_init(&wr, buf, sizeof(buf), KICE_STUN_BINDING_ERROR, tid_5769);
	kice_stun_wr_error_code(&wr, KICE_STUN_ERR_ROLE_CONFLICT, NULL, 0);
	n = kice_stun_wr_finish(&wr);
	assert_int_equal(n, 28);
	assert_int_equal(kice_stun_parse(&m, buf, (size_t)n), 0);
	assert_int_equal(m.error_code, 487);
	assert_int_equal(m.error_reason.len, 0);
	kice_stun_wr_init(&wr, buf, sizeof(buf), KICE_STUN_BINDING_ERROR, tid_5769);
	kice_stun_wr_error_code(&wr, 699, S("x"));
	n = kice_stun_wr_finish(&wr);
	assert_int_equal(kice_stun_parse(&m, buf, (size_t)n), 0);
	assert_int_equal(m.error_code, 699);
}

static void test_writer_mapped_address(void **state)
{
	struct sockaddr_storage v4, v6;
	struct kice_stun_msg m;
	struct kice_stun_wr wr;
	uint8_t buf[128];
	int n;

	(void)state;
	sa_from(&v4, "203.0.113.7", 1);
	sa_from(&v6, "::ffff:198.51.100.9", 65535);
	kice_stun_wr_init(
			&wr, buf, sizeof(buf), KICE_STUN_BINDING_SUCCESS, tid_5769);
	kice_stun_wr_mapped(&wr, (const struct sockaddr *)&v4);
	kice_stun_wr_xor_mapped(&wr, (const struct sockaddr *)&v6);
	n = kice_stun_wr_finish(&wr);
	assert_int_equal(n, 20 + 12 + 24);
	assert_int_equal(kice_stun_parse(&m, buf, (size_t)n), 0);
	assert_true(m.has_mapped);
	assert_addr(&m.mapped, "203.0.113.7", 1);
	/* MAPPED-ADDRESS is sent in the clear */
	assert_memory_equal(buf + 28, "\xcb\x00\x71\x07", 4);
	assert_true(m.has_xor_mapped);
	assert_addr(&m.xor_mapped, "::ffff:198.51.100.9", 65535);
}

/* Every capacity short of the message fails with -ENOSPC and no write
 * lands outside the buffer (exact-size heap buffer under ASan). */
static void test_writer_enospc_sweep(void **state)
{
	struct kice_stun_wr wr;
	uint8_t *buf;
	size_t cap;

	(void)state;
	for(cap = 0; cap <= sizeof(req); cap++) {
		buf = malloc(cap ? cap : 1);
		assert_non_null(buf);
		kice_stun_wr_init(&wr, buf, cap, KICE_STUN_BINDING_REQUEST, tid_5769);
		wr.pad = ' ';
		kice_stun_wr_software(&wr, S("STUN test client"));
		kice_stun_wr_priority(&wr, 0x6e0001ff);
		kice_stun_wr_ice_controlled(&wr, 0x932ff9b151263b36ull);
		kice_stun_wr_username(&wr, S("evtj:h6vY"));
		kice_stun_wr_integrity(&wr, PWD);
		kice_stun_wr_fingerprint(&wr);
		if(cap < sizeof(req)) {
			assert_int_equal(kice_stun_wr_finish(&wr), -ENOSPC);
		} else {
			assert_int_equal(kice_stun_wr_finish(&wr), sizeof(req));
			assert_memory_equal(buf, req, sizeof(req));
		}
		free(buf);
	}
}

/* The 16-bit length field bounds a message to 20 + 0xfffc bytes */
static void test_writer_length_field_limit(void **state)
{
	size_t cap = 20 + 0x10000 + 64;
	struct kice_stun_wr wr;
	uint8_t *buf, *val;

	(void)state;
	buf = malloc(cap);
	val = calloc(1, 0x10000);
	assert_non_null(buf);
	assert_non_null(val);
	kice_stun_wr_init(&wr, buf, cap, KICE_STUN_BINDING_REQUEST, tid_5769);
	assert_int_equal(kice_stun_wr_attr(&wr, 0x8fff, val, 0xfff8), 0);
	assert_int_equal(kice_stun_wr_finish(&wr), 20 + 0xfffc);
	assert_int_equal(kice_stun_wr_use_candidate(&wr), -ENOSPC);

	kice_stun_wr_init(&wr, buf, cap, KICE_STUN_BINDING_REQUEST, tid_5769);
	assert_int_equal(kice_stun_wr_attr(&wr, 0x8fff, val, 0xfffd), -ENOSPC);
	kice_stun_wr_init(&wr, buf, cap, KICE_STUN_BINDING_REQUEST, tid_5769);
	assert_int_equal(kice_stun_wr_attr(&wr, 0x8fff, val, 0x10000), -ENOSPC);
	free(val);
	free(buf);
}

static void test_writer_order(void **state)
{
	struct kice_stun_wr wr;
	uint8_t buf[128];

	(void)state;
	/* nothing but FINGERPRINT after MESSAGE-INTEGRITY */
	kice_stun_wr_init(
			&wr, buf, sizeof(buf), KICE_STUN_BINDING_REQUEST, tid_5769);
	kice_stun_wr_integrity(&wr, PWD);
	assert_int_equal(kice_stun_wr_priority(&wr, 1), -EINVAL);
	assert_int_equal(kice_stun_wr_finish(&wr), -EINVAL);

	kice_stun_wr_init(
			&wr, buf, sizeof(buf), KICE_STUN_BINDING_REQUEST, tid_5769);
	kice_stun_wr_integrity(&wr, PWD);
	assert_int_equal(kice_stun_wr_integrity(&wr, PWD), -EINVAL);

	/* nothing after FINGERPRINT */
	kice_stun_wr_init(
			&wr, buf, sizeof(buf), KICE_STUN_BINDING_REQUEST, tid_5769);
	kice_stun_wr_fingerprint(&wr);
	assert_int_equal(kice_stun_wr_integrity(&wr, PWD), -EINVAL);
	kice_stun_wr_init(
			&wr, buf, sizeof(buf), KICE_STUN_BINDING_REQUEST, tid_5769);
	kice_stun_wr_fingerprint(&wr);
	assert_int_equal(kice_stun_wr_fingerprint(&wr), -EINVAL);

	/* the first error sticks */
	kice_stun_wr_init(&wr, buf, 24, KICE_STUN_BINDING_REQUEST, tid_5769);
	assert_int_equal(kice_stun_wr_priority(&wr, 1), -ENOSPC);
	assert_int_equal(kice_stun_wr_error_code(&wr, 1, NULL, 0), -ENOSPC);
	assert_int_equal(kice_stun_wr_finish(&wr), -ENOSPC);
}

static void test_writer_einval(void **state)
{
	struct sockaddr_storage ss;
	struct kice_stun_wr wr;
	uint8_t buf[128];

	(void)state;
	kice_stun_wr_init(&wr, buf, sizeof(buf), 0x4001, tid_5769);
	assert_int_equal(kice_stun_wr_finish(&wr), -EINVAL);
	kice_stun_wr_init(&wr, buf, sizeof(buf), KICE_STUN_BINDING_REQUEST, NULL);
	assert_int_equal(kice_stun_wr_finish(&wr), -EINVAL);
	kice_stun_wr_init(
			&wr, NULL, sizeof(buf), KICE_STUN_BINDING_REQUEST, tid_5769);
	assert_int_equal(kice_stun_wr_finish(&wr), -EINVAL);
	kice_stun_wr_init(&wr, buf, 19, KICE_STUN_BINDING_REQUEST, tid_5769);
	assert_int_equal(kice_stun_wr_finish(&wr), -ENOSPC);

	kice_stun_wr_init(&wr, buf, sizeof(buf), KICE_STUN_BINDING_ERROR, tid_5769);
	assert_int_equal(kice_stun_wr_error_code(&wr, 299, NULL, 0), -EINVAL);
	kice_stun_wr_init(&wr, buf, sizeof(buf), KICE_STUN_BINDING_ERROR, tid_5769);
	assert_int_equal(kice_stun_wr_error_code(&wr, 700, NULL, 0), -EINVAL);
	kice_stun_wr_init(&wr, buf, sizeof(buf), KICE_STUN_BINDING_ERROR, tid_5769);
	assert_int_equal(kice_stun_wr_unknown_attrs(&wr, NULL, 1), -EINVAL);

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	kice_stun_wr_init(
			&wr, buf, sizeof(buf), KICE_STUN_BINDING_SUCCESS, tid_5769);
	assert_int_equal(kice_stun_wr_xor_mapped(&wr, (const struct sockaddr *)&ss),
			-EINVAL);
	kice_stun_wr_init(
			&wr, buf, sizeof(buf), KICE_STUN_BINDING_SUCCESS, tid_5769);
	assert_int_equal(kice_stun_wr_mapped(&wr, NULL), -EINVAL);
	kice_stun_wr_init(
			&wr, buf, sizeof(buf), KICE_STUN_BINDING_SUCCESS, tid_5769);
	assert_int_equal(kice_stun_wr_attr(&wr, 0x8001, NULL, 3), -EINVAL);
	kice_stun_wr_init(
			&wr, buf, sizeof(buf), KICE_STUN_BINDING_SUCCESS, tid_5769);
	assert_int_equal(kice_stun_wr_integrity(&wr, NULL, 0), -EINVAL);
	kice_stun_wr_init(
			&wr, buf, sizeof(buf), KICE_STUN_BINDING_SUCCESS, tid_5769);
	assert_int_equal(
			kice_stun_wr_integrity(&wr, (const uint8_t *)"k", 0), -EINVAL);

	assert_int_equal(kice_stun_wr_attr(NULL, 1, NULL, 0), -EINVAL);
	assert_int_equal(kice_stun_wr_finish(NULL), -EINVAL);
	assert_int_equal(kice_stun_tid_random(NULL), -EINVAL);
}

/* ---- malformed input: one case per reject branch ---- */

static void test_reject_short_header(void **state)
{
	(void)state;
	expect_bad(req, 0, 0);
	expect_bad(req, 19, 0);
}

static void test_reject_first_bits(void **state)
{
	uint8_t buf[sizeof(req)];

	(void)state;
	memcpy(buf, req, sizeof(req));
	buf[0] |= 0x40;
	expect_bad(buf, sizeof(buf), 0);
	buf[0] = 0x80;
	expect_bad(buf, sizeof(buf), 0);
}

static void test_reject_bad_cookie(void **state)
{
	uint8_t buf[sizeof(req)];

	(void)state;
	memcpy(buf, req, sizeof(req));
	buf[6] = 0xa5;
	expect_bad(buf, sizeof(buf), 4);
}

static void test_reject_length_not_multiple_of_4(void **state)
{
	uint8_t buf[sizeof(req) + 1];

	(void)state;
	memcpy(buf, req, sizeof(req));
	buf[sizeof(req)] = 0;
	buf[3] = 0x59;
	expect_bad(buf, sizeof(buf), 2);
}

static void test_reject_length_mismatch(void **state)
{
	uint8_t buf[sizeof(req) + 4];

	(void)state;
	memset(buf, 0, sizeof(buf));
	memcpy(buf, req, sizeof(req));
	/* trailing bytes after the message */
	expect_bad(buf, sizeof(buf), 2);
	/* header claims more than the datagram holds */
	buf[3] = 0x5c;
	expect_bad(buf, sizeof(req), 2);
}

static void test_reject_attr_overrun(void **state)
{
	uint8_t buf[64];
	size_t n;

	(void)state;
	n = one_attr(buf, sizeof(buf), KICE_STUN_ATTR_USERNAME, "abcd", 4);
	assert_int_equal(n, 28);
	buf[23] = 5; /* value + padding now needs 8 bytes, 4 remain */
	expect_bad(buf, n, 20);
	buf[22] = 0xff;
	buf[23] = 0xff;
	expect_bad(buf, n, 20);
}

static void test_reject_fingerprint_not_last(void **state)
{
	struct kice_stun_wr wr;
	uint8_t buf[64];
	int n;

	(void)state;
	kice_stun_wr_init(
			&wr, buf, sizeof(buf), KICE_STUN_BINDING_REQUEST, tid_5769);
	kice_stun_wr_fingerprint(&wr);
	append_raw(&wr, KICE_STUN_ATTR_SOFTWARE, "x", 1);
	n = kice_stun_wr_finish(&wr);
	assert_int_equal(n, 36);
	expect_bad(buf, (size_t)n, 28);
}

static void test_reject_bad_lengths(void **state)
{
	static const uint8_t zeros[40];
	static const struct
	{
		uint16_t type;
		size_t len;
	} cases[] = {
			{KICE_STUN_ATTR_MESSAGE_INTEGRITY, 19},
			{KICE_STUN_ATTR_MESSAGE_INTEGRITY, 21},
			{KICE_STUN_ATTR_MESSAGE_INTEGRITY_SHA256, 12},
			{KICE_STUN_ATTR_MESSAGE_INTEGRITY_SHA256, 36},
			{KICE_STUN_ATTR_MESSAGE_INTEGRITY_SHA256, 18},
			{KICE_STUN_ATTR_FINGERPRINT, 3},
			{KICE_STUN_ATTR_FINGERPRINT, 8},
			{KICE_STUN_ATTR_PRIORITY, 3},
			{KICE_STUN_ATTR_PRIORITY, 8},
			{KICE_STUN_ATTR_USE_CANDIDATE, 1},
			{KICE_STUN_ATTR_ICE_CONTROLLING, 4},
			{KICE_STUN_ATTR_ICE_CONTROLLED, 12},
			{KICE_STUN_ATTR_ERROR_CODE, 3},
			{KICE_STUN_ATTR_UNKNOWN_ATTRIBUTES, 3},
			{KICE_STUN_ATTR_XOR_MAPPED_ADDRESS, 3},
			{KICE_STUN_ATTR_MAPPED_ADDRESS, 0},
	};
	uint8_t buf[96];
	size_t i, n;

	(void)state;
	for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = one_attr(buf, sizeof(buf), cases[i].type, zeros, cases[i].len);
		expect_bad(buf, n, 20);
	}
}

static void test_reject_bad_address(void **state)
{
	/* family 1 with a 16-byte address, family 2 with 4 bytes, family 3 */
	static const uint8_t v4long[20] = {0, 1, 0x12, 0x34};
	static const uint8_t v6short[8] = {0, 2, 0x12, 0x34};
	static const uint8_t fam3[8] = {0, 3, 0x12, 0x34};
	uint8_t buf[64];
	size_t n;

	(void)state;
	n = one_attr(buf, sizeof(buf), KICE_STUN_ATTR_XOR_MAPPED_ADDRESS, v4long,
			sizeof(v4long));
	expect_bad(buf, n, 20);
	n = one_attr(buf, sizeof(buf), KICE_STUN_ATTR_XOR_MAPPED_ADDRESS, v6short,
			sizeof(v6short));
	expect_bad(buf, n, 20);
	n = one_attr(buf, sizeof(buf), KICE_STUN_ATTR_MAPPED_ADDRESS, fam3,
			sizeof(fam3));
	expect_bad(buf, n, 20);
}

static void test_reject_error_code_range(void **state)
{
	/* class 2 (200s), class 7, number 100 */
	static const uint8_t c2[] = {0, 0, 2, 0}, c7[] = {0, 0, 7, 0},
						 n100[] = {0, 0, 4, 100};
	/* reserved bits set: ignored (§14.8 "Receivers MUST ignore") */
	static const uint8_t rsvd[] = {0xff, 0xff, 0xfc, 87, 'R', 'C'};
	struct kice_stun_msg m;
	uint8_t buf[64];
	size_t n;

	(void)state;
	n = one_attr(buf, sizeof(buf), KICE_STUN_ATTR_ERROR_CODE, c2, 4);
	expect_bad(buf, n, 20);
	n = one_attr(buf, sizeof(buf), KICE_STUN_ATTR_ERROR_CODE, c7, 4);
	expect_bad(buf, n, 20);
	n = one_attr(buf, sizeof(buf), KICE_STUN_ATTR_ERROR_CODE, n100, 4);
	expect_bad(buf, n, 20);
	n = one_attr(buf, sizeof(buf), KICE_STUN_ATTR_ERROR_CODE, rsvd, 6);
	assert_int_equal(kice_stun_parse(&m, buf, n), 0);
	assert_int_equal(m.error_code, 487);
	assert_slice(m.error_reason, S("RC"));
}

/* ---- attribute semantics ---- */

static void test_unknown_comprehension_required(void **state)
{
	struct kice_stun_msg m;
	struct kice_stun_wr wr;
	uint8_t buf[128];
	int n;

	(void)state;
	kice_stun_wr_init(
			&wr, buf, sizeof(buf), KICE_STUN_BINDING_REQUEST, tid_5769);
	kice_stun_wr_attr(&wr, 0x0030, "x", 1);
	kice_stun_wr_attr(&wr, 0x8030, "y", 1); /* optional: ignored */
	kice_stun_wr_attr(&wr, 0x0030, "z", 1); /* listed once */
	kice_stun_wr_attr(&wr, 0x0003, "\0\0\0\0", 4);
	kice_stun_wr_attr(&wr, 0xc057, "\0\0\0\0", 4);
	kice_stun_wr_integrity(&wr, PWD);
	append_raw(&wr, 0x0031, NULL, 0); /* after MI: ignored */
	kice_stun_wr_fingerprint(&wr);
	n = kice_stun_wr_finish(&wr);
	assert_true(n > 0);

	assert_int_equal(kice_stun_parse(&m, buf, (size_t)n), 0);
	assert_int_equal(m.n_unknown, 2);
	assert_int_equal(m.unknown[0], 0x0030);
	assert_int_equal(m.unknown[1], 0x0003);
	assert_int_equal(kice_stun_check_integrity(&m, PWD), 0);
	assert_int_equal(kice_stun_check_fingerprint(&m), 0);
}

static void test_unknown_capacity(void **state)
{
	struct kice_stun_msg m;
	struct kice_stun_wr wr;
	uint8_t buf[256];
	uint16_t t;
	int n;

	(void)state;
	kice_stun_wr_init(
			&wr, buf, sizeof(buf), KICE_STUN_BINDING_REQUEST, tid_5769);
	for(t = 0; t < KICE_STUN_MAX_UNKNOWN; t++)
		kice_stun_wr_attr(&wr, (uint16_t)(0x0100 + t), NULL, 0);
	n = kice_stun_wr_finish(&wr);
	assert_int_equal(kice_stun_parse(&m, buf, (size_t)n), 0);
	assert_int_equal(m.n_unknown, KICE_STUN_MAX_UNKNOWN);

	kice_stun_wr_attr(&wr, 0x0200, NULL, 0);
	n = kice_stun_wr_finish(&wr);
	assert_int_equal(kice_stun_parse(&m, buf, (size_t)n), -ENOSPC);
	assert_non_null(m.why);
	assert_int_equal(m.why_off, 20 + 4 * KICE_STUN_MAX_UNKNOWN);
}

/* RFC 8489 §14.5/§14.6: what follows MESSAGE-INTEGRITY is ignored except
 * MESSAGE-INTEGRITY-SHA256 and FINGERPRINT; after MESSAGE-INTEGRITY-SHA256
 * only FINGERPRINT counts. */
static void test_after_integrity_ignored(void **state)
{
	static const uint8_t sha[32], tie[8] = {1};
	struct kice_stun_msg m;
	struct kice_stun_wr wr;
	uint8_t buf[256];
	int n;

	(void)state;
	kice_stun_wr_init(
			&wr, buf, sizeof(buf), KICE_STUN_BINDING_REQUEST, tid_5769);
	kice_stun_wr_username(&wr, S("a"));
	kice_stun_wr_integrity(&wr, PWD); /* at 28 */
	append_raw(&wr, KICE_STUN_ATTR_PRIORITY, "\0\0\0\1", 4);
	append_raw(&wr, KICE_STUN_ATTR_USERNAME, "b", 1);
	append_raw(&wr, 0x0031, NULL, 0);
	append_raw(&wr, KICE_STUN_ATTR_PRIORITY, "bad", 3);
	append_raw(&wr, KICE_STUN_ATTR_MESSAGE_INTEGRITY_SHA256, sha, 32);
	append_raw(&wr, KICE_STUN_ATTR_ICE_CONTROLLING, tie, 8);
	kice_stun_wr_fingerprint(&wr);
	n = kice_stun_wr_finish(&wr);
	assert_true(n > 0);

	assert_int_equal(kice_stun_parse(&m, buf, (size_t)n), 0);
	assert_slice(m.username, S("a"));
	assert_true(m.has_mi);
	assert_int_equal(m.mi_off, 28);
	assert_false(m.has_priority);
	assert_int_equal(m.n_unknown, 0);
	assert_true(m.has_mi_sha256);
	assert_int_equal(m.mi_sha256_off, 28 + 24 + 8 + 8 + 4 + 8);
	assert_false(m.has_controlling);
	assert_true(m.has_fp);
	/* the HMAC covers up to MESSAGE-INTEGRITY only */
	assert_int_equal(kice_stun_check_integrity(&m, PWD), 0);
	assert_int_equal(kice_stun_check_fingerprint(&m), 0);

	/* MESSAGE-INTEGRITY-SHA256 alone closes the message as well */
	kice_stun_wr_init(
			&wr, buf, sizeof(buf), KICE_STUN_BINDING_REQUEST, tid_5769);
	kice_stun_wr_attr(&wr, KICE_STUN_ATTR_MESSAGE_INTEGRITY_SHA256, sha, 16);
	kice_stun_wr_priority(&wr, 7);
	kice_stun_wr_integrity(&wr, PWD);
	kice_stun_wr_fingerprint(&wr);
	n = kice_stun_wr_finish(&wr);
	assert_int_equal(kice_stun_parse(&m, buf, (size_t)n), 0);
	assert_true(m.has_mi_sha256);
	assert_int_equal(m.mi_sha256_off, 20);
	assert_false(m.has_priority);
	assert_false(m.has_mi);
	assert_int_equal(kice_stun_check_integrity(&m, PWD), -ENOENT);
	assert_true(m.has_fp);
	assert_int_equal(kice_stun_check_fingerprint(&m), 0);
}

/* RFC 8489 §14: only the first occurrence is processed */
static void test_duplicates_first_wins(void **state)
{
	struct sockaddr_storage a, b;
	struct kice_stun_msg m;
	struct kice_stun_wr wr;
	uint8_t buf[256];
	int n;

	(void)state;
	sa_from(&a, "192.0.2.1", 1000);
	sa_from(&b, "192.0.2.2", 2000);
	kice_stun_wr_init(
			&wr, buf, sizeof(buf), KICE_STUN_BINDING_REQUEST, tid_5769);
	kice_stun_wr_username(&wr, S("first"));
	kice_stun_wr_username(&wr, S("second"));
	kice_stun_wr_priority(&wr, 1);
	kice_stun_wr_attr(&wr, KICE_STUN_ATTR_PRIORITY, "bad", 3);
	kice_stun_wr_xor_mapped(&wr, (const struct sockaddr *)&a);
	kice_stun_wr_xor_mapped(&wr, (const struct sockaddr *)&b);
	kice_stun_wr_ice_controlling(&wr, 1);
	kice_stun_wr_ice_controlling(&wr, 2);
	kice_stun_wr_ice_controlled(&wr, 3);
	n = kice_stun_wr_finish(&wr);
	assert_true(n > 0);

	assert_int_equal(kice_stun_parse(&m, buf, (size_t)n), 0);
	assert_slice(m.username, S("first"));
	assert_int_equal(m.priority, 1);
	assert_addr(&m.xor_mapped, "192.0.2.1", 1000);
	assert_true(m.controlling == 1);
	/* both roles present: reported as sent, the ICE agent decides */
	assert_true(m.has_controlled);
	assert_true(m.controlled == 3);
	assert_false(m.has_mi);
	assert_false(m.has_fp);
	assert_int_equal(kice_stun_check_integrity(&m, PWD), -ENOENT);
	assert_int_equal(kice_stun_check_fingerprint(&m), -ENOENT);
}

static void test_einval(void **state)
{
	struct kice_stun_msg m;
	uint8_t *buf;

	(void)state;
	assert_int_equal(kice_stun_parse(NULL, req, sizeof(req)), -EINVAL);
	assert_int_equal(kice_stun_parse(&m, NULL, 20), -EINVAL);
	assert_int_equal(kice_stun_check_integrity(NULL, PWD), -EINVAL);
	assert_int_equal(kice_stun_check_fingerprint(NULL), -EINVAL);

	assert_int_equal(parse_heap(&m, &buf, req, sizeof(req)), 0);
	assert_int_equal(kice_stun_check_integrity(&m, NULL, 5), -EINVAL);
	assert_int_equal(
			kice_stun_check_integrity(&m, (const uint8_t *)pwd, 0), -EINVAL);
	free(buf);
}

static void test_tid_random(void **state)
{
	uint8_t a[KICE_STUN_TID_LEN], b[KICE_STUN_TID_LEN];

	(void)state;
	assert_int_equal(kice_stun_tid_random(a), 0);
	assert_int_equal(kice_stun_tid_random(b), 0);
	assert_memory_not_equal(a, b, sizeof(a));
}

static void test_type_helpers(void **state)
{
	uint16_t method, t;
	unsigned cls;

	(void)state;
	assert_int_equal(kice_stun_type(1, KICE_STUN_CLASS_REQUEST),
			KICE_STUN_BINDING_REQUEST);
	assert_int_equal(kice_stun_type(1, KICE_STUN_CLASS_INDICATION),
			KICE_STUN_BINDING_INDICATION);
	assert_int_equal(kice_stun_type(1, KICE_STUN_CLASS_SUCCESS),
			KICE_STUN_BINDING_SUCCESS);
	assert_int_equal(
			kice_stun_type(1, KICE_STUN_CLASS_ERROR), KICE_STUN_BINDING_ERROR);
	for(method = 0; method < 0x1000; method++) {
		for(cls = 0; cls < 4; cls++) {
			t = kice_stun_type(method, cls);
			assert_int_equal(t & 0xc000, 0);
			assert_int_equal(kice_stun_method(t), method);
			assert_int_equal(kice_stun_class(t), cls);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
			cmocka_unit_test(test_rfc5769_request),
			cmocka_unit_test(test_rfc5769_ipv4_response),
			cmocka_unit_test(test_rfc5769_ipv6_response),
			cmocka_unit_test(test_rfc5769_long_term),
			cmocka_unit_test(test_long_term_key),
			cmocka_unit_test(test_bit_flips),
			cmocka_unit_test(test_truncation_sweep),
			cmocka_unit_test(test_is_stun),
			cmocka_unit_test(test_writer_roundtrip),
			cmocka_unit_test(test_writer_reproduces_request),
			cmocka_unit_test(test_writer_reproduces_ipv4_response),
			cmocka_unit_test(test_writer_reproduces_ipv6_response),
			cmocka_unit_test(test_writer_reproduces_long_term),
			cmocka_unit_test(test_writer_error_response),
			cmocka_unit_test(test_writer_mapped_address),
			cmocka_unit_test(test_writer_enospc_sweep),
			cmocka_unit_test(test_writer_length_field_limit),
			cmocka_unit_test(test_writer_order),
			cmocka_unit_test(test_writer_einval),
			cmocka_unit_test(test_reject_short_header),
			cmocka_unit_test(test_reject_first_bits),
			cmocka_unit_test(test_reject_bad_cookie),
			cmocka_unit_test(test_reject_length_not_multiple_of_4),
			cmocka_unit_test(test_reject_length_mismatch),
			cmocka_unit_test(test_reject_attr_overrun),
			cmocka_unit_test(test_reject_fingerprint_not_last),
			cmocka_unit_test(test_reject_bad_lengths),
			cmocka_unit_test(test_reject_bad_address),
			cmocka_unit_test(test_reject_error_code_range),
			cmocka_unit_test(test_unknown_comprehension_required),
			cmocka_unit_test(test_unknown_capacity),
			cmocka_unit_test(test_after_integrity_ignored),
			cmocka_unit_test(test_duplicates_first_wins),
			cmocka_unit_test(test_einval),
			cmocka_unit_test(test_tid_random),
			cmocka_unit_test(test_type_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
