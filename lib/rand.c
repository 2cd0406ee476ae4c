/*
 * kamailio-ice: random bytes for protocol identifiers (see rand.h).
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "rand.h"

#define POOL 512

/* per thread: the processes that use lib/ are single-threaded, the
 * tests are not always */
static _Thread_local struct
{
	unsigned char b[POOL];
	size_t off; /* b[off..POOL) not handed out yet */
} pool = {.off = POOL};

static pthread_once_t once = PTHREAD_ONCE_INIT;

/* runs in the child of a fork(), in the forking thread: what the parent
 * held must not be handed out a second time */
static void on_fork_child(void)
{
	OPENSSL_cleanse(pool.b, sizeof(pool.b));
	pool.off = POOL;
}

static void register_fork(void)
{
	pthread_atfork(NULL, NULL, on_fork_child);
}

int kice_random(void *buf, size_t n)
{
	unsigned char *out = buf;
	size_t k;

	if(n == 0)
		return 0;
	if(buf == NULL)
		return -EINVAL;
	pthread_once(&once, register_fork);
	/* large requests (SRTP master keys come in 30-46 bytes, fine) go
	 * straight to OpenSSL rather than draining the pool */
	if(n > POOL / 4)
		return RAND_bytes(out, (int)n) == 1 ? 0 : -EAGAIN;
	while(n) {
		if(pool.off == POOL) {
			if(RAND_bytes(pool.b, POOL) != 1)
				return -EAGAIN;
			pool.off = 0;
		}
		k = POOL - pool.off;
		if(k > n)
			k = n;
		memcpy(out, pool.b + pool.off, k);
		OPENSSL_cleanse(pool.b + pool.off, k);
		pool.off += k;
		out += k;
		n -= k;
	}
	return 0;
}
