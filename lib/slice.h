/*
 * kamailio-ice: borrowed byte slices and a bounded byte reader.
 *
 * A slice borrows memory it does not own and carries no NUL. Parsers hand
 * out slices into the caller's buffer; they must not outlive it.
 */
#ifndef KICE_SLICE_H
#define KICE_SLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct kice_slice
{
	const char *p;
	size_t len;
};

#define KICE_SLICE_LIT(s) ((struct kice_slice){(s), sizeof(s) - 1})

struct kice_rd
{
	const uint8_t *p, *end;
};

static inline struct kice_slice kice_slice_make(const char *p, size_t len)
{
	struct kice_slice s = {p, len};
	return s;
}

/* true when s equals the NUL-terminated lit exactly (case-sensitive) */
static inline bool kice_slice_eq(struct kice_slice s, const char *lit)
{
	size_t n = strlen(lit);
	return s.len == n && (n == 0 || memcmp(s.p, lit, n) == 0);
}

/* true when s equals lit ignoring ASCII case */
bool kice_slice_eqi(struct kice_slice s, const char *lit);

/* true when s starts with the NUL-terminated prefix */
static inline bool kice_slice_prefix(struct kice_slice s, const char *pre)
{
	size_t n = strlen(pre);
	return s.len >= n && memcmp(s.p, pre, n) == 0;
}

/* Decimal digits only, no sign, no spaces; false on empty, junk or overflow */
bool kice_slice_u32(struct kice_slice s, uint32_t *out);

/* Split off the next token ending at sep; *s keeps the rest (after sep).
 * Returns false when *s is empty. */
bool kice_slice_token(struct kice_slice *s, char sep, struct kice_slice *tok);

/* FNV-1a hash of the bytes of s */
uint32_t kice_slice_hash(struct kice_slice s);

/* Copy s into dst (cap bytes incl. NUL); false if it does not fit. */
bool kice_slice_cpy(char *dst, size_t cap, struct kice_slice s);

static inline bool kice_rd_u8(struct kice_rd *r, uint8_t *v)
{
	if(r->end - r->p < 1)
		return false;
	*v = *r->p++;
	return true;
}

static inline bool kice_rd_u16(struct kice_rd *r, uint16_t *v)
{
	if(r->end - r->p < 2)
		return false;
	*v = (uint16_t)((r->p[0] << 8) | r->p[1]);
	r->p += 2;
	return true;
}

static inline bool kice_rd_u32(struct kice_rd *r, uint32_t *v)
{
	if(r->end - r->p < 4)
		return false;
	*v = ((uint32_t)r->p[0] << 24) | ((uint32_t)r->p[1] << 16)
		 | ((uint32_t)r->p[2] << 8) | r->p[3];
	r->p += 4;
	return true;
}

#endif
