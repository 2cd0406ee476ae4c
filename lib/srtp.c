/*
 * kamailio-ice: SRTP/SRTCP on libsrtp2 (RFC 3711) and SDES (RFC 4568).
 * See srtp.h.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <srtp2/srtp.h>

#include "log.h"
#include "srtp.h"

_Static_assert(KICE_SRTP_TRAILER_MAX == SRTP_MAX_TRAILER_LEN,
		"KICE_SRTP_TRAILER_MAX must match libsrtp2");
_Static_assert(KICE_SRTP_MKI_MAX <= SRTP_MAX_MKI_LEN, "MKI too long");

struct kice_srtp
{
	srtp_t tx, rx; /* separate sessions: an SSRC may appear both ways */
	bool tx_mki, rx_mki;
	struct kice_srtp_stats stats;
};

static bool inited;
static bool gcm_ok;

/* One profile: its lengths, names and libsrtp2 policy setters. */
struct profile
{
	enum kice_srtp_profile id;
	const char *name;	   /* RFC 5764 §4.1.2 / RFC 7714 §14.2 */
	const char *sdes_name; /* RFC 4568 §6.2 / RFC 7714 §14.1 */
	size_t key_len, salt_len;
	void (*rtp)(srtp_crypto_policy_t *);
	void (*rtcp)(srtp_crypto_policy_t *);
};

/* libsrtp2's "default" policies are AES_CM_128_HMAC_SHA1_80 */
static const struct profile profiles[] = {
		{KICE_SRTP_AES128_CM_SHA1_80, "SRTP_AES128_CM_SHA1_80",
				"AES_CM_128_HMAC_SHA1_80", 16, 14,
				srtp_crypto_policy_set_rtp_default,
				srtp_crypto_policy_set_rtcp_default},
		/* RFC 5764 §4.1.2 and RFC 4568 §6.2.2: SRTCP keeps the 80-bit tag */
		{KICE_SRTP_AES128_CM_SHA1_32, "SRTP_AES128_CM_SHA1_32",
				"AES_CM_128_HMAC_SHA1_32", 16, 14,
				srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32,
				srtp_crypto_policy_set_rtcp_default},
		/* RFC 7714 §12: 128-bit key, 96-bit salt, 16-octet tag */
		{KICE_SRTP_AEAD_AES_128_GCM, "SRTP_AEAD_AES_128_GCM",
				"AEAD_AES_128_GCM", 16, 12,
				srtp_crypto_policy_set_aes_gcm_128_16_auth,
				srtp_crypto_policy_set_aes_gcm_128_16_auth},
};

static const struct profile *profile_get(enum kice_srtp_profile id)
{
	size_t i;

	for(i = 0; i < sizeof(profiles) / sizeof(profiles[0]); i++)
		if(profiles[i].id == id)
			return &profiles[i];
	return NULL;
}

/* A throw-away session with the GCM policy tells whether libsrtp2 was
 * built with AEAD support (it needs OpenSSL or NSS underneath). */
static bool probe_gcm(void)
{
	uint8_t key[SRTP_AES_GCM_128_KEY_LEN_WSALT] = {0};
	srtp_policy_t p;
	srtp_t t = NULL;

	memset(&p, 0, sizeof(p));
	srtp_crypto_policy_set_aes_gcm_128_16_auth(&p.rtp);
	srtp_crypto_policy_set_aes_gcm_128_16_auth(&p.rtcp);
	p.ssrc.type = ssrc_any_outbound;
	p.key = key;
	if(srtp_create(&t, &p) != srtp_err_status_ok)
		return false;
	srtp_dealloc(t);
	return true;
}

int kice_srtp_init(void)
{
	srtp_err_status_t st;

	if(inited)
		return 0;
	st = srtp_init();
	if(st != srtp_err_status_ok) {
		KICE_ERR("srtp: srtp_init failed (libsrtp2 error %d)", (int)st);
		return -EIO;
	}
	inited = true;
	gcm_ok = probe_gcm();
	KICE_DBG("srtp: %s, AEAD_AES_128_GCM %s", srtp_get_version_string(),
			gcm_ok ? "available" : "not built in");
	return 0;
}

void kice_srtp_shutdown(void)
{
	if(!inited)
		return;
	srtp_shutdown();
	inited = false;
	gcm_ok = false;
}

bool kice_srtp_profile_supported(enum kice_srtp_profile p)
{
	if(!inited || profile_get(p) == NULL)
		return false;
	return p != KICE_SRTP_AEAD_AES_128_GCM || gcm_ok;
}

bool kice_srtp_profile_lengths(
		enum kice_srtp_profile p, size_t *key_len, size_t *salt_len)
{
	const struct profile *pr = profile_get(p);

	if(pr == NULL)
		return false;
	if(key_len)
		*key_len = pr->key_len;
	if(salt_len)
		*salt_len = pr->salt_len;
	return true;
}

const char *kice_srtp_profile_name(enum kice_srtp_profile p)
{
	const struct profile *pr = profile_get(p);

	if(p == KICE_SRTP_NONE)
		return "none";
	return pr ? pr->name : "unknown";
}

const char *kice_sdes_suite_name(enum kice_srtp_profile p)
{
	const struct profile *pr = profile_get(p);

	return pr ? pr->sdes_name : NULL;
}

static bool keys_ok(const struct kice_srtp_keys *k)
{
	const struct profile *pr = profile_get(k->profile);

	return pr != NULL && k->key_len == pr->key_len
		   && k->salt_len == pr->salt_len && k->mki_len <= KICE_SRTP_MKI_MAX;
}

/* One session for one direction. libsrtp2 wants key||salt in one buffer;
 * it expands the keys in srtp_create(), so the buffer is wiped after. */
static int session_create(srtp_t *out, const struct kice_srtp_keys *k,
		srtp_ssrc_type_t type, const char *dir)
{
	const struct profile *pr = profile_get(k->profile);
	uint8_t master[KICE_SRTP_KEY_MAX + KICE_SRTP_SALT_MAX];
	uint8_t mki[KICE_SRTP_MKI_MAX];
	srtp_master_key_t mk, *mkp = &mk;
	srtp_policy_t p;
	srtp_err_status_t st;

	memset(&p, 0, sizeof(p));
	pr->rtp(&p.rtp);
	pr->rtcp(&p.rtcp);
	memcpy(master, k->key, k->key_len);
	memcpy(master + k->key_len, k->salt, k->salt_len);
	p.ssrc.type = type;
	if(k->mki_len > 0) {
		memcpy(mki, k->mki, k->mki_len);
		mk.key = master;
		mk.mki_id = mki;
		mk.mki_size = (unsigned)k->mki_len;
		p.keys = &mkp;
		p.num_master_keys = 1;
	} else {
		p.key = master;
	}
	p.window_size = KICE_SRTP_REPLAY_WINDOW;
	/* the relay forwards what the far end retransmits unchanged */
	p.allow_repeat_tx = type == ssrc_any_outbound;
	st = srtp_create(out, &p);
	OPENSSL_cleanse(master, sizeof(master));
	if(st == srtp_err_status_ok)
		return 0;
	*out = NULL;
	KICE_ERR("srtp: %s context %s: libsrtp2 error %d", dir, pr->name, (int)st);
	return st == srtp_err_status_alloc_fail ? -ENOMEM : -EIO;
}

int kice_srtp_create(struct kice_srtp **out, const struct kice_srtp_keys *tx,
		const struct kice_srtp_keys *rx)
{
	struct kice_srtp *s = NULL;
	int ret;

	if(out == NULL || tx == NULL || rx == NULL)
		return -EINVAL;
	*out = NULL;
	if(!keys_ok(tx) || !keys_ok(rx))
		return -EINVAL;
	ret = kice_srtp_init();
	if(ret < 0)
		return ret;
	if(!kice_srtp_profile_supported(tx->profile)
			|| !kice_srtp_profile_supported(rx->profile))
		return -ENOTSUP;
	s = calloc(1, sizeof(*s));
	if(s == NULL)
		return -ENOMEM;
	ret = session_create(&s->tx, tx, ssrc_any_outbound, "tx");
	if(ret < 0)
		goto out;
	ret = session_create(&s->rx, rx, ssrc_any_inbound, "rx");
	if(ret < 0)
		goto out;
	s->tx_mki = tx->mki_len > 0;
	s->rx_mki = rx->mki_len > 0;
	*out = s;
	s = NULL;
out:
	kice_srtp_destroy(s);
	return ret;
}

void kice_srtp_destroy(struct kice_srtp *s)
{
	if(s == NULL)
		return;
	if(s->tx)
		srtp_dealloc(s->tx);
	if(s->rx)
		srtp_dealloc(s->rx);
	free(s);
}

const struct kice_srtp_stats *kice_srtp_stats(const struct kice_srtp *s)
{
	return &s->stats;
}

static int map_err(struct kice_srtp *s, srtp_err_status_t st)
{
	switch(st) {
		case srtp_err_status_ok:
			return 0;
		case srtp_err_status_auth_fail:
		case srtp_err_status_bad_mki: /* no key for this MKI */
			s->stats.auth_failures++;
			return -EACCES;
		case srtp_err_status_replay_fail:
		case srtp_err_status_replay_old:
			s->stats.replays++;
			return -EALREADY;
		default:
			s->stats.errors++;
			return -EBADMSG;
	}
}

/* RFC 3550 §5.1: version 2, and a fixed header of 12 octets (libsrtp2
 * checks the CSRC list and extension against the length) */
static bool rtp_ok(const uint8_t *pkt, size_t len)
{
	return len >= 12 && (pkt[0] >> 6) == 2;
}

/* RFC 3550 §6.4.1: version 2 and a header with the sender SSRC */
static bool rtcp_ok(const uint8_t *pkt, size_t len)
{
	return len >= 8 && (pkt[0] >> 6) == 2;
}

int kice_srtp_protect(struct kice_srtp *s, uint8_t *pkt, size_t *len, size_t cap)
{
	int n, ret;

	if(s == NULL || pkt == NULL || len == NULL)
		return -EINVAL;
	if(!rtp_ok(pkt, *len)) {
		s->stats.errors++;
		return -EBADMSG;
	}
	if(cap < *len || cap - *len < KICE_SRTP_TRAILER_MAX || cap > INT_MAX)
		return -ENOSPC;
	n = (int)*len;
	ret = map_err(s, srtp_protect_mki(s->tx, pkt, &n, s->tx_mki, 0));
	if(ret < 0)
		return ret;
	*len = (size_t)n;
	s->stats.protected_rtp++;
	return 0;
}

int kice_srtp_unprotect(struct kice_srtp *s, uint8_t *pkt, size_t *len)
{
	int n, ret;

	if(s == NULL || pkt == NULL || len == NULL)
		return -EINVAL;
	if(!rtp_ok(pkt, *len) || *len > INT_MAX) {
		s->stats.errors++;
		return -EBADMSG;
	}
	n = (int)*len;
	ret = map_err(s, srtp_unprotect_mki(s->rx, pkt, &n, s->rx_mki));
	if(ret < 0)
		return ret;
	*len = (size_t)n;
	s->stats.unprotected_rtp++;
	return 0;
}

int kice_srtp_protect_rtcp(
		struct kice_srtp *s, uint8_t *pkt, size_t *len, size_t cap)
{
	int n, ret;

	if(s == NULL || pkt == NULL || len == NULL)
		return -EINVAL;
	if(!rtcp_ok(pkt, *len)) {
		s->stats.errors++;
		return -EBADMSG;
	}
	if(cap < *len || cap - *len < KICE_SRTCP_TRAILER_MAX || cap > INT_MAX)
		return -ENOSPC;
	n = (int)*len;
	ret = map_err(s, srtp_protect_rtcp_mki(s->tx, pkt, &n, s->tx_mki, 0));
	if(ret < 0)
		return ret;
	*len = (size_t)n;
	s->stats.protected_rtcp++;
	return 0;
}

int kice_srtp_unprotect_rtcp(struct kice_srtp *s, uint8_t *pkt, size_t *len)
{
	int n, ret;

	if(s == NULL || pkt == NULL || len == NULL)
		return -EINVAL;
	if(!rtcp_ok(pkt, *len) || *len > INT_MAX) {
		s->stats.errors++;
		return -EBADMSG;
	}
	n = (int)*len;
	ret = map_err(s, srtp_unprotect_rtcp_mki(s->rx, pkt, &n, s->rx_mki));
	if(ret < 0)
		return ret;
	*len = (size_t)n;
	s->stats.unprotected_rtcp++;
	return 0;
}

/* ---- SDES (RFC 4568) ---- */

static bool is_b64(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
		   || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* Strict base64 (RFC 4648 §4) of s into out[0..want): exactly want bytes,
 * '=' only as final padding, which may be missing. */
static bool b64_decode(struct kice_slice s, uint8_t *out, size_t want)
{
	char in[68];
	uint8_t tmp[51];
	size_t n = s.len, pad = 0, i;
	int got;

	while(n > 0 && s.p[n - 1] == '=' && pad < 2) {
		n--;
		pad++;
	}
	if(n == 0 || n > 64 || n % 4 == 1)
		return false;
	for(i = 0; i < n; i++) {
		if(!is_b64(s.p[i]))
			return false;
		in[i] = s.p[i];
	}
	if(pad > 0 && (n + pad) % 4 != 0)
		return false;
	pad = (4 - n % 4) % 4;
	for(i = 0; i < pad; i++)
		in[n + i] = '=';
	got = EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)(n + pad));
	if(got < 0 || (size_t)got - pad != want) {
		OPENSSL_cleanse(tmp, sizeof(tmp));
		return false;
	}
	memcpy(out, tmp, want);
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return true;
}

/* Next whitespace-separated word of *s (RFC 4568 §9.1: 1*WSP) */
static bool word(struct kice_slice *s, struct kice_slice *w)
{
	while(s->len > 0 && (s->p[0] == ' ' || s->p[0] == '\t')) {
		s->p++;
		s->len--;
	}
	if(s->len == 0)
		return false;
	w->p = s->p;
	while(s->len > 0 && s->p[0] != ' ' && s->p[0] != '\t') {
		s->p++;
		s->len--;
	}
	w->len = (size_t)(s->p - w->p);
	return true;
}

/* lifetime = ["2^"] 1*(DIGIT) (RFC 4568 §9.1); 2^n up to 2^48 */
static bool lifetime_parse(struct kice_slice s, uint64_t *out)
{
	uint32_t v;

	if(kice_slice_prefix(s, "2^")) {
		s.p += 2;
		s.len -= 2;
		if(!kice_slice_u32(s, &v) || v > 48)
			return false;
		*out = (uint64_t)1 << v;
		return true;
	}
	if(!kice_slice_u32(s, &v) || v == 0)
		return false;
	*out = v;
	return true;
}

/* mki = mki-value ":" mki-length (RFC 4568 §9.1); the value must fit */
static bool mki_parse(struct kice_slice s, struct kice_srtp_keys *k)
{
	struct kice_slice val;
	uint32_t v, n;
	size_t i;

	if(!kice_slice_token(&s, ':', &val) || !kice_slice_u32(val, &v)
			|| !kice_slice_u32(s, &n) || n < 1 || n > KICE_SRTP_MKI_MAX)
		return false;
	if(n < 4 && v >> (8 * n) != 0)
		return false;
	for(i = 0; i < n; i++)
		k->mki[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	k->mki_len = n;
	return true;
}

static int key_params_parse(struct kice_slice s, struct kice_sdes *out)
{
	struct kice_slice kp, f;
	const struct profile *pr = profile_get(out->keys.profile);
	int nf = 0;

	/* several key parameters may follow, ';'-separated: use the first */
	(void)kice_slice_token(&s, ';', &kp);
	if(kp.len < 7 || !kice_slice_eqi(kice_slice_make(kp.p, 7), "inline:"))
		return -EBADMSG;
	kp.p += 7;
	kp.len -= 7;
	if(kp.len > 0 && kp.p[kp.len - 1] == '|')
		return -EBADMSG; /* an empty last field */
	if(!kice_slice_token(&kp, '|', &f))
		return -EBADMSG;
	{
		uint8_t ks[KICE_SRTP_KEY_MAX + KICE_SRTP_SALT_MAX];

		if(!b64_decode(f, ks, pr->key_len + pr->salt_len)) {
			OPENSSL_cleanse(ks, sizeof(ks));
			return -EBADMSG;
		}
		memcpy(out->keys.key, ks, pr->key_len);
		memcpy(out->keys.salt, ks + pr->key_len, pr->salt_len);
		out->keys.key_len = pr->key_len;
		out->keys.salt_len = pr->salt_len;
		OPENSSL_cleanse(ks, sizeof(ks));
	}
	/* ["|" lifetime] ["|" mki], in this order */
	while(kice_slice_token(&kp, '|', &f)) {
		if(++nf > 2)
			return -EBADMSG;
		if(memchr(f.p, ':', f.len) != NULL) {
			if(out->keys.mki_len > 0 || !mki_parse(f, &out->keys))
				return -EBADMSG;
		} else {
			if(nf != 1 || !lifetime_parse(f, &out->lifetime))
				return -EBADMSG;
		}
	}
	return 0;
}

/* RFC 4568 §6.3: only what we can honour is accepted */
static int session_param(struct kice_slice w, struct kice_sdes *out)
{
	struct kice_slice v;
	uint32_t n;

	if(w.len > 0 && w.p[0] == '-')
		return 0; /* §6.3.7: optional, MAY be ignored */
	if(kice_slice_prefix(w, "KDR=")) {
		v = kice_slice_make(w.p + 4, w.len - 4);
		/* libsrtp2 derives once; only a key derivation rate of 0 */
		return kice_slice_u32(v, &n) ? (n == 0 ? 0 : -ENOTSUP) : -EBADMSG;
	}
	if(kice_slice_prefix(w, "WSH=")) {
		v = kice_slice_make(w.p + 4, w.len - 4);
		if(!kice_slice_u32(v, &n) || n < 64) /* §6.3.6: at least 64 */
			return -EBADMSG;
		out->wsh = n;
		return 0;
	}
	/* UNENCRYPTED_SRTCP, UNENCRYPTED_SRTP, UNAUTHENTICATED_SRTP, FEC_ORDER,
	 * FEC_KEY and unknown mandatory ones: §6.3.7 invalid */
	return -ENOTSUP;
}

int kice_sdes_parse(struct kice_slice v, struct kice_sdes *out)
{
	struct kice_slice w;
	size_t i;
	int ret;

	if(out == NULL || (v.p == NULL && v.len > 0))
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	/* tag = 1*9DIGIT */
	if(!word(&v, &w) || w.len > 9 || !kice_slice_u32(w, &out->tag))
		return -EBADMSG;
	if(!word(&v, &w))
		return -EBADMSG;
	for(i = 0; i < sizeof(profiles) / sizeof(profiles[0]); i++)
		if(kice_slice_eq(w, profiles[i].sdes_name))
			out->keys.profile = profiles[i].id;
	if(out->keys.profile == KICE_SRTP_NONE)
		return -ENOTSUP;
	if(!word(&v, &w))
		return -EBADMSG;
	ret = key_params_parse(w, out);
	while(ret == 0 && word(&v, &w))
		ret = session_param(w, out);
	if(ret < 0)
		OPENSSL_cleanse(out, sizeof(*out));
	return ret;
}

int kice_sdes_format(const struct kice_sdes *sd, char *out, size_t cap)
{
	const struct profile *pr;
	uint8_t ks[KICE_SRTP_KEY_MAX + KICE_SRTP_SALT_MAX];
	char b64[68], extra[40];
	uint32_t mki = 0;
	size_t i, n;
	int len;

	if(sd == NULL || out == NULL)
		return -EINVAL;
	pr = profile_get(sd->keys.profile);
	if(pr == NULL || !keys_ok(&sd->keys) || sd->tag > 999999999)
		return -EINVAL;
	memcpy(ks, sd->keys.key, pr->key_len);
	memcpy(ks + pr->key_len, sd->keys.salt, pr->salt_len);
	EVP_EncodeBlock((unsigned char *)b64, ks, (int)(pr->key_len + pr->salt_len));
	OPENSSL_cleanse(ks, sizeof(ks));
	n = 0;
	extra[0] = '\0';
	if(sd->lifetime > 0) {
		for(i = 0; i <= 48 && ((uint64_t)1 << i) != sd->lifetime; i++)
			;
		if(i <= 48)
			n = (size_t)snprintf(extra, sizeof(extra), "|2^%zu", i);
		else
			n = (size_t)snprintf(extra, sizeof(extra), "|%llu",
					(unsigned long long)sd->lifetime);
	}
	if(sd->keys.mki_len > 0) {
		for(i = 0; i < sd->keys.mki_len; i++)
			mki = (mki << 8) | sd->keys.mki[i];
		snprintf(extra + n, sizeof(extra) - n, "|%u:%zu", mki,
				sd->keys.mki_len);
	}
	len = snprintf(out, cap, "%u %s inline:%s%s", sd->tag, pr->sdes_name,
			b64, extra);
	OPENSSL_cleanse(b64, sizeof(b64));
	if(len < 0 || (size_t)len >= cap) {
		if(cap > 0)
			OPENSSL_cleanse(out, cap);
		return -ENOSPC;
	}
	return len;
}

int kice_sdes_generate(enum kice_srtp_profile suite, struct kice_sdes *out)
{
	const struct profile *pr = profile_get(suite);

	if(out == NULL || pr == NULL)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->tag = 1;
	out->keys.profile = suite;
	out->keys.key_len = pr->key_len;
	out->keys.salt_len = pr->salt_len;
	if(RAND_bytes(out->keys.key, (int)pr->key_len) != 1
			|| RAND_bytes(out->keys.salt, (int)pr->salt_len) != 1) {
		OPENSSL_cleanse(out, sizeof(*out));
		return -EIO;
	}
	return 0;
}
