/*
 * kamailio-ice: libFuzzer target for lib/ice.
 *
 * One agent (full or lite, controlling or controlled, two components) is
 * fed a sequence of records: op (1 byte), length (2 bytes), packet. The
 * packet is copied into an exact-size heap buffer so ASan sees overreads.
 * op bit 0: from the known remote candidate (else an unknown address);
 * bit 1: arrives on socket 1 (else 0); bits 2..5: time advance in 10 ms;
 * bit 6: instead of the packet, answer the agent's last request with a
 * correctly signed response (success if the packet's first byte is even,
 * else an error with that code), so the response paths are reached too.
 * The first input byte picks the agent's kind. After the records the
 * agent runs alone for two minutes of simulated time; every deadline it
 * reports must be served by a bounded number of ticks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ice.h"

#define PWD_L "LLLLLLLLLLLLLLLLLLLLLLLL"
#define PWD_R "RRRRRRRRRRRRRRRRRRRRRRRR"

struct ctx
{
	uint8_t tid[KICE_STUN_TID_LEN];
	bool have;
	uint8_t lidx;
	struct kice_addr dst;
};

static void on_send(void *c, uint8_t local_idx, const struct kice_addr *dst,
		const uint8_t *pkt, size_t len)
{
	struct ctx *x = c;

	if(local_idx > 1 || dst == NULL || len < KICE_STUN_HDR_LEN)
		abort();
	if(pkt[0] == 0x00 && pkt[1] == 0x01) {
		memcpy(x->tid, pkt + 8, KICE_STUN_TID_LEN);
		x->have = true;
		x->lidx = local_idx;
		x->dst = *dst;
	}
}

static struct kice_addr addr4(
		uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port)
{
	struct kice_addr x;

	memset(&x, 0, sizeof(x));
	x.af = 4;
	x.ip[0] = a;
	x.ip[1] = b;
	x.ip[2] = c;
	x.ip[3] = d;
	x.port = port;
	return x;
}

static size_t answer(
		uint8_t *out, size_t cap, const struct ctx *x, uint8_t kind)
{
	struct kice_stun_wr wr;
	struct sockaddr_storage ss;
	int n;

	kice_stun_wr_init(&wr, out, cap,
			kind & 1 ? KICE_STUN_BINDING_ERROR : KICE_STUN_BINDING_SUCCESS,
			x->tid);
	if(kind & 1) {
		kice_stun_wr_error_code(&wr, 300 + kind, "e", 1);
	} else {
		kice_addr_to_sa(&x->dst, &ss);
		kice_stun_wr_xor_mapped(&wr, (const struct sockaddr *)&ss);
	}
	kice_stun_wr_integrity(&wr, (const uint8_t *)PWD_R, strlen(PWD_R));
	kice_stun_wr_fingerprint(&wr);
	n = kice_stun_wr_finish(&wr);
	return n > 0 ? (size_t)n : 0;
}

static void serve(struct kice_ice *a, uint64_t *now)
{
	unsigned i;

	for(i = 0; i < 64 && kice_ice_next_deadline(a) <= *now; i++)
		kice_ice_tick(a, *now);
	if(kice_ice_next_deadline(a) <= *now)
		abort(); /* a deadline the agent does not serve */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct kice_ice a;
	struct kice_ice_cfg cfg;
	struct kice_ice_cand c;
	struct ctx x;
	struct kice_addr la, ra, other, src;
	uint64_t now = 1000000, end;
	uint8_t *buf, resp[256];
	size_t len;
	uint8_t op;
	unsigned k;

	if(size < 1)
		return 0;
	memset(&x, 0, sizeof(x));
	memset(&cfg, 0, sizeof(cfg));
	cfg.lite = data[0] & 1;
	cfg.role = data[0] & 2 ? KICE_ICE_CONTROLLING : KICE_ICE_CONTROLLED;
	cfg.remote_lite = (data[0] & 4) && !cfg.lite;
	cfg.tie_breaker = data[0] & 8 ? UINT64_MAX / 2 : 7;
	strcpy(cfg.lufrag, "llll");
	strcpy(cfg.lpwd, PWD_L);
	strcpy(cfg.rufrag, "rrrr");
	strcpy(cfg.rpwd, PWD_R);
	cfg.ncomp = 2;
	cfg.send = on_send;
	cfg.ctx = &x;
	if(kice_ice_init(&a, &cfg) != 0)
		abort();
	for(k = 0; k < 2; k++) {
		la = addr4(10, 0, 0, 1, (uint16_t)(1000 + k));
		ra = addr4(192, 0, 2, 2, (uint16_t)(2000 + k));
		if(kice_ice_add_local(&a, (uint8_t)(k + 1), (uint8_t)k, &la) != 0)
			abort();
		memset(&c, 0, sizeof(c));
		c.component = (uint8_t)(k + 1);
		c.priority = kice_ice_priority(126, 65535, k + 1);
		strcpy(c.foundation, "1");
		c.addr = ra;
		if(kice_ice_add_remote(&a, &c) != 0)
			abort();
	}
	if(data[0] & 16)
		kice_ice_end_of_candidates(&a);
	other = addr4(203, 0, 113, 7, 4000);
	data++;
	size--;
	serve(&a, &now);

	while(size >= 3) {
		op = data[0];
		len = (size_t)((data[1] << 8) | data[2]);
		data += 3;
		size -= 3;
		if(len > size)
			len = size;
		now += 10000ull * ((op >> 2) & 0xf);
		src = op & 1 ? addr4(192, 0, 2, 2, (uint16_t)(2000 + ((op >> 1) & 1)))
					 : other;
		if((op & 0x40) && x.have) {
			size_t n = answer(resp, sizeof(resp), &x, len ? data[0] : 0);
			if(n > 0)
				kice_ice_input(
						&a, now, x.lidx, op & 1 ? &x.dst : &other, resp, n);
		} else {
			buf = malloc(len ? len : 1);
			if(buf == NULL)
				return 0;
			memcpy(buf, data, len);
			kice_ice_input(&a, now, (op >> 1) & 1, &src, buf, len);
			free(buf);
		}
		data += len;
		size -= len;
		serve(&a, &now);
	}
	for(end = now + 120000000ull; now < end;) {
		uint64_t d = kice_ice_next_deadline(&a);
		if(d == UINT64_MAX || d > end)
			break;
		if(d > now)
			now = d;
		serve(&a, &now);
	}
	(void)kice_ice_selected(&a, 1, NULL);
	(void)kice_ice_selected(&a, 2, NULL);
	(void)kice_ice_source_ok(&a, 1, &other);
	return 0;
}
