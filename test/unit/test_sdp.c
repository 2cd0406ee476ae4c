/*
 * kamailio-ice: unit tests for lib/sdp (RFC 8866 parse + edits) and
 * lib/sdp_ice (the remove/pass rewrite).
 *
 * Captures live in test/data/sdp/<ua>-<case>.sdp; <name>.expect is the exact
 * output of the remove rewrite with relay 203.0.113.7, m-line i on RTP port
 * 40000 + 4 * i and RTCP on the next port (the same one for rtcp-mux-only).
 * Run with the repository root as the working directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdp.h"
#include "sdp_ice.h"

#define DATA_DIR "test/data/sdp/"
#define RELAY "203.0.113.7"

static const char *const captures[] = {"chrome-offer", "firefox-offer",
		"linphone-offer", "bria-offer", "yealink-offer", "yealink-hold",
		"sipura-hold", "asterisk-answer", "freeswitch-offer",
		"freeswitch-answer-rejected", "sipp-offer-lf", "polycom-offer",
		"pjsua-offer", "pjsua-offer-ipv6", NULL};

/* A session head that parses, for building small bodies */
#define HEAD "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n"

#define assert_slice(s, lit)                                           \
	do {                                                               \
		struct kice_slice s_ = (s);                                    \
		if(!kice_slice_eq(s_, (lit)))                                  \
			fail_msg("%s: got \"%.*s\", want \"%s\"", #s, (int)s_.len, \
					s_.p ? s_.p : "", (lit));                          \
	} while(0)

/* the text of body[off, off+len) equals lit */
#define assert_span(buf, off, len, lit)                                        \
	do {                                                                       \
		if((len) != strlen(lit) || memcmp((buf) + (off), (lit), (len)))        \
			fail_msg("span at %u: got \"%.*s\", want \"%s\"", (unsigned)(off), \
					(int)(len), (buf) + (off), (lit));                         \
	} while(0)

/* Read a file into an exact-size heap buffer, so ASan sees overreads */
static char *load(const char *name, const char *ext, size_t *len)
{
	char path[256];
	FILE *f;
	long n;
	char *buf;

	snprintf(path, sizeof(path), DATA_DIR "%s.%s", name, ext);
	f = fopen(path, "rb");
	if(f == NULL)
		fail_msg("cannot open %s (run from the repository root)", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	buf = malloc((size_t)n);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* Exact-size heap copy of a string literal (no NUL) */
static char *dup_body(const char *s, size_t *len)
{
	char *p;

	*len = strlen(s);
	p = malloc(*len ? *len : 1);
	assert_non_null(p);
	memcpy(p, s, *len);
	return p;
}

static struct kice_sdp *parse_file(const char *name, char **buf)
{
	struct kice_sdp *sdp = calloc(1, sizeof(*sdp));
	size_t len;
	int rc;

	assert_non_null(sdp);
	*buf = load(name, "sdp", &len);
	rc = kice_sdp_parse(sdp, *buf, len);
	if(rc != 0)
		fail_msg("%s: rc %d: %s at %u", name, rc, sdp->why, sdp->why_off);
	return sdp;
}

/* The rewrite the .expect files were made with */
static void rw_fill(const struct kice_sdp *sdp, struct kice_rewrite *rw,
		enum kice_ice_mode mode, enum kice_af af, const char *addr)
{
	unsigned i;

	memset(rw, 0, sizeof(*rw));
	rw->mode = mode;
	rw->nmedia = sdp->nmedia;
	for(i = 0; i < sdp->nmedia; i++) {
		struct kice_rewrite_media *r = &rw->media[i];
		r->skip = sdp->media[i].port == 0;
		r->af = af;
		snprintf(r->addr, sizeof(r->addr), "%s", addr);
		r->rtp_port = (uint16_t)(40000 + 4 * i);
		r->rtcp_port = sdp->media[i].rtcp_mux_only
							   ? r->rtp_port
							   : (uint16_t)(r->rtp_port + 1);
	}
}

/* Rewrite and apply; returns a heap buffer (caller frees) of *olen bytes */
static char *rewrite(
		const struct kice_sdp *sdp, const struct kice_rewrite *rw, size_t *olen)
{
	struct kice_sdp_edits *ed = malloc(sizeof(*ed));
	size_t cap = sdp->len + 4096;
	char *out = malloc(cap);
	int rc;

	assert_non_null(ed);
	assert_non_null(out);
	rc = kice_sdp_rewrite(sdp, rw, ed);
	assert_int_equal(rc, 0);
	rc = kice_sdp_edits_apply(ed, sdp->buf, sdp->len, out, cap);
	assert_true(rc >= 0);
	*olen = (size_t)rc;
	free(ed);
	return out;
}

static char *rewrite_str(const char *body, enum kice_af af, const char *addr,
		struct kice_rewrite *rw_out)
{
	struct kice_sdp sdp;
	struct kice_rewrite rw;
	size_t olen;
	char *out, *s;
	int rc;

	rc = kice_sdp_parse(&sdp, body, strlen(body));
	if(rc != 0)
		fail_msg("rc %d: %s at %u", rc, sdp.why, sdp.why_off);
	rw_fill(&sdp, &rw, KICE_ICE_REMOVE, af, addr);
	if(rw_out != NULL) {
		/* the caller's skip flags and ports win */
		unsigned i;
		for(i = 0; i < rw.nmedia; i++)
			rw.media[i] = rw_out->media[i];
	}
	out = rewrite(&sdp, &rw, &olen);
	s = malloc(olen + 1);
	assert_non_null(s);
	memcpy(s, out, olen);
	s[olen] = '\0';
	free(out);
	return s;
}

static void assert_same(const char *name, const char *got, size_t glen,
		const char *want, size_t wlen)
{
	size_t i, n = glen < wlen ? glen : wlen;

	if(glen == wlen && memcmp(got, want, n) == 0)
		return;
	for(i = 0; i < n && got[i] == want[i]; i++)
		;
	fail_msg("%s: output differs at byte %zu (got %zu bytes, want %zu)\n"
			 "got:  \"%.*s\"\nwant: \"%.*s\"",
			name, i, glen, wlen, (int)(glen - i < 60 ? glen - i : 60), got + i,
			(int)(wlen - i < 60 ? wlen - i : 60), want + i);
}

/* ---- captures: parsed fields ---- */

static void test_parse_chrome(void **state)
{
	char *buf;
	struct kice_sdp *sdp = parse_file("chrome-offer", &buf);
	const struct kice_sdp_media *m;

	(void)state;
	assert_true(sdp->crlf);
	assert_int_equal(sdp->nmedia, 3);
	assert_slice(sdp->o_addr, "127.0.0.1");
	assert_false(sdp->c.present);
	assert_int_equal(sdp->ice_ufrag.len, 0);
	assert_false(sdp->ice_lite);
	assert_int_equal(sdp->dir, KICE_SDP_DIR_NONE);
	assert_int_equal(sdp->sess_end, sdp->media[0].off);
	assert_true(kice_sdp_has_ice(sdp));

	m = &sdp->media[0];
	assert_slice(m->type, "audio");
	assert_int_equal(m->port, 54400);
	assert_int_equal(m->nports, 1);
	assert_span(buf, m->port_off, m->port_len, "54400");
	assert_slice(m->proto, "UDP/TLS/RTP/SAVPF");
	assert_slice(m->fmts, "111 63 9 0 8 13 110 126");
	assert_span(buf, m->m_off, m->m_len,
			"m=audio 54400 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n");
	assert_true(m->c.present);
	assert_int_equal(m->c.af, KICE_AF_INET);
	assert_slice(m->c.addr, "198.51.100.23");
	assert_span(
			buf, m->c.line_off, m->c.line_len, "c=IN IP4 198.51.100.23\r\n");
	assert_true(m->has_rtcp);
	assert_int_equal(m->rtcp_port, 9);
	assert_true(m->rtcp.present);
	assert_int_equal(m->rtcp.af, KICE_AF_INET);
	assert_slice(m->rtcp.addr, "0.0.0.0");
	assert_span(buf, m->rtcp.line_off, m->rtcp.line_len,
			"a=rtcp:9 IN IP4 0.0.0.0\r\n");
	assert_true(m->rtcp_mux);
	assert_false(m->rtcp_mux_only);
	assert_slice(m->ice_ufrag, "Ab3x");
	assert_slice(m->ice_pwd, "Qm9x7LkVt2Yd5Rf8Hn1Jc4Pw");
	assert_slice(m->ice_options, "trickle");
	assert_int_equal(m->ncand, 3);
	assert_false(m->end_of_candidates);
	assert_slice(m->mid, "0");
	assert_slice(m->fingerprint,
			"sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:"
			"5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08");
	assert_slice(m->setup, "actpass");
	assert_int_equal(m->ncrypto, 0);
	assert_int_equal(m->dir, KICE_SDP_DIR_SENDRECV);
	assert_int_equal(m->end, sdp->media[1].off);

	m = &sdp->media[1];
	assert_slice(m->type, "video");
	assert_int_equal(m->port, 61733);
	assert_slice(m->proto, "UDP/TLS/RTP/SAVPF");
	assert_slice(m->fmts, "96 97 102 103 45 46");
	assert_slice(m->c.addr, "198.51.100.23");
	assert_int_equal(m->rtcp_port, 9);
	assert_true(m->rtcp_mux);
	assert_int_equal(m->ncand, 3);
	assert_slice(m->mid, "1");
	assert_slice(m->setup, "actpass");
	assert_int_equal(m->dir, KICE_SDP_DIR_SENDRECV);

	m = &sdp->media[2];
	assert_slice(m->type, "application");
	assert_int_equal(m->port, 50718);
	assert_slice(m->proto, "UDP/DTLS/SCTP");
	assert_slice(m->fmts, "webrtc-datachannel");
	assert_false(m->has_rtcp);
	assert_false(m->rtcp_mux);
	assert_int_equal(m->ncand, 3);
	assert_slice(m->mid, "2");
	assert_int_equal(m->dir, KICE_SDP_DIR_NONE);
	assert_int_equal(m->end, sdp->len);
	free(buf);
	free(sdp);
}

static void test_parse_firefox(void **state)
{
	char *buf;
	struct kice_sdp *sdp = parse_file("firefox-offer", &buf);
	const struct kice_sdp_media *m;

	(void)state;
	assert_int_equal(sdp->nmedia, 2);
	assert_slice(sdp->o_addr, "0.0.0.0");
	assert_false(sdp->c.present);
	assert_slice(sdp->ice_options, "trickle");
	assert_slice(sdp->fingerprint,
			"sha-256 4D:9A:6C:1E:0F:B2:73:58:A4:C9:2D:E1:76:3B:F0:85:1C:D7:"
			"4A:92:6E:B3:08:5F:C1:E4:27:9D:3A:60:BF:12");
	assert_int_equal(sdp->setup.len, 0);
	assert_true(kice_sdp_has_ice(sdp));

	m = &sdp->media[0];
	assert_slice(m->type, "audio");
	assert_int_equal(m->port, 50414);
	assert_slice(m->fmts, "109 9 0 8 101");
	assert_slice(m->c.addr, "198.51.100.44");
	assert_false(m->has_rtcp);
	assert_true(m->rtcp_mux);
	assert_slice(m->ice_ufrag, "3f9a1c2e");
	assert_slice(m->ice_pwd, "b7e2d0a5f4c913e86d2a7f0c45b19e3d");
	assert_int_equal(m->ncand, 3);
	assert_true(m->end_of_candidates);
	assert_slice(m->mid, "0");
	assert_int_equal(m->fingerprint.len, 0);
	assert_slice(m->setup, "actpass");
	assert_int_equal(m->dir, KICE_SDP_DIR_SENDRECV);

	m = &sdp->media[1];
	assert_slice(m->type, "video");
	assert_int_equal(m->port, 59203);
	assert_slice(m->c.addr, "198.51.100.44");
	assert_int_equal(m->ncand, 3);
	assert_true(m->end_of_candidates);
	assert_slice(m->mid, "1");
	assert_true(m->rtcp_mux);
	free(buf);
	free(sdp);
}

static void test_parse_linphone(void **state)
{
	char *buf;
	struct kice_sdp *sdp = parse_file("linphone-offer", &buf);
	const struct kice_sdp_media *m;

	(void)state;
	assert_int_equal(sdp->nmedia, 2);
	assert_slice(sdp->o_addr, "192.168.1.34");
	assert_true(sdp->c.present);
	assert_slice(sdp->c.addr, "198.51.100.80");
	assert_span(buf, sdp->c.line_off, sdp->c.line_len,
			"c=IN IP4 198.51.100.80\r\n");
	assert_slice(sdp->ice_ufrag, "9f2c4a1e");
	assert_slice(sdp->ice_pwd, "a1d5c6f40e8b2937f3de0b6c");
	assert_true(kice_sdp_has_ice(sdp));

	m = &sdp->media[0];
	assert_slice(m->type, "audio");
	assert_int_equal(m->port, 7078);
	assert_slice(m->proto, "RTP/AVP");
	assert_slice(m->fmts, "96 97 98 0 8 18 101 99 100");
	assert_false(m->c.present);
	assert_true(m->has_rtcp);
	assert_int_equal(m->rtcp_port, 7079);
	assert_false(m->rtcp.present);
	assert_span(buf, m->rtcp.line_off, m->rtcp.line_len, "a=rtcp:7079\r\n");
	assert_false(m->rtcp_mux);
	assert_int_equal(m->ice_ufrag.len, 0);
	assert_int_equal(m->ncand, 4);
	assert_int_equal(m->mid.len, 0);
	assert_int_equal(m->dir, KICE_SDP_DIR_NONE);

	m = &sdp->media[1];
	assert_slice(m->type, "video");
	assert_int_equal(m->port, 9078);
	assert_int_equal(m->rtcp_port, 9079);
	assert_int_equal(m->ncand, 4);
	free(buf);
	free(sdp);
}

static void test_parse_bria(void **state)
{
	char *buf;
	struct kice_sdp *sdp = parse_file("bria-offer", &buf);
	const struct kice_sdp_media *m;

	(void)state;
	assert_int_equal(sdp->nmedia, 2);
	assert_slice(sdp->o_addr, "192.168.0.104");
	assert_slice(sdp->c.addr, "198.51.100.61");
	assert_int_equal(sdp->ice_ufrag.len, 0);

	m = &sdp->media[0];
	assert_int_equal(m->port, 52372);
	assert_slice(m->fmts, "9 8 0 120 18 101");
	assert_false(m->c.present);
	assert_true(m->has_rtcp);
	assert_int_equal(m->rtcp_port, 52373);
	assert_true(m->rtcp.present);
	assert_slice(m->rtcp.addr, "198.51.100.61");
	assert_slice(m->ice_ufrag, "6a0d25f3");
	assert_slice(m->ice_pwd, "1e6d74ab9c2f43d0b5e17f3c6d8a2e91");
	assert_int_equal(m->ncand, 4);
	assert_int_equal(m->dir, KICE_SDP_DIR_SENDRECV);

	m = &sdp->media[1];
	assert_slice(m->type, "video");
	assert_int_equal(m->port, 50260);
	assert_int_equal(m->rtcp_port, 50261);
	assert_int_equal(m->ncand, 4);
	free(buf);
	free(sdp);
}

static void test_parse_yealink(void **state)
{
	char *buf;
	struct kice_sdp *sdp = parse_file("yealink-offer", &buf);
	const struct kice_sdp_media *m = &sdp->media[0];

	(void)state;
	assert_int_equal(sdp->nmedia, 1);
	assert_slice(sdp->o_addr, "192.168.1.120");
	assert_slice(sdp->c.addr, "192.168.1.120");
	assert_false(kice_sdp_has_ice(sdp));
	assert_slice(m->type, "audio");
	assert_int_equal(m->port, 11796);
	assert_slice(m->proto, "RTP/AVP");
	assert_slice(m->fmts, "0 8 9 101");
	assert_false(m->c.present);
	assert_false(m->has_rtcp);
	assert_false(m->rtcp_mux);
	assert_int_equal(m->ncand, 0);
	assert_int_equal(m->dir, KICE_SDP_DIR_SENDRECV);
	free(buf);
	free(sdp);
}

static void test_parse_hold(void **state)
{
	char *buf;
	struct kice_sdp *sdp = parse_file("yealink-hold", &buf);

	(void)state;
	assert_int_equal(sdp->media[0].dir, KICE_SDP_DIR_SENDONLY);
	assert_slice(sdp->c.addr, "192.168.1.120");
	free(buf);
	free(sdp);

	sdp = parse_file("sipura-hold", &buf);
	assert_int_equal(sdp->nmedia, 1);
	assert_true(sdp->c.present);
	assert_slice(sdp->c.addr, "0.0.0.0");
	assert_int_equal(sdp->media[0].port, 16446);
	assert_int_equal(sdp->media[0].dir, KICE_SDP_DIR_INACTIVE);
	assert_false(kice_sdp_has_ice(sdp));
	free(buf);
	free(sdp);
}

static void test_parse_asterisk(void **state)
{
	char *buf;
	struct kice_sdp *sdp = parse_file("asterisk-answer", &buf);
	const struct kice_sdp_media *m = &sdp->media[0];

	(void)state;
	assert_int_equal(sdp->nmedia, 1);
	assert_slice(sdp->c.addr, "198.51.100.10");
	assert_int_equal(m->port, 14622);
	assert_slice(m->fmts, "0 8 101");
	assert_slice(m->ice_ufrag, "5f2b7c1d46a93e8f0b1c2d3e4f506172");
	assert_slice(m->ice_pwd, "3c4d5e6f708192a3b4c5d6e7f8091a2b");
	assert_int_equal(m->ncand, 2);
	assert_false(m->has_rtcp);
	assert_int_equal(m->dir, KICE_SDP_DIR_SENDRECV);
	assert_true(kice_sdp_has_ice(sdp));
	free(buf);
	free(sdp);
}

static void test_parse_freeswitch(void **state)
{
	char *buf;
	struct kice_sdp *sdp = parse_file("freeswitch-offer", &buf);
	const struct kice_sdp_media *m = &sdp->media[0];

	(void)state;
	assert_int_equal(sdp->nmedia, 1);
	assert_slice(sdp->o_addr, "198.51.100.20");
	assert_slice(sdp->c.addr, "198.51.100.20");
	assert_int_equal(m->port, 27338);
	assert_slice(m->fmts, "102 9 0 8 103 101 13");
	assert_true(m->has_rtcp);
	assert_int_equal(m->rtcp_port, 27339);
	assert_slice(m->rtcp.addr, "198.51.100.20");
	assert_false(kice_sdp_has_ice(sdp));
	free(buf);
	free(sdp);
}

static void test_parse_rejected(void **state)
{
	char *buf;
	struct kice_sdp *sdp = parse_file("freeswitch-answer-rejected", &buf);

	(void)state;
	assert_int_equal(sdp->nmedia, 2);
	assert_int_equal(sdp->media[0].port, 23746);
	assert_int_equal(sdp->media[0].rtcp_port, 23747);
	assert_slice(sdp->media[1].type, "video");
	assert_int_equal(sdp->media[1].port, 0);
	assert_slice(sdp->media[1].fmts, "99");
	assert_int_equal(
			sdp->media[1].m_len, sdp->media[1].end - sdp->media[1].off);
	assert_int_equal(sdp->media[1].end, sdp->len);
	free(buf);
	free(sdp);
}

static void test_parse_lf(void **state)
{
	char *buf;
	struct kice_sdp *sdp = parse_file("sipp-offer-lf", &buf);

	(void)state;
	assert_false(sdp->crlf);
	assert_int_equal(sdp->nmedia, 1);
	assert_slice(sdp->o_addr, "10.0.0.5");
	assert_span(buf, sdp->c.line_off, sdp->c.line_len, "c=IN IP4 10.0.0.5\n");
	assert_span(buf, sdp->media[0].m_off, sdp->media[0].m_len,
			"m=audio 6000 RTP/AVP 0\n");
	assert_int_equal(sdp->media[0].port, 6000);
	free(buf);
	free(sdp);
}

static void test_parse_session_c_only(void **state)
{
	char *buf;
	struct kice_sdp *sdp = parse_file("polycom-offer", &buf);

	(void)state;
	assert_int_equal(sdp->nmedia, 2);
	assert_true(sdp->c.present);
	assert_slice(sdp->c.addr, "192.168.10.51");
	assert_int_equal(sdp->dir, KICE_SDP_DIR_SENDRECV);
	assert_false(sdp->media[0].c.present);
	assert_false(sdp->media[1].c.present);
	assert_int_equal(sdp->media[0].dir, KICE_SDP_DIR_NONE);
	assert_int_equal(sdp->media[0].port, 2222);
	assert_int_equal(sdp->media[1].port, 2226);
	assert_slice(sdp->media[1].fmts, "109 34");
	free(buf);
	free(sdp);
}

static void test_parse_media_c_only(void **state)
{
	char *buf;
	struct kice_sdp *sdp = parse_file("pjsua-offer", &buf);
	const struct kice_sdp_media *m = &sdp->media[0];

	(void)state;
	assert_int_equal(sdp->nmedia, 1);
	assert_false(sdp->c.present);
	assert_slice(sdp->o_addr, "192.168.1.77");
	assert_true(m->c.present);
	assert_slice(m->c.addr, "198.51.100.90");
	assert_int_equal(m->port, 4000);
	assert_int_equal(m->rtcp_port, 4001);
	assert_slice(m->rtcp.addr, "198.51.100.90");
	assert_slice(m->ice_ufrag, "2b3c4d5e");
	assert_slice(m->ice_pwd, "6f7a8b9c0d1e2f3a4b5c6d7e");
	assert_int_equal(m->ncand, 4);
	assert_int_equal(m->dir, KICE_SDP_DIR_SENDRECV);
	free(buf);
	free(sdp);
}

static void test_parse_ipv6(void **state)
{
	char *buf;
	struct kice_sdp *sdp = parse_file("pjsua-offer-ipv6", &buf);
	const struct kice_sdp_media *m = &sdp->media[0];

	(void)state;
	assert_slice(sdp->o_addr, "2001:db8:85a3::8a2e:370:7334");
	assert_false(sdp->c.present);
	assert_int_equal(m->c.af, KICE_AF_INET6);
	assert_slice(m->c.addr, "2001:db8:85a3::8a2e:370:7334");
	assert_int_equal(m->rtcp_port, 4003);
	assert_int_equal(m->rtcp.af, KICE_AF_INET6);
	assert_slice(m->rtcp.addr, "2001:db8:85a3::8a2e:370:7334");
	free(buf);
	free(sdp);
}

/* ---- captures: rewrite against the .expect files ---- */

static void test_golden_remove(void **state)
{
	int i;

	(void)state;
	for(i = 0; captures[i] != NULL; i++) {
		struct kice_rewrite rw;
		struct kice_sdp sdp;
		size_t elen, olen;
		char *buf, *out, *exp;
		struct kice_sdp *p = parse_file(captures[i], &buf);

		rw_fill(p, &rw, KICE_ICE_REMOVE, KICE_AF_INET, RELAY);
		out = rewrite(p, &rw, &olen);
		exp = load(captures[i], "expect", &elen);
		assert_same(captures[i], out, olen, exp, elen);

		/* what we send parses, carries no ICE and points at the relay */
		assert_int_equal(kice_sdp_parse(&sdp, out, olen), 0);
		assert_false(kice_sdp_has_ice(&sdp));
		assert_int_equal(sdp.nmedia, p->nmedia);
		for(unsigned k = 0; k < sdp.nmedia; k++) {
			const struct kice_sdp_media *m = &sdp.media[k];
			if(rw.media[k].skip)
				continue;
			assert_int_equal(m->port, rw.media[k].rtp_port);
			if(m->c.present)
				assert_slice(m->c.addr, RELAY);
			else
				assert_slice(sdp.c.addr, RELAY);
			if(kice_slice_eq(m->type, "application"))
				continue;
			assert_true(m->has_rtcp);
			assert_int_equal(m->rtcp_port, rw.media[k].rtcp_port);
			assert_slice(m->rtcp.addr, RELAY);
		}
		free(exp);
		free(out);
		free(buf);
		free(p);
	}
}

static void test_golden_pass(void **state)
{
	int i;

	(void)state;
	for(i = 0; captures[i] != NULL; i++) {
		struct kice_rewrite rw;
		struct kice_sdp_edits *ed = malloc(sizeof(*ed));
		char *buf, *out;
		struct kice_sdp *p = parse_file(captures[i], &buf);

		assert_non_null(ed);
		rw_fill(p, &rw, KICE_ICE_PASS, KICE_AF_INET, RELAY);
		assert_int_equal(kice_sdp_rewrite(p, &rw, ed), 0);
		assert_int_equal(ed->n, 0);
		out = malloc(p->len);
		assert_non_null(out);
		assert_int_equal(kice_sdp_edits_apply(ed, buf, p->len, out, p->len),
				(int)p->len);
		assert_same(captures[i], out, p->len, buf, p->len);
		free(out);
		free(ed);
		free(buf);
		free(p);
	}
}

static void test_default_mode(void **state)
{
	struct kice_rewrite rw;
	struct kice_sdp_edits *ed = malloc(sizeof(*ed));
	size_t olen, elen;
	char *buf, *out, *exp;
	struct kice_sdp *p;

	(void)state;
	assert_non_null(ed);
	/* carried ICE: default is force, which needs the relay's credentials */
	p = parse_file("chrome-offer", &buf);
	assert_int_equal(kice_sdp_ice_mode(p, KICE_ICE_DEFAULT), KICE_ICE_FORCE);
	rw_fill(p, &rw, KICE_ICE_DEFAULT, KICE_AF_INET, RELAY);
	assert_int_equal(kice_sdp_rewrite(p, &rw, ed), -EINVAL);
	rw.mode = KICE_ICE_FORCE;
	assert_int_equal(kice_sdp_rewrite(p, &rw, ed), -EINVAL);
	strcpy(rw.ufrag, "Rly1");
	strcpy(rw.pwd, "RelayPasswordRelayPass");
	assert_int_equal(kice_sdp_rewrite(p, &rw, ed), 0);
	rw.mode = KICE_ICE_RELAY;
	assert_int_equal(kice_sdp_rewrite(p, &rw, ed), 0);
	assert_int_equal(kice_sdp_ice_mode(p, KICE_ICE_PASS), KICE_ICE_PASS);
	free(buf);
	free(p);

	/* no ICE: default is remove */
	p = parse_file("yealink-offer", &buf);
	assert_int_equal(kice_sdp_ice_mode(p, KICE_ICE_DEFAULT), KICE_ICE_REMOVE);
	rw_fill(p, &rw, KICE_ICE_DEFAULT, KICE_AF_INET, RELAY);
	out = rewrite(p, &rw, &olen);
	exp = load("yealink-offer", "expect", &elen);
	assert_same("yealink-offer default", out, olen, exp, elen);
	free(exp);
	free(out);
	free(buf);
	free(p);
	free(ed);
}

/* Every prefix of every capture parses or fails with a reason; whatever
 * parses can be rewritten, and the result parses again */
static void test_truncation_sweep(void **state)
{
	struct kice_sdp *sdp = malloc(sizeof(*sdp));
	struct kice_sdp *again = malloc(sizeof(*again));
	struct kice_sdp_edits *ed = malloc(sizeof(*ed));
	struct kice_rewrite rw;
	int i;

	(void)state;
	assert_non_null(sdp);
	assert_non_null(again);
	assert_non_null(ed);
	for(i = 0; captures[i] != NULL; i++) {
		size_t len, n;
		char *full = load(captures[i], "sdp", &len);

		for(n = 0; n <= len; n++) {
			char *b = malloc(n ? n : 1);
			char *out;
			size_t cap = n + 4096;
			int rc, w;

			assert_non_null(b);
			memcpy(b, full, n);
			rc = kice_sdp_parse(sdp, b, n);
			if(rc != 0) {
				assert_true(rc == -EBADMSG);
				assert_non_null(sdp->why);
				assert_true(sdp->why_off <= n);
				free(b);
				continue;
			}
			rw_fill(sdp, &rw, KICE_ICE_REMOVE, KICE_AF_INET, RELAY);
			assert_int_equal(kice_sdp_rewrite(sdp, &rw, ed), 0);
			out = malloc(cap);
			assert_non_null(out);
			w = kice_sdp_edits_apply(ed, b, n, out, cap);
			assert_true(w > 0);
			rc = kice_sdp_parse(again, out, (size_t)w);
			if(rc != 0)
				fail_msg("%s prefix %zu: output does not parse: %s at %u",
						captures[i], n, again->why, again->why_off);
			assert_false(kice_sdp_has_ice(again));
			free(out);
			free(b);
		}
		/* the whole capture is among the prefixes and must parse */
		assert_int_equal(kice_sdp_parse(sdp, full, len), 0);
		free(full);
	}
	free(ed);
	free(again);
	free(sdp);
}

/* ---- malformed input: one case per reject branch ---- */

static void expect_bad(const char *body, size_t len, int want, uint32_t off)
{
	struct kice_sdp sdp;
	char *b = malloc(len ? len : 1);
	int rc;

	assert_non_null(b);
	memcpy(b, body, len);
	rc = kice_sdp_parse(&sdp, b, len);
	if(rc != want)
		fail_msg("rc %d, want %d for \"%.*s\"", rc, want, (int)len, body);
	assert_non_null(sdp.why);
	if(sdp.why_off != off)
		fail_msg("why_off %u, want %u (%s)", sdp.why_off, off, sdp.why);
	free(b);
}

#define BAD(s, off) expect_bad((s), strlen(s), -EBADMSG, (off))

static void expect_ok(const char *body)
{
	struct kice_sdp sdp;
	size_t len;
	char *b = dup_body(body, &len);
	int rc = kice_sdp_parse(&sdp, b, len);

	if(rc != 0)
		fail_msg("rc %d: %s at %u", rc, sdp.why, sdp.why_off);
	free(b);
}

static void test_bad_args(void **state)
{
	struct kice_sdp sdp;

	(void)state;
	assert_int_equal(kice_sdp_parse(NULL, "v=0\r\n", 5), -EINVAL);
	assert_int_equal(kice_sdp_parse(&sdp, NULL, 5), -EINVAL);
	assert_false(kice_sdp_has_ice(NULL));
}

static void test_bad_empty(void **state)
{
	(void)state;
	expect_bad("", 0, -EBADMSG, 0);
	/* NULL with length 0 is an empty body, not a caller bug */
	{
		struct kice_sdp sdp;
		assert_int_equal(kice_sdp_parse(&sdp, NULL, 0), -EBADMSG);
		assert_non_null(sdp.why);
	}
}

static void test_bad_nul(void **state)
{
	static const char body[] = HEAD "m=audio 5000 RTP/AVP 0\r\na=x\0y\r\n";

	(void)state;
	expect_bad(body, sizeof(body) - 1, -EBADMSG, (uint32_t)strlen(body));
}

static void test_bad_version(void **state)
{
	(void)state;
	/* no v= at all */
	BAD("o=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n", 0);
	/* v= present but not first */
	BAD("s=-\r\nv=0\r\n", 0);
	/* wrong version */
	BAD("v=1\r\no=- 1 1 IN IP4 192.0.2.1\r\n", 0);
	/* a second v= */
	BAD(HEAD "v=0\r\n", (uint32_t)strlen(HEAD));
	/* the first line is empty */
	BAD("\r\nv=0\r\n", 0);
}

static void test_bad_line(void **state)
{
	(void)state;
	/* line without '=' */
	BAD(HEAD "hello\r\n", (uint32_t)strlen(HEAD));
	/* type is not a letter */
	BAD(HEAD "1=x\r\n", (uint32_t)strlen(HEAD));
	/* more than one character before '=' */
	BAD(HEAD "ab=x\r\n", (uint32_t)strlen(HEAD));
	/* CR inside a line */
	BAD(HEAD "a=x\ry\r\n", (uint32_t)strlen(HEAD));
	/* truncated CRLF at the end */
	BAD(HEAD "a=x\r", (uint32_t)strlen(HEAD));
	/* empty line followed by more lines */
	BAD(HEAD "\r\na=x\r\n", (uint32_t)strlen(HEAD));
	/* trailing empty lines and a last line without EOL are fine */
	expect_ok(HEAD "m=audio 5000 RTP/AVP 0\r\n\r\n\r\n");
	expect_ok(HEAD "m=audio 5000 RTP/AVP 0");
	expect_ok(HEAD);
}

static void test_bad_origin(void **state)
{
	(void)state;
	/* no o= line */
	BAD("v=0\r\ns=-\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n", 0);
	/* missing fields */
	BAD("v=0\r\no=- 1 1 IN IP4\r\n", 5);
	/* extra fields */
	BAD("v=0\r\no=- 1 1 IN IP4 192.0.2.1 x\r\n", 5);
	/* repeated */
	BAD(HEAD "o=- 1 1 IN IP4 192.0.2.1\r\n", (uint32_t)strlen(HEAD));
	/* after m= */
	BAD("v=0\r\nm=audio 5000 RTP/AVP 0\r\no=- 1 1 IN IP4 192.0.2.1\r\n", 29);
	/* o= may name a host */
	expect_ok("v=0\r\no=- 1 1 IN IP4 host.example.com\r\n");
}

static void test_bad_conn(void **state)
{
	const uint32_t at = (uint32_t)strlen(HEAD);

	(void)state;
	/* network type */
	BAD(HEAD "c=ATM NSAP 47.0005.80.ffe100.0000.f101.1111.0000.ab\r\n", at);
	/* address type */
	BAD(HEAD "c=IN IP5 192.0.2.1\r\n", at);
	/* not an IPv4 address */
	BAD(HEAD "c=IN IP4 192.0.2.300\r\n", at);
	BAD(HEAD "c=IN IP4 host.example.com\r\n", at);
	/* IPv6 address given as IP4, and the reverse */
	BAD(HEAD "c=IN IP4 2001:db8::1\r\n", at);
	BAD(HEAD "c=IN IP6 192.0.2.1\r\n", at);
	/* missing and extra fields */
	BAD(HEAD "c=IN IP4\r\n", at);
	BAD(HEAD "c=IN  IP4 192.0.2.1\r\n", at);
	BAD(HEAD "c=IN IP4 192.0.2.1 x\r\n", at);
	/* bad multicast suffixes */
	BAD(HEAD "c=IN IP4 233.252.0.1/abc\r\n", at);
	BAD(HEAD "c=IN IP4 233.252.0.1/127/3/1\r\n", at);
	BAD(HEAD "c=IN IP6 ff15::101/3/1\r\n", at);
	/* an address too long to be one */
	BAD(HEAD "c=IN IP6 "
			 "2001:0db8:0000:0000:0000:0000:0000:0001:2001:0db8:0000:0000:0000:"
			 "0000\r\n",
			at);
	/* two c= at one level */
	BAD(HEAD "c=IN IP4 192.0.2.1\r\nc=IN IP4 192.0.2.2\r\n",
			at + (uint32_t)strlen("c=IN IP4 192.0.2.1\r\n"));
	BAD(HEAD "m=audio 5000 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\n"
			 "c=IN IP4 192.0.2.2\r\n",
			at + 24 + 20);
	/* a media c= beside a session one is fine, multicast TTL is dropped */
	{
		struct kice_sdp sdp;
		size_t len;
		char *b = dup_body(HEAD "c=IN IP4 233.252.0.1/127/2\r\n"
								"m=audio 5000 RTP/AVP 0\r\n"
								"c=IN IP6 ff15::101/3\r\n",
				&len);
		assert_int_equal(kice_sdp_parse(&sdp, b, len), 0);
		assert_slice(sdp.c.addr, "233.252.0.1");
		assert_int_equal(sdp.media[0].c.af, KICE_AF_INET6);
		assert_slice(sdp.media[0].c.addr, "ff15::101");
		free(b);
	}
}

static void test_bad_media(void **state)
{
	const uint32_t at = (uint32_t)strlen(HEAD);

	(void)state;
	/* port > 65535 */
	BAD(HEAD "m=audio 65536 RTP/AVP 0\r\n", at);
	BAD(HEAD "m=audio 4294967296 RTP/AVP 0\r\n", at);
	/* non-numeric port */
	BAD(HEAD "m=audio abc RTP/AVP 0\r\n", at);
	BAD(HEAD "m=audio -1 RTP/AVP 0\r\n", at);
	BAD(HEAD "m=audio 50a0 RTP/AVP 0\r\n", at);
	/* bad number of ports */
	BAD(HEAD "m=audio 5000/0 RTP/AVP 0\r\n", at);
	BAD(HEAD "m=audio 5000/ RTP/AVP 0\r\n", at);
	BAD(HEAD "m=audio 5000/x RTP/AVP 0\r\n", at);
	/* missing fields */
	BAD(HEAD "m=\r\n", at);
	BAD(HEAD "m=audio\r\n", at);
	BAD(HEAD "m=audio 5000\r\n", at);
	BAD(HEAD "m=audio 5000 RTP/AVP\r\n", at);
	BAD(HEAD "m=audio 5000 RTP/AVP \r\n", at);
	BAD(HEAD "m=audio  5000 RTP/AVP 0\r\n", at);
	/* port 65535 and nports are fine */
	{
		struct kice_sdp sdp;
		size_t len;
		char *b = dup_body(HEAD "m=audio 65535 RTP/AVP 0\r\n"
								"m=video 49170/2 RTP/AVP 31\r\n",
				&len);
		assert_int_equal(kice_sdp_parse(&sdp, b, len), 0);
		assert_int_equal(sdp.media[0].port, 65535);
		assert_int_equal(sdp.media[1].port, 49170);
		assert_int_equal(sdp.media[1].nports, 2);
		assert_span(b, sdp.media[1].port_off, sdp.media[1].port_len, "49170");
		free(b);
	}
}

static void test_bad_too_many_media(void **state)
{
	char body[2048];
	size_t n;
	int i;
	struct kice_sdp sdp;

	(void)state;
	n = (size_t)snprintf(body, sizeof(body), "%s", HEAD);
	for(i = 0; i < KICE_SDP_MAX_MEDIA; i++)
		n += (size_t)snprintf(body + n, sizeof(body) - n,
				"m=audio %d RTP/AVP 0\r\n", 5000 + 2 * i);
	/* exactly KICE_SDP_MAX_MEDIA is fine */
	assert_int_equal(kice_sdp_parse(&sdp, body, n), 0);
	assert_int_equal(sdp.nmedia, KICE_SDP_MAX_MEDIA);
	snprintf(body + n, sizeof(body) - n, "m=audio 9 RTP/AVP 0\r\n");
	expect_bad(body, strlen(body), -ENOSPC, (uint32_t)n);
}

static void test_bad_rtcp(void **state)
{
	const uint32_t at = (uint32_t)strlen(HEAD) + 24;

	(void)state;
	BAD(HEAD "m=audio 5000 RTP/AVP 0\r\na=rtcp:\r\n", at);
	BAD(HEAD "m=audio 5000 RTP/AVP 0\r\na=rtcp:70000\r\n", at);
	BAD(HEAD "m=audio 5000 RTP/AVP 0\r\na=rtcp:x IN IP4 192.0.2.1\r\n", at);
	BAD(HEAD "m=audio 5000 RTP/AVP 0\r\na=rtcp:5001 IN IP4 1.2.3\r\n", at);
	BAD(HEAD "m=audio 5000 RTP/AVP 0\r\na=rtcp:5001 \r\n", at);
	BAD(HEAD "m=audio 5000 RTP/AVP 0\r\na=rtcp:5001\r\na=rtcp:5001\r\n",
			at + 13);
	/* a=rtcp at session level means nothing: ignored */
	expect_ok(HEAD "a=rtcp:junk\r\nm=audio 5000 RTP/AVP 0\r\n");
}

#if SIZE_MAX > UINT32_MAX
static void test_bad_huge(void **state)
{
	struct kice_sdp sdp;

	(void)state;
	/* rejected on its length alone, before a byte is read */
	assert_int_equal(kice_sdp_parse(&sdp, "v=0", (size_t)UINT32_MAX), -ENOSPC);
	assert_non_null(sdp.why);
}
#endif

/* ---- line walker and attributes ---- */

static void test_line_next(void **state)
{
	static const char b[] = "v=0\r\nx\na=rtcp:1\r\n\r\nc=";
	struct kice_sdp_line l;
	uint32_t pos = 0;

	(void)state;
	assert_true(kice_sdp_line_next(b, sizeof(b) - 1, &pos, &l));
	assert_int_equal(l.type, 'v');
	assert_slice(l.val, "0");
	assert_int_equal(l.off, 0);
	assert_int_equal(l.len, 5);
	assert_int_equal(l.eol, 2);
	assert_true(kice_sdp_line_next(b, sizeof(b) - 1, &pos, &l));
	assert_int_equal(l.type, 0);
	assert_slice(l.val, "x");
	assert_int_equal(l.eol, 1);
	assert_true(kice_sdp_line_next(b, sizeof(b) - 1, &pos, &l));
	assert_int_equal(l.type, 'a');
	assert_slice(l.val, "rtcp:1");
	assert_true(kice_sdp_line_next(b, sizeof(b) - 1, &pos, &l));
	assert_int_equal(l.type, 0);
	assert_int_equal(l.val.len, 0);
	assert_int_equal(l.len, 2);
	assert_true(kice_sdp_line_next(b, sizeof(b) - 1, &pos, &l));
	assert_int_equal(l.type, 'c');
	assert_int_equal(l.val.len, 0);
	assert_int_equal(l.eol, 0);
	assert_int_equal(pos, sizeof(b) - 1);
	assert_false(kice_sdp_line_next(b, sizeof(b) - 1, &pos, &l));
}

static void test_attr_split(void **state)
{
	struct kice_slice name, v;

	(void)state;
	kice_sdp_attr_split(KICE_SLICE_LIT("rtcp:9 IN IP4 0.0.0.0"), &name, &v);
	assert_slice(name, "rtcp");
	assert_slice(v, "9 IN IP4 0.0.0.0");
	kice_sdp_attr_split(KICE_SLICE_LIT("rtcp-mux"), &name, &v);
	assert_slice(name, "rtcp-mux");
	assert_int_equal(v.len, 0);
	kice_sdp_attr_split(KICE_SLICE_LIT("x:"), &name, &v);
	assert_slice(name, "x");
	assert_int_equal(v.len, 0);
	kice_sdp_attr_split(KICE_SLICE_LIT(""), &name, &v);
	assert_int_equal(name.len, 0);
	assert_int_equal(v.len, 0);

	assert_true(kice_sdp_is_ice_attr(KICE_SLICE_LIT("candidate")));
	assert_true(kice_sdp_is_ice_attr(KICE_SLICE_LIT("remote-candidates")));
	assert_true(kice_sdp_is_ice_attr(KICE_SLICE_LIT("ice-lite")));
	assert_true(kice_sdp_is_ice_attr(KICE_SLICE_LIT("ice-mismatch")));
	assert_true(kice_sdp_is_ice_attr(KICE_SLICE_LIT("ice-pacing")));
	assert_true(kice_sdp_is_ice_attr(KICE_SLICE_LIT("end-of-candidates")));
	assert_false(kice_sdp_is_ice_attr(KICE_SLICE_LIT("candidates")));
	assert_false(kice_sdp_is_ice_attr(KICE_SLICE_LIT("ice-ufra")));
	assert_false(kice_sdp_is_ice_attr(KICE_SLICE_LIT("rtcp")));
}

static void test_has_ice(void **state)
{
	struct kice_sdp sdp;
	size_t len;
	char *b;

	(void)state;
	b = dup_body(HEAD "a=ice-lite\r\nm=audio 5000 RTP/AVP 0\r\n", &len);
	assert_int_equal(kice_sdp_parse(&sdp, b, len), 0);
	assert_true(sdp.ice_lite);
	assert_true(kice_sdp_has_ice(&sdp));
	free(b);
	b = dup_body(HEAD "m=audio 5000 RTP/AVP 0\r\na=candidate:1 1 UDP 1 "
					  "192.0.2.1 5000 typ host\r\n",
			&len);
	assert_int_equal(kice_sdp_parse(&sdp, b, len), 0);
	assert_true(kice_sdp_has_ice(&sdp));
	free(b);
	b = dup_body(HEAD "m=audio 5000 RTP/SAVP 0\r\na=crypto:1 "
					  "AES_CM_128_HMAC_SHA1_80 inline:x\r\n"
					  "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:y\r\n"
					  "a=rtcp-mux-only\r\n",
			&len);
	assert_int_equal(kice_sdp_parse(&sdp, b, len), 0);
	assert_false(kice_sdp_has_ice(&sdp));
	assert_int_equal(sdp.media[0].ncrypto, 2);
	assert_true(sdp.media[0].rtcp_mux_only);
	free(b);
}

/* ---- edits ---- */

static int apply_str(const struct kice_sdp_edits *ed, const char *body,
		char *out, size_t cap)
{
	int rc = kice_sdp_edits_apply(ed, body, strlen(body), out, cap);

	if(rc >= 0 && (size_t)rc < cap)
		out[rc] = '\0';
	return rc;
}

static void test_edits_basic(void **state)
{
	struct kice_sdp_edits *ed = malloc(sizeof(*ed));
	char out[64];

	(void)state;
	assert_non_null(ed);
	kice_sdp_edits_init(ed);
	/* given out of order: replace, delete, insert at the start */
	assert_int_equal(kice_sdp_edit_replace(ed, 6, 5, "there", 5), 0);
	assert_int_equal(kice_sdp_edit_replace(ed, 5, 1, NULL, 0), 0);
	assert_int_equal(kice_sdp_edit_printf(ed, 0, 0, "%d:", 42), 0);
	assert_int_equal(apply_str(ed, "hello world!", out, sizeof(out)), 14);
	assert_string_equal(out, "42:hellothere!");

	/* insertions at the same offset keep their order, before a
	 * replacement there whichever came first */
	kice_sdp_edits_init(ed);
	assert_int_equal(kice_sdp_edit_replace(ed, 2, 1, "X", 1), 0);
	assert_int_equal(kice_sdp_edit_replace(ed, 2, 0, "1", 1), 0);
	assert_int_equal(kice_sdp_edit_replace(ed, 2, 0, "2", 1), 0);
	assert_int_equal(kice_sdp_edit_replace(ed, 3, 0, "3", 1), 0);
	assert_int_equal(apply_str(ed, "abcd", out, sizeof(out)), 7);
	assert_string_equal(out, "ab12X3d");

	/* no edits: a copy */
	kice_sdp_edits_init(ed);
	assert_int_equal(apply_str(ed, "abcd", out, sizeof(out)), 4);
	assert_string_equal(out, "abcd");
	/* an empty body */
	assert_int_equal(kice_sdp_edits_apply(ed, NULL, 0, out, sizeof(out)), 0);
	assert_int_equal(kice_sdp_edit_replace(ed, 0, 0, "v=0", 3), 0);
	assert_int_equal(kice_sdp_edits_apply(ed, "", 0, out, sizeof(out)), 3);
	assert_memory_equal(out, "v=0", 3);
	free(ed);
}

static void test_edits_insert_at_end(void **state)
{
	struct kice_sdp_edits *ed = malloc(sizeof(*ed));
	char out[64];

	(void)state;
	assert_non_null(ed);
	kice_sdp_edits_init(ed);
	assert_int_equal(kice_sdp_edit_replace(ed, 5, 0, "a=x\r\n", 5), 0);
	assert_int_equal(kice_sdp_edit_replace(ed, 5, 0, "a=y\r\n", 5), 0);
	assert_int_equal(apply_str(ed, "v=0\r\n", out, sizeof(out)), 15);
	assert_string_equal(out, "v=0\r\na=x\r\na=y\r\n");
	/* past the end */
	kice_sdp_edits_init(ed);
	assert_int_equal(kice_sdp_edit_replace(ed, 6, 0, "x", 1), 0);
	assert_int_equal(apply_str(ed, "v=0\r\n", out, sizeof(out)), -EINVAL);
	kice_sdp_edits_init(ed);
	assert_int_equal(kice_sdp_edit_replace(ed, 4, 2, NULL, 0), 0);
	assert_int_equal(apply_str(ed, "v=0\r\n", out, sizeof(out)), -EINVAL);
	free(ed);
}

static void test_edits_overlap(void **state)
{
	struct kice_sdp_edits *ed = malloc(sizeof(*ed));
	char out[64];

	(void)state;
	assert_non_null(ed);
	/* two replacements that overlap */
	kice_sdp_edits_init(ed);
	assert_int_equal(kice_sdp_edit_replace(ed, 0, 4, "x", 1), 0);
	assert_int_equal(kice_sdp_edit_replace(ed, 3, 2, "y", 1), 0);
	assert_int_equal(apply_str(ed, "abcdefgh", out, sizeof(out)), -EINVAL);
	/* the same range twice */
	kice_sdp_edits_init(ed);
	assert_int_equal(kice_sdp_edit_replace(ed, 2, 2, "x", 1), 0);
	assert_int_equal(kice_sdp_edit_replace(ed, 2, 2, NULL, 0), 0);
	assert_int_equal(apply_str(ed, "abcdefgh", out, sizeof(out)), -EINVAL);
	/* an insertion strictly inside a replacement */
	kice_sdp_edits_init(ed);
	assert_int_equal(kice_sdp_edit_replace(ed, 1, 4, "x", 1), 0);
	assert_int_equal(kice_sdp_edit_replace(ed, 3, 0, "y", 1), 0);
	assert_int_equal(apply_str(ed, "abcdefgh", out, sizeof(out)), -EINVAL);
	/* adjacent ranges and an insertion at either edge are fine */
	kice_sdp_edits_init(ed);
	assert_int_equal(kice_sdp_edit_replace(ed, 4, 2, "Y", 1), 0);
	assert_int_equal(kice_sdp_edit_replace(ed, 1, 3, "X", 1), 0);
	assert_int_equal(kice_sdp_edit_replace(ed, 4, 0, "|", 1), 0);
	assert_int_equal(kice_sdp_edit_replace(ed, 6, 0, "|", 1), 0);
	assert_int_equal(apply_str(ed, "abcdefgh", out, sizeof(out)), 7);
	assert_string_equal(out, "aX|Y|gh");
	free(ed);
}

static void test_edits_cap(void **state)
{
	struct kice_sdp_edits *ed = malloc(sizeof(*ed));
	char out[16];

	(void)state;
	assert_non_null(ed);
	kice_sdp_edits_init(ed);
	assert_int_equal(kice_sdp_edit_replace(ed, 1, 1, "XYZ", 3), 0);
	/* "aXYZc" is 5 bytes */
	memset(out, '#', sizeof(out));
	assert_int_equal(kice_sdp_edits_apply(ed, "abc", 3, out, 4), -ENOSPC);
	assert_int_equal(out[0], '#'); /* nothing written */
	assert_int_equal(kice_sdp_edits_apply(ed, "abc", 3, out, 5), 5);
	assert_memory_equal(out, "aXYZc", 5);
	assert_int_equal(kice_sdp_edits_apply(ed, "abc", 3, NULL, 0), -ENOSPC);
	/* without edits too */
	kice_sdp_edits_init(ed);
	assert_int_equal(kice_sdp_edits_apply(ed, "abc", 3, out, 2), -ENOSPC);
	free(ed);
}

static void test_edits_many(void **state)
{
	struct kice_sdp_edits *ed = malloc(sizeof(*ed));
	char body[KICE_SDP_MAX_EDITS];
	char out[KICE_SDP_MAX_EDITS * 3];
	char want[KICE_SDP_MAX_EDITS * 3];
	int i, n = 0;

	(void)state;
	assert_non_null(ed);
	memset(body, 'a', sizeof(body));
	kice_sdp_edits_init(ed);
	/* every byte replaced, the edits given back to front */
	for(i = KICE_SDP_MAX_EDITS - 1; i >= 0; i--)
		assert_int_equal(
				kice_sdp_edit_printf(ed, (uint32_t)i, 1, "%02x", (unsigned)i),
				0);
	assert_int_equal(ed->n, KICE_SDP_MAX_EDITS);
	assert_int_equal(kice_sdp_edit_replace(ed, 0, 0, "x", 1), -ENOSPC);
	assert_int_equal(kice_sdp_edit_printf(ed, 0, 0, "x"), -ENOSPC);
	for(i = 0; i < KICE_SDP_MAX_EDITS; i++)
		n += snprintf(want + n, sizeof(want) - (size_t)n, "%02x", (unsigned)i);
	assert_int_equal(
			kice_sdp_edits_apply(ed, body, sizeof(body), out, sizeof(out)), n);
	assert_memory_equal(out, want, (size_t)n);
	free(ed);
}

static void test_edits_text_full(void **state)
{
	struct kice_sdp_edits *ed = malloc(sizeof(*ed));
	size_t big = sizeof(ed->text);
	char *text = malloc(big + 1);

	(void)state;
	assert_non_null(ed);
	assert_non_null(text);
	memset(text, 'x', big + 1);
	kice_sdp_edits_init(ed);
	assert_int_equal(kice_sdp_edit_replace(ed, 0, 0, text, big + 1), -ENOSPC);
	assert_int_equal(ed->n, 0);
	assert_int_equal(kice_sdp_edit_replace(ed, 0, 0, text, big - 2), 0);
	/* printf needs room for its NUL as well */
	assert_int_equal(kice_sdp_edit_printf(ed, 0, 0, "%s", "ab"), -ENOSPC);
	assert_int_equal(kice_sdp_edit_printf(ed, 0, 0, "%s", "a"), 0);
	assert_int_equal(kice_sdp_edit_replace(ed, 0, 0, "b", 1), 0);
	assert_int_equal(kice_sdp_edit_replace(ed, 0, 0, "c", 1), -ENOSPC);
	assert_int_equal(ed->tlen, big);
	/* bad arguments */
	assert_int_equal(kice_sdp_edit_replace(NULL, 0, 0, "x", 1), -EINVAL);
	assert_int_equal(kice_sdp_edit_replace(ed, 0, 0, NULL, 1), -EINVAL);
	assert_int_equal(
			kice_sdp_edit_replace(ed, UINT32_MAX, 1, NULL, 0), -EINVAL);
	assert_int_equal(kice_sdp_edit_printf(NULL, 0, 0, "x"), -EINVAL);
	assert_int_equal(kice_sdp_edits_apply(NULL, "a", 1, text, 1), -EINVAL);
	assert_int_equal(kice_sdp_edits_apply(ed, NULL, 1, text, 1), -EINVAL);
	free(text);
	free(ed);
}

/* ---- rewrite cases beyond the captures ---- */

static void test_rewrite_ipv6_relay(void **state)
{
	char *out;

	(void)state;
	out = rewrite_str(HEAD "c=IN IP4 192.0.2.10\r\n"
						   "m=audio 5000 RTP/AVP 0\r\n"
						   "a=rtcp:5001 IN IP4 192.0.2.10\r\n",
			KICE_AF_INET6, "2001:db8::7", NULL);
	assert_string_equal(out, HEAD "c=IN IP6 2001:db8::7\r\n"
								  "m=audio 40000 RTP/AVP 0\r\n"
								  "a=rtcp:40001 IN IP6 2001:db8::7\r\n");
	free(out);
}

static void test_rewrite_mux_only(void **state)
{
	char *out;

	(void)state;
	out = rewrite_str(HEAD "m=audio 5000 RTP/AVPF 96\r\n"
						   "c=IN IP4 192.0.2.10\r\n"
						   "a=rtpmap:96 opus/48000/2\r\n"
						   "a=rtcp-mux\r\n"
						   "a=rtcp-mux-only\r\n",
			KICE_AF_INET, RELAY, NULL);
	assert_string_equal(out, HEAD "m=audio 40000 RTP/AVPF 96\r\n"
								  "c=IN IP4 " RELAY "\r\n"
								  "a=rtcp:40000 IN IP4 " RELAY "\r\n"
								  "a=rtpmap:96 opus/48000/2\r\n"
								  "a=rtcp-mux\r\n"
								  "a=rtcp-mux-only\r\n");
	free(out);
}

static void test_rewrite_nports(void **state)
{
	char *out;

	(void)state;
	out = rewrite_str(HEAD "c=IN IP4 192.0.2.10\r\n"
						   "m=video 49170/2 RTP/AVP 31\r\n",
			KICE_AF_INET, RELAY, NULL);
	assert_string_equal(out, HEAD "c=IN IP4 " RELAY "\r\n"
								  "m=video 40000/2 RTP/AVP 31\r\n"
								  "a=rtcp:40001 IN IP4 " RELAY "\r\n");
	free(out);
}

static void test_rewrite_first_skipped(void **state)
{
	struct kice_rewrite rw;
	char *out;

	(void)state;
	memset(&rw, 0, sizeof(rw));
	rw.media[0].skip = true;
	rw.media[1].af = KICE_AF_INET;
	snprintf(rw.media[1].addr, sizeof(rw.media[1].addr), "198.51.100.1");
	rw.media[1].rtp_port = 30000;
	rw.media[1].rtcp_port = 30001;
	out = rewrite_str(HEAD "c=IN IP4 192.0.2.10\r\n"
						   "a=ice-ufrag:abcd\r\n"
						   "a=ice-pwd:0123456789012345678901\r\n"
						   "m=audio 0 RTP/AVP 0\r\n"
						   "a=candidate:1 1 UDP 1 192.0.2.10 5000 typ host\r\n"
						   "m=audio 5002 RTP/AVP 8\r\n"
						   "a=candidate:1 1 UDP 1 192.0.2.10 5002 typ host\r\n"
						   "a=sendrecv\r\n",
			KICE_AF_INET, RELAY, &rw);
	assert_string_equal(out, HEAD "c=IN IP4 198.51.100.1\r\n"
								  "m=audio 0 RTP/AVP 0\r\n"
								  "a=candidate:1 1 UDP 1 192.0.2.10 5000 typ "
								  "host\r\n"
								  "m=audio 30000 RTP/AVP 8\r\n"
								  "a=rtcp:30001 IN IP4 198.51.100.1\r\n"
								  "a=sendrecv\r\n");
	free(out);
}

static void test_rewrite_all_skipped(void **state)
{
	struct kice_rewrite rw;
	char *out;

	(void)state;
	memset(&rw, 0, sizeof(rw));
	rw.media[0].skip = true;
	out = rewrite_str(HEAD "c=IN IP4 192.0.2.10\r\n"
						   "a=ice-lite\r\n"
						   "m=audio 0 RTP/AVP 0\r\n",
			KICE_AF_INET, RELAY, &rw);
	assert_string_equal(out, HEAD "c=IN IP4 192.0.2.10\r\n"
								  "m=audio 0 RTP/AVP 0\r\n");
	free(out);
}

static void test_rewrite_insert_c(void **state)
{
	struct kice_rewrite rw;
	char *out;

	(void)state;
	/* a second m-line on another relay address gets its own c=, after
	 * i=, and a=rtcp after b= (RFC 8866 §5 order) */
	memset(&rw, 0, sizeof(rw));
	rw.media[0].af = KICE_AF_INET;
	snprintf(rw.media[0].addr, sizeof(rw.media[0].addr), RELAY);
	rw.media[0].rtp_port = 40000;
	rw.media[0].rtcp_port = 40001;
	rw.media[1].af = KICE_AF_INET6;
	snprintf(rw.media[1].addr, sizeof(rw.media[1].addr), "2001:db8::7");
	rw.media[1].rtp_port = 40004;
	rw.media[1].rtcp_port = 40005;
	out = rewrite_str(HEAD "c=IN IP4 192.0.2.10\r\n"
						   "m=audio 5000 RTP/AVP 0\r\n"
						   "m=video 5002 RTP/AVP 96\r\n"
						   "i=camera\r\n"
						   "b=AS:512\r\n"
						   "a=rtpmap:96 VP8/90000\r\n",
			KICE_AF_INET, RELAY, &rw);
	assert_string_equal(out, HEAD "c=IN IP4 " RELAY "\r\n"
								  "m=audio 40000 RTP/AVP 0\r\n"
								  "a=rtcp:40001 IN IP4 " RELAY "\r\n"
								  "m=video 40004 RTP/AVP 96\r\n"
								  "i=camera\r\n"
								  "c=IN IP6 2001:db8::7\r\n"
								  "b=AS:512\r\n"
								  "a=rtcp:40005 IN IP6 2001:db8::7\r\n"
								  "a=rtpmap:96 VP8/90000\r\n");
	free(out);

	/* no c= anywhere: every m-line gets one */
	out = rewrite_str(HEAD "m=audio 5000 RTP/AVP 0\r\n"
						   "m=audio 5002 RTP/AVP 0\r\n"
						   "a=sendrecv\r\n",
			KICE_AF_INET, RELAY, NULL);
	assert_string_equal(out, HEAD "m=audio 40000 RTP/AVP 0\r\n"
								  "c=IN IP4 " RELAY "\r\n"
								  "a=rtcp:40001 IN IP4 " RELAY "\r\n"
								  "m=audio 40004 RTP/AVP 0\r\n"
								  "c=IN IP4 " RELAY "\r\n"
								  "a=rtcp:40005 IN IP4 " RELAY "\r\n"
								  "a=sendrecv\r\n");
	free(out);
}

static void test_rewrite_no_final_eol(void **state)
{
	char *out;

	(void)state;
	out = rewrite_str(HEAD "c=IN IP4 192.0.2.10\r\n"
						   "m=audio 5000 RTP/AVP 0\r\n"
						   "a=candidate:1 1 UDP 1 192.0.2.10 5000 typ host",
			KICE_AF_INET, RELAY, NULL);
	assert_string_equal(out, HEAD "c=IN IP4 " RELAY "\r\n"
								  "m=audio 40000 RTP/AVP 0\r\n"
								  "a=rtcp:40001 IN IP4 " RELAY "\r\n");
	free(out);
	out = rewrite_str(HEAD "c=IN IP4 192.0.2.10\r\n"
						   "m=audio 5000 RTP/AVP 0",
			KICE_AF_INET, RELAY, NULL);
	assert_string_equal(out, HEAD "c=IN IP4 " RELAY "\r\n"
								  "m=audio 40000 RTP/AVP 0\r\n"
								  "a=rtcp:40001 IN IP4 " RELAY);
	free(out);
}

static void test_rewrite_mixed_eol(void **state)
{
	char *out;

	(void)state;
	/* a replaced line keeps its own ending; inserted ones follow v= */
	out = rewrite_str(HEAD "c=IN IP4 192.0.2.10\n"
						   "m=audio 5000 RTP/AVP 0\n"
						   "a=rtcp:5001\n"
						   "m=audio 5002 RTP/AVP 0\n"
						   "a=sendrecv\n",
			KICE_AF_INET, RELAY, NULL);
	assert_string_equal(out, HEAD "c=IN IP4 " RELAY "\n"
								  "m=audio 40000 RTP/AVP 0\n"
								  "a=rtcp:40001 IN IP4 " RELAY "\n"
								  "m=audio 40004 RTP/AVP 0\n"
								  "a=rtcp:40005 IN IP4 " RELAY "\r\n"
								  "a=sendrecv\n");
	free(out);
}

static void test_rewrite_all_ice_attrs(void **state)
{
	char *out;

	(void)state;
	out = rewrite_str(HEAD "a=ice-lite\r\n"
						   "a=ice-options:ice2 trickle\r\n"
						   "a=ice-pacing:50\r\n"
						   "a=ice-candidates-x:keep\r\n"
						   "m=audio 5000 RTP/AVP 0\r\n"
						   "c=IN IP4 192.0.2.10\r\n"
						   "a=ice-ufrag:abcd\r\n"
						   "a=ice-pwd:0123456789012345678901\r\n"
						   "a=ice-mismatch\r\n"
						   "a=remote-candidates:1 192.0.2.20 6000\r\n"
						   "a=candidate:1 1 UDP 1 192.0.2.10 5000 typ host\r\n"
						   "a=end-of-candidates\r\n"
						   "a=candidatex\r\n",
			KICE_AF_INET, RELAY, NULL);
	assert_string_equal(out, HEAD "a=ice-candidates-x:keep\r\n"
								  "m=audio 40000 RTP/AVP 0\r\n"
								  "c=IN IP4 " RELAY "\r\n"
								  "a=rtcp:40001 IN IP4 " RELAY "\r\n"
								  "a=candidatex\r\n");
	free(out);
}

static void test_rewrite_errors(void **state)
{
	struct kice_sdp *sdp;
	struct kice_sdp_edits *ed = malloc(sizeof(*ed));
	struct kice_rewrite rw;
	char *buf;

	(void)state;
	assert_non_null(ed);
	sdp = parse_file("chrome-offer", &buf);
	rw_fill(sdp, &rw, KICE_ICE_REMOVE, KICE_AF_INET, RELAY);
	assert_int_equal(kice_sdp_rewrite(NULL, &rw, ed), -EINVAL);
	assert_int_equal(kice_sdp_rewrite(sdp, NULL, ed), -EINVAL);
	assert_int_equal(kice_sdp_rewrite(sdp, &rw, NULL), -EINVAL);
	/* nmedia mismatch, for pass as well */
	rw.nmedia = 2;
	assert_int_equal(kice_sdp_rewrite(sdp, &rw, ed), -EINVAL);
	rw.mode = KICE_ICE_PASS;
	assert_int_equal(kice_sdp_rewrite(sdp, &rw, ed), -EINVAL);
	/* bad relay addresses */
	rw_fill(sdp, &rw, KICE_ICE_REMOVE, KICE_AF_INET, "not-an-address");
	assert_int_equal(kice_sdp_rewrite(sdp, &rw, ed), -EINVAL);
	rw_fill(sdp, &rw, KICE_ICE_REMOVE, KICE_AF_INET, "2001:db8::7");
	assert_int_equal(kice_sdp_rewrite(sdp, &rw, ed), -EINVAL);
	rw_fill(sdp, &rw, KICE_ICE_REMOVE, KICE_AF_NONE, RELAY);
	assert_int_equal(kice_sdp_rewrite(sdp, &rw, ed), -EINVAL);
	rw_fill(sdp, &rw, KICE_ICE_REMOVE, KICE_AF_INET, RELAY "\r\na=x");
	assert_int_equal(kice_sdp_rewrite(sdp, &rw, ed), -EINVAL);
	rw_fill(sdp, &rw, KICE_ICE_REMOVE, KICE_AF_INET, RELAY);
	memset(rw.media[1].addr, '1', sizeof(rw.media[1].addr));
	assert_int_equal(kice_sdp_rewrite(sdp, &rw, ed), -EINVAL);
	/* a skipped m-line's address is not looked at */
	rw_fill(sdp, &rw, KICE_ICE_REMOVE, KICE_AF_INET, RELAY);
	rw.media[2].skip = true;
	rw.media[2].af = KICE_AF_NONE;
	assert_int_equal(kice_sdp_rewrite(sdp, &rw, ed), 0);
	free(buf);
	free(sdp);
	free(ed);
}

static void test_rewrite_enospc(void **state)
{
	struct kice_sdp *sdp = malloc(sizeof(*sdp));
	struct kice_sdp_edits *ed = malloc(sizeof(*ed));
	struct kice_rewrite rw;
	size_t cap = 64 * 1024, n;
	char *body = malloc(cap);
	int i;

	(void)state;
	assert_non_null(sdp);
	assert_non_null(ed);
	assert_non_null(body);
	/* more ICE lines than edit slots */
	n = (size_t)snprintf(body, cap, "%sm=audio 5000 RTP/AVP 0\r\n", HEAD);
	for(i = 0; i < KICE_SDP_MAX_EDITS + 10; i++)
		n += (size_t)snprintf(body + n, cap - n,
				"a=candidate:%d 1 UDP %d 192.0.2.10 5000 typ host\r\n", i, i);
	assert_int_equal(kice_sdp_parse(sdp, body, n), 0);
	assert_int_equal(sdp->media[0].ncand, KICE_SDP_MAX_EDITS + 10);
	rw_fill(sdp, &rw, KICE_ICE_REMOVE, KICE_AF_INET, RELAY);
	assert_int_equal(kice_sdp_rewrite(sdp, &rw, ed), -ENOSPC);
	free(body);
	free(ed);
	free(sdp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_chrome),
		cmocka_unit_test(test_parse_firefox),
		cmocka_unit_test(test_parse_linphone),
		cmocka_unit_test(test_parse_bria),
		cmocka_unit_test(test_parse_yealink),
		cmocka_unit_test(test_parse_hold),
		cmocka_unit_test(test_parse_asterisk),
		cmocka_unit_test(test_parse_freeswitch),
		cmocka_unit_test(test_parse_rejected),
		cmocka_unit_test(test_parse_lf),
		cmocka_unit_test(test_parse_session_c_only),
		cmocka_unit_test(test_parse_media_c_only),
		cmocka_unit_test(test_parse_ipv6),
		cmocka_unit_test(test_golden_remove),
		cmocka_unit_test(test_golden_pass),
		cmocka_unit_test(test_default_mode),
		cmocka_unit_test(test_truncation_sweep),
		cmocka_unit_test(test_bad_args),
		cmocka_unit_test(test_bad_empty),
		cmocka_unit_test(test_bad_nul),
		cmocka_unit_test(test_bad_version),
		cmocka_unit_test(test_bad_line),
		cmocka_unit_test(test_bad_origin),
		cmocka_unit_test(test_bad_conn),
		cmocka_unit_test(test_bad_media),
		cmocka_unit_test(test_bad_too_many_media),
		cmocka_unit_test(test_bad_rtcp),
#if SIZE_MAX > UINT32_MAX
		cmocka_unit_test(test_bad_huge),
#endif
		cmocka_unit_test(test_line_next),
		cmocka_unit_test(test_attr_split),
		cmocka_unit_test(test_has_ice),
		cmocka_unit_test(test_edits_basic),
		cmocka_unit_test(test_edits_insert_at_end),
		cmocka_unit_test(test_edits_overlap),
		cmocka_unit_test(test_edits_cap),
		cmocka_unit_test(test_edits_many),
		cmocka_unit_test(test_edits_text_full),
		cmocka_unit_test(test_rewrite_ipv6_relay),
		cmocka_unit_test(test_rewrite_mux_only),
		cmocka_unit_test(test_rewrite_nports),
		cmocka_unit_test(test_rewrite_first_skipped),
		cmocka_unit_test(test_rewrite_all_skipped),
		cmocka_unit_test(test_rewrite_insert_c),
		cmocka_unit_test(test_rewrite_no_final_eol),
		cmocka_unit_test(test_rewrite_mixed_eol),
		cmocka_unit_test(test_rewrite_all_ice_attrs),
		cmocka_unit_test(test_rewrite_errors),
		cmocka_unit_test(test_rewrite_enospc),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
