/*
 * kamailio-ice: sans-I/O ICE agent (see ice.h).
 *
 * Stages: candidates and pairs (RFC 8445 §5.1, §6.1.2), the STUN we send
 * (§7.1, §7.3 responses), check transactions paced by Ta (§6.1.4, RFC
 * 8489 §6.2.1), what arrives (§7.2.5 responses, §7.3 requests),
 * nomination (§8.1), consent (RFC 7675), then the host's queries.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ice.h"
#include "log.h"

#define PKT_MAX 512 /* our requests and responses are < 200 bytes */

/* RFC 8445 §5.1.2.2 recommended type preferences */
#define TYPE_PREF_HOST 126
#define TYPE_PREF_PRFLX 110

enum which
{
	TX_CUR,	   /* the pair's current check transaction */
	TX_OLD,	   /* a check cancelled by a triggered check */
	TX_CONSENT /* a consent request (RFC 7675) */
};

/* --- names, state, randomness ------------------------------------------ */

const char *kice_ice_state_name(enum kice_ice_state s)
{
	switch(s) {
		case KICE_ICE_NEW:
			return "new";
		case KICE_ICE_RUNNING:
			return "running";
		case KICE_ICE_COMPLETED:
			return "completed";
		case KICE_ICE_FAILED:
			return "failed";
	}
	return "?";
}

const char *kice_ice_pair_state_name(enum kice_pair_state s)
{
	switch(s) {
		case KICE_PAIR_FROZEN:
			return "frozen";
		case KICE_PAIR_WAITING:
			return "waiting";
		case KICE_PAIR_IN_PROGRESS:
			return "in-progress";
		case KICE_PAIR_SUCCEEDED:
			return "succeeded";
		case KICE_PAIR_FAILED:
			return "failed";
	}
	return "?";
}

static bool transition_ok(enum kice_ice_state from, enum kice_ice_state to,
		bool lite, bool restart)
{
	if(restart)
		return to == KICE_ICE_RUNNING;
	switch(from) {
		case KICE_ICE_NEW:
			return to == KICE_ICE_RUNNING;
		case KICE_ICE_RUNNING:
			return to == KICE_ICE_COMPLETED || to == KICE_ICE_FAILED;
		case KICE_ICE_COMPLETED:
			return to == KICE_ICE_FAILED;
		case KICE_ICE_FAILED:
			/* a lite agent's consent comes back with the peer's checks */
			return lite && to == KICE_ICE_COMPLETED;
	}
	return false;
}

static void set_state(struct kice_ice *a, enum kice_ice_state s, bool restart)
{
	if(a->state == s && !restart)
		return;
	if(!transition_ok(a->state, s, a->cfg.lite, restart)) {
		KICE_ERR("ice %s: refused state change %s -> %s", a->cfg.lufrag,
				kice_ice_state_name(a->state), kice_ice_state_name(s));
		return;
	}
	KICE_INFO("ice %s: %s -> %s", a->cfg.lufrag, kice_ice_state_name(a->state),
			kice_ice_state_name(s));
	a->state = s;
}

static void set_pair_state(
		struct kice_ice *a, struct kice_ice_pair *p, enum kice_pair_state s)
{
	if(p->state == s)
		return;
	KICE_DBG("ice %s: pair %u/%u %s -> %s", a->cfg.lufrag, p->lc, p->rc,
			kice_ice_pair_state_name(p->state), kice_ice_pair_state_name(s));
	p->state = s;
}

/* xorshift64: jitter only; transaction ids come from the CSPRNG */
static uint64_t rnd(struct kice_ice *a)
{
	uint64_t x = a->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	a->rng = x;
	return x;
}

static uint32_t ta(const struct kice_ice *a)
{
	return a->cfg.ta_us ? a->cfg.ta_us : KICE_ICE_TA_US;
}

/* RFC 7675 §5.1: consent requests are spaced by a randomized interval,
 * 0.8 to 1.2 times the basic period (4 to 6 s by default), so that
 * endpoints do not synchronize */
static uint64_t consent_after(struct kice_ice *a)
{
	uint64_t iv = a->cfg.consent_interval_us ? a->cfg.consent_interval_us
											 : KICE_ICE_CONSENT_US;

	return iv * (80 + rnd(a) % 41) / 100;
}

static uint64_t max64(uint64_t x, uint64_t y)
{
	return x > y ? x : y;
}

static uint64_t min64(uint64_t x, uint64_t y)
{
	return x < y ? x : y;
}

/* --- credentials ---------------------------------------------------------- */

/* RFC 8839 §5.4: ufrag 4..256, pwd 22..256 ice-chars; we keep less and
 * accept any printable character but ':' (the USERNAME separator) */
static bool cred_ok(const char *s, size_t min, size_t max, bool ufrag)
{
	size_t n;

	if(s == NULL)
		return false;
	n = strnlen(s, max + 1);
	if(n < min || n > max)
		return false;
	for(; *s; s++) {
		if(*s <= ' ' || *s > '~' || (ufrag && *s == ':'))
			return false;
	}
	return true;
}

static bool creds_ok(const char *lufrag, const char *lpwd, const char *rufrag,
		const char *rpwd)
{
	return cred_ok(lufrag, KICE_ICE_UFRAG_MIN, KICE_ICE_UFRAG_MAX, true)
		   && cred_ok(rufrag, KICE_ICE_UFRAG_MIN, KICE_ICE_UFRAG_MAX, true)
		   && cred_ok(lpwd, KICE_ICE_PWD_MIN, KICE_ICE_PWD_MAX, false)
		   && cred_ok(rpwd, KICE_ICE_PWD_MIN, KICE_ICE_PWD_MAX, false);
}

static void creds_set(struct kice_ice *a, const char *lufrag, const char *lpwd,
		const char *rufrag, const char *rpwd)
{
	/* lengths were checked by creds_ok() */
	strcpy(a->cfg.lufrag, lufrag);
	strcpy(a->cfg.lpwd, lpwd);
	strcpy(a->cfg.rufrag, rufrag);
	strcpy(a->cfg.rpwd, rpwd);
}

int kice_ice_init(struct kice_ice *a, const struct kice_ice_cfg *cfg)
{
	if(a == NULL || cfg == NULL || cfg->send == NULL)
		return -EINVAL;
	if(cfg->ncomp < 1 || cfg->ncomp > KICE_ICE_MAX_COMP)
		return -EINVAL;
	if(!creds_ok(cfg->lufrag, cfg->lpwd, cfg->rufrag, cfg->rpwd))
		return -EINVAL;
	memset(a, 0, sizeof(*a));
	a->cfg = *cfg;
	a->state = KICE_ICE_NEW;
	a->role = cfg->role;
	/* RFC 8445 §6.1.1: "If one agent is a lite agent and the other is a
	 * full agent, the full agent MUST take the controlling role, and the
	 * lite agent MUST take the controlled role." */
	if(cfg->lite && !cfg->remote_lite)
		a->role = KICE_ICE_CONTROLLED;
	else if(!cfg->lite && cfg->remote_lite)
		a->role = KICE_ICE_CONTROLLING;
	a->rng = cfg->tie_breaker ^ 0x9e3779b97f4a7c15ull;
	if(a->rng == 0)
		a->rng = 1;
	return 0;
}

/* --- candidates and pairs -------------------------------------------------- */

uint32_t kice_ice_priority(
		unsigned type_pref, unsigned local_pref, unsigned component)
{
	return ((uint32_t)(type_pref & 0x7f) << 24)
		   | ((uint32_t)(local_pref & 0xffff) << 8)
		   | ((256 - (component & 0xff)) & 0xff);
}

static bool addr_ok(const struct kice_addr *x)
{
	return x != NULL && (x->af == 4 || x->af == 6) && x->port != 0
		   && !kice_addr_is_any(x);
}

/* RFC 8445 §6.1.2.3: pair priority = 2^32*MIN(G,D) + 2*MAX(G,D) +
 * (G>D?1:0), G the controlling agent's candidate priority, D the
 * controlled agent's */
static uint64_t pair_prio(uint32_t g, uint32_t d)
{
	uint64_t lo = g < d ? g : d, hi = g < d ? d : g;

	return (lo << 32) + 2 * hi + (g > d ? 1 : 0);
}

static void prio_update(struct kice_ice *a, struct kice_ice_pair *p)
{
	uint32_t l = a->local[p->lc].priority, r = a->remote[p->rc].priority;

	p->prio =
			a->role == KICE_ICE_CONTROLLING ? pair_prio(l, r) : pair_prio(r, l);
}

static uint8_t comp_of(const struct kice_ice *a, const struct kice_ice_pair *p)
{
	return a->local[p->lc].component;
}

static bool same_foundation(const struct kice_ice *a,
		const struct kice_ice_pair *p, const struct kice_ice_pair *q)
{
	return strcmp(a->local[p->lc].foundation, a->local[q->lc].foundation) == 0
		   && strcmp(a->remote[p->rc].foundation, a->remote[q->rc].foundation)
					  == 0;
}

static int find_local(const struct kice_ice *a, uint8_t local_idx)
{
	unsigned i;

	for(i = 0; i < a->nlocal; i++) {
		if(a->local[i].local_idx == local_idx)
			return (int)i;
	}
	return -1;
}

static int find_remote(
		const struct kice_ice *a, uint8_t comp, const struct kice_addr *addr)
{
	unsigned i;

	for(i = 0; i < a->nremote; i++) {
		if(a->remote[i].component == comp
				&& kice_addr_eq(&a->remote[i].addr, addr))
			return (int)i;
	}
	return -1;
}

static struct kice_ice_pair *find_pair(struct kice_ice *a, int lc, int rc)
{
	unsigned i;

	for(i = 0; i < a->npairs; i++) {
		if(a->pairs[i].lc == lc && a->pairs[i].rc == rc)
			return &a->pairs[i];
	}
	return NULL;
}

/* A slot for a new pair of priority prio: a free one, else a failed pair,
 * else the lowest-priority frozen or waiting pair below prio (RFC 8445
 * §6.1.2.5: the check list is limited by dropping its lowest-priority
 * pairs). NULL if the new pair is the one to drop. */
static struct kice_ice_pair *pair_slot(struct kice_ice *a, uint64_t prio)
{
	struct kice_ice_pair *p, *victim = NULL;
	unsigned i;

	if(a->npairs < KICE_ICE_MAX_PAIRS)
		return &a->pairs[a->npairs++];
	for(i = 0; i < a->npairs; i++) {
		p = &a->pairs[i];
		if(p->state == KICE_PAIR_FAILED && !p->tx_live && !p->nominated)
			return p;
		if((p->state == KICE_PAIR_FROZEN || p->state == KICE_PAIR_WAITING)
				&& p->trig_seq == 0 && p->prio < prio
				&& (victim == NULL || p->prio < victim->prio))
			victim = p;
	}
	return victim;
}

static struct kice_ice_pair *pair_add(struct kice_ice *a, int lc, int rc)
{
	struct kice_ice_pair tmp, *p;

	memset(&tmp, 0, sizeof(tmp));
	tmp.lc = (uint8_t)lc;
	tmp.rc = (uint8_t)rc;
	tmp.state = KICE_PAIR_FROZEN;
	prio_update(a, &tmp);
	p = pair_slot(a, tmp.prio);
	if(p == NULL) {
		KICE_DBG("ice %s: check list full, pair %d/%d dropped", a->cfg.lufrag,
				lc, rc);
		return NULL;
	}
	*p = tmp;
	return p;
}

/* RFC 8445 §6.1.2.2: "A local candidate is paired with a remote candidate
 * if and only if the two candidates have the same component ID and have
 * the same IP address version." Our local candidates are host candidates,
 * each its own base, and remote addresses are unique per component, so
 * no pair is redundant (§6.1.2.4) and none needs pruning. A lite agent
 * keeps no check list: its pairs come from the checks it receives. */
static void form_pairs(struct kice_ice *a, int lc_only, int rc_only)
{
	unsigned l, r;

	if(a->cfg.lite)
		return;
	for(l = 0; l < a->nlocal; l++) {
		if(lc_only >= 0 && (int)l != lc_only)
			continue;
		for(r = 0; r < a->nremote; r++) {
			if(rc_only >= 0 && (int)r != rc_only)
				continue;
			if(a->local[l].component != a->remote[r].component
					|| a->local[l].addr.af != a->remote[r].addr.af
					|| find_pair(a, (int)l, (int)r) != NULL)
				continue;
			pair_add(a, (int)l, (int)r);
		}
	}
}

/* RFC 8445 §5.1.1.3: same foundation for candidates of the same type and
 * base IP address; FNV-1a of the address, in hex */
static void host_foundation(char out[33], const struct kice_addr *addr)
{
	static const char hex[] = "0123456789abcdef";
	uint32_t h = 2166136261u;
	unsigned i, n = addr->af == 4 ? 4 : 16;
	int k;

	h = (h ^ addr->af) * 16777619u;
	for(i = 0; i < n; i++)
		h = (h ^ addr->ip[i]) * 16777619u;
	for(k = 7; k >= 0; k--) {
		out[k] = hex[h & 0xf];
		h >>= 4;
	}
	out[8] = '\0';
}

int kice_ice_add_local(struct kice_ice *a, uint8_t component, uint8_t local_idx,
		const struct kice_addr *addr)
{
	struct kice_ice_cand *c;
	unsigned i, local_pref = 65535;
	bool seen = false;

	if(a == NULL || !addr_ok(addr) || component < 1 || component > a->cfg.ncomp
			|| find_local(a, local_idx) >= 0)
		return -EINVAL;
	for(i = 0; i < a->nlocal; i++) {
		if(kice_addr_eq(&a->local[i].addr, addr))
			return -EINVAL;
	}
	if(a->nlocal == KICE_ICE_MAX_LOCAL)
		return -ENOSPC;
	/* RFC 8445 §5.1.2.1: a multihomed agent gives each base of a
	 * component its own local preference: 65535 for the first address,
	 * one less for each further one (shared by the components) */
	for(i = 0; i < a->nlocal && !seen; i++) {
		if(kice_addr_eq_ip(&a->local[i].addr, addr)) {
			local_pref = (a->local[i].priority >> 8) & 0xffff;
			seen = true;
		}
	}
	if(!seen) {
		for(i = 0; i < a->nlocal; i++) {
			unsigned lp = (a->local[i].priority >> 8) & 0xffff;
			if(lp <= local_pref)
				local_pref = lp - 1;
		}
	}
	c = &a->local[a->nlocal];
	memset(c, 0, sizeof(*c));
	c->component = component;
	c->type = KICE_CAND_HOST;
	c->priority = kice_ice_priority(TYPE_PREF_HOST, local_pref, component);
	host_foundation(c->foundation, addr);
	c->addr = *addr;
	c->local_idx = local_idx;
	a->nlocal++;
	form_pairs(a, (int)a->nlocal - 1, -1);
	return 0;
}

static int remote_add(struct kice_ice *a, const struct kice_ice_cand *src)
{
	struct kice_ice_cand *c;

	if(a->nremote == KICE_ICE_MAX_REMOTE)
		return -ENOSPC;
	c = &a->remote[a->nremote];
	*c = *src;
	c->foundation[sizeof(c->foundation) - 1] = '\0';
	c->local_idx = 0;
	return (int)a->nremote++;
}

int kice_ice_add_remote(struct kice_ice *a, const struct kice_ice_cand *c)
{
	struct kice_ice_cand *old;
	unsigned i;
	int r;

	if(a == NULL || c == NULL || !addr_ok(&c->addr) || c->component < 1
			|| c->component > a->cfg.ncomp)
		return -EINVAL;
	r = find_remote(a, c->component, &c->addr);
	if(r >= 0) {
		old = &a->remote[r];
		/* a peer-reflexive candidate learned from a check, now signalled
		 * (RFC 8838 §11): it takes the signalled type and priority */
		if(old->type == KICE_CAND_PRFLX && c->type != KICE_CAND_PRFLX) {
			old->type = c->type;
			old->priority = c->priority;
			memcpy(old->foundation, c->foundation, sizeof(old->foundation));
			old->foundation[sizeof(old->foundation) - 1] = '\0';
			old->raddr = c->raddr;
			for(i = 0; i < a->npairs; i++) {
				if(a->pairs[i].rc == r)
					prio_update(a, &a->pairs[i]);
			}
		}
		return 0;
	}
	r = remote_add(a, c);
	if(r < 0)
		return r;
	form_pairs(a, -1, r);
	return 0;
}

static void update_state(struct kice_ice *a, uint64_t now);

void kice_ice_end_of_candidates(struct kice_ice *a)
{
	if(a == NULL)
		return;
	a->eoc = true;
	update_state(a, a->now_us);
}

/* --- the STUN we send -------------------------------------------------- */

static void tx(struct kice_ice *a, int lc, const struct kice_addr *dst,
		const uint8_t *buf, int n)
{
	a->cfg.send(a->cfg.ctx, a->local[lc].local_idx, dst, buf, (size_t)n);
}

/*
 * A connectivity check or consent request on p. RFC 8445 §7.2.2: "The
 * username for the credential is formed by concatenating the username
 * fragment provided by the peer with the username fragment of the ICE
 * agent sending the request, separated by a colon"; the key is the
 * peer's password.
 */
static int send_request(struct kice_ice *a, struct kice_ice_pair *p,
		const uint8_t *tid, bool use_cand, bool controlling)
{
	const struct kice_ice_cand *l = &a->local[p->lc];
	uint8_t buf[PKT_MAX];
	char user[2 * KICE_ICE_UFRAG_MAX + 2];
	size_t ru = strlen(a->cfg.rufrag), lu = strlen(a->cfg.lufrag);
	struct kice_stun_wr wr;
	int n;

	memcpy(user, a->cfg.rufrag, ru);
	user[ru] = ':';
	memcpy(user + ru + 1, a->cfg.lufrag, lu);
	kice_stun_wr_init(&wr, buf, sizeof(buf), KICE_STUN_BINDING_REQUEST, tid);
	kice_stun_wr_username(&wr, user, ru + 1 + lu);
	/* RFC 8445 §7.1.1: "The PRIORITY attribute MUST be included ... set to
	 * the value computed by the algorithm in Section 5.1.2 for the local
	 * candidate, but with the candidate type preference of peer-reflexive
	 * candidates." */
	kice_stun_wr_priority(
			&wr, kice_ice_priority(TYPE_PREF_PRFLX, (l->priority >> 8) & 0xffff,
						 l->component));
	/* §7.1.3: "The controlling agent MUST include the ICE-CONTROLLING
	 * attribute in a Binding request. The controlled agent MUST include
	 * the ICE-CONTROLLED attribute in a Binding request." */
	if(controlling)
		kice_stun_wr_ice_controlling(&wr, a->cfg.tie_breaker);
	else
		kice_stun_wr_ice_controlled(&wr, a->cfg.tie_breaker);
	/* §7.1.2: "The controlling agent MUST include the USE-CANDIDATE
	 * attribute in order to nominate a candidate pair" */
	if(use_cand)
		kice_stun_wr_use_candidate(&wr);
	kice_stun_wr_integrity(
			&wr, (const uint8_t *)a->cfg.rpwd, strlen(a->cfg.rpwd));
	/* RFC 8445 §7: "The FINGERPRINT mechanism MUST be used for
	 * connectivity checks." */
	kice_stun_wr_fingerprint(&wr);
	n = kice_stun_wr_finish(&wr);
	if(n < 0) {
		KICE_ERR("ice %s: cannot build a check (%d)", a->cfg.lufrag, n);
		return n;
	}
	tx(a, p->lc, &a->remote[p->rc].addr, buf, n);
	a->stats.checks_sent++;
	return 0;
}

/* A response to the request m that arrived on local lc from src: success
 * (code 0, XOR-MAPPED-ADDRESS = src) or error code. Authenticated with our
 * password (RFC 8445 §7.3: the response is signed with the same key). */
static void respond(struct kice_ice *a, int lc, const struct kice_addr *src,
		const struct kice_stun_msg *m, int code, const char *reason)
{
	uint8_t buf[PKT_MAX];
	struct sockaddr_storage ss;
	struct kice_stun_wr wr;
	int n;

	kice_stun_wr_init(&wr, buf, sizeof(buf),
			code ? KICE_STUN_BINDING_ERROR : KICE_STUN_BINDING_SUCCESS, m->tid);
	if(code == 0) {
		kice_addr_to_sa(src, &ss);
		kice_stun_wr_xor_mapped(&wr, (const struct sockaddr *)&ss);
	} else {
		kice_stun_wr_error_code(&wr, code, reason, strlen(reason));
		/* RFC 8489 §6.3.1.1: 420 lists them in UNKNOWN-ATTRIBUTES */
		if(code == KICE_STUN_ERR_UNKNOWN_ATTRIBUTE)
			kice_stun_wr_unknown_attrs(&wr, m->unknown, m->n_unknown);
	}
	kice_stun_wr_integrity(
			&wr, (const uint8_t *)a->cfg.lpwd, strlen(a->cfg.lpwd));
	kice_stun_wr_fingerprint(&wr);
	n = kice_stun_wr_finish(&wr);
	if(n < 0) {
		KICE_ERR("ice %s: cannot build a response (%d)", a->cfg.lufrag, n);
		return;
	}
	tx(a, lc, src, buf, n);
}

/* --- roles, nomination ------------------------------------------------- */

static void set_role(struct kice_ice *a, enum kice_ice_role role)
{
	unsigned i;

	if(a->role == role)
		return;
	KICE_INFO("ice %s: role %s -> %s", a->cfg.lufrag,
			a->role == KICE_ICE_CONTROLLING ? "controlling" : "controlled",
			role == KICE_ICE_CONTROLLING ? "controlling" : "controlled");
	a->role = role;
	/* the pair priority depends on who controls (RFC 8445 §6.1.2.3) */
	for(i = 0; i < a->npairs; i++) {
		prio_update(a, &a->pairs[i]);
		if(role == KICE_ICE_CONTROLLED)
			a->pairs[i].nominating = false;
	}
}

static void dequeue(struct kice_ice_pair *p)
{
	p->trig_seq = 0;
}

/* The selectable pair of a component: nominated, valid, consent alive;
 * the highest priority if the peer nominated several (aggressive). */
static const struct kice_ice_pair *selected_pair(
		const struct kice_ice *a, uint8_t comp)
{
	const struct kice_ice_pair *p, *best = NULL;
	unsigned i;

	for(i = 0; i < a->npairs; i++) {
		p = &a->pairs[i];
		if(comp_of(a, p) == comp && p->nominated
				&& p->state == KICE_PAIR_SUCCEEDED && !p->consent_lost
				&& (best == NULL || p->prio > best->prio))
			best = p;
	}
	return best;
}

/* a component is done once a pair of it is nominated (RFC 8445 §8.1.2) */
static bool comp_done(const struct kice_ice *a, uint8_t comp)
{
	unsigned i;

	for(i = 0; i < a->npairs; i++) {
		if(a->pairs[i].nominated && comp_of(a, &a->pairs[i]) == comp)
			return true;
	}
	return false;
}

static void nominated(struct kice_ice *a, struct kice_ice_pair *p, uint64_t now)
{
	struct kice_ice_pair *q;
	uint8_t comp = comp_of(a, p);
	unsigned i;

	if(p->nominated)
		return;
	p->nominated = true;
	p->nominating = false;
	a->stats.nominations++;
	if(!a->cfg.lite)
		p->consent_next_us = now + consent_after(a);
	{
		char buf[KICE_ADDR_STRLEN];
		KICE_INFO("ice %s: component %u nominated %s", a->cfg.lufrag, comp,
				kice_addr_str(&a->remote[p->rc].addr, buf, sizeof(buf)));
	}
	/* RFC 8445 §8.1.2: once a pair of a component is nominated, its
	 * other pairs leave the check list and the triggered-check queue,
	 * and their transactions in progress are cancelled: no more
	 * retransmissions (a late response is still taken) */
	for(i = 0; i < a->npairs; i++) {
		q = &a->pairs[i];
		if(q == p || comp_of(a, q) != comp || q->nominated)
			continue;
		dequeue(q);
		q->nominating = false;
		if(q->tx_live)
			q->ntx = KICE_ICE_RC;
	}
}

/* --- check transactions ------------------------------------------------ */

/* Put p in the triggered-check queue (RFC 8445 §6.1.4.2, §7.3.1.4);
 * a transaction in progress is cancelled: not retransmitted, its response
 * still accepted for one RTO. */
static void enqueue(struct kice_ice *a, struct kice_ice_pair *p, uint64_t now)
{
	if(p->tx_live) {
		memcpy(p->old_tid, p->tid, sizeof(p->old_tid));
		p->old_use_cand = p->tx_use_cand;
		p->old_controlling = p->tx_controlling;
		p->old_until_us = now + p->rto_us;
		p->old_live = true;
		p->tx_live = false;
	}
	if(p->state != KICE_PAIR_SUCCEEDED)
		set_pair_state(a, p, KICE_PAIR_WAITING);
	if(p->trig_seq == 0)
		p->trig_seq = ++a->trig_next;
}

static void transmit(struct kice_ice *a, struct kice_ice_pair *p, uint64_t now)
{
	send_request(a, p, p->tid, p->tx_use_cand, p->tx_controlling);
	p->ntx++;
	p->next_tx_us = now + p->rto_us;
	/* RFC 8489 §6.2.1: the interval doubles after each retransmission;
	 * capped at KICE_ICE_RTO_MAX_US (or the first RTO if larger), so the
	 * Rc = 7 transmissions of a check end within ~10 s. After the last
	 * one the transaction fails one interval later. */
	p->rto_us = (uint32_t)min64(
			2 * (uint64_t)p->rto_us, max64(KICE_ICE_RTO_MAX_US, p->rto_us));
}

static void start_check(
		struct kice_ice *a, struct kice_ice_pair *p, uint64_t now)
{
	unsigned i, busy = 0;

	dequeue(p);
	if(kice_stun_tid_random(p->tid) < 0) {
		KICE_ERR("ice %s: no random transaction id", a->cfg.lufrag);
		set_pair_state(a, p, KICE_PAIR_FAILED);
		return;
	}
	for(i = 0; i < a->npairs; i++) {
		if(a->pairs[i].state == KICE_PAIR_WAITING
				|| a->pairs[i].state == KICE_PAIR_IN_PROGRESS)
			busy++;
	}
	/* RFC 8445 §14.3: RTO = MAX (500ms, Ta * (Num-Waiting +
	 * Num-In-Progress)) */
	p->rto_us = (uint32_t)max64(KICE_ICE_RTO_MIN_US, (uint64_t)ta(a) * busy);
	p->tx_live = true;
	p->tx_use_cand = p->nominating && a->role == KICE_ICE_CONTROLLING;
	p->tx_controlling = a->role == KICE_ICE_CONTROLLING;
	p->ntx = 0;
	if(p->state != KICE_PAIR_SUCCEEDED)
		set_pair_state(a, p, KICE_PAIR_IN_PROGRESS);
	transmit(a, p, now);
}

static void tx_failed(struct kice_ice *a, struct kice_ice_pair *p)
{
	p->tx_live = false;
	p->nominating = false;
	set_pair_state(a, p, KICE_PAIR_FAILED);
}

/* The pair an ordinary check goes to (RFC 8445 §6.1.4.2): the
 * highest-priority Waiting pair; if none, the highest-priority Frozen
 * pair whose foundation has no pair Waiting or In-Progress. Components
 * that have a nominated pair get no more checks (§8.1.2). */
static struct kice_ice_pair *ordinary(const struct kice_ice *a)
{
	const struct kice_ice_pair *p, *q, *best = NULL;
	bool done[KICE_ICE_MAX_COMP + 1] = {false}, busy;
	unsigned i, j;

	for(i = 0; i < a->npairs; i++) {
		if(a->pairs[i].nominated)
			done[comp_of(a, &a->pairs[i])] = true;
	}
	for(i = 0; i < a->npairs; i++) {
		p = &a->pairs[i];
		if(p->state == KICE_PAIR_WAITING && !done[comp_of(a, p)]
				&& (best == NULL || p->prio > best->prio))
			best = p;
	}
	if(best != NULL)
		return (struct kice_ice_pair *)best;
	for(i = 0; i < a->npairs; i++) {
		p = &a->pairs[i];
		if(p->state != KICE_PAIR_FROZEN || done[comp_of(a, p)]
				|| (best != NULL && p->prio <= best->prio))
			continue;
		busy = false;
		for(j = 0; j < a->npairs && !busy; j++) {
			q = &a->pairs[j];
			busy = q->state == KICE_PAIR_IN_PROGRESS
				   && same_foundation(a, p, q);
		}
		if(!busy)
			best = p;
	}
	return (struct kice_ice_pair *)best;
}

static struct kice_ice_pair *triggered(const struct kice_ice *a)
{
	const struct kice_ice_pair *p, *best = NULL;
	unsigned i;

	for(i = 0; i < a->npairs; i++) {
		p = &a->pairs[i];
		if(p->trig_seq != 0 && (best == NULL || p->trig_seq < best->trig_seq))
			best = p;
	}
	return (struct kice_ice_pair *)best;
}

static bool consent_due_ok(const struct kice_ice_pair *p)
{
	return p->nominated && p->state == KICE_PAIR_SUCCEEDED && !p->consent_lost;
}

/* RFC 7675 §5.1: a consent request is a Binding request like a check, on
 * the selected pair, each with a new transaction id; it is not
 * retransmitted: the next one follows 4-6 s later and consent lasts
 * 30 s after the last response. */
static void send_consent(
		struct kice_ice *a, struct kice_ice_pair *p, uint64_t now)
{
	uint8_t *tid = p->ctid[p->nctid % KICE_ICE_CONSENT_TIDS];

	p->consent_next_us = now + consent_after(a);
	if(kice_stun_tid_random(tid) < 0)
		return;
	p->nctid = (uint8_t)((p->nctid + 1) % (2 * KICE_ICE_CONSENT_TIDS));
	if(p->nctid == 0)
		p->nctid = KICE_ICE_CONSENT_TIDS;
	send_request(a, p, tid, false, a->role == KICE_ICE_CONTROLLING);
}

/* One request per Ta (RFC 8445 §14.2): a due retransmission first, then
 * the triggered-check queue, a due consent request, an ordinary check.
 * Returns true if something was sent. */
static bool send_one(struct kice_ice *a, uint64_t now)
{
	struct kice_ice_pair *p, *best = NULL;
	unsigned i;

	for(i = 0; i < a->npairs; i++) {
		p = &a->pairs[i];
		if(p->tx_live && p->ntx < KICE_ICE_RC && p->next_tx_us <= now
				&& (best == NULL || p->next_tx_us < best->next_tx_us))
			best = p;
	}
	if(best != NULL) {
		transmit(a, best, now);
		return true;
	}
	if((p = triggered(a)) != NULL) {
		start_check(a, p, now);
		return true;
	}
	for(i = 0; i < a->npairs; i++) {
		p = &a->pairs[i];
		if(consent_due_ok(p) && p->consent_next_us <= now) {
			send_consent(a, p, now);
			return true;
		}
	}
	if(a->state == KICE_ICE_RUNNING && (p = ordinary(a)) != NULL) {
		start_check(a, p, now);
		return true;
	}
	return false;
}

/* When the controlling agent nominates for comp (RFC 8445 §8.1.1,
 * regular nomination: it picks a valid pair once it deems checking done):
 * at once when no higher-priority pair of comp is still to be checked,
 * else KICE_ICE_NOMINATE_WAIT_US after the first valid pair. UINT64_MAX
 * if not applicable; *out: the pair to nominate. */
static uint64_t nominate_at(const struct kice_ice *a, uint8_t comp,
		const struct kice_ice_pair **out)
{
	const struct kice_ice_pair *p, *best = NULL;
	unsigned i;

	if(a->cfg.lite || a->role != KICE_ICE_CONTROLLING
			|| a->state != KICE_ICE_RUNNING)
		return UINT64_MAX;
	for(i = 0; i < a->npairs; i++) {
		p = &a->pairs[i];
		if(comp_of(a, p) != comp)
			continue;
		if(p->nominated || p->nominating)
			return UINT64_MAX;
		if(p->state == KICE_PAIR_SUCCEEDED && !p->consent_lost
				&& (best == NULL || p->prio > best->prio))
			best = p;
	}
	if(best == NULL)
		return UINT64_MAX;
	*out = best;
	for(i = 0; i < a->npairs; i++) {
		p = &a->pairs[i];
		if(comp_of(a, p) == comp && p->prio > best->prio
				&& (p->state == KICE_PAIR_FROZEN
						|| p->state == KICE_PAIR_WAITING
						|| p->state == KICE_PAIR_IN_PROGRESS))
			return a->first_valid_us[comp - 1] + KICE_ICE_NOMINATE_WAIT_US;
	}
	return 0;
}

/* --- what arrives --------------------------------------------------------- */

static void start(struct kice_ice *a, uint64_t now)
{
	if(a->started)
		return;
	a->started = true;
	a->start_us = now;
	a->next_slot_us = now;
	set_state(a, KICE_ICE_RUNNING, false);
}

static void valid(struct kice_ice *a, struct kice_ice_pair *p, uint64_t now)
{
	struct kice_ice_pair *q;
	uint8_t comp = comp_of(a, p);
	unsigned i;

	p->consent_until_us = now + KICE_ICE_CONSENT_EXPIRY_US;
	p->consent_lost = false;
	if(p->state == KICE_PAIR_SUCCEEDED)
		return;
	set_pair_state(a, p, KICE_PAIR_SUCCEEDED);
	if(!p->nominating)
		dequeue(p);
	if(!a->first_valid[comp - 1]) {
		a->first_valid[comp - 1] = true;
		a->first_valid_us[comp - 1] = now;
	}
	/* RFC 8445 §7.2.5.3.3: "The agent changes the states for all other
	 * Frozen candidate pairs in the same checklist with the same
	 * foundation to Waiting." */
	for(i = 0; i < a->npairs; i++) {
		q = &a->pairs[i];
		if(q->state == KICE_PAIR_FROZEN && same_foundation(a, p, q))
			set_pair_state(a, q, KICE_PAIR_WAITING);
	}
}

static bool username_ok(const struct kice_ice *a, struct kice_slice u)
{
	size_t lu = strlen(a->cfg.lufrag), ru = strlen(a->cfg.rufrag);

	/* RFC 8445 §7.3: the request's USERNAME is "<our ufrag>:<theirs>" */
	return u.len == lu + 1 + ru && memcmp(u.p, a->cfg.lufrag, lu) == 0
		   && u.p[lu] == ':' && memcmp(u.p + lu + 1, a->cfg.rufrag, ru) == 0;
}

static int learn_prflx(struct kice_ice *a, uint8_t comp,
		const struct kice_addr *src, uint32_t prio)
{
	struct kice_ice_cand c;

	memset(&c, 0, sizeof(c));
	c.component = comp;
	c.type = KICE_CAND_PRFLX;
	c.priority = prio;
	c.addr = *src;
	/* RFC 8445 §7.3.1.3: "Its foundation is selected arbitrarily and is
	 * not used for any other candidates." */
	snprintf(c.foundation, sizeof(c.foundation), "prflx%u", ++a->prflx_seq);
	return remote_add(a, &c);
}

static int on_request(struct kice_ice *a, uint64_t now, int lc,
		const struct kice_addr *src, const struct kice_stun_msg *m)
{
	struct kice_ice_pair *p = NULL;
	uint8_t comp = a->local[lc].component;
	const char *err;
	int rc;

	/* RFC 8445 §7.3 requires FINGERPRINT in ICE's requests; USERNAME only
	 * selects the credentials; integrity before anything else */
	err = "no FINGERPRINT";
	if(m->has_fp) {
		err = "bad FINGERPRINT";
		if(kice_stun_check_fingerprint(m) == 0) {
			err = "unknown USERNAME";
			if(m->has_username && username_ok(a, m->username)) {
				err = "bad MESSAGE-INTEGRITY";
				if(kice_stun_check_integrity(
						   m, (const uint8_t *)a->cfg.lpwd, strlen(a->cfg.lpwd))
						== 0)
					err = NULL;
			}
		}
	}
	if(err != NULL) {
		a->stats.auth_failures++;
		KICE_DBG("ice %s: request dropped: %s", a->cfg.lufrag, err);
		return -EACCES;
	}
	a->stats.checks_recv++;
	start(a, now);

	/* RFC 8489 §6.3.1.1: a request with unknown comprehension-required
	 * attributes gets a 420 (Unknown Attribute) error response that lists
	 * them (checked once the request is authenticated) */
	if(m->n_unknown > 0) {
		respond(a, lc, src, m, KICE_STUN_ERR_UNKNOWN_ATTRIBUTE,
				"Unknown Attribute");
		return 1;
	}

	/* RFC 8445 §7.3.1.1 role conflicts */
	if((a->role == KICE_ICE_CONTROLLING && m->has_controlling)
			|| (a->role == KICE_ICE_CONTROLLED && m->has_controlled))
		a->stats.role_conflicts++;
	if(a->role == KICE_ICE_CONTROLLING && m->has_controlling) {
		/* "If the agent's tiebreaker value is larger than or equal to the
		 * contents of the ICE-CONTROLLING attribute, the agent generates
		 * a Binding error response ... 487 (Role Conflict) but retains
		 * its role." Else "the agent switches to the controlled role." */
		if(a->cfg.tie_breaker >= m->controlling) {
			respond(a, lc, src, m, KICE_STUN_ERR_ROLE_CONFLICT,
					"Role Conflict");
			return 1;
		}
		set_role(a, KICE_ICE_CONTROLLED);
	} else if(a->role == KICE_ICE_CONTROLLED && m->has_controlled) {
		/* "If the agent's tiebreaker value is larger than or equal to the
		 * contents of the ICE-CONTROLLED attribute, the agent switches to
		 * the controlling role." Else 487. A lite agent cannot control
		 * (§6.1.1), so it always answers 487. */
		if(!a->cfg.lite && a->cfg.tie_breaker >= m->controlled) {
			set_role(a, KICE_ICE_CONTROLLING);
		} else {
			respond(a, lc, src, m, KICE_STUN_ERR_ROLE_CONFLICT,
					"Role Conflict");
			return 1;
		}
	}

	/* RFC 8445 §7.3.1.3: "If the source transport address of the request
	 * does not match any existing remote candidates, it represents a new
	 * peer-reflexive remote candidate." "The priority is the value of the
	 * PRIORITY attribute in the Binding request." */
	rc = find_remote(a, comp, src);
	if(rc < 0) {
		if(!m->has_priority) {
			KICE_DBG("ice %s: check without PRIORITY", a->cfg.lufrag);
			respond(a, lc, src, m, KICE_STUN_ERR_BAD_REQUEST, "No PRIORITY");
			return -EBADMSG;
		}
		rc = learn_prflx(a, comp, src, m->priority);
		if(rc < 0)
			KICE_DBG("ice %s: no room for a peer-reflexive candidate",
					a->cfg.lufrag);
	}
	if(rc >= 0) {
		p = find_pair(a, lc, rc);
		if(p == NULL)
			p = pair_add(a, lc, rc);
	}

	/* §7.3: the success response, XOR-MAPPED-ADDRESS = the source */
	respond(a, lc, src, m, 0, NULL);
	if(p == NULL)
		return 1;

	if(a->cfg.lite) {
		/* A lite agent takes a check's pair as valid; the check is its
		 * consent (RFC 7675 is run by the full peer). */
		valid(a, p, now);
	} else if(p->state != KICE_PAIR_SUCCEEDED
			  && memcmp(p->rx_tid, m->tid, KICE_STUN_TID_LEN) != 0) {
		/* §7.3.1.4 triggered checks: In-Progress: "the agent cancels the
		 * In-Progress transaction" and queues the pair again; Waiting,
		 * Frozen or Failed: the pair is set to Waiting and goes to the
		 * triggered-check queue. A retransmission of the request that
		 * triggered the last check triggers nothing more. */
		memcpy(p->rx_tid, m->tid, KICE_STUN_TID_LEN);
		enqueue(a, p, now);
	}
	/* §7.3.1.5: a controlled agent that receives USE-CANDIDATE: if the
	 * pair has Succeeded "the agent sets the nominated flag"; if a check
	 * is pending, the flag is set when it succeeds */
	if(m->use_candidate && a->role == KICE_ICE_CONTROLLED) {
		p->peer_nominated = true;
		if(p->state == KICE_PAIR_SUCCEEDED)
			nominated(a, p, now);
	}
	return 1;
}

static struct kice_ice_pair *find_tx(
		struct kice_ice *a, const uint8_t *tid, enum which *w)
{
	struct kice_ice_pair *p;
	unsigned i, k, n;

	for(i = 0; i < a->npairs; i++) {
		p = &a->pairs[i];
		if(p->old_live && memcmp(p->old_tid, tid, KICE_STUN_TID_LEN) == 0) {
			*w = TX_OLD;
			return p;
		}
		if((p->tx_live || p->ntx > 0)
				&& memcmp(p->tid, tid, KICE_STUN_TID_LEN) == 0) {
			*w = TX_CUR;
			return p;
		}
		n = p->nctid < KICE_ICE_CONSENT_TIDS ? p->nctid : KICE_ICE_CONSENT_TIDS;
		for(k = 0; k < n; k++) {
			if(memcmp(p->ctid[k], tid, KICE_STUN_TID_LEN) == 0) {
				*w = TX_CONSENT;
				return p;
			}
		}
	}
	return NULL;
}

static int on_response(struct kice_ice *a, uint64_t now, int lc,
		const struct kice_addr *src, const struct kice_stun_msg *m)
{
	struct kice_ice_pair *p;
	enum which w;
	bool use_cand, controlling, symmetric;
	uint16_t code;

	p = find_tx(a, m->tid, &w);
	if(p == NULL) {
		KICE_DBG("ice %s: response to no transaction of ours", a->cfg.lufrag);
		return 1;
	}
	/* §7.2.5: a response is authenticated with the peer's password */
	if(kice_stun_check_integrity(
			   m, (const uint8_t *)a->cfg.rpwd, strlen(a->cfg.rpwd))
					!= 0
			|| (m->has_fp && kice_stun_check_fingerprint(m) != 0)) {
		a->stats.auth_failures++;
		KICE_DBG("ice %s: response fails integrity", a->cfg.lufrag);
		return -EACCES;
	}
	if(w == TX_CUR && !p->tx_live)
		return 1; /* answers a retransmission of a finished check */
	if(w == TX_OLD && now > p->old_until_us) {
		p->old_live = false;
		return 1;
	}
	use_cand = w == TX_CUR ? p->tx_use_cand : w == TX_OLD && p->old_use_cand;
	controlling = w == TX_CUR ? p->tx_controlling : p->old_controlling;
	/* §7.2.5.2.1: "the source IP address and port of the response MUST be
	 * equal to the destination IP address and port to which the Binding
	 * request was sent, and the destination ... equal to the source ...
	 * If the addresses are not symmetric, the agent MUST set the candidate
	 * pair state to Failed." */
	symmetric = lc == p->lc && kice_addr_eq(src, &a->remote[p->rc].addr);

	if(w == TX_CONSENT) {
		/* RFC 7675 §5.1: consent granted by an authenticated success
		 * response from the address the request went to */
		if(kice_stun_class(m->type) == KICE_STUN_CLASS_SUCCESS && symmetric
				&& !p->consent_lost) {
			a->stats.responses_ok++;
			p->consent_until_us = now + KICE_ICE_CONSENT_EXPIRY_US;
		}
		return 1;
	}
	if(w == TX_CUR)
		p->tx_live = false;
	else
		p->old_live = false;

	if(kice_stun_class(m->type) == KICE_STUN_CLASS_ERROR) {
		code = m->has_error ? m->error_code : 0;
		if(code == KICE_STUN_ERR_ROLE_CONFLICT) {
			/* §7.2.5.1: "if the ICE agent included an ICE-CONTROLLED
			 * attribute in the request, the agent MUST switch to the
			 * controlling role. If the agent included an ICE-CONTROLLING
			 * attribute in the request, the agent MUST switch to the
			 * controlled role. Once the agent has switched its role, the
			 * agent MUST add the pair ... to the triggered-check queue
			 * ... and set the candidate pair state to Waiting." */
			a->stats.role_conflicts++;
			if(controlling && a->role == KICE_ICE_CONTROLLING)
				set_role(a, KICE_ICE_CONTROLLED);
			else if(!controlling && a->role == KICE_ICE_CONTROLLED)
				set_role(a, KICE_ICE_CONTROLLING);
			enqueue(a, p, now);
			return 1;
		}
		/* §7.2.5.2.4: any other error is an unrecoverable failure */
		KICE_DBG("ice %s: check failed with %u", a->cfg.lufrag, code);
		tx_failed(a, p);
		return 1;
	}
	if(!symmetric) {
		KICE_DBG("ice %s: response not symmetric", a->cfg.lufrag);
		tx_failed(a, p);
		return 1;
	}
	/* §7.2.5.3: success. Our candidates are host ones, so the valid pair
	 * is the pair checked; XOR-MAPPED-ADDRESS would only name our own
	 * peer-reflexive address, which a relay on a public address has no
	 * use for. */
	a->stats.responses_ok++;
	valid(a, p, now);
	if(use_cand && a->role == KICE_ICE_CONTROLLING)
		nominated(a, p, now);
	else if(p->peer_nominated && a->role == KICE_ICE_CONTROLLED)
		nominated(a, p, now);
	return 1;
}

/* --- state and timers ------------------------------------------------------ */

static unsigned comp_pairs(const struct kice_ice *a, uint8_t comp)
{
	unsigned i, n = 0;

	for(i = 0; i < a->npairs; i++)
		n += comp_of(a, &a->pairs[i]) == comp;
	return n;
}

/* RFC 8445 §8.1.2: a component fails when all its pairs failed; RFC 8838
 * §8: with trickle, not before end-of-candidates. A component that has
 * no pair at all (the peer's candidates were all unusable, e.g. mDNS)
 * waits KICE_ICE_NOPAIR_US for a peer-reflexive one. A nominated pair
 * whose consent expired fails it too (RFC 7675 §5.1). */
static bool comp_failed(const struct kice_ice *a, uint8_t comp, uint64_t now)
{
	const struct kice_ice_pair *p;
	unsigned i;

	if(selected_pair(a, comp) != NULL)
		return false;
	if(comp_done(a, comp))
		return true;
	if(a->cfg.lite || !a->eoc)
		return false;
	if(comp_pairs(a, comp) == 0)
		return now >= a->start_us + KICE_ICE_NOPAIR_US;
	for(i = 0; i < a->npairs; i++) {
		p = &a->pairs[i];
		if(comp_of(a, p) != comp)
			continue;
		if(p->state != KICE_PAIR_FAILED
				&& !(p->state == KICE_PAIR_SUCCEEDED && p->consent_lost))
			return false;
	}
	return true;
}

static void update_state(struct kice_ice *a, uint64_t now)
{
	bool all = true, failed = false;
	uint8_t c;

	if(a->state == KICE_ICE_NEW)
		return;
	if(a->state == KICE_ICE_FAILED && !a->cfg.lite)
		return;
	for(c = 1; c <= a->cfg.ncomp; c++) {
		if(selected_pair(a, c) == NULL)
			all = false;
		if(comp_failed(a, c, now))
			failed = true;
	}
	if(all) {
		set_state(a, KICE_ICE_COMPLETED, false);
		for(c = 0; c < KICE_ICE_MAX_COMP; c++)
			a->prev_valid[c] = false;
	} else if(failed) {
		set_state(a, KICE_ICE_FAILED, false);
	}
}

/* RFC 7675 §5.1: consent expires 30 s after the last authenticated
 * response (for a lite agent: the last check); then the endpoint must
 * stop sending on the pair, and it is no longer selected. */
static void expire(struct kice_ice *a, uint64_t now)
{
	struct kice_ice_pair *p;
	unsigned i;

	for(i = 0; i < a->npairs; i++) {
		p = &a->pairs[i];
		if(p->state == KICE_PAIR_SUCCEEDED && !p->consent_lost
				&& now >= p->consent_until_us) {
			p->consent_lost = true;
			if(p->nominated)
				KICE_INFO("ice %s: consent expired on component %u",
						a->cfg.lufrag, comp_of(a, p));
		}
		if(p->old_live && now > p->old_until_us)
			p->old_live = false;
	}
	for(i = 0; i < KICE_ICE_MAX_COMP; i++) {
		if(a->prev_valid[i] && now >= a->prev_until_us[i])
			a->prev_valid[i] = false;
	}
}

static void timeouts(struct kice_ice *a, uint64_t now)
{
	struct kice_ice_pair *p;
	unsigned i;

	for(i = 0; i < a->npairs; i++) {
		p = &a->pairs[i];
		if(p->tx_live && p->ntx >= KICE_ICE_RC && now >= p->next_tx_us) {
			KICE_DBG("ice %s: check on pair %u/%u timed out", a->cfg.lufrag,
					p->lc, p->rc);
			tx_failed(a, p);
		}
	}
}

void kice_ice_tick(struct kice_ice *a, uint64_t now)
{
	const struct kice_ice_pair *best;
	uint8_t c;

	if(a == NULL)
		return;
	a->now_us = now;
	start(a, now);
	expire(a, now);
	if(!a->cfg.lite && a->state != KICE_ICE_FAILED) {
		timeouts(a, now);
		for(c = 1; c <= a->cfg.ncomp; c++) {
			best = NULL;
			if(nominate_at(a, c, &best) <= now) {
				struct kice_ice_pair *p = (struct kice_ice_pair *)best;
				p->nominating = true;
				enqueue(a, p, now);
			}
		}
		if(now >= a->next_slot_us && send_one(a, now))
			a->next_slot_us = now + ta(a);
	}
	update_state(a, now);
}

uint64_t kice_ice_next_deadline(const struct kice_ice *a)
{
	const struct kice_ice_pair *p, *best;
	uint64_t d = UINT64_MAX, slot;
	bool work = false;
	unsigned i;
	uint8_t c;

	if(a == NULL)
		return UINT64_MAX;
	if(!a->started)
		return a->cfg.lite ? UINT64_MAX : 0;
	for(i = 0; i < a->npairs; i++) {
		p = &a->pairs[i];
		if(p->state == KICE_PAIR_SUCCEEDED && !p->consent_lost)
			d = min64(d, p->consent_until_us);
	}
	for(i = 0; i < KICE_ICE_MAX_COMP; i++) {
		if(a->prev_valid[i])
			d = min64(d, a->prev_until_us[i]);
	}
	if(a->cfg.lite || a->state == KICE_ICE_FAILED)
		return d;
	slot = a->next_slot_us;
	for(i = 0; i < a->npairs; i++) {
		p = &a->pairs[i];
		if(p->tx_live)
			d = min64(d, p->ntx < KICE_ICE_RC ? max64(p->next_tx_us, slot)
											  : p->next_tx_us);
		if(p->trig_seq != 0)
			work = true;
		if(consent_due_ok(p))
			d = min64(d, max64(p->consent_next_us, slot));
	}
	if(a->state == KICE_ICE_RUNNING && ordinary(a) != NULL)
		work = true;
	if(work)
		d = min64(d, slot);
	for(c = 1; c <= a->cfg.ncomp; c++) {
		best = NULL;
		d = min64(d, nominate_at(a, c, &best));
		if(a->eoc && a->state == KICE_ICE_RUNNING && comp_pairs(a, c) == 0)
			d = min64(d, a->start_us + KICE_ICE_NOPAIR_US);
	}
	return d;
}

int kice_ice_input(struct kice_ice *a, uint64_t now_us, uint8_t local_idx,
		const struct kice_addr *src, const uint8_t *pkt, size_t len)
{
	struct kice_stun_msg m;
	int lc, ret;

	if(a == NULL || src == NULL || pkt == NULL)
		return -EINVAL;
	if(!kice_is_stun(pkt, len))
		return 0;
	lc = find_local(a, local_idx);
	if(lc < 0)
		return -EINVAL;
	a->now_us = now_us;
	ret = kice_stun_parse(&m, pkt, len);
	if(ret < 0) {
		KICE_DBG("ice %s: malformed STUN: %s at %zu", a->cfg.lufrag,
				m.why ? m.why : "?", m.why_off);
		return -EBADMSG;
	}
	if(kice_stun_method(m.type) != KICE_STUN_METHOD_BINDING) {
		KICE_DBG("ice %s: STUN method %#x dropped", a->cfg.lufrag,
				kice_stun_method(m.type));
		return -EBADMSG;
	}
	switch(kice_stun_class(m.type)) {
		case KICE_STUN_CLASS_REQUEST:
			ret = on_request(a, now_us, lc, src, &m);
			break;
		case KICE_STUN_CLASS_INDICATION:
			ret = 1; /* keepalive (RFC 8445 §11) */
			break;
		default:
			ret = on_response(a, now_us, lc, src, &m);
			break;
	}
	update_state(a, now_us);
	return ret;
}

/* --- queries, restart --------------------------------------------------- */

const struct kice_addr *kice_ice_selected(
		const struct kice_ice *a, uint8_t component, uint8_t *local_idx)
{
	const struct kice_ice_pair *p;

	if(a == NULL || component < 1 || component > a->cfg.ncomp)
		return NULL;
	p = selected_pair(a, component);
	if(p != NULL) {
		if(local_idx != NULL)
			*local_idx = a->local[p->lc].local_idx;
		return &a->remote[p->rc].addr;
	}
	if(a->prev_valid[component - 1]
			&& a->now_us < a->prev_until_us[component - 1]) {
		if(local_idx != NULL)
			*local_idx = a->prev_lidx[component - 1];
		return &a->prev_addr[component - 1];
	}
	return NULL;
}

const struct kice_addr *kice_ice_media_path(
		const struct kice_ice *a, uint8_t component, uint8_t *local_idx)
{
	const struct kice_ice_pair *p, *best = NULL;
	const struct kice_addr *sel;
	unsigned i;

	sel = kice_ice_selected(a, component, local_idx);
	if(sel != NULL || a == NULL || component < 1 || component > a->cfg.ncomp)
		return sel;
	/* RFC 8445 §12.1: before a pair is selected, media may be sent on a
	 * valid pair; the highest-priority one is the best guess */
	for(i = 0; i < a->npairs; i++) {
		p = &a->pairs[i];
		if(comp_of(a, p) == component && p->state == KICE_PAIR_SUCCEEDED
				&& !p->consent_lost && (best == NULL || p->prio > best->prio))
			best = p;
	}
	if(best == NULL)
		return NULL;
	if(local_idx != NULL)
		*local_idx = a->local[best->lc].local_idx;
	return &a->remote[best->rc].addr;
}

bool kice_ice_source_ok(const struct kice_ice *a, uint8_t component,
		const struct kice_addr *src)
{
	const struct kice_ice_pair *p;
	unsigned i;

	if(a == NULL || src == NULL || component < 1 || component > a->cfg.ncomp)
		return false;
	for(i = 0; i < a->npairs; i++) {
		p = &a->pairs[i];
		if(comp_of(a, p) == component && p->state == KICE_PAIR_SUCCEEDED
				&& !p->consent_lost
				&& kice_addr_eq(&a->remote[p->rc].addr, src))
			return true;
	}
	return a->prev_valid[component - 1]
		   && a->now_us < a->prev_until_us[component - 1]
		   && kice_addr_eq(&a->prev_addr[component - 1], src);
}

enum kice_ice_state kice_ice_state(const struct kice_ice *a)
{
	return a != NULL ? a->state : KICE_ICE_FAILED;
}

enum kice_ice_role kice_ice_role(const struct kice_ice *a)
{
	return a != NULL ? a->role : KICE_ICE_CONTROLLED;
}

const struct kice_ice_stats *kice_ice_stats(const struct kice_ice *a)
{
	return a != NULL ? &a->stats : NULL;
}

int kice_ice_restart(struct kice_ice *a, const char *lufrag, const char *lpwd,
		const char *rufrag, const char *rpwd)
{
	const struct kice_ice_pair *p;
	uint8_t c;

	if(a == NULL || !creds_ok(lufrag, lpwd, rufrag, rpwd))
		return -EINVAL;
	/* RFC 8445 §9: media keeps flowing on the previously selected pair
	 * until ICE selects a new one; consent on it cannot be refreshed any
	 * more (the peer forgot the old credentials), so it ends at the
	 * latest when its consent would expire. */
	for(c = 1; c <= a->cfg.ncomp; c++) {
		p = selected_pair(a, c);
		if(p == NULL)
			continue;
		a->prev_valid[c - 1] = true;
		a->prev_lidx[c - 1] = a->local[p->lc].local_idx;
		a->prev_addr[c - 1] = a->remote[p->rc].addr;
		a->prev_until_us[c - 1] = p->consent_until_us;
	}
	creds_set(a, lufrag, lpwd, rufrag, rpwd);
	memset(a->remote, 0, sizeof(a->remote));
	a->nremote = 0;
	memset(a->pairs, 0, sizeof(a->pairs));
	a->npairs = 0;
	memset(a->first_valid, 0, sizeof(a->first_valid));
	a->eoc = false;
	a->trig_next = 0;
	a->started = true;
	a->start_us = a->now_us;
	a->next_slot_us = a->now_us;
	set_state(a, KICE_ICE_RUNNING, true);
	return 0;
}
