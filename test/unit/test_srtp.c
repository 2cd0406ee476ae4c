/*
 * kamailio-ice: unit tests for lib/srtp (RFC 3711 on libsrtp2, SDES
 * RFC 4568).
 *
 * The known-answer test checks libsrtp2's wiring against a reference
 * written here from RFC 3711 §4 with OpenSSL primitives (AES-CM key
 * derivation and keystream, HMAC-SHA1), itself checked against the
 * RFC 3711 Appendix B.2 and B.3 vectors.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/params.h>

#include "srtp.h"

#define BUF 2048

/* RFC 3711 Appendix B.3: master key and salt */
static const uint8_t b3_key[16] = {0xE1, 0xF9, 0x7A, 0x0D, 0x3E, 0x01, 0x8B,
		0xE0, 0xD6, 0x4F, 0xA3, 0x2C, 0x06, 0xDE, 0x41, 0x39};
static const uint8_t b3_salt[14] = {0x0E, 0xC6, 0x75, 0xAD, 0x49, 0x8A, 0xFE,
		0xEB, 0xB6, 0x96, 0x0B, 0x3A, 0xAB, 0xE6};
/* ... and the session keys it derives (label 0, 2, 1) */
static const uint8_t b3_cipher_key[16] = {0xC6, 0x1E, 0x7A, 0x93, 0x74, 0x4F,
		0x39, 0xEE, 0x10, 0x73, 0x4A, 0xFE, 0x3F, 0xF7, 0xA0, 0x87};
static const uint8_t b3_cipher_salt[14] = {0x30, 0xCB, 0xBC, 0x08, 0x86, 0x3D,
		0x8C, 0x85, 0xD4, 0x9D, 0xB3, 0x4A, 0x9A, 0xE1};
static const uint8_t b3_auth_key[20] = {0xCE, 0xBE, 0x32, 0x1F, 0x6F, 0xF7,
		0x71, 0x6B, 0x6F, 0xD4, 0xAB, 0x49, 0xAF, 0x25, 0x6A, 0x15, 0x6D,
		0x38, 0xBA, 0xA4};

/* RFC 3711 Appendix B.2: AES-CM keystream */
static const uint8_t b2_key[16] = {0x2B, 0x7E, 0x15, 0x16, 0x28, 0xAE, 0xD2,
		0xA6, 0xAB, 0xF7, 0x15, 0x88, 0x09, 0xCF, 0x4F, 0x3C};
static const uint8_t b2_salt[14] = {0xF0, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6,
		0xF7, 0xF8, 0xF9, 0xFA, 0xFB, 0xFC, 0xFD};
static const uint8_t b2_stream[48] = {
		0xE0, 0x3E, 0xAD, 0x09, 0x35, 0xC9, 0x5E, 0x80, /* block 0 */
		0xE1, 0x66, 0xB1, 0x6D, 0xD9, 0x2B, 0x4E, 0xB4,
		0xD2, 0x35, 0x13, 0x16, 0x2B, 0x02, 0xD0, 0xF7, /* block 1 */
		0x2A, 0x43, 0xA2, 0xFE, 0x4A, 0x5F, 0x97, 0xAB,
		0x41, 0xE9, 0x5B, 0x3B, 0xB0, 0xA2, 0xE8, 0xDD, /* block 2 */
		0x47, 0x79, 0x01, 0xE4, 0xFC, 0xA8, 0x94, 0xC0};

/* The RTP packet of the known-answer test */
static const uint8_t kat_rtp[] = {
		0x80, 0x00, 0x12, 0x34, /* V=2, PT 0 (PCMU), seq 0x1234 */
		0xDE, 0xCA, 0xFB, 0xAD, /* timestamp */
		0xCA, 0xFE, 0xBA, 0xBE, /* SSRC */
		0xAB, 0xAB, 0xAB, 0xAB, 0xAB, 0xAB, 0xAB, 0xAB, /* payload, 20 */
		0xAB, 0xAB, 0xAB, 0xAB, 0xAB, 0xAB, 0xAB, 0xAB, /* octets */
		0xAB, 0xAB, 0xAB, 0xAB};

/* kat_rtp protected with the B.3 master key by libsrtp2, once, and
 * checked against the reference below: the payload encrypted, then the
 * 80-bit tag */
static const uint8_t kat_srtp[] = {
		0x80, 0x00, 0x12, 0x34, /* header unchanged */
		0xDE, 0xCA, 0xFB, 0xAD, /* */
		0xCA, 0xFE, 0xBA, 0xBE, /* */
		0x4E, 0x55, 0xDC, 0x4C, 0xE7, 0x99, 0x78, 0xD8, /* encrypted */
		0x8C, 0xA4, 0xD2, 0x15, 0x94, 0x9D, 0x24, 0x02, /* payload */
		0x34, 0xBB, 0x38, 0x49, /* */
		0x26, 0x6A, 0x86, 0x83, 0x5B, /* HMAC-SHA1-80 tag, ROC 0 */
		0x79, 0x77, 0x05, 0x02, 0x5B};

/* ---- the reference (RFC 3711 §4.1.1, §4.2.1, §4.3) ---- */

/* AES-CM keystream (RFC 3711 §4.1.1): AES_k(iv + i) for i = 0, 1, ... */
static void aes_cm(const uint8_t *key, const uint8_t iv[16], uint8_t *out,
		size_t len)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	uint8_t zero[64] = {0};
	int n;

	assert_true(len <= sizeof(zero));
	assert_non_null(c);
	assert_int_equal(EVP_EncryptInit_ex(c, EVP_aes_128_ctr(), NULL, key, iv), 1);
	assert_int_equal(EVP_EncryptUpdate(c, out, &n, zero, (int)len), 1);
	EVP_CIPHER_CTX_free(c);
}

/* RFC 3711 §4.3.1 with key_derivation_rate 0: x = label << 48 XOR salt,
 * output = AES-CM(master key, x * 2^16) */
static void kdf(const uint8_t *mkey, const uint8_t *msalt, uint8_t label,
		uint8_t *out, size_t len)
{
	uint8_t iv[16] = {0};

	memcpy(iv, msalt, 14);
	iv[7] ^= label;
	aes_cm(mkey, iv, out, len);
}

/* SRTP with AES_CM_128_HMAC_SHA1_80, ROC 0, for the packet p */
static size_t ref_protect(const uint8_t *mkey, const uint8_t *msalt,
		const uint8_t *p, size_t len, uint8_t *out)
{
	uint8_t ck[16], cs[14], ak[20], iv[16] = {0}, ks[64], tag[20];
	uint8_t roc[4] = {0};
	EVP_MAC *mac;
	EVP_MAC_CTX *mc;
	OSSL_PARAM prm[] = {
			OSSL_PARAM_utf8_string("digest", (char *)"SHA1", 0), OSSL_PARAM_END};
	size_t i, tl = 0;

	kdf(mkey, msalt, 0x00, ck, 16);
	kdf(mkey, msalt, 0x01, ak, 20);
	kdf(mkey, msalt, 0x02, cs, 14);
	/* RFC 3711 §4.1.1: IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16) */
	memcpy(iv, cs, 14);
	for(i = 0; i < 4; i++)
		iv[4 + i] ^= p[8 + i];
	iv[12] ^= p[2];
	iv[13] ^= p[3];
	aes_cm(ck, iv, ks, len - 12);
	memcpy(out, p, 12);
	for(i = 12; i < len; i++)
		out[i] = p[i] ^ ks[i - 12];
	/* RFC 3711 §4.2: HMAC-SHA1 over the packet and the ROC */
	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	assert_non_null(mac);
	mc = EVP_MAC_CTX_new(mac);
	assert_non_null(mc);
	assert_int_equal(EVP_MAC_init(mc, ak, sizeof(ak), prm), 1);
	assert_int_equal(EVP_MAC_update(mc, out, len), 1);
	assert_int_equal(EVP_MAC_update(mc, roc, 4), 1);
	assert_int_equal(EVP_MAC_final(mc, tag, &tl, sizeof(tag)), 1);
	EVP_MAC_CTX_free(mc);
	EVP_MAC_free(mac);
	assert_int_equal(tl, 20);
	memcpy(out + len, tag, 10);
	return len + 10;
}

static void kat_keys(struct kice_srtp_keys *k)
{
	memset(k, 0, sizeof(*k));
	k->profile = KICE_SRTP_AES128_CM_SHA1_80;
	memcpy(k->key, b3_key, 16);
	k->key_len = 16;
	memcpy(k->salt, b3_salt, 14);
	k->salt_len = 14;
}

static void random_keys(enum kice_srtp_profile p, struct kice_srtp_keys *k)
{
	struct kice_sdes sd;

	assert_int_equal(kice_sdes_generate(p, &sd), 0);
	*k = sd.keys;
}

/* An RTP packet: seq, SSRC, n payload bytes of value fill */
static size_t mk_rtp(uint8_t *b, uint16_t seq, uint32_t ssrc, size_t n)
{
	b[0] = 0x80;
	b[1] = 0x60; /* PT 96 */
	b[2] = (uint8_t)(seq >> 8);
	b[3] = (uint8_t)seq;
	b[4] = 0;
	b[5] = 0;
	b[6] = (uint8_t)(seq >> 8);
	b[7] = (uint8_t)seq;
	b[8] = (uint8_t)(ssrc >> 24);
	b[9] = (uint8_t)(ssrc >> 16);
	b[10] = (uint8_t)(ssrc >> 8);
	b[11] = (uint8_t)ssrc;
	memset(b + 12, 0x5A ^ (int)(seq & 0xff), n);
	return 12 + n;
}

/* An RTCP receiver report with one report block (RFC 3550 §6.4.2) */
static size_t mk_rtcp(uint8_t *b, uint32_t ssrc)
{
	memset(b, 0, 32);
	b[0] = 0x81; /* V=2, RC=1 */
	b[1] = 201;	 /* RR */
	b[2] = 0;
	b[3] = 7; /* length in words - 1 */
	b[4] = (uint8_t)(ssrc >> 24);
	b[5] = (uint8_t)(ssrc >> 16);
	b[6] = (uint8_t)(ssrc >> 8);
	b[7] = (uint8_t)ssrc;
	memset(b + 8, 0x11, 24);
	return 32;
}

static int setup(void **state)
{
	(void)state;
	return kice_srtp_init();
}

static void test_init(void **state)
{
	(void)state;
	assert_int_equal(kice_srtp_init(), 0); /* again: idempotent */
	assert_true(kice_srtp_profile_supported(KICE_SRTP_AES128_CM_SHA1_80));
	assert_true(kice_srtp_profile_supported(KICE_SRTP_AES128_CM_SHA1_32));
	assert_false(kice_srtp_profile_supported(KICE_SRTP_NONE));
	assert_false(kice_srtp_profile_supported((enum kice_srtp_profile)99));
	print_message("AEAD_AES_128_GCM %s\n",
			kice_srtp_profile_supported(KICE_SRTP_AEAD_AES_128_GCM)
					? "supported"
					: "not built into libsrtp2");
	assert_string_equal(kice_srtp_profile_name(KICE_SRTP_AES128_CM_SHA1_80),
			"SRTP_AES128_CM_SHA1_80");
	assert_string_equal(kice_srtp_profile_name(KICE_SRTP_NONE), "none");
	assert_string_equal(
			kice_sdes_suite_name(KICE_SRTP_AEAD_AES_128_GCM), "AEAD_AES_128_GCM");
	assert_null(kice_sdes_suite_name(KICE_SRTP_NONE));
}

/* The reference itself against RFC 3711 B.2 and B.3 */
static void test_reference_vectors(void **state)
{
	uint8_t out[64], iv[16] = {0};

	(void)state;
	kdf(b3_key, b3_salt, 0x00, out, 16);
	assert_memory_equal(out, b3_cipher_key, 16);
	kdf(b3_key, b3_salt, 0x02, out, 14);
	assert_memory_equal(out, b3_cipher_salt, 14);
	kdf(b3_key, b3_salt, 0x01, out, 20);
	assert_memory_equal(out, b3_auth_key, 20);

	memcpy(iv, b2_salt, 14); /* SSRC 0, index 0 */
	aes_cm(b2_key, iv, out, 48);
	assert_memory_equal(out, b2_stream, 48);
}

/* libsrtp2 through kice_srtp against the reference and the stored
 * vector, then unprotected by an independent context */
static void test_kat_aes_cm_80(void **state)
{
	struct kice_srtp *tx, *rx;
	struct kice_srtp_keys k;
	uint8_t pkt[BUF], ref[BUF];
	size_t len, rlen;

	(void)state;
	kat_keys(&k);
	assert_int_equal(kice_srtp_create(&tx, &k, &k), 0);
	assert_int_equal(kice_srtp_create(&rx, &k, &k), 0);

	memcpy(pkt, kat_rtp, sizeof(kat_rtp));
	len = sizeof(kat_rtp);
	assert_int_equal(kice_srtp_protect(tx, pkt, &len, sizeof(pkt)), 0);
	rlen = ref_protect(b3_key, b3_salt, kat_rtp, sizeof(kat_rtp), ref);
	assert_int_equal(len, rlen);
	assert_memory_equal(pkt, ref, len);
	assert_int_equal(len, sizeof(kat_srtp));
	assert_memory_equal(pkt, kat_srtp, len);

	assert_int_equal(kice_srtp_unprotect(rx, pkt, &len), 0);
	assert_int_equal(len, sizeof(kat_rtp));
	assert_memory_equal(pkt, kat_rtp, len);
	assert_int_equal(kice_srtp_stats(tx)->protected_rtp, 1);
	assert_int_equal(kice_srtp_stats(rx)->unprotected_rtp, 1);
	kice_srtp_destroy(tx);
	kice_srtp_destroy(rx);
}

static const enum kice_srtp_profile suites[] = {KICE_SRTP_AES128_CM_SHA1_80,
		KICE_SRTP_AES128_CM_SHA1_32, KICE_SRTP_AEAD_AES_128_GCM};

/* RTP tag, RTCP tag per suite (RFC 3711 §8.2, RFC 4568 §6.2.2, RFC 7714) */
static size_t rtp_tag(enum kice_srtp_profile p)
{
	return p == KICE_SRTP_AES128_CM_SHA1_32 ? 4 : p == KICE_SRTP_AES128_CM_SHA1_80 ? 10 : 16;
}

static size_t rtcp_tag(enum kice_srtp_profile p)
{
	return p == KICE_SRTP_AEAD_AES_128_GCM ? 16 : 10;
}

static void test_round_trip(void **state)
{
	struct kice_srtp *a, *b;
	struct kice_srtp_keys ka, kb;
	uint8_t pkt[BUF], orig[BUF];
	size_t len, olen, i;
	unsigned seq;

	(void)state;
	for(i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
		if(!kice_srtp_profile_supported(suites[i]))
			continue;
		random_keys(suites[i], &ka);
		random_keys(suites[i], &kb);
		/* a sends with ka and receives kb; b the other way round */
		assert_int_equal(kice_srtp_create(&a, &ka, &kb), 0);
		assert_int_equal(kice_srtp_create(&b, &kb, &ka), 0);
		for(seq = 65530; seq < 65540; seq++) { /* across the ROC wrap */
			olen = mk_rtp(orig, (uint16_t)seq, 0x11223344, 160);
			memcpy(pkt, orig, olen);
			len = olen;
			assert_int_equal(kice_srtp_protect(a, pkt, &len, sizeof(pkt)), 0);
			assert_int_equal(len, olen + rtp_tag(suites[i]));
			assert_memory_not_equal(pkt + 12, orig + 12, 16);
			assert_int_equal(kice_srtp_unprotect(b, pkt, &len), 0);
			assert_int_equal(len, olen);
			assert_memory_equal(pkt, orig, olen);
		}
		/* the other direction, RTCP; SRTCP adds E+index (4) and the tag */
		olen = mk_rtcp(orig, 0x55667788);
		memcpy(pkt, orig, olen);
		len = olen;
		assert_int_equal(kice_srtp_protect_rtcp(b, pkt, &len, sizeof(pkt)), 0);
		assert_int_equal(len, olen + 4 + rtcp_tag(suites[i]));
		assert_int_equal(kice_srtp_unprotect_rtcp(a, pkt, &len), 0);
		assert_int_equal(len, olen);
		assert_memory_equal(pkt, orig, olen);
		/* a context does not unprotect what it protected itself */
		olen = mk_rtp(pkt, 7, 0x99, 20);
		len = olen;
		assert_int_equal(kice_srtp_protect(a, pkt, &len, sizeof(pkt)), 0);
		assert_int_equal(kice_srtp_unprotect(a, pkt, &len), -EACCES);
		assert_int_equal(kice_srtp_stats(b)->unprotected_rtp, 10);
		assert_int_equal(kice_srtp_stats(a)->unprotected_rtcp, 1);
		kice_srtp_destroy(a);
		kice_srtp_destroy(b);
	}
}

static void test_tamper(void **state)
{
	struct kice_srtp *tx, *rx;
	struct kice_srtp_keys k;
	uint8_t pkt[BUF], bad[BUF];
	size_t len, blen, i, j;

	(void)state;
	for(i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
		if(!kice_srtp_profile_supported(suites[i]))
			continue;
		random_keys(suites[i], &k);
		assert_int_equal(kice_srtp_create(&tx, &k, &k), 0);
		assert_int_equal(kice_srtp_create(&rx, &k, &k), 0);
		len = mk_rtp(pkt, 1000, 0xabcdef01, 100);
		assert_int_equal(kice_srtp_protect(tx, pkt, &len, sizeof(pkt)), 0);
		/* one flipped bit anywhere after the first byte: rejected */
		for(j = 1; j < len; j++) {
			memcpy(bad, pkt, len);
			blen = len;
			bad[j] ^= 0x01;
			assert_int_equal(kice_srtp_unprotect(rx, bad, &blen), -EACCES);
			assert_int_equal(kice_srtp_stats(rx)->auth_failures, j);
		}
		/* the failures did not move the replay window */
		assert_int_equal(kice_srtp_unprotect(rx, pkt, &len), 0);

		len = mk_rtcp(pkt, 0xabcdef01);
		assert_int_equal(kice_srtp_protect_rtcp(tx, pkt, &len, sizeof(pkt)), 0);
		pkt[10] ^= 0x80;
		assert_int_equal(kice_srtp_unprotect_rtcp(rx, pkt, &len), -EACCES);
		assert_int_equal(kice_srtp_stats(rx)->unprotected_rtcp, 0);
		kice_srtp_destroy(tx);
		kice_srtp_destroy(rx);
	}
}

static void test_replay(void **state)
{
	struct kice_srtp *tx, *rx;
	struct kice_srtp_keys k;
	uint8_t pkt[BUF], copy[BUF], old[BUF];
	size_t len, clen, olen;
	unsigned seq;

	(void)state;
	random_keys(KICE_SRTP_AES128_CM_SHA1_80, &k);
	assert_int_equal(kice_srtp_create(&tx, &k, &k), 0);
	assert_int_equal(kice_srtp_create(&rx, &k, &k), 0);

	len = mk_rtp(pkt, 10, 0x1234, 40);
	assert_int_equal(kice_srtp_protect(tx, pkt, &len, sizeof(pkt)), 0);
	memcpy(copy, pkt, len);
	clen = len;
	memcpy(old, pkt, len);
	olen = len;
	assert_int_equal(kice_srtp_unprotect(rx, pkt, &len), 0);
	assert_int_equal(kice_srtp_unprotect(rx, copy, &clen), -EALREADY);
	assert_int_equal(kice_srtp_stats(rx)->replays, 1);

	/* far beyond the window: too old */
	for(seq = 11; seq < 11 + KICE_SRTP_REPLAY_WINDOW + 10; seq++) {
		len = mk_rtp(pkt, (uint16_t)seq, 0x1234, 40);
		assert_int_equal(kice_srtp_protect(tx, pkt, &len, sizeof(pkt)), 0);
		assert_int_equal(kice_srtp_unprotect(rx, pkt, &len), 0);
	}
	assert_int_equal(kice_srtp_unprotect(rx, old, &olen), -EALREADY);
	assert_int_equal(kice_srtp_stats(rx)->replays, 2);

	/* SRTCP replay */
	len = mk_rtcp(pkt, 0x1234);
	assert_int_equal(kice_srtp_protect_rtcp(tx, pkt, &len, sizeof(pkt)), 0);
	memcpy(copy, pkt, len);
	clen = len;
	assert_int_equal(kice_srtp_unprotect_rtcp(rx, pkt, &len), 0);
	assert_int_equal(kice_srtp_unprotect_rtcp(rx, copy, &clen), -EALREADY);
	assert_int_equal(kice_srtp_stats(rx)->replays, 3);
	kice_srtp_destroy(tx);
	kice_srtp_destroy(rx);
}

/* The relay forwards retransmissions: the same index may be protected
 * again, and gives the same bytes */
static void test_repeat_tx(void **state)
{
	struct kice_srtp *tx;
	struct kice_srtp_keys k;
	uint8_t a[BUF], b[BUF];
	size_t alen, blen;

	(void)state;
	random_keys(KICE_SRTP_AES128_CM_SHA1_80, &k);
	assert_int_equal(kice_srtp_create(&tx, &k, &k), 0);
	alen = mk_rtp(a, 500, 0x42, 60);
	blen = mk_rtp(b, 500, 0x42, 60);
	assert_int_equal(kice_srtp_protect(tx, a, &alen, sizeof(a)), 0);
	assert_int_equal(kice_srtp_protect(tx, b, &blen, sizeof(b)), 0);
	assert_int_equal(alen, blen);
	assert_memory_equal(a, b, alen);
	kice_srtp_destroy(tx);
}

static void test_mki(void **state)
{
	struct kice_srtp *tx, *rx, *rx2;
	struct kice_srtp_keys k, k2;
	uint8_t pkt[BUF], orig[BUF];
	size_t len, olen;

	(void)state;
	random_keys(KICE_SRTP_AES128_CM_SHA1_80, &k);
	k.mki[0] = 0;
	k.mki[1] = 0;
	k.mki[2] = 0;
	k.mki[3] = 7;
	k.mki_len = 4;
	k2 = k;
	k2.mki[3] = 8;
	assert_int_equal(kice_srtp_create(&tx, &k, &k), 0);
	assert_int_equal(kice_srtp_create(&rx, &k, &k), 0);
	assert_int_equal(kice_srtp_create(&rx2, &k2, &k2), 0);
	olen = mk_rtp(orig, 1, 0x77, 80);
	memcpy(pkt, orig, olen);
	len = olen;
	assert_int_equal(kice_srtp_protect(tx, pkt, &len, sizeof(pkt)), 0);
	assert_int_equal(len, olen + 4 + 10); /* RFC 3711 §3.1: MKI, then tag */
	assert_memory_equal(pkt + olen, k.mki, 4);
	{
		uint8_t cp[BUF];
		size_t cl = len;

		memcpy(cp, pkt, len);
		assert_int_equal(kice_srtp_unprotect(rx2, cp, &cl), -EACCES);
	}
	assert_int_equal(kice_srtp_unprotect(rx, pkt, &len), 0);
	assert_int_equal(len, olen);
	assert_memory_equal(pkt, orig, olen);

	len = mk_rtcp(pkt, 0x77);
	assert_int_equal(kice_srtp_protect_rtcp(tx, pkt, &len, sizeof(pkt)), 0);
	assert_int_equal(len, 32 + 4 + 4 + 10);
	assert_int_equal(kice_srtp_unprotect_rtcp(rx, pkt, &len), 0);
	assert_int_equal(len, 32);
	kice_srtp_destroy(tx);
	kice_srtp_destroy(rx);
	kice_srtp_destroy(rx2);
}

static void test_bad_args(void **state)
{
	struct kice_srtp *s;
	struct kice_srtp_keys k, bad;
	uint8_t pkt[BUF];
	size_t len;

	(void)state;
	random_keys(KICE_SRTP_AES128_CM_SHA1_80, &k);
	assert_int_equal(kice_srtp_create(NULL, &k, &k), -EINVAL);
	assert_int_equal(kice_srtp_create(&s, NULL, &k), -EINVAL);
	bad = k;
	bad.key_len = 15;
	assert_int_equal(kice_srtp_create(&s, &k, &bad), -EINVAL);
	assert_null(s);
	bad = k;
	bad.salt_len = 12;
	assert_int_equal(kice_srtp_create(&s, &bad, &k), -EINVAL);
	bad = k;
	bad.profile = KICE_SRTP_NONE;
	assert_int_equal(kice_srtp_create(&s, &bad, &k), -EINVAL);
	bad = k;
	bad.mki_len = KICE_SRTP_MKI_MAX + 1;
	assert_int_equal(kice_srtp_create(&s, &bad, &k), -EINVAL);
	kice_srtp_destroy(NULL);

	assert_int_equal(kice_srtp_create(&s, &k, &k), 0);
	/* no room for the trailer */
	len = mk_rtp(pkt, 1, 1, 100);
	assert_int_equal(kice_srtp_protect(s, pkt, &len, len + 10), -ENOSPC);
	assert_int_equal(
			kice_srtp_protect(s, pkt, &len, len + KICE_SRTP_TRAILER_MAX - 1),
			-ENOSPC);
	assert_int_equal(
			kice_srtp_protect(s, pkt, &len, len + KICE_SRTP_TRAILER_MAX), 0);
	len = mk_rtcp(pkt, 1);
	assert_int_equal(
			kice_srtp_protect_rtcp(s, pkt, &len, len + KICE_SRTP_TRAILER_MAX),
			-ENOSPC);
	/* not RTP/RTCP: too short, wrong version */
	len = 11;
	assert_int_equal(kice_srtp_protect(s, pkt, &len, sizeof(pkt)), -EBADMSG);
	assert_int_equal(kice_srtp_unprotect(s, pkt, &len), -EBADMSG);
	len = mk_rtp(pkt, 1, 1, 10);
	pkt[0] = 0x40;
	assert_int_equal(kice_srtp_unprotect(s, pkt, &len), -EBADMSG);
	len = 7;
	pkt[0] = 0x80;
	assert_int_equal(kice_srtp_unprotect_rtcp(s, pkt, &len), -EBADMSG);
	assert_int_equal(kice_srtp_protect_rtcp(s, pkt, &len, sizeof(pkt)), -EBADMSG);
	/* RTP with a CSRC count longer than the packet */
	len = mk_rtp(pkt, 2, 1, 4);
	pkt[0] = 0x8f;
	assert_int_not_equal(kice_srtp_protect(s, pkt, &len, sizeof(pkt)), 0);
	assert_int_equal(kice_srtp_protect(NULL, pkt, &len, sizeof(pkt)), -EINVAL);
	kice_srtp_destroy(s);
}

/* Short and garbage packets of every length: errors, no crash (ASan) */
static void test_unprotect_sweep(void **state)
{
	struct kice_srtp *tx, *rx;
	struct kice_srtp_keys k;
	uint8_t pkt[BUF], *cp;
	size_t len, n, l;

	(void)state;
	random_keys(KICE_SRTP_AES128_CM_SHA1_80, &k);
	assert_int_equal(kice_srtp_create(&tx, &k, &k), 0);
	assert_int_equal(kice_srtp_create(&rx, &k, &k), 0);
	len = mk_rtp(pkt, 9, 0x3, 50);
	assert_int_equal(kice_srtp_protect(tx, pkt, &len, sizeof(pkt)), 0);
	for(n = 0; n < len; n++) {
		cp = malloc(n ? n : 1);
		memcpy(cp, pkt, n);
		l = n;
		assert_true(kice_srtp_unprotect(rx, cp, &l) < 0);
		l = n;
		assert_true(kice_srtp_unprotect_rtcp(rx, cp, &l) < 0);
		free(cp);
	}
	kice_srtp_destroy(tx);
	kice_srtp_destroy(rx);
}

/* ---- SDES ---- */

#define SL(s) kice_slice_make((s), strlen(s))

/* RFC 4568 §4 example */
static const char rfc_line[] =
		"1 AES_CM_128_HMAC_SHA1_80 "
		"inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4";

static void test_sdes_parse(void **state)
{
	struct kice_sdes sd;
	static const uint8_t key[16] = {'Y', 'S', '_', '_', '_', 's', 'e', 'm',
			'c', 't', 'l', ' ', '(', ')', ' ', '{'};

	(void)state;
	assert_int_equal(kice_sdes_parse(SL(rfc_line), &sd), 0);
	assert_int_equal(sd.tag, 1);
	assert_int_equal(sd.keys.profile, KICE_SRTP_AES128_CM_SHA1_80);
	assert_int_equal(sd.keys.key_len, 16);
	assert_int_equal(sd.keys.salt_len, 14);
	assert_memory_equal(sd.keys.key, key, 16);
	assert_int_equal(sd.lifetime, 1u << 20);
	assert_int_equal(sd.keys.mki_len, 4);
	assert_int_equal(sd.keys.mki[3], 1);
	assert_int_equal(sd.keys.mki[0], 0);

	/* no lifetime, MKI only; session parameters; tabs and spaces */
	assert_int_equal(kice_sdes_parse(SL("2 AES_CM_128_HMAC_SHA1_32\t inline:"
											"WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
											"|258:2  KDR=0 WSH=128 -X_OPT=1"),
							 &sd),
			0);
	assert_int_equal(sd.tag, 2);
	assert_int_equal(sd.keys.profile, KICE_SRTP_AES128_CM_SHA1_32);
	assert_int_equal(sd.keys.mki_len, 2);
	assert_int_equal(sd.keys.mki[0], 1);
	assert_int_equal(sd.keys.mki[1], 2);
	assert_int_equal(sd.lifetime, 0);
	assert_int_equal(sd.wsh, 128);

	/* decimal lifetime; a second key parameter is ignored */
	assert_int_equal(kice_sdes_parse(SL("3 AES_CM_128_HMAC_SHA1_80 inline:"
											"WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
											"|1000;inline:"
											"WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"),
							 &sd),
			0);
	assert_int_equal(sd.lifetime, 1000);

	/* GCM: 28 bytes, with and without padding */
	assert_int_equal(kice_sdes_parse(SL("4 AEAD_AES_128_GCM inline:"
											"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw=="),
							 &sd),
			0);
	assert_int_equal(sd.keys.profile, KICE_SRTP_AEAD_AES_128_GCM);
	assert_int_equal(sd.keys.key_len, 16);
	assert_int_equal(sd.keys.salt_len, 12);
	assert_int_equal(sd.keys.key[15], 15);
	assert_int_equal(sd.keys.salt[11], 27);
	assert_int_equal(kice_sdes_parse(SL("4 AEAD_AES_128_GCM inline:"
											"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw"),
							 &sd),
			0);
	assert_int_equal(sd.keys.salt[11], 27);
}

static void test_sdes_round_trip(void **state)
{
	struct kice_sdes a, b;
	char buf[KICE_SDES_MAX];
	size_t i;
	int n;

	(void)state;
	for(i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
		assert_int_equal(kice_sdes_generate(suites[i], &a), 0);
		n = kice_sdes_format(&a, buf, sizeof(buf));
		assert_true(n > 0);
		assert_int_equal((size_t)n, strlen(buf));
		assert_int_equal(kice_sdes_parse(kice_slice_make(buf, (size_t)n), &b), 0);
		assert_memory_equal(&a, &b, sizeof(a));
		/* and with lifetime and MKI */
		a.tag = 999999999;
		a.lifetime = 1ull << 31;
		a.keys.mki[0] = 5;
		a.keys.mki_len = 1;
		n = kice_sdes_format(&a, buf, sizeof(buf));
		assert_true(n > 0);
		assert_non_null(strstr(buf, "|2^31|5:1"));
		assert_int_equal(kice_sdes_parse(kice_slice_make(buf, (size_t)n), &b), 0);
		assert_memory_equal(&a, &b, sizeof(a));
		/* too small a buffer */
		assert_int_equal(kice_sdes_format(&a, buf, (size_t)n), -ENOSPC);
		assert_int_equal(kice_sdes_format(&a, buf, (size_t)n + 1), n);
	}
	/* two keys are not alike */
	assert_int_equal(kice_sdes_generate(KICE_SRTP_AES128_CM_SHA1_80, &a), 0);
	assert_int_equal(kice_sdes_generate(KICE_SRTP_AES128_CM_SHA1_80, &b), 0);
	assert_memory_not_equal(a.keys.key, b.keys.key, 16);
	assert_int_equal(kice_sdes_generate(KICE_SRTP_NONE, &a), -EINVAL);

	/* the RFC line comes back the same */
	assert_int_equal(kice_sdes_parse(SL(rfc_line), &a), 0);
	n = kice_sdes_format(&a, buf, sizeof(buf));
	assert_string_equal(buf, rfc_line);
}

static void test_sdes_malformed(void **state)
{
	static const struct
	{
		const char *line;
		int err;
	} bad[] = {
			{"", -EBADMSG},
			{"1", -EBADMSG},
			{"1 AES_CM_128_HMAC_SHA1_80", -EBADMSG},
			{"x AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
					-EBADMSG},
			{"1234567890 AES_CM_128_HMAC_SHA1_80 "
			 "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
					-EBADMSG}, /* tag of 10 digits */
			{"1 F8_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
					-ENOTSUP},
			{"1 aes_cm_128_hmac_sha1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
					-ENOTSUP},
			{"1 AES_CM_128_HMAC_SHA1_80 WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
					-EBADMSG}, /* no inline: */
			{"1 AES_CM_128_HMAC_SHA1_80 inline:", -EBADMSG},
			{"1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGV*",
					-EBADMSG}, /* bad base64 character */
			{"1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubG==",
					-EBADMSG}, /* padding where none fits */
			{"1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGw=KCkgewkyMjA7fQp9CnVubGVz",
					-EBADMSG}, /* '=' inside */
			{"1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVu",
					-EBADMSG}, /* 27 bytes */
			{"1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVzAAAA",
					-EBADMSG}, /* 33 bytes */
			{"1 AEAD_AES_128_GCM inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
					-EBADMSG}, /* 30 bytes for GCM's 28 */
			{"1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^49",
					-EBADMSG},
			{"1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|",
					-EBADMSG},
			{"1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4|3",
					-EBADMSG},
			{"1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|1:4|2^20",
					-EBADMSG}, /* MKI before lifetime */
			{"1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|1:5",
					-EBADMSG}, /* MKI longer than we take */
			{"1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|256:1",
					-EBADMSG}, /* MKI value does not fit */
			{"1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|1:",
					-EBADMSG},
			{"1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz "
			 "UNENCRYPTED_SRTCP",
					-ENOTSUP},
			{"1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz "
			 "KDR=1",
					-ENOTSUP},
			{"1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz "
			 "KDR=x",
					-EBADMSG},
			{"1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz "
			 "WSH=32",
					-EBADMSG},
			{"1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz "
			 "FEC_ORDER=FEC_SRTP",
					-ENOTSUP},
	};
	struct kice_sdes sd;
	size_t i;

	(void)state;
	for(i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = kice_sdes_parse(SL(bad[i].line), &sd);
		if(r != bad[i].err)
			print_error("line %zu \"%s\": %d, want %d\n", i, bad[i].line, r,
					bad[i].err);
		assert_int_equal(r, bad[i].err);
	}
	assert_int_equal(kice_sdes_parse(SL(rfc_line), NULL), -EINVAL);
	assert_int_equal(kice_sdes_format(NULL, NULL, 0), -EINVAL);
}

/* Every prefix of a valid line, in an exact-size heap buffer: only the
 * prefixes that end after the key (or a complete field) parse. */
static void test_sdes_truncation(void **state)
{
	size_t n, full = strlen(rfc_line);
	size_t key_end = strlen("1 AES_CM_128_HMAC_SHA1_80 inline:"
							"WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz");
	struct kice_sdes sd;
	char *cp;
	int r;

	(void)state;
	for(n = 0; n <= full; n++) {
		cp = malloc(n ? n : 1);
		memcpy(cp, rfc_line, n);
		r = kice_sdes_parse(kice_slice_make(cp, n), &sd);
		free(cp);
		if(n == key_end || n == key_end + 2 /* "|2" */
				|| n == key_end + 4 /* "|2^2" */
				|| n == key_end + 5 || n == full)
			assert_int_equal(r, 0);
		else
			assert_true(r < 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
			cmocka_unit_test(test_init),
			cmocka_unit_test(test_reference_vectors),
			cmocka_unit_test(test_kat_aes_cm_80),
			cmocka_unit_test(test_round_trip),
			cmocka_unit_test(test_tamper),
			cmocka_unit_test(test_replay),
			cmocka_unit_test(test_repeat_tx),
			cmocka_unit_test(test_mki),
			cmocka_unit_test(test_bad_args),
			cmocka_unit_test(test_unprotect_sweep),
			cmocka_unit_test(test_sdes_parse),
			cmocka_unit_test(test_sdes_round_trip),
			cmocka_unit_test(test_sdes_malformed),
			cmocka_unit_test(test_sdes_truncation),
	};
	int ret = cmocka_run_group_tests(tests, setup, NULL);

	kice_srtp_shutdown();
	return ret;
}
