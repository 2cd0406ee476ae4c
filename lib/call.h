/*
 * kamailio-ice: what ice_manage() does with one SIP message's SDP:
 * find or create the session, learn the sender's media addresses, anchor
 * each m-line on relay ports facing the recipient, and write the SDP the
 * recipient gets. Kamailio-free: the glue passes the message's facts in.
 */
#ifndef KICE_CALL_H
#define KICE_CALL_H

#include <stdbool.h>
#include <stddef.h>

#include "addr.h"
#include "flags.h"
#include "session.h"
#include "slice.h"

#define KICE_MAX_IFACES 8

struct kice_iface
{
	char name[32];
	struct kice_addr local;	  /* bound */
	struct kice_addr adv;	  /* written into SDP (= local if not given) */
};

/* "name/local-ip[!advertised-ip]" or "local-ip[!advertised-ip]" (name
 * "default"). 0 or -EINVAL. */
int kice_iface_parse(struct kice_iface *out, const char *s, size_t len);

struct kice_ctx
{
	struct kice_table *t;
	const int *ctl_fds; /* workers' ends, one per forwarder */
	const struct kice_iface *ifaces;
	unsigned nifaces;
	int tos;
	uint32_t relatch_window_ms;
	const char *fingerprint; /* "sha-256 AB:..." of our DTLS certificate */
};

struct kice_msg
{
	bool is_request; /* the SDP travels in a request (INVITE, ACK, ...) */
	bool final;		 /* reply: status >= 200 */
	enum kice_flag_op op;
	struct kice_slice callid, from_tag, to_tag;
	const char *body;
	size_t len;
};

/* Process one SDP. On success returns the new body's length written to
 * out (cap bytes), or 0 when the body is to be left as it is (mode pass).
 * Errors (the message must then be left untouched): -EBADMSG (malformed
 * SDP), -EINVAL (bad flags or message facts), -ENOSPC (ports exhausted or
 * body too large), -ENOTSUP (mode not available), -EIO; *why says why.
 * Any SIP worker; takes the session's bucket lock. */
int kice_call_sdp(struct kice_ctx *c, const struct kice_msg *m,
		const struct kice_flags *fl, char *out, size_t cap, const char **why);

/* Delete the session of callid: 0, or -ENOENT. Any process. */
int kice_call_delete(struct kice_ctx *c, struct kice_slice callid);

#endif
