/*
 * kamailio-ice: DTLS-SRTP (RFC 5763, RFC 5764) on OpenSSL 3. See dtls.h.
 *
 * Records in: a memory BIO that holds one datagram at a time. Records
 * out: a BIO of ours whose every write is one datagram for the send
 * callback, so OpenSSL's flights keep their datagram boundaries and the
 * MTU we set (there is no socket to ask).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/srtp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "dtls.h"
#include "log.h"

#define CERT_CN "kamailio-ice"
#define CERT_DAYS 30
#define CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20:ECDHE+AES:!aNULL"
#define EXPORTER_LABEL "EXTRACTOR-dtls_srtp" /* RFC 5764 §4.2 */

struct kice_dtls_cert
{
	X509 *x509;
	EVP_PKEY *pkey;
	SSL_CTX *ctx; /* shared by the associations (they hold references) */
	char fp[KICE_DTLS_FP_MAX];
	size_t fp_len;
};

struct kice_dtls
{
	SSL *ssl;
	BIO *rbio; /* owned by ssl */
	enum kice_dtls_role role;
	enum kice_dtls_state state;
	kice_dtls_send_fn send;
	void *ctx;

	/* the peer's a=fingerprint */
	const EVP_MD *fp_md;
	uint8_t fp[EVP_MAX_MD_SIZE];
	unsigned fp_len;
	bool fp_checked;  /* the verify callback accepted the peer */
	bool fp_mismatch; /* ... or rejected it */

	uint64_t rtx_at;	   /* OpenSSL's retransmission timer, host clock */
	uint64_t give_up_at;   /* handshake time limit */
	enum kice_srtp_profile profile;
	const char *why;
};

/* ---- the outgoing BIO ---- */

static BIO_METHOD *out_method; /* process-wide, made on first use */

static int out_write(BIO *b, const char *buf, int len)
{
	struct kice_dtls *d = BIO_get_data(b);

	if(len <= 0)
		return 0;
	if(d != NULL && d->send != NULL)
		d->send(d->ctx, (const uint8_t *)buf, (size_t)len);
	return len;
}

static long out_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	switch(cmd) {
		case BIO_CTRL_FLUSH:
			return 1;
		case BIO_CTRL_DGRAM_QUERY_MTU:
			return KICE_DTLS_MTU;
		default: /* no pending data, no peer address, no MTU overhead */
			return 0;
	}
}

static int out_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static BIO_METHOD *out_method_get(void)
{
	BIO_METHOD *m;

	if(out_method != NULL)
		return out_method;
	m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "kice-dtls");
	if(m == NULL)
		return NULL;
	if(!BIO_meth_set_write(m, out_write) || !BIO_meth_set_ctrl(m, out_ctrl)
			|| !BIO_meth_set_create(m, out_create)) {
		BIO_meth_free(m);
		return NULL;
	}
	out_method = m;
	return m;
}

/* ---- certificate ---- */

static const char *ssl_err(void)
{
	const char *r = ERR_reason_error_string(ERR_peek_last_error());

	return r ? r : "unknown error";
}

/* RFC 5763 §5: the peer is who its a=fingerprint says; the certificate
 * is self-signed, so no chain is built: this replaces X509_verify_cert() */
static int verify_cb(X509_STORE_CTX *xs, void *arg)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(
			xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct kice_dtls *d = ssl ? SSL_get_app_data(ssl) : NULL;
	X509 *peer = X509_STORE_CTX_get0_cert(xs);
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned n = 0;

	(void)arg;
	if(d == NULL)
		return 0;
	if(peer == NULL || X509_digest(peer, d->fp_md, md, &n) != 1
			|| n != d->fp_len || CRYPTO_memcmp(md, d->fp, n) != 0) {
		d->fp_mismatch = true;
		X509_STORE_CTX_set_error(xs, X509_V_ERR_CERT_REJECTED);
		return 0;
	}
	d->fp_checked = true;
	X509_STORE_CTX_set_error(xs, X509_V_OK);
	return 1;
}

static void hex_colons(char *out, const uint8_t *md, unsigned n)
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned i;

	for(i = 0; i < n; i++) {
		*out++ = hex[md[i] >> 4];
		*out++ = hex[md[i] & 15];
		*out++ = i + 1 < n ? ':' : '\0';
	}
}

/* Build the SSL_CTX and the fingerprint of a cert whose x509 and pkey
 * are set. */
static int cert_finish(struct kice_dtls_cert *c)
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned n = 0;
	SSL_CTX *ctx;

	if(X509_digest(c->x509, EVP_sha256(), md, &n) != 1 || n != 32)
		return -EIO;
	memcpy(c->fp, "sha-256 ", 8);
	hex_colons(c->fp + 8, md, n);
	c->fp_len = 8 + n * 3 - 1;

	ctx = c->ctx = SSL_CTX_new(DTLS_method());
	if(ctx == NULL)
		return -EIO;
	/* RFC 8827 §6.5: DTLS 1.2 at least (OpenSSL 3.0 has no DTLS 1.3) */
	if(!SSL_CTX_set_min_proto_version(ctx, DTLS1_2_VERSION)
			|| SSL_CTX_use_certificate(ctx, c->x509) != 1
			|| SSL_CTX_use_PrivateKey(ctx, c->pkey) != 1
			|| SSL_CTX_check_private_key(ctx) != 1
			|| SSL_CTX_set_cipher_list(ctx, CIPHERS) != 1)
		return -EIO;
	/* both roles demand the peer's certificate (RFC 5763 §5) */
	SSL_CTX_set_verify(
			ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, verify_cb, NULL);
	SSL_CTX_set_options(ctx,
			SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_QUERY_MTU);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_read_ahead(ctx, 1);
	return 0;
}

int kice_dtls_cert_create(struct kice_dtls_cert **out)
{
	struct kice_dtls_cert *c;
	X509_NAME *name;
	BIGNUM *bn = NULL;
	uint8_t serial[8];
	int ret = -EIO;

	if(out == NULL)
		return -EINVAL;
	*out = NULL;
	c = calloc(1, sizeof(*c));
	if(c == NULL)
		return -ENOMEM;
	c->pkey = EVP_EC_gen("P-256");
	c->x509 = X509_new();
	if(c->pkey == NULL || c->x509 == NULL)
		goto out;
	/* RFC 5280 §4.1.2.2: positive, at most 20 octets */
	if(RAND_bytes(serial, sizeof(serial)) != 1)
		goto out;
	serial[0] &= 0x7f;
	serial[0] |= 0x01;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	name = X509_get_subject_name(c->x509);
	if(bn == NULL || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c->x509))
			|| !X509_set_version(c->x509, X509_VERSION_3)
			|| !X509_gmtime_adj(X509_getm_notBefore(c->x509), -86400)
			|| !X509_gmtime_adj(
					X509_getm_notAfter(c->x509), (long)CERT_DAYS * 86400)
			|| !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
					(const unsigned char *)CERT_CN, -1, -1, 0)
			|| !X509_set_issuer_name(c->x509, name)
			|| !X509_set_pubkey(c->x509, c->pkey)
			|| !X509_sign(c->x509, c->pkey, EVP_sha256()))
		goto out;
	ret = cert_finish(c);
out:
	BN_free(bn);
	if(ret < 0) {
		KICE_ERR("dtls: cannot make the certificate: %s", ssl_err());
		ERR_clear_error();
		kice_dtls_cert_destroy(c);
		return ret;
	}
	*out = c;
	return 0;
}

int kice_dtls_cert_load(struct kice_dtls_cert **out, const char *cert_path,
		const char *key_path)
{
	struct kice_dtls_cert *c;
	BIO *b;
	int ret;

	if(out == NULL || cert_path == NULL || key_path == NULL)
		return -EINVAL;
	*out = NULL;
	c = calloc(1, sizeof(*c));
	if(c == NULL)
		return -ENOMEM;
	ret = -ENOENT;
	b = BIO_new_file(cert_path, "r");
	if(b == NULL) {
		KICE_ERR("dtls: cannot read %s", cert_path);
		goto out;
	}
	c->x509 = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	b = BIO_new_file(key_path, "r");
	if(b == NULL) {
		KICE_ERR("dtls: cannot read %s", key_path);
		goto out;
	}
	c->pkey = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	ret = -EBADMSG;
	if(c->x509 == NULL || c->pkey == NULL) {
		KICE_ERR("dtls: no PEM %s in %s", c->x509 ? "private key" : "certificate",
				c->x509 ? key_path : cert_path);
		goto out;
	}
	if(X509_check_private_key(c->x509, c->pkey) != 1) {
		KICE_ERR("dtls: %s does not match %s", key_path, cert_path);
		goto out;
	}
	ret = cert_finish(c);
	if(ret < 0)
		KICE_ERR("dtls: cannot use %s: %s", cert_path, ssl_err());
out:
	ERR_clear_error();
	if(ret < 0) {
		kice_dtls_cert_destroy(c);
		return ret;
	}
	*out = c;
	return 0;
}

void kice_dtls_cert_destroy(struct kice_dtls_cert *c)
{
	if(c == NULL)
		return;
	SSL_CTX_free(c->ctx);
	X509_free(c->x509);
	EVP_PKEY_free(c->pkey);
	free(c);
}

int kice_dtls_cert_fingerprint(
		const struct kice_dtls_cert *c, char *out, size_t cap)
{
	if(c == NULL || out == NULL)
		return -EINVAL;
	if(cap <= c->fp_len)
		return -ENOSPC;
	memcpy(out, c->fp, c->fp_len + 1);
	return (int)c->fp_len;
}

/* ---- association ---- */

const char *kice_dtls_state_name(enum kice_dtls_state s)
{
	switch(s) {
		case KICE_DTLS_NEW:
			return "new";
		case KICE_DTLS_HANDSHAKING:
			return "handshaking";
		case KICE_DTLS_CONNECTED:
			return "connected";
		case KICE_DTLS_FAILED:
			return "failed";
		case KICE_DTLS_CLOSED:
			return "closed";
	}
	return "unknown";
}

static void set_state(struct kice_dtls *d, enum kice_dtls_state s)
{
	if(d->state == s)
		return;
	KICE_DBG("dtls %p (%s): %s -> %s", (void *)d,
			d->role == KICE_DTLS_CLIENT ? "client" : "server",
			kice_dtls_state_name(d->state), kice_dtls_state_name(s));
	d->state = s;
}

static int fail(struct kice_dtls *d, const char *why, int code)
{
	d->why = why;
	set_state(d, KICE_DTLS_FAILED);
	ERR_clear_error();
	return code;
}

/* RFC 8122 §5 hash names */
static const EVP_MD *fp_md(const char *alg)
{
	if(strcasecmp(alg, "sha-1") == 0)
		return EVP_sha1();
	if(strcasecmp(alg, "sha-224") == 0)
		return EVP_sha224();
	if(strcasecmp(alg, "sha-256") == 0)
		return EVP_sha256();
	if(strcasecmp(alg, "sha-384") == 0)
		return EVP_sha384();
	if(strcasecmp(alg, "sha-512") == 0)
		return EVP_sha512();
	return NULL;
}

static int hexval(char c)
{
	if(c >= '0' && c <= '9')
		return c - '0';
	if(c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if(c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* fingerprint = 2UHEX *(":" 2UHEX) (RFC 8122 §5), any case; exactly n */
static bool fp_parse(const char *s, uint8_t *out, unsigned n)
{
	unsigned i;
	int hi, lo;

	for(i = 0; i < n; i++) {
		if(i > 0 && *s++ != ':')
			return false;
		hi = hexval(s[0]);
		lo = hi < 0 ? -1 : hexval(s[1]);
		if(lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
		s += 2;
	}
	return *s == '\0';
}

/* RFC 6347 §4.2.4.1: double the timer at each retransmission, up to a
 * cap; 0 asks for the initial value (a new flight) */
static unsigned int timer_cb(SSL *ssl, unsigned int prev_us)
{
	(void)ssl;
	if(prev_us == 0)
		return KICE_DTLS_RTO_INITIAL_US;
	if(prev_us >= KICE_DTLS_RTO_MAX_US / 2)
		return KICE_DTLS_RTO_MAX_US;
	return prev_us * 2;
}

int kice_dtls_create(struct kice_dtls **out, struct kice_dtls_cert *cert,
		enum kice_dtls_role role, const char *remote_fp_alg,
		const char *remote_fp_hex, kice_dtls_send_fn send, void *ctx)
{
	struct kice_dtls *d;
	BIO *wbio;
	const char *profiles;
	int ret = -EIO;

	if(out == NULL)
		return -EINVAL;
	*out = NULL;
	if(cert == NULL || remote_fp_alg == NULL || remote_fp_hex == NULL
			|| send == NULL
			|| (role != KICE_DTLS_CLIENT && role != KICE_DTLS_SERVER))
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if(d == NULL)
		return -ENOMEM;
	d->role = role;
	d->send = send;
	d->ctx = ctx;
	d->rtx_at = UINT64_MAX;
	d->give_up_at = UINT64_MAX;
	d->fp_md = fp_md(remote_fp_alg);
	if(d->fp_md == NULL) {
		ret = -EINVAL;
		goto out;
	}
	d->fp_len = (unsigned)EVP_MD_get_size(d->fp_md);
	if(!fp_parse(remote_fp_hex, d->fp, d->fp_len)) {
		ret = -EINVAL;
		goto out;
	}

	(void)kice_srtp_init();
	/* RFC 5764 §4.1.2: the server picks; OpenSSL picks in our order */
	profiles = kice_srtp_profile_supported(KICE_SRTP_AEAD_AES_128_GCM)
					   ? "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80"
					   : "SRTP_AES128_CM_SHA1_80";
	if(out_method_get() == NULL)
		goto out;
	d->ssl = SSL_new(cert->ctx);
	if(d->ssl == NULL)
		goto out;
	d->rbio = BIO_new(BIO_s_mem());
	wbio = BIO_new(out_method);
	if(d->rbio == NULL || wbio == NULL) {
		BIO_free(d->rbio);
		BIO_free(wbio);
		d->rbio = NULL;
		goto out;
	}
	BIO_set_mem_eof_return(d->rbio, -1); /* empty: retry, not EOF */
	BIO_set_data(wbio, d);
	SSL_set_bio(d->ssl, d->rbio, wbio);
	SSL_set_app_data(d->ssl, d);
	/* SSL_set_tlsext_use_srtp() returns 0 on success */
	if(SSL_set_tlsext_use_srtp(d->ssl, profiles) != 0
			|| !SSL_set_mtu(d->ssl, KICE_DTLS_MTU))
		goto out;
	DTLS_set_timer_cb(d->ssl, timer_cb);
	if(role == KICE_DTLS_CLIENT)
		SSL_set_connect_state(d->ssl);
	else
		SSL_set_accept_state(d->ssl);
	ret = 0;
out:
	if(ret < 0) {
		if(ret == -EIO)
			KICE_ERR("dtls: cannot create an association: %s", ssl_err());
		ERR_clear_error();
		kice_dtls_destroy(d);
		return ret;
	}
	*out = d;
	return 0;
}

void kice_dtls_destroy(struct kice_dtls *d)
{
	BIO *w;

	if(d == NULL)
		return;
	if(d->ssl) {
		w = SSL_get_wbio(d->ssl);
		if(w)
			BIO_set_data(w, NULL);
		SSL_free(d->ssl);
	}
	OPENSSL_cleanse(d, sizeof(*d));
	free(d);
}

/* OpenSSL's timer runs on the wall clock: convert what is left of it to
 * the host's clock */
static void rtx_update(struct kice_dtls *d, uint64_t now_us)
{
	struct timeval tv;

	d->rtx_at = UINT64_MAX;
	if(d->state != KICE_DTLS_HANDSHAKING && d->state != KICE_DTLS_CONNECTED)
		return;
	if(DTLSv1_get_timeout(d->ssl, &tv) == 1)
		d->rtx_at = now_us + (uint64_t)tv.tv_sec * 1000000u
					+ (uint64_t)tv.tv_usec;
}

static void begin(struct kice_dtls *d, uint64_t now_us)
{
	set_state(d, KICE_DTLS_HANDSHAKING);
	d->give_up_at = now_us + KICE_DTLS_HANDSHAKE_US;
}

static int connected(struct kice_dtls *d)
{
	SRTP_PROTECTION_PROFILE *p = SSL_get_selected_srtp_profile(d->ssl);

	/* the verify callback ran and accepted the peer's certificate */
	if(!d->fp_checked || SSL_get0_peer_certificate(d->ssl) == NULL)
		return fail(d, "peer certificate not verified", -EACCES);
	/* RFC 5764 §4.1.1: no use_srtp extension in the answer, no SRTP */
	if(p == NULL)
		return fail(d, "no SRTP protection profile negotiated", -EPROTO);
	switch(p->id) {
		case SRTP_AES128_CM_SHA1_80:
			d->profile = KICE_SRTP_AES128_CM_SHA1_80;
			break;
		case SRTP_AEAD_AES_128_GCM:
			d->profile = KICE_SRTP_AEAD_AES_128_GCM;
			break;
		default:
			return fail(d, "unexpected SRTP protection profile", -EPROTO);
	}
	d->give_up_at = UINT64_MAX;
	set_state(d, KICE_DTLS_CONNECTED);
	KICE_DBG("dtls %p: connected, %s, %s", (void *)d,
			SSL_get_cipher_name(d->ssl), p->name);
	return 1;
}

/* After an OpenSSL call returned r <= 0: carry on or fail */
static int check(struct kice_dtls *d, int r)
{
	int err = SSL_get_error(d->ssl, r);

	switch(err) {
		case SSL_ERROR_WANT_READ:
		case SSL_ERROR_WANT_WRITE:
			ERR_clear_error();
			return 0;
		case SSL_ERROR_ZERO_RETURN: /* close_notify */
			set_state(d, KICE_DTLS_CLOSED);
			ERR_clear_error();
			return 0;
		default:
			if(d->fp_mismatch)
				return fail(d, "peer certificate does not match a=fingerprint",
						-EACCES);
			return fail(d, ssl_err(), -EPROTO);
	}
}

static int handshake(struct kice_dtls *d)
{
	int r;

	ERR_clear_error();
	r = SSL_do_handshake(d->ssl);
	if(r == 1)
		return connected(d);
	return check(d, r);
}

/* After the handshake: SSL_read() lets OpenSSL answer a retransmitted
 * final flight (our last flight was lost) and see alerts. Application
 * data has no use here and is dropped. */
static int drain(struct kice_dtls *d)
{
	uint8_t buf[1500];
	int i, r;

	for(i = 0; i < 16; i++) {
		ERR_clear_error();
		r = SSL_read(d->ssl, buf, sizeof(buf));
		if(r <= 0)
			return check(d, r);
	}
	return 0;
}

int kice_dtls_start(struct kice_dtls *d, uint64_t now_us)
{
	int ret;

	if(d == NULL)
		return -EINVAL;
	if(d->state == KICE_DTLS_FAILED || d->state == KICE_DTLS_CLOSED)
		return -EPROTO;
	if(d->state != KICE_DTLS_NEW)
		return 0;
	begin(d, now_us);
	ret = handshake(d);
	rtx_update(d, now_us);
	return ret < 0 ? ret : 0;
}

int kice_dtls_input(
		struct kice_dtls *d, uint64_t now_us, const uint8_t *pkt, size_t len)
{
	int ret;

	if(d == NULL || (pkt == NULL && len > 0))
		return -EINVAL;
	/* RFC 7983 §7: DTLS if the first byte is 20..63 */
	if(len == 0 || pkt[0] < 20 || pkt[0] > 63 || len > INT_MAX)
		return -EBADMSG;
	if(d->state == KICE_DTLS_FAILED || d->state == KICE_DTLS_CLOSED)
		return -EPROTO;
	if(d->state == KICE_DTLS_NEW)
		begin(d, now_us);
	if(BIO_write(d->rbio, pkt, (int)len) != (int)len) {
		ERR_clear_error();
		(void)BIO_reset(d->rbio);
		return -ENOMEM;
	}
	if(d->state == KICE_DTLS_CONNECTED)
		ret = drain(d);
	else
		ret = handshake(d);
	/* one datagram at a time: what OpenSSL left unread is dropped */
	(void)BIO_reset(d->rbio);
	rtx_update(d, now_us);
	return ret;
}

void kice_dtls_tick(struct kice_dtls *d, uint64_t now_us)
{
	if(d == NULL)
		return;
	if(d->state == KICE_DTLS_HANDSHAKING && now_us >= d->give_up_at) {
		KICE_DBG("dtls %p: handshake timed out", (void *)d);
		fail(d, "handshake timed out", -ETIMEDOUT);
	}
	if(d->state != KICE_DTLS_HANDSHAKING && d->state != KICE_DTLS_CONNECTED)
		return;
	if(now_us >= d->rtx_at) {
		ERR_clear_error();
		/* < 0: OpenSSL gave up after DTLS1_TMO_ALERT_COUNT timeouts */
		if(DTLSv1_handle_timeout(d->ssl) < 0) {
			fail(d, ssl_err(), -ETIMEDOUT);
			return;
		}
		ERR_clear_error();
	}
	rtx_update(d, now_us);
}

uint64_t kice_dtls_next_deadline(const struct kice_dtls *d)
{
	if(d == NULL)
		return UINT64_MAX;
	if(d->state == KICE_DTLS_HANDSHAKING)
		return d->rtx_at < d->give_up_at ? d->rtx_at : d->give_up_at;
	if(d->state == KICE_DTLS_CONNECTED)
		return d->rtx_at;
	return UINT64_MAX;
}

enum kice_dtls_state kice_dtls_state(const struct kice_dtls *d)
{
	return d->state;
}

enum kice_dtls_role kice_dtls_role(const struct kice_dtls *d)
{
	return d->role;
}

const char *kice_dtls_why(const struct kice_dtls *d)
{
	return d->why;
}

enum kice_srtp_profile kice_dtls_profile(const struct kice_dtls *d)
{
	return d->state == KICE_DTLS_CONNECTED ? d->profile : KICE_SRTP_NONE;
}

const char *kice_dtls_cipher_name(const struct kice_dtls *d)
{
	const char *n;

	if(d == NULL || d->state != KICE_DTLS_CONNECTED)
		return "";
	n = SSL_get_cipher_name(d->ssl);
	return n ? n : "";
}

const char *kice_dtls_profile_name(const struct kice_dtls *d)
{
	if(d == NULL || d->state != KICE_DTLS_CONNECTED)
		return "";
	return kice_srtp_profile_name(d->profile);
}

int kice_dtls_srtp_keys(const struct kice_dtls *d, struct kice_srtp_keys *tx,
		struct kice_srtp_keys *rx)
{
	uint8_t km[2 * (KICE_SRTP_KEY_MAX + KICE_SRTP_SALT_MAX)];
	struct kice_srtp_keys *ck, *sk;
	size_t kl, sl;

	if(d == NULL || tx == NULL || rx == NULL)
		return -EINVAL;
	if(d->state != KICE_DTLS_CONNECTED
			|| !kice_srtp_profile_lengths(d->profile, &kl, &sl))
		return -EAGAIN;
	if(SSL_export_keying_material(d->ssl, km, 2 * (kl + sl), EXPORTER_LABEL,
			   sizeof(EXPORTER_LABEL) - 1, NULL, 0, 0)
			!= 1) {
		KICE_ERR("dtls %p: keying material export failed: %s", (void *)d,
				ssl_err());
		ERR_clear_error();
		return -EIO;
	}
	memset(tx, 0, sizeof(*tx));
	memset(rx, 0, sizeof(*rx));
	/* RFC 5764 §4.2: client_write_SRTP_master_key[kl],
	 * server_write_SRTP_master_key[kl], client_write_SRTP_master_salt[sl],
	 * server_write_SRTP_master_salt[sl] */
	ck = d->role == KICE_DTLS_CLIENT ? tx : rx;
	sk = d->role == KICE_DTLS_CLIENT ? rx : tx;
	memcpy(ck->key, km, kl);
	memcpy(sk->key, km + kl, kl);
	memcpy(ck->salt, km + 2 * kl, sl);
	memcpy(sk->salt, km + 2 * kl + sl, sl);
	ck->profile = sk->profile = d->profile;
	ck->key_len = sk->key_len = kl;
	ck->salt_len = sk->salt_len = sl;
	OPENSSL_cleanse(km, sizeof(km));
	return 0;
}

/* ---- a=setup (RFC 4145 §4, RFC 8842) ---- */

static const char *const setup_names[] = {
		[KICE_DTLS_SETUP_NONE] = "",
		[KICE_DTLS_SETUP_ACTPASS] = "actpass",
		[KICE_DTLS_SETUP_ACTIVE] = "active",
		[KICE_DTLS_SETUP_PASSIVE] = "passive",
		[KICE_DTLS_SETUP_HOLDCONN] = "holdconn",
};

int kice_dtls_setup_parse(struct kice_slice s, enum kice_dtls_setup *out)
{
	unsigned i;

	if(out == NULL)
		return -EINVAL;
	for(i = KICE_DTLS_SETUP_ACTPASS; i <= KICE_DTLS_SETUP_HOLDCONN; i++) {
		if(kice_slice_eqi(s, setup_names[i])) {
			*out = (enum kice_dtls_setup)i;
			return 0;
		}
	}
	return -EBADMSG;
}

const char *kice_dtls_setup_name(enum kice_dtls_setup s)
{
	if((unsigned)s > KICE_DTLS_SETUP_HOLDCONN)
		return "";
	return setup_names[s];
}

int kice_dtls_role_from_setup(enum kice_dtls_setup remote,
		bool we_are_answerer, enum kice_dtls_role *role)
{
	if(role == NULL)
		return -EINVAL;
	switch(remote) {
		case KICE_DTLS_SETUP_ACTPASS:
			if(!we_are_answerer)
				return -EBADMSG;
			/* RFC 5763 §5: the answerer SHOULD be active, so the
			 * handshake can start as soon as the answer is out */
			*role = KICE_DTLS_CLIENT;
			return 0;
		case KICE_DTLS_SETUP_ACTIVE:
			*role = KICE_DTLS_SERVER;
			return 0;
		case KICE_DTLS_SETUP_PASSIVE:
			*role = KICE_DTLS_CLIENT;
			return 0;
		case KICE_DTLS_SETUP_NONE:
			/* RFC 4145 §4: absent means active in an offer and passive
			 * in an answer */
			*role = we_are_answerer ? KICE_DTLS_SERVER : KICE_DTLS_CLIENT;
			return 0;
		case KICE_DTLS_SETUP_HOLDCONN:
			return -ENOENT;
	}
	return -EINVAL;
}

enum kice_dtls_setup kice_dtls_setup_for_role(enum kice_dtls_role role)
{
	return role == KICE_DTLS_CLIENT ? KICE_DTLS_SETUP_ACTIVE
									: KICE_DTLS_SETUP_PASSIVE;
}
