/*
 * kamailio-ice: the SDP rewrite for an ICE mode (see sdp_ice.h).
 *
 * One context is passed through named stages: check the rewrite against
 * the body, drop the endpoint's ICE attributes, anchor every m-line on the
 * relay. The force and relay modes will add their own stage (the relay's
 * credentials and candidates) after the anchoring.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "sdp_ice.h"

struct ctx
{
	const struct kice_sdp *sdp;
	const struct kice_rewrite *rw;
	struct kice_sdp_edits *ed;
	const char *eol; /* for inserted lines: the body's own */
	int first;		 /* first non-skipped m-line, -1 if none */
};

/* RFC 8839 §5 and RFC 8840 §8.2 */
static const char *const ice_attrs[] = {"candidate", "remote-candidates",
		"ice-lite", "ice-mismatch", "ice-ufrag", "ice-pwd", "ice-pacing",
		"ice-options", "end-of-candidates", NULL};

bool kice_sdp_is_ice_attr(struct kice_slice name)
{
	int i;

	for(i = 0; ice_attrs[i] != NULL; i++) {
		if(kice_slice_eq(name, ice_attrs[i]))
			return true;
	}
	return false;
}

enum kice_ice_mode kice_sdp_ice_mode(
		const struct kice_sdp *sdp, enum kice_ice_mode mode)
{
	/* DESIGN.md §4: force if the SDP received carried ICE, else remove */
	if(mode == KICE_ICE_DEFAULT)
		return kice_sdp_has_ice(sdp) ? KICE_ICE_FORCE : KICE_ICE_REMOVE;
	return mode;
}

/* bytes of line ending at the end of body[off, off+len) */
static uint32_t eol_len(const char *buf, uint32_t off, uint32_t len)
{
	if(len == 0 || buf[off + len - 1] != '\n')
		return 0;
	return (len >= 2 && buf[off + len - 2] == '\r') ? 2 : 1;
}

/* true for RTP-based protocols (RTP/AVP, UDP/TLS/RTP/SAVPF, ...), for which
 * a=rtcp (RFC 3605) means something */
static bool is_rtp(struct kice_slice proto)
{
	struct kice_slice t;

	while(kice_slice_token(&proto, '/', &t)) {
		if(kice_slice_eq(t, "RTP"))
			return true;
	}
	return false;
}

static const char *ipver(enum kice_af af)
{
	return af == KICE_AF_INET6 ? "IP6" : "IP4";
}

static bool same_addr(
		const struct kice_rewrite_media *a, const struct kice_rewrite_media *b)
{
	return a->af == b->af && strcmp(a->addr, b->addr) == 0;
}

/* Replace the text of a whole line, keeping its own line ending */
static int replace_line(struct ctx *c, uint32_t off, uint32_t len,
		const char *text, size_t tlen)
{
	uint32_t keep = eol_len(c->sdp->buf, off, len);

	return kice_sdp_edit_replace(c->ed, off, len - keep, text, tlen);
}

/* Insert a line at off, a line boundary; after a last line without line
 * ending the new line goes after an added one instead of before one */
static int insert_line(struct ctx *c, uint32_t off, const char *text)
{
	const struct kice_sdp *sdp = c->sdp;
	char buf[320];
	int n;

	if(off == sdp->len && sdp->len > 0 && sdp->buf[sdp->len - 1] != '\n')
		n = snprintf(buf, sizeof(buf), "%s%s", c->eol, text);
	else
		n = snprintf(buf, sizeof(buf), "%s%s", text, c->eol);
	if(n < 0 || (size_t)n >= sizeof(buf))
		return -EINVAL;
	return kice_sdp_edit_replace(c->ed, off, 0, buf, (size_t)n);
}

static int check(struct ctx *c)
{
	const struct kice_rewrite *rw = c->rw;
	unsigned char bin[16];
	unsigned i;

	c->first = -1;
	for(i = 0; i < rw->nmedia; i++) {
		const struct kice_rewrite_media *r = &rw->media[i];
		if(r->skip)
			continue;
		if((r->af != KICE_AF_INET && r->af != KICE_AF_INET6)
				|| memchr(r->addr, '\0', sizeof(r->addr)) == NULL
				|| inet_pton(r->af == KICE_AF_INET6 ? AF_INET6 : AF_INET,
						   r->addr, bin)
						   != 1) {
			KICE_ERR("sdp rewrite: m-line %u: bad relay address", i);
			return -EINVAL;
		}
		if(c->first < 0)
			c->first = (int)i;
	}
	return 0;
}

/* Stage: delete every ICE attribute line, at session level and in the
 * m-lines that are not skipped */
static int drop_ice(struct ctx *c)
{
	const struct kice_sdp *sdp = c->sdp;
	struct kice_sdp_line l;
	struct kice_slice name, v;
	uint32_t pos = 0;
	unsigned k = 0;
	int rc;

	while(kice_sdp_line_next(sdp->buf, sdp->len, &pos, &l)) {
		while(k < sdp->nmedia && l.off >= sdp->media[k].end)
			k++;
		if(l.type != 'a')
			continue;
		if(l.off >= sdp->sess_end && k < sdp->nmedia && c->rw->media[k].skip)
			continue;
		kice_sdp_attr_split(l.val, &name, &v);
		if(!kice_sdp_is_ice_attr(name))
			continue;
		rc = kice_sdp_edit_replace(c->ed, l.off, l.len, NULL, 0);
		if(rc < 0)
			return rc;
	}
	return 0;
}

/*
 * Where lines go in an m-line (RFC 8866 §5: m= i=* c=* b=* k=? a=*): a c=
 * after m= and i=, an a= before the first a= (or after the last line).
 */
static void insert_points(const struct kice_sdp *sdp,
		const struct kice_sdp_media *m, uint32_t *c_at, uint32_t *a_at)
{
	struct kice_sdp_line l;
	uint32_t pos = m->m_off + m->m_len;
	bool in_i = true;

	*c_at = *a_at = pos;
	while(pos < m->end && kice_sdp_line_next(sdp->buf, m->end, &pos, &l)) {
		if(l.type == 'a') {
			*a_at = l.off;
			return;
		}
		if(l.type == 0)
			continue; /* trailing empty lines */
		if(in_i && l.type == 'i')
			*c_at = pos;
		else
			in_i = false;
		*a_at = pos;
	}
}

/* Stage: point an m-line at the relay */
static int anchor_media(struct ctx *c, unsigned i)
{
	const struct kice_sdp *sdp = c->sdp;
	const struct kice_sdp_media *m = &sdp->media[i];
	const struct kice_rewrite_media *r = &c->rw->media[i];
	char line[128];
	uint32_t c_at, a_at;
	int n, rc;

	rc = kice_sdp_edit_printf(
			c->ed, m->port_off, m->port_len, "%u", (unsigned)r->rtp_port);
	if(rc < 0)
		return rc;
	insert_points(sdp, m, &c_at, &a_at);

	/* RFC 8866 §5.7: "A session description MUST contain either at least
	 * one "c=" line in each media description or a single "c=" line at the
	 * session level. It MAY contain a single session-level "c=" line and
	 * additional media-level "c=" line(s) per-media-description, in which
	 * case the media-level values override the session-level settings" */
	n = snprintf(line, sizeof(line), "c=IN %s %s", ipver(r->af), r->addr);
	if(m->c.present)
		rc = replace_line(c, m->c.line_off, m->c.line_len, line, (size_t)n);
	else if(!sdp->c.present || !same_addr(r, &c->rw->media[c->first]))
		rc = insert_line(c, c_at, line);
	if(rc < 0)
		return rc;

	if(!is_rtp(m->proto))
		return 0;
	/* RFC 3605 §2.1: a=rtcp:<port> <nettype> <addrtype> <address> */
	n = snprintf(line, sizeof(line), "a=rtcp:%u IN %s %s",
			(unsigned)r->rtcp_port, ipver(r->af), r->addr);
	if(m->has_rtcp)
		return replace_line(
				c, m->rtcp.line_off, m->rtcp.line_len, line, (size_t)n);
	return insert_line(c, a_at, line);
}

/* Stage: the session c= and every m-line not skipped */
static int anchor(struct ctx *c)
{
	const struct kice_sdp *sdp = c->sdp;
	const struct kice_rewrite_media *r;
	char line[128];
	unsigned i;
	int n, rc;

	if(c->first < 0)
		return 0;
	if(sdp->c.present) {
		r = &c->rw->media[c->first];
		n = snprintf(line, sizeof(line), "c=IN %s %s", ipver(r->af), r->addr);
		rc = replace_line(c, sdp->c.line_off, sdp->c.line_len, line, (size_t)n);
		if(rc < 0)
			return rc;
	}
	for(i = 0; i < sdp->nmedia; i++) {
		if(c->rw->media[i].skip)
			continue;
		rc = anchor_media(c, i);
		if(rc < 0)
			return rc;
	}
	return 0;
}

uint32_t kice_sdp_host_priority(unsigned component)
{
	/* RFC 8445 §5.1.2.1: priority = (2^24)*(type preference) +
	 * (2^8)*(local preference) + (2^0)*(256 - component ID) */
	return (126u << 24) | (65535u << 8) | (256u - (component & 0xff));
}

static bool ice_chars(const char *s, size_t min, size_t max)
{
	size_t n = strlen(s), i;

	if(n < min || n > max)
		return false;
	/* RFC 8839 §5.4: ice-char = ALPHA / DIGIT / "+" / "/" */
	for(i = 0; i < n; i++)
		if(!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
				   || (s[i] >= '0' && s[i] <= '9') || s[i] == '+'
				   || s[i] == '/'))
			return false;
	return true;
}

/* Stage (force): the relay's credentials and candidates, in each m-line
 * not skipped, and the session-level ice-lite/ice-options */
static int add_relay_ice(struct ctx *c)
{
	const struct kice_sdp *sdp = c->sdp;
	const struct kice_rewrite *rw = c->rw;
	char line[160];
	unsigned i, comp, ncomp;
	int rc;

	/* RFC 8839 §5.4: ufrag at least 4 ice-chars, pwd at least 22 */
	if(!ice_chars(rw->ufrag, 4, 32) || !ice_chars(rw->pwd, 22, 64)) {
		KICE_ERR("sdp rewrite: bad relay ICE credentials");
		return -EINVAL;
	}
	if(rw->lite) {
		rc = insert_line(c, sdp->sess_end, "a=ice-lite");
		if(rc < 0)
			return rc;
	}
	if(rw->trickle) {
		rc = insert_line(c, sdp->sess_end, "a=ice-options:trickle");
		if(rc < 0)
			return rc;
	}
	for(i = 0; i < sdp->nmedia; i++) {
		const struct kice_sdp_media *m = &sdp->media[i];
		const struct kice_rewrite_media *r = &rw->media[i];

		if(r->skip)
			continue;
		snprintf(line, sizeof(line), "a=ice-ufrag:%s", rw->ufrag);
		if((rc = insert_line(c, m->end, line)) < 0)
			return rc;
		snprintf(line, sizeof(line), "a=ice-pwd:%s", rw->pwd);
		if((rc = insert_line(c, m->end, line)) < 0)
			return rc;
		ncomp = (is_rtp(m->proto) && r->rtcp_port != r->rtp_port) ? 2 : 1;
		for(comp = 1; comp <= ncomp; comp++) {
			snprintf(line, sizeof(line),
					"a=candidate:1 %u UDP %u %s %u typ host", comp,
					kice_sdp_host_priority(comp), r->addr,
					comp == 1 ? r->rtp_port : r->rtcp_port);
			if((rc = insert_line(c, m->end, line)) < 0)
				return rc;
		}
		/* RFC 8840 §4.1: our candidates are complete */
		if((rc = insert_line(c, m->end, "a=end-of-candidates")) < 0)
			return rc;
	}
	return 0;
}

/* the highest component among an m-line's candidates (0 if none) */
static unsigned max_component(const struct kice_sdp *sdp,
		const struct kice_sdp_media *m, uint32_t *eoc_off)
{
	struct kice_sdp_line l;
	struct kice_slice name, v;
	struct kice_sdp_cand cd;
	uint32_t pos = m->off;
	unsigned mc = 0;

	*eoc_off = m->end;
	while(pos < m->end && kice_sdp_line_next(sdp->buf, m->end, &pos, &l)) {
		if(l.type != 'a')
			continue;
		kice_sdp_attr_split(l.val, &name, &v);
		if(kice_slice_eq(name, "end-of-candidates"))
			*eoc_off = l.off;
		else if(kice_slice_eq(name, "candidate")
				&& kice_sdp_cand_parse(v, &cd) == 0 && cd.component > mc)
			mc = cd.component;
	}
	return mc;
}

/* Stage (relay): the endpoint's ICE kept; the relay's own candidates added
 * with the lowest type preference, before any a=end-of-candidates */
static int add_relay_candidates(struct ctx *c)
{
	const struct kice_sdp *sdp = c->sdp;
	char line[200];
	unsigned i, comp, ncomp;
	uint32_t at;
	int rc;

	for(i = 0; i < sdp->nmedia; i++) {
		const struct kice_sdp_media *m = &sdp->media[i];
		const struct kice_rewrite_media *r = &c->rw->media[i];

		if(r->skip)
			continue;
		ncomp = max_component(sdp, m, &at);
		if(ncomp == 0)
			continue; /* this m-line does no ICE: plain anchoring */
		if(ncomp > 2)
			ncomp = 2;
		for(comp = 1; comp <= ncomp; comp++) {
			uint16_t port = comp == 1 ? r->rtp_port : r->rtcp_port;
			/* RFC 8445 §5.1.2.2: relayed candidates get type preference
			 * 0, so every other path wins where it works */
			snprintf(line, sizeof(line),
					"a=candidate:kice%u %u UDP %u %s %u typ relay raddr %s "
					"rport %u",
					comp, comp, kice_sdp_relay_priority(comp), r->addr, port,
					r->addr, port);
			if((rc = insert_line(c, at, line)) < 0)
				return rc;
		}
	}
	return 0;
}

uint32_t kice_sdp_relay_priority(unsigned component)
{
	return (0u << 24) | (65535u << 8) | (256u - (component & 0xff));
}

static bool take_u32(struct kice_slice *rest, uint32_t *v)
{
	struct kice_slice tok;

	do {
		if(!kice_slice_token(rest, ' ', &tok))
			return false;
	} while(tok.len == 0);
	return kice_slice_u32(tok, v);
}

static bool take(struct kice_slice *rest, struct kice_slice *tok)
{
	do {
		if(!kice_slice_token(rest, ' ', tok))
			return false;
	} while(tok->len == 0);
	return true;
}

int kice_sdp_cand_parse(struct kice_slice val, struct kice_sdp_cand *c)
{
	struct kice_slice rest = val, tok, tr, k, v;
	uint32_t n;

	memset(c, 0, sizeof(*c));
	/* RFC 8839 §5.1: candidate-attribute = "candidate" ":" foundation SP
	 * component-id SP transport SP priority SP connection-address SP port
	 * SP cand-type [SP rel-addr] [SP rel-port] *(SP cand-extension) */
	if(!take(&rest, &c->foundation) || c->foundation.len > 32)
		return -EBADMSG;
	if(!take_u32(&rest, &n) || n < 1 || n > 256)
		return -EBADMSG;
	c->component = (uint8_t)(n > 255 ? 255 : n);
	if(!take(&rest, &tr))
		return -EBADMSG;
	c->udp = kice_slice_eqi(tr, "UDP");
	if(!take_u32(&rest, &c->priority) || c->priority == 0)
		return -EBADMSG;
	if(!take(&rest, &c->addr))
		return -EBADMSG;
	if(!take_u32(&rest, &n) || n > 65535)
		return -EBADMSG;
	c->port = (uint16_t)n;
	if(!take(&rest, &tok) || !kice_slice_eq(tok, "typ")
			|| !take(&rest, &c->type))
		return -EBADMSG;
	while(take(&rest, &k)) {
		if(!take(&rest, &v))
			break; /* a lone extension name: tolerated */
		if(kice_slice_eq(k, "raddr"))
			c->raddr = v;
		else if(kice_slice_eq(k, "rport")) {
			if(!kice_slice_u32(v, &n) || n > 65535)
				return -EBADMSG;
			c->rport = (uint16_t)n;
		}
	}
	return 0;
}

static bool attr_in(struct kice_slice name, const char *const *set)
{
	int i;

	for(i = 0; set[i]; i++)
		if(kice_slice_eq(name, set[i]))
			return true;
	return false;
}

/* Stage (transport conversion): the m= protocol, the crypto attributes of
 * the endpoint replaced by the relay's, rtcp-fb and rtcp-mux as the
 * recipient needs them; non-RTP m-lines marked reject get port 0 */
static int convert_transport(struct ctx *c)
{
	static const char *const crypto_attrs[] = {
			"fingerprint", "setup", "crypto", "tls-id", NULL};
	const struct kice_sdp *sdp = c->sdp;
	const struct kice_rewrite *rw = c->rw;
	struct kice_sdp_line l;
	struct kice_slice name, v;
	char line[256];
	uint32_t pos = 0;
	unsigned k = 0, i;
	int rc;

	for(i = 0; i < sdp->nmedia; i++)
		if(rw->media[i].skip && rw->media[i].reject) {
			rc = kice_sdp_edit_replace(c->ed, sdp->media[i].port_off,
					sdp->media[i].port_len, "0", 1);
			if(rc < 0)
				return rc;
		}
	/* delete what the recipient must not see, at both levels */
	while(kice_sdp_line_next(sdp->buf, sdp->len, &pos, &l)) {
		bool in_media, del = false;

		while(k < sdp->nmedia && l.off >= sdp->media[k].end)
			k++;
		in_media = l.off >= sdp->sess_end && k < sdp->nmedia;
		if(l.type != 'a' || (in_media && rw->media[k].skip)
				|| (in_media && !is_rtp(sdp->media[k].proto)))
			continue;
		kice_sdp_attr_split(l.val, &name, &v);
		if(rw->strip_crypto && attr_in(name, crypto_attrs))
			del = true;
		if(rw->strip_rtcp_fb && kice_slice_eq(name, "rtcp-fb"))
			del = true;
		if(rw->strip_rtcp_mux
				&& (kice_slice_eq(name, "rtcp-mux")
						|| kice_slice_eq(name, "rtcp-mux-only")))
			del = true;
		if(del && (rc = kice_sdp_edit_replace(c->ed, l.off, l.len, NULL, 0)) < 0)
			return rc;
	}
	for(i = 0; i < sdp->nmedia; i++) {
		const struct kice_sdp_media *m = &sdp->media[i];
		const struct kice_rewrite_media *r = &rw->media[i];

		if(r->skip || !is_rtp(m->proto))
			continue;
		if(rw->proto[0]) {
			rc = kice_sdp_edit_replace(c->ed, (uint32_t)(m->proto.p - sdp->buf),
					(uint32_t)m->proto.len, rw->proto, strlen(rw->proto));
			if(rc < 0)
				return rc;
		}
		if(r->mid[0]) {
			snprintf(line, sizeof(line), "a=mid:%s", r->mid);
			if((rc = insert_line(c, m->end, line)) < 0)
				return rc;
		}
		if(rw->add_rtcp_mux && !m->rtcp_mux
				&& (rc = insert_line(c, m->end, "a=rtcp-mux")) < 0)
			return rc;
		if(rw->fingerprint[0]) {
			snprintf(line, sizeof(line), "a=fingerprint:%s", rw->fingerprint);
			if((rc = insert_line(c, m->end, line)) < 0)
				return rc;
		}
		if(rw->setup[0]) {
			snprintf(line, sizeof(line), "a=setup:%s", rw->setup);
			if((rc = insert_line(c, m->end, line)) < 0)
				return rc;
		}
		if(r->crypto[0]) {
			snprintf(line, sizeof(line), "a=crypto:%s", r->crypto);
			if((rc = insert_line(c, m->end, line)) < 0)
				return rc;
		}
	}
	return 0;
}

int kice_sdp_rewrite(const struct kice_sdp *sdp, const struct kice_rewrite *rw,
		struct kice_sdp_edits *out)
{
	struct ctx c;
	enum kice_ice_mode mode;
	int rc;

	if(sdp == NULL || rw == NULL || out == NULL)
		return -EINVAL;
	kice_sdp_edits_init(out);
	if(rw->nmedia != sdp->nmedia) {
		KICE_ERR("sdp rewrite: %u m-lines given for %u", rw->nmedia,
				sdp->nmedia);
		return -EINVAL;
	}
	mode = kice_sdp_ice_mode(sdp, rw->mode);
	switch(mode) {
		case KICE_ICE_PASS:
			return 0;
		case KICE_ICE_REMOVE:
		case KICE_ICE_FORCE:
		case KICE_ICE_RELAY:
			break;
		default:
			KICE_ERR("sdp rewrite: ICE mode %d not supported", (int)mode);
			return -EINVAL;
	}

	c.sdp = sdp;
	c.rw = rw;
	c.ed = out;
	c.eol = sdp->crlf ? "\r\n" : "\n";
	rc = check(&c);
	if(rc == 0 && mode != KICE_ICE_RELAY)
		rc = drop_ice(&c);
	if(rc == 0)
		rc = anchor(&c);
	if(rc == 0 && mode == KICE_ICE_FORCE)
		rc = add_relay_ice(&c);
	if(rc == 0 && mode == KICE_ICE_RELAY)
		rc = add_relay_candidates(&c);
	if(rc == 0 && rw->convert)
		rc = convert_transport(&c);
	return rc;
}
