/*
 * kamailio-ice: the forwarder loop (see fwd.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <liburing.h>
#include <openssl/crypto.h>

#include "dtls.h"
#include "fwd.h"
#include "ice.h"
#include "srtp.h"
#include "log.h"
#include "rand.h"
#include "rtp.h"
#include "sdp_ice.h"

#define BATCH 32
#define PKT_MAX 2048
#define TICK_MS 200
#define RELATCH_OK 1

#define NEPS (1 + KICE_MAX_CALLEES) /* caller, then callee[i] */
#define ICE_TICK_MS 10

struct fwd;
struct fsess;

/* the relay's ICE agent toward one endpoint for one m-line (force) */
struct fagent
{
	struct kice_ice ice;
	struct fwd *f;
	struct fsess *fs;
	uint8_t e, side, stream;
	uint32_t ep_gen, side_gen; /* credentials generation it runs with */
	unsigned nadded;		   /* remote candidates given to it */
	int last_state;
	/* kice_ice_next_deadline() as of the agent's last change: only input,
	 * ticks, candidates and restarts move it, so the 10 ms sweep compares
	 * this instead of asking every agent */
	uint64_t due_us;
};

static void agent_due(struct fagent *a)
{
	a->due_us = kice_ice_next_deadline(&a->ice);
}

/* the relay's crypto toward one endpoint for one m-line (DTLS-SRTP or
 * SDES): it unprotects what the endpoint sends, protects what it gets */
struct fcrypto
{
	struct fwd *f;
	struct fsess *fs;
	uint8_t e, side, stream;
	uint8_t kind; /* enum kice_crypto */
	struct kice_dtls *dtls;
	struct kice_srtp *srtp;
	int last_state;
};

/* mode relay: what the relay learned from the checks it carried for one
 * m-line (indexes: [side][component-1]) */
#define TPEND 16
struct tstream
{
	struct kice_addr learned[2][2]; /* sources of checks seen */
	struct kice_addr valid[2][2];	/* sources of checks the far end answered */
	struct
	{
		bool used;
		uint8_t side, comp;
		uint8_t tid[KICE_STUN_TID_LEN];
		struct kice_addr src;
	} pend[TPEND];
	unsigned next;
};

/* forwarder-private state of one session */
struct fsess
{
	struct tstream *tr[KICE_MAX_STREAMS];
	struct fsess *next; /* id hash chain */
	struct kice_session *s;
	uint32_t id;
	struct fagent *ag[NEPS][KICE_MAX_STREAMS];
	unsigned nagents;
	struct fcrypto *cr[NEPS][KICE_MAX_STREAMS];
	unsigned ncrypto;
	/* worker-written fields, copied under the bucket lock on UPDATE: the
	 * header, and private copies of its callee, stream and key blocks;
	 * snap's pointers lead to these copies, or to all-zero blocks */
	struct kice_session snap;
	struct kice_endpoint *pep[KICE_MAX_CALLEES];
	struct kice_ep_stream *pst[NEPS][KICE_MAX_STREAMS];
	struct kice_sdes *psdes[2][KICE_MAX_STREAMS];
	/* where forwarder-written stream fields (counters, latches, ICE and
	 * crypto state) go: the shm block, or f->scratch while it has none */
	struct kice_ep_stream *w[NEPS][KICE_MAX_STREAMS];
	/* on f->timed while it has agents or crypto (the 10 ms sweep) */
	struct fsess *tnext, **tprev;
	unsigned inflight; /* io_uring sends that count into its streams */
	unsigned nports;
	uint16_t ports[2 * KICE_MAX_STREAMS]; /* RTP ports of its pairs */
};

/* one per local port */
struct route
{
	int fd;
	struct fsess *fs; /* NULL: free (its socket may be held open) */
	uint8_t side, stream, comp;
	uint8_t iface; /* the socket is bound on this interface */
	uint32_t gen;  /* io_uring: completions of an older socket are stale */
};

/*
 * io_uring (when the kernel allows it; else epoll + recvmmsg/sendmmsg):
 * one multishot recvmsg per socket takes buffers from a ring the kernel
 * fills, every completion of a loop round is handled in one pass, and a
 * relayed packet goes out as a sendmsg from the buffer it came in, which
 * returns to the ring when the send completes. Compared with one
 * recvmmsg per ready socket (20 ms packets: one packet each), this halves
 * the CPU per packet (README, Performance).
 */
#define URING_BUFS 4096 /* power of 2 */
#define URING_BGID 1
#define URING_HDR \
	(sizeof(struct io_uring_recvmsg_out) + sizeof(struct sockaddr_storage))
#define URING_BUF_SZ (URING_HDR + PKT_MAX)
#define URING_CQES 256

/* user_data: kind in the top byte, a route generation, an index */
enum
{
	UD_RECV = 1, /* index: route */
	UD_SEND,	 /* index: buffer */
	UD_CTL,
	UD_OTHER, /* cancels: nothing to do */
	UD_CSEND  /* index: control send slot */
};
#define UD(kind, gen, idx) \
	(((uint64_t)(kind) << 56) | ((uint64_t)((gen)&0xffffffu) << 32) | (idx))
#define UD_KIND(u) ((unsigned)((u) >> 56))
#define UD_GEN(u) ((uint32_t)(((u) >> 32) & 0xffffffu))
#define UD_IDX(u) ((uint32_t)(u))

/* a buffer on its way out */
struct usend
{
	struct msghdr mh;
	struct iovec iov;
	struct sockaddr_storage dst;
	struct kice_counters *cnt; /* NULL once its session is freed */
	struct fsess *fs;
	bool busy;
};

/* a control-path packet (check, response, DTLS record) on its way out:
 * copied, since the agent's buffer is gone by the time the send runs */
#define CSENDS 128
struct csend
{
	struct msghdr mh;
	struct iovec iov;
	struct sockaddr_storage dst;
	uint8_t buf[PKT_MAX];
};

struct uring
{
	struct io_uring ring;
	struct csend *cs;	 /* CSENDS */
	uint16_t cfree[CSENDS]; /* free slots of cs, a stack */
	unsigned ncfree;
	struct io_uring_buf_ring *br;
	uint8_t *bufs;
	struct usend *us;	 /* URING_BUFS */
	struct msghdr rx_mh; /* what each multishot recvmsg asks for */
	unsigned recycled;	 /* buffers given back since the last advance */
	unsigned nsend;		 /* sends queued since the last submit */
	uint64_t *rearm;	 /* receives that ended (their user_data) */
	uint32_t nrearm;
	int cur_bid;		 /* buffer of the packet being relayed, or -1 */
	bool cur_sent;		 /* ... which out_queue() took */
};

struct fwd
{
	const struct kice_fwd_cfg *cfg;
	struct kice_table *t;
	int ep;
	struct route *routes; /* indexed by port - ports->min */
	uint32_t nroutes;
	struct fsess *hash[1024];
	uint64_t now;
	uint64_t next_ice_ms;
	unsigned nagents; /* in all sessions */
	unsigned ncrypto; /* DTLS associations in all sessions */
	bool kicked;
	struct kice_ep_stream scratch; /* write-only sink, see fsess.w */
	struct uring *u;			   /* NULL: epoll */
	struct fsess *timed;		   /* sessions with agents or crypto */
	/* outgoing batch: flushed with sendmmsg, one call per run of the same
	 * socket, at the end of each receive batch */
	unsigned on;
	struct mmsghdr omsgs[BATCH];
	struct iovec oiov[BATCH];
	struct sockaddr_storage odst[BATCH];
	int ofd[BATCH];
	struct kice_counters *ocnt[BATCH];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	struct sockaddr_storage src[BATCH];
	uint8_t buf[BATCH][PKT_MAX];
};

#define CTL_TAG 0xffffffffu

int kice_fwd_channel(int sv[2])
{
	int sz = 4 * 1024 * 1024;

	if(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
	return 0;
}

static int send_msg(int fd, const struct kice_fwd_msg *m, const int *fds,
		int nfds)
{
	struct msghdr mh;
	struct iovec iov;
	union
	{
		char buf[CMSG_SPACE(2 * KICE_FWD_MAX_PAIRS * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct cmsghdr *c;
	int i;

	if(nfds < 0 || nfds > 2 * KICE_FWD_MAX_PAIRS)
		return -EINVAL;
	memset(&mh, 0, sizeof(mh));
	iov.iov_base = (void *)m;
	iov.iov_len = sizeof(*m);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if(nfds > 0) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	/* a full queue means the forwarder is stuck: retry briefly, then fail */
	for(i = 0; i < 50; i++) {
		if(sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
			return 0;
		if(errno != EAGAIN && errno != EINTR)
			return -errno;
		usleep(1000);
	}
	return -EAGAIN;
}

int kice_fwd_notify(const int *ctl_fds, struct kice_session *s)
{
	struct kice_fwd_msg m;

	memset(&m, 0, sizeof(m));
	m.type = KICE_FWD_UPDATE;
	m.id = s->id;
	m.s = s;
	return send_msg(ctl_fds[s->fwd], &m, NULL, 0);
}

void kice_fwd_kick(struct kice_table *t, const int *ctl_fds, unsigned fwd)
{
	struct kice_fwd_msg m;

	/* a forwarder that wakes every 10 ms looks at its dead list each time:
	 * no message (and no extra wake-up) needed */
	if(fwd < t->nfwd && __atomic_load_n(&t->fwd[fwd].ticking, __ATOMIC_ACQUIRE))
		return;

	memset(&m, 0, sizeof(m));
	m.type = KICE_FWD_KICK;
	send_msg(ctl_fds[fwd], &m, NULL, 0);
}

static int bind_one(const struct kice_addr *ip, uint16_t port, int tos)
{
	struct kice_addr a = *ip;
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, one = 1;

	a.port = port;
	sl = kice_addr_to_sa(&a, &ss);
	fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if(fd < 0)
		return -errno;
	if(a.af == 6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if(tos > 0) {
		if(a.af == 4)
			setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof(tos));
		else
			setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof(tos));
	}
	if(bind(fd, (struct sockaddr *)&ss, sl) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

void kice_fwd_pending_init(struct kice_fwd_pending *p, struct kice_session *s)
{
	memset(&p->m, 0, sizeof(p->m));
	p->nfds = 0;
	p->m.type = KICE_FWD_UPDATE;
	p->m.id = s->id;
	p->m.s = s;
}

int kice_fwd_add_ports(struct kice_table *t, struct kice_fwd_pending *p,
		struct kice_session *s, int side, int stream, unsigned iface,
		const struct kice_addr *ip, int tos)
{
	uint16_t port;
	int fds[2] = {-1, -1}, tries, rc;
	unsigned k = p->m.npairs;
	bool held = false;

	if(side < 0 || side > 1 || stream < 0 || stream >= KICE_MAX_STREAMS)
		return -EINVAL;
	if(s->side[side].port[stream])
		return 0;
	if(k >= KICE_FWD_MAX_PAIRS)
		return -EINVAL;
	/* a pair some other program holds is skipped; give up after a few */
	for(tries = 0; tries < 16; tries++) {
		rc = kice_ports_alloc_pair(t->ports, s->fwd, iface, &port, &held);
		if(rc < 0)
			return rc;
		if(held)
			break;
		fds[0] = bind_one(ip, port, tos);
		fds[1] = fds[0] >= 0 ? bind_one(ip, (uint16_t)(port + 1), tos) : -1;
		if(fds[0] >= 0 && fds[1] >= 0)
			break;
		KICE_WARN("port pair %u/%u not bindable, trying another", port,
				port + 1);
		if(fds[0] >= 0)
			close(fds[0]);
		kice_ports_release_pair(t->ports, port);
		fds[0] = -1;
	}
	if(!held && fds[0] < 0)
		return -EIO;
	p->m.pair[k].port = port;
	p->m.pair[k].side = (uint8_t)side;
	p->m.pair[k].stream = (uint8_t)stream;
	p->m.pair[k].held = held;
	p->m.pair[k].iface = (uint8_t)iface;
	if(!held) {
		p->fds[p->nfds++] = fds[0];
		p->fds[p->nfds++] = fds[1];
	}
	p->m.npairs = (uint8_t)(k + 1);
	s->side[side].port[stream] = port;
	return 0;
}

int kice_fwd_update(
		struct kice_table *t, const int *ctl_fds, struct kice_fwd_pending *p)
{
	struct kice_session *s = p->m.s;
	unsigned k, n = p->m.npairs;
	int rc;

	rc = send_msg(ctl_fds[s->fwd], &p->m, p->fds, (int)p->nfds);
	for(k = 0; k < p->nfds; k++)
		close(p->fds[k]);
	p->m.npairs = 0;
	p->nfds = 0;
	if(rc == 0)
		return 0;
	if(n == 0)
		return rc;
	KICE_ERR("session %u: cannot hand %u port pairs to forwarder %u: %s",
			s->id, n, s->fwd, strerror(-rc));
	for(k = 0; k < n; k++) {
		kice_ports_release_pair(t->ports, p->m.pair[k].port);
		s->side[p->m.pair[k].side].port[p->m.pair[k].stream] = 0;
	}
	return -EIO;
}

/* ---- forwarder side ---- */

static struct fsess *fs_find(struct fwd *f, uint32_t id)
{
	struct fsess *fs;

	for(fs = f->hash[id % 1024]; fs; fs = fs->next)
		if(fs->id == id)
			return fs;
	return NULL;
}

static struct route *route_of(struct fwd *f, uint16_t port);
static bool uring_csend(struct fwd *f, int fd, const uint8_t *pkt, size_t len,
		const struct sockaddr_storage *ss, socklen_t sl);
static void ice_sync(struct fwd *f, struct fsess *fs);
static void crypto_sync(struct fwd *f, struct fsess *fs);

/* all-zero blocks: what the snapshot shows for what the session lacks */
static const struct kice_endpoint ep_none = {
		.st = {(struct kice_ep_stream *)&kice_ep_stream_none,
				(struct kice_ep_stream *)&kice_ep_stream_none,
				(struct kice_ep_stream *)&kice_ep_stream_none,
				(struct kice_ep_stream *)&kice_ep_stream_none}};
static const struct kice_sdes sdes_none;

/* a private copy of *src in *copy (made on first use); NULL: no memory */
static void *copy_of(void **copy, const void *src, size_t size)
{
	if(*copy == NULL && (*copy = malloc(size)) == NULL)
		return NULL;
	memcpy(*copy, src, size);
	return *copy;
}

/* snapshot of endpoint e's streams into its copy ep (NULL: the session
 * has no such endpoint): shm blocks copied, absent ones all-zero */
static void snap_streams(struct fwd *f, struct fsess *fs, int e,
		struct kice_endpoint *ep, struct kice_ep_stream *const *shm_st)
{
	int k;

	for(k = 0; k < KICE_MAX_STREAMS; k++) {
		struct kice_ep_stream *es = ep ? shm_st[k] : NULL;
		void *cp = es ? copy_of((void **)&fs->pst[e][k], es, sizeof(*es))
					  : NULL;

		if(es && cp == NULL)
			KICE_ERR("session %u: no memory for a snapshot", fs->id);
		if(ep)
			ep->st[k] = cp ? cp : (struct kice_ep_stream *)&kice_ep_stream_none;
		fs->w[e][k] = es ? es : &f->scratch;
	}
}

/* keep fs on f->timed exactly while it has agents or crypto */
static void timed_update(struct fwd *f, struct fsess *fs)
{
	bool want = fs->nagents || fs->ncrypto;

	if(want && fs->tprev == NULL) {
		fs->tnext = f->timed;
		if(f->timed)
			f->timed->tprev = &fs->tnext;
		f->timed = fs;
		fs->tprev = &f->timed;
	} else if(!want && fs->tprev) {
		*fs->tprev = fs->tnext;
		if(fs->tnext)
			fs->tnext->tprev = fs->tprev;
		fs->tnext = NULL;
		fs->tprev = NULL;
	}
}

static void fs_snapshot(struct fwd *f, struct fsess *fs)
{
	struct kice_session *s = fs->s;
	int i, k;

	kice_bucket_lock(f->t, s->hash);
	memcpy(&fs->snap, s, sizeof(fs->snap));
	snap_streams(f, fs, 0, &fs->snap.caller, s->caller.st);
	for(i = 0; i < KICE_MAX_CALLEES; i++) {
		struct kice_endpoint *ep = NULL;

		if(s->callee[i])
			ep = copy_of((void **)&fs->pep[i], s->callee[i], sizeof(*ep));
		fs->snap.callee[i] = ep ? ep : (struct kice_endpoint *)&ep_none;
		snap_streams(f, fs, 1 + i, ep, ep ? s->callee[i]->st : NULL);
	}
	for(i = 0; i < 2; i++)
		for(k = 0; k < KICE_MAX_STREAMS; k++) {
			void *cp = s->side[i].sdes[k]
							   ? copy_of((void **)&fs->psdes[i][k],
										 s->side[i].sdes[k], sizeof(sdes_none))
							   : NULL;
			fs->snap.side[i].sdes[k] = cp ? cp : (struct kice_sdes *)&sdes_none;
		}
	kice_bucket_unlock(f->t, s->hash);
	ice_sync(f, fs);
	crypto_sync(f, fs);
	timed_update(f, fs);
}

static const struct kice_endpoint *snap_ep(const struct fsess *fs, int e)
{
	return e == 0 ? &fs->snap.caller : fs->snap.callee[e - 1];
}

/* the endpoint index (0 caller, 1 + i callee i) */
static int ep_idx(int side, int callee)
{
	return side == 0 ? 0 : 1 + callee;
}

/* send pkt from the relay port of (side, m-line st, component comp) to
 * `to`: the control-path send of agents, DTLS and relayed checks */
static void send_from(struct fwd *f, const struct fsess *fs, int side, int st,
		int comp, const struct kice_addr *to, const uint8_t *pkt, size_t len)
{
	uint16_t port = fs->snap.side[side].port[st];
	struct route *out = port ? route_of(f, (uint16_t)(port + comp)) : NULL;
	struct sockaddr_storage ss;
	socklen_t sl = kice_addr_to_sa(to, &ss);

	if(out == NULL || out->fd < 0 || sl == 0)
		return;
	if(uring_csend(f, out->fd, pkt, len, &ss, sl))
		return;
	if(sendto(out->fd, pkt, len, 0, (struct sockaddr *)&ss, sl) < 0)
		KICE_DBG("send from port %u failed: %s", port + comp, strerror(errno));
}

static void agent_send(void *ctx, uint8_t local_idx, const struct kice_addr *dst,
		const uint8_t *pkt, size_t len)
{
	struct fagent *a = ctx;

	send_from(a->f, a->fs, a->side, a->stream, local_idx, dst, pkt, len);
}

static void agent_free(struct fwd *f, struct fsess *fs, int e, int st)
{
	if(fs->ag[e][st] == NULL)
		return;
	OPENSSL_cleanse(&fs->ag[e][st]->ice.cfg, sizeof(fs->ag[e][st]->ice.cfg));
	free(fs->ag[e][st]);
	fs->ag[e][st] = NULL;
	fs->nagents--;
	f->nagents--;
	fs->w[e][st]->ice_state = 0;
}

static void agent_add_remotes(struct fagent *a, const struct kice_ep_stream *es)
{
	struct kice_ice_cand c;
	unsigned i;

	for(i = a->nadded; i < es->ncand; i++) {
		memset(&c, 0, sizeof(c));
		c.component = es->cand[i].comp;
		c.type = (enum kice_cand_type)es->cand[i].type;
		c.priority = es->cand[i].prio;
		snprintf(c.foundation, sizeof(c.foundation), "%x",
				es->cand[i].foundation);
		c.addr = es->cand[i].addr;
		if(kice_ice_add_remote(&a->ice, &c) < 0)
			KICE_DBG("ice: remote candidate %u not usable", i);
	}
	a->nadded = es->ncand;
	if(es->eoc || es->ncand > 0)
		kice_ice_end_of_candidates(&a->ice);
	agent_due(a);
}

static struct fagent *agent_new(struct fwd *f, struct fsess *fs, int e, int st)
{
	const struct kice_endpoint *ep = snap_ep(fs, e);
	int side = e == 0 ? 0 : 1;
	const struct kice_side *sd = &fs->snap.side[side];
	const struct kice_addr *ip;
	struct kice_ice_cfg cfg;
	struct kice_addr la;
	struct fagent *a;
	unsigned c;

	if(f->cfg->ifaces == NULL || sd->iface >= f->cfg->nifaces)
		return NULL;
	ip = &f->cfg->ifaces[sd->iface];
	a = calloc(1, sizeof(*a));
	if(a == NULL)
		return NULL;
	memset(&cfg, 0, sizeof(cfg));
	cfg.lite = sd->ice_lite;
	cfg.role = sd->ice_controlling ? KICE_ICE_CONTROLLING : KICE_ICE_CONTROLLED;
	if(kice_random(&cfg.tie_breaker, sizeof(cfg.tie_breaker)) < 0) {
		free(a);
		return NULL;
	}
	snprintf(cfg.lufrag, sizeof(cfg.lufrag), "%s", sd->ufrag);
	snprintf(cfg.lpwd, sizeof(cfg.lpwd), "%s", sd->pwd);
	snprintf(cfg.rufrag, sizeof(cfg.rufrag), "%s", ep->ufrag);
	snprintf(cfg.rpwd, sizeof(cfg.rpwd), "%s", ep->pwd);
	cfg.remote_lite = ep->ice_lite;
	cfg.ncomp = ep->st[st]->rtcp_mux ? 1 : 2;
	cfg.send = agent_send;
	cfg.ctx = a;
	a->f = f;
	a->fs = fs;
	a->e = (uint8_t)e;
	a->side = (uint8_t)side;
	a->stream = (uint8_t)st;
	if(kice_ice_init(&a->ice, &cfg) < 0) {
		KICE_ERR("session %u: cannot start ICE for m-line %d (bad credentials)",
				fs->id, st);
		free(a);
		return NULL;
	}
	for(c = 0; c < cfg.ncomp; c++) {
		la = *ip;
		la.port = (uint16_t)(sd->port[st] + c);
		kice_ice_add_local(&a->ice, (uint8_t)(c + 1), (uint8_t)c, &la);
	}
	a->ep_gen = ep->ice_gen;
	a->side_gen = sd->ice_gen;
	a->last_state = -1;
	fs->nagents++;
	f->nagents++;
	return a;
}

static void crypto_free(struct fwd *f, struct fsess *fs, int e, int st)
{
	struct fcrypto *c = fs->cr[e][st];

	if(c == NULL)
		return;
	if(c->dtls)
		f->ncrypto--;
	kice_dtls_destroy(c->dtls);
	kice_srtp_destroy(c->srtp);
	free(c);
	fs->cr[e][st] = NULL;
	fs->ncrypto--;
	fs->w[e][st]->dtls_state = 0;
	fs->w[e][st]->srtp_profile[0] = '\0';
}

/* where the relay reaches endpoint e on m-line st: the ICE selected pair,
 * else the latched address, else its SDP */
static bool ep_dest(struct fsess *fs, int e, int st, struct kice_addr *to,
		uint8_t *comp_off)
{
	struct fagent *a = fs->ag[e][st];
	const struct kice_addr *sel;

	*comp_off = 0;
	if(a) {
		sel = kice_ice_media_path(&a->ice, 1, comp_off);
		if(sel == NULL)
			return false;
		*to = *sel;
		return true;
	}
	*to = fs->w[e][st]->latched[0];
	if(to->af == 0)
		*to = snap_ep(fs, e)->st[st]->sdp[0];
	return to->af != 0 && to->port != 0 && !kice_addr_is_any(to);
}

static void dtls_send(void *ctx, const uint8_t *pkt, size_t len)
{
	struct fcrypto *c = ctx;
	struct kice_addr to;
	uint8_t off;

	if(ep_dest(c->fs, c->e, c->stream, &to, &off))
		send_from(c->f, c->fs, c->side, c->stream, off, &to, pkt, len);
}

static void crypto_mirror(struct fcrypto *c)
{
	struct kice_ep_stream *es = c->fs->w[c->e][c->stream];
	const struct kice_srtp_stats *ss;

	if(c->dtls)
		es->dtls_state = (uint8_t)(kice_dtls_state(c->dtls) + 1);
	if(c->srtp) {
		ss = kice_srtp_stats(c->srtp);
		es->srtp_auth_fail = (uint32_t)ss->auth_failures;
		es->srtp_replays = (uint32_t)ss->replays;
	}
}

/* a connected DTLS association gives its SRTP keys */
static void crypto_keys(struct fcrypto *c)
{
	struct kice_srtp_keys tx, rx;
	struct kice_ep_stream *es = c->fs->w[c->e][c->stream];
	int st;

	if(c->srtp || c->dtls == NULL)
		return;
	st = (int)kice_dtls_state(c->dtls);
	if(st != c->last_state) {
		c->last_state = st;
		if(st == KICE_DTLS_CONNECTED)
			c->f->t->fwd[c->f->cfg->idx].dtls_handshakes++;
		if(st == KICE_DTLS_FAILED)
			c->f->t->fwd[c->f->cfg->idx].dtls_failures++;
		if(st == KICE_DTLS_FAILED)
			KICE_WARN("session %u: DTLS toward %s (m-line %u) failed: %s",
					c->fs->id, c->side ? "callee" : "caller", c->stream,
					kice_dtls_why(c->dtls) ? kice_dtls_why(c->dtls) : "?");
	}
	if(st != KICE_DTLS_CONNECTED)
		return;
	if(kice_dtls_srtp_keys(c->dtls, &tx, &rx) == 0
			&& kice_srtp_create(&c->srtp, &tx, &rx) == 0) {
		snprintf(es->srtp_profile, sizeof(es->srtp_profile), "%s",
				kice_dtls_profile_name(c->dtls));
		snprintf(es->dtls_cipher, sizeof(es->dtls_cipher), "%s",
				kice_dtls_cipher_name(c->dtls));
		KICE_DBG("session %u: DTLS-SRTP toward %s up (%s, %s)", c->fs->id,
				c->side ? "callee" : "caller", es->srtp_profile,
				es->dtls_cipher);
	}
	OPENSSL_cleanse(&tx, sizeof(tx));
	OPENSSL_cleanse(&rx, sizeof(rx));
}

/* DTLS: the client starts once it knows where the endpoint is; timers */
static void crypto_tick(struct fwd *f, struct fcrypto *c)
{
	uint64_t now_us = f->now * 1000u;
	struct kice_addr to;
	uint8_t off;

	if(c->dtls == NULL)
		return;
	if(kice_dtls_state(c->dtls) == KICE_DTLS_NEW
			&& kice_dtls_role(c->dtls) == KICE_DTLS_CLIENT
			&& ep_dest(c->fs, c->e, c->stream, &to, &off))
		kice_dtls_start(c->dtls, now_us);
	if(kice_dtls_next_deadline(c->dtls) <= now_us)
		kice_dtls_tick(c->dtls, now_us);
	crypto_keys(c);
	crypto_mirror(c);
}

static void crypto_sync(struct fwd *f, struct fsess *fs)
{
	int e, st;

	for(e = 0; e < NEPS; e++) {
		const struct kice_endpoint *ep = snap_ep(fs, e);
		int side = e == 0 ? 0 : 1;
		const struct kice_side *sd = &fs->snap.side[side];

		for(st = 0; st < KICE_MAX_STREAMS; st++) {
			const struct kice_ep_stream *es = ep->st[st];
			struct fcrypto *c = fs->cr[e][st];
			bool want = ep->used && es->present && !es->disabled
						&& sd->port[st] && sd->crypto != KICE_CRYPTO_NONE
						&& fs->snap.state != KICE_SESS_DELETED;

			if(want && sd->crypto == KICE_CRYPTO_DTLS)
				want = ep->dtls_role_set && ep->fp_hex[0] && f->cfg->cert;
			if(want && sd->crypto == KICE_CRYPTO_SDES)
				want = es->sdes_ok && sd->sdes_set[st];
			if(c && (!want || c->kind != sd->crypto)) {
				crypto_free(f, fs, e, st);
				c = NULL;
			}
			if(!want || c)
				continue;
			c = calloc(1, sizeof(*c));
			if(c == NULL)
				continue;
			c->f = f;
			c->fs = fs;
			c->e = (uint8_t)e;
			c->side = (uint8_t)side;
			c->stream = (uint8_t)st;
			c->kind = sd->crypto;
			c->last_state = -1;
			if(sd->crypto == KICE_CRYPTO_DTLS) {
				if(kice_dtls_create(&c->dtls, f->cfg->cert,
						   (enum kice_dtls_role)ep->dtls_role, ep->fp_alg,
						   ep->fp_hex, dtls_send, c)
						< 0) {
					KICE_ERR("session %u: cannot create DTLS toward %s: bad "
							 "a=fingerprint?",
							fs->id, side ? "callee" : "caller");
					free(c);
					continue;
				}
				f->ncrypto++;
			} else if(kice_srtp_create(&c->srtp, &sd->sdes[st]->keys,
							  &es->sdes.keys)
					< 0) {
				KICE_ERR("session %u: cannot create SDES-SRTP toward %s",
						fs->id, side ? "callee" : "caller");
				free(c);
				continue;
			} else {
				snprintf(fs->w[e][st]->srtp_profile,
						sizeof(fs->w[e][st]->srtp_profile), "%s",
						kice_srtp_profile_name(sd->sdes[st]->keys.profile));
			}
			fs->cr[e][st] = c;
			fs->ncrypto++;
			crypto_mirror(c);
		}
	}
}

/* Bring the session's agents in line with its description: one per
 * endpoint and m-line where the SDP sent to that endpoint was `force` and
 * the endpoint does ICE. */
static void ice_sync(struct fwd *f, struct fsess *fs)
{
	int e, st, side;

	for(e = 0; e < NEPS; e++) {
		const struct kice_endpoint *ep = snap_ep(fs, e);

		side = e == 0 ? 0 : 1;
		for(st = 0; st < KICE_MAX_STREAMS; st++) {
			const struct kice_side *sd = &fs->snap.side[side];
			const struct kice_ep_stream *es = ep->st[st];
			struct fagent *a = fs->ag[e][st];
			bool want = ep->used && ep->ice && es->present && !es->disabled
						&& sd->port[st] && sd->ice_mode == KICE_ICE_FORCE
						&& sd->ufrag[0] && fs->snap.state != KICE_SESS_DELETED;

			if(!want) {
				agent_free(f, fs, e, st);
				continue;
			}
			if(a && (a->ep_gen != ep->ice_gen || a->side_gen != sd->ice_gen)) {
				/* RFC 8445 §9: ICE restart */
				if(kice_ice_restart(&a->ice, sd->ufrag, sd->pwd, ep->ufrag,
						   ep->pwd)
						< 0) {
					agent_free(f, fs, e, st);
					a = NULL;
				} else {
					a->ep_gen = ep->ice_gen;
					a->side_gen = sd->ice_gen;
					a->nadded = 0;
				}
			}
			if(a == NULL) {
				a = fs->ag[e][st] = agent_new(f, fs, e, st);
				if(a == NULL)
					continue;
			}
			agent_add_remotes(a, es);
		}
	}
}

static struct fsess *fs_get(struct fwd *f, const struct kice_fwd_msg *m)
{
	struct fsess *fs = fs_find(f, m->id);
	int e, k;

	if(fs)
		return fs;
	fs = calloc(1, sizeof(*fs));
	if(fs == NULL)
		return NULL;
	fs->s = m->s;
	fs->id = m->id;
	/* until its first snapshot: nothing known, nothing written to shm */
	for(e = 0; e < NEPS; e++)
		for(k = 0; k < KICE_MAX_STREAMS; k++) {
			fs->w[e][k] = &f->scratch;
			fs->snap.caller.st[k] = (struct kice_ep_stream *)&kice_ep_stream_none;
		}
	for(e = 0; e < KICE_MAX_CALLEES; e++)
		fs->snap.callee[e] = (struct kice_endpoint *)&ep_none;
	for(e = 0; e < 2; e++)
		for(k = 0; k < KICE_MAX_STREAMS; k++)
			fs->snap.side[e].sdes[k] = (struct kice_sdes *)&sdes_none;
	fs->next = f->hash[m->id % 1024];
	f->hash[m->id % 1024] = fs;
	return fs;
}

static struct route *route_of(struct fwd *f, uint16_t port)
{
	uint32_t k;

	if(port < f->t->ports->min)
		return NULL;
	k = (uint32_t)(port - f->t->ports->min);
	return k < f->nroutes ? &f->routes[k] : NULL;
}

/* The outcome of one relayed send (sendmmsg or io_uring), counted on the
 * recipient's stream (cnt; NULL once its session is gone) and the
 * forwarder's totals. */
static void sent(struct fwd *f, struct kice_counters *cnt, size_t len, bool ok)
{
	struct kice_fwd_shared *sh = &f->t->fwd[f->cfg->idx];

	if(ok) {
		if(cnt) {
			cnt->pkts_out++;
			cnt->bytes_out += len;
		}
		sh->pkts_relayed++;
		sh->bytes_relayed += len;
	} else {
		if(cnt)
			cnt->dropped++;
		sh->pkts_dropped++;
	}
}

/* ---- io_uring ---- */

/* Submit what is queued now (not in the round's wait): the wait must then
 * not count on those sends' completions, it may have taken them already */
static void uring_submit(struct fwd *f)
{
	io_uring_submit(&f->u->ring);
	f->u->nsend = 0;
}

/* a free submission entry (submitting what is queued if the ring is full) */
static struct io_uring_sqe *uring_sqe(struct fwd *f)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&f->u->ring);

	if(sqe == NULL) {
		uring_submit(f);
		sqe = io_uring_get_sqe(&f->u->ring);
	}
	return sqe;
}

static void uring_recycle(struct fwd *f, unsigned bid)
{
	struct uring *u = f->u;

	u->us[bid].busy = false;
	io_uring_buf_ring_add(u->br, u->bufs + (size_t)bid * URING_BUF_SZ,
			URING_BUF_SZ, (unsigned short)bid,
			io_uring_buf_ring_mask(URING_BUFS), (int)u->recycled++);
}

/* (re)start the multishot receive of route ri */
static void uring_arm(struct fwd *f, uint32_t ri)
{
	struct route *r = &f->routes[ri];
	struct io_uring_sqe *sqe;

	if(r->fd < 0 || (sqe = uring_sqe(f)) == NULL)
		return;
	io_uring_prep_recvmsg_multishot(sqe, r->fd, &f->u->rx_mh, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = URING_BGID;
	io_uring_sqe_set_data64(sqe, UD(UD_RECV, r->gen, ri));
}

/* Stop the receive of route ri before closing its socket: the request
 * holds the socket (and its port) until it is cancelled. By user_data,
 * which the kernel finds in a hash table (by fd it scans every request). */
static void uring_cancel(struct fwd *f, uint32_t ri)
{
	struct io_uring_sqe *sqe = uring_sqe(f);

	if(sqe == NULL)
		return;
	io_uring_prep_cancel64(sqe, UD(UD_RECV, f->routes[ri].gen, ri), 0);
	io_uring_sqe_set_data64(sqe, UD(UD_OTHER, 0, 0));
	uring_submit(f);
}

/* Free everything of uring_setup() (u may be half made). */
static void uring_free(struct uring *u)
{
	if(u == NULL)
		return;
	if(u->ring.ring_fd > 0)
		io_uring_queue_exit(&u->ring);
	if(u->br && u->br != MAP_FAILED)
		munmap(u->br, URING_BUFS * sizeof(struct io_uring_buf));
	if(u->bufs && u->bufs != MAP_FAILED)
		munmap(u->bufs, (size_t)URING_BUFS * URING_BUF_SZ);
	free(u->us);
	free(u->rearm);
	free(u->cs);
	free(u);
}

/* Does this kernel (and its seccomp policy) let us: a ring, a buffer ring,
 * multishot recvmsg, cancel by fd? One datagram over loopback tells. */
static bool uring_works(struct fwd *f)
{
	struct uring *u = f->u;
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts = {1, 0};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), ok = 0;
	uint8_t b = 0x55;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if(fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0
			|| getsockname(fd, (struct sockaddr *)&a, &al) < 0)
		goto out;
	f->routes[0].fd = fd; /* borrowed for the test */
	uring_arm(f, 0);
	io_uring_submit(&u->ring);
	if(sendto(fd, &b, 1, 0, (struct sockaddr *)&a, al) != 1)
		goto out;
	if(io_uring_wait_cqe_timeout(&u->ring, &cqe, &ts) == 0) {
		ok = UD_KIND(cqe->user_data) == UD_RECV && cqe->res > 0
			 && (cqe->flags & IORING_CQE_F_BUFFER);
		if(cqe->flags & IORING_CQE_F_BUFFER)
			uring_recycle(f, cqe->flags >> IORING_CQE_BUFFER_SHIFT);
		io_uring_cqe_seen(&u->ring, cqe);
	}
	uring_cancel(f, 0);
	/* the cancel, and the receive ending: both complete now */
	while(io_uring_wait_cqe_timeout(&u->ring, &cqe, &ts) == 0) {
		if(cqe->flags & IORING_CQE_F_BUFFER)
			uring_recycle(f, cqe->flags >> IORING_CQE_BUFFER_SHIFT);
		if(UD_KIND(cqe->user_data) == UD_OTHER && cqe->res < 0)
			ok = 0; /* the receive was not found: not multishot */
		io_uring_cqe_seen(&u->ring, cqe);
		ts.tv_sec = 0;
		ts.tv_nsec = 50000000;
	}
	io_uring_buf_ring_advance(u->br, (int)u->recycled);
	u->recycled = 0;
out:
	f->routes[0].fd = -1;
	f->routes[0].gen++;
	if(fd >= 0)
		close(fd);
	return ok != 0;
}

static void uring_arm_ctl(struct fwd *f)
{
	struct io_uring_sqe *sqe = uring_sqe(f);

	if(sqe == NULL)
		return;
	io_uring_prep_poll_multishot(sqe, f->cfg->ctl_fd, POLLIN);
	io_uring_sqe_set_data64(sqe, UD(UD_CTL, 0, 0));
}

/* 0, or -errno: the forwarder then uses epoll */
static int uring_setup(struct fwd *f)
{
	struct io_uring_params p;
	struct io_uring_buf_reg reg;
	struct uring *u;
	unsigned cq = 4096;
	int rc;

	u = f->u = calloc(1, sizeof(*u));
	if(u == NULL)
		return -ENOMEM;
	/* a receive and a send completion per buffer can be pending, plus the
	 * end of each multishot receive; beyond that the kernel keeps them on
	 * its overflow list, slower but not lost */
	while(cq < 2u * URING_BUFS + f->nroutes && cq < 65536)
		cq *= 2;
	memset(&p, 0, sizeof(p));
	p.cq_entries = cq;
	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP
			  | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER
			  | IORING_SETUP_DEFER_TASKRUN;
	rc = io_uring_queue_init_params(2048, &u->ring, &p);
	if(rc == -EINVAL) { /* DEFER_TASKRUN is Linux 6.1+ */
		p.flags &= ~(IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER
					 | IORING_SETUP_DEFER_TASKRUN);
		rc = io_uring_queue_init_params(2048, &u->ring, &p);
	}
	if(rc < 0) {
		u->ring.ring_fd = -1;
		goto fail;
	}
	rc = -ENOTSUP;
	if(!(p.features & IORING_FEAT_EXT_ARG))
		goto fail; /* waits with a timeout would cost a request each */
	u->br = mmap(NULL, URING_BUFS * sizeof(struct io_uring_buf),
			PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	u->bufs = mmap(NULL, (size_t)URING_BUFS * URING_BUF_SZ,
			PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	u->us = calloc(URING_BUFS, sizeof(*u->us));
	u->rearm = calloc(f->nroutes, sizeof(*u->rearm));
	u->cs = calloc(CSENDS, sizeof(*u->cs));
	rc = -ENOMEM;
	if(u->br == MAP_FAILED || u->bufs == MAP_FAILED || u->us == NULL
			|| u->rearm == NULL || u->cs == NULL)
		goto fail;
	for(u->ncfree = 0; u->ncfree < CSENDS; u->ncfree++)
		u->cfree[u->ncfree] = (uint16_t)(CSENDS - 1 - u->ncfree);
	io_uring_buf_ring_init(u->br);
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (unsigned long)u->br;
	reg.ring_entries = URING_BUFS;
	reg.bgid = URING_BGID;
	rc = io_uring_register_buf_ring(&u->ring, &reg, 0);
	if(rc < 0)
		goto fail;
	for(unsigned i = 0; i < URING_BUFS; i++)
		uring_recycle(f, i);
	io_uring_buf_ring_advance(u->br, (int)u->recycled);
	u->recycled = 0;
	u->rx_mh.msg_namelen = sizeof(struct sockaddr_storage);
	u->cur_bid = -1;
	rc = -ENOTSUP;
	if(!uring_works(f))
		goto fail;
	uring_arm_ctl(f);
	io_uring_submit(&u->ring);
	return 0;
fail:
	uring_free(u);
	f->u = NULL;
	return rc;
}

/* point mh at one buffer and its destination (dst already filled) */
static void msg_one(struct msghdr *mh, struct iovec *iov, void *buf,
		size_t len, struct sockaddr_storage *dst, socklen_t dlen)
{
	iov->iov_base = buf;
	iov->iov_len = len;
	memset(mh, 0, sizeof(*mh));
	mh->msg_name = dst;
	mh->msg_namelen = dlen;
	mh->msg_iov = iov;
	mh->msg_iovlen = 1;
}

/* queue pkt (in the buffer being relayed) as a send; false: not ours */
static bool uring_send(struct fwd *f, int fd, const uint8_t *pkt, size_t len,
		const struct kice_addr *to, struct kice_counters *cnt,
		struct fsess *fs)
{
	struct uring *u = f->u;
	struct io_uring_sqe *sqe;
	struct usend *us;

	if(u == NULL || u->cur_bid < 0 || u->cur_sent)
		return false;
	sqe = uring_sqe(f);
	if(sqe == NULL)
		return false;
	us = &u->us[u->cur_bid];
	msg_one(&us->mh, &us->iov, (void *)pkt, len, &us->dst,
			kice_addr_to_sa(to, &us->dst));
	us->cnt = cnt;
	us->fs = fs;
	us->busy = true;
	if(fs)
		fs->inflight++;
	/* MSG_DONTWAIT: a full socket buffer drops, as sendmmsg does */
	io_uring_prep_sendmsg(sqe, fd, &us->mh, MSG_DONTWAIT);
	io_uring_sqe_set_data64(sqe, UD(UD_SEND, 0, (uint32_t)u->cur_bid));
	u->cur_sent = true;
	u->nsend++;
	return true;
}

/* Queue a control-path packet as a send of this loop round (submitted
 * with the round's wait, no system call of its own); false: no io_uring
 * or no free slot, the caller sends it itself. */
static bool uring_csend(struct fwd *f, int fd, const uint8_t *pkt, size_t len,
		const struct sockaddr_storage *ss, socklen_t sl)
{
	struct uring *u = f->u;
	struct io_uring_sqe *sqe;
	struct csend *c;
	unsigned i;

	if(u == NULL || u->ncfree == 0 || len > PKT_MAX)
		return false;
	sqe = uring_sqe(f);
	if(sqe == NULL)
		return false;
	i = u->cfree[--u->ncfree];
	c = &u->cs[i];
	memcpy(c->buf, pkt, len);
	memcpy(&c->dst, ss, sl);
	msg_one(&c->mh, &c->iov, c->buf, len, &c->dst, sl);
	io_uring_prep_sendmsg(sqe, fd, &c->mh, MSG_DONTWAIT);
	io_uring_sqe_set_data64(sqe, UD(UD_CSEND, 0, i));
	u->nsend++;
	return true;
}

static void uring_on_csend(struct fwd *f, const struct io_uring_cqe *cqe)
{
	struct uring *u = f->u;
	uint32_t i = UD_IDX(cqe->user_data);

	if(cqe->res < 0)
		KICE_DBG("forwarder: control send failed: %s", strerror(-cqe->res));
	if(i < CSENDS && u->ncfree < CSENDS)
		u->cfree[u->ncfree++] = (uint16_t)i;
}

/* sends still in flight must not count into a freed session */
static void uring_forget(struct fwd *f, struct fsess *fs)
{
	unsigned i;

	if(f->u == NULL)
		return;
	for(i = 0; i < URING_BUFS; i++)
		if(f->u->us[i].busy && f->u->us[i].fs == fs) {
			f->u->us[i].cnt = NULL;
			f->u->us[i].fs = NULL;
		}
}

static void route_close(struct fwd *f, uint16_t port)
{
	struct route *r = route_of(f, port);

	if(r == NULL || r->fd < 0)
		return;
	if(f->u)
		uring_cancel(f, (uint32_t)(r - f->routes));
	else
		epoll_ctl(f->ep, EPOLL_CTL_DEL, r->fd, NULL);
	close(r->fd);
	r->fd = -1;
	r->fs = NULL;
	r->gen++;
}

/* a socket for a held pair's port that this forwarder has no usable
 * socket for: one it held on another interface (closed first), or one it
 * no longer has (it restarted in a test); the SDP already names the port */
static int rebind(struct fwd *f, uint16_t port, unsigned iface)
{
	if(f->cfg->ifaces == NULL || iface >= f->cfg->nifaces)
		return -EINVAL;
	return bind_one(&f->cfg->ifaces[iface], port, f->cfg->tos);
}

static void route_arm(struct fwd *f, struct route *r, uint16_t port)
{
	struct epoll_event ev;

	if(f->u) {
		uring_arm(f, (uint32_t)(port - f->t->ports->min));
		return;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u32 = (uint32_t)(port - f->t->ports->min);
	if(epoll_ctl(f->ep, EPOLL_CTL_ADD, r->fd, &ev) < 0)
		KICE_ERR("forwarder: epoll add port %u: %s", port, strerror(errno));
}

/* take pair k of an UPDATE: its two sockets (fds, or the ones this
 * forwarder holds open for a held pair) become routes of fs */
static void on_pair(struct fwd *f, struct fsess *fs, const struct kice_fwd_msg *m,
		unsigned k, const int *fds)
{
	uint16_t port = m->pair[k].port;
	bool held = m->pair[k].held;
	struct route *r;
	int c;

	if(fs == NULL || fs->nports >= 2 * KICE_MAX_STREAMS || (port & 1)
			|| m->pair[k].side > 1 || m->pair[k].stream >= KICE_MAX_STREAMS
			|| route_of(f, port) == NULL
			|| route_of(f, (uint16_t)(port + 1)) == NULL) {
		KICE_ERR("forwarder: cannot take ports %u for session %u", port, m->id);
		if(!held) {
			close(fds[0]);
			close(fds[1]);
		} else {
			/* still ours and free: back to the list */
			kice_ports_release_pair(f->t->ports, port);
		}
		return;
	}
	fs->ports[fs->nports++] = port;
	for(c = 0; c < 2; c++) {
		uint16_t pc = (uint16_t)(port + c);
		bool open_ = false;

		r = route_of(f, pc);
		if(held && r->fd >= 0 && r->fs == NULL && r->iface == m->pair[k].iface) {
			open_ = true; /* its receive is still armed */
		} else if(r->fd >= 0) {
			route_close(f, pc);
		}
		if(!open_) {
			r->fd = held ? rebind(f, pc, m->pair[k].iface) : fds[c];
			if(r->fd < 0) {
				KICE_ERR("forwarder: session %u: port %u has no socket: %s",
						m->id, pc, strerror(-r->fd));
				r->fd = -1;
				continue;
			}
		}
		r->fs = fs;
		r->side = m->pair[k].side;
		r->stream = m->pair[k].stream;
		r->comp = (uint8_t)c;
		r->iface = m->pair[k].iface;
		if(!open_)
			route_arm(f, r, pc);
	}
}

/* one control message with the nfds descriptors it carried */
static void on_ctl(struct fwd *f, const struct kice_fwd_msg *m, size_t len,
		const int *fds, int nfds)
{
	struct fsess *fs;
	unsigned k;
	int i, want = 0;

	/* descriptors come with the pairs not held (kice_fwd_add_ports) */
	if(len == sizeof(*m) && m->type == KICE_FWD_UPDATE
			&& m->npairs <= KICE_FWD_MAX_PAIRS)
		for(k = 0; k < m->npairs; k++)
			want += m->pair[k].held ? 0 : 2;
	if(len != sizeof(*m) || nfds < 0
			|| (m->type == KICE_FWD_UPDATE
					&& (m->npairs > KICE_FWD_MAX_PAIRS || nfds != want))
			|| (m->type != KICE_FWD_UPDATE && nfds != 0)) {
		KICE_ERR("forwarder: malformed control message (%zu bytes, %d fds)",
				len, nfds);
		for(i = 0; i < nfds; i++)
			close(fds[i]);
		return;
	}
	switch(m->type) {
		case KICE_FWD_UPDATE:
			/* the first ports of a session make it known here */
			fs = m->npairs ? fs_get(f, m) : fs_find(f, m->id);
			for(k = 0, i = 0; k < m->npairs; k++) {
				on_pair(f, fs, m, k, fds + i);
				i += m->pair[k].held ? 0 : 2;
			}
			if(fs)
				fs_snapshot(f, fs);
			break;
		case KICE_FWD_KICK:
			f->kicked = true;
			break;
		default:
			KICE_ERR("forwarder: unknown control message %u", m->type);
			break;
	}
}

#define CTL_BATCH 16
#define CTL_FDS (2 * KICE_FWD_MAX_PAIRS)

/* Read every queued control message, CTL_BATCH per system call; a short
 * batch means the queue is empty (no extra call to learn EAGAIN). */
static void drain_ctl(struct fwd *f)
{
	static struct kice_fwd_msg m[CTL_BATCH];
	static struct mmsghdr mh[CTL_BATCH];
	static struct iovec iov[CTL_BATCH];
	static union
	{
		char buf[CMSG_SPACE(CTL_FDS * sizeof(int))];
		struct cmsghdr align;
	} u[CTL_BATCH];
	struct cmsghdr *c;
	int fds[CTL_FDS], nfds, n, i, j;
	bool bad;

	do {
		for(i = 0; i < CTL_BATCH; i++) {
			memset(&mh[i], 0, sizeof(mh[i]));
			iov[i].iov_base = &m[i];
			iov[i].iov_len = sizeof(m[i]);
			mh[i].msg_hdr.msg_iov = &iov[i];
			mh[i].msg_hdr.msg_iovlen = 1;
			mh[i].msg_hdr.msg_control = u[i].buf;
			mh[i].msg_hdr.msg_controllen = sizeof(u[i].buf);
		}
		n = recvmmsg(f->cfg->ctl_fd, mh, CTL_BATCH, MSG_CMSG_CLOEXEC, NULL);
		if(n < 0) {
			if(errno == EINTR)
				continue;
			return;
		}
		for(i = 0; i < n; i++) {
			struct msghdr *h = &mh[i].msg_hdr;

			nfds = 0;
			bad = (h->msg_flags & MSG_CTRUNC) != 0; /* the kernel dropped some */
			for(c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
				int k;
				if(c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
					continue;
				k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
				for(j = 0; j < k; j++) {
					int fd;
					memcpy(&fd, CMSG_DATA(c) + j * sizeof(int), sizeof(int));
					if(nfds < CTL_FDS) {
						fds[nfds++] = fd;
					} else {
						close(fd);
						bad = true;
					}
				}
			}
			if(bad) {
				for(j = 0; j < nfds; j++)
					close(fds[j]);
				nfds = -1;
			}
			on_ctl(f, &m[i], mh[i].msg_len, fds, nfds);
		}
	} while(n == CTL_BATCH);
}

/* the session of pair `port` ended: keep its sockets open for the next
 * session (their receives stay armed and drop what comes meanwhile), or
 * close them; then the pair goes back to the pool */
static void route_free(struct fwd *f, uint16_t port)
{
	struct route *r0 = route_of(f, port), *r1 = route_of(f, (uint16_t)(port + 1));

	if(r0 && r1 && r0->fd >= 0 && r1->fd >= 0 && !f->cfg->no_socket_reuse
			&& r0->iface == r1->iface
			&& kice_ports_release_kept(
					f->t->ports, port, f->cfg->idx, r0->iface)) {
		r0->fs = r1->fs = NULL;
		return;
	}
	route_close(f, port);
	route_close(f, (uint16_t)(port + 1));
	kice_ports_release_closed(f->t->ports, port);
}

static void fs_free(struct fwd *f, struct fsess *fs)
{
	struct fsess **pp;
	unsigned i;
	int e, st;

	for(e = 0; e < NEPS; e++)
		for(st = 0; st < KICE_MAX_STREAMS; st++)
			agent_free(f, fs, e, st);
	for(st = 0; st < KICE_MAX_STREAMS; st++)
		free(fs->tr[st]);
	for(e = 0; e < NEPS; e++)
		for(st = 0; st < KICE_MAX_STREAMS; st++)
			crypto_free(f, fs, e, st);
	fs->nagents = fs->ncrypto = 0;
	timed_update(f, fs);
	if(fs->inflight)
		uring_forget(f, fs);
	for(i = 0; i < fs->nports; i++)
		route_free(f, fs->ports[i]);
	for(pp = &f->hash[fs->id % 1024]; *pp; pp = &(*pp)->next)
		if(*pp == fs) {
			*pp = fs->next;
			break;
		}
	/* the copies hold SDES keys and ICE passwords */
	for(e = 0; e < NEPS; e++)
		for(st = 0; st < KICE_MAX_STREAMS; st++)
			if(fs->pst[e][st]) {
				OPENSSL_cleanse(fs->pst[e][st], sizeof(*fs->pst[e][st]));
				free(fs->pst[e][st]);
			}
	for(i = 0; i < KICE_MAX_CALLEES; i++)
		if(fs->pep[i]) {
			OPENSSL_cleanse(fs->pep[i], sizeof(*fs->pep[i]));
			free(fs->pep[i]);
		}
	for(e = 0; e < 2; e++)
		for(st = 0; st < KICE_MAX_STREAMS; st++)
			if(fs->psdes[e][st]) {
				OPENSSL_cleanse(fs->psdes[e][st], sizeof(*fs->psdes[e][st]));
				free(fs->psdes[e][st]);
			}
	OPENSSL_cleanse(&fs->snap, sizeof(fs->snap));
	free(fs);
}

/* Free the sessions queued on the dead list: take the list first, then
 * drain the control socket (every message about them was sent before they
 * were queued), then close and free. */
static void reap(struct fwd *f)
{
	struct kice_fwd_shared *sh = &f->t->fwd[f->cfg->idx];
	struct kice_session *dead, *n;
	struct fsess *fs;

	pthread_mutex_lock(&sh->lock);
	dead = sh->dead;
	sh->dead = NULL;
	pthread_mutex_unlock(&sh->lock);
	if(dead == NULL)
		return;
	drain_ctl(f);
	for(; dead; dead = n) {
		n = dead->next_dead;
		fs = fs_find(f, dead->id);
		if(fs) /* NULL: it never bound a port, nothing of ours to close */
			fs_free(f, fs);
		KICE_DBG("forwarder: session %u freed", dead->id);
		kice_session_free(f->t, dead);
	}
}

static uint64_t since(uint64_t now, uint64_t t)
{
	return now > t ? now - t : 0;
}

static void expire(struct fwd *f)
{
	struct fsess *fs;
	struct kice_session *s;
	uint32_t i;
	uint64_t idle, age;

	for(i = 0; i < 1024; i++)
		for(fs = f->hash[i]; fs; fs = fs->next) {
			s = fs->s;
			/* stamps written by other processes may be a little newer
			 * than our loop's clock: no wrap-around */
			idle = since(f->now, __atomic_load_n(&s->last_media_ms,
										 __ATOMIC_RELAXED));
			age = since(f->now, fs->snap.last_signal_ms);
			if(fs->snap.state == KICE_SESS_DELETED)
				continue;
			/* mode relay: media may flow peer-to-peer, never through us;
			 * only signalling and session_timeout end such a session */
			if(fs->snap.side[0].ice_mode == KICE_ICE_RELAY
					&& fs->snap.side[1].ice_mode == KICE_ICE_RELAY)
				idle = 0;
			if(!((f->cfg->media_timeout_s
						 && idle > f->cfg->media_timeout_s * 1000ull
						 && age > f->cfg->media_timeout_s * 1000ull)
					   || (f->cfg->session_timeout_s
							   && since(f->now, fs->snap.created_mono_ms)
										  > f->cfg->session_timeout_s
													* 1000ull)))
				continue;
			kice_bucket_lock(f->t, s->hash);
			if(s->state != KICE_SESS_DELETED) {
				KICE_INFO("session %u (%.*s) timed out after %llu ms without "
						  "media",
						s->id, (int)s->callid_len, s->callid,
						(unsigned long long)idle);
				kice_session_unlink(f->t, s);
			}
			fs->snap.state = KICE_SESS_DELETED;
			kice_bucket_unlock(f->t, s->hash);
		}
}

/* publish an agent's state for RPC and statistics */
static void ice_mirror(struct fwd *f, struct fagent *a)
{
	struct kice_ep_stream *es = a->fs->w[a->e][a->stream];
	const struct kice_ice_stats *st = kice_ice_stats(&a->ice);
	struct kice_fwd_shared *sh = &f->t->fwd[f->cfg->idx];
	int state = (int)kice_ice_state(&a->ice);
	const struct kice_addr *sel;
	uint8_t c;

	es->ice_state = (uint8_t)(state + 1);
	es->ice_checks_sent = st->checks_sent;
	es->ice_checks_recv = st->checks_recv;
	es->ice_auth_fail = st->auth_failures;
	for(c = 0; c < 2; c++) {
		sel = kice_ice_selected(&a->ice, (uint8_t)(c + 1), NULL);
		if(sel)
			es->selected[c] = *sel;
		else
			memset(&es->selected[c], 0, sizeof(es->selected[c]));
	}
	if(state != a->last_state) {
		if(state == KICE_ICE_COMPLETED)
			sh->ice_successes++;
		else if(state == KICE_ICE_FAILED)
			sh->ice_failures++;
		if(a->last_state >= 0 || state != KICE_ICE_NEW)
			KICE_DBG("session %u: ICE m-line %u toward %s: %s", a->fs->id,
					a->stream, a->side ? "callee" : "caller",
					kice_ice_state_name((enum kice_ice_state)state));
		a->last_state = state;
	}
}

static void ice_tick_all(struct fwd *f)
{
	uint64_t now_us = f->now * 1000u;
	struct fsess *fs;
	struct fagent *a;
	int e, st;

	for(fs = f->timed; fs; fs = fs->tnext)
		for(e = 0; e < NEPS; e++)
			for(st = 0; st < KICE_MAX_STREAMS; st++) {
				a = fs->ag[e][st];
				/* only agents with a timer due do any work */
				if(a && a->due_us <= now_us) {
					kice_ice_tick(&a->ice, now_us);
					agent_due(a);
					ice_mirror(f, a);
				}
				if(fs->cr[e][st])
					crypto_tick(f, fs->cr[e][st]);
			}
}

/* STUN on a relay port: the agent toward the endpoint that sent it */
static void on_stun(struct fwd *f, struct route *r, const struct kice_addr *src,
		const uint8_t *pkt, size_t len)
{
	struct fsess *fs = r->fs;
	struct kice_fwd_shared *sh = &f->t->fwd[f->cfg->idx];
	struct fagent *a = NULL, *tried = NULL;
	int e, rc = -ENOENT;

	sh->stun_requests++;
	for(e = r->side == 0 ? 0 : 1; e < (r->side == 0 ? 1 : NEPS); e++) {
		a = fs->ag[e][r->stream];
		if(a == NULL)
			continue;
		tried = a;
		rc = kice_ice_input(&a->ice, f->now * 1000u, r->comp, src, pkt, len);
		agent_due(a);
		if(rc != -EACCES)
			break;
	}
	if(tried)
		ice_mirror(f, rc == -EACCES || a == NULL ? tried : a);
	if(rc == -EACCES)
		sh->stun_auth_failures++;
	if(rc < 0 || rc == 0)
		sh->pkts_dropped++;
}

static void out_flush(struct fwd *f)
{
	unsigned i = 0, j, k;
	int n;

	while(i < f->on) {
		for(j = i; j < f->on && f->ofd[j] == f->ofd[i]; j++)
			;
		n = sendmmsg(f->ofd[i], &f->omsgs[i], j - i, MSG_DONTWAIT);
		if(n < 0)
			n = 0;
		for(k = i; k < j; k++)
			sent(f, f->ocnt[k], f->oiov[k].iov_len, k < i + (unsigned)n);
		i = j;
	}
	f->on = 0;
}

/* queue pkt (borrowed until the flush: it lives in f->buf) for sending */
static void out_queue(struct fwd *f, struct fsess *fs, int fd,
		const uint8_t *pkt, size_t len, const struct kice_addr *to,
		struct kice_counters *cnt)
{
	unsigned k;

	if(f->u) {
		/* pkt lives in a ring buffer that goes back to the kernel unless
		 * a send holds it: no sendmmsg batch for it */
		if(!uring_send(f, fd, pkt, len, to, cnt, fs))
			sent(f, cnt, len, false);
		return;
	}
	if(f->on == BATCH)
		out_flush(f);
	k = f->on++;
	f->ofd[k] = fd;
	f->ocnt[k] = cnt;
	msg_one(&f->omsgs[k].msg_hdr, &f->oiov[k], (void *)pkt, len, &f->odst[k],
			kice_addr_to_sa(to, &f->odst[k]));
}

static void count(struct kice_counters *c, bool in, size_t len)
{
	if(in) {
		c->pkts_in++;
		c->bytes_in += len;
	} else {
		c->pkts_out++;
		c->bytes_out += len;
	}
}

/* mode relay on both sides of an m-line whose endpoints both do ICE */
static bool transparent(const struct fsess *fs, int st,
		const struct kice_endpoint **caller, const struct kice_endpoint **callee)
{
	const struct kice_session *sn = &fs->snap;
	int ai = sn->active_callee;

	if(sn->side[0].ice_mode != KICE_ICE_RELAY
			|| sn->side[1].ice_mode != KICE_ICE_RELAY || ai >= KICE_MAX_CALLEES)
		return false;
	*caller = &sn->caller;
	*callee = sn->callee[ai];
	return sn->caller.ice && sn->callee[ai]->used && sn->callee[ai]->ice
		   && sn->caller.st[st]->present && sn->callee[ai]->st[st]->present;
}


/*
 * Mode relay: carry checks and media between the legs like a TURN server
 * carries them for its client, so that each endpoint's agent checks the
 * whole path. Checks are verified with the answering endpoint's password
 * (the relay knows both from the SDP); media is accepted only from an
 * address whose check the far endpoint answered successfully, and sent
 * only to such an address.
 */
static void relay_transparent(struct fwd *f, struct route *r,
		const struct kice_addr *src, const uint8_t *pkt, size_t len,
		enum kice_pkt_kind kind, const struct kice_endpoint *eps[2])
{
	struct fsess *fs = r->fs;
	struct kice_fwd_shared *sh = &f->t->fwd[f->cfg->idx];
	int S = r->side, D = 1 - S, c = r->comp, i = r->stream, k;
	/* the shm streams of sender and recipient (forwarder-written fields) */
	struct kice_ep_stream *sndm = fs->w[ep_idx(S, fs->snap.active_callee)][i];
	struct kice_ep_stream *dstm = fs->w[ep_idx(D, fs->snap.active_callee)][i];
	struct tstream *ts = fs->tr[i];
	struct kice_stun_msg m;
	const struct kice_addr *to;
	const char *pwd;
	unsigned cls;

	if(ts == NULL) {
		ts = fs->tr[i] = calloc(1, sizeof(*ts));
		if(ts == NULL)
			goto drop;
	}
	if(kind == KICE_PKT_STUN) {
		sh->stun_requests++;
		if(kice_stun_parse(&m, pkt, len) < 0)
			goto drop;
		cls = kice_stun_class(m.type);
		if(cls == KICE_STUN_CLASS_INDICATION) {
			to = ts->learned[D][c].af ? &ts->learned[D][c]
									  : &eps[D]->st[i]->sdp[c];
			if(to->af)
				send_from(f, fs, D, i, c, to, pkt, len);
			return;
		}
		/* a request is keyed with its recipient's password, a response
		 * with its sender's (RFC 8445 §7.2.2, §7.3.1) */
		pwd = cls == KICE_STUN_CLASS_REQUEST ? eps[D]->pwd : eps[S]->pwd;
		if(kice_stun_check_integrity(&m, (const uint8_t *)pwd, strlen(pwd))
						!= 0
				|| kice_stun_check_fingerprint(&m) == -EACCES) {
			sh->stun_auth_failures++;
			sndm->ice_auth_fail++;
			goto drop;
		}
		if(cls == KICE_STUN_CLASS_REQUEST) {
			ts->learned[S][c] = *src;
			k = (int)(ts->next++ % TPEND);
			ts->pend[k].used = true;
			ts->pend[k].side = (uint8_t)S;
			ts->pend[k].comp = (uint8_t)c;
			memcpy(ts->pend[k].tid, m.tid, KICE_STUN_TID_LEN);
			ts->pend[k].src = *src;
			sndm->ice_checks_sent++;
			to = ts->learned[D][c].af ? &ts->learned[D][c]
									  : &eps[D]->st[i]->sdp[c];
			if(to->af == 0 || to->port == 0)
				goto drop;
			send_from(f, fs, D, i, c, to, pkt, len);
			return;
		}
		/* a response from S to a check that D's endpoint sent */
		ts->learned[S][c] = *src;
		for(k = 0; k < TPEND; k++)
			if(ts->pend[k].used && ts->pend[k].side == D
					&& memcmp(ts->pend[k].tid, m.tid, KICE_STUN_TID_LEN) == 0)
				break;
		if(k == TPEND)
			goto drop;
		ts->pend[k].used = false;
		if(cls == KICE_STUN_CLASS_SUCCESS) {
			ts->valid[D][ts->pend[k].comp] = ts->pend[k].src;
			dstm->latched[ts->pend[k].comp] = ts->pend[k].src;
			sndm->ice_checks_recv++;
		}
		send_from(f, fs, D, i, ts->pend[k].comp, &ts->pend[k].src, pkt, len);
		return;
	}
	if(kind != KICE_PKT_RTP && kind != KICE_PKT_RTCP)
		goto drop;
	if(!kice_addr_eq(&ts->valid[S][c], src))
		goto drop; /* not validated by the far end: no latching */
	count(&sndm->cnt[c], true, len);
	__atomic_store_n(&fs->s->last_media_ms, f->now, __ATOMIC_RELAXED);
	to = &ts->valid[D][c];
	if(to->af == 0)
		goto drop;
	{
		uint16_t port = fs->snap.side[D].port[i];
		struct route *out = port ? route_of(f, (uint16_t)(port + c)) : NULL;
		if(out == NULL || out->fd < 0)
			goto drop;
		out_queue(f, fs, out->fd, pkt, len, to, &dstm->cnt[c]);
	}
	return;
drop:
	sh->pkts_dropped++;
	sndm->cnt[c].dropped++;
}

/* the endpoint (index, see ep_idx) of the route's side that sent from
 * src (latching), or -1 */
static int sender_ep(struct fsess *fs, const struct route *r,
		const struct kice_addr *src)
{
	int i;

	if(r->side == 0)
		return fs->snap.caller.used ? 0 : -1;
	/* forked early media: the callee whose latched or SDP address sent it */
	for(i = 0; i < KICE_MAX_CALLEES; i++) {
		if(!fs->snap.callee[i]->used)
			continue;
		if(kice_addr_eq(&fs->w[1 + i][r->stream]->latched[r->comp], src)
				|| kice_addr_eq(&fs->snap.callee[i]->st[r->stream]->sdp[r->comp],
						src))
			return 1 + i;
	}
	i = fs->snap.active_callee;
	if(i < KICE_MAX_CALLEES && fs->snap.callee[i]->used)
		return 1 + i;
	return -1;
}


static void relay_one(struct fwd *f, struct route *r, const uint8_t *pkt,
		size_t len, const struct sockaddr *sa)
{
	struct fsess *fs = r->fs;
	struct kice_session *s = fs->s;
	struct kice_fwd_shared *sh = &f->t->fwd[f->cfg->idx];
	const struct kice_endpoint *snd_snap, *dst_snap;
	struct kice_ep_stream *dst;
	struct kice_addr src, *lat, to;
	struct kice_ep_stream *st;
	struct kice_counters *cnt = NULL;
	struct route *out;
	enum kice_pkt_kind kind;
	struct fagent *sa_, *da;
	int se, dside, dc, ai = 0;
	bool mux;
	uint16_t oport;

	if(fs->snap.state == KICE_SESS_DELETED || !kice_addr_from_sa(&src, sa))
		goto drop;
	/* drops before the sender is known count on the leg's main endpoint */
	if(r->side == 0)
		cnt = &fs->w[0][r->stream]->cnt[r->comp];
	else if(fs->snap.active_callee < KICE_MAX_CALLEES)
		cnt = &fs->w[1 + fs->snap.active_callee][r->stream]->cnt[r->comp];
	kind = kice_pkt_classify(pkt, len);
	{
		const struct kice_endpoint *eps[2];
		if(transparent(fs, r->stream, &eps[0], &eps[1])) {
			relay_transparent(f, r, &src, pkt, len, kind, eps);
			return;
		}
	}
	if(kind == KICE_PKT_STUN) {
		on_stun(f, r, &src, pkt, len);
		return;
	}
	if(kind == KICE_PKT_UNKNOWN)
		goto drop;
	sa_ = NULL;
	se = -1;
	if(fs->nagents) {
		/* an ICE leg: media only from an address a check validated */
		int e, e0 = r->side == 0 ? 0 : 1, e1 = r->side == 0 ? 1 : NEPS;
		for(e = e0; e < e1; e++) {
			struct fagent *a = fs->ag[e][r->stream];
			if(a && kice_ice_source_ok(&a->ice,
							a->ice.cfg.ncomp == 1 ? 1 : (uint8_t)(r->comp + 1),
							&src)) {
				sa_ = a;
				se = e;
				break;
			}
			if(a && r->side == 0)
				goto drop;
		}
	}
	if(se < 0)
		se = sender_ep(fs, r, &src);
	if(se < 0)
		goto drop;
	snd_snap = snap_ep(fs, se);
	if(sa_ == NULL && fs->ag[se][r->stream])
		goto drop; /* ICE leg, unvalidated source */
	st = fs->w[se][r->stream];
	cnt = &st->cnt[r->comp];
	lat = &st->latched[r->comp];
	if(sa_) {
		*lat = src;
	} else if(!kice_addr_eq(lat, &src)) {
		/* symmetric latching: the endpoint's real address is where its
		 * media comes from. A source is learned (first time or anew) only
		 * within the window after an SDP of the call, or if it is the
		 * address the endpoint's SDP gave: a stray packet on an open port
		 * never captures the stream (RTP Bleed). strict-source: never
		 * anew. */
		bool in_window = f->now <= snd_snap->relatch_until_ms;
		bool is_sdp = kice_addr_eq(&snd_snap->st[r->stream]->sdp[r->comp], &src);
		const struct kice_addr *other = &st->latched[1 - r->comp];
		if(lat->af != 0 && snd_snap->strict_source)
			goto drop;
		if(!is_sdp) {
			if(!in_window)
				goto drop;
			/* RTP and RTCP of one endpoint come from one host: once one
			 * component is latched, the other follows only that IP */
			if(other->af != 0 && !kice_addr_eq_ip(other, &src))
				goto drop;
		}
		*lat = src;
		/* the RTP component leads: an RTCP latch from another host (a
		 * stray packet that came first) is forgotten */
		if(r->comp == 0 && st->latched[1].af != 0
				&& !kice_addr_eq_ip(&st->latched[1], &src))
			memset(&st->latched[1], 0, sizeof(st->latched[1]));
	}
	/* the relay's crypto toward the sender: DTLS to its association,
	 * SRTP/SRTCP unprotected in place */
	if(fs->snap.side[r->side].crypto != KICE_CRYPTO_NONE) {
		struct fcrypto *c = fs->cr[se][r->stream];
		size_t n = len;
		int rc;

		if(c == NULL)
			goto drop;
		if(kind == KICE_PKT_DTLS) {
			if(c->dtls) {
				kice_dtls_input(c->dtls, f->now * 1000u, pkt, len);
				crypto_keys(c);
				crypto_mirror(c);
			}
			return;
		}
		if(c->srtp == NULL)
			goto drop;
		rc = kind == KICE_PKT_RTP ? kice_srtp_unprotect(c->srtp, (uint8_t *)pkt, &n)
								  : kice_srtp_unprotect_rtcp(c->srtp, (uint8_t *)pkt, &n);
		if(rc < 0) {
			if(rc == -EACCES)
				sh->srtp_auth_failures++;
			crypto_mirror(c);
			goto drop;
		}
		len = n;
	} else if(kind == KICE_PKT_DTLS
			  && fs->snap.side[1 - r->side].crypto != KICE_CRYPTO_NONE) {
		goto drop; /* DTLS from a leg we do not terminate DTLS on */
	}
	count(cnt, true, len);
	__atomic_store_n(&s->last_media_ms, f->now, __ATOMIC_RELAXED);

	dside = 1 - r->side;
	if(dside == 0) {
		ai = -1;
		dst = fs->w[0][r->stream];
		dst_snap = &fs->snap.caller;
	} else {
		ai = fs->snap.active_callee;
		if(ai >= KICE_MAX_CALLEES || !fs->snap.callee[ai]->used)
			goto drop;
		dst = fs->w[1 + ai][r->stream];
		dst_snap = fs->snap.callee[ai];
	}
	if(!dst_snap->used || !dst_snap->st[r->stream]->present
			|| dst_snap->st[r->stream]->disabled)
		goto drop;
	/* RTCP goes on the RTP port only if the recipient uses rtcp-mux: its SDP
	 * had it and so did ours to it */
	mux = dst_snap->st[r->stream]->rtcp_mux
		  && (fs->snap.side[dside].mux_sent & (1u << r->stream));
	/* by component: what came to an RTCP port goes to the RTCP port */
	dc = ((r->comp == 1 || kind == KICE_PKT_RTCP) && !mux) ? 1 : 0;
	oport = fs->snap.side[dside].port[r->stream];
	da = fs->ag[dside == 0 ? 0 : 1 + ai][r->stream];
	if(da) {
		uint8_t lidx = 0;
		const struct kice_addr *sel = kice_ice_media_path(&da->ice,
				da->ice.cfg.ncomp == 1 ? 1 : (uint8_t)(dc + 1), &lidx);
		if(sel == NULL)
			goto drop; /* not connected (yet), or consent lost */
		to = *sel;
		dc = lidx;
	} else {
		to = dst->latched[dc];
		if(to.af == 0)
			to = dst_snap->st[r->stream]->sdp[dc];
	}
	if(to.af == 0 || to.port == 0 || kice_addr_is_any(&to))
		goto drop;
	out = oport ? route_of(f, (uint16_t)(oport + dc)) : NULL;
	if(out == NULL || out->fd < 0)
		goto drop;
	if(fs->snap.side[dside].crypto != KICE_CRYPTO_NONE) {
		struct fcrypto *c = fs->cr[dside == 0 ? 0 : 1 + ai][r->stream];
		size_t n = len;
		int rc;

		if(c == NULL || c->srtp == NULL || kind == KICE_PKT_DTLS)
			goto drop; /* not keyed yet */
		rc = kind == KICE_PKT_RTP
					 ? kice_srtp_protect(c->srtp, (uint8_t *)pkt, &n, PKT_MAX)
					 : kice_srtp_protect_rtcp(c->srtp, (uint8_t *)pkt, &n, PKT_MAX);
		if(rc < 0)
			goto drop;
		len = n;
	}
	out_queue(f, fs, out->fd, pkt, len, &to, &dst->cnt[dc]);
	return;
drop:
	sh->pkts_dropped++;
	if(cnt)
		cnt->dropped++;
}

static void rx_init(struct fwd *f)
{
	int i;

	for(i = 0; i < BATCH; i++) {
		f->iov[i].iov_base = f->buf[i];
		f->iov[i].iov_len = PKT_MAX;
		memset(&f->msgs[i].msg_hdr, 0, sizeof(f->msgs[i].msg_hdr));
		f->msgs[i].msg_hdr.msg_iov = &f->iov[i];
		f->msgs[i].msg_hdr.msg_iovlen = 1;
		f->msgs[i].msg_hdr.msg_name = &f->src[i];
		f->msgs[i].msg_hdr.msg_namelen = sizeof(f->src[i]);
	}
}

static void on_media(struct fwd *f, struct route *r)
{
	int n, i;

	n = recvmmsg(r->fd, f->msgs, BATCH, MSG_DONTWAIT, NULL);
	for(i = 0; i < n; i++) {
		if(r->fd >= 0 && r->fs)
			relay_one(f, r, f->buf[i], f->msgs[i].msg_len,
					(struct sockaddr *)&f->src[i]);
		/* recvmmsg shortened it to the address it wrote */
		f->msgs[i].msg_hdr.msg_namelen = sizeof(f->src[i]);
	}
	out_flush(f);
}

/* one receive completion: relay its packet, give the buffer back unless
 * it went out as a send */
static void uring_on_recv(struct fwd *f, const struct io_uring_cqe *cqe)
{
	struct uring *u = f->u;
	uint32_t ri = UD_IDX(cqe->user_data);
	struct route *r = ri < f->nroutes ? &f->routes[ri] : NULL;
	bool current = r && r->fd >= 0 && UD_GEN(cqe->user_data) == (r->gen & 0xffffffu);
	struct io_uring_recvmsg_out *o;
	unsigned bid;

	if(cqe->flags & IORING_CQE_F_BUFFER) {
		bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		o = current && cqe->res > 0
					? io_uring_recvmsg_validate(u->bufs + (size_t)bid * URING_BUF_SZ,
							  cqe->res, &u->rx_mh)
					: NULL;
		if(o && r->fs && !(o->flags & MSG_TRUNC)) {
			u->cur_bid = (int)bid;
			u->cur_sent = false;
			relay_one(f, r, io_uring_recvmsg_payload(o, &u->rx_mh),
					io_uring_recvmsg_payload_length(o, cqe->res, &u->rx_mh),
					io_uring_recvmsg_name(o));
			u->cur_bid = -1;
		}
		if(!u->cur_sent)
			uring_recycle(f, bid);
		u->cur_sent = false;
	}
	/* the receive ended (no buffer left, an error): start it again once
	 * this round's buffers are back */
	if(!(cqe->flags & IORING_CQE_F_MORE) && current) {
		if(cqe->res < 0 && cqe->res != -ENOBUFS)
			KICE_DBG("forwarder: receive on port %u: %s",
					f->t->ports->min + ri, strerror(-cqe->res));
		if(u->nrearm < f->nroutes)
			u->rearm[u->nrearm++] = cqe->user_data;
	}
}

static void uring_on_send(struct fwd *f, const struct io_uring_cqe *cqe)
{
	uint32_t bid = UD_IDX(cqe->user_data);
	struct usend *us;

	if(bid >= URING_BUFS)
		return;
	us = &f->u->us[bid];
	if(us->fs)
		us->fs->inflight--;
	sent(f, us->cnt, us->iov.iov_len, cqe->res >= 0);
	uring_recycle(f, bid);
}

/* One round: submit what is queued, wait up to timeout_ms for a
 * completion, handle every completion there is. */
static void uring_round(struct fwd *f, int timeout_ms)
{
	struct uring *u = f->u;
	struct io_uring_cqe *cqes[URING_CQES], *cqe;
	struct __kernel_timespec ts;
	unsigned n, i;

	/* the sends just queued complete during the submit: wait for one
	 * completion more, or the wait ends at once on their own; and not
	 * long, so that their counters are current within 20 ms */
	if(u->nsend && timeout_ms > 20)
		timeout_ms = 20;
	ts.tv_sec = timeout_ms / 1000;
	ts.tv_nsec = (long long)(timeout_ms % 1000) * 1000000;
	io_uring_submit_and_wait_timeout(&u->ring, &cqe, u->nsend + 1, &ts, NULL);
	u->nsend = 0;
	f->now = kice_now_ms();
	do {
		n = io_uring_peek_batch_cqe(&u->ring, cqes, URING_CQES);
		for(i = 0; i < n; i++) {
			uint64_t ud = cqes[i]->user_data;
			switch(UD_KIND(ud)) {
				case UD_RECV:
					uring_on_recv(f, cqes[i]);
					break;
				case UD_SEND:
					uring_on_send(f, cqes[i]);
					break;
				case UD_CSEND:
					uring_on_csend(f, cqes[i]);
					break;
				case UD_CTL:
					drain_ctl(f);
					if(!(cqes[i]->flags & IORING_CQE_F_MORE))
						uring_arm_ctl(f);
					break;
				default:
					break;
			}
		}
		io_uring_cq_advance(&u->ring, n);
		if(u->recycled) {
			io_uring_buf_ring_advance(u->br, (int)u->recycled);
			u->recycled = 0;
		}
		/* a route closed (or closed and opened again) meanwhile has its
		 * own receive, or none */
		for(i = 0; i < u->nrearm; i++) {
			uint32_t ri = UD_IDX(u->rearm[i]);
			if(f->routes[ri].fd >= 0
					&& UD_GEN(u->rearm[i]) == (f->routes[ri].gen & 0xffffffu))
				uring_arm(f, ri);
		}
		u->nrearm = 0;
	} while(n == URING_CQES);
}

int kice_fwd_run(const struct kice_fwd_cfg *cfg)
{
	struct kice_fwd_shared *sh = &cfg->t->fwd[cfg->idx];
	uint8_t ticking;
	struct fwd *f;
	struct epoll_event evs[256], ev;
	uint64_t last_tick = 0;
	uint32_t i;
	int n, k;

	f = calloc(1, sizeof(*f));
	if(f == NULL)
		return -ENOMEM;
	f->cfg = cfg;
	f->t = cfg->t;
	f->nroutes = (uint32_t)(f->t->ports->max - f->t->ports->min + 1);
	f->routes = calloc(f->nroutes, sizeof(*f->routes));
	f->ep = epoll_create1(EPOLL_CLOEXEC);
	if(f->routes == NULL || f->ep < 0) {
		free(f->routes);
		free(f);
		return -ENOMEM;
	}
	for(i = 0; i < f->nroutes; i++)
		f->routes[i].fd = -1;
	rx_init(f);
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u32 = CTL_TAG;
	epoll_ctl(f->ep, EPOLL_CTL_ADD, cfg->ctl_fd, &ev);
	if(!cfg->no_io_uring) {
		int rc = uring_setup(f);
		if(rc < 0)
			KICE_INFO("forwarder %u: io_uring not usable (%s): epoll", cfg->idx,
					strerror(-rc));
	}
	f->t->fwd[cfg->idx].io_uring = f->u != NULL;
	f->t->fwd[cfg->idx].pid = (int)getpid();
	KICE_INFO("forwarder %u: %s", cfg->idx,
			f->u ? "io_uring (multishot receive, buffer ring)"
				 : "epoll + recvmmsg/sendmmsg");

	while(cfg->stop == NULL || *cfg->stop == 0) {
		if(cfg->tick)
			cfg->tick();
		/* workers skip the kick while this says we wake every 10 ms */
		ticking = f->nagents || f->ncrypto;
		if(ticking != sh->ticking)
			__atomic_store_n(&sh->ticking, ticking, __ATOMIC_RELEASE);
		if(f->u) {
			uring_round(f, ticking ? ICE_TICK_MS : TICK_MS);
			n = 0;
		} else {
			n = epoll_wait(f->ep, evs, 256, ticking ? ICE_TICK_MS : TICK_MS);
			f->now = kice_now_ms();
		}
		for(k = 0; k < n; k++) {
			if(evs[k].data.u32 == CTL_TAG) {
				drain_ctl(f);
				continue;
			}
			if(evs[k].data.u32 < f->nroutes)
				on_media(f, &f->routes[evs[k].data.u32]);
		}
		if((f->nagents || f->ncrypto) && f->now >= f->next_ice_ms) {
			f->next_ice_ms = f->now + ICE_TICK_MS;
			ice_tick_all(f);
		}
		/* deletions queued without a kick (kice_fwd_kick) */
		if(__atomic_load_n(&sh->dead, __ATOMIC_RELAXED))
			f->kicked = true;
		if(f->now - last_tick >= TICK_MS) {
			last_tick = f->now;
			expire(f);
			f->kicked = true;
		}
		if(f->kicked) {
			f->kicked = false;
			reap(f);
		}
	}
	/* tests only: release everything */
	for(i = 0; i < 1024; i++)
		while(f->hash[i])
			fs_free(f, f->hash[i]);
	for(i = 0; i < f->nroutes; i++)
		if(f->routes[i].fd >= 0)
			route_close(f, (uint16_t)(f->t->ports->min + i));
	kice_ports_drop_held(f->t->ports, cfg->idx);
	uring_free(f->u);
	close(f->ep);
	free(f->routes);
	free(f);
	return 0;
}
