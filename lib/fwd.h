/*
 * kamailio-ice: the forwarder. One or more processes, each owning the
 * sockets of the sessions hashed to it, relaying RTP/RTCP between the two
 * sides of each session with symmetric latching.
 *
 * SIP workers bind a session's sockets themselves (so a port written into
 * the SDP is really ours) and hand them to the owning forwarder over a
 * unix datagram socketpair with SCM_RIGHTS: the ports an SDP needed
 * (kice_fwd_add_ports) go with the one UPDATE sent after every SDP
 * (kice_fwd_update). Deleted sessions reach the forwarder through its
 * dead list (session.h); it returns their ports and frees them. It keeps
 * the sockets of an ended session open (up to half its share of the pool;
 * session.h, struct kice_pair), and the next session of that forwarder
 * takes such a "held" pair without any socket, bind, descriptor passing
 * or close; the others it closes.
 */
#ifndef KICE_FWD_H
#define KICE_FWD_H

#include <stdbool.h>
#include <stdint.h>

#include "addr.h"
#include "dtls.h"
#include "session.h"

enum kice_fwd_msg_type
{
	KICE_FWD_UPDATE = 2, /* take the new port pairs (2 fds each: RTP, RTCP)
						  * and re-read the session's SDP-derived state */
	KICE_FWD_KICK		 /* look at the dead list now */
};

#define KICE_FWD_MAX_PAIRS KICE_MAX_STREAMS /* new pairs per UPDATE */

struct kice_fwd_msg
{
	uint32_t type;
	uint32_t id;			/* session id, checked against s->id */
	struct kice_session *s; /* shm */
	uint8_t npairs;			/* UPDATE: pairs whose fds it carries */
	struct
	{
		uint16_t port; /* RTP port (RTCP = +1) */
		uint8_t side, stream;
		uint8_t held;  /* the forwarder has its sockets: no fds with it */
		uint8_t iface; /* interface index the sockets are bound on */
	} pair[KICE_FWD_MAX_PAIRS];
};

/* The port pairs a worker bound while processing one SDP, handed to the
 * forwarder with that SDP's UPDATE. */
struct kice_fwd_pending
{
	struct kice_fwd_msg m;
	int fds[2 * KICE_FWD_MAX_PAIRS];
	unsigned nfds; /* for the pairs not held */
};

struct kice_fwd_cfg
{
	struct kice_table *t;
	unsigned idx;				/* this forwarder's index */
	int ctl_fd;					/* read end of its control socketpair */
	uint32_t media_timeout_s;	/* 0 = never */
	uint32_t session_timeout_s; /* 0 = never */
	int tos;
	const struct kice_addr *ifaces; /* local address per interface index */
	struct kice_dtls_cert *cert;	/* our DTLS certificate (NULL: no DTLS) */
	unsigned nifaces;
	bool no_io_uring;			/* epoll + recvmmsg/sendmmsg even if io_uring works */
	bool no_socket_reuse;		/* close a session's sockets when it ends */
	volatile int *stop;			/* tests: return when *stop != 0 */
	void (*tick)(void);			/* host hook, called once per loop (may be NULL) */
};

/* Create the control socketpair for one forwarder (before forking):
 * sv[0] for the workers, sv[1] for the forwarder. 0 or -errno. */
int kice_fwd_channel(int sv[2]);

/* Start collecting the ports of one SDP of s */
void kice_fwd_pending_init(struct kice_fwd_pending *p, struct kice_session *s);

/* Allocate a port pair for (s, side, stream) unless it has one: one
 * s's forwarder holds open on interface iface, else a free one whose two
 * sockets are bound here on ip (port 0 of ip is ignored). Record the port
 * in s->side[side] and add the pair to p. Caller holds s's bucket lock.
 * Returns 0, -ENOSPC (pool exhausted), -EIO (no bindable pair). */
int kice_fwd_add_ports(struct kice_table *t, struct kice_fwd_pending *p,
		struct kice_session *s, int side, int stream, unsigned iface,
		const struct kice_addr *ip, int tos);

/* Send s's forwarder the UPDATE with p's pairs (caller holds the bucket
 * lock); the worker's copies of the sockets are closed either way and p
 * is emptied. 0, or -EIO: the forwarder did not take them, so their ports
 * are released and cleared from the session. */
int kice_fwd_update(
		struct kice_table *t, const int *ctl_fds, struct kice_fwd_pending *p);

/* Tell s's forwarder that s changed (an UPDATE without ports; caller
 * holds the bucket lock). Best effort: 0 or -errno. */
int kice_fwd_notify(const int *ctl_fds, struct kice_session *s);

/* Wake forwarder fwd to look at its dead list (after an unlink: the
 * session itself may already be gone), unless it wakes every 10 ms anyway
 * and looks at it then. Best effort. */
void kice_fwd_kick(struct kice_table *t, const int *ctl_fds, unsigned fwd);

/* The forwarder's loop. Never returns unless cfg->stop is set; errors are
 * logged and the loop carries on. Returns 0 on stop, -errno if it could
 * not start. */
int kice_fwd_run(const struct kice_fwd_cfg *cfg);

#endif
