/*
 * kamailio-ice: DTLS-SRTP (RFC 5763, RFC 5764) on OpenSSL 3, sans-I/O.
 *
 * A certificate (kice_dtls_cert) is made or loaded once, in mod_init
 * before the fork, so every process can write its fingerprint into SDP;
 * it also holds the SSL_CTX the associations share. An association
 * (kice_dtls) is one DTLS 1.2 handshake of one leg and m-line: it owns no
 * socket and no timer. The host (the forwarder) feeds the DTLS records
 * that arrived (first byte 20..63, RFC 7983) with kice_dtls_input(),
 * calls kice_dtls_tick() at kice_dtls_next_deadline(), and records leave
 * through the send callback, one datagram per call.
 *
 * OpenSSL times its retransmissions on the wall clock (gettimeofday);
 * kice_dtls_next_deadline() converts what remains to the host's clock, so
 * any host clock that advances in real time (CLOCK_MONOTONIC) works.
 *
 * The peer is authenticated only by its certificate's fingerprint from
 * the SDP (RFC 5763 §5; RFC 8122): no chain, names or dates are checked.
 * On CONNECTED the SRTP master keys are exported (RFC 5764 §4.2) for
 * lib/srtp. Application data is not carried (no data channels).
 *
 * Forwarder-private: OpenSSL objects do not cross processes. Not
 * thread-safe: one association is driven by one forwarder process.
 */
#ifndef KICE_DTLS_H
#define KICE_DTLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "slice.h"
#include "srtp.h"

/* RFC 8122 §5: "sha-512 " and 64 hex pairs with colons, NUL */
#define KICE_DTLS_FP_MAX (8 + 64 * 3)
#define KICE_DTLS_MTU 1200 /* largest datagram we send */

/* Retransmission (RFC 6347 §4.2.4.1): the timer starts at INITIAL and
 * doubles up to MAX. A handshake not done HANDSHAKE_US after
 * kice_dtls_start() or the first record fails ("handshake timed out"). */
#define KICE_DTLS_RTO_INITIAL_US 500000
#define KICE_DTLS_RTO_MAX_US 4000000
#define KICE_DTLS_HANDSHAKE_US 30000000

enum kice_dtls_role
{
	KICE_DTLS_CLIENT, /* a=setup:active: we send the ClientHello */
	KICE_DTLS_SERVER  /* a=setup:passive */
};

enum kice_dtls_state
{
	KICE_DTLS_NEW,		   /* created, not started, nothing received */
	KICE_DTLS_HANDSHAKING, /* started or a record arrived */
	KICE_DTLS_CONNECTED,   /* handshake done, peer verified, SRTP keys ready */
	KICE_DTLS_FAILED,	   /* see kice_dtls_why(); final */
	KICE_DTLS_CLOSED	   /* the peer sent close_notify; final */
};

/* a=setup values (RFC 4145 §4, RFC 8842 §5) */
enum kice_dtls_setup
{
	KICE_DTLS_SETUP_NONE, /* attribute absent */
	KICE_DTLS_SETUP_ACTPASS,
	KICE_DTLS_SETUP_ACTIVE,
	KICE_DTLS_SETUP_PASSIVE,
	KICE_DTLS_SETUP_HOLDCONN
};

struct kice_dtls_cert; /* opaque */
struct kice_dtls;	   /* opaque */

/* Send one datagram pkt (len bytes, borrowed for the call) to the peer.
 * Called from kice_dtls_start(), _input() and _tick() only; it must not
 * call back into the association. */
typedef void (*kice_dtls_send_fn)(void *ctx, const uint8_t *pkt, size_t len);

/*
 * Make a self-signed certificate: ECDSA P-256 key, SHA-256 signature,
 * CN "kamailio-ice", random 64-bit serial, valid from a day ago for 30
 * days. mod_init context (before fork). *out is the caller's; free it
 * with kice_dtls_cert_destroy(). Returns 0; -EINVAL (NULL); -EIO (an
 * OpenSSL failure, logged).
 */
int kice_dtls_cert_create(struct kice_dtls_cert **out);

/*
 * Load a PEM certificate (the first one of cert_path) and its private key
 * (key_path, unencrypted; any type OpenSSL supports for DTLS 1.2).
 * Returns 0; -EINVAL (NULL); -ENOENT (a file cannot be read); -EBADMSG
 * (no PEM certificate or key, or the key does not match).
 */
int kice_dtls_cert_load(struct kice_dtls_cert **out, const char *cert_path,
		const char *key_path);

/* Free cert (NULL ok). Associations hold their own references to the
 * shared SSL_CTX, so they may outlive it. */
void kice_dtls_cert_destroy(struct kice_dtls_cert *cert);

/*
 * Write the a=fingerprint value of cert, "sha-256 AB:CD:..." (RFC 8122
 * §5, upper-case hex: 95 characters after "sha-256 "), NUL-terminated,
 * into out (cap bytes: 104 is enough, KICE_DTLS_FP_MAX always).
 * Returns the length (103); -ENOSPC; -EINVAL (NULL).
 */
int kice_dtls_cert_fingerprint(
		const struct kice_dtls_cert *cert, char *out, size_t cap);

/*
 * Create an association with the peer whose SDP had
 * "a=fingerprint:<remote_fp_alg> <remote_fp_hex>" (both NUL-terminated,
 * copied; alg "sha-1", "sha-224", "sha-256", "sha-384" or "sha-512" in
 * any case, hex with colons in any case). The cert (borrowed for the
 * call) gives our certificate and key. send and ctx are kept. Offers the
 * SRTP profiles SRTP_AEAD_AES_128_GCM (if libsrtp2 has it) and
 * SRTP_AES128_CM_SHA1_80, in that order of preference.
 * Returns 0; -EINVAL (NULL, unknown algorithm, fingerprint that is not
 * hex or not the algorithm's length); -ENOMEM; -EIO (OpenSSL failure).
 */
int kice_dtls_create(struct kice_dtls **out, struct kice_dtls_cert *cert,
		enum kice_dtls_role role, const char *remote_fp_alg,
		const char *remote_fp_hex, kice_dtls_send_fn send, void *ctx);

/* Free d (NULL ok) without sending anything; wipes the key material. */
void kice_dtls_destroy(struct kice_dtls *d);

/*
 * Start the handshake: a client sends its ClientHello, a server waits for
 * one. State HANDSHAKING. Call it once ICE has a selected pair, so the
 * ClientHello has a path; calling it again does nothing.
 * Returns 0; -EINVAL (NULL); -EPROTO (the association has failed).
 */
int kice_dtls_start(struct kice_dtls *d, uint64_t now_us);

/*
 * A datagram holding DTLS records (pkt, len bytes, borrowed) arrived.
 * Drives the handshake (a server starts on its first ClientHello),
 * answers retransmissions after CONNECTED, and handles alerts; may call
 * send. Read kice_dtls_next_deadline() again afterwards.
 * Returns 1 when this datagram completed the handshake (state CONNECTED:
 * take the keys now); 0 consumed (incl. records OpenSSL discards as
 * invalid, as RFC 6347 §4.1.2.7 wants); -EACCES (the peer certificate
 * did not match the fingerprint: FAILED); -EPROTO (the handshake failed,
 * or the association had already failed: FAILED); -EBADMSG (first byte
 * outside 20..63, or empty: dropped); -EINVAL (NULL).
 */
int kice_dtls_input(
		struct kice_dtls *d, uint64_t now_us, const uint8_t *pkt, size_t len);

/* Run the retransmission timer and the handshake time limit; may call
 * send, may make the association FAILED. */
void kice_dtls_tick(struct kice_dtls *d, uint64_t now_us);

/* Absolute time (us, host clock) kice_dtls_tick() wants to run at;
 * UINT64_MAX if none. A time in the past means "now". */
uint64_t kice_dtls_next_deadline(const struct kice_dtls *d);

enum kice_dtls_state kice_dtls_state(const struct kice_dtls *d);
const char *kice_dtls_state_name(enum kice_dtls_state s);
enum kice_dtls_role kice_dtls_role(const struct kice_dtls *d);

/* Why the association FAILED (a static string), or NULL */
const char *kice_dtls_why(const struct kice_dtls *d);

/*
 * On CONNECTED: the SRTP master keys (RFC 5764 §4.2): the exporter label
 * "EXTRACTOR-dtls_srtp" yields client_write_key | server_write_key |
 * client_write_salt | server_write_salt. tx gets the keys we protect
 * with (client_write for a client), rx the peer's; both carry the
 * negotiated profile. Wipe them after kice_srtp_create().
 * Returns 0; -EAGAIN (not CONNECTED); -EINVAL (NULL); -EIO (export failed).
 */
int kice_dtls_srtp_keys(const struct kice_dtls *d, struct kice_srtp_keys *tx,
		struct kice_srtp_keys *rx);

/* Negotiated profile (KICE_SRTP_NONE before CONNECTED) */
enum kice_srtp_profile kice_dtls_profile(const struct kice_dtls *d);

/* For RPC: the TLS cipher suite (OpenSSL name) and SRTP profile name
 * (RFC 5764 name) of a CONNECTED association; "" before. Static or
 * owned by OpenSSL: valid while d lives. */
const char *kice_dtls_cipher_name(const struct kice_dtls *d);
const char *kice_dtls_profile_name(const struct kice_dtls *d);

/* Parse an a=setup value (case-insensitive). Returns 0; -EBADMSG. */
int kice_dtls_setup_parse(struct kice_slice s, enum kice_dtls_setup *out);

/* "actpass", "active", "passive", "holdconn"; "" for NONE */
const char *kice_dtls_setup_name(enum kice_dtls_setup s);

/*
 * Our DTLS role from the peer's a=setup (RFC 8842 §5, RFC 5763 §5; the
 * RFC 4145 §4 defaults when absent). we_are_answerer: the peer's SDP is an offer.
 *   offer actpass -> we answer active (client; RFC 5763 §5 RECOMMENDED)
 *   offer active or absent -> we are passive (server)
 *   offer passive -> we are active (client)
 *   answer active -> we are server; answer passive or absent -> client
 * Returns 0; -ENOENT (holdconn: no connection for now); -EBADMSG (actpass
 * in an answer: the answerer must choose); -EINVAL (NULL, bad enum).
 */
int kice_dtls_role_from_setup(enum kice_dtls_setup remote,
		bool we_are_answerer, enum kice_dtls_role *role);

/* The a=setup value we write for role in an answer: active for a client,
 * passive for a server. (An offer always says actpass, RFC 5763 §5.) */
enum kice_dtls_setup kice_dtls_setup_for_role(enum kice_dtls_role role);

#endif
