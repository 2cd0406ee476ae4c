/*
 * kamailio-ice: sans-I/O ICE agent (RFC 8445) with consent freshness
 * (RFC 7675) and trickle (RFC 8838), for one media stream of one leg.
 *
 * The agent owns no socket and no clock. The host (the forwarder) feeds it
 * the STUN packets that arrived on the leg's sockets with
 * kice_ice_input(), calls kice_ice_tick() at kice_ice_next_deadline(), and
 * the agent sends through cfg.send. Time is a parameter in microseconds,
 * so tests are deterministic.
 *
 * struct kice_ice is one fixed-size object the host embeds or allocates
 * once; nothing is allocated after kice_ice_init() (OpenSSL's HMAC, used
 * by lib/stun, may allocate internally). Its fields are private: read
 * them through the functions below (tests may peek).
 *
 * Local candidates are host candidates only (the relay's own sockets, one
 * per component and interface address): no gathering, no server
 * reflexive or relayed candidates, so a valid pair is always the pair
 * that was checked. A lite agent (RFC 8445 §2.5) only answers checks; a
 * full agent also checks, paced by Ta, and nominates when controlling
 * (regular nomination), accepting aggressive nomination from its peer.
 *
 * Not thread-safe: one agent is driven by one forwarder process.
 */
#ifndef KICE_ICE_H
#define KICE_ICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "stun.h"

#define KICE_ICE_MAX_LOCAL 4
#define KICE_ICE_MAX_REMOTE 16
#define KICE_ICE_MAX_PAIRS 32
#define KICE_ICE_MAX_COMP 2 /* RTP = 1, RTCP = 2 */

#define KICE_ICE_UFRAG_MAX 32 /* we keep at most 32 of RFC 8839's 256 */
#define KICE_ICE_PWD_MAX 64
#define KICE_ICE_UFRAG_MIN 4 /* RFC 8839 §5.4 */
#define KICE_ICE_PWD_MIN 22

/* Timers, microseconds */
#define KICE_ICE_TA_US 50000				/* RFC 8445 §14.2 default */
#define KICE_ICE_RTO_MIN_US 500000			/* RFC 8445 §14.3 */
#define KICE_ICE_RTO_MAX_US 1600000			/* cap of the doubling interval */
#define KICE_ICE_RC 7						/* RFC 8489 §6.2.1 Rc */
#define KICE_ICE_NOMINATE_WAIT_US 1000000	/* after the first valid pair */
#define KICE_ICE_NOPAIR_US 10000000			/* a component that never pairs */
#define KICE_ICE_CONSENT_US 5000000			/* RFC 7675 §5.1 */
#define KICE_ICE_CONSENT_EXPIRY_US 30000000 /* RFC 7675 §5.1 */
#define KICE_ICE_CONSENT_TIDS 4 /* outstanding consent requests kept */

enum kice_ice_role
{
	KICE_ICE_CONTROLLED = 0,
	KICE_ICE_CONTROLLING = 1
};

/* Agent state */
enum kice_ice_state
{
	KICE_ICE_NEW,		/* not driven yet (no tick, no check received) */
	KICE_ICE_RUNNING,	/* checking */
	KICE_ICE_COMPLETED, /* a selected pair for every component */
	KICE_ICE_FAILED		/* a component failed or lost consent */
};

enum kice_pair_state
{
	KICE_PAIR_FROZEN,
	KICE_PAIR_WAITING,
	KICE_PAIR_IN_PROGRESS,
	KICE_PAIR_SUCCEEDED, /* valid (RFC 8445 §7.2.5.3.2) */
	KICE_PAIR_FAILED
};

enum kice_cand_type
{
	KICE_CAND_HOST,
	KICE_CAND_SRFLX,
	KICE_CAND_PRFLX,
	KICE_CAND_RELAY
};

struct kice_ice_cand
{
	uint8_t component; /* 1-based */
	enum kice_cand_type type;
	uint32_t priority;
	char foundation[33]; /* NUL-terminated, 1..32 ice-chars */
	struct kice_addr addr;
	struct kice_addr raddr; /* related address, informative only */
	uint8_t local_idx;		/* local candidates: the host's socket id */
};

struct kice_ice_cfg
{
	bool lite;				 /* we are lite: answer checks, never send any */
	enum kice_ice_role role; /* initial role; a lite agent is controlled */
	uint64_t tie_breaker;	 /* random (RFC 8445 §7.1.3); also seeds jitter */
	char lufrag[KICE_ICE_UFRAG_MAX + 1], lpwd[KICE_ICE_PWD_MAX + 1];
	char rufrag[KICE_ICE_UFRAG_MAX + 1], rpwd[KICE_ICE_PWD_MAX + 1];
	bool remote_lite;			  /* the peer's SDP had a=ice-lite */
	unsigned ncomp;				  /* 1 or 2 */
	uint32_t ta_us;				  /* pacing; 0: KICE_ICE_TA_US */
	uint32_t consent_interval_us; /* 0: KICE_ICE_CONSENT_US (±20 % jitter) */
	/* Send pkt (len bytes, borrowed for the call) from the socket
	 * local_idx to dst. Called from kice_ice_input() and kice_ice_tick()
	 * only; it must not call back into the agent. */
	void (*send)(void *ctx, uint8_t local_idx, const struct kice_addr *dst,
			const uint8_t *pkt, size_t len);
	void *ctx;
};

struct kice_ice_stats
{
	uint32_t checks_sent;	 /* requests transmitted, incl. retransmissions
							  * and consent requests */
	uint32_t checks_recv;	 /* authenticated requests received */
	uint32_t responses_ok;	 /* authenticated success responses */
	uint32_t auth_failures;	 /* integrity, fingerprint or username */
	uint32_t role_conflicts; /* 487 sent or received, or a role switch */
	uint32_t nominations;	 /* pairs that became nominated */
};

/* A candidate pair. Private to the agent. */
struct kice_ice_pair
{
	uint8_t lc, rc; /* indexes into local[] and remote[] */
	enum kice_pair_state state;
	uint64_t prio;		 /* RFC 8445 §6.1.2.3, recomputed on role change */
	bool nominated;		 /* RFC 8445 §8.1.1 nominated flag */
	bool peer_nominated; /* USE-CANDIDATE received (we are controlled) */
	bool nominating;	 /* we nominate: the next check has USE-CANDIDATE */
	uint32_t trig_seq;	 /* position in the triggered-check queue, 0: not */
	uint8_t rx_tid[KICE_STUN_TID_LEN]; /* the request that triggered last */

	/* the check transaction (RFC 8489 §6.2.1) */
	bool tx_live, tx_use_cand, tx_controlling;
	uint8_t ntx; /* transmissions so far */
	uint32_t rto_us;
	uint64_t next_tx_us; /* next retransmission, or give-up after the last */
	uint8_t tid[KICE_STUN_TID_LEN];
	/* a transaction cancelled by a triggered check (RFC 8445 §7.3.1.4)
	 * whose response is still accepted until old_until_us */
	bool old_live, old_use_cand, old_controlling;
	uint64_t old_until_us;
	uint8_t old_tid[KICE_STUN_TID_LEN];

	/* consent freshness (RFC 7675) */
	bool consent_lost;
	uint64_t consent_until_us;
	uint64_t consent_next_us; /* selected pairs of a full agent */
	uint8_t ctid[KICE_ICE_CONSENT_TIDS][KICE_STUN_TID_LEN];
	uint8_t nctid; /* consent requests sent (ring position) */
};

/* The agent. Embed or allocate it; initialise with kice_ice_init(). */
struct kice_ice
{
	struct kice_ice_cfg cfg;
	enum kice_ice_state state;
	enum kice_ice_role role;
	bool eoc;	  /* no more remote candidates (RFC 8838 §13) */
	bool started; /* start_us is set */
	uint64_t start_us;
	uint64_t next_slot_us; /* pacing: the next request may leave then */
	uint64_t rng;		   /* xorshift state for consent jitter */
	uint32_t trig_next;	   /* next triggered-queue sequence number */
	unsigned prflx_seq;	   /* names peer-reflexive foundations */
	bool first_valid[KICE_ICE_MAX_COMP];
	uint64_t first_valid_us[KICE_ICE_MAX_COMP];

	struct kice_ice_cand local[KICE_ICE_MAX_LOCAL];
	unsigned nlocal;
	struct kice_ice_cand remote[KICE_ICE_MAX_REMOTE];
	unsigned nremote;
	struct kice_ice_pair pairs[KICE_ICE_MAX_PAIRS]; /* unordered */
	unsigned npairs;

	/* after a restart: the previously selected pairs, used until the new
	 * ones are selected or their consent runs out (RFC 8445 §9) */
	bool prev_valid[KICE_ICE_MAX_COMP];
	uint8_t prev_lidx[KICE_ICE_MAX_COMP];
	struct kice_addr prev_addr[KICE_ICE_MAX_COMP];
	uint64_t prev_until_us[KICE_ICE_MAX_COMP];
	uint64_t now_us; /* the latest time the host gave */

	struct kice_ice_stats stats;
};

/*
 * Initialise a (overwritten entirely) from cfg (copied). Credentials must
 * be RFC 8839 sized (ufrag 4..32, pwd 22..64 characters here), printable,
 * and a ufrag must not hold ':'. A lite agent is controlled; a full agent
 * facing a lite peer is controlling (RFC 8445 §6.1.1).
 * Returns 0; -EINVAL (NULL, bad credentials, ncomp not 1 or 2, no send).
 */
int kice_ice_init(struct kice_ice *a, const struct kice_ice_cfg *cfg);

/*
 * Add a host candidate: the host's socket local_idx bound to addr
 * (borrowed) for component. Priority and foundation per RFC 8445 §5.1.2
 * and §5.1.1.3. Pairs are formed with the remote candidates known.
 * Returns 0; -EINVAL (bad component or address, local_idx or address
 * already used); -ENOSPC (KICE_ICE_MAX_LOCAL reached).
 */
int kice_ice_add_local(struct kice_ice *a, uint8_t component, uint8_t local_idx,
		const struct kice_addr *addr);

/*
 * Add a remote candidate (from the SDP or trickled; c is copied). Pairs
 * are formed with the local candidates of the same component and address
 * family (RFC 8445 §6.1.2; checks go in pair-priority order, and with host
 * candidates only no pair is redundant). A
 * candidate whose component and address are known already is ignored,
 * except that it gives a peer-reflexive one its type, priority and
 * foundation. Returns 0; -EINVAL (bad component, address or port);
 * -ENOSPC (KICE_ICE_MAX_REMOTE reached).
 */
int kice_ice_add_remote(struct kice_ice *a, const struct kice_ice_cand *c);

/*
 * No more remote candidates will be added (RFC 8838 §13): the agent may
 * now fail. Call it after the SDP's candidates when the peer does not
 * trickle, and on a=end-of-candidates when it does.
 */
void kice_ice_end_of_candidates(struct kice_ice *a);

/*
 * A packet (borrowed) arrived on the host's socket local_idx from src.
 * Answers checks and processes responses; may call cfg.send. The host
 * must read kice_ice_next_deadline() again afterwards.
 * Returns 1 (STUN consumed, also stray responses and indications);
 * 0 (not STUN: media, see kice_ice_source_ok()); -EACCES (STUN that
 * failed FINGERPRINT, USERNAME or MESSAGE-INTEGRITY: dropped and counted);
 * -EBADMSG (malformed STUN, dropped); -EINVAL (NULL, unknown local_idx).
 */
int kice_ice_input(struct kice_ice *a, uint64_t now_us, uint8_t local_idx,
		const struct kice_addr *src, const uint8_t *pkt, size_t len);

/*
 * Run timers: checks paced by Ta, retransmissions, nomination, consent.
 * May call cfg.send. Call it at (or after) kice_ice_next_deadline().
 */
void kice_ice_tick(struct kice_ice *a, uint64_t now_us);

/* Absolute time (us) kice_ice_tick() wants to run at, UINT64_MAX if none.
 * A time in the past means "now". */
uint64_t kice_ice_next_deadline(const struct kice_ice *a);

/*
 * The selected pair of component (1-based): the highest-priority
 * nominated pair whose consent has not expired (or, after a restart, the
 * previous one until a new one is selected). Returns the remote address
 * (points into a, valid until the next call that changes the agent) and
 * sets *local_idx (may be NULL) to the socket to send from; NULL if none.
 */
const struct kice_addr *kice_ice_selected(
		const struct kice_ice *a, uint8_t component, uint8_t *local_idx);

/* Where to send media of component now: the selected pair, else (RFC 8445
 * §12.1) the highest-priority valid pair whose consent holds; NULL if
 * none. Same conventions as kice_ice_selected(). */
const struct kice_addr *kice_ice_media_path(
		const struct kice_ice *a, uint8_t component, uint8_t *local_idx);

/* true if media from src (borrowed) on component may be accepted: src is
 * the remote address of a valid (succeeded) pair of that component whose
 * consent has not expired */
bool kice_ice_source_ok(const struct kice_ice *a, uint8_t component,
		const struct kice_addr *src);

/* The agent's state. A full agent fails when every pair of a component
 * failed after end-of-candidates, when a component still has no pair
 * KICE_ICE_NOPAIR_US after the start (with end-of-candidates), or when the
 * selected
 * pair's consent expires; FAILED is final until kice_ice_restart(). A
 * lite agent fails only when the consent on its selected pair expires,
 * and completes again when the peer's checks resume. */
enum kice_ice_state kice_ice_state(const struct kice_ice *a);
enum kice_ice_role kice_ice_role(const struct kice_ice *a);

/*
 * ICE restart (RFC 8445 §9): new local and remote credentials (copied,
 * checked as in kice_ice_init()); remote candidates, pairs and the
 * end-of-candidates mark are cleared, local candidates and the role kept,
 * state RUNNING. The selected pairs stay usable until new ones are
 * selected or their consent expires.
 * Returns 0; -EINVAL (bad credentials; the agent is unchanged).
 */
int kice_ice_restart(struct kice_ice *a, const char *lufrag, const char *lpwd,
		const char *rufrag, const char *rpwd);

const struct kice_ice_stats *kice_ice_stats(const struct kice_ice *a);
const char *kice_ice_state_name(enum kice_ice_state s);
const char *kice_ice_pair_state_name(enum kice_pair_state s);

/* RFC 8445 §5.1.2.1: (2^24)*type pref + (2^8)*local pref + (256 - comp) */
uint32_t kice_ice_priority(
		unsigned type_pref, unsigned local_pref, unsigned component);

#endif
