/*
 * kamailio-ice: libFuzzer target for the SDP parser and the remove/pass
 * rewriter. The input is copied into an exact-size heap buffer so ASan
 * sees any overread.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sdp.h"
#include "sdp_ice.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct kice_sdp sdp;
	static struct kice_sdp_edits ed;
	static char out[65536];
	struct kice_rewrite rw;
	char *buf = malloc(size ? size : 1);
	unsigned i;

	if(buf == NULL)
		return 0;
	memcpy(buf, data, size);
	if(kice_sdp_parse(&sdp, buf, size) == 0) {
		memset(&rw, 0, sizeof(rw));
		rw.nmedia = sdp.nmedia;
		for(i = 0; i < sdp.nmedia; i++) {
			rw.media[i].af = (i & 1) ? KICE_AF_INET6 : KICE_AF_INET;
			strcpy(rw.media[i].addr, (i & 1) ? "2001:db8::7" : "203.0.113.7");
			rw.media[i].rtp_port = (uint16_t)(40000 + 2 * i);
			rw.media[i].rtcp_port = (uint16_t)(40001 + 2 * i);
			rw.media[i].skip = sdp.media[i].port == 0;
		}
		rw.mode = KICE_ICE_REMOVE;
		if(kice_sdp_rewrite(&sdp, &rw, &ed) == 0) {
			int n = kice_sdp_edits_apply(&ed, buf, size, out, sizeof(out));
			/* what we write must parse again */
			if(n > 0) {
				static struct kice_sdp again;
				char *o = malloc((size_t)n);
				memcpy(o, out, (size_t)n);
				if(kice_sdp_parse(&again, o, (size_t)n) != 0)
					abort();
				free(o);
			}
		}
		rw.mode = KICE_ICE_PASS;
		kice_sdp_rewrite(&sdp, &rw, &ed);
	}
	free(buf);
	return 0;
}
