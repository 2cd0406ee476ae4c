/*
 * kamailio-ice: libc allocator for struct kice_mem.
 */
#include <stdlib.h>

#include "mem.h"

static void *libc_alloc(void *ctx, size_t size)
{
	(void)ctx;
	return calloc(1, size ? size : 1);
}

static void libc_free(void *ctx, void *p)
{
	(void)ctx;
	free(p);
}

const struct kice_mem kice_mem_libc = {libc_alloc, libc_free, NULL};
