/*
 * kamailio-ice: RTP/RTCP recognition (RFC 3550, RFC 5761, RFC 7983).
 */
#ifndef KICE_RTP_H
#define KICE_RTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum kice_pkt_kind
{
	KICE_PKT_UNKNOWN = 0,
	KICE_PKT_STUN,
	KICE_PKT_DTLS,
	KICE_PKT_RTP,
	KICE_PKT_RTCP
};

/* RFC 7983 §7: demultiplex by the first byte; RTP vs RTCP by RFC 5761 §4
 * (second byte 192..223 is RTCP). Needs no more than 2 bytes, checks the
 * minimum header lengths (12 for RTP, 8 for RTCP, 20 for STUN, 13 DTLS). */
enum kice_pkt_kind kice_pkt_classify(const uint8_t *p, size_t len);

#endif
