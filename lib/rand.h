/*
 * kamailio-ice: random bytes for protocol identifiers.
 *
 * STUN transaction IDs, ICE credentials and tie-breakers come from
 * OpenSSL's CSPRNG (RAND_bytes), drawn a pool at a time: one RAND_bytes
 * call per ~40 transaction IDs instead of one each (each call fetches the
 * DRBG, takes its lock and checks for a fork with getpid()). Bytes are
 * handed out once and wiped from the pool as they go. A forked child
 * starts with an empty pool (pthread_atfork), so two processes never hand
 * out the same bytes.
 */
#ifndef KICE_RAND_H
#define KICE_RAND_H

#include <stddef.h>

/* fill buf with n cryptographically random bytes: 0, -EINVAL (buf NULL
 * with n > 0) or -EAGAIN (OpenSSL's generator failed; nothing usable) */
int kice_random(void *buf, size_t n);

#endif
