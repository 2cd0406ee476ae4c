/*
 * kamailio-ice: media sessions, the shared table and the ports pool
 * (see session.h for the locking rules).
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "session.h"

const struct kice_ep_stream kice_ep_stream_none;

static int mutex_init_shared(pthread_mutex_t *m)
{
	pthread_mutexattr_t a;
	int rc;

	if(pthread_mutexattr_init(&a) != 0)
		return -ENOMEM;
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	/* a process killed while holding it must not wedge every worker */
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	rc = pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
	return rc == 0 ? 0 : -ENOMEM;
}

static void mutex_get(pthread_mutex_t *m)
{
	if(pthread_mutex_lock(m) == EOWNERDEAD) {
		KICE_WARN("a process died holding a session lock; recovered");
		pthread_mutex_consistent(m);
	}
}

uint64_t kice_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t kice_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int kice_table_create(struct kice_table **out, const struct kice_mem *m,
		uint32_t nbuckets, uint16_t port_min, uint16_t port_max, uint32_t nfwd)
{
	struct kice_table *t;
	uint32_t npairs, i;
	int rc = -ENOMEM;

	if(out == NULL || m == NULL || nbuckets == 0 || nfwd == 0 || nfwd > 64)
		return -EINVAL;
	if(port_min & 1)
		port_min++;
	if(port_max <= port_min)
		return -EINVAL;
	npairs = (uint32_t)(port_max - port_min + 1) / 2;
	if(npairs == 0)
		return -EINVAL;

	t = m->alloc(m->ctx, sizeof(*t));
	if(t == NULL)
		return -ENOMEM;
	t->mem = *m;
	t->nbuckets = nbuckets;
	t->nfwd = nfwd;
	t->next_id = 1;
	t->buckets = m->alloc(m->ctx, sizeof(*t->buckets) * nbuckets);
	t->fwd = m->alloc(m->ctx, sizeof(*t->fwd) * nfwd);
	t->ports = m->alloc(m->ctx, sizeof(*t->ports)
					+ npairs * sizeof(struct kice_pair)
					+ (nfwd * KICE_PORTS_IFACES + nfwd) * sizeof(uint32_t));
	if(t->buckets == NULL || t->fwd == NULL || t->ports == NULL)
		goto out;
	for(i = 0; i < nbuckets; i++)
		if(mutex_init_shared(&t->buckets[i].lock) < 0)
			goto out;
	for(i = 0; i < nfwd; i++)
		if(mutex_init_shared(&t->fwd[i].lock) < 0)
			goto out;
	if(mutex_init_shared(&t->ports->lock) < 0)
		goto out;
	t->ports->min = port_min;
	t->ports->max = (uint16_t)(port_min + npairs * 2 - 1);
	t->ports->nfwd = nfwd;
	t->ports->head = (uint32_t *)&t->ports->pair[npairs];
	t->ports->nheld = t->ports->head + nfwd * KICE_PORTS_IFACES;
	for(i = 0; i < nfwd * KICE_PORTS_IFACES; i++)
		t->ports->head[i] = KICE_PORTS_NONE;
	*out = t;
	return 0;
out:
	m->free(m->ctx, t->buckets);
	m->free(m->ctx, t->fwd);
	m->free(m->ctx, t->ports);
	m->free(m->ctx, t);
	return rc;
}

/* A session's memory: its callee endpoints, stream and key blocks */
static bool inline_block(const struct kice_session *s, const void *p)
{
	return (const char *)p >= (const char *)s
		   && (const char *)p < (const char *)(s + 1);
}

/* free a block of s unless it is one of the session block's own */
static void block_free(
		const struct kice_mem *m, const struct kice_session *s, void *p)
{
	if(p && !inline_block(s, p))
		m->free(m->ctx, p);
}

static void session_free_mem(const struct kice_mem *m, struct kice_session *s)
{
	unsigned i, k;

	for(k = 0; k < KICE_MAX_STREAMS; k++) {
		block_free(m, s, s->caller.st[k]);
		block_free(m, s, s->side[0].sdes[k]);
		block_free(m, s, s->side[1].sdes[k]);
	}
	for(i = 0; i < KICE_MAX_CALLEES; i++) {
		if(s->callee[i] == NULL)
			continue;
		for(k = 0; k < KICE_MAX_STREAMS; k++)
			block_free(m, s, s->callee[i]->st[k]);
		block_free(m, s, s->callee[i]);
	}
	m->free(m->ctx, s);
}

void kice_table_destroy(struct kice_table *t)
{
	struct kice_mem m;
	struct kice_session *s, *n;
	uint32_t i;

	if(t == NULL)
		return;
	m = t->mem;
	for(i = 0; i < t->nbuckets; i++)
		for(s = t->buckets[i].head; s; s = n) {
			n = s->next;
			session_free_mem(&m, s);
		}
	for(i = 0; i < t->nfwd; i++)
		for(s = t->fwd[i].dead; s; s = n) {
			n = s->next_dead;
			session_free_mem(&m, s);
		}
	m.free(m.ctx, t->buckets);
	m.free(m.ctx, t->fwd);
	m.free(m.ctx, t->ports);
	m.free(m.ctx, t);
}

uint32_t kice_table_hash(const struct kice_table *t, struct kice_slice callid)
{
	return kice_slice_hash(callid) % t->nbuckets;
}

void kice_bucket_lock(struct kice_table *t, uint32_t hash)
{
	mutex_get(&t->buckets[hash].lock);
}

void kice_bucket_unlock(struct kice_table *t, uint32_t hash)
{
	pthread_mutex_unlock(&t->buckets[hash].lock);
}

struct kice_session *kice_session_find(
		struct kice_table *t, uint32_t hash, struct kice_slice callid)
{
	struct kice_session *s;

	for(s = t->buckets[hash].head; s; s = s->next)
		if(s->callid_len == callid.len
				&& memcmp(s->callid, callid.p, callid.len) == 0)
			return s;
	return NULL;
}

static bool set_tag(struct kice_endpoint *ep, struct kice_slice tag)
{
	if(tag.len > KICE_TAG_MAX)
		return false;
	memcpy(ep->tag, tag.p, tag.len);
	ep->tag_len = (uint8_t)tag.len;
	ep->used = true;
	return true;
}

struct kice_session *kice_session_create(struct kice_table *t, uint32_t hash,
		struct kice_slice callid, struct kice_slice caller_tag,
		uint64_t now_ms)
{
	struct kice_session *s;
	uint32_t id;

	if(callid.len == 0 || callid.len > KICE_CALLID_MAX
			|| caller_tag.len > KICE_TAG_MAX)
		return NULL;
	s = t->mem.alloc(t->mem.ctx, sizeof(*s));
	if(s == NULL)
		return NULL;
	id = __atomic_fetch_add(&t->next_id, 1, __ATOMIC_RELAXED);
	s->id = id;
	s->hash = hash;
	s->fwd = (uint8_t)(id % t->nfwd);
	s->state = KICE_SESS_OFFERED;
	memcpy(s->callid, callid.p, callid.len);
	s->callid_len = (uint16_t)callid.len;
	set_tag(&s->caller, caller_tag);
	s->caller.st[0] = &s->caller_st0;
	s->created_ms = kice_wall_ms();
	s->created_mono_ms = now_ms;
	s->last_signal_ms = now_ms;
	s->last_media_ms = now_ms;
	s->next = t->buckets[hash].head;
	t->buckets[hash].head = s;
	__atomic_fetch_add(&t->sessions_total, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&t->sessions_active, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&t->fwd[s->fwd].sessions, 1, __ATOMIC_RELAXED);
	return s;
}

void kice_session_unlink(struct kice_table *t, struct kice_session *s)
{
	struct kice_session **pp;
	struct kice_fwd_shared *f = &t->fwd[s->fwd];

	for(pp = &t->buckets[s->hash].head; *pp; pp = &(*pp)->next)
		if(*pp == s) {
			*pp = s->next;
			break;
		}
	s->next = NULL;
	s->state = KICE_SESS_DELETED;
	mutex_get(&f->lock);
	s->next_dead = f->dead;
	f->dead = s;
	pthread_mutex_unlock(&f->lock);
	__atomic_fetch_sub(&t->sessions_active, 1, __ATOMIC_RELAXED);
}

void kice_session_free(struct kice_table *t, struct kice_session *s)
{
	unsigned fwd;

	if(s == NULL)
		return;
	fwd = s->fwd;
	session_free_mem(&t->mem, s);
	/* after the free: a count of 0 means the memory is back */
	__atomic_fetch_sub(&t->fwd[fwd].sessions, 1, __ATOMIC_RELEASE);
}

static bool tag_eq(const struct kice_endpoint *ep, struct kice_slice tag)
{
	return ep->used && ep->tag_len == tag.len
		   && memcmp(ep->tag, tag.p, tag.len) == 0;
}

struct kice_endpoint *kice_session_endpoint(
		struct kice_session *s, int side, struct kice_slice tag)
{
	unsigned i;

	if(side == 0)
		return tag_eq(&s->caller, tag) ? &s->caller : NULL;
	for(i = 0; i < KICE_MAX_CALLEES; i++)
		if(s->callee[i] && tag_eq(s->callee[i], tag))
			return s->callee[i];
	return NULL;
}

/* A zeroed block (kice_mem contract). The forwarder may read a block
 * pointer without the bucket lock: callers publish it with a release store
 * once it is filled in, so a half-made block is never seen. */
static void *block_new(struct kice_table *t, size_t size)
{
	return t->mem.alloc(t->mem.ctx, size);
}

struct kice_endpoint *kice_session_callee(struct kice_table *t,
		struct kice_session *s, struct kice_slice tag, bool create)
{
	struct kice_endpoint *ep, keep;
	unsigned i, k;

	ep = kice_session_endpoint(s, 1, tag);
	if(ep || !create || tag.len > KICE_TAG_MAX)
		return ep;
	for(i = 0; i < KICE_MAX_CALLEES; i++) {
		ep = s->callee[i];
		if(ep == NULL) {
			if(s->callee0.used || s->callee0.st[0]) {
				ep = block_new(t, sizeof(*ep));
			} else {
				ep = &s->callee0; /* the first callee: in the block */
				ep->st[0] = &s->callee0_st0;
			}
			if(ep == NULL)
				return NULL;
			set_tag(ep, tag);
			__atomic_store_n(&s->callee[i], ep, __ATOMIC_RELEASE);
			return ep;
		}
		if(!ep->used) {
			/* reused slot: a fresh endpoint that keeps its blocks */
			memcpy(keep.st, ep->st, sizeof(keep.st));
			memset(ep, 0, sizeof(*ep));
			memcpy(ep->st, keep.st, sizeof(ep->st));
			for(k = 0; k < KICE_MAX_STREAMS; k++)
				if(ep->st[k])
					memset(ep->st[k], 0, sizeof(*ep->st[k]));
			set_tag(ep, tag);
			return ep;
		}
	}
	return NULL;
}

unsigned kice_session_callee_idx(
		const struct kice_session *s, const struct kice_endpoint *ep)
{
	unsigned i;

	for(i = 0; i < KICE_MAX_CALLEES; i++)
		if(s->callee[i] == ep)
			return i;
	return KICE_MAX_CALLEES;
}

void kice_session_keep_callee(struct kice_session *s, struct kice_endpoint *ep)
{
	unsigned i;

	for(i = 0; i < KICE_MAX_CALLEES; i++) {
		if(s->callee[i] == NULL)
			continue;
		if(s->callee[i] != ep)
			s->callee[i]->used = false;
		else
			s->active_callee = (uint8_t)i;
	}
}

int kice_ep_streams_alloc(
		struct kice_table *t, struct kice_endpoint *ep, unsigned n)
{
	unsigned i;

	for(i = 0; i < n && i < KICE_MAX_STREAMS; i++) {
		struct kice_ep_stream *es;

		if(ep->st[i])
			continue;
		es = block_new(t, sizeof(*es));
		if(es == NULL)
			return -ENOMEM;
		__atomic_store_n(&ep->st[i], es, __ATOMIC_RELEASE);
	}
	return 0;
}

struct kice_sdes *kice_side_sdes(
		struct kice_table *t, struct kice_side *sd, unsigned i)
{
	struct kice_sdes *k;

	if(i >= KICE_MAX_STREAMS)
		return NULL;
	if(sd->sdes[i])
		return sd->sdes[i];
	k = block_new(t, sizeof(*k));
	if(k)
		__atomic_store_n(&sd->sdes[i], k, __ATOMIC_RELEASE);
	return k;
}

static uint32_t npairs_of(const struct kice_ports *p)
{
	return (uint32_t)(p->max - p->min + 1) / 2;
}

/* caller holds p->lock */
static uint32_t *held_list(struct kice_ports *p, unsigned fwd, unsigned iface)
{
	return &p->head[fwd * KICE_PORTS_IFACES + iface];
}

/* the pair index of an RTP port of the pool; false if it is not one */
static bool pair_of(const struct kice_ports *p, uint16_t rtp_port, uint32_t *k)
{
	if(rtp_port < p->min || rtp_port > p->max)
		return false;
	*k = (uint32_t)(rtp_port - p->min) / 2;
	return true;
}

/* caller holds p->lock: take the first pair of held list h for a session
 * on iface (the forwarder re-binds it if it was held on another one) */
static void take_held(struct kice_ports *p, uint32_t *h, unsigned iface,
		uint16_t *rtp_port, bool *held)
{
	uint32_t k = *h;

	*h = p->pair[k].link;
	p->pair[k].used = 1;
	p->pair[k].iface = (uint8_t)iface;
	p->held--;
	p->in_use += 2;
	*rtp_port = (uint16_t)(p->min + 2 * k);
	*held = true;
}

/* Pairs one forwarder may hold open (in use or not): half its share of
 * the pool, so that pairs held idle leave at least half of the pool to
 * sessions of other forwarders and other interfaces. */
static uint32_t hold_max(const struct kice_ports *p)
{
	return npairs_of(p) / (2 * p->nfwd);
}

int kice_ports_alloc_pair(struct kice_ports *p, unsigned fwd, unsigned iface,
		uint16_t *rtp_port, bool *held)
{
	uint32_t npairs = npairs_of(p);
	uint32_t i, k, *h;
	int rc = -ENOSPC;

	mutex_get(&p->lock);
	if(fwd < p->nfwd && iface < KICE_PORTS_IFACES
			&& *(h = held_list(p, fwd, iface)) != KICE_PORTS_NONE) {
		take_held(p, h, iface, rtp_port, held);
		pthread_mutex_unlock(&p->lock);
		return 0;
	}
	for(i = 0; i < npairs; i++) {
		k = (p->next + i) % npairs;
		if(!p->pair[k].used && !p->pair[k].held) {
			p->pair[k].used = 1;
			p->next = (k + 1) % npairs;
			p->in_use += 2;
			*rtp_port = (uint16_t)(p->min + 2 * k);
			*held = false;
			rc = 0;
			break;
		}
	}
	/* none left but what this forwarder holds on other interfaces: it
	 * closes such a pair and binds it again on iface */
	for(i = 0; rc < 0 && fwd < p->nfwd && iface < KICE_PORTS_IFACES
			&& i < KICE_PORTS_IFACES; i++) {
		h = held_list(p, fwd, i);
		if(*h == KICE_PORTS_NONE)
			continue;
		take_held(p, h, iface, rtp_port, held);
		rc = 0;
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}

/* caller holds p->lock; pair k is in use */
static void put_back(struct kice_ports *p, uint32_t k)
{
	uint32_t *h;

	p->pair[k].used = 0;
	p->in_use -= 2;
	if(p->pair[k].held) {
		h = held_list(p, p->pair[k].fwd, p->pair[k].iface);
		p->pair[k].link = *h;
		*h = k;
		p->held++;
	}
}

void kice_ports_release_pair(struct kice_ports *p, uint16_t rtp_port)
{
	uint32_t k;

	if(!pair_of(p, rtp_port, &k))
		return;
	mutex_get(&p->lock);
	if(p->pair[k].used)
		put_back(p, k);
	pthread_mutex_unlock(&p->lock);
}

void kice_ports_release_closed(struct kice_ports *p, uint16_t rtp_port)
{
	uint32_t k;

	if(!pair_of(p, rtp_port, &k))
		return;
	mutex_get(&p->lock);
	if(p->pair[k].used) {
		if(p->pair[k].held) {
			p->pair[k].held = 0;
			p->nheld[p->pair[k].fwd]--;
		}
		put_back(p, k);
	}
	pthread_mutex_unlock(&p->lock);
}

bool kice_ports_release_kept(
		struct kice_ports *p, uint16_t rtp_port, unsigned fwd, unsigned iface)
{
	uint32_t k;
	bool kept = false;

	if(!pair_of(p, rtp_port, &k) || fwd >= p->nfwd
			|| iface >= KICE_PORTS_IFACES)
		return false;
	mutex_get(&p->lock);
	if(p->pair[k].used && p->pair[k].held && p->pair[k].fwd == fwd
			&& p->pair[k].iface == iface) {
		kept = true; /* taken from the list: it goes back there */
	} else if(p->pair[k].used && !p->pair[k].held
			  && p->nheld[fwd] < hold_max(p)) {
		p->pair[k].held = 1;
		p->pair[k].fwd = (uint8_t)fwd;
		p->pair[k].iface = (uint8_t)iface;
		p->nheld[fwd]++;
		kept = true;
	}
	if(kept)
		put_back(p, k);
	pthread_mutex_unlock(&p->lock);
	return kept;
}

void kice_ports_drop_held(struct kice_ports *p, unsigned fwd)
{
	uint32_t k, npairs = npairs_of(p);
	unsigned i;

	if(fwd >= p->nfwd)
		return;
	mutex_get(&p->lock);
	for(k = 0; k < npairs; k++)
		if(p->pair[k].held && p->pair[k].fwd == fwd) {
			p->pair[k].held = 0;
			if(!p->pair[k].used)
				p->held--;
		}
	for(i = 0; i < KICE_PORTS_IFACES; i++)
		*held_list(p, fwd, i) = KICE_PORTS_NONE;
	p->nheld[fwd] = 0;
	pthread_mutex_unlock(&p->lock);
}

uint32_t kice_ports_held(struct kice_ports *p)
{
	uint32_t n;

	mutex_get(&p->lock);
	n = p->held;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void kice_ports_usage(struct kice_ports *p, uint32_t *in_use, uint32_t *total)
{
	mutex_get(&p->lock);
	*in_use = p->in_use;
	*total = (uint32_t)(p->max - p->min + 1);
	pthread_mutex_unlock(&p->lock);
}
