/*
 * kamailio-ice: offer/answer processing (see call.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "call.h"
#include "fwd.h"
#include "log.h"
#include "sdp.h"
#include "sdp_ice.h"

int kice_iface_parse(struct kice_iface *out, const char *s, size_t len)
{
	struct kice_slice rest = {s, len}, name = KICE_SLICE_LIT("default");
	struct kice_slice local, adv = {NULL, 0};
	const char *p;

	memset(out, 0, sizeof(*out));
	p = memchr(s, '/', len);
	if(p) {
		name.p = s;
		name.len = (size_t)(p - s);
		rest.p = p + 1;
		rest.len = len - name.len - 1;
	}
	local = rest;
	p = memchr(rest.p, '!', rest.len);
	if(p) {
		local.len = (size_t)(p - rest.p);
		adv.p = p + 1;
		adv.len = rest.len - local.len - 1;
	}
	if(name.len == 0 || !kice_slice_cpy(out->name, sizeof(out->name), name))
		return -EINVAL;
	if(!kice_addr_set(&out->local, local, 0))
		return -EINVAL;
	if(adv.p) {
		if(!kice_addr_set(&out->adv, adv, 0) || out->adv.af != out->local.af)
			return -EINVAL;
	} else {
		out->adv = out->local;
	}
	return 0;
}

static int pick_iface(const struct kice_ctx *c, const char *name, int af)
{
	unsigned i;

	if(name && name[0]) {
		for(i = 0; i < c->nifaces; i++)
			if(strcmp(c->ifaces[i].name, name) == 0)
				return (int)i;
		return -1;
	}
	for(i = 0; i < c->nifaces; i++)
		if(af == 0 || c->ifaces[i].local.af == af)
			return (int)i;
	return 0;
}

static bool side_has_ports(const struct kice_side *sd)
{
	int i;

	for(i = 0; i < KICE_MAX_STREAMS; i++)
		if(sd->port[i])
			return true;
	return false;
}

/* the sender's RTP and RTCP addresses for m-line i */
static void learn_stream(struct kice_ep_stream *st, const struct kice_sdp *sdp,
		const struct kice_sdp_media *md)
{
	const struct kice_sdp_conn *cn = md->c.present ? &md->c : &sdp->c;
	struct kice_slice rip;
	uint16_t rport;

	memset(&st->sdp, 0, sizeof(st->sdp));
	st->present = true;
	st->disabled = md->port == 0;
	st->rtcp_mux = md->rtcp_mux;
	if(st->disabled || !cn->present)
		return;
	kice_addr_set(&st->sdp[0], cn->addr, md->port);
	if(md->rtcp_mux_only) {
		st->sdp[1] = st->sdp[0];
		return;
	}
	rip = md->has_rtcp && md->rtcp.present ? md->rtcp.addr : cn->addr;
	rport = md->has_rtcp ? md->rtcp_port : (uint16_t)(md->port + 1);
	kice_addr_set(&st->sdp[1], rip, rport);
}

static enum kice_ice_mode mode_of(const struct kice_flags *fl)
{
	switch(fl->ice) {
		case KICE_FLAG_ICE_PASS:
			return KICE_ICE_PASS;
		case KICE_FLAG_ICE_FORCE:
			return KICE_ICE_FORCE;
		case KICE_FLAG_ICE_RELAY:
			return KICE_ICE_RELAY;
		default:
			/* DESIGN.md §4 default is force when the SDP carried ICE;
			 * until the ICE agent lands, the default is remove */
			return KICE_ICE_REMOVE;
	}
}

int kice_call_sdp(struct kice_ctx *c, const struct kice_msg *m,
		const struct kice_flags *fl, char *out, size_t cap, const char **why)
{
	static __thread struct kice_sdp sdp;
	static __thread struct kice_sdp_edits ed;
	struct kice_rewrite rw;
	struct kice_session *s;
	struct kice_endpoint *ep;
	struct kice_slice tag;
	enum kice_ice_mode mode;
	const struct kice_iface *ifc;
	uint64_t now = kice_now_ms();
	uint32_t h;
	unsigned i;
	int side, rside, ifi, rc;
	bool created = false;

	*why = "";
	if(c == NULL || m == NULL || fl == NULL || out == NULL
			|| m->callid.len == 0) {
		*why = "no Call-ID";
		return -EINVAL;
	}
	mode = mode_of(fl);
	rc = kice_sdp_parse(&sdp, m->body, m->len);
	if(rc < 0) {
		*why = sdp.why ? sdp.why : "malformed SDP";
		return rc;
	}
	if(mode == KICE_ICE_PASS)
		return 0;
	if(mode != KICE_ICE_REMOVE) {
		*why = "ICE mode not available in this build";
		return -ENOTSUP;
	}
	if(sdp.nmedia > KICE_MAX_STREAMS) {
		*why = "too many m-lines";
		return -ENOSPC;
	}
	if(fl->lite || fl->transport.len || fl->dtls > 0 || fl->sdes > 0) {
		*why = "flag not supported with mode remove in this build";
		return -ENOTSUP;
	}

	h = kice_table_hash(c->t, m->callid);
	kice_bucket_lock(c->t, h);
	s = kice_session_find(c->t, h, m->callid);
	if(s == NULL) {
		s = kice_session_create(c->t, h, m->callid, m->from_tag, now);
		if(s == NULL) {
			*why = "cannot create session (no memory or Call-ID too long)";
			rc = -ENOMEM;
			goto out;
		}
		created = true;
	}
	tag = m->is_request ? m->from_tag : m->to_tag;
	if(!m->is_request && tag.len == 0) {
		*why = "reply with SDP but no to-tag";
		rc = -EINVAL;
		goto out;
	}
	side = (tag.len == s->caller.tag_len
				   && memcmp(tag.p, s->caller.tag, tag.len) == 0)
				   ? 0
				   : 1;
	ep = side == 0 ? &s->caller : kice_session_callee(s, tag, true);
	if(ep == NULL) {
		*why = "too many forked branches with SDP";
		rc = -ENOSPC;
		goto out;
	}
	rside = 1 - side;

	/* the interfaces each side's ports live on, fixed at first use */
	if(!side_has_ports(&s->side[rside])) {
		ifi = pick_iface(c, fl->out_iface, fl->af);
		if(ifi < 0) {
			*why = "unknown out-iface";
			rc = -EINVAL;
			goto out;
		}
		s->side[rside].iface = (uint8_t)ifi;
	}
	if(fl->in_iface[0] && !side_has_ports(&s->side[side])) {
		ifi = pick_iface(c, fl->in_iface, 0);
		if(ifi < 0) {
			*why = "unknown in-iface";
			rc = -EINVAL;
			goto out;
		}
		s->side[side].iface = (uint8_t)ifi;
	}
	ifc = &c->ifaces[s->side[rside].iface];

	memset(&rw, 0, sizeof(rw));
	rw.mode = mode;
	rw.nmedia = sdp.nmedia;
	for(i = 0; i < sdp.nmedia; i++) {
		const struct kice_sdp_media *md = &sdp.media[i];

		learn_stream(&ep->st[i], &sdp, md);
		if(md->port == 0) {
			rw.media[i].skip = true;
			continue;
		}
		rc = kice_fwd_add_ports(c->t, c->ctl_fds, s, rside, (int)i,
				&ifc->local, c->tos);
		if(rc < 0) {
			*why = rc == -ENOSPC ? "port pool exhausted"
								 : "cannot bind or hand over media ports";
			goto out;
		}
		rw.media[i].af = ifc->adv.af == 6 ? KICE_AF_INET6 : KICE_AF_INET;
		kice_addr_ip_str(&ifc->adv, rw.media[i].addr, sizeof(rw.media[i].addr));
		rw.media[i].rtp_port = s->side[rside].port[i];
		rw.media[i].rtcp_port = (uint16_t)(s->side[rside].port[i] + 1);
	}
	for(; i < KICE_MAX_STREAMS; i++)
		ep->st[i].present = false;
	if(sdp.nmedia > s->nstreams)
		s->nstreams = (uint8_t)sdp.nmedia;
	ep->gen++;
	ep->relatch_until_ms = now + c->relatch_window_ms;
	s->last_signal_ms = now;
	if(side == 1 && !m->is_request) {
		s->active_callee = (uint8_t)(ep - s->callee);
		if(m->final) {
			kice_session_keep_callee(s, ep);
			s->state = KICE_SESS_ANSWERED;
		} else if(s->state == KICE_SESS_OFFERED) {
			s->state = KICE_SESS_EARLY;
		}
	} else if(side == 0 && !created && s->state != KICE_SESS_ANSWERED
			  && (m->op == KICE_OP_ANSWER)) {
		s->state = KICE_SESS_ANSWERED; /* late offer: answer in ACK */
	}

	kice_sdp_edits_init(&ed);
	rc = kice_sdp_rewrite(&sdp, &rw, &ed);
	if(rc < 0) {
		*why = "cannot rewrite SDP";
		goto out;
	}
	rc = kice_sdp_edits_apply(&ed, m->body, m->len, out, cap);
	if(rc < 0) {
		*why = "rewritten SDP too large";
		goto out;
	}
	kice_fwd_notify(c->ctl_fds, s, KICE_FWD_UPDATE);
out:
	if(rc < 0 && created) {
		unsigned fwd = s->fwd;
		kice_session_unlink(c->t, s);
		kice_fwd_kick(c->ctl_fds, fwd);
	}
	kice_bucket_unlock(c->t, h);
	return rc;
}

int kice_call_delete(struct kice_ctx *c, struct kice_slice callid)
{
	struct kice_session *s;
	uint32_t h;

	h = kice_table_hash(c->t, callid);
	kice_bucket_lock(c->t, h);
	s = kice_session_find(c->t, h, callid);
	if(s) {
		unsigned fwd = s->fwd;
		kice_session_unlink(c->t, s);
		kice_fwd_kick(c->ctl_fds, fwd);
	}
	kice_bucket_unlock(c->t, h);
	return s ? 0 : -ENOENT;
}
