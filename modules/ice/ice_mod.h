/*
 * kamailio-ice: state shared by the glue files of the ice module.
 */
#ifndef ICE_MOD_H
#define ICE_MOD_H

#include "core/counters.h"
#include "core/parser/msg_parser.h"
#include "core/rpc.h"
#include "core/str.h"

#include "../../lib/call.h"
#include "../../lib/log.h"
#include "../../lib/session.h"

#define ICE_MAX_FWD 16

extern struct kice_ctx ice_ctx;
extern int ice_nfwd;
extern int ice_media_timeout;
extern int ice_session_timeout;

/* ice_cmd.c */
int ice_cmd_manage(sip_msg_t *msg, str *flags, enum kice_flag_op op);
int ice_cmd_delete(sip_msg_t *msg);

/* ice_rpc.c */
extern rpc_export_t ice_rpc_cmds[];
extern stat_export_t ice_stats[];

/* ice_shm.c */
extern const struct kice_mem ice_shm_mem;
void ice_log_hook(void *ctx, enum kice_log_level lvl, const char *msg);

#endif
