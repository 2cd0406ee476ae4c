/*
 * kamailio-ice: the flags string of ice_manage() and friends
 * (DESIGN.md section 5), including rtpengine's spellings.
 */
#ifndef KICE_FLAGS_H
#define KICE_FLAGS_H

#include <stdbool.h>
#include <stddef.h>

#include "slice.h"

#define KICE_IFACE_NAME_MAX 32

enum kice_flag_ice
{
	KICE_FLAG_ICE_DEFAULT = 0,
	KICE_FLAG_ICE_REMOVE,
	KICE_FLAG_ICE_FORCE,
	KICE_FLAG_ICE_RELAY,
	KICE_FLAG_ICE_PASS
};

enum kice_flag_op
{
	KICE_OP_AUTO = 0, /* by message type */
	KICE_OP_OFFER,
	KICE_OP_ANSWER,
	KICE_OP_DELETE
};

struct kice_flags
{
	enum kice_flag_ice ice;
	bool lite, trickle;
	struct kice_slice transport; /* "" or RTP/AVP, UDP/TLS/RTP/SAVPF, ... */
	int dtls;	  /* 0 unset, 1 active, 2 passive, -1 off */
	int sdes;	  /* 0 unset, 1 on, -1 off */
	int rtcp_mux; /* 0 unset, 1 offer, 2 require, 3 demux, 4 accept */
	int af;		  /* 0, 4 or 6 */
	char in_iface[KICE_IFACE_NAME_MAX], out_iface[KICE_IFACE_NAME_MAX];
	bool asymmetric, strict_source;
};

/* Parse a space-separated flags string (borrowed, no NUL needed). On an
 * unknown or malformed flag returns -EINVAL and sets *bad to it. */
int kice_flags_parse(struct kice_flags *out, const char *s, size_t len,
		struct kice_slice *bad);

const char *kice_flag_ice_name(enum kice_flag_ice m);

#endif
