/*
 * kamailio-ice: RTP/RTCP/STUN/DTLS demultiplexing (see rtp.h).
 */
#include "rtp.h"

enum kice_pkt_kind kice_pkt_classify(const uint8_t *p, size_t len)
{
	uint8_t b;

	if(len < 2)
		return KICE_PKT_UNKNOWN;
	b = p[0];
	/* RFC 7983 §7: 0..3 STUN, 20..63 DTLS, 128..191 RTP/RTCP */
	if(b <= 3)
		return len >= 20 ? KICE_PKT_STUN : KICE_PKT_UNKNOWN;
	if(b >= 20 && b <= 63)
		return len >= 13 ? KICE_PKT_DTLS : KICE_PKT_UNKNOWN;
	if(b >= 128 && b <= 191) {
		/* RFC 5761 §4: RTCP packet types 192..223 in the second byte */
		if(p[1] >= 192 && p[1] <= 223)
			return len >= 8 ? KICE_PKT_RTCP : KICE_PKT_UNKNOWN;
		return len >= 12 ? KICE_PKT_RTP : KICE_PKT_UNKNOWN;
	}
	return KICE_PKT_UNKNOWN;
}
