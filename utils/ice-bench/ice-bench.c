/*
 * ice-bench: an RTP load generator for media relays, and a floor relay.
 *
 * Generator (default):
 *   ice-bench [options] [LEGS|-]
 * reads call legs, one a line:
 *   A_PORT RELAY_A_IP:PORT B_PORT RELAY_B_IP:PORT
 * binds LOCAL_IP:A_PORT and LOCAL_IP:B_PORT for each call and sends RTP
 * A -> RELAY_A (the relay forwards it to B) and B -> RELAY_B (forwarded to
 * A): PCMU, 12-byte header + 160-byte payload, --pps packets per second per
 * direction, each stream with its own SSRC, sequence and timestamp. The
 * payload carries the stream id and the CLOCK_MONOTONIC send time, so the
 * far side measures loss and one-way latency. After --warmup seconds it
 * counts for --duration seconds (the steady window), then drains, and
 * reports sent, received, loss, latency p50/p99 and the CPU time of the
 * relay's processes (--cpu-group, from /proc/PID/stat utime+stime) over the
 * steady window: CPU % and CPU microseconds per relayed packet. The
 * generator pins itself to a CPU (--cpu; by default the last one when there
 * are two or more), the relay belongs on another. How packets move
 * (--io fast, the default, or --io sockets) is described at "generator"
 * below.
 *
 * Floor relay:
 *   ice-bench --floor-relay [LEGS|-]
 * binds RELAY_A and RELAY_B of each line: what arrives on RELAY_A goes
 * out of RELAY_B to LOCAL_IP:B_PORT, what arrives on RELAY_B goes out of
 * RELAY_A to LOCAL_IP:A_PORT. Static mapping, epoll + recvmmsg + sendmmsg,
 * one socket per stream side: the least work a userspace relay can do.
 * Runs until SIGINT/SIGTERM.
 *   ice-bench --floor-relay --uring [--sqpoll] [LEGS|-]
 * the same relay with its I/O through io_uring (multishot recv into
 * provided buffers, batched sends; see floor_relay_uring), to compare.
 *
 * Traffic is meant for loopback (or a private namespace) only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <liburing.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define RTP_HDR 12
#define PAYLOAD 160
#define PKT_LEN (RTP_HDR + PAYLOAD)
#define MAGIC 0x49424e31u /* "IBN1" */
#define RX_BATCH 16
#define FLOOR_BATCH 64
#define HIST_US (1u << 20) /* 1 us buckets up to ~1.05 s */
#define MAX_GROUPS 8
#define MAX_PIDS 512
#define TICK_NS 1000000ll /* the sending timer: 1 ms */
#define SKIP_NS 50000000ll /* a packet this late is skipped, not sent */

struct leg
{
	uint16_t a_port, b_port;
	struct sockaddr_in ra, rb;
};

/* a local socket of the generator: sock 2i is call i's A side, 2i+1 its B
 * side; stream s is sent from sock s and expected on sock s^1 */
struct gsock
{
	int fd;
	uint16_t port;
	struct sockaddr_in dst; /* the relay address this side sends to */
	uint32_t ssrc;
	uint16_t seq;
	uint32_t ts;
};

struct group
{
	char name[32];
	int npids;
	int pids[MAX_PIDS];
	long long t0, t1; /* utime+stime, clock ticks */
	bool lost;		  /* a pid vanished during the window */
};

struct opts
{
	const char *legs_path;
	const char *local_ip;
	struct in_addr local_addr;
	int io; /* enum io_mode */
	double warmup_s, duration_s;
	int pps;
	int cpu;
	int drain_ms;
	bool json;
	bool floor;
	bool uring;	 /* the floor relay through io_uring */
	bool sqpoll; /* and with an SQPOLL thread */
	int ngroups;
	struct group groups[MAX_GROUPS];
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8
		   | p[3];
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static void die(const char *what)
{
	fprintf(stderr, "ice-bench: %s: %s\n", what, strerror(errno));
	exit(2);
}

/* "IP:PORT" -> sockaddr_in */
static bool parse_hostport(const char *s, struct sockaddr_in *sa)
{
	char ip[64];
	const char *c = strrchr(s, ':');
	char *end;
	long port;

	if(c == NULL || (size_t)(c - s) >= sizeof(ip))
		return false;
	memcpy(ip, s, (size_t)(c - s));
	ip[c - s] = 0;
	port = strtol(c + 1, &end, 10);
	if(*end || port <= 0 || port > 65535)
		return false;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, ip, &sa->sin_addr) == 1;
}

static struct leg *read_legs(const char *path, int *nlegs)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	struct leg *legs = NULL;
	int n = 0, cap = 0, lineno = 0;
	char line[512], ra[128], rb[128];
	unsigned a, b;

	if(f == NULL)
		die(path);
	while(fgets(line, sizeof(line), f)) {
		lineno++;
		if(line[0] == '#' || line[strspn(line, " \t\r\n")] == 0)
			continue;
		if(n == cap) {
			cap = cap ? 2 * cap : 256;
			legs = realloc(legs, (size_t)cap * sizeof(*legs));
			if(legs == NULL)
				die("realloc");
		}
		if(sscanf(line, "%u %127s %u %127s", &a, ra, &b, rb) != 4 || a == 0
				|| a > 65535 || b == 0 || b > 65535
				|| !parse_hostport(ra, &legs[n].ra)
				|| !parse_hostport(rb, &legs[n].rb)) {
			fprintf(stderr,
					"ice-bench: %s:%d: expected A_PORT RELAY_A_IP:PORT "
					"B_PORT RELAY_B_IP:PORT\n",
					path, lineno);
			exit(2);
		}
		legs[n].a_port = (uint16_t)a;
		legs[n].b_port = (uint16_t)b;
		n++;
	}
	if(f != stdin)
		fclose(f);
	*nlegs = n;
	return legs;
}

static int udp_bind(const char *ip, uint16_t port, const struct sockaddr_in *sa)
{
	struct sockaddr_in a;
	int fd, sz = 1 << 20;

	if(sa) {
		a = *sa;
	} else {
		memset(&a, 0, sizeof(a));
		a.sin_family = AF_INET;
		a.sin_port = htons(port);
		if(inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
			fprintf(stderr, "ice-bench: bad local IP %s\n", ip);
			exit(2);
		}
	}
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if(fd < 0)
		die("socket");
	/* root may exceed rmem_max; the generator must never be the one that
	 * drops */
	if(setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	if(bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		char s[64];
		inet_ntop(AF_INET, &a.sin_addr, s, sizeof(s));
		fprintf(stderr, "ice-bench: bind %s:%u: %s\n", s, ntohs(a.sin_port),
				strerror(errno));
		exit(2);
	}
	return fd;
}

static void raise_nofile(int need)
{
	struct rlimit rl;

	if(getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if(rl.rlim_cur >= (rlim_t)need)
		return;
	rl.rlim_cur = (rlim_t)need;
	if(rl.rlim_max < rl.rlim_cur)
		rl.rlim_max = rl.rlim_cur; /* root may raise it */
	if(setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		getrlimit(RLIMIT_NOFILE, &rl);
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void pin_cpu(int cpu)
{
	cpu_set_t set;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	if(cpu < 0) {
		if(ncpu < 2)
			return; /* nowhere else to go */
		cpu = (int)ncpu - 1;
	}
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if(sched_setaffinity(0, sizeof(set), &set) < 0)
		fprintf(stderr, "ice-bench: cannot pin to CPU %d: %s\n", cpu,
				strerror(errno));
}

/* utime+stime of one process (all its threads, live and exited), ticks */
static long long proc_ticks(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	FILE *f;
	size_t n;
	int i;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if(f == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')'); /* comm may hold spaces */
	if(p == NULL)
		return -1;
	p++;
	/* after ')': state(3) ... utime is field 14, stime 15 */
	for(i = 3; i < 14 && p; i++) {
		p = strchr(p + 1, ' ');
	}
	if(p == NULL || sscanf(p, " %llu %llu", &ut, &st) != 2)
		return -1;
	return (long long)(ut + st);
}

static long long group_ticks(struct group *g)
{
	long long sum = 0, t;
	int i;

	for(i = 0; i < g->npids; i++) {
		t = proc_ticks(g->pids[i]);
		if(t < 0) {
			g->lost = true;
			continue;
		}
		sum += t;
	}
	return sum;
}

/* /proc/stat per CPU: busy and total ticks */
#define MAX_CPUS 64
struct cpustat
{
	int n;
	unsigned long long busy[MAX_CPUS], total[MAX_CPUS];
};

static void read_cpustat(struct cpustat *cs)
{
	char line[512];
	unsigned long long v[10];
	FILE *f = fopen("/proc/stat", "r");
	int cpu, k, i;

	cs->n = 0;
	if(f == NULL)
		return;
	while(fgets(line, sizeof(line), f)) {
		if(strncmp(line, "cpu", 3) != 0 || line[3] < '0' || line[3] > '9')
			continue;
		memset(v, 0, sizeof(v));
		k = sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu,
				&v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
		if(k < 5 || cpu < 0 || cpu >= MAX_CPUS)
			continue;
		unsigned long long tot = 0;
		for(i = 0; i < 8; i++)
			tot += v[i];
		cs->total[cpu] = tot;
		cs->busy[cpu] = tot - v[3] - v[4]; /* minus idle, iowait */
		if(cpu + 1 > cs->n)
			cs->n = cpu + 1;
	}
	fclose(f);
}

/* PSI: microseconds during which some task waited for a CPU (-1: none) */
static long long psi_cpu_some_us(void)
{
	char line[256];
	long long total = -1;
	FILE *f = fopen("/proc/pressure/cpu", "r");
	char *p;

	if(f == NULL)
		return -1;
	while(fgets(line, sizeof(line), f))
		if(strncmp(line, "some ", 5) == 0 && (p = strstr(line, "total=")))
			total = atoll(p + 6);
	fclose(f);
	return total;
}

static double self_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6
		   + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* "name:pid,pid,..." */
static void add_group(struct opts *o, const char *arg)
{
	struct group *g;
	const char *c = strchr(arg, ':');
	char *end;
	long v;

	if(o->ngroups == MAX_GROUPS || c == NULL || c == arg
			|| (size_t)(c - arg) >= sizeof(g->name)) {
		fprintf(stderr, "ice-bench: --cpu-group NAME:PID[,PID...]\n");
		exit(2);
	}
	g = &o->groups[o->ngroups++];
	memset(g, 0, sizeof(*g));
	memcpy(g->name, arg, (size_t)(c - arg));
	for(c = c + 1; *c;) {
		v = strtol(c, &end, 10);
		if(end == c || v <= 0 || g->npids == MAX_PIDS) {
			fprintf(stderr, "ice-bench: bad pid list in %s\n", arg);
			exit(2);
		}
		g->pids[g->npids++] = (int)v;
		c = *end == ',' ? end + 1 : end;
		if(*end && *end != ',') {
			fprintf(stderr, "ice-bench: bad pid list in %s\n", arg);
			exit(2);
		}
	}
}

/* ------------------------------------------------------------------ */
/* floor relay */

struct froute
{
	int fd, out_fd;
	struct sockaddr_in dst;
};

/* the sockets and routes of both floor relays (epoll and io_uring): route
 * 2i is RELAY_A of leg i, 2i+1 its RELAY_B; each forwards what it receives
 * out of the other's socket to a static destination */
static struct froute *floor_setup(
		const struct opts *o, const struct leg *legs, int nlegs)
{
	struct froute *r;
	int i;

	raise_nofile(2 * nlegs + 64);
	r = calloc((size_t)(2 * nlegs), sizeof(*r));
	if(r == NULL)
		die("floor setup");
	for(i = 0; i < nlegs; i++) {
		r[2 * i].fd = udp_bind(NULL, 0, &legs[i].ra);
		r[2 * i + 1].fd = udp_bind(NULL, 0, &legs[i].rb);
	}
	for(i = 0; i < nlegs; i++) {
		/* in on RELAY_A -> out of RELAY_B to B; and back */
		r[2 * i].out_fd = r[2 * i + 1].fd;
		r[2 * i + 1].out_fd = r[2 * i].fd;
		memset(&r[2 * i].dst, 0, sizeof(r[2 * i].dst));
		r[2 * i].dst.sin_family = AF_INET;
		r[2 * i].dst.sin_port = htons(legs[i].b_port);
		inet_pton(AF_INET, o->local_ip, &r[2 * i].dst.sin_addr);
		r[2 * i + 1].dst = r[2 * i].dst;
		r[2 * i + 1].dst.sin_port = htons(legs[i].a_port);
	}
	return r;
}

static int floor_relay(const struct opts *o, struct leg *legs, int nlegs)
{
	struct froute *r;
	struct mmsghdr msgs[FLOOR_BATCH];
	struct iovec iov[FLOOR_BATCH];
	static uint8_t buf[FLOOR_BATCH][2048];
	struct epoll_event ev, evs[256];
	unsigned long long relayed = 0, dropped = 0, calls_rx = 0;
	int ep, i, k, n, m, sent;

	r = floor_setup(o, legs, nlegs);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if(ep < 0)
		die("epoll_create1");
	for(i = 0; i < 2 * nlegs; i++) {
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN;
		ev.data.u32 = (uint32_t)i;
		if(epoll_ctl(ep, EPOLL_CTL_ADD, r[i].fd, &ev) < 0)
			die("epoll_ctl");
	}
	pin_cpu(o->cpu);
	fprintf(stderr, "ice-bench: floor relay up, %d calls, %d sockets\n",
			nlegs, 2 * nlegs);
	fflush(stderr);
	while(!stop_flag) {
		n = epoll_wait(ep, evs, 256, 200);
		if(n < 0) {
			if(errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for(k = 0; k < n; k++) {
			struct froute *rt = &r[evs[k].data.u32];

			calls_rx++;
			do {
				for(i = 0; i < FLOOR_BATCH; i++) {
					iov[i].iov_base = buf[i];
					iov[i].iov_len = sizeof(buf[i]);
					memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
					msgs[i].msg_hdr.msg_iov = &iov[i];
					msgs[i].msg_hdr.msg_iovlen = 1;
				}
				m = recvmmsg(rt->fd, msgs, FLOOR_BATCH, MSG_DONTWAIT, NULL);
				if(m <= 0)
					break;
				/* the same buffers go out as one batch to the one
				 * static destination */
				for(i = 0; i < m; i++) {
					iov[i].iov_len = msgs[i].msg_len;
					msgs[i].msg_hdr.msg_name = &rt->dst;
					msgs[i].msg_hdr.msg_namelen = sizeof(rt->dst);
				}
				for(i = 0; i < m;) {
					sent = sendmmsg(rt->out_fd, msgs + i,
							(unsigned)(m - i), MSG_DONTWAIT);
					if(sent <= 0) {
						dropped += (unsigned long long)(m - i);
						break;
					}
					i += sent;
					relayed += (unsigned long long)sent;
				}
			} while(m == FLOOR_BATCH);
		}
	}
	fprintf(stderr,
			"ice-bench: floor relay: %llu relayed, %llu dropped, %llu "
			"wakeups\n",
			relayed, dropped, calls_rx);
	return 0;
}

/*
 * The same floor relay with its I/O through io_uring (--uring), to measure
 * whether io_uring beats epoll + recvmmsg/sendmmsg for a UDP relay.
 *
 * Receive: one multishot IORING_OP_RECV per socket, armed once, posting a
 * completion per datagram into a buffer it picks from one provided buffer
 * ring shared by all sockets. Plain recv, not recvmsg: the routing is
 * static per socket, so the source address is of no use, and recv keeps
 * the payload at the start of the buffer instead of behind an
 * io_uring_recvmsg_out header. POLL_FIRST: a socket is usually empty when
 * armed, so skip the attempt that would only find nothing.
 *
 * Forward: the receive completion's buffer goes out as it is, one
 * IORING_OP_SEND with the route's static destination (sendto, Linux 6.10+;
 * where a probe at start shows the kernel cannot, IORING_OP_SENDMSG with a
 * msghdr per buffer instead), MSG_DONTWAIT so that a full socket buffer fails the send
 * (counted dropped) like sendmmsg in floor_relay, instead of parking it
 * in the ring. The buffer returns to the buffer ring when the send
 * completes, whatever the result.
 *
 * Batching: every completion that is there is handled, the sends it makes
 * are queued as SQEs, and one io_uring_enter submits them all and waits
 * for the next completions. A UDP send with MSG_DONTWAIT completes inside
 * that submission, so its completion is already there when the wait
 * starts: the wait asks for one more completion than the sends it submits,
 * else it would return at once and a packet would cost two system calls
 * at low load. DEFER_TASKRUN (with SINGLE_ISSUER) runs the kernel's
 * completion work only inside that wait, in our context, rather than
 * interrupting us for each packet.
 *
 * A multishot receive ends (a completion without IORING_CQE_F_MORE) when
 * the buffer ring is empty (-ENOBUFS: every buffer is waiting for its send)
 * or on an error; it is armed again in the same batch, after the buffers of
 * that batch's send completions went back to the ring. What stays in the
 * socket meanwhile is not lost.
 *
 * --sqpoll: a kernel thread (pinned to the relay's CPU) takes the SQEs
 * instead of io_uring_enter; it is a thread of this process, so its CPU
 * time shows in /proc/PID/stat with ours; it spins for URING_SQ_IDLE_MS
 * after the last SQE before it sleeps.
 */
#define URING_BUFS 4096 /* provided buffers, a power of 2 */
#define URING_BUF_SZ 2048
#define URING_BGID 0
#define URING_SQ 2048
#define URING_BATCH 512 /* CQEs looked at a time */
#define URING_SQ_IDLE_MS 10

/* user_data: what completed (2 bits), route, buffer id */
#define UD_RECV 1ull
#define UD_SEND 2ull
#define UD(kind, route, bid) \
	((kind) << 62 | (uint64_t)(uint32_t)(route) << 16 | (uint16_t)(bid))
#define UD_KIND(ud) ((ud) >> 62)
#define UD_ROUTE(ud) ((int)(((ud) >> 16) & 0xffffffffu))
#define UD_BID(ud) ((unsigned)((ud)&0xffff))

struct uring_relay
{
	struct io_uring ring;
	struct froute *r;
	bool sqpoll;
	struct io_uring_buf_ring *br;
	uint8_t *bufs;
	int recycled;	   /* buffers added to br since the last advance */
	unsigned sq_sends; /* sends queued since the last submission */
	/* the IORING_OP_SENDMSG fallback: a msghdr and iovec a buffer */
	bool use_sendmsg;
	struct msghdr *msgs;
	struct iovec *iovs;
	unsigned long long relayed, dropped, batches, rearms, enobufs, rx_err;
	unsigned long long rx_err_run; /* receive errors in a row */
};

static struct io_uring_sqe *uring_sqe(struct uring_relay *u)
{
	struct io_uring_sqe *sqe;
	int tries;

	/* the SQ holds more than a batch usually makes, so this is rare:
	 * submit what is queued to make room (with SQPOLL, hand it to the
	 * thread and wait for it to take some) */
	for(tries = 0; tries < 1000; tries++) {
		sqe = io_uring_get_sqe(&u->ring);
		if(sqe)
			return sqe;
		io_uring_submit(&u->ring);
		if(u->sqpoll)
			io_uring_sqring_wait(&u->ring);
		/* their completions wait in the CQ: the next wait may end
		 * early, which costs a loop, no more */
		u->sq_sends = 0;
	}
	fprintf(stderr, "ice-bench: io_uring: no SQE\n");
	exit(2);
}

static void uring_arm(struct uring_relay *u, int route)
{
	struct io_uring_sqe *sqe = uring_sqe(u);

	io_uring_prep_recv_multishot(sqe, u->r[route].fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = URING_BGID;
	sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
	io_uring_sqe_set_data64(sqe, UD(UD_RECV, route, 0));
}

static void uring_recycle(struct uring_relay *u, unsigned bid)
{
	io_uring_buf_ring_add(u->br, u->bufs + (size_t)bid * URING_BUF_SZ,
			URING_BUF_SZ, (unsigned short)bid,
			io_uring_buf_ring_mask(URING_BUFS), u->recycled++);
}

static void uring_forward(
		struct uring_relay *u, int route, unsigned bid, unsigned len)
{
	struct io_uring_sqe *sqe = uring_sqe(u);
	struct froute *rt = &u->r[route];
	uint8_t *p = u->bufs + (size_t)bid * URING_BUF_SZ;

	if(u->use_sendmsg) {
		struct msghdr *m = &u->msgs[bid];

		u->iovs[bid].iov_base = p;
		u->iovs[bid].iov_len = len;
		memset(m, 0, sizeof(*m));
		m->msg_name = &rt->dst;
		m->msg_namelen = sizeof(rt->dst);
		m->msg_iov = &u->iovs[bid];
		m->msg_iovlen = 1;
		io_uring_prep_sendmsg(sqe, rt->out_fd, m, MSG_DONTWAIT);
	} else {
		io_uring_prep_send(sqe, rt->out_fd, p, len, MSG_DONTWAIT);
		io_uring_prep_send_set_addr(
				sqe, (const struct sockaddr *)&rt->dst, sizeof(rt->dst));
	}
	io_uring_sqe_set_data64(sqe, UD(UD_SEND, route, bid));
	u->sq_sends++;
}

static void uring_cqe(struct uring_relay *u, const struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	int route = UD_ROUTE(ud), res = cqe->res;
	unsigned bid;

	if(UD_KIND(ud) == UD_SEND) {
		uring_recycle(u, UD_BID(ud));
		if(res >= 0)
			u->relayed++;
		else
			u->dropped++;
		return;
	}
	if(cqe->flags & IORING_CQE_F_BUFFER) {
		bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		if(res >= 0)
			uring_forward(u, route, bid, (unsigned)res);
		else
			uring_recycle(u, bid);
	}
	if(res >= 0) {
		u->rx_err_run = 0;
	} else if(res == -ENOBUFS) {
		u->enobufs++;
	} else if(res != -ECANCELED) {
		u->rx_err++;
		/* no multishot receive here (Linux < 6.0) or a socket that
		 * fails every time: stop rather than spin re-arming it */
		if(res == -EINVAL || res == -EOPNOTSUPP || ++u->rx_err_run > 100000) {
			fprintf(stderr, "ice-bench: io_uring: multishot recv: %s\n",
					strerror(-res));
			exit(2);
		}
	}
	if(!(cqe->flags & IORING_CQE_F_MORE) && !stop_flag) {
		u->rearms++;
		uring_arm(u, route);
	}
}

/* Whether IORING_OP_SEND takes a destination address (Linux 6.10+): an
 * older kernel rejects it (-EINVAL) or ignores it (-EDESTADDRREQ on an
 * unconnected socket). An empty datagram from a socket of our own to
 * itself on 127.0.0.1, before anything else is on the ring. */
static bool uring_can_sendto(struct uring_relay *u)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	int fd, ret, res = -1;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if(fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0
			|| getsockname(fd, (struct sockaddr *)&a, &alen) < 0)
		die("io_uring probe socket");
	sqe = uring_sqe(u);
	io_uring_prep_send(sqe, fd, "", 0, MSG_DONTWAIT);
	io_uring_prep_send_set_addr(sqe, (const struct sockaddr *)&a, sizeof(a));
	io_uring_sqe_set_data64(sqe, 0);
	ret = io_uring_submit_and_wait(&u->ring, 1);
	if(ret >= 0 && io_uring_peek_cqe(&u->ring, &cqe) == 0) {
		res = cqe->res;
		io_uring_cqe_seen(&u->ring, cqe);
	}
	close(fd);
	return res >= 0;
}

/* the one CPU this thread is pinned to, -1 if not just one */
static int pinned_cpu(void)
{
	cpu_set_t set;
	int i;

	if(sched_getaffinity(0, sizeof(set), &set) < 0 || CPU_COUNT(&set) != 1)
		return -1;
	for(i = 0; i < CPU_SETSIZE; i++)
		if(CPU_ISSET(i, &set))
			return i;
	return -1;
}

static void uring_init(struct uring_relay *u, int nroutes)
{
	struct io_uring_params p;
	struct io_uring_buf_reg reg;
	unsigned cq = 4096;
	size_t brsz;
	int ret, i, cpu;

	/* room for every completion that can be pending: a receive and a
	 * send for each buffer, the end of each multishot receive; more go
	 * to the kernel's overflow list, slower but not lost */
	while(cq < 2u * URING_BUFS + (unsigned)nroutes && cq < 65536)
		cq *= 2;
	memset(&p, 0, sizeof(p));
	p.cq_entries = cq;
	p.flags =
			IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | IORING_SETUP_SUBMIT_ALL;
	if(u->sqpoll) {
		p.flags |= IORING_SETUP_SQPOLL;
		p.sq_thread_idle = URING_SQ_IDLE_MS;
		/* else the kernel lets the thread run on any CPU, the
		 * generator's too */
		cpu = pinned_cpu();
		if(cpu >= 0) {
			p.flags |= IORING_SETUP_SQ_AFF;
			p.sq_thread_cpu = (unsigned)cpu;
		}
	} else {
		p.flags |= IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER
				   | IORING_SETUP_DEFER_TASKRUN;
	}
	ret = io_uring_queue_init_params(URING_SQ, &u->ring, &p);
	if(ret == -EINVAL && !u->sqpoll) {
		/* DEFER_TASKRUN is Linux 6.1+ */
		p.flags &= ~(IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER
					 | IORING_SETUP_DEFER_TASKRUN);
		ret = io_uring_queue_init_params(URING_SQ, &u->ring, &p);
	}
	if(ret < 0) {
		errno = -ret;
		die("io_uring_queue_init");
	}
	if(!(p.features & IORING_FEAT_EXT_ARG)) {
		/* without it a wait with a timeout costs an extra SQE and
		 * completion each time; not worth supporting here */
		fprintf(stderr, "ice-bench: io_uring: kernel too old (no EXT_ARG)\n");
		exit(2);
	}

	/* the buffer ring: page aligned, shared with the kernel */
	brsz = URING_BUFS * sizeof(struct io_uring_buf);
	u->br = mmap(NULL, brsz, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	u->bufs = mmap(NULL, (size_t)URING_BUFS * URING_BUF_SZ,
			PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	u->msgs = calloc(URING_BUFS, sizeof(*u->msgs));
	u->iovs = calloc(URING_BUFS, sizeof(*u->iovs));
	if(u->br == MAP_FAILED || u->bufs == MAP_FAILED || u->msgs == NULL
			|| u->iovs == NULL)
		die("io_uring buffers");
	io_uring_buf_ring_init(u->br);
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uint64_t)(uintptr_t)u->br;
	reg.ring_entries = URING_BUFS;
	reg.bgid = URING_BGID;
	ret = io_uring_register_buf_ring(&u->ring, &reg, 0);
	if(ret < 0) {
		errno = -ret;
		die("io_uring_register_buf_ring (Linux 5.19+)");
	}
	u->use_sendmsg = !uring_can_sendto(u);
	u->recycled = 0;
	for(i = 0; i < URING_BUFS; i++)
		uring_recycle(u, (unsigned)i);
	io_uring_buf_ring_advance(u->br, u->recycled);
	u->recycled = 0;
}

static int floor_relay_uring(const struct opts *o, struct leg *legs, int nlegs)
{
	static struct uring_relay u;
	struct io_uring_cqe *cqe, *cqes[URING_BATCH];
	struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 200000000};
	unsigned n, k;
	int i, ret;

	u.r = floor_setup(o, legs, nlegs);
	u.sqpoll = o->sqpoll;
	/* first, so that the SQPOLL thread can be put on the same CPU */
	pin_cpu(o->cpu);
	uring_init(&u, 2 * nlegs);
	for(i = 0; i < 2 * nlegs; i++)
		uring_arm(&u, i);
	ret = io_uring_submit(&u.ring);
	if(ret < 0) {
		errno = -ret;
		die("io_uring_submit");
	}
	fprintf(stderr,
			"ice-bench: floor relay up, %d calls, %d sockets, io_uring "
			"recv multishot + %s%s\n",
			nlegs, 2 * nlegs, u.use_sendmsg ? "sendmsg" : "send",
			u.sqpoll ? ", SQPOLL" : "");
	fflush(stderr);
	while(!stop_flag) {
		/* submit the sends (and re-arms) of the last batch and wait
		 * for a completion beyond theirs, one system call; the timeout
		 * is for a signal that comes just before we block (and for a
		 * send that would not complete at once) */
		ret = io_uring_submit_and_wait_timeout(
				&u.ring, &cqe, u.sq_sends + 1, &ts, NULL);
		u.sq_sends = 0;
		if(ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN
				&& ret != -EBUSY) {
			errno = -ret;
			die("io_uring_submit_and_wait");
		}
		do {
			n = io_uring_peek_batch_cqe(&u.ring, cqes, URING_BATCH);
			for(k = 0; k < n; k++)
				uring_cqe(&u, cqes[k]);
			/* buffers back before the re-arms are submitted */
			if(u.recycled) {
				io_uring_buf_ring_advance(u.br, u.recycled);
				u.recycled = 0;
			}
			io_uring_cq_advance(&u.ring, n);
			if(n)
				u.batches++;
		} while(n == URING_BATCH);
	}
	fprintf(stderr,
			"ice-bench: floor relay: %llu relayed, %llu dropped, %llu "
			"wakeups\n",
			u.relayed, u.dropped, u.batches);
	fprintf(stderr,
			"ice-bench: io_uring: %llu re-arms, %llu ENOBUFS, %llu "
			"receive errors\n",
			u.rearms, u.enobufs, u.rx_err);
	io_uring_queue_exit(&u.ring);
	return 0;
}

/* ------------------------------------------------------------------ */
/* generator */

/*
 * Two ways to move packets:
 *
 * fast (default): the per-call A/B sockets are bound (they own the ports,
 * so nothing answers the relay with ICMP) but drop everything with a BPF
 * filter; packets go out through one raw IPPROTO_RAW socket with sendmmsg,
 * each with its stream's own source port, many streams a system call; they
 * are received from an AF_PACKET TPACKET_V2 ring on lo (kernel timestamp,
 * no system call a packet). The generator then costs a fraction of what the
 * relay costs and stays out of the measurement.
 *
 * sockets: sendto from each stream's socket and epoll + recvmmsg on them,
 * what an application would do; it costs about as much CPU as a relay, so
 * it only serves to cross-check the fast path at low load.
 *
 * What fast io costs the relay: its sends to the generator pass the
 * AF_PACKET tap (tpacket_rcv, ~0.3 us a packet on the test VM, the same for
 * every relay) and a drop-all socket filter, instead of a socket enqueue
 * and a wake-up of a reader.
 */
enum io_mode
{
	IO_FAST,
	IO_SOCKETS
};

#define TX_BATCH 16
#define IPUDP (20 + 8)
#define RING_FRAME 256
#define RING_BLOCK (1u << 20)
#define RING_BLOCKS 32u
#define SNAP 96

struct gen
{
	const struct opts *o;
	int nsock;
	struct gsock *s;
	int ep, tfd;
	int64_t t0, steady0, steady1, end;
	int64_t period_ns;
	/* schedule: the next packet is stream `cur` of cycle `cycle` */
	int64_t cycle;
	int cur;
	bool in_steady;
	/* fast io */
	int raw_fd, pkt_fd;
	uint8_t *ring;
	unsigned ring_frames, ring_next;
	int64_t rt_off; /* CLOCK_REALTIME - CLOCK_MONOTONIC, ns */
	int32_t *port2sock;
	struct mmsghdr tx[TX_BATCH];
	struct iovec tx_iov[TX_BATCH];
	uint8_t tx_buf[TX_BATCH][IPUDP + PKT_LEN];
	int ntx;
	bool tx_steady[TX_BATCH];
	/* counters (steady window only unless named otherwise) */
	uint64_t sent, recv, send_err, misrouted, bad, total_sent, total_recv;
	uint64_t late; /* steady packets that came after the drain */
	uint64_t skipped; /* steady slots the generator was too late for */
	unsigned tick_cap; /* packets sent at most in one tick */
	int64_t mark0, mark1; /* when the relay's CPU was read */
	long long psi0, psi1; /* /proc/pressure/cpu "some" total there */
	uint64_t ring_drops;
	uint64_t max_sched_lag_ns;
	uint32_t *hist;
	uint64_t hist_over;
	uint64_t lat_max_ns;
	double gen_cpu0, gen_cpu1;
	struct cpustat cs0, cs1;
};

static int64_t due_of(const struct gen *g, int64_t cycle, int s)
{
	return g->t0 + cycle * g->period_ns
		   + (int64_t)s * g->period_ns / g->nsock;
}

/* 12-byte RTP header and the 160-byte payload of stream s's next packet */
static void fill_rtp(struct gen *g, int s, uint8_t *pkt, int64_t now,
		bool steady)
{
	struct gsock *k = &g->s[s];

	pkt[0] = 0x80;
	pkt[1] = 0; /* PT 0 = PCMU */
	pkt[2] = (uint8_t)(k->seq >> 8);
	pkt[3] = (uint8_t)k->seq;
	put32(pkt + 4, k->ts);
	put32(pkt + 8, k->ssrc);
	memset(pkt + RTP_HDR, 0xff, PAYLOAD); /* mu-law silence */
	put32(pkt + RTP_HDR, MAGIC);
	put32(pkt + RTP_HDR + 4, (uint32_t)s);
	put64(pkt + RTP_HDR + 8, (uint64_t)now);
	pkt[RTP_HDR + 16] = steady ? 1 : 0;
	k->seq++;
	k->ts += 8000u / (uint32_t)g->o->pps; /* 8 kHz clock */
}

/*
 * IPv4 + UDP headers; the kernel fills in the IP checksum and length. The
 * UDP checksum is 0 ("none", RFC 768, allowed over IPv4): the relay's
 * kernel then takes the payload as verified, as it would behind a NIC with
 * receive checksum offload. (A computed checksum would make every relay
 * verify it in software in recvmsg, ~9 % of a relay's CPU on the test VM,
 * a cost it does not have in production.)
 */
static void fill_ipudp(uint8_t *p, const struct sockaddr_in *src,
		const struct sockaddr_in *dst)
{
	uint8_t *u = p + 20;
	uint16_t ulen = 8 + PKT_LEN;

	memset(p, 0, IPUDP);
	p[0] = 0x45;
	p[2] = (uint8_t)((IPUDP + PKT_LEN) >> 8);
	p[3] = (uint8_t)(IPUDP + PKT_LEN);
	p[6] = 0x40; /* DF */
	p[8] = 64;
	p[9] = IPPROTO_UDP;
	memcpy(p + 12, &src->sin_addr, 4);
	memcpy(p + 16, &dst->sin_addr, 4);
	memcpy(u, &src->sin_port, 2);
	memcpy(u + 2, &dst->sin_port, 2);
	u[4] = (uint8_t)(ulen >> 8);
	u[5] = (uint8_t)ulen;
}

static void tx_flush(struct gen *g)
{
	int i = 0, n;

	while(i < g->ntx) {
		n = sendmmsg(g->raw_fd, g->tx + i, (unsigned)(g->ntx - i), 0);
		if(n <= 0) {
			if(n < 0 && errno == EINTR)
				continue;
			for(; i < g->ntx; i++)
				if(g->tx_steady[i])
					g->send_err++;
			break;
		}
		for(int k = i; k < i + n; k++) {
			g->total_sent++;
			if(g->tx_steady[k])
				g->sent++;
		}
		i += n;
	}
	g->ntx = 0;
}

static void send_one(struct gen *g, int s, int64_t now)
{
	struct gsock *k = &g->s[s];
	bool steady = now >= g->steady0 && now < g->steady1;
	uint8_t pkt[PKT_LEN];
	ssize_t rc;

	if(g->o->io == IO_FAST) {
		uint8_t *b = g->tx_buf[g->ntx];
		struct sockaddr_in src;

		fill_rtp(g, s, b + IPUDP, now, steady);
		memset(&src, 0, sizeof(src));
		src.sin_addr = g->o->local_addr;
		src.sin_port = htons(k->port);
		fill_ipudp(b, &src, &k->dst);
		g->tx_iov[g->ntx].iov_base = b;
		g->tx_iov[g->ntx].iov_len = IPUDP + PKT_LEN;
		memset(&g->tx[g->ntx].msg_hdr, 0, sizeof(g->tx[g->ntx].msg_hdr));
		g->tx[g->ntx].msg_hdr.msg_iov = &g->tx_iov[g->ntx];
		g->tx[g->ntx].msg_hdr.msg_iovlen = 1;
		g->tx[g->ntx].msg_hdr.msg_name = &k->dst;
		g->tx[g->ntx].msg_hdr.msg_namelen = sizeof(k->dst);
		g->tx_steady[g->ntx] = steady;
		if(++g->ntx == TX_BATCH)
			tx_flush(g);
		return;
	}
	fill_rtp(g, s, pkt, now, steady);
	rc = sendto(k->fd, pkt, sizeof(pkt), MSG_DONTWAIT,
			(struct sockaddr *)&k->dst, sizeof(k->dst));
	if(rc != (ssize_t)sizeof(pkt)) {
		if(steady)
			g->send_err++;
		return;
	}
	g->total_sent++;
	if(steady)
		g->sent++;
}

/*
 * Send every packet due by now. Streams are spread evenly over the period
 * (stream s at phase s/nsock), so each 1 ms tick sends one batch of about
 * nsock*pps/1000 packets, in sendmmsg calls of TX_BATCH (fast io). A
 * generator that fell behind (other load on its CPU) catches up at most
 * tick_cap packets a tick, so it still reads the ring every tick, and skips
 * (counts, does not send) packets more than SKIP_NS late: the offered load
 * drops and the report says so, instead of the run falling apart.
 */
static void send_due(struct gen *g)
{
	int64_t due, lag, now = mono_ns();
	unsigned n = 0;

	for(;;) {
		due = due_of(g, g->cycle, g->cur);
		if(due > now || due >= g->steady1)
			break;
		lag = now - due;
		if(lag > SKIP_NS) {
			if(due >= g->steady0)
				g->skipped++;
		} else {
			if(n == g->tick_cap)
				break;
			if(due >= g->steady0 && (uint64_t)lag > g->max_sched_lag_ns)
				g->max_sched_lag_ns = (uint64_t)lag;
			send_one(g, g->cur, now);
			/* the send timestamp stays within a few microseconds of
			 * the real send even in a long batch */
			if(++n % TX_BATCH == 0)
				now = mono_ns();
		}
		if(++g->cur == g->nsock) {
			g->cur = 0;
			g->cycle++;
		}
	}
	if(g->ntx)
		tx_flush(g);
}

/* p: RTP packet received on socket sk (index); rx_ns: CLOCK_MONOTONIC */
static void on_rx(struct gen *g, int sk, const uint8_t *p, size_t len,
		int64_t rx_ns)
{
	uint32_t stream;
	uint64_t sent_ns, lat;

	if(len < RTP_HDR + 17 || p[0] != 0x80 || get32(p + RTP_HDR) != MAGIC) {
		g->bad++;
		return;
	}
	g->total_recv++;
	stream = get32(p + RTP_HDR + 4);
	if(stream >= (uint32_t)g->nsock || (int)(stream ^ 1u) != sk) {
		g->misrouted++;
		return;
	}
	if(p[RTP_HDR + 16] != 1)
		return; /* warm-up */
	if(rx_ns > g->end) {
		g->late++;
		return;
	}
	g->recv++;
	sent_ns = get64(p + RTP_HDR + 8);
	lat = (uint64_t)rx_ns > sent_ns ? ((uint64_t)rx_ns - sent_ns) : 0;
	if(lat > g->lat_max_ns)
		g->lat_max_ns = lat;
	if(lat / 1000 < HIST_US)
		g->hist[lat / 1000]++;
	else
		g->hist_over++;
}

static void drain_sock(struct gen *g, int sk)
{
	static uint8_t buf[RX_BATCH][256];
	struct mmsghdr msgs[RX_BATCH];
	struct iovec iov[RX_BATCH];
	int64_t now;
	int i, n;

	do {
		for(i = 0; i < RX_BATCH; i++) {
			iov[i].iov_base = buf[i];
			iov[i].iov_len = sizeof(buf[i]);
			memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
		}
		n = recvmmsg(g->s[sk].fd, msgs, RX_BATCH, MSG_DONTWAIT, NULL);
		if(n <= 0)
			return;
		now = mono_ns();
		for(i = 0; i < n; i++)
			on_rx(g, sk, buf[i], msgs[i].msg_len, now);
	} while(n == RX_BATCH);
}

/* the kernel's stamps are CLOCK_REALTIME: keep the offset to MONOTONIC
 * fresh (sampled every tick, so a clock slew cannot matter) */
static void sample_rt_off(struct gen *g)
{
	struct timespec a, b, c;
	int64_t m;

	clock_gettime(CLOCK_MONOTONIC, &a);
	clock_gettime(CLOCK_REALTIME, &b);
	clock_gettime(CLOCK_MONOTONIC, &c);
	m = ((int64_t)a.tv_sec * 1000000000ll + a.tv_nsec
				+ (int64_t)c.tv_sec * 1000000000ll + c.tv_nsec)
		/ 2;
	g->rt_off = (int64_t)b.tv_sec * 1000000000ll + b.tv_nsec - m;
}

static void ring_poll(struct gen *g)
{
	struct tpacket2_hdr *h;
	const uint8_t *ip;
	unsigned ihl, len;
	uint16_t dport;
	int64_t rx;
	int32_t sk;

	for(;;) {
		h = (struct tpacket2_hdr *)(g->ring
									+ (size_t)g->ring_next * RING_FRAME);
		if(!(__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE)
				   & TP_STATUS_USER))
			break;
		ip = (const uint8_t *)h + h->tp_net;
		len = h->tp_snaplen;
		if(len >= 20 && (ip[0] >> 4) == 4 && ip[9] == IPPROTO_UDP
				&& len >= (ihl = 4u * (ip[0] & 15u)) + 8) {
			dport = (uint16_t)(ip[ihl + 2] << 8 | ip[ihl + 3]);
			sk = g->port2sock[dport];
			rx = (int64_t)h->tp_sec * 1000000000ll + h->tp_nsec - g->rt_off;
			if(sk >= 0)
				on_rx(g, sk, ip + ihl + 8, len - ihl - 8, rx);
		}
		__atomic_store_n(&h->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
		if(++g->ring_next == g->ring_frames)
			g->ring_next = 0;
	}
}

/* the AF_PACKET ring on lo: UDP to our ports only, SNAP bytes of each */
static void ring_open(struct gen *g, uint16_t lo_port, uint16_t hi_port)
{
	struct sock_filter code[] = {
			BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 9),				 /* proto */
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_UDP, 0, 7),
			BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 6),				 /* frag */
			BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x1fff, 5, 0),
			BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 0),				 /* ihl */
			BPF_STMT(BPF_LD | BPF_H | BPF_IND, 2),				 /* dport */
			BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, lo_port, 0, 2),
			BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, hi_port, 1, 0),
			BPF_STMT(BPF_RET | BPF_K, SNAP),
			BPF_STMT(BPF_RET | BPF_K, 0),
	};
	struct sock_fprog prog = {sizeof(code) / sizeof(code[0]), code};
	struct tpacket_req req;
	struct sockaddr_ll sll;
	int v = TPACKET_V2, one = 1;

	g->pkt_fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if(g->pkt_fd < 0)
		die("AF_PACKET socket (needs CAP_NET_RAW; try --io sockets)");
	if(setsockopt(g->pkt_fd, SOL_PACKET, PACKET_VERSION, &v, sizeof(v)) < 0)
		die("PACKET_VERSION");
	if(setsockopt(g->pkt_fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one,
			   sizeof(one))
			< 0)
		die("PACKET_IGNORE_OUTGOING");
	if(setsockopt(g->pkt_fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog,
			   sizeof(prog))
			< 0)
		die("SO_ATTACH_FILTER");
	memset(&req, 0, sizeof(req));
	req.tp_block_size = RING_BLOCK;
	req.tp_block_nr = RING_BLOCKS;
	req.tp_frame_size = RING_FRAME;
	req.tp_frame_nr = RING_BLOCK / RING_FRAME * RING_BLOCKS;
	if(setsockopt(g->pkt_fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req))
			< 0)
		die("PACKET_RX_RING");
	g->ring_frames = req.tp_frame_nr;
	g->ring = mmap(NULL, (size_t)RING_BLOCK * RING_BLOCKS,
			PROT_READ | PROT_WRITE, MAP_SHARED, g->pkt_fd, 0);
	if(g->ring == MAP_FAILED)
		die("mmap ring");
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_IP);
	sll.sll_ifindex = (int)if_nametoindex("lo");
	if(sll.sll_ifindex == 0 || bind(g->pkt_fd, (struct sockaddr *)&sll,
									   sizeof(sll))
									   < 0)
		die("bind AF_PACKET to lo");
}

static uint64_t ring_drops(struct gen *g)
{
	struct tpacket_stats st;
	socklen_t sl = sizeof(st);

	if(getsockopt(g->pkt_fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl) < 0)
		return 0;
	return st.tp_drops;
}

static double percentile(const struct gen *g, double q)
{
	uint64_t want, acc = 0;
	uint32_t i;

	if(g->recv == 0)
		return -1;
	want = (uint64_t)(q * (double)g->recv);
	if(want >= g->recv)
		want = g->recv - 1;
	for(i = 0; i < HIST_US; i++) {
		acc += g->hist[i];
		if(acc > want)
			return (double)i + 0.5;
	}
	return (double)g->lat_max_ns / 1000.0;
}

static void steady_mark(struct gen *g, bool begin)
{
	int i;

	for(i = 0; i < g->o->ngroups; i++) {
		struct group *gr = (struct group *)&g->o->groups[i];
		if(begin)
			gr->t0 = group_ticks(gr);
		else
			gr->t1 = group_ticks(gr);
	}
	if(begin) {
		g->mark0 = mono_ns();
		g->psi0 = psi_cpu_some_us();
		g->gen_cpu0 = self_cpu_s();
		read_cpustat(&g->cs0);
	} else {
		g->mark1 = mono_ns();
		g->psi1 = psi_cpu_some_us();
		g->gen_cpu1 = self_cpu_s();
		read_cpustat(&g->cs1);
	}
}

static void report(struct gen *g, int nlegs)
{
	const struct opts *o = g->o;
	double win = (double)(g->steady1 - g->steady0) / 1e9;
	/* CPU % over the interval between the two readings (within a tick or
	 * two of the window) */
	double cwin = g->mark1 > g->mark0 ? (double)(g->mark1 - g->mark0) / 1e9
									  : win;
	uint64_t got = g->recv < g->sent ? g->recv : g->sent;
	double loss = g->sent ? 100.0 * (double)(g->sent - got) / (double)g->sent
						  : 0;
	double hz = (double)sysconf(_SC_CLK_TCK);
	double p50 = percentile(g, 0.50), p99 = percentile(g, 0.99);
	double p999 = percentile(g, 0.999);
	double gen_pct = 100.0 * (g->gen_cpu1 - g->gen_cpu0) / cwin;
	double offered = 2.0 * nlegs * o->pps;
	/* share of the window in which some task waited for a CPU: other load
	 * (or the relay's own processes competing on its CPU) */
	double psi = g->psi0 >= 0 && g->psi1 >= g->psi0
						 ? 100.0 * (double)(g->psi1 - g->psi0) / 1e6 / cwin
						 : -1.0;
	int i;

	if(o->json) {
		printf("{\"calls\": %d, \"streams\": %d, \"pps_per_dir\": %d, "
			   "\"io\": \"%s\", \"warmup_s\": %.3f, \"duration_s\": %.3f, "
			   "\"target_pps\": %.0f, \"sent_pps\": %.1f, "
			   "\"sent\": %" PRIu64 ", \"received\": %" PRIu64
			   ", \"loss_pct\": %.4f, \"send_errors\": %" PRIu64
			   ", \"misrouted\": %" PRIu64 ", \"bad\": %" PRIu64
			   ", \"late\": %" PRIu64 ", \"skipped\": %" PRIu64
			   ", \"ring_drops\": %" PRIu64
			   ", \"total_sent\": %" PRIu64 ", \"total_received\": %" PRIu64
			   ", \"relayed_pps\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f, "
			   "\"p999_us\": %.1f, \"max_us\": %.1f, "
			   "\"max_sched_lag_us\": %.1f, \"gen_cpu_pct\": %.1f, "
			   "\"psi_cpu_some_pct\": %.1f, \"groups\": [",
				nlegs, g->nsock, o->pps,
				o->io == IO_FAST ? "fast" : "sockets", o->warmup_s, win,
				offered, (double)g->sent / win, g->sent, g->recv, loss,
				g->send_err, g->misrouted, g->bad, g->late, g->skipped,
				g->ring_drops,
				g->total_sent, g->total_recv, (double)g->recv / win, p50, p99,
				p999, (double)g->lat_max_ns / 1000.0,
				(double)g->max_sched_lag_ns / 1000.0, gen_pct, psi);
		for(i = 0; i < o->ngroups; i++) {
			const struct group *gr = &o->groups[i];
			double cpu = (double)(gr->t1 - gr->t0) / hz;
			printf("%s{\"name\": \"%s\", \"npids\": %d, \"cpu_s\": %.3f, "
				   "\"cpu_pct\": %.2f, \"us_per_pkt\": %.3f, \"lost_pid\": %s}",
					i ? ", " : "", gr->name, gr->npids, cpu, 100.0 * cpu / cwin,
					g->recv ? cpu * 1e6 / (double)g->recv : -1.0,
					gr->lost ? "true" : "false");
		}
		printf("], \"cpus\": [");
		for(i = 0; i < g->cs1.n && i < g->cs0.n; i++) {
			double tot = (double)(g->cs1.total[i] - g->cs0.total[i]);
			printf("%s%.1f", i ? ", " : "",
					tot > 0 ? 100.0 * (double)(g->cs1.busy[i] - g->cs0.busy[i])
									  / tot
							: 0.0);
		}
		printf("]}\n");
		fflush(stdout);
		return;
	}
	printf("calls %d (%d streams, %d pkt/s each, io %s), warm-up %.1f s, "
		   "steady %.1f s\n",
			nlegs, g->nsock, o->pps, o->io == IO_FAST ? "fast" : "sockets",
			o->warmup_s, win);
	printf("offered %.0f pkt/s, sent %" PRIu64 " (%.0f pkt/s), received %" PRIu64
		   ", loss %.3f %%, relayed %.0f pkt/s\n",
			offered, g->sent, (double)g->sent / win, g->recv, loss,
			(double)g->recv / win);
	printf("misrouted %" PRIu64 ", malformed %" PRIu64 ", late %" PRIu64
		   ", send errors %" PRIu64 ", skipped (generator late) %" PRIu64
		   ", rx ring drops %" PRIu64 "\n",
			g->misrouted, g->bad, g->late, g->send_err, g->skipped,
			g->ring_drops);
	printf("one-way latency us: p50 %.1f, p99 %.1f, p99.9 %.1f, max %.1f\n",
			p50, p99, p999, (double)g->lat_max_ns / 1000.0);
	printf("generator CPU %.1f %%, worst send lag %.1f us, CPU pressure "
		   "(PSI some) %.1f %%\n",
			gen_pct, (double)g->max_sched_lag_ns / 1000.0, psi);
	for(i = 0; i < o->ngroups; i++) {
		const struct group *gr = &o->groups[i];
		double cpu = (double)(gr->t1 - gr->t0) / hz;
		printf("relay %-12s %3d pids: CPU %.2f s = %.1f %%, %.3f us/pkt%s\n",
				gr->name, gr->npids, cpu, 100.0 * cpu / cwin,
				g->recv ? cpu * 1e6 / (double)g->recv : -1.0,
				gr->lost ? " (a process vanished)" : "");
	}
	for(i = 0; i < g->cs1.n && i < g->cs0.n; i++) {
		double tot = (double)(g->cs1.total[i] - g->cs0.total[i]);
		printf("cpu%d busy %.1f %%\n", i,
				tot > 0 ? 100.0 * (double)(g->cs1.busy[i] - g->cs0.busy[i]) / tot
						: 0.0);
	}
}

static int drop_all(int fd)
{
	struct sock_filter code[] = {BPF_STMT(BPF_RET | BPF_K, 0)};
	struct sock_fprog prog = {1, code};
	int sz = 4096;

	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog));
}

static int generator(const struct opts *o, struct leg *legs, int nlegs)
{
	struct gen g;
	struct epoll_event ev, evs[512];
	struct itimerspec its;
	uint64_t exp;
	int64_t now;
	uint16_t pmin = 65535, pmax = 0;
	int i, n, k;

	memset(&g, 0, sizeof(g));
	g.o = o;
	g.nsock = 2 * nlegs;
	g.period_ns = 1000000000ll / o->pps;
	g.tick_cap = (unsigned)(2 * (int64_t)g.nsock * TICK_NS / g.period_ns)
				 + TX_BATCH;
	g.s = calloc((size_t)g.nsock, sizeof(*g.s));
	g.hist = calloc(HIST_US, sizeof(*g.hist));
	g.port2sock = malloc(65536 * sizeof(*g.port2sock));
	if(g.s == NULL || g.hist == NULL || g.port2sock == NULL)
		die("calloc");
	for(i = 0; i < 65536; i++)
		g.port2sock[i] = -1;
	raise_nofile(g.nsock + 64);
	srandom((unsigned)(mono_ns() ^ getpid()));
	for(i = 0; i < nlegs; i++) {
		g.s[2 * i].port = legs[i].a_port;
		g.s[2 * i].dst = legs[i].ra;
		g.s[2 * i + 1].port = legs[i].b_port;
		g.s[2 * i + 1].dst = legs[i].rb;
	}
	for(i = 0; i < g.nsock; i++) {
		if(g.port2sock[g.s[i].port] >= 0) {
			fprintf(stderr, "ice-bench: local port %u used twice\n",
					g.s[i].port);
			return 2;
		}
		g.port2sock[g.s[i].port] = i;
		if(g.s[i].port < pmin)
			pmin = g.s[i].port;
		if(g.s[i].port > pmax)
			pmax = g.s[i].port;
		g.s[i].fd = udp_bind(o->local_ip, g.s[i].port, NULL);
		if(o->io == IO_FAST && drop_all(g.s[i].fd) < 0)
			die("SO_ATTACH_FILTER on a UDP socket");
		g.s[i].ssrc = (uint32_t)random() ^ ((uint32_t)random() << 16);
		g.s[i].seq = (uint16_t)random();
		g.s[i].ts = (uint32_t)random();
	}
	g.ep = epoll_create1(EPOLL_CLOEXEC);
	g.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	if(g.ep < 0 || g.tfd < 0)
		die("epoll/timerfd");
	if(o->io == IO_FAST) {
		int sz = 4 << 20;

		g.raw_fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
		if(g.raw_fd < 0)
			die("raw socket (needs CAP_NET_RAW; try --io sockets)");
		setsockopt(g.raw_fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz));
		ring_open(&g, pmin, pmax);
	} else {
		for(i = 0; i < g.nsock; i++) {
			memset(&ev, 0, sizeof(ev));
			ev.events = EPOLLIN;
			ev.data.u32 = (uint32_t)i;
			if(epoll_ctl(g.ep, EPOLL_CTL_ADD, g.s[i].fd, &ev) < 0)
				die("epoll_ctl");
		}
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u32 = UINT32_MAX;
	epoll_ctl(g.ep, EPOLL_CTL_ADD, g.tfd, &ev);
	pin_cpu(o->cpu);

	g.t0 = mono_ns() + 10000000ll;
	g.steady0 = g.t0 + (int64_t)(o->warmup_s * 1e9);
	g.steady1 = g.steady0 + (int64_t)(o->duration_s * 1e9);
	g.end = g.steady1 + (int64_t)o->drain_ms * 1000000ll;
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = g.t0 / 1000000000ll;
	its.it_value.tv_nsec = g.t0 % 1000000000ll;
	its.it_interval.tv_nsec = TICK_NS;
	if(timerfd_settime(g.tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		die("timerfd_settime");

	for(;;) {
		if(stop_flag) {
			fprintf(stderr, "ice-bench: interrupted\n");
			return 1;
		}
		if(o->io == IO_FAST) {
			/* one wake-up a millisecond: send what is due, read the ring */
			if(read(g.tfd, &exp, sizeof(exp)) < 0 && errno != EINTR)
				die("timerfd read");
			n = 1;
			evs[0].data.u32 = UINT32_MAX;
		} else {
			n = epoll_wait(g.ep, evs, 512, 100);
			if(n < 0) {
				if(errno == EINTR)
					continue;
				die("epoll_wait");
			}
		}
		now = mono_ns();
		if(!g.in_steady && now >= g.steady0 && now < g.steady1) {
			g.in_steady = true;
			steady_mark(&g, true);
		}
		if(g.in_steady && now >= g.steady1) {
			/* close the window before the drain: the relay's CPU for
			 * exactly the packets sent in it */
			g.in_steady = false;
			steady_mark(&g, false);
		}
		for(k = 0; k < n; k++) {
			if(evs[k].data.u32 == UINT32_MAX) {
				if(o->io == IO_SOCKETS
						&& read(g.tfd, &exp, sizeof(exp)) < 0
						&& errno != EAGAIN && errno != EINTR)
					die("timerfd read");
				send_due(&g);
				if(o->io == IO_FAST) {
					sample_rt_off(&g);
					ring_poll(&g);
				}
				continue;
			}
			drain_sock(&g, (int)evs[k].data.u32);
		}
		if(now >= g.end)
			break;
	}
	if(g.cs1.n == 0)
		steady_mark(&g, false); /* window never closed in the loop */
	/* what is still queued arrived too late to count */
	if(o->io == IO_FAST) {
		sample_rt_off(&g);
		ring_poll(&g);
		g.ring_drops = ring_drops(&g);
	} else {
		for(i = 0; i < g.nsock; i++)
			drain_sock(&g, i);
	}
	report(&g, nlegs);
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
			"usage: ice-bench [options] [LEGS|-]\n"
			"       ice-bench --floor-relay [--uring [--sqpoll]] [-c CPU] "
			"[-l IP] [LEGS|-]\n"
			"LEGS: one call a line: A_PORT RELAY_A_IP:PORT B_PORT "
			"RELAY_B_IP:PORT\n"
			"  -w, --warmup S        warm-up seconds (5)\n"
			"  -d, --duration S      steady window seconds (20)\n"
			"  -r, --pps N           packets/s per direction per call (50)\n"
			"  -c, --cpu N           pin to CPU N (default: the last CPU "
			"when there are 2+)\n"
			"  -l, --local-ip IP     address of the A/B sockets (127.0.0.1)\n"
			"  -g, --cpu-group NAME:PID[,PID...]  relay processes to "
			"measure (repeatable)\n"
			"  -D, --drain MS        wait for stragglers after the window "
			"(500)\n"
			"  -j, --json            one JSON line\n"
			"      --io fast|sockets fast: raw socket + sendmmsg out, "
			"AF_PACKET ring in (root);\n"
			"                        sockets: sendto/recvmmsg on the A/B "
			"sockets (default fast)\n"
			"      --floor-relay     be the floor relay instead\n"
			"      --uring           floor relay: io_uring instead of "
			"epoll + recvmmsg/sendmmsg\n"
			"      --sqpoll          with --uring: an SQPOLL kernel thread "
			"submits\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {{"warmup", 1, NULL, 'w'},
			{"duration", 1, NULL, 'd'}, {"pps", 1, NULL, 'r'},
			{"cpu", 1, NULL, 'c'}, {"local-ip", 1, NULL, 'l'},
			{"cpu-group", 1, NULL, 'g'}, {"drain", 1, NULL, 'D'},
			{"json", 0, NULL, 'j'}, {"floor-relay", 0, NULL, 'F'},
			{"io", 1, NULL, 'I'}, {"uring", 0, NULL, 'U'},
			{"sqpoll", 0, NULL, 'S'}, {"help", 0, NULL, 'h'},
			{NULL, 0, NULL, 0}};
	struct opts o;
	struct sigaction sa;
	struct leg *legs;
	int c, nlegs;

	memset(&o, 0, sizeof(o));
	o.local_ip = "127.0.0.1";
	o.warmup_s = 5;
	o.duration_s = 20;
	o.pps = 50;
	o.cpu = -1;
	o.drain_ms = 500;
	while((c = getopt_long(argc, argv, "w:d:r:c:l:g:D:jh", lo, NULL)) != -1) {
		switch(c) {
			case 'w':
				o.warmup_s = atof(optarg);
				break;
			case 'd':
				o.duration_s = atof(optarg);
				break;
			case 'r':
				o.pps = atoi(optarg);
				break;
			case 'c':
				o.cpu = atoi(optarg);
				break;
			case 'l':
				o.local_ip = optarg;
				break;
			case 'g':
				add_group(&o, optarg);
				break;
			case 'D':
				o.drain_ms = atoi(optarg);
				break;
			case 'j':
				o.json = true;
				break;
			case 'F':
				o.floor = true;
				break;
			case 'U':
				o.uring = true;
				break;
			case 'S':
				o.sqpoll = true;
				break;
			case 'I':
				if(strcmp(optarg, "fast") == 0)
					o.io = IO_FAST;
				else if(strcmp(optarg, "sockets") == 0)
					o.io = IO_SOCKETS;
				else
					usage();
				break;
			default:
				usage();
		}
	}
	if(o.pps <= 0 || o.pps > 1000 || o.duration_s <= 0 || o.warmup_s < 0
			|| o.drain_ms < 0 || argc - optind > 1 || (o.uring && !o.floor)
			|| (o.sqpoll && !o.uring))
		usage();
	o.legs_path = optind < argc ? argv[optind] : "-";
	if(inet_pton(AF_INET, o.local_ip, &o.local_addr) != 1) {
		fprintf(stderr, "ice-bench: bad local IP %s\n", o.local_ip);
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	legs = read_legs(o.legs_path, &nlegs);
	if(nlegs == 0) {
		fprintf(stderr, "ice-bench: no legs in %s\n", o.legs_path);
		return 2;
	}
	if(o.floor && o.uring)
		return floor_relay_uring(&o, legs, nlegs);
	if(o.floor)
		return floor_relay(&o, legs, nlegs);
	return generator(&o, legs, nlegs);
}
