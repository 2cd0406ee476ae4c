/*
 * kamailio-ice: media sessions and the table that holds them.
 *
 * Everything here lives in memory shared by the SIP workers, the RPC
 * process and the forwarders (Kamailio shm, or plain memory in tests): no
 * process-private pointer is ever stored. A session has two sides:
 * side 0 faces the caller, side 1 faces the callee(s). Each side owns the
 * relay ports its endpoints talk to, one RTP/RTCP pair per m-line. The
 * caller is one endpoint; the callee side holds one endpoint per to-tag
 * (forked early media), of which one is "active" (receives the caller's
 * media); the final answer keeps only its own.
 *
 * Locking: one process-shared mutex per hash bucket guards the bucket's
 * chain and every field of its sessions that a SIP worker writes. The
 * forwarder that owns a session is the only writer of its counters and
 * latched addresses, and the only process that frees it.
 */
#ifndef KICE_SESSION_H
#define KICE_SESSION_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "addr.h"
#include "mem.h"
#include "slice.h"
#include "srtp.h"

#define KICE_MAX_STREAMS 4
#define KICE_MAX_CALLEES 3
#define KICE_CALLID_MAX 128
#define KICE_TAG_MAX 64
#define KICE_MAX_RCAND 8	  /* remote candidates kept per stream */
#define KICE_UFRAG_MAX 32 /* RFC 8839 allows 256; longer is refused */
#define KICE_PWD_MAX 64

enum kice_sess_state
{
	KICE_SESS_OFFERED = 0, /* an offer has been seen */
	KICE_SESS_EARLY,	   /* a provisional answer (18x) */
	KICE_SESS_ANSWERED,	   /* a final answer */
	KICE_SESS_DELETED	   /* unlinked, waiting for its forwarder */
};

struct kice_counters
{
	uint64_t pkts_in, bytes_in;	  /* received from the endpoint */
	uint64_t pkts_out, bytes_out; /* sent to the endpoint */
	uint64_t dropped;			  /* refused or undeliverable */
};

/* A remote ICE candidate from the endpoint's SDP (or trickled) */
struct kice_rcand
{
	uint8_t comp;
	uint8_t type; /* 0 host, 1 srflx, 2 prflx, 3 relay */
	uint32_t prio;
	uint32_t foundation; /* hash of the foundation string */
	struct kice_addr addr;
};

/* One endpoint's view of one m-line. */
struct kice_ep_stream
{
	uint8_t ncand;
	bool eoc; /* a=end-of-candidates seen */
	struct kice_rcand cand[KICE_MAX_RCAND];
	bool present;	 /* the endpoint's SDP had this m-line */
	bool rtcp_mux;	 /* its SDP offered/accepted a=rtcp-mux */
	bool disabled;	 /* port 0 */
	/* ICE as the forwarder sees it (forwarder-written, for RPC) */
	uint8_t ice_state;			 /* enum kice_ice_state + 1, 0 = no agent */
	uint32_t ice_checks_sent, ice_checks_recv, ice_auth_fail;
	struct kice_addr selected[2]; /* the selected pair's remote address */
	struct kice_addr sdp[2];	 /* RTP, RTCP as its SDP advertised */
	struct kice_addr latched[2]; /* learned from its packets (forwarder) */
	struct kice_counters cnt[2]; /* forwarder-written */
	char mid[16];				 /* its a=mid */
	bool sdes_ok;				 /* sdes holds its a=crypto (SDES) */
	struct kice_sdes sdes;		 /* its key: what we unprotect with */
	/* crypto as the forwarder sees it (forwarder-written, for RPC) */
	uint8_t dtls_state;			 /* enum kice_dtls_state + 1, 0 = none */
	char srtp_profile[28];		 /* negotiated, "" = no SRTP */
	char dtls_cipher[40];
	uint32_t srtp_auth_fail, srtp_replays;
};

enum kice_crypto
{
	KICE_CRYPTO_NONE = 0, /* plain RTP, or passed through untouched */
	KICE_CRYPTO_SDES,
	KICE_CRYPTO_DTLS
};

struct kice_endpoint
{
	bool used;
	uint8_t tag_len;
	char tag[KICE_TAG_MAX];
	uint32_t gen;				/* bumped by each SDP it sends */
	uint64_t relatch_until_ms;	/* re-latching allowed until (monotonic) */
	bool strict_source;			/* never re-latch (flag strict-source) */
	bool ice;					/* its SDP carried ICE */
	bool ice_lite;				/* ... as an ICE-lite agent */
	uint32_t ice_gen;			/* bumped when its credentials change */
	char ufrag[KICE_UFRAG_MAX + 1], pwd[KICE_PWD_MAX + 1];
	uint8_t crypto;			  /* enum kice_crypto its SDP used */
	uint8_t setup;			  /* enum kice_dtls_setup of its SDP */
	bool dtls_role_set;		  /* dtls_role is known */
	uint8_t dtls_role;		  /* our enum kice_dtls_role toward it */
	char fp_alg[12], fp_hex[192]; /* its a=fingerprint */
	char proto[24];			  /* its m= protocol (first RTP m-line) */
	/* per m-line, allocated (shm) when its SDP first has the m-line and
	 * kept until the session is freed: read with kice_ep_st() */
	struct kice_ep_stream *st[KICE_MAX_STREAMS];
};

struct kice_side
{
	uint8_t iface;							/* interface index */
	uint8_t ice_mode;	/* enum kice_ice_mode of the SDP last sent to it */
	bool ice_lite;		/* we declared a=ice-lite to it */
	bool ice_controlling; /* our role toward it (full agent) */
	uint32_t ice_gen;	/* bumped when our credentials toward it change */
	char ufrag[9], pwd[25]; /* our credentials toward it (CSPRNG) */
	uint8_t crypto;	   /* enum kice_crypto the relay terminates toward it */
	uint8_t mux_sent;  /* bit per m-line: our SDP to it had a=rtcp-mux */
	bool sdes_set[KICE_MAX_STREAMS];
	/* our keys toward it (SDES), allocated (shm) when first made */
	struct kice_sdes *sdes[KICE_MAX_STREAMS];
	uint16_t port[KICE_MAX_STREAMS];		/* RTP port (RTCP = +1), 0 = none */
};

struct kice_session
{
	struct kice_session *next;	   /* bucket chain (shm) */
	struct kice_session *next_dead; /* forwarder's dead list (shm) */
	uint32_t id;					/* unique, for logs */
	uint32_t hash;
	uint8_t fwd;					/* owning forwarder */
	uint8_t state;					/* enum kice_sess_state */
	uint8_t active_callee;			/* index into callee[] */
	uint8_t nstreams;
	uint16_t callid_len;
	char callid[KICE_CALLID_MAX];
	uint64_t created_ms;			/* wall clock, for display */
	uint64_t created_mono_ms;		/* monotonic */
	uint64_t last_media_ms;			/* monotonic, forwarder-written */
	uint64_t last_signal_ms;		/* monotonic, worker-written */
	struct kice_side side[2];
	struct kice_endpoint caller;
	/* one per to-tag with SDP, allocated (shm) on first use and kept until
	 * the session is freed (NULL: never used) */
	struct kice_endpoint *callee[KICE_MAX_CALLEES];
	/* what every call needs, in the same block: the caller's first stream,
	 * the first callee and its first stream (one allocation, one free for
	 * an audio-only call); callee[0], caller.st[0] and callee[0]->st[0]
	 * point here once used */
	struct kice_ep_stream caller_st0;
	struct kice_endpoint callee0;
	struct kice_ep_stream callee0_st0;
};

struct kice_bucket
{
	pthread_mutex_t lock;
	struct kice_session *head;
};

/* Per-forwarder shared state: dead list and counters. */
struct kice_fwd_shared
{
	pthread_mutex_t lock;
	struct kice_session *dead;	 /* sessions to close and free */
	uint64_t pkts_relayed, bytes_relayed, pkts_dropped;
	uint64_t stun_requests, stun_auth_failures, ice_successes, ice_failures;
	uint64_t dtls_handshakes, dtls_failures, srtp_auth_failures;
	uint32_t sessions;			 /* sessions it owns */
	int pid;
	uint8_t io_uring;			 /* its media I/O: 1 io_uring, 0 epoll */
	uint8_t ticking;			 /* it wakes every 10 ms (ICE agents, DTLS) */
};

/* One RTP/RTCP port pair of the pool. A forwarder may keep the sockets
 * of a pair open after its session ends ("held"): the next session of
 * that forwarder on that interface takes the pair as it is, without a
 * socket, bind or close; it sits in the forwarder's list meanwhile. */
struct kice_pair
{
	uint8_t used;	/* a session has it */
	uint8_t held;	/* forwarder `fwd` has its sockets open, bound on `iface` */
	uint8_t fwd, iface;
	uint32_t link;	/* next pair in its held list */
};

#define KICE_PORTS_IFACES 8 /* interfaces a held list is kept for */
#define KICE_PORTS_NONE 0xffffffffu

struct kice_ports
{
	pthread_mutex_t lock;
	uint16_t min, max; /* even min, inclusive range */
	uint32_t next;	   /* hint: next pair to try */
	uint32_t in_use;   /* ports, not pairs */
	uint32_t nfwd;
	uint32_t held;	   /* pairs held and not in use (all forwarders) */
	uint32_t *head;	   /* held lists, [fwd * KICE_PORTS_IFACES + iface] */
	uint32_t *nheld;   /* pairs each forwarder holds (in use or not) */
	struct kice_pair pair[];
};

struct kice_table
{
	struct kice_mem mem;
	uint32_t nbuckets;
	uint32_t next_id;
	uint32_t nfwd;
	uint64_t sessions_total;
	uint32_t sessions_active;
	struct kice_ports *ports;
	struct kice_fwd_shared *fwd; /* nfwd entries */
	struct kice_bucket *buckets;
};

/* Create the table with its ports pool [port_min, port_max] and nfwd
 * forwarder slots, in memory from m (shm). Start-up only (before fork).
 * Returns 0, -EINVAL, -ENOMEM. */
int kice_table_create(struct kice_table **out, const struct kice_mem *m,
		uint32_t nbuckets, uint16_t port_min, uint16_t port_max, uint32_t nfwd);
/* Free it and every session still in it (NULL ok). Main process only. */
void kice_table_destroy(struct kice_table *t);

uint32_t kice_table_hash(const struct kice_table *t, struct kice_slice callid);
void kice_bucket_lock(struct kice_table *t, uint32_t hash);
void kice_bucket_unlock(struct kice_table *t, uint32_t hash);

/* Find by Call-ID. Caller holds the bucket lock of hash. */
struct kice_session *kice_session_find(
		struct kice_table *t, uint32_t hash, struct kice_slice callid);
/* Create and link a session (state OFFERED, caller tag set). Caller holds
 * the bucket lock. Returns it or NULL (-ENOMEM, or callid/tag too long). */
struct kice_session *kice_session_create(struct kice_table *t, uint32_t hash,
		struct kice_slice callid, struct kice_slice caller_tag,
		uint64_t now_ms);
/* Unlink from its bucket, mark DELETED and queue it on its forwarder's
 * dead list; the forwarder closes its sockets, frees its ports and the
 * memory. Caller holds the bucket lock. */
void kice_session_unlink(struct kice_table *t, struct kice_session *s);
/* Free a session that was never linked, or was unlinked and whose ports
 * were released (forwarder). */
void kice_session_free(struct kice_table *t, struct kice_session *s);

/* The endpoint with this tag on side 0 (caller) or 1 (callee), or NULL.
 * Caller holds the bucket lock. */
struct kice_endpoint *kice_session_endpoint(
		struct kice_session *s, int side, struct kice_slice tag);
/* Find or add a callee endpoint by to-tag (NULL if all are in use, or no
 * memory). Caller holds the bucket lock. */
struct kice_endpoint *kice_session_callee(struct kice_table *t,
		struct kice_session *s, struct kice_slice tag, bool create);
/* Index of callee ep in s->callee[], or KICE_MAX_CALLEES */
unsigned kice_session_callee_idx(
		const struct kice_session *s, const struct kice_endpoint *ep);
/* Keep only callee ep (after a final answer). */
void kice_session_keep_callee(struct kice_session *s, struct kice_endpoint *ep);
/* Callee i if it is in use, else NULL */
static inline struct kice_endpoint *kice_session_callee_at(
		const struct kice_session *s, unsigned i)
{
	return i < KICE_MAX_CALLEES && s->callee[i] && s->callee[i]->used
				   ? s->callee[i]
				   : NULL;
}

/* Make sure ep has stream blocks for m-lines [0, n) (SIP worker, bucket
 * lock held). 0 or -ENOMEM (the ones made so far are kept). */
int kice_ep_streams_alloc(
		struct kice_table *t, struct kice_endpoint *ep, unsigned n);
/* Our SDES key block toward side sd for m-line i, made if needed (bucket
 * lock held); NULL: no memory */
struct kice_sdes *kice_side_sdes(
		struct kice_table *t, struct kice_side *sd, unsigned i);

/* An all-zero stream: what kice_ep_st() gives for an m-line the endpoint
 * never had (present false, no candidates, no address). */
extern const struct kice_ep_stream kice_ep_stream_none;
static inline const struct kice_ep_stream *kice_ep_st(
		const struct kice_endpoint *ep, unsigned i)
{
	return i < KICE_MAX_STREAMS && ep->st[i] ? ep->st[i] : &kice_ep_stream_none;
}

/* Ports: allocate an even/odd pair (RTP port returned) for a session of
 * forwarder fwd on interface iface: a pair that forwarder holds open on
 * that interface if there is one (*held = true: nothing to bind), else a
 * free pair nobody holds (*held = false). -ENOSPC when none is left. Any
 * process. */
int kice_ports_alloc_pair(struct kice_ports *p, unsigned fwd, unsigned iface,
		uint16_t *rtp_port, bool *held);
/* Give a pair back: a held one returns to its forwarder's list, sockets
 * still open; any other must have no socket left. */
void kice_ports_release_pair(struct kice_ports *p, uint16_t rtp_port);
/* Forwarder: give a pair back whose sockets it closed (held or not) */
void kice_ports_release_closed(struct kice_ports *p, uint16_t rtp_port);
/* Forwarder: give a pair back keeping its sockets open (bound on iface),
 * if this forwarder holds fewer than half its share of the pool; false: it
 * must close them and call kice_ports_release_closed(). */
bool kice_ports_release_kept(
		struct kice_ports *p, uint16_t rtp_port, unsigned fwd, unsigned iface);
/* Forwarder: it closed every socket it held (it stops) */
void kice_ports_drop_held(struct kice_ports *p, unsigned fwd);
void kice_ports_usage(struct kice_ports *p, uint32_t *in_use, uint32_t *total);
/* pairs held open and not in use */
uint32_t kice_ports_held(struct kice_ports *p);

/* Monotonic and wall clocks in milliseconds. */
uint64_t kice_now_ms(void);
uint64_t kice_wall_ms(void);

#endif
