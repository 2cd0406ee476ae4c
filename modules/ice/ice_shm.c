/*
 * kamailio-ice: Kamailio's shm and logging behind lib/'s hooks.
 */
#include "core/dprint.h"
#include "core/mem/shm.h"

#include "../../lib/log.h"
#include "ice_mod.h"

static void *shm_alloc_z(void *ctx, size_t size)
{
	(void)ctx;
	return shm_mallocxz(size);
}

static void shm_free_p(void *ctx, void *p)
{
	(void)ctx;
	if(p)
		shm_free(p);
}

const struct kice_mem ice_shm_mem = {shm_alloc_z, shm_free_p, NULL};

void ice_log_hook(void *ctx, enum kice_log_level lvl, const char *msg)
{
	(void)ctx;
	switch(lvl) {
		case KICE_LOG_ERR:
			LM_ERR("%s\n", msg);
			break;
		case KICE_LOG_WARN:
			LM_WARN("%s\n", msg);
			break;
		case KICE_LOG_INFO:
			LM_INFO("%s\n", msg);
			break;
		default:
			LM_DBG("%s\n", msg);
			break;
	}
}
