/*
 * kamailio-ice: flags parser (see flags.h, DESIGN.md section 5).
 */
#include <errno.h>
#include <string.h>

#include "flags.h"

const char *kice_flag_ice_name(enum kice_flag_ice m)
{
	switch(m) {
		case KICE_FLAG_ICE_REMOVE:
			return "remove";
		case KICE_FLAG_ICE_FORCE:
			return "force";
		case KICE_FLAG_ICE_RELAY:
			return "relay";
		case KICE_FLAG_ICE_PASS:
			return "pass";
		default:
			return "default";
	}
}

static bool split_kv(struct kice_slice tok, struct kice_slice *k,
		struct kice_slice *v)
{
	const char *eq = memchr(tok.p, '=', tok.len);

	if(eq == NULL)
		return false;
	k->p = tok.p;
	k->len = (size_t)(eq - tok.p);
	v->p = eq + 1;
	v->len = tok.len - k->len - 1;
	return true;
}

static bool set_ice(struct kice_flags *f, struct kice_slice v)
{
	if(kice_slice_eqi(v, "remove"))
		f->ice = KICE_FLAG_ICE_REMOVE;
	else if(kice_slice_eqi(v, "force"))
		f->ice = KICE_FLAG_ICE_FORCE;
	else if(kice_slice_eqi(v, "default"))
		f->ice = KICE_FLAG_ICE_DEFAULT;
	else if(kice_slice_eqi(v, "force-relay") || kice_slice_eqi(v, "optional"))
		f->ice = KICE_FLAG_ICE_RELAY;
	else
		return false;
	return true;
}

static bool set_iface(char *dst, struct kice_slice v)
{
	return v.len > 0 && kice_slice_cpy(dst, KICE_IFACE_NAME_MAX, v);
}

static bool is_transport(struct kice_slice t)
{
	static const char *const tr[] = {"RTP/AVP", "RTP/AVPF", "RTP/SAVP",
			"RTP/SAVPF", "UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF", NULL};
	int i;

	for(i = 0; tr[i]; i++)
		if(kice_slice_eq(t, tr[i]))
			return true;
	return false;
}

static bool rtcp_mux_mode(struct kice_slice v, int *out)
{
	if(kice_slice_eqi(v, "offer"))
		*out = 1;
	else if(kice_slice_eqi(v, "require"))
		*out = 2;
	else if(kice_slice_eqi(v, "demux"))
		*out = 3;
	else if(kice_slice_eqi(v, "accept"))
		*out = 4;
	else
		return false;
	return true;
}

/* one token; false if unknown or malformed */
static bool flag_one(struct kice_flags *f, struct kice_slice t)
{
	struct kice_slice k, v;

	if(kice_slice_eqi(t, "remove"))
		f->ice = KICE_FLAG_ICE_REMOVE;
	else if(kice_slice_eqi(t, "force"))
		f->ice = KICE_FLAG_ICE_FORCE;
	else if(kice_slice_eqi(t, "relay"))
		f->ice = KICE_FLAG_ICE_RELAY;
	else if(kice_slice_eqi(t, "pass"))
		f->ice = KICE_FLAG_ICE_PASS;
	else if(kice_slice_eqi(t, "lite"))
		f->lite = true;
	else if(kice_slice_eqi(t, "trickle") || kice_slice_eqi(t, "trickle-ICE"))
		f->trickle = true;
	else if(is_transport(t))
		f->transport = t;
	else if(kice_slice_eqi(t, "sdes"))
		f->sdes = 1;
	else if(kice_slice_eqi(t, "ipv4"))
		f->af = 4;
	else if(kice_slice_eqi(t, "ipv6"))
		f->af = 6;
	else if(kice_slice_eqi(t, "symmetric"))
		f->asymmetric = false;
	else if(kice_slice_eqi(t, "asymmetric"))
		f->asymmetric = true;
	else if(kice_slice_eqi(t, "strict-source"))
		f->strict_source = true;
	else if(kice_slice_prefix(t, "rtcp-mux-")) {
		v.p = t.p + 9;
		v.len = t.len - 9;
		return rtcp_mux_mode(v, &f->rtcp_mux);
	} else if(split_kv(t, &k, &v)) {
		if(kice_slice_eq(k, "ICE"))
			return set_ice(f, v);
		if(kice_slice_eq(k, "ICE-lite")) {
			if(!kice_slice_eqi(v, "forward"))
				return false;
			f->lite = true;
		} else if(kice_slice_eqi(k, "dtls")) {
			if(kice_slice_eqi(v, "active"))
				f->dtls = 1;
			else if(kice_slice_eqi(v, "passive"))
				f->dtls = 2;
			else if(kice_slice_eqi(v, "off") || kice_slice_eqi(v, "no"))
				f->dtls = -1;
			else
				return false;
		} else if(kice_slice_eqi(k, "sdes")) {
			if(!kice_slice_eqi(v, "off"))
				return false;
			f->sdes = -1;
		} else if(kice_slice_eqi(k, "rtcp-mux")) {
			return rtcp_mux_mode(v, &f->rtcp_mux);
		} else if(kice_slice_eqi(k, "in-iface")) {
			return set_iface(f->in_iface, v);
		} else if(kice_slice_eqi(k, "out-iface")) {
			return set_iface(f->out_iface, v);
		} else if(kice_slice_eqi(k, "address-family")) {
			if(kice_slice_eqi(v, "IP4"))
				f->af = 4;
			else if(kice_slice_eqi(v, "IP6"))
				f->af = 6;
			else
				return false;
		} else if(kice_slice_eqi(k, "direction")) {
			/* rtpengine: direction=in direction=out; first names the
			 * interface toward the sender, second toward the recipient */
			if(f->in_iface[0] == '\0')
				return set_iface(f->in_iface, v);
			return set_iface(f->out_iface, v);
		} else {
			return false;
		}
	} else {
		return false;
	}
	return true;
}

int kice_flags_parse(struct kice_flags *out, const char *s, size_t len,
		struct kice_slice *bad)
{
	struct kice_slice rest = {s, len}, tok;

	if(out == NULL || (s == NULL && len > 0))
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	while(kice_slice_token(&rest, ' ', &tok)) {
		/* tabs and repeated spaces are separators too */
		while(tok.len && (tok.p[0] == '\t' || tok.p[0] == ' ')) {
			tok.p++;
			tok.len--;
		}
		while(tok.len && (tok.p[tok.len - 1] == '\t'))
			tok.len--;
		if(tok.len == 0)
			continue;
		if(!flag_one(out, tok)) {
			if(bad)
				*bad = tok;
			return -EINVAL;
		}
	}
	return 0;
}
