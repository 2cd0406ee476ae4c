/*
 * kamailio-ice: the SDP rewrite for an ICE mode (RFC 8839 attributes).
 *
 * Given a parsed body and, per m-line, the relay address and ports that
 * anchor it, kice_sdp_rewrite() builds the edits that turn the body into
 * what is sent on (DESIGN.md §4). Modes implemented: remove, pass; default
 * resolves to force when the body carries ICE, else to remove. force
 * replaces the endpoint's ICE description with the relay's own: its
 * ufrag/pwd and one host candidate per component at the relay address.
 * relay keeps the endpoint's ICE and adds the relay as a `typ relay`
 * candidate of the lowest priority per component it uses.
 */
#ifndef KICE_SDP_ICE_H
#define KICE_SDP_ICE_H

#include <stdbool.h>
#include <stdint.h>

#include "sdp.h"

enum kice_ice_mode
{
	KICE_ICE_DEFAULT = 0,
	KICE_ICE_REMOVE,
	KICE_ICE_FORCE,
	KICE_ICE_RELAY,
	KICE_ICE_PASS
};

struct kice_rewrite_media
{
	bool skip;		 /* leave this m-line as it is (rejected, not relayed) */
	bool reject;	 /* with skip: write port 0 (e.g. a data channel toward
					  * a plain RTP phone) */
	char crypto[176]; /* transport: an a=crypto value to add, "" none */
	char mid[16];	  /* transport: an a=mid value to add, "" none */
	enum kice_af af; /* KICE_AF_INET or KICE_AF_INET6 */
	char addr[46];	 /* relay address to advertise, NUL-terminated */
	uint16_t rtp_port, rtcp_port; /* rtcp_port == rtp_port: rtcp-mux only */
};

struct kice_rewrite
{
	enum kice_ice_mode mode;
	/* force: the relay's own ICE description toward the recipient */
	char ufrag[33], pwd[65]; /* RFC 8839 ice-chars, NUL-terminated */
	bool lite;				 /* a=ice-lite at session level */
	bool trickle;			 /* a=ice-options:trickle at session level */
	/* transport conversion (issue 4): applied to RTP m-lines not skipped */
	bool convert;			 /* any of the following */
	char proto[24];			 /* new m= protocol, "" keeps it */
	bool strip_crypto;		 /* drop a=fingerprint, a=setup, a=crypto, a=tls-id */
	bool strip_rtcp_fb;		 /* drop a=rtcp-fb (toward AVP/SAVP) */
	bool strip_rtcp_mux;	 /* drop a=rtcp-mux (toward a phone that demuxes) */
	bool add_rtcp_mux;		 /* write a=rtcp-mux if absent */
	char fingerprint[112];	 /* a=fingerprint value to write, "" none */
	char setup[12];			 /* a=setup value to write, "" none */
	unsigned nmedia; /* must equal sdp->nmedia */
	struct kice_rewrite_media media[KICE_SDP_MAX_MEDIA];
};

/* The mode actually applied: KICE_ICE_DEFAULT becomes KICE_ICE_FORCE when
 * sdp carries ICE (kice_sdp_has_ice), else KICE_ICE_REMOVE; others as is */
enum kice_ice_mode kice_sdp_ice_mode(
		const struct kice_sdp *sdp, enum kice_ice_mode mode);

/* true when name (an a= attribute name, without ':') is an ICE attribute:
 * RFC 8839 §5 (candidate, remote-candidates, ice-lite, ice-mismatch,
 * ice-ufrag, ice-pwd, ice-pacing, ice-options), RFC 8840 end-of-candidates */
bool kice_sdp_is_ice_attr(struct kice_slice name);

/*
 * Build in out (initialised here) the edits that turn sdp into what is sent
 * on under rw. Borrows sdp (and its body) and rw; the edits refer to sdp's
 * body. After a success the caller may append more edits.
 *
 * pass: no edits.
 * remove: every ICE attribute line at session level and in non-skipped
 * m-lines is deleted. For every non-skipped m-line: the m= port becomes
 * rtp_port (nports and the rest kept byte for byte); a media-level c= becomes
 * "c=IN IP4|IP6 <addr>" (one is inserted after m= and i= when the m-line
 * has none and the session c= would not carry its address); for RTP
 * protocols a=rtcp becomes "a=rtcp:<rtcp_port> IN IP4|IP6 <addr>", replacing
 * an existing one or inserted before the m-line's first attribute (after
 * c=/b=/k=, RFC 8866 §5 order). A session-level c= gets the address of the
 * first non-skipped m-line. o= and skipped m-lines are left untouched.
 * Inserted lines end as the body's first line does; replaced lines keep
 * their own line ending.
 *
 * Returns 0; -EINVAL (NULL, nmedia mismatch, a bad relay address, or a mode
 * not supported yet: force, relay); -ENOSPC (out is full).
 * Pure function of its arguments: any process, no locks.
 */
int kice_sdp_rewrite(const struct kice_sdp *sdp, const struct kice_rewrite *rw,
		struct kice_sdp_edits *out);

/* One a=candidate value (RFC 8839 §5.1), slices into the body. */
struct kice_sdp_cand
{
	struct kice_slice foundation;
	uint8_t component; /* 1..256 capped to 255 */
	bool udp;		   /* transport UDP (others are not used by the relay) */
	uint32_t priority;
	struct kice_slice addr; /* IP literal or an mDNS/FQDN name */
	uint16_t port;
	struct kice_slice type; /* host, srflx, prflx, relay */
	struct kice_slice raddr;
	uint16_t rport;
};

/* Parse the value of an a=candidate line (after "candidate:"). Borrows
 * val. 0 or -EBADMSG. */
int kice_sdp_cand_parse(struct kice_slice val, struct kice_sdp_cand *c);

/* The relay's host candidate priority (RFC 8445 §5.1.2.1: type preference
 * 126, local preference 65535) for a component */
uint32_t kice_sdp_host_priority(unsigned component);

/* The relay's candidate priority in mode relay (type preference 0) */
uint32_t kice_sdp_relay_priority(unsigned component);

#endif
