/*
 * kamailio-ice: allocation hook. Shared-memory wrappers in the glue, malloc
 * in tools and the forwarder, a failing allocator in tests.
 */
#ifndef KICE_MEM_H
#define KICE_MEM_H

#include <stddef.h>

struct kice_mem
{
	void *(*alloc)(void *ctx, size_t size); /* zeroed memory or NULL */
	void (*free)(void *ctx, void *p);		/* p may be NULL */
	void *ctx;
};

/* calloc/free based allocator */
extern const struct kice_mem kice_mem_libc;

#endif
