/*
 * kamailio-ice: STUN message codec (RFC 8489), sans-I/O.
 *
 * The parser borrows the caller's buffer: struct kice_stun_msg holds
 * pointers, slices and offsets into it and must not outlive it. Nothing
 * is allocated by this unit; HMAC and MD5 go through OpenSSL, which may
 * allocate internally. No function keeps state between calls: all of them
 * may run in any process and thread without locks. The unit logs only
 * when OpenSSL itself fails; parse errors go back to the caller in
 * out->why, to be logged where the call and leg are known.
 *
 * Receiving: kice_stun_parse() checks framing and decodes the attributes
 * an ICE agent needs. USERNAME only selects the credentials; the caller
 * verifies MESSAGE-INTEGRITY with kice_stun_check_integrity() before it
 * acts on anything else in the message.
 *
 * Sending: struct kice_stun_wr fills a caller buffer; errors are sticky
 * and kice_stun_wr_finish() reports the first one.
 */
#ifndef KICE_STUN_H
#define KICE_STUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "slice.h"

#define KICE_STUN_HDR_LEN	 20
#define KICE_STUN_TID_LEN	 12
#define KICE_STUN_MAGIC		 0x2112a442u
#define KICE_STUN_MI_LEN	 20 /* HMAC-SHA1 */
#define KICE_STUN_LT_KEY_LEN 16 /* MD5 */

/* Message types (method Binding, RFC 8489 §18.2) */
#define KICE_STUN_BINDING_REQUEST	 0x0001
#define KICE_STUN_BINDING_INDICATION 0x0011
#define KICE_STUN_BINDING_SUCCESS	 0x0101
#define KICE_STUN_BINDING_ERROR		 0x0111

#define KICE_STUN_METHOD_BINDING 0x001

/* Classes (RFC 8489 §5), as returned by kice_stun_class() */
#define KICE_STUN_CLASS_REQUEST	   0
#define KICE_STUN_CLASS_INDICATION 1
#define KICE_STUN_CLASS_SUCCESS	   2
#define KICE_STUN_CLASS_ERROR	   3

/* Attribute types: RFC 8489 §18.3, RFC 8445 §16.1 */
#define KICE_STUN_ATTR_MAPPED_ADDRESS			0x0001
#define KICE_STUN_ATTR_USERNAME					0x0006
#define KICE_STUN_ATTR_MESSAGE_INTEGRITY		0x0008
#define KICE_STUN_ATTR_ERROR_CODE				0x0009
#define KICE_STUN_ATTR_UNKNOWN_ATTRIBUTES		0x000a
#define KICE_STUN_ATTR_REALM					0x0014
#define KICE_STUN_ATTR_NONCE					0x0015
#define KICE_STUN_ATTR_MESSAGE_INTEGRITY_SHA256 0x001c
#define KICE_STUN_ATTR_XOR_MAPPED_ADDRESS		0x0020
#define KICE_STUN_ATTR_PRIORITY					0x0024
#define KICE_STUN_ATTR_USE_CANDIDATE			0x0025
#define KICE_STUN_ATTR_SOFTWARE					0x8022
#define KICE_STUN_ATTR_FINGERPRINT				0x8028
#define KICE_STUN_ATTR_ICE_CONTROLLED			0x8029
#define KICE_STUN_ATTR_ICE_CONTROLLING			0x802a

/* Error codes (RFC 8489 §14.8, RFC 8445 §7.3.1.1) */
#define KICE_STUN_ERR_BAD_REQUEST		400
#define KICE_STUN_ERR_UNAUTHENTICATED	401
#define KICE_STUN_ERR_UNKNOWN_ATTRIBUTE 420
#define KICE_STUN_ERR_ROLE_CONFLICT		487

/* Distinct unknown comprehension-required attributes one message may carry */
#define KICE_STUN_MAX_UNKNOWN 16

/* A parsed message. Borrows buf: every pointer and slice points into it. */
struct kice_stun_msg
{
	const uint8_t *buf; /* the whole message */
	size_t len;			/* KICE_STUN_HDR_LEN + header length field */
	uint16_t type;
	const uint8_t *tid; /* KICE_STUN_TID_LEN bytes, in buf */

	/* Only the first occurrence of each attribute is recorded. Attributes
	 * after MESSAGE-INTEGRITY are ignored (see kice_stun_parse()). */
	bool has_username, has_software, has_realm, has_nonce;
	struct kice_slice username, software, realm, nonce;

	bool has_mi;   /* MESSAGE-INTEGRITY, value is 20 bytes */
	size_t mi_off; /* offset of its attribute header in buf */
	bool has_mi_sha256;
	size_t mi_sha256_off; /* recorded only: not verified by this unit */
	bool has_fp;		  /* FINGERPRINT, always the last attribute */
	size_t fp_off;

	/* Decoded addresses: sockaddr_in or sockaddr_in6, port in network
	 * order, as recvfrom() fills them */
	bool has_xor_mapped, has_mapped;
	struct sockaddr_storage xor_mapped, mapped;

	bool has_priority;
	uint32_t priority;
	bool use_candidate;
	bool has_controlling, has_controlled;
	uint64_t controlling, controlled; /* tie-breakers */

	bool has_error;
	uint16_t error_code; /* 300..699 */
	struct kice_slice error_reason;

	/* UNKNOWN-ATTRIBUTES as received: n_unknown_attrs 16-bit types in
	 * network order at unknown_attrs; read with kice_stun_unknown_attr() */
	bool has_unknown_attrs;
	const uint8_t *unknown_attrs;
	size_t n_unknown_attrs;

	/* Comprehension-required attributes (type < 0x8000) this parser does
	 * not understand, each listed once: a server answers a request
	 * carrying any with 420 and these in UNKNOWN-ATTRIBUTES. */
	uint16_t unknown[KICE_STUN_MAX_UNKNOWN];
	size_t n_unknown;

	/* On -EBADMSG/-ENOSPC: a static reason and the byte offset of the
	 * header field or attribute header at fault. */
	const char *why;
	size_t why_off;
};

/* Output writer. Fills buf (cap bytes, owned by the caller). */
struct kice_stun_wr
{
	uint8_t *buf;
	size_t cap, len;
	int err;	 /* first error, sticky; 0 while all is well */
	uint8_t pad; /* padding byte, 0 unless reproducing RFC 5769 vectors */
	bool mi, fp; /* MESSAGE-INTEGRITY / FINGERPRINT already written */
};

/* RFC 8489 §5 type layout: M11..M7 C1 M6..M4 C0 M3..M0 */
static inline unsigned kice_stun_class(uint16_t type)
{
	return ((type >> 7) & 0x2) | ((type >> 4) & 0x1);
}

static inline uint16_t kice_stun_method(uint16_t type)
{
	return (uint16_t)((type & 0x000f) | ((type >> 1) & 0x0070)
					  | ((type >> 2) & 0x0f80));
}

static inline uint16_t kice_stun_type(uint16_t method, unsigned cls)
{
	return (uint16_t)((method & 0x000f) | ((method & 0x0070) << 1)
					  | ((method & 0x0f80) << 2) | ((cls & 0x1) << 4)
					  | ((cls & 0x2) << 7));
}

/* i-th type listed in a received UNKNOWN-ATTRIBUTES (i < n_unknown_attrs) */
static inline uint16_t kice_stun_unknown_attr(
		const struct kice_stun_msg *m, size_t i)
{
	return (uint16_t)((m->unknown_attrs[2 * i] << 8)
					  | m->unknown_attrs[2 * i + 1]);
}

/*
 * Cheap demultiplexing test (RFC 7983 §7 first byte 0..3, then RFC 8489
 * §5 magic cookie, length a multiple of 4 that matches len). Borrows p.
 * A true answer does not mean kice_stun_parse() will accept the message.
 */
bool kice_is_stun(const uint8_t *p, size_t len);

/*
 * Parse one STUN message that fills buf[0..len) exactly (one datagram).
 * Validates the header and the attribute framing, then decodes known
 * attributes into *out, which borrows buf. Integrity and fingerprint are
 * not checked here: see kice_stun_check_integrity/_fingerprint().
 * Returns 0; -EBADMSG (malformed, out->why/why_off say why and where);
 * -ENOSPC (more than KICE_STUN_MAX_UNKNOWN unknown comprehension-required
 * attributes); -EINVAL (out or buf NULL). On failure only why/why_off are
 * meaningful.
 */
int kice_stun_parse(struct kice_stun_msg *out, const uint8_t *buf, size_t len);

/*
 * Verify MESSAGE-INTEGRITY (HMAC-SHA1, RFC 8489 §14.5) of a message that
 * kice_stun_parse() accepted. key: the short-term password (ICE) or a
 * kice_stun_long_term_key() result; borrowed. Compares in constant time.
 * Returns 0 (valid); -EACCES (mismatch); -ENOENT (no MESSAGE-INTEGRITY);
 * -EINVAL (NULL or empty key); -ENOMEM (OpenSSL failed).
 */
int kice_stun_check_integrity(
		const struct kice_stun_msg *m, const uint8_t *key, size_t keylen);

/*
 * Verify FINGERPRINT (CRC-32 ^ 0x5354554e, RFC 8489 §14.7) of a message
 * that kice_stun_parse() accepted.
 * Returns 0 (valid); -EACCES (mismatch); -ENOENT (no FINGERPRINT);
 * -EINVAL (m NULL).
 */
int kice_stun_check_fingerprint(const struct kice_stun_msg *m);

/*
 * Long-term credential key (RFC 8489 §9.2.2, RFC 5389 §15.4):
 * key = MD5(username ":" realm ":" SASLprep(password)). username and realm
 * are used as given. SASLprep (RFC 4013) is applied to the password for
 * the inputs that need no Unicode tables: characters "commonly mapped to
 * nothing" (RFC 3454 B.1) are dropped, non-ASCII spaces (C.1.2) become
 * U+0020, ASCII controls are refused. Any other non-ASCII character would
 * need NFKC, which this unit does not carry, so it is refused rather than
 * hashed into a key the peer would not derive. Arguments are borrowed.
 * Returns 0; -EINVAL (NULL argument, invalid UTF-8, a prohibited or
 * unsupported character); -ENOMEM (OpenSSL failed).
 */
int kice_stun_long_term_key(uint8_t key[KICE_STUN_LT_KEY_LEN], const char *user,
		size_t ulen, const char *realm, size_t rlen, const char *pass,
		size_t plen);

/* Fill tid with 96 random bits (RFC 8489 §5: "cryptographically random").
 * Returns 0 or -EAGAIN when OpenSSL's generator fails. */
int kice_stun_tid_random(uint8_t tid[KICE_STUN_TID_LEN]);

/*
 * Start a message of the given type in buf (cap bytes, borrowed until the
 * last writer call). tid is copied. Errors (type with the top two bits
 * set or NULL argument: -EINVAL; cap below 20: -ENOSPC) are stored in
 * wr->err. Set wr->pad after init to pad with a byte other than 0.
 */
void kice_stun_wr_init(struct kice_stun_wr *wr, uint8_t *buf, size_t cap,
		uint16_t type, const uint8_t tid[KICE_STUN_TID_LEN]);

/*
 * Append one attribute (value copied, padded to 4 bytes) and update the
 * header length. Refused with -EINVAL after MESSAGE-INTEGRITY (except
 * MESSAGE-INTEGRITY-SHA256 and FINGERPRINT) and after FINGERPRINT;
 * -ENOSPC when buf or the 16-bit length field is too small. All writer
 * calls return wr->err: 0 or the first error.
 */
int kice_stun_wr_attr(
		struct kice_stun_wr *wr, uint16_t type, const void *val, size_t len);

/* XOR-MAPPED-ADDRESS / MAPPED-ADDRESS from an AF_INET or AF_INET6
 * sockaddr (port in network order); other families: -EINVAL */
int kice_stun_wr_xor_mapped(struct kice_stun_wr *wr, const struct sockaddr *sa);
int kice_stun_wr_mapped(struct kice_stun_wr *wr, const struct sockaddr *sa);

int kice_stun_wr_username(struct kice_stun_wr *wr, const char *s, size_t len);
int kice_stun_wr_software(struct kice_stun_wr *wr, const char *s, size_t len);
int kice_stun_wr_priority(struct kice_stun_wr *wr, uint32_t prio);
int kice_stun_wr_ice_controlling(struct kice_stun_wr *wr, uint64_t tie);
int kice_stun_wr_ice_controlled(struct kice_stun_wr *wr, uint64_t tie);
int kice_stun_wr_use_candidate(struct kice_stun_wr *wr);

/* ERROR-CODE: code 300..699 (else -EINVAL), reason phrase borrowed */
int kice_stun_wr_error_code(
		struct kice_stun_wr *wr, int code, const char *reason, size_t len);

/* UNKNOWN-ATTRIBUTES listing n types (e.g. a parsed msg's unknown[]) */
int kice_stun_wr_unknown_attrs(
		struct kice_stun_wr *wr, const uint16_t *types, size_t n);

/* MESSAGE-INTEGRITY over everything written so far; key borrowed.
 * -EINVAL for a NULL or empty key, -ENOMEM if OpenSSL fails. */
int kice_stun_wr_integrity(
		struct kice_stun_wr *wr, const uint8_t *key, size_t keylen);

/* FINGERPRINT; must be the last attribute written */
int kice_stun_wr_fingerprint(struct kice_stun_wr *wr);

/* Bytes written (> 0), or the first error (-EINVAL, -ENOSPC, -ENOMEM) */
int kice_stun_wr_finish(const struct kice_stun_wr *wr);

#endif
