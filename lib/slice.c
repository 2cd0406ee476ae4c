/*
 * kamailio-ice: slice helpers (see slice.h).
 */
#include "slice.h"

bool kice_slice_eqi(struct kice_slice s, const char *lit)
{
	size_t n = strlen(lit);
	size_t i;

	if(s.len != n)
		return false;
	for(i = 0; i < n; i++) {
		unsigned char a = (unsigned char)s.p[i], b = (unsigned char)lit[i];
		if(a >= 'A' && a <= 'Z')
			a = (unsigned char)(a + 32);
		if(b >= 'A' && b <= 'Z')
			b = (unsigned char)(b + 32);
		if(a != b)
			return false;
	}
	return true;
}

bool kice_slice_u32(struct kice_slice s, uint32_t *out)
{
	uint64_t v = 0;
	size_t i;

	if(s.len == 0 || s.len > 10)
		return false;
	for(i = 0; i < s.len; i++) {
		if(s.p[i] < '0' || s.p[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s.p[i] - '0');
	}
	if(v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

bool kice_slice_token(struct kice_slice *s, char sep, struct kice_slice *tok)
{
	const char *q;

	if(s->len == 0)
		return false;
	q = memchr(s->p, sep, s->len);
	tok->p = s->p;
	if(q == NULL) {
		tok->len = s->len;
		s->p += s->len;
		s->len = 0;
	} else {
		tok->len = (size_t)(q - s->p);
		s->len -= tok->len + 1;
		s->p = q + 1;
	}
	return true;
}

bool kice_slice_cpy(char *dst, size_t cap, struct kice_slice s)
{
	if(cap == 0 || s.len >= cap)
		return false;
	if(s.len)
		memcpy(dst, s.p, s.len);
	dst[s.len] = '\0';
	return true;
}

uint32_t kice_slice_hash(struct kice_slice s)
{
	uint32_t h = 2166136261u;
	size_t i;

	for(i = 0; i < s.len; i++) {
		h ^= (uint8_t)s.p[i];
		h *= 16777619u;
	}
	return h;
}
