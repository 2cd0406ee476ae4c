/*
 * kamailio-ice: the ice module's exports, parameters, start-up and the
 * forwarder processes.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/cfg/cfg_struct.h"
#include "core/dprint.h"
#include "core/kemi.h"
#include "core/mod_fix.h"
#include "core/pt.h"
#include "core/sr_module.h"

#include "../../lib/dtls.h"
#include "../../lib/fwd.h"
#include "../../lib/srtp.h"
#include "../../lib/log.h"
#include "ice_mod.h"

MODULE_VERSION

static int port_min = 35000;
static int port_max = 40000;
static int forwarders = 1;
int ice_media_timeout = 60;
int ice_session_timeout = 0;
static int relatch_window = 3000;
static int media_tos = 184; /* DSCP EF */
static int hash_size = 4096;
static int use_io_uring = 1;
static int socket_reuse = 1;
static char *dtls_cert_path = NULL;
static char *dtls_key_path = NULL;
static struct kice_dtls_cert *dtls_cert;
static char dtls_fp[KICE_DTLS_FP_MAX];

static struct kice_iface ifaces[KICE_MAX_IFACES];
static int nifaces;
static int fwd_fds[ICE_MAX_FWD][2];
static int fwd_wr[ICE_MAX_FWD];
struct kice_ctx ice_ctx;
int ice_nfwd;

static int mod_init(void);
static int child_init(int rank);
static void mod_destroy(void);

static int iface_param(modparam_t type, void *val)
{
	const char *s = (const char *)val;

	(void)type;
	if(nifaces >= KICE_MAX_IFACES) {
		LM_ERR("too many interfaces (max %d)\n", KICE_MAX_IFACES);
		return -1;
	}
	if(kice_iface_parse(&ifaces[nifaces], s, strlen(s)) < 0) {
		LM_ERR("bad interface '%s': expected name/local-ip[!advertised-ip]\n",
				s);
		return -1;
	}
	nifaces++;
	return 0;
}

static int w_ice_manage0(sip_msg_t *msg, char *p1, char *p2)
{
	return ice_cmd_manage(msg, NULL, KICE_OP_AUTO);
}

static int w_ice_flags(sip_msg_t *msg, char *p1, enum kice_flag_op op)
{
	str flags;

	if(fixup_get_svalue(msg, (gparam_t *)p1, &flags) < 0) {
		LM_ERR("ice: cannot read the flags parameter\n");
		return -1;
	}
	return ice_cmd_manage(msg, &flags, op);
}

static int w_ice_manage1(sip_msg_t *msg, char *p1, char *p2)
{
	return w_ice_flags(msg, p1, KICE_OP_AUTO);
}

static int w_ice_offer0(sip_msg_t *msg, char *p1, char *p2)
{
	return ice_cmd_manage(msg, NULL, KICE_OP_OFFER);
}

static int w_ice_offer1(sip_msg_t *msg, char *p1, char *p2)
{
	return w_ice_flags(msg, p1, KICE_OP_OFFER);
}

static int w_ice_answer0(sip_msg_t *msg, char *p1, char *p2)
{
	return ice_cmd_manage(msg, NULL, KICE_OP_ANSWER);
}

static int w_ice_answer1(sip_msg_t *msg, char *p1, char *p2)
{
	return w_ice_flags(msg, p1, KICE_OP_ANSWER);
}

static int w_ice_delete(sip_msg_t *msg, char *p1, char *p2)
{
	return ice_cmd_delete(msg);
}

#define ICE_ROUTES \
	(REQUEST_ROUTE | ONREPLY_ROUTE | FAILURE_ROUTE | BRANCH_ROUTE)

/* clang-format off */
static cmd_export_t cmds[] = {
	{"ice_manage", (cmd_function)w_ice_manage0, 0, 0, 0, ICE_ROUTES},
	{"ice_manage", (cmd_function)w_ice_manage1, 1, fixup_spve_null,
		fixup_free_spve_null, ICE_ROUTES},
	{"ice_offer", (cmd_function)w_ice_offer0, 0, 0, 0, ICE_ROUTES},
	{"ice_offer", (cmd_function)w_ice_offer1, 1, fixup_spve_null,
		fixup_free_spve_null, ICE_ROUTES},
	{"ice_answer", (cmd_function)w_ice_answer0, 0, 0, 0, ICE_ROUTES},
	{"ice_answer", (cmd_function)w_ice_answer1, 1, fixup_spve_null,
		fixup_free_spve_null, ICE_ROUTES},
	{"ice_delete", (cmd_function)w_ice_delete, 0, 0, 0, ICE_ROUTES},
	{0, 0, 0, 0, 0, 0}
};

static param_export_t params[] = {
	{"port_min", PARAM_INT, &port_min},
	{"port_max", PARAM_INT, &port_max},
	{"interface", PARAM_STRING | USE_FUNC_PARAM, (void *)iface_param},
	{"forwarders", PARAM_INT, &forwarders},
	{"media_timeout", PARAM_INT, &ice_media_timeout},
	{"session_timeout", PARAM_INT, &ice_session_timeout},
	{"relatch_window", PARAM_INT, &relatch_window},
	{"tos", PARAM_INT, &media_tos},
	{"hash_size", PARAM_INT, &hash_size},
	{"io_uring", PARAM_INT, &use_io_uring},
	{"socket_reuse", PARAM_INT, &socket_reuse},
	{"dtls_cert", PARAM_STRING, &dtls_cert_path},
	{"dtls_key", PARAM_STRING, &dtls_key_path},
	{0, 0, 0}
};

struct module_exports exports = {
	"ice",
	DEFAULT_DLFLAGS,
	cmds,
	params,
	ice_rpc_cmds,
	0,
	0,
	mod_init,
	child_init,
	mod_destroy
};
/* clang-format on */

static int ki_ice_manage0(sip_msg_t *msg)
{
	return ice_cmd_manage(msg, NULL, KICE_OP_AUTO);
}

static int ki_ice_manage(sip_msg_t *msg, str *flags)
{
	return ice_cmd_manage(msg, flags, KICE_OP_AUTO);
}

static int ki_ice_offer(sip_msg_t *msg, str *flags)
{
	return ice_cmd_manage(msg, flags, KICE_OP_OFFER);
}

static int ki_ice_answer(sip_msg_t *msg, str *flags)
{
	return ice_cmd_manage(msg, flags, KICE_OP_ANSWER);
}

static int ki_ice_delete(sip_msg_t *msg)
{
	return ice_cmd_delete(msg);
}

/* clang-format off */
static sr_kemi_t ice_kemi_exports[] = {
	{ str_init("ice"), str_init("ice_manage0"), SR_KEMIP_INT, ki_ice_manage0,
		{ SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE,
			SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE } },
	{ str_init("ice"), str_init("ice_manage"), SR_KEMIP_INT, ki_ice_manage,
		{ SR_KEMIP_STR, SR_KEMIP_NONE, SR_KEMIP_NONE,
			SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE } },
	{ str_init("ice"), str_init("ice_offer"), SR_KEMIP_INT, ki_ice_offer,
		{ SR_KEMIP_STR, SR_KEMIP_NONE, SR_KEMIP_NONE,
			SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE } },
	{ str_init("ice"), str_init("ice_answer"), SR_KEMIP_INT, ki_ice_answer,
		{ SR_KEMIP_STR, SR_KEMIP_NONE, SR_KEMIP_NONE,
			SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE } },
	{ str_init("ice"), str_init("ice_delete"), SR_KEMIP_INT, ki_ice_delete,
		{ SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE,
			SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE } },
	{ {0, 0}, {0, 0}, 0, NULL, { 0, 0, 0, 0, 0, 0 } }
};
/* clang-format on */

int mod_register(char *path, int *dlflags, void *p1, void *p2)
{
	sr_kemi_modules_add(ice_kemi_exports);
	return 0;
}

static int mod_init(void)
{
	struct kice_table *t = NULL;
	int i, rc;

	kice_log_set(ice_log_hook, NULL,
			cfg_get(core, core_cfg, debug) >= L_DBG ? KICE_LOG_DBG
													: KICE_LOG_INFO);
	if(port_min < 1024 || port_max > 65535 || port_max <= port_min + 2) {
		LM_ERR("bad port range %d..%d\n", port_min, port_max);
		return -1;
	}
	if(forwarders < 1 || forwarders > ICE_MAX_FWD) {
		LM_ERR("forwarders must be 1..%d\n", ICE_MAX_FWD);
		return -1;
	}
	if(hash_size < 16)
		hash_size = 16;
	if(nifaces == 0) {
		LM_WARN("no 'interface' set: relaying on 127.0.0.1\n");
		iface_param(0, "default/127.0.0.1");
	}
	rc = kice_table_create(&t, &ice_shm_mem, (uint32_t)hash_size,
			(uint16_t)port_min, (uint16_t)port_max, (uint32_t)forwarders);
	if(rc < 0) {
		LM_ERR("cannot create the session table: %s\n", strerror(-rc));
		return -1;
	}
	/* channels made here, before any SIP worker is forked */
	for(i = 0; i < forwarders; i++) {
		if(kice_fwd_channel(fwd_fds[i]) < 0) {
			LM_ERR("cannot create the forwarder channel: %s\n",
					strerror(errno));
			kice_table_destroy(t);
			return -1;
		}
		fwd_wr[i] = fwd_fds[i][0];
	}
	/* DTLS: one certificate, made before the fork so every process knows
	 * its fingerprint (DESIGN.md §2) */
	if(kice_srtp_init() < 0) {
		LM_ERR("cannot initialise libsrtp2\n");
		return -1;
	}
	if(dtls_cert_path && dtls_key_path)
		rc = kice_dtls_cert_load(&dtls_cert, dtls_cert_path, dtls_key_path);
	else if(dtls_cert_path || dtls_key_path) {
		LM_ERR("dtls_cert and dtls_key go together\n");
		return -1;
	} else
		rc = kice_dtls_cert_create(&dtls_cert);
	if(rc < 0 || kice_dtls_cert_fingerprint(dtls_cert, dtls_fp, sizeof(dtls_fp))
						 < 0) {
		LM_ERR("cannot %s the DTLS certificate (%s)\n",
				dtls_cert_path ? "load" : "create", strerror(-rc));
		return -1;
	}
	LM_INFO("DTLS certificate fingerprint: %s\n", dtls_fp);
	ice_ctx.fingerprint = dtls_fp;
	ice_nfwd = forwarders;
	ice_ctx.t = t;
	ice_ctx.ctl_fds = fwd_wr;
	ice_ctx.ifaces = ifaces;
	ice_ctx.nifaces = (unsigned)nifaces;
	ice_ctx.tos = media_tos;
	ice_ctx.relatch_window_ms = (uint32_t)relatch_window;
	if(register_module_stats("ice", ice_stats) != 0) {
		LM_ERR("cannot register statistics\n");
		return -1;
	}
	register_procs(forwarders);
	cfg_register_child(forwarders);
	return 0;
}

static void fwd_tick(void)
{
	cfg_update();
}

static void fwd_main(int idx)
{
	static struct kice_addr addrs[KICE_MAX_IFACES];
	struct kice_fwd_cfg cfg;
	int i;

	memset(&cfg, 0, sizeof(cfg));
	cfg.t = ice_ctx.t;
	cfg.idx = (unsigned)idx;
	cfg.ctl_fd = fwd_fds[idx][1];
	cfg.media_timeout_s = (uint32_t)ice_media_timeout;
	cfg.session_timeout_s = (uint32_t)ice_session_timeout;
	cfg.tos = media_tos;
	cfg.tick = fwd_tick;
	cfg.no_io_uring = use_io_uring == 0;
	cfg.no_socket_reuse = socket_reuse == 0;
	for(i = 0; i < nifaces; i++)
		addrs[i] = ifaces[i].local;
	cfg.ifaces = addrs;
	cfg.cert = dtls_cert;
	cfg.nifaces = (unsigned)nifaces;
	if(cfg_child_init() < 0)
		LM_ERR("forwarder %d: cfg_child_init failed\n", idx);
	/* kice_fwd_run never returns while it can work; if it cannot even
	 * start, stay alive (an exiting child stops Kamailio) and say why */
	for(;;) {
		int rc = kice_fwd_run(&cfg);
		LM_CRIT("forwarder %d cannot run: %s; retrying in 1 s\n", idx,
				strerror(-rc));
		sleep(1);
	}
}

static int child_init(int rank)
{
	int i, pid;

	if(rank != PROC_MAIN)
		return 0;
	for(i = 0; i < ice_nfwd; i++) {
		pid = fork_process(PROC_NOCHLDINIT, "ICE FORWARDER", 1);
		if(pid < 0) {
			LM_ERR("cannot fork forwarder %d\n", i);
			return -1;
		}
		if(pid == 0) {
			fwd_main(i);
			_exit(0);
		}
	}
	return 0;
}

static void mod_destroy(void)
{
	kice_dtls_cert_destroy(dtls_cert);
	dtls_cert = NULL;
	if(ice_ctx.t) {
		kice_table_destroy(ice_ctx.t);
		ice_ctx.t = NULL;
	}
}
