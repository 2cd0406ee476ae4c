/*
 * kamailio-ice: unit tests for the offer/answer engine, the session table
 * and the forwarder (lib/call, lib/session, lib/fwd), with a forwarder
 * running in a thread and real UDP sockets on 127.0.0.1.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "call.h"
#include "dtls.h"
#include "fwd.h"
#include "srtp.h"
#include "ice.h"
#include "sdp.h"
#include "sdp_ice.h"
#include "log.h"
#include "rtp.h"

#define PMIN 41000
#define PMAX 41019 /* 10 pairs */

struct env
{
	struct kice_table *t;
	int sv[2];
	int wr[1];
	struct kice_iface ifc, ifc6;
	struct kice_addr faddr[2]; /* the forwarder's: 127.0.0.1, ::1 */
	struct kice_ctx ctx;
	pthread_t th;
	volatile int stop;
	struct kice_fwd_cfg cfg;
	struct kice_dtls_cert *cert;
	char fp[KICE_DTLS_FP_MAX];
};

/* The table's allocator (shm in Kamailio): counts live bytes and blocks,
 * and fails its fail_at-th call when fail_at > 0. Any thread. */
static struct
{
	pthread_mutex_t lk;
	size_t bytes, blocks;
	long calls, fail_at;
} cm = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0};

#define CM_HDR 16

static void *cm_alloc(void *ctx, size_t n)
{
	size_t *p = NULL;

	(void)ctx;
	pthread_mutex_lock(&cm.lk);
	if(!(cm.fail_at > 0 && ++cm.calls == cm.fail_at)
			&& (p = calloc(1, n + CM_HDR)) != NULL) {
		p[0] = n;
		cm.bytes += n;
		cm.blocks++;
	}
	if(cm.fail_at <= 0)
		cm.calls++;
	pthread_mutex_unlock(&cm.lk);
	return p ? (char *)p + CM_HDR : NULL;
}

static void cm_free(void *ctx, void *q)
{
	size_t *p;

	(void)ctx;
	if(q == NULL)
		return;
	p = (size_t *)((char *)q - CM_HDR);
	pthread_mutex_lock(&cm.lk);
	cm.bytes -= p[0];
	cm.blocks--;
	pthread_mutex_unlock(&cm.lk);
	free(p);
}

static const struct kice_mem cm_mem = {cm_alloc, cm_free, NULL};

static size_t cm_bytes(void)
{
	size_t b;

	pthread_mutex_lock(&cm.lk);
	b = cm.bytes;
	pthread_mutex_unlock(&cm.lk);
	return b;
}

static void *fwd_thread(void *arg)
{
	struct env *e = arg;
	kice_fwd_run(&e->cfg);
	return NULL;
}

static bool use_epoll; /* the second run: the forwarder without io_uring */

static int setup(void **state)
{
	static struct env e;

	memset(&e, 0, sizeof(e));
	assert_int_equal(kice_table_create(&e.t, &cm_mem, 64, PMIN, PMAX, 1), 0);
	assert_int_equal(kice_fwd_channel(e.sv), 0);
	e.wr[0] = e.sv[0];
	assert_int_equal(kice_iface_parse(&e.ifc, "pub/127.0.0.1", 13), 0);
	e.ctx.t = e.t;
	e.ctx.ctl_fds = e.wr;
	e.ctx.ifaces = &e.ifc;
	e.ctx.nifaces = 1;
	e.ctx.relatch_window_ms = 3000;
	e.cfg.t = e.t;
	e.cfg.ctl_fd = e.sv[1];
	e.cfg.media_timeout_s = 0;
	e.cfg.stop = &e.stop;
	/* interface 1 is test_ipv6_call's: a forwarder knows every interface */
	assert_int_equal(kice_iface_parse(&e.ifc6, "v6/::1", 6), 0);
	e.faddr[0] = e.ifc.local;
	e.faddr[1] = e.ifc6.local;
	e.cfg.ifaces = e.faddr;
	e.cfg.nifaces = 2;
	e.cfg.no_io_uring = use_epoll;
	assert_int_equal(kice_srtp_init(), 0);
	assert_int_equal(kice_dtls_cert_create(&e.cert), 0);
	assert_true(kice_dtls_cert_fingerprint(e.cert, e.fp, sizeof(e.fp)) > 0);
	e.cfg.cert = e.cert;
	e.ctx.fingerprint = e.fp;
	assert_int_equal(pthread_create(&e.th, NULL, fwd_thread, &e), 0);
	*state = &e;
	/* the forwarder says which I/O it runs on: both must be tested */
	for(int i = 0; i < 200 && e.t->fwd[0].pid == 0; i++)
		usleep(5000);
	usleep(20000);
	print_message("forwarder media I/O: %s\n",
			e.t->fwd[0].io_uring ? "io_uring" : "epoll");
	if(use_epoll)
		assert_int_equal(e.t->fwd[0].io_uring, 0);
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	e->stop = 1;
	pthread_join(e->th, NULL);
	close(e->sv[0]);
	close(e->sv[1]);
	kice_table_destroy(e->t);
	kice_dtls_cert_destroy(e->cert);
	return 0;
}

static int udp_sock(uint16_t *port)
{
	struct sockaddr_in a;
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	getsockname(fd, (struct sockaddr *)&a, &l);
	*port = ntohs(a.sin_port);
	return fd;
}

static void send_to(int fd, uint16_t port, const uint8_t *p, size_t n)
{
	struct sockaddr_in a;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons(port);
	assert_int_equal(sendto(fd, p, n, 0, (struct sockaddr *)&a, sizeof(a)), (ssize_t)n);
}

/* receive one datagram within ms; returns its length or -1; *from set */
static int recv_within(int fd, uint8_t *buf, size_t cap, int ms, uint16_t *from)
{
	struct pollfd pf = {fd, POLLIN, 0};
	struct sockaddr_in a;
	socklen_t l = sizeof(a);
	int n;

	if(poll(&pf, 1, ms) <= 0)
		return -1;
	n = (int)recvfrom(fd, buf, cap, 0, (struct sockaddr *)&a, &l);
	if(from)
		*from = ntohs(a.sin_port);
	return n;
}

static void rtp_pkt(uint8_t *p, uint16_t seq, uint8_t marker_byte)
{
	memset(p, 0, 172);
	p[0] = 0x80;
	p[1] = 0; /* PCMU */
	p[2] = (uint8_t)(seq >> 8);
	p[3] = (uint8_t)seq;
	p[12] = marker_byte;
}

static const char *offer_fmt = "v=0\r\n"
							   "o=- 1 1 IN IP4 %s\r\n"
							   "s=-\r\n"
							   "c=IN IP4 %s\r\n"
							   "t=0 0\r\n"
							   "m=audio %u RTP/AVP 0\r\n"
							   "%s"
							   "a=sendrecv\r\n";

static int do_sdp(struct env *e, const char *callid, bool req, bool final,
		const char *ftag, const char *ttag, const char *ip, uint16_t port,
		const char *extra, char *out, size_t cap, const char **why)
{
	static char body[1024];
	struct kice_msg m;
	struct kice_flags fl;

	snprintf(body, sizeof(body), offer_fmt, ip, ip, port, extra);
	memset(&m, 0, sizeof(m));
	m.is_request = req;
	m.final = final;
	m.callid = kice_slice_make(callid, strlen(callid));
	m.from_tag = kice_slice_make(ftag, strlen(ftag));
	m.to_tag = kice_slice_make(ttag, ttag ? strlen(ttag) : 0);
	m.body = body;
	m.len = strlen(body);
	kice_flags_parse(&fl, "remove", 6, NULL);
	return kice_call_sdp(&e->ctx, &m, &fl, out, cap, why);
}

/* the m= port of a rewritten body */
static uint16_t m_port(const char *body)
{
	const char *p = strstr(body, "m=audio ");
	assert_non_null(p);
	return (uint16_t)atoi(p + 8);
}

static void wait_ports_free(struct env *e, uint32_t want)
{
	uint32_t used = 0, total;
	int i;

	for(i = 0; i < 200; i++) {
		kice_ports_usage(e->t->ports, &used, &total);
		if(used == want)
			break;
		usleep(10000);
	}
	assert_int_equal(used, want);
}

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while(readdir(d))
		n++;
	closedir(d);
	return n;
}

/* one plain call: offer, answer, RTP a->b and b->a; returns the two relay
 * ports (towards b, towards a) */
static void plain_call(struct env *e, const char *callid, int fa, uint16_t pa,
		int fb, uint16_t pb, uint8_t mark, uint16_t *relay_b, uint16_t *relay_a)
{
	char out[2048];
	const char *why;
	uint8_t pkt[172], buf[256];
	int n;

	n = do_sdp(e, callid, true, false, "f", NULL, "127.0.0.1", pa, "", out,
			sizeof(out), &why);
	assert_true(n > 0);
	out[n] = '\0';
	*relay_b = m_port(out);
	n = do_sdp(e, callid, false, true, "f", "t", "127.0.0.1", pb, "", out,
			sizeof(out), &why);
	assert_true(n > 0);
	out[n] = '\0';
	*relay_a = m_port(out);
	usleep(30000);
	rtp_pkt(pkt, 1, mark);
	send_to(fa, *relay_a, pkt, sizeof(pkt));
	assert_int_equal(recv_within(fb, buf, sizeof(buf), 500, NULL), 172);
	assert_int_equal(buf[12], mark);
	rtp_pkt(pkt, 2, (uint8_t)(mark + 1));
	send_to(fb, *relay_b, pkt, sizeof(pkt));
	assert_int_equal(recv_within(fa, buf, sizeof(buf), 500, NULL), 172);
	assert_int_equal(buf[12], mark + 1);
}

/* The forwarder keeps a finished session's sockets open: the next session
 * gets the same pairs without a new socket, relays on them, and nothing
 * that reached them in between gets through; with no_socket_reuse the
 * sockets are closed as before. */
static void test_sockets_reused(void **state)
{
	struct env *e = *state;
	uint16_t pa, pb, pc, pd, rb1, ra1, rb2, ra2, rb3, ra3;
	int fa = udp_sock(&pa), fb = udp_sock(&pb), fc = udp_sock(&pc),
		fd = udp_sock(&pd), before;
	uint32_t held;
	uint8_t pkt[172], buf[256];

	plain_call(e, "reuse-1", fa, pa, fb, pb, 0x10, &rb1, &ra1);
	kice_call_delete(&e->ctx, KICE_SLICE_LIT("reuse-1"));
	wait_ports_free(e, 0);
	/* its two pairs are held now, on top of the list */
	held = kice_ports_held(e->t->ports);
	assert_true(held >= 2);
	/* late media to the idle ports is read and dropped */
	rtp_pkt(pkt, 3, 0x99);
	send_to(fa, ra1, pkt, sizeof(pkt));
	send_to(fb, rb1, pkt, sizeof(pkt));
	usleep(50000);

	before = open_fds();
	plain_call(e, "reuse-2", fc, pc, fd, pd, 0x20, &rb2, &ra2);
	/* the same two pairs, and not one socket more in the process */
	assert_true((rb2 == rb1 && ra2 == ra1) || (rb2 == ra1 && ra2 == rb1));
	assert_int_equal(open_fds(), before);
	assert_int_equal(kice_ports_held(e->t->ports), held - 2);
	/* the stale packets never reached the new callee or caller */
	assert_int_equal(recv_within(fd, buf, sizeof(buf), 100, NULL), -1);
	assert_int_equal(recv_within(fc, buf, sizeof(buf), 100, NULL), -1);
	kice_call_delete(&e->ctx, KICE_SLICE_LIT("reuse-2"));
	wait_ports_free(e, 0);
	assert_int_equal(kice_ports_held(e->t->ports), held);

	/* reuse off: the sockets of a session close when it ends, held ones
	 * included (it takes two from the list) */
	e->cfg.no_socket_reuse = true;
	plain_call(e, "reuse-3", fa, pa, fb, pb, 0x30, &rb3, &ra3);
	assert_int_equal(kice_ports_held(e->t->ports), held - 2);
	before = open_fds();
	kice_call_delete(&e->ctx, KICE_SLICE_LIT("reuse-3"));
	wait_ports_free(e, 0);
	usleep(20000);
	assert_int_equal(kice_ports_held(e->t->ports), held - 2);
	assert_int_equal(open_fds(), before - 4);
	/* and a port closed that way can be bound again by anyone */
	{
		struct sockaddr_in a;
		int s = socket(AF_INET, SOCK_DGRAM, 0);
		memset(&a, 0, sizeof(a));
		a.sin_family = AF_INET;
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		a.sin_port = htons(rb3);
		assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
		close(s);
	}
	e->cfg.no_socket_reuse = false;
	close(fa);
	close(fb);
	close(fc);
	close(fd);
}

static void test_relay_both_ways_with_latching(void **state)
{
	struct env *e = *state;
	char out[2048];
	const char *why;
	uint16_t pa, pb, relay_b, relay_a, from;
	int fa = udp_sock(&pa), fb = udp_sock(&pb), n, i, got_b = 0, got_a = 0;
	uint8_t pkt[172], buf[2048];

	/* the caller advertises a private address it cannot be reached on:
	 * only latching gets media back to it */
	n = do_sdp(e, "call-1", true, false, "ft1", NULL, "10.99.99.99", 4000,
			"", out, sizeof(out), &why);
	assert_true(n > 0);
	out[n] = '\0';
	assert_non_null(strstr(out, "c=IN IP4 127.0.0.1\r\n"));
	relay_b = m_port(out);
	assert_true(relay_b >= PMIN && relay_b <= PMAX && relay_b % 2 == 0);
	n = do_sdp(e, "call-1", false, true, "ft1", "tt1", "127.0.0.1", pb, "",
			out, sizeof(out), &why);
	assert_true(n > 0);
	out[n] = '\0';
	relay_a = m_port(out);
	assert_int_not_equal(relay_a, relay_b);
	{
		char want[64];
		snprintf(want, sizeof(want), "a=rtcp:%u IN IP4 127.0.0.1\r\n", relay_a + 1);
		assert_non_null(strstr(out, want));
	}
	usleep(50000);
	for(i = 0; i < 20; i++) {
		rtp_pkt(pkt, (uint16_t)i, 0xa1);
		send_to(fa, relay_a, pkt, sizeof(pkt));
		n = recv_within(fb, buf, sizeof(buf), 500, &from);
		if(n == 172 && buf[12] == 0xa1 && from == relay_b)
			got_b++;
		rtp_pkt(pkt, (uint16_t)i, 0xb2);
		send_to(fb, relay_b, pkt, sizeof(pkt));
		n = recv_within(fa, buf, sizeof(buf), 500, &from);
		if(n == 172 && buf[12] == 0xb2 && from == relay_a)
			got_a++;
	}
	assert_int_equal(got_b, 20);
	assert_int_equal(got_a, 20);
	usleep(100000); /* the forwarder counts after sendto() returns */
	{
		uint32_t h = kice_table_hash(e->t, KICE_SLICE_LIT("call-1"));
		struct kice_session *s;
		kice_bucket_lock(e->t, h);
		s = kice_session_find(e->t, h, KICE_SLICE_LIT("call-1"));
		assert_non_null(s);
		assert_int_equal(s->state, KICE_SESS_ANSWERED);
		assert_int_equal(s->caller.st[0]->cnt[0].pkts_in, 20);
		assert_int_equal(s->caller.st[0]->cnt[0].pkts_out, 20);
		assert_int_equal(s->caller.st[0]->latched[0].port, pa);
		kice_bucket_unlock(e->t, h);
	}
	assert_int_equal(kice_call_delete(&e->ctx, KICE_SLICE_LIT("call-1")), 0);
	assert_int_equal(kice_call_delete(&e->ctx, KICE_SLICE_LIT("call-1")), -ENOENT);
	wait_ports_free(e, 0);
	assert_int_equal(e->t->sessions_active, 0);
	close(fa);
	close(fb);
}

static void test_stray_source_not_forwarded(void **state)
{
	struct env *e = *state;
	char out[2048];
	const char *why;
	uint16_t pa, pb, px, relay_a;
	int fa = udp_sock(&pa), fb = udp_sock(&pb), fx = udp_sock(&px), n;
	uint8_t pkt[172], buf[2048];

	n = do_sdp(e, "call-2", true, false, "f", NULL, "127.0.0.1", pa, "", out,
			sizeof(out), &why);
	assert_true(n > 0);
	n = do_sdp(e, "call-2", false, true, "f", "t", "127.0.0.1", pb, "", out,
			sizeof(out), &why);
	assert_true(n > 0);
	out[n] = '\0';
	relay_a = m_port(out);
	usleep(50000);
	rtp_pkt(pkt, 1, 0x11);
	send_to(fa, relay_a, pkt, sizeof(pkt));
	assert_int_equal(recv_within(fb, buf, sizeof(buf), 500, NULL), 172);
	/* after the re-latch window, another source is not forwarded */
	usleep(50000);
	{
		uint32_t h = kice_table_hash(e->t, KICE_SLICE_LIT("call-2"));
		struct kice_session *s;
		kice_bucket_lock(e->t, h);
		s = kice_session_find(e->t, h, KICE_SLICE_LIT("call-2"));
		s->caller.relatch_until_ms = 0;
		kice_bucket_unlock(e->t, h);
		kice_fwd_notify(e->wr, s);
	}
	usleep(50000);
	rtp_pkt(pkt, 2, 0x66);
	send_to(fx, relay_a, pkt, sizeof(pkt));
	assert_int_equal(recv_within(fb, buf, sizeof(buf), 300, NULL), -1);
	rtp_pkt(pkt, 3, 0x12);
	send_to(fa, relay_a, pkt, sizeof(pkt));
	assert_int_equal(recv_within(fb, buf, sizeof(buf), 500, NULL), 172);
	assert_int_equal(buf[12], 0x12);
	kice_call_delete(&e->ctx, KICE_SLICE_LIT("call-2"));
	wait_ports_free(e, 0);
	close(fa);
	close(fb);
	close(fx);
}

/* strict-source: even inside the re-latch window right after a
 * re-INVITE, media from a new source is refused */
static void test_strict_source(void **state)
{
	struct env *e = *state;
	char out[2048];
	const char *why;
	struct kice_msg m;
	struct kice_flags fl;
	char body[512];
	uint16_t pa, pb, px, relay_a;
	int fa = udp_sock(&pa), fb = udp_sock(&pb), fx = udp_sock(&px), n;
	uint8_t pkt[172], buf[256];

	memset(&m, 0, sizeof(m));
	m.callid = KICE_SLICE_LIT("strict-1");
	m.from_tag = KICE_SLICE_LIT("f");
	m.is_request = true;
	m.op = KICE_OP_OFFER;
	snprintf(body, sizeof(body), offer_fmt, "127.0.0.1", "127.0.0.1", pa, "");
	m.body = body;
	m.len = strlen(body);
	assert_int_equal(kice_flags_parse(&fl, "remove strict-source", 20, NULL), 0);
	assert_true(kice_call_sdp(&e->ctx, &m, &fl, out, sizeof(out), &why) > 0);
	n = do_sdp(e, "strict-1", false, true, "f", "t", "127.0.0.1", pb, "", out,
			sizeof(out), &why);
	assert_true(n > 0);
	out[n] = '\0';
	relay_a = m_port(out);
	usleep(50000);
	rtp_pkt(pkt, 1, 0x11);
	send_to(fa, relay_a, pkt, sizeof(pkt));
	assert_int_equal(recv_within(fb, buf, sizeof(buf), 500, NULL), 172);
	/* a stray source right away (inside the normal window) is refused */
	rtp_pkt(pkt, 2, 0x66);
	send_to(fx, relay_a, pkt, sizeof(pkt));
	assert_int_equal(recv_within(fb, buf, sizeof(buf), 300, NULL), -1);
	send_to(fa, relay_a, pkt, sizeof(pkt));
	assert_int_equal(recv_within(fb, buf, sizeof(buf), 500, NULL), 172);
	kice_call_delete(&e->ctx, KICE_SLICE_LIT("strict-1"));
	wait_ports_free(e, 0);
	close(fa);
	close(fb);
	close(fx);
}

/* RTP Bleed: a component that never latched is not captured by a stray
 * source once the window after the last SDP has passed; its SDP address
 * still is accepted. What arrives on an RTCP port goes to the RTCP port. */
static void test_silent_endpoint_not_hijacked(void **state)
{
	struct env *e = *state;
	char out[2048];
	const char *why;
	uint16_t pa, pb, px, relay_a, relay_b, from;
	int fa = udp_sock(&pa), fb = udp_sock(&pb), fx = udp_sock(&px), n;
	uint8_t pkt[172], buf[256];
	uint32_t h = kice_table_hash(e->t, KICE_SLICE_LIT("bleed-1"));
	struct kice_session *s;

	n = do_sdp(e, "bleed-1", true, false, "f", NULL, "127.0.0.1", pa, "", out,
			sizeof(out), &why);
	assert_true(n > 0);
	out[n] = '\0';
	relay_b = m_port(out);
	n = do_sdp(e, "bleed-1", false, true, "f", "t", "127.0.0.1", pb, "", out,
			sizeof(out), &why);
	assert_true(n > 0);
	out[n] = '\0';
	relay_a = m_port(out);
	/* the window closes; nobody has sent anything yet */
	kice_bucket_lock(e->t, h);
	s = kice_session_find(e->t, h, KICE_SLICE_LIT("bleed-1"));
	s->caller.relatch_until_ms = 0;
	s->callee[0]->relatch_until_ms = 0;
	kice_bucket_unlock(e->t, h);
	kice_fwd_notify(e->wr, s);
	usleep(50000);
	/* the attacker sprays the callee-facing port: nothing reaches the
	 * caller, and the caller's audio does not go to the attacker */
	rtp_pkt(pkt, 1, 0x66);
	send_to(fx, relay_b, pkt, sizeof(pkt));
	assert_int_equal(recv_within(fa, buf, sizeof(buf), 300, NULL), -1);
	rtp_pkt(pkt, 2, 0x11);
	send_to(fa, relay_a, pkt, sizeof(pkt));
	assert_int_equal(recv_within(fx, buf, sizeof(buf), 300, NULL), -1);
	assert_int_equal(recv_within(fb, buf, sizeof(buf), 500, NULL), 172);
	/* the callee itself (its SDP address) still latches after the window */
	rtp_pkt(pkt, 3, 0x22);
	send_to(fb, relay_b, pkt, sizeof(pkt));
	assert_int_equal(recv_within(fa, buf, sizeof(buf), 500, NULL), 172);
	assert_int_equal(buf[12], 0x22);
	/* an RTP-looking packet on the RTCP port goes to the RTCP port */
	{
		uint16_t prt;
		int frt = udp_sock(&prt);
		close(frt);
		rtp_pkt(pkt, 4, 0x33);
		send_to(fa, (uint16_t)(relay_a + 1), pkt, sizeof(pkt));
		n = recv_within(fb, buf, sizeof(buf), 300, &from);
		assert_int_equal(n, -1); /* pb+1 is not pb: it went to port+1 */
		(void)prt;
	}
	kice_call_delete(&e->ctx, KICE_SLICE_LIT("bleed-1"));
	wait_ports_free(e, 0);
	close(fa);
	close(fb);
	close(fx);
}

static void test_rtcp_separate_and_reinvite_keeps_ports(void **state)
{
	struct env *e = *state;
	char out[2048], out2[2048];
	const char *why;
	uint16_t pa, pb, pbr, relay_a, relay_b, from;
	int fa = udp_sock(&pa), fb = udp_sock(&pb), fbr = udp_sock(&pbr), n;
	uint8_t rtcp[8] = {0x80, 200, 0, 1, 1, 2, 3, 4}, buf[256];
	char extra[64];

	n = do_sdp(e, "call-3", true, false, "f", NULL, "127.0.0.1", pa, "", out,
			sizeof(out), &why);
	assert_true(n > 0);
	out[n] = '\0';
	relay_b = m_port(out);
	snprintf(extra, sizeof(extra), "a=rtcp:%u\r\n", pbr);
	n = do_sdp(e, "call-3", false, true, "f", "t", "127.0.0.1", pb, extra,
			out, sizeof(out), &why);
	assert_true(n > 0);
	out[n] = '\0';
	relay_a = m_port(out);
	usleep(50000);
	/* RTCP from the caller on relay RTCP port reaches the callee's a=rtcp */
	send_to(fa, (uint16_t)(relay_a + 1), rtcp, sizeof(rtcp));
	assert_int_equal(recv_within(fbr, buf, sizeof(buf), 500, &from), 8);
	assert_int_equal(from, relay_b + 1);
	/* re-INVITE from the callee (from-tag t): same relay ports */
	n = do_sdp(e, "call-3", true, false, "t", "f", "127.0.0.1", pb, "", out2,
			sizeof(out2), &why);
	assert_true(n > 0);
	out2[n] = '\0';
	assert_int_equal(m_port(out2), relay_a);
	kice_call_delete(&e->ctx, KICE_SLICE_LIT("call-3"));
	wait_ports_free(e, 0);
	close(fa);
	close(fb);
	close(fbr);
}

static void test_forked_early_media(void **state)
{
	struct env *e = *state;
	char out[2048];
	const char *why;
	uint16_t pa, pb1, pb2, ra1, ra2, rb;
	int fa = udp_sock(&pa), fb1 = udp_sock(&pb1), fb2 = udp_sock(&pb2), n;
	uint8_t pkt[172], buf[256];

	n = do_sdp(e, "call-4", true, false, "f", NULL, "127.0.0.1", pa, "", out,
			sizeof(out), &why);
	assert_true(n > 0);
	out[n] = '\0';
	rb = m_port(out);
	n = do_sdp(e, "call-4", false, false, "f", "b1", "127.0.0.1", pb1, "", out,
			sizeof(out), &why);
	assert_true(n > 0);
	out[n] = '\0';
	ra1 = m_port(out);
	n = do_sdp(e, "call-4", false, false, "f", "b2", "127.0.0.1", pb2, "", out,
			sizeof(out), &why);
	assert_true(n > 0);
	out[n] = '\0';
	ra2 = m_port(out);
	assert_int_equal(ra1, ra2);
	usleep(50000);
	/* both early dialogs' media reach the caller */
	rtp_pkt(pkt, 1, 0xb1);
	send_to(fb1, rb, pkt, sizeof(pkt));
	assert_int_equal(recv_within(fa, buf, sizeof(buf), 500, NULL), 172);
	assert_int_equal(buf[12], 0xb1);
	rtp_pkt(pkt, 1, 0xb2);
	send_to(fb2, rb, pkt, sizeof(pkt));
	assert_int_equal(recv_within(fa, buf, sizeof(buf), 500, NULL), 172);
	assert_int_equal(buf[12], 0xb2);
	/* the caller's media goes to the latest early dialog, then the winner */
	rtp_pkt(pkt, 2, 0xaa);
	send_to(fa, ra1, pkt, sizeof(pkt));
	assert_int_equal(recv_within(fb2, buf, sizeof(buf), 500, NULL), 172);
	n = do_sdp(e, "call-4", false, true, "f", "b1", "127.0.0.1", pb1, "", out,
			sizeof(out), &why);
	assert_true(n > 0);
	usleep(50000);
	send_to(fa, ra1, pkt, sizeof(pkt));
	assert_int_equal(recv_within(fb1, buf, sizeof(buf), 500, NULL), 172);
	assert_int_equal(recv_within(fb2, buf, sizeof(buf), 100, NULL), -1);
	kice_call_delete(&e->ctx, KICE_SLICE_LIT("call-4"));
	wait_ports_free(e, 0);
	close(fa);
	close(fb1);
	close(fb2);
}

static void test_port_exhaustion_and_recovery(void **state)
{
	struct env *e = *state;
	char out[2048], id[32];
	const char *why;
	int i, n;

	/* 10 pairs: 10 offers fit, the 11th fails cleanly */
	for(i = 0; i < 10; i++) {
		snprintf(id, sizeof(id), "ex-%d", i);
		n = do_sdp(e, id, true, false, "f", NULL, "127.0.0.1", 5000, "", out,
				sizeof(out), &why);
		assert_true(n > 0);
	}
	n = do_sdp(e, "ex-10", true, false, "f", NULL, "127.0.0.1", 5000, "",
			out, sizeof(out), &why);
	assert_int_equal(n, -ENOSPC);
	assert_string_equal(why, "port pool exhausted");
	assert_int_equal(e->t->sessions_active, 10);
	kice_call_delete(&e->ctx, KICE_SLICE_LIT("ex-3"));
	wait_ports_free(e, 18);
	n = do_sdp(e, "ex-10", true, false, "f", NULL, "127.0.0.1", 5000, "",
			out, sizeof(out), &why);
	assert_true(n > 0);
	for(i = 0; i <= 10; i++) {
		snprintf(id, sizeof(id), "ex-%d", i);
		kice_call_delete(&e->ctx, kice_slice_make(id, strlen(id)));
	}
	wait_ports_free(e, 0);
}

static void test_malformed_sdp_no_session(void **state)
{
	struct env *e = *state;
	char out[2048];
	const char *why = NULL;
	struct kice_msg m;
	struct kice_flags fl;
	const char *bad = "v=0\r\nc=IN IP4 999.1.1.1\r\nm=audio x RTP/AVP 0\r\n";

	memset(&m, 0, sizeof(m));
	m.is_request = true;
	m.callid = KICE_SLICE_LIT("bad-1");
	m.from_tag = KICE_SLICE_LIT("f");
	m.body = bad;
	m.len = strlen(bad);
	memset(&fl, 0, sizeof(fl));
	assert_int_equal(kice_call_sdp(&e->ctx, &m, &fl, out, sizeof(out), &why), -EBADMSG);
	assert_non_null(why);
	assert_true(strlen(why) > 0);
	assert_int_equal(e->t->sessions_active, 0);
}

static int udp6_sock(uint16_t *port)
{
	struct sockaddr_in6 a;
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET6, SOCK_DGRAM, 0);

	memset(&a, 0, sizeof(a));
	a.sin6_family = AF_INET6;
	a.sin6_addr = in6addr_loopback;
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	getsockname(fd, (struct sockaddr *)&a, &l);
	*port = ntohs(a.sin6_port);
	return fd;
}

static void send6_to(int fd, uint16_t port, const uint8_t *p, size_t n)
{
	struct sockaddr_in6 a;

	memset(&a, 0, sizeof(a));
	a.sin6_family = AF_INET6;
	a.sin6_addr = in6addr_loopback;
	a.sin6_port = htons(port);
	assert_int_equal(sendto(fd, p, n, 0, (struct sockaddr *)&a, sizeof(a)), (ssize_t)n);
}

/* an IPv6 call through an IPv6 interface, chosen by the ipv6 flag */
static void test_ipv6_call(void **state)
{
	struct env *e = *state;
	struct kice_iface ifs[2];
	struct kice_ctx ctx6 = e->ctx;
	struct kice_msg m;
	struct kice_flags fl;
	char body[512], out[2048];
	const char *why;
	uint16_t pa, pb, ra, rb;
	int fa = udp6_sock(&pa), fb = udp6_sock(&pb), n;
	uint8_t pkt[172], buf[256];

	assert_int_equal(kice_iface_parse(&ifs[0], "v4/127.0.0.1", 12), 0);
	assert_int_equal(kice_iface_parse(&ifs[1], "v6/::1", 6), 0);
	ctx6.ifaces = ifs;
	ctx6.nifaces = 2;
	memset(&m, 0, sizeof(m));
	m.callid = KICE_SLICE_LIT("call-v6");
	m.from_tag = KICE_SLICE_LIT("f6");
	m.is_request = true;
	snprintf(body, sizeof(body), "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\n"
			"c=IN IP6 ::1\r\nt=0 0\r\nm=audio %u RTP/AVP 0\r\n", pa);
	m.body = body;
	m.len = strlen(body);
	assert_int_equal(kice_flags_parse(&fl, "remove ipv6", 11, NULL), 0);
	n = kice_call_sdp(&ctx6, &m, &fl, out, sizeof(out), &why);
	assert_true(n > 0);
	out[n] = '\0';
	assert_non_null(strstr(out, "c=IN IP6 ::1\r\n"));
	rb = m_port(out);
	{
		char want[64];
		snprintf(want, sizeof(want), "a=rtcp:%u IN IP6 ::1\r\n", rb + 1);
		assert_non_null(strstr(out, want));
	}
	m.is_request = false;
	m.final = true;
	m.to_tag = KICE_SLICE_LIT("t6");
	snprintf(body, sizeof(body), "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\n"
			"c=IN IP6 ::1\r\nt=0 0\r\nm=audio %u RTP/AVP 0\r\n", pb);
	m.len = strlen(body);
	n = kice_call_sdp(&ctx6, &m, &fl, out, sizeof(out), &why);
	assert_true(n > 0);
	out[n] = '\0';
	ra = m_port(out);
	usleep(50000);
	rtp_pkt(pkt, 1, 0x61);
	send6_to(fa, ra, pkt, sizeof(pkt));
	assert_int_equal(recv_within(fb, buf, sizeof(buf), 500, NULL), 172);
	assert_int_equal(buf[12], 0x61);
	rtp_pkt(pkt, 1, 0x62);
	send6_to(fb, rb, pkt, sizeof(pkt));
	assert_int_equal(recv_within(fa, buf, sizeof(buf), 500, NULL), 172);
	assert_int_equal(buf[12], 0x62);
	kice_call_delete(&ctx6, KICE_SLICE_LIT("call-v6"));
	wait_ports_free(e, 0);
	close(fa);
	close(fb);
}

/* ---- ICE through the relay, with lib/ice agents as the endpoints ---- */

struct peer
{
	int fd;
	uint16_t port;
	struct kice_ice ice;
	int media;		 /* media packets received */
	uint16_t from;	 /* source port of the last one */
};

static void peer_send(void *ctx, uint8_t li, const struct kice_addr *dst,
		const uint8_t *pkt, size_t len)
{
	struct peer *p = ctx;
	struct sockaddr_storage ss;
	socklen_t sl = kice_addr_to_sa(dst, &ss);

	(void)li;
	sendto(p->fd, pkt, len, 0, (struct sockaddr *)&ss, sl);
}

static uint64_t now_us(void)
{
	return kice_now_ms() * 1000u;
}

/* run both agents for up to ms, or until both are completed when
 * until_done */
static void pump(struct peer *a, struct peer *b, int ms, bool until_done)
{
	uint64_t end = kice_now_ms() + (uint64_t)ms;
	struct peer *ps[2] = {a, b};
	uint8_t buf[2048];
	int i, n;

	while(kice_now_ms() < end) {
		struct pollfd pf[2] = {{a->fd, POLLIN, 0}, {b->fd, POLLIN, 0}};
		poll(pf, 2, 5);
		for(i = 0; i < 2; i++) {
			struct sockaddr_storage ss;
			socklen_t l = sizeof(ss);
			struct kice_addr src;
			while((n = (int)recvfrom(ps[i]->fd, buf, sizeof(buf), MSG_DONTWAIT,
						   (struct sockaddr *)&ss, &l))
					> 0) {
				kice_addr_from_sa(&src, (struct sockaddr *)&ss);
				if(kice_ice_input(&ps[i]->ice, now_us(), 0, &src, buf, (size_t)n)
						== 0) {
					ps[i]->media++;
					ps[i]->from = src.port;
				}
				l = sizeof(ss);
			}
			kice_ice_tick(&ps[i]->ice, now_us());
		}
		if(until_done && kice_ice_state(&a->ice) == KICE_ICE_COMPLETED
				&& kice_ice_state(&b->ice) == KICE_ICE_COMPLETED)
			break;
	}
}

static void peer_init(struct peer *p, const char *ufrag, const char *pwd,
		bool controlling)
{
	struct kice_ice_cfg cfg;
	struct kice_addr la;

	memset(p, 0, sizeof(*p));
	p->fd = udp_sock(&p->port);
	memset(&cfg, 0, sizeof(cfg));
	cfg.role = controlling ? KICE_ICE_CONTROLLING : KICE_ICE_CONTROLLED;
	cfg.tie_breaker = controlling ? 0x1111 : 0x2222;
	strcpy(cfg.lufrag, ufrag);
	strcpy(cfg.lpwd, pwd);
	strcpy(cfg.rufrag, "xxxx"); /* set from the SDP it receives */
	strcpy(cfg.rpwd, "xxxxxxxxxxxxxxxxxxxxxx");
	cfg.ncomp = 1;
	cfg.send = peer_send;
	cfg.ctx = p;
	assert_int_equal(kice_ice_init(&p->ice, &cfg), 0);
	memset(&la, 0, sizeof(la));
	la.af = 4;
	la.ip[0] = 127;
	la.ip[3] = 1;
	la.port = p->port;
	assert_int_equal(kice_ice_add_local(&p->ice, 1, 0, &la), 0);
}

/* feed the ICE description of an SDP the peer received to its agent */
static void peer_learn(struct peer *p, const char *body, size_t len)
{
	static struct kice_sdp sdp;
	struct kice_sdp_line l;
	struct kice_slice name, v;
	struct kice_sdp_cand c;
	struct kice_ice_cand ic;
	char uf[40], pw[70];
	uint32_t pos = 0;

	assert_int_equal(kice_sdp_parse(&sdp, body, len), 0);
	assert_true(kice_slice_cpy(uf, sizeof(uf), sdp.media[0].ice_ufrag.len
					? sdp.media[0].ice_ufrag : sdp.ice_ufrag));
	assert_true(kice_slice_cpy(pw, sizeof(pw), sdp.media[0].ice_pwd.len
					? sdp.media[0].ice_pwd : sdp.ice_pwd));
	{
		char lu[40], lp[70];
		strcpy(lu, p->ice.cfg.lufrag);
		strcpy(lp, p->ice.cfg.lpwd);
		assert_int_equal(kice_ice_restart(&p->ice, lu, lp, uf, pw), 0);
	}
	while(kice_sdp_line_next(body, len, &pos, &l)) {
		if(l.type != 'a')
			continue;
		kice_sdp_attr_split(l.val, &name, &v);
		if(!kice_slice_eq(name, "candidate") || kice_sdp_cand_parse(v, &c) < 0
				|| c.component != 1)
			continue;
		memset(&ic, 0, sizeof(ic));
		ic.component = 1;
		ic.type = kice_slice_eq(c.type, "relay") ? KICE_CAND_RELAY : KICE_CAND_HOST;
		ic.priority = c.priority;
		assert_true(kice_slice_cpy(ic.foundation, sizeof(ic.foundation), c.foundation));
		assert_true(kice_addr_set(&ic.addr, c.addr, c.port));
		assert_int_equal(kice_ice_add_remote(&p->ice, &ic), 0);
	}
	kice_ice_end_of_candidates(&p->ice);
}

static const char *ice_sdp_fmt = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n"
								 "c=IN IP4 127.0.0.1\r\nt=0 0\r\n"
								 "m=audio %u RTP/AVP 0\r\n"
								 "a=rtcp-mux\r\n"
								 "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\n"
								 "a=candidate:1 1 UDP 2130706431 127.0.0.1 %u typ host\r\n"
								 "a=end-of-candidates\r\n";

static int ice_call(struct env *e, const char *callid, bool req, bool final,
		const char *ftag, const char *ttag, const char *flags, uint16_t port,
		uint16_t cand_port, const struct peer *p, char *out, size_t cap)
{
	static char body[1024];
	struct kice_msg m;
	struct kice_flags fl;
	const char *why;
	int n;

	snprintf(body, sizeof(body), ice_sdp_fmt, port, p->ice.cfg.lufrag,
			p->ice.cfg.lpwd, cand_port);
	memset(&m, 0, sizeof(m));
	m.is_request = req;
	m.final = final;
	m.op = req ? KICE_OP_OFFER : KICE_OP_ANSWER;
	m.callid = kice_slice_make(callid, strlen(callid));
	m.from_tag = kice_slice_make(ftag, strlen(ftag));
	m.to_tag = kice_slice_make(ttag, ttag ? strlen(ttag) : 0);
	m.body = body;
	m.len = strlen(body);
	assert_int_equal(kice_flags_parse(&fl, flags, strlen(flags), NULL), 0);
	n = kice_call_sdp(&e->ctx, &m, &fl, out, cap, &why);
	if(n < 0)
		print_error("kice_call_sdp: %s\n", why);
	assert_true(n > 0);
	out[n] = '\0';
	return n;
}

static int send_media(struct peer *p, uint8_t marker)
{
	uint8_t li;
	const struct kice_addr *sel = kice_ice_selected(&p->ice, 1, &li);
	struct sockaddr_storage ss;
	uint8_t pkt[172];

	if(sel == NULL)
		return -1;
	rtp_pkt(pkt, 1, marker);
	return (int)sendto(p->fd, pkt, sizeof(pkt), 0, (struct sockaddr *)&ss,
			kice_addr_to_sa(sel, &ss));
}

/* force: the relay terminates ICE on each leg; both agents connect to it
 * and media flows through it, and only after the checks */
static void test_force_ice(void **state)
{
	struct env *e = *state;
	struct peer a, b;
	char out[4096];
	int n, i;

	peer_init(&a, "AAAA", "aaaaaaaaaaaaaaaaaaaaaa", true);
	peer_init(&b, "BBBB", "bbbbbbbbbbbbbbbbbbbbbb", false);
	n = ice_call(e, "ice-1", true, false, "fa", NULL, "force", a.port, a.port,
			&a, out, sizeof(out));
	assert_null(strstr(out, "AAAA"));
	assert_non_null(strstr(out, "typ host"));
	peer_learn(&b, out, (size_t)n);
	n = ice_call(e, "ice-1", false, true, "fa", "tb", "force", b.port, b.port,
			&b, out, sizeof(out));
	assert_null(strstr(out, "BBBB"));
	peer_learn(&a, out, (size_t)n);
	pump(&a, &b, 10000, true);
	assert_int_equal(kice_ice_state(&a.ice), KICE_ICE_COMPLETED);
	assert_int_equal(kice_ice_state(&b.ice), KICE_ICE_COMPLETED);
	for(i = 0; i < 10; i++) {
		assert_true(send_media(&a, 0xa1) > 0);
		assert_true(send_media(&b, 0xb2) > 0);
		pump(&a, &b, 20, false);
	}
	pump(&a, &b, 100, false);
	assert_int_equal(a.media, 10);
	assert_int_equal(b.media, 10);
	/* both saw the relay, not each other */
	assert_int_not_equal(a.from, b.port);
	assert_int_not_equal(b.from, a.port);
	assert_true(a.from >= PMIN && a.from <= PMAX);
	/* RFC 5245 §9.1.3.2 (X-Lite/Bria): after ICE completes the caller sends
	 * an updated offer: c=/m= at its selected candidate, a=remote-candidates,
	 * the same ufrag/pwd. Same relay ports, no restart, media goes on. */
	{
		char body[1024], out2[4096];
		struct kice_msg m;
		struct kice_flags fl;
		const char *why;
		uint16_t relay_b_before = b.from;
		uint32_t gen_before;
		uint32_t h = kice_table_hash(e->t, KICE_SLICE_LIT("ice-1"));

		kice_bucket_lock(e->t, h);
		gen_before = kice_session_find(e->t, h, KICE_SLICE_LIT("ice-1"))->side[0].ice_gen;
		kice_bucket_unlock(e->t, h);
		snprintf(body, sizeof(body), ice_sdp_fmt, a.port, a.ice.cfg.lufrag,
				a.ice.cfg.lpwd, a.port);
		strcat(body, "a=remote-candidates:1 127.0.0.1 ");
		snprintf(body + strlen(body), 32, "%u\r\n", a.from);
		memset(&m, 0, sizeof(m));
		m.is_request = true;
		m.op = KICE_OP_OFFER;
		m.callid = KICE_SLICE_LIT("ice-1");
		m.from_tag = KICE_SLICE_LIT("fa");
		m.to_tag = KICE_SLICE_LIT("tb");
		m.body = body;
		m.len = strlen(body);
		assert_int_equal(kice_flags_parse(&fl, "force", 5, NULL), 0);
		n = kice_call_sdp(&e->ctx, &m, &fl, out2, sizeof(out2), &why);
		assert_true(n > 0);
		out2[n] = '\0';
		assert_int_equal(m_port(out2), relay_b_before);
		assert_null(strstr(out2, "remote-candidates"));
		kice_bucket_lock(e->t, h);
		assert_int_equal(kice_session_find(e->t, h, KICE_SLICE_LIT("ice-1"))->side[0].ice_gen,
				gen_before);
		kice_bucket_unlock(e->t, h);
		pump(&a, &b, 200, false);
		a.media = b.media = 0;
		for(i = 0; i < 5; i++) {
			assert_true(send_media(&a, 0xa3) > 0);
			assert_true(send_media(&b, 0xb4) > 0);
			pump(&a, &b, 20, false);
		}
		pump(&a, &b, 100, false);
		assert_int_equal(a.media, 5);
		assert_int_equal(b.media, 5);
	}
	kice_call_delete(&e->ctx, KICE_SLICE_LIT("ice-1"));
	wait_ports_free(e, 0);
	assert_true(e->t->fwd[0].ice_successes >= 2);
	close(a.fd);
	close(b.fd);
}

/* force: media from an address no check validated is not relayed */
static void test_force_ice_unvalidated_media_dropped(void **state)
{
	struct env *e = *state;
	struct peer a, b;
	char out[4096];
	uint16_t px, relay_a = 0;
	int fx = udp_sock(&px), n;
	uint8_t pkt[172];
	char *p;

	peer_init(&a, "AAAA", "aaaaaaaaaaaaaaaaaaaaaa", true);
	peer_init(&b, "BBBB", "bbbbbbbbbbbbbbbbbbbbbb", false);
	n = ice_call(e, "ice-2", true, false, "fa", NULL, "force", a.port, a.port,
			&a, out, sizeof(out));
	peer_learn(&b, out, (size_t)n);
	n = ice_call(e, "ice-2", false, true, "fa", "tb", "force", b.port, b.port,
			&b, out, sizeof(out));
	peer_learn(&a, out, (size_t)n);
	p = strstr(out, "m=audio ");
	relay_a = (uint16_t)atoi(p + 8);
	pump(&a, &b, 10000, true);
	assert_int_equal(kice_ice_state(&b.ice), KICE_ICE_COMPLETED);
	rtp_pkt(pkt, 5, 0x66);
	send_to(fx, relay_a, pkt, sizeof(pkt));
	pump(&a, &b, 200, false);
	assert_int_equal(b.media, 0);
	kice_call_delete(&e->ctx, KICE_SLICE_LIT("ice-2"));
	wait_ports_free(e, 0);
	close(a.fd);
	close(b.fd);
	close(fx);
}

/* relay: both endpoints' candidates kept, the relay's added; when the
 * endpoints can reach each other they go peer-to-peer and the relay sees
 * no media; when their own candidates are dead, the relay path wins */
static void relay_case(struct env *e, const char *callid, bool reachable)
{
	struct peer a, b;
	char out[4096];
	uint16_t dead_a, dead_b;
	int fda = udp_sock(&dead_a), fdb = udp_sock(&dead_b), n, i;
	uint64_t relayed;

	close(fda); /* closed ports: checks to them fail */
	close(fdb);
	peer_init(&a, "AAAA", "aaaaaaaaaaaaaaaaaaaaaa", true);
	peer_init(&b, "BBBB", "bbbbbbbbbbbbbbbbbbbbbb", false);
	n = ice_call(e, callid, true, false, "fa", NULL, "relay",
			reachable ? a.port : dead_a, reachable ? a.port : dead_a, &a, out,
			sizeof(out));
	assert_non_null(strstr(out, "a=ice-ufrag:AAAA"));
	assert_non_null(strstr(out, "typ relay"));
	peer_learn(&b, out, (size_t)n);
	n = ice_call(e, callid, false, true, "fa", "tb", "relay",
			reachable ? b.port : dead_b, reachable ? b.port : dead_b, &b, out,
			sizeof(out));
	peer_learn(&a, out, (size_t)n);
	relayed = e->t->fwd[0].pkts_relayed;
	pump(&a, &b, 12000, true);
	assert_int_equal(kice_ice_state(&a.ice), KICE_ICE_COMPLETED);
	assert_int_equal(kice_ice_state(&b.ice), KICE_ICE_COMPLETED);
	for(i = 0; i < 10; i++) {
		assert_true(send_media(&a, 0xa1) > 0);
		assert_true(send_media(&b, 0xb2) > 0);
		pump(&a, &b, 20, false);
	}
	pump(&a, &b, 100, false);
	assert_int_equal(a.media, 10);
	assert_int_equal(b.media, 10);
	if(reachable) {
		assert_int_equal(a.from, b.port);
		assert_int_equal(e->t->fwd[0].pkts_relayed, relayed);
	} else {
		assert_true(a.from >= PMIN && a.from <= PMAX);
		assert_true(b.from >= PMIN && b.from <= PMAX);
		assert_int_equal(e->t->fwd[0].pkts_relayed - relayed, 20);
	}
	kice_call_delete(&e->ctx, kice_slice_make(callid, strlen(callid)));
	wait_ports_free(e, 0);
	close(a.fd);
	close(b.fd);
}

static void test_relay_p2p_wins(void **state)
{
	relay_case(*state, "relay-p2p", true);
}

static void test_relay_path_when_p2p_fails(void **state)
{
	relay_case(*state, "relay-via", false);
}

/* ---- WebRTC (ICE + DTLS-SRTP, or SDES) <-> plain RTP through the relay ---- */

struct wpeer
{
	struct peer p;				 /* ICE agent and socket */
	struct kice_dtls_cert *cert; /* its own certificate */
	struct kice_dtls *dtls;
	struct kice_srtp *srtp;
	uint8_t last[256];
	size_t last_len;
	int plain_in; /* decrypted media packets */
};

static void wsend(void *ctx, const uint8_t *pkt, size_t len)
{
	struct wpeer *w = ctx;
	uint8_t li;
	const struct kice_addr *sel = kice_ice_selected(&w->p.ice, 1, &li);
	struct sockaddr_storage ss;

	if(sel)
		sendto(w->p.fd, pkt, len, 0, (struct sockaddr *)&ss,
				kice_addr_to_sa(sel, &ss));
}

/* one poll round for the WebRTC peer (ICE, DTLS, SRTP) and a plain peer */
static void wpump(struct wpeer *w, int plain_fd, int *plain_in, uint8_t *plain_last,
		int ms)
{
	uint64_t end = kice_now_ms() + (uint64_t)ms;
	uint8_t buf[2048];
	int n;

	while(kice_now_ms() < end) {
		struct pollfd pf[2] = {{w->p.fd, POLLIN, 0}, {plain_fd, POLLIN, 0}};
		struct sockaddr_storage ss;
		socklen_t l = sizeof(ss);
		struct kice_addr src;

		poll(pf, 2, 5);
		while((n = (int)recvfrom(w->p.fd, buf, sizeof(buf), MSG_DONTWAIT,
					   (struct sockaddr *)&ss, &l))
				> 0) {
			kice_addr_from_sa(&src, (struct sockaddr *)&ss);
			if(kice_ice_input(&w->p.ice, now_us(), 0, &src, buf, (size_t)n) != 0)
				continue;
			if(buf[0] >= 20 && buf[0] <= 63 && w->dtls) {
				kice_dtls_input(w->dtls, now_us(), buf, (size_t)n);
			} else if(buf[0] >= 128 && w->srtp) {
				size_t len = (size_t)n;
				if(kice_srtp_unprotect(w->srtp, buf, &len) == 0) {
					w->plain_in++;
					memcpy(w->last, buf, len < sizeof(w->last) ? len : sizeof(w->last));
					w->last_len = len;
				}
			}
			l = sizeof(ss);
		}
		while((n = (int)recv(plain_fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
			(*plain_in)++;
			memcpy(plain_last, buf, 172);
		}
		kice_ice_tick(&w->p.ice, now_us());
		if(w->dtls) {
			kice_dtls_tick(w->dtls, now_us());
			if(w->srtp == NULL && kice_dtls_state(w->dtls) == KICE_DTLS_CONNECTED) {
				struct kice_srtp_keys tx, rx;
				assert_int_equal(kice_dtls_srtp_keys(w->dtls, &tx, &rx), 0);
				assert_int_equal(kice_srtp_create(&w->srtp, &tx, &rx), 0);
			}
		}
	}
}

static const char *webrtc_fmt =
		"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
		"a=group:BUNDLE 0\r\n"
		"m=audio %u UDP/TLS/RTP/SAVPF 0\r\n"
		"c=IN IP4 127.0.0.1\r\n"
		"a=mid:0\r\na=rtcp-mux\r\na=rtcp-fb:0 nack\r\n"
		"a=ice-ufrag:WWWW\r\na=ice-pwd:wwwwwwwwwwwwwwwwwwwwww\r\n"
		"a=fingerprint:%s\r\na=setup:actpass\r\n"
		"a=candidate:1 1 UDP 2130706431 127.0.0.1 %u typ host\r\n"
		"a=end-of-candidates\r\n";

static int sdp_msg(struct env *e, const char *callid, bool req, const char *ttag,
		const char *flags, const char *body, char *out, size_t cap,
		const char **why)
{
	struct kice_msg m;
	struct kice_flags fl;

	memset(&m, 0, sizeof(m));
	m.is_request = req;
	m.final = !req;
	m.op = req ? KICE_OP_OFFER : KICE_OP_ANSWER;
	m.callid = kice_slice_make(callid, strlen(callid));
	m.from_tag = KICE_SLICE_LIT("fw");
	m.to_tag = kice_slice_make(ttag, ttag ? strlen(ttag) : 0);
	m.body = body;
	m.len = strlen(body);
	assert_int_equal(kice_flags_parse(&fl, flags, strlen(flags), NULL), 0);
	return kice_call_sdp(&e->ctx, &m, &fl, out, cap, why);
}

static void webrtc_to_plain(struct env *e, const char *callid, bool tamper)
{
	struct wpeer w;
	char body[2048], out[4096], fp[KICE_DTLS_FP_MAX], *p;
	const char *why;
	uint16_t pb, relay_b, relay_w = 0;
	int fb = udp_sock(&pb), n, i, b_in = 0;
	uint8_t b_last[172], pkt[400];
	struct kice_sdp sdp;

	memset(&w, 0, sizeof(w));
	peer_init(&w.p, "WWWW", "wwwwwwwwwwwwwwwwwwwwww", true);
	assert_int_equal(kice_dtls_cert_create(&w.cert), 0);
	kice_dtls_cert_fingerprint(w.cert, fp, sizeof(fp));
	if(tamper)
		fp[10] = fp[10] == 'A' ? 'B' : 'A';
	snprintf(body, sizeof(body), webrtc_fmt, w.p.port, fp, w.p.port);
	n = sdp_msg(e, callid, true, NULL, "RTP/AVP remove", body, out, sizeof(out), &why);
	if(n < 0)
		print_error("offer: %s\n", why);
	assert_true(n > 0);
	out[n] = '\0';
	/* what the phone gets: plain RTP/AVP, nothing of WebRTC's transport */
	assert_non_null(strstr(out, " RTP/AVP 0\r\n"));
	assert_null(strstr(out, "a=fingerprint"));
	assert_null(strstr(out, "a=setup"));
	assert_null(strstr(out, "a=candidate"));
	assert_null(strstr(out, "a=rtcp-mux"));
	assert_null(strstr(out, "a=rtcp-fb"));
	assert_non_null(strstr(out, "a=rtcp:"));
	assert_int_equal(kice_sdp_parse(&sdp, out, (size_t)n), 0);
	relay_b = sdp.media[0].port;
	snprintf(body, sizeof(body), offer_fmt, "127.0.0.1", "127.0.0.1", pb, "");
	n = sdp_msg(e, callid, false, "tb", "UDP/TLS/RTP/SAVPF force", body, out,
			sizeof(out), &why);
	if(n < 0)
		print_error("answer: %s\n", why);
	assert_true(n > 0);
	out[n] = '\0';
	/* what the browser gets: DTLS-SRTP with our fingerprint, ICE, mux */
	assert_non_null(strstr(out, " UDP/TLS/RTP/SAVPF 0\r\n"));
	assert_non_null(strstr(out, "a=setup:active\r\n"));
	assert_non_null(strstr(out, "a=mid:0\r\n")); /* the offer's */
	assert_non_null(strstr(out, e->fp));
	assert_non_null(strstr(out, "a=rtcp-mux"));
	peer_learn(&w.p, out, (size_t)n);
	p = strstr(out, "m=audio ");
	relay_w = (uint16_t)atoi(p + 8);
	assert_true(relay_w >= PMIN);
	{
		/* the relay is the DTLS client (it answered active) */
		char alg[16], hex[200];
		const char *f = strstr(out, "a=fingerprint:") + 14;
		sscanf(f, "%15s %199s", alg, hex);
		assert_int_equal(kice_dtls_create(&w.dtls, w.cert, KICE_DTLS_SERVER,
								 alg, hex, wsend, &w),
				0);
	}
	wpump(&w, fb, &b_in, b_last, 4000);
	if(tamper) {
		/* the relay refused our certificate: no keys, no media */
		assert_int_not_equal(kice_dtls_state(w.dtls), KICE_DTLS_CONNECTED);
		assert_null(w.srtp);
		rtp_pkt(pkt, 1, 0x77);
		send_to(fb, relay_b, pkt, 172);
		wpump(&w, fb, &b_in, b_last, 200);
		assert_int_equal(w.plain_in, 0);
	} else {
		assert_int_equal(kice_dtls_state(w.dtls), KICE_DTLS_CONNECTED);
		assert_non_null(w.srtp);
		for(i = 0; i < 10; i++) {
			size_t len = 172;
			rtp_pkt(pkt, (uint16_t)(100 + i), 0xc1);
			assert_int_equal(kice_srtp_protect(w.srtp, pkt, &len, sizeof(pkt)), 0);
			assert_true(len > 172);
			wsend(&w, pkt, len);
			rtp_pkt(pkt, (uint16_t)(200 + i), 0xd2);
			send_to(fb, relay_b, pkt, 172);
			wpump(&w, fb, &b_in, b_last, 30);
		}
		wpump(&w, fb, &b_in, b_last, 150);
		/* the phone got plain RTP with the browser's payload */
		assert_int_equal(b_in, 10);
		assert_int_equal(b_last[0], 0x80);
		assert_int_equal(b_last[12], 0xc1);
		/* the browser got SRTP it could decrypt, with the phone's payload */
		assert_int_equal(w.plain_in, 10);
		assert_int_equal(w.last_len, 172);
		assert_int_equal(w.last[12], 0xd2);
		/* a tampered SRTP packet is dropped and counted */
		{
			size_t len = 172;
			uint64_t before = e->t->fwd[0].srtp_auth_failures;
			rtp_pkt(pkt, 300, 0xc1);
			kice_srtp_protect(w.srtp, pkt, &len, sizeof(pkt));
			pkt[20] ^= 1;
			wsend(&w, pkt, len);
			wpump(&w, fb, &b_in, b_last, 150);
			assert_int_equal(b_in, 10);
			assert_int_equal(e->t->fwd[0].srtp_auth_failures, before + 1);
		}
	}
	kice_call_delete(&e->ctx, kice_slice_make(callid, strlen(callid)));
	wait_ports_free(e, 0);
	kice_srtp_destroy(w.srtp);
	kice_dtls_destroy(w.dtls);
	kice_dtls_cert_destroy(w.cert);
	close(w.p.fd);
	close(fb);
}

static void test_webrtc_to_plain(void **state)
{
	webrtc_to_plain(*state, "webrtc-1", false);
}

static void test_webrtc_bad_fingerprint(void **state)
{
	webrtc_to_plain(*state, "webrtc-2", true);
}

/* SDES-SRTP phone <-> plain RTP phone */
static void test_sdes_to_plain(void **state)
{
	struct env *e = *state;
	struct kice_sdes mine, relays;
	struct kice_srtp *ctx = NULL;
	struct kice_srtp_keys none;
	char crypto[KICE_SDES_MAX], extra[256], body[1024], out[4096];
	const char *why, *c;
	uint16_t pa, pb, relay_a, relay_b;
	int fa = udp_sock(&pa), fb = udp_sock(&pb), n;
	uint8_t pkt[400], buf[400];
	size_t len;

	(void)none;
	assert_int_equal(kice_sdes_generate(KICE_SRTP_AES128_CM_SHA1_80, &mine), 0);
	assert_true(kice_sdes_format(&mine, crypto, sizeof(crypto)) > 0);
	snprintf(extra, sizeof(extra), "a=crypto:%s\r\n", crypto);
	snprintf(body, sizeof(body), offer_fmt, "127.0.0.1", "127.0.0.1", pa, extra);
	/* the SDES offer says RTP/SAVP */
	{
		char *q = strstr(body, "RTP/AVP");
		memmove(q + 8, q + 7, strlen(q + 7) + 1);
		memcpy(q, "RTP/SAVP", 8);
	}
	n = sdp_msg(e, "sdes-1", true, NULL, "RTP/AVP", body, out, sizeof(out), &why);
	if(n < 0)
		print_error("offer: %s\n", why);
	assert_true(n > 0);
	out[n] = '\0';
	assert_null(strstr(out, "a=crypto"));
	assert_non_null(strstr(out, " RTP/AVP 0"));
	relay_b = m_port(out);
	snprintf(body, sizeof(body), offer_fmt, "127.0.0.1", "127.0.0.1", pb, "");
	n = sdp_msg(e, "sdes-1", false, "tb", "RTP/SAVP sdes", body, out, sizeof(out), &why);
	if(n < 0)
		print_error("answer: %s\n", why);
	assert_true(n > 0);
	out[n] = '\0';
	assert_non_null(strstr(out, " RTP/SAVP 0"));
	c = strstr(out, "a=crypto:");
	assert_non_null(c);
	{
		const char *eol = strstr(c, "\r\n");
		assert_int_equal(kice_sdes_parse(kice_slice_make(c + 9, (size_t)(eol - c - 9)),
								 &relays),
				0);
	}
	assert_int_equal(relays.tag, mine.tag);
	relay_a = m_port(out);
	assert_int_equal(kice_srtp_create(&ctx, &mine.keys, &relays.keys), 0);
	usleep(50000);
	rtp_pkt(pkt, 1, 0xe1);
	len = 172;
	assert_int_equal(kice_srtp_protect(ctx, pkt, &len, sizeof(pkt)), 0);
	send_to(fa, relay_a, pkt, len);
	assert_int_equal(recv_within(fb, buf, sizeof(buf), 500, NULL), 172);
	assert_int_equal(buf[12], 0xe1);
	rtp_pkt(pkt, 1, 0xe2);
	send_to(fb, relay_b, pkt, 172);
	n = recv_within(fa, buf, sizeof(buf), 500, NULL);
	assert_true(n > 172);
	len = (size_t)n;
	assert_int_equal(kice_srtp_unprotect(ctx, buf, &len), 0);
	assert_int_equal(len, 172);
	assert_int_equal(buf[12], 0xe2);
	kice_srtp_destroy(ctx);
	kice_call_delete(&e->ctx, KICE_SLICE_LIT("sdes-1"));
	wait_ports_free(e, 0);
	close(fa);
	close(fb);
}

/* the forwarder frees deleted sessions (the previous test's too, which
 * may have given its ports back a moment before its memory): wait until
 * it owns none, so that the table's memory is a baseline */
static void settle(struct env *e)
{
	int i;

	for(i = 0; i < 200
			&& __atomic_load_n(&e->t->fwd[0].sessions, __ATOMIC_ACQUIRE) != 0;
			i++)
		usleep(10000);
	assert_int_equal(e->t->fwd[0].sessions, 0);
}

/* the forwarder frees deleted sessions: wait until the table's memory is
 * back to want */
static void wait_bytes(size_t want)
{
	int i;

	for(i = 0; i < 200 && cm_bytes() != want; i++)
		usleep(10000);
	assert_int_equal(cm_bytes(), want);
}

/* Issue 5: shm per audio-only session. The blocks a session needs are
 * allocated as its SDPs need them (a callee per to-tag, a stream per
 * m-line), not sized for the worst case. */
static void test_session_memory(void **state)
{
	struct env *e = *state;
	char out[2048], tag[16];
	const char *why;
	size_t base, blocks0, audio;
	int n, i;

	settle(e);
	base = cm_bytes();
	blocks0 = cm.blocks;
	n = do_sdp(e, "mem-1", true, false, "f", NULL, "127.0.0.1", 5000, "", out,
			sizeof(out), &why);
	assert_true(n > 0);
	n = do_sdp(e, "mem-1", false, true, "f", "t", "127.0.0.1", 5002, "", out,
			sizeof(out), &why);
	assert_true(n > 0);
	audio = cm_bytes() - base;
	print_message("audio-only session (caller + callee, 1 m-line): %zu bytes "
				  "in %zu blocks\n",
			audio, cm.blocks - blocks0);
	assert_true(audio <= 4096 - 64); /* room for the allocator's header */
	assert_int_equal(cm.blocks - blocks0, 1); /* one allocation, one free */
	kice_call_delete(&e->ctx, KICE_SLICE_LIT("mem-1"));
	wait_bytes(base);
	wait_ports_free(e, 0);

	/* forked: three early dialogs are kept, a fourth is refused */
	n = do_sdp(e, "mem-2", true, false, "f", NULL, "127.0.0.1", 5000, "", out,
			sizeof(out), &why);
	assert_true(n > 0);
	for(i = 0; i < 4; i++) {
		snprintf(tag, sizeof(tag), "b%d", i);
		n = do_sdp(e, "mem-2", false, false, "f", tag, "127.0.0.1",
				(uint16_t)(5002 + 2 * i), "", out, sizeof(out), &why);
		if(i < 3)
			assert_true(n > 0);
		else
			assert_int_equal(n, -ENOSPC);
	}
	kice_call_delete(&e->ctx, KICE_SLICE_LIT("mem-2"));
	wait_bytes(base);
	wait_ports_free(e, 0);
}

/* every allocation of an offer (audio and video) and two forked answers
 * failing in turn: a clean error, then nothing left behind once the call
 * is deleted */
static void test_alloc_failures(void **state)
{
	struct env *e = *state;
	char out[2048];
	const char *why;
	static const char *video = "m=video 5004 RTP/AVP 96\r\n"
							   "a=rtpmap:96 VP8/90000\r\n";
	size_t base;
	long k;
	int n1, n2, n3, failed = 0;

	settle(e);
	base = cm_bytes();
	for(k = 1; k < 50; k++) {
		pthread_mutex_lock(&cm.lk);
		cm.calls = 0;
		cm.fail_at = k;
		pthread_mutex_unlock(&cm.lk);
		why = NULL;
		n1 = do_sdp(e, "oom", true, false, "f", NULL, "127.0.0.1", 5000, video,
				out, sizeof(out), &why);
		if(n1 < 0)
			assert_non_null(why);
		n2 = do_sdp(e, "oom", false, false, "f", "t1", "127.0.0.1", 5002,
				video, out, sizeof(out), &why);
		if(n2 < 0)
			assert_non_null(why);
		n3 = do_sdp(e, "oom", false, true, "f", "t2", "127.0.0.1", 5006,
				video, out, sizeof(out), &why);
		if(n3 < 0)
			assert_non_null(why);
		pthread_mutex_lock(&cm.lk);
		cm.fail_at = 0;
		pthread_mutex_unlock(&cm.lk);
		kice_call_delete(&e->ctx, KICE_SLICE_LIT("oom"));
		wait_bytes(base);
		wait_ports_free(e, 0);
		if(n1 > 0 && n2 > 0 && n3 > 0 && cm.calls < k)
			break; /* the failure point is past the last allocation */
		failed++;
	}
	print_message("%d allocation failures handled\n", failed);
	assert_true(k < 50);
	/* session; caller's and first callee's video streams; second callee
	 * and its two streams */
	assert_true(failed >= 6);
	assert_int_equal(e->t->sessions_active, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_relay_both_ways_with_latching),
		cmocka_unit_test(test_sockets_reused),
		cmocka_unit_test(test_stray_source_not_forwarded),
		cmocka_unit_test(test_strict_source),
		cmocka_unit_test(test_silent_endpoint_not_hijacked),
		cmocka_unit_test(test_rtcp_separate_and_reinvite_keeps_ports),
		cmocka_unit_test(test_forked_early_media),
		cmocka_unit_test(test_port_exhaustion_and_recovery),
		cmocka_unit_test(test_malformed_sdp_no_session),
		cmocka_unit_test(test_ipv6_call),
		cmocka_unit_test(test_force_ice),
		cmocka_unit_test(test_force_ice_unvalidated_media_dropped),
		cmocka_unit_test(test_relay_p2p_wins),
		cmocka_unit_test(test_relay_path_when_p2p_fails),
		cmocka_unit_test(test_webrtc_to_plain),
		cmocka_unit_test(test_webrtc_bad_fingerprint),
		cmocka_unit_test(test_sdes_to_plain),
		cmocka_unit_test(test_session_memory),
		cmocka_unit_test(test_alloc_failures),
	};
	int failed;

	/* every test with the forwarder on io_uring (where the kernel allows
	 * it), then on epoll */
	failed = cmocka_run_group_tests_name("forwarder io_uring", tests, setup,
			teardown);
	use_epoll = true;
	failed += cmocka_run_group_tests_name("forwarder epoll", tests, setup,
			teardown);
	return failed;
}
