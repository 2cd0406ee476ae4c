/*
 * kamailio-ice: compact transport addresses (see addr.h).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"

bool kice_addr_set(struct kice_addr *a, struct kice_slice ip, uint16_t port)
{
	char tmp[64];

	memset(a, 0, sizeof(*a));
	if(!kice_slice_cpy(tmp, sizeof(tmp), ip))
		return false;
	if(inet_pton(AF_INET, tmp, a->ip) == 1)
		a->af = 4;
	else if(inet_pton(AF_INET6, tmp, a->ip) == 1)
		a->af = 6;
	else
		return false;
	a->port = port;
	return true;
}

bool kice_addr_eq_ip(const struct kice_addr *a, const struct kice_addr *b)
{
	if(a->af != b->af)
		return false;
	return memcmp(a->ip, b->ip, a->af == 4 ? 4 : 16) == 0;
}

bool kice_addr_eq(const struct kice_addr *a, const struct kice_addr *b)
{
	return a->port == b->port && kice_addr_eq_ip(a, b);
}

bool kice_addr_is_any(const struct kice_addr *a)
{
	static const uint8_t zero[16];

	return a->af != 0 && memcmp(a->ip, zero, a->af == 4 ? 4 : 16) == 0;
}

socklen_t kice_addr_to_sa(const struct kice_addr *a, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if(a->af == 4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(a->port);
		memcpy(&sin->sin_addr, a->ip, 4);
		return sizeof(*sin);
	}
	if(a->af == 6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(a->port);
		memcpy(&sin6->sin6_addr, a->ip, 16);
		return sizeof(*sin6);
	}
	return 0;
}

bool kice_addr_from_sa(struct kice_addr *a, const struct sockaddr *sa)
{
	memset(a, 0, sizeof(*a));
	if(sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		a->af = 4;
		a->port = ntohs(sin->sin_port);
		memcpy(a->ip, &sin->sin_addr, 4);
		return true;
	}
	if(sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		a->af = 6;
		a->port = ntohs(sin6->sin6_port);
		memcpy(a->ip, &sin6->sin6_addr, 16);
		return true;
	}
	return false;
}

const char *kice_addr_ip_str(const struct kice_addr *a, char *buf, size_t cap)
{
	if(a->af == 0 || inet_ntop(a->af == 4 ? AF_INET : AF_INET6, a->ip, buf,
							 (socklen_t)cap)
							 == NULL)
		snprintf(buf, cap, "-");
	return buf;
}

const char *kice_addr_str(const struct kice_addr *a, char *buf, size_t cap)
{
	char ip[INET6_ADDRSTRLEN];

	if(a->af == 0) {
		snprintf(buf, cap, "-");
		return buf;
	}
	kice_addr_ip_str(a, ip, sizeof(ip));
	if(a->af == 6)
		snprintf(buf, cap, "[%s]:%u", ip, a->port);
	else
		snprintf(buf, cap, "%s:%u", ip, a->port);
	return buf;
}
