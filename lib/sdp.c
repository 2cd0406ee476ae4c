/*
 * kamailio-ice: zero-copy SDP parser (RFC 8866) and edit list (see sdp.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "sdp.h"

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool kice_sdp_line_next(
		const char *buf, size_t len, uint32_t *pos, struct kice_sdp_line *l)
{
	const char *p, *nl;
	size_t rest, tlen;

	if(*pos >= len)
		return false;
	p = buf + *pos;
	rest = len - *pos;
	nl = memchr(p, '\n', rest);
	if(nl != NULL) {
		tlen = (size_t)(nl - p);
		l->eol = 1;
		if(tlen > 0 && p[tlen - 1] == '\r') {
			tlen--;
			l->eol = 2;
		}
	} else {
		tlen = rest;
		l->eol = 0;
	}
	l->off = *pos;
	l->len = (uint32_t)(tlen + l->eol);
	/* RFC 8866 §5: <type>=<value>, <type> exactly one character */
	if(tlen >= 2 && p[1] == '=' && is_alpha(p[0])) {
		l->type = p[0];
		l->val = kice_slice_make(p + 2, tlen - 2);
	} else {
		l->type = 0;
		l->val = kice_slice_make(p, tlen);
	}
	*pos += l->len;
	return true;
}

void kice_sdp_attr_split(struct kice_slice val, struct kice_slice *name,
		struct kice_slice *value)
{
	const char *q = val.len ? memchr(val.p, ':', val.len) : NULL;

	if(q == NULL) {
		*name = val;
		*value = kice_slice_make(val.p + val.len, 0);
		return;
	}
	*name = kice_slice_make(val.p, (size_t)(q - val.p));
	*value = kice_slice_make(q + 1, val.len - name->len - 1);
}

/* a non-empty token up to the next space; false if missing or empty */
static bool field(struct kice_slice *s, struct kice_slice *tok)
{
	return kice_slice_token(s, ' ', tok) && tok->len > 0;
}

/* "/<n>" suffixes of a connection address: at most max, each a number */
static bool addr_suffixes(struct kice_slice s, unsigned max)
{
	struct kice_slice n;
	uint32_t u;
	unsigned k = 0;

	while(kice_slice_token(&s, '/', &n)) {
		if(++k > max || !kice_slice_u32(n, &u))
			return false;
	}
	return true;
}

/*
 * RFC 8866 §5.7: c=<nettype> <addrtype> <connection-address>; also the tail
 * of a=rtcp (RFC 3605). Multicast IPv4 may carry /<ttl>[/<n>], IPv6 /<n>;
 * addr is set to the address without them.
 */
static const char *parse_conn(struct kice_slice v, struct kice_sdp_conn *c)
{
	struct kice_slice net, type, addr;
	const char *sl;
	char tmp[64];
	unsigned char bin[16];
	int af;

	if(!field(&v, &net) || !field(&v, &type) || !field(&v, &addr))
		return "connection address: missing fields";
	if(v.len > 0)
		return "connection address: extra fields";
	if(!kice_slice_eq(net, "IN"))
		return "connection address: network type is not IN";
	if(kice_slice_eq(type, "IP4")) {
		c->af = KICE_AF_INET;
		af = AF_INET;
	} else if(kice_slice_eq(type, "IP6")) {
		c->af = KICE_AF_INET6;
		af = AF_INET6;
	} else {
		return "connection address: address type is not IP4 or IP6";
	}
	sl = memchr(addr.p, '/', addr.len);
	if(sl != NULL) {
		struct kice_slice sfx =
				kice_slice_make(sl + 1, addr.len - (size_t)(sl - addr.p) - 1);
		if(!addr_suffixes(sfx, c->af == KICE_AF_INET ? 2 : 1))
			return "connection address: bad /ttl or /count";
		addr.len = (size_t)(sl - addr.p);
	}
	if(!kice_slice_cpy(tmp, sizeof(tmp), addr) || inet_pton(af, tmp, bin) != 1)
		return "connection address: not a valid IP address";
	c->addr = addr;
	c->present = true;
	return NULL;
}

/* RFC 8866 §5.2: o=<username> <sess-id> <sess-version> <nettype>
 * <addrtype> <unicast-address> */
static const char *parse_o(struct kice_slice v, struct kice_sdp *sdp)
{
	struct kice_slice f;
	int i;

	for(i = 0; i < 6; i++) {
		if(!field(&v, &f))
			return "o= line has missing fields";
	}
	if(v.len > 0)
		return "o= line has extra fields";
	sdp->o_addr = f;
	return NULL;
}

/* RFC 8866 §5.14: m=<media> <port>[/<number of ports>] <proto> <fmt> ... */
static const char *parse_m(
		struct kice_slice v, struct kice_sdp_media *m, const char *buf)
{
	struct kice_slice port, n;
	const char *sl;
	uint32_t u;

	if(!field(&v, &m->type) || !field(&v, &port) || !field(&v, &m->proto)
			|| v.len == 0 || v.p[0] == ' ')
		return "m= line has missing fields";
	m->fmts = v;
	m->nports = 1;
	sl = memchr(port.p, '/', port.len);
	if(sl != NULL) {
		n = kice_slice_make(sl + 1, port.len - (size_t)(sl - port.p) - 1);
		port.len = (size_t)(sl - port.p);
		if(!kice_slice_u32(n, &u) || u == 0 || u > 65535)
			return "m= number of ports is not 1-65535";
		m->nports = (uint16_t)u;
	}
	if(!kice_slice_u32(port, &u))
		return "m= port is not a number";
	if(u > 65535)
		return "m= port is above 65535";
	m->port = (uint16_t)u;
	m->port_off = (uint32_t)(port.p - buf);
	m->port_len = (uint32_t)port.len;
	return NULL;
}

static enum kice_sdp_dir dir_of(struct kice_slice name)
{
	if(kice_slice_eq(name, "sendrecv"))
		return KICE_SDP_DIR_SENDRECV;
	if(kice_slice_eq(name, "sendonly"))
		return KICE_SDP_DIR_SENDONLY;
	if(kice_slice_eq(name, "recvonly"))
		return KICE_SDP_DIR_RECVONLY;
	if(kice_slice_eq(name, "inactive"))
		return KICE_SDP_DIR_INACTIVE;
	return KICE_SDP_DIR_NONE;
}

/* keep the first occurrence */
static void keep(struct kice_slice *dst, struct kice_slice v)
{
	if(dst->p == NULL)
		*dst = v;
}

/* RFC 3605 §2.1: a=rtcp:<port> [<nettype> <addrtype> <connection-address>] */
static const char *parse_rtcp(struct kice_slice v, struct kice_sdp_media *m,
		const struct kice_sdp_line *l)
{
	struct kice_slice port = v;
	const char *sp = v.len ? memchr(v.p, ' ', v.len) : NULL;
	const char *why;
	uint32_t u;

	if(m->has_rtcp)
		return "duplicate a=rtcp";
	if(sp != NULL)
		port.len = (size_t)(sp - v.p);
	if(!kice_slice_u32(port, &u) || u > 65535)
		return "a=rtcp port is not 0-65535";
	if(sp != NULL) {
		v = kice_slice_make(sp + 1, v.len - port.len - 1);
		why = parse_conn(v, &m->rtcp);
		if(why != NULL)
			return why;
	}
	m->has_rtcp = true;
	m->rtcp_port = (uint16_t)u;
	m->rtcp.line_off = l->off;
	m->rtcp.line_len = l->len;
	return NULL;
}

static const char *media_attr(struct kice_sdp_media *m, struct kice_slice name,
		struct kice_slice v, const struct kice_sdp_line *l)
{
	enum kice_sdp_dir d;

	if(kice_slice_eq(name, "rtcp"))
		return parse_rtcp(v, m, l);
	if(kice_slice_eq(name, "rtcp-mux"))
		m->rtcp_mux = true;
	else if(kice_slice_eq(name, "rtcp-mux-only"))
		m->rtcp_mux_only = true;
	else if(kice_slice_eq(name, "candidate"))
		m->ncand++;
	else if(kice_slice_eq(name, "ice-ufrag"))
		keep(&m->ice_ufrag, v);
	else if(kice_slice_eq(name, "ice-pwd"))
		keep(&m->ice_pwd, v);
	else if(kice_slice_eq(name, "ice-options"))
		keep(&m->ice_options, v);
	else if(kice_slice_eq(name, "end-of-candidates"))
		m->end_of_candidates = true;
	else if(kice_slice_eq(name, "mid"))
		keep(&m->mid, v);
	else if(kice_slice_eq(name, "fingerprint"))
		keep(&m->fingerprint, v);
	else if(kice_slice_eq(name, "setup"))
		keep(&m->setup, v);
	else if(kice_slice_eq(name, "crypto"))
		m->ncrypto++;
	else if((d = dir_of(name)) != KICE_SDP_DIR_NONE)
		m->dir = d;
	return NULL;
}

static void session_attr(
		struct kice_sdp *sdp, struct kice_slice name, struct kice_slice v)
{
	enum kice_sdp_dir d;

	if(kice_slice_eq(name, "ice-ufrag"))
		keep(&sdp->ice_ufrag, v);
	else if(kice_slice_eq(name, "ice-pwd"))
		keep(&sdp->ice_pwd, v);
	else if(kice_slice_eq(name, "ice-options"))
		keep(&sdp->ice_options, v);
	else if(kice_slice_eq(name, "ice-lite"))
		sdp->ice_lite = true;
	else if(kice_slice_eq(name, "fingerprint"))
		keep(&sdp->fingerprint, v);
	else if(kice_slice_eq(name, "setup"))
		keep(&sdp->setup, v);
	else if((d = dir_of(name)) != KICE_SDP_DIR_NONE)
		sdp->dir = d;
}

static const char *parse_c(
		struct kice_sdp_conn *c, const struct kice_sdp_line *l)
{
	const char *why;

	if(c->present)
		return "duplicate c= line at this level";
	why = parse_conn(l->val, c);
	if(why != NULL)
		return why;
	c->line_off = l->off;
	c->line_len = l->len;
	return NULL;
}

int kice_sdp_parse(struct kice_sdp *out, const char *buf, size_t len)
{
	struct kice_sdp_line l;
	struct kice_sdp_media *m = NULL;
	struct kice_slice name, v;
	const char *why = NULL, *nul;
	uint32_t pos = 0, at = 0, blank = 0;
	bool seen_blank = false, seen_o = false;
	int rc = -EBADMSG;

	if(out == NULL || (buf == NULL && len > 0))
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->buf = buf;
	out->len = len;
	if(len == 0) {
		why = "empty body";
		goto bad;
	}
	if(len >= UINT32_MAX) {
		why = "body larger than 4 GB";
		rc = -ENOSPC;
		goto bad;
	}
	nul = memchr(buf, '\0', len);
	if(nul != NULL) {
		why = "NUL byte in body";
		at = (uint32_t)(nul - buf);
		goto bad;
	}

	while(kice_sdp_line_next(buf, len, &pos, &l)) {
		at = l.off;
		/* RFC 8866 §5: the lines come in a fixed order starting with the
		 * version line, and §5.1 defines version 0 only */
		if(l.off == 0) {
			if(l.type != 'v' || !kice_slice_eq(l.val, "0")) {
				why = "first line is not v=0";
				goto bad;
			}
			out->crlf = l.eol == 2;
			continue;
		}
		/* tolerate empty lines at the very end only */
		if(l.type == 0 && l.val.len == 0) {
			if(!seen_blank)
				blank = l.off;
			seen_blank = true;
			continue;
		}
		if(seen_blank) {
			why = "empty line inside the body";
			at = blank;
			goto bad;
		}
		if(memchr(l.val.p, '\r', l.val.len) != NULL) {
			why = "CR not followed by LF";
			goto bad;
		}
		switch(l.type) {
			case 0:
				why = "line is not <type>=<value>";
				break;
			case 'v':
				why = "v= line not first";
				break;
			case 'o':
				why = (m != NULL || seen_o) ? "o= line misplaced or repeated"
											: parse_o(l.val, out);
				seen_o = true;
				break;
			case 'c':
				why = parse_c(m ? &m->c : &out->c, &l);
				break;
			case 'm':
				if(out->nmedia == KICE_SDP_MAX_MEDIA) {
					why = "too many m= lines";
					rc = -ENOSPC;
					goto bad;
				}
				if(m != NULL)
					m->end = l.off;
				else
					out->sess_end = l.off;
				m = &out->media[out->nmedia++];
				m->off = m->m_off = l.off;
				m->m_len = l.len;
				why = parse_m(l.val, m, buf);
				break;
			case 'a':
				kice_sdp_attr_split(l.val, &name, &v);
				if(m != NULL)
					why = media_attr(m, name, v, &l);
				else
					session_attr(out, name, v);
				break;
			default:
				break;
		}
		if(why != NULL)
			goto bad;
	}
	if(!seen_o) {
		why = "no o= line";
		at = 0;
		goto bad;
	}
	if(m != NULL)
		m->end = (uint32_t)len;
	else
		out->sess_end = (uint32_t)len;
	return 0;

bad:
	out->why = why;
	out->why_off = at;
	KICE_DBG("sdp: %s at byte %u", why, at);
	return rc;
}

bool kice_sdp_has_ice(const struct kice_sdp *sdp)
{
	unsigned i;

	if(sdp == NULL)
		return false;
	if(sdp->ice_ufrag.len || sdp->ice_pwd.len || sdp->ice_lite)
		return true;
	for(i = 0; i < sdp->nmedia; i++) {
		const struct kice_sdp_media *m = &sdp->media[i];
		if(m->ice_ufrag.len || m->ice_pwd.len || m->ncand)
			return true;
	}
	return false;
}

void kice_sdp_edits_init(struct kice_sdp_edits *ed)
{
	ed->n = 0;
	ed->tlen = 0;
}

int kice_sdp_edit_replace(struct kice_sdp_edits *ed, uint32_t off, uint32_t len,
		const char *text, size_t tlen)
{
	struct kice_sdp_edit *e;

	if(ed == NULL || (text == NULL && tlen > 0)
			|| (uint64_t)off + len > UINT32_MAX)
		return -EINVAL;
	if(ed->n >= KICE_SDP_MAX_EDITS || tlen > sizeof(ed->text) - ed->tlen)
		return -ENOSPC;
	e = &ed->e[ed->n++];
	e->off = off;
	e->len = len;
	e->text_off = (uint32_t)ed->tlen;
	e->text_len = (uint32_t)tlen;
	if(tlen > 0)
		memcpy(ed->text + ed->tlen, text, tlen);
	ed->tlen += tlen;
	return 0;
}

int kice_sdp_edit_printf(struct kice_sdp_edits *ed, uint32_t off, uint32_t len,
		const char *fmt, ...)
{
	struct kice_sdp_edit *e;
	size_t room;
	va_list ap;
	int r;

	if(ed == NULL || fmt == NULL || (uint64_t)off + len > UINT32_MAX)
		return -EINVAL;
	if(ed->n >= KICE_SDP_MAX_EDITS)
		return -ENOSPC;
	room = sizeof(ed->text) - ed->tlen;
	va_start(ap, fmt);
	r = vsnprintf(ed->text + ed->tlen, room, fmt, ap);
	va_end(ap);
	if(r < 0)
		return -EINVAL;
	if((size_t)r >= room)
		return -ENOSPC;
	e = &ed->e[ed->n++];
	e->off = off;
	e->len = len;
	e->text_off = (uint32_t)ed->tlen;
	e->text_len = (uint32_t)r;
	ed->tlen += (size_t)r;
	return 0;
}

/* order by offset; at the same offset insertions before a replacement */
static bool before(const struct kice_sdp_edit *a, const struct kice_sdp_edit *b)
{
	if(a->off != b->off)
		return a->off < b->off;
	return a->len == 0 && b->len != 0;
}

int kice_sdp_edits_apply(const struct kice_sdp_edits *ed, const char *body,
		size_t len, char *out, size_t cap)
{
	uint16_t idx[KICE_SDP_MAX_EDITS];
	const struct kice_sdp_edit *e;
	size_t pos, total, w;
	unsigned i, j;

	if(ed == NULL || (body == NULL && len > 0) || (out == NULL && cap > 0)
			|| ed->n > KICE_SDP_MAX_EDITS || ed->tlen > sizeof(ed->text))
		return -EINVAL;
	/* stable insertion sort of the indices: n is small */
	for(i = 0; i < ed->n; i++) {
		e = &ed->e[i];
		if((uint64_t)e->off + e->len > len
				|| (uint64_t)e->text_off + e->text_len > ed->tlen)
			return -EINVAL;
		for(j = i; j > 0 && before(e, &ed->e[idx[j - 1]]); j--)
			idx[j] = idx[j - 1];
		idx[j] = (uint16_t)i;
	}
	/* first pass: overlaps and the size of the result */
	pos = 0;
	total = 0;
	for(i = 0; i < ed->n; i++) {
		e = &ed->e[idx[i]];
		if(e->off < pos)
			return -EINVAL;
		total += e->off - pos + e->text_len;
		pos = (size_t)e->off + e->len;
	}
	total += len - pos;
	if(total > cap || total > INT_MAX)
		return -ENOSPC;
	/* second pass: write */
	pos = 0;
	w = 0;
	for(i = 0; i < ed->n; i++) {
		e = &ed->e[idx[i]];
		if(e->off > pos) {
			memcpy(out + w, body + pos, e->off - pos);
			w += e->off - pos;
		}
		if(e->text_len > 0) {
			memcpy(out + w, ed->text + e->text_off, e->text_len);
			w += e->text_len;
		}
		pos = (size_t)e->off + e->len;
	}
	if(len > pos) {
		memcpy(out + w, body + pos, len - pos);
		w += len - pos;
	}
	return (int)w;
}
