/*
 * kamailio-ice: ice_manage() and friends: unpack the SIP message, let
 * lib/call do the work, put the new body in with lumps.
 */
#include <string.h>

#include "core/data_lump.h"
#include "core/dprint.h"
#include "core/mem/mem.h"
#include "core/parser/parse_content.h"
#include "core/parser/parse_from.h"
#include "core/parser/parse_to.h"
#include "core/route.h"
#include "core/trim.h"

#include "../../lib/flags.h"
#include "ice_mod.h"

#define ICE_BODY_MAX 65536

static struct kice_slice sl(str s)
{
	struct kice_slice r = {s.s, (size_t)(s.len > 0 ? s.len : 0)};
	return r;
}

/* the message's SDP body; 1 found, 0 none, -1 not SDP or broken */
static int sdp_body(sip_msg_t *msg, str *body, str *callid)
{
	int mime;

	body->s = get_body(msg);
	body->len = 0;
	if(body->s == NULL)
		return 0;
	if(msg->content_length)
		body->len = (int)get_content_length(msg);
	else
		body->len = msg->len - (int)(body->s - msg->buf);
	if(body->len <= 0)
		return 0;
	if(body->s + body->len > msg->buf + msg->len) {
		LM_ERR("ice_manage: Content-Length exceeds the message (Call-ID %.*s), "
			   "message left untouched\n",
				callid->len, callid->s);
		return -1;
	}
	mime = parse_content_type_hdr(msg);
	if(mime < 0) {
		LM_ERR("ice_manage: bad Content-Type (Call-ID %.*s), message left "
			   "untouched\n",
				callid->len, callid->s);
		return -1;
	}
	if(mime != 0 && mime != ((TYPE_APPLICATION << 16) + SUBTYPE_SDP)) {
		LM_ERR("ice_manage: body is not application/sdp (multipart bodies "
			   "are not handled) (Call-ID %.*s), message left untouched\n",
				callid->len, callid->s);
		return -1;
	}
	return 1;
}

/* A body lump already there (a second call, or failure_route inheriting
 * request_route's lumps) would make the core emit two SDPs. */
static int body_rewritten(sip_msg_t *msg, str *body)
{
	struct lump *l;
	int off = (int)(body->s - msg->buf);

	for(l = msg->body_lumps; l; l = l->next)
		if(l->op == LUMP_DEL && l->u.offset == off)
			return 1;
	return 0;
}

static int msg_ids(sip_msg_t *msg, str *callid, str *ftag, str *ttag)
{
	if(parse_headers(msg, HDR_CALLID_F | HDR_FROM_F | HDR_TO_F, 0) < 0
			|| msg->callid == NULL || msg->from == NULL || msg->to == NULL) {
		LM_ERR("ice_manage: missing Call-ID, From or To\n");
		return -1;
	}
	if(parse_from_header(msg) < 0) {
		LM_ERR("ice_manage: bad From header\n");
		return -1;
	}
	*callid = msg->callid->body;
	trim(callid);
	*ftag = get_from(msg)->tag_value;
	*ttag = get_to(msg)->tag_value;
	return 0;
}

static int replace_body(sip_msg_t *msg, str *body, const char *nb, int len)
{
	struct lump *anchor;
	char *buf;

	/* RFC 3261 §18.3: bytes past Content-Length are discarded, so the
	 * whole rest of the datagram goes, not only Content-Length bytes */
	anchor = del_lump(msg, (int)(body->s - msg->buf),
			msg->len - (int)(body->s - msg->buf), 0);
	if(anchor == NULL) {
		LM_ERR("ice_manage: cannot delete the old body\n");
		return -1;
	}
	buf = pkg_malloc(len);
	if(buf == NULL) {
		PKG_MEM_ERROR;
		return -1;
	}
	memcpy(buf, nb, len);
	if(insert_new_lump_after(anchor, buf, len, 0) == NULL) {
		LM_ERR("ice_manage: cannot insert the new body\n");
		pkg_free(buf);
		return -1;
	}
	return 0;
}

static int do_delete(str *callid)
{
	int rc = kice_call_delete(&ice_ctx, sl(*callid));

	if(rc < 0)
		LM_DBG("ice_delete: no session for Call-ID %.*s\n", callid->len,
				callid->s);
	else
		LM_DBG("ice_delete: session %.*s deleted\n", callid->len, callid->s);
	return 1;
}

int ice_cmd_delete(sip_msg_t *msg)
{
	str callid, ftag, ttag;

	if(msg_ids(msg, &callid, &ftag, &ttag) < 0)
		return -1;
	return do_delete(&callid);
}

int ice_cmd_manage(sip_msg_t *msg, str *flags, enum kice_flag_op op)
{
	static char out[ICE_BODY_MAX];
	struct kice_flags fl;
	struct kice_slice bad;
	struct kice_msg m;
	str callid, ftag, ttag, body;
	const char *why;
	int rc, method = 0, status = 0;

	if(kice_flags_parse(&fl, flags ? flags->s : NULL, flags ? flags->len : 0,
			   &bad)
			< 0) {
		LM_ERR("ice_manage: unknown or malformed flag '%.*s'\n", (int)bad.len,
				bad.p);
		return -1;
	}
	if(msg_ids(msg, &callid, &ftag, &ttag) < 0)
		return -1;
	if(msg->first_line.type == SIP_REQUEST)
		method = msg->first_line.u.request.method_value;
	else
		status = (int)msg->first_line.u.reply.statuscode;

	/* what the message means for the session (rtpengine_manage's rules) */
	if(op == KICE_OP_AUTO || op == KICE_OP_DELETE) {
		if(op == KICE_OP_DELETE || method == METHOD_BYE
				|| method == METHOD_CANCEL || status >= 300
				|| is_route_type(FAILURE_ROUTE))
			return do_delete(&callid);
	}
	rc = sdp_body(msg, &body, &callid);
	if(rc < 0)
		return -1;
	if(rc == 0)
		return 2; /* no SDP: nothing to do */
	if(body_rewritten(msg, &body)) {
		LM_DBG("ice_manage: body already rewritten, leaving it\n");
		return 1;
	}
	if(op == KICE_OP_AUTO) {
		if(method == METHOD_ACK || method == METHOD_PRACK)
			op = KICE_OP_ANSWER;
		else if(method)
			op = KICE_OP_OFFER;
		else
			op = KICE_OP_ANSWER;
	}

	memset(&m, 0, sizeof(m));
	m.is_request = msg->first_line.type == SIP_REQUEST;
	m.final = status >= 200;
	m.op = op;
	m.callid = sl(callid);
	m.from_tag = sl(ftag);
	m.to_tag = sl(ttag);
	m.body = body.s;
	m.len = (size_t)body.len;
	rc = kice_call_sdp(&ice_ctx, &m, &fl, out, sizeof(out), &why);
	if(rc < 0) {
		LM_ERR("ice_manage: %s (Call-ID %.*s), message left untouched\n",
				why, callid.len, callid.s);
		return -1;
	}
	if(rc == 0)
		return 1; /* pass */
	if(replace_body(msg, &body, out, rc) < 0)
		return -1;
	return 1;
}
