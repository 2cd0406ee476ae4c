/*
 * kamailio-ice: unit tests for lib/ice (RFC 8445 agent, RFC 7675 consent).
 *
 * Two agents, A and B, talk over a simulated network: the send callback
 * queues the packet with a fixed latency; the loop delivers packets and
 * runs each agent's tick at its deadline on a simulated clock, so every
 * run is deterministic. A filter may drop or rewrite packets (a NAT that
 * rewrites A's source address produces peer-reflexive candidates). Some
 * tests play the peer by hand with packets built by lib/stun's writer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ice.h"
#include "log.h"
#include "stun.h"

#define MS 1000ull
#define SEC 1000000ull

/* ---- the simulated network ------------------------------------------- */

#define QMAX 4096
#define REQMAX 4096

struct pkt
{
	int from; /* 0 = A, 1 = B, -1 = injected by the test */
	struct kice_addr src, dst;
	uint64_t at;
	size_t len;
	uint8_t buf[600];
};

struct net;

struct ep
{
	struct kice_ice ice;
	struct net *net;
	int id;
	unsigned nsock;
	struct kice_addr addr[2]; /* socket local_idx = index */
	unsigned rc_ok, rc_eacces, rc_ebadmsg, rc_zero, rc_other;
};

struct req_rec
{
	uint64_t at;
	uint8_t tid[KICE_STUN_TID_LEN];
	bool use_cand;
};

struct net
{
	uint64_t now, latency;
	struct ep ep[2];
	struct pkt q[QMAX];
	unsigned qh, qn;
	/* return false to drop; may rewrite p */
	bool (*filter)(struct net *n, struct pkt *p);
	/* NAT in front of A: A's address i is seen as pub[i] */
	bool nat;
	struct kice_addr priv[2], pub[2];
	/* requests each endpoint sent */
	struct req_rec req[2][REQMAX];
	unsigned nreq[2];
	unsigned sent[2];	 /* all packets */
	bool drop_b_success; /* B's success responses lost */
	bool drop_a;		 /* everything A sends lost */
	uint64_t guard;
};

static struct net *N;

static void log_sink(void *ctx, enum kice_log_level lvl, const char *msg)
{
	(void)ctx;
	(void)lvl;
	fprintf(stderr, "[%8.3f] %s\n", N ? (double)N->now / 1e6 : 0.0, msg);
}

static struct kice_addr mkaddr(const char *ip, uint16_t port)
{
	struct kice_addr a;

	assert_true(kice_addr_set(&a, kice_slice_make(ip, strlen(ip)), port));
	return a;
}

static uint16_t ld16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static void net_send(void *ctx, uint8_t local_idx, const struct kice_addr *dst,
		const uint8_t *pkt, size_t len)
{
	struct ep *e = ctx;
	struct net *n = e->net;
	struct pkt *p;
	struct kice_stun_msg m;

	assert_true(local_idx < e->nsock);
	assert_true(len <= sizeof(p->buf));
	n->sent[e->id]++;
	if(kice_stun_parse(&m, pkt, len) == 0
			&& m.type == KICE_STUN_BINDING_REQUEST) {
		struct req_rec *r = &n->req[e->id][n->nreq[e->id]++];
		assert_true(n->nreq[e->id] < REQMAX);
		r->at = n->now;
		memcpy(r->tid, m.tid, KICE_STUN_TID_LEN);
		r->use_cand = m.use_candidate;
	}
	assert_true(n->qn < QMAX);
	p = &n->q[(n->qh + n->qn++) % QMAX];
	p->from = e->id;
	p->src = e->addr[local_idx];
	p->dst = *dst;
	p->at = n->now + n->latency;
	p->len = len;
	memcpy(p->buf, pkt, len);
}

static void ep_init(struct net *n, int id, const char *ip, unsigned nsock,
		struct kice_ice_cfg *cfg)
{
	struct ep *e = &n->ep[id];
	unsigned i;

	e->net = n;
	e->id = id;
	e->nsock = nsock;
	cfg->send = net_send;
	cfg->ctx = e;
	cfg->ncomp = nsock;
	assert_int_equal(kice_ice_init(&e->ice, cfg), 0);
	for(i = 0; i < nsock; i++) {
		e->addr[i] = mkaddr(ip, (uint16_t)((id ? 2000 : 1000) + i));
		assert_int_equal(kice_ice_add_local(&e->ice, (uint8_t)(i + 1),
								 (uint8_t)i, &e->addr[i]),
				0);
	}
}

/* tell e about the other endpoint's host candidates */
static void add_peer_cands(struct ep *e, const struct ep *o)
{
	struct kice_ice_cand c;
	unsigned i;

	for(i = 0; i < o->nsock; i++) {
		memset(&c, 0, sizeof(c));
		c.component = (uint8_t)(i + 1);
		c.type = KICE_CAND_HOST;
		c.priority = o->ice.local[i].priority;
		memcpy(c.foundation, o->ice.local[i].foundation, sizeof(c.foundation));
		c.addr = o->addr[i];
		assert_int_equal(kice_ice_add_remote(&e->ice, &c), 0);
	}
}

static struct ep *ep_at(struct net *n, const struct kice_addr *a, uint8_t *idx)
{
	unsigned i, k;

	for(k = 0; k < 2; k++) {
		for(i = 0; i < n->ep[k].nsock; i++) {
			if(kice_addr_eq(&n->ep[k].addr[i], a)) {
				*idx = (uint8_t)i;
				return &n->ep[k];
			}
		}
	}
	return NULL;
}

static void count_rc(struct ep *e, int rc)
{
	if(rc == 1)
		e->rc_ok++;
	else if(rc == -EACCES)
		e->rc_eacces++;
	else if(rc == -EBADMSG)
		e->rc_ebadmsg++;
	else if(rc == 0)
		e->rc_zero++;
	else
		e->rc_other++;
}

static void deliver(struct net *n, struct pkt *p)
{
	struct ep *e;
	uint8_t idx;
	unsigned i;

	if(n->drop_a && p->from == 0)
		return;
	if(n->drop_b_success && p->from == 1 && p->len >= 2
			&& ld16(p->buf) == KICE_STUN_BINDING_SUCCESS)
		return;
	if(n->filter != NULL && !n->filter(n, p))
		return;
	if(n->nat) {
		for(i = 0; i < 2; i++) {
			if(p->from == 0 && kice_addr_eq(&p->src, &n->priv[i]))
				p->src = n->pub[i];
			if(kice_addr_eq(&p->dst, &n->pub[i]))
				p->dst = n->priv[i];
			else if(p->from == 1 && kice_addr_eq(&p->dst, &n->priv[i]))
				return; /* A's private address is unreachable */
		}
	}
	e = ep_at(n, &p->dst, &idx);
	if(e == NULL)
		return;
	count_rc(e, kice_ice_input(&e->ice, n->now, idx, &p->src, p->buf, p->len));
}

/* run the network until time `until` */
static void run(struct net *n, uint64_t until)
{
	uint64_t t, da, db;
	struct pkt p;

	for(;;) {
		assert_true(++n->guard < 5000000);
		da = kice_ice_next_deadline(&n->ep[0].ice);
		db = kice_ice_next_deadline(&n->ep[1].ice);
		t = da < db ? da : db;
		if(n->qn > 0 && n->q[n->qh].at < t)
			t = n->q[n->qh].at;
		if(t > until) {
			if(n->now < until)
				n->now = until;
			return;
		}
		if(t > n->now)
			n->now = t;
		if(n->qn > 0 && n->q[n->qh].at <= n->now) {
			p = n->q[n->qh];
			n->qh = (n->qh + 1) % QMAX;
			n->qn--;
			deliver(n, &p);
		} else if(da <= n->now) {
			kice_ice_tick(&n->ep[0].ice, n->now);
		} else {
			kice_ice_tick(&n->ep[1].ice, n->now);
		}
	}
}

static void cfg_fill(struct kice_ice_cfg *c, bool lite, enum kice_ice_role role,
		uint64_t tie, const char *lu, const char *lp, const char *ru,
		const char *rp)
{
	memset(c, 0, sizeof(*c));
	c->lite = lite;
	c->role = role;
	c->tie_breaker = tie;
	strcpy(c->lufrag, lu);
	strcpy(c->lpwd, lp);
	strcpy(c->rufrag, ru);
	strcpy(c->rpwd, rp);
}

#define UFRAG_A "aaaa"
#define PWD_A "AAAAAAAAAAAAAAAAAAAAAAAA"
#define UFRAG_B "bbbbbbbb"
#define PWD_B "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"

struct opts
{
	bool b_lite, a_ctl, b_ctl;
	uint64_t tie_a, tie_b;
	unsigned ncomp;
	const char *a_rpwd; /* what A believes B's password is */
	bool nat, b_knows_a;
	bool no_eoc;
};

static struct net *setup(const struct opts *o)
{
	struct kice_ice_cfg ca, cb;
	struct net *n = calloc(1, sizeof(*n));

	assert_non_null(n);
	N = n;
	n->latency = 5 * MS;
	n->now = 1 * SEC;
	cfg_fill(&ca, false, o->a_ctl ? KICE_ICE_CONTROLLING : KICE_ICE_CONTROLLED,
			o->tie_a, UFRAG_A, PWD_A, UFRAG_B, o->a_rpwd ? o->a_rpwd : PWD_B);
	ca.remote_lite = o->b_lite;
	cfg_fill(&cb, o->b_lite,
			o->b_ctl ? KICE_ICE_CONTROLLING : KICE_ICE_CONTROLLED, o->tie_b,
			UFRAG_B, PWD_B, UFRAG_A, PWD_A);
	ep_init(n, 0, "10.0.0.1", o->ncomp ? o->ncomp : 1, &ca);
	ep_init(n, 1, "192.0.2.2", o->ncomp ? o->ncomp : 1, &cb);
	if(o->nat) {
		n->nat = true;
		n->priv[0] = n->ep[0].addr[0];
		n->priv[1] = n->ep[0].addr[1];
		n->pub[0] = mkaddr("203.0.113.7", 40000);
		n->pub[1] = mkaddr("203.0.113.7", 40001);
	}
	add_peer_cands(&n->ep[0], &n->ep[1]);
	if(o->b_knows_a)
		add_peer_cands(&n->ep[1], &n->ep[0]);
	if(!o->no_eoc) {
		kice_ice_end_of_candidates(&n->ep[0].ice);
		kice_ice_end_of_candidates(&n->ep[1].ice);
	}
	return n;
}

static void teardown_net(struct net *n)
{
	N = NULL;
	free(n);
}

/* the selected pair of each side names the other side's socket */
static void assert_connected(struct net *n, unsigned ncomp)
{
	const struct kice_addr *sa;
	uint8_t idx = 99;
	unsigned c;

	assert_int_equal(kice_ice_state(&n->ep[0].ice), KICE_ICE_COMPLETED);
	assert_int_equal(kice_ice_state(&n->ep[1].ice), KICE_ICE_COMPLETED);
	for(c = 1; c <= ncomp; c++) {
		sa = kice_ice_selected(&n->ep[0].ice, (uint8_t)c, &idx);
		assert_non_null(sa);
		assert_true(kice_addr_eq(sa, &n->ep[1].addr[c - 1]));
		assert_int_equal(idx, c - 1);
		sa = kice_ice_selected(&n->ep[1].ice, (uint8_t)c, &idx);
		assert_non_null(sa);
		assert_true(kice_addr_eq(
				sa, n->nat ? &n->pub[c - 1] : &n->ep[0].addr[c - 1]));
		assert_int_equal(idx, c - 1);
		assert_true(kice_ice_source_ok(
				&n->ep[0].ice, (uint8_t)c, &n->ep[1].addr[c - 1]));
		assert_true(kice_ice_source_ok(&n->ep[1].ice, (uint8_t)c, sa));
	}
}

/* ---- hand-made packets ------------------------------------------------ */

struct req_opts
{
	const char *user, *pwd;
	uint32_t prio;
	int role; /* 1 controlling, -1 controlled, 0 none */
	uint64_t tie;
	bool use_cand, no_fp, bad_fp, no_mi;
	uint16_t unknown_attr; /* comprehension-required attribute to add */
	uint8_t tid[KICE_STUN_TID_LEN];
};

static size_t build_req(uint8_t *buf, size_t cap, const struct req_opts *o)
{
	struct kice_stun_wr wr;
	int n;

	kice_stun_wr_init(&wr, buf, cap, KICE_STUN_BINDING_REQUEST, o->tid);
	kice_stun_wr_username(&wr, o->user, strlen(o->user));
	if(o->prio)
		kice_stun_wr_priority(&wr, o->prio);
	if(o->role > 0)
		kice_stun_wr_ice_controlling(&wr, o->tie);
	else if(o->role < 0)
		kice_stun_wr_ice_controlled(&wr, o->tie);
	if(o->use_cand)
		kice_stun_wr_use_candidate(&wr);
	if(o->unknown_attr)
		kice_stun_wr_attr(&wr, o->unknown_attr, "abcd", 4);
	if(!o->no_mi)
		kice_stun_wr_integrity(&wr, (const uint8_t *)o->pwd, strlen(o->pwd));
	if(!o->no_fp)
		kice_stun_wr_fingerprint(&wr);
	n = kice_stun_wr_finish(&wr);
	assert_true(n > 0);
	if(o->bad_fp)
		buf[n - 1] ^= 1;
	return (size_t)n;
}

static size_t build_resp(uint8_t *buf, size_t cap, const uint8_t *tid,
		const struct kice_addr *mapped, const char *pwd, int code)
{
	struct kice_stun_wr wr;
	struct sockaddr_storage ss;
	int n;

	kice_stun_wr_init(&wr, buf, cap,
			code ? KICE_STUN_BINDING_ERROR : KICE_STUN_BINDING_SUCCESS, tid);
	if(code)
		kice_stun_wr_error_code(&wr, code, "x", 1);
	else {
		kice_addr_to_sa(mapped, &ss);
		kice_stun_wr_xor_mapped(&wr, (const struct sockaddr *)&ss);
	}
	kice_stun_wr_integrity(&wr, (const uint8_t *)pwd, strlen(pwd));
	kice_stun_wr_fingerprint(&wr);
	n = kice_stun_wr_finish(&wr);
	assert_true(n > 0);
	return (size_t)n;
}

/* a one-agent bench: B alone, the test plays A by hand */
static struct net *bench(bool lite, enum kice_ice_role role, uint64_t tie)
{
	struct kice_ice_cfg cb;
	struct net *n = calloc(1, sizeof(*n));

	assert_non_null(n);
	N = n;
	n->now = 1 * SEC;
	cfg_fill(&cb, lite, role, tie, UFRAG_B, PWD_B, UFRAG_A, PWD_A);
	ep_init(n, 1, "192.0.2.2", 1, &cb);
	n->ep[0].addr[0] = mkaddr("10.0.0.1", 1000);
	n->ep[0].nsock = 1;
	return n;
}

/* the last packet B queued, popped */
static struct pkt *pop_last(struct net *n)
{
	static struct pkt p;

	if(n->qn == 0)
		return NULL;
	p = n->q[(n->qh + n->qn - 1) % QMAX];
	n->qn--;
	return &p;
}

static int inject(struct net *n, const struct kice_addr *src,
		const uint8_t *buf, size_t len)
{
	return kice_ice_input(&n->ep[1].ice, n->now, 0, src, buf, len);
}

#define REQ_A_TO_B "bbbbbbbb:aaaa"

/* ---- tests ---------------------------------------------------------------- */

/* RFC 8445 §5.1.2.1 formula; §6.1.2.3 pair priority; §5.1.1.3 foundation */
static void test_priorities(void **state)
{
	struct net *n;
	struct opts o = {.a_ctl = true, .ncomp = 2, .b_knows_a = true};
	const struct kice_ice_pair *p;
	uint64_t g, d;
	unsigned i;

	(void)state;
	/* (2^24)*126 + (2^8)*65535 + (256 - 1) */
	assert_int_equal(kice_ice_priority(126, 65535, 1), 2130706431u);
	assert_int_equal(kice_ice_priority(126, 65535, 2), 2130706430u);
	assert_int_equal(kice_ice_priority(110, 65535, 1), 1862270975u);
	assert_int_equal(kice_ice_priority(0, 65535, 1), 16777215u);

	n = setup(&o);
	assert_int_equal(n->ep[0].ice.local[0].priority, 2130706431u);
	assert_int_equal(n->ep[0].ice.local[1].priority, 2130706430u);
	/* same type and base IP: same foundation for both components */
	assert_string_equal(
			n->ep[0].ice.local[0].foundation, n->ep[0].ice.local[1].foundation);
	assert_string_not_equal(
			n->ep[0].ice.local[0].foundation, n->ep[1].ice.local[0].foundation);
	assert_int_equal(n->ep[0].ice.npairs, 2);
	for(i = 0; i < n->ep[0].ice.npairs; i++) {
		p = &n->ep[0].ice.pairs[i];
		g = n->ep[0].ice.local[p->lc].priority;
		d = n->ep[0].ice.remote[p->rc].priority;
		assert_true(p->prio
					== ((g < d ? g : d) << 32) + 2 * (g > d ? g : d)
							   + (g > d ? 1 : 0));
		assert_int_equal(p->state, KICE_PAIR_FROZEN);
	}
	teardown_net(n);
}

static void test_init_args(void **state)
{
	struct kice_ice a;
	struct kice_ice_cfg c;
	struct kice_addr x = mkaddr("10.0.0.1", 1000), any = mkaddr("0.0.0.0", 1);
	struct kice_ice_cand rc;
	unsigned i;

	(void)state;
	cfg_fill(
			&c, false, KICE_ICE_CONTROLLING, 1, UFRAG_A, PWD_A, UFRAG_B, PWD_B);
	c.ncomp = 1;
	assert_int_equal(kice_ice_init(&a, &c), -EINVAL); /* no send */
	c.send = net_send;
	assert_int_equal(kice_ice_init(NULL, &c), -EINVAL);
	assert_int_equal(kice_ice_init(&a, NULL), -EINVAL);
	assert_int_equal(kice_ice_init(&a, &c), 0);
	assert_int_equal(kice_ice_state(&a), KICE_ICE_NEW);
	c.ncomp = 0;
	assert_int_equal(kice_ice_init(&a, &c), -EINVAL);
	c.ncomp = 3;
	assert_int_equal(kice_ice_init(&a, &c), -EINVAL);
	c.ncomp = 2;
	/* RFC 8839 §5.4: ufrag >= 4, pwd >= 22 characters */
	strcpy(c.lufrag, "abc");
	assert_int_equal(kice_ice_init(&a, &c), -EINVAL);
	strcpy(c.lufrag, "ab:c");
	assert_int_equal(kice_ice_init(&a, &c), -EINVAL);
	strcpy(c.lufrag, "abcd");
	strcpy(c.rpwd, "123456789012345678901");
	assert_int_equal(kice_ice_init(&a, &c), -EINVAL);
	strcpy(c.rpwd, "1234567890123456789012");
	assert_int_equal(kice_ice_init(&a, &c), 0);
	/* a lite agent is controlled; a full one facing lite controls */
	c.lite = true;
	c.role = KICE_ICE_CONTROLLING;
	assert_int_equal(kice_ice_init(&a, &c), 0);
	assert_int_equal(kice_ice_role(&a), KICE_ICE_CONTROLLED);
	c.lite = false;
	c.remote_lite = true;
	c.role = KICE_ICE_CONTROLLED;
	assert_int_equal(kice_ice_init(&a, &c), 0);
	assert_int_equal(kice_ice_role(&a), KICE_ICE_CONTROLLING);

	/* candidates */
	assert_int_equal(kice_ice_add_local(&a, 0, 0, &x), -EINVAL);
	assert_int_equal(kice_ice_add_local(&a, 3, 0, &x), -EINVAL);
	assert_int_equal(kice_ice_add_local(&a, 1, 0, &any), -EINVAL);
	assert_int_equal(kice_ice_add_local(&a, 1, 0, &x), 0);
	assert_int_equal(kice_ice_add_local(&a, 2, 0, &x), -EINVAL); /* idx */
	x.port++;
	assert_int_equal(kice_ice_add_local(&a, 2, 1, &x), 0);
	x = mkaddr("10.0.0.2", 1000);
	assert_int_equal(kice_ice_add_local(&a, 1, 2, &x), 0);
	/* RFC 8445 §5.1.2.1: a second base gets another local preference */
	assert_int_equal((a.local[2].priority >> 8) & 0xffff, 65534);
	x.port++;
	assert_int_equal(kice_ice_add_local(&a, 2, 3, &x), 0);
	assert_int_equal((a.local[3].priority >> 8) & 0xffff, 65534);
	x.port++;
	assert_int_equal(kice_ice_add_local(&a, 2, 4, &x), -ENOSPC);

	memset(&rc, 0, sizeof(rc));
	rc.component = 3;
	rc.addr = mkaddr("198.51.100.1", 5000);
	assert_int_equal(kice_ice_add_remote(&a, &rc), -EINVAL);
	rc.component = 1;
	rc.addr.port = 0;
	assert_int_equal(kice_ice_add_remote(&a, &rc), -EINVAL);
	for(i = 0; i < KICE_ICE_MAX_REMOTE; i++) {
		rc.component = (uint8_t)(1 + i % 2);
		rc.priority = 1000 + i;
		strcpy(rc.foundation, "1");
		rc.addr.port = (uint16_t)(5000 + i);
		assert_int_equal(kice_ice_add_remote(&a, &rc), 0);
	}
	/* a duplicate is ignored; one more does not fit */
	assert_int_equal(kice_ice_add_remote(&a, &rc), 0);
	rc.addr.port = 6000;
	assert_int_equal(kice_ice_add_remote(&a, &rc), -ENOSPC);
	/* 16 remotes x 2 locals per component: the check list is full */
	assert_int_equal(a.npairs, KICE_ICE_MAX_PAIRS);
	assert_int_equal(
			kice_ice_restart(&a, "ab", PWD_A, UFRAG_B, PWD_B), -EINVAL);
	assert_string_equal(kice_ice_state_name(KICE_ICE_COMPLETED), "completed");
	assert_null(kice_ice_selected(&a, 1, NULL));
	assert_null(kice_ice_selected(&a, 3, NULL));
}

static void test_full_full_two_components(void **state)
{
	struct opts o = {.a_ctl = true,
			.tie_a = 5,
			.tie_b = 7,
			.ncomp = 2,
			.b_knows_a = true};
	struct net *n;
	const struct kice_ice_stats *sa, *sb;

	(void)state;
	n = setup(&o);
	assert_false(kice_ice_source_ok(&n->ep[0].ice, 1, &n->ep[1].addr[0]));
	run(n, 5 * SEC);
	assert_connected(n, 2);
	assert_int_equal(kice_ice_role(&n->ep[0].ice), KICE_ICE_CONTROLLING);
	assert_int_equal(kice_ice_role(&n->ep[1].ice), KICE_ICE_CONTROLLED);
	sa = kice_ice_stats(&n->ep[0].ice);
	sb = kice_ice_stats(&n->ep[1].ice);
	assert_int_equal(sa->auth_failures, 0);
	assert_int_equal(sb->auth_failures, 0);
	assert_int_equal(sa->role_conflicts, 0);
	assert_int_equal(sa->nominations, 2);
	assert_int_equal(sb->nominations, 2);
	assert_true(sa->checks_sent >= 4);
	assert_true(sb->checks_recv >= 4);
	assert_int_equal(n->ep[0].rc_eacces + n->ep[1].rc_eacces, 0);
	/* the wrong component, an unknown source */
	assert_false(kice_ice_source_ok(&n->ep[0].ice, 2, &n->ep[1].addr[0]));
	{
		struct kice_addr x = mkaddr("192.0.2.99", 2000);
		assert_false(kice_ice_source_ok(&n->ep[0].ice, 1, &x));
	}
	/* regular nomination: A sent USE-CANDIDATE once per component */
	{
		unsigned i, uc = 0;
		for(i = 0; i < n->nreq[0]; i++)
			uc += n->req[0][i].use_cand;
		assert_int_equal(uc, 2);
		for(i = 0; i < n->nreq[1]; i++)
			assert_false(n->req[1][i].use_cand);
	}
	/* consent keeps it up */
	run(n, 120 * SEC);
	assert_connected(n, 2);
	teardown_net(n);
}

static void test_full_lite(void **state)
{
	struct opts o = {.b_lite = true, .tie_a = 5, .tie_b = 7, .b_knows_a = true};
	struct net *n;

	(void)state;
	n = setup(&o);
	/* RFC 8445 §6.1.1: facing a lite peer, A controls */
	assert_int_equal(kice_ice_role(&n->ep[0].ice), KICE_ICE_CONTROLLING);
	assert_int_equal(kice_ice_next_deadline(&n->ep[1].ice), UINT64_MAX);
	run(n, 5 * SEC);
	assert_connected(n, 1);
	assert_int_equal(n->nreq[1], 0); /* lite never checks */
	assert_int_equal(n->ep[1].ice.npairs, 1);
	/* A's consent requests keep the lite side's consent alive too */
	run(n, 100 * SEC);
	assert_connected(n, 1);
	assert_int_equal(n->nreq[1], 0);
	teardown_net(n);
}

/* B cannot reach or name A's candidate (a browser's mDNS .local host
 * candidate behind a NAT): it learns A's address from A's checks */
static void test_prflx_mdns(void **state)
{
	struct opts o = {
			.a_ctl = true, .tie_a = 5, .tie_b = 7, .nat = true, .ncomp = 2};
	struct net *n;
	struct kice_ice *b;
	unsigned i;

	(void)state;
	n = setup(&o);
	b = &n->ep[1].ice;
	assert_int_equal(b->nremote, 0);
	run(n, 15 * SEC);
	assert_connected(n, 2);
	assert_int_equal(b->nremote, 2);
	for(i = 0; i < 2; i++) {
		assert_int_equal(b->remote[i].type, KICE_CAND_PRFLX);
		/* RFC 8445 §7.3.1.3: priority from the request's PRIORITY */
		assert_int_equal(b->remote[i].priority,
				kice_ice_priority(110, 65535, b->remote[i].component));
		assert_true(kice_addr_eq(
				&b->remote[i].addr, &n->pub[b->remote[i].component - 1]));
	}
	assert_string_not_equal(b->remote[0].foundation, b->remote[1].foundation);
	/* the private address is no source B accepts */
	assert_false(kice_ice_source_ok(b, 1, &n->ep[0].addr[0]));
	teardown_net(n);
}

static void test_prflx_lite(void **state)
{
	struct opts o = {.b_lite = true, .tie_a = 5, .tie_b = 7, .nat = true};
	struct net *n;

	(void)state;
	n = setup(&o);
	run(n, 5 * SEC);
	assert_connected(n, 1);
	assert_int_equal(n->ep[1].ice.remote[0].type, KICE_CAND_PRFLX);
	teardown_net(n);
}

/* A trickles: a peer-reflexive candidate later signalled takes its type */
static void test_prflx_then_signalled(void **state)
{
	struct opts o = {.a_ctl = true, .tie_a = 5, .tie_b = 7, .nat = true};
	struct net *n;
	struct kice_ice_cand c;
	struct kice_ice *b;

	(void)state;
	n = setup(&o);
	b = &n->ep[1].ice;
	run(n, 3 * SEC);
	assert_connected(n, 1);
	memset(&c, 0, sizeof(c));
	c.component = 1;
	c.type = KICE_CAND_SRFLX;
	c.priority = kice_ice_priority(100, 65535, 1);
	strcpy(c.foundation, "srflx1");
	c.addr = n->pub[0];
	assert_int_equal(kice_ice_add_remote(b, &c), 0);
	assert_int_equal(b->nremote, 1);
	assert_int_equal(b->remote[0].type, KICE_CAND_SRFLX);
	assert_int_equal(b->remote[0].priority, c.priority);
	assert_connected(n, 1);
	teardown_net(n);
}

static void test_wrong_password(void **state)
{
	struct opts o = {.a_ctl = true,
			.tie_a = 5,
			.tie_b = 7,
			.b_knows_a = true,
			.a_rpwd = "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"};
	struct net *n;
	unsigned i;

	(void)state;
	n = setup(&o);
	run(n, 60 * SEC);
	/* B refuses A's checks; B's own checks to A succeed (B has A's
	 * password right), but A never gets a response it can verify */
	assert_true(n->ep[1].rc_eacces > 0);
	assert_true(kice_ice_stats(&n->ep[1].ice)->auth_failures > 0);
	for(i = 0; i < n->ep[0].ice.npairs; i++)
		assert_int_not_equal(n->ep[0].ice.pairs[i].state, KICE_PAIR_SUCCEEDED);
	assert_int_equal(kice_ice_state(&n->ep[0].ice), KICE_ICE_FAILED);
	assert_null(kice_ice_selected(&n->ep[0].ice, 1, NULL));
	assert_false(kice_ice_source_ok(&n->ep[0].ice, 1, &n->ep[1].addr[0]));
	/* B, controlled, is never nominated */
	assert_int_not_equal(kice_ice_state(&n->ep[1].ice), KICE_ICE_COMPLETED);
	assert_int_equal(kice_ice_next_deadline(&n->ep[0].ice), UINT64_MAX);
	teardown_net(n);
}

/* trickle: all pairs fail, but the agent waits for end-of-candidates */
static void test_trickle_waits_for_eoc(void **state)
{
	struct opts o = {.a_ctl = true,
			.tie_a = 5,
			.tie_b = 7,
			.b_knows_a = true,
			.no_eoc = true};
	struct net *n;

	(void)state;
	n = setup(&o);
	n->drop_a = true;
	run(n, 60 * SEC);
	assert_int_equal(kice_ice_state(&n->ep[0].ice), KICE_ICE_RUNNING);
	assert_int_equal(n->ep[0].ice.pairs[0].state, KICE_PAIR_FAILED);
	kice_ice_end_of_candidates(&n->ep[0].ice);
	run(n, 61 * SEC);
	assert_int_equal(kice_ice_state(&n->ep[0].ice), KICE_ICE_FAILED);
	teardown_net(n);
}

/* no candidate at all for a component: fail after KICE_ICE_NOPAIR_US */
static void test_no_pairs_timeout(void **state)
{
	struct kice_ice_cfg c;
	struct net *n = calloc(1, sizeof(*n));

	(void)state;
	N = n;
	n->now = SEC;
	cfg_fill(
			&c, false, KICE_ICE_CONTROLLING, 1, UFRAG_A, PWD_A, UFRAG_B, PWD_B);
	ep_init(n, 0, "10.0.0.1", 1, &c);
	cfg_fill(&c, true, KICE_ICE_CONTROLLED, 1, UFRAG_B, PWD_B, UFRAG_A, PWD_A);
	ep_init(n, 1, "192.0.2.2", 1, &c);
	kice_ice_end_of_candidates(&n->ep[0].ice);
	run(n, SEC + KICE_ICE_NOPAIR_US - 1);
	assert_int_equal(kice_ice_state(&n->ep[0].ice), KICE_ICE_RUNNING);
	run(n, SEC + KICE_ICE_NOPAIR_US + 1);
	assert_int_equal(kice_ice_state(&n->ep[0].ice), KICE_ICE_FAILED);
	teardown_net(n);
}

/* RFC 8445 §7.3: requests without (or with a bad) FINGERPRINT, with the
 * wrong USERNAME or MESSAGE-INTEGRITY are dropped unanswered */
static void test_request_auth(void **state)
{
	struct net *n;
	uint8_t buf[600];
	size_t len;
	struct kice_addr a = mkaddr("10.0.0.1", 1000);
	struct req_opts r = {.user = REQ_A_TO_B,
			.pwd = PWD_B,
			.prio = 1000,
			.role = 1,
			.tie = 1};
	struct kice_stun_msg m;
	struct pkt *p;
	struct kice_addr mapped;

	(void)state;
	n = bench(true, KICE_ICE_CONTROLLED, 2);
	r.no_fp = true;
	len = build_req(buf, sizeof(buf), &r);
	assert_int_equal(inject(n, &a, buf, len), -EACCES);
	r.no_fp = false;
	r.bad_fp = true;
	len = build_req(buf, sizeof(buf), &r);
	assert_int_equal(inject(n, &a, buf, len), -EACCES);
	r.bad_fp = false;
	r.no_mi = true;
	len = build_req(buf, sizeof(buf), &r);
	assert_int_equal(inject(n, &a, buf, len), -EACCES);
	r.no_mi = false;
	r.pwd = PWD_A;
	len = build_req(buf, sizeof(buf), &r);
	assert_int_equal(inject(n, &a, buf, len), -EACCES);
	r.pwd = PWD_B;
	r.user = "bbbbbbbb:zzzz";
	len = build_req(buf, sizeof(buf), &r);
	assert_int_equal(inject(n, &a, buf, len), -EACCES);
	r.user = "bbbbbbbb";
	len = build_req(buf, sizeof(buf), &r);
	assert_int_equal(inject(n, &a, buf, len), -EACCES);
	assert_int_equal(n->qn, 0);
	assert_int_equal(kice_ice_stats(&n->ep[1].ice)->auth_failures, 6);
	assert_int_equal(kice_ice_state(&n->ep[1].ice), KICE_ICE_NEW);
	assert_false(kice_ice_source_ok(&n->ep[1].ice, 1, &a));

	/* the good one: a success response from the same socket to the
	 * source, XOR-MAPPED-ADDRESS = source, MI with B's pwd, FINGERPRINT */
	r.user = REQ_A_TO_B;
	r.tid[0] = 42;
	len = build_req(buf, sizeof(buf), &r);
	assert_int_equal(inject(n, &a, buf, len), 1);
	assert_int_equal(n->qn, 1);
	p = pop_last(n);
	assert_true(kice_addr_eq(&p->dst, &a));
	assert_true(kice_addr_eq(&p->src, &n->ep[1].addr[0]));
	assert_int_equal(kice_stun_parse(&m, p->buf, p->len), 0);
	assert_int_equal(m.type, KICE_STUN_BINDING_SUCCESS);
	assert_memory_equal(m.tid, r.tid, KICE_STUN_TID_LEN);
	assert_int_equal(kice_stun_check_integrity(
							 &m, (const uint8_t *)PWD_B, strlen(PWD_B)),
			0);
	assert_int_equal(kice_stun_check_fingerprint(&m), 0);
	assert_true(m.has_xor_mapped);
	assert_true(kice_addr_from_sa(&mapped, (struct sockaddr *)&m.xor_mapped));
	assert_true(kice_addr_eq(&mapped, &a));
	/* a lite agent takes the check as validating the pair */
	assert_true(kice_ice_source_ok(&n->ep[1].ice, 1, &a));
	assert_null(kice_ice_selected(&n->ep[1].ice, 1, NULL));
	assert_int_equal(kice_ice_stats(&n->ep[1].ice)->checks_recv, 1);
	teardown_net(n);
}

/* RFC 5769 §2.1: the sample request is an ICE check ("evtj:h6vY") */
static void test_rfc5769_request(void **state)
{
	static const uint8_t req[] = {0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4,
			0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87,
			0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20,
			0x74, 0x65, 0x73, 0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74,
			0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff, 0x80, 0x29, 0x00,
			0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, 0x00, 0x06,
			0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59,
			0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c,
			0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2,
			0x49, 0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a,
			0x3b, 0xcf};
	struct kice_ice_cfg c;
	struct net *n = calloc(1, sizeof(*n));
	struct kice_addr src = mkaddr("192.0.2.1", 32853);
	struct kice_stun_msg m;
	struct pkt *p;

	(void)state;
	N = n;
	cfg_fill(&c, false, KICE_ICE_CONTROLLING, 1, "evtj",
			"VOkJxbRl1RmTxUk/WvJxBt", "h6vY", "0123456789012345678901");
	ep_init(n, 1, "192.0.2.2", 1, &c);
	assert_int_equal(inject(n, &src, req, sizeof(req)), 1);
	p = pop_last(n);
	assert_non_null(p);
	assert_int_equal(kice_stun_parse(&m, p->buf, p->len), 0);
	assert_int_equal(m.type, KICE_STUN_BINDING_SUCCESS);
	/* 0x6e0001ff: the PRIORITY of the learned peer-reflexive candidate */
	assert_int_equal(n->ep[1].ice.remote[0].priority, 0x6e0001ffu);
	assert_int_equal(n->ep[1].ice.remote[0].type, KICE_CAND_PRFLX);
	/* a triggered check is queued (RFC 8445 §7.3.1.4) */
	assert_int_equal(n->ep[1].ice.pairs[0].state, KICE_PAIR_WAITING);
	assert_true(n->ep[1].ice.pairs[0].trig_seq != 0);
	teardown_net(n);
}

/* RFC 8489 §6.3.1.1: unknown comprehension-required attribute -> 420 */
static void test_unknown_attr_420(void **state)
{
	struct net *n;
	uint8_t buf[600];
	size_t len;
	struct kice_addr a = mkaddr("10.0.0.1", 1000);
	struct req_opts r = {.user = REQ_A_TO_B,
			.pwd = PWD_B,
			.prio = 1000,
			.role = 1,
			.tie = 1,
			.unknown_attr = 0x7777};
	struct kice_stun_msg m;
	struct pkt *p;

	(void)state;
	n = bench(false, KICE_ICE_CONTROLLED, 2);
	len = build_req(buf, sizeof(buf), &r);
	assert_int_equal(inject(n, &a, buf, len), 1);
	p = pop_last(n);
	assert_non_null(p);
	assert_int_equal(kice_stun_parse(&m, p->buf, p->len), 0);
	assert_int_equal(m.type, KICE_STUN_BINDING_ERROR);
	assert_int_equal(m.error_code, 420);
	assert_int_equal(m.n_unknown_attrs, 1);
	assert_int_equal(kice_stun_unknown_attr(&m, 0), 0x7777);
	assert_int_equal(kice_stun_check_integrity(
							 &m, (const uint8_t *)PWD_B, strlen(PWD_B)),
			0);
	assert_int_equal(n->ep[1].ice.npairs, 0);
	teardown_net(n);
}

/* RFC 8445 §7.3.1.1: both controlling; the larger tie-breaker keeps it */
static void test_role_conflict_both_controlling(void **state)
{
	struct opts o = {.a_ctl = true,
			.b_ctl = true,
			.tie_a = 10,
			.tie_b = 20,
			.ncomp = 2,
			.b_knows_a = true};
	struct net *n;

	(void)state;
	n = setup(&o);
	run(n, 10 * SEC);
	assert_connected(n, 2);
	assert_int_equal(kice_ice_role(&n->ep[0].ice), KICE_ICE_CONTROLLED);
	assert_int_equal(kice_ice_role(&n->ep[1].ice), KICE_ICE_CONTROLLING);
	assert_true(kice_ice_stats(&n->ep[0].ice)->role_conflicts > 0);
	assert_true(kice_ice_stats(&n->ep[1].ice)->role_conflicts > 0);
	teardown_net(n);
}

static void test_role_conflict_both_controlled(void **state)
{
	struct opts o = {.tie_a = 10, .tie_b = 20, .b_knows_a = true};
	struct net *n;

	(void)state;
	n = setup(&o);
	run(n, 10 * SEC);
	assert_connected(n, 1);
	assert_int_equal(kice_ice_role(&n->ep[0].ice), KICE_ICE_CONTROLLED);
	assert_int_equal(kice_ice_role(&n->ep[1].ice), KICE_ICE_CONTROLLING);
	teardown_net(n);
}

/* a lite agent cannot take control: it answers 487 */
static void test_role_conflict_lite(void **state)
{
	struct net *n;
	uint8_t buf[600];
	size_t len;
	struct kice_addr a = mkaddr("10.0.0.1", 1000);
	struct req_opts r = {.user = REQ_A_TO_B,
			.pwd = PWD_B,
			.prio = 1000,
			.role = -1,
			.tie = 1};
	struct kice_stun_msg m;
	struct pkt *p;

	(void)state;
	n = bench(true, KICE_ICE_CONTROLLED, ~0ull);
	len = build_req(buf, sizeof(buf), &r);
	assert_int_equal(inject(n, &a, buf, len), 1);
	p = pop_last(n);
	assert_int_equal(kice_stun_parse(&m, p->buf, p->len), 0);
	assert_int_equal(m.type, KICE_STUN_BINDING_ERROR);
	assert_int_equal(m.error_code, 487);
	assert_int_equal(kice_ice_role(&n->ep[1].ice), KICE_ICE_CONTROLLED);
	teardown_net(n);
}

/* the peer nominates on its first check (aggressive nomination) */
static void test_aggressive_nomination_full(void **state)
{
	struct net *n;
	uint8_t buf[600];
	size_t len;
	struct kice_addr a = mkaddr("10.0.0.1", 1000);
	struct req_opts r = {.user = REQ_A_TO_B,
			.pwd = PWD_B,
			.prio = 1000,
			.role = 1,
			.tie = 1,
			.use_cand = true};
	struct kice_stun_msg m;
	struct pkt *p;
	struct kice_ice *b;

	(void)state;
	n = bench(false, KICE_ICE_CONTROLLED, 2);
	b = &n->ep[1].ice;
	kice_ice_end_of_candidates(b);
	len = build_req(buf, sizeof(buf), &r);
	assert_int_equal(inject(n, &a, buf, len), 1);
	n->qn = 0; /* the response */
	assert_null(kice_ice_selected(b, 1, NULL));
	assert_false(kice_ice_source_ok(b, 1, &a)); /* not validated yet */
	/* B's triggered check */
	assert_true(kice_ice_next_deadline(b) <= n->now);
	kice_ice_tick(b, n->now);
	p = pop_last(n);
	assert_non_null(p);
	assert_int_equal(kice_stun_parse(&m, p->buf, p->len), 0);
	assert_int_equal(m.type, KICE_STUN_BINDING_REQUEST);
	assert_true(kice_slice_eq(m.username, "aaaa:bbbbbbbb"));
	assert_int_equal(kice_stun_check_integrity(
							 &m, (const uint8_t *)PWD_A, strlen(PWD_A)),
			0);
	assert_int_equal(kice_stun_check_fingerprint(&m), 0);
	assert_true(m.has_controlled);
	assert_false(m.use_candidate);
	assert_true(m.has_priority);
	/* a response from elsewhere is not symmetric: the pair fails
	 * (RFC 8445 §7.2.5.2.1); here we answer from the right address */
	n->now += 20 * MS;
	len = build_resp(buf, sizeof(buf), m.tid, &n->ep[1].addr[0], PWD_A, 0);
	assert_int_equal(inject(n, &a, buf, len), 1);
	assert_int_equal(kice_ice_state(b), KICE_ICE_COMPLETED);
	assert_true(kice_addr_eq(kice_ice_selected(b, 1, NULL), &a));
	assert_true(kice_ice_source_ok(b, 1, &a));
	/* a duplicate response changes nothing */
	assert_int_equal(inject(n, &a, buf, len), 1);
	/* a forged one (wrong key) is refused */
	len = build_resp(buf, sizeof(buf), m.tid, &n->ep[1].addr[0], PWD_B, 0);
	assert_int_equal(inject(n, &a, buf, len), -EACCES);
	teardown_net(n);
}

static void test_aggressive_nomination_lite(void **state)
{
	struct net *n;
	uint8_t buf[600];
	size_t len;
	struct kice_addr a = mkaddr("10.0.0.1", 1000);
	struct req_opts r = {.user = REQ_A_TO_B,
			.pwd = PWD_B,
			.prio = 1000,
			.role = 1,
			.tie = 1,
			.use_cand = true};
	struct kice_ice *b;

	(void)state;
	n = bench(true, KICE_ICE_CONTROLLED, 2);
	b = &n->ep[1].ice;
	len = build_req(buf, sizeof(buf), &r);
	assert_int_equal(inject(n, &a, buf, len), 1);
	assert_int_equal(kice_ice_state(b), KICE_ICE_COMPLETED);
	assert_true(kice_addr_eq(kice_ice_selected(b, 1, NULL), &a));
	assert_true(kice_ice_source_ok(b, 1, &a));
	assert_int_equal(kice_ice_stats(b)->nominations, 1);

	/* RFC 7675 for the lite side: no check for 30 s, no consent */
	n->now += KICE_ICE_CONSENT_EXPIRY_US - 1;
	assert_true(kice_ice_next_deadline(b) > n->now);
	n->now += 1;
	assert_true(kice_ice_next_deadline(b) <= n->now);
	kice_ice_tick(b, n->now);
	assert_null(kice_ice_selected(b, 1, NULL));
	assert_false(kice_ice_source_ok(b, 1, &a));
	assert_int_equal(kice_ice_state(b), KICE_ICE_FAILED);
	/* the peer's next check brings it back */
	r.tid[0] = 9;
	len = build_req(buf, sizeof(buf), &r);
	assert_int_equal(inject(n, &a, buf, len), 1);
	assert_int_equal(kice_ice_state(b), KICE_ICE_COMPLETED);
	assert_true(kice_ice_source_ok(b, 1, &a));
	teardown_net(n);
}

/* a non-487 error response fails the pair (RFC 8445 §7.2.5.2.4); an
 * asymmetric success too (§7.2.5.2.1) */
static void test_error_and_asymmetric(void **state)
{
	struct net *n;
	uint8_t buf[600];
	size_t len;
	struct kice_addr a = mkaddr("10.0.0.1", 1000),
					 a2 = mkaddr("10.0.0.1", 1001);
	struct req_opts r = {.user = REQ_A_TO_B,
			.pwd = PWD_B,
			.prio = 1000,
			.role = 1,
			.tie = 1};
	struct kice_stun_msg m;
	struct pkt *p;
	struct kice_ice *b;

	(void)state;
	n = bench(false, KICE_ICE_CONTROLLED, 2);
	b = &n->ep[1].ice;
	len = build_req(buf, sizeof(buf), &r);
	assert_int_equal(inject(n, &a, buf, len), 1);
	r.tid[0] = 1;
	len = build_req(buf, sizeof(buf), &r);
	assert_int_equal(inject(n, &a2, buf, len), 1);
	n->qn = 0;
	kice_ice_tick(b, n->now);
	p = pop_last(n);
	assert_int_equal(kice_stun_parse(&m, p->buf, p->len), 0);
	len = build_resp(buf, sizeof(buf), m.tid, NULL, PWD_A, 400);
	assert_int_equal(inject(n, &p->dst, buf, len), 1);
	n->now += 100 * MS;
	kice_ice_tick(b, n->now);
	p = pop_last(n);
	assert_int_equal(kice_stun_parse(&m, p->buf, p->len), 0);
	len = build_resp(buf, sizeof(buf), m.tid, &n->ep[1].addr[0], PWD_A, 0);
	/* answered from the other address */
	assert_int_equal(
			inject(n, kice_addr_eq(&p->dst, &a) ? &a2 : &a, buf, len), 1);
	assert_int_equal(b->pairs[0].state, KICE_PAIR_FAILED);
	assert_int_equal(b->pairs[1].state, KICE_PAIR_FAILED);
	kice_ice_end_of_candidates(b);
	kice_ice_tick(b, n->now);
	assert_int_equal(kice_ice_state(b), KICE_ICE_FAILED);
	teardown_net(n);
}

/* RFC 8445 §8.1.1: with a higher-priority pair still in progress, A
 * nominates the valid pair KICE_ICE_NOMINATE_WAIT_US after it succeeded */
static void test_nomination_waits(void **state)
{
	struct opts o = {.a_ctl = true, .tie_a = 5, .tie_b = 7, .b_knows_a = true};
	struct net *n;
	struct kice_ice_cand c;
	struct kice_ice *a;
	unsigned i;

	(void)state;
	n = setup(&o);
	a = &n->ep[0].ice;
	memset(&c, 0, sizeof(c));
	c.component = 1;
	c.type = KICE_CAND_HOST;
	c.priority = 2147483647u; /* above B's host candidate */
	strcpy(c.foundation, "x");
	c.addr = mkaddr("198.51.100.9", 7000); /* nobody there */
	assert_int_equal(kice_ice_add_remote(a, &c), 0);
	run(n, 1 * SEC + KICE_ICE_NOMINATE_WAIT_US);
	assert_int_equal(kice_ice_state(a), KICE_ICE_RUNNING);
	for(i = 0; i < n->nreq[0]; i++)
		assert_false(n->req[0][i].use_cand);
	run(n, 1 * SEC + KICE_ICE_NOMINATE_WAIT_US + 200 * MS);
	assert_connected(n, 1);
	for(i = 0; i < a->npairs; i++) {
		if(a->pairs[i].rc == 1)
			assert_int_equal(a->pairs[i].state, KICE_PAIR_IN_PROGRESS);
	}
	run(n, 20 * SEC);
	assert_connected(n, 1);
	teardown_net(n);
}

/* RFC 7675: B stops answering; 30 s after the last response A drops it */
static void test_consent_expiry(void **state)
{
	struct opts o = {.a_ctl = true, .tie_a = 5, .tie_b = 7, .b_knows_a = true};
	struct net *n;
	uint64_t t0, last = 0;
	unsigned i, first;

	(void)state;
	n = setup(&o);
	run(n, 5 * SEC);
	assert_connected(n, 1);
	/* consent requests every 4..6 s */
	first = n->nreq[0];
	run(n, 65 * SEC);
	assert_connected(n, 1);
	assert_true(n->nreq[0] - first >= 10 && n->nreq[0] - first <= 15);
	for(i = first + 1; i < n->nreq[0]; i++) {
		uint64_t d = n->req[0][i].at - n->req[0][i - 1].at;
		assert_true(d >= 4 * SEC && d <= 6 * SEC);
	}
	/* the last response A got */
	n->drop_b_success = true;
	t0 = n->now;
	last = n->req[0][n->nreq[0] - 1].at + 2 * n->latency;
	run(n, last + KICE_ICE_CONSENT_EXPIRY_US - 1);
	assert_true(n->now > t0);
	assert_non_null(kice_ice_selected(&n->ep[0].ice, 1, NULL));
	assert_true(kice_ice_source_ok(&n->ep[0].ice, 1, &n->ep[1].addr[0]));
	run(n, last + KICE_ICE_CONSENT_EXPIRY_US);
	assert_null(kice_ice_selected(&n->ep[0].ice, 1, NULL));
	assert_false(kice_ice_source_ok(&n->ep[0].ice, 1, &n->ep[1].addr[0]));
	assert_int_equal(kice_ice_state(&n->ep[0].ice), KICE_ICE_FAILED);
	/* and no more consent requests go out */
	first = n->nreq[0];
	run(n, n->now + 30 * SEC);
	assert_int_equal(n->nreq[0], first);
	teardown_net(n);
}

static void test_restart(void **state)
{
	struct opts o = {.a_ctl = true,
			.tie_a = 5,
			.tie_b = 7,
			.b_knows_a = true,
			.ncomp = 2};
	struct net *n;
	uint8_t buf[600];
	size_t len;
	struct req_opts r = {.user = REQ_A_TO_B,
			.pwd = PWD_B,
			.prio = 1000,
			.role = 1,
			.tie = 1};
	uint32_t before;

	(void)state;
	n = setup(&o);
	run(n, 5 * SEC);
	assert_connected(n, 2);
	assert_int_equal(
			kice_ice_restart(&n->ep[0].ice, "a2a2", PWD_B, "b2b2b2", PWD_A), 0);
	assert_int_equal(
			kice_ice_restart(&n->ep[1].ice, "b2b2b2", PWD_A, "a2a2", PWD_B), 0);
	assert_int_equal(kice_ice_state(&n->ep[0].ice), KICE_ICE_RUNNING);
	assert_int_equal(n->ep[0].ice.nremote, 0);
	assert_int_equal(n->ep[0].ice.npairs, 0);
	/* RFC 8445 §9: the old pair carries media meanwhile */
	assert_true(kice_addr_eq(
			kice_ice_selected(&n->ep[0].ice, 1, NULL), &n->ep[1].addr[0]));
	assert_true(kice_ice_source_ok(&n->ep[1].ice, 2, &n->ep[0].addr[1]));
	/* the old credentials are refused */
	before = kice_ice_stats(&n->ep[1].ice)->auth_failures;
	len = build_req(buf, sizeof(buf), &r);
	assert_int_equal(kice_ice_input(&n->ep[1].ice, n->now, 0, &n->ep[0].addr[0],
							 buf, len),
			-EACCES);
	assert_int_equal(kice_ice_stats(&n->ep[1].ice)->auth_failures, before + 1);
	add_peer_cands(&n->ep[0], &n->ep[1]);
	add_peer_cands(&n->ep[1], &n->ep[0]);
	kice_ice_end_of_candidates(&n->ep[0].ice);
	kice_ice_end_of_candidates(&n->ep[1].ice);
	run(n, 10 * SEC);
	assert_connected(n, 2);
	assert_int_equal(n->ep[0].rc_eacces + n->ep[1].rc_eacces, 0);
	assert_int_equal(kice_ice_stats(&n->ep[0].ice)->nominations, 4);
	teardown_net(n);
}

/* restart with the peer gone: the old pair lasts until its consent ends */
static void test_restart_fallback_expires(void **state)
{
	struct opts o = {.a_ctl = true, .tie_a = 5, .tie_b = 7, .b_knows_a = true};
	struct net *n;

	(void)state;
	n = setup(&o);
	run(n, 5 * SEC);
	assert_connected(n, 1);
	assert_int_equal(
			kice_ice_restart(&n->ep[0].ice, "a2a2", PWD_B, "b2b2b2", PWD_A), 0);
	run(n, 20 * SEC);
	assert_non_null(kice_ice_selected(&n->ep[0].ice, 1, NULL));
	run(n, 40 * SEC);
	assert_null(kice_ice_selected(&n->ep[0].ice, 1, NULL));
	assert_false(kice_ice_source_ok(&n->ep[0].ice, 1, &n->ep[1].addr[0]));
	teardown_net(n);
}

/* RFC 8445 §14.2 pacing and RFC 8489 §6.2.1 retransmissions: nothing
 * answers; A's requests are >= Ta apart, each sent at most Rc times */
static void test_pacing_retransmissions(void **state)
{
	struct opts o = {.a_ctl = true, .tie_a = 5, .tie_b = 7, .ncomp = 2};
	struct net *n;
	struct kice_ice_cand c;
	unsigned i, j, cnt;

	(void)state;
	n = setup(&o);
	memset(&c, 0, sizeof(c));
	for(i = 0; i < 8; i++) {
		c.component = (uint8_t)(1 + i % 2);
		c.type = KICE_CAND_HOST;
		c.priority = kice_ice_priority(126, 100 + i, c.component);
		snprintf(c.foundation, sizeof(c.foundation), "f%u", i / 2);
		c.addr = mkaddr("198.51.100.9", (uint16_t)(7000 + i));
		assert_int_equal(kice_ice_add_remote(&n->ep[0].ice, &c), 0);
	}
	n->drop_a = true;
	run(n, 120 * SEC);
	assert_int_equal(kice_ice_state(&n->ep[0].ice), KICE_ICE_FAILED);
	assert_int_equal(n->nreq[0], 10 * KICE_ICE_RC);
	for(i = 1; i < n->nreq[0]; i++)
		assert_true(n->req[0][i].at - n->req[0][i - 1].at >= KICE_ICE_TA_US);
	for(i = 0; i < n->nreq[0]; i++) {
		for(cnt = 0, j = 0; j < n->nreq[0]; j++)
			cnt += memcmp(n->req[0][i].tid, n->req[0][j].tid, KICE_STUN_TID_LEN)
				   == 0;
		assert_int_equal(cnt, KICE_ICE_RC);
	}
	/* component 2's pairs wait, frozen, until component 1's pair of the
	 * same foundation is over: two rounds of ~9.5 s */
	assert_true(n->req[0][n->nreq[0] - 1].at < 1 * SEC + 25 * SEC);
	/* the agent failed with its first failed component; the last check
	 * may still wait for its answer, but sends nothing more */
	for(i = 0; i < n->ep[0].ice.npairs; i++)
		assert_true(n->ep[0].ice.pairs[i].state == KICE_PAIR_FAILED
					|| n->ep[0].ice.pairs[i].ntx == KICE_ICE_RC);
	assert_int_equal(kice_ice_next_deadline(&n->ep[0].ice), UINT64_MAX);
	teardown_net(n);
}

/* garbage, truncations and bit flips never crash the agent */
static void test_garbage(void **state)
{
	struct net *n;
	uint8_t buf[600], bad[600];
	size_t len, i, k;
	struct kice_addr a = mkaddr("10.0.0.1", 1000);
	struct req_opts r = {.user = REQ_A_TO_B,
			.pwd = PWD_B,
			.prio = 1000,
			.role = 1,
			.tie = 1,
			.use_cand = true};
	static const uint8_t rtp[] = {
			0x80, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 1};
	int rc;
	uint8_t *heap;

	(void)state;
	n = bench(false, KICE_ICE_CONTROLLED, 2);
	assert_int_equal(inject(n, &a, rtp, sizeof(rtp)), 0);
	assert_int_equal(inject(n, &a, rtp, 0), 0);
	assert_int_equal(kice_ice_input(&n->ep[1].ice, n->now, 7, &a, rtp, 1), 0);
	assert_int_equal(
			kice_ice_input(&n->ep[1].ice, n->now, 0, NULL, rtp, 1), -EINVAL);
	len = build_req(buf, sizeof(buf), &r);
	assert_int_equal(
			kice_ice_input(&n->ep[1].ice, n->now, 7, &a, buf, len), -EINVAL);
	/* every prefix, in an exact-size heap buffer */
	for(i = 0; i < len; i++) {
		heap = malloc(i ? i : 1);
		memcpy(heap, buf, i);
		rc = inject(n, &a, heap, i);
		assert_true(rc == 0 || rc == -EBADMSG);
		free(heap);
	}
	/* every single-bit flip */
	for(i = 0; i < len; i++) {
		for(k = 0; k < 8; k++) {
			memcpy(bad, buf, len);
			bad[i] ^= (uint8_t)(1u << k);
			heap = malloc(len);
			memcpy(heap, bad, len);
			rc = inject(n, &a, heap, len);
			assert_true(rc == 0 || rc == 1 || rc == -EBADMSG || rc == -EACCES);
			free(heap);
			n->qn = 0;
		}
	}
	/* random bytes with a STUN header */
	srand(1);
	for(i = 0; i < 20000; i++) {
		size_t l = 20 + 4 * (size_t)(rand() % 30);
		for(k = 0; k < l; k++)
			bad[k] = (uint8_t)rand();
		bad[0] &= 0x01;
		bad[1] = (uint8_t)(rand() % 2 ? 0x01 : 0x11);
		bad[2] = (uint8_t)((l - 20) >> 8);
		bad[3] = (uint8_t)(l - 20);
		bad[4] = 0x21;
		bad[5] = 0x12;
		bad[6] = 0xa4;
		bad[7] = 0x42;
		rc = inject(n, &a, bad, l);
		assert_true(rc == 0 || rc == 1 || rc == -EBADMSG || rc == -EACCES);
		n->qn = 0;
	}
	/* a response to nothing of ours; an indication */
	len = build_resp(buf, sizeof(buf), r.tid, &a, PWD_A, 0);
	assert_int_equal(inject(n, &a, buf, len), 1);
	{
		struct kice_stun_wr wr;
		kice_stun_wr_init(
				&wr, buf, sizeof(buf), KICE_STUN_BINDING_INDICATION, r.tid);
		kice_stun_wr_fingerprint(&wr);
		len = (size_t)kice_stun_wr_finish(&wr);
		assert_int_equal(inject(n, &a, buf, len), 1);
	}
	/* another method */
	buf[1] = 0x03;
	assert_int_equal(inject(n, &a, buf, len), -EBADMSG);
	teardown_net(n);
}

/* the agent is one flat object: copying it is all it takes to move it */
static void test_flat_object(void **state)
{
	struct opts o = {.a_ctl = true, .tie_a = 5, .tie_b = 7, .b_knows_a = true};
	struct net *n;
	struct kice_ice *copy = malloc(sizeof(*copy));

	(void)state;
	n = setup(&o);
	run(n, 2 * SEC);
	memcpy(copy, &n->ep[0].ice, sizeof(*copy));
	memset(&n->ep[0].ice, 0xa5, sizeof(*copy));
	memcpy(&n->ep[0].ice, copy, sizeof(*copy));
	free(copy);
	run(n, 5 * SEC);
	assert_connected(n, 1);
	teardown_net(n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
			cmocka_unit_test(test_priorities),
			cmocka_unit_test(test_init_args),
			cmocka_unit_test(test_full_full_two_components),
			cmocka_unit_test(test_full_lite),
			cmocka_unit_test(test_prflx_mdns),
			cmocka_unit_test(test_prflx_lite),
			cmocka_unit_test(test_prflx_then_signalled),
			cmocka_unit_test(test_wrong_password),
			cmocka_unit_test(test_trickle_waits_for_eoc),
			cmocka_unit_test(test_no_pairs_timeout),
			cmocka_unit_test(test_request_auth),
			cmocka_unit_test(test_rfc5769_request),
			cmocka_unit_test(test_unknown_attr_420),
			cmocka_unit_test(test_role_conflict_both_controlling),
			cmocka_unit_test(test_role_conflict_both_controlled),
			cmocka_unit_test(test_role_conflict_lite),
			cmocka_unit_test(test_aggressive_nomination_full),
			cmocka_unit_test(test_aggressive_nomination_lite),
			cmocka_unit_test(test_error_and_asymmetric),
			cmocka_unit_test(test_nomination_waits),
			cmocka_unit_test(test_consent_expiry),
			cmocka_unit_test(test_restart),
			cmocka_unit_test(test_restart_fallback_expires),
			cmocka_unit_test(test_pacing_retransmissions),
			cmocka_unit_test(test_garbage),
			cmocka_unit_test(test_flat_object),
	};

	if(getenv("ICE_LOG") != NULL)
		kice_log_set(log_sink, NULL, KICE_LOG_DBG);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
