/*
 * kamailio-ice: libFuzzer target for lib/stun.
 *
 * The input is copied into an exact-size heap buffer so ASan reports any
 * read past its end. Accepted messages go through both checks; the ones
 * that parse are also rebuilt with the writer, whose output must parse.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stun.h"

/* RFC 5769 short-term password: the seed corpus verifies with it */
static const uint8_t key[] = "VOkJxbRl1RmTxUk/WvJxBt";

static void rebuild(const struct kice_stun_msg *m)
{
	struct kice_stun_msg back;
	struct kice_stun_wr wr;
	uint8_t out[1024];
	int n;

	kice_stun_wr_init(&wr, out, sizeof(out), m->type, m->tid);
	if(m->has_username)
		kice_stun_wr_username(&wr, m->username.p, m->username.len);
	if(m->has_xor_mapped)
		kice_stun_wr_xor_mapped(&wr, (const struct sockaddr *)&m->xor_mapped);
	if(m->has_priority)
		kice_stun_wr_priority(&wr, m->priority);
	if(m->has_error)
		kice_stun_wr_error_code(
				&wr, m->error_code, m->error_reason.p, m->error_reason.len);
	if(m->n_unknown)
		kice_stun_wr_unknown_attrs(&wr, m->unknown, m->n_unknown);
	kice_stun_wr_integrity(&wr, key, sizeof(key) - 1);
	kice_stun_wr_fingerprint(&wr);
	n = kice_stun_wr_finish(&wr);
	if(n < 0)
		return; /* -ENOSPC: the input's attributes outgrew out */
	if(kice_stun_parse(&back, out, (size_t)n) != 0
			|| kice_stun_check_integrity(&back, key, sizeof(key) - 1) != 0
			|| kice_stun_check_fingerprint(&back) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kice_stun_msg m;
	uint8_t *buf;

	buf = malloc(size ? size : 1);
	if(buf == NULL)
		return 0;
	if(size)
		memcpy(buf, data, size);

	(void)kice_is_stun(buf, size);
	if(kice_stun_parse(&m, buf, size) == 0) {
		(void)kice_stun_check_integrity(&m, key, sizeof(key) - 1);
		(void)kice_stun_check_fingerprint(&m);
		rebuild(&m);
	}
	free(buf);
	return 0;
}
