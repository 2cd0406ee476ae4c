/*
 * kamailio-ice: libFuzzer target for the ice_manage flags parser and the
 * interface parameter parser.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "flags.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kice_flags f;
	struct kice_slice bad;
	struct kice_iface ifc;
	char *buf = malloc(size ? size : 1);

	if(buf == NULL)
		return 0;
	memcpy(buf, data, size);
	if(kice_flags_parse(&f, buf, size, &bad) < 0) {
		/* the reported flag lies inside the input */
		if(bad.p < buf || bad.p + bad.len > buf + size)
			abort();
	}
	kice_iface_parse(&ifc, buf, size);
	free(buf);
	return 0;
}
