/*
 * kamailio-ice: SRTP and SRTCP (RFC 3711) on libsrtp2, and SDP security
 * descriptions (SDES, RFC 4568).
 *
 * struct kice_srtp protects what a leg sends and unprotects what it
 * receives, with one master key per direction: from DTLS-SRTP
 * (lib/dtls, RFC 5764) or from a=crypto lines (kice_sdes_parse()).
 * Packets are processed in place in the caller's buffer; the packet path
 * allocates nothing of ours (libsrtp2 allocates a stream per new SSRC,
 * after the first packet of that SSRC authenticated).
 *
 * Forwarder-private: an srtp_t cannot cross processes. Not thread-safe:
 * one context is driven by one forwarder process.
 */
#ifndef KICE_SRTP_H
#define KICE_SRTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "slice.h"

/* Protection profiles. Values are the DTLS-SRTP profile identifiers of the
 * IANA registry (RFC 5764 §4.1.2, RFC 7714 §14.2). */
enum kice_srtp_profile
{
	KICE_SRTP_NONE = 0,
	KICE_SRTP_AES128_CM_SHA1_80 = 0x0001, /* SDES AES_CM_128_HMAC_SHA1_80 */
	KICE_SRTP_AES128_CM_SHA1_32 = 0x0002, /* SDES AES_CM_128_HMAC_SHA1_32 */
	KICE_SRTP_AEAD_AES_128_GCM = 0x0007	  /* SDES AEAD_AES_128_GCM */
};

#define KICE_SRTP_KEY_MAX 32
#define KICE_SRTP_SALT_MAX 14
#define KICE_SRTP_MKI_MAX 4 /* we accept MKIs of up to 4 bytes (RFC 4568 allows 128) */

/* Room protect needs after the packet: libsrtp2 may write its
 * SRTP_MAX_TRAILER_LEN (auth tag up to 16 bytes + MKI up to 128) and, for
 * SRTCP, the 4-byte E flag and index. Size packet buffers for
 * MTU + KICE_SRTCP_TRAILER_MAX. */
#define KICE_SRTP_TRAILER_MAX (16 + 128)
#define KICE_SRTCP_TRAILER_MAX (KICE_SRTP_TRAILER_MAX + 4)

/* One master key and salt, for one direction. */
struct kice_srtp_keys
{
	enum kice_srtp_profile profile;
	uint8_t key[KICE_SRTP_KEY_MAX];
	size_t key_len;
	uint8_t salt[KICE_SRTP_SALT_MAX];
	size_t salt_len;
	/* SDES only (RFC 4568 §6.1): when mki_len > 0 every packet carries
	 * this MKI, big-endian, mki_len bytes. DTLS-SRTP keys have none. */
	uint8_t mki[KICE_SRTP_MKI_MAX];
	size_t mki_len;
};

struct kice_srtp_stats
{
	uint64_t protected_rtp, protected_rtcp;		/* packets protected */
	uint64_t unprotected_rtp, unprotected_rtcp; /* packets verified */
	uint64_t auth_failures;						/* -EACCES returned */
	uint64_t replays;							/* -EALREADY returned */
	uint64_t errors;							/* anything else */
};

struct kice_srtp; /* opaque */

/*
 * Initialise libsrtp2 once per process (idempotent) and probe which
 * profiles it supports. Call in mod_init or the forwarder before
 * anything else here. Returns 0; -EIO if srtp_init() failed.
 */
int kice_srtp_init(void);

/* Release libsrtp2's global state (mod_destroy, tests). Idempotent. */
void kice_srtp_shutdown(void);

/* true if libsrtp2 (as built) can run profile p; needs kice_srtp_init() */
bool kice_srtp_profile_supported(enum kice_srtp_profile p);

/* Key and salt lengths of profile p (RFC 3711 §8.2, RFC 7714 §12);
 * false for an unknown profile. */
bool kice_srtp_profile_lengths(
		enum kice_srtp_profile p, size_t *key_len, size_t *salt_len);

/* "SRTP_AES128_CM_SHA1_80"... (RFC 5764 names), "none" or "unknown" */
const char *kice_srtp_profile_name(enum kice_srtp_profile p);

/*
 * Create a context: tx keys protect what we send (any SSRC), rx keys
 * unprotect what we receive (any SSRC), both for RTP and RTCP. tx and rx
 * are copied (wipe yours); their profiles may differ (SDES lets each side
 * choose). The receive replay window is KICE_SRTP_REPLAY_WINDOW packets;
 * the sender may protect a sequence number again (retransmissions).
 * Calls kice_srtp_init() if needed.
 * Returns 0; -EINVAL (NULL, unknown profile, key/salt lengths that do
 * not match it); -ENOTSUP (profile not built into libsrtp2); -ENOMEM;
 * -EIO (other libsrtp2 failure).
 */
#define KICE_SRTP_REPLAY_WINDOW 1024
int kice_srtp_create(struct kice_srtp **out, const struct kice_srtp_keys *tx,
		const struct kice_srtp_keys *rx);

/* Free s (NULL ok); its key schedules are wiped by libsrtp2. */
void kice_srtp_destroy(struct kice_srtp *s);

/*
 * Protect the RTP packet pkt[0..*len) in place; *len grows by the tag
 * (and the MKI). cap is the size of pkt: it must be at least
 * *len + KICE_SRTP_TRAILER_MAX (libsrtp2 may write that far).
 * Returns 0; -ENOSPC (cap too small); -EBADMSG (not an RTP packet);
 * -EALREADY (index too old to protect again); -EINVAL (NULL).
 */
int kice_srtp_protect(struct kice_srtp *s, uint8_t *pkt, size_t *len, size_t cap);

/*
 * Verify and decrypt the SRTP packet pkt[0..*len) in place; *len shrinks
 * to the RTP packet. On failure pkt may have been altered: drop it.
 * Returns 0; -EACCES (authentication failed: counted); -EALREADY (a
 * replay or older than the window: counted); -EBADMSG (malformed).
 */
int kice_srtp_unprotect(struct kice_srtp *s, uint8_t *pkt, size_t *len);

/* The same for RTCP (RFC 3711 §3.4): protect needs
 * cap >= *len + KICE_SRTCP_TRAILER_MAX. Same return codes. */
int kice_srtp_protect_rtcp(
		struct kice_srtp *s, uint8_t *pkt, size_t *len, size_t cap);
int kice_srtp_unprotect_rtcp(struct kice_srtp *s, uint8_t *pkt, size_t *len);

const struct kice_srtp_stats *kice_srtp_stats(const struct kice_srtp *s);

/*
 * SDES (RFC 4568): one a=crypto value,
 *   "<tag> <crypto-suite> inline:<base64 key||salt>[|<lifetime>][|<mki>:<len>]
 *    [<session-params>]"
 */
#define KICE_SDES_MAX 160 /* longest a=crypto value kice_sdes_format() writes */

struct kice_sdes
{
	uint32_t tag; /* 0..999999999 (RFC 4568 §9.1: 1*9DIGIT) */
	struct kice_srtp_keys keys; /* suite in keys.profile */
	uint64_t lifetime;			/* packets; 0: not given */
	uint32_t wsh;				/* WSH= window size hint, 0: not given */
};

/*
 * Parse one a=crypto value (after "a=crypto:"; borrowed; trailing CR/LF
 * are not expected). Of several key parameters (';'), the first is used.
 * Session parameters: KDR=0 and WSH=<n> are understood, "-"-prefixed ones
 * ignored (§6.3.7); any other (UNENCRYPTED_SRTP, FEC_KEY, KDR > 0...)
 * makes the line invalid. out is overwritten (holds key material: wipe
 * it with OPENSSL_cleanse when done).
 * Returns 0; -EBADMSG (malformed: bad tag, base64, key length, lifetime
 * or MKI); -ENOTSUP (unknown suite or unsupported session parameter:
 * the offerer may have offered another line); -EINVAL (NULL).
 */
int kice_sdes_parse(struct kice_slice crypto_value, struct kice_sdes *out);

/*
 * Write sd as an a=crypto value (no "a=crypto:", no CRLF), NUL-terminated,
 * into out (cap bytes; KICE_SDES_MAX is enough). The lifetime and MKI are
 * written when set; WSH is not.
 * Returns the length written (without the NUL); -ENOSPC; -EINVAL (NULL,
 * unknown suite, bad key lengths).
 */
int kice_sdes_format(const struct kice_sdes *sd, char *out, size_t cap);

/* Fill out with tag 1, suite and a fresh key and salt from the CSPRNG
 * (RAND_bytes). Returns 0; -EINVAL (unknown suite); -EIO (RNG failed). */
int kice_sdes_generate(enum kice_srtp_profile suite, struct kice_sdes *out);

/* RFC 4568 §6.2 / RFC 7714 §14.1 suite names; NULL if not an SDES suite */
const char *kice_sdes_suite_name(enum kice_srtp_profile p);

#endif
