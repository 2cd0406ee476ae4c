/*
 * kamailio-ice: zero-copy SDP parser (RFC 8866) and edit list.
 *
 * kice_sdp_parse() validates a body once and describes it with slices and
 * offsets into it; nothing is allocated or copied, and the description
 * borrows the body: it must not outlive it. A rewrite is expressed as a list
 * of edits {off, len, replacement} against the original body, which the glue
 * turns into lumps and the tests apply with kice_sdp_edits_apply(). Lines
 * that no edit touches come out byte for byte.
 */
#ifndef KICE_SDP_H
#define KICE_SDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "slice.h"

#define KICE_SDP_MAX_MEDIA 16
#define KICE_SDP_MAX_EDITS 256

enum kice_af
{
	KICE_AF_NONE = 0,
	KICE_AF_INET = 4,
	KICE_AF_INET6 = 6
};

enum kice_sdp_dir
{
	KICE_SDP_DIR_NONE = 0,
	KICE_SDP_DIR_SENDRECV,
	KICE_SDP_DIR_SENDONLY,
	KICE_SDP_DIR_RECVONLY,
	KICE_SDP_DIR_INACTIVE
};

/* A c= line, or the address part of a=rtcp */
struct kice_sdp_conn
{
	bool present;
	enum kice_af af;
	struct kice_slice addr;		 /* "192.0.2.1", "2001:db8::1", no /ttl */
	uint32_t line_off, line_len; /* whole line incl. its CRLF/LF */
};

struct kice_sdp_media
{
	struct kice_slice type;		 /* "audio", "video", "application" */
	uint16_t port, nports;		 /* m= port, nports (1 if absent) */
	uint32_t port_off, port_len; /* the port digits only, not "/nports" */
	struct kice_slice proto;	 /* "RTP/AVP", "UDP/TLS/RTP/SAVPF", ... */
	struct kice_slice fmts;		 /* rest of the m= line */
	uint32_t m_off, m_len;		 /* the m= line incl. EOL */
	uint32_t off, end;			 /* the whole media section [off,end) */
	struct kice_sdp_conn c;		 /* media-level c=, present=false if none */
	/* a=rtcp (RFC 3605): rtcp.present if it had an address; rtcp.line_*
	 * is the a=rtcp line whenever has_rtcp */
	bool has_rtcp;
	uint16_t rtcp_port;
	struct kice_sdp_conn rtcp;
	bool rtcp_mux, rtcp_mux_only;					   /* RFC 5761, RFC 8858 */
	struct kice_slice ice_ufrag, ice_pwd, ice_options; /* len 0 if absent */
	unsigned ncand;
	bool end_of_candidates;
	struct kice_slice mid, fingerprint, setup;
	unsigned ncrypto;
	enum kice_sdp_dir dir;
};

struct kice_sdp
{
	const char *buf; /* the body parsed (borrowed) */
	size_t len;
	bool crlf;				  /* the first line ends in CRLF (else LF) */
	uint32_t sess_end;		  /* offset of the first m= line (or len) */
	struct kice_sdp_conn c;	  /* session-level c= */
	struct kice_slice o_addr; /* origin address */
	struct kice_slice ice_ufrag, ice_pwd, ice_options; /* session level */
	bool ice_lite;
	struct kice_slice fingerprint, setup; /* session level (Firefox) */
	enum kice_sdp_dir dir;
	unsigned nmedia;
	struct kice_sdp_media media[KICE_SDP_MAX_MEDIA];
	const char *why; /* on error: static reason and byte offset */
	uint32_t why_off;
};

/*
 * Parse body (borrowed, need not be NUL-terminated) into out.
 *
 * Accepts CRLF and LF line endings (a last line without one too) and
 * trailing empty lines. Requires "v=0" as the first line and an o= line with
 * all six fields; every line must be "<letter>=<value>"; c= (and the address
 * of a=rtcp) must be "IN IP4|IP6 <addr>" with an address inet_pton accepts;
 * m= needs media, port[/n] <= 65535, proto and at least one format. At most
 * one c= and one a=rtcp per level.
 *
 * Returns 0; -EBADMSG (out->why and out->why_off set); -ENOSPC when there
 * are more than KICE_SDP_MAX_MEDIA m= lines or the body exceeds 4 GB (why
 * set); -EINVAL when out is NULL or buf is NULL with len > 0.
 * Pure function of its arguments: any process, no locks.
 */
int kice_sdp_parse(struct kice_sdp *out, const char *buf, size_t len);

/* true when the body carries any ICE: ice-ufrag, ice-pwd, ice-lite or a
 * candidate at any level */
bool kice_sdp_has_ice(const struct kice_sdp *sdp);

/* One line of a body, as walked by kice_sdp_line_next() */
struct kice_sdp_line
{
	char type;			   /* 'v', 'o', 'm', 'a'..., 0 if not "x=" */
	struct kice_slice val; /* after "x=" (the whole text if type 0) */
	uint32_t off, len;	   /* whole line incl. EOL */
	uint32_t eol;		   /* 0 (last line without EOL), 1 (LF), 2 (CRLF) */
};

/*
 * Walk the lines of buf[*pos, len): fills l with the line at *pos and moves
 * *pos past it; false when *pos >= len. Borrows buf. Meant for bodies that
 * kice_sdp_parse() accepted (offsets must fit in 32 bits).
 */
bool kice_sdp_line_next(
		const char *buf, size_t len, uint32_t *pos, struct kice_sdp_line *l);

/* Split an a= value "name:value" (or "name") at the first ':' */
void kice_sdp_attr_split(struct kice_slice val, struct kice_slice *name,
		struct kice_slice *value);

/* Replace body[off, off+len) with ed->text[text_off, text_off+text_len) */
struct kice_sdp_edit
{
	uint32_t off, len;
	uint32_t text_off, text_len;
};

struct kice_sdp_edits
{
	unsigned n;
	struct kice_sdp_edit e[KICE_SDP_MAX_EDITS];
	size_t tlen;
	char text[16384];
};

void kice_sdp_edits_init(struct kice_sdp_edits *ed);

/*
 * Append an edit: replace body[off, off+len) with a copy of text[0, tlen).
 * len 0 inserts at off; tlen 0 deletes. Edits at the same offset keep the
 * order in which they were added, insertions before a replacement there.
 * Returns 0; -ENOSPC (no edit slot or text room left; ed unchanged);
 * -EINVAL (NULL, or off+len overflows 32 bits).
 */
int kice_sdp_edit_replace(struct kice_sdp_edits *ed, uint32_t off, uint32_t len,
		const char *text, size_t tlen);

/* As kice_sdp_edit_replace() with a printf-formatted replacement */
int kice_sdp_edit_printf(struct kice_sdp_edits *ed, uint32_t off, uint32_t len,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Apply ed to body[0, len) into out (cap bytes, not NUL-terminated). Edits
 * may be given in any order; they are sorted by offset (stable, insertions
 * first). Nothing is written unless the whole result fits.
 * Returns the bytes written; -EINVAL (NULL, an edit outside the body or
 * overlapping another); -ENOSPC (cap too small, or the result > INT_MAX).
 */
int kice_sdp_edits_apply(const struct kice_sdp_edits *ed, const char *body,
		size_t len, char *out, size_t cap);

#endif
