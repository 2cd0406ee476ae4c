/*
 * kamailio-ice: offer/answer processing (see call.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "call.h"
#include "dtls.h"
#include "fwd.h"
#include "srtp.h"
#include "log.h"
#include "rand.h"
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
		case KICE_FLAG_ICE_REMOVE:
			return KICE_ICE_REMOVE;
		default:
			/* DESIGN.md §4: force if the SDP carried ICE, else remove */
			return KICE_ICE_DEFAULT;
	}
}

/* RFC 8839 §5.4 credentials from a CSPRNG: ice-chars are exactly the
 * base64 alphabet, so each random byte gives 6 bits */
static int random_ice_chars(char *out, size_t n)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
							"0123456789+/";
	unsigned char r[64];
	size_t i;

	if(n > sizeof(r) || kice_random(r, n) < 0)
		return -EAGAIN;
	for(i = 0; i < n; i++)
		out[i] = a[r[i] & 63];
	out[n] = '\0';
	return 0;
}

static int new_side_creds(struct kice_side *sd)
{
	if(random_ice_chars(sd->ufrag, 8) < 0 || random_ice_chars(sd->pwd, 24) < 0)
		return -EAGAIN;
	sd->ice_gen++;
	return 0;
}

static uint8_t cand_type(struct kice_slice t)
{
	if(kice_slice_eq(t, "srflx"))
		return 1;
	if(kice_slice_eq(t, "prflx"))
		return 2;
	if(kice_slice_eq(t, "relay"))
		return 3;
	return 0;
}

/* The sender's ICE description: credentials (media level of the first
 * m-line that has them, else session level) and, per m-line, its UDP
 * candidates with IP literals (mDNS names are learned from checks).
 * Returns true when its credentials changed (an ICE restart). */
static bool learn_ice(struct kice_endpoint *ep, const struct kice_sdp *sdp)
{
	struct kice_slice uf = sdp->ice_ufrag, pw = sdp->ice_pwd;
	char nuf[KICE_UFRAG_MAX + 1] = "", npw[KICE_PWD_MAX + 1] = "";
	bool restart = false;
	unsigned i;

	for(i = 0; i < sdp->nmedia; i++)
		if(sdp->media[i].port && sdp->media[i].ice_ufrag.len) {
			uf = sdp->media[i].ice_ufrag;
			pw = sdp->media[i].ice_pwd;
			break;
		}
	ep->ice = kice_sdp_has_ice(sdp) && uf.len && pw.len
			  && kice_slice_cpy(nuf, sizeof(nuf), uf)
			  && kice_slice_cpy(npw, sizeof(npw), pw);
	ep->ice_lite = ep->ice && sdp->ice_lite;
	if(!ep->ice)
		return false;
	if(ep->ufrag[0]
			&& (strcmp(ep->ufrag, nuf) != 0 || strcmp(ep->pwd, npw) != 0)) {
		/* RFC 8445 §9: new ufrag and pwd mean an ICE restart */
		restart = true;
	}
	if(restart || !ep->ufrag[0])
		ep->ice_gen++;
	memcpy(ep->ufrag, nuf, sizeof(nuf));
	memcpy(ep->pwd, npw, sizeof(npw));

	for(i = 0; i < sdp->nmedia && i < KICE_MAX_STREAMS; i++) {
		const struct kice_sdp_media *md = &sdp->media[i];
		struct kice_ep_stream *st = ep->st[i]; /* made by the caller */
		struct kice_sdp_line l;
		struct kice_slice name, v;
		struct kice_sdp_cand c;
		uint32_t pos = md->off;

		st->ncand = 0;
		st->eoc = md->end_of_candidates;
		while(pos < md->end && kice_sdp_line_next(sdp->buf, md->end, &pos, &l)) {
			struct kice_rcand *rc;

			if(l.type != 'a')
				continue;
			kice_sdp_attr_split(l.val, &name, &v);
			if(!kice_slice_eq(name, "candidate")
					|| kice_sdp_cand_parse(v, &c) < 0 || !c.udp
					|| c.component > 2)
				continue;
			if(st->ncand >= KICE_MAX_RCAND) {
				KICE_DBG("more than %d candidates in m-line %u, extra ignored",
						KICE_MAX_RCAND, i);
				break;
			}
			rc = &st->cand[st->ncand];
			memset(rc, 0, sizeof(*rc));
			if(!kice_addr_set(&rc->addr, c.addr, c.port))
				continue; /* mDNS or FQDN: learned as peer-reflexive */
			rc->comp = c.component;
			rc->type = cand_type(c.type);
			rc->prio = c.priority;
			rc->foundation = kice_slice_hash(c.foundation);
			st->ncand++;
		}
	}
	return restart;
}

static bool proto_has(struct kice_slice proto, const char *part)
{
	size_t n = strlen(part), i;

	for(i = 0; i + n <= proto.len; i++)
		if(memcmp(proto.p + i, part, n) == 0)
			return true;
	return false;
}

static enum kice_crypto crypto_of_proto(struct kice_slice proto, bool sdes)
{
	if(proto_has(proto, "TLS"))
		return KICE_CRYPTO_DTLS;
	if(proto_has(proto, "SAVP"))
		return sdes ? KICE_CRYPTO_SDES : KICE_CRYPTO_DTLS;
	return KICE_CRYPTO_NONE;
}

/* The sender's crypto: a=fingerprint/a=setup (media level of the first
 * RTP m-line, else session level), and per m-line its first usable
 * a=crypto (RFC 4568 §6.1: the offerer lists them by preference). */
static void learn_crypto(struct kice_endpoint *ep, const struct kice_sdp *sdp)
{
	struct kice_slice fp = sdp->fingerprint, setup = sdp->setup, alg, hex;
	const struct kice_sdp_media *first = NULL;
	enum kice_dtls_setup st;
	bool any_sdes = false;
	unsigned i;

	for(i = 0; i < sdp->nmedia && i < KICE_MAX_STREAMS; i++) {
		const struct kice_sdp_media *md = &sdp->media[i];
		struct kice_ep_stream *es = ep->st[i]; /* made by the caller */
		struct kice_sdp_line l;
		struct kice_slice name, v;
		uint32_t pos = md->off;

		if(first == NULL && md->port && proto_has(md->proto, "RTP"))
			first = md;
		es->sdes_ok = false;
		if(!kice_slice_cpy(es->mid, sizeof(es->mid), md->mid))
			es->mid[0] = '\0';
		while(pos < md->end && kice_sdp_line_next(sdp->buf, md->end, &pos, &l)) {
			if(l.type != 'a')
				continue;
			kice_sdp_attr_split(l.val, &name, &v);
			if(kice_slice_eq(name, "crypto") && !es->sdes_ok
					&& kice_sdes_parse(v, &es->sdes) == 0)
				es->sdes_ok = any_sdes = true;
		}
	}
	if(first) {
		if(first->fingerprint.len)
			fp = first->fingerprint;
		if(first->setup.len)
			setup = first->setup;
		kice_slice_cpy(ep->proto, sizeof(ep->proto), first->proto);
		ep->crypto = (uint8_t)crypto_of_proto(first->proto, any_sdes);
	} else {
		ep->crypto = KICE_CRYPTO_NONE;
	}
	ep->setup = KICE_DTLS_SETUP_NONE;
	if(setup.len && kice_dtls_setup_parse(setup, &st) == 0)
		ep->setup = (uint8_t)st;
	ep->fp_alg[0] = ep->fp_hex[0] = '\0';
	if(kice_slice_token(&fp, ' ', &alg)) {
		while(fp.len && fp.p[0] == ' ') {
			fp.p++;
			fp.len--;
		}
		hex = fp;
		if(!kice_slice_cpy(ep->fp_alg, sizeof(ep->fp_alg), alg)
				|| !kice_slice_cpy(ep->fp_hex, sizeof(ep->fp_hex), hex))
			ep->fp_alg[0] = ep->fp_hex[0] = '\0';
	}
}

/* The transport written toward the recipient (side rs, endpoint rep, if
 * known) when the relay converts: protocol, crypto attributes, rtcp-mux.
 * Returns 0 or -errno with *why. */
static int plan_transport(struct kice_ctx *c, struct kice_session *s,
		int rside, struct kice_endpoint *rep, const struct kice_sdp *sdp,
		const char *proto, bool offer, struct kice_rewrite *rw,
		const char **why)
{
	struct kice_side *rs = &s->side[rside];
	unsigned i;
	bool fb = proto[0] && proto[strlen(proto) - 1] == 'F';

	rw->convert = true;
	snprintf(rw->proto, sizeof(rw->proto), "%s", proto);
	rw->strip_crypto = true;
	rw->strip_rtcp_fb = !fb;
	if(rs->crypto == KICE_CRYPTO_DTLS) {
		enum kice_dtls_setup su = KICE_DTLS_SETUP_ACTPASS;

		if(c->fingerprint == NULL) {
			*why = "no DTLS certificate";
			return -ENOTSUP;
		}
		rw->add_rtcp_mux = true;
		snprintf(rw->fingerprint, sizeof(rw->fingerprint), "%s", c->fingerprint);
		if(!offer) {
			/* RFC 8842 §5.3: the answerer picks; we settled our role when
			 * the offer came */
			if(rep == NULL || !rep->dtls_role_set) {
				*why = "answer toward a DTLS endpoint whose offer had no usable "
					   "a=setup";
				return -EINVAL;
			}
			su = kice_dtls_setup_for_role((enum kice_dtls_role)rep->dtls_role);
		}
		snprintf(rw->setup, sizeof(rw->setup), "%s", kice_dtls_setup_name(su));
		rs->mux_sent = 0xff;
	} else {
		rw->strip_rtcp_mux = true; /* the phone gets RTCP on its own port */
		rs->mux_sent = 0;
	}
	for(i = 0; i < sdp->nmedia; i++) {
		struct kice_rewrite_media *r = &rw->media[i];

		if(!proto_has(sdp->media[i].proto, "RTP")) {
			/* a data channel cannot reach a phone: rejected */
			if(rs->crypto != KICE_CRYPTO_DTLS) {
				r->skip = true;
				r->reject = true;
			}
			continue;
		}
		/* RFC 8843 / JSEP: a WebRTC endpoint matches m-lines by a=mid: an
		 * answer carries the offer's, an offer gets one */
		if(rs->crypto == KICE_CRYPTO_DTLS && !r->skip && sdp->media[i].mid.len == 0) {
			if(!offer && rep && kice_ep_st(rep, i)->mid[0])
				snprintf(r->mid, sizeof(r->mid), "%s", kice_ep_st(rep, i)->mid);
			else if(offer)
				snprintf(r->mid, sizeof(r->mid), "%u", i);
		}
		if(rs->crypto == KICE_CRYPTO_DTLS && !offer && !r->skip)
			r->rtcp_port = r->rtp_port; /* rtcp-mux toward the browser */
		if(r->skip || rs->crypto != KICE_CRYPTO_SDES)
			continue;
		if(!rs->sdes_set[i]) {
			/* RFC 4568 §7.1.1: answer with the offered tag and suite */
			enum kice_srtp_profile suite = KICE_SRTP_AES128_CM_SHA1_80;
			uint32_t tag = 1;
			const struct kice_ep_stream *res = rep ? kice_ep_st(rep, i) : NULL;
			if(!offer && res && res->sdes_ok) {
				suite = res->sdes.keys.profile;
				tag = res->sdes.tag;
			} else if(!offer) {
				*why = "answer toward an SDES endpoint whose offer had no usable "
					   "a=crypto";
				return -EINVAL;
			}
			if(kice_side_sdes(c->t, rs, i) == NULL) {
				*why = "no memory for SDES keys";
				return -ENOMEM;
			}
			if(kice_sdes_generate(suite, rs->sdes[i]) < 0) {
				*why = "cannot make SDES keys";
				return -EIO;
			}
			rs->sdes[i]->tag = tag;
			rs->sdes_set[i] = true;
		}
		if(kice_sdes_format(rs->sdes[i], r->crypto, sizeof(r->crypto)) < 0) {
			*why = "cannot write a=crypto";
			return -EIO;
		}
	}
	return 0;
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
	bool created = false, offer;
	char convert_proto[24];
	struct kice_endpoint *convert_rep = NULL;
	struct kice_fwd_pending pend;

	*why = "";
	pend.m.s = NULL;
	pend.m.npairs = 0;
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
	mode = kice_sdp_ice_mode(&sdp, mode);
	if(mode == KICE_ICE_PASS)
		return 0;
	if(sdp.nmedia > KICE_MAX_STREAMS) {
		*why = "too many m-lines";
		return -ENOSPC;
	}
	if(fl->lite && mode != KICE_ICE_FORCE) {
		*why = "flag lite needs mode force";
		return -EINVAL;
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
	kice_fwd_pending_init(&pend, s);
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
	ep = side == 0 ? &s->caller : kice_session_callee(c->t, s, tag, true);
	if(ep == NULL) {
		*why = "too many forked branches with SDP (or no memory)";
		rc = -ENOSPC;
		goto out;
	}
	if(kice_ep_streams_alloc(c->t, ep, sdp.nmedia) < 0) {
		*why = "no memory for the session's streams";
		rc = -ENOMEM;
		goto out;
	}
	rside = 1 - side;
	offer = m->op == KICE_OP_OFFER || created;

	/* ICE: the sender's description, and ours toward the recipient */
	if(learn_ice(ep, &sdp) && s->side[side].ufrag[0]) {
		KICE_INFO("session %u: ICE restart by %s", s->id,
				side ? "callee" : "caller");
		if(new_side_creds(&s->side[side]) < 0) {
			*why = "no random bytes for ICE credentials";
			rc = -EIO;
			goto out;
		}
	}
	if(offer && ep->ice && !ep->ice_lite)
		s->side[side].ice_controlling = false; /* it offered: it controls */
	else if(offer && ep->ice_lite)
		s->side[side].ice_controlling = true;
	s->side[rside].ice_mode = (uint8_t)mode;
	if(mode == KICE_ICE_FORCE) {
		struct kice_side *rs = &s->side[rside];
		if(!rs->ufrag[0] && new_side_creds(rs) < 0) {
			*why = "no random bytes for ICE credentials";
			rc = -EIO;
			goto out;
		}
		rs->ice_lite = fl->lite;
		if(offer)
			rs->ice_controlling = !fl->lite; /* the offerer controls */
		if(fl->lite && side == 0 && ep->ice_lite)
			KICE_ERR("session %u: ICE-lite endpoint facing an ICE-lite relay: "
					 "no agent will check (configuration error)", s->id);
	}

	/* transport: what the sender used, and whether the relay converts */
	learn_crypto(ep, &sdp);
	{
		char tproto[24] = "";
		enum kice_crypto rk;
		struct kice_endpoint *rep = NULL;

		if(fl->transport.len)
			kice_slice_cpy(tproto, sizeof(tproto), fl->transport);
		if(rside == 0)
			rep = s->caller.used ? &s->caller : NULL;
		else
			rep = kice_session_callee_at(s, s->active_callee);
		if(tproto[0]) {
			rk = crypto_of_proto(kice_slice_make(tproto, strlen(tproto)),
					fl->sdes > 0);
			if(fl->dtls < 0 && rk == KICE_CRYPTO_DTLS)
				rk = KICE_CRYPTO_NONE;
			if(rk != (enum kice_crypto)ep->crypto) {
				s->side[side].crypto = ep->crypto;
				s->side[rside].crypto = (uint8_t)rk;
			} else {
				s->side[side].crypto = s->side[rside].crypto = KICE_CRYPTO_NONE;
			}
		} else if(s->side[rside].crypto != KICE_CRYPTO_NONE && rep
				  && rep->proto[0]) {
			/* converting since the offer: back in the recipient's own */
			memcpy(tproto, rep->proto, sizeof(tproto));
		}
		/* RFC 5763 §5: the relay's role toward a DTLS endpoint it
		 * terminates, from that endpoint's a=setup */
		if(s->side[side].crypto == KICE_CRYPTO_DTLS) {
			enum kice_dtls_role role;
			ep->dtls_role_set = ep->fp_hex[0]
								&& kice_dtls_role_from_setup(
										   (enum kice_dtls_setup)ep->setup,
										   offer, &role)
										   == 0;
			if(ep->dtls_role_set)
				ep->dtls_role = (uint8_t)role;
			else
				KICE_WARN("session %u: DTLS endpoint without usable "
						  "a=fingerprint/a=setup",
						s->id);
		}
		convert_proto[0] = '\0';
		if(tproto[0]
				&& (s->side[rside].crypto != KICE_CRYPTO_NONE
						|| s->side[side].crypto != KICE_CRYPTO_NONE))
			memcpy(convert_proto, tproto, sizeof(tproto));
		if(!convert_proto[0])
			s->side[rside].mux_sent = 0;
		convert_rep = rep;
	}

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
	if(mode == KICE_ICE_FORCE) {
		memcpy(rw.ufrag, s->side[rside].ufrag, sizeof(s->side[rside].ufrag));
		memcpy(rw.pwd, s->side[rside].pwd, sizeof(s->side[rside].pwd));
		rw.lite = fl->lite;
		rw.trickle = fl->trickle;
	}
	for(i = 0; i < sdp.nmedia; i++) {
		const struct kice_sdp_media *md = &sdp.media[i];

		learn_stream(ep->st[i], &sdp, md);
		if(md->port == 0) {
			rw.media[i].skip = true;
			continue;
		}
		rc = kice_fwd_add_ports(c->t, &pend, s, rside, (int)i,
				s->side[rside].iface, &ifc->local, c->tos);
		if(rc < 0) {
			*why = rc == -ENOSPC ? "port pool exhausted"
								 : "cannot bind or hand over media ports";
			goto out;
		}
		if(!convert_proto[0] && md->rtcp_mux)
			s->side[rside].mux_sent |= (uint8_t)(1u << i);
		rw.media[i].af = ifc->adv.af == 6 ? KICE_AF_INET6 : KICE_AF_INET;
		kice_addr_ip_str(&ifc->adv, rw.media[i].addr, sizeof(rw.media[i].addr));
		rw.media[i].rtp_port = s->side[rside].port[i];
		rw.media[i].rtcp_port = (uint16_t)(s->side[rside].port[i] + 1);
		/* RFC 5761 §5.1.3: an answer that keeps rtcp-mux names the RTP port
		 * for RTCP too (and ICE gets one component) */
		if(!offer && md->rtcp_mux && !convert_proto[0])
			rw.media[i].rtcp_port = rw.media[i].rtp_port;
	}
	for(; i < KICE_MAX_STREAMS; i++)
		if(ep->st[i])
			ep->st[i]->present = false;
	if(sdp.nmedia > s->nstreams)
		s->nstreams = (uint8_t)sdp.nmedia;
	/* every endpoint has a block for every m-line of the call: the
	 * forwarder keeps the counters and latched addresses of what an
	 * endpoint sends there, even before that endpoint's own SDP has it */
	{
		unsigned k;
		bool ok = kice_ep_streams_alloc(c->t, &s->caller, s->nstreams) == 0;
		for(k = 0; k < KICE_MAX_CALLEES && ok; k++)
			if(kice_session_callee_at(s, k))
				ok = kice_ep_streams_alloc(c->t, s->callee[k], s->nstreams) == 0;
		if(!ok) {
			*why = "no memory for the session's streams";
			rc = -ENOMEM;
			goto out;
		}
	}
	ep->gen++;
	/* strict-source: the first source an endpoint's media comes from is the
	 * only one ever accepted, even right after a re-INVITE */
	if(fl->strict_source)
		ep->strict_source = true;
	/* every offer or answer opens the latching window of every endpoint of
	 * the call: media starts after the answer, however long it rang */
	{
		struct kice_endpoint *e2;
		unsigned k;
		if(s->caller.used)
			s->caller.relatch_until_ms = now + c->relatch_window_ms;
		for(k = 0; k < KICE_MAX_CALLEES; k++)
			if((e2 = kice_session_callee_at(s, k)) != NULL)
				e2->relatch_until_ms = now + c->relatch_window_ms;
	}
	s->last_signal_ms = now;
	if(side == 1 && !m->is_request) {
		s->active_callee = (uint8_t)kice_session_callee_idx(s, ep);
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

	if(convert_proto[0]) {
		rc = plan_transport(c, s, rside, convert_rep, &sdp, convert_proto, offer,
				&rw, why);
		if(rc < 0)
			goto out;
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
	/* one message per SDP: its new ports and "re-read the session" */
	if(kice_fwd_update(c->t, c->ctl_fds, &pend) < 0) {
		*why = "cannot hand media ports to the forwarder";
		rc = -EIO;
	}
out:
	/* ports bound before a failure still go to the forwarder, which owns
	 * (and frees) them with the session */
	if(pend.m.s && pend.m.npairs)
		kice_fwd_update(c->t, c->ctl_fds, &pend);
	if(rc < 0 && created) {
		unsigned fwd = s->fwd;
		kice_session_unlink(c->t, s);
		kice_fwd_kick(c->t, c->ctl_fds, fwd);
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
		kice_fwd_kick(c->t, c->ctl_fds, fwd);
	}
	kice_bucket_unlock(c->t, h);
	return s ? 0 : -ENOENT;
}
