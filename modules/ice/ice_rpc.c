/*
 * kamailio-ice: kamcmd ice.* and the ice: statistics. Everything is read
 * from the shared table under its bucket locks; nothing waits on a
 * forwarder.
 */
#include <stdio.h>
#include <string.h>

#include "core/dprint.h"
#include "core/mem/shm.h"

#include "ice_mod.h"

static const char *state_name(int st)
{
	switch(st) {
		case KICE_SESS_OFFERED:
			return "offered";
		case KICE_SESS_EARLY:
			return "early";
		case KICE_SESS_ANSWERED:
			return "answered";
		default:
			return "deleted";
	}
}

static const char *ice_state_name(int s)
{
	static const char *const n[] = {"new", "running", "completed", "failed"};
	return s >= 0 && s < 4 ? n[s] : "?";
}

static const char *dtls_state_name(int s)
{
	static const char *const n[] = {
			"none", "new", "handshaking", "connected", "failed", "closed"};
	return s >= 0 && s < 6 ? n[s] : "?";
}

static void add_endpoint(rpc_t *rpc, void *ctx, void *legs,
		const struct kice_session *s, const struct kice_endpoint *ep,
		int side, const char *role)
{
	void *lh, *sa, *sh, *ca, *ch;
	char a1[KICE_ADDR_STRLEN], a2[KICE_ADDR_STRLEN];
	int i, c;

	if(rpc->array_add(legs, "{", &lh) < 0)
		return;
	rpc->struct_add(lh, "Ssd", "tag", &(str){(char *)ep->tag, ep->tag_len},
			"role", role, "generation", (int)ep->gen);
	if(rpc->struct_add(lh, "[", "streams", &sa) < 0)
		return;
	for(i = 0; i < KICE_MAX_STREAMS; i++) {
		const struct kice_ep_stream *st = kice_ep_st(ep, i);
		uint16_t port = s->side[side].port[i];

		if(!st->present)
			continue;
		if(rpc->array_add(sa, "{", &sh) < 0)
			return;
		rpc->struct_add(sh, "dddd", "index", i, "rtcp_mux", (int)st->rtcp_mux,
				"disabled", (int)st->disabled, "relay_port", (int)port);
		rpc->struct_add(sh, "sddddd", "ice",
				st->ice_state == 0 ? (ep->ice ? "not-terminated" : "none")
								   : ice_state_name(st->ice_state - 1),
				"ice_candidates", (int)st->ncand, "ice_checks_sent",
				(int)st->ice_checks_sent, "ice_checks_received",
				(int)st->ice_checks_recv, "ice_auth_failures",
				(int)st->ice_auth_fail, "ice_end_of_candidates", (int)st->eoc);
		rpc->struct_add(sh, "ssssdd", "crypto",
				s->side[side].crypto == KICE_CRYPTO_DTLS	  ? "dtls-srtp"
				: s->side[side].crypto == KICE_CRYPTO_SDES ? "sdes-srtp"
															: "none",
				"dtls", dtls_state_name(st->dtls_state), "srtp_profile",
				st->srtp_profile, "dtls_cipher", st->dtls_cipher,
				"srtp_auth_failures", (int)st->srtp_auth_fail, "srtp_replays",
				(int)st->srtp_replays);
		if(rpc->struct_add(sh, "[", "components", &ca) < 0)
			return;
		for(c = 0; c < 2; c++) {
			if(rpc->array_add(ca, "{", &ch) < 0)
				return;
			rpc->struct_add(ch, "s", "ice_selected",
					kice_addr_str(&st->selected[c], a1, sizeof(a1)));
			rpc->struct_add(ch, "ddssjjjjj", "component", c + 1, "local_port",
					port ? port + c : 0, "remote",
					kice_addr_str(&st->sdp[c], a1, sizeof(a1)), "latched",
					kice_addr_str(&st->latched[c], a2, sizeof(a2)),
					"packets_in", (unsigned long)st->cnt[c].pkts_in, "bytes_in",
					(unsigned long)st->cnt[c].bytes_in, "packets_out",
					(unsigned long)st->cnt[c].pkts_out, "bytes_out",
					(unsigned long)st->cnt[c].bytes_out, "dropped",
					(unsigned long)st->cnt[c].dropped);
		}
	}
}

static void add_session(
		rpc_t *rpc, void *ctx, void *h, const struct kice_session *s)
{
	void *legs;
	int i;

	rpc->struct_add(h, "Sdsj", "call_id",
			&(str){(char *)s->callid, s->callid_len}, "id", (int)s->id, "state",
			state_name(s->state), "created", (unsigned long)(s->created_ms / 1000));
	rpc->struct_add(h, "S", "from_tag",
			&(str){(char *)s->caller.tag, s->caller.tag_len});
	if(rpc->struct_add(h, "[", "legs", &legs) < 0)
		return;
	add_endpoint(rpc, ctx, legs, s, &s->caller, 0, "caller");
	for(i = 0; i < KICE_MAX_CALLEES; i++)
		if(kice_session_callee_at(s, (unsigned)i))
			add_endpoint(rpc, ctx, legs, s, s->callee[i], 1,
					i == s->active_callee ? "callee" : "callee-early");
}

static void rpc_sessions(rpc_t *rpc, void *ctx)
{
	struct kice_table *t = ice_ctx.t;
	struct kice_session *s;
	void *h;
	uint32_t i;

	for(i = 0; i < t->nbuckets; i++) {
		kice_bucket_lock(t, i);
		for(s = t->buckets[i].head; s; s = s->next) {
			if(rpc->add(ctx, "{", &h) < 0)
				break;
			rpc->struct_add(h, "SSsd", "call_id",
					&(str){s->callid, s->callid_len}, "from_tag",
					&(str){s->caller.tag, s->caller.tag_len}, "state",
					state_name(s->state), "id", (int)s->id);
		}
		kice_bucket_unlock(t, i);
	}
}

static void rpc_session(rpc_t *rpc, void *ctx)
{
	struct kice_table *t = ice_ctx.t;
	struct kice_session *s;
	struct kice_slice cs;
	str callid;
	uint32_t hh;
	void *h;

	if(rpc->scan(ctx, "S", &callid) < 1) {
		rpc->fault(ctx, 400, "Call-ID expected");
		return;
	}
	cs.p = callid.s;
	cs.len = (size_t)callid.len;
	hh = kice_table_hash(t, cs);
	kice_bucket_lock(t, hh);
	s = kice_session_find(t, hh, cs);
	if(s && rpc->add(ctx, "{", &h) >= 0)
		add_session(rpc, ctx, h, s);
	kice_bucket_unlock(t, hh);
	if(s == NULL)
		rpc->fault(ctx, 404, "session not found");
}

static void rpc_delete(rpc_t *rpc, void *ctx)
{
	str callid;
	struct kice_slice cs;

	if(rpc->scan(ctx, "S", &callid) < 1) {
		rpc->fault(ctx, 400, "Call-ID expected");
		return;
	}
	cs.p = callid.s;
	cs.len = (size_t)callid.len;
	if(kice_call_delete(&ice_ctx, cs) < 0) {
		rpc->fault(ctx, 404, "session not found");
		return;
	}
	rpc->rpl_printf(ctx, "deleted");
}

static uint64_t sum_fwd(size_t off)
{
	struct kice_table *t = ice_ctx.t;
	uint64_t v = 0;
	uint32_t i;

	for(i = 0; t && i < t->nfwd; i++)
		v += *(uint64_t *)((char *)&t->fwd[i] + off);
	return v;
}

static counter_val_t st_active(void)
{
	return ice_ctx.t ? (counter_val_t)ice_ctx.t->sessions_active : 0;
}

static counter_val_t st_total(void)
{
	return ice_ctx.t ? (counter_val_t)ice_ctx.t->sessions_total : 0;
}

static counter_val_t st_pkts(void)
{
	return (counter_val_t)sum_fwd(offsetof(struct kice_fwd_shared, pkts_relayed));
}

static counter_val_t st_bytes(void)
{
	return (counter_val_t)sum_fwd(
			offsetof(struct kice_fwd_shared, bytes_relayed));
}

static counter_val_t st_dropped(void)
{
	return (counter_val_t)sum_fwd(offsetof(struct kice_fwd_shared, pkts_dropped));
}

static counter_val_t st_stun(void)
{
	return (counter_val_t)sum_fwd(offsetof(struct kice_fwd_shared, stun_requests));
}

static counter_val_t st_stun_fail(void)
{
	return (counter_val_t)sum_fwd(
			offsetof(struct kice_fwd_shared, stun_auth_failures));
}

static counter_val_t st_ice_ok(void)
{
	return (counter_val_t)sum_fwd(offsetof(struct kice_fwd_shared, ice_successes));
}

static counter_val_t st_ice_fail(void)
{
	return (counter_val_t)sum_fwd(offsetof(struct kice_fwd_shared, ice_failures));
}

static counter_val_t st_dtls_ok(void)
{
	return (counter_val_t)sum_fwd(
			offsetof(struct kice_fwd_shared, dtls_handshakes));
}

static counter_val_t st_dtls_fail(void)
{
	return (counter_val_t)sum_fwd(offsetof(struct kice_fwd_shared, dtls_failures));
}

static counter_val_t st_srtp_fail(void)
{
	return (counter_val_t)sum_fwd(
			offsetof(struct kice_fwd_shared, srtp_auth_failures));
}

static counter_val_t st_ports(void)
{
	uint32_t used = 0, total = 0;

	if(ice_ctx.t)
		kice_ports_usage(ice_ctx.t->ports, &used, &total);
	return (counter_val_t)used;
}

/* clang-format off */
stat_export_t ice_stats[] = {
	{"sessions_active", STAT_IS_FUNC, (stat_var **)st_active},
	{"sessions_total", STAT_IS_FUNC, (stat_var **)st_total},
	{"packets_relayed", STAT_IS_FUNC, (stat_var **)st_pkts},
	{"bytes_relayed", STAT_IS_FUNC, (stat_var **)st_bytes},
	{"packets_dropped", STAT_IS_FUNC, (stat_var **)st_dropped},
	{"ports_in_use", STAT_IS_FUNC, (stat_var **)st_ports},
	{"stun_requests", STAT_IS_FUNC, (stat_var **)st_stun},
	{"stun_auth_failures", STAT_IS_FUNC, (stat_var **)st_stun_fail},
	{"ice_successes", STAT_IS_FUNC, (stat_var **)st_ice_ok},
	{"ice_failures", STAT_IS_FUNC, (stat_var **)st_ice_fail},
	{"dtls_handshakes", STAT_IS_FUNC, (stat_var **)st_dtls_ok},
	{"dtls_failures", STAT_IS_FUNC, (stat_var **)st_dtls_fail},
	{"srtp_auth_failures", STAT_IS_FUNC, (stat_var **)st_srtp_fail},
	{0, 0, 0}
};
/* clang-format on */

static void rpc_stats(rpc_t *rpc, void *ctx)
{
	void *h;
	uint32_t used = 0, total = 0;

	kice_ports_usage(ice_ctx.t->ports, &used, &total);
	if(rpc->add(ctx, "{", &h) < 0)
		return;
	rpc->struct_add(h, "jjj", "dtls_handshakes", (unsigned long)st_dtls_ok(),
			"dtls_failures", (unsigned long)st_dtls_fail(),
			"srtp_auth_failures", (unsigned long)st_srtp_fail());
	rpc->struct_add(h, "jjjj", "stun_requests", (unsigned long)st_stun(),
			"stun_auth_failures", (unsigned long)st_stun_fail(),
			"ice_successes", (unsigned long)st_ice_ok(), "ice_failures",
			(unsigned long)st_ice_fail());
	rpc->struct_add(h, "jjjjjjjd", "sessions_active",
			(unsigned long)ice_ctx.t->sessions_active, "sessions_total",
			(unsigned long)ice_ctx.t->sessions_total, "packets_relayed",
			(unsigned long)st_pkts(), "bytes_relayed",
			(unsigned long)st_bytes(), "packets_dropped",
			(unsigned long)st_dropped(), "ports_in_use", (unsigned long)used,
			"ports_free", (unsigned long)(total - used), "forwarders",
			(int)ice_ctx.t->nfwd);
	{
		unsigned i, nu = 0;
		for(i = 0; i < ice_ctx.t->nfwd; i++)
			nu += ice_ctx.t->fwd[i].io_uring;
		/* what the forwarders' media I/O runs on (param io_uring) */
		rpc->struct_add(h, "s", "media_io",
				nu == ice_ctx.t->nfwd ? "io_uring"
				: nu == 0			  ? "epoll"
									  : "mixed");
		/* free pairs whose sockets a forwarder keeps open (socket_reuse) */
		rpc->struct_add(h, "j", "ports_held",
				(unsigned long)kice_ports_held(ice_ctx.t->ports));
	}
}

static void rpc_ports(rpc_t *rpc, void *ctx)
{
	void *h;
	uint32_t used = 0, total = 0;

	kice_ports_usage(ice_ctx.t->ports, &used, &total);
	if(rpc->add(ctx, "{", &h) < 0)
		return;
	rpc->struct_add(h, "ddddd", "port_min", (int)ice_ctx.t->ports->min,
			"port_max", (int)ice_ctx.t->ports->max, "in_use", (int)used, "free",
			(int)(total - used), "held",
			(int)kice_ports_held(ice_ctx.t->ports));
}

static const char *doc_sessions[] = {"List the media sessions.", 0};
static const char *doc_session[] = {
		"Show one session by Call-ID: legs, streams, ports, counters.", 0};
static const char *doc_delete[] = {"Delete a session by Call-ID.", 0};
static const char *doc_stats[] = {"Relay-wide counters.", 0};
static const char *doc_ports[] = {"Media port pool usage.", 0};

/* clang-format off */
rpc_export_t ice_rpc_cmds[] = {
	{"ice.sessions", rpc_sessions, doc_sessions, RET_ARRAY},
	{"ice.session", rpc_session, doc_session, 0},
	{"ice.delete", rpc_delete, doc_delete, 0},
	{"ice.stats", rpc_stats, doc_stats, 0},
	{"ice.ports", rpc_ports, doc_ports, 0},
	{0, 0, 0, 0}
};
/* clang-format on */
