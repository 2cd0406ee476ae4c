/*
 * kamailio-ice: a compact, pointer-free transport address (shm-safe).
 */
#ifndef KICE_ADDR_H
#define KICE_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "slice.h"

#define KICE_ADDR_STRLEN 64 /* "[v6]:port" fits */

struct kice_addr
{
	uint8_t af;	   /* 0 (unset), 4 or 6 */
	uint16_t port; /* host order; 0 = no port known */
	uint8_t ip[16];
};

/* Parse a textual IPv4/IPv6 address (no brackets) and a port. */
bool kice_addr_set(struct kice_addr *a, struct kice_slice ip, uint16_t port);
bool kice_addr_eq(const struct kice_addr *a, const struct kice_addr *b);
bool kice_addr_eq_ip(const struct kice_addr *a, const struct kice_addr *b);
/* Convert to/from sockaddr; to_sa returns the length, 0 if unset */
socklen_t kice_addr_to_sa(const struct kice_addr *a, struct sockaddr_storage *ss);
bool kice_addr_from_sa(struct kice_addr *a, const struct sockaddr *sa);
/* "ip:port" or "[ip]:port" into buf; returns buf ("-" when unset) */
const char *kice_addr_str(const struct kice_addr *a, char *buf, size_t cap);
/* The IP alone into buf (cap >= 46); returns buf */
const char *kice_addr_ip_str(const struct kice_addr *a, char *buf, size_t cap);
/* true for 0.0.0.0 / :: (RFC 3264 hold) */
bool kice_addr_is_any(const struct kice_addr *a);

#endif
