/*
 * kamailio-ice: STUN message codec (RFC 8489), see stun.h.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "log.h"
#include "rand.h"
#include "stun.h"

#define FP_XOR		 0x5354554eu
#define ATTR_HDR_LEN 4
#define MI_ATTR_LEN	 (ATTR_HDR_LEN + KICE_STUN_MI_LEN)
#define FP_ATTR_LEN	 (ATTR_HDR_LEN + 4)
#define MAX_BODY	 0xfffc /* largest header length that is a multiple of 4 */

/* CRC-32 of ITU V.42 / RFC 1952 §8: reflected polynomial 0xedb88320 */
/* clang-format off */
static const uint32_t crc_tab[256] = {
	0x00000000, 0x77073096, 0xee0e612c, 0x990951ba,
	0x076dc419, 0x706af48f, 0xe963a535, 0x9e6495a3,
	0x0edb8832, 0x79dcb8a4, 0xe0d5e91e, 0x97d2d988,
	0x09b64c2b, 0x7eb17cbd, 0xe7b82d07, 0x90bf1d91,
	0x1db71064, 0x6ab020f2, 0xf3b97148, 0x84be41de,
	0x1adad47d, 0x6ddde4eb, 0xf4d4b551, 0x83d385c7,
	0x136c9856, 0x646ba8c0, 0xfd62f97a, 0x8a65c9ec,
	0x14015c4f, 0x63066cd9, 0xfa0f3d63, 0x8d080df5,
	0x3b6e20c8, 0x4c69105e, 0xd56041e4, 0xa2677172,
	0x3c03e4d1, 0x4b04d447, 0xd20d85fd, 0xa50ab56b,
	0x35b5a8fa, 0x42b2986c, 0xdbbbc9d6, 0xacbcf940,
	0x32d86ce3, 0x45df5c75, 0xdcd60dcf, 0xabd13d59,
	0x26d930ac, 0x51de003a, 0xc8d75180, 0xbfd06116,
	0x21b4f4b5, 0x56b3c423, 0xcfba9599, 0xb8bda50f,
	0x2802b89e, 0x5f058808, 0xc60cd9b2, 0xb10be924,
	0x2f6f7c87, 0x58684c11, 0xc1611dab, 0xb6662d3d,
	0x76dc4190, 0x01db7106, 0x98d220bc, 0xefd5102a,
	0x71b18589, 0x06b6b51f, 0x9fbfe4a5, 0xe8b8d433,
	0x7807c9a2, 0x0f00f934, 0x9609a88e, 0xe10e9818,
	0x7f6a0dbb, 0x086d3d2d, 0x91646c97, 0xe6635c01,
	0x6b6b51f4, 0x1c6c6162, 0x856530d8, 0xf262004e,
	0x6c0695ed, 0x1b01a57b, 0x8208f4c1, 0xf50fc457,
	0x65b0d9c6, 0x12b7e950, 0x8bbeb8ea, 0xfcb9887c,
	0x62dd1ddf, 0x15da2d49, 0x8cd37cf3, 0xfbd44c65,
	0x4db26158, 0x3ab551ce, 0xa3bc0074, 0xd4bb30e2,
	0x4adfa541, 0x3dd895d7, 0xa4d1c46d, 0xd3d6f4fb,
	0x4369e96a, 0x346ed9fc, 0xad678846, 0xda60b8d0,
	0x44042d73, 0x33031de5, 0xaa0a4c5f, 0xdd0d7cc9,
	0x5005713c, 0x270241aa, 0xbe0b1010, 0xc90c2086,
	0x5768b525, 0x206f85b3, 0xb966d409, 0xce61e49f,
	0x5edef90e, 0x29d9c998, 0xb0d09822, 0xc7d7a8b4,
	0x59b33d17, 0x2eb40d81, 0xb7bd5c3b, 0xc0ba6cad,
	0xedb88320, 0x9abfb3b6, 0x03b6e20c, 0x74b1d29a,
	0xead54739, 0x9dd277af, 0x04db2615, 0x73dc1683,
	0xe3630b12, 0x94643b84, 0x0d6d6a3e, 0x7a6a5aa8,
	0xe40ecf0b, 0x9309ff9d, 0x0a00ae27, 0x7d079eb1,
	0xf00f9344, 0x8708a3d2, 0x1e01f268, 0x6906c2fe,
	0xf762575d, 0x806567cb, 0x196c3671, 0x6e6b06e7,
	0xfed41b76, 0x89d32be0, 0x10da7a5a, 0x67dd4acc,
	0xf9b9df6f, 0x8ebeeff9, 0x17b7be43, 0x60b08ed5,
	0xd6d6a3e8, 0xa1d1937e, 0x38d8c2c4, 0x4fdff252,
	0xd1bb67f1, 0xa6bc5767, 0x3fb506dd, 0x48b2364b,
	0xd80d2bda, 0xaf0a1b4c, 0x36034af6, 0x41047a60,
	0xdf60efc3, 0xa867df55, 0x316e8eef, 0x4669be79,
	0xcb61b38c, 0xbc66831a, 0x256fd2a0, 0x5268e236,
	0xcc0c7795, 0xbb0b4703, 0x220216b9, 0x5505262f,
	0xc5ba3bbe, 0xb2bd0b28, 0x2bb45a92, 0x5cb36a04,
	0xc2d7ffa7, 0xb5d0cf31, 0x2cd99e8b, 0x5bdeae1d,
	0x9b64c2b0, 0xec63f226, 0x756aa39c, 0x026d930a,
	0x9c0906a9, 0xeb0e363f, 0x72076785, 0x05005713,
	0x95bf4a82, 0xe2b87a14, 0x7bb12bae, 0x0cb61b38,
	0x92d28e9b, 0xe5d5be0d, 0x7cdcefb7, 0x0bdbdf21,
	0x86d3d2d4, 0xf1d4e242, 0x68ddb3f8, 0x1fda836e,
	0x81be16cd, 0xf6b9265b, 0x6fb077e1, 0x18b74777,
	0x88085ae6, 0xff0f6a70, 0x66063bca, 0x11010b5c,
	0x8f659eff, 0xf862ae69, 0x616bffd3, 0x166ccf45,
	0xa00ae278, 0xd70dd2ee, 0x4e048354, 0x3903b3c2,
	0xa7672661, 0xd06016f7, 0x4969474d, 0x3e6e77db,
	0xaed16a4a, 0xd9d65adc, 0x40df0b66, 0x37d83bf0,
	0xa9bcae53, 0xdebb9ec5, 0x47b2cf7f, 0x30b5ffe9,
	0xbdbdf21c, 0xcabac28a, 0x53b39330, 0x24b4a3a6,
	0xbad03605, 0xcdd70693, 0x54de5729, 0x23d967bf,
	0xb3667a2e, 0xc4614ab8, 0x5d681b02, 0x2a6f2b94,
	0xb40bbe37, 0xc30c8ea1, 0x5a05df1b, 0x2d02ef8d,
};
/* clang-format on */

static uint16_t ld16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t ld32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16)
		   | ((uint32_t)p[2] << 8) | p[3];
}

static void st16(uint8_t *p, size_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void st32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static size_t pad4(size_t n)
{
	return (n + 3) & ~(size_t)3;
}

static uint32_t crc32_upd(uint32_t crc, const uint8_t *p, size_t n)
{
	while(n--)
		crc = crc_tab[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

/*
 * FINGERPRINT value for an attribute at buf[off]. RFC 8489 §14.7: the CRC
 * "covers the Length field from the STUN message header. Therefore, prior
 * to computation of the CRC, this value must be correct and include the
 * CRC attribute as part of the message length."
 */
static uint32_t fingerprint(const uint8_t *buf, size_t off)
{
	uint8_t blen[2];
	uint32_t crc = 0xffffffffu;

	st16(blen, off - KICE_STUN_HDR_LEN + FP_ATTR_LEN);
	crc = crc32_upd(crc, buf, 2);
	crc = crc32_upd(crc, blen, 2);
	crc = crc32_upd(crc, buf + 4, off - 4);
	return ~crc ^ FP_XOR;
}

/* one HMAC-SHA1 context per thread, made on first use and re-keyed for
 * each message (fetching the algorithm and making a context cost more
 * than the MAC of a 100-byte message); freed when its thread ends */
static pthread_key_t mac_key;
static pthread_once_t mac_once = PTHREAD_ONCE_INIT;
static int mac_key_ok;

static void mac_free(void *ctx)
{
	EVP_MAC_CTX_free(ctx);
}

static void mac_key_make(void)
{
	mac_key_ok = pthread_key_create(&mac_key, mac_free) == 0;
}

static EVP_MAC_CTX *mac_ctx(void)
{
	static char digest[] = "SHA1";
	OSSL_PARAM params[2];
	EVP_MAC_CTX *ctx;
	EVP_MAC *mac;

	pthread_once(&mac_once, mac_key_make);
	if(!mac_key_ok)
		return NULL;
	ctx = pthread_getspecific(mac_key);
	if(ctx)
		return ctx;
	params[0] =
			OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
	params[1] = OSSL_PARAM_construct_end();
	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	EVP_MAC_free(mac); /* the context holds its own reference */
	if(ctx
			&& (!EVP_MAC_CTX_set_params(ctx, params)
					|| pthread_setspecific(mac_key, ctx) != 0)) {
		EVP_MAC_CTX_free(ctx);
		ctx = NULL;
	}
	return ctx;
}

/*
 * MESSAGE-INTEGRITY value for an attribute at buf[off]. RFC 8489 §14.5:
 * "The text used as input to HMAC is the STUN message, up to and including
 * the attribute preceding the MESSAGE-INTEGRITY attribute. The Length field
 * of the STUN message header is adjusted to point to the end of the
 * MESSAGE-INTEGRITY attribute." The adjusted length is fed in place of the
 * real one, so the caller's buffer is neither copied nor modified.
 */
static int hmac_sha1(uint8_t out[KICE_STUN_MI_LEN], const uint8_t *key,
		size_t keylen, const uint8_t *buf, size_t off)
{
	EVP_MAC_CTX *ctx = mac_ctx();
	uint8_t blen[2];
	size_t outl = 0;

	if(ctx == NULL) {
		KICE_ERR("stun: OpenSSL HMAC-SHA1 unavailable");
		return -ENOMEM;
	}
	st16(blen, off - KICE_STUN_HDR_LEN + MI_ATTR_LEN);
	if(!EVP_MAC_init(ctx, key, keylen, NULL) || !EVP_MAC_update(ctx, buf, 2)
			|| !EVP_MAC_update(ctx, blen, 2)
			|| !EVP_MAC_update(ctx, buf + 4, off - 4)
			|| !EVP_MAC_final(ctx, out, &outl, KICE_STUN_MI_LEN)
			|| outl != KICE_STUN_MI_LEN) {
		KICE_ERR("stun: OpenSSL HMAC-SHA1 failed");
		return -ENOMEM;
	}
	return 0;
}

/* Header rules of RFC 8489 §5; NULL when they hold */
static const char *check_hdr(const uint8_t *p, size_t len, size_t *off)
{
	size_t blen;

	*off = 0;
	if(len < KICE_STUN_HDR_LEN)
		return "shorter than the 20-byte header";
	/* RFC 8489 §5: "The most significant 2 bits of every STUN message
	 * MUST be zeroes." */
	if(p[0] & 0xc0)
		return "first two bits are not zero";
	/* "The Magic Cookie field MUST contain the fixed value 0x2112A442 in
	 * network byte order." */
	*off = 4;
	if(ld32(p + 4) != KICE_STUN_MAGIC)
		return "bad magic cookie";
	/* "The message length MUST contain the size of the message in bytes,
	 * not including the 20-byte STUN header. Since all STUN attributes are
	 * padded to a multiple of 4 bytes, the last 2 bits of this field are
	 * always zero." */
	*off = 2;
	blen = ld16(p + 2);
	if(blen & 3)
		return "length is not a multiple of 4";
	if(len - KICE_STUN_HDR_LEN != blen)
		return "length does not match the datagram";
	return NULL;
}

/*
 * TLV framing: every attribute, padding included, ends inside the message
 * and nothing follows FINGERPRINT. The header check made len - 20 a
 * multiple of 4, so at each 4-aligned offset an attribute header fits.
 */
static const char *check_attrs(const uint8_t *p, size_t len, size_t *off)
{
	size_t o = KICE_STUN_HDR_LEN, alen;
	bool fp = false;

	while(o < len) {
		*off = o;
		/* RFC 8489 §14.7: "When present, the FINGERPRINT attribute MUST
		 * be the last attribute in the message" */
		if(fp)
			return "attribute after FINGERPRINT";
		alen = ld16(p + o + 2);
		/* §14: "Each STUN attribute MUST end on a 32-bit boundary." */
		if(pad4(alen) > len - o - ATTR_HDR_LEN)
			return "attribute overruns the message";
		fp = ld16(p + o) == KICE_STUN_ATTR_FINGERPRINT;
		o += ATTR_HDR_LEN + pad4(alen);
	}
	return NULL;
}

/* MAPPED-ADDRESS (tid NULL) or XOR-MAPPED-ADDRESS (RFC 8489 §14.1-2) */
static const char *get_addr(struct sockaddr_storage *ss, const uint8_t *v,
		size_t alen, const uint8_t *tid)
{
	struct kice_rd r = {v, v + alen};
	uint8_t mask[16] = {0}, a[16], rsvd, family;
	uint16_t port;
	size_t i, n;

	if(!kice_rd_u8(&r, &rsvd) || !kice_rd_u8(&r, &family)
			|| !kice_rd_u16(&r, &port))
		return "address attribute too short";
	/* "X-Port is computed by XOR'ing the mapped port with the most
	 * significant 16 bits of the magic cookie. If the IP address family is
	 * IPv4, X-Address is computed by XOR'ing the mapped IP address with
	 * the magic cookie. If the IP address family is IPv6, X-Address is
	 * computed by XOR'ing the mapped IP address with the concatenation of
	 * the magic cookie and the 96-bit transaction ID." */
	if(tid != NULL) {
		st32(mask, KICE_STUN_MAGIC);
		memcpy(mask + 4, tid, KICE_STUN_TID_LEN);
		port ^= (uint16_t)(KICE_STUN_MAGIC >> 16);
	}
	if(family == 0x01)
		n = 4;
	else if(family == 0x02)
		n = 16;
	else
		return "unknown address family";
	/* "If the address family is IPv4, the address MUST be 32 bits. If the
	 * address family is IPv6, the address MUST be 128 bits." */
	if((size_t)(r.end - r.p) != n)
		return "address length does not match its family";
	for(i = 0; i < n; i++)
		a[i] = r.p[i] ^ mask[i];

	memset(ss, 0, sizeof(*ss));
	if(n == 4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, a, 4);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, a, 16);
	}
	return NULL;
}

static uint64_t ld64(const uint8_t *p)
{
	return ((uint64_t)ld32(p) << 32) | ld32(p + 4);
}

static int add_unknown(struct kice_stun_msg *m, uint16_t type)
{
	size_t i;

	for(i = 0; i < m->n_unknown; i++)
		if(m->unknown[i] == type)
			return 0;
	if(m->n_unknown == KICE_STUN_MAX_UNKNOWN) {
		m->why = "too many unknown comprehension-required attributes";
		return -ENOSPC;
	}
	m->unknown[m->n_unknown++] = type;
	return 0;
}

static void slice(bool *has, struct kice_slice *s, const uint8_t *v, size_t n)
{
	if(*has)
		return;
	*has = true;
	*s = kice_slice_make((const char *)v, n);
}

/*
 * Decode one attribute whose framing check_attrs() validated. Only the
 * first occurrence counts (RFC 8489 §14: "only the first occurrence needs
 * to be processed by a receiver, and any duplicates MAY be ignored").
 * Returns 0, -EBADMSG or -ENOSPC with m->why set.
 */
static int get_attr(struct kice_stun_msg *m, uint16_t type, const uint8_t *v,
		size_t alen, size_t off)
{
	const char *why = NULL;

	switch(type) {
		case KICE_STUN_ATTR_USERNAME:
			slice(&m->has_username, &m->username, v, alen);
			break;
		case KICE_STUN_ATTR_SOFTWARE:
			slice(&m->has_software, &m->software, v, alen);
			break;
		case KICE_STUN_ATTR_REALM:
			slice(&m->has_realm, &m->realm, v, alen);
			break;
		case KICE_STUN_ATTR_NONCE:
			slice(&m->has_nonce, &m->nonce, v, alen);
			break;
		case KICE_STUN_ATTR_MESSAGE_INTEGRITY:
			/* "Since it uses the SHA-1 hash, the HMAC will be 20 bytes." */
			if(alen != KICE_STUN_MI_LEN) {
				why = "MESSAGE-INTEGRITY length is not 20";
				break;
			}
			m->has_mi = true;
			m->mi_off = off;
			break;
		case KICE_STUN_ATTR_MESSAGE_INTEGRITY_SHA256:
			/* §14.6: "The value will be at most 32 bytes, but it MUST be
			 * at least 16 bytes and MUST be a multiple of 4 bytes." */
			if(alen < 16 || alen > 32 || (alen & 3)) {
				why = "MESSAGE-INTEGRITY-SHA256 length is invalid";
				break;
			}
			m->has_mi_sha256 = true;
			m->mi_sha256_off = off;
			break;
		case KICE_STUN_ATTR_FINGERPRINT:
			if(alen != 4) {
				why = "FINGERPRINT length is not 4";
				break;
			}
			m->has_fp = true;
			m->fp_off = off;
			break;
		case KICE_STUN_ATTR_XOR_MAPPED_ADDRESS:
			if(m->has_xor_mapped)
				break;
			why = get_addr(&m->xor_mapped, v, alen, m->tid);
			m->has_xor_mapped = why == NULL;
			break;
		case KICE_STUN_ATTR_MAPPED_ADDRESS:
			if(m->has_mapped)
				break;
			why = get_addr(&m->mapped, v, alen, NULL);
			m->has_mapped = why == NULL;
			break;
		case KICE_STUN_ATTR_PRIORITY:
			if(m->has_priority)
				break;
			if(alen != 4) {
				why = "PRIORITY length is not 4";
				break;
			}
			m->has_priority = true;
			m->priority = ld32(v);
			break;
		case KICE_STUN_ATTR_USE_CANDIDATE:
			if(alen != 0) {
				why = "USE-CANDIDATE is not empty";
				break;
			}
			m->use_candidate = true;
			break;
		case KICE_STUN_ATTR_ICE_CONTROLLING:
			if(m->has_controlling)
				break;
			if(alen != 8) {
				why = "ICE-CONTROLLING length is not 8";
				break;
			}
			m->has_controlling = true;
			m->controlling = ld64(v);
			break;
		case KICE_STUN_ATTR_ICE_CONTROLLED:
			if(m->has_controlled)
				break;
			if(alen != 8) {
				why = "ICE-CONTROLLED length is not 8";
				break;
			}
			m->has_controlled = true;
			m->controlled = ld64(v);
			break;
		case KICE_STUN_ATTR_ERROR_CODE:
			if(m->has_error)
				break;
			if(alen < 4) {
				why = "ERROR-CODE too short";
				break;
			}
			/* §14.8: "The Class represents the hundreds digit of the
			 * error code. The value MUST be between 3 and 6. The Number
			 * [...] MUST be between 0 and 99." Reserved bits ignored. */
			if((v[2] & 7) < 3 || (v[2] & 7) > 6 || v[3] > 99) {
				why = "ERROR-CODE out of range";
				break;
			}
			m->has_error = true;
			m->error_code = (uint16_t)((v[2] & 7) * 100 + v[3]);
			m->error_reason = kice_slice_make((const char *)v + 4, alen - 4);
			break;
		case KICE_STUN_ATTR_UNKNOWN_ATTRIBUTES:
			if(m->has_unknown_attrs)
				break;
			/* §14.13: "a list of 16-bit values" */
			if(alen & 1) {
				why = "UNKNOWN-ATTRIBUTES length is odd";
				break;
			}
			m->has_unknown_attrs = true;
			m->unknown_attrs = v;
			m->n_unknown_attrs = alen / 2;
			break;
		default:
			/* §14: "Attributes with type values between 0x0000 and 0x7FFF
			 * are comprehension-required attributes, which means that the
			 * STUN agent cannot successfully process the message unless it
			 * understands the attribute." */
			if(type < 0x8000)
				return add_unknown(m, type);
			break;
	}
	if(why != NULL) {
		m->why = why;
		return -EBADMSG;
	}
	return 0;
}

bool kice_is_stun(const uint8_t *p, size_t len)
{
	size_t off;

	/* RFC 7983 §7: a first byte in 0..3 marks STUN */
	return p != NULL && len >= KICE_STUN_HDR_LEN && p[0] <= 3
		   && check_hdr(p, len, &off) == NULL;
}

int kice_stun_parse(struct kice_stun_msg *out, const uint8_t *buf, size_t len)
{
	enum
	{
		OPEN,	  /* no integrity attribute yet */
		AFTER_MI, /* MESSAGE-INTEGRITY seen */
		AFTER_SHA256
	} gate = OPEN;
	size_t off = 0, alen;
	uint16_t type;
	int ret;

	if(out == NULL)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if(buf == NULL) {
		out->why = "no buffer";
		return -EINVAL;
	}

	/* validate once: header, then framing of every attribute */
	out->why = check_hdr(buf, len, &off);
	if(out->why == NULL)
		out->why = check_attrs(buf, len, &off);
	if(out->why != NULL) {
		out->why_off = off;
		return -EBADMSG;
	}
	out->buf = buf;
	out->len = len;
	out->type = ld16(buf);
	out->tid = buf + 8;

	/* then walk without bounds checks */
	for(off = KICE_STUN_HDR_LEN; off < len; off += ATTR_HDR_LEN + pad4(alen)) {
		type = ld16(buf + off);
		alen = ld16(buf + off + 2);
		/* RFC 8489 §14.5: "agents MUST ignore all attributes that follow
		 * MESSAGE-INTEGRITY, with the exception of the MESSAGE-INTEGRITY-
		 * SHA256 and FINGERPRINT attributes"; §14.6: likewise after
		 * MESSAGE-INTEGRITY-SHA256, "with the exception of the FINGERPRINT
		 * attribute". */
		if(gate != OPEN && type != KICE_STUN_ATTR_FINGERPRINT
				&& !(gate == AFTER_MI
						&& type == KICE_STUN_ATTR_MESSAGE_INTEGRITY_SHA256))
			continue;
		ret = get_attr(out, type, buf + off + ATTR_HDR_LEN, alen, off);
		if(ret < 0) {
			out->why_off = off;
			return ret;
		}
		if(type == KICE_STUN_ATTR_MESSAGE_INTEGRITY)
			gate = AFTER_MI;
		else if(type == KICE_STUN_ATTR_MESSAGE_INTEGRITY_SHA256)
			gate = AFTER_SHA256;
	}
	return 0;
}

int kice_stun_check_integrity(
		const struct kice_stun_msg *m, const uint8_t *key, size_t keylen)
{
	uint8_t mac[KICE_STUN_MI_LEN];
	int ret;

	if(m == NULL || m->buf == NULL || key == NULL || keylen == 0)
		return -EINVAL;
	if(!m->has_mi)
		return -ENOENT;
	ret = hmac_sha1(mac, key, keylen, m->buf, m->mi_off);
	if(ret < 0)
		return ret;
	if(CRYPTO_memcmp(mac, m->buf + m->mi_off + ATTR_HDR_LEN, sizeof(mac)))
		return -EACCES;
	return 0;
}

int kice_stun_check_fingerprint(const struct kice_stun_msg *m)
{
	if(m == NULL || m->buf == NULL)
		return -EINVAL;
	if(!m->has_fp)
		return -ENOENT;
	if(fingerprint(m->buf, m->fp_off) != ld32(m->buf + m->fp_off + 4))
		return -EACCES;
	return 0;
}

/* Strict UTF-8 decoding (RFC 3629): no overlongs, surrogates or > U+10FFFF */
static int utf8_next(const uint8_t *s, size_t n, size_t *i, uint32_t *cp)
{
	uint8_t c = s[*i];
	uint32_t v, min;
	size_t k, more;

	if(c < 0x80) {
		*cp = c;
		*i += 1;
		return 0;
	}
	if((c & 0xe0) == 0xc0) {
		more = 1;
		v = c & 0x1f;
		min = 0x80;
	} else if((c & 0xf0) == 0xe0) {
		more = 2;
		v = c & 0x0f;
		min = 0x800;
	} else if((c & 0xf8) == 0xf0) {
		more = 3;
		v = c & 0x07;
		min = 0x10000;
	} else {
		return -EINVAL;
	}
	if(n - *i - 1 < more)
		return -EINVAL;
	for(k = 1; k <= more; k++) {
		if((s[*i + k] & 0xc0) != 0x80)
			return -EINVAL;
		v = (v << 6) | (s[*i + k] & 0x3f);
	}
	if(v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return -EINVAL;
	*cp = v;
	*i += more + 1;
	return 0;
}

/* RFC 3454 table B.1, "Commonly mapped to nothing" */
static bool map_to_nothing(uint32_t c)
{
	return c == 0x00ad || c == 0x034f || c == 0x1806
		   || (c >= 0x180b && c <= 0x180d) || (c >= 0x200b && c <= 0x200d)
		   || c == 0x2060 || (c >= 0xfe00 && c <= 0xfe0f) || c == 0xfeff;
}

/* RFC 3454 table C.1.2, "Non-ASCII space characters" */
static bool non_ascii_space(uint32_t c)
{
	return c == 0x00a0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200b)
		   || c == 0x202f || c == 0x205f || c == 0x3000;
}

/*
 * SASLprep (RFC 4013) for strings whose output is ASCII: §2.1 maps B.1 to
 * nothing and C.1.2 to U+0020; NFKC leaves ASCII alone; of the §2.3
 * prohibited tables only C.2.1 (ASCII controls) can remain. Anything else
 * non-ASCII needs the Unicode tables and is refused. With md != NULL the
 * output is hashed; otherwise the input is only checked.
 */
static int saslprep_ascii(const char *s, size_t n, EVP_MD_CTX *md)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0;
	uint32_t c;
	uint8_t o;

	while(i < n) {
		if(utf8_next(p, n, &i, &c) < 0)
			return -EINVAL;
		if(map_to_nothing(c))
			continue;
		if(non_ascii_space(c))
			c = ' ';
		if(c < 0x20 || c == 0x7f || c >= 0x80)
			return -EINVAL;
		o = (uint8_t)c;
		if(md != NULL && !EVP_DigestUpdate(md, &o, 1))
			return -ENOMEM;
	}
	return 0;
}

int kice_stun_long_term_key(uint8_t key[KICE_STUN_LT_KEY_LEN], const char *user,
		size_t ulen, const char *realm, size_t rlen, const char *pass,
		size_t plen)
{
	EVP_MD_CTX *md = NULL;
	unsigned int outl = 0;
	int ret;

	if(key == NULL || (user == NULL && ulen) || (realm == NULL && rlen)
			|| (pass == NULL && plen))
		return -EINVAL;
	ret = saslprep_ascii(pass, plen, NULL);
	if(ret < 0)
		return ret;

	/* RFC 8489 §9.2.2, MD5 algorithm (and RFC 5389 §15.4):
	 * key = MD5(username ":" realm ":" SASLprep(password)) */
	ret = -ENOMEM;
	md = EVP_MD_CTX_new();
	if(md == NULL || !EVP_DigestInit_ex(md, EVP_md5(), NULL)
			|| (ulen && !EVP_DigestUpdate(md, user, ulen))
			|| !EVP_DigestUpdate(md, ":", 1)
			|| (rlen && !EVP_DigestUpdate(md, realm, rlen))
			|| !EVP_DigestUpdate(md, ":", 1))
		goto out;
	ret = saslprep_ascii(pass, plen, md);
	if(ret < 0)
		goto out;
	ret = -ENOMEM;
	if(!EVP_DigestFinal_ex(md, key, &outl) || outl != KICE_STUN_LT_KEY_LEN)
		goto out;
	ret = 0;
out:
	if(ret == -ENOMEM)
		KICE_ERR("stun: OpenSSL MD5 unavailable or failed");
	EVP_MD_CTX_free(md);
	if(ret < 0)
		OPENSSL_cleanse(key, KICE_STUN_LT_KEY_LEN);
	return ret;
}

int kice_stun_tid_random(uint8_t tid[KICE_STUN_TID_LEN])
{
	/* RFC 8489 §5: "The transaction ID MUST be uniformly and randomly
	 * chosen from the interval 0 .. 2**96-1, and MUST be cryptographically
	 * random." */
	if(tid == NULL)
		return -EINVAL;
	return kice_random(tid, KICE_STUN_TID_LEN);
}

void kice_stun_wr_init(struct kice_stun_wr *wr, uint8_t *buf, size_t cap,
		uint16_t type, const uint8_t tid[KICE_STUN_TID_LEN])
{
	if(wr == NULL)
		return;
	memset(wr, 0, sizeof(*wr));
	wr->buf = buf;
	wr->cap = cap;
	if(buf == NULL || tid == NULL || (type & 0xc000)) {
		wr->err = -EINVAL;
		return;
	}
	if(cap < KICE_STUN_HDR_LEN) {
		wr->err = -ENOSPC;
		return;
	}
	st16(buf, type);
	st16(buf + 2, 0);
	st32(buf + 4, KICE_STUN_MAGIC);
	memcpy(buf + 8, tid, KICE_STUN_TID_LEN);
	wr->len = KICE_STUN_HDR_LEN;
}

/*
 * Append an attribute header for alen value bytes plus padding, update the
 * header length and return where the value goes (NULL: wr->err is set).
 */
static uint8_t *reserve(struct kice_stun_wr *wr, uint16_t type, size_t alen)
{
	size_t need;
	uint8_t *a;

	if(wr->err)
		return NULL;
	/* receivers ignore what follows MESSAGE-INTEGRITY (§14.5) and
	 * FINGERPRINT "MUST be the last attribute" (§14.7) */
	if(wr->fp
			|| (wr->mi && type != KICE_STUN_ATTR_FINGERPRINT
					&& type != KICE_STUN_ATTR_MESSAGE_INTEGRITY_SHA256)) {
		wr->err = -EINVAL;
		return NULL;
	}
	if(alen > MAX_BODY) {
		wr->err = -ENOSPC;
		return NULL;
	}
	need = ATTR_HDR_LEN + pad4(alen);
	if(need > MAX_BODY - (wr->len - KICE_STUN_HDR_LEN)
			|| need > wr->cap - wr->len) {
		wr->err = -ENOSPC;
		return NULL;
	}
	a = wr->buf + wr->len;
	st16(a, type);
	st16(a + 2, alen);
	memset(a + ATTR_HDR_LEN + alen, wr->pad, pad4(alen) - alen);
	wr->len += need;
	st16(wr->buf + 2, wr->len - KICE_STUN_HDR_LEN);
	if(type == KICE_STUN_ATTR_MESSAGE_INTEGRITY)
		wr->mi = true;
	else if(type == KICE_STUN_ATTR_FINGERPRINT)
		wr->fp = true;
	return a + ATTR_HDR_LEN;
}

int kice_stun_wr_attr(
		struct kice_stun_wr *wr, uint16_t type, const void *val, size_t len)
{
	uint8_t *v;

	if(wr == NULL)
		return -EINVAL;
	if(val == NULL && len > 0 && wr->err == 0)
		wr->err = -EINVAL;
	v = reserve(wr, type, len);
	if(v != NULL && len > 0)
		memcpy(v, val, len);
	return wr->err;
}

static int put_addr(struct kice_stun_wr *wr, uint16_t type,
		const struct sockaddr *sa, bool xor)
{
	uint8_t v[20], mask[16] = {0};
	const uint8_t *a;
	uint16_t port;
	size_t i, n;

	if(wr == NULL)
		return -EINVAL;
	if(wr->err)
		return wr->err;
	if(sa == NULL) {
		wr->err = -EINVAL;
		return wr->err;
	}
	if(sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		a = (const uint8_t *)&sin->sin_addr;
		port = ntohs(sin->sin_port);
		n = 4;
		v[1] = 0x01;
	} else if(sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		a = (const uint8_t *)&sin6->sin6_addr;
		port = ntohs(sin6->sin6_port);
		n = 16;
		v[1] = 0x02;
	} else {
		wr->err = -EINVAL;
		return wr->err;
	}
	if(xor) {
		st32(mask, KICE_STUN_MAGIC);
		memcpy(mask + 4, wr->buf + 8, KICE_STUN_TID_LEN);
		port ^= (uint16_t)(KICE_STUN_MAGIC >> 16);
	}
	/* §14.1: "The first 8 bits of the MAPPED-ADDRESS MUST be set to 0" */
	v[0] = 0;
	st16(v + 2, port);
	for(i = 0; i < n; i++)
		v[4 + i] = a[i] ^ mask[i];
	return kice_stun_wr_attr(wr, type, v, 4 + n);
}

int kice_stun_wr_xor_mapped(struct kice_stun_wr *wr, const struct sockaddr *sa)
{
	return put_addr(wr, KICE_STUN_ATTR_XOR_MAPPED_ADDRESS, sa, true);
}

int kice_stun_wr_mapped(struct kice_stun_wr *wr, const struct sockaddr *sa)
{
	return put_addr(wr, KICE_STUN_ATTR_MAPPED_ADDRESS, sa, false);
}

int kice_stun_wr_username(struct kice_stun_wr *wr, const char *s, size_t len)
{
	return kice_stun_wr_attr(wr, KICE_STUN_ATTR_USERNAME, s, len);
}

int kice_stun_wr_software(struct kice_stun_wr *wr, const char *s, size_t len)
{
	return kice_stun_wr_attr(wr, KICE_STUN_ATTR_SOFTWARE, s, len);
}

int kice_stun_wr_priority(struct kice_stun_wr *wr, uint32_t prio)
{
	uint8_t v[4];

	st32(v, prio);
	return kice_stun_wr_attr(wr, KICE_STUN_ATTR_PRIORITY, v, sizeof(v));
}

static int put_u64(struct kice_stun_wr *wr, uint16_t type, uint64_t x)
{
	uint8_t v[8];

	st32(v, (uint32_t)(x >> 32));
	st32(v + 4, (uint32_t)x);
	return kice_stun_wr_attr(wr, type, v, sizeof(v));
}

int kice_stun_wr_ice_controlling(struct kice_stun_wr *wr, uint64_t tie)
{
	return put_u64(wr, KICE_STUN_ATTR_ICE_CONTROLLING, tie);
}

int kice_stun_wr_ice_controlled(struct kice_stun_wr *wr, uint64_t tie)
{
	return put_u64(wr, KICE_STUN_ATTR_ICE_CONTROLLED, tie);
}

int kice_stun_wr_use_candidate(struct kice_stun_wr *wr)
{
	return kice_stun_wr_attr(wr, KICE_STUN_ATTR_USE_CANDIDATE, NULL, 0);
}

int kice_stun_wr_error_code(
		struct kice_stun_wr *wr, int code, const char *reason, size_t len)
{
	uint8_t *v;

	if(wr == NULL)
		return -EINVAL;
	/* §14.8: "a numeric error code value in the range of 300 to 699" */
	if(wr->err == 0 && (code < 300 || code > 699 || (reason == NULL && len)))
		wr->err = -EINVAL;
	if(wr->err == 0 && len > MAX_BODY - 4)
		wr->err = -ENOSPC;
	v = reserve(wr, KICE_STUN_ATTR_ERROR_CODE, 4 + len);
	if(v == NULL)
		return wr->err;
	v[0] = 0;
	v[1] = 0;
	v[2] = (uint8_t)(code / 100);
	v[3] = (uint8_t)(code % 100);
	if(len > 0)
		memcpy(v + 4, reason, len);
	return 0;
}

int kice_stun_wr_unknown_attrs(
		struct kice_stun_wr *wr, const uint16_t *types, size_t n)
{
	uint8_t *v;
	size_t i;

	if(wr == NULL)
		return -EINVAL;
	if(wr->err == 0 && types == NULL && n > 0)
		wr->err = -EINVAL;
	if(wr->err == 0 && n > MAX_BODY / 2)
		wr->err = -ENOSPC;
	v = reserve(wr, KICE_STUN_ATTR_UNKNOWN_ATTRIBUTES, 2 * n);
	if(v == NULL)
		return wr->err;
	for(i = 0; i < n; i++)
		st16(v + 2 * i, types[i]);
	return 0;
}

int kice_stun_wr_integrity(
		struct kice_stun_wr *wr, const uint8_t *key, size_t keylen)
{
	size_t off;
	uint8_t *v;
	int ret;

	if(wr == NULL)
		return -EINVAL;
	if(wr->err == 0 && (key == NULL || keylen == 0))
		wr->err = -EINVAL;
	off = wr->len;
	v = reserve(wr, KICE_STUN_ATTR_MESSAGE_INTEGRITY, KICE_STUN_MI_LEN);
	if(v == NULL)
		return wr->err;
	ret = hmac_sha1(v, key, keylen, wr->buf, off);
	if(ret < 0)
		wr->err = ret;
	return wr->err;
}

int kice_stun_wr_fingerprint(struct kice_stun_wr *wr)
{
	size_t off;
	uint8_t *v;

	if(wr == NULL)
		return -EINVAL;
	off = wr->len;
	v = reserve(wr, KICE_STUN_ATTR_FINGERPRINT, 4);
	if(v == NULL)
		return wr->err;
	st32(v, fingerprint(wr->buf, off));
	return 0;
}

int kice_stun_wr_finish(const struct kice_stun_wr *wr)
{
	if(wr == NULL)
		return -EINVAL;
	if(wr->err)
		return wr->err;
	return (int)wr->len;
}
