/*
 * kamailio-ice: unit tests for lib/dtls (DTLS-SRTP, RFC 5763/5764).
 *
 * Two associations, each with its own certificate and knowing the
 * other's fingerprint, talk through in-memory queues under a simulated
 * clock. OpenSSL times DTLS retransmissions with gettimeofday(), which
 * this test defines (the executable's symbol wins over libc's for
 * libssl), so OpenSSL's clock and the simulated one are the same.
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
#include <sys/time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "dtls.h"
#include "srtp.h"

/* ---- the simulated clock ---- */

#define EPOCH_US 1700000000000000ull
static uint64_t now_us = 1000000; /* host clock */

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
	uint64_t t = EPOCH_US + now_us;

	(void)tz;
	tv->tv_sec = (time_t)(t / 1000000);
	tv->tv_usec = (suseconds_t)(t % 1000000);
	return 0;
}

/* ---- the network: one FIFO per direction ---- */

#define QMAX 128
#define PKT_MAX 1500

struct queue
{
	uint8_t pkt[QMAX][PKT_MAX];
	size_t len[QMAX];
	unsigned head, n;
	unsigned sent;		/* datagrams handed to us so far */
	uint64_t drop_mask; /* drop datagram i (0-based count) if bit i */
	bool drop_all;
	unsigned loss_pct; /* and then drop this share at random */
	uint32_t seed;
	unsigned dropped;
	size_t max_len;
};

static struct queue c2s, s2c;

static void q_send(void *ctx, const uint8_t *pkt, size_t len)
{
	struct queue *q = ctx;
	unsigned i = q->sent++;

	assert_true(len > 0 && len <= KICE_DTLS_MTU);
	if(len > q->max_len)
		q->max_len = len;
	if(q->loss_pct > 0) {
		q->seed = q->seed * 1103515245u + 12345u;
		if((q->seed >> 16) % 100 < q->loss_pct) {
			q->dropped++;
			return;
		}
	}
	if(q->drop_all || (i < 64 && (q->drop_mask >> i) & 1)) {
		q->dropped++;
		return;
	}
	assert_true(q->head + q->n < QMAX);
	memcpy(q->pkt[q->head + q->n], pkt, len);
	q->len[q->head + q->n] = len;
	q->n++;
}

/* Deliver the oldest datagram of q to d; returns kice_dtls_input() */
static int q_deliver(struct queue *q, struct kice_dtls *d)
{
	int r;

	r = kice_dtls_input(d, now_us, q->pkt[q->head], q->len[q->head]);
	q->head++;
	if(--q->n == 0)
		q->head = 0;
	return r;
}

static void q_reset(void)
{
	memset(&c2s, 0, sizeof(c2s));
	memset(&s2c, 0, sizeof(s2c));
}

/* ---- certificates, made once ---- */

static struct kice_dtls_cert *cert_c, *cert_s, *cert_x;
static char fp_c[KICE_DTLS_FP_MAX], fp_s[KICE_DTLS_FP_MAX],
		fp_x[KICE_DTLS_FP_MAX];

static int group_setup(void **state)
{
	(void)state;
	if(kice_dtls_cert_create(&cert_c) || kice_dtls_cert_create(&cert_s)
			|| kice_dtls_cert_create(&cert_x))
		return -1;
	if(kice_dtls_cert_fingerprint(cert_c, fp_c, sizeof(fp_c)) != 103
			|| kice_dtls_cert_fingerprint(cert_s, fp_s, sizeof(fp_s)) != 103
			|| kice_dtls_cert_fingerprint(cert_x, fp_x, sizeof(fp_x)) != 103)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	kice_dtls_cert_destroy(cert_c);
	kice_dtls_cert_destroy(cert_s);
	kice_dtls_cert_destroy(cert_x);
	kice_srtp_shutdown();
	return 0;
}

/* "sha-256 AB:..." -> alg, hex */
#define FP_ALG(fp) "sha-256"
#define FP_HEX(fp) ((fp) + 8)

struct pair
{
	struct kice_dtls *c, *s;
	int c_last, s_last; /* last kice_dtls_input() return, first error */
	unsigned c_ones, s_ones; /* times kice_dtls_input() returned 1 */
	uint64_t t0, done_us;
};

static void pair_make(struct pair *p, struct kice_dtls_cert *cc,
		const char *fp_of_s, struct kice_dtls_cert *cs, const char *fp_of_c)
{
	memset(p, 0, sizeof(*p));
	q_reset();
	assert_int_equal(kice_dtls_create(&p->c, cc, KICE_DTLS_CLIENT, "sha-256",
							 FP_HEX(fp_of_s), q_send, &c2s),
			0);
	assert_int_equal(kice_dtls_create(&p->s, cs, KICE_DTLS_SERVER, "sha-256",
							 FP_HEX(fp_of_c), q_send, &s2c),
			0);
	assert_int_equal(kice_dtls_state(p->c), KICE_DTLS_NEW);
	assert_int_equal(kice_dtls_next_deadline(p->c), UINT64_MAX);
}

static void pair_free(struct pair *p)
{
	kice_dtls_destroy(p->c);
	kice_dtls_destroy(p->s);
}

static bool final(struct kice_dtls *d)
{
	enum kice_dtls_state st = kice_dtls_state(d);

	return st == KICE_DTLS_FAILED || st == KICE_DTLS_CLOSED;
}

static void note(int *last, unsigned *ones, int r)
{
	assert_true(r == 0 || r == 1 || r == -EACCES || r == -EPROTO);
	if(r == 1)
		(*ones)++;
	if(*last >= 0)
		*last = r;
}

/* Run until both are connected, one has failed, or limit_us passed;
 * time jumps from deadline to deadline while nothing is in flight. */
static void pair_run(struct pair *p, uint64_t limit_us)
{
	uint64_t next, dc, ds, end = now_us + limit_us;

	p->t0 = now_us;
	assert_int_equal(kice_dtls_start(p->s, now_us), 0);
	assert_int_equal(kice_dtls_start(p->c, now_us), 0);
	assert_int_equal(kice_dtls_state(p->c), KICE_DTLS_HANDSHAKING);
	for(;;) {
		while(c2s.n > 0 || s2c.n > 0) {
			if(c2s.n > 0)
				note(&p->s_last, &p->s_ones, q_deliver(&c2s, p->s));
			if(s2c.n > 0)
				note(&p->c_last, &p->c_ones, q_deliver(&s2c, p->c));
		}
		if(kice_dtls_state(p->c) == KICE_DTLS_CONNECTED
				&& kice_dtls_state(p->s) == KICE_DTLS_CONNECTED) {
			p->done_us = now_us;
			return;
		}
		if(final(p->c) && final(p->s))
			return;
		dc = kice_dtls_next_deadline(p->c);
		ds = kice_dtls_next_deadline(p->s);
		next = dc < ds ? dc : ds;
		if(next == UINT64_MAX || next > end)
			return;
		assert_true(next + 1000000 > now_us); /* no stale deadline */
		if(next > now_us)
			now_us = next;
		kice_dtls_tick(p->c, now_us);
		kice_dtls_tick(p->s, now_us);
	}
}

static void expect_keys(struct pair *p)
{
	struct kice_srtp_keys ctx_, crx, stx, srx;
	enum kice_srtp_profile want = kice_srtp_profile_supported(
										  KICE_SRTP_AEAD_AES_128_GCM)
										  ? KICE_SRTP_AEAD_AES_128_GCM
										  : KICE_SRTP_AES128_CM_SHA1_80;
	size_t kl, sl;

	if(kice_dtls_state(p->c) != KICE_DTLS_CONNECTED
			|| kice_dtls_state(p->s) != KICE_DTLS_CONNECTED)
		print_error("client %s (%s), server %s (%s) after %.1f s, "
					"%u/%u and %u/%u datagrams lost\n",
				kice_dtls_state_name(kice_dtls_state(p->c)),
				kice_dtls_why(p->c) ? kice_dtls_why(p->c) : "-",
				kice_dtls_state_name(kice_dtls_state(p->s)),
				kice_dtls_why(p->s) ? kice_dtls_why(p->s) : "-",
				(double)(now_us - p->t0) / 1e6, c2s.dropped, c2s.sent,
				s2c.dropped, s2c.sent);
	assert_int_equal(kice_dtls_state(p->c), KICE_DTLS_CONNECTED);
	assert_int_equal(kice_dtls_state(p->s), KICE_DTLS_CONNECTED);
	/* each side was told once that the handshake completed */
	assert_int_equal(p->c_ones, 1);
	assert_int_equal(p->s_ones, 1);
	assert_int_equal(kice_dtls_profile(p->c), want);
	assert_int_equal(kice_dtls_profile(p->s), want);
	assert_string_equal(kice_dtls_profile_name(p->c), kice_srtp_profile_name(want));
	assert_true(strlen(kice_dtls_cipher_name(p->c)) > 0);
	assert_string_equal(kice_dtls_cipher_name(p->c), kice_dtls_cipher_name(p->s));
	assert_null(kice_dtls_why(p->c));

	assert_int_equal(kice_dtls_srtp_keys(p->c, &ctx_, &crx), 0);
	assert_int_equal(kice_dtls_srtp_keys(p->s, &stx, &srx), 0);
	assert_true(kice_srtp_profile_lengths(want, &kl, &sl));
	assert_int_equal(ctx_.key_len, kl);
	assert_int_equal(ctx_.salt_len, sl);
	assert_int_equal(ctx_.profile, want);
	assert_int_equal(srx.profile, want);
	assert_int_equal(ctx_.mki_len, 0);
	/* the client's write keys are what the server reads, and back */
	assert_memory_equal(&ctx_, &srx, sizeof(ctx_));
	assert_memory_equal(&crx, &stx, sizeof(crx));
	assert_memory_not_equal(ctx_.key, crx.key, kl);
	assert_memory_not_equal(ctx_.salt, crx.salt, sl);

	/* and they make working SRTP contexts */
	{
		struct kice_srtp *sc, *ss;
		uint8_t pkt[256] = {0x80, 0x00, 0x00, 0x01, 0, 0, 0, 1, 0, 0, 0, 9};
		size_t len = 12 + 40;

		assert_int_equal(kice_srtp_create(&sc, &ctx_, &crx), 0);
		assert_int_equal(kice_srtp_create(&ss, &stx, &srx), 0);
		assert_int_equal(kice_srtp_protect(sc, pkt, &len, sizeof(pkt)), 0);
		assert_int_equal(kice_srtp_unprotect(ss, pkt, &len), 0);
		assert_int_equal(len, 52);
		len = 12 + 40;
		memset(pkt + 12, 0, 40);
		assert_int_equal(kice_srtp_protect(ss, pkt, &len, sizeof(pkt)), 0);
		assert_int_equal(kice_srtp_unprotect(sc, pkt, &len), 0);
		kice_srtp_destroy(sc);
		kice_srtp_destroy(ss);
	}
}

/* ---- tests ---- */

static void test_cert_fingerprint(void **state)
{
	char buf[KICE_DTLS_FP_MAX];
	size_t i;

	(void)state;
	/* "sha-256 " and 32 hex pairs with colons: 95 characters */
	assert_int_equal(strlen(fp_c), 8 + 95);
	assert_int_equal(strlen(FP_HEX(fp_c)), 95);
	assert_memory_equal(fp_c, "sha-256 ", 8);
	for(i = 8; i < 8 + 95; i++) {
		if((i - 8) % 3 == 2)
			assert_int_equal(fp_c[i], ':');
		else
			assert_non_null(strchr("0123456789ABCDEF", fp_c[i]));
	}
	assert_string_not_equal(fp_c, fp_s);
	assert_int_equal(kice_dtls_cert_fingerprint(cert_c, buf, 103), -ENOSPC);
	assert_int_equal(kice_dtls_cert_fingerprint(cert_c, buf, 104), 103);
	assert_string_equal(buf, fp_c);
	assert_int_equal(kice_dtls_cert_fingerprint(NULL, buf, 96), -EINVAL);
	assert_int_equal(kice_dtls_cert_create(NULL), -EINVAL);
	kice_dtls_cert_destroy(NULL);
}

static void test_handshake(void **state)
{
	struct pair p;

	(void)state;
	pair_make(&p, cert_c, fp_s, cert_s, fp_c);
	pair_run(&p, 5000000);
	expect_keys(&p);
	/* nothing lost: no timer fired */
	assert_int_equal(p.done_us, p.t0);
	assert_int_equal(c2s.dropped + s2c.dropped, 0);
	print_message("clean handshake: %u + %u datagrams, largest %zu bytes, %s\n",
			c2s.sent, s2c.sent, c2s.max_len > s2c.max_len ? c2s.max_len : s2c.max_len,
			kice_dtls_cipher_name(p.c));
	/* start again and more input are harmless; no timer is left */
	assert_int_equal(kice_dtls_next_deadline(p.c), UINT64_MAX);
	assert_int_equal(kice_dtls_next_deadline(p.s), UINT64_MAX);
	assert_int_equal(kice_dtls_start(p.c, now_us), 0);
	kice_dtls_tick(p.c, now_us + 100000000);
	kice_dtls_tick(p.s, now_us + 100000000);
	assert_int_equal(kice_dtls_state(p.c), KICE_DTLS_CONNECTED);
	assert_int_equal(kice_dtls_state(p.s), KICE_DTLS_CONNECTED);
	pair_free(&p);
}

/* Other fingerprint algorithms and lower-case hex */
static void test_fingerprint_algs(void **state)
{
	static const struct
	{
		const char *alg;
		const EVP_MD *(*md)(void);
	} algs[] = {{"sha-1", EVP_sha1}, {"SHA-384", EVP_sha384},
			{"sha-512", EVP_sha512}, {"sha-224", EVP_sha224}};
	char hex[64 * 3 + 1];
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned n, i, j;
	struct pair p;
	X509 *x;
	FILE *f;
	char path[] = "/tmp/kice-dtls-XXXXXX";
	int fd;

	(void)state;
	/* an EC certificate written with OpenSSL and loaded: digest it here */
	{
		EVP_PKEY *pk = EVP_EC_gen("P-256");
		BIGNUM *bn = BN_new();
		struct kice_dtls_cert *lc;
		char kpath[] = "/tmp/kice-dtls-key-XXXXXX";

		x = X509_new();
		assert_non_null(pk);
		assert_non_null(x);
		assert_int_equal(BN_set_word(bn, 12345), 1);
		BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
		BN_free(bn);
		X509_gmtime_adj(X509_getm_notBefore(x), 0);
		X509_gmtime_adj(X509_getm_notAfter(x), 3600);
		X509_set_pubkey(x, pk);
		assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
		fd = mkstemp(path);
		assert_true(fd >= 0);
		f = fdopen(fd, "w");
		assert_int_equal(PEM_write_X509(f, x), 1);
		fclose(f);
		fd = mkstemp(kpath);
		assert_true(fd >= 0);
		f = fdopen(fd, "w");
		assert_int_equal(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL), 1);
		fclose(f);
		assert_int_equal(kice_dtls_cert_load(&lc, path, kpath), 0);
		unlink(path);
		unlink(kpath);
		EVP_PKEY_free(pk);

		for(i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
			assert_int_equal(X509_digest(x, algs[i].md(), md, &n), 1);
			for(j = 0; j < n; j++)
				sprintf(hex + 3 * j, "%02x%s", md[j], j + 1 < n ? ":" : "");
			q_reset();
			memset(&p, 0, sizeof(p));
			assert_int_equal(kice_dtls_create(&p.c, cert_c, KICE_DTLS_CLIENT,
									 algs[i].alg, hex, q_send, &c2s),
					0);
			assert_int_equal(kice_dtls_create(&p.s, lc, KICE_DTLS_SERVER,
									 "sha-256", FP_HEX(fp_c), q_send, &s2c),
					0);
			pair_run(&p, 5000000);
			expect_keys(&p);
			pair_free(&p);
		}
		kice_dtls_cert_destroy(lc);
		X509_free(x);
	}
}

/* The side that checks a wrong fingerprint fails, nobody gets keys */
static void test_fingerprint_mismatch(void **state)
{
	struct kice_srtp_keys tx, rx;
	struct pair p;

	(void)state;
	/* the client expects cert_x but the server shows cert_s */
	pair_make(&p, cert_c, fp_x, cert_s, fp_c);
	pair_run(&p, 60000000);
	assert_int_equal(kice_dtls_state(p.c), KICE_DTLS_FAILED);
	assert_int_equal(p.c_last, -EACCES);
	assert_non_null(strstr(kice_dtls_why(p.c), "fingerprint"));
	assert_int_not_equal(kice_dtls_state(p.s), KICE_DTLS_CONNECTED);
	assert_int_equal(kice_dtls_srtp_keys(p.c, &tx, &rx), -EAGAIN);
	assert_int_equal(kice_dtls_srtp_keys(p.s, &tx, &rx), -EAGAIN);
	assert_int_equal(kice_dtls_profile(p.c), KICE_SRTP_NONE);
	assert_string_equal(kice_dtls_cipher_name(p.c), "");
	/* a failed association stays failed */
	assert_int_equal(kice_dtls_start(p.c, now_us), -EPROTO);
	{
		static const uint8_t rec[] = {22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};

		assert_int_equal(kice_dtls_input(p.c, now_us, rec, sizeof(rec)), -EPROTO);
	}
	assert_int_equal(kice_dtls_next_deadline(p.c), UINT64_MAX);
	print_message("client: %s; server %s (%s)\n", kice_dtls_why(p.c),
			kice_dtls_state_name(kice_dtls_state(p.s)),
			kice_dtls_why(p.s) ? kice_dtls_why(p.s) : "-");
	pair_free(&p);

	/* the server expects cert_x but the client shows cert_c */
	pair_make(&p, cert_c, fp_s, cert_s, fp_x);
	pair_run(&p, 60000000);
	assert_int_equal(kice_dtls_state(p.s), KICE_DTLS_FAILED);
	assert_int_equal(p.s_last, -EACCES);
	assert_non_null(strstr(kice_dtls_why(p.s), "fingerprint"));
	assert_int_not_equal(kice_dtls_state(p.c), KICE_DTLS_CONNECTED);
	assert_int_equal(kice_dtls_srtp_keys(p.s, &tx, &rx), -EAGAIN);
	assert_int_equal(kice_dtls_srtp_keys(p.c, &tx, &rx), -EAGAIN);
	pair_free(&p);
}

/* Any one datagram lost, in either direction: the timers recover */
static void test_loss_single(void **state)
{
	struct pair p;
	unsigned nc, ns, i;

	(void)state;
	pair_make(&p, cert_c, fp_s, cert_s, fp_c);
	pair_run(&p, 5000000);
	nc = c2s.sent;
	ns = s2c.sent;
	pair_free(&p);

	for(i = 0; i < nc + ns; i++) {
		pair_make(&p, cert_c, fp_s, cert_s, fp_c);
		if(i < nc)
			c2s.drop_mask = 1ull << i;
		else
			s2c.drop_mask = 1ull << (i - nc);
		pair_run(&p, 20000000);
		assert_int_equal(c2s.dropped + s2c.dropped, 1);
		expect_keys(&p);
		assert_true(p.done_us - p.t0 >= KICE_DTLS_RTO_INITIAL_US);
		pair_free(&p);
	}
}

/* Whole flights lost several times, then random loss */
static void test_loss_flights(void **state)
{
	struct pair p;
	unsigned seed, lost = 0;

	(void)state;
	/* ClientHello lost three times: 0.5 + 1 + 2 s */
	pair_make(&p, cert_c, fp_s, cert_s, fp_c);
	c2s.drop_mask = 0x7;
	pair_run(&p, 30000000);
	expect_keys(&p);
	assert_int_equal(c2s.dropped, 3);
	assert_int_equal(p.done_us - p.t0,
			KICE_DTLS_RTO_INITIAL_US * (1 + 2 + 4));
	pair_free(&p);

	/* the server's first flight, three times */
	pair_make(&p, cert_c, fp_s, cert_s, fp_c);
	s2c.drop_mask = 0x7;
	pair_run(&p, 30000000);
	expect_keys(&p);
	assert_int_equal(s2c.dropped, 3);
	pair_free(&p);

	/* the client's second flight and the server's last, once each */
	pair_make(&p, cert_c, fp_s, cert_s, fp_c);
	c2s.drop_mask = 0x2;
	s2c.drop_mask = 0x2;
	pair_run(&p, 30000000);
	expect_keys(&p);
	pair_free(&p);

	/* 20 % random loss both ways, for a few seeds */
	for(seed = 1; seed <= 20; seed++) {
		pair_make(&p, cert_c, fp_s, cert_s, fp_c);
		c2s.loss_pct = s2c.loss_pct = 20;
		c2s.seed = seed;
		s2c.seed = seed * 7919;
		pair_run(&p, KICE_DTLS_HANDSHAKE_US);
		expect_keys(&p);
		lost += c2s.dropped + s2c.dropped;
		pair_free(&p);
	}
	assert_true(lost > 0);
}

/* No answer at all: the client gives up within the time limit */
static void test_give_up(void **state)
{
	struct pair p;
	uint64_t prev = 0, t;
	unsigned sent;

	(void)state;
	pair_make(&p, cert_c, fp_s, cert_s, fp_c);
	c2s.drop_all = true;
	assert_int_equal(kice_dtls_start(p.c, now_us), 0);
	p.t0 = now_us;
	sent = c2s.sent;
	assert_int_equal(sent, 1);
	for(;;) {
		t = kice_dtls_next_deadline(p.c);
		if(t == UINT64_MAX)
			break;
		assert_true(t > prev);
		prev = t;
		now_us = t;
		kice_dtls_tick(p.c, now_us);
	}
	assert_int_equal(kice_dtls_state(p.c), KICE_DTLS_FAILED);
	assert_non_null(kice_dtls_why(p.c));
	assert_true(now_us - p.t0 <= KICE_DTLS_HANDSHAKE_US);
	assert_true(c2s.sent >= 5); /* retransmitted, with backoff */
	assert_true(c2s.sent <= 15);
	assert_int_equal(kice_dtls_state(p.s), KICE_DTLS_NEW);
	print_message("gave up after %.1f s and %u ClientHellos: %s\n",
			(double)(now_us - p.t0) / 1e6, c2s.sent, kice_dtls_why(p.c));
	pair_free(&p);
}

/* Every prefix of a real ClientHello, then garbage, into fresh servers */
static void test_truncated_clienthello(void **state)
{
	struct kice_dtls *c, *s;
	uint8_t ch[PKT_MAX], *cp;
	size_t chlen, n;
	int r;

	(void)state;
	q_reset();
	assert_int_equal(kice_dtls_create(&c, cert_c, KICE_DTLS_CLIENT, "sha-256",
							 FP_HEX(fp_s), q_send, &c2s),
			0);
	assert_int_equal(kice_dtls_start(c, now_us), 0);
	assert_int_equal(c2s.n, 1);
	chlen = c2s.len[0];
	memcpy(ch, c2s.pkt[0], chlen);
	assert_int_equal(ch[0], 22); /* handshake record */
	kice_dtls_destroy(c);

	for(n = 1; n <= chlen; n++) {
		q_reset();
		assert_int_equal(kice_dtls_create(&s, cert_s, KICE_DTLS_SERVER,
								 "sha-256", FP_HEX(fp_c), q_send, &s2c),
				0);
		cp = malloc(n);
		memcpy(cp, ch, n);
		r = kice_dtls_input(s, now_us, cp, n);
		free(cp);
		assert_true(r == 0 || r == -EPROTO);
		assert_int_not_equal(kice_dtls_state(s), KICE_DTLS_CONNECTED);
		if(n < chlen)
			assert_int_equal(s2c.sent, 0);
		else
			assert_int_equal(s2c.sent, 1); /* the whole ClientHello: answered */
		kice_dtls_tick(s, now_us + 1000000);
		kice_dtls_destroy(s);
	}

	/* garbage in DTLS clothing, and what is not DTLS at all */
	q_reset();
	assert_int_equal(kice_dtls_create(&s, cert_s, KICE_DTLS_SERVER, "sha-256",
							 FP_HEX(fp_c), q_send, &s2c),
			0);
	{
		uint8_t g[300];
		unsigned i, j, seed = 1;

		for(i = 0; i < 2000; i++) {
			for(j = 0; j < sizeof(g); j++) {
				seed = seed * 1103515245u + 12345u;
				g[j] = (uint8_t)(seed >> 16);
			}
			g[0] = (uint8_t)(20 + i % 44);
			if(i % 3 == 0) { /* a plausible record header */
				g[1] = 0xfe;
				g[2] = 0xfd;
				g[11] = 0;
				g[12] = (uint8_t)(i % 200);
			}
			r = kice_dtls_input(s, now_us, g, 1 + i % sizeof(g));
			assert_true(r == 0 || r == -EPROTO);
		}
		g[0] = 0;
		assert_int_equal(kice_dtls_input(s, now_us, g, 10), -EBADMSG);
		g[0] = 128;
		assert_int_equal(kice_dtls_input(s, now_us, g, 10), -EBADMSG);
		assert_int_equal(kice_dtls_input(s, now_us, g, 0), -EBADMSG);
		assert_int_equal(kice_dtls_input(NULL, now_us, g, 1), -EINVAL);
	}
	assert_int_not_equal(kice_dtls_state(s), KICE_DTLS_CONNECTED);
	kice_dtls_destroy(s);
}

/* A peer without the use_srtp extension (RFC 5764 §4.1.1): the handshake
 * completes in DTLS terms, but we fail it, as there is no SRTP profile */
static void test_no_srtp_peer(void **state)
{
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	SSL_CTX *ctx;
	SSL *ssl;
	BIO *rb, *wb;
	struct kice_dtls *s;
	uint8_t md[32], buf[4096];
	char hex[100];
	unsigned n, j, round;
	int len, r = 0;

	(void)state;
	assert_non_null(pk);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 9);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, pk);
	assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
	assert_int_equal(X509_digest(x, EVP_sha256(), md, &n), 1);
	for(j = 0; j < n; j++)
		sprintf(hex + 3 * j, "%02X%s", md[j], j + 1 < n ? ":" : "");

	ctx = SSL_CTX_new(DTLS_client_method());
	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, pk), 1);
	ssl = SSL_new(ctx);
	rb = BIO_new(BIO_s_mem());
	wb = BIO_new(BIO_s_mem());
	BIO_set_mem_eof_return(rb, -1);
	SSL_set_bio(ssl, rb, wb);
	SSL_set_connect_state(ssl);

	q_reset();
	assert_int_equal(kice_dtls_create(&s, cert_s, KICE_DTLS_SERVER, "sha-256",
							 hex, q_send, &s2c),
			0);
	for(round = 0; round < 10 && r >= 0; round++) {
		(void)SSL_do_handshake(ssl);
		while((len = BIO_read(wb, buf, sizeof(buf))) > 0) {
			r = kice_dtls_input(s, now_us, buf, (size_t)len);
			if(r < 0)
				break;
		}
		while(s2c.n > 0) {
			BIO_write(rb, s2c.pkt[s2c.head], (int)s2c.len[s2c.head]);
			s2c.head++;
			s2c.n--;
		}
		s2c.head = 0;
	}
	assert_int_equal(r, -EPROTO);
	assert_int_equal(kice_dtls_state(s), KICE_DTLS_FAILED);
	assert_non_null(strstr(kice_dtls_why(s), "SRTP"));
	kice_dtls_destroy(s);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	X509_free(x);
	EVP_PKEY_free(pk);
}

static void write_file(char *path, const char *text)
{
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* A PEM certificate and RSA key from files: loads, shows the right
 * fingerprint, serves an ECDHE-RSA handshake; bad files are refused */
static void test_cert_load(void **state)
{
	char cpath[] = "/tmp/kice-dtls-crt-XXXXXX", kpath[] = "/tmp/kice-dtls-key-XXXXXX";
	char jpath[] = "/tmp/kice-dtls-junk-XXXXXX";
	char fp[KICE_DTLS_FP_MAX], want[KICE_DTLS_FP_MAX];
	struct kice_dtls_cert *lc, *bad;
	EVP_PKEY *pk, *other;
	uint8_t md[32];
	unsigned n, j;
	X509 *x;
	FILE *f;
	struct pair p;

	(void)state;
	pk = EVP_RSA_gen(2048);
	other = EVP_EC_gen("P-256");
	x = X509_new();
	assert_non_null(pk);
	assert_non_null(x);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, pk);
	assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
	write_file(cpath, "");
	write_file(kpath, "");
	f = fopen(cpath, "w");
	assert_int_equal(PEM_write_X509(f, x), 1);
	fclose(f);
	f = fopen(kpath, "w");
	assert_int_equal(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);

	assert_int_equal(kice_dtls_cert_load(&lc, cpath, kpath), 0);
	assert_int_equal(kice_dtls_cert_fingerprint(lc, fp, sizeof(fp)), 103);
	assert_int_equal(X509_digest(x, EVP_sha256(), md, &n), 1);
	strcpy(want, "sha-256 ");
	for(j = 0; j < n; j++)
		sprintf(want + 8 + 3 * j, "%02X%s", md[j], j + 1 < n ? ":" : "");
	assert_string_equal(fp, want);

	pair_make(&p, cert_c, fp, lc, fp_c);
	pair_run(&p, 5000000);
	expect_keys(&p);
	assert_non_null(strstr(kice_dtls_cipher_name(p.c), "RSA"));
	pair_free(&p);
	kice_dtls_cert_destroy(lc);

	/* missing files */
	assert_int_equal(kice_dtls_cert_load(&bad, "/nonexistent/c.pem", kpath), -ENOENT);
	assert_null(bad);
	assert_int_equal(kice_dtls_cert_load(&bad, cpath, "/nonexistent/k.pem"), -ENOENT);
	/* not PEM */
	write_file(jpath, "not a certificate\n");
	assert_int_equal(kice_dtls_cert_load(&bad, jpath, kpath), -EBADMSG);
	assert_int_equal(kice_dtls_cert_load(&bad, cpath, jpath), -EBADMSG);
	/* the key of another certificate */
	f = fopen(jpath, "w");
	assert_int_equal(PEM_write_PrivateKey(f, other, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	assert_int_equal(kice_dtls_cert_load(&bad, cpath, jpath), -EBADMSG);
	assert_null(bad);
	assert_int_equal(kice_dtls_cert_load(NULL, cpath, kpath), -EINVAL);

	unlink(cpath);
	unlink(kpath);
	unlink(jpath);
	EVP_PKEY_free(pk);
	EVP_PKEY_free(other);
	X509_free(x);
}

static void test_create_args(void **state)
{
	struct kice_dtls *d = (struct kice_dtls *)1;
	char hex[128];

	(void)state;
	assert_int_equal(kice_dtls_create(&d, cert_c, KICE_DTLS_CLIENT, "md5",
							 FP_HEX(fp_s), q_send, &c2s),
			-EINVAL);
	assert_null(d);
	/* sha-1 length for sha-256 */
	assert_int_equal(kice_dtls_create(&d, cert_c, KICE_DTLS_CLIENT, "sha-256",
							 "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01",
							 q_send, &c2s),
			-EINVAL);
	strcpy(hex, FP_HEX(fp_s));
	hex[2] = '-';
	assert_int_equal(kice_dtls_create(&d, cert_c, KICE_DTLS_CLIENT, "sha-256",
							 hex, q_send, &c2s),
			-EINVAL);
	strcpy(hex, FP_HEX(fp_s));
	hex[4] = 'G';
	assert_int_equal(kice_dtls_create(&d, cert_c, KICE_DTLS_CLIENT, "sha-256",
							 hex, q_send, &c2s),
			-EINVAL);
	strcpy(hex, FP_HEX(fp_s));
	strcat(hex, ":00");
	assert_int_equal(kice_dtls_create(&d, cert_c, KICE_DTLS_CLIENT, "sha-256",
							 hex, q_send, &c2s),
			-EINVAL);
	assert_int_equal(kice_dtls_create(&d, NULL, KICE_DTLS_CLIENT, "sha-256",
							 FP_HEX(fp_s), q_send, &c2s),
			-EINVAL);
	assert_int_equal(kice_dtls_create(&d, cert_c, KICE_DTLS_CLIENT, "sha-256",
							 FP_HEX(fp_s), NULL, &c2s),
			-EINVAL);
	assert_int_equal(kice_dtls_create(&d, cert_c, (enum kice_dtls_role)7,
							 "sha-256", FP_HEX(fp_s), q_send, &c2s),
			-EINVAL);
	assert_int_equal(kice_dtls_create(NULL, cert_c, KICE_DTLS_CLIENT,
							 "sha-256", FP_HEX(fp_s), q_send, &c2s),
			-EINVAL);
	/* a server that is started sends nothing and has no timer */
	q_reset();
	assert_int_equal(kice_dtls_create(&d, cert_s, KICE_DTLS_SERVER, "sha-256",
							 FP_HEX(fp_c), q_send, &s2c),
			0);
	assert_int_equal(kice_dtls_role(d), KICE_DTLS_SERVER);
	assert_int_equal(kice_dtls_start(d, now_us), 0);
	assert_int_equal(s2c.sent, 0);
	assert_int_equal(kice_dtls_state(d), KICE_DTLS_HANDSHAKING);
	assert_int_equal(kice_dtls_next_deadline(d), now_us + KICE_DTLS_HANDSHAKE_US);
	kice_dtls_destroy(d);
	kice_dtls_destroy(NULL);
	assert_string_equal(kice_dtls_state_name(KICE_DTLS_CONNECTED), "connected");
	assert_string_equal(kice_dtls_state_name(KICE_DTLS_FAILED), "failed");
}

static void test_setup_roles(void **state)
{
	enum kice_dtls_setup s;
	enum kice_dtls_role r;

	(void)state;
	assert_int_equal(kice_dtls_setup_parse(KICE_SLICE_LIT("actpass"), &s), 0);
	assert_int_equal(s, KICE_DTLS_SETUP_ACTPASS);
	assert_int_equal(kice_dtls_setup_parse(KICE_SLICE_LIT("ACTIVE"), &s), 0);
	assert_int_equal(s, KICE_DTLS_SETUP_ACTIVE);
	assert_int_equal(kice_dtls_setup_parse(KICE_SLICE_LIT("passive"), &s), 0);
	assert_int_equal(s, KICE_DTLS_SETUP_PASSIVE);
	assert_int_equal(kice_dtls_setup_parse(KICE_SLICE_LIT("holdconn"), &s), 0);
	assert_int_equal(s, KICE_DTLS_SETUP_HOLDCONN);
	assert_int_equal(kice_dtls_setup_parse(KICE_SLICE_LIT(""), &s), -EBADMSG);
	assert_int_equal(kice_dtls_setup_parse(KICE_SLICE_LIT("activ"), &s), -EBADMSG);
	assert_int_equal(kice_dtls_setup_parse(KICE_SLICE_LIT("actpass "), &s), -EBADMSG);
	assert_string_equal(kice_dtls_setup_name(KICE_DTLS_SETUP_PASSIVE), "passive");

	/* we answer an offer */
	assert_int_equal(kice_dtls_role_from_setup(KICE_DTLS_SETUP_ACTPASS, true, &r), 0);
	assert_int_equal(r, KICE_DTLS_CLIENT);
	assert_int_equal(kice_dtls_setup_for_role(r), KICE_DTLS_SETUP_ACTIVE);
	assert_int_equal(kice_dtls_role_from_setup(KICE_DTLS_SETUP_ACTIVE, true, &r), 0);
	assert_int_equal(r, KICE_DTLS_SERVER);
	assert_int_equal(kice_dtls_setup_for_role(r), KICE_DTLS_SETUP_PASSIVE);
	assert_int_equal(kice_dtls_role_from_setup(KICE_DTLS_SETUP_PASSIVE, true, &r), 0);
	assert_int_equal(r, KICE_DTLS_CLIENT);
	assert_int_equal(kice_dtls_role_from_setup(KICE_DTLS_SETUP_NONE, true, &r), 0);
	assert_int_equal(r, KICE_DTLS_SERVER);
	assert_int_equal(kice_dtls_role_from_setup(KICE_DTLS_SETUP_HOLDCONN, true, &r),
			-ENOENT);
	/* we read the answer to our actpass offer */
	assert_int_equal(kice_dtls_role_from_setup(KICE_DTLS_SETUP_ACTIVE, false, &r), 0);
	assert_int_equal(r, KICE_DTLS_SERVER);
	assert_int_equal(kice_dtls_role_from_setup(KICE_DTLS_SETUP_PASSIVE, false, &r), 0);
	assert_int_equal(r, KICE_DTLS_CLIENT);
	assert_int_equal(kice_dtls_role_from_setup(KICE_DTLS_SETUP_NONE, false, &r), 0);
	assert_int_equal(r, KICE_DTLS_CLIENT);
	assert_int_equal(kice_dtls_role_from_setup(KICE_DTLS_SETUP_ACTPASS, false, &r),
			-EBADMSG);
	assert_int_equal(kice_dtls_role_from_setup(KICE_DTLS_SETUP_HOLDCONN, false, &r),
			-ENOENT);
	assert_int_equal(kice_dtls_role_from_setup(KICE_DTLS_SETUP_ACTIVE, false, NULL),
			-EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
			cmocka_unit_test(test_cert_fingerprint),
			cmocka_unit_test(test_handshake),
			cmocka_unit_test(test_fingerprint_algs),
			cmocka_unit_test(test_fingerprint_mismatch),
			cmocka_unit_test(test_loss_single),
			cmocka_unit_test(test_loss_flights),
			cmocka_unit_test(test_give_up),
			cmocka_unit_test(test_no_srtp_peer),
			cmocka_unit_test(test_truncated_clienthello),
			cmocka_unit_test(test_cert_load),
			cmocka_unit_test(test_create_args),
			cmocka_unit_test(test_setup_roles),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
