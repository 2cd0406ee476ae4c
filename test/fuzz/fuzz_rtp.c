/*
 * kamailio-ice: libFuzzer target for the RFC 7983 / RFC 5761 demultiplexer
 * and the STUN recogniser used on every relayed packet.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rtp.h"
#include "stun.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf = malloc(size ? size : 1);
	enum kice_pkt_kind k;

	if(buf == NULL)
		return 0;
	memcpy(buf, data, size);
	k = kice_pkt_classify(buf, size);
	if(k == KICE_PKT_RTP && (size < 12 || buf[0] < 128 || buf[0] > 191))
		abort();
	if(k == KICE_PKT_RTCP && (size < 8 || buf[1] < 192 || buf[1] > 223))
		abort();
	if(kice_is_stun(buf, size) && k != KICE_PKT_STUN)
		abort();
	free(buf);
	return 0;
}
